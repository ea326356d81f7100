/* RFC 3261 §17 non-INVITE transactions, both roles: what happens to each
 * request and response once sip_msg.c has given its verdict, the timers
 * that keep them, and the tables they are found in. The layer lives in a
 * struct xs__sip_txns that the side (sip.c) embeds and wires up; it knows
 * nothing of the side and reports back only through on_idle and
 * on_pressure.
 *
 * What each transaction costs, since that is what bounds the rate:
 * - A server transaction waiting for the router holds the parsed request
 *   (it is needed to build the final response). Once the final response is
 *   sent it becomes a compact record, one allocation holding the key, the
 *   source and the response bytes, kept until Timer J (64*T1 on UDP; over
 *   TCP and TLS nothing is kept, Timer J is zero).
 * - A client transaction holds the request bytes (for Timer E) until its
 *   final response, and is freed on it: see client_finish for why Timer K
 *   keeps nothing.
 * - Lookups are O(1) (sip_txn_table.h) and timers O(1) per transaction
 *   (sip_txn_timer.h: FIFO queues under one libuv timer).
 *
 * These are internals of proxy/sip/, hence the xs__ prefix: only sip.c and
 * the unit tests include this header. */
#ifndef XS_SIP_TXN_H
#define XS_SIP_TXN_H

#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "event.h"
#include "sip/sip.h"
#include "sip/sip_msg.h"
#include "sip/sip_translate.h"
#include "sip/sip_transport.h"
#include "sip/sip_txn_table.h"
#include "sip/sip_txn_timer.h"

/* Counts of what the layer refused or dropped, for the once-a-second
 * overload line and for tests. */
struct xs__sip_txn_stats {
    unsigned long long server_refused; /* 503: too many server transactions or stored bytes */
    unsigned long long client_refused; /* resource-constraint: too many client transactions */
    unsigned long long unstored;       /* final responses not kept: the store was full */
    unsigned long long pauses;         /* times on_pressure(1) was called */
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
    /* Where arriving SUBSCRIBE and NOTIFY requests go (NULL: 503): req and
     * body[0..blen) are borrowed for the call. The answer is given before
     * returning: the status (>= 200), header lines for it in extra (up to
     * extra_n bytes, "Expires: 60\r\nContact: <...>\r\n"; left empty for
     * none) and, for a refusal, *why (static text, for the Warning and the
     * log). to_tag is the tag the response's To gets when the request's To
     * has none: the local tag of a dialog the request creates. Whatever
     * the request sets off (a NOTIFY) must go out after the answer. */
    int (*on_dialog)(void *ud, const struct xs_sip_peer *from, const osip_message_t *req,
                     const char *body, size_t blen, const char *to_tag, char *extra, size_t extra_n,
                     const char **why);
    void *dialog_ud;
    size_t max_message;
    int draining; /* the gateway is stopping: see xs_sip_drain */
    /* Runs once the layer's timer has closed after xs__sip_txns_close; the
     * side may free the layer from it. */
    void (*on_idle)(void *ud);
    void *idle_ud;
    /* Backpressure toward whoever feeds xs__sip_client_start: called with 1
     * when the client transactions in flight reach the high-water mark
     * (three quarters of opts->max_client_txns, at most opts->pressure_high),
     * with 0 once they are back under two thirds of it. NULL: nobody
     * listens. */
    void (*on_pressure)(void *ud, int high);
    void *pressure_ud;

