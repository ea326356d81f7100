/* xsgw validate's sequencing over a real loop with recorded probes: the
 * SIP edge and partners checked in order, a partner that never answers
 * failed by the time bound (and its late report ignored), a probe that
 * cannot start, and a probe that finishes inside the call. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/err.h"
#include "core/log.h"
#include "validate/run.h"

static char dir[] = "/tmp/xsgw-vrun-XXXXXX"; /* mkdtemp(3) template, made in main */

static const char policy_src[] =
    "gateway {\n"
    "  domains = { \"sip.test\" },\n"
    "  xmpp = { listen = \"127.0.0.1:5269\", connect_timeout = 0.5 },\n"
    "  sip = { listen = { \"udp:127.0.0.1:5060\" }, next_hop = \"tcp:edge.test:5070\" },\n"
    "}\n"
    "partner \"good.test\" { }\n"
    "partner \"silent.test\" { }\n"
    "partner \"nodns.test\" { }\n"
    "partner \"sync.test\" { }\n"
    "partner \"*\" { }\n";

static uv_loop_t *loop;
static xs_probe_cb late_cb;
static void *late_ud;
static int probes, pings;
static char order[256];

struct later {
    uv_timer_t t;
    xs_probe_cb cb;
    void *ud;
    int step;
};

static const struct xs_probe_report good[] = {
    {.step = XS_PROBE_CONNECT, .ok = 1, .detail = "good.test:5269 (127.0.0.1)"},
    {.step = XS_PROBE_FEATURES, .ok = 1, .detail = "dialback"},
    {.step = XS_PROBE_AUTH, .ok = 1, .detail = "dialback: valid"},
    {.step = XS_PROBE_DONE, .ok = 1, .detail = "authenticated"},
};

static void on_later_closed(uv_handle_t *h)
{
    free(h->data);
}

/* One recorded report per loop turn, as a real stream would. */
static void on_later(uv_timer_t *h)
{
    struct later *l = h->data;
    l->cb(l->ud, &good[l->step]);
    if (++l->step == 4) {
        uv_close((uv_handle_t *)&l->t, on_later_closed);
        return;
    }
    uv_timer_start(&l->t, on_later, 1, 0);
}

static int fake_probe(void *x, const char *local, const char *remote, xs_probe_cb cb, void *ud)
{
    (void)x;
    probes++;
    CHECK_STR(local, "sip.test");
    strncat(order, remote, sizeof(order) - strlen(order) - 2);
    strcat(order, " ");
    if (!strcmp(remote, "nodns.test"))
        return XS_EDNS;
    if (!strcmp(remote, "silent.test")) {
        late_cb = cb;
        late_ud = ud;
        return 0;
    }
    if (!strcmp(remote, "sync.test")) {
        struct xs_probe_report r = {.step = XS_PROBE_DONE, .ok = 0, .detail = "refused"};
        cb(ud, &r);
        return 0;
    }
    struct later *l = calloc(1, sizeof(*l));
    l->cb = cb;
    l->ud = ud;
    uv_timer_init(loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, on_later, 1, 0);
    return 0;
}

static int fake_ping(void *sip, xs_sip_ping_cb cb, void *ud)
{
    (void)sip;
    pings++;
    strcat(order, "--sip ");
    cb(ud, 200, "OK", NULL, "");
    return 0;
}

static int status = -1, dones;

static void on_done(void *ud, int st)
{
    (void)ud;
    dones++;
    status = st;
}

static char *run(const struct xs_validate_target *t, const char *const *subjects, size_t n,
                 int json, struct xs_validate_run **r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    status = -1;
    dones = 0;
    order[0] = '\0';
    CHECK(xs_validate_run_start(loop, t, subjects, n, json, out, on_done, NULL, r) == 0);
    uv_run(loop, UV_RUN_DEFAULT);
    fclose(out);
    return buf;
}

