/* The SIP presence layer's common part (see sip_presence.h): the table of
 * subscriptions and its indexes, the limits, the one timer, start and
 * close, and the dispatch of events and requests to the subscriber
 * (sip_subscriber.c) and notifier (sip_notifier.c) halves; the store is
 * sip_presence_store.c's. */
#include "sip/sip_presence_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"

#define FLUSH_MS 1000

int64_t xs__sub_now(void)
{
    return (int64_t)time(NULL);
}

uint64_t xs__sub_restore_spread(const struct sub *s)
{
    int64_t left = s->expires_at - xs__sub_now();
    uint64_t w = left > 0 ? (uint64_t)left * 100 : 1;
    return w > 30000 ? 30000 : w;
}

static const char *role_name(enum xs_sub_role r)
{
    return r == XS_SUB_WATCH_SIP ? "xmpp-watches-sip" : "sip-watches-xmpp";
}

static const char *state_name(enum xs_sub_state s)
{
    return s == XS_SUB_STATE_ACTIVE    ? "active"
           : s == XS_SUB_STATE_PENDING ? "pending"
                                       : "terminated";
}

void xs__sub_log(const struct sub *s, const char *what, const char *reason)
{
    char qw[160], qp[160], qr[160];
    xs_log(XS_LOG_INFO, "presence.sub",
           "role=%s watcher=%s presentity=%s state=%s event=%s reason=%s", role_name(s->role),
           xs_log_quote(qw, sizeof qw, s->watcher), xs_log_quote(qp, sizeof qp, s->presentity),
           state_name(s->state), what, xs_log_quote(qr, sizeof qr, reason));
}

/* ---- indexes and limits ---- */

static char *key_of(enum xs_sub_role role, const char *watcher, const char *presentity)
{
    size_t n = strlen(watcher) + strlen(presentity) + 8;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%d|%s|%s", (int)role, watcher, presentity);
    return k;
}

struct sub *xs__sub_find(struct xs__sip_presence *pr, enum xs_sub_role role, const char *watcher,
                         const char *presentity)
{
    char *k = key_of(role, watcher, presentity);
    if (!k)
        return NULL;
    struct xs__sip_tnode *n = xs__sip_table_find(&pr->by_key, k);
    free(k);
    return n ? (struct sub *)((char *)n - offsetof(struct sub, by_key)) : NULL;
}

static char *dkey_of(const char *call_id, const char *local_tag)
{
    size_t n = strlen(call_id) + strlen(local_tag) + 2;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s|%s", call_id, local_tag);
    return k;
}

struct sub *xs__sub_find_dialog(struct xs__sip_presence *pr, const char *call_id,
                                const char *local_tag)
{
    char *k = dkey_of(call_id, local_tag);
    if (!k)
        return NULL;
    struct xs__sip_tnode *n = xs__sip_table_find(&pr->by_dialog, k);
    free(k);
    return n ? (struct sub *)((char *)n - offsetof(struct sub, by_dialog)) : NULL;
}

void xs__sub_index_dialog(struct sub *s)
{
    if (s->dkey || !s->d.call_id || !s->d.local_tag)
        return;
    s->dkey = dkey_of(s->d.call_id, s->d.local_tag);
    if (!s->dkey)
        return;
    s->by_dialog.key = s->dkey;
    xs__sip_table_insert(&s->pr->by_dialog, &s->by_dialog);
}

static struct sub_count *count_find(struct xs__sip_table *t, const char *key)
{
    struct xs__sip_tnode *n = xs__sip_table_find(t, key);
    return n ? (struct sub_count *)n : NULL;
}

static size_t count_of(struct xs__sip_table *t, const char *key)
{
    struct sub_count *c = count_find(t, key);
    return c ? c->n : 0;
}

static int count_add(struct xs__sip_table *t, const char *key)
{
    struct sub_count *c = count_find(t, key);
    if (!c) {
        size_t l = strlen(key);
        c = calloc(1, sizeof *c + l + 1);
        if (!c)
            return XS_ENOMEM;
        memcpy(c->key, key, l + 1);
        c->node.key = c->key;
        xs__sip_table_insert(t, &c->node);
    }
    c->n++;
    return 0;
}

