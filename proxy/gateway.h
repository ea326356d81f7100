/* The gateway object: one loop, the current policy generation, the router
 * and both sides. It starts them, swaps policy generations on reload, and
 * drains and stops them. Signals are main.c's business; this only offers
 * what they trigger. */
#ifndef XS_GATEWAY_H
#define XS_GATEWAY_H

#include <uv.h>

struct xs_gateway;
struct xs_config;
struct xs_tls_ctx;

/* The TLS context the gateway builds from a policy's gateway.tls (every
 * file read and checked, ev=tls.config logged): shared with `xsgw validate`
 * so that it presents and trusts exactly what the gateway would. */
int xs_gateway_make_tls(const struct xs_config *cfg, struct xs_tls_ctx **out);

/* The state directory when none is given: Debian's place for it. */
#define XS_DEFAULT_STATE_DIR "/var/lib/xsgw"

/* Loads the policy, prepares TLS, opens the subscription store (the
 * policy's presence.store, else presence.db in state_dir, which is created
 * when missing) and starts both sides. On failure returns a negative XS_E*
 * after logging why; nothing is left running. Strings are copied. */
int xs_gateway_start(uv_loop_t *loop, const char *policy_path, const char *lua_dir,
                     const char *state_dir, struct xs_gateway **out);

/* Builds a new policy generation from the same file. When it is good it
 * replaces the current one and every stream is re-checked; when it is not,
 * the running generation stays and the reason is logged. Returns 0 or the
 * load error. */
int xs_gateway_reload(struct xs_gateway *gw);

/* What an operator asks of a running gateway (the admin listener's status
 * and metrics, the watcher's reloads): which policy runs, since when, and
 * how the last reload went. Lent; valid until the gateway changes it. */
struct xs_gateway_info {
    const char *policy_path;
    char policy_sha256[65]; /* hex, of the file the running generation came from */
    int generation;
    double started_at;        /* Unix time, seconds */
    double last_reload_at;    /* the last reload attempt, good or not; 0: none yet */
    double last_good_at;      /* the running generation's load (start or reload) */
    int last_reload_ok;       /* 1, 0, or -1 before any reload */
    char last_reload_error[512];
    unsigned long long reloads_ok, reloads_failed;
    int draining; /* 1 once a stop began: not ready for new work */
};
const struct xs_gateway_info *xs_gateway_info(const struct xs_gateway *gw);

/* The running policy generation, for the admin listener's status (lent
 * until the next reload). */
const struct xs_policy *xs_gateway_policy(const struct xs_gateway *gw);

/* The sides, for the admin listener's status (borrowed). */
struct xs_xmpp *xs_gateway_xmpp(const struct xs_gateway *gw);
struct xs_sip *xs_gateway_sip(const struct xs_gateway *gw);

/* Drains, then closes both sides and frees the gateway; `done` runs once
 * everything is released. The drain: the listeners close, new messages and
 * requests are answered at once (service-unavailable, SIP 503 with
 * Retry-After), and what is in flight may finish until drain.deadline;
 * then every stream ends with system-shutdown and whatever is left is
 * answered with an error, never dropped. Subscriptions stay in the store. */
void xs_gateway_stop(struct xs_gateway *gw, void (*done)(void *ud), void *ud);

/* A second stop signal during the drain: ends it now, as its deadline would
 * (whatever is still in flight is answered with an error). Does nothing
 * before xs_gateway_stop or once the drain has ended; the gateway may be
 * freed once the loop runs again, so call it at most once, and never after
 * `done` ran. */
void xs_gateway_stop_now(struct xs_gateway *gw);

#endif
