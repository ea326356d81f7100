/* The SRV wire parser on crafted responses, well-formed and hostile; and
 * the loop's resolver against a fake DNS server in the test's own loop:
 * answers, NXDOMAIN, SERVFAIL, silence, the caches, the in-flight cap, and
 * that black-holed lookups do not delay a good one; the special address
 * ranges open federation refuses. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "check.h"
#include "dns_testutil.h"
#include "core/err.h"
#include "net/dns.h"

struct msg {
    unsigned char b[4096];
    size_t n;
};

static void put8(struct msg *m, unsigned v)
{
    if (m->n >= sizeof m->b)
        abort();
    m->b[m->n++] = (unsigned char)v;
}

static void put16(struct msg *m, unsigned v)
{
    put8(m, v >> 8);
    put8(m, v & 0xff);
}

static void put_bytes(struct msg *m, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put8(m, ((const unsigned char *)p)[i]);
}

/* Dotted name to uncompressed wire labels. */
static void put_name(struct msg *m, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        put8(m, (unsigned)l);
        put_bytes(m, name, l);
        name += l + (dot ? 1 : 0);
    }
    put8(m, 0);
}

static void header(struct msg *m, unsigned rcode, unsigned qd, unsigned an)
{
    m->n = 0;
    put16(m, 0x1234);
    put16(m, 0x8180 | rcode); /* response, RD, RA */
    put16(m, qd);
    put16(m, an);
    put16(m, 0);
    put16(m, 0);
}

#define QNAME "_xmpp-server._tcp.example.com"
/* Offset of the "example" label inside the question name at 12. */
#define EXAMPLE_OFF (12 + 13 + 5)

static void question(struct msg *m)
{
    put_name(m, QNAME);
    put16(m, 33);
    put16(m, 1);
}

/* One SRV answer whose owner points at the question. */
static void srv_rr(struct msg *m, unsigned prio, unsigned weight, unsigned port, const char *target)
{
    put16(m, 0xc00c);
    put16(m, 33);
    put16(m, 1);
    put16(m, 0);
    put16(m, 300);
    struct msg t = {.n = 0};
    put_name(&t, target);
    put16(m, 6 + (unsigned)t.n);
    put16(m, prio);
    put16(m, weight);
    put16(m, port);
    put_bytes(m, t.b, t.n);
}

static void srv_rr_raw(struct msg *m, unsigned prio, const unsigned char *raw, size_t rawlen,
                       int rdlen_adjust)
{
    put16(m, 0xc00c);
    put16(m, 33);
    put16(m, 1);
    put16(m, 0);
    put16(m, 300);
    put16(m, (unsigned)(6 + (int)rawlen + rdlen_adjust));
    put16(m, prio);
    put16(m, 0);
    put16(m, 5269);
    put_bytes(m, raw, rawlen);
}

static void build_three(struct msg *m)
{
    header(m, 0, 1, 3);
    question(m);
    srv_rr(m, 20, 0, 5269, "c.example.com");
    srv_rr(m, 10, 40, 5270, "b.example.com");
    srv_rr(m, 10, 60, 5269, "a.example.com");
}

/* Parses from an exactly sized heap copy, so ASan sees any over-read. */
static int parse(const struct msg *m, size_t len, struct xs_dns_target *t, size_t max)
{
    unsigned char *copy = malloc(len ? len : 1);
    memcpy(copy, m->b, len);
    int rc = xs_dns_parse_srv(copy, len, t, max);
    free(copy);
    return rc;
}

static void test_normal(void)
{
    struct msg m;
    struct xs_dns_target t[8];
    build_three(&m);
    CHECK(parse(&m, m.n, t, 8) == 3);
    CHECK(strcmp(t[0].host, "a.example.com") == 0 && t[0].priority == 10 && t[0].weight == 60 &&
          t[0].port == 5269);
    CHECK(strcmp(t[1].host, "b.example.com") == 0 && t[1].port == 5270);
    CHECK(strcmp(t[2].host, "c.example.com") == 0 && t[2].priority == 20);

    /* A CNAME before the SRV answers is skipped. */
    header(&m, 0, 1, 2);
    question(&m);
    put16(&m, 0xc00c);
    put16(&m, 5);
    put16(&m, 1);
    put16(&m, 0);
    put16(&m, 300);
    put16(&m, 2);
    put16(&m, 0xc000 | EXAMPLE_OFF);
    srv_rr(&m, 0, 0, 5269, "xmpp.example.com");
    CHECK(parse(&m, m.n, t, 8) == 1);
    CHECK(strcmp(t[0].host, "xmpp.example.com") == 0);

    /* No answers at all: zero targets, the caller falls back. */
    header(&m, 0, 1, 0);
    question(&m);
    CHECK(parse(&m, m.n, t, 8) == 0);
}

