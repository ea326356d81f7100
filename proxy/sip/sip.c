/* The SIP side: glue between the transports, the transactions and the
 * router. Everything it holds hangs off struct xs_sip, which is private to
 * this file: the transaction layer (sip_txn.h) is a part it embeds, and
 * calls back only through its on_idle hook. The only process-wide state it
 * touches is osip's parser table (see xs_sip_msg_global_init). */
#include "sip/sip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/random.h"
#include "sip/sip_acl.h"
#include "sip/sip_presence.h"
#include "sip/sip_txn.h"

struct xs_sip {
    uv_loop_t *loop;
    struct xs_sip_opts opts;
    struct xs_sip_tp *tp;
    struct xs__sip_txns txns;
    /* Presence subscriptions (sip_presence.h); NULL until
     * xs_sip_presence_start, and then SUBSCRIBE and NOTIFY get 503. */
    struct xs__sip_presence *presence;
    int presence_open; /* its timers are not closed yet */
    size_t max_message;
    size_t max_body; /* gateway.max_body: larger bodies get 413 (0: not checked here) */
    size_t udp_recv_buffer, udp_send_buffer; /* sip.udp_*_buffer (0: the system's) */
    char host[256]; /* our name for Warning agents and generated Call-IDs */
    char hop[256];  /* the next hop's host, for the OPTIONS ping's Request-URI */
    /* The listeners as started, to tell a reload that changes them. */
    struct xs_sip_endpoint *listen;
    size_t n_listen;
    /* The peers requests are accepted from (sip.trusted, or the next hop's
     * resolved addresses). NULL until the first resolution of the next hop
     * is done: requests are answered 503 meanwhile. */
    struct xs_sip_acl *trusted;
    unsigned trust_gen;             /* bumped by every reload: older lookups are stale */
    struct xs_sip_resolve *resolve; /* the newest next-hop lookup in flight */
    size_t resolving;               /* lookups whose callback is still due */
    /* Answers to untrusted sources, all together, in the current second:
     * a bound on what forged sources can make the gateway send anywhere. */
    uint64_t refuse_window;
    unsigned refusals;
    int closing;
    int tp_open;
    void (*on_closed)(void *ud);
    void *closed_ud;
};

static void maybe_closed(struct xs_sip *sip);

void xs_sip_default_opts(struct xs_sip_opts *o)
{
    o->t1_ms = 500;
    o->t2_ms = 4000;
    o->tcp_idle_ms = 300000;
    /* The policy's defaults (lua/xsgw/policy.lua says how they are sized). */
    o->max_server_txns = 65536;
    o->max_client_txns = 65536;
    o->pressure_high = 4096;
    o->max_tcp_conns = 256;
    /* Two requests of the largest allowed body (core/limits.h). */
    o->tcp_out_max = 2u * XS_MESSAGE_WIRE_MAX;
    o->max_stored_bytes = (size_t)512 << 20;
    o->tcp_connect_ms = 8000;
    o->tcp_first_idle_ms = 10000;
    o->max_tcp_per_source = 16;
}

/* The transports exempt trusted peers from the per-source TCP cap and the
 * first-message timeout. sip->trusted is replaced on reload, so they ask
 * through sip rather than hold the list. */
static int peer_trusted(void *ud, const struct sockaddr *sa)
{
    const struct xs_sip *sip = ud;
    return xs_sip_acl_allows(sip->trusted, sa);
}

static void limits_of(const struct xs_sip *sip, struct xs_sip_tp_limits *lim)
{
    /* Fields not named here stay off. */
    memset(lim, 0, sizeof *lim);
    lim->is_trusted = peer_trusted;
    lim->trusted_ud = (void *)sip;
    lim->max_message = sip->max_message;
    lim->max_conns = sip->opts.max_tcp_conns;
    lim->out_max = sip->opts.tcp_out_max;
    lim->idle_ms = sip->opts.tcp_idle_ms;
    lim->warn_host = sip->host;
    lim->connect_ms = sip->opts.tcp_connect_ms;
    lim->first_idle_ms = sip->opts.tcp_first_idle_ms;
    lim->max_per_source = sip->opts.max_tcp_per_source;
    lim->udp_recv_buffer = sip->udp_recv_buffer;
    lim->udp_send_buffer = sip->udp_send_buffer;
}

