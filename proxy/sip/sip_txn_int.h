/* Inside the SIP transaction layer: what sip_txn.c (the layer, its clock
 * and its overload line), sip_txn_server.c and sip_txn_client.c share.
 * Nothing else includes this. */
#ifndef XS_SIP_TXN_INT_H
#define XS_SIP_TXN_INT_H

#include <stddef.h>

#include "sip/sip_txn.h"

/* The clock's queues: Timer J, Timer F, the overload line's second, then
 * one per Timer E interval. */
enum { Q_J = 0, Q_F = 1, Q_LOG = 2, Q_E = 3 };

enum txn_kind { K_SERVER = 1, K_RECORD = 2, K_CLIENT = 3 };

/* What every entry of a table starts with. `tent` puts a server
 * transaction on the live list, a record on Timer J, a client transaction
 * on Timer F (whose queue is also the list of clients, oldest first). */
struct txn_head {
    struct xs__sip_tnode node;
    struct xs__sip_tent tent;
    enum txn_kind kind;
};

#define HEAD_OF(ent) ((struct txn_head *)((char *)(ent) - offsetof(struct txn_head, tent)))

/* sip_txn.c: counts a refusal (or a response not kept) toward the
 * overload line, written at most once a second. */
void xs__sip_overload_log(struct xs__sip_txns *t);

/* sip_txn_server.c */
/* Timer J: the record whose tent this is ends. */
void xs__sip_rec_expire(struct xs__sip_txns *t, struct xs__sip_tent *e);
/* At close: server transactions still waiting are answered 503 (their
 * done() will find nothing to answer), records are dropped. */
void xs__sip_servers_close(struct xs__sip_txns *t);

/* sip_txn_client.c */
/* Timer F (queue Q_F) or Timer E (the others) of a client transaction. */
void xs__sip_client_expire(struct xs__sip_txns *t, int queue_id, struct xs__sip_tent *e);
/* At close: every client transaction ends with service-unavailable. */
void xs__sip_clients_close(struct xs__sip_txns *t);

#endif
