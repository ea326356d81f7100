/* The SIP side's tables and byte-level work: RFC 7247 mappings, framing,
 * validation of arriving requests, and the MESSAGE we build. */
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "sip/sip.h"
#include "sip/sip_content.h"
#include "sip/sip_msg.h"
#include "sip_testutil.h"

static void test_errmap(void)
{
    /* RFC 7247 §7.2, Table 3, copied row by row from the RFC text, plus its
     * class fallbacks ("3xx ... <redirect/>, 4xx ... <bad-request/>, 5xx ...
     * <internal-server-error>, 6xx ... <recipient-unavailable/>"). */
    static const struct {
        int status;
        enum xs_cond cond;
    } in[] = {
        {100, XS_COND_NONE},
        {200, XS_COND_NONE},
        {202, XS_COND_NONE},
        {300, XS_COND_REDIRECT},
        {301, XS_COND_GONE},
        {302, XS_COND_REDIRECT},
        {305, XS_COND_REDIRECT},
        {380, XS_COND_NOT_ACCEPTABLE},
        {399, XS_COND_REDIRECT},
        {400, XS_COND_BAD_REQUEST},
        {401, XS_COND_NOT_AUTHORIZED},
        {402, XS_COND_BAD_REQUEST},
        {403, XS_COND_FORBIDDEN},
        {404, XS_COND_ITEM_NOT_FOUND},
        {405, XS_COND_FEATURE_NOT_IMPLEMENTED},
        {406, XS_COND_NOT_ACCEPTABLE},
        {407, XS_COND_REGISTRATION_REQUIRED},
        {408, XS_COND_REMOTE_SERVER_TIMEOUT},
        {410, XS_COND_GONE},
        {413, XS_COND_POLICY_VIOLATION},
        {414, XS_COND_POLICY_VIOLATION},
        {415, XS_COND_NOT_ACCEPTABLE},
        {416, XS_COND_NOT_ACCEPTABLE},
        {420, XS_COND_FEATURE_NOT_IMPLEMENTED},
        {421, XS_COND_NOT_ACCEPTABLE},
        {423, XS_COND_RESOURCE_CONSTRAINT},
        {430, XS_COND_RECIPIENT_UNAVAILABLE},
        {439, XS_COND_FEATURE_NOT_IMPLEMENTED},
        {440, XS_COND_POLICY_VIOLATION},
        {480, XS_COND_RECIPIENT_UNAVAILABLE},
        {481, XS_COND_ITEM_NOT_FOUND},
        {482, XS_COND_NOT_ACCEPTABLE},
        {483, XS_COND_NOT_ACCEPTABLE},
        {484, XS_COND_ITEM_NOT_FOUND},
        {485, XS_COND_ITEM_NOT_FOUND},
        {486, XS_COND_RECIPIENT_UNAVAILABLE},
        {487, XS_COND_RECIPIENT_UNAVAILABLE},
        {488, XS_COND_NOT_ACCEPTABLE},
        {489, XS_COND_POLICY_VIOLATION},
        {491, XS_COND_UNEXPECTED_REQUEST},
        {493, XS_COND_BAD_REQUEST},
        {499, XS_COND_BAD_REQUEST},
        {500, XS_COND_INTERNAL_SERVER_ERROR},
        {501, XS_COND_FEATURE_NOT_IMPLEMENTED},
        {502, XS_COND_REMOTE_SERVER_NOT_FOUND},
        {503, XS_COND_INTERNAL_SERVER_ERROR},
        {504, XS_COND_REMOTE_SERVER_TIMEOUT},
        {505, XS_COND_NOT_ACCEPTABLE},
        {513, XS_COND_POLICY_VIOLATION},
        {580, XS_COND_INTERNAL_SERVER_ERROR},
        {600, XS_COND_RECIPIENT_UNAVAILABLE},
        {603, XS_COND_RECIPIENT_UNAVAILABLE},
        {604, XS_COND_ITEM_NOT_FOUND},
        {606, XS_COND_NOT_ACCEPTABLE},
        {699, XS_COND_RECIPIENT_UNAVAILABLE},
        {0, XS_COND_UNDEFINED_CONDITION},
        {700, XS_COND_UNDEFINED_CONDITION},
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        enum xs_cond got = xs_sip_status_to_cond(in[i].status);
        if (got != in[i].cond) {
            fprintf(stderr, "status %d -> %s, want %s\n", in[i].status,
                    xs_cond_name(got) ? xs_cond_name(got) : "none",
                    xs_cond_name(in[i].cond) ? xs_cond_name(in[i].cond) : "none");
            CHECK(!"status maps to its condition");
        }
    }
    /* RFC 7247 §7.1, Table 2, for errors about a bare JID (the only kind the
     * gateway addresses): notes 1 and 2 pick 501 and the 6xx codes. The
     * rows marked DEVIATION are the ones sip_errmap.c's header explains. */
    static const int out[XS_COND_COUNT_] = {
        [XS_COND_NONE] = 200,
        [XS_COND_BAD_REQUEST] = 400,
        [XS_COND_CONFLICT] = 400,
        [XS_COND_FEATURE_NOT_IMPLEMENTED] = 501,
        [XS_COND_FORBIDDEN] = 403, /* deviation from note 2, see sip_errmap.c */
        [XS_COND_GONE] = 410, /* no new address: note 3 */
        [XS_COND_INTERNAL_SERVER_ERROR] = 500,
        [XS_COND_ITEM_NOT_FOUND] = 604,
        [XS_COND_JID_MALFORMED] = 400,
        [XS_COND_NOT_ACCEPTABLE] = 606,
        [XS_COND_NOT_ALLOWED] = 403,
        [XS_COND_NOT_AUTHORIZED] = 403, /* DEVIATION: 401 needs WWW-Authenticate */
        [XS_COND_POLICY_VIOLATION] = 403,
        [XS_COND_RECIPIENT_UNAVAILABLE] = 600,
        [XS_COND_REDIRECT] = 480,              /* DEVIATION: 302 needs a Contact */
        [XS_COND_REGISTRATION_REQUIRED] = 403, /* DEVIATION: 407 needs Proxy-Authenticate */
        [XS_COND_REMOTE_SERVER_NOT_FOUND] = 404,
        [XS_COND_REMOTE_SERVER_TIMEOUT] = 408,
        [XS_COND_RESOURCE_CONSTRAINT] = 500,
        [XS_COND_SERVICE_UNAVAILABLE] = 403, /* note 5: 503 NOT RECOMMENDED */
        [XS_COND_SUBSCRIPTION_REQUIRED] = 400,
        [XS_COND_UNDEFINED_CONDITION] = 400,
        [XS_COND_UNEXPECTED_REQUEST] = 400,
    };
    for (int c = 0; c < XS_COND_COUNT_; c++) {
        int got = xs_sip_cond_to_status((enum xs_cond)c);
        if (got != out[c]) {
            fprintf(stderr, "cond %s -> %d, want %d\n",
                    xs_cond_name((enum xs_cond)c) ? xs_cond_name((enum xs_cond)c) : "none", got,
                    out[c]);
            CHECK(!"condition maps to its status");
        }
    }
}

