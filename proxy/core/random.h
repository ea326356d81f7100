/* The one source of randomness for the gateway: the kernel's CSPRNG through
 * getrandom(2). Tags, branches, stream ids, dialback secrets and hash keys
 * all come from here, and there is no weaker fallback: a value a peer could
 * predict is worse than no value. */
#ifndef XS_CORE_RANDOM_H
#define XS_CORE_RANDOM_H

#include <stddef.h>

/* Fills buf (n bytes, borrowed) with random bytes. Blocks only while the
 * kernel pool is not yet initialised (early boot). Returns 0, or XS_EIO when
 * the kernel cannot give randomness (then buf holds nothing usable). */
int xs_random_bytes(void *buf, size_t n);

/* Writes 2 * n lowercase hex digits of fresh randomness and a NUL into out
 * (at least 2 * n + 1 bytes). When the kernel cannot give randomness this
 * logs and aborts, as for a failed small core allocation: callers need the
 * value and have no safe way to go on without it. */
void xs_random_hex(char *out, size_t n);

#endif
