/* The SIP presence layer's store side (see sip_presence.h): what changed
 * is written to the subscription store in batches once a second, and what
 * the store holds is restored at start. */
#include "sip/sip_presence_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"

/* Subscriptions written to the store in one transaction at most: a storm
 * of changes is written over several seconds rather than stalling the
 * loop for one long commit. */
#define FLUSH_BATCH 4096

/* ---- the store ---- */

void xs__sub_store(struct sub *s)
{
    if (s->stored || !s->pr->store)
        return;
    s->stored = 1;
    s->dirty_next = s->pr->dirty;
    s->pr->dirty = s;
    s->pr->n_dirty++;
}

static void record_of(const struct sub *s, struct xs_sub_record *r)
{
    *r = (struct xs_sub_record){
        .role = s->role,
        .watcher = s->watcher,
        .presentity = s->presentity,
        .state = s->state,
        .call_id = s->d.call_id,
        .local_tag = s->d.local_tag,
        .remote_tag = s->d.remote_tag,
        .remote_target = s->d.remote_target,
        .route_set = s->d.route_set,
        .local_cseq = s->d.local_cseq,
        .remote_cseq = s->d.remote_cseq,
        .expires_at = s->expires_at,
        .last_pidf = s->role == XS_SUB_WATCH_XMPP ? xs__notifier_doc(s) : s->last_pidf,
    };
}

/* Writes at most FLUSH_BATCH changes in one transaction. A record the
 * store refuses (a peer's tag or document past the store's bounds) is
 * logged and left out; the rest of the batch is written all the same. */
void xs__sub_flush(struct xs__sip_presence *pr)
{
    if (!pr->store || (!pr->dirty && !pr->deletes))
        return;
    struct xs_sub_store *st = pr->store;
    if (st->ops->begin(st) != 0) {
        xs_log(XS_LOG_ERROR, "presence.store", "result=failed reason=\"%s\"",
               xs_sub_store_error(st));
        return;
    }
    size_t n = 0, refused = 0;
    while (pr->deletes && n < FLUSH_BATCH) {
        struct sub_delete *d = pr->deletes;
        if (st->ops->del(st, d->role, d->watcher, d->presentity) != 0)
            refused++;
        pr->deletes = d->next;
        pr->n_deletes--;
        free(d->watcher);
        free(d->presentity);
        free(d);
        n++;
    }
    while (pr->dirty && n < FLUSH_BATCH) {
        struct sub *s = pr->dirty;
        pr->dirty = s->dirty_next;
        pr->n_dirty--;
        s->stored = 0;
        struct xs_sub_record r;
        record_of(s, &r);
        if (st->ops->put(st, &r) != 0) {
            refused++;
            char qw[160], qp[160];
            xs_log(XS_LOG_WARN, "presence.store",
                   "watcher=%s presentity=%s result=not-stored "
                   "reason=\"%s\"",
                   xs_log_quote(qw, sizeof qw, s->watcher),
                   xs_log_quote(qp, sizeof qp, s->presentity), xs_sub_store_error(st));
        }
        n++;
    }
    if (st->ops->commit(st) != 0)
        xs_log(XS_LOG_ERROR, "presence.store", "result=failed written=%zu reason=\"%s\"", n,
               xs_sub_store_error(st));
    else if (refused)
        xs_log(XS_LOG_WARN, "presence.store", "written=%zu refused=%zu", n - refused, refused);
}

void xs__sub_flush_all(struct xs__sip_presence *pr)
{
    while (pr->dirty || pr->deletes) {
        size_t before = pr->n_dirty + pr->n_deletes;
        xs__sub_flush(pr);
        if (pr->n_dirty + pr->n_deletes >= before)
            break;
    }
}

void xs__sub_on_flush(uv_timer_t *t)
{
    xs__sub_flush(t->data);
}

void xs__sub_queue_delete(struct sub *s)
{
    struct xs__sip_presence *pr = s->pr;
    if (!pr->store)
        return;
    struct sub_delete *d = calloc(1, sizeof *d);
    if (d) {
        d->role = s->role;
        d->watcher = strdup(s->watcher);
        d->presentity = strdup(s->presentity);
    }
    if (!d || !d->watcher || !d->presentity) {
        if (d) {
            free(d->watcher);
            free(d->presentity);
        }
        free(d);
        xs_log(XS_LOG_ERROR, "presence.store", "result=failed reason=\"out of memory\"");
        return;
    }
    d->next = pr->deletes;
    pr->deletes = d;
    pr->n_deletes++;
}

void xs__sub_unlink_dirty(struct sub *s)
{
    if (!s->stored)
        return;
    for (struct sub **p = &s->pr->dirty; *p; p = &(*p)->dirty_next) {
        if (*p == s) {
            *p = s->dirty_next;
            s->pr->n_dirty--;
            break;
        }
    }
    s->stored = 0;
}

