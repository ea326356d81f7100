/* What an authenticated inbound stream carries: a message becomes an event
 * for the router, and its failure an error stanza back to the sender;
 * presence becomes a presence or subscription event, and a refused
 * subscription request is answered unsubscribed, a refused probe with an
 * error; an iq get or set is answered service-unavailable, and the rest is
 * logged. The stream itself (set-up, dialback, which pairs may speak) is
 * s2s_in.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/err.h"
#include "core/log.h"
#include "xmpp/s2s.h"
#include "xmpp/translate.h"

struct bounce_ctx {
    struct xs_xmpp *x;
    char *from; /* the original sender: where the error goes */
    char *to;   /* the original recipient: the error's sender */
    char *id;
};

static void bounce_free(struct bounce_ctx *b)
{
    free(b->from);
    free(b->to);
    free(b->id);
    free(b);
}

static void send_error(struct xs_xmpp *x, const char *orig_from, const char *orig_to,
                       const char *id, const char *stanza, enum xs_cond cond, const char *text)
{
    char local[XS_DOMAIN_MAX], remote[XS_DOMAIN_MAX];
    char qf[128], qt[128];
    xs_log_quote(qf, sizeof qf, orig_from);
    xs_log_quote(qt, sizeof qt, orig_to);
    if (xs_s2s_domain_of(orig_to, local) || xs_s2s_domain_of(orig_from, remote)) {
        xs_log(XS_LOG_WARN, "xmpp.bounce",
               "stanza=%s from=%s to=%s cond=%s result=dropped "
               "reason=\"no address to answer\"",
               stanza, qt, qf, xs_cond_name(cond));
        return;
    }
    struct xs_xml_el *err = xs_xmpp_error_reply(NULL, orig_to, orig_from, id, stanza, cond, text);
    if (!err) {
        xs_log(XS_LOG_ERROR, "xmpp.bounce",
               "stanza=%s from=%s to=%s cond=%s result=dropped "
               "reason=\"out of memory\"",
               stanza, qt, qf, xs_cond_name(cond));
        return;
    }
    xs_log(XS_LOG_INFO, "xmpp.bounce", "stanza=%s from=%s to=%s cond=%s", stanza, qt, qf,
           xs_cond_name(cond));
    xs_xmpp_send(x, local, remote, err, NULL, NULL);
}

/* The stream's facts, for the policy: encrypted or not, and how the pair
 * authenticated ("dialback" or "sasl-external", a static string). */
static void stream_facts(struct xs_event *ev, int secure, const char *auth)
{
    ev->secure = secure;
    ev->auth = auth;
}

/* The router's answer for a message that came in on an inbound stream. The
 * stream may be gone by now; the error goes out on our outbound stream, so
 * only the addresses are needed. */
static void on_message_done(void *ud, enum xs_cond cond, const char *text)
{
    struct bounce_ctx *b = ud;
    struct xs_xmpp *x = b->x;
    if (cond != XS_COND_NONE)
        send_error(x, b->from, b->to, b->id, "message", cond, text);
    bounce_free(b);
    xs_xmpp_outcome_done(x);
}

