/* TLS contexts: the RNG, our certificate and key (loaded from PEM files or
 * generated self-signed), and one mbedtls_ssl_config per direction. */
#include "tls/tls.h"
#include "tls/tls_compat.h"
#include "tls/tls_int.h"

#include <errno.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "core/err.h"
#include "tls/tls_name.h"

/* Enough for any domain list a gateway serves; it bounds the SAN buffer. */
#define TLS_MAX_NAMES 64
#define TLS_NAME_MAX 253
#define TLS_CERT_DER_MAX 4096

void xs_tls_format_error(char *err, size_t errlen, const char *what, int mbed_rc)
{
    char text[128];
    mbedtls_strerror(mbed_rc, text, sizeof text);
    snprintf(err, errlen, "%s: %s (-0x%04x)", what, text, (unsigned)-mbed_rc);
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *arg)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, arg);
}

static void mbed_err(char *err, size_t errlen, const char *what, int rc)
{
    if (err && errlen)
        xs_tls_format_error(err, errlen, what, rc);
}

static int map_mbed(int rc)
{
    if (rc == MBEDTLS_ERR_PK_ALLOC_FAILED || rc == MBEDTLS_ERR_X509_ALLOC_FAILED ||
        rc == MBEDTLS_ERR_SSL_ALLOC_FAILED || rc == MBEDTLS_ERR_MPI_ALLOC_FAILED)
        return XS_ENOMEM;
    return XS_ETLS;
}

/* Names end up in a distinguished-name string and in IA5String SAN entries,
 * so only host-name characters are accepted: nothing that needs escaping. */
static int valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > TLS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == '*'))
            return 0;
    }
    return 1;
}

/* Ends DER written backwards from the end of buf: wraps the `total` bytes
 * before p in a SEQUENCE header and returns where the result starts. */
static int close_sequence(unsigned char *p, unsigned char *buf, size_t total, unsigned char **der,
                          size_t *der_len)
{
    int rc;
    if ((rc = mbedtls_asn1_write_len(&p, buf, total)) < 0)
        return rc;
    total += (size_t)rc;
    if ((rc = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) <
        0)
        return rc;
    *der = p;
    *der_len = total + (size_t)rc;
    return 0;
}

/* subjectAltName ::= SEQUENCE OF GeneralName, each dNSName [2] IA5String.
 * ASN.1 is written backwards from the end of buf. */
static int write_san(unsigned char *buf, size_t size, const char *const *names, size_t n,
                     unsigned char **der, size_t *der_len)
{
    unsigned char *p = buf + size;
    size_t total = 0;
    int rc;
    for (size_t i = n; i-- > 0;) {
        size_t len = strlen(names[i]);
        size_t entry = 0;
        if ((rc = mbedtls_asn1_write_raw_buffer(&p, buf, (const unsigned char *)names[i], len)) < 0)
            return rc;
        entry += (size_t)rc;
        if ((rc = mbedtls_asn1_write_len(&p, buf, len)) < 0)
            return rc;
        entry += (size_t)rc;
        if ((rc = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2)) < 0)
            return rc;
        total += entry + (size_t)rc;
    }
    return close_sequence(p, buf, total, der, der_len);
}

/* extKeyUsage ::= SEQUENCE OF KeyPurposeId: serverAuth and clientAuth, since
 * s2s connections authenticate in both directions. mbedtls 2.28 has no
 * setter for it. */
static int write_eku(unsigned char *buf, size_t size, unsigned char **der, size_t *der_len)
{
    unsigned char *p = buf + size;
    size_t total = 0;
    int rc;
    if ((rc = mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_CLIENT_AUTH,
                                     MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH))) < 0)
        return rc;
    total += (size_t)rc;
    if ((rc = mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_SERVER_AUTH,
                                     MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH))) < 0)
        return rc;
    total += (size_t)rc;
    return close_sequence(p, buf, total, der, der_len);
}

/* X.509 validity as "YYYYMMDDhhmmss" in UTC. */
static int format_time(time_t t, int add_years, char out[16])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return -1;
    tm.tm_year += add_years;
    if (tm.tm_mon == 1 && tm.tm_mday == 29)
        tm.tm_mday = 28;
    return strftime(out, 16, "%Y%m%d%H%M%S", &tm) == 14 ? 0 : -1;
}

