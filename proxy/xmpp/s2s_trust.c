/* The inbound trust rules (s2s_trust.h). */
#include "xmpp/s2s_trust.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/err.h"

const char *xs_s2s_auth_name(enum xs_s2s_auth how)
{
    switch (how) {
    case XS_S2S_AUTH_DIALBACK:
        return "dialback";
    case XS_S2S_AUTH_DIALBACK_CERT:
        return "dialback-cert";
    case XS_S2S_AUTH_SASL:
        return "sasl-external";
    }
    return "?";
}

static int cert_passes(int tls, const struct xs_tls_peer *cert)
{
    return tls && cert && cert->chain == XS_TLS_CHAIN_OK && cert->name_ok;
}

/* Why the certificate does not pass, in words that follow "certificate":
 * the verdict's own reason when it has one. */
static const char *cert_reason(int tls, const struct xs_tls_peer *cert)
{
    if (!tls || !cert)
        return "not presented: the stream is not encrypted";
    if (cert->reason[0])
        return cert->reason;
    return cert->chain == XS_TLS_CHAIN_NONE ? "not presented" : "not valid for the domain";
}

static int refuse(struct xs_s2s_verdict *v, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(struct xs_s2s_verdict *v, const char *cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    v->cond = cond;
    vsnprintf(v->text, sizeof v->text, fmt, ap);
    va_end(ap);
    return XS_EAUTH;
}

int xs_s2s_trust_dialback(const struct xs_partner *p, const char *remote, int tls,
                          const struct xs_tls_peer *cert, struct xs_s2s_verdict *v)
{
    v->cond = NULL;
    v->text[0] = '\0';
    v->cert_ok = cert_passes(tls, cert);
    if (!p)
        return refuse(v, "policy-violation", "%s is not federated with this gateway", remote);
    if (p->sasl == XS_SASL_REQUIRED)
        return refuse(v, "not-authorized", "%s must authenticate with SASL EXTERNAL", remote);
    if (p->tls == XS_TLS_REQUIRED && !tls)
        return refuse(v, "policy-violation", "TLS is required for %s", remote);
    if (!p->dialback) {
        if (v->cert_ok)
            return refuse(v, "not-authorized",
                          "%s may not use dialback, and its certificate is valid: use SASL "
                          "EXTERNAL",
                          remote);
        return refuse(v, "not-authorized", "%s may not use dialback, and its certificate %s",
                      remote, cert_reason(tls, cert));
    }
    if (p->verify == XS_VERIFY_CA && !v->cert_ok)
        return refuse(v, "not-authorized", "certificate for %s required: %s", remote,
                      cert_reason(tls, cert));
    return 0;
}

int xs_s2s_trust_sasl(const struct xs_partner *p, const char *remote, int tls,
                      const struct xs_tls_peer *cert, struct xs_s2s_verdict *v)
{
    v->cond = NULL;
    v->text[0] = '\0';
    v->cert_ok = cert_passes(tls, cert);
    if (!tls)
        return refuse(v, "encryption-required", "SASL EXTERNAL needs TLS");
    if (!p)
        return refuse(v, "not-authorized", "%s is not federated with this gateway", remote);
    if (p->sasl == XS_SASL_NONE)
        return refuse(v, "not-authorized", "SASL EXTERNAL is not allowed for %s", remote);
    if (!v->cert_ok)
        return refuse(v, "not-authorized", "certificate for %s: %s", remote,
                      cert_reason(tls, cert));
    return 0;
}

int xs_s2s_trust_recheck(const struct xs_partner *p, const char *remote, enum xs_s2s_auth how,
                         int tls, const struct xs_tls_peer *cert, struct xs_s2s_verdict *v)
{
    if (how == XS_S2S_AUTH_SASL) {
        int rc = xs_s2s_trust_sasl(p, remote, tls, cert, v);
        /* A stream error, not a SASL failure, ends a stream after the fact. */
        if (rc && !p)
            v->cond = "policy-violation";
        return rc;
    }
    return xs_s2s_trust_dialback(p, remote, tls, cert, v);
}

int xs_s2s_trust_offer_starttls(const struct xs_partner *p)
{
    return !p || p->tls != XS_TLS_NONE;
}

int xs_s2s_trust_starttls_required(const struct xs_partner *p)
{
    return !p || p->tls == XS_TLS_REQUIRED;
}

int xs_s2s_trust_offer_sasl(const struct xs_partner *p, int tls, int chain_ok)
{
    return tls && chain_ok && (!p || p->sasl != XS_SASL_NONE);
}

int xs_s2s_trust_offer_dialback(const struct xs_partner *p, int tls)
{
    return !p || (p->dialback && p->sasl != XS_SASL_REQUIRED && (tls || p->tls != XS_TLS_REQUIRED));
}
