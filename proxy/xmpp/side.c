/* The XMPP side object: the 5269 listener (and the Direct TLS one), the registry of inbound and
 * outbound streams, the once-a-second sweep of their timers, and the two
 * faces toward the middle. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/random.h"
#include "xmpp/s2s.h"
#include "xmpp/translate.h"
#include "xmpp/xmpp_side.h"

/* What the soft descriptor limit is raised to under an unlimited hard one. */
#define NOFILE_UNLIMITED 1048576
/* One serialized stanza; see core/limits.h. */
#define SCRATCH_MAX XS_MESSAGE_WIRE_MAX

double xs_xmpp_now(const struct xs_xmpp *x)
{
    return (double)uv_now(x->loop) / 1000.0;
}

void xs_xmpp_random_id(char out[XS_STREAM_ID_LEN + 1])
{
    xs_random_hex(out, XS_STREAM_ID_LEN / 2);
}

struct s2s_in *xs_xmpp_find_in(struct xs_xmpp *x, uint64_t tag)
{
    for (struct s2s_in *in = x->ins; in; in = xs_s2s_in_next(in))
        if (xs_s2s_in_verify_tag(in) == tag)
            return in;
    return NULL;
}

void xs_xmpp_wanted_budget(const struct xs_config *cfg, struct xs_s2s_budget *out)
{
    out->in_max = cfg->xmpp_streams_in;
    out->out_max = cfg->xmpp_streams_out;
    out->unauth_max = cfg->xmpp_streams_unauth;
    out->unauth_per_source = cfg->xmpp_streams_unauth_per_source;
    out->per_domain = cfg->xmpp_streams_per_domain;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

int xs_xmpp_size_budget(unsigned long long nofile, const struct xs_s2s_budget *want,
                        struct xs_s2s_budget *out)
{
    *out = *want;
    const unsigned long long need =
        (unsigned long long)want->in_max + want->out_max + XS_S2S_FD_RESERVE;
    if (nofile >= need)
        return 0;
    /* Too few descriptors: keep the reserve if there is room for it (half of
     * them otherwise), split the rest between inbound and outbound streams
     * as the policy's totals are split, and keep the unauthenticated share
     * of inbound ones at most a quarter. */
    size_t avail =
        (size_t)(nofile > 2 * XS_S2S_FD_RESERVE ? nofile - XS_S2S_FD_RESERVE : nofile / 2);
    double out_share = (double)want->out_max / ((double)want->in_max + (double)want->out_max);
    out->out_max = (size_t)((double)avail * out_share);
    if (out->out_max < 1)
        out->out_max = 1;
    out->in_max = avail > out->out_max + 2 ? avail - out->out_max : 2;
    out->out_max = min_size(out->out_max, want->out_max);
    out->in_max = min_size(out->in_max, want->in_max);
    out->unauth_max = min_size(want->unauth_max, out->in_max / 4 > 0 ? out->in_max / 4 : 1);
    out->unauth_per_source = min_size(want->unauth_per_source, out->unauth_max);
    out->per_domain = min_size(want->per_domain, out->in_max);
    return 1;
}

/* RLIMIT_NOFILE as the gateway will run with it: the soft limit raised to
 * the hard one, since every stream is a descriptor and the policy, not a
 * login default of 1024, should say how many streams there are. */
static unsigned long long raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return RLIM_INFINITY;
    if (rl.rlim_cur == RLIM_INFINITY)
        return RLIM_INFINITY;
    /* An unlimited hard limit still has the kernel's nr_open above it,
     * 1,048,576 by default. */
    rlim_t top = rl.rlim_max == RLIM_INFINITY ? NOFILE_UNLIMITED : rl.rlim_max;
    if (rl.rlim_cur >= top)
        return rl.rlim_cur;
    struct rlimit raised = rl;
    raised.rlim_cur = top;
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
        xs_log(XS_LOG_WARN, "xmpp.budget", "result=not-raised nofile=%llu hard=%llu",
               (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
        return rl.rlim_cur;
    }
    xs_log(XS_LOG_INFO, "xmpp.budget", "result=raised nofile=%llu was=%llu",
           (unsigned long long)raised.rlim_cur, (unsigned long long)rl.rlim_cur);
    return raised.rlim_cur;
}

/* Sizes the stream budgets from the policy against the descriptor limit. An
 * inbound flood must meet our caps, not EMFILE, which would also break SIP
 * over TCP and DNS. A policy asking for more than the descriptors hold gets
 * a warning that names both and the limit to raise. */
static void size_budget(struct xs_xmpp *x)
{
    struct xs_s2s_budget want;
    xs_xmpp_wanted_budget(x->cfg, &want);
    const unsigned long long need =
        (unsigned long long)want.in_max + want.out_max + XS_S2S_FD_RESERVE;
    int shrunk = xs_xmpp_size_budget(x->nofile, &want, &x->budget);
    xs_log(shrunk ? XS_LOG_WARN : XS_LOG_INFO, "xmpp.budget",
           "result=%s nofile=%llu want=%llu in_max=%zu out_max=%zu unauth_max=%zu "
           "unauth_per_source=%zu per_domain=%zu%s",
           shrunk ? "shrunk" : "ok", x->nofile, need, x->budget.in_max, x->budget.out_max,
           x->budget.unauth_max, x->budget.unauth_per_source, x->budget.per_domain,
           shrunk ? " reason=\"RLIMIT_NOFILE is below xmpp.max_streams inbound + outbound + "
                    "384: raise it (ulimit -n, LimitNOFILE=, docker --ulimit nofile=)\""
                  : "");
}

int xs_xmpp_out_room(const struct xs_xmpp *x)
{
    return x->n_streams - x->n_ins < x->budget.out_max;
}

static void maybe_closed(struct xs_xmpp *x)
{
    if (!x->closing || x->handles_open > 0 || x->ins || x->outs || x->pending_outcomes)
        return;
    xs_buf_free(&x->scratch);
    xs_tls_ctx_unref(x->tls);
    void (*cb)(void *) = x->on_closed;
    void *ud = x->on_closed_ud;
    free(x);
    if (cb)
        cb(ud);
}

unsigned xs_xmpp_metrics_partner(const struct xs_xmpp *x, const char *remote)
{
    const struct xs_partner *p = remote && *remote ? xs_policy_partner(x->policy, remote) : NULL;
    return xs_metrics_partner(p ? p->domain : NULL);
}

int xs_xmpp_metrics_tls(const struct xs_link *l)
{
    if (!l || !xs_link_is_tls(l))
        return XS_MSTREAM_TLS_NONE;
    const char *d = xs_link_tls_describe(l);
    return !strncmp(d, "TLSv1.3", 7)   ? XS_MSTREAM_TLS13
           : !strncmp(d, "TLSv1.2", 7) ? XS_MSTREAM_TLS12
                                       : XS_MSTREAM_TLS_NONE;
}

void xs_xmpp_metrics(struct xs_xmpp *x)
{
    for (struct s2s_in *in = x->ins; in; in = xs_s2s_in_next(in))
        xs_s2s_in_metrics(in);
    for (struct s2s_out *o = x->outs; o; o = xs_s2s_out_next(o))
        xs_s2s_out_metrics(o);
}

void xs_xmpp_foreach_stream(struct xs_xmpp *x, void (*fn)(void *ud, const struct xs_stream_info *),
                            void *ud)
{
    struct xs_stream_info si;
    for (struct s2s_in *in = x->ins; in; in = xs_s2s_in_next(in))
        if (xs_s2s_in_info(in, &si) == 0)
            fn(ud, &si);
    for (struct s2s_out *o = x->outs; o; o = xs_s2s_out_next(o))
        if (xs_s2s_out_info(o, &si) == 0)
            fn(ud, &si);
}

void xs_xmpp_tls_version(const struct xs_link *l, char out[16])
{
    const char *d = l && xs_link_is_tls(l) ? xs_link_tls_describe(l) : "none";
    size_t n = strcspn(d, "/");
    snprintf(out, 16, "%.*s", (int)(n < 15 ? n : 15), d);
}

double xs_xmpp_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void xs_xmpp_stream_gone(struct xs_xmpp *x)
{
    x->n_streams--;
    maybe_closed(x);
}

void xs_xmpp_outcome_done(struct xs_xmpp *x)
{
    x->pending_outcomes--;
    maybe_closed(x);
}

/* A stanza that cannot go out: its sender hears why, and one without a
 * sender (an error bounced to an XMPP user) is logged, never dropped
 * silently. Frees `el`. */
static void send_failed(struct xs_xml_el *el, const char *local, const char *remote,
                        xs_done_cb done, void *ud, enum xs_cond cond, const char *text)
{
    if (done) {
        xs_xml_el_free(el);
        done(ud, cond, text);
        return;
    }
    const char *id = xs_xml_el_attr(el, "id");
    xs_log(XS_LOG_WARN, "xmpp.send.dropped",
           "local=%s remote=%s stanza=%s id=%s cond=%s text=\"%s\"", local, remote, el->name,
           id ? id : "-", xs_cond_name(cond), text);
    xs_xml_el_free(el);
}

void xs_xmpp_send(struct xs_xmpp *x, const char *local, const char *remote, struct xs_xml_el *el,
                  xs_done_cb done, void *ud)
{
    /* The policy hook may have rewritten the addresses (audit L5): whatever
     * it did, we speak only for our own domains and only to partners. */
    const char *refusal = !xs_policy_is_local_domain(x->policy, local) ? "sender-not-local"
                          : !xs_policy_partner(x->policy, remote)      ? "not-a-partner"
                                                                       : NULL;
    if (refusal) {
        xs_log(XS_LOG_WARN, "xmpp.send.refused", "local=%s remote=%s reason=%s", local, remote,
               refusal);
        send_failed(el, local, remote, done, ud, XS_COND_FORBIDDEN,
                    *refusal == 's' ? "the sender is not in a domain this gateway serves"
                                    : "the recipient's domain is not a federated partner");
        return;
    }
    struct s2s_out *o = x->closing ? NULL : xs_s2s_out_find(x, local, remote);
    if (!o && !x->closing && !xs_xmpp_out_room(x)) {
        /* xmpp.max_streams.outbound: a stream for a new domain must wait for
         * one of the others to close. */
        xs_log(XS_LOG_WARN, "xmpp.send.refused",
               "local=%s remote=%s reason=too-many-streams out_max=%zu", local, remote,
               x->budget.out_max);
        send_failed(el, local, remote, done, ud, XS_COND_RESOURCE_CONSTRAINT,
                    "too many outbound streams");
        return;
    }
    if (!o && !x->closing)
        o = xs_s2s_out_new(x, local, remote);
    if (!o) {
        send_failed(el, local, remote, done, ud,
                    x->closing ? XS_COND_SERVICE_UNAVAILABLE : XS_COND_REMOTE_SERVER_NOT_FOUND,
                    x->closing ? "the gateway is shutting down"
                               : "no stream to the remote server could be set up");
        return;
    }
    xs_buf_reset(&x->scratch);
    if (xs_xml_serialize(el, XS_NS_SERVER, &x->scratch) != 0) {
        send_failed(el, local, remote, done, ud, XS_COND_RESOURCE_CONSTRAINT, "stanza too large");
        return;
    }
    /* Presence is not held for the error grace: nothing answers it
     * (RFC 6121 §4), and an error that does come back about a subscription
     * is handled on its own (s2s_in_carry.c). Without an id to match, the
     * stream reports it delivered once written, or acknowledged with stream
     * management, as a message without an id. */
    const char *match_id = strcmp(el->name, "presence") ? xs_xml_el_attr(el, "id") : NULL;
    xs_s2s_out_send(o, x->scratch.data, x->scratch.len, match_id, done, ud);
    xs_xml_el_free(el);
}

void xs_xmpp_deliver(void *impl, struct xs_event *ev, xs_done_cb done, void *ud)
{
    struct xs_xmpp *x = impl;
    char local[XS_DOMAIN_MAX], remote[XS_DOMAIN_MAX];
    if (xs_s2s_domain_of(ev->from, local) || xs_s2s_domain_of(ev->to, remote)) {
        xs_event_free(ev);
        done(ud, XS_COND_JID_MALFORMED, "address could not be mapped to a JID");
        return;
    }
    if (ev->kind != XS_EVENT_MESSAGE && xs_xmpp_event_sendable(ev) != 0) {
        char q[64];
        xs_log(XS_LOG_WARN, "xmpp.deliver", "event=%llu kind=presence type=%s result=refused",
               (unsigned long long)ev->serial, xs_log_quote(q, sizeof q, ev->type));
        xs_event_free(ev);
        done(ud, XS_COND_BAD_REQUEST, "presence of this type cannot be sent over XMPP");
        return;
    }
    if (!ev->id) {
        /* An id lets a later error stanza from the peer be matched in the logs. */
        char id[XS_STREAM_ID_LEN + 1];
        xs_xmpp_random_id(id);
        if (xs_event_set(&ev->id, id) != 0) {
            xs_event_free(ev);
            done(ud, XS_COND_RESOURCE_CONSTRAINT, "out of memory");
            return;
        }
    }
    struct xs_xml_el *el = xs_xmpp_event_to_stanza(ev);
    xs_event_free(ev);
    if (!el) {
        done(ud, XS_COND_RESOURCE_CONSTRAINT, "out of memory");
        return;
    }
    xs_xmpp_send(x, local, remote, el, done, ud);
}

/* Stanzas due within this much of each other are reported in one firing,
 * so a stream of stanzas costs one walk of the outbound streams per
 * EXPIRE_SLACK_MS and not one per stanza; a sender hears that much late at
 * most. */
#define EXPIRE_SLACK_MS 5

static void on_expire(uv_timer_t *t);

void xs_xmpp_expire_at(struct xs_xmpp *x, double deadline)
{
    if (x->closing || (x->expire_at > 0 && x->expire_at <= deadline))
        return;
    double now = xs_xmpp_now(x);
    uint64_t ms = deadline > now ? (uint64_t)((deadline - now) * 1000.0) + EXPIRE_SLACK_MS : 0;
    x->expire_at = now + (double)ms / 1000.0;
    uv_timer_start(&x->expire, on_expire, ms, 0);
}

/* Written stanzas whose grace (or settle after an acknowledgement) ran out
 * are reported delivered; the timer is set again for the next one due. */
static void on_expire(uv_timer_t *t)
{
    struct xs_xmpp *x = t->data;
    double now = xs_xmpp_now(x), next = 0;
    x->expire_at = 0;
    for (struct s2s_out *o = x->outs; o; o = xs_s2s_out_next(o)) {
        xs_s2s_out_expire(o, now);
        double d = xs_s2s_out_next_expiry(o);
        if (d > 0 && (next == 0 || d < next))
            next = d;
    }
    if (next > 0)
        xs_xmpp_expire_at(x, next);
}

/* Every 100 ms: every stream's set-up and idle deadlines are checked, and
 * quiet inbound streams give their parser's memory back. */
static void on_sweep(uv_timer_t *t)
{
    struct xs_xmpp *x = t->data;
    double now = xs_xmpp_now(x);
    for (struct s2s_in *in = x->ins, *next; in; in = next) {
        next = xs_s2s_in_next(in);
        x->trimmed += (size_t)xs_s2s_in_sweep(in, now);
    }
    if (x->trimmed >= XS_S2S_TRIM_RETURN) {
        x->trimmed = 0;
#ifdef __GLIBC__
        malloc_trim(0);
#endif
    }
    for (struct s2s_out *o = x->outs, *next; o; o = next) {
        next = xs_s2s_out_next(o);
        x->trimmed += (size_t)xs_s2s_out_sweep(o, now);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct xs_xmpp *x = server->data;
    if (status < 0) {
        xs_log(XS_LOG_WARN, "xmpp.listen", "result=accept-failed reason=\"%s\"",
               uv_strerror(status));
        return;
    }
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp) {
        /* libuv stops watching a listener whose pending connection was not
         * accepted, so returning would end federation silently; a small core
         * allocation failing is fatal instead (CONVENTIONS 8). */
        xs_log(XS_LOG_ERROR, "xmpp.listen", "result=accept-failed reason=oom");
        abort();
    }
    uv_tcp_init(x->loop, tcp);
    if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    if (x->closing) {
        xs_log(XS_LOG_WARN, "xmpp.listen", "result=refused reason=shutting-down");
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    /* The inbound budget and the eviction of unauthenticated streams are
     * decided there, where the streams' states are known. Both listeners
     * share them: a stream is a stream, however it starts. */
    if (server == (uv_stream_t *)&x->listener_tls)
        xs_s2s_in_accept_tls(x, tcp);
    else
        xs_s2s_in_accept(x, tcp);
}

static int parse_listen(const char *host, int port, struct sockaddr_storage *addr)
{
    return strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)addr)
                             : uv_ip4_addr(host, port, (struct sockaddr_in *)addr);
}

