/* The metrics registry: the exact lines a known set of updates renders,
 * one HELP and TYPE per family, label escaping, the partner table's bound
 * (nothing allocated on the way), histogram buckets, and a render into a
 * buffer too small for it. With `--print` it renders a populated registry
 * to stdout, for the Prometheus parser check (tests/metrics/parse.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_testutil.h"
#include "check.h"
#include "metrics_testutil.h"
#include "core/err.h"
#include "core/metrics.h"

static char *render(void)
{
    static struct xs_buf b;
    xs_buf_free(&b);
    xs_buf_init(&b, 1 << 22);
    int rc = xs_metrics_render(&b);
    CHECK(rc == 0);
    return rc == 0 && b.data ? b.data : "";
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void populate(void)
{
    unsigned a = xs_metrics_partner("a.example");
    unsigned w = xs_metrics_partner("*");
    uint64_t long_ago = xs_metrics_now() - 2000000000ull; /* 2 s before now */
    for (int i = 0; i < 3; i++)
        xs_metrics_outcome(XS_EVENT_MESSAGE, XS_SIDE_XMPP, a, XS_METRICS_DELIVERED, XS_COND_NONE,
                           xs_metrics_now());
    xs_metrics_outcome(XS_EVENT_MESSAGE, XS_SIDE_SIP, w, XS_METRICS_BOUNCED,
                       XS_COND_RECIPIENT_UNAVAILABLE, long_ago);
    xs_metrics_outcome(XS_EVENT_MESSAGE, XS_SIDE_XMPP, XS_METRICS_OTHER, XS_METRICS_REFUSED,
                       XS_COND_FORBIDDEN, 0);
    xs_metrics_outcome(XS_EVENT_PRESENCE, XS_SIDE_SIP, a, XS_METRICS_DELIVERED, XS_COND_NONE,
                       long_ago);
    /* Subscriptions are not messages or presence: ignored. */
    xs_metrics_outcome(XS_EVENT_SUBSCRIPTION, XS_SIDE_SIP, a, XS_METRICS_DELIVERED, XS_COND_NONE,
                       long_ago);
    xs_metrics_handoff(XS_SIDE_XMPP, xs_metrics_now());
    xs_metrics_handoff(XS_SIDE_XMPP, long_ago);
    xs_metrics_sip_request(xs_metrics_sip_method("MESSAGE"), XS_METRICS_OUT);
    xs_metrics_sip_request(xs_metrics_sip_method("FOO"), XS_METRICS_IN);
    xs_metrics_sip_response(200, XS_METRICS_IN);
    xs_metrics_sip_response(486, XS_METRICS_OUT);
    xs_metrics_sip_response(42, XS_METRICS_OUT);
    xs_metrics_tls_handshake_failure(XS_MTLS_ALERT);
    xs_metrics_tls_cert_failure(3, 1); /* untrusted */
    xs_metrics_tls_cert_failure(0, 0); /* name mismatch */
    xs_metrics_tls_cert_failure(0, 1); /* passed: not a failure */
    xs_metrics_hook_call(XS_MHOOK_ON_MESSAGE);
    xs_metrics_hook_call(XS_MHOOK_ON_MESSAGE);
    xs_metrics_hook_error(XS_MHOOK_ON_MESSAGE, 1);
    xs_metrics_stream_opened(XS_METRICS_IN);
    xs_metrics_set_start_time(1700000000.5);
}

