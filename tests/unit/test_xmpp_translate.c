/* <message> and <presence> stanzas to events and back, stanza errors, and
 * JIDs. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/addr.h"
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

/* Each presence type into its event kind and type, with what it carries. */
static void test_presence_to_event(void)
{
    struct xs_event *ev = NULL;
    enum xs_cond cond = XS_COND_UNDEFINED_CONDITION;
    int rc = to_event("<presence from='alice@a.test/phone' to='bob@b.test' id='p1' "
                      "xml:lang='de'><show>dnd</show><status xml:lang='en'>busy</status>"
                      "<status>besch\xC3\xA4"
                      "ftigt</status><priority> -5 </priority>"
                      "<c xmlns='http://jabber.org/protocol/caps' node='n' ver='v' hash='h'/>"
                      "</presence>",
                      &ev, &cond);
    CHECK(rc == 0 && cond == XS_COND_NONE && ev != NULL);
    if (ev) {
        CHECK(ev->kind == XS_EVENT_PRESENCE && ev->origin == XS_SIDE_XMPP);
        CHECK_STR(ev->type, "available");
        CHECK_STR(ev->from, "alice@a.test/phone");
        CHECK_STR(ev->to, "bob@b.test");
        CHECK_STR(ev->id, "p1");
        CHECK_STR(ev->show, "dnd");
        CHECK_STR(ev->status, "besch\xC3\xA4"
                              "ftigt");
        CHECK_STR(ev->lang, "de");
        CHECK(ev->priority == -5);
        CHECK(ev->body == NULL && ev->thread == NULL);
    }
    xs_event_free(ev);

    /* Bare presence: available, nothing else. */
    rc = to_event("<presence from='alice@a.test/phone' to='bob@b.test'/>", &ev, &cond);
    CHECK(rc == 0 && ev && ev->kind == XS_EVENT_PRESENCE);
    if (ev) {
        CHECK_STR(ev->type, "available");
        CHECK(ev->show == NULL && ev->status == NULL && ev->lang == NULL && ev->id == NULL);
        CHECK(ev->priority == 0);
    }
    xs_event_free(ev);

    /* Unavailable keeps its status (RFC 6121 §4.5.1) but no show or
     * priority; a status in another language only is still taken. */
    rc = to_event("<presence from='alice@a.test/phone' to='bob@b.test' type='unavailable'>"
                  "<show>away</show><status xml:lang='fr'>parti</status>"
                  "<priority>5</priority></presence>",
                  &ev, &cond);
    CHECK(rc == 0 && ev && ev->kind == XS_EVENT_PRESENCE);
    if (ev) {
        CHECK_STR(ev->type, "unavailable");
        CHECK_STR(ev->status, "parti");
        CHECK_STR(ev->lang, "fr");
        CHECK(ev->show == NULL && ev->priority == 0);
    }
    xs_event_free(ev);

    /* Probe: addresses only, as sent. */
    rc = to_event("<presence from='alice@a.test' to='bob@b.test' type='probe' id='q'>"
                  "<status>x</status></presence>",
                  &ev, &cond);
    CHECK(rc == 0 && ev && ev->kind == XS_EVENT_PRESENCE);
    if (ev) {
        CHECK_STR(ev->type, "probe");
        CHECK_STR(ev->from, "alice@a.test");
        CHECK_STR(ev->id, "q");
        CHECK(ev->status == NULL);
    }
    xs_event_free(ev);

    /* The four subscription types, bare JID to bare JID whatever was sent,
     * the domain lower-cased. */
    static const char *const subs[] = {"subscribe", "subscribed", "unsubscribe", "unsubscribed"};
    for (size_t i = 0; i < 4; i++) {
        char xml[256];
        snprintf(xml, sizeof xml,
                 "<presence from='alice@A.test/phone' to='bob@b.test/x' type='%s' id='s%zu'>"
                 "<status>let me in</status></presence>",
                 subs[i], i);
        ev = NULL;
        rc = to_event(xml, &ev, &cond);
        CHECK(rc == 0 && ev && ev->kind == XS_EVENT_SUBSCRIPTION);
        if (ev) {
            CHECK_STR(ev->type, subs[i]);
            CHECK_STR(ev->from, "alice@a.test");
            CHECK_STR(ev->to, "bob@b.test");
            CHECK(ev->id && ev->id[0] == 's' && ev->id[1] == (char)('0' + i));
            CHECK(ev->status == NULL);
        }
        xs_event_free(ev);
    }

    /* Errors are never events, and are not answered. */
    ev = NULL;
    cond = XS_COND_NONE;
    rc = to_event("<presence from='alice@a.test' to='bob@b.test' type='error'><error "
                  "type='cancel'><remote-server-not-found "
                  "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>",
                  &ev, &cond);
    CHECK(rc == XS_EINVAL && cond == XS_COND_NONE && ev == NULL);
}

