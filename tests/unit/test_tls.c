/* The TLS filter with no sockets: a client and a server session are pumped
 * against each other in memory, the way the link layer moves bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/oid.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include "check.h"
#include "core/err.h"
#include "core/limits.h"
#include "core/metrics.h"
#include "tls/tls.h"

#define CHUNK 16384

/* Plaintext one side has read, kept to compare with what the other wrote. */
struct sink {
    char *data;
    size_t len;
    size_t cap;
    int closed;
    int failed;
};

static void sink_add(struct sink *s, const char *p, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->data = realloc(s->data, s->cap);
        if (!s->data)
            abort();
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
}

/* How move() hands ciphertext over: copied (xs_tls_feed) in CHUNK pieces,
 * or lent (xs_tls_lend) in pieces that cut records anywhere, from a buffer
 * that is overwritten and freed as soon as the lending ends, and with the
 * quiet-time release in between, as the link does. */
static int lend_mode;
static size_t chunk = CHUNK;

static void read_all(struct xs_tls *to, struct sink *to_sink, int *hs_to)
{
    if (*hs_to == XS_EAGAIN)
        *hs_to = xs_tls_handshake(to);
    if (*hs_to == 0) {
        char buf[4096];
        for (;;) {
            int r = xs_tls_read(to, buf, sizeof buf);
            if (r > 0) {
                sink_add(to_sink, buf, (size_t)r);
                continue;
            }
            if (r == XS_ECLOSED)
                to_sink->closed = 1;
            else if (r != XS_EAGAIN)
                to_sink->failed = 1;
            break;
        }
    }
}

/* Moves at most `chunk` bytes of ciphertext from one session to the other
 * and lets the receiver read what it can, like one socket read. Returns the
 * number of bytes moved. */
static size_t move(struct xs_tls *from, struct xs_tls *to, struct sink *to_sink, int *hs_to)
{
    const char *p;
    size_t n;
    xs_tls_out(from, &p, &n);
    if (n > chunk)
        n = chunk;
    if (n && lend_mode) {
        char *lent = malloc(n);
        memcpy(lent, p, n);
        xs_tls_out_consume(from, n);
        CHECK(xs_tls_lend(to, lent, n) == 0);
        read_all(to, to_sink, hs_to);
        CHECK(xs_tls_lend_end(to) == 0);
        memset(lent, 0xAA, n);
        free(lent);
        xs_tls_release(to);
        xs_tls_release(from);
        return n;
    }
    if (n) {
        int rc = xs_tls_feed(to, p, n);
        CHECK(rc == 0);
        xs_tls_out_consume(from, n);
    }
    read_all(to, to_sink, hs_to);
    return n;
}

/* Runs both directions until nothing moves. */
static void pump(struct xs_tls *c, struct xs_tls *s, struct sink *cs, struct sink *ss, int *hs_c,
                 int *hs_s)
{
    size_t moved = 1;
    for (int i = 0; i < 10000 && moved; i++)
        moved = move(c, s, ss, hs_s) + move(s, c, cs, hs_c);
    CHECK(moved == 0);
}

struct pair {
    struct xs_tls *c, *s;
    struct sink cs, ss;
    int hs_c, hs_s;
};

static void pair_free(struct pair *p)
{
    xs_tls_free(p->c);
    xs_tls_free(p->s);
    free(p->cs.data);
    free(p->ss.data);
}

static int handshake_pair(struct xs_tls_ctx *client_ctx, struct xs_tls_ctx *server_ctx,
                          struct pair *p)
{
    memset(p, 0, sizeof *p);
    if (xs_tls_new(client_ctx, 0, "gw.test", &p->c) != 0 ||
        xs_tls_new(server_ctx, 1, NULL, &p->s) != 0)
        return -1;
    p->hs_s = XS_EAGAIN;
    p->hs_c = xs_tls_handshake(p->c);
    CHECK(p->hs_c == XS_EAGAIN);
    pump(p->c, p->s, &p->cs, &p->ss, &p->hs_c, &p->hs_s);
    if (p->hs_c != 0 || p->hs_s != 0) {
        fprintf(stderr, "handshake: client %d '%s', server %d '%s'\n", p->hs_c, xs_tls_error(p->c),
                p->hs_s, xs_tls_error(p->s));
        return -1;
    }
    return 0;
}

