/* The subscription store in one SQLite file: one table, keyed by (role,
 * watcher, presentity), written in batches by the SIP side and read back once
 * at start.
 *
 * The file is the operator's: one this gateway did not write (another
 * program's database, a newer gateway's, a damaged one) is refused with the
 * reason and left exactly as it was. So nothing is written until the file has
 * been checked (query_only, no checkpoint on close), and a new store is built
 * under a temporary name and linked into place whole, so that a crash while
 * creating it never leaves an empty or half-made file at the path. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "presence/sub_store.h"

/* PRAGMA application_id of our files: "xsgw" in ASCII. */
#define STORE_APP_ID 0x78736777
/* PRAGMA user_version: the schema below. A file with a higher one was
 * written by a newer gateway and is refused, never downgraded. */
#define STORE_VERSION 1
/* How long open waits for another process's lock before saying the file is
 * in use; once open, the lock is ours and nothing waits. */
#define STORE_BUSY_MS 250
/* The write-ahead log is cut back to this after a checkpoint, so one large
 * batch does not leave a large file behind. */
#define STORE_WAL_LIMIT (4 << 20)
/* SQLite's page cache, in KiB: its memory, whatever the number of records. */
#define STORE_CACHE_KIB 2048

/* STRICT: a value of the wrong type is refused on write, so the columns hold
 * what load expects. The CHECKs hold the ranges of the C types. */
static const char schema_sql[] =
    "CREATE TABLE subscriptions ("
    "role INTEGER NOT NULL CHECK (role IN (1, 2)), "
    "watcher TEXT NOT NULL, "
    "presentity TEXT NOT NULL, "
    "state INTEGER NOT NULL CHECK (state IN (1, 2, 3)), "
    "call_id TEXT, local_tag TEXT, remote_tag TEXT, remote_target TEXT, route_set TEXT, "
    "local_cseq INTEGER NOT NULL CHECK (local_cseq BETWEEN 0 AND 4294967295), "
    "remote_cseq INTEGER NOT NULL CHECK (remote_cseq BETWEEN 0 AND 4294967295), "
    "expires_at INTEGER NOT NULL, "
    "last_pidf TEXT, "
    "PRIMARY KEY (role, watcher, presentity)) STRICT";

static const char put_sql[] =
    "INSERT OR REPLACE INTO subscriptions (role, watcher, presentity, state, call_id, "
    "local_tag, remote_tag, remote_target, route_set, local_cseq, remote_cseq, expires_at, "
    "last_pidf) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char del_sql[] =
    "DELETE FROM subscriptions WHERE role = ? AND watcher = ? AND presentity = ?";
static const char load_sql[] =
    "SELECT role, watcher, presentity, state, call_id, local_tag, remote_tag, remote_target, "
    "route_set, local_cseq, remote_cseq, expires_at, last_pidf FROM subscriptions "
    "ORDER BY role, watcher, presentity";

struct sqlite_store {
    struct xs_sub_store base; /* first: the interface's pointer is ours */
    sqlite3 *db;
    sqlite3_stmt *put, *del, *load, *begin, *commit, *rollback;
    int in_batch;
    int walking;
    char path[];
};

static void set_error(struct sqlite_store *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(struct sqlite_store *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->base.error, sizeof st->base.error, fmt, ap);
    va_end(ap);
}

/* SQLite's result codes into ours: the file's content (corrupt, not a
 * database) is a protocol error like any refused input; the disk, locks and
 * permissions are I/O. */
static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_NOMEM:
        return XS_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
    case SQLITE_SCHEMA:
        return XS_EPROTO;
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
        return XS_EINVAL;
    default:
        return XS_EIO;
    }
}

