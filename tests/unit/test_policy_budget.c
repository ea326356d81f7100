/* The policy's budgets from C: instructions (not escapable through pcall),
 * wall-clock time (inside pattern matching and other C library functions
 * too), memory per state and per call, the watchdog, and the read-only
 * library; and that the state stays usable after each failure. */
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "policy/policy.h"
#include "policy/sandbox.h"
#include "policy_testutil.h"
#include "router.h"

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

/* The budget cannot be escaped by catching its error: the pcall loop of the
 * code review (L1) ends at load, through --check, and in on_message. */
static void test_budget_pcall(void)
{
    static const char loop[] = "while true do pcall(function() while true do end end) end\n";
    static const char xloop[] =
        "while true do xpcall(function() while true do end end, function(e) return e end) end\n";
    BOUNDED(10);
    double t0 = now_s();
    expect_load_error(loop, "p.lua:8: instruction budget exceeded");
    expect_load_error(xloop, "p.lua:8: instruction budget exceeded");
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
        CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "hi", &ev, &text) ==
              XS_COND_NONE);
        xs_event_free(ev);
        xs_policy_free(p);
    }
    /* Finalizers would run outside any call's budget, at reload too. */
    expect_load_error("setmetatable({}, { __gc = function() while true do end end })\n",
                      "p.lua:8: setmetatable(): finalizers (__gc) are not allowed");
    BOUNDED(0);
}

/* Each hook the policy defines is counted when called, and a failed call
 * is counted against the hook it failed in: an error, and a budget overrun
 * as both (xsgw_lua_hook_*_total). */
static void test_hook_metrics(void)
{
    char err[512];
    struct xs_policy *p = load("function map_to_xmpp(uri) return (uri:gsub('^sip:', '')) end\n"
                               "function on_message(m)\n"
                               "  if m.body == 'loop' then while true do end end\n"
                               "  if m.body == 'boom' then error('boom') end\n"
                               "  return m\n"
                               "end\n",
                               err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    xs_metrics_reset();
    static const char *const bodies[] = {"hi", "boom", "loop"};
    for (int i = 0; i < 3; i++) {
        struct xs_event *ev;
        char *text = NULL;
        enum xs_cond c = route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test",
                               bodies[i], &ev, &text);
        CHECK(c == (i ? XS_COND_INTERNAL_SERVER_ERROR : XS_COND_NONE));
        free(text);
        xs_event_free(ev);
    }
    struct xs_buf b;
    xs_buf_init(&b, 1 << 20);
    CHECK(xs_metrics_render(&b) == 0);
    static const char *const want[] = {
        "\nxsgw_lua_hook_calls_total{hook=\"on_message\"} 3\n",
        "\nxsgw_lua_hook_calls_total{hook=\"map_to_xmpp\"} 6\n",
        "\nxsgw_lua_hook_calls_total{hook=\"map_to_sip\"} 0\n",
        "\nxsgw_lua_hook_errors_total{hook=\"on_message\"} 2\n",
        "\nxsgw_lua_hook_errors_total{hook=\"map_to_xmpp\"} 0\n",
        "\nxsgw_lua_budget_overruns_total{hook=\"on_message\"} 1\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK(b.data && strstr(b.data, want[i]));
        if (!b.data || !strstr(b.data, want[i]))
            fprintf(stderr, "missing: %s", want[i] + 1);
    }
    xs_buf_free(&b);
    xs_policy_free(p);
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
             "  if m.subject == 'sort' then\n"
             "    table.sort(setmetatable({}, { __len = function() return 2^30 end }))\n"
             "  end\n"
             "  if m.subject == 'helpers' then\n"
             "    local b = xsgw.trim(m.body)\n"
             "    m.body = b:sub(1, 3) .. #b .. tostring(xsgw.starts_with(b, 'x ')) ..\n"
             "      tostring(xsgw.ends_with(b, ' y')) .. tostring(xsgw.contains(b, 'yx')) ..\n"
             "      xsgw.lower('AbC') .. xsgw.upper('aBc') .. '[' .. xsgw.trim(' \\t\\r\\n ') .. "
             "']' ..\n"
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
    static const char *const stopped[] = {"idiom", "caught", "rep", "move", "insert", "sort"};
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

/* Audit H5: a policy that keeps state derived from messages, fed distinct
 * 60 KB bodies until the state's memory cap. Every call gets an answer
 * (resource-constraint once the cap is reached), the process does not abort,
 * and small messages still route afterwards. */
static void test_memory_cap(void)
{
    char err[512];
    struct xs_policy *p = load("local recent = {}\n"
                               "function on_message(m)\n"
                               "  if recent[m.body] then\n"
                               "    return reject('not-acceptable', 'duplicate message')\n"
                               "  end\n"
                               "  recent[m.body] = true\n"
                               "  return m\n"
                               "end\n",
                               err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    size_t n = 60000;
    char *body = malloc(n + 1);
    memset(body, 'b', n);
    body[n] = '\0';
    int passed = 0, constrained = 0, other = 0;
    BOUNDED(60);
    for (int i = 0; i < 1400; i++) {
        snprintf(body, 16, "%08d", i);
        body[8] = 'b';
        struct xs_event *ev;
        char *text = NULL;
        enum xs_cond c =
            route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", body, &ev, &text);
        if (c == XS_COND_NONE)
            passed++;
        else if (c == XS_COND_RESOURCE_CONSTRAINT && constrained++ == 0)
            CHECK_STR(text, "policy out of memory");
        else if (c != XS_COND_RESOURCE_CONSTRAINT)
            other++;
        /* Once the cap is reached, no large body passes again. */
        CHECK(c != XS_COND_NONE || constrained == 0);
        free(text);
        xs_event_free(ev);
    }
    BOUNDED(0);
    CHECK(passed > 900 && passed < 1150);
    CHECK(constrained == 1400 - passed);
    CHECK(other == 0);
    struct xs_event *ev;
    char *text = NULL;
    CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "hi", &ev, &text) ==
          XS_COND_NONE);
    CHECK_STR(ev->body, "hi");
    xs_event_free(ev);
    CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "hi", &ev, &text) ==
          XS_COND_NOT_ACCEPTABLE);
    CHECK_STR(text, "duplicate message");
    free(text);
    xs_event_free(ev);
    fprintf(stderr, "memory cap: %d passed, %d refused\n", passed, constrained);
    free(body);
    xs_policy_free(p);
}

