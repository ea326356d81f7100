/* The trust vocabulary from C (issue 8): gateway.tls, xmpp.listen_tls,
 * sip.tls and sip.keepalive, and every partner key, read back from a policy
 * file as struct xs_config; xs_policy_partner by a partner's extra domains;
 * xsgw.partner() in a hook; and what --check prints. Every message the Lua
 * side words is tested in tests/lua/test_trust.lua. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "policy/policy.h"
#include "policy_testutil.h"

static struct xs_policy *load_full(const char *name, const char *src, char *err, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(src, f);
    fclose(f);
    struct xs_policy *p = NULL;
    if (xs_policy_load(path, lua_dir, &p, err, n) != 0)
        return NULL;
    return p;
}

static const char trust_policy[] =
    "gateway {\n"
    "  domains = { \"sip.test\", \"voice.test\" },\n"
    "  tls = { cert = \"/etc/xsgw/a.pem\", key = \"/etc/xsgw/a.key\",\n"
    "          certs = { { cert = \"/etc/xsgw/b.pem\", key = \"/etc/xsgw/b.key\" },\n"
    "                    { cert = \"/etc/xsgw/c.pem\", key = \"/etc/xsgw/c.key\" } },\n"
    "          ca = \"/etc/ssl/certs\", crl = \"/etc/xsgw/crl.pem\" },\n"
    "  xmpp = { listen = \"0.0.0.0:5269\", listen_tls = \"[::]:5270\", idle_timeout = 300 },\n"
    "  sip = { listen = { \"tls:127.0.0.1:5061\", \"tcp:127.0.0.1:5060\" },\n"
    "          next_hop = \"tls:edge1.edge.test\", keepalive = 25,\n"
    "          tls = { name = \"Edge1.Edge.test\", peers = { \"edge1.edge.test\", \"*.EDGE.test\" "
    "} } "
    "},\n"
    "}\n"
    "partner \"big.test\" { type = \"verified\", sasl = \"required\", dialback = false,\n"
    "  domains = { \"Conf.Big.test\", \"pubsub.big.test\" }, max_connections = 4,\n"
    "  keepalive = 60, idle_timeout = 900 }\n"
    "partner \"friends.test\" { type = \"federated\" }\n"
    "partner \"old.test\" { tls = \"none\" }\n"
    "partner \"legacy.test\" { tls = \"optional\", dialback = true, route = \"[::1]:5299\" }\n"
    "partner \"*\" { type = \"verified\" }\n";

/* Every field of the new vocabulary, as the streams and the TLS module
 * read it. */
