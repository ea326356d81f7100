/* Internals shared by the resolver's files (dns.c, dns_wire.c,
 * dns_cache.c); not for other modules. */
#ifndef XS_NET_DNS_INT_H
#define XS_NET_DNS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "net/dns.h"

/* xs_dns_parse_srv that also gives the smallest TTL of the SRV records
 * parsed (0 when there are none). `ttl` may be NULL. */
int xs__dns_parse_srv_ttl(const unsigned char *msg, size_t len, struct xs_dns_target *targets,
                          size_t max, uint32_t *ttl);

/* A bounded cache of lookup outcomes keyed by a short string ("S" or "A"
 * and the name). An outcome is a status and, for status 0, a copy of the
 * answer (targets or addresses). When full, a new entry takes the place of
 * the one that expires first, so the cache never grows past `cap`. */
struct xs__dns_cache_entry {
    uint64_t hash;
    uint64_t expires; /* loop time in ms; 0: free slot */
    int status;
    size_t n;
    void *data; /* malloc()ed copy of the answer, or NULL */
    char key[272];
};

struct xs__dns_cache {
    struct xs__dns_cache_entry *e;
    size_t cap;
};

int xs__dns_cache_init(struct xs__dns_cache *c, size_t cap);
void xs__dns_cache_free(struct xs__dns_cache *c);
/* The live entry for `key`, or NULL; borrowed until the next put. */
const struct xs__dns_cache_entry *xs__dns_cache_get(struct xs__dns_cache *c, const char *key,
                                                    uint64_t now);
/* Stores a copy of data[0..size) (may be 0). XS_ENOMEM leaves the cache
 * without the entry, which only costs a later lookup. */
int xs__dns_cache_put(struct xs__dns_cache *c, const char *key, uint64_t now, uint64_t expires,
                      int status, const void *data, size_t size, size_t n);

#endif
