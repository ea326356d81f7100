/* The SIP transaction layer at scale: its table and timer queues with a
 * clock driven by hand (millions of transactions in a few seconds), the
 * Timer E sequence, and the layer's limits at their value and one over,
 * with the backpressure signal and the once-a-second overload line. */
#include <fcntl.h>

#include "core/log.h"
#include "sip/sip.h"
#include "sip/sip_txn_table.h"
#include "sip/sip_txn_timer.h"
#include "sip_testutil.h"

/* ---- table and queues, by hand ---- */

struct ent {
    struct xs__sip_tnode node;
    struct xs__sip_tent tent;
    uint64_t born;
    char key[40];
};

struct sim {
    struct xs__sip_table table;
    struct xs__sip_clock clock;
    struct xs__sip_tq *q;
    uint64_t now;
    unsigned long expired, late, early;
};

static void sim_expire(void *ud, int id, struct xs__sip_tent *e)
{
    struct sim *s = ud;
    struct ent *x = (struct ent *)((char *)e - offsetof(struct ent, tent));
    if (s->now > x->born + s->q->timeout)
        s->late++;
    if (s->now < x->born + s->q->timeout)
        s->early++;
    xs__sip_table_remove(&s->table, &x->node);
    free(x);
    s->expired++;
}

static size_t longest_chain(const struct xs__sip_table *t)
{
    size_t longest = 0;
    for (size_t i = 0; i < t->n_buckets; i++) {
        size_t n = 0;
        for (const struct xs__sip_tnode *x = t->buckets[i]; x; x = x->hnext)
            n++;
        if (n > longest)
            longest = n;
    }
    return longest;
}

/* 2,000,000 completed transactions, 10 a millisecond for 200 s of clock
 * time, each kept 32 s (Timer J) and looked up again once (a
 * retransmission) while it lives: every one expires exactly on time, the
 * table holds what lives and nothing else, and its chains stay short. */
static void test_million(void)
{
    struct sim s = {0};
    CHECK(xs__sip_table_init(&s.table, 16) == 0);
    xs__sip_clock_init(&s.clock, NULL, sim_expire, &s);
    s.q = xs__sip_clock_queue(&s.clock, 7, 32000);
    const unsigned per_ms = 10, total = 2000000;
    unsigned made = 0, found = 0, peak = 0;
    size_t chain_at_peak = 0;
    uint64_t t0 = uv_hrtime();
    for (s.now = 0; made < total || s.q->count; s.now++) {
        xs__sip_clock_run(&s.clock, s.now);
        for (unsigned i = 0; i < per_ms && made < total; i++, made++) {
            struct ent *x = malloc(sizeof *x);
            snprintf(x->key, sizeof x->key, "b=z9hG4bK%u|10.0.0.1:5060|MESSAGE", made);
            x->node.key = x->key;
            x->born = s.now;
            xs__sip_table_insert(&s.table, &x->node);
            xs__sip_clock_push(&s.clock, s.q, &x->tent, s.now);
        }
        /* A retransmission of one sent 16 s ago finds its transaction. */
        if (made > 16000 * per_ms && made < total) {
            char key[40];
            snprintf(key, sizeof key, "b=z9hG4bK%u|10.0.0.1:5060|MESSAGE", made - 16000 * per_ms);
            found += xs__sip_table_find(&s.table, key) != NULL;
        }
        if (s.table.count > peak)
            peak = (unsigned)s.table.count;
        if (s.now == 40000)
            chain_at_peak = longest_chain(&s.table);
        CHECK(s.table.count == s.q->count);
    }
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    printf("million: %u transactions, peak %u live, %zu buckets, longest chain %zu, %.2f s\n", made,
           peak, s.table.n_buckets, chain_at_peak, secs);
    CHECK(s.expired == total && s.late == 0 && s.early == 0);
    CHECK(peak == 32000 * per_ms);
    CHECK(s.table.count == 0 && s.table.n_buckets >= peak);
    CHECK(chain_at_peak > 0 && chain_at_peak <= 12);
    CHECK(found == total / per_ms - 16000 - 1);
    CHECK(xs__sip_clock_next(&s.clock) == UINT64_MAX);
    xs__sip_table_free(&s.table);
}

