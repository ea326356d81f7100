/* The inside of the SIP transport set, shared by sip_transport.c
 * (listeners, connections, replies), sip_udp.c (datagrams) and
 * sip_nexthop.c (the way out).
 * Nothing outside those files includes this; its names carry the
 * internal prefix xs__sip_ (libuv's uv__ habit) so they cannot be taken
 * for the module's API or collide with another file's internals. */
#ifndef XS_SIP_TP_INT_H
#define XS_SIP_TP_INT_H

#include <netinet/in.h>
#include <uv.h>

#include "core/buf.h"
#include "net/addr.h"
#include "net/connect.h"
#include "net/link.h"
#include "sip/sip_transport.h"
#include "tls/tls.h"

/* One receive buffer per transport set: libuv calls the receive callbacks
 * right after the allocation, so the buffer is never shared between two
 * reads. UDP sockets read with recvmmsg (UV_UDP_RECVMMSG), which cuts the
 * buffer into slots of the largest possible datagram and fills up to 20 of
 * them in one system call (libuv's own cap), so the buffer holds that many:
 * a burst is taken off the kernel's queue many datagrams per loop turn
 * instead of one. TCP reads go through the link's own buffer. */
#define XS__SIP_DGRAM_MAX 65536
#define XS__SIP_RECV_SLOTS 20
/* Datagrams read from one UDP socket in one loop turn beyond libuv's own
 * batch (see udp_drain in sip_transport.c). */
#define XS__SIP_UDP_TURN_MAX 1024
#define XS__SIP_LISTEN_BACKLOG 128
/* Refused connections are logged at most this many times a second; a
 * flood must not become a log flood. */
#define XS__SIP_REFUSALS_LOGGED_PER_S 10
/* Keepalive probes on the connection to the next hop, so a peer that
 * vanished without a FIN is noticed while no request is outstanding. */
#define XS__SIP_KEEPALIVE_S 60

enum xs__sip_out_state {
    XS__SIP_OUT_IDLE = 0,
    XS__SIP_OUT_RESOLVING, /* UDP: the next hop's name is being looked up */
    XS__SIP_OUT_CONNECTING,
    XS__SIP_OUT_READY,
};

/* Every UDP and listening handle's data points at a struct that starts with
 * its transport set, so the shared allocation callback finds the buffer. */
struct xs__sip_listener {
    struct xs_sip_tp *tp;
    union {
        uv_udp_t udp;
        uv_tcp_t tcp;
    } h;
    enum xs_sip_transport transport;
    int index; /* -1: the socket toward the next hop */
    int port;
};

/* One TCP connection, in or out, on an xs_link. Framing state is kept
 * between reads so each read costs what it brought, not what is buffered
 * (audit L2): the first `scanned` bytes of `in` are known to hold no
 * CRLFCRLF, and `need` is the whole message's length once its header
 * section has been read. */
struct xs__sip_conn {
    struct xs_sip_tp *tp;
    struct xs_link *link; /* owned; frees itself and then calls conn_closed */
    uint64_t id;
    int outbound;
    enum xs_sip_transport transport; /* XS_SIP_TCP or XS_SIP_TLS */
    int trusted;  /* exempt from the per-source cap (xs_sip_tp_limits.is_trusted) */
    int closing;  /* no more input is framed, no more writes are taken */
    int messages; /* complete messages framed so far */
    int paused;   /* not read nor framed while too much of our output waits for the peer */
    int framing;  /* inside conn_frame: a resume must not frame again */
    uint64_t opened; /* loop ms at accept */
    uint64_t heard;  /* loop ms when the peer last sent anything */
    uint64_t pinged; /* loop ms when our unanswered CRLFCRLF went out, 0: none */
    unsigned crlf;   /* CR and LF bytes seen in a row between messages */
    int checked;     /* TLS: `verdict` holds the check made at the handshake */
    struct xs_tls_peer verdict;
    struct xs_buf in;
    size_t scanned; /* bytes of `in` searched for the header end in vain */
    size_t need;    /* length of the message at the head of `in` once known, else 0 */
    struct xs__sip_conn *prev, *next;
    struct sockaddr_storage addr;
    char desc[XS_NET_ADDR_STRLEN];
};