static void collect(void *ud)
{
    int *calls = ud;
    (*calls)++;
    unsigned a = xs_metrics_partner("a.example");
    xs_metrics_collect_stream(a, XS_METRICS_OUT, XS_MSTREAM_ESTABLISHED, XS_MSTREAM_TLS13,
                              XS_MSTREAM_AUTH_DIALBACK);
    xs_metrics_collect_stream(a, XS_METRICS_OUT, XS_MSTREAM_ESTABLISHED, XS_MSTREAM_TLS13,
                              XS_MSTREAM_AUTH_DIALBACK);
    xs_metrics_collect_stream(XS_METRICS_OTHER, XS_METRICS_IN, XS_MSTREAM_CONNECTING,
                              XS_MSTREAM_TLS_NONE, XS_MSTREAM_AUTH_NONE);
    xs_metrics_collect_sip_txns(0, "trying", 2);
    xs_metrics_collect_sip_txns(0, "trying", 1);
    xs_metrics_collect_sip_txns(1, "completed", 4);
    xs_metrics_collect_sip_txn_limit(0, 1000);
    xs_metrics_collect_sip_txn_limit(1, 1000);
    xs_metrics_collect_subscriptions(0, 5);
    xs_metrics_collect_subscriptions(1, 7);
    xs_metrics_collect_policy(3, 2, 1, 1700000100.25);
    struct xs_metrics_store st = {.connected = 1, .pending = 12, .failed = 2, .lost = 5,
                                  .reconnects = 1, .resyncs = 3, .adopted = 40};
    xs_metrics_collect_store(&st);
}

static void test_lines(void)
{
    xs_metrics_reset();
    populate();
    int calls = 0;
    xs_metrics_set_collector(collect, &calls);
    const char *t = render();
    CHECK(calls == 1);
    static const char *const want[] = {
        "xsgw_build_info{version=\"" XS_VERSION "\"} 1",
        "xsgw_start_time_seconds 1700000000.500",
        "xsgw_messages_total{partner=\"other\",direction=\"xmpp_to_sip\",outcome=\"refused\","
        "condition=\"forbidden\"} 1",
        "xsgw_messages_total{partner=\"a.example\",direction=\"xmpp_to_sip\",outcome=\"delivered\","
        "condition=\"none\"} 3",
        "xsgw_messages_total{partner=\"*\",direction=\"sip_to_xmpp\",outcome=\"bounced\","
        "condition=\"recipient-unavailable\"} 1",
        "xsgw_presence_total{partner=\"a.example\",direction=\"sip_to_xmpp\",outcome=\"delivered\","
        "condition=\"none\"} 1",
        "xsgw_outcome_seconds_count{direction=\"xmpp_to_sip\"} 3",
        "xsgw_outcome_seconds_count{direction=\"sip_to_xmpp\"} 2",
        "xsgw_outcome_seconds_bucket{direction=\"sip_to_xmpp\",le=\"1\"} 0",
        "xsgw_outcome_seconds_bucket{direction=\"sip_to_xmpp\",le=\"2.5\"} 2",
        "xsgw_handoff_seconds_bucket{direction=\"xmpp_to_sip\",le=\"0.001\"} 1",
        "xsgw_handoff_seconds_bucket{direction=\"xmpp_to_sip\",le=\"+Inf\"} 2",
        "xsgw_handoff_seconds_count{direction=\"sip_to_xmpp\"} 0",
        "xsgw_streams{partner=\"a.example\",direction=\"out\",state=\"established\",tls=\"TLSv1."
        "3\","
        "auth=\"dialback\"} 2",
        "xsgw_streams{partner=\"other\",direction=\"in\",state=\"connecting\",tls=\"none\","
        "auth=\"none\"} 1",
        "xsgw_streams_opened_total{direction=\"in\"} 1",
        "xsgw_streams_opened_total{direction=\"out\"} 0",
        "xsgw_sip_transactions{role=\"server\",state=\"trying\"} 3",
        "xsgw_sip_transactions{role=\"client\",state=\"completed\"} 4",
        "xsgw_sip_transactions_limit{role=\"client\"} 1000",
        "xsgw_sip_requests_total{method=\"MESSAGE\",direction=\"out\"} 1",
        "xsgw_sip_requests_total{method=\"other\",direction=\"in\"} 1",
        "xsgw_sip_responses_total{class=\"2xx\",direction=\"in\"} 1",
        "xsgw_sip_responses_total{class=\"4xx\",direction=\"out\"} 1",
        "xsgw_sip_responses_total{class=\"other\",direction=\"out\"} 1",
        "xsgw_subscriptions{role=\"watch_sip\"} 5",
        "xsgw_subscriptions{role=\"watch_xmpp\"} 7",
        "xsgw_tls_handshake_failures_total{reason=\"alert\"} 1",
        "xsgw_tls_handshake_failures_total{reason=\"protocol\"} 0",
        "xsgw_tls_certificate_failures_total{verdict=\"untrusted\"} 1",
        "xsgw_tls_certificate_failures_total{verdict=\"name_mismatch\"} 1",
        "xsgw_policy_generation 3",
        "xsgw_policy_reloads_total{result=\"ok\"} 2",
        "xsgw_policy_reloads_total{result=\"rejected\"} 1",
        "xsgw_policy_last_reload_success_timestamp_seconds 1700000100.250",
        "xsgw_lua_hook_calls_total{hook=\"on_message\"} 2",
        "xsgw_lua_hook_errors_total{hook=\"on_message\"} 1",
        "xsgw_lua_budget_overruns_total{hook=\"on_message\"} 1",
        "xsgw_lua_hook_calls_total{hook=\"on_presence\"} 0",
        "# TYPE xsgw_outcome_seconds histogram",
        "# TYPE xsgw_messages_total counter",
        "# TYPE xsgw_streams gauge",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!metrics_has_line(t, want[i]))
            fprintf(stderr, "missing line: %s\n", want[i]);
        CHECK(metrics_has_line(t, want[i]));
    }
    /* Nothing for what never happened: no series of a count of zero in
     * the labelled event families, no "ok" certificate failure, no
     * subscription event. */
    CHECK(count_of(t, "xsgw_messages_total{") == 3);
    CHECK(count_of(t, "xsgw_presence_total{") == 1);
    CHECK(!strstr(t, "verdict=\"ok\""));
    CHECK(count_of(t, "xsgw_streams{") == 2);
    /* The collector's gauges are rebuilt, not added up, at each render. */
    t = render();
    CHECK(calls == 2);
    CHECK(metrics_has_line(t, "xsgw_sip_transactions{role=\"server\",state=\"trying\"} 3"));
    CHECK(metrics_has_line(t, "xsgw_store_redis_connected 1"));
    CHECK(metrics_has_line(t, "xsgw_store_redis_pending_commands 12"));
    CHECK(metrics_has_line(t, "xsgw_store_redis_lost_batches_total 5"));
    CHECK(metrics_has_line(t, "xsgw_store_redis_adopted_total 40"));
    CHECK(metrics_has_line(
        t, "xsgw_streams{partner=\"a.example\",direction=\"out\",state=\"established\","
           "tls=\"TLSv1.3\",auth=\"dialback\"} 2"));
    xs_metrics_set_collector(NULL, NULL);
}

