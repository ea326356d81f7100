/* Internal to the XMPP side: the side object and the two kinds of stream,
 * shared between side.c, s2s_in.c, s2s_out.c and s2s_wire.c. Nothing outside
 * proxy/xmpp/ includes this. */
#ifndef XS_XMPP_S2S_H
#define XS_XMPP_S2S_H

#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/limits.h"
#include "event.h"
#include "net/connect.h"
#include "net/dns.h"
#include "net/link.h"
#include "policy/policy.h"
#include "xmpp/xml.h"

#define XS_NS_SERVER "jabber:server"
#define XS_NS_STREAMS "http://etherx.jabber.org/streams"
#define XS_NS_DIALBACK "jabber:server:dialback"
#define XS_NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define XS_NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"
#define XS_NS_DIALBACK_FEATURE "urn:xmpp:features:dialback"

#define XS_DOMAIN_MAX 256
#define XS_STREAM_ID_LEN 32
#define XS_S2S_PAIRS_MAX 16
/* Output queued per stream: room for two stanzas of the largest allowed
 * body (core/limits.h), so one never fails for size alone. */
#define XS_S2S_OUTPUT_MAX (2u * XS_MESSAGE_WIRE_MAX)
#define XS_S2S_VERIFY_MAX 64
/* Stanzas written on an established outbound stream and not yet flushed or
 * acknowledged (XEP-0198), and, apart, those waiting out their error grace:
 * each bound holds a few seconds' worth at the rates the gateway sustains
 * (a grace of 0.25 s at 30,000 msg/s is 7,500), about 100 bytes of record
 * each. */
#define XS_S2S_INFLIGHT_MAX 16384
/* Element depth and attributes per element in a stanza. */
#define XS_S2S_XML_DEPTH 32
#define XS_S2S_XML_ATTRS 32
/* Before a stream has an authenticated pair, a stanza may span this many
 * bytes: dialback, STARTTLS and stream errors fit many times over, and a
 * stranger cannot make us hold more than this per socket. */
#define XS_S2S_PREAUTH_STANZA_MAX 8192

/* Stream budgets (audit H3) come from the policy (xmpp.max_streams, struct
 * xs_s2s_budget). Inbound and outbound streams count apart, so nothing
 * done to the listener can make an outbound stream fail. Inbound streams
 * with no authenticated pair yet are capped per source address and in
 * total; a newcomer over either cap evicts the oldest such stream, so a
 * flood cannot keep a real partner out for longer than it takes to open the
 * cap's worth of connections. The side shrinks the totals when
 * RLIMIT_NOFILE cannot hold them.
 * Descriptors kept for what is not s2s: SIP over TCP (256), DNS, the log. */
#define XS_S2S_FD_RESERVE 384
/* An inbound stream must send its header this long after the connection
 * (or the TLS restart) and authenticate a pair this long after its first
 * header. */
#define XS_S2S_IN_HEADER_TIMEOUT 10.0
#define XS_S2S_IN_AUTH_TIMEOUT 30.0
/* A stream silent this long lets its parser go (xs_xml_parser_trim):
 * about 10 KiB of expat state per stream, rebuilt from the kept stream
 * header, in microseconds, by the next byte that arrives. */
#define XS_S2S_TRIM_AFTER 2.0
/* Once this many parsers were trimmed, the heap's free pages go back to the
 * kernel (malloc_trim): freed memory inside the heap would otherwise stay
 * resident until reused, and a burst of new streams that then go quiet
 * would keep the burst's peak. */
#define XS_S2S_TRIM_RETURN 64
/* Dialback on one inbound stream (audit M3): pairs being verified at once,
 * and db:result elements a stream may send before any pair is valid. */
#define XS_S2S_IN_VERIFY_INFLIGHT 4
#define XS_S2S_IN_DB_ATTEMPTS_MAX 32
/* Verifications of one domain pair pending at once from one source address
 * (all its streams together): the outbound stream's XS_S2S_VERIFY_MAX
 * places are shared by everyone who claims that domain. */
#define XS_S2S_IN_VERIFY_PER_SOURCE 2
/* db:verify answered on one stream before any pair on it is valid (audit
 * L6), and the longest id such a request may carry. A receiving server
 * needs one per key it checks; the set-up deadline ends the stream anyway. */
#define XS_S2S_IN_DB_VERIFY_MAX 64
/* Backpressure holds inbound streams at most this long: it smooths a burst
 * the SIP side is catching up with, but a next hop that stays behind must
 * not keep senders waiting with no answer. After it, the streams are read
 * again and what the SIP side cannot take is refused at once
 * (resource-constraint, type wait), a prompt answer a sender can act on. */
