/* The inside of the SIP transport set, shared by sip_transport.c
 * (listeners, connections, replies) and sip_nexthop.c (the way out).
 * Nothing outside those two files includes this. */
#ifndef XS_SIP_TP_INT_H
#define XS_SIP_TP_INT_H

#include <netinet/in.h>
#include <uv.h>

#include "core/buf.h"
#include "sip/sip_transport.h"

/* One read buffer per transport set: libuv calls the read callback right
 * after the allocation, so the buffer is never shared between two reads. It
 * holds the largest possible UDP datagram. */
#define READ_BUF 65536
#define ADDRS_MAX 4
#define LISTEN_BACKLOG 128
#define DRAIN_MS 2000

enum out_state { OUT_IDLE = 0, OUT_RESOLVING, OUT_CONNECTING, OUT_READY };

/* Every handle's data points at a struct that starts with its transport
 * set, so the shared allocation callback can find the read buffer. */
struct listener {
    struct xs_sip_tp *tp;
    union {
        uv_udp_t udp;
        uv_tcp_t tcp;
    } h;
    enum xs_sip_transport transport;
    int index; /* -1: the socket toward the next hop */
    int port;
};

struct conn {
    struct xs_sip_tp *tp;
    uv_tcp_t tcp;
    uv_timer_t timer; /* idle, then the drain grace period */
    uv_connect_t connect;
    uv_shutdown_t shutdown;
    uint64_t id;
    int outbound;
    int closing;
    int draining;
    int drain_reason;
    int handles;
    size_t addr_i;
    struct xs_buf in;
    struct conn *prev, *next;
    char desc[64];
    struct sockaddr_storage addr;
};

struct resolve {
    uv_getaddrinfo_t req;
    struct xs_sip_tp *tp;
    int abandoned;
};

struct xs_sip_tp {
    uv_loop_t *loop;
    struct xs_sip_tp_limits lim;
    struct xs_sip_tp_cbs cbs;
    void *ud;
    struct listener *listeners;
    size_t n_listeners;
    struct conn *conns;
    size_t n_inbound;
    uint64_t next_conn_id;
    uv_timer_t keep; /* so close always ends in a close callback */

    char hop_host[256];
    int hop_port;
    enum xs_sip_transport hop_transport;
    enum out_state out;
    struct resolve *resolving;
    struct sockaddr_storage addrs[ADDRS_MAX];
    size_t n_addrs;
    struct listener *out_udp;
    struct conn *out_conn;
    struct xs_sip_local local;

    int closing;
    size_t open; /* handles and requests whose callbacks are still due */
    void (*done)(void *ud);
    void *done_ud;
    char rbuf[READ_BUF];
};

void xs_sip_tp_addr_desc(const struct sockaddr *sa, char *out, size_t n, int *port);
int xs_sip_tp_parse_ip(const char *host, int port, struct sockaddr_storage *ss);
/* Frees tp and runs its done callback once it is closing and nothing is open. */
void xs_sip_tp_maybe_finish(struct xs_sip_tp *tp);
void xs_sip_tp_on_counted_close(uv_handle_t *h);
void xs_sip_tp_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
void xs_sip_tp_on_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                           const struct sockaddr *addr, unsigned flags);
/* Tells the layer above the way out changed, unless tp is closing. */
void xs_sip_tp_notify(struct xs_sip_tp *tp, int status);
/* data borrowed; copied when it cannot leave at once. addr NULL on a
 * connected socket. */
int xs_sip_tp_udp_send(struct xs_sip_tp *tp, uv_udp_t *h, const struct sockaddr *addr,
                       const char *data, size_t len);
/* Returns a connection with both handles initialised and linked into tp;
 * NULL on OOM. Freed by the close callbacks after xs_sip_tp_conn_close. */
struct conn *xs_sip_tp_conn_new(struct xs_sip_tp *tp, int outbound);
void xs_sip_tp_conn_close(struct conn *c, int reason);
/* Reading, TCP_NODELAY and the idle timer for a connected socket. */
void xs_sip_tp_conn_started(struct conn *c);
int xs_sip_tp_conn_write(struct conn *c, const char *data, size_t len);
/* Forgets the way out; whoever waited on it hears XS_ECLOSED. */
void xs_sip_tp_out_drop(struct xs_sip_tp *tp);

#endif
