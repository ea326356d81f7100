/* xsbench: the run itself (the command line is in bench_opts.c).
 *
 * A run is one phase per direction, XMPP->SIP then SIP->XMPP (or one of
 * them, --direction). XMPP->SIP starts once our own stream to the gateway
 * has passed dialback; SIP->XMPP once our SIP sender is ready.
 *
 * Closed loop (-n, --window): at most --window messages unanswered at a
 * time; the phase ends when every message is accounted for, or when nothing
 * has moved for --drain seconds.
 *
 * Open loop (-r, --duration): message i is due at start + i/rate, and a
 * clock sends what is due every millisecond, whatever the gateway answers,
 * as sipp's -r does: a slow gateway cannot slow the offered load, it can
 * only make messages late (sent more than --late-ms behind their schedule;
 * counted). Latency runs from the scheduled time, so the tool's own delays
 * are not hidden either. Offering stops at the end of the duration plus one
 * second of catching up; then the phase waits at most --drain seconds for
 * what is outstanding, and what has neither arrived nor been refused is
 * lost.
 *
 * One overall deadline bounds the run, and the tool stops, by its pid, only
 * the gateway it started. */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bench_gw.h"
#include "core/err.h"

#define TICK_MS 50
#define READY_TIMEOUT_NS (15ull * 1000000000ull)
#define NS_PER_S 1000000000ull
/* Open loop: after the duration, how long the schedule may still catch up. */
#define CATCH_UP_NS NS_PER_S
/* How often our UDP SIP client looks for requests to retransmit. */
#define RTX_SCAN_MS 20

static uv_signal_t sig_int, sig_term;

static void close_handle(uv_handle_t *h)
{
    if (h->type != UV_UNKNOWN_HANDLE && !uv_is_closing(h))
        uv_close(h, NULL);
}

/* The gateway's CPU since the last sample, and its RSS now, for every row
 * closed since: each row a sample, unless the loop was held up for longer
 * than a second, when the rows of that stretch share one. */
static void sample(struct bench *b, struct bench_phase *p, uint64_t now)
{
    uint64_t ticks;
    if (!b->gw_pid || bench_proc_cpu(b->gw_pid, &ticks) != 0)
        return;
    long rss = bench_proc_kb(b->gw_pid, "VmRSS:");
    long hwm = bench_proc_kb(b->gw_pid, "VmHWM:");
    if (hwm > b->gw_hwm_kb)
        b->gw_hwm_kb = hwm;
    double secs = (double)(now - p->gw_sample_t) / 1e9;
    double cpu = secs > 0 ? 100.0 * (double)(ticks - p->gw_sample_ticks) /
                                (double)sysconf(_SC_CLK_TCK) / secs
                          : -1;
    for (long i = p->rows_sampled; i < p->sec.n_rows; i++) {
        p->sec.rows[i].gw_cpu = cpu;
        p->sec.rows[i].gw_rss_kb = rss;
    }
    p->rows_sampled = p->sec.n_rows;
    p->gw_sample_ticks = ticks;
    p->gw_sample_t = now;
}

static void print_rows(struct bench_phase *p)
{
    for (; p->rows_printed < p->sec.n_rows; p->rows_printed++)
        bench_print_sec(p, &p->sec.rows[p->rows_printed], p->rows_printed);
    fflush(stdout);
}

/* Takes the closing measurements of a phase: when it completes, gives up,
 * or is cut short by the end of the run. */
static void phase_close(struct bench *b, struct bench_phase *p, uint64_t now)
{
    if (p->finished)
        return;
    p->finished = 1;
    p->offering = 0;
    uv_timer_stop(&b->clock);
    uv_timer_stop(&b->second);
    uv_timer_stop(&b->rtx);
    if (!p->t_end)
        p->t_end = now;
    bench_series_close(&p->sec, now);
    sample(b, p, now);
    print_rows(p);
    if (b->gw_pid && bench_proc_cpu(b->gw_pid, &p->gw_ticks1) != 0)
        p->gw_cpu_known = 0;
    p->self_us1 = bench_self_cpu_us();
}

