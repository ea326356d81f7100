#define _GNU_SOURCE /* memmem */
#include "sip/sip_msg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/err.h"
#include "core/random.h"
#include "sip/sip_content.h"

/* What a Call-ID, Subject or address may hold before we stop trusting it. */
#define CALLID_MAX 128
#define SUBJECT_MAX 1024
#define LANG_MAX 35
#define URI_MAX 512
#define WARN_TEXT_MAX 200

static void quiet(const char *fi, int li, osip_trace_level_t level, const char *chfr, va_list ap) {}

void xs_sip_msg_global_init(void)
{
    /* parser_init() only fills osip's static header-name table with the same
     * values each time, so repeated calls (every xs_sip_start, every fuzz
     * input) are harmless; no flag of our own is needed. */
    parser_init();
    osip_trace_initialize_func(TRACE_LEVEL0, quiet);
    for (int level = TRACE_LEVEL0; level < END_TRACE_LEVEL; level++)
        osip_trace_disable_level((osip_trace_level_t)level);
}

/* Looks for Content-Length (or its compact form "l") in a header section.
 * Returns 1 with *out, 0 when absent, XS_EPROTO when malformed or given
 * twice with different values. */
static int scan_content_length(const char *h, size_t len, size_t *out)
{
    const char *end = h + len;
    const char *line = memchr(h, '\n', len);
    int found = 0;
    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon && *line != ' ' && *line != '\t') {
            const char *ne = colon;
            while (ne > line && (ne[-1] == ' ' || ne[-1] == '\t'))
                ne--;
            size_t nl = (size_t)(ne - line);
            if ((nl == 14 && strncasecmp(line, "content-length", 14) == 0) ||
                (nl == 1 && (*line == 'l' || *line == 'L'))) {
                const char *v = colon + 1;
                while (v < eol && (*v == ' ' || *v == '\t'))
                    v++;
                size_t n = 0;
                int digits = 0;
                while (v < eol && *v >= '0' && *v <= '9') {
                    if (++digits > 9)
                        return XS_EPROTO;
                    n = n * 10 + (size_t)(*v - '0');
                    v++;
                }
                while (v < eol && (*v == ' ' || *v == '\t' || *v == '\r'))
                    v++;
                if (!digits || v != eol)
                    return XS_EPROTO;
                if (found && *out != n)
                    return XS_EPROTO;
                *out = n;
                found = 1;
            }
        }
        line = eol;
    }
    return found;
}

int xs_sip_frame(const char *data, size_t len, size_t max, int stream, size_t *msg_len,
                 size_t *hdr_len)
{
    *msg_len = 0;
    *hdr_len = 0;
    const char *end = memmem(data, len, "\r\n\r\n", 4);
    if (!end) {
        if (len > max)
            return XS_ELIMIT;
        return stream ? 0 : XS_EPROTO;
    }
    size_t hl = (size_t)(end - data) + 4;
    *hdr_len = hl;
    if (hl > max)
        return XS_ELIMIT;
    size_t cl = 0;
    int rc = scan_content_length(data, hl, &cl);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        if (stream)
            return XS_EPROTO;
        cl = len - hl;
    }
    /* A datagram that promises more body than it carries is still one
     * message: it goes up whole, so the request can be answered 400 (RFC
     * 3261 §18.3) rather than vanish. */
    if (!stream && cl > len - hl) {
        *msg_len = len;
        return 1;
    }
    if (cl > max - hl)
        return XS_ELIMIT;
    *msg_len = hl + cl;
    if (cl > len - hl)
        return 0;
    return 1;
}

int xs_sip_text_ok(const char *s, size_t len)
{
    /* XML 1.0 Char: no C0 control but TAB, LF and CR, and no U+FFFE or
     * U+FFFF (EF BF BE, EF BF BF); DEL is refused as well. The UTF-8 rules
     * are the address validator's, so there is one decoder to trust. */
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len; i++) {
        if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') || p[i] == 0x7f)
            return 0;
        if (p[i] == 0xef && len - i > 2 && p[i + 1] == 0xbf && (p[i + 2] & 0xfe) == 0xbe)
            return 0;
    }
    return xs_addr_utf8_ok(s, len);
}

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

