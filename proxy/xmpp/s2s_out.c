/* Outbound s2s streams: one per (local domain, remote domain) pair. The
 * stream finds the peer (static route, SRV, A/AAAA), connects, upgrades with
 * STARTTLS, authenticates with dialback, and then carries the stanzas that
 * queued up meanwhile, in order. It also carries our db:verify requests to the
 * peer's authoritative server on behalf of inbound streams. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "xmpp/dialback_key.h"
#include "xmpp/s2s.h"
#include "xmpp/s2s_sm.h"
#include "xmpp/sasl.h"
#include "xmpp/xmpp_side.h"

#define OUT_MAX_TARGETS 8

enum out_state {
    OUT_RESOLVING,
    OUT_CONNECTING,
    OUT_WAIT_HEADER,
    OUT_WAIT_FEATURES,
    OUT_WAIT_PROCEED,
    OUT_TLS_HANDSHAKE,
    OUT_WAIT_SASL,
    OUT_WAIT_DIALBACK,
    OUT_ESTABLISHED,
    OUT_CLOSED,
};

struct out_item {
    struct out_item *next;
    xs_done_cb done;
    void *ud;
    double deadline; /* while flushed and waiting out the error grace */
    uint64_t end;    /* once written: the link offset its last byte ends at */
    uint32_t sm_n;   /* with sm_counted: the h that acknowledges it (XEP-0198) */
    int sm_counted;  /* written while the stream counted stanzas */
    char id[65];     /* the stanza id, "" when it has none usable */
    size_t len;
    char data[]; /* the serialized stanza; not kept once written */
};

struct out_list {
    struct out_item *head, *tail;
    size_t n;
};

struct out_verify {
    uint64_t in_serial;
    xs_verify_cb cb;
    int sent;
    char id[XS_STREAM_ID_LEN * 2 + 1];
    char key[257];
};

struct s2s_out {
    struct s2s_out *next;
    struct xs_xmpp *x;
    uint64_t serial;
    enum out_state state;
    char local[XS_DOMAIN_MAX];
    char remote[XS_DOMAIN_MAX];
    /* The partner entry the stream was set up under; a reload that changes
     * any of these restarts the stream. */
    char route_host[XS_DOMAIN_MAX]; /* "" when DNS finds the peer */
    int route_port;
    enum xs_tls_req tls_req;
    enum xs_sasl_req sasl_req;
    enum xs_verify_mode verify;
    int dialback;
    /* Open federation (the "*" entry): nobody vouched for the remote's DNS,
     * so it may not aim us at loopback, private or other special addresses
     * (audit M4). A named partner's DNS, or a route, is the operator's word. */
    int public_only;
    struct xs_dns_req *dns;
    struct xs_connect_req *connect;
    struct xs_dns_target targets[OUT_MAX_TARGETS];
    unsigned char direct[OUT_MAX_TARGETS]; /* 1: _xmpps-server, TLS from the first byte */
    size_t n_targets, next_target;
    struct xs_link *link;
    struct xs_xml_parser *parser;
    int tls;
    int cert_ok;    /* the peer's certificate passed for `remote` */
    int sasl_tried; /* <auth> sent on this connection */
    int sasl_done;  /* SASL EXTERNAL succeeded: the stream restarts authenticated */
    /* xsgw validate (xs_xmpp_probe): each step is reported, and the stream
     * closes once authenticated. */
    xs_probe_cb probe;
    void *probe_ud;
    int probe_done;
    int restart;
    int dialback_sent;
    char peer_id[XS_STREAM_ID_LEN * 2 + 1];
    struct out_list queue;     /* waiting for the stream to be established */
    struct out_list unflushed; /* written to the link, not yet confirmed by the kernel */
    struct out_list written;   /* confirmed, waiting out the error grace, oldest first */
    /* With stream management: confirmed by the kernel, waiting for the
     * peer's <a/>, in the order sent. */
    struct out_list unacked;
    struct xs_sm_out sm;
    int v1;         /* the peer's header said version 1.0 */
    int sm_offered; /* its last stream features offered urn:xmpp:sm:3 */
    int sm_owe_a;   /* the peer sent <r/>: one <a/> answers after this read */
    int peer_error; /* the peer ended the stream with a stream error */
    struct out_verify verifies[XS_S2S_VERIFY_MAX];
    size_t n_verifies;
    enum xs_cond fail_cond; /* why queued stanzas bounce if the stream dies */
    char fail_text[256];
    double deadline;
    double last_activity;
    double since; /* Unix time it was created (status page) */
    /* Congestion refusals: logged once a second at most, with the count. */
    double congested_logged_at;
    unsigned long congested_unlogged;
};

static const char *state_name(enum out_state s)
{
    static const char *const names[] = {
        "resolving",     "connecting", "wait-header",   "wait-features", "wait-proceed",
        "tls-handshake", "wait-sasl",  "wait-dialback", "established",   "closed"};
    return names[s];
}

static void report(struct s2s_out *o, enum xs_probe_step step, int ok, int direct,
                   const char *detail, const struct xs_tls_peer *peer)
{
    if (!o->probe || o->probe_done)
        return;
    struct xs_probe_report r = {
        .step = step, .ok = ok, .direct = direct, .detail = detail ? detail : "", .peer = peer};
    if (step == XS_PROBE_DONE)
        o->probe_done = 1;
    o->probe(o->probe_ud, &r);
}

static void set_state(struct s2s_out *o, enum out_state s, const char *why)
{
    xs_log(
        XS_LOG_INFO, "s2s.out.state",
        "stream=out%llu local=%s remote=%s peer=%s from=%s to=%s tls=%s queued=%zu reason=\"%s\"",
        (unsigned long long)o->serial, o->local, o->remote, o->link ? xs_link_peer(o->link) : "-",
        state_name(o->state), state_name(s), o->link ? xs_link_tls_describe(o->link) : "-",
        o->queue.n, why);
    o->state = s;
}

static void list_push(struct out_list *l, struct out_item *it)
{
    it->next = NULL;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    l->n++;
}

static struct out_item *list_pop(struct out_list *l)
{
    struct out_item *it = l->head;
    if (it) {
        l->head = it->next;
        if (!l->head)
            l->tail = NULL;
        l->n--;
    }
    return it;
}

/* Tells the sender the outcome. A stanza without a sender (an error we
 * bounce back to an XMPP user) that fails has nobody to tell, so the loss is
 * logged rather than silent. */
static void complete(const struct s2s_out *o, xs_done_cb done, void *ud, const char *id,
                     enum xs_cond cond, const char *text)
{
    if (done) {
        done(ud, cond, text);
        return;
    }
    if (cond != XS_COND_NONE)
        xs_log(XS_LOG_WARN, "s2s.out.dropped",
               "stream=out%llu local=%s remote=%s id=%s cond=%s text=\"%s\"",
               (unsigned long long)o->serial, o->local, o->remote, id && *id ? id : "-",
               xs_cond_name(cond), text ? text : "");
}

/* Completes every item of a list. Items are unlinked before their callback
 * runs, since a callback may send again on this stream. */
static void list_complete(const struct s2s_out *o, struct out_list *l, enum xs_cond cond,
                          const char *text)
{
    struct out_item *it;
    while ((it = list_pop(l)) != NULL) {
        complete(o, it->done, it->ud, it->id, cond, text);
        free(it);
    }
}

/* A stanza's bytes left the process: its sender hears of success now, or
 * after the error grace when it can still be matched with an error from the
 * peer. */
/* Queues `it` (its deadline set) to wait for an error stanza. The list is
 * bounded; its oldest entry has left the process (and, with stream
 * management, was acknowledged), so it is reported delivered early rather
 * than held. */
static void push_written(struct s2s_out *o, struct out_item *it)
{
    if (o->written.n >= XS_S2S_INFLIGHT_MAX) {
        struct out_item *old = list_pop(&o->written);
        old->done(old->ud, XS_COND_NONE, NULL);
        free(old);
    }
    list_push(&o->written, it);
    xs_xmpp_expire_at(o->x, it->deadline);
}

