/* The XMPP side's two faces toward the middle, without sockets: a <message>
 * stanza into a normalized event and back (RFC 7572), <presence> into a
 * presence or subscription event and back (RFC 6121, RFC 8048), stanza
 * errors in and out (RFC 6120 §8.3, RFC 7247), and JID splitting (RFC 7622). */
#ifndef XS_XMPP_TRANSLATE_H
#define XS_XMPP_TRANSLATE_H

#include <stddef.h>

#include "event.h"
#include "xmpp/xml.h"

#define XS_NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define XS_JID_MAX 3071      /* bytes of a whole JID (RFC 7622 §3.1) */
#define XS_JID_PART_MAX 1023 /* bytes of each part */
/* Bytes of a presence <status> kept, as of a PIDF note (presence/pidf.h);
 * a longer one is cut at a UTF-8 character boundary. */
#define XS_XMPP_STATUS_MAX 1024

/* Turns an incoming <message> (namespace jabber:server) into a new event
 * (*out, owned by the caller, xs_event_free), origin XS_SIDE_XMPP.
 * `st` is borrowed. Returns:
 *   0            *out set, *cond = XS_COND_NONE;
 *   XS_ENOTFOUND no <body>: nothing to carry (chat states, receipts); drop it;
 *   XS_EINVAL    type='error': never an event, and never to be answered with
 *                another error; *cond stays XS_COND_NONE;
 *   XS_EPROTO    refused: *cond says what to answer. Not a <message> (or
 *                <presence>, below) in
 *                jabber:server or no from/to: bad-request; a JID that fails
 *                xs_jid_check(): jid-malformed; type='groupchat':
 *                service-unavailable, as RFC 6121 §8.5.2.1.1 has a server
 *                answer groupchat to a user's JID (RFC 7572 covers one-to-one
 *                messages only and SIP users are not rooms);
 *   XS_ENOMEM    *cond = resource-constraint.
 * Type defaults to "normal", and types RFC 6121 does not define are read as
 * "normal" (§5.2.2). The body is the first <body> without xml:lang or with
 * the stanza's xml:lang; when every body carries another language the first
 * one is taken and its language becomes the event's.
 * A <presence> in jabber:server goes through the same call (RFC 6121):
 *   no type -> PRESENCE "available", with show, status (and its language in
 *     lang, chosen as a message body is), priority;
 *   unavailable -> PRESENCE "unavailable", with status;
 *   probe -> PRESENCE "probe";
 *   subscribe, subscribed, unsubscribe, unsubscribed -> SUBSCRIPTION with
 *     that type, from and to as bare JIDs (subscriptions are between bare
 *     JIDs, RFC 6121 §3);
 *   type='error' -> XS_EINVAL as for messages;
 *   any other type, no from/to, or a <priority> that is not an integer in
 *     -128..127 -> XS_EPROTO bad-request; a bad JID -> jid-malformed.
 * A <show> other than away, chat, dnd, xa is ignored (show NULL): the
 * sender is still available, and RFC 6121 §4.7.2.1 lets a server ignore
 * it rather than fail broadcast presence that nobody could be told about.
 * A status longer than XS_XMPP_STATUS_MAX is cut. */
int xs_xmpp_stanza_to_event(const struct xs_xml_el *st, struct xs_event **out, enum xs_cond *cond);

/* 0 when ev (borrowed) can become a stanza: from and to pass
 * xs_jid_check(), and a presence or subscription event has a type the
 * table above knows. XS_EINVAL otherwise. */
int xs_xmpp_event_sendable(const struct xs_event *ev);

/* <message from to id type xml:lang><subject/><body/><thread/></message> in
 * jabber:server from an event whose addresses are JIDs already. Type, id
 * and xml:lang are left out when NULL (no type reads as "normal", which is
 * what RFC 7572 §5 asks for a message from SIP).
 * For PRESENCE and SUBSCRIPTION events, <presence from to [type] [id]>:
 * no type for "available", which alone carries <show> (a defined value
 * only), <priority> (when not 0, clamped to -128..127); available and
 * unavailable carry <status> (cut to XS_XMPP_STATUS_MAX) and xml:lang with
 * it; subscriptions go bare JID to bare JID.
 * `ev` is borrowed. Returns an owned tree (xs_xml_el_free), NULL on OOM,
 * when ev->from or ev->to is missing, or for a presence or subscription
 * event whose type the table above does not know. */
struct xs_xml_el *xs_xmpp_event_to_stanza(const struct xs_event *ev);

/* The RFC 6120 §8.3 error reply: <stanza_name type='error' from to id><error
 * type='...'><cond xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text
 * xmlns='...'>text</text></error></stanza_name>. from/to are the reply's own
 * addresses (the caller swaps them). `orig` (borrowed, may be NULL) lends its
 * name when stanza_name is NULL and its id when id is NULL; its payload is
 * not echoed, so a large stanza cannot double the traffic it causes.
 * XS_COND_NONE is sent as undefined-condition; text may be NULL. Returns an
 * owned tree or NULL on OOM. */
struct xs_xml_el *xs_xmpp_error_reply(const struct xs_xml_el *orig, const char *from,
                                      const char *to, const char *id, const char *stanza_name,
                                      enum xs_cond cond, const char *text);

/* The defined condition of a type='error' stanza (`st` borrowed): the first
 * child of <error> in the xmpp-stanzas namespace other than <text>;
 * undefined-condition when there is none or it is unknown. When text is not
 * NULL, *text is set to the <text> content (owned, free()) or NULL. */
enum xs_cond xs_xmpp_error_condition(const struct xs_xml_el *st, char **text);

/* JID syntax check (RFC 7622 §3) by the one address validator,
 * xs_addr_valid_jid() in core/addr.h: a domainpart is required, each part is
 * 1..1023 bytes of UTF-8, the whole at most 3071, no control characters, the
 * localpart holds no space and none of " & ' / : < > @. It does not apply
 * the PRECIS profiles. Returns 0 or XS_EINVAL. */
int xs_jid_check(const char *jid);

/* The domainpart of jid into out (n bytes with the NUL), lower-cased in
 * ASCII only (internationalized domains are compared as sent) and without a
 * trailing dot (RFC 7622 §3.2). The resource, which may hold '@' and '/',
 * starts at the first '/'. Returns 0, XS_EINVAL when jid fails
 * xs_jid_check(), or XS_ELIMIT when out is too small. */
int xs_jid_domain(const char *jid, char *out, size_t n);
/* localpart@domainpart (or the domainpart alone) of jid, the domain
 * normalized as by xs_jid_domain() and the localpart as written. */
int xs_jid_bare(const char *jid, char *out, size_t n);

#endif
