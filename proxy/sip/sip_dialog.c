#include "sip/sip_dialog.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

void xs_sip_dialog_clear(struct xs_sip_dialog *d)
{
    free(d->call_id);
    free(d->local_tag);
    free(d->remote_tag);
    free(d->local_uri);
    free(d->remote_uri);
    free(d->remote_target);
    free(d->route_set);
    *d = (struct xs_sip_dialog){0};
}

int xs_sip_dialog_set(char **field, const char *v)
{
    char *c = NULL;
    if (v && !(c = strdup(v)))
        return XS_ENOMEM;
    free(*field);
    *field = c;
    return 0;
}

const char *xs_sip_header(const osip_message_t *m, const char *name, const char *compact)
{
    osip_header_t *h = NULL;
    osip_message_header_get_byname(m, name, 0, &h);
    if ((!h || !h->hvalue) && compact)
        osip_message_header_get_byname(m, compact, 0, &h);
    return h && h->hvalue ? h->hvalue : NULL;
}

long xs_sip_header_seconds(const osip_message_t *m, const char *name, const char *compact)
{
    const char *v = xs_sip_header(m, name, compact);
    if (!v)
        return -1;
    while (*v == ' ' || *v == '\t')
        v++;
    long n = 0;
    int digits = 0;
    for (; *v >= '0' && *v <= '9'; v++) {
        if (++digits > 9)
            return -1;
        n = n * 10 + (*v - '0');
    }
    while (*v == ' ' || *v == '\t')
        v++;
    return digits && !*v ? n : -1;
}

static const char *tag_of(const osip_from_t *f)
{
    osip_generic_param_t *tag = NULL;
    if (f)
        osip_from_get_tag((osip_from_t *)f, &tag);
    return tag && tag->gvalue && tag->gvalue[0] ? tag->gvalue : NULL;
}

const char *xs_sip_from_tag(const osip_message_t *m)
{
    return tag_of(m->from);
}

const char *xs_sip_to_tag(const osip_message_t *m)
{
    return tag_of(m->to);
}

int xs_sip_contact_uri(const osip_message_t *m, char *out, size_t n)
{
    osip_contact_t *c = osip_list_get(&m->contacts, 0);
    if (!c || !c->url || !c->url->scheme || !c->url->host)
        return XS_ENOTFOUND;
    if (strcasecmp(c->url->scheme, "sip") != 0 && strcasecmp(c->url->scheme, "sips") != 0)
        return XS_ENOTFOUND;
    char *s = NULL;
    if (osip_uri_to_str(c->url, &s) != 0 || !s)
        return XS_ENOMEM;
    size_t l = strlen(s);
    int ok = l < n && !strpbrk(s, "<>\" \r\n\t");
    if (ok)
        memcpy(out, s, l + 1);
    osip_free(s);
    return ok ? 0 : XS_ENOTFOUND;
}

/* The Record-Route values of m joined with ", ", in order or reversed. */
static int route_set_of(const osip_message_t *m, int reverse, char **out)
{
    int count = osip_list_size(&m->record_routes);
    *out = NULL;
    if (count <= 0)
        return 0;
    struct xs_buf b;
    xs_buf_init(&b, XS_SIP_DIALOG_ROUTE_MAX);
    int rc = 0;
    for (int i = 0; !rc && i < count; i++) {
        osip_record_route_t *rr = osip_list_get(&m->record_routes, reverse ? count - 1 - i : i);
        char *s = NULL;
        if (!rr || osip_record_route_to_str(rr, &s) != 0 || !s) {
            rc = XS_EPROTO;
            break;
        }
        if (strpbrk(s, "\r\n"))
            rc = XS_EPROTO;
        if (!rc && b.len)
            rc = xs_buf_append_str(&b, ", ");
        if (!rc)
            rc = xs_buf_append_str(&b, s);
        osip_free(s);
    }
    if (!rc)
        rc = xs_buf_append(&b, "", 1);
    if (!rc) {
        *out = strdup(b.data);
        if (!*out)
            rc = XS_ENOMEM;
    }
    xs_buf_free(&b);
    return rc;
}

static int set_target(struct xs_sip_dialog *d, const osip_message_t *m)
{
    char target[XS_SIP_DIALOG_URI_MAX];
    int rc = xs_sip_contact_uri(m, target, sizeof target);
    if (rc == XS_ENOTFOUND)
        return XS_EPROTO;
    return rc ? rc : xs_sip_dialog_set(&d->remote_target, target);
}

static uint32_t cseq_of(const osip_message_t *m)
{
    if (!m->cseq || !m->cseq->number)
        return 0;
    return (uint32_t)strtoul(m->cseq->number, NULL, 10);
}

/* The peer's half of a dialog from m: its tag, its Contact as the remote
 * target, and the route set (Record-Route, reversed for a response). */
static int peer_half(struct xs_sip_dialog *d, const osip_message_t *m, const char *tag, int reverse)
{
    if (!tag || strlen(tag) > XS_SIP_DIALOG_TAG_MAX)
        return XS_EPROTO;
    char *routes = NULL;
    int rc = set_target(d, m);
    if (!rc)
        rc = route_set_of(m, reverse, &routes);
    if (!rc)
        rc = xs_sip_dialog_set(&d->remote_tag, tag);
    if (!rc) {
        free(d->route_set);
        d->route_set = routes;
        routes = NULL;
    }
    free(routes);
    return rc;
}

int xs_sip_dialog_from_response(struct xs_sip_dialog *d, const osip_message_t *resp)
{
    return peer_half(d, resp, xs_sip_to_tag(resp), 1);
}

int xs_sip_dialog_from_request(struct xs_sip_dialog *d, const osip_message_t *req)
{
    int rc = peer_half(d, req, xs_sip_from_tag(req), 0);
    if (!rc)
        d->remote_cseq = cseq_of(req);
    return rc;
}

