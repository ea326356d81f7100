/* The router: the only place that asks the policy. An event that arrives
 * from one side is checked and mapped by the current policy generation and
 * handed to the other side; a refusal or a failed delivery goes back to the
 * sender through the side's done callback, and every one is logged. */
#ifndef XS_ROUTER_H
#define XS_ROUTER_H

#include "event.h"
#include "policy/policy.h"

struct xs_router {
    struct xs_policy *policy; /* borrowed: the current generation */
    struct xs_side sides[2];  /* indexed by enum xs_side_id */
    int log_bodies;
    unsigned long long routed, refused, bounced;
    /* Events handed to a side whose done() has not come back. Each holds a
     * pointer to this router, so the router (embedded in the gateway) must
     * not be freed while any remains: the sides promise that none remains
     * once their close has returned (see xs_xmpp_close, xs_sip_close). */
    unsigned long long in_flight;
    /* How to make a side stop reading its peers (hold 1) and start again
     * (0), for backpressure from the other side; NULL: it cannot. */
    void (*hold[2])(void *impl, int hold);
};

void xs_router_init(struct xs_router *r, struct xs_policy *policy);
void xs_router_set_policy(struct xs_router *r, struct xs_policy *policy);

/* An xs_submit_fn: `router` is a struct xs_router. */
void xs_router_submit(void *router, struct xs_event *ev, xs_done_cb done, void *done_ud);

/* Backpressure, for the SIP side's on_pressure: the SIP side can take
 * little more (high 1) or can again (0), so the XMPP side holds or resumes
 * its input. `router` is a struct xs_router. */
void xs_router_sip_pressure(void *router, int high);

#endif