static int generate_self_signed(struct xs_tls_ctx *c, const char *const *names, size_t n, char *err,
                                size_t errlen)
{
    mbedtls_x509write_cert w;
    unsigned char *san_buf = NULL;
    unsigned char *der_buf = NULL;
    int rc;

    mbedtls_x509write_crt_init(&w);

    rc = mbedtls_pk_setup(&c->key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (rc == 0)
        rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(c->key),
                                 mbedtls_ctr_drbg_random, &c->drbg);
    if (rc != 0) {
        mbed_err(err, errlen, "generating EC P-256 key", rc);
        goto fail;
    }

    char subject[8 + TLS_NAME_MAX];
    snprintf(subject, sizeof subject, "CN=%s", names[0]);
    unsigned char raw_serial[16];
    rc = mbedtls_ctr_drbg_random(&c->drbg, raw_serial, sizeof raw_serial);
    /* Positive and of full length: the top bit clear, the next one set. */
    raw_serial[0] = (unsigned char)((raw_serial[0] & 0x7f) | 0x40);
    char not_before[16], not_after[16];
    time_t now = time(NULL);
    if (format_time(now - 86400, 0, not_before) != 0 || format_time(now, 10, not_after) != 0) {
        set_err(err, errlen, "%s", "generating certificate: cannot format validity dates");
        rc = MBEDTLS_ERR_X509_BAD_INPUT_DATA;
        goto fail;
    }

    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, &c->key);
    mbedtls_x509write_crt_set_issuer_key(&w, &c->key);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_subject_name(&w, subject);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_issuer_name(&w, subject);
    if (rc == 0)
        rc = xs_tls_compat_set_serial(&w, raw_serial, sizeof raw_serial);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_validity(&w, not_before, not_after);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_basic_constraints(&w, 0, -1);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_key_usage(&w, MBEDTLS_X509_KU_DIGITAL_SIGNATURE |
                                                         MBEDTLS_X509_KU_KEY_AGREEMENT);
    unsigned char eku_buf[32];
    unsigned char *ext;
    size_t ext_len;
    if (rc == 0)
        rc = write_eku(eku_buf, sizeof eku_buf, &ext, &ext_len);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                                 MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
                                                 0, ext, ext_len);
    size_t san_size = 16 + n * (TLS_NAME_MAX + 4);
    if (rc == 0 && !(san_buf = malloc(san_size)))
        rc = MBEDTLS_ERR_X509_ALLOC_FAILED;
    if (rc == 0)
        rc = write_san(san_buf, san_size, names, n, &ext, &ext_len);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                 MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0,
                                                 ext, ext_len);
    size_t der_size = TLS_CERT_DER_MAX + san_size;
    if (rc == 0 && !(der_buf = malloc(der_size)))
        rc = MBEDTLS_ERR_X509_ALLOC_FAILED;
    if (rc != 0) {
        mbed_err(err, errlen, "building certificate", rc);
        goto fail;
    }
    /* The DER lands at the end of the buffer; rc is its length. */
    rc = mbedtls_x509write_crt_der(&w, der_buf, der_size, mbedtls_ctr_drbg_random, &c->drbg);
    if (rc < 0) {
        mbed_err(err, errlen, "signing certificate", rc);
        goto fail;
    }
    rc = mbedtls_x509_crt_parse_der(&c->chain, der_buf + der_size - (size_t)rc, (size_t)rc);
    if (rc != 0) {
        mbed_err(err, errlen, "parsing generated certificate", rc);
        goto fail;
    }

fail:
    free(der_buf);
    free(san_buf);
    mbedtls_x509write_crt_free(&w);
    return rc;
}

