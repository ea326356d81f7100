/* Who authenticates how on an inbound stream (trust rules, "Inbound"):
 * dialback (XEP-0220) under the partner's rules, answered from the
 * certificate when it passes (XEP-0344); SASL EXTERNAL (RFC 6120 §6,
 * XEP-0178); db:verify for keys we handed out; the per-partner and
 * per-domain caps a new pair must fit; and the re-check of every pair
 * after a reload. The rules themselves are s2s_trust.c's. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "xmpp/dialback_key.h"
#include "xmpp/s2s_in_int.h"

/* The verdict on the peer's certificate for `domain`, in *out; NULL when
 * the stream is not encrypted (there is no certificate to judge). */
const struct xs_tls_peer *xs_s2s_in_peer_cert(const struct s2s_in *in, const char *domain,
                                              struct xs_tls_peer *out)
{
    const struct xs_tls *t = in->tls ? xs_link_tls(in->link) : NULL;
    if (!t)
        return NULL;
    (void)xs_tls_peer_check(t, domain, out);
    return out;
}

/* One line per authentication decision (trust rules, "Logging"). */
static void log_auth(const struct s2s_in *in, const char *local, const char *remote,
                     enum xs_s2s_auth how, const char *cond, const char *text,
                     const struct xs_tls_peer *cert)
{
    xs_log(cond ? XS_LOG_WARN : XS_LOG_INFO, "s2s.in.auth",
           "stream=in%llu peer=%s remote=%s local=%s method=%s result=%s%s%s%s cert=\"%s\" "
           "reason=\"%s\"",
           (unsigned long long)in->serial, xs_link_peer(in->link), remote, local,
           xs_s2s_auth_name(how), cond ? "refused" : "ok", cond ? " cond=" : "", cond ? cond : "",
           in->tls ? "" : " tls=none", cert ? cert->names : "", cond ? text : "");
}

static void reply_db(struct s2s_in *in, const char *name, const char *from, const char *to,
                     const char *id, const char *type, const char *cond)
{
    int rc = xs_s2s_write_db(in->link, name, from, to, id, type, NULL, cond);
    if (rc != 0)
        xs_s2s_in_write_failed(in, rc);
}

/* Whether a domain is an address rather than a name: bracketed or bare
 * IPv6, a dotted quad, any form inet_aton takes ("127.1", "0x7f000001"),
 * or a name whose last label is all digits (no top-level domain is). With
 * `partner "*"` such a `from` would make us connect wherever the peer
 * says (audit M4). */
static int ip_literal(const char *domain)
{
    unsigned char a6[sizeof(struct in6_addr)];
    struct in_addr a4;
    if (domain[0] == '[' || strchr(domain, ':') || inet_pton(AF_INET6, domain, a6) == 1 ||
        inet_aton(domain, &a4))
        return 1;
    const char *last = strrchr(domain, '.');
    last = last ? last + 1 : domain;
    if (!*last)
        return 0;
    for (const char *c = last; *c; c++)
        if (*c < '0' || *c > '9')
            return 0;
    return 1;
}

/* Verifications of one pair pending on all streams from one source. The
 * outbound stream that carries them to the pair's authoritative server has
 * XS_S2S_VERIFY_MAX places, shared by everyone who claims that domain; a
 * server needs one stream per pair, so a per-source share keeps a few
 * hosts from taking all places and failing the partner's own dialback. */
static size_t pending_from_source(struct xs_xmpp *x, const char *source, const char *local,
                                  const char *remote)
{
    size_t n = 0;
    for (struct s2s_in *in = x->ins; in; in = in->next) {
        if (in->state == IN_CLOSED || strcmp(in->source, source))
            continue;
        struct in_pair *pair = xs_s2s_in_find_pair(in, local, remote);
        n += pair && pair->state == PAIR_PENDING;
    }
    return n;
}

/* Inbound streams other than `self` with a pair for `remote`, being verified
 * or valid: what xmpp.max_streams.per_domain caps. */
static size_t streams_for_domain(struct xs_xmpp *x, const struct s2s_in *self, const char *remote)
{
    size_t n = 0;
    for (struct s2s_in *in = x->ins; in; in = in->next) {
        if (in == self || in->state == IN_CLOSED)
            continue;
        for (size_t i = 0; i < in->n_pairs; i++) {
            if (!strcmp(in->pairs[i].remote, remote)) {
                n++;
                break;
            }
        }
    }
    return n;
}

