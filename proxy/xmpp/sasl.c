/* SASL EXTERNAL elements for s2s streams (sasl.h). */
#include "xmpp/sasl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/err.h"
#include "core/utf8.h"

static const char *const cond_names[] = {
    [XS_SASL_OK] = "?",
    [XS_SASL_ABORTED] = "aborted",
    [XS_SASL_ACCOUNT_DISABLED] = "account-disabled",
    [XS_SASL_CREDENTIALS_EXPIRED] = "credentials-expired",
    [XS_SASL_ENCRYPTION_REQUIRED] = "encryption-required",
    [XS_SASL_INCORRECT_ENCODING] = "incorrect-encoding",
    [XS_SASL_INVALID_AUTHZID] = "invalid-authzid",
    [XS_SASL_INVALID_MECHANISM] = "invalid-mechanism",
    [XS_SASL_MALFORMED_REQUEST] = "malformed-request",
    [XS_SASL_MECHANISM_TOO_WEAK] = "mechanism-too-weak",
    [XS_SASL_NOT_AUTHORIZED] = "not-authorized",
    [XS_SASL_TEMPORARY_AUTH_FAILURE] = "temporary-auth-failure",
};
#define N_CONDS (sizeof cond_names / sizeof cond_names[0])

const char *xs_sasl_cond_name(enum xs_sasl_cond c)
{
    return (size_t)c < N_CONDS ? cond_names[c] : "?";
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict RFC 4648 §4 decoding into out (room for cap bytes): length a
 * multiple of 4, '=' only as the last one or two characters, and the bits
 * a padded group leaves over all zero, so every byte string has exactly one
 * accepted encoding. Returns the decoded length or -1. */
static long b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    if (len % 4)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad) /* "a=b=" or "ab=c" */
                return -1;
            v[k] = b64_value(c);
            if (v[k] < 0)
                return -1;
        }
        if ((pad == 2 && (v[1] & 0x0f)) || (pad == 1 && (v[2] & 0x03)))
            return -1;
        unsigned char bytes[3] = {(unsigned char)(v[0] << 2 | v[1] >> 4),
                                  (unsigned char)((v[1] & 0x0f) << 4 | v[2] >> 2),
                                  (unsigned char)((v[2] & 0x03) << 6 | v[3])};
        for (int k = 0; k < 3 - pad; k++) {
            if (n == cap)
                return -1;
            out[n++] = bytes[k];
        }
    }
    return (long)n;
}

/* The character data of el without any child element in between; NULL
 * when it has child elements or on OOM (*has_children tells which). */
static char *plain_text(const struct xs_xml_el *el, int *has_children)
{
    *has_children = 0;
    for (size_t i = 0; i < el->n_children; i++) {
        if (!el->children[i].is_text) {
            *has_children = 1;
            return NULL;
        }
    }
    return xs_xml_el_text(el);
}

enum xs_sasl_cond xs_sasl_parse_auth(const struct xs_xml_el *el, char authzid[XS_SASL_AUTHZID_MAX],
                                     const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    authzid[0] = '\0';
    const char *mech = xs_xml_el_attr(el, "mechanism");
    if (!mech || strcmp(mech, "EXTERNAL")) {
        *why = mech ? "only EXTERNAL is offered" : "no mechanism named";
        return XS_SASL_INVALID_MECHANISM;
    }
    int children;
    char *data = plain_text(el, &children);
    if (!data) {
        *why = children ? "unexpected child element in auth" : "out of memory";
        return children ? XS_SASL_MALFORMED_REQUEST : XS_SASL_TEMPORARY_AUTH_FAILURE;
    }
    size_t len = strlen(data);
    enum xs_sasl_cond cond = XS_SASL_OK;
    /* RFC 6120 §6.4.2: "=" is an empty initial response. No response at
     * all would call for an empty challenge and a <response/>; for
     * EXTERNAL that round trip can only carry the same empty identity, so
     * it is taken as one at once. */
    if (len == 0 || (len == 1 && data[0] == '=')) {
        free(data);
        return XS_SASL_OK;
    }
    /* Checked before decoding, so a long response costs nothing more. */
    if (len > 4 * ((XS_SASL_AUTHZID_MAX - 1 + 2) / 3)) {
        *why = "authorization identity longer than a domain";
        free(data);
        return XS_SASL_INVALID_AUTHZID;
    }
    unsigned char raw[XS_SASL_AUTHZID_MAX];
    long n = b64_decode(data, len, raw, XS_SASL_AUTHZID_MAX - 1);
    free(data);
    if (n < 0) {
        *why = "initial response is not valid base64";
        return XS_SASL_INCORRECT_ENCODING;
    }
    for (size_t i = 0; i < (size_t)n; i++)
        if (raw[i] <= 0x20 || raw[i] == 0x7F)
            cond = XS_SASL_INVALID_AUTHZID;
    if (!xs_addr_utf8_ok((const char *)raw, (size_t)n))
        cond = XS_SASL_INVALID_AUTHZID;
    if (cond != XS_SASL_OK || n == 0) {
        *why = "authorization identity is not a domain";
        return XS_SASL_INVALID_AUTHZID;
    }
    memcpy(authzid, raw, (size_t)n);
    authzid[n] = '\0';
    return XS_SASL_OK;
}

