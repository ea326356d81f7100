/* The one address validator: what an XMPP address (RFC 7622) and its parts
 * may hold in this gateway, for C and, through policy/lua_addr.c, for Lua.
 * The PRECIS profiles are not applied (RFC 7247 §6.4 step 6 makes them
 * optional); what is checked is what can never be part of an address:
 * bytes that are not UTF-8, controls, spaces, the delimiters RFC 7622 §3.3.1
 * forbids in a localpart, and lengths (1..1023 bytes a part, 3071 a JID).
 * Three narrower rules stay where they are, because they check something
 * else than an address: a certificate's dNSName (tls_ctx.c, ASCII only), a
 * name put on the DNS wire (dns.c, host-name bytes only), and the domains an
 * operator writes into the policy (policy.lua, lower-case LDH names). */
#ifndef XS_CORE_ADDR_H
#define XS_CORE_ADDR_H

#include <stddef.h>

#define XS_ADDR_PART_MAX 1023
#define XS_ADDR_JID_MAX 3071

/* A domainpart s[0..n) (borrowed), without a trailing dot: an IP literal in
 * brackets ("[2001:db8::1]"), or dot-separated non-empty labels of ASCII
 * letters, digits, '-' and '_' and of UTF-8 (IDN U-labels); an ASCII-only
 * name at most 253 bytes (DNS), any other at most 1023. Returns 1 or 0. */
int xs_addr_valid_domain(const char *s, size_t n);

/* A localpart: 1..1023 bytes of UTF-8 without controls, spaces or any of
 * " & ' / : < > @ (RFC 7622 §3.3.1). Returns 1 or 0. */
int xs_addr_valid_localpart(const char *s, size_t n);

/* A resourcepart: 1..1023 bytes of UTF-8 without controls. Returns 1 or 0. */
int xs_addr_valid_resource(const char *s, size_t n);

/* The parts of a JID, pointers into it (borrowed). The resource starts at
 * the first '/', and the localpart, if any, ends at the first '@' before it
 * (RFC 7622 §3.1); a trailing dot of the domain is left out of domain_len. */
struct xs_addr_jid {
    const char *local, *domain, *resource; /* local, resource NULL when absent */
    size_t local_len, domain_len, resource_len;
};

/* Splits and checks jid (NUL-terminated, borrowed) with the rules above,
 * at most XS_ADDR_JID_MAX bytes. Returns 1 with *out filled (out may be
 * NULL), or 0. */
int xs_addr_split_jid(const char *jid, struct xs_addr_jid *out);

/* xs_addr_split_jid() without the parts. */
int xs_addr_valid_jid(const char *jid);

/* 1 when s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF). */
int xs_addr_utf8_ok(const char *s, size_t n);

#endif
