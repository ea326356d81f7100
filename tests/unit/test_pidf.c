/* PIDF documents: what real servers and clients send (Kamailio's
 * presence_xml, baresip, RFC 4480's RPID, a Lync-style availability), read
 * by namespace whatever the prefixes; the note and activity choices; hostile
 * documents, each refused with its exact code and reason and leaving the
 * next parse intact; the writer's exact output, its refusals, and the round
 * trip parse(write(x)) == x; allocation failure at every step. */
#include <expat.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/err.h"
#include "presence/pidf.h"

#include "alloc_testutil.h"

#define NS_ATTRS                                                                                   \
    "xmlns=\"urn:ietf:params:xml:ns:pidf\" "                                                       \
    "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "                                         \
    "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\""

static struct xs_pidf pidf; /* 4 KiB: kept off the stack of every test */

static int parse(const char *doc, const char **why)
{
    return xs_pidf_parse(doc, strlen(doc), &pidf, why);
}

/* Parses doc, which must succeed. */
static int parse_ok(const char *doc)
{
    const char *why = "unset";
    int rc = parse(doc, &why);
    if (rc)
        fprintf(stderr, "parse failed: %s (%s)\n", xs_strerror(rc), why ? why : "");
    CHECK(why == NULL);
    return rc == 0;
}

/* What a parse that fails leaves: nothing. */
static int all_zero(const struct xs_pidf *p)
{
    static const struct xs_pidf zero;
    return !memcmp(p, &zero, sizeof zero);
}

/* A small valid document; parsed after every hostile one to show that
 * nothing of the failure stays behind. */
static const char good[] = "<presence " NS_ATTRS " entity=\"sip:good@sip.test\">"
                           "<tuple id=\"g\"><status><basic>open</basic></status></tuple>"
                           "<dm:person id=\"p\"><rpid:activities><rpid:busy/></rpid:activities>"
                           "<dm:note xml:lang=\"en\">fine</dm:note></dm:person></presence>";

static void check_good_again(void)
{
    CHECK(parse_ok(good));
    CHECK_STR(pidf.entity, "sip:good@sip.test");
    CHECK(pidf.basic == XS_PIDF_OPEN);
    CHECK_STR(pidf.note, "fine");
    CHECK_STR(pidf.note_lang, "en");
    CHECK_STR(pidf.activities, "busy");
    CHECK(pidf.n_tuples == 1);
}

/* Kamailio's presence_xml: a document aggregated from two publishers,
 * pretty-printed, and its "offline" body when every publication expired. */
static void test_kamailio(void)
{
    const char *doc =
        "<?xml version=\"1.0\"?>\n"
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
        "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
        "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" "
        "xmlns:c=\"urn:ietf:params:xml:ns:pidf:cipid\" entity=\"sip:carol@sip.test\">\n"
        "  <tuple id=\"0x7f6b1c0a8d10\">\n"
        "    <status>\n"
        "      <basic>closed</basic>\n"
        "    </status>\n"
        "  </tuple>\n"
        "  <tuple id=\"t4109\">\n"
        "    <status>\n"
        "      <basic>open</basic>\n"
        "    </status>\n"
        "    <contact priority=\"0.8\">sip:carol@192.0.2.7:5060</contact>\n"
        "  </tuple>\n"
        "  <dm:person id=\"p4159\">\n"
        "    <rpid:activities>\n"
        "      <rpid:on-the-phone/>\n"
        "    </rpid:activities>\n"
        "    <dm:note>\n      On the phone\n    </dm:note>\n"
        "  </dm:person>\n"
        "</presence>\n";
    CHECK(parse_ok(doc));
    CHECK_STR(pidf.entity, "sip:carol@sip.test");
    CHECK(pidf.basic == XS_PIDF_OPEN);
    CHECK_STR(pidf.note, "On the phone");
    CHECK_STR(pidf.note_lang, "");
    CHECK_STR(pidf.activities, "on-the-phone");
    CHECK(pidf.availability == 0);
    CHECK(pidf.n_tuples == 2);
    CHECK_STR(pidf.tuples[0].id, "0x7f6b1c0a8d10");
    CHECK(pidf.tuples[0].basic == XS_PIDF_CLOSED);
    CHECK(pidf.tuples[0].priority == -1);
    CHECK_STR(pidf.tuples[1].id, "t4109");
    CHECK(pidf.tuples[1].basic == XS_PIDF_OPEN);
    CHECK(pidf.tuples[1].priority == 800);

    /* The body it makes up when nobody published (force_dummy_presence):
     * namespaces declared again on inner elements, a document-level note
     * after the tuple, a person id that is no XML ID. */
    const char *dummy =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
        "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
        "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" "
        "xmlns:c=\"urn:ietf:params:xml:ns:pidf:cipid\" entity=\"sip:carol@sip.test\"> \n"
        "<tuple xmlns=\"urn:ietf:params:xml:ns:pidf\" id=\"615293b33c62dec073e05d9421e9f48b\">\n"
        "<status>\n<basic>open</basic>\n</status>\n</tuple>\n"
        "<note xmlns=\"urn:ietf:params:xml:ns:pidf\">Available</note>\n"
        "<dm:person xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
        "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" id=\"1\">\n"
        "<rpid:activities/>\n<dm:note>Available</dm:note>\n</dm:person>\n</presence>";
    CHECK(parse_ok(dummy));
    CHECK(pidf.basic == XS_PIDF_OPEN);
    CHECK_STR(pidf.note, "Available");
    CHECK_STR(pidf.activities, "");
    CHECK_STR(pidf.tuples[0].id, "615293b33c62dec073e05d9421e9f48b");

    /* Two publications aggregated: the children of the older one appended
     * to the newer, so two persons; activities of both, in order. */
    const char *two = "<presence " NS_ATTRS " entity=\"sip:carol@sip.test\">"
                      "<tuple id=\"desk\"><status><basic>open</basic></status></tuple>"
                      "<dm:person id=\"p1\"><rpid:activities><rpid:busy/></rpid:activities>"
                      "<dm:note xml:lang=\"en\">In a meeting</dm:note></dm:person>"
                      "<tuple id=\"mobile\"><status><basic>closed</basic></status></tuple>"
                      "<dm:person id=\"p2\"><rpid:activities><rpid:on-the-phone/><rpid:busy/>"
                      "</rpid:activities><dm:note xml:lang=\"en\">Call me later</dm:note>"
                      "</dm:person></presence>";
    CHECK(parse_ok(two));
    CHECK(pidf.basic == XS_PIDF_OPEN);
    CHECK_STR(pidf.note, "In a meeting");
    CHECK_STR(pidf.note_lang, "en");
    CHECK_STR(pidf.activities, "busy on-the-phone");
    CHECK(pidf.n_tuples == 2);

    const char *offline = "<?xml version=\"1.0\"?>\n<presence "
                          "xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:carol@sip.test\">"
                          "<tuple id=\"a1\"><status><basic>closed</basic></status></tuple>"
                          "</presence>\n";
    CHECK(parse_ok(offline));
    CHECK(pidf.basic == XS_PIDF_CLOSED);
    CHECK_STR(pidf.note, "");
    CHECK_STR(pidf.activities, "");
    CHECK(pidf.n_tuples == 1);
}

