/* The way out of the SIP transport set: the configured next hop, reached
 * over one connected UDP socket (its name resolved off the loop) or one
 * reused TCP connection (net/connect: every address tried under the
 * connect deadline, then a net/link). Users ask with xs_sip_tp_next_hop()
 * and hear about changes through the next_hop() callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "sip/sip_tp_int.h"

/* Our end of a connected socket, for the Via of requests we send. */
static void take_local(struct xs_sip_tp *tp, enum xs_sip_transport t,
                       const struct sockaddr_storage *ss)
{
    tp->local.transport = t;
    tp->local.port = xs_net_addr_ip((const struct sockaddr *)ss, tp->local.host,
                                    sizeof tp->local.host);
}

static void on_connected(void *ud, int status, uv_tcp_t *tcp)
{
    struct xs_sip_tp *tp = ud;
    tp->connecting = NULL;
    tp->out = XS__SIP_OUT_IDLE;
    if (status < 0) {
        xs_log(XS_LOG_WARN, "sip.next_hop",
               "state=connect_failed transport=%s host=%s port=%d reason=%s",
               xs_sip_tp_name(tp->hop_transport), tp->hop_host, tp->hop_port, xs_errname(status));
        xs__sip_notify(tp, status);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int rc = uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &len);
    struct xs__sip_conn *c = xs__sip_conn_new(tp, tcp, 1, tp->hop_transport);
    if (!c) {
        xs__sip_notify(tp, tp->hop_transport == XS_SIP_TLS ? XS_ETLS : XS_ENOMEM);
        return;
    }
    if (rc == 0)
        take_local(tp, tp->hop_transport, &ss);
    xs_link_set_keepalive(c->link, XS__SIP_KEEPALIVE_S);
    xs_link_set_idle(c->link, tp->lim.idle_ms, NULL);
    tp->out_conn = c;
    xs_log(XS_LOG_INFO, "sip.next_hop", "state=connected transport=%s host=%s peer=%s id=%llu",
           xs_sip_tp_name(tp->hop_transport), tp->hop_host, c->desc,
           (unsigned long long)c->id);
    /* Over TLS the way out is ready when the handshake is (conn_on_tls_ready). */
    if (tp->hop_transport == XS_SIP_TLS) {
        tp->out = XS__SIP_OUT_CONNECTING;
        return;
    }
    tp->out = XS__SIP_OUT_READY;
    xs__sip_notify(tp, 0);
}

static int out_connect(struct xs_sip_tp *tp)
{
    int rc = xs_net_connect(tp->loop, tp->hop_host, (uint16_t)tp->hop_port,
                            tp->lim.connect_ms / 1000.0, on_connected, tp, &tp->connecting);
    if (rc != 0)
        return rc == XS_EINVAL ? XS_EDNS : rc;
    tp->out = XS__SIP_OUT_CONNECTING;
    xs_log(XS_LOG_DEBUG, "sip.next_hop", "state=connecting transport=%s host=%s port=%d",
           xs_sip_tp_name(tp->hop_transport), tp->hop_host, tp->hop_port);
    return XS_EAGAIN;
}

static int out_udp_open(struct xs_sip_tp *tp)
{
    const struct sockaddr *dst = (const struct sockaddr *)&tp->udp_addr;
    struct xs__sip_listener *l = calloc(1, sizeof *l);
    if (!l)
        return XS_ENOMEM;
    l->tp = tp;
    l->index = -1;
    l->transport = XS_SIP_UDP;
    xs__sip_udp_init(tp, l);
    tp->open++;
    struct sockaddr_storage any;
    xs_net_addr_parse(dst->sa_family == AF_INET6 ? "::" : "0.0.0.0", 0, &any);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int rc = uv_udp_bind(&l->h.udp, (struct sockaddr *)&any, 0);
    rc = rc ? rc : uv_udp_connect(&l->h.udp, dst);
    /* Every response to what we send comes back on this socket. */
    if (rc == 0)
        xs__sip_udp_buffers(tp, l);
    rc = rc ? rc : uv_udp_getsockname(&l->h.udp, (struct sockaddr *)&ss, &len);
    rc = rc ? rc : uv_udp_recv_start(&l->h.udp, xs__sip_on_alloc, xs__sip_on_udp_recv);
    if (rc != 0) {
        uv_close((uv_handle_t *)&l->h.udp, xs__sip_on_counted_close);
        return XS_EIO;
    }
    take_local(tp, XS_SIP_UDP, &ss);
    tp->out_udp = l;
    tp->out = XS__SIP_OUT_READY;
    char peer[XS_NET_ADDR_STRLEN], local[XS_NET_ADDR_STRLEN];
    xs_log(XS_LOG_INFO, "sip.next_hop", "state=ready transport=udp host=%s peer=%s local=%s",
           tp->hop_host, xs_net_addr_format(dst, peer, sizeof peer),
           xs_net_addr_format((struct sockaddr *)&ss, local, sizeof local));
    return 0;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct xs__sip_resolve *r = (struct xs__sip_resolve *)req;
    struct xs_sip_tp *tp = r->tp;
    int abandoned = r->abandoned;
    free(r);
    tp->open--;
    if (abandoned) {
        uv_freeaddrinfo(res);
        xs__sip_maybe_finish(tp);
        return;
    }
    tp->resolving = NULL;
    tp->out = XS__SIP_OUT_IDLE;
    int found = 0;
    for (struct addrinfo *ai = res; ai && !found; ai = ai->ai_next)
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
            ai->ai_addrlen <= sizeof tp->udp_addr) {
            memcpy(&tp->udp_addr, ai->ai_addr, ai->ai_addrlen);
            found = 1;
        }
    uv_freeaddrinfo(res);
    if (status < 0 || !found) {
        xs_log(XS_LOG_WARN, "sip.next_hop", "state=resolve_failed transport=udp host=%s reason=%s",
               tp->hop_host, xs_errname(XS_EDNS));
        xs__sip_notify(tp, XS_EDNS);
        return;
    }
    int rc = out_udp_open(tp);
    xs__sip_notify(tp, rc);
}

