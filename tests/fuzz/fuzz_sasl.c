/* Feeds bytes as one stanza of an s2s stream to the SASL codec: the stanza
 * is read as <auth>, as <stream:features> and as an outcome. What it accepts
 * must keep the codec's promises: an authorization identity is at most 255
 * bytes of printable UTF-8 and writes back (xs_sasl_write_auth) to an <auth>
 * that reads to the same identity; a refusal says why and hands out
 * nothing; an outcome's text is bounded and log-safe. Seeds:
 * tests/fuzz/sasl_seeds/, dictionary: tests/fuzz/sasl.dict. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "xmpp/sasl.h"
#include "xmpp/xml.h"

static void keep(void *ud, struct xs_xml_el *st)
{
    struct xs_xml_el **last = ud;
    xs_xml_el_free(*last);
    *last = st;
}

static struct xs_xml_el *parse(const char *data, size_t len)
{
    static const struct xs_xml_cbs cbs = {NULL, keep, NULL};
    static const struct xs_xml_limits lim = {
        .max_stanza_bytes = 8192, .max_depth = 32, .max_attrs = 32};
    static const char hdr[] = "<stream:stream xmlns='jabber:server' "
                              "xmlns:stream='http://etherx.jabber.org/streams'>";
    struct xs_xml_el *st = NULL;
    struct xs_xml_parser *p = xs_xml_parser_new(&lim, &cbs, &st);
    if (!p)
        return NULL;
    (void)xs_xml_parser_feed(p, hdr, sizeof hdr - 1);
    (void)xs_xml_parser_feed(p, data, len);
    xs_xml_parser_free(p);
    return st;
}

static void check_auth(const struct xs_xml_el *el)
{
    char authzid[XS_SASL_AUTHZID_MAX];
    const char *why = NULL;
    enum xs_sasl_cond c = xs_sasl_parse_auth(el, authzid, &why);
    if (!memchr(authzid, '\0', sizeof authzid))
        abort();
    if (c != XS_SASL_OK) {
        if (!why || !*why || authzid[0] || !strcmp(xs_sasl_cond_name(c), "?"))
            abort();
        return;
    }
    for (const unsigned char *u = (const unsigned char *)authzid; *u; u++)
        if (*u <= 0x20 || *u == 0x7F)
            abort();
    struct xs_buf b;
    xs_buf_init(&b, XS_SASL_ELEMENT_MAX);
    if (xs_sasl_write_auth(&b, authzid) != 0)
        abort();
    struct xs_xml_el *again = parse(b.data, b.len);
    char back[XS_SASL_AUTHZID_MAX];
    if (!again || xs_sasl_parse_auth(again, back, NULL) != XS_SASL_OK || strcmp(back, authzid))
        abort();
    xs_xml_el_free(again);
    /* The identity as a failure's text: escaped, bounded, and read back. */
    xs_buf_reset(&b);
    if (xs_sasl_write_failure(&b, XS_SASL_NOT_AUTHORIZED, authzid) != 0)
        abort();
    again = parse(b.data, b.len);
    enum xs_sasl_cond oc;
    char text[XS_SASL_TEXT_MAX + 1];
    if (!again || xs_sasl_parse_outcome(again, &oc, text, sizeof text) != 0 ||
        oc != XS_SASL_NOT_AUTHORIZED || strlen(text) != strlen(authzid))
        abort();
    for (size_t i = 0; text[i]; i++)
        if (text[i] != (authzid[i] == '"' ? '\'' : authzid[i]))
            abort();
    xs_xml_el_free(again);
    xs_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xs_xml_el *el = parse((const char *)data, size);
    if (!el)
        return 0;
    check_auth(el);
    int offered = xs_sasl_offers_external(el);
    if (offered != 0 && offered != 1)
        abort();
    enum xs_sasl_cond c;
    char text[64];
    memset(text, 'X', sizeof text);
    int r = xs_sasl_parse_outcome(el, &c, text, sizeof text);
    if (r != 1 && r != 0 && r != XS_EPROTO)
        abort();
    if ((r == 1) != (c == XS_SASL_OK) || !memchr(text, '\0', sizeof text))
        abort();
    for (const unsigned char *u = (const unsigned char *)text; *u; u++)
        if (*u < 0x20 || *u == '"' || *u == 0x7F)
            abort();
    xs_xml_el_free(el);
    return 0;
}
