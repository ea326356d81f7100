/* The SIP transport set on its own, below the transactions: TCP framing
 * cost on hostile input, the connection caps and idle timeouts, and the
 * way out to a next hop that does not answer. The layer above is the
 * test's own recorder, which counts what arrives. */
#include <sys/resource.h>

#include "net/addr.h"

#include "core/err.h"
#include "core/log.h"
#include "sip/sip_transport.h"
#include "sip_testutil.h"
#include "tls/tls.h"

struct upper {
    int messages;
    size_t last_len;
    char last[4096];
    struct xs_sip_peer from;
    int hops;
    int hop_status;
    struct xs_sip_tp *answer_on; /* answer each message with `answer` on this set */
    const char *answer;
    size_t answer_len;
};

static void on_message(void *ud, const struct xs_sip_peer *from, const char *data, size_t len,
                       int oversize)
{
    struct upper *u = ud;
    u->messages++;
    u->last_len = len;
    u->from = *from;
    size_t n = len < sizeof u->last - 1 ? len : sizeof u->last - 1;
    memcpy(u->last, data, n);
    u->last[n] = '\0';
    if (u->answer_on)
        xs_sip_tp_reply(u->answer_on, from, u->answer, u->answer_len);
}

static void on_next_hop(void *ud, int status)
{
    struct upper *u = ud;
    u->hops++;
    u->hop_status = status;
}

static const struct xs_sip_tp_cbs cbs = {.message = on_message, .next_hop = on_next_hop};

static int closed;
static void on_closed(void *ud)
{
    closed = 1;
}

static void default_limits(struct xs_sip_tp_limits *lim)
{
    memset(lim, 0, sizeof *lim);
    lim->max_message = 4096;
    lim->max_conns = 256;
    lim->out_max = 1 << 20;
    lim->idle_ms = 300000;
    lim->warn_host = "sip.test";
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* Audit L2: a 32 KB header section and a 32 KB body sent one byte per read.
 * Framing that rescans the buffer on every read spends over a CPU-second
 * here; framing that remembers where it was spends about what the 64K
 * reads themselves cost. */
static void test_bytewise_framing(uv_loop_t *loop)
{
    struct test_cfg tc;
    test_cfg_init(&tc, NULL, 0, XS_SIP_UDP);
    struct xs_sip_tp_limits lim;
    default_limits(&lim);
    lim.max_message = 128 * 1024;
    struct upper u = {0};
    struct xs_sip_tp *tp = NULL;
    CHECK(xs_sip_tp_start(loop, &tc.cfg, &lim, &cbs, &u, &tp) == 0);
    if (!tp)
        return;
    int fd = tcp_peer(xs_sip_tp_port(tp, 1));
    CHECK(fd >= 0);
    pump(loop, 5);

    size_t hdr = 32 * 1024, body = 32 * 1024;
    char *m = malloc(hdr + body + 256);
    int off = snprintf(m, 256,
                       "MESSAGE sip:bob@sip.test SIP/2.0\r\nContent-Length: %zu\r\n", body);
    size_t pos = (size_t)off;
    while (pos < hdr - 4) {
        /* Many short header lines, as a Content-Length scan has to walk. */
        size_t n = hdr - 4 - pos < 4 ? hdr - 4 - pos : 4;
        memcpy(m + pos, "X:", 2);
        memset(m + pos + 2, 'p', n);
        pos += 2 + n;
        memcpy(m + pos, "\r\n", 2);
        pos += 2;
    }
    memcpy(m + pos, "\r\n", 2);
    pos += 2;
    size_t hl = pos;
    memset(m + pos, 'b', body);
    pos += body;

    double t0 = cpu_seconds();
    int sent_ok = 1;
    for (size_t i = 0; i < pos; i++) {
        if (send(fd, m + i, 1, 0) != 1)
            sent_ok = 0;
        uv_run(loop, UV_RUN_NOWAIT);
    }
    for (int i = 0; i < 100 && u.messages == 0; i++)
        pump(loop, 1);
    double spent = cpu_seconds() - t0;
    printf("bytewise framing: %zu header + %zu body bytes, one per read: %.2f CPU-s\n", hl, body,
           spent);
    CHECK(sent_ok);
    CHECK(u.messages == 1 && u.last_len == pos);
    CHECK(spent < 0.8);
    free(m);
    close(fd);
    closed = 0;
    xs_sip_tp_close(tp, on_closed, NULL);
    pump(loop, 20);
    CHECK(closed);
}

/* A listening socket that never accepts, its one-slot queue filled: the
 * kernel drops further SYNs, as a black-holed next hop does. Returns the
 * listening fd and the fd filling the queue (close both). */
static int stuck_listener(int *port, int *filler)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 0) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    *filler = tcp_peer(*port);
    return fd;
}

