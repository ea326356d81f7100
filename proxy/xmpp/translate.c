/* <message> and <presence> stanzas to events and back, stanza errors, JIDs. */
#define _GNU_SOURCE /* strndup */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/err.h"
#include "xmpp/translate.h"

static const char ns_server[] = "jabber:server";

/* JIDs are split and checked by the one address validator (core/addr.c),
 * the same rules the Lua side applies. */
static int jid_split(const char *jid, struct xs_addr_jid *j)
{
    return xs_addr_split_jid(jid, j) ? 0 : XS_EINVAL;
}

int xs_jid_check(const char *jid)
{
    struct xs_addr_jid j;
    return jid_split(jid, &j);
}

static void lower_ascii(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
}

int xs_jid_domain(const char *jid, char *out, size_t n)
{
    struct xs_addr_jid j;
    if (jid_split(jid, &j))
        return XS_EINVAL;
    if (j.domain_len + 1 > n)
        return XS_ELIMIT;
    memcpy(out, j.domain, j.domain_len);
    out[j.domain_len] = '\0';
    lower_ascii(out, j.domain_len);
    return 0;
}

int xs_jid_bare(const char *jid, char *out, size_t n)
{
    struct xs_addr_jid j;
    if (jid_split(jid, &j))
        return XS_EINVAL;
    size_t at = j.local ? j.local_len + 1 : 0;
    if (at + j.domain_len + 1 > n)
        return XS_ELIMIT;
    if (j.local) {
        memcpy(out, j.local, j.local_len);
        out[j.local_len] = '@';
    }
    memcpy(out + at, j.domain, j.domain_len);
    out[at + j.domain_len] = '\0';
    lower_ascii(out + at, j.domain_len);
    return 0;
}

/* The first child `name` without xml:lang or in `lang`; failing that, the
 * first one at all, whose language *chosen_lang then names. */
static const struct xs_xml_el *pick_lang(const struct xs_xml_el *st, const char *name,
                                         const char *lang, const char **chosen_lang)
{
    const struct xs_xml_el *first = NULL;
    for (size_t i = 0; i < st->n_children; i++) {
        const struct xs_xml_node *n = &st->children[i];
        if (n->is_text || strcmp(n->u.el->name, name) || strcmp(n->u.el->ns, st->ns))
            continue;
        const char *l = xs_xml_el_attr(n->u.el, "xml:lang");
        if (!l || (lang && !strcmp(l, lang))) {
            *chosen_lang = lang;
            return n->u.el;
        }
        if (!first)
            first = n->u.el;
    }
    if (first)
        *chosen_lang = xs_xml_el_attr(first, "xml:lang");
    return first;
}

/* Copies the text of el into *field (NULL el leaves it NULL). */
static int take_text(char **field, const struct xs_xml_el *el)
{
    if (!el)
        return 0;
    *field = xs_xml_el_text(el);
    return *field ? 0 : XS_ENOMEM;
}

static const char *message_type(const char *type)
{
    static const char *const known[] = {"chat", "normal", "headline"};
    for (size_t i = 0; type && i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(type, known[i]))
            return known[i];
    return "normal";
}

static int presence_to_event(const struct xs_xml_el *st, struct xs_event **out,
                             enum xs_cond *cond);

