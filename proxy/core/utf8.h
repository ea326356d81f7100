/* UTF-8, decoded one sequence at a time: the one decoder the address
 * checks, SASL and certificate names share. */
#ifndef XS_CORE_UTF8_H
#define XS_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the sequence at s (n >= 1 bytes available) into *cp and returns
 * its length, or 0 when it is not well-formed UTF-8 (overlong forms,
 * surrogates, code points past U+10FFFF, a sequence cut by n). */
size_t xs_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

#endif
