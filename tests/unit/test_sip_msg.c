/* The SIP side's tables and byte-level work: RFC 7247 mappings, framing,
 * validation of arriving requests, and the MESSAGE we build. */
#include <string.h>

#include "core/err.h"
#include "sip/sip.h"
#include "sip/sip_msg.h"
#include "sip_testutil.h"

static void test_errmap(void)
{
    /* RFC 7247 §8.2: SIP -> XMPP. */
    static const struct {
        int status;
        enum xs_cond cond;
    } in[] = {
        {200, XS_COND_NONE},
        {202, XS_COND_NONE},
        {302, XS_COND_REDIRECT},
        {400, XS_COND_BAD_REQUEST},
        {401, XS_COND_NOT_AUTHORIZED},
        {402, XS_COND_BAD_REQUEST},
        {403, XS_COND_FORBIDDEN},
        {404, XS_COND_ITEM_NOT_FOUND},
        {405, XS_COND_FEATURE_NOT_IMPLEMENTED},
        {406, XS_COND_NOT_ACCEPTABLE},
        {407, XS_COND_NOT_AUTHORIZED},
        {408, XS_COND_REMOTE_SERVER_TIMEOUT},
        {410, XS_COND_GONE},
        {413, XS_COND_POLICY_VIOLATION},
        {414, XS_COND_POLICY_VIOLATION},
        {415, XS_COND_BAD_REQUEST},
        {416, XS_COND_BAD_REQUEST},
        {420, XS_COND_BAD_REQUEST},
        {480, XS_COND_RECIPIENT_UNAVAILABLE},
        {481, XS_COND_ITEM_NOT_FOUND},
        {482, XS_COND_NOT_ACCEPTABLE},
        {483, XS_COND_NOT_ACCEPTABLE},
        {484, XS_COND_ITEM_NOT_FOUND},
        {485, XS_COND_ITEM_NOT_FOUND},
        {486, XS_COND_RECIPIENT_UNAVAILABLE},
        {487, XS_COND_SERVICE_UNAVAILABLE},
        {488, XS_COND_NOT_ACCEPTABLE},
        {491, XS_COND_UNEXPECTED_REQUEST},
        {493, XS_COND_BAD_REQUEST},
        {499, XS_COND_BAD_REQUEST},
        {500, XS_COND_INTERNAL_SERVER_ERROR},
        {501, XS_COND_FEATURE_NOT_IMPLEMENTED},
        {502, XS_COND_REMOTE_SERVER_NOT_FOUND},
        {503, XS_COND_SERVICE_UNAVAILABLE},
        {504, XS_COND_REMOTE_SERVER_TIMEOUT},
        {505, XS_COND_NOT_ACCEPTABLE},
        {513, XS_COND_BAD_REQUEST},
        {580, XS_COND_INTERNAL_SERVER_ERROR},
        {600, XS_COND_SERVICE_UNAVAILABLE},
        {603, XS_COND_SERVICE_UNAVAILABLE},
        {604, XS_COND_ITEM_NOT_FOUND},
        {606, XS_COND_NOT_ACCEPTABLE},
        {699, XS_COND_SERVICE_UNAVAILABLE},
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
    /* RFC 7247 §8.1: XMPP -> SIP. */
    static const int out[XS_COND_COUNT_] = {
        [XS_COND_NONE] = 200,
        [XS_COND_BAD_REQUEST] = 400,
        [XS_COND_CONFLICT] = 400,
        [XS_COND_FEATURE_NOT_IMPLEMENTED] = 501,
        [XS_COND_FORBIDDEN] = 403,
        [XS_COND_GONE] = 410,
        [XS_COND_INTERNAL_SERVER_ERROR] = 500,
        [XS_COND_ITEM_NOT_FOUND] = 404,
        [XS_COND_JID_MALFORMED] = 400,
        [XS_COND_NOT_ACCEPTABLE] = 406,
        [XS_COND_NOT_ALLOWED] = 403,
        [XS_COND_NOT_AUTHORIZED] = 401,
        [XS_COND_POLICY_VIOLATION] = 403,
        [XS_COND_RECIPIENT_UNAVAILABLE] = 480,
        [XS_COND_REDIRECT] = 302,
        [XS_COND_REGISTRATION_REQUIRED] = 400,
        [XS_COND_REMOTE_SERVER_NOT_FOUND] = 404,
        [XS_COND_REMOTE_SERVER_TIMEOUT] = 408,
        [XS_COND_RESOURCE_CONSTRAINT] = 500,
        [XS_COND_SERVICE_UNAVAILABLE] = 503,
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
    CHECK(xs_sip_frame(short_dgram, strlen(short_dgram), 4096, 0, &ml, &hl) == XS_EPROTO);
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
        CHECK(strcmp(in.ev->type, "chat") == 0);
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
    xs_event_set(&ev->to, "sip:bob@sip.test");
    xs_event_set(&ev->body, NULL);
    CHECK(xs_sip_build_message(ev, &p, &out, &why) == XS_EPROTO);
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
              XS_SIP_ANSWER &&
          st == 415);
    CHECK(verdict_of("MESSAGE", "Call-ID: c1\r\nContent-Type: text/plain;charset=latin1\r\n", "x",
                     &st) == XS_SIP_ANSWER &&
          st == 415);
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

int main(void)
{
    xs_sip_msg_global_init();
    test_errmap();
    test_frame();
    test_text();
    test_build_and_parse();
    test_validation();
    return check_report("test_sip_msg");
}