/* baresip's presence module (publisher and notifier send the same body):
 * CRLF line ends, standalone="no", an empty <rpid:activities/>, a contact
 * without priority. */
static void test_baresip(void)
{
    const char *doc = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\r\n"
                      "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\r\n"
                      "    xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\"\r\n"
                      "    xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\"\r\n"
                      "    entity=\"sip:bob@sip.test\">\r\n"
                      "  <dm:person id=\"p4159\"><rpid:activities/></dm:person>\r\n"
                      "  <tuple id=\"t4109\">\r\n"
                      "    <status>\r\n"
                      "      <basic>closed</basic>\r\n"
                      "    </status>\r\n"
                      "    <contact>sip:bob@sip.test</contact>\r\n"
                      "  </tuple>\r\n"
                      "</presence>\r\n";
    CHECK(parse_ok(doc));
    CHECK_STR(pidf.entity, "sip:bob@sip.test");
    CHECK(pidf.basic == XS_PIDF_CLOSED);
    CHECK_STR(pidf.activities, "");
    CHECK_STR(pidf.note, "");
    CHECK(pidf.n_tuples == 1);
    CHECK(pidf.tuples[0].priority == -1);
}

/* The pre-RFC RPID draft's person namespaces, as Asterisk's PIDF bodies
 * carry them: activities under pp:person/status, a presence-level note. */
static void test_asterisk(void)
{
    const char *doc =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
        "xmlns:pp=\"urn:ietf:params:xml:ns:pidf:person\" "
        "xmlns:es=\"urn:ietf:params:xml:ns:pidf:rpid:status:rpid-status\" "
        "xmlns:ep=\"urn:ietf:params:xml:ns:pidf:rpid:rpid-person\" "
        "entity=\"sip:100@pbx.test\">\n"
        "<pp:person><status><ep:activities><ep:on-the-phone/></ep:activities></status>"
        "</pp:person>\n<note>On the phone</note>\n"
        "<tuple id=\"100\"><contact priority=\"1\">sip:100@pbx.test</contact>"
        "<status><basic>open</basic></status></tuple>\n</presence>\n";
    CHECK(parse_ok(doc));
    CHECK(pidf.basic == XS_PIDF_OPEN);
    CHECK_STR(pidf.activities, "on-the-phone");
    CHECK_STR(pidf.note, "On the phone");
    CHECK(pidf.tuples[0].priority == 1000);
}

/* An RPID-rich document in the manner of RFC 4480's example: a tuple with
 * RPID service details and notes in two languages, a person with
 * activities (their own rpid:note among them), mood with an <other>,
 * privacy <unknown/>, and a dm:note, and a device with a note. */
static void test_rpid_rich(void)
{
    const char *doc =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\""
        " xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\""
        " xmlns:lt=\"urn:ietf:params:xml:ns:location-type\""
        " xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"pres:someone@example.com\">"
        "<tuple id=\"bs35r9\"><status><basic>open</basic></status>"
        "<dm:deviceID>urn:device:0003ba4811e3</dm:deviceID>"
        "<rpid:relationship><rpid:self/></rpid:relationship>"
        "<rpid:service-class><rpid:electronic/></rpid:service-class>"
        "<contact priority=\"0.8\">im:someone@mobilecarrier.net</contact>"
        "<note xml:lang=\"en\">Don't Disturb Please!</note>"
        "<note xml:lang=\"fr\">Ne d\xc3\xa9rangez pas, s'il vous plait</note>"
        "<timestamp>2005-10-27T16:49:29Z</timestamp></tuple>"
        "<dm:person id=\"p1\">"
        "<rpid:activities from=\"2005-05-30T12:00:00+05:00\" until=\"2005-05-30T17:00:00+05:00\">"
        "<rpid:note>Far away</rpid:note><rpid:away/><rpid:meeting/><rpid:away/></rpid:activities>"
        "<rpid:class>calendar</rpid:class>"
        "<rpid:mood><rpid:angry/><rpid:other>brooding</rpid:other></rpid:mood>"
        "<rpid:place-is><rpid:audio><rpid:noisy/></rpid:audio></rpid:place-is>"
        "<rpid:place-type><lt:residence/></rpid:place-type>"
        "<rpid:privacy><rpid:unknown/></rpid:privacy>"
        "<rpid:sphere>bowling league</rpid:sphere>"
        "<rpid:time-offset>-240</rpid:time-offset>"
        "<dm:note>Scoring 120</dm:note>"
        "<dm:timestamp>2005-05-30T16:09:44+05:00</dm:timestamp></dm:person>"
        "<dm:device id=\"pc147\">"
        "<rpid:user-input idle-threshold=\"600\">idle</rpid:user-input>"
        "<dm:deviceID>urn:device:0003ba4811e3</dm:deviceID><dm:note>PC</dm:note></dm:device>"
        "</presence>";
    CHECK(parse_ok(doc));
    CHECK_STR(pidf.entity, "pres:someone@example.com");
    CHECK(pidf.basic == XS_PIDF_OPEN);
    CHECK_STR(pidf.note, "Scoring 120");
    CHECK_STR(pidf.note_lang, "");
    CHECK_STR(pidf.activities, "away meeting");
    CHECK(pidf.n_tuples == 1);
    CHECK_STR(pidf.tuples[0].id, "bs35r9");
    CHECK(pidf.tuples[0].priority == 800);

    /* Without the person's own note, the activities' note is next. */
    const char *inner = "<presence " NS_ATTRS " entity=\"e\">"
                        "<tuple id=\"t\"><status><basic>open</basic></status>"
                        "<note>tuple</note></tuple>"
                        "<dm:person id=\"p\"><rpid:activities><rpid:note>Far away</rpid:note>"
                        "<rpid:other>fishing</rpid:other><rpid:unknown/><rpid:vacation/>"
                        "</rpid:activities></dm:person></presence>";
    CHECK(parse_ok(inner));
    CHECK_STR(pidf.note, "Far away");
    CHECK_STR(pidf.activities, "other vacation");

    /* Without any person note: the tuple's, in its own language. */
    const char *tuple_only = "<presence " NS_ATTRS " entity=\"e\">"
                             "<tuple id=\"t\"><status><basic>open</basic></status>"
                             "<note xml:lang=\"en\">Don't Disturb Please!</note>"
                             "<note xml:lang=\"fr\">Ne d\xc3\xa9rangez pas</note></tuple>"
                             "<dm:device id=\"d\"><dm:note xml:lang=\"de\">Rechner</dm:note>"
                             "</dm:device><note>document</note></presence>";
    CHECK(parse_ok(tuple_only));
    CHECK_STR(pidf.note, "Don't Disturb Please!");
    CHECK_STR(pidf.note_lang, "en");
}

