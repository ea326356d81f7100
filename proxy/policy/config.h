/* The C copy of a policy's declarative part: the configuration table that
 * lua/xsgw/policy.lua's finish() returns (validated there, normalized:
 * lower-case names, defaults filled), copied into a struct xs_config.
 * Internal to proxy/policy. */
#ifndef XS_POLICY_CONFIG_H
#define XS_POLICY_CONFIG_H

#include <lua.h>

#include "policy/policy.h"

/* Copies the table at index t of L into *c (zeroed by the caller). 0, or
 * XS_ENOMEM with what was copied left in *c for xs_config_free. Runs inside
 * a protected call: a Lua memory error while reading unwinds from here. */
int xs_config_from_lua(lua_State *L, int t, struct xs_config *c);

/* Frees every string and array the config owns (not c itself). */
void xs_config_free(struct xs_config *c);

#endif
