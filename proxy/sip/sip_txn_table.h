/* The transaction layer's lookup table: an intrusive hash table from a
 * transaction key (a NUL-terminated string kept by the entry's owner) to the
 * entry. Lookup, insertion and removal cost O(1) on average; the table
 * doubles its buckets whenever it holds more entries than buckets, so chains
 * stay short at any count, and never shrinks (a bucket is one pointer: a
 * table that once held a million entries keeps 8 MiB of buckets, which is
 * cheaper than rehashing on every swing of the load).
 *
 * Server keys carry the branch the peer chose, so the hash is SipHash keyed
 * with a secret drawn per table: nobody can aim keys at one bucket.
 *
 * Internal to proxy/sip/ (xs__ prefix). */
#ifndef XS_SIP_TXN_TABLE_H
#define XS_SIP_TXN_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/siphash.h"

/* Embedded in whatever the table holds. `key` is borrowed from the owner and
 * must not change while the node is in a table. */
struct xs__sip_tnode {
    struct xs__sip_tnode *hnext;
    uint64_t hash;
    const char *key;
};

struct xs__sip_table {
    struct xs__sip_tnode **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
    uint8_t seed[XS_SIPHASH_KEY_LEN];
};

/* n_buckets (a power of two) is where the table starts; it grows from
 * there. Returns 0, XS_ENOMEM, or XS_EIO when no random seed can be had. */
int xs__sip_table_init(struct xs__sip_table *t, size_t n_buckets);
void xs__sip_table_free(struct xs__sip_table *t);
/* The bucket `key` falls into at the current size (for tests of the spreading). */
size_t xs__sip_table_bucket(const struct xs__sip_table *t, const char *key);
/* The node whose key equals `key`, or NULL. */
struct xs__sip_tnode *xs__sip_table_find(const struct xs__sip_table *t, const char *key);
/* Adds n (its key set, not already in the table). When the buckets cannot
 * grow (out of memory) the node goes in all the same, on longer chains. */
void xs__sip_table_insert(struct xs__sip_table *t, struct xs__sip_tnode *n);
/* Removes n, which must be in t. */
void xs__sip_table_remove(struct xs__sip_table *t, struct xs__sip_tnode *n);

#endif
