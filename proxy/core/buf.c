#include "core/buf.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void xs_buf_init(struct xs_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->off = 0;
}

void xs_buf_free(struct xs_buf *b)
{
    if (b->data)
        free(b->data - b->off);
    b->data = NULL;
    b->len = b->cap = b->off = 0;
}

/* Moves the content to the start of the allocation. */
static void compact(struct xs_buf *b)
{
    char *base = b->data - b->off;
    memmove(base, b->data, b->len + 1);
    b->data = base;
    b->cap += b->off;
    b->off = 0;
}

static int reserve(struct xs_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return XS_ELIMIT;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t total = b->off + b->cap; /* the allocation */
    /* Reclaiming consumed space costs a move of len bytes; it is done when
     * at least as many were consumed, so every byte is moved at most once
     * per byte consumed before it. */
    if (b->off && need <= total && b->off >= b->len) {
        compact(b);
        return 0;
    }
    size_t cap = total ? total : 256;
    while (cap < need)
        cap *= 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    if (cap <= total) {
        compact(b); /* at the maximum: moving is the only way to room */
        return 0;
    }
    char *p;
    if (b->off == 0) {
        p = realloc(b->data, cap);
        if (!p)
            return XS_ENOMEM;
    } else {
        p = malloc(cap);
        if (!p)
            return XS_ENOMEM;
        memcpy(p, b->data, b->len + 1);
        free(b->data - b->off);
        b->off = 0;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int xs_buf_append(struct xs_buf *b, const void *data, size_t len)
{
    int rc = reserve(b, len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int xs_buf_append_str(struct xs_buf *b, const char *s)
{
    return xs_buf_append(b, s, strlen(s));
}

int xs_buf_printf(struct xs_buf *b, const char *fmt, ...)
{
    /* One pass into the room already there, which is where almost every
     * call fits; a second, into room reserved for the measured length, for
     * the rest. */
    size_t room = b->data ? b->cap - b->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        if (room)
            b->data[b->len] = '\0';
        return XS_EINVAL;
    }
    if ((size_t)n < room && (size_t)n <= b->max - b->len) {
        b->len += (size_t)n;
        return 0;
    }
    if (room)
        b->data[b->len] = '\0';
    int rc = reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void xs_buf_consume(struct xs_buf *b, size_t n)
{
    if (!b->data)
        return;
    if (n >= b->len) {
        /* Empty: start over at the beginning, which moves nothing. */
        b->data -= b->off;
        b->cap += b->off;
        b->off = 0;
        b->len = 0;
        b->data[0] = '\0';
        return;
    }
    b->data += n;
    b->off += n;
    b->cap -= n;
    b->len -= n;
}

void xs_buf_reset(struct xs_buf *b)
{
    xs_buf_consume(b, b->len);
}
