/* Client transactions (see sip_txn.h): an event becomes a MESSAGE to the
 * next hop, or a request the caller writes (SUBSCRIBE, NOTIFY) goes there;
 * either is retransmitted on Timer E over UDP, given up on Timer F, and
 * freed on its final response. */
#include "sip/sip_txn_int.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/random.h"
#include "sip/sip_translate.h"

enum client_state {
    C_WAITING = 0, /* the way out is being set up */
    C_TRYING,      /* sent, no answer yet */
    C_PROCEEDING,  /* a 1xx came */
};

struct cli {
    struct txn_head h;
    struct xs__sip_tent e; /* Timer E, over UDP while Trying or Proceeding */
    struct xs__sip_txns *txns;
    enum client_state state;
    struct xs_event *ev; /* owned until the request is built */
    xs_done_cb done;
    void *done_ud;
    /* A request the caller writes (xs__sip_client_request): ops instead of
     * ev and done. */
    const struct xs__sip_req_ops *ops;
    void *ops_ud;
    uint64_t serial;
    uint64_t seq;      /* start order, for each_client */
    struct xs_buf out; /* the request as sent */
    enum xs_sip_transport transport;
    size_t e_idx; /* the Timer E queue e is in (or goes to next) */
    /* One draw of randomness a transaction (a system call each): the
     * branch's 24 hex digits, then the From tag's 16 and the Call-ID's 32. */
    char rnd[73];
    char branch[32];
    char key[48];
};

#define CLI_OF_E(ent) ((struct cli *)((char *)(ent)-offsetof(struct cli, e)))

/* ---- client transactions ---- */

/* Backpressure: see on_pressure in sip_txn.h. The high mark is three
 * quarters of the bound, but never more than opts->pressure_high: requests
 * left unanswered by the thousands mean the next hop (or our own reading of
 * its answers) is behind, and every one more sent then is one more to
 * retransmit. The low mark is two thirds of the high one. */
static void pressure_check(struct xs__sip_txns *t)
{
    if (t->closing)
        return;
    size_t n = t->q_f->count, max = t->opts->max_client_txns;
    size_t high = max - max / 4;
    if (t->opts->pressure_high && high > t->opts->pressure_high)
        high = t->opts->pressure_high;
    if (!t->pressure && n >= high) {
        t->pressure = 1;
        t->stats.pauses++;
        xs_log(XS_LOG_INFO, "sip.pressure", "state=high clients=%zu max_transactions=%zu", n, max);
        if (t->on_pressure)
            t->on_pressure(t->pressure_ud, 1);
    } else if (t->pressure && (n < high * 2 / 3 || n == 0)) {
        t->pressure = 0;
        xs_log(XS_LOG_INFO, "sip.pressure", "state=low clients=%zu max_transactions=%zu", n, max);
        if (t->on_pressure)
            t->on_pressure(t->pressure_ud, 0);
    }
}

/* Hands the outcome to the router exactly once and frees the transaction
 * at once: no Timer K. RFC 3261 §17.1.2.2 keeps a completed client
 * transaction for T4 only to absorb retransmitted responses, and a response
 * that matches no transaction is discarded (§18.1.2) with the same effect,
 * so keeping anything (even the key) would buy nothing but memory: at
 * 30,000 msg/s, 150,000 transactions held for 5 s. */
static void client_end(struct cli *x, const osip_message_t *resp, enum xs_cond cond,
                       const char *text)
{
    struct xs__sip_txns *t = x->txns;
    xs_done_cb done = x->done;
    void *ud = x->done_ud;
    const struct xs__sip_req_ops *ops = x->ops;
    void *ops_ud = x->ops_ud;
    if (cond != XS_COND_NONE && !resp) {
        char q[256];
        xs_log(XS_LOG_INFO, "sip.out.failed", "serial=%llu cond=%s reason=%s",
               (unsigned long long)x->serial, xs_cond_name(cond), xs_log_quote(q, sizeof q, text));
    }
    if (t->walk_next == &x->h.tent)
        t->walk_next = x->h.tent.next;
    xs__sip_tent_cancel(&x->h.tent);
    xs__sip_tent_cancel(&x->e);
    xs__sip_table_remove(&t->clients, &x->h.node);
    xs_buf_free(&x->out);
    xs_event_free(x->ev);
    free(x);
    pressure_check(t);
    if (ops)
        ops->on_final(ops_ud, resp, cond, text);
    else
        done(ud, cond, text);
}

