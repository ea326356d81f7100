/* The Redis store's synchronous connection, used at start only: the
 * check of the server when the store opens, and load, each with a connect
 * and command timeout (see sub_store_redis.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "core/err.h"
#include "core/log.h"
#include "presence/sub_store_redis_int.h"

/* The synchronous connection of the start: connect and command timeout,
 * and the database selected. NULL with err set. */
redisContext *xs__redis_sync_connect(const struct redis_store *st, char *err, size_t errlen)
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

int xs__redis_load(struct xs_sub_store *s, int (*fn)(void *ud, const struct xs_sub_record *r),
                   void *ud)
{
    struct redis_store *st = (struct redis_store *)s;
    if (st->walking) {
        xs__redis_set_error(st, "%s: load during a load", st->url);
        return XS_ESTATE;
    }
    char err[256];
    redisContext *c = xs__redis_sync_connect(st, err, sizeof err);
    if (!c) {
        xs__redis_set_error(st, "%s", err);
        return XS_EIO;
    }
    char *idx = xs__redis_key(st, "idx", st->instance, NULL);
    struct owned **v = NULL;
    size_t n = 0;
    int ret = 0;
    redisReply *ids = idx ? redisCommand(c, "SCARD %s", idx) : NULL;
    if (!ids) {
        xs__redis_set_error(st, "%s: cannot read the index: %s", st->url,
                            idx ? c->errstr : "no memory");
        ret = idx ? XS_EIO : XS_ENOMEM;
        goto out;
    }
    if (ids->type != REDIS_REPLY_INTEGER || ids->integer > LOAD_MAX) {
        xs__redis_set_error(st, "%s: refused: %s is not an index of at most %d records", st->url,
                            idx, LOAD_MAX);
        ret = XS_EPROTO;
        goto out;
    }
    freeReplyObject(ids);
    ids = redisCommand(c, "SMEMBERS %s", idx);
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        xs__redis_set_error(st, "%s: cannot read the index %s: %s", st->url, idx,
                            ids ? "not a set" : c->errstr);
        ret = ids ? XS_EPROTO : XS_EIO;
        goto out;
    }
    v = calloc(ids->elements ? ids->elements : 1, sizeof *v);
    if (!v) {
        ret = XS_ENOMEM;
        xs__redis_set_error(st, "%s: out of memory", st->url);
        goto out;
    }
    for (size_t base = 0; base < ids->elements && !ret; base += LOAD_CHUNK) {
        size_t end = base + LOAD_CHUNK < ids->elements ? base + LOAD_CHUNK : ids->elements;
        for (size_t i = base; i < end; i++) {
            const redisReply *id = ids->element[i];
            char *k = id->type == REDIS_REPLY_STRING
                          ? xs__redis_key(st, "sub", st->instance, id->str)
                          : NULL;
            const char *argv[] = {"HGETALL", k ? k : ""};
            redisAppendCommandArgv(c, 2, argv, NULL);
            free(k);
        }
        for (size_t i = base; i < end; i++) {
            redisReply *rep = NULL;
            if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
                if (!ret) {
                    xs__redis_set_error(st, "%s: cannot read the records: %s", st->url, c->errstr);
                    ret = XS_EIO;
                }
                break;
            }
            struct xs_sub_record r;
            char why[160];
            int rc = ret ? ret : xs__redis_parse_record(rep, &r, why, sizeof why);
            if (!ret && rc == 0 && !xs__redis_id_matches(&r, ids->element[i]->str)) {
                snprintf(why, sizeof why, "its fields do not match its name");
                rc = XS_EPROTO;
            }
            if (!ret && rc) {
                char name[80];
                xs__redis_printable(name, sizeof name, ids->element[i]->str, ids->element[i]->len);
                xs__redis_set_error(st, "%s: refused: record %zu of %s (%s...): %s", st->url, i + 1,
                                    idx, name, why);
                ret = rc;
            }
            if (!ret && !(v[n] = xs__redis_owned_copy(&r))) {
                xs__redis_set_error(st, "%s: out of memory", st->url);
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
    qsort(v, n, sizeof *v, xs__redis_owned_cmp);
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

/* The check of the server at open: it connects, runs scripts, and takes
 * this instance's heartbeat and its place in the set of instances. The
 * address it reached goes into ip (n bytes; "" when unknown), so the first
 * asynchronous connection needs no second resolution. */
int xs__redis_check_server(struct redis_store *st, char *ip, size_t ipn, char *err, size_t errlen)
{
    const char *url = st->url;
    redisContext *c = xs__redis_sync_connect(st, err, errlen);
    if (!c)
        return XS_EIO;
    char *hb = xs__redis_key(st, "hb", st->instance, NULL);
    char *set = xs__redis_instances_key(st);
    int rc = XS_ENOMEM;
    redisReply *r = NULL;
    if (!hb || !set) {
        snprintf(err, errlen, "%s: out of memory", url);
        goto fail;
    }
    rc = XS_EIO;
    r = redisCommand(c, "EVAL %s 0", "return 1");
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        snprintf(err, errlen,
                 "%s: the server does not run scripts (Redis 2.6 or later is needed): %.160s", url,
                 r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
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
    r = NULL;
    /* The address the check reached, so the first connection needs no
     * second resolution and writes can be queued from now on. */
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    if (getpeername(c->fd, (struct sockaddr *)&peer, &plen) == 0) {
        if (peer.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&peer, ip, ipn);
        else if (peer.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&peer, ip, ipn);
    }
    rc = 0;
fail:
    freeReplyObject(r);
    redisFree(c);
    free(hb);
    free(set);
    return rc;
}
