/* Inbound s2s streams: a peer server connected to us. We answer its header,
 * offer STARTTLS and dialback, verify the domains it claims through our
 * outbound stream to its authoritative server (XEP-0220), answer db:verify
 * for keys we handed out, and hand the stanzas of authenticated pairs to
 * s2s_in_carry.c. Before authentication a stream is held to small limits
 * and caps (s2s.h), since anyone can open one. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "xmpp/dialback_key.h"
#include "xmpp/s2s.h"
#include "xmpp/s2s_sm.h"

/* <failed/> answers to stream management requests one stream gets before
 * it is ended: each answer is larger than the request, so a peer repeating
 * a refused request is cut off rather than answered forever. */
#define IN_SM_REFUSALS_MAX 4

enum in_state { IN_WAIT_HEADER, IN_OPEN, IN_TLS_HANDSHAKE, IN_CLOSED };

enum pair_state { PAIR_PENDING = 1, PAIR_VALID = 2 };

struct in_pair {
    char local[XS_DOMAIN_MAX];
    char remote[XS_DOMAIN_MAX];
    enum pair_state state;
};

struct s2s_in {
    struct s2s_in *next;
    struct xs_xmpp *x;
    uint64_t serial;
    /* What verifications for this stream are filed under: twice the serial,
     * plus one after STARTTLS (which happens at most once), so an answer to
     * a key sent before TLS can never validate a pair claimed after it. */
    uint64_t verify_tag;
    struct xs_link *link;
    struct xs_xml_parser *parser;
    enum in_state state;
    int tls;
    int restart;
    int header_sent; /* on this (possibly restarted) stream */
    char id[XS_STREAM_ID_LEN + 1];
    char source[INET6_ADDRSTRLEN]; /* the peer's address (IPv6: its /64), for per-source caps */
    char local[XS_DOMAIN_MAX];     /* the header's to */
    char remote[XS_DOMAIN_MAX];    /* the header's from, "" when the peer gave none */
    /* Grown one pair at a time up to XS_S2S_PAIRS_MAX: most streams carry
     * one, and an idle stream should cost what it uses. */
    struct in_pair *pairs;
    size_t n_pairs, cap_pairs;
    unsigned db_attempts;   /* db:result elements while unauthenticated */
    unsigned db_verifies;   /* db:verify elements while unauthenticated */
    double header_deadline; /* 0 once a header came in */
    double auth_deadline;   /* set by the first header; ends an unauthenticated life */
    double last_activity;
    struct xs_sm_in sm; /* XEP-0198, when the peer enabled it */
    unsigned sm_refusals;
};

static int in_authenticated(const struct s2s_in *in)
{
    for (size_t i = 0; i < in->n_pairs; i++)
        if (in->pairs[i].state == PAIR_VALID)
            return 1;
    return 0;
}

static const char *state_name(enum in_state s)
{
    switch (s) {
    case IN_WAIT_HEADER:
        return "wait-header";
    case IN_OPEN:
        return "open";
    case IN_TLS_HANDSHAKE:
        return "tls-handshake";
    case IN_CLOSED:
        return "closed";
    }
    return "?";
}

/* Tight stanza limits until the stream has an authenticated pair, the
 * policy's after (and again tight if it loses them). */
static void apply_limits(struct s2s_in *in)
{
    size_t full = in->x->cfg->xmpp_max_stanza;
    struct xs_xml_limits lim = {
        .max_stanza_bytes = in_authenticated(in) || full < XS_S2S_PREAUTH_STANZA_MAX
                                ? full
                                : XS_S2S_PREAUTH_STANZA_MAX,
        .max_depth = XS_S2S_XML_DEPTH,
        .max_attrs = XS_S2S_XML_ATTRS,
    };
    if (in->parser)
        xs_xml_parser_set_limits(in->parser, &lim);
}

static void set_state(struct s2s_in *in, enum in_state s, const char *why)
{
    xs_log(XS_LOG_INFO, "s2s.in.state",
           "stream=in%llu peer=%s remote=%s local=%s from=%s to=%s tls=%s reason=\"%s\"",
           (unsigned long long)in->serial, xs_link_peer(in->link), in->remote[0] ? in->remote : "-",
           in->local[0] ? in->local : "-", state_name(in->state), state_name(s),
           xs_link_tls_describe(in->link), why);
    in->state = s;
}

