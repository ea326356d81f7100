/* Feeds bytes to the XMPP stream parser in two pieces (the second byte picks
 * the split), with small limits that the first byte may tighten between the
 * pieces, as the gateway does around authentication. Every stanza that comes
 * out is serialized, parsed again and serialized again, which must give the
 * same text, and is run through the message translation. Seeds and a
 * dictionary: tests/fuzz/xml_seeds/, tests/fuzz/xml.dict. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "xmpp/translate.h"
#include "xmpp/xml.h"

static const char hdr[] = "<stream:stream xmlns='jabber:server' "
                          "xmlns:stream='http://etherx.jabber.org/streams'>";
/* Elements allowed in numbers that reach the tree's byte cap. */
static const struct xs_xml_limits small = {
    .max_stanza_bytes = 2048, .max_depth = 8, .max_attrs = 8, .max_elements = 1000};
static const struct xs_xml_limits tight = {
    .max_stanza_bytes = 512, .max_depth = 4, .max_attrs = 4, .max_elements = 8, .max_pending = 128};
static const struct xs_xml_limits roomy = {
    .max_stanza_bytes = 1 << 20, .max_depth = 64, .max_attrs = 64};

struct ctx {
    struct xs_buf *again; /* set while reparsing: where the second serialization goes */
};

static void on_open(void *ud, const struct xs_xml_el *h)
{
    struct xs_buf b;
    xs_buf_init(&b, 1 << 16);
    xs_xml_serialize(h, "", &b);
    xs_buf_free(&b);
}

static void reparse(const char *xml, size_t len, struct xs_buf *out);

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* A presence or subscription event and the stanza made from it (`back`)
 * must read back as the same event: nothing the translation accepted may
 * be lost or changed on the way out. */
static void presence_round_trip(const struct xs_event *ev, const struct xs_xml_el *back)
{
    if (!back)
        abort();
    struct xs_event *again = NULL;
    enum xs_cond cond;
    if (xs_xmpp_stanza_to_event(back, &again, &cond) != 0)
        abort();
    if (again->kind != ev->kind || !same_str(again->type, ev->type) ||
        !same_str(again->from, ev->from) || !same_str(again->to, ev->to) ||
        !same_str(again->id, ev->id) || !same_str(again->show, ev->show) ||
        !same_str(again->status, ev->status) || !same_str(again->lang, ev->lang) ||
        again->priority != ev->priority)
        abort();
    xs_event_free(again);
}

static void on_stanza(void *ud, struct xs_xml_el *st)
{
    struct ctx *c = ud;
    struct xs_buf b;
    xs_buf_init(&b, 1 << 20);
    int rc = xs_xml_serialize(st, "jabber:server", &b);
    if (c->again) {
        if (!rc)
            xs_buf_append(c->again, b.data, b.len);
        xs_buf_free(&b);
        xs_xml_el_free(st);
        return;
    }
    if (rc == 0) {
        struct xs_buf second;
        xs_buf_init(&second, 1 << 20);
        reparse(b.data, b.len, &second);
        if (second.len != b.len || memcmp(second.data, b.data, b.len))
            abort(); /* the serializer wrote something that does not read back the same */
        xs_buf_free(&second);
    }
    xs_buf_free(&b);

    struct xs_event *ev = NULL;
    enum xs_cond cond;
    if (xs_xmpp_stanza_to_event(st, &ev, &cond) == 0) {
        struct xs_xml_el *back = xs_xmpp_event_to_stanza(ev);
        if (ev->kind != XS_EVENT_MESSAGE)
            presence_round_trip(ev, back);
        xs_xml_el_free(back);
        char dom[1024];
        xs_jid_domain(ev->from, dom, sizeof dom);
        xs_jid_bare(ev->to, dom, sizeof dom);
        xs_event_free(ev);
    }
    char *text = NULL;
    xs_xmpp_error_condition(st, &text);
    free(text);
    xs_xml_el_free(st);
}

static void on_close(void *ud) {}

static const struct xs_xml_cbs cbs = {on_open, on_stanza, on_close};

static void reparse(const char *xml, size_t len, struct xs_buf *out)
{
    struct ctx c = {out};
    struct xs_xml_parser *p = xs_xml_parser_new(&roomy, &cbs, &c);
    if (!p)
        return;
    if (xs_xml_parser_feed(p, hdr, sizeof hdr - 1) || xs_xml_parser_feed(p, xml, len))
        abort(); /* serializer output must always parse */
    xs_xml_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* Byte 0: bit 0 puts a valid stream header first, so the fuzzer reaches
     * stanzas without having to guess the namespace; bit 1 tightens the
     * limits after the first piece. Byte 1: the split. */
    int with_hdr = data[0] & 1;
    int tighten = data[0] & 2;
    const char *d = (const char *)data + 2;
    size -= 2;
    size_t cut = size * data[1] / 256;
    struct ctx c = {NULL};
    struct xs_xml_parser *p = xs_xml_parser_new(&small, &cbs, &c);
    if (!p)
        return 0;
    int rc = with_hdr ? xs_xml_parser_feed(p, hdr, sizeof hdr - 1) : 0;
    if (rc == 0)
        rc = xs_xml_parser_feed(p, d, cut);
    if (tighten)
        xs_xml_parser_set_limits(p, &tight);
    if (rc == 0 && cut < size)
        rc = xs_xml_parser_feed(p, d + cut, size - cut);
    if (rc && !xs_xml_parser_condition(p) && rc != XS_ESTATE)
        abort(); /* a failure must name its stream error */
    xs_xml_parser_free(p);
    return 0;
}
