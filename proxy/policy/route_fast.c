/* route() of lua/xsgw/policy.lua for a policy without hooks, in C, for the
 * messages it accepts. Each step names the Lua it stands for. Everything
 * else (every refusal, every error) goes to route() itself, so the policy
 * library keeps deciding and wording those; tests/unit/test_policy_fast.c
 * runs both on the same messages and compares. */
#include "policy/route_fast.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/err.h"
#include "policy/addr_map.h"

#define MAX_FIELD 4096 /* policy.lua MAX_FIELD */

enum { IX_LOCAL = 1 };

struct ix_entry {
    const char *name; /* NULL: empty slot */
    size_t len;
    unsigned flags;
    const struct xs_partner *partner;
};

struct xs_domain_index {
    struct ix_entry *slots;
    size_t mask;
    const struct xs_partner *wild;
};

static unsigned char fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* FNV-1a over the case-folded bytes. The names are the operator's, not a
 * peer's, so a keyed hash buys nothing here. */
static size_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ fold((unsigned char)s[i])) * 1099511628211ull;
    return (size_t)h;
}

static int same_name(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++)
        if (fold((unsigned char)a[i]) != fold((unsigned char)b[i]))
            return 0;
    return 1;
}

static struct ix_entry *slot_for(const struct xs_domain_index *ix, const char *s, size_t n)
{
    for (size_t i = hash(s, n) & ix->mask;; i = (i + 1) & ix->mask) {
        struct ix_entry *e = &ix->slots[i];
        if (!e->name || same_name(e->name, e->len, s, n))
            return e;
    }
}

struct xs_domain_index *xs_domain_index_new(const struct xs_config *cfg)
{
    struct xs_domain_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return NULL;
    size_t names = cfg->n_domains;
    for (size_t i = 0; i < cfg->n_partners; i++)
        names += 1 + cfg->partners[i].n_domains;
    size_t cap = 8;
    while (cap < 2 * names)
        cap *= 2;
    ix->slots = calloc(cap, sizeof *ix->slots);
    if (!ix->slots) {
        free(ix);
        return NULL;
    }
    ix->mask = cap - 1;
    for (size_t i = 0; i < cfg->n_domains; i++) {
        struct ix_entry *e = slot_for(ix, cfg->domains[i], strlen(cfg->domains[i]));
        e->name = cfg->domains[i];
        e->len = strlen(e->name);
        e->flags |= IX_LOCAL;
    }
    /* xs_policy_partner's order: the first entry of a name (a partner's own
     * or one of its domains; the policy lets no name be declared twice),
     * and the last "*". */
    for (size_t i = 0; i < cfg->n_partners; i++) {
        const struct xs_partner *pt = &cfg->partners[i];
        if (!strcmp(pt->domain, "*")) {
            ix->wild = pt;
            continue;
        }
        for (size_t j = 0; j <= pt->n_domains; j++) {
            const char *name = j ? pt->domains[j - 1] : pt->domain;
            struct ix_entry *e = slot_for(ix, name, strlen(name));
            if (!e->name) {
                e->name = name;
                e->len = strlen(e->name);
            }
            if (!e->partner)
                e->partner = pt;
        }
    }
    return ix;
}

void xs_domain_index_free(struct xs_domain_index *ix)
{
    if (!ix)
        return;
    free(ix->slots);
    free(ix);
}

int xs_domain_index_is_local(const struct xs_domain_index *ix, const char *domain, size_t n)
{
    return (slot_for(ix, domain, n)->flags & IX_LOCAL) != 0;
}

const struct xs_partner *xs_domain_index_partner(const struct xs_domain_index *ix,
                                                 const char *domain, size_t n)
{
    const struct ix_entry *e = slot_for(ix, domain, n);
    return e->partner ? e->partner : ix->wild;
}

/* federated(domain): not ours, and a partner. */
static int federated(const struct xs_domain_index *ix, const char *d, size_t n)
{
    return !xs_domain_index_is_local(ix, d, n) && xs_domain_index_partner(ix, d, n) != NULL;
}

/* checked_string(ev, k, max) for a field that is there or not. */
static int checked(const char *s, size_t max)
{
    if (!s)
        return 1;
    size_t n = strlen(s);
    return n <= max && xs_addr_utf8_ok(s, n);
}

/* The buffers of one decision: 32 KiB, too much for the stack of a call
 * made deep in a read callback. One decision runs at a time (the loop is
 * single-threaded, and nothing in a decision re-enters it). */