static void count_drop(struct xs__sip_table *t, const char *key)
{
    struct sub_count *c = count_find(t, key);
    if (c && --c->n == 0) {
        xs__sip_table_remove(t, &c->node);
        free(c);
    }
}

/* The domain of a SIP URI ("sip:a@b;x" -> "b"), lower-case as events carry it. */
static char *domain_of(const char *uri)
{
    const char *at = strchr(uri, '@');
    const char *h = at ? at + 1 : strchr(uri, ':');
    if (!h)
        return NULL;
    if (!at)
        h++;
    size_t n = strcspn(h, ";:>?");
    return strndup(h, n);
}

struct sub *xs__sub_new(struct xs__sip_presence *pr, enum xs_sub_role role, const char *watcher,
                        const char *presentity, const char **why)
{
    /* The XMPP party is the watcher of a WATCH_SIP subscription, the
     * presentity of a WATCH_XMPP one: one XMPP user with a huge roster,
     * or one XMPP domain, must not fill the table. */
    const char *user = role == XS_SUB_WATCH_SIP ? watcher : presentity;
    char *domain = domain_of(user);
    if (!domain) {
        *why = "address without a domain";
        return NULL;
    }
    if (pr->count[XS_SUB_WATCH_SIP] + pr->count[XS_SUB_WATCH_XMPP] >= pr->max_total) {
        *why = "too many subscriptions (presence.max_total)";
        free(domain);
        return NULL;
    }
    if (count_of(&pr->per_user, user) >= pr->max_per_user) {
        *why = "too many subscriptions for this user (presence.max_per_user)";
        free(domain);
        return NULL;
    }
    if (count_of(&pr->per_domain, domain) >= pr->max_per_domain) {
        *why = "too many subscriptions for this domain (presence.max_per_domain)";
        free(domain);
        return NULL;
    }
    struct sub *s = calloc(1, sizeof *s);
    if (s) {
        s->key = key_of(role, watcher, presentity);
        s->watcher = strdup(watcher);
        s->presentity = strdup(presentity);
        s->xmpp_domain = domain;
        domain = NULL;
    }
    if (!s || !s->key || !s->watcher || !s->presentity || count_add(&pr->per_user, user) != 0) {
        if (s) {
            free(s->key);
            free(s->watcher);
            free(s->presentity);
            free(s->xmpp_domain);
        }
        free(s);
        free(domain);
        *why = "out of memory";
        return NULL;
    }
    if (count_add(&pr->per_domain, s->xmpp_domain) != 0) {
        count_drop(&pr->per_user, user);
        free(s->key);
        free(s->watcher);
        free(s->presentity);
        free(s->xmpp_domain);
        free(s);
        *why = "out of memory";
        return NULL;
    }
    s->pr = pr;
    s->role = role;
    s->state = XS_SUB_STATE_PENDING;
    s->heap_idx = SIZE_MAX;
    s->by_key.key = s->key;
    xs__sip_table_insert(&pr->by_key, &s->by_key);
    pr->count[role]++;
    return s;
}

/* Fetches in flight at most: each is one SUBSCRIBE and a NOTIFY awaited
 * for 32 s. */
#define FETCH_MAX 256

struct sub *xs__sub_new_fetch(struct xs__sip_presence *pr, const char *watcher,
                              const char *presentity)
{
    if (pr->fetches >= FETCH_MAX)
        return NULL;
    struct sub *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->watcher = strdup(watcher);
    s->presentity = strdup(presentity);
    if (!s->watcher || !s->presentity) {
        free(s->watcher);
        free(s->presentity);
        free(s);
        return NULL;
    }
    s->pr = pr;
    s->fetch = 1;
    s->role = XS_SUB_WATCH_SIP;
    s->state = XS_SUB_STATE_PENDING;
    s->heap_idx = SIZE_MAX;
    pr->fetches++;
    return s;
}

/* ---- the timer heap ---- */

static void heap_swap(struct xs__sip_presence *pr, size_t a, size_t b)
{
    struct sub *t = pr->heap[a];
    pr->heap[a] = pr->heap[b];
    pr->heap[b] = t;
    pr->heap[a]->heap_idx = a;
    pr->heap[b]->heap_idx = b;
}

static void heap_up(struct xs__sip_presence *pr, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (pr->heap[p]->due_at <= pr->heap[i]->due_at)
            break;
        heap_swap(pr, i, p);
        i = p;
    }
}

