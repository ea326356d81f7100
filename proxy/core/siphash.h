/* SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash for hash
 * tables whose keys a peer chooses. With a secret random key, a peer cannot
 * precompute keys that fall into one bucket, which an unkeyed hash (FNV,
 * djb2) lets it do. */
#ifndef XS_CORE_SIPHASH_H
#define XS_CORE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define XS_SIPHASH_KEY_LEN 16

/* The hash of data[0..len) (borrowed) under key (borrowed). */
uint64_t xs_siphash(const uint8_t key[XS_SIPHASH_KEY_LEN], const void *data, size_t len);

#endif
