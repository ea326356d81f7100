/* Server transactions (see sip_txn.h): a MESSAGE goes to the router and is
 * answered when done() comes; every final response sent over UDP is kept
 * in a compact record until Timer J, to answer retransmissions. */
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
#include "net/addr.h"
#include "sip/sip_translate.h"

#define ALLOW_ACCEPT                                                                               \
    "Allow: MESSAGE, SUBSCRIBE, NOTIFY, OPTIONS\r\n"                                               \
    "Accept: text/plain, text/html\r\n"
/* How long a peer should wait before trying again after our 503. */
#define RETRY_AFTER_HEADER "Retry-After: 5\r\n"

/* A server transaction waiting for the router's done(). */
struct srv {
    struct txn_head h;
    struct xs__sip_txns *txns; /* NULL once close has answered it */
    struct xs_sip_peer peer;
    osip_message_t *req; /* owned */
    uint64_t serial;
    char to_tag[17];
    char key[];
};

/* A completed server transaction, over UDP: all it takes to answer a
 * retransmission from the same source, in one allocation. resp_len 0: the
 * store was full, retransmissions are absorbed unanswered. */
struct rec {
    struct txn_head h;
    size_t bytes; /* the allocation, counted in txns->stored_bytes */
    int sock;
    uint32_t resp_len;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    char data[]; /* the key, NUL, then the response */
};

/* ---- server records ---- */

static void rec_free(struct xs__sip_txns *t, struct rec *r)
{
    xs__sip_tent_cancel(&r->h.tent);
    xs__sip_table_remove(&t->servers, &r->h.node);
    t->n_records--;
    t->stored_bytes -= r->bytes;
    free(r);
}

static void rec_peer(const struct rec *r, struct xs_sip_peer *p)
{
    memset(p, 0, sizeof *p);
    p->transport = XS_SIP_UDP;
    p->sock = r->sock;
    memcpy(&p->addr, &r->addr, xs_net_addr_len(&r->addr.sa));
    xs_net_addr_format(&r->addr.sa, p->desc, sizeof p->desc);
}

static void rec_send(struct xs__sip_txns *t, const struct rec *r)
{
    if (!r->resp_len)
        return;
    struct xs_sip_peer p;
    rec_peer(r, &p);
    const char *resp = r->data + strlen(r->data) + 1;
    int rc = xs_sip_tp_reply(t->tp, &p, resp, r->resp_len);
    if (rc != 0)
        xs_log(XS_LOG_WARN, "sip.send", "peer=%s result=failed reason=%s", p.desc, xs_errname(rc));
}

/* Keeps the final response in t->scratch, just sent to `peer` over UDP, for
 * Timer J. The store is bounded by opts->max_stored_bytes: new requests are
 * refused (503) once it is full (see admit), so it can only pass the bound
 * by what the transactions already admitted bring. When even that does not
 * fit, the record keeps the key alone: retransmissions are then absorbed
 * unanswered, never delivered twice. Dropping the oldest records instead
 * would make their retransmissions new requests, delivered again. */
static void keep_response(struct xs__sip_txns *t, const struct xs_sip_peer *peer, const char *key)
{
    size_t klen = strlen(key);
    size_t resp = t->scratch.len;
    if (t->stored_bytes + sizeof(struct rec) + klen + 1 + resp > t->opts->max_stored_bytes) {
        t->stats.unstored++;
        xs__sip_overload_log(t);
        resp = 0;
    }
    size_t bytes = sizeof(struct rec) + klen + 1 + resp;
    struct rec *r = malloc(bytes);
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    r->h.kind = K_RECORD;
    r->bytes = bytes;
    r->sock = peer->sock;
    r->resp_len = (uint32_t)resp;
    memcpy(&r->addr, &peer->addr, xs_net_addr_len((const struct sockaddr *)&peer->addr));
    memcpy(r->data, key, klen + 1);
    memcpy(r->data + klen + 1, t->scratch.data, resp);
    r->h.node.key = r->data;
    xs__sip_table_insert(&t->servers, &r->h.node);
    xs__sip_clock_push(&t->clock, t->q_j, &r->h.tent, uv_now(t->loop));
    t->n_records++;
    t->stored_bytes += bytes;
}

/* Builds the final response to req into t->scratch, sends it to `peer`
 * and, over UDP, keeps it for Timer J so retransmitted requests get it
 * again (RFC 3261 §17.2.2). */
