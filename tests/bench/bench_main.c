/* xsbench: command line, the gateway process, and the run itself.
 *
 * A run is two phases, one per direction. XMPP->SIP starts once our own
 * stream to the gateway has passed dialback; SIP->XMPP once our SIP sender
 * is connected. In each, at most --window messages are unanswered at a
 * time; a phase ends when every message is accounted for, or when nothing
 * has moved for --drain seconds (what is missing then is lost). One overall
 * deadline bounds the whole run, and the tool stops, by its pid, only the
 * gateway it started. */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "core/err.h"

#ifndef XS_LUA_DIR
#define XS_LUA_DIR "lua"
#endif

#define TICK_MS 50
#define READY_TIMEOUT_NS (15ull * 1000000000ull)
#define KILL_GRACE_MS 5000
#define HWM_EVERY_TICKS 20

static uv_signal_t sig_int, sig_term;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: xsbench (--gateway PATH | --gw-pid PID) [options]\n"
            "\n"
            "  --gateway PATH     start this xsgw (and stop it at the end)\n"
            "  --gw-pid PID       measure an xsgw already running with --print-policy's policy\n"
            "  -n N               messages per direction (default 10000, at most %ld)\n"
            "  --window W         messages in flight at most (default 100)\n"
            "  --tls              STARTTLS on every XMPP stream (partner tls = \"required\")\n"
            "  --sip-udp          SIP over UDP both ways (default TCP)\n"
            "  --policy FILE      run the gateway with FILE as is (default: write one)\n"
            "  --print-policy     print the policy the tool would write, and exit\n"
            "  --lua-dir DIR      the gateway's Lua library (default " XS_LUA_DIR ")\n"
            "  --gw-log FILE      the started gateway's stderr (default /tmp/xsbench-PID-gw.log)\n"
            "  --gw-log-level L   --log-level for the started gateway\n"
            "  --port-offset K    add K to every port (25269, 25060, 25369, 25070)\n"
            "  --timeout S        bound on the whole run in seconds (default 120)\n"
            "  --drain S          give up a phase after S seconds without progress (default 10)\n"
            "  --error-grace S    xmpp.error_grace of the written policy (default 0)\n",
            BENCH_MAX_N);
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

static int parse_secs(const char *s, int allow_zero, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v <= 3600 && (v > 0 || (allow_zero && v == 0))))
        return -1;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct bench_opts *o)
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
        O_HELP
    };
    static const struct option opts[] = {
        {"window", required_argument, NULL, O_WINDOW},
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
        .n = 10000, .window = 100, .lua_dir = XS_LUA_DIR, .timeout = 120, .drain = 10};
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_long(optarg, 1, BENCH_MAX_N, &o->n) != 0)
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
            break;
        case O_TIMEOUT:
            if (parse_secs(optarg, 0, &o->timeout) != 0)
                goto bad;
            break;
        case O_GRACE:
            if (parse_secs(optarg, 1, &o->error_grace) != 0)
                goto bad;
            break;
        case O_DRAIN:
            if (parse_secs(optarg, 0, &o->drain) != 0)
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
    return 0;
bad:
    fprintf(stderr, "xsbench: bad value '%s' for an option\n", optarg);
    return -1;
}

static int format_policy(const struct bench *b, char *out, size_t cap)
{
    const char *hop = b->o.sip_udp ? "udp" : "tcp";
    int n =
        snprintf(out, cap,
                 "-- Written by xsbench: the gateway between the bench's XMPP server\n"
                 "-- \"" BENCH_DOMAIN "\" and its SIP next hop, all on loopback.\n"
                 "gateway {\n"
                 "  domains = { \"" BENCH_GW_DOMAIN "\" },\n"
                 "  xmpp = { listen = \"127.0.0.1:%d\", dialback_secret = \"" BENCH_SECRET "\",\n"
                 "           error_grace = %g },\n"
                 "  sip  = { listen = { \"udp:127.0.0.1:%d\", \"tcp:127.0.0.1:%d\" },\n"
                 "           next_hop = \"%s:127.0.0.1:%d\" },\n"
                 "}\n"
                 "partner \"" BENCH_DOMAIN "\" { tls = \"%s\", dialback = true, "
                 "route = \"127.0.0.1:%d\" }\n",
                 b->gw_xmpp_port, b->o.error_grace, b->gw_sip_port, b->gw_sip_port, hop,
                 b->hop_port, b->o.tls ? "required" : "optional", b->peer_port);
    return n > 0 && (size_t)n < cap ? n : -1;
}