int xs_sasl_write_mechanisms(struct xs_buf *out)
{
    return xs_buf_append_str(out, "<mechanisms xmlns='" XS_NS_SASL
                                  "'><mechanism>EXTERNAL</mechanism></mechanisms>");
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int xs_sasl_offers_external(const struct xs_xml_el *features)
{
    const struct xs_xml_el *mechs = xs_xml_el_child(features, XS_NS_SASL, "mechanisms");
    if (!mechs)
        return 0;
    for (size_t i = 0; i < mechs->n_children; i++) {
        const struct xs_xml_el *m = mechs->children[i].is_text ? NULL : mechs->children[i].u.el;
        if (!m || strcmp(m->ns, XS_NS_SASL) || strcmp(m->name, "mechanism"))
            continue;
        int children;
        char *t = plain_text(m, &children);
        if (!t)
            continue;
        const char *s = t;
        size_t len = strlen(s);
        while (len && is_ws(*s))
            s++, len--;
        while (len && is_ws(s[len - 1]))
            len--;
        int match = len == 8 && !memcmp(s, "EXTERNAL", 8);
        free(t);
        if (match)
            return 1;
    }
    return 0;
}

int xs_sasl_write_auth(struct xs_buf *out, const char *authzid)
{
    size_t len = authzid ? strlen(authzid) : 0;
    if (len > XS_SASL_AUTHZID_MAX - 1)
        return XS_EINVAL;
    char enc[4 * ((XS_SASL_AUTHZID_MAX + 2) / 3) + 1];
    size_t n = 0;
    const unsigned char *s = (const unsigned char *)authzid;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        enc[n++] = b64_alphabet[v >> 18 & 63];
        enc[n++] = b64_alphabet[v >> 12 & 63];
        enc[n++] = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
        enc[n++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
    }
    if (n == 0)
        enc[n++] = '=';
    enc[n] = '\0';
    return xs_buf_printf(out, "<auth xmlns='" XS_NS_SASL "' mechanism='EXTERNAL'>%s</auth>", enc);
}

int xs_sasl_write_success(struct xs_buf *out)
{
    return xs_buf_append_str(out, "<success xmlns='" XS_NS_SASL "'/>");
}

int xs_sasl_write_abort(struct xs_buf *out)
{
    return xs_buf_append_str(out, "<abort xmlns='" XS_NS_SASL "'/>");
}

/* How many bytes of s (NUL-terminated) fit in max without cutting a UTF-8
 * sequence; invalid bytes count as one (the escaper replaces them). */
static size_t cut_utf8(const char *s, size_t max)
{
    size_t i = 0, len = strlen(s);
    const unsigned char *u = (const unsigned char *)s;
    while (i < len) {
        uint32_t cp;
        size_t k = xs_utf8_decode(u + i, len - i, &cp);
        if (!k)
            k = 1;
        if (i + k > max)
            break;
        i += k;
    }
    return i;
}

int xs_sasl_write_failure(struct xs_buf *out, enum xs_sasl_cond cond, const char *text)
{
    if (cond == XS_SASL_OK || (size_t)cond >= N_CONDS)
        return XS_EINVAL;
    size_t mark = out->len;
    int rc = xs_buf_printf(out, "<failure xmlns='" XS_NS_SASL "'><%s/>", cond_names[cond]);
    if (rc == 0 && text && *text) {
        rc = xs_buf_append_str(out, "<text>");
        if (rc == 0)
            rc = xs_xml_escape(out, text, cut_utf8(text, XS_SASL_TEXT_MAX));
        if (rc == 0)
            rc = xs_buf_append_str(out, "</text>");
    }
    if (rc == 0)
        rc = xs_buf_append_str(out, "</failure>");
    if (rc != 0) {
        /* Nothing half-written: the caller may send what was there before. */
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}

static void copy_log_text(const char *s, char *out, size_t cap)
{
    size_t n = cut_utf8(s, cap - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c < 0x20 || c == 0x7F ? ' ' : c == '"' ? '\'' : (char)c;
    }
    out[n] = '\0';
}

int xs_sasl_parse_outcome(const struct xs_xml_el *el, enum xs_sasl_cond *cond, char *text,
                          size_t textlen)
{
    if (text && textlen)
        text[0] = '\0';
    if (strcmp(el->ns, XS_NS_SASL) ||
        (strcmp(el->name, "success") && strcmp(el->name, "failure"))) {
        *cond = XS_SASL_MALFORMED_REQUEST;
        return XS_EPROTO;
    }
    if (!strcmp(el->name, "success")) {
        *cond = XS_SASL_OK;
        return 1;
    }
    *cond = XS_SASL_NOT_AUTHORIZED;
    int named = 0;
    for (size_t i = 0; i < el->n_children; i++) {
        const struct xs_xml_el *c = el->children[i].is_text ? NULL : el->children[i].u.el;
        if (!c || strcmp(c->ns, XS_NS_SASL))
            continue;
        if (!strcmp(c->name, "text")) {
            if (text && textlen && !text[0]) {
                char *t = xs_xml_el_text(c);
                if (t)
                    copy_log_text(t, text, textlen);
                free(t);
            }
            continue;
        }
        for (size_t k = 1; k < N_CONDS && !named; k++) {
            if (!strcmp(c->name, cond_names[k])) {
                *cond = (enum xs_sasl_cond)k;
                named = 1;
            }
        }
    }
    return 0;
}
