/* The XMPP side's stream budgets: the policy's sizes when descriptors allow,
 * and shrunk sizes that still fit the limit when they do not. And presence
 * through the real side, against a fake peer server on loopback that
 * answers dialback: what arrives becomes events with the right fields, a
 * refusal becomes the answer RFC 6121 asks for, and presence events go out
 * as stanzas. */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "core/log.h"
#include "core/metrics.h"
#include "policy/policy.h"
#include "tls/tls.h"
#include "xmpp/s2s.h"
#include "xmpp/xmpp_side.h"

/* The policy's defaults (lua/xsgw/policy.lua, xmpp.max_streams). */
static const struct xs_s2s_budget want = {
    .in_max = 10000, .out_max = 10000, .unauth_max = 1000, .unauth_per_source = 8,
    .per_domain = 32};

static void test_budget_fits(void)
{
    struct xs_s2s_budget b;
    CHECK(xs_xmpp_size_budget(RLIM_INFINITY, &want, &b) == 0);
    CHECK(b.in_max == 10000 && b.out_max == 10000 && b.unauth_max == 1000);
    CHECK(b.unauth_per_source == 8 && b.per_domain == 32);
    CHECK(xs_xmpp_size_budget(1048576, &want, &b) == 0);
    CHECK(b.in_max == 10000);
    /* Exactly enough, and one short. */
    CHECK(xs_xmpp_size_budget(10000 + 10000 + XS_S2S_FD_RESERVE, &want, &b) == 0);
    CHECK(xs_xmpp_size_budget(10000 + 10000 + XS_S2S_FD_RESERVE - 1, &want, &b) == 1);
    CHECK(b.in_max + b.out_max + XS_S2S_FD_RESERVE <= 10000 + 10000 + XS_S2S_FD_RESERVE - 1);
}

static void test_budget_shrinks(void)
{
    /* systemd's common LimitNOFILE=1024: split as the policy splits. */
    struct xs_s2s_budget b;
    CHECK(xs_xmpp_size_budget(1024, &want, &b) == 1);
    CHECK(b.in_max + b.out_max + XS_S2S_FD_RESERVE <= 1024);
    CHECK(b.out_max == 320 && b.in_max == 320 && b.unauth_max == 80);
    CHECK(b.unauth_per_source == 8 && b.per_domain == 32);
    CHECK(xs_xmpp_size_budget(600, &want, &b) == 1);
    CHECK(b.out_max == 150 && b.in_max == 150 && b.unauth_max == 37);
    /* A policy that wants few outbound streams keeps few. */
    struct xs_s2s_budget lopsided = want;
    lopsided.out_max = 100;
    CHECK(xs_xmpp_size_budget(1024, &lopsided, &b) == 1);
    CHECK(b.out_max == 6 && b.in_max == 634);
    /* Starved: still usable numbers, shares within their totals, and never
     * more than the limit. */
    CHECK(xs_xmpp_size_budget(8, &want, &b) == 1);
    CHECK(b.out_max >= 1 && b.in_max >= 2 && b.unauth_max >= 1);
    CHECK(b.in_max + b.out_max <= 8);
    CHECK(b.unauth_per_source <= b.unauth_max && b.per_domain <= b.in_max);
}

/* ---- presence against a fake peer ---- */

/* One TCP connection of the fake peer, with everything it has read. */
struct peer_conn {
    int fd;
    char buf[1 << 16];
    size_t len;
    size_t seen; /* bytes a test has already looked at */
};

/* What the router was handed: the events and their done callbacks, which
 * the test answers as the router would. */
#define SUBMITS_MAX 16
struct submitted {
    struct xs_event *ev;
    xs_done_cb done;
    void *ud;
};

