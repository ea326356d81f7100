#include "policy/lua_addr.h"

#include <lauxlib.h>
#include <string.h>

#include "core/addr.h"
#include "policy/addr_map.h"

static int check_with(lua_State *L, int (*valid)(const char *, size_t))
{
    size_t n = 0;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
    lua_pushboolean(L, s && valid(s, n));
    return 1;
}

static int l_valid_domain(lua_State *L)
{
    return check_with(L, xs_addr_valid_domain);
}

static int l_valid_localpart(lua_State *L)
{
    return check_with(L, xs_addr_valid_localpart);
}

static int l_valid_resource(lua_State *L)
{
    return check_with(L, xs_addr_valid_resource);
}

static int l_valid_jid(lua_State *L)
{
    size_t n = 0;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
    /* A Lua string may hold NUL, which a C string would silently cut. */
    lua_pushboolean(L, s && strlen(s) == n && xs_addr_valid_jid(s));
    return 1;
}

int luaopen_xsgw_addr(lua_State *L)
{
    static const luaL_Reg fns[] = {{"valid_domain", l_valid_domain},
                                   {"valid_localpart", l_valid_localpart},
                                   {"valid_resource", l_valid_resource},
                                   {"valid_jid", l_valid_jid},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    /* addr.map: address.lua's mappings in C (policy/addr_map.h), which the
     * library's route uses where the policy keeps the default mapping. */
    lua_newtable(L);
    xs_addr_map_open(L);
    lua_setfield(L, -2, "map");
    return 1;
}

void xs_lua_addr_preload(lua_State *L)
{
    luaopen_xsgw_addr(L);
    lua_setfield(L, -2, "xsgw.addr");
}
