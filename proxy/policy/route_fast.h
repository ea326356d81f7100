/* What the core may decide for the policy without calling into Lua, and
 * the per-generation index of its domains that both the fast path and the
 * streams' partner lookups use. Internal to proxy/policy. */
#ifndef XS_POLICY_ROUTE_FAST_H
#define XS_POLICY_ROUTE_FAST_H

#include "event.h"
#include "policy/policy.h"

/* A generation's own domains and partner domains, hashed: the answers
 * (ours? which partner entry?) depend on the configuration alone, so they
 * are computed once per generation; a reload builds a new index with the
 * new policy. Names are borrowed from the config it was built from. */
struct xs_domain_index;

/* NULL on OOM. */
struct xs_domain_index *xs_domain_index_new(const struct xs_config *cfg);
void xs_domain_index_free(struct xs_domain_index *ix);

/* domain[0..n), compared without regard to ASCII case. */
int xs_domain_index_is_local(const struct xs_domain_index *ix, const char *domain, size_t n);
/* The partner entry that applies: the domain's own, else "*", else NULL. */
const struct xs_partner *xs_domain_index_partner(const struct xs_domain_index *ix,
                                                 const char *domain, size_t n);

/* Addresses mapped by xs_route_premap, in buffers of this module that the
 * next call reuses (borrowed; NUL-terminated). */
struct xs_route_mapped {
    const char *from;
    size_t from_len;
    const char *to;
    size_t to_len;
};

/* The part of route() before the hooks, for a policy that keeps the
 * default mapping: returns 1 when route() would get past it (addresses
 * in the domains it wants, mapped, the body UTF-8 text of at most max_body
 * bytes), with the mapped addresses in *out; ev is not changed. 0 when
 * route() would refuse the message there (or on any doubt): the caller asks
 * route() itself. */
int xs_route_premap(const struct xs_domain_index *ix, size_t max_body, const struct xs_event *ev,
                    struct xs_route_mapped *out);

/* The decision lua/xsgw/policy.lua's route() makes for a policy without
 * hooks (cfg.default_route), for the messages it accepts: returns 1 with
 * ev->from and ev->to mapped into the other side's form, exactly as route()
 * would; 0 when route() would refuse it or raise an error, or on OOM, with
 * ev unchanged: the caller then asks route() itself, which decides and
 * words the refusal. `ix` and `max_body` are the generation's. */
int xs_route_fast(const struct xs_domain_index *ix, size_t max_body, struct xs_event *ev);

#endif
