/* TLS sessions over memory: mbedtls reads ciphertext from a bounded input
 * buffer the owner feeds, and writes ciphertext into a bounded output buffer
 * the owner drains to the socket. An empty input is WANT_READ, which the
 * public calls report as XS_EAGAIN, so the handshake and reads simply resume
 * on the next feed. */
#include "tls/tls.h"
#include "tls/tls_compat.h"
#include "tls/tls_int.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/oid.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/limits.h"
#include "core/metrics.h"
#include "tls/tls_name.h"

#define TLS_IN_MAX (64 * 1024)
/* Plaintext one write may hand over: a whole stanza of the largest allowed
 * body (core/limits.h). */
#define TLS_OUT_MAX XS_MESSAGE_WIRE_MAX
/* Room past TLS_OUT_MAX for record headers, MACs and handshake messages, so
 * the send callback never refuses a record half way: xs_tls_write checks
 * plaintext against TLS_OUT_MAX before encrypting anything. */
#define TLS_OUT_SLACK (64 * 1024)

enum tls_state { TLS_HANDSHAKE, TLS_OPEN, TLS_CLOSED, TLS_FAILED };

struct xs_tls {
    struct xs_tls_ctx *ctx; /* one reference held */
    mbedtls_ssl_context ssl;
    struct xs_buf in; /* fed ciphertext; in_pos bytes of it already consumed */
    size_t in_pos;
    /* Ciphertext lent by xs_tls_lend until xs_tls_lend_end: read in place,
     * so only what a read leaves unconsumed is ever copied into `in`. */
    const char *lent;
    size_t lent_len, lent_pos;
    struct xs_buf out;
    enum tls_state state;
    char sni[XS_TLS_NAME_MAX + 1]; /* server side: the name the client asked for */
    char err[192];
    char desc[96];
};

static int bio_send(void *p, const unsigned char *data, size_t len)
{
    struct xs_tls *t = p;
    if (xs_buf_append(&t->out, data, len) != 0)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)len;
}

/* Owned ciphertext comes first; lent bytes only exist when there is none
 * (xs_tls_lend copies behind a leftover instead of lending). */
static int bio_recv(void *p, unsigned char *data, size_t len)
{
    struct xs_tls *t = p;
    size_t avail = t->in.len - t->in_pos;
    const char *src = t->in.data + t->in_pos;
    size_t *pos = &t->in_pos;
    if (avail == 0 && t->lent) {
        avail = t->lent_len - t->lent_pos;
        src = t->lent + t->lent_pos;
        pos = &t->lent_pos;
    }
    if (avail == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > avail)
        len = avail;
    memcpy(data, src, len);
    *pos += len;
    return (int)len;
}

/* The closed set of reasons xsgw_tls_handshake_failures_total counts. */
static enum xs_metrics_tls_fail handshake_failure(int rc)
{
    switch (rc) {
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
        return XS_MTLS_ALERT;
    case MBEDTLS_ERR_SSL_CONN_EOF:
    case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
        return XS_MTLS_CLOSED;
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
#ifdef MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE
    case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
#endif
#ifdef MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE
    case MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE:
#endif
#ifdef MBEDTLS_ERR_SSL_BAD_CERTIFICATE
    case MBEDTLS_ERR_SSL_BAD_CERTIFICATE:
#endif
        return XS_MTLS_CERTIFICATE;
    case MBEDTLS_ERR_SSL_INVALID_RECORD:
    case MBEDTLS_ERR_SSL_INVALID_MAC:
    case MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE:
    case MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE:
#ifdef MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION
    case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
#endif
#ifdef MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION
    case MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION:
#endif
#ifdef MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN
    case MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN:
#endif
#ifdef MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO
    case MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO:
#endif
#ifdef MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO
    case MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO:
#endif
#ifdef MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE
    case MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE:
#endif
        return XS_MTLS_PROTOCOL;
    default:
        return XS_MTLS_OTHER;
    }
}

static int fail(struct xs_tls *t, const char *what, int rc)
{
    /* mbedtls_ssl_read drives an unfinished handshake too, so a read can
     * fail the handshake. */
    if (t->state == TLS_HANDSHAKE)
        xs_metrics_tls_handshake_failure(handshake_failure(rc));
    if (t->state != TLS_FAILED)
        xs_tls_format_error(t->err, sizeof t->err, what, rc);
    t->state = TLS_FAILED;
    return XS_ETLS;
}

int xs_tls_new(struct xs_tls_ctx *ctx, int is_server, const char *server_name, struct xs_tls **out)
{
    return xs_tls_new_as(ctx, is_server, server_name, NULL, out);
}