struct etrace {
    struct xs__sip_clock clock;
    struct xs__sip_tq *qe[8], *qf;
    size_t n_e, idx;
    uint64_t now;
    uint64_t fired[32];
    size_t n_fired;
    int timed_out;
    struct xs__sip_tent e, f;
};

/* A client transaction's two timers, as the layer runs them: E moves from
 * one interval's queue to the next, F ends it. */
static void etrace_expire(void *ud, int id, struct xs__sip_tent *ent)
{
    struct etrace *t = ud;
    if (id == 100) {
        t->timed_out = 1;
        xs__sip_tent_cancel(&t->e);
        return;
    }
    if (t->n_fired < 32)
        t->fired[t->n_fired++] = t->now;
    if (t->idx + 1 < t->n_e)
        t->idx++;
    xs__sip_clock_push(&t->clock, t->qe[t->idx], ent, t->now);
}

/* Timer E with RFC 3261's values: retransmissions at 0.5, 1.5, 3.5, 7.5,
 * then every 4 s (T2); Timer F ends it at 32 s. A cancelled entry never
 * fires, wherever it sits in its queue. */
static void test_timer_e(void)
{
    struct etrace t = {0};
    xs__sip_clock_init(&t.clock, NULL, etrace_expire, &t);
    uint64_t iv[] = {500, 1000, 2000, 4000};
    for (size_t i = 0; i < 4; i++)
        t.qe[t.n_e++] = xs__sip_clock_queue(&t.clock, (int)i, iv[i]);
    t.qf = xs__sip_clock_queue(&t.clock, 100, 32000);
    xs__sip_clock_push(&t.clock, t.qe[0], &t.e, 0);
    xs__sip_clock_push(&t.clock, t.qf, &t.f, 0);
    for (t.now = 0; !t.timed_out && t.now < 40000; t.now++)
        xs__sip_clock_run(&t.clock, t.now);
    uint64_t want[] = {500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500};
    CHECK(t.n_fired == 10);
    for (size_t i = 0; i < 10 && i < t.n_fired; i++)
        CHECK(t.fired[i] == want[i]);
    CHECK(t.timed_out && t.now == 32001);
    CHECK(xs__sip_clock_next(&t.clock) == UINT64_MAX);

    /* Cancelling from the head, the middle and the tail. */
    struct xs__sip_tent e[5];
    memset(e, 0, sizeof e);
    struct xs__sip_clock c;
    struct sim s = {0};
    xs__sip_clock_init(&c, NULL, sim_expire, &s);
    struct xs__sip_tq *q = xs__sip_clock_queue(&c, 1, 10);
    for (int i = 0; i < 5; i++)
        xs__sip_clock_push(&c, q, &e[i], (uint64_t)i);
    xs__sip_tent_cancel(&e[0]);
    xs__sip_tent_cancel(&e[2]);
    xs__sip_tent_cancel(&e[4]);
    xs__sip_tent_cancel(&e[4]);
    CHECK(q->count == 2 && q->head == &e[1] && q->tail == &e[3] && e[1].next == &e[3]);
    CHECK(xs__sip_clock_next(&c) == 11);
    xs__sip_tent_cancel(&e[1]);
    xs__sip_tent_cancel(&e[3]);
    CHECK(q->count == 0 && !q->head && !q->tail);
    CHECK(xs__sip_clock_run(&c, 1000) == 0);
}

/* ---- the layer's limits, through the SIP side ---- */

struct outcome {
    int calls;
    enum xs_cond cond;
};

static void done_cb(void *ud, enum xs_cond cond, const char *text)
{
    struct outcome *o = ud;
    (void)text;
    o->calls++;
    o->cond = cond;
}

static struct xs_event *message(void)
{
    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_XMPP);
    xs_event_set(&ev->from, "sip:alice@xmpp.test");
    xs_event_set(&ev->to, "sip:bob@sip.test");
    xs_event_set(&ev->body, "x");
    return ev;
}

