/* The admin listener: what an operator and an orchestrator ask a running
 * gateway. /metrics (Prometheus text format), /status (HTML) and
 * /status.json, /healthz (the loop answers) and /readyz (listening, policy
 * loaded, not draining, and the SIP next hop answering where there is one).
 * It sits on the gateway's loop and reads the gateway; it changes nothing. */
#ifndef XS_ADMIN_ADMIN_H
#define XS_ADMIN_ADMIN_H

#include <uv.h>

struct xs_gateway;
struct xs_admin;

/* How long a /readyz waits for a fresh check of the next hop before it
 * answers from what it knows, and how long a check stays fresh. */
#define XS_ADMIN_READY_WAIT_MS 2000
#define XS_ADMIN_HOP_FRESH_S 5.0

/* Listens on host:port for gw (borrowed; outlives the admin listener).
 * On failure logs ev=admin.listen result=failed and returns a negative
 * XS_E*. */
int xs_admin_start(uv_loop_t *loop, struct xs_gateway *gw, const char *host, int port,
                   struct xs_admin **out);
int xs_admin_port(const struct xs_admin *a);
/* Stops listening, closes its connections and frees it; done runs after. */
void xs_admin_close(struct xs_admin *a, void (*done)(void *ud), void *ud);

#endif