static void test_session(struct xs_tls_ctx *ctx)
{
    struct pair p;
    int hs = handshake_pair(ctx, ctx, &p);
    CHECK(hs == 0);
    if (hs != 0) {
        pair_free(&p);
        return;
    }
    CHECK(strncmp(xs_tls_describe(p.c), "TLSv1.2/TLS-", 12) == 0);
    CHECK(strcmp(xs_tls_describe(p.c), xs_tls_describe(p.s)) == 0);
#if defined(__x86_64__) && defined(__GNUC__)
    /* With AES instructions our side ranks AES-128-GCM first (tls_ctx.c). */
    if (__builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul"))
        CHECK(strstr(xs_tls_describe(p.s), "-AES-128-GCM-") != NULL);
#endif
    CHECK(strcmp(xs_tls_error(p.c), "") == 0);
    /* Self-signed and no trust anchors: the handshake completes unverified. */
    CHECK(!xs_tls_peer_verified(p.c));
    CHECK(!xs_tls_peer_verified(p.s));
    /* A completed handshake stays complete. */
    CHECK(xs_tls_handshake(p.c) == 0);
    char none[1];
    CHECK(xs_tls_read(p.c, none, 0) == XS_EINVAL);
    CHECK(xs_tls_read(p.c, none, sizeof none) == XS_EAGAIN);

    const char *hello = "<stream:stream to='gw.test'>";
    CHECK(xs_tls_write(p.c, hello, strlen(hello)) == 0);
    CHECK(xs_tls_write(p.s, "pong", 4) == 0);
    pump(p.c, p.s, &p.cs, &p.ss, &p.hs_c, &p.hs_s);
    CHECK(p.ss.len == strlen(hello) && memcmp(p.ss.data, hello, p.ss.len) == 0);
    CHECK(p.cs.len == 4 && memcmp(p.cs.data, "pong", 4) == 0);

    /* 100 KB both ways, more than the 64 KiB input bound: the pump moves it
     * in socket-sized pieces and the receiver drains as it goes. */
    size_t big = 100 * 1024;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)(i * 7 + 3);
    p.cs.len = p.ss.len = 0;
    CHECK(xs_tls_write(p.c, data, big) == 0);
    CHECK(xs_tls_write(p.s, data, big) == 0);
    pump(p.c, p.s, &p.cs, &p.ss, &p.hs_c, &p.hs_s);
    CHECK(p.ss.len == big && memcmp(p.ss.data, data, big) == 0);
    CHECK(p.cs.len == big && memcmp(p.cs.data, data, big) == 0);
    CHECK(!p.cs.failed && !p.ss.failed);

    /* The outgoing bound: one stanza of the largest allowed body
     * (core/limits.h) of pending ciphertext, so such a stanza always fits. */
    const size_t max = XS_MESSAGE_WIRE_MAX, part = max / 2 + 1024;
    char *mb = calloc(1, max + 1);
    CHECK(xs_tls_write(p.c, mb, max + 1) == XS_ELIMIT);
    CHECK(xs_tls_write(p.c, mb, max) == 0);
    const char *o;
    size_t olen;
    xs_tls_out(p.c, &o, &olen);
    CHECK(olen > max && olen < max + max / 8);
    p.ss.len = 0;
    pump(p.c, p.s, &p.cs, &p.ss, &p.hs_c, &p.hs_s);
    CHECK(p.ss.len == max);
    CHECK(xs_tls_write(p.c, mb, part) == 0);
    CHECK(xs_tls_write(p.c, mb, part) == XS_ELIMIT);
    free(mb);
    p.ss.len = 0;
    pump(p.c, p.s, &p.cs, &p.ss, &p.hs_c, &p.hs_s);
    CHECK(p.ss.len == part);

    /* close_notify ends the stream cleanly on the other side. */
    xs_tls_close_notify(p.c);
    pump(p.c, p.s, &p.cs, &p.ss, &p.hs_c, &p.hs_s);
    CHECK(p.ss.closed);
    char buf[16];
    CHECK(xs_tls_read(p.s, buf, sizeof buf) == XS_ECLOSED);
    CHECK(xs_tls_write(p.s, "x", 1) == XS_ECLOSED);
    free(data);
    pair_free(&p);
}

