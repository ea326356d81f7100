#include "gateway.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/md.h>

#include "admin/admin.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/dns.h"
#include "ops/watch.h"
#include "policy/policy.h"
#include "presence/sub_store.h"
#include "router.h"
#include "sip/sip.h"
#include "tls/tls.h"
#include "xmpp/dialback_key.h"
#include "xmpp/xmpp_side.h"

struct xs_gateway {
    uv_loop_t *loop;
    char *policy_path;
    char *lua_dir;
    struct xs_policy *policy;
    struct xs_tls_ctx *tls;
    /* Kept across reloads when the policy names none, so keys handed out
     * before a reload still verify after it. */
    char secret[65];
    struct xs_router router;
    struct xs_xmpp *xmpp;
    struct xs_sip *sip;
    struct xs_dns *dns; /* the loop's resolver, closed after both sides */
    struct xs_admin *admin; /* NULL when admin = false; closed last */
    /* The Redis store when presence uses one (owned by the SIP side, which
     * closes it), for its metrics; NULL otherwise. */
    const struct xs_sub_store *redis;
    struct xs_gateway_info info;
    struct xs_watch *watch; /* NULL when reload.watch = false */
    /* The drain (xs_gateway_stop): polled until nothing is in flight or
     * drain.deadline passes; the counters as they were when it began. */
    uv_timer_t drain;
    uint64_t drain_began, drain_deadline_ms;
    int drain_ended;
    unsigned long long drain_delivered, drain_bounced, drain_refused;
    int sides_open;
    void (*stopped)(void *ud);
    void *stopped_ud;
};

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* The TLS context for a policy generation: every certificate, key, CA bundle
 * and CRL file is read again, so a reload picks up renewed files under the
 * same names. */
int xs_gateway_make_tls(const struct xs_config *cfg, struct xs_tls_ctx **out)
{
    char err[512];
    size_t n = cfg->n_tls_certs;
    const char **certs = n ? calloc(n, sizeof *certs) : NULL;
    const char **keys = n ? calloc(n, sizeof *keys) : NULL;
    if (n && (!certs || !keys)) {
        free(certs);
        free(keys);
        return XS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        certs[i] = cfg->tls_certs[i].cert;
        keys[i] = cfg->tls_certs[i].key;
    }
    struct xs_tls_ctx_cfg tc = {
        .cert_path = cfg->tls_cert,
        .key_path = cfg->tls_key,
        .names = (const char *const *)cfg->domains,
        .n_names = cfg->n_domains,
        .extra_certs = certs,
        .extra_keys = keys,
        .n_extra = n,
        .ca_path = cfg->tls_ca,
        .crl_path = cfg->tls_crl,
    };
    int rc = xs_tls_ctx_new_cfg(&tc, out, err, sizeof err);
    free(certs);
    free(keys);
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "tls.config", "result=failed reason=\"%s\"", err);
        return rc;
    }
    xs_log(XS_LOG_INFO, "tls.config", "result=ok certificate=%s identities=%zu ca=%s crl=%s%s",
           cfg->tls_cert ? cfg->tls_cert : "self-signed", n + 1, cfg->tls_ca ? cfg->tls_ca : "none",
           cfg->tls_crl ? cfg->tls_crl : "none",
           cfg->tls_ca ? "" : " reason=\"no CA bundle: no peer certificate can be verified\"");
    return 0;
}

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The hex SHA-256 of the file at path, so an operator can tell which
 * version of a policy runs; "" when it cannot be read (the load that follows
 * reports why). */
