/* Name resolution off the loop: SRV lookups run res_nquery in libuv's thread
 * pool, address lookups use uv_getaddrinfo. Nothing here blocks the loop. */
#ifndef XS_NET_DNS_H
#define XS_NET_DNS_H

#include <stddef.h>
#include <stdint.h>
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
 * the caller cancel: after xs_dns_cancel the callback is never called. */
int xs_dns_srv(uv_loop_t *loop, const char *service, const char *domain, uint16_t default_port,
               xs_dns_srv_cb cb, void *ud, struct xs_dns_req **out);
void xs_dns_cancel(struct xs_dns_req *req);

/* Parses a DNS response carrying SRV answers (wire format) into targets
 * sorted by priority then weight, without the random step; for tests and the
 * fuzzer. Returns the number of targets (<= max), or a negative XS_E*. */
int xs_dns_parse_srv(const unsigned char *msg, size_t len, struct xs_dns_target *targets,
                     size_t max);

/* Connects a TCP handle to host:port, resolving host with uv_getaddrinfo and
 * trying each address in turn. status 0: `tcp` is connected (owned by the
 * caller, who must uv_close it); otherwise `tcp` is NULL and status says why
 * (XS_EDNS, XS_EREFUSED, XS_ETIMEOUT, XS_EIO). TCP_NODELAY is set. */
typedef void (*xs_connect_cb)(void *ud, int status, uv_tcp_t *tcp);
struct xs_connect_req;
int xs_net_connect(uv_loop_t *loop, const char *host, uint16_t port, double timeout_s,
                   xs_connect_cb cb, void *ud, struct xs_connect_req **out);
/* After cancel the callback is never called and any half-open socket is closed. */
void xs_net_connect_cancel(struct xs_connect_req *req);

#endif
