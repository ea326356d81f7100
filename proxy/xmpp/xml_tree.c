/* The element tree stanzas live in: building, lookup, copying, freeing.
 *
 * A tree's memory comes from one arena: a chain of blocks that grow from
 * 1 KiB, freed together with the root. A parsed stanza thus costs a few
 * mallocs instead of several per element, and the arena can count every
 * byte the tree takes and refuse to pass a cap, which is how the parser
 * bounds what a peer can make us allocate by what it sends. Namespace URIs
 * are interned per tree: a thousand elements in one namespace share one
 * copy of it. Strings replaced by xs_xml_el_set_attr stay in the arena
 * until the tree is freed; trees are short-lived, so that is cheaper than
 * freeing them one by one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "xmpp/xml.h"
#include "xmpp/xml_tree_int.h"

/* The first block and its header take 1 KiB: malloc serves that from its
 * per-thread cache, where a request past 1032 bytes takes its slow path
 * (and, freed, its consolidation) for every stanza. */
#define FIRST_BLOCK (1024 - sizeof(struct block))
#define MAX_BLOCK (64 * 1024)
#define NS_BUCKETS 16
#define WORD _Alignof(void *)

struct block {
    struct block *next;
    size_t size; /* bytes of data after the header */
    size_t used;
};

struct ns_entry {
    struct ns_entry *next;
    size_t len;
    char s[];
};

struct xs_xml_arena {
    struct block *head; /* the block small allocations come from */
    size_t bytes;       /* heap taken by all blocks, headers included */
    size_t max;
    int over;
    struct xs_xml_el *root;
    struct ns_entry *ns[NS_BUCKETS];
};

static char *block_data(struct block *b)
{
    return (char *)(b + 1);
}

/* A new block of `size` data bytes charged to a, or NULL (a->over says
 * whether the cap was the reason). */
static struct block *block_new(struct xs_xml_arena *a, size_t size)
{
    if (size > a->max || a->max - size < sizeof(struct block) ||
        a->bytes > a->max - size - sizeof(struct block)) {
        a->over = 1;
        return NULL;
    }
    struct block *b = malloc(sizeof *b + size);
    if (!b) {
        a->over = 0;
        return NULL;
    }
    b->size = size;
    b->used = 0;
    a->bytes += sizeof *b + size;
    return b;
}

static void *arena_alloc(struct xs_xml_arena *a, size_t n, size_t align)
{
    struct block *b = a->head;
    size_t off = (b->used + align - 1) & ~(align - 1);
    if (off <= b->size && n <= b->size - off) {
        b->used = off + n;
        return block_data(b) + off;
    }
    size_t size = b->size < MAX_BLOCK / 2 ? b->size * 2 : MAX_BLOCK;
    if (n > size / 4) {
        /* A large string gets a block of its own, behind the current one,
         * which keeps serving small allocations. */
        struct block *big = block_new(a, n);
        if (!big)
            return NULL;
        big->used = n;
        big->next = b->next;
        b->next = big;
        return block_data(big);
    }
    struct block *nb = block_new(a, size);
    if (!nb && a->over)
        nb = block_new(a, n); /* near the cap: just what is needed */
    if (!nb)
        return NULL;
    nb->next = b;
    a->head = nb;
    nb->used = n;
    return block_data(nb);
}

