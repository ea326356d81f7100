/* Parsing a stanza from a string, for the tests of the element tree and of
 * the translation: both need a stanza as it would arrive on an s2s stream.
 * Header-only, static, for tests only. */
#ifndef XS_TEST_XML_TESTUTIL_H
#define XS_TEST_XML_TESTUTIL_H

#include <string.h>

#include "xmpp/xml.h"

struct xml_one {
    struct xs_xml_el *st;
};

/* The parser hands over every stanza; only the last one is wanted. */
static inline void xml_keep_last(void *ud, struct xs_xml_el *st)
{
    struct xml_one *o = ud;
    xs_xml_el_free(o->st);
    o->st = st;
}

/* Parses one stanza inside a jabber:server stream; owned result or NULL. */
static inline struct xs_xml_el *parse_one(const char *xml)
{
    static const struct xs_xml_cbs cbs = {NULL, xml_keep_last, NULL};
    static const struct xs_xml_limits lim = {
        .max_stanza_bytes = 1 << 16, .max_depth = 16, .max_attrs = 16};
    struct xml_one o = {NULL};
    struct xs_xml_parser *p = xs_xml_parser_new(&lim, &cbs, &o);
    static const char hdr[] = "<stream:stream xmlns='jabber:server' "
                              "xmlns:stream='http://etherx.jabber.org/streams'>";
    int rc = xs_xml_parser_feed(p, hdr, sizeof hdr - 1);
    if (!rc)
        rc = xs_xml_parser_feed(p, xml, strlen(xml));
    xs_xml_parser_free(p);
    if (rc) {
        xs_xml_el_free(o.st);
        return NULL;
    }
    return o.st;
}

#endif
