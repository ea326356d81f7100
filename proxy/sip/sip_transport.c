#define _GNU_SOURCE /* memmem */
#include "sip/sip_transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/random.h"
#include "sip/sip_frame.h"
#include "sip/sip_msg.h"
#include "sip/sip_tp_int.h"

const char *xs_sip_tp_name(enum xs_sip_transport t)
{
    return t == XS_SIP_TLS ? "tls" : t == XS_SIP_TCP ? "tcp" : "udp";
}

/* What a libuv error is in the gateway's error space, for logs. */
int xs__sip_from_uv(int uv_err)
{
    switch (uv_err) {
    case 0:
        return 0;
    case UV_ENOMEM:
    case UV_ENOBUFS:
        return XS_ENOMEM;
    case UV_ECONNREFUSED:
        return XS_EREFUSED;
    case UV_ETIMEDOUT:
        return XS_ETIMEOUT;
    case UV_EADDRINUSE:
        return XS_EEXISTS;
    case UV_EAGAIN:
        return XS_EAGAIN;
    case UV_EINVAL:
    case UV_EADDRNOTAVAIL:
    case UV_EAFNOSUPPORT:
        return XS_EINVAL;
    case UV_EOF:
    case UV_ECONNRESET:
    case UV_EPIPE:
        return XS_ECLOSED;
    default:
        return XS_EIO;
    }
}
void xs__sip_maybe_finish(struct xs_sip_tp *tp)
{
    if (!tp->closing || tp->open > 0)
        return;
    void (*done)(void *) = tp->done;
    void *ud = tp->done_ud;
    if (tp->lim.tls)
        xs_tls_ctx_unref(tp->lim.tls);
    for (size_t i = 0; i < tp->n_tls_peers; i++)
        free(tp->tls_peers[i]);
    free(tp->tls_peers);
    free(tp->listeners);
    free(tp->rbuf);
    free(tp);
    if (done)
        done(ud);
}

void xs__sip_on_counted_close(uv_handle_t *h)
{
    struct xs__sip_listener *l = h->data;
    struct xs_sip_tp *tp = l->tp;
    if (l->index < 0)
        free(l);
    tp->open--;
    xs__sip_maybe_finish(tp);
}

static void on_keep_close(uv_handle_t *h)
{
    struct xs_sip_tp *tp = h->data;
    tp->open--;
    xs__sip_maybe_finish(tp);
}

void xs__sip_notify(struct xs_sip_tp *tp, int status)
{
    if (!tp->closing && tp->cbs.next_hop)
        tp->cbs.next_hop(tp->ud, status);
}

/* ---- connections ---- */

static void conn_closed(void *ud, int reason)
{
    struct xs__sip_conn *c = ud;
    struct xs_sip_tp *tp = c->tp;
    xs_log(reason == XS_ECLOSED || reason == XS_OK ? XS_LOG_INFO : XS_LOG_WARN, "sip.conn",
           "state=closed dir=%s peer=%s id=%llu reason=%s", c->outbound ? "out" : "in", c->desc,
           (unsigned long long)c->id, xs_errname(reason));
    if (c->prev)
        c->prev->next = c->next;
    else
        tp->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (!c->outbound)
        tp->n_inbound--;
    if (c == tp->out_conn) {
        /* The peer hung up or the link failed: nobody closed it on purpose.
         * Before the TLS handshake completed that is a failure to set up the
         * way out (retrying at once would loop), after it a lost way out. */
        int ready = tp->out == XS__SIP_OUT_READY;
        tp->out_conn = NULL;
        tp->out = XS__SIP_OUT_IDLE;
        if (!ready)
            xs_log(XS_LOG_WARN, "sip.next_hop",
                   "state=connect_failed transport=%s host=%s peer=%s reason=%s",
                   xs_sip_tp_name(c->transport), tp->hop_host, c->desc, xs_errname(reason));
        xs__sip_notify(tp, ready ? XS_ECLOSED : XS_ETLS);
    }
    xs_buf_free(&c->in);
    free(c);
    tp->open--;
    xs__sip_maybe_finish(tp);
}

/* Whoever waits on the way out hears at once that it is gone; the link
 * finishes closing later. */