const char *xs_sip_reason_phrase(int status)
{
    switch (status) {
    case 100:
        return "Trying";
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Moved Temporarily";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 410:
        return "Gone";
    case 413:
        return "Request Entity Too Large";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Unsupported URI Scheme";
    case 420:
        return "Bad Extension";
    case 480:
        return "Temporarily Unavailable";
    case 481:
        return "Call/Transaction Does Not Exist";
    case 482:
        return "Loop Detected";
    case 483:
        return "Too Many Hops";
    case 484:
        return "Address Incomplete";
    case 488:
        return "Not Acceptable Here";
    case 500:
        return "Server Internal Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Server Time-out";
    case 513:
        return "Message Too Large";
    case 600:
        return "Busy Everywhere";
    case 603:
        return "Decline";
    case 604:
        return "Does Not Exist Anywhere";
    case 606:
        return "Not Acceptable";
    }
    return "Unknown";
}

/* ---- arriving messages ---- */

static void set_answer(struct xs_sip_in *in, int status, const char *why)
{
    in->verdict = XS_SIP_ANSWER;
    in->status = status;
    in->why = why;
}

static void make_key(const osip_message_t *m, const osip_via_t *via, const char *method, int server,
                     char *out, size_t n)
{
    osip_generic_param_t *branch = NULL;
    osip_via_param_get_byname((osip_via_t *)via, "branch", &branch);
    const char *b = branch && branch->gvalue ? branch->gvalue : "";
    const char *port = via->port ? via->port : "";
    if (strncmp(b, "z9hG4bK", 7) == 0) {
        if (server)
            snprintf(out, n, "b=%.160s|%.100s:%.8s|%.32s", b, via->host, port, method);
        else
            snprintf(out, n, "b=%.160s|%.32s", b, method);
        return;
    }
    /* RFC 2543 peers have no magic cookie: fall back to the identity of the
     * request itself (RFC 3261 §17.2.3, simplified to what MESSAGE needs). */
    osip_generic_param_t *ftag = NULL;
    if (m->from)
        osip_from_get_tag(m->from, &ftag);
    snprintf(out, n, "c=%.80s@%.60s|%.10s|%.60s|%.100s:%.8s|%.32s",
             m->call_id && m->call_id->number ? m->call_id->number : "",
             m->call_id && m->call_id->host ? m->call_id->host : "",
             m->cseq && m->cseq->number ? m->cseq->number : "",
             ftag && ftag->gvalue ? ftag->gvalue : "", via->host, port, method);
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
    struct xs_buf b;
    xs_buf_init(&b, URI_MAX);
    int rc = 0;
    for (const char *p = u->scheme; *p && !rc; p++)
        rc = xs_buf_append(&b, &(char){(char)tolower((unsigned char)*p)}, 1);
    rc = rc ? rc : xs_buf_append(&b, ":", 1);
    if (u->username && u->username[0]) {
        for (const unsigned char *p = (const unsigned char *)u->username; *p && !rc; p++) {
            if (user_char_ok(*p))
                rc = xs_buf_append(&b, p, 1);
            else
                rc = xs_buf_printf(&b, "%%%02X", *p);
        }
        rc = rc ? rc : xs_buf_append(&b, "@", 1);
    }
    for (const char *p = host; *p && !rc; p++)
        rc = xs_buf_append(&b, &(char){(char)tolower((unsigned char)*p)}, 1);
    /* osip hands parameter values over percent-decoded; a gr without a value
     * (a temporary GRUU's flag form) names no resource. */
    osip_uri_param_t *gr = NULL;
    osip_uri_uparam_get_byname((osip_uri_t *)u, "gr", &gr);
    if (!rc && gr && gr->gvalue && gr->gvalue[0]) {
        rc = xs_buf_append_str(&b, ";gr=");
        for (const unsigned char *p = (const unsigned char *)gr->gvalue; *p && !rc; p++)
            rc = param_char_ok(*p) ? xs_buf_append(&b, p, 1) : xs_buf_printf(&b, "%%%02X", *p);
    }
    if (rc) {
        xs_buf_free(&b);
        return NULL;
    }
    return b.data;
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

static void check_message(const char *data, size_t len, struct xs_sip_in *in)
{
    osip_message_t *m = in->msg;
    int status;
    const char *why;
    if (!m->req_uri || !m->req_uri->scheme) {
        set_answer(in, 400, "malformed Request-URI");
        return;
    }
    if (strcasecmp(m->req_uri->scheme, "sip") != 0 && strcasecmp(m->req_uri->scheme, "sips") != 0) {
        set_answer(in, 416, "only sip: and sips: Request-URIs are supported");
        return;
    }
    osip_content_type_t *ct = m->content_type;
    const char *hend = memmem(data, len, "\r\n\r\n", 4);
    const char *body = hend ? hend + 4 : data + len;
    size_t blen = (size_t)(data + len - body);
    if (ct && blen == 0) {
        set_answer(in, 400, "MESSAGE without body");
        return;
    }
    /* RFC 7572 §7: text/plain in any charset we can convert, text/html as
     * its text; the result is what XML can carry. */
    osip_generic_param_t *cs = NULL;
    if (ct)
        osip_generic_param_get_byname(&ct->gen_params, "charset", &cs);
    struct xs_buf text;
    xs_buf_init(&text, 3 * blen + 16);
    status = xs_sip_content_to_text(ct ? ct->type : NULL, ct ? ct->subtype : NULL,
                                    cs ? cs->gvalue : NULL, body, blen, &text, &why);
    if (status) {
        xs_buf_free(&text);
        set_answer(in, status, why);
        return;
    }
    const char *subject = header_value(m, "subject", "s");
    if (subject && (strlen(subject) > SUBJECT_MAX || !xs_sip_text_ok(subject, strlen(subject)))) {
        xs_buf_free(&text);
        set_answer(in, 400, "Subject is not UTF-8 text");
        return;
    }
    char *from = uri_for_event(m->from->url, &status, &why);
    if (!from) {
        xs_buf_free(&text);
        set_answer(in, status, why);
        return;
    }
    /* RFC 7572 §5: the recipient is named by the Request-URI or To. To is
     * preferred (RFC 3428 lets the Request-URI be a contact), but an im: or
     * other non-SIP To, which osip cannot split, gives way to the
     * Request-URI, already known to be sip: or sips:. */
    const osip_uri_t *to_uri = m->to->url;
    if (to_uri->scheme && strcasecmp(to_uri->scheme, "sip") != 0 &&
        strcasecmp(to_uri->scheme, "sips") != 0)
        to_uri = m->req_uri;
    char *to = uri_for_event(to_uri, &status, &why);
    if (!to) {
        xs_buf_free(&text);
        free(from);
        set_answer(in, status, why);
        return;
    }
    char *callid = NULL;
    if (osip_call_id_to_str(m->call_id, &callid) != 0 || !xs_sip_text_ok(callid, strlen(callid))) {
        osip_free(callid);
        xs_buf_free(&text);
        free(from);
        free(to);
        set_answer(in, 400, "malformed Call-ID");
        return;
    }
    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_SIP);
    ev->from = from;
    ev->to = to;
    char lang[LANG_MAX + 1];
    int rc = xs_event_setn(&ev->body, text.data, text.len);
    xs_buf_free(&text);
    rc = rc ? rc : xs_event_set(&ev->thread, callid);
    /* RFC 7572 §5: no type, or "normal"; never "chat". */
    rc = rc ? rc : xs_event_set(&ev->type, "normal");
    if (!rc && subject)
        rc = xs_event_set(&ev->subject, subject);
    if (!rc && lang_of(header_value(m, "content-language", NULL), lang, sizeof lang))
        rc = xs_event_set(&ev->lang, lang);
    osip_free(callid);
    if (rc) {
        xs_event_free(ev);
        set_answer(in, 500, "out of memory");
        return;
    }
    in->ev = ev;
    in->verdict = XS_SIP_SUBMIT;
}

