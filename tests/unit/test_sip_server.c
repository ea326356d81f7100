/* Server transactions over real loopback sockets: what reaches the router,
 * when the answer goes out, retransmissions, local answers, bad input, TCP
 * framing, and close with a request still pending. */
#include "core/log.h"
#include "core/metrics.h"
#include "sip/sip.h"
#include "sip/sip_txn.h"
#include "sip_testutil.h"

struct router {
    int n;
    int auto_done; /* answer inside submit */
    struct xs_event *last;
    xs_done_cb done;
    void *ud;
};

static void submit(void *r_, struct xs_event *ev, xs_done_cb done, void *ud)
{
    struct router *r = r_;
    r->n++;
    xs_event_free(r->last);
    r->last = ev;
    r->done = done;
    r->ud = ud;
    if (r->auto_done) {
        r->done = NULL;
        done(ud, XS_COND_NONE, NULL);
    }
}

static void answer(struct router *r, enum xs_cond c, const char *text)
{
    xs_done_cb d = r->done;
    r->done = NULL;
    if (d)
        d(r->ud, c, text);
}

static const char *PLAIN = "Call-ID: call-1@sip.test\r\nContent-Type: text/plain;charset=UTF-8\r\n"
                           "Subject: greetings\r\nContent-Language: fr\r\n";
static const char *BODY = "h\xc3\xa9llo <&> \"x\"";

static char buf[70000];

static int closed;
static void on_closed(void *ud)
{
    closed = 1;
}

static void expect_status(uv_loop_t *loop, int fd, const char *status_line, const char *also)
{
    size_t n = udp_wait(loop, fd, buf, sizeof buf, 1000, NULL);
    if (n == 0 || strncmp(buf, status_line, strlen(status_line)) != 0 ||
        (also && !strstr(buf, also))) {
        fprintf(stderr, "want %s%s%s, got:\n%s\n", status_line, also ? " with " : "",
                also ? also : "", n ? buf : "(nothing)");
        CHECK(!"the expected status");
    }
}

/* 1 when the rendered metrics hold `line` as a whole line. */
static int metric_line(const char *line)
{
    struct xs_buf b;
    xs_buf_init(&b, 1 << 20);
    int ok = xs_metrics_render(&b) == 0 && b.data;
    size_t n = strlen(line);
    const char *p = ok ? b.data : NULL;
    while (p && (p = strstr(p, line)) != NULL && !((p == b.data || p[-1] == '\n') && p[n] == '\n'))
        p++;
    xs_buf_free(&b);
    if (!p)
        fprintf(stderr, "no metric line: %s\n", line);
    return p != NULL;
}

