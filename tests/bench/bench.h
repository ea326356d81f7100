/* xsbench: a load tool that drives xsgw on loopback. It plays the XMPP
 * server "bench.test" (its own s2s streams, dialback in both roles) and the
 * SIP next hop of the gateway, and pushes messages each way, either
 * closed-loop (at most --window unanswered: peak figures) or open-loop (a
 * fixed rate for a duration, sends scheduled by the clock whatever the
 * gateway answers: what a sustained load does to it). It reports what was
 * offered, delivered, refused (with the answer), lost and duplicated, the
 * latency percentiles, and the gateway's CPU and memory, per second and
 * overall.
 *
 * Everything per message lives in arrays sized once for the run; the wire is
 * written from reusable buffers, so the tool's own cost stays flat and
 * small next to the gateway it measures on the same cores. */
#ifndef XS_BENCH_H
#define XS_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "tls/tls.h"

#define BENCH_MAX_N 4000000L
#define BENCH_MAX_WINDOW 10000
#define BENCH_MAX_RATE 1000000.0
#define BENCH_GW_DOMAIN "sip.test"
#define BENCH_DOMAIN "bench.test"
#define BENCH_SECRET "xsbench-dialback-secret"
/* Errors worth printing in full per phase; the rest are only counted. */
#define BENCH_ERRORS_SHOWN 5
/* Distinct refusal answers tallied per phase; more fall into "other". */
#define BENCH_ANSWERS_MAX 16
/* RFC 3261 T1: a SIP final response later than this makes a UDP sender
 * retransmit. */
#define BENCH_T1_NS 500000000ull

/* Fixed ports on 127.0.0.1, only for a gateway the tool does not start
 * (--gw-pid, --print-policy, --policy FILE); --port-offset shifts all four.
 * A gateway the tool starts gets free ports chosen at run time. */
#define BENCH_GW_XMPP_PORT 25269
#define BENCH_GW_SIP_PORT 25060
#define BENCH_GW_ADMIN_PORT 25280
#define BENCH_PEER_PORT 25369
#define BENCH_HOP_PORT 25070

enum bench_dir { BENCH_X2S = 0, BENCH_S2X = 1 };

/* Per-message state bits. A message's fate is the first of ARRIVED or
 * ERROR; the other one coming later is a contradiction, counted apart. */
enum {
    BM_SENT = 1,
    BM_ARRIVED = 2,  /* seen on the far side */
    BM_ANSWERED = 4, /* SIP final response for a message we sent to the gateway */
    BM_ERROR = 8,    /* refused: an error answer before any arrival */
    BM_DONE = 16,
};

struct bench_opts {
    long n;          /* closed loop: messages per direction */
    int window;      /* closed loop: unanswered at most */
    double rate;     /* open loop when > 0: messages per second */
    double duration; /* open loop: seconds of offered load */
    double late_ms;  /* open loop: a send this far behind its schedule is late */
    int dirs;        /* bit (1 << enum bench_dir) per direction to run */
    /* The next hop answers each request this long after it came, as a slow
     * SIP endpoint does: the gateway then holds rate x delay transactions
     * open, which is what fills its transaction table. */
    double sip_delay_ms;
    int no_sip_rtx; /* our UDP SIP client does not retransmit */
    int no_sm;      /* our XMPP server offers no XEP-0198 and refuses <enable/> */
    int tls;
    int sip_udp;
    const char *gateway; /* path of xsgw to start, or NULL */
    int gw_pid;          /* pid of a running gateway, or 0 */
    const char *policy;  /* policy file to run the gateway with, NULL: write one */
    const char *lua_dir;
    const char *gw_log;
    const char *gw_log_level;
    const char *json; /* write the report as JSON here too */
    int fixed_ports;  /* the four fixed ports (+ offset) instead of free ones */
    int port_offset;
    double timeout; /* seconds for the whole run; 0: derived from the load */
    double drain;
    /* xmpp.error_grace for the written policy, only when given: otherwise
     * the policy leaves it out and the gateway's own default applies. */
    double error_grace;
    int error_grace_set;
    int print_policy;
};

/* One second of a phase, counted by when each event happened. */
struct bench_sec {
    long offered, delivered, refused, dups, late;
    uint64_t p50, p99, p999, max; /* delivery latency of this second's arrivals, ns */
    double gw_cpu;                /* % of one core; < 0: not sampled */
    long gw_rss_kb;               /* < 0: not sampled */
};

