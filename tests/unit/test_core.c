/* The core pieces every module leans on: the bounded buffer, the error
 * space, log value quoting, and the event with its condition names. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "event.h"

static void test_buf(void)
{
    struct xs_buf b;
    xs_buf_init(&b, 10);
    CHECK(xs_buf_append(&b, "hello", 5) == 0);
    CHECK(xs_buf_append(&b, "world", 5) == 0);
    CHECK(b.len == 10 && memcmp(b.data, "helloworld", 10) == 0 && b.data[10] == '\0');
    /* One byte past the maximum fails and changes nothing. */
    CHECK(xs_buf_append(&b, "!", 1) == XS_ELIMIT);
    CHECK(b.len == 10);
    xs_buf_consume(&b, 5);
    CHECK(b.len == 5 && strcmp(b.data, "world") == 0);
    CHECK(xs_buf_printf(&b, "%d", 12345) == 0);
    CHECK_STR(b.data, "world12345");
    CHECK(xs_buf_printf(&b, "x") == XS_ELIMIT);
    xs_buf_consume(&b, 1000);
    CHECK(b.len == 0 && b.data[0] == '\0');
    /* A length that would overflow size_t arithmetic is refused, not wrapped. */
    CHECK(xs_buf_append(&b, "x", (size_t)-1) == XS_ELIMIT);
    xs_buf_free(&b);

    xs_buf_init(&b, 1u << 20);
    for (int i = 0; i < 1000; i++)
        CHECK(xs_buf_append_str(&b, "0123456789") == 0);
    CHECK(b.len == 10000);
    xs_buf_reset(&b);
    CHECK(b.len == 0);
    xs_buf_free(&b);
}

/* Code review P6: taking messages one by one off a pipelined burst moves
 * nothing, and the space they took is reused by the next read. */
static void test_buf_burst(void)
{
    struct xs_buf b;
    xs_buf_init(&b, 128 * 1024);
    char msg[100];
    memset(msg, 'm', sizeof msg);
    for (int i = 0; i < 1310; i++) {
        msg[0] = (char)('a' + i % 26);
        CHECK(xs_buf_append(&b, msg, sizeof msg) == 0);
    }
    const char *start = b.data;
    int moved = 0;
    for (int i = 0; i < 1309; i++) {
        xs_buf_consume(&b, sizeof msg);
        moved += b.data != start + (size_t)(i + 1) * sizeof msg;
    }
    CHECK(moved == 0 && b.len == sizeof msg && b.data[0] == 'a' + 1309 % 26);
    /* The next read finds room at the front: one move of the 100 bytes left. */
    CHECK(xs_buf_append(&b, msg, sizeof msg) == 0);
    CHECK(b.data == start && b.len == 2 * sizeof msg && b.data[0] == 'a' + 1309 % 26);
    xs_buf_free(&b);

    /* Against a plain model: content, termination and the bound hold
     * through any mix of appends and consumes. */
    char model[600];
    size_t mlen = 0;
    xs_buf_init(&b, sizeof model - 1);
    unsigned seed = 1;
    int bad = 0;
    for (int i = 0; i < 200000 && !bad; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % 97;
        if ((seed >> 8) & 1) {
            char chunk[97];
            for (size_t k = 0; k < n; k++)
                chunk[k] = (char)('!' + (i + k) % 90);
            int rc = xs_buf_append(&b, chunk, n);
            if (mlen + n <= sizeof model - 1) {
                bad |= rc != 0;
                memcpy(model + mlen, chunk, n);
                mlen += n;
            } else {
                bad |= rc != XS_ELIMIT;
            }
        } else {
            xs_buf_consume(&b, n);
            n = n < mlen ? n : mlen;
            memmove(model, model + n, mlen - n);
            mlen -= n;
        }
        bad |= b.len != mlen || (b.data && (memcmp(b.data, model, mlen) || b.data[mlen]));
        bad |= b.off + b.cap > b.max + 1;
    }
    CHECK(!bad);
    xs_buf_free(&b);
}

static void test_err(void)
{
    CHECK_STR(xs_strerror(0), "success");
    CHECK_STR(xs_strerror(XS_ELIMIT), "limit exceeded");
    CHECK_STR(xs_errname(XS_EPROTO), "EPROTO");
    CHECK_STR(xs_strerror(-9999), "unknown error");
    CHECK(XS_ENOMEM < 0 && XS_EAUTH < 0 && XS_ENOMEM != XS_EAUTH);
}