static void conn_forget_out(struct xs__sip_conn *c)
{
    struct xs_sip_tp *tp = c->tp;
    if (c != tp->out_conn)
        return;
    tp->out_conn = NULL;
    tp->out = XS__SIP_OUT_IDLE;
    xs__sip_notify(tp, XS_ECLOSED);
}

void xs__sip_conn_close(struct xs__sip_conn *c, int reason)
{
    if (c->closing)
        return;
    c->closing = 1;
    conn_forget_out(c);
    xs_link_close(c->link, reason);
}

/* Answers, then hangs up without a reset that could destroy the answer. */
static void conn_hang_up(struct xs__sip_conn *c, int reason)
{
    if (c->closing)
        return;
    c->closing = 1;
    conn_forget_out(c);
    xs_link_shutdown(c->link, reason);
}

/* Convention 9: a peer that does not take our answers is not read
 * either, so it cannot make us queue more for it; reading resumes once
 * what waits for it is down to a quarter of the bound. The idle timer still
 * runs, so a peer that takes nothing at all is dropped. */
static void conn_backpressure(struct xs__sip_conn *c)
{
    if (c->closing)
        return;
    uint64_t queued = xs_link_accepted(c->link) - xs_link_flushed(c->link);
    uint64_t high = c->tp->lim.out_max / 2;
    if (!c->paused && queued > high) {
        c->paused = 1;
        xs_log(XS_LOG_INFO, "sip.conn", "state=paused dir=%s peer=%s id=%llu queued=%llu",
               c->outbound ? "out" : "in", c->desc, (unsigned long long)c->id,
               (unsigned long long)queued);
        xs_link_pause(c->link);
    } else if (c->paused && queued <= high / 2) {
        c->paused = 0;
        xs_link_resume(c->link);
    }
}

static void conn_frame(struct xs__sip_conn *c);

static void conn_on_flushed(void *ud)
{
    struct xs__sip_conn *c = ud;
    int was = c->paused;
    conn_backpressure(c);
    /* Messages read before the pause wait in `in`. */
    if (was && !c->paused && !c->framing)
        conn_frame(c);
}

int xs__sip_conn_write(struct xs__sip_conn *c, const char *data, size_t len)
{
    if (c->closing)
        return XS_ECLOSED;
    int rc = xs_link_write(c->link, data, len);
    if (rc == XS_ELIMIT)
        xs__sip_conn_close(c, XS_ELIMIT);
    else if (rc == 0)
        conn_backpressure(c);
    return rc;
}

static void conn_on_idle(void *ud)
{
    struct xs__sip_conn *c = ud;
    xs_log(XS_LOG_INFO, "sip.conn", "state=idle dir=%s peer=%s id=%llu messages=%d",
           c->outbound ? "out" : "in", c->desc, (unsigned long long)c->id, c->messages);
    xs__sip_conn_close(c, XS_ETIMEOUT);
}

/* Audit M5: a connection that has not yet brought a whole message gets the
 * short timeout, unless the peer is trusted. */
static void conn_arm_idle(struct xs__sip_conn *c)
{
    const struct xs_sip_tp_limits *lim = &c->tp->lim;
    unsigned ms = lim->idle_ms;
    if (!c->outbound && !c->trusted && c->messages == 0 && lim->first_idle_ms &&
        (ms == 0 || lim->first_idle_ms < ms))
        ms = lim->first_idle_ms;
    xs_link_set_idle(c->link, ms, conn_on_idle);
}

/* Content-Length framing failed: answer the request if its header section
 * can be read, then hang up, since nothing after it on the stream can be
 * trusted to start a message. */
static void frame_error(struct xs__sip_conn *c, int rc, const char *msg, size_t hdr_len)
{
    int status = rc == XS_ELIMIT ? 413 : 400;
    const char *why =
        rc == XS_ELIMIT ? "message larger than sip.max_message" : "missing or bad Content-Length";
    xs_log(XS_LOG_WARN, "sip.refused", "transport=tcp peer=%s status=%d reason=\"%s\"", c->desc,
           status, why);
    if (hdr_len > 0) {
        struct xs_sip_in in;
        xs_sip_in_parse_head(msg, hdr_len, &in);
        if (in.verdict == XS_SIP_ANSWER) {
            struct xs_buf out;
            char tag[17];
            xs_random_hex(tag, 8);
            xs_buf_init(&out, c->tp->lim.max_message + 4096);
            if (xs_sip_build_response(in.msg, status, tag, c->tp->lim.warn_host, why, NULL, &out) ==
                0)
                xs__sip_conn_write(c, out.data, out.len);
            xs_buf_free(&out);
        }
        xs_sip_in_clear(&in);
    }
    conn_hang_up(c, rc);
}

