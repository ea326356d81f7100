/* Presence in the policy engine from C: the gateway.presence and sip.contact
 * vocabulary as struct xs_config and its --check errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/err.h"
#include "policy/policy.h"
#include "policy/route_fast.h"
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

static struct xs_event *presence_ev(enum xs_side_id origin, const char *from, const char *to)
{
    struct xs_event *ev = xs_event_new(XS_EVENT_PRESENCE, origin);
    xs_event_set(&ev->from, from);
    xs_event_set(&ev->to, to);
    return ev;
}

static struct xs_event *sub_ev(enum xs_side_id origin, const char *from, const char *to,
                               const char *type)
{
    struct xs_event *ev = xs_event_new(XS_EVENT_SUBSCRIPTION, origin);
    xs_event_set(&ev->from, from);
    xs_event_set(&ev->to, to);
    xs_event_set(&ev->type, type);
    return ev;
}

static int streq(const char *a, const char *b)
{
    return a && b ? !strcmp(a, b) : a == b;
}

/* Every presence field in, mapped, and back out of xs_policy_route, both
 * ways, with the default tables and with a policy's. */
static void test_presence_round_trip(void)
{
    char err[512] = "";
    struct xs_policy *p = load("", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    char *text = NULL;
    struct xs_event *ev = presence_ev(XS_SIDE_XMPP, "alice@xmpp.test/phone", "bob@sip.test");
    xs_event_set(&ev->type, "available");
    xs_event_set(&ev->show, "dnd");
    xs_event_set(&ev->status, "Im Gespräch");
    xs_event_set(&ev->lang, "de");
    xs_event_set(&ev->id, "p1");
    ev->priority = -5;
    CHECK(xs_policy_route(p, ev, &text) == XS_COND_NONE && text == NULL);
    CHECK(streq(ev->from, "sip:alice@xmpp.test;gr=phone") && streq(ev->to, "sip:bob@sip.test"));
    CHECK(streq(ev->basic, "open") && streq(ev->note, "Im Gespräch") &&
          streq(ev->activities, "busy") && ev->availability == 0);
    CHECK(streq(ev->type, "available") && streq(ev->show, "dnd") && ev->priority == -5 &&
          streq(ev->lang, "de") && streq(ev->id, "p1"));
    CHECK(ev->body == NULL && ev->thread == NULL && ev->subject == NULL);
    xs_event_free(ev);

    ev = presence_ev(XS_SIDE_SIP, "sip:bob@sip.test;gr=desk", "sip:alice@xmpp.test");
    xs_event_set(&ev->basic, "open");
    xs_event_set(&ev->note, "on holiday");
    xs_event_set(&ev->activities, "unknown vacation");
    ev->availability = 6500;
    CHECK(xs_policy_route(p, ev, &text) == XS_COND_NONE && text == NULL);
    CHECK(streq(ev->from, "bob@sip.test/desk") && streq(ev->to, "alice@xmpp.test"));
    CHECK(streq(ev->type, "available") && streq(ev->show, "xa") &&
          streq(ev->status, "on holiday") && ev->priority == 0);
    /* The number stays as it came (off in this policy, so it decided nothing). */
    CHECK(ev->availability == 6500 && streq(ev->basic, "open"));
    xs_event_free(ev);

    ev = presence_ev(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test");
    xs_event_set(&ev->basic, "closed");
    CHECK(xs_policy_route(p, ev, &text) == XS_COND_NONE);
    CHECK(streq(ev->type, "unavailable") && ev->show == NULL && ev->status == NULL);
    xs_event_free(ev);
    xs_policy_free(p);

    /* A policy's tables and hook: what the hook sets comes back. */
    p = load("presence_map { ms_availability = true, priority = 7 }\n"
             "function on_presence(p)\n"
             "  if p.origin == 'sip' then p.status = (p.status or '') .. '!' end\n"
             "  return p\n"
             "end\n",
             err, sizeof err);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    ev = presence_ev(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test");
    xs_event_set(&ev->basic, "closed");
    xs_event_set(&ev->note, "brb");
    ev->availability = 12500;
    CHECK(xs_policy_route(p, ev, &text) == XS_COND_NONE);
    CHECK(streq(ev->type, "available") && streq(ev->show, "away") && streq(ev->status, "brb!") &&
          ev->priority == 7);
    xs_event_free(ev);
    ev = presence_ev(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test");
    xs_event_set(&ev->type, "unavailable");
    CHECK(xs_policy_route(p, ev, &text) == XS_COND_NONE);
    CHECK(streq(ev->basic, "closed") && ev->availability == 18500 && ev->activities == NULL);
    xs_event_free(ev);
    xs_policy_free(p);
}

/* Subscriptions: bare addresses, and the hook's decision as ev->action. */
static void test_subscription_round_trip(void)
{
    char err[512] = "";
    struct xs_policy *p =
        load("function on_subscribe(s)\n"
             "  local u = s.from:match('^sip:([^@]+)') or s.from:match('^([^@]+)')\n"
             "  if u == 'trusted' then return 'approve' end\n"
             "  if u == 'later' then return 'pending' end\n"
             "  if u == 'eve' then return 'deny' end\n"
             "  if u == 'mallory' then return reject('not-allowed', 'go away') end\n"
             "  if u == 'broken' then return 17 end\n"
             "end\n",
             err, sizeof err);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    static const struct {
        enum xs_side_id origin;
        const char *from, *to, *type;
        enum xs_cond cond;
        const char *text;
        enum xs_sub_action action;
        const char *mfrom, *mto;
    } cases[] = {
        {XS_SIDE_XMPP, "alice@xmpp.test/phone", "bob@sip.test/x", "subscribe", XS_COND_NONE, NULL,
         XS_SUB_FORWARD, "sip:alice@xmpp.test", "sip:bob@sip.test"},
        {XS_SIDE_XMPP, "trusted@xmpp.test", "bob@sip.test", "subscribe", XS_COND_NONE, NULL,
         XS_SUB_APPROVE, "sip:trusted@xmpp.test", "sip:bob@sip.test"},
        {XS_SIDE_SIP, "sip:later@sip.test;gr=a", "sip:alice@xmpp.test", "subscribe", XS_COND_NONE,
         NULL, XS_SUB_PENDING, "later@sip.test", "alice@xmpp.test"},
        {XS_SIDE_SIP, "sip:eve@sip.test", "sip:alice@xmpp.test", "subscribe", XS_COND_FORBIDDEN,
         "denied by on_subscribe", 0, NULL, NULL},
        {XS_SIDE_XMPP, "mallory@xmpp.test", "bob@sip.test", "subscribe", XS_COND_NOT_ALLOWED,
         "go away", 0, NULL, NULL},
        {XS_SIDE_XMPP, "broken@xmpp.test", "bob@sip.test", "subscribe",
         XS_COND_INTERNAL_SERVER_ERROR, "policy error", 0, NULL, NULL},
        /* Not a request: no hook, and the action stays FORWARD. */
        {XS_SIDE_XMPP, "eve@xmpp.test/r", "bob@sip.test", "unsubscribe", XS_COND_NONE, NULL,
         XS_SUB_FORWARD, "sip:eve@xmpp.test", "sip:bob@sip.test"},
        {XS_SIDE_SIP, "sip:eve@sip.test", "sip:alice@xmpp.test", "subscribed", XS_COND_NONE, NULL,
         XS_SUB_FORWARD, "eve@sip.test", "alice@xmpp.test"},
        {XS_SIDE_SIP, "sip:eve@sip.test", "sip:alice@xmpp.test", "available", XS_COND_BAD_REQUEST,
         NULL, 0, NULL, NULL},
        {XS_SIDE_XMPP, "eve@stranger.test", "bob@sip.test", "subscribe", XS_COND_FORBIDDEN,
         "stranger.test is not a federated partner", 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct xs_event *ev = sub_ev(cases[i].origin, cases[i].from, cases[i].to, cases[i].type);
        ev->action = XS_SUB_PENDING + 1; /* overwritten on success */
        char *text = NULL;
        enum xs_cond c = xs_policy_route(p, ev, &text);
        if (c != cases[i].cond)
            fprintf(stderr, "case %zu: cond %s\n", i, xs_cond_name(c));
        CHECK(c == cases[i].cond);
        if (c == XS_COND_NONE) {
            CHECK(ev->action == cases[i].action);
            CHECK(streq(ev->from, cases[i].mfrom) && streq(ev->to, cases[i].mto));
            CHECK(streq(ev->type, cases[i].type));
        } else if (cases[i].text) {
            CHECK(streq(text, cases[i].text));
        }
        free(text);
        xs_event_free(ev);
    }
    xs_policy_free(p);
}

/* Disabled presence and dropped presence: the refusals the sides act on. */
static void test_presence_refusals(void)
{
    char err[512] = "";
    struct xs_policy *p = load_gw("{ enabled = false }", "", err, sizeof err);
    CHECK(p != NULL);
    if (p) {
        char *text = NULL;
        struct xs_event *ev = presence_ev(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test");
        CHECK(xs_policy_route(p, ev, &text) == XS_COND_SERVICE_UNAVAILABLE);
        CHECK(streq(text, "presence is not carried by this gateway"));
        free(text);
        xs_event_free(ev);
        ev = sub_ev(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "subscribe");
        CHECK(xs_policy_route(p, ev, &text) == XS_COND_SERVICE_UNAVAILABLE);
        free(text);
        xs_event_free(ev);
        xs_policy_free(p);
    }
    p = load("function on_presence(p) if p.status == 'x' then return drop() end end\n", err,
             sizeof err);
    CHECK(p != NULL);
    if (p) {
        char *text = NULL;
        struct xs_event *ev = presence_ev(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test");
        xs_event_set(&ev->status, "x");
        CHECK(xs_policy_route(p, ev, &text) == XS_COND_POLICY_VIOLATION);
        CHECK(streq(text, "dropped by on_presence"));
        free(text);
        xs_event_free(ev);
        xs_policy_free(p);
    }
}

/* A hook error is logged under the hook's name. */
static void run_bad_hook(void *arg)
{
    struct xs_policy *p = arg;
    char *text = NULL;
    struct xs_event *ev = presence_ev(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test");
    CHECK(xs_policy_route(p, ev, &text) == XS_COND_INTERNAL_SERVER_ERROR);
    CHECK(streq(text, "policy error"));
    free(text);
    xs_event_free(ev);
}

static void test_hook_error_logged(void)
{
    char err[512] = "";
    struct xs_policy *p =
        load("function on_presence(p) p.show = 'busy' return p end\n", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    char log[4096];
    capture_log(run_bad_hook, p, log, sizeof log);
    CHECK(strstr(log, "hook=on_presence") != NULL);
    CHECK(strstr(log, "on_presence left the presence invalid: show busy is not away, chat, dnd "
                      "or xa") != NULL);
    xs_policy_free(p);
}

/* The C fast path decides messages only: presence and subscriptions,
 * whose addresses it could map, always go to Lua (presence.lua's mapping,
 * the hooks, the disabled switch). */
static void test_fast_path_declines(void)
{
    char err[512] = "";
    struct xs_policy *p = load("", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    struct xs_domain_index *ix = xs_domain_index_new(xs_policy_config(p));
    CHECK(ix != NULL);
    struct xs_event *evs[] = {
        presence_ev(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test"),
        presence_ev(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test"),
        sub_ev(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test", "subscribe"),
        sub_ev(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "subscribed"),
    };
    for (size_t i = 0; ix && i < sizeof evs / sizeof evs[0]; i++) {
        /* With a body, so that nothing but the kind can make it decline. */
        xs_event_set(&evs[i]->body, "hi");
        struct xs_route_mapped m;
        CHECK(xs_route_premap(ix, 1024, evs[i], &m) == 0);
        char *from = strdup(evs[i]->from);
        CHECK(xs_route_fast(ix, 1024, evs[i]) == 0);
        CHECK(streq(evs[i]->from, from));
        free(from);
    }
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        xs_event_free(evs[i]);
    /* The same event as a message is decided there: the check can fail. */
    struct xs_event *msg = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_XMPP);
    xs_event_set(&msg->from, "alice@xmpp.test");
    xs_event_set(&msg->to, "bob@sip.test");
    xs_event_set(&msg->body, "hi");
    CHECK(ix && xs_route_fast(ix, 1024, msg) == 1 && streq(msg->from, "sip:alice@xmpp.test"));
    xs_event_free(msg);
    xs_domain_index_free(ix);
    xs_policy_free(p);
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
    test_presence_round_trip();
    test_subscription_round_trip();
    test_presence_refusals();
    test_hook_error_logged();
    test_fast_path_declines();
    return policy_tests_end("test_policy_presence");
}
