/* The SIP side's two faces toward the middle, without sockets: an arriving
 * MESSAGE (already parsed and validated by sip_msg.c) into an event, and an
 * event into a MESSAGE to send (RFC 7572, RFC 3428). Addresses are taken as
 * the URIs they are, cut to "sip:user@host[;gr=...]"; their mapping to
 * JIDs (RFC 7247 §6) is the policy library's (lua/xsgw/address.lua), and
 * their validity the one address validator's (core/addr.h). Bodies go
 * through sip_content.c. */
#include "sip/sip_translate.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/addr.h"
#include "core/err.h"
#include "sip/sip_content.h"

/* What a Call-ID, Subject or address may hold before we stop trusting it. */
#define CALLID_MAX 128
#define SUBJECT_MAX 1024
#define LANG_MAX 35
#define URI_MAX 512

static int is_word_char(unsigned char c)
{
    return isalnum(c) || (c && strchr("-.!%*_+`'~()<>:\\\"/[]?{}", c));
}

int xs_sip_callid_ok(const char *s)
{
    if (!s)
        return 0;
    size_t len = strlen(s);
    if (len == 0 || len > CALLID_MAX)
        return 0;
    const char *at = strchr(s, '@');
    if (at && (at == s || at[1] == '\0' || strchr(at + 1, '@')))
        return 0;
    for (const char *p = s; *p; p++)
        if (*p != '@' && !is_word_char((unsigned char)*p))
            return 0;
    return 1;
}

static int user_char_ok(unsigned char c)
{
    return isalnum(c) || (c && strchr("-_.!~*'()&=+$,;?/", c));
}

/* RFC 3261 paramchar: param-unreserved / unreserved. */
static int param_char_ok(unsigned char c)
{
    return isalnum(c) || (c && strchr("[]/:&+$-_.!~*'()", c));
}

/* A URI being written, at most URI_MAX bytes. */
struct uri_out {
    char s[URI_MAX];
    size_t n;
    int over;
};

static void uri_put(struct uri_out *o, char c)
{
    if (o->n < URI_MAX)
        o->s[o->n++] = c;
    else
        o->over = 1;
}

static void uri_put_pct(struct uri_out *o, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    uri_put(o, '%');
    uri_put(o, hex[c >> 4]);
    uri_put(o, hex[c & 15]);
}

/* "sip:user@host" from a parsed URI, without display name, port or
 * parameters but "gr": the form RFC 7247 §6.4 maps to a bare JID, or with
 * ";gr=value" to a full JID (§6.4 step 8, RFC 7572 §5 note 1). NULL when the
 * URI is not SIP or its host is not a plain host name or address. */
