/* lua/xsgw/address.lua in C. The comments name the Lua line each step
 * mirrors; where Lua patterns are involved, the scan below is what the
 * pattern does on these inputs (Lua's %a, %w, %x, %c in the C locale). */
#include "policy/addr_map.h"

#include <string.h>

#include <lauxlib.h>

#include "core/addr.h"
#include "core/err.h"

#define MAX_PART 1023 /* address.lua MAX_PART */
#define MAX_URI 4096  /* split_sip: #uri > 4096 */

static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_alnum(unsigned char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

static int is_xdigit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex_value(unsigned char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* A result being written into a caller's XS_ADDR_MAP_MAX buffer. */
struct out {
    char *p;
    size_t len;
    int over;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->over || n >= XS_ADDR_MAP_MAX - o->len) {
        o->over = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_char(struct out *o, char c)
{
    put(o, &c, 1);
}

static void put_lower(struct out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_char(o, lower(s[i]));
}

/* string.format("%%%02X", c:byte()) */
static void put_pct(struct out *o, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    char e[3] = {'%', hex[c >> 4], hex[c & 15]};
    put(o, e, 3);
}

static int finish(struct out *o, size_t *len)
{
    if (o->over)
        return XS_ELIMIT;
    o->p[o->len] = '\0';
    *len = o->len;
    return 0;
}

/* jid_escapes / jid_unescapes: the XEP-0106 pairs, hex exactly as written
 * there (lower case; "CASE IS SIGNIFICANT"). */
static const struct {
    char c;
    char hex[3];
} escapes[] = {{' ', "20"}, {'"', "22"}, {'&', "26"}, {'\'', "27"}, {'/', "2f"},
               {':', "3a"}, {'<', "3c"}, {'>', "3e"}, {'@', "40"}};

/* jid_unescapes[h]: the character, or -1 when h is no escape. "5c" is an
 * unescape only (the backslash is escaped only where it would read as one). */
static int unescape_of(const char *h)
{
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++)
        if (h[0] == escapes[i].hex[0] && h[1] == escapes[i].hex[1])
            return (unsigned char)escapes[i].c;
    return h[0] == '5' && h[1] == 'c' ? '\\' : -1;
}

static const char *escape_of(char c)
{
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++)
        if (escapes[i].c == c)
            return escapes[i].hex;
    return NULL;
}

/* "\hh" at s[i] (Lua "\\(%x%x)"). */
static int at_hex_escape(const char *s, size_t n, size_t i)
{
    return s[i] == '\\' && i + 2 < n && is_xdigit((unsigned char)s[i + 1]) &&
           is_xdigit((unsigned char)s[i + 2]);
}

/* bad_percent(s): a '%' that does not start "%hh". */
static int bad_percent(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%')
            continue;
        if (i + 2 < n && is_xdigit((unsigned char)s[i + 1]) && is_xdigit((unsigned char)s[i + 2]))
            i += 2;
        else
            return 1;
    }
    return 0;
}

