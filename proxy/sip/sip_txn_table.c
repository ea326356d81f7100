/* The transaction table (see sip_txn_table.h). */
#include "sip/sip_txn_table.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/random.h"

int xs__sip_table_init(struct xs__sip_table *t, size_t n_buckets)
{
    t->n_buckets = n_buckets;
    t->count = 0;
    t->buckets = NULL;
    if (xs_random_bytes(t->seed, sizeof t->seed) != 0)
        return XS_EIO;
    t->buckets = calloc(n_buckets, sizeof *t->buckets);
    return t->buckets ? 0 : XS_ENOMEM;
}

void xs__sip_table_free(struct xs__sip_table *t)
{
    free(t->buckets);
    t->buckets = NULL;
}

static uint64_t hash_of(const struct xs__sip_table *t, const char *key)
{
    return xs_siphash(t->seed, key, strlen(key));
}

size_t xs__sip_table_bucket(const struct xs__sip_table *t, const char *key)
{
    return (size_t)hash_of(t, key) & (t->n_buckets - 1);
}

struct xs__sip_tnode *xs__sip_table_find(const struct xs__sip_table *t, const char *key)
{
    uint64_t h = hash_of(t, key);
    for (struct xs__sip_tnode *n = t->buckets[h & (t->n_buckets - 1)]; n; n = n->hnext)
        if (n->hash == h && strcmp(n->key, key) == 0)
            return n;
    return NULL;
}

/* Doubles the buckets, moving every node by the hash it keeps: no key is
 * hashed again. The cost is linear in the count but comes once per
 * doubling, so each insertion pays O(1) on average. */
static void grow(struct xs__sip_table *t)
{
    size_t n = t->n_buckets * 2;
    struct xs__sip_tnode **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < t->n_buckets; i++) {
        struct xs__sip_tnode *x = t->buckets[i];
        while (x) {
            struct xs__sip_tnode *next = x->hnext;
            size_t j = (size_t)x->hash & (n - 1);
            x->hnext = b[j];
            b[j] = x;
            x = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = n;
}

void xs__sip_table_insert(struct xs__sip_table *t, struct xs__sip_tnode *n)
{
    if (t->count >= t->n_buckets)
        grow(t);
    n->hash = hash_of(t, n->key);
    size_t b = (size_t)n->hash & (t->n_buckets - 1);
    n->hnext = t->buckets[b];
    t->buckets[b] = n;
    t->count++;
}

void xs__sip_table_remove(struct xs__sip_table *t, struct xs__sip_tnode *n)
{
    for (struct xs__sip_tnode **p = &t->buckets[(size_t)n->hash & (t->n_buckets - 1)]; *p;
         p = &(*p)->hnext)
        if (*p == n) {
            *p = n->hnext;
            t->count--;
            return;
        }
}
