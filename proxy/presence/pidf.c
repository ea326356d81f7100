/* PIDF documents in and out.
 *
 * Reading: one expat parser per document, in namespace mode, fed the whole
 * document at once. Elements are recognised by namespace URI and local name
 * only, because real servers mix prefixes and default namespaces freely
 * (Kamailio aggregates documents from several publishers into one). What is
 * kept goes straight into the caller's fixed-size struct; nothing is built
 * per element, so a document costs expat's own memory and nothing else, and
 * its size bounds that.
 *
 * Writing: a small element tree given to the XML serializer, which does all
 * the escaping. The serializer writes a namespace as a default declaration
 * (xmlns='...') wherever it changes, but several SIP clients read PIDF with
 * string matching (baresip looks for the literal "<rpid:away/>"), so the
 * data-model and RPID elements must carry the conventional dm: and rpid:
 * prefixes. The tree therefore names them "dm:person", "rpid:away" in the
 * PIDF namespace, and the root declares both prefixes: the serializer
 * writes names as given and no xmlns where the namespace does not change.
 * The tree never leaves this file. */
#include <expat.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "presence/pidf.h"
#include "xmpp/xml.h"

#define NS_PIDF "urn:ietf:params:xml:ns:pidf"
#define NS_DM "urn:ietf:params:xml:ns:pidf:data-model"
#define NS_RPID "urn:ietf:params:xml:ns:pidf:rpid"
/* The RPID draft's person namespace, which Asterisk and older phones still
 * send (<ep:activities><ep:away/></ep:activities>): read like RPID's. */
#define NS_RPID_DRAFT "urn:ietf:params:xml:ns:pidf:rpid:rpid-person"
#define NS_XML "http://www.w3.org/XML/1998/namespace"
/* Where Lync 2010/2013 define <availability> (the state schema). It is
 * written in this one and read in any namespace under
 * http(s)://schemas.microsoft.com/, since their servers use several. */
#define NS_MS_STATE "http://schemas.microsoft.com/2006/09/sip/state"
#define NS_SEP '\x01' /* a control character: it can be part of no XML name or URI */

#define LANG_MAX (sizeof((struct xs_pidf *)0)->note_lang - 1)
#define ENTITY_MAX (sizeof((struct xs_pidf *)0)->entity - 1)
#define SHORT_MAX 32 /* bytes kept of <basic> or <availability> content */
#define STR_(x) #x
#define STR(x) STR_(x)

enum kind {
    K_OTHER,
    K_PRESENCE,
    K_TUPLE,
    K_STATUS,
    K_BASIC,
    K_CONTACT,
    K_PERSON,
    K_DEVICE,
    K_ACTIVITIES,
    K_NOTE,
    K_AVAIL,
};

/* Where a note stands, best first: a person's own (dm:note), one about a
 * person's activity or mood (rpid:note deeper in the person), a tuple's or
 * device's, the document's. Notes inside other extensions of the document
 * are not read. */
enum tier { T_PERSON, T_PERSON_INNER, T_TUPLE, T_PRESENCE, T_NONE };

struct level {
    enum kind kind;
    enum tier tier; /* of a note among this element's descendants */
    int has_lang;   /* a non-empty xml:lang is in scope */
    char lang[LANG_MAX + 1];
};

/* Character data of one element, leading whitespace skipped, at most cap
 * bytes. `cut` says a byte other than whitespace did not fit, so trailing
 * whitespace never makes a short value look too long. */
struct text {
    char *buf;
    size_t cap;
    size_t len;
    int cut;
};

struct ctx {
    XML_Parser xp;
    struct xs_pidf *out;
    int err;
    const char *why;
    size_t depth; /* open elements; lv[depth] is the innermost */
    struct level lv[XS_PIDF_MAX_DEPTH + 1];
    struct xs_pidf_tuple *tuple; /* the open tuple, if any */
    struct text text;
    size_t text_depth; /* the element being collected; 0: none */
    char note[XS_PIDF_TEXT_MAX + 1];
    char small[SHORT_MAX + 1];
    int note_rank; /* of the open note */
    int best_rank; /* of the note in out; lower is better */
    int have_avail;
    size_t n_activities;
    char activities[XS_PIDF_ACTIVITIES_MAX][XS_PIDF_ACTIVITY_NAME_MAX + 1];
};

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void fail(struct ctx *c, int err, const char *why)
{
    if (c->err)
        return;
    c->err = err;
    c->why = why;
    XML_StopParser(c->xp, XML_FALSE);
}