/* Runs one prepared statement without rows to completion. */
static int step_done(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int store_begin(struct xs_sub_store *s)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    if (st->in_batch || st->walking) {
        set_error(st, "%s: begin inside a batch or a load", st->path);
        return XS_ESTATE;
    }
    int rc = step_done(st->begin);
    if (rc != SQLITE_OK) {
        set_error(st, "%s: cannot begin a batch: %s", st->path, sqlite3_errmsg(st->db));
        return map_rc(rc);
    }
    st->in_batch = 1;
    return 0;
}

static int store_commit(struct xs_sub_store *s)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    if (!st->in_batch) {
        set_error(st, "%s: commit without a batch", st->path);
        return XS_ESTATE;
    }
    st->in_batch = 0;
    int rc = step_done(st->commit);
    if (rc == SQLITE_OK)
        return 0;
    set_error(st, "%s: cannot commit a batch, its changes are lost: %s", st->path,
              sqlite3_errmsg(st->db));
    /* A failed COMMIT may leave the transaction open (SQLITE_BUSY does);
     * the interface promises no batch stays open. */
    if (!sqlite3_get_autocommit(st->db))
        step_done(st->rollback);
    return map_rc(rc);
}

static int bind_text(sqlite3_stmt *stmt, int i, const char *v)
{
    return v ? sqlite3_bind_text(stmt, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(stmt, i);
}

static int store_put(struct xs_sub_store *s, const struct xs_sub_record *r)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    if (st->walking) {
        set_error(st, "%s: put during a load", st->path);
        return XS_ESTATE;
    }
    char why[128];
    int rc = xs_sub_record_check(r, why, sizeof why);
    if (rc) {
        set_error(st, "%s: refused to store a subscription: %s", st->path, why);
        return rc;
    }
    sqlite3_stmt *p = st->put;
    /* The strings are bound without a copy (SQLITE_STATIC): step_done runs
     * the statement and clears the bindings before r goes back. */
    rc = sqlite3_bind_int(p, 1, (int)r->role);
    rc = rc ? rc : bind_text(p, 2, r->watcher);
    rc = rc ? rc : bind_text(p, 3, r->presentity);
    rc = rc ? rc : sqlite3_bind_int(p, 4, (int)r->state);
    rc = rc ? rc : bind_text(p, 5, r->call_id);
    rc = rc ? rc : bind_text(p, 6, r->local_tag);
    rc = rc ? rc : bind_text(p, 7, r->remote_tag);
    rc = rc ? rc : bind_text(p, 8, r->remote_target);
    rc = rc ? rc : bind_text(p, 9, r->route_set);
    rc = rc ? rc : sqlite3_bind_int64(p, 10, r->local_cseq);
    rc = rc ? rc : sqlite3_bind_int64(p, 11, r->remote_cseq);
    rc = rc ? rc : sqlite3_bind_int64(p, 12, r->expires_at);
    rc = rc ? rc : bind_text(p, 13, r->last_pidf);
    if (rc == SQLITE_OK)
        rc = step_done(p);
    else {
        sqlite3_reset(p);
        sqlite3_clear_bindings(p);
    }
    if (rc != SQLITE_OK) {
        set_error(st, "%s: cannot store the subscription of %s to %s: %s", st->path, r->watcher,
                  r->presentity, sqlite3_errmsg(st->db));
        return map_rc(rc);
    }
    return 0;
}

static int store_del(struct xs_sub_store *s, enum xs_sub_role role, const char *watcher,
                     const char *presentity)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    if (st->walking) {
        set_error(st, "%s: delete during a load", st->path);
        return XS_ESTATE;
    }
    if (!watcher || !presentity) {
        set_error(st, "%s: delete without a watcher or presentity", st->path);
        return XS_EINVAL;
    }
    sqlite3_stmt *p = st->del;
    int rc = sqlite3_bind_int(p, 1, (int)role);
    rc = rc ? rc : bind_text(p, 2, watcher);
    rc = rc ? rc : bind_text(p, 3, presentity);
    if (rc == SQLITE_OK)
        rc = step_done(p);
    else {
        sqlite3_reset(p);
        sqlite3_clear_bindings(p);
    }
    if (rc != SQLITE_OK) {
        set_error(st, "%s: cannot delete the subscription of %s to %s: %s", st->path, watcher,
                  presentity, sqlite3_errmsg(st->db));
        return map_rc(rc);
    }
    return 0;
}

