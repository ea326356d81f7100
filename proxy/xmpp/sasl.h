/* SASL on server-to-server streams (RFC 6120 §6), for the one mechanism
 * servers use with each other: EXTERNAL (RFC 4422 appendix A, XEP-0178),
 * where the TLS certificate authenticates and the initial response only
 * names the identity asked for (the authorization identity).
 *
 * This module only reads and writes the elements; whether a certificate is
 * good enough is for the stream code to decide. Parsing works on trees the
 * stream parser produced (bounded there); everything it copies out is
 * bounded here, whatever the peer sent. */
#ifndef XS_XMPP_SASL_H
#define XS_XMPP_SASL_H

#include <stddef.h>

#include "core/buf.h"
#include "xmpp/xml.h"

#define XS_NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
/* An authorization identity is a domain: at most 255 bytes, plus the NUL. */
#define XS_SASL_AUTHZID_MAX 256
/* Room for any element written here, a failure's text included (which is
 * cut to XS_SASL_TEXT_MAX bytes before escaping). */
#define XS_SASL_TEXT_MAX 512
#define XS_SASL_ELEMENT_MAX 4096

/* RFC 6120 §6.5 failure conditions. */
enum xs_sasl_cond {
    XS_SASL_OK = 0,
    XS_SASL_ABORTED,
    XS_SASL_ACCOUNT_DISABLED,
    XS_SASL_CREDENTIALS_EXPIRED,
    XS_SASL_ENCRYPTION_REQUIRED,
    XS_SASL_INCORRECT_ENCODING,
    XS_SASL_INVALID_AUTHZID,
    XS_SASL_INVALID_MECHANISM,
    XS_SASL_MALFORMED_REQUEST,
    XS_SASL_MECHANISM_TOO_WEAK,
    XS_SASL_NOT_AUTHORIZED,
    XS_SASL_TEMPORARY_AUTH_FAILURE
};

/* The condition's element name ("not-authorized"); a static string, "?"
 * out of range. */
const char *xs_sasl_cond_name(enum xs_sasl_cond c);

/* Appends <mechanisms xmlns=...><mechanism>EXTERNAL</mechanism></mechanisms>
 * (for <stream:features>). 0 or XS_ELIMIT. */
int xs_sasl_write_mechanisms(struct xs_buf *out);
/* 1 when `features` (borrowed, the <stream:features> element) offers
 * EXTERNAL, else 0. */
int xs_sasl_offers_external(const struct xs_xml_el *features);

/* Reads <auth mechanism='EXTERNAL'>base64</auth> (`el` borrowed, already
 * known to be <auth> in XS_NS_SASL). On success returns XS_SASL_OK with the
 * decoded authorization identity in authzid; "" when the peer sent "=" or
 * no initial response at all, both meaning "the identity of my
 * certificate, as my stream header says". Otherwise returns the condition
 * to answer with, authzid is "", and `why` (may be NULL) is set to a static
 * one-line reason:
 *  - invalid-mechanism: no mechanism, or any mechanism but EXTERNAL;
 *  - malformed-request: child elements inside <auth>;
 *  - incorrect-encoding: not strict base64 (RFC 4648 alphabet, padding
 *    only at the end, length a multiple of 4, no whitespace, RFC 6120
 *    §13.9.1);
 *  - invalid-authzid: longer than a domain can be (checked before
 *    decoding), or bytes no domain holds (NUL, controls, space, invalid
 *    UTF-8). Whether it is a domain we accept is the caller's to judge;
 *  - temporary-auth-failure: out of memory. */
enum xs_sasl_cond xs_sasl_parse_auth(const struct xs_xml_el *el, char authzid[XS_SASL_AUTHZID_MAX],
                                     const char **why);

/* Appends <auth xmlns=... mechanism='EXTERNAL'>base64(authzid)</auth>;
 * "=" for an empty or NULL authzid. XS_EINVAL when authzid is longer than
 * XS_SASL_AUTHZID_MAX - 1; else 0 or XS_ELIMIT. */
int xs_sasl_write_auth(struct xs_buf *out, const char *authzid);
/* Appends <success xmlns=.../>. 0 or XS_ELIMIT. */
int xs_sasl_write_success(struct xs_buf *out);
/* Appends <failure xmlns=...><COND/><text>text</text></failure>; no <text>
 * when text is NULL or "". The text is cut (on a character boundary) to
 * XS_SASL_TEXT_MAX bytes and escaped. XS_EINVAL for XS_SASL_OK or a
 * condition out of range; else 0 or XS_ELIMIT. */
int xs_sasl_write_failure(struct xs_buf *out, enum xs_sasl_cond cond, const char *text);
/* Appends <abort xmlns=.../>. 0 or XS_ELIMIT. */
int xs_sasl_write_abort(struct xs_buf *out);

/* Reads the receiving server's answer to <auth> (`el` borrowed): returns 1
 * for <success/>, 0 for <failure/> (then *cond is its condition,
 * XS_SASL_NOT_AUTHORIZED when it names none we know, and text, when not
 * NULL, holds its <text> cut to textlen - 1 bytes on a character boundary
 * with control characters made spaces and quotes made apostrophes, so it
 * can go into a log line as is; "" when there was none). XS_EPROTO for
 * anything else (a <challenge/>, another namespace), with *cond
 * XS_SASL_MALFORMED_REQUEST. */
int xs_sasl_parse_outcome(const struct xs_xml_el *el, enum xs_sasl_cond *cond, char *text,
                          size_t textlen);

#endif