/* Frames what is buffered. Each byte is searched for the header end once,
 * and a header section is framed (Content-Length read) once, so a peer
 * trickling a large message costs linear, not quadratic, work. */
static void conn_frame(struct xs__sip_conn *c)
{
    struct xs_sip_tp *tp = c->tp;
    size_t max = tp->lim.max_message;
    c->framing = 1;
    while (!c->closing && !tp->closing && !c->paused) {
        if (c->need == 0) {
            /* CRLF keepalives between messages (RFC 5626 §3.5.1): each
             * CRLFCRLF ping is answered with a CRLF pong; a run may be cut
             * between two reads, so it is counted across them. */
            size_t skip = 0;
            while (c->scanned == 0 && skip < c->in.len &&
                   (c->in.data[skip] == '\r' || c->in.data[skip] == '\n'))
                skip++;
            xs_buf_consume(&c->in, skip);
            c->crlf += (unsigned)skip;
            if (c->in.len > 0)
                c->crlf = 0;
            for (; c->crlf >= 4 && !c->closing; c->crlf -= 4)
                xs__sip_conn_write(c, "\r\n", 2);
            if (c->closing)
                break;
        }
        const char *d = c->in.data;
        size_t len = c->in.len;
        if (c->need == 0) {
            if (len == 0)
                break;
            size_t from = c->scanned > 3 ? c->scanned - 3 : 0;
            if (!memmem(d + from, len - from, "\r\n\r\n", 4)) {
                c->scanned = len;
                if (len > max)
                    frame_error(c, XS_ELIMIT, d, 0);
                break;
            }
            size_t msg_len, hdr_len;
            int rc = xs_sip_frame(d, len, max, 1, &msg_len, &hdr_len);
            if (rc < 0) {
                frame_error(c, rc, d, hdr_len);
                break;
            }
            c->need = msg_len;
        }
        if (len < c->need)
            break;
        struct xs_sip_peer p = {.transport = c->transport, .sock = -1, .conn = c->id};
        p.addr = c->addr;
        snprintf(p.desc, sizeof p.desc, "%s", c->desc);
        size_t n = c->need;
        c->need = 0;
        c->scanned = 0;
        if (c->messages++ == 0 && !c->outbound)
            conn_arm_idle(c);
        tp->cbs.message(tp->ud, &p, d, n, 0);
        /* Consuming moves nothing (xs_buf keeps a read offset), so a burst
         * of pipelined messages costs no memmove per message. */
        xs_buf_consume(&c->in, n);
    }
    c->framing = 0;
}

static void conn_on_data(void *ud, const char *data, size_t len)
{
    struct xs__sip_conn *c = ud;
    if (c->closing)
        return;
    if (xs_buf_append(&c->in, data, len) != 0) {
        xs__sip_conn_close(c, XS_ELIMIT);
        return;
    }
    /* Anything from the peer shows it alive; the CRLF that answered our
     * ping is not the start of a ping of its own. */
    int pong = c->pinged != 0;
    c->heard = uv_now(c->tp->loop);
    c->pinged = 0;
    conn_frame(c);
    if (pong && c->crlf == 2)
        c->crlf = 0;
    /* The idle timer catches silence; this catches a trickle, a byte now
     * and then, that would hold the slot without ever making a request. */
    const struct xs_sip_tp_limits *lim = &c->tp->lim;
    if (!c->closing && !c->outbound && !c->trusted && c->messages == 0 && lim->first_idle_ms &&
        uv_now(c->tp->loop) - c->opened >= lim->first_idle_ms) {
        xs_log(XS_LOG_INFO, "sip.conn", "state=slow dir=in peer=%s id=%llu bytes=%zu", c->desc,
               (unsigned long long)c->id, c->in.len);
        xs__sip_conn_close(c, XS_ETIMEOUT);
    }
}

/* Checks the certificate of c's TLS peer against sip.tls (module comment in
 * sip_transport.h), keeps the verdict on c and logs it; `quiet` logs only
 * a verdict that closes the connection (a reload's re-check, which would
 * otherwise repeat every line). Returns 1 when the connection may carry
 * SIP. */
