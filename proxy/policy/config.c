/* Lua -> C for a policy's configuration (config.h). Field by field, the
 * names are those policy.lua's normalize_gateway() and trust.lua give the
 * table; anything absent takes the struct's zero, which each field's
 * comment in policy.h defines. */
#include "policy/config.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

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

/* The list of strings at t[k] into *out (NULL-terminated, owned) and *n;
 * *out stays NULL when t[k] is not a table or is empty. XS_ENOMEM on OOM,
 * with what was copied left in *out for config_free. */
static int strlist_field(lua_State *L, int t, const char *k, char ***out, size_t *n)
{
    int rc = 0;
    size_t len;
    if (lua_getfield(L, t, k) == LUA_TTABLE && (len = lua_rawlen(L, -1)) > 0) {
        if (!(*out = calloc(len + 1, sizeof **out)))
            rc = XS_ENOMEM;
        for (size_t i = 0; !rc && i < len; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            if (!((*out)[i] = strdup(lua_tostring(L, -1))))
                rc = XS_ENOMEM;
            else
                (*n)++;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return rc;
}

static void strlist_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The vocabulary's names of each enum, in the enum's order (policy.h). */
static const char *const partner_types[] = {"unverified", "verified", "federated", NULL};
static const char *const tls_reqs[] = {"required", "optional", "none", NULL};
static const char *const sasl_reqs[] = {"optional", "required", "none", NULL};
static const char *const verify_modes[] = {"none", "ca", NULL};

/* The index in names of the string at t[k]; 0 (each enum's default) when
 * it is absent. Lua validated the value; nothing here allocates, so the
 * answer cannot fall back to a default for lack of memory. */
static int enum_field(lua_State *L, int t, const char *k, const char *const *names)
{
    int v = 0;
    if (lua_getfield(L, t, k) == LUA_TSTRING)
        for (int i = 0; names[i]; i++)
            if (!strcmp(lua_tostring(L, -1), names[i]))
                v = i;
    lua_pop(L, 1);
    return v;
}

/* The name of an enum value as the vocabulary spells it. */
const char *xs_partner_type_name(enum xs_partner_type v)
{
    return (unsigned)v <= XS_PARTNER_FEDERATED ? partner_types[v] : "?";
}

const char *xs_tls_req_name(enum xs_tls_req v)
{
    return (unsigned)v <= XS_TLS_NONE ? tls_reqs[v] : "?";
}

const char *xs_sasl_req_name(enum xs_sasl_req v)
{
    return (unsigned)v <= XS_SASL_NONE ? sasl_reqs[v] : "?";
}

const char *xs_verify_mode_name(enum xs_verify_mode v)
{
    return (unsigned)v <= XS_VERIFY_CA ? verify_modes[v] : "?";
}

static int endpoint_from(lua_State *L, int t, struct xs_sip_endpoint *e)
{
    char *tr = dup_field(L, t, "transport");
    e->transport = !tr                  ? XS_SIP_UDP
                   : !strcmp(tr, "tcp") ? XS_SIP_TCP
                   : !strcmp(tr, "tls") ? XS_SIP_TLS
                                        : XS_SIP_UDP;
    free(tr);
    e->host = dup_field(L, t, "host");
    e->port = (int)num_field(L, t, "port");
    return e->host ? 0 : XS_ENOMEM;
}

void xs_config_free(struct xs_config *c)
{
    for (size_t i = 0; i < c->n_domains; i++)
        free(c->domains[i]);
    free(c->domains);
    free(c->xmpp_listen_host);
    free(c->xmpp_listen_tls_host);
    free(c->tls_cert);
    free(c->tls_key);
    for (size_t i = 0; i < c->n_tls_certs; i++) {
        free(c->tls_certs[i].cert);
        free(c->tls_certs[i].key);
    }
    free(c->tls_certs);
    free(c->tls_ca);
    free(c->tls_crl);
    free(c->sip_tls_name);
    strlist_free(c->sip_tls_peers, c->n_sip_tls_peers);
    free(c->dialback_secret);
    for (size_t i = 0; i < c->n_sip_listen; i++)
        free(c->sip_listen[i].host);
    free(c->sip_listen);
    free(c->sip_next_hop.host);
    for (size_t i = 0; i < c->n_sip_trusted; i++)
        free(c->sip_trusted[i]);
    free(c->sip_trusted);
    free(c->sip_contact);
    free(c->presence_store);
    for (size_t i = 0; i < c->n_partners; i++) {
        free(c->partners[i].domain);
        strlist_free(c->partners[i].domains, c->partners[i].n_domains);
        free(c->partners[i].route_host);
    }
    free(c->partners);
}

int xs_config_from_lua(lua_State *L, int t, struct xs_config *c)
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
    c->tls_ca = dup_field(L, t, "tls_ca");
    c->tls_crl = dup_field(L, t, "tls_crl");
    if (lua_getfield(L, t, "tls_certs") == LUA_TTABLE) {
        size_t n = lua_rawlen(L, -1);
        c->tls_certs = calloc(n + 1, sizeof *c->tls_certs);
        for (size_t i = 0; c->tls_certs && i < n; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            struct xs_tls_identity_cfg *id = &c->tls_certs[c->n_tls_certs++];
            id->cert = dup_field(L, lua_gettop(L), "cert");
            id->key = dup_field(L, lua_gettop(L), "key");
            lua_pop(L, 1);
            if (!id->cert || !id->key)
                break;
        }
        if (!c->tls_certs || c->n_tls_certs < n || (n && !c->tls_certs[n - 1].key)) {
            lua_pop(L, 1);
            return rc;
        }
    }
    lua_pop(L, 1);
    c->xmpp_listen_tls_host = dup_field(L, t, "xmpp_listen_tls_host");
    c->xmpp_listen_tls_port = (int)num_field(L, t, "xmpp_listen_tls_port");
    c->dialback_secret = dup_field(L, t, "dialback_secret");
    c->xmpp_connect_timeout = num_field(L, t, "xmpp_connect_timeout");
    c->xmpp_idle_timeout = num_field(L, t, "xmpp_idle_timeout");
    c->max_body = (size_t)num_field(L, t, "max_body");
    c->xmpp_max_stanza = (size_t)num_field(L, t, "xmpp_max_stanza");
    c->xmpp_queue_max = (size_t)num_field(L, t, "xmpp_queue_max");
    c->xmpp_error_grace = num_field(L, t, "xmpp_error_grace");
    char *sm = dup_field(L, t, "xmpp_stream_management");
    c->xmpp_stream_management = !sm || !strcmp(sm, "always") ? XS_SM_MODE_ALWAYS
                                : !strcmp(sm, "offered")     ? XS_SM_MODE_OFFERED
                                                             : XS_SM_MODE_OFF;
    free(sm);
    c->xmpp_streams_in = (size_t)num_field(L, t, "xmpp_streams_in");
    c->xmpp_streams_out = (size_t)num_field(L, t, "xmpp_streams_out");
    c->xmpp_streams_unauth = (size_t)num_field(L, t, "xmpp_streams_unauth");
    c->xmpp_streams_unauth_per_source = (size_t)num_field(L, t, "xmpp_streams_unauth_per_source");
    c->xmpp_streams_per_domain = (size_t)num_field(L, t, "xmpp_streams_per_domain");
    c->sip_max_message = (size_t)num_field(L, t, "sip_max_message");
    c->sip_max_transactions = (size_t)num_field(L, t, "sip_max_transactions");
    c->sip_max_stored_bytes = (size_t)num_field(L, t, "sip_max_stored_bytes");
    c->sip_udp_recv_buffer = (size_t)num_field(L, t, "sip_udp_recv_buffer");
    c->sip_udp_send_buffer = (size_t)num_field(L, t, "sip_udp_send_buffer");
    c->log_bodies = lua_getfield(L, t, "log_bodies") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!c->xmpp_listen_host)
        return rc;
    if (lua_getfield(L, t, "sip_contact") == LUA_TSTRING &&
        !(c->sip_contact = strdup(lua_tostring(L, -1)))) {
        lua_pop(L, 1);
        return rc;
    }
    lua_pop(L, 1);
    c->presence_enabled =
        lua_getfield(L, t, "presence_enabled") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, t, "presence_store") == LUA_TSTRING &&
        !(c->presence_store = strdup(lua_tostring(L, -1)))) {
        lua_pop(L, 1);
        return rc;
    }
    lua_pop(L, 1);
    c->presence_expires = (unsigned)num_field(L, t, "presence_expires");
    c->presence_min_expires = (unsigned)num_field(L, t, "presence_min_expires");
    c->presence_max_expires = (unsigned)num_field(L, t, "presence_max_expires");
    c->presence_max_per_user = (size_t)num_field(L, t, "presence_max_per_user");
    c->presence_max_per_domain = (size_t)num_field(L, t, "presence_max_per_domain");
    c->presence_max_total = (size_t)num_field(L, t, "presence_max_total");

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

    c->sip_tls_verify = (enum xs_verify_mode)enum_field(L, t, "sip_tls_verify", verify_modes);
    c->sip_tls_name = dup_field(L, t, "sip_tls_name");
    c->sip_keepalive = num_field(L, t, "sip_keepalive");
    if (strlist_field(L, t, "sip_tls_peers", &c->sip_tls_peers, &c->n_sip_tls_peers) != 0)
        return rc;

    lua_getfield(L, t, "partners");
    c->n_partners = lua_rawlen(L, -1);
    c->partners = calloc(c->n_partners + 1, sizeof *c->partners);
    for (size_t i = 0; c->partners && i < c->n_partners; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        int p = lua_gettop(L);
        struct xs_partner *pt = &c->partners[i];
        pt->domain = dup_field(L, p, "domain");
        pt->type = (enum xs_partner_type)enum_field(L, p, "type", partner_types);
        pt->tls = (enum xs_tls_req)enum_field(L, p, "tls", tls_reqs);
        pt->sasl = (enum xs_sasl_req)enum_field(L, p, "sasl", sasl_reqs);
        pt->verify = (enum xs_verify_mode)enum_field(L, p, "verify", verify_modes);
        lua_getfield(L, p, "dialback");
        pt->dialback = lua_toboolean(L, -1);
        lua_pop(L, 1);
        pt->max_streams = (size_t)num_field(L, p, "max_connections");
        pt->keepalive = num_field(L, p, "keepalive");
        pt->idle_timeout = num_field(L, p, "idle_timeout");
        int drc = strlist_field(L, p, "domains", &pt->domains, &pt->n_domains);
        pt->route_host = dup_field(L, p, "route_host");
        pt->route_port = (int)num_field(L, p, "route_port");
        lua_pop(L, 1);
        if (!pt->domain || drc != 0) {
            lua_pop(L, 1);
            return rc;
        }
    }
    lua_pop(L, 1);
    return c->partners ? 0 : rc;
}
