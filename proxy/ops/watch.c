#include "ops/watch.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/log.h"

/* A file of the set: as named, and as it resolves now (a ConfigMap's
 * `policy.lua -> ..data/policy.lua -> ..2026_x/policy.lua`). */
struct wfile {
    char *path;
    char *dir, *base;   /* of the path as named */
    char *rdir, *rbase; /* of the resolved path; NULL when it does not resolve */
    char *rpath;        /* the resolved path when it is a directory (a CA directory) */
    uint64_t fp;
};

struct wdir {
    uv_fs_event_t h;
    struct xs_watch *w;
    char *path;
    struct wdir *next;
};

struct xs_watch {
    uv_loop_t *loop;
    xs_watch_cb cb;
    void *ud;
    struct wfile *files;
    size_t n_files;
    struct wdir *dirs;
    uv_timer_t timer;
    double debounce;
    uint64_t first_event; /* loop time (ms) of the first event of a burst; 0: none */
    int closing;
    size_t handles_open;
};

/* How long a burst of events may postpone the check, in debounce periods:
 * a file rewritten without pause must still be picked up. */
#define WATCH_MAX_DELAY_FACTOR 10
/* Entries of a watched directory (a CA directory) looked at, at most. */
#define WATCH_DIR_ENTRIES_MAX 4096
/* Paths in one set, at most: the policy and what it names. */
#define WATCH_FILES_MAX 256

static uint64_t fold(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t fold_stat(uint64_t h, const struct stat *st)
{
    int64_t v[7] = {(int64_t)st->st_dev,         (int64_t)st->st_ino,          (int64_t)st->st_size,
                    (int64_t)st->st_mtim.tv_sec, (int64_t)st->st_mtim.tv_nsec, (int64_t)st->st_ctim.tv_sec,
                    (int64_t)st->st_ctim.tv_nsec};
    return fold(h, v, sizeof v);
}

/* What the file at path is now, as one number: the resolved file's
 * identity, size and times, or for a directory those of every entry. A
 * missing file has a value of its own, so its return counts as a change. */
static uint64_t fingerprint(const char *path)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return fold(h, "missing", 7);
    h = fold_stat(h, &st);
    if (!S_ISDIR(st.st_mode))
        return h;
    DIR *d = opendir(path);
    if (!d)
        return h;
    /* readdir order is stable for an unchanged directory, which is all a
     * comparison with the previous look needs. */
    struct dirent *e;
    size_t seen = 0;
    char sub[PATH_MAX];
    while ((e = readdir(d)) != NULL && seen++ < WATCH_DIR_ENTRIES_MAX) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        h = fold(h, e->d_name, strlen(e->d_name));
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub &&
            stat(sub, &st) == 0)
            h = fold_stat(h, &st);
    }
    closedir(d);
    return h;
}

/* Splits path into its directory and last component (owned copies). */
static int split(const char *path, char **dir, char **base)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        *dir = strdup(".");
        *base = strdup(path);
    } else {
        size_t dl = slash == path ? 1 : (size_t)(slash - path);
        *dir = strndup(path, dl);
        *base = strdup(slash + 1);
    }
    return *dir && *base ? 0 : XS_ENOMEM;
}

static void free_files(struct xs_watch *w)
{
    for (size_t i = 0; i < w->n_files; i++) {
        struct wfile *f = &w->files[i];
        free(f->path);
        free(f->dir);
        free(f->base);
        free(f->rdir);
        free(f->rbase);
        free(f->rpath);
    }
    free(w->files);
    w->files = NULL;
    w->n_files = 0;
}

static void maybe_free(struct xs_watch *w)
{
    if (!w->closing || w->handles_open > 0)
        return;
    free_files(w);
    free(w);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct xs_watch *w = h->data;
    if (h->type == UV_FS_EVENT) {
        struct wdir *d = (struct wdir *)h;
        w = d->w;
        free(d->path);
        free(d);
    }
    w->handles_open--;
    maybe_free(w);
}

