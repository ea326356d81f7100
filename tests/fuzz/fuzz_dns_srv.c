/* libFuzzer harness for the SRV response parser: any bytes a DNS server (or
 * someone spoofing one) could send. The checks turn silent corruption into a
 * crash the fuzzer reports. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"
#include "net/dns_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xs_dns_target t[32];
    /* The first byte picks the bound, so small bounds get exercised too. */
    size_t max = size ? data[0] % 33 : 32;
    uint32_t ttl = 1;
    int n = xs__dns_parse_srv_ttl(data, size, t, max, &ttl);
    if (n > (int)max)
        abort();
    /* The TTL the cache keeps: 0 without records, never above 2^31 - 1. */
    if ((n <= 0 && ttl != 1 && ttl != 0) || ttl > 0x7fffffffu)
        abort();
    if (n >= 0 && xs_dns_parse_srv(data, size, t, max) != n)
        abort();
    for (int i = 0; i < n; i++) {
        size_t len = strnlen(t[i].host, sizeof t[i].host);
        if (len == 0 || len > 253)
            abort();
        if (i > 0 && t[i - 1].priority > t[i].priority)
            abort();
    }
    return 0;
}