static void report(struct bench *b)
{
    for (int i = 0; i < 2; i++)
        if (b->ph[i].started)
            phase_close(b, &b->ph[i], uv_hrtime());
    if (b->gw_pid) {
        long hwm = bench_proc_kb(b->gw_pid, "VmHWM:");
        if (hwm > b->gw_hwm_kb)
            b->gw_hwm_kb = hwm;
    }
    FILE *json = NULL;
    if (b->o.json && !(json = fopen(b->o.json, "w"))) {
        fprintf(stderr, "xsbench: cannot write %s\n", b->o.json);
        b->failed = 1;
    }
    for (int i = 0; i < 2; i++)
        if ((b->o.dirs & 1 << i) && !b->ph[i].started)
            b->failed = 1;
    b->exit_code = bench_report(b, json);
    if (json && fclose(json) != 0) {
        fprintf(stderr, "xsbench: cannot write %s\n", b->o.json);
        b->failed = 1;
    }
    if (b->failed)
        b->exit_code = 1;
    if (b->exit_code && b->o.gateway)
        fprintf(stderr, "xsbench: the gateway's log is %s\n", b->log_path);
}

static void stop(struct bench *b)
{
    if (b->stopping)
        return;
    b->stopping = 1;
    bench_xmpp_close(b);
    bench_sip_close(b);
    close_handle((uv_handle_t *)&b->deadline);
    close_handle((uv_handle_t *)&b->tick);
    close_handle((uv_handle_t *)&b->retry);
    close_handle((uv_handle_t *)&b->clock);
    close_handle((uv_handle_t *)&b->second);
    close_handle((uv_handle_t *)&b->rtx);
    close_handle((uv_handle_t *)&sig_int);
    close_handle((uv_handle_t *)&sig_term);
    bench_gw_stop(b);
}

static void finish(struct bench *b)
{
    if (b->stopping)
        return;
    report(b);
    stop(b);
}