static void answer(struct xs__sip_txns *t, const struct xs_sip_peer *peer, const char *key,
                   const osip_message_t *req, const char *to_tag, int status, const char *warn,
                   const char *extra)
{
    xs_buf_reset(&t->scratch);
    int rc = xs_sip_build_response(req, status, to_tag, t->host, warn, extra, &t->scratch);
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "sip.send", "peer=%s status=%d result=failed reason=%s", peer->desc,
               status, xs_errname(rc));
        return;
    }
    xs_metrics_sip_response(status, XS_METRICS_OUT);
    rc = xs_sip_tp_reply(t->tp, peer, t->scratch.data, t->scratch.len);
    if (rc != 0)
        xs_log(XS_LOG_WARN, "sip.send", "peer=%s result=failed reason=%s", peer->desc,
               xs_errname(rc));
    if (peer->transport == XS_SIP_UDP && !t->closing)
        keep_response(t, peer, key);
}

/* ---- server transactions ---- */

static void srv_unlink(struct xs__sip_txns *t, struct srv *x)
{
    xs__sip_tent_cancel(&x->h.tent);
    xs__sip_table_remove(&t->servers, &x->h.node);
}

static void srv_free(struct srv *x)
{
    if (x->req)
        osip_message_free(x->req);
    free(x);
}

/* The final response for a transaction waiting for the router: it leaves
 * the table and the live list, and a record takes its place. */
static void srv_final(struct srv *x, int status, const char *warn, const char *extra)
{
    struct xs__sip_txns *t = x->txns;
    srv_unlink(t, x);
    answer(t, &x->peer, x->key, x->req, x->to_tag, status, warn, extra);
}

static void server_done(void *ud, enum xs_cond cond, const char *text)
{
    struct srv *x = ud;
    if (!x->txns) {
        /* The layer closed first and already answered 503. */
        srv_free(x);
        return;
    }
    if (cond == XS_COND_NONE) {
        XS_LOG(XS_LOG_DEBUG, "sip.in", "serial=%llu peer=%s status=200",
               (unsigned long long)x->serial, x->peer.desc);
        srv_final(x, 200, NULL, NULL);
        srv_free(x);
        return;
    }
    if (cond == XS_COND_SERVICE_UNAVAILABLE && x->txns->draining) {
        /* Our own unavailability: 503 + Retry-After, not the remote user's
         * 403 of RFC 7247 §7.1 note 5. */
        xs_log(XS_LOG_INFO, "sip.bounced",
               "serial=%llu peer=%s status=503 reason=\"shutting down\"",
               (unsigned long long)x->serial, x->peer.desc);
        srv_final(x, 503, "shutting down", RETRY_AFTER_HEADER);
        srv_free(x);
        return;
    }
    struct xs_sip_error e;
    xs_sip_error_for(cond, text, &e);
    const char *why = e.text && e.text[0] ? e.text : xs_cond_name(cond);
    char q[256];
    xs_log(XS_LOG_INFO, "sip.bounced", "serial=%llu peer=%s status=%d cond=%s reason=%s",
           (unsigned long long)x->serial, x->peer.desc, e.status, xs_cond_name(cond),
           xs_log_quote(q, sizeof q, why));
    srv_final(x, e.status, why, e.contact[0] ? e.contact : NULL);
    srv_free(x);
}

/* Answers without keeping state: used when a limit is reached. */
static void answer_stateless(struct xs__sip_txns *t, const struct xs_sip_peer *from,
                             const osip_message_t *req, int status, const char *why,
                             const char *extra)
{
    char tag[17];
    xs_random_hex(tag, 8);
    xs_buf_reset(&t->scratch);
    if (xs_sip_build_response(req, status, tag, t->host, why, extra, &t->scratch) == 0) {
        xs_metrics_sip_response(status, XS_METRICS_OUT);
        xs_sip_tp_reply(t->tp, from, t->scratch.data, t->scratch.len);
    }
}

/* 1 when the addresses name the same source: a retransmission is answered
 * only there (RFC 3261 §18.2.2), never toward a forged address. */
static int same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return 0;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return 0;
}

static int same_source(const struct xs_sip_peer *a, const struct xs_sip_peer *b)
{
    if (a->transport != b->transport)
        return 0;
    if (a->transport != XS_SIP_UDP)
        return a->conn == b->conn;
    return a->sock == b->sock &&
           same_addr((const struct sockaddr *)&a->addr, (const struct sockaddr *)&b->addr);
}

