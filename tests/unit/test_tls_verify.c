/* Peer certificate verification: sessions pumped against each other in
 * memory, with certificates from tests/tls/make_test_pki.sh (valid, expired,
 * not yet valid, wrong name, no SAN, self-signed, another CA, server-only
 * key usage, wildcard), checked for the verdict and its exact reason; SNI
 * and per-domain identities; and RFC 9525 name matching on its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/err.h"
#include "tls/tls.h"
#include "tls/tls_name.h"

static char pki[256];

static const char *file(const char *stem, const char *ext)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 512, "%s/%s.%s", pki, stem, ext);
    return b;
}

/* A context presenting `stem` (NULL: a generated certificate for sip.test),
 * with `extra` as a second identity and the test CA when `ca`. */
static struct xs_tls_ctx *ctx_for(const char *stem, const char *extra, int ca)
{
    const char *names[] = {"sip.test"};
    const char *ec[1], *ek[1];
    struct xs_tls_ctx_cfg cfg = {.names = names, .n_names = 1};
    if (stem) {
        /* "x-chain.pem" is x.pem followed by the CA: x's key. */
        char key_stem[128];
        snprintf(key_stem, sizeof key_stem, "%s", stem);
        char *chain = strstr(key_stem, "-chain");
        if (chain)
            *chain = '\0';
        cfg.cert_path = file(stem, "pem");
        cfg.key_path = file(key_stem, "key");
    }
    if (extra) {
        ec[0] = file(extra, "pem");
        ek[0] = file(extra, "key");
        cfg.extra_certs = ec;
        cfg.extra_keys = ek;
        cfg.n_extra = 1;
    }
    if (ca)
        cfg.ca_path = file("ca", "pem");
    struct xs_tls_ctx *c = NULL;
    char err[256];
    int rc = xs_tls_ctx_new_cfg(&cfg, &c, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "ctx %s: %s\n", stem ? stem : "(generated)", err);
    CHECK(rc == 0);
    return c;
}

static void move(struct xs_tls *from, struct xs_tls *to)
{
    const char *d;
    size_t n;
    xs_tls_out(from, &d, &n);
    if (n > 0) {
        CHECK(xs_tls_feed(to, d, n) == 0);
        xs_tls_out_consume(from, n);
    }
}

/* Runs a handshake to its end; 0 when both sides completed. */
static int pump(struct xs_tls *c, struct xs_tls *s)
{
    int rc_c = XS_EAGAIN, rc_s = XS_EAGAIN;
    for (int i = 0; i < 50 && (rc_c == XS_EAGAIN || rc_s == XS_EAGAIN); i++) {
        if (rc_c == XS_EAGAIN)
            rc_c = xs_tls_handshake(c);
        move(c, s);
        if (rc_s == XS_EAGAIN)
            rc_s = xs_tls_handshake(s);
        move(s, c);
    }
    return rc_c == 0 && rc_s == 0 ? 0 : -1;
}

struct pair {
    struct xs_tls *c, *s;
};

static int connect_pair(struct xs_tls_ctx *client, struct xs_tls_ctx *server, const char *sni,
                        const char *local, struct pair *p)
{
    CHECK(xs_tls_new_as(client, 0, sni, local, &p->c) == 0);
    CHECK(xs_tls_new_as(server, 1, NULL, NULL, &p->s) == 0);
    return pump(p->c, p->s);
}

static void close_pair(struct pair *p)
{
    xs_tls_free(p->c);
    xs_tls_free(p->s);
}

/* The client's verdict on a server presenting `stem`, for `reference`. */
static void client_sees(const char *stem, const char *reference, int ca, int want_rc,
                        enum xs_tls_chain chain, int name_ok, const char *names, const char *reason)
{
    struct xs_tls_ctx *server = ctx_for(stem, NULL, 0);
    struct xs_tls_ctx *client = ctx_for("xmpp.test", NULL, ca);
    if (!server || !client)
        return;
    struct pair p;
    CHECK(connect_pair(client, server, reference, NULL, &p) == 0);
    struct xs_tls_peer v;
    int rc = xs_tls_peer_check(p.c, reference, &v);
    if (rc != want_rc || v.chain != chain || v.name_ok != name_ok)
        fprintf(stderr, "%s for %s: rc %d chain %d name_ok %d reason \"%s\"\n", stem, reference, rc,
                (int)v.chain, v.name_ok, v.reason);
    CHECK(rc == want_rc);
    CHECK(v.chain == chain);
    CHECK(v.name_ok == name_ok);
    CHECK_STR(v.names, names);
    CHECK_STR(v.reason, reason);
    close_pair(&p);
    xs_tls_ctx_unref(server);
    xs_tls_ctx_unref(client);
}

