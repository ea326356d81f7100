/* The core's randomness and keyed hash: SipHash-2-4 against the reference
 * vectors of its paper, and random bytes and hex that are fresh each call. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/random.h"
#include "core/siphash.h"

static void test_siphash(void)
{
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    /* The paper's Appendix A example (15 bytes), the empty message, and
     * lengths around the 8-byte word boundary of the reference vectors. */
    CHECK(xs_siphash(key, msg, 15) == 0xa129ca6149be45e5ull);
    CHECK(xs_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ull);
    CHECK(xs_siphash(key, msg, 1) == 0x74f839c593dc67fdull);
    CHECK(xs_siphash(key, msg, 8) == 0x93f5f5799a932462ull);
    CHECK(xs_siphash(key, msg, 63) == 0x958a324ceb064572ull);
    /* The key matters. */
    uint8_t other[16];
    memcpy(other, key, sizeof other);
    other[15] ^= 1;
    CHECK(xs_siphash(other, msg, 15) != xs_siphash(key, msg, 15));
}

static void test_random(void)
{
    uint8_t a[32] = {0}, b[32] = {0}, zero[32] = {0};
    CHECK(xs_random_bytes(a, sizeof a) == 0);
    CHECK(xs_random_bytes(b, sizeof b) == 0);
    CHECK(memcmp(a, b, sizeof a) != 0 && memcmp(a, zero, sizeof a) != 0);
    static uint8_t big[70000];
    CHECK(xs_random_bytes(big, sizeof big) == 0);
    CHECK(memcmp(big + sizeof big - 32, zero, 32) != 0);

    char h1[200], h2[200];
    memset(h1, 'x', sizeof h1);
    xs_random_hex(h1, 80);
    xs_random_hex(h2, 80);
    CHECK(strlen(h1) == 160 && h1[160] == '\0' && h1[161] == 'x');
    CHECK(strspn(h1, "0123456789abcdef") == 160);
    CHECK(strcmp(h1, h2) != 0);
    xs_random_hex(h1, 0);
    CHECK(h1[0] == '\0');
}

/* Hex comes from a pool refilled 1 KiB at a time: values drawn across
 * several refills, and ones larger than the pool, are all fresh. */
static void test_random_pool(void)
{
    static char seen[300][33];
    int dup = 0;
    for (int i = 0; i < 300; i++) {
        xs_random_hex(seen[i], 16);
        for (int j = 0; j < i; j++)
            dup += strcmp(seen[i], seen[j]) == 0;
    }
    CHECK(dup == 0);
    static char big[2 * 3000 + 1], big2[2 * 3000 + 1];
    xs_random_hex(big, 3000);
    xs_random_hex(big2, 3000);
    CHECK(strlen(big) == 6000 && strspn(big, "0123456789abcdef") == 6000);
    CHECK(memcmp(big, big2, 6000) != 0);
    /* No stretch of the big value repeats an earlier 1 KiB of it. */
    CHECK(memcmp(big, big + 2048, 64) != 0 && memcmp(big, big + 4096, 64) != 0);
}

int main(void)
{
    test_siphash();
    test_random();
    test_random_pool();
    return check_report("test_random");
}
