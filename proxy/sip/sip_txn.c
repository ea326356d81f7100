/* RFC 3261 §17 non-INVITE transactions (see sip_txn.h): the layer, its
 * tables, its clock and its overload line. Server transactions are in
 * sip_txn_server.c, client ones in sip_txn_client.c. */
#include "sip/sip_txn_int.h"

#include <string.h>

#include "core/limits.h"
#include "core/log.h"

#define TIMER_F_T1 64
#define TIMER_J_T1 64
#define LOG_LINES_PER_S 10
/* Where the tables start; they grow with the load (sip_txn_table.h). */
#define TABLE_BUCKETS 1024

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
void xs__sip_overload_log(struct xs__sip_txns *t)
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

static void on_expire(void *ud, int queue_id, struct xs__sip_tent *e)
{
    struct xs__sip_txns *t = ud;
    if (queue_id == Q_LOG) {
        t->overload_window = uv_now(t->loop);
        overload_write(t);
    } else if (queue_id == Q_J) {
        xs__sip_rec_expire(t, e);
    } else {
        xs__sip_client_expire(t, queue_id, e);
    }
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
    xs__sip_clients_close(t);
    xs__sip_servers_close(t);
    xs__sip_tent_cancel(&t->overload_tent);
    xs__sip_clock_close(&t->clock, on_clock_closed);
}