static int write_policy(struct bench *b)
{
    char text[2048];
    int n = format_policy(b, text, sizeof text);
    snprintf(b->policy_path, sizeof b->policy_path, "/tmp/xsbench-%d.lua", (int)getpid());
    FILE *f = n > 0 ? fopen(b->policy_path, "w") : NULL;
    if (!f) {
        fprintf(stderr, "xsbench: cannot write %s\n", b->policy_path);
        return XS_EIO;
    }
    b->policy_written = 1;
    int ok = fwrite(text, 1, (size_t)n, f) == (size_t)n;
    if (fclose(f) != 0 || !ok) {
        fprintf(stderr, "xsbench: cannot write %s\n", b->policy_path);
        return XS_EIO;
    }
    return 0;
}

/* Takes the closing measurements of a phase: when it completes, gives up,
 * or is cut short by the end of the run. */
static void phase_close(struct bench *b, struct bench_phase *p, uint64_t now)
{
    if (p->finished)
        return;
    p->finished = 1;
    if (!p->t_end)
        p->t_end = now;
    if (b->gw_pid && bench_proc_cpu(b->gw_pid, &p->gw_ticks1) != 0)
        p->gw_cpu_known = 0;
    p->self_us1 = bench_self_cpu_us();
}

static void report(struct bench *b)
{
    for (int i = 0; i < 2; i++)
        if (b->ph[i].started)
            phase_close(b, &b->ph[i], uv_hrtime());
    int started = b->ph[0].started || b->ph[1].started;
    printf("xsbench: n=%ld window=%d xmpp=%s sip=%s gateway_pid=%d\n", b->o.n, b->o.window,
           b->o.tls ? "starttls" : "plain", b->o.sip_udp ? "udp" : "tcp", b->gw_pid);
    if (started)
        bench_phase_print_header();
    for (int i = 0; i < 2; i++)
        if (b->ph[i].started)
            bench_phase_print(&b->ph[i]);
    long hwm = b->gw_pid ? bench_proc_hwm_kb(b->gw_pid) : -1;
    if (hwm < b->gw_hwm_kb)
        hwm = b->gw_hwm_kb;
    if (hwm >= 0)
        printf("gateway peak RSS (VmHWM): %ld kB\n", hwm);
    else
        printf("gateway peak RSS (VmHWM): unknown\n");
    fflush(stdout);
    for (int i = 0; i < 2; i++) {
        const struct bench_phase *p = &b->ph[i];
        if (!p->started || p->arrived != p->n || p->errors)
            b->exit_code = 1;
    }
    if (b->failed)
        b->exit_code = 1;
    if (b->exit_code && b->proc_running)
        fprintf(stderr, "xsbench: the gateway's log is %s\n", b->log_path);
}

static void on_close_free_nothing(uv_handle_t *h)
{
    (void)h;
}

static void close_handle(uv_handle_t *h)
{
    if (h->type != UV_UNKNOWN_HANDLE && !uv_is_closing(h))
        uv_close(h, on_close_free_nothing);
}

static void on_kill_timer(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->proc_running) {
        fprintf(stderr, "xsbench: the gateway ignored SIGTERM; killing pid %d\n", b->gw_pid);
        uv_process_kill(&b->proc, SIGKILL);
    }
}

static void stop(struct bench *b)
{
    if (b->stopping)
        return;
    b->stopping = 1;
    bench_xmpp_close(b);
    bench_sip_close(b);
    close_handle((uv_handle_t *)&b->deadline);
    close_handle((uv_handle_t *)&b->tick);
    close_handle((uv_handle_t *)&b->retry);
    close_handle((uv_handle_t *)&sig_int);
    close_handle((uv_handle_t *)&sig_term);
    if (b->proc_running) {
        uv_process_kill(&b->proc, SIGTERM);
        uv_timer_start(&b->kill_timer, on_kill_timer, KILL_GRACE_MS, 0);
    } else {
        close_handle((uv_handle_t *)&b->kill_timer);
    }
}

