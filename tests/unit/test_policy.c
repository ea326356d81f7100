/* The policy engine from C: loading and validation errors with file:line,
 * the sandbox (what a policy cannot reach), routing results copied back into
 * the event, the vocabulary (max_body, log, reject with a status, partner
 * lookup) and the mistakes --check refuses. Budgets: test_policy_budget.c. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/err.h"
#include "core/log.h"
#include "policy/policy.h"
#include "policy/sandbox.h"
#include "policy_testutil.h"
#include "router.h"

/* Forms that used to be accepted and then ignored are refused by --check,
 * with the file and line (code review L7, L8, L9). */
static void test_mistakes(void)
{
    expect_load_error("\nfunction on_mesage(m)\n  return m\nend\n",
                      "p.lua:9: on_mesage is not a hook this gateway calls (hooks: map_to_sip, "
                      "map_to_xmpp, on_message, on_presence, on_subscribe)");
    expect_load_error("function map_to_xmp(u) return u end\n", "p.lua:8: map_to_xmp is not a hook");
    expect_load_error("partner(\"x.test\", { tls = \"optional\" })\n",
                      "p.lua:8: partner(\"x.test\", ...) takes the name alone, the options come "
                      "after it: write partner \"x.test\" { ... }");
    expect_load_error("partner \"x.test\" ({ }, { tls = \"optional\" })\n",
                      "p.lua:8: partner \"x.test\" takes one table of options");
    expect_load_error("partner \"x.test\" { dialback = false, sasl = \"none\" }\n",
                      "p.lua:8: partner 'x.test': dialback = false and sasl = \"none\" leave "
                      "nothing that could authenticate it");
    FILE *out = tmpfile();
    CHECK(xs_policy_check(write_policy("typo.lua", "function on_mesage(m) return m end\n"), lua_dir,
                          out) != 0);
    rewind(out);
    char line[512] = "";
    CHECK(fgets(line, sizeof line, out) && strstr(line, "FAILED: ") &&
          strstr(line, "typo.lua:8: on_mesage is not a hook"));
    fclose(out);

    /* A field the message does not have is an error, not a silent no-op. */
    char err[512];
    struct xs_policy *p =
        load("function on_message(m) m.bdy = 'x' return m end\n", err, sizeof err);
    CHECK(p != NULL);
    if (p) {
        struct xs_event *ev;
        char *text = NULL;
        CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "hi", &ev, &text) ==
              XS_COND_INTERNAL_SERVER_ERROR);
        free(text);
        xs_event_free(ev);
        xs_policy_free(p);
    }
    /* Local helpers with other names are fine. */
    p = load("function onward(x) return x end\nlocal function on_x() end\n", err, sizeof err);
    CHECK(p != NULL);
    xs_policy_free(p);
}

static const char small_gw[] =
    "gateway {\n"
    "  domains = { \"sip.test\" }, max_body = 1024,\n"
    "  xmpp = { listen = \"127.0.0.1:5269\" %s },\n"
    "  sip = { listen = { \"udp:127.0.0.1:5060\" }, next_hop = \"tcp:127.0.0.1:5070\" %s },\n"
    "}\n"
    "partner \"xmpp.test\" { }\n%s";

static struct xs_policy *load_small(const char *x, const char *sip, const char *extra, char *err,
                                    size_t n)
{
    char src[1024];
    snprintf(src, sizeof src, small_gw, x, sip, extra);
    char path[256];
    snprintf(path, sizeof path, "%s/small.lua", dir);
    FILE *f = fopen(path, "w");
    fputs(src, f);
    fclose(f);
    struct xs_policy *p = NULL;
    if (xs_policy_load(path, lua_dir, &p, err, n) != 0)
        return NULL;
    return p;
}

struct answer {
    int calls;
    enum xs_cond cond;
    char text[128];
};

static void on_answer(void *ud, enum xs_cond cond, const char *text)
{
    struct answer *a = ud;
    a->calls++;
    a->cond = cond;
    snprintf(a->text, sizeof a->text, "%s", text ? text : "");
}