/* xmpp.listen_tls (XEP-0368): a second listener whose connections start
 * TLS at once. Returns 0 or a libuv error. */
static int listen_tls(struct xs_xmpp *x)
{
    struct sockaddr_storage addr;
    const char *host = x->cfg->xmpp_listen_tls_host;
    int rc = parse_listen(host, x->cfg->xmpp_listen_tls_port, &addr);
    uv_tcp_init(x->loop, &x->listener_tls);
    x->listener_tls.data = x;
    x->has_listener_tls = 1;
    x->handles_open++;
    if (rc == 0)
        rc = uv_tcp_bind(&x->listener_tls, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&x->listener_tls, 128, on_connection);
    if (rc != 0)
        xs_log(XS_LOG_ERROR, "xmpp.listen",
               "addr=%s port=%d tls=direct result=failed reason=\"%s\"", host,
               x->cfg->xmpp_listen_tls_port, uv_strerror(rc));
    else
        xs_log(XS_LOG_INFO, "xmpp.listen", "addr=%s port=%d tls=direct result=listening", host,
               x->cfg->xmpp_listen_tls_port);
    return rc;
}

int xs_xmpp_start(uv_loop_t *loop, struct xs_policy *policy, struct xs_tls_ctx *tls,
                  const char *secret, xs_submit_fn submit, void *router, struct xs_xmpp **out)
{
    struct xs_xmpp *x = calloc(1, sizeof *x);
    if (!x)
        return XS_ENOMEM;
    x->loop = loop;
    x->policy = policy;
    x->cfg = xs_policy_config(policy);
    x->tls = tls;
    xs_tls_ctx_ref(tls);
    snprintf(x->secret, sizeof x->secret, "%s", secret);
    x->submit = submit;
    x->router = router;
    xs_buf_init(&x->scratch, SCRATCH_MAX);
    x->nofile = raise_nofile();
    size_budget(x);

    struct sockaddr_storage addr;
    const char *host = x->cfg->xmpp_listen_host;
    int rc = parse_listen(host, x->cfg->xmpp_listen_port, &addr);
    uv_tcp_init(loop, &x->listener);
    x->listener.data = x;
    uv_timer_init(loop, &x->sweep);
    x->sweep.data = x;
    uv_timer_init(loop, &x->expire);
    x->expire.data = x;
    uv_timer_init(loop, &x->hold);
    x->hold.data = x;
    x->handles_open = 4;
    if (rc == 0)
        rc = uv_tcp_bind(&x->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&x->listener, 128, on_connection);
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "xmpp.listen", "addr=%s port=%d result=failed reason=\"%s\"", host,
               x->cfg->xmpp_listen_port, uv_strerror(rc));
        xs_xmpp_close(x, NULL, NULL);
        return XS_EIO;
    }
    if (x->cfg->xmpp_listen_tls_host && listen_tls(x) != 0) {
        xs_xmpp_close(x, NULL, NULL);
        return XS_EIO;
    }
    uv_timer_start(&x->sweep, on_sweep, 100, 100);
    xs_log(XS_LOG_INFO, "xmpp.listen", "addr=%s port=%d result=listening", host, xs_xmpp_port(x));
    *out = x;
    return 0;
}