/* An element name from expat: "uri\x01local", or "local" in no namespace. */
struct qname {
    const char *ns;
    size_t ns_len;
    const char *local;
};

static struct qname split(const char *name)
{
    const char *sep = strchr(name, NS_SEP);
    struct qname q = {"", 0, name};
    if (sep) {
        q.ns = name;
        q.ns_len = (size_t)(sep - name);
        q.local = sep + 1;
    }
    return q;
}

static int ns_is(const struct qname *q, const char *ns)
{
    return q->ns_len == strlen(ns) && !memcmp(q->ns, ns, q->ns_len);
}

static int is(const struct qname *q, const char *ns, const char *local)
{
    return ns_is(q, ns) && !strcmp(q->local, local);
}

static int ns_starts(const struct qname *q, const char *prefix)
{
    size_t n = strlen(prefix);
    return q->ns_len > n && !memcmp(q->ns, prefix, n);
}

static int is_note(const struct qname *q)
{
    return !strcmp(q->local, "note") && (ns_is(q, NS_PIDF) || ns_is(q, NS_DM) || ns_is(q, NS_RPID));
}

static int is_ms_availability(const struct qname *q)
{
    return !strcmp(q->local, "availability") && (ns_starts(q, "http://schemas.microsoft.com/") ||
                                                 ns_starts(q, "https://schemas.microsoft.com/"));
}

static const char *attr(const char **atts, const char *name)
{
    for (size_t i = 0; atts[i]; i += 2)
        if (!strcmp(atts[i], name))
            return atts[i + 1];
    return NULL;
}

/* Copies s into dst[cap + 1], cut on a UTF-8 character boundary. */
static void copy_cut(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n > cap) {
        n = cap;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* RFC 3863 qvalue: "0" ["." 0*3DIGIT] / "1" ["." 0*3("0")], as 0..1000. */
static int parse_qvalue(const char *s)
{
    if ((s[0] != '0' && s[0] != '1') || (s[1] && s[1] != '.'))
        return -1;
    int v = (s[0] - '0') * 1000;
    if (!s[1])
        return v;
    int scale = 100;
    size_t i = 2;
    for (; s[i] && i < 5; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v += (s[i] - '0') * scale;
    }
    if (s[i] || v > 1000)
        return -1;
    return v;
}

/* A non-negative decimal that fits an int, or -1. */
static int parse_uint(const char *s)
{
    if (!*s)
        return -1;
    long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > INT_MAX)
            return -1;
    }
    return (int)v;
}

static void text_start(struct ctx *c, char *buf, size_t cap)
{
    c->text = (struct text){buf, cap, 0, 0};
    c->text_depth = c->depth;
}

static void text_add(struct text *t, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (t->len == 0 && is_ws(s[i]))
            continue;
        if (t->len < t->cap)
            t->buf[t->len++] = s[i];
        else if (!is_ws(s[i]))
            t->cut = 1;
    }
}

/* Ends the collection: the content, trimmed, and cut where the cap fell
 * inside a character (expat has checked that the input is UTF-8). */
static const char *text_end(struct ctx *c)
{
    struct text *t = &c->text;
    if (t->cut) {
        size_t lead = t->len;
        while (lead > 0 && ((unsigned char)t->buf[lead - 1] & 0xC0) == 0x80)
            lead--;
        if (lead > 0 && ((unsigned char)t->buf[lead - 1] & 0x80)) {
            unsigned char b = (unsigned char)t->buf[lead - 1];
            size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
            if (t->len - (lead - 1) < need)
                t->len = lead - 1;
        }
    }
    while (t->len > 0 && is_ws(t->buf[t->len - 1]))
        t->len--;
    t->buf[t->len] = '\0';
    c->text_depth = 0;
    return t->buf;
}

