/* The inbound trust matrix (trust rules, "Who authenticates how"): every
 * partner rule against every stream fact, with the exact condition and
 * text a peer would get. */
#include <string.h>

#include "check.h"
#include "core/err.h"
#include "xmpp/s2s_trust.h"

static struct xs_partner partner(enum xs_tls_req tls, enum xs_sasl_req sasl, int dialback,
                                 enum xs_verify_mode verify)
{
    struct xs_partner p = {0};
    p.domain = "peer.test";
    p.tls = tls;
    p.sasl = sasl;
    p.dialback = dialback;
    p.verify = verify;
    return p;
}

static struct xs_tls_peer cert(enum xs_tls_chain chain, int name_ok, const char *reason)
{
    struct xs_tls_peer c = {0};
    c.chain = chain;
    c.name_ok = name_ok;
    snprintf(c.names, sizeof c.names, "%s", name_ok ? "peer.test" : "wrong.peer.test");
    snprintf(c.reason, sizeof c.reason, "%s", reason);
    return c;
}

static void test_dialback(void)
{
    struct xs_s2s_verdict v;
    struct xs_partner unverified = partner(XS_TLS_REQUIRED, XS_SASL_OPTIONAL, 1, XS_VERIFY_NONE);
    struct xs_partner optional = partner(XS_TLS_OPTIONAL, XS_SASL_OPTIONAL, 1, XS_VERIFY_NONE);
    struct xs_partner verified = partner(XS_TLS_REQUIRED, XS_SASL_OPTIONAL, 1, XS_VERIFY_CA);
    struct xs_partner sasl_only = partner(XS_TLS_REQUIRED, XS_SASL_REQUIRED, 0, XS_VERIFY_CA);
    struct xs_partner no_db = partner(XS_TLS_REQUIRED, XS_SASL_OPTIONAL, 0, XS_VERIFY_NONE);
    struct xs_tls_peer good = cert(XS_TLS_CHAIN_OK, 1, "");
    struct xs_tls_peer wrong =
        cert(XS_TLS_CHAIN_OK, 0, "presented wrong.peer.test, expected peer.test");
    struct xs_tls_peer expired =
        cert(XS_TLS_CHAIN_EXPIRED, 1, "expired on 2021-01-01 00:00:00 UTC");

    CHECK(xs_s2s_trust_dialback(NULL, "x.test", 1, &good, &v) == XS_EAUTH);
    CHECK_STR(v.cond, "policy-violation");
    CHECK_STR(v.text, "x.test is not federated with this gateway");

    /* unverified: dialback over TLS whatever the certificate, not in the clear. */
    CHECK(xs_s2s_trust_dialback(&unverified, "peer.test", 1, &wrong, &v) == 0);
    CHECK(v.cond == NULL && v.text[0] == '\0' && !v.cert_ok);
    CHECK(xs_s2s_trust_dialback(&unverified, "peer.test", 1, &good, &v) == 0);
    CHECK(v.cert_ok);
    CHECK(xs_s2s_trust_dialback(&unverified, "peer.test", 0, NULL, &v) == XS_EAUTH);
    CHECK_STR(v.cond, "policy-violation");
    CHECK_STR(v.text, "TLS is required for peer.test");
    CHECK(xs_s2s_trust_dialback(&optional, "peer.test", 0, NULL, &v) == 0);
    CHECK(!v.cert_ok);

    /* verified: the certificate must pass for the domain. */
    CHECK(xs_s2s_trust_dialback(&verified, "peer.test", 1, &good, &v) == 0);
    CHECK(v.cert_ok);
    CHECK(xs_s2s_trust_dialback(&verified, "peer.test", 1, &wrong, &v) == XS_EAUTH);
    CHECK_STR(v.cond, "not-authorized");
    CHECK_STR(v.text,
              "certificate for peer.test required: presented wrong.peer.test, expected peer.test");
    CHECK(xs_s2s_trust_dialback(&verified, "peer.test", 1, &expired, &v) == XS_EAUTH);
    CHECK_STR(v.text, "certificate for peer.test required: expired on 2021-01-01 00:00:00 UTC");
    /* tls "required" is said first in the clear. */
    CHECK(xs_s2s_trust_dialback(&verified, "peer.test", 0, NULL, &v) == XS_EAUTH);
    CHECK_STR(v.text, "TLS is required for peer.test");
    struct xs_partner verified_opt = partner(XS_TLS_OPTIONAL, XS_SASL_OPTIONAL, 1, XS_VERIFY_CA);
    CHECK(xs_s2s_trust_dialback(&verified_opt, "peer.test", 0, NULL, &v) == XS_EAUTH);
    CHECK_STR(v.text, "certificate for peer.test required: not presented: the stream is not "
                      "encrypted");

    /* sasl required: dialback is refused even with a good certificate. */
    CHECK(xs_s2s_trust_dialback(&sasl_only, "peer.test", 1, &good, &v) == XS_EAUTH);
    CHECK_STR(v.cond, "not-authorized");
    CHECK_STR(v.text, "peer.test must authenticate with SASL EXTERNAL");

    /* dialback false: the certificate's state is said. */
    CHECK(xs_s2s_trust_dialback(&no_db, "peer.test", 1, &wrong, &v) == XS_EAUTH);
    CHECK_STR(v.cond, "not-authorized");
    CHECK_STR(v.text, "peer.test may not use dialback, and its certificate presented "
                      "wrong.peer.test, expected peer.test");
    CHECK(xs_s2s_trust_dialback(&no_db, "peer.test", 1, &good, &v) == XS_EAUTH);
    CHECK_STR(v.text, "peer.test may not use dialback, and its certificate is valid: use SASL "
                      "EXTERNAL");
    struct xs_tls_peer none = cert(XS_TLS_CHAIN_NONE, 0, "");
    CHECK(xs_s2s_trust_dialback(&no_db, "peer.test", 1, &none, &v) == XS_EAUTH);
    CHECK_STR(v.text, "peer.test may not use dialback, and its certificate not presented");
}

