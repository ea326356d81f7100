/* Lua's pattern functions (string.find, match, gmatch, gsub), with the
 * semantics of the Lua 5.4 manual (§6.4.1), written so that the matcher
 * itself can be stopped. The stock ones run to completion in C, where no
 * hook reaches: the common trim idiom s:match("^%s*(.-)%s*$") is quadratic
 * and takes seconds on a 32 KB body. These count their steps and ask the
 * sandbox every few thousand steps whether the call's time is up. */
#ifndef XS_POLICY_PATTERN_H
#define XS_POLICY_PATTERN_H

#include <lua.h>

/* Called every XS_PATTERN_TICK steps; raises a Lua error when the running
 * call is out of time. */
typedef void (*xs_pattern_tick_fn)(lua_State *L);

#define XS_PATTERN_TICK 4096

/* Replaces find, match, gmatch and gsub in the string table on top of the
 * stack (which stays there). `tick` is kept as an upvalue. */
void xs_pattern_open(lua_State *L, xs_pattern_tick_fn tick);

#endif
