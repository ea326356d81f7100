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
 * not supported: the scripts touch keys they compute. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/log.h"
#include "presence/sub_store.h"

#define HB_PERIOD_MS 2000
#define HB_TTL_MS 10000
/* Commands sent and not yet answered: a batch of the SIP side's largest
 * (4096 puts, three commands each) fits several times over; beyond it a
 * put fails and the records are written again once the queue drains. */
#define PENDING_MAX 65536
/* Connect and command timeout of the synchronous connection used at start. */
#define SYNC_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* How long close waits for the queued writes before it drops them. */
#define CLOSE_WAIT_MS 2000
/* Records one instance may own: more is not a store this gateway wrote. */
#define LOAD_MAX 1000000
/* Records read per round trip at load, and in flight during an adoption. */
#define LOAD_CHUNK 256
#define ADOPT_WINDOW 64
#define ADOPTED_TTL_MS 86400000
#define NAME_MAX_LEN 128
#define PREFIX_MAX_LEN 64
#define HOST_MAX_LEN 253

/* The adoption script (see the top of the file). KEYS[1]: the set of
 * instances; ARGV: prefix, this instance, the tombstone's lifetime.
 * Returns {dead instance, {ids}} or nil. */
static const char adopt_lua[] =
    "local p, me = ARGV[1], ARGV[2] "
    "for _, a in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  if a ~= me and redis.call('EXISTS', p .. ':hb:' .. a) == 0 then "
    "    local moved = {} "
    "    for _, id in ipairs(redis.call('SMEMBERS', p .. ':idx:' .. a)) do "
    "      local from, to = p .. ':sub:' .. a .. ':' .. id, p .. ':sub:' .. me .. ':' .. id "
    "      if redis.call('EXISTS', from) == 1 then "
    "        if redis.call('EXISTS', to) == 0 then "
    "          redis.call('RENAME', from, to) "
    "          redis.call('SADD', p .. ':idx:' .. me, id) "
    "          moved[#moved + 1] = id "
    "        else redis.call('DEL', from) end "
    "      end "
    "    end "
    "    redis.call('DEL', p .. ':idx:' .. a) "
    "    redis.call('SREM', KEYS[1], a) "
    "    redis.call('SET', p .. ':adopted:' .. a, me, 'PX', ARGV[3]) "
    "    return {a, moved} "
    "  end "
    "end "
    "return false";

/* Drops this instance's records before they are written again; returns
 * the name of an instance that adopted them meanwhile, or nil. KEYS[1]:
 * this instance's index; ARGV: prefix, this instance. */
static const char resync_lua[] =
    "local p, me = ARGV[1], ARGV[2] "
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  redis.call('DEL', p .. ':sub:' .. me .. ':' .. id) "
    "end "
    "redis.call('DEL', KEYS[1]) "
    "local by = redis.call('GET', p .. ':adopted:' .. me) "
    "if by then redis.call('DEL', p .. ':adopted:' .. me) end "
    "return by";

enum conn_state { C_DOWN, C_RESOLVING, C_CONNECTING, C_UP };

/* A record with its strings, owned. */
struct owned {
    struct xs_sub_record r;
    char *mem;
};

/* The records being read back after an adoption. */
struct adoption {
    char *from;
    char **ids;
    size_t n, next, done, ok, refused;
};

struct redis_store {
    struct xs_sub_store base; /* first: the interface's pointer is ours */
    uv_loop_t *loop;
    char url[512];
    char host[HOST_MAX_LEN + 1];
    int port, db;
    char prefix[PREFIX_MAX_LEN + 1];
    char instance[NAME_MAX_LEN + 1];
    char token[33];
    redisAsyncContext *ac;
    enum conn_state state;
    uv_getaddrinfo_t gai;
    int resolving;
    uv_timer_t hb, retry, close_wait;
    int handles_open;
    unsigned backoff_ms, period_ms, ttl_ms;
    int in_batch, walking, closing, finishing, need_resync, ever_up;
    size_t pending;
    struct adoption *adopting;
    unsigned long long failed, lost, reconnects, adopted, resyncs;
};

static void set_error(struct redis_store *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(struct redis_store *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->base.error, sizeof st->base.error, fmt, ap);
    va_end(ap);
}

/* ---- the URL and the names ---- */

static int name_ok(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return 0;
    return 1;
}

