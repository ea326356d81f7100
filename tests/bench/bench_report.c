/* The report: one row per second while a phase runs, then per phase the
 * totals, the refusal answers, latency percentiles and the gateway's CPU
 * and memory; a one-line "xsbench-summary" per phase for scripts; and the
 * same as JSON with --json, so runs can be compared. */
#include <string.h>
#include <unistd.h>

#include "bench.h"

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

void bench_print_sec_header(void)
{
    printf("%-10s %5s %8s %9s %8s %5s %6s %8s %8s %8s %8s %7s %9s\n", "direction", "sec", "offered",
           "delivered", "refused", "dups", "late", "p50_ms", "p99_ms", "p99.9_ms", "max_ms",
           "gw_cpu%", "gw_rss_kB");
}

void bench_print_sec(const struct bench_phase *p, const struct bench_sec *r, long i)
{
    char cpu[16] = "-", rss[24] = "-";
    if (r->gw_cpu >= 0)
        snprintf(cpu, sizeof cpu, "%.1f", r->gw_cpu);
    if (r->gw_rss_kb >= 0)
        snprintf(rss, sizeof rss, "%ld", r->gw_rss_kb);
    printf("%-10s %5ld %8ld %9ld %8ld %5ld %6ld %8.2f %8.2f %8.2f %8.2f %7s %9s\n", p->name, i + 1,
           r->offered, r->delivered, r->refused, r->dups, r->late, ms(r->p50), ms(r->p99),
           ms(r->p999), ms(r->max), cpu, rss);
}

/* The overall figures of a phase, computed once at the end. */
struct phase_sum {
    double secs, rate, gw_cpu, self_cpu;
    int gw_cpu_known;
    uint64_t p50, p99, p999, max; /* delivery */
    uint64_t a50, a99, amax;      /* SIP final response (SIP->XMPP) */
    long unanswered;              /* delivered SIP->XMPP without a final response */
    long unsent;                  /* open loop: scheduled, never offered */
};

static void summarize(struct bench *b, struct bench_phase *p, struct phase_sum *s)
{
    memset(s, 0, sizeof *s);
    /* Latencies are compacted into t_recv and t_ans, which are no longer
     * needed after this. */
    long m = 0, k = 0;
    for (long i = 0; i < p->n; i++) {
        uint8_t f = p->flags[i];
        if ((f & BM_ARRIVED) && !(f & BM_ERROR) && p->t_recv[i] >= p->t_send[i])
            p->t_recv[m++] = p->t_recv[i] - p->t_send[i];
        if (p->t_ans[i] && p->t_ans[i] >= p->t_send[i])
            p->t_ans[k++] = p->t_ans[i] - p->t_send[i];
        if (p == &b->ph[BENCH_S2X] && (f & BM_ARRIVED) && !(f & BM_ANSWERED))
            s->unanswered++;
    }
    bench_sort(p->t_recv, m);
    bench_sort(p->t_ans, k);
    s->p50 = bench_pct(p->t_recv, m, 0.50);
    s->p99 = bench_pct(p->t_recv, m, 0.99);
    s->p999 = bench_pct(p->t_recv, m, 0.999);
    s->max = m ? p->t_recv[m - 1] : 0;
    s->a50 = bench_pct(p->t_ans, k, 0.50);
    s->a99 = bench_pct(p->t_ans, k, 0.99);
    s->amax = k ? p->t_ans[k - 1] : 0;
    s->secs = p->t_end > p->t_start ? (double)(p->t_end - p->t_start) / 1e9 : 0;
    s->rate = s->secs > 0 ? (double)p->arrived / s->secs : 0;
    s->gw_cpu_known = p->gw_cpu_known && s->secs > 0;
    if (s->gw_cpu_known)
        s->gw_cpu =
            100.0 * (double)(p->gw_ticks1 - p->gw_ticks0) / (double)sysconf(_SC_CLK_TCK) / s->secs;
    if (s->secs > 0)
        s->self_cpu = (double)(p->self_us1 - p->self_us0) / 1e4 / s->secs;
    s->unsent = p->n - p->sent;
}