/* Audit A1: a black-holed TCP next hop answers within the connect
 * deadline (the old connector waited for the kernel, about 130 s), and the
 * way out can be asked for again afterwards. */
static void test_next_hop_deadline(uv_loop_t *loop)
{
    int port = 0, filler = -1;
    int fd = stuck_listener(&port, &filler);
    CHECK(fd >= 0 && filler >= 0);
    struct test_cfg tc;
    test_cfg_init(&tc, "127.0.0.1", port, XS_SIP_TCP);
    struct xs_sip_tp_limits lim;
    default_limits(&lim);
    lim.connect_ms = 300;
    struct upper u = {0};
    struct xs_sip_tp *tp = NULL;
    CHECK(xs_sip_tp_start(loop, &tc.cfg, &lim, &cbs, &u, &tp) == 0);
    if (!tp)
        return;
    struct xs_sip_local local;
    uint64_t t0 = uv_hrtime();
    CHECK(xs_sip_tp_next_hop(tp, &local) == XS_EAGAIN);
    CHECK(xs_sip_tp_next_hop(tp, &local) == XS_EAGAIN);
    for (int i = 0; i < 2000 && u.hops == 0; i++)
        pump(loop, 1);
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    printf("black-holed SIP next hop (connect_ms 300): gave up after %.0f ms\n", ms);
    CHECK(u.hops == 1 && u.hop_status == XS_ETIMEOUT);
    CHECK(ms >= 290 && ms < 1000);
    CHECK(xs_sip_tp_send_next_hop(tp, "x", 1) == XS_ECLOSED);

    /* The next hop comes back: the next ask connects. */
    close(filler);
    close(fd);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 4) == 0);
    CHECK(xs_sip_tp_next_hop(tp, &local) == XS_EAGAIN);
    for (int i = 0; i < 1000 && u.hops == 1; i++)
        pump(loop, 1);
    CHECK(u.hops == 2 && u.hop_status == 0);
    CHECK(xs_sip_tp_next_hop(tp, &local) == 0);
    CHECK(local.transport == XS_SIP_TCP && strcmp(local.host, "127.0.0.1") == 0 && local.port > 0);
    int peer = accept(lfd, NULL, NULL);
    CHECK(peer >= 0);
    CHECK(xs_sip_tp_send_next_hop(tp, "hello", 5) == 0);
    char got[8] = {0};
    int eof;
    fcntl(peer, F_SETFL, O_NONBLOCK);
    CHECK(tcp_read(loop, peer, got, sizeof got, 100, &eof) == 5 && strcmp(got, "hello") == 0);

    closed = 0;
    xs_sip_tp_close(tp, on_closed, NULL);
    pump(loop, 20);
    CHECK(closed);
    close(peer);
    close(lfd);
}

/* The transport asks its owner whom to trust (sip.c answers from
 * sip.trusted, covered by test_sip_server's test_trusted_tcp); here the
 * test answers: 127.0.0.3 is the trusted edge proxy, and every question is
 * counted. */
static int trusts_edge_only(void *ud, const struct sockaddr *sa)
{
    struct sockaddr_storage t;
    xs_net_addr_parse("127.0.0.3", 0, &t);
    (*(int *)ud)++;
    return xs_net_addr_same_ip(sa, (struct sockaddr *)&t);
}

#define FLOOD 300

/* Audit M5: 300 idle sockets from one source hold only their share of
 * slots, and a request from another source still gets through; idle
 * sockets that never send a message go after the short timeout; trusted
 * peers are exempt from both. */