static void never_deliver(void *impl, struct xs_event *ev, xs_done_cb done, void *ud)
{
    (void)impl;
    xs_event_free(ev);
    done(ud, XS_COND_NONE, NULL);
}

/* One max_body: the stanza and SIP limits follow it, --check refuses limits
 * that contradict it, and the router refuses a larger body before the policy
 * runs (code review E3). */
static void test_max_body(void)
{
    char err[512];
    struct xs_policy *p = load_small("", "", "", err, sizeof err);
    CHECK(p != NULL);
    if (p) {
        const struct xs_config *c = xs_policy_config(p);
        CHECK(c->max_body == 1024 && c->xmpp_max_stanza == 1024 + 16384 &&
              c->sip_max_message == 1024 + 16384);
        xs_policy_free(p);
    }
    p = load_small(", max_stanza = 5120", ", max_message = 100000", "", err, sizeof err);
    CHECK(p && xs_policy_config(p)->xmpp_max_stanza == 5120 &&
          xs_policy_config(p)->sip_max_message == 100000);
    xs_policy_free(p);
    CHECK(load_small(", max_stanza = 5119", "", "", err, sizeof err) == NULL);
    CHECK(strstr(err, "small.lua:1: xmpp.max_stanza = 5119 is smaller than gateway.max_body "
                      "(1024) needs: at least 5120") != NULL);
    CHECK(load_small("", ", max_message = 2048", "", err, sizeof err) == NULL);
    CHECK(strstr(err, "sip.max_message = 2048 is smaller than gateway.max_body") != NULL);
    {
        /* max_body out of bounds */
        struct xs_policy *q = NULL;
        char path[256];
        snprintf(path, sizeof path, "%s/big.lua", dir);
        FILE *f = fopen(path, "w");
        fputs("gateway { domains = { 'sip.test' }, max_body = 2^30,\n"
              "  xmpp = { listen = '127.0.0.1:5269' }, sip = { listen = 'udp:127.0.0.1:5060' } }\n",
              f);
        fclose(f);
        CHECK(xs_policy_load(path, lua_dir, &q, err, sizeof err) != 0);
        CHECK(strstr(err, "big.lua:1: gateway.max_body must be a number of bytes from 1024 to "
                          "1048576") != NULL);
    }

    /* The hook fails every call it sees, so a refusal that names the size
     * shows it never ran. */
    p = load_small("", "", "function on_message(m) error('hook ran') end\n", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    struct xs_router r;
    xs_router_init(&r, p);
    r.sides[XS_SIDE_XMPP] = (struct xs_side){NULL, never_deliver};
    r.sides[XS_SIDE_SIP] = (struct xs_side){NULL, never_deliver};
    char body[1026];
    memset(body, 'x', 1025);
    body[1025] = '\0';
    struct answer a = {0};
    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_SIP);
    xs_event_set(&ev->from, "sip:bob@sip.test");
    xs_event_set(&ev->to, "sip:alice@xmpp.test");
    xs_event_set(&ev->body, body);
    xs_router_submit(&r, ev, on_answer, &a);
    CHECK(a.calls == 1 && a.cond == XS_COND_POLICY_VIOLATION);
    CHECK_STR(a.text, "message body exceeds 1024 bytes");
    body[1024] = '\0';
    a = (struct answer){0};
    ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_SIP);
    xs_event_set(&ev->from, "sip:bob@sip.test");
    xs_event_set(&ev->to, "sip:alice@xmpp.test");
    xs_event_set(&ev->body, body);
    xs_router_submit(&r, ev, on_answer, &a);
    CHECK(a.calls == 1 && a.cond == XS_COND_INTERNAL_SERVER_ERROR);
    xs_policy_free(p);

    /* Without a hook, a body of exactly max_body passes. */
    p = load_small("", "", "", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    xs_router_set_policy(&r, p);
    a = (struct answer){0};
    ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_SIP);
    xs_event_set(&ev->from, "sip:bob@sip.test");
    xs_event_set(&ev->to, "sip:alice@xmpp.test");
    xs_event_set(&ev->body, body);
    xs_router_submit(&r, ev, on_answer, &a);
    CHECK(a.calls == 1 && a.cond == XS_COND_NONE);
    xs_policy_free(p);
}