/* The Max-Forwards check of RFC 3261 §16.3 step 3: 0 when the request may
 * go on, else the status to answer. An absent header is fine (RFC 2543
 * peers); one that is not a number is not. */
static int max_forwards_status(const osip_message_t *m)
{
    osip_header_t *h = NULL, *again = NULL;
    int pos = osip_message_header_get_byname(m, "max-forwards", 0, &h);
    if (pos < 0 || !h)
        return 0;
    if (osip_message_header_get_byname(m, "max-forwards", pos + 1, &again) >= 0 || !h->hvalue)
        return 400;
    const char *v = h->hvalue;
    while (*v == ' ' || *v == '\t')
        v++;
    unsigned long n = 0;
    int digits = 0;
    for (; *v >= '0' && *v <= '9'; v++)
        if (++digits <= 9)
            n = n * 10 + (unsigned long)(*v - '0');
    while (*v == ' ' || *v == '\t')
        v++;
    if (!digits || *v)
        return 400;
    return n == 0 ? 483 : 0;
}

/* The request checks that come before the method is looked at. */
static void check_request(osip_message_t *m, struct xs_sip_in *in)
{
    int mf = max_forwards_status(m);
    if (!m->from || !m->from->url)
        set_answer(in, 400, "missing or malformed From");
    else if (!m->to || !m->to->url)
        set_answer(in, 400, "missing or malformed To");
    else if (!m->call_id || !m->call_id->number)
        set_answer(in, 400, "missing Call-ID");
    else if (!m->cseq || !m->cseq->method || !m->cseq->number)
        set_answer(in, 400, "missing or malformed CSeq");
    else if (strcmp(m->cseq->method, m->sip_method) != 0)
        set_answer(in, 400, "CSeq method does not match the request");
    else if (mf == 400)
        set_answer(in, 400, "malformed Max-Forwards");
    /* OPTIONS with Max-Forwards 0 is how a peer asks the next element about
     * itself, so it is answered as usual (RFC 3261 §11, §16.3). */
    else if (mf == 483 && strcmp(m->sip_method, "OPTIONS") != 0)
        set_answer(in, 483, "Max-Forwards reached 0");
}

