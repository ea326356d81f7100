/* The router: the only place that asks the policy. An event that arrives
 * from one side is checked and mapped by the current policy generation and
 * handed to the other side; a refusal or a failed delivery goes back to the
 * sender through the side's done callback, and every one is logged. */
#ifndef XS_ROUTER_H
#define XS_ROUTER_H

#include "event.h"
#include "policy/policy.h"

/* Subscription requests the policy holds ("pending"), at most this many. */
#define XS_ROUTER_HELD_MAX 10000

struct xs_router_held {
    struct xs_router_held *next;
    struct xs_event *ev; /* the request as it arrived */
};

struct xs_router {
    struct xs_policy *policy; /* borrowed: the current generation */
    struct xs_side sides[2];  /* indexed by enum xs_side_id */
    int log_bodies;
    unsigned long long routed, refused, bounced, delivered;
    /* The gateway is stopping: every new event is answered
     * service-unavailable (SIP: 503 with Retry-After). */
    int draining;
    /* Events handed to a side whose done() has not come back. Each holds a
     * pointer to this router, so the router (embedded in the gateway) must
     * not be freed while any remains: the sides promise that none remains
     * once their close has returned (see xs_xmpp_close, xs_sip_close). */
    unsigned long long in_flight;
    /* How to make a side stop reading its peers (hold 1) and start again
     * (0), for backpressure from the other side; NULL: it cannot. */
    void (*hold[2])(void *impl, int hold);
    /* Subscription requests on_subscribe held ("pending"): decided again
     * by every new policy generation (xs_router_set_policy), lost on
     * restart (the watcher's side still has them pending and may ask
     * again). */
    struct xs_router_held *held;
    size_t n_held;
};

void xs_router_init(struct xs_router *r, struct xs_policy *policy);
/* A new policy generation; the held subscription requests go through it
 * again: still "pending" they stay held, allowed they go on, refused the
 * watcher hears "unsubscribed". */
void xs_router_set_policy(struct xs_router *r, struct xs_policy *policy);
/* Frees what the router holds (the held requests). */
void xs_router_clear(struct xs_router *r);

/* An xs_submit_fn: `router` is a struct xs_router. */
void xs_router_submit(void *router, struct xs_event *ev, xs_done_cb done, void *done_ud);

/* Backpressure, for the SIP side's on_pressure: the SIP side can take
 * little more (high 1) or can again (0), so the XMPP side holds or resumes
 * its input. `router` is a struct xs_router. */
void xs_router_sip_pressure(void *router, int high);

#endif
