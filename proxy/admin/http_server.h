/* The admin listener's HTTP/1.1 server on the gateway's loop: one request
 * per connection (Connection: close), GET and HEAD only, every connection
 * bounded in count, bytes and time. What to answer is the handler's
 * business: it may answer at once or later (xs_http_respond), and hears of
 * a connection that went away unanswered through `gone`. */
#ifndef XS_ADMIN_HTTP_SERVER_H
#define XS_ADMIN_HTTP_SERVER_H

#include <stddef.h>

#include <uv.h>

#include "admin/http_request.h"

#define XS_HTTP_CONNS_MAX 32    /* a newer connection over it is closed at once */
#define XS_HTTP_CONN_TIMEOUT_MS 10000 /* from accept to the response written */
/* The largest response body: room for the largest metrics exposition
 * (XS_METRICS_RENDER_MAX). */
#define XS_HTTP_BODY_MAX (32u << 20)

struct xs_http_server;
struct xs_http_conn;

struct xs_http_cbs {
    /* A complete, acceptable request: path borrowed for the call. */
    void (*request)(void *ud, struct xs_http_conn *c, enum xs_http_method m, const char *path);
    /* A connection handed to `request` closes before it was answered
     * (peer gone, timeout, server closing): c must not be used after. */
    void (*gone)(void *ud, struct xs_http_conn *c);
};

/* Listens on host:port (port 0: any, see xs_http_server_port). On failure
 * returns a negative XS_E* with the reason in err; nothing is left open. */
int xs_http_server_start(uv_loop_t *loop, const char *host, int port,
                         const struct xs_http_cbs *cbs, void *ud, struct xs_http_server **out,
                         char *err, size_t errlen);
int xs_http_server_port(const struct xs_http_server *s);

/* Answers c (once; body copied, not sent for HEAD) and closes it after the
 * write. content_type NULL for text/plain. A body over XS_HTTP_BODY_MAX is
 * answered 500 instead. */
void xs_http_respond(struct xs_http_conn *c, int status, const char *content_type,
                     const char *body, size_t len);

/* Stops listening and closes every connection (`gone` for those not
 * answered); done runs when all handles are released, then s is freed. */
void xs_http_server_close(struct xs_http_server *s, void (*done)(void *ud), void *ud);

#endif