static int conn_tls_check(struct xs__sip_conn *c, int quiet)
{
    struct xs_sip_tp *tp = c->tp;
    const struct xs_tls *t = xs_link_tls(c->link);
    const char *name = tp->lim.tls_name ? tp->lim.tls_name : tp->hop_host;
    char expected[512];
    int ok;
    if (c->outbound || tp->lim.n_tls_peers == 0) {
        snprintf(expected, sizeof expected, "%s", name[0] ? name : "-");
        ok = xs_tls_peer_check(t, name, &c->verdict) == 0;
    } else {
        size_t used = 0;
        ok = 0;
        expected[0] = '\0';
        for (size_t i = 0; i < tp->lim.n_tls_peers && !ok; i++) {
            struct xs_tls_peer v;
            const char *want = tp->lim.tls_peers[i];
            ok = xs_tls_peer_check(t, want, &v) == 0;
            if (used < sizeof expected)
                used += (size_t)snprintf(expected + used, sizeof expected - used, "%s%s",
                                         i ? "," : "", want);
            if (i == 0 || ok)
                c->verdict = v;
        }
        if (!ok && tp->lim.n_tls_peers > 1 && c->verdict.chain == XS_TLS_CHAIN_OK)
            snprintf(c->verdict.reason, sizeof c->verdict.reason,
                     "presented %.120s; expected one of %.180s", c->verdict.names, expected);
    }
    c->checked = 1;
    if (!ok && !quiet)
        xs_metrics_tls_cert_failure(c->verdict.chain, c->verdict.name_ok);
    if (c->outbound) {
        tp->out_checked = 1;
        tp->out_verdict = c->verdict;
        snprintf(tp->out_desc, sizeof tp->out_desc, "%s", xs_link_tls_describe(c->link));
    }
    int enforce = tp->lim.verify_ca;
    if (!quiet || (!ok && enforce)) {
        /* The names come from the peer's certificate: quoted for the log. */
        char exp_q[600], names_q[300], reason_q[360];
        xs_log(
            ok || !enforce ? XS_LOG_INFO : XS_LOG_WARN, "sip.tls",
            "dir=%s peer=%s id=%llu result=%s expected=%s cert=%s reason=%s tls=%s",
            c->outbound ? "out" : "in", c->desc, (unsigned long long)c->id,
            ok        ? "ok"
            : enforce ? "refused"
                      : "unverified",
            xs_log_quote(exp_q, sizeof exp_q, expected),
            xs_log_quote(names_q, sizeof names_q, c->verdict.names[0] ? c->verdict.names : "-"),
            xs_log_quote(reason_q, sizeof reason_q, c->verdict.reason[0] ? c->verdict.reason : "-"),
            xs_link_tls_describe(c->link));
    }
    return ok || !enforce;
}

/* The certificate is judged before anything the peer sent is framed (the
 * link hands over no plaintext before this returns, nor after a close).
 * The way out is ready once its handshake is and the certificate passes. */
static void conn_on_tls_ready(void *ud)
{
    struct xs__sip_conn *c = ud;
    struct xs_sip_tp *tp = c->tp;
    xs_log(XS_LOG_INFO, "sip.conn", "state=tls dir=%s peer=%s id=%llu tls=%s",
           c->outbound ? "out" : "in", c->desc, (unsigned long long)c->id,
           xs_link_tls_describe(c->link));
    if (!conn_tls_check(c, 0)) {
        if (c == tp->out_conn) {
            /* Nothing went out on it yet: whoever waits fails now, with
             * the TLS status, instead of reconnecting to the same peer. */
            tp->out_conn = NULL;
            tp->out = XS__SIP_OUT_IDLE;
            c->closing = 1;
            xs_link_close(c->link, XS_ETLS);
            xs__sip_notify(tp, XS_ETLS);
        } else {
            xs__sip_conn_close(c, XS_ETLS);
        }
        return;
    }
    if (c == tp->out_conn && tp->out == XS__SIP_OUT_CONNECTING) {
        tp->out = XS__SIP_OUT_READY;
        xs__sip_notify(tp, 0);
    }
}

static const struct xs_link_cbs conn_link_cbs = {
    .data = conn_on_data,
    .tls_ready = conn_on_tls_ready,
    .closed = conn_closed,
};