/* A text column, NULL when SQL NULL. A value that is not text, or has a NUL
 * inside (which the SIP side would see cut short), is the file's fault:
 * *bad is set. */
static const char *column_text(sqlite3_stmt *q, int i, int *bad)
{
    int type = sqlite3_column_type(q, i);
    if (type == SQLITE_NULL)
        return NULL;
    const char *v = (const char *)sqlite3_column_text(q, i);
    if (type != SQLITE_TEXT || !v || strlen(v) != (size_t)sqlite3_column_bytes(q, i)) {
        *bad = 1;
        return NULL;
    }
    return v;
}

static uint32_t column_u32(sqlite3_stmt *q, int i, int *bad)
{
    sqlite3_int64 v = sqlite3_column_int64(q, i);
    if (sqlite3_column_type(q, i) != SQLITE_INTEGER || v < 0 || v > UINT32_MAX)
        *bad = 1;
    return (uint32_t)v;
}

static int store_load(struct xs_sub_store *s, int (*fn)(void *ud, const struct xs_sub_record *r),
                      void *ud)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    if (st->walking) {
        set_error(st, "%s: load during a load", st->path);
        return XS_ESTATE;
    }
    sqlite3_stmt *q = st->load;
    int rc, ret = 0;
    long n = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        n++;
        int bad = 0;
        struct xs_sub_record r = {
            .role = (enum xs_sub_role)sqlite3_column_int(q, 0),
            .watcher = column_text(q, 1, &bad),
            .presentity = column_text(q, 2, &bad),
            .state = (enum xs_sub_state)sqlite3_column_int(q, 3),
            .call_id = column_text(q, 4, &bad),
            .local_tag = column_text(q, 5, &bad),
            .remote_tag = column_text(q, 6, &bad),
            .remote_target = column_text(q, 7, &bad),
            .route_set = column_text(q, 8, &bad),
            .local_cseq = column_u32(q, 9, &bad),
            .remote_cseq = column_u32(q, 10, &bad),
            .expires_at = sqlite3_column_int64(q, 11),
            .last_pidf = column_text(q, 12, &bad),
        };
        char why[128] = "it holds a value of the wrong type or range";
        if (bad || xs_sub_record_check(&r, why, sizeof why) != 0) {
            set_error(st, "%s: refused: subscription %ld (in key order): %s", st->path, n, why);
            ret = XS_EPROTO;
            break;
        }
        st->walking = 1;
        ret = fn(ud, &r);
        st->walking = 0;
        if (ret)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        set_error(st, "%s: cannot read the subscriptions: %s", st->path, sqlite3_errmsg(st->db));
        ret = map_rc(rc);
    }
    sqlite3_reset(q);
    return ret;
}

static void close_db(struct sqlite_store *st)
{
    sqlite3_stmt *stmts[] = {st->put, st->del, st->load, st->begin, st->commit, st->rollback};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        sqlite3_finalize(stmts[i]);
    /* Closing with a transaction open rolls it back: the documented fate of
     * an unfinished batch. */
    sqlite3_close(st->db);
    st->db = NULL;
}

static void store_close(struct xs_sub_store *s)
{
    struct sqlite_store *st = (struct sqlite_store *)s;
    if (!st)
        return;
    close_db(st);
    free(st);
}

static const struct xs_sub_store_ops sqlite_ops = {
    .begin = store_begin,
    .commit = store_commit,
    .put = store_put,
    .del = store_del,
    .load = store_load,
    .close = store_close,
};

/* Runs SQL that returns at most one value of interest: the first column of
 * the first row, as text into out (n bytes) when out is given. */