/* A Lync-style document: the availability number in the state schema,
 * once with a prefix and once as a default namespace, and in another
 * Microsoft namespace; values that are not numbers are passed over. */
static void test_lync(void)
{
    const char *doc =
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
        "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" entity=\"sip:dave@ocs.test\">"
        "<tuple id=\"t\"><status><basic>open</basic></status></tuple>"
        "<dm:person id=\"p\">"
        "<state xmlns=\"http://schemas.microsoft.com/2006/09/sip/state\" "
        "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"aggregateState\">"
        "<availability> 6500 </availability>"
        "<activity><custom LCID=\"1033\">In a call</custom></activity></state>"
        "<dm:note>In a call</dm:note></dm:person></presence>";
    CHECK(parse_ok(doc));
    CHECK(pidf.availability == 6500);
    CHECK(pidf.basic == XS_PIDF_OPEN);
    CHECK_STR(pidf.note, "In a call");
    CHECK_STR(pidf.activities, "");

    const char *prefixed =
        "<presence " NS_ATTRS " xmlns:st=\"https://schemas.microsoft.com/2006/09/sip/state\" "
        "entity=\"sip:dave@ocs.test\"><tuple id=\"t\"><status><basic>open</basic></status>"
        "</tuple><dm:person id=\"p\"><st:availability>busy</st:availability>"
        "<st:availability>99999999999</st:availability>"
        "<st:availability>15500</st:availability><st:availability>3500</st:availability>"
        "</dm:person></presence>";
    CHECK(parse_ok(prefixed));
    CHECK(pidf.availability == 15500);

    const char *other_ms = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                           "<availability xmlns=\"http://schemas.microsoft.com/2002/09/sip/"
                           "presence\">18500</availability></presence>";
    CHECK(parse_ok(other_ms));
    CHECK(pidf.availability == 18500);
    CHECK(pidf.basic == XS_PIDF_UNKNOWN);
    CHECK(pidf.n_tuples == 0);

    /* Not Microsoft's: the same name elsewhere means nothing. */
    const char *lookalike = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                            "<availability>6500</availability>"
                            "<availability xmlns=\"http://schemas.microsoft.com.evil.test/\">"
                            "9500</availability></presence>";
    CHECK(parse_ok(lookalike));
    CHECK(pidf.availability == 0);
}

/* One document written four ways: prefixes and default namespaces do not
 * matter, namespaces do. */
static void test_namespaces(void)
{
    const char *forms[] = {
        "<presence " NS_ATTRS " entity=\"sip:x@y\"><tuple id=\"t\"><status><basic>open</basic>"
        "</status></tuple><dm:person id=\"p\"><rpid:activities><rpid:busy/>"
        "</rpid:activities><dm:note xml:lang=\"en\">hi</dm:note></dm:person></presence>",

        "<p:presence xmlns:p=\"urn:ietf:params:xml:ns:pidf\" "
        "xmlns:d=\"urn:ietf:params:xml:ns:pidf:data-model\" "
        "xmlns:r=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:x@y\"><p:tuple id=\"t\">"
        "<p:status><p:basic>open</p:basic></p:status></p:tuple><d:person id=\"p\">"
        "<r:activities><r:busy/></r:activities><d:note xml:lang=\"en\">hi</d:note>"
        "</d:person></p:presence>",

        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:x@y\"><tuple id=\"t\">"
        "<status><basic>open</basic></status></tuple>"
        "<person xmlns=\"urn:ietf:params:xml:ns:pidf:data-model\" id=\"p\">"
        "<activities xmlns=\"urn:ietf:params:xml:ns:pidf:rpid\"><busy/></activities>"
        "<note xml:lang=\"en\">hi</note></person></presence>",

        /* The prefixes swapped: dm names RPID and rpid the data model. */
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
        "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:data-model\" "
        "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:x@y\"><tuple id=\"t\">"
        "<status><basic>open</basic></status></tuple><rpid:person id=\"p\">"
        "<dm:activities><dm:busy/></dm:activities><rpid:note xml:lang=\"en\">hi</rpid:note>"
        "</rpid:person></presence>",
    };
    struct xs_pidf first;
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        CHECK(parse_ok(forms[i]));
        if (i == 0)
            memcpy(&first, &pidf, sizeof first);
        else
            CHECK(!memcmp(&first, &pidf, sizeof first));
    }
    CHECK_STR(first.activities, "busy");
    CHECK_STR(first.note, "hi");

    /* The familiar prefixes bound to other namespaces: no person, no
     * activities, no status of a tuple. */
    const char *wrong = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
                        "xmlns:dm=\"urn:example:dm\" xmlns:rpid=\"urn:example:rpid\" entity=\"e\">"
                        "<tuple id=\"t\"><status xmlns=\"urn:example:pidf\"><basic>open</basic>"
                        "</status></tuple><dm:person id=\"p\"><rpid:activities><rpid:busy/>"
                        "</rpid:activities><dm:note>hi</dm:note></dm:person></presence>";
    CHECK(parse_ok(wrong));
    CHECK(pidf.basic == XS_PIDF_UNKNOWN);
    CHECK(pidf.n_tuples == 1);
    CHECK_STR(pidf.activities, "");
    CHECK_STR(pidf.note, "");

    /* The 2002 draft namespace some old phones send is not PIDF. */
    const char *rc_why = NULL;
    CHECK(parse("<presence xmlns=\"urn:ietf:params:xml:ns:cpim-pidf\" entity=\"e\"/>", &rc_why) ==
          XS_EPROTO);
    CHECK_STR(rc_why, "root element is not <presence> in urn:ietf:params:xml:ns:pidf");
}

