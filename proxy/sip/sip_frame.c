/* SIP framing (RFC 3261 §18.3, §7.5): where a message's header section ends
 * and how long its body is, for datagrams and for streams, by scanning the
 * raw bytes before any parser sees them. Nothing here parses a header field
 * but Content-Length; libosip2 is not used. */
#define _GNU_SOURCE /* memmem */
#include "sip/sip_frame.h"

#include <string.h>
#include <strings.h>

#include "core/err.h"

size_t xs_sip_frame_head_len(const char *data, size_t len)
{
    const char *end = memmem(data, len, "\r\n\r\n", 4);
    return end ? (size_t)(end - data) + 4 : 0;
}

int xs_sip_frame_content_length(const char *h, size_t len, size_t *out)
{
    const char *end = h + len;
    const char *line = memchr(h, '\n', len);
    int found = 0;
    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon && *line != ' ' && *line != '\t') {
            const char *ne = colon;
            while (ne > line && (ne[-1] == ' ' || ne[-1] == '\t'))
                ne--;
            size_t nl = (size_t)(ne - line);
            if ((nl == 14 && strncasecmp(line, "content-length", 14) == 0) ||
                (nl == 1 && (*line == 'l' || *line == 'L'))) {
                const char *v = colon + 1;
                while (v < eol && (*v == ' ' || *v == '\t'))
                    v++;
                size_t n = 0;
                int digits = 0;
                while (v < eol && *v >= '0' && *v <= '9') {
                    if (++digits > 9)
                        return XS_EPROTO;
                    n = n * 10 + (size_t)(*v - '0');
                    v++;
                }
                while (v < eol && (*v == ' ' || *v == '\t' || *v == '\r'))
                    v++;
                if (!digits || v != eol)
                    return XS_EPROTO;
                if (found && *out != n)
                    return XS_EPROTO;
                *out = n;
                found = 1;
            }
        }
        line = eol;
    }
    return found;
}

int xs_sip_frame(const char *data, size_t len, size_t max, int stream, size_t *msg_len,
                 size_t *hdr_len)
{
    *msg_len = 0;
    *hdr_len = 0;
    size_t hl = xs_sip_frame_head_len(data, len);
    if (!hl) {
        if (len > max)
            return XS_ELIMIT;
        return stream ? 0 : XS_EPROTO;
    }
    *hdr_len = hl;
    if (hl > max)
        return XS_ELIMIT;
    size_t cl = 0;
    int rc = xs_sip_frame_content_length(data, hl, &cl);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        if (stream)
            return XS_EPROTO;
        cl = len - hl;
    }
    /* A datagram that promises more body than it carries is still one
     * message: it goes up whole, so the request can be answered 400 (RFC
     * 3261 §18.3) rather than vanish. */
    if (!stream && cl > len - hl) {
        *msg_len = len;
        return 1;
    }
    if (cl > max - hl)
        return XS_ELIMIT;
    *msg_len = hl + cl;
    if (cl > len - hl)
        return 0;
    return 1;
}

int xs_sip_frame_copy_head(const char *data, size_t hdr_len, struct xs_buf *copy)
{
    xs_buf_init(copy, hdr_len);
    const char *end = data + hdr_len;
    const char *line = data;
    int rc = 0;
    while (!rc && line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        eol = eol ? eol + 1 : end;
        size_t n = (size_t)(eol - line);
        int is_cl = (n > 15 && strncasecmp(line, "content-length", 14) == 0 &&
                     (line[14] == ':' || line[14] == ' ' || line[14] == '\t')) ||
                    (n > 2 && (line[0] == 'l' || line[0] == 'L') &&
                     (line[1] == ':' || line[1] == ' ' || line[1] == '\t'));
        if (!is_cl)
            rc = xs_buf_append(copy, line, n);
        line = eol;
    }
    return rc;
}
