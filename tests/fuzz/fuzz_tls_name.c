/* Certificate name handling on hostile input. The first byte picks what
 * the rest is: 0, a reference name for the A-label conversion (Punycode),
 * whose output must be bounded, lower-case ASCII; 1, "presented\nreference"
 * for the RFC 9525 matcher, which must never match a presented name with a
 * NUL or non-ASCII byte; 2, a DER certificate whose subjectAltName entries
 * are matched against a fixed reference. Seeds: tests/fuzz/tls_name_seeds/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/x509_crt.h>

#include "tls/tls_int.h"
#include "tls/tls_name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char out[XS_TLS_NAME_MAX + 1];
    switch (data[0] % 3) {
    case 0:
        if (xs_tls_name_to_alabel(text, out, sizeof out) == 0) {
            size_t n = strlen(out);
            if (n == 0 || n > XS_TLS_NAME_MAX)
                abort();
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)out[i] >= 0x80 || (out[i] >= 'A' && out[i] <= 'Z'))
                    abort();
        }
        break;
    case 1: {
        const char *nl = memchr(data + 1, '\n', size - 1);
        if (!nl)
            break;
        size_t plen = (size_t)(nl - (const char *)(data + 1));
        const char *ref = text + plen + 1;
        int m = xs_tls_name_match((const char *)data + 1, plen, ref);
        for (size_t i = 0; m && i < plen; i++)
            if (data[1 + i] == 0 || data[1 + i] >= 0x80)
                abort();
        break;
    }
    default: {
        mbedtls_x509_crt crt;
        mbedtls_x509_crt_init(&crt);
        if (mbedtls_x509_crt_parse_der(&crt, data + 1, size - 1) == 0)
            (void)xs__tls_cert_names(&crt, "example.org", size % 2);
        mbedtls_x509_crt_free(&crt);
        break;
    }
    }
    free(text);
    return 0;
}