int xs_xmpp_stanza_to_event(const struct xs_xml_el *st, struct xs_event **out, enum xs_cond *cond)
{
    *out = NULL;
    *cond = XS_COND_NONE;
    if (!strcmp(st->name, "presence") && !strcmp(st->ns, ns_server))
        return presence_to_event(st, out, cond);
    if (strcmp(st->name, "message") || strcmp(st->ns, ns_server)) {
        *cond = XS_COND_BAD_REQUEST;
        return XS_EPROTO;
    }
    const char *type = xs_xml_el_attr(st, "type");
    if (type && !strcmp(type, "error"))
        return XS_EINVAL;
    if (type && !strcmp(type, "groupchat")) {
        *cond = XS_COND_SERVICE_UNAVAILABLE;
        return XS_EPROTO;
    }
    const char *from = xs_xml_el_attr(st, "from");
    const char *to = xs_xml_el_attr(st, "to");
    if (!from || !to) {
        *cond = XS_COND_BAD_REQUEST;
        return XS_EPROTO;
    }
    if (xs_jid_check(from) || xs_jid_check(to)) {
        *cond = XS_COND_JID_MALFORMED;
        return XS_EPROTO;
    }
    const char *lang = xs_xml_el_attr(st, "xml:lang");
    const char *body_lang = NULL, *subject_lang = NULL;
    const struct xs_xml_el *body = pick_lang(st, "body", lang, &body_lang);
    if (!body)
        return XS_ENOTFOUND;
    const struct xs_xml_el *subject = pick_lang(st, "subject", body_lang, &subject_lang);
    const struct xs_xml_el *thread = xs_xml_el_child(st, st->ns, "thread");

    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_XMPP);
    int rc = xs_event_set(&ev->from, from);
    if (!rc)
        rc = xs_event_set(&ev->to, to);
    if (!rc)
        rc = xs_event_set(&ev->id, xs_xml_el_attr(st, "id"));
    if (!rc)
        rc = xs_event_set(&ev->type, message_type(type));
    if (!rc)
        rc = xs_event_set(&ev->lang, body_lang);
    if (!rc)
        rc = take_text(&ev->body, body);
    if (!rc)
        rc = take_text(&ev->subject, subject);
    if (!rc)
        rc = take_text(&ev->thread, thread);
    if (rc) {
        xs_event_free(ev);
        *cond = XS_COND_RESOURCE_CONSTRAINT;
        return XS_ENOMEM;
    }
    *out = ev;
    return 0;
}

/* Adds <name>text</name> under el when text is not NULL. */
static int add_text_child(struct xs_xml_el *el, const char *ns, const char *name, const char *text)
{
    if (!text)
        return 0;
    struct xs_xml_el *c = xs_xml_el_add_child(el, ns, name);
    if (!c)
        return XS_ENOMEM;
    return *text ? xs_xml_el_add_text(c, text, strlen(text)) : 0;
}

static struct xs_xml_el *event_to_presence(const struct xs_event *ev);

struct xs_xml_el *xs_xmpp_event_to_stanza(const struct xs_event *ev)
{
    if (!ev->from || !ev->to)
        return NULL;
    if (ev->kind != XS_EVENT_MESSAGE)
        return event_to_presence(ev);
    struct xs_xml_el *el = xs_xml_el_new(ns_server, "message");
    if (!el)
        return NULL;
    int rc = xs_xml_el_set_attr(el, "from", ev->from);
    if (!rc)
        rc = xs_xml_el_set_attr(el, "to", ev->to);
    if (!rc)
        rc = xs_xml_el_set_attr(el, "id", ev->id);
    if (!rc)
        rc = xs_xml_el_set_attr(el, "type", ev->type);
    if (!rc)
        rc = xs_xml_el_set_attr(el, "xml:lang", ev->lang);
    if (!rc)
        rc = add_text_child(el, ns_server, "subject", ev->subject);
    if (!rc)
        rc = add_text_child(el, ns_server, "body", ev->body);
    if (!rc)
        rc = add_text_child(el, ns_server, "thread", ev->thread);
    if (rc) {
        xs_xml_el_free(el);
        return NULL;
    }
    return el;
}

struct xs_xml_el *xs_xmpp_error_reply(const struct xs_xml_el *orig, const char *from,
                                      const char *to, const char *id, const char *stanza_name,
                                      enum xs_cond cond, const char *text)
{
    if (!stanza_name)
        stanza_name = orig ? orig->name : "message";
    if (!id && orig)
        id = xs_xml_el_attr(orig, "id");
    if (cond == XS_COND_NONE || !xs_cond_name(cond))
        cond = XS_COND_UNDEFINED_CONDITION;
    struct xs_xml_el *el = xs_xml_el_new(ns_server, stanza_name);
    if (!el)
        return NULL;
    int rc = xs_xml_el_set_attr(el, "type", "error");
    if (!rc)
        rc = xs_xml_el_set_attr(el, "from", from);
    if (!rc)
        rc = xs_xml_el_set_attr(el, "to", to);
    if (!rc)
        rc = xs_xml_el_set_attr(el, "id", id);
    /* gone and redirect carry the new address as their character data
     * (RFC 6120 §8.3.3.5, §8.3.3.14; RFC 7247 §7.2 note 1). */
    const char *addr = NULL;
    size_t al = 0;
    if (cond == XS_COND_GONE || cond == XS_COND_REDIRECT) {
        text = xs_cond_text_addr(text, &addr, &al);
        if (!text[0])
            text = NULL;
    }
    struct xs_xml_el *err = rc ? NULL : xs_xml_el_add_child(el, ns_server, "error");
    struct xs_xml_el *c = NULL;
    if (!err || xs_xml_el_set_attr(err, "type", xs_cond_type(cond)) ||
        !(c = xs_xml_el_add_child(err, XS_NS_STANZAS, xs_cond_name(cond))) ||
        (addr && xs_xml_el_add_text(c, addr, al)) ||
        add_text_child(err, XS_NS_STANZAS, "text", text)) {
        xs_xml_el_free(el);
        return NULL;
    }
    return el;
}

