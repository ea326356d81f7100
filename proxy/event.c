#include "event.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    const char *type;
} conds[XS_COND_COUNT_] = {[XS_COND_NONE] = {NULL, NULL},
#define XS_COND_ROW(id, n, t) [XS_COND_##id] = {n, t},
                           XS_COND_MAP(XS_COND_ROW)
#undef XS_COND_ROW
};

const char *xs_cond_name(enum xs_cond c)
{
    return (c > 0 && c < XS_COND_COUNT_) ? conds[c].name : NULL;
}

const char *xs_cond_type(enum xs_cond c)
{
    return (c > 0 && c < XS_COND_COUNT_) ? conds[c].type : NULL;
}

enum xs_cond xs_cond_from_name(const char *name)
{
    if (name)
        for (int c = 1; c < XS_COND_COUNT_; c++)
            if (strcmp(conds[c].name, name) == 0)
                return (enum xs_cond)c;
    return XS_COND_UNDEFINED_CONDITION;
}

struct xs_event *xs_event_new(enum xs_event_kind kind, enum xs_side_id origin)
{
    /* The serial only correlates log lines; one counter per process is enough
     * and holds no state anything depends on. */
    static uint64_t next_serial;
    struct xs_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        abort();
    ev->kind = kind;
    ev->origin = origin;
    ev->serial = ++next_serial;
    return ev;
}

void xs_event_free(struct xs_event *ev)
{
    if (!ev)
        return;
    free(ev->from);
    free(ev->to);
    free(ev->id);
    free(ev->thread);
    free(ev->subject);
    free(ev->lang);
    free(ev->type);
    free(ev->body);
    free(ev);
}

int xs_event_setn(char **field, const char *value, size_t len)
{
    char *copy = NULL;
    if (value) {
        copy = malloc(len + 1);
        if (!copy)
            return XS_ENOMEM;
        memcpy(copy, value, len);
        copy[len] = '\0';
    }
    free(*field);
    *field = copy;
    return 0;
}

int xs_event_set(char **field, const char *value)
{
    return xs_event_setn(field, value, value ? strlen(value) : 0);
}

struct xs_event *xs_event_dup(const struct xs_event *ev)
{
    struct xs_event *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->kind = ev->kind;
    d->origin = ev->origin;
    d->serial = ev->serial;
    d->secure = ev->secure;
    d->auth = ev->auth;
    if (xs_event_set(&d->from, ev->from) || xs_event_set(&d->to, ev->to) ||
        xs_event_set(&d->id, ev->id) || xs_event_set(&d->thread, ev->thread) ||
        xs_event_set(&d->subject, ev->subject) || xs_event_set(&d->lang, ev->lang) ||
        xs_event_set(&d->type, ev->type) || xs_event_set(&d->body, ev->body)) {
        xs_event_free(d);
        return NULL;
    }
    return d;
}