static void test_compression(void)
{
    struct msg m;
    struct xs_dns_target t[4];
    header(&m, 0, 1, 1);
    question(&m);
    unsigned char raw[] = {4, 'x', 'm', 'p', 'p', 0xc0, EXAMPLE_OFF};
    srv_rr_raw(&m, 5, raw, sizeof raw, 0);
    CHECK(parse(&m, m.n, t, 4) == 1);
    CHECK(strcmp(t[0].host, "xmpp.example.com") == 0);
    CHECK(t[0].priority == 5);

    /* A pointer straight to the whole question name. */
    header(&m, 0, 1, 1);
    question(&m);
    unsigned char raw2[] = {0xc0, 12};
    srv_rr_raw(&m, 5, raw2, sizeof raw2, 0);
    CHECK(parse(&m, m.n, t, 4) == 1);
    CHECK(strcmp(t[0].host, QNAME) == 0);
}

static void test_hostile_pointers(void)
{
    struct msg m;
    struct xs_dns_target t[4];

    /* A pointer to itself. */
    header(&m, 0, 1, 1);
    question(&m);
    size_t at = m.n + 12 + 6; /* where the target starts */
    unsigned char self[] = {(unsigned char)(0xc0 | (at >> 8)), (unsigned char)(at & 0xff)};
    srv_rr_raw(&m, 0, self, sizeof self, 0);
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);

    /* A forward pointer past the end. */
    header(&m, 0, 1, 1);
    question(&m);
    unsigned char fwd[] = {0xcf, 0xff};
    srv_rr_raw(&m, 0, fwd, sizeof fwd, 0);
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);

    /* A loop made only of backward pointers: label "a" then a pointer to
     * that label. */
    header(&m, 0, 1, 1);
    question(&m);
    at = m.n + 12 + 6;
    unsigned char loop[] = {1, 'a', (unsigned char)(0xc0 | (at >> 8)), (unsigned char)(at & 0xff)};
    srv_rr_raw(&m, 0, loop, sizeof loop, 0);
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);

    /* The owner name of an answer is a loop. */
    header(&m, 0, 0, 1);
    at = m.n;
    put16(&m, 0xc000 | (unsigned)at);
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);

    /* Obsolete label types 0x40 / 0x80. */
    header(&m, 0, 1, 1);
    question(&m);
    unsigned char ext[] = {0x41, 'x', 0};
    srv_rr_raw(&m, 0, ext, sizeof ext, 0);
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);
}

static void test_truncated(void)
{
    struct msg m;
    struct xs_dns_target t[8];
    build_three(&m);
    for (size_t len = 0; len < m.n; len++) {
        int rc = parse(&m, len, t, 8);
        if (rc >= 0) {
            fprintf(stderr, "truncated at %zu of %zu parsed: %d\n", len, m.n, rc);
            CHECK(!"a truncated message is refused");
        }
    }
    /* An answer count that promises more than is there. */
    build_three(&m);
    m.b[7] = 5;
    CHECK(parse(&m, m.n, t, 8) == XS_EPROTO);
    /* A question count likewise. */
    build_three(&m);
    m.b[5] = 9;
    CHECK(parse(&m, m.n, t, 8) == XS_EPROTO);
    /* Trailing bytes after the last record are ignored (EDNS OPT, say). */
    build_three(&m);
    put16(&m, 0);
    CHECK(parse(&m, m.n, t, 8) == 3);
}

static void test_bad_rdata(void)
{
    struct msg m;
    struct xs_dns_target t[4];
    /* rdlength one short of the target name. */
    header(&m, 0, 1, 1);
    question(&m);
    unsigned char name[] = {1, 'a', 0};
    srv_rr_raw(&m, 0, name, sizeof name, -1);
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);
    /* rdlength one longer than the target name. */
    header(&m, 0, 1, 1);
    question(&m);
    srv_rr_raw(&m, 0, name, sizeof name, 1);
    put8(&m, 0);
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);
    /* rdata too short to hold priority, weight and port. */
    header(&m, 0, 1, 1);
    question(&m);
    put16(&m, 0xc00c);
    put16(&m, 33);
    put16(&m, 1);
    put16(&m, 0);
    put16(&m, 300);
    put16(&m, 3);
    put8(&m, 0);
    put8(&m, 0);
    put8(&m, 0);
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);
    /* A space in a host name. */
    header(&m, 0, 1, 1);
    question(&m);
    unsigned char spaced[] = {3, 'a', ' ', 'b', 0};
    srv_rr_raw(&m, 0, spaced, sizeof spaced, 0);
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);
    /* A NUL byte in a label. */
    header(&m, 0, 1, 1);
    question(&m);
    unsigned char nul[] = {3, 'a', 0, 'b', 0};
    srv_rr_raw(&m, 0, nul, sizeof nul, 0);
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);
}

