/* RFC 3261 §17 non-INVITE transactions (see sip_txn.h): server ones hand
 * MESSAGEs to the router and answer when done() comes, then keep a compact
 * record of the answer through Timer J; client ones carry events to the
 * next hop, retransmit on Timer E and give up on Timer F. */
#include "sip/sip_txn.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/random.h"
#include "net/addr.h"
#include "sip/sip_translate.h"

#define ALLOW_ACCEPT "Allow: MESSAGE, OPTIONS\r\nAccept: text/plain, text/html\r\n"
/* How long a peer should wait before trying again after our 503. */
#define RETRY_AFTER_HEADER "Retry-After: 5\r\n"
#define TIMER_F_T1 64
#define TIMER_J_T1 64
#define LOG_LINES_PER_S 10
/* Where the tables start; they grow with the load (sip_txn_table.h). */
#define TABLE_BUCKETS 1024

/* The clock's queues: Timer J, Timer F, the overload line's second, then
 * one per Timer E interval. */
enum { Q_J = 0, Q_F = 1, Q_LOG = 2, Q_E = 3 };

enum txn_kind { K_SERVER = 1, K_RECORD = 2, K_CLIENT = 3 };

enum client_state {
    C_WAITING = 0, /* the way out is being set up */
    C_TRYING,      /* sent, no answer yet */
    C_PROCEEDING,  /* a 1xx came */
};

/* What every entry of a table starts with. `tent` puts a server
 * transaction on the live list, a record on Timer J, a client transaction
 * on Timer F (whose queue is also the list of clients, oldest first). */
struct txn_head {
    struct xs__sip_tnode node;
    struct xs__sip_tent tent;
    enum txn_kind kind;
};

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

struct cli {
    struct txn_head h;
    struct xs__sip_tent e; /* Timer E, over UDP while Trying or Proceeding */
    struct xs__sip_txns *txns;
    enum client_state state;
    struct xs_event *ev; /* owned until the request is built */
    xs_done_cb done;
    void *done_ud;
    uint64_t serial;
    uint64_t seq; /* start order, for each_client */
    struct xs_buf out; /* the request as sent */
    enum xs_sip_transport transport;
    size_t e_idx; /* the Timer E queue e is in (or goes to next) */
    char branch[32];
    char key[48];
};

#define HEAD_OF(ent) ((struct txn_head *)((char *)(ent) - offsetof(struct txn_head, tent)))
#define CLI_OF_E(ent) ((struct cli *)((char *)(ent) - offsetof(struct cli, e)))

/* ---- layer ---- */

static void on_expire(void *ud, int queue_id, struct xs__sip_tent *e);

int xs__sip_txns_init(struct xs__sip_txns *t, uv_loop_t *loop, const struct xs_sip_opts *opts,
                      const char *host)
{
    memset(t, 0, sizeof *t);
    t->loop = loop;
    t->opts = opts;
    t->host = host;
    xs_buf_init(&t->scratch, XS_MESSAGE_WIRE_MAX);
    xs__sip_clock_init(&t->clock, loop, on_expire, t);
    t->open = 1;
    uint64_t t1 = opts->t1_ms ? opts->t1_ms : 1, t2 = opts->t2_ms > t1 ? opts->t2_ms : t1;
    t->q_j = xs__sip_clock_queue(&t->clock, Q_J, TIMER_J_T1 * t1);
    t->q_f = xs__sip_clock_queue(&t->clock, Q_F, TIMER_F_T1 * t1);
    t->q_log = xs__sip_clock_queue(&t->clock, Q_LOG, 1000);
    /* T1, 2*T1, 4*T1 ... below T2, then T2: four queues with RFC 3261's
     * values, and never more than the clock holds. */
    for (uint64_t iv = t1; iv < t2 && t->n_e < XS__SIP_CLOCK_QUEUES - 4; iv *= 2, t->n_e++)
        t->q_e[t->n_e] = xs__sip_clock_queue(&t->clock, Q_E + (int)t->n_e, iv);
    t->q_e[t->n_e] = xs__sip_clock_queue(&t->clock, Q_E + (int)t->n_e, t2);
    t->n_e++;
    int rc = xs__sip_table_init(&t->servers, TABLE_BUCKETS);
    return rc ? rc : xs__sip_table_init(&t->clients, TABLE_BUCKETS);
}

