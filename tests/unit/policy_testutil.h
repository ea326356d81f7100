/* What the policy tests share: a temporary directory for policy files, a
 * base policy to extend, loading and routing shorthands, a clock, a bound on
 * how long a test may hang, and a way to read what was logged. Each test
 * file includes it once, so everything is static. */
#ifndef XS_TEST_POLICY_TESTUTIL_H
#define XS_TEST_POLICY_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/log.h"
#include "policy/policy.h"

/* mkdtemp's template; policy_tests_begin() makes it this run's own
 * directory, and policy_tests_end() removes it. */
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

static inline const char *write_policy(const char *name, const char *extra)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(base, f);
    fputs(extra, f);
    fclose(f);
    return path;
}

static inline int policy_tests_begin(void)
{
    xs_log_set_level(XS_LOG_ERROR + 1);
    return mkdtemp(dir) ? 0 : -1;
}

static inline int policy_tests_end(const char *name)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_report(name);
}

static inline struct xs_policy *load(const char *extra, char *err, size_t n)
{
    struct xs_policy *p = NULL;
    if (xs_policy_load(write_policy("p.lua", extra), lua_dir, &p, err, n) != 0)
        return NULL;
    return p;
}

static inline void expect_load_error(const char *extra, const char *needle)
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

static inline enum xs_cond route(struct xs_policy *p, enum xs_side_id origin, const char *from,
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

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A hang is a failure, not a stuck test run: SIGALRM ends the process. */
#define BOUNDED(secs) alarm(secs)

/* Runs fn with stderr (the log) going to a file; returns what was logged. */
static inline void capture_log(void (*fn)(void *), void *arg, char *buf, size_t n)
{
    char logpath[300];
    snprintf(logpath, sizeof logpath, "%s/capture.log", dir);
    fflush(stderr);
    int saved = dup(2);
    if (!freopen(logpath, "w", stderr))
        return;
    xs_log_set_level(XS_LOG_DEBUG);
    fn(arg);
    xs_log_set_level(XS_LOG_ERROR + 1);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(logpath, "r");
    size_t got = f ? fread(buf, 1, n - 1, f) : 0;
    buf[got] = '\0';
    if (f)
        fclose(f);
}

#endif
