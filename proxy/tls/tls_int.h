/* What the two halves of the TLS module share: the context is built in
 * tls_ctx.c and read by the sessions in tls_session.c. Not for other modules. */
#ifndef XS_TLS_TLS_INT_H
#define XS_TLS_TLS_INT_H

#include <stddef.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

struct xs_tls_ctx {
    int refs;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt chain; /* ours: leaf first */
    mbedtls_pk_context key;
    /* Trust anchors for peer certificates. Empty until certificate trust is
     * configured, so every peer verifies as "not trusted", which OPTIONAL
     * mode records without failing the handshake. */
    mbedtls_x509_crt cas;
    mbedtls_ssl_config server;
    mbedtls_ssl_config client;
    int *suites; /* our cipher suite preference, 0-terminated; NULL: mbedtls's */
};

/* "what: mbedtls text (-0xNNNN)" into err. */
void xs_tls_format_error(char *err, size_t errlen, const char *what, int mbed_rc);

#endif
