/* xsgw validate's command line: arguments, what a run checks, its time
 * bound, the dialback listener step in its three cases, and the combined
 * report with its exit status. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "check.h"
#include "policy_testutil.h"
#include "core/err.h"
#include "core/log.h"
#include "validate/validate.h"

static int parse(const char *line, struct xs_validate_args *a, char **err_text)
{
    char *copy = strdup(line), *argv[16];
    int argc = 0;
    for (char *t = strtok(copy, " "); t && argc < 16; t = strtok(NULL, " "))
        argv[argc++] = t;
    size_t len = 0;
    *err_text = NULL;
    FILE *err = open_memstream(err_text, &len);
    int rc = xs_validate_parse(argc, argv, a, err);
    fclose(err);
    /* The arguments point into copy; keep the ones the tests read. */
    static char keep[4][128];
    if (a->domain) {
        snprintf(keep[0], sizeof keep[0], "%s", a->domain);
        a->domain = keep[0];
    }
    if (a->policy) {
        snprintf(keep[1], sizeof keep[1], "%s", a->policy);
        a->policy = keep[1];
    }
    if (a->lua_dir) {
        snprintf(keep[2], sizeof keep[2], "%s", a->lua_dir);
        a->lua_dir = keep[2];
    }
    free(copy);
    return rc;
}

static void test_parse(void)
{
    struct xs_validate_args a;
    char *e;
    CHECK(parse("validate", &a, &e) == 0);
    CHECK(!a.domain && !a.sip && !a.json && !a.policy && !a.lua_dir);
    free(e);
    CHECK(parse("validate --json x.example --policy p.lua", &a, &e) == 0);
    CHECK_STR(a.domain, "x.example");
    CHECK_STR(a.policy, "p.lua");
    CHECK(a.json && !a.sip);
    CHECK_STR(e, "");
    free(e);
    CHECK(parse("validate --policy=q.lua --sip", &a, &e) == 0);
    CHECK_STR(a.policy, "q.lua");
    CHECK(a.sip && !a.domain);
    free(e);

    CHECK(parse("validate x.example --sip", &a, &e) == XS_EINVAL);
    CHECK_STR(e, "xsgw validate: a DOMAIN or --sip, not both\n");
    free(e);
    CHECK(parse("validate a.example b.example", &a, &e) == XS_EINVAL);
    CHECK_STR(e, "xsgw validate: one domain at a time ('a.example' and 'b.example')\n");
    free(e);
    CHECK(parse("validate --verbose", &a, &e) == XS_EINVAL);
    CHECK_STR(e, "xsgw validate: unknown option '--verbose'\n");
    free(e);
    CHECK(parse("validate --policy", &a, &e) == XS_EINVAL);
    CHECK_STR(e, "xsgw validate: --policy needs a file\n");
    free(e);
    CHECK(parse("validate --policy=", &a, &e) == XS_EINVAL);
    CHECK_STR(e, "xsgw validate: --policy needs a file\n");
    free(e);
    CHECK(parse("validate --lua-dir", &a, &e) == XS_EINVAL);
    CHECK_STR(e, "xsgw validate: --lua-dir needs a directory\n");
    free(e);
    CHECK(parse("validate --lua-dir=", &a, &e) == XS_EINVAL);
    CHECK_STR(e, "xsgw validate: --lua-dir needs a directory\n");
    free(e);
    CHECK(parse("validate --lua-dir /usr/share/xsgw/lua --sip", &a, &e) == 0);
    CHECK_STR(a.lua_dir, "/usr/share/xsgw/lua");
    CHECK(a.sip);
    free(e);
}

static int subjects(struct xs_policy *p, const struct xs_validate_args *a, const char **out,
                    size_t max, size_t *n, char **err_text)
{
    size_t len = 0;
    FILE *err = open_memstream(err_text, &len);
    int rc = xs_validate_subjects(a, p, out, max, n, err);
    fclose(err);
    return rc;
}