static void test_udp(uv_loop_t *loop, struct router *r, int port)
{
    xs_metrics_reset();
    int port_peer;
    int fd = udp_peer(&port_peer);
    char m[8192];
    size_t n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKu1", port_peer, PLAIN, BODY);
    udp_send_to(fd, port, m, n);
    PUMP_UNTIL(loop, r->n == 1, 2000);
    CHECK(r->n == 1);
    if (r->last) {
        CHECK(strcmp(r->last->from, "sip:Bob@sip.test") == 0);
        CHECK(strcmp(r->last->to, "sip:alice@xmpp.test") == 0);
        CHECK(strcmp(r->last->thread, "call-1@sip.test") == 0);
        CHECK(strcmp(r->last->subject, "greetings") == 0);
        CHECK(strcmp(r->last->lang, "fr") == 0);
        CHECK(strcmp(r->last->type, "normal") == 0); /* RFC 7572 §5 */
        CHECK(strcmp(r->last->body, BODY) == 0);
    }
    /* Nothing goes back before the router has answered, not even for a
     * retransmission, and the retransmission is not submitted again. */
    CHECK(udp_wait(loop, fd, buf, sizeof buf, 100, NULL) == 0);
    udp_send_to(fd, port, m, n);
    CHECK(udp_wait(loop, fd, buf, sizeof buf, 100, NULL) == 0);
    CHECK(r->n == 1);

    answer(r, XS_COND_NONE, NULL);
    expect_status(loop, fd, "SIP/2.0 200 OK\r\n", "branch=z9hG4bKu1");
    char *tag = strstr(buf, "To: <sip:alice@xmpp.test;transport=udp>;tag=");
    CHECK(tag != NULL);
    char first[256] = "";
    if (tag)
        snprintf(first, sizeof first, "%.*s", (int)(strchr(tag, '\r') - tag), tag);
    udp_send_to(fd, port, m, n);
    expect_status(loop, fd, "SIP/2.0 200 OK\r\n", first);
    CHECK(r->n == 1);
    /* One request, one response: the retransmissions and the answer sent
     * again are not counted. */
    CHECK(metric_line("xsgw_sip_requests_total{method=\"MESSAGE\",direction=\"in\"} 1"));
    CHECK(metric_line("xsgw_sip_responses_total{class=\"2xx\",direction=\"out\"} 1"));

    n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKu2", port_peer, PLAIN, "x");
    udp_send_to(fd, port, m, n);
    PUMP_UNTIL(loop, r->n == 2, 2000);
    CHECK(r->n == 2);
    answer(r, XS_COND_ITEM_NOT_FOUND, "no such \"user\"");
    /* The gateway only addresses bare JIDs: 604 (RFC 7247 §7.1 note 2). */
    expect_status(loop, fd, "SIP/2.0 604 Does Not Exist Anywhere\r\n",
                  "Warning: 399 sip.test \"no such \\\"user\\\"\"");

    n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKu3", port_peer,
                     "Call-ID: c3\r\nContent-Type: application/json\r\n", "{}");
    udp_send_to(fd, port, m, n);
    expect_status(loop, fd, "SIP/2.0 415 ", "Accept: text/plain, text/html\r\n");

    n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKu4", port_peer, "Content-Type: text/plain\r\n",
                     "x");
    udp_send_to(fd, port, m, n);
    expect_status(loop, fd, "SIP/2.0 400 ", "Call-ID");

    n = make_request(m, sizeof m, "INVITE", "z9hG4bKu5", port_peer, "Call-ID: c5\r\n", NULL);
    udp_send_to(fd, port, m, n);
    expect_status(loop, fd, "SIP/2.0 405 ", "Allow: MESSAGE, SUBSCRIBE, NOTIFY, OPTIONS\r\n");
    n = make_request(m, sizeof m, "ACK", "z9hG4bKu5", port_peer, "Call-ID: c5\r\n", NULL);
    udp_send_to(fd, port, m, n);
    CHECK(udp_wait(loop, fd, buf, sizeof buf, 50, NULL) == 0);

    n = make_request(m, sizeof m, "OPTIONS", "z9hG4bKu6", port_peer, "Call-ID: c6\r\n", NULL);
    udp_send_to(fd, port, m, n);
    expect_status(loop, fd, "SIP/2.0 200 OK\r\n", "Allow: MESSAGE, SUBSCRIBE, NOTIFY, OPTIONS\r\n");

    /* Garbage of every kind, then a good request still works. */
    const char *junk[] = {"\r\n\r\n",
                          "garbage",
                          "MESSAGE\r\n\r\n",
                          "SIP/2.0 200 OK\r\n\r\n",
                          "MESSAGE sip:x SIP/2.0\r\nContent-Length: 99\r\n\r\nab",
                          "\x01\x02\xff\xfe"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        udp_send_to(fd, port, junk[i], strlen(junk[i]));
    if (udp_wait(loop, fd, buf, sizeof buf, 50, NULL) != 0) {
        fprintf(stderr, "garbage was answered:\n%s\n", buf);
        CHECK(!"garbage goes unanswered");
    }
    n = make_request(m, sizeof m, "OPTIONS", "z9hG4bKu7", port_peer, "Call-ID: c7\r\n", NULL);
    udp_send_to(fd, port, m, n);
    expect_status(loop, fd, "SIP/2.0 200 OK\r\n", NULL);

    /* Larger than sip.max_message (4096): 413, nothing submitted. */
    char big[6000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    static char mm[8192];
    n = make_request(mm, sizeof mm, "MESSAGE", "z9hG4bKu8", port_peer, PLAIN, big);
    udp_send_to(fd, port, mm, n);
    expect_status(loop, fd, "SIP/2.0 413 ", NULL);
    CHECK(r->n == 2);
    close(fd);
}

static void test_tcp(uv_loop_t *loop, struct router *r, int port)
{
    int eof;
    int good = tcp_peer(port);
    int bad = tcp_peer(port);
    CHECK(good >= 0 && bad >= 0);
    char m[8192];
    size_t n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKt1", 5060,
                            "Call-ID: t1\r\nContent-Type: text/plain\r\n", NULL);
    /* Announces a body far past the maximum. */
    char *cl = strstr(m, "Content-Length: 0");
    memcpy(cl, "Content-Length: 9999999\r\n\r\n", 27);
    n = (size_t)(cl - m) + 27;
    CHECK(send(bad, m, n, 0) == (ssize_t)n);
    tcp_read(loop, bad, buf, sizeof buf, 300, &eof);
    CHECK(strncmp(buf, "SIP/2.0 413 ", 12) == 0);
    CHECK(eof);
    close(bad);

    int missing = tcp_peer(port);
    const char *nocl = "OPTIONS sip:x@sip.test SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKn\r\n"
                       "From: <sip:a@b>;tag=1\r\nTo: <sip:x@sip.test>\r\nCall-ID: n\r\n"
                       "CSeq: 1 OPTIONS\r\n\r\n";
    send(missing, nocl, strlen(nocl), 0);
    tcp_read(loop, missing, buf, sizeof buf, 300, &eof);
    CHECK(strncmp(buf, "SIP/2.0 400 ", 12) == 0 && eof);
    close(missing);

    /* The other connection was not disturbed. Then every split of a
     * two-message pipeline gives exactly two answers. */
    r->auto_done = 1;
    int before = r->n;
    char pipe[4096];
    size_t a = make_request(pipe, sizeof pipe, "MESSAGE", "z9hG4bKp1", 5060, PLAIN, BODY);
    size_t b = make_request(pipe + a, sizeof pipe - a, "OPTIONS", "z9hG4bKp2", 5060,
                            "Call-ID: p2\r\n", NULL);
    size_t total = a + b;
    int splits_ok = 1;
    for (size_t i = 1; i < total; i++) {
        send(good, pipe, i, 0);
        pump(loop, 0);
        send(good, pipe + i, total - i, 0);
        size_t got = 0;
        buf[0] = '\0';
        for (int tries = 0; tries < 200 && count_of(buf, "SIP/2.0 200 OK") < 2; tries++)
            got += tcp_read(loop, good, buf + got, sizeof buf - got, 2, &eof);
        if (count_of(buf, "SIP/2.0 200 OK") != 2 || eof) {
            fprintf(stderr, "split at %zu: got %s\n", i, buf);
            splits_ok = 0;
            break;
        }
    }
    CHECK(splits_ok);
    CHECK(r->n == before + (int)(total - 1));
    r->auto_done = 0;
    close(good);
}

