/* What inbound and outbound s2s streams write on the wire: stream headers,
 * stanzas, stream errors. Attribute values that came from the network are
 * escaped here, never trusted to be clean. */
#include <ctype.h>
#include <string.h>

#include "core/addr.h"
#include "core/err.h"
#include "core/log.h"
#include "xmpp/s2s.h"

static int append_attr(struct xs_buf *b, const char *name, const char *value)
{
    if (!value || !*value)
        return 0;
    int rc = xs_buf_printf(b, " %s='", name);
    if (!rc)
        rc = xs_xml_escape(b, value, strlen(value));
    if (!rc)
        rc = xs_buf_append(b, "'", 1);
    return rc;
}

int xs_s2s_write_header(struct xs_link *l, const char *from, const char *to, const char *id)
{
    struct xs_buf b;
    xs_buf_init(&b, 4096);
    int rc =
        xs_buf_append_str(&b, "<?xml version='1.0'?><stream:stream xmlns='" XS_NS_SERVER
                              "' xmlns:stream='" XS_NS_STREAMS "' xmlns:db='" XS_NS_DIALBACK "'");
    if (!rc)
        rc = append_attr(&b, "from", from);
    if (!rc)
        rc = append_attr(&b, "to", to);
    if (!rc)
        rc = append_attr(&b, "id", id);
    if (!rc)
        rc = xs_buf_append_str(&b, " version='1.0'>");
    if (!rc)
        rc = xs_link_write(l, b.data, b.len);
    xs_buf_free(&b);
    return rc;
}

int xs_s2s_write_el(struct xs_xmpp *x, struct xs_link *l, const struct xs_xml_el *el)
{
    xs_buf_reset(&x->scratch);
    int rc = xs_xml_serialize(el, XS_NS_SERVER, &x->scratch);
    if (rc == 0)
        rc = xs_link_write(l, x->scratch.data, x->scratch.len);
    return rc;
}

int xs_s2s_write_db(struct xs_link *l, const char *name, const char *from, const char *to,
                    const char *id, const char *type, const char *key, const char *cond)
{
    struct xs_buf b;
    xs_buf_init(&b, 4096);
    int rc = xs_buf_printf(&b, "<db:%s", name);
    if (!rc)
        rc = append_attr(&b, "from", from);
    if (!rc)
        rc = append_attr(&b, "to", to);
    if (!rc)
        rc = append_attr(&b, "id", id);
    if (!rc)
        rc = append_attr(&b, "type", type);
    if (!rc && !key && !cond)
        rc = xs_buf_append_str(&b, "/>");
    else if (!rc)
        rc = xs_buf_append_str(&b, ">");
    if (!rc && key)
        rc = xs_xml_escape(&b, key, strlen(key));
    /* XEP-0220 §2.4: the error child is in the stream's default namespace. */
    if (!rc && cond)
        rc = xs_buf_printf(&b,
                           "<error type='cancel'><%s xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                           "</error>",
                           cond);
    if (!rc && (key || cond))
        rc = xs_buf_printf(&b, "</db:%s>", name);
    if (!rc)
        rc = xs_link_write(l, b.data, b.len);
    xs_buf_free(&b);
    return rc;
}

void xs_s2s_stream_error(struct xs_link *l, const char *cond, const char *text)
{
    struct xs_buf b;
    xs_buf_init(&b, 4096);
    int rc = xs_buf_printf(&b, "<stream:error><%s xmlns='" XS_NS_STREAM_ERRORS "'/>", cond);
    if (!rc && text) {
        rc = xs_buf_append_str(&b, "<text xmlns='" XS_NS_STREAM_ERRORS "'>");
        if (!rc)
            rc = xs_xml_escape(&b, text, strlen(text));
        if (!rc)
            rc = xs_buf_append_str(&b, "</text>");
    }
    if (!rc)
        rc = xs_buf_append_str(&b, "</stream:error></stream:stream>");
    if (!rc)
        rc = xs_link_write(l, b.data, b.len);
    xs_buf_free(&b);
    if (rc)
        xs_log(XS_LOG_DEBUG, "s2s.write", "peer=%s what=stream-error result=%s", xs_link_peer(l),
               xs_errname(rc));
    xs_link_close(l, rc ? rc : XS_EPROTO);
}

void xs_s2s_close_stream(struct xs_link *l)
{
    static const char end[] = "</stream:stream>";
    int rc = xs_link_write(l, end, sizeof end - 1);
    xs_link_close(l, rc ? rc : XS_OK);
}

struct xs_xml_parser *xs_s2s_parser_new(struct xs_xmpp *x, const struct xs_xml_cbs *cbs, void *ud)
{
    struct xs_xml_limits lim = {
        .max_stanza_bytes = x->cfg->xmpp_max_stanza,
        .max_depth = XS_S2S_XML_DEPTH,
        .max_attrs = XS_S2S_XML_ATTRS,
    };
    return xs_xml_parser_new(&lim, cbs, ud);
}

int xs_s2s_valid_domain(const char *s)
{
    size_t n = strlen(s);
    /* XS_DOMAIN_MAX bounds the buffers streams keep; what a domainpart may
     * hold is the one validator's rule (core/addr.h). */
    return n > 0 && n < XS_DOMAIN_MAX && xs_addr_valid_domain(s, n);
}

int xs_s2s_domain_of(const char *jid, char out[XS_DOMAIN_MAX])
{
    if (!jid)
        return XS_EINVAL;
    /* RFC 7622 §3.2: the domain ends at the first '/', and a localpart, if
     * any, ends at the first '@' before that. */
    const char *slash = strchr(jid, '/');
    const char *end = slash ? slash : jid + strlen(jid);
    const char *at = memchr(jid, '@', (size_t)(end - jid));
    const char *start = at ? at + 1 : jid;
    size_t n = (size_t)(end - start);
    if (n == 0 || n >= XS_DOMAIN_MAX)
        return XS_EINVAL;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)start[i]);
    out[n] = '\0';
    if (n > 1 && out[n - 1] == '.')
        out[n - 1] = '\0';
    return xs_s2s_valid_domain(out) ? 0 : XS_EINVAL;
}