/* Policies see read-only views of the library (code review L5): assigning
 * into one fails with a clear error, at load and in on_message, and routing
 * afterwards is what it was. */
static void test_readonly(void)
{
    expect_load_error("xsgw.address.jid_domain = function() return 'xmpp.test' end\n",
                      "p.lua:8: xsgw.address is read-only: cannot assign xsgw.address.jid_domain");
    expect_load_error("string.lower = function(s) return s end\n",
                      "p.lua:8: string is read-only: cannot assign string.lower");
    expect_load_error("xsgw.trim = nil\n", "p.lua:8: xsgw is read-only: cannot assign xsgw.trim");
    expect_load_error("getmetatable('').__index.lower = nil\n", "p.lua:8:");
    expect_load_error("getmetatable(string).__index.lower = nil\n", "p.lua:8:");
    expect_load_error("getmetatable(reject('forbidden')).x = 1\n", "p.lua:8:");
    char err[512];
    struct xs_policy *p =
        load("function on_message(m)\n"
             "  if m.body == 'a' then\n"
             "    xsgw.address.jid_domain = function() return 'xmpp.test' end\n"
             "  end\n"
             "  if m.body == 's' then string.lower = function(s) return s end end\n"
             "  if m.body == 'r' then rawset(string, 'lower', 1) end\n"
             "  if m.body == 'f' then\n"
             "    return setmetatable({ condition = 'forbidden' },\n"
             "                        getmetatable(reject('forbidden')))\n"
             "  end\n"
             "  return m\n"
             "end\n",
             err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    static const char *const tries[] = {"a", "s", "r", "f"};
    static const enum xs_cond want[] = {XS_COND_INTERNAL_SERVER_ERROR,
                                        XS_COND_INTERNAL_SERVER_ERROR, XS_COND_NONE,
                                        XS_COND_INTERNAL_SERVER_ERROR};
    for (size_t i = 0; i < 4; i++) {
        struct xs_event *ev;
        char *text = NULL;
        CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", tries[i], &ev,
                    &text) == want[i]);
        free(text);
        xs_event_free(ev);
        /* A stranger is still refused, and addresses still map (lower-cased). */
        CHECK(route(p, XS_SIDE_XMPP, "eve@stranger.test", "bob@sip.test", "x", &ev, &text) ==
              XS_COND_FORBIDDEN);
        free(text);
        xs_event_free(ev);
        text = NULL;
        CHECK(route(p, XS_SIDE_SIP, "sip:Bob@SIP.test", "sip:alice@XMPP.test", "x", &ev, &text) ==
              XS_COND_NONE);
        CHECK_STR(ev->to, "alice@xmpp.test");
        xs_event_free(ev);
    }
    xs_policy_free(p);
}

