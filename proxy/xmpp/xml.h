/* XML for XMPP streams: an element tree (stanzas), its serializer, and a
 * streaming parser on expat that turns arbitrarily split input into a stream
 * header, whole top-level stanzas and a stream end.
 *
 * The parser enforces RFC 6120 §11: no DTD, no entity declarations or
 * references other than the five predefined and character references, no
 * processing instructions, no comments. It bounds stanza size in input
 * bytes, the heap a stanza's tree takes, elements, depth and attributes, the
 * length of names and namespace URIs, and the bytes expat may buffer in one
 * unfinished token. A violation stops the parser for good and names the
 * stream error condition to send. */
#ifndef XS_XMPP_XML_H
#define XS_XMPP_XML_H

#include <stddef.h>

#include "core/buf.h"

struct xs_xml_attr {
    const char *name; /* qualified as written after namespace resolution: "xml:lang" for
                         the xml namespace, "id", or "{uri}local" for other prefixed ones */
    const char *value;
};

/* An element. Children and text are kept in document order as nodes; an
 * element's own character data is the concatenation of its text nodes. All
 * of a tree's memory (elements, strings, arrays) belongs to its root and
 * goes with it; the fields are read-only outside xml_tree.c. */
struct xs_xml_node;
struct xs_xml_arena;
struct xs_xml_el {
    const char *name; /* local name */
    const char *ns;   /* namespace URI, "" when none; shared by the tree's elements */
    struct xs_xml_attr *attrs;
    size_t n_attrs;
    size_t cap_attrs;
    struct xs_xml_node *children;
    size_t n_children;
    size_t cap_children;
    struct xs_xml_arena *arena; /* the tree's memory */
};

struct xs_xml_node {
    int is_text;
    union {
        struct xs_xml_el *el;
        char *text;
    } u;
};

/* Tree building. All return NULL / negative on OOM. Strings are copied. */
struct xs_xml_el *xs_xml_el_new(const char *ns, const char *name); /* a new root, owned */
/* Frees a root and its whole tree; a child is freed with its root only, so
 * this does nothing for one. */
void xs_xml_el_free(struct xs_xml_el *el);
/* Sets or replaces an attribute; a NULL value removes it. */
int xs_xml_el_set_attr(struct xs_xml_el *el, const char *name, const char *value);
const char *xs_xml_el_attr(const struct xs_xml_el *el, const char *name); /* borrowed or NULL */
/* Adds a new child element and returns it (borrowed; owned by the parent). */
struct xs_xml_el *xs_xml_el_add_child(struct xs_xml_el *el, const char *ns, const char *name);
/* Appends text (len bytes) as a text node. */
int xs_xml_el_add_text(struct xs_xml_el *el, const char *text, size_t len);
/* First child element with that name (and ns, unless ns is NULL); borrowed. */
struct xs_xml_el *xs_xml_el_child(const struct xs_xml_el *el, const char *ns, const char *name);
/* Concatenated character data of el's direct text nodes; returned owned
 * (free()), "" when there is none, NULL on OOM. */
char *xs_xml_el_text(const struct xs_xml_el *el);
/* Deep copy of el and its subtree; returned owned (xs_xml_el_free), NULL on OOM. */
struct xs_xml_el *xs_xml_el_dup(const struct xs_xml_el *el);

/* Serializes el and its subtree into out. `parent_ns` is the default
 * namespace in scope at the insertion point (e.g. "jabber:server" inside an
 * s2s stream): an xmlns attribute is written only where an element's ns
 * differs from its parent's. Text and attribute values are escaped
 * (& < > " '). Returns 0, or XS_ELIMIT when out's maximum is reached. */
int xs_xml_serialize(const struct xs_xml_el *el, const char *parent_ns, struct xs_buf *out);
/* Appends s escaped for text or attribute content. The output is always
 * well-formed XML 1.0 whatever s holds: the five specials become entities,
 * tab, LF and CR become character references (so attribute value
 * normalization cannot change them), and bytes that are not valid UTF-8 or
 * code points XML 1.0 forbids (C0 controls, U+FFFE, U+FFFF) become U+FFFD.
 * A tree may carry text from SIP; one stray byte must not make the peer kill
 * the whole stream. Returns 0 or XS_ELIMIT. */