struct fake {
    uv_loop_t loop;
    struct xs_policy *policy;
    struct xs_tls_ctx *tls;
    struct xs_xmpp *x;
    int listen_fd;        /* the peer's server, where the gateway's outbound stream lands */
    struct peer_conn in;  /* our stream into the gateway */
    struct peer_conn out; /* the gateway's stream to us */
    struct submitted subs[SUBMITS_MAX];
    size_t n_subs;
    int closed;
};

/* Outcomes of deliver. */
struct outcome {
    int called;
    enum xs_cond cond;
    double at;
};

static void fake_submit(void *router, struct xs_event *ev, xs_done_cb done, void *ud)
{
    struct fake *f = router;
    if (f->n_subs >= SUBMITS_MAX) {
        CHECK(!"too many events submitted");
        xs_event_free(ev);
        done(ud, XS_COND_RESOURCE_CONSTRAINT, NULL);
        return;
    }
    f->subs[f->n_subs++] = (struct submitted){ev, done, ud};
}

static void on_outcome(void *ud, enum xs_cond cond, const char *text)
{
    (void)text;
    struct outcome *o = ud;
    o->called++;
    o->cond = cond;
    o->at = (double)uv_now(uv_default_loop()) / 1000.0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void conn_read(struct peer_conn *c)
{
    while (c->fd >= 0 && c->len < sizeof c->buf - 1) {
        ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
        if (n <= 0)
            break;
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    }
}

/* One turn: the gateway's loop, then whatever the peer's sockets hold. */
static void pump_once(struct fake *f)
{
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (f->out.fd < 0 && f->listen_fd >= 0) {
        int fd = accept(f->listen_fd, NULL, NULL);
        if (fd >= 0) {
            fcntl(fd, F_SETFL, O_NONBLOCK);
            f->out.fd = fd;
        }
    }
    struct pollfd p[2] = {{f->in.fd, POLLIN, 0}, {f->out.fd, POLLIN, 0}};
    poll(p, 2, 1);
    conn_read(&f->in);
    conn_read(&f->out);
}

static void pump(struct fake *f, double seconds)
{
    double end = now_s() + seconds;
    while (now_s() < end)
        pump_once(f);
}

/* Pumps until c holds `what` after what was seen; returns where it starts
 * (marking up to its end seen), or NULL after 5 s. */
static const char *wait_for(struct fake *f, struct peer_conn *c, const char *what)
{
    double end = now_s() + 5;
    for (;;) {
        const char *hit = c->fd >= 0 ? strstr(c->buf + c->seen, what) : NULL;
        if (hit) {
            c->seen = (size_t)(hit - c->buf) + strlen(what);
            return hit;
        }
        if (now_s() > end) {
            fprintf(stderr, "waited in vain for \"%s\"; have \"%s\"\n", what, c->buf + c->seen);
            return NULL;
        }
        pump_once(f);
    }
}

/* Pumps until n events were submitted (or 5 s passed). */
static int wait_submits(struct fake *f, size_t n)
{
    double end = now_s() + 5;
    while (f->n_subs < n && now_s() < end)
        pump_once(f);
    return f->n_subs >= n;
}

static void conn_send(struct peer_conn *c, const char *s)
{
    size_t n = strlen(s);
    CHECK(write(c->fd, s, n) == (ssize_t)n);
}

/* The value of attribute `name` in the text from `at` (up to the tag's
 * end) into out. */
static int attr_of(const char *at, const char *name, char *out, size_t n)
{
    char key[32];
    snprintf(key, sizeof key, " %s='", name);
    const char *end = strchr(at, '>');
    const char *k = strstr(at, key);
    if (!k || (end && k > end))
        return -1;
    k += strlen(key);
    const char *q = strchr(k, '\'');
    if (!q || (size_t)(q - k) >= n)
        return -1;
    memcpy(out, k, (size_t)(q - k));
    out[q - k] = '\0';
    return 0;
}

static const char stream_header[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "from='peer.test' to='sip.test' version='1.0'>";

/* Brings up an authenticated pair both ways: our stream into the gateway
 * (our db:result, which the gateway checks with a db:verify on its
 * stream to us) and the gateway's stream to us (its db:result, which we
 * declare valid). */
static int fake_handshake(struct fake *f, int sm)
{
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)xs_xmpp_port(f->x));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->in.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(f->in.fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return -1;
    fcntl(f->in.fd, F_SETFL, O_NONBLOCK);
    conn_send(&f->in, stream_header);
    if (!wait_for(f, &f->in, "</stream:features>"))
        return -1;
    conn_send(&f->in, "<db:result from='peer.test' to='sip.test'>0123456789abcdef</db:result>");

    if (!wait_for(f, &f->out, "<stream:stream"))
        return -1;
    conn_send(&f->out, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                       "xmlns:stream='http://etherx.jabber.org/streams' "
                       "xmlns:db='jabber:server:dialback' from='peer.test' to='sip.test' "
                       "id='peer-stream-1' version='1.0'><stream:features><dialback "
                       "xmlns='urn:xmpp:features:dialback'/></stream:features>");
    const char *v = wait_for(f, &f->out, "<db:verify");
    char id[128];
    if (!v || attr_of(v, "id", id, sizeof id))
        return -1;
    char answer[512];
    snprintf(answer, sizeof answer,
             "<db:result from='peer.test' to='sip.test' type='valid'/>"
             "<db:verify from='peer.test' to='sip.test' id='%s' type='valid'/>",
             id);
    conn_send(&f->out, answer);
    if (!wait_for(f, &f->in, "type='valid'"))
        return -1;
    if (sm) {
        /* Asked for although not offered (xmpp.stream_management "always"). */
        if (!wait_for(f, &f->out, "<enable xmlns='urn:xmpp:sm:3'/>"))
            return -1;
        conn_send(&f->out, "<enabled xmlns='urn:xmpp:sm:3'/>");
    }
    /* Past whatever the set-up wrote on the gateway's stream. */
    pump(f, 0.05);
    f->out.seen = f->out.len;
    return 0;
}

/* A port nobody listens on at the moment (the policy wants a real one). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    int port = -1;
    if (!bind(fd, (struct sockaddr *)&sa, sizeof sa) &&
        !getsockname(fd, (struct sockaddr *)&sa, &sl))
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* sm: whether the gateway's stream to us runs XEP-0198. */
static int fake_start(struct fake *f, const char *dir, int sm)
{
    memset(f, 0, sizeof *f);
    f->in.fd = f->out.fd = -1;
    uv_loop_init(&f->loop);
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(f->listen_fd, (struct sockaddr *)&sa, sizeof sa) || listen(f->listen_fd, 4) ||
        getsockname(f->listen_fd, (struct sockaddr *)&sa, &sl))
        return -1;
    fcntl(f->listen_fd, F_SETFL, O_NONBLOCK);
    /* A closed port for the partner that cannot be reached: bound, never
     * listened on, so connecting to it is refused. */
    int dead = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in da = {0};
    da.sin_family = AF_INET;
    da.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t dl = sizeof da;
    if (bind(dead, (struct sockaddr *)&da, sizeof da) ||
        getsockname(dead, (struct sockaddr *)&da, &dl))
        return -1;

    char path[512];
    snprintf(path, sizeof path, "%s/side.lua", dir);
    FILE *pf = fopen(path, "w");
    if (!pf)
        return -1;
    /* A long error grace, so that a presence event reported at once shows
     * it does not wait for one. */
    fprintf(pf,
            "gateway {\n"
            "  domains = { \"sip.test\" },\n"
            "  xmpp = { listen = \"127.0.0.1:%d\", dialback_secret = \"side-test-secret\",\n"
            "           error_grace = 5, stream_management = \"%s\", connect_timeout = 5 },\n"
            "  sip = { listen = { \"udp:127.0.0.1:5060\" }, next_hop = \"udp:127.0.0.1:5070\" },\n"
            "}\n"
            "partner \"peer.test\" { tls = \"optional\", dialback = true, "
            "route = \"127.0.0.1:%d\" }\n"
            "partner \"gone.test\" { tls = \"optional\", dialback = true, "
            "route = \"127.0.0.1:%d\" }\n",
            free_port(), sm ? "always" : "off", ntohs(sa.sin_port), ntohs(da.sin_port));
    fclose(pf);
    close(dead);
    char err[512] = "";
    if (xs_policy_load(path, "lua", &f->policy, err, sizeof err) != 0) {
        fprintf(stderr, "policy: %s\n", err);
        return -1;
    }
    const char *names[] = {"sip.test"};
    if (xs_tls_ctx_new(NULL, NULL, names, 1, &f->tls, err, sizeof err) != 0) {
        fprintf(stderr, "tls: %s\n", err);
        return -1;
    }
    if (xs_xmpp_start(&f->loop, f->policy, f->tls, "side-test-secret", fake_submit, f, &f->x))
        return -1;
    return fake_handshake(f, sm);
}

