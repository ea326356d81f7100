#include "sip/sip_acl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* One network. Addresses are kept in network byte order, IPv4 in the first
 * four bytes; `bits` counts the prefix. */
struct net {
    int family;
    uint8_t addr[16];
    unsigned bits;
};

/* Deployments list a handful of peers; the bound only keeps a runaway policy
 * from making every request walk a long list. */
#define ACL_MAX 1024

struct xs_sip_acl {
    struct net *nets;
    size_t n, cap;
};

struct xs_sip_acl *xs_sip_acl_new(void)
{
    return calloc(1, sizeof(struct xs_sip_acl));
}

void xs_sip_acl_free(struct xs_sip_acl *acl)
{
    if (!acl)
        return;
    free(acl->nets);
    free(acl);
}

size_t xs_sip_acl_count(const struct xs_sip_acl *acl)
{
    return acl ? acl->n : 0;
}

static void mask(struct net *n)
{
    size_t len = n->family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < len; i++) {
        unsigned keep = n->bits > i * 8 ? n->bits - (unsigned)i * 8 : 0;
        if (keep < 8)
            n->addr[i] &= (uint8_t)(0xff00u >> keep);
    }
}

static int push(struct xs_sip_acl *acl, const struct net *n)
{
    if (acl->n == acl->cap) {
        if (acl->cap >= ACL_MAX)
            return XS_ELIMIT;
        size_t cap = acl->cap ? acl->cap * 2 : 8;
        struct net *p = realloc(acl->nets, cap * sizeof *p);
        if (!p)
            return XS_ENOMEM;
        acl->nets = p;
        acl->cap = cap;
    }
    acl->nets[acl->n] = *n;
    mask(&acl->nets[acl->n]);
    acl->n++;
    return 0;
}

int xs_sip_acl_add(struct xs_sip_acl *acl, const char *entry)
{
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(entry, '/');
    size_t hl = slash ? (size_t)(slash - entry) : strlen(entry);
    if (hl == 0 || hl >= sizeof host)
        return XS_EINVAL;
    memcpy(host, entry, hl);
    host[hl] = '\0';
    struct net n = {0};
    if (inet_pton(AF_INET, host, n.addr) == 1)
        n.family = AF_INET;
    else if (inet_pton(AF_INET6, host, n.addr) == 1)
        n.family = AF_INET6;
    else
        return XS_EINVAL;
    unsigned max = n.family == AF_INET ? 32 : 128;
    n.bits = max;
    if (slash) {
        const char *p = slash + 1;
        unsigned v = 0;
        if (!*p || strlen(p) > 3 || (p[0] == '0' && p[1]))
            return XS_EINVAL;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return XS_EINVAL;
            v = v * 10 + (unsigned)(*p - '0');
        }
        if (v > max)
            return XS_EINVAL;
        n.bits = v;
    }
    return push(acl, &n);
}

/* The address of sa as a network of one, with IPv4-mapped IPv6 turned into
 * IPv4. Returns 0 or XS_EINVAL. */
static int host_of(const struct sockaddr *sa, struct net *n)
{
    memset(n, 0, sizeof *n);
    if (sa->sa_family == AF_INET) {
        n->family = AF_INET;
        n->bits = 32;
        memcpy(n->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family != AF_INET6)
        return XS_EINVAL;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) {
        n->family = AF_INET;
        n->bits = 32;
        memcpy(n->addr, a->s6_addr + 12, 4);
        return 0;
    }
    n->family = AF_INET6;
    n->bits = 128;
    memcpy(n->addr, a->s6_addr, 16);
    return 0;
}

int xs_sip_acl_add_addr(struct xs_sip_acl *acl, const struct sockaddr *sa)
{
    struct net n;
    int rc = host_of(sa, &n);
    return rc ? rc : push(acl, &n);
}

static int in_net(const struct net *net, const struct net *h)
{
    if (net->family != h->family)
        return 0;
    size_t whole = net->bits / 8;
    if (memcmp(net->addr, h->addr, whole) != 0)
        return 0;
    unsigned rest = net->bits % 8;
    if (rest == 0)
        return 1;
    uint8_t m = (uint8_t)(0xff00u >> rest);
    return (h->addr[whole] & m) == net->addr[whole];
}

int xs_sip_acl_allows(const struct xs_sip_acl *acl, const struct sockaddr *sa)
{
    struct net h;
    if (!acl || !sa || host_of(sa, &h) != 0)
        return 0;
    for (size_t i = 0; i < acl->n; i++)
        if (in_net(&acl->nets[i], &h))
            return 1;
    return 0;
}