static void file_sha256(const char *path, char out[65])
{
    out[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    mbedtls_md_context_t c;
    mbedtls_md_init(&c);
    unsigned char buf[8192], digest[32];
    size_t n;
    int ok = mbedtls_md_setup(&c, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 0) == 0 &&
             mbedtls_md_starts(&c) == 0;
    while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0)
        ok = mbedtls_md_update(&c, buf, n) == 0;
    ok = ok && !ferror(f) && mbedtls_md_finish(&c, digest) == 0;
    mbedtls_md_free(&c);
    fclose(f);
    if (!ok)
        return;
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

const struct xs_gateway_info *xs_gateway_info(const struct xs_gateway *gw)
{
    return &gw->info;
}

const struct xs_policy *xs_gateway_policy(const struct xs_gateway *gw)
{
    return gw->policy;
}

struct xs_xmpp *xs_gateway_xmpp(const struct xs_gateway *gw)
{
    return gw->xmpp;
}

struct xs_sip *xs_gateway_sip(const struct xs_gateway *gw)
{
    return gw->sip;
}

static const char *secret_of(const struct xs_gateway *gw, const struct xs_config *cfg)
{
    return cfg->dialback_secret && *cfg->dialback_secret ? cfg->dialback_secret : gw->secret;
}

/* A store shared with the other instances of the domain, in Redis; this
 * gateway's records there carry its name (gateway.instance, else the host
 * name). A server out of reach at start stops the start, as a refused file
 * does: the subscriptions of the last run are there. */
static int start_presence_redis(struct xs_gateway *gw, const struct xs_config *cfg)
{
    char host[256] = "";
    const char *instance = cfg->instance;
    if (!instance) {
        if (gethostname(host, sizeof host - 1) != 0 || !host[0])
            snprintf(host, sizeof host, "xsgw");
        instance = host;
    }
    struct xs_sub_store *store = NULL;
    char err[512];
    int rc = xs_sub_store_open_redis(gw->loop, cfg->presence_store, instance, &store, err,
                                     sizeof err);
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "presence.store", "url=%s instance=%s result=refused reason=\"%s\"",
               cfg->presence_store, instance, err);
        return rc;
    }
    xs_log(XS_LOG_INFO, "presence.store", "url=%s instance=%s result=open", cfg->presence_store,
           instance);
    rc = xs_sip_presence_start(gw->sip, cfg, store);
    if (rc == 0)
        gw->redis = store;
    return rc;
}

/* Opens the subscription store and starts presence on the SIP side. A
 * store that cannot be opened, or that is not one of ours, stops the start:
 * running on without it would lose every subscription at the next restart,
 * and a refused file is never overwritten. */
static int start_presence(struct xs_gateway *gw, const struct xs_config *cfg, const char *state_dir)
{
    if (!cfg->presence_enabled) {
        xs_log(XS_LOG_INFO, "presence.start", "result=off reason=\"presence.enabled = false\"");
        return 0;
    }
    char path[4096];
    if (cfg->presence_store && !strncmp(cfg->presence_store, "redis://", 8))
        return start_presence_redis(gw, cfg);
    if (cfg->presence_store) {
        snprintf(path, sizeof path, "%s", cfg->presence_store);
    } else {
        if (mkdir(state_dir, 0750) != 0 && errno != EEXIST) {
            xs_log(XS_LOG_ERROR, "presence.store", "path=%s result=failed reason=\"%s\"", state_dir,
                   strerror(errno));
            return XS_EIO;
        }
        snprintf(path, sizeof path, "%s/presence.db", state_dir);
    }
    struct xs_sub_store *store = NULL;
    char err[512];
    int rc = xs_sub_store_open_sqlite(path, &store, err, sizeof err);
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "presence.store", "path=%s result=refused reason=\"%s\"", path, err);
        return rc;
    }
    xs_log(XS_LOG_INFO, "presence.store", "path=%s result=open", path);
    return xs_sip_presence_start(gw->sip, cfg, store);
}

/* The gauges /metrics shows, read from the gateway's tables when it is
 * rendered (core/metrics.h): nothing is kept up to date for them between
 * scrapes. */
