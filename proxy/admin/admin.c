#include "admin/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/http_server.h"
#include "admin/status.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "gateway.h"
#include "policy/policy.h"
#include "sip/sip.h"

_Static_assert(XS_HTTP_BODY_MAX >= XS_METRICS_RENDER_MAX,
               "the largest metrics exposition must fit in a response");

struct xs_admin {
    struct xs_gateway *gw;
    struct xs_http_server *http;
    struct xs_next_hop_check hop;
    /* /readyz requests waiting for the next hop's answer (at most one per
     * connection the server allows). */
    struct xs_http_conn *waiting[XS_HTTP_CONNS_MAX];
    size_t n_waiting;
    uv_timer_t wait_timer;
    int closing;
    void (*done)(void *ud);
    void *done_ud;
};

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void text(struct xs_http_conn *c, int status, const char *body)
{
    xs_http_respond(c, status, NULL, body, strlen(body));
}

/* Not ready: why, in one line; NULL when ready. */
static const char *not_ready(struct xs_admin *a, char *buf, size_t n)
{
    if (xs_gateway_info(a->gw)->draining)
        return "draining";
    const char *hs = xs_status_hop_state(a->gw, &a->hop);
    /* An answer is only as good as it is recent: a question out for longer
     * than a ready check waits means the next hop stopped answering. */
    double silent = now_unix() - a->hop.checked_at;
    if (a->hop.in_flight && a->hop.status &&
        silent > XS_ADMIN_HOP_FRESH_S + XS_ADMIN_READY_WAIT_MS / 1000.0) {
        snprintf(buf, n, "the SIP next hop has not answered for %.0f s", silent);
        return buf;
    }
    if (!strcmp(hs, "unchecked"))
        return "the SIP next hop has not answered yet";
    if (!strcmp(hs, "unreachable")) {
        snprintf(buf, n, "the SIP next hop does not answer (%d%s%s)", a->hop.status,
                 *a->hop.reason ? " " : "", a->hop.reason);
        return buf;
    }
    return NULL;
}

static void answer_ready(struct xs_admin *a, struct xs_http_conn *c)
{
    char why[200], body[220];
    const char *r = not_ready(a, why, sizeof why);
    if (!r) {
        text(c, 200, "ready\n");
        return;
    }
    snprintf(body, sizeof body, "not ready: %s\n", r);
    text(c, 503, body);
}

static void answer_waiting(struct xs_admin *a)
{
    uv_timer_stop(&a->wait_timer);
    size_t n = a->n_waiting;
    a->n_waiting = 0;
    for (size_t i = 0; i < n; i++)
        answer_ready(a, a->waiting[i]);
}

static void on_ping(void *ud, int status, const char *reason, const struct xs_tls_peer *peer,
                    const char *tls_desc)
{
    (void)peer;
    (void)tls_desc;
    struct xs_admin *a = ud;
    a->hop.in_flight = 0;
    a->hop.status = status;
    a->hop.checked_at = now_unix();
    snprintf(a->hop.reason, sizeof a->hop.reason, "%s", status >= 300 && reason ? reason : "");
    if (!a->closing)
        answer_waiting(a);
}

static void on_wait_timeout(uv_timer_t *t)
{
    answer_waiting(t->data);
}

/* Asks the next hop again (an OPTIONS) unless an answer is fresh or a
 * question is out; 1 when the caller should wait for it. */
static int refresh_hop(struct xs_admin *a)
{
    const struct xs_config *cfg = xs_policy_config(xs_gateway_policy(a->gw));
    if (!cfg->sip_next_hop.host || xs_gateway_info(a->gw)->draining)
        return 0;
    if (a->hop.in_flight)
        return 1;
    if (a->hop.status && now_unix() - a->hop.checked_at < XS_ADMIN_HOP_FRESH_S)
        return 0;
    if (xs_sip_ping(xs_gateway_sip(a->gw), on_ping, a) != 0)
        return 0;
    a->hop.in_flight = 1;
    return 1;
}

