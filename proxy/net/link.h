/* A link is one TCP connection with an optional TLS layer stacked on it at any
 * point (STARTTLS). The protocol above sees plaintext in and plaintext out;
 * it never touches the socket. Output is one bounded queue with at most one
 * write in flight, so bytes leave in the order they were written, whether
 * they were queued before or after TLS started. */
#ifndef XS_NET_LINK_H
#define XS_NET_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tls/tls.h"

struct xs_link;

struct xs_link_cbs {
    /* Plaintext that arrived. The callee may write, start TLS or close the
     * link; after a close no further callback but `closed` comes. */
    void (*data)(void *ud, const char *data, size_t len);
    /* The TLS handshake completed. */
    void (*tls_ready)(void *ud);
    /* The link is gone: peer closed (XS_ECLOSED), failed (XS_EIO, XS_ETLS,
     * XS_ETIMEOUT, XS_ELIMIT) or was closed locally (the reason given to
     * xs_link_close). Called once; the link is freed right after it returns. */
    void (*closed)(void *ud, int reason);
};

/* Wraps a connected TCP handle. `tcp` is taken: heap-allocated with malloc,
 * closed and freed by the link. `out_max` bounds queued output bytes. Reading
 * starts at once. Returns NULL on OOM (tcp is then closed and freed). */
struct xs_link *xs_link_new(uv_tcp_t *tcp, const struct xs_link_cbs *cbs, void *ud, size_t out_max);

/* Queues len bytes (copied). XS_ELIMIT when the output queue would pass its
 * bound (the caller should treat the peer as too slow and close), XS_ECLOSED
 * after close, XS_ETLS when the TLS layer failed. On success the bytes end at
 * xs_link_accepted(). */
int xs_link_write(struct xs_link *l, const char *data, size_t len)
    __attribute__((warn_unused_result));

/* Offsets in the plaintext the link was given, counted from its start:
 * `accepted` grows with every successful xs_link_write; `flushed` is how far
 * the kernel has confirmed the bytes written (for TLS: the whole ciphertext
 * of that plaintext), so bytes up to `flushed` have left the process and
 * bytes past it may never leave if the link dies. flushed <= accepted. */
uint64_t xs_link_accepted(const struct xs_link *l);
uint64_t xs_link_flushed(const struct xs_link *l);
/* Asks to hear (with the link's ud) each time xs_link_flushed() moves
 * forward. The callee may write or close. */
void xs_link_on_flushed(struct xs_link *l, void (*cb)(void *ud));

/* Stacks TLS on the link from the next byte on, in either role. `ctx` is
 * borrowed (the session holds its own reference). `server_name` is the SNI
 * for clients, NULL for servers. */
int xs_link_start_tls(struct xs_link *l, struct xs_tls_ctx *ctx, int is_server,
                      const char *server_name);
/* The same, presenting our identity for `local_name` (xs_tls_new_as). */
int xs_link_start_tls_as(struct xs_link *l, struct xs_tls_ctx *ctx, int is_server,
                         const char *server_name, const char *local_name);
int xs_link_is_tls(const struct xs_link *l);
/* The link's TLS session (borrowed, lives as long as the link), NULL before TLS. */
const struct xs_tls *xs_link_tls(const struct xs_link *l);
/* "TLSv1.2/..." or "plain". */
const char *xs_link_tls_describe(const struct xs_link *l);

/* Closes after what is queued has been written (bounded by a short grace
 * timer). `closed` is called with `reason` from the close callback, or with
 * XS_ETIMEOUT when the grace ran out with bytes still unwritten, or with the
 * failure that struck while the queue drained. */
void xs_link_close(struct xs_link *l, int reason);

/* "ip:port" of the peer ("[ip]:port" for IPv6), for logs. */
const char *xs_link_peer(const struct xs_link *l);

/* Closes the link when for `ms` no byte has come from the peer, been
 * written or been confirmed sent (0 turns the timeout off; the link starts
 * without one). It keeps running while the link is paused, so a peer that
 * neither sends nor takes our bytes is dropped even then. With `cb`
 * NULL the link closes itself with XS_ETIMEOUT; otherwise cb(ud) runs and
 * decides. Calling it again restarts the wait with the new value. */
void xs_link_set_idle(struct xs_link *l, unsigned ms, void (*cb)(void *ud));

/* Backpressure: stop reading from the socket (and delivering plaintext TLS
 * already decrypted) until resume. Both may be called from inside the data
 * callback. */
void xs_link_pause(struct xs_link *l);
void xs_link_resume(struct xs_link *l);

/* Half-close: no more writes are taken; once what is queued has been
 * written (after close_notify under TLS) the link sends FIN, then discards
 * input until the peer closes too, bounded by the close grace timer.
 * `closed` is called with `reason`. Use it to answer and hang up without
 * the reset that closing over unread input would send. */
void xs_link_shutdown(struct xs_link *l, int reason);

/* TCP keepalive probes after delay_s idle seconds (0: off). TCP_NODELAY is
 * always on. */
int xs_link_set_keepalive(struct xs_link *l, unsigned delay_s);

#endif
