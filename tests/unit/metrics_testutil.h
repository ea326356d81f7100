/* Reading the metrics exposition in a unit test: whether a rendered text,
 * or the registry rendered now, holds an exact line. */
#ifndef XS_TEST_METRICS_TESTUTIL_H
#define XS_TEST_METRICS_TESTUTIL_H

#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/metrics.h"

/* 1 when `line` (without its newline) is a whole line of text. */
static inline int metrics_has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

/* The same for the registry as rendered now; names a missing line. */
static inline int metrics_line(const char *line)
{
    struct xs_buf b;
    xs_buf_init(&b, 1 << 20);
    int ok = xs_metrics_render(&b) == 0 && b.data && metrics_has_line(b.data, line);
    xs_buf_free(&b);
    if (!ok)
        fprintf(stderr, "no metric line: %s\n", line);
    return ok;
}

#endif