static void test_server_certificates(void)
{
    client_sees("sip.test", "sip.test", 1, 0, XS_TLS_CHAIN_OK, 1, "sip.test", "");
    client_sees("sip.test", "SIP.Test.", 1, 0, XS_TLS_CHAIN_OK, 1, "sip.test", "");
    client_sees("sip.test-chain", "sip.test", 1, 0, XS_TLS_CHAIN_OK, 1, "sip.test", "");
    client_sees("sip.test-expired", "sip.test", 1, XS_ETLS, XS_TLS_CHAIN_EXPIRED, 1, "sip.test",
                "expired on 2021-01-01 00:00:00 UTC");
    client_sees("sip.test-future", "sip.test", 1, XS_ETLS, XS_TLS_CHAIN_FUTURE, 1, "sip.test",
                "not valid before 2090-01-01 00:00:00 UTC");
    client_sees("sip.test-wrongname", "sip.test", 1, XS_ETLS, XS_TLS_CHAIN_OK, 0, "wrong.sip.test",
                "presented wrong.sip.test; expected sip.test");
    client_sees("int.sip.test", "sip.test", 1, XS_ETLS, XS_TLS_CHAIN_OK, 0, "int.sip.test",
                "presented int.sip.test; expected sip.test");
    /* No fallback to the common name, though it says sip.test. */
    client_sees("sip.test-nosan", "sip.test", 1, XS_ETLS, XS_TLS_CHAIN_OK, 0,
                "no subjectAltName (CN=sip.test)",
                "presented no subjectAltName (CN=sip.test); expected sip.test");
    client_sees("sip.test-self", "sip.test", 1, XS_ETLS, XS_TLS_CHAIN_UNTRUSTED, 1, "sip.test",
                "self-signed, not issued by a trusted CA");
    client_sees("sip.test-otherca", "sip.test", 1, XS_ETLS, XS_TLS_CHAIN_UNTRUSTED, 1, "sip.test",
                "issued by Other CA, not a trusted CA");
    client_sees("sip.test", "sip.test", 0, XS_ETLS, XS_TLS_CHAIN_NO_CA, 1, "sip.test",
                "no CA bundle is configured to verify it against");
    client_sees("wild-sip.test", "a.sip.test", 1, 0, XS_TLS_CHAIN_OK, 1, "*.sip.test", "");
    client_sees("wild-sip.test", "sip.test", 1, XS_ETLS, XS_TLS_CHAIN_OK, 0, "*.sip.test",
                "presented *.sip.test; expected sip.test");
    /* An accept-list pattern: any one label under sip.test. */
    client_sees("int.sip.test", "*.sip.test", 1, 0, XS_TLS_CHAIN_OK, 1, "int.sip.test", "");
    client_sees("sip.test", "*.sip.test", 1, XS_ETLS, XS_TLS_CHAIN_OK, 0, "sip.test",
                "presented sip.test; expected *.sip.test");
    client_sees("wild-sip.test", "*.sip.test", 1, XS_ETLS, XS_TLS_CHAIN_OK, 0, "*.sip.test",
                "presented *.sip.test; expected *.sip.test");
    client_sees("wild-sip.test", "a.b.sip.test", 1, XS_ETLS, XS_TLS_CHAIN_OK, 0, "*.sip.test",
                "presented *.sip.test; expected a.b.sip.test");
}

/* Mutual TLS: a server with a CA asks for the client's certificate. */
static void test_client_certificates(void)
{
    struct xs_tls_ctx *server = ctx_for("sip.test", NULL, 1);
    struct xs_tls_ctx *good = ctx_for("xmpp.test", NULL, 1);
    struct xs_tls_ctx *server_only = ctx_for("xmpp.test-serveronly", NULL, 1);
    struct xs_tls_ctx *plain_server = ctx_for("sip.test", NULL, 0);
    struct pair p;
    struct xs_tls_peer v;

    CHECK(connect_pair(good, server, "sip.test", NULL, &p) == 0);
    CHECK(xs_tls_peer_check(p.s, "xmpp.test", &v) == 0);
    CHECK(v.chain == XS_TLS_CHAIN_OK && v.name_ok);
    CHECK(xs_tls_peer_check(p.s, "ejab.test", &v) == XS_ETLS);
    CHECK_STR(v.reason, "presented xmpp.test; expected ejab.test");
    close_pair(&p);

    CHECK(connect_pair(server_only, server, "sip.test", NULL, &p) == 0);
    CHECK(xs_tls_peer_check(p.s, "xmpp.test", &v) == XS_ETLS);
    CHECK(v.chain == XS_TLS_CHAIN_USAGE);
    CHECK_STR(v.reason, "its key usage does not allow this use (serverAuth/clientAuth)");
    close_pair(&p);

    /* Without trust anchors the server asks for no certificate at all. */
    CHECK(connect_pair(good, plain_server, "sip.test", NULL, &p) == 0);
    CHECK(xs_tls_peer_check(p.s, "xmpp.test", &v) == XS_ETLS);
    CHECK(v.chain == XS_TLS_CHAIN_NONE);
    CHECK_STR(v.reason, "no certificate presented");
    close_pair(&p);

    xs_tls_ctx_unref(server);
    xs_tls_ctx_unref(good);
    xs_tls_ctx_unref(server_only);
    xs_tls_ctx_unref(plain_server);
}