static void test_name_length(void)
{
    struct msg m;
    struct xs_dns_target t[4];
    char label63[64];
    memset(label63, 'x', 63);
    label63[63] = '\0';
    char name[400];
    /* 63+63+63+61 characters and 3 dots: 253, the longest name there is. */
    snprintf(name, sizeof name, "%s.%s.%s.%.61s", label63, label63, label63, label63);
    header(&m, 0, 1, 1);
    question(&m);
    srv_rr(&m, 0, 0, 5269, name);
    CHECK(parse(&m, m.n, t, 4) == 1);
    CHECK(strlen(t[0].host) == 253);
    /* One more character is too long. */
    snprintf(name, sizeof name, "%s.%s.%s.%.62s", label63, label63, label63, label63);
    header(&m, 0, 1, 1);
    question(&m);
    srv_rr(&m, 0, 0, 5269, name);
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);
    /* Too long only after decompression: a suffix reached through a pointer. */
    header(&m, 0, 1, 1);
    question(&m);
    struct msg raw = {.n = 0};
    for (int i = 0; i < 4; i++) {
        put8(&raw, 63);
        put_bytes(&raw, label63, 63);
    }
    put16(&raw, 0xc000 | EXAMPLE_OFF);
    srv_rr_raw(&m, 0, raw.b, raw.n, 0);
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);
}

static void test_root_and_rcode(void)
{
    struct msg m;
    struct xs_dns_target t[4];
    header(&m, 0, 1, 1);
    question(&m);
    srv_rr(&m, 0, 0, 0, "");
    CHECK(parse(&m, m.n, t, 4) == 1);
    CHECK(strcmp(t[0].host, ".") == 0);

    header(&m, 3, 1, 0);
    question(&m);
    CHECK(parse(&m, m.n, t, 4) == XS_ENOTFOUND);
    header(&m, 2, 1, 0);
    question(&m);
    CHECK(parse(&m, m.n, t, 4) == XS_EDNS);
    /* A query, not a response. */
    build_three(&m);
    m.b[2] &= 0x7f;
    CHECK(parse(&m, m.n, t, 4) == XS_EPROTO);
    CHECK(xs_dns_parse_srv(NULL, 0, t, 4) == XS_EPROTO);
}

static void test_bound_and_sort(void)
{
    struct msg m;
    struct xs_dns_target t[32];
    header(&m, 0, 1, 40);
    question(&m);
    for (unsigned i = 0; i < 40; i++) {
        char host[32];
        snprintf(host, sizeof host, "h%u.example.com", i);
        srv_rr(&m, (i * 7) % 5, i % 3, 5000 + i, host);
    }
    int n = parse(&m, m.n, t, 32);
    CHECK(n == 32);
    for (int i = 1; i < n; i++) {
        CHECK(t[i - 1].priority <= t[i].priority);
        if (t[i - 1].priority == t[i].priority)
            CHECK(t[i - 1].weight >= t[i].weight);
    }
    /* Ties keep the order of the answer section. */
    for (int i = 1; i < n; i++)
        if (t[i - 1].priority == t[i].priority && t[i - 1].weight == t[i].weight)
            CHECK(t[i - 1].port < t[i].port);
    CHECK(parse(&m, m.n, t, 0) == 0);
}

static void test_weighted_order(void)
{
    /* Priority 1: weights 90 and 10; priority 2: one target; priority 3:
     * two zero weights. Over many runs the heavier target leads about 90%
     * of the time, the priorities never mix, and nothing is lost. */
    uint64_t seed = 42;
    int heavy_first = 0;
    int zero_a_first = 0;
    const int runs = 10000;
    for (int i = 0; i < runs; i++) {
        struct xs_dns_target t[5] = {
            {"heavy", 1, 1, 90}, {"light", 2, 1, 10}, {"solo", 3, 2, 0},
            {"za", 4, 3, 0},     {"zb", 5, 3, 0},
        };
        xs_dns_weighted_order(t, 5, &seed);
        heavy_first += strcmp(t[0].host, "heavy") == 0;
        zero_a_first += strcmp(t[3].host, "za") == 0;
        CHECK(t[0].priority == 1 && t[1].priority == 1 && strcmp(t[0].host, t[1].host) != 0);
        CHECK(strcmp(t[2].host, "solo") == 0);
        CHECK(t[3].priority == 3 && t[4].priority == 3 && strcmp(t[3].host, t[4].host) != 0);
    }
    CHECK(heavy_first > runs * 85 / 100 && heavy_first < runs * 95 / 100);
    /* Zero weights still get picked first sometimes. */
    CHECK(zero_a_first > runs / 4 && zero_a_first < runs * 3 / 4);

    /* A zero-weight target among weighted ones keeps a small chance. */
    int zero_first = 0;
    for (int i = 0; i < runs; i++) {
        struct xs_dns_target t[2] = {{"w", 1, 1, 100}, {"z", 2, 1, 0}};
        xs_dns_weighted_order(t, 2, &seed);
        zero_first += strcmp(t[0].host, "z") == 0;
    }
    CHECK(zero_first > 0 && zero_first < runs / 20);
    xs_dns_weighted_order(NULL, 0, &seed);
}

struct result {
    int called;
    int status;
    size_t n;
    struct xs_dns_target t0;
};

static void on_srv(void *ud, int status, const struct xs_dns_target *targets, size_t n)
{
    struct result *r = ud;
    r->called++;
    r->status = status;
    r->n = n;
    if (n)
        r->t0 = targets[0];
}

static int resolver_closed;

static void on_resolver_closed(void *ud)
{
    resolver_closed++;
}

