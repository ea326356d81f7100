/* Inbound s2s streams: a peer server connected to us (on the 5269
 * listener, or on the Direct TLS one, XEP-0368). We answer its header,
 * offer what the partner's rules allow (STARTTLS, SASL EXTERNAL, dialback;
 * s2s_trust.h decides), accept SASL EXTERNAL on a certificate that passes,
 * verify the domains it claims by dialback through our outbound stream to
 * its authoritative server (XEP-0220), answer db:verify for keys we handed
 * out, and hand the stanzas of authenticated pairs to s2s_in_carry.c.
 * Before authentication a stream is held to small limits and caps (s2s.h),
 * since anyone can open one. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "xmpp/s2s_in_int.h"
#include "xmpp/xmpp_side.h"

int xs_s2s_in_authenticated(const struct s2s_in *in)
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
void xs_s2s_in_apply_limits(struct s2s_in *in)
{
    size_t full = in->x->cfg->xmpp_max_stanza;
    struct xs_xml_limits lim = {
        .max_stanza_bytes = xs_s2s_in_authenticated(in) || full < XS_S2S_PREAUTH_STANZA_MAX
                                ? full
                                : XS_S2S_PREAUTH_STANZA_MAX,
        .max_depth = XS_S2S_XML_DEPTH,
        .max_attrs = XS_S2S_XML_ATTRS,
    };
    if (in->parser)
        xs_xml_parser_set_limits(in->parser, &lim);
}

void xs_s2s_in_set_state(struct s2s_in *in, enum in_state s, const char *why)
{
    xs_log(XS_LOG_INFO, "s2s.in.state",
           "stream=in%llu peer=%s remote=%s local=%s from=%s to=%s tls=%s reason=\"%s\"",
           (unsigned long long)in->serial, xs_link_peer(in->link), in->remote[0] ? in->remote : "-",
           in->local[0] ? in->local : "-", state_name(in->state), state_name(s),
           xs_link_tls_describe(in->link), why);
    in->state = s;
}

void xs_s2s_in_error(struct s2s_in *in, const char *cond, const char *text)
{
    if (in->state == IN_CLOSED)
        return;
    xs_log(XS_LOG_WARN, "s2s.in.error", "stream=in%llu peer=%s remote=%s cond=%s text=\"%s\"",
           (unsigned long long)in->serial, xs_link_peer(in->link), in->remote[0] ? in->remote : "-",
           cond, text ? text : "");
    xs_s2s_in_set_state(in, IN_CLOSED, cond);
    if (in->parser)
        xs_xml_parser_stop(in->parser);
    if (in->close_sent) {
        /* Our closing tag is out: no stream error may follow it. */
        xs_link_close(in->link, XS_EPROTO);
        return;
    }
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
void xs_s2s_in_write_failed(struct s2s_in *in, int rc)
{
    if (in->state == IN_CLOSED)
        return;
    xs_log(XS_LOG_WARN, "s2s.in.write", "stream=in%llu peer=%s remote=%s result=failed reason=%s",
           (unsigned long long)in->serial, xs_link_peer(in->link), in->remote[0] ? in->remote : "-",
           xs_errname(rc));
    xs_s2s_in_set_state(in, IN_CLOSED, "write failed");
    if (in->parser)
        xs_xml_parser_stop(in->parser);
    xs_link_close(in->link, rc);
}

/* Our side of the stream ends: with </stream:stream>, unless the drain
 * sent it already. */
static void end_link(struct s2s_in *in)
{
    if (in->close_sent)
        xs_link_close(in->link, XS_OK);
    else
        xs_s2s_close_stream(in->link);
}

