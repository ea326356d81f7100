#include "sip/sip_transport.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "sip/sip_msg.h"
#include "sip/sip_tp_int.h"

static const char *tname(enum xs_sip_transport t)
{
    return t == XS_SIP_TCP ? "tcp" : "udp";
}

void xs_sip_tp_addr_desc(const struct sockaddr *sa, char *out, size_t n, int *port)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int p = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        uv_ip4_name(a, ip, sizeof ip);
        p = ntohs(a->sin_port);
        snprintf(out, n, "%s:%d", ip, p);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(a, ip, sizeof ip);
        p = ntohs(a->sin6_port);
        snprintf(out, n, "[%s]:%d", ip, p);
    } else {
        snprintf(out, n, "?");
    }
    if (port)
        *port = p;
}

int xs_sip_tp_parse_ip(const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    char h[INET6_ADDRSTRLEN + 2];
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof h) {
        memcpy(h, host + 1, len - 2);
        h[len - 2] = '\0';
        host = h;
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return XS_EINVAL;
}

void xs_sip_tp_maybe_finish(struct xs_sip_tp *tp)
{
    if (!tp->closing || tp->open > 0)
        return;
    void (*done)(void *) = tp->done;
    void *ud = tp->done_ud;
    free(tp->listeners);
    free(tp);
    if (done)
        done(ud);
}

void xs_sip_tp_on_counted_close(uv_handle_t *h)
{
    struct listener *l = h->data;
    struct xs_sip_tp *tp = l->tp;
    if (l->index < 0)
        free(l);
    tp->open--;
    xs_sip_tp_maybe_finish(tp);
}

static void on_keep_close(uv_handle_t *h)
{
    struct xs_sip_tp *tp = h->data;
    tp->open--;
    xs_sip_tp_maybe_finish(tp);
}

void xs_sip_tp_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct xs_sip_tp *tp = *(struct xs_sip_tp **)h->data;
    buf->base = tp->rbuf;
    buf->len = sizeof tp->rbuf;
}

void xs_sip_tp_notify(struct xs_sip_tp *tp, int status)
{
    if (!tp->closing && tp->cbs.next_hop)
        tp->cbs.next_hop(tp->ud, status);
}

/* ---- datagrams ---- */

struct xs_sip_tp_udp_send {
    uv_udp_send_t req;
    char data[];
};

static void on_udp_sent(uv_udp_send_t *req, int status)
{
    if (status < 0 && status != UV_ECANCELED)
        xs_log(XS_LOG_WARN, "sip.send", "transport=udp result=failed reason=%s",
               uv_err_name(status));
    free(req);
}

int xs_sip_tp_udp_send(struct xs_sip_tp *tp, uv_udp_t *h, const struct sockaddr *addr,
                       const char *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_udp_try_send(h, &b, 1, addr);
    if (n == (int)len)
        return 0;
    if (n != UV_EAGAIN)
        return XS_EIO;
    if (uv_udp_get_send_queue_size(h) + len > tp->lim.out_max)
        return XS_ELIMIT;
    struct xs_sip_tp_udp_send *s = malloc(sizeof *s + len);
    if (!s)
        return XS_ENOMEM;
    memcpy(s->data, data, len);
    b = uv_buf_init(s->data, (unsigned)len);
    if (uv_udp_send(&s->req, h, &b, 1, addr, on_udp_sent) != 0) {
        free(s);
        return XS_EIO;
    }
    return 0;
}

