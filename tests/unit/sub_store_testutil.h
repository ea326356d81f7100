/* The contract every subscription store keeps (presence/sub_store.h), as
 * checks that run against any of them: test_sub_store.c runs them on the
 * SQLite store, test_sub_store_redis.c on the Redis one. Each check starts
 * from an empty store and opens and closes it through the contract's
 * functions, so a store that writes asynchronously says when its writes
 * can be read back (settle). */
#ifndef XS_TEST_SUB_STORE_TESTUTIL_H
#define XS_TEST_SUB_STORE_TESTUTIL_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "core/err.h"
#include "presence/sub_store.h"

struct contract {
    /* The store over the same data every time; NULL (and a failed CHECK)
     * when it cannot be opened. */
    struct xs_sub_store *(*open)(void);
    /* Returns once what was committed can be loaded. */
    void (*settle)(struct xs_sub_store *s);
    /* Closes s and returns once it is gone. */
    void (*close)(struct xs_sub_store *s);
    /* What the store's errors name: its file or its URL. */
    const char *where;
};

/* Owned copies of loaded records. */
struct copy {
    struct xs_sub_record r;
    char *s[8];
};
struct loaded {
    struct copy *v;
    size_t n, cap;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int collect(void *ud, const struct xs_sub_record *r)
{
    struct loaded *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    struct copy *c = &l->v[l->n++];
    c->r = *r;
    const char **f[8] = {&c->r.watcher,    &c->r.presentity,    &c->r.call_id,   &c->r.local_tag,
                         &c->r.remote_tag, &c->r.remote_target, &c->r.route_set, &c->r.last_pidf};
    for (int i = 0; i < 8; i++)
        *f[i] = c->s[i] = dup_or_null(*f[i]);
    return 0;
}

static void loaded_free(struct loaded *l)
{
    for (size_t i = 0; i < l->n; i++)
        for (int j = 0; j < 8; j++)
            free(l->v[i].s[j]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same_record(const struct xs_sub_record *a, const struct xs_sub_record *b)
{
    return a->role == b->role && same_str(a->watcher, b->watcher) &&
           same_str(a->presentity, b->presentity) && a->state == b->state &&
           same_str(a->call_id, b->call_id) && same_str(a->local_tag, b->local_tag) &&
           same_str(a->remote_tag, b->remote_tag) && same_str(a->remote_target, b->remote_target) &&
           same_str(a->route_set, b->route_set) && a->local_cseq == b->local_cseq &&
           a->remote_cseq == b->remote_cseq && a->expires_at == b->expires_at &&
           same_str(a->last_pidf, b->last_pidf);
}

static const struct xs_sub_record full = {
    .role = XS_SUB_WATCH_SIP,
    .watcher = "sip:alice@xmpp.test",
    .presentity = "sip:carol@sip.test",
    .state = XS_SUB_STATE_ACTIVE,
    .call_id = "a84b4c76e66710@gw.xmpp.test",
    .local_tag = "1928301774",
    .remote_tag = "314159",
    .remote_target = "sip:carol@192.0.2.4:5060;transport=tcp",
    .route_set = "<sip:p1.sip.test;lr>,<sip:p2.sip.test;lr>",
    .local_cseq = 4294967295u,
    .remote_cseq = 0,
    .expires_at = INT64_C(-9223372036854775807) - 1,
    .last_pidf = "<?xml version='1.0'?><presence xmlns='urn:ietf:params:xml:ns:pidf' "
                 "entity='sip:carol@sip.test'><tuple id='t'><status><basic>open</basic>"
                 "</status><note xml:lang='fr'>caf\xc3\xa9</note></tuple></presence>",
};

static const struct xs_sub_record nulls = {
    .role = XS_SUB_WATCH_XMPP,
    .watcher = "sip:carol@sip.test",
    .presentity = "sip:alice@xmpp.test",
    .state = XS_SUB_STATE_PENDING,
    .local_cseq = 1,
    .remote_cseq = 4294967295u,
    .expires_at = INT64_MAX,
};

static int count_cb(void *ud, const struct xs_sub_record *r)
{
    (void)r;
    (*(long *)ud)++;
    return 0;
}

static long count(struct xs_sub_store *s)
{
    long n = 0;
    CHECK(s->ops->load(s, count_cb, &n) == 0);
    return n;
}

static char *filled(size_t len, char c)
{
    char *p = malloc(len + 1);
    memset(p, c, len);
    p[len] = '\0';
    return p;
}

/* Record i of a batch, in fields that tell it from every other. */
static void batch_record(int i, struct xs_sub_record *r, char (*buf)[512])
{
    snprintf(buf[0], 512, "sip:user%05d@xmpp.test", i);
    snprintf(buf[1], 512, "sip:peer%05d@sip.test", (i * 7919) % 10000);
    snprintf(buf[2], 512, "%08x-%d@gw.xmpp.test", (unsigned)(i * 2654435761u), i);
    snprintf(buf[3], 512, "lt%d", i);
    snprintf(buf[4], 512, "rt%d", i);
    snprintf(buf[5], 512, "sip:peer%05d@192.0.2.%d:5060", i, i % 250);
    snprintf(buf[6], 512,
             "<?xml version='1.0' encoding='UTF-8'?><presence "
             "xmlns='urn:ietf:params:xml:ns:pidf' xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' "
             "entity='sip:peer%05d@sip.test'><tuple "
             "id='t%d'><status><basic>open</basic></status></tuple>"
             "<dm:person xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' id='p'>"
             "<rpid:activities><rpid:busy/></rpid:activities></dm:person>"
             "<note>in a meeting until %d</note></presence>",
             (i * 7919) % 10000, i, i);
    *r = (struct xs_sub_record){
        .role = i % 2 ? XS_SUB_WATCH_XMPP : XS_SUB_WATCH_SIP,
        .watcher = buf[0],
        .presentity = buf[1],
        .state = XS_SUB_STATE_ACTIVE,
        .call_id = buf[2],
        .local_tag = buf[3],
        .remote_tag = buf[4],
        .remote_target = buf[5],
        .route_set = i % 3 ? "<sip:edge.sip.test;lr>" : NULL,
        .local_cseq = (uint32_t)i * 3u,
        .remote_cseq = (uint32_t)i * 5u,
        .expires_at = 1800000000 + i,
        .last_pidf = i % 4 ? buf[6] : NULL,
    };
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define BATCH 10000

struct verify {
    long n;
    long bad;
    int prev_role;
    char prev_watcher[512];
};

/* Every record as it was put, in key order: role, then watcher (user%05d
 * sorts by i), then presentity. */
static int verify_cb(void *ud, const struct xs_sub_record *r)
{
    struct verify *v = ud;
    int i = -1;
    if (sscanf(r->watcher, "sip:user%05d@", &i) != 1 || i < 0 || i >= BATCH) {
        v->bad++;
        return 0;
    }
    struct xs_sub_record want;
    char buf[7][512];
    batch_record(i, &want, buf);
    if (!same_record(r, &want))
        v->bad++;
    if (v->n && ((int)r->role < v->prev_role ||
                 ((int)r->role == v->prev_role && strcmp(r->watcher, v->prev_watcher) <= 0)))
        v->bad++;
    v->prev_role = r->role;
    snprintf(v->prev_watcher, sizeof v->prev_watcher, "%s", r->watcher);
    v->n++;
    return 0;
}

/* What goes in comes back: every field, NULLs included, in key order; a
 * replace clears what the new record lacks; delete takes one key only;
 * a reopen keeps it. */
__attribute__((unused)) static void contract_round_trip(const struct contract *c)
{
    struct xs_sub_store *s = c->open();
    if (!s)
        return;
    CHECK(s->ops->put(s, &full) == 0);
    CHECK(s->ops->put(s, &nulls) == 0);
    c->settle(s);
    struct loaded l = {0};
    CHECK(s->ops->load(s, collect, &l) == 0);
    /* Key order: role 1 (WATCH_SIP) before role 2. */
    CHECK(l.n == 2 && same_record(&l.v[0].r, &full) && same_record(&l.v[1].r, &nulls));
    CHECK(l.n == 2 && l.v[1].r.call_id == NULL && l.v[1].r.last_pidf == NULL);
    loaded_free(&l);

    /* Replace: same key, every other field new. */
    struct xs_sub_record r2 = nulls;
    r2.state = XS_SUB_STATE_TERMINATED;
    r2.call_id = "c2";
    r2.local_tag = "lt2";
    r2.remote_tag = "rt2";
    r2.remote_target = "sip:carol@192.0.2.9";
    r2.route_set = "<sip:p3.sip.test;lr>";
    r2.local_cseq = 77;
    r2.remote_cseq = 88;
    r2.expires_at = 1700000000;
    r2.last_pidf = "<presence/>";
    CHECK(s->ops->put(s, &r2) == 0);
    c->settle(s);
    CHECK(s->ops->load(s, collect, &l) == 0);
    CHECK(l.n == 2 && same_record(&l.v[0].r, &full) && same_record(&l.v[1].r, &r2));
    loaded_free(&l);
    /* And back to NULLs: a replace clears what the new record does not have. */
    CHECK(s->ops->put(s, &nulls) == 0);
    c->settle(s);
    CHECK(s->ops->load(s, collect, &l) == 0);
    CHECK(l.n == 2 && same_record(&l.v[1].r, &nulls));
    loaded_free(&l);

    /* Delete: only that key, and deleting it again is no error. The same
     * watcher and presentity under the other role is another record. */
    CHECK(s->ops->del(s, XS_SUB_WATCH_XMPP, full.watcher, full.presentity) == 0);
    CHECK(s->ops->del(s, XS_SUB_WATCH_SIP, full.watcher, full.presentity) == 0);
    CHECK(s->ops->del(s, XS_SUB_WATCH_SIP, full.watcher, full.presentity) == 0);
    c->settle(s);
    CHECK(s->ops->load(s, collect, &l) == 0);
    CHECK(l.n == 1 && same_record(&l.v[0].r, &nulls));
    loaded_free(&l);

    /* Reopen keeps it. */
    c->close(s);
    s = c->open();
    if (s) {
        CHECK(s->ops->load(s, collect, &l) == 0);
        CHECK(l.n == 1 && same_record(&l.v[0].r, &nulls));
        loaded_free(&l);
        c->close(s);
    }
}

/* Strings at their bounds are kept whole; one byte over, field by field,
 * and records out of range are refused (XS_EINVAL) with nothing written. */
__attribute__((unused)) static void contract_bounds(const struct contract *c)
{
    struct xs_sub_store *s = c->open();
    if (!s)
        return;
    char *uri = filled(XS_SUB_URI_MAX + 1, 'u');
    char *route = filled(XS_SUB_ROUTE_MAX + 1, 'r');
    char *pidf = filled(XS_SUB_PIDF_MAX + 1, 'p');
    struct xs_sub_record r = full;

    uri[XS_SUB_URI_MAX] = route[XS_SUB_ROUTE_MAX] = pidf[XS_SUB_PIDF_MAX] = '\0';
    r.watcher = r.presentity = r.call_id = r.local_tag = r.remote_tag = r.remote_target = uri;
    r.route_set = route;
    r.last_pidf = pidf;
    CHECK(s->ops->put(s, &r) == 0);
    c->settle(s);
    struct loaded l = {0};
    CHECK(s->ops->load(s, collect, &l) == 0);
    CHECK(l.n == 1 && same_record(&l.v[0].r, &r));
    loaded_free(&l);
    uri[XS_SUB_URI_MAX] = route[XS_SUB_ROUTE_MAX] = pidf[XS_SUB_PIDF_MAX] = 'x';

    const char **fields[] = {&r.watcher,    &r.presentity,    &r.call_id,   &r.local_tag,
                             &r.remote_tag, &r.remote_target, &r.route_set, &r.last_pidf};
    const char *over[] = {uri, uri, uri, uri, uri, uri, route, pidf};
    for (int i = 0; i < 8; i++) {
        r = nulls;
        *fields[i] = over[i];
        CHECK(s->ops->put(s, &r) == XS_EINVAL);
        CHECK(strstr(xs_sub_store_error(s), c->where) != NULL);
        CHECK(strstr(xs_sub_store_error(s), "longer than") != NULL);
    }
    r = nulls;
    r.role = 0;
    CHECK(s->ops->put(s, &r) == XS_EINVAL);
    r.role = 3;
    CHECK(s->ops->put(s, &r) == XS_EINVAL);
    CHECK(strstr(xs_sub_store_error(s), "unknown role 3") != NULL);
    r = nulls;
    r.state = 0;
    CHECK(s->ops->put(s, &r) == XS_EINVAL);
    r.state = 4;
    CHECK(s->ops->put(s, &r) == XS_EINVAL);
    r = nulls;
    r.watcher = NULL;
    CHECK(s->ops->put(s, &r) == XS_EINVAL);
    r.watcher = "";
    CHECK(s->ops->put(s, &r) == XS_EINVAL);
    r = nulls;
    r.presentity = NULL;
    CHECK(s->ops->put(s, &r) == XS_EINVAL);
    CHECK(s->ops->del(s, XS_SUB_WATCH_SIP, NULL, "x") == XS_EINVAL);
    c->settle(s);
    CHECK(count(s) == 1);

    c->close(s);
    free(uri);
    free(route);
    free(pidf);
}

static int stop_at_first(void *ud, const struct xs_sub_record *r)
{
    (void)r;
    (*(int *)ud)++;
    return 7;
}

static struct xs_sub_store *reentrant_store;
static int reenter(void *ud, const struct xs_sub_record *r)
{
    struct xs_sub_store *s = reentrant_store;
    int *rcs = ud;
    rcs[0] = s->ops->put(s, r);
    rcs[1] = s->ops->del(s, r->role, r->watcher, r->presentity);
    rcs[2] = s->ops->begin(s);
    rcs[3] = s->ops->load(s, count_cb, &(long){0});
    return 0;
}

/* One batch at a time, a load that stops where its callback says, no
 * store call from inside a load, and an unfinished batch not committed by
 * close. */
__attribute__((unused)) static void contract_batches_and_misuse(const struct contract *c)
{
    struct xs_sub_store *s = c->open();
    if (!s)
        return;
    CHECK(s->ops->commit(s) == XS_ESTATE);
    CHECK(s->ops->begin(s) == 0);
    CHECK(s->ops->begin(s) == XS_ESTATE);
    CHECK(s->ops->put(s, &full) == 0);
    CHECK(s->ops->put(s, &nulls) == 0);
    CHECK(s->ops->commit(s) == 0);
    CHECK(s->ops->commit(s) == XS_ESTATE);
    c->settle(s);

    int calls = 0;
    CHECK(s->ops->load(s, stop_at_first, &calls) == 7);
    CHECK(calls == 1);
    CHECK(count(s) == 2);

    int rcs[4] = {1, 1, 1, 1};
    reentrant_store = s;
    CHECK(s->ops->load(s, reenter, rcs) == 0);
    CHECK(rcs[0] == XS_ESTATE && rcs[1] == XS_ESTATE && rcs[2] == XS_ESTATE && rcs[3] == XS_ESTATE);
    c->settle(s);
    CHECK(count(s) == 2);

    CHECK(s->ops->begin(s) == 0);
    CHECK(s->ops->del(s, full.role, full.watcher, full.presentity) == 0);
    c->close(s);
    s = c->open();
    if (s) {
        CHECK(count(s) == 2);
        c->close(s);
    }
}

/* BATCH records in one batch, put in a scrambled order, all back after a
 * reopen in key order with every field; the times are printed. */
__attribute__((unused)) static void contract_batch_and_reopen(const struct contract *c,
                                                              const char *name)
{
    struct xs_sub_store *s = c->open();
    if (!s)
        return;
    double t0 = now_s();
    CHECK(s->ops->begin(s) == 0);
    int failed = 0;
    for (int k = 0; k < BATCH; k++) {
        struct xs_sub_record r;
        char buf[7][512];
        batch_record((k * 7001) % BATCH, &r, buf);
        failed += s->ops->put(s, &r) != 0;
    }
    double t1 = now_s();
    CHECK(s->ops->commit(s) == 0);
    c->settle(s);
    double t2 = now_s();
    CHECK(failed == 0);
    c->close(s);
    double t3 = now_s();
    s = c->open();
    double t4 = now_s();
    if (!s)
        return;
    struct verify v = {0};
    CHECK(s->ops->load(s, verify_cb, &v) == 0);
    CHECK(v.n == BATCH && v.bad == 0);
    double t5 = now_s();
    printf("%s: batch of %d puts: %.1f ms to queue, %.1f ms until written; reopen %.1f ms; "
           "load of every record checking every field %.1f ms\n",
           name, BATCH, (t1 - t0) * 1e3, (t2 - t0) * 1e3, (t4 - t3) * 1e3, (t5 - t4) * 1e3);
    c->close(s);
}

#endif
