/* The connector against a libuv listener on 127.0.0.1: success, refusal,
 * cancel at several moments, an unresolvable name, a deadline, and fail-over
 * from a black-holed address to the next within the deadline; names go
 * through the loop's resolver, here pointed at a fake DNS server, so a name
 * server that never answers is bounded by the connect deadline. Run under
 * ASan, a leak in any path fails the test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "check.h"
#include "dns_testutil.h"
#include "core/err.h"
#include "net/addr.h"
#include "net/connect.h"
#include "net/dns.h"

struct result {
    int called;
    int status;
    int nodelay_ok;
};

static void free_on_close(uv_handle_t *h)
{
    free(h);
}

static void on_connected(void *ud, int status, uv_tcp_t *tcp)
{
    struct result *r = ud;
    r->called++;
    r->status = status;
    if (tcp) {
        r->nodelay_ok = tcp->data == NULL;
        uv_close((uv_handle_t *)tcp, free_on_close);
    }
}

static int accepted;

static void on_accept(uv_stream_t *server, int status)
{
    if (status != 0)
        return;
    uv_tcp_t *c = malloc(sizeof *c);
    uv_tcp_init(server->loop, c);
    if (uv_accept(server, (uv_stream_t *)c) == 0)
        accepted++;
    uv_close((uv_handle_t *)c, free_on_close);
}

/* A listener on an ephemeral port; returns the port. */
static int listen_on(uv_loop_t *loop, uv_tcp_t *srv)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, srv);
    if (uv_tcp_bind(srv, (const struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)srv, 8, on_accept) != 0)
        return -1;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(srv, (struct sockaddr *)&ss, &len);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A port nothing listens on: bind one, note it, close it. */
static int closed_port(uv_loop_t *loop)
{
    uv_tcp_t t;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &t);
    uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void stop_listener(uv_handle_t *h, void *arg)
{
    if (h == arg && !uv_is_closing(h))
        uv_close(h, NULL);
}

/* Runs the loop until `flag` is set (the listener keeps it alive). */
static void run_until(uv_loop_t *loop, const int *flag)
{
    for (int i = 0; i < 1000 && !*flag; i++)
        uv_run(loop, UV_RUN_ONCE);
}

static int resolver_closed;

static void on_resolver_closed(void *ud)
{
    resolver_closed++;
}

/* The loop's resolver: the system's (servers NULL) or the fake server's. */
static struct xs_dns *open_resolver(uv_loop_t *loop, const char *servers)
{
    struct xs_dns_opts o = {.servers = servers, .timeout_ms = 1000, .tries = 2};
    struct xs_dns *dns = NULL;
    loop->data = NULL; /* uv_loop_init keeps what it held */
    CHECK(xs_dns_new(loop, &o, &dns) == 0);
    return dns;
}

static void close_resolver(uv_loop_t *loop, struct xs_dns *dns)
{
    int before = resolver_closed;
    xs_dns_close(dns, on_resolver_closed, NULL);
    run_until_n(loop, &resolver_closed, before + 1, 2000);
    CHECK(resolver_closed == before + 1);
}

