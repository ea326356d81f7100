/* A policy generation: a sandboxed Lua state holding lua/ and one policy
 * file, the declarative part copied out into a struct xs_config, and the
 * route function the router calls for every event. */
#include "policy/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "core/err.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/metrics.h"
#include "policy/config.h"
#include "policy/helpers.h"
#include "policy/route_fast.h"
#include "policy/sandbox.h"
#include "sip/sip.h"

/* The budgets of one call into the policy. A hook that needs more than a
 * million VM instructions or half a second is broken, and the loop is
 * waiting for it. The watchdog logs a call stuck for 2 s (only a C function
 * that ignores the deadline can be) and aborts the process at 30 s: a
 * gateway that has answered nothing for that long is worse off than one its
 * supervisor restarts, and every C function a policy can reach is bounded,
 * so this is the last line, not the mechanism. */
static const struct xs_lua_limits policy_limits = {
    .memory = 64u << 20,
    .call_memory = 16u << 20,
    .instructions = 1000000ul,
    .call_seconds = 0.5,
    .watchdog_warn = 2.0,
    .watchdog_abort = 30.0,
};

struct xs_policy {
    struct xs_lua *lua;
    int route_ref;
    int mapped_ref; /* route_mapped, LUA_REFNIL when the policy maps itself */
    int keep_rc;    /* xs_config_from_lua's result, from inside keep_trampoline */
    /* The policy defines no hook (cfg.default_route of policy.lua), so the
     * messages route() accepts are decided in C (route_fast.h). */
    int default_route;
    struct xs_domain_index *ix; /* this generation's domains, for every lookup */
    /* The hook running (enum xs_metrics_hook), -1 when none: set by the
     * library around each hook (native hook()), so a failed call is
     * counted against the hook it failed in. */
    int hook;
    char *path;
    struct xs_config cfg;
};

/* The vocabulary's callsite(): "file:line" of the innermost caller that is
 * the policy file itself, so errors point at the operator's line and not at
 * the library. */
static int l_callsite(lua_State *L)
{
    const char *chunk = lua_tostring(L, lua_upvalueindex(1));
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (strcmp(ar.source, chunk) == 0) {
            lua_pushfstring(L, "%s:%d", chunk + 1, ar.currentline);
            return 1;
        }
    }
    lua_pushstring(L, chunk + 1);
    return 1;
}

/* defined_at(f): "file:line" where the Lua function f was defined, for
 * errors about a definition (a misspelled hook). */
static int l_defined_at(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_Debug ar;
    lua_pushvalue(L, 1);
    lua_getinfo(L, ">S", &ar);
    lua_pushfstring(L, "%s:%d", ar.source[0] == '@' ? ar.source + 1 : ar.short_src, ar.linedefined);
    return 1;
}

/* log(level, where, text): one line ev=policy.log in the gateway's log, with
 * the policy's file:line; xs_log_quote escapes control characters, so a
 * message body cannot forge lines. */
static int l_log(lua_State *L)
{
    static const char *const names[] = {"debug", "info", "warn", "error", NULL};
    static const enum xs_log_level levels[] = {XS_LOG_DEBUG, XS_LOG_INFO, XS_LOG_WARN,
                                               XS_LOG_ERROR};
    enum xs_log_level level = levels[luaL_checkoption(L, 1, NULL, names)];
    const char *where = luaL_checkstring(L, 2);
    const char *text = luaL_checkstring(L, 3);
    if (!xs_log_enabled(level))
        return 0;
    char qw[256], qt[1024];
    xs_log(level, "policy.log", "where=%s text=%s", xs_log_quote(qw, sizeof qw, where),
           xs_log_quote(qt, sizeof qt, text));
    return 0;
}

static double clock_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* now(): seconds since the epoch, for rules about the time of day. */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, clock_seconds(CLOCK_REALTIME));
    return 1;
}

/* clock(): seconds on a monotonic clock, for intervals and rates. */
static int l_clock(lua_State *L)
{
    lua_pushnumber(L, clock_seconds(CLOCK_MONOTONIC));
    return 1;
}

