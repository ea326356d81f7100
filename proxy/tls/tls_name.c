/* RFC 9525 DNS-ID matching and the Punycode (RFC 3492) encoding that turns
 * internationalized reference names into the A-labels certificates carry. */
#include "tls/tls_name.h"

#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "core/utf8.h"

#define LABEL_MAX 63

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static uint32_t adapt(uint32_t delta, uint32_t numpoints, int first)
{
    delta = first ? delta / 700 : delta / 2;
    delta += delta / numpoints;
    uint32_t k = 0;
    while (delta > ((36 - 1) * 26) / 2) {
        delta /= 36 - 1;
        k += 36;
    }
    return k + (36 * delta) / (delta + 38);
}

static char digit(uint32_t d)
{
    return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

/* RFC 3492 §6.3 for one label of n code points into out (cap bytes);
 * returns the length written or 0 when it does not fit or overflows. */
static size_t punycode(const uint32_t *cp, size_t n, char *out, size_t cap)
{
    size_t o = 0, basic = 0;
    for (size_t i = 0; i < n; i++) {
        if (cp[i] < 0x80) {
            if (o >= cap)
                return 0;
            out[o++] = lower((char)cp[i]);
            basic++;
        }
    }
    if (basic > 0) {
        if (o >= cap)
            return 0;
        out[o++] = '-';
    }
    uint32_t next = 0x80, delta = 0, bias = 72;
    size_t h = basic;
    while (h < n) {
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if (cp[i] >= next && cp[i] < m)
                m = cp[i];
        if ((uint64_t)(m - next) * (h + 1) > UINT32_MAX - delta)
            return 0;
        delta += (m - next) * (uint32_t)(h + 1);
        next = m;
        for (size_t i = 0; i < n; i++) {
            if (cp[i] < next && ++delta == 0)
                return 0;
            if (cp[i] != next)
                continue;
            uint32_t q = delta;
            for (uint32_t k = 36;; k += 36) {
                uint32_t t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
                if (q < t)
                    break;
                if (o >= cap)
                    return 0;
                out[o++] = digit(t + (q - t) % (36 - t));
                q = (q - t) / (36 - t);
            }
            if (o >= cap)
                return 0;
            out[o++] = digit(q);
            bias = adapt(delta, (uint32_t)h + 1, h == basic);
            delta = 0;
            h++;
        }
        delta++;
        next++;
    }
    return o;
}

int xs_tls_name_to_alabel(const char *reference, char *out, size_t cap)
{
    size_t len = reference ? strlen(reference) : 0;
    if (len > 0 && reference[len - 1] == '.')
        len--;
    if (len == 0 || len > 4 * XS_TLS_NAME_MAX || cap == 0)
        return XS_EINVAL;
    const unsigned char *s = (const unsigned char *)reference;
    size_t o = 0, i = 0;
    while (i <= len) {
        size_t end = i;
        while (end < len && s[end] != '.')
            end++;
        if (end == i)
            return XS_EINVAL;
        uint32_t cps[LABEL_MAX * 4];
        size_t n = 0;
        int ascii = 1;
        for (size_t j = i; j < end;) {
            if (n == sizeof cps / sizeof cps[0])
                return XS_EINVAL;
            size_t step = xs_utf8_decode(s + j, end - j, &cps[n]);
            if (step == 0)
                return XS_EINVAL;
            if (cps[n] >= 0x80)
                ascii = 0;
            n++;
            j += step;
        }
        if (o > 0) {
            if (o + 1 >= cap)
                return XS_EINVAL;
            out[o++] = '.';
        }
        size_t w;
        if (ascii) {
            if (n > LABEL_MAX || o + n >= cap)
                return XS_EINVAL;
            for (size_t j = 0; j < n; j++)
                out[o + j] = lower((char)cps[j]);
            w = n;
        } else {
            if (o + 4 >= cap)
                return XS_EINVAL;
            memcpy(out + o, "xn--", 4);
            w = punycode(cps, n, out + o + 4, cap - o - 4 - 1);
            if (w == 0 || w + 4 > LABEL_MAX)
                return XS_EINVAL;
            w += 4;
        }
        o += w;
        i = end + 1;
    }
    if (o > XS_TLS_NAME_MAX)
        return XS_EINVAL;
    out[o] = '\0';
    return 0;
}

static int same_ci(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lower(b[i]))
            return 0;
    return 1;
}

/* Strips a trailing dot from the presented name; 0 when it is empty, too
 * long, or holds a NUL or a non-ASCII byte, which never match. */
static int presented_ok(const char *presented, size_t *len)
{
    if (*len > 0 && presented[*len - 1] == '.')
        (*len)--;
    if (*len == 0 || *len > XS_TLS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < *len; i++) {
        unsigned char c = (unsigned char)presented[i];
        if (c == 0 || c >= 0x80)
            return 0;
    }
    return 1;
}

int xs_tls_name_under(const char *presented, size_t len, const char *parent)
{
    size_t plen = strlen(parent);
    if (plen > 0 && parent[plen - 1] == '.')
        plen--;
    if (!presented_ok(presented, &len) || plen == 0 || memchr(presented, '*', len))
        return 0;
    const char *dot = memchr(presented, '.', len);
    if (!dot || dot == presented)
        return 0;
    size_t rest = len - (size_t)(dot - presented) - 1;
    return rest == plen && same_ci(dot + 1, parent, plen);
}

int xs_tls_name_match(const char *presented, size_t len, const char *reference)
{
    size_t rlen = strlen(reference);
    if (rlen > 0 && reference[rlen - 1] == '.')
        rlen--;
    if (!presented_ok(presented, &len) || rlen == 0 || memchr(presented + 1, '*', len - 1))
        return 0;
    if (presented[0] != '*')
        return len == rlen && same_ci(presented, reference, len);
    /* "*." then at least two labels: "*.test" would cover a whole TLD. */
    if (len < 3 || presented[1] != '.')
        return 0;
    const char *rest = presented + 1;
    size_t rest_len = len - 1;
    if (!memchr(rest + 1, '.', rest_len - 1))
        return 0;
    const char *dot = memchr(reference, '.', rlen);
    if (!dot || dot == reference)
        return 0;
    size_t tail = rlen - (size_t)(dot - reference);
    return tail == rest_len && same_ci(dot, rest, rest_len);
}
