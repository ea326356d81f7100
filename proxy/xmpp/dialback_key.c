/* XEP-0185 dialback keys. The recipe has two easy misreadings (the SHA-256
 * of the secret as raw bytes instead of hex, and the domains swapped); the
 * unit test pins it to the vectors published in XEP-0185 and XEP-0220. */
#include "xmpp/dialback_key.h"

#include <string.h>

#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "core/err.h"
#include "core/random.h"

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

int xs_dialback_key(const char *secret, const char *receiving, const char *originating,
                    const char *stream_id, char out[65])
{
    out[0] = '\0';
    if (!secret || !receiving || !originating || !stream_id || !*secret || !*receiving ||
        !*originating || !*stream_id)
        return XS_EINVAL;
    const mbedtls_md_info_t *sha256 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    unsigned char digest[32];
    char hkey[65];
    if (mbedtls_md(sha256, (const unsigned char *)secret, strlen(secret), digest) != 0)
        return XS_EINVAL;
    to_hex(digest, sizeof digest, hkey);

    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    int rc = mbedtls_md_setup(&md, sha256, 1);
    if (rc == 0)
        rc = mbedtls_md_hmac_starts(&md, (const unsigned char *)hkey, 64);
    const char *parts[] = {receiving, " ", originating, " ", stream_id};
    for (size_t i = 0; rc == 0 && i < sizeof parts / sizeof parts[0]; i++)
        rc = mbedtls_md_hmac_update(&md, (const unsigned char *)parts[i], strlen(parts[i]));
    if (rc == 0)
        rc = mbedtls_md_hmac_finish(&md, digest);
    mbedtls_md_free(&md);
    mbedtls_platform_zeroize(hkey, sizeof hkey);
    if (rc != 0) {
        mbedtls_platform_zeroize(digest, sizeof digest);
        return rc == MBEDTLS_ERR_MD_ALLOC_FAILED ? XS_ENOMEM : XS_EINVAL;
    }
    to_hex(digest, sizeof digest, out);
    mbedtls_platform_zeroize(digest, sizeof digest);
    return 0;
}

int xs_dialback_key_equal(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    size_t la = strlen(a);
    size_t lb = strlen(b);
    /* Walk the whole of b whatever a holds: a is our own key, so its length
     * is no secret, but the position of the first difference is. */
    unsigned char diff = la != lb;
    for (size_t i = 0; i < lb; i++) {
        unsigned char ca = i < la ? (unsigned char)a[i] : 0;
        diff |= (unsigned char)(ca ^ (unsigned char)b[i]);
    }
    return diff == 0;
}

void xs_dialback_random_secret(char out[65])
{
    xs_random_hex(out, 32);
}
