/* libFuzzer target: the admin listener's request reader. The first byte
 * picks how the rest is cut into reads, as the network would cut it; the
 * reader must stay inside its bounds and end in one of its answers. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "admin/http_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    data++;
    size--;
    struct xs_http_request r;
    xs_http_request_init(&r);
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0; off += step) {
        size_t n = size - off < step ? size - off : step;
        rc = xs_http_request_feed(&r, (const char *)data + off, n);
    }
    assert(rc == 0 || rc == 1 || rc == 400 || rc == 405 || rc == 413 || rc == 414 || rc == 431);
    assert(r.head_bytes <= XS_HTTP_HEAD_MAX);
    assert(r.path_len <= XS_HTTP_PATH_MAX && strlen(r.path) == r.path_len);
    if (rc == 1)
        assert(r.path[0] == '/' && (r.method == XS_HTTP_GET || r.method == XS_HTTP_HEAD));
    return 0;
}
