/* XEP-0198 counters: h arithmetic modulo 2^32, the checks on a peer's h,
 * one <r/> at a time, and the strict parse of h. */
#include "check.h"
#include "core/err.h"
#include "xmpp/s2s_sm.h"

static void test_off_counts_nothing(void)
{
    struct xs_sm_out s;
    uint32_t n = 77;
    xs_sm_out_init(&s);
    CHECK(xs_sm_out_count(&s, &n) == 0);
    CHECK(n == 77);
    CHECK(!xs_sm_out_want_request(&s));
    CHECK(s.sent == 0);
}

static void test_count_and_ack(void)
{
    struct xs_sm_out s;
    uint32_t n = 0, prev = 99;
    xs_sm_out_init(&s);
    xs_sm_out_requested(&s, 5.0);
    CHECK(s.asked_at == 5.0);
    /* Stanzas sent after <enable/> count before <enabled/> arrives. */
    CHECK(xs_sm_out_count(&s, &n) == 1 && n == 1);
    CHECK(!xs_sm_out_want_request(&s)); /* not on yet */
    s.state = XS_SM_ON;
    CHECK(xs_sm_out_count(&s, &n) == 1 && n == 2);
    CHECK(xs_sm_out_count(&s, &n) == 1 && n == 3);
    CHECK(xs_sm_out_want_request(&s));
    xs_sm_out_requested_ack(&s, 6.0);
    CHECK(!xs_sm_out_want_request(&s)); /* one <r/> at a time */
    CHECK(s.asked_at == 6.0);
    CHECK(xs_sm_out_ack(&s, 2, &prev) == 0);
    CHECK(prev == 0 && s.acked == 2 && !s.awaiting);
    CHECK(xs_sm_covers(prev, 2, 1) && xs_sm_covers(prev, 2, 2) && !xs_sm_covers(prev, 2, 3));
    CHECK(xs_sm_out_want_request(&s)); /* stanza 3 still open */
    /* The same h again is no news, and not an error. */
    CHECK(xs_sm_out_ack(&s, 2, &prev) == 0 && prev == 2);
    CHECK(!xs_sm_covers(2, 2, 2) && !xs_sm_covers(2, 2, 3));
    CHECK(xs_sm_out_ack(&s, 3, &prev) == 0 && prev == 2);
    CHECK(!xs_sm_out_want_request(&s));
}

static void test_bad_h(void)
{
    struct xs_sm_out s;
    uint32_t n, prev = 1234;
    xs_sm_out_init(&s);
    xs_sm_out_requested(&s, 0);
    s.state = XS_SM_ON;
    for (int i = 0; i < 5; i++)
        xs_sm_out_count(&s, &n);
    CHECK(xs_sm_out_ack(&s, 6, &prev) == XS_ELIMIT);           /* one more than sent */
    CHECK(xs_sm_out_ack(&s, 0xffffffffu, &prev) == XS_EPROTO); /* below 0: backwards */
    CHECK(prev == 1234 && s.acked == 0);                       /* nothing changed */
    CHECK(xs_sm_out_ack(&s, 5, &prev) == 0);
    CHECK(xs_sm_out_ack(&s, 4, &prev) == XS_EPROTO);
    CHECK(xs_sm_out_ack(&s, 0, &prev) == XS_EPROTO);
    CHECK(xs_sm_out_ack(&s, 6, &prev) == XS_ELIMIT);
    CHECK(xs_sm_out_ack(&s, 5 + 0x80000000u, &prev) == XS_ELIMIT);
    CHECK(s.acked == 5);
}