/* Digits only, no sign, no leading zero (but "0"), at most max. */
static int parse_small(const char *s, size_t len, long max, long *out)
{
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

struct url_parts {
    char host[HOST_MAX_LEN + 1];
    int port, db;
    char prefix[PREFIX_MAX_LEN + 1];
};

static int parse_url(const char *url, struct url_parts *u, char *err, size_t errlen)
{
    static const char scheme[] = "redis://";
    const char *grammar = "redis://host:port[/db][?prefix=name]";
    memset(u, 0, sizeof *u);
    snprintf(u->prefix, sizeof u->prefix, "xsgw");
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
        snprintf(err, errlen, "presence.store: a Redis store is %s", grammar);
        return XS_EINVAL;
    }
    const char *p = url + sizeof scheme - 1;
    size_t authority = strcspn(p, "/?");
    if (memchr(p, '@', authority)) {
        snprintf(err, errlen, "presence.store %s: no user or password in the URL: %s", url,
                 grammar);
        return XS_EINVAL;
    }
    const char *h = p, *he;
    if (*p == '[') {
        he = strchr(p, ']');
        if (!he) {
            snprintf(err, errlen, "presence.store %s: an IPv6 address without its ']'", url);
            return XS_EINVAL;
        }
        h = p + 1;
        p = he + 1;
    } else {
        while (*p && *p != ':' && *p != '/' && *p != '?' && *p != '@')
            p++;
        he = p;
    }
    size_t hl = (size_t)(he - h);
    int host_ok = hl > 0 && hl <= HOST_MAX_LEN;
    for (size_t i = 0; host_ok && i < hl; i++)
        host_ok = isalnum((unsigned char)h[i]) || h[i] == '.' || h[i] == '-' ||
                  (h[-1] == '[' && h[i] == ':');
    if (!host_ok || *p == '@') {
        snprintf(err, errlen,
                 "presence.store %s: the host must be a name or address (no user or password): "
                 "%s",
                 url, grammar);
        return XS_EINVAL;
    }
    memcpy(u->host, h, hl);
    if (*p != ':') {
        snprintf(err, errlen, "presence.store %s: the port is missing: %s", url, grammar);
        return XS_EINVAL;
    }
    const char *ps = ++p;
    while (*p >= '0' && *p <= '9')
        p++;
    long v;
    if (parse_small(ps, (size_t)(p - ps), 65535, &v) != 0 || v == 0) {
        snprintf(err, errlen, "presence.store %s: the port must be a number from 1 to 65535", url);
        return XS_EINVAL;
    }
    u->port = (int)v;
    if (*p == '/') {
        const char *ds = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (parse_small(ds, (size_t)(p - ds), 15, &v) != 0) {
            snprintf(err, errlen, "presence.store %s: the database must be a number from 0 to 15",
                     url);
            return XS_EINVAL;
        }
        u->db = (int)v;
    }
    if (*p == '?') {
        static const char key[] = "prefix=";
        if (strncmp(p + 1, key, sizeof key - 1) != 0 ||
            !name_ok(p + sizeof key, PREFIX_MAX_LEN)) {
            snprintf(err, errlen,
                     "presence.store %s: the only option is prefix=name, 1 to %d of "
                     "[A-Za-z0-9_.-]",
                     url, PREFIX_MAX_LEN);
            return XS_EINVAL;
        }
        snprintf(u->prefix, sizeof u->prefix, "%s", p + sizeof key);
        p += strlen(p);
    }
    if (*p) {
        snprintf(err, errlen, "presence.store %s: unexpected text after the %s: %s", url,
                 p[-1] >= '0' && p[-1] <= '9' ? "number" : "address", grammar);
        return XS_EINVAL;
    }
    return 0;
}

int xs_sub_store_redis_url_check(const char *url, char *err, size_t errlen)
{
    struct url_parts u;
    return parse_url(url, &u, err, errlen);
}

/* ---- records in and out ---- */

/* "<role>:<len>:<watcher>:<presentity>", malloc'd. */
static char *record_id(enum xs_sub_role role, const char *watcher, const char *presentity)
{
    size_t n = strlen(watcher) + strlen(presentity) + 32;
    char *id = malloc(n);
    if (id)
        snprintf(id, n, "%d:%zu:%s:%s", (int)role, strlen(watcher), watcher, presentity);
    return id;
}