static void on_side_closed(void *ud)
{
    ((struct fake *)ud)->closed = 1;
}

static void fake_stop(struct fake *f)
{
    for (size_t i = 0; i < f->n_subs; i++)
        xs_event_free(f->subs[i].ev);
    if (f->x) {
        xs_xmpp_close(f->x, on_side_closed, f);
        double end = now_s() + 5;
        while (!f->closed && now_s() < end)
            pump_once(f);
        CHECK(f->closed);
    }
    if (f->in.fd >= 0)
        close(f->in.fd);
    if (f->out.fd >= 0)
        close(f->out.fd);
    if (f->listen_fd >= 0)
        close(f->listen_fd);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    CHECK(uv_loop_close(&f->loop) == 0);
    if (f->tls)
        xs_tls_ctx_unref(f->tls);
    xs_policy_free(f->policy);
}

/* Answers submitted event i as the router would. */
static void answer(struct fake *f, size_t i, enum xs_cond cond, const char *text)
{
    CHECK(i < f->n_subs && f->subs[i].done);
    if (i >= f->n_subs || !f->subs[i].done)
        return;
    xs_done_cb done = f->subs[i].done;
    f->subs[i].done = NULL;
    done(f->subs[i].ud, cond, text);
}

/* Nothing new on the gateway's stream to us for a while. */
static void expect_quiet(struct fake *f, double seconds)
{
    pump(f, seconds);
    if (f->out.len != f->out.seen)
        fprintf(stderr, "unexpected: \"%s\"\n", f->out.buf + f->out.seen);
    CHECK(f->out.len == f->out.seen);
}