static int restore_one(void *ud, const struct xs_sub_record *r)
{
    struct xs__sip_presence *pr = ud;
    const char *why = NULL;
    if (!r->watcher || !r->presentity ||
        (r->role != XS_SUB_WATCH_SIP && r->role != XS_SUB_WATCH_XMPP))
        return 0;
    if (r->expires_at && r->expires_at <= xs__sub_now()) {
        /* It ran out while the gateway was down. */
        struct sub tmp = {.pr = pr, .role = r->role};
        tmp.watcher = (char *)r->watcher;
        tmp.presentity = (char *)r->presentity;
        xs__sub_queue_delete(&tmp);
        return 0;
    }
    struct sub *s = xs__sub_new(pr, r->role, r->watcher, r->presentity, &why);
    if (!s) {
        char qw[160], qp[160];
        xs_log(XS_LOG_WARN, "presence.restore", "watcher=%s presentity=%s result=dropped reason=%s",
               xs_log_quote(qw, sizeof qw, r->watcher), xs_log_quote(qp, sizeof qp, r->presentity),
               why);
        return 0;
    }
    s->state = r->state;
    s->expires_at = r->expires_at;
    s->restored = 1;
    int rc = xs_sip_dialog_set(&s->d.call_id, r->call_id);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.local_tag, r->local_tag);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.remote_tag, r->remote_tag);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.remote_target, r->remote_target);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.route_set, r->route_set);
    rc = rc ? rc : xs_sip_dialog_set(&s->last_pidf, r->last_pidf);
    rc = rc ? rc
            : xs_sip_dialog_set(&s->d.local_uri,
                                r->role == XS_SUB_WATCH_SIP ? r->watcher : r->presentity);
    rc = rc ? rc
            : xs_sip_dialog_set(&s->d.remote_uri,
                                r->role == XS_SUB_WATCH_SIP ? r->presentity : r->watcher);
    /* CSeqs written since the last store write are lost in a crash: ours
     * jumps ahead so the peer sees it grow all the same. */
    s->d.local_cseq = r->local_cseq + 1000;
    s->d.remote_cseq = r->remote_cseq;
    if (rc) {
        xs__sub_free(s);
        return XS_ENOMEM;
    }
    xs__sub_index_dialog(s);
    xs__sub_store(s);
    if (s->role == XS_SUB_WATCH_SIP)
        xs__subscriber_restored(s);
    else
        xs__notifier_restored(s);
    return 0;
}

/* A record a shared store took over from a dead instance: restored as a
 * start restores, unless this gateway holds the same subscription already
 * (then the peer has two dialogs for it, and the adopted one runs out). */
static int adopt_one(void *ud, const struct xs_sub_record *r)
{
    struct xs__sip_presence *pr = ud;
    if (pr->closing)
        return 0;
    if (xs__sub_find(pr, r->role, r->watcher, r->presentity)) {
        char qw[160], qp[160];
        xs_log(XS_LOG_INFO, "presence.adopt",
               "watcher=%s presentity=%s result=dropped "
               "reason=\"held here already\"",
               xs_log_quote(qw, sizeof qw, r->watcher), xs_log_quote(qp, sizeof qp, r->presentity));
        return 0;
    }
    return restore_one(pr, r);
}

/* The shared store lost writes and dropped this instance's records: every
 * subscription held is written again by the next flushes. */
static void resync_all(void *ud)
{
    struct xs__sip_presence *pr = ud;
    for (size_t b = 0; b < pr->by_key.n_buckets; b++)
        for (struct xs__sip_tnode *n = pr->by_key.buckets[b]; n; n = n->hnext)
            xs__sub_store((struct sub *)((char *)n - offsetof(struct sub, by_key)));
}

void xs__sip_presence_restore(struct xs__sip_presence *pr)
{
    if (!pr->store)
        return;
    pr->store->adopt = adopt_one;
    pr->store->resync = resync_all;
    pr->store->user_ud = pr;
    int rc = pr->store->ops->load(pr->store, restore_one, pr);
    if (rc)
        xs_log(XS_LOG_ERROR, "presence.restore", "result=failed reason=\"%s\"",
               xs_sub_store_error(pr->store));
    /* The CSeqs moved ahead by the restore are written before anything is
     * sent with them: a crash before the first batch would otherwise make
     * the next start move ahead from the same values and send them again. */
    xs__sub_flush_all(pr);
    xs_log(XS_LOG_INFO, "presence.restore", "xmpp_watches_sip=%zu sip_watches_xmpp=%zu",
           pr->count[XS_SUB_WATCH_SIP], pr->count[XS_SUB_WATCH_XMPP]);
}