struct pressure {
    int calls, high;
};

static void on_pressure(void *ud, int high)
{
    struct pressure *p = ud;
    p->calls++;
    p->high = high;
}

static int closed;
static void on_closed(void *ud)
{
    (void)ud;
    closed = 1;
}

static void stop(uv_loop_t *loop, struct xs_sip *sip)
{
    closed = 0;
    xs_sip_close(sip, on_closed, NULL);
    PUMP_UNTIL(loop, closed, 2000);
    CHECK(closed);
}

/* Logs go to stderr; a test that counts lines sends them to a file. */
static int log_fd = -1, saved_stderr = -1;
static char log_path[64];

static void log_capture(void)
{
    snprintf(log_path, sizeof log_path, "/tmp/test_sip_txn-%d.log", (int)getpid());
    fflush(stderr);
    saved_stderr = dup(2);
    log_fd = open(log_path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    dup2(log_fd, 2);
}

/* Returns how many captured lines contain `what`; *last gets the last. */
static int log_count(const char *what, char *last, size_t n)
{
    fflush(stderr);
    FILE *f = fopen(log_path, "r");
    char line[2048];
    int c = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, what)) {
            c++;
            snprintf(last, n, "%s", line);
        }
    if (f)
        fclose(f);
    return c;
}

static void log_release(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    close(log_fd);
    unlink(log_path);
}

static char buf[65536], resp[8192];

#define CMAX 8

/* sip.max_transactions toward the next hop: CMAX in flight are carried,
 * the one over is refused at once with resource-constraint (type wait);
 * backpressure rises at three quarters and falls under half; refusals are
 * logged one line a second at most, each with the count since the last,
 * and none goes uncounted; answers make room. */
static void test_client_limit(uv_loop_t *loop)
{
    int hop_port;
    int hop_fd = udp_peer(&hop_port);
    struct test_cfg tc;
    test_cfg_init(&tc, "127.0.0.1", hop_port, XS_SIP_UDP);
    struct xs_sip_opts opts;
    xs_sip_default_opts(&opts);
    opts.max_client_txns = CMAX;
    struct xs_sip *sip = NULL;
    CHECK(xs_sip_start_opts(loop, &tc.cfg, NULL, &opts, NULL, NULL, &sip) == 0 && sip);
    if (!sip)
        return;
    struct pressure p = {0};
    xs_sip_set_pressure(sip, on_pressure, &p);
    struct outcome o[CMAX] = {{0}};
    static char reqs[CMAX][4096];
    int from_port = 0;
    for (int i = 0; i < CMAX; i++) {
        xs_sip_deliver(sip, message(), done_cb, &o[i]);
        CHECK(p.calls == (i + 1 >= CMAX - CMAX / 4 ? 1 : 0));
        size_t n = udp_wait(loop, hop_fd, reqs[i], sizeof reqs[i], 500, &from_port);
        CHECK(n > 0 && o[i].calls == 0);
    }
    CHECK(p.calls == 1 && p.high == 1);

    log_capture();
    struct outcome over = {0};
    xs_sip_deliver(sip, message(), done_cb, &over);
    CHECK(over.calls == 1 && over.cond == XS_COND_RESOURCE_CONSTRAINT);
    CHECK(strcmp(xs_cond_type(over.cond), "wait") == 0);
    for (int i = 0; i < 99; i++) {
        struct outcome more = {0};
        xs_sip_deliver(sip, message(), done_cb, &more);
        CHECK(more.calls == 1 && more.cond == XS_COND_RESOURCE_CONSTRAINT);
    }
    char line[2048] = "";
    CHECK(log_count("ev=sip.overload", line, sizeof line) == 1);
    CHECK(strstr(line, " refused_out=1 ") != NULL);
    /* What the second held back comes out when it ends, counted. */
    pump(loop, 1100);
    CHECK(log_count("ev=sip.overload", line, sizeof line) == 2);
    CHECK(strstr(line, " refused_out=99 ") != NULL);
    CHECK(strstr(line, "reason=\"too many pending transactions\"") != NULL);
    struct outcome late = {0};
    xs_sip_deliver(sip, message(), done_cb, &late);
    CHECK(log_count("ev=sip.overload", line, sizeof line) == 2);
    pump(loop, 1100);
    CHECK(log_count("ev=sip.overload", line, sizeof line) == 3);
    CHECK(strstr(line, " refused_out=1 ") != NULL);
    log_release();

    /* Answers bring the count down: under half, the pressure falls, and a
     * new message is carried again. */
    for (int i = 0; i < CMAX - CMAX / 2 + 1; i++) {
        size_t n = sip_test_respond(reqs[i], 200, "OK", resp, sizeof resp);
        udp_send_to(hop_fd, from_port, resp, n);
        PUMP_UNTIL(loop, o[i].calls == 1, 1000);
        CHECK(o[i].calls == 1 && o[i].cond == XS_COND_NONE);
    }
    CHECK(p.calls == 2 && p.high == 0);
    struct outcome again = {0};
    xs_sip_deliver(sip, message(), done_cb, &again);
    CHECK(again.calls == 0);
    CHECK(udp_wait(loop, hop_fd, buf, sizeof buf, 500, NULL) > 0);
    stop(loop, sip);
    CHECK(again.calls == 1 && again.cond == XS_COND_SERVICE_UNAVAILABLE);
    for (int i = 0; i < CMAX; i++)
        CHECK(o[i].calls == 1);
    close(hop_fd);
}

