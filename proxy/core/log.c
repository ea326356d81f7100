#include "core/log.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/utf8.h"

static enum xs_log_level threshold = XS_LOG_INFO;
static int json_lines;

void xs_log_set_json(int on)
{
    json_lines = on != 0;
}

void xs_log_set_level(enum xs_log_level level)
{
    threshold = level;
}

int xs_log_enabled(enum xs_log_level level)
{
    return level >= threshold;
}

static const char *level_name(enum xs_log_level level)
{
    switch (level) {
    case XS_LOG_DEBUG:
        return "debug";
    case XS_LOG_INFO:
        return "info";
    case XS_LOG_WARN:
        return "warn";
    case XS_LOG_ERROR:
        return "error";
    }
    return "?";
}

/* Copies in to out (size n, n > 0), writing control characters as \xNN.
 * Values reach the log from peers (a JID, an id, a reason text), and one raw
 * newline in one would let the peer write a line of its own choosing: the
 * logger itself makes sure a call is one line, whatever the caller passed. */
static void escape_controls(char *out, size_t n, const char *in)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (; *in; in++) {
        unsigned char c = (unsigned char)*in;
        if (c >= 0x20 && c != 0x7f) {
            if (o + 1 >= n)
                break;
            out[o++] = (char)c;
            continue;
        }
        if (o + 4 >= n)
            break;
        out[o++] = '\\';
        out[o++] = 'x';
        out[o++] = hex[c >> 4];
        out[o++] = hex[c & 15];
    }
    out[o] = '\0';
}

/* A bounded writer for the JSON line: `room` stops short of the end by
 * what the closing needs, and a piece that does not fit is not written at
 * all (never half an escape or half a UTF-8 sequence), which marks the
 * line truncated. */
struct jw {
    char *p;
    size_t len, room;
    int full;
};

/* Room kept for ",\"truncated\":true}" and the string closing before it. */
#define JW_RESERVE 24

static int jw_put(struct jw *w, const char *s, size_t n)
{
    if (w->full || w->len + n > w->room) {
        w->full = 1;
        return -1;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
    return 0;
}

static int jw_str(struct jw *w, const char *s)
{
    return jw_put(w, s, strlen(s));
}

/* Writes bytes s[0..n) as the inside of a JSON string. */
static int jw_escaped(struct jw *w, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            char q[2] = {'\\', (char)c};
            if (jw_put(w, q, 2))
                return -1;
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            if (jw_put(w, e, 6))
                return -1;
            i++;
        } else if (c < 0x80) {
            if (jw_put(w, (const char *)s + i, 1))
                return -1;
            i++;
        } else {
            uint32_t cp;
            size_t len = xs_utf8_decode(s + i, n - i, &cp);
            /* A byte that starts no well-formed sequence stands for
             * itself, as U+0080..U+00FF: the line stays valid UTF-8 and
             * the byte can still be told. */
            if (len == 0 ? jw_put(w, e, 6) : jw_put(w, (const char *)s + i, len))
                return -1;
            i += len ? len : 1;
        }
    }
    return 0;
}