static int has_remote(const struct s2s_in *in, const char *remote)
{
    for (size_t i = 0; i < in->n_pairs; i++)
        if (!strcmp(in->pairs[i].remote, remote))
            return 1;
    return 0;
}

/* Streams, inbound and outbound, other than `self` that carry a domain of
 * partner `p` (`remote` for partner "*", whose cap is per domain): what
 * partner.max_connections caps. Outbound streams are one per (local,
 * remote) pair, so each is found by its pair. */
static size_t partner_streams(struct xs_xmpp *x, const struct s2s_in *self,
                              const struct xs_partner *p, const char *remote)
{
    size_t n = 0;
    int wildcard = !strcmp(p->domain, "*");
    for (struct s2s_in *in = x->ins; in; in = in->next) {
        if (in == self || in->state == IN_CLOSED)
            continue;
        for (size_t i = 0; i < in->n_pairs; i++) {
            const char *r = in->pairs[i].remote;
            if (wildcard ? !strcmp(r, remote) : xs_policy_partner(x->policy, r) == p) {
                n++;
                break;
            }
        }
    }
    const struct xs_config *cfg = x->cfg;
    for (size_t l = 0; l < cfg->n_domains; l++) {
        if (wildcard) {
            n += xs_s2s_out_find(x, cfg->domains[l], remote) != NULL;
            continue;
        }
        n += xs_s2s_out_find(x, cfg->domains[l], p->domain) != NULL;
        for (size_t d = 0; d < p->n_domains; d++)
            n += xs_s2s_out_find(x, cfg->domains[l], p->domains[d]) != NULL;
    }
    return n;
}

/* Whether a new pair for `remote` would take this stream over its
 * partner's max_connections; a stream that already carries the partner
 * does not count again. Ends the stream when it would. */
static int over_partner_cap(struct s2s_in *in, const struct xs_partner *p, const char *remote)
{
    if (!p || !p->max_streams)
        return 0;
    for (size_t i = 0; i < in->n_pairs; i++)
        if (!strcmp(in->pairs[i].remote, remote) ||
            xs_policy_partner(in->x->policy, in->pairs[i].remote) == p)
            return 0;
    if (partner_streams(in->x, in, p, remote) < p->max_streams)
        return 0;
    char text[XS_DOMAIN_MAX + 64];
    snprintf(text, sizeof text, "too many streams with %s", remote);
    xs_log(XS_LOG_WARN, "s2s.in.refused",
           "stream=in%llu remote=%s reason=max-connections max_connections=%zu",
           (unsigned long long)in->serial, remote, p->max_streams);
    xs_s2s_in_error(in, "policy-violation", text);
    return 1;
}

/* A new pair (not yet valid) for local and remote, or NULL when the stream
 * holds all it may (then the stream was ended) or on OOM. */
static struct in_pair *add_pair(struct s2s_in *in, const char *local, const char *remote)
{
    if (in->n_pairs == XS_S2S_PAIRS_MAX) {
        xs_s2s_in_error(in, "policy-violation", "too many domain pairs on one stream");
        return NULL;
    }
    if (in->n_pairs == in->cap_pairs) {
        struct in_pair *grown = realloc(in->pairs, (in->cap_pairs + 1) * sizeof *grown);
        if (!grown)
            return NULL;
        in->pairs = grown;
        in->cap_pairs++;
    }
    struct in_pair *pair = &in->pairs[in->n_pairs++];
    memset(pair, 0, sizeof *pair);
    snprintf(pair->local, sizeof pair->local, "%s", local);
    snprintf(pair->remote, sizeof pair->remote, "%s", remote);
    return pair;
}

