/* The XMPP stream parser: expat in namespace mode, fed whatever the network
 * delivers, handing out the stream header, whole stanzas and the stream end.
 *
 * Sizes are counted in input bytes. The current "region" starts at `mark`:
 * the stream header from byte 0, then each stanza from its start tag, and
 * the gaps between stanzas from the end of what came before. Input is fed to
 * expat in slices, and after each slice the region so far is checked against
 * max_stanza_bytes. Expat holds an unfinished token (a start tag with endless
 * attributes, say) in its own buffer without calling us, so this check is
 * what stops it from growing, and a 10 MB stanza fails after about
 * max_stanza_bytes + one slice. The handlers check the exact size at each
 * event, so a stanza one byte over the limit fails however it is split. */
#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "xmpp/xml.h"

#define NS_SEP '\x01' /* a control character: it can be part of no XML name or URI */
#define NS_STREAMS "http://etherx.jabber.org/streams"
#define NS_XML "http://www.w3.org/XML/1998/namespace"
#define FEED_SLICE 4096

enum pstate { P_RUNNING, P_STOPPED, P_CLOSED, P_FAILED };

struct xs_xml_parser {
    XML_Parser xp;
    struct xs_xml_limits lim;
    const struct xs_xml_cbs *cbs; /* borrowed */
    void *ud;
    enum pstate state;
    int err;
    const char *cond;
    char detail[160];
    int in_feed;
    size_t depth;             /* open elements, counting <stream:stream> as 1 */
    struct xs_xml_el **stack; /* open elements of the current stanza; stack[0] owns the tree */
    size_t stack_cap;
    struct xs_buf text;      /* character data not yet attached to the innermost element */
    unsigned long long fed;  /* bytes handed to expat so far */
    unsigned long long mark; /* where the current region began */
};

static void fail(struct xs_xml_parser *p, int err, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records the first failure only: what follows it is a consequence. */
static void fail(struct xs_xml_parser *p, int err, const char *cond, const char *fmt, ...)
{
    if (p->state != P_RUNNING)
        return;
    p->state = P_FAILED;
    p->err = err;
    p->cond = cond;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof p->detail, fmt, ap);
    va_end(ap);
    if (p->in_feed)
        XML_StopParser(p->xp, XML_FALSE);
}

static void fail_nomem(struct xs_xml_parser *p)
{
    fail(p, XS_ENOMEM, "resource-constraint", "out of memory while parsing");
}

static unsigned long long event_end(const struct xs_xml_parser *p)
{
    return (unsigned long long)XML_GetCurrentByteIndex(p->xp) +
           (unsigned long long)XML_GetCurrentByteCount(p->xp);
}

/* Nonzero (and the parser failed) when the region has grown past the limit
 * by the end of the current event. */
static int over_size(struct xs_xml_parser *p, const char *what)
{
    unsigned long long end = event_end(p);
    if (end - p->mark <= p->lim.max_stanza_bytes)
        return 0;
    fail(p, XS_ELIMIT, "policy-violation", "%s exceeds %zu bytes", what, p->lim.max_stanza_bytes);
    return 1;
}