/* Every family has exactly one HELP and one TYPE, and its samples follow
 * them before the next family begins. */
static void test_families(void)
{
    xs_metrics_reset();
    populate();
    int calls = 0;
    xs_metrics_set_collector(collect, &calls);
    char *t = strdup(render());
    char current[128] = "";
    char seen[64][128];
    int n_seen = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        char name[128];
        if (!strncmp(line, "# HELP ", 7)) {
            CHECK(sscanf(line + 7, "%127s", name) == 1);
            for (int i = 0; i < n_seen; i++)
                CHECK(strcmp(seen[i], name) != 0);
            if (n_seen < 64)
                snprintf(seen[n_seen++], sizeof seen[0], "%s", name);
            snprintf(current, sizeof current, "%s", name);
            continue;
        }
        if (!strncmp(line, "# TYPE ", 7)) {
            CHECK(sscanf(line + 7, "%127s", name) == 1);
            CHECK_STR(name, current);
            continue;
        }
        size_t n = strcspn(line, "{ ");
        CHECK(n > 0 && n < sizeof name);
        snprintf(name, sizeof name, "%.*s", (int)n, line);
        /* A histogram's samples carry a suffix of its name. */
        size_t cl = strlen(current);
        CHECK(!strncmp(name, current, cl) &&
              (name[cl] == '\0' || !strcmp(name + cl, "_bucket") || !strcmp(name + cl, "_sum") ||
               !strcmp(name + cl, "_count")));
    }
    CHECK(n_seen == 29);
    free(t);
    xs_metrics_set_collector(NULL, NULL);
}

