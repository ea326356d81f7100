/* Inside the SIP presence layer (sip_presence.h): what sip_presence.c (the
 * table, timers, store and limits), sip_subscriber.c (role WATCH_SIP) and
 * sip_notifier.c (role WATCH_XMPP) share. Nothing else includes this. */
#ifndef XS_SIP_PRESENCE_INT_H
#define XS_SIP_PRESENCE_INT_H

#include <stdint.h>

#include "presence/pidf.h"
#include "sip/sip_dialog.h"
#include "sip/sip_presence.h"
#include "sip/sip_txn_table.h"

/* What the one timer of a subscription is waiting for. */
enum sub_due {
    DUE_NONE = 0,
    DUE_SEND,    /* a request to send as soon as the answer that set it off is out */
    DUE_REFRESH, /* subscriber: refresh before expiry */
    DUE_RETRY,   /* a failed request, to try again */
    DUE_EXPIRE,  /* the subscription runs out */
};

/* The XMPP resources a SIP watcher has seen of an XMPP presentity (role
 * WATCH_XMPP): the document a NOTIFY carries is the one of the best
 * available resource. Bounded: the oldest gives way. */
#define SUB_RESOURCES 4
struct sub_resource {
    char *id;   /* the GRUU (;gr=) of the presence, "" when none */
    char *pidf; /* the document for it */
    int open;
    int priority;
    uint64_t seq;
};

struct sub {
    struct xs__sip_tnode by_key;    /* key: "role|watcher|presentity" */
    struct xs__sip_tnode by_dialog; /* key: "Call-ID|local tag", once the dialog has both */
    char *key, *dkey;
    struct xs__sip_presence *pr;
    enum xs_sub_role role;
    enum xs_sub_state state;
    char *watcher, *presentity; /* bare SIP URIs */
    char *xmpp_domain;          /* the XMPP party's domain, for the per-domain limit */
    struct xs_sip_dialog d;
    int64_t expires_at; /* Unix time, seconds; 0: not granted yet */
    unsigned asked;     /* subscriber: the Expires we ask for */
    /* The timer: a slot in the layer's heap. */
    uint64_t due_at;
    size_t heap_idx; /* SIZE_MAX when not in the heap */
    enum sub_due due;
    unsigned retries;
    int busy;   /* a request of ours is in flight for this subscription */
    int again;  /* notifier: a newer state is waiting for the one in flight */
    int ending; /* a request that ends the subscription is owed or in flight */
    int stored; /* on the store's dirty list */
    struct sub *dirty_next;
    int restored;       /* came from the store: its first request re-checks the dialog */
    int fetch;          /* a one-time fetch for a probe: in no index but the dialog's, not stored */
    int submitting;     /* its subscribe event is being submitted */
    int policy_pending; /* the policy said "pending": not asked on the other side */
    /* The last document that crossed this subscription: the subscriber's
     * last NOTIFY body; the notifier's only after a restore (else the
     * document is its resource's, and sent_hash tells what was sent). */
    char *last_pidf;
    uint64_t sent_hash;
    struct sub_resource res[SUB_RESOURCES];
    uint64_t res_seq;
};

struct sub_delete {
    struct sub_delete *next;
    enum xs_sub_role role;
    char *watcher, *presentity;
};

/* A count per watcher or per XMPP domain, for the limits. */
struct sub_count {
    struct xs__sip_tnode node;
    size_t n;
    char key[];
};

struct xs__sip_presence {
    uv_loop_t *loop;
    struct xs__sip_txns *t;
    struct xs_sub_store *store;
    /* From the policy. */
    int enabled;
    unsigned expires, min_expires, max_expires;
    size_t max_per_user, max_per_domain, max_total;
    char contact_host[256]; /* "" : the Via host of each request */
    int contact_port;
    enum xs_sip_transport contact_transport;
    char host[256];
    /* The address our last request left from: the Contact host of answers
     * when neither sip.contact nor a specific listener gives one. */
    char learned_host[64];
    /* A subscribe event refused while it was being submitted (the policy
     * answers at once): what to answer the SUBSCRIBE. */
    int sync_refused;
    enum xs_cond sync_cond;
    char sync_text[160];
    void (*on_closed)(void *ud);
    void *closed_ud;
    /* The subscriptions. */
    struct xs__sip_table by_key, by_dialog, per_user, per_domain;
    size_t count[3]; /* by role */
    /* The timers: a binary heap on due_at under one libuv timer. */
    struct sub **heap;
    size_t heap_len, heap_cap;
    uv_timer_t timer;
    uint64_t timer_at;
    /* The store: written once a second. */
    uv_timer_t flush;
    struct sub *dirty;
    struct sub_delete *deletes;
    size_t n_dirty, n_deletes;
    int closing;
    /* One-time fetches for probes without a subscription. */
    size_t fetches;
    unsigned long long notifies_sent, notifies_in, subscribes_sent, presence_out;
};

