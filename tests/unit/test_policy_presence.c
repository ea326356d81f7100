/* Presence in the policy engine from C: the gateway.presence and sip.contact
 * vocabulary as struct xs_config and its --check errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/err.h"
#include "policy/policy.h"
#include "policy_testutil.h"

/* A policy with `presence` as the gateway.presence table (NULL: none) and
 * `sip_extra` appended inside gateway.sip. */
static const char *write_gw(const char *name, const char *presence, const char *sip_extra)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fprintf(
        f,
        "gateway {\n"
        "  domains = { \"sip.test\" },\n"
        "  xmpp = { listen = \"127.0.0.1:5269\" },\n"
        "  sip = { listen = { \"udp:127.0.0.1:5060\" }, next_hop = \"tcp:127.0.0.1:5070\"%s },\n"
        "%s%s%s"
        "}\n"
        "partner \"xmpp.test\" { }\n",
        sip_extra, presence ? "  presence = " : "", presence ? presence : "",
        presence ? ",\n" : "");
    fclose(f);
    return path;
}

static struct xs_policy *load_gw(const char *presence, const char *sip_extra, char *err, size_t n)
{
    struct xs_policy *p = NULL;
    if (xs_policy_load(write_gw("pr.lua", presence, sip_extra), lua_dir, &p, err, n) != 0)
        return NULL;
    return p;
}

static void expect_gw_error(const char *presence, const char *sip_extra, const char *needle)
{
    char err[512] = "";
    struct xs_policy *p = load_gw(presence, sip_extra, err, sizeof err);
    CHECK(p == NULL);
    if (!strstr(err, needle)) {
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, needle);
        CHECK(!"error names the problem");
    }
    xs_policy_free(p);
}

