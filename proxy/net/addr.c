#include "net/addr.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "core/err.h"

int xs_net_addr_ip(const struct sockaddr *sa, char *ip, size_t n)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        if (uv_ip4_name(a, ip, n) == 0)
            return ntohs(a->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (uv_ip6_name(a, ip, n) == 0)
            return ntohs(a->sin6_port);
    }
    snprintf(ip, n, "?");
    return -1;
}

const char *xs_net_addr_format(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN];
    int port = xs_net_addr_ip(sa, ip, sizeof ip);
    if (port < 0)
        snprintf(out, n, "?");
    else if (sa->sa_family == AF_INET6)
        snprintf(out, n, "[%s]:%d", ip, port);
    else
        snprintf(out, n, "%s:%d", ip, port);
    return out;
}

int xs_net_addr_parse(const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    char h[INET6_ADDRSTRLEN + 2];
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof h) {
        memcpy(h, host + 1, len - 2);
        h[len - 2] = '\0';
        host = h;
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    memset(ss, 0, sizeof *ss);
    return XS_EINVAL;
}

size_t xs_net_addr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* The 4 address bytes of an IPv4 or IPv4-mapped IPv6 address, else NULL. */
static const unsigned char *v4_bytes(const struct sockaddr *sa)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (sa->sa_family == AF_INET)
        return (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (memcmp(b, mapped, sizeof mapped) == 0)
            return b + 12;
    }
    return NULL;
}

int xs_net_addr_same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
    const unsigned char *a4 = v4_bytes(a), *b4 = v4_bytes(b);
    if (a4 || b4)
        return a4 && b4 && memcmp(a4, b4, 4) == 0;
    if (a->sa_family != AF_INET6 || b->sa_family != AF_INET6)
        return 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}
