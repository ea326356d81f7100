/* Client transactions: xs_sip_deliver() toward a test socket playing the
 * next hop, over UDP and TCP, with short timers. */
#include "core/log.h"
#include "net/dns.h"
#include "sip/sip.h"
#include "metrics_testutil.h"
#include "sip_testutil.h"

struct outcome {
    int calls;
    enum xs_cond cond;
    char text[256];
};

static void done_cb(void *ud, enum xs_cond cond, const char *text)
{
    struct outcome *o = ud;
    o->calls++;
    o->cond = cond;
    snprintf(o->text, sizeof o->text, "%s", text ? text : "");
}

static struct xs_event *message(const char *body)
{
    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_XMPP);
    xs_event_set(&ev->from, "sip:alice@xmpp.test");
    xs_event_set(&ev->to, "sip:bob@sip.test");
    xs_event_set(&ev->thread, "th-1");
    xs_event_set(&ev->body, body);
    return ev;
}

static char buf[65536], resp[8192];

/* The request's CSeq line is "CSeq: N MESSAGE" with N in 1..2^31-1
 * (RFC 3261 section 8.1.1.5); returns N, or 0 when the line is missing or
 * malformed. */
static unsigned long cseq_of(const char *req)
{
    const char *c = strstr(req, "\r\nCSeq: ");
    if (!c)
        return 0;
    c += 8;
    char *end;
    unsigned long n = strtoul(c, &end, 10);
    if (end == c || n == 0 || n > 0x7fffffffUL || strncmp(end, " MESSAGE\r\n", 10) != 0)
        return 0;
    return n;
}

static void wait_done(uv_loop_t *loop, struct outcome *o, int ms)
{
    for (int i = 0; i < ms && o->calls == 0; i++)
        pump(loop, 1);
}

struct ping_result {
    int calls;
    int status;
    char reason[128];
    int had_peer;
    char desc[64];
};

static void ping_cb(void *ud, int status, const char *reason, const struct xs_tls_peer *peer,
                    const char *tls_desc)
{
    struct ping_result *r = ud;
    r->calls++;
    r->status = status;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    r->had_peer = peer != NULL;
    snprintf(r->desc, sizeof r->desc, "%s", tls_desc);
}

/* xs_sip_ping (xsgw validate): an OPTIONS to the next hop in a client
 * transaction; the final status and reason come back, and no TLS verdict
 * over UDP. */
static void test_ping(uv_loop_t *loop, struct xs_sip *sip, int hop_fd)
{
    const int codes[] = {200, 486};
    const char *phrases[] = {"OK", "Busy Here"};
    for (int i = 0; i < 2; i++) {
        struct ping_result r = {0};
        CHECK(xs_sip_ping(sip, ping_cb, &r) == 0);
        int from_port = 0;
        size_t n = udp_wait(loop, hop_fd, buf, sizeof buf, 500, &from_port);
        CHECK(n > 0);
        const char *start = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:";
        CHECK(strncmp(buf, start, strlen(start)) == 0);
        CHECK(strstr(buf, "\r\nFrom: <sip:sip.test>;tag=") != NULL);
        CHECK(strstr(buf, "\r\nTo: <sip:127.0.0.1>\r\n") != NULL);
        CHECK(strstr(buf, " OPTIONS\r\n") != NULL && strstr(buf, "\r\nContent-Length: 0\r\n\r\n"));
        CHECK(r.calls == 0);
        n = sip_test_respond(buf, codes[i], phrases[i], resp, sizeof resp);
        udp_send_to(hop_fd, from_port, resp, n);
        PUMP_UNTIL(loop, r.calls > 0, 500);
        CHECK(r.calls == 1 && r.status == codes[i] && strcmp(r.reason, phrases[i]) == 0);
        CHECK(!r.had_peer && r.desc[0] == '\0');
    }
}