/* "<prefix>:<what>:<instance>[:<id>]", malloc'd. */
static char *key_of(const struct redis_store *st, const char *what, const char *instance,
                    const char *id)
{
    size_t n = strlen(st->prefix) + strlen(what) + strlen(instance) + (id ? strlen(id) : 0) + 4;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s:%s:%s%s%s", st->prefix, what, instance, id ? ":" : "", id ? id : "");
    return k;
}

/* "<prefix>:instances", malloc'd. */
static char *instances_key(const struct redis_store *st)
{
    size_t n = strlen(st->prefix) + sizeof ":instances";
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s:instances", st->prefix);
    return k;
}

/* A decimal integer from min to max, nothing else around it. */
static int parse_int(const char *s, size_t len, long long min, long long max, long long *out)
{
    if (len == 0 || len > 20)
        return -1;
    char buf[24];
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (!(isdigit((unsigned char)buf[0]) || (buf[0] == '-' && len > 1)))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The name of a hash field for a log, without what a log should not carry. */
static void printable(char *out, size_t n, const char *s, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < n && i < 32; i++)
        out[j++] = isalnum((unsigned char)s[i]) || s[i] == '_' ? s[i] : '?';
    out[j] = '\0';
}

static int is(const redisReply *f, const char *name)
{
    return f->len == strlen(name) && !memcmp(f->str, name, f->len);
}

/* The record in an HGETALL answer, its strings lent from rep. Refuses
 * anything put would not have written. */
static int parse_record(const redisReply *rep, struct xs_sub_record *r, char *why, size_t n)
{
    memset(r, 0, sizeof *r);
    if (!rep) {
        snprintf(why, n, "no answer from the server");
        return XS_EIO;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(why, n, "not a hash (%.80s)", rep->str);
        return XS_EPROTO;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2) {
        snprintf(why, n, "not a hash");
        return XS_EPROTO;
    }
    if (rep->elements == 0) {
        snprintf(why, n, "the record is missing");
        return XS_EPROTO;
    }
    enum { F_ROLE = 1, F_STATE = 2, F_LCSEQ = 4, F_RCSEQ = 8, F_EXP = 16 };
    unsigned seen = 0;
    for (size_t i = 0; i < rep->elements; i += 2) {
        const redisReply *f = rep->element[i], *v = rep->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            snprintf(why, n, "a field that is not a string");
            return XS_EPROTO;
        }
        char name[40];
        printable(name, sizeof name, f->str, f->len);
        if (memchr(v->str, '\0', v->len)) {
            snprintf(why, n, "field %s holds a NUL byte", name);
            return XS_EPROTO;
        }
        const char **text = NULL;
        long long num;
        int bad = 0;
        if (is(f, "role")) {
            bad = parse_int(v->str, v->len, 1, 2, &num);
            r->role = (enum xs_sub_role)num;
            seen |= F_ROLE;
        } else if (is(f, "state")) {
            bad = parse_int(v->str, v->len, 1, 3, &num);
            r->state = (enum xs_sub_state)num;
            seen |= F_STATE;
        } else if (is(f, "local_cseq")) {
            bad = parse_int(v->str, v->len, 0, UINT32_MAX, &num);
            r->local_cseq = (uint32_t)num;
            seen |= F_LCSEQ;
        } else if (is(f, "remote_cseq")) {
            bad = parse_int(v->str, v->len, 0, UINT32_MAX, &num);
            r->remote_cseq = (uint32_t)num;
            seen |= F_RCSEQ;
        } else if (is(f, "expires_at")) {
            bad = parse_int(v->str, v->len, INT64_MIN, INT64_MAX, &num);
            r->expires_at = num;
            seen |= F_EXP;
        } else if (is(f, "watcher"))
            text = &r->watcher;
        else if (is(f, "presentity"))
            text = &r->presentity;
        else if (is(f, "call_id"))
            text = &r->call_id;
        else if (is(f, "local_tag"))
            text = &r->local_tag;
        else if (is(f, "remote_tag"))
            text = &r->remote_tag;
        else if (is(f, "remote_target"))
            text = &r->remote_target;
        else if (is(f, "route_set"))
            text = &r->route_set;
        else if (is(f, "last_pidf"))
            text = &r->last_pidf;
        else {
            snprintf(why, n, "unknown field %s", name);
            return XS_EPROTO;
        }
        if (bad) {
            snprintf(why, n, "field %s is not a number in its range", name);
            return XS_EPROTO;
        }
        if (text)
            *text = v->str;
    }
    if (seen != (F_ROLE | F_STATE | F_LCSEQ | F_RCSEQ | F_EXP)) {
        snprintf(why, n, "a number field is missing");
        return XS_EPROTO;
    }
    if (xs_sub_record_check(r, why, n) != 0)
        return XS_EPROTO;
    return 0;
}

