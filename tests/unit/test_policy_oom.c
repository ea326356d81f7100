/* Loading a policy when memory runs out: every allocation of a load fails
 * in turn (the sandbox, the Lua library and policy, the copy into C in
 * proxy/policy/config.c, the domain index). Each load must then fail with
 * an error or succeed whole (Lua retries a failed allocation after an
 * emergency collection), and leave nothing allocated once freed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc_testutil.h"
#include "check.h"
#include "core/err.h"
#include "core/log.h"
#include "policy/policy.h"

#if XS_TEST_OWN_MALLOC
/* Everything config.c copies: strings, lists, identities, partner domains. */
static const char oom_policy[] =
    "gateway {\n"
    "  domains = { \"sip.test\", \"voice.test\" },\n"
    "  tls = { cert = \"a.pem\", key = \"a.key\", certs = { { cert = \"b.pem\", key = \"b.key\" "
    "},\n"
    "          { cert = \"c.pem\", key = \"c.key\" } }, ca = \"ca.pem\", crl = \"crl.pem\" },\n"
    "  xmpp = { listen = \"127.0.0.1:5269\", listen_tls = \"127.0.0.1:5270\",\n"
    "           dialback_secret = \"0123456789\" },\n"
    "  sip = { listen = { \"tls:127.0.0.1:5061\", \"tcp:127.0.0.1:5060\" },\n"
    "          next_hop = \"tls:edge.test\", trusted = { \"10.0.0.0/8\", \"::1\" },\n"
    "          contact = \"127.0.0.1:5061\", keepalive = 20,\n"
    "          tls = { name = \"edge.test\", peers = { \"edge.test\", \"*.edge.test\" } } },\n"
    "  presence = { store = \"subs.db\" },\n"
    "}\n"
    "partner \"big.test\" { type = \"verified\", domains = { \"a.big.test\", \"b.big.test\" },\n"
    "  route = \"127.0.0.9:5269\" }\n"
    "partner \"old.test\" { tls = \"none\" }\n"
    "partner \"*\" { type = \"federated\" }\n";
#endif

int main(void)
{
    xs_log_set_level(XS_LOG_ERROR + 1);
#if XS_TEST_OWN_MALLOC
    static const char *const lua_dir = "lua";
    char path[] = "/tmp/xsgw-policy-oom-XXXXXX", err[512]; /* mkstemp(3) template */
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return 1;
    fputs(oom_policy, f);
    fclose(f);

    /* A first load allocates what the process keeps (libuv's and the C
     * library's one-time state); the count starts after it. */
    struct xs_policy *p = NULL;
    CHECK(xs_policy_load(path, lua_dir, &p, err, sizeof err) == 0);
    xs_policy_free(p);
    long live = alloc_live;
    /* Counted only while a failure is armed: armed past the end. */
    alloc_count = 0;
    alloc_fail_at = -1;
    p = NULL;
    CHECK(xs_policy_load(path, lua_dir, &p, err, sizeof err) == 0);
    alloc_fail_at = 0;
    long total = alloc_count;
    if (p)
        CHECK(xs_policy_partner(p, "b.big.test") != NULL);
    xs_policy_free(p);
    CHECK(alloc_live == live);

    int failed = 0, loaded = 0;
    for (long at = 1; at <= total; at++) {
        p = NULL;
        alloc_count = 0;
        alloc_fail_at = at;
        int rc = xs_policy_load(path, lua_dir, &p, err, sizeof err);
        alloc_fail_at = 0;
        if (rc == 0) {
            loaded++;
            const struct xs_config *c = xs_policy_config(p);
            CHECK(c->n_tls_certs == 2 && c->tls_certs[1].key && c->n_sip_tls_peers == 2 &&
                  c->sip_tls_peers[1] && c->n_partners == 3 && c->partners[0].n_domains == 2 &&
                  c->partners[0].domains[1]);
        } else {
            failed++;
            CHECK(err[0] != '\0');
        }
        xs_policy_free(p);
        if (alloc_live != live)
            fprintf(stderr, "allocation %ld of %ld: %ld blocks leaked\n", at, total,
                    alloc_live - live);
        CHECK(alloc_live == live);
    }
    printf("policy load: %ld allocations, each failed in turn: %d loads refused, %d loaded "
           "(the failure was absorbed)\n",
           total, failed, loaded);
    CHECK(failed > 0);
    unlink(path);
#endif
    return check_report("test_policy_oom");
}