/* The next stanza on the gateway's stream to us must be exactly `want`. */
static void expect_stanza(struct fake *f, const char *stanza)
{
    size_t start = f->out.seen;
    const char *hit = wait_for(f, &f->out, stanza);
    CHECK(hit != NULL);
    if (hit && (size_t)(hit - f->out.buf) != start) {
        fprintf(stderr, "before it: \"%.*s\"\n", (int)((size_t)(hit - f->out.buf) - start),
                f->out.buf + start);
        CHECK(!"only the expected stanza arrived");
    }
}

static void test_presence_in(struct fake *f)
{
    /* A subscription request: one event, the addresses bare, the stream's
     * facts on it; the router's refusal is answered unsubscribed, bare JID
     * to bare JID, with the request's id. */
    conn_send(&f->in, "<presence from='alice@peer.test/phone' to='bob@sip.test/x' "
                      "type='subscribe' id='s1'/>");
    CHECK(wait_submits(f, 1));
    struct xs_event *ev = f->n_subs >= 1 ? f->subs[0].ev : NULL;
    CHECK(ev != NULL);
    if (ev) {
        CHECK(ev->kind == XS_EVENT_SUBSCRIPTION && ev->origin == XS_SIDE_XMPP);
        CHECK_STR(ev->type, "subscribe");
        CHECK_STR(ev->from, "alice@peer.test");
        CHECK_STR(ev->to, "bob@sip.test");
        CHECK_STR(ev->id, "s1");
        CHECK(ev->secure == 0);
        CHECK_STR(ev->auth, "dialback");
    }
    CHECK(f->x->pending_outcomes == 1);
    expect_quiet(f, 0.1); /* nothing is answered before the router is */
    answer(f, 0, XS_COND_FORBIDDEN, "not a partner user");
    CHECK(f->x->pending_outcomes == 0);
    expect_stanza(f, "<presence from='bob@sip.test' to='alice@peer.test' type='unsubscribed' "
                     "id='s1'/>");

    /* Accepted: nothing goes back (the answer comes later, as an event of
     * its own from the other side). */
    conn_send(&f->in, "<presence from='alice@peer.test' to='bob@sip.test' type='subscribe' "
                      "id='s2'/>");
    CHECK(wait_submits(f, 2));
    answer(f, 1, XS_COND_NONE, NULL);
    expect_quiet(f, 0.2);

    /* Available presence with its details; refused: only logged. */
    conn_send(&f->in, "<presence from='alice@peer.test/phone' to='bob@sip.test' id='p1'>"
                      "<show>xa</show><status>on holiday</status><priority>-1</priority>"
                      "</presence>");
    CHECK(wait_submits(f, 3));
    ev = f->n_subs >= 3 ? f->subs[2].ev : NULL;
    if (ev) {
        CHECK(ev->kind == XS_EVENT_PRESENCE);
        CHECK_STR(ev->type, "available");
        CHECK_STR(ev->from, "alice@peer.test/phone");
        CHECK_STR(ev->show, "xa");
        CHECK_STR(ev->status, "on holiday");
        CHECK(ev->priority == -1);
    }
    answer(f, 2, XS_COND_POLICY_VIOLATION, "dropped by on_presence");
    expect_quiet(f, 0.2);

    /* A probe refused: a presence error back, addresses swapped. */
    conn_send(&f->in, "<presence from='alice@peer.test' to='carol@sip.test' type='probe' "
                      "id='q1'/>");
    CHECK(wait_submits(f, 4));
    ev = f->n_subs >= 4 ? f->subs[3].ev : NULL;
    CHECK(ev && ev->kind == XS_EVENT_PRESENCE && !strcmp(ev->type, "probe"));
    answer(f, 3, XS_COND_ITEM_NOT_FOUND, NULL);
    expect_stanza(f, "<presence type='error' from='carol@sip.test' to='alice@peer.test' id='q1'>"
                     "<error type='cancel'><item-not-found "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>");

    /* Unsubscribe refused: logged, not answered. */
    conn_send(&f->in, "<presence from='alice@peer.test' to='bob@sip.test' type='unsubscribe'/>");
    CHECK(wait_submits(f, 5));
    ev = f->n_subs >= 5 ? f->subs[4].ev : NULL;
    CHECK(ev && ev->kind == XS_EVENT_SUBSCRIPTION && !strcmp(ev->type, "unsubscribe"));
    answer(f, 4, XS_COND_SERVICE_UNAVAILABLE, NULL);
    expect_quiet(f, 0.2);

    /* What cannot be translated never reaches the router: a bad priority
     * on available presence, an unknown type. Being broadcast presence,
     * they are only logged. */
    conn_send(&f->in, "<presence from='alice@peer.test' to='bob@sip.test'>"
                      "<priority>500</priority></presence>"
                      "<presence from='alice@peer.test' to='bob@sip.test' type='invisible'/>");
    expect_quiet(f, 0.2);
    CHECK(f->n_subs == 5);
    /* A probe's details are not read, so a bad priority on one does not
     * stop it. */
    conn_send(&f->in, "<presence from='alice@peer.test' to='bob@sip.test' type='probe' id='q2'>"
                      "<priority>x</priority></presence>");
    CHECK(wait_submits(f, 6));
    answer(f, 5, XS_COND_NONE, NULL);
    expect_quiet(f, 0.1);
    /* A probe that cannot be translated is answered at once, without the
     * router. */
    conn_send(&f->in, "<presence from='alice@peer.test' to='bob b@sip.test' type='probe' "
                      "id='q3'/>");
    expect_stanza(f, "<presence type='error' from='bob b@sip.test' to='alice@peer.test' "
                     "id='q3'><error type='modify'><jid-malformed "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>presence could not be "
                     "translated</text></error></presence>");
    CHECK(f->n_subs == 6);

    /* An error from a remote user about presence we sent: the SIP watcher's
     * subscription ends, as RFC 8048 reads an error like a refusal. */
    conn_send(&f->in, "<presence from='alice@peer.test/x' to='bob@sip.test/gw' type='error' "
                      "id='o9'><error type='cancel'><item-not-found "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>");
    CHECK(wait_submits(f, 7));
    ev = f->n_subs >= 7 ? f->subs[6].ev : NULL;
    if (ev) {
        CHECK(ev->kind == XS_EVENT_SUBSCRIPTION);
        CHECK_STR(ev->type, "unsubscribed");
        CHECK_STR(ev->from, "alice@peer.test");
        CHECK_STR(ev->to, "bob@sip.test");
        CHECK_STR(ev->auth, "dialback");
    }
    CHECK(f->x->pending_outcomes == 1);
    answer(f, 6, XS_COND_FORBIDDEN, NULL);
    CHECK(f->x->pending_outcomes == 0);
    /* From the domain itself: recorded only; never answered. */
    conn_send(&f->in, "<presence from='peer.test' to='bob@sip.test' type='error'><error "
                      "type='cancel'><remote-server-not-found "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>");
    expect_quiet(f, 0.2);
    CHECK(f->n_subs == 7);
}

static struct xs_event *outgoing(enum xs_event_kind kind, const char *type, const char *to)
{
    struct xs_event *ev = xs_event_new(kind, XS_SIDE_SIP);
    xs_event_set(&ev->from, "bob@sip.test");
    xs_event_set(&ev->to, to);
    xs_event_set(&ev->type, type);
    return ev;
}

static void wait_outcome(struct fake *f, struct outcome *o, double seconds)
{
    double end = now_s() + seconds;
    while (!o->called && now_s() < end)
        pump_once(f);
}

static void test_presence_out(struct fake *f)
{
    /* Available presence with show and status: the stanza on the wire,
     * and delivered at once, though the policy's error grace is 5 s. */
    static struct outcome o;
    struct xs_event *ev = outgoing(XS_EVENT_PRESENCE, "available", "alice@peer.test/phone");
    xs_event_set(&ev->id, "o1");
    xs_event_set(&ev->show, "dnd");
    xs_event_set(&ev->status, "in a meeting <until 3>");
    xs_event_set(&ev->lang, "en");
    xs_event_set(&ev->note, "the PIDF side's note");
    ev->priority = 5;
    double t0 = now_s();
    xs_xmpp_deliver(f->x, ev, on_outcome, &o);
    expect_stanza(f, "<presence from='bob@sip.test' to='alice@peer.test/phone' id='o1'>"
                     "<show>dnd</show><status xml:lang='en'>in a meeting &lt;until 3&gt;</status>"
                     "<priority>5</priority></presence>");
    wait_outcome(f, &o, 2);
    CHECK(o.called == 1 && o.cond == XS_COND_NONE);
    CHECK(now_s() - t0 < 1.0);

    /* Unavailable and the subscription types: addresses (bare for
     * subscriptions), an id the side made up, nothing else. */
    static struct outcome o2;
    ev = outgoing(XS_EVENT_SUBSCRIPTION, "subscribed", "alice@peer.test/phone");
    xs_event_set(&ev->status, "never sent");
    xs_xmpp_deliver(f->x, ev, on_outcome, &o2);
    const char *at = wait_for(f, &f->out,
                              "<presence from='bob@sip.test' to='alice@peer.test' "
                              "type='subscribed' id='");
    CHECK(at != NULL);
    CHECK(wait_for(f, &f->out, "'/>") != NULL);
    wait_outcome(f, &o2, 2);
    CHECK(o2.called == 1 && o2.cond == XS_COND_NONE);

    static struct outcome o3;
    ev = outgoing(XS_EVENT_PRESENCE, "unavailable", "alice@peer.test");
    xs_event_set(&ev->id, "o3");
    xs_xmpp_deliver(f->x, ev, on_outcome, &o3);
    expect_stanza(f, "<presence from='bob@sip.test' to='alice@peer.test' type='unavailable' "
                     "id='o3'/>");
    wait_outcome(f, &o3, 2);
    CHECK(o3.called == 1 && o3.cond == XS_COND_NONE);

    /* A type XMPP has no stanza for: refused at once, nothing sent. */
    static struct outcome o4;
    ev = outgoing(XS_EVENT_PRESENCE, "subscribe", "alice@peer.test");
    xs_xmpp_deliver(f->x, ev, on_outcome, &o4);
    CHECK(o4.called == 1 && o4.cond == XS_COND_BAD_REQUEST);
    expect_quiet(f, 0.1);

    /* A message still waits out the grace: the difference is presence's. */
    static struct outcome om;
    ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_SIP);
    xs_event_set(&ev->from, "bob@sip.test");
    xs_event_set(&ev->to, "alice@peer.test");
    xs_event_set(&ev->id, "m1");
    xs_event_set(&ev->body, "hi");
    xs_xmpp_deliver(f->x, ev, on_outcome, &om);
    CHECK(wait_for(f, &f->out, "<body>hi</body></message>") != NULL);
    pump(f, 0.3);
    CHECK(om.called == 0);
    /* An error about it ends its wait. */
    conn_send(&f->in, "<message from='alice@peer.test' to='bob@sip.test' type='error' id='m1'>"
                      "<error type='cancel'><item-not-found "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    wait_outcome(f, &om, 2);
    CHECK(om.called == 1 && om.cond == XS_COND_ITEM_NOT_FOUND);

    /* A domain that cannot be reached: presence fails with the reason, so
     * the SIP side can end what depends on it. */
    static struct outcome og;
    ev = outgoing(XS_EVENT_PRESENCE, "available", "dave@gone.test");
    xs_xmpp_deliver(f->x, ev, on_outcome, &og);
    wait_outcome(f, &og, 6);
    CHECK(og.called == 1);
    CHECK(og.cond == XS_COND_REMOTE_SERVER_NOT_FOUND || og.cond == XS_COND_REMOTE_SERVER_TIMEOUT);
    if (og.cond != XS_COND_REMOTE_SERVER_NOT_FOUND && og.cond != XS_COND_REMOTE_SERVER_TIMEOUT)
        fprintf(stderr, "unreachable domain: cond %s\n", xs_cond_name(og.cond));
}

/* With stream management, presence is delivered when the peer acknowledges
 * it, at once (no settle: nothing answers presence), and fails when the
 * stream ends before that. */
static void test_presence_out_sm(struct fake *f)
{
    static struct outcome o;
    struct xs_event *ev = outgoing(XS_EVENT_PRESENCE, "available", "alice@peer.test");
    xs_event_set(&ev->id, "a1");
    xs_xmpp_deliver(f->x, ev, on_outcome, &o);
    expect_stanza(f, "<presence from='bob@sip.test' to='alice@peer.test' id='a1'/>");
    CHECK(wait_for(f, &f->out, "<r xmlns='urn:xmpp:sm:3'/>") != NULL);
    pump(f, 0.3);
    CHECK(o.called == 0); /* written is not enough: the peer has not said so */
    conn_send(&f->out, "<a xmlns='urn:xmpp:sm:3' h='1'/>");
    wait_outcome(f, &o, 2);
    CHECK(o.called == 1 && o.cond == XS_COND_NONE);

    static struct outcome lost;
    ev = outgoing(XS_EVENT_SUBSCRIPTION, "unsubscribed", "alice@peer.test");
    xs_event_set(&ev->id, "a2");
    xs_xmpp_deliver(f->x, ev, on_outcome, &lost);
    expect_stanza(f, "<presence from='bob@sip.test' to='alice@peer.test' type='unsubscribed' "
                     "id='a2'/>");
    pump(f, 0.1);
    CHECK(lost.called == 0);
    /* The peer ends the stream without acknowledging it. */
    conn_send(&f->out, "</stream:stream>");
    shutdown(f->out.fd, SHUT_WR);
    wait_outcome(f, &lost, 3);
    CHECK(lost.called == 1 && lost.cond == XS_COND_REMOTE_SERVER_TIMEOUT);
}

static void collect_streams(void *ud)
{
    xs_xmpp_metrics(ud);
}

/* The streams gauge, read from the side when the metrics are rendered:
 * the peer's stream in and the gateway's stream out, both authenticated by
 * dialback without TLS, under the partner's name. */
static void test_stream_metrics(struct fake *f)
{
    xs_metrics_set_collector(collect_streams, f->x);
    struct xs_buf b;
    xs_buf_init(&b, 1 << 20);
    CHECK(xs_metrics_render(&b) == 0);
    const char *t = b.data ? b.data : "";
    CHECK(strstr(t, "\nxsgw_streams{partner=\"peer.test\",direction=\"in\",state=\"established\","
                    "tls=\"none\",auth=\"dialback\"} 1\n"));
    CHECK(strstr(t, "\nxsgw_streams{partner=\"peer.test\",direction=\"out\",state=\"established\","
                    "tls=\"none\",auth=\"dialback\"} 1\n"));
    int n = 0;
    for (const char *p = t; (p = strstr(p, "\nxsgw_streams{")) != NULL; p++)
        n++;
    CHECK(n == 2);
    /* The stream to gone.test was opened and failed to connect. */
    CHECK(strstr(t, "\nxsgw_streams_opened_total{direction=\"in\"} 1\n"));
    CHECK(strstr(t, "\nxsgw_streams_opened_total{direction=\"out\"} 2\n"));
    CHECK(strstr(t, "\nxsgw_streams_closed_total{direction=\"in\"} 0\n"));
    CHECK(strstr(t, "\nxsgw_streams_closed_total{direction=\"out\"} 1\n"));
    xs_buf_free(&b);
    xs_metrics_set_collector(NULL, NULL);
}

static void test_presence(void)
{
    char dir[] = "/tmp/xsgw-side-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(!"temporary directory");
        return;
    }
    signal(SIGPIPE, SIG_IGN);
    xs_log_set_level(XS_LOG_ERROR + 1);
    struct fake *f = calloc(1, sizeof *f);
    int rc = fake_start(f, dir, 0);
    CHECK(rc == 0);
    if (rc == 0) {
        test_presence_in(f);
        test_presence_out(f);
        test_stream_metrics(f);
    }
    fake_stop(f);
    rc = fake_start(f, dir, 1);
    CHECK(rc == 0);
    if (rc == 0)
        test_presence_out_sm(f);
    fake_stop(f);
    free(f);
    char path[600];
    snprintf(path, sizeof path, "%s/side.lua", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_budget_fits();
    test_budget_shrinks();
    test_presence();
    return check_report("test_xmpp_side");
}
