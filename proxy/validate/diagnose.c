/* The hints are guesses from what was seen, in the order a peer is reached:
 * DNS, connect, features, TLS, certificate, authentication. They name the
 * mistake operators make most often for each failure (see readme), and say
 * what was seen so a wrong guess is still useful. */
#include "validate/diagnose.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

#define MAX_TARGETS 8

/* STEP_WARN: a failure the partner's rules did not need (a certificate that
 * fails for a partner authenticated by dialback under verify = "none"). */
enum kind { STEP_OK, STEP_FAIL, STEP_INFO, STEP_WARN };

struct step {
    char name[96];
    enum kind kind;
    int counts; /* a problem of its own (a failure after another is not) */
    char detail[384];
    char hint[1024];
};

struct xs_diag {
    char subject[256];
    char ours_note[300];            /* " (ours names X)", or "" when they are unknown */
    char targets[MAX_TARGETS][256]; /* SRV targets seen, without the final dot */
    size_t ntargets;
    int tls_seen; /* a TLS step came (whatever its outcome) */
    int failed;   /* some step failed */
    int done;     /* the run's end was reported */
    int done_ok;
    int cut; /* steps beyond XS_DIAG_MAX_STEPS were dropped */
    size_t nsteps;
    struct step steps[XS_DIAG_MAX_STEPS + 1];
};

/* Copies as much of src as fits; reports are one line, a cut one still reads. */
static void copy(char *dst, size_t size, const char *src)
{
    size_t len = strlen(src);
    if (len >= size)
        len = size - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

int xs_diag_new(const char *subject, const char *ours, struct xs_diag **out)
{
    struct xs_diag *d = calloc(1, sizeof(*d));
    if (!d)
        return XS_ENOMEM;
    copy(d->subject, sizeof(d->subject), subject ? subject : "");
    if (ours && *ours)
        snprintf(d->ours_note, sizeof(d->ours_note), " (ours names %.255s)", ours);
    *out = d;
    return 0;
}

void xs_diag_free(struct xs_diag *d)
{
    free(d);
}

static struct step *add(struct xs_diag *d, const char *name, enum kind kind, const char *detail)
{
    if (d->nsteps >= XS_DIAG_MAX_STEPS) {
        /* The last slot says the run went on longer than we keep. */
        struct step *s = &d->steps[XS_DIAG_MAX_STEPS];
        if (!d->cut) {
            d->cut = 1;
            snprintf(s->name, sizeof(s->name), "report");
            s->kind = STEP_INFO;
            snprintf(s->detail, sizeof(s->detail), "more than %d steps; the rest is left out",
                     XS_DIAG_MAX_STEPS);
        }
        return NULL;
    }
    struct step *s = &d->steps[d->nsteps++];
    memset(s, 0, sizeof(*s));
    copy(s->name, sizeof(s->name), name);
    s->kind = kind;
    copy(s->detail, sizeof(s->detail), detail ? detail : "");
    if (kind == STEP_FAIL) {
        s->counts = 1;
        d->failed = 1;
    }
    return s;
}

static int has(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n))
            return 1;
    return 0;
}

