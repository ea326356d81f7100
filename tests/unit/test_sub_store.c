/* The SQLite subscription store: what goes in comes back (every field, NULLs
 * included, in key order, after a reopen); records over the bounds are
 * refused; a file that is not ours is refused with its name and the reason,
 * and left byte for byte as it was. Each test has a directory of its own. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/err.h"
#include "presence/sub_store.h"
#include "sub_store_testutil.h"

static char dir[256];
static char db_path[320];

static void dir_make(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/xs_sub_store.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(2);
    }
    snprintf(db_path, sizeof db_path, "%s/subs.db", dir);
}

/* The names in the test directory, sorted, joined by spaces. */
static void dir_list(char *out, size_t n)
{
    char names[16][256];
    int count = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && count < 16) {
        if (e->d_name[0] != '.')
            snprintf(names[count++], sizeof names[0], "%s", e->d_name);
    }
    if (d)
        closedir(d);
    qsort(names, (size_t)count, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    out[0] = '\0';
    /* Names that would not fit are left out: the checks compare short
     * lists, and a cut name would only make a comparison fail. */
    size_t used = 0;
    for (int i = 0; i < count; i++) {
        size_t len = strlen(names[i]);
        if (used + len + 2 > n)
            break;
        if (i)
            out[used++] = ' ';
        memcpy(out + used, names[i], len + 1);
        used += len;
    }
}

static void dir_remove(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p) != 0)
                rmdir(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static unsigned char *file_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void file_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* A deterministic byte stream (xorshift), so a failing run can be re-run. */
static uint32_t rnd_state = 2463534242u;
static uint32_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 17;
    rnd_state ^= rnd_state << 5;
    return rnd_state;
}

static struct xs_sub_store *open_ok(void)
{
    struct xs_sub_store *s = NULL;
    char err[512];
    int rc = xs_sub_store_open_sqlite(db_path, &s, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "open %s: %s (%s)\n", db_path, xs_errname(rc), err);
    CHECK(rc == 0 && s);
    return s;
}

static void sqlite_settle(struct xs_sub_store *s)
{
    (void)s;
}

static void sqlite_close(struct xs_sub_store *s)
{
    s->ops->close(s);
}

static const struct contract sqlite_contract = {
    .open = open_ok,
    .settle = sqlite_settle,
    .close = sqlite_close,
    .where = db_path,
};

