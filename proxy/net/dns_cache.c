/* The resolver's caches: a fixed array searched by hash. With a few hundred
 * entries a scan costs less than a lookup's first syscall, and a fixed array
 * is the simplest way to promise the cache can never grow. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "net/dns_int.h"

static uint64_t hash_key(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a: keys are ours, not a peer's */
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 0x100000001b3ull;
    }
    return h;
}

int xs__dns_cache_init(struct xs__dns_cache *c, size_t cap)
{
    c->e = calloc(cap, sizeof *c->e);
    c->cap = c->e ? cap : 0;
    return c->e ? 0 : XS_ENOMEM;
}

void xs__dns_cache_free(struct xs__dns_cache *c)
{
    for (size_t i = 0; i < c->cap; i++)
        free(c->e[i].data);
    free(c->e);
    c->e = NULL;
    c->cap = 0;
}

static void clear(struct xs__dns_cache_entry *e)
{
    free(e->data);
    memset(e, 0, sizeof *e);
}

const struct xs__dns_cache_entry *xs__dns_cache_get(struct xs__dns_cache *c, const char *key,
                                                    uint64_t now)
{
    uint64_t h = hash_key(key);
    for (size_t i = 0; i < c->cap; i++) {
        struct xs__dns_cache_entry *e = &c->e[i];
        if (!e->expires || e->hash != h || strcasecmp(e->key, key) != 0)
            continue;
        if (e->expires <= now) {
            clear(e);
            return NULL;
        }
        return e;
    }
    return NULL;
}

int xs__dns_cache_put(struct xs__dns_cache *c, const char *key, uint64_t now, uint64_t expires,
                      int status, const void *data, size_t size, size_t n)
{
    if (!c->cap || strlen(key) >= sizeof c->e[0].key || expires <= now)
        return XS_EINVAL;
    uint64_t h = hash_key(key);
    struct xs__dns_cache_entry *slot = NULL;
    for (size_t i = 0; i < c->cap; i++) {
        struct xs__dns_cache_entry *e = &c->e[i];
        if (e->expires && e->hash == h && strcasecmp(e->key, key) == 0) {
            slot = e;
            break;
        }
        /* Free slots count as expiring at 0, so they are taken first. */
        if (!slot || e->expires < slot->expires)
            slot = e;
    }
    void *copy = NULL;
    if (size) {
        copy = malloc(size);
        if (!copy)
            return XS_ENOMEM;
        memcpy(copy, data, size);
    }
    clear(slot);
    slot->hash = h;
    slot->expires = expires;
    slot->status = status;
    slot->n = n;
    slot->data = copy;
    memcpy(slot->key, key, strlen(key) + 1);
    return 0;
}
