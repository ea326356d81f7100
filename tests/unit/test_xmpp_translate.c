/* <message> stanzas to events and back, stanza errors, and JIDs. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/err.h"
#include "xmpp/translate.h"
#include "xml_testutil.h"

static char *ser(const struct xs_xml_el *el)
{
    static char out[8192];
    struct xs_buf b;
    xs_buf_init(&b, sizeof out - 1);
    int rc = xs_xml_serialize(el, "jabber:server", &b);
    snprintf(out, sizeof out, "%s", rc ? "(error)" : b.data);
    xs_buf_free(&b);
    return out;
}

/* Runs stanza_to_event on xml; returns rc, sets *ev and *cond. */
static int to_event(const char *xml, struct xs_event **ev, enum xs_cond *cond)
{
    struct xs_xml_el *st = parse_one(xml);
    CHECK(st != NULL);
    if (!st)
        return -1000;
    int rc = xs_xmpp_stanza_to_event(st, ev, cond);
    xs_xml_el_free(st);
    return rc;
}

static void test_to_event(void)
{
    struct xs_event *ev = NULL;
    enum xs_cond cond = XS_COND_UNDEFINED_CONDITION;
    int rc = to_event("<message from='alice@a.test/phone' to='bob@b.test' id='m1' type='chat' "
                      "xml:lang='de'><subject xml:lang='en'>Hi</subject><subject>Gr\xC3\xBC\xC3\x9F"
                      "e</subject><body xml:lang='en'>hello</body><body>Gr\xC3\xBC\xC3\x9F"
                      "e &amp; &lt;3 &#x263A; \"'</body><thread>th-1</thread>"
                      "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
                      &ev, &cond);
    CHECK(rc == 0 && cond == XS_COND_NONE && ev != NULL);
    if (ev) {
        CHECK(ev->kind == XS_EVENT_MESSAGE && ev->origin == XS_SIDE_XMPP);
        CHECK_STR(ev->from, "alice@a.test/phone");
        CHECK_STR(ev->to, "bob@b.test");
        CHECK_STR(ev->id, "m1");
        CHECK_STR(ev->type, "chat");
        CHECK_STR(ev->lang, "de");
        CHECK_STR(ev->body, "Gr\xC3\xBC\xC3\x9F"
                            "e & <3 \xE2\x98\xBA \"'");
        CHECK_STR(ev->subject, "Gr\xC3\xBC\xC3\x9F"
                               "e");
        CHECK_STR(ev->thread, "th-1");
    }
    xs_event_free(ev);

    /* Defaults: type normal, no lang, subject and thread absent. */
    rc = to_event("<message from='a.test' to='bob@b.test'><body/></message>", &ev, &cond);
    CHECK(rc == 0 && ev);
    if (ev) {
        CHECK_STR(ev->type, "normal");
        CHECK(ev->lang == NULL && ev->subject == NULL && ev->thread == NULL && ev->id == NULL);
        CHECK_STR(ev->body, "");
    }
    xs_event_free(ev);

    /* Unknown types are normal (RFC 6121 5.2.2); only foreign-language bodies: the first. */
    rc = to_event("<message from='a@a.test' to='b@b.test' type='weird' xml:lang='en'>"
                  "<body xml:lang='fr'>bonjour</body><body xml:lang='it'>ciao</body></message>",
                  &ev, &cond);
    CHECK(rc == 0 && ev);
    if (ev) {
        CHECK_STR(ev->type, "normal");
        CHECK_STR(ev->body, "bonjour");
        CHECK_STR(ev->lang, "fr");
    }
    xs_event_free(ev);

    rc = to_event("<message from='a@a.test' to='b@b.test' type='chat'><composing "
                  "xmlns='http://jabber.org/protocol/chatstates'/></message>",
                  &ev, &cond);
    CHECK(rc == XS_ENOTFOUND && ev == NULL && cond == XS_COND_NONE);

    /* A body in another namespace is not the message body. */
    rc = to_event("<message from='a@a.test' to='b@b.test'><body xmlns='urn:x'>no</body></message>",
                  &ev, &cond);
    CHECK(rc == XS_ENOTFOUND && ev == NULL);

    rc = to_event("<message from='a@a.test' to='b@b.test' type='error'><body>x</body><error "
                  "type='cancel'><item-not-found "
                  "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
                  &ev, &cond);
    CHECK(rc == XS_EINVAL && ev == NULL && cond == XS_COND_NONE);

    rc = to_event("<message from='a@a.test' to='room@b.test' type='groupchat'><body>x</body>"
                  "</message>",
                  &ev, &cond);
    CHECK(rc == XS_EPROTO && cond == XS_COND_SERVICE_UNAVAILABLE && ev == NULL);

    rc = to_event("<message to='b@b.test'><body>x</body></message>", &ev, &cond);
    CHECK(rc == XS_EPROTO && cond == XS_COND_BAD_REQUEST);
    rc = to_event("<iq from='a@a.test' to='b@b.test' type='get' id='1'/>", &ev, &cond);
    CHECK(rc == XS_EPROTO && cond == XS_COND_BAD_REQUEST);
    rc = to_event("<message xmlns='jabber:client' from='a@a.test' to='b@b.test'><body>x</body>"
                  "</message>",
                  &ev, &cond);
    CHECK(rc == XS_EPROTO && cond == XS_COND_BAD_REQUEST);

    static const char *const bad_jids[] = {
        "alice@",        "@a.test",        "a.test/",    "alice@/res",        "",  "a b@a.test",
        "al:ice@a.test", "alice@a.test@x", "alice@a\tb", "alice@a.test/\x7f", ".",
    };
    for (size_t i = 0; i < sizeof bad_jids / sizeof bad_jids[0]; i++) {
        struct xs_xml_el *m = xs_xml_el_new("jabber:server", "message");
        xs_xml_el_set_attr(m, "from", bad_jids[i]);
        xs_xml_el_set_attr(m, "to", "b@b.test");
        xs_xml_el_add_text(xs_xml_el_add_child(m, "jabber:server", "body"), "x", 1);
        rc = xs_xmpp_stanza_to_event(m, &ev, &cond);
        if (rc != XS_EPROTO || cond != XS_COND_JID_MALFORMED) {
            fprintf(stderr, "bad jid accepted: '%s'\n", bad_jids[i]);
            CHECK(!"bad jid");
        }
        xs_xml_el_free(m);
    }
    /* Too long: the whole JID, and one part. */
    char *longjid = malloc(4000);
    memset(longjid, 'a', 3999);
    longjid[3999] = '\0';
    longjid[1023] = '@';
    longjid[2047] = '/';
    CHECK(xs_jid_check(longjid) == XS_EINVAL); /* 3999 bytes */
    longjid[3071] = '\0';
    /* An ASCII domain is a DNS name (253 bytes at most); a 1023-byte
     * domainpart needs U-labels: 'a' and 511 times U+00E9. */
    for (int i = 1025; i < 2047; i += 2)
        memcpy(longjid + i, "\xc3\xa9", 2);
    CHECK(xs_jid_check(longjid) == 0); /* 1023 + '@' + 1023 + '/' + 1023 */
    longjid[3070] = '\0';
    longjid[0] = '@';
    CHECK(xs_jid_check(longjid) == XS_EINVAL); /* empty localpart */
    longjid[0] = 'a';
    longjid[2047] = 'a';
    CHECK(xs_jid_check(longjid) == XS_EINVAL); /* domainpart of 2046 bytes */
    free(longjid);
}