/* The per-second rows of a phase. Events are bucketed by their own time:
 * an event in a later second closes every second before it, so a row is
 * exact even when the timer that prints it runs late. */
struct bench_series {
    uint64_t t0;
    struct bench_sec *rows;
    long cap, n_rows; /* rows closed */
    struct bench_sec cur;
    uint64_t *lat; /* latencies of the current second, unsorted */
    long lat_n, lat_cap;
    int closed;
};

struct bench_answer {
    char what[64];
    long count;
};

struct bench_phase {
    const char *name;
    long n;    /* messages planned */
    long sent; /* offered: handed to the socket */
    long arrived, answered, refused, done, dups, retrans, unexpected, conflicts;
    long late, after_end, t1_answers;
    uint64_t *t_send; /* ns, by sequence number: when it was scheduled (open) or sent */
    uint64_t *t_recv; /* arrival on the far side */
    uint64_t *t_ans;  /* SIP final response (SIP->XMPP) */
    uint32_t *key;    /* SIP transaction of the first arrival (XMPP->SIP), 0: none */
    uint8_t *rtx;     /* retransmissions of our UDP request (SIP->XMPP) */
    long rtx_low;     /* no unanswered request below this one */
    long rtx_sent;
    uint8_t *flags;
    struct bench_series sec;
    struct bench_answer answers[BENCH_ANSWERS_MAX];
    long answers_other;
    uint64_t t_start, t_end, t_progress, t_offer_end;
    uint64_t gw_ticks0, gw_ticks1, gw_sample_ticks, gw_sample_t;
    long rows_sampled, rows_printed;
    uint64_t self_us0, self_us1;
    int gw_cpu_known;
    int started, finished, offering;
    int shown_errors;
};

struct bench_xmpp;
struct bench_sip;

struct bench {
    uv_loop_t *loop;
    struct bench_opts o;
    int gw_xmpp_port, gw_sip_port, peer_port, hop_tcp_port, hop_udp_port;
    /* The gateway's admin listener, on a port of its own so that gateways
     * of parallel runs never compete for the default; no_admin: the gateway
     * predates the admin listener (its --check refuses the key), as the old
     * one of a comparison may. */
    int gw_admin_port, gw_no_admin;
    uint64_t run_id; /* makes Call-IDs and branches unique across runs */
    struct bench_phase ph[2];
    int cur; /* phase in progress, -1 before the first */
    struct xs_tls_ctx *tls;
    struct bench_xmpp *xmpp;
    struct bench_sip *sip;

    /* The gateway process, when the tool started it. */
    uv_process_t proc;
    int proc_running;
    int spawns;
    int respawn; /* the gateway lost a port race: start it again once closed */
    int gw_pid;
    char policy_path[256];
    int policy_written;
    char log_path[256];
    uv_timer_t kill_timer;

    uv_timer_t deadline; /* the whole run */
    uv_timer_t tick;     /* readiness polling, end-of-phase checks */
    uv_timer_t retry;    /* closed loop: re-pumps after a send that would block */
    uv_timer_t clock;    /* open loop: sends what is due, every millisecond */
    uv_timer_t second;   /* per-second rows, CPU and RSS samples */
    uv_timer_t rtx;      /* SIP->XMPP over UDP: retransmits what is unanswered */
    uint64_t ready_since;
    long gw_hwm_kb;                    /* the highest VmHWM seen, -1 before any */
    unsigned long sm_streams, sm_acks; /* XEP-0198: streams it was enabled on, acks we sent */
    int gw_ready;
    int stopping;
    int failed;
    int exit_code;
};

/* bench_opts.c: fills o from the command line; 0, or -1 after saying why
 * on stderr. --help prints and exits. */
int bench_parse_opts(int argc, char **argv, struct bench_opts *o);