static void on_message(struct xs_xmpp *x, uint64_t serial, int secure, const char *auth,
                       struct xs_xml_el *el)
{
    const char *type = xs_xml_el_attr(el, "type");
    const char *from = xs_xml_el_attr(el, "from");
    const char *to = xs_xml_el_attr(el, "to");
    if (type && !strcmp(type, "error")) {
        /* An error about a message we sent: while its error grace runs, the
         * SIP sender gets it as the final response; later it can only be
         * recorded, since SIP already had its answer. */
        char *text = NULL;
        char local[XS_DOMAIN_MAX], remote[XS_DOMAIN_MAX];
        const char *id = xs_xml_el_attr(el, "id");
        enum xs_cond c = xs_xmpp_error_condition(el, &text);
        struct s2s_out *o = NULL;
        if (!xs_s2s_domain_of(to, local) && !xs_s2s_domain_of(from, remote))
            o = xs_s2s_out_find(x, local, remote);
        int matched = o && xs_s2s_out_error(o, id, c, text ? text : "error from the XMPP server");
        /* Quoted: a peer's id with spaces could otherwise add fields of its
         * own to the line (audit L4). */
        char qf[128], qt[128], qi[128];
        xs_log(matched ? XS_LOG_INFO : XS_LOG_WARN, "xmpp.error.in",
               "stream=in%llu from=%s to=%s id=%s cond=%s result=%s", (unsigned long long)serial,
               xs_log_quote(qf, sizeof qf, from), xs_log_quote(qt, sizeof qt, to),
               xs_log_quote(qi, sizeof qi, id), xs_cond_name(c),
               matched ? "reported-to-sender" : "too-late-recorded");
        free(text);
        return;
    }
    struct xs_event *ev = NULL;
    enum xs_cond cond = XS_COND_NONE;
    int rc = xs_xmpp_stanza_to_event(el, &ev, &cond);
    if (rc == XS_ENOTFOUND) {
        /* Nothing to carry: chat states, receipts without a body. */
        xs_log(XS_LOG_DEBUG, "s2s.in.ignored", "stream=in%llu stanza=message reason=no-body",
               (unsigned long long)serial);
        return;
    }
    if (rc != 0) {
        send_error(x, from, to, xs_xml_el_attr(el, "id"), "message",
                   cond ? cond : XS_COND_BAD_REQUEST, "message could not be translated");
        return;
    }
    const char *id = xs_xml_el_attr(el, "id");
    struct bounce_ctx *b = calloc(1, sizeof *b);
    if (b) {
        b->x = x;
        b->from = strdup(from);
        b->to = strdup(to);
        b->id = id ? strdup(id) : NULL;
    }
    if (!b || !b->from || !b->to || (id && !b->id)) {
        /* Without the context the outcome could not be answered: refuse
         * now, while the addresses are still at hand. */
        if (b)
            bounce_free(b);
        xs_event_free(ev);
        xs_log(XS_LOG_ERROR, "s2s.in.message",
               "stream=in%llu result=refused reason=\"out of memory\"", (unsigned long long)serial);
        send_error(x, from, to, id, "message", XS_COND_RESOURCE_CONSTRAINT, NULL);
        return;
    }
    stream_facts(ev, secure, auth);
    xs_log(XS_LOG_DEBUG, "s2s.in.message", "stream=in%llu event=%llu secure=%d auth=%s",
           (unsigned long long)serial, (unsigned long long)ev->serial, ev->secure, ev->auth);
    x->pending_outcomes++;
    x->submit(x->router, ev, on_message_done, b);
}

/* A copy of jid without its resource; NULL on OOM. */
static char *bare_jid(const char *jid)
{
    const char *slash = strchr(jid, '/');
    return strndup(jid, slash ? (size_t)(slash - jid) : strlen(jid));
}

/* RFC 6121 §3.1.3: a subscription request the contact will not approve is
 * answered with unsubscribed, from the contact's bare JID to the user's;
 * left unanswered, the remote roster entry would stay pending for good. */
static void refuse_subscription(struct xs_xmpp *x, uint64_t serial, const char *from,
                                const char *to, const char *id, enum xs_cond cond)
{
    char local[XS_DOMAIN_MAX], remote[XS_DOMAIN_MAX];
    char qf[128], qt[128];
    xs_log_quote(qf, sizeof qf, from);
    xs_log_quote(qt, sizeof qt, to);
    if (xs_s2s_domain_of(to, local) || xs_s2s_domain_of(from, remote)) {
        xs_log(XS_LOG_WARN, "s2s.in.presence",
               "stream=in%llu from=%s to=%s type=subscribe cond=%s result=dropped "
               "reason=\"no address to answer\"",
               (unsigned long long)serial, qf, qt, xs_cond_name(cond));
        return;
    }
    char *user = bare_jid(from), *contact = bare_jid(to);
    struct xs_xml_el *p = xs_xml_el_new(XS_NS_SERVER, "presence");
    int rc = user && contact && p ? 0 : XS_ENOMEM;
    if (!rc)
        rc = xs_xml_el_set_attr(p, "from", contact);
    if (!rc)
        rc = xs_xml_el_set_attr(p, "to", user);
    if (!rc)
        rc = xs_xml_el_set_attr(p, "type", "unsubscribed");
    if (!rc && id)
        rc = xs_xml_el_set_attr(p, "id", id);
    free(user);
    free(contact);
    if (rc) {
        xs_xml_el_free(p);
        xs_log(XS_LOG_ERROR, "s2s.in.presence",
               "stream=in%llu from=%s to=%s type=subscribe result=dropped reason=\"out of memory\"",
               (unsigned long long)serial, qf, qt);
        return;
    }
    xs_log(XS_LOG_INFO, "s2s.in.presence",
           "stream=in%llu from=%s to=%s type=subscribe result=unsubscribed cond=%s",
           (unsigned long long)serial, qf, qt, xs_cond_name(cond));
    xs_xmpp_send(x, local, remote, p, NULL, NULL);
}

/* A presence stanza of wire type `type` (NULL: available) that will not be
 * carried. Only a subscription request and a probe are answered: RFC 6121
 * has no error for broadcast presence, and answering the other
 * subscription types would tell the sender nothing it can act on. */