/* Note 3 of §7.1: a <gone/> with a new address MUST become 301, and the SIP
 * client needs the address in a Contact to act on it. */
static void test_errmap_addresses(void)
{
    struct xs_sip_error e;
    xs_sip_error_for(XS_COND_GONE, "<xmpp:romeo@afterlife.example.net> moved", &e);
    CHECK(e.status == 301);
    CHECK_STR(e.contact, "Contact: <sip:romeo@afterlife.example.net>\r\n");
    CHECK_STR(e.text, "moved");
    xs_sip_error_for(XS_COND_GONE, "<xmpp:d\\27artagnan@x.test/res?message>", &e);
    CHECK(e.status == 301 && e.text == NULL);
    CHECK_STR(e.contact, "Contact: <sip:d'artagnan@x.test>\r\n");
    xs_sip_error_for(XS_COND_GONE, "<xmpp:j%C3%BC@X.Test>", &e);
    CHECK_STR(e.contact, "Contact: <sip:j%C3%BC@x.test>\r\n");
    xs_sip_error_for(XS_COND_GONE, "<sip:bob@new.test>", &e);
    CHECK(e.status == 301);
    CHECK_STR(e.contact, "Contact: <sip:bob@new.test>\r\n");
    xs_sip_error_for(XS_COND_GONE, "<sip:o?x@new.test;lr?Route=%3Csip:evil.test%3E>", &e);
    CHECK_STR(e.contact, "Contact: <sip:o?x@new.test;lr>\r\n");
    xs_sip_error_for(XS_COND_REDIRECT, "<xmpp:bob@other.test> try there", &e);
    CHECK(e.status == 302);
    CHECK_STR(e.contact, "Contact: <sip:bob@other.test>\r\n");
    /* No address, or one the gateway cannot write as a SIP URI: no Contact. */
    xs_sip_error_for(XS_COND_GONE, "left", &e);
    CHECK(e.status == 410 && e.contact[0] == '\0');
    CHECK_STR(e.text, "left");
    xs_sip_error_for(XS_COND_GONE, "<mailto:a@b.test>", &e);
    CHECK(e.status == 410 && e.contact[0] == '\0');
    CHECK_STR(e.text, "<mailto:a@b.test>");
    xs_sip_error_for(XS_COND_GONE, "<xmpp:a@bad host>", &e);
    CHECK(e.status == 410 && e.contact[0] == '\0');
    xs_sip_error_for(XS_COND_REDIRECT, NULL, &e);
    CHECK(e.status == 480 && e.contact[0] == '\0' && e.text == NULL);
    /* Only gone and redirect carry addresses. */
    xs_sip_error_for(XS_COND_ITEM_NOT_FOUND, "<sip:x@y.test>", &e);
    CHECK(e.status == 604 && e.contact[0] == '\0');
    CHECK_STR(e.text, "<sip:x@y.test>");
    xs_sip_error_for(XS_COND_SERVICE_UNAVAILABLE, "no such user", &e);
    CHECK(e.status == 403 && e.contact[0] == '\0');

    /* §7.2 note 1: 301 gives <gone/> with the new address (from Contact);
     * 410 never carries one. */
    static const struct {
        const char *resp;
        enum xs_cond cond;
        const char *text;
    } rs[] = {
        {"SIP/2.0 301 Moved Permanently\r\nContact: \"B\" <sip:bob@new.test;transport=tcp>;q=1\r\n",
         XS_COND_GONE, "<sip:bob@new.test;transport=tcp> SIP 301 Moved Permanently"},
        {"SIP/2.0 301 Moved Permanently\r\n", XS_COND_GONE, "SIP 301 Moved Permanently"},
        {"SIP/2.0 302 Moved Temporarily\r\nContact: <sip:bob@tmp.test>\r\n", XS_COND_REDIRECT,
         "<sip:bob@tmp.test> SIP 302 Moved Temporarily"},
        {"SIP/2.0 410 Gone\r\nContact: <sip:bob@new.test>\r\n", XS_COND_GONE, "SIP 410 Gone"},
        {"SIP/2.0 407 Proxy Authentication Required\r\nContact: <sip:x@y.test>\r\n",
         XS_COND_REGISTRATION_REQUIRED, "SIP 407 Proxy Authentication Required"},
    };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        char raw[512], text[XS_COND_ADDR_MAX + 160];
        snprintf(
            raw, sizeof raw,
            "%sVia: SIP/2.0/UDP h;branch=z9hG4bKq\r\nFrom: <sip:a@b>;tag=1\r\n"
            "To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
            rs[i].resp);
        struct xs_sip_in r;
        xs_sip_in_parse(raw, strlen(raw), 0, &r);
        CHECK(r.verdict == XS_SIP_RESPONSE);
        if (r.msg) {
            CHECK(xs_sip_response_cond(r.msg, text, sizeof text) == rs[i].cond);
            CHECK_STR(text, rs[i].text);
        }
        xs_sip_in_clear(&r);
    }
}

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