static void finish(struct bench *b)
{
    if (b->stopping)
        return;
    report(b);
    stop(b);
}

void bench_fatal(struct bench *b, const char *fmt, ...)
{
    if (b->stopping)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("xsbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    b->failed = 1;
    finish(b);
}

static void phase_end(struct bench *b)
{
    uint64_t now = uv_hrtime();
    phase_close(b, &b->ph[b->cur], now);
    if (b->cur == BENCH_X2S) {
        b->cur = BENCH_S2X;
        b->ready_since = now;
        bench_sip_connect(b);
        return;
    }
    finish(b);
}

static void pump(struct bench *b)
{
    if (b->stopping || b->cur < 0)
        return;
    struct bench_phase *p = &b->ph[b->cur];
    if (!p->started || p->finished)
        return;
    while (p->sent < p->n && p->sent - p->done < b->o.window) {
        long seq = p->sent;
        uint64_t now = uv_hrtime();
        p->t_send[seq] = now;
        p->flags[seq] |= BM_SENT;
        int rc = b->cur == BENCH_X2S ? bench_xmpp_send(b, seq, now) : bench_sip_send(b, seq, now);
        if (rc == XS_EAGAIN) {
            p->flags[seq] = 0;
            bench_retry_later(b);
            return;
        }
        if (rc != 0) {
            bench_fatal(b, "%s: cannot send message %ld: %s", p->name, seq, xs_strerror(rc));
            return;
        }
        p->sent++;
        if (b->stopping)
            return;
    }
}

static void on_retry(uv_timer_t *t)
{
    pump(t->data);
}

void bench_retry_later(struct bench *b)
{
    if (!b->stopping && !uv_is_active((uv_handle_t *)&b->retry))
        uv_timer_start(&b->retry, on_retry, 1, 0);
}

static void phase_begin(struct bench *b, int i)
{
    struct bench_phase *p = &b->ph[i];
    if (b->stopping || p->started)
        return;
    b->cur = i;
    p->started = 1;
    p->gw_cpu_known = b->gw_pid && bench_proc_cpu(b->gw_pid, &p->gw_ticks0) == 0;
    p->self_us0 = bench_self_cpu_us();
    p->t_start = p->t_progress = uv_hrtime();
    pump(b);
}

void bench_xmpp_ready(struct bench *b)
{
    phase_begin(b, BENCH_X2S);
}

void bench_sip_ready(struct bench *b)
{
    phase_begin(b, BENCH_S2X);
}

/* A message is accounted for once it arrived (and, SIP->XMPP, was answered
 * 200), or once it failed. */
static void settle(struct bench *b, enum bench_dir d, long seq)
{
    struct bench_phase *p = &b->ph[d];
    if (seq < 0 || seq >= p->n)
        return;
    uint8_t f = p->flags[seq];
    if (!(f & BM_SENT) || (f & BM_DONE))
        return;
    int ok = d == BENCH_X2S ? (f & BM_ARRIVED) : (f & BM_ARRIVED) && (f & BM_ANSWERED);
    if (!ok && !(f & BM_ERROR))
        return;
    p->flags[seq] |= BM_DONE;
    p->done++;
    if (p->finished)
        return;
    p->t_end = uv_hrtime();
    if (p->done == p->n)
        phase_end(b);
    else if (b->cur == (int)d)
        pump(b);
}

void bench_arrived(struct bench *b, enum bench_dir d, long seq)
{
    if (b->stopping)
        return;
    if (bench_phase_mark(&b->ph[d], seq, BM_ARRIVED, uv_hrtime()))
        settle(b, d, seq);
}

void bench_answered(struct bench *b, enum bench_dir d, long seq, int status)
{
    if (b->stopping)
        return;
    if (status >= 200 && status < 300) {
        if (bench_phase_mark(&b->ph[d], seq, BM_ANSWERED, uv_hrtime()))
            settle(b, d, seq);
        return;
    }
    char what[48];
    snprintf(what, sizeof what, "SIP %d from the gateway", status);
    bench_msg_error(b, d, seq, what);
}

void bench_msg_error(struct bench *b, enum bench_dir d, long seq, const char *what)
{
    if (b->stopping)
        return;
    struct bench_phase *p = &b->ph[d];
    if (p->shown_errors < BENCH_ERRORS_SHOWN) {
        p->shown_errors++;
        fprintf(stderr, "xsbench: %s: message %ld: %s\n", p->name, seq, what);
    }
    if (bench_phase_mark(p, seq, BM_ERROR | BM_ANSWERED, uv_hrtime())) {
        settle(b, d, seq);
        return;
    }
    /* Not one of ours by number: still an error of the phase. */
    p->unexpected--;
    p->errors++;
}

/* The started gateway says when it listens; a running one is just tried. */
static int gateway_ready(struct bench *b)
{
    if (!b->o.gateway)
        return 1;
    FILE *f = fopen(b->log_path, "r");
    if (!f)
        return 0;
    char chunk[4096 + 32];
    size_t keep = 0;
    int found = 0;
    for (;;) {
        size_t n = fread(chunk + keep, 1, sizeof chunk - keep - 1, f);
        if (n == 0)
            break;
        n += keep;
        chunk[n] = '\0';
        if (strstr(chunk, "ev=gateway.ready")) {
            found = 1;
            break;
        }
        /* Keep a tail, so a marker split across two reads is still seen. */
        keep = n < 24 ? n : 24;
        memmove(chunk, chunk + n - keep, keep);
    }
    fclose(f);
    return found;
}

static void on_tick(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->stopping)
        return;
    uint64_t now = uv_hrtime();
    /* VmHWM only grows; sampled now and then so a gateway that dies
     * mid-run still has a figure. */
    if (b->gw_pid && ++b->ticks % HWM_EVERY_TICKS == 0) {
        long kb = bench_proc_hwm_kb(b->gw_pid);
        if (kb > b->gw_hwm_kb)
            b->gw_hwm_kb = kb;
    }
    if (!b->gw_ready) {
        if (gateway_ready(b)) {
            b->gw_ready = 1;
            b->ready_since = now;
            bench_xmpp_connect(b);
        } else if (now - b->ready_since > READY_TIMEOUT_NS) {
            bench_fatal(b, "the gateway did not log ev=gateway.ready in time (log: %s)",
                        b->log_path);
        }
        return;
    }
    if (b->cur < 0 || !b->ph[b->cur].started) {
        if (now - b->ready_since > READY_TIMEOUT_NS)
            bench_fatal(b, "%s: the streams were not set up in time",
                        b->cur < 0 ? "xmpp->sip" : b->ph[b->cur].name);
        return;
    }
    struct bench_phase *p = &b->ph[b->cur];
    if (p->started && !p->finished && (double)(now - p->t_progress) / 1e9 > b->o.drain) {
        fprintf(stderr, "xsbench: %s: no progress for %.1f s, %ld of %ld accounted for\n", p->name,
                b->o.drain, p->done, p->n);
        phase_end(b);
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct bench *b = t->data;
    bench_fatal(b, "the run took longer than %.0f s", b->o.timeout);
}

static void on_signal(uv_signal_t *h, int signum)
{
    bench_fatal(h->data, "interrupted by signal %d", signum);
}

static void on_gateway_exit(uv_process_t *proc, int64_t status, int term_signal)
{
    struct bench *b = proc->data;
    b->proc_running = 0;
    uv_timer_stop(&b->kill_timer);
    close_handle((uv_handle_t *)&b->kill_timer);
    close_handle((uv_handle_t *)proc);
    if (!b->stopping)
        bench_fatal(b, "the gateway exited (status %lld, signal %d); its log is %s",
                    (long long)status, term_signal, b->log_path);
}

static int spawn_gateway(struct bench *b)
{
    if (b->o.gw_log)
        snprintf(b->log_path, sizeof b->log_path, "%s", b->o.gw_log);
    else
        snprintf(b->log_path, sizeof b->log_path, "/tmp/xsbench-%d-gw.log", (int)getpid());
    int fd = open(b->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "xsbench: cannot open %s\n", b->log_path);
        return XS_EIO;
    }
    const char *policy = b->o.policy ? b->o.policy : b->policy_path;
    char *args[10];
    int k = 0;
    args[k++] = (char *)b->o.gateway;
    args[k++] = "--policy";
    args[k++] = (char *)policy;
    args[k++] = "--lua-dir";
    args[k++] = (char *)b->o.lua_dir;
    if (b->o.gw_log_level) {
        args[k++] = "--log-level";
        args[k++] = (char *)b->o.gw_log_level;
    }
    args[k] = NULL;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = fd},
        {.flags = UV_INHERIT_FD, .data.fd = fd},
    };
    uv_process_options_t po = {
        .exit_cb = on_gateway_exit,
        .file = b->o.gateway,
        .args = args,
        .stdio = stdio,
        .stdio_count = 3,
    };
    b->proc.data = b;
    int rc = uv_spawn(b->loop, &b->proc, &po);
    close(fd);
    if (rc != 0) {
        fprintf(stderr, "xsbench: cannot start %s: %s\n", b->o.gateway, uv_strerror(rc));
        return XS_EIO;
    }
    b->proc_running = 1;
    b->gw_pid = b->proc.pid;
    return 0;
}

