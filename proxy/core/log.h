/* Structured logging: one line per event, "ts=... level=... ev=<what> k=v ...".
 * Values that may carry spaces or quotes are written with xs_log_quote()
 * helpers by the caller's format, so every line stays machine-parseable. */
#ifndef XS_CORE_LOG_H
#define XS_CORE_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum xs_log_level { XS_LOG_DEBUG = 0, XS_LOG_INFO, XS_LOG_WARN, XS_LOG_ERROR };

/* The threshold is the one process-wide setting the logger has: it is set
 * once from the command line, and tests leave it alone. */
void xs_log_set_level(enum xs_log_level level);
int xs_log_enabled(enum xs_log_level level);

/* The line format, the other switch (log.format in the policy, set at start
 * and on each reload): 0 text "ts=... level=... ev=... k=v", 1 one JSON
 * object per line. */
void xs_log_set_json(int on);

/* The JSON form of one line, for xs_log and its tests: {"ts":ts,
 * "level":level,"ev":ev, then each key=value of `rest` (the formatted
 * key=value text, values bare or quoted as xs_log_quote writes them) as a
 * string field}. Quoted values are unescaped first; every value is then
 * JSON-escaped (control characters and bytes that are not UTF-8 as
 * \u00XX), and a word without '=' is kept under "msg". When out (size n,
 * at least 64) is too small the line ends early, still valid JSON, with
 * "truncated":true. Writes no newline; returns the length written. */
size_t xs_log_json_line(char *out, size_t n, const char *ts, const char *level, const char *ev,
                        const char *rest);

/* ev: short dotted event name ("s2s.in.state"); fmt: the key=value rest.
 * Control characters in the formatted line (newlines among them) are
 * written as \xNN, so one call is one line whatever its values hold. */
void xs_log(enum xs_log_level level, const char *ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs only when the level is enabled, without evaluating the arguments
 * otherwise: per-message DEBUG lines quote several values each, and that
 * work must cost nothing at the default level. */
#define XS_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if (xs_log_enabled(level))                                                                 \
            xs_log(level, __VA_ARGS__);                                                            \
    } while (0)

/* Writes s into out (size n) as a log value: bare if it has no space, quote,
 * '=' or control character, else double-quoted with escapes; truncated to fit.
 * Returns out, so it can sit in a printf argument list. NULL prints as "-". */
const char *xs_log_quote(char *out, size_t n, const char *s);

#endif
