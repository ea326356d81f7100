#include "net/link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "net/addr.h"

/* What one read takes from the socket. The buffer is shared by every link
 * of the thread (see read_buffer), so its size costs nothing per link. */
#define LINK_READ_SIZE (64 * 1024)
/* Plaintext taken out of the TLS session per call: one record's worth. It
 * lives on the stack of the call that delivers it. */
#define LINK_PLAIN_SIZE (16 * 1024)
#define TLS_BATCH 16384 /* a full TLS record's plaintext */
#define LINK_CLOSE_GRACE_MS 2000

struct xs_link {
    uv_tcp_t *tcp;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    /* The idle timer while the link is open, the close grace timer once it
     * is closing: never both, so one handle serves. */
    uv_timer_t grace;
    struct xs_link_cbs cbs;
    void (*on_flushed)(void *ud);
    void *ud;
    struct xs_tls *tls;
    int tls_ready;
    /* Bytes waiting to be written, and the bytes of the one write in flight. */
    struct xs_buf pending;
    struct xs_buf inflight;
    /* Under TLS, plaintext written while a write is in flight: it is
     * encrypted when that write completes, in records of up to
     * TLS_BATCH bytes, so a burst of stanzas costs a few records and not
     * one each. Counted in `accepted` already. */
    struct xs_buf plain_out;
    /* Plaintext offsets (see xs_link_flushed): everything accepted before
     * the write in flight started is covered by it, so its completion moves
     * `flushed` to `inflight_end`. */
    uint64_t accepted, flushed, inflight_end;
    int writing;
    int closing;
    int close_reason;
    int handles_open; /* tcp and grace timer each count one until their close callback */
    unsigned idle_ms; /* 0: no idle timeout */
    void (*idle_cb)(void *ud);
    int paused;      /* the owner stopped reading (xs_link_pause) */
    int in_input;    /* inside tls_input: resume must not re-enter it */
    int half_close;  /* xs_link_shutdown: FIN once the queue drained, then wait for EOF */
    int fin_sent;
    char peer[XS_NET_ADDR_STRLEN];
};

static void link_flush(struct xs_link *l);
static int tls_encrypt_batch(struct xs_link *l);
static void link_fail(struct xs_link *l, int reason);
static void link_drained(struct xs_link *l);
static void link_touch(struct xs_link *l);

/* The tcp handle is freed with the link, not in its own close callback, so
 * l->tcp never dangles while the grace timer is still closing. */
static void on_handle_closed(uv_handle_t *h)
{
    struct xs_link *l = h->data;
    if (--l->handles_open > 0)
        return;
    if (l->cbs.closed)
        l->cbs.closed(l->ud, l->close_reason);
    free(l->tcp);
    if (l->tls)
        xs_tls_free(l->tls);
    xs_buf_free(&l->pending);
    xs_buf_free(&l->inflight);
    xs_buf_free(&l->plain_out);
    free(l);
}

static void link_close_now(struct xs_link *l)
{
    if (uv_is_closing((uv_handle_t *)l->tcp))
        return;
    uv_close((uv_handle_t *)&l->grace, on_handle_closed);
    uv_close((uv_handle_t *)l->tcp, on_handle_closed);
}

static void on_grace(uv_timer_t *t)
{
    struct xs_link *l = t->data;
    /* Bytes still queued are dropped: the close is no longer an orderly one. */
    if (l->writing || l->pending.len > 0 || l->plain_out.len > 0)
        l->close_reason = XS_ETIMEOUT;
    link_close_now(l);
}

void xs_link_close(struct xs_link *l, int reason)
{
    if (l->closing)
        return;
    l->closing = 1;
    l->close_reason = reason;
    uv_read_stop((uv_stream_t *)l->tcp);
    if (l->tls && l->tls_ready && reason == XS_OK) {
        /* What was written goes before the close_notify. */
        if (l->plain_out.len > 0 && tls_encrypt_batch(l) != 0)
            return;
        xs_tls_close_notify(l->tls);
        link_flush(l);
    }
    if (!l->writing && l->pending.len == 0) {
        link_close_now(l);
        return;
    }
    uv_timer_start(&l->grace, on_grace, LINK_CLOSE_GRACE_MS, 0);
}

/* A failure closes at once: what is queued can no longer be trusted to go out. */
static void link_fail(struct xs_link *l, int reason)
{
    if (l->closing && uv_is_closing((uv_handle_t *)l->tcp))
        return;
    l->closing = 1;
    l->close_reason = reason;
    uv_read_stop((uv_stream_t *)l->tcp);
    link_close_now(l);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct xs_link *l = req->data;
    if (status < 0 && status != UV_ECANCELED)
        link_close_now(l);
}