static void collect_metrics(void *ud)
{
    struct xs_gateway *gw = ud;
    const struct xs_gateway_info *i = &gw->info;
    xs_metrics_collect_policy(i->generation, i->reloads_ok, i->reloads_failed, i->last_good_at);
    xs_xmpp_metrics(gw->xmpp);
    xs_sip_metrics(gw->sip);
    if (gw->redis) {
        struct xs_sub_store_redis_stats rs;
        xs_sub_store_redis_stats(gw->redis, &rs);
        struct xs_metrics_store ms = {
            .connected = rs.connected,
            .pending = rs.pending,
            .failed = rs.failed,
            .lost = rs.lost,
            .reconnects = rs.reconnects,
            .resyncs = rs.resyncs,
            .adopted = rs.adopted,
        };
        xs_metrics_collect_store(&ms);
    }
}

static void watch_arm(struct xs_gateway *gw);

int xs_gateway_start(uv_loop_t *loop, const char *policy_path, const char *lua_dir,
                     const char *state_dir, struct xs_gateway **out)
{
    struct xs_gateway *gw = calloc(1, sizeof *gw);
    if (!gw)
        return XS_ENOMEM;
    gw->loop = loop;
    gw->policy_path = strdup(policy_path);
    gw->lua_dir = strdup(lua_dir);
    int rc = XS_ENOMEM;
    if (!gw->policy_path || !gw->lua_dir)
        goto fail;
    xs_dialback_random_secret(gw->secret);
    rc = xs_dns_new(loop, NULL, &gw->dns);
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "dns.start", "result=failed reason=\"%s\"", xs_strerror(rc));
        goto fail;
    }

    gw->info.policy_path = gw->policy_path;
    gw->info.last_reload_ok = -1;
    gw->info.started_at = now_unix();
    char sha[65];
    file_sha256(policy_path, sha);
    char err[512];
    rc = xs_policy_load(policy_path, lua_dir, &gw->policy, err, sizeof err);
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "policy.load", "path=%s result=rejected reason=\"%s\"", policy_path,
               err);
        goto fail;
    }
    const struct xs_config *cfg = xs_policy_config(gw->policy);
    xs_log_set_json(cfg->log_json);
    rc = xs_gateway_make_tls(cfg, &gw->tls);
    if (rc != 0)
        goto fail;
    xs_router_init(&gw->router, gw->policy);
    rc = xs_xmpp_start(loop, gw->policy, gw->tls, secret_of(gw, cfg), xs_router_submit, &gw->router,
                       &gw->xmpp);
    if (rc != 0)
        goto fail;
    rc = xs_sip_start(loop, cfg, gw->tls, xs_router_submit, &gw->router, &gw->sip);
    if (rc != 0)
        goto fail_xmpp;
    gw->router.sides[XS_SIDE_XMPP] = (struct xs_side){gw->xmpp, xs_xmpp_deliver};
    gw->router.sides[XS_SIDE_SIP] = (struct xs_side){gw->sip, xs_sip_deliver};
    gw->router.hold[XS_SIDE_XMPP] = xs_xmpp_hold_input;
    xs_sip_set_pressure(gw->sip, xs_router_sip_pressure, &gw->router);
    rc = start_presence(gw, cfg, state_dir);
    if (rc != 0) {
        /* As when the SIP side fails to start: the sides close and the
         * process, which cannot run without them, exits. */
        xs_sip_close(gw->sip, NULL, NULL);
        goto fail_xmpp;
    }
    if (cfg->admin_listen_host) {
        rc = xs_admin_start(loop, gw, cfg->admin_listen_host, cfg->admin_listen_port, &gw->admin);
        if (rc != 0) {
            xs_sip_close(gw->sip, NULL, NULL);
            goto fail_xmpp;
        }
    }
    gw->info.generation = 1;
    gw->info.last_good_at = gw->info.started_at;
    memcpy(gw->info.policy_sha256, sha, sizeof sha);
    xs_log(XS_LOG_INFO, "gateway.ready", "policy=%s generation=1 domains=%zu partners=%zu",
           policy_path, cfg->n_domains, cfg->n_partners);
    xs_metrics_set_start_time(gw->info.started_at);
    xs_metrics_set_collector(collect_metrics, gw);
    watch_arm(gw);
    *out = gw;
    return 0;

