/* A policy generation: a sandboxed Lua state holding lua/ and one policy
 * file, the declarative part copied out into a struct xs_config, and the
 * route function the router calls for every event. */
#include "policy/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "core/err.h"
#include "core/log.h"
#include "policy/helpers.h"
#include "policy/sandbox.h"

/* The budgets of one call into the policy. A hook that needs more than a
 * million VM instructions or half a second is broken, and the loop is
 * waiting for it. The watchdog logs a call stuck for 2 s (only a C function
 * that ignores the deadline can be) and aborts the process at 30 s: a
 * gateway that has answered nothing for that long is worse off than one its
 * supervisor restarts, and every C function a policy can reach is bounded,
 * so this is the last line, not the mechanism. */
static const struct xs_lua_limits policy_limits = {
    .memory = 64u << 20,
    .instructions = 1000000ul,
    .call_seconds = 0.5,
    .watchdog_warn = 2.0,
    .watchdog_abort = 30.0,
};

struct xs_policy {
    struct xs_lua *lua;
    int route_ref;
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

static char *dup_field(lua_State *L, int t, const char *k)
{
    char *r = NULL;
    if (lua_getfield(L, t, k) == LUA_TSTRING)
        r = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    return r;
}

static double num_field(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static int endpoint_from(lua_State *L, int t, struct xs_sip_endpoint *e)
{
    char *tr = dup_field(L, t, "transport");
    e->transport = tr && !strcmp(tr, "tcp") ? XS_SIP_TCP : XS_SIP_UDP;
    free(tr);
    e->host = dup_field(L, t, "host");
    e->port = (int)num_field(L, t, "port");
    return e->host ? 0 : XS_ENOMEM;
}

static void config_free(struct xs_config *c)
{
    for (size_t i = 0; i < c->n_domains; i++)
        free(c->domains[i]);
    free(c->domains);
    free(c->xmpp_listen_host);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->dialback_secret);
    for (size_t i = 0; i < c->n_sip_listen; i++)
        free(c->sip_listen[i].host);
    free(c->sip_listen);
    free(c->sip_next_hop.host);
    for (size_t i = 0; i < c->n_sip_trusted; i++)
        free(c->sip_trusted[i]);
    free(c->sip_trusted);
    for (size_t i = 0; i < c->n_partners; i++) {
        free(c->partners[i].domain);
        free(c->partners[i].route_host);
    }
    free(c->partners);
}

/* Copies the normalized configuration table (validated in Lua) at index t. */
static int config_from(lua_State *L, int t, struct xs_config *c)
{
    int rc = XS_ENOMEM;
    lua_getfield(L, t, "domains");
    c->n_domains = lua_rawlen(L, -1);
    c->domains = calloc(c->n_domains + 1, sizeof *c->domains);
    for (size_t i = 0; c->domains && i < c->n_domains; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        c->domains[i] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        if (!c->domains[i])
            break;
    }
    lua_pop(L, 1);
    if (!c->domains)
        return rc;

    c->xmpp_listen_host = dup_field(L, t, "xmpp_listen_host");
    c->xmpp_listen_port = (int)num_field(L, t, "xmpp_listen_port");
    c->tls_cert = dup_field(L, t, "tls_cert");
    c->tls_key = dup_field(L, t, "tls_key");
    c->dialback_secret = dup_field(L, t, "dialback_secret");
    c->xmpp_connect_timeout = num_field(L, t, "xmpp_connect_timeout");
    c->xmpp_idle_timeout = num_field(L, t, "xmpp_idle_timeout");
    c->xmpp_max_stanza = (size_t)num_field(L, t, "xmpp_max_stanza");
    c->xmpp_queue_max = (size_t)num_field(L, t, "xmpp_queue_max");
    c->xmpp_error_grace = num_field(L, t, "xmpp_error_grace");
    c->sip_max_message = (size_t)num_field(L, t, "sip_max_message");
    c->log_bodies = lua_getfield(L, t, "log_bodies") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!c->xmpp_listen_host)
        return rc;