/* Everything queued has been written on a closing link: a full close ends
 * here; a half-close sends FIN and keeps reading until the peer's EOF (or
 * the grace timer), so unread input does not turn our close into a reset
 * that could destroy the answer before the peer read it. */
static void link_drained(struct xs_link *l)
{
    if (!l->half_close) {
        link_close_now(l);
        return;
    }
    if (l->fin_sent)
        return;
    l->fin_sent = 1;
    l->sreq.data = l;
    if (uv_shutdown(&l->sreq, (uv_stream_t *)l->tcp, on_shutdown) != 0)
        link_close_now(l);
}

/* Nothing left to write: the output buffers go, so that a link gone quiet
 * holds none (they are kept while writes follow each other). */
static void link_quiet(struct xs_link *l)
{
    xs_buf_free(&l->pending);
    xs_buf_free(&l->inflight);
    xs_buf_free(&l->plain_out);
    if (l->tls)
        xs_tls_release(l->tls);
}

static void on_write(uv_write_t *req, int status)
{
    struct xs_link *l = req->data;
    l->writing = 0;
    xs_buf_reset(&l->inflight);
    if (status < 0) {
        if (status != UV_ECANCELED)
            link_fail(l, XS_EIO);
        return;
    }
    link_touch(l);
    if (l->inflight_end > l->flushed) {
        l->flushed = l->inflight_end;
        if (l->on_flushed && !uv_is_closing((uv_handle_t *)l->tcp))
            l->on_flushed(l->ud);
    }
    link_flush(l);
    if (!l->writing && l->pending.len == 0)
        link_quiet(l);
    if (l->closing && !l->writing && l->pending.len == 0 && !uv_is_closing((uv_handle_t *)l->tcp))
        link_drained(l);
}

/* Encrypts the batched plaintext. A failure here is the link's: the
 * writes it holds were accepted, and cannot be handed back. */
static int tls_encrypt_batch(struct xs_link *l)
{
    size_t off = 0;
    while (off < l->plain_out.len) {
        size_t n = l->plain_out.len - off < TLS_BATCH ? l->plain_out.len - off : TLS_BATCH;
        int rc = xs_tls_write(l->tls, l->plain_out.data + off, n);
        if (rc != 0) {
            link_fail(l, rc == XS_ELIMIT ? XS_ELIMIT : XS_ETLS);
            return rc;
        }
        off += n;
        const char *p;
        size_t m;
        xs_tls_out(l->tls, &p, &m);
        if (m && xs_buf_append(&l->pending, p, m) != 0) {
            link_fail(l, XS_ELIMIT);
            return XS_ELIMIT;
        }
        xs_tls_out_consume(l->tls, m);
    }
    xs_buf_reset(&l->plain_out);
    return 0;
}

/* Moves TLS output into the queue and starts a write if none is in flight. */
static void link_flush(struct xs_link *l)
{
    if (l->tls && !l->writing && l->plain_out.len > 0 && tls_encrypt_batch(l) != 0)
        return;
    if (l->tls) {
        const char *p;
        size_t n;
        xs_tls_out(l->tls, &p, &n);
        if (n) {
            if (xs_buf_append(&l->pending, p, n) != 0) {
                link_fail(l, XS_ELIMIT);
                return;
            }
            xs_tls_out_consume(l->tls, n);
        }
    }
    if (l->writing || l->pending.len == 0 || uv_is_closing((uv_handle_t *)l->tcp))
        return;
    struct xs_buf tmp = l->inflight;
    l->inflight = l->pending;
    l->pending = tmp;
    l->inflight_end = l->accepted;
    uv_buf_t b = uv_buf_init(l->inflight.data, (unsigned int)l->inflight.len);
    l->wreq.data = l;
    if (uv_write(&l->wreq, (uv_stream_t *)l->tcp, &b, 1, on_write) != 0) {
        link_fail(l, XS_EIO);
        return;
    }
    l->writing = 1;
}

static void on_idle(uv_timer_t *t)
{
    struct xs_link *l = t->data;
    if (l->closing)
        return;
    if (l->idle_cb)
        l->idle_cb(l->ud);
    else
        xs_link_close(l, XS_ETIMEOUT);
}

/* Bytes moving either way (read, written, or confirmed sent) restart the
 * idle timer. */
static void link_touch(struct xs_link *l)
{
    if (l->idle_ms && !l->closing)
        uv_timer_start(&l->grace, on_idle, l->idle_ms, 0);
}

