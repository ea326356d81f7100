/* The RFC 7247 address mapping of lua/xsgw/address.lua, in C, for the
 * per-message path. lua/xsgw/address.lua stays the definition: every
 * function here gives byte for byte what its Lua namesake gives, and
 * tests/lua/test_addr_map.lua holds the two side by side on a corpus of
 * every escaping rule and on random input. The policy library uses these
 * only where the policy did not replace the mapping (map_to_sip,
 * map_to_xmpp hooks).
 *
 * Inputs are (pointer, length) pairs, borrowed, and may hold NUL bytes the
 * way a Lua string may. Outputs go into a caller's buffer of
 * XS_ADDR_MAP_MAX bytes and are NUL-terminated; *len gets their length. */
#ifndef XS_POLICY_ADDR_MAP_H
#define XS_POLICY_ADDR_MAP_H

#include <stddef.h>

#include <lua.h>

/* Larger than any result: a mapped address is at most three times a
 * 1023-byte part, plus a 1023-byte domain and a 1023-byte resource. */
#define XS_ADDR_MAP_MAX 8192

/* address.to_sip(jid): "sip:user@domain[;gr=resource]". 0, or XS_EINVAL
 * where the Lua one returns nil, "jid-malformed". When `dom` is not NULL it
 * gets what jid_domain(jid) gives (an XS_ADDR_MAP_MAX buffer), and
 * *dom_len its length. */
int xs_addr_map_to_sip(const char *jid, size_t n, char *out, size_t *len, char *dom,
                       size_t *dom_len);

/* address.to_xmpp(uri): "local@domain[/gr]". 0, or XS_EINVAL as above.
 * `dom`, when not NULL, gets what sip_domain(uri) gives. */
int xs_addr_map_to_xmpp(const char *uri, size_t n, char *out, size_t *len, char *dom,
                        size_t *dom_len);

/* address.jid_domain(jid): the lower-cased domain. 0, or XS_EINVAL where
 * the Lua one returns nil. */
int xs_addr_map_jid_domain(const char *jid, size_t n, char *out, size_t *len);

/* address.sip_domain(uri): the lower-cased host. 0, or XS_EINVAL. */
int xs_addr_map_sip_domain(const char *uri, size_t n, char *out, size_t *len);

/* to_sip, to_xmpp, jid_domain and sip_domain as Lua functions (a string in;
 * the result, or nil and "jid-malformed" for the mappings, nil for the
 * domains) into the table on top of the stack, which stays there. */
void xs_addr_map_open(lua_State *L);

#endif
