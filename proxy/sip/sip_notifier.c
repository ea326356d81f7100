/* The notifier half of the SIP presence layer (sip_presence.h): a SIP user
 * watches an XMPP user, and the gateway is the notifier (RFC 6665 §4.2):
 * it answers the SUBSCRIBE, asks the XMPP user (RFC 8048 §5), and sends the
 * NOTIFYs that carry the answer and every presence the XMPP user sends to
 * this watcher, as PIDF (RFC 3863) with RPID (RFC 4480). */
#include "sip/sip_presence_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/random.h"
#include "sip/sip.h"

#define URI_BUF 600
/* After the XMPP user's approval, the first active NOTIFY waits this long
 * for the presence their server sends right after it (RFC 6121 §3.1.5), so
 * that it carries the current state rather than none. */
#define APPROVAL_WAIT_MS 200

/* Why a subscription ends (sub.ending): the reason of its last NOTIFY. */
enum {
    ENDING_REJECTED = 1,     /* refused or cancelled by the XMPP user: reason=rejected */
    ENDING_TIMEOUT = 2,      /* expired, or a fetch answered: reason=timeout */
    ENDING_NORESOURCE = 3,   /* the XMPP side could not be reached: reason=noresource */
    ENDING_UNSUBSCRIBED = 4, /* the watcher's un-SUBSCRIBE: reason=timeout (RFC 6665 4.2.1.4) */
};

static void send_notify(struct sub *s);

static uint64_t jitter(uint64_t lo, uint64_t hi)
{
    uint32_t r = 0;
    xs_random_bytes(&r, sizeof r);
    return hi > lo ? lo + r % (hi - lo) : lo;
}

/* The document of the best resource: available ones first, then the
 * highest priority, then the newest. NULL when the watcher has seen none. */
static const char *best_doc(const struct sub *s)
{
    const struct sub_resource *best = NULL;
    for (int i = 0; i < SUB_RESOURCES; i++) {
        const struct sub_resource *r = &s->res[i];
        if (!r->pidf)
            continue;
        if (!best || r->open > best->open ||
            (r->open == best->open && (r->priority > best->priority ||
                                       (r->priority == best->priority && r->seq > best->seq))))
            best = r;
    }
    return best ? best->pidf : NULL;
}

/* FNV-1a: tells documents apart for "did it change"; a collision only
 * skips one NOTIFY of the presentity's own making. */
static uint64_t doc_hash(const char *d)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)d; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

const char *xs__notifier_doc(const struct sub *s)
{
    const char *d = best_doc(s);
    return d ? d : s->last_pidf;
}

/* Tells the XMPP user, from the SIP watcher. */
static void tell_presentity(struct sub *s, enum xs_event_kind kind, const char *type)
{
    xs__sub_submit(s->pr, xs__sub_event(kind, type, s->watcher, s->presentity, NULL), NULL, NULL);
}

static void expire_later(struct sub *s)
{
    int64_t left = s->expires_at - xs__sub_now();
    xs__sub_due(s, DUE_EXPIRE, left > 0 ? (uint64_t)left * 1000 : 0);
}

/* ---- NOTIFY ---- */

static int build_notify(void *ud, const struct xs_sip_req_params *p, struct xs_buf *out)
{
    struct sub *s = ud;
    if (!s->pr)
        return XS_ESTATE;
    char contact[URI_BUF], headers[200];
    xs__sub_contact(s->pr, p, contact, sizeof contact);
    int64_t left = s->expires_at - xs__sub_now();
    if (left < 0)
        left = 0;
    const char *doc = NULL;
    if (s->state == XS_SUB_STATE_TERMINATED)
        snprintf(headers, sizeof headers,
                 "Event: presence\r\nSubscription-State: terminated;reason=%s\r\n",
                 s->ending == ENDING_TIMEOUT || s->ending == ENDING_UNSUBSCRIBED ? "timeout"
                 : s->ending == ENDING_NORESOURCE                                ? "noresource"
                                                                                 : "rejected");
    else
        snprintf(headers, sizeof headers,
                 "Event: presence\r\nSubscription-State: %s;expires=%lld\r\n",
                 s->state == XS_SUB_STATE_ACTIVE ? "active" : "pending", (long long)left);
    if (s->state == XS_SUB_STATE_ACTIVE) {
        doc = best_doc(s);
        if (!doc)
            doc = s->last_pidf;
    } else if (s->fetch) {
        doc = s->last_pidf;
    }
    s->d.local_cseq++;
    int rc =
        xs_sip_dialog_write(&s->d, "NOTIFY", p, contact, headers,
                            doc ? "application/pidf+xml" : NULL, doc, doc ? strlen(doc) : 0, out);
    if (!rc && doc) {
        /* What was sent is remembered by its hash: the text stays with the
         * resource it came from, and only a restored subscription, which
         * has no resource yet, keeps a copy of its own. */
        s->sent_hash = doc_hash(doc);
        if (doc != s->last_pidf) {
            free(s->last_pidf);
            s->last_pidf = NULL;
        }
    }
    if (!rc)
        xs__sub_store(s);
    return rc;
}