static void test_text(void)
{
    CHECK(xs_sip_text_ok("h\xc3\xa9llo \xf0\x9f\x98\x80\r\n\t", 14));
    CHECK(!xs_sip_text_ok("a\0b", 3));
    CHECK(!xs_sip_text_ok("\x01", 1));
    CHECK(!xs_sip_text_ok("\xc0\xaf", 2));         /* overlong */
    CHECK(!xs_sip_text_ok("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!xs_sip_text_ok("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    CHECK(!xs_sip_text_ok("\xe2\x82", 2));         /* truncated */
    CHECK(!xs_sip_text_ok("a\xef\xbf\xbe", 4));    /* U+FFFE */
    CHECK(!xs_sip_text_ok("\xef\xbf\xbf", 3));     /* U+FFFF */
    CHECK(xs_sip_text_ok("\xef\xbf\xbd", 3));      /* U+FFFD is a character */
    CHECK(!xs_sip_text_ok("\x7f", 1));
    CHECK(xs_sip_callid_ok("abc123@host.example"));
    CHECK(!xs_sip_callid_ok("has space"));
    CHECK(!xs_sip_callid_ok("a@b@c"));
    CHECK(!xs_sip_callid_ok(""));
    CHECK(!xs_sip_callid_ok(NULL));
    CHECK(!xs_sip_callid_ok("caf\xc3\xa9"));
}

static const char *BODY = "<b>caf\xc3\xa9</b> & \"quotes\" 'x' \xe2\x82\xac\r\nline 2";

static void test_build_and_parse(void)
{
    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_XMPP);
    xs_event_set(&ev->from, "sip:j\xc3\xbcrgen@xmpp.test");
    xs_event_set(&ev->to, "sip:bob@sip.test");
    xs_event_set(&ev->thread, "thread-1@xmpp.test");
    xs_event_set(&ev->subject, "Hi\nthere");
    xs_event_set(&ev->lang, "de");
    xs_event_set(&ev->body, BODY);
    struct xs_sip_req_params p = {"UDP", "127.0.0.1", 5070, "z9hG4bKabc", "ftag", "gen@x", 3};
    struct xs_buf out;
    xs_buf_init(&out, 4096);
    const char *why = NULL;
    CHECK(xs_sip_build_message(ev, &p, &out, &why) == 0);
    char want[2048];
    snprintf(want, sizeof want,
             "MESSAGE sip:bob@sip.test SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport\r\n"
             "Max-Forwards: 70\r\n"
             "From: <sip:j%%C3%%BCrgen@xmpp.test>;tag=ftag\r\n"
             "To: <sip:bob@sip.test>\r\n"
             "Call-ID: thread-1@xmpp.test\r\n"
             "CSeq: 3 MESSAGE\r\n"
             "Subject: Hi there\r\n"
             "Content-Language: de\r\n"
             "Content-Type: text/plain;charset=UTF-8\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(BODY), BODY);
    CHECK_STR(out.data, want);

    struct xs_sip_in in;
    xs_sip_in_parse(out.data, out.len, 0, &in);
    CHECK(in.verdict == XS_SIP_SUBMIT);
    if (in.ev) {
        CHECK(strcmp(in.ev->from, "sip:j%C3%BCrgen@xmpp.test") == 0);
        CHECK(strcmp(in.ev->to, "sip:bob@sip.test") == 0);
        CHECK(strcmp(in.ev->thread, "thread-1@xmpp.test") == 0);
        CHECK(strcmp(in.ev->subject, "Hi there") == 0);
        CHECK(strcmp(in.ev->lang, "de") == 0);
        CHECK(strcmp(in.ev->type, "normal") == 0); /* RFC 7572 §5: never "chat" */
        CHECK(strcmp(in.ev->body, BODY) == 0);
        CHECK(in.ev->origin == XS_SIDE_SIP);
    }
    CHECK(strcmp(in.key, "b=z9hG4bKabc|127.0.0.1:5070|MESSAGE") == 0);

    /* The answer to it carries the To-tag and every Via. */
    struct xs_buf resp;
    xs_buf_init(&resp, 4096);
    CHECK(xs_sip_build_response(in.msg, 404, "tt", "sip.test", "no \"such\"\r\nuser", NULL,
                                &resp) == 0);
    CHECK(strncmp(resp.data, "SIP/2.0 404 Not Found\r\n", 23) == 0);
    CHECK(strstr(resp.data, "To: <sip:bob@sip.test>;tag=tt\r\n") != NULL);
    CHECK(strstr(resp.data, "Warning: 399 sip.test \"no \\\"such\\\"  user\"\r\n") != NULL);
    CHECK(strstr(resp.data, "branch=z9hG4bKabc") != NULL);
    CHECK(strstr(resp.data, "Call-ID: thread-1@xmpp.test\r\n") != NULL);
    CHECK(strstr(resp.data, "CSeq: 3 MESSAGE\r\n") != NULL);
    xs_buf_free(&resp);
    xs_sip_in_clear(&in);

    /* An unusable thread gives the generated Call-ID; bad addresses refuse. */
    xs_event_set(&ev->thread, "not a call id");
    xs_buf_reset(&out);
    CHECK(xs_sip_build_message(ev, &p, &out, &why) == 0);
    CHECK(strstr(out.data, "Call-ID: gen@x\r\n") != NULL);
    xs_event_set(&ev->to, "xmpp:bob@sip.test");
    xs_buf_reset(&out);
    CHECK(xs_sip_build_message(ev, &p, &out, &why) == XS_EINVAL);
    xs_event_set(&ev->to, "sip:bob@sip.test>\r\nX: y");
    CHECK(xs_sip_build_message(ev, &p, &out, &why) == XS_EINVAL);
    /* RFC 7572 §4 note 1: the XMPP sender's resource is the GRUU on From;
     * and back (§5 note 1), a SIP sender's gr reaches the event. */
    xs_event_set(&ev->to, "sip:bob@sip.test");
    xs_event_set(&ev->from, "sip:baz@xmpp.example;gr=qux");
    xs_buf_reset(&out);
    CHECK(xs_sip_build_message(ev, &p, &out, &why) == 0);
    CHECK(strstr(out.data, "\r\nFrom: <sip:baz@xmpp.example;gr=qux>;tag=ftag\r\n") != NULL);
    xs_sip_in_parse(out.data, out.len, 0, &in);
    CHECK(in.verdict == XS_SIP_SUBMIT);
    if (in.ev)
        CHECK_STR(in.ev->from, "sip:baz@xmpp.example;gr=qux");
    xs_sip_in_clear(&in);
    xs_event_set(&ev->from, "sip:foo@sip.example;transport=tcp;Gr=my%20ph%3Bone;lr");
    xs_buf_reset(&out);
    CHECK(xs_sip_build_message(ev, &p, &out, &why) == 0);
    xs_sip_in_parse(out.data, out.len, 0, &in);
    if (in.ev)
        CHECK_STR(in.ev->from, "sip:foo@sip.example;gr=my%20ph%3Bone");
    xs_sip_in_clear(&in);
    xs_event_set(&ev->from, "sip:foo@sip.example;gr");
    xs_buf_reset(&out);
    CHECK(xs_sip_build_message(ev, &p, &out, &why) == 0);
    xs_sip_in_parse(out.data, out.len, 0, &in);
    if (in.ev)
        CHECK_STR(in.ev->from, "sip:foo@sip.example");
    xs_sip_in_clear(&in);
    xs_event_set(&ev->body, NULL);
    CHECK(xs_sip_build_message(ev, &p, &out, &why) == XS_EPROTO);
    xs_buf_free(&out);
    xs_event_free(ev);
}

/* RFC 7572 §7: text/plain in other charsets is converted, text/html is
 * carried as its text, anything else is 415. */
static void content(const char *sub, const char *cs, const char *body, size_t len, int want_st,
                    const char *want)
{
    struct xs_buf out;
    xs_buf_init(&out, 4096);
    const char *why = NULL;
    if (len == SIZE_MAX)
        len = strlen(body);
    int st = xs_sip_content_to_text("text", sub, cs, body, len, &out, &why);
    if (st != want_st || (want && (!out.data || strcmp(out.data, want) != 0))) {
        fprintf(stderr, "content %s;charset=%s: got %d '%s' (%s), want %d '%s'\n", sub,
                cs ? cs : "-", st, out.data ? out.data : "", why ? why : "-", want_st,
                want ? want : "");
        CHECK(!"content converted");
    }
    xs_buf_free(&out);
}

static void test_content(void)
{
    content("plain", NULL, "caf\xc3\xa9", 5, 0, "caf\xc3\xa9");
    content("PLAIN", "\"UTF-8\"", "x", 1, 0, "x");
    content("plain", "us-ascii", "plain", 5, 0, "plain");
    content("plain", "US-ASCII", "caf\xe9", 4, 400, NULL);
    content("plain", "iso-8859-1", "caf\xe9 \xa3\xff", 7, 0, "caf\xc3\xa9 \xc2\xa3\xc3\xbf");
    content("plain", "latin1", "\x80", 1, 0, "\xc2\x80");
    content("plain", "windows-1252", "\x80 \x93q\x94 \x85 \xe9", 9, 0,
            "\xe2\x82\xac \xe2\x80\x9cq\xe2\x80\x9d \xe2\x80\xa6 \xc3\xa9");
    content("plain", "cp1252", "\x81", 1, 400, NULL); /* undefined in Windows-1252 */
    /* UTF-16 with either BOM, without one (big-endian, RFC 2781), a
     * surrogate pair (U+1D11E), and broken input. */
    content("plain", "utf-16", "\xff\xfeh\0\xe9\0", 6, 0, "h\xc3\xa9");
    content("plain", "utf-16", "\xfe\xff\0h\0\xe9", 6, 0, "h\xc3\xa9");
    content("plain", "utf-16", "\0h\0i", 4, 0, "hi");
    content("plain", "utf-16le", "4\xd8\x1e\xdd", 4, 0, "\xf0\x9d\x84\x9e");
    content("plain", "utf-16be", "\xd8\x34", 2, 400, NULL);    /* lone high surrogate */
    content("plain", "utf-16be", "\xdd\x1e\0a", 4, 400, NULL); /* lone low surrogate */
    content("plain", "utf-16", "\xff\xfeh", 3, 400, NULL);     /* odd length */
    content("plain", "utf-16le", "\x01\0", 2, 400, NULL);      /* a control XML cannot carry */
    content("plain", "koi8-r", "x", 1, 415, NULL);
    content("plain", "utf-8", "\xff", 1, 400, NULL);
    content("enriched", NULL, "x", 1, 415, NULL);
    /* HTML as its text. */
    content("html", NULL,
            "<html><head><style>p {color: red}</style><script>alert('<x>')</script></head>"
            "<body><p>Hi &amp; <b>bye</b></p><!-- <p>no</p> -->a&lt;b&gt;c&#233;&#x1F600;"
            "&nbsp;&unknown;<br>end</body></html>",
            SIZE_MAX, 0, "Hi & bye\na<b>c\xc3\xa9\xf0\x9f\x98\x80\xc2\xa0&unknown;\nend");
    content("html", NULL, "\r\n <div>\n  <p> two  words </p>\n</div>\n", SIZE_MAX, 0, "two  words");
    content("html", "iso-8859-1", "<p>caf\xe9</p>", 11, 0, "caf\xc3\xa9");
    content("html", NULL, "<p></p>", 7, 400, NULL);
    content("html", NULL, "&#0;", 4, 0, "&#0;");
}

/* RFC 7572 §5: an im: To does not sink a request whose Request-URI is SIP. */
static void test_im_to(void)
{
    const char *m = "MESSAGE sip:alice@xmpp.test SIP/2.0\r\n"
                    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKim\r\n"
                    "From: <sip:bob@sip.test>;tag=1\r\nTo: <im:alice@xmpp.test>\r\n"
                    "Call-ID: im1\r\nCSeq: 1 MESSAGE\r\n"
                    "Content-Type: text/plain;charset=iso-8859-1\r\n"
                    "Content-Length: 4\r\n\r\ncaf\xe9";
    struct xs_sip_in in;
    xs_sip_in_parse(m, strlen(m), 0, &in);
    CHECK(in.verdict == XS_SIP_SUBMIT);
    if (in.ev) {
        CHECK_STR(in.ev->to, "sip:alice@xmpp.test");
        CHECK_STR(in.ev->body, "caf\xc3\xa9");
    }
    xs_sip_in_clear(&in);
}

/* A Subject longer than 1024 bytes is cut before the character that would
 * pass the limit, never inside it. */
static void test_subject_cut(void)
{
    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_XMPP);
    xs_event_set(&ev->from, "sip:alice@xmpp.test");
    xs_event_set(&ev->to, "sip:bob@sip.test");
    xs_event_set(&ev->body, "b");
    struct xs_sip_req_params p = {"TCP", "127.0.0.1", 5070, "z9hG4bKabc", "ftag", "gen@x", 3};
    struct xs_buf out;
    xs_buf_init(&out, 8192);
    const char *why = NULL;
    char subj[1100], want[1200];
    memset(subj, 'a', 1023);
    memcpy(subj + 1023, "\xe2\x82\xac tail", 9); /* U+20AC spans bytes 1023..1025 */
    subj[1032] = '\0';
    xs_event_set(&ev->subject, subj);
    CHECK(xs_sip_build_message(ev, &p, &out, &why) == 0);
    snprintf(want, sizeof want, "\r\nSubject: %.1023s\r\n", subj);
    CHECK(strstr(out.data, want) != NULL);
    /* Exactly 1024 bytes ending on a whole character stay whole. */
    memcpy(subj + 1021, "\xe2\x82\xac", 3);
    subj[1024] = '\0';
    xs_event_set(&ev->subject, subj);
    xs_buf_reset(&out);
    CHECK(xs_sip_build_message(ev, &p, &out, &why) == 0);
    snprintf(want, sizeof want, "\r\nSubject: %s\r\n", subj);
    CHECK(strstr(out.data, want) != NULL);
    xs_buf_free(&out);
    xs_event_free(ev);
}

/* RFC 3428 §8 / RFC 7572 §6: more than 1300 bytes never goes over UDP. */
static void test_udp_size(void)
{
    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_XMPP);
    xs_event_set(&ev->from, "sip:alice@xmpp.test");
    xs_event_set(&ev->to, "sip:bob@sip.test");
    struct xs_sip_req_params udp = {"UDP", "127.0.0.1", 5070, "z9hG4bKabc", "ftag", "gen@x", 3};
    struct xs_sip_req_params tcp = udp;
    tcp.transport = "TCP";
    struct xs_buf out;
    xs_buf_init(&out, 65536);
    const char *why = NULL;
    char body[2000];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    /* Find the body length that makes the request exactly 1300 bytes. */
    body[1] = '\0';
    xs_event_set(&ev->body, body);
    CHECK(xs_sip_build_message(ev, &udp, &out, &why) == 0);
    size_t fixed = out.len - 1, fit = XS_SIP_UDP_MESSAGE_MAX - fixed;
    /* Content-Length grows from 1 to 4 digits between the two sizes. */
    fit -= 3;
    memset(body, 'x', fit);
    body[fit] = '\0';
    xs_event_set(&ev->body, body);
    xs_buf_reset(&out);
    CHECK(xs_sip_build_message(ev, &udp, &out, &why) == 0);
    CHECK(out.len == XS_SIP_UDP_MESSAGE_MAX);
    body[fit] = 'x';
    body[fit + 1] = '\0';
    xs_event_set(&ev->body, body);
    xs_buf_reset(&out);
    why = NULL;
    CHECK(xs_sip_build_message(ev, &udp, &out, &why) == XS_ELIMIT);
    CHECK(why && strstr(why, "1300 bytes") && strstr(why, "UDP"));
    xs_buf_reset(&out);
    CHECK(xs_sip_build_message(ev, &tcp, &out, &why) == 0);
    CHECK(out.len == XS_SIP_UDP_MESSAGE_MAX + 1);
    xs_buf_free(&out);
    xs_event_free(ev);
}

