/* The Redis store's URL and its records as Redis holds them (see
 * sub_store_redis.c for the layout): built on the way in, checked field by
 * field on the way out, since the server is shared and anyone with access
 * to it may have written anything. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "presence/sub_store_redis_int.h"

/* ---- the URL and the names ---- */

int xs__redis_name_ok(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return 0;
    return 1;
}

/* Digits only, no sign, no leading zero (but "0"), at most max. */
static int parse_small(const char *s, size_t len, long max, long *out)
{
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int xs__redis_parse_url(const char *url, struct url_parts *u, char *err, size_t errlen)
{
    static const char scheme[] = "redis://";
    const char *grammar = "redis://host:port[/db][?prefix=name]";
    memset(u, 0, sizeof *u);
    snprintf(u->prefix, sizeof u->prefix, "xsgw");
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
        snprintf(err, errlen, "presence.store: a Redis store is %s", grammar);
        return XS_EINVAL;
    }
    const char *p = url + sizeof scheme - 1;
    size_t authority = strcspn(p, "/?");
    if (memchr(p, '@', authority)) {
        snprintf(err, errlen, "presence.store %s: no user or password in the URL: %s", url,
                 grammar);
        return XS_EINVAL;
    }
    const char *h = p, *he;
    if (*p == '[') {
        he = strchr(p, ']');
        if (!he) {
            snprintf(err, errlen, "presence.store %s: an IPv6 address without its ']'", url);
            return XS_EINVAL;
        }
        h = p + 1;
        p = he + 1;
    } else {
        while (*p && *p != ':' && *p != '/' && *p != '?' && *p != '@')
            p++;
        he = p;
    }
    size_t hl = (size_t)(he - h);
    int host_ok = hl > 0 && hl <= HOST_MAX_LEN;
    for (size_t i = 0; host_ok && i < hl; i++)
        host_ok = isalnum((unsigned char)h[i]) || h[i] == '.' || h[i] == '-' ||
                  (h[-1] == '[' && h[i] == ':');
    if (!host_ok || *p == '@') {
        snprintf(err, errlen,
                 "presence.store %s: the host must be a name or address (no user or password): "
                 "%s",
                 url, grammar);
        return XS_EINVAL;
    }
    memcpy(u->host, h, hl);
    if (*p != ':') {
        snprintf(err, errlen, "presence.store %s: the port is missing: %s", url, grammar);
        return XS_EINVAL;
    }
    const char *ps = ++p;
    while (*p >= '0' && *p <= '9')
        p++;
    long v;
    if (parse_small(ps, (size_t)(p - ps), 65535, &v) != 0 || v == 0) {
        snprintf(err, errlen, "presence.store %s: the port must be a number from 1 to 65535", url);
        return XS_EINVAL;
    }
    u->port = (int)v;
    if (*p == '/') {
        const char *ds = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (parse_small(ds, (size_t)(p - ds), 15, &v) != 0) {
            snprintf(err, errlen, "presence.store %s: the database must be a number from 0 to 15",
                     url);
            return XS_EINVAL;
        }
        u->db = (int)v;
    }
    if (*p == '?') {
        static const char key[] = "prefix=";
        if (strncmp(p + 1, key, sizeof key - 1) != 0 ||
            !xs__redis_name_ok(p + sizeof key, PREFIX_MAX_LEN)) {
            snprintf(err, errlen,
                     "presence.store %s: the only option is prefix=name, 1 to %d of "
                     "[A-Za-z0-9_.-]",
                     url, PREFIX_MAX_LEN);
            return XS_EINVAL;
        }
        snprintf(u->prefix, sizeof u->prefix, "%s", p + sizeof key);
        p += strlen(p);
    }
    if (*p) {
        snprintf(err, errlen, "presence.store %s: unexpected text after the %s: %s", url,
                 p[-1] >= '0' && p[-1] <= '9' ? "number" : "address", grammar);
        return XS_EINVAL;
    }
    return 0;
}

int xs_sub_store_redis_url_check(const char *url, char *err, size_t errlen)
{
    struct url_parts u;
    return xs__redis_parse_url(url, &u, err, errlen);
}

/* ---- records in and out ---- */

/* "<role>:<len>:<watcher>:<presentity>", malloc'd. */
char *xs__redis_record_id(enum xs_sub_role role, const char *watcher, const char *presentity)
{
    size_t n = strlen(watcher) + strlen(presentity) + 32;
    char *id = malloc(n);
    if (id)
        snprintf(id, n, "%d:%zu:%s:%s", (int)role, strlen(watcher), watcher, presentity);
    return id;
}

/* "<prefix>:<what>:<instance>[:<id>]", malloc'd. */
char *xs__redis_key(const struct redis_store *st, const char *what, const char *instance,
                    const char *id)
{
    size_t n = strlen(st->prefix) + strlen(what) + strlen(instance) + (id ? strlen(id) : 0) + 4;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s:%s:%s%s%s", st->prefix, what, instance, id ? ":" : "", id ? id : "");
    return k;
}

/* "<prefix>:instances", malloc'd. */
char *xs__redis_instances_key(const struct redis_store *st)
{
    size_t n = strlen(st->prefix) + sizeof ":instances";
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s:instances", st->prefix);
    return k;
}

/* A decimal integer from min to max, nothing else around it. */
static int parse_int(const char *s, size_t len, long long min, long long max, long long *out)
{
    if (len == 0 || len > 20)
        return -1;
    char buf[24];
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (!(isdigit((unsigned char)buf[0]) || (buf[0] == '-' && len > 1)))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The name of a hash field for a log, without what a log should not carry. */
void xs__redis_printable(char *out, size_t n, const char *s, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < n && i < 32; i++)
        out[j++] = isalnum((unsigned char)s[i]) || s[i] == '_' ? s[i] : '?';
    out[j] = '\0';
}

