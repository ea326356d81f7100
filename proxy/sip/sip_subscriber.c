/* The subscriber half of the SIP presence layer (sip_presence.h): an XMPP
 * user watches a SIP user, and the gateway holds the SIP subscription
 * (RFC 6665 §4.1) on their behalf: SUBSCRIBE, its refreshes and its end,
 * and the NOTIFYs that come back, turned into subscription answers and
 * presence for the XMPP user (RFC 8048 §4, §5). Probes are answered here
 * too, from the state of the prober's own subscription or by a one-time
 * fetch. */
#include "sip/sip_presence_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/log.h"
#include "core/random.h"

/* Attempts after a failed SUBSCRIBE (timeout, 5xx) are spaced 5 s, 10 s,
 * ... up to 5 minutes, and go on at that pace: an edge that comes back
 * finds its subscriptions again without anyone signing in. */
#define RETRY_FIRST_MS 5000
#define RETRY_MAX_MS 300000
#define FETCH_WAIT_MS 32000
#define URI_BUF 600

static void send_subscribe(struct sub *s);

static uint64_t jitter(uint64_t lo, uint64_t hi)
{
    uint32_t r = 0;
    xs_random_bytes(&r, sizeof r);
    return hi > lo ? lo + r % (hi - lo) : lo;
}

/* Refresh between 70% and 85% of the granted time: early enough for a
 * retry before expiry, spread so that subscriptions made together do not
 * all refresh together. */
static void schedule_refresh(struct sub *s, long granted)
{
    uint64_t g = (uint64_t)(granted > 0 ? granted : 1) * 1000;
    xs__sub_due(s, DUE_REFRESH, jitter(g * 70 / 100, g * 85 / 100));
}

static void new_dialog(struct sub *s)
{
    struct xs__sip_presence *pr = s->pr;
    if (s->dkey) {
        xs__sip_table_remove(&pr->by_dialog, &s->by_dialog);
        free(s->dkey);
        s->dkey = NULL;
    }
    char rnd[49], cid[320];
    xs_random_hex(rnd, 24);
    snprintf(cid, sizeof cid, "%.32s@%s", rnd, pr->host);
    char tag[17];
    snprintf(tag, sizeof tag, "%.16s", rnd + 32);
    int rc = xs_sip_dialog_set(&s->d.call_id, cid);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.local_tag, tag);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.remote_tag, NULL);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.route_set, NULL);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.remote_target, s->presentity);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.local_uri, s->watcher);
    rc = rc ? rc : xs_sip_dialog_set(&s->d.remote_uri, s->presentity);
    if (rc)
        xs_log(XS_LOG_ERROR, "presence.sub", "result=failed reason=\"out of memory\"");
    s->d.local_cseq = 0;
    s->d.remote_cseq = 0;
    xs__sub_index_dialog(s);
}

/* Tells the XMPP watcher, in presence from the SIP user. */
static void tell_watcher(struct sub *s, enum xs_event_kind kind, const char *type,
                         const struct xs_pidf *doc)
{
    xs__sub_submit(s->pr, xs__sub_event(kind, type, s->presentity, s->watcher, doc), NULL, NULL);
}

/* ---- SUBSCRIBE ---- */

static int build_subscribe(void *ud, const struct xs_sip_req_params *p, struct xs_buf *out)
{
    struct sub *s = ud;
    if (!s->pr)
        return XS_ESTATE;
    char contact[URI_BUF], headers[160];
    xs__sub_contact(s->pr, p, contact, sizeof contact);
    s->d.local_cseq++;
    snprintf(headers, sizeof headers,
             "Event: presence\r\nAccept: application/pidf+xml\r\nExpires: %u\r\n",
             s->ending || s->fetch ? 0 : s->asked);
    return xs_sip_dialog_write(&s->d, "SUBSCRIBE", p, contact, headers, NULL, NULL, 0, out);
}

/* The subscription is over for good: the XMPP watcher is told (unless it
 * asked for the end itself) and it is forgotten. */
static void end_sub(struct sub *s, const char *reason, int tell)
{
    s->state = XS_SUB_STATE_TERMINATED;
    xs__sub_log(s, "ended", reason);
    if (tell)
        tell_watcher(s, XS_EVENT_SUBSCRIPTION, "unsubscribed", NULL);
    xs__sub_free(s);
}

static void retry_later(struct sub *s, const char *reason)
{
    uint64_t wait = RETRY_FIRST_MS;
    for (unsigned i = 0; i < s->retries && wait < RETRY_MAX_MS; i++)
        wait *= 2;
    if (wait > RETRY_MAX_MS)
        wait = RETRY_MAX_MS;
    if (s->retries++ == 2 && s->state == XS_SUB_STATE_ACTIVE) {
        /* The third failure in a row: what the watcher was shown can no
         * longer be vouched for. */
        tell_watcher(s, XS_EVENT_PRESENCE, "unavailable", NULL);
        free(s->last_pidf);
        s->last_pidf = NULL;
    }
    xs__sub_log(s, "retry", reason);
    xs__sub_due(s, DUE_RETRY, jitter(wait, wait + wait / 4));
}