static void route_logging(void *arg)
{
    struct xs_policy *p = arg;
    struct xs_event *ev;
    char *text = NULL;
    CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test",
                "log a\nts=0 level=error ev=forged", &ev, &text) == XS_COND_NONE);
    xs_event_free(ev);
}

/* What operators reach for: log(), now(), clock(), reject() with a SIP
 * status, and the facts of how a message arrived (code review L9). */
static void test_operator_vocabulary(void)
{
    char err[512];
    struct xs_policy *p =
        load("function on_message(m)\n"
             "  if m.body:find('^log') then\n"
             "    log('info', 'got', m.body, 42, nil)\n"
             "  end\n"
             "  if m.body == '403' then return reject(403, 'not you') end\n"
             "  if m.body == '486' then return reject(486) end\n"
             "  if m.body == '200' then return reject(200) end\n"
             "  if m.body == 'loud' then log('loud', 'x') end\n"
             "  if m.body == 'time' then\n"
             "    local t0 = clock()\n"
             "    m.body = tostring(math.abs(now() - NOW) < 5) .. ' ' .. tostring(clock() >= t0)\n"
             "  end\n"
             "  if m.body == 'facts' then\n"
             "    m.body = tostring(m.secure) .. ' ' .. tostring(m.auth)\n"
             "  end\n"
             "  return m\n"
             "end\n"
             "NOW = now()\n",
             err, sizeof err);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    char buf[4096];
    capture_log(route_logging, p, buf, sizeof buf);
    CHECK(strstr(buf, "level=info ev=policy.log where=") != NULL);
    CHECK(strstr(buf, "p.lua:10 text=\"got log a\\x0ats=0 level=error ev=forged 42 nil\"\n") !=
          NULL);
    CHECK(strstr(buf, "\nts=0") == NULL);

    struct xs_event *ev;
    char *text = NULL;
    CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "403", &ev, &text) ==
          XS_COND_FORBIDDEN);
    CHECK_STR(text, "not you");
    free(text);
    xs_event_free(ev);
    text = NULL;
    CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "486", &ev, &text) ==
          XS_COND_RECIPIENT_UNAVAILABLE);
    free(text);
    xs_event_free(ev);
    static const char *const misuse[] = {"200", "loud"};
    for (size_t i = 0; i < 2; i++) {
        text = NULL;
        CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", misuse[i], &ev,
                    &text) == XS_COND_INTERNAL_SERVER_ERROR);
        free(text);
        xs_event_free(ev);
    }
    text = NULL;
    CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "time", &ev, &text) ==
          XS_COND_NONE);
    CHECK_STR(ev->body, "true true");
    xs_event_free(ev);

    ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_XMPP);
    xs_event_set(&ev->from, "alice@xmpp.test");
    xs_event_set(&ev->to, "bob@sip.test");
    xs_event_set(&ev->body, "facts");
    ev->secure = 1;
    ev->auth = "dialback";
    CHECK(xs_policy_route(p, ev, &text) == XS_COND_NONE);
    CHECK_STR(ev->body, "true dialback");
    CHECK(ev->secure == 1 && ev->auth && !strcmp(ev->auth, "dialback"));
    xs_event_free(ev);
    ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_SIP);
    xs_event_set(&ev->from, "sip:bob@sip.test");
    xs_event_set(&ev->to, "sip:alice@xmpp.test");
    xs_event_set(&ev->body, "facts");
    CHECK(xs_policy_route(p, ev, &text) == XS_COND_NONE);
    CHECK_STR(ev->body, "false nil");
    xs_event_free(ev);
    xs_policy_free(p);
    expect_load_error("reject(99)\n", "p.lua:8: reject(): 99 is not a SIP failure status");
    expect_load_error("log('info', 'at load')\nlog(1)\n", "p.lua:9: log(): level must be");
}

/* One partner matcher (code review A3): hooks ask the core's through
 * xsgw.partner(), and after the hooks the route is checked again, so a
 * rewritten address cannot leave our domains or the partners (audit L5). */