void xs_sip_tp_on_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                           const struct sockaddr *addr, unsigned flags)
{
    struct listener *l = h->data;
    struct xs_sip_tp *tp = l->tp;
    if (nread < 0) {
        xs_log(XS_LOG_WARN, "sip.recv", "transport=udp result=failed reason=%s",
               uv_err_name((int)nread));
        return;
    }
    if (nread == 0 || !addr || tp->closing)
        return;
    struct xs_sip_peer p = {.transport = XS_SIP_UDP, .sock = l->index};
    memcpy(&p.addr, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    xs_sip_tp_addr_desc(addr, p.desc, sizeof p.desc, NULL);
    if (flags & UV_UDP_PARTIAL) {
        xs_log(XS_LOG_WARN, "sip.drop", "transport=udp peer=%s reason=\"datagram truncated\"",
               p.desc);
        return;
    }
    const char *d = buf->base;
    size_t n = (size_t)nread;
    /* CRLF keepalives (RFC 5626 §3.5.1) carry nothing to answer. */
    while (n && (*d == '\r' || *d == '\n')) {
        d++;
        n--;
    }
    if (!n)
        return;
    size_t msg_len, hdr_len;
    int rc = xs_sip_frame(d, n, n, 0, &msg_len, &hdr_len);
    if (rc < 0) {
        xs_log(XS_LOG_WARN, "sip.drop",
               "transport=udp peer=%s bytes=%zu reason=\"bad framing: %s\"", p.desc, n,
               xs_strerror(rc));
        return;
    }
    tp->cbs.message(tp->ud, &p, d, msg_len, msg_len > tp->lim.max_message);
}

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct xs_sip_tp *tp = c->tp;
    tp->open--;
    if (--c->handles == 0) {
        if (c->prev)
            c->prev->next = c->next;
        else
            tp->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        if (!c->outbound)
            tp->n_inbound--;
        xs_buf_free(&c->in);
        free(c);
    }
    xs_sip_tp_maybe_finish(tp);
}

void xs_sip_tp_conn_close(struct conn *c, int reason)
{
    if (c->closing)
        return;
    struct xs_sip_tp *tp = c->tp;
    c->closing = 1;
    xs_log(reason == XS_ECLOSED ? XS_LOG_INFO : XS_LOG_WARN, "sip.conn",
           "state=closed dir=%s peer=%s id=%llu reason=%s", c->outbound ? "out" : "in", c->desc,
           (unsigned long long)c->id, xs_errname(reason));
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    if (c == tp->out_conn) {
        tp->out_conn = NULL;
        tp->out = OUT_IDLE;
        xs_sip_tp_notify(tp, XS_ECLOSED);
    }
}

static void on_conn_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->draining) {
        xs_sip_tp_conn_close(c, c->drain_reason);
        return;
    }
    xs_log(XS_LOG_INFO, "sip.conn", "state=idle dir=%s peer=%s id=%llu", c->outbound ? "out" : "in",
           c->desc, (unsigned long long)c->id);
    xs_sip_tp_conn_close(c, XS_ETIMEOUT);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if (!c->closing)
        xs_sip_tp_conn_close(c, c->drain_reason);
}

/* Stops reading and closes once what is queued has been written, or after a
 * short grace period if the peer does not read it. */
static void conn_drain(struct conn *c, int reason)
{
    if (c->closing || c->draining)
        return;
    c->draining = 1;
    c->drain_reason = reason;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_start(&c->timer, on_conn_timer, DRAIN_MS, 0);
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        xs_sip_tp_conn_close(c, reason);
}

struct conn *xs_sip_tp_conn_new(struct xs_sip_tp *tp, int outbound)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->tp = tp;
    c->outbound = outbound;
    c->id = ++tp->next_conn_id;
    snprintf(c->desc, sizeof c->desc, "?");
    xs_buf_init(&c->in, tp->lim.max_message + READ_BUF);
    uv_tcp_init(tp->loop, &c->tcp);
    uv_timer_init(tp->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    tp->open += 2;
    c->next = tp->conns;
    if (tp->conns)
        tp->conns->prev = c;
    tp->conns = c;
    if (!outbound)
        tp->n_inbound++;
    return c;
}

struct xs_sip_tp_conn_write {
    uv_write_t req;
    char data[];
};

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->handle->data;
    free(req);
    if (status < 0 && status != UV_ECANCELED && !c->closing)
        xs_sip_tp_conn_close(c, XS_EIO);
}