/* XEP-0220 §2.2: the peer claims `from` and asks to send to `to`. */
void xs_s2s_in_db_result(struct s2s_in *in, struct xs_xml_el *el)
{
    char local[XS_DOMAIN_MAX], remote[XS_DOMAIN_MAX];
    const char *to = xs_xml_el_attr(el, "to"), *from = xs_xml_el_attr(el, "from");
    /* Each attempt may cost the partner a db:verify from us: a stream that
     * has authenticated nothing gets a bounded number of them. */
    if (!xs_s2s_in_authenticated(in) && ++in->db_attempts > XS_S2S_IN_DB_ATTEMPTS_MAX) {
        xs_s2s_in_error(in, "policy-violation", "too many dialback attempts on one stream");
        return;
    }
    if (xs_s2s_domain_of(to, local) || xs_s2s_domain_of(from, remote)) {
        xs_s2s_in_error(in, "improper-addressing", "db:result needs valid from and to");
        return;
    }
    if (!xs_policy_is_local_domain(in->x->policy, local)) {
        reply_db(in, "result", local, remote, NULL, "error", "item-not-found");
        return;
    }
    const struct xs_partner *p = xs_policy_partner(in->x->policy, remote);
    if (ip_literal(remote) || !p) {
        /* As before the trust rules: a stranger's claim is answered, not
         * fought, and the stream may go on with its other pairs. */
        const char *refusal =
            p ? "an IP address is not a domain we verify" : "not a federated partner";
        xs_log(XS_LOG_WARN, "s2s.in.dialback",
               "stream=in%llu remote=%s local=%s result=refused reason=\"%s\"",
               (unsigned long long)in->serial, remote, local, refusal);
        reply_db(in, "result", local, remote, NULL, "error", "policy-violation");
        return;
    }
    struct xs_tls_peer cert_buf;
    const struct xs_tls_peer *cert = xs_s2s_in_peer_cert(in, remote, &cert_buf);
    struct xs_s2s_verdict v;
    if (xs_s2s_trust_dialback(p, remote, in->tls, cert, &v) != 0) {
        log_auth(in, local, remote, XS_S2S_AUTH_DIALBACK, v.cond, v.text, cert);
        xs_s2s_in_error(in, v.cond, v.text);
        return;
    }
    char *key = xs_xml_el_text(el);
    if (!key || !*key || strlen(key) > 256) {
        free(key);
        xs_s2s_in_error(in, "invalid-xml", "db:result without a usable key");
        return;
    }
    struct in_pair *pair = xs_s2s_in_find_pair(in, local, remote);
    if (pair && pair->state == PAIR_PENDING) {
        /* One verification per pair in flight (audit M3): a repeat would
         * only queue another db:verify toward the partner and crowd out
         * the partner's own. Debug only: the attempt cap ends a flood. */
        free(key);
        xs_log(XS_LOG_DEBUG, "s2s.in.dialback",
               "stream=in%llu remote=%s local=%s result=ignored reason=already-verifying",
               (unsigned long long)in->serial, remote, local);
        return;
    }
    /* A stream that already carries the domain does not count again. */
    const char *busy =
        pending_from_source(in->x, in->source, local, remote) >= XS_S2S_IN_VERIFY_PER_SOURCE
            ? "too-many-from-source"
        : xs_s2s_in_count_pending(in) >= XS_S2S_IN_VERIFY_INFLIGHT ? "too-many-in-flight"
        : !has_remote(in, remote) &&
                streams_for_domain(in->x, in, remote) >= in->x->budget.per_domain
            ? "too-many-for-domain"
            : NULL;
    if (busy) {
        free(key);
        xs_log(XS_LOG_WARN, "s2s.in.dialback",
               "stream=in%llu remote=%s local=%s result=refused reason=%s",
               (unsigned long long)in->serial, remote, local, busy);
        reply_db(in, "result", local, remote, NULL, "error", "resource-constraint");
        return;
    }
    if (!pair) {
        if (over_partner_cap(in, p, remote)) {
            free(key);
            return;
        }
        pair = add_pair(in, local, remote);
        if (!pair) {
            free(key);
            if (in->state != IN_CLOSED)
                reply_db(in, "result", local, remote, NULL, "error", "resource-constraint");
            return;
        }
    }
    if (v.cert_ok) {
        /* XEP-0344: the certificate already proves the claim that the
         * verify round trip would check; the key is not needed. */
        free(key);
        pair->state = PAIR_VALID;
        pair->how = XS_S2S_AUTH_DIALBACK_CERT;
        log_auth(in, local, remote, XS_S2S_AUTH_DIALBACK_CERT, NULL, NULL, cert);
        xs_s2s_in_apply_limits(in);
        reply_db(in, "result", local, remote, NULL, "valid", NULL);
        return;
    }
    pair->state = PAIR_PENDING;
    xs_s2s_in_apply_limits(
        in); /* re-verifying the only valid pair makes the stream a stranger again */
    struct s2s_out *o = xs_s2s_out_find(in->x, local, remote);
    if (!o)
        o = xs_s2s_out_new(in->x, local, remote);
    if (!o) {
        /* The peer learns the pair failed, so it must not linger pending. */
        free(key);
        *pair = in->pairs[--in->n_pairs];
        xs_s2s_in_apply_limits(in);
        reply_db(in, "result", local, remote, NULL, "error", "resource-constraint");
        return;
    }
    xs_log(XS_LOG_INFO, "s2s.in.dialback", "stream=in%llu remote=%s local=%s result=verifying",
           (unsigned long long)in->serial, remote, local);
    xs_s2s_out_verify(o, in->verify_tag, in->id, key, xs_s2s_in_verified);
    free(key);
}

