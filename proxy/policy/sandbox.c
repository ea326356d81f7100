#include "policy/sandbox.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "core/err.h"
#include "core/log.h"
#include "policy/lua_addr.h"
#include "policy/pattern.h"

#define HOOK_EVERY 1000
#define MAX_SOURCE (1u << 20)
#define WATCH_PERIOD_NS 100000000ull /* how often the watchdog looks */
/* Bounds for the library functions that otherwise loop in C for as long as
 * their arguments say: string.rep's result, the elements table.move, insert
 * and remove may touch in one call, and the length table.sort may order. */
#define MAX_REP (16u << 20)
#define MAX_TABLE_SPAN (1 << 22)
#define MAX_SORT (1 << 20)

struct xs_lua {
    lua_State *L;
    size_t used;
    struct xs_lua_limits lim;
    unsigned long ticks;
    uint64_t deadline; /* monotonic ns; the running call is out of time after it */
    /* Sticky until the next xs_lua_call: once a call has spent its budget,
     * every further instruction raises (the hook runs with a count of 1), so
     * a pcall in the policy cannot swallow the error and carry on. */
    const char *spent;
    int depth;       /* nesting of xs_lua_call */
    size_t call_cap; /* what `used` may reach during the running call */
    char *lua_dir;
    char *name;

    /* The watchdog: a thread that wakes every WATCH_PERIOD_NS and looks at
     * how long the loop has been inside the current call. A count hook
     * cannot interrupt a C function; this at least says so in the log. */
    uv_thread_t watchdog;
    uv_mutex_t mu;
    uv_cond_t cond;
    int stop;               /* under mu */
    uint64_t call_start;    /* under mu; 0 when no call runs */
    unsigned long call_seq; /* under mu */
    char where[256];        /* under mu: the last policy line the hook saw */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t to_ns(double seconds)
{
    return seconds <= 0 ? 0 : (uint64_t)(seconds * 1e9);
}

static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct xs_lua *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        s->used -= old;
        return NULL;
    }
    if (nsize > old) {
        size_t after = s->used + (nsize - old);
        if (after > s->lim.memory || (s->depth && after > s->call_cap))
            return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p)
        s->used = s->used - old + nsize;
    return p;
}

static struct xs_lua *sandbox_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

static void count_hook(lua_State *L, lua_Debug *ar);

static void spend(lua_State *L, struct xs_lua *s, const char *why)
{
    if (!s->spent) {
        s->spent = why;
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    }
    luaL_error(L, "%s", s->spent);
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    struct xs_lua *s = sandbox_of(L);
    if (s->spent)
        spend(L, s, s->spent);
    if (++s->ticks * HOOK_EVERY > s->lim.instructions)
        spend(L, s, "instruction budget exceeded");
    if (now_ns() > s->deadline)
        spend(L, s, "time budget exceeded");
    if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0) {
        uv_mutex_lock(&s->mu);
        snprintf(s->where, sizeof s->where, "%s:%d", ar->short_src, ar->currentline);
        uv_mutex_unlock(&s->mu);
    }
}

void xs_lua_tick(lua_State *L)
{
    struct xs_lua *s = sandbox_of(L);
    if (s->spent)
        spend(L, s, s->spent);
    if (now_ns() > s->deadline)
        spend(L, s, "time budget exceeded");
}

static void watchdog_main(void *arg)
{
    struct xs_lua *s = arg;
    uint64_t warn = to_ns(s->lim.watchdog_warn), abort_at = to_ns(s->lim.watchdog_abort);
    unsigned long warned_seq = 0;
    uint64_t warned_at = 0;
    char qname[300], qwhere[300];
    xs_log_quote(qname, sizeof qname, s->name);
    uv_mutex_lock(&s->mu);
    while (!s->stop) {
        uv_cond_timedwait(&s->cond, &s->mu, WATCH_PERIOD_NS);
        if (s->stop || !s->call_start)
            continue;
        uint64_t stuck = now_ns() - s->call_start;
        int fatal = abort_at && stuck > abort_at;
        /* Once per call, and again for every further `warn` it stays stuck. */
        if (!fatal &&
            !(warn && stuck > warn && (warned_seq != s->call_seq || stuck - warned_at > warn)))
            continue;
        warned_seq = s->call_seq;
        warned_at = stuck;
        xs_log_quote(qwhere, sizeof qwhere, s->where[0] ? s->where : NULL);
        /* The log write may block (a full pipe); the hook must not wait on
         * the lock meanwhile. */
        uv_mutex_unlock(&s->mu);
        xs_log(XS_LOG_ERROR, "policy.watchdog",
               "file=%s where=%s stuck=%.1fs%s reason=\"the event loop is stuck inside one "
               "policy call\"",
               qname, qwhere, stuck / 1e9, fatal ? " action=abort" : "");
        if (fatal) {
            fflush(stderr);
            abort();
        }
        uv_mutex_lock(&s->mu);
    }
    uv_mutex_unlock(&s->mu);
}

