/* What /status and /status.json show: the gateway at a glance, from the
 * running policy, its sides and the admin listener's own check of the SIP
 * next hop. One snapshot, rendered twice: as JSON and as a small HTML page
 * (no script, readable on a narrow screen). Every string that reaches the
 * output is escaped for it: domains, addresses and errors come from peers. */
#ifndef XS_ADMIN_STATUS_H
#define XS_ADMIN_STATUS_H

#include <stddef.h>

#include "core/buf.h"
#include "gateway.h"

/* The SIP next hop as the admin listener last checked it (an OPTIONS). */
struct xs_next_hop_check {
    int status;         /* final status of the last check; 0: none yet */
    char reason[128];   /* why it failed ("" when it answered) */
    double checked_at;  /* Unix time of that answer; 0: none */
    int in_flight;
};

/* At most this many streams are listed; more are counted. */
#define XS_STATUS_STREAMS_MAX 2000

/* Appends the snapshot to out as JSON / as HTML. XS_ELIMIT when out's
 * maximum is too small (out then holds a part). */
int xs_status_json(struct xs_gateway *gw, const struct xs_next_hop_check *hop, double now,
                   struct xs_buf *out);
int xs_status_html(struct xs_gateway *gw, const struct xs_next_hop_check *hop, double now,
                   struct xs_buf *out);

/* "reachable" (a final answer below 500 came), "unreachable", "unchecked",
 * or "none" when no next hop is configured. */
const char *xs_status_hop_state(const struct xs_gateway *gw, const struct xs_next_hop_check *hop);

#endif