int xs_tls_new_as(struct xs_tls_ctx *ctx, int is_server, const char *server_name,
                  const char *local_name, struct xs_tls **out)
{
    *out = NULL;
    struct xs_tls *t = calloc(1, sizeof *t);
    if (!t)
        return XS_ENOMEM;
    mbedtls_ssl_init(&t->ssl);
    xs_buf_init(&t->in, TLS_IN_MAX);
    xs_buf_init(&t->out, TLS_OUT_MAX + TLS_OUT_SLACK);
    const mbedtls_ssl_config *conf = is_server ? &ctx->server : &ctx->client;
    if (!is_server && local_name) {
        for (size_t i = 0; i < ctx->n_ids; i++) {
            if (xs__tls_cert_names(&ctx->ids[i].chain, local_name, 0)) {
                conf = &ctx->ids[i].client;
                break;
            }
        }
    }
    int rc = mbedtls_ssl_setup(&t->ssl, conf);
    if (rc == 0 && !is_server && server_name)
        rc = mbedtls_ssl_set_hostname(&t->ssl, server_name);
    if (rc != 0) {
        mbedtls_ssl_free(&t->ssl);
        xs_buf_free(&t->in);
        xs_buf_free(&t->out);
        free(t);
        return rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? XS_ENOMEM : XS_EINVAL;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    xs_tls_ctx_ref(ctx);
    t->ctx = ctx;
    *out = t;
    return 0;
}

void xs_tls_free(struct xs_tls *t)
{
    if (!t)
        return;
    if (t->state == TLS_HANDSHAKE)
        xs_metrics_tls_handshake_failure(XS_MTLS_CLOSED);
    mbedtls_ssl_free(&t->ssl);
    xs_buf_free(&t->in);
    xs_buf_free(&t->out);
    xs_tls_ctx_unref(t->ctx);
    free(t);
}

int xs_tls_lend(struct xs_tls *t, const char *data, size_t len)
{
    if (t->lent || t->in_pos < t->in.len)
        return xs_tls_feed(t, data, len);
    if (len > TLS_IN_MAX)
        return XS_ELIMIT;
    t->lent = data;
    t->lent_len = len;
    t->lent_pos = 0;
    return 0;
}

int xs_tls_lend_end(struct xs_tls *t)
{
    if (!t->lent)
        return 0;
    int rc = xs_buf_append(&t->in, t->lent + t->lent_pos, t->lent_len - t->lent_pos);
    t->lent = NULL;
    t->lent_len = t->lent_pos = 0;
    return rc;
}

int xs_tls_feed(struct xs_tls *t, const char *data, size_t len)
{
    if (t->in_pos > 0) {
        xs_buf_consume(&t->in, t->in_pos);
        t->in_pos = 0;
    }
    return xs_buf_append(&t->in, data, len);
}

/* Ciphertext fed or lent and not yet taken by mbedtls. */
static size_t input_left(const struct xs_tls *t)
{
    return t->in.len - t->in_pos + (t->lent ? t->lent_len - t->lent_pos : 0);
}

/* Once mbedtls has taken every byte fed, the input buffer goes: an idle
 * session holds no ciphertext and no memory for it (the next feed makes
 * a buffer of the size it needs). */
static void release_input(struct xs_tls *t)
{
    if (t->in_pos < t->in.len)
        return;
    xs_buf_free(&t->in);
    t->in_pos = 0;
}

/* mbedtls_ssl_read also drives an unfinished handshake, so the handshake can
 * end inside xs_tls_read; either way the session opens here. */
static void note_open(struct xs_tls *t)
{
    if (t->state != TLS_HANDSHAKE || !xs_tls_compat_handshake_over(&t->ssl))
        return;
    t->state = TLS_OPEN;
    const char *v = mbedtls_ssl_get_version(&t->ssl);
    const char *c = mbedtls_ssl_get_ciphersuite(&t->ssl);
    snprintf(t->desc, sizeof t->desc, "%s/%s", v ? v : "?", c ? c : "?");
}

int xs_tls_handshake(struct xs_tls *t)
{
    if (t->state == TLS_FAILED)
        return XS_ETLS;
    if (t->state != TLS_HANDSHAKE)
        return 0;
    int rc = mbedtls_ssl_handshake(&t->ssl);
    release_input(t);
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return XS_EAGAIN;
    if (rc != 0)
        return fail(t, "handshake", rc);
    note_open(t);
    return 0;
}

int xs_tls_read(struct xs_tls *t, char *out, size_t cap)
{
    if (t->state == TLS_FAILED)
        return XS_ETLS;
    if (t->state == TLS_CLOSED)
        return XS_ECLOSED;
    if (cap == 0)
        return XS_EINVAL;
    if (cap > INT32_MAX)
        cap = INT32_MAX;
    /* mbedtls answers 0 for a record with no content; a few in a row are
     * legal padding, what follows them may be data. */
    for (int empty = 0; empty < 4; empty++) {
        int rc = mbedtls_ssl_read(&t->ssl, (unsigned char *)out, cap);
        note_open(t);
        release_input(t);
        if (rc > 0)
            return rc;
        if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            t->state = TLS_CLOSED;
            return XS_ECLOSED;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE ||
            (rc == 0 && input_left(t) == 0))
            return XS_EAGAIN;
        if (rc < 0)
            return fail(t, "read", rc);
    }
    return XS_EAGAIN;
}

