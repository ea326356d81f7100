/* The SIP peers the gateway accepts requests from: a list of IPv4 and IPv6
 * networks ("10.0.0.5", "10.0.0.0/24", "::1", "fd00::/8"), matched against
 * the transport source of a request (the UDP source address, the TCP peer).
 * SIP carries no proof of who sent a request, so this list is what stands
 * between the Internet and a MESSAGE "From:" any of our users (audit C1).
 * The transports also use it to exempt trusted peers from per-source caps.
 *
 * An IPv4-mapped IPv6 source (::ffff:a.b.c.d, what a dual-stack socket
 * reports for an IPv4 peer) is matched as the IPv4 address it carries. */
#ifndef XS_SIP_SIP_ACL_H
#define XS_SIP_SIP_ACL_H

#include <stddef.h>
#include <sys/socket.h>

struct xs_sip_acl;

/* A new, empty list (it allows nobody); NULL on OOM. Free with
 * xs_sip_acl_free. */
struct xs_sip_acl *xs_sip_acl_new(void);
void xs_sip_acl_free(struct xs_sip_acl *acl);

/* Adds one entry written "ADDRESS" or "ADDRESS/PREFIX" (entry borrowed).
 * Bits past the prefix are ignored. Returns 0, XS_EINVAL when the entry is
 * not an address or the prefix is out of range, XS_ELIMIT past 1024 entries,
 * XS_ENOMEM. */
int xs_sip_acl_add(struct xs_sip_acl *acl, const char *entry);

/* Adds the single address of sa (borrowed; AF_INET or AF_INET6, the port is
 * ignored). Returns 0, XS_EINVAL for another family, XS_ENOMEM. */
int xs_sip_acl_add_addr(struct xs_sip_acl *acl, const struct sockaddr *sa);

/* 1 when sa's address (port ignored) falls in one of the entries, else 0;
 * 0 for a NULL list. Both borrowed. */
int xs_sip_acl_allows(const struct xs_sip_acl *acl, const struct sockaddr *sa);

/* Number of entries. */
size_t xs_sip_acl_count(const struct xs_sip_acl *acl);

#endif
