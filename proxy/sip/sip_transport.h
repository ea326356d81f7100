/* SIP transports: UDP and TCP listeners, inbound TCP connections framed by
 * Content-Length, and the way out to the configured next hop (a connected
 * UDP socket, or one reused TCP connection). Bytes in, bytes out: the layer
 * above sees whole messages and answers through xs_sip_tp_reply(). TCP
 * connections are net/link streams, reached through net/connect; inbound
 * ones are capped in total and per source address. */
#ifndef XS_SIP_TRANSPORT_H
#define XS_SIP_TRANSPORT_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <stdint.h>
#include <uv.h>

#include "policy/policy.h"
#include "tls/tls.h"

/* Where a message came from: enough to send the answer back. */
struct xs_sip_peer {
    enum xs_sip_transport transport;
    int sock;      /* UDP: listener index, or -1 for the next-hop socket */
    uint64_t conn; /* TCP, TLS: connection id (ids are never reused) */
    struct sockaddr_storage addr;
    char desc[64]; /* "ip:port", for logs */
};

/* Our end of the way out, for the Via of requests we send. */
struct xs_sip_local {
    enum xs_sip_transport transport;
    char host[64];
    int port;
};

struct xs_sip_tp_cbs {
    /* One whole message (borrowed for the call). `oversize` is 1 when it
     * passed max_message (datagrams only; TCP refuses those itself). */
    void (*message)(void *ud, const struct xs_sip_peer *from, const char *data, size_t len,
                    int oversize);
    /* The way out changed: 0 ready (xs_sip_tp_next_hop now gives 0), or a
     * negative XS_E*: XS_EDNS / XS_EREFUSED / XS_ETIMEOUT / XS_EIO when it
     * could not be set up, XS_ECLOSED when the TCP connection to it was
     * lost. */
    void (*next_hop)(void *ud, int status);
};

struct xs_sip_tp_limits {
    size_t max_message;     /* bytes of one SIP message */
    size_t max_conns;       /* inbound TCP connections */
    size_t max_per_source;  /* inbound TCP connections from one IP address (0: no cap) */
    size_t out_max;         /* bytes queued for writing per TCP connection */
    unsigned idle_ms;       /* TCP connection idle timeout */
    unsigned first_idle_ms; /* the same until an inbound connection brought a whole
                             * message (at most idle_ms; 0: idle_ms), and the time
                             * it has from accept to bring one */
    unsigned connect_ms;    /* deadline for reaching the next hop over TCP, shared
                             * out among its addresses (0: the kernel's) */
    const char *warn_host;  /* agent for Warning headers on framing errors (borrowed, kept) */
    /* SO_RCVBUF and SO_SNDBUF of every UDP socket, bytes (0: the system's
     * default). The kernel caps them at net.core.rmem_max / wmem_max. */
    size_t udp_recv_buffer;
    size_t udp_send_buffer;
    /* Certificate for tls: listeners and context for a tls: next hop (the
     * transport holds its own reference); NULL when there is none, and then
     * tls: endpoints fail. */
    struct xs_tls_ctx *tls;
    /* sip.tls (strings borrowed for the call: the transport copies them).
     * With verify_ca a TLS peer's certificate must chain to the context's
     * CAs and name, outbound, tls_name (NULL: the next hop's host) and,
     * inbound, one of tls_peers ("*.example.org" allowed; none: the
     * outbound name). It is checked when the handshake completes, before
     * anything the peer sent is framed; a peer that fails is closed. Without
     * verify_ca the verdict is only logged. */
    int verify_ca;
    const char *tls_name;
    const char *const *tls_peers;
    size_t n_tls_peers;
    const char *local_name; /* the identity we present (NULL: the default one) */
    /* RFC 5626 §4.4.1: an idle TCP/TLS connection is pinged with CRLFCRLF
     * after this many ms of silence and closed when no CRLF answers within
     * pong_ms (0: no pings; a ping received is always answered). */
    unsigned keepalive_ms;
    unsigned pong_ms;
    /* Peers exempt from max_per_source and first_idle_ms (the partner ACL);
     * NULL: nobody is. Called at accept with the peer's address (borrowed). */
    int (*is_trusted)(void *ud, const struct sockaddr *sa);
    void *trusted_ud;
};

struct xs_sip_tp;
struct xs_tls_ctx;

/* "udp", "tcp" or "tls", for logs. */
const char *xs_sip_tp_name(enum xs_sip_transport t);

/* Binds every listener in cfg->sip_listen; `lim` and `cbs` are copied.
 * Returns 0 or a negative XS_E* (after logging which listener failed). */
int xs_sip_tp_start(uv_loop_t *loop, const struct xs_config *cfg,
                    const struct xs_sip_tp_limits *lim, const struct xs_sip_tp_cbs *cbs, void *ud,
                    struct xs_sip_tp **out);

/* Takes new limits and next hop (ep borrowed). A changed next hop drops the
 * current way out (pending users get next_hop(XS_ECLOSED)). */
void xs_sip_tp_reconfigure(struct xs_sip_tp *tp, const struct xs_sip_tp_limits *lim,
                           const struct xs_sip_endpoint *ep);

/* Sends a response toward a peer a request came from. XS_ECLOSED when its
 * connection is gone; the bytes are then dropped. */
int xs_sip_tp_reply(struct xs_sip_tp *tp, const struct xs_sip_peer *to, const char *data,
                    size_t len);

/* 0 with *local filled when the way out is ready; XS_EAGAIN when it is being
 * set up (next_hop() will follow); XS_ENOTFOUND when none is configured;
 * XS_ECLOSED while closing. */
int xs_sip_tp_next_hop(struct xs_sip_tp *tp, struct xs_sip_local *local);
int xs_sip_tp_send_next_hop(struct xs_sip_tp *tp, const char *data, size_t len);

/* The port listener i is bound to (after port 0 was asked), or -1. */
int xs_sip_tp_port(const struct xs_sip_tp *tp, size_t i);

/* The verdict on the last TLS connection made to the next hop, taken when
 * its handshake completed (kept when the verdict closed it): 0 with *peer
 * and *desc (borrowed, valid until the next connection out) filled,
 * XS_ENOTFOUND when no TLS handshake to it completed since the last
 * connection began. */
int xs_sip_tp_out_tls(const struct xs_sip_tp *tp, struct xs_tls_peer *peer, const char **desc);

/* Closes everything; `done` runs from the last close callback, after which
 * tp is freed. No callback of cbs runs once this is called. */
void xs_sip_tp_close(struct xs_sip_tp *tp, void (*done)(void *ud), void *ud);
/* Closes the TCP and TLS listeners (no new connection); the connections
 * there are, and UDP, keep working until xs_sip_tp_close. */
void xs_sip_tp_stop_accepting(struct xs_sip_tp *tp);

#endif