/* The address a <gone/> or <redirect/> holds as character data, trimmed of
 * surrounding white space, with an IRI's non-ASCII bytes percent-encoded
 * (RFC 3987 §3.1) so it can stand in a SIP header. NULL when there is none
 * or it cannot be an address; owned (free()). */
static char *condition_address(const struct xs_xml_el *el)
{
    char *raw = xs_xml_el_text(el);
    if (!raw)
        return NULL;
    const char *b = raw, *e = raw + strlen(raw);
    while (b < e && strchr(" \t\r\n", *b))
        b++;
    while (e > b && strchr(" \t\r\n", e[-1]))
        e--;
    char uri[XS_COND_ADDR_MAX + 1];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)b; p < (const unsigned char *)e; p++) {
        if (o + 4 > sizeof uri) {
            o = 0;
            break;
        }
        if (*p >= 0x80) {
            static const char hex[] = "0123456789ABCDEF";
            uri[o++] = '%';
            uri[o++] = hex[*p >> 4];
            uri[o++] = hex[*p & 15];
        } else {
            uri[o++] = (char)*p;
        }
    }
    free(raw);
    const char *addr;
    size_t al;
    char probe[XS_COND_ADDR_MAX + 3];
    snprintf(probe, sizeof probe, "<%.*s>", (int)o, uri);
    xs_cond_text_addr(probe, &addr, &al);
    return addr ? strndup(addr, al) : NULL;
}

enum xs_cond xs_xmpp_error_condition(const struct xs_xml_el *st, char **text)
{
    if (text)
        *text = NULL;
    const struct xs_xml_el *err = xs_xml_el_child(st, NULL, "error");
    if (!err)
        return XS_COND_UNDEFINED_CONDITION;
    enum xs_cond cond = XS_COND_UNDEFINED_CONDITION;
    const struct xs_xml_el *cond_el = NULL;
    for (size_t i = 0; i < err->n_children; i++) {
        const struct xs_xml_node *n = &err->children[i];
        if (n->is_text || strcmp(n->u.el->ns, XS_NS_STANZAS))
            continue;
        if (!strcmp(n->u.el->name, "text")) {
            if (text && !*text)
                *text = xs_xml_el_text(n->u.el);
        } else if (!cond_el) {
            cond = xs_cond_from_name(n->u.el->name);
            cond_el = n->u.el;
        }
    }
    if (text && (cond == XS_COND_GONE || cond == XS_COND_REDIRECT)) {
        /* RFC 7247 §7.1 note 3: a <gone/> with a new address becomes 301, so
         * the address must reach the SIP side with the condition. */
        char *addr = condition_address(cond_el);
        if (addr) {
            char *with = xs_cond_text_with_addr(addr, strlen(addr), *text);
            if (with) {
                free(*text);
                *text = with;
            }
            free(addr);
        }
    }
    return cond;
}

/* Presence (RFC 6121 §4) and subscriptions (§3): the stanza's type names
 * the event's kind and type. */
struct presence_type {
    const char *wire; /* the type attribute; NULL: none */
    enum xs_event_kind kind;
    const char *type; /* the event's type */
};

static const struct presence_type presence_types[] = {
    {NULL, XS_EVENT_PRESENCE, "available"},
    {"unavailable", XS_EVENT_PRESENCE, "unavailable"},
    {"probe", XS_EVENT_PRESENCE, "probe"},
    {"subscribe", XS_EVENT_SUBSCRIPTION, "subscribe"},
    {"subscribed", XS_EVENT_SUBSCRIPTION, "subscribed"},
    {"unsubscribe", XS_EVENT_SUBSCRIPTION, "unsubscribe"},
    {"unsubscribed", XS_EVENT_SUBSCRIPTION, "unsubscribed"},
};
#define N_PRESENCE_TYPES (sizeof presence_types / sizeof presence_types[0])

