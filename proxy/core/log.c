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

void xs_log(enum xs_log_level level, const char *ev, const char *fmt, ...)
{
    if (!xs_log_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ev=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_name(level), ev);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    if ((size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One fputs per line keeps lines whole when several processes share stderr. */
    size_t len = strnlen(line, sizeof line - 2);
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
