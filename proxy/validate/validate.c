/* The command line of `xsgw validate`, kept apart from main.c so the
 * decisions it makes run in a unit test. */
#include "validate/validate.h"

#include <string.h>

#include "core/err.h"

int xs_validate_parse(int argc, char **argv, struct xs_validate_args *out, FILE *err)
{
    memset(out, 0, sizeof(*out));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            out->json = 1;
        } else if (!strcmp(a, "--sip")) {
            out->sip = 1;
        } else if (!strcmp(a, "--policy") || !strcmp(a, "--lua-dir")) {
            if (i + 1 >= argc || !*argv[i + 1]) {
                fprintf(err, "xsgw validate: %s needs a %s\n", a,
                        a[2] == 'p' ? "file" : "directory");
                return XS_EINVAL;
            }
            *(a[2] == 'p' ? &out->policy : &out->lua_dir) = argv[++i];
        } else if (!strncmp(a, "--policy=", 9)) {
            out->policy = a + 9;
        } else if (!strncmp(a, "--lua-dir=", 10)) {
            out->lua_dir = a + 10;
        } else if (a[0] == '-') {
            fprintf(err, "xsgw validate: unknown option '%s'\n", a);
            return XS_EINVAL;
        } else if (out->domain) {
            fprintf(err, "xsgw validate: one domain at a time ('%s' and '%s')\n", out->domain, a);
            return XS_EINVAL;
        } else {
            out->domain = a;
        }
    }
    if (out->domain && out->sip) {
        fprintf(err, "xsgw validate: a DOMAIN or --sip, not both\n");
        return XS_EINVAL;
    }
    if ((out->policy && !*out->policy) || (out->lua_dir && !*out->lua_dir)) {
        fprintf(err, "xsgw validate: %s\n",
                out->policy && !*out->policy ? "--policy needs a file"
                                             : "--lua-dir needs a directory");
        return XS_EINVAL;
    }
    return 0;
}

static int push(const char **subjects, size_t max, size_t *n, const char *s)
{
    if (*n == max)
        return XS_ELIMIT;
    subjects[(*n)++] = s;
    return 0;
}

int xs_validate_subjects(const struct xs_validate_args *args, const struct xs_policy *policy,
                         const char **subjects, size_t max, size_t *n, FILE *err)
{
    const struct xs_config *cfg = xs_policy_config(policy);
    *n = 0;
    if (args->sip) {
        if (!cfg->sip_next_hop.host) {
            fprintf(err, "xsgw validate: --sip: the policy has no sip.next_hop\n");
            return XS_EINVAL;
        }
        return push(subjects, max, n, "--sip");
    }
    if (args->domain) {
        if (!xs_policy_partner(policy, args->domain)) {
            fprintf(err,
                    "xsgw validate: %s is not federated with this gateway (no partner for it "
                    "and no partner \"*\")\n",
                    args->domain);
            return XS_EINVAL;
        }
        return push(subjects, max, n, args->domain);
    }
    /* Everything: the SIP edge, when there is one, then each named partner. */
    int rc = cfg->sip_next_hop.host ? push(subjects, max, n, "--sip") : 0;
    for (size_t i = 0; rc == 0 && i < cfg->n_partners; i++)
        if (strcmp(cfg->partners[i].domain, "*"))
            rc = push(subjects, max, n, cfg->partners[i].domain);
    if (rc == 0 && *n == 0) {
        fprintf(err, "xsgw validate: nothing to check: no sip.next_hop and no partner named\n");
        return XS_EINVAL;
    }
    return rc;
}

unsigned long xs_validate_timeout_ms(const struct xs_config *cfg)
{
    double s = cfg->xmpp_connect_timeout > 0 ? cfg->xmpp_connect_timeout : 0;
    return (unsigned long)(s * 1000.0) + 5000UL;
}

void xs_validate_listener_step(struct xs_diag *d, const struct xs_config *cfg, int taken)
{
    char detail[384];
    const char *host = cfg->xmpp_listen_host ? cfg->xmpp_listen_host : "*";
    int secret = cfg->dialback_secret && *cfg->dialback_secret;
    if (!taken) {
        snprintf(detail, sizeof(detail), "listening on %s:%d for the peer's dialback verification",
                 host, cfg->xmpp_listen_port);
        xs_diag_step(d, "listener", 1, detail, NULL);
    } else if (secret) {
        snprintf(detail, sizeof(detail),
                 "%s:%d is taken (the gateway runs there): it answers the peer's dialback "
                 "verification, with the same dialback_secret",
                 host, cfg->xmpp_listen_port);
        xs_diag_step(d, "listener", 1, detail, NULL);
    } else {
        /* Only a problem when dialback is what authenticates, and then the
         * dialback step fails with its own hint: SASL EXTERNAL needs none. */
        snprintf(detail, sizeof(detail),
                 "%s:%d is taken and no dialback_secret is configured: dialback cannot be "
                 "validated",
                 host, cfg->xmpp_listen_port);
        xs_diag_warn(d, "listener", detail,
                     "the running gateway derives dialback keys from a random secret of its "
                     "own; set xmpp.dialback_secret (the same for both), or stop the gateway "
                     "while validating");
    }
}

int xs_validate_report(struct xs_diag *const *diags, const char *const *subjects, size_t n,
                       int json, FILE *out)
{
    int status = XS_VALIDATE_PASS;
    for (size_t i = 0; i < n; i++) {
        if (json) {
            xs_diag_json(diags[i], out);
        } else {
            fprintf(out, "%svalidate %s\n", i ? "\n" : "",
                    strcmp(subjects[i], "--sip") ? subjects[i] : "the SIP edge (--sip)");
            xs_diag_print(diags[i], out);
        }
        if (!xs_diag_passed(diags[i]))
            status = XS_VALIDATE_FAIL;
    }
    return status;
}
