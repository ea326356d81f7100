#include "sip/sip_txn.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/random.h"

#define ALLOW_ACCEPT "Allow: MESSAGE, OPTIONS\r\nAccept: text/plain, text/html\r\n"
/* How long a peer should wait before trying again after our 503. */
#define RETRY_AFTER_HEADER "Retry-After: 5\r\n"
#define TIMER_F_T1 64
#define TIMER_J_T1 64

/* ---- table ---- */

int xs_sip_table_init(struct xs_sip_table *t, size_t n_buckets)
{
    t->n_buckets = n_buckets;
    t->count = 0;
    t->buckets = NULL;
    if (xs_random_bytes(t->seed, sizeof t->seed) != 0)
        return XS_EIO;
    t->buckets = calloc(n_buckets, sizeof *t->buckets);
    return t->buckets ? 0 : XS_ENOMEM;
}

void xs_sip_table_free(struct xs_sip_table *t)
{
    free(t->buckets);
    t->buckets = NULL;
}

size_t xs_sip_table_bucket(const struct xs_sip_table *t, const char *key)
{
    return (size_t)xs_siphash(t->seed, key, strlen(key)) & (t->n_buckets - 1);
}

static struct xs_sip_txn *table_find(struct xs_sip_table *t, const char *key)
{
    for (struct xs_sip_txn *x = t->buckets[xs_sip_table_bucket(t, key)]; x; x = x->hnext)
        if (strcmp(x->key, key) == 0)
            return x;
    return NULL;
}

static void table_insert(struct xs_sip_table *t, struct xs_sip_txn *x)
{
    size_t b = xs_sip_table_bucket(t, x->key);
    x->hnext = t->buckets[b];
    t->buckets[b] = x;
    t->count++;
}

static void table_remove(struct xs_sip_table *t, struct xs_sip_txn *x)
{
    for (struct xs_sip_txn **p = &t->buckets[xs_sip_table_bucket(t, x->key)]; *p; p = &(*p)->hnext)
        if (*p == x) {
            *p = x->hnext;
            t->count--;
            return;
        }
}

/* ---- lifetime ---- */

static void txn_free(struct xs_sip_txn *x)
{
    if (x->req)
        osip_message_free(x->req);
    xs_buf_free(&x->resp);
    xs_buf_free(&x->out);
    xs_event_free(x->ev);
    free(x);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct xs_sip_txn *x = h->data;
    struct xs_sip *sip = x->sip;
    x->timer_closed = 1;
    if (!x->done_owed)
        txn_free(x);
    if (sip) {
        sip->timers_open--;
        xs_sip_maybe_closed(sip);
    }
}

static struct xs_sip_txn **list_of(struct xs_sip *sip, struct xs_sip_txn *x)
{
    return x->kind == XS_TXN_SERVER ? &sip->server_list : &sip->client_list;
}

static struct xs_sip_txn **tail_of(struct xs_sip *sip, struct xs_sip_txn *x)
{
    return x->kind == XS_TXN_SERVER ? &sip->server_tail : &sip->client_tail;
}

static struct xs_sip_txn *txn_new(struct xs_sip *sip, enum xs_sip_txn_kind kind, const char *key)
{
    struct xs_sip_txn *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->sip = sip;
    x->kind = kind;
    snprintf(x->key, sizeof x->key, "%s", key);
    xs_buf_init(&x->resp, sip->max_message + 4096);
    xs_buf_init(&x->out, sip->max_message);
    uv_timer_init(sip->loop, &x->timer);
    x->timer.data = x;
    sip->timers_open++;
    struct xs_sip_txn **list = list_of(sip, x);
    x->next = *list;
    if (*list)
        (*list)->prev = x;
    else
        *tail_of(sip, x) = x;
    *list = x;
    table_insert(kind == XS_TXN_SERVER ? &sip->servers : &sip->clients, x);
    return x;
}

/* Takes the transaction out of every lookup and closes its timer; memory
 * goes in the close callback (or with the owed done(), if later). */