/* Requests RFC 3261 wants answered although they are broken: no CSeq (400,
 * over UDP and TCP), a datagram shorter than its Content-Length (400),
 * Max-Forwards 0 (483). None of them reaches the router. */
static void test_hostile(uv_loop_t *loop, struct router *r, int udp_port, int tcp_port)
{
    int before = r->n;
    int port_peer;
    int fd = udp_peer(&port_peer);
    char m[4096];
    int len = snprintf(m, sizeof m,
                       "MESSAGE sip:bob@sip.test SIP/2.0\r\n"
                       "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKh1;rport\r\n"
                       "From: <sip:bob@sip.test>;tag=1\r\nTo: <sip:alice@xmpp.test>\r\n"
                       "Call-ID: h1\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 2\r\n\r\nhi",
                       port_peer);
    udp_send_to(fd, udp_port, m, (size_t)len);
    expect_status(loop, fd, "SIP/2.0 400 Bad Request\r\n", "branch=z9hG4bKh1");
    CHECK(strstr(buf, "missing or malformed CSeq") != NULL);

    size_t n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKh2", port_peer, PLAIN, BODY);
    udp_send_to(fd, udp_port, m, n - 4);
    expect_status(loop, fd, "SIP/2.0 400 Bad Request\r\n", "branch=z9hG4bKh2");
    CHECK(strstr(buf, "Content-Length larger than the datagram") != NULL);

    n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKh3", port_peer, PLAIN, BODY);
    memcpy(strstr(m, "Max-Forwards: 70") + 14, "0 ", 2);
    udp_send_to(fd, udp_port, m, n);
    expect_status(loop, fd, "SIP/2.0 483 Too Many Hops\r\n", "branch=z9hG4bKh3");
    close(fd);

    int eof;
    int t = tcp_peer(tcp_port);
    len = snprintf(m, sizeof m,
                   "MESSAGE sip:bob@sip.test SIP/2.0\r\n"
                   "Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKh4\r\n"
                   "From: <sip:bob@sip.test>;tag=1\r\nTo: <sip:alice@xmpp.test>\r\n"
                   "Call-ID: h4\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 2\r\n\r\nhi");
    CHECK(send(t, m, (size_t)len, 0) == len);
    tcp_read(loop, t, buf, sizeof buf, 200, &eof);
    CHECK(strncmp(buf, "SIP/2.0 400 Bad Request\r\n", 25) == 0);
    CHECK(strstr(buf, "branch=z9hG4bKh4") != NULL);
    close(t);
    pump(loop, 20);
    CHECK(r->n == before);
}

/* Starts a SIP side with the given trusted list (NULL: the next hop's
 * addresses) and next hop. */
static struct xs_sip *start_trusting(uv_loop_t *loop, struct router *r, char **trusted, size_t n,
                                     const char *hop)
{
    struct test_cfg tc;
    test_cfg_init(&tc, hop, 5060, XS_SIP_UDP);
    tc.cfg.sip_trusted = trusted;
    tc.cfg.n_sip_trusted = n;
    struct xs_sip *sip = NULL;
    CHECK(xs_sip_start(loop, &tc.cfg, NULL, submit, r, &sip) == 0 && sip);
    return sip;
}

static void stop(uv_loop_t *loop, struct xs_sip *sip)
{
    closed = 0;
    xs_sip_close(sip, on_closed, NULL);
    for (int i = 0; i < 200 && !closed; i++)
        pump(loop, 5);
    CHECK(closed);
}

/* A MESSAGE from 127.0.0.1 and one from 127.0.0.2 to sip's UDP listener,
 * the router delivering at once: returns how many reached the router;
 * *answer gets the first line of what 127.0.0.1 was answered. */
static int from_both(uv_loop_t *loop, struct router *r, struct xs_sip *sip, char *answer, size_t an)
{
    int before = r->n;
    r->auto_done = 1;
    int p1, p2;
    int one = udp_peer_at("127.0.0.1", &p1), two = udp_peer_at("127.0.0.2", &p2);
    char m[4096];
    size_t n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKtr1", p1, PLAIN, BODY);
    udp_send_to(one, xs_sip_port(sip, 0), m, n);
    size_t got = udp_wait(loop, one, buf, sizeof buf, 300, NULL);
    snprintf(answer, an, "%.*s", got ? (int)(strchr(buf, '\r') - buf) : 0, buf);
    n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKtr2", p2, PLAIN, BODY);
    udp_send_to(two, xs_sip_port(sip, 0), m, n);
    pump(loop, 50);
    r->auto_done = 0;
    close(one);
    close(two);
    return r->n - before;
}

/* Audit C1: only trusted sources are heard. The untrusted one gets a bare
 * 403 (no Warning, no Allow, nothing the request did not carry) over UDP and
 * TCP, and nothing reaches the router; by default the next hop is trusted,
 * as an address or as a name looked up at start. */