static void test_to_stanza(void)
{
    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_SIP);
    xs_event_set(&ev->from, "bob@b.test");
    xs_event_set(&ev->to, "alice@a.test/phone");
    xs_event_set(&ev->id, "x1");
    xs_event_set(&ev->lang, "de");
    xs_event_set(&ev->subject, "S & <s>");
    xs_event_set(&ev->body, "Gr\xC3\xBC\xC3\x9F"
                            "e 'q' \"d\"\nline2");
    xs_event_set(&ev->thread, "call-id@host");
    struct xs_xml_el *el = xs_xmpp_event_to_stanza(ev);
    CHECK(el != NULL);
    /* No type on the event: none on the stanza, which XMPP reads as
     * "normal" (RFC 7572 §5 forbids "chat" for a message from SIP). */
    CHECK_STR(ser(el), "<message from='bob@b.test' to='alice@a.test/phone' id='x1' "
                       "xml:lang='de'><subject>S &amp; &lt;s&gt;</subject><body>Gr\xC3\xBC\xC3\x9F"
                       "e &apos;q&apos; &quot;d&quot;\nline2</body><thread>call-id@host</thread>"
                       "</message>");
    /* And back: the same event. */
    struct xs_event *back = NULL;
    enum xs_cond cond;
    CHECK(xs_xmpp_stanza_to_event(el, &back, &cond) == 0);
    if (back) {
        CHECK_STR(back->body, ev->body);
        CHECK_STR(back->subject, ev->subject);
        CHECK_STR(back->thread, ev->thread);
        CHECK_STR(back->lang, "de");
    }
    xs_event_free(back);
    xs_xml_el_free(el);

    xs_event_set(&ev->id, NULL);
    xs_event_set(&ev->lang, NULL);
    xs_event_set(&ev->subject, NULL);
    xs_event_set(&ev->thread, NULL);
    xs_event_set(&ev->type, "normal");
    xs_event_set(&ev->body, "");
    el = xs_xmpp_event_to_stanza(ev);
    CHECK_STR(ser(el), "<message from='bob@b.test' to='alice@a.test/phone' type='normal'><body/>"
                       "</message>");
    xs_xml_el_free(el);

    xs_event_set(&ev->to, NULL);
    CHECK(xs_xmpp_event_to_stanza(ev) == NULL);
    xs_event_free(ev);
}