/* string.rep with its result bounded before any work is done: the stock one
 * loops `n` times even when the result is empty. */
static int l_rep(lua_State *L)
{
    size_t l, lsep;
    const char *str = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || (l == 0 && lsep == 0)) {
        lua_pushliteral(L, "");
        return 1;
    }
    if ((uint64_t)n > MAX_REP || (l + lsep) * (uint64_t)n > MAX_REP)
        return luaL_error(L, "string.rep: result would be over %d bytes", MAX_REP);
    size_t total = l * (size_t)n + lsep * (size_t)(n - 1);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, total);
    for (lua_Integer i = 0; i < n; i++) {
        memcpy(out, str, l);
        out += l;
        if (i + 1 < n && lsep) {
            memcpy(out, sep, lsep);
            out += lsep;
        }
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

/* table.move: refuses spans the stock one would walk element by element for
 * as long as the numbers say (table.move({}, 1, 2^40, 1)). */
static int l_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
    if (e >= f && (lua_Unsigned)e - (lua_Unsigned)f >= MAX_TABLE_SPAN)
        return luaL_error(L, "table.move: more than %d elements", MAX_TABLE_SPAN);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* table.insert and remove shift up to #t elements in C, and __len can make
 * #t anything; table.sort with the default order runs n log n comparisons
 * in C. Upvalues: the original function, the largest #t allowed. */
static int l_len_capped(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer max = lua_tointeger(L, lua_upvalueindex(2));
    if (luaL_len(L, 1) > max)
        return luaL_error(L, "table longer than %d elements", (int)max);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static void wrap_field(lua_State *L, const char *k, lua_CFunction fn)
{
    lua_getfield(L, -1, k);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, k);
}

static void cap_length(lua_State *L, const char *k, lua_Integer max)
{
    lua_getfield(L, -1, k);
    lua_pushinteger(L, max);
    lua_pushcclosure(L, l_len_capped, 2);
    lua_setfield(L, -2, k);
}

static void bound_library(lua_State *L)
{
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pushcfunction(L, l_rep);
    lua_setfield(L, -2, "rep");
    xs_pattern_open(L, xs_lua_tick);
    lua_pop(L, 1);
    /* getmetatable("") would hand out the string metatable, whose __index is
     * the string table the library's own s:lower() calls go through. */
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getglobal(L, "table");
    wrap_field(L, "move", l_move);
    cap_length(L, "insert", MAX_TABLE_SPAN - 1);
    cap_length(L, "remove", MAX_TABLE_SPAN - 1);
    cap_length(L, "sort", MAX_SORT);
    lua_pop(L, 1);
}

/* pcall and xpcall for sandboxed code: like the base library's, except that
 * an error raised because the call's budget is spent goes on up instead of
 * being caught, so the error reaches the C caller. */
/* The error names the line that called pcall, where the policy's own code
 * is stopped. */
static int reraise_spent(lua_State *L)
{
    return luaL_error(L, "%s", sandbox_of(L)->spent);
}

static int l_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    int st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (st != LUA_OK && sandbox_of(L)->spent)
        return reraise_spent(L);
    lua_pushboolean(L, st == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

static int l_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    lua_copy(L, 2, 1);
    lua_replace(L, 2);
    int st = lua_pcall(L, n - 2, LUA_MULTRET, 1);
    if (st != LUA_OK && sandbox_of(L)->spent)
        return reraise_spent(L);
    lua_pushboolean(L, st == LUA_OK);
    lua_replace(L, 1);
    return lua_gettop(L);
}

static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return XS_ENOTFOUND;
    }
    char *buf = malloc(MAX_SOURCE + 1);
    size_t n = buf ? fread(buf, 1, MAX_SOURCE + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return XS_ENOMEM;
    }
    if (bad || n > MAX_SOURCE) {
        free(buf);
        snprintf(err, errlen, "%s: %s", path, bad ? "read error" : "larger than 1 MiB");
        return bad ? XS_EIO : XS_ELIMIT;
    }
    *out = buf;
    *len = n;
    return 0;
}

int xs_lua_load_file(struct xs_lua *s, const char *path, char *err, size_t errlen)
{
    char *src;
    size_t n;
    int rc = read_file(path, &src, &n, err, errlen);
    if (rc)
        return rc;
    char name[1024];
    snprintf(name, sizeof name, "@%s", path);
    int st = luaL_loadbufferx(s->L, src, n, name, "t");
    free(src);
    if (st != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(s->L, -1));
        lua_pop(s->L, 1);
        return st == LUA_ERRMEM ? XS_ENOMEM : XS_EPOLICY;
    }
    return 0;
}

/* require("xsgw.name"): the library's own modules only, from lua_dir, as
 * text chunks, each loaded once per state. */
