/* XEP-0198 counters (s2s_sm.h). Every comparison is made on differences
 * modulo 2^32, so a stream that sends more than 2^32 stanzas goes on. */
#include "xmpp/s2s_sm.h"

#include <string.h>

#include "core/err.h"

void xs_sm_out_init(struct xs_sm_out *s)
{
    memset(s, 0, sizeof *s);
    s->state = XS_SM_OFF;
}

void xs_sm_out_requested(struct xs_sm_out *s, double now)
{
    s->state = XS_SM_REQUESTED;
    s->sent = 0;
    s->acked = 0;
    s->awaiting = 0;
    s->asked_at = now;
}

int xs_sm_out_count(struct xs_sm_out *s, uint32_t *n)
{
    if (s->state == XS_SM_OFF)
        return 0;
    *n = ++s->sent;
    return 1;
}

int xs_sm_out_want_request(const struct xs_sm_out *s)
{
    return s->state == XS_SM_ON && !s->awaiting && s->sent != s->acked;
}

void xs_sm_out_requested_ack(struct xs_sm_out *s, double now)
{
    s->awaiting = 1;
    s->asked_at = now;
}

int xs_sm_out_ack(struct xs_sm_out *s, uint32_t h, uint32_t *prev)
{
    uint32_t outstanding = s->sent - s->acked;
    uint32_t advance = h - s->acked;
    if (advance > outstanding) {
        /* Either h is past what was sent, or it is below the last h. The
         * two cannot be told apart modulo 2^32 in general; an h within the
         * last 2^31 behind is read as going backwards. */
        uint32_t back = s->acked - h;
        return back != 0 && back < 0x80000000u ? XS_EPROTO : XS_ELIMIT;
    }
    *prev = s->acked;
    s->acked = h;
    s->awaiting = 0;
    return 0;
}

int xs_sm_covers(uint32_t prev, uint32_t h, uint32_t n)
{
    return (uint32_t)(n - prev - 1u) < (uint32_t)(h - prev);
}

void xs_sm_in_init(struct xs_sm_in *s)
{
    memset(s, 0, sizeof *s);
}

void xs_sm_in_handled(struct xs_sm_in *s)
{
    if (s->enabled)
        s->handled++;
}

int xs_sm_parse_h(const char *text, uint32_t *out)
{
    if (!text || !*text)
        return XS_EINVAL;
    uint64_t v = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9' || c - text >= 10)
            return XS_EINVAL;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    if (v > 0xffffffffu)
        return XS_EINVAL;
    *out = (uint32_t)v;
    return 0;
}
