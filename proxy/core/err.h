/* One error space for the whole gateway: 0 is success, failures are negative
 * XS_E* codes. Errors of libuv, mbedtls, expat and osip are translated into
 * these at the module that calls the library, never further in. */
#ifndef XS_CORE_ERR_H
#define XS_CORE_ERR_H

#define XS_ERRNO_MAP(X)                                                                            \
    X(NOMEM, "out of memory")                                                                      \
    X(INVAL, "invalid argument")                                                                   \
    X(AGAIN, "operation would block")                                                              \
    X(LIMIT, "limit exceeded")                                                                     \
    X(PROTO, "protocol violation")                                                                 \
    X(IO, "input/output error")                                                                    \
    X(CLOSED, "connection closed")                                                                 \
    X(NOTFOUND, "not found")                                                                       \
    X(TIMEOUT, "timed out")                                                                        \
    X(TLS, "TLS failure")                                                                          \
    X(DNS, "name resolution failed")                                                               \
    X(POLICY, "policy error")                                                                      \
    X(REFUSED, "refused")                                                                          \
    X(EXISTS, "already exists")                                                                    \
    X(STATE, "not allowed in this state")                                                          \
    X(AUTH, "authentication failed")

enum {
    XS_OK = 0,
#define XS_ERR_ENUM(name, text) XS_E##name##_,
    XS_ERR_FIRST_ = 0,
    XS_ERRNO_MAP(XS_ERR_ENUM)
#undef XS_ERR_ENUM
};

enum {
#define XS_ERR_NEG(name, text) XS_E##name = -XS_E##name##_,
    XS_ERRNO_MAP(XS_ERR_NEG)
#undef XS_ERR_NEG
};

/* Returns a static string for any code, including unknown ones. */
const char *xs_strerror(int err);
/* The short symbolic name ("EPROTO"), for structured logs. */
const char *xs_errname(int err);

#endif