/* The rendered value of one TLS handshake failure reason. */
static unsigned long long handshake_failures(const char *reason)
{
    struct xs_buf b;
    xs_buf_init(&b, 1 << 20);
    unsigned long long v = ~0ull;
    char key[128];
    snprintf(key, sizeof key, "\nxsgw_tls_handshake_failures_total{reason=\"%s\"} ", reason);
    const char *p = xs_metrics_render(&b) == 0 && b.data ? strstr(b.data, key) : NULL;
    if (p)
        v = strtoull(p + strlen(key), NULL, 10);
    xs_buf_free(&b);
    return v;
}

static void test_garbage(struct xs_tls_ctx *ctx)
{
    xs_metrics_reset();
    struct xs_tls *s;
    CHECK(xs_tls_new(ctx, 1, NULL, &s) == 0);
    CHECK(xs_tls_handshake(s) == XS_EAGAIN);
    const char *junk = "<stream:stream xmlns='jabber:server'>this is not TLS at all\r\n\r\n";
    CHECK(xs_tls_feed(s, junk, strlen(junk)) == 0);
    CHECK(xs_tls_handshake(s) == XS_ETLS);
    CHECK(strncmp(xs_tls_error(s), "handshake: ", 11) == 0);
    CHECK(xs_tls_handshake(s) == XS_ETLS);
    char buf[16];
    CHECK(xs_tls_read(s, buf, sizeof buf) == XS_ETLS);
    CHECK(xs_tls_write(s, "x", 1) == XS_ETLS);
    CHECK(strcmp(xs_tls_describe(s), "") == 0);
    xs_tls_free(s);

    /* A client that gets garbage back after its ClientHello. */
    struct xs_tls *c;
    CHECK(xs_tls_new(ctx, 0, "gw.test", &c) == 0);
    CHECK(xs_tls_handshake(c) == XS_EAGAIN);
    const char *o;
    size_t olen;
    xs_tls_out(c, &o, &olen);
    CHECK(olen > 0);
    unsigned char bad[64];
    memset(bad, 0x16, sizeof bad); /* looks like a handshake record, lengths absurd */
    CHECK(xs_tls_feed(c, (const char *)bad, sizeof bad) == 0);
    CHECK(xs_tls_handshake(c) == XS_ETLS);
    CHECK(xs_tls_error(c)[0] != '\0');
    xs_tls_free(c);
    /* Both counted once as a protocol failure, however often they were
     * asked to go on; and a session dropped mid-handshake as closed. */
    CHECK(handshake_failures("protocol") == 2);
    CHECK(handshake_failures("closed") == 0);
    CHECK(xs_tls_new(ctx, 1, NULL, &s) == 0);
    CHECK(xs_tls_handshake(s) == XS_EAGAIN);
    xs_tls_free(s);
    CHECK(handshake_failures("closed") == 1);
    CHECK(handshake_failures("protocol") == 2);
    CHECK(handshake_failures("other") == 0);
}

