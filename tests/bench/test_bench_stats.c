/* Unit test of xsbench's bookkeeping (bench_stats.c): nearest-rank
 * percentiles, per-second bucketing by event time, and each message's fate
 * (delivered, refused, lost, duplicate, retransmission, contradiction), on
 * made-up clocks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define S 1000000000ull
#define MS 1000000ull

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, a_, b_); \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void test_percentiles(void)
{
    uint64_t v[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = (uint64_t)(1000 - i); /* 1000..1, unsorted */
    bench_sort(v, 1000);
    CHECK_EQ(v[0], 1);
    CHECK_EQ(v[999], 1000);
    /* Nearest rank: the smallest value with at least q of the sample at or
     * below it. */
    CHECK_EQ(bench_pct(v, 1000, 0.50), 500);
    CHECK_EQ(bench_pct(v, 1000, 0.99), 990);
    CHECK_EQ(bench_pct(v, 1000, 0.999), 999);
    CHECK_EQ(bench_pct(v, 1000, 1.0), 1000);
    CHECK_EQ(bench_pct(v, 1000, 0.0), 1);
    /* Small samples: p99 of 10 values is the largest; p50 the 5th. */
    CHECK_EQ(bench_pct(v, 10, 0.99), 10);
    CHECK_EQ(bench_pct(v, 10, 0.50), 5);
    CHECK_EQ(bench_pct(v, 1, 0.50), 1);
    CHECK_EQ(bench_pct(v, 0, 0.50), 0);
    /* 1001 values: 0.5 * 1001 = 500.5, so the 501st. */
    uint64_t w[1001];
    for (int i = 0; i < 1001; i++)
        w[i] = (uint64_t)i;
    CHECK_EQ(bench_pct(w, 1001, 0.50), 500);
}

static void test_series(void)
{
    struct bench_series s;
    CHECK_EQ(bench_series_init(&s, 4, 100), 0);
    uint64_t t0 = 5 * S;
    bench_series_start(&s, t0);
    /* Second 1: two offered, one delivered at 3 ms. */
    bench_series_count(&s, BEV_OFFERED, t0);
    bench_series_count(&s, BEV_OFFERED, t0 + 999 * MS);
    bench_series_count(&s, BEV_DELIVERED, t0 + 500 * MS);
    bench_series_latency(&s, 3 * MS, t0 + 500 * MS);
    CHECK_EQ(s.n_rows, 0);
    /* An event in second 3 closes seconds 1 and 2 first, though no timer
     * ran: second 2 is an empty row. */
    bench_series_count(&s, BEV_REFUSED, t0 + 2 * S + 1);
    CHECK_EQ(s.n_rows, 2);
    CHECK_EQ(s.rows[0].offered, 2);
    CHECK_EQ(s.rows[0].delivered, 1);
    CHECK_EQ(s.rows[0].refused, 0);
    CHECK_EQ(s.rows[0].p50, 3 * MS);
    CHECK_EQ(s.rows[0].max, 3 * MS);
    CHECK(s.rows[0].gw_cpu < 0 && s.rows[0].gw_rss_kb < 0);
    CHECK_EQ(s.rows[1].offered, 0);
    CHECK_EQ(s.rows[1].p99, 0);
    /* The exact boundary belongs to the later second. */
    bench_series_count(&s, BEV_DUP, t0 + 3 * S);
    CHECK_EQ(s.n_rows, 3);
    CHECK_EQ(s.rows[2].refused, 1);
    CHECK_EQ(s.rows[2].dups, 0);
    /* Latencies of second 4: 1..100 ms. */
    for (int i = 100; i >= 1; i--)
        bench_series_latency(&s, (uint64_t)i * MS, t0 + 3 * S + 10 * MS);
    bench_series_advance(&s, t0 + 3 * S + 999 * MS); /* still second 4 */
    CHECK_EQ(s.n_rows, 3);
    bench_series_close(&s, t0 + 3 * S + 999 * MS);
    CHECK_EQ(s.n_rows, 4);
    CHECK_EQ(s.rows[3].dups, 1);
    CHECK_EQ(s.rows[3].p50, 50 * MS);
    CHECK_EQ(s.rows[3].p99, 99 * MS);
    CHECK_EQ(s.rows[3].p999, 100 * MS);
    CHECK_EQ(s.rows[3].max, 100 * MS);
    /* Closed: nothing more is counted. */
    bench_series_count(&s, BEV_OFFERED, t0 + 9 * S);
    CHECK_EQ(s.n_rows, 4);
    bench_series_free(&s);

    /* More seconds than rows: the rest is added into the last row, not lost. */
    CHECK_EQ(bench_series_init(&s, 2, 10), 0);
    bench_series_start(&s, 0);
    for (int sec = 0; sec < 5; sec++)
        bench_series_count(&s, BEV_OFFERED, (uint64_t)sec * S + 1);
    bench_series_close(&s, 5 * S);
    CHECK_EQ(s.n_rows, 2);
    CHECK_EQ(s.rows[0].offered, 1);
    CHECK_EQ(s.rows[1].offered, 4);
    bench_series_free(&s);
}