void xs_link_set_idle(struct xs_link *l, unsigned ms, void (*cb)(void *ud))
{
    l->idle_ms = ms;
    l->idle_cb = cb;
    if (l->closing)
        return;
    if (ms)
        link_touch(l);
    else
        uv_timer_stop(&l->grace);
}

int xs_link_write(struct xs_link *l, const char *data, size_t len)
{
    if (l->closing)
        return XS_ECLOSED;
    int rc;
    if (l->tls && l->tls_ready && (l->writing || l->plain_out.len > 0))
        rc = xs_buf_append(&l->plain_out, data, len);
    else if (l->tls)
        rc = xs_tls_write(l->tls, data, len);
    else
        rc = xs_buf_append(&l->pending, data, len);
    if (rc != 0)
        return rc;
    /* Counted before the flush, which may put these bytes in flight at once. */
    l->accepted += len;
    link_touch(l);
    link_flush(l);
    return l->closing ? XS_ECLOSED : 0;
}

uint64_t xs_link_accepted(const struct xs_link *l)
{
    return l->accepted;
}

uint64_t xs_link_flushed(const struct xs_link *l)
{
    return l->flushed;
}

void xs_link_on_flushed(struct xs_link *l, void (*cb)(void *ud))
{
    l->on_flushed = cb;
}
static void tls_drain(struct xs_link *l);

static void tls_advance(struct xs_link *l);

/* The ciphertext is lent to the session, not copied: only what is left of
 * it when the handshake and the drain are done (a partial record) is kept,
 * since the read buffer is reused by the next read. */
static void tls_input(struct xs_link *l, const char *data, size_t len)
{
    if (xs_tls_lend(l->tls, data, len) != 0) {
        link_fail(l, XS_ELIMIT);
        return;
    }
    tls_advance(l);
    if (xs_tls_lend_end(l->tls) != 0)
        link_fail(l, XS_ELIMIT);
}

static void tls_advance(struct xs_link *l)
{
    if (!l->tls_ready) {
        int rc = xs_tls_handshake(l->tls);
        link_flush(l);
        if (l->closing)
            return;
        if (rc == XS_EAGAIN)
            return;
        if (rc != 0) {
            xs_log(XS_LOG_WARN, "link.tls", "peer=%s result=failed reason=\"%s\"", l->peer,
                   xs_tls_error(l->tls));
            link_fail(l, XS_ETLS);
            return;
        }
        l->tls_ready = 1;
        if (l->cbs.tls_ready)
            l->cbs.tls_ready(l->ud);
        if (l->closing)
            return;
    }
    tls_drain(l);
}

/* Hands the owner the plaintext the TLS layer holds, until it is empty or
 * the owner pauses; what is left waits in the session for xs_link_resume. */
static void tls_drain(struct xs_link *l)
{
    /* On the stack: a drain may run inside another link's data callback
     * (xs_link_resume), so no buffer can be shared between them, and a
     * link holds none while idle. */
    char plain[LINK_PLAIN_SIZE];
    l->in_input = 1;
    while (!l->paused) {
        /* The plaintext of as many records as fit goes to the owner at
         * once: a peer may send a record per stanza, and the owner's parser
         * is fed once per batch instead of once per record. */
        size_t have = 0;
        int n;
        do {
            n = xs_tls_read(l->tls, plain + have, sizeof plain - have);
            if (n > 0)
                have += (size_t)n;
        } while (n > 0 && have < sizeof plain);
        link_flush(l);
        if (l->closing)
            return;
        if (have > 0) {
            l->cbs.data(l->ud, plain, have);
            if (l->closing)
                break;
            if (n > 0)
                continue; /* the batch was full: more may be waiting */
        }
        if (n == XS_EAGAIN)
            break;
        if (n == XS_ECLOSED) {
            link_fail(l, XS_ECLOSED);
            break;
        }
        link_fail(l, XS_ETLS);
        break;
    }
    l->in_input = 0;
}

/* One read buffer for all the links of a thread (that is, of its loop),
 * instead of one per link: libuv calls on_alloc and then on_read for one
 * handle at a time and never nests them, and on_read hands the bytes to
 * the owner, which copies what it keeps (the parser, the TLS session)
 * before returning. Allocated on first use, kept for the thread's life. */