static int setup(struct bench *b)
{
    int rc = bench_phase_init(&b->ph[BENCH_X2S], "xmpp->sip", b->o.n);
    if (rc == 0)
        rc = bench_phase_init(&b->ph[BENCH_S2X], "sip->xmpp", b->o.n);
    if (rc != 0) {
        fprintf(stderr, "xsbench: cannot allocate for %ld messages\n", b->o.n);
        return rc;
    }
    if (b->o.tls) {
        static const char *const names[] = {BENCH_DOMAIN};
        char err[256];
        rc = xs_tls_ctx_new(NULL, NULL, names, 1, &b->tls, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "xsbench: TLS: %s\n", err);
            return rc;
        }
    }
    if ((rc = bench_xmpp_listen(b)) != 0 || (rc = bench_sip_listen(b)) != 0)
        return rc;
    if (b->o.gateway) {
        if (!b->o.policy && (rc = write_policy(b)) != 0)
            return rc;
        if ((rc = spawn_gateway(b)) != 0)
            return rc;
    } else {
        b->gw_pid = b->o.gw_pid;
        if (kill(b->gw_pid, 0) != 0) {
            fprintf(stderr, "xsbench: no process %d\n", b->gw_pid);
            return XS_EINVAL;
        }
    }
    b->ready_since = uv_hrtime();
    uv_timer_start(&b->tick, on_tick, TICK_MS, TICK_MS);
    uv_timer_start(&b->deadline, on_deadline, (uint64_t)(b->o.timeout * 1000), 0);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    return 0;
}