/* A datagram whose Content-Length is larger than what it carries: only its
 * header section is parsed, to answer 400 (RFC 3261 §18.3). */
static void parse_truncated(const char *data, size_t hdr_len, struct xs_sip_in *in)
{
    xs_sip_in_parse_head(data, hdr_len, in);
    if (in->verdict == XS_SIP_ANSWER)
        set_answer(in, 400, "Content-Length larger than the datagram");
}

void xs_sip_in_parse(const char *data, size_t len, int oversize, struct xs_sip_in *in)
{
    memset(in, 0, sizeof *in);
    in->verdict = XS_SIP_DROP;
    const char *hend = memmem(data, len, "\r\n\r\n", 4);
    size_t hl = hend ? (size_t)(hend - data) + 4 : len;
    size_t cl = 0;
    if (hl > XS_SIP_HEADER_MAX) {
        xs_sip_in_parse_refused(data, len, in);
        if (in->verdict == XS_SIP_ANSWER)
            set_answer(in, 513, "header section too large");
        return;
    }
    if (hend && scan_content_length(data, hl, &cl) == 1 && cl > len - hl) {
        parse_truncated(data, hl, in);
        return;
    }
    osip_message_t *m = NULL;
    if (osip_message_init(&m) != 0) {
        in->why = "out of memory";
        return;
    }
    if (osip_message_parse(m, data, len) != 0) {
        osip_message_free(m);
        in->why = "unparsable message";
        return;
    }
    in->msg = m;
    osip_via_t *via = NULL;
    osip_message_get_via(m, 0, &via);
    if (!via || !via->host || !via->host[0]) {
        in->why = "no Via to answer to";
        return;
    }
    if (MSG_IS_RESPONSE(m)) {
        if (osip_list_size(&m->vias) > XS_SIP_VIA_MAX) {
            in->why = "too many Via headers";
            return;
        }
        if (!m->cseq || !m->cseq->method || !m->cseq->number) {
            in->why = "response without CSeq";
            return;
        }
        if (m->status_code < 100 || m->status_code > 699) {
            in->why = "status code out of range";
            return;
        }
        make_key(m, via, m->cseq->method, 0, in->key, sizeof in->key);
        in->verdict = XS_SIP_RESPONSE;
        return;
    }
    if (!m->sip_method) {
        in->why = "no method";
        return;
    }
    int ack = strcmp(m->sip_method, "ACK") == 0;
    make_key(m, via, ack ? "INVITE" : m->sip_method, 1, in->key, sizeof in->key);
    if (ack) {
        in->verdict = XS_SIP_ACK;
        return;
    }
    if (osip_list_size(&m->vias) > XS_SIP_VIA_MAX) {
        set_answer(in, 400, "too many Via headers");
        in->absurd = 1;
        return;
    }
    check_request(m, in);
    if (in->verdict == XS_SIP_ANSWER)
        return;
    if (header_value(m, "require", NULL)) {
        set_answer(in, 420, "no extensions are supported");
    } else if (strcmp(m->sip_method, "OPTIONS") == 0) {
        set_answer(in, 200, NULL);
    } else if (strcmp(m->sip_method, "MESSAGE") != 0) {
        set_answer(in, 405, "only MESSAGE and OPTIONS are accepted");
    } else if (oversize) {
        set_answer(in, 413, "message larger than sip.max_message");
    } else {
        check_message(data, len, in);
    }
}