static void test_udp(uv_loop_t *loop, struct xs_sip *sip, int hop_fd)
{
    xs_metrics_reset();
    struct outcome o = {0};
    xs_sip_deliver(sip, message("caf\xc3\xa9 <&>"), done_cb, &o);
    int from_port = 0;
    size_t n = udp_wait(loop, hop_fd, buf, sizeof buf, 500, &from_port);
    CHECK(n > 0);
    CHECK(strncmp(buf, "MESSAGE sip:bob@sip.test SIP/2.0\r\n", 34) == 0);
    CHECK(strstr(buf, "\r\nVia: SIP/2.0/UDP 127.0.0.1:") != NULL);
    CHECK(strstr(buf, ";branch=z9hG4bK") != NULL && strstr(buf, ";rport\r\n") != NULL);
    CHECK(strstr(buf, "\r\nFrom: <sip:alice@xmpp.test>;tag=") != NULL);
    CHECK(strstr(buf, "\r\nTo: <sip:bob@sip.test>\r\n") != NULL);
    CHECK(strstr(buf, "\r\nCall-ID: th-1\r\n") != NULL);
    unsigned long cseq = cseq_of(buf);
    CHECK(cseq > 0);
    CHECK(strstr(buf, "\r\nMax-Forwards: 70\r\n") != NULL);
    CHECK(strstr(buf, "\r\nContent-Type: text/plain;charset=UTF-8\r\n") != NULL);
    CHECK(strstr(buf, "\r\nContent-Length: 9\r\n\r\ncaf\xc3\xa9 <&>") != NULL);
    CHECK(o.calls == 0);
    n = sip_test_respond(buf, 200, "OK", resp, sizeof resp);
    udp_send_to(hop_fd, from_port, resp, n);
    wait_done(loop, &o, 300);
    CHECK(o.calls == 1 && o.cond == XS_COND_NONE);
    /* A retransmitted 200 changes nothing: the transaction ended on the
     * first (no Timer K), and a response that matches none is discarded
     * (RFC 3261 §17.1.2.2, §18.1.2). */
    udp_send_to(hop_fd, from_port, resp, n);
    pump(loop, 20);
    CHECK(o.calls == 1);

    struct outcome o2 = {0};
    xs_sip_deliver(sip, message("x"), done_cb, &o2);
    n = udp_wait(loop, hop_fd, buf, sizeof buf, 500, &from_port);
    CHECK(n > 0);
    /* A new request in the same dialog-less conversation takes the next CSeq. */
    CHECK(cseq_of(buf) == cseq + 1);
    n = sip_test_respond(buf, 404, "Not Found", resp, sizeof resp);
    udp_send_to(hop_fd, from_port, resp, n);
    wait_done(loop, &o2, 300);
    CHECK(o2.calls == 1 && o2.cond == XS_COND_ITEM_NOT_FOUND);
    CHECK(strstr(o2.text, "404") != NULL);

    /* 100 Trying, then a final answer after it. */
    struct outcome o3 = {0};
    xs_sip_deliver(sip, message("y"), done_cb, &o3);
    n = udp_wait(loop, hop_fd, buf, sizeof buf, 500, &from_port);
    CHECK(n > 0 && cseq_of(buf) == cseq + 2);
    n = sip_test_respond(buf, 100, "Trying", resp, sizeof resp);
    udp_send_to(hop_fd, from_port, resp, n);
    pump(loop, 20);
    CHECK(o3.calls == 0);
    n = sip_test_respond(buf, 486, "Busy Here", resp, sizeof resp);
    udp_send_to(hop_fd, from_port, resp, n);
    wait_done(loop, &o3, 300);
    CHECK(o3.calls == 1 && o3.cond == XS_COND_RECIPIENT_UNAVAILABLE);

    /* No answer at all: Timer E retransmits, Timer F (64*T1 = 1.28 s)
     * ends it with remote-server-timeout. */
    struct outcome o4 = {0};
    xs_sip_deliver(sip, message("z"), done_cb, &o4);
    int copies = 0;
    char first_branch[64] = "";
    while (o4.calls == 0) {
        n = udp_wait(loop, hop_fd, buf, sizeof buf, 50, NULL);
        if (n > 0) {
            const char *b = strstr(buf, "branch=");
            if (copies++ == 0 && b)
                snprintf(first_branch, sizeof first_branch, "%.27s", b);
            else if (b)
                CHECK(strncmp(b, first_branch, strlen(first_branch)) == 0);
        }
    }
    CHECK(copies >= 5 && copies <= 14);
    CHECK(o4.calls == 1 && o4.cond == XS_COND_REMOTE_SERVER_TIMEOUT);
    /* Four MESSAGEs, each counted once however often Timer E resent it;
     * the responses that matched a transaction, the stray 200 not. */
    CHECK(metrics_line("xsgw_sip_requests_total{method=\"MESSAGE\",direction=\"out\"} 4"));
    CHECK(metrics_line("xsgw_sip_responses_total{class=\"1xx\",direction=\"in\"} 1"));
    CHECK(metrics_line("xsgw_sip_responses_total{class=\"2xx\",direction=\"in\"} 1"));
    CHECK(metrics_line("xsgw_sip_responses_total{class=\"4xx\",direction=\"in\"} 2"));
    pump(loop, 100);
    CHECK(o4.calls == 1);
}