void xs__sip_txns_free(struct xs__sip_txns *t)
{
    xs__sip_table_free(&t->servers);
    xs__sip_table_free(&t->clients);
    xs_buf_free(&t->scratch);
}

size_t xs__sip_txns_servers(const struct xs__sip_txns *t)
{
    return t->live.count;
}

size_t xs__sip_txns_clients(const struct xs__sip_txns *t)
{
    return t->q_f->count;
}

int xs__sip_log_ok(struct xs__sip_txns *t)
{
    uint64_t now = uv_now(t->loop);
    if (now - t->log_window >= 1000) {
        t->log_window = now;
        t->log_lines = 0;
    }
    if (t->log_lines >= LOG_LINES_PER_S) {
        t->unlogged++;
        return 0;
    }
    t->log_lines++;
    return 1;
}

/* One line a second at most while the layer is past a limit, with how many
 * requests it refused since the last line: under overload every refusal
 * would otherwise be a line, and the log would become the bottleneck. */
static void overload_write(struct xs__sip_txns *t)
{
    struct xs__sip_txn_stats *s = &t->stats, *l = &t->overload_logged;
    xs_log(XS_LOG_WARN, "sip.overload",
           "refused_in=%llu refused_out=%llu unstored=%llu servers=%zu clients=%zu "
           "stored_bytes=%zu max_transactions=%zu/%zu max_stored_bytes=%zu "
           "reason=\"too many pending transactions\"",
           s->server_refused - l->server_refused, s->client_refused - l->client_refused,
           s->unstored - l->unstored, t->live.count, t->q_f->count, t->stored_bytes,
           t->opts->max_server_txns, t->opts->max_client_txns, t->opts->max_stored_bytes);
    *l = *s;
}

/* A refusal (or response not kept) was counted: the line goes out now, or
 * once the current second is over, with everything counted until then. */