static int load_files(mbedtls_x509_crt *chain, mbedtls_pk_context *key,
                      mbedtls_ctr_drbg_context *drbg, const char *cert_path, const char *key_path,
                      char *err, size_t errlen)
{
    char what[300];
    int rc = mbedtls_x509_crt_parse_file(chain, cert_path);
    if (rc != 0) {
        snprintf(what, sizeof what, "certificate %s", cert_path);
        if (rc > 0) {
            /* Some PEM blocks parsed, others did not: a broken chain file. */
            set_err(err, errlen, "%s: some certificates in the file did not parse", what);
            return MBEDTLS_ERR_X509_INVALID_FORMAT;
        }
        mbed_err(err, errlen, what, rc);
        return rc;
    }
    rc = xs_tls_compat_parse_keyfile(key, key_path, drbg);
    if (rc != 0) {
        snprintf(what, sizeof what, "private key %s", key_path);
        mbed_err(err, errlen, what, rc);
        return rc;
    }
    rc = xs_tls_compat_check_pair(&chain->pk, key, drbg);
    if (rc != 0) {
        snprintf(what, sizeof what, "key %s does not match certificate %s", key_path, cert_path);
        mbed_err(err, errlen, what, rc);
        return rc;
    }
    return 0;
}

/* mbedtls ranks ChaCha20-Poly1305 first, the fast choice without AES
 * instructions. With them (and carry-less multiply for GCM), AES-GCM costs
 * the per-stanza records less, so those suites move to the front where we
 * choose (as the server); the rest keep mbedtls's order. NULL (mbedtls's
 * list) on other CPUs or OOM. */
static int *suite_preference(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (!__builtin_cpu_supports("aes") || !__builtin_cpu_supports("pclmul"))
        return NULL;
    const int *all = mbedtls_ssl_list_ciphersuites();
    size_t n = 0;
    while (all[n])
        n++;
    int *out = calloc(n + 1, sizeof *out);
    if (!out)
        return NULL;
    /* Rank 0: AES-128-GCM (fewer rounds than AES-256, the same class of
     * security for TLS 1.2); 1: the other GCM suites; 2: the rest. */
    size_t o = 0;
    for (int rank = 0; rank < 3; rank++) {
        for (size_t i = 0; i < n; i++) {
            const char *name = mbedtls_ssl_get_ciphersuite_name(all[i]);
            int r = !strstr(name, "-GCM-") ? 2 : strstr(name, "-AES-128-") ? 0 : 1;
            if (r == rank)
                out[o++] = all[i];
        }
    }
    return out;
#else
    return NULL;
#endif
}

static int setup_conf(struct xs_tls_ctx *c, mbedtls_ssl_config *conf, int endpoint,
                      mbedtls_x509_crt *chain, mbedtls_pk_context *key)
{
    int rc = mbedtls_ssl_config_defaults(conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0)
        return rc;
    /* TLS 1.2 only: the newest 2.28 speaks, and what Prosody/OpenSSL accept. */
    xs_tls_compat_tls12_only(conf);
    mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &c->drbg);
    /* The handshake never fails on the peer's certificate: whether it is good
     * enough depends on the partner's rules, which the caller applies with
     * xs_tls_peer_check (a peer without one may still use dialback). A
     * server asks for a client certificate only when it could verify one. */
    mbedtls_ssl_conf_authmode(conf, endpoint == MBEDTLS_SSL_IS_SERVER && !c->has_ca
                                        ? MBEDTLS_SSL_VERIFY_NONE
                                        : MBEDTLS_SSL_VERIFY_OPTIONAL);
    mbedtls_ssl_conf_ca_chain(conf, &c->cas, c->has_crl ? &c->crl : NULL);
    if (c->suites)
        mbedtls_ssl_conf_ciphersuites(conf, c->suites);
    if (endpoint == MBEDTLS_SSL_IS_SERVER && c->n_ids > 0)
        mbedtls_ssl_conf_sni(conf, xs__tls_sni, c);
    return mbedtls_ssl_conf_own_cert(conf, chain, key);
}

int xs__tls_cert_names(const mbedtls_x509_crt *crt, const char *name, int under)
{
    const mbedtls_x509_sequence *san = &crt->subject_alt_names;
    for (int i = 0; san && i < 64; san = san->next, i++) {
        if (san->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2) && san->buf.p &&
            (under ? xs_tls_name_under((const char *)san->buf.p, san->buf.len, name)
                   : xs_tls_name_match((const char *)san->buf.p, san->buf.len, name)))
            return 1;
    }
    return 0;
}