static void add_activity(struct ctx *c, const struct qname *q)
{
    /* Extensions in other namespaces may sit among the activities (RFC
     * 4480 allows them); their names mean nothing in RPID's vocabulary. */
    size_t n = strlen(q->local);
    if ((!ns_is(q, NS_RPID) && !ns_is(q, NS_RPID_DRAFT)) || !strcmp(q->local, "unknown"))
        return;
    if (n == 0 || n > XS_PIDF_ACTIVITY_NAME_MAX || strchr(q->local, ':'))
        return;
    for (size_t i = 0; i < c->n_activities; i++)
        if (!strcmp(c->activities[i], q->local))
            return;
    if (c->n_activities < XS_PIDF_ACTIVITIES_MAX)
        memcpy(c->activities[c->n_activities++], q->local, n + 1);
}

static void start_root(struct ctx *c, const struct qname *q, const char **atts)
{
    if (!is(q, NS_PIDF, "presence")) {
        fail(c, XS_EPROTO, "root element is not <presence> in " NS_PIDF);
        return;
    }
    const char *entity = attr(atts, "entity");
    if (entity && strlen(entity) > ENTITY_MAX) {
        fail(c, XS_ELIMIT, "presence entity longer than 511 bytes");
        return;
    }
    if (entity)
        memcpy(c->out->entity, entity, strlen(entity) + 1);
}

static void start_tuple(struct ctx *c, const char **atts)
{
    struct xs_pidf *out = c->out;
    if (out->n_tuples == XS_PIDF_MAX_TUPLES) {
        fail(c, XS_ELIMIT, "more than " STR(XS_PIDF_MAX_TUPLES) " tuples");
        return;
    }
    c->tuple = &out->tuples[out->n_tuples++];
    c->tuple->priority = -1;
    const char *id = attr(atts, "id");
    if (id)
        copy_cut(c->tuple->id, XS_PIDF_TUPLE_ID_MAX, id);
}

/* What an element at c->depth (already counted) is, from its name and its
 * parent's kind. */
static enum kind classify(struct ctx *c, const struct qname *q, const char **atts)
{
    enum kind parent = c->lv[c->depth - 1].kind;
    if (c->depth == 1)
        return K_PRESENCE;
    if (is_note(q))
        return K_NOTE;
    if (parent == K_ACTIVITIES) {
        add_activity(c, q);
        return K_OTHER;
    }
    if (is(q, NS_RPID, "activities") || is(q, NS_RPID_DRAFT, "activities"))
        return K_ACTIVITIES;
    if (is_ms_availability(q))
        return K_AVAIL;
    if (parent == K_PRESENCE && is(q, NS_PIDF, "tuple"))
        return K_TUPLE;
    if (parent == K_PRESENCE && is(q, NS_DM, "person"))
        return K_PERSON;
    if (parent == K_PRESENCE && is(q, NS_DM, "device"))
        return K_DEVICE;
    if (parent == K_TUPLE && is(q, NS_PIDF, "status"))
        return K_STATUS;
    if (parent == K_STATUS && is(q, NS_PIDF, "basic"))
        return K_BASIC;
    if (parent == K_TUPLE && is(q, NS_PIDF, "contact")) {
        const char *prio = attr(atts, "priority");
        if (prio && c->tuple->priority < 0)
            c->tuple->priority = parse_qvalue(prio);
        return K_CONTACT;
    }
    return K_OTHER;
}

static void XMLCALL on_start(void *ud, const char *name, const char **atts)
{
    struct ctx *c = ud;
    if (c->err)
        return;
    if (c->depth == XS_PIDF_MAX_DEPTH) {
        fail(c, XS_ELIMIT, "elements nested deeper than " STR(XS_PIDF_MAX_DEPTH));
        return;
    }
    struct qname q = split(name);
    c->depth++;
    struct level *lv = &c->lv[c->depth];
    const struct level *up = &c->lv[c->depth - 1];
    if (c->depth == 1)
        start_root(c, &q, atts);
    lv->kind = classify(c, &q, atts);
    if (lv->kind == K_TUPLE)
        start_tuple(c, atts);
    if (c->err)
        return;

    if (lv->kind == K_PERSON)
        lv->tier = T_PERSON;
    else if (lv->kind == K_TUPLE || lv->kind == K_DEVICE)
        lv->tier = T_TUPLE;
    else if (c->depth == 1)
        lv->tier = T_PRESENCE;
    else if (c->depth == 2)
        lv->tier = T_NONE; /* an extension of the whole document, not a note's container */
    else
        lv->tier = up->tier;

    const char *lang = attr(atts, NS_XML "\x01lang");
    if (lang) {
        lv->has_lang = lang[0] != '\0';
        if (strlen(lang) <= LANG_MAX)
            memcpy(lv->lang, lang, strlen(lang) + 1);
        else
            lv->lang[0] = '\0'; /* a tag this long is no language we could name */
    } else {
        lv->has_lang = up->has_lang;
        memcpy(lv->lang, up->lang, sizeof lv->lang);
    }

    if (c->text_depth)
        return; /* inside an element already being read: its children are not read */
    if (lv->kind == K_NOTE && up->tier != T_NONE) {
        enum tier t = up->tier == T_PERSON && up->kind != K_PERSON ? T_PERSON_INNER : up->tier;
        c->note_rank = (int)t * 2 + lv->has_lang;
        if (c->note_rank < c->best_rank)
            text_start(c, c->note, XS_PIDF_TEXT_MAX);
    } else if (lv->kind == K_BASIC || (lv->kind == K_AVAIL && !c->have_avail)) {
        text_start(c, c->small, SHORT_MAX);
    }
}

