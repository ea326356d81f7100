/* `xsgw validate`: starts the XMPP and SIP sides the way the gateway does
 * (the same policy, TLS context, resolver and code paths), runs the probes
 * (xs_xmpp_probe, xs_sip_ping) through validate/run.c and prints the
 * diagnosis. Nothing it receives is carried: the sides' submit refuses every
 * event. */
#include "validate/command.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "core/err.h"
#include "core/log.h"
#include "gateway.h"
#include "net/dns.h"
#include "policy/policy.h"
#include "sip/sip.h"
#include "tls/tls.h"
#include "validate/run.h"
#include "validate/validate.h"
#include "xmpp/dialback_key.h"
#include "xmpp/xmpp_side.h"

#define MAX_SUBJECTS 256

struct command {
    struct xs_xmpp *xmpp;
    struct xs_sip *sip;
    struct xs_dns *dns;
    struct xs_validate_run *run;
    int open; /* sides still closing */
    int status;
};

static void refuse(void *router, struct xs_event *ev, xs_done_cb done, void *done_ud)
{
    (void)router;
    xs_event_free(ev);
    done(done_ud, XS_COND_SERVICE_UNAVAILABLE, "xsgw validate carries nothing");
}

static int probe(void *xmpp, const char *local, const char *remote, xs_probe_cb cb, void *ud)
{
    return xs_xmpp_probe(xmpp, local, remote, cb, ud);
}

static int ping(void *sip, xs_sip_ping_cb cb, void *ud)
{
    return xs_sip_ping(sip, cb, ud);
}

static void side_closed(void *ud)
{
    struct command *c = ud;
    if (--c->open > 0)
        return;
    /* No probe can report any more: the run and the resolver go. */
    xs_validate_run_free(c->run);
    c->run = NULL;
    xs_dns_close(c->dns, NULL, NULL);
}

static void finished(void *ud, int status)
{
    struct command *c = ud;
    c->status = status;
    c->open = 1 + (c->sip != NULL);
    xs_xmpp_close(c->xmpp, side_closed, c);
    if (c->sip)
        xs_sip_close(c->sip, side_closed, c);
}

/* 1 when something listens on host:port already (the running gateway). */
static int port_taken(const char *host, int port)
{
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
        return 0;
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    socklen_t len =
        ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int taken = bind(fd, (struct sockaddr *)&ss, len) != 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

int xs_validate_command(int argc, char **argv, const char *default_policy,
                        const char *default_lua_dir)
{
    struct xs_validate_args args;
    if (xs_validate_parse(argc, argv, &args, stderr) != 0)
        return XS_VALIDATE_USAGE;
    const char *policy_path = args.policy ? args.policy : default_policy;
    const char *lua_dir = args.lua_dir ? args.lua_dir : default_lua_dir;
    char err[512];
    struct xs_policy *policy = NULL;
    if (xs_policy_load(policy_path, lua_dir, &policy, err, sizeof err) != 0) {
        fprintf(stderr, "xsgw validate: %s\n", err);
        return XS_VALIDATE_USAGE;
    }
    const char *subjects[MAX_SUBJECTS];
    size_t n = 0;
    if (xs_validate_subjects(&args, policy, subjects, MAX_SUBJECTS, &n, stderr) != 0 || n == 0) {
        if (n == 0)
            fprintf(stderr, "xsgw validate: nothing to validate (no SIP next hop, no partner)\n");
        xs_policy_free(policy);
        return XS_VALIDATE_USAGE;
    }
    /* The probes use the gateway's own configuration, except where they
     * would collide with a gateway running here: its listeners. The XMPP
     * listener stays for peers verifying our dialback keys when its port is
     * free; when it is taken, the running gateway answers them, which works
     * when both derive their keys from the same dialback_secret. The
     * validation's own listeners then take ports nobody is pointed at. The
     * SIP side only sends (OPTIONS), so its listeners always do. */
    struct xs_config *cfg = (struct xs_config *)xs_policy_config(policy);
    int listen_port = cfg->xmpp_listen_port;
    int taken = port_taken(cfg->xmpp_listen_host, listen_port);
    if (taken)
        cfg->xmpp_listen_port = 0;
    if (cfg->xmpp_listen_tls_host)
        cfg->xmpp_listen_tls_port = 0;
    for (size_t i = 0; i < cfg->n_sip_listen; i++)
        cfg->sip_listen[i].port = 0;

    signal(SIGPIPE, SIG_IGN);
    /* The report is the output; the sides' own lines only when they warn. */
    xs_log_set_level(XS_LOG_WARN);
    uv_loop_t *loop = uv_default_loop();
    struct command c = {.status = XS_VALIDATE_FAIL};
    struct xs_tls_ctx *tls = NULL;
    char secret[65];
    xs_dialback_random_secret(secret);
    int rc = xs_dns_new(loop, NULL, &c.dns);
    if (rc == 0)
        rc = xs_gateway_make_tls(cfg, &tls);
    if (rc == 0)
        rc = xs_xmpp_start(loop, policy, tls,
                           cfg->dialback_secret && *cfg->dialback_secret ? cfg->dialback_secret
                                                                         : secret,
                           refuse, NULL, &c.xmpp);
    if (rc == 0 && cfg->sip_next_hop.host)
        rc = xs_sip_start(loop, cfg, tls, refuse, NULL, &c.sip);
    /* The report names the port the operator configured. */
    cfg->xmpp_listen_port = listen_port;
    struct xs_validate_target t = {
        .cfg = cfg,
        .local = cfg->domains[0],
        .ours = "",
        .listener_taken = taken,
        .xmpp = c.xmpp,
        .xmpp_probe = probe,
        .sip = c.sip,
        .sip_ping = ping,
    };
    if (rc == 0)
        rc = xs_validate_run_start(loop, &t, subjects, n, args.json, stdout, finished, &c, &c.run);
    if (rc != 0) {
        fprintf(stderr, "xsgw validate: could not start: %s\n", xs_strerror(rc));
        if (c.sip)
            xs_sip_close(c.sip, NULL, NULL);
        if (c.xmpp)
            xs_xmpp_close(c.xmpp, NULL, NULL);
        if (c.dns)
            xs_dns_close(c.dns, NULL, NULL);
        c.status = XS_VALIDATE_USAGE;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    xs_tls_ctx_unref(tls);
    xs_policy_free(policy);
    return c.status;
}