static void test_log_quote(void)
{
    char out[32];
    CHECK_STR(xs_log_quote(out, sizeof out, "plain"), "plain");
    CHECK_STR(xs_log_quote(out, sizeof out, NULL), "-");
    CHECK_STR(xs_log_quote(out, sizeof out, ""), "\"\"");
    CHECK_STR(xs_log_quote(out, sizeof out, "a b"), "\"a b\"");
    CHECK_STR(xs_log_quote(out, sizeof out, "k=v \"q\""), "\"k=v \\\"q\\\"\"");
    CHECK_STR(xs_log_quote(out, sizeof out, "line\nbreak"), "\"line\\x0abreak\"");
    /* Truncated values still fit and stay terminated. */
    char small[8];
    xs_log_quote(small, sizeof small, "a very long value with spaces");
    CHECK(strlen(small) < sizeof small);
}

/* Runs xs_log with stderr sent to a file and returns what it wrote. */
static char *captured_log(const char *value)
{
    static char out[4096];
    fflush(stderr);
    int saved = dup(2);
    FILE *f = tmpfile();
    dup2(fileno(f), 2);
    xs_log(XS_LOG_WARN, "test.forge", "id=%s cond=none", value);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

/* Audit L4: whatever a value holds, one call writes one line. */
static void test_log_forging(void)
{
    char *line = captured_log("x\nts=2026-01-01T00:00:00.000Z level=info ev=s2s.in.dialback "
                              "result=valid");
    CHECK(strchr(line, '\n') == line + strlen(line) - 1);
    CHECK(strstr(line, " level=warn ev=test.forge id=x\\x0ats=2026-01-01T00:00:00.000Z "
                       "level=info ev=s2s.in.dialback result=valid cond=none\n") != NULL);
    line = captured_log("a\rb\tc\x7f\x01\xc3\xa9");
    CHECK(strstr(line, "id=a\\x0db\\x09c\\x7f\\x01\xc3\xa9 cond=none\n") != NULL);
    CHECK(strchr(line, '\n') == line + strlen(line) - 1);
    /* A value longer than a line is cut, and the line still ends once. */
    char longv[5000];
    memset(longv, '\n', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    line = captured_log(longv);
    CHECK(strlen(line) < 2048 && strchr(line, '\n') == line + strlen(line) - 1);
}

static const char *counted(int *calls)
{
    (*calls)++;
    return "v";
}

/* Code review P3: a disabled level formats nothing; an enabled one logs. */
static void test_log_macro(void)
{
    int calls = 0;
    CHECK(!xs_log_enabled(XS_LOG_DEBUG) && xs_log_enabled(XS_LOG_WARN));
    XS_LOG(XS_LOG_DEBUG, "test.debug", "x=%s", counted(&calls));
    CHECK(calls == 0);
    fflush(stderr);
    int saved = dup(2);
    FILE *f = tmpfile();
    dup2(fileno(f), 2);
    XS_LOG(XS_LOG_WARN, "test.warn", "x=%s", counted(&calls));
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CHECK(calls == 1 && ftell(f) > 0);
    fclose(f);
}

static void test_event(void)
{
    CHECK_STR(xs_cond_name(XS_COND_ITEM_NOT_FOUND), "item-not-found");
    CHECK_STR(xs_cond_type(XS_COND_RECIPIENT_UNAVAILABLE), "wait");
    CHECK(xs_cond_name(XS_COND_NONE) == NULL);
    for (int c = 1; c < XS_COND_COUNT_; c++)
        CHECK(xs_cond_from_name(xs_cond_name((enum xs_cond)c)) == (enum xs_cond)c);
    CHECK(xs_cond_from_name("no-such-condition") == XS_COND_UNDEFINED_CONDITION);
    CHECK(xs_cond_from_name(NULL) == XS_COND_UNDEFINED_CONDITION);

    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_SIP);
    struct xs_event *ev2 = xs_event_new(XS_EVENT_MESSAGE, XS_SIDE_SIP);
    CHECK(ev2->serial > ev->serial);
    CHECK(xs_event_set(&ev->body, "héllo") == 0);
    CHECK(xs_event_setn(&ev->from, "sip:bob@sip.testXXX", 16) == 0);
    CHECK_STR(ev->from, "sip:bob@sip.test");
    struct xs_event *d = xs_event_dup(ev);
    CHECK(d && d->serial == ev->serial);
    CHECK_STR(d->body, "héllo");
    CHECK(d->body != ev->body);
    CHECK(xs_event_set(&d->body, NULL) == 0 && d->body == NULL);
    xs_event_free(d);
    xs_event_free(ev);
    xs_event_free(ev2);
    xs_event_free(NULL);
}

int main(void)
{
    test_buf();
    test_buf_burst();
    test_err();
    test_log_quote();
    test_log_forging();
    test_log_macro();
    test_event();
    return check_report("test_core");
}
