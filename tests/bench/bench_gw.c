/* The gateway under test: its ports, the policy the tool writes for it, the
 * process when the tool starts it, and its log, read for readiness.
 *
 * The tool's own listeners bind port 0 and keep their sockets, so they can
 * never collide. The gateway's listeners must be named in its policy, and
 * it binds them itself: the tool picks ports below the kernel's ephemeral
 * range (where no outbound connection takes one), at random, checks that
 * TCP and UDP are both free, and if another process still wins the race
 * before the gateway binds, starts the gateway again on new ones. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bench_gw.h"
#include "core/err.h"

#define KILL_GRACE_MS 5000
#define SPAWNS_MAX 5
#define PORT_LOW 10000

static int port_free(int port)
{
    static const int kinds[] = {SOCK_STREAM, SOCK_DGRAM};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        int fd = socket(AF_INET, kinds[i] | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return 0;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (!ok)
            return 0;
    }
    return 1;
}

/* The first port of net.ipv4.ip_local_port_range, 32768 if unreadable. */
static int ephemeral_low(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    int lo = 32768;
    if (f) {
        if (fscanf(f, "%d", &lo) != 1)
            lo = 32768;
        fclose(f);
    }
    return lo > PORT_LOW + 1000 ? lo : 32768;
}

static int pick_port(int avoid)
{
    int hi = ephemeral_low();
    for (int tries = 0; tries < 1000; tries++) {
        int port = PORT_LOW + (int)(random() % (hi - PORT_LOW));
        if (port != avoid && port_free(port))
            return port;
    }
    return -1;
}

static int pick_gateway_ports(struct bench *b)
{
    b->gw_xmpp_port = pick_port(-1);
    b->gw_sip_port = b->gw_xmpp_port > 0 ? pick_port(b->gw_xmpp_port) : -1;
    do
        b->gw_admin_port = b->gw_sip_port > 0 ? pick_port(b->gw_sip_port) : -1;
    while (b->gw_admin_port == b->gw_xmpp_port);
    if (b->gw_sip_port < 0 || b->gw_admin_port < 0) {
        fprintf(stderr, "xsbench: no free port found for the gateway\n");
        return XS_EIO;
    }
    return 0;
}

int bench_gw_format_policy(const struct bench *b, char *out, size_t cap)
{
    const char *hop = b->o.sip_udp ? "udp" : "tcp";
    char grace[48] = "";
    if (b->o.error_grace_set)
        snprintf(grace, sizeof grace, ",\n           error_grace = %g", b->o.error_grace);
    char admin[64] = "";
    if (!b->gw_no_admin)
        snprintf(admin, sizeof admin, "  admin = { listen = \"127.0.0.1:%d\" },\n",
                 b->gw_admin_port);
    int n = snprintf(out, cap,
                     "-- Written by xsbench: the gateway between the bench's XMPP server\n"
                     "-- \"" BENCH_DOMAIN "\" and its SIP next hop, all on loopback.\n"
                     "gateway {\n%s"
                     "  domains = { \"" BENCH_GW_DOMAIN "\" },\n"
                     "  xmpp = { listen = \"127.0.0.1:%d\", dialback_secret = \"" BENCH_SECRET
                     "\"%s },\n"
                     "  sip  = { listen = { \"udp:127.0.0.1:%d\", \"tcp:127.0.0.1:%d\" },\n"
                     "           next_hop = \"%s:127.0.0.1:%d\" },\n"
                     "}\n"
                     "partner \"" BENCH_DOMAIN "\" { tls = \"%s\", dialback = true, "
                     "route = \"127.0.0.1:%d\" }\n",
                     admin, b->gw_xmpp_port, grace, b->gw_sip_port, b->gw_sip_port, hop,
                     b->o.sip_udp ? b->hop_udp_port : b->hop_tcp_port,
                     b->o.tls ? "required" : "optional", b->peer_port);
    return n > 0 && (size_t)n < cap ? n : -1;
}