void xs_s2s_in_verified(struct xs_xmpp *x, uint64_t tag, const char *local, const char *remote,
                        int valid)
{
    struct s2s_in *in = xs_xmpp_find_in(x, tag);
    if (!in || in->state != IN_OPEN)
        return;
    struct in_pair *pair = xs_s2s_in_find_pair(in, local, remote);
    /* A pair SASL EXTERNAL validated while its dialback was in flight
     * keeps what the certificate proved, whatever the late answer says. */
    if (!pair || pair->state != PAIR_PENDING)
        return;
    xs_log(valid > 0 ? XS_LOG_INFO : XS_LOG_WARN, "s2s.in.dialback",
           "stream=in%llu remote=%s local=%s result=%s", (unsigned long long)in->serial, remote,
           local,
           valid > 0    ? "valid"
           : valid == 0 ? "invalid"
                        : "error");
    struct xs_tls_peer cert_buf;
    const struct xs_tls_peer *cert = xs_s2s_in_peer_cert(in, remote, &cert_buf);
    if (valid > 0) {
        pair->state = PAIR_VALID;
        pair->how = XS_S2S_AUTH_DIALBACK;
        log_auth(in, local, remote, XS_S2S_AUTH_DIALBACK, NULL, NULL, cert);
        xs_s2s_in_apply_limits(in);
        reply_db(in, "result", local, remote, NULL, "valid", NULL);
        return;
    }
    log_auth(in, local, remote, XS_S2S_AUTH_DIALBACK, valid == 0 ? "invalid" : "error",
             valid == 0 ? "the authoritative server did not confirm the key"
                        : "the authoritative server could not be asked",
             cert);
    *pair = in->pairs[--in->n_pairs];
    if (valid == 0)
        reply_db(in, "result", local, remote, NULL, "invalid", NULL);
    else
        reply_db(in, "result", local, remote, NULL, "error", "remote-connection-failed");
}

void xs_s2s_in_sasl_failure(struct s2s_in *in, enum xs_sasl_cond cond, const char *text)
{
    struct xs_buf b;
    xs_buf_init(&b, XS_SASL_ELEMENT_MAX);
    int rc = xs_sasl_write_failure(&b, cond, text);
    if (rc == 0)
        rc = xs_link_write(in->link, b.data, b.len);
    xs_buf_free(&b);
    if (rc != 0)
        xs_s2s_in_write_failed(in, rc);
}

/* RFC 6120 §6.4, XEP-0178: the peer asks to be the domain its certificate
 * names. On success the pair (local, domain) is valid as if dialback had
 * validated it, and the stream restarts (§6.4.6). On failure the peer may
 * try dialback, where its partner's rules allow it. */
