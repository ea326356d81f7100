/* SIP <-> event (sip_translate.c): the MESSAGE built from an event, and the
 * event an arriving MESSAGE becomes, addresses, Subject and size limits. */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "sip/sip_msg.h"
#include "sip/sip_translate.h"
#include "sip_testutil.h"

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

int main(void)
{
    xs_sip_msg_global_init();
    test_build_and_parse();
    test_event_addresses();
    test_udp_size();
    test_im_to();
    test_subject_cut();
    return check_report("test_sip_translate");
}