static void print_phase(struct bench *b, const struct bench_phase *p, const struct phase_sum *s)
{
    printf("%s: offered %ld of %ld (late %ld, never offered %ld), delivered %ld, refused %ld, "
           "lost %ld, duplicates %ld\n",
           p->name, p->sent, p->n, p->late, s->unsent, p->arrived, p->refused, bench_phase_lost(p),
           p->dups);
    printf("  %.3f s, %.1f delivered/s; latency ms p50 %.2f p99 %.2f p99.9 %.2f max %.2f "
           "(from the %s send)\n",
           s->secs, s->rate, ms(s->p50), ms(s->p99), ms(s->p999), ms(s->max),
           b->o.rate > 0 ? "scheduled" : "actual");
    if (p == &b->ph[BENCH_S2X])
        printf("  SIP final responses %ld: ms p50 %.2f p99 %.2f max %.2f; %ld later than T1 "
               "(a UDP sender retransmits); %ld delivered but unanswered; we retransmitted %ld\n",
               p->answered, ms(s->a50), ms(s->a99), ms(s->amax), p->t1_answers, s->unanswered,
               p->rtx_sent);
    if (p->retrans || p->conflicts || p->unexpected || p->after_end)
        printf("  SIP retransmissions %ld, delivered and refused %ld, not ours %ld, "
               "after the phase ended %ld\n",
               p->retrans, p->conflicts, p->unexpected, p->after_end);
    for (int i = 0; i < BENCH_ANSWERS_MAX && p->answers[i].count; i++)
        printf("  refused with %s: %ld\n", p->answers[i].what, p->answers[i].count);
    if (p->answers_other)
        printf("  refused with other answers: %ld\n", p->answers_other);
    if (s->gw_cpu_known)
        printf("  gateway CPU %.1f%% of one core; the tool's own %.1f%%\n", s->gw_cpu, s->self_cpu);
}

static void print_summary(struct bench *b, const struct bench_phase *p, const struct phase_sum *s)
{
    printf(
        "xsbench-summary dir=%s mode=%s xmpp=%s sip=%s rate=%g duration=%g n=%ld "
        "offered=%ld delivered=%ld refused=%ld lost=%ld dups=%ld late=%ld unsent=%ld "
        "retrans=%ld rtx_sent=%ld conflicts=%ld p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f "
        "ans_p50_ms=%.3f ans_p99_ms=%.3f t1_answers=%ld secs=%.3f delivered_per_s=%.1f "
        "gw_cpu=%.1f gw_hwm_kb=%ld\n",
        p == &b->ph[BENCH_X2S] ? "xmpp-sip" : "sip-xmpp", b->o.rate > 0 ? "open" : "closed",
        b->o.tls ? "starttls" : "plain", b->o.sip_udp ? "udp" : "tcp", b->o.rate, b->o.duration,
        p->n, p->sent, p->arrived, p->refused, bench_phase_lost(p), p->dups, p->late, s->unsent,
        p->retrans, p->rtx_sent, p->conflicts, ms(s->p50), ms(s->p99), ms(s->p999), ms(s->max),
        ms(s->a50), ms(s->a99), p->t1_answers, s->secs, s->rate, s->gw_cpu_known ? s->gw_cpu : -1.0,
        b->gw_hwm_kb);
}