void xs_s2s_in_sasl_auth(struct s2s_in *in, const struct xs_xml_el *el)
{
    char authzid[XS_SASL_AUTHZID_MAX], remote[XS_DOMAIN_MAX], text[XS_S2S_VERDICT_TEXT];
    if (in->sasl_ok) {
        xs_s2s_in_error(in, "policy-violation", "SASL already succeeded on this stream");
        return;
    }
    if (++in->sasl_attempts > IN_SASL_ATTEMPTS_MAX) {
        xs_s2s_in_error(in, "policy-violation", "too many SASL attempts on one stream");
        return;
    }
    const char *why = NULL;
    enum xs_sasl_cond cond = xs_sasl_parse_auth(el, authzid, &why);
    if (cond == XS_SASL_OK && !authzid[0]) {
        /* "=": the identity the stream header's from gives. */
        if (in->remote[0]) {
            snprintf(remote, sizeof remote, "%s", in->remote);
        } else {
            cond = XS_SASL_INVALID_AUTHZID;
            why = "no authorization identity, and the stream header has no from";
        }
    } else if (cond == XS_SASL_OK) {
        if (strpbrk(authzid, "@/") || xs_s2s_domain_of(authzid, remote) || ip_literal(remote)) {
            cond = XS_SASL_INVALID_AUTHZID;
            why = "the authorization identity is not a domain";
        } else if (in->remote[0] && strcmp(remote, in->remote)) {
            cond = XS_SASL_INVALID_AUTHZID;
            snprintf(text, sizeof text, "authorization identity %s is not the stream's from %s",
                     remote, in->remote);
            why = text;
        }
    }
    if (cond != XS_SASL_OK) {
        xs_log(XS_LOG_WARN, "s2s.in.auth",
               "stream=in%llu peer=%s remote=%s local=%s method=sasl-external result=refused "
               "cond=%s reason=\"%s\"",
               (unsigned long long)in->serial, xs_link_peer(in->link),
               in->remote[0] ? in->remote : "-", in->local, xs_sasl_cond_name(cond), why);
        xs_s2s_in_sasl_failure(in, cond, why);
        return;
    }
    const struct xs_partner *p = xs_policy_partner(in->x->policy, remote);
    struct xs_tls_peer cert_buf;
    const struct xs_tls_peer *cert = xs_s2s_in_peer_cert(in, remote, &cert_buf);
    struct xs_s2s_verdict v;
    if (xs_s2s_trust_sasl(p, remote, in->tls, cert, &v) != 0) {
        log_auth(in, in->local, remote, XS_S2S_AUTH_SASL, v.cond, v.text, cert);
        xs_s2s_in_sasl_failure(in,
                               !strcmp(v.cond, "encryption-required") ? XS_SASL_ENCRYPTION_REQUIRED
                                                                      : XS_SASL_NOT_AUTHORIZED,
                               v.text);
        return;
    }
    struct in_pair *pair = xs_s2s_in_find_pair(in, in->local, remote);
    if (!pair) {
        if (!has_remote(in, remote) &&
            streams_for_domain(in->x, in, remote) >= in->x->budget.per_domain) {
            log_auth(in, in->local, remote, XS_S2S_AUTH_SASL, "temporary-auth-failure",
                     "too many streams for the domain", cert);
            xs_s2s_in_sasl_failure(in, XS_SASL_TEMPORARY_AUTH_FAILURE,
                                   "too many streams for the domain");
            return;
        }
        if (over_partner_cap(in, p, remote))
            return;
        pair = add_pair(in, in->local, remote);
        if (!pair) {
            if (in->state != IN_CLOSED)
                xs_s2s_in_sasl_failure(in, XS_SASL_TEMPORARY_AUTH_FAILURE, "out of memory");
            return;
        }
    }
    struct xs_buf b;
    xs_buf_init(&b, XS_SASL_ELEMENT_MAX);
    int rc = xs_sasl_write_success(&b);
    if (rc == 0)
        rc = xs_link_write(in->link, b.data, b.len);
    xs_buf_free(&b);
    if (rc != 0) {
        xs_s2s_in_write_failed(in, rc);
        return;
    }
    pair->state = PAIR_VALID;
    pair->how = XS_S2S_AUTH_SASL;
    in->sasl_ok = 1;
    log_auth(in, in->local, remote, XS_S2S_AUTH_SASL, NULL, NULL, cert);
    in->restart = RESTART_SASL;
    xs_xml_parser_stop(in->parser);
}

