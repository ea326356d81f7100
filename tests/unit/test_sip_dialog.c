/* The dialog layer of SUBSCRIBE/NOTIFY (sip_dialog.h): dialogs made from a
 * 2xx and from a request, route sets in the right order, CSeq checks,
 * requests written in a dialog, and the subscription header fields,
 * hostile values included. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/err.h"
#include "sip/sip_dialog.h"
#include "sip/sip_msg.h"

static osip_message_t *parse(const char *text)
{
    osip_message_t *m = NULL;
    osip_message_init(&m);
    if (osip_message_parse(m, text, strlen(text)) != 0) {
        osip_message_free(m);
        return NULL;
    }
    return m;
}

static const char RESP_2XX[] = "SIP/2.0 202 Accepted\r\n"
                               "Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bKabc\r\n"
                               "Record-Route: <sip:p1.sip.test;lr>\r\n"
                               "Record-Route: <sip:p2.sip.test;lr>\r\n"
                               "From: <sip:alice@xmpp.test>;tag=ours\r\n"
                               "To: <sip:carol@sip.test>;tag=theirs\r\n"
                               "Call-ID: c1@xmpp.test\r\n"
                               "CSeq: 1 SUBSCRIBE\r\n"
                               "Contact: <sip:carol@10.0.0.9:5062;transport=udp>\r\n"
                               "Expires: 600\r\n"
                               "Content-Length: 0\r\n\r\n";

static void test_from_response(void)
{
    osip_message_t *m = parse(RESP_2XX);
    CHECK(m != NULL);
    struct xs_sip_dialog d = {0};
    CHECK(xs_sip_dialog_from_response(&d, m) == 0);
    CHECK_STR(d.remote_tag, "theirs");
    CHECK_STR(d.remote_target, "sip:carol@10.0.0.9:5062;transport=udp");
    /* A UAC's route set is the Record-Route in reverse (§12.1.2). */
    CHECK_STR(d.route_set, "<sip:p2.sip.test;lr>, <sip:p1.sip.test;lr>");
    CHECK(xs_sip_header_seconds(m, "expires", "x") == 600);
    xs_sip_dialog_clear(&d);
    osip_message_free(m);

    /* Without a To tag there is no dialog. */
    char *no_tag = strdup(RESP_2XX);
    char *t = strstr(no_tag, ";tag=theirs");
    memcpy(t, "           ", 11);
    m = parse(no_tag);
    CHECK(m && xs_sip_dialog_from_response(&d, m) == XS_EPROTO);
    CHECK(d.remote_tag == NULL);
    xs_sip_dialog_clear(&d);
    osip_message_free(m);
    free(no_tag);
}

static const char SUBSCRIBE[] = "SUBSCRIBE sip:alice@xmpp.test SIP/2.0\r\n"
                                "Via: SIP/2.0/UDP 127.0.0.4:5060;branch=z9hG4bKx1\r\n"
                                "Record-Route: <sip:127.0.0.4;lr>\r\n"
                                "Max-Forwards: 69\r\n"
                                "From: <sip:carol@sip.test>;tag=c-tag\r\n"
                                "To: <sip:alice@xmpp.test>\r\n"
                                "Call-ID: sub-1\r\n"
                                "CSeq: 7 SUBSCRIBE\r\n"
                                "Contact: <sip:carol@127.0.0.6:5090>\r\n"
                                "Event: presence;id=1\r\n"
                                "Expires: 3600\r\n"
                                "Content-Length: 0\r\n\r\n";