static void on_subscribe_final(void *ud, const osip_message_t *resp, enum xs_cond cond,
                               const char *text)
{
    struct sub *s = ud;
    s->busy = 0;
    if (!s->pr) {
        free(s);
        return;
    }
    int code = resp ? resp->status_code : 0;
    if (s->ending) {
        /* An un-SUBSCRIBE: whatever the answer, we are done with it. */
        s->state = XS_SUB_STATE_TERMINATED;
        xs__sub_log(s, "unsubscribed", code ? "answered" : text);
        xs__sub_free(s);
        return;
    }
    if (code >= 200 && code < 300) {
        if (!s->d.remote_tag && xs_sip_dialog_from_response(&s->d, resp) != 0) {
            /* A 2xx we cannot hold a dialog with (no Contact or To tag):
             * the NOTIFY may still set it up; until then nothing to refresh. */
            xs__sub_log(s, "accepted", "2xx without a usable dialog");
        }
        if (s->fetch) {
            xs__sub_due(s, DUE_EXPIRE, FETCH_WAIT_MS);
            return;
        }
        long granted = xs_sip_header_seconds(resp, "expires", "x");
        if (granted < 0 || granted > (long)s->asked)
            granted = s->asked;
        s->expires_at = xs__sub_now() + granted;
        s->retries = 0;
        s->restored = 0;
        xs__sub_store(s);
        if (granted == 0)
            end_sub(s, "the notifier granted no time", 1);
        else
            schedule_refresh(s, granted);
        return;
    }
    if (s->fetch) {
        xs__sub_free(s);
        return;
    }
    if (code == 423) {
        long min = xs_sip_header_seconds(resp, "min-expires", NULL);
        if (min > (long)s->asked && min <= (long)s->pr->max_expires && s->retries < 3) {
            s->asked = (unsigned)min;
            s->retries++;
            xs__sub_log(s, "interval-too-brief", "asking again with Min-Expires");
            send_subscribe(s);
            return;
        }
        end_sub(s, "423 with a Min-Expires we will not ask for", 1);
        return;
    }
    (void)cond;
    if (code == 481) {
        /* The notifier no longer knows the dialog (it restarted, or we
         * did): the subscription is made again in a new one. */
        xs__sub_log(s, "dialog-lost", "481: subscribing again");
        new_dialog(s);
        s->restored = 0;
        xs__sub_store(s);
        send_subscribe(s);
        return;
    }
    if (code == 408 || code >= 500 || code == 0) {
        retry_later(s, text);
        return;
    }
    /* 403, 404, 489, 401/407 (we hold no credentials), 603 and the rest:
     * a refusal (RFC 8048 §4.2 maps them to unsubscribed). */
    char why[200];
    snprintf(why, sizeof why, "SIP %d", code);
    end_sub(s, why, 1);
}

static const struct xs__sip_req_ops subscribe_ops = {build_subscribe, on_subscribe_final};

static void send_subscribe(struct sub *s)
{
    if (s->busy)
        return;
    s->busy = 1;
    s->pr->subscribes_sent++;
    xs__sip_client_request(s->pr->t, "SUBSCRIBE", &subscribe_ops, s);
}

/* ---- events from XMPP ---- */

static void on_subscribe_event(struct xs__sip_presence *pr, struct xs_event *ev)
{
    struct sub *s = xs__sub_find(pr, XS_SUB_WATCH_SIP, ev->from, ev->to);
    if (s) {
        /* RFC 6121 §3.1.3: a request for a subscription that exists is
         * answered from what we know; a pending one is already asked. */
        if (s->state == XS_SUB_STATE_ACTIVE) {
            tell_watcher(s, XS_EVENT_SUBSCRIPTION, "subscribed", NULL);
            if (s->last_pidf) {
                struct xs_pidf doc;
                if (xs_pidf_parse(s->last_pidf, strlen(s->last_pidf), &doc, NULL) == 0)
                    tell_watcher(s, XS_EVENT_PRESENCE,
                                 doc.basic == XS_PIDF_CLOSED ? "unavailable" : "available", &doc);
            }
        }
        return;
    }
    const char *why = NULL;
    s = xs__sub_new(pr, XS_SUB_WATCH_SIP, ev->from, ev->to, &why);
    if (!s) {
        char qf[160], qt[160];
        xs_log(XS_LOG_WARN, "presence.sub",
               "role=xmpp-watches-sip watcher=%s presentity=%s state=refused reason=\"%s\"",
               xs_log_quote(qf, sizeof qf, ev->from), xs_log_quote(qt, sizeof qt, ev->to), why);
        xs__sub_submit(pr,
                       xs__sub_event(XS_EVENT_SUBSCRIPTION, "unsubscribed", ev->to, ev->from, NULL),
                       NULL, NULL);
        return;
    }
    s->asked = pr->expires;
    new_dialog(s);
    xs__sub_log(s, "subscribe", "asked by the XMPP user");
    xs__sub_store(s);
    send_subscribe(s);
}

