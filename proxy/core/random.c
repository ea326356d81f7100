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

void xs_random_hex(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[64];
    size_t o = 0;
    while (n > 0) {
        size_t k = n < sizeof raw ? n : sizeof raw;
        if (xs_random_bytes(raw, k) != 0) {
            xs_log(XS_LOG_ERROR, "random", "result=failed reason=\"getrandom: %s\"",
                   strerror(errno));
            abort();
        }
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
