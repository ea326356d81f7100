/* The SIP side of the gateway: transports (UDP, TCP, TLS), RFC 3261 §17
 * non-INVITE transactions, and MESSAGE (RFC 3428) both ways, on libosip2's
 * parser. Toward the middle it has the two faces of every side: arriving
 * MESSAGEs become events handed to `submit`, and xs_sip_deliver() turns an
 * event into a MESSAGE toward the configured next hop.
 *
 * Choices worth knowing:
 * - Requests are heard only from trusted sources (sip.trusted, by default
 *   the next hop's addresses, looked up at start and at every reload; see
 *   sip_acl.h). Anyone else gets a bare 403 built from the header section
 *   alone (503 while the next hop is still being looked up), logged at most
 *   ten lines a second. Responses are not checked: they only match our own
 *   random branches. Events from trusted sources carry auth "trusted-source".
 *   A sip.trusted list replaces the default, so a next hop that also sends
 *   requests must be listed in it.
 * - An arriving MESSAGE becomes an event with from/to taken from the From
 *   and To URIs as "sip:user@host" (no display name, port or parameters but
 *   a GRUU's ";gr=", which becomes the JID's resource; host lower-cased).
 *   To is preferred to the Request-URI, which RFC 3428 lets be a contact or
 *   GRUU rather than the address of record. thread = Call-ID, subject =
 *   Subject, lang = first Content-Language tag, type = "normal" (RFC 7572
 *   §5). Only text/plain (charset UTF-8 or none) is accepted (415 with
 *   Accept otherwise); the body must be UTF-8 text XML can carry (400).
 * - The final response goes out only when the router's done() comes: 200,
 *   or the RFC 7247 status with the reason in "Warning: 399 <domain>".
 *   Retransmissions are absorbed; a completed transaction answers them
 *   again until Timer J (64*T1 on UDP, at once on TCP), but only when they
 *   come from the very source (transport, socket, address and port) of the
 *   original: a stored response is never sent anywhere else (audit H1).
 * - A request with a header section past 8 KiB or more than 70 Vias gets a
 *   terse 513/400 (top Via only) and no transaction.
 * - A MESSAGE whose body (in UTF-8) passes gateway.max_body is answered 413
 *   before the policy sees it; nothing is submitted.
 * - A datagram larger than sip_max_message is answered 413 when it parses
 *   as a request, else dropped with a log line. On TCP, Content-Length is
 *   required; a missing or bad one gets 400, an oversized message 413, and
 *   the connection is closed after the answer is written.
 * - Responses to UDP requests go to the packet's source address and port
 *   (what rport asks for; RFC 3581), without adding received/rport.
 * - Requests we send to the next hop leave from their own socket (an
 *   ephemeral connected UDP socket, or one TCP connection) and carry rport.
 * - osip's parser keeps a process-wide header table (parser_init); it is the
 *   only global state of the SIP side and is filled idempotently. */
#ifndef XS_SIP_SIP_H
#define XS_SIP_SIP_H

#include <osipparser2/osip_parser.h>
#include <uv.h>

#include "event.h"
#include "policy/policy.h"
#include "presence/sub_store.h"

struct xs_sip;

struct xs_tls_ctx;

/* Starts the listeners named by cfg->sip_listen. `cfg` is copied (what the
 * SIP side needs of it), not kept. `tls` (borrowed; the transports take their
 * own reference) is the certificate tls: listeners present and the context a
 * tls: next hop is reached with; NULL when there is none, and then tls:
 * endpoints fail. Peer certificates are not verified. `submit`/`router`
 * receive arriving MESSAGE events. Returns 0 or a negative XS_E* (and logs
 * which listener failed). */
int xs_sip_start(uv_loop_t *loop, const struct xs_config *cfg, struct xs_tls_ctx *tls,
                 xs_submit_fn submit, void *router, struct xs_sip **out);

/* Takes the parts of a reloaded config that can change at run time (next
 * hop, limits, the TLS context: borrowed as in xs_sip_start; connections
 * made from now on use it, open ones keep theirs). Listeners stay as they
 * are; a changed listener set is logged as needing a restart. */
int xs_sip_reconfigure(struct xs_sip *sip, const struct xs_config *cfg, struct xs_tls_ctx *tls);

/* Sends ev (taken; ev->from and ev->to are SIP URIs) as a MESSAGE to the next
 * hop in a client transaction; done() gets XS_COND_NONE on a 2xx, the RFC
 * 7247 condition for any other final response, remote-server-timeout on
 * Timer F. Transport failures: remote-server-not-found when the next hop is
 * not configured, does not resolve or refuses the connection;
 * remote-server-timeout when no address of it answers within
 * tcp_connect_ms;
 * service-unavailable when the TCP connection is lost with the request in
 * flight (RFC 3261 §17.1.4 treats that as a 503) or the side is closing;
 * resource-constraint when too many transactions are pending;
 * jid-malformed / bad-request / policy-violation when the event cannot be
 * written as a MESSAGE (address, body, size). */
void xs_sip_deliver(void *sip, struct xs_event *ev, xs_done_cb done, void *ud);

/* Starts carrying presence (sip_presence.h says how): subscriptions both
 * ways, kept in `store` (taken; may be NULL: nothing survives a restart)
 * and restored from it now. Until this is called SUBSCRIBE and NOTIFY get
 * 503 and presence events fail with service-unavailable. Returns 0 or
 * XS_ENOMEM / XS_ESTATE. */
int xs_sip_presence_start(struct xs_sip *sip, const struct xs_config *cfg,
                          struct xs_sub_store *store);
/* Subscriptions held in a role, for logs and tests. */
size_t xs_sip_subscriptions(const struct xs_sip *sip, enum xs_sub_role role);
/* Reports the transactions and subscriptions held to the metrics collector
 * (core/metrics.h). */