struct in_pair *xs_s2s_in_find_pair(struct s2s_in *in, const char *local, const char *remote)
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
    struct xs_buf b;
    xs_buf_init(&b, 1024);
    int rc = xs_buf_append_str(&b, "<stream:features>");
    if (rc == 0 && !in->tls && xs_s2s_trust_offer_starttls(p))
        rc = xs_buf_printf(&b, "<starttls xmlns='" XS_NS_TLS "'>%s</starttls>",
                           xs_s2s_trust_starttls_required(p) ? "<required/>" : "");
    if (rc == 0 && in->tls && !in->sasl_ok) {
        /* The chain is judged apart from any name: the authzid may name
         * the domain later, when the header gives none. */
        struct xs_tls_peer cert;
        const struct xs_tls_peer *c =
            xs_s2s_in_peer_cert(in, in->remote[0] ? in->remote : in->local, &cert);
        /* Counted once a stream, on the chain alone: the name is judged
         * later, for each domain the peer claims. */
        if (c && c->chain != XS_TLS_CHAIN_OK)
            xs_metrics_tls_cert_failure(c->chain, 1);
        if (xs_s2s_trust_offer_sasl(p, in->tls, c && c->chain == XS_TLS_CHAIN_OK))
            rc = xs_sasl_write_mechanisms(&b);
    }
    if (rc == 0 && xs_s2s_trust_offer_dialback(p, in->tls))
        rc = xs_buf_append_str(&b, "<dialback xmlns='" XS_NS_DIALBACK_FEATURE "'/>");
    if (rc == 0)
        rc = xs_buf_append_str(&b, "<sm xmlns='" XS_NS_SM "'><optional/></sm></stream:features>");
    if (rc == 0)
        rc = xs_link_write(in->link, b.data, b.len);
    xs_buf_free(&b);
    if (rc != 0)
        xs_s2s_in_write_failed(in, rc);
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
        xs_s2s_in_write_failed(in, rc);
        return;
    }
    if (!in->local[0] || !xs_policy_is_local_domain(in->x->policy, in->local)) {
        xs_s2s_in_error(in, "host-unknown", "this gateway does not serve that domain");
        return;
    }
    if (in->remote[0] && !xs_policy_partner(in->x->policy, in->remote)) {
        xs_log(XS_LOG_WARN, "s2s.in.refused", "stream=in%llu remote=%s reason=not-a-partner",
               (unsigned long long)in->serial, in->remote);
        char text[XS_DOMAIN_MAX + 64];
        snprintf(text, sizeof text, "%s is not federated with this gateway", in->remote);
        xs_s2s_in_error(in, "policy-violation", text);
        return;
    }
    xs_s2s_in_set_state(in, IN_OPEN, "header");
    /* The header after STARTTLS gets no fresh authentication time: the
     * whole unauthenticated life is bounded from the first header. */
    in->header_deadline = 0;
    if (!in->auth_deadline)
        in->auth_deadline = xs_xmpp_now(in->x) + XS_S2S_IN_AUTH_TIMEOUT;
    if (version && !strcmp(version, "1.0"))
        write_features(in);
}

size_t xs_s2s_in_count_pending(const struct s2s_in *in)
{
    size_t n = 0;
    for (size_t i = 0; i < in->n_pairs; i++)
        n += in->pairs[i].state == PAIR_PENDING;
    return n;
}

static void on_stanza_authenticated(struct s2s_in *in, struct xs_xml_el *el)
{
    char local[XS_DOMAIN_MAX], remote[XS_DOMAIN_MAX];
    if (xs_s2s_domain_of(xs_xml_el_attr(el, "to"), local) ||
        xs_s2s_domain_of(xs_xml_el_attr(el, "from"), remote)) {
        xs_s2s_in_error(in, "improper-addressing", "stanza without valid from and to");
        return;
    }
    struct in_pair *pair = xs_s2s_in_find_pair(in, local, remote);
    if (!pair || pair->state != PAIR_VALID) {
        xs_s2s_in_error(in, "not-authorized", "stanza for a domain pair not authenticated");
        return;
    }
    /* Handled (XEP-0198 §4) once carry has it: from here its outcome,
     * error stanzas included, is ours to produce. */
    if (!strcmp(el->name, "message") || !strcmp(el->name, "presence") || !strcmp(el->name, "iq"))
        xs_sm_in_handled(&in->sm);
    /* XEP-0344's shortcut is dialback to the policy: the key was not
     * checked, the certificate proved more. */
    xs_s2s_in_carry(in->x, in->serial, in->tls,
                    pair->how == XS_S2S_AUTH_SASL ? "sasl-external" : "dialback", el);
}

