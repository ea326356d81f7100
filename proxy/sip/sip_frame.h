/* SIP framing: where one message ends in a datagram or a byte stream, found
 * from the raw bytes (the blank line after the header section, and
 * Content-Length, RFC 3261 §18.3). Owns nothing but these scans; parsing of
 * header fields is sip_msg.c's, with libosip2. No sockets, no allocation but
 * xs_sip_frame_copy_head's buffer. */
#ifndef XS_SIP_FRAME_H
#define XS_SIP_FRAME_H

#include <stddef.h>

#include "core/buf.h"

/* Finds one message at the start of data[0..len). `stream` is 1 on TCP,
 * where Content-Length is required (RFC 3261 §18.3), 0 for a datagram, where
 * a missing Content-Length means "the rest" and one larger than the rest
 * still frames the whole datagram (xs_sip_in_parse answers it 400). Returns
 * 1 with *msg_len set when a whole message is there, 0 when more bytes are
 * needed (stream only), or XS_EPROTO (no or bad Content-Length, header
 * section not terminated in a datagram), XS_ELIMIT (header section or whole
 * message larger than `max`).
 * *hdr_len is set whenever the header section is complete (else 0), so a
 * caller can still answer a framing error; *msg_len is set as soon as the
 * Content-Length is known, even when 0 says the body is still incomplete,
 * so a stream reader need not frame again until that many bytes are in. */
int xs_sip_frame(const char *data, size_t len, size_t max, int stream, size_t *msg_len,
                 size_t *hdr_len);

/* Bytes of the header section of data[0..len) (borrowed), with the blank
 * line that ends it, or 0 when it does not end within len. */
size_t xs_sip_frame_head_len(const char *data, size_t len);

/* Looks for Content-Length (or its compact form "l") in the header section
 * h[0..len) (borrowed). Returns 1 with *out, 0 when absent, XS_EPROTO when
 * malformed or given twice with different values. */
int xs_sip_frame_content_length(const char *h, size_t len, size_t *out);

/* Copies the header section data[0..hdr_len) (borrowed) without its
 * Content-Length lines into copy (initialised here; the caller frees it
 * with xs_buf_free, whatever the result), so osip parses it as a message
 * with no body. Returns 0 or XS_ENOMEM. */
int xs_sip_frame_copy_head(const char *data, size_t hdr_len, struct xs_buf *copy);

#endif