static void presence_refused(struct xs_xmpp *x, uint64_t serial, const char *type, const char *from,
                             const char *to, const char *id, enum xs_cond cond, const char *text)
{
    if (type && !strcmp(type, "subscribe")) {
        refuse_subscription(x, serial, from, to, id, cond);
        return;
    }
    if (type && !strcmp(type, "probe")) {
        send_error(x, from, to, id, "presence", cond, text);
        return;
    }
    /* The default policy drops what it will not carry with this text; that
     * is routine and would flood the log at info. */
    int policy_drop =
        cond == XS_COND_POLICY_VIOLATION && text && !strcmp(text, "dropped by on_presence");
    char qf[128], qt[128], qx[160];
    xs_log(policy_drop ? XS_LOG_DEBUG : XS_LOG_INFO, "s2s.in.presence",
           "stream=in%llu from=%s to=%s type=%s result=refused cond=%s text=%s",
           (unsigned long long)serial, xs_log_quote(qf, sizeof qf, from),
           xs_log_quote(qt, sizeof qt, to), type ? type : "available", xs_cond_name(cond),
           xs_log_quote(qx, sizeof qx, text));
}

/* What the router's answer needs once the stanza is gone: the stream may be
 * gone too, and the answer goes out on our outbound stream. */
struct presence_ctx {
    struct xs_xmpp *x;
    uint64_t serial;
    char type[16]; /* the stanza's type attribute, "" for available */
    char *from, *to, *id;
};

static void presence_ctx_free(struct presence_ctx *c)
{
    free(c->from);
    free(c->to);
    free(c->id);
    free(c);
}

static struct presence_ctx *presence_ctx_new(struct xs_xmpp *x, uint64_t serial, const char *type,
                                             const char *from, const char *to, const char *id)
{
    struct presence_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->x = x;
    c->serial = serial;
    /* Only the types translate accepts reach here; they all fit. */
    snprintf(c->type, sizeof c->type, "%s", type ? type : "");
    c->from = strdup(from);
    c->to = strdup(to);
    c->id = id ? strdup(id) : NULL;
    if (!c->from || !c->to || (id && !c->id)) {
        presence_ctx_free(c);
        return NULL;
    }
    return c;
}

static void on_presence_done(void *ud, enum xs_cond cond, const char *text)
{
    struct presence_ctx *c = ud;
    struct xs_xmpp *x = c->x;
    if (cond != XS_COND_NONE)
        presence_refused(x, c->serial, c->type[0] ? c->type : NULL, c->from, c->to, c->id, cond,
                         text);
    presence_ctx_free(c);
    xs_xmpp_outcome_done(x);
}

static void on_sub_error_done(void *ud, enum xs_cond cond, const char *text)
{
    struct presence_ctx *c = ud;
    struct xs_xmpp *x = c->x;
    if (cond != XS_COND_NONE) {
        char qf[128], qt[128], qx[160];
        xs_log(XS_LOG_INFO, "s2s.in.presence",
               "stream=in%llu from=%s to=%s type=error result=refused cond=%s text=%s",
               (unsigned long long)c->serial, xs_log_quote(qf, sizeof qf, c->from),
               xs_log_quote(qt, sizeof qt, c->to), xs_cond_name(cond),
               xs_log_quote(qx, sizeof qx, text));
    }
    presence_ctx_free(c);
    xs_xmpp_outcome_done(x);
}

/* <presence type='error'>. From a user of the remote domain to one of ours
 * it can only answer presence we sent for a SIP user, and RFC 8048 reads an
 * error like a refusal: it becomes "unsubscribed" from the user to ours, so
 * a SIP watcher's subscription ends instead of waiting for an answer that
 * will not come. An error from the domain itself (its server) about
 * presence is recorded. Never answered (RFC 6120 §8.3.1). */
