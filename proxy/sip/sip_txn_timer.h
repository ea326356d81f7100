/* The transaction layer's timers: FIFO queues under one libuv timer.
 *
 * Every entry in one queue waits the same time (Timer J, Timer F, or one
 * interval of Timer E), so a queue in the order entries were pushed is also
 * in the order they expire: pushing is O(1) at the tail, cancelling is O(1)
 * (the entries are doubly linked), and the next expiry of the whole layer is
 * the earliest of the few queue heads. One uv_timer_t for the layer fires at
 * that head; a million pending transactions cost a million list nodes, not a
 * million libuv handles to open, start, stop and close.
 *
 * Timer E's doubling intervals (T1, 2*T1, ... up to T2) fit the same scheme
 * with one queue per interval: with RFC 3261's T1 = 500 ms and T2 = 4 s that
 * is four queues, and a retransmission moves the entry from one queue's head
 * to the next queue's tail. A timing wheel would also be O(1), but it rounds
 * deadlines to its tick and walks empty slots; with so few distinct
 * timeouts the queues are exact and cost nothing while idle.
 *
 * Internal to proxy/sip/ (xs__ prefix). */
#ifndef XS_SIP_TXN_TIMER_H
#define XS_SIP_TXN_TIMER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct xs__sip_tq;

/* Embedded in whatever waits; q is NULL while it is in no queue. */
struct xs__sip_tent {
    struct xs__sip_tent *prev, *next;
    struct xs__sip_tq *q;
    uint64_t deadline; /* ms, on the clock the entry was pushed with */
};

struct xs__sip_tq {
    struct xs__sip_tent *head, *tail;
    size_t count;
    uint64_t timeout; /* ms, at least 1 */
    int id;           /* the owner's name for the queue, handed back on expiry */
};

/* One expired entry, already out of its queue; the callback may push it
 * (or anything else) into any queue, or free it. */
typedef void (*xs__sip_expire_fn)(void *ud, int queue_id, struct xs__sip_tent *e);

#define XS__SIP_CLOCK_QUEUES 16

struct xs__sip_clock {
    struct xs__sip_tq qs[XS__SIP_CLOCK_QUEUES];
    size_t n;
    xs__sip_expire_fn expire;
    void *ud;
    /* NULL for a clock driven by hand (tests): then nothing is armed and
     * time passes only through xs__sip_clock_run. */
    uv_loop_t *loop;
    /* Made on first use, so a clock that never ran leaves no handle to
     * close (a side that fails to start is freed at once). */
    uv_timer_t timer;
    int has_timer;
    uint64_t armed_at; /* deadline the timer is set for; UINT64_MAX when stopped */
    void (*closed)(void *ud);
};

/* Sets up an empty clock (c is the caller's memory). With a loop, the
 * clock's timer is a libuv handle once anything was pushed: close the
 * clock with xs__sip_clock_close. */
void xs__sip_clock_init(struct xs__sip_clock *c, uv_loop_t *loop, xs__sip_expire_fn fn, void *ud);
/* Adds a queue whose entries wait `timeout_ms` (0 is taken as 1); returns
 * it (borrowed from c), or NULL when XS__SIP_CLOCK_QUEUES are in use. */
struct xs__sip_tq *xs__sip_clock_queue(struct xs__sip_clock *c, int id, uint64_t timeout_ms);
/* Queues e (in no queue) to expire at now + q->timeout, and arms the timer
 * when that comes before what it is set for. */
void xs__sip_clock_push(struct xs__sip_clock *c, struct xs__sip_tq *q, struct xs__sip_tent *e,
                        uint64_t now);
/* Queues e (in no queue) at q's tail with deadline now + q->timeout, and
 * nothing else: for a queue no clock runs, used as a plain ordered list. */
void xs__sip_tq_append(struct xs__sip_tq *q, struct xs__sip_tent *e, uint64_t now);
/* Takes e out of its queue; nothing when it is in none. The timer is left
 * as it is: firing early costs one empty run. */
void xs__sip_tent_cancel(struct xs__sip_tent *e);
/* Expires every entry due at `now`, earliest first across all queues, and
 * returns how many. Does not arm the timer (xs__sip_clock_arm does). */
size_t xs__sip_clock_run(struct xs__sip_clock *c, uint64_t now);
/* Sets the timer for the earliest deadline left, or stops it. */
void xs__sip_clock_arm(struct xs__sip_clock *c);
/* The earliest deadline of any queued entry, or UINT64_MAX. */
uint64_t xs__sip_clock_next(const struct xs__sip_clock *c);
/* Closes the timer; closed(c->ud) runs from its close callback, or at once
 * when there never was one. Entries still queued are left to the owner. */
void xs__sip_clock_close(struct xs__sip_clock *c, void (*closed)(void *ud));

#endif