#define XS_S2S_HOLD_MAX_MS 1000
#define XS_S2S_DB_ID_MAX 64

/* Remote domains remembered as having ended a stream right after an
 * <enable/> (XEP-0198) they had not offered, and for how long they are not
 * asked again (s2s_out.c, xmpp.stream_management = "always"). */
#define XS_SM_REFUSED_MAX 64
#define XS_SM_REFUSED_TTL 3600.0

struct xs_sm_refused {
    uint64_t hash; /* of the remote domain; 0: free */
    double until;
};

struct xs_s2s_budget {
    size_t in_max;            /* inbound streams, closing ones included */
    size_t out_max;           /* outbound streams */
    size_t unauth_max;        /* inbound streams without an authenticated pair */
    size_t unauth_per_source; /* of those, from one source address (IPv6: /64) */
    size_t per_domain;        /* inbound streams with a pair (valid or being verified)
                                 for one remote domain */
};

struct s2s_in;
struct s2s_out;

struct xs_xmpp {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_tcp_t listener_tls; /* Direct TLS (XEP-0368), when xmpp.listen_tls is set */
    int has_listener_tls;
    int listeners_closed; /* xs_xmpp_drain: no new streams */
    uv_timer_t sweep; /* one timer checks every stream's deadlines */
    /* Fires when the earliest written stanza's grace (or settle) ends, so its
     * sender is answered then and not at the sweep's next tick. */
    uv_timer_t expire;
    double expire_at; /* when it fires; 0: not armed */
    struct xs_policy *policy;
    const struct xs_config *cfg;
    struct xs_tls_ctx *tls;
    char secret[128];
    xs_submit_fn submit;
    void *router;
    struct s2s_in *ins;
    struct s2s_out *outs;
    size_t n_streams; /* inbound and outbound, closing ones included */
    size_t n_ins;     /* of which inbound */
    struct xs_s2s_budget budget;
    unsigned long long nofile; /* RLIMIT_NOFILE after start (RLIM_INFINITY: none) */
    /* Events (messages, presence, subscriptions) handed to the router whose
     * outcome has not come back yet; the side outlives them, since a late
     * failure still needs to bounce. */
    size_t pending_outcomes;
    size_t trimmed;  /* parsers trimmed since the heap was last returned */
    int input_held;  /* xs_xmpp_hold_input: inbound streams are not read */
    uv_timer_t hold; /* ends a hold that lasted XS_S2S_HOLD_MAX_MS */
    uint64_t next_serial;
    struct xs_buf scratch; /* serialization buffer, reused for every stanza */
    struct xs_sm_refused sm_refused[XS_SM_REFUSED_MAX];
    size_t sm_refused_next; /* the slot the next refusal takes (oldest first) */
    int closing;
    int handles_open;
    void (*on_closed)(void *ud);
    void *on_closed_ud;
};

/* What an inbound stream asked an outbound one to verify (XEP-0220 §2.3):
 * the answer goes back to the inbound stream by its serial, which survives
 * the stream itself going away. */
typedef void (*xs_verify_cb)(struct xs_xmpp *x, uint64_t in_serial, const char *local,
                             const char *remote, int valid);

/* side.c */
/* The budgets that fit `nofile` descriptors (RLIM_INFINITY: the wanted
 * sizes): `want` (borrowed) as they are when they fit, else the totals
 * shrunk in proportion, and the shares no larger than their totals.
 * Returns 1 when they had to be shrunk, 0 when the wanted sizes fit. */
int xs_xmpp_size_budget(unsigned long long nofile, const struct xs_s2s_budget *want,
                        struct xs_s2s_budget *out);
/* The budget the policy asks for (xmpp.max_streams). */
void xs_xmpp_wanted_budget(const struct xs_config *cfg, struct xs_s2s_budget *out);
/* Whether a new outbound stream fits its budget. */
int xs_xmpp_out_room(const struct xs_xmpp *x);
double xs_xmpp_now(const struct xs_xmpp *x);
void xs_xmpp_random_id(char out[XS_STREAM_ID_LEN + 1]);
/* The inbound stream whose verifications are filed under `tag`, or NULL. */
struct s2s_in *xs_xmpp_find_in(struct xs_xmpp *x, uint64_t tag);
/* Sends `el` (taken) from local to remote over the outbound stream for the
 * pair, creating it if needed. done (may be NULL) learns the outcome; a
 * failure without done is logged. Refused (forbidden) unless `local` is one
 * of our domains and `remote` has a partner entry, whatever a hook rewrote. */
