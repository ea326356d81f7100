/* Writes element trees as XML. Whatever a tree holds, what comes out is
 * well-formed: a peer answers one bad byte with a stream error that takes
 * every other stanza on the stream down with it. */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "xmpp/xml.h"

#define NS_XML "http://www.w3.org/XML/1998/namespace"

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Length of the valid UTF-8 sequence at s (at most n bytes) that encodes a
 * character XML 1.0 allows, or 0 when the bytes there are not one. */
static size_t xml_char_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return (c >= 0x20 || c == '\t' || c == '\n' || c == '\r') ? 1 : 0;
    size_t len;
    unsigned cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
        return 0;
    return len;
}

/* Escapes for text content when `attr` is 0, and for a quoted attribute
 * value (where tab and LF would be normalized to spaces) when it is 1. */
static int escape(struct xs_buf *out, const char *s, size_t len, int attr)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0; /* start of the pending run of bytes written as they are */
    size_t i = 0;
    while (i < len) {
        const char *rep = NULL;
        size_t step = 1;
        switch (u[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        case '\r':
            rep = "&#xD;";
            break;
        case '\t':
            rep = attr ? "&#x9;" : NULL;
            break;
        case '\n':
            rep = attr ? "&#xA;" : NULL;
            break;
        default:
            step = xml_char_len(u + i, len - i);
            if (!step) {
                rep = replacement;
                step = 1;
            }
            break;
        }
        if (!rep) {
            i += step;
            continue;
        }
        int rc = xs_buf_append(out, s + run, i - run);
        if (!rc)
            rc = xs_buf_append_str(out, rep);
        if (rc)
            return rc;
        i += step;
        run = i;
    }
    return xs_buf_append(out, s + run, len - run);
}

int xs_xml_escape(struct xs_buf *out, const char *s, size_t len)
{
    return escape(out, s, len, 1);
}

static int write_attr(struct xs_buf *out, const char *name, const char *value)
{
    int rc = xs_buf_append(out, " ", 1);
    if (!rc)
        rc = xs_buf_append_str(out, name);
    if (!rc)
        rc = xs_buf_append(out, "='", 2);
    if (!rc)
        rc = escape(out, value, strlen(value), 1);
    if (!rc)
        rc = xs_buf_append(out, "'", 1);
    return rc;
}

/* An attribute named "{uri}local" gets a prefix declared on its own element,
 * since nothing above it in the output is known to bind one. */
static int write_ns_attr(struct xs_buf *out, const struct xs_xml_attr *a, size_t k)
{
    /* A URI may hold '}', a local name never does. */
    const char *close = strrchr(a->name, '}');
    if (!close)
        return write_attr(out, a->name, a->value);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "ns%zu", k);
    int rc = xs_buf_printf(out, " xmlns:%s='", prefix);
    if (!rc)
        rc = escape(out, a->name + 1, (size_t)(close - a->name - 1), 1);
    if (!rc)
        rc = xs_buf_printf(out, "' %s:%s='", prefix, close + 1);
    if (!rc)
        rc = escape(out, a->value, strlen(a->value), 1);
    if (!rc)
        rc = xs_buf_append(out, "'", 1);
    return rc;
}

int xs_xml_serialize(const struct xs_xml_el *el, const char *parent_ns, struct xs_buf *out)
{
    if (!parent_ns)
        parent_ns = "";
    /* The xml namespace can only be written with its fixed prefix; the
     * default namespace in scope then stays the parent's. */
    int xml_ns = !strcmp(el->ns, NS_XML);
    const char *prefix = xml_ns ? "xml:" : "";
    const char *scope = xml_ns ? parent_ns : el->ns;
    int rc = xs_buf_append(out, "<", 1);
    if (!rc)
        rc = xs_buf_append_str(out, prefix);
    if (!rc)
        rc = xs_buf_append_str(out, el->name);
    if (!rc && strcmp(scope, parent_ns))
        rc = write_attr(out, "xmlns", el->ns);
    for (size_t i = 0; !rc && i < el->n_attrs; i++) {
        const struct xs_xml_attr *a = &el->attrs[i];
        rc = a->name[0] == '{' ? write_ns_attr(out, a, i) : write_attr(out, a->name, a->value);
    }
    if (rc)
        return rc;
    if (el->n_children == 0)
        return xs_buf_append(out, "/>", 2);
    rc = xs_buf_append(out, ">", 1);
    for (size_t i = 0; !rc && i < el->n_children; i++) {
        const struct xs_xml_node *n = &el->children[i];
        if (n->is_text)
            rc = escape(out, n->u.text, strlen(n->u.text), 0);
        else
            rc = xs_xml_serialize(n->u.el, scope, out);
    }
    if (!rc)
        rc = xs_buf_append(out, "</", 2);
    if (!rc)
        rc = xs_buf_append_str(out, prefix);
    if (!rc)
        rc = xs_buf_append_str(out, el->name);
    if (!rc)
        rc = xs_buf_append(out, ">", 1);
    return rc;
}