static void test_create_and_round_trip(void)
{
    dir_make();
    struct xs_sub_store *s = open_ok();
    if (!s)
        return;
    /* Created whole, private, and nothing else left beside it. */
    struct stat sb;
    CHECK(stat(db_path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    char names[512];
    dir_list(names, sizeof names);
    CHECK_STR(names, "subs.db subs.db-wal");
    s->ops->close(s);
    contract_round_trip(&sqlite_contract);
    dir_list(names, sizeof names);
    CHECK_STR(names, "subs.db");
    dir_remove();
}

static void test_bounds(void)
{
    dir_make();
    contract_bounds(&sqlite_contract);
    dir_remove();
}

static void test_batches_and_misuse(void)
{
    dir_make();
    contract_batches_and_misuse(&sqlite_contract);
    dir_remove();
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static int noop_cb(void *ud, const struct xs_sub_record *r)
{
    return 0;
}

static void test_batch_and_reopen(void)
{
    dir_make();
    struct xs_sub_store *s = open_ok();
    if (!s)
        return;
    double t0 = now_s();
    CHECK(s->ops->begin(s) == 0);
    /* Put in a scrambled order, so that load's order is its own doing. */
    int failed = 0;
    for (int k = 0; k < BATCH; k++) {
        struct xs_sub_record r;
        char buf[7][512];
        batch_record((k * 7001) % BATCH, &r, buf);
        failed += s->ops->put(s, &r) != 0;
    }
    double t1 = now_s();
    CHECK(s->ops->commit(s) == 0);
    double t2 = now_s();
    CHECK(failed == 0);
    char wal[400];
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    long wal_size = file_size(wal);
    s->ops->close(s);
    printf("batch of %d puts in one transaction: %.1f ms (puts %.1f ms, commit %.1f ms); "
           "file %ld bytes after close (%.0f bytes per record), WAL %ld bytes before close\n",
           BATCH, (t2 - t0) * 1e3, (t1 - t0) * 1e3, (t2 - t1) * 1e3, file_size(db_path),
           (double)file_size(db_path) / BATCH, wal_size);

    /* What opening and walking all of them costs in memory: SQLite's page
     * cache, which its cache_size bounds (quick_check at open fills it),
     * and nothing per record. */
    long rss_closed = rss_kib();
    sqlite3_int64 heap_closed = sqlite3_memory_used();
    double t3 = now_s();
    s = open_ok();
    double t4 = now_s();
    if (!s)
        goto out;
    long rss0 = rss_kib();
    sqlite3_int64 heap0 = sqlite3_memory_used();
    CHECK(s->ops->load(s, noop_cb, NULL) == 0);
    long rss1 = rss_kib();
    sqlite3_int64 heap1 = sqlite3_memory_used();
    double t5 = now_s();
    struct verify v = {0};
    CHECK(s->ops->load(s, verify_cb, &v) == 0);
    CHECK(v.n == BATCH && v.bad == 0);
    double t6 = now_s();
    printf("reopen (with quick_check) %.1f ms, RSS %ld -> %ld KiB, SQLite heap %lld -> %lld "
           "KiB; first load of %d records with a no-op callback %.1f ms, RSS %ld -> %ld KiB, "
           "SQLite heap %lld -> %lld KiB; second load checking every field %.1f ms\n",
           (t4 - t3) * 1e3, rss_closed, rss0, (long long)heap_closed / 1024,
           (long long)heap0 / 1024, BATCH, (t5 - t4) * 1e3, rss0, rss1, (long long)heap0 / 1024,
           (long long)heap1 / 1024, (t6 - t5) * 1e3);
    s->ops->close(s);
out:
    dir_remove();
}

/* synchronous=NORMAL loses nothing committed when the gateway dies: a child
 * commits one batch, leaves a second open, and exits without closing. */
static void test_crash_keeps_commits(void)
{
    dir_make();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct xs_sub_store *s = NULL;
        char err[512];
        if (xs_sub_store_open_sqlite(db_path, &s, err, sizeof err) != 0)
            _exit(1);
        int bad = s->ops->begin(s) != 0;
        for (int i = 0; i < 500; i++) {
            struct xs_sub_record r;
            char buf[7][512];
            batch_record(i, &r, buf);
            bad |= s->ops->put(s, &r) != 0;
        }
        bad |= s->ops->commit(s) != 0;
        bad |= s->ops->begin(s) != 0;
        bad |= s->ops->del(s, XS_SUB_WATCH_SIP, "sip:user00000@xmpp.test",
                           "sip:peer00000@sip.test") != 0;
        bad |= s->ops->put(s, &full) != 0;
        _exit(bad ? 1 : 0);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
          WEXITSTATUS(status) == 0);
    struct xs_sub_store *s = open_ok();
    if (s) {
        struct verify v = {0};
        CHECK(s->ops->load(s, verify_cb, &v) == 0);
        CHECK(v.n == 500 && v.bad == 0);
        s->ops->close(s);
    }
    dir_remove();
}

/* What one small batch costs: the SIP side's usual write, one NOTIFY's
 * new state. */
static void test_small_batches(void)
{
    dir_make();
    struct xs_sub_store *s = open_ok();
    if (!s)
        return;
    int failed = 0;
    double t0 = now_s();
    for (int i = 0; i < 1000; i++) {
        struct xs_sub_record r;
        char buf[7][512];
        batch_record(i % 100, &r, buf);
        failed += s->ops->begin(s) != 0;
        failed += s->ops->put(s, &r) != 0;
        failed += s->ops->commit(s) != 0;
    }
    double t1 = now_s();
    CHECK(failed == 0 && count(s) == 100);
    s->ops->close(s);
    printf("1000 batches of one put each: %.3f ms per batch\n", (t1 - t0));
    dir_remove();
}

/* A valid store with n records, closed; its bytes in *len. */
static unsigned char *make_store(int n, size_t *len)
{
    struct xs_sub_store *s = open_ok();
    if (!s)
        return NULL;
    CHECK(s->ops->begin(s) == 0);
    for (int i = 0; i < n; i++) {
        struct xs_sub_record r;
        char buf[7][512];
        batch_record(i, &r, buf);
        CHECK(s->ops->put(s, &r) == 0);
    }
    CHECK(s->ops->commit(s) == 0);
    s->ops->close(s);
    return file_read(db_path, len);
}

/* Opening the file at db_path is refused with XS_EPROTO, an error that names
 * it and says why, and the directory's files exactly as they were. */
static void expect_refused(const char *what, const char *reason)
{
    char before_names[512], after_names[512];
    dir_list(before_names, sizeof before_names);
    size_t n0 = 0, n1 = 0;
    unsigned char *before = file_read(db_path, &n0);
    struct xs_sub_store *s = (struct xs_sub_store *)&s;
    char err[512] = "";
    int rc = xs_sub_store_open_sqlite(db_path, &s, err, sizeof err);
    unsigned char *after = file_read(db_path, &n1);
    dir_list(after_names, sizeof after_names);
    int ok = rc == XS_EPROTO && s == NULL && strstr(err, db_path) && strstr(err, reason) &&
             before && after && n0 == n1 && memcmp(before, after, n0) == 0 &&
             strcmp(before_names, after_names) == 0;
    if (!ok)
        fprintf(stderr,
                "%s: rc %s, error \"%s\", wanted \"%s\"; %zu -> %zu bytes, "
                "files [%s] -> [%s]\n",
                what, xs_errname(rc), err, reason, n0, n1, before_names, after_names);
    CHECK(ok);
    if (rc == 0 && s)
        s->ops->close(s);
    free(before);
    free(after);
}

static void sql_file(const char *path, const char *sql)
{
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, msg);
        CHECK(0);
    }
    sqlite3_free(msg);
    sqlite3_close(db);
}