static void after_flush(struct s2s_out *o, struct out_item *it)
{
    double grace = o->x->cfg->xmpp_error_grace;
    /* The peer counts it and will acknowledge it: its sender hears then.
     * Until <enabled/> confirms that, the grace's deadline holds too, so a
     * peer that ignores <enable/> costs nothing but the element. */
    if (it->done && it->sm_counted && o->sm.state != XS_SM_OFF) {
        it->deadline = xs_xmpp_now(o->x) + (grace > 0 && it->id[0] ? grace : 0);
        list_push(&o->unacked, it);
        if (o->sm.state == XS_SM_REQUESTED)
            xs_xmpp_expire_at(o->x, it->deadline);
        return;
    }
    if (!it->done || grace <= 0 || !it->id[0]) {
        if (it->done)
            it->done(it->ud, XS_COND_NONE, NULL);
        free(it);
        return;
    }
    it->deadline = xs_xmpp_now(o->x) + grace;
    push_written(o, it);
}

/* Moves the stanzas the kernel has confirmed on to their grace. */
static void promote_flushed(struct s2s_out *o)
{
    if (!o->link)
        return;
    uint64_t flushed = xs_link_flushed(o->link);
    while (o->unflushed.head && o->unflushed.head->end <= flushed)
        after_flush(o, list_pop(&o->unflushed));
}

/* A stanza was accepted by the link: it waits there until the kernel has
 * its bytes. Nothing is reported delivered before that. */
static void after_write(struct s2s_out *o, struct out_item *it)
{
    it->end = xs_link_accepted(o->link);
    it->sm_counted = xs_sm_out_count(&o->sm, &it->sm_n);
    list_push(&o->unflushed, it);
}

/* The stream is over (see the rule in s2s.h): what the kernel never took
 * fails, and what it took but is still inside its grace succeeds only when
 * the link ended in order. */
static void settle_written(struct s2s_out *o, enum xs_cond cond, const char *text, int in_order)
{
    promote_flushed(o);
    list_complete(o, &o->unflushed, cond, text);
    /* XEP-0198 §4: until the peer acknowledged a stanza it is ours to
     * answer for, however the stream ended. Not sent again on a new
     * stream: the peer may have handled it and lost only the <a/>, and a
     * duplicate is worse than a prompt failure the sender can act on. */
    if (o->sm.state == XS_SM_REQUESTED && !o->peer_error) {
        /* Never enabled: these are in their grace, and settle as such,
         * unless the peer ended the stream with an error while our
         * <enable/> was unanswered: the error may well be about it (a
         * server without XEP-0198), and nothing after it was read. */
        if (in_order)
            list_complete(o, &o->unacked, XS_COND_NONE, NULL);
        else
            list_complete(o, &o->unacked, XS_COND_REMOTE_SERVER_TIMEOUT,
                          "the stream to the remote server failed before the stanza was "
                          "confirmed");
    } else {
        list_complete(o, &o->unacked, cond,
                      "the stream to the remote server ended before it acknowledged the stanza");
    }
    if (in_order)
        list_complete(o, &o->written, XS_COND_NONE, NULL);
    else
        list_complete(o, &o->written, XS_COND_REMOTE_SERVER_TIMEOUT,
                      "the stream to the remote server failed before the stanza was confirmed");
}

static struct out_item *item_new(const char *data, size_t len, const char *id, xs_done_cb done,
                                 void *ud)
{
    struct out_item *it = malloc(sizeof *it + len);
    if (!it)
        return NULL;
    it->next = NULL;
    it->done = done;
    it->ud = ud;
    it->deadline = 0;
    it->end = 0;
    it->sm_n = 0;
    it->sm_counted = 0;
    it->id[0] = '\0';
    if (id && strlen(id) < sizeof it->id)
        memcpy(it->id, id, strlen(id) + 1);
    it->len = len;
    memcpy(it->data, data, len);
    return it;
}

static void fail_verifies(struct s2s_out *o)
{
    size_t n = o->n_verifies;
    o->n_verifies = 0;
    for (size_t i = 0; i < n; i++)
        o->verifies[i].cb(o->x, o->verifies[i].in_serial, o->local, o->remote, -1);
}

/* Ends the stream: everything still waiting bounces with the recorded reason.
 * The object is freed once the link (if any) is closed. */
static void out_fail(struct s2s_out *o, enum xs_cond cond, const char *text)
{
    if (o->state == OUT_CLOSED)
        return;
    if (o->fail_cond == XS_COND_NONE) {
        o->fail_cond = cond;
        snprintf(o->fail_text, sizeof o->fail_text, "%s", text ? text : "");
    }
    report(o, XS_PROBE_DONE, 0, 0, o->fail_text, NULL);
    xs_log(XS_LOG_WARN, "s2s.out.failed", "stream=out%llu local=%s remote=%s cond=%s text=\"%s\"",
           (unsigned long long)o->serial, o->local, o->remote, xs_cond_name(o->fail_cond),
           o->fail_text);
    set_state(o, OUT_CLOSED, o->fail_text);
    list_complete(o, &o->queue, o->fail_cond, o->fail_text);
    fail_verifies(o);
}

static void out_free(struct s2s_out *o)
{
    struct xs_xmpp *x = o->x;
    for (struct s2s_out **pp = &x->outs; *pp; pp = &(*pp)->next) {
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    }
    if (o->parser)
        xs_xml_parser_free(o->parser);
    free(o);
    xs_metrics_stream_closed(XS_METRICS_OUT);
    xs_xmpp_stream_gone(x);
}

/* Fails the stream and releases it: through the link's close when there is
 * one, at once otherwise. */
static void out_abort(struct s2s_out *o, enum xs_cond cond, const char *text,
                      const char *stream_cond)
{
    out_fail(o, cond, text);
    if (o->link) {
        if (o->parser)
            xs_xml_parser_stop(o->parser);
        if (stream_cond)
            xs_s2s_stream_error(o->link, stream_cond, text);
        else
            xs_link_close(o->link, XS_EPROTO);
        return;
    }
    if (o->dns) {
        xs_dns_cancel(o->dns);
        o->dns = NULL;
    }
    if (o->connect) {
        xs_net_connect_cancel(o->connect);
        o->connect = NULL;
    }
    out_free(o);
}

/* A write the link refused ends the stream: XS_ELIMIT means the peer does
 * not read what we send, anything else that the link is failing. */
static void write_failed(struct s2s_out *o, int rc)
{
    xs_log(XS_LOG_WARN, "s2s.out.write", "stream=out%llu remote=%s result=failed reason=%s",
           (unsigned long long)o->serial, o->remote, xs_errname(rc));
    if (rc == XS_ELIMIT)
        out_abort(o, XS_COND_REMOTE_SERVER_TIMEOUT, "the remote server does not read its stream",
                  "resource-constraint");
    else
        out_abort(o, XS_COND_REMOTE_SERVER_TIMEOUT, "the stream to the remote server failed", NULL);
}

/* With xmpp.stream_management = "always" a peer that did not offer
 * XEP-0198 is asked anyway: Prosody with mod_smacks accepts, ejabberd
 * ignores the request; a server without it may end the stream instead
 * (Prosody without mod_smacks: unsupported-stanza-type). Such a domain is
 * remembered for a while and not asked again, so one lost stream is the
 * whole cost. */
static uint64_t domain_hash(const char *d)
{
    uint64_t h = 1469598103934665603ull;
    for (; *d; d++)
        h = (h ^ (unsigned char)*d) * 1099511628211ull;
    return h ? h : 1;
}

static int sm_refused_before(const struct xs_xmpp *x, const char *remote, double now)
{
    uint64_t h = domain_hash(remote);
    for (size_t i = 0; i < XS_SM_REFUSED_MAX; i++)
        if (x->sm_refused[i].hash == h && x->sm_refused[i].until > now)
            return 1;
    return 0;
}

static void sm_remember_refusal(struct s2s_out *o, int reason)
{
    struct xs_xmpp *x = o->x;
    struct xs_sm_refused *r = &x->sm_refused[x->sm_refused_next];
    x->sm_refused_next = (x->sm_refused_next + 1) % XS_SM_REFUSED_MAX;
    r->hash = domain_hash(o->remote);
    r->until = xs_xmpp_now(x) + XS_SM_REFUSED_TTL;
    xs_log(XS_LOG_WARN, "s2s.out.sm",
           "stream=out%llu local=%s remote=%s result=refused reason=%s "
           "detail=\"the stream ended after an enable the peer had not offered; not asked "
           "again for %.0f s\"",
           (unsigned long long)o->serial, o->local, o->remote, xs_errname(reason),
           XS_SM_REFUSED_TTL);
}