void xs_xmpp_send(struct xs_xmpp *x, const char *local, const char *remote, struct xs_xml_el *el,
                  xs_done_cb done, void *ud);
void xs_xmpp_stream_gone(struct xs_xmpp *x);
/* For the metrics collector: the partner slot of a remote domain (""
 * counts as "other"), and the TLS version a link negotiated (core/metrics.h
 * enums, as int to keep that header out of here). */
struct xs_stream_info;
/* Unix time now, for when a stream began (status page). */
double xs_xmpp_wall_now(void);
/* The TLS version a link negotiated ("TLSv1.3"), or "none". */
void xs_xmpp_tls_version(const struct xs_link *l, char out[16]);
unsigned xs_xmpp_metrics_partner(const struct xs_xmpp *x, const char *remote);
int xs_xmpp_metrics_tls(const struct xs_link *l);
/* An outcome that was pending has come back. */
void xs_xmpp_outcome_done(struct xs_xmpp *x);

/* s2s_in.c */
void xs_s2s_in_accept(struct xs_xmpp *x, uv_tcp_t *tcp);
/* The same for a connection to the Direct TLS listener (XEP-0368): TLS
 * starts at once, server side. */
void xs_s2s_in_accept_tls(struct xs_xmpp *x, uv_tcp_t *tcp);
void xs_s2s_in_verified(struct xs_xmpp *x, uint64_t tag, const char *local, const char *remote,
                        int valid);
/* Returns 1 when the stream's parser was trimmed (it went quiet), else 0. */
int xs_s2s_in_sweep(struct s2s_in *in, double now);
/* s2s_in_carry.c: a stanza `el` (borrowed) from an authenticated pair on
 * inbound stream number `serial`, encrypted when `secure`, authenticated
 * as `auth` says (static: "dialback", "sasl-external"), goes where it
 * belongs. */
void xs_s2s_in_carry(struct xs_xmpp *x, uint64_t serial, int secure, const char *auth,
                     struct xs_xml_el *el);
/* After a reload: closes the stream with a stream error when its peer is no
 * longer a partner or any of its pairs fails the new rules (partner, its tls
 * and dialback settings, the local domain). */
void xs_s2s_in_recheck(struct s2s_in *in);
void xs_s2s_in_shutdown(struct s2s_in *in);
struct s2s_in *xs_s2s_in_next(struct s2s_in *in);
uint64_t xs_s2s_in_verify_tag(const struct s2s_in *in);
/* Reports the stream to the metrics collector (xs_metrics_collect_stream). */
void xs_s2s_in_metrics(const struct s2s_in *in);
/* Describes the stream for the status page; 0, or -1 for a closed one. */
int xs_s2s_in_info(const struct s2s_in *in, struct xs_stream_info *out);

/* s2s_out.c */
struct s2s_out *xs_s2s_out_find(struct xs_xmpp *x, const char *local, const char *remote);
struct s2s_out *xs_s2s_out_new(struct xs_xmpp *x, const char *local, const char *remote);
/* Queues or writes an already serialized stanza (copied). `id` (borrowed,
 * may be NULL) is the stanza's id.
 *
 * What done() reports, and when. A stanza is "flushed" once the kernel has
 * confirmed its last byte (xs_link_flushed); nothing is reported delivered
 * before that.
 * With stream management (XEP-0198, s2s_sm.h) on the stream, a stanza is
 * delivered once the peer acknowledged it (<a h/>); then done() waits at
 * most XS_SM_ACK_SETTLE (never more than the grace) for an error stanza
 * with that id, and reports success. An error stanza before that reports
 * the error. Until the peer answers <enable/>, stanzas also follow the
 * grace below (and settle by its rules if the stream ends then, but fail if
 * the peer ended it with a stream error, which may be about the <enable/>);
 * if it refuses or does not answer within XS_SM_ANSWER_TIMEOUT, they stay
 * on the grace with the deadline they had. Once enabled, a stanza not
 * acknowledged when the stream ends, however it ends, fails with
 * remote-server-timeout (service-unavailable at shutdown); it is not sent
 * again, since the peer may have handled it.
 * Without stream management, once flushed, done() waits up to the policy's
 * xmpp.error_grace for an error stanza with that id (at once without an id
 * or grace) and then reports success.
 * When the stream dies:
 *  - stanzas still queued (never written) fail with the stream's reason;
 *  - stanzas written but not flushed fail with remote-server-timeout;
 *  - flushed stanzas still inside their grace succeed if the link ended in
 *    order (our close after the queue drained, the peer's FIN or
 *    close_notify, a stream error either way: XS_OK, XS_ECLOSED, XS_EPROTO),
 *    since TCP delivered them before the end; they fail with
 *    remote-server-timeout if the link failed (reset, write error, TLS
 *    failure, output overflow, close grace run out), since the peer may
 *    never have read them.
 *  - at shutdown every sender hears before xs_xmpp_close returns: what was
 *    not flushed fails with service-unavailable, flushed stanzas succeed.
 * (The rules below are the grace path's.)
 * The limit: XMPP without stream management (XEP-0198) has no receipt, so
 * a peer that stops reading for longer than the grace and then resets the
 * connection has been credited with what its kernel buffered meanwhile. */
