/* The gateway under test (bench_gw.c): ports, policy, process, log. */
#ifndef XS_BENCH_GW_H
#define XS_BENCH_GW_H

#include <stddef.h>

struct bench;

/* Sets the gateway's ports (fixed, or free ones chosen now) and, with
 * --gateway, writes the policy and starts it; 0 or a negative XS_E*. The
 * tool's own listeners must be bound first: the policy names their ports. */
int bench_gw_start(struct bench *b);
/* 1 once the started gateway logged ev=gateway.ready (always 1 for one the
 * tool did not start). */
int bench_gw_ready(const struct bench *b);
/* Asks the started gateway to stop (SIGTERM, SIGKILL after a grace). */
void bench_gw_stop(struct bench *b);
/* Removes the written policy; after the loop ended. */
void bench_gw_cleanup(struct bench *b);
/* The policy the tool writes, into out[cap]; its length or -1. */
int bench_gw_format_policy(const struct bench *b, char *out, size_t cap);

#endif
