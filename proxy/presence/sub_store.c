/* What every subscription store shares: the checks a record passes on its
 * way in and out, so the SIP side never sees from one store a record that
 * put would refuse. */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "presence/sub_store.h"

int xs_sub_record_check(const struct xs_sub_record *r, char *why, size_t n)
{
    if (r->role != XS_SUB_WATCH_SIP && r->role != XS_SUB_WATCH_XMPP) {
        snprintf(why, n, "unknown role %d", (int)r->role);
        return XS_EINVAL;
    }
    if (r->state < XS_SUB_STATE_PENDING || r->state > XS_SUB_STATE_TERMINATED) {
        snprintf(why, n, "unknown state %d", (int)r->state);
        return XS_EINVAL;
    }
    const struct {
        const char *what;
        const char *v;
        size_t max;
        int required;
    } f[] = {
        {"watcher", r->watcher, XS_SUB_URI_MAX, 1},
        {"presentity", r->presentity, XS_SUB_URI_MAX, 1},
        {"Call-ID", r->call_id, XS_SUB_URI_MAX, 0},
        {"local tag", r->local_tag, XS_SUB_URI_MAX, 0},
        {"remote tag", r->remote_tag, XS_SUB_URI_MAX, 0},
        {"remote target", r->remote_target, XS_SUB_URI_MAX, 0},
        {"route set", r->route_set, XS_SUB_ROUTE_MAX, 0},
        {"last PIDF document", r->last_pidf, XS_SUB_PIDF_MAX, 0},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (!f[i].v) {
            if (!f[i].required)
                continue;
            snprintf(why, n, "the %s is missing", f[i].what);
            return XS_EINVAL;
        }
        /* strnlen: a string over the bound is not read to its end. */
        size_t len = strnlen(f[i].v, f[i].max + 1);
        if (f[i].required && len == 0) {
            snprintf(why, n, "the %s is empty", f[i].what);
            return XS_EINVAL;
        }
        if (len > f[i].max) {
            snprintf(why, n, "the %s is longer than %zu bytes", f[i].what, f[i].max);
            return XS_EINVAL;
        }
    }
    return 0;
}