void bench_fatal(struct bench *b, const char *fmt, ...)
{
    if (b->stopping)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("xsbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    b->failed = 1;
    finish(b);
}

static void phase_end(struct bench *b)
{
    uint64_t now = uv_hrtime();
    phase_close(b, &b->ph[b->cur], now);
    if (b->cur == BENCH_X2S && (b->o.dirs & 1 << BENCH_S2X)) {
        b->cur = BENCH_S2X;
        b->ready_since = now;
        bench_sip_connect(b);
        return;
    }
    finish(b);
}

static int send_one(struct bench *b, long seq, uint64_t now)
{
    return b->cur == BENCH_X2S ? bench_xmpp_send(b, seq, now) : bench_sip_send(b, seq, now);
}

/* Closed loop: keep the window full. */
static void pump(struct bench *b)
{
    if (b->stopping || b->cur < 0 || b->o.rate > 0)
        return;
    struct bench_phase *p = &b->ph[b->cur];
    if (!p->started || p->finished)
        return;
    while (p->sent < p->n && p->sent - p->done < b->o.window) {
        long seq = p->sent;
        uint64_t now = uv_hrtime();
        int rc = send_one(b, seq, now);
        if (rc == XS_EAGAIN) {
            bench_retry_later(b);
            return;
        }
        if (rc != 0) {
            bench_fatal(b, "%s: cannot send message %ld: %s", p->name, seq, xs_strerror(rc));
            return;
        }
        bench_phase_offer(p, seq, now, now, UINT64_MAX);
        if (b->stopping)
            return;
    }
}

static uint64_t scheduled(const struct bench *b, const struct bench_phase *p, long seq)
{
    return p->t_start + (uint64_t)((double)seq * 1e9 / b->o.rate);
}

static void offer_end(struct bench *b, struct bench_phase *p, uint64_t now)
{
    p->offering = 0;
    p->t_offer_end = now;
    uv_timer_stop(&b->clock);
    if (p->sent < p->n)
        fprintf(stderr, "xsbench: %s: %ld of %ld messages could not be offered in time\n", p->name,
                p->n - p->sent, p->n);
    if (p->done == p->sent)
        phase_end(b);
}

/* Open loop: send everything that is due by now. A send that would block
 * (socket or output buffer full) leaves the rest for the next millisecond;
 * they go out late and are counted so. */
static void pump_open(struct bench *b)
{
    if (b->stopping || b->cur < 0)
        return;
    struct bench_phase *p = &b->ph[b->cur];
    if (!p->offering)
        return;
    uint64_t now = uv_hrtime();
    double elapsed = (double)(now - p->t_start) / 1e9;
    long due = (long)(elapsed * b->o.rate) + 1;
    if (due > p->n)
        due = p->n;
    uint64_t late_ns = (uint64_t)(b->o.late_ms * 1e6);
    while (p->sent < due) {
        long seq = p->sent;
        uint64_t sched = scheduled(b, p, seq);
        int rc = send_one(b, seq, sched);
        if (rc == XS_EAGAIN)
            break;
        if (rc != 0) {
            bench_fatal(b, "%s: cannot send message %ld: %s", p->name, seq, xs_strerror(rc));
            return;
        }
        bench_phase_offer(p, seq, sched, now, late_ns);
        if (b->stopping || p->finished)
            return;
    }
    uint64_t limit = p->t_start + (uint64_t)(b->o.duration * 1e9) + CATCH_UP_NS;
    if (p->sent == p->n || now >= limit)
        offer_end(b, p, now);
}

/* When the k-th retransmission of a request sent at t0 is due over UDP
 * (RFC 3261 Timer E: T1, 2*T1, ... capped at T2 = 4 s), or 0 once Timer F
 * (64*T1 = 32 s) has run out. */
static uint64_t rtx_due(uint64_t t0, unsigned k)
{
    uint64_t at = 0, step = BENCH_T1_NS;
    for (unsigned i = 0; i <= k; i++) {
        at += step;
        if (step < 8 * BENCH_T1_NS)
            step *= 2;
    }
    return at < 64 * BENCH_T1_NS ? t0 + at : 0;
}

/* SIP->XMPP over UDP: our client retransmits what is unanswered, as a real
 * one does, so a datagram the gateway's socket dropped is late, not lost,
 * and a retransmission the gateway forwards twice shows as a duplicate. */
static void on_rtx(uv_timer_t *t)
{
    struct bench *b = t->data;
    struct bench_phase *p = &b->ph[BENCH_S2X];
    if (b->stopping || b->cur != BENCH_S2X || p->finished)
        return;
    uint64_t now = uv_hrtime();
    while (p->rtx_low < p->sent && (p->flags[p->rtx_low] & (BM_ANSWERED | BM_ERROR)))
        p->rtx_low++;
    for (long seq = p->rtx_low; seq < p->sent; seq++) {
        if (p->flags[seq] & (BM_ANSWERED | BM_ERROR))
            continue;
        uint64_t due = rtx_due(p->t_send[seq], p->rtx[seq]);
        if (!due || now < due)
            continue;
        if (bench_sip_send(b, seq, p->t_send[seq]) != 0)
            return; /* the socket is full: the rest on the next turn */
        p->rtx[seq]++;
        p->rtx_sent++;
    }
}

static void on_clock(uv_timer_t *t)
{
    pump_open(t->data);
}

static void on_retry(uv_timer_t *t)
{
    pump(t->data);
}

void bench_retry_later(struct bench *b)
{
    if (!b->stopping && b->o.rate <= 0 && !uv_is_active((uv_handle_t *)&b->retry))
        uv_timer_start(&b->retry, on_retry, 1, 0);
}

static void on_second(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->stopping || b->cur < 0)
        return;
    struct bench_phase *p = &b->ph[b->cur];
    if (!p->started || p->finished)
        return;
    uint64_t now = uv_hrtime();
    bench_series_advance(&p->sec, now);
    sample(b, p, now);
    print_rows(p);
}

