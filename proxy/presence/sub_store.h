/* The subscription store: the presence subscriptions the gateway holds,
 * kept so that a restart (or a crash) restores them. A small interface of
 * its own, so that a shared store can replace the embedded one when several
 * instances serve one domain. Two implementations: SQLite
 * (sub_store_sqlite.c), the default for one instance, and Redis
 * (sub_store_redis.c), shared by several. Calls are meant to be batched:
 * begin, puts and deletes, commit. SQLite writes synchronously; Redis
 * queues the batch on its connection (bounded) and says later, in the log,
 * when the server refused it or the connection lost it. */
#ifndef XS_PRESENCE_SUB_STORE_H
#define XS_PRESENCE_SUB_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Which way a subscription goes. WATCH_SIP: an XMPP user watches a SIP
 * user; the gateway is the SIP subscriber (it sends SUBSCRIBE). WATCH_XMPP:
 * a SIP user watches an XMPP user; the gateway is the SIP notifier (it
 * sends NOTIFY). */
enum xs_sub_role { XS_SUB_WATCH_SIP = 1, XS_SUB_WATCH_XMPP = 2 };

enum xs_sub_state {
    XS_SUB_STATE_PENDING = 1,
    XS_SUB_STATE_ACTIVE = 2,
    XS_SUB_STATE_TERMINATED = 3
};

/* One subscription: key (role, watcher, presentity), both as SIP URIs
 * ("sip:alice@xmpp.test"), and the SIP dialog that carries it. Strings are
 * owned by whoever filled the record (the store copies on put and lends on
 * load); NULL when unknown. */
struct xs_sub_record {
    enum xs_sub_role role;
    const char *watcher;
    const char *presentity;
    enum xs_sub_state state;
    /* The dialog (RFC 3261 §12): Call-ID, our tag, the peer's tag, the
     * peer's target (its Contact URI), the route set (the Route header value
     * as we send it, "<sip:a>,<sip:b>", or NULL), our last CSeq and the
     * peer's. */
    const char *call_id;
    const char *local_tag;
    const char *remote_tag;
    const char *remote_target;
    const char *route_set;
    uint32_t local_cseq;
    uint32_t remote_cseq;
    int64_t expires_at; /* Unix time (seconds) the subscription ends */
    /* The last presence document that crossed this subscription (PIDF),
     * NULL when none did yet. */
    const char *last_pidf;
};

/* The longest strings a record may hold, so that a hostile peer cannot grow
 * the store without bound through one record: put refuses longer ones
 * (XS_EINVAL), and load refuses a file that holds any. URIs and the dialog's
 * identifiers (Call-ID, tags) share one bound. */
#define XS_SUB_URI_MAX 1024
#define XS_SUB_ROUTE_MAX 4096
#define XS_SUB_PIDF_MAX 65536

struct xs_sub_store;

/* The operations every store provides. Each returns 0 or a negative XS_E*
 * code and, on failure, writes a one-line reason into the store's error
 * (xs_sub_store_error). */
struct xs_sub_store_ops {
    /* One batch at a time: begin inside a batch, or commit outside one, is
     * XS_ESTATE. A put or del outside a batch is a batch of its own. A
     * commit that fails leaves no batch open and the batch's changes lost. */
    int (*begin)(struct xs_sub_store *s);
    int (*commit)(struct xs_sub_store *s);
    /* Inserts or replaces the record with r's key (r borrowed, its strings
     * copied). XS_EINVAL, and nothing written, for a record out of range: an
     * unknown role or state, an empty or NULL watcher or presentity, a string
     * over the bounds above. */
    int (*put)(struct xs_sub_store *s, const struct xs_sub_record *r);
    /* Deletes the record with that key (strings borrowed); 0 also when there
     * was none, since the caller's aim (no such record) holds. */
    int (*del)(struct xs_sub_store *s, enum xs_sub_role role, const char *watcher,
               const char *presentity);
    /* Calls fn for every record in key order (role, watcher, presentity),
     * strings lent for the call only; fn must not call the store (XS_ESTATE
     * if it does). fn returns 0 to go on, anything else stops the walk and
     * is returned. A record the file should never hold (out of range, over
     * the bounds) stops the walk with XS_EPROTO. */
    int (*load)(struct xs_sub_store *s, int (*fn)(void *ud, const struct xs_sub_record *r),
                void *ud);
    /* Frees the store (taken); an open batch is rolled back, not committed. */
    void (*close)(struct xs_sub_store *s);
};

