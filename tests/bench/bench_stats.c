/* Per-phase bookkeeping and the figures printed at the end: latency
 * percentiles from the preallocated timestamp arrays, and CPU and memory of
 * the gateway from /proc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "core/err.h"

int bench_phase_init(struct bench_phase *p, const char *name, long n)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    p->n = n;
    p->t_send = calloc((size_t)n, sizeof *p->t_send);
    p->t_recv = calloc((size_t)n, sizeof *p->t_recv);
    p->flags = calloc((size_t)n, sizeof *p->flags);
    if (!p->t_send || !p->t_recv || !p->flags) {
        bench_phase_free(p);
        return XS_ENOMEM;
    }
    return 0;
}

void bench_phase_free(struct bench_phase *p)
{
    free(p->t_send);
    free(p->t_recv);
    free(p->flags);
    p->t_send = p->t_recv = NULL;
    p->flags = NULL;
}

int bench_phase_mark(struct bench_phase *p, long seq, uint8_t bits, uint64_t now)
{
    if (seq < 0 || seq >= p->n || !(p->flags[seq] & BM_SENT)) {
        p->unexpected++;
        return 0;
    }
    uint8_t *f = &p->flags[seq];
    if ((bits & BM_ARRIVED) && (*f & BM_ARRIVED)) {
        p->dups++;
        bits &= (uint8_t)~BM_ARRIVED;
    }
    if ((bits & BM_ARRIVED) && !(*f & BM_ARRIVED)) {
        p->t_recv[seq] = now;
        p->arrived++;
    }
    if ((bits & BM_ANSWERED) && !(*f & BM_ANSWERED))
        p->answered++;
    if ((bits & BM_ERROR) && !(*f & BM_ERROR))
        p->errors++;
    *f |= bits;
    p->t_progress = now;
    return 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile over a sorted array. */
static double pct_ms(const uint64_t *v, long n, double q)
{
    if (n == 0)
        return 0;
    long i = (long)(q * (double)n + 0.999999) - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e6;
}

void bench_phase_print_header(void)
{
    printf("%-10s %8s %8s %6s %6s %8s %9s %8s %8s %8s %7s %7s\n", "direction", "n", "ok", "errors",
           "lost", "seconds", "msgs/s", "p50_ms", "p99_ms", "max_ms", "gw_cpu%", "tool%");
}

void bench_phase_print(struct bench_phase *p)
{
    /* Latencies are compacted into t_recv, which is no longer needed after this. */
    long m = 0;
    for (long i = 0; i < p->n; i++)
        if ((p->flags[i] & BM_ARRIVED) && p->t_recv[i] >= p->t_send[i])
            p->t_recv[m++] = p->t_recv[i] - p->t_send[i];
    qsort(p->t_recv, (size_t)m, sizeof *p->t_recv, cmp_u64);
    long lost = 0;
    for (long i = 0; i < p->n; i++)
        if ((p->flags[i] & BM_SENT) && !(p->flags[i] & (BM_ARRIVED | BM_ERROR)))
            lost++;
    lost += p->n - p->sent;
    double secs = p->t_end > p->t_start ? (double)(p->t_end - p->t_start) / 1e9 : 0;
    double rate = secs > 0 ? (double)p->arrived / secs : 0;
    char cpu[16] = "-", self[16] = "-";
    if (p->gw_cpu_known && secs > 0) {
        double used = (double)(p->gw_ticks1 - p->gw_ticks0) / (double)sysconf(_SC_CLK_TCK);
        snprintf(cpu, sizeof cpu, "%.1f", 100.0 * used / secs);
    }
    if (secs > 0)
        snprintf(self, sizeof self, "%.1f", (double)(p->self_us1 - p->self_us0) / 1e4 / secs);
    printf("%-10s %8ld %8ld %6ld %6ld %8.3f %9.1f %8.2f %8.2f %8.2f %7s %7s\n", p->name, p->n,
           p->arrived, p->errors, lost, secs, rate, pct_ms(p->t_recv, m, 0.50),
           pct_ms(p->t_recv, m, 0.99), m ? (double)p->t_recv[m - 1] / 1e6 : 0.0, cpu, self);
    if (p->dups || p->unexpected)
        printf("%-10s duplicates=%ld unexpected=%ld\n", "", p->dups, p->unexpected);
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

long bench_proc_hwm_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "VmHWM:", 6)) {
            kb = strtol(line + 6, NULL, 10);
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