static void ctx_free(struct xs_tls_ctx *c)
{
    for (size_t i = 0; i < c->n_ids; i++) {
        mbedtls_ssl_config_free(&c->ids[i].client);
        mbedtls_pk_free(&c->ids[i].key);
        mbedtls_x509_crt_free(&c->ids[i].chain);
    }
    free(c->ids);
    mbedtls_ssl_config_free(&c->client);
    mbedtls_ssl_config_free(&c->server);
    mbedtls_x509_crl_free(&c->crl);
    mbedtls_x509_crt_free(&c->cas);
    mbedtls_pk_free(&c->key);
    mbedtls_x509_crt_free(&c->chain);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    free(c->suites);
    free(c);
}

/* The CA bundle: a PEM file, or a directory of them (every file that parses
 * counts; one that does not is skipped, as with OpenSSL's CApath). */
static int load_cas(struct xs_tls_ctx *c, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        set_err(err, errlen, "tls.ca %s: cannot be read", path);
        return MBEDTLS_ERR_X509_FILE_IO_ERROR;
    }
    int rc = S_ISDIR(st.st_mode) ? mbedtls_x509_crt_parse_path(&c->cas, path)
                                 : mbedtls_x509_crt_parse_file(&c->cas, path);
    if (rc < 0 || (rc > 0 && !S_ISDIR(st.st_mode)) || c->cas.raw.len == 0) {
        char what[300];
        snprintf(what, sizeof what, "tls.ca %s", path);
        if (rc >= 0)
            set_err(err, errlen, "tls.ca %s: holds no certificate that parses", path);
        else
            mbed_err(err, errlen, what, rc);
        return rc < 0 ? rc : MBEDTLS_ERR_X509_INVALID_FORMAT;
    }
    c->has_ca = 1;
    return 0;
}

static int load_identity(struct xs_tls_ctx *c, struct xs_tls_identity *id, const char *cert,
                         const char *key, char *err, size_t errlen)
{
    mbedtls_x509_crt_init(&id->chain);
    mbedtls_pk_init(&id->key);
    mbedtls_ssl_config_init(&id->client);
    int rc = load_files(&id->chain, &id->key, &c->drbg, cert, key, err, errlen);
    if (rc == 0 &&
        (rc = setup_conf(c, &id->client, MBEDTLS_SSL_IS_CLIENT, &id->chain, &id->key)) != 0)
        mbed_err(err, errlen, "configuring TLS", rc);
    return rc;
}