/* The record's id must be the one its fields make: a record copied under
 * another key would otherwise shadow or duplicate one. */
static int id_matches(const struct xs_sub_record *r, const char *id)
{
    char *want = record_id(r->role, r->watcher, r->presentity);
    int ok = want && !strcmp(want, id);
    free(want);
    return ok;
}

static struct owned *owned_copy(const struct xs_sub_record *r)
{
    const char *const *f[8] = {&r->watcher,    &r->presentity,    &r->call_id,   &r->local_tag,
                               &r->remote_tag, &r->remote_target, &r->route_set, &r->last_pidf};
    size_t total = 0;
    for (int i = 0; i < 8; i++)
        total += *f[i] ? strlen(*f[i]) + 1 : 0;
    struct owned *o = malloc(sizeof *o);
    if (!o)
        return NULL;
    o->mem = malloc(total ? total : 1);
    if (!o->mem) {
        free(o);
        return NULL;
    }
    o->r = *r;
    const char **t[8] = {&o->r.watcher,    &o->r.presentity,    &o->r.call_id,
                         &o->r.local_tag,  &o->r.remote_tag,    &o->r.remote_target,
                         &o->r.route_set,  &o->r.last_pidf};
    char *p = o->mem;
    for (int i = 0; i < 8; i++) {
        if (!*f[i])
            continue;
        size_t l = strlen(*f[i]) + 1;
        memcpy(p, *f[i], l);
        *t[i] = p;
        p += l;
    }
    return o;
}

static int owned_cmp(const void *a, const void *b)
{
    const struct owned *x = *(const struct owned *const *)a, *y = *(const struct owned *const *)b;
    if (x->r.role != y->r.role)
        return (int)x->r.role - (int)y->r.role;
    int c = strcmp(x->r.watcher, y->r.watcher);
    return c ? c : strcmp(x->r.presentity, y->r.presentity);
}

/* ---- the asynchronous connection ---- */

static void start_connect(struct redis_store *st);
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

/* Sends one command; force passes the bound (the closing words of a batch,
 * the heartbeat), so a batch begun always ends. */
static int issue(struct redis_store *st, redisCallbackFn *fn, void *priv, int force, int argc,
                 const char **argv, const size_t *lens)
{
    if (!st->ac || st->state == C_DOWN || st->state == C_RESOLVING) {
        set_error(st, "%s: not connected, reconnecting", st->url);
        return XS_EIO;
    }
    if (!force && st->pending >= PENDING_MAX) {
        set_error(st, "%s: %zu commands are waiting for the server, the queue is full", st->url,
                  st->pending);
        return XS_ELIMIT;
    }
    if (redisAsyncCommandArgv(st->ac, fn, priv, argc, argv, lens) != REDIS_OK) {
        set_error(st, "%s: the connection is closing", st->url);
        return XS_EIO;
    }
    st->pending++;
    return 0;
}

static int issue_v(struct redis_store *st, redisCallbackFn *fn, void *priv, int force, int argc,
                   const char **argv)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return issue(st, fn, priv, force, argc, argv, lens);
}

/* An answer nobody waits for but the counters: an error is a write the
 * server refused, no answer at all one the connection lost. */
static void on_cmd(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_store *st = ac->data;
    redisReply *r = reply;
    (void)priv;
    st->pending--;
    if (!r) {
        st->lost++;
        if (!st->closing)
            st->need_resync = 1;
    } else if (r->type == REDIS_REPLY_ERROR) {
        st->failed++;
        st->need_resync = 1;
        xs_log(XS_LOG_ERROR, "presence.store", "backend=redis result=refused reason=\"%.200s\"",
               r->str);
    }
}

/* EXEC's answer: the batch as a whole. Inside it, each command's own
 * answer; one error among them is a write the server refused. */