/* <basic> across tuples, trimmed and in any case; contact priorities. */
static void test_tuples(void)
{
    const char *doc = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                      "<tuple id=\"a\"><status><basic>closed</basic></status>"
                      "<contact priority=\"1\">x</contact></tuple>"
                      "<tuple id=\"b\"><status><basic>\n  Open\t</basic></status>"
                      "<contact priority=\"0.125\">x</contact></tuple>"
                      "<tuple id=\"c\"><status><basic>opened</basic></status>"
                      "<contact priority=\"1.5\">x</contact></tuple>"
                      "<tuple id=\"d\"><status><basic>open                                   "
                      "      x</basic></status><contact priority=\"0.1234\">x</contact></tuple>"
                      "<tuple id=\"e\"><status/><contact priority=\"1.000\">x</contact></tuple>"
                      "<tuple id=\"f\"><basic>open</basic><contact priority=\"0\">x</contact>"
                      "</tuple>"
                      "<tuple id=\"g\"><status><basic>open                                   "
                      "          </basic></status><contact priority=\"\">x</contact></tuple>"
                      "<tuple id=\"h\"><contact priority=\"0.\">x</contact></tuple>"
                      "<tuple id=\"i\"><contact priority=\"abc\">x</contact></tuple>"
                      "</presence>";
    CHECK(parse_ok(doc));
    CHECK(pidf.basic == XS_PIDF_OPEN);
    CHECK(pidf.n_tuples == 9);
    static const enum xs_pidf_basic basics[] = {XS_PIDF_CLOSED,  XS_PIDF_OPEN,    XS_PIDF_UNKNOWN,
                                                XS_PIDF_UNKNOWN, XS_PIDF_UNKNOWN, XS_PIDF_UNKNOWN,
                                                XS_PIDF_OPEN,    XS_PIDF_UNKNOWN, XS_PIDF_UNKNOWN};
    static const int prios[] = {1000, 125, -1, -1, 1000, 0, -1, 0, -1};
    for (size_t i = 0; i < 9; i++) {
        CHECK(pidf.tuples[i].id[0] == (char)('a' + i) && !pidf.tuples[i].id[1]);
        CHECK(pidf.tuples[i].basic == basics[i]);
        CHECK(pidf.tuples[i].priority == prios[i]);
    }

    CHECK(parse_ok("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                   "<tuple id=\"a\"><status><basic>closed</basic></status></tuple>"
                   "<tuple id=\"b\"><status><basic>CLOSED</basic></status></tuple></presence>"));
    CHECK(pidf.basic == XS_PIDF_CLOSED);
    CHECK(parse_ok("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                   "<tuple id=\"a\"><status><basic/></status></tuple></presence>"));
    CHECK(pidf.basic == XS_PIDF_UNKNOWN);

    /* A tuple id is cut to what the struct holds, on a character. */
    char doc2[512];
    char id[80];
    memset(id, 'i', 63);
    memcpy(id + 63, "\xc3\xa9zz", 5); /* "é" straddles byte 64 */
    snprintf(doc2, sizeof doc2,
             "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\"><tuple id=\"%s\"/>"
             "</presence>",
             id);
    CHECK(parse_ok(doc2));
    CHECK(strlen(pidf.tuples[0].id) == 63);
    CHECK(pidf.tuples[0].basic == XS_PIDF_UNKNOWN);
    CHECK(pidf.tuples[0].priority == -1);

    /* Exactly the maximum of tuples is fine. */
    char doc3[4096];
    size_t off = (size_t)snprintf(doc3, sizeof doc3,
                                  "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">");
    for (int i = 0; i < XS_PIDF_MAX_TUPLES; i++)
        off += (size_t)snprintf(doc3 + off, sizeof doc3 - off,
                                "<tuple id=\"t%d\"><status><basic>%s</basic></status></tuple>", i,
                                i == XS_PIDF_MAX_TUPLES - 1 ? "open" : "closed");
    snprintf(doc3 + off, sizeof doc3 - off, "</presence>");
    CHECK(parse_ok(doc3));
    CHECK(pidf.n_tuples == XS_PIDF_MAX_TUPLES);
    CHECK(pidf.basic == XS_PIDF_OPEN);
    CHECK_STR(pidf.tuples[XS_PIDF_MAX_TUPLES - 1].id, "t31");
}

/* Which note, and in which language. */
static void test_notes(void)
{
    /* Several languages: the one without xml:lang wins... */
    CHECK(parse_ok("<presence " NS_ATTRS " entity=\"e\"><dm:person id=\"p\">"
                   "<dm:note xml:lang=\"en\">Out to lunch</dm:note>"
                   "<dm:note xml:lang=\"de\">Beim Mittagessen</dm:note>"
                   "<dm:note>lunch</dm:note><dm:note>second</dm:note></dm:person></presence>"));
    CHECK_STR(pidf.note, "lunch");
    CHECK_STR(pidf.note_lang, "");
    /* ...else the first. */
    CHECK(parse_ok("<presence " NS_ATTRS " entity=\"e\"><dm:person id=\"p\">"
                   "<dm:note xml:lang=\"ja\">\xe6\x98\xbc\xe9\xa3\x9f</dm:note>"
                   "<dm:note xml:lang=\"en\">Out to lunch</dm:note></dm:person></presence>"));
    CHECK_STR(pidf.note, "\xe6\x98\xbc\xe9\xa3\x9f");
    CHECK_STR(pidf.note_lang, "ja");
    /* The language is inherited, and xml:lang="" takes it away again. */
    CHECK(parse_ok("<presence " NS_ATTRS " entity=\"e\" xml:lang=\"fr\"><dm:person id=\"p\">"
                   "<dm:note>D\xc3\xa9jeuner</dm:note></dm:person></presence>"));
    CHECK_STR(pidf.note, "D\xc3\xa9jeuner");
    CHECK_STR(pidf.note_lang, "fr");
    CHECK(parse_ok("<presence " NS_ATTRS " entity=\"e\" xml:lang=\"fr\"><dm:person id=\"p\">"
                   "<dm:note>D\xc3\xa9jeuner</dm:note><dm:note xml:lang=\"\">lunch</dm:note>"
                   "</dm:person></presence>"));
    CHECK_STR(pidf.note, "lunch");
    CHECK_STR(pidf.note_lang, "");
    /* A language tag too long to keep is still a language. */
    CHECK(parse_ok("<presence " NS_ATTRS " entity=\"e\"><dm:person id=\"p\">"
                   "<dm:note xml:lang=\"en-x-aaaaaaaa-bbbbbbbb-cccccccc-ddddddd\">long</dm:note>"
                   "<dm:note xml:lang=\"en\">short</dm:note>"
                   "</dm:person></presence>"));
    CHECK_STR(pidf.note, "long");
    CHECK_STR(pidf.note_lang, "");
    /* Person before tuple before document, whatever the order in it;
     * whitespace-only notes are none. */
    CHECK(parse_ok("<presence " NS_ATTRS " entity=\"e\"><tuple id=\"t\"><note>tuple</note>"
                   "</tuple><note>document</note><dm:person id=\"p\"><dm:note>person</dm:note>"
                   "</dm:person></presence>"));
    CHECK_STR(pidf.note, "person");
    CHECK(parse_ok("<presence " NS_ATTRS " entity=\"e\"><tuple id=\"t\"><note> \n </note>"
                   "</tuple><note>document</note><dm:person id=\"p\"><dm:note>\t</dm:note>"
                   "</dm:person></presence>"));
    CHECK_STR(pidf.note, "document");
    CHECK(parse_ok("<presence " NS_ATTRS " entity=\"e\"><note>document</note>"
                   "<tuple id=\"t\"><note>tuple</note></tuple></presence>"));
    CHECK_STR(pidf.note, "tuple");
    /* Notes in other extensions, and text in a note's children, are not read. */
    CHECK(parse_ok("<presence " NS_ATTRS " entity=\"e\"><x:ext xmlns:x=\"urn:x\">"
                   "<dm:note>hidden</dm:note></x:ext><tuple id=\"t\"><note>a<x:b xmlns:x=\"urn:x\">"
                   "b</x:b>c</note></tuple></presence>"));
    CHECK_STR(pidf.note, "ac");
    /* Entities and character references are text. */
    CHECK(parse_ok("<presence " NS_ATTRS " entity=\"e\"><note>a &amp; b &lt;c&gt; "
                   "&#x263A;</note></presence>"));
    CHECK_STR(pidf.note, "a & b <c> \xe2\x98\xba");
}

static void check_fails(const char *doc, size_t len, int rc, const char *why_expected)
{
    const char *why = NULL;
    memset(&pidf, 0xA5, sizeof pidf);
    int got = xs_pidf_parse(doc, len, &pidf, &why);
    CHECK(got == rc);
    CHECK_STR(why, why_expected);
    CHECK(all_zero(&pidf));
    if (got != rc || !why || strcmp(why, why_expected))
        fprintf(stderr, "  for %.60s: %s (%s)\n", doc ? doc : "(null)", xs_strerror(got),
                why ? why : "");
    check_good_again();
}

static char *repeat(const char *head, const char *unit, size_t n, const char *tail, size_t *len)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1);
    memcpy(s, head, hl);
    for (size_t i = 0; i < n; i++)
        memcpy(s + hl + i * ul, unit, ul);
    memcpy(s + hl + ul * n, tail, tl + 1);
    *len = hl + ul * n + tl;
    return s;
}