/* XEP-0220 §2.3: the peer checks a key we sent on our outbound stream. */
void xs_s2s_in_db_verify(struct s2s_in *in, struct xs_xml_el *el)
{
    char local[XS_DOMAIN_MAX], remote[XS_DOMAIN_MAX];
    const char *id = xs_xml_el_attr(el, "id");
    if (xs_s2s_domain_of(xs_xml_el_attr(el, "to"), local) ||
        xs_s2s_domain_of(xs_xml_el_attr(el, "from"), remote) || !id) {
        xs_s2s_in_error(in, "improper-addressing", "db:verify needs from, to and id");
        return;
    }
    /* Audit L6: the answer echoes the id, escaped (up to six times its
     * size), into a queue the peer may never read. Our stream ids are 32
     * bytes, and common servers' are no longer than 64. */
    if (strlen(id) > XS_S2S_DB_ID_MAX) {
        xs_s2s_in_error(in, "policy-violation", "dialback id longer than 64 bytes");
        return;
    }
    if (!xs_s2s_in_authenticated(in) && ++in->db_verifies > XS_S2S_IN_DB_VERIFY_MAX) {
        xs_s2s_in_error(in, "policy-violation", "too many db:verify on one stream");
        return;
    }
    if (!xs_policy_is_local_domain(in->x->policy, local)) {
        reply_db(in, "verify", local, remote, id, "error", "item-not-found");
        return;
    }
    char *key = xs_xml_el_text(el);
    char expected[65];
    int valid = key && xs_dialback_key(in->x->secret, remote, local, id, expected) == 0 &&
                xs_dialback_key_equal(expected, key);
    free(key);
    xs_log(valid ? XS_LOG_INFO : XS_LOG_WARN, "s2s.in.verify",
           "stream=in%llu remote=%s local=%s result=%s", (unsigned long long)in->serial, remote,
           local, valid ? "valid" : "invalid");
    reply_db(in, "verify", local, remote, id, valid ? "valid" : "invalid", NULL);
}

void xs_s2s_in_recheck(struct s2s_in *in)
{
    if (in->state == IN_CLOSED)
        return;
    if (in->local[0] && !xs_policy_is_local_domain(in->x->policy, in->local)) {
        xs_s2s_in_error(in, "host-gone", "this gateway no longer serves that domain");
        return;
    }
    if (in->remote[0] && !xs_policy_partner(in->x->policy, in->remote)) {
        char text[XS_DOMAIN_MAX + 64];
        snprintf(text, sizeof text, "%s is not federated with this gateway", in->remote);
        xs_log(XS_LOG_WARN, "s2s.in.refused", "stream=in%llu remote=%s reason=partner-removed",
               (unsigned long long)in->serial, in->remote);
        xs_s2s_in_error(in, "policy-violation", text);
        return;
    }
    /* Every pair is admitted again under the new rules (audit L1), from
     * the stream's recorded facts: encrypted or not, the certificate of
     * its TLS session (judged as at its handshake: the session keeps the
     * trust anchors it was made with), how the pair authenticated.
     * Neither dialback nor SASL can withdraw one pair, so a pair that
     * fails ends the stream; the peer reconnects and authenticates what
     * is still allowed. */
    for (size_t i = 0; i < in->n_pairs; i++) {
        struct in_pair *pair = &in->pairs[i];
        const char *why = NULL, *cond = "policy-violation";
        struct xs_s2s_verdict v;
        if (!xs_policy_is_local_domain(in->x->policy, pair->local)) {
            why = "local domain no longer served";
        } else {
            /* A pair still being verified is held to the dialback rules. */
            enum xs_s2s_auth how = pair->state == PAIR_VALID ? pair->how : XS_S2S_AUTH_DIALBACK;
            struct xs_tls_peer cert_buf;
            const struct xs_tls_peer *cert = xs_s2s_in_peer_cert(in, pair->remote, &cert_buf);
            const struct xs_partner *p = xs_policy_partner(in->x->policy, pair->remote);
            if (xs_s2s_trust_recheck(p, pair->remote, how, in->tls, cert, &v) != 0) {
                why = v.text;
                cond = v.cond;
            }
        }
        if (why) {
            xs_log(XS_LOG_WARN, "s2s.in.refused",
                   "stream=in%llu remote=%s local=%s reason=reload detail=\"%s\" method=%s",
                   (unsigned long long)in->serial, pair->remote, pair->local, why,
                   pair->state == PAIR_VALID ? xs_s2s_auth_name(pair->how) : "pending");
            xs_s2s_in_error(in, cond, why);
            return;
        }
    }
    xs_s2s_in_apply_limits(in);
}
