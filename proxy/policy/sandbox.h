/* One Lua state with budgets: a memory cap enforced by its allocator, an
 * instruction budget and a wall-clock deadline per call enforced by a count
 * hook (and by the library functions that loop in C, through xs_lua_tick),
 * and a watchdog thread that reports a call stuck where no hook reaches.
 * Every call from C into Lua goes through xs_lua_call(), the one door that
 * resets the budgets, adds a traceback and turns any failure into one status
 * and one line. */
#ifndef XS_POLICY_SANDBOX_H
#define XS_POLICY_SANDBOX_H

#include <stddef.h>

#include <lua.h>

struct xs_lua;

struct xs_lua_limits {
    size_t memory;              /* bytes the whole state may hold */
    size_t call_memory;         /* bytes one call may add to what the state held at its start */
    unsigned long instructions; /* VM instructions per call */
    double call_seconds;        /* wall-clock time per call */
    double watchdog_warn;       /* seconds inside one call before the watchdog logs */
    double watchdog_abort;      /* seconds inside one call before it aborts; 0: never */
};

/* A new state with the safe libraries only (base without dofile, loadfile,
 * load, collectgarbage, print; string without dump, with metered pattern
 * functions and a bounded rep; table with bounded move, insert and remove;
 * math, utf8), and a `require` that loads "xsgw.<name>" from
 * <lua_dir>/xsgw/<name>.lua as a text chunk. `name` (the policy file) is what
 * the watchdog's log lines name. NULL on OOM or when the watchdog thread
 * cannot start. Strings are copied; `lim` is borrowed. */
struct xs_lua *xs_lua_new(const char *lua_dir, const struct xs_lua_limits *lim, const char *name);
void xs_lua_free(struct xs_lua *s);

/* For C functions that may loop long on one call (the pattern matcher):
 * raises a Lua error when the running call is out of time. */
void xs_lua_tick(lua_State *L);
lua_State *xs_lua_state(struct xs_lua *s);

/* lua_pcall with the budget reset, a message handler, and the error message
 * (first line, naming file:line) copied into err. Returns 0, or XS_EPOLICY
 * (error, budget exceeded) or XS_ENOMEM (memory cap reached). On failure
 * nothing is left on the stack by the call. */
int xs_lua_call(struct xs_lua *s, int nargs, int nresults, char *err, size_t errlen);
/* 1 when the last xs_lua_call ran out of its instruction or time budget
 * (until the next call begins). */
int xs_lua_spent(const struct xs_lua *s);

/* Loads a whole file as a text chunk named "@<path>" and leaves the function
 * on the stack. Reading happens on the calling thread: the core only loads
 * policies at start and on SIGHUP, and a policy is a few kilobytes. */
int xs_lua_load_file(struct xs_lua *s, const char *path, char *err, size_t errlen);

/* Bytes the state holds now. */
size_t xs_lua_memory(const struct xs_lua *s);

#endif
