/* Internal to the inbound stream: what s2s_in.c (the stream's life:
 * header, features, restarts, budgets, timers) and s2s_in_auth.c (who
 * authenticates how: dialback, SASL EXTERNAL, the re-check after a reload)
 * share. Nothing else includes this. */
#ifndef XS_XMPP_S2S_IN_INT_H
#define XS_XMPP_S2S_IN_INT_H

#include <arpa/inet.h>

#include "tls/tls.h"
#include "xmpp/s2s.h"
#include "xmpp/s2s_sm.h"
#include "xmpp/s2s_trust.h"
#include "xmpp/sasl.h"

/* <failed/> answers to stream management requests one stream gets before
 * it is ended: each answer is larger than the request, so a peer repeating
 * a refused request is cut off rather than answered forever. */
#define IN_SM_REFUSALS_MAX 4
/* <auth> elements one stream may send: a server has one certificate, so a
 * second or third try with another authzid is all a real peer needs. */
#define IN_SASL_ATTEMPTS_MAX 4

/* What the loop does once the parser has stopped after an element that
 * restarts the stream (RFC 6120 §5.4.3.3, §6.4.6). */
enum in_restart { RESTART_NONE = 0, RESTART_TLS, RESTART_SASL };

enum in_state { IN_WAIT_HEADER, IN_OPEN, IN_TLS_HANDSHAKE, IN_CLOSED };

enum pair_state { PAIR_PENDING = 1, PAIR_VALID = 2 };

struct in_pair {
    char local[XS_DOMAIN_MAX];
    char remote[XS_DOMAIN_MAX];
    enum pair_state state;
    enum xs_s2s_auth how; /* once valid */
};

struct s2s_in {
    struct s2s_in *next;
    struct xs_xmpp *x;
    uint64_t serial;
    /* What verifications for this stream are filed under: twice the serial,
     * plus one after STARTTLS (which happens at most once), so an answer to
     * a key sent before TLS can never validate a pair claimed after it. */
    uint64_t verify_tag;
    struct xs_link *link;
    struct xs_xml_parser *parser;
    enum in_state state;
    int tls;
    int sasl_ok;    /* SASL EXTERNAL succeeded: not offered again */
    unsigned sasl_attempts;
    enum in_restart restart;
    int header_sent; /* on this (possibly restarted) stream */
    char id[XS_STREAM_ID_LEN + 1];
    char source[INET6_ADDRSTRLEN]; /* the peer's address (IPv6: its /64), for per-source caps */
    char local[XS_DOMAIN_MAX];     /* the header's to */
    char remote[XS_DOMAIN_MAX];    /* the header's from, "" when the peer gave none */
    /* Grown one pair at a time up to XS_S2S_PAIRS_MAX: most streams carry
     * one, and an idle stream should cost what it uses. */
    struct in_pair *pairs;
    size_t n_pairs, cap_pairs;
    unsigned db_attempts;   /* db:result elements while unauthenticated */
    unsigned db_verifies;   /* db:verify elements while unauthenticated */
    double header_deadline; /* 0 once a header came in */
    double auth_deadline;   /* set by the first header; ends an unauthenticated life */
    double last_activity;
    double since; /* Unix time it was accepted (status page) */
    double last_keepalive; /* the last whitespace keepalive we sent */
    struct xs_sm_in sm;    /* XEP-0198, when the peer enabled it */
    unsigned sm_refusals;
};

/* s2s_in.c */
int xs_s2s_in_authenticated(const struct s2s_in *in);
/* Tight stanza limits until the stream has an authenticated pair. */
void xs_s2s_in_apply_limits(struct s2s_in *in);
void xs_s2s_in_set_state(struct s2s_in *in, enum in_state s, const char *why);
/* Ends the stream with a stream error (a header first if none was sent). */
void xs_s2s_in_error(struct s2s_in *in, const char *cond, const char *text);
/* Closes without a stream error after a write the link refused. */
void xs_s2s_in_write_failed(struct s2s_in *in, int rc);
struct in_pair *xs_s2s_in_find_pair(struct s2s_in *in, const char *local, const char *remote);
size_t xs_s2s_in_count_pending(const struct s2s_in *in);

/* s2s_in_auth.c */
/* The verdict on the peer's certificate for `domain`, in *out (returned);
 * NULL when the stream is not encrypted. */
const struct xs_tls_peer *xs_s2s_in_peer_cert(const struct s2s_in *in, const char *domain,
                                              struct xs_tls_peer *out);
/* The elements of the stream's authentication; `el` borrowed. */
void xs_s2s_in_db_result(struct s2s_in *in, struct xs_xml_el *el);
void xs_s2s_in_db_verify(struct s2s_in *in, struct xs_xml_el *el);
void xs_s2s_in_sasl_auth(struct s2s_in *in, const struct xs_xml_el *el);
/* Writes a SASL <failure/> (text may be NULL). */
void xs_s2s_in_sasl_failure(struct s2s_in *in, enum xs_sasl_cond cond, const char *text);

#endif
