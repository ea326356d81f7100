/* The Lua policy: one generation = one lua_State built from lua/ and a policy
 * file, validated, then used until the next reload replaces it. The C core
 * reads the declarative part once as a struct xs_config and calls into Lua
 * only through xs_policy_route() (and later hooks of the same shape). */
#ifndef XS_POLICY_POLICY_H
#define XS_POLICY_POLICY_H

#include <stddef.h>
#include <stdio.h>

#include "event.h"

/* The partner vocabulary (README, "Partners"). 0 is each enum's default. */
enum xs_tls_req { XS_TLS_REQUIRED = 0, XS_TLS_OPTIONAL = 1, XS_TLS_NONE = 2 };
/* SASL EXTERNAL (RFC 6120 §6, XEP-0178), only ever over TLS. */
enum xs_sasl_req { XS_SASL_OPTIONAL = 0, XS_SASL_REQUIRED = 1, XS_SASL_NONE = 2 };
/* Whether the peer's certificate must validate against the CA bundle and
 * name the domain being authenticated (RFC 9525), whatever authenticates it. */
enum xs_verify_mode { XS_VERIFY_NONE = 0, XS_VERIFY_CA = 1 };
/* unverified: dialback is enough (verify none). verified: a certificate that
 * validates for the domain is required (verify ca, tls required). federated:
 * verified, and its users trusted as well: their presence subscriptions are
 * approved without asking (the default presence policy). */
enum xs_partner_type { XS_PARTNER_UNVERIFIED = 0, XS_PARTNER_VERIFIED = 1, XS_PARTNER_FEDERATED = 2 };
/* Each value's name as the policy spells it ("required", "ca", ...), for
 * logs and --check; static strings, "?" for a value out of range. */
const char *xs_partner_type_name(enum xs_partner_type v);
const char *xs_tls_req_name(enum xs_tls_req v);
const char *xs_sasl_req_name(enum xs_sasl_req v);
const char *xs_verify_mode_name(enum xs_verify_mode v);

/* One federated XMPP domain, from `partner "domain" { ... }`. A partner whose
 * domain is "*" applies to every domain not listed by name. */
struct xs_partner {
    char *domain;
    enum xs_partner_type type;
    enum xs_tls_req tls;
    enum xs_sasl_req sasl;
    int dialback; /* 1: Server Dialback allowed/used with this partner */
    enum xs_verify_mode verify;
    char **domains; /* partner.domains: more domains the partner hosts, under
                       the same rules (lower-case, A-labels) */
    size_t n_domains;
    size_t max_streams;  /* partner.max_connections: streams in + out with it; 0: no own cap */
    double keepalive;    /* seconds of silence before a whitespace keepalive; 0: none */
    double idle_timeout; /* seconds; 0: xmpp.idle_timeout */
    char *route_host;    /* static route, NULL to use DNS SRV/A */
    int route_port;
};
enum xs_sip_transport { XS_SIP_UDP = 0, XS_SIP_TCP = 1, XS_SIP_TLS = 2 };

struct xs_sip_endpoint {
    enum xs_sip_transport transport;
    char *host;
    int port;
};

/* The declarative part of a policy, as plain C data. All strings owned by the
 * struct; freed with the policy. */
struct xs_config {
    char **domains; /* the SIP domains the gateway speaks for, lower-case */
    size_t n_domains;

    /* gateway.max_body: the largest message body (bytes) the gateway carries.
     * xmpp_max_stanza and sip_max_message are derived from it (max_body +
     * 16 KiB unless the policy sets them, never less than max_body + 4 KiB);
     * the router refuses a larger body before the policy sees it. */
    size_t max_body;