static void on_unsubscribe_event(struct xs__sip_presence *pr, struct xs_event *ev)
{
    struct sub *s = xs__sub_find(pr, XS_SUB_WATCH_SIP, ev->from, ev->to);
    if (!s)
        return;
    s->ending = 1;
    if (s->busy)
        return; /* on_subscribe_final ends it */
    if (!s->d.remote_tag) {
        xs__sub_log(s, "unsubscribed", "asked by the XMPP user before any answer");
        xs__sub_free(s);
        return;
    }
    xs__sub_due(s, DUE_NONE, 0);
    send_subscribe(s);
}

static void on_probe_event(struct xs__sip_presence *pr, struct xs_event *ev)
{
    char bare[URI_BUF], gr[256];
    if (xs__sub_split_gr(ev->from, bare, sizeof bare, gr, sizeof gr) != 0)
        return;
    struct sub *s = xs__sub_find(pr, XS_SUB_WATCH_SIP, bare, ev->to);
    if (s) {
        /* Answered from this very watcher's subscription: what it is
         * entitled to see, and nothing when it has nothing yet (the NOTIFY
         * on its way will bring it). */
        struct xs_pidf doc;
        if (s->state == XS_SUB_STATE_ACTIVE && s->last_pidf &&
            xs_pidf_parse(s->last_pidf, strlen(s->last_pidf), &doc, NULL) == 0)
            xs__sub_submit(pr,
                           xs__sub_event(XS_EVENT_PRESENCE,
                                         doc.basic == XS_PIDF_CLOSED ? "unavailable" : "available",
                                         s->presentity, ev->from, &doc),
                           NULL, NULL);
        return;
    }
    /* No subscription: a one-time fetch (RFC 6665 §4.4.3), which the
     * presence server authorizes like any subscription of this watcher. */
    s = xs__sub_new_fetch(pr, ev->from, ev->to);
    if (!s) {
        XS_LOG(XS_LOG_DEBUG, "presence.probe", "result=dropped reason=\"too many fetches\"");
        return;
    }
    new_dialog(s);
    xs_sip_dialog_set(&s->d.local_uri, bare);
    send_subscribe(s);
}

void xs__subscriber_event(struct xs__sip_presence *pr, struct xs_event *ev)
{
    if (ev->from && ev->to && ev->type) {
        if (!strcmp(ev->type, "subscribe"))
            on_subscribe_event(pr, ev);
        else if (!strcmp(ev->type, "unsubscribe"))
            on_unsubscribe_event(pr, ev);
        else if (!strcmp(ev->type, "probe"))
            on_probe_event(pr, ev);
    }
    xs_event_free(ev);
}

/* ---- NOTIFY ---- */

static int content_is_pidf(const osip_message_t *req)
{
    const osip_content_type_t *ct = req->content_type;
    return ct && ct->type && ct->subtype && !strcasecmp(ct->type, "application") &&
           !strcasecmp(ct->subtype, "pidf+xml");
}

/* The presence a NOTIFY carries, to the watcher when it changed. */
static void carry_state(struct sub *s, const struct xs_pidf *doc, const char *body, size_t blen)
{
    if (s->last_pidf && strlen(s->last_pidf) == blen && !memcmp(s->last_pidf, body, blen))
        return;
    char *copy = strndup(body, blen);
    if (copy) {
        free(s->last_pidf);
        s->last_pidf = copy;
    }
    if (!s->fetch)
        xs__sub_store(s);
    tell_watcher(s, XS_EVENT_PRESENCE, doc->basic == XS_PIDF_CLOSED ? "unavailable" : "available",
                 doc);
}