static int query1(sqlite3 *db, const char *sql, char *out, size_t n)
{
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    if (rc != SQLITE_OK)
        return rc;
    if (out && n)
        out[0] = '\0';
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(q, 0);
        if (out && n && !out[0])
            snprintf(out, n, "%s", v ? v : "");
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Builds a new store under a temporary name next to path and links it into
 * place, so that path never names a half-made store; the temporary file is
 * made by mkstemp, mode 0600, since the store says who watches whom. */
/* mkstemp(3) replaces the six X of its template with a unique name. */
#define TEMP_SUFFIX ".XXXXXX"

static int create_store(const char *path, char *err, size_t errlen)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof TEMP_SUFFIX);
    if (!tmp) {
        snprintf(err, errlen, "%s: out of memory", path);
        return XS_ENOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, TEMP_SUFFIX, sizeof TEMP_SUFFIX);
    int ret = XS_EIO;
    sqlite3 *db = NULL;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        if (errno == ENOENT)
            snprintf(err, errlen, "%s: cannot create the store: its directory does not exist",
                     path);
        else
            snprintf(err, errlen, "%s: cannot create the store: %s", path, strerror(errno));
        free(tmp);
        return XS_EIO;
    }
    close(fd);
    /* An empty file is an empty database to SQLite. Locking mode exclusive
     * before WAL: no shared-memory file to clean up after. */
    char sql[sizeof schema_sql + 256];
    snprintf(sql, sizeof sql,
             "PRAGMA locking_mode=EXCLUSIVE; BEGIN; %s; PRAGMA application_id=%d; "
             "PRAGMA user_version=%d; COMMIT; PRAGMA journal_mode=WAL;",
             schema_sql, STORE_APP_ID, STORE_VERSION);
    int rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot create the store: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        ret = rc == SQLITE_NOMEM ? XS_ENOMEM : XS_EIO;
        goto fail;
    }
    rc = sqlite3_close(db);
    db = NULL;
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot create the store: %s", path, sqlite3_errstr(rc));
        goto fail;
    }
    /* link, not rename: a store another process made meanwhile is kept
     * (and then opened as any existing file is). */
    if (link(tmp, path) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create the store: %s", path, strerror(errno));
        goto fail;
    }
    ret = 0;
fail:
    sqlite3_close(db);
    unlink(tmp);
    free(tmp);
    return ret;
}

/* What SQLite cannot tell apart from an empty database or says only as "not
 * a database": an empty file (a store is never empty, see create_store) and
 * one without SQLite's header. Reads the first 100 bytes, writes nothing. */
static int check_header(const char *path, char *err, size_t errlen)
{
    static const char magic[16] = "SQLite format 3";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open the store: %s", path, strerror(errno));
        return XS_EIO;
    }
    struct stat sb;
    unsigned char h[100];
    ssize_t got = -1;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
        got = pread(fd, h, sizeof h, 0);
    int e = errno;
    close(fd);
    if (got < 0) {
        snprintf(err, errlen, "%s: cannot read the store: %s", path,
                 S_ISREG(sb.st_mode) ? strerror(e) : "not a regular file");
        return XS_EIO;
    }
    if (got == 0) {
        snprintf(err, errlen, "%s: refused: the file is empty, not a store of this gateway", path);
        return XS_EPROTO;
    }
    if ((size_t)got < sizeof h || memcmp(h, magic, sizeof magic) != 0) {
        snprintf(err, errlen, "%s: refused: not a SQLite database", path);
        return XS_EPROTO;
    }
    return 0;
}

/* Says why SQLite refused to read the file: content is EPROTO, a lock held
 * by another process (another gateway on the same store) and the disk are
 * EIO. */