static void test_fields(void)
{
    char err[512] = "";
    struct xs_policy *p = load_full("trust.lua", trust_policy, err, sizeof err);
    if (!p) {
        fprintf(stderr, "load: %s\n", err);
        CHECK(!"trust policy loads");
        return;
    }
    const struct xs_config *c = xs_policy_config(p);
    CHECK_STR(c->tls_cert, "/etc/xsgw/a.pem");
    CHECK_STR(c->tls_key, "/etc/xsgw/a.key");
    CHECK(c->n_tls_certs == 2);
    if (c->n_tls_certs == 2) {
        CHECK_STR(c->tls_certs[0].cert, "/etc/xsgw/b.pem");
        CHECK_STR(c->tls_certs[0].key, "/etc/xsgw/b.key");
        CHECK_STR(c->tls_certs[1].cert, "/etc/xsgw/c.pem");
        CHECK_STR(c->tls_certs[1].key, "/etc/xsgw/c.key");
    }
    CHECK_STR(c->tls_ca, "/etc/ssl/certs");
    CHECK_STR(c->tls_crl, "/etc/xsgw/crl.pem");
    CHECK_STR(c->xmpp_listen_tls_host, "::");
    CHECK(c->xmpp_listen_tls_port == 5270);
    CHECK(c->sip_tls_verify == XS_VERIFY_CA);
    CHECK_STR(c->sip_tls_name, "edge1.edge.test");
    CHECK(c->n_sip_tls_peers == 2);
    if (c->n_sip_tls_peers == 2) {
        CHECK_STR(c->sip_tls_peers[0], "edge1.edge.test");
        CHECK_STR(c->sip_tls_peers[1], "*.edge.test");
    }
    CHECK(c->sip_keepalive == 25);

    CHECK(c->n_partners == 5);
    const struct xs_partner *big = xs_policy_partner(p, "big.test");
    CHECK(big && !strcmp(big->domain, "big.test"));
    if (big) {
        CHECK(big->type == XS_PARTNER_VERIFIED && big->tls == XS_TLS_REQUIRED &&
              big->sasl == XS_SASL_REQUIRED && !big->dialback && big->verify == XS_VERIFY_CA);
        CHECK(big->n_domains == 2);
        if (big->n_domains == 2) {
            CHECK_STR(big->domains[0], "conf.big.test");
            CHECK_STR(big->domains[1], "pubsub.big.test");
        }
        CHECK(big->max_streams == 4 && big->keepalive == 60 && big->idle_timeout == 900);
        CHECK(!big->route_host);
    }
    /* Any of its domains, in any case, finds the same entry; a name below
     * one of them does not (it falls to "*"). */
    CHECK(xs_policy_partner(p, "conf.big.test") == big);
    CHECK(xs_policy_partner(p, "PUBSUB.Big.Test") == big);
    const struct xs_partner *wild = xs_policy_partner(p, "stranger.test");
    CHECK(wild && !strcmp(wild->domain, "*") && wild->type == XS_PARTNER_VERIFIED &&
          wild->verify == XS_VERIFY_CA && wild->sasl == XS_SASL_OPTIONAL && wild->dialback);
    CHECK(xs_policy_partner(p, "x.conf.big.test") == wild);

    const struct xs_partner *fr = xs_policy_partner(p, "friends.test");
    CHECK(fr && fr->type == XS_PARTNER_FEDERATED && fr->tls == XS_TLS_REQUIRED &&
          fr->sasl == XS_SASL_OPTIONAL && fr->dialback && fr->verify == XS_VERIFY_CA &&
          fr->n_domains == 0 && fr->max_streams == 0 && fr->keepalive == 0 &&
          fr->idle_timeout == 0);
    const struct xs_partner *old = xs_policy_partner(p, "old.test");
    CHECK(old && old->type == XS_PARTNER_UNVERIFIED && old->tls == XS_TLS_NONE &&
          old->sasl == XS_SASL_NONE && old->dialback && old->verify == XS_VERIFY_NONE);
    const struct xs_partner *leg = xs_policy_partner(p, "legacy.test");
    CHECK(leg && leg->type == XS_PARTNER_UNVERIFIED && leg->tls == XS_TLS_OPTIONAL &&
          leg->sasl == XS_SASL_OPTIONAL && leg->dialback && leg->verify == XS_VERIFY_NONE);
    CHECK(leg && leg->route_host && !strcmp(leg->route_host, "::1") && leg->route_port == 5299);
    /* Our own domains stay ours, whatever "*" says. */
    CHECK(xs_policy_is_local_domain(p, "voice.test"));
    xs_policy_free(p);
}

/* A policy written before issue 8 means what it meant: unverified partners,
 * dialback, no verification anywhere, the older xmpp.tls spelling. */
static void test_old_policy(void)
{
    char err[512] = "";
    struct xs_policy *p = load_full(
        "old.lua",
        "gateway { domains = { 'sip.test' },\n"
        "  xmpp = { listen = '127.0.0.1:5269', tls = { cert = 'c.pem', key = 'k.pem' } },\n"
        "  sip = { listen = 'tls:127.0.0.1', next_hop = 'tls:edge.test' } }\n"
        "partner 'xmpp.test' { tls = 'required', dialback = true }\n",
        err, sizeof err);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "load: %s\n", err);
        return;
    }
    const struct xs_config *c = xs_policy_config(p);
    CHECK_STR(c->tls_cert, "c.pem");
    CHECK_STR(c->tls_key, "k.pem");
    CHECK(c->n_tls_certs == 0 && !c->tls_ca && !c->tls_crl && !c->xmpp_listen_tls_host);
    CHECK(c->sip_tls_verify == XS_VERIFY_NONE && !c->sip_tls_name && !c->sip_tls_peers &&
          c->sip_keepalive == 0);
    const struct xs_partner *x = xs_policy_partner(p, "xmpp.test");
    CHECK(x && x->type == XS_PARTNER_UNVERIFIED && x->tls == XS_TLS_REQUIRED &&
          x->sasl == XS_SASL_OPTIONAL && x->dialback && x->verify == XS_VERIFY_NONE &&
          x->n_domains == 0 && !x->domains);
    CHECK(xs_policy_partner(p, "other.test") == NULL);
    xs_policy_free(p);
}

