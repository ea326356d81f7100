/* The policy engine from C: loading and validation errors with file:line,
 * the sandbox (what a policy cannot reach), the instruction and memory
 * budgets (and that the state stays usable after them), routing results
 * copied back into the event, and partner lookup. */
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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A hang is a failure, not a stuck test run: SIGALRM ends the process. */
#define BOUNDED(secs) alarm(secs)

/* The budget cannot be escaped by catching its error: the pcall loop of the
 * code review (L1) ends at load, through --check, and in on_message. */
static void test_budget_pcall(void)
{
    static const char loop[] = "while true do pcall(function() while true do end end) end\n";
    static const char xloop[] =
        "while true do xpcall(function() while true do end end, function(e) return e end) end\n";
    BOUNDED(10);
    double t0 = now_s();
    expect_load_error(loop, "instruction budget exceeded");
    expect_load_error(xloop, "instruction budget exceeded");
    FILE *out = tmpfile();
    CHECK(xs_policy_check(write_policy("loop.lua", loop), lua_dir, out) != 0);
    rewind(out);
    char line[512] = "";
    CHECK(fgets(line, sizeof line, out) && strstr(line, "FAILED:") &&
          strstr(line, "instruction budget exceeded"));
    fclose(out);
    CHECK(now_s() - t0 < 2.0);

    char err[512];
    struct xs_policy *p = load("function on_message(m)\n"
                               "  if m.body == 'loop' then\n"
                               "    while true do pcall(function() while true do end end) end\n"
                               "  end\n"
                               "  return m\n"
                               "end\n",
                               err, sizeof err);
    CHECK(p != NULL);
    if (p) {
        struct xs_event *ev;
        char *text = NULL;
        t0 = now_s();
        CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "loop", &ev,
                    &text) == XS_COND_INTERNAL_SERVER_ERROR);
        CHECK(now_s() - t0 < 1.0);
        free(text);
        xs_event_free(ev);
        text = NULL;
        CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "hi", &ev,
                    &text) == XS_COND_NONE);
        xs_event_free(ev);
        xs_policy_free(p);
    }
    /* Finalizers would run outside any call's budget, at reload too. */
    expect_load_error("setmetatable({}, { __gc = function() while true do end end })\n",
                      "p.lua:8: setmetatable(): finalizers (__gc) are not allowed");
    BOUNDED(0);
}

/* Time in C library functions is bounded too: the trim idiom on a 32 KB
 * body is stopped by the call's deadline (audit M1), and the helpers that
 * replace it give the right answer at once. */