int main(void)
{
    xs_log_set_level(XS_LOG_ERROR + 1);
    if (!mkdtemp(dir))
        return 1;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/p.lua", dir);
    FILE *f = fopen(path, "w");
    fputs(policy_src, f);
    fclose(f);
    struct xs_policy *p = NULL;
    if (xs_policy_load(path, "lua", &p, err, sizeof err) != 0) {
        fprintf(stderr, "policy: %s\n", err);
        return 1;
    }
    unlink(path);
    rmdir(dir);
    loop = uv_default_loop();
    struct xs_validate_target t = {
        .cfg = xs_policy_config(p),
        .local = "sip.test",
        .ours = "sip.test",
        .xmpp_probe = fake_probe,
        .sip_ping = fake_ping,
    };

    /* Everything, as `xsgw validate` with no argument picks it. */
    struct xs_validate_args args = {0};
    const char *subjects[8];
    size_t n = 0;
    CHECK(xs_validate_subjects(&args, p, subjects, 8, &n, stderr) == 0);
    CHECK(n == 5);
    struct xs_validate_run *r = NULL;
    uint64_t t0 = uv_now(loop);
    char *out = run(&t, subjects, n, 0, &r);
    uint64_t took = uv_now(loop) - t0;
    CHECK(dones == 1);
    CHECK(status == XS_VALIDATE_FAIL);
    CHECK_STR(order, "--sip good.test silent.test nodns.test sync.test ");
    /* The silent partner cost one time bound: connect_timeout + 5 s. */
    CHECK(took >= 5500 && took < 7000);
    CHECK(strstr(out, "validate the SIP edge (--sip)\n"
                      "  ok   OPTIONS: 200 OK\n"
                      "verdict: PASS (0 problems)\n") != NULL);
    CHECK(strstr(out, "validate good.test\n"
                      "  ok   listener: listening on 127.0.0.1:5269 for the peer's dialback "
                      "verification\n"
                      "  ok   connect: good.test:5269 (127.0.0.1)\n"
                      "  ok   features: dialback\n"
                      "  ok   authentication: dialback: valid\n"
                      "  ok   authenticated: authenticated\n"
                      "verdict: PASS (0 problems)\n") != NULL);
    CHECK(strstr(out, "validate silent.test\n"
                      "  ok   listener: listening on 127.0.0.1:5269 for the peer's dialback "
                      "verification\n"
                      "  FAIL verdict: no answer within 6 s\n"
                      "verdict: FAIL (1 problem)\n") != NULL);
    CHECK(strstr(out, "  FAIL verdict: the probe could not start: name resolution failed\n") !=
          NULL);
    CHECK(strstr(out, "validate sync.test\n"
                      "  ok   listener: listening on 127.0.0.1:5269 for the peer's dialback "
                      "verification\n"
                      "  FAIL authenticated: refused\n"
                      "verdict: FAIL (1 problem)\n") != NULL);
    free(out);
    /* The silent partner answering after its time: ignored. */
    CHECK(late_cb != NULL);
    if (late_cb) {
        struct xs_probe_report late = {.step = XS_PROBE_DONE, .ok = 1, .detail = "late"};
        late_cb(late_ud, &late);
    }
    CHECK(dones == 1);
    xs_validate_run_free(r);
    uv_run(loop, UV_RUN_DEFAULT);

    /* One partner, JSON, a pass. */
    const char *one[] = {"good.test"};
    out = run(&t, one, 1, 1, &r);
    CHECK(status == XS_VALIDATE_PASS);
    CHECK(out && !strncmp(out, "{\"domain\":\"good.test\",\"steps\":[{\"step\":\"listener\"", 48));
    CHECK(out && strstr(out, "\"problems\":0,\"verdict\":\"PASS\"}\n") != NULL);
    free(out);
    xs_validate_run_free(r);
    uv_run(loop, UV_RUN_DEFAULT);

    /* Finishing inside the call: reported once, nothing started after. */
    const char *sync[] = {"sync.test"};
    probes = 0;
    out = run(&t, sync, 1, 0, &r);
    CHECK(dones == 1 && probes == 1 && status == XS_VALIDATE_FAIL);
    free(out);
    xs_validate_run_free(r);
    uv_run(loop, UV_RUN_DEFAULT);

    xs_policy_free(p);
    CHECK(uv_loop_close(loop) == 0);
    return check_report("test_validate_run");
}