/* sip.tls and sip.keepalive for the transports (strings borrowed: the
 * transport copies them). We present the identity of our first domain. */
static void trust_limits(const struct xs_config *cfg, struct xs_sip_tp_limits *lim)
{
    lim->verify_ca = cfg->sip_tls_verify == XS_VERIFY_CA;
    lim->tls_name = cfg->sip_tls_name;
    lim->tls_peers = (const char *const *)cfg->sip_tls_peers;
    lim->n_tls_peers = cfg->n_sip_tls_peers;
    lim->local_name =
        cfg->n_domains && cfg->domains[0] && cfg->domains[0][0] ? cfg->domains[0] : NULL;
    lim->keepalive_ms = cfg->sip_keepalive > 0 ? (unsigned)(cfg->sip_keepalive * 1000) : 0;
    lim->pong_ms = 10000;
}

static void take_config(struct xs_sip *sip, const struct xs_config *cfg)
{
    /* 64 KiB is what one UDP datagram can carry; a policy that asks for
     * nothing gets that. */
    sip->max_message = cfg->sip_max_message ? cfg->sip_max_message : 65535;
    sip->txns.max_message = sip->max_message;
    /* 0 (a config not made by a policy) leaves the body size to the router. */
    sip->max_body = cfg->max_body;
    /* The transaction bounds change at once, for the transactions to come;
     * a config not made by a policy (0) leaves the start options. */
    if (cfg->sip_max_transactions)
        sip->opts.max_server_txns = sip->opts.max_client_txns = cfg->sip_max_transactions;
    if (cfg->sip_max_stored_bytes)
        sip->opts.max_stored_bytes = cfg->sip_max_stored_bytes;
    sip->udp_recv_buffer = cfg->sip_udp_recv_buffer;
    sip->udp_send_buffer = cfg->sip_udp_send_buffer;
    snprintf(sip->hop, sizeof sip->hop, "%s", cfg->sip_next_hop.host ? cfg->sip_next_hop.host : "");
    snprintf(sip->host, sizeof sip->host, "%s",
             cfg->n_domains && cfg->domains[0] && cfg->domains[0][0] ? cfg->domains[0] : "xsgw");
}

/* ---- trusted peers ---- */

struct xs_sip_resolve {
    uv_getaddrinfo_t req;
    struct xs_sip *sip;
    unsigned gen;
};

static void trust_set(struct xs_sip *sip, struct xs_sip_acl *acl, const char *what)
{
    xs_sip_acl_free(sip->trusted);
    sip->trusted = acl;
    xs_log(acl && xs_sip_acl_count(acl) ? XS_LOG_INFO : XS_LOG_WARN, "sip.trusted",
           "entries=%zu source=%s", xs_sip_acl_count(acl), what);
}

static void on_hop_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct xs_sip_resolve *r = req->data;
    struct xs_sip *sip = r->sip;
    sip->resolving--;
    if (sip->resolve == r)
        sip->resolve = NULL;
    if (r->gen == sip->trust_gen && !sip->closing) {
        struct xs_sip_acl *acl = xs_sip_acl_new();
        for (struct addrinfo *a = res; acl && status == 0 && a; a = a->ai_next)
            xs_sip_acl_add_addr(acl, a->ai_addr);
        if (status != 0)
            xs_log(XS_LOG_ERROR, "sip.trusted",
                   "result=failed reason=\"next hop does not resolve: %s; no SIP peer is trusted "
                   "until a reload\"",
                   uv_err_name(status));
        if (acl)
            trust_set(sip, acl, "next_hop");
    }
    uv_freeaddrinfo(res);
    free(r);
    maybe_closed(sip);
}

/* Looks the next hop up; its addresses become the trusted list when the
 * answer comes (the list in force stays until then). */