int xs_sip_tp_conn_write(struct conn *c, const char *data, size_t len)
{
    if (c->closing || c->draining)
        return XS_ECLOSED;
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    if (uv_stream_get_write_queue_size(s) + len > c->tp->lim.out_max) {
        xs_sip_tp_conn_close(c, XS_ELIMIT);
        return XS_ELIMIT;
    }
    if (!c->draining && c->tp->lim.idle_ms)
        uv_timer_start(&c->timer, on_conn_timer, c->tp->lim.idle_ms, 0);
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write(s, &b, 1);
    if (n == (int)len)
        return 0;
    if (n < 0 && n != UV_EAGAIN) {
        xs_sip_tp_conn_close(c, XS_EIO);
        return XS_EIO;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    struct xs_sip_tp_conn_write *w = malloc(sizeof *w + (len - done));
    if (!w) {
        xs_sip_tp_conn_close(c, XS_ENOMEM);
        return XS_ENOMEM;
    }
    memcpy(w->data, data + done, len - done);
    b = uv_buf_init(w->data, (unsigned)(len - done));
    if (uv_write(&w->req, s, &b, 1, on_written) != 0) {
        free(w);
        xs_sip_tp_conn_close(c, XS_EIO);
        return XS_EIO;
    }
    return 0;
}

/* Content-Length framing failed: answer the request if its header section
 * can be read, then close, since nothing after it on the stream can be
 * trusted to start a message. */
static void frame_error(struct conn *c, int rc, size_t hdr_len)
{
    int status = rc == XS_ELIMIT ? 413 : 400;
    const char *why =
        rc == XS_ELIMIT ? "message larger than sip.max_message" : "missing or bad Content-Length";
    xs_log(XS_LOG_WARN, "sip.refused", "transport=tcp peer=%s status=%d reason=\"%s\"", c->desc,
           status, why);
    if (hdr_len > 0 && hdr_len <= c->in.len) {
        struct xs_sip_in in;
        xs_sip_in_parse_head(c->in.data, hdr_len, &in);
        if (in.verdict == XS_SIP_ANSWER) {
            struct xs_buf out;
            char tag[17];
            xs_sip_random_hex(tag, 8);
            xs_buf_init(&out, c->tp->lim.max_message + 4096);
            if (xs_sip_build_response(in.msg, status, tag, c->tp->lim.warn_host, why, NULL, &out) ==
                0)
                xs_sip_tp_conn_write(c, out.data, out.len);
            xs_buf_free(&out);
        }
        xs_sip_in_clear(&in);
    }
    conn_drain(c, rc);
}

static void conn_process(struct conn *c)
{
    struct xs_sip_tp *tp = c->tp;
    while (!c->closing && !c->draining && !tp->closing) {
        size_t skip = 0;
        while (skip < c->in.len && (c->in.data[skip] == '\r' || c->in.data[skip] == '\n'))
            skip++;
        xs_buf_consume(&c->in, skip);
        if (c->in.len == 0)
            return;
        size_t msg_len, hdr_len;
        int rc = xs_sip_frame(c->in.data, c->in.len, tp->lim.max_message, 1, &msg_len, &hdr_len);
        if (rc == 0)
            return;
        if (rc < 0) {
            frame_error(c, rc, hdr_len);
            return;
        }
        struct xs_sip_peer p = {.transport = XS_SIP_TCP, .sock = -1, .conn = c->id};
        p.addr = c->addr;
        snprintf(p.desc, sizeof p.desc, "%s", c->desc);
        tp->cbs.message(tp->ud, &p, c->in.data, msg_len, 0);
        xs_buf_consume(&c->in, msg_len);
    }
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        xs_sip_tp_conn_close(c, nread == UV_EOF ? XS_ECLOSED : XS_EIO);
        return;
    }
    if (c->closing || c->draining)
        return;
    if (c->tp->lim.idle_ms)
        uv_timer_start(&c->timer, on_conn_timer, c->tp->lim.idle_ms, 0);
    if (xs_buf_append(&c->in, buf->base, (size_t)nread) != 0) {
        xs_sip_tp_conn_close(c, XS_ELIMIT);
        return;
    }
    conn_process(c);
}