static void test_refused(void)
{
    unsigned char noise[8192];
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (unsigned char)rnd();

    dir_make();
    file_write(db_path, noise, sizeof noise);
    expect_refused("random bytes", "not a SQLite database");
    file_write(db_path, "", 0);
    expect_refused("empty file", "empty");
    /* The first 16 bytes right, the rest of the header noise. */
    memcpy(noise, "SQLite format 3", 16);
    file_write(db_path, noise, sizeof noise);
    expect_refused("SQLite magic, then noise", "not a SQLite database");
    dir_remove();

    /* Truncated: short of its header, short of one page, half gone. */
    dir_make();
    size_t len = 0;
    unsigned char *store = make_store(300, &len);
    CHECK(store && len > 16 * 4096);
    if (store) {
        size_t cuts[] = {50, len - 4096, len / 2, 4096};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            file_write(db_path, store, cuts[i]);
            char what[64];
            snprintf(what, sizeof what, "truncated to %zu of %zu bytes", cuts[i], len);
            expect_refused(what, i == 0 ? "not a SQLite database" : "corrupt");
        }
        /* A page of garbage in the middle. */
        unsigned char *bad = malloc(len);
        memcpy(bad, store, len);
        size_t page = (len / 4096 / 2) * 4096;
        for (size_t i = 0; i < 4096; i++)
            bad[page + i] = (unsigned char)rnd();
        file_write(db_path, bad, len);
        expect_refused("a page of garbage", "corrupt");
        /* Garbage over the cells of a page but not its header: the b-tree is
         * still well formed at the top, quick_check finds the cells. */
        memcpy(bad, store, len);
        for (size_t i = 2048; i < 4096; i++)
            bad[page + i] = (unsigned char)rnd();
        file_write(db_path, bad, len);
        expect_refused("garbage over half a page", "corrupt");
        free(bad);

        /* Ours, but from a newer gateway; and one with no version. */
        file_write(db_path, store, len);
        sql_file(db_path, "PRAGMA user_version=2");
        expect_refused("user_version 2", "store version 2 is newer than this gateway knows");
        file_write(db_path, store, len);
        sql_file(db_path, "PRAGMA user_version=0");
        expect_refused("user_version 0", "store version 0 is unknown");
        /* Ours in name, with something else in its schema. */
        file_write(db_path, store, len);
        sql_file(db_path, "CREATE TRIGGER t AFTER INSERT ON subscriptions BEGIN "
                          "DELETE FROM subscriptions; END");
        expect_refused("a trigger added", "schema");
        free(store);
    }
    dir_remove();

    /* Another program's database: application_id 0, a table of its own. */
    dir_make();
    sql_file(db_path, "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);"
                      "INSERT INTO notes (text) VALUES ('keep me')");
    expect_refused("another program's database", "belongs to another program (application_id 0");
    /* The same in WAL mode, with its last commit still in the WAL: neither
     * the file nor the WAL is touched (no checkpoint on close). */
    sql_file(db_path, "PRAGMA journal_mode=WAL");
    sqlite3 *other;
    CHECK(sqlite3_open(db_path, &other) == SQLITE_OK);
    sqlite3_db_config(other, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    CHECK(sqlite3_exec(other, "INSERT INTO notes (text) VALUES ('in the WAL')", NULL, NULL, NULL) ==
          SQLITE_OK);
    sqlite3_close(other);
    char wal[400];
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    size_t w0 = 0, w1 = 0;
    unsigned char *wal_before = file_read(wal, &w0);
    CHECK(wal_before && w0 > 0);
    expect_refused("another program's database in WAL mode", "belongs to another program");
    unsigned char *wal_after = file_read(wal, &w1);
    CHECK(wal_before && wal_after && w0 == w1 && memcmp(wal_before, wal_after, w0) == 0);
    free(wal_before);
    free(wal_after);
    dir_remove();
}