static int starts_dotdot(const char *name)
{
    return name[0] == '.' && name[1] == '.';
}

/* Whether an event in directory `dir` about `name` (NULL: unknown) may
 * concern file f. */
static int concerns(const struct wfile *f, const char *dir, const char *name)
{
    if (f->rpath && !strcmp(dir, f->rpath))
        return 1;
    if (!strcmp(dir, f->dir) && (!name || !strcmp(name, f->base) || starts_dotdot(name)))
        return 1;
    return f->rdir && !strcmp(dir, f->rdir) && (!name || !strcmp(name, f->rbase));
}

static void on_timer(uv_timer_t *t);

static void on_fs_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    (void)events;
    struct wdir *d = (struct wdir *)h;
    struct xs_watch *w = d->w;
    if (w->closing)
        return;
    if (status < 0) {
        xs_log(XS_LOG_WARN, "policy.watch", "dir=%s result=error reason=\"%s\"", d->path,
               uv_strerror(status));
        return;
    }
    int hit = 0;
    for (size_t i = 0; i < w->n_files && !hit; i++)
        hit = concerns(&w->files[i], d->path, name);
    if (!hit)
        return;
    uint64_t now = uv_now(w->loop);
    uint64_t debounce_ms = (uint64_t)(w->debounce * 1000.0);
    if (!w->first_event)
        w->first_event = now ? now : 1;
    uint64_t latest = w->first_event + debounce_ms * WATCH_MAX_DELAY_FACTOR;
    uint64_t due = now + debounce_ms;
    if (due > latest)
        due = latest > now ? latest : now;
    XS_LOG(XS_LOG_DEBUG, "policy.watch", "dir=%s name=%s result=event due_ms=%llu", d->path,
           name ? name : "-", (unsigned long long)(due - now));
    uv_timer_start(&w->timer, on_timer, due - now, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct xs_watch *w = t->data;
    w->first_event = 0;
    char changed[2048];
    size_t o = 0;
    int n = 0;
    changed[0] = '\0';
    for (size_t i = 0; i < w->n_files; i++) {
        struct wfile *f = &w->files[i];
        uint64_t fp = fingerprint(f->path);
        if (fp == f->fp)
            continue;
        /* Recorded now, so a reload that fails is not retried for the
         * same content; the next change tries again. */
        f->fp = fp;
        n++;
        int k = snprintf(changed + o, sizeof changed - o, "%s%s", o ? "," : "", f->path);
        if (k > 0 && (size_t)k < sizeof changed - o)
            o += (size_t)k;
    }
    if (!n) {
        XS_LOG(XS_LOG_DEBUG, "policy.watch", "result=unchanged");
        return;
    }
    char q[2100];
    xs_log(XS_LOG_INFO, "policy.watch", "changed=%s files=%d result=reloading",
           xs_log_quote(q, sizeof q, changed), n);
    int rc = w->cb(w->ud, changed);
    xs_log(rc == 0 ? XS_LOG_INFO : XS_LOG_WARN, "policy.watch", "changed=%s result=%s%s%s",
           xs_log_quote(q, sizeof q, changed), rc == 0 ? "reloaded" : "rejected",
           rc == 0 ? "" : " reason=", rc == 0 ? "" : "\"kept the running policy; see policy.reload\"");
}

int xs_watch_new(uv_loop_t *loop, xs_watch_cb cb, void *ud, struct xs_watch **out)
{
    struct xs_watch *w = calloc(1, sizeof *w);
    if (!w)
        return XS_ENOMEM;
    w->loop = loop;
    w->cb = cb;
    w->ud = ud;
    w->debounce = 0.5;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    w->handles_open = 1;
    *out = w;
    return 0;
}