/* A call stuck where no hook reaches (here a C function that sleeps) is
 * reported by the watchdog with the file and the last line the hook saw. */
static void run_stuck_call(void *arg)
{
    (void)arg;
    static const struct xs_lua_limits lim = {
        .memory = 8u << 20,
        .call_memory = 1u << 20,
        .instructions = 1000000,
        .call_seconds = 10,
        .watchdog_warn = 0.15,
        .watchdog_abort = 0,
    };
    struct xs_lua *s = xs_lua_new(lua_dir, &lim, "watch.lua");
    CHECK(s != NULL);
    if (!s)
        return;
    lua_State *L = xs_lua_state(s);
    lua_register(L, "sleepy", l_sleepy);
    char err[256];
    static const char chunk[] = "local x = 0\nfor i = 1, 5000 do x = x + i end\nsleepy()\n";
    CHECK(luaL_loadbufferx(L, chunk, sizeof chunk - 1, "@watch.lua", "t") == LUA_OK);
    CHECK(xs_lua_call(s, 0, 0, err, sizeof err) == 0);
    xs_lua_free(s);
}

static int l_sleep_long(lua_State *L)
{
    (void)L;
    struct timespec ts = {3, 0};
    nanosleep(&ts, NULL);
    return 0;
}

/* Past the larger bound the watchdog says so and aborts the process (here a
 * child, so the test survives it). */
static void test_watchdog_abort(void)
{
    char logpath[300];
    snprintf(logpath, sizeof logpath, "%s/abort.log", dir);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(logpath, "w", stderr))
            _exit(2);
        xs_log_set_level(XS_LOG_ERROR);
        static const struct xs_lua_limits lim = {
            .memory = 8u << 20,
            .call_memory = 1u << 20,
            .instructions = 1000000,
            .call_seconds = 10,
            .watchdog_warn = 0.1,
            .watchdog_abort = 0.5,
        };
        struct xs_lua *s = xs_lua_new(lua_dir, &lim, "stuck.lua");
        if (!s)
            _exit(3);
        lua_State *L = xs_lua_state(s);
        lua_register(L, "sleep_long", l_sleep_long);
        char err[256];
        static const char chunk[] = "sleep_long()\n";
        if (luaL_loadbufferx(L, chunk, sizeof chunk - 1, "@stuck.lua", "t") != LUA_OK)
            _exit(4);
        xs_lua_call(s, 0, 0, err, sizeof err);
        _exit(0);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    FILE *f = fopen(logpath, "r");
    char buf[4096] = "";
    size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[got] = '\0';
    if (f)
        fclose(f);
    CHECK(strstr(buf, "ev=policy.watchdog file=stuck.lua where=- stuck=0.") != NULL);
    CHECK(strstr(buf, "action=abort") != NULL);
}

static void test_watchdog(void)
{
    char buf[4096];
    capture_log(run_stuck_call, NULL, buf, sizeof buf);
    if (!strstr(buf, "ev=policy.watchdog file=watch.lua where=watch.lua:2"))
        fprintf(stderr, "watchdog log: %s\n", buf);
    CHECK(strstr(buf, "level=error ev=policy.watchdog file=watch.lua where=watch.lua:2 stuck=") !=
          NULL);
    CHECK(strstr(buf, "action=abort") == NULL);
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
    static const enum xs_cond want[] = {XS_COND_INTERNAL_SERVER_ERROR, XS_COND_RESOURCE_CONSTRAINT,
                                        XS_COND_INTERNAL_SERVER_ERROR};
    for (size_t i = 0; i < 3; i++) {
        struct xs_event *ev;
        char *text = NULL;
        CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", bad[i], &ev,
                    &text) == want[i]);
        free(text);
        xs_event_free(ev);
        /* The state is still usable after each failure. */
        CHECK(route(p, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "hi", &ev, &text) ==
              XS_COND_NONE);
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

int main(void)
{
    if (policy_tests_begin() != 0)
        return 1;
    test_budgets();
    test_budget_pcall();
    test_hook_metrics();
    test_deadline();
    test_watchdog();
    test_watchdog_abort();
    test_memory_cap();
    test_readonly();
    return policy_tests_end("test_policy_budget");
}
