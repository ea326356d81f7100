/* The metered pattern functions against the stock ones: the same answers
 * (values and errors) for fixed cases and for many random patterns and
 * subjects, and a stop through the tick once the work is too much. */
#include <lauxlib.h>
#include <lualib.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "policy/pattern.h"

static unsigned long ticks, tick_limit;

static void tick(lua_State *L)
{
    if (++ticks > tick_limit)
        luaL_error(L, "out of time");
}

/* Runs in a state where string.find/match/gmatch/gsub are ours and
 * stock.find/... the originals. Returns the number of mismatches. */
static const char compare[] =
    "local ours, stock = string, stock\n"
    "local function pack(ok, ...) return { ok = ok, n = select('#', ...), ... } end\n"
    "local function same(a, b)\n"
    "  if a.ok ~= b.ok then return false end\n"
    "  if not a.ok then return true end\n"
    "  if a.n ~= b.n then return false end\n"
    "  for i = 1, a.n do if a[i] ~= b[i] then return false end end\n"
    "  return true\n"
    "end\n"
    "local function gm(lib, s, p, i)\n"
    "  local out = {}\n"
    "  for a, b in lib.gmatch(s, p, i) do out[#out + 1] = tostring(a) .. '|' .. tostring(b)\n"
    "    if #out > 50 then break end end\n"
    "  return table.concat(out, ',')\n"
    "end\n"
    "local bad = 0\n"
    "local function try(s, p, i)\n"
    "  local cases = {\n"
    "    function(l) return l.find(s, p, i) end,\n"
    "    function(l) return l.find(s, p, i, true) end,\n"
    "    function(l) return l.match(s, p, i) end,\n"
    "    function(l) return gm(l, s, p, i) end,\n"
    "    function(l) return l.gsub(s, p, '<%0>') end,\n"
    "    function(l) return l.gsub(s, p, '%1', 2) end,\n"
    "    function(l) return l.gsub(s, p, { a = 'A', ab = false }) end,\n"
    "    function(l) return l.gsub(s, p, function(x) if x == 'b' then return nil end"
    " return '[' .. tostring(x) .. ']' end) end,\n"
    "  }\n"
    "  for k, f in ipairs(cases) do\n"
    "    local a, b = pack(pcall(f, ours)), pack(pcall(f, stock))\n"
    "    if not same(a, b) then\n"
    "      bad = bad + 1\n"
    "      if bad < 10 then print(('mismatch case %d s=%q p=%q i=%s ours=%s/%s stock=%s/%s')"
    ":format(k, s, p, tostring(i), tostring(a.ok), tostring(a[1]), tostring(b.ok),"
    " tostring(b[1]))) end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local fixed = {\n"
    "  {'  hello world  ', '^%s*(.-)%s*$'}, {'hello', 'l+'}, {'hello', '()ll()'},\n"
    "  {'THE (quick) fox', '%((%a+)%)'}, {'f(a(b)c)d', '%b()'}, {'THE (quick) fox', '%f[%a]%a+'},\n"
    "  {'key=val; k2=v2', '(%w+)=(%w+)'}, {'abcabc', '(abc)%1'}, {'a.b', '%.'}, {'a]b', '[]]'},\n"
    "  {'a-b', '[a-]'}, {'x^y', 'x^y'}, {'a$b', 'a$b'}, {'abc', '[^%a]'}, {'', ''}, {'abc', ''},\n"
    "  {'aaa', 'a-b'}, {'aaab', 'a-b'}, {'ab', 'a?b?c?'}, {'abc', '(a)(b)(c)'},\n"
    "  {'abc', '%'}, {'abc', '[a'}, {'abc', '(a'}, {'abc', 'a)'}, {'abc', '%1'}, {'abc', '%f'},\n"
    "  {'abc', '%b'}, {'a\\0b', 'a%zb'}, {'a\\0b', '\\0'}, {'a\\0b', '[\\0]'}, {'hello', 'o', "
    "-1},\n"
    "  {'hello', 'h', 10}, {'hello', 'l', -10}, {'hello', 'l', 0},\n"
    "  {'x = 10, y = 20', '(%w+) = (%w+)'}, {'one two  three', '%S+'}, {'aXb', '%u'},\n"
    "  {'date 2026-11-28', '(%d+)-(%d+)-(%d+)'}, {'[[x]]', '%[%[(.-)%]%]'},\n"
    "}\n"
    "for _, c in ipairs(fixed) do try(c[1], c[2], c[3]) end\n"
    "local atoms = { 'a', 'b', '.', '%a', '%s', '[ab]', '[^a]', '%d', ' ', '(', ')', '()',\n"
    "  '^', '$', '%1', '%b()', '%f[%a]', '-', '*', '+', '?', '[a-c]', '%%', '%W' }\n"
    "local chars = { 'a', 'b', 'c', ' ', '(', ')', '1', 'X', '%' }\n"
    "local seed = 12345\n"
    "local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n + 1 "
    "end\n"
    "for _ = 1, 20000 do\n"
    "  local p, s = {}, {}\n"
    "  for _ = 1, rnd(6) do p[#p + 1] = atoms[rnd(#atoms)] end\n"
    "  for _ = 1, rnd(12) - 1 do s[#s + 1] = chars[rnd(#chars)] end\n"
    "  local init = rnd(4) == 1 and (rnd(9) - 5) or nil\n"
    "  try(table.concat(s), table.concat(p), init)\n"
    "end\n"
    "return bad\n";

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_newtable(L);
    lua_getglobal(L, "string");
    static const char *const names[] = {"find", "match", "gmatch", "gsub"};
    for (int i = 0; i < 4; i++) {
        lua_getfield(L, -1, names[i]);
        lua_setfield(L, -3, names[i]);
    }
    xs_pattern_open(L, tick);
    lua_pop(L, 1);
    lua_setglobal(L, "stock");
    return L;
}

static void test_same_as_stock(void)
{
    lua_State *L = new_state();
    ticks = 0;
    tick_limit = (unsigned long)-1;
    if (luaL_dostring(L, compare) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        CHECK(!"comparison ran");
    } else {
        CHECK(lua_tointeger(L, -1) == 0);
    }
    lua_close(L);
}

/* The trim idiom on a 32 KB subject does ~5e8 steps; the tick stops it. */
static void test_stopped(void)
{
    lua_State *L = new_state();
    ticks = 0;
    tick_limit = 1000;
    CHECK(luaL_dostring(L, "local s = 'x' .. (' '):rep(32768) .. 'x'\n"
                           "return s:match('^%s*(.-)%s*$')") != LUA_OK);
    CHECK(strstr(lua_tostring(L, -1), "out of time") != NULL);
    CHECK(ticks == 1001);
    lua_close(L);
}

int main(void)
{
    test_same_as_stock();
    test_stopped();
    return check_report("test_pattern");
}
