/* The subscription store in Redis, shared by the gateway instances that
 * serve one SIP domain.
 *
 * Layout, under a prefix ("xsgw" unless the URL says otherwise):
 *   <p>:instances            set of the instance names that hold records
 *   <p>:hb:<instance>        the instance's heartbeat, a random token with a
 *                            lifetime (SET PX), refreshed every period
 *   <p>:idx:<instance>       set of the record ids the instance owns
 *   <p>:sub:<instance>:<id>  hash, one record: role, watcher, presentity,
 *                            state, call_id, ... as decimal or text fields;
 *                            a NULL string is an absent field
 *   <p>:adopted:<instance>   who adopted the instance's records, for a day
 * A record id is "<role>:<length of watcher>:<watcher>:<presentity>", which
 * no two keys share whatever their URIs hold.
 *
 * Writes go through hiredis's asynchronous context on the gateway's loop, so
 * Redis never stalls the traffic: a batch is MULTI ... EXEC pipelined, and
 * the commands waiting for an answer are bounded. Whatever the server
 * refuses or the connection loses is logged and counted, and after a
 * reconnect (or a loss) this instance's records are dropped and written
 * again by the user (the resync callback), since the store cannot tell
 * which writes arrived. load() runs once at start on a short-lived
 * synchronous connection with a timeout.
 *
 * Takeover: every period, one script run on the server looks for an
 * instance whose heartbeat has expired, and moves its records to this one;
 * being one script it runs atomically, so of several live instances exactly
 * one adopts a dead one's records. They are then read back asynchronously
 * and handed to the user's adopt callback. A deployment in Redis Cluster is
 * not supported: the scripts touch keys they compute.
 *
 * This file holds the connection, the batches and close; the URL and the
 * record codec are in sub_store_redis_rec.c, the synchronous start (check
 * and load) in sub_store_redis_sync.c, the takeover in
 * sub_store_redis_adopt.c. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/adapters/libuv.h>

#include "core/err.h"
#include "core/log.h"
#include "presence/sub_store_redis_int.h"

/* Drops this instance's records before they are written again; returns
 * the name of an instance that adopted them meanwhile, or nil. KEYS[1]:
 * this instance's index; ARGV: prefix, this instance. */
static const char resync_lua[] = "local p, me = ARGV[1], ARGV[2] "
                                 "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
                                 "  redis.call('DEL', p .. ':sub:' .. me .. ':' .. id) "
                                 "end "
                                 "redis.call('DEL', KEYS[1]) "
                                 "local by = redis.call('GET', p .. ':adopted:' .. me) "
                                 "if by then redis.call('DEL', p .. ':adopted:' .. me) end "
                                 "return by";

void xs__redis_set_error(struct redis_store *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->base.error, sizeof st->base.error, fmt, ap);
    va_end(ap);
}

/* ---- the asynchronous connection ---- */

static void start_connect(struct redis_store *st);
static void connect_ip(struct redis_store *st, const char *ip);
static void finish_close(struct redis_store *st);

static void on_retry(uv_timer_t *t)
{
    start_connect(t->data);
}

static void schedule_retry(struct redis_store *st)
{
    st->state = C_DOWN;
    if (st->closing)
        return;
    uv_timer_start(&st->retry, on_retry, st->backoff_ms, 0);
    st->backoff_ms = st->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : st->backoff_ms * 2;
}

/* hiredis's libuv adapter drops the poll errors libuv reports (a refused
 * or reset connection), so a connection can wait for ever: the heartbeat
 * gives up on one that has not connected, or not xs__redis_answered, in this long. */
#define STALL_MS 3000

void xs__redis_answered(struct redis_store *st)
{
    st->pending--;
    st->waiting_since = uv_now(st->loop);
}

/* Drops the connection (its unanswered commands count as lost) and tries
 * again later. */
static void drop_connection(struct redis_store *st, const char *why)
{
    redisAsyncContext *ac = st->ac;
    st->ac = NULL;
    st->state = C_DOWN;
    xs_log(XS_LOG_ERROR, "presence.store",
           "backend=redis url=%s result=%s retry_ms=%u reason=\"%s\"", st->url,
           st->ever_up ? "disconnected" : "unreachable", st->backoff_ms, why);
    /* Its callbacks run now with no answer; on_disconnect sees it is not
     * the store's connection any more. */
    redisAsyncFree(ac);
    st->need_resync = 1;
    schedule_retry(st);
}