static void txn_destroy(struct xs_sip_txn *x)
{
    if (x->destroyed)
        return;
    x->destroyed = 1;
    struct xs_sip *sip = x->sip;
    if (sip) {
        sip->stored_bytes -= x->stored;
        x->stored = 0;
        table_remove(x->kind == XS_TXN_SERVER ? &sip->servers : &sip->clients, x);
        struct xs_sip_txn **list = list_of(sip, x);
        if (x->prev)
            x->prev->next = x->next;
        else
            *list = x->next;
        if (x->next)
            x->next->prev = x->prev;
        else
            *tail_of(sip, x) = x->prev;
    }
    uv_timer_stop(&x->timer);
    uv_close((uv_handle_t *)&x->timer, on_timer_closed);
}

static void on_expire(uv_timer_t *t)
{
    txn_destroy(t->data);
}

/* Makes room in a full table by dropping the oldest transaction if it is
 * only waiting out its timer; returns 0 when there is room. */
static int make_room(struct xs_sip *sip, struct xs_sip_table *t, struct xs_sip_txn *oldest,
                     size_t max)
{
    if (t->count < max)
        return 0;
    /* Transactions finish roughly in the order they began, so a completed
     * one (only absorbing retransmissions until Timer J or K) sits near the
     * oldest end even when the very oldest is still waiting for an answer.
     * The walk is bounded so a full table of pending work costs little. */
    struct xs_sip_txn *x = oldest;
    for (int steps = 0; x && steps < 256; steps++, x = x->prev) {
        if (x->state == XS_TXN_COMPLETED && !x->destroyed) {
            txn_destroy(x);
            return 0;
        }
    }
    return XS_ELIMIT;
}

/* ---- server transactions ---- */

static void server_send(struct xs_sip_txn *x)
{
    if (!x->resp.len)
        return;
    int rc = xs_sip_tp_reply(x->sip->tp, &x->peer, x->resp.data, x->resp.len);
    if (rc != 0)
        xs_log(XS_LOG_WARN, "sip.send", "peer=%s result=failed reason=%s", x->peer.desc,
               xs_errname(rc));
}

/* Counts x's final response against opts.max_stored_bytes, making room by
 * ending the oldest completed transactions. When that is not enough the
 * bytes are let go: the transaction still absorbs retransmissions (so the
 * message is never delivered twice), it just cannot answer them. */
static void keep_response(struct xs_sip *sip, struct xs_sip_txn *x)
{
    size_t len = x->resp.len;
    struct xs_sip_txn *y = sip->server_tail;
    for (int steps = 0; sip->stored_bytes + len > sip->opts.max_stored_bytes && y && steps < 256;
         steps++) {
        struct xs_sip_txn *older = y;
        y = y->prev;
        if (older != x && older->stored && !older->destroyed)
            txn_destroy(older);
    }
    if (sip->stored_bytes + len > sip->opts.max_stored_bytes) {
        if (xs_sip_log_ok(sip))
            xs_log(XS_LOG_WARN, "sip.txn", "peer=%s stored=%zu reason=\"response store full\"",
                   x->peer.desc, sip->stored_bytes);
        xs_buf_free(&x->resp);
        return;
    }
    x->stored = len;
    sip->stored_bytes += len;
}

/* Builds and sends the final response, then keeps it for Timer J so
 * retransmitted requests get it again (RFC 3261 §17.2.2). */
static void server_final(struct xs_sip_txn *x, int status, const char *warn, const char *extra)
{
    struct xs_sip *sip = x->sip;
    xs_buf_reset(&x->resp);
    int rc = xs_sip_build_response(x->req, status, x->to_tag, sip->host, warn, extra, &x->resp);
    osip_message_free(x->req);
    x->req = NULL;
    x->state = XS_TXN_COMPLETED;
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "sip.send", "peer=%s status=%d result=failed reason=%s", x->peer.desc,
               status, xs_errname(rc));
        txn_destroy(x);
        return;
    }
    server_send(x);
    if (x->peer.transport != XS_SIP_UDP) {
        txn_destroy(x);
        return;
    }
    keep_response(sip, x);
    uv_timer_start(&x->timer, on_expire, (uint64_t)TIMER_J_T1 * sip->opts.t1_ms, 0);
}

