/* TLS sessions over memory: mbedtls reads ciphertext from a bounded input
 * buffer the owner feeds, and writes ciphertext into a bounded output buffer
 * the owner drains to the socket. An empty input is WANT_READ, which the
 * public calls report as XS_EAGAIN, so the handshake and reads simply resume
 * on the next feed. */
#include "tls/tls.h"
#include "tls/tls_compat.h"
#include "tls/tls_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/limits.h"

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

static int fail(struct xs_tls *t, const char *what, int rc)
{
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
    (void)local_name;
    *out = NULL;
    struct xs_tls *t = calloc(1, sizeof *t);
    if (!t)
        return XS_ENOMEM;
    mbedtls_ssl_init(&t->ssl);
    xs_buf_init(&t->in, TLS_IN_MAX);
    xs_buf_init(&t->out, TLS_OUT_MAX + TLS_OUT_SLACK);
    int rc = mbedtls_ssl_setup(&t->ssl, is_server ? &ctx->server : &ctx->client);
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
