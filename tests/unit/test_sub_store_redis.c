/* The Redis subscription store against a real redis-server that this test
 * starts on a free port of 127.0.0.1 (no persistence) and kills by its PID
 * at the end, also when a check fails or the test crashes. The store
 * contract the SQLite store keeps (sub_store_testutil.h), then what only a
 * shared store meets: the server down at start, killed mid-run and
 * restarted (writes fail with a reason, the store reconnects and has its
 * records written again), writes the server refuses, hostile data in the
 * server refused on load, and the takeover of a dead instance's records by
 * exactly one of two live ones. Skipped (77) without redis-server. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "check.h"
#include "core/err.h"
#include "presence/sub_store.h"
#include "sub_store_testutil.h"

static pid_t redis_pid = -1;
static int redis_port;
static char url[96];
static uv_loop_t loop;

static void redis_kill(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = -1;
    }
}

static void on_fatal(int sig)
{
    if (redis_pid > 0)
        kill(redis_pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Starts redis-server on redis_port and waits until it answers PING.
 * Returns 0, 77 when there is no redis-server, or 1. */
static int redis_start(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Dies with the test, whatever kills the test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--daemonize", "no", "--logfile", "", (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return 1;
    redis_pid = pid;
    for (int i = 0; i < 100; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            redis_pid = -1;
            return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? 77 : 1;
        }
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        int ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        redisFree(c);
        if (ok)
            return 0;
        usleep(50000);
    }
    redis_kill();
    return 1;
}