static void test_escaping(void)
{
    xs_metrics_reset();
    unsigned p = xs_metrics_partner("a\\b\"c\nd");
    CHECK(p != XS_METRICS_OTHER);
    xs_metrics_outcome(XS_EVENT_MESSAGE, XS_SIDE_XMPP, p, XS_METRICS_DELIVERED, XS_COND_NONE, 0);
    const char *t = render();
    CHECK(metrics_has_line(
        t, "xsgw_messages_total{partner=\"a\\\\b\\\"c\\nd\",direction=\"xmpp_to_sip\","
           "outcome=\"delivered\",condition=\"none\"} 1"));
}

static void test_partner_bound(void)
{
    xs_metrics_reset();
    char name[64];
    unsigned slots[XS_METRICS_PARTNERS + 2];
    /* No allocation on the way: the next one would fail and be counted. */
#if XS_TEST_OWN_MALLOC
    alloc_count = 0;
    alloc_fail_at = 1;
#endif
    for (int i = 0; i < XS_METRICS_PARTNERS + 2; i++) {
        snprintf(name, sizeof name, "p%d.example", i);
        slots[i] = xs_metrics_partner(name);
    }
#if XS_TEST_OWN_MALLOC
    CHECK(alloc_count == 0);
    alloc_fail_at = 0;
#endif
    for (int i = 0; i < XS_METRICS_PARTNERS; i++) {
        CHECK(slots[i] == (unsigned)i + 1);
        snprintf(name, sizeof name, "p%d.example", i);
        CHECK(xs_metrics_partner(name) == slots[i]); /* found again, same slot */
    }
    CHECK(slots[XS_METRICS_PARTNERS] == XS_METRICS_OTHER); /* the 129th */
    CHECK(slots[XS_METRICS_PARTNERS + 1] == XS_METRICS_OTHER);
    CHECK(xs_metrics_partner(NULL) == XS_METRICS_OTHER);
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK(xs_metrics_partner(longname) == XS_METRICS_OTHER);
    xs_metrics_outcome(XS_EVENT_MESSAGE, XS_SIDE_XMPP, slots[XS_METRICS_PARTNERS],
                       XS_METRICS_DELIVERED, XS_COND_NONE, 0);
    xs_metrics_outcome(XS_EVENT_MESSAGE, XS_SIDE_XMPP, 5000, XS_METRICS_DELIVERED, XS_COND_NONE, 0);
    const char *t = render();
    CHECK(metrics_has_line(t, "xsgw_messages_total{partner=\"other\",direction=\"xmpp_to_sip\","
                              "outcome=\"delivered\",condition=\"none\"} 2"));
    CHECK(!strstr(t, "p128.example"));
}

/* Cumulative buckets never decrease, and +Inf equals _count. */
static void test_histogram(void)
{
    xs_metrics_reset();
    uint64_t now = xs_metrics_now();
    const uint64_t ago_ms[] = {0, 2, 3, 40, 40, 700, 3000, 45000, 100000};
    for (size_t i = 0; i < sizeof ago_ms / sizeof ago_ms[0]; i++)
        xs_metrics_handoff(XS_SIDE_SIP, now - ago_ms[i] * 1000000ull);
    const char *t = render();
    const char *prefix = "xsgw_handoff_seconds_bucket{direction=\"sip_to_xmpp\",le=\"";
    unsigned long long last = 0, inf = 0, count = 0;
    int buckets = 0;
    for (const char *p = t; (p = strstr(p, prefix)) != NULL; p++) {
        const char *q = strchr(p, '}');
        unsigned long long v = 0;
        CHECK(q && sscanf(q + 1, " %llu", &v) == 1);
        CHECK(v >= last);
        last = v;
        buckets++;
        if (!strncmp(p + strlen(prefix), "+Inf", 4))
            inf = v;
    }
    CHECK(buckets == 15);
    const char *cl = strstr(t, "xsgw_handoff_seconds_count{direction=\"sip_to_xmpp\"} ");
    CHECK(cl && sscanf(strchr(cl, '}') + 1, " %llu", &count) == 1);
    CHECK(count == 9 && inf == count);
    CHECK(metrics_has_line(t,
                           "xsgw_handoff_seconds_bucket{direction=\"sip_to_xmpp\",le=\"0.05\"} 5"));
    CHECK(
        metrics_has_line(t, "xsgw_handoff_seconds_bucket{direction=\"sip_to_xmpp\",le=\"30\"} 7"));
}