/* Closes the resolver and waits for its handles, so the loop can close. */
static void close_resolver(uv_loop_t *loop, struct xs_dns *dns)
{
    int before = resolver_closed;
    xs_dns_close(dns, on_resolver_closed, NULL);
    run_until_n(loop, &resolver_closed, before + 1, 2000);
    CHECK(resolver_closed == before + 1);
    CHECK(loop->data == NULL);
}

static void test_literal(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    loop.data = NULL; /* uv_loop_init keeps what it held */
    struct result none = {0};
    CHECK(xs_dns_srv(&loop, "xmpp-server", "127.0.0.1", 5269, on_srv, &none, NULL) == XS_ESTATE);
    struct xs_dns *dns = NULL;
    CHECK(xs_dns_new(&loop, NULL, &dns) == 0 && dns != NULL);
    CHECK(xs_dns_of(&loop) == dns);
    struct xs_dns *second = NULL;
    CHECK(xs_dns_new(&loop, NULL, &second) == XS_EEXISTS && second == NULL);
    struct result r4 = {0}, r6 = {0}, rc = {0};
    struct xs_dns_req *req = NULL;
    CHECK(xs_dns_srv(&loop, "xmpp-server", "127.0.0.1", 5269, on_srv, &r4, &req) == 0);
    CHECK(req != NULL);
    CHECK(r4.called == 0); /* never before the call returns */
    CHECK(xs_dns_srv(&loop, "xmpp-server", "::1", 5270, on_srv, &r6, NULL) == 0);
    CHECK(xs_dns_srv(&loop, "xmpp-server", "127.0.0.2", 5269, on_srv, &rc, &req) == 0);
    xs_dns_cancel(req);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(r4.called == 1 && r4.status == 0 && r4.n == 1);
    CHECK(strcmp(r4.t0.host, "127.0.0.1") == 0 && r4.t0.port == 5269);
    CHECK(r6.called == 1 && r6.status == 0 && r6.n == 1);
    CHECK(strcmp(r6.t0.host, "::1") == 0 && r6.t0.port == 5270);
    CHECK(rc.called == 0);

    CHECK(xs_dns_srv(&loop, "xmpp-server", "", 5269, on_srv, &rc, NULL) == XS_EINVAL);
    CHECK(xs_dns_srv(&loop, "xmpp server", "a.test", 5269, on_srv, &rc, NULL) == XS_EINVAL);
    CHECK(xs_dns_srv(&loop, "xmpp-server", "a b.test", 5269, on_srv, &rc, NULL) == XS_EINVAL);
    CHECK(xs_dns_srv(&loop, "xmpp-server", "a..test", 5269, on_srv, &rc, NULL) == XS_EINVAL);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK(xs_dns_srv(&loop, "xmpp-server", longname, 5269, on_srv, &rc, NULL) == XS_EINVAL);
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(rc.called == 0);
    struct xs_dns_stats st;
    xs_dns_stats(dns, &st);
    CHECK(st.queries == 0); /* literals never reach the resolver */
    close_resolver(&loop, dns);
    CHECK(none.called == 0);
    CHECK(uv_loop_close(&loop) == 0);
}

struct addr_result {
    int called;
    int status;
    size_t n;
    struct sockaddr_storage a0;
    double ms; /* from the start of the test step */
};

static uint64_t step_t0;

static void on_addr(void *ud, int status, const struct sockaddr_storage *addrs, size_t n)
{
    struct addr_result *r = ud;
    r->called++;
    r->status = status;
    r->n = n;
    r->ms = ms_since(step_t0);
    if (n)
        r->a0 = addrs[0];
}

struct timed {
    int called;
    int status;
    double ms;
    struct xs_dns_target t[4];
    size_t n;
};

static int timed_done;

static void on_srv_timed(void *ud, int status, const struct xs_dns_target *targets, size_t n)
{
    struct timed *r = ud;
    r->called++;
    r->status = status;
    r->ms = ms_since(step_t0);
    r->n = n;
    for (size_t i = 0; i < n && i < 4; i++)
        r->t[i] = targets[i];
    timed_done++;
}

/* A resolver on `loop` asking only `f`, with a short deadline: 150 ms x 2. */
static struct xs_dns *fake_resolver(uv_loop_t *loop, struct fake_dns *f, unsigned max_inflight,
                                    unsigned ttl_s)
{
    struct xs_dns_opts o = {.servers = f->servers,
                            .timeout_ms = 150,
                            .tries = 2,
                            .max_inflight = max_inflight,
                            .neg_ttl_s = ttl_s,
                            .pos_min_ttl_s = ttl_s,
                            .pos_max_ttl_s = ttl_s};
    struct xs_dns *dns = NULL;
    CHECK(xs_dns_new(loop, &o, &dns) == 0);
    return dns;
}

/* One test's loop, fake server and resolver: every resolver test starts
 * and ends with the same few steps. */
struct env {
    uv_loop_t loop;
    struct fake_dns f;
    struct xs_dns *dns;
};