static void test_errors(void)
{
    struct xs_xml_el *e = xs_xmpp_error_reply(NULL, "bob@b.test", "alice@a.test/x", "m1", "message",
                                              XS_COND_SERVICE_UNAVAILABLE, "No <route> & no luck");
    CHECK_STR(ser(e), "<message type='error' from='bob@b.test' to='alice@a.test/x' id='m1'>"
                      "<error type='cancel'><service-unavailable "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>No &lt;route&gt; &amp; no "
                      "luck</text></error></message>");

    /* Its own output parses back to the same condition and text. */
    struct xs_xml_el *p = parse_one(ser(e));
    char *text = NULL;
    CHECK(p && xs_xmpp_error_condition(p, &text) == XS_COND_SERVICE_UNAVAILABLE);
    CHECK_STR(text, "No <route> & no luck");
    free(text);
    xs_xml_el_free(p);
    xs_xml_el_free(e);

    /* Name and id from the original; no condition means undefined-condition. */
    struct xs_xml_el *orig = parse_one("<presence from='a@a.test' to='b@b.test' id='p9'/>");
    e = xs_xmpp_error_reply(orig, "b@b.test", "a@a.test", NULL, NULL, XS_COND_NONE, NULL);
    CHECK_STR(ser(e), "<presence type='error' from='b@b.test' to='a@a.test' id='p9'><error "
                      "type='cancel'><undefined-condition "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>");
    xs_xml_el_free(e);
    xs_xml_el_free(orig);
    e = xs_xmpp_error_reply(NULL, "b.test", "a@a.test", NULL, "message",
                            XS_COND_RECIPIENT_UNAVAILABLE, NULL);
    CHECK_STR(ser(e), "<message type='error' from='b.test' to='a@a.test'><error type='wait'>"
                      "<recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                      "</error></message>");
    xs_xml_el_free(e);

    /* SIP 301 -> <gone/> with the new address as its character data
     * (RFC 7247 §7.2 note 1); the rest of the text stays in <text/>. */
    e = xs_xmpp_error_reply(NULL, "b@b.test", "a@a.test", "g1", "message", XS_COND_GONE,
                            "<sip:bob@new.test> SIP 301 Moved Permanently");
    CHECK_STR(ser(e), "<message type='error' from='b@b.test' to='a@a.test' id='g1'>"
                      "<error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>"
                      "sip:bob@new.test</gone><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>"
                      "SIP 301 Moved Permanently</text></error></message>");
    xs_xml_el_free(e);
    e = xs_xmpp_error_reply(NULL, "b@b.test", "a@a.test", NULL, "message", XS_COND_GONE,
                            "SIP 410 Gone");
    CHECK_STR(ser(e), "<message type='error' from='b@b.test' to='a@a.test'>"
                      "<error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                      "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>"
                      "SIP 410 Gone</text></error></message>");
    xs_xml_el_free(e);
    /* Only gone and redirect read an address at the start of the text. */
    e = xs_xmpp_error_reply(NULL, "b@b.test", "a@a.test", NULL, "message", XS_COND_FORBIDDEN,
                            "<sip:x@y.test> no");
    CHECK(strstr(ser(e),
                 "<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>&lt;sip:x@y.test&gt; no") != NULL);
    xs_xml_el_free(e);

    struct {
        const char *xml;
        enum xs_cond cond;
        const char *text;
    } cases[] = {
        {"<message type='error'><error type='auth'><text "
         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>go away</text><forbidden "
         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><app xmlns='urn:app'/></error></message>",
         XS_COND_FORBIDDEN, "go away"},
        {"<message type='error'><error type='cancel'><x xmlns='urn:other'/><gone "
         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:new@x</gone></error></message>",
         XS_COND_GONE, "<xmpp:new@x>"},
        /* RFC 6120 §8.3.3.5's own example: the new address travels on to the
         * SIP side (RFC 7247 §7.1 note 3), with the human text after it. */
        {"<message type='error'><error type='cancel'><gone "
         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>\n  xmpp:romeo@afterlife.example.net\n"
         "</gone><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>moved</text></error></message>",
         XS_COND_GONE, "<xmpp:romeo@afterlife.example.net> moved"},
        {"<message type='error'><error type='modify'><redirect "
         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:b\xc3\xbc@x.test</redirect></error>"
         "</message>",
         XS_COND_REDIRECT, "<xmpp:b%C3%BC@x.test>"},
        /* Character data that is no address is not passed off as one. */
        {"<message type='error'><error type='cancel'><gone "
         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>not an address</gone></error></message>",
         XS_COND_GONE, NULL},
        {"<message type='error'><error type='cancel'><item-not-found "
         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:a@b</item-not-found></error></message>",
         XS_COND_ITEM_NOT_FOUND, NULL},
        {"<message type='error'><error type='cancel'><made-up "
         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
         XS_COND_UNDEFINED_CONDITION, NULL},
        {"<message type='error'><error type='cancel'/></message>", XS_COND_UNDEFINED_CONDITION,
         NULL},
        {"<message type='error'/>", XS_COND_UNDEFINED_CONDITION, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct xs_xml_el *st = parse_one(cases[i].xml);
        CHECK(st != NULL);
        if (!st)
            continue;
        text = (char *)"untouched";
        enum xs_cond c = xs_xmpp_error_condition(st, &text);
        CHECK(c == cases[i].cond);
        if (cases[i].text)
            CHECK_STR(text, cases[i].text);
        else
            CHECK(text == NULL);
        free(text);
        CHECK(xs_xmpp_error_condition(st, NULL) == cases[i].cond);
        xs_xml_el_free(st);
    }
}

static void test_jid(void)
{
    char out[64];
    CHECK(xs_jid_domain("Alice@Example.COM/Res@x/y", out, sizeof out) == 0);
    CHECK_STR(out, "example.com");
    CHECK(xs_jid_bare("Alice@Example.COM/Res@x/y", out, sizeof out) == 0);
    CHECK_STR(out, "Alice@example.com");
    CHECK(xs_jid_domain("example.com./r", out, sizeof out) == 0);
    CHECK_STR(out, "example.com");
    CHECK(xs_jid_bare("EXAMPLE.com", out, sizeof out) == 0);
    CHECK_STR(out, "example.com");
    /* '@' after the first '/' belongs to the resource. */
    CHECK(xs_jid_domain("host/user@elsewhere", out, sizeof out) == 0);
    CHECK_STR(out, "host");
    CHECK(xs_jid_bare("host/user@elsewhere", out, sizeof out) == 0);
    CHECK_STR(out, "host");
    CHECK(xs_jid_domain("caf\xC3\xA9.example", out, sizeof out) == 0);
    CHECK_STR(out, "caf\xC3\xA9.example");

    CHECK(xs_jid_domain("a@b.test", out, 4) == XS_ELIMIT);
    CHECK(xs_jid_domain("a@b.test", out, 7) == 0);
    CHECK(xs_jid_bare("a@b.test", out, 8) == XS_ELIMIT);
    CHECK(xs_jid_bare("a@b.test", out, 9) == 0);
    CHECK(xs_jid_domain("@b.test", out, sizeof out) == XS_EINVAL);
    CHECK(xs_jid_domain("a@", out, sizeof out) == XS_EINVAL);
    CHECK(xs_jid_domain("a@b/", out, sizeof out) == XS_EINVAL);
    CHECK(xs_jid_domain("", out, sizeof out) == XS_EINVAL);
    CHECK(xs_jid_domain(NULL, out, sizeof out) == XS_EINVAL);
    CHECK(xs_jid_bare("a@b\n", out, sizeof out) == XS_EINVAL);
    CHECK(xs_jid_check("a@b.test/with space") == 0);
}

int main(void)
{
    test_to_event();
    test_to_stanza();
    test_errors();
    test_jid();
    return check_report("test_xmpp_translate");
}