void xs_sip_in_clear(struct xs_sip_in *in)
{
    if (in->msg)
        osip_message_free(in->msg);
    xs_event_free(in->ev);
    memset(in, 0, sizeof *in);
}

/* Copies a header section without its Content-Length lines into copy
 * (initialised here; free it), so osip parses it as a request with no body. */
static int copy_without_length(const char *data, size_t hdr_len, struct xs_buf *copy)
{
    xs_buf_init(copy, hdr_len);
    const char *end = data + hdr_len;
    const char *line = data;
    int rc = 0;
    while (!rc && line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        eol = eol ? eol + 1 : end;
        size_t n = (size_t)(eol - line);
        int is_cl = (n > 15 && strncasecmp(line, "content-length", 14) == 0 &&
                     (line[14] == ':' || line[14] == ' ' || line[14] == '\t')) ||
                    (n > 2 && (line[0] == 'l' || line[0] == 'L') &&
                     (line[1] == ':' || line[1] == ' ' || line[1] == '\t'));
        if (!is_cl)
            rc = xs_buf_append(copy, line, n);
        line = eol;
    }
    return rc;
}

void xs_sip_in_parse_head(const char *data, size_t hdr_len, struct xs_sip_in *in)
{
    memset(in, 0, sizeof *in);
    struct xs_buf copy;
    int rc = copy_without_length(data, hdr_len, &copy);
    if (!rc && copy.len) {
        xs_sip_in_parse(copy.data, copy.len, 0, in);
        if (in->verdict == XS_SIP_SUBMIT) {
            xs_event_free(in->ev);
            in->ev = NULL;
            in->verdict = XS_SIP_ANSWER;
        }
        if (in->verdict != XS_SIP_ANSWER)
            in->verdict = XS_SIP_DROP;
    }
    xs_buf_free(&copy);
}