int xs_tls_ctx_new_cfg(const struct xs_tls_ctx_cfg *cfg, struct xs_tls_ctx **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    const char *cert_path = cfg->cert_path, *key_path = cfg->key_path;
    if (!cert_path != !key_path) {
        set_err(err, errlen, "%s", "tls: give both a certificate and a key file, or neither");
        return XS_EINVAL;
    }
    if (!cert_path) {
        if (!cfg->names || cfg->n_names == 0 || cfg->n_names > TLS_MAX_NAMES) {
            set_err(err, errlen, "%s",
                    "tls: a generated certificate needs between 1 and 64 domain names");
            return XS_EINVAL;
        }
        for (size_t i = 0; i < cfg->n_names; i++) {
            if (!valid_name(cfg->names[i])) {
                set_err(err, errlen, "tls: '%.253s' is not a host name usable in a certificate",
                        cfg->names[i] ? cfg->names[i] : "(null)");
                return XS_EINVAL;
            }
        }
    }
    if (cfg->crl_path && !cfg->ca_path) {
        set_err(err, errlen, "%s", "tls: a CRL needs a CA bundle");
        return XS_EINVAL;
    }

    struct xs_tls_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        set_err(err, errlen, "%s", "tls: out of memory");
        return XS_ENOMEM;
    }
    c->refs = 1;
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    mbedtls_x509_crt_init(&c->chain);
    mbedtls_pk_init(&c->key);
    mbedtls_x509_crt_init(&c->cas);
    mbedtls_x509_crl_init(&c->crl);
    mbedtls_ssl_config_init(&c->server);
    mbedtls_ssl_config_init(&c->client);
    c->suites = suite_preference();

    static const char pers[] = "xsgw tls";
    int rc = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
                                   (const unsigned char *)pers, sizeof pers - 1);
    if (rc != 0) {
        mbed_err(err, errlen, "seeding random generator", rc);
        goto fail;
    }
    if (cert_path)
        rc = load_files(&c->chain, &c->key, &c->drbg, cert_path, key_path, err, errlen);
    else
        rc = generate_self_signed(c, cfg->names, cfg->n_names, err, errlen);
    if (rc != 0)
        goto fail;
    if (cfg->ca_path && (rc = load_cas(c, cfg->ca_path, err, errlen)) != 0)
        goto fail;
    if (cfg->crl_path) {
        rc = mbedtls_x509_crl_parse_file(&c->crl, cfg->crl_path);
        if (rc != 0) {
            char what[300];
            snprintf(what, sizeof what, "tls.crl %s", cfg->crl_path);
            mbed_err(err, errlen, what, rc);
            goto fail;
        }
        c->has_crl = 1;
    }
    if (cfg->n_extra > 0) {
        c->ids = calloc(cfg->n_extra, sizeof *c->ids);
        if (!c->ids) {
            rc = MBEDTLS_ERR_X509_ALLOC_FAILED;
            set_err(err, errlen, "%s", "tls: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < cfg->n_extra; i++) {
            c->n_ids = i + 1;
            rc = load_identity(c, &c->ids[i], cfg->extra_certs[i], cfg->extra_keys[i], err, errlen);
            if (rc != 0)
                goto fail;
        }
    }
    if ((rc = setup_conf(c, &c->server, MBEDTLS_SSL_IS_SERVER, &c->chain, &c->key)) != 0 ||
        (rc = setup_conf(c, &c->client, MBEDTLS_SSL_IS_CLIENT, &c->chain, &c->key)) != 0) {
        mbed_err(err, errlen, "configuring TLS", rc);
        goto fail;
    }
    *out = c;
    return 0;

fail:
    ctx_free(c);
    return rc == XS_EINVAL ? rc : map_mbed(rc);
}

int xs_tls_ctx_has_ca(const struct xs_tls_ctx *ctx)
{
    return ctx->has_ca;
}

int xs_tls_ctx_new(const char *cert_path, const char *key_path, const char *const *names,
                   size_t n_names, struct xs_tls_ctx **out, char *err, size_t errlen)
{
    struct xs_tls_ctx_cfg cfg = {
        .cert_path = cert_path, .key_path = key_path, .names = names, .n_names = n_names};
    return xs_tls_ctx_new_cfg(&cfg, out, err, errlen);
}

void xs_tls_ctx_ref(struct xs_tls_ctx *ctx)
{
    ctx->refs++;
}

void xs_tls_ctx_unref(struct xs_tls_ctx *ctx)
{
    if (ctx && --ctx->refs == 0)
        ctx_free(ctx);
}

static int write_file(const char *path, const unsigned char *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return XS_EIO;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return XS_EIO;
        }
        done += (size_t)n;
    }
    return close(fd) == 0 ? 0 : XS_EIO;
}

int xs_tls_ctx_write_pem(const struct xs_tls_ctx *ctx, const char *cert_path, const char *key_path)
{
    /* Base64 grows by 4/3 plus line breaks and the armour lines. */
    size_t cap = ctx->chain.raw.len * 2 + 128;
    if (cap < 1024)
        cap = 1024;
    unsigned char *buf = malloc(cap);
    if (!buf)
        return XS_ENOMEM;
    size_t olen = 0;
    int rc =
        mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
                                 ctx->chain.raw.p, ctx->chain.raw.len, buf, cap, &olen);
    if (rc == 0)
        rc = write_file(cert_path, buf, strnlen((const char *)buf, olen), 0644);
    else
        rc = XS_EIO;
    if (rc == 0) {
        /* mbedtls 2.28 declares the key writer non-const; it only reads. */
        rc = mbedtls_pk_write_key_pem((mbedtls_pk_context *)&ctx->key, buf, cap) == 0
                 ? write_file(key_path, buf, strlen((const char *)buf), 0600)
                 : XS_EIO;
    }
    mbedtls_platform_zeroize(buf, cap);
    free(buf);
    return rc;
}
