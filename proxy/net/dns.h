/* Name resolution off the loop: SRV lookups run res_nquery in libuv's thread
 * pool, address lookups use uv_getaddrinfo. Nothing here blocks the loop. */
#ifndef XS_NET_DNS_H
#define XS_NET_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct xs_dns_target {
    char host[256];
    uint16_t port;
    uint16_t priority;
    uint16_t weight;
};

/* status 0: targets[0..n) in the order to try them (RFC 2782: priority
 * ascending, weighted random within a priority). For XMPP server lookups a
 * domain without SRV records gives one target {domain, default_port}
 * (RFC 6120 §3.2.2 fallback); a single "." target gives XS_ENOTFOUND. Other
 * failures: XS_EDNS. `targets` is borrowed for the call. */
typedef void (*xs_dns_srv_cb)(void *ud, int status, const struct xs_dns_target *targets, size_t n);

struct xs_dns_req;

/* Looks up _<service>._tcp.<domain> ("xmpp-server"). *out (may be NULL) lets
 * the caller cancel: after xs_dns_cancel the callback is never called. The
 * callback never runs before xs_dns_srv returns, and the request is freed
 * right after it, so neither cancel it then nor keep the pointer. An IP
 * literal domain is answered as {domain, default_port} without a lookup.
 * At most 32 targets. Returns XS_EINVAL for a malformed service or domain. */
int xs_dns_srv(uv_loop_t *loop, const char *service, const char *domain, uint16_t default_port,
               xs_dns_srv_cb cb, void *ud, struct xs_dns_req **out);
void xs_dns_cancel(struct xs_dns_req *req);

/* Parses a DNS response carrying SRV answers (wire format) into targets
 * sorted by priority ascending, then weight descending, answer order on ties,
 * without the random step; for tests and the fuzzer. SRV records past `max`
 * are dropped; the root target is written as ".". Returns the number of
 * targets (<= max), XS_ENOTFOUND for NXDOMAIN, XS_EDNS for another error
 * rcode, XS_EPROTO for anything malformed (truncation, pointer loops, names
 * over 255 bytes or with bytes a host name cannot have). */
int xs_dns_parse_srv(const unsigned char *msg, size_t len, struct xs_dns_target *targets,
                     size_t max);

/* The RFC 2782 step xs_dns_srv applies after parsing: within each run of
 * equal priority (targets must already be sorted by priority), reorders by
 * weighted random selection. *seed is the caller's generator state (any
 * value; updated), so tests can repeat a sequence. */
void xs_dns_weighted_order(struct xs_dns_target *targets, size_t n, uint64_t *seed);

/* 1 when `sa` (AF_INET or AF_INET6) is an address a stranger's DNS must not
 * be able to point us at: unspecified, loopback, private (RFC 1918), shared
 * (100.64/10), link-local, unique-local, site-local, multicast, broadcast and
 * reserved, documentation and benchmarking ranges, IETF protocol blocks,
 * and IPv6 forms that carry such an IPv4 address (mapped, NAT64, 6to4).
 * 0 for a global unicast address; 1 for any other family. */
int xs_net_addr_special(const struct sockaddr *sa);
/* 1 when `s` is an IPv4 or IPv6 address written out, not a name. */
int xs_net_is_ip_literal(const char *s);

#endif
