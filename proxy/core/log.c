#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static enum xs_log_level threshold = XS_LOG_INFO;

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

void xs_log(enum xs_log_level level, const char *ev, const char *fmt, ...)
{
    if (!xs_log_enabled(level))
        return;
    char raw[2048], line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(raw, sizeof raw, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ev=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_name(level), ev);
    if (n < 0)
        return;
    va_list ap;
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
