/* The XMPP side's stream budgets: the policy's sizes when descriptors allow,
 * and shrunk sizes that still fit the limit when they do not. */
#include <sys/resource.h>

#include "check.h"
#include "xmpp/s2s.h"

/* The policy's defaults (lua/xsgw/policy.lua, xmpp.max_streams). */
static const struct xs_s2s_budget want = {
    .in_max = 10000, .out_max = 10000, .unauth_max = 1000, .unauth_per_source = 8,
    .per_domain = 32};

static void test_budget_fits(void)
{
    struct xs_s2s_budget b;
    CHECK(xs_xmpp_size_budget(RLIM_INFINITY, &want, &b) == 0);
    CHECK(b.in_max == 10000 && b.out_max == 10000 && b.unauth_max == 1000);
    CHECK(b.unauth_per_source == 8 && b.per_domain == 32);
    CHECK(xs_xmpp_size_budget(1048576, &want, &b) == 0);
    CHECK(b.in_max == 10000);
    /* Exactly enough, and one short. */
    CHECK(xs_xmpp_size_budget(10000 + 10000 + XS_S2S_FD_RESERVE, &want, &b) == 0);
    CHECK(xs_xmpp_size_budget(10000 + 10000 + XS_S2S_FD_RESERVE - 1, &want, &b) == 1);
    CHECK(b.in_max + b.out_max + XS_S2S_FD_RESERVE <= 10000 + 10000 + XS_S2S_FD_RESERVE - 1);
}

static void test_budget_shrinks(void)
{
    /* systemd's common LimitNOFILE=1024: split as the policy splits. */
    struct xs_s2s_budget b;
    CHECK(xs_xmpp_size_budget(1024, &want, &b) == 1);
    CHECK(b.in_max + b.out_max + XS_S2S_FD_RESERVE <= 1024);
    CHECK(b.out_max == 320 && b.in_max == 320 && b.unauth_max == 80);
    CHECK(b.unauth_per_source == 8 && b.per_domain == 32);
    CHECK(xs_xmpp_size_budget(600, &want, &b) == 1);
    CHECK(b.out_max == 150 && b.in_max == 150 && b.unauth_max == 37);
    /* A policy that wants few outbound streams keeps few. */
    struct xs_s2s_budget lopsided = want;
    lopsided.out_max = 100;
    CHECK(xs_xmpp_size_budget(1024, &lopsided, &b) == 1);
    CHECK(b.out_max == 6 && b.in_max == 634);
    /* Starved: still usable numbers, shares within their totals, and never
     * more than the limit. */
    CHECK(xs_xmpp_size_budget(8, &want, &b) == 1);
    CHECK(b.out_max >= 1 && b.in_max >= 2 && b.unauth_max >= 1);
    CHECK(b.in_max + b.out_max <= 8);
    CHECK(b.unauth_per_source <= b.unauth_max && b.per_domain <= b.in_max);
}

int main(void)
{
    test_budget_fits();
    test_budget_shrinks();
    return check_report("test_xmpp_side");
}
