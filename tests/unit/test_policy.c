/* The policy engine from C: loading and validation errors with file:line,
 * the sandbox (what a policy cannot reach), the instruction and memory
 * budgets (and that the state stays usable after them), routing results
 * copied back into the event, and partner lookup. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/err.h"
#include "core/log.h"
#include "policy/policy.h"

static char dir[] = "/tmp/xsgw-policy-XXXXXX";
static const char *lua_dir = "lua";

static const char base[] =
    "gateway {\n"
    "  domains = { \"sip.test\" },\n"
    "  xmpp = { listen = \"127.0.0.1:5269\" },\n"
    "  sip = { listen = { \"udp:127.0.0.1:5060\" }, next_hop = \"tcp:127.0.0.1:5070\" },\n"
    "}\n"
    "partner \"xmpp.test\" { tls = \"required\", dialback = true }\n"
    "partner \"legacy.test\" { tls = \"optional\", route = \"127.0.0.5:5269\" }\n";

static const char *write_policy(const char *name, const char *extra)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(base, f);
    fputs(extra, f);
    fclose(f);
    return path;
}

static struct xs_policy *load(const char *extra, char *err, size_t n)
{
    struct xs_policy *p = NULL;
    if (xs_policy_load(write_policy("p.lua", extra), lua_dir, &p, err, n) != 0)
        return NULL;
    return p;
}

static void expect_load_error(const char *extra, const char *needle)
{
    char err[512] = "";
    struct xs_policy *p = load(extra, err, sizeof err);
    CHECK(p == NULL);
    if (!strstr(err, needle)) {
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, needle);
        CHECK(!"error names the problem");
    }
    xs_policy_free(p);
}

static enum xs_cond route(struct xs_policy *p, enum xs_side_id origin, const char *from,
                          const char *to, const char *body, struct xs_event **out, char **text)
{
    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, origin);
    xs_event_set(&ev->from, from);
    xs_event_set(&ev->to, to);
    xs_event_set(&ev->body, body);
    xs_event_set(&ev->type, "chat");
    enum xs_cond c = xs_policy_route(p, ev, text);
    *out = ev;
    return c;
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
    CHECK(c->xmpp_queue_max == 1000 && c->xmpp_max_stanza == 262144);
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
        "io.open('/etc/passwd')\n",  "os.execute('true')\n",  "debug.getinfo(1)\n",
        "require('os')\n",           "load('return 1')\n",    "dofile('/etc/passwd')\n",
        "loadfile('/etc/passwd')\n", "string.dump(print)\n",  "package.loadlib('x','y')\n",
        "collectgarbage()\n",        "xsgw.address = nil; require('xsgw.policy')\n",
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

static void test_budgets(void)
{
    char err[512];
    /* An endless load is stopped, not waited for. */
    expect_load_error("while true do end\n", "instruction budget exceeded");

    struct xs_policy *p = load("function on_message(m)\n"
                               "  if m.body == 'loop' then while true do end end\n"
                               "  if m.body == 'bomb' then local t = {} for i = 1, 1e9 do"
                               " t[i] = string.rep('x', 1e6) .. i end end\n"
                               "  if m.body == 'bad' then return 42 end\n"
                               "  if m.body == 'no' then return reject('policy-violation',"
                               " 'nope') end\n"
                               "  m.body = m.body .. '!'\n"
                               "  return m\n"
                               "end\n",
                               err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    static const char *const bad[] = {"loop", "bomb", "bad"};
    for (size_t i = 0; i < 3; i++) {
        struct xs_event *ev;
        char *text = NULL;
        CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", bad[i], &ev,
                    &text) == XS_COND_INTERNAL_SERVER_ERROR);
        free(text);
        xs_event_free(ev);
        /* The state is still usable after each failure. */
        CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "hi", &ev,
                    &text) == XS_COND_NONE);
        CHECK_STR(ev->body, "hi!");
        xs_event_free(ev);
    }
    struct xs_event *ev;
    char *text = NULL;
    CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "no", &ev, &text) ==
          XS_COND_POLICY_VIOLATION);
    CHECK_STR(text, "nope");
    free(text);
    xs_event_free(ev);
    xs_policy_free(p);
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
    static const char *const files[] = {
        "policies/default.lua", "policies/examples/open-federation.lua",
        "policies/examples/content-filter.lua", "policies/examples/static-route.lua"};
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

int main(void)
{
    xs_log_set_level(XS_LOG_ERROR + 1);
    if (!mkdtemp(dir))
        return 1;
    test_config();
    test_errors();
    test_sandbox();
    test_budgets();
    test_route();
    test_shipped();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_report("test_policy");
}