static void on_notify_final(void *ud, const osip_message_t *resp, enum xs_cond cond,
                            const char *text)
{
    struct sub *s = ud;
    (void)cond;
    s->busy = 0;
    if (!s->pr) {
        free(s);
        return;
    }
    int code = resp ? resp->status_code : 0;
    if (s->ending) {
        /* An un-SUBSCRIBE was logged when it came. */
        if (s->ending != ENDING_UNSUBSCRIBED)
            xs__sub_log(s, "ended", s->ending == ENDING_TIMEOUT ? "expired" : "terminated");
        xs__sub_free(s);
        return;
    }
    if (code >= 200 && code < 300) {
        if (s->again) {
            s->again = 0;
            send_notify(s);
        } else {
            expire_later(s);
        }
        return;
    }
    /* RFC 6665 §4.2.2: a NOTIFY answered with 481, or with no answer at
     * all, or refused outright, ends the subscription; the XMPP user's
     * roster learns it as an unsubscribe from the watcher (RFC 8048 §5.3). */
    char why[200];
    snprintf(why, sizeof why, "NOTIFY %s%d %s", code ? "answered " : "failed ", code,
             code ? "" : (text ? text : ""));
    s->state = XS_SUB_STATE_TERMINATED;
    xs__sub_log(s, "ended", why);
    tell_presentity(s, XS_EVENT_SUBSCRIPTION, "unsubscribe");
    xs__sub_free(s);
}

static const struct xs__sip_req_ops notify_ops = {build_notify, on_notify_final};

static void send_notify(struct sub *s)
{
    if (s->busy) {
        s->again = 1;
        return;
    }
    s->busy = 1;
    s->pr->notifies_sent++;
    xs__sip_client_request(s->pr->t, "NOTIFY", &notify_ops, s);
}

/* Ends the subscription with a last NOTIFY (terminated; ending says why). */
static void terminate(struct sub *s, int ending, const char *reason)
{
    s->state = XS_SUB_STATE_TERMINATED;
    s->ending = ending;
    xs__sub_log(s, "terminated", reason);
    xs__sub_due(s, DUE_NONE, 0);
    send_notify(s);
}

/* ---- SUBSCRIBE ---- */

struct ask_ctx {
    struct xs__sip_presence *pr;
    char *key;
};

/* The router's answer for the subscribe event sent to the XMPP user. */
static void on_asked(void *ud, enum xs_cond cond, const char *text)
{
    struct ask_ctx *c = ud;
    struct xs__sip_presence *pr = c->pr;
    struct xs__sip_tnode *n = pr->closing ? NULL : xs__sip_table_find(&pr->by_key, c->key);
    struct sub *s = n ? (struct sub *)((char *)n - offsetof(struct sub, by_key)) : NULL;
    free(c->key);
    free(c);
    if (cond == XS_COND_NONE || !s)
        return;
    if (s->submitting) {
        /* Refused while submitting: the SUBSCRIBE itself is answered. */
        pr->sync_refused = 1;
        pr->sync_cond = cond;
        snprintf(pr->sync_text, sizeof pr->sync_text, "%s", text ? text : xs_cond_name(cond));
        return;
    }
    if (s->state == XS_SUB_STATE_PENDING)
        terminate(s,
                  cond == XS_COND_REMOTE_SERVER_NOT_FOUND ||
                          cond == XS_COND_REMOTE_SERVER_TIMEOUT || cond == XS_COND_ITEM_NOT_FOUND
                      ? ENDING_NORESOURCE
                      : ENDING_REJECTED,
                  text ? text : xs_cond_name(cond));
}