static int read_error(sqlite3 *db, const char *path, int rc, char *err, size_t errlen)
{
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
        snprintf(err, errlen, "%s: refused: not a SQLite database", path);
        return XS_EPROTO;
    case SQLITE_CORRUPT:
        snprintf(err, errlen, "%s: refused: corrupt (%s)", path, sqlite3_errmsg(db));
        return XS_EPROTO;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        snprintf(err, errlen, "%s: in use by another process (another gateway?)", path);
        return XS_EIO;
    default:
        snprintf(err, errlen, "%s: cannot read the store: %s", path, sqlite3_errmsg(db));
        return map_rc(rc);
    }
}

/* Checks that the file is a store of this gateway, reading only. */
static int check_store(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    char v[256];
    int rc = query1(db, "PRAGMA application_id", v, sizeof v);
    if (rc != SQLITE_OK)
        return read_error(db, path, rc, err, errlen);
    long app = strtol(v, NULL, 10);
    if (app != STORE_APP_ID) {
        snprintf(err, errlen,
                 "%s: refused: the database belongs to another program (application_id %ld, "
                 "ours is %d)",
                 path, app, STORE_APP_ID);
        return XS_EPROTO;
    }
    rc = query1(db, "PRAGMA user_version", v, sizeof v);
    if (rc != SQLITE_OK)
        return read_error(db, path, rc, err, errlen);
    long version = strtol(v, NULL, 10);
    if (version > STORE_VERSION) {
        snprintf(err, errlen,
                 "%s: refused: store version %ld is newer than this gateway knows (%d)", path,
                 version, STORE_VERSION);
        return XS_EPROTO;
    }
    if (version != STORE_VERSION) {
        snprintf(err, errlen, "%s: refused: store version %ld is unknown to this gateway (%d)",
                 path, version, STORE_VERSION);
        return XS_EPROTO;
    }
    rc = query1(db, "PRAGMA quick_check", v, sizeof v);
    if (rc != SQLITE_OK)
        return read_error(db, path, rc, err, errlen);
    if (strcmp(v, "ok") != 0) {
        snprintf(err, errlen, "%s: refused: corrupt (%s)", path, v);
        return XS_EPROTO;
    }
    /* Our application_id and version, so our schema and nothing else: no
     * trigger or view of someone else's runs on our writes. */
    sqlite3_stmt *q;
    rc = sqlite3_prepare_v2(db, "SELECT type, name, sql FROM sqlite_schema", -1, &q, NULL);
    if (rc != SQLITE_OK)
        return read_error(db, path, rc, err, errlen);
    int table = 0, other = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(q, 0);
        const char *name = (const char *)sqlite3_column_text(q, 1);
        const char *sql = (const char *)sqlite3_column_text(q, 2);
        if (type && name && sql && !strcmp(type, "table") && !strcmp(name, "subscriptions") &&
            !strcmp(sql, schema_sql))
            table++;
        else if (!(type && name && !sql && !strcmp(type, "index") &&
                   !strcmp(name, "sqlite_autoindex_subscriptions_1")))
            other++;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return read_error(db, path, rc, err, errlen);
    if (table != 1 || other) {
        snprintf(err, errlen, "%s: refused: corrupt (its schema is not that of store version %d)",
                 path, STORE_VERSION);
        return XS_EPROTO;
    }
    return 0;
}