/* pressure_high caps the high mark below three quarters of the bound: with
 * 3, the third request in flight holds the XMPP side and two answers (one
 * left, under two thirds of 3) release it; nothing is refused. */
static void test_pressure_high(uv_loop_t *loop)
{
    int hop_port;
    int hop_fd = udp_peer(&hop_port);
    struct test_cfg tc;
    test_cfg_init(&tc, "127.0.0.1", hop_port, XS_SIP_UDP);
    struct xs_sip_opts opts;
    xs_sip_default_opts(&opts);
    CHECK(opts.pressure_high == 4096 && opts.max_client_txns == 65536);
    opts.pressure_high = 3;
    struct xs_sip *sip = NULL;
    CHECK(xs_sip_start_opts(loop, &tc.cfg, NULL, &opts, NULL, NULL, &sip) == 0 && sip);
    if (!sip)
        return;
    struct pressure p = {0};
    xs_sip_set_pressure(sip, on_pressure, &p);
    struct outcome o[3] = {{0}};
    static char reqs[3][4096];
    int from_port = 0;
    for (int i = 0; i < 3; i++) {
        xs_sip_deliver(sip, message(), done_cb, &o[i]);
        CHECK(p.calls == (i == 2));
        CHECK(udp_wait(loop, hop_fd, reqs[i], sizeof reqs[i], 500, &from_port) > 0);
    }
    for (int i = 0; i < 2; i++) {
        size_t n = sip_test_respond(reqs[i], 200, "OK", resp, sizeof resp);
        udp_send_to(hop_fd, from_port, resp, n);
        PUMP_UNTIL(loop, o[i].calls == 1, 1000);
        CHECK(o[i].calls == 1 && o[i].cond == XS_COND_NONE);
        CHECK(p.calls == 1 + i && p.high == !i);
    }
    stop(loop, sip);
    CHECK(o[2].calls == 1 && o[2].cond == XS_COND_SERVICE_UNAVAILABLE);
    close(hop_fd);
}

struct router {
    int n;
    xs_done_cb done[16];
    void *ud[16];
};

static void submit(void *r_, struct xs_event *ev, xs_done_cb done, void *ud)
{
    struct router *r = r_;
    xs_event_free(ev);
    if (r->n < 16) {
        r->done[r->n] = done;
        r->ud[r->n] = ud;
    }
    r->n++;
}