static void client_finish(struct cli *x, enum xs_cond cond, const char *text)
{
    client_end(x, NULL, cond, text);
}

static void client_send(struct cli *x, const struct xs_sip_local *local)
{
    struct xs__sip_txns *t = x->txns;
    char from_tag[17], call_id[300];
    snprintf(from_tag, sizeof from_tag, "%.16s", x->rnd + 24);
    snprintf(call_id, sizeof call_id, "%.32s@%s", x->rnd + 40, t->host);
    struct xs_sip_req_params p = {
        .transport = local->transport == XS_SIP_TLS   ? "TLS"
                     : local->transport == XS_SIP_TCP ? "TCP"
                                                      : "UDP",
        .via_host = local->host,
        .via_port = local->port,
        .branch = x->branch,
        .from_tag = from_tag,
        .call_id = call_id,
        .cseq = ++t->cseq,
    };
    const char *why = NULL;
    x->transport = local->transport;
    int rc;
    if (x->ops) {
        rc = x->ops->build(x->ops_ud, &p, &x->out);
        if (rc != 0) {
            client_finish(x, XS_COND_INTERNAL_SERVER_ERROR, "request could not be written");
            return;
        }
    }
    rc = x->ops ? 0 : xs_sip_build_message(x->ev, &p, &x->out, &why);
    if (rc != 0) {
        enum xs_cond c = rc == XS_EINVAL   ? XS_COND_JID_MALFORMED
                         : rc == XS_ELIMIT ? XS_COND_POLICY_VIOLATION
                                           : XS_COND_BAD_REQUEST;
        client_finish(x, c, why);
        return;
    }
    /* The request is written: the event has nothing more to give. */
    xs_event_free(x->ev);
    x->ev = NULL;
    rc = xs_sip_tp_send_next_hop(t->tp, x->out.data, x->out.len);
    if (rc != 0) {
        client_finish(x, XS_COND_SERVICE_UNAVAILABLE, "could not send to the SIP next hop");
        return;
    }
    xs_metrics_sip_request(xs_metrics_sip_method(strchr(x->key, '|') + 1), XS_METRICS_OUT);
    x->state = C_TRYING;
    if (x->transport == XS_SIP_UDP) {
        x->e_idx = 0;
        xs__sip_clock_push(&t->clock, t->q_e[0], &x->e, uv_now(t->loop));
    } else {
        /* A reliable transport retransmits for us: only Timer F runs. */
        xs_buf_free(&x->out);
    }
}

/* Timer E: the request again, then the next interval (doubling up to T2
 * while Trying, T2 once a provisional came; RFC 3261 §17.1.2.2). */
static void client_retransmit(struct cli *x)
{
    struct xs__sip_txns *t = x->txns;
    xs_sip_tp_send_next_hop(t->tp, x->out.data, x->out.len);
    if (x->state == C_PROCEEDING || x->e_idx + 1 >= t->n_e)
        x->e_idx = t->n_e - 1;
    else
        x->e_idx++;
    xs__sip_clock_push(&t->clock, t->q_e[x->e_idx], &x->e, uv_now(t->loop));
}

/* Tries the way out for a waiting transaction. */
static void client_try(struct cli *x)
{
    struct xs_sip_local local;
    int rc = xs_sip_tp_next_hop(x->txns->tp, &local);
    if (rc == 0)
        client_send(x, &local);
    else if (rc == XS_ENOTFOUND)
        client_finish(x, XS_COND_REMOTE_SERVER_NOT_FOUND, "no SIP next hop configured");
    else if (rc != XS_EAGAIN)
        client_finish(x, XS_COND_REMOTE_SERVER_NOT_FOUND, "SIP next hop unreachable");
}

