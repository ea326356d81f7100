#include "admin/http_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "net/addr.h"

enum conn_state { CONN_READING, CONN_HANDLING, CONN_WRITING, CONN_DRAINING, CONN_CLOSING };

struct xs_http_conn {
    struct xs_http_conn *next, *prev;
    struct xs_http_server *s;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t sd;
    enum conn_state state;
    enum xs_http_method method;
    int handles; /* tcp and timer: freed when both closed */
    struct xs_http_request req;
    char in[1024];
    char *out;
};

struct xs_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct xs_http_cbs cbs;
    void *ud;
    struct xs_http_conn *conns;
    size_t n_conns;
    int closing;
    int handles;
    void (*done)(void *ud);
    void *done_ud;
};

static void server_release(struct xs_http_server *s)
{
    if (--s->handles > 0)
        return;
    void (*done)(void *) = s->done;
    void *ud = s->done_ud;
    free(s);
    if (done)
        done(ud);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct xs_http_conn *c = h->data;
    if (--c->handles > 0)
        return;
    struct xs_http_server *s = c->s;
    free(c->out);
    free(c);
    server_release(s);
}

static void conn_close(struct xs_http_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    struct xs_http_server *s = c->s;
    int unanswered = c->state == CONN_HANDLING;
    c->state = CONN_CLOSING;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    if (unanswered && s->cbs.gone)
        s->cbs.gone(s->ud, c);
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void discard_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct xs_http_conn *c = h->data;
    *buf = uv_buf_init(c->in, sizeof c->in);
}

/* After the response: what the client still sends is read and dropped
 * until it closes (or the timer ends it), so that closing with unread bytes
 * does not reset the connection under a response it has not read yet. */
static void on_drain_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n < 0)
        conn_close(st->data);
}

static void on_shutdown(uv_shutdown_t *sd, int status)
{
    struct xs_http_conn *c = sd->data;
    if (c->state != CONN_DRAINING)
        return;
    if (status != 0 || uv_read_start((uv_stream_t *)&c->tcp, discard_alloc, on_drain_read) != 0)
        conn_close(c);
}

static void on_written(uv_write_t *wr, int status)
{
    struct xs_http_conn *c = wr->data;
    free(c->out);
    c->out = NULL;
    if (c->state != CONN_WRITING)
        return;
    c->state = CONN_DRAINING;
    c->sd.data = c;
    if (status != 0 || uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

void xs_http_respond(struct xs_http_conn *c, int status, const char *content_type,
                     const char *body, size_t len)
{
    if (c->state != CONN_HANDLING && c->state != CONN_READING)
        return;
    if (len > XS_HTTP_BODY_MAX) {
        status = 500;
        body = "response too large\n";
        len = strlen(body);
        content_type = NULL;
    }
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                      "Connection: close\r\n\r\n",
                      status, status_text(status),
                      content_type ? content_type : "text/plain; charset=utf-8", len);
    size_t blen = c->method == XS_HTTP_HEAD ? 0 : len;
    c->out = malloc((size_t)hn + blen);
    if (!c->out) {
        conn_close(c);
        return;
    }
    memcpy(c->out, head, (size_t)hn);
    if (blen)
        memcpy(c->out + hn, body, blen);
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->state = CONN_WRITING;
    uv_buf_t b = uv_buf_init(c->out, (unsigned)((size_t)hn + blen));
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(c->out);
        c->out = NULL;
        conn_close(c);
    }
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct xs_http_conn *c = st->data;
    if (n == 0)
        return;
    if (n < 0 || c->state != CONN_READING) {
        conn_close(c);
        return;
    }
    int rc = xs_http_request_feed(&c->req, buf->base, (size_t)n);
    if (rc == 0)
        return;
    uv_read_stop(st);
    if (rc != 1) {
        char body[128];
        int bn = snprintf(body, sizeof body, "%s\n", c->req.reason ? c->req.reason : "bad request");
        xs_log(XS_LOG_DEBUG, "admin.request", "result=refused status=%d reason=\"%s\"", rc,
               c->req.reason ? c->req.reason : "");
        c->method = XS_HTTP_GET;
        xs_http_respond(c, rc, NULL, body, (size_t)bn);
        return;
    }
    c->method = c->req.method;
    c->state = CONN_HANDLING;
    c->s->cbs.request(c->s->ud, c, c->req.method, c->req.path);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct xs_http_server *s = l->data;
    if (status != 0 || s->closing)
        return;
    struct xs_http_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->s = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->handles = 2;
    s->handles++;
    xs_http_request_init(&c->req);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 || s->n_conns > XS_HTTP_CONNS_MAX) {
        if (s->n_conns > XS_HTTP_CONNS_MAX)
            xs_log(XS_LOG_WARN, "admin.refused", "reason=\"%d connections open\"",
                   XS_HTTP_CONNS_MAX);
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, XS_HTTP_CONN_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, discard_alloc, on_read) != 0)
        conn_close(c);
}

static void on_listener_closed(uv_handle_t *h)
{
    server_release(h->data);
}

/* The listener is not the start of the server struct, so the struct is
 * freed through the handle's data, not by passing free as the callback. */
static void on_failed_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

int xs_http_server_start(uv_loop_t *loop, const char *host, int port,
                         const struct xs_http_cbs *cbs, void *ud, struct xs_http_server **out,
                         char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    if (xs_net_addr_parse(host, port, &sa) != 0) {
        snprintf(err, errlen, "'%s' is not an IP address", host);
        return XS_EINVAL;
    }
    struct xs_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return XS_ENOMEM;
    }
    s->loop = loop;
    s->cbs = *cbs;
    s->ud = ud;
    s->handles = 1;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 64, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "%s", uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, on_failed_listener_closed);
        return XS_EIO;
    }
    *out = s;
    return 0;
}

int xs_http_server_port(const struct xs_http_server *s)
{
    struct sockaddr_storage sa;
    int len = sizeof sa;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    return ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                          : ((struct sockaddr_in *)&sa)->sin_port);
}

void xs_http_server_close(struct xs_http_server *s, void (*done)(void *ud), void *ud)
{
    s->closing = 1;
    s->done = done;
    s->done_ud = ud;
    while (s->conns)
        conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
