/* Feeds bytes through what the SIP side does with a datagram or a TCP
 * stream: framing, parsing and validation into an event or a local answer,
 * and building that answer; the refusal of an untrusted source (header
 * section only, terse answer); and the trusted-peer list, which takes the
 * first line as an entry and matches the input's first bytes as addresses.
 * A SUBSCRIBE or NOTIFY also goes through what the presence layer reads of
 * it: the dialog it would make (both ways), its Subscription-State and
 * Expires, and the Record-Route lines of an answer.
 * No sockets. Seeds: tests/fuzz/sip_seeds/ (a first line that is an
 * address or network feeds the trusted-peer list). */
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "sip/sip_acl.h"
#include "sip/sip_dialog.h"
#include "sip/sip_frame.h"
#include "sip/sip_msg.h"

static void answer(const struct xs_sip_in *in)
{
    struct xs_buf out;
    xs_buf_init(&out, 1 << 16);
    if (in->absurd)
        xs_sip_build_terse_response(in->msg, in->status, "fuzztag", 0, &out);
    else
        xs_sip_build_response(in->msg, in->status, "fuzztag", "fuzz.test", in->why,
                              "Allow: MESSAGE\r\n", &out);
    xs_buf_reset(&out);
    xs_sip_build_terse_response(in->msg, 403, "fuzztag", 1, &out);
    xs_buf_free(&out);
}

static void dialog(const osip_message_t *m)
{
    struct xs_sip_dialog d = {0};
    struct xs_sip_substate st;
    char rr[512];
    xs_sip_dialog_from_request(&d, m);
    xs_sip_dialog_accept(&d, m);
    xs_sip_dialog_clear(&d);
    xs_sip_dialog_from_response(&d, m);
    xs_sip_dialog_clear(&d);
    xs_sip_substate_parse(xs_sip_header(m, "subscription-state", NULL), &st);
    xs_sip_header_seconds(m, "expires", "x");
    xs_sip_event_is_presence(m);
    xs_sip_record_route_lines(m, rr, sizeof rr);
}

static void one_message(const char *data, size_t len, int oversize)
{
    struct xs_sip_in in;
    xs_sip_in_parse(data, len, oversize, &in);
    if (in.verdict == XS_SIP_ANSWER)
        answer(&in);
    if (in.verdict == XS_SIP_DIALOG || in.verdict == XS_SIP_RESPONSE)
        dialog(in.msg);
    xs_sip_in_clear(&in);
    /* As if it came from a source that is not trusted. */
    xs_sip_in_parse_refused(data, len, &in);
    if (in.verdict == XS_SIP_ANSWER)
        answer(&in);
    xs_sip_in_clear(&in);
}

static void acl(const char *d, size_t size)
{
    char entry[64];
    const char *nl = memchr(d, '\n', size < sizeof entry ? size : sizeof entry);
    size_t n = nl ? (size_t)(nl - d) : (size < sizeof entry - 1 ? size : sizeof entry - 1);
    memcpy(entry, d, n);
    entry[n] = '\0';
    struct xs_sip_acl *a = xs_sip_acl_new();
    if (!a)
        return;
    xs_sip_acl_add(a, entry);
    xs_sip_acl_add(a, "10.0.0.0/8");
    xs_sip_acl_add(a, "fd00::/8");
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    memcpy(&s4.sin_addr, d, size < 4 ? size : 4);
    memcpy(&s6.sin6_addr, d, size < 16 ? size : 16);
    xs_sip_acl_allows(a, (struct sockaddr *)&s4);
    xs_sip_acl_allows(a, (struct sockaddr *)&s6);
    xs_sip_acl_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xs_sip_msg_global_init();
    const char *d = (const char *)data;
    size_t msg_len, hdr_len;

    acl(d, size);

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