static int rec_same_source(const struct rec *r, const struct xs_sip_peer *b)
{
    return b->transport == XS_SIP_UDP && r->sock == b->sock &&
           same_addr(&r->addr.sa, (const struct sockaddr *)&b->addr);
}

/* An absurd request (see xs_sip_in.absurd): a terse answer, no state. */
static void answer_absurd(struct xs__sip_txns *t, const struct xs_sip_peer *from,
                          const struct xs_sip_in *in)
{
    if (xs__sip_log_ok(t)) {
        xs_log(XS_LOG_WARN, "sip.refused", "peer=%s status=%d reason=\"%s\" unlogged=%lu",
               from->desc, in->status, in->why, t->unlogged);
        t->unlogged = 0;
    }
    char tag[17];
    xs_random_hex(tag, 8);
    xs_buf_reset(&t->scratch);
    if (xs_sip_build_terse_response(in->msg, in->status, tag, 0, &t->scratch) == 0) {
        xs_metrics_sip_response(in->status, XS_METRICS_OUT);
        xs_sip_tp_reply(t->tp, from, t->scratch.data, t->scratch.len);
    }
}

/* A request that matches a transaction: a retransmission. Nothing was sent
 * yet while the router decides (no provisional for MESSAGE); once complete,
 * the final response again, to the original source only. */
static void absorb(struct xs__sip_txns *t, struct txn_head *h, const struct xs_sip_peer *from)
{
    const struct srv *x = h->kind == K_SERVER ? (const struct srv *)h : NULL;
    const struct rec *r = h->kind == K_RECORD ? (const struct rec *)h : NULL;
    if (x ? !same_source(&x->peer, from) : !rec_same_source(r, from)) {
        if (xs__sip_log_ok(t)) {
            char first[sizeof x->peer.desc];
            if (x)
                snprintf(first, sizeof first, "%s", x->peer.desc);
            else
                xs_net_addr_format(&r->addr.sa, first, sizeof first);
            xs_log(XS_LOG_WARN, "sip.drop",
                   "peer=%s first=%s unlogged=%lu reason=\"retransmission from another source\"",
                   from->desc, first, t->unlogged);
            t->unlogged = 0;
        }
        return;
    }
    XS_LOG(XS_LOG_DEBUG, "sip.in", "peer=%s absorbed=retransmission completed=%d", from->desc,
           r != NULL);
    if (r)
        rec_send(t, r);
}

/* NULL when a new server transaction may start; else why not. */
static const char *admit_server(struct xs__sip_txns *t, const struct xs_sip_peer *from,
                                const struct xs_sip_in *in)
{
    if (t->closing)
        return "shutting down";
    if (!t->submit && in->verdict == XS_SIP_SUBMIT)
        return "not routing messages";
    if (!t->on_dialog && in->verdict == XS_SIP_DIALOG)
        return "presence is not carried";
    /* Requests answered at once (OPTIONS, errors) hold no live transaction,
     * only a record; MESSAGEs count against the in-flight limit. */
    if ((in->verdict != XS_SIP_ANSWER && t->live.count >= t->opts->max_server_txns) ||
        (from->transport == XS_SIP_UDP && t->stored_bytes >= t->opts->max_stored_bytes)) {
        t->stats.server_refused++;
        xs__sip_overload_log(t);
        return "too many pending requests";
    }
    return NULL;
}