static void heap_down(struct xs__sip_presence *pr, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < pr->heap_len && pr->heap[l]->due_at < pr->heap[m]->due_at)
            m = l;
        if (r < pr->heap_len && pr->heap[r]->due_at < pr->heap[m]->due_at)
            m = r;
        if (m == i)
            return;
        heap_swap(pr, i, m);
        i = m;
    }
}

static void heap_remove(struct xs__sip_presence *pr, struct sub *s)
{
    size_t i = s->heap_idx;
    if (i == SIZE_MAX)
        return;
    pr->heap_len--;
    if (i != pr->heap_len) {
        pr->heap[i] = pr->heap[pr->heap_len];
        pr->heap[i]->heap_idx = i;
        heap_down(pr, i);
        heap_up(pr, i);
    }
    s->heap_idx = SIZE_MAX;
    s->due = DUE_NONE;
}

static void on_timer(uv_timer_t *t);

/* Keeps the libuv timer at the heap's earliest deadline. */
static void timer_arm(struct xs__sip_presence *pr)
{
    if (pr->closing)
        return;
    if (!pr->heap_len) {
        uv_timer_stop(&pr->timer);
        pr->timer_at = 0;
        return;
    }
    uint64_t at = pr->heap[0]->due_at, now = uv_now(pr->loop);
    if (pr->timer_at == at && uv_is_active((uv_handle_t *)&pr->timer))
        return;
    pr->timer_at = at;
    uv_timer_start(&pr->timer, on_timer, at > now ? at - now : 0, 0);
}

void xs__sub_due(struct sub *s, enum sub_due due, uint64_t in_ms)
{
    struct xs__sip_presence *pr = s->pr;
    heap_remove(pr, s);
    if (due == DUE_NONE) {
        timer_arm(pr);
        return;
    }
    if (pr->heap_len == pr->heap_cap) {
        size_t cap = pr->heap_cap ? pr->heap_cap * 2 : 256;
        struct sub **h = realloc(pr->heap, cap * sizeof *h);
        if (!h) {
            xs_log(XS_LOG_ERROR, "presence.timer", "result=failed reason=\"out of memory\"");
            return;
        }
        pr->heap = h;
        pr->heap_cap = cap;
    }
    s->due = due;
    s->due_at = uv_now(pr->loop) + in_ms;
    s->heap_idx = pr->heap_len;
    pr->heap[pr->heap_len++] = s;
    heap_up(pr, s->heap_idx);
    timer_arm(pr);
}

static void on_timer(uv_timer_t *t)
{
    struct xs__sip_presence *pr = t->data;
    pr->timer_at = 0;
    uint64_t now = uv_now(pr->loop);
    /* A bounded number per turn, so that a burst of deadlines (after a
     * restore) shares the loop with the traffic. */
    for (int n = 0; n < 512 && pr->heap_len && pr->heap[0]->due_at <= now; n++) {
        struct sub *s = pr->heap[0];
        enum sub_due due = s->due;
        heap_remove(pr, s);
        if (s->role == XS_SUB_WATCH_SIP)
            xs__subscriber_timer(s, due);
        else
            xs__notifier_timer(s, due);
    }
    timer_arm(pr);
}

static void sub_release(struct sub *s)
{
    struct xs__sip_presence *pr = s->pr;
    heap_remove(pr, s);
    xs__sub_unlink_dirty(s);
    if (s->dkey)
        xs__sip_table_remove(&pr->by_dialog, &s->by_dialog);
    if (s->fetch) {
        pr->fetches--;
    } else {
        xs__sip_table_remove(&pr->by_key, &s->by_key);
        count_drop(&pr->per_user, s->role == XS_SUB_WATCH_SIP ? s->watcher : s->presentity);
        count_drop(&pr->per_domain, s->xmpp_domain);
        pr->count[s->role]--;
    }
    xs_sip_dialog_clear(&s->d);
    for (int i = 0; i < SUB_RESOURCES; i++) {
        free(s->res[i].id);
        free(s->res[i].pidf);
    }
    free(s->last_pidf);
    free(s->key);
    free(s->dkey);
    free(s->watcher);
    free(s->presentity);
    free(s->xmpp_domain);
}