static struct {
    char from[XS_ADDR_MAP_MAX], to[XS_ADDR_MAP_MAX];
    char d1[XS_ADDR_MAP_MAX], d2[XS_ADDR_MAP_MAX];
} buf;

int xs_route_premap(const struct xs_domain_index *ix, size_t max_body, const struct xs_event *ev,
                    struct xs_route_mapped *out)
{
    /* Presence and subscriptions always go to Lua: their state is mapped
     * there (lua/xsgw/presence.lua) and presence can be switched off. */
    if (ev->kind != XS_EVENT_MESSAGE || !ev->from || !ev->to)
        return 0;
    size_t fn, tn, d1n, d2n;
    size_t from_n = strlen(ev->from), to_n = strlen(ev->to);
    /* Each mapping also gives the domain route() checks first; whatever
     * route() would refuse fails here too, whichever check finds it. */
    if (ev->origin == XS_SIDE_XMPP) {
        /* fd, td = jid_domain(ev.from), jid_domain(ev.to); td ours, fd a
         * partner; from, to = to_sip(ev.from), to_sip(ev.to) */
        if (xs_addr_map_to_sip(ev->from, from_n, buf.from, &fn, buf.d1, &d1n) ||
            xs_addr_map_to_sip(ev->to, to_n, buf.to, &tn, buf.d2, &d2n) ||
            !xs_domain_index_is_local(ix, buf.d2, d2n) || !federated(ix, buf.d1, d1n))
            return 0;
    } else if (ev->origin == XS_SIDE_SIP) {
        /* fd, td = sip_domain(ev.from), sip_domain(ev.to); fd ours, td a
         * partner; from, to = to_xmpp(ev.from), to_xmpp(ev.to) */
        if (xs_addr_map_to_xmpp(ev->from, from_n, buf.from, &fn, buf.d1, &d1n) ||
            xs_addr_map_to_xmpp(ev->to, to_n, buf.to, &tn, buf.d2, &d2n) ||
            !xs_domain_index_is_local(ix, buf.d1, d1n) || !federated(ix, buf.d2, d2n))
            return 0;
    } else {
        return 0;
    }
    /* The body as it arrived: UTF-8 text of at most max_body bytes. */
    if (!ev->body || !checked(ev->body, max_body))
        return 0;
    *out = (struct xs_route_mapped){buf.from, fn, buf.to, tn};
    return 1;
}

int xs_route_fast(const struct xs_domain_index *ix, size_t max_body, struct xs_event *ev)
{
    struct xs_route_mapped m;
    size_t d1n, d2n;
    if (!xs_route_premap(ix, max_body, ev, &m))
        return 0;
    /* recheck(ev, origin): the mapped recipient or sender still ours, the
     * other a partner */
    if (ev->origin == XS_SIDE_XMPP) {
        if (xs_addr_map_sip_domain(m.from, m.from_len, buf.d1, &d1n) ||
            xs_addr_map_sip_domain(m.to, m.to_len, buf.d2, &d2n) ||
            !xs_domain_index_is_local(ix, buf.d2, d2n) || !federated(ix, buf.d1, d1n))
            return 0;
    } else {
        if (xs_addr_map_jid_domain(m.from, m.from_len, buf.d1, &d1n) ||
            xs_addr_map_jid_domain(m.to, m.to_len, buf.d2, &d2n) ||
            !xs_domain_index_is_local(ix, buf.d1, d1n) || !federated(ix, buf.d2, d2n))
            return 0;
    }
    /* checked_string for every field but the body, checked above */
    if (!checked(m.from, MAX_FIELD) || !checked(m.to, MAX_FIELD) || !checked(ev->id, MAX_FIELD) ||
        !checked(ev->thread, MAX_FIELD) || !checked(ev->subject, MAX_FIELD) ||
        !checked(ev->lang, MAX_FIELD) || !checked(ev->type, MAX_FIELD))
        return 0;
    size_t fn = m.from_len, tn = m.to_len;
    size_t from_n = strlen(ev->from), to_n = strlen(ev->to);
    /* A mapped address no longer than the original takes its place (a JID
     * from a URI always does), saving an allocation per address. */
    char *from = fn <= from_n ? ev->from : malloc(fn + 1);
    char *to = tn <= to_n ? ev->to : malloc(tn + 1);
    if (!from || !to) {
        if (from != ev->from)
            free(from);
        if (to != ev->to)
            free(to);
        return 0;
    }
    memcpy(from, m.from, fn + 1);
    memcpy(to, m.to, tn + 1);
    if (from != ev->from)
        free(ev->from);
    if (to != ev->to)
        free(ev->to);
    ev->from = from;
    ev->to = to;
    return 1;
}
