#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Wraps the sender's done callback so that every failed delivery is logged
 * once, here, with the event it belonged to. */
struct route_ctx {
    struct xs_router *r;
    xs_done_cb done;
    void *ud;
    unsigned long long serial;
    enum xs_side_id origin;
};

static const char *side_name(enum xs_side_id s)
{
    return s == XS_SIDE_XMPP ? "xmpp" : "sip";
}

void xs_router_init(struct xs_router *r, struct xs_policy *policy)
{
    *r = (struct xs_router){0};
    xs_router_set_policy(r, policy);
}

void xs_router_set_policy(struct xs_router *r, struct xs_policy *policy)
{
    r->policy = policy;
    r->log_bodies = xs_policy_config(policy)->log_bodies;
}

static void no_outcome(void *ud, enum xs_cond cond, const char *text)
{
    (void)ud;
    (void)cond;
    (void)text;
}

static void on_delivered(void *ud, enum xs_cond cond, const char *text)
{
    struct route_ctx *c = ud;
    if (cond != XS_COND_NONE) {
        c->r->bounced++;
        char q[256];
        xs_log(XS_LOG_WARN, "router.bounce", "event=%llu origin=%s cond=%s text=%s", c->serial,
               side_name(c->origin), xs_cond_name(cond), xs_log_quote(q, sizeof q, text));
    }
    c->r->in_flight--;
    c->done(c->ud, cond, text);
    free(c);
}

/* The policy approved a subscription request itself (on_subscribe said
 * "approve"): the watcher's side hears "subscribed" from the presentity at
 * once, in its own address forms (from/to as the request arrived). */
static void approve_now(struct xs_router *r, enum xs_side_id origin, const char *watcher,
                        const char *presentity)
{
    struct xs_event *ev =
        xs_event_new(XS_EVENT_SUBSCRIPTION, origin == XS_SIDE_XMPP ? XS_SIDE_SIP : XS_SIDE_XMPP);
    const char *slash = strchr(watcher, '/');
    if (xs_event_setn(&ev->from, presentity, strcspn(presentity, "/")) ||
        xs_event_setn(&ev->to, watcher, slash ? (size_t)(slash - watcher) : strlen(watcher)) ||
        xs_event_set(&ev->type, "subscribed")) {
        xs_event_free(ev);
        return;
    }
    struct route_ctx *c = malloc(sizeof *c);
    if (!c) {
        xs_event_free(ev);
        return;
    }
    *c = (struct route_ctx){r, no_outcome, NULL, (unsigned long long)ev->serial, ev->origin};
    r->in_flight++;
    char qf[256], qt[256];
    xs_log(XS_LOG_INFO, "router.approved", "event=%llu from=%s to=%s",
           (unsigned long long)ev->serial, xs_log_quote(qf, sizeof qf, ev->from),
           xs_log_quote(qt, sizeof qt, ev->to));
    struct xs_side *s = &r->sides[origin];
    s->deliver(s->impl, ev, on_delivered, c);
}

void xs_router_submit(void *router, struct xs_event *ev, xs_done_cb done, void *done_ud)
{
    struct xs_router *r = router;
    char qf[256], qt[256], qx[256];
    XS_LOG(XS_LOG_DEBUG, "router.in", "event=%llu origin=%s from=%s to=%s",
           (unsigned long long)ev->serial, side_name(ev->origin),
           xs_log_quote(qf, sizeof qf, ev->from), xs_log_quote(qt, sizeof qt, ev->to));
    enum xs_side_id origin = ev->origin;
    char *text = NULL;
    enum xs_cond cond;
    /* A subscription request keeps its addresses as they arrived, in case
     * the policy approves it itself (approve_now). */
    int request = ev->kind == XS_EVENT_SUBSCRIPTION && ev->type && !strcmp(ev->type, "subscribe");
    char *req_from = request && ev->from ? strdup(ev->from) : NULL;
    char *req_to = request && ev->to ? strdup(ev->to) : NULL;
    /* A body over gateway.max_body is the sender's, not the policy's: it is
     * refused here with policy-violation (RFC 7572 §6 uses that condition
     * for what the gateway will not carry), before any hook runs. */
    size_t max_body = xs_policy_config(r->policy)->max_body;
    if (ev->body && strlen(ev->body) > max_body) {
        char why[64];
        snprintf(why, sizeof why, "message body exceeds %zu bytes", max_body);
        text = strdup(why);
        cond = XS_COND_POLICY_VIOLATION;
    } else {
        cond = xs_policy_route(r->policy, ev, &text);
    }
    if (cond != XS_COND_NONE) {
        r->refused++;
        xs_log(XS_LOG_WARN, "router.refused", "event=%llu origin=%s from=%s to=%s cond=%s text=%s",
               (unsigned long long)ev->serial, side_name(origin),
               xs_log_quote(qf, sizeof qf, ev->from), xs_log_quote(qt, sizeof qt, ev->to),
               xs_cond_name(cond), xs_log_quote(qx, sizeof qx, text));
        xs_event_free(ev);
        free(req_from);
        free(req_to);
        done(done_ud, cond, text);
        free(text);
        return;
    }
    if (request && ev->action == XS_SUB_PENDING) {
        /* The policy holds the request: the presentity is not asked, and
         * the watcher's side keeps it pending. */
        xs_log(XS_LOG_INFO, "router.pending", "event=%llu origin=%s from=%s to=%s",
               (unsigned long long)ev->serial, side_name(origin),
               xs_log_quote(qf, sizeof qf, req_from), xs_log_quote(qt, sizeof qt, req_to));
        xs_event_free(ev);
        free(req_from);
        free(req_to);
        done(done_ud, XS_COND_NONE, NULL);
        return;
    }
    if (request && ev->action == XS_SUB_APPROVE && req_from && req_to)
        approve_now(r, origin, req_from, req_to);
    free(req_from);
    free(req_to);
    struct route_ctx *c = malloc(sizeof *c);
    if (!c) {
        xs_event_free(ev);
        done(done_ud, XS_COND_RESOURCE_CONSTRAINT, "out of memory");
        return;
    }
    *c = (struct route_ctx){r, done, done_ud, (unsigned long long)ev->serial, origin};
    r->routed++;
    r->in_flight++;
    struct xs_side *target = &r->sides[origin == XS_SIDE_XMPP ? XS_SIDE_SIP : XS_SIDE_XMPP];
    if (r->log_bodies)
        xs_log(XS_LOG_INFO, "router.body", "event=%llu body=%s", (unsigned long long)ev->serial,
               xs_log_quote(qx, sizeof qx, ev->body));
    XS_LOG(XS_LOG_DEBUG, "router.out", "event=%llu from=%s to=%s", (unsigned long long)ev->serial,
           xs_log_quote(qf, sizeof qf, ev->from), xs_log_quote(qt, sizeof qt, ev->to));
    target->deliver(target->impl, ev, on_delivered, c);
}

void xs_router_sip_pressure(void *router, int high)
{
    struct xs_router *r = router;
    struct xs_side *x = &r->sides[XS_SIDE_XMPP];
    if (r->hold[XS_SIDE_XMPP] && x->impl)
        r->hold[XS_SIDE_XMPP](x->impl, high);
}