/* The totals are the sums of the rows, and offered = delivered + refused +
 * lost, whatever order the events come in. */
static void test_phase(void)
{
    struct bench_phase p;
    CHECK_EQ(bench_phase_init(&p, "x", 10, 10), 0);
    p.t_start = 0;
    bench_series_start(&p.sec, 0);
    for (long i = 0; i < 8; i++)
        bench_phase_offer(&p, i, (uint64_t)i * 100 * MS,
                          (uint64_t)i * 100 * MS + (i == 7 ? 20 * MS : 0), 10 * MS);
    bench_phase_offer(&p, 7, 0, 0, 10 * MS); /* offered once only */
    CHECK_EQ(p.sent, 8);
    CHECK_EQ(p.late, 1);
    /* 0: delivered, then retransmitted (same transaction), then delivered
     * again in another transaction: one duplicate. */
    CHECK_EQ(bench_phase_arrive(&p, 0, 77, 5 * MS), 1);
    CHECK_EQ(bench_phase_arrive(&p, 0, 77, 6 * MS), 0);
    CHECK_EQ(bench_phase_arrive(&p, 0, 78, 7 * MS), 0);
    CHECK_EQ(p.retrans, 1);
    CHECK_EQ(p.dups, 1);
    CHECK_EQ(p.t_recv[0], 5 * MS);
    /* Without a key (XMPP), a second arrival is always a duplicate. */
    CHECK_EQ(bench_phase_arrive(&p, 1, 0, 150 * MS), 1);
    CHECK_EQ(bench_phase_arrive(&p, 1, 0, 160 * MS), 0);
    CHECK_EQ(p.dups, 2);
    /* 2: refused; the same answer again changes nothing; arriving after
     * that is a contradiction, not a delivery. */
    CHECK_EQ(bench_phase_refuse(&p, 2, "resource-constraint/wait", 1200 * MS), 1);
    CHECK_EQ(bench_phase_refuse(&p, 2, "resource-constraint/wait", 1300 * MS), 0);
    CHECK_EQ(bench_phase_arrive(&p, 2, 5, 1400 * MS), 0);
    CHECK_EQ(p.conflicts, 1);
    /* 3: refused with another answer; 4: with the first one again. */
    CHECK_EQ(bench_phase_refuse(&p, 3, "SIP 503", 1500 * MS), 1);
    CHECK_EQ(bench_phase_refuse(&p, 4, "resource-constraint/wait", 1500 * MS), 1);
    CHECK_EQ(p.refused, 3);
    CHECK(!strcmp(p.answers[0].what, "resource-constraint/wait"));
    CHECK_EQ(p.answers[0].count, 2);
    CHECK(!strcmp(p.answers[1].what, "SIP 503"));
    CHECK_EQ(p.answers[1].count, 1);
    /* 5 (scheduled at 500 ms): delivered, and answered 200 after T1. */
    CHECK_EQ(bench_phase_arrive(&p, 5, 0, 1510 * MS), 1);
    CHECK_EQ(bench_phase_answer(&p, 5, 1520 * MS), 1);
    CHECK_EQ(bench_phase_answer(&p, 5, 1530 * MS), 0);
    CHECK_EQ(p.t1_answers, 1);
    CHECK_EQ(p.answered, 1);
    /* Not ours: never offered, out of range. */
    CHECK_EQ(bench_phase_arrive(&p, 9, 0, 1 * S), 0);
    CHECK_EQ(bench_phase_arrive(&p, -1, 0, 1 * S), 0);
    CHECK_EQ(bench_phase_refuse(&p, 10, "SIP 500", 1 * S), 0);
    CHECK_EQ(p.unexpected, 3);
    /* 6 and 7 never come back: lost. Once the phase ended, a late arrival
     * is only noted, so the totals stay the sums of the rows. */
    CHECK_EQ(p.arrived, 3);
    CHECK_EQ(bench_phase_lost(&p), 2);
    p.finished = 1;
    bench_series_close(&p.sec, 1600 * MS);
    CHECK_EQ(bench_phase_arrive(&p, 6, 0, 1700 * MS), 0);
    CHECK_EQ(p.after_end, 1);
    CHECK_EQ(bench_phase_lost(&p), 2);
    CHECK_EQ(p.sent, p.arrived + p.refused + bench_phase_lost(&p));
    long off = 0, del = 0, ref = 0, dup = 0, late = 0;
    for (long i = 0; i < p.sec.n_rows; i++) {
        off += p.sec.rows[i].offered;
        del += p.sec.rows[i].delivered;
        ref += p.sec.rows[i].refused;
        dup += p.sec.rows[i].dups;
        late += p.sec.rows[i].late;
    }
    CHECK_EQ(p.sec.n_rows, 2);
    CHECK_EQ(off, p.sent);
    CHECK_EQ(del, p.arrived);
    CHECK_EQ(ref, p.refused);
    CHECK_EQ(dup, p.dups);
    CHECK_EQ(late, p.late);
    CHECK_EQ(p.sec.rows[0].delivered, 2);
    CHECK_EQ(p.sec.rows[1].delivered, 1);
    CHECK_EQ(p.sec.rows[1].refused, 3);
    CHECK_EQ(bench_phase_verdict(&p, 0), 1);
    bench_phase_free(&p);
}