static void overload_log(struct xs__sip_txns *t)
{
    uint64_t now = uv_now(t->loop);
    if (t->overload_window && now - t->overload_window < 1000) {
        /* Due when the second that began at overload_window ends. */
        if (!t->overload_tent.q && !t->closing)
            xs__sip_clock_push(&t->clock, t->q_log, &t->overload_tent, t->overload_window);
        return;
    }
    t->overload_window = now;
    overload_write(t);
}

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
        xs_log(XS_LOG_WARN, "sip.send", "peer=%s result=failed reason=%s", p.desc,
               xs_errname(rc));
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
        overload_log(t);
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
        xs_log(XS_LOG_INFO, "sip.bounced", "serial=%llu peer=%s status=503 reason=\"shutting down\"",
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
    if (xs_sip_build_response(req, status, tag, t->host, why, extra, &t->scratch) == 0)
        xs_sip_tp_reply(t->tp, from, t->scratch.data, t->scratch.len);
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
    if (xs_sip_build_terse_response(in->msg, in->status, tag, 0, &t->scratch) == 0)
        xs_sip_tp_reply(t->tp, from, t->scratch.data, t->scratch.len);
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
    /* Requests answered at once (OPTIONS, errors) hold no live transaction,
     * only a record; MESSAGEs count against the in-flight limit. */
    if ((in->verdict == XS_SIP_SUBMIT && t->live.count >= t->opts->max_server_txns) ||
        (from->transport == XS_SIP_UDP && t->stored_bytes >= t->opts->max_stored_bytes)) {
        t->stats.server_refused++;
        overload_log(t);
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
    if (in->verdict == XS_SIP_ACK)
        return;
    if (in->verdict == XS_SIP_ANSWER && in->absurd) {
        answer_absurd(t, from, in);
        return;
    }
    struct xs__sip_tnode *n = xs__sip_table_find(&t->servers, in->key);
    if (n) {
        absorb(t, (struct txn_head *)n, from);
        return;
    }
    const char *method = in->msg->sip_method;
    const char *refuse = admit_server(t, from, in);
    if (refuse) {
        /* Past a limit the refusals are counted in one line a second
         * (overload_log); the other reasons are rare and logged each. */
        if (strcmp(refuse, "too many pending requests") != 0)
            xs_log(XS_LOG_WARN, "sip.refused", "peer=%s method=%s status=503 reason=%s",
                   from->desc, method, xs_log_quote(q, sizeof q, refuse));
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

/* ---- client transactions ---- */

/* Backpressure: see on_pressure in sip_txn.h. */
static void pressure_check(struct xs__sip_txns *t)
{
    if (t->closing)
        return;
    size_t n = t->q_f->count, max = t->opts->max_client_txns;
    if (!t->pressure && n >= max - max / 4) {
        t->pressure = 1;
        t->stats.pauses++;
        xs_log(XS_LOG_INFO, "sip.pressure", "state=high clients=%zu max_transactions=%zu", n, max);
        if (t->on_pressure)
            t->on_pressure(t->pressure_ud, 1);
    } else if (t->pressure && n < max / 2) {
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
static void client_finish(struct cli *x, enum xs_cond cond, const char *text)
{
    struct xs__sip_txns *t = x->txns;
    xs_done_cb done = x->done;
    void *ud = x->done_ud;
    if (cond != XS_COND_NONE) {
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
    done(ud, cond, text);
}

static void client_send(struct cli *x, const struct xs_sip_local *local)
{
    struct xs__sip_txns *t = x->txns;
    char from_tag[17], call_id[300], r[33];
    xs_random_hex(from_tag, 8);
    xs_random_hex(r, 16);
    snprintf(call_id, sizeof call_id, "%s@%s", r, t->host);
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
    int rc = xs_sip_build_message(x->ev, &p, &x->out, &why);
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
        overload_log(t);
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
    memcpy(x->branch, "z9hG4bK", 7);
    xs_random_hex(x->branch + 7, 12);
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
        client_finish(x, XS_COND_NONE, NULL);
        return;
    }
    char text[XS_COND_ADDR_MAX + 160];
    client_finish(x, xs_sip_response_cond(in->msg, text, sizeof text), text);
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

static void on_hop_change(struct cli *x, int status)
{
    if (x->state == C_WAITING) {
        if (status == 0 || status == XS_ECLOSED)
            client_try(x);
        else if (status == XS_ETIMEOUT)
            client_finish(x, XS_COND_REMOTE_SERVER_TIMEOUT,
                          "SIP next hop did not answer the connection");
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

/* ---- timers ---- */

static void on_expire(void *ud, int queue_id, struct xs__sip_tent *e)
{
    struct xs__sip_txns *t = ud;
    if (queue_id == Q_LOG) {
        t->overload_window = uv_now(t->loop);
        overload_write(t);
    } else if (queue_id == Q_J) {
        rec_free(t, (struct rec *)HEAD_OF(e));
    } else if (queue_id == Q_F) {
        client_finish((struct cli *)HEAD_OF(e), XS_COND_REMOTE_SERVER_TIMEOUT,
                      "no answer from the SIP next hop");
    } else {
        client_retransmit(CLI_OF_E(e));
    }
}

/* ---- closing ---- */

static void close_client(struct cli *x, int arg)
{
    (void)arg;
    client_finish(x, XS_COND_SERVICE_UNAVAILABLE, "SIP side is shutting down");
}

static void on_clock_closed(void *ud)
{
    struct xs__sip_txns *t = ud;
    t->open = 0;
    /* The last thing done here: on_idle may free the layer. */
    if (t->on_idle)
        t->on_idle(t->idle_ud);
}

void xs__sip_txns_close(struct xs__sip_txns *t)
{
    t->closing = 1;
    each_client(t, close_client, 0);
    while (t->live.head) {
        struct srv *x = (struct srv *)HEAD_OF(t->live.head);
        /* done() will still come; it must find nothing to answer. */
        srv_final(x, 503, "shutting down", RETRY_AFTER_HEADER);
        x->txns = NULL;
    }
    while (t->q_j->head)
        rec_free(t, (struct rec *)HEAD_OF(t->q_j->head));
    xs__sip_tent_cancel(&t->overload_tent);
    xs__sip_clock_close(&t->clock, on_clock_closed);
}