static void end_basic(struct ctx *c, const char *s)
{
    enum xs_pidf_basic b = XS_PIDF_UNKNOWN;
    if (!c->text.cut && !strcasecmp(s, "open"))
        b = XS_PIDF_OPEN;
    else if (!c->text.cut && !strcasecmp(s, "closed"))
        b = XS_PIDF_CLOSED;
    if (b == XS_PIDF_OPEN || c->tuple->basic == XS_PIDF_UNKNOWN)
        c->tuple->basic = b;
}

static void XMLCALL on_end(void *ud, const char *name)
{
    struct ctx *c = ud;
    if (c->err)
        return;
    struct level *lv = &c->lv[c->depth];
    if (c->text_depth == c->depth) {
        const char *s = text_end(c);
        if (lv->kind == K_BASIC) {
            end_basic(c, s);
        } else if (lv->kind == K_AVAIL) {
            int v = c->text.cut ? -1 : parse_uint(s);
            if (v >= 0) {
                c->out->availability = v;
                c->have_avail = 1;
            }
        } else if (lv->kind == K_NOTE && s[0]) {
            memcpy(c->out->note, s, strlen(s) + 1);
            memcpy(c->out->note_lang, lv->lang, sizeof c->out->note_lang);
            c->best_rank = c->note_rank;
        }
    }
    if (lv->kind == K_TUPLE)
        c->tuple = NULL;
    c->depth--;
}

static void XMLCALL on_text(void *ud, const char *s, int len)
{
    struct ctx *c = ud;
    if (!c->err && c->text_depth && c->text_depth == c->depth)
        text_add(&c->text, s, (size_t)len);
}

static void XMLCALL on_doctype(void *ud, const char *name, const char *sysid, const char *pubid,
                               int has_internal)
{
    fail(ud, XS_EPROTO, "DTD not allowed in PIDF");
}

static void XMLCALL on_entity_decl(void *ud, const char *name, int is_pe, const char *value,
                                   int value_len, const char *base, const char *sysid,
                                   const char *pubid, const char *notation)
{
    fail(ud, XS_EPROTO, "entity declaration not allowed in PIDF");
}

static int XMLCALL on_external_entity(XML_Parser xp, const char *context, const char *base,
                                      const char *sysid, const char *pubid)
{
    fail(XML_GetUserData(xp), XS_EPROTO, "external entity not allowed in PIDF");
    return XML_STATUS_ERROR;
}

static void XMLCALL on_xml_decl(void *ud, const char *version, const char *encoding, int standalone)
{
    /* The parser reads UTF-8 whatever is declared; a document that declares
     * another encoding means it and would be misread. */
    if (encoding && strcasecmp(encoding, "UTF-8"))
        fail(ud, XS_EPROTO, "PIDF document in an encoding other than UTF-8");
}

static void combine(struct xs_pidf *out)
{
    for (size_t i = 0; i < out->n_tuples; i++) {
        if (out->tuples[i].basic == XS_PIDF_OPEN) {
            out->basic = XS_PIDF_OPEN;
            return;
        }
        if (out->tuples[i].basic == XS_PIDF_CLOSED)
            out->basic = XS_PIDF_CLOSED;
    }
}

