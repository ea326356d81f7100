/* XEP-0198 Stream Management counters for one s2s stream, without I/O: the
 * outbound stream's count of stanzas sent and acknowledged (and when to ask
 * for an acknowledgement), the inbound stream's count of stanzas handled.
 * Resumption is not used. The streams own the elements on the wire; this
 * module owns the arithmetic, which is all modulo 2^32 (XEP-0198 §4: h
 * goes from 2^32-1 back to 0), so it is tested on its own. */
#ifndef XS_XMPP_S2S_SM_H
#define XS_XMPP_S2S_SM_H

#include <stdint.h>

#define XS_NS_SM "urn:xmpp:sm:3"

/* Seconds an outbound stream waits for <enabled/> or <failed/> after its
 * <enable/>, and for <a/> after an <r/>. A peer that says nothing for this
 * long is not acknowledging: without an answer to <enable/> the stream
 * falls back to the error grace; without an <a/> it is ended, and what it
 * did not acknowledge fails (see s2s.h). */
#define XS_SM_ANSWER_TIMEOUT 10.0
/* Seconds an acknowledged stanza still waits for an error stanza about it
 * (never more than xmpp.error_grace). A peer bounces a message it cannot
 * deliver while handling it, before it answers the <r/> that follows; but
 * the error travels on the peer's own stream to us, a different TCP
 * connection, so it can arrive a moment after the <a/>. */
#define XS_SM_ACK_SETTLE 0.05

enum xs_sm_state {
    XS_SM_OFF,       /* not offered, refused, or not wanted */
    XS_SM_REQUESTED, /* <enable/> sent, no answer yet: stanzas already count */
    XS_SM_ON,        /* <enabled/> received */
};

struct xs_sm_out {
    enum xs_sm_state state;
    uint32_t sent;   /* stanzas sent since <enable/>; the number of the last one */
    uint32_t acked;  /* the peer's last h */
    int awaiting;    /* an <r/> is unanswered */
    double asked_at; /* when the <enable/> or the unanswered <r/> went out */
};

struct xs_sm_in {
    int enabled;
    uint32_t handled; /* stanzas handled since <enabled/> */
    int owed;         /* an <r/> came that no <a/> has answered yet */
};

/* Outbound. */
void xs_sm_out_init(struct xs_sm_out *s);
/* <enable/> went out at `now`: counting starts from zero. */
void xs_sm_out_requested(struct xs_sm_out *s, double now);
/* A stanza went out. While stanzas count (REQUESTED or ON) sets *n to its
 * number, the h that acknowledges it (the first is 1), and returns 1;
 * returns 0 otherwise. */
int xs_sm_out_count(struct xs_sm_out *s, uint32_t *n);
/* Whether an <r/> is worth sending now: on, stanzas not yet acknowledged,
 * and no <r/> unanswered (one at a time: an <a/> answers for everything
 * sent before its <r/>, so more would only cost bytes). */
int xs_sm_out_want_request(const struct xs_sm_out *s);
void xs_sm_out_requested_ack(struct xs_sm_out *s, double now);
/* An <a h/> arrived. 0 with *prev set to the previous h when h is between
 * the last h and the count sent; XS_ELIMIT when it acknowledges more than
 * was sent (XEP-0198 handled-count-too-high); XS_EPROTO when it goes
 * backwards. The state is left unchanged on failure. */
int xs_sm_out_ack(struct xs_sm_out *s, uint32_t h, uint32_t *prev);
/* Whether stanza number n is acknowledged by an ack that moved h from
 * `prev` to `h`: n in (prev, h], modulo 2^32. */
int xs_sm_covers(uint32_t prev, uint32_t h, uint32_t n);

/* Inbound. */
void xs_sm_in_init(struct xs_sm_in *s);
/* A stanza was handled (accepted for delivery); counted while enabled. */
void xs_sm_in_handled(struct xs_sm_in *s);

/* Parses h: decimal digits only, at most 2^32-1. 0 or XS_EINVAL. */
int xs_sm_parse_h(const char *text, uint32_t *out);

#endif