static void trust_resolve(struct xs_sip *sip, const char *host)
{
    struct xs_sip_resolve *r = calloc(1, sizeof *r);
    if (!r) {
        xs_log(XS_LOG_ERROR, "sip.trusted", "result=failed reason=%s", xs_errname(XS_ENOMEM));
        return;
    }
    r->sip = sip;
    r->gen = sip->trust_gen;
    r->req.data = r;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
    int rc = uv_getaddrinfo(sip->loop, &r->req, on_hop_resolved, host, NULL, &hints);
    if (rc != 0) {
        free(r);
        xs_log(XS_LOG_ERROR, "sip.trusted", "result=failed reason=%s", uv_err_name(rc));
        return;
    }
    sip->resolve = r;
    sip->resolving++;
}

/* Builds the trusted list from sip.trusted, or from the next hop when the
 * policy gives none: at once for an IP literal. Returns 0 when the list is
 * in force, 1 when the next hop's name must be looked up (trust_resolve),
 * or a negative XS_E* (the list in force is kept). */
static int trust_configure(struct xs_sip *sip, const struct xs_config *cfg)
{
    sip->trust_gen++;
    if (sip->resolve) {
        uv_cancel((uv_req_t *)&sip->resolve->req);
        sip->resolve = NULL;
    }
    struct xs_sip_acl *acl = xs_sip_acl_new();
    if (!acl)
        return XS_ENOMEM;
    const char *host = cfg->sip_next_hop.host;
    if (cfg->sip_trusted) {
        for (size_t i = 0; i < cfg->n_sip_trusted; i++) {
            int rc = xs_sip_acl_add(acl, cfg->sip_trusted[i]);
            if (rc != 0) {
                xs_log(XS_LOG_ERROR, "sip.trusted", "entry=\"%s\" result=failed reason=%s",
                       cfg->sip_trusted[i], xs_errname(rc));
                xs_sip_acl_free(acl);
                return rc;
            }
        }
        trust_set(sip, acl, "sip.trusted");
        return 0;
    }
    char lit[300];
    size_t hl = host ? strlen(host) : 0;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
        snprintf(lit, sizeof lit, "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(lit, sizeof lit, "%s", host ? host : "");
    if (!host || xs_sip_acl_add(acl, lit) == 0) {
        trust_set(sip, acl, host ? "next_hop" : "none");
        return 0;
    }
    xs_sip_acl_free(acl);
    return 1;
}

#define REFUSALS_PER_S 100

/* A request from a source that is not trusted: a terse 403 (503 while the
 * trusted list is still being resolved) built from the header section only,
 * so the answer is never much larger than the request (audit L3). Over UDP,
 * where the source may be forged, an absurd request gets nothing, and at most
 * REFUSALS_PER_S answers a second go out to untrusted sources in all. */
static void refuse_untrusted(struct xs_sip *sip, const struct xs_sip_peer *from, const char *data,
                             size_t len)
{
    int status = sip->trusted ? 403 : 503;
    if (xs__sip_log_ok(&sip->txns)) {
        xs_log(XS_LOG_WARN, "sip.refused",
               "transport=%s peer=%s status=%d reason=\"%s\" unlogged=%lu",
               xs_sip_tp_name(from->transport), from->desc, status,
               sip->trusted ? "source not trusted" : "trusted peers not resolved yet",
               sip->txns.unlogged);
        sip->txns.unlogged = 0;
    }
    uint64_t now = uv_now(sip->loop);
    if (now - sip->refuse_window >= 1000) {
        sip->refuse_window = now;
        sip->refusals = 0;
    }
    if (from->transport == XS_SIP_UDP && sip->refusals >= REFUSALS_PER_S)
        return;
    sip->refusals++;
    struct xs_sip_in in;
    xs_sip_in_parse_refused(data, len, &in);
    if (in.verdict == XS_SIP_ANSWER && !(in.absurd && from->transport == XS_SIP_UDP)) {
        struct xs_buf b;
        char tag[17];
        xs_random_hex(tag, 8);
        xs_buf_init(&b, len + 512);
        if (xs_sip_build_terse_response(in.msg, status, tag, !in.absurd, &b) == 0)
            xs_sip_tp_reply(sip->tp, from, b.data, b.len);
        xs_buf_free(&b);
    }
    xs_sip_in_clear(&in);
}

static int is_response(const char *data, size_t len)
{
    return len >= 4 && strncasecmp(data, "SIP/", 4) == 0;
}

static void on_message(void *ud, const struct xs_sip_peer *from, const char *data, size_t len,
                       int oversize)
{
    struct xs_sip *sip = ud;
    /* Responses are matched against our own random branches, so only
     * requests need a trusted source; the check comes before any parsing. */
    if (!is_response(data, len) &&
        !xs_sip_acl_allows(sip->trusted, (const struct sockaddr *)&from->addr)) {
        refuse_untrusted(sip, from, data, len);
        return;
    }
    struct xs_sip_in in;
    xs_sip_in_parse(data, len, oversize, &in);
    /* gateway.max_body limits the body the sender wrote (as converted to
     * UTF-8, which is what the router measures too): a size, answered 413
     * here before the policy sees it, not a refusal by policy (the router's
     * policy-violation, which would become 403). */
    if (in.verdict == XS_SIP_SUBMIT && sip->max_body && in.ev->body &&
        strlen(in.ev->body) > sip->max_body) {
        xs_event_free(in.ev);
        in.ev = NULL;
        in.verdict = XS_SIP_ANSWER;
        in.status = 413;
        in.why = "message body exceeds gateway.max_body";
    }
    if (in.ev)
        in.ev->auth = "trusted-source";
    switch (in.verdict) {
    case XS_SIP_DROP:
        xs_log(XS_LOG_WARN, "sip.drop", "transport=%s peer=%s bytes=%zu reason=\"%s\"",
               xs_sip_tp_name(from->transport), from->desc, len, in.why);
        break;
    case XS_SIP_RESPONSE:
        xs__sip_client_response(&sip->txns, &in);
        break;
    case XS_SIP_ACK:
    case XS_SIP_ANSWER:
    case XS_SIP_SUBMIT:
    case XS_SIP_DIALOG:
        xs__sip_server_request(&sip->txns, from, &in);
        break;
    }
    xs_sip_in_clear(&in);
}

static void on_next_hop(void *ud, int status)
{
    struct xs_sip *sip = ud;
    xs__sip_client_next_hop(&sip->txns, status);
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
    xs_sip_acl_free(sip->trusted);
    xs__sip_txns_free(&sip->txns);
    free_listen(sip->listen, sip->n_listen);
    free(sip);
}

/* The transaction layer's last timer has closed. */
static void on_txns_idle(void *ud)
{
    maybe_closed(ud);
}

int xs_sip_start_opts(uv_loop_t *loop, const struct xs_config *cfg, struct xs_tls_ctx *tls,
                      const struct xs_sip_opts *opts, xs_submit_fn submit, void *router,
                      struct xs_sip **out)
{
    *out = NULL;
    xs_sip_msg_global_init();
    struct xs_sip *sip = calloc(1, sizeof *sip);
    if (!sip)
        return XS_ENOMEM;
    sip->loop = loop;
    sip->opts = *opts;
    int rc = xs__sip_txns_init(&sip->txns, loop, &sip->opts, sip->host);
    sip->txns.submit = submit;
    sip->txns.router = router;
    sip->txns.on_idle = on_txns_idle;
    sip->txns.idle_ud = sip;
    take_config(sip, cfg);
    rc = rc ? rc : copy_listen(sip, cfg);
    int lookup = rc ? 0 : trust_configure(sip, cfg);
    if (lookup < 0)
        rc = lookup;
    if (rc != 0) {
        sip_free(sip);
        return rc;
    }
    struct xs_sip_tp_limits lim;
    limits_of(sip, &lim);
    trust_limits(cfg, &lim);
    lim.tls = tls;
    const struct xs_sip_tp_cbs cbs = {.message = on_message, .next_hop = on_next_hop};
    rc = xs_sip_tp_start(loop, cfg, &lim, &cbs, sip, &sip->tp);
    if (rc != 0) {
        /* The transport set frees itself from its close callbacks. */
        sip_free(sip);
        return rc;
    }
    sip->tp_open = 1;
    sip->txns.tp = sip->tp;
    if (lookup == 1)
        trust_resolve(sip, cfg->sip_next_hop.host);
    xs_log(XS_LOG_INFO, "sip.ready", "listeners=%zu next_hop=%s max_message=%zu", cfg->n_sip_listen,
           cfg->sip_next_hop.host ? cfg->sip_next_hop.host : "-", sip->max_message);
    *out = sip;
    return 0;
}

int xs_sip_start(uv_loop_t *loop, const struct xs_config *cfg, struct xs_tls_ctx *tls,
                 xs_submit_fn submit, void *router, struct xs_sip **out)
{
    struct xs_sip_opts opts;
    xs_sip_default_opts(&opts);
    return xs_sip_start_opts(loop, cfg, tls, &opts, submit, router, out);
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

int xs_sip_reconfigure(struct xs_sip *sip, const struct xs_config *cfg, struct xs_tls_ctx *tls)
{
    if (sip->closing)
        return XS_ESTATE;
    if (!same_listen(sip, cfg))
        xs_log(XS_LOG_WARN, "sip.reconfigure",
               "reason=\"SIP listeners changed: takes effect on restart\"");
    if (trust_configure(sip, cfg) == 1)
        trust_resolve(sip, cfg->sip_next_hop.host);
    take_config(sip, cfg);
    struct xs_sip_tp_limits lim;
    limits_of(sip, &lim);
    trust_limits(cfg, &lim);
    lim.tls = tls;
    xs_sip_tp_reconfigure(sip->tp, &lim, &cfg->sip_next_hop);
    if (sip->presence)
        xs__sip_presence_configure(sip->presence, cfg);
    return 0;
}

int xs_sip_presence_start(struct xs_sip *sip, const struct xs_config *cfg,
                          struct xs_sub_store *store)
{
    if (sip->presence || sip->closing) {
        if (store)
            store->ops->close(store);
        return XS_ESTATE;
    }
    int rc = xs__sip_presence_start(sip->loop, &sip->txns, cfg, store, &sip->presence);
    if (rc)
        return rc;
    sip->presence_open = 1;
    sip->txns.on_dialog = xs__sip_presence_request;
    sip->txns.dialog_ud = sip->presence;
    xs__sip_presence_restore(sip->presence);
    return 0;
}

size_t xs_sip_subscriptions(const struct xs_sip *sip, enum xs_sub_role role)
{
    return sip->presence ? xs__sip_presence_count(sip->presence, role) : 0;
}

void xs_sip_metrics(const struct xs_sip *sip)
{
    xs__sip_servers_metrics(&sip->txns);
    xs__sip_clients_metrics(&sip->txns);
    xs_metrics_collect_sip_txn_limit(0, sip->txns.opts->max_server_txns);
    xs_metrics_collect_sip_txn_limit(1, sip->txns.opts->max_client_txns);
    xs_metrics_collect_subscriptions(0, xs_sip_subscriptions(sip, XS_SUB_WATCH_SIP));
    xs_metrics_collect_subscriptions(1, xs_sip_subscriptions(sip, XS_SUB_WATCH_XMPP));
}

void xs_sip_deliver(void *impl, struct xs_event *ev, xs_done_cb done, void *ud)
{
    struct xs_sip *sip = impl;
    if (ev->kind == XS_EVENT_MESSAGE) {
        xs__sip_client_start(&sip->txns, ev, done, ud);
    } else if (sip->presence) {
        xs__sip_presence_deliver(sip->presence, ev, done, ud);
    } else {
        xs_event_free(ev);
        done(ud, XS_COND_SERVICE_UNAVAILABLE, "presence is not carried by this gateway");
    }
}

static void maybe_closed(struct xs_sip *sip)
{
    if (!sip->closing || sip->tp_open || sip->txns.open || sip->resolving || sip->presence_open)
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
    maybe_closed(sip);
}

void xs_sip_set_pressure(struct xs_sip *sip, void (*fn)(void *ud, int high), void *ud)
{
    sip->txns.on_pressure = fn;
    sip->txns.pressure_ud = ud;
}

void xs_sip_drain(struct xs_sip *sip)
{
    sip->txns.draining = 1;
    xs_sip_tp_stop_accepting(sip->tp);
}

static void on_presence_closed(void *ud)
{
    struct xs_sip *sip = ud;
    sip->presence_open = 0;
    maybe_closed(sip);
}

void xs_sip_close(struct xs_sip *sip, void (*on_closed)(void *ud), void *ud)
{
    if (sip->closing)
        return;
    sip->closing = 1;
    sip->on_closed = on_closed;
    sip->closed_ud = ud;
    xs_log(XS_LOG_INFO, "sip.closing", "server_txns=%zu client_txns=%zu records=%zu",
           xs__sip_txns_servers(&sip->txns), xs__sip_txns_clients(&sip->txns), sip->txns.n_records);
    /* Presence first: what it has not stored yet is written, and the
     * requests it has in flight then end with the transactions without
     * starting new ones. */
    if (sip->presence) {
        sip->txns.on_dialog = NULL;
        xs__sip_presence_close(sip->presence, on_presence_closed, sip);
        sip->presence = NULL;
    }
    /* Transactions next, while the transports can still carry the 503s. */
    xs__sip_txns_close(&sip->txns);
    if (sip->resolve)
        uv_cancel((uv_req_t *)&sip->resolve->req);
    xs_sip_tp_close(sip->tp, on_tp_closed, sip);
}

int xs_sip_port(const struct xs_sip *sip, size_t i)
{
    return xs_sip_tp_port(sip->tp, i);
}

/* ---- OPTIONS ping (xsgw validate) ---- */

struct ping {
    struct xs_sip *sip;
    xs_sip_ping_cb cb;
    void *ud;
};

static int build_ping(void *ud, const struct xs_sip_req_params *p, struct xs_buf *out)
{
    const struct ping *pg = ud;
    const char *hop = pg->sip->hop;
    int v6 = strchr(p->via_host, ':') != NULL, hop6 = strchr(hop, ':') != NULL;
    return xs_buf_printf(
        out,
        "OPTIONS sip:%s%s%s SIP/2.0\r\nVia: SIP/2.0/%s %s%s%s%d;branch=%s;rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:%s>;tag=%s\r\nTo: <sip:%s%s%s>\r\n"
        "Call-ID: %s\r\nCSeq: %u OPTIONS\r\nAccept: application/sdp\r\n"
        "Content-Length: 0\r\n\r\n",
        hop6 ? "[" : "", hop, hop6 ? "]" : "", p->transport, v6 ? "[" : "", p->via_host,
        v6 ? "]:" : ":", p->via_port, p->branch, pg->sip->host, p->from_tag, hop6 ? "[" : "", hop,
        hop6 ? "]" : "", p->call_id, (unsigned)p->cseq);
}

static void on_ping_final(void *ud, const osip_message_t *resp, enum xs_cond cond, const char *text)
{
    struct ping *pg = ud;
    int status;
    const char *reason;
    if (resp) {
        status = resp->status_code;
        reason = resp->reason_phrase ? resp->reason_phrase : "";
    } else {
        status = cond == XS_COND_REMOTE_SERVER_TIMEOUT ? 408 : 503;
        reason = text ? text : "";
    }
    struct xs_tls_peer peer;
    const char *desc = "";
    int tls = pg->sip->tp && xs_sip_tp_out_tls(pg->sip->tp, &peer, &desc) == 0;
    /* The admin listener's readiness checks ping every few seconds: a good
     * answer is routine, a bad one is news. */
    XS_LOG(status >= 200 && status < 300 ? XS_LOG_DEBUG : XS_LOG_WARN, "sip.ping",
           "status=%d tls=%s", status, tls ? desc : "none");
    pg->cb(pg->ud, status, reason, tls ? &peer : NULL, tls ? desc : "");
    free(pg);
}

static const struct xs__sip_req_ops ping_ops = {build_ping, on_ping_final};

int xs_sip_ping(struct xs_sip *sip, xs_sip_ping_cb cb, void *ud)
{
    if (sip->closing)
        return XS_ESTATE;
    if (!sip->hop[0])
        return XS_ENOTFOUND;
    struct ping *pg = malloc(sizeof *pg);
    if (!pg)
        return XS_ENOMEM;
    pg->sip = sip;
    pg->cb = cb;
    pg->ud = ud;
    xs__sip_client_request(&sip->txns, "OPTIONS", &ping_ops, pg);
    return 0;
}