static int jw_field(struct jw *w, const char *key, size_t klen, const unsigned char *val,
                    size_t vlen)
{
    size_t start = w->len;
    if (jw_put(w, ",\"", 2) || jw_escaped(w, (const unsigned char *)key, klen) ||
        jw_put(w, "\":\"", 3)) {
        /* Not even the key fits: the field is left out whole. */
        w->len = start;
        return -1;
    }
    /* The closing quote may use one byte of the reserve: a value cut short
     * still ends its string, so the line parses. */
    int cut = jw_escaped(w, val, vlen) != 0;
    w->full = 0;
    w->room++;
    jw_put(w, "\"", 1);
    w->room--;
    w->full = cut;
    return cut ? -1 : 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads one quoted value at *pp (just past the opening quote) into val
 * (size n), undoing xs_log_quote's escapes; stops at the closing quote or
 * at the end of a line cut short. Returns the length. */
static size_t unquote(const char **pp, unsigned char *val, size_t n)
{
    const char *p = *pp;
    size_t o = 0;
    while (*p && *p != '"' && o < n) {
        if (p[0] == '\\' && (p[1] == '"' || p[1] == '\\')) {
            val[o++] = (unsigned char)p[1];
            p += 2;
        } else if (p[0] == '\\' && p[1] == 'x' && hexval(p[2]) >= 0 && hexval(p[3]) >= 0) {
            val[o++] = (unsigned char)(hexval(p[2]) << 4 | hexval(p[3]));
            p += 4;
        } else {
            val[o++] = (unsigned char)*p++;
        }
    }
    if (*p == '"')
        p++;
    *pp = p;
    return o;
}

size_t xs_log_json_line(char *out, size_t n, const char *ts, const char *level, const char *ev,
                        const char *rest)
{
    if (n < 64) {
        if (n)
            out[0] = '\0';
        return 0;
    }
    struct jw w = {out, 0, n - 1 - JW_RESERVE, 0};
    static const char key_ts[] = "ts", key_level[] = "level", key_ev[] = "ev";
    jw_put(&w, "{", 1);
    /* The fixed fields go through the same writer; the first has no comma. */
    if (jw_put(&w, "\"", 1) || jw_escaped(&w, (const unsigned char *)key_ts, 2) ||
        jw_put(&w, "\":\"", 3) || jw_escaped(&w, (const unsigned char *)ts, strlen(ts)) ||
        jw_put(&w, "\"", 1))
        goto done;
    if (jw_field(&w, key_level, 5, (const unsigned char *)level, strlen(level)) ||
        jw_field(&w, key_ev, 2, (const unsigned char *)ev, strlen(ev)))
        goto done;
    unsigned char val[2048];
    const char *p = rest ? rest : "";
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *tok = p;
        while (*p && *p != ' ' && *p != '=' && *p != '"')
            p++;
        size_t vlen;
        const char *key = tok;
        size_t klen = (size_t)(p - tok);
        if (*p == '=' && klen > 0) {
            p++;
            if (*p == '"') {
                p++;
                vlen = unquote(&p, val, sizeof val);
            } else {
                const char *v = p;
                while (*p && *p != ' ')
                    p++;
                vlen = (size_t)(p - v);
                if (vlen > sizeof val)
                    vlen = sizeof val;
                memcpy(val, v, vlen);
            }
        } else {
            /* A word that is not key=value (or a quoted text on its own). */
            key = "msg";
            klen = 3;
            if (*p == '"' && p == tok) {
                p++;
                vlen = unquote(&p, val, sizeof val);
            } else {
                while (*p && *p != ' ')
                    p++;
                vlen = (size_t)(p - tok);
                if (vlen > sizeof val)
                    vlen = sizeof val;
                memcpy(val, tok, vlen);
            }
        }
        if (jw_field(&w, key, klen, val, vlen))
            goto done;
    }
done:
    w.room = n - 1;
    if (w.full) {
        w.full = 0;
        jw_str(&w, ",\"truncated\":true");
    }
    jw_put(&w, "}", 1);
    out[w.len] = '\0';
    return w.len;
}

void xs_log(enum xs_log_level level, const char *ev, const char *fmt, ...)
{
    if (!xs_log_enabled(level))
        return;
    char raw[2048], line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    va_list ap;
    if (json_lines) {
        /* The rest is formatted as for text, then taken apart into fields. */
        char json[4096];
        va_start(ap, fmt);
        vsnprintf(raw, sizeof raw, fmt, ap);
        va_end(ap);
        size_t len = xs_log_json_line(json, sizeof json - 1, when, level_name(level), ev, raw);
        json[len] = '\n';
        json[len + 1] = '\0';
        fputs(json, stderr);
        return;
    }
    int n = snprintf(raw, sizeof raw, "ts=%s level=%s ev=%s ", when, level_name(level), ev);
    if (n < 0)
        return;
    va_start(ap, fmt);
    if ((size_t)n < sizeof raw)
        vsnprintf(raw + n, sizeof raw - (size_t)n, fmt, ap);
    va_end(ap);
    escape_controls(line, sizeof line - 1, raw);
    /* One fputs per line keeps lines whole when several processes share stderr. */
    size_t len = strlen(line);
    line[len] = '\n';
    line[len + 1] = '\0';
    fputs(line, stderr);
}

const char *xs_log_quote(char *out, size_t n, const char *s)
{
    if (n == 0)
        return "";
    if (!s) {
        snprintf(out, n, "-");
        return out;
    }
    int plain = *s != '\0';
    for (const char *p = s; *p && plain; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p < 0x20)
            plain = 0;
    if (plain) {
        snprintf(out, n, "%s", s);
        return out;
    }
    size_t o = 0;
    out[o++] = '"';
    for (const char *p = s; *p && o + 5 < n; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (o + 1 < n)
        out[o++] = '"';
    out[o < n ? o : n - 1] = '\0';
    return out;
}