static void phase_begin(struct bench *b, int i)
{
    struct bench_phase *p = &b->ph[i];
    if (b->stopping || p->started)
        return;
    b->cur = i;
    p->started = 1;
    p->gw_cpu_known = b->gw_pid && bench_proc_cpu(b->gw_pid, &p->gw_ticks0) == 0;
    p->gw_sample_ticks = p->gw_ticks0;
    p->self_us0 = bench_self_cpu_us();
    p->t_start = p->t_progress = p->gw_sample_t = uv_hrtime();
    bench_series_start(&p->sec, p->t_start);
    if (i == BENCH_X2S || !(b->o.dirs & 1 << BENCH_X2S))
        bench_print_sec_header();
    uv_timer_start(&b->second, on_second, 1000, 1000);
    if (i == BENCH_S2X && b->o.sip_udp && !b->o.no_sip_rtx)
        uv_timer_start(&b->rtx, on_rtx, RTX_SCAN_MS, RTX_SCAN_MS);
    if (b->o.rate > 0) {
        p->offering = 1;
        uv_timer_start(&b->clock, on_clock, 1, 1);
        pump_open(b);
    } else {
        pump(b);
    }
}

void bench_xmpp_ready(struct bench *b)
{
    phase_begin(b, BENCH_X2S);
}

void bench_sip_ready(struct bench *b)
{
    phase_begin(b, BENCH_S2X);
}

/* A message is accounted for once it arrived (and, SIP->XMPP, was answered),
 * or once it was refused. The phase ends when all are. */
static void settle(struct bench *b, enum bench_dir d, long seq)
{
    struct bench_phase *p = &b->ph[d];
    if (seq < 0 || seq >= p->n)
        return;
    uint8_t f = p->flags[seq];
    if (!(f & BM_SENT) || (f & BM_DONE))
        return;
    int ok = d == BENCH_X2S ? (f & BM_ARRIVED) : (f & BM_ARRIVED) && (f & BM_ANSWERED);
    if (!ok && !(f & BM_ERROR))
        return;
    p->flags[seq] |= BM_DONE;
    p->done++;
    if (p->finished || b->cur != (int)d)
        return;
    p->t_end = uv_hrtime();
    if (b->o.rate > 0) {
        if (!p->offering && p->done == p->sent)
            phase_end(b);
    } else if (p->done == p->n) {
        phase_end(b);
    } else {
        pump(b);
    }
}

void bench_arrived(struct bench *b, enum bench_dir d, long seq, uint32_t key)
{
    if (b->stopping)
        return;
    if (bench_phase_arrive(&b->ph[d], seq, key, uv_hrtime()))
        settle(b, d, seq);
}

void bench_answered(struct bench *b, enum bench_dir d, long seq, int status)
{
    if (b->stopping)
        return;
    if (status >= 200 && status < 300) {
        if (bench_phase_answer(&b->ph[d], seq, uv_hrtime()))
            settle(b, d, seq);
        return;
    }
    char what[48];
    snprintf(what, sizeof what, "SIP %d", status);
    bench_msg_error(b, d, seq, what);
}

void bench_msg_error(struct bench *b, enum bench_dir d, long seq, const char *what)
{
    if (b->stopping)
        return;
    struct bench_phase *p = &b->ph[d];
    if (p->shown_errors < BENCH_ERRORS_SHOWN) {
        p->shown_errors++;
        fprintf(stderr, "xsbench: %s: message %ld: %s\n", p->name, seq, what);
    }
    if (bench_phase_refuse(p, seq, what, uv_hrtime()))
        settle(b, d, seq);
}

static void on_tick(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->stopping)
        return;
    uint64_t now = uv_hrtime();
    if (!b->gw_ready) {
        if (b->gw_pid && bench_gw_ready(b)) {
            b->gw_ready = 1;
            b->ready_since = now;
            if (b->o.dirs & 1 << BENCH_X2S) {
                bench_xmpp_connect(b);
            } else {
                b->cur = BENCH_S2X;
                bench_sip_connect(b);
            }
        } else if (now - b->ready_since > READY_TIMEOUT_NS) {
            bench_fatal(b, "the gateway did not log ev=gateway.ready in time (log: %s)",
                        b->log_path);
        }
        return;
    }
    if (b->cur < 0 || !b->ph[b->cur].started) {
        if (now - b->ready_since > READY_TIMEOUT_NS)
            bench_fatal(b, "%s: the streams were not set up in time",
                        b->cur < 0 ? "xmpp->sip" : b->ph[b->cur].name);
        return;
    }
    struct bench_phase *p = &b->ph[b->cur];
    if (p->finished)
        return;
    double drain = b->o.drain;
    if (b->o.rate > 0) {
        if (!p->offering && (double)(now - p->t_offer_end) / 1e9 > drain) {
            fprintf(stderr, "xsbench: %s: %.1f s after the offering, %ld of %ld accounted for\n",
                    p->name, drain, p->done, p->sent);
            phase_end(b);
        }
    } else if ((double)(now - p->t_progress) / 1e9 > drain) {
        fprintf(stderr, "xsbench: %s: no progress for %.1f s, %ld of %ld accounted for\n", p->name,
                drain, p->done, p->n);
        phase_end(b);
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct bench *b = t->data;
    bench_fatal(b, "the run took longer than %.0f s", b->o.timeout);
}