static void test_partner_once(void)
{
    expect_load_error("local x = xsgw.partner('xmpp.test')\n",
                      "p.lua:8: xsgw.partner() can only be called from a hook");
    char err[512];
    struct xs_policy *p = load(
        "function on_message(m)\n"
        "  if m.body == 'ask' then\n"
        "    m.body = xsgw.partner('XMPP.test').tls .. ' ' .. xsgw.partner('legacy.test').route\n"
        "      .. ' ' .. tostring(xsgw.partner('legacy.test').dialback) .. ' '\n"
        "      .. tostring(xsgw.partner('nope.test'))\n"
        "  end\n"
        "  if m.body == 'to-stranger' then m.to = 'alice@stranger.test' end\n"
        "  if m.body == 'to-local' then m.to = 'bob@sip.test' end\n"
        "  if m.body == 'from-partner' then m.from = 'eve@xmpp.test' end\n"
        "  if m.body == 'to-partner' then m.to = 'carol@legacy.test' end\n"
        "  if m.body == 'sip-from-local' then m.from = 'sip:boss@sip.test' end\n"
        "  if m.body == 'sip-to-partner' then m.to = 'sip:x@xmpp.test' end\n"
        "  return m\n"
        "end\n",
        err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    struct xs_event *ev;
    char *text = NULL;
    CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "ask", &ev, &text) ==
          XS_COND_NONE);
    CHECK_STR(ev->body, "required 127.0.0.5:5269 true nil");
    xs_event_free(ev);
    static const struct {
        enum xs_side_id origin;
        const char *body;
        enum xs_cond want;
    } cases[] = {
        {XS_SIDE_SIP, "to-stranger", XS_COND_INTERNAL_SERVER_ERROR},
        {XS_SIDE_SIP, "to-local", XS_COND_INTERNAL_SERVER_ERROR},
        {XS_SIDE_SIP, "from-partner", XS_COND_INTERNAL_SERVER_ERROR},
        {XS_SIDE_SIP, "to-partner", XS_COND_NONE},
        {XS_SIDE_XMPP, "sip-from-local", XS_COND_INTERNAL_SERVER_ERROR},
        {XS_SIDE_XMPP, "sip-to-partner", XS_COND_INTERNAL_SERVER_ERROR},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        text = NULL;
        enum xs_cond c = cases[i].origin == XS_SIDE_SIP
                             ? route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test",
                                     cases[i].body, &ev, &text)
                             : route(p, XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test",
                                     cases[i].body, &ev, &text);
        if (c != cases[i].want)
            fprintf(stderr, "%s: %s\n", cases[i].body, xs_cond_name(c));
        CHECK(c == cases[i].want);
        free(text);
        xs_event_free(ev);
    }
    xs_policy_free(p);

    /* With partner "*", our own domain is still not a partner. */
    p = load("partner \"*\" { }\n", err, sizeof err);
    CHECK(p != NULL);
    if (p) {
        text = NULL;
        CHECK(route(p, XS_SIDE_XMPP, "mallory@sip.test", "bob@sip.test", "x", &ev, &text) ==
              XS_COND_FORBIDDEN);
        free(text);
        xs_event_free(ev);
        text = NULL;
        CHECK(route(p, XS_SIDE_XMPP, "carol@Anywhere.test", "bob@sip.test", "x", &ev, &text) ==
              XS_COND_NONE);
        xs_event_free(ev);
        xs_policy_free(p);
    }
}