static void test_trust(uv_loop_t *loop)
{
    struct router r = {0};
    char *only2[] = {"127.0.0.2"};
    struct xs_sip *sip = start_trusting(loop, &r, only2, 1, NULL);
    if (!sip)
        return;
    int port_peer;
    int fd = udp_peer(&port_peer);
    char m[4096];
    size_t n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKut1", port_peer, PLAIN, BODY);
    udp_send_to(fd, xs_sip_port(sip, 0), m, n);
    size_t got = udp_wait(loop, fd, buf, sizeof buf, 500, NULL);
    CHECK(strncmp(buf, "SIP/2.0 403 Forbidden\r\n", 23) == 0);
    CHECK(strstr(buf, "branch=z9hG4bKut1") && strstr(buf, "CSeq: 7 MESSAGE\r\n"));
    CHECK(!strstr(buf, "Warning") && !strstr(buf, "Allow") && !strstr(buf, "Accept"));
    CHECK(got > 0 && got < n);
    n = make_request(m, sizeof m, "OPTIONS", "z9hG4bKut2", port_peer, "Call-ID: ut2\r\n", NULL);
    udp_send_to(fd, xs_sip_port(sip, 0), m, n);
    expect_status(loop, fd, "SIP/2.0 403 Forbidden\r\n", "branch=z9hG4bKut2");
    CHECK(!strstr(buf, "Allow"));
    /* ACKs and responses from untrusted sources are not answered. */
    n = make_request(m, sizeof m, "ACK", "z9hG4bKut2", port_peer, "Call-ID: ut2\r\n", NULL);
    udp_send_to(fd, xs_sip_port(sip, 0), m, n);
    CHECK(udp_wait(loop, fd, buf, sizeof buf, 50, NULL) == 0);
    close(fd);

    int eof;
    int t = tcp_peer(xs_sip_port(sip, 1));
    n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKut3", 5060, PLAIN, BODY);
    CHECK(send(t, m, n, 0) == (ssize_t)n);
    tcp_read(loop, t, buf, sizeof buf, 200, &eof);
    CHECK(strncmp(buf, "SIP/2.0 403 Forbidden\r\n", 23) == 0);
    close(t);
    CHECK(r.n == 0);

    char answer[128];
    CHECK(from_both(loop, &r, sip, answer, sizeof answer) == 1);
    CHECK_STR(answer, "SIP/2.0 403 Forbidden");
    CHECK(r.last && r.last->auth && strcmp(r.last->auth, "trusted-source") == 0);
    stop(loop, sip);

    /* No sip.trusted: the next hop, given as an address... */
    sip = start_trusting(loop, &r, NULL, 0, "127.0.0.2");
    if (sip) {
        CHECK(from_both(loop, &r, sip, answer, sizeof answer) == 1);
        CHECK_STR(answer, "SIP/2.0 403 Forbidden");
        stop(loop, sip);
    }
    /* ... or as a name, looked up at start... */
    sip = start_trusting(loop, &r, NULL, 0, "localhost");
    if (sip) {
        pump(loop, 100);
        CHECK(from_both(loop, &r, sip, answer, sizeof answer) == 1);
        CHECK_STR(answer, "SIP/2.0 200 OK");
        /* ... and at every reload. */
        struct test_cfg tc;
        test_cfg_init(&tc, "127.0.0.2", 5060, XS_SIP_UDP);
        tc.cfg.sip_trusted = NULL;
        tc.cfg.n_sip_trusted = 0;
        CHECK(xs_sip_reconfigure(sip, &tc.cfg, NULL) == 0);
        CHECK(from_both(loop, &r, sip, answer, sizeof answer) == 1);
        CHECK_STR(answer, "SIP/2.0 403 Forbidden");
        tc.cfg.sip_next_hop.host = "localhost";
        CHECK(xs_sip_reconfigure(sip, &tc.cfg, NULL) == 0);
        pump(loop, 100);
        CHECK(from_both(loop, &r, sip, answer, sizeof answer) == 1);
        CHECK_STR(answer, "SIP/2.0 200 OK");
        /* A reload racing the lookup: the older answer is ignored. */
        CHECK(xs_sip_reconfigure(sip, &tc.cfg, NULL) == 0);
        tc.cfg.sip_next_hop.host = "127.0.0.2";
        CHECK(xs_sip_reconfigure(sip, &tc.cfg, NULL) == 0);
        pump(loop, 100);
        CHECK(from_both(loop, &r, sip, answer, sizeof answer) == 1);
        CHECK_STR(answer, "SIP/2.0 403 Forbidden");
        stop(loop, sip);
    }
    /* Closing while a lookup is in flight waits for it. */
    sip = start_trusting(loop, &r, NULL, 0, "localhost");
    if (sip)
        stop(loop, sip);
    /* An empty list trusts nobody. */
    sip = start_trusting(loop, &r, only2, 0, "127.0.0.1");
    if (sip) {
        CHECK(from_both(loop, &r, sip, answer, sizeof answer) == 0);
        stop(loop, sip);
    }
    xs_event_free(r.last);
}

/* Reads what arrives on fd for ms; returns the bytes and datagrams seen. */
static size_t drain_udp(uv_loop_t *loop, int fd, int ms, int *datagrams)
{
    size_t total = 0;
    *datagrams = 0;
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (uv_hrtime() < end) {
        size_t n = udp_wait(loop, fd, buf, sizeof buf, 5, NULL);
        if (n) {
            total += n;
            (*datagrams)++;
        }
    }
    return total;
}

