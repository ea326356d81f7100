/* The normalized event: what one side turns an arrival into, and what the
 * other side turns into what goes out. Both sides and the policy see only
 * this. Three kinds: messages, presence (RFC 8048: availability, status,
 * probes) and subscriptions (requests and answers to see presence). The
 * kind-specific fields stay in the one struct, NULL or 0 when unused, and
 * the router dispatches on `kind`. */
#ifndef XS_EVENT_H
#define XS_EVENT_H

#include <stddef.h>
#include <stdint.h>

enum xs_side_id { XS_SIDE_XMPP = 0, XS_SIDE_SIP = 1 };

enum xs_event_kind { XS_EVENT_MESSAGE = 1, XS_EVENT_PRESENCE = 2, XS_EVENT_SUBSCRIPTION = 3 };

/* What the policy decided for a subscription request (kind SUBSCRIPTION,
 * type "subscribe"), for the side that delivers it:
 *   FORWARD: ask the presentity's side; its answer decides (the default);
 *   APPROVE: ask it, and tell the watcher it is approved without waiting
 *            (e.g. SIP users of a partner domain the operator trusts);
 *   PENDING: do not ask yet; the watcher is told the request is pending,
 *            and it is kept until a later policy generation decides. */
enum xs_sub_action { XS_SUB_FORWARD = 0, XS_SUB_APPROVE = 1, XS_SUB_PENDING = 2 };

/* Failure reasons use the XMPP stanza error conditions (RFC 6120 §8.3.3) as
 * the one vocabulary of the middle; RFC 7247 maps SIP status codes onto them. */
#define XS_COND_MAP(X)                                                                             \
    X(BAD_REQUEST, "bad-request", "modify")                                                        \
    X(CONFLICT, "conflict", "cancel")                                                              \
    X(FEATURE_NOT_IMPLEMENTED, "feature-not-implemented", "cancel")                                \
    X(FORBIDDEN, "forbidden", "auth")                                                              \
    X(GONE, "gone", "cancel")                                                                      \
    X(INTERNAL_SERVER_ERROR, "internal-server-error", "cancel")                                    \
    X(ITEM_NOT_FOUND, "item-not-found", "cancel")                                                  \
    X(JID_MALFORMED, "jid-malformed", "modify")                                                    \
    X(NOT_ACCEPTABLE, "not-acceptable", "modify")                                                  \
    X(NOT_ALLOWED, "not-allowed", "cancel")                                                        \
    X(NOT_AUTHORIZED, "not-authorized", "auth")                                                    \
    X(POLICY_VIOLATION, "policy-violation", "modify")                                              \
    X(RECIPIENT_UNAVAILABLE, "recipient-unavailable", "wait")                                      \
    X(REDIRECT, "redirect", "modify")                                                              \
    X(REGISTRATION_REQUIRED, "registration-required", "auth")                                      \
    X(REMOTE_SERVER_NOT_FOUND, "remote-server-not-found", "cancel")                                \
    X(REMOTE_SERVER_TIMEOUT, "remote-server-timeout", "wait")                                      \
    X(RESOURCE_CONSTRAINT, "resource-constraint", "wait")                                          \
    X(SERVICE_UNAVAILABLE, "service-unavailable", "cancel")                                        \
    X(SUBSCRIPTION_REQUIRED, "subscription-required", "auth")                                      \
    X(UNDEFINED_CONDITION, "undefined-condition", "cancel")                                        \
    X(UNEXPECTED_REQUEST, "unexpected-request", "wait")

enum xs_cond {
    XS_COND_NONE = 0, /* success */
#define XS_COND_ENUM(id, name, type) XS_COND_##id,
    XS_COND_MAP(XS_COND_ENUM)
#undef XS_COND_ENUM
        XS_COND_COUNT_
};

/* "item-not-found" etc.; NULL for XS_COND_NONE. */
const char *xs_cond_name(enum xs_cond c);
/* The RFC 6120 error type that goes with the condition ("cancel", "wait", ...). */
const char *xs_cond_type(enum xs_cond c);
/* Parses a condition name; unknown names give XS_COND_UNDEFINED_CONDITION. */
enum xs_cond xs_cond_from_name(const char *name);

/* Two conditions can name where the recipient went: gone (RFC 6120
 * §8.3.3.5) and redirect (§8.3.3.14), which RFC 7247 §7 maps to and from SIP
 * 301/302 with a Contact. The address travels in the done() text as "<uri>"
 * at its start, followed by a space and the human text, if any. */