/* XEP-0198 on the stream. Acknowledgements are asked for one <r/> at a
 * time, after the kernel took a batch of writes: at any rate that is one
 * request per write batch and per round trip, not one per stanza. */
static void sm_maybe_request(struct s2s_out *o)
{
    if (o->state != OUT_ESTABLISHED || !xs_sm_out_want_request(&o->sm))
        return;
    static const char r[] = "<r xmlns='" XS_NS_SM "'/>";
    int rc = xs_link_write(o->link, r, sizeof r - 1);
    if (rc != 0) {
        write_failed(o, rc);
        return;
    }
    xs_sm_out_requested_ack(&o->sm, xs_xmpp_now(o->x));
}

/* Acknowledgements are off from now on (refused, or never answered): the
 * stanzas waiting for one go to the error grace, as on a stream without. */
static void sm_fall_back(struct s2s_out *o, const char *why)
{
    xs_log(XS_LOG_WARN, "s2s.out.sm",
           "stream=out%llu local=%s remote=%s result=off reason=\"%s\" waiting=%zu",
           (unsigned long long)o->serial, o->local, o->remote, why, o->unacked.n);
    o->sm.state = XS_SM_OFF;
    struct out_list l = o->unacked;
    o->unacked = (struct out_list){0};
    struct out_item *it;
    /* Their grace started when they were flushed (after_flush set the
     * deadline): it runs on, it does not start again. */
    while ((it = list_pop(&l)) != NULL)
        push_written(o, it);
}

/* The peer acknowledged `it`: its sender hears of success, after a short
 * settle in which an error stanza about it still wins. */
static void sm_acked(struct s2s_out *o, struct out_item *it)
{
    double grace = o->x->cfg->xmpp_error_grace;
    double settle = grace < XS_SM_ACK_SETTLE ? grace : XS_SM_ACK_SETTLE;
    if (!it->done || settle <= 0 || !it->id[0]) {
        if (it->done)
            it->done(it->ud, XS_COND_NONE, NULL);
        free(it);
        return;
    }
    it->deadline = xs_xmpp_now(o->x) + settle;
    push_written(o, it);
}

/* An h the peer could not have: the stream's count is broken, and nothing
 * it acknowledges can be trusted. XEP-0198 §4 names the case for a count
 * too high; one going backwards gets the same condition with a text. */
static void sm_bad_ack(struct s2s_out *o, int rc, uint32_t h)
{
    char buf[512];
    const char *what = rc == XS_ELIMIT ? "the remote server acknowledged more stanzas than sent"
                                       : "the remote server's acknowledgement went backwards";
    xs_log(XS_LOG_WARN, "s2s.out.sm",
           "stream=out%llu local=%s remote=%s result=bad-ack h=%lu acked=%lu sent=%lu",
           (unsigned long long)o->serial, o->local, o->remote, (unsigned long)h,
           (unsigned long)o->sm.acked, (unsigned long)o->sm.sent);
    out_fail(o, XS_COND_REMOTE_SERVER_TIMEOUT, what);
    xs_xml_parser_stop(o->parser);
    char detail[128] = "";
    if (rc == XS_ELIMIT)
        snprintf(detail, sizeof detail,
                 "<handled-count-too-high xmlns='" XS_NS_SM "' h='%lu' send-count='%lu'/>",
                 (unsigned long)h, (unsigned long)o->sm.sent);
    int n = snprintf(buf, sizeof buf,
                     "<stream:error><undefined-condition xmlns='" XS_NS_STREAM_ERRORS "'/>"
                     "%s<text xmlns='" XS_NS_STREAM_ERRORS "'>%s</text></stream:error>"
                     "</stream:stream>",
                     detail, what);
    int wrc = xs_link_write(o->link, buf, (size_t)n);
    xs_link_close(o->link, wrc ? wrc : XS_EPROTO);
}

static void sm_on_ack(struct s2s_out *o, const struct xs_xml_el *el)
{
    uint32_t h, prev;
    if (xs_sm_parse_h(xs_xml_el_attr(el, "h"), &h) != 0) {
        out_abort(o, XS_COND_REMOTE_SERVER_TIMEOUT, "acknowledgement without a usable h",
                  "invalid-xml");
        return;
    }
    int rc = xs_sm_out_ack(&o->sm, h, &prev);
    if (rc != 0) {
        sm_bad_ack(o, rc, h);
        return;
    }
    /* Both lists are in the order sent, the unacked before the unflushed
     * (an <a/> can come before our write callback has run). */
    struct out_list *lists[2] = {&o->unacked, &o->unflushed};
    for (size_t i = 0; i < 2; i++) {
        struct out_list *l = lists[i];
        while (l->head && l->head->sm_counted && xs_sm_covers(prev, h, l->head->sm_n))
            sm_acked(o, list_pop(l));
    }
    sm_maybe_request(o);
}

static void sm_on_element(struct s2s_out *o, const struct xs_xml_el *el)
{
    if (o->state != OUT_ESTABLISHED)
        return;
    if (!strcmp(el->name, "enabled") && o->sm.state == XS_SM_REQUESTED) {
        o->sm.state = XS_SM_ON;
        xs_log(XS_LOG_INFO, "s2s.out.sm", "stream=out%llu local=%s remote=%s result=enabled",
               (unsigned long long)o->serial, o->local, o->remote);
        sm_maybe_request(o);
    } else if (!strcmp(el->name, "failed") && o->sm.state == XS_SM_REQUESTED) {
        sm_fall_back(o, "the remote server refused stream management");
    } else if (!strcmp(el->name, "a") && o->sm.state == XS_SM_ON) {
        sm_on_ack(o, el);
    } else if (!strcmp(el->name, "r") && o->sm.state == XS_SM_ON) {
        /* Nothing is handled on our outbound stream; the <a/> is written
         * once per read, however many <r/> the read held. */
        o->sm_owe_a = 1;
    } else {
        xs_log(XS_LOG_DEBUG, "s2s.out.ignored", "stream=out%llu element=sm:%s",
               (unsigned long long)o->serial, el->name);
    }
}

static void send_verifies(struct s2s_out *o)
{
    for (size_t i = 0; i < o->n_verifies; i++) {
        struct out_verify *v = &o->verifies[i];
        if (v->sent)
            continue;
        int rc = xs_s2s_write_db(o->link, "verify", o->local, o->remote, v->id, NULL, v->key, NULL);
        if (rc != 0) {
            /* Not sent: the abort fails this and every other verification,
             * so the inbound pairs waiting on them fail instead of hanging. */
            write_failed(o, rc);
            return;
        }
        v->sent = 1;
    }
}

static void auth_log(struct s2s_out *o, const char *method, const char *result, const char *reason)
{
    char detail[320];
    snprintf(detail, sizeof detail, "%s %s%s%.250s", method, result, reason[0] ? ": " : "", reason);
    report(o, XS_PROBE_AUTH, !strcmp(result, "ok"), 0, detail, NULL);
    xs_log(XS_LOG_INFO, "s2s.out.auth",
           "stream=out%llu local=%s remote=%s method=%s result=%s reason=\"%s\"",
           (unsigned long long)o->serial, o->local, o->remote, method, result, reason);
}

/* Dialback under the partner's rules (trust-rules: outbound). `why` (may be
 * NULL) says what SASL EXTERNAL left, for the refusal's text. */
