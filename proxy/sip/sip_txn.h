/* RFC 3261 §17 non-INVITE transactions, both roles: what happens to each
 * request and response once sip_msg.c has given its verdict, the timers
 * that keep them, and the tables they are found in. The layer lives in a
 * struct xs__sip_txns that the side (sip.c) embeds and wires up; it knows
 * nothing of the side and reports back only through on_idle.
 *
 * These are internals of proxy/sip/, hence the xs__ prefix: only sip.c and
 * the unit test of the hash table include this header. */
#ifndef XS_SIP_TXN_H
#define XS_SIP_TXN_H

#include <stdint.h>
#include <uv.h>

#include "core/siphash.h"
#include "event.h"
#include "sip/sip.h"
#include "sip/sip_msg.h"
#include "sip/sip_transport.h"

struct xs_sip_txn;

struct xs__sip_table {
    struct xs_sip_txn **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
    /* Server keys carry the branch the peer chose, so the hash is keyed
     * with a secret drawn per table: nobody can aim keys at one bucket. */
    uint8_t seed[XS_SIPHASH_KEY_LEN];
};

struct xs__sip_txns {
    /* Given by xs__sip_txns_init, borrowed for the layer's whole life. */
    uv_loop_t *loop;
    const struct xs_sip_opts *opts;
    const char *host; /* our name for Warning agents and generated Call-IDs */
    /* The side's to set, and to keep current. */
    struct xs_sip_tp *tp; /* the transports, before the first message */
    xs_submit_fn submit;  /* where arriving MESSAGE events go; NULL: 503 */
    void *router;
    size_t max_message;
    int draining; /* the gateway is stopping: see xs_sip_drain */
    /* Runs each time the last open transaction timer has closed; the side
     * may free the layer from it. */
    void (*on_idle)(void *ud);
    void *idle_ud;

    /* The layer's own. */
    struct xs__sip_table servers, clients;
    /* Newest first; the tails are the oldest, evicted first when a table
     * is full and they only wait out Timer J or K. */
    struct xs_sip_txn *server_list, *client_list;
    struct xs_sip_txn *server_tail, *client_tail;
    size_t stored_bytes; /* of final responses kept, against opts->max_stored_bytes */
    uint32_t cseq;
    int closing;
    size_t timers_open;
    /* See xs__sip_log_ok. */
    uint64_t log_window;
    unsigned log_lines;
    unsigned long unlogged;
};

/* Sets up an empty layer in t (the caller's memory) with tables of
 * n_buckets each (a power of two); loop, opts and host are borrowed. Returns
 * 0, XS_ENOMEM or XS_EIO (no random seed); on failure call
 * xs__sip_txns_free all the same. */
int xs__sip_txns_init(struct xs__sip_txns *t, uv_loop_t *loop, const struct xs_sip_opts *opts,
                      const char *host, size_t n_buckets);
/* Frees the tables; every transaction must be gone (on_idle has run). */
void xs__sip_txns_free(struct xs__sip_txns *t);

/* n_buckets must be a power of two. Returns 0, XS_ENOMEM, or XS_EIO when
 * no random seed can be had. */
int xs__sip_table_init(struct xs__sip_table *t, size_t n_buckets);
void xs__sip_table_free(struct xs__sip_table *t);
/* The bucket `key` falls into (for tests of the spreading). */
size_t xs__sip_table_bucket(const struct xs__sip_table *t, const char *key);

/* A request (SUBMIT, ANSWER or ACK verdict; `in` is consumed) from `from`. */
void xs__sip_server_request(struct xs__sip_txns *t, const struct xs_sip_peer *from,
                            struct xs_sip_in *in);
/* A response (RESPONSE verdict; `in` borrowed). */
void xs__sip_client_response(struct xs__sip_txns *t, const struct xs_sip_in *in);
/* Starts a client transaction for ev (taken). */
void xs__sip_client_start(struct xs__sip_txns *t, struct xs_event *ev, xs_done_cb done, void *ud);
/* The transport's next_hop() callback. */
void xs__sip_client_next_hop(struct xs__sip_txns *t, int status);
/* Marks the layer closing and completes every transaction: client ones with
 * service-unavailable, server ones still waiting with a 503. Their timers
 * close after this returns; on_idle says when the last one has. */
void xs__sip_txns_close(struct xs__sip_txns *t);
/* 1 when a line about a hostile or stray packet may be logged now: at most
 * ten a second, so a flood cannot flood the log. The lines held back are
 * counted in t->unlogged. The side uses it for its own refusals too. */
int xs__sip_log_ok(struct xs__sip_txns *t);

#endif