void xs__sip_server_request(struct xs__sip_txns *t, const struct xs_sip_peer *from,
                            struct xs_sip_in *in)
{
    char q[256];
    /* An ACK only confirms a final response we sent to an INVITE (a 405);
     * it is never answered. */
    if (in->verdict == XS_SIP_ACK) {
        xs_metrics_sip_request(XS_MSIP_ACK, XS_METRICS_IN);
        return;
    }
    if (in->verdict == XS_SIP_ANSWER && in->absurd) {
        xs_metrics_sip_request(xs_metrics_sip_method(in->msg ? in->msg->sip_method : NULL),
                               XS_METRICS_IN);
        answer_absurd(t, from, in);
        return;
    }
    struct xs__sip_tnode *n = xs__sip_table_find(&t->servers, in->key);
    if (n) {
        absorb(t, (struct txn_head *)n, from);
        return;
    }
    xs_metrics_sip_request(xs_metrics_sip_method(in->msg->sip_method), XS_METRICS_IN);
    const char *method = in->msg->sip_method;
    const char *refuse = admit_server(t, from, in);
    if (refuse) {
        /* Past a limit the refusals are counted in one line a second
         * (overload_log); the other reasons are rare and logged each. */
        if (strcmp(refuse, "too many pending requests") != 0)
            xs_log(XS_LOG_WARN, "sip.refused", "peer=%s method=%s status=503 reason=%s", from->desc,
                   method, xs_log_quote(q, sizeof q, refuse));
        answer_stateless(t, from, in->msg, 503, refuse, RETRY_AFTER_HEADER);
        return;
    }
    char to_tag[17];
    xs_random_hex(to_tag, 8);
    if (in->verdict == XS_SIP_ANSWER) {
        const char *extra = NULL;
        if (in->status == 405 || in->status == 415 || in->status == 200)
            extra = ALLOW_ACCEPT;
        else if (in->status == 420)
            extra = "Unsupported: *\r\n";
        if (in->status >= 300)
            xs_log(XS_LOG_INFO, "sip.refused", "peer=%s method=%s status=%d reason=%s", from->desc,
                   method, in->status, xs_log_quote(q, sizeof q, in->why));
        answer(t, from, in->key, in->msg, to_tag, in->status, in->status >= 300 ? in->why : NULL,
               extra);
        return;
    }
    if (in->verdict == XS_SIP_DIALOG) {
        /* SUBSCRIBE and NOTIFY are answered by the presence layer before
         * on_dialog returns, so they need no live transaction, only the
         * record that answers retransmissions. */
        char extra[XS__SIP_DIALOG_EXTRA_MAX];
        const char *why = NULL;
        extra[0] = '\0';
        int status = t->on_dialog(t->dialog_ud, from, in->msg, in->body, in->body_len, to_tag,
                                  extra, sizeof extra, &why);
        if (status == 405 && !extra[0])
            snprintf(extra, sizeof extra, "%s", ALLOW_ACCEPT);
        if (status >= 300)
            xs_log(XS_LOG_INFO, "sip.refused", "peer=%s method=%s status=%d reason=%s", from->desc,
                   method, status, xs_log_quote(q, sizeof q, why));
        answer(t, from, in->key, in->msg, to_tag, status, status >= 300 ? why : NULL,
               extra[0] ? extra : NULL);
        return;
    }
    size_t klen = strlen(in->key);
    struct srv *x = calloc(1, sizeof *x + klen + 1);
    if (!x) {
        answer_stateless(t, from, in->msg, 500, "out of memory", NULL);
        return;
    }
    x->h.kind = K_SERVER;
    memcpy(x->key, in->key, klen + 1);
    x->h.node.key = x->key;
    x->txns = t;
    x->peer = *from;
    x->req = in->msg;
    in->msg = NULL;
    memcpy(x->to_tag, to_tag, sizeof to_tag);
    xs__sip_table_insert(&t->servers, &x->h.node);
    /* The live list is a queue no clock runs: it keeps the order only. */
    xs__sip_tq_append(&t->live, &x->h.tent, 0);
    struct xs_event *ev = in->ev;
    in->ev = NULL;
    x->serial = ev->serial;
    char f[128], to[128];
    XS_LOG(XS_LOG_DEBUG, "sip.in", "serial=%llu peer=%s method=MESSAGE from=%s to=%s",
           (unsigned long long)ev->serial, from->desc, xs_log_quote(f, sizeof f, ev->from),
           xs_log_quote(to, sizeof to, ev->to));
    t->submit(t->router, ev, server_done, x);
}

void xs__sip_rec_expire(struct xs__sip_txns *t, struct xs__sip_tent *e)
{
    rec_free(t, (struct rec *)HEAD_OF(e));
}

void xs__sip_servers_metrics(const struct xs__sip_txns *t)
{
    xs_metrics_collect_sip_txns(0, "proceeding", t->live.count);
    xs_metrics_collect_sip_txns(0, "completed", t->n_records);
}

void xs__sip_servers_close(struct xs__sip_txns *t)
{
    while (t->live.head) {
        struct srv *x = (struct srv *)HEAD_OF(t->live.head);
        srv_final(x, 503, "shutting down", RETRY_AFTER_HEADER);
        x->txns = NULL;
    }
    while (t->q_j->head)
        rec_free(t, (struct rec *)HEAD_OF(t->q_j->head));
}
