/* net/link over a real loopback TCP connection: plaintext first, then TLS
 * started mid-stream by both ends (what STARTTLS does), bulk data through
 * TLS, the output bound, and the close reasons each side sees. Then what
 * the SIP side needs of a link: the idle timer, pause/resume and the
 * half-close, against a plain socket playing the peer; and the address
 * helper the link formats its peer with. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "check.h"
#include "core/err.h"
#include "net/addr.h"
#include "net/link.h"
#include "tls/tls.h"

#define BULK (200 * 1024)

struct end {
    const char *name;
    struct xs_link *link;
    char got[BULK + 64];
    size_t n;
    int tls_ready;
    int closed;
    int close_reason;
};

static uv_loop_t *loop;
static uv_tcp_t listener;
static struct xs_tls_ctx *ctx;
static struct end server = {.name = "server"}, client = {.name = "client"};
static int phase;

static void on_closed(void *ud, int reason)
{
    struct end *e = ud;
    e->closed = 1;
    e->close_reason = reason;
    e->link = NULL;
    if (server.closed && client.closed)
        uv_close((uv_handle_t *)&listener, NULL);
}

static void on_tls_ready(void *ud)
{
    struct end *e = ud;
    e->tls_ready = 1;
    if (e == &client) {
        /* Bulk data through TLS: half in one piece the TLS layer must
         * split, half in small writes that queue behind the write in
         * flight and are encrypted together (link.c's plaintext batch). */
        char *bulk = malloc(BULK);
        for (size_t i = 0; i < BULK; i++)
            bulk[i] = (char)('a' + i % 26);
        CHECK(xs_link_write(client.link, bulk, BULK / 2) == 0);
        for (size_t off = BULK / 2; off < BULK; off += 100)
            CHECK(xs_link_write(client.link, bulk + off, BULK - off < 100 ? BULK - off : 100) == 0);
        CHECK(xs_link_accepted(client.link) == 9 + BULK);
        CHECK(xs_link_flushed(client.link) < xs_link_accepted(client.link));
        free(bulk);
    }
}

static void on_data(void *ud, const char *data, size_t len)
{
    struct end *e = ud;
    if (e->n + len > sizeof e->got) {
        CHECK(!"more data than expected");
        return;
    }
    memcpy(e->got + e->n, data, len);
    e->n += len;
    if (e == &server && phase == 0 && e->n == 9 && !memcmp(e->got, "starttls!", 9)) {
        phase = 1;
        e->n = 0;
        CHECK(xs_link_write(server.link, "proceed!", 8) == 0);
        CHECK(xs_link_start_tls(server.link, ctx, 1, NULL) == 0);
    } else if (e == &client && phase == 1 && e->n == 8 && !memcmp(e->got, "proceed!", 8)) {
        phase = 2;
        e->n = 0;
        CHECK(xs_link_start_tls(client.link, ctx, 0, "sip.test") == 0);
    } else if (e == &server && phase == 2 && e->n == BULK) {
        phase = 3;
        int ok = 1;
        for (size_t i = 0; i < BULK; i++)
            ok &= e->got[i] == (char)('a' + i % 26);
        CHECK(ok);
        CHECK(xs_link_is_tls(server.link));
        CHECK(strcmp(xs_link_tls_describe(server.link), "plain") != 0);
        /* A burst of small writes and an orderly close right after it:
         * every byte reaches the client before the close_notify. */
        for (int i = 0; i < 1000; i++)
            CHECK(xs_link_write(server.link, "0123456789", 10) == 0);
        xs_link_close(server.link, XS_OK);
    }
}

static const struct xs_link_cbs cbs = {on_data, on_tls_ready, on_closed};

static void on_connection(uv_stream_t *s, int status)
{
    CHECK(status == 0);
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    uv_tcp_init(loop, tcp);
    CHECK(uv_accept(s, (uv_stream_t *)tcp) == 0);
    server.link = xs_link_new(tcp, &cbs, &server, 1 << 20);
    CHECK(server.link != NULL);
}

static void on_connect(uv_connect_t *req, int status)
{
    CHECK(status == 0);
    client.link = xs_link_new((uv_tcp_t *)req->handle, &cbs, &client, 1 << 20);
    free(req);
    CHECK(strncmp(xs_link_peer(client.link), "127.0.0.1:", 10) == 0);
    CHECK(xs_link_write(client.link, "starttls!", 9) == 0);
}

static int listen_any(uv_tcp_t *l, uv_connection_cb cb)
{
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, l);
    CHECK(uv_tcp_bind(l, (struct sockaddr *)&addr, 0) == 0);
    CHECK(uv_listen((uv_stream_t *)l, 8, cb) == 0);
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(l, (struct sockaddr *)&bound, &len);
    return ntohs(bound.sin_port);
}

