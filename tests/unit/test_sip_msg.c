/* The SIP side's tables and byte-level work: RFC 7247 mappings, text and
 * content checks, and the parsing and validation of arriving requests
 * (sip_msg.c). Framing is in test_sip_frame.c, events in
 * test_sip_translate.c. */
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "sip/sip.h"
#include "sip/sip_content.h"
#include "sip/sip_frame.h"
#include "sip/sip_msg.h"
#include "sip/sip_translate.h" /* xs_sip_callid_ok */
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
        [XS_COND_GONE] = 410,      /* no new address: note 3 */
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

    /* A Request-URI osip cannot parse (no scheme) still gets its 400, keyed
     * like any request, so the sender is not left to time out; an ACK with
     * one is never answered. */
    const char *nouri = "MESSAGE alice@xmpp.test SIP/2.0\r\n"
                        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnu\r\n"
                        "From: <sip:a@sip.test>;tag=1\r\nTo: <sip:alice@xmpp.test>\r\n"
                        "Call-ID: nu\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 2\r\n\r\nhi";
    xs_sip_in_parse(nouri, strlen(nouri), 0, &in);
    CHECK(in.verdict == XS_SIP_ANSWER && in.status == 400 && in.ev == NULL && in.msg != NULL);
    CHECK_STR(in.why, "malformed Request-URI");
    CHECK_STR(in.key, "b=z9hG4bKnu|127.0.0.1:5060|MESSAGE");
    xs_sip_in_clear(&in);
    char ack[512];
    snprintf(ack, sizeof ack, "%s", nouri);
    memcpy(ack, "ACK    ", 7);
    xs_sip_in_parse(ack, strlen(ack), 0, &in);
    CHECK(in.verdict == XS_SIP_DROP);
    xs_sip_in_clear(&in);
    /* A request osip refuses for something other than its Request-URI (here
     * a header line without a colon) is tried once with the URI replaced,
     * not again and again: the retry used to recurse until the stack ran
     * out (found by fuzz_sip_parse). */
    const char *badhdr = "NOTIFY sip:gw@127.0.0.3:5060 SIP/2.0\r\n"
                         "Via: SIP/2.0/UDP 127.0.0.4:5060;branch=z9hG4bKn1\r\n"
                         "From: <sip:carol@sip.test>;tag=a1\r\nTo: <sip:alice@xmpp.test>;tag=b2\r\n"
                         "Call-ID: c1@sip.test\r\nCSeq: 2 NOTIFY\r\n"
                         "Event: presencip:carol@127.0.0.6:5090>\r\nContent-Type0\r\n\r\n";
    xs_sip_in_parse(badhdr, strlen(badhdr), 0, &in);
    CHECK(in.verdict == XS_SIP_DROP);
    CHECK_STR(in.why, "unparsable message");
    xs_sip_in_clear(&in);
    /* A request line that is not one (no version) is still dropped. */
    const char *noversion = "MESSAGE alice@xmpp.test\r\n"
                            "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnv\r\n"
                            "CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
    xs_sip_in_parse(noversion, strlen(noversion), 0, &in);
    CHECK(in.verdict == XS_SIP_DROP);
    xs_sip_in_clear(&in);

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

/* A response's To is the request's with the gateway's tag added: the text
 * the echo writes is what osip gives for a copy of the To with the tag set,
 * for To headers with a display name, URI parameters and header parameters
 * with and without values; a To that has a tag keeps it. */
static void test_to_tag_echo(void)
{
    static const char *const tos[] = {
        "<sip:c@d>",
        "\"Bob B\" <sip:c@d;transport=tcp>;x=1;y",
        "sip:c@d",
        "<sip:c@d?subject=x>;expires=5",
        "<sip:c@d>;tag=theirs",
    };
    for (size_t i = 0; i < sizeof tos / sizeof tos[0]; i++) {
        char m[1024];
        int n = snprintf(m, sizeof m,
                         "MESSAGE sip:c@d SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKt\r\n"
                         "From: <sip:a@b>;tag=1\r\nTo: %s\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n"
                         "Content-Length: 0\r\n\r\n",
                         tos[i]);
        struct xs_sip_in in;
        xs_sip_in_parse(m, (size_t)n, 0, &in);
        CHECK(in.msg != NULL);
        if (!in.msg)
            continue;
        osip_to_t *copy = NULL;
        char *want = NULL;
        osip_generic_param_t *tag = NULL;
        osip_to_get_tag(in.msg->to, &tag);
        CHECK(osip_to_clone(in.msg->to, &copy) == 0);
        if (!tag)
            osip_to_set_tag(copy, osip_strdup("tg9"));
        CHECK(osip_to_to_str(copy, &want) == 0);
        char line[600];
        snprintf(line, sizeof line, "\r\nTo: %s\r\n", want);
        struct xs_buf out;
        xs_buf_init(&out, 4096);
        CHECK(xs_sip_build_response(in.msg, 200, "tg9", NULL, NULL, NULL, &out) == 0);
        CHECK(out.data && strstr(out.data, line) != NULL);
        CHECK(strstr(line, tag ? ";tag=theirs" : ";tag=tg9") != NULL);
        xs_buf_reset(&out);
        CHECK(xs_sip_build_terse_response(in.msg, 200, "tg9", 0, &out) == 0);
        snprintf(line, sizeof line, "\r\nt: %s\r\n", want);
        CHECK(out.data && strstr(out.data, line) != NULL);
        xs_buf_free(&out);
        osip_free(want);
        osip_to_free(copy);
        xs_sip_in_clear(&in);
    }
}