static void readyz(struct xs_admin *a, struct xs_http_conn *c)
{
    if (refresh_hop(a) && a->n_waiting < XS_HTTP_CONNS_MAX) {
        a->waiting[a->n_waiting++] = c;
        if (a->n_waiting == 1)
            uv_timer_start(&a->wait_timer, on_wait_timeout, XS_ADMIN_READY_WAIT_MS, 0);
        return;
    }
    answer_ready(a, c);
}

static void rendered(struct xs_http_conn *c, int rc, struct xs_buf *b, const char *type)
{
    if (rc == 0)
        xs_http_respond(c, 200, type, b->data, b->len);
    else
        text(c, 500, rc == XS_ELIMIT ? "too large to render\n" : "cannot render\n");
    xs_buf_free(b);
}

static void on_request(void *ud, struct xs_http_conn *c, enum xs_http_method m, const char *path)
{
    (void)m;
    struct xs_admin *a = ud;
    struct xs_buf b;
    xs_buf_init(&b, XS_HTTP_BODY_MAX);
    if (!strcmp(path, "/healthz")) {
        text(c, 200, "ok\n");
    } else if (!strcmp(path, "/readyz")) {
        readyz(a, c);
    } else if (!strcmp(path, "/metrics")) {
        rendered(c, xs_metrics_render(&b), &b, "text/plain; version=0.0.4; charset=utf-8");
    } else if (!strcmp(path, "/status.json")) {
        refresh_hop(a);
        rendered(c, xs_status_json(a->gw, &a->hop, now_unix(), &b), &b, "application/json");
    } else if (!strcmp(path, "/status") || !strcmp(path, "/")) {
        refresh_hop(a);
        rendered(c, xs_status_html(a->gw, &a->hop, now_unix(), &b), &b,
                 "text/html; charset=utf-8");
    } else {
        text(c, 404, "not found: /metrics, /status, /status.json, /healthz, /readyz\n");
    }
    xs_buf_free(&b);
}

static void on_gone(void *ud, struct xs_http_conn *c)
{
    struct xs_admin *a = ud;
    for (size_t i = 0; i < a->n_waiting; i++) {
        if (a->waiting[i] == c) {
            a->waiting[i] = a->waiting[--a->n_waiting];
            return;
        }
    }
}

int xs_admin_start(uv_loop_t *loop, struct xs_gateway *gw, const char *host, int port,
                   struct xs_admin **out)
{
    struct xs_admin *a = calloc(1, sizeof *a);
    if (!a)
        return XS_ENOMEM;
    a->gw = gw;
    static const struct xs_http_cbs cbs = {on_request, on_gone};
    char err[256];
    int rc = xs_http_server_start(loop, host, port, &cbs, a, &a->http, err, sizeof err);
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "admin.listen", "addr=%s port=%d result=failed reason=\"%s\"", host,
               port, err);
        free(a);
        return rc;
    }
    uv_timer_init(loop, &a->wait_timer);
    a->wait_timer.data = a;
    xs_log(XS_LOG_INFO, "admin.listen", "addr=%s port=%d result=listening",
           host, xs_http_server_port(a->http));
    *out = a;
    return 0;
}

int xs_admin_port(const struct xs_admin *a)
{
    return xs_http_server_port(a->http);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct xs_admin *a = h->data;
    void (*done)(void *) = a->done;
    void *ud = a->done_ud;
    free(a);
    if (done)
        done(ud);
}

static void on_http_closed(void *ud)
{
    struct xs_admin *a = ud;
    uv_close((uv_handle_t *)&a->wait_timer, on_timer_closed);
}

void xs_admin_close(struct xs_admin *a, void (*done)(void *ud), void *ud)
{
    a->closing = 1;
    a->done = done;
    a->done_ud = ud;
    uv_timer_stop(&a->wait_timer);
    xs_http_server_close(a->http, on_http_closed, a);
}