/* status_to_cond(code): the RFC 7247 condition of a SIP status, as the SIP
 * side maps it (sip_errmap.c); nil for a status that is not a failure. */
static int l_status_to_cond(lua_State *L)
{
    lua_Integer code = luaL_checkinteger(L, 1);
    enum xs_cond c = code >= 100 && code <= 699 ? xs_sip_status_to_cond((int)code) : XS_COND_NONE;
    if (c == XS_COND_NONE)
        lua_pushnil(L);
    else
        lua_pushstring(L, xs_cond_name(c));
    return 1;
}

/* partner(domain): the partner entry that applies to domain, through the one
 * matcher the streams use too (xs_policy_partner), as a fresh table; nil
 * when the domain is not federated. Upvalue 1: the struct xs_policy. Only
 * hooks can ask: while the policy file itself runs there is no
 * configuration yet. */
static int l_partner(lua_State *L)
{
    const struct xs_policy *p = lua_touserdata(L, lua_upvalueindex(1));
    const char *domain = luaL_checkstring(L, 1);
    if (!p->cfg.partners)
        return luaL_error(L, "xsgw.partner() can only be called from a hook");
    const struct xs_partner *pt = xs_policy_partner(p, domain);
    if (!pt) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 12);
    lua_pushstring(L, pt->domain);
    lua_setfield(L, -2, "domain");
    lua_pushstring(L, xs_partner_type_name(pt->type));
    lua_setfield(L, -2, "type");
    lua_pushstring(L, xs_tls_req_name(pt->tls));
    lua_setfield(L, -2, "tls");
    lua_pushstring(L, xs_sasl_req_name(pt->sasl));
    lua_setfield(L, -2, "sasl");
    lua_pushboolean(L, pt->dialback);
    lua_setfield(L, -2, "dialback");
    lua_pushstring(L, xs_verify_mode_name(pt->verify));
    lua_setfield(L, -2, "verify");
    lua_createtable(L, (int)pt->n_domains, 0);
    for (size_t i = 0; i < pt->n_domains; i++) {
        lua_pushstring(L, pt->domains[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "domains");
    if (pt->max_streams) {
        lua_pushinteger(L, (lua_Integer)pt->max_streams);
        lua_setfield(L, -2, "max_connections");
    }
    lua_pushnumber(L, pt->keepalive);
    lua_setfield(L, -2, "keepalive");
    if (pt->idle_timeout > 0) {
        lua_pushnumber(L, pt->idle_timeout);
        lua_setfield(L, -2, "idle_timeout");
    }
    if (pt->route_host) {
        lua_pushfstring(L, strchr(pt->route_host, ':') ? "[%s]:%d" : "%s:%d", pt->route_host,
                        pt->route_port);
        lua_setfield(L, -2, "route");
    }
    return 1;
}

/* keep_trampoline(p, cfg, route, route_mapped): keeps the route functions
 * and copies the configuration out, inside the protected call like all
 * other Lua work. */
static int keep_trampoline(lua_State *L)
{
    struct xs_policy *p = lua_touserdata(L, 1);
    p->mapped_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    p->route_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* The C buffers are sized for this ceiling (core/limits.h); the Lua
     * vocabulary must never let a larger body through. */
    lua_getfield(L, 2, "max_body");
    if (lua_tonumber(L, -1) > XS_MAX_BODY_CEILING)
        return luaL_error(L, "max_body %f exceeds the core's ceiling of %d bytes",
                          lua_tonumber(L, -1), (int)XS_MAX_BODY_CEILING);
    lua_pop(L, 1);
    lua_getfield(L, 2, "default_route");
    p->default_route = lua_toboolean(L, -1);
    lua_pop(L, 1);
    p->keep_rc = xs_config_from_lua(L, 2, &p->cfg);
    return 0;
}

/* hook(i): hook i (enum xs_metrics_hook) starts, counted; hook(-1): it
 * returned. Upvalue 1: the struct xs_policy. */
static int l_hook(lua_State *L)
{
    struct xs_policy *p = lua_touserdata(L, lua_upvalueindex(1));
    lua_Integer i = luaL_checkinteger(L, 1);
    p->hook = i >= 0 && i < XS_MHOOK_HOOKS_ ? (int)i : -1;
    if (p->hook >= 0)
        xs_metrics_hook_call((enum xs_metrics_hook)p->hook);
    return 0;
}

static int load_into(struct xs_policy *p, const char *path, char *err, size_t errlen)
{
    lua_State *L = xs_lua_state(p->lua);
    lua_getglobal(L, "require");
    lua_pushstring(L, "xsgw.policy");
    int rc = xs_lua_call(p->lua, 1, 1, err, errlen);
    if (rc)
        return rc;
    int mod = lua_gettop(L);

    /* env, decl = policy.new_env(callsite, native) */
    lua_getfield(L, mod, "new_env");
    lua_pushfstring(L, "@%s", path);
    lua_pushcclosure(L, l_callsite, 1);
    lua_newtable(L);
    xs_helpers_open(L);
    static const luaL_Reg natives[] = {
        {"defined_at", l_defined_at},         {"log", l_log}, {"now", l_now}, {"clock", l_clock},
        {"status_to_cond", l_status_to_cond}, {NULL, NULL}};
    luaL_setfuncs(L, natives, 0);
    lua_pushlightuserdata(L, p);
    lua_pushcclosure(L, l_partner, 1);
    lua_setfield(L, -2, "partner");
    lua_pushlightuserdata(L, p);
    lua_pushcclosure(L, l_hook, 1);
    lua_setfield(L, -2, "hook");
    if ((rc = xs_lua_call(p->lua, 2, 2, err, errlen)) != 0)
        return rc;
    int env = lua_gettop(L) - 1, decl = lua_gettop(L);

    if ((rc = xs_lua_load_file(p->lua, path, err, errlen)) != 0)
        return rc;
    lua_pushvalue(L, env);
    if (!lua_setupvalue(L, -2, 1))
        lua_pop(L, 1);
    if ((rc = xs_lua_call(p->lua, 0, 0, err, errlen)) != 0)
        return rc;

    /* cfg, route, route_mapped = policy.finish(env, decl) */
    lua_getfield(L, mod, "finish");
    lua_pushvalue(L, env);
    lua_pushvalue(L, decl);
    if ((rc = xs_lua_call(p->lua, 2, 3, err, errlen)) != 0) {
        /* Declaration errors carry the policy's file:line; others get the file. */
        if (!strstr(err, path)) {
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s: %s", path, err);
            snprintf(err, errlen, "%s", tmp);
        }
        return rc;
    }
    lua_pushcfunction(L, keep_trampoline);
    lua_insert(L, -4);
    lua_pushlightuserdata(L, p);
    lua_insert(L, -4);
    rc = xs_lua_call(p->lua, 4, 0, err, errlen);
    lua_settop(L, 0);
    if (rc == 0 && p->keep_rc)
        rc = p->keep_rc;
    if (rc)
        snprintf(err, errlen, "%s: out of memory", path);
    return rc;
}

int xs_policy_load(const char *policy_path, const char *lua_dir, struct xs_policy **out, char *err,
                   size_t errlen)
{
    struct xs_policy *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return XS_ENOMEM;
    }
    p->route_ref = LUA_NOREF;
    p->mapped_ref = LUA_NOREF;
    p->hook = -1;
    p->path = strdup(policy_path);
    p->lua = xs_lua_new(lua_dir, &policy_limits, policy_path);
    int rc = XS_ENOMEM;
    if (!p->path || !p->lua)
        snprintf(err, errlen, "out of memory");
    else
        rc = load_into(p, policy_path, err, errlen);
    if (rc == 0 && !(p->ix = xs_domain_index_new(&p->cfg))) {
        snprintf(err, errlen, "out of memory");
        rc = XS_ENOMEM;
    }
    if (rc) {
        xs_policy_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void xs_policy_free(struct xs_policy *p)
{
    if (!p)
        return;
    xs_lua_free(p->lua);
    xs_domain_index_free(p->ix);
    xs_config_free(&p->cfg);
    free(p->path);
    free(p);
}

const struct xs_config *xs_policy_config(const struct xs_policy *p)
{
    return &p->cfg;
}

const struct xs_partner *xs_policy_partner(const struct xs_policy *p, const char *domain)
{
    return xs_domain_index_partner(p->ix, domain, strlen(domain));
}

int xs_policy_is_local_domain(const struct xs_policy *p, const char *domain)
{
    return xs_domain_index_is_local(p->ix, domain, strlen(domain));
}

static void set_field(lua_State *L, const char *k, const char *v)
{
    if (!v)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static const char *kind_name(enum xs_event_kind k)
{
    return k == XS_EVENT_PRESENCE       ? "presence"
           : k == XS_EVENT_SUBSCRIPTION ? "subscription"
                                        : "message";
}

/* The hook a failed call is blamed on in the log. */
static const char *hook_name(const struct xs_event *ev)
{
    return ev->kind == XS_EVENT_PRESENCE       ? "on_presence"
           : ev->kind == XS_EVENT_SUBSCRIPTION ? "on_subscribe"
                                               : "on_message";
}

struct field {
    const char *k;
    size_t off;
};
#define FIELD(name)                                                                                \
    {                                                                                              \
#name, offsetof(struct xs_event, name)                                                     \
    }

/* The string fields each kind's table carries in and brings back. */
static const struct field message_fields[] = {
    FIELD(from),    FIELD(to),   FIELD(id),   FIELD(thread),
    FIELD(subject), FIELD(lang), FIELD(type), FIELD(body),
};
static const struct field presence_fields[] = {
    FIELD(from), FIELD(to),     FIELD(id),    FIELD(lang), FIELD(type),
    FIELD(show), FIELD(status), FIELD(basic), FIELD(note), FIELD(activities),
};
static const struct field subscription_fields[] = {
    FIELD(from), FIELD(to), FIELD(id), FIELD(lang), FIELD(type), FIELD(status),
};
#undef FIELD

static const struct field *fields_of(enum xs_event_kind k, size_t *n)
{
    if (k == XS_EVENT_PRESENCE) {
        *n = sizeof presence_fields / sizeof presence_fields[0];
        return presence_fields;
    }
    if (k == XS_EVENT_SUBSCRIPTION) {
        *n = sizeof subscription_fields / sizeof subscription_fields[0];
        return subscription_fields;
    }
    *n = sizeof message_fields / sizeof message_fields[0];
    return message_fields;
}

/* An integer field as the Lua library checked it (presence.lua's check()
 * bounds priority and availability); absent is 0. */
static int int_field(lua_State *L, int t, const char *k)
{
    lua_pushstring(L, k);
    lua_rawget(L, t);
    int v = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    return v;
}

/* What route_trampoline works on: the event in (with its addresses mapped
 * already when `mapped` is set: route_mapped is called then, else route),
 * the decision out. */
struct route_call {
    struct xs_policy *p;
    struct xs_event *ev;
    const struct xs_route_mapped *mapped;
    enum xs_cond cond;
    char *text;
};

/* Raw reads only: the table came from the policy, and a metamethod there
 * would run code outside the hook's view of the result. */
static int copy_back(lua_State *L, int t, const char *k, char **field)
{
    lua_pushstring(L, k);
    int ty = lua_rawget(L, t);
    int rc = 0;
    if (ty == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        /* Most fields come back as they went in: keep those, a copy each
         * per message was most of what reading the answer cost. */
        if (!*field || strlen(*field) != n || memcmp(*field, s, n) != 0)
            rc = xs_event_setn(field, s, n);
    } else {
        rc = xs_event_set(field, NULL);
    }
    lua_pop(L, 1);
    return rc;
}

/* All the Lua work of one routing decision, run inside xs_lua_call so that
 * a memory error or a budget error anywhere in it (building the event table
 * with a 256 KiB body, the hooks, reading the result) is one failed call and
 * never a panic. Argument 1 is a lightuserdata struct route_call. */
static int route_trampoline(lua_State *L)
{
    struct route_call *rc = lua_touserdata(L, 1);
    const struct xs_event *ev = rc->ev;
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, rc->mapped ? rc->p->mapped_ref : rc->p->route_ref);
    size_t nf;
    const struct field *fields = fields_of(ev->kind, &nf);
    lua_createtable(L, 0, 16);
    set_field(L, "kind", kind_name(ev->kind));
    set_field(L, "origin", ev->origin == XS_SIDE_XMPP ? "xmpp" : "sip");
    /* from and to come first in every list; premapped ones replace them. */
    for (size_t i = rc->mapped ? 2 : 0; i < nf; i++)
        set_field(L, fields[i].k, *(char *const *)((const char *)ev + fields[i].off));
    if (rc->mapped) {
        lua_pushlstring(L, rc->mapped->from, rc->mapped->from_len);
        lua_setfield(L, -2, "from");
        lua_pushlstring(L, rc->mapped->to, rc->mapped->to_len);
        lua_setfield(L, -2, "to");
    }
    if (ev->kind == XS_EVENT_PRESENCE) {
        lua_pushinteger(L, ev->priority);
        lua_setfield(L, -2, "priority");
        /* 0 is "no number": the table says so with nil. */
        if (ev->availability) {
            lua_pushinteger(L, ev->availability);
            lua_setfield(L, -2, "availability");
        }
    }
    lua_pushboolean(L, ev->secure);
    lua_setfield(L, -2, "secure");
    set_field(L, "auth", ev->auth);
    lua_call(L, 1, 3);
    if (lua_type(L, 1) == LUA_TTABLE) {
        rc->cond = XS_COND_NONE;
        for (size_t i = 0; i < nf; i++) {
            if (copy_back(L, 1, fields[i].k, (char **)((char *)rc->ev + fields[i].off)) != 0) {
                rc->cond = XS_COND_RESOURCE_CONSTRAINT;
                return 0;
            }
        }
        if (ev->kind == XS_EVENT_PRESENCE) {
            rc->ev->priority = int_field(L, 1, "priority");
            rc->ev->availability = int_field(L, 1, "availability");
        } else if (ev->kind == XS_EVENT_SUBSCRIPTION) {
            lua_pushliteral(L, "action");
            const char *a = lua_rawget(L, 1) == LUA_TSTRING ? lua_tostring(L, -1) : "forward";
            rc->ev->action = !strcmp(a, "approve")   ? XS_SUB_APPROVE
                             : !strcmp(a, "pending") ? XS_SUB_PENDING
                                                     : XS_SUB_FORWARD;
            lua_pop(L, 1);
        }
        return 0;
    }
    rc->cond = lua_type(L, 2) == LUA_TSTRING ? xs_cond_from_name(lua_tostring(L, 2))
                                             : XS_COND_UNDEFINED_CONDITION;
    if (lua_type(L, 3) == LUA_TSTRING)
        rc->text = strdup(lua_tostring(L, 3));
    return 0;
}

enum xs_cond xs_policy_route(struct xs_policy *p, struct xs_event *ev, char **text)
{
    *text = NULL;
    if (p->default_route && xs_route_fast(p->ix, p->cfg.max_body, ev))
        return XS_COND_NONE;
    lua_State *L = xs_lua_state(p->lua);
    lua_settop(L, 0);
    if (!lua_checkstack(L, 4))
        return XS_COND_RESOURCE_CONSTRAINT;
    /* A policy with hooks that keeps the default mapping: the part of
     * route() before the hooks is done here when it lets the message
     * through, and Lua runs the hooks and the checks after them. */
    struct xs_route_mapped mapped;
    int premapped = p->mapped_ref != LUA_REFNIL && p->mapped_ref != LUA_NOREF &&
                    xs_route_premap(p->ix, p->cfg.max_body, ev, &mapped);
    struct route_call rc = {p, ev, premapped ? &mapped : NULL, XS_COND_INTERNAL_SERVER_ERROR, NULL};
    lua_pushcfunction(L, route_trampoline);
    lua_pushlightuserdata(L, &rc);
    char err[512];
    p->hook = -1;
    int st = xs_lua_call(p->lua, 1, 0, err, sizeof err);
    lua_settop(L, 0);
    if (st != 0) {
        /* Outside any hook (the library's checks of what a hook left) the
         * failure is blamed where the log line below blames it. */
        enum xs_metrics_hook h = p->hook >= 0                        ? (enum xs_metrics_hook)p->hook
                                 : ev->kind == XS_EVENT_PRESENCE     ? XS_MHOOK_ON_PRESENCE
                                 : ev->kind == XS_EVENT_SUBSCRIPTION ? XS_MHOOK_ON_SUBSCRIBE
                                                                     : XS_MHOOK_ON_MESSAGE;
        xs_metrics_hook_error(h, st == XS_ENOMEM || xs_lua_spent(p->lua));
        free(rc.text);
        /* Memory is the one failure that is not the policy's bug alone: the
         * sender may try again later, so it gets resource-constraint. */
        enum xs_cond cond =
            st == XS_ENOMEM ? XS_COND_RESOURCE_CONSTRAINT : XS_COND_INTERNAL_SERVER_ERROR;
        char q[600];
        xs_log(XS_LOG_ERROR, "policy.error", "event=%llu hook=%s cond=%s reason=%s",
               (unsigned long long)ev->serial, hook_name(ev), xs_cond_name(cond),
               xs_log_quote(q, sizeof q, err));
        *text = strdup(st == XS_ENOMEM ? "policy out of memory" : "policy error");
        return cond;
    }
    *text = rc.text;
    return rc.cond;
}

/* --check's line on sip.tls, when a tls: transport is configured. */
static void print_sip_tls(FILE *out, const struct xs_config *c)
{
    int tls = c->sip_next_hop.host && c->sip_next_hop.transport == XS_SIP_TLS;
    for (size_t i = 0; i < c->n_sip_listen; i++)
        tls |= c->sip_listen[i].transport == XS_SIP_TLS;
    if (!tls)
        return;
    if (c->sip_tls_verify != XS_VERIFY_CA) {
        fprintf(out, "  sip tls: verify none (the SIP edge's certificates are not checked)\n");
        return;
    }
    const char *name = c->sip_tls_name ? c->sip_tls_name : c->sip_next_hop.host;
    fprintf(out, "  sip tls: verify ca; the next hop must present %s; inbound accepted from",
            c->sip_next_hop.host ? name : "(no next hop)");
    for (size_t i = 0; i < c->n_sip_tls_peers; i++)
        fprintf(out, " %s", c->sip_tls_peers[i]);
    /* Without peers, the inbound side accepts the next hop's name. */
    if (!c->n_sip_tls_peers)
        fprintf(out, " %s", name ? name : "nobody");
    fprintf(out, "\n");
}

int xs_policy_check(const char *path, const char *lua_dir, FILE *out)
{
    struct xs_policy *p;
    char err[512];
    int rc = xs_policy_load(path, lua_dir, &p, err, sizeof err);
    if (rc) {
        fprintf(out, "FAILED: %s\n", err);
        return rc;
    }
    const struct xs_config *c = &p->cfg;
    fprintf(out, "OK: %s\n  domains:", path);
    for (size_t i = 0; i < c->n_domains; i++)
        fprintf(out, " %s", c->domains[i]);
    fprintf(out, "\n  max_body %zu: xmpp.max_stanza %zu, sip.max_message %zu", c->max_body,
            c->xmpp_max_stanza, c->sip_max_message);
    fprintf(out,
            strchr(c->xmpp_listen_host, ':') ? "\n  xmpp: listen [%s]:%d"
                                             : "\n  xmpp: listen %s:%d",
            c->xmpp_listen_host, c->xmpp_listen_port);
    if (c->xmpp_listen_tls_host)
        fprintf(out,
                strchr(c->xmpp_listen_tls_host, ':') ? ", Direct TLS [%s]:%d"
                                                     : ", Direct TLS %s:%d",
                c->xmpp_listen_tls_host, c->xmpp_listen_tls_port);
    fprintf(out, "\n  tls: certificate %s", c->tls_cert ? c->tls_cert : "self-signed");
    if (c->n_tls_certs)
        fprintf(out, " and %zu more", c->n_tls_certs);
    fprintf(out, ", CA %s", c->tls_ca ? c->tls_ca : "none (no certificate can be verified)");
    if (c->tls_crl)
        fprintf(out, ", CRL %s", c->tls_crl);
    fprintf(out,
            "\n  xmpp streams: inbound %zu, outbound %zu, unauthenticated %zu (%zu per source), "
            "%zu per domain",
            c->xmpp_streams_in, c->xmpp_streams_out, c->xmpp_streams_unauth,
            c->xmpp_streams_unauth_per_source, c->xmpp_streams_per_domain);
    fprintf(out, "\n  sip: %zu listener(s)", c->n_sip_listen);
    if (c->sip_next_hop.host)
        fprintf(out, ", next hop %s:%s:%d\n",
                c->sip_next_hop.transport == XS_SIP_TLS   ? "tls"
                : c->sip_next_hop.transport == XS_SIP_TCP ? "tcp"
                                                          : "udp",
                c->sip_next_hop.host, c->sip_next_hop.port);
    else
        fprintf(out, ", no next hop: messages toward SIP will be refused\n");
    print_sip_tls(out, c);
    if (c->sip_keepalive > 0)
        fprintf(out, "  sip keepalive: every %g s on idle tcp/tls connections\n", c->sip_keepalive);
    if (c->sip_contact)
        fprintf(out, "  sip contact (in-dialog requests come back to): %s\n", c->sip_contact);
    fprintf(out, "  sip trusted:");
    for (size_t i = 0; i < c->n_sip_trusted; i++)
        fprintf(out, " %s", c->sip_trusted[i]);
    fprintf(out, "%s\n",
            !c->sip_trusted    ? " the next hop's addresses (resolved at start and reload)"
            : c->n_sip_trusted ? ""
                               : " nobody: every SIP request is refused");
    fprintf(out, "  partners:%s\n", c->n_partners ? "" : " none: nothing will federate");
    for (size_t i = 0; i < c->n_partners; i++) {
        const struct xs_partner *pt = &c->partners[i];
        fprintf(out, "    %s: %s, tls %s, sasl %s, dialback %s, verify %s", pt->domain,
                xs_partner_type_name(pt->type), xs_tls_req_name(pt->tls),
                xs_sasl_req_name(pt->sasl), pt->dialback ? "yes" : "no",
                xs_verify_mode_name(pt->verify));
        for (size_t j = 0; j < pt->n_domains; j++)
            fprintf(out, "%s%s", j ? " " : ", also ", pt->domains[j]);
        if (pt->route_host)
            fprintf(out, ", static route");
        fprintf(out, "\n");
    }
    if (c->presence_enabled)
        fprintf(out,
                "  presence: store %s, expires %u (%u to %u), subscriptions %zu per watcher, "
                "%zu per domain, %zu in all\n",
                c->presence_store ? c->presence_store : "in the state directory",
                c->presence_expires, c->presence_min_expires, c->presence_max_expires,
                c->presence_max_per_user, c->presence_max_per_domain, c->presence_max_total);
    else
        fprintf(out, "  presence: off (presence and subscriptions are refused)\n");
    if (c->admin_listen_host)
        fprintf(out, "  admin: %s%s%s:%d (/metrics, /status, /healthz, /readyz)\n",
                strchr(c->admin_listen_host, ':') ? "[" : "", c->admin_listen_host,
                strchr(c->admin_listen_host, ':') ? "]" : "", c->admin_listen_port);
    else
        fprintf(out, "  admin: off\n");
    fprintf(out, "  log: %s%s; reload: %s", c->log_json ? "json" : "text",
            c->log_bodies ? " with message bodies" : "",
            c->reload_watch ? "on change of the policy or its files, and on SIGHUP"
                            : "on SIGHUP only");
    if (c->reload_watch)
        fprintf(out, " (debounce %g s)", c->reload_debounce);
    fprintf(out, "; drain on SIGTERM: at most %g s\n", c->drain_deadline);
    xs_policy_free(p);
    return 0;
}
