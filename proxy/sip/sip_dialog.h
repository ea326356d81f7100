/* SIP dialogs (RFC 3261 §12) as the presence subscriptions need them (RFC
 * 6665): the state a dialog keeps, how it is made from the request or the
 * response that creates it, how a request inside it is checked and
 * written, and the header fields of subscriptions (Expires,
 * Subscription-State, Event). Plain data and text: no sockets, no timers.
 *
 * Every request we send leaves through the SIP next hop (the edge proxy the
 * gateway is configured with), with the dialog's route set in Route
 * headers and its remote target as the Request-URI: loose routing (RFC 3261
 * §16.12). A strict router (a route without ;lr) is not supported. */
#ifndef XS_SIP_DIALOG_H
#define XS_SIP_DIALOG_H

#include <osipparser2/osip_parser.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "sip/sip_translate.h"

#define XS_SIP_DIALOG_URI_MAX 512    /* remote target, local and remote URIs */
#define XS_SIP_DIALOG_ROUTE_MAX 2048 /* the route set as written in Route */
#define XS_SIP_DIALOG_TAG_MAX 128
#define XS_SIP_DIALOG_CALLID_MAX 256

/* All strings owned (malloc), NULL when not known yet. */
struct xs_sip_dialog {
    char *call_id;
    char *local_tag;
    char *remote_tag;
    char *local_uri;     /* our side's address of record (From of what we send) */
    char *remote_uri;    /* the peer's (To of what we send) */
    char *remote_target; /* the peer's Contact URI: the Request-URI */
    char *route_set;     /* "<sip:a;lr>, <sip:b;lr>": the Route value, or NULL */
    uint32_t local_cseq;
    uint32_t remote_cseq; /* 0: no request from the peer yet */
};

void xs_sip_dialog_clear(struct xs_sip_dialog *d);
/* Replaces *field with a copy of v (NULL clears); 0 or XS_ENOMEM. */
int xs_sip_dialog_set(char **field, const char *v);

/* The dialog a subscriber gets from the 2xx to its SUBSCRIBE (UAC, RFC
 * 3261 §12.1.2): remote tag from To, remote target from Contact, route set
 * from Record-Route in reverse order. Returns 0, XS_EPROTO (no To tag, no
 * usable Contact) or XS_ELIMIT / XS_ENOMEM. */
int xs_sip_dialog_from_response(struct xs_sip_dialog *d, const osip_message_t *resp);
/* The dialog a request creates at its recipient (UAS, §12.1.1): a
 * SUBSCRIBE at the notifier, or a NOTIFY that reaches the subscriber before
 * the 2xx (RFC 6665 §4.1.2.4): remote tag from From, remote target from
 * Contact, route set from Record-Route in order, remote CSeq. The caller
 * sets call_id, local_tag and the URIs. */
int xs_sip_dialog_from_request(struct xs_sip_dialog *d, const osip_message_t *req);

/* Checks a request inside the dialog against its CSeq (§12.2.2): 0 when it
 * is newer (remote_cseq is updated), 500 when it is older or the same. A
 * refresh may also move the remote target (Contact). */
int xs_sip_dialog_accept(struct xs_sip_dialog *d, const osip_message_t *req);

/* Writes a request in the dialog into out: request line to the remote
 * target, Via from p (transport, sent-by, branch), Route, From/To with the
 * tags, Call-ID, CSeq (d->local_cseq, which the caller has bumped), Max-
 * Forwards, Contact <contact>, then `headers` (complete lines, may be
 * NULL), and the body with its Content-Type (both NULL for none). Returns
 * 0, XS_EINVAL (the dialog lacks a field) or XS_ELIMIT / XS_ENOMEM. */
int xs_sip_dialog_write(const struct xs_sip_dialog *d, const char *method,
                        const struct xs_sip_req_params *p, const char *contact, const char *headers,
                        const char *ctype, const char *body, size_t blen, struct xs_buf *out);

/* The Record-Route lines of req, as a 2xx that creates a dialog must copy
 * them (§12.1.1), into out (n bytes, "" when none). XS_ELIMIT when they do
 * not fit. */
int xs_sip_record_route_lines(const osip_message_t *req, char *out, size_t n);

/* The URI of the first Contact of m, in <...> form without parameters of
 * the header, into out; XS_ENOTFOUND when there is none or it is unusable. */
int xs_sip_contact_uri(const osip_message_t *m, char *out, size_t n);

/* The value of header `name` (or its compact form, may be NULL); NULL when
 * absent. Borrowed from m. */
const char *xs_sip_header(const osip_message_t *m, const char *name, const char *compact);

/* The delta-seconds of an Expires (or Min-Expires) header: -1 when absent
 * or not a number of at most 9 digits. */
long xs_sip_header_seconds(const osip_message_t *m, const char *name, const char *compact);

/* Subscription-State (RFC 6665 §8.2.3). */
enum xs_sip_substate_value {
    XS_SUBSTATE_UNKNOWN = 0,
    XS_SUBSTATE_ACTIVE,
    XS_SUBSTATE_PENDING,
    XS_SUBSTATE_TERMINATED,
};
struct xs_sip_substate {
    enum xs_sip_substate_value state;
    long expires;     /* -1: absent */
    long retry_after; /* -1: absent */
    char reason[32];  /* "" when absent; lower-cased */
};
/* Parses a Subscription-State value; unknown states are UNKNOWN (a
 * subscriber treats them as pending, §4.1.3), unknown parameters ignored. */
void xs_sip_substate_parse(const char *v, struct xs_sip_substate *out);

/* 1 when the Event header of m is "presence" (parameters ignored, RFC 6665
 * §8.2.1), 0 otherwise. */
int xs_sip_event_is_presence(const osip_message_t *m);

/* The tag parameter of m's From or To; NULL when absent. Borrowed. */
const char *xs_sip_from_tag(const osip_message_t *m);
const char *xs_sip_to_tag(const osip_message_t *m);

#endif
