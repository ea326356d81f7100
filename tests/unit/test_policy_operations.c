/* The operations part of gateway{} from C: admin, log, reload and drain as
 * struct xs_config (what the gateway runs with) and in --check's summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "policy/policy.h"
#include "policy_testutil.h"

/* The base policy with `ops` as more keys of gateway{}. */
static const char *write_ops(const char *ops)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/ops.lua", dir);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "gateway {\n"
            "  domains = { \"sip.test\" },\n"
            "  xmpp = { listen = \"127.0.0.1:5269\" },\n"
            "  sip = { listen = { \"udp:127.0.0.1:5060\" } },\n"
            "%s"
            "}\n",
            ops);
    fclose(f);
    return path;
}

static struct xs_policy *load_ops(const char *ops, char *err, size_t n)
{
    struct xs_policy *p = NULL;
    return xs_policy_load(write_ops(ops), lua_dir, &p, err, n) == 0 ? p : NULL;
}

static void test_defaults(void)
{
    char err[512] = "";
    struct xs_policy *p = load_ops("", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    const struct xs_config *c = xs_policy_config(p);
    CHECK(c->admin_listen_host && !strcmp(c->admin_listen_host, "127.0.0.1"));
    CHECK(c->admin_listen_port == 9269);
    CHECK(c->log_json == 0 && c->log_bodies == 0);
    CHECK(c->reload_watch == 1);
    CHECK(c->reload_debounce == 0.5);
    CHECK(c->drain_deadline == 25);
    xs_policy_free(p);
}

static void test_given(void)
{
    char err[512] = "";
    struct xs_policy *p = load_ops("  admin = { listen = \"[::1]:9100\" },\n"
                                   "  log = { format = \"json\", bodies = true },\n"
                                   "  reload = { watch = false, debounce = 2.5 },\n"
                                   "  drain = { deadline = 0 },\n",
                                   err, sizeof err);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    const struct xs_config *c = xs_policy_config(p);
    CHECK(c->admin_listen_host && !strcmp(c->admin_listen_host, "::1"));
    CHECK(c->admin_listen_port == 9100);
    CHECK(c->log_json == 1 && c->log_bodies == 1);
    CHECK(c->reload_watch == 0);
    CHECK(c->reload_debounce == 2.5);
    CHECK(c->drain_deadline == 0);
    xs_policy_free(p);

    p = load_ops("  admin = false,\n", err, sizeof err);
    CHECK(p && xs_policy_config(p)->admin_listen_host == NULL &&
          xs_policy_config(p)->admin_listen_port == 0);
    xs_policy_free(p);
}

static void test_errors(void)
{
    char err[512] = "";
    CHECK(load_ops("  admin = { listen = \"localhost\" },\n", err, sizeof err) == NULL);
    CHECK(strstr(err, "ops.lua:1:") && strstr(err, "admin.listen 'localhost' is not host:port"));
    CHECK(load_ops("  log = { format = \"syslog\" },\n", err, sizeof err) == NULL);
    CHECK(strstr(err, "log.format must be \"text\" or \"json\""));
    CHECK(load_ops("  drain = { deadline = \"soon\" },\n", err, sizeof err) == NULL);
    CHECK(strstr(err, "drain.deadline must be a number of seconds from 0 to 3600"));
}

static void test_check_summary(void)
{
    char text[4096];
    FILE *out = tmpfile();
    CHECK(xs_policy_check(write_ops("  admin = { listen = \"[::]:9100\" },\n"
                                    "  log = { format = \"json\" },\n"
                                    "  reload = { debounce = 1 },\n"),
                          lua_dir, out) == 0);
    rewind(out);
    size_t n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    fclose(out);
    CHECK(strstr(text, "  admin: [::]:9100 (/metrics, /status, /healthz, /readyz)\n") != NULL);
    CHECK(strstr(text, "  log: json; reload: on change of the policy or its files, and on SIGHUP "
                       "(debounce 1 s); drain on SIGTERM: at most 25 s\n") != NULL);

    out = tmpfile();
    CHECK(xs_policy_check(write_ops("  admin = false, reload = { watch = false },\n"), lua_dir,
                          out) == 0);
    rewind(out);
    n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    fclose(out);
    CHECK(strstr(text, "  admin: off\n") != NULL);
    CHECK(strstr(text, "  log: text; reload: on SIGHUP only; drain on SIGTERM: at most 25 s\n"));
}

int main(void)
{
    if (policy_tests_begin() != 0)
        return 1;
    test_defaults();
    test_given();
    test_errors();
    test_check_summary();
    return policy_tests_end("test_policy_operations");
}
