#include "policy/sandbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "core/err.h"
#include "policy/lua_addr.h"

#define HOOK_EVERY 1000
#define MAX_SOURCE (1u << 20)

struct xs_lua {
    lua_State *L;
    size_t used;
    size_t limit;
    unsigned long instr_limit;
    unsigned long ticks;
    char *lua_dir;
};

static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct xs_lua *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        s->used -= old;
        return NULL;
    }
    if (nsize > old && s->used + (nsize - old) > s->limit)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p)
        s->used = s->used - old + nsize;
    return p;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    void *ud;
    lua_getallocf(L, &ud);
    struct xs_lua *s = ud;
    if (++s->ticks * HOOK_EVERY > s->instr_limit)
        luaL_error(L, "instruction budget exceeded");
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
    void *ud;
    lua_getallocf(L, &ud);
    struct xs_lua *s = ud;
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
    s->ticks = 0;
    int st = lua_pcall(L, nargs, nresults, base);
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

struct xs_lua *xs_lua_new(const char *lua_dir, size_t mem_limit, unsigned long instr_limit)
{
    struct xs_lua *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->limit = mem_limit;
    s->instr_limit = instr_limit;
    s->lua_dir = strdup(lua_dir);
    s->L = s->lua_dir ? lua_newstate(budget_alloc, s) : NULL;
    if (!s->L) {
        free(s->lua_dir);
        free(s);
        return NULL;
    }
    lua_State *L = s->L;
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
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    lua_newtable(L);
    xs_lua_addr_preload(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "xsgw.loaded");
    lua_pushcfunction(L, l_require);
    lua_setglobal(L, "require");
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    return s;
}

void xs_lua_free(struct xs_lua *s)
{
    if (!s)
        return;
    lua_close(s->L);
    free(s->lua_dir);
    free(s);
}

lua_State *xs_lua_state(struct xs_lua *s)
{
    return s->L;
}

size_t xs_lua_memory(const struct xs_lua *s)
{
    return s->used;
}