static void in_error(struct s2s_in *in, const char *cond, const char *text)
{
    if (in->state == IN_CLOSED)
        return;
    xs_log(XS_LOG_WARN, "s2s.in.error", "stream=in%llu peer=%s remote=%s cond=%s text=\"%s\"",
           (unsigned long long)in->serial, xs_link_peer(in->link), in->remote[0] ? in->remote : "-",
           cond, text ? text : "");
    set_state(in, IN_CLOSED, cond);
    if (in->parser)
        xs_xml_parser_stop(in->parser);
    /* RFC 6120 §4.9.1.1: a stream error needs a stream to live in. */
    if (!in->header_sent) {
        xs_xmpp_random_id(in->id);
        int rc = xs_s2s_write_header(in->link, in->local[0] ? in->local : NULL, NULL, in->id);
        if (rc != 0) {
            xs_link_close(in->link, rc);
            return;
        }
    }
    xs_s2s_stream_error(in->link, cond, text);
}

/* A write the link refused: nothing more can be said on this stream, so it
 * closes without a stream error. XS_ELIMIT means the peer does not read
 * what it asks for (audit L6), before authentication too. */
static void in_write_failed(struct s2s_in *in, int rc)
{
    if (in->state == IN_CLOSED)
        return;
    xs_log(XS_LOG_WARN, "s2s.in.write", "stream=in%llu peer=%s remote=%s result=failed reason=%s",
           (unsigned long long)in->serial, xs_link_peer(in->link), in->remote[0] ? in->remote : "-",
           xs_errname(rc));
    set_state(in, IN_CLOSED, "write failed");
    if (in->parser)
        xs_xml_parser_stop(in->parser);
    xs_link_close(in->link, rc);
}

static struct in_pair *find_pair(struct s2s_in *in, const char *local, const char *remote)
{
    for (size_t i = 0; i < in->n_pairs; i++)
        if (!strcmp(in->pairs[i].local, local) && !strcmp(in->pairs[i].remote, remote))
            return &in->pairs[i];
    return NULL;
}

static void write_features(struct s2s_in *in)
{
    const struct xs_partner *p =
        in->remote[0] ? xs_policy_partner(in->x->policy, in->remote) : NULL;
    int tls_required = !p || p->tls == XS_TLS_REQUIRED;
    char buf[512];
    int n;
    if (!in->tls)
        n = snprintf(buf, sizeof buf,
                     "<stream:features><starttls xmlns='" XS_NS_TLS "'>%s</starttls>"
                     "<dialback xmlns='" XS_NS_DIALBACK_FEATURE "'/>"
                     "<sm xmlns='" XS_NS_SM "'><optional/></sm></stream:features>",
                     tls_required ? "<required/>" : "");
    else
        n = snprintf(buf, sizeof buf,
                     "<stream:features><dialback xmlns='" XS_NS_DIALBACK_FEATURE
                     "'/><sm xmlns='" XS_NS_SM "'><optional/></sm></stream:features>");
    int rc = xs_link_write(in->link, buf, (size_t)n);
    if (rc != 0)
        in_write_failed(in, rc);
}

static void on_stream_open(void *ud, const struct xs_xml_el *h)
{
    struct s2s_in *in = ud;
    const char *to = xs_xml_el_attr(h, "to");
    const char *from = xs_xml_el_attr(h, "from");
    const char *version = xs_xml_el_attr(h, "version");

    /* The header must be answered with our own before any stream error. */
    in->local[0] = '\0';
    if (to && xs_s2s_domain_of(to, in->local) != 0)
        in->local[0] = '\0';
    if (from && xs_s2s_domain_of(from, in->remote) != 0)
        in->remote[0] = '\0';
    xs_xmpp_random_id(in->id);
    int rc = xs_s2s_write_header(in->link, in->local[0] ? in->local : NULL,
                                 in->remote[0] ? in->remote : NULL, in->id);
    in->header_sent = 1;
    if (rc != 0) {
        in_write_failed(in, rc);
        return;
    }
    if (!in->local[0] || !xs_policy_is_local_domain(in->x->policy, in->local)) {
        in_error(in, "host-unknown", "this gateway does not serve that domain");
        return;
    }
    if (in->remote[0] && !xs_policy_partner(in->x->policy, in->remote)) {
        xs_log(XS_LOG_WARN, "s2s.in.refused", "stream=in%llu remote=%s reason=not-a-partner",
               (unsigned long long)in->serial, in->remote);
        in_error(in, "policy-violation", "domain is not a federated partner of this gateway");
        return;
    }
    set_state(in, IN_OPEN, "header");
    /* The header after STARTTLS gets no fresh authentication time: the
     * whole unauthenticated life is bounded from the first header. */
    in->header_deadline = 0;
    if (!in->auth_deadline)
        in->auth_deadline = xs_xmpp_now(in->x) + XS_S2S_IN_AUTH_TIMEOUT;
    if (version && !strcmp(version, "1.0"))
        write_features(in);
}