/* Sends one command; force passes the bound (the closing words of a batch,
 * the heartbeat), so a batch begun always ends. */
static int issue(struct redis_store *st, redisCallbackFn *fn, void *priv, int force, int argc,
                 const char **argv, const size_t *lens)
{
    if (!st->ac || st->state == C_DOWN || st->state == C_RESOLVING) {
        xs__redis_set_error(st, "%s: not connected, reconnecting", st->url);
        return XS_EIO;
    }
    if (!force && st->pending >= PENDING_MAX) {
        xs__redis_set_error(st, "%s: %zu commands are waiting for the server, the queue is full",
                            st->url, st->pending);
        return XS_ELIMIT;
    }
    if (redisAsyncCommandArgv(st->ac, fn, priv, argc, argv, lens) != REDIS_OK) {
        xs__redis_set_error(st, "%s: the connection is closing", st->url);
        return XS_EIO;
    }
    if (st->pending++ == 0)
        st->waiting_since = uv_now(st->loop);
    return 0;
}

int xs__redis_issue_v(struct redis_store *st, redisCallbackFn *fn, void *priv, int force, int argc,
                      const char **argv)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return issue(st, fn, priv, force, argc, argv, lens);
}

/* An answer nobody waits for but the counters: an error is a write the
 * server refused, no answer at all one the connection lost. */
void xs__redis_on_cmd(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_store *st = ac->data;
    redisReply *r = reply;
    (void)priv;
    xs__redis_answered(st);
    if (!r) {
        st->lost++;
        if (!st->closing)
            st->need_resync = 1;
    } else if (r->type == REDIS_REPLY_ERROR) {
        st->failed++;
        st->need_resync = 1;
        /* One line a second: a server out of memory refuses every command
         * of every batch, and EXEC's line says the batch was lost. */
        uint64_t now = uv_now(st->loop);
        if (now - st->refused_logged_at >= 1000 || !st->refused_logged_at) {
            st->refused_logged_at = now;
            xs_log(XS_LOG_ERROR, "presence.store",
                   "backend=redis result=refused failed_total=%llu reason=\"%.200s\"", st->failed,
                   r->str);
        }
    }
}

/* EXEC's answer: the batch as a whole. Inside it, each command's own
 * answer; one error among them is a write the server refused. */
static void on_exec(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_store *st = ac->data;
    redisReply *r = reply;
    (void)priv;
    xs__redis_answered(st);
    if (!r) {
        st->lost++;
        if (!st->closing) {
            st->need_resync = 1;
            xs_log(XS_LOG_ERROR, "presence.store",
                   "backend=redis result=lost reason=\"the connection closed before the batch "
                   "was confirmed\"");
        }
        return;
    }
    const char *why = NULL;
    if (r->type == REDIS_REPLY_ERROR)
        why = r->str;
    else if (r->type != REDIS_REPLY_ARRAY)
        why = "the transaction was aborted";
    for (size_t i = 0; !why && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_ERROR)
            why = r->element[i]->str;
    if (why) {
        st->failed++;
        st->need_resync = 1;
        xs_log(XS_LOG_ERROR, "presence.store",
               "backend=redis result=failed reason=\"the server refused a batch: %.200s\"", why);
    }
}

/* Drops this instance's records and has the user write them again: queued
 * on the connection before any of those writes, so they land after it. */
static void resync(struct redis_store *st);

static void on_resync(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_store *st = ac->data;
    redisReply *r = reply;
    (void)priv;
    xs__redis_answered(st);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        st->need_resync = 1;
        if (r)
            st->failed++;
        else
            st->lost++;
        return;
    }
    if (r->type == REDIS_REPLY_STRING) {
        char by[160];
        xs_log(XS_LOG_WARN, "presence.store",
               "backend=redis instance=%s adopted_by=%s reason=\"our heartbeat lapsed while the "
               "server was out of reach and another instance adopted our subscriptions; both "
               "refresh them until one refresh fails\"",
               st->instance, xs_log_quote(by, sizeof by, r->str));
    }
}