/* One command on a connection of the test's own; the reply, or NULL. */
static redisReply *cmd(const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    if (!c || c->err) {
        redisFree(c);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static void cmd0(const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    CHECK(c && !c->err);
    if (!c || c->err) {
        redisFree(c);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    CHECK(r && r->type != REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(c);
}

static struct xs_sub_store *open_on(uv_loop_t *l, const char *instance)
{
    struct xs_sub_store *s = NULL;
    char err[512];
    int rc = xs_sub_store_open_redis(l, url, instance, &s, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "open %s as %s: %s (%s)\n", url, instance, xs_errname(rc), err);
    CHECK(rc == 0 && s);
    return s;
}

static struct xs_sub_store *open_a(void)
{
    return open_on(&loop, "gw-a");
}

static struct xs_sub_store_redis_stats stats(const struct xs_sub_store *s)
{
    struct xs_sub_store_redis_stats st;
    xs_sub_store_redis_stats(s, &st);
    return st;
}

/* Runs l until cond(s) holds or seconds pass; returns cond(s). */
static int pump_until(uv_loop_t *l, struct xs_sub_store *s, int (*cond)(struct xs_sub_store *),
                      double seconds)
{
    double end = now_s() + seconds;
    while (!cond(s) && now_s() < end) {
        uv_run(l, UV_RUN_NOWAIT);
        usleep(1000);
    }
    return cond(s);
}

static int idle(struct xs_sub_store *s)
{
    struct xs_sub_store_redis_stats st = stats(s);
    return st.connected && st.pending == 0;
}

static void redis_settle(struct xs_sub_store *s)
{
    CHECK(pump_until(&loop, s, idle, 10));
}

static void redis_close(struct xs_sub_store *s)
{
    s->ops->close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static struct contract redis_contract = {
    .open = open_a,
    .settle = redis_settle,
    .close = redis_close,
    .where = url,
};

static void test_contract(void)
{
    cmd0("FLUSHALL");
    contract_round_trip(&redis_contract);
    cmd0("FLUSHALL");
    contract_bounds(&redis_contract);
    cmd0("FLUSHALL");
    contract_batches_and_misuse(&redis_contract);
    cmd0("FLUSHALL");
    contract_batch_and_reopen(&redis_contract, "redis");
    /* The layout the README gives operators. */
    redisReply *r = cmd("TYPE xsgw:sub:gw-a:1:19:sip:alice@xmpp.test:sip:carol@sip.test");
    CHECK(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = cmd("SCARD xsgw:idx:gw-a");
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == BATCH);
    freeReplyObject(r);
    r = cmd("SISMEMBER xsgw:instances gw-a");
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    /* Closed: the heartbeat is gone at once, so another instance adopts
     * without waiting for it to run out. */
    r = cmd("EXISTS xsgw:hb:gw-a");
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    freeReplyObject(r);
}

static void test_open_errors(void)
{
    struct xs_sub_store *s = (struct xs_sub_store *)&s;
    char err[512] = "";
    /* Nothing listens there. */
    int dead = free_port();
    char u[96];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", dead);
    CHECK(xs_sub_store_open_redis(&loop, u, "gw-a", &s, err, sizeof err) == XS_EIO);
    CHECK(s == NULL && strstr(err, u) && strstr(err, "cannot connect"));
    if (!strstr(err, "cannot connect"))
        fprintf(stderr, "down at start: %s\n", err);
    /* The URL and the name are checked before anything is tried. */
    const char *bad[][2] = {
        {"redis://127.0.0.1", "the port is missing"},
        {"redis://127.0.0.1:6379/16", "database must be a number from 0 to 15"},
        {"redis://u:p@127.0.0.1:6379", "no user or password"},
        {"redis://127.0.0.1:6379?prefix=a:b", "the only option is prefix=name"},
        {"redis://127.0.0.1:6379#x", "unexpected text"},
        {"http://127.0.0.1:6379", "a Redis store is redis://host:port"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK(xs_sub_store_open_redis(&loop, bad[i][0], "gw-a", &s, err, sizeof err) == XS_EINVAL);
        CHECK(s == NULL && strstr(err, bad[i][1]));
        if (!strstr(err, bad[i][1]))
            fprintf(stderr, "%s: %s\n", bad[i][0], err);
        CHECK(xs_sub_store_redis_url_check(bad[i][0], err, sizeof err) == XS_EINVAL);
    }
    CHECK(xs_sub_store_redis_url_check("redis://[::1]:6379/3?prefix=x.y-z_1", err, sizeof err) ==
          0);
    CHECK(xs_sub_store_open_redis(&loop, url, "a b", &s, err, sizeof err) == XS_EINVAL);
    CHECK(s == NULL && strstr(err, "instance name"));
    CHECK(xs_sub_store_open_redis(&loop, url, "", &s, err, sizeof err) == XS_EINVAL);
}

/* ---- hostile data ---- */

#define KEY_FULL "xsgw:sub:gw-a:1:19:sip:alice@xmpp.test:sip:carol@sip.test"

static void expect_load_refused(struct xs_sub_store *s, const char *what, const char *reason)
{
    long n = 0;
    int rc = s->ops->load(s, count_cb, &n);
    const char *e = xs_sub_store_error(s);
    int ok = rc == XS_EPROTO && n == 0 && strstr(e, url) && strstr(e, reason);
    if (!ok)
        fprintf(stderr, "%s: rc %s, %ld records, error \"%s\", wanted \"%s\"\n", what,
                xs_errname(rc), n, e, reason);
    CHECK(ok);
}

static void test_hostile(void)
{
    cmd0("FLUSHALL");
    struct xs_sub_store *s = open_a();
    if (!s)
        return;
    char *long_uri = filled(XS_SUB_URI_MAX + 1, 'w');
    char *long_pidf = filled(XS_SUB_PIDF_MAX + 1, 'p');
    const struct {
        const char *what, *fmt, *arg, *reason;
    } cases[] = {
        {"cseq with letters", "HSET " KEY_FULL " local_cseq 12abc", NULL,
         "local_cseq is not a number"},
        {"cseq over 32 bits", "HSET " KEY_FULL " remote_cseq 4294967296", NULL,
         "remote_cseq is not a number"},
        {"negative cseq", "HSET " KEY_FULL " remote_cseq -1", NULL, "remote_cseq is not a number"},
        {"expiry over 64 bits", "HSET " KEY_FULL " expires_at 99999999999999999999", NULL,
         "expires_at is not a number"},
        {"expiry with a sign", "HSET " KEY_FULL " expires_at +5", NULL,
         "expires_at is not a number"},
        {"expiry with a space", "HSET " KEY_FULL " expires_at %s", " 5", "expires_at is not"},
        {"empty number", "HSET " KEY_FULL " state %s", "", "state is not a number"},
        {"role 3", "HSET " KEY_FULL " role 3", NULL, "role is not a number in its range"},
        {"state 0", "HSET " KEY_FULL " state 0", NULL, "state is not a number in its range"},
        {"unknown field", "HSET " KEY_FULL " owner gw-x", NULL, "unknown field owner"},
        {"NUL inside", "HSET " KEY_FULL " call_id %b", "a\0b", "call_id holds a NUL byte"},
        {"watcher too long", "HSET " KEY_FULL " watcher %s", long_uri,
         "watcher is longer than 1024"},
        {"document too long", "HSET " KEY_FULL " last_pidf %s", long_pidf,
         "last PIDF document is longer than 65536"},
        {"number field gone", "HDEL " KEY_FULL " state", NULL, "a number field is missing"},
        {"watcher gone", "HDEL " KEY_FULL " watcher", NULL, "the watcher is missing"},
        {"another record's fields", "HSET " KEY_FULL " watcher sip:mallory@xmpp.test", NULL,
         "do not match its name"},
        {"not a hash", "SET " KEY_FULL " %s", "x", "not a hash"},
        {"record gone", "DEL " KEY_FULL, NULL, "the record is missing"},
        {"index not a set", "SET xsgw:idx:gw-a %s", "x", "is not an index"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cmd0("FLUSHALL");
        CHECK(s->ops->put(s, &full) == 0);
        CHECK(s->ops->put(s, &nulls) == 0);
        redis_settle(s);
        CHECK(count(s) == 2);
        if (!strcmp(cases[i].what, "not a hash") || !strcmp(cases[i].what, "index not a set"))
            cmd0(!strcmp(cases[i].what, "not a hash") ? "DEL " KEY_FULL : "DEL xsgw:idx:gw-a");
        if (cases[i].arg && strstr(cases[i].fmt, "%b"))
            cmd0(cases[i].fmt, cases[i].arg, (size_t)3);
        else if (cases[i].arg)
            cmd0(cases[i].fmt, cases[i].arg);
        else
            cmd0(cases[i].fmt);
        expect_load_refused(s, cases[i].what, cases[i].reason);
    }
    free(long_uri);
    free(long_pidf);
    redis_close(s);
}

/* ---- the server killed, restarted, refusing ---- */

static int resyncs_seen;
static void test_resync(void *ud)
{
    struct xs_sub_store *s = ud;
    resyncs_seen++;
    /* What the SIP side does: every subscription it holds, again. */
    CHECK(s->ops->begin(s) == 0);
    CHECK(s->ops->put(s, &full) == 0);
    CHECK(s->ops->put(s, &nulls) == 0);
    CHECK(s->ops->commit(s) == 0);
}

static int disconnected(struct xs_sub_store *s)
{
    return !stats(s).connected;
}

static int resynced(struct xs_sub_store *s)
{
    return idle(s) && stats(s).resyncs >= 1 && resyncs_seen >= 1;
}

static void test_killed_mid_run(void)
{
    cmd0("FLUSHALL");
    struct xs_sub_store *s = open_a();
    if (!s)
        return;
    s->resync = test_resync;
    s->user_ud = s;
    resyncs_seen = 0;
    CHECK(s->ops->put(s, &full) == 0);
    redis_settle(s);
    struct xs_sub_store_redis_stats st0 = stats(s);
    CHECK(st0.lost == 0 && st0.failed == 0 && st0.reconnects == 0);

    redis_kill();
    /* Queued on a connection whose server is gone: five commands (MULTI,
     * DEL, HSET, SADD, EXEC) lost, and said so. */
    CHECK(s->ops->begin(s) == 0);
    CHECK(s->ops->put(s, &nulls) == 0);
    CHECK(s->ops->commit(s) == 0);
    CHECK(pump_until(&loop, s, disconnected, 5));
    struct xs_sub_store_redis_stats st1 = stats(s);
    CHECK(st1.lost == 5 && st1.pending == 0);
    if (st1.lost != 5)
        fprintf(stderr, "lost %llu\n", st1.lost);
    /* While it is away, writes fail at once with the reason. */
    CHECK(s->ops->begin(s) == XS_EIO);
    CHECK(strstr(xs_sub_store_error(s), url) && strstr(xs_sub_store_error(s), "not connected"));
    CHECK(s->ops->put(s, &nulls) == XS_EIO);
    CHECK(s->ops->del(s, full.role, full.watcher, full.presentity) == XS_EIO);
    /* It keeps trying with backoff; a second of it is a handful of tries. */
    pump_until(&loop, s, idle, 1);
    CHECK(!stats(s).connected && resyncs_seen == 0);

    /* The server is back, empty: the store reconnects and has every record
     * written again. */
    double t0 = now_s();
    CHECK(redis_start() == 0);
    CHECK(pump_until(&loop, s, resynced, 15));
    double t1 = now_s();
    struct xs_sub_store_redis_stats st2 = stats(s);
    CHECK(st2.reconnects == 1 && st2.resyncs == 1 && resyncs_seen == 1 && st2.failed == 0);
    struct loaded l = {0};
    CHECK(s->ops->load(s, collect, &l) == 0);
    CHECK(l.n == 2 && same_record(&l.v[0].r, &full) && same_record(&l.v[1].r, &nulls));
    loaded_free(&l);
    printf("redis: restarted server: records written again %.0f ms after it was started\n",
           (t1 - t0) * 1e3);

    /* A write the server refuses (out of memory by its own limit): logged
     * and counted, nothing written, and written again once it accepts. */
    xs_sub_store_redis_timing(s, 100, 1000);
    cmd0("CONFIG SET maxmemory-policy noeviction");
    cmd0("CONFIG SET maxmemory 1");
    struct xs_sub_record r3 = nulls;
    r3.watcher = "sip:dave@sip.test";
    CHECK(s->ops->put(s, &r3) == 0);
    redis_settle(s);
    CHECK(stats(s).failed >= 1);
    redisReply *r = cmd("SCARD xsgw:idx:gw-a");
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 2);
    freeReplyObject(r);
    cmd0("CONFIG SET maxmemory 0");
    resyncs_seen = 0;
    CHECK(pump_until(&loop, s, resynced, 5));
    redis_settle(s);
    CHECK(count(s) == 2 && resyncs_seen == 1);
    redis_close(s);
}

/* ---- takeover ---- */

struct instance {
    uv_loop_t loop;
    struct xs_sub_store *s;
    struct loaded adopted;
    const char *name;
};

static int adopt_cb(void *ud, const struct xs_sub_record *r)
{
    struct instance *in = ud;
    return collect(&in->adopted, r);
}

static void pump_both(struct instance *a, struct instance *b, size_t want, double seconds)
{
    double end = now_s() + seconds;
    while (now_s() < end && a->adopted.n + b->adopted.n < want) {
        uv_run(&a->loop, UV_RUN_NOWAIT);
        uv_run(&b->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

/* A gateway that writes records and dies without closing anything. */
static int dead_instance(const char *name, int n)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        uv_loop_t l;
        uv_loop_init(&l);
        struct xs_sub_store *s = NULL;
        char err[512];
        if (xs_sub_store_open_redis(&l, url, name, &s, err, sizeof err) != 0)
            _exit(1);
        xs_sub_store_redis_timing(s, 100, 600);
        int bad = s->ops->begin(s) != 0;
        for (int i = 0; i < n; i++) {
            struct xs_sub_record r;
            char buf[7][512];
            batch_record(i, &r, buf);
            bad |= s->ops->put(s, &r) != 0;
        }
        bad |= s->ops->commit(s) != 0;
        double end = now_s() + 5;
        while (!(stats(s).connected && stats(s).pending == 0) && now_s() < end)
            uv_run(&l, UV_RUN_ONCE);
        _exit(bad || stats(s).pending ? 1 : 0);
    }
    int status = -1;
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
}

static int check_adopted(const struct loaded *l, int n)
{
    int ok = (int)l->n == n;
    for (size_t i = 0; ok && i < l->n; i++) {
        int k = -1;
        ok = sscanf(l->v[i].r.watcher, "sip:user%05d@", &k) == 1 && k >= 0 && k < n;
        struct xs_sub_record want;
        char buf[7][512];
        if (ok) {
            batch_record(k, &want, buf);
            ok = same_record(&l->v[i].r, &want);
        }
    }
    return ok;
}

static void test_takeover(void)
{
    cmd0("FLUSHALL");
    enum { N = 300 };
    struct instance in[2] = {{.name = "gw-b"}, {.name = "gw-c"}};
    for (int i = 0; i < 2; i++) {
        uv_loop_init(&in[i].loop);
        in[i].s = open_on(&in[i].loop, in[i].name);
        if (!in[i].s)
            return;
        xs_sub_store_redis_timing(in[i].s, 100, 600);
        in[i].s->adopt = adopt_cb;
        in[i].s->user_ud = &in[i];
    }
    CHECK(dead_instance("gw-dead", N));
    double t0 = now_s();
    pump_both(&in[0], &in[1], N, 10);
    double t1 = now_s();
    /* And a while longer: nobody adopts the same records twice. */
    double end = now_s() + 1;
    while (now_s() < end) {
        uv_run(&in[0].loop, UV_RUN_NOWAIT);
        uv_run(&in[1].loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    int w = in[0].adopted.n ? 0 : 1;
    CHECK(in[w].adopted.n == N && in[1 - w].adopted.n == 0);
    CHECK(check_adopted(&in[w].adopted, N));
    CHECK(stats(in[w].s).adopted == N && stats(in[1 - w].s).adopted == 0);
    printf("redis: %d records of a dead instance adopted by %s %.0f ms after it died "
           "(heartbeat every 100 ms, lifetime 600 ms)\n",
           N, in[w].name, (t1 - t0) * 1e3);
    redisReply *r = cmd("EXISTS xsgw:idx:gw-dead");
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    freeReplyObject(r);
    r = cmd("SISMEMBER xsgw:instances gw-dead");
    CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    freeReplyObject(r);
    r = cmd("GET xsgw:adopted:gw-dead");
    CHECK(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, in[w].name));
    freeReplyObject(r);
    /* The records are the winner's now: its load has them, the other's
     * has none. */
    CHECK(count(in[w].s) == N && count(in[1 - w].s) == 0);

    /* The winner stops cleanly: its heartbeat ends with it, and the other
     * adopts at its next period. */
    loaded_free(&in[0].adopted);
    loaded_free(&in[1].adopted);
    in[w].s->ops->close(in[w].s);
    uv_run(&in[w].loop, UV_RUN_DEFAULT);
    t0 = now_s();
    pump_both(&in[0], &in[1], N, 5);
    t1 = now_s();
    CHECK(in[1 - w].adopted.n == N && check_adopted(&in[1 - w].adopted, N));
    printf("redis: after a clean stop, its %d records adopted %.0f ms later\n", N, (t1 - t0) * 1e3);
    loaded_free(&in[1 - w].adopted);
    in[1 - w].s->ops->close(in[1 - w].s);
    uv_run(&in[1 - w].loop, UV_RUN_DEFAULT);
    uv_loop_close(&in[0].loop);
    uv_loop_close(&in[1].loop);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGSEGV, on_fatal);
    signal(SIGABRT, on_fatal);
    signal(SIGTERM, on_fatal);
    signal(SIGINT, on_fatal);
    redis_port = free_port();
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
    int rc = redis_start();
    if (rc == 77) {
        printf("test_sub_store_redis: skipped: no redis-server (Debian package redis-server)\n");
        return 77;
    }
    if (rc != 0) {
        fprintf(stderr, "test_sub_store_redis: redis-server did not start on port %d\n",
                redis_port);
        return 1;
    }
    uv_loop_init(&loop);
    test_open_errors();
    test_contract();
    test_hostile();
    test_killed_mid_run();
    test_takeover();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    redis_kill();
    return check_report("test_sub_store_redis");
}