static void server_done(void *ud, enum xs_cond cond, const char *text)
{
    struct xs_sip_txn *x = ud;
    x->done_owed = 0;
    if (!x->sip) {
        /* The side closed first and already answered 503. */
        if (x->timer_closed)
            txn_free(x);
        return;
    }
    if (x->destroyed || x->state == XS_TXN_COMPLETED)
        return;
    if (cond == XS_COND_NONE) {
        XS_LOG(XS_LOG_DEBUG, "sip.in", "serial=%llu peer=%s status=200",
               (unsigned long long)x->serial, x->peer.desc);
        server_final(x, 200, NULL, NULL);
        return;
    }
    /* A per-user failure never becomes 503 (RFC 7247 §7.1 note 5); only the
     * side's own overload and shutdown answer 503 with Retry-After. */
    if (cond == XS_COND_SERVICE_UNAVAILABLE && x->sip->draining) {
        xs_log(XS_LOG_INFO, "sip.bounced", "serial=%llu peer=%s status=503 reason=shutting-down",
               (unsigned long long)x->serial, x->peer.desc);
        server_final(x, 503, "shutting down", RETRY_AFTER_HEADER);
        return;
    }
    struct xs_sip_error e;
    xs_sip_error_for(cond, text, &e);
    const char *why = e.text && e.text[0] ? e.text : xs_cond_name(cond);
    char q[256];
    xs_log(XS_LOG_INFO, "sip.bounced", "serial=%llu peer=%s status=%d cond=%s reason=%s",
           (unsigned long long)x->serial, x->peer.desc, e.status, xs_cond_name(cond),
           xs_log_quote(q, sizeof q, why));
    server_final(x, e.status, why, e.contact[0] ? e.contact : NULL);
}

/* Answers without keeping state: used when the table is full. */
static void answer_stateless(struct xs_sip *sip, const struct xs_sip_peer *from,
                             const osip_message_t *req, int status, const char *why,
                             const char *extra)
{
    struct xs_buf b;
    char tag[17];
    xs_random_hex(tag, 8);
    xs_buf_init(&b, sip->max_message + 4096);
    if (xs_sip_build_response(req, status, tag, sip->host, why, extra, &b) == 0)
        xs_sip_tp_reply(sip->tp, from, b.data, b.len);
    xs_buf_free(&b);
}

/* 1 when a and b name the same transport source: a retransmission is
 * answered only there (RFC 3261 §18.2.2), never toward a forged address. */
static int same_source(const struct xs_sip_peer *a, const struct xs_sip_peer *b)
{
    if (a->transport != b->transport)
        return 0;
    if (a->transport != XS_SIP_UDP)
        return a->conn == b->conn;
    if (a->sock != b->sock || a->addr.ss_family != b->addr.ss_family)
        return 0;
    if (a->addr.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->addr, *y = (const void *)&b->addr;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)&a->addr, *y = (const void *)&b->addr;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return 0;
}

/* An absurd request (see xs_sip_in.absurd): a terse answer, no state. */
static void answer_absurd(struct xs_sip *sip, const struct xs_sip_peer *from,
                          const struct xs_sip_in *in)
{
    if (xs_sip_log_ok(sip)) {
        xs_log(XS_LOG_WARN, "sip.refused", "peer=%s status=%d reason=\"%s\" unlogged=%lu",
               from->desc, in->status, in->why, sip->unlogged);
        sip->unlogged = 0;
    }
    struct xs_buf b;
    char tag[17];
    xs_random_hex(tag, 8);
    xs_buf_init(&b, 4096);
    if (xs_sip_build_terse_response(in->msg, in->status, tag, 0, &b) == 0)
        xs_sip_tp_reply(sip->tp, from, b.data, b.len);
    xs_buf_free(&b);
}

