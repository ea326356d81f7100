/* `xsgw validate`'s judgement: the steps a probe reports (xs_xmpp_probe,
 * xs_sip_ping) become lines an operator reads, each failure with a hint that
 * names the classic mistake it looks like, and one verdict. No I/O but the
 * rendering into a FILE, so recorded report sequences test it (and it holds
 * what it keeps: the reports' strings are borrowed for the call only). */
#ifndef XS_VALIDATE_DIAGNOSE_H
#define XS_VALIDATE_DIAGNOSE_H

#include <stdio.h>

#include "tls/tls.h"
#include "xmpp/xmpp_side.h"

/* A run keeps at most this many steps; one more says the rest was cut. */
#define XS_DIAG_MAX_STEPS 24

struct xs_diag;

/* `subject` is the XMPP domain probed, or the SIP next hop's expected name
 * for --sip; `ours` the names our own certificate presents (for the hint
 * when a peer refuses it; NULL or "": unknown). Both copied. Returns 0, or
 * XS_ENOMEM. Freed with xs_diag_free. */
int xs_diag_new(const char *subject, const char *ours, struct xs_diag **out);
void xs_diag_free(struct xs_diag *d);

/* One report of xs_xmpp_probe, in the order they came (borrowed). */
void xs_diag_probe(struct xs_diag *d, const struct xs_probe_report *r);

/* xs_sip_ping's answer (arguments as its callback's, borrowed); `tls`: the
 * next hop's transport is TLS. */
void xs_diag_sip(struct xs_diag *d, int tls, int status, const char *reason,
                 const struct xs_tls_peer *peer, const char *tls_desc);

/* A step of the command's own (the dialback listener, the next hop's
 * resolution). `hint` may be NULL; all borrowed. */
void xs_diag_step(struct xs_diag *d, const char *step, int ok, const char *detail,
                  const char *hint);

/* A step that may matter, printed "warn" with its hint, not counted as a
 * problem: what depends on it fails on its own if it does. */
void xs_diag_warn(struct xs_diag *d, const char *step, const char *detail, const char *hint);

/* The run failed as a whole (no XS_PROBE_DONE in time, say): a failed
 * step "verdict" with `detail` when nothing failed before. */
void xs_diag_abort(struct xs_diag *d, const char *detail);

/* Problems found so far (failed steps that count; warnings do not), and the verdict:
 * 1 pass (the run ended authenticated, or the SIP edge answered 2xx, and
 * no step failed), 0 fail. */
int xs_diag_problems(const struct xs_diag *d);
int xs_diag_passed(const struct xs_diag *d);

/* Borrowed views of step i (< xs_diag_count), for tests. hint is "" when
 * none. */
size_t xs_diag_count(const struct xs_diag *d);
const char *xs_diag_step_name(const struct xs_diag *d, size_t i);
int xs_diag_step_ok(const struct xs_diag *d, size_t i);
const char *xs_diag_step_detail(const struct xs_diag *d, size_t i);
const char *xs_diag_step_hint(const struct xs_diag *d, size_t i);

/* The report: lines "  ok   STEP: DETAIL" / "  FAIL STEP: DETAIL" (and
 * "  warn" for a certificate failure the partner's rules did not need, the
 * stream having authenticated otherwise; "  --  " for no SRV record), a
 * "         hint: ..." under each failure that has one, then
 * "verdict: PASS|FAIL (N problems)". */
void xs_diag_print(const struct xs_diag *d, FILE *out);
/* The same as one JSON object on one line:
 * {"domain":..., "steps":[{"step","ok","detail","hint"}], "verdict":...}
 * (hint null when none; ok false for a warning too; verdict "PASS" or
 * "FAIL"). */
void xs_diag_json(const struct xs_diag *d, FILE *out);

#endif