int xs_sip_dialog_accept(struct xs_sip_dialog *d, const osip_message_t *req)
{
    uint32_t c = cseq_of(req);
    if (d->remote_cseq && c <= d->remote_cseq)
        return 500;
    d->remote_cseq = c;
    char target[XS_SIP_DIALOG_URI_MAX];
    /* A target refresh (RFC 6665 §4.1.2.1, §4.2.1.1) moves where our
     * requests go; a request without a usable Contact leaves it. */
    if (xs_sip_contact_uri(req, target, sizeof target) == 0 &&
        (!d->remote_target || strcmp(target, d->remote_target) != 0))
        xs_sip_dialog_set(&d->remote_target, target);
    return 0;
}

int xs_sip_dialog_write(const struct xs_sip_dialog *d, const char *method,
                        const struct xs_sip_req_params *p, const char *contact, const char *headers,
                        const char *ctype, const char *body, size_t blen, struct xs_buf *out)
{
    if (!d->call_id || !d->local_tag || !d->local_uri || !d->remote_uri || !d->remote_target)
        return XS_EINVAL;
    char from[XS_SIP_DIALOG_URI_MAX], to[XS_SIP_DIALOG_URI_MAX];
    if (xs_sip_wire_uri(d->local_uri, from, sizeof from) != 0 ||
        xs_sip_wire_uri(d->remote_uri, to, sizeof to) != 0)
        return XS_EINVAL;
    int v6 = strchr(p->via_host, ':') != NULL;
    int rc = xs_buf_printf(out,
                           "%s %s SIP/2.0\r\nVia: SIP/2.0/%s %s%s%s%d;branch=%s;rport\r\n"
                           "Max-Forwards: 70\r\n",
                           method, d->remote_target, p->transport, v6 ? "[" : "", p->via_host,
                           v6 ? "]:" : ":", p->via_port, p->branch);
    if (!rc && d->route_set)
        rc = xs_buf_printf(out, "Route: %s\r\n", d->route_set);
    if (!rc)
        rc = xs_buf_printf(out, "From: <%s>;tag=%s\r\nTo: <%s>", from, d->local_tag, to);
    if (!rc && d->remote_tag)
        rc = xs_buf_printf(out, ";tag=%s", d->remote_tag);
    if (!rc)
        rc = xs_buf_printf(out, "\r\nCall-ID: %s\r\nCSeq: %u %s\r\nContact: <%s>\r\n", d->call_id,
                           (unsigned)d->local_cseq, method, contact);
    if (!rc && headers)
        rc = xs_buf_append_str(out, headers);
    if (!rc && ctype)
        rc = xs_buf_printf(out, "Content-Type: %s\r\n", ctype);
    if (!rc)
        rc = xs_buf_printf(out, "Content-Length: %zu\r\n\r\n", body ? blen : 0);
    if (!rc && body)
        rc = xs_buf_append(out, body, blen);
    return rc;
}

int xs_sip_record_route_lines(const osip_message_t *req, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < osip_list_size(&req->record_routes); i++) {
        char *s = NULL;
        if (osip_record_route_to_str(osip_list_get(&req->record_routes, i), &s) != 0 || !s)
            return XS_EPROTO;
        int w = snprintf(out + len, n - len, "Record-Route: %s\r\n", s);
        osip_free(s);
        if (w < 0 || (size_t)w >= n - len) {
            out[len] = '\0';
            return XS_ELIMIT;
        }
        len += (size_t)w;
    }
    return 0;
}

/* Copies the token at *p (up to ; , or space) lower-cased into out. */
static const char *token(const char *p, char *out, size_t n)
{
    size_t i = 0;
    while (*p && *p != ';' && *p != '=' && *p != ' ' && *p != '\t' && *p != ',') {
        if (i + 1 < n)
            out[i++] = (char)tolower((unsigned char)*p);
        p++;
    }
    out[i] = '\0';
    return p;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static long seconds_of(const char *v)
{
    long n = 0;
    int digits = 0;
    for (; *v >= '0' && *v <= '9'; v++) {
        if (++digits > 9)
            return -1;
        n = n * 10 + (*v - '0');
    }
    return digits ? n : -1;
}

void xs_sip_substate_parse(const char *v, struct xs_sip_substate *out)
{
    *out = (struct xs_sip_substate){.state = XS_SUBSTATE_UNKNOWN, .expires = -1, .retry_after = -1};
    if (!v)
        return;
    char word[32];
    const char *p = token(skip_ws(v), word, sizeof word);
    if (!strcmp(word, "active"))
        out->state = XS_SUBSTATE_ACTIVE;
    else if (!strcmp(word, "pending"))
        out->state = XS_SUBSTATE_PENDING;
    else if (!strcmp(word, "terminated"))
        out->state = XS_SUBSTATE_TERMINATED;
    while (*(p = skip_ws(p)) == ';') {
        char name[32], value[32];
        p = token(skip_ws(p + 1), name, sizeof name);
        value[0] = '\0';
        p = skip_ws(p);
        if (*p == '=')
            p = token(skip_ws(p + 1), value, sizeof value);
        if (!strcmp(name, "expires"))
            out->expires = seconds_of(value);
        else if (!strcmp(name, "retry-after"))
            out->retry_after = seconds_of(value);
        else if (!strcmp(name, "reason"))
            snprintf(out->reason, sizeof out->reason, "%s", value);
    }
}

int xs_sip_event_is_presence(const osip_message_t *m)
{
    const char *v = xs_sip_header(m, "event", "o");
    if (!v)
        return 0;
    char word[32];
    token(skip_ws(v), word, sizeof word);
    return strcmp(word, "presence") == 0;
}