/* XEP-0198 as the receiving server: enabled after dialback authenticated a
 * pair, no resumption. <r/> is answered once per read (on_data), with the
 * count at its end, so a flood of requests costs one small answer. */
static void on_sm(struct s2s_in *in, const struct xs_xml_el *el)
{
    const char *refusal = NULL;
    if (!strcmp(el->name, "enable")) {
        if (!xs_s2s_in_authenticated(in))
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
            xs_s2s_in_error(in, "policy-violation", "too many refused stream management requests");
            return;
        }
        char buf[160];
        int n = snprintf(buf, sizeof buf,
                         "<failed xmlns='" XS_NS_SM "'><%s xmlns='"
                         "urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
                         refusal);
        int rc = xs_link_write(in->link, buf, (size_t)n);
        if (rc != 0)
            xs_s2s_in_write_failed(in, rc);
        return;
    }
    static const char enabled[] = "<enabled xmlns='" XS_NS_SM "'/>";
    int rc = xs_link_write(in->link, enabled, sizeof enabled - 1);
    if (rc != 0) {
        xs_s2s_in_write_failed(in, rc);
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
    /* After our closing tag nothing may be written here: stanzas are still
     * handled (their answers take our own stream), negotiation is not. */
    if (in->close_sent && strcmp(el->ns, XS_NS_SERVER) && strcmp(el->ns, XS_NS_STREAMS)) {
        xs_log(XS_LOG_DEBUG, "s2s.in.ignored", "stream=in%llu element=%s reason=closing",
               (unsigned long long)in->serial, el->name);
        xs_xml_el_free(el);
        return;
    }
    if (!strcmp(el->ns, XS_NS_TLS) && !strcmp(el->name, "starttls")) {
        if (in->tls) {
            xs_s2s_in_error(in, "policy-violation", "TLS is already on");
        } else {
            static const char proceed[] = "<proceed xmlns='" XS_NS_TLS "'/>";
            int rc = xs_link_write(in->link, proceed, sizeof proceed - 1);
            if (rc != 0) {
                xs_s2s_in_write_failed(in, rc);
            } else {
                in->restart = RESTART_TLS;
                xs_xml_parser_stop(in->parser);
            }
        }
    } else if (!strcmp(el->ns, XS_NS_SASL) && !strcmp(el->name, "auth")) {
        xs_s2s_in_sasl_auth(in, el);
    } else if (!strcmp(el->ns, XS_NS_SASL) && !strcmp(el->name, "abort")) {
        /* RFC 6120 §6.4.4: nothing is under way between <auth> and its
         * answer here, so an abort only needs its answer. */
        xs_s2s_in_sasl_failure(in, XS_SASL_ABORTED, NULL);
    } else if (!strcmp(el->ns, XS_NS_DIALBACK) && !strcmp(el->name, "result")) {
        xs_s2s_in_db_result(in, el);
    } else if (!strcmp(el->ns, XS_NS_DIALBACK) && !strcmp(el->name, "verify")) {
        xs_s2s_in_db_verify(in, el);
    } else if (!strcmp(el->ns, XS_NS_STREAMS) && !strcmp(el->name, "error")) {
        /* The peer ends the stream with a reason: record it and close ours. */
        const char *cond =
            el->n_children > 0 && !el->children[0].is_text ? el->children[0].u.el->name : "-";
        xs_log(XS_LOG_WARN, "s2s.in.peer-error", "stream=in%llu remote=%s cond=%s",
               (unsigned long long)in->serial, in->remote[0] ? in->remote : "-", cond);
        xs_s2s_in_set_state(in, IN_CLOSED, "stream error from the peer");
        xs_xml_parser_stop(in->parser);
        end_link(in);
    } else if (!strcmp(el->ns, XS_NS_SM)) {
        on_sm(in, el);
    } else if (!strcmp(el->ns, XS_NS_SERVER)) {
        on_stanza_authenticated(in, el);
    } else {
        xs_s2s_in_error(in, "unsupported-stanza-type", el->name);
    }
    xs_xml_el_free(el);
}

