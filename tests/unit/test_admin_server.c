/* The admin listener's HTTP server (proxy/admin/http_server.c) over real
 * sockets: a listener on 127.0.0.1:0 on a loop this test drives, blocking
 * clients in the same thread. What is answered, what is refused, and that a
 * hostile client gets one bounded answer and its connection is freed. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "admin/http_server.h"
#include "check.h"

static uv_loop_t loop;
static int port;
static int requests, gones, closed;

static void on_request(void *ud, struct xs_http_conn *c, enum xs_http_method m, const char *path)
{
    (void)ud;
    (void)m;
    requests++;
    xs_http_respond(c, 200, NULL, path, strlen(path));
}

static void on_gone(void *ud, struct xs_http_conn *c)
{
    (void)ud;
    (void)c;
    gones++;
}

static void on_closed(void *ud)
{
    (void)ud;
    closed = 1;
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        exit(2);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void spin(int turns)
{
    for (int i = 0; i < turns; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

/* Reads what fd gets until the server closes it (bounded: about 2 s).
 * Returns the bytes read, or -1 when the connection stayed open. */
static ssize_t read_all(int fd, char *out, size_t cap)
{
    size_t len = 0;
    for (int i = 0; i < 2000; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t n = recv(fd, out + len, cap - 1 - len, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            out[len] = '\0';
            return (ssize_t)len;
        }
        if (n > 0)
            len += (size_t)n;
        else
            usleep(1000);
        if (len == cap - 1)
            break;
    }
    out[len] = '\0';
    return -1;
}

/* Sends req (len bytes) on a new connection and returns the whole answer
 * (static buffer) or NULL when the server did not close. */
static const char *ask(const char *req, size_t len)
{
    static char out[65536];
    int fd = dial();
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EAGAIN)
            break; /* the server answered and closed before reading it all */
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    ssize_t r = read_all(fd, out, sizeof out);
    close(fd);
    return r < 0 ? NULL : out;
}

static const char *ask_str(const char *req)
{
    return ask(req, strlen(req));
}

static int starts(const char *s, const char *prefix)
{
    return s && !strncmp(s, prefix, strlen(prefix));
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_answers(void)
{
    const char *r = ask_str("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(starts(r, "HTTP/1.1 200 "));
    CHECK(r && strstr(r, "\r\nContent-Length: 8\r\n") && strstr(r, "\r\nConnection: close\r\n"));
    CHECK(r && !strcmp(strstr(r, "\r\n\r\n") + 4, "/metrics"));
    r = ask_str("HEAD /status HTTP/1.1\r\n\r\n");
    CHECK(starts(r, "HTTP/1.1 200 ") && strstr(r, "\r\nContent-Length: 7\r\n"));
    CHECK(r && !strcmp(strstr(r, "\r\n\r\n") + 4, "")); /* no body for HEAD */
    CHECK(requests == 2);
}

static void test_refusals(void)
{
    CHECK(starts(ask_str("POST /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 405 "));
    CHECK(starts(ask_str("GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"), "HTTP/1.1 413 "));
    CHECK(starts(ask_str("\x16\x03\x01\x02\x00garbage\r\n\r\n"), "HTTP/1.1 400 "));
    CHECK(starts(ask("GET /a\0b HTTP/1.1\r\n\r\n", 21), "HTTP/1.1 400 "));
    char path[2048];
    snprintf(path, sizeof path, "GET /%01000d HTTP/1.1\r\n\r\n", 0);
    CHECK(starts(ask_str(path), "HTTP/1.1 414 "));
    /* A head past 8 KiB: 431, and nothing more is read. */
    size_t big_len = 64 * 1024;
    char *big = malloc(big_len);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'a', big_len - 19);
    CHECK(starts(ask(big, big_len), "HTTP/1.1 431 "));
    free(big);
    CHECK(requests == 0);
}

/* 1000 requests in one write: one answer, then the connection closes. */
static void test_pipelined(void)
{
    const char *one = "GET /p HTTP/1.1\r\n\r\n";
    size_t n = strlen(one), len = n * 1000;
    char *many = malloc(len);
    for (size_t i = 0; i < 1000; i++)
        memcpy(many + i * n, one, n);
    const char *r = ask(many, len);
    CHECK(starts(r, "HTTP/1.1 200 ") && count(r, "HTTP/1.1 ") == 1);
    CHECK(requests == 1);
    free(many);
}

/* A request cut short and the client gone: no request, no answer owed, the
 * connection freed (the full count of new connections is open again). */
static void test_truncated(void)
{
    int fd = dial();
    CHECK(send(fd, "GET /met", 8, MSG_NOSIGNAL) == 8);
    spin(20);
    close(fd);
    spin(20);
    CHECK(requests == 0 && gones == 0);
}

/* Over XS_HTTP_CONNS_MAX the newest connection is closed; the older stay. */
static void test_too_many(void)
{
    int fds[XS_HTTP_CONNS_MAX + 1];
    for (int i = 0; i <= XS_HTTP_CONNS_MAX; i++) {
        fds[i] = dial();
        spin(3);
    }
    spin(20);
    char b[16];
    ssize_t last = recv(fds[XS_HTTP_CONNS_MAX], b, sizeof b, 0);
    CHECK(last == 0 || (last < 0 && errno != EAGAIN));
    int open_ = 0;
    for (int i = 0; i < XS_HTTP_CONNS_MAX; i++)
        open_ += recv(fds[i], b, sizeof b, 0) < 0 && errno == EAGAIN;
    CHECK(open_ == XS_HTTP_CONNS_MAX);
    /* Those still open are answered. */
    CHECK(send(fds[0], "GET /ok HTTP/1.1\r\n\r\n", 20, MSG_NOSIGNAL) == 20);
    char out[1024];
    CHECK(read_all(fds[0], out, sizeof out) > 0 && starts(out, "HTTP/1.1 200 "));
    for (int i = 0; i <= XS_HTTP_CONNS_MAX; i++)
        close(fds[i]);
    spin(30);
    /* All freed: a full set can connect again and be answered. */
    CHECK(starts(ask_str("GET /again HTTP/1.1\r\n\r\n"), "HTTP/1.1 200 "));
}

int main(void)
{
    uv_loop_init(&loop);
    static const struct xs_http_cbs cbs = {on_request, on_gone};
    struct xs_http_server *s = NULL;
    char err[256];
    CHECK(xs_http_server_start(&loop, "127.0.0.1", 0, &cbs, NULL, &s, err, sizeof err) == 0);
    if (!s)
        return check_report("test_admin_server");
    port = xs_http_server_port(s);
    CHECK(port > 0);
    /* A second listener on the same port fails with a reason. */
    struct xs_http_server *s2 = NULL;
    CHECK(xs_http_server_start(&loop, "127.0.0.1", port, &cbs, NULL, &s2, err, sizeof err) < 0);
    CHECK(!s2 && err[0]);

    test_answers();
    requests = 0;
    test_refusals();
    test_pipelined();
    requests = 0;
    test_truncated();
    test_too_many();

    /* A connection waiting in the handler when the server closes hears
     * `gone`; everything is released and done runs. */
    int fd = dial();
    spin(10);
    xs_http_server_close(s, on_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(closed == 1);
    close(fd);
    CHECK(uv_loop_close(&loop) == 0);
    return check_report("test_admin_server");
}