static const struct presence_type *presence_type_by_wire(const char *wire)
{
    for (size_t i = 0; i < N_PRESENCE_TYPES; i++) {
        const char *w = presence_types[i].wire;
        if (w == wire || (w && wire && !strcmp(w, wire)))
            return &presence_types[i];
    }
    return NULL;
}

static const struct presence_type *presence_type_by_event(enum xs_event_kind kind,
                                                          const char *type)
{
    for (size_t i = 0; type && i < N_PRESENCE_TYPES; i++)
        if (presence_types[i].kind == kind && !strcmp(presence_types[i].type, type))
            return &presence_types[i];
    return NULL;
}

/* The defined <show> values (RFC 6121 §4.7.2.1), as static strings. */
static const char *show_value(const char *s)
{
    static const char *const known[] = {"away", "chat", "dnd", "xa"};
    for (size_t i = 0; s && i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(s, known[i]))
            return known[i];
    return NULL;
}

/* How many of s's first n bytes fit in XS_XMPP_STATUS_MAX without cutting a
 * UTF-8 sequence. */
static size_t status_cut(const char *s, size_t n)
{
    if (n <= XS_XMPP_STATUS_MAX)
        return n;
    n = XS_XMPP_STATUS_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* <priority> as xs:byte (RFC 6121 §4.7.2.3): an integer -128..127,
 * white space around it allowed as XML Schema collapses it. */
static int parse_priority(const char *s, int *out)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    int neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    long v = 0;
    size_t digits = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++)
        if (v <= 128)
            v = v * 10 + (*s - '0');
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    if (!digits || *s || v > (neg ? 128 : 127))
        return XS_EINVAL;
    *out = (int)(neg ? -v : v);
    return 0;
}

/* Copies el's text into *field, cut as status_cut says. */
static int take_status(char **field, const struct xs_xml_el *el)
{
    if (!el)
        return 0;
    char *t = xs_xml_el_text(el);
    if (!t)
        return XS_ENOMEM;
    t[status_cut(t, strlen(t))] = '\0';
    *field = t;
    return 0;
}

/* The availability details of a presence stanza (available or unavailable)
 * into ev. Returns 0, XS_EINVAL for a bad <priority>, or XS_ENOMEM. */
static int presence_details(const struct xs_xml_el *st, struct xs_event *ev, int available)
{
    const char *lang = xs_xml_el_attr(st, "xml:lang"), *status_lang = NULL;
    const struct xs_xml_el *status = pick_lang(st, "status", lang, &status_lang);
    if (status) {
        if (xs_event_set(&ev->lang, status_lang) || take_status(&ev->status, status))
            return XS_ENOMEM;
    }
    if (!available)
        return 0;
    const struct xs_xml_el *show = xs_xml_el_child(st, ns_server, "show");
    if (show) {
        /* An unknown <show> is dropped, not refused: the stanza still says
         * the sender is available, and broadcast presence has nobody who
         * could act on an error (RFC 6121 §4.7.2.1 lets a server ignore it). */
        char *t = xs_xml_el_text(show);
        if (!t)
            return XS_ENOMEM;
        int rc = xs_event_set(&ev->show, show_value(t));
        free(t);
        if (rc)
            return XS_ENOMEM;
    }
    const struct xs_xml_el *prio = xs_xml_el_child(st, ns_server, "priority");
    if (prio) {
        char *t = xs_xml_el_text(prio);
        if (!t)
            return XS_ENOMEM;
        int rc = parse_priority(t, &ev->priority);
        free(t);
        if (rc)
            return XS_EINVAL;
    }
    return 0;
}

/* Subscriptions are between bare JIDs (RFC 6121 §3): a resource a server
 * left on one is not part of the relationship. */
static int set_bare(char **field, const char *jid)
{
    char bare[XS_JID_MAX + 1];
    if (xs_jid_bare(jid, bare, sizeof bare))
        return XS_EINVAL;
    return xs_event_set(field, bare);
}