void xs__sub_free(struct sub *s)
{
    if (!s->fetch)
        xs__sub_queue_delete(s);
    sub_release(s);
    if (s->busy) {
        /* The request in flight still points here: it finds the
         * subscription gone (pr NULL) and frees it. */
        s->pr = NULL;
        return;
    }
    free(s);
}

/* ---- events toward the router ---- */

int xs__sub_split_gr(const char *uri, char *bare, size_t bn, char *gr, size_t gn)
{
    const char *semi = strchr(uri, ';');
    size_t n = semi ? (size_t)(semi - uri) : strlen(uri);
    if (n >= bn)
        return XS_ELIMIT;
    memcpy(bare, uri, n);
    bare[n] = '\0';
    gr[0] = '\0';
    for (const char *p = semi; p; p = strchr(p + 1, ';')) {
        if (!strncmp(p, ";gr=", 4)) {
            size_t l = strcspn(p + 4, ";");
            if (l >= gn)
                return XS_ELIMIT;
            memcpy(gr, p + 4, l);
            gr[l] = '\0';
        }
    }
    return 0;
}

struct xs_event *xs__sub_event(enum xs_event_kind kind, const char *type, const char *from,
                               const char *to, const struct xs_pidf *doc)
{
    struct xs_event *ev = xs_event_new(kind, XS_SIDE_SIP);
    int rc = xs_event_set(&ev->from, from);
    rc = rc ? rc : xs_event_set(&ev->to, to);
    rc = rc ? rc : xs_event_set(&ev->type, type);
    if (!rc && doc) {
        rc = xs_event_set(&ev->basic, doc->basic == XS_PIDF_OPEN     ? "open"
                                      : doc->basic == XS_PIDF_CLOSED ? "closed"
                                                                     : NULL);
        if (!rc && doc->note[0])
            rc = xs_event_set(&ev->note, doc->note);
        if (!rc && doc->note_lang[0])
            rc = xs_event_set(&ev->lang, doc->note_lang);
        if (!rc && doc->activities[0])
            rc = xs_event_set(&ev->activities, doc->activities);
        ev->availability = doc->availability;
    }
    if (rc) {
        xs_event_free(ev);
        xs_log(XS_LOG_ERROR, "presence.event", "type=%s result=dropped reason=\"out of memory\"",
               type);
        return NULL;
    }
    ev->auth = "trusted-source";
    return ev;
}

static void no_outcome(void *ud, enum xs_cond cond, const char *text)
{
    (void)ud;
    (void)cond;
    (void)text;
}

void xs__sub_submit(struct xs__sip_presence *pr, struct xs_event *ev, xs_done_cb done, void *ud)
{
    if (!ev)
        return;
    if (!pr->t->submit) {
        xs_event_free(ev);
        if (done)
            done(ud, XS_COND_SERVICE_UNAVAILABLE, "not routing");
        return;
    }
    if (ev->kind == XS_EVENT_PRESENCE)
        pr->presence_out++;
    pr->t->submit(pr->t->router, ev, done ? done : no_outcome, ud);
}

void xs__sub_contact(struct xs__sip_presence *pr, const struct xs_sip_req_params *p, char *out,
                     size_t n)
{
    if (p)
        snprintf(pr->learned_host, sizeof pr->learned_host, "%s", p->via_host);
    const char *host = pr->contact_host[0]   ? pr->contact_host
                       : pr->learned_host[0] ? pr->learned_host
                                             : pr->host;
    int v6 = strchr(host, ':') != NULL;
    const char *tp = pr->contact_transport == XS_SIP_TCP   ? ";transport=tcp"
                     : pr->contact_transport == XS_SIP_TLS ? ";transport=tls"
                                                           : "";
    snprintf(out, n, "sip:%s%s%s:%d%s", v6 ? "[" : "", host, v6 ? "]" : "",
             pr->contact_port ? pr->contact_port
             : p              ? p->via_port
                              : 5060,
             tp);
}

/* ---- configuration, start, restore, close ---- */

