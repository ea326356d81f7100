/* The SIP side: glue between the transports, the transactions and the
 * router. Everything it holds hangs off struct xs_sip; the only process-wide
 * state it touches is osip's parser table (see xs_sip_msg_global_init). */
#include "sip/sip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "sip/sip_txn.h"

#define TABLE_BUCKETS 4096

void xs_sip_default_opts(struct xs_sip_opts *o)
{
    o->t1_ms = 500;
    o->t2_ms = 4000;
    o->t4_ms = 5000;
    o->tcp_idle_ms = 300000;
    o->max_server_txns = 16384;
    o->max_client_txns = 16384;
    o->max_tcp_conns = 256;
    o->tcp_out_max = 1u << 20;
    o->tcp_connect_ms = 8000;
    o->tcp_first_idle_ms = 10000;
    o->max_tcp_per_source = 16;
}

static void limits_of(const struct xs_sip *sip, struct xs_sip_tp_limits *lim)
{
    /* Fields not named here (the trusted-peer hook, say) stay off. */
    memset(lim, 0, sizeof *lim);
    lim->max_message = sip->max_message;
    lim->max_conns = sip->opts.max_tcp_conns;
    lim->out_max = sip->opts.tcp_out_max;
    lim->idle_ms = sip->opts.tcp_idle_ms;
    lim->warn_host = sip->host;
    lim->connect_ms = sip->opts.tcp_connect_ms;
    lim->first_idle_ms = sip->opts.tcp_first_idle_ms;
    lim->max_per_source = sip->opts.max_tcp_per_source;
}

static void take_config(struct xs_sip *sip, const struct xs_config *cfg)
{
    /* 64 KiB is what one UDP datagram can carry; a policy that asks for
     * nothing gets that. */
    sip->max_message = cfg->sip_max_message ? cfg->sip_max_message : 65535;
    snprintf(sip->host, sizeof sip->host, "%s",
             cfg->n_domains && cfg->domains[0] && cfg->domains[0][0] ? cfg->domains[0] : "xsgw");
}

static void on_message(void *ud, const struct xs_sip_peer *from, const char *data, size_t len,
                       int oversize)
{
    struct xs_sip *sip = ud;
    struct xs_sip_in in;
    xs_sip_in_parse(data, len, oversize, &in);
    switch (in.verdict) {
    case XS_SIP_DROP:
        xs_log(XS_LOG_WARN, "sip.drop", "transport=%s peer=%s bytes=%zu reason=\"%s\"",
               xs_sip_tp_name(from->transport), from->desc, len, in.why);
        break;
    case XS_SIP_RESPONSE:
        xs_sip_client_response(sip, &in);
        break;
    case XS_SIP_ACK:
    case XS_SIP_ANSWER:
    case XS_SIP_SUBMIT:
        xs_sip_server_request(sip, from, &in);
        break;
    }
    xs_sip_in_clear(&in);
}

static void on_next_hop(void *ud, int status)
{
    xs_sip_client_next_hop(ud, status);
}

static void free_listen(struct xs_sip_endpoint *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i].host);
    free(l);
}

static int copy_listen(struct xs_sip *sip, const struct xs_config *cfg)
{
    if (!cfg->n_sip_listen)
        return 0;
    sip->listen = calloc(cfg->n_sip_listen, sizeof *sip->listen);
    if (!sip->listen)
        return XS_ENOMEM;
    for (size_t i = 0; i < cfg->n_sip_listen; i++) {
        sip->listen[i] = cfg->sip_listen[i];
        sip->listen[i].host = cfg->sip_listen[i].host ? strdup(cfg->sip_listen[i].host) : NULL;
        sip->n_listen++;
        if (cfg->sip_listen[i].host && !sip->listen[i].host)
            return XS_ENOMEM;
    }
    return 0;
}

static void sip_free(struct xs_sip *sip)
{
    xs_sip_table_free(&sip->servers);
    xs_sip_table_free(&sip->clients);
    free_listen(sip->listen, sip->n_listen);
    free(sip);
}