/* Hooks see the whole partner entry through xsgw.partner(), found by any of
 * its domains. */
static void test_partner_in_hook(void)
{
    char err[512] = "";
    char src[4096];
    snprintf(src, sizeof src,
             "%s"
             "function on_message(m)\n"
             "  local p = xsgw.partner(m.body)\n"
             "  if not p then m.body = 'nil' return m end\n"
             "  m.body = table.concat({ p.domain, p.type, p.tls, p.sasl, tostring(p.dialback),\n"
             "    p.verify, table.concat(p.domains, '+'), tostring(p.max_connections),\n"
             "    tostring(p.keepalive), tostring(p.idle_timeout), tostring(p.route) }, ' ')\n"
             "  return m\n"
             "end\n",
             trust_policy);
    struct xs_policy *p = load_full("hook.lua", src, err, sizeof err);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "load: %s\n", err);
        return;
    }
    static const struct {
        const char *ask, *want;
    } cases[] = {
        {"conf.big.test",
         "big.test verified required required false ca conf.big.test+pubsub.big.test 4 60.0 "
         "900.0 nil"},
        {"old.test", "old.test unverified none none true none  nil 0.0 nil nil"},
        {"legacy.test",
         "legacy.test unverified optional optional true none  nil 0.0 nil [::1]:5299"},
        {"anyone.test", "* verified required optional true ca  nil 0.0 nil nil"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct xs_event *ev;
        char *text = NULL;
        CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@friends.test", cases[i].ask, &ev,
                    &text) == XS_COND_NONE);
        CHECK_STR(ev->body, cases[i].want);
        free(text);
        xs_event_free(ev);
    }
    xs_policy_free(p);
}

/* --check prints each partner's rules and the TLS settings. */
static void test_check_output(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/check.lua", dir);
    FILE *f = fopen(path, "w");
    fputs(trust_policy, f);
    fclose(f);
    FILE *out = tmpfile();
    CHECK(xs_policy_check(path, lua_dir, out) == 0);
    rewind(out);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    fclose(out);
    static const char *const want[] = {
        "  xmpp: listen 0.0.0.0:5269, Direct TLS [::]:5270\n",
        "  tls: certificate /etc/xsgw/a.pem and 2 more, CA /etc/ssl/certs, CRL /etc/xsgw/crl.pem\n",
        "  sip tls: verify ca; the next hop must present edge1.edge.test; inbound accepted from "
        "edge1.edge.test *.edge.test\n",
        "  sip keepalive: every 25 s on idle tcp/tls connections\n",
        "    big.test: verified, tls required, sasl required, dialback no, verify ca, also "
        "conf.big.test pubsub.big.test\n",
        "    friends.test: federated, tls required, sasl optional, dialback yes, verify ca\n",
        "    old.test: unverified, tls none, sasl none, dialback yes, verify none\n",
        "    legacy.test: unverified, tls optional, sasl optional, dialback yes, verify none, "
        "static route\n",
        "    *: verified, tls required, sasl optional, dialback yes, verify ca\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(text, want[i]))
            fprintf(stderr, "--check output lacks \"%s\":\n%s", want[i], text);
        CHECK(strstr(text, want[i]) != NULL);
    }
}

/* The default presence policy approves subscription requests from users of
 * a federated partner (found by any of its domains, through the core's
 * matcher), and forwards the others'. */
