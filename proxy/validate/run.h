/* The running part of `xsgw validate`: the subjects checked one after the
 * other on a loop, each bounded in time, their reports fed to a diagnosis,
 * and the combined report printed at the end. The probes come through
 * function pointers (in the gateway, xs_xmpp_probe and xs_sip_ping on the
 * started sides), so recorded or withheld answers test the sequencing. */
#ifndef XS_VALIDATE_RUN_H
#define XS_VALIDATE_RUN_H

#include <stdio.h>
#include <uv.h>

#include "sip/sip.h"
#include "validate/validate.h"
#include "xmpp/xmpp_side.h"

struct xs_validate_target {
    const struct xs_config *cfg; /* borrowed for the run */
    const char *local;           /* our domain the XMPP probes start from */
    const char *ours;            /* our certificate's names, for hints ("" unknown) */
    int listener_taken;          /* xmpp.listen was in use (see xs_validate_listener_step) */
    void *xmpp;                  /* handed to xmpp_probe */
    int (*xmpp_probe)(void *xmpp, const char *local, const char *remote, xs_probe_cb cb, void *ud);
    void *sip; /* handed to sip_ping */
    int (*sip_ping)(void *sip, xs_sip_ping_cb cb, void *ud);
};

struct xs_validate_run;

/* Starts checking `subjects` ("--sip" or a domain; borrowed, as `t`'s
 * strings, until done runs). Each gets xs_validate_timeout_ms(cfg); one that
 * has not finished by then fails with "no answer within N s" and later
 * reports for it are ignored. Once the last finishes, the report is printed
 * to `out` and done(ud, exit status) runs (maybe inside a probe's callback,
 * or before this returns). The caller then closes whatever
 * the probes run on (so no report can come any more) and only then calls
 * xs_validate_run_free. Returns 0 or XS_ENOMEM. */
int xs_validate_run_start(uv_loop_t *loop, const struct xs_validate_target *t,
                          const char *const *subjects, size_t n, int json, FILE *out,
                          void (*done)(void *ud, int status), void *ud,
                          struct xs_validate_run **run);
/* Frees the run (its timer closes first: the memory goes in a close callback). */
void xs_validate_run_free(struct xs_validate_run *run);

#endif