static void resync(struct redis_store *st)
{
    char *idx = xs__redis_key(st, "idx", st->instance, NULL);
    if (!idx)
        return;
    const char *argv[] = {"EVAL", resync_lua, "1", idx, st->prefix, st->instance};
    int rc = xs__redis_issue_v(st, on_resync, NULL, 1, 6, argv);
    free(idx);
    if (rc)
        return;
    st->need_resync = 0;
    st->resyncs++;
    xs_log(XS_LOG_INFO, "presence.store",
           "backend=redis instance=%s result=resync reason=\"writes may have been lost: this "
           "instance's records are written again\"",
           st->instance);
    if (st->base.resync)
        st->base.resync(st->base.user_ud);
}

static void heartbeat(struct redis_store *st)
{
    char *hb = xs__redis_key(st, "hb", st->instance, NULL);
    char *set = xs__redis_instances_key(st);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", st->ttl_ms);
    if (hb && set) {
        const char *a1[] = {"SET", hb, st->token, "PX", ttl};
        const char *a2[] = {"SADD", set, st->instance};
        xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 5, a1);
        xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 3, a2);
    }
    free(hb);
    free(set);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_store *st = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns. */
        st->ac = NULL;
        xs_log(XS_LOG_ERROR, "presence.store",
               "backend=redis url=%s result=unreachable retry_ms=%u reason=\"%.200s\"", st->url,
               st->backoff_ms, ac->errstr);
        if (st->closing)
            finish_close(st);
        else
            schedule_retry(st);
        return;
    }
    st->state = C_UP;
    st->backoff_ms = BACKOFF_MIN_MS;
    if (st->ever_up) {
        st->reconnects++;
        xs_log(XS_LOG_INFO, "presence.store", "backend=redis url=%s result=reconnected", st->url);
    }
    st->ever_up = 1;
    if (st->need_resync)
        resync(st);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_store *st = ac->data;
    if (st->ac != ac)
        return;
    st->ac = NULL;
    st->state = C_DOWN;
    if (st->closing) {
        finish_close(st);
        return;
    }
    st->need_resync = 1;
    xs_log(XS_LOG_ERROR, "presence.store",
           "backend=redis url=%s result=disconnected retry_ms=%u reason=\"%.200s\"", st->url,
           st->backoff_ms, status == REDIS_OK ? "closed" : ac->errstr);
    schedule_retry(st);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct redis_store *st = req->data;
    st->resolving = 0;
    char ip[64] = "";
    if (status == 0 && res) {
        if (res->ai_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, ip, sizeof ip);
        else
            uv_ip4_name((struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
    }
    uv_freeaddrinfo(res);
    if (st->closing) {
        finish_close(st);
        return;
    }
    if (status != 0 || !ip[0]) {
        xs_log(XS_LOG_ERROR, "presence.store",
               "backend=redis url=%s result=unreachable retry_ms=%u reason=\"cannot resolve %s: "
               "%s\"",
               st->url, st->backoff_ms, st->host, status ? uv_strerror(status) : "no address");
        schedule_retry(st);
        return;
    }
    connect_ip(st, ip);
}

/* Starts the asynchronous connection to the address ip (a literal), and
 * queues what every connection begins with. */
static void connect_ip(struct redis_store *st, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, st->port);
    if (!ac || ac->err || redisLibuvAttach(ac, st->loop) != REDIS_OK) {
        xs_log(XS_LOG_ERROR, "presence.store",
               "backend=redis url=%s result=unreachable retry_ms=%u reason=\"%.200s\"", st->url,
               st->backoff_ms, ac && ac->err ? ac->errstr : "cannot set up the connection");
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(st);
        return;
    }
    ac->data = st;
    st->ac = ac;
    st->state = C_CONNECTING;
    st->connect_at = uv_now(st->loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Queued now, sent once connected, before anything else. */
    if (st->db) {
        char db[8];
        snprintf(db, sizeof db, "%d", st->db);
        const char *argv[] = {"SELECT", db};
        xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 2, argv);
    }
    heartbeat(st);
}

static void start_connect(struct redis_store *st)
{
    if (st->closing || st->state != C_DOWN)
        return;
    char port[8];
    snprintf(port, sizeof port, "%d", st->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    st->gai.data = st;
    st->state = C_RESOLVING;
    int rc = uv_getaddrinfo(st->loop, &st->gai, on_resolved, st->host, port, &hints);
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "presence.store",
               "backend=redis url=%s result=unreachable reason=\"cannot resolve %s: %s\"", st->url,
               st->host, uv_strerror(rc));
        schedule_retry(st);
        return;
    }
    st->resolving = 1;
}