static void on_stream_close(void *ud)
{
    struct s2s_in *in = ud;
    if (in->state == IN_CLOSED)
        return;
    xs_s2s_in_set_state(in, IN_CLOSED, "peer closed the stream");
    xs_xml_parser_stop(in->parser);
    end_link(in);
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
        enum in_restart kind = in->restart;
        in->restart = RESTART_NONE;
        xs_xml_parser_free(in->parser);
        in->parser = xs_s2s_parser_new(in->x, &parser_cbs, in);
        if (!in->parser) {
            xs_s2s_in_error(in, "resource-constraint", NULL);
            return;
        }
        in->header_sent = 0;
        in->header_deadline = xs_xmpp_now(in->x) + XS_S2S_IN_HEADER_TIMEOUT;
        if (kind == RESTART_SASL) {
            /* RFC 6120 §6.4.6: the peer opens a new stream on the same
             * TLS session; the pair SASL validated stays. */
            xs_s2s_in_set_state(in, IN_WAIT_HEADER, "sasl success");
            xs_sm_in_init(&in->sm);
            xs_s2s_in_apply_limits(in);
            return;
        }
        /* Our identity for the domain the header asked for: a peer that
         * sent no SNI still gets the certificate that names it. */
        if (xs_link_start_tls_as(in->link, in->x->tls, 1, NULL, in->local) != 0) {
            xs_s2s_in_error(in, "internal-server-error", "TLS could not start");
            return;
        }
        xs_s2s_in_set_state(in, IN_TLS_HANDSHAKE, "starttls");
        /* RFC 6120 §5.4.3.3: nothing learned before TLS survives it, not
         * the pairs dialback authenticated, nor the header's from. Answers
         * to verifications still in flight find no pair and are dropped. */
        in->n_pairs = 0;
        in->remote[0] = '\0';
        xs_sm_in_init(&in->sm);
        in->verify_tag = 2 * in->serial + 1;
        xs_s2s_in_apply_limits(in);
        return;
    }
    if (rc < 0 && in->state != IN_CLOSED) {
        const char *cond = xs_xml_parser_condition(in->parser);
        xs_s2s_in_error(in, cond ? cond : "not-well-formed", xs_xml_parser_detail(in->parser));
        return;
    }
    if (in->sm.owed && in->state == IN_OPEN && !in->close_sent) {
        char a[64];
        int n = snprintf(a, sizeof a, "<a xmlns='" XS_NS_SM "' h='%lu'/>",
                         (unsigned long)in->sm.handled);
        in->sm.owed = 0;
        int wrc = xs_link_write(in->link, a, (size_t)n);
        if (wrc != 0)
            xs_s2s_in_write_failed(in, wrc);
    }
}

static void on_tls_ready(void *ud)
{
    struct s2s_in *in = ud;
    in->tls = 1;
    xs_s2s_in_set_state(in, IN_WAIT_HEADER, "tls established");
}

static void on_closed(void *ud, int reason)
{
    struct s2s_in *in = ud;
    struct xs_xmpp *x = in->x;
    if (in->state != IN_CLOSED)
        xs_s2s_in_set_state(in, IN_CLOSED, xs_strerror(reason));
    x->n_ins--;
    xs_metrics_stream_closed(XS_METRICS_IN);
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
    xs_s2s_in_error(in, "resource-constraint", "too many unauthenticated streams");
}

/* Which of two unauthenticated streams goes first: one with no dialback
 * under way before one whose verification is pending (it is about to be
 * decided, and may be the partner's), then the older. A stranger cannot
 * keep a stream pending for long: the partner answers its bogus key. */