void xs_sip_in_parse_refused(const char *data, size_t len, struct xs_sip_in *in)
{
    memset(in, 0, sizeof *in);
    in->verdict = XS_SIP_DROP;
    in->why = "not a request that can be answered";
    const char *hend = memmem(data, len, "\r\n\r\n", 4);
    size_t hl = hend ? (size_t)(hend - data) + 4 : len;
    struct xs_buf copy;
    osip_message_t *m = NULL;
    if (copy_without_length(data, hl, &copy) != 0 || !copy.len || osip_message_init(&m) != 0)
        goto done;
    if (osip_message_parse(m, copy.data, copy.len) != 0) {
        osip_message_free(m);
        goto done;
    }
    in->msg = m;
    osip_via_t *via = NULL;
    osip_message_get_via(m, 0, &via);
    if (MSG_IS_RESPONSE(m) || !m->sip_method || strcmp(m->sip_method, "ACK") == 0 || !via ||
        !via->host || !via->host[0])
        goto done;
    make_key(m, via, m->sip_method, 1, in->key, sizeof in->key);
    in->verdict = XS_SIP_ANSWER;
    in->status = 403;
    in->why = "source not trusted";
    in->absurd = hl > XS_SIP_HEADER_MAX || osip_list_size(&m->vias) > XS_SIP_VIA_MAX;
done:
    xs_buf_free(&copy);
}

void xs_sip_random_hex(char *out, size_t nbytes)
{
    xs_random_hex(out, nbytes);
}

/* ---- what we send ---- */

/* Appends "name: value" for a header osip has serialized (rc, value from
 * one of its *_to_str calls; value is taken and freed). */
static int append_header(struct xs_buf *out, const char *name, int rc, char *value)
{
    int r = 0;
    if (rc == 0 && value)
        r = xs_buf_printf(out, "%s: %s\r\n", name, value);
    osip_free(value);
    return r;
}

/* Writes text as the inside of a quoted-string: no control characters, the
 * quote and backslash escaped, bounded, never cut inside a UTF-8 sequence. */
static int append_quoted(struct xs_buf *out, const char *text)
{
    size_t n = 0;
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && !rc; p++, n++) {
        if (n >= WARN_TEXT_MAX && (*p & 0xc0) != 0x80)
            break;
        if (*p < 0x20 || *p == 0x7f)
            rc = xs_buf_append(out, " ", 1);
        else if (*p == '"' || *p == '\\')
            rc = xs_buf_printf(out, "\\%c", *p);
        else
            rc = xs_buf_append(out, p, 1);
    }
    return rc;
}

int xs_sip_build_response(const osip_message_t *req, int status, const char *to_tag,
                          const char *warn_host, const char *warn_text, const char *extra,
                          struct xs_buf *out)
{
    int rc = xs_buf_printf(out, "SIP/2.0 %d %s\r\n", status, xs_sip_reason_phrase(status));
    char *s = NULL;
    int src;
    for (int i = 0; !rc && i < osip_list_size(&req->vias); i++) {
        const osip_via_t *via = osip_list_get(&req->vias, i);
        s = NULL;
        src = osip_via_to_str(via, &s);
        rc = append_header(out, "Via", src, s);
    }
    if (!rc && req->from) {
        s = NULL;
        src = osip_from_to_str(req->from, &s);
        rc = append_header(out, "From", src, s);
    }
    if (!rc && req->to) {
        osip_generic_param_t *tag = NULL;
        osip_to_get_tag(req->to, &tag);
        osip_to_t *to = NULL;
        s = NULL;
        if (!tag && to_tag && osip_to_clone(req->to, &to) == 0) {
            osip_to_set_tag(to, osip_strdup(to_tag));
            src = osip_to_to_str(to, &s);
            osip_to_free(to);
        } else {
            src = osip_to_to_str(req->to, &s);
        }
        rc = append_header(out, "To", src, s);
    }
    if (!rc && req->call_id) {
        s = NULL;
        src = osip_call_id_to_str(req->call_id, &s);
        rc = append_header(out, "Call-ID", src, s);
    }
    if (!rc && req->cseq) {
        s = NULL;
        src = osip_cseq_to_str(req->cseq, &s);
        rc = append_header(out, "CSeq", src, s);
    }
    if (!rc && warn_text) {
        rc = xs_buf_printf(out, "Warning: 399 %s \"", warn_host ? warn_host : "xsgw");
        rc = rc ? rc : append_quoted(out, warn_text);
        rc = rc ? rc : xs_buf_append_str(out, "\"\r\n");
    }
    if (!rc && extra)
        rc = xs_buf_append_str(out, extra);
    return rc ? rc : xs_buf_append_str(out, "Content-Length: 0\r\n\r\n");
}

