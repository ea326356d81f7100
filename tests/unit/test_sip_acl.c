/* The trusted-peer matcher: IPv4 and IPv6 addresses and networks, prefix
 * edges, IPv4-mapped sources, and entries that must be refused. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "check.h"
#include "core/err.h"
#include "sip/sip_acl.h"

static int allows(const struct xs_sip_acl *acl, const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(5060);
    } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(5060);
    } else {
        CHECK(!"test address parses");
        return -1;
    }
    return xs_sip_acl_allows(acl, (const struct sockaddr *)&ss);
}

static void test_v4(void)
{
    struct xs_sip_acl *acl = xs_sip_acl_new();
    CHECK(acl != NULL);
    CHECK(!allows(acl, "10.0.0.5")); /* empty: nobody */
    CHECK(xs_sip_acl_add(acl, "10.0.0.5") == 0);
    CHECK(xs_sip_acl_add(acl, "192.168.8.0/22") == 0);
    CHECK(xs_sip_acl_add(acl, "172.16.1.77/31") == 0); /* host bits are ignored */
    CHECK(xs_sip_acl_count(acl) == 3);
    CHECK(allows(acl, "10.0.0.5"));
    CHECK(!allows(acl, "10.0.0.4"));
    CHECK(!allows(acl, "10.0.0.6"));
    CHECK(!allows(acl, "11.0.0.5"));
    CHECK(!allows(acl, "192.168.7.255"));
    CHECK(allows(acl, "192.168.8.0"));
    CHECK(allows(acl, "192.168.11.255"));
    CHECK(!allows(acl, "192.168.12.0"));
    CHECK(allows(acl, "172.16.1.76"));
    CHECK(allows(acl, "172.16.1.77"));
    CHECK(!allows(acl, "172.16.1.78"));
    /* An IPv4 peer seen through a dual-stack socket is still that peer; a
     * v4 network does not match other IPv6 addresses. */
    CHECK(allows(acl, "::ffff:10.0.0.5"));
    CHECK(!allows(acl, "::ffff:10.0.0.6"));
    CHECK(!allows(acl, "::a00:5"));
    xs_sip_acl_free(acl);

    acl = xs_sip_acl_new();
    CHECK(xs_sip_acl_add(acl, "0.0.0.0/0") == 0);
    CHECK(allows(acl, "203.0.113.9") && allows(acl, "255.255.255.255"));
    CHECK(!allows(acl, "2001:db8::1"));
    xs_sip_acl_free(acl);
}

static void test_v6(void)
{
    struct xs_sip_acl *acl = xs_sip_acl_new();
    CHECK(xs_sip_acl_add(acl, "::1") == 0);
    CHECK(xs_sip_acl_add(acl, "2001:db8:aa00::/40") == 0);
    CHECK(xs_sip_acl_add(acl, "fd00::/7") == 0);
    CHECK(xs_sip_acl_add(acl, "2001:db8:ffff::1/127") == 0);
    CHECK(allows(acl, "::1"));
    CHECK(!allows(acl, "::2"));
    CHECK(!allows(acl, "127.0.0.1"));
    CHECK(allows(acl, "2001:db8:aa00::"));
    CHECK(allows(acl, "2001:db8:aaff:ffff:ffff:ffff:ffff:ffff"));
    CHECK(!allows(acl, "2001:db8:ab00::"));
    CHECK(!allows(acl, "2001:db8:a9ff:ffff:ffff:ffff:ffff:ffff"));
    CHECK(allows(acl, "fc00::1") && allows(acl, "fdff:ffff::1"));
    CHECK(!allows(acl, "fe00::1"));
    CHECK(allows(acl, "2001:db8:ffff::") && allows(acl, "2001:db8:ffff::1"));
    CHECK(!allows(acl, "2001:db8:ffff::2"));
    xs_sip_acl_free(acl);

    acl = xs_sip_acl_new();
    CHECK(xs_sip_acl_add(acl, "::/0") == 0);
    CHECK(allows(acl, "2001:db8::1") && !allows(acl, "10.0.0.1"));
    xs_sip_acl_free(acl);
}

static void test_refused(void)
{
    struct xs_sip_acl *acl = xs_sip_acl_new();
    const char *bad[] = {"",        "10.0.0.256", "10.0.0",      "10.0.0.0/33",
                         "::1/129", "10.0.0.0/",  "10.0.0.0/08", "sip.test",
                         "1::2::3", "[::1]",      "10.0.0.1/x",  "10.0.0.1/1000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (xs_sip_acl_add(acl, bad[i]) != XS_EINVAL) {
            fprintf(stderr, "accepted '%s'\n", bad[i]);
            CHECK(!"bad entry refused");
        }
    }
    CHECK(xs_sip_acl_count(acl) == 0);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    CHECK(xs_sip_acl_add_addr(acl, &sa) == XS_EINVAL);
    CHECK(!xs_sip_acl_allows(acl, &sa));
    CHECK(!xs_sip_acl_allows(NULL, &sa));
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:192.0.2.1", &mapped.sin6_addr);
    CHECK(xs_sip_acl_add_addr(acl, (struct sockaddr *)&mapped) == 0);
    CHECK(allows(acl, "192.0.2.1") && !allows(acl, "192.0.2.2"));
    xs_sip_acl_free(acl);
}

int main(void)
{
    test_v4();
    test_v6();
    test_refused();
    return check_report("test_sip_acl");
}