static void connect_to(int port)
{
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    uv_tcp_init(loop, tcp);
    uv_connect_t *req = malloc(sizeof *req);
    CHECK(uv_tcp_connect(req, tcp, (struct sockaddr *)&addr, on_connect) == 0);
}

static void test_starttls_and_bulk(void)
{
    int port = listen_any(&listener, on_connection);
    connect_to(port);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(phase == 3);
    CHECK(server.tls_ready && client.tls_ready);
    CHECK(server.closed && server.close_reason == XS_OK);
    /* The client saw the server's close_notify (or the EOF right after it),
     * after the whole burst. */
    CHECK(client.closed && client.close_reason == XS_ECLOSED);
    CHECK(client.n == 10000);
    int ok = client.n == 10000;
    for (size_t i = 0; ok && i < client.n; i++)
        ok = client.got[i] == (char)('0' + i % 10);
    CHECK(ok);
}

/* The output bound: a write past it fails and queues nothing. */
static struct xs_link *bound_link;
static int bound_closed;

static void bound_closed_cb(void *ud, int reason)
{
    bound_closed = 1;
    uv_close((uv_handle_t *)&listener, NULL);
}

static void bound_data(void *ud, const char *d, size_t n)
{
}

static const struct xs_link_cbs bound_cbs = {bound_data, NULL, bound_closed_cb};

static void bound_accept(uv_stream_t *s, int status)
{
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    uv_tcp_init(loop, tcp);
    uv_accept(s, (uv_stream_t *)tcp);
    bound_link = xs_link_new(tcp, &bound_cbs, NULL, 1000);
    char big[1500];
    memset(big, 'x', sizeof big);
    CHECK(xs_link_write(bound_link, big, 600) == 0);
    /* The first write is in flight; the second waits; the third would pass the bound. */
    CHECK(xs_link_write(bound_link, big, 600) == 0);
    CHECK(xs_link_write(bound_link, big, sizeof big) == XS_ELIMIT);
    xs_link_close(bound_link, XS_OK);
    CHECK(xs_link_write(bound_link, "x", 1) == XS_ECLOSED);
}

static void bound_connected(uv_connect_t *req, int status)
{
    uv_close((uv_handle_t *)req->handle, (uv_close_cb)free);
    free(req);
}

static void test_output_bound(void)
{
    int port = listen_any(&listener, bound_accept);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    uv_tcp_init(loop, tcp);
    uv_connect_t *req = malloc(sizeof *req);
    uv_tcp_connect(req, tcp, (struct sockaddr *)&addr, bound_connected);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(bound_closed);
}

/* Offsets: what the link accepted is counted at once, what the kernel took
 * only as it takes it. A reader that never reads holds `flushed` back; once
 * it reads, `flushed` catches up and the callback says so. A close while
 * bytes are still stuck ends with XS_ETIMEOUT, not as an orderly close. */
#define STUCK_TOTAL (24u << 20)
static struct xs_link *stuck_link;
static uv_tcp_t *stuck_reader;
static uv_timer_t stuck_timer;
static int stuck_phase, stuck_flushed_calls, stuck_closed, stuck_reason;
static uint64_t stuck_flushed_while_stalled;
static char stuck_rbuf[65536];

static void stuck_closed_cb(void *ud, int reason)
{
    stuck_closed = 1;
    stuck_reason = reason;
    uv_close((uv_handle_t *)&listener, NULL);
    uv_close((uv_handle_t *)&stuck_timer, NULL);
    uv_close((uv_handle_t *)stuck_reader, (uv_close_cb)free);
}

static const struct xs_link_cbs stuck_cbs = {bound_data, NULL, stuck_closed_cb};

static void stuck_on_flushed(void *ud)
{
    stuck_flushed_calls++;
    CHECK(xs_link_flushed(stuck_link) <= xs_link_accepted(stuck_link));
}

static void stuck_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    *b = uv_buf_init(stuck_rbuf, sizeof stuck_rbuf);
}

static void stuck_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
}

static void stuck_tick(uv_timer_t *t)
{
    if (stuck_phase == 0) {
        /* The reader has not read a byte: not everything can have left. */
        stuck_flushed_while_stalled = xs_link_flushed(stuck_link);
        CHECK(xs_link_accepted(stuck_link) == STUCK_TOTAL);
        CHECK(stuck_flushed_while_stalled < STUCK_TOTAL);
        stuck_phase = 1;
        uv_read_start((uv_stream_t *)stuck_reader, stuck_alloc, stuck_read);
        uv_timer_start(&stuck_timer, stuck_tick, 50, 50);
    } else if (stuck_phase == 1 && xs_link_flushed(stuck_link) == STUCK_TOTAL) {
        /* Now stall again with more queued, and close: the grace runs out. */
        stuck_phase = 2;
        uv_timer_stop(&stuck_timer);
        uv_read_stop((uv_stream_t *)stuck_reader);
        char *chunk = calloc(1, 1 << 20);
        for (int i = 0; i < 24; i++)
            CHECK(xs_link_write(stuck_link, chunk, 1 << 20) == 0);
        free(chunk);
        xs_link_close(stuck_link, XS_OK);
    }
}