void xs_sip_tp_conn_started(struct conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        c->addr = ss;
        xs_sip_tp_addr_desc((struct sockaddr *)&ss, c->desc, sizeof c->desc, NULL);
    }
    uv_read_start((uv_stream_t *)&c->tcp, xs_sip_tp_on_alloc, on_conn_read);
    if (c->tp->lim.idle_ms)
        uv_timer_start(&c->timer, on_conn_timer, c->tp->lim.idle_ms, 0);
}

static void on_accept(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    struct xs_sip_tp *tp = l->tp;
    if (status < 0 || tp->closing) {
        xs_log(XS_LOG_WARN, "sip.accept", "result=failed reason=%s", uv_err_name(status));
        return;
    }
    int over = tp->n_inbound >= tp->lim.max_conns;
    struct conn *c = xs_sip_tp_conn_new(tp, 0);
    if (!c)
        return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        xs_sip_tp_conn_close(c, XS_EIO);
        return;
    }
    xs_sip_tp_conn_started(c);
    if (over) {
        xs_log(XS_LOG_WARN, "sip.refused", "transport=tcp peer=%s reason=\"too many connections\"",
               c->desc);
        xs_sip_tp_conn_close(c, XS_ELIMIT);
        return;
    }
    xs_log(XS_LOG_INFO, "sip.conn", "state=open dir=in peer=%s id=%llu", c->desc,
           (unsigned long long)c->id);
}

/* ---- the set ---- */

int xs_sip_tp_reply(struct xs_sip_tp *tp, const struct xs_sip_peer *to, const char *data,
                    size_t len)
{
    if (tp->closing)
        return XS_ECLOSED;
    if (to->transport == XS_SIP_TCP) {
        for (struct conn *c = tp->conns; c; c = c->next)
            if (c->id == to->conn)
                return xs_sip_tp_conn_write(c, data, len);
        return XS_ECLOSED;
    }
    if (to->sock < 0)
        return tp->out_udp ? xs_sip_tp_udp_send(tp, &tp->out_udp->h.udp, NULL, data, len)
                           : XS_ECLOSED;
    if ((size_t)to->sock >= tp->n_listeners || tp->listeners[to->sock].transport != XS_SIP_UDP)
        return XS_EINVAL;
    return xs_sip_tp_udp_send(tp, &tp->listeners[to->sock].h.udp,
                              (const struct sockaddr *)&to->addr, data, len);
}

int xs_sip_tp_port(const struct xs_sip_tp *tp, size_t i)
{
    return i < tp->n_listeners ? tp->listeners[i].port : -1;
}

static int listen_one(struct xs_sip_tp *tp, struct listener *l, const struct xs_sip_endpoint *ep)
{
    struct sockaddr_storage ss;
    if (!ep->host || xs_sip_tp_parse_ip(ep->host, ep->port, &ss) != 0) {
        xs_log(XS_LOG_ERROR, "sip.listen",
               "transport=%s host=%s result=failed "
               "reason=\"listen host must be an IP address\"",
               tname(ep->transport), ep->host ? ep->host : "-");
        return XS_EINVAL;
    }
    int rc;
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (ep->transport == XS_SIP_TCP) {
        rc = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, 0);
        rc = rc ? rc : uv_listen((uv_stream_t *)&l->h.tcp, LISTEN_BACKLOG, on_accept);
        rc = rc ? rc : uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&bound, &blen);
    } else {
        rc = uv_udp_bind(&l->h.udp, (struct sockaddr *)&ss, 0);
        rc = rc ? rc : uv_udp_recv_start(&l->h.udp, xs_sip_tp_on_alloc, xs_sip_tp_on_udp_recv);
        rc = rc ? rc : uv_udp_getsockname(&l->h.udp, (struct sockaddr *)&bound, &blen);
    }
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "sip.listen", "transport=%s host=%s port=%d result=failed reason=%s",
               tname(ep->transport), ep->host, ep->port, uv_err_name(rc));
        return XS_EIO;
    }
    char desc[64];
    xs_sip_tp_addr_desc((struct sockaddr *)&bound, desc, sizeof desc, &l->port);
    xs_log(XS_LOG_INFO, "sip.listen", "transport=%s addr=%s result=ok", tname(ep->transport), desc);
    return 0;
}