static void start_dialback(struct s2s_out *o, const char *why)
{
    char text[200];
    if (o->tls_req == XS_TLS_REQUIRED && !o->tls) {
        out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND,
                  "peer does not offer TLS, which this partner requires", "policy-violation");
        return;
    }
    if (o->sasl_req == XS_SASL_REQUIRED) {
        if (why)
            snprintf(text, sizeof text, "%.150s, and this partner requires SASL EXTERNAL", why);
        else
            snprintf(text, sizeof text,
                     "%.100s does not offer SASL EXTERNAL, which this partner requires", o->remote);
        auth_log(o, "sasl-external", "refused", text);
        out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND, text, "policy-violation");
        return;
    }
    if (!o->dialback) {
        snprintf(text, sizeof text, "%.120s and dialback is off for this partner",
                 why ? why : "SASL EXTERNAL is not available");
        auth_log(o, "dialback", "refused", text);
        out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND, text, "policy-violation");
        return;
    }
    if (o->verify == XS_VERIFY_CA && !o->cert_ok) {
        /* Reached without TLS only: a certificate that failed ended the
         * stream when TLS came up. */
        snprintf(text, sizeof text,
                 "%.100s offers no TLS, so its certificate cannot be verified (verify = ca)",
                 o->remote);
        out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND, text, "policy-violation");
        return;
    }
    char key[65];
    if (xs_dialback_key(o->x->secret, o->remote, o->local, o->peer_id, key) != 0) {
        out_abort(o, XS_COND_INTERNAL_SERVER_ERROR, "dialback key derivation failed",
                  "internal-server-error");
        return;
    }
    int rc = xs_s2s_write_db(o->link, "result", o->local, o->remote, NULL, NULL, key, NULL);
    if (rc != 0) {
        write_failed(o, rc);
        return;
    }
    o->dialback_sent = 1;
    set_state(o, OUT_WAIT_DIALBACK, "db:result sent");
    send_verifies(o);
}

static void on_stream_open(void *ud, const struct xs_xml_el *h)
{
    struct s2s_out *o = ud;
    if (o->state != OUT_WAIT_HEADER)
        return;
    const char *id = xs_xml_el_attr(h, "id");
    if (!id || !*id || strlen(id) >= sizeof o->peer_id) {
        out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND, "peer sent no usable stream id",
                  "invalid-id");
        return;
    }
    snprintf(o->peer_id, sizeof o->peer_id, "%s", id);
    const char *version = xs_xml_el_attr(h, "version");
    if (version && !strcmp(version, "1.0")) {
        o->v1 = 1;
        set_state(o, OUT_WAIT_FEATURES, "header");
        return;
    }
    /* A pre-1.0 peer sends no features: dialback right away, without TLS. */
    start_dialback(o, NULL);
}

static void established(struct s2s_out *o);

static void report_features(struct s2s_out *o, const struct xs_xml_el *el)
{
    if (!o->probe)
        return;
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < el->n_children && used < sizeof list - 40; i++) {
        if (el->children[i].is_text)
            continue;
        const struct xs_xml_el *c = el->children[i].u.el;
        const char *name = !strcmp(c->name, "mechanisms")
                               ? (xs_sasl_offers_external(el) ? "sasl:EXTERNAL" : "sasl")
                               : c->name;
        int n = snprintf(list + used, sizeof list - used, "%s%.30s", used ? " " : "", name);
        if (n > 0)
            used += (size_t)n;
    }
    report(o, XS_PROBE_FEATURES, 1, 0, used ? list : "(none)", NULL);
}

static void on_features(struct s2s_out *o, struct xs_xml_el *el)
{
    report_features(o, el);
    /* Features before TLS do not count after it (RFC 6120 §5.4.3.3). */
    o->sm_offered = xs_xml_el_child(el, XS_NS_SM, "sm") != NULL;
    if (o->sasl_done) {
        established(o);
        return;
    }
    struct xs_xml_el *starttls = xs_xml_el_child(el, XS_NS_TLS, "starttls");
    if (starttls && !o->tls && o->tls_req != XS_TLS_NONE) {
        static const char req[] = "<starttls xmlns='" XS_NS_TLS "'/>";
        int rc = xs_link_write(o->link, req, sizeof req - 1);
        if (rc != 0) {
            write_failed(o, rc);
            return;
        }
        set_state(o, OUT_WAIT_PROCEED, "starttls offered");
        return;
    }
    if (o->tls && o->sasl_req != XS_SASL_NONE && !o->sasl_tried && xs_sasl_offers_external(el)) {
        struct xs_buf *b = &o->x->scratch;
        xs_buf_reset(b);
        int rc = xs_sasl_write_auth(b, o->local);
        if (rc == 0)
            rc = xs_link_write(o->link, b->data, b->len);
        if (rc != 0) {
            write_failed(o, rc);
            return;
        }
        o->sasl_tried = 1;
        set_state(o, OUT_WAIT_SASL, "sasl external offered");
        return;
    }
    start_dialback(o, NULL);
}

static void on_sasl_outcome(struct s2s_out *o, struct xs_xml_el *el)
{
    if (o->state != OUT_WAIT_SASL)
        return;
    enum xs_sasl_cond cond;
    char text[128];
    int rc = xs_sasl_parse_outcome(el, &cond, text, sizeof text);
    if (rc == 1) {
        auth_log(o, "sasl-external", "ok", "");
        o->sasl_done = 1;
        o->restart = 2;
        xs_xml_parser_stop(o->parser);
        return;
    }
    char why[200];
    snprintf(why, sizeof why, "%.100s refused our certificate (%s%s%.60s)", o->remote,
             xs_sasl_cond_name(cond), text[0] ? ": " : "", text);
    auth_log(o, "sasl-external", "refused", why);
    start_dialback(o, why);
}

static void established(struct s2s_out *o)
{
    set_state(o, OUT_ESTABLISHED, o->sasl_done ? "sasl external" : "dialback valid");
    if (o->probe) {
        report(o, XS_PROBE_DONE, 1, 0,
               o->sasl_done ? "authenticated with SASL EXTERNAL" : "authenticated with dialback",
               NULL);
        set_state(o, OUT_CLOSED, "validation done");
        xs_xml_parser_stop(o->parser);
        xs_s2s_close_stream(o->link);
        return;
    }
    o->last_activity = xs_xmpp_now(o->x);
    /* XEP-0198 after authentication. Stanzas follow at once rather than
     * waiting for <enabled/>: the peer counts from its receipt of <enable/>,
     * so they count either way, and a refusal sends them to the grace. */
    int mode = o->x->cfg->xmpp_stream_management;
    int ask = o->v1 && (o->sm_offered ? mode != XS_SM_MODE_OFF : mode == XS_SM_MODE_ALWAYS);
    if (ask && !o->sm_offered && sm_refused_before(o->x, o->remote, o->last_activity)) {
        ask = 0;
        xs_log(XS_LOG_INFO, "s2s.out.sm",
               "stream=out%llu local=%s remote=%s result=skipped reason=refused-before",
               (unsigned long long)o->serial, o->local, o->remote);
    }
    if (ask) {
        static const char enable[] = "<enable xmlns='" XS_NS_SM "'/>";
        int rc = xs_link_write(o->link, enable, sizeof enable - 1);
        if (rc != 0) {
            write_failed(o, rc);
            return;
        }
        xs_sm_out_requested(&o->sm, o->last_activity);
        xs_log(XS_LOG_INFO, "s2s.out.sm",
               "stream=out%llu local=%s remote=%s result=requested offered=%d",
               (unsigned long long)o->serial, o->local, o->remote, o->sm_offered);
    }
    struct out_item *it;
    while (o->state == OUT_ESTABLISHED && (it = list_pop(&o->queue)) != NULL) {
        int rc = xs_link_write(o->link, it->data, it->len);
        if (rc == 0) {
            after_write(o, it);
            continue;
        }
        /* The link refused: the stanza goes back to the head of the queue
         * and bounces with the rest as the stream is aborted. */
        it->next = o->queue.head;
        o->queue.head = it;
        if (!o->queue.tail)
            o->queue.tail = it;
        o->queue.n++;
        write_failed(o, rc);
        return;
    }
}

static void on_db_result(struct s2s_out *o, struct xs_xml_el *el)
{
    const char *type = xs_xml_el_attr(el, "type");
    if (o->state != OUT_WAIT_DIALBACK)
        return;
    if (type && !strcmp(type, "valid")) {
        auth_log(o, "dialback", "ok", "");
        established(o);
        return;
    }
    auth_log(o, "dialback", "refused", type ? type : "no type");
    xs_log(XS_LOG_WARN, "s2s.out.dialback", "stream=out%llu local=%s remote=%s result=%s",
           (unsigned long long)o->serial, o->local, o->remote, type ? type : "-");
    out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND, "the remote server refused our dialback key",
              NULL);
}

