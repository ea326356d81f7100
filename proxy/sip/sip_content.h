/* The body of an arriving MESSAGE as the text of an XMPP <body/> (RFC 7572
 * §7): text/plain in UTF-8, US-ASCII, ISO-8859-1, Windows-1252 or UTF-16 is
 * converted to UTF-8 (the tables are small and written here; no iconv, so
 * the result does not depend on the machine's locale data), and text/html is
 * carried as its text: tags dropped (with script and style content),
 * block ends as line breaks, the XML entities, &nbsp; and numeric character
 * references decoded. XHTML-IM (XEP-0071) is not produced. */
#ifndef XS_SIP_SIP_CONTENT_H
#define XS_SIP_SIP_CONTENT_H

#include <stddef.h>

#include "core/buf.h"

/* Converts body[0..len) (borrowed) of the given type/subtype and charset
 * (the Content-Type parameter, quotes allowed, NULL when absent) into out
 * (UTF-8 that XML can carry, NUL-terminated). Returns 0, or a SIP status
 * with *why (static) set: 415 for a type or charset not processed, 400 for
 * a body that is not valid in its charset or holds no text, 413 when out's
 * maximum or memory runs out. */
int xs_sip_content_to_text(const char *type, const char *subtype, const char *charset,
                           const char *body, size_t len, struct xs_buf *out, const char **why);

#endif
