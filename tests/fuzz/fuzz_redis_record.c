/* libFuzzer target: what the Redis subscription store reads from a server
 * anyone with access to it can write to. The first byte chooses: a store URL
 * (presence.store) parsed strictly, or a server answer in the Redis protocol
 * (hiredis's own reader) taken as a subscription record and checked against
 * the record id it is filed under. Nothing may be accepted that the store
 * would not have written. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "presence/sub_store.h"
#include "presence/sub_store_redis_int.h"

static void url(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    struct url_parts u;
    char err[256];
    if (xs__redis_parse_url(s, &u, err, sizeof err) != 0)
        assert(err[0] != '\0');
    free(s);
}

/* hiredis 0.14 (Debian 12) allocates what an array or string header
 * announces before the rest arrives, with no bound of its own (1.0 added
 * maxelements): a header over this is left out here, as it is the reader's
 * limit, not the record parser's. */
static int huge_header(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '*' && data[i] != '$')
            continue;
        unsigned long long n = 0;
        for (size_t j = i + 1; j < size && data[j] >= '0' && data[j] <= '9'; j++)
            if ((n = n * 10 + (data[j] - '0')) > 1000000)
                return 1;
    }
    return 0;
}

static void record(const uint8_t *data, size_t size)
{
    if (huge_header(data, size))
        return;
    redisReader *rd = redisReaderCreate();
    if (!rd)
        return;
    void *reply = NULL;
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK &&
        redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
        struct xs_sub_record r;
        char why[256] = "";
        if (xs__redis_parse_record(reply, &r, why, sizeof why) == 0) {
            assert(r.watcher && r.presentity && *r.watcher && *r.presentity);
            assert(strlen(r.watcher) <= XS_SUB_URI_MAX && strlen(r.presentity) <= XS_SUB_URI_MAX);
            assert(!r.route_set || strlen(r.route_set) <= XS_SUB_ROUTE_MAX);
            assert(!r.last_pidf || strlen(r.last_pidf) <= XS_SUB_PIDF_MAX);
            char *id = xs__redis_record_id(r.role, r.watcher, r.presentity);
            if (id) {
                assert(xs__redis_id_matches(&r, id));
                free(id);
            }
        } else {
            assert(why[0] != '\0');
        }
        freeReplyObject(reply);
    }
    redisReaderFree(rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        url(data + 1, size - 1);
    else
        record(data + 1, size - 1);
    return 0;
}
