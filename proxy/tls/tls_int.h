/* What the two halves of the TLS module share: the context is built in
 * tls_ctx.c and read by the sessions in tls_session.c. Not for other modules. */
#ifndef XS_TLS_TLS_INT_H
#define XS_TLS_TLS_INT_H

#include <stddef.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

/* More identities than the default one (gateway.tls.certs): each with the
 * client configuration that presents it. */
struct xs_tls_identity {
    mbedtls_x509_crt chain;
    mbedtls_pk_context key;
    mbedtls_ssl_config client;
};

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
    mbedtls_x509_crl crl;
    int has_ca, has_crl;
    struct xs_tls_identity *ids;
    size_t n_ids;
    mbedtls_ssl_config server;
    mbedtls_ssl_config client;
    int *suites; /* our cipher suite preference, 0-terminated; NULL: mbedtls's */
};

/* 1 when one of the dNSNames of crt's leaf (borrowed) names `name` (A-label),
 * or with `under`, is one label under it (xs_tls_name_under). */
int xs__tls_cert_names(const mbedtls_x509_crt *crt, const char *name, int under);
/* The server's SNI callback (tls_session.c): records the name in the session
 * and presents the identity that serves it. p is the context. */
int xs__tls_sni(void *p, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len);

/* "what: mbedtls text (-0xNNNN)" into err. */
void xs_tls_format_error(char *err, size_t errlen, const char *what, int mbed_rc);

#endif
