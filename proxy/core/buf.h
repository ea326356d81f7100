/* A growable byte buffer with a hard maximum. Anything a peer can grow is
 * held in one of these, so the network can never drive memory past a bound:
 * an append that would pass the maximum fails with XS_ELIMIT and changes
 * nothing. */
#ifndef XS_CORE_BUF_H
#define XS_CORE_BUF_H

#include <stddef.h>

struct xs_buf {
    char *data; /* the content, NUL-terminated (not counted in len); owned, with
                   the off consumed bytes before it */
    size_t len;
    size_t cap; /* bytes usable from data on */
    size_t max; /* bytes of content allowed */
    size_t off; /* consumed bytes before data, reused when an append needs room */
};

void xs_buf_init(struct xs_buf *b, size_t max);
void xs_buf_free(struct xs_buf *b);
int xs_buf_append(struct xs_buf *b, const void *data, size_t len);
int xs_buf_append_str(struct xs_buf *b, const char *s);
int xs_buf_printf(struct xs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (all of them when n >= len). Nothing is moved:
 * data advances, and the space is reclaimed by a later append, which moves
 * the rest only when that costs no more than what was consumed. A reader
 * taking messages one by one off a burst is thus linear, not quadratic. */
void xs_buf_consume(struct xs_buf *b, size_t n);
void xs_buf_reset(struct xs_buf *b);

#endif