/* XEP-0198 §4: after 2^32-1 comes 0. */
static void test_wrap(void)
{
    struct xs_sm_out s;
    uint32_t n, prev;
    xs_sm_out_init(&s);
    xs_sm_out_requested(&s, 0);
    s.state = XS_SM_ON;
    s.sent = s.acked = 0xfffffffdu;
    uint32_t nums[5];
    for (int i = 0; i < 5; i++)
        CHECK(xs_sm_out_count(&s, &nums[i]) == 1);
    CHECK(nums[0] == 0xfffffffeu && nums[1] == 0xffffffffu && nums[2] == 0 && nums[3] == 1 &&
          nums[4] == 2);
    CHECK(xs_sm_out_ack(&s, 3, &prev) == XS_ELIMIT);
    CHECK(xs_sm_out_ack(&s, 0xfffffffcu, &prev) == XS_EPROTO);
    CHECK(xs_sm_out_ack(&s, 0, &prev) == 0 && prev == 0xfffffffdu);
    CHECK(xs_sm_covers(prev, 0, nums[0]) && xs_sm_covers(prev, 0, nums[1]) &&
          xs_sm_covers(prev, 0, nums[2]) && !xs_sm_covers(prev, 0, nums[3]));
    CHECK(xs_sm_out_ack(&s, 2, &prev) == 0 && prev == 0);
    CHECK(xs_sm_covers(prev, 2, nums[3]) && xs_sm_covers(prev, 2, nums[4]));
    CHECK(!xs_sm_covers(prev, 2, nums[2]));
    (void)n;
}

static void test_many(void)
{
    /* Acks in uneven steps over a long run, each stanza covered exactly once. */
    struct xs_sm_out s;
    xs_sm_out_init(&s);
    xs_sm_out_requested(&s, 0);
    s.state = XS_SM_ON;
    s.sent = s.acked = 0xffff0000u;
    uint32_t oldest = s.sent + 1, n = 0, prev;
    unsigned covered = 0, sent = 0;
    for (unsigned round = 0; round < 20000; round++) {
        for (unsigned k = 0; k < round % 7; k++, sent++)
            xs_sm_out_count(&s, &n);
        uint32_t open = s.sent - s.acked;
        uint32_t h = s.acked + (round % 3 == 0 ? open : open / 2);
        CHECK(xs_sm_out_ack(&s, h, &prev) == 0);
        while (oldest != h + 1 && xs_sm_covers(prev, h, oldest)) {
            covered++;
            oldest++;
        }
    }
    CHECK(xs_sm_out_ack(&s, s.sent, &prev) == 0);
    while (xs_sm_covers(prev, s.sent, oldest)) {
        covered++;
        oldest++;
    }
    CHECK(covered == sent);
}

static void test_in(void)
{
    struct xs_sm_in s;
    xs_sm_in_init(&s);
    xs_sm_in_handled(&s);
    CHECK(s.handled == 0); /* not enabled: nothing counts */
    s.enabled = 1;
    xs_sm_in_handled(&s);
    xs_sm_in_handled(&s);
    CHECK(s.handled == 2);
    s.handled = 0xffffffffu;
    xs_sm_in_handled(&s);
    CHECK(s.handled == 0);
}

static void test_parse_h(void)
{
    uint32_t h = 7;
    CHECK(xs_sm_parse_h("0", &h) == 0 && h == 0);
    CHECK(xs_sm_parse_h("4294967295", &h) == 0 && h == 0xffffffffu);
    CHECK(xs_sm_parse_h("0000000012", &h) == 0 && h == 12);
    h = 7;
    CHECK(xs_sm_parse_h("4294967296", &h) == XS_EINVAL);
    CHECK(xs_sm_parse_h("00000000012", &h) == XS_EINVAL); /* 11 digits */
    CHECK(xs_sm_parse_h("", &h) == XS_EINVAL);
    CHECK(xs_sm_parse_h(NULL, &h) == XS_EINVAL);
    CHECK(xs_sm_parse_h("-1", &h) == XS_EINVAL);
    CHECK(xs_sm_parse_h("+1", &h) == XS_EINVAL);
    CHECK(xs_sm_parse_h(" 1", &h) == XS_EINVAL);
    CHECK(xs_sm_parse_h("1 ", &h) == XS_EINVAL);
    CHECK(xs_sm_parse_h("0x10", &h) == XS_EINVAL);
    CHECK(xs_sm_parse_h("99999999999999999999", &h) == XS_EINVAL);
    CHECK(h == 7);
}

int main(void)
{
    test_off_counts_nothing();
    test_count_and_ack();
    test_bad_h();
    test_wrap();
    test_many();
    test_in();
    test_parse_h();
    return check_report("test_s2s_sm");
}