static int fill_file(struct wfile *f, const char *path)
{
    f->path = strdup(path);
    if (!f->path || split(path, &f->dir, &f->base) != 0)
        return XS_ENOMEM;
    char real[PATH_MAX];
    if (realpath(path, real)) {
        if (split(real, &f->rdir, &f->rbase) != 0)
            return XS_ENOMEM;
        struct stat st;
        if (stat(real, &st) == 0 && S_ISDIR(st.st_mode) && !(f->rpath = strdup(real)))
            return XS_ENOMEM;
    }
    return 0;
}

static struct wdir *find_dir(struct wdir *list, const char *path)
{
    for (; list; list = list->next)
        if (!strcmp(list->path, path))
            return list;
    return NULL;
}

/* Adds a watch on dir to *list unless one is there; a directory that cannot
 * be watched is logged and left out. */
static int watch_dir(struct xs_watch *w, struct wdir **list, const char *dir)
{
    if (!dir || find_dir(*list, dir))
        return 0;
    struct wdir *d = calloc(1, sizeof *d);
    if (!d || !(d->path = strdup(dir))) {
        free(d);
        return XS_ENOMEM;
    }
    d->w = w;
    uv_fs_event_init(w->loop, &d->h);
    int rc = uv_fs_event_start(&d->h, on_fs_event, dir, 0);
    if (rc < 0) {
        xs_log(XS_LOG_WARN, "policy.watch", "dir=%s result=unwatched reason=\"%s\"", dir,
               uv_strerror(rc));
        d->h.data = w;
        w->handles_open++;
        uv_close((uv_handle_t *)&d->h, on_handle_closed);
        return 0;
    }
    w->handles_open++;
    d->next = *list;
    *list = d;
    return 0;
}

static void close_dirs(struct xs_watch *w, struct wdir *list)
{
    while (list) {
        struct wdir *next = list->next;
        list->h.data = w;
        uv_close((uv_handle_t *)&list->h, on_handle_closed);
        list = next;
    }
}

int xs_watch_set(struct xs_watch *w, const char *const *paths, size_t n, double debounce)
{
    if (n > WATCH_FILES_MAX)
        n = WATCH_FILES_MAX;
    free_files(w);
    w->debounce = debounce > 0 ? debounce : 0.5;
    w->files = n ? calloc(n, sizeof *w->files) : NULL;
    if (n && !w->files)
        return XS_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!paths[i])
            continue;
        rc = fill_file(&w->files[w->n_files++], paths[i]);
    }
    /* The new watches go on before the old ones close, so a directory in
     * both keeps its inotify watch and no event between falls through. */
    struct wdir *fresh = NULL;
    for (size_t i = 0; i < w->n_files && rc == 0; i++) {
        struct wfile *f = &w->files[i];
        rc = watch_dir(w, &fresh, f->dir);
        if (rc == 0)
            rc = watch_dir(w, &fresh, f->rdir);
        if (rc == 0)
            rc = watch_dir(w, &fresh, f->rpath);
    }
    close_dirs(w, w->dirs);
    w->dirs = fresh;
    /* Recorded after the watches are armed: a change from here on either
     * shows in the fingerprint or raises an event, never neither. */
    size_t n_dirs = 0;
    for (struct wdir *d = fresh; d; d = d->next)
        n_dirs++;
    for (size_t i = 0; i < w->n_files; i++)
        w->files[i].fp = fingerprint(w->files[i].path);
    if (rc != 0) {
        xs_log(XS_LOG_ERROR, "policy.watch", "result=failed reason=\"%s\"", xs_strerror(rc));
        return rc;
    }
    xs_log(XS_LOG_INFO, "policy.watch", "result=armed files=%zu dirs=%zu debounce=%.3f",
           w->n_files, n_dirs, w->debounce);
    return 0;
}

void xs_watch_close(struct xs_watch *w)
{
    if (w->closing)
        return;
    w->closing = 1;
    close_dirs(w, w->dirs);
    w->dirs = NULL;
    uv_close((uv_handle_t *)&w->timer, on_handle_closed);
}