static int env_start(struct env *e, unsigned max_inflight, unsigned ttl_s)
{
    uv_loop_init(&e->loop);
    e->loop.data = NULL; /* uv_loop_init keeps what it held */
    CHECK(fake_dns_start(&e->loop, &e->f) == 0);
    e->dns = fake_resolver(&e->loop, &e->f, max_inflight, ttl_s);
    return e->dns ? 0 : -1;
}

static void env_stop(struct env *e)
{
    close_resolver(&e->loop, e->dns);
    fake_dns_stop(&e->f);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&e->loop) == 0);
}

/* Answers, each failure with its own code, and the RFC rules on top. */
static void test_resolver_answers(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    loop.data = NULL; /* uv_loop_init keeps what it held */
    struct fake_dns f;
    CHECK(fake_dns_start(&loop, &f) == 0);
    struct xs_dns *dns = fake_resolver(&loop, &f, 0, 30);

    struct timed good = {0}, dot = {0}, nosrv = {0}, nx = {0}, sf = {0};
    timed_done = 0;
    step_t0 = uv_hrtime();
    CHECK(xs_dns_srv(&loop, "xmpp-server", "good.test", 5269, on_srv_timed, &good, NULL) == 0);
    CHECK(xs_dns_srv(&loop, "xmpp-server", "dot.test", 5269, on_srv_timed, &dot, NULL) == 0);
    CHECK(xs_dns_srv(&loop, "xmpp-server", "nosrv.test", 5222, on_srv_timed, &nosrv, NULL) == 0);
    CHECK(xs_dns_srv(&loop, "xmpp-server", "nx.test", 5269, on_srv_timed, &nx, NULL) == 0);
    CHECK(xs_dns_srv(&loop, "xmpp-server", "sf.test", 5269, on_srv_timed, &sf, NULL) == 0);
    CHECK(good.called == 0); /* never inside the call */
    run_until_n(&loop, &timed_done, 5, 3000);
    /* Priority 5 comes first whatever the weights. */
    CHECK(good.called == 1 && good.status == 0 && good.n == 2);
    CHECK_STR(good.t[0].host, "a.good.test");
    CHECK(good.t[0].port == 5270 && good.t[1].port == 5269);
    CHECK_STR(good.t[1].host, "b.good.test");
    CHECK(dot.called == 1 && dot.status == XS_ENOTFOUND && dot.n == 0);
    /* No SRV records, or no SRV name at all: the domain itself (RFC 6120). */
    CHECK(nosrv.called == 1 && nosrv.status == 0 && nosrv.n == 1);
    CHECK_STR(nosrv.t[0].host, "nosrv.test");
    CHECK(nosrv.t[0].port == 5222);
    CHECK(nx.called == 1 && nx.status == 0 && nx.n == 1);
    CHECK_STR(nx.t[0].host, "nx.test");
    CHECK(sf.called == 1 && sf.status == XS_EDNS && sf.n == 0);

    /* A truncated answer: c-ares asks again over TCP (a socket it watches
     * for writability while connecting), and the SRV records come back. */
    struct timed tc = {0};
    timed_done = 0;
    CHECK(xs_dns_srv(&loop, "xmpp-server", "tc.test", 5269, on_srv_timed, &tc, NULL) == 0);
    run_until_n(&loop, &timed_done, 1, 3000);
    CHECK(tc.called == 1 && tc.status == 0 && tc.n == 2);
    CHECK(tc.t[0].port == 5270 && tc.t[1].port == 5269);
    CHECK(f.tcp_queries == 1);

    struct addr_result a = {0}, anx = {0}, asf = {0}, anodata = {0};
    CHECK(xs_dns_addr(&loop, "good.test", 5269, on_addr, &a, NULL) == 0);
    CHECK(xs_dns_addr(&loop, "nx.test", 5269, on_addr, &anx, NULL) == 0);
    CHECK(xs_dns_addr(&loop, "sf.test", 5269, on_addr, &asf, NULL) == 0);
    CHECK(xs_dns_addr(&loop, "nosrv.test", 5269, on_addr, &anodata, NULL) == 0);
    run_until_n(&loop, &a.called, 1, 3000);
    run_until_n(&loop, &anx.called, 1, 3000);
    run_until_n(&loop, &asf.called, 1, 3000);
    run_until_n(&loop, &anodata.called, 1, 3000);
    CHECK(a.called == 1 && a.status == 0 && a.n == 1);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a.a0;
    CHECK(sin->sin_family == AF_INET && ntohs(sin->sin_port) == 5269 &&
          ntohl(sin->sin_addr.s_addr) == 0x7f000001);
    CHECK(anx.called == 1 && anx.status == XS_ENOTFOUND && anx.n == 0);
    CHECK(asf.called == 1 && asf.status == XS_EDNS);
    CHECK(anodata.called == 1 && anodata.status == XS_ENOTFOUND);

    /* Bad names never reach the server. */
    int before = f.queries;
    struct addr_result bad = {0};
    CHECK(xs_dns_addr(&loop, "a b.test", 5269, on_addr, &bad, NULL) == XS_EINVAL);
    CHECK(xs_dns_addr(&loop, "", 5269, on_addr, &bad, NULL) == XS_EINVAL);
    CHECK(f.queries == before && bad.called == 0);

    /* An idle resolver holds no active handle: the loop could end. */
    fake_dns_stop(&f);
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(!uv_loop_alive(&loop));
    close_resolver(&loop, dns);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
}

