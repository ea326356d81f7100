/* Feeds bytes through the conversion of an arriving MESSAGE body (every
 * charset and both text types) and through the error mapping's reading of
 * an address a remote server sends in <gone/> or <redirect/>. The first byte
 * picks the charset and type; the rest is the body and the error text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "sip/sip.h"
#include "sip/sip_content.h"
#include "sip/sip_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const charsets[] = {NULL,           "utf-8",  "us-ascii", "iso-8859-1",
                                           "windows-1252", "utf-16", "utf-16be", "utf-16le",
                                           "\"UTF-8\"",    "koi8-r"};
    if (size < 1)
        return 0;
    const char *cs = charsets[data[0] % (sizeof charsets / sizeof charsets[0])];
    const char *sub = (data[0] & 0x80) ? "html" : "plain";
    struct xs_buf out;
    xs_buf_init(&out, 3 * size + 16);
    const char *why = NULL;
    int st = xs_sip_content_to_text("text", sub, cs, (const char *)data + 1, size - 1, &out, &why);
    if (st == 0 && (!out.data || !xs_sip_text_ok(out.data, out.len)))
        abort(); /* what is accepted must be text XML can carry */
    xs_buf_free(&out);

    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    struct xs_sip_error e;
    xs_sip_error_for(XS_COND_GONE, text, &e);
    if (e.contact[0]) {
        /* One header line holding one <uri>: nothing that could end the line
         * or the angle brackets early. */
        size_t n = strlen(e.contact);
        if (n < 14 || strncmp(e.contact, "Contact: <", 10) || strcmp(e.contact + n - 3, ">\r\n"))
            abort();
        for (size_t i = 10; i < n - 3; i++)
            if ((unsigned char)e.contact[i] <= ' ' || strchr("<>\"", e.contact[i]) ||
                (unsigned char)e.contact[i] >= 0x7f)
                abort();
    }
    free(text);
    return 0;
}