static void set_hop(struct xs_sip_tp *tp, const struct xs_sip_endpoint *ep)
{
    tp->hop_host[0] = '\0';
    if (ep && ep->host && ep->host[0]) {
        snprintf(tp->hop_host, sizeof tp->hop_host, "%s", ep->host);
        tp->hop_port = ep->port > 0 ? ep->port : 5060;
        tp->hop_transport = ep->transport;
    }
}

int xs_sip_tp_start(uv_loop_t *loop, const struct xs_config *cfg,
                    const struct xs_sip_tp_limits *lim, const struct xs_sip_tp_cbs *cbs, void *ud,
                    struct xs_sip_tp **out)
{
    *out = NULL;
    struct xs_sip_tp *tp = calloc(1, sizeof *tp);
    if (!tp)
        return XS_ENOMEM;
    tp->loop = loop;
    tp->lim = *lim;
    tp->cbs = *cbs;
    tp->ud = ud;
    set_hop(tp, &cfg->sip_next_hop);
    uv_timer_init(loop, &tp->keep);
    tp->keep.data = tp;
    tp->open = 1;
    tp->listeners = calloc(cfg->n_sip_listen ? cfg->n_sip_listen : 1, sizeof *tp->listeners);
    if (!tp->listeners) {
        xs_sip_tp_close(tp, NULL, NULL);
        return XS_ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_sip_listen; i++) {
        struct listener *l = &tp->listeners[i];
        l->tp = tp;
        l->index = (int)i;
        l->transport = cfg->sip_listen[i].transport;
        if (l->transport == XS_SIP_TCP)
            uv_tcp_init(loop, &l->h.tcp);
        else
            uv_udp_init(loop, &l->h.udp);
        l->h.udp.data = l;
        tp->n_listeners++;
        tp->open++;
        int rc = listen_one(tp, l, &cfg->sip_listen[i]);
        if (rc != 0) {
            xs_sip_tp_close(tp, NULL, NULL);
            return rc;
        }
    }
    *out = tp;
    return 0;
}

void xs_sip_tp_reconfigure(struct xs_sip_tp *tp, const struct xs_sip_tp_limits *lim,
                           const struct xs_sip_endpoint *ep)
{
    tp->lim = *lim;
    char host[sizeof tp->hop_host];
    int port = tp->hop_port;
    enum xs_sip_transport t = tp->hop_transport;
    snprintf(host, sizeof host, "%s", tp->hop_host);
    set_hop(tp, ep);
    if (strcmp(host, tp->hop_host) != 0 || port != tp->hop_port || t != tp->hop_transport) {
        xs_log(XS_LOG_INFO, "sip.next_hop", "state=changed host=%s transport=%s port=%d",
               tp->hop_host[0] ? tp->hop_host : "-", tname(tp->hop_transport), tp->hop_port);
        xs_sip_tp_out_drop(tp);
    }
}

void xs_sip_tp_close(struct xs_sip_tp *tp, void (*done)(void *ud), void *ud)
{
    if (tp->closing)
        return;
    tp->closing = 1;
    xs_sip_tp_out_drop(tp);
    tp->done = done;
    tp->done_ud = ud;
    for (size_t i = 0; i < tp->n_listeners; i++)
        uv_close((uv_handle_t *)&tp->listeners[i].h.udp, xs_sip_tp_on_counted_close);
    for (struct conn *c = tp->conns; c; c = c->next)
        xs_sip_tp_conn_close(c, XS_ECLOSED);
    uv_close((uv_handle_t *)&tp->keep, on_keep_close);
}