static void on_signal(uv_signal_t *h, int signum)
{
    bench_fatal(h->data, "interrupted by signal %d", signum);
}

static int setup(struct bench *b)
{
    /* Rows for every second the phase can last: the offering, its catch-up,
     * the drain, and a margin. */
    long secs = (long)(b->o.rate > 0 ? b->o.duration + b->o.drain : b->o.timeout) + 5;
    int rc = bench_phase_init(&b->ph[BENCH_X2S], "xmpp->sip", b->o.n, secs);
    if (rc == 0)
        rc = bench_phase_init(&b->ph[BENCH_S2X], "sip->xmpp", b->o.n, secs);
    if (rc != 0) {
        fprintf(stderr, "xsbench: cannot allocate for %ld messages\n", b->o.n);
        return rc;
    }
    if (b->o.tls) {
        static const char *const names[] = {BENCH_DOMAIN};
        char err[256];
        rc = xs_tls_ctx_new(NULL, NULL, names, 1, &b->tls, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "xsbench: TLS: %s\n", err);
            return rc;
        }
    }
    if (b->o.fixed_ports) {
        b->peer_port = BENCH_PEER_PORT + b->o.port_offset;
        b->hop_tcp_port = b->hop_udp_port = BENCH_HOP_PORT + b->o.port_offset;
    }
    if ((rc = bench_xmpp_listen(b)) != 0 || (rc = bench_sip_listen(b)) != 0)
        return rc;
    if ((rc = bench_gw_start(b)) != 0)
        return rc;
    b->ready_since = uv_hrtime();
    uv_timer_start(&b->tick, on_tick, TICK_MS, TICK_MS);
    uv_timer_start(&b->deadline, on_deadline, (uint64_t)(b->o.timeout * 1000), 0);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    return 0;
}

int main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;
    if (bench_parse_opts(argc, argv, &b->o) != 0)
        return 2;
    if (b->o.print_policy) {
        b->gw_xmpp_port = BENCH_GW_XMPP_PORT + b->o.port_offset;
        b->gw_sip_port = BENCH_GW_SIP_PORT + b->o.port_offset;
        b->peer_port = BENCH_PEER_PORT + b->o.port_offset;
        b->hop_tcp_port = b->hop_udp_port = BENCH_HOP_PORT + b->o.port_offset;
        char text[2048];
        if (bench_gw_format_policy(b, text, sizeof text) < 0)
            return 1;
        fputs(text, stdout);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    b->loop = uv_default_loop();
    b->cur = -1;
    b->gw_hwm_kb = -1;
    b->run_id = uv_hrtime() ^ ((uint64_t)getpid() << 32);
    uv_timer_t *timers[] = {&b->deadline, &b->tick, &b->retry,     &b->clock,
                            &b->second,   &b->rtx,  &b->kill_timer};
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
        uv_timer_init(b->loop, timers[i]);
        timers[i]->data = b;
    }
    uv_signal_init(b->loop, &sig_int);
    uv_signal_init(b->loop, &sig_term);
    sig_int.data = sig_term.data = b;
    if (setup(b) != 0) {
        b->failed = 1;
        b->exit_code = 1;
        stop(b);
    }
    uv_run(b->loop, UV_RUN_DEFAULT);
    uv_loop_close(b->loop);
    bench_xmpp_free(b);
    bench_sip_free(b);
    bench_phase_free(&b->ph[0]);
    bench_phase_free(&b->ph[1]);
    if (b->tls)
        xs_tls_ctx_unref(b->tls);
    bench_gw_cleanup(b);
    return b->exit_code;
}
