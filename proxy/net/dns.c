/* SRV lookups: res_nquery in libuv's thread pool, each call with its own
 * resolver state so lookups never share anything across threads, and our
 * own wire-format parser, so every byte a DNS server sends passes through
 * code the fuzzer covers. */
#include "net/dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <resolv.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/err.h"

#define DNS_MAX_TARGETS 32
#define DNS_ANSWER_MAX 8192
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

int xs_dns_parse_srv(const unsigned char *msg, size_t len, struct xs_dns_target *targets,
                     size_t max)
{
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
        /* Beyond the bound, later records are dropped: a domain that
         * publishes more than `max` servers still gets the first ones tried. */
        if (n < max)
            targets[n++] = t;
    }
    sort_targets(targets, n);
    return (int)n;
}

struct xs_dns_req {
    uv_work_t work;
    xs_dns_srv_cb cb;
    void *ud;
    int cancelled;
    int literal; /* the domain is an IP address: no lookup at all */
    uint16_t default_port;
    int status;
    size_t n;
    uint64_t seed;
    char domain[256];
    char qname[300];
    struct xs_dns_target targets[DNS_MAX_TARGETS];
    unsigned char answer[DNS_ANSWER_MAX];
};

static void dns_work(uv_work_t *w)
{
    struct xs_dns_req *r = w->data;
    if (getrandom(&r->seed, sizeof r->seed, GRND_NONBLOCK) != sizeof r->seed)
        r->seed = (uint64_t)(uintptr_t)r ^ 0x9e3779b97f4a7c15ull;
    if (r->literal) {
        r->status = 0;
        r->n = 0;
        return;
    }
    struct __res_state st;
    memset(&st, 0, sizeof st);
    if (res_ninit(&st) != 0) {
        r->status = XS_EDNS;
        return;
    }
    int len = res_nquery(&st, r->qname, C_IN, DNS_TYPE_SRV, r->answer, sizeof r->answer);
    if (len < 0) {
        /* NXDOMAIN, or the name exists without SRV records: both mean
         * "use the fallback". Anything else (SERVFAIL, timeout) is a
         * failure worth reporting rather than guessing around. */
        int herr = st.res_h_errno;
        r->status = (herr == HOST_NOT_FOUND || herr == NO_DATA) ? 0 : XS_EDNS;
        r->n = 0;
    } else {
        size_t got = (size_t)len < sizeof r->answer ? (size_t)len : sizeof r->answer;
        int n = xs_dns_parse_srv(r->answer, got, r->targets, DNS_MAX_TARGETS);
        if (n == XS_ENOTFOUND) {
            r->status = 0;
            r->n = 0;
        } else if (n < 0) {
            r->status = XS_EDNS;
        } else {
            r->status = 0;
            r->n = (size_t)n;
        }
    }
    res_nclose(&st);
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

static void dns_after(uv_work_t *w, int status)
{
    struct xs_dns_req *r = w->data;
    if (r->cancelled || status == UV_ECANCELED) {
        free(r);
        return;
    }
    int rc = r->status;
    size_t n = r->n;
    if (rc == 0 && n == 1 && strcmp(r->targets[0].host, ".") == 0) {
        rc = XS_ENOTFOUND; /* RFC 2782: the service is decidedly not available */
        n = 0;
    } else if (rc == 0 && n > 0) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (strcmp(r->targets[i].host, ".") != 0)
                r->targets[k++] = r->targets[i];
        n = k;
        xs_dns_weighted_order(r->targets, n, &r->seed);
        if (n == 0)
            rc = XS_ENOTFOUND;
    } else if (rc == 0) {
        /* RFC 6120 section 3.2.2: no SRV records, connect to the domain. */
        memset(&r->targets[0], 0, sizeof r->targets[0]);
        memcpy(r->targets[0].host, r->domain, sizeof r->targets[0].host);
        r->targets[0].port = r->default_port;
        n = 1;
    }
    if (rc != 0)
        n = 0;
    r->cb(r->ud, rc, rc == 0 ? r->targets : NULL, n);
    free(r);
}

static int valid_label_chars(const char *s, const char *extra)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || strchr(extra, c)))
            return 0;
    }
    return 1;
}