static int verdict_of(const char *method, const char *extra, const char *body, int *status)
{
    char m[2048];
    size_t n = make_request(m, sizeof m, method, "z9hG4bK1", 5060, extra, body);
    struct xs_sip_in in;
    xs_sip_in_parse(m, n, 0, &in);
    int v = in.verdict;
    *status = in.status;
    xs_sip_in_clear(&in);
    return v;
}

static void test_validation(void)
{
    int st;
    const char *plain = "Call-ID: c1\r\nContent-Type: text/plain\r\n";
    CHECK(verdict_of("MESSAGE", plain, "hi", &st) == XS_SIP_SUBMIT);
    CHECK(verdict_of("MESSAGE", "Call-ID: c1\r\nContent-Type: text/html\r\n", "<p>hi</p>", &st) ==
          XS_SIP_SUBMIT);
    CHECK(verdict_of("MESSAGE", "Call-ID: c1\r\nContent-Type: text/plain;charset=latin1\r\n", "x",
                     &st) == XS_SIP_SUBMIT);
    CHECK(verdict_of("MESSAGE", "Call-ID: c1\r\nContent-Type: text/plain;charset=koi8-r\r\n", "x",
                     &st) == XS_SIP_ANSWER &&
          st == 415);
    CHECK(verdict_of("MESSAGE", "Call-ID: c1\r\nContent-Type: application/json\r\n", "{}", &st) ==
              XS_SIP_ANSWER &&
          st == 415);
    CHECK(verdict_of("MESSAGE", "Call-ID: c1\r\n", "x", &st) == XS_SIP_ANSWER && st == 415);
    CHECK(verdict_of("MESSAGE", "Call-ID: c1\r\nContent-Type: text/plain;charset=\"utf-8\"\r\n",
                     "x", &st) == XS_SIP_SUBMIT);
    CHECK(verdict_of("MESSAGE", "Content-Type: text/plain\r\n", "hi", &st) == XS_SIP_ANSWER &&
          st == 400);
    CHECK(verdict_of("MESSAGE", plain, "bad \xff utf8", &st) == XS_SIP_ANSWER && st == 400);
    CHECK(verdict_of("MESSAGE", plain, "", &st) == XS_SIP_ANSWER && st == 400);
    CHECK(verdict_of("INVITE", "Call-ID: c1\r\n", NULL, &st) == XS_SIP_ANSWER && st == 405);
    CHECK(verdict_of("OPTIONS", "Call-ID: c1\r\n", NULL, &st) == XS_SIP_ANSWER && st == 200);
    CHECK(verdict_of("ACK", "Call-ID: c1\r\n", NULL, &st) == XS_SIP_ACK);
    CHECK(verdict_of("MESSAGE", "Call-ID: c1\r\nRequire: foo\r\nContent-Type: text/plain\r\n", "x",
                     &st) == XS_SIP_ANSWER &&
          st == 420);
    const char *resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKq\r\nFrom: "
                       "<sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 "
                       "MESSAGE\r\nContent-Length: 0\r\n\r\n";
    struct xs_sip_in in;
    xs_sip_in_parse(resp, strlen(resp), 0, &in);
    CHECK(in.verdict == XS_SIP_RESPONSE && strcmp(in.key, "b=z9hG4bKq|MESSAGE") == 0);
    xs_sip_in_clear(&in);
    xs_sip_in_parse("garbage\r\n\r\n", 11, 0, &in);
    CHECK(in.verdict == XS_SIP_DROP);
    xs_sip_in_clear(&in);

    char m[2048];
    size_t n = make_request(m, sizeof m, "MESSAGE", "z9hG4bK1", 5060, plain, "hello");
    xs_sip_in_parse(m, n, 1, &in);
    CHECK(in.verdict == XS_SIP_ANSWER && in.status == 413);
    xs_sip_in_clear(&in);
    xs_sip_in_parse_head(m, n - 5, &in);
    CHECK(in.verdict == XS_SIP_ANSWER && in.msg != NULL);
    xs_sip_in_clear(&in);
}

