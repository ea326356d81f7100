/* The SIP side's two faces toward the middle, without sockets: an arriving
 * MESSAGE into a normalized event, and an event into the MESSAGE we send
 * (RFC 7572, RFC 3428). Addresses travel as SIP URIs; mapping them to JIDs
 * is the policy library's (lua/xsgw/address.lua), and whether a host is a
 * domain is decided by the one address validator (core/addr.h). */
#ifndef XS_SIP_TRANSLATE_H
#define XS_SIP_TRANSLATE_H

#include <osipparser2/osip_parser.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "event.h"

/* Turns a MESSAGE request m (borrowed) that passed sip_msg.c's request
 * checks (From, To and Call-ID present, Request-URI sip: or sips:) and its
 * body[0..blen) (borrowed) into a new event (*out, owned by the caller,
 * xs_event_free), origin XS_SIDE_SIP. from and to are "sip:user@host" (or
 * sips:) without display name, port or parameters but a GRUU's ";gr=", the
 * scheme and host lower-cased, a trailing dot of the host dropped, the host
 * ASCII and a valid domain; To is preferred to the Request-URI unless it is
 * not a SIP URI. thread = Call-ID, subject = Subject, lang = the first
 * Content-Language tag, type = "normal" (RFC 7572 §5), body = the content as
 * text (sip_content.c). Returns 0, or the SIP status to answer with *why
 * (static) set: 400, 413, 415 or 416 for what cannot be carried, 500 when
 * memory runs out. */
int xs_sip_message_to_event(const osip_message_t *m, const char *body, size_t blen,
                            struct xs_event **out, const char **why);

/* A From, To or Request-URI as events carry it (see above): owned
 * (free()), NULL when it is not a usable sip:/sips: address. */
char *xs_sip_uri_for_event(const osip_uri_t *u);
struct xs_sip_req_params {
    const char *transport; /* "UDP", "TCP" or "TLS" */
    const char *via_host;  /* our sent-by */
    int via_port;
    const char *branch;   /* "z9hG4bK..." */
    const char *from_tag; /* tag for From */
    const char *call_id;  /* used when ev->thread is not a usable Call-ID */
    uint32_t cseq;
};

/* The most a MESSAGE may weigh over UDP (RFC 3428 §8). */
#define XS_SIP_UDP_MESSAGE_MAX 1300

/* Writes the MESSAGE for ev (borrowed) into out. Returns 0, or with *why
 * (static) set: XS_EINVAL for an address that is not a SIP URI, XS_EPROTO
 * for a missing or non-text body, XS_ELIMIT when out's maximum is passed or
 * p->transport is "UDP" and the request is larger than
 * XS_SIP_UDP_MESSAGE_MAX (the caller answers policy-violation, RFC 7572 §6).
 * The Call-ID is ev->thread when xs_sip_callid_ok() accepts it, else
 * p->call_id. */
int xs_sip_build_message(const struct xs_event *ev, const struct xs_sip_req_params *p,
                         struct xs_buf *out, const char **why);

/* An event's SIP URI as written on the wire, into out (n bytes): non-ASCII
 * bytes percent-encoded; XS_EINVAL when it is not a sip:/sips: URI osip
 * reads or holds anything that could break out of <...>. */
int xs_sip_wire_uri(const char *in, char *out, size_t n);
/* 1 when s can be sent as a Call-ID as it is (RFC 3261 word ["@" word],
 * bounded length). */
int xs_sip_callid_ok(const char *s);

#endif