static int tcp_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    listen(fd, 4);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static int tcp_accept(uv_loop_t *loop, int lfd)
{
    for (int i = 0; i < 500; i++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd >= 0) {
            fcntl(fd, F_SETFL, O_NONBLOCK);
            return fd;
        }
        pump(loop, 1);
    }
    return -1;
}

static void test_tcp(uv_loop_t *loop, struct xs_sip *sip, struct test_cfg *tc)
{
    int port;
    int lfd = tcp_listen(&port);
    tc->cfg.sip_next_hop = (struct xs_sip_endpoint){XS_SIP_TCP, "localhost", port};
    CHECK(xs_sip_reconfigure(sip, &tc->cfg, NULL) == 0);

    /* Two messages while connecting: both queued, both sent on one
     * connection. The name goes through the loop's resolver. */
    struct outcome o1 = {0}, o2 = {0};
    xs_sip_deliver(sip, message("one"), done_cb, &o1);
    xs_sip_deliver(sip, message("two"), done_cb, &o2);
    int fd = tcp_accept(loop, lfd);
    CHECK(fd >= 0);
    int eof;
    size_t got = 0;
    buf[0] = '\0';
    for (int i = 0; i < 300 && count_of(buf, "MESSAGE sip:") < 2; i++)
        got += tcp_read(loop, fd, buf + got, sizeof buf - got, 1, &eof);
    CHECK(count_of(buf, "MESSAGE sip:") == 2);
    CHECK(strstr(buf, "Via: SIP/2.0/TCP 127.0.0.1:") != NULL);
    char *second = strstr(buf + 1, "MESSAGE sip:");
    if (second) {
        size_t n = sip_test_respond(second, 200, "OK", resp, sizeof resp);
        send(fd, resp, n, 0);
        n = sip_test_respond(buf, 480, "Temporarily Unavailable", resp, sizeof resp);
        send(fd, resp, n, 0);
    }
    wait_done(loop, &o1, 300);
    wait_done(loop, &o2, 300);
    if (o1.calls != 1 || o1.cond != XS_COND_RECIPIENT_UNAVAILABLE)
        fprintf(stderr, "o1 calls=%d cond=%d text=%s buf:\n%s\n", o1.calls, o1.cond, o1.text, buf);
    CHECK(o1.calls == 1 && o1.cond == XS_COND_RECIPIENT_UNAVAILABLE);
    CHECK(o2.calls == 1 && o2.cond == XS_COND_NONE);

    /* The connection drops with a request in flight: service-unavailable. */
    struct outcome o3 = {0};
    xs_sip_deliver(sip, message("three"), done_cb, &o3);
    tcp_read(loop, fd, buf, sizeof buf, 30, &eof);
    CHECK(strstr(buf, "MESSAGE sip:") != NULL);
    close(fd);
    wait_done(loop, &o3, 500);
    CHECK(o3.calls == 1 && o3.cond == XS_COND_SERVICE_UNAVAILABLE);

    /* Nobody listening any more: remote-server-not-found. */
    close(lfd);
    struct outcome o4 = {0};
    xs_sip_deliver(sip, message("four"), done_cb, &o4);
    wait_done(loop, &o4, 500);
    CHECK(o4.calls == 1 && o4.cond == XS_COND_REMOTE_SERVER_NOT_FOUND);
}