static void test_deadline(void)
{
    char err[512];
    struct xs_policy *p =
        load("function on_message(m)\n"
             "  if m.subject == 'idiom' then m.body = m.body:match('^%s*(.-)%s*$') end\n"
             "  if m.subject == 'caught' then\n"
             "    while true do pcall(string.match, m.body, '^%s*(.-)%s*$') end\n"
             "  end\n"
             "  if m.subject == 'rep' then local x = string.rep('x', 2^40) end\n"
             "  if m.subject == 'move' then table.move({}, 1, 2^40, 1) end\n"
             "  if m.subject == 'insert' then\n"
             "    table.insert(setmetatable({}, { __len = function() return 2^40 end }), 1, 1)\n"
             "  end\n"
             "  if m.subject == 'helpers' then\n"
             "    local b = xsgw.trim(m.body)\n"
             "    m.body = b:sub(1, 3) .. #b .. tostring(xsgw.starts_with(b, 'x ')) ..\n"
             "      tostring(xsgw.ends_with(b, ' y')) .. tostring(xsgw.contains(b, 'yx')) ..\n"
             "      xsgw.lower('AbC') .. xsgw.upper('aBc') .. '[' .. xsgw.trim(' \\t\\r\\n ') .. ']' ..\n"
             "      #string.rep('', 2^40)\n"
             "  end\n"
             "  m.subject = nil\n"
             "  return m\n"
             "end\n",
             err, sizeof err);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    size_t n = 32768;
    char *body = malloc(n + 3);
    body[0] = 'x';
    memset(body + 1, ' ', n);
    body[n + 1] = 'y';
    body[n + 2] = '\0';
    static const char *const stopped[] = {"idiom", "caught", "rep", "move", "insert"};
    BOUNDED(20);
    for (size_t i = 0; i < sizeof stopped / sizeof stopped[0]; i++) {
        struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_SIP);
        xs_event_set(&ev->from, "sip:bob@sip.test");
        xs_event_set(&ev->to, "sip:alice@xmpp.test");
        xs_event_set(&ev->body, body);
        xs_event_set(&ev->subject, stopped[i]);
        char *text = NULL;
        double t0 = now_s();
        enum xs_cond c = xs_policy_route(p, ev, &text);
        double took = now_s() - t0;
        if (c != XS_COND_INTERNAL_SERVER_ERROR || took > 1.5)
            fprintf(stderr, "%s: cond %s after %.2fs\n", stopped[i], xs_cond_name(c), took);
        CHECK(c == XS_COND_INTERNAL_SERVER_ERROR);
        CHECK(took < 1.5);
        free(text);
        xs_event_free(ev);
    }
    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_SIP);
    xs_event_set(&ev->from, "sip:bob@sip.test");
    xs_event_set(&ev->to, "sip:alice@xmpp.test");
    body[n / 2] = 'y';
    body[n / 2 + 1] = 'x';
    char *padded = malloc(n + 16);
    snprintf(padded, n + 16, " \t x %s \r\n", body);
    xs_event_set(&ev->body, padded);
    xs_event_set(&ev->subject, "helpers");
    char *text = NULL;
    double t0 = now_s();
    CHECK(xs_policy_route(p, ev, &text) == XS_COND_NONE);
    CHECK(now_s() - t0 < 0.2);
    CHECK_STR(ev->body, "x x32772truetruetrueabcABC[]0");
    xs_event_free(ev);
    free(padded);
    free(body);
    xs_policy_free(p);
    BOUNDED(0);
}

static void sleepy(lua_State *L)
{
    (void)L;
    struct timespec ts = {0, 400 * 1000000L};
    nanosleep(&ts, NULL);
}

static int l_sleepy(lua_State *L)
{
    sleepy(L);
    return 0;
}

/* A call stuck where no hook reaches (here a C function that sleeps) is
 * reported by the watchdog with the file and the last line the hook saw. */
static void test_watchdog(void)
{
    static const struct xs_lua_limits lim = {
        .memory = 8u << 20,
        .instructions = 1000000,
        .call_seconds = 10,
        .watchdog_warn = 0.15,
        .watchdog_abort = 0,
    };
    char logpath[300];
    snprintf(logpath, sizeof logpath, "%s/watchdog.log", dir);
    fflush(stderr);
    int saved = dup(2);
    FILE *logf = freopen(logpath, "w", stderr);
    CHECK(logf != NULL);
    xs_log_set_level(XS_LOG_ERROR);
    struct xs_lua *s = xs_lua_new(lua_dir, &lim, "watch.lua");
    CHECK(s != NULL);
    if (s) {
        lua_State *L = xs_lua_state(s);
        lua_register(L, "sleepy", l_sleepy);
        char err[256];
        static const char chunk[] = "local x = 0\nfor i = 1, 5000 do x = x + i end\nsleepy()\n";
        CHECK(luaL_loadbufferx(L, chunk, sizeof chunk - 1, "@watch.lua", "t") == LUA_OK);
        CHECK(xs_lua_call(s, 0, 0, err, sizeof err) == 0);
        xs_lua_free(s);
    }
    xs_log_set_level(XS_LOG_ERROR + 1);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(logpath, "r");
    char buf[4096] = "";
    size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[got] = '\0';
    if (f)
        fclose(f);
    if (!strstr(buf, "ev=policy.watchdog file=watch.lua where=watch.lua:2"))
        fprintf(stderr, "watchdog log: %s\n", buf);
    CHECK(strstr(buf, "ev=policy.watchdog file=watch.lua where=watch.lua:2") != NULL);
    CHECK(strstr(buf, "action=abort") == NULL);
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
    test_budget_pcall();
    test_deadline();
    test_watchdog();
    test_route();
    test_shipped();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_report("test_policy");
}
