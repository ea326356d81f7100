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
 * event, so a stanza one byte over the limit fails however it is split.
 *
 * Memory follows bytes, not counts: each stanza's tree lives in an arena
 * capped at max_tree_bytes, namespace URIs are interned in it, and elements,
 * names and URIs have their own caps, so a peer cannot make a few bytes of
 * input (a long URI in scope of thousands of empty elements) cost megabytes.
 *
 * CPU follows bytes too. Expat re-tokenizes an unfinished token from its
 * start on every call; a token trickled in tiny pieces would cost time
 * quadratic in its length (CVE-2023-52425). Expat 2.6 defers such reparsing
 * until the buffer has doubled; where that exists it stays on. Independently
 * of the expat version, the bytes expat holds since the end of the last
 * event (`pending`) are capped at max_pending: no legitimate tag is that
 * large, while character data, which expat reports as it comes, streams.
 *
 * An idle stream holds little. Expat's state between stanzas is only the
 * stream header it has read (its namespace declarations): everything else
 * is buffers and tables, about 10 KiB. xs_xml_parser_trim frees all of it
 * and keeps the header's bytes instead; the next feed makes a new expat
 * parser and replays the header into it without telling the owner, so
 * what follows parses exactly as before. Positions stay those of the
 * stream (`base` is where the replayed header would have begun); only the
 * line and column numbers in error details restart from the header. */
#include <expat.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "xmpp/xml.h"

/* Position getters, chosen once: expat 2.8 deprecates the narrow ones. */
#ifdef XS_HAVE_EXPAT_POSITION64
#define XS_XML_BYTE_INDEX(xp) ((unsigned long long)XML_GetCurrentByteIndex64(xp))
#define XS_XML_BYTE_COUNT(xp) ((unsigned long long)XML_GetCurrentByteCount64(xp))
#define XS_XML_LINE(xp) XML_GetCurrentLineNumber64(xp)
#define XS_XML_COLUMN(xp) XML_GetCurrentColumnNumber64(xp)
#else
#define XS_XML_BYTE_INDEX(xp) ((unsigned long long)XML_GetCurrentByteIndex(xp))
#define XS_XML_BYTE_COUNT(xp) ((unsigned long long)XML_GetCurrentByteCount(xp))
#define XS_XML_LINE(xp) XML_GetCurrentLineNumber(xp)
#define XS_XML_COLUMN(xp) XML_GetCurrentColumnNumber(xp)
#endif
#include "xmpp/xml_tree_int.h"

#define NS_SEP '\x01' /* a control character: it can be part of no XML name or URI */
#define NS_STREAMS "http://etherx.jabber.org/streams"
#define NS_XML "http://www.w3.org/XML/1998/namespace"
#define FEED_SLICE 4096
#define DEFAULT_MAX_ELEMENTS 4096
#define DEFAULT_MAX_PENDING (16 * 1024)
#define MIN_TREE_BYTES (8 * 1024)
/* An unfinished token up to this size is parsed at the end of every slice
 * even where expat would defer it: the last bytes of a stanza must not wait
 * for more input that a peer waiting for our answer will never send. Above
 * it, expat's doubling rule bounds the reparsing. */
#define FLUSH_MAX (8 * 1024)
/* After a stanza, a text buffer larger than this is released, so an idle
 * stream does not keep the peak of its largest stanza. */
#define TEXT_KEEP 4096

enum pstate { P_RUNNING, P_STOPPED, P_CLOSED, P_FAILED };