static char *arena_strndup(struct xs_xml_arena *a, const char *s, size_t len)
{
    char *d = arena_alloc(a, len + 1, 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

static struct xs_xml_arena *arena_new(size_t max)
{
    struct xs_xml_arena probe = {.max = max};
    struct block *b = block_new(&probe, FIRST_BLOCK);
    if (!b)
        return NULL;
    b->next = NULL;
    b->used = sizeof(struct xs_xml_arena);
    struct xs_xml_arena *a = (struct xs_xml_arena *)block_data(b);
    *a = probe;
    a->head = b;
    return a;
}

static void arena_free(struct xs_xml_arena *a)
{
    /* The arena lives in its first block, the last of the chain. */
    struct block *b = a->head;
    while (b) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
}

/* One copy of each namespace URI per tree; "" needs none. */
static const char *intern(struct xs_xml_arena *a, const char *s, size_t len)
{
    if (len == 0)
        return "";
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    struct ns_entry **slot = &a->ns[h % NS_BUCKETS];
    for (struct ns_entry *e = *slot; e; e = e->next)
        if (e->len == len && !memcmp(e->s, s, len))
            return e->s;
    struct ns_entry *e = arena_alloc(a, sizeof *e + len + 1, WORD);
    if (!e)
        return NULL;
    e->len = len;
    memcpy(e->s, s, len);
    e->s[len] = '\0';
    e->next = *slot;
    *slot = e;
    return e->s;
}

static struct xs_xml_el *el_alloc(struct xs_xml_arena *a, const char *ns, size_t ns_len,
                                  const char *name)
{
    struct xs_xml_el *el = arena_alloc(a, sizeof *el, WORD);
    if (!el)
        return NULL;
    memset(el, 0, sizeof *el);
    el->arena = a;
    el->ns = intern(a, ns, ns_len);
    el->name = el->ns ? arena_strndup(a, name, strlen(name)) : NULL;
    return el->name ? el : NULL;
}

struct xs_xml_el *xs__xml_root_new(size_t max_bytes, const char *ns, size_t ns_len,
                                   const char *name)
{
    struct xs_xml_arena *a = arena_new(max_bytes);
    if (!a)
        return NULL;
    a->root = el_alloc(a, ns, ns_len, name);
    if (!a->root)
        arena_free(a);
    return a->root;
}

struct xs_xml_el *xs_xml_el_new(const char *ns, const char *name)
{
    ns = ns ? ns : "";
    return xs__xml_root_new(SIZE_MAX, ns, strlen(ns), name);
}

void xs_xml_el_free(struct xs_xml_el *el)
{
    /* A child goes with its root; freeing one alone would leave the
     * parent pointing at freed memory. */
    if (el && el->arena->root == el)
        arena_free(el->arena);
}

int xs__xml_over_cap(const struct xs_xml_el *el)
{
    return el->arena->over;
}

size_t xs__xml_bytes(const struct xs_xml_el *el)
{
    return el->arena->bytes;
}

void xs__xml_uncap(struct xs_xml_el *root)
{
    root->arena->max = SIZE_MAX;
}

static struct xs_xml_attr *find_attr(const struct xs_xml_el *el, const char *name)
{
    for (size_t i = 0; i < el->n_attrs; i++)
        if (!strcmp(el->attrs[i].name, name))
            return &el->attrs[i];
    return NULL;
}

/* Grows an array of the tree to hold `need` items of `size` bytes. The old
 * array stays in the arena; doubling keeps that waste below the array's
 * own size. */
static int grow(struct xs_xml_arena *a, void **arr, size_t *cap, size_t need, size_t size,
                int exact)
{
    if (need <= *cap)
        return 0;
    size_t n = exact ? need : *cap ? *cap * 2 : 4;
    if (n < need)
        n = need;
    if (n > SIZE_MAX / size)
        return XS_ENOMEM;
    void *grown = arena_alloc(a, n * size, WORD);
    if (!grown)
        return XS_ENOMEM;
    if (*cap)
        memcpy(grown, *arr, *cap * size);
    *arr = grown;
    *cap = n;
    return 0;
}

int xs__xml_attrs_reserve(struct xs_xml_el *el, size_t n)
{
    return grow(el->arena, (void **)&el->attrs, &el->cap_attrs, n, sizeof *el->attrs, 1);
}

int xs__xml_attr_append(struct xs_xml_el *el, const char *pre, const char *uri, size_t uri_len,
                        const char *post, const char *local, const char *value)
{
    size_t lp = pre ? strlen(pre) : 0, ls = post ? strlen(post) : 0, ll = strlen(local);
    if (grow(el->arena, (void **)&el->attrs, &el->cap_attrs, el->n_attrs + 1, sizeof *el->attrs, 0))
        return XS_ENOMEM;
    char *name = arena_alloc(el->arena, lp + uri_len + ls + ll + 1, 1);
    const char *v = name ? arena_strndup(el->arena, value, strlen(value)) : NULL;
    if (!v)
        return XS_ENOMEM;
    char *o = name;
    if (lp)
        o = (char *)memcpy(o, pre, lp) + lp;
    if (uri_len)
        o = (char *)memcpy(o, uri, uri_len) + uri_len;
    if (ls)
        o = (char *)memcpy(o, post, ls) + ls;
    memcpy(o, local, ll + 1);
    el->attrs[el->n_attrs].name = name;
    el->attrs[el->n_attrs].value = v;
    el->n_attrs++;
    return 0;
}

int xs_xml_el_set_attr(struct xs_xml_el *el, const char *name, const char *value)
{
    struct xs_xml_attr *a = find_attr(el, name);
    if (!value) {
        if (a) {
            size_t i = (size_t)(a - el->attrs);
            memmove(a, a + 1, (el->n_attrs - i - 1) * sizeof *a);
            el->n_attrs--;
        }
        return 0;
    }
    if (!a)
        return xs__xml_attr_append(el, NULL, NULL, 0, NULL, name, value);
    const char *v = arena_strndup(el->arena, value, strlen(value));
    if (!v)
        return XS_ENOMEM;
    a->value = v;
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
    if (grow(el->arena, (void **)&el->children, &el->cap_children, el->n_children + 1,
             sizeof *el->children, 0))
        return NULL;
    return &el->children[el->n_children];
}

struct xs_xml_el *xs__xml_child_new(struct xs_xml_el *el, const char *ns, size_t ns_len,
                                    const char *name)
{
    struct xs_xml_node *n = new_node(el);
    if (!n)
        return NULL;
    struct xs_xml_el *child;
    /* Most children share their parent's namespace: no lookup needed. */
    if (!strncmp(el->ns, ns, ns_len) && el->ns[ns_len] == '\0') {
        child = el_alloc(el->arena, "", 0, name);
        if (child)
            child->ns = el->ns;
    } else {
        child = el_alloc(el->arena, ns, ns_len, name);
    }
    if (!child)
        return NULL;
    n->is_text = 0;
    n->u.el = child;
    el->n_children++;
    return child;
}

struct xs_xml_el *xs_xml_el_add_child(struct xs_xml_el *el, const char *ns, const char *name)
{
    ns = ns ? ns : "";
    return xs__xml_child_new(el, ns, strlen(ns), name);
}

int xs_xml_el_add_text(struct xs_xml_el *el, const char *text, size_t len)
{
    struct xs_xml_node *n = new_node(el);
    char *t = n ? arena_strndup(el->arena, text, len) : NULL;
    if (!t)
        return XS_ENOMEM;
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
    if (xs__xml_attrs_reserve(dst, src->n_attrs))
        return XS_ENOMEM;
    for (size_t i = 0; i < src->n_attrs; i++)
        if (xs__xml_attr_append(dst, NULL, NULL, 0, NULL, src->attrs[i].name, src->attrs[i].value))
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