int xs__subscriber_notify(struct xs__sip_presence *pr, const osip_message_t *req, const char *body,
                          size_t blen, const char **why)
{
    const char *ltag = xs_sip_to_tag(req), *rtag = xs_sip_from_tag(req);
    char cid[XS_SIP_DIALOG_CALLID_MAX + 2];
    if (!req->call_id || !req->call_id->number || !ltag || !rtag) {
        *why = "NOTIFY outside a subscription";
        return 481;
    }
    snprintf(cid, sizeof cid, "%s%s%s", req->call_id->number, req->call_id->host ? "@" : "",
             req->call_id->host ? req->call_id->host : "");
    struct sub *s = xs__sub_find_dialog(pr, cid, ltag);
    if (!s || s->ending) {
        *why = "no such subscription";
        return 481;
    }
    if (s->d.remote_tag && strcmp(s->d.remote_tag, rtag) != 0) {
        /* A second notifier answering a forked SUBSCRIBE (RFC 6665
         * §4.1.2.4): one dialog per subscription is kept, the others are
         * refused, which ends them at their notifier. */
        *why = "a subscription from a forked request is not accepted";
        return 481;
    }
    int status =
        s->d.remote_tag ? xs_sip_dialog_accept(&s->d, req) : xs_sip_dialog_from_request(&s->d, req);
    if (status == 500) {
        *why = "CSeq lower than a previous request's";
        return 500;
    }
    if (status) {
        *why = "NOTIFY without a usable Contact or From tag";
        return 400;
    }
    const char *ss = xs_sip_header(req, "subscription-state", NULL);
    if (!ss) {
        *why = "missing Subscription-State";
        return 400;
    }
    struct xs_sip_substate st;
    xs_sip_substate_parse(ss, &st);
    struct xs_pidf doc;
    int have_doc = 0;
    if (blen) {
        if (!content_is_pidf(req)) {
            *why = "only application/pidf+xml is accepted";
            return 415;
        }
        const char *perr = NULL;
        if (xs_pidf_parse(body, blen, &doc, &perr) != 0) {
            *why = perr ? perr : "malformed PIDF document";
            return 400;
        }
        have_doc = 1;
    }
    pr->notifies_in++;
    if (s->fetch) {
        if (have_doc)
            carry_state(s, &doc, body, blen);
        if (st.state == XS_SUBSTATE_TERMINATED && !s->busy)
            xs__sub_free(s);
        return 200;
    }
    if (st.state == XS_SUBSTATE_ACTIVE && s->state != XS_SUB_STATE_ACTIVE) {
        s->state = XS_SUB_STATE_ACTIVE;
        xs__sub_log(s, "active", "NOTIFY");
        tell_watcher(s, XS_EVENT_SUBSCRIPTION, "subscribed", NULL);
        xs__sub_store(s);
    } else if (st.state == XS_SUBSTATE_PENDING && s->state != XS_SUB_STATE_PENDING) {
        s->state = XS_SUB_STATE_PENDING;
        xs__sub_log(s, "pending", "NOTIFY");
        xs__sub_store(s);
    }
    if (have_doc && (st.state == XS_SUBSTATE_ACTIVE || st.state == XS_SUBSTATE_TERMINATED))
        carry_state(s, &doc, body, blen);
    if (st.state == XS_SUBSTATE_ACTIVE && st.expires > 0 && !s->busy) {
        /* The notifier may shorten what it granted (§4.1.2.3). */
        int64_t at = xs__sub_now() + st.expires;
        if (!s->expires_at || at < s->expires_at) {
            s->expires_at = at;
            schedule_refresh(s, st.expires);
        }
    }
    if (st.state == XS_SUBSTATE_TERMINATED) {
        const char *r = st.reason;
        if (!strcmp(r, "deactivated") || !strcmp(r, "timeout") || !strcmp(r, "probation") ||
            !strcmp(r, "giveup")) {
            /* §4.1.3: these invite a new subscription, at once or after
             * retry-after. */
            xs__sub_log(s, "terminated", r);
            new_dialog(s);
            s->state = XS_SUB_STATE_PENDING;
            xs__sub_store(s);
            uint64_t wait = st.retry_after > 0 ? (uint64_t)st.retry_after * 1000 : 0;
            if (!strcmp(r, "probation") || !strcmp(r, "giveup"))
                wait = wait ? wait : RETRY_FIRST_MS;
            if (s->busy)
                return 200;
            xs__sub_due(s, DUE_RETRY, wait);
        } else if (!s->busy) {
            end_sub(s, r[0] ? r : "terminated by the notifier", 1);
        } else {
            s->ending = 1;
            tell_watcher(s, XS_EVENT_SUBSCRIPTION, "unsubscribed", NULL);
        }
    }
    return 200;
}

/* ---- timers and restore ---- */

void xs__subscriber_timer(struct sub *s, enum sub_due due)
{
    if (due == DUE_EXPIRE || s->fetch) {
        xs__sub_free(s);
        return;
    }
    send_subscribe(s);
}

void xs__subscriber_restored(struct sub *s)
{
    s->asked = s->pr->expires;
    /* Restored subscriptions refresh within the first 30 s, spread, so a
     * gateway holding thousands does not send them all in one burst. */
    xs__sub_due(s, DUE_SEND, jitter(0, xs__sub_restore_spread(s)));
}