struct xs__sip_conn *xs__sip_conn_new(struct xs_sip_tp *tp, uv_tcp_t *tcp, int outbound,
                                      enum xs_sip_transport transport)
{
    struct xs__sip_conn *c = calloc(1, sizeof *c);
    if (!c) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return NULL;
    }
    int len = sizeof c->addr;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&c->addr, &len) == 0)
        xs_net_addr_format((struct sockaddr *)&c->addr, c->desc, sizeof c->desc);
    else
        snprintf(c->desc, sizeof c->desc, "?");
    c->link = xs_link_new(tcp, &conn_link_cbs, c, tp->lim.out_max);
    if (!c->link) {
        free(c);
        return NULL;
    }
    xs_link_on_flushed(c->link, conn_on_flushed);
    c->tp = tp;
    c->outbound = outbound;
    c->transport = transport;
    c->id = ++tp->next_conn_id;
    c->heard = uv_now(tp->loop);
    /* A whole message, plus what one read can bring beyond it. */
    xs_buf_init(&c->in, tp->lim.max_message + XS__SIP_DGRAM_MAX);
    tp->open++;
    c->next = tp->conns;
    if (tp->conns)
        tp->conns->prev = c;
    tp->conns = c;
    if (!outbound)
        tp->n_inbound++;
    else
        tp->out_checked = 0;
    if (transport == XS_SIP_TLS) {
        int rc = tp->lim.tls
                     ? xs_link_start_tls_as(c->link, tp->lim.tls, !outbound,
                                            outbound ? tp->hop_host : NULL, tp->lim.local_name)
                     : XS_EINVAL;
        if (rc != 0) {
            xs__sip_conn_close(c, XS_ETLS);
            return NULL;
        }
    }
    return c;
}

/* Connections from the same IP address; only counted at accept. */
static size_t from_same_source(const struct xs_sip_tp *tp, const struct sockaddr *sa)
{
    size_t n = 0;
    for (const struct xs__sip_conn *c = tp->conns; c; c = c->next)
        if (!c->outbound && !c->closing &&
            xs_net_addr_same_ip((const struct sockaddr *)&c->addr, sa))
            n++;
    return n;
}

/* Refuses a connection before any link is built for it, logging at most
 * XS__SIP_REFUSALS_LOGGED_PER_S lines a second (with how many went
 * unlogged since the last line). */
static void refuse(struct xs_sip_tp *tp, uv_tcp_t *tcp, const struct sockaddr *sa, const char *why)
{
    uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
    uint64_t now = uv_now(tp->loop);
    if (now - tp->refuse_window >= 1000) {
        tp->refuse_window = now;
        tp->refuse_lines = 0;
    }
    if (tp->refuse_lines >= XS__SIP_REFUSALS_LOGGED_PER_S) {
        tp->refuse_unlogged++;
        return;
    }
    tp->refuse_lines++;
    char desc[XS_NET_ADDR_STRLEN];
    xs_log(XS_LOG_WARN, "sip.refused", "transport=tcp peer=%s reason=\"%s\" unlogged=%llu",
           xs_net_addr_format(sa, desc, sizeof desc), why, tp->refuse_unlogged);
    tp->refuse_unlogged = 0;
}

static void on_accept(uv_stream_t *server, int status)
{
    struct xs__sip_listener *l = server->data;
    struct xs_sip_tp *tp = l->tp;
    if (tp->closing)
        return;
    if (status < 0) {
        xs_log(XS_LOG_WARN, "sip.accept", "result=failed reason=%s",
               xs_errname(xs__sip_from_uv(status)));
        return;
    }
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp)
        return;
    uv_tcp_init(tp->loop, tcp);
    if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    int trusted = tp->lim.is_trusted && tp->lim.is_trusted(tp->lim.trusted_ud, sa);
    if (tp->n_inbound >= tp->lim.max_conns) {
        refuse(tp, tcp, sa, "too many connections");
        return;
    }
    if (!trusted && tp->lim.max_per_source && from_same_source(tp, sa) >= tp->lim.max_per_source) {
        refuse(tp, tcp, sa, "too many connections from this address");
        return;
    }
    struct xs__sip_conn *c = xs__sip_conn_new(tp, tcp, 0, l->transport);
    if (!c)
        return;
    c->trusted = trusted;
    c->opened = uv_now(tp->loop);
    conn_arm_idle(c);
    xs_log(XS_LOG_INFO, "sip.conn", "state=open dir=in transport=%s peer=%s id=%llu%s",
           xs_sip_tp_name(c->transport), c->desc, (unsigned long long)c->id,
           trusted ? " trusted=1" : "");
}