static void join_activities(const struct ctx *c, struct xs_pidf *out)
{
    size_t off = 0;
    for (size_t i = 0; i < c->n_activities; i++) {
        size_t n = strlen(c->activities[i]);
        if (i)
            out->activities[off++] = ' ';
        memcpy(out->activities + off, c->activities[i], n);
        off += n;
    }
    out->activities[off] = '\0';
}

int xs_pidf_parse(const char *doc, size_t len, struct xs_pidf *out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    memset(out, 0, sizeof *out);
    if (len > XS_PIDF_MAX_DOC) {
        *why = "PIDF document larger than " STR(XS_PIDF_MAX_DOC) " bytes";
        return XS_ELIMIT;
    }
    if (!doc && len) {
        *why = "no document";
        return XS_EINVAL;
    }
    struct ctx ctx;
    struct ctx *c = &ctx;
    memset(c, 0, sizeof *c);
    c->out = out;
    c->best_rank = INT_MAX;
    c->xp = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (!c->xp) {
        *why = "out of memory";
        return XS_ENOMEM;
    }
    XML_SetUserData(c->xp, c);
    XML_SetElementHandler(c->xp, on_start, on_end);
    XML_SetCharacterDataHandler(c->xp, on_text);
    XML_SetStartDoctypeDeclHandler(c->xp, on_doctype);
    XML_SetEntityDeclHandler(c->xp, on_entity_decl);
    XML_SetExternalEntityRefHandler(c->xp, on_external_entity);
    XML_SetXmlDeclHandler(c->xp, on_xml_decl);
    XML_SetParamEntityParsing(c->xp, XML_PARAM_ENTITY_PARSING_NEVER);

    enum XML_Status st = XML_Parse(c->xp, doc ? doc : "", (int)len, XML_TRUE);
    int rc = c->err;
    *why = c->why;
    if (!rc && st != XML_STATUS_OK) {
        enum XML_Error e = XML_GetErrorCode(c->xp);
        rc = e == XML_ERROR_NO_MEMORY ? XS_ENOMEM : XS_EPROTO;
        *why = XML_ErrorString(e) ? XML_ErrorString(e) : "not well-formed XML";
    }
    XML_ParserFree(c->xp);
    if (rc) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    combine(out);
    join_activities(c, out);
    *why = NULL;
    return 0;
}

/* Writing */