static int evict_before(const struct s2s_in *a, const struct s2s_in *b)
{
    int pa = xs_s2s_in_count_pending(a) > 0, pb = xs_s2s_in_count_pending(b) > 0;
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
            if (in->state == IN_CLOSED || xs_s2s_in_authenticated(in))
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

static void accept_stream(struct xs_xmpp *x, uv_tcp_t *tcp, int direct_tls)
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
    in->since = xs_xmpp_wall_now();
    in->verify_tag = 2 * in->serial;
    snprintf(in->source, sizeof in->source, "%s", source);
    in->parser = xs_s2s_parser_new(x, &parser_cbs, in);
    xs_s2s_in_apply_limits(in);
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
            xs_metrics_stream_opened(XS_METRICS_IN);
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
    xs_metrics_stream_opened(XS_METRICS_IN);
    in->state = IN_WAIT_HEADER;
    if (x->input_held)
        xs_link_pause(in->link);
    in->last_activity = xs_xmpp_now(x);
    /* The handshake of a Direct TLS stream counts against the header's
     * deadline: a peer that never finishes it is gone as soon. */
    in->header_deadline = in->last_activity + XS_S2S_IN_HEADER_TIMEOUT;
    xs_log(XS_LOG_INFO, "s2s.in.state", "stream=in%llu peer=%s from=- to=%s reason=accepted%s",
           (unsigned long long)in->serial, xs_link_peer(in->link),
           direct_tls ? "tls-handshake" : "wait-header", direct_tls ? " listener=direct-tls" : "");
    if (!direct_tls)
        return;
    /* XEP-0368: TLS from the first byte. SNI picks our identity; the
     * stream is then encrypted from its header on and offers no STARTTLS. */
    in->state = IN_TLS_HANDSHAKE;
    if (xs_link_start_tls_as(in->link, x->tls, 1, NULL, NULL) != 0)
        xs_s2s_in_error(in, "internal-server-error", "TLS could not start");
}

void xs_s2s_in_accept(struct xs_xmpp *x, uv_tcp_t *tcp)
{
    accept_stream(x, tcp, 0);
}

void xs_s2s_in_accept_tls(struct xs_xmpp *x, uv_tcp_t *tcp)
{
    accept_stream(x, tcp, 1);
}

/* The partner of the stream's first authenticated pair, whose keepalive
 * and idle timeout the stream follows; NULL before authentication. */
static const struct xs_partner *stream_partner(const struct s2s_in *in)
{
    for (size_t i = 0; i < in->n_pairs; i++)
        if (in->pairs[i].state == PAIR_VALID)
            return xs_policy_partner(in->x->policy, in->pairs[i].remote);
    return NULL;
}

int xs_s2s_in_sweep(struct s2s_in *in, double now)
{
    if (in->state == IN_CLOSED)
        return 0;
    if (!xs_s2s_in_authenticated(in) && ((in->header_deadline && now > in->header_deadline) ||
                                         (in->auth_deadline && now > in->auth_deadline))) {
        xs_s2s_in_error(in, "connection-timeout", "stream set-up took too long");
        return 0;
    }
    const struct xs_partner *p = stream_partner(in);
    double idle = p && p->idle_timeout > 0 ? p->idle_timeout : in->x->cfg->xmpp_idle_timeout;
    if (now - in->last_activity > idle) {
        xs_s2s_in_set_state(in, IN_CLOSED, "idle");
        xs_s2s_close_stream(in->link);
        return 0;
    }
    /* partner.keepalive: a space between stanzas on an authenticated
     * stream that went quiet (RFC 6120 §4.6.1), so a dead path shows as a
     * failed write instead of lingering until the idle timeout. */
    double quiet_since =
        in->last_keepalive > in->last_activity ? in->last_keepalive : in->last_activity;
    if (p && p->keepalive > 0 && in->state == IN_OPEN && !in->close_sent &&
        xs_s2s_in_authenticated(in) &&
        now - quiet_since >= p->keepalive) {
        in->last_keepalive = now;
        int rc = xs_link_write(in->link, " ", 1);
        if (rc != 0) {
            xs_s2s_in_write_failed(in, rc);
            return 0;
        }
    }
    if (now - in->last_activity < XS_S2S_TRIM_AFTER || !in->parser ||
        !xs_xml_parser_trim(in->parser))
        return 0;
    xs_log(XS_LOG_DEBUG, "s2s.in.quiet", "stream=in%llu result=parser-released",
           (unsigned long long)in->serial);
    return 1;
}

