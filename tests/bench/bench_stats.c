/* Per-phase bookkeeping: every message's fate, the per-second rows, the
 * refusal answers, latency percentiles, and the gateway's CPU and memory
 * from /proc. Nothing here touches the network or the loop, so the unit
 * test (test_bench_stats.c) drives it with made-up clocks. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "core/err.h"

#define NS_PER_S 1000000000ull

int bench_series_init(struct bench_series *s, long max_rows, long lat_cap)
{
    memset(s, 0, sizeof *s);
    s->cap = max_rows > 0 ? max_rows : 1;
    s->lat_cap = lat_cap > 0 ? lat_cap : 1;
    s->rows = calloc((size_t)s->cap, sizeof *s->rows);
    s->lat = calloc((size_t)s->lat_cap, sizeof *s->lat);
    if (!s->rows || !s->lat) {
        bench_series_free(s);
        return XS_ENOMEM;
    }
    return 0;
}

void bench_series_free(struct bench_series *s)
{
    free(s->rows);
    free(s->lat);
    s->rows = NULL;
    s->lat = NULL;
}

void bench_series_start(struct bench_series *s, uint64_t t0)
{
    s->t0 = t0;
    memset(&s->cur, 0, sizeof s->cur);
    s->cur.gw_cpu = -1;
    s->cur.gw_rss_kb = -1;
}

static void close_row(struct bench_series *s)
{
    struct bench_sec *r = &s->cur;
    bench_sort(s->lat, s->lat_n);
    r->p50 = bench_pct(s->lat, s->lat_n, 0.50);
    r->p99 = bench_pct(s->lat, s->lat_n, 0.99);
    r->p999 = bench_pct(s->lat, s->lat_n, 0.999);
    r->max = s->lat_n ? s->lat[s->lat_n - 1] : 0;
    /* The row table is sized for the longest run; a phase that outlives it
     * keeps counting into the last row rather than losing events. */
    if (s->n_rows < s->cap) {
        s->rows[s->n_rows++] = *r;
    } else {
        struct bench_sec *last = &s->rows[s->cap - 1];
        last->offered += r->offered;
        last->delivered += r->delivered;
        last->refused += r->refused;
        last->dups += r->dups;
        last->late += r->late;
    }
    memset(r, 0, sizeof *r);
    s->lat_n = 0;
    r->gw_cpu = -1;
    r->gw_rss_kb = -1;
}

void bench_series_advance(struct bench_series *s, uint64_t now)
{
    if (s->closed || now < s->t0)
        return;
    long sec = (long)((now - s->t0) / NS_PER_S);
    while (s->n_rows < sec && s->n_rows < s->cap)
        close_row(s);
}

void bench_series_count(struct bench_series *s, enum bench_ev kind, uint64_t now)
{
    if (s->closed)
        return;
    bench_series_advance(s, now);
    switch (kind) {
    case BEV_OFFERED:
        s->cur.offered++;
        break;
    case BEV_DELIVERED:
        s->cur.delivered++;
        break;
    case BEV_REFUSED:
        s->cur.refused++;
        break;
    case BEV_DUP:
        s->cur.dups++;
        break;
    case BEV_LATE:
        s->cur.late++;
        break;
    }
}

void bench_series_latency(struct bench_series *s, uint64_t lat_ns, uint64_t now)
{
    if (s->closed)
        return;
    bench_series_advance(s, now);
    if (s->lat_n < s->lat_cap)
        s->lat[s->lat_n++] = lat_ns;
}

void bench_series_close(struct bench_series *s, uint64_t now)
{
    if (s->closed)
        return;
    bench_series_advance(s, now);
    close_row(s);
    s->closed = 1;
}

int bench_phase_init(struct bench_phase *p, const char *name, long n, long max_secs)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    p->n = n;
    p->t_send = calloc((size_t)n, sizeof *p->t_send);
    p->t_recv = calloc((size_t)n, sizeof *p->t_recv);
    p->t_ans = calloc((size_t)n, sizeof *p->t_ans);
    p->key = calloc((size_t)n, sizeof *p->key);
    p->rtx = calloc((size_t)n, sizeof *p->rtx);
    p->flags = calloc((size_t)n, sizeof *p->flags);
    if (!p->t_send || !p->t_recv || !p->t_ans || !p->key || !p->rtx || !p->flags ||
        bench_series_init(&p->sec, max_secs, n) != 0) {
        bench_phase_free(p);
        return XS_ENOMEM;
    }
    return 0;
}

void bench_phase_free(struct bench_phase *p)
{
    free(p->t_send);
    free(p->t_recv);
    free(p->t_ans);
    free(p->key);
    free(p->rtx);
    p->rtx = NULL;
    free(p->flags);
    p->t_send = p->t_recv = p->t_ans = NULL;
    p->key = NULL;
    p->flags = NULL;
    bench_series_free(&p->sec);
}

void bench_phase_offer(struct bench_phase *p, long seq, uint64_t sched, uint64_t now,
                       uint64_t late_ns)
{
    if (seq < 0 || seq >= p->n || (p->flags[seq] & BM_SENT))
        return;
    p->flags[seq] |= BM_SENT;
    p->t_send[seq] = sched;
    p->sent++;
    bench_series_count(&p->sec, BEV_OFFERED, now);
    if (now > sched && now - sched > late_ns) {
        p->late++;
        bench_series_count(&p->sec, BEV_LATE, now);
    }
}