static void stuck_accept(uv_stream_t *s, int status)
{
    stuck_reader = malloc(sizeof *stuck_reader);
    uv_tcp_init(loop, stuck_reader);
    CHECK(uv_accept(s, (uv_stream_t *)stuck_reader) == 0);
}

static void stuck_connected(uv_connect_t *req, int status)
{
    CHECK(status == 0);
    stuck_link = xs_link_new((uv_tcp_t *)req->handle, &stuck_cbs, NULL, 64u << 20);
    free(req);
    xs_link_on_flushed(stuck_link, stuck_on_flushed);
    char *chunk = calloc(1, 1 << 20);
    for (unsigned i = 0; i < STUCK_TOTAL >> 20; i++)
        CHECK(xs_link_write(stuck_link, chunk, 1 << 20) == 0);
    free(chunk);
    CHECK(xs_link_flushed(stuck_link) < xs_link_accepted(stuck_link));
    uv_timer_start(&stuck_timer, stuck_tick, 300, 0);
}

static void test_flushed_offsets(void)
{
    int port = listen_any(&listener, stuck_accept);
    uv_timer_init(loop, &stuck_timer);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    uv_tcp_init(loop, tcp);
    uv_connect_t *req = malloc(sizeof *req);
    CHECK(uv_tcp_connect(req, tcp, (struct sockaddr *)&addr, stuck_connected) == 0);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(stuck_phase == 2);
    CHECK(stuck_flushed_calls > 0);
    CHECK(stuck_closed && stuck_reason == XS_ETIMEOUT);
}

/* ---- one link against a plain socket ---- */

struct probe {
    struct xs_link *link;
    char got[256];
    size_t n;
    int closed;
    int reason;
    int idle_calls;
    uint64_t closed_at;
};

static struct probe probe;
static uv_tcp_t probe_listener;

static void probe_data(void *ud, const char *d, size_t n)
{
    struct probe *p = ud;
    if (p->n + n > sizeof p->got)
        n = sizeof p->got - p->n;
    memcpy(p->got + p->n, d, n);
    p->n += n;
}

static void probe_closed(void *ud, int reason)
{
    struct probe *p = ud;
    p->closed = 1;
    p->reason = reason;
    p->link = NULL;
    p->closed_at = uv_now(loop);
}

static void probe_idle(void *ud)
{
    struct probe *p = ud;
    p->idle_calls++;
    xs_link_close(p->link, XS_OK);
}

static const struct xs_link_cbs probe_cbs = {probe_data, NULL, probe_closed};

static void probe_accept(uv_stream_t *s, int status)
{
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    uv_tcp_init(loop, tcp);
    CHECK(uv_accept(s, (uv_stream_t *)tcp) == 0);
    probe.link = xs_link_new(tcp, &probe_cbs, &probe, 1 << 20);
}