/* Answers are condition names and status lines; escaped all the same. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void json_phase(FILE *f, struct bench *b, const struct bench_phase *p,
                       const struct phase_sum *s)
{
    fprintf(f, "{\"direction\":");
    json_str(f, p == &b->ph[BENCH_X2S] ? "xmpp-sip" : "sip-xmpp");
    fprintf(f,
            ",\"planned\":%ld,\"offered\":%ld,\"late\":%ld,\"unsent\":%ld,\"delivered\":%ld,"
            "\"refused\":%ld,\"lost\":%ld,\"dups\":%ld,\"retrans\":%ld,\"rtx_sent\":%ld,"
            "\"conflicts\":%ld,"
            "\"unexpected\":%ld,\"after_end\":%ld,\"answered\":%ld,\"t1_answers\":%ld,"
            "\"unanswered\":%ld,\"secs\":%.3f,\"delivered_per_s\":%.1f,"
            "\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},"
            "\"answer_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},\"gw_cpu\":",
            p->n, p->sent, p->late, s->unsent, p->arrived, p->refused, bench_phase_lost(p), p->dups,
            p->retrans, p->rtx_sent, p->conflicts, p->unexpected, p->after_end, p->answered,
            p->t1_answers, s->unanswered, s->secs, s->rate, ms(s->p50), ms(s->p99), ms(s->p999),
            ms(s->max), ms(s->a50), ms(s->a99), ms(s->amax));
    if (s->gw_cpu_known)
        fprintf(f, "%.1f", s->gw_cpu);
    else
        fputs("null", f);
    fprintf(f, ",\"answers\":{");
    for (int i = 0; i < BENCH_ANSWERS_MAX && p->answers[i].count; i++) {
        if (i)
            fputc(',', f);
        json_str(f, p->answers[i].what);
        fprintf(f, ":%ld", p->answers[i].count);
    }
    if (p->answers_other)
        fprintf(f, "%s\"other\":%ld", p->answers[0].count ? "," : "", p->answers_other);
    fprintf(f, "},\"per_second\":[");
    for (long i = 0; i < p->sec.n_rows; i++) {
        const struct bench_sec *r = &p->sec.rows[i];
        fprintf(f,
                "%s{\"sec\":%ld,\"offered\":%ld,\"delivered\":%ld,\"refused\":%ld,\"dups\":%ld,"
                "\"late\":%ld,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
                "\"gw_cpu\":",
                i ? "," : "", i + 1, r->offered, r->delivered, r->refused, r->dups, r->late,
                ms(r->p50), ms(r->p99), ms(r->p999), ms(r->max));
        if (r->gw_cpu >= 0)
            fprintf(f, "%.1f", r->gw_cpu);
        else
            fputs("null", f);
        if (r->gw_rss_kb >= 0)
            fprintf(f, ",\"gw_rss_kb\":%ld}", r->gw_rss_kb);
        else
            fputs(",\"gw_rss_kb\":null}", f);
    }
    fputs("]}", f);
}

int bench_report(struct bench *b, FILE *json)
{
    struct phase_sum sums[2];
    int worst = b->failed ? 1 : 0;
    printf("xsbench: %s xmpp=%s sip=%s gateway_pid=%d", b->o.rate > 0 ? "open-loop" : "closed-loop",
           b->o.tls ? "starttls" : "plain", b->o.sip_udp ? "udp" : "tcp", b->gw_pid);
    if (b->o.rate > 0)
        printf(" rate=%g/s duration=%gs\n", b->o.rate, b->o.duration);
    else
        printf(" n=%ld window=%d\n", b->o.n, b->o.window);
    for (int i = 0; i < 2; i++) {
        if (!b->ph[i].started)
            continue;
        summarize(b, &b->ph[i], &sums[i]);
        print_phase(b, &b->ph[i], &sums[i]);
        int v = bench_phase_verdict(&b->ph[i], sums[i].unanswered);
        if (v == 1 || (v == 3 && worst == 0))
            worst = v;
    }
    printf("XEP-0198: enabled by the gateway on %lu of our streams, %lu acknowledgements sent%s\n",
           b->sm_streams, b->sm_acks, b->o.no_sm ? " (--no-sm: not offered)" : "");
    if (b->gw_hwm_kb >= 0)
        printf("gateway peak RSS (VmHWM): %ld kB\n", b->gw_hwm_kb);
    else
        printf("gateway peak RSS (VmHWM): unknown\n");
    for (int i = 0; i < 2; i++)
        if (b->ph[i].started)
            print_summary(b, &b->ph[i], &sums[i]);
    fflush(stdout);
    if (!json)
        return worst;
    fprintf(json,
            "{\"tool\":\"xsbench\",\"mode\":\"%s\",\"xmpp\":\"%s\",\"sip\":\"%s\",\"rate\":%g,"
            "\"duration\":%g,\"n\":%ld,\"window\":%d,\"gw_hwm_kb\":%ld,\"failed\":%s,"
            "\"sm_offered\":%s,\"sm_streams\":%lu,\"sm_acks\":%lu,"
            "\"phases\":[",
            b->o.rate > 0 ? "open" : "closed", b->o.tls ? "starttls" : "plain",
            b->o.sip_udp ? "udp" : "tcp", b->o.rate, b->o.duration, b->o.n, b->o.window,
            b->gw_hwm_kb, b->failed ? "true" : "false", b->o.no_sm ? "false" : "true",
            b->sm_streams, b->sm_acks);
    int first = 1;
    for (int i = 0; i < 2; i++) {
        if (!b->ph[i].started)
            continue;
        if (!first)
            fputc(',', json);
        first = 0;
        json_phase(json, b, &b->ph[i], &sums[i]);
    }
    fprintf(json, "],\"verdict\":%d}\n", worst);
    return worst;
}
