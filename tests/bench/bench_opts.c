/* xsbench's command line: every option, its bounds, and the defaults that
 * follow from the others (the open loop's message count and the run's
 * deadline). */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#ifndef XS_LUA_DIR
#define XS_LUA_DIR "lua"
#endif

/* Longer than every table and timer in the gateway: Timer F and J (32 s). */
#define DEFAULT_DURATION 40.0

static void usage(FILE *out)
{
    fprintf(out,
            "usage: xsbench (--gateway PATH | --gw-pid PID) [options]\n"
            "\n"
            "  --gateway PATH     start this xsgw on free ports (and stop it at the end)\n"
            "  --gw-pid PID       measure an xsgw already running with --print-policy's policy\n"
            "  -r, --rate R       open loop: offer R messages/s per direction, by the clock\n"
            "  --duration S       open loop: for S seconds (default %g: past Timer J, 32 s)\n"
            "  --late-ms MS       open loop: a send MS behind its schedule is late (default 10)\n"
            "  -n N               closed loop: messages per direction (default 10000)\n"
            "  --window W         closed loop: messages in flight at most (default 100)\n"
            "  --direction D      xmpp-sip, sip-xmpp or both (default both)\n"
            "  --tls              STARTTLS on every XMPP stream (partner tls = \"required\")\n"
            "  --sip-udp          SIP over UDP both ways (default TCP)\n"
            "  --sip-delay MS     the SIP next hop answers each request MS ms late (default 0)\n"
            "  --no-sm            our XMPP server offers no XEP-0198 and refuses it (as\n"
            "                     ejabberd on s2s); by default it acknowledges, as Prosody\n"
            "  --no-sip-retransmit  our UDP SIP client does not retransmit (Timer E): a\n"
            "                     datagram the gateway drops is then lost\n"
            "  --json FILE        write the report as JSON to FILE too\n"
            "  --policy FILE      run the gateway with FILE as is (fixed ports, as printed)\n"
            "  --print-policy     print the policy for fixed ports, and exit\n"
            "  --port-offset K    fixed ports: add K to each (25269, 25060, 25369, 25070)\n"
            "  --lua-dir DIR      the gateway's Lua library (default " XS_LUA_DIR ")\n"
            "  --gw-log FILE      the started gateway's stderr (default /tmp/xsbench-PID-gw.log)\n"
            "  --gw-log-level L   --log-level for the started gateway\n"
            "  --timeout S        bound on the whole run (default: from the load)\n"
            "  --drain S          closed: give up after S s without progress; open: wait S s\n"
            "                     after the offering for what is outstanding (default 10)\n"
            "  --error-grace S    write xmpp.error_grace = S (default: leave the gateway's)\n"
            "\n"
            "Exit status: 0 every message delivered once; 3 some refused with an answer and\n"
            "nothing else wrong; 1 anything lost, duplicated, never offered, or a failure;\n"
            "2 bad usage. At most %ld messages per direction.\n",
            DEFAULT_DURATION, BENCH_MAX_N);
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_num(const char *s, double lo, double hi, int allow_lo, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v <= hi && (v > lo || (allow_lo && v == lo))))
        return -1;
    *out = v;
    return 0;
}