static size_t make_message(char *out, size_t n, const char *branch, int port)
{
    return (size_t)snprintf(out, n,
                            "MESSAGE sip:alice@xmpp.test SIP/2.0\r\n"
                            "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s\r\n"
                            "Max-Forwards: 70\r\n"
                            "From: <sip:bob@sip.test>;tag=t1\r\n"
                            "To: <sip:alice@xmpp.test>\r\n"
                            "Call-ID: %s@sip.test\r\n"
                            "CSeq: 1 MESSAGE\r\n"
                            "Content-Type: text/plain\r\n"
                            "Content-Length: 1\r\n\r\nx",
                            port, branch, branch);
}

#define SMAX 4

/* sip.max_transactions from the SIP side: SMAX MESSAGEs wait for the
 * router, the one over gets 503 with Retry-After and is not submitted,
 * and once the router answers one the next is taken again. */
static void test_server_limit(uv_loop_t *loop)
{
    struct test_cfg tc;
    test_cfg_init(&tc, NULL, 0, XS_SIP_UDP);
    struct xs_sip_opts opts;
    xs_sip_default_opts(&opts);
    opts.max_server_txns = SMAX;
    struct router r = {0};
    struct xs_sip *sip = NULL;
    CHECK(xs_sip_start_opts(loop, &tc.cfg, NULL, &opts, submit, &r, &sip) == 0 && sip);
    if (!sip)
        return;
    int port = xs_sip_port(sip, 0);
    int pp;
    int fd = udp_peer(&pp);
    char m[2048], branch[32];
    for (int i = 0; i < SMAX; i++) {
        snprintf(branch, sizeof branch, "z9hG4bKlim%d", i);
        udp_send_to(fd, port, m, make_message(m, sizeof m, branch, pp));
        PUMP_UNTIL(loop, r.n == i + 1, 1000);
    }
    CHECK(r.n == SMAX);
    CHECK(udp_wait(loop, fd, buf, sizeof buf, 50, NULL) == 0);
    udp_send_to(fd, port, m, make_message(m, sizeof m, "z9hG4bKover", pp));
    size_t n = udp_wait(loop, fd, buf, sizeof buf, 500, NULL);
    CHECK(n > 0 && strncmp(buf, "SIP/2.0 503 ", 12) == 0);
    CHECK(strstr(buf, "branch=z9hG4bKover") && strstr(buf, "\r\nRetry-After: 5\r\n"));
    CHECK(r.n == SMAX);
    /* The router answers one: 200 for it, and room for one more. */
    r.done[0](r.ud[0], XS_COND_NONE, NULL);
    n = udp_wait(loop, fd, buf, sizeof buf, 500, NULL);
    CHECK(n > 0 && strncmp(buf, "SIP/2.0 200 OK\r\n", 16) == 0 && strstr(buf, "z9hG4bKlim0"));
    udp_send_to(fd, port, m, make_message(m, sizeof m, "z9hG4bKover", pp));
    PUMP_UNTIL(loop, r.n == SMAX + 1, 1000);
    CHECK(r.n == SMAX + 1);
    udp_send_to(fd, port, m, make_message(m, sizeof m, "z9hG4bKover2", pp));
    n = udp_wait(loop, fd, buf, sizeof buf, 500, NULL);
    CHECK(n > 0 && strncmp(buf, "SIP/2.0 503 ", 12) == 0 && strstr(buf, "z9hG4bKover2"));
    stop(loop, sip);
    /* Close answered the waiting ones 503; their late done() finds nothing. */
    for (int i = 1; i < SMAX + 1; i++)
        r.done[i](r.ud[i], XS_COND_NONE, NULL);
    close(fd);
}

int main(void)
{
    xs_log_set_level(getenv("XS_TEST_DEBUG") ? XS_LOG_DEBUG : XS_LOG_WARN);
    test_million();
    test_timer_e();
    uv_loop_t loop;
    uv_loop_init(&loop);
    test_client_limit(&loop);
    test_pressure_high(&loop);
    test_server_limit(&loop);
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(uv_loop_close(&loop) == 0);
    return check_report("test_sip_txn");
}