void xs_s2s_out_send(struct s2s_out *o, const char *data, size_t len, const char *id,
                     xs_done_cb done, void *ud);
/* An error stanza about stanza `id` came back from the peer: the sender
 * learns it instead of a success. Returns 1 when it matched a waiting send. */
int xs_s2s_out_error(struct s2s_out *o, const char *id, enum xs_cond cond, const char *text);
/* Reports success for written stanzas whose grace ran out by `now`. */
void xs_s2s_out_expire(struct s2s_out *o, double now);
/* The earliest deadline of a stanza waiting on o to be reported delivered,
 * or 0 when none waits. */
double xs_s2s_out_next_expiry(const struct s2s_out *o);
/* A stanza now waits until `deadline` (xs_xmpp_now's clock) to be reported
 * delivered: the side's expiry timer fires by then. */
void xs_xmpp_expire_at(struct xs_xmpp *x, double deadline);
/* The hold timer's callback (s2s_in.c). */
void xs_s2s_in_hold_expired(uv_timer_t *t);
void xs_s2s_out_verify(struct s2s_out *o, uint64_t in_serial, const char *id, const char *key,
                       xs_verify_cb cb);
/* Set-up, acknowledgement and idle deadlines; returns 1 when the stream's
 * parser was trimmed (it went quiet), else 0. */
int xs_s2s_out_sweep(struct s2s_out *o, double now);
void xs_s2s_out_recheck(struct s2s_out *o);
void xs_s2s_out_shutdown(struct s2s_out *o);
struct s2s_out *xs_s2s_out_next(struct s2s_out *o);
void xs_s2s_out_metrics(const struct s2s_out *o);
int xs_s2s_out_info(const struct s2s_out *o, struct xs_stream_info *out);
/* Stanzas this stream still owes an outcome for: queued, unconfirmed by
 * the kernel, or unacknowledged by the peer (not those in their grace). */
size_t xs_s2s_out_pending(const struct s2s_out *o);

/* s2s_wire.c: what both kinds of stream write. The write functions return
 * xs_link_write's result; a failure means the stream can no longer be
 * trusted to carry anything, and the caller ends it. */
int xs_s2s_write_header(struct xs_link *l, const char *from, const char *to, const char *id)
    __attribute__((warn_unused_result));
int xs_s2s_write_el(struct xs_xmpp *x, struct xs_link *l, const struct xs_xml_el *el)
    __attribute__((warn_unused_result));
/* Writes a dialback element, <db:NAME from to [id] [type]>key</db:NAME>,
 * with an <error type='cancel'><cond/></error> child when cond is given.
 * The db: prefix is written as XEP-0220 shows it: some servers (ejabberd)
 * match the prefixed name and ignore an unprefixed element in the same
 * namespace. The stream header declares the prefix. */
int xs_s2s_write_db(struct xs_link *l, const char *name, const char *from, const char *to,
                    const char *id, const char *type, const char *key, const char *cond)
    __attribute__((warn_unused_result));
/* Writes <stream:error> with the condition and text, closes the stream and
 * the link (with XS_EPROTO, or with the write's failure when the error could
 * not be queued). */
void xs_s2s_stream_error(struct xs_link *l, const char *cond, const char *text);
/* Writes </stream:stream> and closes the link (XS_OK, or the write's failure). */
void xs_s2s_close_stream(struct xs_link *l);
struct xs_xml_parser *xs_s2s_parser_new(struct xs_xmpp *x, const struct xs_xml_cbs *cbs, void *ud);
/* Copies the domain part of `jid` lower-cased into out; 0 or XS_EINVAL. */
int xs_s2s_domain_of(const char *jid, char out[XS_DOMAIN_MAX]);
int xs_s2s_valid_domain(const char *s);

#endif