static void test_open_errors(void)
{
    dir_make();
    struct xs_sub_store *s = (struct xs_sub_store *)&s;
    char err[512] = "";
    char path[400];
    snprintf(path, sizeof path, "%s/missing/subs.db", dir);
    CHECK(xs_sub_store_open_sqlite(path, &s, err, sizeof err) == XS_EIO);
    CHECK(s == NULL && strstr(err, path) && strstr(err, "directory does not exist"));
    char names[512];
    dir_list(names, sizeof names);
    CHECK_STR(names, "");

    /* A directory where the file should be. */
    CHECK(mkdir(db_path, 0700) == 0);
    CHECK(xs_sub_store_open_sqlite(db_path, &s, err, sizeof err) == XS_EIO);
    CHECK(s == NULL && strstr(err, db_path) != NULL);
    rmdir(db_path);

    /* One gateway per store: a second open while the first holds it, from
     * the moment it is open, before it writes anything. */
    struct xs_sub_store *first = open_ok();
    if (first) {
        CHECK(xs_sub_store_open_sqlite(db_path, &s, err, sizeof err) == XS_EIO);
        CHECK(s == NULL && strstr(err, db_path) && strstr(err, "in use"));
        CHECK(first->ops->put(first, &full) == 0);
        CHECK(xs_sub_store_open_sqlite(db_path, &s, err, sizeof err) == XS_EIO);
        CHECK(s == NULL && strstr(err, db_path) && strstr(err, "in use"));
        CHECK(count(first) == 1);
        first->ops->close(first);
        s = open_ok();
        if (s) {
            CHECK(count(s) == 1);
            s->ops->close(s);
        }
    }
    dir_remove();
}

/* What put refuses is refused on the way out too: a record written into
 * the file by hand, over the URI bound, stops load with XS_EPROTO. */
static void test_load_refuses_what_put_would(void)
{
    dir_make();
    struct xs_sub_store *s = open_ok();
    if (s) {
        CHECK(s->ops->put(s, &full) == 0);
        s->ops->close(s);
    }
    sql_file(db_path, "INSERT INTO subscriptions (role, watcher, presentity, state, local_cseq, "
                      "remote_cseq, expires_at) VALUES (2, 'sip:' || hex(zeroblob(600)), "
                      "'sip:x@y', 1, 0, 0, 0)");
    s = open_ok();
    if (s) {
        long n = 0;
        CHECK(s->ops->load(s, count_cb, &n) == XS_EPROTO);
        CHECK(n == 1);
        CHECK(strstr(xs_sub_store_error(s), db_path) &&
              strstr(xs_sub_store_error(s), "watcher is longer than 1024"));
        s->ops->close(s);
    }
    sql_file(db_path, "UPDATE subscriptions SET watcher = 'sip:a' || char(0) || 'b' "
                      "WHERE role = 2");
    s = open_ok();
    if (s) {
        CHECK(s->ops->load(s, count_cb, &(long){0}) == XS_EPROTO);
        CHECK(strstr(xs_sub_store_error(s), "wrong type") != NULL);
        s->ops->close(s);
    }
    dir_remove();
}

int main(void)
{
    test_create_and_round_trip();
    test_bounds();
    test_batches_and_misuse();
    test_batch_and_reopen();
    test_crash_keeps_commits();
    test_small_batches();
    test_refused();
    test_open_errors();
    test_load_refuses_what_put_would();
    return check_report("test_sub_store");
}