void xs__sip_presence_configure(struct xs__sip_presence *pr, const struct xs_config *cfg)
{
    pr->enabled = cfg->presence_enabled;
    pr->expires = cfg->presence_expires ? cfg->presence_expires : 3600;
    pr->min_expires = cfg->presence_min_expires ? cfg->presence_min_expires : 60;
    pr->max_expires = cfg->presence_max_expires ? cfg->presence_max_expires : 86400;
    pr->max_per_user = cfg->presence_max_per_user ? cfg->presence_max_per_user : 1000;
    pr->max_per_domain = cfg->presence_max_per_domain ? cfg->presence_max_per_domain : 20000;
    pr->max_total = cfg->presence_max_total ? cfg->presence_max_total : 100000;
    snprintf(pr->host, sizeof pr->host, "%s",
             cfg->n_domains && cfg->domains[0] ? cfg->domains[0] : "xsgw");
    /* The Contact: sip.contact when given, else the first listener of the
     * next hop's transport (its host unless it is a wildcard, in which case
     * the address our requests leave from, which the edge reaches us at). */
    pr->contact_host[0] = '\0';
    pr->contact_port = 0;
    pr->contact_transport = cfg->sip_next_hop.host ? cfg->sip_next_hop.transport : XS_SIP_UDP;
    const struct xs_sip_endpoint *l = NULL;
    for (size_t i = 0; i < cfg->n_sip_listen && !l; i++)
        if (cfg->sip_listen[i].transport == pr->contact_transport)
            l = &cfg->sip_listen[i];
    if (cfg->sip_contact) {
        const char *c = cfg->sip_contact;
        const char *colon = strrchr(c, ':');
        size_t hl = colon ? (size_t)(colon - c) : strlen(c);
        if (c[0] == '[' && hl >= 2 && c[hl - 1] == ']') {
            c++;
            hl -= 2;
        }
        if (hl < sizeof pr->contact_host) {
            memcpy(pr->contact_host, c, hl);
            pr->contact_host[hl] = '\0';
        }
        pr->contact_port = colon ? atoi(colon + 1) : 0;
    } else if (l) {
        if (l->host && strcmp(l->host, "0.0.0.0") != 0 && strcmp(l->host, "::") != 0)
            snprintf(pr->contact_host, sizeof pr->contact_host, "%s", l->host);
        pr->contact_port = l->port;
    }
}

int xs__sip_presence_start(uv_loop_t *loop, struct xs__sip_txns *t, const struct xs_config *cfg,
                           struct xs_sub_store *store, struct xs__sip_presence **out)
{
    *out = NULL;
    struct xs__sip_presence *pr = calloc(1, sizeof *pr);
    if (!pr) {
        if (store)
            store->ops->close(store);
        return XS_ENOMEM;
    }
    pr->loop = loop;
    pr->t = t;
    pr->store = store;
    int rc = xs__sip_table_init(&pr->by_key, 256);
    rc = rc ? rc : xs__sip_table_init(&pr->by_dialog, 256);
    rc = rc ? rc : xs__sip_table_init(&pr->per_user, 256);
    rc = rc ? rc : xs__sip_table_init(&pr->per_domain, 64);
    if (rc) {
        xs__sip_table_free(&pr->by_key);
        xs__sip_table_free(&pr->by_dialog);
        xs__sip_table_free(&pr->per_user);
        xs__sip_table_free(&pr->per_domain);
        if (store)
            store->ops->close(store);
        free(pr);
        return rc;
    }
    xs__sip_presence_configure(pr, cfg);
    uv_timer_init(loop, &pr->timer);
    pr->timer.data = pr;
    uv_timer_init(loop, &pr->flush);
    pr->flush.data = pr;
    if (store)
        uv_timer_start(&pr->flush, xs__sub_on_flush, FLUSH_MS, FLUSH_MS);
    *out = pr;
    return 0;
}

size_t xs__sip_presence_count(const struct xs__sip_presence *pr, enum xs_sub_role role)
{
    return pr->count[role];
}

static void on_timer_closed(uv_handle_t *h)
{
    struct xs__sip_presence *pr = h->data;
    if (h == (uv_handle_t *)&pr->timer) {
        uv_close((uv_handle_t *)&pr->flush, on_timer_closed);
        return;
    }
    void (*cb)(void *) = pr->on_closed;
    void *ud = pr->closed_ud;
    free(pr);
    if (cb)
        cb(ud);
}