static int presence_to_event(const struct xs_xml_el *st, struct xs_event **out,
                             enum xs_cond *cond)
{
    const char *wire = xs_xml_el_attr(st, "type");
    if (wire && !strcmp(wire, "error"))
        return XS_EINVAL;
    const struct presence_type *pt = presence_type_by_wire(wire);
    const char *from = xs_xml_el_attr(st, "from");
    const char *to = xs_xml_el_attr(st, "to");
    if (!pt || !from || !to) {
        *cond = XS_COND_BAD_REQUEST;
        return XS_EPROTO;
    }
    if (xs_jid_check(from) || xs_jid_check(to)) {
        *cond = XS_COND_JID_MALFORMED;
        return XS_EPROTO;
    }
    struct xs_event *ev = xs_event_new(pt->kind, XS_SIDE_XMPP);
    int rc;
    if (pt->kind == XS_EVENT_SUBSCRIPTION) {
        rc = set_bare(&ev->from, from);
        if (!rc)
            rc = set_bare(&ev->to, to);
    } else {
        rc = xs_event_set(&ev->from, from);
        if (!rc)
            rc = xs_event_set(&ev->to, to);
    }
    if (!rc)
        rc = xs_event_set(&ev->id, xs_xml_el_attr(st, "id"));
    if (!rc)
        rc = xs_event_set(&ev->type, pt->type);
    if (!rc && pt->kind == XS_EVENT_PRESENCE && strcmp(pt->type, "probe"))
        rc = presence_details(st, ev, !strcmp(pt->type, "available"));
    if (rc) {
        xs_event_free(ev);
        *cond = rc == XS_EINVAL ? XS_COND_BAD_REQUEST : XS_COND_RESOURCE_CONSTRAINT;
        return rc == XS_EINVAL ? XS_EPROTO : XS_ENOMEM;
    }
    *out = ev;
    return 0;
}

int xs_xmpp_event_sendable(const struct xs_event *ev)
{
    if (!ev->from || !ev->to || xs_jid_check(ev->from) || xs_jid_check(ev->to))
        return XS_EINVAL;
    if (ev->kind == XS_EVENT_MESSAGE)
        return 0;
    return presence_type_by_event(ev->kind, ev->type) ? 0 : XS_EINVAL;
}

/* The language goes on <status> itself: servers may stamp their own
 * default xml:lang on the stanza on its way to a client (Prosody does),
 * which would otherwise relabel the text. */
static int add_status(struct xs_xml_el *el, const char *status, const char *lang)
{
    if (!status)
        return 0;
    struct xs_xml_el *c = xs_xml_el_add_child(el, ns_server, "status");
    if (!c || (lang && xs_xml_el_set_attr(c, "xml:lang", lang)))
        return XS_ENOMEM;
    size_t n = status_cut(status, strlen(status));
    return n ? xs_xml_el_add_text(c, status, n) : 0;
}

static struct xs_xml_el *event_to_presence(const struct xs_event *ev)
{
    const struct presence_type *pt = presence_type_by_event(ev->kind, ev->type);
    if (!pt)
        return NULL;
    char bare_from[XS_JID_MAX + 1], bare_to[XS_JID_MAX + 1];
    const char *from = ev->from, *to = ev->to;
    if (pt->kind == XS_EVENT_SUBSCRIPTION) {
        if (xs_jid_bare(ev->from, bare_from, sizeof bare_from) ||
            xs_jid_bare(ev->to, bare_to, sizeof bare_to))
            return NULL;
        from = bare_from;
        to = bare_to;
    }
    struct xs_xml_el *el = xs_xml_el_new(ns_server, "presence");
    if (!el)
        return NULL;
    int rc = xs_xml_el_set_attr(el, "from", from);
    if (!rc)
        rc = xs_xml_el_set_attr(el, "to", to);
    if (!rc)
        rc = xs_xml_el_set_attr(el, "type", pt->wire);
    if (!rc)
        rc = xs_xml_el_set_attr(el, "id", ev->id);
    /* Availability details go with available presence, and the status with
     * unavailable too (RFC 6121 §4.5.1: "gone home"); probes and
     * subscriptions carry nothing but addresses. */
    int available = pt->kind == XS_EVENT_PRESENCE && !strcmp(pt->type, "available");
    int with_status = available || (pt->kind == XS_EVENT_PRESENCE && !strcmp(pt->type,
                                                                            "unavailable"));
    if (!rc && available && show_value(ev->show))
        rc = add_text_child(el, ns_server, "show", show_value(ev->show));
    if (!rc && with_status)
        rc = add_status(el, ev->status, ev->lang);
    if (!rc && available && ev->priority) {
        char p[16];
        int v = ev->priority < -128 ? -128 : ev->priority > 127 ? 127 : ev->priority;
        snprintf(p, sizeof p, "%d", v);
        rc = add_text_child(el, ns_server, "priority", p);
    }
    if (rc) {
        xs_xml_el_free(el);
        return NULL;
    }
    return el;
}
