/* xsgw: the command line. Runs the gateway, or checks a policy without
 * starting anything. Signals: SIGHUP reloads the policy, SIGTERM and SIGINT
 * stop the gateway after answering what is pending. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "gateway.h"
#include "policy/policy.h"
#include "validate/command.h"

#ifndef XS_DEFAULT_POLICY
#define XS_DEFAULT_POLICY "policies/default.lua"
#endif

struct runtime {
    uv_loop_t *loop;
    struct xs_gateway *gw;
    uv_signal_t hup, term, intr;
    int stopping;
    int hurried; /* a second stop signal ended the drain */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: xsgw [--policy FILE] [--lua-dir DIR] [--state-dir DIR] [--log-level LEVEL]\n"
            "       xsgw --check FILE [--lua-dir DIR]\n"
            "       xsgw validate [--policy FILE] [--lua-dir DIR] [--json] [DOMAIN | --sip]\n"
            "\n"
            "  --policy FILE     policy to run (default " XS_DEFAULT_POLICY ")\n"
            "  --lua-dir DIR     the gateway's Lua library (default " XS_LUA_DIR ")\n"
            "  --state-dir DIR   where the gateway keeps what survives a restart (the\n"
            "                    presence subscriptions; default " XS_DEFAULT_STATE_DIR ")\n"
            "  --log-level LEVEL debug, info, warn or error (default info)\n"
            "  --check FILE      load and validate FILE, report, and exit\n"
            "  validate          check a federation link end to end: a partner DOMAIN\n"
            "                    (DNS, connection, TLS, certificate, authentication), the\n"
            "                    SIP edge (--sip: TLS both ways, OPTIONS), or all of them;\n"
            "                    exit 0 when everything passes, 1 when not\n"
            "\n"
            "SIGHUP reloads the policy (so does a change of the policy file or the files\n"
            "it names, unless reload.watch = false); SIGTERM or SIGINT drains and stops\n"
            "the gateway within drain.deadline seconds (default 25).\n");
}

static void on_gateway_stopped(void *ud)
{
    struct runtime *rt = ud;
    uv_close((uv_handle_t *)&rt->hup, NULL);
    uv_close((uv_handle_t *)&rt->term, NULL);
    uv_close((uv_handle_t *)&rt->intr, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct runtime *rt = h->data;
    if (signum == SIGHUP) {
        if (!rt->stopping)
            xs_gateway_reload(rt->gw);
        return;
    }
    if (rt->stopping) {
        /* Ctrl-C twice: no more waiting for the drain. */
        if (!rt->hurried) {
            rt->hurried = 1;
            xs_gateway_stop_now(rt->gw);
        }
        return;
    }
    rt->stopping = 1;
    xs_gateway_stop(rt->gw, on_gateway_stopped, rt);
}

static int parse_level(const char *s, enum xs_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (!strcmp(s, names[i])) {
            *out = (enum xs_log_level)i;
            return 0;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    const char *policy = XS_DEFAULT_POLICY;
    const char *lua_dir = XS_LUA_DIR;
    const char *check = NULL;
    const char *state_dir = XS_DEFAULT_STATE_DIR;
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"policy", required_argument, NULL, 'p'},
        {"lua-dir", required_argument, NULL, 'l'},
        {"check", required_argument, NULL, 'c'},
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc > 1 && !strcmp(argv[1], "validate"))
        return xs_validate_command(argc - 1, argv + 1, policy, lua_dir);
    int c;
    while ((c = getopt_long(argc, argv, "p:l:c:v:s:h", opts, NULL)) != -1) {
        enum xs_log_level level;
        switch (c) {
        case 'p':
            policy = optarg;
            break;
        case 'l':
            lua_dir = optarg;
            break;
        case 'c':
            check = optarg;
            break;
        case 's':
            state_dir = optarg;
            break;
        case 'v':
            if (parse_level(optarg, &level) != 0) {
                fprintf(stderr, "xsgw: unknown log level '%s'\n", optarg);
                return 2;
            }
            xs_log_set_level(level);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (check)
        return xs_policy_check(check, lua_dir, stdout) == 0 ? 0 : 1;

    /* A peer that vanishes mid-write must cost us a write error, not the process. */
    signal(SIGPIPE, SIG_IGN);
    struct runtime rt = {.loop = uv_default_loop()};
    if (xs_gateway_start(rt.loop, policy, lua_dir, state_dir, &rt.gw) != 0)
        return 1;
    uv_signal_init(rt.loop, &rt.hup);
    uv_signal_init(rt.loop, &rt.term);
    uv_signal_init(rt.loop, &rt.intr);
    rt.hup.data = rt.term.data = rt.intr.data = &rt;
    uv_signal_start(&rt.hup, on_signal, SIGHUP);
    uv_signal_start(&rt.term, on_signal, SIGTERM);
    uv_signal_start(&rt.intr, on_signal, SIGINT);
    uv_run(rt.loop, UV_RUN_DEFAULT);
    uv_loop_close(rt.loop);
    return 0;
}