#define TERSE_FIELD_MAX 256

/* Appends "name: value" for a header osip serialized (value taken), unless
 * it is longer than TERSE_FIELD_MAX: a terse answer never echoes bulk. */
static int append_terse(struct xs_buf *out, const char *name, int rc, char *value)
{
    int r = 0;
    if (rc == 0 && value && strlen(value) <= TERSE_FIELD_MAX)
        r = xs_buf_printf(out, "%s: %s\r\n", name, value);
    osip_free(value);
    return r;
}

int xs_sip_build_terse_response(const osip_message_t *req, int status, const char *to_tag,
                                int all_vias, struct xs_buf *out)
{
    int rc = xs_buf_printf(out, "SIP/2.0 %d %s\r\n", status, xs_sip_reason_phrase(status));
    int n = osip_list_size(&req->vias);
    if (!all_vias && n > 1)
        n = 1;
    char *s = NULL;
    for (int i = 0; !rc && i < n; i++) {
        s = NULL;
        int src = osip_via_to_str(osip_list_get(&req->vias, i), &s);
        rc = append_terse(out, "v", src, s);
    }
    if (!rc && req->from) {
        s = NULL;
        int src = osip_from_to_str(req->from, &s);
        rc = append_terse(out, "f", src, s);
    }
    if (!rc && req->to) {
        osip_generic_param_t *tag = NULL;
        osip_to_get_tag(req->to, &tag);
        osip_to_t *to = NULL;
        int src;
        s = NULL;
        if (!tag && to_tag && osip_to_clone(req->to, &to) == 0) {
            osip_to_set_tag(to, osip_strdup(to_tag));
            src = osip_to_to_str(to, &s);
            osip_to_free(to);
        } else {
            src = osip_to_to_str(req->to, &s);
        }
        rc = append_terse(out, "t", src, s);
    }
    if (!rc && req->call_id) {
        s = NULL;
        int src = osip_call_id_to_str(req->call_id, &s);
        rc = append_terse(out, "i", src, s);
    }
    if (!rc && req->cseq) {
        s = NULL;
        int src = osip_cseq_to_str(req->cseq, &s);
        rc = append_terse(out, "CSeq", src, s);
    }
    return rc ? rc : xs_buf_append_str(out, "l: 0\r\n\r\n");
}

/* Copies a URI for the wire: UTF-8 (an IRI from an XMPP address) is
 * percent-encoded, anything else outside printable ASCII or able to break
 * out of <...> is refused, and osip must agree it is a sip:/sips: URI. */
static int wire_uri(const char *in, char *out, size_t n)
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

int xs_sip_build_message(const struct xs_event *ev, const struct xs_sip_req_params *p,
                         struct xs_buf *out, const char **why)
{
    char to[URI_MAX], from[URI_MAX];
    if (wire_uri(ev->to, to, sizeof to) != 0) {
        *why = "recipient is not a usable SIP URI";
        return XS_EINVAL;
    }
    if (wire_uri(ev->from, from, sizeof from) != 0) {
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
    int rc = xs_buf_printf(out,
                           "MESSAGE %s SIP/2.0\r\n"
                           "Via: SIP/2.0/%s %s%s%s:%d;branch=%s;rport\r\n"
                           "Max-Forwards: 70\r\n"
                           "From: <%s>;tag=%s\r\n"
                           "To: <%s>\r\n"
                           "Call-ID: %s\r\n"
                           "CSeq: %u MESSAGE\r\n",
                           to, p->transport, v6 ? "[" : "", p->via_host, v6 ? "]" : "", p->via_port,
                           p->branch, from, p->from_tag, to, cid, (unsigned)p->cseq);
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
    if (!rc)
        rc = xs_buf_printf(out,
                           "Content-Type: text/plain;charset=UTF-8\r\n"
                           "Content-Length: %zu\r\n\r\n",
                           blen);
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