struct xs_xml_parser {
    XML_Parser xp; /* NULL while trimmed */
    struct xs_xml_limits lim;
    struct xs_xml_limits next_lim; /* set by xs_xml_parser_set_limits mid-stanza */
    int has_next_lim;
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
    struct xs_buf text;          /* character data not yet attached to the innermost element */
    unsigned long long fed;      /* bytes handed to expat so far */
    unsigned long long mark;     /* where the current region began */
    unsigned long long last_end; /* where the last event expat reported ended */
    size_t elements;             /* elements of the current stanza so far */
    /* The stream header's bytes, for replay after a trim: `pre` gathers
     * the input until the header is complete, `header` keeps just it. */
    struct xs_buf pre;
    char *header;
    size_t header_len;
    int no_replay;               /* the header could not be kept: never trim */
    int replaying;               /* feeding the header back: no events to the owner */
    unsigned long long base;     /* stream position of expat's byte 0 */
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

static unsigned long long event_start(const struct xs_xml_parser *p)
{
    return p->base + XS_XML_BYTE_INDEX(p->xp);
}

static unsigned long long event_end(const struct xs_xml_parser *p)
{
    return event_start(p) + XS_XML_BYTE_COUNT(p->xp);
}

/* Every handler calls this first: expat has got this far. */
static void seen(struct xs_xml_parser *p)
{
    p->last_end = event_end(p);
}

/* Fills the defaults in for fields left 0. */
static struct xs_xml_limits normalized(const struct xs_xml_limits *lim)
{
    struct xs_xml_limits l = *lim;
    if (!l.max_elements)
        l.max_elements = DEFAULT_MAX_ELEMENTS;
    if (!l.max_pending)
        l.max_pending = DEFAULT_MAX_PENDING;
    if (!l.max_tree_bytes)
        l.max_tree_bytes = l.max_stanza_bytes < SIZE_MAX / 4 ? 4 * l.max_stanza_bytes : SIZE_MAX;
    if (l.max_tree_bytes < MIN_TREE_BYTES)
        l.max_tree_bytes = MIN_TREE_BYTES;
    return l;
}

static void apply_limits(struct xs_xml_parser *p, const struct xs_xml_limits *lim)
{
    p->lim = normalized(lim);
    p->text.max = p->lim.max_stanza_bytes;
    /* The header region is judged after each slice, so it never spans more. */
    p->pre.max = p->lim.max_stanza_bytes + FEED_SLICE;
    p->has_next_lim = 0;
}

/* A tree operation failed: the cap or the heap. */
static void fail_tree(struct xs_xml_parser *p, const struct xs_xml_el *tree)
{
    if (tree && xs__xml_over_cap(tree))
        fail(p, XS_ELIMIT, "policy-violation", "stanza tree exceeds %zu bytes of memory",
             p->lim.max_tree_bytes);
    else
        fail_nomem(p);
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

/* Splits an expat name "uri<SEP>local" into the namespace (ns_len bytes at
 * name, 0 when unqualified) and the local part. Fails the parser when either
 * is longer than XS_XML_MAX_NAME. */
static int split_name(struct xs_xml_parser *p, const char *name, size_t *ns_len, const char **local)
{
    const char *sep = strchr(name, NS_SEP);
    *local = sep ? sep + 1 : name;
    *ns_len = sep ? (size_t)(sep - name) : 0;
    if (*ns_len > XS_XML_MAX_NAME) {
        fail(p, XS_ELIMIT, "policy-violation", "namespace URI longer than %d bytes",
             XS_XML_MAX_NAME);
        return -1;
    }
    if (strlen(*local) > XS_XML_MAX_NAME) {
        fail(p, XS_ELIMIT, "policy-violation", "name longer than %d bytes", XS_XML_MAX_NAME);
        return -1;
    }
    return 0;
}

/* Copies the attributes into el, qualified as struct xs_xml_attr says. */
static int set_attrs(struct xs_xml_parser *p, struct xs_xml_el *el, const char **atts)
{
    size_t n = 0;
    while (atts[2 * n])
        n++;
    if (xs__xml_attrs_reserve(el, n)) {
        fail_tree(p, el);
        return -1;
    }
    for (size_t i = 0; atts[i]; i += 2) {
        const char *local;
        size_t ns_len;
        if (split_name(p, atts[i], &ns_len, &local))
            return -1;
        int rc;
        if (!ns_len)
            rc = xs__xml_attr_append(el, NULL, NULL, 0, NULL, local, atts[i + 1]);
        else if (ns_len == sizeof NS_XML - 1 && !memcmp(atts[i], NS_XML, ns_len))
            rc = xs__xml_attr_append(el, "xml:", NULL, 0, NULL, local, atts[i + 1]);
        else
            rc = xs__xml_attr_append(el, "{", atts[i], ns_len, "}", local, atts[i + 1]);
        if (rc) {
            fail_tree(p, el);
            return -1;
        }
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
    if (rc)
        fail_tree(p, el);
    return rc;
}

/* The header is complete: its bytes (all in `pre`, which gathered every
 * slice before it was parsed) are kept for replay, the rest let go. */
static void keep_header(struct xs_xml_parser *p)
{
    size_t len = (size_t)event_end(p);
    if (!p->no_replay && len <= p->pre.len) {
        p->header = malloc(len);
        if (p->header) {
            memcpy(p->header, p->pre.data, len);
            p->header_len = len;
        }
    }
    if (!p->header)
        p->no_replay = 1;
    xs_buf_free(&p->pre);
}

static void on_stream_header(struct xs_xml_parser *p, const char *name, const char **atts)
{
    const char *local;
    size_t ns_len;
    if (split_name(p, name, &ns_len, &local))
        return;
    int ok_ns = ns_len == sizeof NS_STREAMS - 1 && !memcmp(name, NS_STREAMS, ns_len);
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
    keep_header(p);
    struct xs_xml_el *h =
        xs__xml_root_new(p->lim.max_tree_bytes, NS_STREAMS, sizeof NS_STREAMS - 1, "stream");
    if (!h) {
        fail_nomem(p);
        return;
    }
    if (set_attrs(p, h, atts)) {
        xs_xml_el_free(h);
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
    seen(p);
    if (p->depth == 0 && p->replaying) {
        p->depth = 1;
        return;
    }
    if (p->depth == 0) {
        on_stream_header(p, name, atts);
        return;
    }
    size_t level = p->depth - 1; /* index in the stack: the stanza is 0 */
    if (level == 0) {
        p->mark = event_start(p);
        p->elements = 0;
    }
    if (over_size(p, "stanza") || too_many_attrs(p, atts))
        return;
    if (level + 1 > p->lim.max_depth) {
        fail(p, XS_ELIMIT, "policy-violation", "elements nested deeper than %zu", p->lim.max_depth);
        return;
    }
    if (++p->elements > p->lim.max_elements) {
        fail(p, XS_ELIMIT, "policy-violation", "more than %zu elements in one stanza",
             p->lim.max_elements);
        return;
    }
    const char *local;
    size_t ns_len;
    if (split_name(p, name, &ns_len, &local))
        return;
    struct xs_xml_el *el;
    if (level == 0) {
        el = xs__xml_root_new(p->lim.max_tree_bytes, name, ns_len, local);
        if (!el) {
            fail_nomem(p);
            return;
        }
    } else {
        struct xs_xml_el *parent = p->stack[level - 1];
        if (flush_text(p, parent))
            return;
        el = xs__xml_child_new(parent, name, ns_len, local);
        if (!el) {
            fail_tree(p, parent);
            return;
        }
    }
    /* A child already hangs in the tree; only a new stanza root needs freeing. */
    if (set_attrs(p, el, atts) || push(p, el, level)) {
        if (p->state == P_RUNNING)
            fail_nomem(p);
        if (level == 0)
            xs_xml_el_free(el);
        return;
    }
    p->depth++;
}

/* Namespace URIs are capped where they are declared, before expat copies
 * one into the name of every element in its scope. */
static void XMLCALL on_ns_decl(void *ud, const char *prefix, const char *uri)
{
    struct xs_xml_parser *p = ud;
    if (p->state == P_RUNNING && uri && strlen(uri) > XS_XML_MAX_NAME)
        fail(p, XS_ELIMIT, "policy-violation", "namespace URI longer than %d bytes",
             XS_XML_MAX_NAME);
}

static void XMLCALL on_end(void *ud, const char *name)
{
    struct xs_xml_parser *p = ud;
    if (p->state != P_RUNNING)
        return;
    seen(p);
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
    if (flush_text(p, p->stack[level]))
        return;
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
    if (p->text.cap > TEXT_KEEP)
        xs_buf_free(&p->text);
    if (p->has_next_lim)
        apply_limits(p, &p->next_lim);
    xs__xml_uncap(st);
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
    seen(p);
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
    seen(p);
    /* The parser is created for UTF-8, which overrides any declaration; a
     * peer that declares something else means it and would be misread. */
    if (encoding && strcasecmp(encoding, "UTF-8"))
        fail(p, XS_EPROTO, "unsupported-encoding", "encoding '%.40s' declared", encoding);
}

static int expat_new(struct xs_xml_parser *p)
{
    p->xp = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (!p->xp)
        return XS_ENOMEM;
    XML_SetUserData(p->xp, p);
    XML_SetElementHandler(p->xp, on_start, on_end);
    XML_SetCharacterDataHandler(p->xp, on_text);
    XML_SetStartNamespaceDeclHandler(p->xp, on_ns_decl);
    XML_SetStartDoctypeDeclHandler(p->xp, on_doctype);
    XML_SetEntityDeclHandler(p->xp, on_entity_decl);
    XML_SetProcessingInstructionHandler(p->xp, on_pi);
    XML_SetCommentHandler(p->xp, on_comment);
    XML_SetExternalEntityRefHandler(p->xp, on_external_entity);
    XML_SetXmlDeclHandler(p->xp, on_xml_decl);
    XML_SetParamEntityParsing(p->xp, XML_PARAM_ENTITY_PARSING_NEVER);
    /* Reparse deferral (expat >= 2.6) stays on, its default: see the top of
     * this file and settle() for how the latency it would add is avoided. */
    return 0;
}

struct xs_xml_parser *xs_xml_parser_new(const struct xs_xml_limits *lim,
                                        const struct xs_xml_cbs *cbs, void *ud)
{
    struct xs_xml_parser *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cbs = cbs;
    p->ud = ud;
    p->state = P_RUNNING;
    xs_buf_init(&p->text, 0);
    xs_buf_init(&p->pre, 0);
    apply_limits(p, lim);
    if (expat_new(p) != 0) {
        free(p);
        return NULL;
    }
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
    xs_buf_free(&p->pre);
    free(p->header);
    if (p->xp)
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
         (unsigned long)XS_XML_LINE(p->xp), (unsigned long)XS_XML_COLUMN(p->xp));
}

#ifdef XS_HAVE_EXPAT_REPARSE_DEFERRAL
/* Makes expat parse what it holds now instead of waiting for its buffer to
 * double. */
static void flush_deferred(struct xs_xml_parser *p)
{
    XML_SetReparseDeferralEnabled(p->xp, XML_FALSE);
    enum XML_Status st = XML_Parse(p->xp, "", 0, XML_FALSE);
    XML_SetReparseDeferralEnabled(p->xp, XML_TRUE);
    if (p->state == P_RUNNING && st != XML_STATUS_OK)
        expat_failed(p);
}
#endif

static int over_limits(const struct xs_xml_parser *p)
{
    return p->fed - p->last_end > p->lim.max_pending || p->fed - p->mark > p->lim.max_stanza_bytes;
}

/* After a slice: nothing small waits in expat, and nothing large waits
 * longer than the limits allow. A limit is judged only after a flush, so
 * what deferral holds back is never counted against the peer. */
static void settle(struct xs_xml_parser *p)
{
#ifdef XS_HAVE_EXPAT_REPARSE_DEFERRAL
    unsigned long long pending = p->fed - p->last_end;
    if (pending && (pending <= FLUSH_MAX || over_limits(p)))
        flush_deferred(p);
    if (p->state != P_RUNNING)
        return;
#endif
    if (!over_limits(p))
        return;
    if (p->fed - p->last_end > p->lim.max_pending)
        fail(p, XS_ELIMIT, "policy-violation", "a tag or token exceeds %zu bytes",
             p->lim.max_pending);
    else
        fail(p, XS_ELIMIT, "policy-violation", "%s exceeds %zu bytes",
             p->depth == 0 ? "stream header" : "stanza", p->lim.max_stanza_bytes);
}

/* A trimmed parser comes back: a new expat parser reads the kept header
 * (no event reaches the owner) and stands where the old one stood. */
static void restore(struct xs_xml_parser *p)
{
    if (expat_new(p) != 0) {
        fail_nomem(p);
        return;
    }
    p->base = p->fed - p->header_len;
    p->depth = 0; /* the replayed header opens the stream again */
    p->replaying = 1;
    enum XML_Status st = XML_Parse(p->xp, p->header, (int)p->header_len, XML_FALSE);
#ifdef XS_HAVE_EXPAT_REPARSE_DEFERRAL
    if (st == XML_STATUS_OK && p->state == P_RUNNING && p->depth == 0)
        flush_deferred(p);
#endif
    p->replaying = 0;
    if (p->state != P_RUNNING)
        return;
    if (st != XML_STATUS_OK)
        expat_failed(p);
    else if (p->depth != 1)
        fail(p, XS_EINVAL, "internal-server-error", "stream header replay did not reopen it");
}

int xs_xml_parser_feed(struct xs_xml_parser *p, const char *data, size_t len)
{
    if (p->state == P_FAILED)
        return p->err;
    if (p->state != P_RUNNING)
        return XS_ESTATE;
    p->in_feed = 1;
    if (!p->xp && len > 0)
        restore(p);
    while (len > 0 && p->state == P_RUNNING) {
        size_t n = len < FEED_SLICE ? len : FEED_SLICE;
        if (p->depth == 0 && !p->no_replay && xs_buf_append(&p->pre, data, n) != 0) {
            p->no_replay = 1;
            xs_buf_free(&p->pre);
        }
        enum XML_Status st = XML_Parse(p->xp, data, (int)n, XML_FALSE);
        p->fed += n;
        data += n;
        len -= n;
        if (p->state != P_RUNNING)
            break;
        if (st != XML_STATUS_OK)
            expat_failed(p);
        else
            settle(p);
    }
    p->in_feed = 0;
    return p->state == P_FAILED ? p->err : 0;
}

int xs_xml_parser_trim(struct xs_xml_parser *p)
{
    /* Only where expat holds nothing the header does not give back: between
     * stanzas, with every byte fed accounted for by an event. */
    if (!p->xp || p->in_feed || p->state != P_RUNNING || p->depth != 1 || !p->header ||
        p->fed != p->last_end)
        return 0;
    XML_ParserFree(p->xp);
    p->xp = NULL;
    free(p->stack);
    p->stack = NULL;
    p->stack_cap = 0;
    xs_buf_free(&p->text);
    return 1;
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
    /* Between stanzas (or inside the stanza callback, which runs once the
     * stanza is done) nothing is in flight that the old limits admitted. */
    if (p->depth <= 1) {
        apply_limits(p, lim);
        return;
    }
    p->next_lim = *lim;
    p->has_next_lim = 1;
}
