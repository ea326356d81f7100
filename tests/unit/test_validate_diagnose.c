/* xsgw validate's diagnosis over recorded probe report sequences: one per
 * classic mistake (certificate naming the SRV target, the internal name,
 * expired, another CA, no TLS offered, nothing listening, no answer, SASL
 * EXTERNAL refused, the peer requiring TLS we did not start), the SIP edge's
 * answers, and the exact text and JSON an operator gets. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "validate/diagnose.h"

static struct xs_diag *diag(const char *subject)
{
    struct xs_diag *d = NULL;
    CHECK(xs_diag_new(subject, "gw.example, *.gw.example", &d) == 0);
    return d;
}

static void rep(struct xs_diag *d, enum xs_probe_step step, int ok, const char *detail)
{
    struct xs_probe_report r = {.step = step, .ok = ok, .detail = detail};
    xs_diag_probe(d, &r);
}

static void srv(struct xs_diag *d, const char *record)
{
    rep(d, XS_PROBE_SRV, 1, record);
}

static void cert(struct xs_diag *d, enum xs_tls_chain chain, int name_ok, const char *names,
                 const char *reason)
{
    struct xs_tls_peer p = {.chain = chain, .name_ok = name_ok};
    snprintf(p.names, sizeof(p.names), "%s", names);
    snprintf(p.reason, sizeof(p.reason), "%s", reason);
    struct xs_probe_report r = {
        .step = XS_PROBE_CERT, .ok = chain == XS_TLS_CHAIN_OK && name_ok, .peer = &p};
    xs_diag_probe(d, &r);
}

/* Reached x.example over STARTTLS; what the certificate step says is up to the caller. */
static void up_to_tls(struct xs_diag *d)
{
    srv(d, "_xmpp-server._tcp.x.example: 0 5 5269 xmpp.x.example");
    rep(d, XS_PROBE_CONNECT, 1, "xmpp.x.example:5269");
    rep(d, XS_PROBE_FEATURES, 1, "starttls dialback");
    rep(d, XS_PROBE_TLS, 1, "TLSv1.3/TLS1-3-AES-256-GCM-SHA384");
}

static char *printed(const struct xs_diag *d, int json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (json)
        xs_diag_json(d, f);
    else
        xs_diag_print(d, f);
    fclose(f);
    return buf;
}

/* The failed step's hint starts with `prefix`, and it is the only problem. */
static void one_problem(struct xs_diag *d, const char *step, const char *prefix)
{
    int found = 0;
    for (size_t i = 0; i < xs_diag_count(d); i++) {
        if (strcmp(xs_diag_step_name(d, i), step))
            continue;
        found = 1;
        CHECK(!xs_diag_step_ok(d, i));
        const char *hint = xs_diag_step_hint(d, i);
        if (strncmp(hint, prefix, strlen(prefix))) {
            fprintf(stderr, "hint for %s: \"%s\", expected \"%s...\"\n", step, hint, prefix);
            CHECK(0);
        }
    }
    CHECK(found);
    CHECK(xs_diag_problems(d) == 1);
    CHECK(!xs_diag_passed(d));
}

static void test_pass(void)
{
    struct xs_diag *d = diag("x.example");
    up_to_tls(d);
    cert(d, XS_TLS_CHAIN_OK, 1, "x.example", "");
    rep(d, XS_PROBE_AUTH, 1, "sasl-external ok");
    rep(d, XS_PROBE_DONE, 1, "gw.example -> x.example authenticated");
    CHECK(xs_diag_passed(d));
    CHECK(xs_diag_problems(d) == 0);
    char *out = printed(d, 0);
    CHECK_STR(out, "  ok   SRV _xmpp-server._tcp.x.example: 0 5 5269 xmpp.x.example\n"
                   "  ok   connect: xmpp.x.example:5269\n"
                   "  ok   features: starttls dialback\n"
                   "  ok   TLS: TLSv1.3/TLS1-3-AES-256-GCM-SHA384\n"
                   "  ok   certificate: x.example\n"
                   "  ok   authentication: sasl-external ok\n"
                   "  ok   authenticated: gw.example -> x.example authenticated\n"
                   "verdict: PASS (0 problems)\n");
    free(out);
    /* Nothing after DONE is believed. */
    rep(d, XS_PROBE_AUTH, 0, "sasl-external refused: not-authorized");
    CHECK(xs_diag_count(d) == 7);
    CHECK(xs_diag_passed(d));
    xs_diag_free(d);
}