/* ---- the set ---- */

int xs_sip_tp_reply(struct xs_sip_tp *tp, const struct xs_sip_peer *to, const char *data,
                    size_t len)
{
    if (tp->closing)
        return XS_ECLOSED;
    if (to->transport != XS_SIP_UDP) {
        for (struct xs__sip_conn *c = tp->conns; c; c = c->next)
            if (c->id == to->conn)
                return xs__sip_conn_write(c, data, len);
        return XS_ECLOSED;
    }
    if (to->sock < 0)
        return tp->out_udp ? xs__sip_udp_send(tp, &tp->out_udp->h.udp, NULL, data, len)
                           : XS_ECLOSED;
    if ((size_t)to->sock >= tp->n_listeners || tp->listeners[to->sock].transport != XS_SIP_UDP)
        return XS_EINVAL;
    return xs__sip_udp_send(tp, &tp->listeners[to->sock].h.udp, (const struct sockaddr *)&to->addr,
                            data, len);
}

int xs_sip_tp_port(const struct xs_sip_tp *tp, size_t i)
{
    return i < tp->n_listeners ? tp->listeners[i].port : -1;
}

static int listen_one(struct xs_sip_tp *tp, struct xs__sip_listener *l,
                      const struct xs_sip_endpoint *ep)
{
    struct sockaddr_storage ss;
    if (!ep->host || xs_net_addr_parse(ep->host, ep->port, &ss) != 0) {
        xs_log(XS_LOG_ERROR, "sip.listen",
               "transport=%s host=%s result=failed "
               "reason=\"listen host must be an IP address\"",
               xs_sip_tp_name(ep->transport), ep->host ? ep->host : "-");
        return XS_EINVAL;
    }
    if (ep->transport == XS_SIP_TLS && !tp->lim.tls) {
        xs_log(XS_LOG_ERROR, "sip.listen",
               "transport=tls host=%s result=failed reason=\"no TLS certificate\"", ep->host);
        return XS_EINVAL;
    }
    int rc;
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (ep->transport != XS_SIP_UDP) {
        rc = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, 0);
        rc = rc ? rc : uv_listen((uv_stream_t *)&l->h.tcp, XS__SIP_LISTEN_BACKLOG, on_accept);
        rc = rc ? rc : uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&bound, &blen);
    } else {
        rc = uv_udp_bind(&l->h.udp, (struct sockaddr *)&ss, 0);
        if (rc == 0)
            xs__sip_udp_buffers(tp, l);
        rc = rc ? rc : uv_udp_recv_start(&l->h.udp, xs__sip_on_alloc, xs__sip_on_udp_recv);
        rc = rc ? rc : uv_udp_getsockname(&l->h.udp, (struct sockaddr *)&bound, &blen);
    }
    if (rc != 0) {
        char desc[XS_NET_ADDR_STRLEN];
        xs_log(XS_LOG_ERROR, "sip.listen",
               "transport=%s addr=%s result=failed reason=%s detail=\"%s\"",
               xs_sip_tp_name(ep->transport),
               xs_net_addr_format((struct sockaddr *)&ss, desc, sizeof desc),
               xs_errname(xs__sip_from_uv(rc)), uv_strerror(rc));
        return XS_EIO;
    }
    char desc[XS_NET_ADDR_STRLEN];
    l->port = xs_net_addr_ip((struct sockaddr *)&bound, desc, sizeof desc);
    xs_log(XS_LOG_INFO, "sip.listen", "transport=%s addr=%s result=ok",
           xs_sip_tp_name(ep->transport),
           xs_net_addr_format((struct sockaddr *)&bound, desc, sizeof desc));
    return 0;
}

/* ---- keepalives and trust ---- */

/* Pings every TCP/TLS connection silent for keepalive_ms and closes those
 * whose ping went unanswered for pong_ms. One sweep for all connections
 * instead of a timer each: pings are seconds apart, precision is not
 * needed. */
