/* The JSON form of log lines (log.format = "json"): exact lines for the
 * values that are hard to get right, and, for random input at every output
 * size, a line that is still one valid JSON object of strings. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/log.h"
#include "core/utf8.h"

#define TS "2026-11-29T00:00:00.000Z"
#define HEAD "{\"ts\":\"" TS "\",\"level\":\"info\",\"ev\":\"t.ev\""

static const char *line(char *out, size_t n, const char *rest)
{
    xs_log_json_line(out, n, TS, "info", "t.ev", rest);
    return out;
}

/* One JSON string at *pp (at its opening quote): escapes as JSON has them,
 * no raw control character, well-formed UTF-8. */
static int json_string(const char **pp)
{
    const unsigned char *p = (const unsigned char *)*pp;
    if (*p++ != '"')
        return 0;
    while (*p != '"') {
        if (*p == '\0' || *p < 0x20)
            return 0;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return 0;
                p += 5;
            } else if (*p && strchr("\"\\/bfnrt", *p)) {
                p++;
            } else {
                return 0;
            }
            continue;
        }
        uint32_t cp;
        size_t len = *p < 0x80 ? 1 : xs_utf8_decode(p, strlen((const char *)p), &cp);
        if (!len)
            return 0;
        p += len;
    }
    *pp = (const char *)p + 1;
    return 1;
}

/* The whole line is {"k":"v",...} with nothing after it. */
static int valid_object(const char *s)
{
    if (*s++ != '{')
        return 0;
    for (int first = 1; *s != '}'; first = 0) {
        if (!first && *s++ != ',')
            return 0;
        if (!json_string(&s) || *s++ != ':')
            return 0;
        if (!strncmp(s, "true", 4))
            s += 4;
        else if (!json_string(&s))
            return 0;
    }
    return s[1] == '\0';
}

static void test_exact(void)
{
    char out[512];
    CHECK_STR(line(out, sizeof out, "stream=in1 peer=127.0.0.1:5269 result=ok"),
              HEAD ",\"stream\":\"in1\",\"peer\":\"127.0.0.1:5269\",\"result\":\"ok\"}");
    /* Quotes and backslashes as xs_log_quote escaped them come out as the
     * value itself, escaped again the JSON way. */
    CHECK_STR(line(out, sizeof out, "reason=\"he said \\\"hi\\\" \\\\ done\""),
              HEAD ",\"reason\":\"he said \\\"hi\\\" \\\\ done\"}");
    /* '=' and spaces inside a quoted value stay in it. */
    CHECK_STR(line(out, sizeof out, "text=\"a=b c=d\" n=2"),
              HEAD ",\"text\":\"a=b c=d\",\"n\":\"2\"}");
    /* Control characters: the logger's \xNN inside quotes and raw ones in
     * a bare value become \u00XX; so does DEL. */
    CHECK_STR(line(out, sizeof out, "body=\"line1\\x0aline2\\x1b\" raw=a\tb del=\x7f"),
              HEAD ",\"body\":\"line1\\u000aline2\\u001b\",\"raw\":\"a\\u0009b\","
                   "\"del\":\"\\u007f\"}");
    /* UTF-8 passes; a byte that is not UTF-8 (a lone 0xff, a sequence cut
     * short, an encoded surrogate) is written as \u00XX, byte by byte. */
    CHECK_STR(line(out, sizeof out, "k=\xff\xc3\xa9\xe2\x82 z=\xed\xa0\x80"),
              HEAD ",\"k\":\"\\u00ff\xc3\xa9\\u00e2\\u0082\",\"z\":\"\\u00ed\\u00a0\\u0080\"}");
    /* A word that is not key=value is kept under "msg". */
    CHECK_STR(line(out, sizeof out, "hello k=v"), HEAD ",\"msg\":\"hello\",\"k\":\"v\"}");
    /* A quoted value the raw line cut before its closing quote. */
    CHECK_STR(line(out, sizeof out, "cut=\"unterminated \\\"value"),
              HEAD ",\"cut\":\"unterminated \\\"value\"}");
    CHECK_STR(line(out, sizeof out, ""), HEAD "}");
}

static void test_truncated(void)
{
    char out[100], rest[400];
    memset(rest, 'a', sizeof rest - 1);
    rest[sizeof rest - 1] = '\0';
    memcpy(rest, "k=", 2);
    /* An over-long value is cut, its string closed, and the line says so. */
    CHECK_STR(line(out, sizeof out, rest), HEAD ",\"k\":\"aaaaaaaaaa\",\"truncated\":true}");
    CHECK(strlen(out) < sizeof out);
    CHECK(valid_object(out));
    CHECK(strstr(out, "\"truncated\":true}") != NULL);
    /* Never half a UTF-8 sequence. */
    char u[400] = "k=\"";
    for (int i = 0; i < 60; i++)
        strcat(u, "\xc3\xa9");
    strcat(u, "\"");
    line(out, sizeof out, u);
    CHECK(valid_object(out));
    CHECK(strstr(out, "\"truncated\":true}") != NULL);
    /* A field whose key no longer fits is left out whole. */
    CHECK_STR(line(out, 100, "a=1 bb=2 ccc=3 dddd=4 eeeee=5 ffffff=6 ggggggg=7 hhhhhhhh=8"),
              HEAD ",\"a\":\"1\",\"bb\":\"2\",\"truncated\":true}");
    /* Too small for anything: an empty string, not a broken line. */
    CHECK_STR(line(out, 10, "k=v"), "");
}

static void test_random(void)
{
    /* Random key=value-ish text (quotes, backslashes, '=', spaces, control
     * characters, high bytes) at every output size from 64 up: always one
     * valid JSON object that fits. */
    static const char alphabet[] = "ab=\" \\x0f\n\t\x01\x7f\xc3\xa9\xff\xe2\x82\xac";
    srand(9);
    char rest[600], out[700];
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)(rand() % (int)(sizeof rest - 1));
        for (size_t i = 0; i < len; i++)
            rest[i] = alphabet[rand() % (int)(sizeof alphabet - 1)];
        rest[len] = '\0';
        size_t n = 64 + (size_t)(rand() % (int)(sizeof out - 64));
        size_t got = xs_log_json_line(out, n, TS, "info", "t.ev", rest);
        CHECK(got < n && got == strlen(out));
        if (!valid_object(out)) {
            CHECK(!"valid JSON");
            fprintf(stderr, "invalid for n=%zu: %s\n", n, out);
            break;
        }
    }
}

int main(void)
{
    test_exact();
    test_truncated();
    test_random();
    return check_report("test_log_json");
}