fail_xmpp:
    xs_xmpp_close(gw->xmpp, NULL, NULL);
fail:
    if (gw->dns)
        xs_dns_close(gw->dns, NULL, NULL);
    if (gw->tls)
        xs_tls_ctx_unref(gw->tls);
    if (gw->policy)
        xs_policy_free(gw->policy);
    free(gw->policy_path);
    free(gw->lua_dir);
    free(gw);
    return rc;
}

static int on_watched_change(void *ud, const char *changed)
{
    (void)changed;
    return xs_gateway_reload(ud);
}

/* Watches the running policy's file and the files it names (reload.watch),
 * or stops watching when it says not to. Called at start and after every
 * reload attempt: a new generation may name other files, and a refused one
 * leaves the running generation's set, so the next change retries. */
static void watch_arm(struct xs_gateway *gw)
{
    const struct xs_config *cfg = xs_policy_config(gw->policy);
    if (!cfg->reload_watch || gw->info.draining) {
        if (gw->watch) {
            xs_watch_close(gw->watch);
            gw->watch = NULL;
            xs_log(XS_LOG_INFO, "policy.watch", "result=off");
        }
        return;
    }
    if (!gw->watch && xs_watch_new(gw->loop, on_watched_change, gw, &gw->watch) != 0)
        return;
    const char **paths = calloc(6 + 2 * cfg->n_tls_certs, sizeof *paths);
    if (!paths)
        return;
    size_t n = 0;
    paths[n++] = gw->policy_path;
    paths[n++] = cfg->tls_cert;
    paths[n++] = cfg->tls_key;
    paths[n++] = cfg->tls_ca;
    paths[n++] = cfg->tls_crl;
    for (size_t i = 0; i < cfg->n_tls_certs; i++) {
        paths[n++] = cfg->tls_certs[i].cert;
        paths[n++] = cfg->tls_certs[i].key;
    }
    xs_watch_set(gw->watch, paths, n, cfg->reload_debounce);
    free(paths);
}

/* Counts a refused reload and keeps its reason for the status page. */
static int reload_refused(struct xs_gateway *gw, int rc, const char *reason)
{
    gw->info.last_reload_ok = 0;
    gw->info.reloads_failed++;
    snprintf(gw->info.last_reload_error, sizeof gw->info.last_reload_error, "%s", reason);
    return rc;
}