    char *xmpp_listen_host; /* xmpp.listen "host:port" (IPv6 as "[::]:5269") */
    int xmpp_listen_port;
    /* xmpp.listen_tls: the Direct TLS listener (XEP-0368); host NULL: none. */
    char *xmpp_listen_tls_host;
    int xmpp_listen_tls_port;
    /* gateway.tls (xmpp.tls is the older spelling of cert and key): the
     * certificates both sides present and the trust they verify against. */
    char *tls_cert; /* PEM paths of the default identity; NULL when the policy names none */
    char *tls_key;
    struct xs_tls_identity_cfg {
        char *cert; /* PEM: leaf first, then its chain */
        char *key;
    } *tls_certs; /* tls.certs: more identities, each serving the names in its
                     certificate, chosen by SNI or by a stream's local domain */
    size_t n_tls_certs;
    char *tls_ca;  /* tls.ca: CA bundle, a PEM file or a directory; NULL: none */
    char *tls_crl; /* tls.crl: PEM CRLs; NULL: none */
    char *dialback_secret;       /* XEP-0185 secret; NULL when absent (the gateway keeps its own) */
    double xmpp_connect_timeout; /* seconds, outbound stream set-up incl. dialback */
    double xmpp_idle_timeout;    /* seconds without traffic before a stream is closed */
    size_t xmpp_max_stanza;      /* bytes; derived from max_body */
    size_t xmpp_queue_max;       /* stanzas queued per outbound stream while it sets up */
    double xmpp_error_grace;     /* seconds a written stanza waits for an error before success */
    /* xmpp.stream_management: when outbound streams enable XEP-0198 after
     * dialback. OFFERED when the peer's features offer it; ALWAYS (the
     * default) also when they do not: Prosody offers it on s2s only after
     * SASL, so never on a dialback stream, yet accepts <enable/> after
     * dialback; ejabberd ignores it. */
    enum { XS_SM_MODE_OFF, XS_SM_MODE_OFFERED, XS_SM_MODE_ALWAYS } xmpp_stream_management;
    /* xmpp.max_streams: stream limits (the side shrinks the totals to fit
     * RLIMIT_NOFILE). Inbound and outbound count apart; "unauth" are inbound
     * streams with no authenticated pair, in total and per source address;
     * per_domain caps inbound streams authenticated for one remote domain. */
    size_t xmpp_streams_in;
    size_t xmpp_streams_out;
    size_t xmpp_streams_unauth;
    size_t xmpp_streams_unauth_per_source;
    size_t xmpp_streams_per_domain;

    struct xs_sip_endpoint *sip_listen;
    size_t n_sip_listen;
    struct xs_sip_endpoint sip_next_hop; /* host NULL when none is configured */
    size_t sip_max_message;              /* bytes of one SIP message; derived from max_body */
    /* SIP transaction bounds and UDP socket buffers (see README, "sip"):
     * transactions in flight per role, bytes of completed server
     * transactions kept for Timer J, SO_RCVBUF and SO_SNDBUF. 0 in a config
     * not made by a policy: the SIP side's own defaults. */
    size_t sip_max_transactions;
    size_t sip_max_stored_bytes;
    size_t sip_udp_recv_buffer;
    size_t sip_udp_send_buffer;
    /* sip.trusted: the peers SIP requests are accepted from ("10.0.0.5",
     * "10.0.0.0/24", "::1", ...). NULL when the policy gives none: the
     * resolved addresses of the next hop are trusted then. */
    char **sip_trusted;
    size_t n_sip_trusted;
    /* sip.contact "host:port" (IPv6 as "[::1]:5060"): the address the SIP
     * edge reaches the gateway at for in-dialog requests (NOTIFY); NULL: the
     * first sip.listen of each transport. */
    char *sip_contact;
    /* sip.tls: how TLS links to and from the SIP edge are checked.
     * verify: XS_VERIFY_CA when the policy gives tls.ca (and does not say
     * otherwise): the edge's certificate must validate and name sip_tls_name
     * (outbound) or one of sip_tls_peers (inbound; the gateway asks for a
     * client certificate). */
    enum xs_verify_mode sip_tls_verify;
    char *sip_tls_name;    /* sip.tls.name: the identity the next hop must present;
                              NULL: the next hop's host */
    char **sip_tls_peers;  /* sip.tls.peers: identities accepted on inbound TLS
                              ("*.edge.example" allowed); NULL: sip_tls_name or
                              the next hop's host */
    size_t n_sip_tls_peers;
    double sip_keepalive;  /* sip.keepalive: seconds between CRLF pings (RFC 5626)
                              on idle TCP/TLS connections; 0: none */