/* A server that never answers costs a lookup its deadline (150 ms x 2),
 * not more, and reports a timeout, not "not found". */
static void test_blackhole_timeout(void)
{
    struct env e;
    if (env_start(&e, 0, 30) != 0)
        return;

    struct timed b = {0};
    struct addr_result ab = {0};
    timed_done = 0;
    step_t0 = uv_hrtime();
    CHECK(xs_dns_srv(&e.loop, "xmpp-server", "black.test", 5269, on_srv_timed, &b, NULL) == 0);
    CHECK(xs_dns_addr(&e.loop, "black2.test", 5269, on_addr, &ab, NULL) == 0);
    run_until_n(&e.loop, &timed_done, 1, 3000);
    run_until_n(&e.loop, &ab.called, 1, 3000);
    CHECK(b.called == 1 && b.status == XS_ETIMEOUT && b.n == 0);
    CHECK(b.ms >= 290 && b.ms < 600);
    CHECK(ab.called == 1 && ab.status == XS_ETIMEOUT);
    CHECK(ab.ms >= 290 && ab.ms < 600);
    printf("black-holed lookup ended after %.0f ms (deadline 300 ms)\n", b.ms);
    CHECK(e.f.queries >= 2); /* c-ares did retry within the deadline */

    env_stop(&e);
}

/* The property code review P9 and audit M4 ask for: lookups that never
 * end do not hold up one that answers at once. With libuv's four pool
 * threads, the fifth black-holed lookup already queued the good one behind
 * a resolver timeout. */
static void test_no_starvation(void)
{
    struct env e;
    if (env_start(&e, 0, 30) != 0)
        return;
    enum { N = 50 };
    static struct timed black[N];
    memset(black, 0, sizeof black);
    char name[32];
    timed_done = 0;
    step_t0 = uv_hrtime();
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "black%d.test", i);
        CHECK(xs_dns_srv(&e.loop, "xmpp-server", name, 5269, on_srv_timed, &black[i], NULL) == 0);
    }
    struct timed good = {0};
    struct addr_result a = {0};
    CHECK(xs_dns_srv(&e.loop, "xmpp-server", "good.test", 5269, on_srv_timed, &good, NULL) == 0);
    CHECK(xs_dns_addr(&e.loop, "good.test", 5269, on_addr, &a, NULL) == 0);
    run_until_n(&e.loop, &good.called, 1, 3000);
    run_until_n(&e.loop, &a.called, 1, 3000);
    int black_done_then = timed_done - good.called;
    CHECK(good.called == 1 && good.status == 0 && good.n == 2);
    CHECK(a.called == 1 && a.status == 0 && a.n == 1);
    CHECK(black_done_then == 0);
    CHECK(good.ms < 100 && a.ms < 100);
    printf("good name with %d black-holed lookups pending: SRV %.1f ms, A %.1f ms\n", N, good.ms,
           a.ms);
    run_until_n(&e.loop, &timed_done, N + 1, 3000);
    int timeouts = 0;
    for (int i = 0; i < N; i++)
        timeouts += black[i].called == 1 && black[i].status == XS_ETIMEOUT;
    CHECK(timeouts == N);

    env_stop(&e);
}

/* Failures are remembered: the second NXDOMAIN, SERVFAIL or timeout for a
 * name is answered without a query, and so is a good answer within its TTL;
 * after the TTL the server is asked again. */