static void test_hostile(void)
{
    const char *head = "<presence " NS_ATTRS " entity=\"e\"><note>";
    size_t len;

    /* Size: the maximum passes, one more byte does not. */
    char *s = repeat(head, "x", XS_PIDF_MAX_DOC - strlen(head) - 17, "</note></presence>", &len);
    CHECK(len == XS_PIDF_MAX_DOC + 1);
    check_fails(s, len, XS_ELIMIT, "PIDF document larger than 65536 bytes");
    memcpy(s + len - 19, "</note></presence>", 19);
    CHECK(xs_pidf_parse(s, len - 1, &pidf, NULL) == 0);
    CHECK(strlen(pidf.note) == XS_PIDF_TEXT_MAX);
    free(s);

    /* Depth: 16 elements pass, 17 do not. */
    s = repeat("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">", "<a>", 15, "",
               &len);
    char deep[1024];
    snprintf(deep, sizeof deep, "%s%s</presence>", s,
             "</a></a></a></a></a></a></a></a></a></a>"
             "</a></a></a></a></a>");
    CHECK(parse_ok(deep));
    free(s);
    s = repeat("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">", "<a>", 16, "",
               &len);
    check_fails(s, len, XS_ELIMIT, "elements nested deeper than 16");
    free(s);
    s = repeat("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">", "<a>", 100000, "",
               &len);
    check_fails(s, len, XS_ELIMIT, "PIDF document larger than 65536 bytes");
    check_fails(s, XS_PIDF_MAX_DOC, XS_ELIMIT, "elements nested deeper than 16");
    free(s);

    /* Entities: the billion laughs, an external entity, a parameter
     * entity, none of them with a DTD allowed; an undefined entity. */
    const char *laughs =
        "<?xml version=\"1.0\"?><!DOCTYPE presence [<!ENTITY lol \"lol\">"
        "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
        "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
        "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\"><note>&lol3;</note>"
        "</presence>";
    check_fails(laughs, strlen(laughs), XS_EPROTO, "DTD not allowed in PIDF");
    const char *xxe = "<!DOCTYPE presence [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
                      "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                      "<note>&xxe;</note></presence>";
    check_fails(xxe, strlen(xxe), XS_EPROTO, "DTD not allowed in PIDF");
    const char *sys = "<!DOCTYPE presence SYSTEM \"http://example.com/pidf.dtd\">"
                      "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\"/>";
    check_fails(sys, strlen(sys), XS_EPROTO, "DTD not allowed in PIDF");
    const char *undefined = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                            "<note>&xxe;</note></presence>";
    check_fails(undefined, strlen(undefined), XS_EPROTO,
                XML_ErrorString(XML_ERROR_UNDEFINED_ENTITY));

    /* Truncated: every proper prefix of a real document fails as not
     * well-formed, and never with a partial result. */
    size_t glen = strlen(good);
    int all_proto = 1, all_zeroed = 1;
    for (size_t n = 0; n < glen; n++) {
        memset(&pidf, 0xA5, sizeof pidf);
        const char *why = NULL;
        if (xs_pidf_parse(good, n, &pidf, &why) != XS_EPROTO || !why)
            all_proto = 0;
        if (!all_zero(&pidf))
            all_zeroed = 0;
    }
    CHECK(all_proto);
    CHECK(all_zeroed);
    check_fails(good, glen - 1, XS_EPROTO, XML_ErrorString(XML_ERROR_UNCLOSED_TOKEN));
    check_fails(good, 0, XS_EPROTO, XML_ErrorString(XML_ERROR_NO_ELEMENTS));
    check_fails(good, 20, XS_EPROTO, XML_ErrorString(XML_ERROR_UNCLOSED_TOKEN));

    /* Not XML, or not alone. */
    check_fails("hello", 5, XS_EPROTO, XML_ErrorString(XML_ERROR_SYNTAX));
    check_fails("{\"presence\": 1}", 15, XS_EPROTO, XML_ErrorString(XML_ERROR_INVALID_TOKEN));
    const char *junk = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\"/><x/>";
    check_fails(junk, strlen(junk), XS_EPROTO, XML_ErrorString(XML_ERROR_JUNK_AFTER_DOC_ELEMENT));
    const char *unbound = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                          "<dm:person/></presence>";
    check_fails(unbound, strlen(unbound), XS_EPROTO, XML_ErrorString(XML_ERROR_UNBOUND_PREFIX));
    check_fails(NULL, 3, XS_EINVAL, "no document");

    /* Wrong root. */
    const char *nons = "<presence entity=\"e\"><tuple id=\"t\"/></presence>";
    check_fails(nons, strlen(nons), XS_EPROTO,
                "root element is not <presence> in urn:ietf:params:xml:ns:pidf");
    const char *tuple = "<tuple xmlns=\"urn:ietf:params:xml:ns:pidf\" id=\"t\"/>";
    check_fails(tuple, strlen(tuple), XS_EPROTO,
                "root element is not <presence> in urn:ietf:params:xml:ns:pidf");
    const char *xmpp = "<presence xmlns=\"jabber:client\" from=\"a@b\"/>";
    check_fails(xmpp, strlen(xmpp), XS_EPROTO,
                "root element is not <presence> in urn:ietf:params:xml:ns:pidf");

    /* Too many tuples. */
    s = repeat("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">",
               "<tuple id=\"t\"><status><basic>open</basic></status></tuple>",
               XS_PIDF_MAX_TUPLES + 1, "</presence>", &len);
    check_fails(s, len, XS_ELIMIT, "more than 32 tuples");
    free(s);

    /* An entity longer than the struct holds is refused, not cut (a cut
     * URI is someone else's). */
    s = repeat("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:", "a", 508, "\"/>",
               &len);
    check_fails(s, len, XS_ELIMIT, "presence entity longer than 511 bytes");
    free(s);
    s = repeat("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:", "a", 507, "\"/>",
               &len);
    CHECK(xs_pidf_parse(s, len, &pidf, NULL) == 0);
    CHECK(strlen(pidf.entity) == 511);
    free(s);

    /* A huge note is cut at XS_PIDF_TEXT_MAX, on a character boundary. */
    s = repeat(head, "\xe2\x82\xac", 20000, "</note></presence>", &len); /* "€" x 20000 */
    CHECK(xs_pidf_parse(s, len, &pidf, NULL) == 0);
    CHECK(strlen(pidf.note) == 1023); /* 341 whole characters */
    CHECK(!memcmp(pidf.note + 1020, "\xe2\x82\xac", 3));
    free(s);
    s = repeat(head, "\xf0\x9f\x98\x80", 1000, "</note></presence>", &len); /* 4-byte */
    CHECK(xs_pidf_parse(s, len, &pidf, NULL) == 0);
    CHECK(strlen(pidf.note) == 1024);
    free(s);
    s = repeat("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\"><note>a", "\xc3\xa9",
               600, "</note></presence>", &len); /* 1 + 2 x 600: the cap falls inside one */
    CHECK(xs_pidf_parse(s, len, &pidf, NULL) == 0);
    CHECK(strlen(pidf.note) == 1023);
    free(s);

    /* 10,000 activities: eight kept, in order, repeats folded; names over
     * 32 bytes, <unknown/> and other namespaces' elements skipped. */
    char unit[64];
    s = malloc(XS_PIDF_MAX_DOC);
    size_t off = (size_t)snprintf(s, XS_PIDF_MAX_DOC,
                                  "<presence " NS_ATTRS " entity=\"e\"><dm:person id=\"p\">"
                                  "<activities xmlns=\"urn:ietf:params:xml:ns:pidf:rpid\">"
                                  "<unknown/><x:y xmlns:x=\"urn:x\"/>"
                                  "<abcdefghijklmnopqrstuvwxyz0123456/>"
                                  "<abcdefghijklmnopqrstuvwxyz012345/><away/>");
    for (int i = 0; i < 10000; i++) {
        size_t n = (size_t)snprintf(unit, sizeof unit, i % 1000 ? "<a/>" : "<b%d/>", i);
        memcpy(s + off, unit, n);
        off += n;
    }
    memcpy(s + off, "</activities></dm:person></presence>", 36);
    off += 36;
    CHECK(off <= XS_PIDF_MAX_DOC);
    CHECK(xs_pidf_parse(s, off, &pidf, NULL) == 0);
    CHECK_STR(pidf.activities,
              "abcdefghijklmnopqrstuvwxyz012345 away b0 a b1000 b2000 b3000 b4000");
    free(s);
    s = repeat("<presence " NS_ATTRS " entity=\"e\"><rpid:activities>", "<rpid:a/><rpid:b/>", 1500,
               "<rpid:c/></rpid:activities></presence>", &len);
    CHECK(xs_pidf_parse(s, len, &pidf, NULL) == 0);
    CHECK_STR(pidf.activities, "a b c");
    free(s);

    /* Invalid UTF-8 and NUL bytes. */
    const char *bad_utf8 = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                           "<note>caf\xc3\x28</note></presence>";
    check_fails(bad_utf8, strlen(bad_utf8), XS_EPROTO, XML_ErrorString(XML_ERROR_INVALID_TOKEN));
    const char *overlong = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                           "<note>\xc0\xaf</note></presence>";
    check_fails(overlong, strlen(overlong), XS_EPROTO, XML_ErrorString(XML_ERROR_INVALID_TOKEN));
    const char *surrogate = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                            "<note>\xed\xa0\x80</note></presence>";
    check_fails(surrogate, strlen(surrogate), XS_EPROTO, XML_ErrorString(XML_ERROR_INVALID_TOKEN));
    static const char nul[] = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                              "<note>a\0b</note></presence>";
    check_fails(nul, sizeof nul - 1, XS_EPROTO, XML_ErrorString(XML_ERROR_INVALID_TOKEN));
    static const char nul_end[] =
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\"/>\0";
    check_fails(nul_end, sizeof nul_end - 1, XS_EPROTO, XML_ErrorString(XML_ERROR_INVALID_TOKEN));
    const char *ctl = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                      "<note>&#1;</note></presence>";
    check_fails(ctl, strlen(ctl), XS_EPROTO, XML_ErrorString(XML_ERROR_BAD_CHAR_REF));

    /* Another encoding declared; a UTF-16 document. */
    const char *latin1 = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
                         "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\"/>";
    check_fails(latin1, strlen(latin1), XS_EPROTO, "PIDF document in an encoding other than UTF-8");
    static const char utf16[] = "\xff\xfe<\0p\0/\0>\0";
    const char *why = NULL;
    CHECK(xs_pidf_parse(utf16, sizeof utf16 - 1, &pidf, &why) == XS_EPROTO);
    check_good_again();

    /* Comments and processing instructions are harmless and passed over. */
    CHECK(parse_ok("<!-- x --><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"e\">"
                   "<?pi data?><tuple id=\"t\"><status><basic><!-- c -->open</basic></status>"
                   "</tuple></presence>"));
    CHECK(pidf.basic == XS_PIDF_OPEN);
}

