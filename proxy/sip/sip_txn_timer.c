/* FIFO timer queues under one libuv timer (see sip_txn_timer.h). */
#include "sip/sip_txn_timer.h"

#include <string.h>

static void on_timer(uv_timer_t *t)
{
    struct xs__sip_clock *c = t->data;
    uint64_t now = uv_now(c->loop);
    c->armed_at = UINT64_MAX;
    xs__sip_clock_run(c, now);
    xs__sip_clock_arm(c);
}

void xs__sip_clock_init(struct xs__sip_clock *c, uv_loop_t *loop, xs__sip_expire_fn fn, void *ud)
{
    memset(c, 0, sizeof *c);
    c->expire = fn;
    c->ud = ud;
    c->loop = loop;
    c->armed_at = UINT64_MAX;
}

struct xs__sip_tq *xs__sip_clock_queue(struct xs__sip_clock *c, int id, uint64_t timeout_ms)
{
    if (c->n >= XS__SIP_CLOCK_QUEUES)
        return NULL;
    struct xs__sip_tq *q = &c->qs[c->n++];
    q->id = id;
    /* A zero timeout could expire an entry that its own expiry pushed back
     * in, within the same run, forever. */
    q->timeout = timeout_ms ? timeout_ms : 1;
    return q;
}

/* libuv timers count from the loop's time, which the deadline is on. */
static void start_at(struct xs__sip_clock *c, uint64_t deadline)
{
    uint64_t now = uv_now(c->loop);
    if (!c->has_timer) {
        uv_timer_init(c->loop, &c->timer);
        c->timer.data = c;
        c->has_timer = 1;
    }
    c->armed_at = deadline;
    uv_timer_start(&c->timer, on_timer, deadline > now ? deadline - now : 0, 0);
}

uint64_t xs__sip_clock_next(const struct xs__sip_clock *c)
{
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < c->n; i++)
        if (c->qs[i].head && c->qs[i].head->deadline < next)
            next = c->qs[i].head->deadline;
    return next;
}

void xs__sip_clock_arm(struct xs__sip_clock *c)
{
    if (!c->loop)
        return;
    uint64_t next = xs__sip_clock_next(c);
    if (next == UINT64_MAX) {
        if (c->has_timer)
            uv_timer_stop(&c->timer);
        c->armed_at = UINT64_MAX;
        return;
    }
    if (next != c->armed_at)
        start_at(c, next);
}

void xs__sip_tq_append(struct xs__sip_tq *q, struct xs__sip_tent *e, uint64_t now)
{
    e->q = q;
    e->deadline = now + q->timeout;
    e->next = NULL;
    e->prev = q->tail;
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->count++;
}

void xs__sip_clock_push(struct xs__sip_clock *c, struct xs__sip_tq *q, struct xs__sip_tent *e,
                        uint64_t now)
{
    xs__sip_tq_append(q, e, now);
    /* Within one queue deadlines only grow, so only an entry that became
     * a head can be the clock's earliest. */
    if (c->loop && q->head == e && e->deadline < c->armed_at)
        start_at(c, e->deadline);
}

void xs__sip_tent_cancel(struct xs__sip_tent *e)
{
    struct xs__sip_tq *q = e->q;
    if (!q)
        return;
    if (e->prev)
        e->prev->next = e->next;
    else
        q->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        q->tail = e->prev;
    q->count--;
    e->q = NULL;
    e->prev = e->next = NULL;
}

size_t xs__sip_clock_run(struct xs__sip_clock *c, uint64_t now)
{
    size_t fired = 0;
    for (;;) {
        struct xs__sip_tq *due = NULL;
        for (size_t i = 0; i < c->n; i++) {
            struct xs__sip_tent *h = c->qs[i].head;
            if (h && h->deadline <= now && (!due || h->deadline < due->head->deadline))
                due = &c->qs[i];
        }
        if (!due)
            return fired;
        struct xs__sip_tent *e = due->head;
        xs__sip_tent_cancel(e);
        fired++;
        c->expire(c->ud, due->id, e);
    }
}

static void on_closed(uv_handle_t *h)
{
    struct xs__sip_clock *c = h->data;
    if (c->closed)
        c->closed(c->ud);
}

void xs__sip_clock_close(struct xs__sip_clock *c, void (*closed)(void *ud))
{
    c->closed = closed;
    c->armed_at = UINT64_MAX;
    if (c->has_timer)
        uv_close((uv_handle_t *)&c->timer, on_closed);
    else if (closed)
        closed(c->ud);
}