static void test_subjects(void)
{
    char err[512];
    struct xs_policy *p = load("partner \"*\" { tls = \"optional\" }\n", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    const char *s[8];
    size_t n = 0;
    char *e;
    struct xs_validate_args a = {0};
    /* Everything: the SIP edge, then the named partners, not "*". */
    CHECK(subjects(p, &a, s, 8, &n, &e) == 0);
    CHECK(n == 3);
    CHECK_STR(s[0], "--sip");
    CHECK_STR(s[1], "xmpp.test");
    CHECK_STR(s[2], "legacy.test");
    free(e);
    CHECK(subjects(p, &a, s, 2, &n, &e) == XS_ELIMIT);
    free(e);

    a = (struct xs_validate_args){.domain = "elsewhere.example"};
    CHECK(subjects(p, &a, s, 8, &n, &e) == 0);
    CHECK(n == 1);
    CHECK_STR(s[0], "elsewhere.example");
    free(e);
    a = (struct xs_validate_args){.sip = 1};
    CHECK(subjects(p, &a, s, 8, &n, &e) == 0);
    CHECK(n == 1);
    CHECK_STR(s[0], "--sip");
    free(e);
    xs_policy_free(p);

    /* Without "*", a domain that is no partner is refused. */
    p = load("", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    a = (struct xs_validate_args){.domain = "elsewhere.example"};
    CHECK(subjects(p, &a, s, 8, &n, &e) == XS_EINVAL);
    CHECK_STR(e, "xsgw validate: elsewhere.example is not federated with this gateway (no "
                 "partner for it and no partner \"*\")\n");
    free(e);
    a = (struct xs_validate_args){.domain = "xmpp.test"};
    CHECK(subjects(p, &a, s, 8, &n, &e) == 0);
    CHECK(n == 1);
    free(e);
    xs_policy_free(p);
}

static void test_timeout_and_listener(void)
{
    char err[512];
    struct xs_policy *p = load("", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    const struct xs_config *cfg = xs_policy_config(p);
    CHECK(xs_validate_timeout_ms(cfg) == (unsigned long)(cfg->xmpp_connect_timeout * 1000) + 5000);
    CHECK(xs_validate_timeout_ms(cfg) > 5000);

    struct xs_diag *d = NULL;
    CHECK(xs_diag_new("xmpp.test", "", &d) == 0);
    xs_validate_listener_step(d, cfg, 0);
    CHECK_STR(xs_diag_step_detail(d, 0),
              "listening on 127.0.0.1:5269 for the peer's dialback verification");
    CHECK(xs_diag_step_ok(d, 0));
    /* The policy has no dialback_secret: taken means dialback cannot be checked,
     * a warning (SASL EXTERNAL needs no listener; a dialback that fails says so). */
    xs_validate_listener_step(d, cfg, 1);
    CHECK(!xs_diag_step_ok(d, 1));
    CHECK_STR(xs_diag_step_detail(d, 1), "127.0.0.1:5269 is taken and no dialback_secret is "
                                         "configured: dialback cannot be validated");
    CHECK(!strncmp(xs_diag_step_hint(d, 1), "the running gateway derives dialback keys", 41));
    CHECK(xs_diag_problems(d) == 0);
    xs_diag_free(d);
    xs_policy_free(p);

    p = load("", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    xs_policy_free(p);
    static const char with_secret[] =
        "gateway {\n"
        "  domains = { \"sip.test\" },\n"
        "  xmpp = { listen = \"127.0.0.1:5269\", dialback_secret = \"s3cret-s3cret-s3cret\" },\n"
        "  sip = { listen = { \"udp:127.0.0.1:5060\" }, next_hop = \"tcp:127.0.0.1:5070\" },\n"
        "}\n";
    const char *path = write_policy("secret.lua", "");
    FILE *f = fopen(path, "w");
    fputs(with_secret, f);
    fputs("partner \"xmpp.test\" { }\n", f);
    fclose(f);
    CHECK(xs_policy_load(path, lua_dir, &p, err, sizeof err) == 0);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK(xs_diag_new("xmpp.test", "", &d) == 0);
    xs_validate_listener_step(d, xs_policy_config(p), 1);
    CHECK(xs_diag_step_ok(d, 0));
    CHECK_STR(xs_diag_step_detail(d, 0),
              "127.0.0.1:5269 is taken (the gateway runs there): it answers the peer's dialback "
              "verification, with the same dialback_secret");
    xs_diag_free(d);
    xs_policy_free(p);
}

static void test_report(void)
{
    struct xs_diag *d[2] = {NULL, NULL};
    CHECK(xs_diag_new("sip.example.test", "", &d[0]) == 0);
    CHECK(xs_diag_new("x.example", "", &d[1]) == 0);
    xs_diag_sip(d[0], 0, 200, "OK", NULL, "");
    struct xs_probe_report r = {.step = XS_PROBE_DONE, .ok = 1, .detail = "authenticated"};
    xs_diag_probe(d[1], &r);
    const char *subj[2] = {"--sip", "x.example"};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(xs_validate_report(d, subj, 2, 0, f) == XS_VALIDATE_PASS);
    fclose(f);
    CHECK_STR(buf, "validate the SIP edge (--sip)\n"
                   "  ok   OPTIONS: 200 OK\n"
                   "verdict: PASS (0 problems)\n"
                   "\n"
                   "validate x.example\n"
                   "  ok   authenticated: authenticated\n"
                   "verdict: PASS (0 problems)\n");
    free(buf);

    xs_diag_abort(d[1], "no answer within 35 s");
    f = open_memstream(&buf, &len);
    CHECK(xs_validate_report(d, subj, 2, 1, f) == XS_VALIDATE_FAIL);
    fclose(f);
    /* One JSON object per line, the failing one last. */
    char *nl = strchr(buf, '\n');
    CHECK(nl && strchr(nl + 1, '\n') && !strchr(nl + 1, '\n')[1]);
    CHECK(strstr(buf, "\"verdict\":\"PASS\"}\n{\"domain\":\"x.example\"") != NULL);
    CHECK(strstr(nl + 1, "\"verdict\":\"FAIL\"}\n") != NULL);
    free(buf);
    xs_diag_free(d[0]);
    xs_diag_free(d[1]);
}

int main(void)
{
    if (policy_tests_begin() != 0)
        return 1;
    test_parse();
    test_subjects();
    test_timeout_and_listener();
    test_report();
    return policy_tests_end("test_validate_cli");
}
