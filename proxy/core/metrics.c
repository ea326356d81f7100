#include "core/metrics.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifndef XS_VERSION
#define XS_VERSION "unknown"
#endif

#define N_PARTNERS (XS_METRICS_PARTNERS + 1) /* slot 0 is "other" */
#define NAME_MAX_LEN 255                     /* a domain name's longest spelling */
/* Twice the slots, so that probes stay short when the table is full. */
#define INDEX_SIZE 256

/* Latency buckets (seconds): from a loopback hand-off to a peer that takes
 * its time, up to the 30 s after which every timer of both sides has fired. */
static const double bucket_s[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                  0.25,  0.5,    1,     2.5,  5,     10,   30};
#define N_BUCKETS (sizeof bucket_s / sizeof bucket_s[0])

struct histogram {
    uint64_t le[N_BUCKETS + 1]; /* per bucket, not cumulative; the last is +Inf */
    uint64_t count;
    uint64_t sum_ns;
};

static const char *const outcome_name[XS_METRICS_OUTCOMES_] = {"delivered", "refused", "bounced"};
static const char *const direction_name[2] = {"xmpp_to_sip", "sip_to_xmpp"};
static const char *const inout_name[2] = {"in", "out"};
static const char *const method_name[XS_MSIP_METHODS_] = {
    "MESSAGE", "SUBSCRIBE", "NOTIFY", "PUBLISH", "OPTIONS",
    "INVITE",  "ACK",       "BYE",    "CANCEL",  "other"};
