/* TLS over mbedtls as a filter between a byte stream and a protocol: no
 * sockets here. The owner feeds ciphertext that arrived, reads plaintext,
 * writes plaintext and collects ciphertext to send. That is what lets
 * STARTTLS begin in the middle of an XMPP stream. */
#ifndef XS_TLS_TLS_H
#define XS_TLS_TLS_H

#include <stddef.h>

/* Shared per policy generation: certificate chain, key, RNG, CA set. */
struct xs_tls_ctx;

/* Loads cert_path/key_path (PEM). When both are NULL, generates a
 * self-signed certificate (EC P-256) whose subject CN and subjectAltName
 * dNSNames are `names` (n_names >= 1), for the shipped default. On failure
 * returns a negative XS_E* and a one-line reason in err. */
int xs_tls_ctx_new(const char *cert_path, const char *key_path, const char *const *names,
                   size_t n_names, struct xs_tls_ctx **out, char *err, size_t errlen);
/* Reference counted: sessions hold the context they were made from, so a
 * reload can drop its reference while old sessions live on. */
/* What a context is built from: the default identity (cert_path/key_path,
 * or both NULL to generate one for `names`), more identities, and the trust
 * anchors. All borrowed for the call. */
struct xs_tls_ctx_cfg {
    const char *cert_path;
    const char *key_path;
    const char *const *names;
    size_t n_names;
    /* More certificate/key pairs; each serves the dNSNames of its leaf. A
     * server picks one by SNI, a client by the local domain it connects as
     * (xs_tls_new_as), the default identity otherwise. */
    const char *const *extra_certs;
    const char *const *extra_keys;
    size_t n_extra;
    const char *ca_path;  /* PEM bundle file or directory; NULL: no trust anchors */
    const char *crl_path; /* PEM CRL file; NULL: none */
};
/* The same as xs_tls_ctx_new with identities and trust. Every file is read
 * and checked here (a key that does not match, a CA file with no
 * certificate, an unreadable CRL: an error that names the file), so a
 * reload can build one first and keep the old context when it fails. */
int xs_tls_ctx_new_cfg(const struct xs_tls_ctx_cfg *cfg, struct xs_tls_ctx **out, char *err,
                       size_t errlen);
/* 1 when the context has trust anchors (a CA bundle). */
int xs_tls_ctx_has_ca(const struct xs_tls_ctx *ctx);
void xs_tls_ctx_ref(struct xs_tls_ctx *ctx);
void xs_tls_ctx_unref(struct xs_tls_ctx *ctx);
/* Writes the context's leaf certificate and private key as PEM files (the key
 * created with mode 0600), so a generated certificate can be handed to a peer
 * to trust. Returns 0, XS_ENOMEM or XS_EIO. */
int xs_tls_ctx_write_pem(const struct xs_tls_ctx *ctx, const char *cert_path, const char *key_path);

struct xs_tls;

/* A session. `server_name` (client side) is sent as SNI; NULL on the server
 * side. The handshake completes whatever the peer's certificate: whether it
 * is good enough is the caller's decision (xs_tls_peer_check), since a peer
 * without one may still be allowed to authenticate with dialback. */
int xs_tls_new(struct xs_tls_ctx *ctx, int is_server, const char *server_name, struct xs_tls **out);
/* The same, presenting the identity for `local_name` (our domain the
 * connection is made for; NULL or unknown: the default identity). A server
 * session asks the client for a certificate (optional: a peer without one
 * may still authenticate otherwise) when the context has trust anchors. */
int xs_tls_new_as(struct xs_tls_ctx *ctx, int is_server, const char *server_name,
                  const char *local_name, struct xs_tls **out);
void xs_tls_free(struct xs_tls *t);

/* Ciphertext from the network. At most 64 KiB may wait unprocessed;
 * beyond that XS_ELIMIT (the owner stops reading until xs_tls_read drains). */
int xs_tls_feed(struct xs_tls *t, const char *data, size_t len);
/* The same without a copy, for a caller whose buffer is reused after the
 * call that delivered it: `data` (borrowed) is read in place until
 * xs_tls_lend_end, which copies in what is still unconsumed then (only a
 * partial record, as a rule) and returns xs_tls_feed's result for it. In
 * between, only handshake, read and write calls. */