int xs_tls_write(struct xs_tls *t, const char *data, size_t len)
{
    if (t->state == TLS_FAILED)
        return XS_ETLS;
    if (t->state == TLS_CLOSED)
        return XS_ECLOSED;
    if (t->state != TLS_OPEN)
        return XS_EAGAIN;
    if (len > TLS_OUT_MAX || t->out.len > TLS_OUT_MAX - len)
        return XS_ELIMIT;
    const unsigned char *p = (const unsigned char *)data;
    while (len > 0) {
        int rc = mbedtls_ssl_write(&t->ssl, p, len);
        if (rc <= 0)
            return fail(t, "write", rc);
        p += rc;
        len -= (size_t)rc;
    }
    return 0;
}

void xs_tls_close_notify(struct xs_tls *t)
{
    if (t->state == TLS_OPEN)
        mbedtls_ssl_close_notify(&t->ssl);
}

void xs_tls_out(struct xs_tls *t, const char **data, size_t *len)
{
    *data = t->out.data;
    *len = t->out.len;
}

void xs_tls_out_consume(struct xs_tls *t, size_t n)
{
    xs_buf_consume(&t->out, n);
}

void xs_tls_release(struct xs_tls *t)
{
    if (t->out.len == 0)
        xs_buf_free(&t->out);
    if (!t->lent)
        release_input(t);
}

const char *xs_tls_error(const struct xs_tls *t)
{
    return t->err;
}

int xs_tls_peer_verified(const struct xs_tls *t)
{
    return (t->state == TLS_OPEN || t->state == TLS_CLOSED) &&
           mbedtls_ssl_get_verify_result(&t->ssl) == 0;
}

const char *xs_tls_describe(const struct xs_tls *t)
{
    return t->desc;
}

int xs__tls_sni(void *p, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len)
{
    struct xs_tls_ctx *ctx = p;
    /* Every session's mbedtls context lives inside its struct xs_tls. */
    struct xs_tls *t = (struct xs_tls *)(void *)((char *)ssl - offsetof(struct xs_tls, ssl));
    if (len == 0 || len > XS_TLS_NAME_MAX || memchr(name, '\0', len))
        return 0;
    memcpy(t->sni, name, len);
    t->sni[len] = '\0';
    for (size_t i = 0; i < ctx->n_ids; i++) {
        if (xs__tls_cert_names(&ctx->ids[i].chain, t->sni, 0))
            return mbedtls_ssl_set_hs_own_cert(ssl, &ctx->ids[i].chain, &ctx->ids[i].key);
    }
    return 0;
}

const char *xs_tls_sni(const struct xs_tls *t)
{
    return t->sni;
}

/* Appends ", name" (or the first name) to buf, truncating with "...". */
static void add_name(char *buf, size_t cap, const unsigned char *name, size_t len)
{
    size_t used = strlen(buf);
    if (used + 8 >= cap)
        return;
    if (used > 0) {
        memcpy(buf + used, ", ", 2);
        used += 2;
    }
    for (size_t i = 0; i < len && used + 4 < cap; i++) {
        unsigned char c = name[i];
        buf[used++] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
    }
    if (used + 4 >= cap)
        memcpy(buf + cap - 4, "...", 4);
    else
        buf[used] = '\0';
}

static void leaf_names(const mbedtls_x509_crt *crt, char *buf, size_t cap)
{
    buf[0] = '\0';
    const mbedtls_x509_sequence *san = &crt->subject_alt_names;
    for (int i = 0; san && i < 64; san = san->next, i++) {
        if (san->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2) && san->buf.p)
            add_name(buf, cap, san->buf.p, san->buf.len);
    }
    if (buf[0])
        return;
    const mbedtls_x509_name *n = &crt->subject;
    for (; n; n = n->next) {
        if (n->oid.p && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
            char cn[128] = "";
            add_name(cn, sizeof cn, n->val.p, n->val.len);
            snprintf(buf, cap, "no subjectAltName (CN=%s)", cn);
            return;
        }
    }
    snprintf(buf, cap, "%s", "no subjectAltName");
}