/* Audit H1 and L3: a stored response goes back only to the source of the
 * original request, absurd requests get a terse answer and no state, and
 * what any sender gets back is bounded by what it sent. */
static void test_amplification(uv_loop_t *loop)
{
    struct test_cfg tc;
    test_cfg_init(&tc, NULL, 0, XS_SIP_UDP);
    tc.cfg.sip_max_message = 65535;
    char *trusted[] = {"127.0.0.1"};
    tc.cfg.sip_trusted = trusted;
    struct router r = {0};
    struct xs_sip *sip = NULL;
    CHECK(xs_sip_start(loop, &tc.cfg, NULL, submit, &r, &sip) == 0 && sip);
    if (!sip)
        return;
    int port = xs_sip_port(sip, 0);
    int pa, pv, ps;
    int attacker = udp_peer(&pa), victim = udp_peer(&pv);
    int stranger = udp_peer_at("127.0.0.2", &ps);
    static char big[70000];
    int datagrams;

    /* The audit's set-up: an OPTIONS with 1900 extra Vias (59 875 bytes).
     * It gets a terse 513 with one Via, and nothing is stored. */
    size_t n = (size_t)snprintf(big, sizeof big,
                                "OPTIONS sip:x SIP/2.0\r\n"
                                "Via: SIP/2.0/UDP a.example;branch=z9hG4bKamp1\r\n");
    for (int i = 0; i < 1900; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "Via: SIP/2.0/UDP h;branch=z%d\r\n", i);
    n += (size_t)snprintf(big + n, sizeof big - n,
                          "From: <sip:a@b>;tag=1\r\nTo: <sip:x@sip.test>\r\nCall-ID: amp\r\n"
                          "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    CHECK(n > 59000 && n < 65000);
    udp_send_to(attacker, port, big, n);
    size_t got = udp_wait(loop, attacker, buf, sizeof buf, 500, NULL);
    CHECK(strncmp(buf, "SIP/2.0 513 Message Too Large\r\n", 31) == 0);
    CHECK(count_of(buf, "v: ") == 1 && strstr(buf, "branch=z9hG4bKamp1"));
    CHECK(got > 0 && got < 400);
    printf("H1 set-up: %zu B with 1901 Vias -> %zu B\n", n, got);
    /* 70 Vias is the most accepted; 71 gets a terse 400 as well. */
    for (int vias = 70; vias <= 71; vias++) {
        n = (size_t)snprintf(big, sizeof big, "OPTIONS sip:x SIP/2.0\r\n");
        for (int i = 0; i < vias; i++)
            n += (size_t)snprintf(big + n, sizeof big - n,
                                  "v: SIP/2.0/UDP a.example;branch=z9hG4bKv%d%d\r\n", vias, i);
        n += (size_t)snprintf(big + n, sizeof big - n,
                              "f: <sip:a@b>;tag=1\r\nt: <sip:x@sip.test>\r\ni: v%d\r\n"
                              "CSeq: 1 OPTIONS\r\nl: 0\r\n\r\n",
                              vias);
        udp_send_to(attacker, port, big, n);
        got = udp_wait(loop, attacker, buf, sizeof buf, 500, NULL);
        if (vias == 70)
            CHECK(strncmp(buf, "SIP/2.0 200 OK\r\n", 16) == 0 && count_of(buf, "Via: ") == 70);
        else
            CHECK(strncmp(buf, "SIP/2.0 400 Bad Request\r\n", 25) == 0 &&
                  count_of(buf, "v: ") == 1 && got < n / 4);
    }
    /* From an untrusted source an absurd request gets nothing at all. */
    udp_send_to(stranger, port, big, n);
    CHECK(drain_udp(loop, stranger, 100, &datagrams) == 0);

    /* The largest request that is accepted: 60 Vias, answered 200 and
     * stored. Retransmissions from its source get it again... */
    n = (size_t)snprintf(big, sizeof big,
                         "OPTIONS sip:x SIP/2.0\r\n"
                         "Via: SIP/2.0/UDP a.example;branch=z9hG4bKamp2\r\n");
    for (int i = 0; i < 59; i++)
        n += (size_t)snprintf(big + n, sizeof big - n,
                              "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKy%d\r\n", i);
    n += (size_t)snprintf(big + n, sizeof big - n,
                          "From: <sip:a@b>;tag=1\r\nTo: <sip:x@sip.test>\r\nCall-ID: amp2\r\n"
                          "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    udp_send_to(attacker, port, big, n);
    size_t stored = udp_wait(loop, attacker, buf, sizeof buf, 500, NULL);
    CHECK(strncmp(buf, "SIP/2.0 200 OK\r\n", 16) == 0 && stored > 3000);
    udp_send_to(attacker, port, big, n);
    CHECK(udp_wait(loop, attacker, buf, sizeof buf, 500, NULL) == stored);
    /* ...but the audit's 89-byte trigger from the victim's address gets
     * nothing, however often it is sent. */
    const char *trigger = "OPTIONS sip:x SIP/2.0\r\n"
                          "Via: SIP/2.0/UDP a.example;branch=z9hG4bKamp2\r\n"
                          "CSeq: 1 OPTIONS\r\n\r\n";
    for (int i = 0; i < 20; i++)
        udp_send_to(victim, port, trigger, strlen(trigger));
    size_t reflected = drain_udp(loop, victim, 200, &datagrams);
    printf("H1 trigger: 20 x %zu B from the victim's address -> %zu B in %d datagrams\n",
           strlen(trigger), reflected, datagrams);
    CHECK(reflected == 0 && datagrams == 0);
    CHECK(r.n == 0);

    /* Fresh requests from an untrusted source: a terse 403, never much
     * larger than the request (the audit's FOO went from 105 to 283 B). */
    const char *small[] = {
        "FOO sip:x SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKs1\r\nf: <sip:a@b>;tag=1\r\n"
        "t: <sip:x@y>\r\ni: c1\r\nCSeq: 1 FOO\r\nl: 0\r\n\r\n",
        "OPTIONS sip:x SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKs2\r\nf: <sip:a@b>;tag=1\r\n"
        "t: <sip:x@y>\r\ni: c2\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "MESSAGE sip:x SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKs3\r\nCSeq: 1 MESSAGE\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        size_t in = strlen(small[i]);
        udp_send_to(stranger, port, small[i], in);
        got = udp_wait(loop, stranger, buf, sizeof buf, 500, NULL);
        CHECK(got >= 23 && memcmp(buf, "SIP/2.0 403 Forbidden\r\n", 23) == 0);
        printf("L3 untrusted: request %zu B -> response %zu B\n", in, got);
        if (got > in + 32) {
            fprintf(stderr, "request %zu B -> response %zu B:\n%s\n", in, got, buf);
            CHECK(!"the answer to an untrusted source is at most 32 B larger than the request");
        }
    }
    /* A flood from untrusted sources: at most 100 answers a second go out,
     * whatever the number of requests. */
    pump(loop, 1000);
    const char *flood = "OPTIONS sip:x SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKfl\r\n"
                        "CSeq: 1 OPTIONS\r\n\r\n";
    for (int i = 0; i < 300; i++)
        udp_send_to(stranger, port, flood, strlen(flood));
    drain_udp(loop, stranger, 300, &datagrams);
    printf("L3 flood: 300 requests from an untrusted source -> %d answers\n", datagrams);
    CHECK(datagrams >= 90 && datagrams <= 200);
    close(attacker);
    close(victim);
    close(stranger);
    stop(loop, sip);
    xs_event_free(r.last);
}

/* The stored responses are bounded all together (sip.max_stored_bytes).
 * Once the store is full, new requests are refused 503 with Retry-After
 * rather than older records dropped: a dropped record would turn its
 * request's retransmission into a new request, delivered twice. A response
 * that cannot be kept leaves a record of its key alone, which absorbs
 * retransmissions unanswered. Timer J empties the store again. */
static void test_response_store(uv_loop_t *loop)
{
    struct test_cfg tc;
    test_cfg_init(&tc, NULL, 0, XS_SIP_UDP);
    struct xs_sip_opts opts;
    xs_sip_default_opts(&opts);
    opts.t1_ms = 5; /* Timer J: 320 ms */
    opts.max_stored_bytes = 1500;
    struct router r = {0};
    struct xs_sip *sip = NULL;
    CHECK(xs_sip_start_opts(loop, &tc.cfg, NULL, &opts, submit, &r, &sip) == 0 && sip);
    if (!sip)
        return;
    int port = xs_sip_port(sip, 0);
    int pp;
    int fd = udp_peer(&pp);
    char m1[4096], m[4096], first[4096];
    size_t n1 = make_request(m1, sizeof m1, "OPTIONS", "z9hG4bKst1", pp, "Call-ID: st1\r\n", NULL);
    udp_send_to(fd, port, m1, n1);
    size_t len1 = udp_wait(loop, fd, first, sizeof first, 500, NULL);
    CHECK(len1 > 200 && len1 < 500);
    udp_send_to(fd, port, m1, n1);
    udp_wait(loop, fd, buf, sizeof buf, 500, NULL);
    CHECK_STR(buf, first);
    /* More requests until the store is full: each is answered 200 until
     * one is refused 503 + Retry-After; a record is about len1 + 150
     * bytes, so that happens by the fifth. */
    int ok = 0, refused = 0;
    char branch[32];
    for (int i = 2; i < 12 && !refused; i++) {
        snprintf(branch, sizeof branch, "z9hG4bKst%d", i);
        size_t n = make_request(m, sizeof m, "OPTIONS", branch, pp, "Call-ID: st\r\n", NULL);
        udp_send_to(fd, port, m, n);
        size_t got = udp_wait(loop, fd, buf, sizeof buf, 500, NULL);
        ok += got && strncmp(buf, "SIP/2.0 200 OK\r\n", 16) == 0 && strstr(buf, branch);
        refused += got && strncmp(buf, "SIP/2.0 503 ", 12) == 0 &&
                   strstr(buf, "Retry-After: 5\r\n") && strstr(buf, branch);
    }
    printf("store of 1500 B: %d more answered 200, then %d refused 503\n", ok, refused);
    CHECK(refused == 1 && ok >= 1 && ok <= 8);
    /* The first record is still there: its retransmission gets the very
     * same response, not a new transaction. */
    udp_send_to(fd, port, m1, n1);
    udp_wait(loop, fd, buf, sizeof buf, 500, NULL);
    CHECK_STR(buf, first);
    /* Timer J frees the store: the same request is new again (new To-tag). */
    pump(loop, 400);
    udp_send_to(fd, port, m1, n1);
    expect_status(loop, fd, "SIP/2.0 200 OK\r\n", "branch=z9hG4bKst1");
    CHECK(strcmp(buf, first) != 0);
    stop(loop, sip);

    /* No room at all: the MESSAGE is answered once, its retransmission
     * absorbed without an answer and without a second delivery. */
    opts.max_stored_bytes = 100;
    CHECK(xs_sip_start_opts(loop, &tc.cfg, NULL, &opts, submit, &r, &sip) == 0 && sip);
    if (!sip)
        return;
    port = xs_sip_port(sip, 0);
    r.auto_done = 1;
    n1 = make_request(m1, sizeof m1, "MESSAGE", "z9hG4bKst3", pp, PLAIN, BODY);
    udp_send_to(fd, port, m1, n1);
    expect_status(loop, fd, "SIP/2.0 200 OK\r\n", "branch=z9hG4bKst3");
    udp_send_to(fd, port, m1, n1);
    CHECK(udp_wait(loop, fd, buf, sizeof buf, 100, NULL) == 0);
    CHECK(r.n == 1);
    close(fd);
    stop(loop, sip);
    xs_event_free(r.last);
}

static size_t fnv1a_bucket(const char *k, size_t n_buckets)
{
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return (size_t)h & (n_buckets - 1);
}

#define FLOOD 64

/* Code review P4: server keys embed the peer's branch, so with the unkeyed
 * FNV of before a peer could aim every transaction at one bucket. Branches
 * precomputed to collide under FNV spread out under the seeded hash, each
 * table has its own seed, and the lookups of a real server still work. */
static void test_hash_flood(uv_loop_t *loop)
{
    struct xs__sip_table t1, t2;
    CHECK(xs__sip_table_init(&t1, 4096) == 0 && xs__sip_table_init(&t2, 4096) == 0);
    CHECK(memcmp(t1.seed, t2.seed, sizeof t1.seed) != 0);

    int pp;
    int fd = udp_peer(&pp);
    static char branches[FLOOD][32];
    char key[XS_SIP_KEY_MAX];
    int found = 0;
    for (unsigned long i = 0; found < FLOOD && i < 50000000ul; i++) {
        snprintf(branches[found], sizeof branches[found], "z9hG4bKf%lu", i);
        snprintf(key, sizeof key, "b=%.31s|127.0.0.1:%d|OPTIONS", branches[found], pp);
        if (fnv1a_bucket(key, 4096) == 0)
            found++;
    }
    CHECK(found == FLOOD);
    static unsigned per_bucket[4096];
    memset(per_bucket, 0, sizeof per_bucket);
    unsigned longest = 0, same_in_both = 0;
    for (int i = 0; i < found; i++) {
        snprintf(key, sizeof key, "b=%.31s|127.0.0.1:%d|OPTIONS", branches[i], pp);
        size_t b = xs__sip_table_bucket(&t1, key);
        if (++per_bucket[b] > longest)
            longest = per_bucket[b];
        same_in_both += b == xs__sip_table_bucket(&t2, key);
    }
    printf("P4: %d keys in one FNV bucket -> longest seeded chain %u\n", found, longest);
    CHECK(longest <= 4);
    CHECK(same_in_both < 8);
    xs__sip_table_free(&t1);
    xs__sip_table_free(&t2);

    /* The same branches against a running server: each is answered, and
     * each retransmission finds its transaction (the same To-tag again). */
    struct test_cfg tc;
    test_cfg_init(&tc, NULL, 0, XS_SIP_UDP);
    struct router r = {0};
    struct xs_sip *sip = NULL;
    CHECK(xs_sip_start(loop, &tc.cfg, NULL, submit, &r, &sip) == 0 && sip);
    if (!sip)
        return;
    int port = xs_sip_port(sip, 0);
    static char first[FLOOD][600];
    char m[2048];
    int answered = 0, again = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < found; i++) {
            size_t n =
                make_request(m, sizeof m, "OPTIONS", branches[i], pp, "Call-ID: fl\r\n", NULL);
            udp_send_to(fd, port, m, n);
            size_t got = udp_wait(loop, fd, buf, sizeof buf, 500, NULL);
            if (pass == 0) {
                answered += got > 0 && strncmp(buf, "SIP/2.0 200 OK\r\n", 16) == 0 &&
                            strstr(buf, branches[i]) != NULL;
                snprintf(first[i], sizeof first[i], "%.599s", buf);
            } else {
                again += got > 0 && strcmp(buf, first[i]) == 0;
            }
        }
    }
    CHECK(answered == found && again == found);
    close(fd);
    stop(loop, sip);
}