int xs_sub_store_open_sqlite(const char *path, struct xs_sub_store **out, char *err, size_t errlen)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT) {
            snprintf(err, errlen, "%s: cannot open the store: %s", path, strerror(errno));
            return XS_EIO;
        }
        int rc = create_store(path, err, errlen);
        if (rc)
            return rc;
    }
    int ret = check_header(path, err, errlen);
    if (ret)
        return ret;

    size_t plen = strlen(path);
    struct sqlite_store *st = calloc(1, sizeof *st + (plen + 1) + (plen + sizeof "-wal"));
    if (!st) {
        snprintf(err, errlen, "%s: out of memory", path);
        return XS_ENOMEM;
    }
    memcpy(st->path, path, plen + 1);
    /* A file in WAL mode gets an empty write-ahead log beside it as soon as
     * it is read; if the file is refused, that log is ours to remove. */
    char *wal = st->path + plen + 1;
    snprintf(wal, plen + sizeof "-wal", "%s-wal", path);
    int had_wal = stat(wal, &sb) == 0;
    st->base.ops = &sqlite_ops;
    /* No CREATE: the file was checked above, and one removed since is an
     * error, not a new empty database. */
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open the store: %s", path,
                 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        ret = rc == SQLITE_NOMEM ? XS_ENOMEM : XS_EIO;
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, STORE_BUSY_MS);
    /* Until the file is known to be ours nothing may write to it: no
     * statement (query_only) and no checkpoint of someone else's
     * write-ahead log when we close it. Defensive mode and untrusted schema
     * because the file may be anyone's. */
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    /* Exclusive before the first read: the write-ahead log then needs no
     * shared-memory file, and the lock taken below keeps a second gateway
     * off the same store for as long as this one has it open. */
    rc = query1(st->db, "PRAGMA query_only=ON", NULL, 0);
    if (rc == SQLITE_OK)
        rc = query1(st->db, "PRAGMA locking_mode=EXCLUSIVE", NULL, 0);
    if (rc != SQLITE_OK) {
        ret = read_error(st->db, path, rc, err, errlen);
        goto fail;
    }
    ret = check_store(st->db, path, err, errlen);
    if (ret)
        goto fail;

    sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, (int *)NULL);
    /* synchronous=NORMAL in WAL mode syncs at checkpoints, not at every
     * commit: a crash of the gateway loses nothing, a crash of the machine
     * may lose the last batches but never leaves a corrupt file. Losing the
     * last batch is harmless: the SIP side bumps every dialog's CSeq when it
     * restores it, so a CSeq the store did not keep is not reused. */
    char mode[32];
    rc = query1(st->db, "PRAGMA query_only=OFF", NULL, 0);
    if (rc == SQLITE_OK)
        rc = query1(st->db, "PRAGMA journal_mode=WAL", mode, sizeof mode);
    if (rc == SQLITE_OK && strcmp(mode, "wal") != 0) {
        snprintf(err, errlen, "%s: the file system does not allow SQLite's WAL mode (%s)", path,
                 mode);
        ret = XS_EIO;
        goto fail;
    }
    char sql[96];
    snprintf(sql, sizeof sql, "PRAGMA journal_size_limit=%d; PRAGMA cache_size=-%d",
             STORE_WAL_LIMIT, STORE_CACHE_KIB);
    if (rc == SQLITE_OK)
        rc = query1(st->db, "PRAGMA synchronous=NORMAL", NULL, 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    /* A WAL file read in exclusive locking mode is locked from its first
     * read on; this takes the lock whatever mode the file was in before. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db, "BEGIN EXCLUSIVE; COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        ret = read_error(st->db, path, rc, err, errlen);
        goto fail;
    }
    const struct {
        sqlite3_stmt **stmt;
        const char *sql;
    } prep[] = {
        {&st->put, put_sql},   {&st->del, del_sql},     {&st->load, load_sql},
        {&st->begin, "BEGIN"}, {&st->commit, "COMMIT"}, {&st->rollback, "ROLLBACK"},
    };
    for (size_t i = 0; i < sizeof prep / sizeof prep[0]; i++) {
        rc = sqlite3_prepare_v3(st->db, prep[i].sql, -1, SQLITE_PREPARE_PERSISTENT, prep[i].stmt,
                                NULL);
        if (rc != SQLITE_OK) {
            ret = read_error(st->db, path, rc, err, errlen);
            goto fail;
        }
    }
    *out = &st->base;
    return 0;
fail:
    close_db(st);
    if (!had_wal && stat(wal, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 0)
        unlink(wal);
    free(st);
    return ret;
}
