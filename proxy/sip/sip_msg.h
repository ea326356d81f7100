/* SIP messages on libosip2: parsing and validation of what arrives (into a
 * verdict: a response, a local answer, or a MESSAGE turned into an event by
 * sip_translate.h), and building of the responses the gateway sends.
 * libosip2 is used only as a parser for header fields; framing is
 * sip_frame.h's, bodies are taken from the raw bytes, and everything we send
 * is written as text. No sockets, no timers: the fuzzer drives this file
 * alone. */
#ifndef XS_SIP_MSG_H
#define XS_SIP_MSG_H

#include <osipparser2/osip_parser.h>
#include <stddef.h>

#include "core/buf.h"
#include "event.h"

/* Bytes of a transaction key: branch, sent-by and method, each bounded. */
#define XS_SIP_KEY_MAX 320

/* No real request comes near these: a header section past 8 KiB or more Via
 * headers than Max-Forwards allows hops is refused with a terse answer that
 * echoes none of it (audit H1). */
#define XS_SIP_HEADER_MAX 8192
#define XS_SIP_VIA_MAX 70

/* osip keeps its header-name table in process-wide memory, filled by
 * parser_init(); this is the one global the SIP side touches. It also turns
 * osip's own stderr tracing off (we log parse failures ourselves). Safe to
 * call any number of times; must run before the first parse. */
void xs_sip_msg_global_init(void);

enum xs_sip_verdict {
    XS_SIP_DROP = 0, /* nothing can be answered: log and forget */
    XS_SIP_RESPONSE, /* a response; match it against client transactions */
    XS_SIP_ACK,      /* absorbed */
    XS_SIP_ANSWER,   /* a request answered locally with `status` */
    XS_SIP_SUBMIT,   /* a valid MESSAGE; `ev` is ready for the router */
    XS_SIP_DIALOG,   /* a SUBSCRIBE or NOTIFY; `body` is its content */
};

struct xs_sip_in {
    enum xs_sip_verdict verdict;
    osip_message_t *msg;      /* owned; NULL for DROP */
    int status;               /* ANSWER: the status to send */
    const char *why;          /* static text: why DROP or ANSWER, for logs and Warning */
    struct xs_event *ev;      /* owned; SUBMIT only */
    char key[XS_SIP_KEY_MAX]; /* transaction key, for every verdict but DROP */
    /* ANSWER: the request passed XS_SIP_HEADER_MAX or XS_SIP_VIA_MAX; answer
     * it with xs_sip_build_terse_response (top Via only) and keep nothing. */
    int absurd;
    /* DIALOG: the content (borrowed from the parsed bytes, valid as long
     * as they are). */
    const char *body;
    size_t body_len;
};

/* Parses one framed message (data borrowed). `oversize` is 1 when the
 * transport saw more than the configured maximum: a parsable request then
 * gets 413. Always fills *in; release with xs_sip_in_clear. */
void xs_sip_in_parse(const char *data, size_t len, int oversize, struct xs_sip_in *in);
void xs_sip_in_clear(struct xs_sip_in *in);

/* Parses only a header section data[0..hdr_len) (borrowed) whose framing
 * failed, so the request can still be answered: Content-Length lines are
 * left out before osip sees it. Only in->msg and in->verdict (DROP or
 * ANSWER for a request other than ACK) are meaningful. */
void xs_sip_in_parse_head(const char *data, size_t hdr_len, struct xs_sip_in *in);

/* Reads only what an answer to a request from an untrusted source needs:
 * the header section of data[0..len) (borrowed), without Content-Length, so
 * the body is never looked at. For a request other than ACK with a Via the
 * verdict is ANSWER (status 403, in->msg and in->key set; in->absurd as in
 * xs_sip_in_parse), else DROP. */
void xs_sip_in_parse_refused(const char *data, size_t len, struct xs_sip_in *in);

/* The standard reason phrase for a status ("Not Found"); "Unknown" else. */
const char *xs_sip_reason_phrase(int status);

/* Builds a response to req (borrowed) into out. `to_tag` is added when the
 * request's To carries none. When `warn_text` is not NULL a Warning: 399
 * header carries it, quoted and cleaned, with agent `warn_host`. `extra` is
 * zero or more complete header lines ("Allow: ...\r\n"), may be NULL.
 * Headers missing from the request are left out. */
int xs_sip_build_response(const osip_message_t *req, int status, const char *to_tag,
                          const char *warn_host, const char *warn_text, const char *extra,
                          struct xs_buf *out);

/* Builds the smallest response to req (borrowed) into out: compact header
 * names, the Vias (only the top one unless `all_vias`), From, To (with
 * to_tag when it has none), Call-ID and CSeq, each left out when longer than
 * 256 bytes, and nothing else: no Warning, no Allow. For answers to sources
 * that are not trusted and to absurd requests, so that what goes back is
 * never much larger than what came in. */
int xs_sip_build_terse_response(const osip_message_t *req, int status, const char *to_tag,
                                int all_vias, struct xs_buf *out);

#endif