static void test_connection_caps(uv_loop_t *loop)
{
    struct test_cfg tc;
    test_cfg_init(&tc, NULL, 0, XS_SIP_UDP);
    struct xs_sip_tp_limits lim;
    default_limits(&lim);
    lim.max_conns = 256;
    lim.max_per_source = 16;
    lim.first_idle_ms = 400;
    lim.idle_ms = 60000;
    int asked = 0;
    lim.is_trusted = trusts_edge_only;
    lim.trusted_ud = &asked;
    struct upper u = {0};
    struct xs_sip_tp *tp = NULL;
    CHECK(xs_sip_tp_start(loop, &tc.cfg, &lim, &cbs, &u, &tp) == 0);
    if (!tp)
        return;
    int port = xs_sip_tp_port(tp, 1);

    static int flood[FLOOD];
    int opened = 0;
    for (int i = 0; i < FLOOD; i++) {
        flood[i] = tcp_peer_at("127.0.0.1", port);
        opened += flood[i] >= 0;
        uv_run(loop, UV_RUN_NOWAIT);
    }
    pump(loop, 50);
    int refused = 0;
    for (int i = 0; i < FLOOD; i++)
        refused += flood[i] >= 0 && hung_up(flood[i]);
    CHECK(opened == FLOOD);
    CHECK(refused == FLOOD - 16);
    CHECK(asked == FLOOD);

    /* Another source is served while the flood holds its 16. */
    int other = tcp_peer_at("127.0.0.2", port);
    CHECK(other >= 0);
    char m[2048];
    size_t n = make_request(m, sizeof m, "OPTIONS", "z9hG4bKc1", 5060, "Call-ID: c1\r\n", NULL);
    CHECK(send(other, m, n, 0) == (ssize_t)n);
    for (int i = 0; i < 200 && u.messages == 0; i++)
        pump(loop, 1);
    CHECK(u.messages == 1 && u.last_len == n);

    /* A trusted source may open more than 16, and idles longer. */
    int trusted[20];
    for (int i = 0; i < 20; i++)
        trusted[i] = tcp_peer_at("127.0.0.3", port);
    pump(loop, 50);
    int trusted_open = 0;
    for (int i = 0; i < 20; i++)
        trusted_open += trusted[i] >= 0 && !hung_up(trusted[i]);
    CHECK(trusted_open == 20);

    /* After the short timeout the flood is gone, and so are its slots; so
     * is a source trickling a byte every 50 ms that never completes a
     * request. The connection that sent a whole message is on the long
     * timeout. */
    int slow = tcp_peer_at("127.0.0.4", port);
    CHECK(slow >= 0);
    int slow_sent = 0;
    for (int i = 0; i < 10; i++) {
        slow_sent += send(slow, "O", 1, MSG_NOSIGNAL) == 1;
        pump(loop, 50);
    }
    CHECK(slow_sent >= 8);
    CHECK(hung_up(slow));
    close(slow);
    int still = 0;
    for (int i = 0; i < FLOOD; i++)
        still += flood[i] >= 0 && !hung_up(flood[i]);
    CHECK(still == 0);
    CHECK(!hung_up(other));
    trusted_open = 0;
    for (int i = 0; i < 20; i++)
        trusted_open += trusted[i] >= 0 && !hung_up(trusted[i]);
    CHECK(trusted_open == 20);
    int again = tcp_peer_at("127.0.0.1", port);
    pump(loop, 30);
    CHECK(again >= 0 && !hung_up(again));

    for (int i = 0; i < FLOOD; i++)
        if (flood[i] >= 0)
            close(flood[i]);
    for (int i = 0; i < 20; i++)
        if (trusted[i] >= 0)
            close(trusted[i]);
    close(other);
    close(again);
    closed = 0;
    xs_sip_tp_close(tp, on_closed, NULL);
    pump(loop, 50);
    CHECK(closed);
}

/* SIP over TLS: a transport set whose next hop is tls:127.0.0.1:<port of
 * another set's tls: listener>. A MESSAGE goes out, arrives as TLS, and
 * the answer comes back on the same connection. A TLS next hop that does
 * not speak TLS fails once, without a reconnect loop. */