static void test_srv_target_name(void)
{
    struct xs_diag *d = diag("x.example");
    up_to_tls(d);
    cert(d, XS_TLS_CHAIN_OK, 0, "xmpp.x.example", "presented xmpp.x.example, expected x.example");
    rep(d, XS_PROBE_DONE, 0,
        "certificate of x.example: presented xmpp.x.example, expected x.example");
    one_problem(d, "certificate",
                "SRV target without a matching certificate name: the certificate names the SRV "
                "target xmpp.x.example, not the domain x.example");
    char *out = printed(d, 0);
    CHECK(strstr(out, "  FAIL certificate: presented xmpp.x.example, expected x.example\n"
                      "       hint: SRV target without") != NULL);
    CHECK(strstr(out, "verdict: FAIL (1 problem)\n") != NULL);
    free(out);
    xs_diag_free(d);
}

static void test_internal_name(void)
{
    struct xs_diag *d = diag("x.example");
    up_to_tls(d);
    cert(d, XS_TLS_CHAIN_OK, 0, "int.x.example", "presented int.x.example, expected x.example");
    rep(d, XS_PROBE_DONE, 0, "certificate of x.example: presented int.x.example");
    one_problem(d, "certificate",
                "certificate for the internal name: it names int.x.example, which is neither "
                "x.example nor an SRV target");
    xs_diag_free(d);
}