int xs_tls_lend(struct xs_tls *t, const char *data, size_t len);
int xs_tls_lend_end(struct xs_tls *t);
/* Advances the handshake: 0 when complete, XS_EAGAIN while more input is
 * needed (check xs_tls_out for bytes to send either way), XS_ETLS on failure
 * (xs_tls_error() says why). */
int xs_tls_handshake(struct xs_tls *t);
/* Plaintext out of what was fed: n > 0 bytes, XS_EAGAIN when nothing is
 * available, XS_ECLOSED on close_notify, XS_ETLS on failure. */
int xs_tls_read(struct xs_tls *t, char *out, size_t cap);
/* Encrypts all of data into the outgoing ciphertext buffer (bounded at 1 MiB
 * pending: XS_ELIMIT). */
int xs_tls_write(struct xs_tls *t, const char *data, size_t len);
/* Queues a close_notify alert. */
void xs_tls_close_notify(struct xs_tls *t);
/* Ciphertext waiting to go out: points into the session (valid until the next
 * call on it); consume what was handed to the socket. */
void xs_tls_out(struct xs_tls *t, const char **data, size_t *len);
void xs_tls_out_consume(struct xs_tls *t, size_t n);
/* Frees the input and output buffers if they are empty: for a session gone
 * quiet, so that it holds only mbedtls's own state. */
void xs_tls_release(struct xs_tls *t);
/* Last failure as text, "" if none. */
const char *xs_tls_error(const struct xs_tls *t);
/* 1 when the handshake is complete and the peer's certificate chain
 * verified against the context's trust anchors (mbedtls flags == 0), else 0.
 * Verification is OPTIONAL for now, so the handshake completes either way;
 * this keeps the result for the code that will require it. */
int xs_tls_peer_verified(const struct xs_tls *t);
/* Why a peer's certificate chain is or is not trusted. */
enum xs_tls_chain {
    XS_TLS_CHAIN_OK = 0,
    XS_TLS_CHAIN_NONE,      /* the peer presented no certificate */
    XS_TLS_CHAIN_NO_CA,     /* we have no trust anchors to check it against */
    XS_TLS_CHAIN_UNTRUSTED, /* not issued by a CA we trust (self-signed, other CA) */
    XS_TLS_CHAIN_EXPIRED,
    XS_TLS_CHAIN_FUTURE, /* not valid yet */
    XS_TLS_CHAIN_REVOKED,
    XS_TLS_CHAIN_USAGE, /* key usage or extended key usage forbids this use */
    XS_TLS_CHAIN_BAD    /* anything else mbedtls refused */
};
/* The verdict on a peer's certificate for one reference identity. */
struct xs_tls_peer {
    enum xs_tls_chain chain;
    int name_ok;      /* the leaf names the reference identity (RFC 9525 DNS-ID, no CN fallback) */
    char names[256];  /* the identities the leaf presents, comma-separated, for logs
                         ("sip.int.example.test, *.example.test"; "no subjectAltName (CN=x)") */
    char reason[420]; /* "" when both pass; else one line, naming both names
                         ("presented sip.int.example.test, expected sip.example.test")
                         or the chain's fault ("expired on 2021-01-01 00:00:00 UTC") */
};
/* Checks the peer's certificate of an open session against `reference` (a
 * domain; U-labels are compared as A-labels; "*.domain" for an accept list
 * means any one label under domain, xs_tls_name_under) and fills *out. Returns 0 when
 * the chain is trusted and the name matches, else XS_ETLS. */
int xs_tls_peer_check(const struct xs_tls *t, const char *reference, struct xs_tls_peer *out);
/* The server name the client asked for (SNI) on a server session, "" if none. */
const char *xs_tls_sni(const struct xs_tls *t);
/* Negotiated protocol and cipher for logs ("TLSv1.2/TLS-ECDHE-..."), "" before. */
const char *xs_tls_describe(const struct xs_tls *t);

#endif