static void on_presence_error(struct xs_xmpp *x, uint64_t serial, int secure, const char *auth,
                              const struct xs_xml_el *el)
{
    const char *from = xs_xml_el_attr(el, "from"), *to = xs_xml_el_attr(el, "to");
    char *text = NULL;
    enum xs_cond c = xs_xmpp_error_condition(el, &text);
    char local[XS_DOMAIN_MAX];
    struct xs_addr_jid jf;
    int from_user = from && xs_addr_split_jid(from, &jf) && jf.local;
    int to_ours = !xs_s2s_domain_of(to, local) && xs_policy_is_local_domain(x->policy, local);
    char qf[128], qt[128], qx[160];
    xs_log_quote(qf, sizeof qf, from);
    xs_log_quote(qt, sizeof qt, to);
    xs_log_quote(qx, sizeof qx, text);
    free(text);
    if (!from_user || !to_ours) {
        xs_log(XS_LOG_INFO, "xmpp.error.in",
               "stream=in%llu stanza=presence from=%s to=%s cond=%s text=%s result=recorded",
               (unsigned long long)serial, qf, qt, xs_cond_name(c), qx);
        return;
    }
    struct xs_event *ev = xs_event_new(XS_EVENT_SUBSCRIPTION, XS_SIDE_XMPP);
    char *user = bare_jid(from), *contact = bare_jid(to);
    int rc = user && contact ? 0 : XS_ENOMEM;
    if (!rc)
        rc = xs_event_set(&ev->from, user);
    if (!rc)
        rc = xs_event_set(&ev->to, contact);
    if (!rc)
        rc = xs_event_set(&ev->type, "unsubscribed");
    struct presence_ctx *ctx =
        rc ? NULL : presence_ctx_new(x, serial, "error", user, contact, xs_xml_el_attr(el, "id"));
    free(user);
    free(contact);
    if (!ctx) {
        xs_event_free(ev);
        xs_log(XS_LOG_ERROR, "xmpp.error.in",
               "stream=in%llu stanza=presence from=%s to=%s cond=%s result=dropped "
               "reason=\"out of memory\"",
               (unsigned long long)serial, qf, qt, xs_cond_name(c));
        return;
    }
    stream_facts(ev, secure, auth);
    xs_log(XS_LOG_INFO, "xmpp.error.in",
           "stream=in%llu stanza=presence from=%s to=%s cond=%s text=%s event=%llu "
           "result=unsubscribed",
           (unsigned long long)serial, qf, qt, xs_cond_name(c), qx, (unsigned long long)ev->serial);
    x->pending_outcomes++;
    x->submit(x->router, ev, on_sub_error_done, ctx);
}

/* Presence and subscriptions (RFC 6121, RFC 8048) become events for the
 * router; what it refuses is answered as presence_refused says. */
static void on_presence(struct xs_xmpp *x, uint64_t serial, int secure, const char *auth,
                        struct xs_xml_el *el)
{
    const char *type = xs_xml_el_attr(el, "type");
    if (type && !strcmp(type, "error")) {
        on_presence_error(x, serial, secure, auth, el);
        return;
    }
    const char *from = xs_xml_el_attr(el, "from"), *to = xs_xml_el_attr(el, "to");
    const char *id = xs_xml_el_attr(el, "id");
    struct xs_event *ev = NULL;
    enum xs_cond cond = XS_COND_NONE;
    if (xs_xmpp_stanza_to_event(el, &ev, &cond) != 0) {
        presence_refused(x, serial, type, from, to, id, cond ? cond : XS_COND_BAD_REQUEST,
                         "presence could not be translated");
        return;
    }
    struct presence_ctx *ctx = presence_ctx_new(x, serial, type, from, to, id);
    if (!ctx) {
        xs_event_free(ev);
        xs_log(XS_LOG_ERROR, "s2s.in.presence",
               "stream=in%llu result=refused reason=\"out of memory\"", (unsigned long long)serial);
        presence_refused(x, serial, type, from, to, id, XS_COND_RESOURCE_CONSTRAINT, NULL);
        return;
    }
    stream_facts(ev, secure, auth);
    xs_log(XS_LOG_DEBUG, "s2s.in.presence", "stream=in%llu event=%llu type=%s secure=%d auth=%s",
           (unsigned long long)serial, (unsigned long long)ev->serial, ev->type, ev->secure,
           ev->auth);
    x->pending_outcomes++;
    x->submit(x->router, ev, on_presence_done, ctx);
}

static void on_other_stanza(struct xs_xmpp *x, uint64_t serial, struct xs_xml_el *el)
{
    const char *type = xs_xml_el_attr(el, "type");
    if (!strcmp(el->name, "iq") && type && (!strcmp(type, "get") || !strcmp(type, "set"))) {
        send_error(x, xs_xml_el_attr(el, "from"), xs_xml_el_attr(el, "to"),
                   xs_xml_el_attr(el, "id"), "iq", XS_COND_SERVICE_UNAVAILABLE, NULL);
        return;
    }
    xs_log(XS_LOG_DEBUG, "s2s.in.ignored", "stream=in%llu stanza=%s type=%s",
           (unsigned long long)serial, el->name, type ? type : "-");
}

void xs_s2s_in_carry(struct xs_xmpp *x, uint64_t serial, int secure, const char *auth,
                     struct xs_xml_el *el)
{
    if (!strcmp(el->name, "message"))
        on_message(x, serial, secure, auth, el);
    else if (!strcmp(el->name, "presence"))
        on_presence(x, serial, secure, auth, el);
    else
        on_other_stanza(x, serial, el);
}
