/* Which addresses a stranger's DNS may aim us at: the special-purpose
 * ranges (IANA's IPv4 and IPv6 registries) that open federation refuses,
 * and telling an IP literal from a name. Pure functions, no I/O. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "net/dns.h"

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