/* Bounds: one inbound TCP connection, one server transaction, a short idle
 * timeout; and a TCP request whose connection is gone before done(). */
static void test_limits(uv_loop_t *loop)
{
    struct test_cfg tc;
    test_cfg_init(&tc, NULL, 0, XS_SIP_UDP);
    struct xs_sip_opts opts;
    xs_sip_default_opts(&opts);
    opts.max_tcp_conns = 1;
    opts.max_server_txns = 1;
    opts.tcp_idle_ms = 150;
    struct router r = {0};
    struct xs_sip *sip = NULL;
    CHECK(xs_sip_start_opts(loop, &tc.cfg, NULL, &opts, submit, &r, &sip) == 0);
    if (!sip)
        return;
    int tcp_port = xs_sip_port(sip, 1), udp_port = xs_sip_port(sip, 0);
    int eof;
    int first = tcp_peer(tcp_port);
    pump(loop, 20);
    int second = tcp_peer(tcp_port);
    tcp_read(loop, second, buf, sizeof buf, 100, &eof);
    CHECK(eof);
    close(second);

    /* A MESSAGE on the one connection holds the one transaction slot. */
    char m[4096];
    size_t n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKl1", 5060, PLAIN, "x");
    send(first, m, n, 0);
    PUMP_UNTIL(loop, r.n == 1 && r.done != NULL, 2000);
    CHECK(r.n == 1 && r.done != NULL);
    int port_peer;
    int fd = udp_peer(&port_peer);
    n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKl2", port_peer, PLAIN, "y");
    udp_send_to(fd, udp_port, m, n);
    expect_status(loop, fd, "SIP/2.0 503 ", "Retry-After: 5\r\n");
    CHECK(r.n == 1);

    /* The peer goes away before the router answers: done() must still be
     * safe, and frees the slot. */
    close(first);
    pump(loop, 20);
    answer(&r, XS_COND_NONE, NULL);
    pump(loop, 10);
    n = make_request(m, sizeof m, "OPTIONS", "z9hG4bKl3", port_peer, "Call-ID: l3\r\n", NULL);
    udp_send_to(fd, udp_port, m, n);
    expect_status(loop, fd, "SIP/2.0 200 OK\r\n", NULL);
    /* The table is full again, but only with a completed transaction: it
     * is evicted rather than the new request refused. */
    n = make_request(m, sizeof m, "OPTIONS", "z9hG4bKl4", port_peer, "Call-ID: l4\r\n", NULL);
    udp_send_to(fd, udp_port, m, n);
    expect_status(loop, fd, "SIP/2.0 200 OK\r\n", NULL);
    close(fd);

    /* An idle connection is closed after tcp_idle_ms. */
    pump(loop, 20);
    int idle = tcp_peer(tcp_port);
    tcp_read(loop, idle, buf, sizeof buf, 400, &eof);
    CHECK(eof);
    close(idle);

    closed = 0;
    xs_sip_close(sip, on_closed, NULL);
    PUMP_UNTIL(loop, closed, 2000);
    CHECK(closed);
    xs_event_free(r.last);
}