static void test_tls(uv_loop_t *loop)
{
    const char *names[] = {"sip.test"};
    char err[256];
    struct xs_tls_ctx *ctx = NULL;
    CHECK(xs_tls_ctx_new(NULL, NULL, names, 1, &ctx, err, sizeof err) == 0);
    if (!ctx)
        return;
    struct xs_sip_tp_limits lim;
    default_limits(&lim);
    struct upper ua = {0}, ub = {0};

    /* A tls: listener needs a certificate. */
    struct test_cfg ta;
    test_cfg_init(&ta, NULL, 0, XS_SIP_UDP);
    ta.listen[1].transport = XS_SIP_TLS;
    struct xs_sip_tp *a = NULL;
    CHECK(xs_sip_tp_start(loop, &ta.cfg, &lim, &cbs, &ua, &a) == XS_EINVAL && !a);
    pump(loop, 5);

    lim.tls = ctx;
    lim.first_idle_ms = 200;
    CHECK(xs_sip_tp_start(loop, &ta.cfg, &lim, &cbs, &ua, &a) == 0);
    if (!a)
        return;
    struct test_cfg tb;
    test_cfg_init(&tb, "127.0.0.1", xs_sip_tp_port(a, 1), XS_SIP_TLS);
    struct xs_sip_tp *b = NULL;
    CHECK(xs_sip_tp_start(loop, &tb.cfg, &lim, &cbs, &ub, &b) == 0);
    /* The transport holds its own reference: dropping ours is safe. */
    xs_tls_ctx_unref(ctx);
    if (!b)
        return;

    struct xs_sip_local local;
    CHECK(xs_sip_tp_next_hop(b, &local) == XS_EAGAIN);
    for (int i = 0; i < 2000 && ub.hops == 0; i++)
        pump(loop, 1);
    CHECK(ub.hops == 1 && ub.hop_status == 0);
    CHECK(xs_sip_tp_next_hop(b, &local) == 0 && local.transport == XS_SIP_TLS);

    char m[2048];
    size_t n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKtls1", local.port,
                            "Call-ID: tls1\r\nContent-Type: text/plain\r\n", "over TLS");
    CHECK(xs_sip_tp_send_next_hop(b, m, n) == 0);
    for (int i = 0; i < 1000 && ua.messages == 0; i++)
        pump(loop, 1);
    CHECK(ua.messages == 1 && ua.last_len == n && memcmp(ua.last, m, n) == 0);
    CHECK(ua.from.transport == XS_SIP_TLS);
    CHECK(strncmp(ua.from.desc, "127.0.0.1:", 10) == 0);

    const char *ok = "SIP/2.0 200 OK\r\nCall-ID: tls1\r\nContent-Length: 0\r\n\r\n";
    CHECK(xs_sip_tp_reply(a, &ua.from, ok, strlen(ok)) == 0);
    for (int i = 0; i < 1000 && ub.messages == 0; i++)
        pump(loop, 1);
    CHECK(ub.messages == 1 && strcmp(ub.last, ok) == 0 && ub.from.transport == XS_SIP_TLS);

    /* A TLS next hop that is plain TCP: the handshake never completes, the
     * far end gives up on the bytes it cannot frame, and the way out fails
     * once with XS_ETLS. */
    struct test_cfg tc;
    test_cfg_init(&tc, NULL, 0, XS_SIP_UDP);
    struct xs_sip_endpoint plain = {XS_SIP_TLS, "127.0.0.1", 0};
    struct xs_sip_tp *c = NULL;
    struct upper uc = {0};
    struct test_cfg td;
    test_cfg_init(&td, NULL, 0, XS_SIP_UDP);
    struct xs_sip_tp *d = NULL;
    lim.tls = NULL;
    struct upper ud = {0};
    CHECK(xs_sip_tp_start(loop, &td.cfg, &lim, &cbs, &ud, &d) == 0);
    if (d) {
        plain.port = xs_sip_tp_port(d, 1);
        tc.cfg.sip_next_hop = plain;
        struct xs_sip_tp_limits lc;
        default_limits(&lc);
        CHECK(xs_tls_ctx_new(NULL, NULL, names, 1, &lc.tls, err, sizeof err) == 0);
        CHECK(xs_sip_tp_start(loop, &tc.cfg, &lc, &cbs, &uc, &c) == 0);
        xs_tls_ctx_unref(lc.tls);
    }
    if (c) {
        CHECK(xs_sip_tp_next_hop(c, &local) == XS_EAGAIN);
        for (int i = 0; i < 2000 && uc.hops == 0; i++)
            pump(loop, 1);
        CHECK(uc.hops == 1 && uc.hop_status == XS_ETLS);
        pump(loop, 100);
        CHECK(uc.hops == 1);
    }

    int done = 0;
    struct xs_sip_tp *all[] = {a, b, c, d};
    for (size_t i = 0; i < 4; i++) {
        if (!all[i])
            continue;
        closed = 0;
        xs_sip_tp_close(all[i], on_closed, NULL);
        for (int k = 0; k < 3000 && !closed; k++)
            pump(loop, 1);
        done += closed;
    }
    CHECK(done == (c ? 4 : 3));
}