static void on_exec(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_store *st = ac->data;
    redisReply *r = reply;
    (void)priv;
    st->pending--;
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
    st->pending--;
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
    char *idx = key_of(st, "idx", st->instance, NULL);
    if (!idx)
        return;
    const char *argv[] = {"EVAL", resync_lua, "1", idx, st->prefix, st->instance};
    int rc = issue_v(st, on_resync, NULL, 1, 6, argv);
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
    char *hb = key_of(st, "hb", st->instance, NULL);
    char *set = instances_key(st);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", st->ttl_ms);
    if (hb && set) {
        const char *a1[] = {"SET", hb, st->token, "PX", ttl};
        const char *a2[] = {"SADD", set, st->instance};
        issue_v(st, on_cmd, NULL, 1, 5, a1);
        issue_v(st, on_cmd, NULL, 1, 3, a2);
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
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_store *st = ac->data;
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
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Queued now, sent once connected, before anything else. */
    if (st->db) {
        char db[8];
        snprintf(db, sizeof db, "%d", st->db);
        const char *argv[] = {"SELECT", db};
        issue_v(st, on_cmd, NULL, 1, 2, argv);
    }
    heartbeat(st);
    if (st->need_resync)
        resync(st);
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

/* ---- takeover ---- */

static void adopt_next(struct redis_store *st);

static void adoption_free(struct adoption *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->ids[i]);
    free(a->ids);
    free(a->from);
    free(a);
}

static void adoption_end(struct redis_store *st)
{
    struct adoption *a = st->adopting;
    char from[160];
    xs_log(XS_LOG_INFO, "presence.adopt", "from=%s records=%zu refused=%zu instance=%s",
           xs_log_quote(from, sizeof from, a->from), a->ok, a->refused, st->instance);
    st->adopting = NULL;
    adoption_free(a);
}

/* One adopted record read back; priv: its index in the adoption. */
static void on_adopt_fetch(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_store *st = ac->data;
    struct adoption *a = st->adopting;
    size_t i = (size_t)(uintptr_t)priv;
    st->pending--;
    if (!a)
        return;
    a->done++;
    struct xs_sub_record r;
    char why[160];
    int rc = parse_record(reply, &r, why, sizeof why);
    if (rc == 0 && !id_matches(&r, a->ids[i])) {
        snprintf(why, sizeof why, "its fields do not match its name");
        rc = XS_EPROTO;
    }
    if (rc == 0) {
        a->ok++;
        st->adopted++;
        if (st->base.adopt)
            st->base.adopt(st->base.user_ud, &r);
    } else {
        a->refused++;
        char from[160];
        xs_log(XS_LOG_WARN, "presence.adopt", "from=%s result=refused reason=\"%s\"",
               xs_log_quote(from, sizeof from, a->from), why);
        if (rc == XS_EPROTO) {
            /* Not one of ours to keep: left, it would stop the next start. */
            char *k = key_of(st, "sub", st->instance, a->ids[i]);
            char *idx = key_of(st, "idx", st->instance, NULL);
            if (k && idx) {
                const char *d[] = {"DEL", k};
                const char *s[] = {"SREM", idx, a->ids[i]};
                issue_v(st, on_cmd, NULL, 1, 2, d);
                issue_v(st, on_cmd, NULL, 1, 3, s);
            }
            free(k);
            free(idx);
        }
    }
    if (st->closing || !st->ac) {
        if (a->done == a->next)
            adoption_end(st);
        return;
    }
    adopt_next(st);
}

static void adopt_next(struct redis_store *st)
{
    struct adoption *a = st->adopting;
    while (a->next < a->n && a->next - a->done < ADOPT_WINDOW) {
        char *k = key_of(st, "sub", st->instance, a->ids[a->next]);
        if (!k)
            break;
        const char *argv[] = {"HGETALL", k};
        int rc = issue_v(st, on_adopt_fetch, (void *)(uintptr_t)a->next, 1, 2, argv);
        free(k);
        if (rc)
            break;
        a->next++;
    }
    if (a->done == a->n || a->done == a->next)
        adoption_end(st);
}

static void on_adopt(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_store *st = ac->data;
    redisReply *r = reply;
    (void)priv;
    st->pending--;
    if (!r || r->type == REDIS_REPLY_NIL || st->closing || st->adopting)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        st->failed++;
        xs_log(XS_LOG_ERROR, "presence.adopt", "result=failed reason=\"%.200s\"", r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    const redisReply *ids = r->element[1];
    struct adoption *a = calloc(1, sizeof *a);
    if (a) {
        a->from = strdup(r->element[0]->str);
        a->ids = calloc(ids->elements ? ids->elements : 1, sizeof *a->ids);
    }
    if (!a || !a->from || !a->ids) {
        adoption_free(a);
        xs_log(XS_LOG_ERROR, "presence.adopt", "result=failed reason=\"out of memory\"");
        return;
    }
    for (size_t i = 0; i < ids->elements; i++) {
        if (ids->element[i]->type != REDIS_REPLY_STRING)
            continue;
        a->ids[a->n] = strdup(ids->element[i]->str);
        if (a->ids[a->n])
            a->n++;
    }
    st->adopting = a;
    adopt_next(st);
}

static void on_heartbeat(uv_timer_t *t)
{
    struct redis_store *st = t->data;
    if (st->state != C_UP)
        return;
    heartbeat(st);
    if (st->need_resync && st->pending < PENDING_MAX / 2)
        resync(st);
    if (!st->adopting) {
        char *set = instances_key(st);
        char ttl[16];
        snprintf(ttl, sizeof ttl, "%d", ADOPTED_TTL_MS);
        if (set) {
            const char *argv[] = {"EVAL", adopt_lua, "1", set, st->prefix, st->instance, ttl};
            issue_v(st, on_adopt, NULL, 0, 7, argv);
        }
        free(set);
    }
}

/* ---- the operations ---- */

static int store_begin(struct xs_sub_store *s)
{
    struct redis_store *st = (struct redis_store *)s;
    if (st->in_batch || st->walking) {
        set_error(st, "%s: begin inside a batch or a load", st->url);
        return XS_ESTATE;
    }
    const char *argv[] = {"MULTI"};
    int rc = issue_v(st, on_cmd, NULL, 1, 1, argv);
    if (rc)
        return rc;
    st->in_batch = 1;
    return 0;
}

static int store_commit(struct xs_sub_store *s)
{
    struct redis_store *st = (struct redis_store *)s;
    if (!st->in_batch) {
        set_error(st, "%s: commit without a batch", st->url);
        return XS_ESTATE;
    }
    st->in_batch = 0;
    const char *argv[] = {"EXEC"};
    int rc = issue_v(st, on_exec, NULL, 1, 1, argv);
    if (rc) {
        st->need_resync = 1;
        set_error(st, "%s: cannot commit a batch, its changes are lost: not connected", st->url);
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
        issue_v(st, on_cmd, NULL, 1, 1, argv);
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
        set_error(st, "%s: %zu commands are waiting for the server, the queue is full", st->url,
                  st->pending);
        return XS_ELIMIT;
    }
    char *id = record_id(r->role, r->watcher, r->presentity);
    char *k = id ? key_of(st, "sub", st->instance, id) : NULL;
    char *idx = key_of(st, "idx", st->instance, NULL);
    int rc = XS_ENOMEM;
    if (!id || !k || !idx) {
        set_error(st, "%s: out of memory", st->url);
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
    rc = issue_v(st, on_cmd, NULL, 1, 2, d);
    rc = rc ? rc : issue(st, on_cmd, NULL, 1, n, argv, lens);
    rc = rc ? rc : issue_v(st, on_cmd, NULL, 1, 3, a);
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
        set_error(st, "%s: put during a load", st->url);
        return XS_ESTATE;
    }
    char why[128];
    int rc = xs_sub_record_check(r, why, sizeof why);
    if (rc) {
        set_error(st, "%s: refused to store a subscription: %s", st->url, why);
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
        set_error(st, "%s: %zu commands are waiting for the server, the queue is full", st->url,
                  st->pending);
        return XS_ELIMIT;
    }
    char *id = record_id(d->role, d->watcher, d->presentity);
    char *k = id ? key_of(st, "sub", st->instance, id) : NULL;
    char *idx = key_of(st, "idx", st->instance, NULL);
    int rc = XS_ENOMEM;
    if (id && k && idx) {
        const char *a1[] = {"DEL", k};
        const char *a2[] = {"SREM", idx, id};
        rc = issue_v(st, on_cmd, NULL, 1, 2, a1);
        rc = rc ? rc : issue_v(st, on_cmd, NULL, 1, 3, a2);
    } else {
        set_error(st, "%s: out of memory", st->url);
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
        set_error(st, "%s: delete during a load", st->url);
        return XS_ESTATE;
    }
    if (!watcher || !presentity) {
        set_error(st, "%s: delete without a watcher or presentity", st->url);
        return XS_EINVAL;
    }
    struct del_args d = {role, watcher, presentity};
    return single(st, do_del, &d);
}

/* The synchronous connection of the start: connect and command timeout,
 * and the database selected. NULL with err set. */
static redisContext *sync_connect(const struct redis_store *st, char *err, size_t errlen)
{
    struct timeval tv = {SYNC_TIMEOUT_MS / 1000, (SYNC_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(st->host, st->port, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "%s: cannot connect: %s", st->url, c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    char db[8];
    snprintf(db, sizeof db, "%d", st->db);
    redisReply *r = redisCommand(c, "SELECT %s", db);
    if (!r || r->type != REDIS_REPLY_STATUS) {
        snprintf(err, errlen, "%s: the server does not answer SELECT %d: %.200s", st->url, st->db,
                 r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected answer") : c->errstr);
        freeReplyObject(r);
        redisFree(c);
        return NULL;
    }
    freeReplyObject(r);
    return c;
}

static int store_load(struct xs_sub_store *s, int (*fn)(void *ud, const struct xs_sub_record *r),
                      void *ud)
{
    struct redis_store *st = (struct redis_store *)s;
    if (st->walking) {
        set_error(st, "%s: load during a load", st->url);
        return XS_ESTATE;
    }
    char err[256];
    redisContext *c = sync_connect(st, err, sizeof err);
    if (!c) {
        set_error(st, "%s", err);
        return XS_EIO;
    }
    char *idx = key_of(st, "idx", st->instance, NULL);
    struct owned **v = NULL;
    size_t n = 0;
    int ret = 0;
    redisReply *ids = idx ? redisCommand(c, "SCARD %s", idx) : NULL;
    if (!ids) {
        set_error(st, "%s: cannot read the index: %s", st->url, idx ? c->errstr : "no memory");
        ret = idx ? XS_EIO : XS_ENOMEM;
        goto out;
    }
    if (ids->type != REDIS_REPLY_INTEGER || ids->integer > LOAD_MAX) {
        set_error(st, "%s: refused: %s is not an index of at most %d records", st->url, idx,
                  LOAD_MAX);
        ret = XS_EPROTO;
        goto out;
    }
    freeReplyObject(ids);
    ids = redisCommand(c, "SMEMBERS %s", idx);
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        set_error(st, "%s: cannot read the index %s: %s", st->url, idx,
                  ids ? "not a set" : c->errstr);
        ret = ids ? XS_EPROTO : XS_EIO;
        goto out;
    }
    v = calloc(ids->elements ? ids->elements : 1, sizeof *v);
    if (!v) {
        ret = XS_ENOMEM;
        set_error(st, "%s: out of memory", st->url);
        goto out;
    }
    for (size_t base = 0; base < ids->elements && !ret; base += LOAD_CHUNK) {
        size_t end = base + LOAD_CHUNK < ids->elements ? base + LOAD_CHUNK : ids->elements;
        for (size_t i = base; i < end; i++) {
            const redisReply *id = ids->element[i];
            char *k = id->type == REDIS_REPLY_STRING ? key_of(st, "sub", st->instance, id->str)
                                                     : NULL;
            const char *argv[] = {"HGETALL", k ? k : ""};
            redisAppendCommandArgv(c, 2, argv, NULL);
            free(k);
        }
        for (size_t i = base; i < end; i++) {
            redisReply *rep = NULL;
            if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
                if (!ret) {
                    set_error(st, "%s: cannot read the records: %s", st->url, c->errstr);
                    ret = XS_EIO;
                }
                break;
            }
            struct xs_sub_record r;
            char why[160];
            int rc = ret ? ret : parse_record(rep, &r, why, sizeof why);
            if (!ret && rc == 0 && !id_matches(&r, ids->element[i]->str)) {
                snprintf(why, sizeof why, "its fields do not match its name");
                rc = XS_EPROTO;
            }
            if (!ret && rc) {
                char name[80];
                printable(name, sizeof name, ids->element[i]->str, ids->element[i]->len);
                set_error(st, "%s: refused: record %zu of %s (%s...): %s", st->url, i + 1, idx,
                          name, why);
                ret = rc;
            }
            if (!ret && !(v[n] = owned_copy(&r))) {
                set_error(st, "%s: out of memory", st->url);
                ret = XS_ENOMEM;
            }
            if (!ret)
                n++;
            freeReplyObject(rep);
        }
    }
    if (ret)
        goto out;
    /* The interface's order, whatever order the set gave. */
    qsort(v, n, sizeof *v, owned_cmp);
    for (size_t i = 0; i < n && !ret; i++) {
        st->walking = 1;
        ret = fn(ud, &v[i]->r);
        st->walking = 0;
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(v[i]->mem);
        free(v[i]);
    }
    free(v);
    freeReplyObject(ids);
    free(idx);
    redisFree(c);
    return ret;
}

/* ---- close ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct redis_store *st = h->data;
    if (--st->handles_open == 0) {
        adoption_free(st->adopting);
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
        redisAsyncFree(ac);
        st->ac = NULL;
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
        issue_v(st, on_cmd, NULL, 1, 1, argv);
        st->in_batch = 0;
    }
    /* Ending the heartbeat lets another instance adopt at its next period
     * rather than when the heartbeat would have run out. */
    if (st->state == C_UP) {
        char *hb = key_of(st, "hb", st->instance, NULL);
        if (hb) {
            const char *argv[] = {"DEL", hb};
            issue_v(st, on_cmd, NULL, 1, 2, argv);
        }
        free(hb);
    }
    st->closing = 1;
    uv_timer_stop(&st->hb);
    uv_timer_stop(&st->retry);
    if (st->resolving)
        uv_cancel((uv_req_t *)&st->gai);
    if (st->ac && st->state == C_UP) {
        /* Sends what is queued and waits for the answers, within a bound. */
        redisAsyncDisconnect(st->ac);
        uv_timer_start(&st->close_wait, on_close_wait, CLOSE_WAIT_MS, 0);
        return;
    }
    if (st->ac) {
        redisAsyncContext *ac = st->ac;
        st->ac = NULL;
        redisAsyncFree(ac);
    }
    finish_close(st);
}

static const struct xs_sub_store_ops redis_ops = {
    .begin = store_begin,
    .commit = store_commit,
    .put = store_put,
    .del = store_del,
    .load = store_load,
    .close = store_close,
};

void xs_sub_store_redis_timing(struct xs_sub_store *s, unsigned period_ms, unsigned ttl_ms)
{
    struct redis_store *st = (struct redis_store *)s;
    st->period_ms = period_ms;
    st->ttl_ms = ttl_ms;
    uv_timer_start(&st->hb, on_heartbeat, period_ms, period_ms);
    if (st->state == C_UP)
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
    int rc = parse_url(url, &u, err, errlen);
    if (rc)
        return rc;
    if (!instance || !name_ok(instance, NAME_MAX_LEN)) {
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
    redisContext *c = sync_connect(st, err, errlen);
    if (!c) {
        free(st);
        return XS_EIO;
    }
    char *hb = key_of(st, "hb", st->instance, NULL);
    char *set = instances_key(st);
    rc = XS_ENOMEM;
    redisReply *r = NULL;
    if (!hb || !set) {
        snprintf(err, errlen, "%s: out of memory", url);
        goto fail;
    }
    rc = XS_EIO;
    r = redisCommand(c, "EVAL %s 0", "return 1");
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        snprintf(err, errlen, "%s: the server does not run scripts (Redis 2.6 or later is needed): %.160s",
                 url, r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        goto fail;
    }
    freeReplyObject(r);
    r = redisCommand(c, "GET %s", hb);
    if (r && r->type == REDIS_REPLY_STRING)
        xs_log(XS_LOG_WARN, "presence.store",
               "backend=redis instance=%s reason=\"the instance's heartbeat is live: either this "
               "instance restarted within %u ms, or another gateway runs under the same name "
               "(gateway.instance must differ per instance)\"",
               st->instance, st->ttl_ms);
    freeReplyObject(r);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", st->ttl_ms);
    r = redisCommand(c, "SET %s %s PX %s", hb, st->token, ttl);
    if (r && r->type == REDIS_REPLY_STATUS) {
        freeReplyObject(r);
        r = redisCommand(c, "SADD %s %s", set, st->instance);
    }
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        snprintf(err, errlen, "%s: cannot write the heartbeat: %.160s", url,
                 r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        goto fail;
    }
    freeReplyObject(r);
    redisFree(c);
    free(hb);
    free(set);

    uv_timer_init(loop, &st->hb);
    uv_timer_init(loop, &st->retry);
    uv_timer_init(loop, &st->close_wait);
    st->hb.data = st->retry.data = st->close_wait.data = st;
    st->handles_open = 3;
    uv_timer_start(&st->hb, on_heartbeat, st->period_ms, st->period_ms);
    start_connect(st);
    *out = &st->base;
    return 0;
fail:
    freeReplyObject(r);
    redisFree(c);
    free(hb);
    free(set);
    free(st);
    return rc;
}