/* percent_decode(s) into out (room for n bytes); returns the length. */
static size_t percent_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && is_xdigit((unsigned char)s[i + 1]) &&
            is_xdigit((unsigned char)s[i + 2])) {
            out[o++] = (char)(hex_value((unsigned char)s[i + 1]) * 16 +
                              hex_value((unsigned char)s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

/* split_jid: valid_jid (which refuses a NUL inside), then the parts. */
static int split_jid(const char *jid, size_t n, struct xs_addr_jid *j)
{
    return memchr(jid, '\0', n) == NULL && xs_addr_split_jid(jid, j);
}

int xs_addr_map_jid_domain(const char *jid, size_t n, char *out, size_t *len)
{
    struct xs_addr_jid j;
    if (!split_jid(jid, n, &j))
        return XS_EINVAL;
    struct out o = {out, 0, 0};
    put_lower(&o, j.domain, j.domain_len);
    return finish(&o, len);
}

/* sip_user_char: RFC 3261 unreserved and user-unreserved. */
static int sip_user_char(unsigned char c)
{
    return is_alnum(c) || (c && strchr("-_.!~*'()&=+$,;?/", c));
}

/* param_encode's set: RFC 3261 param-unreserved and unreserved. */
static int sip_param_char(unsigned char c)
{
    return is_alnum(c) || (c && strchr("[]/:&+$-_.!~*'()", c));
}

/* A domain as the *_domain functions give it, into an XS_ADDR_MAP_MAX
 * buffer (the domains here are at most 1023 bytes). */
static void copy_domain(const char *d, size_t n, int fold, char *dom, size_t *dom_len)
{
    if (!dom)
        return;
    for (size_t i = 0; i < n; i++)
        dom[i] = fold ? lower(d[i]) : d[i];
    dom[n] = '\0';
    *dom_len = n;
}

int xs_addr_map_to_sip(const char *jid, size_t n, char *out, size_t *len, char *dom,
                       size_t *dom_len)
{
    struct xs_addr_jid j;
    if (!split_jid(jid, n, &j))
        return XS_EINVAL;
    struct out o = {out, 0, 0};
    put(&o, "sip:", 4);
    if (j.local) {
        /* unescape_localpart: "\20" may not open or close it. */
        const char *s = j.local;
        size_t ln = j.local_len;
        if ((ln >= 3 && !memcmp(s, "\\20", 3)) || (ln >= 3 && !memcmp(s + ln - 3, "\\20", 3)))
            return XS_EINVAL;
        for (size_t i = 0; i < ln; i++) {
            int c = (unsigned char)s[i];
            if (at_hex_escape(s, ln, i)) {
                int u = unescape_of(s + i + 1);
                if (u >= 0) {
                    c = u;
                    i += 2;
                }
            }
            /* An escape that stands for nothing stays as it was: its
             * backslash is encoded here, its hex digits pass on their turn. */
            if (sip_user_char((unsigned char)c))
                put_char(&o, (char)c);
            else
                put_pct(&o, (unsigned char)c);
        }
        put_char(&o, '@');
    }
    put_lower(&o, j.domain, j.domain_len);
    if (j.resource) {
        put(&o, ";gr=", 4);
        for (size_t i = 0; i < j.resource_len; i++) {
            unsigned char c = (unsigned char)j.resource[i];
            if (sip_param_char(c))
                put_char(&o, (char)c);
            else
                put_pct(&o, c);
        }
    }
    int rc = finish(&o, len);
    if (rc == 0)
        copy_domain(j.domain, j.domain_len, 1, dom, dom_len);
    return rc;
}

/* The parts split_sip returns: user (decoded) and gr (decoded) with a
 * length of -1 when absent. */
struct sip_parts {
    char user[MAX_URI];
    long user_len;
    char host[MAX_URI];
    size_t host_len;
    char gr[MAX_URI];
    long gr_len;
};

static int scheme_ok(const char *s, size_t n)
{
    static const char *const known[] = {"sip", "sips", "im", "pres"};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        if (strlen(known[k]) != n)
            continue;
        size_t i = 0;
        while (i < n && lower(s[i]) == known[k][i])
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

static int split_sip(const char *uri, size_t n, struct sip_parts *p)
{
    if (n > MAX_URI || !xs_addr_utf8_ok(uri, n))
        return 0;
    /* ^(%a[%w+%-.]*):(.*)$ */
    if (n == 0 || !is_alpha((unsigned char)uri[0]))
        return 0;
    size_t i = 1;
    while (i < n &&
           (is_alnum((unsigned char)uri[i]) || uri[i] == '+' || uri[i] == '-' || uri[i] == '.'))
        i++;
    if (i == n || uri[i] != ':' || !scheme_ok(uri, i))
        return 0;
    const char *rest = uri + i + 1, *end = uri + n;
    if (end - rest >= 2 && rest[0] == '/' && rest[1] == '/')
        rest += 2;
    /* §6.4 step 2: the first '@' ends the user part. */
    const char *at = memchr(rest, '@', (size_t)(end - rest));
    const char *after = at ? at + 1 : rest;
    const char *hp_end = after;
    while (hp_end < end && *hp_end != ';' && *hp_end != '?')
        hp_end++;
    p->user_len = -1;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        size_t un = (size_t)((colon ? colon : at) - rest);
        if (un == 0 || bad_percent(rest, un))
            return 0;
        size_t dn = percent_decode(rest, un, p->user);
        if (dn > MAX_PART || !xs_addr_utf8_ok(p->user, dn))
            return 0;
        for (size_t k = 0; k < dn; k++)
            if ((unsigned char)p->user[k] < 0x20 || p->user[k] == 0x7f)
                return 0;
        p->user_len = (long)dn;
    }
    /* ^(%[.-%]) or ^([^:]*) */
    const char *h = after, *h_end = NULL;
    if (h < hp_end && *h == '[')
        h_end = memchr(h, ']', (size_t)(hp_end - h));
    if (h_end)
        h_end++;
    else
        for (h_end = h; h_end < hp_end && *h_end != ':'; h_end++)
            ;
    size_t hn = (size_t)(h_end - h);
    for (size_t k = 0; k < hn; k++)
        p->host[k] = lower(h[k]);
    if (hn > 0 && p->host[hn - 1] == '.')
        hn--;
    if (!xs_addr_valid_domain(p->host, hn))
        return 0;
    p->host[hn] = '\0';
    p->host_len = hn;
    /* Parameters up to the headers; ";name=value" pieces, the last
     * non-empty gr wins. */
    const char *q = memchr(hp_end, '?', (size_t)(end - hp_end));
    const char *params_end = q ? q : end;
    const char *gr = NULL;
    size_t grn = 0;
    for (const char *piece = hp_end; piece < params_end;) {
        piece++; /* the ';' */
        const char *pe = memchr(piece, ';', (size_t)(params_end - piece));
        if (!pe)
            pe = params_end;
        const char *eq = memchr(piece, '=', (size_t)(pe - piece));
        const char *name_end = eq ? eq : pe;
        if (name_end - piece == 2 && lower(piece[0]) == 'g' && lower(piece[1]) == 'r' && eq &&
            pe > eq + 1) {
            gr = eq + 1;
            grn = (size_t)(pe - gr);
        }
        piece = pe;
    }
    p->gr_len = -1;
    if (gr) {
        if (bad_percent(gr, grn))
            return 0;
        size_t dn = percent_decode(gr, grn, p->gr);
        if (!xs_addr_valid_resource(p->gr, dn))
            return 0;
        p->gr_len = (long)dn;
    }
    return 1;
}

int xs_addr_map_sip_domain(const char *uri, size_t n, char *out, size_t *len)
{
    struct sip_parts p;
    if (!split_sip(uri, n, &p))
        return XS_EINVAL;
    struct out o = {out, 0, 0};
    put(&o, p.host, p.host_len);
    return finish(&o, len);
}

int xs_addr_map_to_xmpp(const char *uri, size_t n, char *out, size_t *len, char *dom,
                        size_t *dom_len)
{
    struct sip_parts p;
    if (!split_sip(uri, n, &p))
        return XS_EINVAL;
    struct out o = {out, 0, 0};
    if (p.user_len >= 0) {
        /* escape_localpart: a space may not open or close it; a backslash
         * that reads as an escape is escaped itself (XEP-0106 §4.2). */
        const char *u = p.user;
        size_t un = (size_t)p.user_len;
        if (u[0] == ' ' || u[un - 1] == ' ')
            return XS_EINVAL;
        for (size_t i = 0; i < un; i++) {
            const char *e;
            if (at_hex_escape(u, un, i) && unescape_of(u + i + 1) >= 0) {
                put(&o, "\\5c", 3);
                put(&o, u + i + 1, 2);
                i += 2;
            } else if ((e = escape_of(u[i])) != NULL) {
                put_char(&o, '\\');
                put(&o, e, 2);
            } else {
                put_char(&o, u[i]);
            }
        }
        if (o.over || !xs_addr_valid_localpart(o.p, o.len))
            return XS_EINVAL;
        put_char(&o, '@');
    }
    put(&o, p.host, p.host_len);
    if (p.gr_len >= 0) {
        put_char(&o, '/');
        put(&o, p.gr, (size_t)p.gr_len);
    }
    int rc = finish(&o, len);
    if (rc)
        return rc;
    if (!xs_addr_valid_jid(out))
        return XS_EINVAL;
    copy_domain(p.host, p.host_len, 0, dom, dom_len);
    return 0;
}

typedef int (*map_fn)(const char *, size_t, char *, size_t *);

static int to_sip(const char *s, size_t n, char *out, size_t *len)
{
    return xs_addr_map_to_sip(s, n, out, len, NULL, NULL);
}

static int to_xmpp(const char *s, size_t n, char *out, size_t *len)
{
    return xs_addr_map_to_xmpp(s, n, out, len, NULL, NULL);
}

/* The Lua face: a string in; the result, or nil (and "jid-malformed" for
 * the mappings, as address.lua returns). */
static int call_map(lua_State *L, map_fn fn, int with_cond)
{
    /* The result is built in C and copied once into a Lua string: a Lua
     * buffer of XS_ADDR_MAP_MAX bytes per call cost more than the mapping.
     * Nothing between fn and the push can re-enter here. */
    static char out[XS_ADDR_MAP_MAX];
    size_t n = 0, len = 0;
    const char *s = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
    if (s && fn(s, n, out, &len) == 0) {
        lua_pushlstring(L, out, len);
        return 1;
    }
    lua_pushnil(L);
    if (!with_cond)
        return 1;
    lua_pushliteral(L, "jid-malformed");
    return 2;
}

static int l_to_sip(lua_State *L)
{
    return call_map(L, to_sip, 1);
}

static int l_to_xmpp(lua_State *L)
{
    return call_map(L, to_xmpp, 1);
}

static int l_jid_domain(lua_State *L)
{
    return call_map(L, xs_addr_map_jid_domain, 0);
}

static int l_sip_domain(lua_State *L)
{
    return call_map(L, xs_addr_map_sip_domain, 0);
}

void xs_addr_map_open(lua_State *L)
{
    static const luaL_Reg fns[] = {{"to_sip", l_to_sip},
                                   {"to_xmpp", l_to_xmpp},
                                   {"jid_domain", l_jid_domain},
                                   {"sip_domain", l_sip_domain},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
