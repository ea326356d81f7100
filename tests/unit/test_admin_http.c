/* The admin listener's request reader (proxy/admin/http_request.c): what
 * it accepts, fed whole or a byte at a time, and how it refuses oversized,
 * truncated, malformed and unwanted requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/http_request.h"
#include "check.h"

/* Feeds s in pieces of `step` bytes (0: all at once); the first non-zero
 * result, or 0 when more is still wanted. */
static int feed(struct xs_http_request *r, const char *s, size_t len, size_t step)
{
    xs_http_request_init(r);
    size_t off = 0;
    do {
        size_t n = step && len - off > step ? step : len - off;
        int rc = xs_http_request_feed(r, s + off, n);
        if (rc)
            return rc;
        off += n;
    } while (off < len);
    return 0;
}

static int feed_str(struct xs_http_request *r, const char *s, size_t step)
{
    return feed(r, s, strlen(s), step);
}

static void test_accepted(void)
{
    struct xs_http_request r;
    static const size_t steps[] = {0, 1, 2, 7};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        CHECK(feed_str(&r, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", steps[i]) ==
              1);
        CHECK(r.method == XS_HTTP_GET && !strcmp(r.path, "/metrics"));
    }
    CHECK(feed_str(&r, "HEAD /status?refresh=1#top HTTP/1.0\r\n\r\n", 3) == 1);
    CHECK(r.method == XS_HTTP_HEAD && !strcmp(r.path, "/status"));
    CHECK(feed_str(&r, "GET /readyz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0) == 1);
    /* Whatever follows the head is not read: one request per connection. */
    CHECK(feed_str(&r, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 0) == 1);
    CHECK(!strcmp(r.path, "/a"));
    CHECK(xs_http_request_feed(&r, "junk", 4) == 1);
}

static void test_incomplete(void)
{
    struct xs_http_request r;
    CHECK(feed_str(&r, "GET /metrics HTTP/1.1\r\nHost: x\r\n", 1) == 0);
    CHECK(feed_str(&r, "GET /met", 0) == 0);
    CHECK(feed_str(&r, "", 0) == 0);
}

static void test_refused(void)
{
    struct xs_http_request r;
    CHECK(feed_str(&r, "POST /metrics HTTP/1.1\r\n\r\n", 0) == 405);
    CHECK(feed_str(&r, "DELETE / HTTP/1.1\r\n\r\n", 1) == 405);
    CHECK(feed_str(&r, "GET / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 0) == 413);
    CHECK(feed_str(&r, "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 0) == 413);
    CHECK(feed_str(&r, "GET http://host/metrics HTTP/1.1\r\n\r\n", 0) == 400);
    CHECK(feed_str(&r, "GET * HTTP/1.1\r\n\r\n", 0) == 400);
    CHECK(feed_str(&r, "\x16\x03\x01\x02\x00", 0) == 400); /* a TLS ClientHello */
    CHECK(feed_str(&r, "GET / XYZ\r\n\r\n", 0) == 400);
    CHECK(feed_str(&r, "GET / HTTP/1.1\r\nBad Header\r\n\r\n", 0) == 400);
    CHECK(feed(&r, "GET /a\0b HTTP/1.1\r\n\r\n", 21, 0) == 400);
    /* After a refusal nothing more is taken. */
    CHECK(xs_http_request_feed(&r, "GET / HTTP/1.1\r\n\r\n", 18) == 400);
    CHECK(r.reason && *r.reason);
}

static void test_bounds(void)
{
    struct xs_http_request r;
    char path[XS_HTTP_PATH_MAX + 40];
    snprintf(path, sizeof path, "GET /%0*d HTTP/1.1\r\n\r\n", XS_HTTP_PATH_MAX - 1, 0);
    CHECK(feed_str(&r, path, 5) == 1 && r.path_len == XS_HTTP_PATH_MAX);
    snprintf(path, sizeof path, "GET /%0*d HTTP/1.1\r\n\r\n", XS_HTTP_PATH_MAX, 0);
    CHECK(feed_str(&r, path, 5) == 414);
    /* A query string does not count against the path. */
    char *q = malloc(XS_HTTP_HEAD_MAX);
    snprintf(q, XS_HTTP_HEAD_MAX, "GET /s?%0*d HTTP/1.1\r\n\r\n", 4000, 0);
    CHECK(feed_str(&r, q, 0) == 1 && !strcmp(r.path, "/s"));

    /* The head's bound, at one byte past it and at it exactly. */
    size_t cap = XS_HTTP_HEAD_MAX + 64;
    char *big = malloc(cap);
    const char *start = "GET / HTTP/1.1\r\nX: ";
    size_t fill = XS_HTTP_HEAD_MAX - strlen(start) - 4 + 1;
    memcpy(big, start, strlen(start));
    memset(big + strlen(start), 'a', fill);
    memcpy(big + strlen(start) + fill, "\r\n\r\n", 4);
    size_t len = strlen(start) + fill + 4;
    CHECK(len == XS_HTTP_HEAD_MAX + 1);
    CHECK(feed(&r, big, len, 0) == 431);
    CHECK(feed(&r, big, len, 1000) == 431);
    CHECK(r.head_bytes <= XS_HTTP_HEAD_MAX);
    memmove(big + strlen(start) + fill - 1, "\r\n\r\n", 4);
    CHECK(feed(&r, big, len - 1, 0) == 1);
    /* A stream of bytes that never ends a head stops at the bound. */
    CHECK(feed_str(&r, "GET / HTTP/1.1\r\n", 0) == 0);
    int rc = 0;
    for (int i = 0; i < 2000 && !rc; i++)
        rc = xs_http_request_feed(&r, "X-A: b\r\n", 8);
    CHECK(rc == 431);
    free(big);
    free(q);
}

int main(void)
{
    test_accepted();
    test_incomplete();
    test_refused();
    test_bounds();
    return check_report("test_admin_http");
}