/* bench_main.c: what the protocol modules report. seq indexes the phase. */
void bench_fatal(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bench_xmpp_ready(struct bench *b);
void bench_sip_ready(struct bench *b);
/* key names the SIP transaction that carried it (a hash of its top Via), so
 * a retransmission is told from a second delivery; 0 when there is none. */
void bench_arrived(struct bench *b, enum bench_dir d, long seq, uint32_t key);
void bench_answered(struct bench *b, enum bench_dir d, long seq, int status);
/* what: the answer, e.g. "SIP 503" or "resource-constraint/wait" (borrowed). */
void bench_msg_error(struct bench *b, enum bench_dir d, long seq, const char *what);
/* A send returned XS_EAGAIN: try the window again shortly. */
void bench_retry_later(struct bench *b);

/* bench_stats.c: bookkeeping and figures, nothing of the network. */
int bench_phase_init(struct bench_phase *p, const char *name, long n, long max_secs);
void bench_phase_free(struct bench_phase *p);
/* Records an event of message seq at now; returns 1 if it changed the
 * message's state (a first arrival, a first error, a first answer), 0 if it
 * was a duplicate, a retransmission, a contradiction or not ours. */
int bench_phase_arrive(struct bench_phase *p, long seq, uint32_t key, uint64_t now);
int bench_phase_refuse(struct bench_phase *p, long seq, const char *what, uint64_t now);
int bench_phase_answer(struct bench_phase *p, long seq, uint64_t now);
/* Records that seq was handed to the socket at now, scheduled at sched. */
void bench_phase_offer(struct bench_phase *p, long seq, uint64_t sched, uint64_t now,
                       uint64_t late_ns);
/* Messages offered and neither delivered nor refused. */
long bench_phase_lost(const struct bench_phase *p);

/* 0: every message delivered once; 1: something lost, duplicated,
 * contradicted, not ours, never offered, or (unanswered) delivered without a
 * SIP final response; 3: some refused with an answer, nothing else wrong. */
int bench_phase_verdict(const struct bench_phase *p, long unanswered);

/* Nearest-rank percentile (q in [0,1]) of v[0..n), which must be sorted. */
uint64_t bench_pct(const uint64_t *v, long n, double q);
/* Sorts v[0..n) ascending. */
void bench_sort(uint64_t *v, long n);

int bench_series_init(struct bench_series *s, long max_rows, long lat_cap);
void bench_series_free(struct bench_series *s);
void bench_series_start(struct bench_series *s, uint64_t t0);
/* Closes every second that ended before now. */
void bench_series_advance(struct bench_series *s, uint64_t now);
/* Counts into the second that now falls in (kind: one of the fields). */
enum bench_ev { BEV_OFFERED, BEV_DELIVERED, BEV_REFUSED, BEV_DUP, BEV_LATE };
void bench_series_count(struct bench_series *s, enum bench_ev kind, uint64_t now);
void bench_series_latency(struct bench_series *s, uint64_t lat_ns, uint64_t now);
/* Closes the current, partial second too; nothing is counted after. */
void bench_series_close(struct bench_series *s, uint64_t now);

/* utime+stime of pid in clock ticks; 0 or -1. */
int bench_proc_cpu(int pid, uint64_t *ticks);
/* A "Vm...:" line of /proc/pid/status in kB ("VmRSS:", "VmHWM:"), -1 if unknown. */
long bench_proc_kb(int pid, const char *field);
uint64_t bench_self_cpu_us(void);

/* bench_report.c: the text and JSON reports. */
void bench_print_sec_header(void);
void bench_print_sec(const struct bench_phase *p, const struct bench_sec *r, long i);
/* Sorts the phase's latency arrays in place: call once, at the end. */
/* Returns the verdict: 0 every message delivered once; 1 something lost,
 * duplicated, contradicted or never offered; 3 some refused with an answer,
 * nothing else wrong. */
int bench_report(struct bench *b, FILE *json);

/* bench_xmpp.c: the peer listener (streams the gateway opens) and our own
 * stream to the gateway. */
int bench_xmpp_listen(struct bench *b);
/* Opens the stream to the gateway; bench_xmpp_ready() once dialback passed. */
void bench_xmpp_connect(struct bench *b);
/* Sends message seq; 0, XS_EAGAIN, or another negative XS_E*. */
int bench_xmpp_send(struct bench *b, long seq, uint64_t now);
/* Closes every handle; bench_xmpp_free() once the loop has ended, when no
 * callback can reach the module any more. */
void bench_xmpp_close(struct bench *b);
void bench_xmpp_free(struct bench *b);

/* bench_sip.c: the next-hop listeners (TCP and UDP) and our sender. */
int bench_sip_listen(struct bench *b);
/* Prepares the sender; bench_sip_ready() once it can send. */
void bench_sip_connect(struct bench *b);
int bench_sip_send(struct bench *b, long seq, uint64_t now);
void bench_sip_close(struct bench *b);
void bench_sip_free(struct bench *b);

#endif
