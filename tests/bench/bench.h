/* xsbench: a load tool that drives a running xsgw on loopback. It plays the
 * XMPP server "bench.test" (its own s2s streams, dialback in both roles) and
 * the SIP next hop of the gateway, pushes N messages each way with a bounded
 * window, and reports throughput, latency and the gateway's CPU and memory.
 *
 * Everything per message lives in arrays sized once for N; the wire is
 * written from reusable buffers, so the tool's own cost stays flat and
 * small next to the gateway it measures on the same cores. */
#ifndef XS_BENCH_H
#define XS_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tls/tls.h"

#define BENCH_MAX_N 1000000L
#define BENCH_MAX_WINDOW 10000
#define BENCH_GW_DOMAIN "sip.test"
#define BENCH_DOMAIN "bench.test"
#define BENCH_SECRET "xsbench-dialback-secret"
/* Errors worth printing in full per phase; the rest are only counted. */
#define BENCH_ERRORS_SHOWN 5

/* Ports on 127.0.0.1; --port-offset shifts all four. */
#define BENCH_GW_XMPP_PORT 25269
#define BENCH_GW_SIP_PORT 25060
#define BENCH_PEER_PORT 25369
#define BENCH_HOP_PORT 25070

enum bench_dir { BENCH_X2S = 0, BENCH_S2X = 1 };

/* Per-message state bits. */
enum {
    BM_SENT = 1,
    BM_ARRIVED = 2,  /* seen on the far side */
    BM_ANSWERED = 4, /* SIP 200 for a message we sent to the gateway */
    BM_ERROR = 8,
    BM_DONE = 16,
};

struct bench_opts {
    long n;
    int window;
    int tls;
    int sip_udp;
    const char *gateway; /* path of xsgw to start, or NULL */
    int gw_pid;          /* pid of a running gateway, or 0 */
    const char *policy;  /* policy file to run the gateway with, NULL: write one */
    const char *lua_dir;
    const char *gw_log;
    const char *gw_log_level;
    int port_offset;
    double timeout; /* seconds for the whole run */
    double drain;   /* seconds without progress before a phase gives up */
    /* xmpp.error_grace of the written policy: how long the gateway holds a
     * SIP 200 waiting for an XMPP error. The bench peer never sends one, so
     * the default 0 measures the gateway rather than the grace timer. */
    double error_grace;
    int print_policy;
};

struct bench_phase {
    const char *name;
    long n;
    long sent, arrived, answered, errors, done, dups, unexpected;
    uint64_t *t_send; /* ns, by sequence number */
    uint64_t *t_recv;
    uint8_t *flags;
    uint64_t t_start, t_end, t_progress;
    uint64_t gw_ticks0, gw_ticks1;
    uint64_t self_us0, self_us1;
    int gw_cpu_known;
    int started, finished;
    int shown_errors;
};

struct bench_xmpp;
struct bench_sip;

struct bench {
    uv_loop_t *loop;
    struct bench_opts o;
    int gw_xmpp_port, gw_sip_port, peer_port, hop_port;
    uint64_t run_id; /* makes Call-IDs and branches unique across runs */
    struct bench_phase ph[2];
    int cur; /* phase in progress, -1 before the first */
    struct xs_tls_ctx *tls;
    struct bench_xmpp *xmpp;
    struct bench_sip *sip;

    /* The gateway process, when the tool started it. */
    uv_process_t proc;
    int proc_running;
    int gw_pid;
    char policy_path[256];
    int policy_written;
    char log_path[256];
    size_t log_scanned;
    uv_timer_t kill_timer;

    uv_timer_t deadline; /* the whole run */
    uv_timer_t tick;     /* readiness polling, drain checks */
    uv_timer_t retry;    /* re-pumps after a send that would block */
    uint64_t ready_since;
    unsigned long ticks;
    long gw_hwm_kb; /* the highest VmHWM seen, -1 before any */
    int gw_ready;
    int stopping;
    int failed;
    int exit_code;
};

/* bench_main.c: what the protocol modules report. seq indexes the phase. */
void bench_fatal(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bench_xmpp_ready(struct bench *b);
void bench_sip_ready(struct bench *b);
void bench_arrived(struct bench *b, enum bench_dir d, long seq);
void bench_answered(struct bench *b, enum bench_dir d, long seq, int status);
void bench_msg_error(struct bench *b, enum bench_dir d, long seq, const char *what);
/* A send returned XS_EAGAIN: try the window again shortly. */
void bench_retry_later(struct bench *b);

/* bench_stats.c */
int bench_phase_init(struct bench_phase *p, const char *name, long n);
void bench_phase_free(struct bench_phase *p);
/* Marks seq's bits; returns 1 if seq is a valid sequence number of a message
 * that was sent, 0 otherwise. */
int bench_phase_mark(struct bench_phase *p, long seq, uint8_t bits, uint64_t now);
void bench_phase_print_header(void);
/* Prints one result row. Sorts t_recv in place: call once, at the end. */
void bench_phase_print(struct bench_phase *p);
/* utime+stime of pid in clock ticks; 0 or -1. */
int bench_proc_cpu(int pid, uint64_t *ticks);
/* VmHWM of pid in kB, -1 if unknown. */
long bench_proc_hwm_kb(int pid);
uint64_t bench_self_cpu_us(void);

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