/* The exit status: duplicates and lost messages fail it; refusals alone
 * give 3; only a clean run gives 0. */
static void test_verdict(void)
{
    struct bench_phase p;
    CHECK_EQ(bench_phase_init(&p, "x", 3, 4), 0);
    bench_series_start(&p.sec, 0);
    for (long i = 0; i < 3; i++)
        bench_phase_offer(&p, i, 0, 0, MS);
    bench_phase_arrive(&p, 0, 0, MS);
    bench_phase_arrive(&p, 1, 0, MS);
    CHECK_EQ(bench_phase_verdict(&p, 0), 1); /* 2 is lost */
    bench_phase_refuse(&p, 2, "SIP 503", MS);
    CHECK_EQ(bench_phase_verdict(&p, 0), 3);
    CHECK_EQ(bench_phase_verdict(&p, 1), 1); /* one delivered never answered */
    bench_phase_arrive(&p, 1, 0, 2 * MS);
    CHECK_EQ(p.dups, 1);
    CHECK_EQ(bench_phase_verdict(&p, 0), 1);
    bench_phase_free(&p);

    CHECK_EQ(bench_phase_init(&p, "x", 2, 4), 0);
    bench_series_start(&p.sec, 0);
    bench_phase_offer(&p, 0, 0, 0, MS);
    bench_phase_arrive(&p, 0, 0, MS);
    CHECK_EQ(bench_phase_verdict(&p, 0), 1); /* 1 was never offered */
    bench_phase_offer(&p, 1, 0, 0, MS);
    bench_phase_arrive(&p, 1, 0, MS);
    CHECK_EQ(bench_phase_verdict(&p, 0), 0);
    bench_phase_free(&p);
}

int main(void)
{
    test_percentiles();
    test_series();
    test_phase();
    test_verdict();
    if (failures) {
        fprintf(stderr, "test_bench_stats: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_bench_stats: ok\n");
    return 0;
}
