/* Feeds bytes to the PIDF parser as one document. What it accepts must keep
 * the struct's promises (bounded, NUL-terminated, valid UTF-8, trimmed
 * notes, distinct activities, combined <basic>); a failure must say why and
 * leave the struct empty. An accepted document is then written back with
 * xs_pidf_write, which must produce a document that parses to the same
 * values. Seeds: tests/fuzz/pidf_seeds/, dictionary: tests/fuzz/pidf.dict. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "presence/pidf.h"

static void check_str(const char *s, size_t cap)
{
    if (!memchr(s, '\0', cap))
        abort();
}

/* Well-formed UTF-8 (expat checked the input; cutting must not break it). */
static void check_utf8(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        size_t n = *u < 0x80 ? 1 : *u >= 0xF0 ? 4 : *u >= 0xE0 ? 3 : *u >= 0xC2 ? 2 : 0;
        if (!n)
            abort();
        for (size_t i = 1; i < n; i++)
            if ((u[i] & 0xC0) != 0x80)
                abort();
        u += n;
    }
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void check_parsed(const struct xs_pidf *p)
{
    check_str(p->entity, sizeof p->entity);
    check_str(p->note, sizeof p->note);
    check_str(p->note_lang, sizeof p->note_lang);
    check_str(p->activities, sizeof p->activities);
    check_utf8(p->note);
    size_t n = strlen(p->note);
    if (n > XS_PIDF_TEXT_MAX || (n && (is_ws(p->note[0]) || is_ws(p->note[n - 1]))))
        abort();
    if (!n && p->note_lang[0])
        abort(); /* a language without a note */
    if (p->n_tuples > XS_PIDF_MAX_TUPLES || p->availability < 0)
        abort();
    enum xs_pidf_basic basic = XS_PIDF_UNKNOWN;
    for (size_t i = 0; i < p->n_tuples; i++) {
        const struct xs_pidf_tuple *t = &p->tuples[i];
        check_str(t->id, sizeof t->id);
        check_utf8(t->id);
        if (t->priority < -1 || t->priority > 1000)
            abort();
        if (t->basic == XS_PIDF_OPEN || (t->basic == XS_PIDF_CLOSED && basic == XS_PIDF_UNKNOWN))
            basic = t->basic;
    }
    if (basic != p->basic)
        abort();
    /* Activities: names of 1..32 bytes, single spaces, no repeats, at most
     * the maximum. */
    const char *a = p->activities;
    char seen[XS_PIDF_ACTIVITIES_MAX][XS_PIDF_ACTIVITY_NAME_MAX + 1];
    size_t k = 0;
    while (*a) {
        size_t len = strcspn(a, " ");
        if (len == 0 || len > XS_PIDF_ACTIVITY_NAME_MAX || k == XS_PIDF_ACTIVITIES_MAX)
            abort();
        memcpy(seen[k], a, len);
        seen[k][len] = '\0';
        for (size_t i = 0; i < k; i++)
            if (!strcmp(seen[i], seen[k]))
                abort();
        k++;
        a += len;
        if (*a == ' ' && !*++a)
            abort(); /* a trailing space */
    }
}

/* Writes p back and reads it again; what the writer cannot name (a tuple
 * id or activity that is not an ASCII NCName) is left out, in that order. */
static void round_trip(const struct xs_pidf *p)
{
    const char *entity = p->entity[0] ? p->entity : "sip:fuzz@example.test";
    enum xs_pidf_basic basic = p->basic == XS_PIDF_UNKNOWN ? XS_PIDF_CLOSED : p->basic;
    const char *id = p->n_tuples ? p->tuples[0].id : NULL;
    const char *activities = p->activities;
    struct xs_buf b;
    xs_buf_init(&b, 1 << 20);
    int rc =
        xs_pidf_write(entity, id, basic, p->note, p->note_lang, activities, p->availability, &b);
    if (rc == XS_EINVAL) {
        id = NULL;
        rc = xs_pidf_write(entity, id, basic, p->note, p->note_lang, activities, p->availability,
                           &b);
    }
    if (rc == XS_EINVAL) {
        activities = NULL;
        rc = xs_pidf_write(entity, id, basic, p->note, p->note_lang, activities, p->availability,
                           &b);
    }
    if (rc == XS_ENOMEM) {
        xs_buf_free(&b);
        return;
    }
    if (rc)
        abort();
    static struct xs_pidf again;
    const char *why = NULL;
    if (xs_pidf_parse(b.data, b.len, &again, &why))
        abort(); /* the writer wrote what the parser refuses */
    if (strcmp(again.entity, entity) || again.basic != basic || strcmp(again.note, p->note) ||
        strcmp(again.note_lang, p->note_lang) ||
        strcmp(again.activities, activities ? activities : "") ||
        again.availability != p->availability || again.n_tuples != 1 ||
        strcmp(again.tuples[0].id, id ? id : "t"))
        abort();
    xs_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct xs_pidf p;
    const char *why = NULL;
    int rc = xs_pidf_parse((const char *)data, size, &p, &why);
    if (rc) {
        static const struct xs_pidf zero;
        if (!why || memcmp(&p, &zero, sizeof p) ||
            (rc != XS_EPROTO && rc != XS_ELIMIT && rc != XS_ENOMEM))
            abort();
        return 0;
    }
    if (why)
        abort();
    check_parsed(&p);
    round_trip(&p);
    return 0;
}
