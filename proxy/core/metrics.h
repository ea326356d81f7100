/* The metrics registry and its Prometheus text exposition (format 0.0.4).
 *
 * Counters and histograms are plain integers in static storage, updated in
 * place: the gateway runs on one libuv loop thread, so an update is an
 * increment with no lock, no allocation and no lookup by name. This is the
 * one process-wide singleton the core keeps on purpose (CONVENTIONS.md 7):
 * passing a registry to every module that counts would thread a pointer
 * through the whole gateway for the sake of an increment, and a unit test
 * starts from a clean slate with xs_metrics_reset().
 *
 * Every label has a closed set of values, so the number of series is bounded
 * whatever peers do. The one open-ended label, the partner, is a slot in a
 * table of XS_METRICS_PARTNERS names (the policy's `partner "x"` names, "*"
 * for the wildcard partner) filled as names are first seen and never emptied;
 * slot 0 is "other": a domain that is no partner, and every name past the
 * table's bound. A remote domain never becomes a label by itself.
 *
 * Gauges of what the gateway holds (streams, SIP transactions, presence
 * subscriptions) are not kept incrementally: at render time the collector
 * the gateway registered (xs_metrics_set_collector) walks its tables and
 * reports them through the xs_metrics_collect_* functions, which are valid
 * only while it runs. */
#ifndef XS_CORE_METRICS_H
#define XS_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "event.h"

/* ---- Exposition ---- */

/* Appends the whole exposition to out (borrowed). Returns 0, or XS_ELIMIT
 * when out's maximum is too small for it (or XS_ENOMEM): then out is left
 * as it was before the call, with nothing of the exposition in it. */
int xs_metrics_render(struct xs_buf *out);

/* Zeroes every counter, histogram and the partner table, and forgets the
 * collector: for unit tests. */
void xs_metrics_reset(void);

/* The start time (Unix seconds) xsgw_start_time_seconds reports; the
 * gateway sets it once when it starts. xsgw_build_info's version is the
 * build's XS_VERSION. */
void xs_metrics_set_start_time(double unix_seconds);

/* ---- Partners ---- */

#define XS_METRICS_PARTNERS 128
#define XS_METRICS_OTHER 0u
/* The slot of the partner named `name` (borrowed; the partner's own name as
 * the policy declares it, "*" for the wildcard partner), taking a free one
 * when the name is new; XS_METRICS_OTHER for NULL, a name longer than a
 * domain may be, or when all XS_METRICS_PARTNERS slots are taken. Never
 * allocates. */
unsigned xs_metrics_partner(const char *name);

/* ---- Messages and presence (the router) ---- */

/* A direction is named by the side the event arrived from:
 * XS_SIDE_XMPP is "xmpp_to_sip", XS_SIDE_SIP is "sip_to_xmpp". */
enum xs_metrics_outcome {
    XS_METRICS_DELIVERED = 0,
    XS_METRICS_REFUSED, /* the gateway (size limit, policy) would not carry it */
    XS_METRICS_BOUNCED, /* the other side could not deliver it */
    XS_METRICS_OUTCOMES_
};
/* Monotonic nanoseconds, the clock of xs_event.arrived. */
uint64_t xs_metrics_now(void);
/* The final outcome of an event of kind MESSAGE or PRESENCE (other kinds
 * are ignored) that arrived at `arrived` (xs_metrics_now() clock; 0:
 * unknown, no latency observed): counted in xsgw_messages_total or
 * xsgw_presence_total, and observed in xsgw_outcome_seconds. */
void xs_metrics_outcome(enum xs_event_kind kind, enum xs_side_id origin, unsigned partner,
                        enum xs_metrics_outcome outcome, enum xs_cond cond, uint64_t arrived);
/* An event handed to the other side: xsgw_handoff_seconds. */
void xs_metrics_handoff(enum xs_side_id origin, uint64_t arrived);

/* ---- SIP ---- */

enum xs_metrics_sip_method {
    XS_MSIP_MESSAGE = 0,
    XS_MSIP_SUBSCRIBE,
    XS_MSIP_NOTIFY,
    XS_MSIP_PUBLISH,
    XS_MSIP_OPTIONS,
    XS_MSIP_INVITE,
    XS_MSIP_ACK,
    XS_MSIP_BYE,
    XS_MSIP_CANCEL,
    XS_MSIP_OTHER,
    XS_MSIP_METHODS_
};
/* The method's slot; XS_MSIP_OTHER for anything else or NULL. */
enum xs_metrics_sip_method xs_metrics_sip_method(const char *method);
/* in: received from the SIP edge; out: sent to it (once per transaction,
 * retransmissions not counted). */