static void test_sasl(void)
{
    struct xs_s2s_verdict v;
    struct xs_partner p = partner(XS_TLS_REQUIRED, XS_SASL_OPTIONAL, 1, XS_VERIFY_NONE);
    struct xs_partner none = partner(XS_TLS_REQUIRED, XS_SASL_NONE, 1, XS_VERIFY_NONE);
    struct xs_tls_peer good = cert(XS_TLS_CHAIN_OK, 1, "");
    struct xs_tls_peer other = cert(XS_TLS_CHAIN_UNTRUSTED, 1, "issuer not trusted");
    CHECK(xs_s2s_trust_sasl(&p, "peer.test", 1, &good, &v) == 0);
    CHECK(v.cond == NULL && v.cert_ok);
    CHECK(xs_s2s_trust_sasl(&p, "peer.test", 1, &other, &v) == XS_EAUTH);
    CHECK_STR(v.cond, "not-authorized");
    CHECK_STR(v.text, "certificate for peer.test: issuer not trusted");
    CHECK(xs_s2s_trust_sasl(&p, "peer.test", 0, NULL, &v) == XS_EAUTH);
    CHECK_STR(v.cond, "encryption-required");
    CHECK(xs_s2s_trust_sasl(&none, "peer.test", 1, &good, &v) == XS_EAUTH);
    CHECK_STR(v.text, "SASL EXTERNAL is not allowed for peer.test");
    CHECK(xs_s2s_trust_sasl(NULL, "x.test", 1, &good, &v) == XS_EAUTH);
    CHECK_STR(v.cond, "not-authorized");
    CHECK_STR(v.text, "x.test is not federated with this gateway");
    /* After a reload: a stream error, not a SASL failure. */
    CHECK(xs_s2s_trust_recheck(NULL, "x.test", XS_S2S_AUTH_SASL, 1, &good, &v) == XS_EAUTH);
    CHECK_STR(v.cond, "policy-violation");
    CHECK(xs_s2s_trust_recheck(&none, "peer.test", XS_S2S_AUTH_SASL, 1, &good, &v) == XS_EAUTH);
    CHECK_STR(v.cond, "not-authorized");
    CHECK(xs_s2s_trust_recheck(&p, "peer.test", XS_S2S_AUTH_SASL, 1, &good, &v) == 0);
    struct xs_partner sasl_only = partner(XS_TLS_REQUIRED, XS_SASL_REQUIRED, 0, XS_VERIFY_CA);
    CHECK(xs_s2s_trust_recheck(&sasl_only, "peer.test", XS_S2S_AUTH_SASL, 1, &good, &v) == 0);
    CHECK(xs_s2s_trust_recheck(&sasl_only, "peer.test", XS_S2S_AUTH_DIALBACK, 1, &good, &v) ==
          XS_EAUTH);
    CHECK_STR(v.text, "peer.test must authenticate with SASL EXTERNAL");
}

static void test_offers(void)
{
    struct xs_partner tls_none = partner(XS_TLS_NONE, XS_SASL_NONE, 1, XS_VERIFY_NONE);
    struct xs_partner req = partner(XS_TLS_REQUIRED, XS_SASL_OPTIONAL, 1, XS_VERIFY_NONE);
    struct xs_partner opt = partner(XS_TLS_OPTIONAL, XS_SASL_OPTIONAL, 1, XS_VERIFY_NONE);
    struct xs_partner sasl_only = partner(XS_TLS_REQUIRED, XS_SASL_REQUIRED, 0, XS_VERIFY_CA);
    CHECK(xs_s2s_trust_offer_starttls(NULL) && xs_s2s_trust_starttls_required(NULL));
    CHECK(!xs_s2s_trust_offer_starttls(&tls_none));
    CHECK(xs_s2s_trust_offer_starttls(&opt) && !xs_s2s_trust_starttls_required(&opt));
    CHECK(xs_s2s_trust_starttls_required(&req));
    CHECK(xs_s2s_trust_offer_sasl(&req, 1, 1));
    CHECK(xs_s2s_trust_offer_sasl(NULL, 1, 1));
    CHECK(!xs_s2s_trust_offer_sasl(&req, 1, 0));
    CHECK(!xs_s2s_trust_offer_sasl(&req, 0, 1));
    CHECK(!xs_s2s_trust_offer_sasl(&tls_none, 1, 1));
    CHECK(xs_s2s_trust_offer_dialback(NULL, 0));
    CHECK(!xs_s2s_trust_offer_dialback(&req, 0));
    CHECK(xs_s2s_trust_offer_dialback(&req, 1));
    CHECK(xs_s2s_trust_offer_dialback(&opt, 0));
    CHECK(xs_s2s_trust_offer_dialback(&tls_none, 0));
    CHECK(!xs_s2s_trust_offer_dialback(&sasl_only, 1));
    CHECK_STR(xs_s2s_auth_name(XS_S2S_AUTH_DIALBACK_CERT), "dialback-cert");
    CHECK_STR(xs_s2s_auth_name(XS_S2S_AUTH_SASL), "sasl-external");
}

int main(void)
{
    test_dialback();
    test_sasl();
    test_offers();
    return check_report("test_s2s_trust");
}