void xs__sip_presence_close(struct xs__sip_presence *pr, void (*on_closed)(void *ud), void *ud)
{
    pr->closing = 1;
    pr->on_closed = on_closed;
    pr->closed_ud = ud;
    uv_timer_stop(&pr->timer);
    uv_timer_stop(&pr->flush);
    xs__sub_flush_all(pr);
    xs_log(XS_LOG_INFO, "presence.closed",
           "xmpp_watches_sip=%zu sip_watches_xmpp=%zu kept=store unstored=%zu",
           pr->count[XS_SUB_WATCH_SIP], pr->count[XS_SUB_WATCH_XMPP], pr->n_dirty + pr->n_deletes);
    while (pr->deletes) {
        struct sub_delete *d = pr->deletes;
        pr->deletes = d->next;
        free(d->watcher);
        free(d->presentity);
        free(d);
    }
    /* Everything still held is released without being ended on the wire:
     * the store has it for the next start. */
    for (size_t b = 0; b < pr->by_key.n_buckets; b++) {
        while (pr->by_key.buckets[b]) {
            struct sub *s =
                (struct sub *)((char *)pr->by_key.buckets[b] - offsetof(struct sub, by_key));
            s->stored = 0;
            sub_release(s);
            if (s->busy)
                s->pr = NULL;
            else
                free(s);
        }
    }
    /* The fetches are in the dialog index only. */
    for (size_t b = 0; b < pr->by_dialog.n_buckets; b++) {
        while (pr->by_dialog.buckets[b]) {
            struct sub *s =
                (struct sub *)((char *)pr->by_dialog.buckets[b] - offsetof(struct sub, by_dialog));
            sub_release(s);
            if (s->busy)
                s->pr = NULL;
            else
                free(s);
        }
    }
    xs__sip_table_free(&pr->by_key);
    xs__sip_table_free(&pr->by_dialog);
    for (struct xs__sip_table *t = &pr->per_user;; t = &pr->per_domain) {
        for (size_t b = 0; b < t->n_buckets; b++) {
            while (t->buckets[b]) {
                struct xs__sip_tnode *n = t->buckets[b];
                xs__sip_table_remove(t, n);
                free(n);
            }
        }
        xs__sip_table_free(t);
        if (t == &pr->per_domain)
            break;
    }
    free(pr->heap);
    if (pr->store)
        pr->store->ops->close(pr->store);
    uv_close((uv_handle_t *)&pr->timer, on_timer_closed);
}

/* ---- dispatch ---- */

void xs__sip_presence_deliver(struct xs__sip_presence *pr, struct xs_event *ev, xs_done_cb done,
                              void *ud)
{
    /* Which half owns the event: a subscription request or a probe from an
     * XMPP user, and their unsubscribe, concern what the XMPP user watches
     * (subscriber); approvals, refusals and presence from an XMPP user
     * concern what SIP users watch of them (notifier). */
    int subscriber = ev->type && (!strcmp(ev->type, "subscribe") ||
                                  !strcmp(ev->type, "unsubscribe") || !strcmp(ev->type, "probe"));
    if (pr->closing) {
        xs_event_free(ev);
        done(ud, XS_COND_SERVICE_UNAVAILABLE, "SIP side is shutting down");
        return;
    }
    if (subscriber)
        xs__subscriber_event(pr, ev);
    else
        xs__notifier_event(pr, ev);
    /* Nothing in XMPP answers presence or subscription stanzas, so there is
     * no outcome to wait for: what fails later is said with presence of its
     * own (unsubscribed, unavailable). */
    done(ud, XS_COND_NONE, NULL);
}

int xs__sip_presence_request(void *ud, const struct xs_sip_peer *from, const osip_message_t *req,
                             const char *body, size_t blen, const char *to_tag, char *extra,
                             size_t extra_n, const char **why)
{
    struct xs__sip_presence *pr = ud;
    (void)from;
    if (pr->closing) {
        *why = "shutting down";
        snprintf(extra, extra_n, "Retry-After: 5\r\n");
        return 503;
    }
    if (!xs_sip_event_is_presence(req)) {
        *why = "only the presence event package is supported";
        snprintf(extra, extra_n, "Allow-Events: presence\r\n");
        return 489;
    }
    if (!strcmp(req->sip_method, "NOTIFY"))
        return xs__subscriber_notify(pr, req, body, blen, why);
    if (!pr->enabled) {
        *why = "presence is not carried by this gateway";
        return 403;
    }
    return xs__notifier_subscribe(pr, req, to_tag, extra, extra_n, why);
}