/* What a peer can get wrong in a presence stanza. */
static void test_presence_hostile(void)
{
    struct xs_event *ev = NULL;
    enum xs_cond cond;
    static const char *const bad_request[] = {
        "<presence from='a@a.test' to='b@b.test' type='invisible'/>",
        "<presence from='a@a.test' to='b@b.test' type=''/>",
        "<presence from='a@a.test' to='b@b.test' type='Subscribe'/>",
        "<presence to='b@b.test' type='subscribe'/>",
        "<presence from='a@a.test'/>",
        "<presence xmlns='jabber:client' from='a@a.test' to='b@b.test'/>",
        "<presence from='a@a.test' to='b@b.test'><priority>128</priority></presence>",
        "<presence from='a@a.test' to='b@b.test'><priority>-129</priority></presence>",
        ("<presence from='a@a.test' to='b@b.test'><priority>99999999999999999999</priority>"
         "</presence>"),
        "<presence from='a@a.test' to='b@b.test'><priority>high</priority></presence>",
        "<presence from='a@a.test' to='b@b.test'><priority>1.5</priority></presence>",
        "<presence from='a@a.test' to='b@b.test'><priority/></presence>",
        "<presence from='a@a.test' to='b@b.test'><priority>-</priority></presence>",
        "<presence from='a@a.test' to='b@b.test'><priority>0x10</priority></presence>",
        "<presence from='a@a.test' to='b@b.test'><priority>1 2</priority></presence>",
    };
    for (size_t i = 0; i < sizeof bad_request / sizeof bad_request[0]; i++) {
        ev = NULL;
        cond = XS_COND_NONE;
        int rc = to_event(bad_request[i], &ev, &cond);
        if (rc != XS_EPROTO || cond != XS_COND_BAD_REQUEST || ev != NULL) {
            fprintf(stderr, "not refused with bad-request: %s\n", bad_request[i]);
            CHECK(!"bad-request");
        }
        xs_event_free(ev);
    }
    /* The ends of the priority range, and a '+'. */
    static const struct {
        const char *text;
        int value;
    } prios[] = {{"127", 127}, {"-128", -128}, {"+7", 7}, {"007", 7}, {"-0", 0}};
    for (size_t i = 0; i < sizeof prios / sizeof prios[0]; i++) {
        char xml[128];
        snprintf(xml, sizeof xml,
                 "<presence from='a@a.test' to='b@b.test'><priority>%s</priority></presence>",
                 prios[i].text);
        ev = NULL;
        CHECK(to_event(xml, &ev, &cond) == 0 && ev && ev->priority == prios[i].value);
        xs_event_free(ev);
    }
    /* Bad JIDs on either end, for presence and subscriptions alike. */
    static const char *const bad_jid[] = {
        "<presence from='a@' to='b@b.test'/>",
        "<presence from='a@a.test' to='b b@b.test' type='subscribe'/>",
        "<presence from='@a.test' to='b@b.test' type='probe'/>",
        "<presence from='a@a.test' to='b@b.test/' type='unavailable'/>",
    };
    for (size_t i = 0; i < sizeof bad_jid / sizeof bad_jid[0]; i++) {
        ev = NULL;
        int rc = to_event(bad_jid[i], &ev, &cond);
        if (rc != XS_EPROTO || cond != XS_COND_JID_MALFORMED || ev != NULL) {
            fprintf(stderr, "bad jid accepted: %s\n", bad_jid[i]);
            CHECK(!"jid-malformed");
        }
    }
    /* An unknown show is dropped, the presence kept. */
    ev = NULL;
    CHECK(to_event("<presence from='a@a.test' to='b@b.test'><show>sleeping</show></presence>", &ev,
                   &cond) == 0);
    CHECK(ev && ev->show == NULL && !strcmp(ev->type, "available"));
    xs_event_free(ev);
    ev = NULL;
    CHECK(to_event("<presence from='a@a.test' to='b@b.test'><show> away</show></presence>", &ev,
                   &cond) == 0);
    CHECK(ev && ev->show == NULL);
    xs_event_free(ev);

    /* A huge status is cut to XS_XMPP_STATUS_MAX at a character boundary:
     * 'x' and then two-byte characters, so byte 1024 is inside one. */
    size_t n = 40000;
    char *xml = malloc(n + 200);
    size_t o = (size_t)sprintf(xml, "<presence from='a@a.test' to='b@b.test'><status>x");
    for (size_t i = 0; i < n / 2; i++, o += 2)
        memcpy(xml + o, "\xC3\xA9", 2);
    o += (size_t)sprintf(xml + o, "</status></presence>");
    ev = NULL;
    CHECK(to_event(xml, &ev, &cond) == 0 && ev && ev->status);
    if (ev && ev->status) {
        CHECK(strlen(ev->status) == XS_XMPP_STATUS_MAX - 1);
        CHECK(xs_addr_utf8_ok(ev->status, strlen(ev->status)));
    }
    xs_event_free(ev);
    free(xml);

    /* Many statuses: the one in the stanza's language wins, wherever it is. */
    char many[16384];
    o = (size_t)sprintf(many, "<presence from='a@a.test' to='b@b.test' xml:lang='de'>");
    for (int i = 0; i < 300; i++)
        o += (size_t)sprintf(many + o, "<status xml:lang='l%d'>s%d</status>", i, i);
    o += (size_t)sprintf(many + o, "<status xml:lang='de'>hier</status></presence>");
    ev = NULL;
    CHECK(to_event(many, &ev, &cond) == 0 && ev);
    if (ev) {
        CHECK_STR(ev->status, "hier");
        CHECK_STR(ev->lang, "de");
    }
    xs_event_free(ev);
}