static void test_feed_bound(struct xs_tls_ctx *ctx)
{
    struct xs_tls *s;
    CHECK(xs_tls_new(ctx, 1, NULL, &s) == 0);
    char *blob = calloc(1, 64 * 1024 + 1);
    CHECK(xs_tls_lend(s, blob, 64 * 1024 + 1) == XS_ELIMIT);
    CHECK(xs_tls_feed(s, blob, 64 * 1024 + 1) == XS_ELIMIT);
    CHECK(xs_tls_feed(s, blob, 64 * 1024) == 0);
    CHECK(xs_tls_feed(s, blob, 1) == XS_ELIMIT);
    /* Lent bytes behind a leftover are copied, under the same bound. */
    CHECK(xs_tls_lend(s, blob, 1) == XS_ELIMIT);
    /* Writing before the handshake is done is not possible yet. */
    CHECK(xs_tls_write(s, "x", 1) == XS_EAGAIN);
    free(blob);
    xs_tls_free(s);
}

static void test_bad_args(void)
{
    char err[256];
    struct xs_tls_ctx *ctx = (struct xs_tls_ctx *)1;
    const char *names[] = {"gw.test"};
    CHECK(xs_tls_ctx_new("/nonexistent/xsgw/cert.pem", "/nonexistent/xsgw/key.pem", names, 1, &ctx,
                         err, sizeof err) < 0);
    CHECK(ctx == NULL);
    CHECK(strstr(err, "/nonexistent/xsgw/cert.pem") != NULL);
    CHECK(xs_tls_ctx_new("/nonexistent/cert.pem", NULL, names, 1, &ctx, err, sizeof err) ==
          XS_EINVAL);
    CHECK(xs_tls_ctx_new(NULL, NULL, names, 0, &ctx, err, sizeof err) == XS_EINVAL);
    CHECK(err[0] != '\0');
    const char *bad[] = {"gw.test", "evil, O=x"};
    CHECK(xs_tls_ctx_new(NULL, NULL, bad, 2, &ctx, err, sizeof err) == XS_EINVAL);
    CHECK(strstr(err, "evil, O=x") != NULL);
    const char *empty[] = {""};
    CHECK(xs_tls_ctx_new(NULL, NULL, empty, 1, &ctx, err, sizeof err) == XS_EINVAL);
}