static void on_heartbeat(uv_timer_t *t)
{
    struct redis_store *st = t->data;
    uint64_t now = uv_now(st->loop);
    if (st->state == C_CONNECTING && now - st->connect_at > STALL_MS) {
        drop_connection(st, "no connection after 3 s");
        return;
    }
    if (st->state == C_UP && st->pending && now - st->waiting_since > STALL_MS) {
        drop_connection(st, "no answer for 3 s");
        return;
    }
    if (st->state != C_UP)
        return;
    heartbeat(st);
    if (st->need_resync && st->pending < PENDING_MAX / 2)
        resync(st);
    xs__redis_adopt_poll(st);
}

/* ---- the operations ---- */

static int store_begin(struct xs_sub_store *s)
{
    struct redis_store *st = (struct redis_store *)s;
    if (st->in_batch || st->walking) {
        xs__redis_set_error(st, "%s: begin inside a batch or a load", st->url);
        return XS_ESTATE;
    }
    /* After a loss nothing is written until the resync that follows the
     * reconnection has dropped this instance's records: it would drop
     * those writes too. */
    if (st->need_resync && st->state != C_UP) {
        xs__redis_set_error(st, "%s: not connected, reconnecting", st->url);
        return XS_EIO;
    }
    const char *argv[] = {"MULTI"};
    int rc = xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 1, argv);
    if (rc)
        return rc;
    st->in_batch = 1;
    return 0;
}

static int store_commit(struct xs_sub_store *s)
{
    struct redis_store *st = (struct redis_store *)s;
    if (!st->in_batch) {
        xs__redis_set_error(st, "%s: commit without a batch", st->url);
        return XS_ESTATE;
    }
    st->in_batch = 0;
    const char *argv[] = {"EXEC"};
    int rc = xs__redis_issue_v(st, on_exec, NULL, 1, 1, argv);
    if (rc) {
        st->need_resync = 1;
        xs__redis_set_error(st, "%s: cannot commit a batch, its changes are lost: not connected",
                            st->url);
    }
    return rc;
}

/* Wraps a put or delete outside a batch in one of its own. */
static int single(struct redis_store *st, int (*op)(struct redis_store *, const void *),
                  const void *arg)
{
    if (st->in_batch)
        return op(st, arg);
    int rc = store_begin(&st->base);
    if (rc)
        return rc;
    rc = op(st, arg);
    if (rc) {
        char keep[sizeof st->base.error];
        memcpy(keep, st->base.error, sizeof keep);
        const char *argv[] = {"DISCARD"};
        xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 1, argv);
        st->in_batch = 0;
        memcpy(st->base.error, keep, sizeof keep);
        return rc;
    }
    return store_commit(&st->base);
}

static int do_put(struct redis_store *st, const void *arg)
{
    const struct xs_sub_record *r = arg;
    if (st->pending + 3 > PENDING_MAX) {
        st->need_resync = 1;
        xs__redis_set_error(st, "%s: %zu commands are waiting for the server, the queue is full",
                            st->url, st->pending);
        return XS_ELIMIT;
    }
    char *id = xs__redis_record_id(r->role, r->watcher, r->presentity);
    char *k = id ? xs__redis_key(st, "sub", st->instance, id) : NULL;
    char *idx = xs__redis_key(st, "idx", st->instance, NULL);
    int rc = XS_ENOMEM;
    if (!id || !k || !idx) {
        xs__redis_set_error(st, "%s: out of memory", st->url);
        goto out;
    }
    char role[4], state[4], lc[16], rcq[16], exp[24];
    snprintf(role, sizeof role, "%d", (int)r->role);
    snprintf(state, sizeof state, "%d", (int)r->state);
    snprintf(lc, sizeof lc, "%" PRIu32, r->local_cseq);
    snprintf(rcq, sizeof rcq, "%" PRIu32, r->remote_cseq);
    snprintf(exp, sizeof exp, "%" PRId64, r->expires_at);
    const char *argv[2 + 26];
    size_t lens[2 + 26];
    int n = 0;
    argv[n++] = "HSET";
    argv[n++] = k;
    const struct {
        const char *name, *v;
    } f[] = {
        {"role", role},
        {"state", state},
        {"watcher", r->watcher},
        {"presentity", r->presentity},
        {"call_id", r->call_id},
        {"local_tag", r->local_tag},
        {"remote_tag", r->remote_tag},
        {"remote_target", r->remote_target},
        {"route_set", r->route_set},
        {"local_cseq", lc},
        {"remote_cseq", rcq},
        {"expires_at", exp},
        {"last_pidf", r->last_pidf},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (!f[i].v)
            continue;
        argv[n++] = f[i].name;
        argv[n++] = f[i].v;
    }
    for (int i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    /* A replace clears what the new record does not have: DEL first. */
    const char *d[] = {"DEL", k};
    const char *a[] = {"SADD", idx, id};
    rc = xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 2, d);
    rc = rc ? rc : issue(st, xs__redis_on_cmd, NULL, 1, n, argv, lens);
    rc = rc ? rc : xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 3, a);