/* The watcher and presentity of a SUBSCRIBE, as bare URIs. */
static int parties(const osip_message_t *req, char *watcher, char *presentity, size_t n)
{
    char *w = req->from ? xs_sip_uri_for_event(req->from->url) : NULL;
    char *p = req->to ? xs_sip_uri_for_event(req->to->url) : NULL;
    char gr[256];
    int rc = w && p ? 0 : XS_EINVAL;
    if (!rc)
        rc = xs__sub_split_gr(w, watcher, n, gr, sizeof gr);
    if (!rc)
        rc = xs__sub_split_gr(p, presentity, n, gr, sizeof gr);
    free(w);
    free(p);
    return rc;
}

static void answer_headers(struct sub *s, const osip_message_t *req, long granted, char *extra,
                           size_t n)
{
    char contact[URI_BUF];
    xs__sub_contact(s->pr, NULL, contact, sizeof contact);
    int w = snprintf(extra, n, "Expires: %ld\r\nContact: <%s>\r\n", granted, contact);
    if (w > 0 && (size_t)w < n && req)
        xs_sip_record_route_lines(req, extra + w, n - (size_t)w);
}

/* A SUBSCRIBE inside a dialog we hold: a refresh or an un-SUBSCRIBE. */
static int in_dialog(struct xs__sip_presence *pr, const osip_message_t *req, const char *ltag,
                     long asked, char *extra, size_t extra_n, const char **why)
{
    char cid[XS_SIP_DIALOG_CALLID_MAX + 2];
    snprintf(cid, sizeof cid, "%s%s%s", req->call_id->number, req->call_id->host ? "@" : "",
             req->call_id->host ? req->call_id->host : "");
    struct sub *s = xs__sub_find_dialog(pr, cid, ltag);
    if (!s || s->role != XS_SUB_WATCH_XMPP || s->ending) {
        *why = "no such subscription";
        return 481;
    }
    if (asked > 0 && asked < (long)pr->min_expires) {
        snprintf(extra, extra_n, "Min-Expires: %u\r\n", pr->min_expires);
        *why = "subscription interval too brief";
        return 423;
    }
    if (xs_sip_dialog_accept(&s->d, req) != 0) {
        *why = "CSeq lower than a previous request's";
        return 500;
    }
    if (asked == 0) {
        /* The watcher ends it (§4.2.1.4); the XMPP user's server hears it
         * as an unsubscribe from the watcher (RFC 8048 §5.3). */
        answer_headers(s, NULL, 0, extra, extra_n);
        tell_presentity(s, XS_EVENT_SUBSCRIPTION, "unsubscribe");
        s->state = XS_SUB_STATE_TERMINATED;
        s->ending = ENDING_UNSUBSCRIBED;
        xs__sub_log(s, "unsubscribed", "Expires: 0 from the watcher");
        xs__sub_due(s, DUE_SEND, 0);
        return 200;
    }
    long granted = asked < 0 ? (long)pr->expires : asked;
    if (granted > (long)pr->max_expires)
        granted = pr->max_expires;
    s->expires_at = xs__sub_now() + granted;
    xs__sub_store(s);
    answer_headers(s, NULL, granted, extra, extra_n);
    /* Every refresh is followed by a NOTIFY with the current state (§4.2.1.2). */
    if (!s->busy)
        xs__sub_due(s, DUE_SEND, 0);
    else
        s->again = 1;
    return 200;
}

/* The dialog a new SUBSCRIBE creates at us, in s (whose URIs are set). */
static int dialog_for(struct sub *s, const osip_message_t *req, const char *to_tag)
{
    int rc = xs_sip_dialog_from_request(&s->d, req);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.local_tag, to_tag);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.local_uri, s->presentity);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.remote_uri, s->watcher);
    if (!rc) {
        /* A Call-ID is kept whole or not at all: a cut one would name a
         * dialog the watcher does not know. */
        char cid[XS_SIP_DIALOG_CALLID_MAX + 2];
        int n =
            snprintf(cid, sizeof cid, "%s%s%s", req->call_id->number, req->call_id->host ? "@" : "",
                     req->call_id->host ? req->call_id->host : "");
        rc = n < 0 || (size_t)n > XS_SIP_DIALOG_CALLID_MAX ? XS_ELIMIT
                                                           : xs_sip_dialog_set(&s->d.call_id, cid);
    }
    if (!rc)
        xs__sub_index_dialog(s);
    return rc;
}