static int is_ws(const char *s, int len)
{
    for (int i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return 0;
    return 1;
}

/* Splits an expat name "uri<SEP>local" into a NUL-terminated namespace copy
 * (returned owned, "" when unqualified) and the local part. */
static char *split_name(const char *name, const char **local)
{
    const char *sep = strchr(name, NS_SEP);
    *local = sep ? sep + 1 : name;
    return sep ? strndup(name, (size_t)(sep - name)) : strdup("");
}

static int set_attrs(struct xs_xml_el *el, const char **atts)
{
    for (size_t i = 0; atts[i]; i += 2) {
        const char *local;
        char *ns = split_name(atts[i], &local);
        if (!ns)
            return XS_ENOMEM;
        struct xs_buf name;
        xs_buf_init(&name, (size_t)-1 / 2);
        int rc;
        if (!*ns)
            rc = xs_buf_append_str(&name, local);
        else if (!strcmp(ns, NS_XML))
            rc = xs_buf_printf(&name, "xml:%s", local);
        else
            rc = xs_buf_printf(&name, "{%s}%s", ns, local);
        free(ns);
        if (!rc)
            rc = xs_xml_el_set_attr(el, name.data, atts[i + 1]);
        xs_buf_free(&name);
        if (rc)
            return XS_ENOMEM;
    }
    return 0;
}

static int too_many_attrs(struct xs_xml_parser *p, const char **atts)
{
    size_t n = 0;
    while (atts[2 * n])
        n++;
    if (n <= p->lim.max_attrs)
        return 0;
    fail(p, XS_ELIMIT, "policy-violation", "%zu attributes on one element (max %zu)", n,
         p->lim.max_attrs);
    return 1;
}

static int flush_text(struct xs_xml_parser *p, struct xs_xml_el *el)
{
    if (!p->text.len)
        return 0;
    int rc = xs_xml_el_add_text(el, p->text.data, p->text.len);
    xs_buf_reset(&p->text);
    return rc;
}

static void on_stream_header(struct xs_xml_parser *p, const char *name, const char **atts)
{
    const char *local;
    char *ns = split_name(name, &local);
    if (!ns) {
        fail_nomem(p);
        return;
    }
    int ok_ns = !strcmp(ns, NS_STREAMS);
    free(ns);
    if (strcmp(local, "stream")) {
        fail(p, XS_EPROTO, "bad-format", "first element is not <stream:stream>");
        return;
    }
    if (!ok_ns) {
        fail(p, XS_EPROTO, "invalid-namespace", "stream element not in " NS_STREAMS);
        return;
    }
    if (over_size(p, "stream header") || too_many_attrs(p, atts))
        return;
    struct xs_xml_el *h = xs_xml_el_new(NS_STREAMS, "stream");
    if (!h || set_attrs(h, atts)) {
        xs_xml_el_free(h);
        fail_nomem(p);
        return;
    }
    p->depth = 1;
    p->mark = event_end(p);
    if (p->cbs->stream_open)
        p->cbs->stream_open(p->ud, h);
    xs_xml_el_free(h);
}

static int push(struct xs_xml_parser *p, struct xs_xml_el *el, size_t level)
{
    if (level >= p->stack_cap) {
        size_t cap = p->stack_cap ? p->stack_cap * 2 : 8;
        struct xs_xml_el **s = realloc(p->stack, cap * sizeof *s);
        if (!s)
            return XS_ENOMEM;
        p->stack = s;
        p->stack_cap = cap;
    }
    p->stack[level] = el;
    return 0;
}

static void XMLCALL on_start(void *ud, const char *name, const char **atts)
{
    struct xs_xml_parser *p = ud;
    if (p->state != P_RUNNING)
        return;
    if (p->depth == 0) {
        on_stream_header(p, name, atts);
        return;
    }
    size_t level = p->depth - 1; /* index in the stack: the stanza is 0 */
    if (level == 0)
        p->mark = (unsigned long long)XML_GetCurrentByteIndex(p->xp);
    if (over_size(p, "stanza") || too_many_attrs(p, atts))
        return;
    if (level + 1 > p->lim.max_depth) {
        fail(p, XS_ELIMIT, "policy-violation", "elements nested deeper than %zu", p->lim.max_depth);
        return;
    }
    const char *local;
    char *ns = split_name(name, &local);
    struct xs_xml_el *el = NULL;
    if (ns && level == 0)
        el = xs_xml_el_new(ns, local);
    else if (ns && !flush_text(p, p->stack[level - 1]))
        el = xs_xml_el_add_child(p->stack[level - 1], ns, local);
    free(ns);
    /* A child already hangs in the tree; only a new stanza root needs freeing. */
    if (!el || set_attrs(el, atts) || push(p, el, level)) {
        if (el && level == 0)
            xs_xml_el_free(el);
        fail_nomem(p);
        return;
    }
    p->depth++;
}

static void XMLCALL on_end(void *ud, const char *name)
{
    struct xs_xml_parser *p = ud;
    if (p->state != P_RUNNING)
        return;
    if (p->depth == 1) {
        p->state = P_CLOSED;
        p->depth = 0;
        if (p->in_feed)
            XML_StopParser(p->xp, XML_FALSE);
        if (p->cbs->stream_close)
            p->cbs->stream_close(p->ud);
        return;
    }
    size_t level = p->depth - 2;
    if (flush_text(p, p->stack[level])) {
        fail_nomem(p);
        return;
    }
    if (level > 0) {
        p->depth--;
        return;
    }
    if (over_size(p, "stanza"))
        return;
    struct xs_xml_el *st = p->stack[0];
    p->stack[0] = NULL;
    p->depth = 1;
    p->mark = event_end(p);
    if (p->cbs->stanza)
        p->cbs->stanza(p->ud, st);
    else
        xs_xml_el_free(st);
}

static void XMLCALL on_text(void *ud, const char *s, int len)
{
    struct xs_xml_parser *p = ud;
    if (p->state != P_RUNNING)
        return;
    if (p->depth <= 1) {
        /* Whitespace keepalives between stanzas: each one restarts the
         * region, so a stream that idles for days is not cut off. */
        if (!is_ws(s, len)) {
            fail(p, XS_EPROTO, "bad-format", "character data between stanzas");
            return;
        }
        p->mark = event_end(p);
        return;
    }
    if (over_size(p, "stanza"))
        return;
    int rc = xs_buf_append(&p->text, s, (size_t)len);
    if (rc == XS_ENOMEM)
        fail_nomem(p);
    else if (rc)
        fail(p, XS_ELIMIT, "policy-violation", "character data exceeds %zu bytes",
             p->lim.max_stanza_bytes);
}

static void restricted(struct xs_xml_parser *p, const char *what)
{
    fail(p, XS_EPROTO, "restricted-xml", "%s not allowed in XMPP (RFC 6120 11.1)", what);
}

static void XMLCALL on_doctype(void *ud, const char *name, const char *sysid, const char *pubid,
                               int has_internal)
{
    restricted(ud, "DTD");
}

static void XMLCALL on_entity_decl(void *ud, const char *name, int is_pe, const char *value,
                                   int value_len, const char *base, const char *sysid,
                                   const char *pubid, const char *notation)
{
    restricted(ud, "entity declaration");
}

static void XMLCALL on_pi(void *ud, const char *target, const char *data)
{
    restricted(ud, "processing instruction");
}

static void XMLCALL on_comment(void *ud, const char *data)
{
    restricted(ud, "comment");
}

static int XMLCALL on_external_entity(XML_Parser xp, const char *context, const char *base,
                                      const char *sysid, const char *pubid)
{
    restricted(XML_GetUserData(xp), "external entity");
    return XML_STATUS_ERROR;
}

static void XMLCALL on_xml_decl(void *ud, const char *version, const char *encoding, int standalone)
{
    struct xs_xml_parser *p = ud;
    /* The parser is created for UTF-8, which overrides any declaration; a
     * peer that declares something else means it and would be misread. */
    if (encoding && strcasecmp(encoding, "UTF-8"))
        fail(p, XS_EPROTO, "unsupported-encoding", "encoding '%.40s' declared", encoding);
}

struct xs_xml_parser *xs_xml_parser_new(const struct xs_xml_limits *lim,
                                        const struct xs_xml_cbs *cbs, void *ud)
{
    struct xs_xml_parser *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->lim = *lim;
    p->cbs = cbs;
    p->ud = ud;
    p->state = P_RUNNING;
    xs_buf_init(&p->text, lim->max_stanza_bytes);
    p->xp = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (!p->xp) {
        free(p);
        return NULL;
    }
    XML_SetUserData(p->xp, p);
    XML_SetElementHandler(p->xp, on_start, on_end);
    XML_SetCharacterDataHandler(p->xp, on_text);
    XML_SetStartDoctypeDeclHandler(p->xp, on_doctype);
    XML_SetEntityDeclHandler(p->xp, on_entity_decl);
    XML_SetProcessingInstructionHandler(p->xp, on_pi);
    XML_SetCommentHandler(p->xp, on_comment);
    XML_SetExternalEntityRefHandler(p->xp, on_external_entity);
    XML_SetXmlDeclHandler(p->xp, on_xml_decl);
    XML_SetParamEntityParsing(p->xp, XML_PARAM_ENTITY_PARSING_NEVER);
    /* Deferral (CVE-2023-52425) would hold the end of a stanza that arrives
     * in a small last segment until more bytes come, and an XMPP peer sends
     * nothing more until it is answered. The reparsing it saves is bounded
     * here anyway: no token outgrows max_stanza_bytes. */
#ifdef XS_HAVE_EXPAT_REPARSE_DEFERRAL
    XML_SetReparseDeferralEnabled(p->xp, XML_FALSE);
#endif
    return p;
}

void xs_xml_parser_free(struct xs_xml_parser *p)
{
    if (!p)
        return;
    /* Only the stanza root owns memory; deeper stack entries are its children. */
    if (p->depth >= 2)
        xs_xml_el_free(p->stack[0]);
    free(p->stack);
    xs_buf_free(&p->text);
    XML_ParserFree(p->xp);
    free(p);
}

/* Turns an expat error into a stream error condition. */
static void expat_failed(struct xs_xml_parser *p)
{
    enum XML_Error e = XML_GetErrorCode(p->xp);
    const char *cond = "not-well-formed";
    int err = XS_EPROTO;
    switch (e) {
    case XML_ERROR_NO_MEMORY:
        fail_nomem(p);
        return;
    case XML_ERROR_UNKNOWN_ENCODING:
    case XML_ERROR_INCORRECT_ENCODING:
        cond = "unsupported-encoding";
        break;
    case XML_ERROR_UNDEFINED_ENTITY:
    case XML_ERROR_RECURSIVE_ENTITY_REF:
    case XML_ERROR_BINARY_ENTITY_REF:
    case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
    case XML_ERROR_ENTITY_DECLARED_IN_PE:
#ifdef XS_HAVE_EXPAT_AMPLIFICATION
    case XML_ERROR_AMPLIFICATION_LIMIT_BREACH:
#endif
        cond = "restricted-xml";
        break;
    default:
        break;
    }
    fail(p, err, cond, "%s at line %lu column %lu", XML_ErrorString(e),
         (unsigned long)XML_GetCurrentLineNumber(p->xp),
         (unsigned long)XML_GetCurrentColumnNumber(p->xp));
}

int xs_xml_parser_feed(struct xs_xml_parser *p, const char *data, size_t len)
{
    if (p->state == P_FAILED)
        return p->err;
    if (p->state != P_RUNNING)
        return XS_ESTATE;
    p->in_feed = 1;
    while (len > 0 && p->state == P_RUNNING) {
        size_t n = len < FEED_SLICE ? len : FEED_SLICE;
        enum XML_Status st = XML_Parse(p->xp, data, (int)n, XML_FALSE);
        p->fed += n;
        data += n;
        len -= n;
        if (p->state != P_RUNNING)
            break;
        if (st != XML_STATUS_OK)
            expat_failed(p);
        else if (p->fed - p->mark > p->lim.max_stanza_bytes)
            fail(p, XS_ELIMIT, "policy-violation", "%s exceeds %zu bytes",
                 p->depth == 0 ? "stream header" : "stanza", p->lim.max_stanza_bytes);
    }
    p->in_feed = 0;
    return p->state == P_FAILED ? p->err : 0;
}

void xs_xml_parser_stop(struct xs_xml_parser *p)
{
    if (p->state != P_RUNNING)
        return;
    p->state = P_STOPPED;
    if (p->in_feed)
        XML_StopParser(p->xp, XML_FALSE);
}

const char *xs_xml_parser_condition(const struct xs_xml_parser *p)
{
    return p->state == P_FAILED ? p->cond : NULL;
}

const char *xs_xml_parser_detail(const struct xs_xml_parser *p)
{
    return p->state == P_FAILED ? p->detail : "";
}

void xs_xml_parser_set_limits(struct xs_xml_parser *p, const struct xs_xml_limits *lim)
{
    p->lim = *lim;
    p->text.max = lim->max_stanza_bytes;
}
