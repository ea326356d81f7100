/* One subject at a time: a probe toward a partner leaves its stream on the
 * side until it finishes, and the report reads best in order. A per-subject
 * slot is what the probe's callback gets, so a report that comes after its
 * subject timed out finds the slot finished and is dropped. */
#include "validate/run.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

struct slot {
    struct xs_validate_run *run;
    struct xs_diag *diag;
    int finished;
};

struct xs_validate_run {
    uv_timer_t timer;
    struct xs_validate_target t;
    const char *const *subjects;
    size_t n, current;
    int json;
    FILE *out;
    void (*done)(void *ud, int status);
    void *ud;
    struct slot *slots;
};

static void next(struct xs_validate_run *r);

static void finish(struct slot *s)
{
    struct xs_validate_run *r = s->run;
    s->finished = 1;
    uv_timer_stop(&r->timer);
    r->current++;
    next(r);
}

static void on_probe(void *ud, const struct xs_probe_report *rep)
{
    struct slot *s = ud;
    if (s->finished)
        return;
    xs_diag_probe(s->diag, rep);
    if (rep->step == XS_PROBE_DONE)
        finish(s);
}

static void on_ping(void *ud, int status, const char *reason, const struct xs_tls_peer *peer,
                    const char *tls_desc)
{
    struct slot *s = ud;
    if (s->finished)
        return;
    int tls = s->run->t.cfg->sip_next_hop.transport == XS_SIP_TLS;
    xs_diag_sip(s->diag, tls, status, reason, peer, tls_desc);
    finish(s);
}

static void on_timeout(uv_timer_t *h)
{
    struct xs_validate_run *r = h->data;
    char why[96];
    snprintf(why, sizeof(why), "no answer within %lu s",
             (xs_validate_timeout_ms(r->t.cfg) + 999) / 1000);
    struct slot *s = &r->slots[r->current];
    xs_diag_abort(s->diag, why);
    finish(s);
}

static void report(struct xs_validate_run *r)
{
    struct xs_diag **diags = calloc(r->n ? r->n : 1, sizeof(*diags));
    int status = XS_VALIDATE_FAIL;
    if (diags) {
        for (size_t i = 0; i < r->n; i++)
            diags[i] = r->slots[i].diag;
        status = xs_validate_report(diags, r->subjects, r->n, r->json, r->out);
        free(diags);
    }
    fflush(r->out);
    r->done(r->ud, status);
}

/* Starts the current subject, or reports when none is left. A probe that
 * cannot even start fails its subject at once. */
static void next(struct xs_validate_run *r)
{
    while (r->current < r->n) {
        struct slot *s = &r->slots[r->current];
        const char *subject = r->subjects[r->current];
        int rc;
        uv_timer_start(&r->timer, on_timeout, xs_validate_timeout_ms(r->t.cfg), 0);
        if (!strcmp(subject, "--sip")) {
            rc = r->t.sip_ping(r->t.sip, on_ping, s);
        } else {
            xs_validate_listener_step(s->diag, r->t.cfg, r->t.listener_taken);
            rc = r->t.xmpp_probe(r->t.xmpp, r->t.local, subject, on_probe, s);
        }
        /* Started, or finished already inside the call (which went on
         * with the next subject itself). */
        if (rc == 0 || s->finished)
            return;
        char why[128];
        snprintf(why, sizeof(why), "the probe could not start: %s", xs_strerror(rc));
        xs_diag_abort(s->diag, why);
        s->finished = 1;
        uv_timer_stop(&r->timer);
        r->current++;
    }
    report(r);
}

int xs_validate_run_start(uv_loop_t *loop, const struct xs_validate_target *t,
                          const char *const *subjects, size_t n, int json, FILE *out,
                          void (*done)(void *ud, int status), void *ud,
                          struct xs_validate_run **run)
{
    struct xs_validate_run *r = calloc(1, sizeof(*r));
    if (!r)
        return XS_ENOMEM;
    r->slots = calloc(n ? n : 1, sizeof(*r->slots));
    if (!r->slots)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const struct xs_config *cfg = t->cfg;
        /* The edge is named by the identity it must present. */
        const char *edge = cfg->sip_tls_name ? cfg->sip_tls_name : cfg->sip_next_hop.host;
        const char *subject = strcmp(subjects[i], "--sip") ? subjects[i] : edge;
        r->slots[i].run = r;
        if (xs_diag_new(subject, t->ours, &r->slots[i].diag) != 0)
            goto fail;
    }
    r->t = *t;
    r->subjects = subjects;
    r->n = n;
    r->json = json;
    r->out = out;
    r->done = done;
    r->ud = ud;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    *run = r;
    next(r);
    return 0;

fail:
    for (size_t i = 0; r->slots && i < n; i++)
        xs_diag_free(r->slots[i].diag);
    free(r->slots);
    free(r);
    return XS_ENOMEM;
}

static void on_closed(uv_handle_t *h)
{
    struct xs_validate_run *r = h->data;
    for (size_t i = 0; i < r->n; i++)
        xs_diag_free(r->slots[i].diag);
    free(r->slots);
    free(r);
}

void xs_validate_run_free(struct xs_validate_run *r)
{
    uv_close((uv_handle_t *)&r->timer, on_closed);
}
