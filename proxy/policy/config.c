/* Lua -> C for a policy's configuration (config.h). Field by field, the
 * names are those policy.lua's normalize_gateway() and trust.lua give the
 * table; anything absent takes the struct's zero, which each field's
 * comment in policy.h defines. */
#include "policy/config.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* The string at t[k] into *out (owned; NULL when absent). XS_ENOMEM when
 * it is there and cannot be copied: an absent value has a meaning (no
 * CA, no static route, ...), so a failed copy must not pass for one. */
static int str_field(lua_State *L, int t, const char *k, char **out)
{
    int rc = 0;
    if (lua_getfield(L, t, k) == LUA_TSTRING && !(*out = strdup(lua_tostring(L, -1))))
        rc = XS_ENOMEM;
    lua_pop(L, 1);
    return rc;
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

static const char *const transports[] = {"udp", "tcp", "tls", NULL};

static int endpoint_from(lua_State *L, int t, struct xs_sip_endpoint *e)
{
    e->transport = (enum xs_sip_transport)enum_field(L, t, "transport", transports);
    e->port = (int)num_field(L, t, "port");
    return str_field(L, t, "host", &e->host) != 0 || !e->host ? XS_ENOMEM : 0;
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
    free(c->admin_listen_host);
    free(c->instance);
    for (size_t i = 0; i < c->n_partners; i++) {
        free(c->partners[i].domain);
        strlist_free(c->partners[i].domains, c->partners[i].n_domains);
        free(c->partners[i].route_host);
    }
    free(c->partners);
}

/* The list of tables at t[k], each copied by one(L, index, element): an
 * array of n + 1 zeroed elements of `size` bytes (owned; NULL when t[k] is
 * not a table), *n counting the elements copied so far, so that
 * xs_config_free frees exactly those. *rc: XS_ENOMEM when a copy failed. */
static void *array_field(lua_State *L, int t, const char *k, size_t size,
                         int (*one)(lua_State *L, int i, void *elem), size_t *n, int *rc)
{
    char *a = NULL;
    if (lua_getfield(L, t, k) == LUA_TTABLE) {
        size_t len = lua_rawlen(L, -1);
        if (!(a = calloc(len + 1, size)))
            *rc = XS_ENOMEM;
        for (size_t i = 0; !*rc && i < len; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            (*n)++;
            *rc = one(L, lua_gettop(L), a + i * size);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return a;
}

static int identity_from(lua_State *L, int i, void *elem)
{
    struct xs_tls_identity_cfg *id = elem;
    return str_field(L, i, "cert", &id->cert) || str_field(L, i, "key", &id->key) ? XS_ENOMEM : 0;
}

static int listener_from(lua_State *L, int i, void *elem)
{
    return endpoint_from(L, i, elem);
}

static int partner_from(lua_State *L, int p, void *elem)
{
    struct xs_partner *pt = elem;
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
    pt->route_port = (int)num_field(L, p, "route_port");
    if (str_field(L, p, "domain", &pt->domain) || !pt->domain ||
        strlist_field(L, p, "domains", &pt->domains, &pt->n_domains) ||
        str_field(L, p, "route_host", &pt->route_host))
        return XS_ENOMEM;
    return 0;
}

static const char *const sm_modes[] = {"always", "offered", "off", NULL};

int xs_config_from_lua(lua_State *L, int t, struct xs_config *c)
{
    /* Lua validated every value (policy.lua, trust.lua, presence.lua);
     * what can fail here is memory alone. */
    if (strlist_field(L, t, "domains", &c->domains, &c->n_domains) || !c->domains ||
        str_field(L, t, "xmpp_listen_host", &c->xmpp_listen_host) || !c->xmpp_listen_host ||
        str_field(L, t, "xmpp_listen_tls_host", &c->xmpp_listen_tls_host) ||
        str_field(L, t, "tls_cert", &c->tls_cert) || str_field(L, t, "tls_key", &c->tls_key) ||
        str_field(L, t, "tls_ca", &c->tls_ca) || str_field(L, t, "tls_crl", &c->tls_crl) ||
        str_field(L, t, "dialback_secret", &c->dialback_secret) ||
        str_field(L, t, "sip_contact", &c->sip_contact) ||
        str_field(L, t, "presence_store", &c->presence_store) ||
        str_field(L, t, "admin_listen_host", &c->admin_listen_host) ||
        str_field(L, t, "instance", &c->instance) ||

        strlist_field(L, t, "sip_trusted", &c->sip_trusted, &c->n_sip_trusted) ||
        str_field(L, t, "sip_tls_name", &c->sip_tls_name) ||
        strlist_field(L, t, "sip_tls_peers", &c->sip_tls_peers, &c->n_sip_tls_peers))
        return XS_ENOMEM;
    int rc = 0;
    c->tls_certs =
        array_field(L, t, "tls_certs", sizeof *c->tls_certs, identity_from, &c->n_tls_certs, &rc);
    if (!rc)
        c->sip_listen = array_field(L, t, "sip_listen", sizeof *c->sip_listen, listener_from,
                                    &c->n_sip_listen, &rc);
    if (!rc)
        c->partners =
            array_field(L, t, "partners", sizeof *c->partners, partner_from, &c->n_partners, &rc);
    if (rc)
        return rc;
    if (lua_getfield(L, t, "sip_next_hop") == LUA_TTABLE &&
        endpoint_from(L, lua_gettop(L), &c->sip_next_hop) != 0) {
        lua_pop(L, 1);
        return XS_ENOMEM;
    }
    lua_pop(L, 1);
    /* sip.trusted = {} (trust nobody) differs from no sip.trusted (trust
     * the next hop): an empty list still gets its (empty) array. */
    if (lua_getfield(L, t, "sip_trusted") == LUA_TTABLE && !c->sip_trusted &&
        !(c->sip_trusted = calloc(1, sizeof *c->sip_trusted))) {
        lua_pop(L, 1);
        return XS_ENOMEM;
    }
    lua_pop(L, 1);
    /* Every partner list gets an array, as the loops over it expect. */
    if (!c->partners && !(c->partners = calloc(1, sizeof *c->partners)))
        return XS_ENOMEM;

    c->xmpp_listen_port = (int)num_field(L, t, "xmpp_listen_port");
    c->xmpp_listen_tls_port = (int)num_field(L, t, "xmpp_listen_tls_port");
    c->xmpp_connect_timeout = num_field(L, t, "xmpp_connect_timeout");
    c->xmpp_idle_timeout = num_field(L, t, "xmpp_idle_timeout");
    c->max_body = (size_t)num_field(L, t, "max_body");
    c->xmpp_max_stanza = (size_t)num_field(L, t, "xmpp_max_stanza");
    c->xmpp_queue_max = (size_t)num_field(L, t, "xmpp_queue_max");
    c->xmpp_error_grace = num_field(L, t, "xmpp_error_grace");
    static const int sm[] = {XS_SM_MODE_ALWAYS, XS_SM_MODE_OFFERED, XS_SM_MODE_OFF};
    c->xmpp_stream_management = sm[enum_field(L, t, "xmpp_stream_management", sm_modes)];
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
    c->sip_tls_verify = (enum xs_verify_mode)enum_field(L, t, "sip_tls_verify", verify_modes);
    c->sip_keepalive = num_field(L, t, "sip_keepalive");
    c->log_bodies = lua_getfield(L, t, "log_bodies") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    c->presence_enabled =
        lua_getfield(L, t, "presence_enabled") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    c->log_json = lua_getfield(L, t, "log_json") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    c->admin_listen_port = (int)num_field(L, t, "admin_listen_port");
    c->reload_watch = lua_getfield(L, t, "reload_watch") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    c->reload_debounce = num_field(L, t, "reload_debounce");
    c->drain_deadline = num_field(L, t, "drain_deadline");
    c->presence_expires = (unsigned)num_field(L, t, "presence_expires");
    c->presence_min_expires = (unsigned)num_field(L, t, "presence_min_expires");
    c->presence_max_expires = (unsigned)num_field(L, t, "presence_max_expires");
    c->presence_max_per_user = (size_t)num_field(L, t, "presence_max_per_user");
    c->presence_max_per_domain = (size_t)num_field(L, t, "presence_max_per_domain");
    c->presence_max_total = (size_t)num_field(L, t, "presence_max_total");
    return 0;
}
