/* The C primitives the Lua library hands to policies as xsgw.*: what
 * policies commonly need done to a message body, in linear time, so that
 * they need not write backtracking patterns for it. */
#ifndef XS_POLICY_HELPERS_H
#define XS_POLICY_HELPERS_H

#include <lua.h>

/* Sets trim, lower, upper, starts_with, ends_with and contains into the
 * table on top of the stack (which stays there). */
void xs_helpers_open(lua_State *L);

#endif
