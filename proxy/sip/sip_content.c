#define _GNU_SOURCE /* memmem */
#include "sip/sip_content.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "sip/sip_msg.h"

enum charset { CS_UTF8, CS_ASCII, CS_LATIN1, CS_CP1252, CS_UTF16, CS_UTF16BE, CS_UTF16LE };

static const struct {
    const char *name;
    enum charset cs;
} charsets[] = {
    {"utf-8", CS_UTF8},           {"utf8", CS_UTF8},
    {"us-ascii", CS_ASCII},       {"ascii", CS_ASCII},
    {"ansi_x3.4-1968", CS_ASCII}, {"iso-8859-1", CS_LATIN1},
    {"iso_8859-1", CS_LATIN1},    {"iso8859-1", CS_LATIN1},
    {"latin1", CS_LATIN1},        {"windows-1252", CS_CP1252},
    {"cp1252", CS_CP1252},        {"utf-16", CS_UTF16},
    {"utf-16be", CS_UTF16BE},     {"utf-16le", CS_UTF16LE},
};

/* Windows-1252 0x80..0x9F; 0 marks the five bytes it leaves undefined. */
static const uint16_t cp1252_high[32] = {
    0x20ac, 0,      0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017d, 0,      0,      0x2018, 0x2019, 0x201c, 0x201d, 0x2022,
    0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,      0x017e, 0x0178,
};

static int lookup_charset(const char *v, enum charset *cs)
{
    if (!v) {
        /* No charset: UTF-8, a superset of the US-ASCII that RFC 2046 makes
         * the default for text, so no sender loses anything. */
        *cs = CS_UTF8;
        return 0;
    }
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    for (size_t i = 0; i < sizeof charsets / sizeof charsets[0]; i++)
        if (strlen(charsets[i].name) == n && strncasecmp(v, charsets[i].name, n) == 0) {
            *cs = charsets[i].cs;
            return 0;
        }
    return -1;
}

static int put_utf8(struct xs_buf *out, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return xs_buf_append(out, b, n);
}

/* Decodes body into UTF-8. Returns 0, 400 (not valid in the charset) or
 * 500 (out's limit). */
static int decode(enum charset cs, const unsigned char *p, size_t len, struct xs_buf *out)
{
    int rc = 0;
    if (cs == CS_UTF8)
        return xs_buf_append(out, p, len) ? 500 : 0;
    if (cs == CS_UTF16 || cs == CS_UTF16BE || cs == CS_UTF16LE) {
        int le = cs == CS_UTF16LE;
        size_t i = 0;
        if (len % 2)
            return 400;
        /* RFC 2781 §4.3: a BOM decides; without one, big-endian. */
        if (cs == CS_UTF16 && len >= 2) {
            if (p[0] == 0xff && p[1] == 0xfe) {
                le = 1;
                i = 2;
            } else if (p[0] == 0xfe && p[1] == 0xff) {
                i = 2;
            }
        }
        for (; i < len && !rc; i += 2) {
            uint32_t u = le ? (uint32_t)(p[i] | p[i + 1] << 8) : (uint32_t)(p[i] << 8 | p[i + 1]);
            if (u >= 0xdc00 && u <= 0xdfff)
                return 400;
            if (u >= 0xd800 && u <= 0xdbff) {
                if (i + 3 >= len)
                    return 400;
                uint32_t l = le ? (uint32_t)(p[i + 2] | p[i + 3] << 8)
                                : (uint32_t)(p[i + 2] << 8 | p[i + 3]);
                if (l < 0xdc00 || l > 0xdfff)
                    return 400;
                u = 0x10000 + ((u - 0xd800) << 10) + (l - 0xdc00);
                i += 2;
            }
            rc = put_utf8(out, u);
        }
        return rc ? 500 : 0;
    }
    for (size_t i = 0; i < len && !rc; i++) {
        uint32_t u = p[i];
        if (u >= 0x80 && cs == CS_ASCII)
            return 400;
        if (u >= 0x80 && u < 0xa0 && cs == CS_CP1252) {
            u = cp1252_high[u - 0x80];
            if (!u)
                return 400;
        }
        rc = put_utf8(out, u);
    }
    return rc ? 500 : 0;
}

/* "&name;" or "&#n;"/"&#xh;" at s[0..n): the code point and the length
 * used, or 0 when it is no reference we know (the '&' then stays). */
static size_t entity(const char *s, size_t n, uint32_t *cp)
{
    static const struct {
        const char *name;
        uint32_t cp;
    } named[] = {{"amp", '&'},  {"lt", '<'},    {"gt", '>'},
                 {"quot", '"'}, {"apos", '\''}, {"nbsp", 0xa0}};
    const char *semi = memchr(s, ';', n < 12 ? n : 12);
    if (!semi)
        return 0;
    size_t len = (size_t)(semi - s) + 1;
    if (s[1] == '#') {
        int hex = s[2] == 'x' || s[2] == 'X';
        const char *d = s + (hex ? 3 : 2);
        if (d == semi)
            return 0;
        uint32_t v = 0;
        for (; d < semi; d++) {
            int c = (unsigned char)*d, x;
            if (c >= '0' && c <= '9')
                x = c - '0';
            else if (hex && c >= 'a' && c <= 'f')
                x = c - 'a' + 10;
            else if (hex && c >= 'A' && c <= 'F')
                x = c - 'A' + 10;
            else
                return 0;
            v = v * (hex ? 16 : 10) + (uint32_t)x;
            if (v > 0x10ffff)
                return 0;
        }
        if ((v >= 0xd800 && v <= 0xdfff) || v == 0)
            return 0;
        *cp = v;
        return len;
    }
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (strlen(named[i].name) == len - 2 && memcmp(s + 1, named[i].name, len - 2) == 0) {
            *cp = named[i].cp;
            return len;
        }
    return 0;
}