int xs_xml_escape(struct xs_buf *out, const char *s, size_t len);

/* Limits on what one stream may make the parser hold. A field left 0 takes
 * the default named beside it, so a caller sets only what it cares about. */
struct xs_xml_limits {
    size_t max_stanza_bytes; /* bytes of input one stanza may span */
    size_t max_depth;        /* element depth inside a stanza (stanza itself = 1) */
    size_t max_attrs;        /* attributes on one element */
    size_t max_elements;     /* elements in one stanza, itself included; 0: 4096 */
    size_t max_tree_bytes;   /* heap one stanza's tree may take; 0: 4 x max_stanza_bytes
                                (at least 8 KiB) */
    size_t max_pending;      /* input bytes expat may hold without an event, i.e. the
                                largest tag, name or unfinished token; 0: 16 KiB */
};

/* Namespace URIs and local names longer than this are refused; a prefixed
 * attribute's "{uri}local" name is thus at most 2 KiB. */
#define XS_XML_MAX_NAME 1024

struct xs_xml_cbs {
    /* The <stream:stream> open tag; the element has no children. Borrowed
     * for the call. */
    void (*stream_open)(void *ud, const struct xs_xml_el *header);
    /* A whole first-level child of the stream; ownership passes to the callee. */
    void (*stanza)(void *ud, struct xs_xml_el *stanza);
    /* </stream:stream> */
    void (*stream_close)(void *ud);
};

struct xs_xml_parser;

/* NULL on OOM. `cbs` and `ud` are borrowed for the parser's life. */
struct xs_xml_parser *xs_xml_parser_new(const struct xs_xml_limits *lim,
                                        const struct xs_xml_cbs *cbs, void *ud);
void xs_xml_parser_free(struct xs_xml_parser *p);
/* Feeds bytes. Returns 0, or a negative XS_E* once the input is bad (then
 * xs_xml_parser_condition() names the stream error) or after
 * xs_xml_parser_stop(). Once failed or stopped, every later call fails too. */
int xs_xml_parser_feed(struct xs_xml_parser *p, const char *data, size_t len);
/* Releases what the parser holds between stanzas (expat's buffers and
 * tables, the tree stack, the text buffer), keeping only the stream
 * header's bytes; the next feed rebuilds it from them, unseen by the owner.
 * For a stream gone quiet: it costs a new expat parser on its next byte.
 * Returns 1 when released, 0 when there was nothing to release or it is
 * not possible now (inside a feed, mid-stanza, before the header, expat
 * holding input not yet reported, or after the parser stopped). */
int xs_xml_parser_trim(struct xs_xml_parser *p);
/* Called from inside a callback: parse nothing more of this stream. The feed
 * that is running returns 0; later feeds return XS_ESTATE. Feeds after
 * </stream:stream> also return XS_ESTATE, and bytes after it in the same feed
 * are discarded. The parser must not be freed from inside a callback. Bytes
 * after the current element are discarded (what a peer sends after
 * <starttls/> before the handshake must never be read as part of the
 * encrypted stream). The owner then makes a new parser for the restart. */
void xs_xml_parser_stop(struct xs_xml_parser *p);
/* RFC 6120 stream error condition for the failure ("not-well-formed",
 * "restricted-xml", "policy-violation", "invalid-namespace",
 * "bad-format", "unsupported-encoding"...), NULL if none. Feed returns
 * XS_EPROTO for bad input, XS_ELIMIT for a limit ("policy-violation") and
 * XS_ENOMEM when memory ran out ("resource-constraint"). Character data
 * other than whitespace between stanzas is "bad-format": it is well-formed
 * XML, but nothing XMPP can process (RFC 6120 §4.9.3.1). A first element
 * that is not <stream> is "bad-format"; <stream> in another namespace is
 * "invalid-namespace" (§4.9.3.10). */
const char *xs_xml_parser_condition(const struct xs_xml_parser *p);
/* Human-readable detail of the failure for logs, "" if none. */
const char *xs_xml_parser_detail(const struct xs_xml_parser *p);
/* Replaces the limits (copied) from the next stanza on: at once between
 * stanzas or from a callback, after the current stanza when one is half
 * parsed. A stream starts small before authentication and grows after. */
void xs_xml_parser_set_limits(struct xs_xml_parser *p, const struct xs_xml_limits *lim);

#endif