void xs_s2s_in_shutdown(struct s2s_in *in)
{
    if (in->state == IN_CLOSED)
        return;
    xs_s2s_in_set_state(in, IN_CLOSED, "shutdown");
    if (in->close_sent)
        xs_link_close(in->link, XS_OK);
    else
        xs_s2s_stream_error(in->link, "system-shutdown", NULL);
}

void xs_s2s_in_drain(struct s2s_in *in)
{
    static const char end[] = "</stream:stream>";
    if (in->state != IN_OPEN || !in->header_sent || in->close_sent)
        return;
    int rc = xs_link_write(in->link, end, sizeof end - 1);
    if (rc != 0) {
        xs_s2s_in_write_failed(in, rc);
        return;
    }
    in->close_sent = 1;
    xs_log(XS_LOG_INFO, "s2s.in.drain", "stream=in%llu remote=%s result=closing",
           (unsigned long long)in->serial, in->remote[0] ? in->remote : "-");
}

struct s2s_in *xs_s2s_in_next(struct s2s_in *in)
{
    return in->next;
}

/* Established once a pair is valid, under the first valid pair's partner
 * and method; before that, under the partner the header names. */
void xs_s2s_in_metrics(const struct s2s_in *in)
{
    if (in->state == IN_CLOSED)
        return;
    const struct in_pair *valid = NULL;
    for (size_t i = 0; i < in->n_pairs && !valid; i++)
        if (in->pairs[i].state == PAIR_VALID)
            valid = &in->pairs[i];
    enum xs_metrics_stream_state st = in->state != IN_OPEN ? XS_MSTREAM_CONNECTING
                                      : valid              ? XS_MSTREAM_ESTABLISHED
                                                           : XS_MSTREAM_AUTHENTICATING;
    enum xs_metrics_stream_auth auth = !valid ? XS_MSTREAM_AUTH_NONE
                                       : valid->how == XS_S2S_AUTH_SASL
                                           ? XS_MSTREAM_AUTH_SASL_EXTERNAL
                                           : XS_MSTREAM_AUTH_DIALBACK;
    xs_metrics_collect_stream(xs_xmpp_metrics_partner(in->x, valid ? valid->remote : in->remote),
                              XS_METRICS_IN, st, xs_xmpp_metrics_tls(in->link), auth);
}

int xs_s2s_in_info(const struct s2s_in *in, struct xs_stream_info *out)
{
    if (in->state == IN_CLOSED)
        return -1;
    const struct in_pair *valid = NULL;
    for (size_t i = 0; i < in->n_pairs && !valid; i++)
        if (in->pairs[i].state == PAIR_VALID)
            valid = &in->pairs[i];
    *out = (struct xs_stream_info){
        .outbound = 0,
        .local = valid ? valid->local : in->local,
        .remote = valid ? valid->remote : in->remote,
        .peer = in->link ? xs_link_peer(in->link) : "",
        .state = in->state == IN_WAIT_HEADER     ? "connecting"
                 : in->state == IN_TLS_HANDSHAKE ? "tls-handshake"
                 : valid                         ? "established"
                                                 : "authenticating",
        .auth = !valid                            ? "none"
                : valid->how == XS_S2S_AUTH_SASL ? "sasl_external"
                                                  : "dialback",
        .since = in->since,
        .queued = 0,
        .last_error = "",
    };
    xs_xmpp_tls_version(in->link, out->tls);
    return 0;
}

uint64_t xs_s2s_in_verify_tag(const struct s2s_in *in)
{
    return in->verify_tag;
}