static void on_keep_tick(uv_timer_t *h)
{
    struct xs_sip_tp *tp = h->data;
    uint64_t now = uv_now(tp->loop);
    struct xs__sip_conn *next;
    for (struct xs__sip_conn *c = tp->conns; c; c = next) {
        next = c->next;
        if (c->closing || (c->transport == XS_SIP_TLS && !xs_link_is_tls(c->link)))
            continue;
        if (c->pinged) {
            if (now - c->pinged >= tp->lim.pong_ms) {
                xs_log(XS_LOG_WARN, "sip.keepalive",
                       "state=dead dir=%s peer=%s id=%llu reason=\"no pong within %u ms\"",
                       c->outbound ? "out" : "in", c->desc, (unsigned long long)c->id,
                       tp->lim.pong_ms);
                xs__sip_conn_close(c, XS_ETIMEOUT);
            }
        } else if (now - c->heard >= tp->lim.keepalive_ms &&
                   xs__sip_conn_write(c, "\r\n\r\n", 4) == 0) {
            c->pinged = now ? now : 1;
        }
    }
}

static void keep_arm(struct xs_sip_tp *tp)
{
    if (!tp->lim.keepalive_ms) {
        uv_timer_stop(&tp->keep);
        return;
    }
    if (!tp->lim.pong_ms)
        tp->lim.pong_ms = 10000;
    unsigned least =
        tp->lim.keepalive_ms < tp->lim.pong_ms ? tp->lim.keepalive_ms : tp->lim.pong_ms;
    unsigned tick = least / 4 ? least / 4 : 1;
    uv_timer_start(&tp->keep, on_keep_tick, tick, tick);
}

/* lim's sip.tls strings become tp's own copies (they were borrowed). */
static int take_trust(struct xs_sip_tp *tp, const struct xs_sip_tp_limits *lim)
{
    char **peers = NULL;
    if (lim->n_tls_peers) {
        peers = calloc(lim->n_tls_peers, sizeof *peers);
        if (!peers)
            return XS_ENOMEM;
        for (size_t i = 0; i < lim->n_tls_peers; i++) {
            peers[i] = strdup(lim->tls_peers[i]);
            if (!peers[i]) {
                while (i > 0)
                    free(peers[--i]);
                free(peers);
                return XS_ENOMEM;
            }
        }
    }
    for (size_t i = 0; i < tp->n_tls_peers; i++)
        free(tp->tls_peers[i]);
    free(tp->tls_peers);
    tp->tls_peers = peers;
    tp->n_tls_peers = lim->n_tls_peers;
    snprintf(tp->tls_name, sizeof tp->tls_name, "%s", lim->tls_name ? lim->tls_name : "");
    snprintf(tp->local_name, sizeof tp->local_name, "%s", lim->local_name ? lim->local_name : "");
    tp->lim.tls_name = lim->tls_name ? tp->tls_name : NULL;
    tp->lim.local_name = lim->local_name ? tp->local_name : NULL;
    tp->lim.tls_peers = (const char *const *)tp->tls_peers;
    return 0;
}

int xs_sip_tp_out_tls(const struct xs_sip_tp *tp, struct xs_tls_peer *peer, const char **desc)
{
    if (!tp->out_checked)
        return XS_ENOTFOUND;
    *peer = tp->out_verdict;
    *desc = tp->out_desc;
    return 0;
}