static struct xs_event *presence_event(enum xs_event_kind kind, const char *type)
{
    struct xs_event *ev = xs_event_new(kind, XS_SIDE_SIP);
    xs_event_set(&ev->from, "bob@b.test/sip");
    xs_event_set(&ev->to, "alice@a.test/phone");
    xs_event_set(&ev->type, type);
    xs_event_set(&ev->id, "i1");
    xs_event_set(&ev->show, "away");
    xs_event_set(&ev->status, "out & about");
    xs_event_set(&ev->lang, "en");
    xs_event_set(&ev->note, "a PIDF note the XMPP side never reads");
    ev->priority = 3;
    return ev;
}

/* Each event kind and type to its stanza, and back. */
/* A status whose xml:lang is empty (no language, XML 1.0 §2.12) keeps it on
 * the way back out (found by fuzz_xml_parser's round trip). */
static void test_presence_empty_lang_round_trip(void)
{
    struct xs_xml_el *in = parse_one("<presence xmlns='jabber:server' from='a@a.test' "
                                     "to='b@b.test'><status xml:lang=''>hi</status></presence>");
    struct xs_event *ev = NULL;
    enum xs_cond cond;
    CHECK(in && xs_xmpp_stanza_to_event(in, &ev, &cond) == 0);
    CHECK(ev && ev->lang && !strcmp(ev->lang, ""));
    struct xs_xml_el *out = ev ? xs_xmpp_event_to_stanza(ev) : NULL;
    CHECK(out != NULL);
    if (out)
        CHECK_STR(ser(out), "<presence from='a@a.test' to='b@b.test'><status xml:lang=''>hi"
                            "</status></presence>");
    xs_xml_el_free(in);
    xs_xml_el_free(out);
    xs_event_free(ev);
}

