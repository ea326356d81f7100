#include "admin/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "policy/policy.h"
#include "presence/sub_store.h"
#include "sip/sip.h"
#include "xmpp/xmpp_side.h"

#ifndef XS_VERSION
#define XS_VERSION "unknown"
#endif

/* A stream as the snapshot keeps it: its strings copied (the side lends
 * them for the walk only), and the partner it belongs to. */
struct row {
    struct xs_stream_info si;
    char local[256], remote[256], peer[64], state[24], auth[16], error[256];
    int partner; /* index in the policy's partners; -1: none (not yet known) */
};

struct snapshot {
    const struct xs_config *cfg;
    const struct xs_policy *policy;
    struct row *rows;
    size_t n, more;
};

static int partner_index(const struct snapshot *sn, const char *remote)
{
    if (!remote || !*remote)
        return -1;
    const struct xs_partner *p = xs_policy_partner(sn->policy, remote);
    return p ? (int)(p - sn->cfg->partners) : -1;
}

static void collect(void *ud, const struct xs_stream_info *si)
{
    struct snapshot *sn = ud;
    if (sn->n >= XS_STATUS_STREAMS_MAX) {
        sn->more++;
        return;
    }
    struct row *r = &sn->rows[sn->n++];
    r->si = *si;
    snprintf(r->local, sizeof r->local, "%s", si->local);
    snprintf(r->remote, sizeof r->remote, "%s", si->remote);
    snprintf(r->peer, sizeof r->peer, "%s", si->peer);
    snprintf(r->state, sizeof r->state, "%s", si->state);
    snprintf(r->auth, sizeof r->auth, "%s", si->auth);
    snprintf(r->error, sizeof r->error, "%s", si->last_error ? si->last_error : "");
    r->partner = partner_index(sn, r->remote);
}

static int take(struct xs_gateway *gw, struct snapshot *sn)
{
    memset(sn, 0, sizeof *sn);
    sn->policy = xs_gateway_policy(gw);
    sn->cfg = xs_policy_config(sn->policy);
    sn->rows = calloc(XS_STATUS_STREAMS_MAX, sizeof *sn->rows);
    if (!sn->rows)
        return XS_ENOMEM;
    struct xs_xmpp *x = xs_gateway_xmpp(gw);
    if (x && !xs_gateway_info(gw)->draining)
        xs_xmpp_foreach_stream(x, collect, sn);
    return 0;
}

const char *xs_status_hop_state(const struct xs_gateway *gw, const struct xs_next_hop_check *hop)
{
    if (!xs_policy_config(xs_gateway_policy(gw))->sip_next_hop.host)
        return "none";
    if (!hop->status)
        return "unchecked";
    return hop->status >= 200 && hop->status < 500 && hop->status != 408 ? "reachable"
                                                                          : "unreachable";
}

static const char *transport_name(enum xs_sip_transport t)
{
    return t == XS_SIP_TLS ? "tls" : t == XS_SIP_TCP ? "tcp" : "udp";
}

static const char *partner_type(enum xs_partner_type t)
{
    switch (t) {
    case XS_PARTNER_VERIFIED:
        return "verified";
    case XS_PARTNER_FEDERATED:
        return "federated";
    default:
        return "unverified";
    }
}