static void reply_db(struct s2s_in *in, const char *name, const char *from, const char *to,
                     const char *id, const char *type, const char *cond)
{
    int rc = xs_s2s_write_db(in->link, name, from, to, id, type, NULL, cond);
    if (rc != 0)
        in_write_failed(in, rc);
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

static size_t count_pending(const struct s2s_in *in)
{
    size_t n = 0;
    for (size_t i = 0; i < in->n_pairs; i++)
        n += in->pairs[i].state == PAIR_PENDING;
    return n;
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
        struct in_pair *pair = find_pair(in, local, remote);
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

/* XEP-0220 §2.2: the peer claims `from` and asks to send to `to`. */
static void on_db_result(struct s2s_in *in, struct xs_xml_el *el)
{
    char local[XS_DOMAIN_MAX], remote[XS_DOMAIN_MAX];
    const char *to = xs_xml_el_attr(el, "to"), *from = xs_xml_el_attr(el, "from");
    /* Each attempt may cost the partner a db:verify from us: a stream that
     * has authenticated nothing gets a bounded number of them. */
    if (!in_authenticated(in) && ++in->db_attempts > XS_S2S_IN_DB_ATTEMPTS_MAX) {
        in_error(in, "policy-violation", "too many dialback attempts on one stream");
        return;
    }
    if (xs_s2s_domain_of(to, local) || xs_s2s_domain_of(from, remote)) {
        in_error(in, "improper-addressing", "db:result needs valid from and to");
        return;
    }
    if (!xs_policy_is_local_domain(in->x->policy, local)) {
        reply_db(in, "result", local, remote, NULL, "error", "item-not-found");
        return;
    }
    const struct xs_partner *p = xs_policy_partner(in->x->policy, remote);
    const char *refusal = NULL;
    if (ip_literal(remote))
        refusal = "an IP address is not a domain we verify";
    else if (!p)
        refusal = "not a federated partner";
    else if (!p->dialback)
        refusal = "dialback not allowed for this partner";
    else if (p->tls == XS_TLS_REQUIRED && !in->tls)
        refusal = "TLS required before dialback";
    if (refusal) {
        xs_log(XS_LOG_WARN, "s2s.in.dialback",
               "stream=in%llu remote=%s local=%s result=refused reason=\"%s\"",
               (unsigned long long)in->serial, remote, local, refusal);
        reply_db(in, "result", local, remote, NULL, "error", "policy-violation");
        return;
    }
    char *key = xs_xml_el_text(el);
    if (!key || !*key || strlen(key) > 256) {
        free(key);
        in_error(in, "invalid-xml", "db:result without a usable key");
        return;
    }
    struct in_pair *pair = find_pair(in, local, remote);
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
        : count_pending(in) >= XS_S2S_IN_VERIFY_INFLIGHT ? "too-many-in-flight"
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
        if (in->n_pairs == XS_S2S_PAIRS_MAX) {
            free(key);
            in_error(in, "policy-violation", "too many domain pairs on one stream");
            return;
        }
        if (in->n_pairs == in->cap_pairs) {
            struct in_pair *grown = realloc(in->pairs, (in->cap_pairs + 1) * sizeof *grown);
            if (!grown) {
                free(key);
                reply_db(in, "result", local, remote, NULL, "error", "resource-constraint");
                return;
            }
            in->pairs = grown;
            in->cap_pairs++;
        }
        pair = &in->pairs[in->n_pairs++];
        snprintf(pair->local, sizeof pair->local, "%s", local);
        snprintf(pair->remote, sizeof pair->remote, "%s", remote);
    }
    pair->state = PAIR_PENDING;
    apply_limits(in); /* re-verifying the only valid pair makes the stream a stranger again */
    struct s2s_out *o = xs_s2s_out_find(in->x, local, remote);
    if (!o)
        o = xs_s2s_out_new(in->x, local, remote);
    if (!o) {
        /* The peer learns the pair failed, so it must not linger pending. */
        free(key);
        *pair = in->pairs[--in->n_pairs];
        apply_limits(in);
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
    struct in_pair *pair = find_pair(in, local, remote);
    if (!pair)
        return;
    xs_log(valid > 0 ? XS_LOG_INFO : XS_LOG_WARN, "s2s.in.dialback",
           "stream=in%llu remote=%s local=%s result=%s", (unsigned long long)in->serial, remote,
           local,
           valid > 0    ? "valid"
           : valid == 0 ? "invalid"
                        : "error");
    if (valid > 0) {
        pair->state = PAIR_VALID;
        apply_limits(in);
        reply_db(in, "result", local, remote, NULL, "valid", NULL);
        return;
    }
    *pair = in->pairs[--in->n_pairs];
    if (valid == 0)
        reply_db(in, "result", local, remote, NULL, "invalid", NULL);
    else
        reply_db(in, "result", local, remote, NULL, "error", "remote-connection-failed");
}

/* XEP-0220 §2.3: the peer checks a key we sent on our outbound stream. */
static void on_db_verify(struct s2s_in *in, struct xs_xml_el *el)
{
    char local[XS_DOMAIN_MAX], remote[XS_DOMAIN_MAX];
    const char *id = xs_xml_el_attr(el, "id");
    if (xs_s2s_domain_of(xs_xml_el_attr(el, "to"), local) ||
        xs_s2s_domain_of(xs_xml_el_attr(el, "from"), remote) || !id) {
        in_error(in, "improper-addressing", "db:verify needs from, to and id");
        return;
    }
    /* Audit L6: the answer echoes the id, escaped (up to six times its
     * size), into a queue the peer may never read. Our stream ids are 32
     * bytes, and common servers' are no longer than 64. */
    if (strlen(id) > XS_S2S_DB_ID_MAX) {
        in_error(in, "policy-violation", "dialback id longer than 64 bytes");
        return;
    }
    if (!in_authenticated(in) && ++in->db_verifies > XS_S2S_IN_DB_VERIFY_MAX) {
        in_error(in, "policy-violation", "too many db:verify on one stream");
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

static void on_stanza_authenticated(struct s2s_in *in, struct xs_xml_el *el)
{
    char local[XS_DOMAIN_MAX], remote[XS_DOMAIN_MAX];
    if (xs_s2s_domain_of(xs_xml_el_attr(el, "to"), local) ||
        xs_s2s_domain_of(xs_xml_el_attr(el, "from"), remote)) {
        in_error(in, "improper-addressing", "stanza without valid from and to");
        return;
    }
    struct in_pair *pair = find_pair(in, local, remote);
    if (!pair || pair->state != PAIR_VALID) {
        in_error(in, "not-authorized", "stanza for a domain pair not authenticated");
        return;
    }
    /* Handled (XEP-0198 §4) once carry has it: from here its outcome,
     * error stanzas included, is ours to produce. */
    if (!strcmp(el->name, "message") || !strcmp(el->name, "presence") || !strcmp(el->name, "iq"))
        xs_sm_in_handled(&in->sm);
    xs_s2s_in_carry(in->x, in->serial, in->tls, el);
}

/* XEP-0198 as the receiving server: enabled after dialback authenticated a
 * pair, no resumption. <r/> is answered once per read (on_data), with the
 * count at its end, so a flood of requests costs one small answer. */
static void on_sm(struct s2s_in *in, const struct xs_xml_el *el)
{
    const char *refusal = NULL;
    if (!strcmp(el->name, "enable")) {
        if (!in_authenticated(in))
            refusal = "unexpected-request";
        else if (in->sm.enabled)
            refusal = "unexpected-request";
    } else if (!strcmp(el->name, "resume")) {
        refusal = "feature-not-implemented";
    } else if (!strcmp(el->name, "r")) {
        if (in->sm.enabled)
            in->sm.owed = 1;
        return;
    } else {
        /* <a/> (we send no <r/> here), <enabled/> and the like: nothing to do. */
        xs_log(XS_LOG_DEBUG, "s2s.in.ignored", "stream=in%llu element=sm:%s",
               (unsigned long long)in->serial, el->name);
        return;
    }
    if (refusal) {
        xs_log(XS_LOG_INFO, "s2s.in.sm", "stream=in%llu remote=%s request=%s result=failed cond=%s",
               (unsigned long long)in->serial, in->remote[0] ? in->remote : "-", el->name, refusal);
        if (++in->sm_refusals > IN_SM_REFUSALS_MAX) {
            in_error(in, "policy-violation", "too many refused stream management requests");
            return;
        }
        char buf[160];
        int n = snprintf(buf, sizeof buf,
                         "<failed xmlns='" XS_NS_SM "'><%s xmlns='"
                         "urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
                         refusal);
        int rc = xs_link_write(in->link, buf, (size_t)n);
        if (rc != 0)
            in_write_failed(in, rc);
        return;
    }
    static const char enabled[] = "<enabled xmlns='" XS_NS_SM "'/>";
    int rc = xs_link_write(in->link, enabled, sizeof enabled - 1);
    if (rc != 0) {
        in_write_failed(in, rc);
        return;
    }
    in->sm.enabled = 1;
    in->sm.handled = 0;
    xs_log(XS_LOG_INFO, "s2s.in.sm", "stream=in%llu remote=%s result=enabled",
           (unsigned long long)in->serial, in->remote[0] ? in->remote : "-");
}

static void on_stanza(void *ud, struct xs_xml_el *el)
{
    struct s2s_in *in = ud;
    if (in->state != IN_OPEN) {
        xs_xml_el_free(el);
        return;
    }
    in->last_activity = xs_xmpp_now(in->x);
    if (!strcmp(el->ns, XS_NS_TLS) && !strcmp(el->name, "starttls")) {
        if (in->tls) {
            in_error(in, "policy-violation", "TLS is already on");
        } else {
            static const char proceed[] = "<proceed xmlns='" XS_NS_TLS "'/>";
            int rc = xs_link_write(in->link, proceed, sizeof proceed - 1);
            if (rc != 0) {
                in_write_failed(in, rc);
            } else {
                in->restart = 1;
                xs_xml_parser_stop(in->parser);
            }
        }
    } else if (!strcmp(el->ns, XS_NS_DIALBACK) && !strcmp(el->name, "result")) {
        on_db_result(in, el);
    } else if (!strcmp(el->ns, XS_NS_DIALBACK) && !strcmp(el->name, "verify")) {
        on_db_verify(in, el);
    } else if (!strcmp(el->ns, XS_NS_STREAMS) && !strcmp(el->name, "error")) {
        /* The peer ends the stream with a reason: record it and close ours. */
        const char *cond =
            el->n_children > 0 && !el->children[0].is_text ? el->children[0].u.el->name : "-";
        xs_log(XS_LOG_WARN, "s2s.in.peer-error", "stream=in%llu remote=%s cond=%s",
               (unsigned long long)in->serial, in->remote[0] ? in->remote : "-", cond);
        set_state(in, IN_CLOSED, "stream error from the peer");
        xs_xml_parser_stop(in->parser);
        xs_s2s_close_stream(in->link);
    } else if (!strcmp(el->ns, XS_NS_SM)) {
        on_sm(in, el);
    } else if (!strcmp(el->ns, XS_NS_SERVER)) {
        on_stanza_authenticated(in, el);
    } else {
        in_error(in, "unsupported-stanza-type", el->name);
    }
    xs_xml_el_free(el);
}

static void on_stream_close(void *ud)
{
    struct s2s_in *in = ud;
    if (in->state == IN_CLOSED)
        return;
    set_state(in, IN_CLOSED, "peer closed the stream");
    xs_xml_parser_stop(in->parser);
    xs_s2s_close_stream(in->link);
}

static const struct xs_xml_cbs parser_cbs = {on_stream_open, on_stanza, on_stream_close};

static void on_data(void *ud, const char *data, size_t len)
{
    struct s2s_in *in = ud;
    if (in->state == IN_CLOSED)
        return;
    in->last_activity = xs_xmpp_now(in->x);
    int rc = xs_xml_parser_feed(in->parser, data, len);
    if (in->restart) {
        in->restart = 0;
        xs_xml_parser_free(in->parser);
        in->parser = xs_s2s_parser_new(in->x, &parser_cbs, in);
        if (!in->parser) {
            in_error(in, "resource-constraint", NULL);
            return;
        }
        if (xs_link_start_tls(in->link, in->x->tls, 1, NULL) != 0) {
            in_error(in, "internal-server-error", "TLS could not start");
            return;
        }
        set_state(in, IN_TLS_HANDSHAKE, "starttls");
        /* RFC 6120 §5.4.3.3: nothing learned before TLS survives it, not
         * the pairs dialback authenticated, nor the header's from. Answers
         * to verifications still in flight find no pair and are dropped. */
        in->n_pairs = 0;
        in->remote[0] = '\0';
        xs_sm_in_init(&in->sm);
        in->verify_tag = 2 * in->serial + 1;
        apply_limits(in);
        in->header_sent = 0;
        in->header_deadline = xs_xmpp_now(in->x) + XS_S2S_IN_HEADER_TIMEOUT;
        return;
    }
    if (rc < 0 && in->state != IN_CLOSED) {
        const char *cond = xs_xml_parser_condition(in->parser);
        in_error(in, cond ? cond : "not-well-formed", xs_xml_parser_detail(in->parser));
        return;
    }
    if (in->sm.owed && in->state == IN_OPEN) {
        char a[64];
        int n = snprintf(a, sizeof a, "<a xmlns='" XS_NS_SM "' h='%lu'/>",
                         (unsigned long)in->sm.handled);
        in->sm.owed = 0;
        int wrc = xs_link_write(in->link, a, (size_t)n);
        if (wrc != 0)
            in_write_failed(in, wrc);
    }
}

static void on_tls_ready(void *ud)
{
    struct s2s_in *in = ud;
    in->tls = 1;
    set_state(in, IN_WAIT_HEADER, "tls established");
}

static void on_closed(void *ud, int reason)
{
    struct s2s_in *in = ud;
    struct xs_xmpp *x = in->x;
    if (in->state != IN_CLOSED)
        set_state(in, IN_CLOSED, xs_strerror(reason));
    x->n_ins--;
    for (struct s2s_in **pp = &x->ins; *pp; pp = &(*pp)->next) {
        if (*pp == in) {
            *pp = in->next;
            break;
        }
    }
    if (in->parser)
        xs_xml_parser_free(in->parser);
    free(in->pairs);
    free(in);
    xs_xmpp_stream_gone(x);
}

static const struct xs_link_cbs link_cbs = {on_data, on_tls_ready, on_closed};

/* The per-source key: the address, or for IPv6 its /64, which is what one
 * host usually holds. */
static void source_of(uv_tcp_t *tcp, char out[INET6_ADDRSTRLEN])
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(out, INET6_ADDRSTRLEN, "?");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&ss, out, INET6_ADDRSTRLEN);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        if (!IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            memset(a->sin6_addr.s6_addr + 8, 0, 8);
        uv_ip6_name(a, out, INET6_ADDRSTRLEN);
    }
}

static void evict(struct s2s_in *in, const char *why)
{
    xs_log(XS_LOG_WARN, "s2s.in.evicted", "stream=in%llu peer=%s state=%s reason=%s",
           (unsigned long long)in->serial, xs_link_peer(in->link), state_name(in->state), why);
    in_error(in, "resource-constraint", "too many unauthenticated streams");
}

/* Which of two unauthenticated streams goes first: one with no dialback
 * under way before one whose verification is pending (it is about to be
 * decided, and may be the partner's), then the older. A stranger cannot
 * keep a stream pending for long: the partner answers its bogus key. */
static int evict_before(const struct s2s_in *a, const struct s2s_in *b)
{
    int pa = count_pending(a) > 0, pb = count_pending(b) > 0;
    return pa != pb ? pa < pb : a->serial < b->serial;
}

/* A new connection from `source` is about to become an unauthenticated
 * stream: if that passes the per-source or the total cap, an
 * unauthenticated stream (of that source, or of all) makes room. Evicting
 * rather than refusing means a flood cannot lock out a partner that
 * connects after it; it has to outpace the partner's dialback instead. */
static void make_room(struct xs_xmpp *x, const char *source)
{
    /* Usually one pass and at most one eviction; more only when streams
     * lost their authentication (a re-verified pair) and pushed the count
     * past a cap. An evicted stream is closed and drops out of the count. */
    for (;;) {
        struct s2s_in *victim_here = NULL, *victim = NULL;
        size_t here = 0, total = 0;
        for (struct s2s_in *in = x->ins; in; in = in->next) {
            if (in->state == IN_CLOSED || in_authenticated(in))
                continue;
            total++;
            if (!victim || evict_before(in, victim))
                victim = in;
            if (!strcmp(in->source, source)) {
                here++;
                if (!victim_here || evict_before(in, victim_here))
                    victim_here = in;
            }
        }
        if (here >= x->budget.unauth_per_source)
            evict(victim_here, "per-source-cap");
        else if (total >= x->budget.unauth_max)
            evict(victim, "unauthenticated-cap");
        else
            return;
    }
}

/* Over the inbound total: the peer hears why (RFC 6120 §4.9.3.17) in one
 * non-blocking write to the fresh socket, whose buffer is empty, and the
 * connection closes at once, so a flood of refusals holds no descriptor. */
static void refuse_full(uv_tcp_t *tcp)
{
    static const char refusal[] =
        "<?xml version='1.0'?><stream:stream xmlns='" XS_NS_SERVER "' xmlns:stream='" XS_NS_STREAMS
        "' version='1.0'><stream:error><resource-constraint xmlns='" XS_NS_STREAM_ERRORS
        "'/><text xmlns='" XS_NS_STREAM_ERRORS "'>too many streams</text></stream:error>"
        "</stream:stream>";
    uv_buf_t b = uv_buf_init((char *)refusal, sizeof refusal - 1);
    (void)uv_try_write((uv_stream_t *)tcp, &b, 1);
    uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
}

static void set_held(struct xs_xmpp *x, int hold, const char *state, const char *why)
{
    x->input_held = hold;
    size_t n = 0;
    for (struct s2s_in *in = x->ins; in; in = in->next)
        n++;
    /* Logged before acting: a resume can hold again from inside the loop. */
    xs_log(XS_LOG_INFO, "s2s.in.hold", "state=%s streams=%zu%s%s", state, n, why ? " reason=" : "",
           why ? why : "");
    for (struct s2s_in *in = x->ins; in; in = in->next) {
        /* Resuming a TLS stream hands over what it had already decrypted,
         * which can raise the pressure again: the nested call has paused
         * every stream, and resuming the rest would read them while held.
         * Streams are freed from their close callback, never in here. */
        if (x->input_held != hold)
            break;
        if (hold)
            xs_link_pause(in->link);
        else
            xs_link_resume(in->link);
    }
}

void xs_xmpp_hold_input(void *impl, int hold)
{
    struct xs_xmpp *x = impl;
    if (x->input_held == hold || x->closing)
        return;
    if (hold)
        uv_timer_start(&x->hold, xs_s2s_in_hold_expired, XS_S2S_HOLD_MAX_MS, 0);
    else
        uv_timer_stop(&x->hold);
    set_held(x, hold, hold ? "held" : "resumed", NULL);
}

/* The SIP side stayed behind for XS_S2S_HOLD_MAX_MS: read again, and let it
 * refuse what it cannot take. Its next rise of pressure holds again. */
void xs_s2s_in_hold_expired(uv_timer_t *t)
{
    struct xs_xmpp *x = t->data;
    if (x->input_held && !x->closing)
        set_held(x, 0, "released", "held-too-long");
}

void xs_s2s_in_accept(struct xs_xmpp *x, uv_tcp_t *tcp)
{
    char source[INET6_ADDRSTRLEN];
    source_of(tcp, source);
    /* Streams count from accept to their close callback, so this bounds the
     * descriptors inbound streams hold. Eviction keeps unauthenticated ones
     * far below it; what fills it is authenticated partners. */
    if (x->n_ins >= x->budget.in_max) {
        xs_log(XS_LOG_WARN, "xmpp.listen",
               "result=refused reason=too-many-streams peer=%s in_max=%zu", source,
               x->budget.in_max);
        refuse_full(tcp);
        return;
    }
    make_room(x, source);
    struct s2s_in *in = calloc(1, sizeof *in);
    if (!in) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    in->x = x;
    in->serial = ++x->next_serial;
    in->verify_tag = 2 * in->serial;
    snprintf(in->source, sizeof in->source, "%s", source);
    in->parser = xs_s2s_parser_new(x, &parser_cbs, in);
    apply_limits(in);
    in->link = xs_link_new(tcp, &link_cbs, in, XS_S2S_OUTPUT_MAX);
    if (!in->link || !in->parser) {
        /* Without a link nothing will call on_closed; with one, its close does. */
        if (in->link) {
            in->state = IN_CLOSED;
            xs_link_close(in->link, XS_ENOMEM);
            in->next = x->ins;
            x->ins = in;
            x->n_streams++;
            x->n_ins++;
            return;
        }
        if (in->parser)
            xs_xml_parser_free(in->parser);
        free(in);
        return;
    }
    in->next = x->ins;
    x->ins = in;
    x->n_streams++;
    x->n_ins++;
    in->state = IN_WAIT_HEADER;
    if (x->input_held)
        xs_link_pause(in->link);
    in->last_activity = xs_xmpp_now(x);
    in->header_deadline = in->last_activity + XS_S2S_IN_HEADER_TIMEOUT;
    xs_log(XS_LOG_INFO, "s2s.in.state",
           "stream=in%llu peer=%s from=- to=wait-header reason=accepted",
           (unsigned long long)in->serial, xs_link_peer(in->link));
}

int xs_s2s_in_sweep(struct s2s_in *in, double now)
{
    if (in->state == IN_CLOSED)
        return 0;
    if (!in_authenticated(in) && ((in->header_deadline && now > in->header_deadline) ||
                                  (in->auth_deadline && now > in->auth_deadline))) {
        in_error(in, "connection-timeout", "stream set-up took too long");
        return 0;
    }
    if (now - in->last_activity > in->x->cfg->xmpp_idle_timeout) {
        set_state(in, IN_CLOSED, "idle");
        xs_s2s_close_stream(in->link);
        return 0;
    }
    if (now - in->last_activity < XS_S2S_TRIM_AFTER || !in->parser ||
        !xs_xml_parser_trim(in->parser))
        return 0;
    xs_log(XS_LOG_DEBUG, "s2s.in.quiet", "stream=in%llu result=parser-released",
           (unsigned long long)in->serial);
    return 1;
}

/* Why the partner entry for `remote` no longer admits dialback on this
 * stream, or NULL when it still does: the same rules on_db_result applies. */
static const char *pair_refusal(const struct s2s_in *in, const char *local, const char *remote)
{
    const struct xs_partner *p = xs_policy_partner(in->x->policy, remote);
    if (!xs_policy_is_local_domain(in->x->policy, local))
        return "local domain no longer served";
    if (!p)
        return "domain is no longer a federated partner";
    if (!p->dialback)
        return "dialback no longer allowed for this partner";
    if (p->tls == XS_TLS_REQUIRED && !in->tls)
        return "partner now requires TLS";
    return NULL;
}

void xs_s2s_in_recheck(struct s2s_in *in)
{
    if (in->state == IN_CLOSED)
        return;
    if (in->local[0] && !xs_policy_is_local_domain(in->x->policy, in->local)) {
        in_error(in, "host-gone", "this gateway no longer serves that domain");
        return;
    }
    if (in->remote[0] && !xs_policy_partner(in->x->policy, in->remote)) {
        xs_log(XS_LOG_WARN, "s2s.in.refused", "stream=in%llu remote=%s reason=partner-removed",
               (unsigned long long)in->serial, in->remote);
        in_error(in, "policy-violation", "domain is no longer a federated partner");
        return;
    }
    /* Every pair is admitted again under the new rules (audit L1). Dialback
     * has no way to withdraw one pair, so a pair that fails ends the stream;
     * the peer reconnects and authenticates what is still allowed. */
    for (size_t i = 0; i < in->n_pairs; i++) {
        const char *why = pair_refusal(in, in->pairs[i].local, in->pairs[i].remote);
        if (why) {
            xs_log(XS_LOG_WARN, "s2s.in.refused",
                   "stream=in%llu remote=%s local=%s reason=reload detail=\"%s\"",
                   (unsigned long long)in->serial, in->pairs[i].remote, in->pairs[i].local, why);
            in_error(in, "policy-violation", why);
            return;
        }
    }
    apply_limits(in);
}

void xs_s2s_in_shutdown(struct s2s_in *in)
{
    if (in->state == IN_CLOSED)
        return;
    set_state(in, IN_CLOSED, "shutdown");
    xs_s2s_stream_error(in->link, "system-shutdown", NULL);
}

struct s2s_in *xs_s2s_in_next(struct s2s_in *in)
{
    return in->next;
}

uint64_t xs_s2s_in_verify_tag(const struct s2s_in *in)
{
    return in->verify_tag;
}