int bench_parse_opts(int argc, char **argv, struct bench_opts *o)
{
    enum {
        O_WINDOW = 256,
        O_TLS,
        O_UDP,
        O_GW,
        O_PID,
        O_POLICY,
        O_PRINT,
        O_LUA,
        O_LOG,
        O_LEVEL,
        O_OFFSET,
        O_TIMEOUT,
        O_DRAIN,
        O_GRACE,
        O_DURATION,
        O_LATE,
        O_DIR,
        O_JSON,
        O_SIP_DELAY,
        O_NO_RTX,
        O_NO_SM,
        O_HELP
    };
    static const struct option opts[] = {
        {"window", required_argument, NULL, O_WINDOW},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, O_DURATION},
        {"late-ms", required_argument, NULL, O_LATE},
        {"direction", required_argument, NULL, O_DIR},
        {"json", required_argument, NULL, O_JSON},
        {"sip-delay", required_argument, NULL, O_SIP_DELAY},
        {"no-sip-retransmit", no_argument, NULL, O_NO_RTX},
        {"no-sm", no_argument, NULL, O_NO_SM},
        {"tls", no_argument, NULL, O_TLS},
        {"sip-udp", no_argument, NULL, O_UDP},
        {"gateway", required_argument, NULL, O_GW},
        {"gw-pid", required_argument, NULL, O_PID},
        {"policy", required_argument, NULL, O_POLICY},
        {"print-policy", no_argument, NULL, O_PRINT},
        {"lua-dir", required_argument, NULL, O_LUA},
        {"gw-log", required_argument, NULL, O_LOG},
        {"gw-log-level", required_argument, NULL, O_LEVEL},
        {"port-offset", required_argument, NULL, O_OFFSET},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"drain", required_argument, NULL, O_DRAIN},
        {"error-grace", required_argument, NULL, O_GRACE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    *o = (struct bench_opts){
        .n = 10000, .window = 100, .late_ms = 10, .dirs = 3, .lua_dir = XS_LUA_DIR, .drain = 10};
    int c, n_given = 0;
    long v;
    while ((c = getopt_long(argc, argv, "n:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_long(optarg, 1, BENCH_MAX_N, &o->n) != 0)
                goto bad;
            n_given = 1;
            break;
        case 'r':
            if (parse_num(optarg, 0, BENCH_MAX_RATE, 0, &o->rate) != 0)
                goto bad;
            break;
        case O_DURATION:
            if (parse_num(optarg, 0, 3600, 0, &o->duration) != 0)
                goto bad;
            break;
        case O_LATE:
            if (parse_num(optarg, 0, 60000, 0, &o->late_ms) != 0)
                goto bad;
            break;
        case O_DIR:
            if (!strcmp(optarg, "both"))
                o->dirs = 3;
            else if (!strcmp(optarg, "xmpp-sip"))
                o->dirs = 1 << BENCH_X2S;
            else if (!strcmp(optarg, "sip-xmpp"))
                o->dirs = 1 << BENCH_S2X;
            else
                goto bad;
            break;
        case O_JSON:
            o->json = optarg;
            break;
        case O_NO_SM:
            o->no_sm = 1;
            break;
        case O_NO_RTX:
            o->no_sip_rtx = 1;
            break;
        case O_SIP_DELAY:
            if (parse_num(optarg, 0, 60000, 1, &o->sip_delay_ms) != 0)
                goto bad;
            break;
        case O_WINDOW:
            if (parse_long(optarg, 1, BENCH_MAX_WINDOW, &v) != 0)
                goto bad;
            o->window = (int)v;
            break;
        case O_TLS:
            o->tls = 1;
            break;
        case O_UDP:
            o->sip_udp = 1;
            break;
        case O_GW:
            o->gateway = optarg;
            break;
        case O_PID:
            if (parse_long(optarg, 1, 1L << 30, &v) != 0)
                goto bad;
            o->gw_pid = (int)v;
            break;
        case O_POLICY:
            o->policy = optarg;
            break;
        case O_PRINT:
            o->print_policy = 1;
            break;
        case O_LUA:
            o->lua_dir = optarg;
            break;
        case O_LOG:
            o->gw_log = optarg;
            break;
        case O_LEVEL:
            o->gw_log_level = optarg;
            break;
        case O_OFFSET:
            if (parse_long(optarg, -20000, 20000, &v) != 0)
                goto bad;
            o->port_offset = (int)v;
            o->fixed_ports = 1;
            break;
        case O_TIMEOUT:
            if (parse_num(optarg, 0, 36000, 0, &o->timeout) != 0)
                goto bad;
            break;
        case O_GRACE:
            if (parse_num(optarg, 0, 3600, 1, &o->error_grace) != 0)
                goto bad;
            o->error_grace_set = 1;
            break;
        case O_DRAIN:
            if (parse_num(optarg, 0, 3600, 0, &o->drain) != 0)
                goto bad;
            break;
        case 'h':
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "xsbench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->print_policy && !o->gateway == !o->gw_pid) {
        fprintf(stderr, "xsbench: give exactly one of --gateway PATH and --gw-pid PID\n");
        return -1;
    }
    if (o->rate > 0 && n_given) {
        fprintf(stderr, "xsbench: -n is for the closed loop; with --rate, give --duration\n");
        return -1;
    }
    if (o->duration > 0 && o->rate <= 0) {
        fprintf(stderr, "xsbench: --duration needs --rate\n");
        return -1;
    }
    if (o->rate > 0) {
        if (o->duration <= 0)
            o->duration = DEFAULT_DURATION;
        double n = ceil(o->rate * o->duration);
        if (n > (double)BENCH_MAX_N) {
            fprintf(stderr, "xsbench: rate x duration is over %ld messages\n", BENCH_MAX_N);
            return -1;
        }
        o->n = n < 1 ? 1 : (long)n;
    }
    /* A gateway the tool does not start, or a policy it does not write,
     * can only meet it on ports known in advance. */
    if (o->gw_pid || o->print_policy || o->policy)
        o->fixed_ports = 1;
    if (o->timeout <= 0) {
        int dirs = (o->dirs & 1) + (o->dirs >> 1 & 1);
        o->timeout = o->rate > 0 ? dirs * (o->duration + 1 + o->drain + 20) + 30 : 120;
    }
    return 0;
bad:
    fprintf(stderr, "xsbench: bad value '%s' for an option\n", optarg);
    return -1;
}