void xs_sip_server_request(struct xs_sip *sip, const struct xs_sip_peer *from, struct xs_sip_in *in)
{
    char q[256];
    /* An ACK only confirms a final response we sent to an INVITE (a 405);
     * it is never answered. */
    if (in->verdict == XS_SIP_ACK)
        return;
    if (in->verdict == XS_SIP_ANSWER && in->absurd) {
        answer_absurd(sip, from, in);
        return;
    }
    struct xs_sip_txn *x = table_find(&sip->servers, in->key);
    if (x) {
        if (!same_source(&x->peer, from)) {
            if (xs_sip_log_ok(sip)) {
                xs_log(XS_LOG_WARN, "sip.drop",
                       "peer=%s first=%s unlogged=%lu "
                       "reason=\"retransmission from another source\"",
                       from->desc, x->peer.desc, sip->unlogged);
                sip->unlogged = 0;
            }
            return;
        }
        /* A retransmission: nothing was sent yet while the router decides
         * (no provisional for MESSAGE), else the final response again. */
        XS_LOG(XS_LOG_DEBUG, "sip.in", "peer=%s absorbed=retransmission state=%d", from->desc,
               (int)x->state);
        if (x->state == XS_TXN_COMPLETED)
            server_send(x);
        return;
    }
    const char *method = in->msg->sip_method;
    int full = make_room(sip, &sip->servers, sip->server_tail, sip->opts.max_server_txns);
    if (sip->closing || full || (!sip->submit && in->verdict == XS_SIP_SUBMIT)) {
        const char *why = sip->closing ? "shutting down"
                          : full       ? "too many pending requests"
                                       : "not routing messages";
        xs_log(XS_LOG_WARN, "sip.refused", "peer=%s method=%s status=503 reason=%s", from->desc,
               method, xs_log_quote(q, sizeof q, why));
        answer_stateless(sip, from, in->msg, 503, why, RETRY_AFTER_HEADER);
        return;
    }
    x = txn_new(sip, XS_TXN_SERVER, in->key);
    if (!x) {
        answer_stateless(sip, from, in->msg, 500, "out of memory", NULL);
        return;
    }
    x->peer = *from;
    x->req = in->msg;
    in->msg = NULL;
    xs_random_hex(x->to_tag, 8);
    x->state = XS_TXN_TRYING;
    if (in->verdict == XS_SIP_ANSWER) {
        const char *extra = NULL;
        if (in->status == 405 || in->status == 415 || in->status == 200)
            extra = ALLOW_ACCEPT;
        else if (in->status == 420)
            extra = "Unsupported: *\r\n";
        if (in->status >= 300)
            xs_log(XS_LOG_INFO, "sip.refused", "peer=%s method=%s status=%d reason=%s", from->desc,
                   method, in->status, xs_log_quote(q, sizeof q, in->why));
        server_final(x, in->status, in->status >= 300 ? in->why : NULL, extra);
        return;
    }
    struct xs_event *ev = in->ev;
    in->ev = NULL;
    x->serial = ev->serial;
    x->done_owed = 1;
    char f[128], t[128];
    XS_LOG(XS_LOG_DEBUG, "sip.in", "serial=%llu peer=%s method=MESSAGE from=%s to=%s",
           (unsigned long long)ev->serial, from->desc, xs_log_quote(f, sizeof f, ev->from),
           xs_log_quote(t, sizeof t, ev->to));
    sip->submit(sip->router, ev, server_done, x);
}

/* ---- client transactions ---- */

static void client_timer(uv_timer_t *t);

static void client_schedule(struct xs_sip_txn *x)
{
    uint64_t now = uv_now(x->sip->loop);
    uint64_t left = x->f_deadline > now ? x->f_deadline - now : 0;
    uint64_t next = left;
    int retransmit =
        x->transport == XS_SIP_UDP && (x->state == XS_TXN_TRYING || x->state == XS_TXN_PROCEEDING);
    if (retransmit && x->interval < next)
        next = x->interval;
    uv_timer_start(&x->timer, client_timer, next, 0);
}

/* Hands the outcome to the router exactly once, then keeps the transaction
 * through Timer K (UDP) to absorb retransmitted responses. */
static void client_finish(struct xs_sip_txn *x, enum xs_cond cond, const char *text)
{
    xs_done_cb done = x->done;
    if (!done)
        return;
    x->done = NULL;
    x->state = XS_TXN_COMPLETED;
    if (cond != XS_COND_NONE) {
        char q[256];
        xs_log(XS_LOG_INFO, "sip.out.failed", "serial=%llu cond=%s reason=%s",
               (unsigned long long)x->serial, xs_cond_name(cond), xs_log_quote(q, sizeof q, text));
    }
    struct xs_sip *sip = x->sip;
    if (sip && !x->destroyed) {
        if (x->transport == XS_SIP_UDP && x->out.len && !sip->closing)
            uv_timer_start(&x->timer, on_expire, sip->opts.t4_ms, 0);
        else
            txn_destroy(x);
    }
    done(x->done_ud, cond, text);
}