static int is_name_start(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

/* An NCName of ASCII characters: what this gateway names activities and
 * tuples with, and what every XML parser reads back the same. */
static int is_ascii_ncname(const char *s, size_t n)
{
    if (n == 0 || !is_name_start(s[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_name_start(s[i]) && !(s[i] >= '0' && s[i] <= '9') && s[i] != '-' && s[i] != '.')
            return 0;
    return 1;
}

static int all_ws(const char *s)
{
    for (; *s; s++)
        if (!is_ws(*s))
            return 0;
    return 1;
}

/* Splits a space-separated list into names[], deduplicated; "unknown"
 * says nothing and is dropped; "note" is no activity. */
static int split_activities(const char *s, char names[][XS_PIDF_ACTIVITY_NAME_MAX + 1], size_t *n)
{
    *n = 0;
    while (s && *s) {
        while (is_ws(*s))
            s++;
        size_t len = 0;
        while (s[len] && !is_ws(s[len]))
            len++;
        if (!len)
            break;
        if (len > XS_PIDF_ACTIVITY_NAME_MAX || !is_ascii_ncname(s, len) ||
            (len == 4 && !memcmp(s, "note", 4)))
            return XS_EINVAL;
        int dup = len == 7 && !memcmp(s, "unknown", 7);
        for (size_t i = 0; i < *n && !dup; i++)
            dup = strlen(names[i]) == len && !memcmp(names[i], s, len);
        if (!dup) {
            if (*n == XS_PIDF_ACTIVITIES_MAX)
                return XS_EINVAL;
            memcpy(names[*n], s, len);
            names[(*n)++][len] = '\0';
        }
        s += len;
    }
    return 0;
}

static struct xs_xml_el *add_text_child(struct xs_xml_el *parent, const char *name,
                                        const char *text, const char *lang)
{
    struct xs_xml_el *el = xs_xml_el_add_child(parent, NS_PIDF, name);
    if (!el || xs_xml_el_add_text(el, text, strlen(text)) ||
        (lang && lang[0] && xs_xml_el_set_attr(el, "xml:lang", lang)))
        return NULL;
    return el;
}

static int build_person(struct xs_xml_el *root, const char *id,
                        char names[][XS_PIDF_ACTIVITY_NAME_MAX + 1], size_t n, int availability)
{
    struct xs_xml_el *person = xs_xml_el_add_child(root, NS_PIDF, "dm:person");
    if (!person || xs_xml_el_set_attr(person, "id", id))
        return XS_ENOMEM;
    if (n) {
        struct xs_xml_el *acts = xs_xml_el_add_child(person, NS_PIDF, "rpid:activities");
        if (!acts)
            return XS_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            char name[sizeof "rpid:" + XS_PIDF_ACTIVITY_NAME_MAX];
            snprintf(name, sizeof name, "rpid:%.*s", XS_PIDF_ACTIVITY_NAME_MAX, names[i]);
            if (!xs_xml_el_add_child(acts, NS_PIDF, name))
                return XS_ENOMEM;
        }
    }
    if (availability) {
        char num[16];
        snprintf(num, sizeof num, "%d", availability);
        struct xs_xml_el *av = xs_xml_el_add_child(person, NS_MS_STATE, "availability");
        if (!av || xs_xml_el_add_text(av, num, strlen(num)))
            return XS_ENOMEM;
    }
    return 0;
}

static int build(struct xs_xml_el *root, const char *entity, const char *tuple_id,
                 enum xs_pidf_basic basic, const char *note, const char *lang,
                 char names[][XS_PIDF_ACTIVITY_NAME_MAX + 1], size_t n, int availability)
{
    if (xs_xml_el_set_attr(root, "xmlns:dm", NS_DM) ||
        xs_xml_el_set_attr(root, "xmlns:rpid", NS_RPID) ||
        xs_xml_el_set_attr(root, "entity", entity))
        return XS_ENOMEM;
    struct xs_xml_el *tuple = xs_xml_el_add_child(root, NS_PIDF, "tuple");
    struct xs_xml_el *status = tuple ? xs_xml_el_add_child(tuple, NS_PIDF, "status") : NULL;
    if (!status || xs_xml_el_set_attr(tuple, "id", tuple_id) ||
        !add_text_child(status, "basic", basic == XS_PIDF_OPEN ? "open" : "closed", NULL))
        return XS_ENOMEM;
    /* The note goes in one place only, the tuple (RFC 3863 §4.1.6), which
     * every PIDF reader knows; a reader that gathers every note would
     * otherwise show it twice. */
    if (note && !add_text_child(tuple, "note", note, lang))
        return XS_ENOMEM;
    if (!n && !availability)
        return 0;
    /* The person's id must differ from the tuple's: both are xs:ID. */
    return build_person(root, strcmp(tuple_id, "p") ? "p" : "p1", names, n, availability);
}

int xs_pidf_write(const char *entity, const char *tuple_id, enum xs_pidf_basic basic,
                  const char *note, const char *lang, const char *activities, int availability,
                  struct xs_buf *out)
{
    char names[XS_PIDF_ACTIVITIES_MAX][XS_PIDF_ACTIVITY_NAME_MAX + 1];
    size_t n;
    if (!tuple_id)
        tuple_id = "t";
    if (!entity || !entity[0] || (basic != XS_PIDF_OPEN && basic != XS_PIDF_CLOSED) ||
        availability < 0 || !is_ascii_ncname(tuple_id, strlen(tuple_id)) ||
        strlen(tuple_id) > XS_PIDF_TUPLE_ID_MAX || strlen(entity) > ENTITY_MAX ||
        split_activities(activities, names, &n))
        return XS_EINVAL;
    if (note && all_ws(note))
        note = NULL;

    struct xs_xml_el *root = xs_xml_el_new(NS_PIDF, "presence");
    if (!root)
        return XS_ENOMEM;
    size_t start = out->len;
    int rc = build(root, entity, tuple_id, basic, note, lang, names, n, availability);
    if (!rc)
        rc = xs_buf_append_str(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    if (!rc)
        rc = xs_xml_serialize(root, "", out);
    xs_xml_el_free(root);
    if (rc && out->data) {
        /* Nothing of a failed document is left behind. */
        out->len = start;
        out->data[start] = '\0';
    }
    return rc;
}