    /* gateway.presence (RFC 8048; README, "presence"). */
    int presence_enabled;           /* presence.enabled, default 1 */
    char *presence_store;           /* presence.store: path of the subscription store; NULL
                                       when not given (the gateway then uses its state dir) */
    unsigned presence_expires;      /* presence.expires: seconds asked for / granted, 3600 */
    unsigned presence_min_expires;  /* presence.min_expires: shorter requests get 423, 60 */
    unsigned presence_max_expires;  /* presence.max_expires: granted at most, 86400 */
    size_t presence_max_per_user;   /* presence.max_per_user: subscriptions one watcher may
                                       hold, 1000 */
    size_t presence_max_per_domain; /* presence.max_per_domain: per federated XMPP domain, 20000 */
    size_t presence_max_total;      /* presence.max_total: 100000 */

    struct xs_partner *partners;
    size_t n_partners;

    int log_bodies; /* 1 only when the policy asks for message bodies in logs */
    int log_json;   /* log.format = "json": one JSON object per line */

    /* Operations (lua/xsgw/operations.lua). */
    char *admin_listen_host; /* admin.listen; NULL when admin = false */
    int admin_listen_port;
    int reload_watch;        /* reload.watch: reload when the policy or its files change */
    double reload_debounce;  /* reload.debounce: seconds of quiet before that reload */
    double drain_deadline;   /* drain.deadline: seconds a SIGTERM stop may take */
    char *instance;          /* gateway.instance: this gateway's name in a shared presence
                                store; NULL: the host name */
};

struct xs_policy;

/* Builds a new generation from `policy_path`, with the gateway's Lua library
 * at `lua_dir` (lua/). On failure returns a negative XS_E* code and writes a
 * one-line reason naming the file and line into err (size errlen); nothing is
 * allocated then. */
int xs_policy_load(const char *policy_path, const char *lua_dir, struct xs_policy **out, char *err,
                   size_t errlen);
void xs_policy_free(struct xs_policy *p);

/* Borrowed; lives as long as the policy. */
const struct xs_config *xs_policy_config(const struct xs_policy *p);

/* The partner entry that applies to `domain` (exact match on a partner's
 * name or one of its domains first, then "*"), or NULL when the domain is
 * not federated. Borrowed from the config. */
const struct xs_partner *xs_policy_partner(const struct xs_policy *p, const char *domain);

/* 1 when `domain` is one of config->domains. */
int xs_policy_is_local_domain(const struct xs_policy *p, const char *domain);

/* Asks the policy what to do with an event that arrived from ev->origin.
 * On XS_COND_NONE the event has been rewritten in place: addresses mapped
 * into the other side's form (a URI "sip:..." for SIP, a JID for XMPP) and
 * whatever the hooks changed. Otherwise the event must not be delivered and
 * *text (owned by the caller, free() it; may be NULL) says why. A hook that
 * raises an error, or runs past its instruction or memory budget, yields
 * XS_COND_INTERNAL_SERVER_ERROR and a log line naming the file and line.
 *
 * Presence and subscriptions (lua/xsgw/presence.lua): refused with
 * SERVICE_UNAVAILABLE when presence.enabled is false; subscription
 * addresses come out bare (no resource, no ;gr=); a presence comes out
 * with the target side's fields filled (toward SIP basic, note,
 * activities, availability; toward XMPP type, show, status, priority); a
 * "subscribe" comes out with ev->action set by on_subscribe (FORWARD by
 * default), other subscription types with FORWARD. A presence that
 * on_presence dropped gives XS_COND_POLICY_VIOLATION with the text
 * "dropped by on_presence": log it, answer nobody. */
enum xs_cond xs_policy_route(struct xs_policy *p, struct xs_event *ev, char **text);

/* `xsgw --check`: loads the policy, prints "OK: <path>" and a summary or
 * "FAILED: <file:line: reason>" to out. Returns 0 or the load error. */
int xs_policy_check(const char *path, const char *lua_dir, FILE *out);

#endif
