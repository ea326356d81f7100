/* The element tree stanzas live in: building, lookup, copying, freeing. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "xmpp/xml.h"

struct xs_xml_el *xs_xml_el_new(const char *ns, const char *name)
{
    struct xs_xml_el *el = calloc(1, sizeof *el);
    if (!el)
        return NULL;
    el->name = strdup(name);
    el->ns = strdup(ns ? ns : "");
    if (!el->name || !el->ns) {
        xs_xml_el_free(el);
        return NULL;
    }
    return el;
}

void xs_xml_el_free(struct xs_xml_el *el)
{
    if (!el)
        return;
    for (size_t i = 0; i < el->n_children; i++) {
        struct xs_xml_node *n = &el->children[i];
        if (n->is_text)
            free(n->u.text);
        else
            xs_xml_el_free(n->u.el);
    }
    free(el->children);
    for (size_t i = 0; i < el->n_attrs; i++) {
        free(el->attrs[i].name);
        free(el->attrs[i].value);
    }
    free(el->attrs);
    free(el->name);
    free(el->ns);
    free(el);
}

static struct xs_xml_attr *find_attr(const struct xs_xml_el *el, const char *name)
{
    for (size_t i = 0; i < el->n_attrs; i++)
        if (!strcmp(el->attrs[i].name, name))
            return &el->attrs[i];
    return NULL;
}

int xs_xml_el_set_attr(struct xs_xml_el *el, const char *name, const char *value)
{
    struct xs_xml_attr *a = find_attr(el, name);
    if (!value) {
        if (a) {
            free(a->name);
            free(a->value);
            size_t i = (size_t)(a - el->attrs);
            memmove(a, a + 1, (el->n_attrs - i - 1) * sizeof *a);
            el->n_attrs--;
        }
        return 0;
    }
    char *v = strdup(value);
    if (!v)
        return XS_ENOMEM;
    if (a) {
        free(a->value);
        a->value = v;
        return 0;
    }
    char *n = strdup(name);
    struct xs_xml_attr *grown = n ? realloc(el->attrs, (el->n_attrs + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(n);
        free(v);
        return XS_ENOMEM;
    }
    el->attrs = grown;
    el->attrs[el->n_attrs].name = n;
    el->attrs[el->n_attrs].value = v;
    el->n_attrs++;
    return 0;
}

const char *xs_xml_el_attr(const struct xs_xml_el *el, const char *name)
{
    const struct xs_xml_attr *a = find_attr(el, name);
    return a ? a->value : NULL;
}

/* Makes room for one more node; children grow by doubling so a parser
 * appending thousands of small children stays linear. */
static struct xs_xml_node *new_node(struct xs_xml_el *el)
{
    if (el->n_children == el->cap_children) {
        size_t cap = el->cap_children ? el->cap_children * 2 : 4;
        struct xs_xml_node *c = realloc(el->children, cap * sizeof *c);
        if (!c)
            return NULL;
        el->children = c;
        el->cap_children = cap;
    }
    return &el->children[el->n_children];
}

struct xs_xml_el *xs_xml_el_add_child(struct xs_xml_el *el, const char *ns, const char *name)
{
    struct xs_xml_node *n = new_node(el);
    if (!n)
        return NULL;
    struct xs_xml_el *child = xs_xml_el_new(ns, name);
    if (!child)
        return NULL;
    n->is_text = 0;
    n->u.el = child;
    el->n_children++;
    return child;
}

int xs_xml_el_add_text(struct xs_xml_el *el, const char *text, size_t len)
{
    struct xs_xml_node *n = new_node(el);
    if (!n)
        return XS_ENOMEM;
    char *t = malloc(len + 1);
    if (!t)
        return XS_ENOMEM;
    memcpy(t, text, len);
    t[len] = '\0';
    n->is_text = 1;
    n->u.text = t;
    el->n_children++;
    return 0;
}

struct xs_xml_el *xs_xml_el_child(const struct xs_xml_el *el, const char *ns, const char *name)
{
    for (size_t i = 0; i < el->n_children; i++) {
        const struct xs_xml_node *n = &el->children[i];
        if (n->is_text || strcmp(n->u.el->name, name))
            continue;
        if (!ns || !strcmp(n->u.el->ns, ns))
            return n->u.el;
    }
    return NULL;
}

char *xs_xml_el_text(const struct xs_xml_el *el)
{
    size_t len = 0;
    for (size_t i = 0; i < el->n_children; i++)
        if (el->children[i].is_text)
            len += strlen(el->children[i].u.text);
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    size_t off = 0;
    for (size_t i = 0; i < el->n_children; i++) {
        if (!el->children[i].is_text)
            continue;
        size_t n = strlen(el->children[i].u.text);
        memcpy(s + off, el->children[i].u.text, n);
        off += n;
    }
    s[off] = '\0';
    return s;
}

static int copy_into(struct xs_xml_el *dst, const struct xs_xml_el *src)
{
    for (size_t i = 0; i < src->n_attrs; i++)
        if (xs_xml_el_set_attr(dst, src->attrs[i].name, src->attrs[i].value))
            return XS_ENOMEM;
    for (size_t i = 0; i < src->n_children; i++) {
        const struct xs_xml_node *n = &src->children[i];
        if (n->is_text) {
            if (xs_xml_el_add_text(dst, n->u.text, strlen(n->u.text)))
                return XS_ENOMEM;
            continue;
        }
        struct xs_xml_el *c = xs_xml_el_add_child(dst, n->u.el->ns, n->u.el->name);
        if (!c || copy_into(c, n->u.el))
            return XS_ENOMEM;
    }
    return 0;
}

struct xs_xml_el *xs_xml_el_dup(const struct xs_xml_el *el)
{
    struct xs_xml_el *d = xs_xml_el_new(el->ns, el->name);
    if (d && copy_into(d, el)) {
        xs_xml_el_free(d);
        return NULL;
    }
    return d;
}