static void client_send(struct xs_sip_txn *x, const struct xs_sip_local *local)
{
    struct xs_sip *sip = x->sip;
    struct xs_sip_req_params p = {
        .transport = local->transport == XS_SIP_TLS   ? "TLS"
                     : local->transport == XS_SIP_TCP ? "TCP"
                                                      : "UDP",
        .via_host = local->host,
        .via_port = local->port,
        .branch = x->branch,
        .from_tag = x->from_tag,
        .call_id = x->call_id,
        .cseq = ++sip->cseq,
    };
    const char *why = NULL;
    x->transport = local->transport;
    int rc = xs_sip_build_message(x->ev, &p, &x->out, &why);
    if (rc != 0) {
        enum xs_cond c = rc == XS_EINVAL   ? XS_COND_JID_MALFORMED
                         : rc == XS_ELIMIT ? XS_COND_POLICY_VIOLATION
                                           : XS_COND_BAD_REQUEST;
        xs_buf_reset(&x->out);
        client_finish(x, c, why);
        return;
    }
    rc = xs_sip_tp_send_next_hop(sip->tp, x->out.data, x->out.len);
    if (rc != 0) {
        client_finish(x, XS_COND_SERVICE_UNAVAILABLE, "could not send to the SIP next hop");
        return;
    }
    x->state = XS_TXN_TRYING;
    x->interval = sip->opts.t1_ms;
    client_schedule(x);
}

static void client_timer(uv_timer_t *t)
{
    struct xs_sip_txn *x = t->data;
    struct xs_sip *sip = x->sip;
    if (uv_now(sip->loop) >= x->f_deadline) {
        client_finish(x, XS_COND_REMOTE_SERVER_TIMEOUT, "no answer from the SIP next hop");
        return;
    }
    if (x->transport == XS_SIP_UDP &&
        (x->state == XS_TXN_TRYING || x->state == XS_TXN_PROCEEDING)) {
        xs_sip_tp_send_next_hop(sip->tp, x->out.data, x->out.len);
        /* Timer E doubles up to T2 while Trying and stays at T2 once a
         * provisional came (RFC 3261 §17.1.2.2). */
        if (x->state == XS_TXN_PROCEEDING || x->interval * 2 > sip->opts.t2_ms)
            x->interval = sip->opts.t2_ms;
        else
            x->interval *= 2;
    }
    client_schedule(x);
}

/* Tries the way out for a waiting transaction. */
static void client_try(struct xs_sip_txn *x)
{
    struct xs_sip_local local;
    int rc = xs_sip_tp_next_hop(x->sip->tp, &local);
    if (rc == 0)
        client_send(x, &local);
    else if (rc == XS_ENOTFOUND)
        client_finish(x, XS_COND_REMOTE_SERVER_NOT_FOUND, "no SIP next hop configured");
    else if (rc != XS_EAGAIN)
        client_finish(x, XS_COND_REMOTE_SERVER_NOT_FOUND, "SIP next hop unreachable");
}