void xs_sip_metrics(const struct xs_sip *sip);
/* Backpressure: fn(ud, 1) once the client transactions in flight reach
 * three quarters of max_client_txns or pressure_high, whichever is lower,
 * fn(ud, 0) once they are back under two thirds of that, so whoever feeds
 * xs_sip_deliver can stop reading its peers rather than have messages
 * refused with resource-constraint. */
void xs_sip_set_pressure(struct xs_sip *sip, void (*fn)(void *ud, int high), void *ud);

/* Says the gateway is stopping, before the other side fails what it holds:
 * from then on service-unavailable answers to SIP senders are the gateway's
 * own (503 with Retry-After, so the edge retries elsewhere or later), not a
 * remote user's (403, RFC 7247 §7.1 note 5). The TCP and TLS listeners
 * close: no new connection, while the ones there are carry the answers. */
void xs_sip_drain(struct xs_sip *sip);

/* `xsgw validate`: an OPTIONS request to the next hop over its transport,
 * through the same transports and transactions as every other request.
 * cb runs once with the final status (408 or 503 with `reason` when no
 * answer came or the connection failed), the TLS verdict of the
 * connection it went over for the next hop's expected identity (peer NULL
 * without TLS, or when the handshake failed: `reason` says why) and its
 * protocol/cipher ("" without TLS). Returns 0 or a negative XS_E*. */
struct xs_tls_peer;
typedef void (*xs_sip_ping_cb)(void *ud, int status, const char *reason,
                               const struct xs_tls_peer *peer, const char *tls_desc);
int xs_sip_ping(struct xs_sip *sip, xs_sip_ping_cb cb, void *ud);

/* Stops listening and closes every connection; client transactions still
 * pending complete with service-unavailable, server transactions still
 * waiting for the router are answered 503 (their done() may still come and
 * is then ignored). Lifetime rule: every event handed to xs_sip_deliver has
 * had its done() called by the time xs_sip_close returns, and none comes
 * after (the router is freed right after the sides close). `on_closed` runs once everything is
 * released (after the last libuv close callback). */
void xs_sip_close(struct xs_sip *sip, void (*on_closed)(void *ud), void *ud);

/* Tunables that are not part of the policy. The defaults are RFC 3261's
 * timers; tests shorten them. */
struct xs_sip_opts {
    unsigned t1_ms;         /* RTT estimate: 500 */
    unsigned t2_ms;         /* retransmit interval cap: 4000 */
    unsigned tcp_idle_ms;   /* TCP connection idle timeout: 300000 */
    /* Transactions in flight (sip.max_transactions sets both): server ones
     * waiting for the router, 503 + Retry-After beyond; client ones waiting
     * for the next hop, resource-constraint (type wait) beyond, with
     * backpressure well before (pressure_high, xs_sip_set_pressure): 65536. */
    size_t max_server_txns;
    size_t max_client_txns;
    /* Client transactions in flight at which backpressure rises at the
     * latest (0: only the three quarters of max_client_txns): 4096, about
     * 140 ms of answers at 30,000 msg/s, and what a 4 MiB receive buffer
     * holds of 400-byte answers (the kernel counts 1280 bytes each). */
    size_t pressure_high;
    size_t max_tcp_conns;   /* inbound TCP connections: 256 */
    size_t tcp_out_max;     /* bytes queued per connection/socket: 2 x XS_MESSAGE_WIRE_MAX */
    /* Bytes of completed server transactions kept for Timer J, records
     * and responses together (sip.max_stored_bytes): 512 MiB. Once it is
     * reached new requests are answered 503 + Retry-After until Timer J
     * frees room; kept records are never dropped early. */
    size_t max_stored_bytes;
    unsigned tcp_connect_ms;     /* deadline to reach the TCP next hop: 8000 */
    unsigned tcp_first_idle_ms;  /* idle timeout before a connection's first message: 10000 */
    size_t max_tcp_per_source;   /* inbound TCP connections per IP address: 16 */
};

void xs_sip_default_opts(struct xs_sip_opts *opts);

/* xs_sip_start with explicit tunables (opts copied). */
int xs_sip_start_opts(uv_loop_t *loop, const struct xs_config *cfg, struct xs_tls_ctx *tls,
                      const struct xs_sip_opts *opts, xs_submit_fn submit, void *router,
                      struct xs_sip **out);

/* The port cfg->sip_listen[i] is bound to (useful after asking for port 0),
 * or -1. */
int xs_sip_port(const struct xs_sip *sip, size_t i);

/* The RFC 7247 §7 mappings (sip_errmap.c), exposed for tests and for other
 * SIP methods. The plain tables: */
enum xs_cond xs_sip_status_to_cond(int status);
int xs_sip_cond_to_status(enum xs_cond cond);

/* The final response for a request that failed with cond and text (a done()
 * text, borrowed; may start with a new address, see xs_cond_text_addr):
 * gone and redirect with an address the gateway can write as a SIP URI give
 * 301/302 and a Contact line, everything else the table's status. */
struct xs_sip_error {
    int status;
    const char *text;   /* for the Warning: borrowed from text, may be NULL */
    char contact[XS_COND_ADDR_MAX + 16]; /* "Contact: <uri>\r\n", or "" */
};
void xs_sip_error_for(enum xs_cond cond, const char *text, struct xs_sip_error *out);

/* The condition for a final SIP response (borrowed), and in text (n bytes;
 * XS_COND_ADDR_MAX + 160 is enough) "SIP <code> <reason>", preceded by
 * "<uri> " with the first Contact for 301 and the other 3xx. */
enum xs_cond xs_sip_response_cond(const osip_message_t *resp, char *text, size_t n);

#endif