static void write_ok(struct xs_buf *b, const char *entity, const char *tuple_id,
                     enum xs_pidf_basic basic, const char *note, const char *lang,
                     const char *activities, int availability)
{
    xs_buf_reset(b);
    CHECK(xs_pidf_write(entity, tuple_id, basic, note, lang, activities, availability, b) == 0);
}

static void test_write(void)
{
    struct xs_buf b;
    xs_buf_init(&b, 1 << 16);
    write_ok(&b, "sip:alice@xmpp.test", NULL, XS_PIDF_OPEN, "Gone <fishing> & \"back\"", "en",
             "away", 0);
    CHECK_STR(b.data,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
              "<presence xmlns='urn:ietf:params:xml:ns:pidf'"
              " xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model'"
              " xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='sip:alice@xmpp.test'>"
              "<tuple id='t'><status><basic>open</basic></status>"
              "<note xml:lang='en'>Gone &lt;fishing&gt; &amp; &quot;back&quot;</note></tuple>"
              "<dm:person id='p'><rpid:activities><rpid:away/></rpid:activities>"
              ""
              "</dm:person></presence>");

    write_ok(&b, "sip:alice@xmpp.test", "a1", XS_PIDF_CLOSED, NULL, NULL, NULL, 0);
    CHECK_STR(b.data, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                      "<presence xmlns='urn:ietf:params:xml:ns:pidf'"
                      " xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model'"
                      " xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='sip:alice@xmpp.test'>"
                      "<tuple id='a1'><status><basic>closed</basic></status></tuple></presence>");

    write_ok(&b, "sip:a@b", "p", XS_PIDF_OPEN, "  ", "en", "busy unknown busy on-the-phone", 6500);
    CHECK_STR(b.data, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                      "<presence xmlns='urn:ietf:params:xml:ns:pidf'"
                      " xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model'"
                      " xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='sip:a@b'>"
                      "<tuple id='p'><status><basic>open</basic></status></tuple>"
                      "<dm:person id='p1'><rpid:activities><rpid:busy/><rpid:on-the-phone/>"
                      "</rpid:activities><availability "
                      "xmlns='http://schemas.microsoft.com/2006/09/sip/state'>6500</availability>"
                      "</dm:person></presence>");
    CHECK(parse_ok(b.data));
    CHECK(pidf.availability == 6500);
    CHECK_STR(pidf.activities, "busy on-the-phone");
    CHECK_STR(pidf.note, "");

    /* What XML cannot carry comes out as U+FFFD, and the result parses. */
    write_ok(&b, "sip:a\x01@b", NULL, XS_PIDF_OPEN, "bad \xc3\x28 ctl \x02 end", NULL, NULL, 0);
    CHECK(parse_ok(b.data));
    CHECK_STR(pidf.entity, "sip:a\xef\xbf\xbd@b");
    CHECK_STR(pidf.note, "bad \xef\xbf\xbd( ctl \xef\xbf\xbd end");

    /* Refusals leave out as it was. */
    xs_buf_reset(&b);
    xs_buf_append_str(&b, "kept");
    struct {
        const char *entity, *tuple_id;
        enum xs_pidf_basic basic;
        const char *activities;
        int availability;
    } bad[] = {
        {NULL, NULL, XS_PIDF_OPEN, NULL, 0},
        {"", NULL, XS_PIDF_OPEN, NULL, 0},
        {"e", NULL, XS_PIDF_UNKNOWN, NULL, 0},
        {"e", NULL, (enum xs_pidf_basic)7, NULL, 0},
        {"e", NULL, XS_PIDF_OPEN, NULL, -1},
        {"e", "1t", XS_PIDF_OPEN, NULL, 0},
        {"e", "a b", XS_PIDF_OPEN, NULL, 0},
        {"e", "", XS_PIDF_OPEN, NULL, 0},
        {"e", "a:b", XS_PIDF_OPEN, NULL, 0},
        {"e", "t\xc3\xa9", XS_PIDF_OPEN, NULL, 0},
        {"e", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", XS_PIDF_OPEN,
         NULL, 0},
        {"e", NULL, XS_PIDF_OPEN, "away rpid:busy", 0},
        {"e", NULL, XS_PIDF_OPEN, "away 9to5", 0},
        {"e", NULL, XS_PIDF_OPEN, "away <busy/>", 0},
        {"e", NULL, XS_PIDF_OPEN, "note", 0},
        {"e", NULL, XS_PIDF_OPEN, "abcdefghijklmnopqrstuvwxyz0123456", 0},
        {"e", NULL, XS_PIDF_OPEN, "a b c d e f g h i", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = xs_pidf_write(bad[i].entity, bad[i].tuple_id, bad[i].basic, "n", "en",
                               bad[i].activities, bad[i].availability, &b);
        CHECK(rc == XS_EINVAL);
        if (rc != XS_EINVAL)
            fprintf(stderr, "  bad[%zu] gave %d\n", i, rc);
    }
    char long_entity[600];
    memset(long_entity, 'a', 512);
    long_entity[512] = '\0';
    CHECK(xs_pidf_write(long_entity, NULL, XS_PIDF_OPEN, NULL, NULL, NULL, 0, &b) == XS_EINVAL);
    CHECK_STR(b.data, "kept");
    /* 64 bytes of id, 32 of a name, eight names: the limits themselves pass. */
    CHECK(xs_pidf_write("e", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                        XS_PIDF_OPEN, NULL, NULL, "abcdefghijklmnopqrstuvwxyz012345 a b c d e f g",
                        0, &b) == 0);
    CHECK(!strncmp(b.data, "kept<?xml", 9));
    xs_buf_free(&b);

    /* Out's bound: XS_ELIMIT at every size short of the document, and out
     * untouched. */
    struct xs_buf full;
    xs_buf_init(&full, 1 << 16);
    write_ok(&full, "sip:alice@xmpp.test", NULL, XS_PIDF_OPEN, "note", "en", "away busy", 3500);
    int limits_ok = 1;
    for (size_t max = 4; max <= full.len + 4; max++) {
        struct xs_buf small;
        xs_buf_init(&small, max);
        xs_buf_append_str(&small, "pre:");
        int rc = xs_pidf_write("sip:alice@xmpp.test", NULL, XS_PIDF_OPEN, "note", "en", "away busy",
                               3500, &small);
        if (max < full.len + 4 ? (rc != XS_ELIMIT || strcmp(small.data, "pre:")) : rc != 0)
            limits_ok = 0;
        xs_buf_free(&small);
    }
    CHECK(limits_ok);
    xs_buf_free(&full);
}

/* parse(write(x)) gives x back over a matrix of values. */
static void test_round_trip(void)
{
    static const char *const entities[] = {"sip:alice@xmpp.test", "pres:o'brien&co@x.test",
                                           "sip:\xc3\xa9l\xc3\xa8ve@x.test"};
    static const char *const ids[] = {NULL, "t", "p", "a-1.b_2"};
    static const char *const notes[] = {NULL, "Lunch", "a & <b> \"c\" 'd'\ttab\nline",
                                        "\xe6\x98\xbc\xe9\xa3\x9f \xf0\x9f\x8d\x9c"};
    static const char *const langs[] = {NULL, "en", "zh-Hant-TW"};
    static const char *const acts[] = {NULL, "away", "on-the-phone meeting busy",
                                       "a b c d e f g h"};
    static const int avails[] = {0, 3500, 18500};
    static const enum xs_pidf_basic basics[] = {XS_PIDF_OPEN, XS_PIDF_CLOSED};
    struct xs_buf b;
    xs_buf_init(&b, 1 << 16);
    int n = 0, ok = 0;
    for (size_t e = 0; e < 3; e++)
        for (size_t i = 0; i < 4; i++)
            for (size_t no = 0; no < 4; no++)
                for (size_t l = 0; l < 3; l++)
                    for (size_t a = 0; a < 4; a++)
                        for (size_t v = 0; v < 3; v++)
                            for (size_t k = 0; k < 2; k++) {
                                n++;
                                xs_buf_reset(&b);
                                if (xs_pidf_write(entities[e], ids[i], basics[k], notes[no],
                                                  langs[l], acts[a], avails[v], &b) ||
                                    xs_pidf_parse(b.data, b.len, &pidf, NULL))
                                    continue;
                                const char *id = ids[i] ? ids[i] : "t";
                                const char *lang = notes[no] && langs[l] ? langs[l] : "";
                                const char *act = acts[a] ? acts[a] : "";
                                const char *note = notes[no] ? notes[no] : "";
                                if (!strcmp(pidf.entity, entities[e]) && pidf.basic == basics[k] &&
                                    !strcmp(pidf.note, note) && !strcmp(pidf.note_lang, lang) &&
                                    !strcmp(pidf.activities, act) &&
                                    pidf.availability == avails[v] && pidf.n_tuples == 1 &&
                                    !strcmp(pidf.tuples[0].id, id) &&
                                    pidf.tuples[0].basic == basics[k] &&
                                    pidf.tuples[0].priority == -1)
                                    ok++;
                                else
                                    fprintf(stderr, "round trip differs: %s\n", b.data);
                            }
    CHECK(n == 3 * 4 * 4 * 3 * 4 * 3 * 2);
    CHECK(ok == n);
    xs_buf_free(&b);
}

#if XS_TEST_OWN_MALLOC
/* Every allocation of a parse and of a write fails in turn: each fails,
 * frees everything, and leaves out as it was. Expat 2.5 reports a few of
 * its failed allocations (of a namespace prefix's entry) as an unbound
 * prefix rather than as out of memory; those come out as XS_EPROTO. */
static void test_oom(void)
{
    const char *doc = good;
    int parse_ok_all = 1, write_ok_all = 1;
    long steps = 0, enomem = 0;
    for (long at = 1;; at++) {
        long live = alloc_live;
        alloc_count = 0;
        alloc_fail_at = at;
        const char *why = NULL;
        int rc = xs_pidf_parse(doc, strlen(doc), &pidf, &why);
        alloc_fail_at = 0;
        if (alloc_live != live)
            parse_ok_all = 0;
        if (rc == 0)
            break;
        int misreported =
            rc == XS_EPROTO && why && !strcmp(why, XML_ErrorString(XML_ERROR_UNBOUND_PREFIX));
        enomem += rc == XS_ENOMEM;
        if ((rc != XS_ENOMEM && !misreported) || !why || !all_zero(&pidf)) {
            fprintf(stderr, "  allocation %ld failing: %s (%s)\n", at, xs_strerror(rc),
                    why ? why : "");
            parse_ok_all = 0;
        }
        steps++;
    }
    CHECK(parse_ok_all);
    CHECK(steps > 0);
    CHECK(enomem >= steps - 4);
    check_good_again();

    struct xs_buf b;
    xs_buf_init(&b, 1 << 16);
    xs_buf_append_str(&b, "pre:");
    steps = 0;
    for (long at = 1;; at++) {
        long live = alloc_live;
        alloc_count = 0;
        alloc_fail_at = at;
        int rc = xs_pidf_write("sip:a@b", NULL, XS_PIDF_OPEN, "note", "en", "away busy", 3500, &b);
        alloc_fail_at = 0;
        if (rc == 0)
            break;
        if (rc != XS_ENOMEM || alloc_live != live || strcmp(b.data, "pre:"))
            write_ok_all = 0;
        steps++;
    }
    CHECK(write_ok_all);
    CHECK(steps > 0);
    xs_buf_free(&b);
}

/* What one parse of a document at the size limit takes of the heap. */
static void test_memory(void)
{
    size_t len;
    char *s =
        repeat("<presence " NS_ATTRS " entity=\"e\"><dm:person id=\"p\"><rpid:activities>",
               "<rpid:away a='1' b='2'/>", 2700, "</rpid:activities></dm:person></presence>", &len);
    CHECK(len <= XS_PIDF_MAX_DOC);
    size_t base = bytes_live;
    bytes_peak = bytes_live;
    CHECK(xs_pidf_parse(s, len, &pidf, NULL) == 0);
    size_t peak = bytes_peak - base;
    CHECK(bytes_live == base);
    CHECK(peak < 256 * 1024);
    printf("peak heap of one parse of a %zu-byte document: %zu bytes\n", len, peak);
    free(s);
}
#endif

int main(void)
{
    test_kamailio();
    test_baresip();
    test_asterisk();
    test_rpid_rich();
    test_lync();
    test_namespaces();
    test_tuples();
    test_notes();
    test_hostile();
    test_write();
    test_round_trip();
#if XS_TEST_OWN_MALLOC
    test_oom();
    test_memory();
#endif
    return check_report("test_pidf");
}
