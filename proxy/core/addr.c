#include "core/addr.h"

#include <stdint.h>
#include <string.h>

#include "core/utf8.h"

int xs_addr_utf8_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k) {
        /* Addresses are mostly ASCII: checked here, per message. */
        if (p[i] < 0x80)
            k = 1;
        else if ((k = xs_utf8_decode(p + i, n - i, &cp)) == 0)
            return 0;
    }
    return 1;
}

/* Controls (C0, DEL; C1 arrive as UTF-8 U+0080..U+009F). */
static int has_control(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return 1;
        if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
            return 1;
    }
    return 0;
}

static int is_ldh(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

int xs_addr_valid_domain(const char *s, size_t n)
{
    if (n == 0 || n > XS_ADDR_PART_MAX)
        return 0;
    if (s[0] == '[') {
        if (n < 4 || s[n - 1] != ']')
            return 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (!s[i] || !strchr("0123456789abcdefABCDEF:.", s[i]))
                return 0;
        return memchr(s, ':', n) != NULL;
    }
    int ascii = 1;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (c >= 0x80)
            ascii = 0;
        else if (!is_ldh(c))
            return 0;
        label++;
    }
    if (label == 0 || (ascii && n > 253))
        return 0;
    return ascii || xs_addr_utf8_ok(s, n);
}

int xs_addr_valid_localpart(const char *s, size_t n)
{
    if (n == 0 || n > XS_ADDR_PART_MAX || has_control(s, n) || !xs_addr_utf8_ok(s, n))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ' || (s[i] && strchr("\"&'/:<>@", s[i])))
            return 0;
    return 1;
}

int xs_addr_valid_resource(const char *s, size_t n)
{
    return n > 0 && n <= XS_ADDR_PART_MAX && !has_control(s, n) && xs_addr_utf8_ok(s, n);
}

int xs_addr_split_jid(const char *jid, struct xs_addr_jid *out)
{
    struct xs_addr_jid j;
    if (!jid)
        return 0;
    size_t len = strlen(jid);
    if (len == 0 || len > XS_ADDR_JID_MAX)
        return 0;
    const char *slash = strchr(jid, '/');
    const char *end = slash ? slash : jid + len;
    const char *at = memchr(jid, '@', (size_t)(end - jid));
    memset(&j, 0, sizeof j);
    if (at) {
        j.local = jid;
        j.local_len = (size_t)(at - jid);
        if (!xs_addr_valid_localpart(j.local, j.local_len))
            return 0;
    }
    j.domain = at ? at + 1 : jid;
    j.domain_len = (size_t)(end - j.domain);
    if (j.domain_len > 1 && j.domain[j.domain_len - 1] == '.')
        j.domain_len--;
    if (!xs_addr_valid_domain(j.domain, j.domain_len))
        return 0;
    if (slash) {
        j.resource = slash + 1;
        j.resource_len = len - (size_t)(slash + 1 - jid);
        if (!xs_addr_valid_resource(j.resource, j.resource_len))
            return 0;
    }
    if (out)
        *out = j;
    return 1;
}

int xs_addr_valid_jid(const char *jid)
{
    return xs_addr_split_jid(jid, NULL);
}