static void test_caches(void)
{
    struct env e;
    if (env_start(&e, 0, 1) != 0)
        return;

    struct addr_result nx1 = {0}, nx2 = {0}, sf1 = {0}, sf2 = {0};
    struct timed b1 = {0}, b2 = {0}, g1 = {0}, g2 = {0};
    CHECK(xs_dns_addr(&e.loop, "nx.test", 5269, on_addr, &nx1, NULL) == 0);
    CHECK(xs_dns_addr(&e.loop, "sf.test", 5269, on_addr, &sf1, NULL) == 0);
    timed_done = 0;
    step_t0 = uv_hrtime();
    CHECK(xs_dns_srv(&e.loop, "xmpp-server", "black.test", 5269, on_srv_timed, &b1, NULL) == 0);
    CHECK(xs_dns_srv(&e.loop, "xmpp-server", "good.test", 5269, on_srv_timed, &g1, NULL) == 0);
    run_until_n(&e.loop, &nx1.called, 1, 3000);
    run_until_n(&e.loop, &sf1.called, 1, 3000);
    run_until_n(&e.loop, &timed_done, 2, 3000);
    CHECK(nx1.status == XS_ENOTFOUND && sf1.status == XS_EDNS && b1.status == XS_ETIMEOUT);
    CHECK(g1.status == 0 && g1.n == 2);

    int before = e.f.queries;
    struct xs_dns_stats st0, st1;
    xs_dns_stats(e.dns, &st0);
    CHECK(xs_dns_addr(&e.loop, "NX.test", 5269, on_addr, &nx2, NULL) == 0);
    CHECK(xs_dns_addr(&e.loop, "sf.test", 5269, on_addr, &sf2, NULL) == 0);
    CHECK(xs_dns_srv(&e.loop, "xmpp-server", "black.test", 5269, on_srv_timed, &b2, NULL) == 0);
    CHECK(xs_dns_srv(&e.loop, "xmpp-server", "good.test", 5269, on_srv_timed, &g2, NULL) == 0);
    CHECK(nx2.called == 0 && b2.called == 0); /* from the cache, but still not inside the call */
    step_t0 = uv_hrtime();
    run_until_n(&e.loop, &timed_done, 4, 3000);
    run_until_n(&e.loop, &sf2.called, 1, 3000);
    CHECK(nx2.called == 1 && nx2.status == XS_ENOTFOUND);
    CHECK(sf2.called == 1 && sf2.status == XS_EDNS);
    CHECK(b2.called == 1 && b2.status == XS_ETIMEOUT && b2.ms < 50);
    CHECK(g2.called == 1 && g2.status == 0 && g2.n == 2);
    CHECK_STR(g2.t[0].host, "a.good.test");
    CHECK(e.f.queries == before);
    xs_dns_stats(e.dns, &st1);
    CHECK(st1.queries == st0.queries && st1.cache_hits == st0.cache_hits + 4);

    /* The TTL here is 1 s (floor and ceiling): then the server is asked again. */
    struct timed g3 = {0};
    struct addr_result nx3 = {0};
    uv_sleep(1100);
    uv_update_time(&e.loop);
    CHECK(xs_dns_srv(&e.loop, "xmpp-server", "good.test", 5269, on_srv_timed, &g3, NULL) == 0);
    CHECK(xs_dns_addr(&e.loop, "nx.test", 5269, on_addr, &nx3, NULL) == 0);
    run_until_n(&e.loop, &g3.called, 1, 3000);
    run_until_n(&e.loop, &nx3.called, 1, 3000);
    CHECK(g3.status == 0 && nx3.status == XS_ENOTFOUND);
    CHECK(e.f.queries > before);

    env_stop(&e);
}

/* At most max_inflight lookups on the wire: the next fails at once with
 * XS_ELIMIT (it is not queued behind them), answers from the cache still
 * come, and the budget comes back when the lookups end. */
static void test_inflight_cap(void)
{
    struct env e;
    if (env_start(&e, 4, 30) != 0)
        return;

    struct timed g = {0};
    CHECK(xs_dns_srv(&e.loop, "xmpp-server", "good.test", 5269, on_srv_timed, &g, NULL) == 0);
    run_until_n(&e.loop, &g.called, 1, 3000);
    static struct timed b[5];
    memset(b, 0, sizeof b);
    char name[32];
    timed_done = 0;
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "black%d.test", i);
        CHECK(xs_dns_srv(&e.loop, "xmpp-server", name, 5269, on_srv_timed, &b[i], NULL) == 0);
    }
    struct xs_dns_req *req = (struct xs_dns_req *)&g; /* must be reset by the call */
    CHECK(xs_dns_srv(&e.loop, "xmpp-server", "black4.test", 5269, on_srv_timed, &b[4], &req) ==
          XS_ELIMIT);
    CHECK(req == NULL);
    struct addr_result a = {0};
    CHECK(xs_dns_addr(&e.loop, "good.test", 5269, on_addr, &a, NULL) == XS_ELIMIT);
    struct xs_dns_stats st;
    xs_dns_stats(e.dns, &st);
    CHECK(st.inflight == 4 && st.refused == 2);
    struct timed g2 = {0};
    CHECK(xs_dns_srv(&e.loop, "xmpp-server", "good.test", 5269, on_srv_timed, &g2, NULL) == 0);
    run_until_n(&e.loop, &g2.called, 1, 3000);
    CHECK(g2.status == 0 && g2.n == 2);

    run_until_n(&e.loop, &timed_done, 5, 3000);
    CHECK(b[4].called == 0);
    /* c-ares gives up its own retries a little after our deadline. */
    for (int i = 0; i < 200 && (xs_dns_stats(e.dns, &st), st.inflight > 0); i++)
        uv_run(&e.loop, UV_RUN_ONCE);
    CHECK(st.inflight == 0);
    CHECK(xs_dns_addr(&e.loop, "good.test", 5269, on_addr, &a, NULL) == 0);
    run_until_n(&e.loop, &a.called, 1, 3000);
    CHECK(a.called == 1 && a.status == 0);

    env_stop(&e);
}

/* Cancel before the answer, after the deadline's request is gone from our
 * side, and close with lookups running: no callback after cancel, close
 * calls back what is left with XS_ECLOSED, and nothing leaks (ASan). */