out:
    free(id);
    free(k);
    free(idx);
    return rc;
}

static int store_put(struct xs_sub_store *s, const struct xs_sub_record *r)
{
    struct redis_store *st = (struct redis_store *)s;
    if (st->walking) {
        xs__redis_set_error(st, "%s: put during a load", st->url);
        return XS_ESTATE;
    }
    char why[128];
    int rc = xs_sub_record_check(r, why, sizeof why);
    if (rc) {
        xs__redis_set_error(st, "%s: refused to store a subscription: %s", st->url, why);
        return rc;
    }
    return single(st, do_put, r);
}

struct del_args {
    enum xs_sub_role role;
    const char *watcher, *presentity;
};

static int do_del(struct redis_store *st, const void *arg)
{
    const struct del_args *d = arg;
    if (st->pending + 2 > PENDING_MAX) {
        st->need_resync = 1;
        xs__redis_set_error(st, "%s: %zu commands are waiting for the server, the queue is full",
                            st->url, st->pending);
        return XS_ELIMIT;
    }
    char *id = xs__redis_record_id(d->role, d->watcher, d->presentity);
    char *k = id ? xs__redis_key(st, "sub", st->instance, id) : NULL;
    char *idx = xs__redis_key(st, "idx", st->instance, NULL);
    int rc = XS_ENOMEM;
    if (id && k && idx) {
        const char *a1[] = {"DEL", k};
        const char *a2[] = {"SREM", idx, id};
        rc = xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 2, a1);
        rc = rc ? rc : xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 3, a2);
    } else {
        xs__redis_set_error(st, "%s: out of memory", st->url);
    }
    free(id);
    free(k);
    free(idx);
    return rc;
}

static int store_del(struct xs_sub_store *s, enum xs_sub_role role, const char *watcher,
                     const char *presentity)
{
    struct redis_store *st = (struct redis_store *)s;
    if (st->walking) {
        xs__redis_set_error(st, "%s: delete during a load", st->url);
        return XS_ESTATE;
    }
    if (!watcher || !presentity) {
        xs__redis_set_error(st, "%s: delete without a watcher or presentity", st->url);
        return XS_EINVAL;
    }
    struct del_args d = {role, watcher, presentity};
    return single(st, do_del, &d);
}

/* ---- close ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct redis_store *st = h->data;
    if (--st->handles_open == 0) {
        xs__redis_adoption_free(st->adopting);
        free(st);
    }
}

/* Frees the store once its connection and its resolution are gone. */
static void finish_close(struct redis_store *st)
{
    if (st->ac || st->resolving || st->finishing)
        return;
    st->finishing = 1;
    uv_close((uv_handle_t *)&st->hb, on_handle_closed);
    uv_close((uv_handle_t *)&st->retry, on_handle_closed);
    uv_close((uv_handle_t *)&st->close_wait, on_handle_closed);
}

static void on_close_wait(uv_timer_t *t)
{
    struct redis_store *st = t->data;
    if (st->ac) {
        xs_log(XS_LOG_WARN, "presence.store",
               "backend=redis url=%s result=closed pending=%zu reason=\"the server did not "
               "confirm the last writes in time\"",
               st->url, st->pending);
        redisAsyncContext *ac = st->ac;
        st->ac = NULL;
        redisAsyncFree(ac);
    }
    finish_close(st);
}

