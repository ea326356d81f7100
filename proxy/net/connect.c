/* Outgoing TCP: resolve with uv_getaddrinfo, then try each address in the
 * order the resolver gave until one accepts, all under one deadline.
 *
 * The request lives until three things have finished: the address lookup,
 * the connect request in flight, and the deadline timer's close. Each holds
 * one reference; whoever drops the last frees. That is what makes cancel safe
 * at any moment: it only marks the request and starts closing things. */
#include "net/dns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

struct xs_connect_req {
    uv_loop_t *loop;
    uv_getaddrinfo_t gai;
    uv_connect_t conn;
    uv_timer_t timer;
    uv_tcp_t *tcp; /* the attempt in progress, owned until handed over */
    struct addrinfo *addrs;
    struct addrinfo *next;
    xs_connect_cb cb;
    void *ud;
    int refs;
    int finished; /* the callback ran, or cancel made sure it never will */
    int last_err; /* libuv code of the last failed attempt */
    int flags;    /* XS_NET_* */
    int skipped;  /* addresses XS_NET_PUBLIC_ONLY ruled out */
};

static void req_unref(struct xs_connect_req *r)
{
    if (--r->refs > 0)
        return;
    if (r->addrs)
        uv_freeaddrinfo(r->addrs);
    free(r);
}

static void on_tcp_closed(uv_handle_t *h)
{
    free(h);
}

static void on_timer_closed(uv_handle_t *h)
{
    req_unref(h->data);
}

static int map_connect_error(int uv_err)
{
    if (uv_err == UV_ECONNREFUSED)
        return XS_EREFUSED;
    if (uv_err == UV_ETIMEDOUT)
        return XS_ETIMEOUT;
    return XS_EIO;
}

/* Stops everything still running; the callback, if any, is the caller's. */
static void teardown(struct xs_connect_req *r)
{
    r->finished = 1;
    if (r->tcp) {
        /* A pending connect is called back with UV_ECANCELED, which drops
         * its reference. */
        uv_close((uv_handle_t *)r->tcp, on_tcp_closed);
        r->tcp = NULL;
    }
    uv_cancel((uv_req_t *)&r->gai);
    if (!uv_is_closing((uv_handle_t *)&r->timer))
        uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

static void finish(struct xs_connect_req *r, int status, uv_tcp_t *tcp)
{
    if (r->finished)
        return;
    teardown(r);
    r->cb(r->ud, status, tcp);
}

static void on_connect(uv_connect_t *c, int status);

static void try_next(struct xs_connect_req *r)
{
    while (r->next) {
        struct addrinfo *ai = r->next;
        r->next = ai->ai_next;
        if ((r->flags & XS_NET_PUBLIC_ONLY) && xs_net_addr_special(ai->ai_addr)) {
            r->skipped++;
            continue;
        }
        uv_tcp_t *tcp = malloc(sizeof *tcp);
        if (!tcp) {
            finish(r, XS_ENOMEM, NULL);
            return;
        }
        int rc = uv_tcp_init(r->loop, tcp);
        if (rc != 0) {
            free(tcp);
            finish(r, XS_EIO, NULL);
            return;
        }
        tcp->data = r;
        r->conn.data = r;
        rc = uv_tcp_connect(&r->conn, tcp, ai->ai_addr, on_connect);
        if (rc == 0) {
            r->tcp = tcp;
            r->refs++;
            return;
        }
        /* Refused on the spot (an address family the host lacks, say):
         * the next address may still work. */
        r->last_err = rc;
        uv_close((uv_handle_t *)tcp, on_tcp_closed);
    }
    finish(r,
           r->last_err ? map_connect_error(r->last_err)
           : r->skipped ? XS_EPOLICY
                        : XS_EDNS,
           NULL);
}

static void on_connect(uv_connect_t *c, int status)
{
    struct xs_connect_req *r = c->data;
    uv_tcp_t *tcp = (uv_tcp_t *)c->handle;
    if (r->finished || status == UV_ECANCELED) {
        req_unref(r);
        return;
    }
    if (status == 0) {
        r->tcp = NULL;
        tcp->data = NULL;
        uv_tcp_nodelay(tcp, 1);
        finish(r, 0, tcp);
    } else {
        r->last_err = status;
        r->tcp = NULL;
        uv_close((uv_handle_t *)tcp, on_tcp_closed);
        try_next(r);
    }
    req_unref(r);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    struct xs_connect_req *r = g->data;
    r->addrs = res;
    if (!r->finished) {
        if (status < 0 || !res) {
            finish(r, XS_EDNS, NULL);
        } else {
            r->next = res;
            try_next(r);
        }
    }
    req_unref(r);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, XS_ETIMEOUT, NULL);
}

int xs_net_connect(uv_loop_t *loop, const char *host, uint16_t port, double timeout_s,
                   xs_connect_cb cb, void *ud, struct xs_connect_req **out)
{
    return xs_net_connect_flags(loop, host, port, timeout_s, 0, cb, ud, out);
}

int xs_net_connect_flags(uv_loop_t *loop, const char *host, uint16_t port, double timeout_s,
                         int flags, xs_connect_cb cb, void *ud, struct xs_connect_req **out)
{
    if (out)
        *out = NULL;
    if (!host || !*host || strlen(host) > 255 || !cb || port == 0)
        return XS_EINVAL;
    struct xs_connect_req *r = calloc(1, sizeof *r);
    if (!r)
        return XS_ENOMEM;
    r->loop = loop;
    r->cb = cb;
    r->ud = ud;
    r->flags = flags;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->refs = 1; /* the timer, released in its close callback */
    if (timeout_s > 0) {
        double ms = timeout_s * 1000.0;
        uv_timer_start(&r->timer, on_timeout, ms > 1e9 ? (uint64_t)1e9 : (uint64_t)ms + 1, 0);
    }

    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    r->gai.data = r;
    int rc = uv_getaddrinfo(loop, &r->gai, on_resolved, host, service, &hints);
    if (rc != 0) {
        r->finished = 1;
        uv_close((uv_handle_t *)&r->timer, on_timer_closed);
        return XS_EDNS;
    }
    r->refs++;
    if (out)
        *out = r;
    return 0;
}

void xs_net_connect_cancel(struct xs_connect_req *req)
{
    if (req && !req->finished)
        teardown(req);
}
