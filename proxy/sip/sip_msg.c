/* SIP messages on libosip2: parsing and validation of what arrives (a
 * verdict: a response to match, a request to answer locally, or a MESSAGE
 * whose event sip_translate.c builds), transaction keys, and the responses
 * the gateway writes. Framing is sip_frame.c's; everything we send is
 * written as text, osip serializing only the header fields it parsed. No
 * sockets, no timers: the fuzzer drives this file alone. */
#include "sip/sip_msg.h"

#include <stdio.h>
#include <stdlib.h> /* free, behind osip_free */
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "sip/sip_frame.h"
#include "sip/sip_translate.h"

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

/* A key being written into out[0..n), always NUL-terminated, cut at n - 1
 * bytes as snprintf cuts. */
struct key_out {
    char *out;
    size_t n, len;
};

/* Appends at most max bytes of s, as "%.<max>s" does. */
static void key_put(struct key_out *k, const char *s, size_t max)
{
    size_t l = strnlen(s, max);
    size_t room = k->n - 1 - k->len;
    if (l > room)
        l = room;
    memcpy(k->out + k->len, s, l);
    k->len += l;
    k->out[k->len] = '\0';
}

static void make_key(const osip_message_t *m, const osip_via_t *via, const char *method, int server,
                     char *out, size_t n)
{
    osip_generic_param_t *branch = NULL;
    osip_via_param_get_byname((osip_via_t *)via, "branch", &branch);
    const char *b = branch && branch->gvalue ? branch->gvalue : "";
    const char *port = via->port ? via->port : "";
    if (strncmp(b, "z9hG4bK", 7) == 0) {
        /* The keys of RFC 3261 branches, one per message each way, are put
         * together by hand; the same text "b=%.160s|%.100s:%.8s|%.32s" (or
         * "b=%.160s|%.32s" for a client) would give. */
        struct key_out k = {out, n, 0};
        key_put(&k, "b=", 2);
        key_put(&k, b, 160);
        key_put(&k, "|", 1);
        if (server) {
            key_put(&k, via->host ? via->host : "", 100);
            key_put(&k, ":", 1);
            key_put(&k, port, 8);
            key_put(&k, "|", 1);
        }
        key_put(&k, method, 32);
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

/* A MESSAGE that passed check_request: the Request-URI is checked here, as
 * part of the request; what the event holds is sip_translate.c's call. */
static void check_message(const char *data, size_t len, size_t hdr_len, struct xs_sip_in *in)
{
    osip_message_t *m = in->msg;
    if (!m->req_uri || !m->req_uri->scheme) {
        set_answer(in, 400, "malformed Request-URI");
        return;
    }
    if (strcasecmp(m->req_uri->scheme, "sip") != 0 && strcasecmp(m->req_uri->scheme, "sips") != 0) {
        set_answer(in, 416, "only sip: and sips: Request-URIs are supported");
        return;
    }
    const char *why;
    int status = xs_sip_message_to_event(m, data + hdr_len, len - hdr_len, &in->ev, &why);
    if (status) {
        set_answer(in, status, why);
        return;
    }
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

/* A request osip refused whose request line is "METHOD SP URI SP SIP/2.0":
 * when the rest parses with the URI replaced, the URI was what it could not
 * read, and the sender gets 400 instead of silence (RFC 3261 §8.2.2.1). */
static void parse_bad_request_uri(const char *data, size_t hl, struct xs_sip_in *in)
{
    const char *eol = memchr(data, '\n', hl);
    if (!eol)
        return;
    size_t n = (size_t)(eol - data);
    if (n && data[n - 1] == '\r')
        n--;
    const char *sp1 = memchr(data, ' ', n), *sp2 = data + n;
    while (sp2 > data && sp2[-1] != ' ')
        sp2--;
    static const char version[] = "SIP/2.0", stand_in[] = "sip:invalid";
    if (!sp1 || sp1 == data || sp2 - 1 <= sp1 || (size_t)(data + n - sp2) != sizeof version - 1 ||
        strncasecmp(sp2, version, sizeof version - 1) != 0)
        return;
    /* Already the stand-in: the URI was not what osip refused, and trying
     * again would only recurse. */
    if ((size_t)(sp2 - 1 - (sp1 + 1)) == sizeof stand_in - 1 &&
        !memcmp(sp1 + 1, stand_in, sizeof stand_in - 1))
        return;
    struct xs_buf line;
    xs_buf_init(&line, XS_SIP_HEADER_MAX + 64);
    int rc = xs_buf_append(&line, data, (size_t)(sp1 - data));
    rc = rc ? rc : xs_buf_append_str(&line, " sip:invalid SIP/2.0");
    rc = rc ? rc : xs_buf_append(&line, data + n, hl - n); /* from the line's end on */
    if (rc == 0) {
        xs_sip_in_parse_head(line.data, line.len, in);
        if (in->verdict == XS_SIP_ANSWER)
            set_answer(in, 400, "malformed Request-URI");
    }
    xs_buf_free(&line);
}

void xs_sip_in_parse(const char *data, size_t len, int oversize, struct xs_sip_in *in)
{
    memset(in, 0, sizeof *in);
    in->verdict = XS_SIP_DROP;
    size_t hl = xs_sip_frame_head_len(data, len);
    int ended = hl != 0;
    if (!ended)
        hl = len;
    size_t cl = 0;
    if (hl > XS_SIP_HEADER_MAX) {
        xs_sip_in_parse_refused(data, len, in);
        if (in->verdict == XS_SIP_ANSWER)
            set_answer(in, 513, "header section too large");
        return;
    }
    if (ended && xs_sip_frame_content_length(data, hl, &cl) == 1 && cl > len - hl) {
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
        parse_bad_request_uri(data, hl, in);
        if (in->verdict == XS_SIP_DROP)
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
    osip_header_t *require = NULL;
    osip_message_header_get_byname(m, "require", 0, &require);
    if (require && require->hvalue) {
        set_answer(in, 420, "no extensions are supported");
    } else if (strcmp(m->sip_method, "OPTIONS") == 0) {
        set_answer(in, 200, NULL);
    } else if (!strcmp(m->sip_method, "SUBSCRIBE") || !strcmp(m->sip_method, "NOTIFY")) {
        if (oversize) {
            set_answer(in, 413, "message larger than sip.max_message");
        } else {
            /* A datagram may carry bytes past Content-Length (RFC 3261
             * §18.3): they are not part of the body. */
            size_t blen = len - hl, clen = 0;
            if (ended && xs_sip_frame_content_length(data, hl, &clen) == 1 && clen < blen)
                blen = clen;
            in->verdict = XS_SIP_DIALOG;
            in->body = data + hl;
            in->body_len = blen;
        }
    } else if (strcmp(m->sip_method, "MESSAGE") != 0) {
        set_answer(in, 405, "only MESSAGE, SUBSCRIBE, NOTIFY and OPTIONS are accepted");
    } else if (oversize) {
        set_answer(in, 413, "message larger than sip.max_message");
    } else {
        check_message(data, len, hl, in);
    }
}

void xs_sip_in_clear(struct xs_sip_in *in)
{
    if (in->msg)
        osip_message_free(in->msg);
    xs_event_free(in->ev);
    memset(in, 0, sizeof *in);
}

void xs_sip_in_parse_head(const char *data, size_t hdr_len, struct xs_sip_in *in)
{
    memset(in, 0, sizeof *in);
    struct xs_buf copy;
    int rc = xs_sip_frame_copy_head(data, hdr_len, &copy);
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
    size_t hl = xs_sip_frame_head_len(data, len);
    if (!hl)
        hl = len;
    struct xs_buf copy;
    osip_message_t *m = NULL;
    if (xs_sip_frame_copy_head(data, hl, &copy) != 0 || !copy.len || osip_message_init(&m) != 0)
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

/* ---- what we send ---- */

/* How a response echoes the request's headers: in full, or terse for
 * peers we do not trust (compact names, the top Via only unless asked, and
 * no field longer than TERSE_FIELD_MAX: a terse answer never echoes bulk). */
#define TERSE_FIELD_MAX 256

struct echo_style {
    const char *via, *from, *to, *call_id; /* header names */
    size_t field_max;                      /* 0: any length */
};

static const struct echo_style ECHO_FULL = {"Via", "From", "To", "Call-ID", 0};
static const struct echo_style ECHO_TERSE = {"v", "f", "t", "i", TERSE_FIELD_MAX};

/* Appends "name: value" for a header osip has serialized (rc, value from
 * one of its *_to_str calls; value is taken and freed), unless the style
 * bounds fields and this one is longer. */
static int append_header(struct xs_buf *out, const struct echo_style *st, const char *name, int rc,
                         char *value)
{
    int r = 0;
    size_t n = value ? strlen(value) : 0;
    if (rc == 0 && value && (!st->field_max || n <= st->field_max)) {
        r = xs_buf_append_str(out, name);
        r = r ? r : xs_buf_append(out, ": ", 2);
        r = r ? r : xs_buf_append(out, value, n);
        r = r ? r : xs_buf_append(out, "\r\n", 2);
    }
    osip_free(value);
    return r;
}

/* Appends "name: a<sep>b" under the same bound as append_header. */
static int append_pair(struct xs_buf *out, const struct echo_style *st, const char *name,
                       const char *a, const char *sep, const char *b)
{
    size_t an = strlen(a), sn = strlen(sep), bn = strlen(b);
    if (st->field_max && an + sn + bn > st->field_max)
        return 0;
    int r = xs_buf_append_str(out, name);
    r = r ? r : xs_buf_append(out, ": ", 2);
    r = r ? r : xs_buf_append(out, a, an);
    r = r ? r : xs_buf_append(out, sep, sn);
    r = r ? r : xs_buf_append(out, b, bn);
    return r ? r : xs_buf_append(out, "\r\n", 2);
}

/* The status line and the request's Via (the first n), From, To (with
 * to_tag added when it has none), Call-ID and CSeq, as RFC 3261 §8.2.6.2
 * wants them copied into a response. */
static int append_echo(struct xs_buf *out, const struct echo_style *st, const osip_message_t *req,
                       int status, const char *to_tag, int n_vias)
{
    int rc = xs_buf_printf(out, "SIP/2.0 %d %s\r\n", status, xs_sip_reason_phrase(status));
    char *s;
    for (int i = 0; !rc && i < n_vias; i++) {
        s = NULL;
        int src = osip_via_to_str(osip_list_get(&req->vias, i), &s);
        rc = append_header(out, st, st->via, src, s);
    }
    if (!rc && req->from) {
        s = NULL;
        int src = osip_from_to_str(req->from, &s);
        rc = append_header(out, st, st->from, src, s);
    }
    if (!rc && req->to) {
        osip_generic_param_t *tag = NULL;
        osip_to_get_tag(req->to, &tag);
        s = NULL;
        int src = osip_to_to_str(req->to, &s);
        /* osip writes a To as its URI and then its parameters in order, and
         * a tag it is given goes last: appending ";tag=" to the text is what
         * serializing a copy with the tag set gives, without the copy. */
        if (src == 0 && s && !tag && to_tag) {
            size_t sl = strlen(s), tl = strlen(to_tag);
            char *with = osip_malloc(sl + tl + 6);
            if (with) {
                memcpy(with, s, sl);
                memcpy(with + sl, ";tag=", 5);
                memcpy(with + sl + 5, to_tag, tl + 1);
            }
            osip_free(s);
            s = with;
            if (!with)
                rc = XS_ENOMEM;
        }
        if (!rc)
            rc = append_header(out, st, st->to, src, s);
    }
    /* Call-ID and CSeq are written as osip writes them ("number@host",
     * "number METHOD"), without its allocation and sprintf for each. */
    if (!rc && req->call_id && req->call_id->number) {
        const char *h = req->call_id->host;
        rc = append_pair(out, st, st->call_id, req->call_id->number, h ? "@" : "", h ? h : "");
    }
    if (!rc && req->cseq && req->cseq->number && req->cseq->method)
        rc = append_pair(out, st, "CSeq", req->cseq->number, " ", req->cseq->method);
    return rc;
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
    int rc = append_echo(out, &ECHO_FULL, req, status, to_tag, osip_list_size(&req->vias));
    if (!rc && warn_text) {
        rc = xs_buf_printf(out, "Warning: 399 %s \"", warn_host ? warn_host : "xsgw");
        rc = rc ? rc : append_quoted(out, warn_text);
        rc = rc ? rc : xs_buf_append_str(out, "\"\r\n");
    }
    if (!rc && extra)
        rc = xs_buf_append_str(out, extra);
    return rc ? rc : xs_buf_append_str(out, "Content-Length: 0\r\n\r\n");
}

int xs_sip_build_terse_response(const osip_message_t *req, int status, const char *to_tag,
                                int all_vias, struct xs_buf *out)
{
    int n = osip_list_size(&req->vias);
    if (!all_vias && n > 1)
        n = 1;
    int rc = append_echo(out, &ECHO_TERSE, req, status, to_tag, n);
    return rc ? rc : xs_buf_append_str(out, "l: 0\r\n\r\n");
}