static void test_config_defaults(void)
{
    char err[512] = "";
    struct xs_policy *p = load_gw(NULL, "", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    const struct xs_config *c = xs_policy_config(p);
    CHECK(c->presence_enabled == 1);
    CHECK(c->presence_store == NULL);
    CHECK(c->presence_expires == 3600 && c->presence_min_expires == 60 &&
          c->presence_max_expires == 86400);
    CHECK(c->presence_max_per_user == 1000 && c->presence_max_per_domain == 20000 &&
          c->presence_max_total == 100000);
    CHECK(c->sip_contact == NULL);
    xs_policy_free(p);
}

static void test_config_given(void)
{
    char err[512] = "";
    struct xs_policy *p =
        load_gw("{ enabled = false, store = \"/var/lib/xsgw/subs.db\", expires = 5,\n"
                "    min_expires = 1, max_expires = 10, max_per_user = 3, max_per_domain = 7,\n"
                "    max_total = 9 }",
                ", contact = \"[fd00::1]:5062\"", err, sizeof err);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    const struct xs_config *c = xs_policy_config(p);
    CHECK(c->presence_enabled == 0);
    CHECK(c->presence_store && !strcmp(c->presence_store, "/var/lib/xsgw/subs.db"));
    CHECK(c->presence_expires == 5 && c->presence_min_expires == 1 &&
          c->presence_max_expires == 10);
    CHECK(c->presence_max_per_user == 3 && c->presence_max_per_domain == 7 &&
          c->presence_max_total == 9);
    CHECK(c->sip_contact && !strcmp(c->sip_contact, "[fd00::1]:5062"));
    xs_policy_free(p);

    /* Defaults give way to what is given: a short expiry brings the default
     * minimum down, a long one the default maximum up; a small total brings
     * the default shares down. */
    p = load_gw("{ expires = 20, max_total = 50 }", ", contact = \"gw.sip.test:5060\"", err,
                sizeof err);
    CHECK(p != NULL);
    if (p) {
        c = xs_policy_config(p);
        CHECK(c->presence_expires == 20 && c->presence_min_expires == 20 &&
              c->presence_max_expires == 86400);
        CHECK(c->presence_max_per_user == 50 && c->presence_max_per_domain == 50 &&
              c->presence_max_total == 50);
        CHECK(!strcmp(c->sip_contact, "gw.sip.test:5060"));
        xs_policy_free(p);
    }
    p = load_gw("{ expires = 200000 }", "", err, sizeof err);
    CHECK(p && xs_policy_config(p)->presence_max_expires == 200000 &&
          xs_policy_config(p)->presence_min_expires == 60);
    xs_policy_free(p);
    p = load_gw("{ min_expires = 7200 }", "", err, sizeof err);
    CHECK(p && xs_policy_config(p)->presence_expires == 7200);
    xs_policy_free(p);
    p = load_gw("{ max_expires = 30 }", "", err, sizeof err);
    CHECK(p && xs_policy_config(p)->presence_expires == 30 &&
          xs_policy_config(p)->presence_min_expires == 30);
    xs_policy_free(p);
}

static void test_config_errors(void)
{
    expect_gw_error("{ expire = 10 }", "",
                    "pr.lua:1: unknown key 'expire' in gateway.presence (known: enabled, expires, "
                    "max_expires, max_per_domain, max_per_user, max_total, min_expires, store)");
    expect_gw_error("true", "", "pr.lua:1: gateway.presence must be a table, not boolean");
    expect_gw_error("{ enabled = 1 }", "", "pr.lua:1: presence.enabled must be a boolean");
    expect_gw_error("{ store = \"\" }", "", "pr.lua:1: presence.store must be a file path");
    expect_gw_error("{ store = 5 }", "", "pr.lua:1: presence.store must be a string, not number");
    expect_gw_error("{ expires = 0 }", "",
                    "pr.lua:1: presence.expires must be a whole number from 1 to 31536000");
    expect_gw_error("{ expires = 1.5 }", "", "presence.expires must be a whole number");
    expect_gw_error("{ min_expires = -1 }", "", "presence.min_expires must be a whole number");
    expect_gw_error("{ max_expires = \"1h\" }", "", "presence.max_expires must be a whole number");
    expect_gw_error(
        "{ min_expires = 100, max_expires = 50 }", "",
        "pr.lua:1: presence.min_expires (100) is larger than presence.max_expires (50)");
    expect_gw_error("{ min_expires = 100, expires = 50 }", "",
                    "pr.lua:1: presence.expires (50) is smaller than presence.min_expires (100)");
    expect_gw_error("{ max_expires = 100, expires = 500 }", "",
                    "pr.lua:1: presence.expires (500) is larger than presence.max_expires (100)");
    expect_gw_error("{ max_per_user = 0 }", "",
                    "presence.max_per_user must be a whole number from 1 to 100000000");
    expect_gw_error("{ max_per_user = 30000 }", "",
                    "pr.lua:1: presence.max_per_user (30000) is larger than "
                    "presence.max_per_domain (20000)");
    expect_gw_error("{ max_per_domain = 10, max_total = 5 }", "",
                    "presence.max_per_domain (10) is larger than presence.max_total (5)");
    expect_gw_error(NULL, ", contact = \"gw.sip.test\"",
                    "pr.lua:1: sip.contact 'gw.sip.test' is not host:port");
    expect_gw_error(NULL, ", contact = 5060", "pr.lua:1: sip.contact must be a string");
}

/* --check says what presence will do, and that it is off when it is. */
static void test_check_summary(void)
{
    char text[4096];
    FILE *out = tmpfile();
    CHECK(xs_policy_check(write_gw("ck.lua", "{ store = \"/tmp/s.db\", min_expires = 1 }",
                                   ", contact = \"10.0.0.1:5060\""),
                          lua_dir, out) == 0);
    rewind(out);
    size_t n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    fclose(out);
    CHECK(strstr(text, "  presence: store /tmp/s.db, expires 3600 (1 to 86400), subscriptions "
                       "1000 per watcher, 20000 per domain, 100000 in all\n") != NULL);
    CHECK(strstr(text, "  sip contact (in-dialog requests come back to): 10.0.0.1:5060\n") != NULL);

    out = tmpfile();
    CHECK(xs_policy_check(write_gw("ck.lua", "{ enabled = false }", ""), lua_dir, out) == 0);
    rewind(out);
    n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    fclose(out);
    CHECK(strstr(text, "  presence: off (presence and subscriptions are refused)\n") != NULL);
    CHECK(strstr(text, "sip contact") == NULL);
}

/* Presence settings leave messages alone; a misspelled presence hook is
 * caught like any other. */
static void test_messages_unchanged(void)
{
    char err[512] = "";
    struct xs_policy *p = load("", err, sizeof err);
    CHECK(p != NULL);
    if (p) {
        struct xs_event *ev = NULL;
        char *text = NULL;
        CHECK(route(p, XS_SIDE_XMPP, "alice@xmpp.test/phone", "bob@sip.test", "hi", &ev, &text) ==
              XS_COND_NONE);
        CHECK(ev && !strcmp(ev->from, "sip:alice@xmpp.test;gr=phone") &&
              !strcmp(ev->to, "sip:bob@sip.test"));
        free(text);
        xs_event_free(ev);
        xs_policy_free(p);
    }
    expect_load_error("function on_presense(p) return p end\n",
                      "p.lua:8: on_presense is not a hook this gateway calls");
}

int main(void)
{
    if (policy_tests_begin() != 0)
        return 1;
    test_config_defaults();
    test_config_given();
    test_config_errors();
    test_check_summary();
    test_messages_unchanged();
    return policy_tests_end("test_policy_presence");
}