static void test_config(void)
{
    char err[512];
    struct xs_policy *p = load("", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    const struct xs_config *c = xs_policy_config(p);
    CHECK(c->n_domains == 1 && !strcmp(c->domains[0], "sip.test"));
    CHECK(!strcmp(c->xmpp_listen_host, "127.0.0.1") && c->xmpp_listen_port == 5269);
    CHECK(c->tls_cert == NULL && c->dialback_secret == NULL);
    CHECK(c->n_sip_listen == 1 && c->sip_listen[0].transport == XS_SIP_UDP);
    CHECK(c->sip_next_hop.transport == XS_SIP_TCP && c->sip_next_hop.port == 5070);
    CHECK(c->xmpp_queue_max == 1000);
    CHECK(c->max_body == 262144 && c->xmpp_max_stanza == 262144 + 16384 &&
          c->sip_max_message == 262144 + 16384);
    CHECK(c->n_partners == 2);
    const struct xs_partner *x = xs_policy_partner(p, "XMPP.test");
    CHECK(x && x->tls == XS_TLS_REQUIRED && x->dialback && !x->route_host);
    const struct xs_partner *l = xs_policy_partner(p, "legacy.test");
    CHECK(l && l->tls == XS_TLS_OPTIONAL && l->route_host && l->route_port == 5269);
    CHECK(xs_policy_partner(p, "stranger.test") == NULL);
    CHECK(xs_policy_is_local_domain(p, "SIP.test") && !xs_policy_is_local_domain(p, "xmpp.test"));
    xs_policy_free(p);

    p = load("partner \"*\" { }\n", err, sizeof err);
    CHECK(p && xs_policy_partner(p, "stranger.test") != NULL);
    CHECK(p && !strcmp(xs_policy_partner(p, "xmpp.test")->domain, "xmpp.test"));
    xs_policy_free(p);
}

static void test_errors(void)
{
    expect_load_error("partner \"x.test\" { tls = \"sometimes\" }\n", "p.lua:8: partner 'x.test'");
    expect_load_error("\nthis is not lua\n", "p.lua:9:");
    expect_load_error("partner \"x.test\" { colour = 1 }\n", "unknown key 'colour'");
    expect_load_error("on_message = 'no'\n", "on_message must be a function");
    expect_load_error("error('boom')\n", "p.lua:8: boom");
    char err[512];
    struct xs_policy *p = NULL;
    CHECK(xs_policy_load("/nonexistent/policy.lua", lua_dir, &p, err, sizeof err) != 0);
    CHECK(strstr(err, "/nonexistent/policy.lua") != NULL);
    CHECK(xs_policy_load(write_policy("ok.lua", ""), "/nonexistent", &p, err, sizeof err) != 0);
}

static void test_sandbox(void)
{
    static const char *const escapes[] = {
        "io.open('/etc/passwd')\n",
        "os.execute('true')\n",
        "debug.getinfo(1)\n",
        "require('os')\n",
        "load('return 1')\n",
        "dofile('/etc/passwd')\n",
        "loadfile('/etc/passwd')\n",
        "string.dump(print)\n",
        "package.loadlib('x','y')\n",
        "collectgarbage()\n",
        "xsgw.address = nil; require('xsgw.policy')\n",
    };
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        char err[512] = "";
        struct xs_policy *p = load(escapes[i], err, sizeof err);
        if (p)
            fprintf(stderr, "sandbox let through: %s", escapes[i]);
        CHECK(p == NULL);
        CHECK(strstr(err, "p.lua:8:") != NULL);
        xs_policy_free(p);
    }
}

static void test_route(void)
{
    char err[512];
    struct xs_policy *p = load("", err, sizeof err);
    if (!p) {
        CHECK(!"load");
        return;
    }
    struct xs_event *ev;
    char *text = NULL;
    CHECK(route(p, XS_SIDE_XMPP, "alice@xmpp.test/phone", "bob@sip.test", "héllo <&>", &ev,
                &text) == XS_COND_NONE);
    CHECK_STR(ev->from, "sip:alice@xmpp.test;gr=phone"); /* RFC 7572 §4 note 1 */
    CHECK_STR(ev->to, "sip:bob@sip.test");
    CHECK_STR(ev->body, "héllo <&>");
    CHECK_STR(ev->type, "chat");
    xs_event_free(ev);
    CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "x", &ev, &text) ==
          XS_COND_NONE);
    CHECK_STR(ev->from, "bob@sip.test");
    CHECK_STR(ev->to, "alice@xmpp.test");
    xs_event_free(ev);
    CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:c@stranger.test", "x", &ev, &text) ==
          XS_COND_FORBIDDEN);
    CHECK(text && strstr(text, "stranger.test"));
    free(text);
    xs_event_free(ev);
    CHECK(route(p, XS_SIDE_XMPP, "eve@stranger.test", "bob@sip.test", "x", &ev, &text) ==
          XS_COND_FORBIDDEN);
    free(text);
    xs_event_free(ev);
    xs_policy_free(p);
}