/* A datagram next hop needs only its first address; a name is looked up
 * off the loop. */
static int out_udp_start(struct xs_sip_tp *tp)
{
    if (xs_net_addr_parse(tp->hop_host, tp->hop_port, &tp->udp_addr) == 0)
        return out_udp_open(tp);
    struct xs__sip_resolve *r = calloc(1, sizeof *r);
    if (!r)
        return XS_ENOMEM;
    r->tp = tp;
    char port[16];
    snprintf(port, sizeof port, "%d", tp->hop_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
    if (uv_getaddrinfo(tp->loop, &r->req, on_resolved, tp->hop_host, port, &hints) != 0) {
        free(r);
        return XS_EDNS;
    }
    tp->open++;
    tp->resolving = r;
    tp->out = XS__SIP_OUT_RESOLVING;
    xs_log(XS_LOG_DEBUG, "sip.next_hop", "state=resolving host=%s", tp->hop_host);
    return XS_EAGAIN;
}

int xs_sip_tp_next_hop(struct xs_sip_tp *tp, struct xs_sip_local *local)
{
    if (tp->closing)
        return XS_ECLOSED;
    if (!tp->hop_host[0])
        return XS_ENOTFOUND;
    switch (tp->out) {
    case XS__SIP_OUT_READY:
        *local = tp->local;
        return 0;
    case XS__SIP_OUT_RESOLVING:
    case XS__SIP_OUT_CONNECTING:
        return XS_EAGAIN;
    case XS__SIP_OUT_IDLE:
        break;
    }
    int rc = tp->hop_transport == XS_SIP_UDP ? out_udp_start(tp) : out_connect(tp);
    if (rc == 0)
        *local = tp->local;
    return rc;
}

int xs_sip_tp_send_next_hop(struct xs_sip_tp *tp, const char *data, size_t len)
{
    if (tp->closing || tp->out != XS__SIP_OUT_READY)
        return XS_ECLOSED;
    if (tp->out_conn)
        return xs__sip_conn_write(tp->out_conn, data, len);
    return xs__sip_udp_send(tp, &tp->out_udp->h.udp, NULL, data, len);
}

void xs__sip_out_drop(struct xs_sip_tp *tp)
{
    enum xs__sip_out_state was = tp->out;
    if (tp->resolving) {
        tp->resolving->abandoned = 1;
        uv_cancel((uv_req_t *)&tp->resolving->req);
        tp->resolving = NULL;
    }
    if (tp->connecting) {
        xs_net_connect_cancel(tp->connecting);
        tp->connecting = NULL;
    }
    if (tp->out_udp) {
        uv_close((uv_handle_t *)&tp->out_udp->h.udp, xs__sip_on_counted_close);
        tp->out_udp = NULL;
    }
    tp->out = XS__SIP_OUT_IDLE;
    if (tp->out_conn) {
        /* Notifies XS_ECLOSED itself. */
        xs__sip_conn_close(tp->out_conn, XS_ECLOSED);
        return;
    }
    if (was != XS__SIP_OUT_IDLE)
        xs__sip_notify(tp, XS_ECLOSED);
}