/* The message seq, if it is one we offered. After the phase ended, its
 * counts are frozen: what still comes is only noted, so the totals stay
 * the sums of the rows. */
static int ours(struct bench_phase *p, long seq)
{
    if (seq < 0 || seq >= p->n || !(p->flags[seq] & BM_SENT)) {
        p->unexpected++;
        return 0;
    }
    return 1;
}

int bench_phase_arrive(struct bench_phase *p, long seq, uint32_t key, uint64_t now)
{
    if (!ours(p, seq))
        return 0;
    uint8_t *f = &p->flags[seq];
    if (*f & BM_ARRIVED) {
        if (key && key == p->key[seq]) {
            p->retrans++;
            return 0;
        }
        p->dups++;
        bench_series_count(&p->sec, BEV_DUP, now);
        return 0;
    }
    p->t_progress = now;
    if (*f & BM_ERROR) {
        p->conflicts++;
        *f |= BM_ARRIVED;
        return 0;
    }
    if (p->finished) {
        p->after_end++;
        return 0;
    }
    *f |= BM_ARRIVED;
    p->key[seq] = key;
    p->t_recv[seq] = now;
    p->arrived++;
    bench_series_count(&p->sec, BEV_DELIVERED, now);
    bench_series_latency(&p->sec, now >= p->t_send[seq] ? now - p->t_send[seq] : 0, now);
    return 1;
}

static void tally(struct bench_phase *p, const char *what)
{
    for (int i = 0; i < BENCH_ANSWERS_MAX; i++) {
        struct bench_answer *a = &p->answers[i];
        if (!a->count) {
            snprintf(a->what, sizeof a->what, "%s", what);
            a->count = 1;
            return;
        }
        if (!strcmp(a->what, what)) {
            a->count++;
            return;
        }
    }
    p->answers_other++;
}

int bench_phase_refuse(struct bench_phase *p, long seq, const char *what, uint64_t now)
{
    if (!ours(p, seq))
        return 0;
    uint8_t *f = &p->flags[seq];
    if (*f & BM_ERROR)
        return 0;
    p->t_progress = now;
    *f |= BM_ANSWERED;
    if (*f & BM_ARRIVED) {
        p->conflicts++;
        *f |= BM_ERROR;
        tally(p, what);
        return 1;
    }
    if (p->finished) {
        p->after_end++;
        return 0;
    }
    *f |= BM_ERROR;
    p->refused++;
    tally(p, what);
    bench_series_count(&p->sec, BEV_REFUSED, now);
    return 1;
}

int bench_phase_answer(struct bench_phase *p, long seq, uint64_t now)
{
    if (!ours(p, seq))
        return 0;
    uint8_t *f = &p->flags[seq];
    if (*f & BM_ANSWERED)
        return 0;
    *f |= BM_ANSWERED;
    p->t_progress = now;
    p->t_ans[seq] = now;
    p->answered++;
    if (now > p->t_send[seq] && now - p->t_send[seq] > BENCH_T1_NS)
        p->t1_answers++;
    return 1;
}

long bench_phase_lost(const struct bench_phase *p)
{
    return p->sent - p->arrived - p->refused;
}

int bench_phase_verdict(const struct bench_phase *p, long unanswered)
{
    if (bench_phase_lost(p) || p->dups || p->conflicts || p->unexpected || unanswered ||
        p->sent < p->n)
        return 1;
    return p->refused ? 3 : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void bench_sort(uint64_t *v, long n)
{
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, cmp_u64);
}

uint64_t bench_pct(const uint64_t *v, long n, double q)
{
    if (n <= 0)
        return 0;
    /* Nearest rank: the smallest value with at least q of the sample at or
     * below it. The rank is computed in integers where it matters (q*n
     * exact), so p99.9 of 1000 values is the 999th, not the 1000th. */
    double r = q * (double)n;
    long i = (long)r;
    if ((double)i < r - 1e-9)
        i++;
    if (i < 1)
        i = 1;
    if (i > n)
        i = n;
    return v[i - 1];
}

int bench_proc_cpu(int pid, uint64_t *ticks)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    /* The command name may hold spaces and parentheses: fields are counted
     * from the last ')'. utime and stime are fields 14 and 15. */
    char *p = strrchr(line, ')');
    if (!p)
        return -1;
    p++;
    unsigned long long ut = 0, st = 0;
    for (int field = 3; field <= 15; field++) {
        char *end;
        while (*p == ' ')
            p++;
        if (field == 14)
            ut = strtoull(p, &end, 10);
        else if (field == 15)
            st = strtoull(p, &end, 10);
        else
            end = strchr(p, ' ');
        if (!end || end == p)
            return -1;
        p = end;
    }
    *ticks = ut + st;
    return 0;
}

long bench_proc_kb(int pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t k = strlen(field);
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, field, k)) {
            kb = strtol(line + k, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

uint64_t bench_self_cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}
