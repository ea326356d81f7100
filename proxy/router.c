#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"

/* Wraps the sender's done callback so that every failed delivery is logged
 * once, here, with the event it belonged to. */
struct route_ctx {
    struct xs_router *r;
    xs_done_cb done;
    void *ud;
    unsigned long long serial;
    enum xs_side_id origin;
    enum xs_event_kind kind;
    unsigned partner; /* metrics slot */
    uint64_t arrived;
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

static void decide_held(struct xs_router *r);

void xs_router_set_policy(struct xs_router *r, struct xs_policy *policy)
{
    r->policy = policy;
    r->log_bodies = xs_policy_config(policy)->log_bodies;
    decide_held(r);
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
    xs_metrics_outcome(c->kind, c->origin, c->partner,
                       cond == XS_COND_NONE ? XS_METRICS_DELIVERED : XS_METRICS_BOUNCED, cond,
                       c->arrived);
    if (cond == XS_COND_NONE)
        c->r->delivered++;
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

/* The policy answered a subscription request itself: on_subscribe said
 * "approve" (type "subscribed"), or a held request was refused by a later
 * generation ("unsubscribed"). The watcher's side hears it from the
 * presentity at once, in its own address forms (from/to as the request
 * arrived). */
static void answer_watcher(struct xs_router *r, enum xs_side_id origin, const char *watcher,
                           const char *presentity, const char *type)
{
    struct xs_event *ev =
        xs_event_new(XS_EVENT_SUBSCRIPTION, origin == XS_SIDE_XMPP ? XS_SIDE_SIP : XS_SIDE_XMPP);
    const char *slash = strchr(watcher, '/');
    if (xs_event_setn(&ev->from, presentity, strcspn(presentity, "/")) ||
        xs_event_setn(&ev->to, watcher, slash ? (size_t)(slash - watcher) : strlen(watcher)) ||
        xs_event_set(&ev->type, type)) {
        xs_event_free(ev);
        return;
    }
    struct route_ctx *c = malloc(sizeof *c);
    if (!c) {
        xs_event_free(ev);
        return;
    }
    /* The policy's own answer is no event of the watcher's: it is not
     * counted (the kind is SUBSCRIPTION, which metrics ignore). */
    *c = (struct route_ctx){r,          no_outcome, NULL, (unsigned long long)ev->serial,
                            ev->origin, ev->kind,   0,    0};
    r->in_flight++;
    char qf[256], qt[256];
    xs_log(XS_LOG_INFO, "router.answered", "event=%llu type=%s from=%s to=%s",
           (unsigned long long)ev->serial, type, xs_log_quote(qf, sizeof qf, ev->from),
           xs_log_quote(qt, sizeof qt, ev->to));
    struct xs_side *s = &r->sides[origin];
    s->deliver(s->impl, ev, on_delivered, c);
}

/* The policy holds a subscription request (on_subscribe said "pending"):
 * the presentity is not asked, the watcher's side keeps it pending, and
 * each new policy generation decides it again (xs_router_set_policy). One
 * held request per watcher and presentity, the newest; at most
 * XS_ROUTER_HELD_MAX in all. Takes orig. */
static enum xs_cond hold(struct xs_router *r, struct xs_event *orig)
{
    if (!orig)
        return XS_COND_RESOURCE_CONSTRAINT;
    for (struct xs_router_held **p = &r->held; *p; p = &(*p)->next) {
        struct xs_event *h = (*p)->ev;
        if (h->origin == orig->origin && !strcmp(h->from, orig->from) && !strcmp(h->to, orig->to)) {
            xs_event_free(h);
            (*p)->ev = orig;
            return XS_COND_NONE;
        }
    }
    struct xs_router_held *h = r->n_held < XS_ROUTER_HELD_MAX ? malloc(sizeof *h) : NULL;
    if (!h) {
        xs_event_free(orig);
        return XS_COND_RESOURCE_CONSTRAINT;
    }
    char qf[256], qt[256];
    xs_log(XS_LOG_INFO, "router.pending", "event=%llu origin=%s from=%s to=%s held=%zu",
           (unsigned long long)orig->serial, side_name(orig->origin),
           xs_log_quote(qf, sizeof qf, orig->from), xs_log_quote(qt, sizeof qt, orig->to),
           r->n_held + 1);
    h->ev = orig;
    h->next = r->held;
    r->held = h;
    r->n_held++;
    return XS_COND_NONE;
}

/* What a held request's new decision came to: a refusal is told to the
 * watcher as "unsubscribed"; anything else went its way in submit. */
struct held_ctx {
    struct xs_router *r;
    enum xs_side_id origin;
    char *watcher, *presentity;
};

static void on_held_decided(void *ud, enum xs_cond cond, const char *text)
{
    struct held_ctx *c = ud;
    (void)text;
    if (cond != XS_COND_NONE)
        answer_watcher(c->r, c->origin, c->watcher, c->presentity, "unsubscribed");
    free(c->watcher);
    free(c->presentity);
    free(c);
}

/* Every held request goes through the policy again. */
static void decide_held(struct xs_router *r)
{
    struct xs_router_held *list = r->held;
    r->held = NULL;
    r->n_held = 0;
    while (list) {
        struct xs_router_held *h = list;
        list = h->next;
        struct held_ctx *c = calloc(1, sizeof *c);
        if (c) {
            c->r = r;
            c->origin = h->ev->origin;
            c->watcher = strdup(h->ev->from);
            c->presentity = strdup(h->ev->to);
        }
        if (!c || !c->watcher || !c->presentity) {
            if (c) {
                free(c->watcher);
                free(c->presentity);
            }
            free(c);
            xs_log(XS_LOG_ERROR, "router.pending", "result=dropped reason=\"out of memory\"");
            xs_event_free(h->ev);
        } else {
            xs_router_submit(r, h->ev, on_held_decided, c);
        }
        free(h);
    }
}

void xs_router_clear(struct xs_router *r)
{
    while (r->held) {
        struct xs_router_held *h = r->held;
        r->held = h->next;
        xs_event_free(h->ev);
        free(h);
    }
    r->n_held = 0;
}

/* The metrics slot of the partner an event is exchanged with: the domain
 * of its XMPP end as it arrived (the sender's JID from XMPP, the host of
 * the recipient's URI from SIP), through the policy's partner matcher, so
 * a domain that is no partner counts as "other". */
static unsigned partner_slot(const struct xs_router *r, const struct xs_event *ev)
{
    const char *a = ev->origin == XS_SIDE_XMPP ? ev->from : ev->to;
    if (!a)
        return XS_METRICS_OTHER;
    char d[256];
    size_t n;
    if (ev->origin == XS_SIDE_XMPP) {
        const char *at = strchr(a, '@');
        const char *slash = strchr(a, '/');
        if (at && (!slash || at < slash))
            a = at + 1;
        n = strcspn(a, "/");
    } else {
        const char *colon = strchr(a, ':');
        a = colon ? colon + 1 : a;
        const char *at = strchr(a, '@');
        a = at ? at + 1 : a;
        n = strcspn(a, ":;>?");
    }
    if (n == 0 || n >= sizeof d)
        return XS_METRICS_OTHER;
    memcpy(d, a, n);
    d[n] = '\0';
    const struct xs_partner *p = xs_policy_partner(r->policy, d);
    return xs_metrics_partner(p ? p->domain : NULL);
}

void xs_router_submit(void *router, struct xs_event *ev, xs_done_cb done, void *done_ud)
{
    struct xs_router *r = router;
    char qf[256], qt[256], qx[256];
    XS_LOG(XS_LOG_DEBUG, "router.in", "event=%llu origin=%s from=%s to=%s",
           (unsigned long long)ev->serial, side_name(ev->origin),
           xs_log_quote(qf, sizeof qf, ev->from), xs_log_quote(qt, sizeof qt, ev->to));
    enum xs_side_id origin = ev->origin;
    enum xs_event_kind kind = ev->kind;
    uint64_t arrived = ev->arrived;
    unsigned partner = partner_slot(r, ev);
    char *text = NULL;
    enum xs_cond cond;
    /* A subscription request is kept as it arrived, in case the policy
     * answers it itself (answer_watcher) or holds it (hold). */
    int request = ev->kind == XS_EVENT_SUBSCRIPTION && ev->type && !strcmp(ev->type, "subscribe");
    struct xs_event *orig = request ? xs_event_dup(ev) : NULL;
    /* A body over gateway.max_body is the sender's, not the policy's: it is
     * refused here with policy-violation (RFC 7572 §6 uses that condition
     * for what the gateway will not carry), before any hook runs. */
    size_t max_body = xs_policy_config(r->policy)->max_body;
    if (r->draining) {
        text = strdup("the gateway is shutting down");
        cond = XS_COND_SERVICE_UNAVAILABLE;
    } else if (ev->body && strlen(ev->body) > max_body) {
        char why[64];
        snprintf(why, sizeof why, "message body exceeds %zu bytes", max_body);
        text = strdup(why);
        cond = XS_COND_POLICY_VIOLATION;
    } else {
        cond = xs_policy_route(r->policy, ev, &text);
    }
    if (cond != XS_COND_NONE) {
        r->refused++;
        xs_metrics_outcome(kind, origin, partner, XS_METRICS_REFUSED, cond, arrived);
        xs_log(XS_LOG_WARN, "router.refused", "event=%llu origin=%s from=%s to=%s cond=%s text=%s",
               (unsigned long long)ev->serial, side_name(origin),
               xs_log_quote(qf, sizeof qf, ev->from), xs_log_quote(qt, sizeof qt, ev->to),
               xs_cond_name(cond), xs_log_quote(qx, sizeof qx, text));
        xs_event_free(ev);
        xs_event_free(orig);
        done(done_ud, cond, text);
        free(text);
        return;
    }
    if (request && ev->action == XS_SUB_PENDING) {
        xs_event_free(ev);
        cond = hold(r, orig);
        done(done_ud, cond, cond ? "too many subscription requests held by the policy" : NULL);
        return;
    }
    if (request && ev->action == XS_SUB_APPROVE && orig && orig->from && orig->to)
        answer_watcher(r, origin, orig->from, orig->to, "subscribed");
    xs_event_free(orig);
    struct route_ctx *c = malloc(sizeof *c);
    if (!c) {
        xs_event_free(ev);
        xs_metrics_outcome(kind, origin, partner, XS_METRICS_REFUSED, XS_COND_RESOURCE_CONSTRAINT,
                           arrived);
        done(done_ud, XS_COND_RESOURCE_CONSTRAINT, "out of memory");
        return;
    }
    *c = (struct route_ctx){r,      done, done_ud, (unsigned long long)ev->serial,
                            origin, kind, partner, arrived};
    r->routed++;
    r->in_flight++;
    struct xs_side *target = &r->sides[origin == XS_SIDE_XMPP ? XS_SIDE_SIP : XS_SIDE_XMPP];
    if (r->log_bodies)
        xs_log(XS_LOG_INFO, "router.body", "event=%llu body=%s", (unsigned long long)ev->serial,
               xs_log_quote(qx, sizeof qx, ev->body));
    XS_LOG(XS_LOG_DEBUG, "router.out", "event=%llu from=%s to=%s", (unsigned long long)ev->serial,
           xs_log_quote(qf, sizeof qf, ev->from), xs_log_quote(qt, sizeof qt, ev->to));
    xs_metrics_handoff(origin, arrived);
    target->deliver(target->impl, ev, on_delivered, c);
}

void xs_router_sip_pressure(void *router, int high)
{
    struct xs_router *r = router;
    struct xs_side *x = &r->sides[XS_SIDE_XMPP];
    if (r->hold[XS_SIDE_XMPP] && x->impl)
        r->hold[XS_SIDE_XMPP](x->impl, high);
}