static char *uri_for_event(const osip_uri_t *u, int *status, const char **why)
{
    *status = 400;
    *why = "malformed address";
    if (!u || !u->scheme || !u->host || !u->host[0])
        return NULL;
    if (strcasecmp(u->scheme, "sip") != 0 && strcasecmp(u->scheme, "sips") != 0) {
        *status = 416;
        *why = "only sip: and sips: addresses are supported";
        return NULL;
    }
    /* osip gives an IPv6 host without its brackets. */
    int v6 = strchr(u->host, ':') && u->host[0] != '[';
    char host[URI_MAX];
    int hl = snprintf(host, sizeof host, "%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "");
    if (hl < 0 || (size_t)hl >= sizeof host)
        return NULL;
    if (hl > 1 && host[hl - 1] == '.')
        host[--hl] = '\0';
    /* RFC 7247 §6.1: IDNs are not allowed in the SIP address format, so the
     * host must also be ASCII, which the shared validator does not demand. */
    for (const char *p = host; *p; p++)
        if ((unsigned char)*p >= 0x80)
            return NULL;
    if (!xs_addr_valid_domain(host, (size_t)hl))
        return NULL;
    /* Built in place and copied out once: this runs twice per message. */
    struct uri_out b = {.n = 0};
    for (const char *p = u->scheme; *p; p++)
        uri_put(&b, (char)tolower((unsigned char)*p));
    uri_put(&b, ':');
    if (u->username && u->username[0]) {
        for (const unsigned char *p = (const unsigned char *)u->username; *p; p++) {
            if (user_char_ok(*p))
                uri_put(&b, (char)*p);
            else
                uri_put_pct(&b, *p);
        }
        uri_put(&b, '@');
    }
    for (const char *p = host; *p; p++)
        uri_put(&b, (char)tolower((unsigned char)*p));
    /* osip hands parameter values over percent-decoded; a gr without a value
     * (a temporary GRUU's flag form) names no resource. */
    osip_uri_param_t *gr = NULL;
    osip_uri_uparam_get_byname((osip_uri_t *)u, "gr", &gr);
    if (gr && gr->gvalue && gr->gvalue[0]) {
        for (const char *p = ";gr="; *p; p++)
            uri_put(&b, *p);
        for (const unsigned char *p = (const unsigned char *)gr->gvalue; *p; p++) {
            if (param_char_ok(*p))
                uri_put(&b, (char)*p);
            else
                uri_put_pct(&b, *p);
        }
    }
    if (b.over)
        return NULL;
    char *r = malloc(b.n + 1);
    if (r) {
        memcpy(r, b.s, b.n);
        r[b.n] = '\0';
    }
    return r;
}

static const char *header_value(const osip_message_t *m, const char *name, const char *compact)
{
    osip_header_t *h = NULL;
    osip_message_header_get_byname(m, name, 0, &h);
    if (!h && compact)
        osip_message_header_get_byname(m, compact, 0, &h);
    return h ? h->hvalue : NULL;
}

/* The first language tag of Content-Language, when it is one; the event
 * simply carries none otherwise, since a bad tag is no reason to lose a
 * message. */
static int lang_of(const char *v, char *out, size_t n)
{
    if (!v)
        return 0;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t len = 0;
    while (v[len] && (isalnum((unsigned char)v[len]) || v[len] == '-'))
        len++;
    if (len == 0 || len > LANG_MAX || len >= n)
        return 0;
    const char *rest = v + len;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if (*rest && *rest != ',')
        return 0;
    memcpy(out, v, len);
    out[len] = '\0';
    return 1;
}

char *xs_sip_uri_for_event(const osip_uri_t *u)
{
    int status;
    const char *why;
    return uri_for_event(u, &status, &why);
}

int xs_sip_message_to_event(const osip_message_t *m, const char *body, size_t blen,
                            struct xs_event **out, const char **why)
{
    int status;
    *out = NULL;
    osip_content_type_t *ct = m->content_type;
    if (ct && blen == 0) {
        *why = "MESSAGE without body";
        return 400;
    }
    /* RFC 7572 §7: text/plain in any charset we can convert, text/html as
     * its text; the result is what XML can carry. */
    osip_generic_param_t *cs = NULL;
    if (ct)
        osip_generic_param_get_byname(&ct->gen_params, "charset", &cs);
    struct xs_buf text;
    xs_buf_init(&text, 3 * blen + 16);
    status = xs_sip_content_to_text(ct ? ct->type : NULL, ct ? ct->subtype : NULL,
                                    cs ? cs->gvalue : NULL, body, blen, &text, why);
    if (status) {
        xs_buf_free(&text);
        return status;
    }
    const char *subject = header_value(m, "subject", "s");
    if (subject && (strlen(subject) > SUBJECT_MAX || !xs_sip_text_ok(subject, strlen(subject)))) {
        xs_buf_free(&text);
        *why = "Subject is not UTF-8 text";
        return 400;
    }
    char *from = uri_for_event(m->from->url, &status, why);
    if (!from) {
        xs_buf_free(&text);
        return status;
    }
    /* RFC 7572 §5: the recipient is named by the Request-URI or To. To is
     * preferred (RFC 3428 lets the Request-URI be a contact), but an im: or
     * other non-SIP To, which osip cannot split, gives way to the
     * Request-URI, already known to be sip: or sips:. */
    const osip_uri_t *to_uri = m->to->url;
    if (to_uri->scheme && strcasecmp(to_uri->scheme, "sip") != 0 &&
        strcasecmp(to_uri->scheme, "sips") != 0)
        to_uri = m->req_uri;
    char *to = uri_for_event(to_uri, &status, why);
    if (!to) {
        xs_buf_free(&text);
        free(from);
        return status;
    }
    /* "number@host" as osip writes a Call-ID, put together here. */
    char *callid = NULL;
    const osip_call_id_t *ci = m->call_id;
    if (ci && ci->number) {
        size_t nn = strlen(ci->number), hn = ci->host ? strlen(ci->host) + 1 : 0;
        callid = malloc(nn + hn + 1);
        if (callid) {
            memcpy(callid, ci->number, nn);
            if (ci->host) {
                callid[nn] = '@';
                memcpy(callid + nn + 1, ci->host, hn - 1);
            }
            callid[nn + hn] = '\0';
        }
    }
    if (!callid || !xs_sip_text_ok(callid, strlen(callid))) {
        free(callid);
        xs_buf_free(&text);
        free(from);
        free(to);
        *why = "malformed Call-ID";
        return 400;
    }
    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_SIP);
    ev->from = from;
    ev->to = to;
    char lang[LANG_MAX + 1];
    int rc = 0;
    /* The text buffer becomes the body as it is: it was only ever appended
     * to, so its data is the start of its allocation. */
    if (text.data && text.off == 0) {
        ev->body = text.data;
        xs_buf_init(&text, 0);
    } else {
        rc = xs_event_setn(&ev->body, text.data, text.len);
        xs_buf_free(&text);
    }
    if (!rc) {
        ev->thread = callid;
        callid = NULL;
    }
    /* RFC 7572 §5: no type, or "normal"; never "chat". */
    rc = rc ? rc : xs_event_set(&ev->type, "normal");
    if (!rc && subject)
        rc = xs_event_set(&ev->subject, subject);
    if (!rc && lang_of(header_value(m, "content-language", NULL), lang, sizeof lang))
        rc = xs_event_set(&ev->lang, lang);
    free(callid);
    if (rc) {
        xs_event_free(ev);
        *why = "out of memory";
        return 500;
    }
    *out = ev;
    return 0;
}