static void test_success_and_refused(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct xs_dns *dns = open_resolver(&loop, NULL);
    uv_tcp_t srv;
    int port = listen_on(&loop, &srv);
    CHECK(port > 0);

    struct result ok = {0};
    struct xs_connect_req *req = NULL;
    CHECK(xs_net_connect(&loop, "127.0.0.1", (uint16_t)port, 5.0, on_connected, &ok, &req) == 0);
    CHECK(req != NULL);
    CHECK(ok.called == 0);
    run_until(&loop, &ok.called);
    CHECK(ok.called == 1 && ok.status == 0 && ok.nodelay_ok);
    run_until(&loop, &accepted);
    CHECK(accepted == 1);

    /* "localhost" goes through the resolver (the hosts file) and may give
     * ::1 first; the connector moves on to 127.0.0.1 if ::1 refuses. */
    struct result lh = {0};
    CHECK(xs_net_connect(&loop, "localhost", (uint16_t)port, 5.0, on_connected, &lh, NULL) == 0);
    run_until(&loop, &lh.called);
    CHECK(lh.called == 1 && lh.status == 0);

    int dead = closed_port(&loop);
    struct result ref = {0};
    CHECK(xs_net_connect(&loop, "127.0.0.1", (uint16_t)dead, 5.0, on_connected, &ref, NULL) == 0);
    run_until(&loop, &ref.called);
    CHECK(ref.called == 1 && ref.status == XS_EREFUSED);

    close_resolver(&loop, dns);
    uv_walk(&loop, stop_listener, &srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
}

static void test_cancel(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_tcp_t srv;
    int port = listen_on(&loop, &srv);

    /* Cancel while the address lookup is queued or running. */
    struct result r1 = {0};
    struct xs_connect_req *req = NULL;
    CHECK(xs_net_connect(&loop, "127.0.0.1", (uint16_t)port, 5.0, on_connected, &r1, &req) == 0);
    xs_net_connect_cancel(req);

    /* A connect started after the cancelled one is unaffected. */
    struct result r3 = {0};
    CHECK(xs_net_connect(&loop, "127.0.0.1", (uint16_t)port, 5.0, on_connected, &r3, NULL) == 0);
    run_until(&loop, &r3.called);

    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(r1.called == 0);
    CHECK(r3.called == 1 && r3.status == 0);

    uv_walk(&loop, stop_listener, &srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(r1.called == 0);
    CHECK(uv_loop_close(&loop) == 0);
}

/* A listening socket that never accepts, with the smallest backlog: once
 * one connection waits in its queue the kernel drops further SYNs, so the
 * next connect hangs on loopback until someone gives up. */
static int stuck_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 0) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_timeout_and_inflight_cancel(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port = 0;
    int fd = stuck_listener(&port);
    CHECK(fd >= 0);
    if (fd < 0)
        return;

    /* Fill the accept queue. */
    struct result fill = {0};
    CHECK(xs_net_connect(&loop, "127.0.0.1", (uint16_t)port, 5.0, on_connected, &fill, NULL) == 0);
    run_until(&loop, &fill.called);
    CHECK(fill.status == 0);

    /* This one hangs: the deadline answers. */
    struct result to = {0};
    uint64_t t0 = uv_now(&loop);
    CHECK(xs_net_connect(&loop, "127.0.0.1", (uint16_t)port, 0.2, on_connected, &to, NULL) == 0);
    /* And this one hangs too, until it is cancelled mid-connect. */
    struct result cancelled = {0};
    struct xs_connect_req *req = NULL;
    CHECK(xs_net_connect(&loop, "127.0.0.1", (uint16_t)port, 5.0, on_connected, &cancelled, &req) ==
          0);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(cancelled.called == 0);
    xs_net_connect_cancel(req);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(to.called == 1 && to.status == XS_ETIMEOUT);
    CHECK(uv_now(&loop) - t0 >= 190);
    CHECK(cancelled.called == 0);
    close(fd);
    CHECK(uv_loop_close(&loop) == 0);
}

/* Audit A1: a next hop whose first address drops SYNs. The deadline is
 * shared out, so the second address is tried after half of it and
 * answers; with both black-holed the whole deadline ends the request. */
static void test_failover(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int stuck_port = 0;
    int fd = stuck_listener(&stuck_port);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    uv_tcp_t srv;
    int good_port = listen_on(&loop, &srv);
    struct result fill = {0};
    CHECK(xs_net_connect(&loop, "127.0.0.1", (uint16_t)stuck_port, 5.0, on_connected, &fill,
                         NULL) == 0);
    run_until(&loop, &fill.called);
    CHECK(fill.status == 0);

    struct sockaddr_storage addrs[2];
    xs_net_addr_parse("127.0.0.1", stuck_port, &addrs[0]);
    xs_net_addr_parse("127.0.0.1", good_port, &addrs[1]);
    int before = accepted;
    struct result ok = {0};
    uint64_t t0 = uv_hrtime();
    CHECK(xs_net_connect_addrs(&loop, addrs, 2, 1.0, on_connected, &ok, NULL) == 0);
    CHECK(ok.called == 0);
    run_until(&loop, &ok.called);
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    printf("fail-over past a black-holed address (deadline 1000 ms): connected after %.0f ms\n",
           ms);
    CHECK(ok.called == 1 && ok.status == 0);
    CHECK(ms >= 450 && ms < 1000);
    run_until(&loop, &accepted);
    CHECK(accepted == before + 1);

    xs_net_addr_parse("127.0.0.1", stuck_port, &addrs[1]);
    struct result dead = {0};
    t0 = uv_hrtime();
    CHECK(xs_net_connect_addrs(&loop, addrs, 2, 0.3, on_connected, &dead, NULL) == 0);
    run_until(&loop, &dead.called);
    ms = (double)(uv_hrtime() - t0) / 1e6;
    CHECK(dead.called == 1 && dead.status == XS_ETIMEOUT);
    CHECK(ms >= 290 && ms < 800);

    struct result bad = {0};
    memset(&addrs[0], 0, sizeof addrs[0]);
    CHECK(xs_net_connect_addrs(&loop, addrs, 1, 1.0, on_connected, &bad, NULL) == XS_EINVAL);
    CHECK(xs_net_connect_addrs(&loop, addrs, 0, 1.0, on_connected, &bad, NULL) == XS_EINVAL);

    uv_walk(&loop, stop_listener, &srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    close(fd);
    CHECK(bad.called == 0);
    CHECK(uv_loop_close(&loop) == 0);
}

static void test_errors(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    loop.data = NULL;
    /* Without a resolver on the loop, a name cannot be looked up; a
     * literal needs none. */
    struct result nores = {0};
    CHECK(xs_net_connect(&loop, "a.test", 5269, 1.0, on_connected, &nores, NULL) == XS_ESTATE);
    struct xs_dns *dns = open_resolver(&loop, NULL);
    struct result r = {0};
    CHECK(xs_net_connect(&loop, "", 5269, 1.0, on_connected, &r, NULL) == XS_EINVAL);
    CHECK(xs_net_connect(&loop, "127.0.0.1", 0, 1.0, on_connected, &r, NULL) == XS_EINVAL);

    /* A 64-character label is no DNS name: the resolver rejects it while
     * building the query, so nothing leaves the machine. */
    char name[80];
    memset(name, 'a', 64);
    snprintf(name + 64, sizeof name - 64, ".test");
    struct result bad = {0};
    CHECK(xs_net_connect(&loop, name, 5269, 2.0, on_connected, &bad, NULL) == 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(bad.called == 1 && bad.status == XS_EDNS);
    CHECK(r.called == 0 && nores.called == 0);
    close_resolver(&loop, dns);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
}

/* Names through the fake server: an address that accepts, a name that
 * does not exist (XS_ENOTFOUND, not a generic DNS failure), a name server
 * that never answers (bounded by the connect deadline, 0.3 s, well inside
 * the resolver's own 2 s, and reported as a timeout), and cancel while the
 * name is being looked up. */
static void test_names(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct fake_dns f;
    CHECK(fake_dns_start(&loop, &f) == 0);
    struct xs_dns *dns = open_resolver(&loop, f.servers);
    uv_tcp_t srv;
    int port = listen_on(&loop, &srv);
    CHECK(port > 0);

    struct result good = {0}, nx = {0}, black = {0}, cancelled = {0};
    CHECK(xs_net_connect(&loop, "good.test", (uint16_t)port, 5.0, on_connected, &good, NULL) == 0);
    CHECK(xs_net_connect(&loop, "nx.test", (uint16_t)port, 5.0, on_connected, &nx, NULL) == 0);
    uint64_t t0 = uv_hrtime();
    CHECK(xs_net_connect(&loop, "black.test", (uint16_t)port, 0.3, on_connected, &black, NULL) ==
          0);
    struct xs_connect_req *req = NULL;
    CHECK(xs_net_connect(&loop, "black2.test", (uint16_t)port, 5.0, on_connected, &cancelled,
                         &req) == 0);
    run_until_n(&loop, &good.called, 1, 3000);
    run_until_n(&loop, &nx.called, 1, 3000);
    xs_net_connect_cancel(req);
    CHECK(good.called == 1 && good.status == 0);
    CHECK(nx.called == 1 && nx.status == XS_ENOTFOUND);
    run_until_n(&loop, &black.called, 1, 3000);
    double ms = ms_since(t0);
    CHECK(black.called == 1 && black.status == XS_ETIMEOUT);
    CHECK(ms >= 290 && ms < 800);
    CHECK(cancelled.called == 0);

    close_resolver(&loop, dns);
    fake_dns_stop(&f);
    uv_walk(&loop, stop_listener, &srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(cancelled.called == 0);
    CHECK(uv_loop_close(&loop) == 0);
}

/* Audit M4: with XS_NET_PUBLIC_ONLY a name or literal that only leads to
 * special addresses is never connected to; without it, the same listener is
 * reached. */
static void test_public_only(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct xs_dns *dns = open_resolver(&loop, NULL);
    uv_tcp_t srv;
    int port = listen_on(&loop, &srv);
    CHECK(port > 0);
    accepted = 0;
    struct result lit = {0}, name = {0}, plain = {0};
    CHECK(xs_net_connect_flags(&loop, "127.0.0.1", (uint16_t)port, 5.0, XS_NET_PUBLIC_ONLY,
                               on_connected, &lit, NULL) == 0);
    CHECK(xs_net_connect_flags(&loop, "localhost", (uint16_t)port, 5.0, XS_NET_PUBLIC_ONLY,
                               on_connected, &name, NULL) == 0);
    run_until(&loop, &lit.called);
    run_until(&loop, &name.called);
    CHECK(lit.called == 1 && lit.status == XS_EPOLICY);
    CHECK(name.called == 1 && name.status == XS_EPOLICY);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(accepted == 0);
    CHECK(xs_net_connect_flags(&loop, "127.0.0.1", (uint16_t)port, 5.0, 0, on_connected, &plain,
                               NULL) == 0);
    run_until(&loop, &plain.called);
    CHECK(plain.called == 1 && plain.status == 0);
    run_until(&loop, &accepted);
    CHECK(accepted == 1);
    close_resolver(&loop, dns);
    uv_walk(&loop, stop_listener, &srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
}

int main(void)
{
    test_success_and_refused();
    test_cancel();
    test_timeout_and_inflight_cancel();
    test_failover();
    test_errors();
    test_names();
    test_public_only();
    return check_report("test_connect");
}