void xs__sip_client_start(struct xs__sip_txns *t, struct xs_event *ev, xs_done_cb done, void *ud)
{
    if (t->closing) {
        xs_log(XS_LOG_WARN, "sip.out.failed", "serial=%llu reason=closing",
               (unsigned long long)ev->serial);
        xs_event_free(ev);
        done(ud, XS_COND_SERVICE_UNAVAILABLE, "SIP side is shutting down");
        return;
    }
    if (t->q_f->count >= t->opts->max_client_txns) {
        /* Backpressure (on_pressure) should have stopped the flow before
         * this; what still comes is refused with a condition of type wait,
         * so the sender may try again later. */
        t->stats.client_refused++;
        xs__sip_overload_log(t);
        xs_event_free(ev);
        done(ud, XS_COND_RESOURCE_CONSTRAINT, "too many SIP transactions pending");
        return;
    }
    struct cli *x = calloc(1, sizeof *x);
    if (!x) {
        xs_event_free(ev);
        done(ud, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    xs_random_hex(x->rnd, 36);
    snprintf(x->branch, sizeof x->branch, "z9hG4bK%.24s", x->rnd);
    snprintf(x->key, sizeof x->key, "b=%s|MESSAGE", x->branch);
    x->h.kind = K_CLIENT;
    x->h.node.key = x->key;
    x->txns = t;
    xs_buf_init(&x->out, t->max_message);
    x->ev = ev;
    x->serial = ev->serial;
    x->seq = ++t->client_seq;
    x->done = done;
    x->done_ud = ud;
    x->state = C_WAITING;
    xs__sip_table_insert(&t->clients, &x->h.node);
    /* Timer F runs from now, so a next hop that never answers a connect
     * cannot hold the message longer than a lost datagram would. */
    xs__sip_clock_push(&t->clock, t->q_f, &x->h.tent, uv_now(t->loop));
    pressure_check(t);
    client_try(x);
}

void xs__sip_client_request(struct xs__sip_txns *t, const char *method,
                            const struct xs__sip_req_ops *ops, void *ud)
{
    const char *refuse = NULL;
    enum xs_cond cond = XS_COND_NONE;
    if (t->closing) {
        refuse = "SIP side is shutting down";
        cond = XS_COND_SERVICE_UNAVAILABLE;
    } else if (t->q_f->count >= t->opts->max_client_txns) {
        t->stats.client_refused++;
        xs__sip_overload_log(t);
        refuse = "too many SIP transactions pending";
        cond = XS_COND_RESOURCE_CONSTRAINT;
    }
    struct cli *x = refuse ? NULL : calloc(1, sizeof *x);
    if (!x) {
        ops->on_final(ud, NULL, refuse ? cond : XS_COND_INTERNAL_SERVER_ERROR,
                      refuse ? refuse : "out of memory");
        return;
    }
    xs_random_hex(x->rnd, 36);
    snprintf(x->branch, sizeof x->branch, "z9hG4bK%.24s", x->rnd);
    snprintf(x->key, sizeof x->key, "b=%s|%.12s", x->branch, method);
    x->h.kind = K_CLIENT;
    x->h.node.key = x->key;
    x->txns = t;
    xs_buf_init(&x->out, t->max_message);
    x->ops = ops;
    x->ops_ud = ud;
    x->seq = ++t->client_seq;
    x->state = C_WAITING;
    xs__sip_table_insert(&t->clients, &x->h.node);
    xs__sip_clock_push(&t->clock, t->q_f, &x->h.tent, uv_now(t->loop));
    pressure_check(t);
    client_try(x);
}

void xs__sip_client_response(struct xs__sip_txns *t, const struct xs_sip_in *in)
{
    struct xs__sip_tnode *n = xs__sip_table_find(&t->clients, in->key);
    int code = in->msg->status_code;
    if (!n) {
        XS_LOG(XS_LOG_DEBUG, "sip.in", "status=%d dropped=\"no matching transaction\"", code);
        return;
    }
    struct cli *x = (struct cli *)n;
    if (x->state == C_WAITING)
        return;
    xs_metrics_sip_response(code, XS_METRICS_IN);
    if (code < 200) {
        if (x->state == C_TRYING) {
            x->state = C_PROCEEDING;
            if (x->transport == XS_SIP_UDP) {
                xs__sip_tent_cancel(&x->e);
                x->e_idx = t->n_e - 1;
                xs__sip_clock_push(&t->clock, t->q_e[x->e_idx], &x->e, uv_now(t->loop));
            }
        }
        return;
    }
    if (code < 300) {
        XS_LOG(XS_LOG_DEBUG, "sip.out", "serial=%llu status=%d", (unsigned long long)x->serial,
               code);
        client_end(x, in->msg, XS_COND_NONE, NULL);
        return;
    }
    char text[XS_COND_ADDR_MAX + 160];
    client_end(x, in->msg, xs_sip_response_cond(in->msg, text, sizeof text), text);
}

/* Calls fn on every client transaction started before the walk, oldest
 * first (so queued messages go out in the order they were handed to us).
 * fn may end any transaction, and start new ones, which the walk skips. */
static void each_client(struct xs__sip_txns *t, void (*fn)(struct cli *x, int arg), int arg)
{
    uint64_t last = t->client_seq;
    struct xs__sip_tent *e = t->q_f->head;
    while (e) {
        struct cli *x = (struct cli *)HEAD_OF(e);
        if (x->seq > last)
            break;
        t->walk_next = e->next;
        fn(x, arg);
        e = t->walk_next;
    }
    t->walk_next = NULL;
}

void xs__sip_clients_metrics(const struct xs__sip_txns *t)
{
    size_t n[3] = {0, 0, 0};
    for (const struct xs__sip_tent *e = t->q_f->head; e; e = e->next) {
        const struct cli *x = (const struct cli *)HEAD_OF(e);
        n[x->state == C_WAITING ? 0 : x->state == C_TRYING ? 1 : 2]++;
    }
    xs_metrics_collect_sip_txns(1, "waiting", n[0]);
    xs_metrics_collect_sip_txns(1, "trying", n[1]);
    xs_metrics_collect_sip_txns(1, "proceeding", n[2]);
}

static void on_hop_change(struct cli *x, int status)
{
    if (x->state == C_WAITING) {
        if (status == 0 || status == XS_ECLOSED)
            client_try(x);
        else if (status == XS_ETIMEOUT)
            client_finish(x, XS_COND_REMOTE_SERVER_TIMEOUT,
                          "SIP next hop did not answer the connection");
        else if (status == XS_ETLS)
            client_finish(x, XS_COND_REMOTE_SERVER_NOT_FOUND,
                          "TLS with the SIP next hop failed (handshake or certificate refused)");
        else
            client_finish(x, XS_COND_REMOTE_SERVER_NOT_FOUND,
                          status == XS_EDNS ? "SIP next hop does not resolve"
                                            : "SIP next hop refused the connection");
    } else if (status == XS_ECLOSED && x->transport != XS_SIP_UDP) {
        client_finish(x, XS_COND_SERVICE_UNAVAILABLE, "connection to the SIP next hop lost");
    }
}

void xs__sip_client_next_hop(struct xs__sip_txns *t, int status)
{
    each_client(t, on_hop_change, status);
}

void xs__sip_client_expire(struct xs__sip_txns *t, int queue_id, struct xs__sip_tent *e)
{
    (void)t;
    if (queue_id == Q_F)
        client_finish((struct cli *)HEAD_OF(e), XS_COND_REMOTE_SERVER_TIMEOUT,
                      "no answer from the SIP next hop");
    else
        client_retransmit(CLI_OF_E(e));
}

static void close_client(struct cli *x, int arg)
{
    (void)arg;
    client_finish(x, XS_COND_SERVICE_UNAVAILABLE, "SIP side is shutting down");
}

void xs__sip_clients_close(struct xs__sip_txns *t)
{
    each_client(t, close_client, 0);
}
