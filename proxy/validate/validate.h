/* `xsgw validate [--policy FILE] [--json] [DOMAIN | --sip]`: the command's
 * own decisions, apart from the probes it runs (xs_xmpp_probe, xs_sip_ping):
 * its arguments, what it checks, how long it may take, the step that says
 * how dialback can be answered, and the combined report and exit status. */
#ifndef XS_VALIDATE_VALIDATE_H
#define XS_VALIDATE_VALIDATE_H

#include <stdio.h>

#include "policy/policy.h"
#include "validate/diagnose.h"

/* Exit statuses. */
#define XS_VALIDATE_PASS 0
#define XS_VALIDATE_FAIL 1
#define XS_VALIDATE_USAGE 2

struct xs_validate_args {
    const char *policy;  /* borrowed from argv; NULL: the caller's default */
    const char *lua_dir; /* --lua-dir, the same way */
    int json;
    int sip;            /* --sip */
    const char *domain; /* borrowed from argv; NULL with --sip or no argument */
};

/* Parses the arguments after "validate" (argv[0] is "validate"). On a
 * usage error writes one line saying why to `err` and returns XS_EINVAL. */
int xs_validate_parse(int argc, char **argv, struct xs_validate_args *out, FILE *err);

/* What a run checks, in order: "--sip" first when asked or when no domain
 * is given (and the policy has a SIP next hop), then the domain, or every
 * partner named in the policy but "*". A domain that is no partner and
 * has no "*" to fall under is refused: `err` says why and XS_EINVAL comes
 * back. `subjects` (up to `max`) are borrowed from args and cfg; *n is
 * their number (XS_ELIMIT when more than `max`). */
int xs_validate_subjects(const struct xs_validate_args *args, const struct xs_policy *policy,
                         const char **subjects, size_t max, size_t *n, FILE *err);

/* The bound on the whole run: xmpp.connect_timeout + 5 s, in ms. */
unsigned long xs_validate_timeout_ms(const struct xs_config *cfg);

/* The first step of an XMPP check: how the peer's dialback verification
 * gets answered. `taken`: xmpp.listen's port is in use (the gateway runs
 * there). Taken without a dialback_secret fails: the running gateway's keys
 * are its own random secret's, so the peer's db:verify cannot succeed. */
void xs_validate_listener_step(struct xs_diag *d, const struct xs_config *cfg, int taken);

/* Prints every run's report (text: each under a "validate SUBJECT" line;
 * JSON: one object per line) and returns the exit status: PASS when every
 * run passed. `diags` borrowed. */
int xs_validate_report(struct xs_diag *const *diags, const char *const *subjects, size_t n,
                       int json, FILE *out);

#endif