    lua_getfield(L, t, "sip_listen");
    c->n_sip_listen = lua_rawlen(L, -1);
    c->sip_listen = calloc(c->n_sip_listen + 1, sizeof *c->sip_listen);
    for (size_t i = 0; c->sip_listen && i < c->n_sip_listen; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        int e = endpoint_from(L, lua_gettop(L), &c->sip_listen[i]);
        lua_pop(L, 1);
        if (e)
            break;
    }
    lua_pop(L, 1);
    if (!c->sip_listen)
        return rc;
    if (lua_getfield(L, t, "sip_next_hop") == LUA_TTABLE &&
        endpoint_from(L, lua_gettop(L), &c->sip_next_hop) != 0) {
        lua_pop(L, 1);
        return rc;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, t, "sip_trusted") == LUA_TTABLE) {
        size_t n = lua_rawlen(L, -1);
        c->sip_trusted = calloc(n + 1, sizeof *c->sip_trusted);
        for (size_t i = 0; c->sip_trusted && i < n; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            c->sip_trusted[i] = strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
            if (!c->sip_trusted[i])
                break;
            c->n_sip_trusted++;
        }
        if (!c->sip_trusted || c->n_sip_trusted < n) {
            lua_pop(L, 1);
            return rc;
        }
    }
    lua_pop(L, 1);

    lua_getfield(L, t, "partners");
    c->n_partners = lua_rawlen(L, -1);
    c->partners = calloc(c->n_partners + 1, sizeof *c->partners);
    for (size_t i = 0; c->partners && i < c->n_partners; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        int p = lua_gettop(L);
        struct xs_partner *pt = &c->partners[i];
        pt->domain = dup_field(L, p, "domain");
        char *tls = dup_field(L, p, "tls");
        pt->tls = tls && !strcmp(tls, "optional") ? XS_TLS_OPTIONAL : XS_TLS_REQUIRED;
        free(tls);
        lua_getfield(L, p, "dialback");
        pt->dialback = lua_toboolean(L, -1);
        lua_pop(L, 1);
        pt->route_host = dup_field(L, p, "route_host");
        pt->route_port = (int)num_field(L, p, "route_port");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return c->partners ? 0 : rc;
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

    /* cfg, route = policy.finish(env, decl) */
    lua_getfield(L, mod, "finish");
    lua_pushvalue(L, env);
    lua_pushvalue(L, decl);
    if ((rc = xs_lua_call(p->lua, 2, 2, err, errlen)) != 0) {
        /* Declaration errors carry the policy's file:line; others get the file. */
        if (!strstr(err, path)) {
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s: %s", path, err);
            snprintf(err, errlen, "%s", tmp);
        }
        return rc;
    }
    p->route_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    rc = config_from(L, lua_gettop(L), &p->cfg);
    lua_settop(L, 0);
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
    p->path = strdup(policy_path);
    p->lua = xs_lua_new(lua_dir, &policy_limits, policy_path);
    int rc = XS_ENOMEM;
    if (!p->path || !p->lua)
        snprintf(err, errlen, "out of memory");
    else
        rc = load_into(p, policy_path, err, errlen);
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
    config_free(&p->cfg);
    free(p->path);
    free(p);
}

const struct xs_config *xs_policy_config(const struct xs_policy *p)
{
    return &p->cfg;
}

const struct xs_partner *xs_policy_partner(const struct xs_policy *p, const char *domain)
{
    const struct xs_partner *wild = NULL;
    for (size_t i = 0; i < p->cfg.n_partners; i++) {
        if (!strcasecmp(p->cfg.partners[i].domain, domain))
            return &p->cfg.partners[i];
        if (!strcmp(p->cfg.partners[i].domain, "*"))
            wild = &p->cfg.partners[i];
    }
    return wild;
}

int xs_policy_is_local_domain(const struct xs_policy *p, const char *domain)
{
    for (size_t i = 0; i < p->cfg.n_domains; i++)
        if (!strcasecmp(p->cfg.domains[i], domain))
            return 1;
    return 0;
}