static void test_from_request_and_cseq(void)
{
    osip_message_t *m = parse(SUBSCRIBE);
    CHECK(m != NULL);
    struct xs_sip_dialog d = {0};
    CHECK(xs_sip_dialog_from_request(&d, m) == 0);
    CHECK_STR(d.remote_tag, "c-tag");
    CHECK_STR(d.remote_target, "sip:carol@127.0.0.6:5090");
    CHECK_STR(d.route_set, "<sip:127.0.0.4;lr>");
    CHECK(d.remote_cseq == 7);
    CHECK(xs_sip_event_is_presence(m) == 1);
    char rr[256];
    CHECK(xs_sip_record_route_lines(m, rr, sizeof rr) == 0);
    CHECK_STR(rr, "Record-Route: <sip:127.0.0.4;lr>\r\n");
    CHECK(xs_sip_record_route_lines(m, rr, 10) == XS_ELIMIT);
    /* The same CSeq again, or an older one, is refused (§12.2.2). */
    CHECK(xs_sip_dialog_accept(&d, m) == 500);
    osip_message_free(m);
    char *next = strdup(SUBSCRIBE);
    memcpy(strstr(next, "CSeq: 7"), "CSeq: 8", 7);
    memcpy(strstr(next, "127.0.0.6:5090"), "127.0.0.8:5090", 14);
    m = parse(next);
    CHECK(m && xs_sip_dialog_accept(&d, m) == 0);
    CHECK(d.remote_cseq == 8);
    CHECK_STR(d.remote_target, "sip:carol@127.0.0.8:5090");
    osip_message_free(m);
    free(next);

    /* Write a NOTIFY in it and read it back. */
    xs_sip_dialog_set(&d.call_id, "sub-1");
    xs_sip_dialog_set(&d.local_tag, "gw-tag");
    xs_sip_dialog_set(&d.local_uri, "sip:alice@xmpp.test");
    xs_sip_dialog_set(&d.remote_uri, "sip:carol@sip.test");
    d.local_cseq = 3;
    struct xs_sip_req_params p = {
        .transport = "UDP", .via_host = "127.0.0.3", .via_port = 5060, .branch = "z9hG4bKn1"};
    struct xs_buf out;
    xs_buf_init(&out, 8192);
    const char body[] = "<presence/>";
    CHECK(xs_sip_dialog_write(&d, "NOTIFY", &p, "sip:127.0.0.3:5060",
                              "Event: presence\r\nSubscription-State: active;expires=60\r\n",
                              "application/pidf+xml", body, strlen(body), &out) == 0);
    CHECK(xs_buf_append(&out, "", 1) == 0);
    osip_message_t *n = parse(out.data);
    CHECK(n != NULL);
    if (n) {
        CHECK_STR(n->sip_method, "NOTIFY");
        char *ruri = NULL;
        osip_uri_to_str(n->req_uri, &ruri);
        CHECK_STR(ruri, "sip:carol@127.0.0.8:5090");
        osip_free(ruri);
        CHECK_STR(xs_sip_from_tag(n), "gw-tag");
        CHECK_STR(xs_sip_to_tag(n), "c-tag");
        CHECK_STR(n->cseq->number, "3");
        CHECK(osip_list_size(&n->routes) == 1);
        CHECK(strstr(out.data, "\r\nRoute: <sip:127.0.0.4;lr>\r\n") != NULL);
        CHECK(strstr(out.data, "\r\n\r\n<presence/>") != NULL);
        CHECK(strstr(out.data, "Content-Length: 11\r\n") != NULL);
        osip_message_free(n);
    }
    /* A dialog without its remote target cannot be written in. */
    xs_sip_dialog_set(&d.remote_target, NULL);
    xs_buf_reset(&out);
    CHECK(xs_sip_dialog_write(&d, "NOTIFY", &p, "sip:x", NULL, NULL, NULL, 0, &out) == XS_EINVAL);
    /* A URI that could break out of <...> is refused, not written. */
    xs_sip_dialog_set(&d.remote_target, "sip:carol@sip.test");
    xs_sip_dialog_set(&d.remote_uri, "sip:carol@sip.test>\r\nX: y");
    CHECK(xs_sip_dialog_write(&d, "NOTIFY", &p, "sip:x", NULL, NULL, NULL, 0, &out) == XS_EINVAL);
    xs_buf_free(&out);
    xs_sip_dialog_clear(&d);
}

static void test_substate(void)
{
    struct xs_sip_substate s;
    xs_sip_substate_parse("active;expires=600", &s);
    CHECK(s.state == XS_SUBSTATE_ACTIVE && s.expires == 600 && !s.reason[0]);
    xs_sip_substate_parse(" Terminated ; reason=Rejected ;retry-after=30", &s);
    CHECK(s.state == XS_SUBSTATE_TERMINATED && s.retry_after == 30);
    CHECK_STR(s.reason, "rejected");
    xs_sip_substate_parse("pending", &s);
    CHECK(s.state == XS_SUBSTATE_PENDING && s.expires == -1);
    /* Unknown states read as unknown (a subscriber treats them as pending). */
    xs_sip_substate_parse("waiting;expires=5", &s);
    CHECK(s.state == XS_SUBSTATE_UNKNOWN && s.expires == 5);
    /* Hostile: huge numbers, long tokens, garbage. */
    xs_sip_substate_parse("active;expires=99999999999999999999", &s);
    CHECK(s.state == XS_SUBSTATE_ACTIVE && s.expires == -1);
    char long_reason[600];
    memset(long_reason, 'r', sizeof long_reason - 1);
    long_reason[sizeof long_reason - 1] = '\0';
    char v[700];
    snprintf(v, sizeof v, "terminated;reason=%s", long_reason);
    xs_sip_substate_parse(v, &s);
    CHECK(s.state == XS_SUBSTATE_TERMINATED && strlen(s.reason) == sizeof s.reason - 1);
    xs_sip_substate_parse(";;;=;=", &s);
    CHECK(s.state == XS_SUBSTATE_UNKNOWN);
    xs_sip_substate_parse(NULL, &s);
    CHECK(s.state == XS_SUBSTATE_UNKNOWN);
}

static void test_headers(void)
{
    char *text = strdup(SUBSCRIBE);
    memcpy(strstr(text, "Expires: 3600"), "Expires: x600", 13);
    osip_message_t *m = parse(text);
    CHECK(m && xs_sip_header_seconds(m, "expires", "x") == -1);
    CHECK(m && xs_sip_header_seconds(m, "min-expires", NULL) == -1);
    osip_message_free(m);
    memcpy(strstr(text, "Event: presence;id=1"), "Event: dialog;id=1  ", 20);
    m = parse(text);
    CHECK(m && xs_sip_event_is_presence(m) == 0);
    osip_message_free(m);
    free(text);
}

int main(void)
{
    xs_sip_msg_global_init();
    test_from_response();
    test_from_request_and_cseq();
    test_substate();
    test_headers();
    return check_report("test_sip_dialog");
}
