/* The DNS wire format as far as the gateway reads it: SRV answers, parsed by
 * our own bounded code rather than the resolver library's, so every byte a
 * DNS server (or someone spoofing one) sends passes through code the fuzzer
 * covers; and the RFC 2782 weighted ordering of what was parsed. No I/O. */
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "net/dns.h"
#include "net/dns_int.h"

#define DNS_TYPE_SRV 33
#define DNS_CLASS_IN 1
/* More compression pointers than a 255-byte name has labels means a loop. */
#define DNS_MAX_JUMPS 128

/* Reads a (possibly compressed) name starting at *pos. With out == NULL it
 * only checks and skips it. Returns 0 and advances *pos past the name as it
 * appears at that place (a pointer counts two bytes), or XS_EPROTO. The
 * root name is written as ".". */
static int read_name(const unsigned char *msg, size_t len, size_t *pos, char *out, size_t cap)
{
    size_t p = *pos;
    size_t after = 0; /* where the name ends in place, once a pointer was taken */
    size_t wire = 0;  /* uncompressed wire length, at most 255 */
    size_t o = 0;
    int jumps = 0;
    for (;;) {
        if (p >= len)
            return XS_EPROTO;
        unsigned char l = msg[p];
        if ((l & 0xc0) == 0xc0) {
            if (p + 1 >= len)
                return XS_EPROTO;
            size_t target = ((size_t)(l & 0x3f) << 8) | msg[p + 1];
            /* Only backward pointers: a forward or self pointer is how loops
             * start, and real compressors never emit them. */
            if (target >= p || ++jumps > DNS_MAX_JUMPS)
                return XS_EPROTO;
            if (!after)
                after = p + 2;
            p = target;
            continue;
        }
        if (l & 0xc0)
            return XS_EPROTO; /* the 0x40 and 0x80 label types are obsolete */
        wire += (size_t)l + 1;
        if (wire > 255)
            return XS_EPROTO;
        if (l == 0) {
            p++;
            break;
        }
        if (p + 1 + l > len)
            return XS_EPROTO;
        if (out) {
            /* A host name: letters, digits, '-', '_' (SRV owner names use it). */
            if (o + (o ? 1 : 0) + l >= cap)
                return XS_EPROTO;
            if (o)
                out[o++] = '.';
            for (size_t i = 0; i < l; i++) {
                unsigned char c = msg[p + 1 + i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_'))
                    return XS_EPROTO;
                out[o++] = (char)c;
            }
        }
        p += 1 + (size_t)l;
    }
    if (out) {
        if (o == 0) {
            if (cap < 2)
                return XS_EPROTO;
            out[o++] = '.';
        }
        out[o] = '\0';
    }
    *pos = after ? after : p;
    return 0;
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Stable: priority ascending, then weight descending, arrival order last. */
static void sort_targets(struct xs_dns_target *t, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct xs_dns_target cur = t[i];
        size_t j = i;
        while (j > 0 && (t[j - 1].priority > cur.priority ||
                         (t[j - 1].priority == cur.priority && t[j - 1].weight < cur.weight))) {
            t[j] = t[j - 1];
            j--;
        }
        t[j] = cur;
    }
}

int xs__dns_parse_srv_ttl(const unsigned char *msg, size_t len, struct xs_dns_target *targets,
                          size_t max, uint32_t *ttl)
{
    uint32_t min_ttl = UINT32_MAX;
    if (!msg || len < 12)
        return XS_EPROTO;
    if (!(msg[2] & 0x80))
        return XS_EPROTO; /* a query, not a response */
    unsigned rcode = msg[3] & 0x0f;
    if (rcode == 3)
        return XS_ENOTFOUND;
    if (rcode != 0)
        return XS_EDNS;
    unsigned qd = get16(msg + 4);
    unsigned an = get16(msg + 6);
    size_t pos = 12;
    for (unsigned i = 0; i < qd; i++) {
        if (read_name(msg, len, &pos, NULL, 0) != 0 || len - pos < 4)
            return XS_EPROTO;
        pos += 4;
    }
    size_t n = 0;
    for (unsigned i = 0; i < an; i++) {
        if (read_name(msg, len, &pos, NULL, 0) != 0 || len - pos < 10)
            return XS_EPROTO;
        uint16_t type = get16(msg + pos);
        uint16_t cls = get16(msg + pos + 2);
        size_t rdlen = get16(msg + pos + 8);
        pos += 10;
        if (len - pos < rdlen)
            return XS_EPROTO;
        size_t rdata = pos;
        pos += rdlen;
        if (type != DNS_TYPE_SRV || cls != DNS_CLASS_IN)
            continue; /* a CNAME on the way, say */
        if (rdlen < 7)
            return XS_EPROTO;
        /* The target must lie inside this record's data, so parse it
         * against a message cut at the record's end. */
        size_t tpos = rdata + 6;
        struct xs_dns_target t;
        if (read_name(msg, rdata + rdlen, &tpos, t.host, sizeof t.host) != 0 ||
            tpos != rdata + rdlen)
            return XS_EPROTO;
        t.priority = get16(msg + rdata);
        t.weight = get16(msg + rdata + 2);
        t.port = get16(msg + rdata + 4);
        /* RFC 2181 section 8: a TTL with the top bit set is read as zero. */
        uint32_t rr_ttl = get32(msg + rdata - 6);
        if (rr_ttl & 0x80000000u)
            rr_ttl = 0;
        if (rr_ttl < min_ttl)
            min_ttl = rr_ttl;
        /* Beyond the bound, later records are dropped: a domain that
         * publishes more than `max` servers still gets the first ones tried. */
        if (n < max)
            targets[n++] = t;
    }
    sort_targets(targets, n);
    if (ttl)
        *ttl = n ? min_ttl : 0;
    return (int)n;
}

int xs_dns_parse_srv(const unsigned char *msg, size_t len, struct xs_dns_target *targets,
                     size_t max)
{
    return xs__dns_parse_srv_ttl(msg, len, targets, max, NULL);
}

static uint64_t next_random(uint64_t *s)
{
    /* xorshift64*: plenty for spreading load, and no shared state. */
    uint64_t x = *s ? *s : 0x2545f4914f6cdd1dull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* RFC 2782: within one priority, pick each next target with probability
 * proportional to its weight, zero-weight targets having a small chance. */
void xs_dns_weighted_order(struct xs_dns_target *t, size_t n, uint64_t *seed)
{
    size_t start = 0;
    while (start < n) {
        size_t end = start;
        while (end < n && t[end].priority == t[start].priority)
            end++;
        /* "Arrange in any order": a shuffle, so equal weights (all zero,
         * say) share the load instead of the first record taking it all. */
        for (size_t i = end - 1; i > start; i--) {
            size_t j = start + (size_t)(next_random(seed) % (i - start + 1));
            struct xs_dns_target tmp = t[i];
            t[i] = t[j];
            t[j] = tmp;
        }
        /* Then zero weights first, as the RFC's selection procedure asks. */
        for (size_t i = start; i < end; i++) {
            for (size_t j = i; j > start && t[j - 1].weight > 0 && t[j].weight == 0; j--) {
                struct xs_dns_target tmp = t[j];
                t[j] = t[j - 1];
                t[j - 1] = tmp;
            }
        }
        for (size_t i = start; i + 1 < end; i++) {
            uint32_t sum = 0;
            for (size_t j = i; j < end; j++)
                sum += t[j].weight;
            uint32_t pick = (uint32_t)(next_random(seed) % ((uint64_t)sum + 1));
            uint32_t run = 0;
            size_t chosen = i;
            for (size_t j = i; j < end; j++) {
                run += t[j].weight;
                if (run >= pick) {
                    chosen = j;
                    break;
                }
            }
            struct xs_dns_target tmp = t[chosen];
            memmove(&t[i + 1], &t[i], (chosen - i) * sizeof *t);
            t[i] = tmp;
        }
        start = end;
    }
}