static void on_db_verify(struct s2s_out *o, struct xs_xml_el *el)
{
    const char *id = xs_xml_el_attr(el, "id");
    const char *type = xs_xml_el_attr(el, "type");
    if (!id)
        return;
    for (size_t i = 0; i < o->n_verifies; i++) {
        struct out_verify *v = &o->verifies[i];
        if (!v->sent || strcmp(v->id, id))
            continue;
        struct out_verify done = *v;
        *v = o->verifies[--o->n_verifies];
        int valid = type && !strcmp(type, "valid") ? 1 : type && !strcmp(type, "invalid") ? 0 : -1;
        done.cb(o->x, done.in_serial, o->local, o->remote, valid);
        return;
    }
}

static void on_stanza(void *ud, struct xs_xml_el *el)
{
    struct s2s_out *o = ud;
    o->last_activity = xs_xmpp_now(o->x);
    if (!strcmp(el->ns, XS_NS_STREAMS) && !strcmp(el->name, "features")) {
        if (o->state == OUT_WAIT_FEATURES)
            on_features(o, el);
    } else if (!strcmp(el->ns, XS_NS_STREAMS) && !strcmp(el->name, "error")) {
        o->peer_error = 1;
        char text[160] = "stream error from the remote server";
        if (el->n_children > 0 && !el->children[0].is_text)
            snprintf(text, sizeof text, "stream error from the remote server: %s",
                     el->children[0].u.el->name);
        out_fail(o, XS_COND_REMOTE_SERVER_NOT_FOUND, text);
        xs_xml_parser_stop(o->parser);
        xs_link_close(o->link, XS_EPROTO);
    } else if (!strcmp(el->ns, XS_NS_TLS) && !strcmp(el->name, "proceed")) {
        if (o->state == OUT_WAIT_PROCEED) {
            o->restart = 1;
            xs_xml_parser_stop(o->parser);
        }
    } else if (!strcmp(el->ns, XS_NS_TLS) && !strcmp(el->name, "failure")) {
        out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND, "the remote server refused STARTTLS", NULL);
    } else if (!strcmp(el->ns, XS_NS_SASL)) {
        on_sasl_outcome(o, el);
    } else if (!strcmp(el->ns, XS_NS_DIALBACK) && !strcmp(el->name, "result")) {
        on_db_result(o, el);
    } else if (!strcmp(el->ns, XS_NS_DIALBACK) && !strcmp(el->name, "verify")) {
        on_db_verify(o, el);
    } else if (!strcmp(el->ns, XS_NS_SM)) {
        sm_on_element(o, el);
    } else {
        xs_log(XS_LOG_DEBUG, "s2s.out.ignored", "stream=out%llu element=%s",
               (unsigned long long)o->serial, el->name);
    }
    xs_xml_el_free(el);
}

static void on_stream_close(void *ud)
{
    struct s2s_out *o = ud;
    out_fail(o, XS_COND_REMOTE_SERVER_TIMEOUT, "the remote server closed the stream");
    xs_xml_parser_stop(o->parser);
    xs_s2s_close_stream(o->link);
}

static const struct xs_xml_cbs parser_cbs = {on_stream_open, on_stanza, on_stream_close};

static void on_data(void *ud, const char *data, size_t len)
{
    struct s2s_out *o = ud;
    if (o->state == OUT_CLOSED)
        return;
    int rc = xs_xml_parser_feed(o->parser, data, len);
    if (o->restart) {
        int sasl = o->restart == 2;
        o->restart = 0;
        xs_xml_parser_free(o->parser);
        o->parser = xs_s2s_parser_new(o->x, &parser_cbs, o);
        if (sasl) {
            /* RFC 6120 §6.4.6: a new stream over the same TLS after SASL. */
            if (!o->parser) {
                out_abort(o, XS_COND_RESOURCE_CONSTRAINT, "out of memory", NULL);
                return;
            }
            set_state(o, OUT_WAIT_HEADER, "sasl success");
            int wrc = xs_s2s_write_header(o->link, o->local, o->remote, NULL);
            if (wrc != 0)
                write_failed(o, wrc);
            return;
        }
        if (!o->parser || xs_link_start_tls_as(o->link, o->x->tls, 0, o->remote, o->local) != 0) {
            out_abort(o, XS_COND_INTERNAL_SERVER_ERROR, "TLS could not start", NULL);
            return;
        }
        set_state(o, OUT_TLS_HANDSHAKE, "proceed");
        return;
    }
    if (rc < 0 && o->state != OUT_CLOSED) {
        const char *cond = xs_xml_parser_condition(o->parser);
        out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND, xs_xml_parser_detail(o->parser),
                  cond ? cond : "not-well-formed");
        return;
    }
    if (o->sm_owe_a && o->state == OUT_ESTABLISHED) {
        static const char a[] = "<a xmlns='" XS_NS_SM "' h='0'/>";
        o->sm_owe_a = 0;
        int wrc = xs_link_write(o->link, a, sizeof a - 1);
        if (wrc != 0)
            write_failed(o, wrc);
    }
}

static void on_tls_ready(void *ud)
{
    struct s2s_out *o = ud;
    o->tls = 1;
    struct xs_tls_peer v;
    const struct xs_tls *t = xs_link_tls(o->link);
    o->cert_ok = t && xs_tls_peer_check(t, o->remote, &v) == 0;
    if (!t)
        return;
    if (!o->cert_ok)
        xs_metrics_tls_cert_failure(v.chain, v.name_ok);
    report(o, XS_PROBE_TLS, 1, 0, xs_tls_describe(t), NULL);
    report(o, XS_PROBE_CERT, o->cert_ok, 0, v.reason, &v);
    xs_log(o->cert_ok ? XS_LOG_INFO : XS_LOG_WARN, "s2s.out.tls",
           "stream=out%llu local=%s remote=%s tls=%s cert=\"%s\" verdict=%s reason=\"%s\"",
           (unsigned long long)o->serial, o->local, o->remote, xs_tls_describe(t), v.names,
           o->cert_ok ? "ok" : "failed", v.reason);
    if (!o->cert_ok && o->verify == XS_VERIFY_CA) {
        char text[240];
        snprintf(text, sizeof text, "certificate of %.60s: %.160s", o->remote, v.reason);
        /* A stream error needs a stream: ours opens over TLS only to say why
         * it ends. */
        if (xs_s2s_write_header(o->link, o->local, o->remote, NULL) != 0) {
            out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND, text, NULL);
            return;
        }
        out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND, text, "policy-violation");
        return;
    }
    set_state(o, OUT_WAIT_HEADER, "tls established");
    int rc = xs_s2s_write_header(o->link, o->local, o->remote, NULL);
    if (rc != 0)
        write_failed(o, rc);
}

static int try_next_target(struct s2s_out *o);

/* XEP-0368: a Direct TLS target whose handshake failed (a port that does
 * not speak TLS, a server without a certificate for the SNI) is not the
 * end: the next target is tried, down to the STARTTLS ones. Nothing was
 * written on it, so nothing is lost. Returns 1 when it moved on. */
static int direct_tls_fallback(struct s2s_out *o, int reason)
{
    if (o->state != OUT_TLS_HANDSHAKE || !o->direct[o->next_target - 1] ||
        o->next_target >= o->n_targets)
        return 0;
    struct xs_dns_target *t = &o->targets[o->next_target - 1];
    xs_log(XS_LOG_WARN, "s2s.out.connect",
           "stream=out%llu remote=%s target=%s:%u result=%s direct_tls=1 next=%s:%u",
           (unsigned long long)o->serial, o->remote, t->host, t->port, xs_errname(reason),
           o->targets[o->next_target].host, o->targets[o->next_target].port);
    report(o, XS_PROBE_TLS, 0, 1, xs_strerror(reason), NULL);
    o->link = NULL;
    xs_xml_parser_free(o->parser);
    o->parser = NULL;
    o->tls = 0;
    o->cert_ok = 0;
    set_state(o, OUT_CONNECTING, "direct tls failed, next target");
    try_next_target(o);
    return 1;
}