int main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;
    if (parse_opts(argc, argv, &b->o) != 0)
        return 2;
    b->gw_xmpp_port = BENCH_GW_XMPP_PORT + b->o.port_offset;
    b->gw_sip_port = BENCH_GW_SIP_PORT + b->o.port_offset;
    b->peer_port = BENCH_PEER_PORT + b->o.port_offset;
    b->hop_port = BENCH_HOP_PORT + b->o.port_offset;
    if (b->o.print_policy) {
        char text[2048];
        if (format_policy(b, text, sizeof text) < 0)
            return 1;
        fputs(text, stdout);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    b->loop = uv_default_loop();
    b->cur = -1;
    b->gw_hwm_kb = -1;
    b->run_id = uv_hrtime() ^ ((uint64_t)getpid() << 32);
    uv_timer_init(b->loop, &b->deadline);
    uv_timer_init(b->loop, &b->tick);
    uv_timer_init(b->loop, &b->retry);
    uv_timer_init(b->loop, &b->kill_timer);
    uv_signal_init(b->loop, &sig_int);
    uv_signal_init(b->loop, &sig_term);
    b->deadline.data = b->tick.data = b->retry.data = b->kill_timer.data = b;
    sig_int.data = sig_term.data = b;
    if (setup(b) != 0) {
        b->failed = 1;
        b->exit_code = 1;
        stop(b);
    }
    uv_run(b->loop, UV_RUN_DEFAULT);
    uv_loop_close(b->loop);
    bench_xmpp_free(b);
    bench_sip_free(b);
    bench_phase_free(&b->ph[0]);
    bench_phase_free(&b->ph[1]);
    if (b->tls)
        xs_tls_ctx_unref(b->tls);
    if (b->policy_written)
        unlink(b->policy_path);
    return b->exit_code;
}
