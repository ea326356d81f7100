/* Name resolution on the loop: one resolver per loop (c-ares, driven by
 * uv_poll and uv_timer handles), with a bounded number of lookups in flight,
 * a hard deadline per lookup, and bounded positive and negative caches. No
 * lookup waits behind another, and nothing here blocks the loop or uses
 * libuv's thread pool. */
#ifndef XS_NET_DNS_H
#define XS_NET_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct xs_dns;

/* Zero in any field means its default (in brackets). */
struct xs_dns_opts {
    /* Servers as "ip:port,ip:port" (IPv6 as "[ip]:port"); NULL: the
     * system's resolv.conf, read once when the resolver is made. */
    const char *servers;
    /* c-ares' timeout per try [2000] and tries per server [2]. Whatever
     * c-ares' own backoff would do, a lookup ends within their product. */
    unsigned timeout_ms;
    unsigned tries;
    /* Lookups on the wire at once [1024]; more fail at once with XS_ELIMIT
     * rather than wait. One past its deadline counts until c-ares gives up
     * its retries (at most timeout_ms x (2^tries - 1) per server). A lookup
     * holds about 9 KiB, so the default bounds them near 9 MiB; keeping
     * the budget full takes some 170 new never-answered names a second. */
    unsigned max_inflight;
    unsigned neg_ttl_s;                    /* failures remembered [30] */
    unsigned pos_min_ttl_s, pos_max_ttl_s; /* answers kept within [5, 300] s */
    unsigned cache_max;                    /* entries in each cache [512] */
};

/* Makes the loop's resolver. The resolver belongs to the loop: it is kept
 * in loop->data, which nothing else in the gateway uses, so that code that
 * holds only the loop (connects, s2s streams, tests) reaches it without a
 * parameter threaded through every layer. loop->data must be NULL before
 * (uv_loop_init keeps whatever it held): XS_EEXISTS when it is not. XS_EDNS
 * when c-ares cannot start (an unreadable resolv.conf is not that: c-ares
 * then asks 127.0.0.1), XS_EINVAL for a bad `servers`. `opts` (may be NULL)
 * is borrowed; `*out` is returned owned and released with xs_dns_close. */
int xs_dns_new(uv_loop_t *loop, const struct xs_dns_opts *opts, struct xs_dns **out);

/* The loop's resolver, or NULL. */
struct xs_dns *xs_dns_of(uv_loop_t *loop);

/* Ends every lookup still running (their callbacks run now, with
 * XS_ECLOSED), closes the handles, clears loop->data and frees the resolver;
 * `done` (may be NULL) runs when the last handle has closed. */
void xs_dns_close(struct xs_dns *dns, void (*done)(void *ud), void *ud);

/* Counters, for tests and logs. */
struct xs_dns_stats {
    unsigned long long queries;    /* lookups sent to c-ares */
    unsigned long long cache_hits; /* answered from either cache */
    unsigned long long refused;    /* refused with XS_ELIMIT */
    unsigned inflight;             /* on the wire now, as max_inflight counts */
};
void xs_dns_stats(const struct xs_dns *dns, struct xs_dns_stats *out);

struct xs_dns_target {
    char host[256];
    uint16_t port;
    uint16_t priority;
    uint16_t weight;
};

/* status 0: targets[0..n) in the order to try them (RFC 2782: priority
 * ascending, weighted random within a priority). A domain without SRV
 * records (NXDOMAIN or no data for the SRV name) gives one target
 * {domain, default_port} (RFC 6120 section 3.2.2 fallback); a single "."
 * target gives XS_ENOTFOUND. Failures: XS_ETIMEOUT (no answer within the
 * deadline), XS_EDNS (SERVFAIL, refused, malformed answer), XS_ECLOSED (the
 * resolver closed), XS_ENOMEM. `targets` is borrowed for the call. */
typedef void (*xs_dns_srv_cb)(void *ud, int status, const struct xs_dns_target *targets, size_t n);

/* status 0: addrs[0..n) (n >= 1, at most 32), each with `port` set, in the
 * order to try them. XS_ENOTFOUND: the name does not exist or has no
 * address; otherwise as for SRV. `addrs` is borrowed for the call. */
typedef void (*xs_dns_addr_cb)(void *ud, int status, const struct sockaddr_storage *addrs,
                               size_t n);

struct xs_dns_req;

/* Looks up _<service>._tcp.<domain> ("xmpp-server") with the loop's
 * resolver. *out (may be NULL) lets the caller cancel: after xs_dns_cancel
 * the callback is never called. The callback never runs before xs_dns_srv
 * returns, and the request is freed right after it, so neither cancel it
 * then nor keep the pointer. An IP literal domain is answered as
 * {domain, default_port} without a lookup. At most 32 targets. Returns
 * XS_EINVAL for a malformed service or domain, XS_ELIMIT when max_inflight
 * lookups are on the wire already, XS_ESTATE when the loop has no resolver. */
int xs_dns_srv(uv_loop_t *loop, const char *service, const char *domain, uint16_t default_port,
               xs_dns_srv_cb cb, void *ud, struct xs_dns_req **out);

/* Looks up the A and AAAA records of `host` (the hosts file first, as
 * getaddrinfo does), for a connect to `port`. Same rules for *out, the
 * callback and the return values as xs_dns_srv; the caller handles IP
 * literals itself. */
int xs_dns_addr(uv_loop_t *loop, const char *host, uint16_t port, xs_dns_addr_cb cb, void *ud,
                struct xs_dns_req **out);

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
