/* RFC 3261 §17 non-INVITE transactions, both roles, and the side object
 * they live in. Internal to proxy/sip/: sip.c owns start and close, this
 * module owns what happens to each request and response. */
#ifndef XS_SIP_TXN_H
#define XS_SIP_TXN_H

#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/siphash.h"
#include "sip/sip.h"
#include "sip/sip_acl.h"
#include "sip/sip_msg.h"
#include "sip/sip_transport.h"

enum xs_sip_txn_kind { XS_TXN_SERVER = 0, XS_TXN_CLIENT = 1 };

enum xs_sip_txn_state {
    XS_TXN_WAITING = 0, /* client: the way out is being set up */
    XS_TXN_TRYING,      /* server: waiting for done(); client: sent, no answer yet */
    XS_TXN_PROCEEDING,  /* client: a 1xx came */
    XS_TXN_COMPLETED,   /* final response sent (server) or received (client) */
};

struct xs_sip_txn {
    struct xs_sip_txn *hnext;       /* hash chain */
    struct xs_sip_txn *prev, *next; /* the side's list of this kind */
    struct xs_sip *sip;             /* NULL once detached by close */
    enum xs_sip_txn_kind kind;
    enum xs_sip_txn_state state;
    char key[XS_SIP_KEY_MAX];
    uv_timer_t timer; /* J (server); E, F and K (client) */
    int destroyed;    /* out of the table, timer closing */
    int timer_closed;
    int done_owed; /* server: submit's done() has not come yet */
    uint64_t serial;

    /* server */
    struct xs_sip_peer peer;
    osip_message_t *req; /* owned until the final response is built */
    char to_tag[17];
    struct xs_buf resp; /* the final response, resent on retransmissions */
    size_t stored;      /* bytes of resp counted in sip->stored_bytes */

    /* client */
    struct xs_event *ev; /* owned */
    xs_done_cb done;
    void *done_ud;
    struct xs_buf out; /* the request as sent */
    enum xs_sip_transport transport;
    uint64_t f_deadline; /* loop time (ms) of Timer F */
    unsigned interval;   /* current Timer E interval */
    char branch[40];
    char from_tag[17];
    char call_id[300];
};

struct xs_sip_table {
    struct xs_sip_txn **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
    /* Server keys carry the branch the peer chose, so the hash is keyed
     * with a secret drawn per table: nobody can aim keys at one bucket. */
    uint8_t seed[XS_SIPHASH_KEY_LEN];
};

struct xs_sip {
    uv_loop_t *loop;
    struct xs_sip_opts opts;
    struct xs_sip_tp *tp;
    xs_submit_fn submit;
    void *router;
    struct xs_sip_table servers, clients;
    /* Newest first; the tails are the oldest, evicted first when a table
     * is full and they only wait out Timer J or K. */
    struct xs_sip_txn *server_list, *client_list;
    struct xs_sip_txn *server_tail, *client_tail;
    size_t max_message;
    size_t max_body;     /* gateway.max_body: larger bodies get 413 (0: not checked here) */
    size_t stored_bytes; /* of final responses kept, against opts.max_stored_bytes */
    char host[256];      /* our name for Warning agents and generated Call-IDs */
    uint32_t cseq;
    /* The listeners as started, to tell a reload that changes them. */
    struct xs_sip_endpoint *listen;
    size_t n_listen;
    /* The peers requests are accepted from (sip.trusted, or the next hop's
     * resolved addresses). NULL until the first resolution of the next hop
     * is done: requests are answered 503 meanwhile. */
    struct xs_sip_acl *trusted;
    unsigned trust_gen;             /* bumped by every reload: older lookups are stale */
    struct xs_sip_resolve *resolve; /* the newest next-hop lookup in flight */
    size_t resolving;               /* lookups whose callback is still due */
    /* See xs_sip_log_ok. */
    uint64_t log_window;
    unsigned log_lines;
    unsigned long unlogged;
    /* Answers to untrusted sources, all together, in the current second:
     * a bound on what forged sources can make the gateway send anywhere. */
    uint64_t refuse_window;
    unsigned refusals;
    int closing;
    int draining; /* the gateway is stopping: see xs_sip_drain */
    int tp_open;
    size_t timers_open;
    void (*on_closed)(void *ud);
    void *closed_ud;
};

/* n_buckets must be a power of two. Returns 0, XS_ENOMEM, or XS_EIO when
 * no random seed can be had. */
int xs_sip_table_init(struct xs_sip_table *t, size_t n_buckets);
void xs_sip_table_free(struct xs_sip_table *t);
/* The bucket `key` falls into (for tests of the spreading). */
size_t xs_sip_table_bucket(const struct xs_sip_table *t, const char *key);

/* A request (SUBMIT, ANSWER or ACK verdict; `in` is consumed) from `from`. */
void xs_sip_server_request(struct xs_sip *sip, const struct xs_sip_peer *from,
                           struct xs_sip_in *in);
/* A response (RESPONSE verdict; `in` borrowed). */
void xs_sip_client_response(struct xs_sip *sip, const struct xs_sip_in *in);
/* Starts a client transaction for ev (taken). */
void xs_sip_client_start(struct xs_sip *sip, struct xs_event *ev, xs_done_cb done, void *ud);
/* The transport's next_hop() callback. */
void xs_sip_client_next_hop(struct xs_sip *sip, int status);
/* Completes every transaction for close: client ones with
 * service-unavailable, server ones still waiting with a 503. */
void xs_sip_txn_close_all(struct xs_sip *sip);
/* Called when a transaction timer has closed, so close can finish. */
void xs_sip_maybe_closed(struct xs_sip *sip);
/* 1 when a line about a hostile or stray packet may be logged now: at most
 * ten a second, so a flood cannot flood the log. The lines held back are
 * counted in sip->unlogged. */
int xs_sip_log_ok(struct xs_sip *sip);

#endif