static void test_too_small(void)
{
    xs_metrics_reset();
    populate();
    struct xs_buf b;
    xs_buf_init(&b, 1 << 22);
    CHECK(xs_metrics_render(&b) == 0);
    size_t full = b.len;
    xs_buf_free(&b);
    /* Just too small, and with something in it already: it stays as it was. */
    xs_buf_init(&b, full + 3);
    CHECK(xs_buf_append_str(&b, "keep") == 0);
    CHECK(xs_metrics_render(&b) == XS_ELIMIT);
    CHECK(b.len == 4);
    CHECK_STR(b.data, "keep");
    xs_buf_free(&b);
    xs_buf_init(&b, 10);
    CHECK(xs_metrics_render(&b) == XS_ELIMIT);
    CHECK(b.len == 0);
    xs_buf_free(&b);
    /* Exactly enough. */
    xs_buf_init(&b, full);
    CHECK(xs_metrics_render(&b) == 0);
    CHECK(b.len == full);
    xs_buf_free(&b);
}

static void collect_everything(void *ud)
{
    (void)ud;
    for (unsigned p = 0; p <= XS_METRICS_PARTNERS; p++)
        for (int d = 0; d < 2; d++)
            for (int st = 0; st < XS_MSTREAM_STATES_; st++)
                for (int t = 0; t < XS_MSTREAM_TLSES_; t++)
                    for (int a = 0; a < XS_MSTREAM_AUTHS_; a++)
                        xs_metrics_collect_stream(
                            p, (enum xs_metrics_dir)d, (enum xs_metrics_stream_state)st,
                            (enum xs_metrics_stream_tls)t, (enum xs_metrics_stream_auth)a);
}

/* Every partner slot with a longest name that needs escaping throughout,
 * every series counted: the exposition still fits XS_METRICS_RENDER_MAX. */
static void test_worst_case(void)
{
    xs_metrics_reset();
    char name[256];
    memset(name, '"', 255);
    name[255] = '\0';
    for (int i = 0; i < XS_METRICS_PARTNERS; i++) {
        snprintf(name, 4, "%03d", i);
        name[3] = '"';
        CHECK(xs_metrics_partner(name) == (unsigned)i + 1);
    }
    for (int k = 0; k < 2; k++)
        for (int o = 0; o < 2; o++)
            for (unsigned p = 0; p <= XS_METRICS_PARTNERS; p++)
                for (int oc = 0; oc < XS_METRICS_OUTCOMES_; oc++)
                    for (int cd = 0; cd < XS_COND_COUNT_; cd++)
                        xs_metrics_outcome(k ? XS_EVENT_PRESENCE : XS_EVENT_MESSAGE,
                                           (enum xs_side_id)o, p, (enum xs_metrics_outcome)oc,
                                           (enum xs_cond)cd, 0);
    xs_metrics_set_collector(collect_everything, NULL);
    struct xs_buf b;
    xs_buf_init(&b, XS_METRICS_RENDER_MAX);
    CHECK(xs_metrics_render(&b) == 0);
    CHECK(b.len > XS_METRICS_RENDER_MAX / 2);
    printf("worst case exposition: %zu bytes\n", b.len);
    xs_buf_free(&b);
    xs_metrics_set_collector(NULL, NULL);
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--print")) {
        populate();
        int calls = 0;
        xs_metrics_set_collector(collect, &calls);
        xs_metrics_outcome(XS_EVENT_PRESENCE, XS_SIDE_XMPP,
                           xs_metrics_partner("q\"uote\\d\nnewline"), XS_METRICS_REFUSED,
                           XS_COND_POLICY_VIOLATION, 0);
        fputs(render(), stdout);
        return check_failures ? 1 : 0;
    }
    test_lines();
    test_families();
    test_escaping();
    test_partner_bound();
    test_histogram();
    test_too_small();
    test_worst_case();
    return check_report("test_metrics");
}