static void on_closed(void *ud, int reason)
{
    struct s2s_out *o = ud;
    if (direct_tls_fallback(o, reason))
        return;
    if (o->sm.state == XS_SM_REQUESTED && !o->sm_offered && o->peer_error)
        sm_remember_refusal(o, reason);
    out_fail(o, XS_COND_REMOTE_SERVER_TIMEOUT, xs_strerror(reason));
    promote_flushed(o);
    int in_order = reason == XS_OK || reason == XS_ECLOSED || reason == XS_EPROTO;
    size_t lost = o->unflushed.n + o->unacked.n, doubtful = in_order ? 0 : o->written.n;
    if (lost || doubtful)
        xs_log(XS_LOG_WARN, "s2s.out.unconfirmed",
               "stream=out%llu local=%s remote=%s reason=%s unwritten=%zu unacked=%zu "
               "in_grace=%zu in_grace_result=%s",
               (unsigned long long)o->serial, o->local, o->remote, xs_errname(reason),
               o->unflushed.n, o->unacked.n, o->written.n, in_order ? "delivered" : "failed");
    settle_written(o, XS_COND_REMOTE_SERVER_TIMEOUT,
                   "the stream to the remote server ended before the stanza was written", in_order);
    out_free(o);
}

static void on_flushed(void *ud)
{
    promote_flushed(ud);
    sm_maybe_request(ud);
}

static const struct xs_link_cbs link_cbs = {on_data, on_tls_ready, on_closed};

static int try_next_target(struct s2s_out *o);

static void on_connected(void *ud, int status, uv_tcp_t *tcp)
{
    struct s2s_out *o = ud;
    o->connect = NULL;
    struct xs_dns_target *t = &o->targets[o->next_target - 1];
    if (o->probe) {
        char detail[300];
        snprintf(detail, sizeof detail, "%.255s:%u%s%s", t->host, t->port, status ? ": " : "",
                 status ? xs_strerror(status) : "");
        report(o, XS_PROBE_CONNECT, status == 0, o->direct[o->next_target - 1], detail, NULL);
    }
    if (status != 0) {
        xs_log(XS_LOG_INFO, "s2s.out.connect", "stream=out%llu remote=%s target=%s:%u result=%s",
               (unsigned long long)o->serial, o->remote, t->host, t->port, xs_errname(status));
        if (o->next_target < o->n_targets) {
            try_next_target(o);
            return;
        }
        out_abort(o,
                  status == XS_ETIMEOUT ? XS_COND_REMOTE_SERVER_TIMEOUT
                                        : XS_COND_REMOTE_SERVER_NOT_FOUND,
                  status == XS_ETIMEOUT ? "connecting to the remote server timed out"
                  : status == XS_EPOLICY
                      ? "the remote server's addresses are not public, and no route names them"
                      : "the remote server could not be reached",
                  NULL);
        return;
    }
    o->parser = xs_s2s_parser_new(o->x, &parser_cbs, o);
    o->link = xs_link_new(tcp, &link_cbs, o, XS_S2S_OUTPUT_MAX);
    if (!o->link || !o->parser) {
        out_abort(o, XS_COND_RESOURCE_CONSTRAINT, "out of memory", NULL);
        return;
    }
    xs_link_on_flushed(o->link, on_flushed);
    if (o->direct[o->next_target - 1]) {
        if (xs_link_start_tls_as(o->link, o->x->tls, 0, o->remote, o->local) != 0) {
            out_abort(o, XS_COND_INTERNAL_SERVER_ERROR, "TLS could not start", NULL);
            return;
        }
        set_state(o, OUT_TLS_HANDSHAKE, "connected (direct tls)");
        return;
    }
    set_state(o, OUT_WAIT_HEADER, "connected");
    int rc = xs_s2s_write_header(o->link, o->local, o->remote, NULL);
    if (rc != 0)
        write_failed(o, rc);
}

/* Returns nonzero when the stream was aborted (and freed). */
static int try_next_target(struct s2s_out *o)
{
    struct xs_dns_target *t = &o->targets[o->next_target++];
    double timeout = o->x->cfg->xmpp_connect_timeout;
    int rc =
        xs_net_connect_flags(o->x->loop, t->host, t->port, timeout,
                             o->public_only ? XS_NET_PUBLIC_ONLY : 0, on_connected, o, &o->connect);
    if (rc != 0) {
        o->connect = NULL;
        out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND, xs_strerror(rc), NULL);
    }
    return rc;
}

/* One report per SRV record found (or one saying there were none). The
 * resolver answers a domain without records with {domain, port}: port 0
 * for the xmpps lookup, 5269 (the A/AAAA fallback) for the other. */
static void report_srv(struct s2s_out *o, int direct, int status,
                       const struct xs_dns_target *targets, size_t n)
{
    if (!o->probe)
        return;
    const char *svc = direct ? "_xmpps-server._tcp" : "_xmpp-server._tcp";
    char detail[400];
    int fallback = status == 0 && n == 1 && !strcmp(targets[0].host, o->remote) &&
                   targets[0].port == (direct ? 0 : 5269) && targets[0].priority == 0 &&
                   targets[0].weight == 0;
    if (status != 0 || n == 0 || fallback) {
        snprintf(detail, sizeof detail, "%s.%.200s: %s", svc, o->remote,
                 status == 0 ? "no records" : xs_strerror(status));
        report(o, XS_PROBE_SRV, status == 0, direct, detail, NULL);
        return;
    }
    for (size_t i = 0; i < n && i < OUT_MAX_TARGETS; i++) {
        snprintf(detail, sizeof detail, "%s.%.200s: %u %u %u %.150s", svc, o->remote,
                 targets[i].priority, targets[i].weight, targets[i].port, targets[i].host);
        report(o, XS_PROBE_SRV, 1, direct, detail, NULL);
    }
}

static void on_resolved(void *ud, int status, const struct xs_dns_target *targets, size_t n)
{
    struct s2s_out *o = ud;
    o->dns = NULL;
    report_srv(o, 0, status, targets, n);
    size_t have = o->n_targets; /* Direct TLS targets found first */
    if ((status != 0 || n == 0) && have > 0) {
        set_state(o, OUT_CONNECTING, "resolved (direct tls only)");
        try_next_target(o);
        return;
    }
    if (status != 0 || n == 0) {
        xs_log(XS_LOG_WARN, "s2s.out.dns", "stream=out%llu remote=%s result=%s",
               (unsigned long long)o->serial, o->remote, xs_errname(status));
        /* RFC 7247 §7.1 note 4: a domain that does not exist is
         * remote-server-not-found (404), one whose DNS does not answer is
         * remote-server-timeout (408), worth trying again later. */
        if (status == XS_ETIMEOUT)
            out_abort(o, XS_COND_REMOTE_SERVER_TIMEOUT, "the remote domain's DNS did not answer",
                      NULL);
        else
            out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND, "the remote domain could not be resolved",
                      NULL);
        return;
    }
    size_t room = OUT_MAX_TARGETS - have;
    size_t take = n < room ? n : room;
    memcpy(o->targets + have, targets, take * sizeof *targets);
    o->n_targets = have + take;
    set_state(o, OUT_CONNECTING, "resolved");
    try_next_target(o);
}

/* XEP-0368: _xmpps-server records come first (TLS from the first byte),
 * then _xmpp-server's with STARTTLS. A domain without xmpps records answers
 * with the port-0 fallback, which is not a target. Whatever this lookup
 * says, the xmpp-server lookup follows. */
static void on_resolved_direct(void *ud, int status, const struct xs_dns_target *targets, size_t n)
{
    struct s2s_out *o = ud;
    o->dns = NULL;
    report_srv(o, 1, status, targets, n);
    for (size_t i = 0; status == 0 && i < n && o->n_targets < OUT_MAX_TARGETS / 2; i++) {
        if (targets[i].port == 0)
            continue;
        o->targets[o->n_targets] = targets[i];
        o->direct[o->n_targets++] = 1;
    }
    if (o->n_targets > 0)
        xs_log(XS_LOG_INFO, "s2s.out.dns", "stream=out%llu remote=%s direct_tls=%zu first=%s:%u",
               (unsigned long long)o->serial, o->remote, o->n_targets, o->targets[0].host,
               o->targets[0].port);
    if (xs_dns_srv(o->x->loop, "xmpp-server", o->remote, 5269, on_resolved, o, &o->dns) != 0) {
        o->dns = NULL;
        on_resolved(o, XS_EDNS, NULL, 0);
    }
}