static const char *const status_class_name[7] = {"1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "other"};
static const char *const tls_fail_name[XS_MTLS_FAILS_] = {"protocol", "alert", "certificate",
                                                          "closed", "other"};
/* enum xs_tls_chain in order, then a good chain with the wrong name. */
static const char *const cert_verdict_name[] = {"ok",      "none",          "no_ca",   "untrusted",
                                                "expired", "not_yet_valid", "revoked", "usage",
                                                "bad",     "name_mismatch"};
#define N_CERT_VERDICTS (sizeof cert_verdict_name / sizeof cert_verdict_name[0])
static const char *const hook_name[XS_MHOOK_HOOKS_] = {"on_message", "on_presence", "on_subscribe",
                                                       "map_to_sip", "map_to_xmpp"};
static const char *const state_name[XS_MSTREAM_STATES_] = {"connecting", "authenticating",
                                                           "established"};
static const char *const tls_name[XS_MSTREAM_TLSES_] = {"none", "TLSv1.2", "TLSv1.3"};
static const char *const auth_name[XS_MSTREAM_AUTHS_] = {"none", "dialback", "sasl_external"};
static const char *const sub_role_name[2] = {"watch_sip", "watch_xmpp"};

/* What is kept between renders. */
static struct {
    char partner[N_PARTNERS][NAME_MAX_LEN + 1];
    unsigned n_partners;       /* slots taken, "other" included */
    uint8_t index[INDEX_SIZE]; /* open addressing by name hash; 0: empty */

    /* [presence?][origin][partner][outcome][cond] */
    uint64_t events[2][2][N_PARTNERS][XS_METRICS_OUTCOMES_][XS_COND_COUNT_];
    struct histogram handoff[2], outcome[2];

    uint64_t sip_requests[XS_MSIP_METHODS_][2];
    uint64_t sip_responses[7][2];
    uint64_t tls_fail[XS_MTLS_FAILS_];
    uint64_t cert_fail[N_CERT_VERDICTS];
    uint64_t hook_calls[XS_MHOOK_HOOKS_], hook_errors[XS_MHOOK_HOOKS_],
        hook_overruns[XS_MHOOK_HOOKS_];
    uint64_t streams_opened[2], streams_closed[2];
    double start_time;

    xs_metrics_collector collector;
    void *collector_ud;
} m = {.n_partners = 1};

/* What the collector reports, rebuilt at every render. */
static struct {
    uint32_t streams[N_PARTNERS][2][XS_MSTREAM_STATES_][XS_MSTREAM_TLSES_][XS_MSTREAM_AUTHS_];
    const char *txn_state[2][XS_METRICS_TXN_STATES];
    size_t txns[2][XS_METRICS_TXN_STATES];
    size_t txn_limit[2];
    int have_txn_limit[2];
    size_t subs[2];
    int have_subs;
    int have_policy;
    int generation;
    unsigned long long reloads_ok, reloads_failed;
    double last_good_at;
} c;

void xs_metrics_reset(void)
{
    memset(&m, 0, sizeof m);
    m.n_partners = 1;
    memset(&c, 0, sizeof c);
}

void xs_metrics_set_start_time(double unix_seconds)
{
    m.start_time = unix_seconds;
}

uint64_t xs_metrics_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* FNV-1a: the names are the operator's partner names, not a peer's
 * choice (an unknown domain is "other" before it gets here), so an unkeyed
 * hash cannot be steered into collisions by the network. */
static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

unsigned xs_metrics_partner(const char *name)
{
    if (!name)
        return XS_METRICS_OTHER;
    size_t n = strnlen(name, NAME_MAX_LEN + 1);
    if (n > NAME_MAX_LEN)
        return XS_METRICS_OTHER;
    for (uint32_t i = name_hash(name, n) % INDEX_SIZE;; i = (i + 1) % INDEX_SIZE) {
        unsigned slot = m.index[i];
        if (slot == 0) {
            if (m.n_partners >= N_PARTNERS)
                return XS_METRICS_OTHER;
            slot = m.n_partners++;
            memcpy(m.partner[slot], name, n + 1);
            m.index[i] = (uint8_t)slot;
            return slot;
        }
        if (!strcmp(m.partner[slot], name))
            return slot;
    }
}

static void observe(struct histogram *h, uint64_t arrived)
{
    if (!arrived)
        return;
    uint64_t now = xs_metrics_now();
    uint64_t ns = now > arrived ? now - arrived : 0;
    double s = (double)ns / 1e9;
    size_t b = 0;
    while (b < N_BUCKETS && s > bucket_s[b])
        b++;
    h->le[b]++;
    h->count++;
    h->sum_ns += ns;
}

void xs_metrics_outcome(enum xs_event_kind kind, enum xs_side_id origin, unsigned partner,
                        enum xs_metrics_outcome outcome, enum xs_cond cond, uint64_t arrived)
{
    if (kind != XS_EVENT_MESSAGE && kind != XS_EVENT_PRESENCE)
        return;
    if (partner >= N_PARTNERS)
        partner = XS_METRICS_OTHER;
    if ((unsigned)cond >= XS_COND_COUNT_)
        cond = XS_COND_UNDEFINED_CONDITION;
    m.events[kind == XS_EVENT_PRESENCE][origin != XS_SIDE_XMPP][partner][outcome][cond]++;
    observe(&m.outcome[origin != XS_SIDE_XMPP], arrived);
}

void xs_metrics_handoff(enum xs_side_id origin, uint64_t arrived)
{
    observe(&m.handoff[origin != XS_SIDE_XMPP], arrived);
}

enum xs_metrics_sip_method xs_metrics_sip_method(const char *method)
{
    if (method)
        for (int i = 0; i < XS_MSIP_OTHER; i++)
            if (!strcmp(method, method_name[i]))
                return (enum xs_metrics_sip_method)i;
    return XS_MSIP_OTHER;
}

void xs_metrics_sip_request(enum xs_metrics_sip_method meth, enum xs_metrics_dir dir)
{
    if ((unsigned)meth >= XS_MSIP_METHODS_)
        meth = XS_MSIP_OTHER;
    m.sip_requests[meth][dir != XS_METRICS_IN]++;
}

void xs_metrics_sip_response(int status, enum xs_metrics_dir dir)
{
    int cls = status >= 100 && status <= 699 ? status / 100 - 1 : 6;
    m.sip_responses[cls][dir != XS_METRICS_IN]++;
}

void xs_metrics_tls_handshake_failure(enum xs_metrics_tls_fail why)
{
    m.tls_fail[(unsigned)why < XS_MTLS_FAILS_ ? why : XS_MTLS_OTHER]++;
}

void xs_metrics_tls_cert_failure(int chain, int name_ok)
{
    size_t v = chain == 0
                   ? (name_ok ? 0 : N_CERT_VERDICTS - 1)
                   : (chain > 0 && (size_t)chain < N_CERT_VERDICTS - 1 ? (size_t)chain
                                                                       : N_CERT_VERDICTS - 2);
    if (v)
        m.cert_fail[v]++;
}

void xs_metrics_hook_call(enum xs_metrics_hook h)
{
    if ((unsigned)h < XS_MHOOK_HOOKS_)
        m.hook_calls[h]++;
}

void xs_metrics_hook_error(enum xs_metrics_hook h, int budget)
{
    if ((unsigned)h >= XS_MHOOK_HOOKS_)
        return;
    m.hook_errors[h]++;
    m.hook_overruns[h] += budget != 0;
}

void xs_metrics_stream_opened(enum xs_metrics_dir dir)
{
    m.streams_opened[dir != XS_METRICS_IN]++;
}

void xs_metrics_stream_closed(enum xs_metrics_dir dir)
{
    m.streams_closed[dir != XS_METRICS_IN]++;
}

void xs_metrics_set_collector(xs_metrics_collector fn, void *ud)
{
    m.collector = fn;
    m.collector_ud = ud;
}

void xs_metrics_collect_stream(unsigned partner, enum xs_metrics_dir dir,
                               enum xs_metrics_stream_state state, enum xs_metrics_stream_tls tls,
                               enum xs_metrics_stream_auth auth)
{
    if (partner >= N_PARTNERS)
        partner = XS_METRICS_OTHER;
    if ((unsigned)state >= XS_MSTREAM_STATES_ || (unsigned)tls >= XS_MSTREAM_TLSES_ ||
        (unsigned)auth >= XS_MSTREAM_AUTHS_)
        return;
    c.streams[partner][dir != XS_METRICS_IN][state][tls][auth]++;
}

void xs_metrics_collect_sip_txns(int client, const char *state, size_t n)
{
    int r = client != 0;
    for (int i = 0; i < XS_METRICS_TXN_STATES && state; i++) {
        if (!c.txn_state[r][i])
            c.txn_state[r][i] = state;
        if (c.txn_state[r][i] == state || !strcmp(c.txn_state[r][i], state)) {
            c.txns[r][i] += n;
            return;
        }
    }
}

void xs_metrics_collect_sip_txn_limit(int client, size_t limit)
{
    c.txn_limit[client != 0] = limit;
    c.have_txn_limit[client != 0] = 1;
}

void xs_metrics_collect_subscriptions(int watch_xmpp, size_t n)
{
    c.subs[watch_xmpp != 0] = n;
    c.have_subs = 1;
}

void xs_metrics_collect_policy(int generation, unsigned long long reloads_ok,
                               unsigned long long reloads_failed, double last_good_at)
{
    c.have_policy = 1;
    c.generation = generation;
    c.reloads_ok = reloads_ok;
    c.reloads_failed = reloads_failed;
    c.last_good_at = last_good_at;
}

/* ---- Rendering ---- */

/* The first failed append sticks; later ones are skipped. */
struct out {
    struct xs_buf *b;
    int rc;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    if (o->rc)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        o->rc = XS_ELIMIT;
    else
        o->rc = xs_buf_append(o->b, line, (size_t)n);
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the text format wants it: backslash, double quote and
 * line feed escaped. dst holds at least 2 * strlen(src) + 1 bytes. */
static const char *escape(char *dst, const char *src)
{
    char *d = dst;
    for (; *src; src++) {
        if (*src == '\\' || *src == '"') {
            *d++ = '\\';
            *d++ = *src;
        } else if (*src == '\n') {
            *d++ = '\\';
            *d++ = 'n';
        } else {
            *d++ = *src;
        }
    }
    *d = '\0';
    return dst;
}

static const char *partner_label(char dst[2 * NAME_MAX_LEN + 1], unsigned slot)
{
    return slot == XS_METRICS_OTHER ? "other" : escape(dst, m.partner[slot]);
}

static void render_events(struct out *o, int presence)
{
    const char *name = presence ? "xsgw_presence_total" : "xsgw_messages_total";
    family(o, name, "counter",
           presence ? "Presence updates by partner, direction, final outcome and XMPP condition."
                    : "Messages by partner, direction, final outcome and XMPP condition.");
    char pl[2 * NAME_MAX_LEN + 1];
    for (unsigned p = 0; p < m.n_partners; p++)
        for (int d = 0; d < 2; d++)
            for (int oc = 0; oc < XS_METRICS_OUTCOMES_; oc++)
                for (int cd = 0; cd < XS_COND_COUNT_; cd++) {
                    uint64_t v = m.events[presence][d][p][oc][cd];
                    if (!v)
                        continue;
                    const char *cn = cd ? xs_cond_name((enum xs_cond)cd) : "none";
                    put(o,
                        "%s{partner=\"%s\",direction=\"%s\",outcome=\"%s\",condition=\"%s\"} "
                        "%llu\n",
                        name, partner_label(pl, p), direction_name[d], outcome_name[oc], cn,
                        (unsigned long long)v);
                }
}

static void render_histogram(struct out *o, const char *name, const char *help,
                             const struct histogram h[2])
{
    family(o, name, "histogram", help);
    for (int d = 0; d < 2; d++) {
        uint64_t cum = 0;
        for (size_t b = 0; b < N_BUCKETS; b++) {
            cum += h[d].le[b];
            put(o, "%s_bucket{direction=\"%s\",le=\"%g\"} %llu\n", name, direction_name[d],
                bucket_s[b], (unsigned long long)cum);
        }
        cum += h[d].le[N_BUCKETS];
        put(o, "%s_bucket{direction=\"%s\",le=\"+Inf\"} %llu\n", name, direction_name[d],
            (unsigned long long)cum);
        put(o, "%s_sum{direction=\"%s\"} %.9f\n", name, direction_name[d],
            (double)h[d].sum_ns / 1e9);
        put(o, "%s_count{direction=\"%s\"} %llu\n", name, direction_name[d],
            (unsigned long long)h[d].count);
    }
}

static void render_streams(struct out *o)
{
    family(o, "xsgw_streams", "gauge",
           "XMPP server-to-server streams by partner, direction, state, TLS version and "
           "authentication.");
    char pl[2 * NAME_MAX_LEN + 1];
    for (unsigned p = 0; p < m.n_partners; p++)
        for (int d = 0; d < 2; d++)
            for (int s = 0; s < XS_MSTREAM_STATES_; s++)
                for (int t = 0; t < XS_MSTREAM_TLSES_; t++)
                    for (int a = 0; a < XS_MSTREAM_AUTHS_; a++) {
                        uint32_t v = c.streams[p][d][s][t][a];
                        if (v)
                            put(o,
                                "xsgw_streams{partner=\"%s\",direction=\"%s\",state=\"%s\","
                                "tls=\"%s\",auth=\"%s\"} %u\n",
                                partner_label(pl, p), inout_name[d], state_name[s], tls_name[t],
                                auth_name[a], v);
                    }
    family(o, "xsgw_streams_opened_total", "counter", "XMPP streams opened, by direction.");
    for (int d = 0; d < 2; d++)
        put(o, "xsgw_streams_opened_total{direction=\"%s\"} %llu\n", inout_name[d],
            (unsigned long long)m.streams_opened[d]);
    family(o, "xsgw_streams_closed_total", "counter", "XMPP streams closed, by direction.");
    for (int d = 0; d < 2; d++)
        put(o, "xsgw_streams_closed_total{direction=\"%s\"} %llu\n", inout_name[d],
            (unsigned long long)m.streams_closed[d]);
}

static void render_sip(struct out *o)
{
    static const char *const role[2] = {"server", "client"};
    family(o, "xsgw_sip_transactions", "gauge", "SIP transactions held, by role and state.");
    char sl[64];
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < XS_METRICS_TXN_STATES && c.txn_state[r][i]; i++)
            put(o, "xsgw_sip_transactions{role=\"%s\",state=\"%s\"} %zu\n", role[r],
                strlen(c.txn_state[r][i]) < sizeof sl / 2 ? escape(sl, c.txn_state[r][i]) : "other",
                c.txns[r][i]);
    family(o, "xsgw_sip_transactions_limit", "gauge",
           "The most SIP transactions of a role held at once (sip.max_transactions).");
    for (int r = 0; r < 2; r++)
        if (c.have_txn_limit[r])
            put(o, "xsgw_sip_transactions_limit{role=\"%s\"} %zu\n", role[r], c.txn_limit[r]);
    family(o, "xsgw_sip_requests_total", "counter",
           "SIP requests received (in) and sent (out), by method; retransmissions not counted.");
    for (int i = 0; i < XS_MSIP_METHODS_; i++)
        for (int d = 0; d < 2; d++)
            if (m.sip_requests[i][d])
                put(o, "xsgw_sip_requests_total{method=\"%s\",direction=\"%s\"} %llu\n",
                    method_name[i], inout_name[d], (unsigned long long)m.sip_requests[i][d]);
    family(o, "xsgw_sip_responses_total", "counter",
           "SIP responses received (in) and sent (out), by status class.");
    for (int i = 0; i < 7; i++)
        for (int d = 0; d < 2; d++)
            if (m.sip_responses[i][d])
                put(o, "xsgw_sip_responses_total{class=\"%s\",direction=\"%s\"} %llu\n",
                    status_class_name[i], inout_name[d], (unsigned long long)m.sip_responses[i][d]);
    family(o, "xsgw_subscriptions", "gauge",
           "Presence subscriptions held: XMPP users watching SIP users (watch_sip) and SIP "
           "users watching XMPP users (watch_xmpp).");
    for (int r = 0; r < 2 && c.have_subs; r++)
        put(o, "xsgw_subscriptions{role=\"%s\"} %zu\n", sub_role_name[r], c.subs[r]);
}

static void render_tls(struct out *o)
{
    family(o, "xsgw_tls_handshake_failures_total", "counter",
           "TLS handshakes that failed, by reason.");
    for (int i = 0; i < XS_MTLS_FAILS_; i++)
        put(o, "xsgw_tls_handshake_failures_total{reason=\"%s\"} %llu\n", tls_fail_name[i],
            (unsigned long long)m.tls_fail[i]);
    family(o, "xsgw_tls_certificate_failures_total", "counter",
           "Peer certificates that failed their check, by verdict.");
    for (size_t i = 1; i < N_CERT_VERDICTS; i++)
        put(o, "xsgw_tls_certificate_failures_total{verdict=\"%s\"} %llu\n", cert_verdict_name[i],
            (unsigned long long)m.cert_fail[i]);
}

static void render_policy(struct out *o)
{
    if (c.have_policy) {
        family(o, "xsgw_policy_generation", "gauge", "The running policy generation (1 at start).");
        put(o, "xsgw_policy_generation %d\n", c.generation);
        family(o, "xsgw_policy_reloads_total", "counter", "Policy reloads, by result.");
        put(o, "xsgw_policy_reloads_total{result=\"ok\"} %llu\n", c.reloads_ok);
        put(o, "xsgw_policy_reloads_total{result=\"rejected\"} %llu\n", c.reloads_failed);
        family(o, "xsgw_policy_last_reload_success_timestamp_seconds", "gauge",
               "When the running policy generation was loaded (Unix time).");
        put(o, "xsgw_policy_last_reload_success_timestamp_seconds %.3f\n", c.last_good_at);
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } fam[] = {
        {"xsgw_lua_hook_calls_total", "Calls into the policy's Lua, by hook.", 0},
        {"xsgw_lua_hook_errors_total", "Policy calls that failed (error or budget), by hook.", 1},
        {"xsgw_lua_budget_overruns_total",
         "Policy calls stopped for running out of their instruction, time or memory budget.", 2},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        const uint64_t *v = f == 0 ? m.hook_calls : f == 1 ? m.hook_errors : m.hook_overruns;
        family(o, fam[f].name, "counter", fam[f].help);
        for (int h = 0; h < XS_MHOOK_HOOKS_; h++)
            put(o, "%s{hook=\"%s\"} %llu\n", fam[f].name, hook_name[h], (unsigned long long)v[h]);
    }
}

int xs_metrics_render(struct xs_buf *out)
{
    memset(&c, 0, sizeof c);
    if (m.collector)
        m.collector(m.collector_ud);
    size_t start = out->len;
    struct out o = {out, 0};
    family(&o, "xsgw_build_info", "gauge", "The gateway's build; the value is always 1.");
    char ver[2 * sizeof XS_VERSION];
    put(&o, "xsgw_build_info{version=\"%s\"} 1\n", escape(ver, XS_VERSION));
    family(&o, "xsgw_start_time_seconds", "gauge", "When the gateway started (Unix time).");
    put(&o, "xsgw_start_time_seconds %.3f\n", m.start_time);
    render_events(&o, 0);
    render_events(&o, 1);
    render_histogram(&o, "xsgw_handoff_seconds",
                     "From an event's arrival to its hand-off to the other side.", m.handoff);
    render_histogram(&o, "xsgw_outcome_seconds",
                     "From a message's or presence update's arrival to its final outcome.",
                     m.outcome);
    render_streams(&o);
    render_sip(&o);
    render_tls(&o);
    render_policy(&o);
    if (o.rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return o.rc;
}