static void test_chain_faults(void)
{
    static const struct {
        enum xs_tls_chain chain;
        const char *reason, *hint;
    } cases[] = {
        {XS_TLS_CHAIN_EXPIRED, "expired on 2021-01-01 00:00:00 UTC",
         "expired certificate: expired on 2021-01-01 00:00:00 UTC; the peer must renew it"},
        {XS_TLS_CHAIN_FUTURE, "not valid before 2099-01-01 00:00:00 UTC",
         "certificate not yet valid: not valid before 2099-01-01"},
        {XS_TLS_CHAIN_UNTRUSTED, "not issued by a trusted CA",
         "untrusted CA: the certificate (x.example) is not issued by a CA in gateway.tls.ca"},
        {XS_TLS_CHAIN_NONE, "no certificate", "the peer presented no certificate"},
        {XS_TLS_CHAIN_NO_CA, "no trust anchors", "no trust anchors: gateway.tls.ca is not set"},
        {XS_TLS_CHAIN_REVOKED, "revoked", "revoked certificate"},
        {XS_TLS_CHAIN_USAGE, "key usage", "key usage: the certificate may not be used"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct xs_diag *d = diag("x.example");
        up_to_tls(d);
        cert(d, cases[i].chain, 1, "x.example", cases[i].reason);
        rep(d, XS_PROBE_DONE, 0, "certificate of x.example failed");
        one_problem(d, "certificate", cases[i].hint);
        CHECK_STR(xs_diag_step_detail(d, 4), cases[i].reason);
        xs_diag_free(d);
    }
}

static void test_no_tls_offered(void)
{
    struct xs_diag *d = diag("x.example");
    srv(d, "_xmpp-server._tcp.x.example: 0 5 5269 xmpp.x.example");
    rep(d, XS_PROBE_CONNECT, 1, "xmpp.x.example:5269");
    rep(d, XS_PROBE_FEATURES, 0, "dialback");
    rep(d, XS_PROBE_DONE, 0, "peer does not offer TLS, which this partner requires");
    one_problem(d, "features",
                "TLS required by one side only: we require TLS with x.example and it offers no "
                "STARTTLS");
    xs_diag_free(d);

    /* The same seen only in the end. */
    d = diag("x.example");
    rep(d, XS_PROBE_CONNECT, 1, "x.example:5269");
    rep(d, XS_PROBE_DONE, 0, "peer does not offer TLS, which this partner requires");
    one_problem(d, "authenticated", "TLS required by one side only: we require TLS");
    xs_diag_free(d);
}

static void test_peer_requires_tls(void)
{
    struct xs_diag *d = diag("x.example");
    rep(d, XS_PROBE_CONNECT, 1, "x.example:5269");
    rep(d, XS_PROBE_FEATURES, 1, "starttls dialback");
    rep(d, XS_PROBE_AUTH, 0, "dialback refused: stream error policy-violation");
    rep(d, XS_PROBE_DONE, 0, "stream error from the remote server: policy-violation");
    /* The authentication step counts; the end is its consequence. */
    CHECK(xs_diag_problems(d) == 1);
    xs_diag_free(d);

    d = diag("x.example");
    rep(d, XS_PROBE_CONNECT, 1, "x.example:5269");
    rep(d, XS_PROBE_FEATURES, 1, "starttls dialback");
    rep(d, XS_PROBE_DONE, 0, "stream error from the remote server: policy-violation");
    one_problem(d, "authenticated",
                "TLS required by one side only: x.example closed the stream because we did not "
                "start TLS");
    xs_diag_free(d);
}

static void test_connect_failures(void)
{
    struct xs_diag *d = diag("x.example");
    srv(d, "_xmpp-server._tcp.x.example: 0 5 5269 xmpp.x.example");
    rep(d, XS_PROBE_CONNECT, 0, "xmpp.x.example:5269: refused");
    rep(d, XS_PROBE_DONE, 0, "remote-server-not-found");
    one_problem(d, "connect",
                "wrong port or interface: nothing accepts connections at xmpp.x.example:5269 "
                "(connection refused)");
    xs_diag_free(d);

    d = diag("x.example");
    rep(d, XS_PROBE_CONNECT, 0, "x.example:5269: timed out");
    rep(d, XS_PROBE_DONE, 0, "remote-server-timeout");
    one_problem(d, "connect",
                "wrong port or interface: x.example:5269 did not answer before the timeout");
    xs_diag_free(d);

    /* Direct TLS first, its port refusing, then STARTTLS working: a problem, still. */
    d = diag("x.example");
    struct xs_probe_report r = {.step = XS_PROBE_SRV,
                                .ok = 1,
                                .direct = 1,
                                .detail = "_xmpps-server._tcp.x.example: 0 5 5270 xmpp.x.example"};
    xs_diag_probe(d, &r);
    r = (struct xs_probe_report){
        .step = XS_PROBE_CONNECT, .direct = 1, .detail = "xmpp.x.example:5270: refused"};
    xs_diag_probe(d, &r);
    up_to_tls(d);
    cert(d, XS_TLS_CHAIN_OK, 1, "x.example", "");
    rep(d, XS_PROBE_DONE, 1, "authenticated");
    CHECK_STR(xs_diag_step_name(d, 0), "SRV _xmpps-server._tcp.x.example");
    CHECK_STR(xs_diag_step_name(d, 1), "connect (Direct TLS)");
    CHECK(xs_diag_problems(d) == 1);
    CHECK(!xs_diag_passed(d));
    xs_diag_free(d);
}

static void test_direct_tls_to_plain_port(void)
{
    struct xs_diag *d = diag("x.example");
    struct xs_probe_report r = {
        .step = XS_PROBE_CONNECT, .ok = 1, .direct = 1, .detail = "xmpp.x.example:5269"};
    xs_diag_probe(d, &r);
    rep(d, XS_PROBE_TLS, 0, "handshake failed: the peer sent no TLS record");
    rep(d, XS_PROBE_DONE, 0, "TLS failed");
    one_problem(d, "TLS", "Direct TLS to a port that does not speak TLS from the first byte");
    xs_diag_free(d);
}

/* As xs_xmpp_probe reports it: no TLS step, the stream just ends. */
static void test_direct_tls_handshake_never_done(void)
{
    struct xs_diag *d = diag("x.example");
    struct xs_probe_report r = {
        .step = XS_PROBE_CONNECT, .ok = 1, .direct = 1, .detail = "xmpp.x.example:5269"};
    xs_diag_probe(d, &r);
    rep(d, XS_PROBE_DONE, 0, "connection closed");
    one_problem(d, "authenticated",
                "Direct TLS to a port that does not speak TLS from the first byte: "
                "_xmpps-server._tcp.x.example must point");
    xs_diag_free(d);
}

static void test_srv_forms(void)
{
    struct xs_diag *d = diag("x.example");
    srv(d, "_xmpp-server._tcp.x.example: no records");
    rep(d, XS_PROBE_SRV, 0, "_xmpps-server._tcp.x.example: name resolution failed");
    srv(d, "static route 192.0.2.9:5269 (no DNS)");
    CHECK_STR(xs_diag_step_name(d, 0), "SRV _xmpp-server._tcp.x.example");
    CHECK_STR(xs_diag_step_detail(d, 0), "no records");
    CHECK(xs_diag_step_ok(d, 1));
    CHECK_STR(xs_diag_step_name(d, 2), "route");
    CHECK_STR(xs_diag_step_detail(d, 2), "static route 192.0.2.9:5269 (no DNS)");
    CHECK(xs_diag_problems(d) == 0);
    char *out = printed(d, 0);
    CHECK(strstr(out, "  --   SRV _xmpps-server._tcp.x.example: name resolution failed\n") != NULL);
    free(out);
    /* No target learnt from them: a wrong name is the internal-name case. */
    cert(d, XS_TLS_CHAIN_OK, 0, "no", "presented no, expected x.example");
    CHECK(!strncmp(xs_diag_step_hint(d, 3), "certificate for the internal name", 33));
    xs_diag_free(d);
}

static void test_dialback_off(void)
{
    struct xs_diag *d = diag("x.example");
    up_to_tls(d);
    cert(d, XS_TLS_CHAIN_OK, 1, "x.example", "");
    rep(d, XS_PROBE_AUTH, 0, "sasl-external refused: not-authorized");
    rep(d, XS_PROBE_AUTH, 0,
        "dialback refused: x.example refused our certificate (not-authorized) and dialback is "
        "off for this partner");
    rep(d, XS_PROBE_DONE, 0, "x.example refused our certificate");
    CHECK(xs_diag_problems(d) == 2);
    CHECK(!strncmp(xs_diag_step_hint(d, 6), "dialback = false for this partner", 33));
    xs_diag_free(d);

    d = diag("x.example");
    up_to_tls(d);
    rep(d, XS_PROBE_AUTH, 0,
        "sasl-external refused: x.example does not offer SASL EXTERNAL, which this partner "
        "requires");
    rep(d, XS_PROBE_DONE, 0, "x.example does not offer SASL EXTERNAL, which this partner requires");
    one_problem(d, "authentication",
                "this partner has sasl = \"required\", and x.example offers no");
    xs_diag_free(d);
}

static void test_sasl_refused(void)
{
    struct xs_diag *d = diag("x.example");
    up_to_tls(d);
    cert(d, XS_TLS_CHAIN_OK, 1, "x.example", "");
    rep(d, XS_PROBE_AUTH, 0, "sasl-external refused: not-authorized");
    rep(d, XS_PROBE_DONE, 0,
        "x.example refused our certificate (not-authorized) and dialback is off");
    one_problem(d, "authentication",
                "SASL EXTERNAL refused by the peer: it does not trust our certificate (ours "
                "names gw.example, *.gw.example)");
    xs_diag_free(d);

    d = diag("x.example");
    up_to_tls(d);
    cert(d, XS_TLS_CHAIN_OK, 1, "x.example", "");
    rep(d, XS_PROBE_DONE, 0, "x.example does not offer SASL EXTERNAL, which this partner requires");
    one_problem(d, "authenticated",
                "this partner has sasl = \"required\", and x.example offers no");
    xs_diag_free(d);
}

/* Under verify = "none" dialback authenticates whatever the certificate:
 * its failure is a warning, with its hint, and the run passes. */
static void test_certificate_not_required(void)
{
    struct xs_diag *d = diag("x.example");
    up_to_tls(d);
    cert(d, XS_TLS_CHAIN_EXPIRED, 1, "x.example", "expired on 2021-01-01 00:00:00 UTC");
    rep(d, XS_PROBE_AUTH, 1, "dialback ok");
    rep(d, XS_PROBE_DONE, 1, "authenticated");
    CHECK(xs_diag_passed(d));
    CHECK(xs_diag_problems(d) == 0);
    char *out = printed(d, 0);
    CHECK(strstr(out, "  warn certificate: expired on 2021-01-01 00:00:00 UTC\n"
                      "       hint: expired certificate:") != NULL);
    CHECK(strstr(out, "verdict: PASS (0 problems, 1 warning)\n") != NULL);
    free(out);
    xs_diag_free(d);
}

static void test_ours_unknown(void)
{
    struct xs_diag *d = NULL;
    CHECK(xs_diag_new("x.example", NULL, &d) == 0);
    rep(d, XS_PROBE_AUTH, 0, "sasl-external refused: not-authorized");
    CHECK_STR(xs_diag_step_hint(d, 0),
              "SASL EXTERNAL refused by the peer: it does not trust our certificate; it needs "
              "our CA, and a name in ours that is our domain");
    xs_diag_free(d);
}

static void test_dialback_failed(void)
{
    struct xs_diag *d = diag("x.example");
    up_to_tls(d);
    cert(d, XS_TLS_CHAIN_UNTRUSTED, 1, "x.example", "not issued by a trusted CA");
    rep(d, XS_PROBE_AUTH, 0, "dialback refused: invalid");
    rep(d, XS_PROBE_DONE, 0, "dialback refused");
    /* Two problems: the certificate (not needed under verify none, still
     * worth fixing) and dialback. */
    CHECK(xs_diag_problems(d) == 2);
    CHECK(!strncmp(xs_diag_step_hint(d, 5), "dialback failed: x.example connects back", 40));
    xs_diag_free(d);
}

static void test_abort_and_steps(void)
{
    struct xs_diag *d = diag("x.example");
    xs_diag_step(d, "listener", 1, "none: 0.0.0.0:5269 is taken (the gateway runs there)", NULL);
    rep(d, XS_PROBE_CONNECT, 1, "x.example:5269");
    xs_diag_abort(d, "no answer within 15 s");
    CHECK(xs_diag_problems(d) == 1);
    CHECK(!xs_diag_passed(d));
    CHECK_STR(xs_diag_step_name(d, 2), "verdict");
    xs_diag_free(d);

    /* A run that never said DONE did not pass, even with no failure. */
    d = diag("x.example");
    rep(d, XS_PROBE_CONNECT, 1, "x.example:5269");
    CHECK(!xs_diag_passed(d));
    xs_diag_free(d);
}

static void test_bounded(void)
{
    struct xs_diag *d = diag("x.example");
    for (int i = 0; i < 40; i++)
        rep(d, XS_PROBE_CONNECT, 0, "x.example:5269: refused");
    CHECK(xs_diag_count(d) == XS_DIAG_MAX_STEPS + 1);
    CHECK_STR(xs_diag_step_name(d, XS_DIAG_MAX_STEPS), "report");
    CHECK(xs_diag_problems(d) == XS_DIAG_MAX_STEPS);
    xs_diag_free(d);

    /* An oversized detail is cut, not overrun. */
    char big[4096];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    d = diag(big);
    rep(d, XS_PROBE_FEATURES, 1, big);
    CHECK(strlen(xs_diag_step_detail(d, 0)) < 1024);
    CHECK(strlen(xs_diag_step_detail(d, 0)) > 100);
    xs_diag_free(d);
}

static void test_json(void)
{
    struct xs_diag *d = diag("x.example");
    rep(d, XS_PROBE_CONNECT, 0, "x.example:5269: refused");
    rep(d, XS_PROBE_DONE, 0, "said \"no\"\\\n");
    char *out = printed(d, 1);
    CHECK_STR(out, "{\"domain\":\"x.example\",\"steps\":[{\"step\":\"connect\",\"ok\":false,"
                   "\"detail\":\"x.example:5269: refused\",\"hint\":"
                   "\"wrong port or interface: nothing accepts connections at x.example:5269 "
                   "(connection refused); check the port in the SRV record and the "
                   "interface the server listens on\"},{\"step\":\"authenticated\",\"ok\":false,"
                   "\"detail\":\"said \\\"no\\\"\\\\\\u000a\",\"hint\":null}],\"problems\":1,"
                   "\"verdict\":\"FAIL\"}\n");
    free(out);
    xs_diag_free(d);
}

static void sip(struct xs_diag *d, int status, const char *reason, enum xs_tls_chain chain,
                int name_ok, const char *names, const char *why, int with_peer)
{
    struct xs_tls_peer p = {.chain = chain, .name_ok = name_ok};
    snprintf(p.names, sizeof(p.names), "%s", names);
    snprintf(p.reason, sizeof(p.reason), "%s", why);
    xs_diag_sip(d, 1, status, reason, with_peer ? &p : NULL, with_peer ? "TLSv1.3/x" : "");
}

static void test_sip(void)
{
    struct xs_diag *d = diag("sip.example.test");
    sip(d, 200, "OK", XS_TLS_CHAIN_OK, 1, "sip.example.test", "", 1);
    CHECK(xs_diag_passed(d));
    char *out = printed(d, 0);
    CHECK_STR(out, "  ok   TLS: TLSv1.3/x\n"
                   "  ok   certificate: sip.example.test\n"
                   "  ok   OPTIONS: 200 OK\n"
                   "verdict: PASS (0 problems)\n");
    free(out);
    xs_diag_free(d);

    d = diag("sip.example.test");
    sip(d, 200, "OK", XS_TLS_CHAIN_OK, 0, "sip.int.example.test",
        "presented sip.int.example.test, expected sip.example.test", 1);
    one_problem(d, "certificate",
                "certificate for the internal name: it names sip.int.example.test");
    xs_diag_free(d);

    d = diag("sip.example.test");
    sip(d, 503, "TLS with the SIP next hop failed (handshake or certificate refused)",
        XS_TLS_CHAIN_OK, 0, "", "", 0);
    one_problem(d, "TLS", "the edge refused our certificate (ours names gw.example, *.gw.example)");
    CHECK(!xs_diag_step_ok(d, 1));
    CHECK(xs_diag_problems(d) == 1);
    xs_diag_free(d);

    d = diag("sip.example.test");
    sip(d, 503, "SIP next hop refused the connection", XS_TLS_CHAIN_OK, 0, "", "", 0);
    one_problem(d, "OPTIONS",
                "wrong port or interface: nothing accepts connections at the next hop for "
                "sip.example.test (connection refused)");
    CHECK(xs_diag_count(d) == 1);
    xs_diag_free(d);

    d = diag("sip.example.test");
    sip(d, 408, "Request Timeout", XS_TLS_CHAIN_OK, 1, "sip.example.test", "", 1);
    one_problem(d, "OPTIONS", "no answer from the next hop for sip.example.test");
    xs_diag_free(d);

    d = diag("sip.example.test");
    sip(d, 403, "Forbidden", XS_TLS_CHAIN_OK, 1, "sip.example.test", "", 1);
    one_problem(d, "OPTIONS", "the edge answered 403");
    xs_diag_free(d);
}

int main(void)
{
    test_pass();
    test_srv_target_name();
    test_internal_name();
    test_chain_faults();
    test_no_tls_offered();
    test_peer_requires_tls();
    test_connect_failures();
    test_direct_tls_to_plain_port();
    test_sasl_refused();
    test_direct_tls_handshake_never_done();
    test_srv_forms();
    test_dialback_off();
    test_dialback_failed();
    test_ours_unknown();
    test_certificate_not_required();
    test_abort_and_steps();
    test_bounded();
    test_json();
    test_sip();
    return check_report("test_validate_diagnose");
}