static void set_field(lua_State *L, const char *k, const char *v)
{
    if (!v)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static int copy_back(lua_State *L, int t, const char *k, char **field)
{
    int ty = lua_getfield(L, t, k);
    int rc = 0;
    if (ty == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        rc = xs_event_setn(field, s, n);
    } else {
        rc = xs_event_set(field, NULL);
    }
    lua_pop(L, 1);
    return rc;
}

enum xs_cond xs_policy_route(struct xs_policy *p, struct xs_event *ev, char **text)
{
    lua_State *L = xs_lua_state(p->lua);
    *text = NULL;
    lua_settop(L, 0);
    if (!lua_checkstack(L, 8))
        return XS_COND_RESOURCE_CONSTRAINT;
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->route_ref);
    lua_createtable(L, 0, 10);
    set_field(L, "kind", "message");
    set_field(L, "origin", ev->origin == XS_SIDE_XMPP ? "xmpp" : "sip");
    set_field(L, "from", ev->from);
    set_field(L, "to", ev->to);
    set_field(L, "id", ev->id);
    set_field(L, "thread", ev->thread);
    set_field(L, "subject", ev->subject);
    set_field(L, "lang", ev->lang);
    set_field(L, "type", ev->type);
    set_field(L, "body", ev->body);
    char err[512];
    if (xs_lua_call(p->lua, 1, 3, err, sizeof err) != 0) {
        xs_log(XS_LOG_ERROR, "policy.error", "event=%llu hook=on_message reason=\"%s\"",
               (unsigned long long)ev->serial, err);
        lua_settop(L, 0);
        *text = strdup("policy error");
        return XS_COND_INTERNAL_SERVER_ERROR;
    }
    enum xs_cond cond = XS_COND_NONE;
    if (lua_istable(L, 1)) {
        static const struct {
            const char *k;
            size_t off;
        } fields[] = {
            {"from", offsetof(struct xs_event, from)},
            {"to", offsetof(struct xs_event, to)},
            {"id", offsetof(struct xs_event, id)},
            {"thread", offsetof(struct xs_event, thread)},
            {"subject", offsetof(struct xs_event, subject)},
            {"lang", offsetof(struct xs_event, lang)},
            {"type", offsetof(struct xs_event, type)},
            {"body", offsetof(struct xs_event, body)},
        };
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            if (copy_back(L, 1, fields[i].k, (char **)((char *)ev + fields[i].off)) != 0) {
                cond = XS_COND_RESOURCE_CONSTRAINT;
                break;
            }
        }
    } else {
        cond = xs_cond_from_name(lua_tostring(L, 2));
        if (lua_type(L, 3) == LUA_TSTRING)
            *text = strdup(lua_tostring(L, 3));
    }
    lua_settop(L, 0);
    return cond;
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
    fprintf(out, "\n  xmpp: listen %s:%d, tls %s\n  sip: %zu listener(s)", c->xmpp_listen_host,
            c->xmpp_listen_port, c->tls_cert ? c->tls_cert : "self-signed", c->n_sip_listen);
    if (c->sip_next_hop.host)
        fprintf(out, ", next hop %s:%s:%d\n",
                c->sip_next_hop.transport == XS_SIP_TCP ? "tcp" : "udp", c->sip_next_hop.host,
                c->sip_next_hop.port);
    else
        fprintf(out, ", no next hop: messages toward SIP will be refused\n");
    fprintf(out, "  sip trusted:");
    for (size_t i = 0; i < c->n_sip_trusted; i++)
        fprintf(out, " %s", c->sip_trusted[i]);
    fprintf(out, "%s\n",
            !c->sip_trusted      ? " the next hop's addresses (resolved at start and reload)"
            : c->n_sip_trusted ? ""
                               : " nobody: every SIP request is refused");
    fprintf(out, "  partners:");
    for (size_t i = 0; i < c->n_partners; i++)
        fprintf(out, " %s(tls %s%s)", c->partners[i].domain,
                c->partners[i].tls == XS_TLS_REQUIRED ? "required" : "optional",
                c->partners[i].route_host ? ", static route" : "");
    fprintf(out, "%s\n", c->n_partners ? "" : " none: nothing will federate");
    xs_policy_free(p);
    return 0;
}
