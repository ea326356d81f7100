#include "core/random.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/err.h"
#include "core/log.h"

int xs_random_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;
    size_t got = 0;
    /* getrandom returns at most 32 MiB per call and may return fewer bytes
     * than asked past 256; a signal may interrupt it before any. */
    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return XS_EIO;
        }
        got += (size_t)r;
    }
    return 0;
}

/* Hex values are drawn from a pool refilled POOL_SIZE bytes at a time: a
 * SIP message needs a branch, a tag and a Call-ID, and one getrandom per
 * value was a system call per value on the per-message path. The pool is
 * the kernel's CSPRNG output all the same; each byte is used once and wiped
 * as it is taken. It is the module's one piece of state, and holds nothing
 * anything depends on but fresh randomness. */
#define POOL_SIZE 1024
static uint8_t pool[POOL_SIZE];
static size_t pool_left;

static void pool_take(uint8_t *out, size_t k)
{
    if (pool_left < k) {
        if (xs_random_bytes(pool, sizeof pool) != 0) {
            xs_log(XS_LOG_ERROR, "random", "result=failed reason=\"getrandom: %s\"",
                   strerror(errno));
            abort();
        }
        pool_left = sizeof pool;
    }
    uint8_t *p = pool + sizeof pool - pool_left;
    memcpy(out, p, k);
    explicit_bzero(p, k);
    pool_left -= k;
}

void xs_random_hex(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[64];
    size_t o = 0;
    while (n > 0) {
        size_t k = n < sizeof raw ? n : sizeof raw;
        pool_take(raw, k);
        for (size_t i = 0; i < k; i++) {
            out[o++] = hex[raw[i] >> 4];
            out[o++] = hex[raw[i] & 15];
        }
        n -= k;
    }
    /* The hex may be a secret (a dialback secret); leave no copy behind. */
    explicit_bzero(raw, sizeof raw);
    out[o] = '\0';
}
