/* Feeds bytes through what the SIP transports do with a datagram or a TCP
 * stream: framing, parsing and validation into an event or a local answer,
 * and building that answer. No sockets. */
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "sip/sip_msg.h"

static void one_message(const char *data, size_t len, int oversize)
{
    struct xs_sip_in in;
    xs_sip_in_parse(data, len, oversize, &in);
    if (in.verdict == XS_SIP_ANSWER) {
        struct xs_buf out;
        xs_buf_init(&out, 1 << 16);
        xs_sip_build_response(in.msg, in.status, "fuzztag", "fuzz.test", in.why,
                              "Allow: MESSAGE\r\n", &out);
        xs_buf_free(&out);
    }
    xs_sip_in_clear(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xs_sip_msg_global_init();
    const char *d = (const char *)data;
    size_t msg_len, hdr_len;

    /* As a datagram. */
    if (xs_sip_frame(d, size, size, 0, &msg_len, &hdr_len) == 1)
        one_message(d, msg_len, msg_len > 4096);

    /* As a TCP stream: every framed message in turn, and the header section
     * of a framing error the way the transport answers it. */
    size_t off = 0;
    while (off < size) {
        int rc = xs_sip_frame(d + off, size - off, 4096, 1, &msg_len, &hdr_len);
        if (rc == 0)
            break;
        if (rc < 0) {
            if (hdr_len > 0) {
                struct xs_sip_in in;
                xs_sip_in_parse_head(d + off, hdr_len, &in);
                xs_sip_in_clear(&in);
            }
            break;
        }
        one_message(d + off, msg_len, 0);
        off += msg_len;
    }
    return 0;
}