static int l_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "xsgw.loaded");
    if (lua_getfield(L, -1, name) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    const char *mod = strncmp(name, "xsgw.", 5) == 0 ? name + 5 : NULL;
    if (!mod || !*mod || strspn(mod, "abcdefghijklmnopqrstuvwxyz_") != strlen(mod))
        return luaL_error(L, "module '%s' is not part of the gateway's library", name);
    struct xs_lua *s = sandbox_of(L);
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/xsgw/%s.lua", s->lua_dir, mod);
    if (xs_lua_load_file(s, path, err, sizeof err) != 0)
        return luaL_error(L, "%s", err);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

int xs_lua_call(struct xs_lua *s, int nargs, int nresults, char *err, size_t errlen)
{
    lua_State *L = s->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    if (s->depth++ == 0) {
        s->ticks = 0;
        s->spent = NULL;
        s->deadline = now_ns() + to_ns(s->lim.call_seconds);
        /* One leaking call fails on its own instead of starving the calls
         * after it; the emergency collection that precedes a failed
         * allocation still frees the garbage of earlier calls. */
        s->call_cap = s->used + s->lim.call_memory;
        lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
        uv_mutex_lock(&s->mu);
        s->call_start = now_ns();
        s->call_seq++;
        s->where[0] = '\0';
        uv_mutex_unlock(&s->mu);
    }
    int st = lua_pcall(L, nargs, nresults, base);
    if (--s->depth == 0) {
        uv_mutex_lock(&s->mu);
        s->call_start = 0;
        uv_mutex_unlock(&s->mu);
    }
    lua_remove(L, base);
    if (st == LUA_OK)
        return 0;
    const char *msg = lua_tostring(L, -1);
    if (!msg)
        msg = st == LUA_ERRMEM ? "not enough memory" : "error";
    size_t line = strcspn(msg, "\n");
    snprintf(err, errlen, "%.*s", (int)line, msg);
    lua_pop(L, 1);
    return st == LUA_ERRMEM ? XS_ENOMEM : XS_EPOLICY;
}

int xs_lua_spent(const struct xs_lua *s)
{
    return s->spent != NULL;
}

/* Every call into Lua is protected, so this should never run; if it does,
 * the log says why before Lua aborts the process. */
static int on_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    char q[512];
    xs_log(XS_LOG_ERROR, "policy.panic", "reason=%s action=abort",
           xs_log_quote(q, sizeof q, msg ? msg : "(error object is not a string)"));
    return 0;
}

static void sandbox_destroy(struct xs_lua *s, int watching)
{
    if (watching) {
        uv_mutex_lock(&s->mu);
        s->stop = 1;
        uv_cond_signal(&s->cond);
        uv_mutex_unlock(&s->mu);
        uv_thread_join(&s->watchdog);
    }
    if (s->L) {
        /* Finalizers run in lua_close. Policies cannot set __gc (policy.lua
         * refuses it), and whatever the library's objects do still runs
         * under a fresh budget with the hook armed, so a reload cannot hang
         * here. */
        s->ticks = 0;
        s->spent = NULL;
        s->deadline = now_ns() + to_ns(s->lim.call_seconds);
        lua_sethook(s->L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
        lua_close(s->L);
    }
    uv_cond_destroy(&s->cond);
    uv_mutex_destroy(&s->mu);
    free(s->lua_dir);
    free(s->name);
    free(s);
}

struct xs_lua *xs_lua_new(const char *lua_dir, const struct xs_lua_limits *lim, const char *name)
{
    struct xs_lua *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (uv_mutex_init(&s->mu) != 0) {
        free(s);
        return NULL;
    }
    if (uv_cond_init(&s->cond) != 0) {
        uv_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    s->lim = *lim;
    s->lua_dir = strdup(lua_dir);
    s->name = strdup(name);
    s->L = s->lua_dir && s->name ? lua_newstate(budget_alloc, s) : NULL;
    if (!s->L || uv_thread_create(&s->watchdog, watchdog_main, s) != 0) {
        sandbox_destroy(s, 0);
        return NULL;
    }
    lua_State *L = s->L;
    lua_atpanic(L, on_panic);
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL}};
    for (const luaL_Reg *l = libs; l->name; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    static const char *const removed[] = {"dofile",         "loadfile", "load",
                                          "collectgarbage", "print",    NULL};
    for (const char *const *r = removed; *r; r++) {
        lua_pushnil(L);
        lua_setglobal(L, *r);
    }
    bound_library(L);
    lua_newtable(L);
    xs_lua_addr_preload(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "xsgw.loaded");
    lua_pushcfunction(L, l_require);
    lua_setglobal(L, "require");
    lua_pushcfunction(L, l_pcall);
    lua_setglobal(L, "pcall");
    lua_pushcfunction(L, l_xpcall);
    lua_setglobal(L, "xpcall");
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    return s;
}

void xs_lua_free(struct xs_lua *s)
{
    if (s)
        sandbox_destroy(s, 1);
}

lua_State *xs_lua_state(struct xs_lua *s)
{
    return s->L;
}

size_t xs_lua_memory(const struct xs_lua *s)
{
    return s->used;
}
