/* The XMPP side of the gateway: server-to-server streams in (the listener)
 * and out (one per local/remote domain pair), STARTTLS, Server Dialback in
 * both roles. Toward the middle it has the two faces of every side: stanzas
 * that arrive become events handed to `submit`, and xs_xmpp_deliver() turns
 * an approved event into a stanza on the right outbound stream. */
#ifndef XS_XMPP_XMPP_SIDE_H
#define XS_XMPP_XMPP_SIDE_H

#include <uv.h>

#include "event.h"
#include "policy/policy.h"
#include "tls/tls.h"

struct xs_xmpp;

/* Starts listening on the policy's xmpp.listen. `policy` and `tls` are
 * borrowed until replaced by xs_xmpp_set_policy (the side takes its own
 * reference on `tls`). `secret` is the dialback secret (copied). */
int xs_xmpp_start(uv_loop_t *loop, struct xs_policy *policy, struct xs_tls_ctx *tls,
                  const char *secret, xs_submit_fn submit, void *router, struct xs_xmpp **out);

/* Switches to a new policy generation (and TLS context), then re-checks
 * every stream: streams with a domain that is no longer a partner, and
 * inbound streams with a pair the new rules would not admit (tls, dialback,
 * local domain), are closed with a stream error, and what was queued on
 * them is bounced. */
void xs_xmpp_set_policy(struct xs_xmpp *x, struct xs_policy *policy, struct xs_tls_ctx *tls);

/* The side's deliver face (see struct xs_side): ev->to is a JID in a remote
 * domain, ev->from a JID in one of ours. Messages, presence and
 * subscriptions go out alike on the outbound stream for the pair (set up,
 * or queued while it is). done() says XS_COND_NONE for presence once it is
 * written (acknowledged, with stream management), without the error grace
 * messages wait out, since nothing answers presence; and the condition when
 * the remote domain cannot be reached (remote-server-not-found,
 * remote-server-timeout, ...). A presence or subscription type XMPP has no
 * stanza for is refused with bad-request. */
void xs_xmpp_deliver(void *x, struct xs_event *ev, xs_done_cb done, void *ud);

/* Stops listening and closes every stream with </stream:stream>; queued
 * stanzas are bounced with service-unavailable. `on_closed` runs when the
 * last handle is released.
 * Lifetime rule: every event handed to xs_xmpp_deliver has had its done()
 * called by the time xs_xmpp_close returns, and no done() comes after (as
 * libuv promises for close_cb); stanzas the kernel has not confirmed fail
 * with service-unavailable, so no 200 is given for them (s2s.h). The router
 * relies on this to be freed right after the sides close. */
void xs_xmpp_close(struct xs_xmpp *x, void (*on_closed)(void *ud), void *ud);

/* The first step of a graceful stop: the listeners close (no new inbound
 * stream), the streams there are keep running, so what is in flight can
 * finish. Idempotent; xs_xmpp_close does it too. */
void xs_xmpp_drain(struct xs_xmpp *x);
/* Stanzas the outbound streams still owe an outcome for (queued, not yet
 * confirmed, or not yet acknowledged by the peer): the drain waits for 0. */
size_t xs_xmpp_pending(const struct xs_xmpp *x);

/* Backpressure from the other side (through the router): with hold 1 no
 * inbound stream is read (streams accepted meanwhile start held), with 0
 * they are read again. Peers then wait in TCP rather than being refused. */
void xs_xmpp_hold_input(void *x, int hold);

/* `xsgw validate` (proxy/validate/): a real outbound stream from `local` to
 * `remote`, set up by the same code as every other (DNS, both SRV kinds,
 * connect, TLS, certificate check, SASL EXTERNAL or dialback under the
 * partner's rules) that reports each step to `cb` and closes once
 * authenticated or failed; it carries no stanza. The last report has step
 * XS_PROBE_DONE; nothing comes after it. */
enum xs_probe_step {
    XS_PROBE_SRV,      /* detail: one SRV record or "none" / the DNS failure;
                          direct: 1 for _xmpps-server (XEP-0368) */
    XS_PROBE_CONNECT,  /* detail: "host:port (address)", ok: connected */
    XS_PROBE_FEATURES, /* detail: the features offered, space-separated
                          ("starttls dialback sasl:EXTERNAL sm") */
    XS_PROBE_TLS,      /* detail: protocol/cipher or the failure */
    XS_PROBE_CERT,     /* peer: the verdict for `remote`; ok: chain and name pass */
    XS_PROBE_AUTH,     /* detail: "sasl-external" or "dialback", and the outcome */
    XS_PROBE_DONE      /* ok: authenticated; detail: the reason when not */
};
struct xs_probe_report {
    enum xs_probe_step step;
    int ok;
    int direct;                    /* XS_PROBE_SRV, XS_PROBE_CONNECT: Direct TLS */
    const char *detail;            /* borrowed for the call */
    const struct xs_tls_peer *peer; /* XS_PROBE_CERT only */
};
typedef void (*xs_probe_cb)(void *ud, const struct xs_probe_report *r);
int xs_xmpp_probe(struct xs_xmpp *x, const char *local, const char *remote, xs_probe_cb cb,
                  void *ud);

/* Reports every stream to the metrics collector (core/metrics.h). */
void xs_xmpp_metrics(struct xs_xmpp *x);

/* One stream as the admin listener's status page shows it; strings lent
 * for the callback only. */
struct xs_stream_info {
    int outbound;
    const char *local;  /* our domain ("" before the peer's header named it) */
    const char *remote; /* the peer's domain ("" when not known yet) */
    const char *peer;   /* its address "ip:port" ("" before a connection) */
    const char *state;  /* "connecting", "authenticating", "established", ... */
    char tls[16];       /* "TLSv1.3", "TLSv1.2" or "none" */
    const char *auth;   /* "dialback", "sasl_external" or "none" */
    double since;       /* Unix time the stream began */
    size_t queued;      /* outbound: stanzas waiting to go out or for their outcome */
    const char *last_error; /* outbound: why queued stanzas would bounce now; "" */
};
/* Calls fn for every open stream, inbound first. fn must not change the
 * side. */
void xs_xmpp_foreach_stream(struct xs_xmpp *x, void (*fn)(void *ud, const struct xs_stream_info *),
                            void *ud);

/* The bound address's port (for tests that listen on port 0). */
int xs_xmpp_port(const struct xs_xmpp *x);

#endif
