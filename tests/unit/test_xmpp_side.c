/* The XMPP side's stream budgets: the wanted sizes when descriptors allow,
 * and shrunk sizes that still fit the limit when they do not. */
#include <sys/resource.h>

#include "check.h"
#include "xmpp/s2s.h"

static void test_budget_fits(void)
{
    struct xs_s2s_budget b;
    CHECK(xs_xmpp_size_budget(RLIM_INFINITY, &b) == 0);
    CHECK(b.in_max == XS_S2S_IN_STREAMS_MAX && b.out_max == XS_S2S_OUT_STREAMS_MAX);
    CHECK(b.unauth_max == XS_S2S_IN_UNAUTH_MAX);
    CHECK(xs_xmpp_size_budget(65536, &b) == 0);
    CHECK(b.in_max == XS_S2S_IN_STREAMS_MAX);
    /* Exactly enough. */
    CHECK(xs_xmpp_size_budget(XS_S2S_IN_STREAMS_MAX + XS_S2S_OUT_STREAMS_MAX + XS_S2S_FD_RESERVE,
                              &b) == 0);
}

static void test_budget_shrinks(void)
{
    /* systemd's common LimitNOFILE=1024. */
    struct xs_s2s_budget b;
    CHECK(xs_xmpp_size_budget(1024, &b) == 1);
    CHECK(b.in_max + b.out_max + XS_S2S_FD_RESERVE <= 1024);
    CHECK(b.out_max == 213 && b.in_max == 427 && b.unauth_max == 106);
    CHECK(xs_xmpp_size_budget(600, &b) == 1);
    CHECK(b.out_max == 100 && b.in_max == 200 && b.unauth_max == 50);
    /* Starved: still usable numbers, and never more than the limit. */
    CHECK(xs_xmpp_size_budget(8, &b) == 1);
    CHECK(b.out_max >= 1 && b.in_max >= 2 && b.unauth_max >= 1);
    CHECK(b.in_max + b.out_max <= 8);
}

int main(void)
{
    test_budget_fits();
    test_budget_shrinks();
    return check_report("test_xmpp_side");
}
