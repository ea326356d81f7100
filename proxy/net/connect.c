/* Outgoing TCP: resolve with the loop's resolver (unless the host is an IP
 * literal), then try each address in turn until one accepts, all under one
 * deadline that each attempt gets a share of.
 *
 * The request lives until everything it started has finished: the address
 * lookup, every connect request still in flight (an abandoned attempt's
 * comes back with UV_ECANCELED) and the timer's close. Each holds one
 * reference; whoever drops the last frees. That is what makes cancel safe
 * at any moment: it only marks the request and starts closing things. */
#include "net/connect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "net/addr.h"
#include "net/dns.h"

#define CONNECT_ADDRS_MAX 32

struct xs_connect_req {
    uv_loop_t *loop;
    struct xs_dns_req *lookup; /* the address lookup, while it runs */
    uv_timer_t timer; /* first the start (addresses given), then each attempt's share */
    uv_tcp_t *tcp;    /* the attempt in progress, owned until handed over */
    struct sockaddr_storage addrs[CONNECT_ADDRS_MAX];
    size_t n_addrs;
    size_t next;       /* index of the next address to try */
    uint64_t deadline; /* loop time in ms; 0: none */
    xs_connect_cb cb;
    void *ud;
    int refs;
    int finished; /* the callback ran, or cancel made sure it never will */
    int last_err; /* XS_E* of the last failed attempt */
    int flags;    /* XS_NET_* */
    int skipped;  /* addresses XS_NET_PUBLIC_ONLY ruled out */
};