/* One gateway, two domains: the server presents the identity the client's
 * SNI asks for, the client the identity of the domain it connects as. */
static void test_identities(void)
{
    struct xs_tls_ctx *gw = ctx_for("sip.test", "ejab.test", 1);
    struct xs_tls_ctx *peer = ctx_for("xmpp.test", NULL, 1);
    struct pair p;
    struct xs_tls_peer v;

    CHECK(connect_pair(peer, gw, "ejab.test", NULL, &p) == 0);
    CHECK_STR(xs_tls_sni(p.s), "ejab.test");
    CHECK(xs_tls_peer_check(p.c, "ejab.test", &v) == 0);
    close_pair(&p);

    CHECK(connect_pair(peer, gw, "sip.test", NULL, &p) == 0);
    CHECK_STR(xs_tls_sni(p.s), "sip.test");
    CHECK(xs_tls_peer_check(p.c, "sip.test", &v) == 0);
    close_pair(&p);

    CHECK(connect_pair(peer, gw, "other.test", NULL, &p) == 0);
    CHECK(xs_tls_peer_check(p.c, "sip.test", &v) == 0);
    close_pair(&p);

    CHECK(connect_pair(gw, peer, "xmpp.test", "ejab.test", &p) == 0);
    CHECK(xs_tls_peer_check(p.s, "ejab.test", &v) == 0);
    close_pair(&p);
    CHECK(connect_pair(gw, peer, "xmpp.test", "sip.test", &p) == 0);
    CHECK(xs_tls_peer_check(p.s, "sip.test", &v) == 0);
    close_pair(&p);
    CHECK(connect_pair(gw, peer, "xmpp.test", NULL, &p) == 0);
    CHECK(xs_tls_peer_check(p.s, "sip.test", &v) == 0);
    close_pair(&p);

    xs_tls_ctx_unref(gw);
    xs_tls_ctx_unref(peer);
}

static void test_config_errors(void)
{
    struct xs_tls_ctx *c = NULL;
    char err[512];
    const char *names[] = {"sip.test"};
    struct xs_tls_ctx_cfg cfg = {.names = names, .n_names = 1, .ca_path = "/nonexistent/ca.pem"};
    CHECK(xs_tls_ctx_new_cfg(&cfg, &c, err, sizeof err) < 0 && !c);
    CHECK_STR(err, "tls.ca /nonexistent/ca.pem: cannot be read");
    cfg.ca_path = file("sip.test", "key");
    CHECK(xs_tls_ctx_new_cfg(&cfg, &c, err, sizeof err) < 0 && !c);
    CHECK(strstr(err, "tls.ca ") == err);
    cfg.ca_path = NULL;
    cfg.crl_path = file("ca", "pem");
    CHECK(xs_tls_ctx_new_cfg(&cfg, &c, err, sizeof err) == XS_EINVAL && !c);
    CHECK_STR(err, "tls: a CRL needs a CA bundle");
    cfg.crl_path = NULL;
    const char *ec[] = {file("sip.test", "pem")}, *ek[] = {file("xmpp.test", "key")};
    cfg.extra_certs = ec;
    cfg.extra_keys = ek;
    cfg.n_extra = 1;
    CHECK(xs_tls_ctx_new_cfg(&cfg, &c, err, sizeof err) < 0 && !c);
    CHECK(strstr(err, "does not match certificate") != NULL);
    /* A directory of CA files works like the bundle. */
    struct xs_tls_ctx_cfg dir = {.names = names, .n_names = 1, .ca_path = pki};
    CHECK(xs_tls_ctx_new_cfg(&dir, &c, err, sizeof err) == 0 && c);
    CHECK(xs_tls_ctx_has_ca(c));
    xs_tls_ctx_unref(c);
}