/* Call-ID and CSeq are echoed as osip serializes them, with and without a
 * host part, in full and terse responses. */
static void test_callid_cseq_echo(void)
{
    static const char *const ids[] = {"c", "abc@host.test", "a@b@c", "x-1.2@[::1]"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char m[1024];
        int n = snprintf(m, sizeof m,
                         "MESSAGE sip:c@d SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKt\r\n"
                         "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: %s\r\n"
                         "CSeq: 0042 MESSAGE\r\nContent-Length: 0\r\n\r\n",
                         ids[i]);
        struct xs_sip_in in;
        xs_sip_in_parse(m, (size_t)n, 0, &in);
        CHECK(in.msg != NULL);
        if (!in.msg)
            continue;
        char *cid = NULL, *cseq = NULL;
        CHECK(osip_call_id_to_str(in.msg->call_id, &cid) == 0);
        CHECK(osip_cseq_to_str(in.msg->cseq, &cseq) == 0);
        char want[600];
        snprintf(want, sizeof want, "\r\nCall-ID: %s\r\nCSeq: %s\r\n", cid, cseq);
        struct xs_buf out;
        xs_buf_init(&out, 4096);
        CHECK(xs_sip_build_response(in.msg, 200, "tg", NULL, NULL, NULL, &out) == 0);
        CHECK(out.data && strstr(out.data, want) != NULL);
        xs_buf_reset(&out);
        CHECK(xs_sip_build_terse_response(in.msg, 200, "tg", 0, &out) == 0);
        snprintf(want, sizeof want, "\r\ni: %s\r\nCSeq: %s\r\n", cid, cseq);
        CHECK(out.data && strstr(out.data, want) != NULL);
        xs_buf_free(&out);
        xs_sip_in_clear(&in);
        /* The event's thread is the Call-ID as osip writes it. */
        n = snprintf(m, sizeof m,
                     "MESSAGE sip:bob@sip.test SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKt\r\n"
                     "From: <sip:a@sip.test>;tag=1\r\nTo: <sip:bob@xmpp.test>\r\nCall-ID: %s\r\n"
                     "CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx",
                     ids[i]);
        xs_sip_in_parse(m, (size_t)n, 0, &in);
        CHECK(in.verdict == XS_SIP_SUBMIT && in.ev != NULL);
        if (in.ev)
            CHECK_STR(in.ev->thread, cid);
        osip_free(cid);
        osip_free(cseq);
        xs_sip_in_clear(&in);
    }
}

/* Transaction keys, written by hand, are what their printf formats give,
 * cut where the formats cut: a long branch, host and port. */
static void test_keys(void)
{
    static const char *const vias[][4] = {
        {"z9hG4bKshort", "h.test", "5060", "h.test"},
        {"z9hG4bK%0200d", "h%0120d.test", "5061", NULL},
        {"z9hG4bKx", "[::1]", NULL, "::1"}, /* osip keeps no brackets */
    };
    for (size_t i = 0; i < sizeof vias / sizeof vias[0]; i++) {
        char branch[300], host[300], m[2048], want[XS_SIP_KEY_MAX];
        snprintf(branch, sizeof branch, vias[i][0], 7);
        snprintf(host, sizeof host, vias[i][1], 8);
        const char *port = vias[i][2];
        int n = snprintf(m, sizeof m,
                         "MESSAGE sip:c@d SIP/2.0\r\nVia: SIP/2.0/TCP %s%s%s;branch=%s\r\n"
                         "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: c\r\n"
                         "CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
                         host, port ? ":" : "", port ? port : "", branch);
        struct xs_sip_in in;
        xs_sip_in_parse(m, (size_t)n, 0, &in);
        CHECK(in.msg != NULL);
        snprintf(want, sizeof want, "b=%.160s|%.100s:%.8s|%.32s", branch,
                 vias[i][3] ? vias[i][3] : host, port ? port : "", "MESSAGE");
        CHECK_STR(in.key, want);
        xs_sip_in_clear(&in);
        n = snprintf(m, sizeof m,
                     "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP %s;branch=%s\r\nFrom: <sip:a@b>;tag=1\r\n"
                     "To: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n"
                     "Content-Length: 0\r\n\r\n",
                     host, branch);
        xs_sip_in_parse(m, (size_t)n, 0, &in);
        snprintf(want, sizeof want, "b=%.160s|%.32s", branch, "MESSAGE");
        CHECK_STR(in.key, want);
        xs_sip_in_clear(&in);
    }
}

int main(void)
{
    xs_sip_msg_global_init();
    test_to_tag_echo();
    test_callid_cseq_echo();
    test_keys();
    test_errmap();
    test_errmap_addresses();
    test_text();
    test_validation();
    test_content();
    test_hostile();
    test_absurd();
    return check_report("test_sip_msg");
}
