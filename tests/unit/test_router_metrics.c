/* What the router counts (xsgw_messages_total, xsgw_presence_total and the
 * latency histograms): each event once, at its final outcome, under the
 * partner its XMPP end belongs to ("other" for a domain that is none), its
 * direction, and the condition it ended with. The sides are stand-ins that
 * answer at once with a condition the test chooses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/log.h"
#include "core/metrics.h"
#include "policy_testutil.h"
#include "router.h"

static enum xs_cond answer; /* what the stand-in side's done() reports */
static int delivered;

static void fake_deliver(void *impl, struct xs_event *ev, xs_done_cb done, void *ud)
{
    (void)impl;
    delivered++;
    xs_event_free(ev);
    done(ud, answer, answer ? "stand-in says no" : NULL);
}

static enum xs_cond heard;
static void on_done(void *ud, enum xs_cond cond, const char *text)
{
    (void)ud;
    (void)text;
    heard = cond;
}

static void submit(struct xs_router *r, enum xs_event_kind kind, enum xs_side_id origin,
                   const char *from, const char *to)
{
    struct xs_event *ev = xs_event_new(kind, origin);
    xs_event_set(&ev->from, from);
    xs_event_set(&ev->to, to);
    if (kind == XS_EVENT_MESSAGE) {
        xs_event_set(&ev->body, "hi");
        xs_event_set(&ev->type, "chat");
    } else {
        xs_event_set(&ev->type, "available");
        if (origin == XS_SIDE_SIP)
            xs_event_set(&ev->basic, "open");
    }
    heard = XS_COND_COUNT_;
    xs_router_submit(r, ev, on_done, NULL);
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void test_router(void)
{
    char err[512];
    struct xs_policy *p = load("partner \"*\" { tls = \"optional\" }\n", err, sizeof err);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    xs_metrics_reset();
    struct xs_router r;
    xs_router_init(&r, p);
    r.sides[XS_SIDE_XMPP] = (struct xs_side){NULL, fake_deliver};
    r.sides[XS_SIDE_SIP] = (struct xs_side){NULL, fake_deliver};

    answer = XS_COND_NONE;
    submit(&r, XS_EVENT_MESSAGE, XS_SIDE_XMPP, "alice@xmpp.test/phone", "bob@sip.test");
    CHECK(heard == XS_COND_NONE);
    submit(&r, XS_EVENT_MESSAGE, XS_SIDE_XMPP, "alice@xmpp.test/phone", "bob@sip.test");
    /* A domain that only the wildcard partner covers counts under "*". */
    submit(&r, XS_EVENT_MESSAGE, XS_SIDE_SIP, "sip:bob@sip.test", "sip:carol@elsewhere.test");
    CHECK(heard == XS_COND_NONE);
    /* Refused by the router (the recipient is not ours): counted as
     * refused under the sender's partner, never handed on. */
    int before = delivered;
    submit(&r, XS_EVENT_MESSAGE, XS_SIDE_XMPP, "alice@xmpp.test", "bob@nowhere.test");
    CHECK(heard == XS_COND_ITEM_NOT_FOUND);
    CHECK(delivered == before);
    /* Bounced by the other side. */
    answer = XS_COND_RECIPIENT_UNAVAILABLE;
    submit(&r, XS_EVENT_MESSAGE, XS_SIDE_SIP, "sip:bob@sip.test", "sip:dave@legacy.test");
    CHECK(heard == XS_COND_RECIPIENT_UNAVAILABLE);
    answer = XS_COND_NONE;
    submit(&r, XS_EVENT_PRESENCE, XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test");
    CHECK(heard == XS_COND_NONE);

    struct xs_buf b;
    xs_buf_init(&b, 1 << 20);
    CHECK(xs_metrics_render(&b) == 0);
    const char *t = b.data ? b.data : "";
    static const char *const want[] = {
        "xsgw_messages_total{partner=\"xmpp.test\",direction=\"xmpp_to_sip\","
        "outcome=\"delivered\",condition=\"none\"} 2",
        "xsgw_messages_total{partner=\"*\",direction=\"sip_to_xmpp\","
        "outcome=\"delivered\",condition=\"none\"} 1",
        "xsgw_messages_total{partner=\"xmpp.test\",direction=\"xmpp_to_sip\","
        "outcome=\"refused\",condition=\"item-not-found\"} 1",
        "xsgw_messages_total{partner=\"legacy.test\",direction=\"sip_to_xmpp\","
        "outcome=\"bounced\",condition=\"recipient-unavailable\"} 1",
        "xsgw_presence_total{partner=\"xmpp.test\",direction=\"sip_to_xmpp\","
        "outcome=\"delivered\",condition=\"none\"} 1",
        "xsgw_handoff_seconds_count{direction=\"xmpp_to_sip\"} 2",
        "xsgw_handoff_seconds_count{direction=\"sip_to_xmpp\"} 3",
        "xsgw_outcome_seconds_count{direction=\"xmpp_to_sip\"} 3",
        "xsgw_outcome_seconds_count{direction=\"sip_to_xmpp\"} 3",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!has_line(t, want[i]))
            fprintf(stderr, "missing line: %s\n", want[i]);
        CHECK(has_line(t, want[i]));
    }
    CHECK(count_of(t, "xsgw_messages_total{") == 4);
    CHECK(count_of(t, "xsgw_presence_total{") == 1);
    xs_buf_free(&b);
    xs_router_clear(&r);
    xs_policy_free(p);
}

int main(void)
{
    if (policy_tests_begin() != 0)
        return 1;
    test_router();
    return policy_tests_end("test_router_metrics");
}
