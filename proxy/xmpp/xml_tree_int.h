/* What the stream parser needs of the element tree beyond the public API
 * (xml.h): trees whose memory is capped, namespace interning, and building
 * with lengths known. Only xml_tree.c and xml_parser.c include this. */
#ifndef XS_XMPP_XML_TREE_INT_H
#define XS_XMPP_XML_TREE_INT_H

#include <stddef.h>

#include "xmpp/xml.h"

/* A new root whose whole tree may take at most max_bytes of heap (blocks as
 * allocated, bookkeeping included). The namespace is interned: every element
 * of the tree in the same namespace points at one copy. Returned owned
 * (xs_xml_el_free), NULL when memory or the cap ran out. */
struct xs_xml_el *xs__xml_root_new(size_t max_bytes, const char *ns, size_t ns_len,
                                   const char *name);
/* A new last child of el, in the same tree; borrowed. NULL on failure. */
struct xs_xml_el *xs__xml_child_new(struct xs_xml_el *el, const char *ns, size_t ns_len,
                                    const char *name);
/* Makes room for exactly n attributes on an element that has none, so the
 * parser, which knows the count, wastes nothing on growth. */
int xs__xml_attrs_reserve(struct xs_xml_el *el, size_t n);
/* Appends an attribute without looking for a duplicate (expat has already
 * refused those). name is built from its parts, which may be NULL; the
 * strings are copied into el's tree. */
int xs__xml_attr_append(struct xs_xml_el *el, const char *pre, const char *uri, size_t uri_len,
                        const char *post, const char *local, const char *value);
/* Nonzero when the tree's last failed allocation hit its cap rather than
 * running out of memory. */
int xs__xml_over_cap(const struct xs_xml_el *el);
/* Heap bytes the tree holds now. */
size_t xs__xml_bytes(const struct xs_xml_el *el);
/* Lifts the cap: the parser bounds what a peer sends; what our own code
 * adds to a tree afterwards is not the peer's to pay for. */
void xs__xml_uncap(struct xs_xml_el *root);

#endif
