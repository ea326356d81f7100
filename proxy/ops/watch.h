/* Watches a set of files (the policy and the certificates, keys, CA bundles
 * and CRLs it names) and calls back once when any of them really changed.
 *
 * Files are not watched themselves: an editor that writes by rename, or a
 * Kubernetes ConfigMap update (a `..data` symlink swapped atomically in the
 * mounted directory), replaces the inode a file watch would hold. The parent
 * directories are watched instead, both of the path as named and of the
 * file it resolves to, and an event only counts when it names a watched file
 * or a `..`-entry of a ConfigMap mount. Whether something changed is decided
 * by comparing what the resolved file is (device, inode, size, modification
 * and change times; for a directory, the same of every entry), so an event
 * that changed nothing causes no reload. Events within `debounce` seconds of
 * each other (a certificate and its key written one after the other) give
 * one callback. */
#ifndef XS_OPS_WATCH_H
#define XS_OPS_WATCH_H

#include <stddef.h>
#include <uv.h>

struct xs_watch;

/* Called once per settled change, with the watched paths that changed
 * joined by ',' (lent for the call). Returns 0 or a negative XS_E*, which
 * the watcher logs. The callback may call xs_watch_set (and it should: the
 * reloaded policy may name other files) or xs_watch_close: the watcher is
 * not touched after it returns. */
typedef int (*xs_watch_cb)(void *ud, const char *changed);

/* A watcher on `loop` with nothing watched yet; *out is owned, released by
 * xs_watch_close. Returns 0 or XS_ENOMEM. */
int xs_watch_new(uv_loop_t *loop, xs_watch_cb cb, void *ud, struct xs_watch **out);

/* Replaces the watched set with `paths` (n of them, NULL entries skipped;
 * copied), records what each is now, and re-arms the directory watches.
 * debounce: seconds of quiet before the callback. Returns 0 or a negative
 * XS_E* (a directory that cannot be watched is logged and skipped, so the
 * others keep working). */
int xs_watch_set(struct xs_watch *w, const char *const *paths, size_t n, double debounce);

/* Stops watching and frees the watcher once its handles are closed. */
void xs_watch_close(struct xs_watch *w);

#endif