    /* The layer's own. */
    struct xs__sip_table servers, clients;
    struct xs__sip_clock clock;
    struct xs__sip_tq *q_j, *q_f, *q_log, *q_e[XS__SIP_CLOCK_QUEUES];
    size_t n_e; /* Timer E intervals: T1, 2*T1, ... T2 */
    /* Server transactions waiting for the router, oldest first: not timed
     * (the router always answers), listed for close. */
    struct xs__sip_tq live;
    size_t n_records;    /* completed server transactions kept for Timer J */
    size_t stored_bytes; /* what they take, against opts->max_stored_bytes */
    int pressure;        /* on_pressure(1) was the last call */
    /* A walk over the client transactions (each_client) visits only those
     * started before it began, and survives any of them ending under it. */
    uint64_t client_seq;
    struct xs__sip_tent *walk_next;
    struct xs_buf scratch; /* responses are built here, then copied to their record */
    uint32_t cseq;
    int closing;
    int open; /* the clock's timer is not closed yet */
    struct xs__sip_txn_stats stats;
    /* See xs__sip_log_ok. */
    uint64_t log_window;
    unsigned log_lines;
    unsigned long unlogged;
    /* See overload_log in sip_txn.c. */
    uint64_t overload_window;
    struct xs__sip_txn_stats overload_logged;
    struct xs__sip_tent overload_tent; /* queued while a line is owed */
};

/* Header lines an on_dialog answer may carry. */
#define XS__SIP_DIALOG_EXTRA_MAX 4096

/* Sets up an empty layer in t (the caller's memory); loop, opts and host are
 * borrowed. Returns 0, XS_ENOMEM or XS_EIO (no random seed); on failure
 * call xs__sip_txns_free all the same. */
int xs__sip_txns_init(struct xs__sip_txns *t, uv_loop_t *loop, const struct xs_sip_opts *opts,
                      const char *host);
/* Frees the tables; the layer must be closed (on_idle has run). */
void xs__sip_txns_free(struct xs__sip_txns *t);

/* A request (SUBMIT, ANSWER or ACK verdict; `in` is consumed) from `from`. */
void xs__sip_server_request(struct xs__sip_txns *t, const struct xs_sip_peer *from,
                            struct xs_sip_in *in);
/* A response (RESPONSE verdict; `in` borrowed). */
void xs__sip_client_response(struct xs__sip_txns *t, const struct xs_sip_in *in);
/* Starts a client transaction for ev (taken). */
void xs__sip_client_start(struct xs__sip_txns *t, struct xs_event *ev, xs_done_cb done, void *ud);
/* A request the caller writes, for SUBSCRIBE and NOTIFY in their dialogs.
 * build() is called once the way to the next hop is known, with the Via
 * parameters (transport, sent-by, branch; the tags, Call-ID and CSeq of p
 * are the caller's own business and may be ignored) to write the whole
 * request into out (bounded by max_message). on_final() is called exactly
 * once: with the final response (borrowed for the call; cond is NONE for a
 * 2xx, else its RFC 7247 condition), or with resp NULL and the condition
 * for Timer F, a transport failure, a build failure, a limit or close.
 * Provisional responses are absorbed. It may be called before
 * xs__sip_client_request returns. */
struct xs__sip_req_ops {
    int (*build)(void *ud, const struct xs_sip_req_params *p, struct xs_buf *out);
    void (*on_final)(void *ud, const osip_message_t *resp, enum xs_cond cond, const char *text);
};
void xs__sip_client_request(struct xs__sip_txns *t, const char *method,
                            const struct xs__sip_req_ops *ops, void *ud);
/* The transport's next_hop() callback. */
void xs__sip_client_next_hop(struct xs__sip_txns *t, int status);
/* Marks the layer closing and completes every transaction: client ones with
 * service-unavailable, server ones still waiting with a 503, records are
 * dropped. Its timer closes after this returns; on_idle says when. */
void xs__sip_txns_close(struct xs__sip_txns *t);
/* 1 when a line about a hostile or stray packet may be logged now: at most
 * ten a second, so a flood cannot flood the log. The lines held back are
 * counted in t->unlogged. The side uses it for its own refusals too. */
int xs__sip_log_ok(struct xs__sip_txns *t);
/* In-flight counts, for logs and tests. */
size_t xs__sip_txns_servers(const struct xs__sip_txns *t);
size_t xs__sip_txns_clients(const struct xs__sip_txns *t);
/* Report the transactions held, by role and state, to the metrics
 * collector (xs_metrics_collect_sip_txns). */
void xs__sip_servers_metrics(const struct xs__sip_txns *t);
void xs__sip_clients_metrics(const struct xs__sip_txns *t);

#endif