void xs_sip_client_start(struct xs_sip *sip, struct xs_event *ev, xs_done_cb done, void *ud)
{
    if (sip->closing ||
        make_room(sip, &sip->clients, sip->client_tail, sip->opts.max_client_txns) != 0) {
        xs_log(XS_LOG_WARN, "sip.out.failed", "serial=%llu reason=%s",
               (unsigned long long)ev->serial,
               sip->closing ? "closing" : "\"too many pending transactions\"");
        xs_event_free(ev);
        if (sip->closing)
            done(ud, XS_COND_SERVICE_UNAVAILABLE, "SIP side is shutting down");
        else
            done(ud, XS_COND_RESOURCE_CONSTRAINT, "too many SIP transactions pending");
        return;
    }
    char branch[40], key[XS_SIP_KEY_MAX];
    memcpy(branch, "z9hG4bK", 7);
    xs_random_hex(branch + 7, 12);
    snprintf(key, sizeof key, "b=%s|MESSAGE", branch);
    struct xs_sip_txn *x = txn_new(sip, XS_TXN_CLIENT, key);
    if (!x) {
        xs_event_free(ev);
        done(ud, XS_COND_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    memcpy(x->branch, branch, sizeof branch);
    xs_random_hex(x->from_tag, 8);
    char r[33];
    xs_random_hex(r, 16);
    snprintf(x->call_id, sizeof x->call_id, "%s@%s", r, sip->host);
    x->ev = ev;
    x->serial = ev->serial;
    x->done = done;
    x->done_ud = ud;
    x->state = XS_TXN_WAITING;
    x->f_deadline = uv_now(sip->loop) + (uint64_t)TIMER_F_T1 * sip->opts.t1_ms;
    /* Timer F runs from now, so a next hop that never answers a connect
     * cannot hold the message longer than a lost datagram would. */
    uv_timer_start(&x->timer, client_timer, (uint64_t)TIMER_F_T1 * sip->opts.t1_ms, 0);
    client_try(x);
}

void xs_sip_client_response(struct xs_sip *sip, const struct xs_sip_in *in)
{
    struct xs_sip_txn *x = table_find(&sip->clients, in->key);
    int code = in->msg->status_code;
    if (!x) {
        XS_LOG(XS_LOG_DEBUG, "sip.in", "status=%d dropped=\"no matching transaction\"", code);
        return;
    }
    if (x->state == XS_TXN_COMPLETED || x->state == XS_TXN_WAITING)
        return;
    if (code < 200) {
        if (x->state == XS_TXN_TRYING) {
            x->state = XS_TXN_PROCEEDING;
            x->interval = sip->opts.t2_ms;
            client_schedule(x);
        }
        return;
    }
    if (code < 300) {
        XS_LOG(XS_LOG_DEBUG, "sip.out", "serial=%llu status=%d", (unsigned long long)x->serial,
               code);
        client_finish(x, XS_COND_NONE, NULL);
        return;
    }
    char text[XS_COND_ADDR_MAX + 160];
    client_finish(x, xs_sip_response_cond(in->msg, text, sizeof text), text);
}

/* Walks a snapshot of the client list, so callbacks that start or end other
 * transactions cannot disturb the walk; entries stay allocated until a
 * close callback, which cannot run during the walk. */
static void each_client(struct xs_sip *sip, void (*fn)(struct xs_sip_txn *x, int arg), int arg)
{
    size_t n = sip->clients.count;
    if (n == 0)
        return;
    struct xs_sip_txn **snap = malloc(n * sizeof *snap);
    if (!snap)
        return;
    size_t k = 0;
    for (struct xs_sip_txn *x = sip->client_list; x && k < n; x = x->next)
        snap[k++] = x;
    /* The list is newest first; walking it backwards keeps queued messages
     * in the order they were handed to us. */
    for (size_t i = k; i-- > 0;)
        if (!snap[i]->destroyed)
            fn(snap[i], arg);
    free(snap);
}

static void on_hop_change(struct xs_sip_txn *x, int status)
{
    if (x->state == XS_TXN_WAITING) {
        if (status == 0 || status == XS_ECLOSED)
            client_try(x);
        else if (status == XS_ETIMEOUT)
            client_finish(x, XS_COND_REMOTE_SERVER_TIMEOUT,
                          "SIP next hop did not answer the connection");
        else
            client_finish(x, XS_COND_REMOTE_SERVER_NOT_FOUND,
                          status == XS_EDNS ? "SIP next hop does not resolve"
                                            : "SIP next hop refused the connection");
    } else if (status == XS_ECLOSED && x->transport != XS_SIP_UDP && x->state != XS_TXN_COMPLETED) {
        client_finish(x, XS_COND_SERVICE_UNAVAILABLE, "connection to the SIP next hop lost");
    }
}

void xs_sip_client_next_hop(struct xs_sip *sip, int status)
{
    each_client(sip, on_hop_change, status);
}

static void close_client(struct xs_sip_txn *x, int arg)
{
    client_finish(x, XS_COND_SERVICE_UNAVAILABLE, "SIP side is shutting down");
    txn_destroy(x);
}

void xs_sip_txn_close_all(struct xs_sip *sip)
{
    each_client(sip, close_client, 0);
    while (sip->server_list) {
        struct xs_sip_txn *x = sip->server_list;
        if (x->done_owed) {
            server_final(x, 503, "shutting down", RETRY_AFTER_HEADER);
            if (!x->destroyed)
                txn_destroy(x);
            /* done() will still come; it must find nothing to answer. */
            x->sip = NULL;
            sip->timers_open--;
        } else {
            txn_destroy(x);
        }
    }
}