/* The addresses an arriving MESSAGE hands to the policy: user parts keep
 * ';' and '?' (RFC 3261 user-unreserved) and a decoded '%' travels as %25, so
 * the Lua mapping (RFC 7247 §6.4) sees what the sender wrote. */
static void test_event_addresses(void)
{
    static const struct {
        const char *from;
        const char *want; /* NULL: refused with 400 */
    } cases[] = {
        {"<sip:a;b@SIP.test>", "sip:a;b@sip.test"},
        {"<sip:a%3Bb@sip.test;transport=udp>", "sip:a;b@sip.test"},
        {"<sip:100%25@sip.test>", "sip:100%25@sip.test"},
        {"<sip:bob@[2001:db8::1]:5060>", "sip:bob@[2001:db8::1]"},
        {"<sip:bob@sip.test.>", "sip:bob@sip.test"},
        {"<sip:bob@b\xc3\xbc"
         "cher.test>",
         NULL},
        {"<sip:bob@a..test>", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char m[1024];
        int n = snprintf(m, sizeof m,
                         "MESSAGE sip:alice@xmpp.test SIP/2.0\r\n"
                         "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKe%zu\r\n"
                         "From: %s;tag=1\r\nTo: <sip:alice@xmpp.test>\r\nCall-ID: c%zu\r\n"
                         "CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n"
                         "Content-Length: 2\r\n\r\nhi",
                         i, cases[i].from, i);
        struct xs_sip_in in;
        xs_sip_in_parse(m, (size_t)n, 0, &in);
        if (cases[i].want) {
            CHECK(in.verdict == XS_SIP_SUBMIT);
            if (in.ev)
                CHECK_STR(in.ev->from, cases[i].want);
        } else {
            CHECK(in.verdict == XS_SIP_ANSWER && in.status == 400);
        }
        xs_sip_in_clear(&in);
    }
}

/* make_request's "Max-Forwards: 70" with its value replaced by mf (two
 * characters). */
static int mf_verdict(const char *method, const char *mf, int *status)
{
    char m[2048];
    size_t n = make_request(m, sizeof m, method, "z9hG4bK1", 5060,
                            "Call-ID: c1\r\nContent-Type: text/plain\r\n",
                            strcmp(method, "MESSAGE") == 0 ? "x" : NULL);
    memcpy(strstr(m, "Max-Forwards: 70") + 14, mf, 2);
    struct xs_sip_in in;
    xs_sip_in_parse(m, n, 0, &in);
    int v = in.verdict;
    *status = in.status;
    xs_sip_in_clear(&in);
    return v;
}

/* Hostile requests still get the answer RFC 3261 asks for. */
static void test_hostile(void)
{
    int st;
    const char *plain = "Call-ID: c1\r\nContent-Type: text/plain\r\n";
    /* No CSeq: 400, with a key so the transaction layer can answer. */
    const char *nocseq = "MESSAGE sip:bob@sip.test SIP/2.0\r\n"
                         "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnc\r\n"
                         "From: <sip:a@sip.test>;tag=1\r\nTo: <sip:b@xmpp.test>\r\n"
                         "Call-ID: nc\r\nContent-Type: text/plain\r\n"
                         "Content-Length: 2\r\n\r\nhi";
    struct xs_sip_in in;
    xs_sip_in_parse(nocseq, strlen(nocseq), 0, &in);
    CHECK(in.verdict == XS_SIP_ANSWER && in.status == 400 && in.ev == NULL);
    CHECK_STR(in.why, "missing or malformed CSeq");
    CHECK_STR(in.key, "b=z9hG4bKnc|127.0.0.1:5060|MESSAGE");
    xs_sip_in_clear(&in);
    /* A response without CSeq matches nothing and is dropped. */
    const char *resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKq\r\n"
                       "Content-Length: 0\r\n\r\n";
    xs_sip_in_parse(resp, strlen(resp), 0, &in);
    CHECK(in.verdict == XS_SIP_DROP);
    xs_sip_in_clear(&in);

    /* Max-Forwards: 0 ends a MESSAGE with 483; OPTIONS is still answered
     * (RFC 3261 §11); a value that is not a number, or two of them, is a bad
     * request. */
    CHECK(mf_verdict("MESSAGE", "0 ", &st) == XS_SIP_ANSWER && st == 483);
    CHECK(mf_verdict("MESSAGE", "00", &st) == XS_SIP_ANSWER && st == 483);
    CHECK(mf_verdict("OPTIONS", "0 ", &st) == XS_SIP_ANSWER && st == 200);
    CHECK(mf_verdict("MESSAGE", "1 ", &st) == XS_SIP_SUBMIT);
    CHECK(mf_verdict("MESSAGE", "x ", &st) == XS_SIP_ANSWER && st == 400);
    CHECK(verdict_of("MESSAGE", "Call-ID: c1\r\nMax-Forwards: 5\r\nContent-Type: text/plain\r\n",
                     "x", &st) == XS_SIP_ANSWER &&
          st == 400);

    /* A datagram shorter than its Content-Length: 400, nothing submitted. */
    char m[2048];
    size_t n = make_request(m, sizeof m, "MESSAGE", "z9hG4bKcl", 5060, plain, "hello");
    size_t ml, hl;
    CHECK(xs_sip_frame(m, n - 3, n - 3, 0, &ml, &hl) == 1 && ml == n - 3);
    xs_sip_in_parse(m, n - 3, 0, &in);
    CHECK(in.verdict == XS_SIP_ANSWER && in.status == 400 && in.ev == NULL && in.msg != NULL);
    CHECK_STR(in.why, "Content-Length larger than the datagram");
    CHECK_STR(in.key, "b=z9hG4bKcl|127.0.0.1:5060|MESSAGE");
    xs_sip_in_clear(&in);
}

/* Requests past the header or Via bounds are flagged absurd, and the terse
 * answer echoes only the top Via and short fields. */
static void test_absurd(void)
{
    static char m[16384];
    size_t n = (size_t)snprintf(m, sizeof m, "OPTIONS sip:x SIP/2.0\r\n");
    for (int i = 0; i < 71; i++)
        n += (size_t)snprintf(m + n, sizeof m - n, "Via: SIP/2.0/UDP h%d;branch=z9hG4bK%d\r\n", i,
                              i);
    n += (size_t)snprintf(m + n, sizeof m - n,
                          "From: <sip:a@b>;tag=1\r\nTo: <sip:%0300d@b>\r\nCall-ID: c\r\n"
                          "CSeq: 2 OPTIONS\r\n\r\n",
                          0);
    struct xs_sip_in in;
    xs_sip_in_parse(m, n, 0, &in);
    CHECK(in.verdict == XS_SIP_ANSWER && in.status == 400 && in.absurd);
    CHECK_STR(in.key, "b=z9hG4bK0|h0:|OPTIONS");
    struct xs_buf out;
    xs_buf_init(&out, 4096);
    CHECK(xs_sip_build_terse_response(in.msg, in.status, "tg", 0, &out) == 0);
    /* The 300-digit To is left out rather than echoed. */
    CHECK_STR(out.data, "SIP/2.0 400 Bad Request\r\n"
                        "v: SIP/2.0/UDP h0;branch=z9hG4bK0\r\n"
                        "f: <sip:a@b>;tag=1\r\n"
                        "i: c\r\n"
                        "CSeq: 2 OPTIONS\r\n"
                        "l: 0\r\n\r\n");
    xs_sip_in_clear(&in);

    /* A header section past 8 KiB: 513, absurd, whatever else it holds. */
    n = (size_t)snprintf(m, sizeof m,
                         "MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKbig\r\n"
                         "To: <sip:x@y>\r\nCSeq: 1 MESSAGE\r\nX-Pad: %09000d\r\n\r\n",
                         0);
    xs_sip_in_parse(m, n, 0, &in);
    CHECK(in.verdict == XS_SIP_ANSWER && in.status == 513 && in.absurd);
    xs_buf_reset(&out);
    CHECK(xs_sip_build_terse_response(in.msg, in.status, "tg", 1, &out) == 0);
    CHECK_STR(out.data, "SIP/2.0 513 Message Too Large\r\n"
                        "v: SIP/2.0/UDP h;branch=z9hG4bKbig\r\n"
                        "t: <sip:x@y>;tag=tg\r\n"
                        "CSeq: 1 MESSAGE\r\n"
                        "l: 0\r\n\r\n");
    xs_sip_in_clear(&in);
    /* Just inside both bounds: an ordinary request. */
    n = (size_t)snprintf(m, sizeof m, "OPTIONS sip:x SIP/2.0\r\n");
    for (int i = 0; i < 70; i++)
        n += (size_t)snprintf(m + n, sizeof m - n, "v: SIP/2.0/UDP h;branch=z9hG4bK%d\r\n", i);
    n += (size_t)snprintf(m + n, sizeof m - n,
                          "f: <sip:a@b>;tag=1\r\nt: <sip:x@y>\r\ni: c\r\nCSeq: 2 OPTIONS\r\n\r\n");
    xs_sip_in_parse(m, n, 0, &in);
    CHECK(in.verdict == XS_SIP_ANSWER && in.status == 200 && !in.absurd);
    xs_sip_in_clear(&in);
    /* From an untrusted source the same bounds apply. */
    xs_sip_in_parse_refused(m, n, &in);
    CHECK(in.verdict == XS_SIP_ANSWER && in.status == 403 && !in.absurd);
    xs_sip_in_clear(&in);
    xs_buf_free(&out);
}

int main(void)
{
    xs_sip_msg_global_init();
    test_errmap();
    test_errmap_addresses();
    test_frame();
    test_text();
    test_build_and_parse();
    test_validation();
    test_event_addresses();
    test_udp_size();
    test_content();
    test_im_to();
    test_subject_cut();
    test_hostile();
    test_absurd();
    return check_report("test_sip_msg");
}