int xs_xmpp_port(const struct xs_xmpp *x)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&x->listener, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void xs_xmpp_set_policy(struct xs_xmpp *x, struct xs_policy *policy, struct xs_tls_ctx *tls)
{
    const struct xs_config *old = x->cfg;
    x->policy = policy;
    x->cfg = xs_policy_config(policy);
    if (strcmp(old->xmpp_listen_host, x->cfg->xmpp_listen_host) ||
        old->xmpp_listen_port != x->cfg->xmpp_listen_port)
        xs_log(XS_LOG_WARN, "xmpp.listen",
               "result=unchanged reason=\"a new listen address "
               "takes effect on restart\"");
    const char *old_tls = old->xmpp_listen_tls_host, *new_tls = x->cfg->xmpp_listen_tls_host;
    if ((!old_tls != !new_tls) || (old_tls && strcmp(old_tls, new_tls)) ||
        old->xmpp_listen_tls_port != x->cfg->xmpp_listen_tls_port)
        xs_log(XS_LOG_WARN, "xmpp.listen",
               "tls=direct result=unchanged reason=\"a new listen_tls address "
               "takes effect on restart\"");
    /* New limits apply to new streams: streams already over them stay. */
    size_budget(x);
    if (tls != x->tls) {
        xs_tls_ctx_ref(tls);
        xs_tls_ctx_unref(x->tls);
        x->tls = tls;
    }
    for (struct s2s_in *in = x->ins, *next; in; in = next) {
        next = xs_s2s_in_next(in);
        xs_s2s_in_recheck(in);
    }
    for (struct s2s_out *o = x->outs, *next; o; o = next) {
        next = xs_s2s_out_next(o);
        xs_s2s_out_recheck(o);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct xs_xmpp *x = h->data;
    x->handles_open--;
    maybe_closed(x);
}

void xs_xmpp_drain(struct xs_xmpp *x)
{
    if (x->listeners_closed)
        return;
    x->listeners_closed = 1;
    uv_close((uv_handle_t *)&x->listener, on_handle_closed);
    if (x->has_listener_tls)
        uv_close((uv_handle_t *)&x->listener_tls, on_handle_closed);
}

size_t xs_xmpp_pending(const struct xs_xmpp *x)
{
    size_t n = 0;
    for (struct s2s_out *o = x->outs; o; o = xs_s2s_out_next(o))
        n += xs_s2s_out_pending(o);
    return n;
}

void xs_xmpp_close(struct xs_xmpp *x, void (*on_closed)(void *ud), void *ud)
{
    x->closing = 1;
    x->on_closed = on_closed;
    x->on_closed_ud = ud;
    for (struct s2s_in *in = x->ins, *next; in; in = next) {
        next = xs_s2s_in_next(in);
        xs_s2s_in_shutdown(in);
    }
    for (struct s2s_out *o = x->outs, *next; o; o = next) {
        next = xs_s2s_out_next(o);
        xs_s2s_out_shutdown(o);
    }
    xs_xmpp_drain(x);
    uv_close((uv_handle_t *)&x->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&x->expire, on_handle_closed);
    uv_close((uv_handle_t *)&x->hold, on_handle_closed);
}
