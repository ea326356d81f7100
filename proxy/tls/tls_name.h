/* Certificate identity matching (RFC 9525): a DNS-ID presented in a
 * certificate's subjectAltName against the domain we expect. No common-name
 * fallback, wildcards only as a whole left-most label. Pure string work, no
 * mbedtls, so it can be tested and fuzzed on its own. */
#ifndef XS_TLS_TLS_NAME_H
#define XS_TLS_TLS_NAME_H

#include <stddef.h>

#define XS_TLS_NAME_MAX 253

/* `reference` (NUL-terminated, UTF-8) as the lower-case A-label form it is
 * compared in: ASCII labels lower-cased, labels with non-ASCII characters
 * Punycode-encoded behind "xn--" (RFC 3492); a trailing dot dropped. Returns
 * 0, or XS_EINVAL for an empty or over-long name, an empty label, bad UTF-8
 * or a result that does not fit `cap`. */
int xs_tls_name_to_alabel(const char *reference, char *out, size_t cap);

/* 1 when the presented dNSName (`len` bytes, not NUL-terminated, as found
 * in the certificate) names `reference` (already in A-label form), else 0.
 * "*.example.org" matches "a.example.org" only: one label, never the bare
 * domain, never a wildcard with fewer than two labels after it; "*" inside
 * a label, non-ASCII bytes or a NUL in the presented name never match. */
int xs_tls_name_match(const char *presented, size_t len, const char *reference);

/* 1 when the presented dNSName (as for xs_tls_name_match) is exactly one
 * label under `parent` (A-label form): "a.edge.example" under
 * "edge.example", never "edge.example" itself, "a.b.edge.example" or a
 * presented wildcard. For accept lists ("*.edge.example"), which name a
 * set of peers rather than one reference identity. */
int xs_tls_name_under(const char *presented, size_t len, const char *parent);

#endif
