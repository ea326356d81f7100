#include "event.h"
#include "core/err.h"
#include "core/metrics.h"

#include <ctype.h>
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
    ev->arrived = xs_metrics_now();
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
    free(ev->show);
    free(ev->status);
    free(ev->basic);
    free(ev->note);
    free(ev->activities);
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
    d->arrived = ev->arrived;
    d->secure = ev->secure;
    d->auth = ev->auth;
    d->priority = ev->priority;
    d->availability = ev->availability;
    d->action = ev->action;
    if (xs_event_set(&d->from, ev->from) || xs_event_set(&d->to, ev->to) ||
        xs_event_set(&d->id, ev->id) || xs_event_set(&d->thread, ev->thread) ||
        xs_event_set(&d->subject, ev->subject) || xs_event_set(&d->lang, ev->lang) ||
        xs_event_set(&d->type, ev->type) || xs_event_set(&d->body, ev->body) ||
        xs_event_set(&d->show, ev->show) || xs_event_set(&d->status, ev->status) ||
        xs_event_set(&d->basic, ev->basic) || xs_event_set(&d->note, ev->note) ||
        xs_event_set(&d->activities, ev->activities)) {
        xs_event_free(d);
        return NULL;
    }
    return d;
}

static int addr_ok(const char *a, size_t n)
{
    if (n < 3 || n > XS_COND_ADDR_MAX)
        return 0;
    size_t colon = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '"')
            return 0;
        if (c == ':' && !colon)
            colon = i;
    }
    if (colon == 0 || colon + 1 == n || !isalpha((unsigned char)a[0]))
        return 0;
    for (size_t i = 1; i < colon; i++)
        if (!isalnum((unsigned char)a[i]) && !strchr("+-.", a[i]))
            return 0;
    return 1;
}

const char *xs_cond_text_addr(const char *text, const char **addr, size_t *addr_len)
{
    *addr = NULL;
    *addr_len = 0;
    if (!text)
        return "";
    if (text[0] != '<')
        return text;
    const char *end = strchr(text + 1, '>');
    if (!end || !addr_ok(text + 1, (size_t)(end - text - 1)))
        return text;
    *addr = text + 1;
    *addr_len = (size_t)(end - text - 1);
    return end[1] == ' ' ? end + 2 : end + 1;
}

char *xs_cond_text_with_addr(const char *addr, size_t addr_len, const char *text)
{
    if (!addr || !addr_ok(addr, addr_len))
        return NULL;
    size_t tl = text ? strlen(text) : 0;
    char *out = malloc(addr_len + tl + 4);
    if (!out)
        return NULL;
    out[0] = '<';
    memcpy(out + 1, addr, addr_len);
    out[addr_len + 1] = '>';
    size_t o = addr_len + 2;
    if (tl) {
        out[o++] = ' ';
        memcpy(out + o, text, tl);
        o += tl;
    }
    out[o] = '\0';
    return out;
}
