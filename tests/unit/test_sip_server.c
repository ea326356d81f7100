/* Server transactions over real loopback sockets: what reaches the router,
 * when the answer goes out, retransmissions, local answers, bad input, TCP
 * framing, and close with a request still pending. */
#include "core/log.h"
#include "sip/sip.h"
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

static void test_udp(uv_loop_t *loop, struct router *r, int port)
{
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
        CHECK(strcmp(r->last->type, "chat") == 0);
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

    n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKu2", port_peer, PLAIN, "x");
    udp_send_to(fd, port, m, n);
    PUMP_UNTIL(loop, r->n == 2, 2000);
    CHECK(r->n == 2);
    answer(r, XS_COND_ITEM_NOT_FOUND, "no such \"user\"");
    expect_status(loop, fd, "SIP/2.0 404 Not Found\r\n",
                  "Warning: 399 sip.test \"no such \\\"user\\\"\"");

    n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKu3", port_peer,
                     "Call-ID: c3\r\nContent-Type: text/html\r\n", "<p>x</p>");
    udp_send_to(fd, port, m, n);
    expect_status(loop, fd, "SIP/2.0 415 ", "Accept: text/plain\r\n");

    n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKu4", port_peer, "Content-Type: text/plain\r\n",
                     "x");
    udp_send_to(fd, port, m, n);
    expect_status(loop, fd, "SIP/2.0 400 ", "Call-ID");

    n = make_request(m, sizeof m, "INVITE", "z9hG4bKu5", port_peer, "Call-ID: c5\r\n", NULL);
    udp_send_to(fd, port, m, n);
    expect_status(loop, fd, "SIP/2.0 405 ", "Allow: MESSAGE, OPTIONS\r\n");
    n = make_request(m, sizeof m, "ACK", "z9hG4bKu5", port_peer, "Call-ID: c5\r\n", NULL);
    udp_send_to(fd, port, m, n);
    CHECK(udp_wait(loop, fd, buf, sizeof buf, 50, NULL) == 0);

    n = make_request(m, sizeof m, "OPTIONS", "z9hG4bKu6", port_peer, "Call-ID: c6\r\n", NULL);
    udp_send_to(fd, port, m, n);
    expect_status(loop, fd, "SIP/2.0 200 OK\r\n", "Allow: MESSAGE, OPTIONS\r\n");

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
    CHECK(xs_sip_start_opts(loop, &tc.cfg, &opts, submit, &r, &sip) == 0);
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

int main(void)
{
    xs_log_set_level(XS_LOG_ERROR);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct test_cfg tc;
    test_cfg_init(&tc, NULL, 0, XS_SIP_UDP);
    struct router r = {0};
    struct xs_sip *sip = NULL;
    CHECK(xs_sip_start(&loop, &tc.cfg, submit, &r, &sip) == 0 && sip);
    if (!sip)
        return check_report("test_sip_server");
    int udp_port = xs_sip_port(sip, 0), tcp_port = xs_sip_port(sip, 1);
    CHECK(udp_port > 0 && tcp_port > 0 && xs_sip_port(sip, 2) == -1);

    test_udp(&loop, &r, udp_port);
    test_tcp(&loop, &r, tcp_port);
    test_limits(&loop);

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
