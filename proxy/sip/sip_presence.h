/* Presence on the SIP side (RFC 8048 with RFC 6665 and RFC 3856): the
 * subscriptions the gateway holds, both ways, with their SIP dialogs.
 *
 * - An XMPP user watching a SIP user (role WATCH_SIP): the gateway is the
 *   SIP subscriber. A "subscribe" event sends SUBSCRIBE (Event: presence)
 *   to the next hop; the NOTIFYs that come back become "subscribed",
 *   "unsubscribed" and presence events toward XMPP; the subscription is
 *   refreshed before it expires (at a random point between 70% and 85% of
 *   the granted time, so that many subscriptions made together do not
 *   refresh together); "unsubscribe" sends SUBSCRIBE with Expires: 0.
 * - A SIP user watching an XMPP user (role WATCH_XMPP): the gateway is the
 *   notifier. A SUBSCRIBE is answered 202 with NOTIFY pending and becomes a
 *   "subscribe" event toward XMPP; "subscribed" makes it active (NOTIFY with
 *   the current state), "unsubscribed" ends it (terminated;reason=rejected);
 *   presence events for it become NOTIFYs with PIDF bodies. At most one
 *   NOTIFY per dialog is in flight (RFC 6665 §4.2.2); newer states wait and
 *   only the latest goes out, which also bounds a presence storm to one
 *   request per subscription at a time.
 *
 * Presence goes only where a subscription entitles it: a presence event for
 * a SIP watcher goes into that watcher's dialog only (nothing is fanned out
 * to others), directed presence without a subscription is not carried, and
 * probes are answered from the subscription of that very watcher (or by a
 * one-time fetch, SUBSCRIBE with Expires: 0, which the presence server
 * authorizes as it would any subscription).
 *
 * Everything is kept in the subscription store (presence/sub_store.h),
 * batched once a second, and restored at start: dialogs are refreshed
 * (re-established when the peer no longer knows them) and XMPP users are
 * probed for their current state.
 *
 * Internal to proxy/sip/ (xs__ prefix): sip.c drives it. */
#ifndef XS_SIP_PRESENCE_H
#define XS_SIP_PRESENCE_H

#include <osipparser2/osip_parser.h>
#include <uv.h>

#include "event.h"
#include "policy/policy.h"
#include "presence/sub_store.h"
#include "sip/sip_transport.h"
#include "sip/sip_txn.h"

struct xs__sip_presence;

/* Starts the layer on the transaction layer t (borrowed for its whole
 * life). The store (may be NULL: nothing is kept across restarts) is taken:
 * the layer closes it. Arriving requests come through
 * xs__sip_presence_request (sip.c sets t->on_dialog). Returns 0 or
 * XS_ENOMEM. */
int xs__sip_presence_start(uv_loop_t *loop, struct xs__sip_txns *t, const struct xs_config *cfg,
                           struct xs_sub_store *store, struct xs__sip_presence **out);
/* Takes the parts of a reloaded config it uses (expiries, limits, contact). */
void xs__sip_presence_configure(struct xs__sip_presence *pr, const struct xs_config *cfg);
/* Restores what the store holds; logs how many of each kind. */
void xs__sip_presence_restore(struct xs__sip_presence *pr);
/* An event of kind PRESENCE or SUBSCRIPTION from the router (taken);
 * done() comes before this returns. */
void xs__sip_presence_deliver(struct xs__sip_presence *pr, struct xs_event *ev, xs_done_cb done,
                              void *ud);
/* The transaction layer's on_dialog (see sip_txn.h). */
int xs__sip_presence_request(void *pr, const struct xs_sip_peer *from, const osip_message_t *req,
                             const char *body, size_t blen, const char *to_tag, char *extra,
                             size_t extra_n, const char **why);
/* Counts, for logs and tests. */
size_t xs__sip_presence_count(const struct xs__sip_presence *pr, enum xs_sub_role role);
/* Writes what is not stored yet and frees everything (the store too). The
 * subscriptions are left for the next start to restore, not ended: a
 * restart must not cost anyone their subscriptions. */
void xs__sip_presence_close(struct xs__sip_presence *pr, void (*on_closed)(void *ud), void *ud);

#endif
