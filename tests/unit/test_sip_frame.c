/* SIP framing (sip_frame.c): where a message ends in a datagram and in a
 * stream, from the header section and Content-Length. */
#include <string.h>

#include "check.h"
#include "core/err.h"
#include "sip/sip_frame.h"

static void test_frame(void)
{
    size_t ml, hl;
    const char *m = "MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabcMESSAGE";
    CHECK(xs_sip_frame(m, strlen(m), 4096, 1, &ml, &hl) == 1);
    CHECK(ml == strlen(m) - 7 && hl == ml - 3);
    CHECK(xs_sip_frame(m, 20, 4096, 1, &ml, &hl) == 0);
    /* The length is known once the header section is: a stream reader
     * waits for that many bytes without framing again. */
    size_t head = strlen(m) - 10;
    CHECK(xs_sip_frame(m, head + 1, 4096, 1, &ml, &hl) == 0);
    CHECK(hl == head && ml == strlen(m) - 7);
    CHECK(xs_sip_frame(m, 20, 4096, 1, &ml, &hl) == 0 && ml == 0 && hl == 0);
    CHECK(xs_sip_frame(m, strlen(m), 40, 1, &ml, &hl) == XS_ELIMIT);
    const char *nocl = "MESSAGE sip:a@b SIP/2.0\r\nTo: x\r\n\r\nabc";
    CHECK(xs_sip_frame(nocl, strlen(nocl), 4096, 1, &ml, &hl) == XS_EPROTO);
    CHECK(xs_sip_frame(nocl, strlen(nocl), 4096, 0, &ml, &hl) == 1 && ml == strlen(nocl));
    const char *compact = "OPTIONS sip:a@b SIP/2.0\r\nl : 0\r\n\r\n";
    CHECK(xs_sip_frame(compact, strlen(compact), 4096, 1, &ml, &hl) == 1);
    const char *bad = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1x\r\n\r\n";
    CHECK(xs_sip_frame(bad, strlen(bad), 4096, 1, &ml, &hl) == XS_EPROTO && hl > 0);
    const char *two = "OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab";
    CHECK(xs_sip_frame(two, strlen(two), 4096, 1, &ml, &hl) == XS_EPROTO);
    const char *huge = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 999999999999\r\n\r\n";
    CHECK(xs_sip_frame(huge, strlen(huge), 4096, 1, &ml, &hl) == XS_EPROTO);
    const char *short_dgram = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nab";
    CHECK(xs_sip_frame(short_dgram, strlen(short_dgram), 4096, 0, &ml, &hl) == 1 &&
          ml == strlen(short_dgram));
    CHECK(xs_sip_frame(short_dgram, strlen(short_dgram), 10, 0, &ml, &hl) == XS_ELIMIT);
}

int main(void)
{
    test_frame();
    return check_report("test_sip_frame");
}