static int reload(struct xs_gateway *gw)
{
    char err[512];
    char sha[65];
    struct xs_policy *next = NULL;
    gw->info.last_reload_at = now_unix();
    file_sha256(gw->policy_path, sha);
    int rc = xs_policy_load(gw->policy_path, gw->lua_dir, &next, err, sizeof err);
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "policy.reload",
               "path=%s result=rejected generation=%d reason=\"%s\" kept=previous", gw->policy_path,
               gw->info.generation, err);
        return reload_refused(gw, rc, err);
    }
    const struct xs_config *old = xs_policy_config(gw->policy);
    const struct xs_config *cfg = xs_policy_config(next);
    struct xs_tls_ctx *tls = gw->tls;
    /* Files are read again on every reload (renewed under the same names);
     * only a generated certificate with nothing else configured is kept, so
     * that peers which pinned it keep seeing the same one. */
    if (cfg->tls_cert || cfg->tls_ca || cfg->n_tls_certs || old->tls_cert || old->tls_ca ||
        old->n_tls_certs) {
        rc = xs_gateway_make_tls(cfg, &tls);
        if (rc != 0) {
            xs_log(XS_LOG_ERROR, "policy.reload",
                   "path=%s result=rejected generation=%d reason=\"TLS certificate, key, CA or "
                   "CRL unusable (see tls.config)\" kept=previous",
                   gw->policy_path, gw->info.generation);
            xs_policy_free(next);
            return reload_refused(gw, rc,
                                  "TLS certificate, key, CA or CRL unusable (see tls.config)");
        }
    }
    if (old->presence_enabled != cfg->presence_enabled ||
        !same(old->presence_store, cfg->presence_store) || !same(old->instance, cfg->instance))
        xs_log(XS_LOG_WARN, "policy.reload",
               "reason=\"presence.enabled, presence.store or gateway.instance changed: requests follow it at once, "
               "the store and the subscriptions held change on restart\"");
    if (!same(old->admin_listen_host, cfg->admin_listen_host) ||
        old->admin_listen_port != cfg->admin_listen_port)
        xs_log(XS_LOG_WARN, "policy.reload",
               "reason=\"admin.listen changed: takes effect on restart\"");
    if (!same(secret_of(gw, old), secret_of(gw, cfg)))
        xs_log(XS_LOG_WARN, "policy.reload",
               "reason=\"dialback secret changed: takes effect on restart\"");
    struct xs_policy *prev = gw->policy;
    gw->policy = next;
    xs_log_set_json(cfg->log_json);
    gw->info.generation++;
    xs_router_set_policy(&gw->router, next);
    xs_sip_reconfigure(gw->sip, cfg, tls);
    xs_xmpp_set_policy(gw->xmpp, next, tls);
    if (tls != gw->tls) {
        xs_tls_ctx_unref(gw->tls);
        gw->tls = tls;
    }
    xs_policy_free(prev);
    gw->info.last_reload_ok = 1;
    gw->info.last_reload_error[0] = '\0';
    gw->info.reloads_ok++;
    gw->info.last_good_at = gw->info.last_reload_at;
    memcpy(gw->info.policy_sha256, sha, sizeof sha);
    xs_log(XS_LOG_INFO, "policy.reload", "path=%s result=ok generation=%d domains=%zu partners=%zu",
           gw->policy_path, gw->info.generation, cfg->n_domains, cfg->n_partners);
    return 0;
}

int xs_gateway_reload(struct xs_gateway *gw)
{
    int rc = reload(gw);
    watch_arm(gw);
    return rc;
}

static void finish_stop(void *ud)
{
    struct xs_gateway *gw = ud;
    void (*cb)(void *) = gw->stopped;
    void *cb_ud = gw->stopped_ud;
    if (gw->router.in_flight > 0) {
        /* A side broke its promise that nothing it was handed completes
         * after its close. A late done() would write into the router, so the
         * gateway is kept (leaked) rather than freed under it. */
        xs_log(XS_LOG_ERROR, "gateway.stopped", "result=leaked routes_in_flight=%llu",
               gw->router.in_flight);
        assert(gw->router.in_flight == 0);
        if (cb)
            cb(cb_ud);
        return;
    }
    xs_router_clear(&gw->router);
    xs_tls_ctx_unref(gw->tls);
    xs_policy_free(gw->policy);
    free(gw->policy_path);
    free(gw->lua_dir);
    xs_log(XS_LOG_INFO, "gateway.stopped",
           "routed=%llu refused=%llu bounced=%llu routes_in_flight=0", gw->router.routed,
           gw->router.refused, gw->router.bounced);
    free(gw);
    if (cb)
        cb(cb_ud);
}

/* The admin listener goes last, so that /readyz says "draining" for as
 * long as the sides take to close. */
static void on_side_closed(void *ud)
{
    struct xs_gateway *gw = ud;
    if (--gw->sides_open > 0)
        return;
    xs_dns_close(gw->dns, NULL, NULL);
    if (gw->admin)
        xs_admin_close(gw->admin, finish_stop, gw);
    else
        finish_stop(gw);
}

static void on_drain_closed(uv_handle_t *h)
{
    on_side_closed(h->data);
}

/* The end of the drain, on time or at the deadline: the sides close, which
 * answers whatever is left (queued stanzas bounce with service-unavailable,
 * SIP senders get 503) and ends every stream with system-shutdown. */