#define XS_COND_ADDR_MAX 1024
/* The human part of text (borrowed from text; "" when text is NULL) and, in
 * addr and addr_len, the address when text starts with one (else *addr NULL).
 * An address is 3..XS_COND_ADDR_MAX bytes of printable ASCII without space,
 * '<', '>' or '"', with a scheme ("x:"). */
const char *xs_cond_text_addr(const char *text, const char **addr, size_t *addr_len);
/* "<addr> text" (or "<addr>" when text is NULL or empty) as an owned string
 * (free()); NULL on OOM or when addr is not an address as above. */
char *xs_cond_text_with_addr(const char *addr, size_t addr_len, const char *text);

/* All strings are owned by the event, NUL-terminated UTF-8, NULL when absent. */
struct xs_event {
    enum xs_event_kind kind;
    enum xs_side_id origin;
    /* Addresses. On arrival they are in the origin's form: a JID
     * ("alice@xmpp.test/phone") from XMPP, a URI ("sip:bob@sip.test") from
     * SIP. After routing the policy has mapped them into the target's form. */
    char *from;
    char *to;
    char *id;      /* XMPP stanza id */
    char *thread;  /* XMPP <thread>; SIP Call-ID (RFC 7572) */
    char *subject; /* XMPP <subject>; SIP Subject */
    char *lang;    /* xml:lang; SIP Content-Language */
    char *type;    /* MESSAGE: XMPP message type, "chat", "normal", ...;
                    * PRESENCE: "available", "unavailable", "probe";
                    * SUBSCRIPTION: "subscribe", "subscribed", "unsubscribe",
                    * "unsubscribed" */
    char *body;
    /* PRESENCE, in two vocabularies: the origin fills its own, the policy's
     * mapping (lua/xsgw/presence.lua) fills the target's, the target side
     * reads only its own. lang (above) is the language of status and note. */
    char *show;       /* XMPP <show>: "away", "chat", "dnd", "xa"; NULL: none */
    char *status;     /* XMPP <status> */
    int priority;     /* XMPP <priority>, -128..127 (0 when absent) */
    char *basic;      /* PIDF <basic>: "open" or "closed" */
    char *note;       /* PIDF <note> */
    char *activities; /* RPID activities (RFC 4480), space-separated: "away busy" */
    int availability; /* Microsoft availability number (3500 ... 18500); 0: none */
    /* SUBSCRIPTION "subscribe" after routing: see enum xs_sub_action. */
    enum xs_sub_action action;
    /* How the event arrived, for the policy to decide on: whether the stream
     * or connection it came over was encrypted, and how its peer proved who
     * it is ("dialback", "sasl-external", "trusted-source"; a static string,
     * NULL when unknown). Set by the side that built the event. */
    int secure;
    const char *auth;
    /* A per-process serial number for correlating log lines; never reused. */
    uint64_t serial;
    /* When the event was made (xs_metrics_now(): monotonic ns), for the
     * latency histograms; a copy keeps its original's. */
    uint64_t arrived;
};

/* Returns a zeroed event of `kind` with a fresh serial; aborts on OOM (small
 * core allocation). Free with xs_event_free. */
struct xs_event *xs_event_new(enum xs_event_kind kind, enum xs_side_id origin);
void xs_event_free(struct xs_event *ev);
/* Replaces *field with a copy of value (NULL clears it). Returns 0 or XS_ENOMEM. */
int xs_event_set(char **field, const char *value);
int xs_event_setn(char **field, const char *value, size_t len);
/* Deep copy; NULL on OOM. */
struct xs_event *xs_event_dup(const struct xs_event *ev);

/* The outcome of handing an event on. Called exactly once, possibly before
 * the call that took the event returns. cond == XS_COND_NONE means delivered
 * (or handed to a peer that gives no further acknowledgement); otherwise the
 * reason, with text (borrowed, may be NULL) for the sender. */
typedef void (*xs_done_cb)(void *ud, enum xs_cond cond, const char *text);

/* The middle's face toward a side: a side hands an arriving event (ownership
 * passes) to `submit`, and learns through done(done_ud, ...) whether it was
 * delivered, so it can answer its sender (SIP final response, XMPP error). */
typedef void (*xs_submit_fn)(void *router, struct xs_event *ev, xs_done_cb done, void *done_ud);

/* One side's face toward the middle: take an event (ownership passes) that
 * the router has already approved and mapped, and send it out. */
struct xs_side {
    void *impl;
    void (*deliver)(void *impl, struct xs_event *ev, xs_done_cb done, void *ud);
};

#endif