/* Copies a URI for the wire: UTF-8 (an IRI from an XMPP address) is
 * percent-encoded, anything else outside printable ASCII or able to break
 * out of <...> is refused, and osip must agree it is a sip:/sips: URI. */
int xs_sip_wire_uri(const char *in, char *out, size_t n)
{
    size_t o = 0;
    if (!in)
        return XS_EINVAL;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (o + 4 > n)
            return XS_EINVAL;
        if (*p >= 0x80) {
            o += (size_t)snprintf(out + o, n - o, "%%%02X", *p);
        } else if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>' || *p == '"') {
            return XS_EINVAL;
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
    osip_uri_t *u = NULL;
    if (osip_uri_init(&u) != 0)
        return XS_ENOMEM;
    int ok = osip_uri_parse(u, out) == 0 && u->scheme && u->host && u->host[0] &&
             (strcasecmp(u->scheme, "sip") == 0 || strcasecmp(u->scheme, "sips") == 0);
    osip_uri_free(u);
    return ok ? 0 : XS_EINVAL;
}

/* v in decimal into out (room for 21 bytes); returns out. */
static const char *decimal(char *out, unsigned long long v)
{
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return out;
}

int xs_sip_build_message(const struct xs_event *ev, const struct xs_sip_req_params *p,
                         struct xs_buf *out, const char **why)
{
    char to[URI_MAX], from[URI_MAX];
    if (xs_sip_wire_uri(ev->to, to, sizeof to) != 0) {
        *why = "recipient is not a usable SIP URI";
        return XS_EINVAL;
    }
    if (xs_sip_wire_uri(ev->from, from, sizeof from) != 0) {
        *why = "sender is not a usable SIP URI";
        return XS_EINVAL;
    }
    if (!ev->body || !ev->body[0]) {
        *why = "message has no body";
        return XS_EPROTO;
    }
    size_t blen = strlen(ev->body);
    if (!xs_sip_text_ok(ev->body, blen)) {
        *why = "body is not UTF-8 text";
        return XS_EPROTO;
    }
    const char *cid = xs_sip_callid_ok(ev->thread) ? ev->thread : p->call_id;
    size_t start = out->len;
    int v6 = strchr(p->via_host, ':') != NULL;
    char port[24], cseq[24];
    /* Appended piece by piece: this runs for every message, and formatting
     * it with printf cost more than everything else the function does. */
    const char *const head[] = {"MESSAGE ",
                                to,
                                " SIP/2.0\r\nVia: SIP/2.0/",
                                p->transport,
                                " ",
                                v6 ? "[" : "",
                                p->via_host,
                                v6 ? "]:" : ":",
                                decimal(port, (unsigned long)p->via_port),
                                ";branch=",
                                p->branch,
                                ";rport\r\nMax-Forwards: 70\r\nFrom: <",
                                from,
                                ">;tag=",
                                p->from_tag,
                                "\r\nTo: <",
                                to,
                                ">\r\nCall-ID: ",
                                cid,
                                "\r\nCSeq: ",
                                decimal(cseq, p->cseq),
                                " MESSAGE\r\n"};
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof head / sizeof head[0]; i++)
        rc = xs_buf_append_str(out, head[i]);
    if (!rc && ev->subject && ev->subject[0]) {
        /* Header folding is gone from RFC 3261; a line break in an XMPP
         * subject becomes a space so it cannot end the header. */
        rc = xs_buf_append_str(out, "Subject: ");
        /* Cut at SUBJECT_MAX bytes, but never inside a UTF-8 sequence. */
        size_t cut = strlen(ev->subject);
        if (cut > SUBJECT_MAX) {
            cut = SUBJECT_MAX;
            while (cut > 0 && ((unsigned char)ev->subject[cut] & 0xc0) == 0x80)
                cut--;
        }
        for (size_t i = 0; !rc && i < cut; i++)
            rc = xs_buf_append(out, ((unsigned char)ev->subject[i] < 0x20) ? " " : ev->subject + i,
                               1);
        rc = rc ? rc : xs_buf_append_str(out, "\r\n");
    }
    char lang[LANG_MAX + 1];
    if (!rc && lang_of(ev->lang, lang, sizeof lang))
        rc = xs_buf_printf(out, "Content-Language: %s\r\n", lang);
    char clen[24];
    if (!rc)
        rc = xs_buf_append_str(out, "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: ");
    if (!rc)
        rc = xs_buf_append_str(out, decimal(clen, blen));
    if (!rc)
        rc = xs_buf_append_str(out, "\r\n\r\n");
    if (!rc)
        rc = xs_buf_append(out, ev->body, blen);
    if (rc) {
        *why = rc == XS_ELIMIT ? "message larger than sip.max_message" : "out of memory";
        return rc;
    }
    /* RFC 3428 §8: outside a media session a MESSAGE MUST NOT exceed 1300
     * bytes unless it goes over a congestion-controlled transport; RFC 7572
     * §6 answers a larger one with policy-violation. */
    if (strcmp(p->transport, "UDP") == 0 && out->len - start > XS_SIP_UDP_MESSAGE_MAX) {
        *why = "message larger than 1300 bytes, the most RFC 3428 allows over UDP, and the SIP "
               "next hop is UDP";
        return XS_ELIMIT;
    }
    return 0;
}