static void req_unref(struct xs_connect_req *r)
{
    if (--r->refs > 0)
        return;
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

/* Gives up the attempt in progress. A pending connect is called back with
 * UV_ECANCELED, which drops its reference. */
static void abandon_attempt(struct xs_connect_req *r)
{
    if (r->tcp) {
        uv_close((uv_handle_t *)r->tcp, on_tcp_closed);
        r->tcp = NULL;
    }
}

/* Stops everything still running; the callback, if any, is the caller's. */
static void teardown(struct xs_connect_req *r)
{
    r->finished = 1;
    abandon_attempt(r);
    if (r->lookup) {
        /* A cancelled lookup is never called back, so its reference goes now. */
        xs_dns_cancel(r->lookup);
        r->lookup = NULL;
        r->refs--;
    }
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
static void on_attempt_timeout(uv_timer_t *t);

/* Arms the timer for the attempt just started: what is left of the
 * deadline divided among the addresses not yet given up, this one
 * included. */
static void arm_attempt(struct xs_connect_req *r)
{
    if (!r->deadline)
        return;
    uint64_t now = uv_now(r->loop);
    uint64_t left = r->deadline > now ? r->deadline - now : 0;
    uint64_t share = left / (r->n_addrs - r->next + 1);
    uv_timer_start(&r->timer, on_attempt_timeout, share ? share : 1, 0);
}

static void try_next(struct xs_connect_req *r)
{
    while (r->next < r->n_addrs) {
        const struct sockaddr *sa = (const struct sockaddr *)&r->addrs[r->next++];
        if ((r->flags & XS_NET_PUBLIC_ONLY) && xs_net_addr_special(sa)) {
            r->skipped++;
            continue;
        }
        uv_tcp_t *tcp = malloc(sizeof *tcp);
        uv_connect_t *c = malloc(sizeof *c);
        if (!tcp || !c) {
            free(tcp);
            free(c);
            finish(r, XS_ENOMEM, NULL);
            return;
        }
        int rc = uv_tcp_init(r->loop, tcp);
        if (rc != 0) {
            free(tcp);
            free(c);
            finish(r, XS_EIO, NULL);
            return;
        }
        tcp->data = r;
        c->data = r;
        rc = uv_tcp_connect(c, tcp, sa, on_connect);
        if (rc == 0) {
            r->tcp = tcp;
            r->refs++;
            arm_attempt(r);
            return;
        }
        /* Refused on the spot (an address family the host lacks, say):
         * the next address may still work. */
        free(c);
        r->last_err = map_connect_error(rc);
        uv_close((uv_handle_t *)tcp, on_tcp_closed);
    }
    finish(r, r->last_err ? r->last_err : r->skipped ? XS_EPOLICY : XS_EDNS, NULL);
}

static void on_connect(uv_connect_t *c, int status)
{
    struct xs_connect_req *r = c->data;
    uv_tcp_t *tcp = (uv_tcp_t *)c->handle;
    free(c);
    /* An abandoned attempt was closed, so it can only come back cancelled. */
    if (r->finished || status == UV_ECANCELED || tcp != r->tcp) {
        req_unref(r);
        return;
    }
    r->tcp = NULL;
    if (status == 0) {
        tcp->data = NULL;
        uv_tcp_nodelay(tcp, 1);
        finish(r, 0, tcp);
    } else {
        r->last_err = map_connect_error(status);
        uv_close((uv_handle_t *)tcp, on_tcp_closed);
        try_next(r);
    }
    req_unref(r);
}

/* The attempt in progress used up its share: move on while addresses and
 * time are left. */
static void on_attempt_timeout(uv_timer_t *t)
{
    struct xs_connect_req *r = t->data;
    abandon_attempt(r);
    r->last_err = XS_ETIMEOUT;
    if (r->next < r->n_addrs && uv_now(r->loop) < r->deadline)
        try_next(r);
    else
        finish(r, XS_ETIMEOUT, NULL);
}

/* The whole deadline passed while the name was still being resolved. */
static void on_deadline(uv_timer_t *t)
{
    finish(t->data, XS_ETIMEOUT, NULL);
}

static void on_start(uv_timer_t *t)
{
    try_next(t->data);
}

/* The resolver's status goes to the caller as it is (XS_ENOTFOUND,
 * XS_ETIMEOUT, XS_EDNS), so it can tell "no such name" from "no answer".
 * The addresses are copied in the resolver's order; try_next skips those
 * the flags rule out. */
static void on_resolved(void *ud, int status, const struct sockaddr_storage *addrs, size_t n)
{
    struct xs_connect_req *r = ud;
    r->lookup = NULL;
    if (status != 0) {
        finish(r, status, NULL);
    } else {
        r->n_addrs = n < CONNECT_ADDRS_MAX ? n : CONNECT_ADDRS_MAX;
        memcpy(r->addrs, addrs, r->n_addrs * sizeof *addrs);
        if (r->n_addrs == 0)
            finish(r, XS_ENOTFOUND, NULL);
        else
            try_next(r);
    }
    req_unref(r);
}

static struct xs_connect_req *req_new(uv_loop_t *loop, double timeout_s, xs_connect_cb cb,
                                      void *ud)
{
    struct xs_connect_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->loop = loop;
    r->cb = cb;
    r->ud = ud;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->refs = 1; /* the timer, released in its close callback */
    if (timeout_s > 0) {
        double ms = timeout_s * 1000.0;
        r->deadline = uv_now(loop) + (ms > 1e9 ? (uint64_t)1e9 : (uint64_t)ms + 1);
    }
    return r;
}

/* Starts trying r->addrs from the loop, so the callback cannot run before
 * the caller has its request pointer. */
static int start_addrs(struct xs_connect_req *r, struct xs_connect_req **out)
{
    uv_timer_start(&r->timer, on_start, 0, 0);
    if (out)
        *out = r;
    return 0;
}

int xs_net_connect_addrs(uv_loop_t *loop, const struct sockaddr_storage *addrs, size_t n,
                         double timeout_s, xs_connect_cb cb, void *ud,
                         struct xs_connect_req **out)
{
    if (out)
        *out = NULL;
    if (!addrs || n == 0 || n > CONNECT_ADDRS_MAX || !cb)
        return XS_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (addrs[i].ss_family != AF_INET && addrs[i].ss_family != AF_INET6)
            return XS_EINVAL;
    struct xs_connect_req *r = req_new(loop, timeout_s, cb, ud);
    if (!r)
        return XS_ENOMEM;
    memcpy(r->addrs, addrs, n * sizeof *addrs);
    r->n_addrs = n;
    return start_addrs(r, out);
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
    struct xs_connect_req *r = req_new(loop, timeout_s, cb, ud);
    if (!r)
        return XS_ENOMEM;
    r->flags = flags;
    /* A literal needs no lookup. */
    if (xs_net_addr_parse(host, port, &r->addrs[0]) == 0) {
        r->n_addrs = 1;
        return start_addrs(r, out);
    }
    if (r->deadline)
        uv_timer_start(&r->timer, on_deadline, r->deadline - uv_now(loop), 0);

    r->refs++; /* the lookup, dropped by on_resolved or by teardown's cancel */
    int rc = xs_dns_addr(loop, host, port, on_resolved, r, &r->lookup);
    if (rc != 0) {
        r->refs--;
        r->finished = 1;
        uv_close((uv_handle_t *)&r->timer, on_timer_closed);
        return rc;
    }
    if (out)
        *out = r;
    return 0;
}

void xs_net_connect_cancel(struct xs_connect_req *req)
{
    if (req && !req->finished)
        teardown(req);
}