/* A fetch (SUBSCRIBE with Expires: 0, RFC 6665 §4.4.3) of an XMPP user's
 * state: answered with one NOTIFY in a dialog of its own, carrying the
 * state only to a watcher the user approved; nothing else is revealed. */
static int fetch(struct xs__sip_presence *pr, const osip_message_t *req, const char *to_tag,
                 const char *watcher, const char *presentity, char *extra, size_t extra_n,
                 const char **why)
{
    struct sub *known = xs__sub_find(pr, XS_SUB_WATCH_XMPP, watcher, presentity);
    if (!known || known->state != XS_SUB_STATE_ACTIVE) {
        *why = "no approved subscription to fetch from";
        return 403;
    }
    struct sub *f = xs__sub_new_fetch(pr, watcher, presentity);
    if (!f) {
        *why = "too many fetches";
        snprintf(extra, extra_n, "Retry-After: 5\r\n");
        return 503;
    }
    f->role = XS_SUB_WATCH_XMPP;
    const char *doc = best_doc(known);
    if (!doc)
        doc = known->last_pidf;
    int rc = dialog_for(f, req, to_tag);
    if (!rc && doc && !(f->last_pidf = strdup(doc)))
        rc = XS_ENOMEM;
    if (rc) {
        xs__sub_free(f);
        *why = rc == XS_ENOMEM   ? "out of memory"
               : rc == XS_ELIMIT ? "Call-ID or Record-Route too long for a dialog"
                                 : "SUBSCRIBE without a usable Contact or From tag";
        return rc == XS_ENOMEM ? 500 : 400;
    }
    f->state = XS_SUB_STATE_TERMINATED;
    f->ending = ENDING_TIMEOUT;
    answer_headers(f, req, 0, extra, extra_n);
    xs__sub_due(f, DUE_SEND, 0);
    return 200;
}

int xs__notifier_subscribe(struct xs__sip_presence *pr, const osip_message_t *req,
                           const char *to_tag, char *extra, size_t extra_n, const char **why)
{
    long asked = xs_sip_header_seconds(req, "expires", "x");
    const char *ltag = xs_sip_to_tag(req);
    if (ltag)
        return in_dialog(pr, req, ltag, asked, extra, extra_n, why);
    char watcher[URI_BUF], presentity[URI_BUF];
    if (parties(req, watcher, presentity, sizeof watcher) != 0) {
        *why = "From or To is not a usable SIP address";
        return 400;
    }
    if (asked == 0)
        return fetch(pr, req, to_tag, watcher, presentity, extra, extra_n, why);
    if (asked > 0 && asked < (long)pr->min_expires) {
        snprintf(extra, extra_n, "Min-Expires: %u\r\n", pr->min_expires);
        *why = "subscription interval too brief";
        return 423;
    }
    long granted = asked < 0 ? (long)pr->expires : asked;
    if (granted > (long)pr->max_expires)
        granted = pr->max_expires;
    struct sub *old = xs__sub_find(pr, XS_SUB_WATCH_XMPP, watcher, presentity);
    enum xs_sub_state was = old ? old->state : XS_SUB_STATE_PENDING;
    const char *prev = old ? xs__notifier_doc(old) : NULL;
    char *last = prev ? strdup(prev) : NULL;
    if (old) {
        /* The watcher subscribes again in a new dialog (its UA restarted):
         * the new dialog replaces the old, which its UA has forgotten. */
        xs__sub_log(old, "replaced", "new SUBSCRIBE from the watcher");
        xs__sub_free(old);
    }
    const char *limit = NULL;
    struct sub *s = xs__sub_new(pr, XS_SUB_WATCH_XMPP, watcher, presentity, &limit);
    if (!s) {
        free(last);
        *why = limit;
        if (strstr(limit, "max_total") || strstr(limit, "memory")) {
            snprintf(extra, extra_n, "Retry-After: 60\r\n");
            return 503;
        }
        return 403;
    }
    s->last_pidf = last;
    int rc = dialog_for(s, req, to_tag);
    if (rc) {
        xs__sub_free(s);
        *why = rc == XS_ENOMEM   ? "out of memory"
               : rc == XS_ELIMIT ? "Call-ID or Record-Route too long for a dialog"
                                 : "SUBSCRIBE without a usable Contact or From tag";
        return rc == XS_ENOMEM ? 500 : 400;
    }
    s->expires_at = xs__sub_now() + granted;
    if (was == XS_SUB_STATE_ACTIVE) {
        /* Approved before, in the dialog it replaces: no need to ask the
         * XMPP user again. */
        s->state = XS_SUB_STATE_ACTIVE;
        xs__sub_log(s, "active", "re-subscribed by the watcher");
        xs__sub_store(s);
        answer_headers(s, req, granted, extra, extra_n);
        xs__sub_due(s, DUE_SEND, 0);
        tell_presentity(s, XS_EVENT_PRESENCE, "probe");
        return 200;
    }
    struct ask_ctx *c = calloc(1, sizeof *c);
    if (c) {
        c->pr = pr;
        c->key = strdup(s->key);
    }
    struct xs_event *ev =
        c && c->key ? xs__sub_event(XS_EVENT_SUBSCRIPTION, "subscribe", watcher, presentity, NULL)
                    : NULL;
    if (!ev) {
        if (c)
            free(c->key);
        free(c);
        xs__sub_free(s);
        *why = "out of memory";
        return 500;
    }
    pr->sync_refused = 0;
    s->submitting = 1;
    xs__sub_submit(pr, ev, on_asked, c);
    s->submitting = 0;
    if (pr->sync_refused) {
        xs__sub_free(s);
        *why = pr->sync_text;
        return xs_sip_cond_to_status(pr->sync_cond);
    }
    /* The policy may have approved it while it was submitted. */
    if (s->state == XS_SUB_STATE_PENDING)
        xs__sub_log(s, "pending", "asked the XMPP user");
    xs__sub_store(s);
    answer_headers(s, req, granted, extra, extra_n);
    /* The first NOTIFY goes out right after the 202 (§4.2.1.1). */
    xs__sub_due(s, DUE_SEND, 0);
    return 202;
}