struct xs__sip_resolve {
    uv_getaddrinfo_t req;
    struct xs_sip_tp *tp;
    int abandoned;
};

struct xs_sip_tp {
    uv_loop_t *loop;
    struct xs_sip_tp_limits lim;
    struct xs_sip_tp_cbs cbs;
    void *ud;
    struct xs__sip_listener *listeners;
    size_t n_listeners;
    struct xs__sip_conn *conns;
    size_t n_inbound;
    uint64_t next_conn_id;
    uint64_t refuse_window; /* loop ms when the current second of refusal logging began */
    unsigned refuse_lines;
    unsigned long long refuse_unlogged;
    /* Sweeps the connections for CRLF keepalives (and makes close always
     * end in a close callback). */
    uv_timer_t keep;
    /* Owned copies of the sip.tls strings lim points at. */
    char tls_name[256];
    char local_name[256];
    char **tls_peers;
    size_t n_tls_peers;

    char hop_host[256];
    int hop_port;
    enum xs_sip_transport hop_transport;
    enum xs__sip_out_state out;
    struct xs__sip_resolve *resolving;  /* UDP */
    struct xs_connect_req *connecting; /* TCP; cancelled when dropped */
    struct sockaddr_storage udp_addr; /* where datagrams to the next hop go */
    struct xs__sip_listener *out_udp;
    struct xs__sip_conn *out_conn;
    struct xs_sip_local local;

    int closing;
    size_t open; /* handles, links and requests whose callbacks are still due */
    void (*done)(void *ud);
    void *done_ud;
    char *rbuf; /* XS__SIP_RECV_SLOTS * XS__SIP_DGRAM_MAX bytes, owned */
};

/* A libuv error in the gateway's error space, for logs. */
int xs__sip_from_uv(int uv_err);
/* Frees tp and runs its done callback once it is closing and nothing is open. */
void xs__sip_maybe_finish(struct xs_sip_tp *tp);
void xs__sip_on_counted_close(uv_handle_t *h);
void xs__sip_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
void xs__sip_on_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                         const struct sockaddr *addr, unsigned flags);
/* Initializes l's UDP handle for recvmmsg reading. */
void xs__sip_udp_init(struct xs_sip_tp *tp, struct xs__sip_listener *l);
/* Sets a bound UDP socket's kernel buffers to the limits' sizes (0: the
 * system's default) and logs what the kernel granted when it is less. */
void xs__sip_udp_buffers(struct xs_sip_tp *tp, struct xs__sip_listener *l);
/* Tells the layer above the way out changed, unless tp is closing. */
void xs__sip_notify(struct xs_sip_tp *tp, int status);
/* data borrowed; copied when it cannot leave at once. addr NULL on a
 * connected socket. */
int xs__sip_udp_send(struct xs_sip_tp *tp, uv_udp_t *h, const struct sockaddr *addr,
                     const char *data, size_t len);
/* Puts a connected TCP handle (taken: malloc()ed, closed and freed by the
 * link) on a link and links the connection into tp; for XS_SIP_TLS starts
 * TLS on it (server side when inbound, else client with the next hop's
 * name as SNI). NULL on failure (tcp is then closed and freed). */
struct xs__sip_conn *xs__sip_conn_new(struct xs_sip_tp *tp, uv_tcp_t *tcp, int outbound,
                                      enum xs_sip_transport transport);
/* Closes at once (what is queued gets the link's short grace). The
 * connection is freed from the link's close callback. */
void xs__sip_conn_close(struct xs__sip_conn *c, int reason);
/* data borrowed (the link copies it). */
int xs__sip_conn_write(struct xs__sip_conn *c, const char *data, size_t len);
/* Forgets the way out; whoever waited on it hears XS_ECLOSED. */
void xs__sip_out_drop(struct xs_sip_tp *tp);

#endif