static void test_shipped(void)
{
    static const char *const files[] = {"policies/default.lua",
                                        "policies/examples/open-federation.lua",
                                        "policies/examples/content-filter.lua",
                                        "policies/examples/static-route.lua",
                                        "policies/examples/presence-lync.lua",
                                        "policies/examples/trust.lua"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char err[512];
        struct xs_policy *p = NULL;
        int rc = xs_policy_load(files[i], lua_dir, &p, err, sizeof err);
        if (rc)
            fprintf(stderr, "%s: %s\n", files[i], err);
        CHECK(rc == 0);
        xs_policy_free(p);
    }
    FILE *out = tmpfile();
    CHECK(xs_policy_check("policies/default.lua", lua_dir, out) == 0);
    rewind(out);
    char line[256] = "";
    CHECK(fgets(line, sizeof line, out) && !strncmp(line, "OK: policies/default.lua", 24));
    fclose(out);
}

static const char *write_full(const char *name, const char *src)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(src, f);
    fclose(f);
    return path;
}

/* tls: endpoints reach struct xs_config as XS_SIP_TLS (the port defaults to
 * 5061), --check prints them, and a bad one is refused with file:line. */
static void test_sip_tls(void)
{
    static const char good[] =
        "gateway {\n"
        "  domains = { \"sip.test\" },\n"
        "  xmpp = { listen = \"127.0.0.1:5269\" },\n"
        "  sip = { listen = { \"tcp:127.0.0.1:5060\", \"tls:127.0.0.1:5071\" },\n"
        "          next_hop = \"tls:edge.sip.test\" },\n"
        "}\n";
    char err[512] = "";
    struct xs_policy *p = NULL;
    CHECK(xs_policy_load(write_full("tls.lua", good), lua_dir, &p, err, sizeof err) == 0);
    if (p) {
        const struct xs_config *c = xs_policy_config(p);
        CHECK(c->n_sip_listen == 2 && c->sip_listen[0].transport == XS_SIP_TCP);
        CHECK(c->sip_listen[1].transport == XS_SIP_TLS && c->sip_listen[1].port == 5071 &&
              !strcmp(c->sip_listen[1].host, "127.0.0.1"));
        CHECK(c->sip_next_hop.transport == XS_SIP_TLS && c->sip_next_hop.port == 5061 &&
              !strcmp(c->sip_next_hop.host, "edge.sip.test"));
        xs_policy_free(p);
    }
    FILE *out = tmpfile();
    CHECK(xs_policy_check(write_full("tls.lua", good), lua_dir, out) == 0);
    rewind(out);
    char text[2048] = "";
    size_t n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    CHECK(strstr(text, ", next hop tls:edge.sip.test:5061\n") != NULL);
    fclose(out);

    static const char bad[] = "gateway {\n"
                              "  domains = { \"sip.test\" },\n"
                              "  xmpp = { listen = \"127.0.0.1:5269\" },\n"
                              "  sip = { listen = { \"tls:127.0.0.1:70000\" } },\n"
                              "}\n";
    out = tmpfile();
    CHECK(xs_policy_check(write_full("badtls.lua", bad), lua_dir, out) != 0);
    rewind(out);
    n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    CHECK(strstr(text, "FAILED: ") && strstr(text, "badtls.lua:1: sip.listen[1] "
                                                   "'tls:127.0.0.1:70000' is not tls:host:port"));
    fclose(out);
}

int main(void)
{
    if (policy_tests_begin() != 0)
        return 1;
    test_config();
    test_errors();
    test_sandbox();
    test_route();
    test_shipped();
    test_mistakes();
    test_max_body();
    test_operator_vocabulary();
    test_partner_once();
    test_sip_tls();
    return policy_tests_end("test_policy");
}