int xs_sip_start_opts(uv_loop_t *loop, const struct xs_config *cfg, const struct xs_sip_opts *opts,
                      xs_submit_fn submit, void *router, struct xs_sip **out)
{
    *out = NULL;
    xs_sip_msg_global_init();
    struct xs_sip *sip = calloc(1, sizeof *sip);
    if (!sip)
        return XS_ENOMEM;
    sip->loop = loop;
    sip->opts = *opts;
    sip->submit = submit;
    sip->router = router;
    take_config(sip, cfg);
    int rc = xs_sip_table_init(&sip->servers, TABLE_BUCKETS);
    rc = rc ? rc : xs_sip_table_init(&sip->clients, TABLE_BUCKETS);
    rc = rc ? rc : copy_listen(sip, cfg);
    if (rc != 0) {
        sip_free(sip);
        return rc;
    }
    struct xs_sip_tp_limits lim;
    limits_of(sip, &lim);
    const struct xs_sip_tp_cbs cbs = {.message = on_message, .next_hop = on_next_hop};
    rc = xs_sip_tp_start(loop, cfg, &lim, &cbs, sip, &sip->tp);
    if (rc != 0) {
        /* The transport set frees itself from its close callbacks. */
        sip_free(sip);
        return rc;
    }
    sip->tp_open = 1;
    xs_log(XS_LOG_INFO, "sip.ready", "listeners=%zu next_hop=%s max_message=%zu", cfg->n_sip_listen,
           cfg->sip_next_hop.host ? cfg->sip_next_hop.host : "-", sip->max_message);
    *out = sip;
    return 0;
}

int xs_sip_start(uv_loop_t *loop, const struct xs_config *cfg, xs_submit_fn submit, void *router,
                 struct xs_sip **out)
{
    struct xs_sip_opts opts;
    xs_sip_default_opts(&opts);
    return xs_sip_start_opts(loop, cfg, &opts, submit, router, out);
}

static int same_listen(const struct xs_sip *sip, const struct xs_config *cfg)
{
    if (sip->n_listen != cfg->n_sip_listen)
        return 0;
    for (size_t i = 0; i < sip->n_listen; i++) {
        const struct xs_sip_endpoint *a = &sip->listen[i], *b = &cfg->sip_listen[i];
        if (a->transport != b->transport || a->port != b->port || !a->host != !b->host ||
            (a->host && strcmp(a->host, b->host) != 0))
            return 0;
    }
    return 1;
}

int xs_sip_reconfigure(struct xs_sip *sip, const struct xs_config *cfg)
{
    if (sip->closing)
        return XS_ESTATE;
    if (!same_listen(sip, cfg))
        xs_log(XS_LOG_WARN, "sip.reconfigure",
               "reason=\"SIP listeners changed: takes effect on restart\"");
    take_config(sip, cfg);
    struct xs_sip_tp_limits lim;
    limits_of(sip, &lim);
    xs_sip_tp_reconfigure(sip->tp, &lim, &cfg->sip_next_hop);
    return 0;
}

void xs_sip_deliver(void *impl, struct xs_event *ev, xs_done_cb done, void *ud)
{
    xs_sip_client_start(impl, ev, done, ud);
}

void xs_sip_maybe_closed(struct xs_sip *sip)
{
    if (!sip->closing || sip->tp_open || sip->timers_open)
        return;
    void (*cb)(void *) = sip->on_closed;
    void *ud = sip->closed_ud;
    sip_free(sip);
    if (cb)
        cb(ud);
}

static void on_tp_closed(void *ud)
{
    struct xs_sip *sip = ud;
    sip->tp_open = 0;
    xs_sip_maybe_closed(sip);
}

void xs_sip_close(struct xs_sip *sip, void (*on_closed)(void *ud), void *ud)
{
    if (sip->closing)
        return;
    sip->closing = 1;
    sip->on_closed = on_closed;
    sip->closed_ud = ud;
    xs_log(XS_LOG_INFO, "sip.closing", "server_txns=%zu client_txns=%zu", sip->servers.count,
           sip->clients.count);
    /* Transactions first, while the transports can still carry the 503s. */
    xs_sip_txn_close_all(sip);
    xs_sip_tp_close(sip->tp, on_tp_closed, sip);
}

int xs_sip_port(const struct xs_sip *sip, size_t i)
{
    return xs_sip_tp_port(sip->tp, i);
}