static void test_presence_to_stanza(void)
{
    static const struct {
        enum xs_event_kind kind;
        const char *type;
        const char *xml;
    } cases[] = {
        {XS_EVENT_PRESENCE, "available",
         "<presence from='bob@b.test/sip' to='alice@a.test/phone' id='i1'>"
         "<show>away</show><status xml:lang='en'>out &amp; about</status><priority>3</priority>"
         "</presence>"},
        {XS_EVENT_PRESENCE, "unavailable",
         "<presence from='bob@b.test/sip' to='alice@a.test/phone' type='unavailable' id='i1'>"
         "<status xml:lang='en'>out &amp; about</status></presence>"},
        {XS_EVENT_PRESENCE, "probe",
         "<presence from='bob@b.test/sip' to='alice@a.test/phone' type='probe' id='i1'/>"},
        {XS_EVENT_SUBSCRIPTION, "subscribe",
         "<presence from='bob@b.test' to='alice@a.test' type='subscribe' id='i1'/>"},
        {XS_EVENT_SUBSCRIPTION, "subscribed",
         "<presence from='bob@b.test' to='alice@a.test' type='subscribed' id='i1'/>"},
        {XS_EVENT_SUBSCRIPTION, "unsubscribe",
         "<presence from='bob@b.test' to='alice@a.test' type='unsubscribe' id='i1'/>"},
        {XS_EVENT_SUBSCRIPTION, "unsubscribed",
         "<presence from='bob@b.test' to='alice@a.test' type='unsubscribed' id='i1'/>"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct xs_event *ev = presence_event(cases[i].kind, cases[i].type);
        CHECK(xs_xmpp_event_sendable(ev) == 0);
        struct xs_xml_el *el = xs_xmpp_event_to_stanza(ev);
        CHECK(el != NULL);
        if (el)
            CHECK_STR(ser(el), cases[i].xml);
        struct xs_event *back = NULL;
        enum xs_cond cond;
        CHECK(el && xs_xmpp_stanza_to_event(el, &back, &cond) == 0 && back);
        if (back) {
            CHECK(back->kind == cases[i].kind);
            CHECK_STR(back->type, cases[i].type);
            CHECK_STR(back->id, "i1");
            if (i == 0) {
                CHECK_STR(back->show, "away");
                CHECK_STR(back->status, "out & about");
                CHECK_STR(back->lang, "en");
                CHECK(back->priority == 3);
            }
        }
        xs_event_free(back);
        xs_xml_el_free(el);
        xs_event_free(ev);
    }

    /* Available without details: nothing but addresses; an unknown show
     * is left out, a priority out of range is clamped. */
    struct xs_event *ev = xs_event_new(XS_EVENT_PRESENCE, XS_SIDE_SIP);
    xs_event_set(&ev->from, "bob@b.test");
    xs_event_set(&ev->to, "alice@a.test");
    xs_event_set(&ev->type, "available");
    struct xs_xml_el *el = xs_xmpp_event_to_stanza(ev);
    CHECK_STR(ser(el), "<presence from='bob@b.test' to='alice@a.test'/>");
    xs_xml_el_free(el);
    xs_event_set(&ev->show, "busy");
    ev->priority = 1000;
    xs_event_set(&ev->status, "");
    el = xs_xmpp_event_to_stanza(ev);
    CHECK_STR(ser(el), "<presence from='bob@b.test' to='alice@a.test'><status/>"
                       "<priority>127</priority></presence>");
    xs_xml_el_free(el);
    ev->priority = -1000;
    xs_event_set(&ev->status, NULL);
    el = xs_xmpp_event_to_stanza(ev);
    CHECK_STR(ser(el), "<presence from='bob@b.test' to='alice@a.test'>"
                       "<priority>-128</priority></presence>");
    xs_xml_el_free(el);

    /* A status from the other side longer than the bound is cut too. */
    ev->priority = 0;
    char *big = malloc(5000);
    memset(big, 'a', 4999);
    big[4999] = '\0';
    memcpy(big + 1023, "\xE2\x98\xBA", 3); /* bytes 1023..1025: one character */
    xs_event_set(&ev->status, big);
    free(big);
    el = xs_xmpp_event_to_stanza(ev);
    CHECK(el != NULL);
    struct xs_event *back = NULL;
    enum xs_cond cond;
    CHECK(el && xs_xmpp_stanza_to_event(el, &back, &cond) == 0 && back && back->status);
    if (back && back->status)
        CHECK(strlen(back->status) == 1023);
    xs_event_free(back);
    xs_xml_el_free(el);

    /* What cannot be sent: unknown types, a kind/type mismatch, missing or
     * bad addresses. */
    xs_event_set(&ev->type, "subscribe");
    CHECK(xs_xmpp_event_sendable(ev) == XS_EINVAL);
    CHECK(xs_xmpp_event_to_stanza(ev) == NULL);
    xs_event_set(&ev->type, NULL);
    CHECK(xs_xmpp_event_sendable(ev) == XS_EINVAL);
    CHECK(xs_xmpp_event_to_stanza(ev) == NULL);
    xs_event_set(&ev->type, "error");
    CHECK(xs_xmpp_event_sendable(ev) == XS_EINVAL);
    xs_event_set(&ev->type, "available");
    CHECK(xs_xmpp_event_sendable(ev) == 0);
    xs_event_set(&ev->from, "bob@");
    CHECK(xs_xmpp_event_sendable(ev) == XS_EINVAL);
    xs_event_set(&ev->from, NULL);
    CHECK(xs_xmpp_event_sendable(ev) == XS_EINVAL);
    CHECK(xs_xmpp_event_to_stanza(ev) == NULL);
    xs_event_free(ev);

    ev = xs_event_new(XS_EVENT_SUBSCRIPTION, XS_SIDE_SIP);
    xs_event_set(&ev->from, "bob@b.test");
    xs_event_set(&ev->to, "alice@a.test");
    xs_event_set(&ev->type, "available");
    CHECK(xs_xmpp_event_sendable(ev) == XS_EINVAL);
    CHECK(xs_xmpp_event_to_stanza(ev) == NULL);
    xs_event_set(&ev->type, "unsubscribed");
    xs_event_set(&ev->to, "alice@a.test@x");
    CHECK(xs_xmpp_event_sendable(ev) == XS_EINVAL);
    CHECK(xs_xmpp_event_to_stanza(ev) == NULL);
    xs_event_free(ev);
}

int main(void)
{
    test_to_event();
    test_to_stanza();
    test_errors();
    test_jid();
    test_presence_to_event();
    test_presence_hostile();
    test_presence_to_stanza();
    test_presence_empty_lang_round_trip();
    return check_report("test_xmpp_translate");
}