/* Audit M5 with the real list: a trusted source may hold more TCP
 * connections than the per-source cap (16), an untrusted one may not. */
static void test_trusted_tcp(uv_loop_t *loop)
{
    char *trusted[] = {"127.0.0.2"};
    struct router r = {0};
    struct xs_sip *sip = start_trusting(loop, &r, trusted, 1, NULL);
    if (!sip)
        return;
    int port = xs_sip_port(sip, 1);
    int fds[2][20];
    for (int i = 0; i < 20; i++) {
        fds[0][i] = tcp_peer_at("127.0.0.1", port);
        fds[1][i] = tcp_peer_at("127.0.0.2", port);
        pump(loop, 0);
    }
    pump(loop, 30);
    int gone[2] = {0, 0};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 20; i++) {
            gone[k] += fds[k][i] < 0 || hung_up(fds[k][i]);
            if (fds[k][i] >= 0)
                close(fds[k][i]);
        }
    CHECK(gone[0] == 4);
    CHECK(gone[1] == 0);
    stop(loop, sip);
    xs_event_free(r.last);
}

int main(void)
{
    xs_log_set_level(getenv("XS_TEST_DEBUG") ? XS_LOG_DEBUG : XS_LOG_ERROR);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct test_cfg tc;
    test_cfg_init(&tc, NULL, 0, XS_SIP_UDP);
    struct router r = {0};
    struct xs_sip *sip = NULL;
    CHECK(xs_sip_start(&loop, &tc.cfg, NULL, submit, &r, &sip) == 0 && sip);
    if (!sip)
        return check_report("test_sip_server");
    int udp_port = xs_sip_port(sip, 0), tcp_port = xs_sip_port(sip, 1);
    CHECK(udp_port > 0 && tcp_port > 0 && xs_sip_port(sip, 2) == -1);

    test_udp(&loop, &r, udp_port);
    test_tcp(&loop, &r, tcp_port);
    test_hostile(&loop, &r, udp_port, tcp_port);
    test_limits(&loop);
    test_trust(&loop);
    test_amplification(&loop);
    test_response_store(&loop);
    test_hash_flood(&loop);
    test_trusted_tcp(&loop);

    /* Close with a request the router still holds: the peer gets 503, and
     * the late done() finds nothing to answer. */
    int port_peer;
    int fd = udp_peer(&port_peer);
    char m[4096];
    size_t n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKc1", port_peer, PLAIN, "x");
    udp_send_to(fd, udp_port, m, n);
    PUMP_UNTIL(&loop, r.done != NULL, 2000);
    CHECK(r.done != NULL);
    xs_sip_close(sip, on_closed, NULL);
    expect_status(&loop, fd, "SIP/2.0 503 ", "Retry-After: 5\r\n");
    PUMP_UNTIL(&loop, closed && !uv_loop_alive(&loop), 2000);
    CHECK(closed);
    answer(&r, XS_COND_NONE, NULL);
    close(fd);
    xs_event_free(r.last);
    CHECK(uv_loop_close(&loop) == 0);
    return check_report("test_sip_server");
}