int xs_net_is_ip_literal(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int v4_special(uint32_t a)
{
    static const struct {
        uint32_t net;
        int bits;
    } ranges[] = {
        {0x00000000, 8},  /* "this network" */
        {0x0a000000, 8},  /* RFC 1918 */
        {0x64400000, 10}, /* shared address space (CGN) */
        {0x7f000000, 8},  /* loopback */
        {0xa9fe0000, 16}, /* link-local */
        {0xac100000, 12}, /* RFC 1918 */
        {0xc0000000, 24}, /* IETF protocol assignments */
        {0xc0000200, 24}, /* documentation */
        {0xc0586300, 24}, /* 6to4 relay anycast */
        {0xc0a80000, 16}, /* RFC 1918 */
        {0xc6120000, 15}, /* benchmarking */
        {0xc6336400, 24}, /* documentation */
        {0xcb007100, 24}, /* documentation */
        {0xe0000000, 4},  /* multicast */
        {0xf0000000, 4},  /* reserved, broadcast */
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if ((a >> (32 - ranges[i].bits)) == (ranges[i].net >> (32 - ranges[i].bits)))
            return 1;
    return 0;
}

static uint32_t v4_at(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int v6_special(const unsigned char *b)
{
    static const unsigned char zero[12] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (!memcmp(b, mapped, 12) || !memcmp(b, nat64, 12))
        return v4_special(v4_at(b + 12));
    if (!memcmp(b, zero, 12))
        return 1; /* unspecified, loopback, IPv4-compatible (deprecated) */
    if (b[0] == 0x20 && b[1] == 0x02)
        return v4_special(v4_at(b + 2)); /* 6to4 */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] < 0x02)
        return 1; /* 2001::/23 IETF protocol assignments (Teredo among them) */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return 1; /* documentation */
    if (b[0] == 0x3f && b[1] == 0xff && b[2] < 0x10)
        return 1; /* documentation (3fff::/20) */
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b)
        return 1; /* local-use NAT64 */
    if (b[0] == 0x01 && b[1] == 0x00 && !memcmp(b + 2, zero, 6))
        return 1; /* discard-only */
    if ((b[0] & 0xfe) == 0xfc)
        return 1; /* unique-local */
    if (b[0] == 0xfe && (b[1] & 0x80))
        return 1; /* link-local fe80::/10 and site-local fec0::/10 */
    if (b[0] == 0xff)
        return 1; /* multicast */
    return 0;
}

int xs_net_addr_special(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_special(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family == AF_INET6)
        return v6_special(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return 1;
}

int xs_dns_srv(uv_loop_t *loop, const char *service, const char *domain, uint16_t default_port,
               xs_dns_srv_cb cb, void *ud, struct xs_dns_req **out)
{
    if (out)
        *out = NULL;
    if (!service || !domain || !cb || !*service || !*domain)
        return XS_EINVAL;
    size_t dlen = strlen(domain);
    if (dlen > 253 || strlen(service) > 63 || !valid_label_chars(service, ""))
        return XS_EINVAL;
    int literal = xs_net_is_ip_literal(domain);
    if (!literal && (!valid_label_chars(domain, "._") || domain[0] == '.' || strstr(domain, "..")))
        return XS_EINVAL;
    struct xs_dns_req *r = calloc(1, sizeof *r);
    if (!r)
        return XS_ENOMEM;
    r->cb = cb;
    r->ud = ud;
    r->literal = literal;
    r->default_port = default_port;
    memcpy(r->domain, domain, dlen + 1);
    if (!literal && dlen > 1 && r->domain[dlen - 1] == '.')
        r->domain[dlen - 1] = '\0';
    /* The trailing dot keeps the resolver from appending search domains. */
    snprintf(r->qname, sizeof r->qname, "_%s._tcp.%s.", service, r->domain);
    r->work.data = r;
    int rc = uv_queue_work(loop, &r->work, dns_work, dns_after);
    if (rc != 0) {
        free(r);
        return XS_EIO;
    }
    if (out)
        *out = r;
    return 0;
}

void xs_dns_cancel(struct xs_dns_req *req)
{
    if (!req)
        return;
    req->cancelled = 1;
    /* If the work has not started, this spares a thread; either way
     * dns_after runs once and frees. */
    uv_cancel((uv_req_t *)&req->work);
}
