#include "core/err.h"

const char *xs_strerror(int err)
{
    switch (err) {
    case XS_OK:
        return "success";
#define XS_ERR_TEXT(name, text)                                                                    \
    case XS_E##name:                                                                               \
        return text;
        XS_ERRNO_MAP(XS_ERR_TEXT)
#undef XS_ERR_TEXT
    }
    return "unknown error";
}

const char *xs_errname(int err)
{
    switch (err) {
    case XS_OK:
        return "OK";
#define XS_ERR_NAME(name, text)                                                                    \
    case XS_E##name:                                                                               \
        return "E" #name;
        XS_ERRNO_MAP(XS_ERR_NAME)
#undef XS_ERR_NAME
    }
    return "EUNKNOWN";
}