/* Whether `name` is one of the comma-separated identities in `list`. */
static int lists(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;
    while (n && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ",");
        while (len && p[len - 1] == ' ')
            len--;
        if (len == n && !strncasecmp(p, name, n))
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

/* xs_xmpp_probe says "_xmpp-server._tcp.D: 0 5 5269 target" (or ": no
 * records", or the DNS failure), or "static route host:port (no DNS)". */
static void srv_report(struct xs_diag *d, const struct xs_probe_report *r)
{
    const char *detail = r->detail && *r->detail ? r->detail : "none";
    const char *sep = strstr(detail, ": ");
    char name[320];
    if (!strncmp(detail, "_xmpp", 5) && sep) {
        snprintf(name, sizeof(name), "SRV %.*s", (int)(sep - detail), detail);
        detail = sep + 2;
    } else if (!strncmp(detail, "static route", 12)) {
        snprintf(name, sizeof(name), "route");
    } else {
        snprintf(name, sizeof(name), "SRV %s._tcp.%s", r->direct ? "_xmpps-server" : "_xmpp-server",
                 d->subject);
    }
    /* No SRV record is allowed (A/AAAA on 5269 follows), and a DNS failure
     * shows again where it matters, in the connection: neither counts. */
    add(d, name, r->ok ? STEP_OK : STEP_INFO, detail);
    unsigned prio, weight, port;
    char target[256];
    if (!r->ok || d->ntargets == MAX_TARGETS ||
        sscanf(detail, "%u %u %u %255s", &prio, &weight, &port, target) != 4)
        return;
    size_t len = strlen(target);
    if (len && target[len - 1] == '.')
        target[len - 1] = '\0';
    snprintf(d->targets[d->ntargets++], sizeof(d->targets[0]), "%s", target);
}

static void connect_report(struct xs_diag *d, const struct xs_probe_report *r)
{
    const char *detail = r->detail ? r->detail : "";
    struct step *s =
        add(d, r->direct ? "connect (Direct TLS)" : "connect", r->ok ? STEP_OK : STEP_FAIL, detail);
    if (!s || r->ok)
        return;
    /* The address is what comes before the error: "host:port: why". */
    char addr[256];
    const char *end = NULL;
    for (const char *p = strstr(detail, ": "); p; p = strstr(p + 1, ": "))
        end = p;
    size_t len = end ? (size_t)(end - detail) : strlen(detail);
    snprintf(addr, sizeof(addr), "%.*s", (int)(len < 255 ? len : 255), detail);
    if (has(detail, "refused"))
        snprintf(s->hint, sizeof(s->hint),
                 "wrong port or interface: nothing accepts connections at %s (connection "
                 "refused); check the port in the SRV record and the interface the server "
                 "listens on",
                 addr);
    else if (has(detail, "timed out") || has(detail, "timeout"))
        snprintf(s->hint, sizeof(s->hint),
                 "wrong port or interface: %s did not answer before the timeout; a firewall "
                 "drops the connection, or the server listens on another address",
                 addr);
}

static void features_report(struct xs_diag *d, const struct xs_probe_report *r)
{
    const char *detail = r->detail ? r->detail : "";
    struct step *s = add(d, "features", r->ok ? STEP_OK : STEP_FAIL, detail);
    if (!s || r->ok)
        return;
    if (!d->tls_seen && !has(detail, "starttls"))
        snprintf(s->hint, sizeof(s->hint),
                 "TLS required by one side only: we require TLS with %s and it offers no "
                 "STARTTLS; enable TLS for server-to-server there, or set tls = \"optional\" "
                 "for this partner",
                 d->subject);
}

static void tls_report(struct xs_diag *d, const struct xs_probe_report *r, int direct)
{
    const char *detail = r->detail ? r->detail : "";
    d->tls_seen = 1;
    struct step *s = add(d, "TLS", r->ok ? STEP_OK : STEP_FAIL, detail);
    if (!s || r->ok)
        return;
    if (has(detail, "alert") && has(detail, "certificate"))
        snprintf(s->hint, sizeof(s->hint),
                 "the peer refused our certificate during the handshake: it does not trust "
                 "ours%s; give it our CA",
                 d->ours_note);
    else if (direct)
        snprintf(s->hint, sizeof(s->hint),
                 "Direct TLS to a port that does not speak TLS from the first byte: "
                 "_xmpps-server._tcp.%s must point to a Direct TLS port (XEP-0368), not to "
                 "the STARTTLS port",
                 d->subject);
}

/* The hint for a certificate that failed for `subject`. */
static void cert_hint(const struct xs_diag *d, const struct xs_tls_peer *p, char *out, size_t size)
{
    switch (p->chain) {
    case XS_TLS_CHAIN_OK:
        break;
    case XS_TLS_CHAIN_NONE:
        snprintf(out, size, "the peer presented no certificate: configure one for %s there",
                 d->subject);
        return;
    case XS_TLS_CHAIN_NO_CA:
        snprintf(out, size,
                 "no trust anchors: gateway.tls.ca is not set, so no certificate can be "
                 "verified");
        return;
    case XS_TLS_CHAIN_UNTRUSTED:
        snprintf(out, size,
                 "untrusted CA: the certificate (%s) is not issued by a CA in gateway.tls.ca "
                 "(self-signed, or another CA); add that CA, or have the peer use a "
                 "certificate from one we trust",
                 p->names);
        return;
    case XS_TLS_CHAIN_EXPIRED:
        snprintf(out, size, "expired certificate: %s; the peer must renew it", p->reason);
        return;
    case XS_TLS_CHAIN_FUTURE:
        snprintf(out, size,
                 "certificate not yet valid: %s; check the clocks here and on the peer, or "
                 "wait until it is",
                 p->reason);
        return;
    case XS_TLS_CHAIN_REVOKED:
        snprintf(out, size,
                 "revoked certificate: its CA revoked it (gateway.tls.crl); the "
                 "peer needs a new one");
        return;
    case XS_TLS_CHAIN_USAGE:
        snprintf(out, size,
                 "key usage: the certificate may not be used for this (its extended key "
                 "usage lacks serverAuth or clientAuth, which server-to-server needs both "
                 "ways)");
        return;
    case XS_TLS_CHAIN_BAD:
        snprintf(out, size, "the chain does not verify: %s", p->reason);
        return;
    }
    if (p->name_ok)
        return;
    for (size_t i = 0; i < d->ntargets; i++) {
        if (strcasecmp(d->targets[i], d->subject) && lists(p->names, d->targets[i])) {
            snprintf(out, size,
                     "SRV target without a matching certificate name: the certificate names "
                     "the SRV target %s, not the domain %s; the SRV target is no identity "
                     "(RFC 9525), so the certificate must name %s",
                     d->targets[i], d->subject, d->subject);
            return;
        }
    }
    snprintf(out, size,
             "certificate for the internal name: it names %s, which is neither %s nor an SRV "
             "target; the server presents its host's certificate instead of one for %s",
             p->names, d->subject, d->subject);
}

static void cert_report(struct xs_diag *d, const struct xs_probe_report *r)
{
    const struct xs_tls_peer *p = r->peer;
    const char *detail;
    if (!p)
        detail = r->detail ? r->detail : "no verdict";
    else if (r->ok)
        detail = p->names;
    else
        detail = p->reason[0] ? p->reason : p->names;
    struct step *s = add(d, "certificate", r->ok ? STEP_OK : STEP_FAIL, detail);
    if (s && !r->ok && p)
        cert_hint(d, p, s->hint, sizeof(s->hint));
}

static void sasl_required_hint(const struct xs_diag *d, struct step *s)
{
    snprintf(s->hint, sizeof(s->hint),
             "this partner has sasl = \"required\", and %s offers no SASL EXTERNAL to us: it "
             "does not trust our certificate%s, or does not do SASL EXTERNAL for servers",
             d->subject, d->ours_note);
}

static void auth_report(struct xs_diag *d, const struct xs_probe_report *r)
{
    const char *detail = r->detail ? r->detail : "";
    struct step *s = add(d, "authentication", r->ok ? STEP_OK : STEP_FAIL, detail);
    if (!s || r->ok)
        return;
    /* "METHOD RESULT: why", as xs_xmpp_probe says it. */
    if (has(detail, "does not offer SASL EXTERNAL"))
        sasl_required_hint(d, s);
    else if (!strncmp(detail, "dialback", 8) && has(detail, "dialback is off"))
        snprintf(s->hint, sizeof(s->hint),
                 "dialback = false for this partner, and SASL EXTERNAL did not authenticate "
                 "us: %s must accept our certificate%s (our CA among its trust anchors), or "
                 "allow dialback = true here",
                 d->subject, d->ours_note);
    else if (!strncmp(detail, "sasl", 4))
        snprintf(s->hint, sizeof(s->hint),
                 "SASL EXTERNAL refused by the peer: it does not trust our certificate%s; it "
                 "needs our CA, and a name in ours that is our domain",
                 d->ours_note);
    else if (!strncmp(detail, "dialback", 8))
        snprintf(s->hint, sizeof(s->hint),
                 "dialback failed: %s connects back to our domain (its _xmpp-server SRV or "
                 "address) to verify the key; that must reach this gateway, or one with the "
                 "same dialback_secret",
                 d->subject);
}

static void done_report(struct xs_diag *d, const struct xs_probe_report *r)
{
    const char *detail = r->detail ? r->detail : "";
    int earlier = d->failed;
    d->done = 1;
    d->done_ok = r->ok;
    if (r->ok) {
        for (size_t i = 0; i < d->nsteps; i++) {
            if (d->steps[i].kind == STEP_FAIL && !strcmp(d->steps[i].name, "certificate")) {
                d->steps[i].kind = STEP_WARN;
                d->steps[i].counts = 0;
            }
        }
    }
    struct step *s = add(d, "authenticated", r->ok ? STEP_OK : STEP_FAIL, detail);
    if (!s || r->ok)
        return;
    /* Its cause was already counted and explained. */
    if (earlier) {
        s->counts = 0;
        return;
    }
    int direct = d->nsteps >= 2 && !strcmp(d->steps[d->nsteps - 2].name, "connect (Direct TLS)");
    if (has(detail, "does not offer SASL EXTERNAL"))
        sasl_required_hint(d, s);
    else if (direct && !d->tls_seen)
        snprintf(s->hint, sizeof(s->hint),
                 "Direct TLS to a port that does not speak TLS from the first byte: "
                 "_xmpps-server._tcp.%s must point to a Direct TLS port (XEP-0368), not to "
                 "the STARTTLS port",
                 d->subject);
    else if (!d->tls_seen && (has(detail, "starttls") || has(detail, "does not offer TLS")))
        snprintf(s->hint, sizeof(s->hint),
                 "TLS required by one side only: we require TLS with %s and it offers no "
                 "STARTTLS; enable TLS there, or set tls = \"optional\" for this partner",
                 d->subject);
    else if (!d->tls_seen && (has(detail, "TLS is required") || has(detail, "policy-violation")))
        snprintf(s->hint, sizeof(s->hint),
                 "TLS required by one side only: %s closed the stream because we did not "
                 "start TLS; set tls = \"required\" (or \"optional\") for this partner",
                 d->subject);
}

void xs_diag_probe(struct xs_diag *d, const struct xs_probe_report *r)
{
    /* Nothing comes after XS_PROBE_DONE; a stray report is not believed. */
    if (d->done)
        return;
    switch (r->step) {
    case XS_PROBE_SRV:
        srv_report(d, r);
        break;
    case XS_PROBE_CONNECT:
        connect_report(d, r);
        break;
    case XS_PROBE_FEATURES:
        features_report(d, r);
        break;
    case XS_PROBE_TLS: {
        /* Direct TLS when the connection that preceded it was. */
        int direct = d->nsteps && !strcmp(d->steps[d->nsteps - 1].name, "connect (Direct TLS)");
        tls_report(d, r, direct);
        break;
    }
    case XS_PROBE_CERT:
        cert_report(d, r);
        break;
    case XS_PROBE_AUTH:
        auth_report(d, r);
        break;
    case XS_PROBE_DONE:
        done_report(d, r);
        break;
    }
}

void xs_diag_sip(struct xs_diag *d, int tls, int status, const char *reason,
                 const struct xs_tls_peer *peer, const char *tls_desc)
{
    const char *why = reason ? reason : "";
    /* xs_sip_ping's texts for a connection that never came up. */
    int unreachable = status == 503 && (has(why, "refused the connection") ||
                                        has(why, "connection refused") || has(why, "unreachable"));
    d->done = 1;
    if (tls) {
        d->tls_seen = 1;
        if (peer) {
            add(d, "TLS", STEP_OK, tls_desc && tls_desc[0] ? tls_desc : "established");
            int ok = peer->chain == XS_TLS_CHAIN_OK && peer->name_ok;
            struct step *s =
                add(d, "certificate", ok ? STEP_OK : STEP_FAIL, ok ? peer->names : peer->reason);
            if (s && !ok)
                cert_hint(d, peer, s->hint, sizeof(s->hint));
        } else if (!unreachable && status >= 300 &&
                   (has(why, "TLS") || has(why, "certificate") || has(why, "handshake") ||
                    has(why, "alert"))) {
            /* No verdict: the handshake itself failed. With a certificate
             * of ours to present, the classic cause is the edge refusing it. */
            struct step *s = add(d, "TLS", STEP_FAIL, why[0] ? why : "handshake failed");
            if (s)
                snprintf(s->hint, sizeof(s->hint),
                         "the edge refused our certificate%s, or the handshake failed before "
                         "it: when the edge asks for a client certificate, add our CA to its "
                         "trusted CAs; else check that both sides share a TLS version and "
                         "cipher suite",
                         d->ours_note);
        }
    }
    char detail[384];
    snprintf(detail, sizeof(detail), "%d%s%s", status, why[0] ? " " : "", why);
    int ok = status >= 200 && status < 300;
    int earlier = d->failed;
    d->done_ok = ok;
    struct step *s = add(d, "OPTIONS", ok ? STEP_OK : STEP_FAIL, detail);
    if (!s || ok)
        return;
    if (earlier) {
        s->counts = 0;
        return;
    }
    if (unreachable)
        snprintf(s->hint, sizeof(s->hint),
                 "wrong port or interface: nothing accepts connections at the next hop for %s "
                 "(connection refused); check sip.next_hop and where the edge listens",
                 d->subject);
    else if (status == 408 || has(why, "timed out") || has(why, "timeout"))
        snprintf(s->hint, sizeof(s->hint),
                 "no answer from the next hop for %s before the timeout: a firewall drops the "
                 "traffic, or the edge listens on another address or transport",
                 d->subject);
    else if (status == 403 || status == 401 || status == 407)
        snprintf(s->hint, sizeof(s->hint),
                 "the edge answered %d: it does not accept requests from this gateway; add "
                 "our address (or our certificate's name) to its allowed peers",
                 status);
}

void xs_diag_step(struct xs_diag *d, const char *step, int ok, const char *detail, const char *hint)
{
    struct step *s = add(d, step, ok ? STEP_OK : STEP_FAIL, detail);
    if (s && hint)
        copy(s->hint, sizeof(s->hint), hint);
}

void xs_diag_warn(struct xs_diag *d, const char *step, const char *detail, const char *hint)
{
    struct step *s = add(d, step, STEP_WARN, detail);
    if (s && hint)
        copy(s->hint, sizeof(s->hint), hint);
}

void xs_diag_abort(struct xs_diag *d, const char *detail)
{
    int earlier = d->failed;
    d->done = 1;
    d->done_ok = 0;
    struct step *s = add(d, "verdict", STEP_FAIL, detail);
    if (s && earlier)
        s->counts = 0;
}

int xs_diag_problems(const struct xs_diag *d)
{
    int n = 0;
    for (size_t i = 0; i < d->nsteps; i++)
        n += d->steps[i].counts;
    return n;
}

int xs_diag_passed(const struct xs_diag *d)
{
    return d->done && d->done_ok && !xs_diag_problems(d);
}

size_t xs_diag_count(const struct xs_diag *d)
{
    return d->nsteps + (size_t)d->cut;
}

static const struct step *at(const struct xs_diag *d, size_t i)
{
    return i < d->nsteps ? &d->steps[i] : &d->steps[XS_DIAG_MAX_STEPS];
}

const char *xs_diag_step_name(const struct xs_diag *d, size_t i)
{
    return at(d, i)->name;
}

int xs_diag_step_ok(const struct xs_diag *d, size_t i)
{
    return at(d, i)->kind == STEP_OK || at(d, i)->kind == STEP_INFO;
}

const char *xs_diag_step_detail(const struct xs_diag *d, size_t i)
{
    return at(d, i)->detail;
}

const char *xs_diag_step_hint(const struct xs_diag *d, size_t i)
{
    return at(d, i)->hint;
}

static void verdict_line(const struct xs_diag *d, FILE *out)
{
    int n = xs_diag_problems(d), w = 0;
    for (size_t i = 0; i < d->nsteps; i++)
        w += d->steps[i].kind == STEP_WARN;
    fprintf(out, "verdict: %s (%d problem%s", xs_diag_passed(d) ? "PASS" : "FAIL", n,
            n == 1 ? "" : "s");
    if (w)
        fprintf(out, ", %d warning%s", w, w == 1 ? "" : "s");
    fputs(")\n", out);
}

void xs_diag_print(const struct xs_diag *d, FILE *out)
{
    static const char *const marks[] = {"ok  ", "FAIL", "--  ", "warn"};
    for (size_t i = 0; i < xs_diag_count(d); i++) {
        const struct step *s = at(d, i);
        fprintf(out, "  %s %s: %s\n", marks[s->kind], s->name, s->detail);
        if (s->hint[0])
            fprintf(out, "       hint: %s\n", s->hint);
    }
    verdict_line(d, out);
}

/* A JSON string: quotes, backslashes and control characters escaped,
 * everything else (UTF-8 included) as it is. */
static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

void xs_diag_json(const struct xs_diag *d, FILE *out)
{
    fputs("{\"domain\":", out);
    json_str(out, d->subject);
    fputs(",\"steps\":[", out);
    for (size_t i = 0; i < xs_diag_count(d); i++) {
        const struct step *s = at(d, i);
        fputs(i ? ",{\"step\":" : "{\"step\":", out);
        json_str(out, s->name);
        fprintf(out, ",\"ok\":%s,\"detail\":",
                s->kind == STEP_FAIL || s->kind == STEP_WARN ? "false" : "true");
        json_str(out, s->detail);
        fputs(",\"hint\":", out);
        if (s->hint[0])
            json_str(out, s->hint);
        else
            fputs("null", out);
        fputc('}', out);
    }
    fprintf(out, "],\"problems\":%d,\"verdict\":\"%s\"}\n", xs_diag_problems(d),
            xs_diag_passed(d) ? "PASS" : "FAIL");
}