static void run_ms(int ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (uv_hrtime() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

/* A fresh link in `probe`; returns the peer's non-blocking socket. */
static int probe_open(void)
{
    memset(&probe, 0, sizeof probe);
    int port = listen_any(&probe_listener, probe_accept);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 200 && !probe.link; i++)
        run_ms(1);
    CHECK(probe.link != NULL);
    uv_close((uv_handle_t *)&probe_listener, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return fd;
}

static void run_until_closed(int ms)
{
    for (int i = 0; i < ms && !probe.closed; i++)
        run_ms(1);
}

static void test_idle(void)
{
    /* Without a callback the link closes itself with XS_ETIMEOUT. */
    int fd = probe_open();
    uint64_t t0 = uv_now(loop);
    xs_link_set_idle(probe.link, 60, NULL);
    run_until_closed(1000);
    CHECK(probe.closed && probe.reason == XS_ETIMEOUT);
    CHECK(probe.closed_at - t0 >= 55);
    close(fd);

    /* Traffic from the peer restarts the wait; the callback decides. */
    fd = probe_open();
    xs_link_set_idle(probe.link, 100, probe_idle);
    for (int i = 0; i < 8; i++) {
        CHECK(send(fd, "k", 1, 0) == 1);
        run_ms(30);
    }
    CHECK(probe.idle_calls == 0 && !probe.closed && probe.n == 8);
    run_until_closed(1000);
    CHECK(probe.idle_calls == 1 && probe.closed && probe.reason == XS_OK);
    close(fd);

    /* 0 turns it off. */
    fd = probe_open();
    xs_link_set_idle(probe.link, 40, NULL);
    xs_link_set_idle(probe.link, 0, NULL);
    run_ms(120);
    CHECK(!probe.closed);
    CHECK(xs_link_set_keepalive(probe.link, 30) == 0);
    xs_link_close(probe.link, XS_OK);
    run_until_closed(1000);
    close(fd);
}

static void test_pause_resume(void)
{
    int fd = probe_open();
    xs_link_set_idle(probe.link, 300, NULL);
    xs_link_pause(probe.link);
    CHECK(send(fd, "abc", 3, 0) == 3);
    /* Paused: nothing is delivered. */
    run_ms(100);
    CHECK(probe.n == 0 && !probe.closed);
    xs_link_resume(probe.link);
    run_ms(20);
    CHECK(probe.n == 3 && memcmp(probe.got, "abc", 3) == 0);
    /* Paused again with nothing moving either way: the idle timer still
     * ends it, so a paused peer cannot hold the link forever. */
    uint64_t t0 = uv_now(loop);
    xs_link_pause(probe.link);
    run_until_closed(1000);
    CHECK(probe.closed && probe.reason == XS_ETIMEOUT);
    CHECK(probe.closed_at - t0 >= 250);
    close(fd);
}

static void test_half_close(void)
{
    int fd = probe_open();
    /* The peer's bytes sit unread in our socket when we hang up: a plain
     * close would answer them with a reset. */
    CHECK(send(fd, "unread", 6, 0) == 6);
    static char big[300 * 1024];
    memset(big, 'z', sizeof big);
    xs_link_pause(probe.link);
    CHECK(xs_link_write(probe.link, big, sizeof big) == 0);
    xs_link_shutdown(probe.link, XS_EPROTO);
    CHECK(xs_link_write(probe.link, "x", 1) == XS_ECLOSED);
    size_t got = 0;
    int eof = 0, reset = 0;
    for (int i = 0; i < 2000 && !eof && !reset; i++) {
        char b[65536];
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0)
            eof = 1;
        else if (errno != EAGAIN)
            reset = 1;
        run_ms(1);
        if (i == 5)
            send(fd, "more", 4, 0); /* input after our FIN is discarded */
    }
    CHECK(got == sizeof big && eof && !reset);
    /* Half-closed: the link waits for the peer's close, then reports. */
    CHECK(!probe.closed);
    close(fd);
    run_until_closed(1000);
    CHECK(probe.closed && probe.reason == XS_EPROTO);
    CHECK(probe.n == 0);
}

static void test_addr(void)
{
    struct sockaddr_storage ss, v4;
    char out[XS_NET_ADDR_STRLEN];
    CHECK(xs_net_addr_parse("[::1]", 5060, &ss) == 0);
    CHECK_STR(xs_net_addr_format((struct sockaddr *)&ss, out, sizeof out), "[::1]:5060");
    CHECK(xs_net_addr_parse("::1", 5061, &ss) == 0);
    CHECK_STR(xs_net_addr_format((struct sockaddr *)&ss, out, sizeof out), "[::1]:5061");
    CHECK(xs_net_addr_parse("192.0.2.7", 5060, &v4) == 0);
    CHECK_STR(xs_net_addr_format((struct sockaddr *)&v4, out, sizeof out), "192.0.2.7:5060");
    CHECK(xs_net_addr_parse("sip.example", 5060, &ss) == XS_EINVAL);
    CHECK(xs_net_addr_parse("::ffff:192.0.2.7", 1, &ss) == 0);
    CHECK(xs_net_addr_same_ip((struct sockaddr *)&ss, (struct sockaddr *)&v4));
    CHECK(xs_net_addr_parse("192.0.2.8", 5060, &ss) == 0);
    CHECK(!xs_net_addr_same_ip((struct sockaddr *)&ss, (struct sockaddr *)&v4));
    CHECK(xs_net_addr_parse("::1", 1, &ss) == 0);
    CHECK(!xs_net_addr_same_ip((struct sockaddr *)&ss, (struct sockaddr *)&v4));
    CHECK(xs_net_addr_len((struct sockaddr *)&ss) == sizeof(struct sockaddr_in6));
}

int main(void)
{
    loop = uv_default_loop();
    const char *names[] = {"sip.test"};
    char err[256];
    CHECK(xs_tls_ctx_new(NULL, NULL, names, 1, &ctx, err, sizeof err) == 0);
    test_starttls_and_bulk();
    test_output_bound();
    test_flushed_offsets();
    test_idle();
    test_pause_resume();
    test_half_close();
    test_addr();
    xs_tls_ctx_unref(ctx);
    uv_loop_close(loop);
    return check_report("test_link");
}