static void issuer_cn(const mbedtls_x509_crt *crt, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (const mbedtls_x509_name *n = &crt->issuer; n; n = n->next) {
        if (n->oid.p && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
            add_name(buf, cap, n->val.p, n->val.len);
            return;
        }
    }
    snprintf(buf, cap, "%s", "an unnamed issuer");
}

static void chain_reason(const mbedtls_x509_crt *crt, enum xs_tls_chain chain, char *buf,
                         size_t cap)
{
    char who[128];
    const mbedtls_x509_time *when =
        chain == XS_TLS_CHAIN_EXPIRED ? &crt->valid_to : &crt->valid_from;
    switch (chain) {
    case XS_TLS_CHAIN_UNTRUSTED:
        if (crt->issuer_raw.len == crt->subject_raw.len &&
            memcmp(crt->issuer_raw.p, crt->subject_raw.p, crt->issuer_raw.len) == 0) {
            snprintf(buf, cap, "%s", "self-signed, not issued by a trusted CA");
        } else {
            issuer_cn(crt, who, sizeof who);
            snprintf(buf, cap, "issued by %s, not a trusted CA", who);
        }
        break;
    case XS_TLS_CHAIN_EXPIRED:
    case XS_TLS_CHAIN_FUTURE:
        snprintf(buf, cap, "%s %04d-%02d-%02d %02d:%02d:%02d UTC",
                 chain == XS_TLS_CHAIN_EXPIRED ? "expired on" : "not valid before", when->year,
                 when->mon, when->day, when->hour, when->min, when->sec);
        break;
    case XS_TLS_CHAIN_REVOKED:
        snprintf(buf, cap, "%s", "revoked by its CA (CRL)");
        break;
    case XS_TLS_CHAIN_USAGE:
        snprintf(buf, cap, "%s", "its key usage does not allow this use (serverAuth/clientAuth)");
        break;
    default:
        snprintf(buf, cap, "%s", "the certificate chain does not verify");
        break;
    }
}

int xs_tls_peer_check(const struct xs_tls *t, const char *reference, struct xs_tls_peer *out)
{
    memset(out, 0, sizeof *out);
    out->chain = XS_TLS_CHAIN_NONE;
    const mbedtls_x509_crt *crt = NULL;
    if (t->state == TLS_OPEN || t->state == TLS_CLOSED)
        crt = mbedtls_ssl_get_peer_cert(&t->ssl);
    if (!crt) {
        snprintf(out->names, sizeof out->names, "%s", "none");
        snprintf(out->reason, sizeof out->reason, "%s", "no certificate presented");
        return XS_ETLS;
    }
    leaf_names(crt, out->names, sizeof out->names);
    char ref[XS_TLS_NAME_MAX + 1];
    int under = reference && reference[0] == '*' && reference[1] == '.';
    int ref_ok =
        reference && xs_tls_name_to_alabel(reference + (under ? 2 : 0), ref, sizeof ref) == 0;
    out->name_ok = ref_ok && xs__tls_cert_names(crt, ref, under);

    /* mbedtls's own name check (with its common-name fallback) is not ours:
     * names are checked above, per RFC 9525. */
    uint32_t flags =
        mbedtls_ssl_get_verify_result(&t->ssl) & ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
    if (!t->ctx->has_ca)
        out->chain = XS_TLS_CHAIN_NO_CA;
    else if (flags == 0)
        out->chain = XS_TLS_CHAIN_OK;
    else if (flags & MBEDTLS_X509_BADCERT_REVOKED)
        out->chain = XS_TLS_CHAIN_REVOKED;
    else if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        out->chain = XS_TLS_CHAIN_UNTRUSTED;
    else if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        out->chain = XS_TLS_CHAIN_EXPIRED;
    else if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        out->chain = XS_TLS_CHAIN_FUTURE;
    else if (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
                      MBEDTLS_X509_BADCERT_NS_CERT_TYPE))
        out->chain = XS_TLS_CHAIN_USAGE;
    else
        out->chain = XS_TLS_CHAIN_BAD;

    char why[160] = "";
    if (out->chain == XS_TLS_CHAIN_NO_CA)
        snprintf(why, sizeof why, "%s", "no CA bundle is configured to verify it against");
    else if (out->chain != XS_TLS_CHAIN_OK)
        chain_reason(crt, out->chain, why, sizeof why);
    if (!out->name_ok)
        snprintf(out->reason, sizeof out->reason, "presented %.150s; expected %.80s%s%.140s",
                 out->names, reference ? reference : "(none)", why[0] ? "; " : "", why);
    else
        snprintf(out->reason, sizeof out->reason, "%s", why);
    return out->chain == XS_TLS_CHAIN_OK && out->name_ok ? 0 : XS_ETLS;
}