struct s2s_out *xs_s2s_out_find(struct xs_xmpp *x, const char *local, const char *remote)
{
    for (struct s2s_out *o = x->outs; o; o = o->next)
        if (o->state != OUT_CLOSED && !strcmp(o->local, local) && !strcmp(o->remote, remote))
            return o;
    return NULL;
}

struct s2s_out *xs_s2s_out_new(struct xs_xmpp *x, const char *local, const char *remote)
{
    if (x->closing || !xs_xmpp_out_room(x))
        return NULL;
    /* Never a stream for a domain we do not serve or to one that is not (or,
     * after a reload, no longer) a partner: it would sign dialback keys for,
     * or talk to, whoever the caller named (audit L1, L5). */
    const struct xs_partner *p = xs_policy_partner(x->policy, remote);
    int open_fed = p && !strcmp(p->domain, "*");
    const char *refusal = !xs_policy_is_local_domain(x->policy, local) ? "not-local"
                          : !p                                         ? "not-a-partner"
                          : open_fed && xs_net_is_ip_literal(remote)   ? "ip-literal"
                                                                       : NULL;
    if (refusal) {
        xs_log(XS_LOG_WARN, "s2s.out.refused", "local=%s remote=%s reason=%s", local, remote,
               refusal);
        return NULL;
    }
    struct s2s_out *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->x = x;
    o->serial = ++x->next_serial;
    o->since = xs_xmpp_wall_now();
    xs_sm_out_init(&o->sm);
    snprintf(o->local, sizeof o->local, "%s", local);
    snprintf(o->remote, sizeof o->remote, "%s", remote);
    o->public_only = open_fed;
    snprintf(o->route_host, sizeof o->route_host, "%s", p->route_host ? p->route_host : "");
    o->route_port = p->route_port;
    o->tls_req = p->tls;
    o->sasl_req = p->sasl;
    o->verify = p->verify;
    o->dialback = p->dialback;
    o->next = x->outs;
    x->outs = o;
    x->n_streams++;
    xs_metrics_stream_opened(XS_METRICS_OUT);
    o->last_activity = xs_xmpp_now(x);
    o->deadline = o->last_activity + x->cfg->xmpp_connect_timeout;
    o->state = OUT_RESOLVING;
    xs_log(XS_LOG_INFO, "s2s.out.state",
           "stream=out%llu local=%s remote=%s from=- to=resolving reason=new",
           (unsigned long long)o->serial, local, remote);
    if (p->route_host) {
        snprintf(o->targets[0].host, sizeof o->targets[0].host, "%s", p->route_host);
        o->targets[0].port = (uint16_t)p->route_port;
        o->n_targets = 1;
        set_state(o, OUT_CONNECTING, "static route");
        return try_next_target(o) == 0 ? o : NULL;
    }
    int direct = o->tls_req != XS_TLS_NONE;
    if (xs_dns_srv(x->loop, direct ? "xmpps-server" : "xmpp-server", remote, direct ? 0 : 5269,
                   direct ? on_resolved_direct : on_resolved, o, &o->dns) != 0) {
        o->dns = NULL;
        out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND, "name resolution could not start", NULL);
        return NULL;
    }
    return o;
}

void xs_s2s_out_send(struct s2s_out *o, const char *data, size_t len, const char *id,
                     xs_done_cb done, void *ud)
{
    if (o->state == OUT_ESTABLISHED) {
        /* Stanzas the peer has not acknowledged are held too: a peer that
         * stops acknowledging fills this and new stanzas are refused. The
         * bound is its own, not xmpp.queue_max: at speed the acknowledgement
         * trails by a round trip's worth of stanzas, and the records are
         * small (the bytes are bounded by the link). */
        if (o->unflushed.n + o->unacked.n >= XS_S2S_INFLIGHT_MAX) {
            double now = xs_xmpp_now(o->x);
            o->congested_unlogged++;
            if (now - o->congested_logged_at >= 1.0) {
                xs_log(XS_LOG_WARN, "s2s.out.congested",
                       "stream=out%llu remote=%s unwritten=%zu unacked=%zu result=refused "
                       "refused=%lu",
                       (unsigned long long)o->serial, o->remote, o->unflushed.n, o->unacked.n,
                       o->congested_unlogged);
                o->congested_logged_at = now;
                o->congested_unlogged = 0;
            }
            complete(o, done, ud, id, XS_COND_RESOURCE_CONSTRAINT,
                     "the stream to the remote server is congested");
            return;
        }
        /* Only the id and callback are kept; the bytes go to the link. The
         * record is made first, so that nothing is written that could not
         * be accounted for. */
        struct out_item *it = item_new(data, 0, id, done, ud);
        if (!it) {
            xs_log(XS_LOG_ERROR, "s2s.out.send", "stream=out%llu result=failed reason=oom",
                   (unsigned long long)o->serial);
            complete(o, done, ud, id, XS_COND_RESOURCE_CONSTRAINT, "out of memory");
            return;
        }
        int rc = xs_link_write(o->link, data, len);
        o->last_activity = xs_xmpp_now(o->x);
        if (rc != 0) {
            complete(o, done, ud, id, XS_COND_RESOURCE_CONSTRAINT,
                     "the stream to the remote server is congested");
            free(it);
            write_failed(o, rc);
            return;
        }
        after_write(o, it);
        return;
    }
    if (o->state == OUT_CLOSED || o->queue.n >= o->x->cfg->xmpp_queue_max) {
        complete(o, done, ud, id,
                 o->state == OUT_CLOSED ? o->fail_cond : XS_COND_RESOURCE_CONSTRAINT,
                 o->state == OUT_CLOSED ? o->fail_text
                                        : "too many stanzas waiting for the remote server");
        return;
    }
    struct out_item *it = item_new(data, len, id, done, ud);
    if (!it) {
        complete(o, done, ud, id, XS_COND_RESOURCE_CONSTRAINT, "out of memory");
        return;
    }
    list_push(&o->queue, it);
}

static struct out_item *list_take_id(struct out_list *l, const char *id)
{
    for (struct out_item **pp = &l->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
        struct out_item *it = *pp;
        if (!it->done || strcmp(it->id, id) != 0)
            continue;
        *pp = it->next;
        if (l->tail == it)
            l->tail = prev;
        l->n--;
        return it;
    }
    return NULL;
}

int xs_s2s_out_error(struct s2s_out *o, const char *id, enum xs_cond cond, const char *text)
{
    if (!id || !*id)
        return 0;
    /* The peer may answer before our write callback has run. */
    struct out_item *it = list_take_id(&o->written, id);
    if (!it)
        it = list_take_id(&o->unacked, id);
    if (!it)
        it = list_take_id(&o->unflushed, id);
    if (!it)
        return 0;
    it->done(it->ud, cond, text);
    free(it);
    return 1;
}

void xs_s2s_out_expire(struct s2s_out *o, double now)
{
    while (o->sm.state == XS_SM_REQUESTED && o->unacked.head && o->unacked.head->deadline <= now) {
        struct out_item *it = list_pop(&o->unacked);
        it->done(it->ud, XS_COND_NONE, NULL);
        free(it);
    }
    while (o->written.head && o->written.head->deadline <= now) {
        struct out_item *it = list_pop(&o->written);
        it->done(it->ud, XS_COND_NONE, NULL);
        free(it);
    }
}

void xs_s2s_out_metrics(const struct s2s_out *o)
{
    enum xs_metrics_stream_state st;
    switch (o->state) {
    case OUT_RESOLVING:
    case OUT_CONNECTING:
    case OUT_TLS_HANDSHAKE:
        st = XS_MSTREAM_CONNECTING;
        break;
    case OUT_ESTABLISHED:
        st = XS_MSTREAM_ESTABLISHED;
        break;
    case OUT_CLOSED:
        return;
    default:
        st = XS_MSTREAM_AUTHENTICATING;
    }
    enum xs_metrics_stream_auth auth = st != XS_MSTREAM_ESTABLISHED ? XS_MSTREAM_AUTH_NONE
                                       : o->sasl_done               ? XS_MSTREAM_AUTH_SASL_EXTERNAL
                                                                    : XS_MSTREAM_AUTH_DIALBACK;
    xs_metrics_collect_stream(xs_xmpp_metrics_partner(o->x, o->remote), XS_METRICS_OUT, st,
                              xs_xmpp_metrics_tls(o->link), auth);
}