/* ---- events from XMPP ---- */

static void on_subscribed(struct sub *s)
{
    if (s->state == XS_SUB_STATE_ACTIVE)
        return;
    s->state = XS_SUB_STATE_ACTIVE;
    xs__sub_log(s, "active", "approved by the XMPP user");
    xs__sub_store(s);
    if (s->busy)
        s->again = 1;
    else
        xs__sub_due(s, DUE_SEND, APPROVAL_WAIT_MS);
}

/* The document for one XMPP resource's presence (ev from the XMPP user to
 * this watcher, its PIDF fields filled by the policy). */
static char *doc_for(const struct sub *s, const struct xs_event *ev, const char *gr)
{
    enum xs_pidf_basic basic = XS_PIDF_OPEN;
    if (ev->basic && !strcmp(ev->basic, "closed"))
        basic = XS_PIDF_CLOSED;
    else if (!ev->basic && ev->type && !strcmp(ev->type, "unavailable"))
        basic = XS_PIDF_CLOSED;
    struct xs_buf b;
    xs_buf_init(&b, XS_PIDF_MAX_DOC);
    char tuple[XS_PIDF_TUPLE_ID_MAX + 1];
    /* A tuple id is an XML ID: the GRUU may not be one. */
    size_t n = 0;
    tuple[n++] = 't';
    for (const char *p = gr; *p && n < XS_PIDF_TUPLE_ID_MAX; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.')
            tuple[n++] = *p;
    tuple[n] = '\0';
    int rc = xs_pidf_write(s->presentity, tuple, basic, ev->note, ev->lang, ev->activities,
                           ev->availability, &b);
    char *doc = NULL;
    if (!rc && xs_buf_append(&b, "", 1) == 0)
        doc = strdup(b.data);
    xs_buf_free(&b);
    return doc;
}

static void on_presence(struct sub *s, const struct xs_event *ev, const char *gr)
{
    char *doc = doc_for(s, ev, gr);
    if (!doc) {
        xs_log(XS_LOG_WARN, "presence.notify", "result=dropped reason=\"document not written\"");
        return;
    }
    int open = !strstr(doc, "<basic>closed</basic>");
    struct sub_resource *slot = NULL;
    for (int i = 0; i < SUB_RESOURCES && !slot; i++)
        if (s->res[i].id && !strcmp(s->res[i].id, gr))
            slot = &s->res[i];
    for (int i = 0; i < SUB_RESOURCES && !slot; i++)
        if (!s->res[i].id)
            slot = &s->res[i];
    if (!slot) {
        slot = &s->res[0];
        for (int i = 1; i < SUB_RESOURCES; i++)
            if (s->res[i].seq < slot->seq)
                slot = &s->res[i];
    }
    if (!slot->id || strcmp(slot->id, gr) != 0) {
        free(slot->id);
        slot->id = strdup(gr);
    }
    free(slot->pidf);
    slot->pidf = doc;
    slot->open = open;
    slot->priority = ev->priority;
    slot->seq = ++s->res_seq;
    const char *best = best_doc(s);
    if (s->state != XS_SUB_STATE_ACTIVE || (best && doc_hash(best) == s->sent_hash))
        return;
    if (s->busy)
        s->again = 1;
    else if (s->due != DUE_SEND)
        xs__sub_due(s, DUE_SEND, 0);
}

void xs__notifier_event(struct xs__sip_presence *pr, struct xs_event *ev)
{
    char watcher[URI_BUF], presentity[URI_BUF], gr[256], gr2[256];
    if (!ev->from || !ev->to || !ev->type ||
        xs__sub_split_gr(ev->from, presentity, sizeof presentity, gr, sizeof gr) != 0 ||
        xs__sub_split_gr(ev->to, watcher, sizeof watcher, gr2, sizeof gr2) != 0) {
        xs_event_free(ev);
        return;
    }
    struct sub *s = xs__sub_find(pr, XS_SUB_WATCH_XMPP, watcher, presentity);
    char qf[160], qt[160];
    if (!s || s->ending) {
        /* Directed presence, or an answer nobody asked for: presence goes
         * only where a subscription entitles it (RFC 8048 §6). */
        XS_LOG(XS_LOG_DEBUG, "presence.in",
               "from=%s to=%s type=%s result=not-carried "
               "reason=\"no subscription of this SIP user\"",
               xs_log_quote(qf, sizeof qf, ev->from), xs_log_quote(qt, sizeof qt, ev->to),
               ev->type);
        xs_event_free(ev);
        return;
    }
    if (ev->kind == XS_EVENT_SUBSCRIPTION) {
        if (!strcmp(ev->type, "subscribed"))
            on_subscribed(s);
        else if (!strcmp(ev->type, "unsubscribed"))
            terminate(s, ENDING_REJECTED, "refused or cancelled by the XMPP user");
    } else if (ev->kind == XS_EVENT_PRESENCE &&
               (!strcmp(ev->type, "available") || !strcmp(ev->type, "unavailable"))) {
        if (s->state == XS_SUB_STATE_ACTIVE)
            on_presence(s, ev, gr);
    }
    xs_event_free(ev);
}

/* ---- timers and restore ---- */

void xs__notifier_timer(struct sub *s, enum sub_due due)
{
    if (due == DUE_EXPIRE) {
        /* The watcher did not refresh in time (§4.2.2): the subscription
         * ends, and the XMPP user hears it as an unsubscribe. */
        tell_presentity(s, XS_EVENT_SUBSCRIPTION, "unsubscribe");
        terminate(s, ENDING_TIMEOUT, "expired");
        return;
    }
    if (s->restored) {
        /* After a restart: the XMPP user's current state is asked for; what
         * changed since goes out as a NOTIFY when it comes. */
        s->restored = 0;
        if (s->state == XS_SUB_STATE_ACTIVE)
            tell_presentity(s, XS_EVENT_PRESENCE, "probe");
        /* Presence that came before this timer found it due already and
         * waited for it (on_presence): it goes out now, not with the next. */
        const char *best = best_doc(s);
        if (s->state == XS_SUB_STATE_ACTIVE && s->res_seq && best &&
            doc_hash(best) != s->sent_hash) {
            send_notify(s);
            return;
        }
        expire_later(s);
        return;
    }
    send_notify(s);
}

void xs__notifier_restored(struct sub *s)
{
    xs__sub_due(s, DUE_SEND, jitter(0, xs__sub_restore_spread(s)));
}
