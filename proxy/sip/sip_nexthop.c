/* The way out of the SIP transport set: the configured next hop, resolved
 * off the loop, reached over one connected UDP socket or one reused TCP
 * connection. Users ask with xs_sip_tp_next_hop() and hear about changes
 * through the next_hop() callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "sip/sip_tp_int.h"

static int out_connect(struct xs_sip_tp *tp, size_t i);

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct xs_sip_tp *tp = c->tp;
    if (c->closing)
        return;
    if (status < 0) {
        xs_log(XS_LOG_WARN, "sip.next_hop", "state=connect_failed host=%s peer=%s reason=%s",
               tp->hop_host, c->desc, uv_err_name(status));
        size_t next = c->addr_i + 1;
        tp->out_conn = NULL;
        tp->out = OUT_IDLE;
        xs_sip_tp_conn_close(c, XS_EREFUSED);
        int rc = next < tp->n_addrs ? out_connect(tp, next) : XS_EREFUSED;
        if (rc != XS_EAGAIN)
            xs_sip_tp_notify(tp, rc);
        return;
    }
    xs_sip_tp_conn_started(c);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    tp->local.transport = XS_SIP_TCP;
    if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char desc[64];
        xs_sip_tp_addr_desc((struct sockaddr *)&ss, desc, sizeof desc, &tp->local.port);
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, tp->local.host, sizeof tp->local.host);
        else
            uv_ip6_name((struct sockaddr_in6 *)&ss, tp->local.host, sizeof tp->local.host);
    }
    tp->out = OUT_READY;
    xs_log(XS_LOG_INFO, "sip.next_hop", "state=connected transport=tcp host=%s peer=%s id=%llu",
           tp->hop_host, c->desc, (unsigned long long)c->id);
    xs_sip_tp_notify(tp, 0);
}

static int out_connect(struct xs_sip_tp *tp, size_t i)
{
    for (; i < tp->n_addrs; i++) {
        struct conn *c = xs_sip_tp_conn_new(tp, 1);
        if (!c)
            return XS_ENOMEM;
        c->addr_i = i;
        c->addr = tp->addrs[i];
        xs_sip_tp_addr_desc((struct sockaddr *)&c->addr, c->desc, sizeof c->desc, NULL);
        c->connect.data = c;
        if (uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&c->addr, on_connect) == 0) {
            tp->out_conn = c;
            tp->out = OUT_CONNECTING;
            return XS_EAGAIN;
        }
        xs_sip_tp_conn_close(c, XS_EREFUSED);
    }
    return XS_EREFUSED;
}

static int out_udp_open(struct xs_sip_tp *tp)
{
    const struct sockaddr *dst = (const struct sockaddr *)&tp->addrs[0];
    struct listener *l = calloc(1, sizeof *l);
    if (!l)
        return XS_ENOMEM;
    l->tp = tp;
    l->index = -1;
    l->transport = XS_SIP_UDP;
    uv_udp_init(tp->loop, &l->h.udp);
    l->h.udp.data = l;
    tp->open++;
    struct sockaddr_storage any;
    xs_sip_tp_parse_ip(dst->sa_family == AF_INET6 ? "::" : "0.0.0.0", 0, &any);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_udp_bind(&l->h.udp, (struct sockaddr *)&any, 0) != 0 ||
        uv_udp_connect(&l->h.udp, dst) != 0 ||
        uv_udp_getsockname(&l->h.udp, (struct sockaddr *)&ss, &len) != 0 ||
        uv_udp_recv_start(&l->h.udp, xs_sip_tp_on_alloc, xs_sip_tp_on_udp_recv) != 0) {
        uv_close((uv_handle_t *)&l->h.udp, xs_sip_tp_on_counted_close);
        return XS_EIO;
    }
    char desc[64];
    tp->local.transport = XS_SIP_UDP;
    xs_sip_tp_addr_desc((struct sockaddr *)&ss, desc, sizeof desc, &tp->local.port);
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, tp->local.host, sizeof tp->local.host);
    else
        uv_ip6_name((struct sockaddr_in6 *)&ss, tp->local.host, sizeof tp->local.host);
    tp->out_udp = l;
    tp->out = OUT_READY;
    xs_sip_tp_addr_desc(dst, desc, sizeof desc, NULL);
    xs_log(XS_LOG_INFO, "sip.next_hop", "state=ready transport=udp host=%s peer=%s local=%s:%d",
           tp->hop_host, desc, tp->local.host, tp->local.port);
    return 0;
}

static int out_setup(struct xs_sip_tp *tp)
{
    return tp->hop_transport == XS_SIP_TCP ? out_connect(tp, 0) : out_udp_open(tp);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct resolve *r = (struct resolve *)req;
    struct xs_sip_tp *tp = r->tp;
    int abandoned = r->abandoned;
    free(r);
    tp->open--;
    if (abandoned) {
        uv_freeaddrinfo(res);
        xs_sip_tp_maybe_finish(tp);
        return;
    }
    tp->resolving = NULL;
    tp->out = OUT_IDLE;
    tp->n_addrs = 0;
    for (struct addrinfo *ai = res; ai && tp->n_addrs < ADDRS_MAX; ai = ai->ai_next)
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
            ai->ai_addrlen <= sizeof tp->addrs[0])
            memcpy(&tp->addrs[tp->n_addrs++], ai->ai_addr, ai->ai_addrlen);
    uv_freeaddrinfo(res);
    if (status < 0 || tp->n_addrs == 0) {
        xs_log(XS_LOG_WARN, "sip.next_hop", "state=resolve_failed host=%s reason=%s", tp->hop_host,
               status < 0 ? uv_err_name(status) : "no address");
        xs_sip_tp_notify(tp, XS_EDNS);
        return;
    }
    int rc = out_setup(tp);
    if (rc != XS_EAGAIN)
        xs_sip_tp_notify(tp, rc);
}

static int out_start(struct xs_sip_tp *tp)
{
    if (xs_sip_tp_parse_ip(tp->hop_host, tp->hop_port, &tp->addrs[0]) == 0) {
        tp->n_addrs = 1;
        return out_setup(tp);
    }
    struct resolve *r = calloc(1, sizeof *r);
    if (!r)
        return XS_ENOMEM;
    r->tp = tp;
    char port[16];
    snprintf(port, sizeof port, "%d", tp->hop_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype =
                                 tp->hop_transport == XS_SIP_TCP ? SOCK_STREAM : SOCK_DGRAM};
    if (uv_getaddrinfo(tp->loop, &r->req, on_resolved, tp->hop_host, port, &hints) != 0) {
        free(r);
        return XS_EDNS;
    }
    tp->open++;
    tp->resolving = r;
    tp->out = OUT_RESOLVING;
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
    case OUT_READY:
        *local = tp->local;
        return 0;
    case OUT_RESOLVING:
    case OUT_CONNECTING:
        return XS_EAGAIN;
    case OUT_IDLE:
        break;
    }
    int rc = out_start(tp);
    if (rc == 0)
        *local = tp->local;
    return rc;
}

int xs_sip_tp_send_next_hop(struct xs_sip_tp *tp, const char *data, size_t len)
{
    if (tp->closing || tp->out != OUT_READY)
        return XS_ECLOSED;
    if (tp->out_conn)
        return xs_sip_tp_conn_write(tp->out_conn, data, len);
    return xs_sip_tp_udp_send(tp, &tp->out_udp->h.udp, NULL, data, len);
}

void xs_sip_tp_out_drop(struct xs_sip_tp *tp)
{
    enum out_state was = tp->out;
    if (tp->resolving) {
        tp->resolving->abandoned = 1;
        uv_cancel((uv_req_t *)&tp->resolving->req);
        tp->resolving = NULL;
    }
    if (tp->out_udp) {
        uv_close((uv_handle_t *)&tp->out_udp->h.udp, xs_sip_tp_on_counted_close);
        tp->out_udp = NULL;
    }
    tp->out = OUT_IDLE;
    if (tp->out_conn) {
        xs_sip_tp_conn_close(tp->out_conn, XS_ECLOSED);
        return;
    }
    if (was != OUT_IDLE)
        xs_sip_tp_notify(tp, XS_ECLOSED);
}