static char *read_buffer(void)
{
    static _Thread_local char *buf;
    if (!buf)
        buf = malloc(LINK_READ_SIZE);
    return buf;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    char *b = read_buffer();
    /* libuv reports a zero-length buffer to on_read as UV_ENOBUFS. */
    *buf = uv_buf_init(b, b ? LINK_READ_SIZE : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct xs_link *l = s->data;
    if (nread == 0)
        return;
    if (l->closing) {
        /* Only a half-closed link still reads: it discards input and
         * waits for the peer's EOF to finish the close. */
        if (nread < 0 && !uv_is_closing((uv_handle_t *)l->tcp))
            link_close_now(l);
        return;
    }
    if (nread < 0) {
        link_fail(l, nread == UV_EOF ? XS_ECLOSED : XS_EIO);
        return;
    }
    link_touch(l);
    if (l->tls)
        tls_input(l, buf->base, (size_t)nread);
    else
        l->cbs.data(l->ud, buf->base, (size_t)nread);
}

struct xs_link *xs_link_new(uv_tcp_t *tcp, const struct xs_link_cbs *cbs, void *ud, size_t out_max)
{
    struct xs_link *l = calloc(1, sizeof *l);
    if (!l) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return NULL;
    }
    l->tcp = tcp;
    l->cbs = *cbs;
    l->ud = ud;
    xs_buf_init(&l->pending, out_max);
    xs_buf_init(&l->inflight, out_max);
    xs_buf_init(&l->plain_out, out_max);
    tcp->data = l;
    uv_timer_init(tcp->loop, &l->grace);
    l->grace.data = l;
    l->handles_open = 2;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0)
        xs_net_addr_format((struct sockaddr *)&ss, l->peer, sizeof l->peer);
    else
        snprintf(l->peer, sizeof l->peer, "?");
    uv_tcp_nodelay(tcp, 1);
    if (uv_read_start((uv_stream_t *)tcp, on_alloc, on_read) != 0) {
        l->closing = 1;
        l->close_reason = XS_EIO;
        link_close_now(l);
    }
    return l;
}

int xs_link_start_tls(struct xs_link *l, struct xs_tls_ctx *ctx, int is_server,
                      const char *server_name)
{
    return xs_link_start_tls_as(l, ctx, is_server, server_name, NULL);
}

int xs_link_start_tls_as(struct xs_link *l, struct xs_tls_ctx *ctx, int is_server,
                         const char *server_name, const char *local_name)
{
    if (l->tls || l->closing)
        return XS_ESTATE;
    int rc = xs_tls_new_as(ctx, is_server, server_name, local_name, &l->tls);
    if (rc != 0)
        return rc;
    if (!is_server) {
        xs_tls_handshake(l->tls);
        link_flush(l);
    }
    return 0;
}

int xs_link_is_tls(const struct xs_link *l)
{
    return l->tls != NULL && l->tls_ready;
}

const struct xs_tls *xs_link_tls(const struct xs_link *l)
{
    return l->tls;
}

const char *xs_link_tls_describe(const struct xs_link *l)
{
    return l->tls ? xs_tls_describe(l->tls) : "plain";
}

const char *xs_link_peer(const struct xs_link *l)
{
    return l->peer;
}

void xs_link_pause(struct xs_link *l)
{
    if (l->paused || l->closing)
        return;
    l->paused = 1;
    uv_read_stop((uv_stream_t *)l->tcp);
}

void xs_link_resume(struct xs_link *l)
{
    if (!l->paused || l->closing)
        return;
    l->paused = 0;
    if (uv_read_start((uv_stream_t *)l->tcp, on_alloc, on_read) != 0) {
        link_fail(l, XS_EIO);
        return;
    }
    link_touch(l);
    /* Plaintext TLS already decrypted before the pause is delivered now,
     * unless we are inside the loop that delivers it (it goes on by itself). */
    if (l->tls && l->tls_ready && !l->in_input)
        tls_drain(l);
}

void xs_link_shutdown(struct xs_link *l, int reason)
{
    if (l->closing)
        return;
    l->closing = 1;
    l->half_close = 1;
    l->close_reason = reason;
    if (l->paused && uv_read_start((uv_stream_t *)l->tcp, on_alloc, on_read) != 0) {
        link_close_now(l);
        return;
    }
    if (l->tls && l->tls_ready) {
        if (l->plain_out.len > 0 && tls_encrypt_batch(l) != 0)
            return;
        xs_tls_close_notify(l->tls);
        link_flush(l);
        if (uv_is_closing((uv_handle_t *)l->tcp))
            return;
    }
    uv_timer_start(&l->grace, on_grace, LINK_CLOSE_GRACE_MS, 0);
    if (!l->writing && l->pending.len == 0)
        link_drained(l);
}

int xs_link_set_keepalive(struct xs_link *l, unsigned delay_s)
{
    return uv_tcp_keepalive(l->tcp, delay_s > 0, delay_s) == 0 ? 0 : XS_EIO;
}
