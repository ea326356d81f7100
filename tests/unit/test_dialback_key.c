/* Dialback keys against the published vectors, plus the properties the s2s
 * code relies on: keys bind every input, and equality is exact. */
#include <string.h>

#include "check.h"
#include "core/err.h"
#include "xmpp/dialback_key.h"

static void test_vectors(void)
{
    char key[65];
    /* XEP-0185 section 2: receiving xmpp.example.com, originating example.org. */
    CHECK(xs_dialback_key("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F",
                          key) == 0);
    CHECK(strcmp(key, "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643") == 0);
    /* XEP-0220 section 2.1.1: montague.example receives, capulet.example originates. */
    CHECK(xs_dialback_key("s3cr3tf0rd14lb4ck", "montague.example", "capulet.example", "D60000229F",
                          key) == 0);
    CHECK(strcmp(key, "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3") == 0);
}

static void test_binding(void)
{
    char base[65], other[65];
    CHECK(xs_dialback_key("secret", "recv.test", "orig.test", "id1", base) == 0);
    CHECK(strlen(base) == 64);
    CHECK(xs_dialback_key("secret", "recv.test", "orig.test", "id2", other) == 0);
    CHECK(strcmp(base, other) != 0);
    CHECK(xs_dialback_key("secret", "orig.test", "recv.test", "id1", other) == 0);
    CHECK(strcmp(base, other) != 0);
    CHECK(xs_dialback_key("secret2", "recv.test", "orig.test", "id1", other) == 0);
    CHECK(strcmp(base, other) != 0);
    CHECK(xs_dialback_key("secret", "recv.test", "orig.test", "id1", other) == 0);
    CHECK(strcmp(base, other) == 0);

    CHECK(xs_dialback_key("secret", "recv.test", "orig.test", "", other) == XS_EINVAL);
    CHECK(other[0] == '\0');
    CHECK(xs_dialback_key(NULL, "recv.test", "orig.test", "id", other) == XS_EINVAL);
    CHECK(xs_dialback_key("", "recv.test", "orig.test", "id", other) == XS_EINVAL);
    CHECK(xs_dialback_key("s", NULL, "orig.test", "id", other) == XS_EINVAL);
    CHECK(xs_dialback_key("s", "recv.test", "", "id", other) == XS_EINVAL);
}

static void test_equal(void)
{
    const char *k = "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643";
    CHECK(xs_dialback_key_equal(k, k));
    CHECK(xs_dialback_key_equal(
        k, "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"));
    CHECK(!xs_dialback_key_equal(
        k, "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075644"));
    CHECK(!xs_dialback_key_equal(k, "37c69b1c"));
    CHECK(!xs_dialback_key_equal(k, ""));
    CHECK(!xs_dialback_key_equal("", k));
    CHECK(xs_dialback_key_equal("", ""));
    CHECK(!xs_dialback_key_equal(k, NULL));
    CHECK(!xs_dialback_key_equal(NULL, k));
    /* A longer string that starts with the key must not pass. */
    CHECK(!xs_dialback_key_equal(
        k, "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643x"));
}

static void test_random_secret(void)
{
    char a[65], b[65];
    xs_dialback_random_secret(a);
    xs_dialback_random_secret(b);
    CHECK(strlen(a) == 64 && strlen(b) == 64);
    CHECK(strspn(a, "0123456789abcdef") == 64);
    CHECK(strcmp(a, b) != 0);
}

int main(void)
{
    test_vectors();
    test_binding();
    test_equal();
    test_random_secret();
    return check_report("test_dialback_key");
}
