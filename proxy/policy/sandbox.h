/* One Lua state with budgets: a memory cap enforced by its allocator, and an
 * instruction budget per call enforced by a count hook. Every call from C
 * into Lua goes through xs_lua_call(), the one door that resets the budget,
 * adds a traceback and turns any failure into one status and one line. */
#ifndef XS_POLICY_SANDBOX_H
#define XS_POLICY_SANDBOX_H

#include <stddef.h>

#include <lua.h>

struct xs_lua;

/* A new state with the safe libraries only (base without dofile, loadfile,
 * load, collectgarbage, print; string without dump; table, math, utf8), and
 * a `require` that loads "xsgw.<name>" from <lua_dir>/xsgw/<name>.lua as a
 * text chunk. NULL on OOM. `lua_dir` is copied. */
struct xs_lua *xs_lua_new(const char *lua_dir, size_t mem_limit, unsigned long instr_limit);
void xs_lua_free(struct xs_lua *s);
lua_State *xs_lua_state(struct xs_lua *s);

/* lua_pcall with the budget reset, a message handler, and the error message
 * (first line, naming file:line) copied into err. Returns 0, or XS_EPOLICY
 * (error, budget exceeded) or XS_ENOMEM (memory cap reached). On failure
 * nothing is left on the stack by the call. */
int xs_lua_call(struct xs_lua *s, int nargs, int nresults, char *err, size_t errlen);

/* Loads a whole file as a text chunk named "@<path>" and leaves the function
 * on the stack. Reading happens on the calling thread: the core only loads
 * policies at start and on SIGHUP, and a policy is a few kilobytes. */
int xs_lua_load_file(struct xs_lua *s, const char *path, char *err, size_t errlen);

/* Bytes the state holds now. */
size_t xs_lua_memory(const struct xs_lua *s);

#endif