/* The tag name at s (after '<' and an optional '/'), lower-cased into out. */
static void tag_name(const char *s, const char *end, char *out, size_t n)
{
    size_t o = 0;
    while (s < end && o + 1 < n &&
           ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))) {
        out[o++] = (char)((*s >= 'A' && *s <= 'Z') ? *s - 'A' + 'a' : *s);
        s++;
    }
    out[o] = '\0';
}

static int is_block(const char *name)
{
    static const char *const blocks[] = {"br",  "p",  "div", "li",   "tr", "h1",
                                         "h2",  "h3", "h4",  "h5",   "h6", "blockquote",
                                         "pre", "ul", "ol",  "table"};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
        if (!strcmp(name, blocks[i]))
            return 1;
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* HTML (already UTF-8) as its text. */
static int html_text(const char *s, size_t len, struct xs_buf *out)
{
    const char *end = s + len;
    int rc = 0;
    while (s < end && !rc) {
        if (*s == '<') {
            if (end - s >= 4 && !memcmp(s, "<!--", 4)) {
                const char *c = memmem(s + 4, (size_t)(end - s - 4), "-->", 3);
                s = c ? c + 3 : end;
                continue;
            }
            const char *gt = memchr(s, '>', (size_t)(end - s));
            if (!gt)
                break;
            char name[16];
            int closing = s + 1 < end && s[1] == '/';
            tag_name(s + 1 + closing, gt, name, sizeof name);
            s = gt + 1;
            if (!closing && (!strcmp(name, "script") || !strcmp(name, "style"))) {
                char close[24];
                snprintf(close, sizeof close, "</%s", name);
                const char *c = s;
                while (c && c < end) {
                    c = memchr(c, '<', (size_t)(end - c));
                    if (!c || ((size_t)(end - c) >= strlen(close) &&
                               !strncasecmp(c, close, strlen(close))))
                        break;
                    c++;
                }
                if (!c)
                    c = end;
                const char *cg = memchr(c, '>', (size_t)(end - c));
                s = cg ? cg + 1 : end;
                continue;
            }
            if (is_block(name) && (closing || !strcmp(name, "br")) && out->len &&
                out->data[out->len - 1] != '\n')
                rc = xs_buf_append(out, "\n", 1);
            continue;
        }
        uint32_t cp;
        size_t used = *s == '&' ? entity(s, (size_t)(end - s), &cp) : 0;
        if (used) {
            rc = put_utf8(out, cp);
            s += used;
        } else {
            rc = xs_buf_append(out, s, 1);
            s++;
        }
    }
    return rc ? 500 : 0;
}

int xs_sip_content_to_text(const char *type, const char *subtype, const char *charset,
                           const char *body, size_t len, struct xs_buf *out, const char **why)
{
    int html = 0;
    if (!type || !subtype || strcasecmp(type, "text") != 0) {
        *why = "only text/plain and text/html are accepted";
        return 415;
    }
    if (strcasecmp(subtype, "html") == 0)
        html = 1;
    else if (strcasecmp(subtype, "plain") != 0) {
        *why = "only text/plain and text/html are accepted";
        return 415;
    }
    enum charset cs;
    if (lookup_charset(charset, &cs) != 0) {
        *why = "charset not supported (UTF-8, UTF-16, US-ASCII, ISO-8859-1, Windows-1252 are)";
        return 415;
    }
    struct xs_buf raw;
    xs_buf_init(&raw, out->max);
    int st = decode(cs, (const unsigned char *)body, len, html ? &raw : out);
    if (st == 0 && html) {
        st = html_text(raw.data ? raw.data : "", raw.len, out);
        /* Markup around the text leaves white space at its ends; the text
         * itself starts and ends where the first and last words do. */
        size_t lead = 0, end = out->len;
        while (lead < end && is_space(out->data[lead]))
            lead++;
        while (end > lead && is_space(out->data[end - 1]))
            end--;
        if (out->data) {
            memmove(out->data, out->data + lead, end - lead);
            out->len = end - lead;
            out->data[out->len] = '\0';
        }
    }
    xs_buf_free(&raw);
    if (st == 400) {
        *why = "body is not text in its charset";
        return 400;
    }
    if (st) {
        *why = "body too large once converted";
        return 413;
    }
    if (out->len == 0 || !xs_sip_text_ok(out->data, out->len)) {
        *why = out->len ? "body is not UTF-8 text" : "MESSAGE without text";
        return 400;
    }
    return 0;
}