/* Whether the gateway to start accepts the policy at path (xsgw --check). */
static int gateway_accepts(const struct bench *b, const char *path)
{
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execl(b->o.gateway, b->o.gateway, "--check", path, "--lua-dir", b->o.lua_dir,
              (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int write_policy_once(struct bench *b);

/* A gateway from before the admin listener refuses the key: the policy is
 * written again without it. */
static int write_policy(struct bench *b)
{
    int rc = write_policy_once(b);
    if (rc == 0 && !b->gw_no_admin && b->o.gateway && b->o.lua_dir &&
        !gateway_accepts(b, b->policy_path)) {
        b->gw_no_admin = 1;
        rc = write_policy_once(b);
    }
    return rc;
}

static int write_policy_once(struct bench *b)
{
    char text[2048];
    int n = bench_gw_format_policy(b, text, sizeof text);
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

/* Whether the started gateway's log holds needle. A gateway the tool did
 * not start is taken as ready. */
static int log_has(const struct bench *b, const char *needle)
{
    FILE *f = fopen(b->log_path, "r");
    if (!f)
        return 0;
    char chunk[4096 + 64];
    size_t keep = 0, nl = strlen(needle);
    int found = 0;
    for (;;) {
        size_t n = fread(chunk + keep, 1, sizeof chunk - keep - 1, f);
        if (n == 0)
            break;
        n += keep;
        chunk[n] = '\0';
        if (strstr(chunk, needle)) {
            found = 1;
            break;
        }
        /* Keep a tail, so a needle split across two reads is still seen. */
        keep = n < nl ? n : nl;
        memmove(chunk, chunk + n - keep, keep);
    }
    fclose(f);
    return found;
}

int bench_gw_ready(const struct bench *b)
{
    return !b->o.gateway || log_has(b, "ev=gateway.ready");
}

static int spawn(struct bench *b);

static void on_kill_timer(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->proc_running) {
        fprintf(stderr, "xsbench: the gateway ignored SIGTERM; killing pid %d\n", b->gw_pid);
        uv_process_kill(&b->proc, SIGKILL);
    }
}

static void on_close_nothing(uv_handle_t *h)
{
    (void)h;
}

/* The handle is free to reuse only here, once libuv let go of it. */
static void on_proc_closed(uv_handle_t *h)
{
    struct bench *b = h->data;
    if (!b->respawn || b->stopping)
        return;
    b->respawn = 0;
    b->ready_since = uv_hrtime();
    if (pick_gateway_ports(b) != 0 || write_policy(b) != 0 || spawn(b) != 0)
        bench_fatal(b, "cannot start the gateway again");
}

static void on_gateway_exit(uv_process_t *proc, int64_t status, int term_signal)
{
    struct bench *b = proc->data;
    b->proc_running = 0;
    uv_timer_stop(&b->kill_timer);
    uv_close((uv_handle_t *)proc, on_proc_closed);
    if (b->stopping) {
        if (!uv_is_closing((uv_handle_t *)&b->kill_timer))
            uv_close((uv_handle_t *)&b->kill_timer, on_close_nothing);
        return;
    }
    /* Another process took a port between our check and the gateway's bind:
     * start it again, on other ports, once the handle is closed. */
    if (!b->gw_ready && !b->o.policy && b->spawns < SPAWNS_MAX &&
        log_has(b, "address already in use")) {
        fprintf(stderr, "xsbench: a gateway port was taken; starting it again on others\n");
        b->gw_pid = 0;
        b->respawn = 1;
        return;
    }
    bench_fatal(b, "the gateway exited (status %lld, signal %d); its log is %s", (long long)status,
                term_signal, b->log_path);
}

static int spawn(struct bench *b)
{
    int fd = open(b->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "xsbench: cannot open %s: %s\n", b->log_path, strerror(errno));
        return XS_EIO;
    }
    const char *policy = b->o.policy ? b->o.policy : b->policy_path;
    char *args[12];
    int k = 0;
    char state[600];
    /* Its own state directory, next to its log: a bench run never restores
     * another run's subscriptions. */
    snprintf(state, sizeof state, "%s.state", b->log_path);
    args[k++] = (char *)b->o.gateway;
    args[k++] = "--state-dir";
    args[k++] = state;
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
    memset(&b->proc, 0, sizeof b->proc);
    b->proc.data = b;
    int rc = uv_spawn(b->loop, &b->proc, &po);
    close(fd);
    if (rc != 0) {
        fprintf(stderr, "xsbench: cannot start %s: %s\n", b->o.gateway, uv_strerror(rc));
        return XS_EIO;
    }
    b->spawns++;
    b->proc_running = 1;
    b->gw_pid = b->proc.pid;
    return 0;
}

int bench_gw_start(struct bench *b)
{
    if (b->o.fixed_ports) {
        b->gw_xmpp_port = BENCH_GW_XMPP_PORT + b->o.port_offset;
        b->gw_sip_port = BENCH_GW_SIP_PORT + b->o.port_offset;
        b->gw_admin_port = BENCH_GW_ADMIN_PORT + b->o.port_offset;
    } else {
        srandom((unsigned)(uv_hrtime() ^ (uint64_t)getpid()));
        if (pick_gateway_ports(b) != 0)
            return XS_EIO;
    }
    if (!b->o.gateway) {
        b->gw_pid = b->o.gw_pid;
        if (kill(b->gw_pid, 0) != 0) {
            fprintf(stderr, "xsbench: no process %d\n", b->gw_pid);
            return XS_EINVAL;
        }
        return 0;
    }
    if (b->o.gw_log)
        snprintf(b->log_path, sizeof b->log_path, "%s", b->o.gw_log);
    else
        snprintf(b->log_path, sizeof b->log_path, "/tmp/xsbench-%d-gw.log", (int)getpid());
    int rc = b->o.policy ? 0 : write_policy(b);
    return rc ? rc : spawn(b);
}

void bench_gw_stop(struct bench *b)
{
    if (b->proc_running) {
        uv_process_kill(&b->proc, SIGTERM);
        uv_timer_start(&b->kill_timer, on_kill_timer, KILL_GRACE_MS, 0);
    } else if (!uv_is_closing((uv_handle_t *)&b->kill_timer)) {
        uv_close((uv_handle_t *)&b->kill_timer, on_close_nothing);
    }
}

void bench_gw_cleanup(struct bench *b)
{
    if (b->policy_written)
        unlink(b->policy_path);
}