static void store_close(struct xs_sub_store *s)
{
    struct redis_store *st = (struct redis_store *)s;
    if (!st)
        return;
    if (st->in_batch) {
        const char *argv[] = {"DISCARD"};
        xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 1, argv);
        st->in_batch = 0;
    }
    /* Ending the heartbeat lets another instance adopt at its next period
     * rather than when the heartbeat would have run out. */
    if (st->ac) {
        char *hb = xs__redis_key(st, "hb", st->instance, NULL);
        if (hb) {
            const char *argv[] = {"DEL", hb};
            xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 2, argv);
        }
        free(hb);
    }
    st->closing = 1;
    uv_timer_stop(&st->hb);
    uv_timer_stop(&st->retry);
    if (st->resolving)
        uv_cancel((uv_req_t *)&st->gai);
    if (st->ac) {
        /* Sends what is queued and waits for the answers, within a bound;
         * on_disconnect then finishes. */
        redisAsyncDisconnect(st->ac);
        if (st->ac)
            uv_timer_start(&st->close_wait, on_close_wait, CLOSE_WAIT_MS, 0);
        return;
    }
    finish_close(st);
}

static const struct xs_sub_store_ops redis_ops = {
    .begin = store_begin,
    .commit = store_commit,
    .put = store_put,
    .del = store_del,
    .load = xs__redis_load,
    .close = store_close,
};

void xs_sub_store_redis_timing(struct xs_sub_store *s, unsigned period_ms, unsigned ttl_ms)
{
    struct redis_store *st = (struct redis_store *)s;
    st->period_ms = period_ms;
    st->ttl_ms = ttl_ms;
    uv_timer_start(&st->hb, on_heartbeat, period_ms, period_ms);
    if (st->ac)
        heartbeat(st);
}

void xs_sub_store_redis_stats(const struct xs_sub_store *s, struct xs_sub_store_redis_stats *out)
{
    const struct redis_store *st = (const struct redis_store *)s;
    *out = (struct xs_sub_store_redis_stats){
        .failed = st->failed,
        .lost = st->lost,
        .reconnects = st->reconnects,
        .adopted = st->adopted,
        .resyncs = st->resyncs,
        .pending = st->pending,
        .connected = st->state == C_UP,
    };
}

/* A token that tells this process's heartbeat from another's under the
 * same name. */
static void make_token(char out[33])
{
    unsigned char b[16];
    if (uv_random(NULL, NULL, b, sizeof b, 0, NULL) != 0) {
        uint64_t x = (uint64_t)getpid() * 0x9e3779b97f4a7c15u ^ (uint64_t)time(NULL);
        for (size_t i = 0; i < sizeof b; i++, x = x * 6364136223846793005u + 1)
            b[i] = (unsigned char)(x >> 56);
    }
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

int xs_sub_store_open_redis(uv_loop_t *loop, const char *url, const char *instance,
                            struct xs_sub_store **out, char *err, size_t errlen)
{
    *out = NULL;
    struct url_parts u;
    int rc = xs__redis_parse_url(url, &u, err, errlen);
    if (rc)
        return rc;
    if (!instance || !xs__redis_name_ok(instance, NAME_MAX_LEN)) {
        snprintf(err, errlen, "%s: the instance name must be 1 to %d of [A-Za-z0-9_.-]", url,
                 NAME_MAX_LEN);
        return XS_EINVAL;
    }
    struct redis_store *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "%s: out of memory", url);
        return XS_ENOMEM;
    }
    st->base.ops = &redis_ops;
    st->loop = loop;
    snprintf(st->url, sizeof st->url, "%s", url);
    memcpy(st->host, u.host, sizeof st->host);
    st->port = u.port;
    st->db = u.db;
    memcpy(st->prefix, u.prefix, sizeof st->prefix);
    snprintf(st->instance, sizeof st->instance, "%s", instance);
    st->period_ms = HB_PERIOD_MS;
    st->ttl_ms = HB_TTL_MS;
    st->backoff_ms = BACKOFF_MIN_MS;
    make_token(st->token);

    /* The server is checked once, synchronously, so a wrong URL or a server
     * that is down stops the start with the reason. */
    char ip[64] = "";
    rc = xs__redis_check_server(st, ip, sizeof ip, err, errlen);
    if (rc) {
        free(st);
        return rc;
    }
    uv_timer_init(loop, &st->hb);
    uv_timer_init(loop, &st->retry);
    uv_timer_init(loop, &st->close_wait);
    st->hb.data = st->retry.data = st->close_wait.data = st;
    st->handles_open = 3;
    uv_timer_start(&st->hb, on_heartbeat, st->period_ms, st->period_ms);
    if (ip[0])
        connect_ip(st, ip);
    else
        start_connect(st);
    *out = &st->base;
    return 0;
}