static int is(const redisReply *f, const char *name)
{
    return f->len == strlen(name) && !memcmp(f->str, name, f->len);
}

/* The record in an HGETALL answer, its strings lent from rep. Refuses
 * anything put would not have written. */
int xs__redis_parse_record(const redisReply *rep, struct xs_sub_record *r, char *why, size_t n)
{
    memset(r, 0, sizeof *r);
    if (!rep) {
        snprintf(why, n, "no answer from the server");
        return XS_EIO;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(why, n, "not a hash (%.80s)", rep->str);
        return XS_EPROTO;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2) {
        snprintf(why, n, "not a hash");
        return XS_EPROTO;
    }
    if (rep->elements == 0) {
        snprintf(why, n, "the record is missing");
        return XS_EPROTO;
    }
    enum { F_ROLE = 1, F_STATE = 2, F_LCSEQ = 4, F_RCSEQ = 8, F_EXP = 16 };
    unsigned seen = 0;
    for (size_t i = 0; i < rep->elements; i += 2) {
        const redisReply *f = rep->element[i], *v = rep->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            snprintf(why, n, "a field that is not a string");
            return XS_EPROTO;
        }
        char name[40];
        xs__redis_printable(name, sizeof name, f->str, f->len);
        if (memchr(v->str, '\0', v->len)) {
            snprintf(why, n, "field %s holds a NUL byte", name);
            return XS_EPROTO;
        }
        const char **text = NULL;
        long long num;
        int bad = 0;
        if (is(f, "role")) {
            bad = parse_int(v->str, v->len, 1, 2, &num);
            r->role = (enum xs_sub_role)num;
            seen |= F_ROLE;
        } else if (is(f, "state")) {
            bad = parse_int(v->str, v->len, 1, 3, &num);
            r->state = (enum xs_sub_state)num;
            seen |= F_STATE;
        } else if (is(f, "local_cseq")) {
            bad = parse_int(v->str, v->len, 0, UINT32_MAX, &num);
            r->local_cseq = (uint32_t)num;
            seen |= F_LCSEQ;
        } else if (is(f, "remote_cseq")) {
            bad = parse_int(v->str, v->len, 0, UINT32_MAX, &num);
            r->remote_cseq = (uint32_t)num;
            seen |= F_RCSEQ;
        } else if (is(f, "expires_at")) {
            bad = parse_int(v->str, v->len, INT64_MIN, INT64_MAX, &num);
            r->expires_at = num;
            seen |= F_EXP;
        } else if (is(f, "watcher"))
            text = &r->watcher;
        else if (is(f, "presentity"))
            text = &r->presentity;
        else if (is(f, "call_id"))
            text = &r->call_id;
        else if (is(f, "local_tag"))
            text = &r->local_tag;
        else if (is(f, "remote_tag"))
            text = &r->remote_tag;
        else if (is(f, "remote_target"))
            text = &r->remote_target;
        else if (is(f, "route_set"))
            text = &r->route_set;
        else if (is(f, "last_pidf"))
            text = &r->last_pidf;
        else {
            snprintf(why, n, "unknown field %s", name);
            return XS_EPROTO;
        }
        if (bad) {
            snprintf(why, n, "field %s is not a number in its range", name);
            return XS_EPROTO;
        }
        if (text)
            *text = v->str;
    }
    if (seen != (F_ROLE | F_STATE | F_LCSEQ | F_RCSEQ | F_EXP)) {
        snprintf(why, n, "a number field is missing");
        return XS_EPROTO;
    }
    if (xs_sub_record_check(r, why, n) != 0)
        return XS_EPROTO;
    return 0;
}

/* The record's id must be the one its fields make: a record copied under
 * another key would otherwise shadow or duplicate one. */
int xs__redis_id_matches(const struct xs_sub_record *r, const char *id)
{
    char *want = xs__redis_record_id(r->role, r->watcher, r->presentity);
    int ok = want && !strcmp(want, id);
    free(want);
    return ok;
}

struct owned *xs__redis_owned_copy(const struct xs_sub_record *r)
{
    const char *const *f[8] = {&r->watcher,    &r->presentity,    &r->call_id,   &r->local_tag,
                               &r->remote_tag, &r->remote_target, &r->route_set, &r->last_pidf};
    size_t total = 0;
    for (int i = 0; i < 8; i++)
        total += *f[i] ? strlen(*f[i]) + 1 : 0;
    struct owned *o = malloc(sizeof *o);
    if (!o)
        return NULL;
    o->mem = malloc(total ? total : 1);
    if (!o->mem) {
        free(o);
        return NULL;
    }
    o->r = *r;
    const char **t[8] = {&o->r.watcher,    &o->r.presentity,    &o->r.call_id,   &o->r.local_tag,
                         &o->r.remote_tag, &o->r.remote_target, &o->r.route_set, &o->r.last_pidf};
    char *p = o->mem;
    for (int i = 0; i < 8; i++) {
        if (!*f[i])
            continue;
        size_t l = strlen(*f[i]) + 1;
        memcpy(p, *f[i], l);
        *t[i] = p;
        p += l;
    }
    return o;
}

int xs__redis_owned_cmp(const void *a, const void *b)
{
    const struct owned *x = *(const struct owned *const *)a, *y = *(const struct owned *const *)b;
    if (x->r.role != y->r.role)
        return (int)x->r.role - (int)y->r.role;
    int c = strcmp(x->r.watcher, y->r.watcher);
    return c ? c : strcmp(x->r.presentity, y->r.presentity);
}