static void drain_end(struct xs_gateway *gw, const char *result)
{
    if (gw->drain_ended)
        return;
    gw->drain_ended = 1;
    uv_timer_stop(&gw->drain);
    unsigned long long left = gw->router.in_flight;
    size_t queued = xs_xmpp_pending(gw->xmpp);
    double took = (double)(uv_now(gw->loop) - gw->drain_began) / 1000.0;
    /* SIP first: the requests it still waits on fail, and their XMPP
     * senders' errors go out on streams that are still open; the SIP
     * requests still waiting on XMPP are answered 503 by the same close
     * (their late outcomes from XMPP's close are then ignored). The timer
     * counts as a third part, so the gateway outlives its close callback. */
    gw->sides_open = 3;
    uv_close((uv_handle_t *)&gw->drain, on_drain_closed);
    xs_sip_close(gw->sip, on_side_closed, gw);
    xs_xmpp_close(gw->xmpp, on_side_closed, gw);
    /* Both closes have answered everything they held by now (their
     * lifetime rule), so the counts are final. */
    xs_log(strcmp(result, "done") ? XS_LOG_WARN : XS_LOG_INFO, "gateway.drain",
           "result=%s delivered=%llu bounced=%llu answered=%llu left_at_end=%llu queued_at_end=%zu "
           "seconds=%.3f",
           result, gw->router.delivered - gw->drain_delivered,
           gw->router.bounced - gw->drain_bounced, gw->router.refused - gw->drain_refused, left,
           queued, took);
}

static void on_drain_tick(uv_timer_t *t)
{
    struct xs_gateway *gw = t->data;
    int idle = gw->router.in_flight == 0 && xs_xmpp_pending(gw->xmpp) == 0;
    int late = uv_now(gw->loop) - gw->drain_began >= gw->drain_deadline_ms;
    if (idle || late)
        drain_end(gw, idle ? "done" : "deadline");
}

void xs_gateway_stop_now(struct xs_gateway *gw)
{
    if (!gw->info.draining || gw->drain_ended)
        return;
    drain_end(gw, "cut");
}

/* How often the drain looks whether anything is still in flight. */
#define XS_DRAIN_POLL_MS 20

void xs_gateway_stop(struct xs_gateway *gw, void (*done)(void *ud), void *ud)
{
    gw->stopped = done;
    gw->stopped_ud = ud;
    gw->info.draining = 1;
    /* The sides are freed as they close; a scrape from now on shows the
     * counters without the gauges read from them. */
    xs_metrics_set_collector(NULL, NULL);
    xs_log(XS_LOG_INFO, "gateway.stopping", "generation=%d", gw->info.generation);
    watch_arm(gw);
    /* New work first: no new stream or connection is accepted, and every
     * new message or request on the ones there are is answered at once
     * (service-unavailable; SIP 503 with Retry-After, so the edge retries
     * elsewhere or later). What is in flight meanwhile finishes. */
    gw->router.draining = 1;
    xs_sip_drain(gw->sip);
    xs_xmpp_drain(gw->xmpp);
    const struct xs_config *cfg = xs_policy_config(gw->policy);
    gw->drain_began = uv_now(gw->loop);
    gw->drain_deadline_ms = cfg->drain_deadline > 0 ? (uint64_t)(cfg->drain_deadline * 1000.0) : 0;
    gw->drain_delivered = gw->router.delivered;
    gw->drain_bounced = gw->router.bounced;
    gw->drain_refused = gw->router.refused;
    /* Subscriptions are not ended: ending them would make every watcher
     * subscribe again through the edge at once; kept in the store, the
     * restarted instance (or another sharing the store) refreshes them. */
    xs_log(XS_LOG_INFO, "gateway.drain",
           "result=started deadline=%.3f in_flight=%llu queued=%zu subscriptions=kept "
           "reason=\"subscriptions stay in the store for the next start to restore and "
           "refresh\"",
           cfg->drain_deadline, gw->router.in_flight, xs_xmpp_pending(gw->xmpp));
    uv_timer_init(gw->loop, &gw->drain);
    gw->drain.data = gw;
    uv_timer_start(&gw->drain, on_drain_tick, 0, XS_DRAIN_POLL_MS);
}