enum xs_metrics_dir { XS_METRICS_IN = 0, XS_METRICS_OUT = 1 };
void xs_metrics_sip_request(enum xs_metrics_sip_method m, enum xs_metrics_dir dir);
/* A response with status code `status` (100..699; anything else counts as
 * class "other"). */
void xs_metrics_sip_response(int status, enum xs_metrics_dir dir);

/* ---- TLS ---- */

enum xs_metrics_tls_fail {
    XS_MTLS_PROTOCOL = 0, /* the peer spoke no TLS, or a version or cipher we refuse */
    XS_MTLS_ALERT,        /* the peer sent a fatal alert */
    XS_MTLS_CERTIFICATE,  /* a certificate was missing or refused in the handshake */
    XS_MTLS_CLOSED,       /* the session was dropped mid-handshake: the peer closed,
                             a set-up deadline ran out, or the gateway stopped */
    XS_MTLS_OTHER,
    XS_MTLS_FAILS_
};
void xs_metrics_tls_handshake_failure(enum xs_metrics_tls_fail why);
/* A peer certificate check that did not pass: `chain` is an
 * enum xs_tls_chain (proxy/tls/tls.h); a good chain whose leaf does not
 * name the reference identity counts as "name_mismatch". */
void xs_metrics_tls_cert_failure(int chain, int name_ok);

/* ---- Policy (Lua) ---- */

enum xs_metrics_hook {
    XS_MHOOK_ON_MESSAGE = 0,
    XS_MHOOK_ON_PRESENCE,
    XS_MHOOK_ON_SUBSCRIBE,
    XS_MHOOK_MAP_TO_SIP,
    XS_MHOOK_MAP_TO_XMPP,
    XS_MHOOK_HOOKS_
};
/* A hook the policy defines was called. */
void xs_metrics_hook_call(enum xs_metrics_hook h);
/* A call into the policy failed in (or after) hook h; budget 1 when it ran
 * out of its instruction, time or memory budget. */
void xs_metrics_hook_error(enum xs_metrics_hook h, int budget);

/* ---- Render-time gauges (collector) ---- */

/* Called by xs_metrics_render before it writes; reports the gauges through
 * the xs_metrics_collect_* functions below. One collector at a time (the
 * gateway's); NULL removes it. ud is borrowed. */
typedef void (*xs_metrics_collector)(void *ud);
void xs_metrics_set_collector(xs_metrics_collector fn, void *ud);

enum xs_metrics_stream_state {
    XS_MSTREAM_CONNECTING = 0, /* TCP, DNS, TLS handshake */
    XS_MSTREAM_AUTHENTICATING, /* stream open, peer not yet authenticated */
    XS_MSTREAM_ESTABLISHED,    /* carries stanzas */
    XS_MSTREAM_STATES_
};
enum xs_metrics_stream_tls {
    XS_MSTREAM_TLS_NONE = 0,
    XS_MSTREAM_TLS12,
    XS_MSTREAM_TLS13,
    XS_MSTREAM_TLSES_
};
enum xs_metrics_stream_auth {
    XS_MSTREAM_AUTH_NONE = 0,
    XS_MSTREAM_AUTH_DIALBACK,
    XS_MSTREAM_AUTH_SASL_EXTERNAL,
    XS_MSTREAM_AUTHS_
};
/* One XMPP stream, counted in xsgw_streams. */
void xs_metrics_collect_stream(unsigned partner, enum xs_metrics_dir dir,
                               enum xs_metrics_stream_state state, enum xs_metrics_stream_tls tls,
                               enum xs_metrics_stream_auth auth);
/* SIP transaction table occupancy: n transactions of a role (0 server,
 * 1 client) in a state (a static name, "trying", "proceeding",
 * "completed", ..., at most XS_METRICS_TXN_STATES distinct names), and the
 * table's limit per role. */
#define XS_METRICS_TXN_STATES 8
void xs_metrics_collect_sip_txns(int client, const char *state, size_t n);
void xs_metrics_collect_sip_txn_limit(int client, size_t limit);
/* Presence subscriptions held: role 0 watch_sip (XMPP users watching SIP
 * users), 1 watch_xmpp. */
void xs_metrics_collect_subscriptions(int watch_xmpp, size_t n);
/* The policy generation and reload history (struct xs_gateway_info). */
void xs_metrics_collect_policy(int generation, unsigned long long reloads_ok,
                               unsigned long long reloads_failed, double last_good_at);

/* ---- Streams opened and closed ---- */

void xs_metrics_stream_opened(enum xs_metrics_dir dir);
void xs_metrics_stream_closed(enum xs_metrics_dir dir);

#endif