int xs_s2s_out_info(const struct s2s_out *o, struct xs_stream_info *out)
{
    if (o->state == OUT_CLOSED)
        return -1;
    const char *state = o->state == OUT_ESTABLISHED ? "established"
                        : o->state == OUT_RESOLVING || o->state == OUT_CONNECTING ||
                                o->state == OUT_TLS_HANDSHAKE
                            ? "connecting"
                            : "authenticating";
    *out = (struct xs_stream_info){
        .outbound = 1,
        .local = o->local,
        .remote = o->remote,
        .peer = o->link ? xs_link_peer(o->link) : "",
        .state = state,
        .auth = o->state != OUT_ESTABLISHED ? "none"
                : o->sasl_done              ? "sasl_external"
                                            : "dialback",
        .since = o->since,
        .queued = o->queue.n + o->unflushed.n + o->written.n + o->unacked.n,
        .last_error = o->fail_text,
    };
    xs_xmpp_tls_version(o->link, out->tls);
    return 0;
}

double xs_s2s_out_next_expiry(const struct s2s_out *o)
{
    double next = o->written.head ? o->written.head->deadline : 0;
    if (o->sm.state == XS_SM_REQUESTED && o->unacked.head &&
        (next == 0 || o->unacked.head->deadline < next))
        next = o->unacked.head->deadline;
    return next;
}

void xs_s2s_out_verify(struct s2s_out *o, uint64_t in_serial, const char *id, const char *key,
                       xs_verify_cb cb)
{
    if (o->state == OUT_CLOSED || o->n_verifies == XS_S2S_VERIFY_MAX ||
        strlen(id) >= sizeof o->verifies[0].id || strlen(key) >= sizeof o->verifies[0].key) {
        cb(o->x, in_serial, o->local, o->remote, -1);
        return;
    }
    struct out_verify *v = &o->verifies[o->n_verifies++];
    v->in_serial = in_serial;
    v->cb = cb;
    v->sent = 0;
    snprintf(v->id, sizeof v->id, "%s", id);
    snprintf(v->key, sizeof v->key, "%s", key);
    /* Verification may travel on the stream before our own dialback is done. */
    if (o->dialback_sent && o->state != OUT_CLOSED)
        send_verifies(o);
}

int xs_s2s_out_sweep(struct s2s_out *o, double now)
{
    if (o->state == OUT_CLOSED)
        return 0;
    if (o->state != OUT_ESTABLISHED && now > o->deadline) {
        out_abort(o, XS_COND_REMOTE_SERVER_TIMEOUT, "stream set-up took too long",
                  "connection-timeout");
        return 0;
    }
    if (o->state == OUT_ESTABLISHED && o->sm.state == XS_SM_REQUESTED &&
        now - o->sm.asked_at > XS_SM_ANSWER_TIMEOUT) {
        sm_fall_back(o, "no answer to enable");
        return 0;
    }
    if (o->state == OUT_ESTABLISHED && o->sm.state == XS_SM_ON && o->sm.awaiting &&
        now - o->sm.asked_at > XS_SM_ANSWER_TIMEOUT) {
        out_abort(o, XS_COND_REMOTE_SERVER_TIMEOUT,
                  "the remote server did not acknowledge our stanzas", "connection-timeout");
        return 0;
    }
    if (o->state == OUT_ESTABLISHED && now - o->last_activity > o->x->cfg->xmpp_idle_timeout) {
        fail_verifies(o);
        set_state(o, OUT_CLOSED, "idle");
        xs_xml_parser_stop(o->parser);
        xs_s2s_close_stream(o->link);
        return 0;
    }
    if (o->state != OUT_ESTABLISHED || now - o->last_activity < XS_S2S_TRIM_AFTER || !o->parser ||
        !xs_xml_parser_trim(o->parser))
        return 0;
    xs_log(XS_LOG_DEBUG, "s2s.out.quiet", "stream=out%llu result=parser-released",
           (unsigned long long)o->serial);
    return 1;
}

/* Ends this stream and hands what is still queued to a fresh one set up
 * under the current partner entry. Verifications in flight fail: the peer's
 * inbound stream learns it and may ask again. */
static void out_restart(struct s2s_out *o, const char *why)
{
    xs_log(XS_LOG_INFO, "s2s.out.restart", "stream=out%llu local=%s remote=%s reason=%s-changed",
           (unsigned long long)o->serial, o->local, o->remote, why);
    /* Both branches below mark the old stream closed, so the new one is
     * what xs_s2s_out_find returns from now on. */
    struct s2s_out *n = o->queue.head ? xs_s2s_out_new(o->x, o->local, o->remote) : NULL;
    if (n) {
        n->queue = o->queue;
        o->queue = (struct out_list){0};
    }
    if (o->link && o->state == OUT_ESTABLISHED) {
        /* What was written settles when the link closes, by the usual rule. */
        fail_verifies(o);
        set_state(o, OUT_CLOSED, "partner settings changed");
        xs_xml_parser_stop(o->parser);
        xs_s2s_close_stream(o->link);
        return;
    }
    out_abort(o, XS_COND_REMOTE_SERVER_NOT_FOUND,
              n ? "partner settings changed" : "partner settings changed; no new stream", NULL);
}

void xs_s2s_out_recheck(struct s2s_out *o)
{
    if (o->state == OUT_CLOSED)
        return;
    const struct xs_partner *p = xs_policy_partner(o->x->policy, o->remote);
    if (!p || !xs_policy_is_local_domain(o->x->policy, o->local)) {
        xs_log(XS_LOG_WARN, "s2s.out.refused", "stream=out%llu remote=%s reason=partner-removed",
               (unsigned long long)o->serial, o->remote);
        out_abort(o, XS_COND_FORBIDDEN, "domain is no longer a federated partner",
                  "policy-violation");
        return;
    }
    const char *changed =
        strcmp(o->route_host, p->route_host ? p->route_host : "") || o->route_port != p->route_port
            ? "route"
        : o->tls_req != p->tls       ? "tls"
        : o->sasl_req != p->sasl     ? "sasl"
        : o->verify != p->verify     ? "verify"
        : o->dialback != p->dialback ? "dialback"
                                     : NULL;
    if (changed)
        out_restart(o, changed);
}

void xs_s2s_out_shutdown(struct s2s_out *o)
{
    /* Every sender hears now (see xs_xmpp_close): what the kernel has not
     * confirmed yet fails, since the link may drop it. */
    settle_written(o, XS_COND_SERVICE_UNAVAILABLE, "the gateway is shutting down", 1);
    if (o->state != OUT_CLOSED)
        out_abort(o, XS_COND_SERVICE_UNAVAILABLE, "the gateway is shutting down",
                  "system-shutdown");
}

size_t xs_s2s_out_pending(const struct s2s_out *o)
{
    return o->queue.n + o->unflushed.n + o->unacked.n;
}

struct s2s_out *xs_s2s_out_next(struct s2s_out *o)
{
    return o->next;
}

int xs_xmpp_probe(struct xs_xmpp *x, const char *local, const char *remote, xs_probe_cb cb,
                  void *ud)
{
    if (xs_s2s_out_find(x, local, remote))
        return XS_ESTATE;
    struct s2s_out *o = xs_s2s_out_new(x, local, remote);
    if (!o)
        return XS_EPOLICY;
    /* The resolver and the connector never call back before they return,
     * so no step has happened yet. */
    o->probe = cb;
    o->probe_ud = ud;
    if (o->route_host[0]) {
        char detail[300];
        snprintf(detail, sizeof detail, "static route %.200s:%d (no DNS)", o->route_host,
                 o->route_port);
        report(o, XS_PROBE_SRV, 1, 0, detail, NULL);
    }
    return 0;
}