static int closed;
static void on_closed(void *ud)
{
    closed = 1;
}

int main(void)
{
    xs_log_set_level(XS_LOG_ERROR);
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* The next hop's name ("localhost") goes through the loop's resolver. */
    loop.data = NULL;
    struct xs_dns *dns = NULL;
    CHECK(xs_dns_new(&loop, NULL, &dns) == 0);
    int hop_port;
    int hop_fd = udp_peer(&hop_port);
    struct test_cfg tc;
    test_cfg_init(&tc, "127.0.0.1", hop_port, XS_SIP_UDP);
    struct xs_sip_opts opts;
    xs_sip_default_opts(&opts);
    opts.t1_ms = 20;
    opts.t2_ms = 160;
    struct xs_sip *sip = NULL;
    CHECK(xs_sip_start_opts(&loop, &tc.cfg, NULL, &opts, NULL, NULL, &sip) == 0 && sip);
    if (!sip)
        return check_report("test_sip_client");
    test_udp(&loop, sip, hop_fd);
    test_ping(&loop, sip, hop_fd);
    test_tcp(&loop, sip, &tc);

    /* Bad events are refused before anything is sent. */
    tc.cfg.sip_next_hop = (struct xs_sip_endpoint){XS_SIP_UDP, "127.0.0.1", hop_port};
    xs_sip_reconfigure(sip, &tc.cfg, NULL);
    struct outcome bad = {0};
    struct xs_event *ev = message("x");
    xs_event_set(&ev->to, "bob@sip.test");
    xs_sip_deliver(sip, ev, done_cb, &bad);
    wait_done(&loop, &bad, 100);
    CHECK(bad.calls == 1 && bad.cond == XS_COND_JID_MALFORMED);

    /* No next hop configured. */
    tc.cfg.sip_next_hop = (struct xs_sip_endpoint){XS_SIP_UDP, NULL, 0};
    xs_sip_reconfigure(sip, &tc.cfg, NULL);
    struct outcome none = {0};
    xs_sip_deliver(sip, message("x"), done_cb, &none);
    CHECK(none.calls == 1 && none.cond == XS_COND_REMOTE_SERVER_NOT_FOUND);
    CHECK(strcmp(none.text, "no SIP next hop configured") == 0);

    /* Close with a transaction pending: service-unavailable, exactly once. */
    tc.cfg.sip_next_hop = (struct xs_sip_endpoint){XS_SIP_UDP, "127.0.0.1", hop_port};
    xs_sip_reconfigure(sip, &tc.cfg, NULL);
    struct outcome pending = {0};
    xs_sip_deliver(sip, message("x"), done_cb, &pending);
    pump(&loop, 10);
    xs_sip_close(sip, on_closed, NULL);
    CHECK(pending.calls == 1 && pending.cond == XS_COND_SERVICE_UNAVAILABLE);
    PUMP_UNTIL(&loop, closed, 2000);
    CHECK(closed && pending.calls == 1);
    close(hop_fd);
    xs_dns_close(dns, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
    return check_report("test_sip_client");
}