/* sip_presence.c */
struct sub *xs__sub_find(struct xs__sip_presence *pr, enum xs_sub_role role, const char *watcher,
                         const char *presentity);
struct sub *xs__sub_find_dialog(struct xs__sip_presence *pr, const char *call_id,
                                const char *local_tag);
/* A new subscription, counted against the limits; NULL with *why set
 * (static) when a limit or memory refuses it. */
struct sub *xs__sub_new(struct xs__sip_presence *pr, enum xs_sub_role role, const char *watcher,
                        const char *presentity, const char **why);
/* Puts the subscription's dialog in the dialog index (once call_id and
 * local_tag are set). */
void xs__sub_index_dialog(struct sub *s);
/* Ends and frees it: out of every index and the heap, deleted from the
 * store. A request in flight for it finds nothing when it completes. */
void xs__sub_free(struct sub *s);
/* Schedules the subscription's timer (replacing any) in ms from now. */
void xs__sub_due(struct sub *s, enum sub_due due, uint64_t in_ms);
/* sip_presence_store.c: marks it for the next store write. */
void xs__sub_store(struct sub *s);
/* Writes at most one batch of what changed (deletes first). */
void xs__sub_flush(struct xs__sip_presence *pr);
/* Writes batches until everything is written (or a batch writes nothing). */
void xs__sub_flush_all(struct xs__sip_presence *pr);
/* The once-a-second timer's callback (data: the layer). */
void xs__sub_on_flush(uv_timer_t *t);
/* Queues the deletion of s's record, and takes s off the list of records
 * to write. */
void xs__sub_queue_delete(struct sub *s);
void xs__sub_unlink_dirty(struct sub *s);
/* The window (ms) a restored subscription's first request is spread over:
 * a tenth of what is left of it, at most 30 s, so that a gateway holding
 * thousands does not send them in one burst, and none runs out first. */
uint64_t xs__sub_restore_spread(const struct sub *s);
/* Seconds since the epoch. */
int64_t xs__sub_now(void);
/* The Contact URI requests of ours (p, the Via parameters) and our answers
 * (p NULL) carry, into out. */
void xs__sub_contact(struct xs__sip_presence *pr, const struct xs_sip_req_params *p, char *out,
                     size_t n);
/* A one-time fetch (see sip_subscriber.c): in the dialog index only. */
struct sub *xs__sub_new_fetch(struct xs__sip_presence *pr, const char *watcher,
                              const char *presentity);
/* Hands an event (taken) built by this layer to the router; done and ud
 * as for any submit (NULL done: nothing is owed back). */
void xs__sub_submit(struct xs__sip_presence *pr, struct xs_event *ev, xs_done_cb done, void *ud);
/* A new event of kind and type from -> to (SIP URIs), origin SIP; NULL on
 * OOM (logged). doc (may be NULL) fills the PIDF fields. */
struct xs_event *xs__sub_event(enum xs_event_kind kind, const char *type, const char *from,
                               const char *to, const struct xs_pidf *doc);
/* "sip:a@b" from "sip:a@b;gr=x" (and the gr value into gr, "" when none). */
int xs__sub_split_gr(const char *uri, char *bare, size_t bn, char *gr, size_t gn);
/* The log line of a subscription state change. */
void xs__sub_log(const struct sub *s, const char *what, const char *reason);

/* sip_subscriber.c: role WATCH_SIP */
void xs__subscriber_event(struct xs__sip_presence *pr, struct xs_event *ev);
int xs__subscriber_notify(struct xs__sip_presence *pr, const osip_message_t *req, const char *body,
                          size_t blen, const char **why);
void xs__subscriber_timer(struct sub *s, enum sub_due due);
void xs__subscriber_restored(struct sub *s);

/* sip_notifier.c: role WATCH_XMPP */
void xs__notifier_event(struct xs__sip_presence *pr, struct xs_event *ev);
int xs__notifier_subscribe(struct xs__sip_presence *pr, const osip_message_t *req,
                           const char *to_tag, char *extra, size_t extra_n, const char **why);
void xs__notifier_timer(struct sub *s, enum sub_due due);
void xs__notifier_restored(struct sub *s);
/* The document a NOTIFY would carry now (NULL: none known). */
const char *xs__notifier_doc(const struct sub *s);

#endif