static void test_cancel_and_close(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    loop.data = NULL; /* uv_loop_init keeps what it held */
    struct fake_dns f;
    CHECK(fake_dns_start(&loop, &f) == 0);
    struct xs_dns *dns = fake_resolver(&loop, &f, 0, 30);

    struct timed g = {0}, b = {0}, left = {0};
    struct addr_result a = {0}, aleft = {0};
    struct xs_dns_req *rg = NULL, *rb = NULL, *ra = NULL;
    timed_done = 0;
    CHECK(xs_dns_srv(&loop, "xmpp-server", "good.test", 5269, on_srv_timed, &g, &rg) == 0);
    CHECK(xs_dns_srv(&loop, "xmpp-server", "black.test", 5269, on_srv_timed, &b, &rb) == 0);
    CHECK(xs_dns_addr(&loop, "good.test", 5269, on_addr, &a, &ra) == 0);
    CHECK(rg && rb && ra);
    xs_dns_cancel(rg);
    xs_dns_cancel(ra);
    uv_run(&loop, UV_RUN_NOWAIT);
    xs_dns_cancel(rb);
    int dummy = 0;
    run_until_n(&loop, &dummy, 1, 500);
    CHECK(g.called == 0 && b.called == 0 && a.called == 0);

    CHECK(xs_dns_srv(&loop, "xmpp-server", "black9.test", 5269, on_srv_timed, &left, NULL) == 0);
    CHECK(xs_dns_addr(&loop, "black8.test", 5269, on_addr, &aleft, NULL) == 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    close_resolver(&loop, dns);
    CHECK(left.called == 1 && left.status == XS_ECLOSED);
    CHECK(aleft.called == 1 && aleft.status == XS_ECLOSED);
    struct timed late = {0};
    CHECK(xs_dns_srv(&loop, "xmpp-server", "good.test", 5269, on_srv_timed, &late, NULL) ==
          XS_ESTATE);
    fake_dns_stop(&f);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(late.called == 0);
    CHECK(uv_loop_close(&loop) == 0);
}

static int special(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        CHECK(inet_pton(AF_INET6, ip, &a->sin6_addr) == 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        CHECK(inet_pton(AF_INET, ip, &a->sin_addr) == 1);
    }
    return xs_net_addr_special((struct sockaddr *)&ss);
}

/* Audit M4: the ranges open federation may not be aimed at, and the
 * global addresses right beside their edges, which it may. */
static void test_special_ranges(void)
{
    static const char *const yes[] = {
        "0.0.0.0",        "0.255.255.255", "10.0.0.5",        "10.255.255.255",
        "100.64.0.1",     "100.127.255.1", "127.0.0.1",       "127.0.0.9",
        "169.254.169.254", "172.16.0.1",   "172.31.255.255",  "192.0.0.8",
        "192.0.2.1",      "192.88.99.1",   "192.168.1.1",     "198.18.0.1",
        "198.19.255.255", "198.51.100.7",  "203.0.113.9",     "224.0.0.1",
        "239.255.255.250", "240.0.0.1",    "255.255.255.255", "::",
        "::1",            "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::127.0.0.1",
        "64:ff9b::a00:1", "64:ff9b:1::1",  "100::1",          "2001::1",
        "2001:db8::1",    "2002:7f00:1::1", "2002:c0a8:101::", "3fff::1",
        "fc00::1",        "fd12:3456::1",  "fe80::1",         "febf::1",
        "fec0::1",        "ff02::1",       "ff05::2",
    };
    static const char *const no[] = {
        "1.1.1.1",        "9.255.255.255", "11.0.0.1",        "100.63.255.255",
        "100.128.0.1",    "126.255.255.255", "128.0.0.1",     "169.253.1.1",
        "172.15.255.255", "172.32.0.1",    "192.0.3.1",       "192.167.1.1",
        "192.169.0.1",    "198.17.255.255", "198.20.0.1",     "223.255.255.255",
        "8.8.8.8",        "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
        "2001:200::1",    "2001:4860:4860::8888", "2a00:1450::1", "2606:4700::1111",
        "fbff::1",        "fe7f::1",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!special(yes[i])) {
            fprintf(stderr, "  %s should be special\n", yes[i]);
            CHECK(0);
        }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (special(no[i])) {
            fprintf(stderr, "  %s should be global\n", no[i]);
            CHECK(0);
        }
    struct sockaddr other = {.sa_family = AF_UNIX};
    CHECK(xs_net_addr_special(&other) == 1);
    CHECK(xs_net_is_ip_literal("10.0.0.5") && xs_net_is_ip_literal("fe80::1"));
    CHECK(!xs_net_is_ip_literal("10.0.0.5.example") && !xs_net_is_ip_literal("peer.test"));
}

int main(void)
{
    test_special_ranges();
    test_normal();
    test_compression();
    test_hostile_pointers();
    test_truncated();
    test_bad_rdata();
    test_name_length();
    test_root_and_rcode();
    test_bound_and_sort();
    test_weighted_order();
    test_literal();
    test_resolver_answers();
    test_blackhole_timeout();
    test_no_starvation();
    test_caches();
    test_inflight_cap();
    test_cancel_and_close();
    return check_report("test_dns");
}
