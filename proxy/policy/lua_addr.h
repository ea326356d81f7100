/* The address validator (core/addr.h) as the Lua module "xsgw.addr", so the
 * Lua library checks addresses with the same rules as the C core:
 *   addr.valid_domain(s), addr.valid_localpart(s), addr.valid_resource(s),
 *   addr.valid_jid(s) -> boolean (false for anything but a string);
 *   addr.map.to_sip, to_xmpp, jid_domain, sip_domain: lua/xsgw/address.lua's
 *   functions of those names, in C (policy/addr_map.h). */
#ifndef XS_POLICY_LUA_ADDR_H
#define XS_POLICY_LUA_ADDR_H

#include <lua.h>

/* Puts the module into the sandbox's table of loaded modules (the registry
 * field "xsgw.loaded"), so require("xsgw.addr") finds it; that table must be
 * at the top of L's stack. */
void xs_lua_addr_preload(lua_State *L);

/* The module table, for a stock interpreter loading it as a C module (the
 * Lua tests). */
int luaopen_xsgw_addr(lua_State *L);

#endif
