/* Inside the Redis subscription store (sub_store_redis.c, which the top
 * of describes): what its files share. sub_store_redis_rec.c holds the URL
 * and the record codec, sub_store_redis_sync.c the synchronous connection
 * of the start (check and load), sub_store_redis_adopt.c the takeover.
 * Nothing else includes this. */
#ifndef XS_PRESENCE_SUB_STORE_REDIS_INT_H
#define XS_PRESENCE_SUB_STORE_REDIS_INT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "presence/sub_store.h"

#define HB_PERIOD_MS 2000
#define HB_TTL_MS 10000
/* Commands sent and not yet xs__redis_answered: a batch of the SIP side's largest
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
    uint64_t waiting_since; /* loop time the oldest unanswered command was sent */
    uint64_t connect_at;    /* loop time the connection attempt began */
    uint64_t refused_logged_at;
    struct adoption *adopting;
    unsigned long long failed, lost, reconnects, adopted, resyncs;
};

/* "redis://host:port[/db][?prefix=name]", parsed. */
struct url_parts {
    char host[HOST_MAX_LEN + 1];
    int port, db;
    char prefix[PREFIX_MAX_LEN + 1];
};

/* sub_store_redis.c */
void xs__redis_set_error(struct redis_store *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Sends one command on the asynchronous connection; force passes the bound
 * on commands waiting for an answer. 0, XS_EIO (not connected) or
 * XS_ELIMIT. */
int xs__redis_issue_v(struct redis_store *st, redisCallbackFn *fn, void *priv, int force, int argc,
                      const char **argv);
/* Every callback of a command begins with this. */
void xs__redis_answered(struct redis_store *st);
/* The callback of a command only counted: an error is a write refused. */
void xs__redis_on_cmd(redisAsyncContext *ac, void *reply, void *priv);

/* sub_store_redis_rec.c */
int xs__redis_name_ok(const char *s, size_t max);
int xs__redis_parse_url(const char *url, struct url_parts *u, char *err, size_t errlen);
/* "<role>:<length of watcher>:<watcher>:<presentity>", malloc'd. */
char *xs__redis_record_id(enum xs_sub_role role, const char *watcher, const char *presentity);
/* "<prefix>:<what>:<instance>[:<id>]", malloc'd. */
char *xs__redis_key(const struct redis_store *st, const char *what, const char *instance,
                    const char *id);
/* "<prefix>:instances", malloc'd. */
char *xs__redis_instances_key(const struct redis_store *st);
/* A hash field's name for a log (n bytes), reduced to [A-Za-z0-9_?]. */
void xs__redis_printable(char *out, size_t n, const char *s, size_t len);
/* The record in an HGETALL answer, strings lent from rep; XS_EPROTO with
 * why (n bytes) for anything put would not have written. */
int xs__redis_parse_record(const redisReply *rep, struct xs_sub_record *r, char *why, size_t n);
int xs__redis_id_matches(const struct xs_sub_record *r, const char *id);
struct owned *xs__redis_owned_copy(const struct xs_sub_record *r);
int xs__redis_owned_cmp(const void *a, const void *b);

/* sub_store_redis_sync.c */
redisContext *xs__redis_sync_connect(const struct redis_store *st, char *err, size_t errlen);
int xs__redis_check_server(struct redis_store *st, char *ip, size_t ipn, char *err, size_t errlen);
/* The store's load op. */
int xs__redis_load(struct xs_sub_store *s, int (*fn)(void *ud, const struct xs_sub_record *r),
                   void *ud);

/* sub_store_redis_adopt.c */
void xs__redis_adopt_poll(struct redis_store *st);
void xs__redis_adoption_free(struct adoption *a);

#endif
