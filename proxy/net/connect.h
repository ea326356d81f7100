/* Outgoing TCP connections: a host name (or IP literal) or a list of
 * addresses, tried one after the other under one deadline that is shared
 * out among them, so a black-holed first address cannot use up the time
 * the next one needs. */
#ifndef XS_NET_CONNECT_H
#define XS_NET_CONNECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* status 0: `tcp` is connected, TCP_NODELAY set, tcp->data NULL. It is
 * returned owned: it was malloc()ed, and the caller must uv_close() it and
 * free() it in the close callback. Otherwise `tcp` is NULL and status says
 * why: XS_ENOTFOUND (the name does not exist or has no address), XS_EDNS
 * (the lookup failed: SERVFAIL, a bad answer), XS_EREFUSED (the last address
 * tried refused), XS_ETIMEOUT (the deadline passed, the name server did not
 * answer in time, or the last address tried did not answer within its
 * share), XS_EIO, XS_ENOMEM. The callback never runs before the function
 * that started the request returns. */
typedef void (*xs_connect_cb)(void *ud, int status, uv_tcp_t *tcp);
struct xs_connect_req;

/* Connects to host:port. An IP literal (IPv6 with or without brackets) is
 * used as it is; a name is resolved with the loop's resolver (xs_dns_addr),
 * whose addresses are tried in its order. Everything happens within
 * timeout_s (<= 0: no deadline of our own, the resolver's and the kernel's
 * SYN retries decide). Each address gets what is left of the deadline
 * divided by the addresses left, the last one all that remains. *out (may be
 * NULL) lets the caller cancel. Returns XS_EINVAL, or what xs_dns_addr
 * refuses with (XS_ELIMIT, XS_ESTATE when the loop has no resolver). */
int xs_net_connect(uv_loop_t *loop, const char *host, uint16_t port, double timeout_s,
                   xs_connect_cb cb, void *ud, struct xs_connect_req **out);

/* xs_net_connect_flags: skip every address xs_net_addr_special() names; when
 * that leaves none, the connect fails with XS_EPOLICY. For peers nobody
 * vouched for (open federation), whose DNS could aim us at internal hosts. */
#define XS_NET_PUBLIC_ONLY 1

/* xs_net_connect with XS_NET_* flags. */
int xs_net_connect_flags(uv_loop_t *loop, const char *host, uint16_t port, double timeout_s,
                         int flags, xs_connect_cb cb, void *ud, struct xs_connect_req **out);

/* The same over n (1..32) addresses already known (`addrs` borrowed,
 * copied), in order. XS_EINVAL for n out of range or a family other than
 * AF_INET/AF_INET6. */
int xs_net_connect_addrs(uv_loop_t *loop, const struct sockaddr_storage *addrs, size_t n,
                         double timeout_s, xs_connect_cb cb, void *ud,
                         struct xs_connect_req **out);

/* After cancel the callback is never called and any half-open socket is
 * closed. The request is freed by the loop after its callback has run or after
 * cancel, so the caller forgets its pointer in either place: cancelling after
 * the callback is a use after free. */
void xs_net_connect_cancel(struct xs_connect_req *req);

#endif