static void iso_time(double t, char out[32])
{
    if (t <= 0) {
        snprintf(out, 32, "-");
        return;
    }
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- JSON ---- */

static int json_str(struct xs_buf *o, const char *s)
{
    if (!s)
        return xs_buf_append_str(o, "null");
    int rc = xs_buf_append(o, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
        if (*p == '"' || *p == '\\')
            rc = xs_buf_printf(o, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            rc = xs_buf_printf(o, "\\u%04x", *p);
        else
            rc = xs_buf_append(o, p, 1);
    }
    return rc ? rc : xs_buf_append(o, "\"", 1);
}

static int json_stream(struct xs_buf *o, const struct row *r, int first)
{
    char since[32];
    iso_time(r->si.since, since);
    int rc = xs_buf_printf(o, "%s{\"direction\":\"%s\",\"local\":", first ? "" : ",",
                           r->si.outbound ? "out" : "in");
    rc = rc ? rc : json_str(o, r->local);
    rc = rc ? rc : xs_buf_append_str(o, ",\"remote\":");
    rc = rc ? rc : json_str(o, r->remote);
    rc = rc ? rc : xs_buf_append_str(o, ",\"peer\":");
    rc = rc ? rc : json_str(o, r->peer);
    rc = rc ? rc : xs_buf_append_str(o, ",\"state\":");
    rc = rc ? rc : json_str(o, r->state);
    rc = rc ? rc : xs_buf_append_str(o, ",\"tls\":");
    rc = rc ? rc : json_str(o, r->si.tls);
    rc = rc ? rc : xs_buf_append_str(o, ",\"auth\":");
    rc = rc ? rc : json_str(o, r->auth);
    rc = rc ? rc
            : xs_buf_printf(o, ",\"since\":\"%s\",\"queued\":%zu,\"last_error\":", since,
                            r->si.queued);
    rc = rc ? rc : json_str(o, r->error);
    return rc ? rc : xs_buf_append_str(o, "}");
}

static int json_streams_of(struct xs_buf *o, const struct snapshot *sn, int partner)
{
    int rc = xs_buf_append_str(o, "[");
    int first = 1;
    for (size_t i = 0; i < sn->n && !rc; i++) {
        if (sn->rows[i].partner != partner)
            continue;
        rc = json_stream(o, &sn->rows[i], first);
        first = 0;
    }
    return rc ? rc : xs_buf_append_str(o, "]");
}

int xs_status_json(struct xs_gateway *gw, const struct xs_next_hop_check *hop, double now,
                   struct xs_buf *o)
{
    struct snapshot sn;
    int rc = take(gw, &sn);
    if (rc)
        return rc;
    const struct xs_gateway_info *in = xs_gateway_info(gw);
    const struct xs_config *c = sn.cfg;
    char started[32], reload_at[32], good_at[32], checked[32];
    iso_time(in->started_at, started);
    iso_time(in->last_reload_at, reload_at);
    iso_time(in->last_good_at, good_at);
    iso_time(hop->checked_at, checked);
    rc = xs_buf_printf(o,
                       "{\"version\":\"%s\",\"started_at\":\"%s\",\"uptime_seconds\":%.0f,"
                       "\"draining\":%s,\"policy\":{\"path\":",
                       XS_VERSION, started, now - in->started_at,
                       in->draining ? "true" : "false");
    rc = rc ? rc : json_str(o, in->policy_path);
    rc = rc ? rc
            : xs_buf_printf(o,
                            ",\"sha256\":\"%s\",\"generation\":%d,\"loaded_at\":\"%s\","
                            "\"reloads_ok\":%llu,\"reloads_failed\":%llu,\"last_reload\":",
                            in->policy_sha256, in->generation, good_at, in->reloads_ok,
                            in->reloads_failed);
    if (!rc && in->last_reload_ok < 0) {
        rc = xs_buf_append_str(o, "null");
    } else if (!rc) {
        rc = xs_buf_printf(o, "{\"at\":\"%s\",\"result\":\"%s\",\"error\":", reload_at,
                           in->last_reload_ok ? "ok" : "rejected");
        rc = rc ? rc : json_str(o, in->last_reload_ok ? NULL : in->last_reload_error);
        rc = rc ? rc : xs_buf_append_str(o, "}");
    }
    rc = rc ? rc : xs_buf_append_str(o, "},\"sip\":{\"next_hop\":");
    if (!rc && c->sip_next_hop.host) {
        char hop_s[300];
        snprintf(hop_s, sizeof hop_s, "%s:%s:%d", transport_name(c->sip_next_hop.transport),
                 c->sip_next_hop.host, c->sip_next_hop.port);
        rc = json_str(o, hop_s);
    } else if (!rc) {
        rc = xs_buf_append_str(o, "null");
    }
    rc = rc ? rc
            : xs_buf_printf(o, ",\"state\":\"%s\",\"last_status\":%d,\"checked_at\":\"%s\","
                               "\"reason\":",
                            xs_status_hop_state(gw, hop), hop->status, checked);
    rc = rc ? rc : json_str(o, hop->reason);
    struct xs_sip *sip = xs_gateway_sip(gw);
    rc = rc ? rc
            : xs_buf_printf(o,
                            "},\"subscriptions\":{\"watch_sip\":%zu,\"watch_xmpp\":%zu},"
                            "\"partners\":[",
                            sip && !in->draining ? xs_sip_subscriptions(sip, XS_SUB_WATCH_SIP) : 0,
                            sip && !in->draining ? xs_sip_subscriptions(sip, XS_SUB_WATCH_XMPP)
                                                 : 0);
    for (size_t i = 0; i < c->n_partners && !rc; i++) {
        const struct xs_partner *p = &c->partners[i];
        rc = xs_buf_printf(o, "%s{\"domain\":", i ? "," : "");
        rc = rc ? rc : json_str(o, p->domain);
        rc = rc ? rc
                : xs_buf_printf(o, ",\"type\":\"%s\",\"streams\":", partner_type(p->type));
        rc = rc ? rc : json_streams_of(o, &sn, (int)i);
        rc = rc ? rc : xs_buf_append_str(o, "}");
    }
    rc = rc ? rc : xs_buf_append_str(o, "],\"unattributed_streams\":");
    rc = rc ? rc : json_streams_of(o, &sn, -1);
    rc = rc ? rc : xs_buf_printf(o, ",\"streams_not_listed\":%zu}\n", sn.more);
    free(sn.rows);
    return rc;
}

/* ---- HTML ---- */

static int html_str(struct xs_buf *o, const char *s)
{
    int rc = 0;
    for (const char *p = s ? s : ""; *p && !rc; p++) {
        switch (*p) {
        case '<':
            rc = xs_buf_append_str(o, "&lt;");
            break;
        case '>':
            rc = xs_buf_append_str(o, "&gt;");
            break;
        case '&':
            rc = xs_buf_append_str(o, "&amp;");
            break;
        case '"':
            rc = xs_buf_append_str(o, "&quot;");
            break;
        case '\'':
            rc = xs_buf_append_str(o, "&#39;");
            break;
        default:
            rc = (unsigned char)*p < 0x20 ? xs_buf_append_str(o, "?") : xs_buf_append(o, p, 1);
        }
    }
    return rc;
}

/* A labelled cell: on a narrow screen each row becomes a block of
 * "label: value" lines (the CSS below), so the label travels with it. */
static int html_cell(struct xs_buf *o, const char *label, const char *value)
{
    int rc = xs_buf_printf(o, "<td data-label=\"%s\">", label);
    rc = rc ? rc : html_str(o, value && *value ? value : "-");
    return rc ? rc : xs_buf_append_str(o, "</td>");
}

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<meta http-equiv=\"refresh\" content=\"15\">"
    "<title>xsgw status</title><style>"
    "body{font-family:system-ui,sans-serif;margin:1rem;color:#222;background:#fafafa}"
    "h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:1.5rem}"
    "table{border-collapse:collapse;width:100%;background:#fff}"
    "th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top;"
    "overflow-wrap:anywhere}"
    "th{background:#eee}.ok{color:#176b1a}.bad{color:#a01010;font-weight:bold}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:bold}"
    "dd{margin:0;overflow-wrap:anywhere}"
    "@media (max-width:640px){table,thead,tbody,tr,td{display:block}thead{display:none}"
    "tr{margin-bottom:.6rem;border:1px solid #ccc}td{border:none}"
    "td::before{content:attr(data-label) \": \";font-weight:bold}}"
    "</style></head><body>\n";

static int html_streams(struct xs_buf *o, const struct snapshot *sn, int partner)
{
    size_t count = 0;
    for (size_t i = 0; i < sn->n; i++)
        count += sn->rows[i].partner == partner;
    if (!count)
        return xs_buf_append_str(o, "<p>No stream.</p>\n");
    int rc = xs_buf_append_str(o, "<table><thead><tr><th>direction</th><th>local</th>"
                                  "<th>remote</th><th>peer</th><th>state</th><th>TLS</th>"
                                  "<th>auth</th><th>since</th><th>queued</th>"
                                  "<th>last error</th></tr></thead><tbody>\n");
    for (size_t i = 0; i < sn->n && !rc; i++) {
        const struct row *r = &sn->rows[i];
        if (r->partner != partner)
            continue;
        char since[32], queued[24];
        iso_time(r->si.since, since);
        snprintf(queued, sizeof queued, "%zu", r->si.queued);
        rc = xs_buf_printf(o, "<tr class=\"stream\" data-remote=\"");
        rc = rc ? rc : html_str(o, r->remote);
        rc = rc ? rc : xs_buf_append_str(o, "\">");
        rc = rc ? rc : html_cell(o, "direction", r->si.outbound ? "out" : "in");
        rc = rc ? rc : html_cell(o, "local", r->local);
        rc = rc ? rc : html_cell(o, "remote", r->remote);
        rc = rc ? rc : html_cell(o, "peer", r->peer);
        rc = rc ? rc : html_cell(o, "state", r->state);
        rc = rc ? rc : html_cell(o, "TLS", r->si.tls);
        rc = rc ? rc : html_cell(o, "auth", r->auth);
        rc = rc ? rc : html_cell(o, "since", since);
        rc = rc ? rc : html_cell(o, "queued", r->si.outbound ? queued : "");
        rc = rc ? rc : html_cell(o, "last error", r->error);
        rc = rc ? rc : xs_buf_append_str(o, "</tr>\n");
    }
    return rc ? rc : xs_buf_append_str(o, "</tbody></table>\n");
}

static int html_dd(struct xs_buf *o, const char *term, const char *value, const char *cls)
{
    int rc = xs_buf_printf(o, "<dt>%s</dt><dd%s%s%s>", term, cls ? " class=\"" : "",
                           cls ? cls : "", cls ? "\"" : "");
    rc = rc ? rc : html_str(o, value && *value ? value : "-");
    return rc ? rc : xs_buf_append_str(o, "</dd>\n");
}

int xs_status_html(struct xs_gateway *gw, const struct xs_next_hop_check *hop, double now,
                   struct xs_buf *o)
{
    struct snapshot sn;
    int rc = take(gw, &sn);
    if (rc)
        return rc;
    const struct xs_gateway_info *in = xs_gateway_info(gw);
    const struct xs_config *c = sn.cfg;
    char t1[32], t2[32], num[160];
    rc = xs_buf_append_str(o, page_head);
    rc = rc ? rc : xs_buf_append_str(o, "<h1>xsgw ");
    rc = rc ? rc : html_str(o, XS_VERSION);
    rc = rc ? rc : xs_buf_append_str(o, "</h1>\n<dl>\n");
    iso_time(in->started_at, t1);
    snprintf(num, sizeof num, "%s (up %.0f s)%s", t1, now - in->started_at,
             in->draining ? ", draining" : "");
    rc = rc ? rc : html_dd(o, "started", num, in->draining ? "bad" : NULL);
    rc = rc ? rc : html_dd(o, "policy", in->policy_path, NULL);
    rc = rc ? rc : html_dd(o, "sha256", in->policy_sha256, NULL);
    iso_time(in->last_good_at, t1);
    snprintf(num, sizeof num, "%d, loaded %s", in->generation, t1);
    rc = rc ? rc : html_dd(o, "generation", num, NULL);
    iso_time(in->last_reload_at, t2);
    if (in->last_reload_ok < 0)
        snprintf(num, sizeof num, "none yet");
    else
        snprintf(num, sizeof num, "%s at %s (%llu ok, %llu rejected)",
                 in->last_reload_ok ? "ok" : "rejected", t2, in->reloads_ok, in->reloads_failed);
    rc = rc ? rc
            : html_dd(o, "last reload", num, in->last_reload_ok == 0 ? "bad" : NULL);
    if (!rc && in->last_reload_ok == 0)
        rc = html_dd(o, "reload error", in->last_reload_error, "bad");
    const char *hs = xs_status_hop_state(gw, hop);
    if (!rc && c->sip_next_hop.host) {
        char hop_s[300];
        iso_time(hop->checked_at, t1);
        snprintf(hop_s, sizeof hop_s, "%s:%s:%d: %s (last answer %d at %s%s%s)",
                 transport_name(c->sip_next_hop.transport), c->sip_next_hop.host,
                 c->sip_next_hop.port, hs, hop->status, t1, *hop->reason ? ", " : "",
                 hop->reason);
        rc = html_dd(o, "SIP next hop", hop_s, !strcmp(hs, "reachable") ? "ok" : "bad");
    } else if (!rc) {
        rc = html_dd(o, "SIP next hop", "none configured", NULL);
    }
    struct xs_sip *sip = xs_gateway_sip(gw);
    snprintf(num, sizeof num, "%zu XMPP users watching SIP users, %zu SIP users watching XMPP users",
             sip && !in->draining ? xs_sip_subscriptions(sip, XS_SUB_WATCH_SIP) : 0,
             sip && !in->draining ? xs_sip_subscriptions(sip, XS_SUB_WATCH_XMPP) : 0);
    rc = rc ? rc : html_dd(o, "subscriptions", num, NULL);
    rc = rc ? rc : xs_buf_append_str(o, "</dl>\n<h2>Partners</h2>\n");
    for (size_t i = 0; i < c->n_partners && !rc; i++) {
        const struct xs_partner *p = &c->partners[i];
        rc = xs_buf_append_str(o, "<section class=\"partner\" data-domain=\"");
        rc = rc ? rc : html_str(o, p->domain);
        rc = rc ? rc : xs_buf_append_str(o, "\"><h3>");
        rc = rc ? rc : html_str(o, p->domain);
        rc = rc ? rc : xs_buf_printf(o, " <small>(%s)</small></h3>\n", partner_type(p->type));
        rc = rc ? rc : html_streams(o, &sn, (int)i);
        rc = rc ? rc : xs_buf_append_str(o, "</section>\n");
    }
    rc = rc ? rc : xs_buf_append_str(o, "<h2>Streams not (yet) attributed to a partner</h2>\n");
    rc = rc ? rc : html_streams(o, &sn, -1);
    if (!rc && sn.more)
        rc = xs_buf_printf(o, "<p>%zu more streams not listed.</p>\n", sn.more);
    rc = rc ? rc : xs_buf_append_str(o, "<p><a href=\"/status.json\">JSON</a> · "
                                        "<a href=\"/metrics\">metrics</a></p></body></html>\n");
    free(sn.rows);
    return rc;
}
