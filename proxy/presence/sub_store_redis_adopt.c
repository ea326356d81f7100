/* The Redis store's takeover of a dead instance's records: a script moves
 * them, atomically, to this instance; they are then read back a window at a
 * time and handed to the user's adopt callback (see sub_store_redis.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "presence/sub_store_redis_int.h"

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

/* ---- takeover ---- */

static void adopt_next(struct redis_store *st);

void xs__redis_adoption_free(struct adoption *a)
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
    xs__redis_adoption_free(a);
}

/* One adopted record read back; priv: its index in the adoption. */
static void on_adopt_fetch(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_store *st = ac->data;
    struct adoption *a = st->adopting;
    size_t i = (size_t)(uintptr_t)priv;
    xs__redis_answered(st);
    if (!a)
        return;
    a->done++;
    struct xs_sub_record r;
    char why[160];
    int rc = xs__redis_parse_record(reply, &r, why, sizeof why);
    if (rc == 0 && !xs__redis_id_matches(&r, a->ids[i])) {
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
            char *k = xs__redis_key(st, "sub", st->instance, a->ids[i]);
            char *idx = xs__redis_key(st, "idx", st->instance, NULL);
            if (k && idx) {
                const char *d[] = {"DEL", k};
                const char *s[] = {"SREM", idx, a->ids[i]};
                xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 2, d);
                xs__redis_issue_v(st, xs__redis_on_cmd, NULL, 1, 3, s);
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
        char *k = xs__redis_key(st, "sub", st->instance, a->ids[a->next]);
        if (!k)
            break;
        const char *argv[] = {"HGETALL", k};
        int rc = xs__redis_issue_v(st, on_adopt_fetch, (void *)(uintptr_t)a->next, 1, 2, argv);
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
    xs__redis_answered(st);
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
        xs__redis_adoption_free(a);
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

/* Runs the adoption script once, unless an adoption is being read back. */
void xs__redis_adopt_poll(struct redis_store *st)
{
    if (!st->adopting) {
        char *set = xs__redis_instances_key(st);
        char ttl[16];
        snprintf(ttl, sizeof ttl, "%d", ADOPTED_TTL_MS);
        if (set) {
            const char *argv[] = {"EVAL", adopt_lua, "1", set, st->prefix, st->instance, ttl};
            xs__redis_issue_v(st, on_adopt, NULL, 0, 7, argv);
        }
        free(set);
    }
}