static void set_hop(struct xs_sip_tp *tp, const struct xs_sip_endpoint *ep)
{
    tp->hop_host[0] = '\0';
    if (ep && ep->host && ep->host[0]) {
        snprintf(tp->hop_host, sizeof tp->hop_host, "%s", ep->host);
        tp->hop_port = ep->port > 0 ? ep->port : ep->transport == XS_SIP_TLS ? 5061 : 5060;
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
    if (take_trust(tp, lim) != 0) {
        free(tp);
        return XS_ENOMEM;
    }
    if (tp->lim.tls)
        xs_tls_ctx_ref(tp->lim.tls);
    tp->cbs = *cbs;
    tp->ud = ud;
    set_hop(tp, &cfg->sip_next_hop);
    uv_timer_init(loop, &tp->keep);
    tp->keep.data = tp;
    keep_arm(tp);
    tp->open = 1;
    tp->listeners = calloc(cfg->n_sip_listen ? cfg->n_sip_listen : 1, sizeof *tp->listeners);
    tp->rbuf = malloc((size_t)XS__SIP_RECV_SLOTS * XS__SIP_DGRAM_MAX);
    if (!tp->listeners || !tp->rbuf) {
        xs_sip_tp_close(tp, NULL, NULL);
        return XS_ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_sip_listen; i++) {
        struct xs__sip_listener *l = &tp->listeners[i];
        l->tp = tp;
        l->index = (int)i;
        l->transport = cfg->sip_listen[i].transport;
        if (l->transport != XS_SIP_UDP)
            uv_tcp_init(loop, &l->h.tcp);
        else
            xs__sip_udp_init(tp, l);
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
    if (lim->tls)
        xs_tls_ctx_ref(lim->tls);
    if (tp->lim.tls)
        xs_tls_ctx_unref(tp->lim.tls);
    size_t rbuf = tp->lim.udp_recv_buffer, sbuf = tp->lim.udp_send_buffer;
    struct xs_sip_tp_limits keep = tp->lim;
    tp->lim = *lim;
    if (take_trust(tp, lim) != 0) {
        /* Out of memory: the old sip.tls strings stay, with the rest new. */
        tp->lim.tls_name = keep.tls_name;
        tp->lim.local_name = keep.local_name;
        tp->lim.tls_peers = keep.tls_peers;
        tp->lim.n_tls_peers = keep.n_tls_peers;
    }
    keep_arm(tp);
    if (rbuf != lim->udp_recv_buffer || sbuf != lim->udp_send_buffer) {
        for (size_t i = 0; i < tp->n_listeners; i++)
            if (tp->listeners[i].transport == XS_SIP_UDP)
                xs__sip_udp_buffers(tp, &tp->listeners[i]);
        if (tp->out_udp)
            xs__sip_udp_buffers(tp, tp->out_udp);
    }
    char host[sizeof tp->hop_host];
    int port = tp->hop_port;
    enum xs_sip_transport t = tp->hop_transport;
    snprintf(host, sizeof host, "%s", tp->hop_host);
    set_hop(tp, ep);
    if (strcmp(host, tp->hop_host) != 0 || port != tp->hop_port || t != tp->hop_transport) {
        xs_log(XS_LOG_INFO, "sip.next_hop", "state=changed host=%s transport=%s port=%d",
               tp->hop_host[0] ? tp->hop_host : "-", xs_sip_tp_name(tp->hop_transport),
               tp->hop_port);
        xs__sip_out_drop(tp);
    }
    /* Connections up since before the reload are held to the new sip.tls;
     * those that fail it go, the rest stay. Their certificates were
     * verified against the trust anchors of their own context. */
    struct xs__sip_conn *next;
    for (struct xs__sip_conn *c = tp->conns; c; c = next) {
        next = c->next;
        if (!c->closing && c->checked && !conn_tls_check(c, 1)) {
            xs_log(XS_LOG_WARN, "sip.reconfigure",
                   "state=closed dir=%s peer=%s id=%llu "
                   "reason=\"certificate no longer accepted\"",
                   c->outbound ? "out" : "in", c->desc, (unsigned long long)c->id);
            xs__sip_conn_close(c, XS_ETLS);
        }
    }
}

void xs_sip_tp_stop_accepting(struct xs_sip_tp *tp)
{
    /* UDP stays: it is also the socket the answers of the drain go out on. */
    for (size_t i = 0; i < tp->n_listeners; i++) {
        uv_handle_t *h = (uv_handle_t *)&tp->listeners[i].h.udp;
        if (tp->listeners[i].transport != XS_SIP_UDP && !uv_is_closing(h))
            uv_close(h, xs__sip_on_counted_close);
    }
}

void xs_sip_tp_close(struct xs_sip_tp *tp, void (*done)(void *ud), void *ud)
{
    if (tp->closing)
        return;
    tp->closing = 1;
    xs__sip_out_drop(tp);
    tp->done = done;
    tp->done_ud = ud;
    for (size_t i = 0; i < tp->n_listeners; i++)
        if (!uv_is_closing((uv_handle_t *)&tp->listeners[i].h.udp))
            uv_close((uv_handle_t *)&tp->listeners[i].h.udp, xs__sip_on_counted_close);
    for (struct xs__sip_conn *c = tp->conns; c; c = c->next)
        xs__sip_conn_close(c, XS_ECLOSED);
    uv_close((uv_handle_t *)&tp->keep, on_keep_close);
}
