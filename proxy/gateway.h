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

/* Closes both sides (pending work is answered, not dropped) and frees the
 * gateway; `done` runs once everything is released. */
void xs_gateway_stop(struct xs_gateway *gw, void (*done)(void *ud), void *ud);

#endif
