/* The SIP side of the gateway: transports (UDP, TCP), RFC 3261 §17
 * non-INVITE transactions, and MESSAGE (RFC 3428) both ways, on libosip2's
 * parser. Toward the middle it has the two faces of every side: arriving
 * MESSAGEs become events handed to `submit`, and xs_sip_deliver() turns an
 * event into a MESSAGE toward the configured next hop. */
#ifndef XS_SIP_SIP_H
#define XS_SIP_SIP_H

#include <uv.h>

#include "event.h"
#include "policy/policy.h"

struct xs_sip;

/* Starts the listeners named by cfg->sip_listen. `cfg` is copied (what the
 * SIP side needs of it), not kept. `submit`/`router` receive arriving MESSAGE
 * events. Returns 0 or a negative XS_E* (and logs which listener failed). */
int xs_sip_start(uv_loop_t *loop, const struct xs_config *cfg, xs_submit_fn submit, void *router,
                 struct xs_sip **out);

/* Takes the parts of a reloaded config that can change at run time (next
 * hop, limits). Listeners stay as they are; a changed listener set is logged
 * as needing a restart. */
int xs_sip_reconfigure(struct xs_sip *sip, const struct xs_config *cfg);

/* Sends ev (taken; ev->from and ev->to are SIP URIs) as a MESSAGE to the next
 * hop in a client transaction; done() gets XS_COND_NONE on a 2xx, the RFC
 * 7247 condition for any other final response, remote-server-timeout on
 * Timer F / transport failure. */
void xs_sip_deliver(void *sip, struct xs_event *ev, xs_done_cb done, void *ud);

/* Stops listening and closes every connection; transactions still pending
 * complete with service-unavailable. `on_closed` runs once everything is
 * released (after the last libuv close callback). */
void xs_sip_close(struct xs_sip *sip, void (*on_closed)(void *ud), void *ud);

/* The RFC 7247 mappings, exposed for tests and for other SIP methods. */
enum xs_cond xs_sip_status_to_cond(int status);
int xs_sip_cond_to_status(enum xs_cond cond);

#endif