/* The generated certificate carries every name as a dNSName. */
static void check_san(const char *cert_path, const char *const *names, size_t n)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    CHECK(mbedtls_x509_crt_parse_file(&crt, cert_path) == 0);
    size_t i = 0;
    for (const mbedtls_x509_sequence *s = &crt.subject_alt_names; s && s->buf.p; s = s->next) {
        mbedtls_x509_subject_alternative_name san;
        CHECK(mbedtls_x509_parse_subject_alt_name(&s->buf, &san) == 0);
        CHECK(san.type == MBEDTLS_X509_SAN_DNS_NAME);
        CHECK(i < n && san.san.unstructured_name.len == strlen(names[i]) &&
              memcmp(san.san.unstructured_name.p, names[i], strlen(names[i])) == 0);
        i++;
    }
    CHECK(i == n);
    char dn[256];
    CHECK(mbedtls_x509_dn_gets(dn, sizeof dn, &crt.subject) > 0);
    char want[300];
    snprintf(want, sizeof want, "CN=%s", names[0]);
    CHECK(strcmp(dn, want) == 0);
    CHECK(crt.version == 3);
    CHECK(mbedtls_x509_crt_check_key_usage(&crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) == 0);
    CHECK(mbedtls_x509_crt_check_extended_key_usage(
              &crt, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) == 0);
    CHECK(mbedtls_x509_crt_check_extended_key_usage(
              &crt, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) == 0);
    /* Not a CA. The flag is a private field from mbedtls 3.0 on, without an accessor. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    CHECK(crt.MBEDTLS_PRIVATE(ca_istrue) == 0);
#else
    CHECK(crt.ca_istrue == 0);
#endif
    CHECK(!mbedtls_x509_time_is_past(&crt.valid_to));
    CHECK(mbedtls_x509_time_is_past(&crt.valid_from));
    mbedtls_x509_crt_free(&crt);
}

static void test_pem_files(struct xs_tls_ctx *generated, const char *const *names, size_t n)
{
    char dir[] = "/tmp/xs_tls_test_XXXXXX";
    const char *made = mkdtemp(dir);
    CHECK(made != NULL);
    if (!made)
        return;
    char cert[128], key[128], cmd[512], err[256];
    snprintf(cert, sizeof cert, "%s/gen.crt", dir);
    snprintf(key, sizeof key, "%s/gen.key", dir);
    CHECK(xs_tls_ctx_write_pem(generated, cert, key) == 0);
    check_san(cert, names, n);

    /* What was written loads back, and the key matches. */
    struct xs_tls_ctx *back = NULL;
    CHECK(xs_tls_ctx_new(cert, key, NULL, 0, &back, err, sizeof err) == 0);
    if (back)
        xs_tls_ctx_unref(back);

    /* A certificate made by the openssl CLI, as an operator would. */
    char ocert[128], okey[128];
    snprintf(ocert, sizeof ocert, "%s/o.crt", dir);
    snprintf(okey, sizeof okey, "%s/o.key", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=x "
             "-keyout %s -out %s -days 1 >/dev/null 2>&1",
             okey, ocert);
    CHECK(system(cmd) == 0);
    struct xs_tls_ctx *ossl = NULL;
    CHECK(xs_tls_ctx_new(ocert, okey, NULL, 0, &ossl, err, sizeof err) == 0);
    if (ossl) {
        struct pair p;
        CHECK(handshake_pair(generated, ossl, &p) == 0);
        pair_free(&p);
    }

    /* The openssl key with our certificate: the pair does not match. */
    struct xs_tls_ctx *mixed = NULL;
    CHECK(xs_tls_ctx_new(cert, okey, NULL, 0, &mixed, err, sizeof err) < 0);
    CHECK(strstr(err, "does not match") != NULL);

    /* Garbage in the key file: the error names the file. */
    char junk[128];
    snprintf(junk, sizeof junk, "%s/junk.key", dir);
    FILE *f = fopen(junk, "w");
    if (f) {
        fputs("-----BEGIN PRIVATE KEY-----\nnot base64 !!\n-----END PRIVATE KEY-----\n", f);
        fclose(f);
    }
    CHECK(xs_tls_ctx_new(ocert, junk, NULL, 0, &mixed, err, sizeof err) < 0);
    CHECK(strstr(err, junk) != NULL);

    /* A session outlives the context reference its creator dropped. */
    if (ossl) {
        struct xs_tls *s;
        CHECK(xs_tls_new(ossl, 1, NULL, &s) == 0);
        xs_tls_ctx_unref(ossl);
        CHECK(xs_tls_handshake(s) == XS_EAGAIN);
        xs_tls_free(s);
    }

    unlink(cert);
    unlink(key);
    unlink(ocert);
    unlink(okey);
    unlink(junk);
    rmdir(dir);
}

int main(void)
{
    const char *names[] = {"gw.test", "conference.gw.test", "*.users.gw.test"};
    char err[256];
    struct xs_tls_ctx *ctx = NULL;
    int rc = xs_tls_ctx_new(NULL, NULL, names, 3, &ctx, err, sizeof err);
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "ctx: %s\n", err);
        return check_report("test_tls");
    }
    test_session(ctx);
    lend_mode = 1;
    chunk = 1000;
    test_session(ctx);
    lend_mode = 0;
    chunk = CHUNK;
    test_garbage(ctx);
    test_feed_bound(ctx);
    test_bad_args();
    test_pem_files(ctx, names, 3);
    xs_tls_ctx_unref(ctx);
    return check_report("test_tls");
}