/* Convention 9 on SIP/TCP: a peer that sends requests but does not read
 * the answers is no longer read once half the output bound waits for it,
 * instead of being cut off at the bound; when it reads again, the requests
 * it sent meanwhile are served and every answer arrives. */
static void test_backpressure(uv_loop_t *loop)
{
    struct test_cfg tc;
    test_cfg_init(&tc, NULL, 0, XS_SIP_UDP);
    struct xs_sip_tp_limits lim;
    default_limits(&lim);
    lim.out_max = 256 * 1024;
    struct upper u = {0};
    struct xs_sip_tp *tp = NULL;
    CHECK(xs_sip_tp_start(loop, &tc.cfg, &lim, &cbs, &u, &tp) == 0);
    if (!tp)
        return;
    static char answer[48 * 1024];
    int hl = snprintf(answer, sizeof answer,
                      "SIP/2.0 200 OK\r\nContent-Length: %zu\r\n\r\n", sizeof answer - 64);
    memset(answer + hl, 'a', sizeof answer - (size_t)hl);
    u.answer_on = tp;
    u.answer = answer;
    u.answer_len = (size_t)hl + sizeof answer - 64;

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)xs_sip_tp_port(tp, 1)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    enum { REQUESTS = 200 };
    char m[1024];
    int sent = 0;
    for (int i = 0; i < REQUESTS; i++) {
        char branch[32];
        snprintf(branch, sizeof branch, "z9hG4bKbp%d", i);
        size_t n = make_request(m, sizeof m, "OPTIONS", branch, 5060, "Call-ID: bp\r\n", NULL);
        sent += send(fd, m, n, MSG_NOSIGNAL) == (ssize_t)n;
        uv_run(loop, UV_RUN_NOWAIT);
    }
    CHECK(sent == REQUESTS);
    pump(loop, 200);
    int while_stalled = u.messages;
    printf("backpressure: %d of %d requests served while the peer read nothing\n",
           while_stalled, REQUESTS);
    CHECK(while_stalled > 0 && while_stalled < REQUESTS);

    size_t got = 0;
    int eof = 0;
    static char b[256 * 1024];
    for (int i = 0; i < 5000 && !eof && got < (size_t)REQUESTS * u.answer_len; i++) {
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0 || errno != EAGAIN)
            eof = 1;
        uv_run(loop, UV_RUN_NOWAIT);
    }
    CHECK(!eof);
    CHECK(u.messages == REQUESTS);
    CHECK(got == (size_t)REQUESTS * u.answer_len);
    close(fd);
    closed = 0;
    xs_sip_tp_close(tp, on_closed, NULL);
    pump(loop, 50);
    CHECK(closed);
}

int main(void)
{
    xs_log_set_level(XS_LOG_ERROR);
    uv_loop_t loop;
    uv_loop_init(&loop);
    test_bytewise_framing(&loop);
    test_next_hop_deadline(&loop);
    test_connection_caps(&loop);
    test_tls(&loop);
    test_backpressure(&loop);
    CHECK(uv_loop_close(&loop) == 0);
    return check_report("test_sip_transport");
}
