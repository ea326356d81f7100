/* The differences between the mbedtls releases we build against (Debian 12
 * ships 2.28, Debian 13 ships 3.6), chosen once here on
 * MBEDTLS_VERSION_NUMBER so that tls_ctx.c and tls_session.c read the same for
 * both. Only the TLS module includes it. */
#ifndef XS_TLS_TLS_COMPAT_H
#define XS_TLS_TLS_COMPAT_H

#include <stddef.h>

#include <mbedtls/version.h>

#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

/* Parses an unencrypted private key file into key (borrowed). 3.x blinds
 * the private-key operations it runs while parsing and wants an RNG for it. */
static inline int xs_tls_compat_parse_keyfile(mbedtls_pk_context *key, const char *path,
                                              mbedtls_ctr_drbg_context *drbg)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_pk_parse_keyfile(key, path, NULL, mbedtls_ctr_drbg_random, drbg);
#else
    (void)drbg;
    return mbedtls_pk_parse_keyfile(key, path, NULL);
#endif
}

/* 0 when prv (borrowed) is the private half of pub (borrowed); 3.x checks
 * it with a signature, which needs the RNG. */
static inline int xs_tls_compat_check_pair(const mbedtls_pk_context *pub,
                                           const mbedtls_pk_context *prv,
                                           mbedtls_ctr_drbg_context *drbg)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_pk_check_pair(pub, prv, mbedtls_ctr_drbg_random, drbg);
#else
    (void)drbg;
    return mbedtls_pk_check_pair(pub, prv);
#endif
}

/* TLS 1.2 and nothing else on conf (borrowed). */
static inline void xs_tls_compat_tls12_only(mbedtls_ssl_config *conf)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
    mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
#else
    mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif
}

/* Sets the certificate serial number from len big-endian bytes (borrowed);
 * 3.4 takes them as they are, older releases as a bignum. */
static inline int xs_tls_compat_set_serial(mbedtls_x509write_cert *w, unsigned char *raw,
                                           size_t len)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03040000
    return mbedtls_x509write_crt_set_serial_raw(w, raw, len);
#else
    mbedtls_mpi serial;
    mbedtls_mpi_init(&serial);
    int rc = mbedtls_mpi_read_binary(&serial, raw, len);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_serial(w, &serial);
    mbedtls_mpi_free(&serial);
    return rc;
#endif
}

/* Nonzero once the handshake on ssl (borrowed) has completed, whichever of
 * mbedtls_ssl_handshake or mbedtls_ssl_read drove it there. The state field
 * is private from 3.0 on; 3.2 added the accessor. */
static inline int xs_tls_compat_handshake_over(mbedtls_ssl_context *ssl)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
    return mbedtls_ssl_is_handshake_over(ssl);
#elif MBEDTLS_VERSION_NUMBER >= 0x03000000
    return ssl->MBEDTLS_PRIVATE(state) == MBEDTLS_SSL_HANDSHAKE_OVER;
#else
    return ssl->state == MBEDTLS_SSL_HANDSHAKE_OVER;
#endif
}

#endif