/* What a shared store hands back to its user, set by the user after open
 * (each may stay NULL; the SQLite store calls neither):
 * - adopt: a record of a dead instance this one took over, to be restored
 *   as a start restores what load gives (strings lent for the call only;
 *   the store's other ops may be called from it);
 * - resync: the store lost writes (its server restarted or was
 *   unreachable) and has dropped this instance's records; the user writes
 *   every subscription it holds again. */
struct xs_sub_store {
    const struct xs_sub_store_ops *ops;
    char error[256];
    int (*adopt)(void *ud, const struct xs_sub_record *r);
    void (*resync)(void *ud);
    void *user_ud;
};

/* The checks every record passes on its way into a store (put) and out of
 * it (load): role and state known, watcher and presentity present, every
 * string within the bounds above. 0, or XS_EINVAL with the reason in why
 * (n bytes). */
int xs_sub_record_check(const struct xs_sub_record *r, char *why, size_t n);

/* Opens (or creates) the SQLite store at path (borrowed); *out is returned
 * owned, freed with its ops->close. A file that is not a store of this
 * gateway, is corrupt, or has a schema version this build does not know is
 * refused (XS_EPROTO) and never written to; err (errlen bytes) names the
 * file and the reason. XS_EIO when it cannot be created or opened: its
 * directory is missing, or another process (another gateway) holds it, since
 * the store is held exclusively while open. */
int xs_sub_store_open_sqlite(const char *path, struct xs_sub_store **out, char *err, size_t errlen);

/* Opens the Redis store at url (borrowed): "redis://host:port[/db]
 * [?prefix=name]" (db 0 to 15, prefix default "xsgw", [A-Za-z0-9_.-]).
 * instance (borrowed) names this gateway among the ones sharing the
 * server, 1 to 128 bytes of [A-Za-z0-9_.-]; its records are its own, and a
 * live instance adopts those of one whose heartbeat has expired. Connects
 * once synchronously (at start, with a timeout) to check the server, then
 * writes through the loop (borrowed) without blocking it. XS_EINVAL for a
 * URL or name out of that grammar, XS_EIO when the server cannot be
 * reached or answers wrongly; err (errlen bytes) says which and why. *out
 * is returned owned, freed with its ops->close (which writes what is
 * queued, ends the heartbeat so that another instance adopts at once, and
 * frees on a later turn of the loop). */
int xs_sub_store_open_redis(uv_loop_t *loop, const char *url, const char *instance,
                            struct xs_sub_store **out, char *err, size_t errlen);
/* Checks url against the grammar above without connecting: 0 or XS_EINVAL
 * with the reason in err. */
int xs_sub_store_redis_url_check(const char *url, char *err, size_t errlen);
/* The heartbeat period and lifetime in ms (defaults 2000 and 10000), for
 * tests that cannot wait for the defaults; ttl_ms must exceed period_ms. */
void xs_sub_store_redis_timing(struct xs_sub_store *s, unsigned period_ms, unsigned ttl_ms);
/* Counters of a Redis store, for logs, metrics and tests: commands
 * refused by the server or lost with the connection, reconnects, records
 * adopted from dead instances, and the commands waiting for an answer. */
struct xs_sub_store_redis_stats {
    unsigned long long failed, lost, reconnects, adopted, resyncs;
    size_t pending;
    int connected;
};
void xs_sub_store_redis_stats(const struct xs_sub_store *s, struct xs_sub_store_redis_stats *out);

static inline const char *xs_sub_store_error(const struct xs_sub_store *s)
{
    return s->error;
}

#endif
