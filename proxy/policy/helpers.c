#define _GNU_SOURCE /* memmem */
#include "policy/helpers.h"

#include <string.h>

#include <lauxlib.h>

/* ASCII white space, as %s in a Lua pattern. */
static int is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* xsgw.trim(s): s without leading and trailing white space. */
static int l_trim(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    size_t a = 0, b = n;
    while (a < b && is_space((unsigned char)s[a]))
        a++;
    while (b > a && is_space((unsigned char)s[b - 1]))
        b--;
    if (a == 0 && b == n)
        lua_pushvalue(L, 1);
    else
        lua_pushlstring(L, s + a, b - a);
    return 1;
}

static int fold(lua_State *L, int upper)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, n);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!upper && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        out[i] = c;
    }
    luaL_pushresultsize(&b, n);
    return 1;
}

/* xsgw.lower(s) / xsgw.upper(s): ASCII case folding, whatever the locale
 * (domains and ASCII keywords; UTF-8 bytes pass unchanged). */
static int l_lower(lua_State *L)
{
    return fold(L, 0);
}

static int l_upper(lua_State *L)
{
    return fold(L, 1);
}

static int l_starts_with(lua_State *L)
{
    size_t n, m;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &m);
    lua_pushboolean(L, m <= n && memcmp(s, p, m) == 0);
    return 1;
}

static int l_ends_with(lua_State *L)
{
    size_t n, m;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &m);
    lua_pushboolean(L, m <= n && memcmp(s + n - m, p, m) == 0);
    return 1;
}

/* xsgw.contains(s, text): plain substring test (glibc's memmem is linear). */
static int l_contains(lua_State *L)
{
    size_t n, m;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &m);
    lua_pushboolean(L, memmem(s, n, p, m) != NULL);
    return 1;
}

void xs_helpers_open(lua_State *L)
{
    static const luaL_Reg fns[] = {{"trim", l_trim},
                                   {"lower", l_lower},
                                   {"upper", l_upper},
                                   {"starts_with", l_starts_with},
                                   {"ends_with", l_ends_with},
                                   {"contains", l_contains},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