static void test_federated_presence(void)
{
    char err[512] = "";
    struct xs_policy *p = load_full("fed.lua", trust_policy, err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    static const struct {
        enum xs_side_id origin;
        const char *from, *to, *type;
        enum xs_sub_action want;
    } cases[] = {
        {XS_SIDE_XMPP, "carol@friends.test/pc", "bob@sip.test", "subscribe", XS_SUB_APPROVE},
        {XS_SIDE_XMPP, "dave@conf.big.test", "bob@sip.test", "subscribe", XS_SUB_FORWARD},
        {XS_SIDE_XMPP, "eve@anyone.test", "bob@sip.test", "subscribe", XS_SUB_FORWARD},
        {XS_SIDE_XMPP, "old@old.test", "bob@sip.test", "subscribe", XS_SUB_FORWARD},
        {XS_SIDE_SIP, "sip:bob@sip.test", "sip:carol@friends.test", "subscribe", XS_SUB_FORWARD},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct xs_event *ev = xs_event_new(XS_EVENT_SUBSCRIPTION, cases[i].origin);
        xs_event_set(&ev->from, cases[i].from);
        xs_event_set(&ev->to, cases[i].to);
        xs_event_set(&ev->type, cases[i].type);
        ev->action = XS_SUB_PENDING;
        char *text = NULL;
        CHECK(xs_policy_route(p, ev, &text) == XS_COND_NONE);
        if (ev->action != cases[i].want)
            fprintf(stderr, "%s: action %d\n", cases[i].from, (int)ev->action);
        CHECK(ev->action == cases[i].want);
        free(text);
        xs_event_free(ev);
    }
    xs_policy_free(p);
}

/* Without hooks, the core routes by itself (route_fast.c) through the same
 * domain index: a partner's extra domains federate, names below them and
 * strangers do not. */
static void test_route_extra_domains(void)
{
    char err[512] = "";
    struct xs_policy *p =
        load_full("route.lua",
                  "gateway { domains = { 'sip.test' }, xmpp = { listen = '127.0.0.1:5269' },\n"
                  "  sip = { listen = 'udp:127.0.0.1:5060', next_hop = 'udp:127.0.0.1:5070' } }\n"
                  "partner 'big.test' { domains = { 'conf.big.test' } }\n",
                  err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    static const struct {
        enum xs_side_id origin;
        const char *from, *to;
        enum xs_cond want;
    } cases[] = {
        {XS_SIDE_XMPP, "room@conf.big.test/nick", "bob@sip.test", XS_COND_NONE},
        {XS_SIDE_XMPP, "room@CONF.big.test", "bob@sip.test", XS_COND_NONE},
        {XS_SIDE_XMPP, "x@a.conf.big.test", "bob@sip.test", XS_COND_FORBIDDEN},
        {XS_SIDE_XMPP, "x@stranger.test", "bob@sip.test", XS_COND_FORBIDDEN},
        {XS_SIDE_SIP, "sip:bob@sip.test", "sip:room@conf.big.test", XS_COND_NONE},
        {XS_SIDE_SIP, "sip:bob@sip.test", "sip:x@other.big.test", XS_COND_FORBIDDEN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct xs_event *ev;
        char *text = NULL;
        enum xs_cond c = route(p, cases[i].origin, cases[i].from, cases[i].to, "hi", &ev, &text);
        if (c != cases[i].want)
            fprintf(stderr, "%s -> %s: %s\n", cases[i].from, cases[i].to, xs_cond_name(c));
        CHECK(c == cases[i].want);
        free(text);
        xs_event_free(ev);
    }
    xs_policy_free(p);
}

/* The errors reach xs_policy_load's caller with the policy's file:line
 * (their wording: tests/lua/test_trust.lua). */
static void test_errors(void)
{
    expect_load_error("partner \"v.test\" { type = \"verified\" }\n",
                      "p.lua:8: partner 'v.test': verify = \"ca\" (the default of type "
                      "\"verified\") needs gateway.tls.ca");
    expect_load_error("partner \"x.test\" { domains = { \"legacy.test\" } }\n",
                      "p.lua:8: partner 'x.test': domains[1] 'legacy.test' is partner "
                      "'legacy.test' already (at ");
}

int main(void)
{
    if (policy_tests_begin() != 0)
        return 1;
    test_fields();
    test_old_policy();
    test_partner_in_hook();
    test_check_output();
    test_errors();
    test_federated_presence();
    test_route_extra_domains();
    return policy_tests_end("test_policy_trust");
}