static int matches(const char *presented, const char *reference)
{
    char ref[XS_TLS_NAME_MAX + 1];
    if (xs_tls_name_to_alabel(reference, ref, sizeof ref) != 0)
        return -1;
    return xs_tls_name_match(presented, strlen(presented), ref);
}

static void test_names(void)
{
    CHECK(matches("example.org", "example.org") == 1);
    CHECK(matches("EXAMPLE.org.", "example.ORG") == 1);
    CHECK(matches("example.org", "www.example.org") == 0);
    CHECK(matches("*.example.org", "www.example.org") == 1);
    CHECK(matches("*.example.org", "example.org") == 0);
    CHECK(matches("*.example.org", "a.b.example.org") == 0);
    CHECK(matches("*.org", "example.org") == 0);
    CHECK(matches("*", "org") == 0);
    CHECK(matches("w*.example.org", "www.example.org") == 0);
    CHECK(matches("*w.example.org", "ww.example.org") == 0);
    CHECK(matches("www.*.org", "www.example.org") == 0);
    CHECK(matches("xn--bcher-kva.example", "bücher.example") == 1);
    CHECK(matches("bücher.example", "bücher.example") == 0);
    CHECK(xs_tls_name_match("example.org\0.evil", 17, "example.org") == 0);
    CHECK(xs_tls_name_match("", 0, "example.org") == 0);
    /* Accept lists: one label under the parent, nothing else. */
    CHECK(xs_tls_name_under("a.edge.example", 14, "edge.example") == 1);
    CHECK(xs_tls_name_under("A.Edge.Example.", 15, "edge.example") == 1);
    CHECK(xs_tls_name_under("edge.example", 12, "edge.example") == 0);
    CHECK(xs_tls_name_under("a.b.edge.example", 16, "edge.example") == 0);
    CHECK(xs_tls_name_under("*.edge.example", 14, "edge.example") == 0);
    CHECK(xs_tls_name_under(".edge.example", 13, "edge.example") == 0);
    CHECK(xs_tls_name_under("a.edge.example\0", 15, "edge.example") == 0);

    char out[XS_TLS_NAME_MAX + 1];
    CHECK(xs_tls_name_to_alabel("münchen.de", out, sizeof out) == 0);
    CHECK_STR(out, "xn--mnchen-3ya.de");
    CHECK(xs_tls_name_to_alabel("bücher", out, sizeof out) == 0);
    CHECK_STR(out, "xn--bcher-kva");
    /* RFC 3492 §7.1 (A), Arabic (Egyptian). */
    CHECK(xs_tls_name_to_alabel("\xd9\x84\xd9\x8a\xd9\x87\xd9\x85\xd8\xa7\xd8\xa8\xd8\xaa\xd9\x83"
                                "\xd9\x84\xd9\x85\xd9\x88\xd8\xb4\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a"
                                "\xd8\x9f",
                                out, sizeof out) == 0);
    CHECK_STR(out, "xn--egbpdaj6bu4bxfgehfvwxn");
    CHECK(xs_tls_name_to_alabel("a..b", out, sizeof out) == XS_EINVAL);
    CHECK(xs_tls_name_to_alabel("", out, sizeof out) == XS_EINVAL);
    CHECK(xs_tls_name_to_alabel("\xc3(", out, sizeof out) == XS_EINVAL);
    CHECK(xs_tls_name_to_alabel("\xed\xa0\x80.example", out, sizeof out) == XS_EINVAL);
    char longname[400];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK(xs_tls_name_to_alabel(longname, out, sizeof out) == XS_EINVAL);
    CHECK(xs_tls_name_to_alabel("example.org", out, 5) == XS_EINVAL);
}

int main(void)
{
    char tmpl[] = "/tmp/xs-test-pki-XXXXXX"; /* mkdtemp(3) template */
    if (!mkdtemp(tmpl))
        return 1;
    snprintf(pki, sizeof pki, "%s", tmpl);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tests/tls/make_test_pki.sh %s sip.test xmpp.test ejab.test", pki);
    if (system(cmd) != 0) {
        fprintf(stderr, "make_test_pki.sh failed (is openssl installed?)\n");
        return 1;
    }
    test_names();
    test_server_certificates();
    test_client_certificates();
    test_identities();
    test_config_errors();
    snprintf(cmd, sizeof cmd, "rm -rf %s", pki);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", pki);
    return check_report("test_tls_verify");
}
