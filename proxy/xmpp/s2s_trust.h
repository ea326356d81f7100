/* The inbound trust rules (README, "Who authenticates how"): whether a
 * domain may authenticate on a stream by SASL EXTERNAL or by dialback,
 * given its partner entry and the stream's facts, and the stream error or
 * SASL failure that says why not. Pure functions of their arguments, so a
 * reload can re-apply them to a stream's recorded facts and a unit test
 * can walk the whole matrix without a socket. */
#ifndef XS_XMPP_S2S_TRUST_H
#define XS_XMPP_S2S_TRUST_H

#include "policy/policy.h"
#include "tls/tls.h"

#define XS_S2S_VERDICT_TEXT 640

/* How a pair was authenticated on an inbound stream, for logs and for the
 * re-check after a reload. */
enum xs_s2s_auth {
    XS_S2S_AUTH_DIALBACK = 1,      /* XEP-0220, verified with the authoritative server */
    XS_S2S_AUTH_DIALBACK_CERT = 2, /* XEP-0344: dialback answered from the certificate */
    XS_S2S_AUTH_SASL = 3           /* SASL EXTERNAL */
};
/* "dialback", "dialback-cert", "sasl-external" (the log's method=). */
const char *xs_s2s_auth_name(enum xs_s2s_auth how);

struct xs_s2s_verdict {
    /* NULL when allowed; else the condition: a stream error
     * (xs_s2s_trust_dialback) or a SASL failure (xs_s2s_trust_sasl). */
    const char *cond;
    char text[XS_S2S_VERDICT_TEXT]; /* one line saying why; "" when allowed */
    int cert_ok;                    /* the certificate is trusted and names the domain */
};

/* The stream's facts given to each rule: `p` the partner entry for the
 * domain (borrowed; NULL: not a partner), `remote` the domain, `tls` 1
 * when the stream is encrypted, `cert` the verdict on the peer's
 * certificate for `remote` (borrowed; NULL without TLS). Each returns 0
 * when allowed, XS_EAUTH when refused, and fills *v either way. */

/* Dialback (db:result) for `remote`. Refusals, in this order: not a
 * partner (policy-violation), sasl "required" (not-authorized), tls
 * "required" in the clear (policy-violation), dialback false
 * (not-authorized, with the certificate's state), verify "ca" with a
 * certificate that fails (not-authorized, with its reason). When allowed
 * and cert_ok, the pair may be validated without the verify round trip
 * (XEP-0344). */
int xs_s2s_trust_dialback(const struct xs_partner *p, const char *remote, int tls,
                          const struct xs_tls_peer *cert, struct xs_s2s_verdict *v);
/* SASL EXTERNAL for `remote`: encryption-required in the clear;
 * not-authorized when not a partner, when its sasl is "none", or when the
 * certificate fails (the text is the certificate's reason). */
int xs_s2s_trust_sasl(const struct xs_partner *p, const char *remote, int tls,
                      const struct xs_tls_peer *cert, struct xs_s2s_verdict *v);
/* Re-applies the rule by which a pair was authenticated (after a reload). */
int xs_s2s_trust_recheck(const struct xs_partner *p, const char *remote, enum xs_s2s_auth how,
                         int tls, const struct xs_tls_peer *cert, struct xs_s2s_verdict *v);

/* What the features offer, by the partner the stream header's from names
 * (NULL: none named, or not a partner; the header check refuses the
 * latter before features are sent). */
int xs_s2s_trust_offer_starttls(const struct xs_partner *p);
int xs_s2s_trust_starttls_required(const struct xs_partner *p);
/* EXTERNAL is offered on an encrypted stream whose peer presented a
 * certificate chain we trust (`chain_ok`), unless the partner says "none". */
int xs_s2s_trust_offer_sasl(const struct xs_partner *p, int tls, int chain_ok);
/* Dialback is offered unless the partner's rules refuse it on this stream. */
int xs_s2s_trust_offer_dialback(const struct xs_partner *p, int tls);

#endif
