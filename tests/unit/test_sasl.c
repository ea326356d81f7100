/* The SASL EXTERNAL codec: every element it writes parses back to what was
 * meant, and hostile <auth>, <features> and <failure> elements give the
 * exact condition and copy out nothing past their bounds. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/err.h"
#include "xml_testutil.h"
#include "xmpp/sasl.h"

#define NS "urn:ietf:params:xml:ns:xmpp-sasl"

/* Parses `xml` as a stanza and runs xs_sasl_parse_auth on it. */
static enum xs_sasl_cond auth_of(const char *xml, char authzid[XS_SASL_AUTHZID_MAX])
{
    struct xs_xml_el *el = parse_one(xml);
    if (!el) {
        fprintf(stderr, "does not parse: %s\n", xml);
        return (enum xs_sasl_cond) - 1;
    }
    const char *why = NULL;
    memset(authzid, 'X', XS_SASL_AUTHZID_MAX);
    enum xs_sasl_cond c = xs_sasl_parse_auth(el, authzid, &why);
    xs_xml_el_free(el);
    if (c != XS_SASL_OK && (!why || !*why || authzid[0]))
        return (enum xs_sasl_cond) - 2; /* a refusal says why, and hands out nothing */
    return c;
}

static void test_auth_valid(void)
{
    char a[XS_SASL_AUTHZID_MAX];
    CHECK(auth_of("<auth xmlns='" NS "' mechanism='EXTERNAL'>ZXhhbXBsZS5vcmc=</auth>", a) ==
          XS_SASL_OK);
    CHECK_STR(a, "example.org");
    CHECK(auth_of("<auth xmlns='" NS "' mechanism='EXTERNAL'>=</auth>", a) == XS_SASL_OK);
    CHECK_STR(a, "");
    CHECK(auth_of("<auth xmlns='" NS "' mechanism='EXTERNAL'/>", a) == XS_SASL_OK);
    CHECK_STR(a, "");
    /* No padding needed, one and two pad characters. */
    CHECK(auth_of("<auth xmlns='" NS "' mechanism='EXTERNAL'>YS5i</auth>", a) == XS_SASL_OK);
    CHECK_STR(a, "a.b");
    CHECK(auth_of("<auth xmlns='" NS "' mechanism='EXTERNAL'>YS5iYw==</auth>", a) == XS_SASL_OK);
    CHECK_STR(a, "a.bc");
    CHECK(auth_of("<auth xmlns='" NS "' mechanism='EXTERNAL'>YS5iY2Q=</auth>", a) == XS_SASL_OK);
    CHECK_STR(a, "a.bcd");
    /* A U-label (bücher.example) is UTF-8 and passes; the caller maps it. */
    CHECK(auth_of("<auth xmlns='" NS "' mechanism='EXTERNAL'>YsO8Y2hlci5leGFtcGxl</auth>", a) ==
          XS_SASL_OK);
    CHECK_STR(a, "b\xc3\xbc"
                 "cher.example");
}

static void test_auth_hostile(void)
{
    char a[XS_SASL_AUTHZID_MAX];
    CHECK(auth_of("<auth xmlns='" NS "' mechanism='PLAIN'>AGEAYg==</auth>", a) ==
          XS_SASL_INVALID_MECHANISM);
    CHECK(auth_of("<auth xmlns='" NS "' mechanism='external'>=</auth>", a) ==
          XS_SASL_INVALID_MECHANISM);
    CHECK(auth_of("<auth xmlns='" NS "'>=</auth>", a) == XS_SASL_INVALID_MECHANISM);
    CHECK(auth_of("<auth xmlns='" NS "' mechanism='EXTERNAL '>=</auth>", a) ==
          XS_SASL_INVALID_MECHANISM);
    CHECK(auth_of("<auth xmlns='" NS "' mechanism='EXTERNAL'><x/>=</auth>", a) ==
          XS_SASL_MALFORMED_REQUEST);
    /* Not strict base64: bad characters, whitespace, wrong length,
     * padding in the middle, too much padding, non-zero spare bits. */
    static const char *const bad[] = {
        "ZXhhbXBsZS5vcmc",
        "ZXhhbXBsZS5vcmc=\n",
        " ZXhhbXBsZS5vcmc=",
        "ZXhh bXBsZS5vcmc=",
        "ZXhh*XBsZS5vcmc=",
        "ZX=hbXBs",
        "ZXhhbXBsZS5vcmc==",
        "YQ=a",
        "YR==",
        "YWJ=",
        "==",
        "====",
        "Y===",
        "ZXhhbXBsZS5vcmc=ZXhh",
        "-_-_",
        "\xc3\xa9\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char xml[256];
        snprintf(xml, sizeof xml, "<auth xmlns='" NS "' mechanism='EXTERNAL'>%s</auth>", bad[i]);
        enum xs_sasl_cond c = auth_of(xml, a);
        if (c != XS_SASL_INCORRECT_ENCODING)
            fprintf(stderr, "bad base64 #%zu '%s' gave %d\n", i, bad[i], (int)c);
        CHECK(c == XS_SASL_INCORRECT_ENCODING);
    }
    /* Decodes, but to nothing a domain holds: NUL, space, control, DEL,
     * invalid UTF-8 (a lone continuation byte, an overlong '/', a
     * surrogate). */
    static const char *const not_domain[] = {"YQBi", "YSBi", "YQli", "YX9i",
                                             "YYBi", "wK8=", "7aCA"};
    for (size_t i = 0; i < sizeof not_domain / sizeof not_domain[0]; i++) {
        char xml[256];
        snprintf(xml, sizeof xml, "<auth xmlns='" NS "' mechanism='EXTERNAL'>%s</auth>",
                 not_domain[i]);
        CHECK(auth_of(xml, a) == XS_SASL_INVALID_AUTHZID);
    }
    /* 255 bytes pass; 256 do not, nor does a megabyte-sized claim. */
    char dom[300], xml[1200];
    struct xs_buf b;
    for (size_t len = 255; len <= 256; len++) {
        memset(dom, 'a', len);
        dom[len] = '\0';
        xs_buf_init(&b, 4096);
        if (len == 255) {
            CHECK(xs_sasl_write_auth(&b, dom) == 0);
            CHECK(auth_of(b.data, a) == XS_SASL_OK);
            CHECK(strlen(a) == 255);
        } else {
            CHECK(xs_sasl_write_auth(&b, dom) == XS_EINVAL);
            CHECK(b.len == 0);
        }
        xs_buf_free(&b);
    }
    /* 256 bytes encoded by hand: 344 characters, over the bound. */
    memset(xml, 0, sizeof xml);
    strcpy(xml, "<auth xmlns='" NS "' mechanism='EXTERNAL'>");
    size_t at = strlen(xml);
    for (size_t i = 0; i < 85; i++, at += 4)
        memcpy(xml + at, "YWFh", 4);
    memcpy(xml + at, "YQ==</auth>", 11);
    CHECK(auth_of(xml, a) == XS_SASL_INVALID_AUTHZID);
    size_t big = 1 << 15;
    char *huge = malloc(big + 128);
    snprintf(huge, 128, "<auth xmlns='" NS "' mechanism='EXTERNAL'>");
    size_t h = strlen(huge);
    memset(huge + h, 'Q', big);
    strcpy(huge + h + big, "</auth>");
    CHECK(auth_of(huge, a) == XS_SASL_INVALID_AUTHZID);
    free(huge);
}

static void test_written_elements(void)
{
    struct xs_buf b;
    xs_buf_init(&b, XS_SASL_ELEMENT_MAX);
    CHECK(xs_sasl_write_auth(&b, "example.org") == 0);
    CHECK_STR(b.data, "<auth xmlns='" NS "' mechanism='EXTERNAL'>ZXhhbXBsZS5vcmc=</auth>");
    xs_buf_reset(&b);
    CHECK(xs_sasl_write_auth(&b, "") == 0);
    CHECK_STR(b.data, "<auth xmlns='" NS "' mechanism='EXTERNAL'>=</auth>");
    xs_buf_reset(&b);
    CHECK(xs_sasl_write_auth(&b, NULL) == 0);
    CHECK_STR(b.data, "<auth xmlns='" NS "' mechanism='EXTERNAL'>=</auth>");
    /* Every length mod 3 round-trips. */
    const char *doms[] = {"a", "ab", "abc", "abcd", "x.example", "xy.example"};
    for (size_t i = 0; i < 6; i++) {
        char a[XS_SASL_AUTHZID_MAX];
        xs_buf_reset(&b);
        CHECK(xs_sasl_write_auth(&b, doms[i]) == 0);
        CHECK(auth_of(b.data, a) == XS_SASL_OK);
        CHECK_STR(a, doms[i]);
    }
    xs_buf_reset(&b);
    CHECK(xs_sasl_write_success(&b) == 0);
    CHECK_STR(b.data, "<success xmlns='" NS "'/>");
    xs_buf_reset(&b);
    CHECK(xs_sasl_write_abort(&b) == 0);
    CHECK_STR(b.data, "<abort xmlns='" NS "'/>");
    xs_buf_reset(&b);
    CHECK(xs_sasl_write_mechanisms(&b) == 0);
    CHECK_STR(b.data, "<mechanisms xmlns='" NS "'><mechanism>EXTERNAL</mechanism></mechanisms>");
    xs_buf_reset(&b);
    CHECK(xs_sasl_write_failure(&b, XS_SASL_NOT_AUTHORIZED,
                                "presented wrong.example, expected <a&b>") == 0);
    CHECK_STR(b.data, "<failure xmlns='" NS "'><not-authorized/><text>presented wrong.example, "
                      "expected &lt;a&amp;b&gt;</text></failure>");
    xs_buf_reset(&b);
    CHECK(xs_sasl_write_failure(&b, XS_SASL_INVALID_AUTHZID, NULL) == 0);
    CHECK_STR(b.data, "<failure xmlns='" NS "'><invalid-authzid/></failure>");
    xs_buf_reset(&b);
    CHECK(xs_sasl_write_failure(&b, XS_SASL_OK, "x") == XS_EINVAL);
    CHECK(xs_sasl_write_failure(&b, (enum xs_sasl_cond)99, "x") == XS_EINVAL);
    CHECK(b.len == 0);
    /* A text too long is cut on a character boundary ("é" is 2 bytes). */
    char long_text[1200];
    for (size_t i = 0; i + 2 <= 1100; i += 2)
        memcpy(long_text + i, "\xc3\xa9", 2);
    long_text[1100] = '\0';
    CHECK(xs_sasl_write_failure(&b, XS_SASL_NOT_AUTHORIZED, long_text) == 0);
    struct xs_xml_el *el = parse_one(b.data);
    CHECK(el != NULL);
    if (el) {
        enum xs_sasl_cond c;
        char text[1024];
        CHECK(xs_sasl_parse_outcome(el, &c, text, sizeof text) == 0);
        CHECK(c == XS_SASL_NOT_AUTHORIZED);
        CHECK(strlen(text) == XS_SASL_TEXT_MAX);
        xs_xml_el_free(el);
    }
    xs_buf_free(&b);
    /* A buffer too small takes nothing. */
    xs_buf_init(&b, 40);
    CHECK(xs_sasl_write_failure(&b, XS_SASL_NOT_AUTHORIZED, "why") == XS_ELIMIT);
    CHECK(b.len == 0);
    CHECK(xs_sasl_write_auth(&b, "example.org") == XS_ELIMIT);
    CHECK(b.len == 0);
    xs_buf_free(&b);
    for (int c = XS_SASL_ABORTED; c <= XS_SASL_TEMPORARY_AUTH_FAILURE; c++)
        CHECK(strcmp(xs_sasl_cond_name((enum xs_sasl_cond)c), "?") != 0);
    CHECK_STR(xs_sasl_cond_name(XS_SASL_INCORRECT_ENCODING), "incorrect-encoding");
    CHECK_STR(xs_sasl_cond_name((enum xs_sasl_cond) - 1), "?");
}

static int offers(const char *xml)
{
    struct xs_xml_el *el = parse_one(xml);
    if (!el)
        return -1;
    int r = xs_sasl_offers_external(el);
    xs_xml_el_free(el);
    return r;
}

static void test_features(void)
{
    CHECK(offers("<stream:features><mechanisms xmlns='" NS "'><mechanism>EXTERNAL</mechanism>"
                 "</mechanisms></stream:features>") == 1);
    CHECK(offers("<stream:features><mechanisms xmlns='" NS "'><mechanism>PLAIN</mechanism>"
                 "<mechanism>\n EXTERNAL </mechanism></mechanisms></stream:features>") == 1);
    CHECK(offers("<stream:features><mechanisms xmlns='" NS "'><mechanism>PLAIN</mechanism>"
                 "<mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>") == 0);
    CHECK(offers("<stream:features><mechanisms xmlns='" NS "'><mechanism>EXTERNALX</mechanism>"
                 "<mechanism>external</mechanism><mechanism><b>EXTERNAL</b></mechanism>"
                 "</mechanisms></stream:features>") == 0);
    /* The right words in the wrong namespace. */
    CHECK(offers("<stream:features><mechanisms xmlns='urn:other'><mechanism>EXTERNAL</mechanism>"
                 "</mechanisms></stream:features>") == 0);
    CHECK(offers("<stream:features><mechanisms xmlns='" NS "'><mechanism xmlns='urn:other'>"
                 "EXTERNAL</mechanism></mechanisms></stream:features>") == 0);
    CHECK(offers("<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                 "</stream:features>") == 0);
}

static int outcome(const char *xml, enum xs_sasl_cond *c, char *text, size_t len)
{
    struct xs_xml_el *el = parse_one(xml);
    if (!el)
        return -100;
    int r = xs_sasl_parse_outcome(el, c, text, len);
    xs_xml_el_free(el);
    return r;
}

static void test_outcome(void)
{
    enum xs_sasl_cond c = XS_SASL_ABORTED;
    char text[32];
    CHECK(outcome("<success xmlns='" NS "'/>", &c, text, sizeof text) == 1);
    CHECK(c == XS_SASL_OK);
    CHECK_STR(text, "");
    CHECK(outcome("<failure xmlns='" NS "'><invalid-authzid/><text xml:lang='en'>no such "
                  "domain</text></failure>",
                  &c, text, sizeof text) == 0);
    CHECK(c == XS_SASL_INVALID_AUTHZID);
    CHECK_STR(text, "no such domain");
    /* Text first, control characters and quotes made harmless, cut. */
    CHECK(outcome("<failure xmlns='" NS "'><text>a&#9;\"b\"&#10;c 0123456789012345678901234567"
                  "</text><not-authorized/></failure>",
                  &c, text, sizeof text) == 0);
    CHECK(c == XS_SASL_NOT_AUTHORIZED);
    CHECK_STR(text, "a 'b' c 01234567890123456789012");
    CHECK(outcome("<failure xmlns='" NS "'/>", &c, NULL, 0) == 0);
    CHECK(c == XS_SASL_NOT_AUTHORIZED);
    CHECK(outcome("<failure xmlns='" NS "'><made-up/></failure>", &c, text, sizeof text) == 0);
    CHECK(c == XS_SASL_NOT_AUTHORIZED);
    CHECK(outcome("<failure xmlns='" NS "'><aborted xmlns='urn:x'/><temporary-auth-failure/>"
                  "</failure>",
                  &c, text, sizeof text) == 0);
    CHECK(c == XS_SASL_TEMPORARY_AUTH_FAILURE);
    CHECK(outcome("<challenge xmlns='" NS "'>=</challenge>", &c, text, sizeof text) == XS_EPROTO);
    CHECK(c == XS_SASL_MALFORMED_REQUEST);
    CHECK(outcome("<success xmlns='urn:other'/>", &c, text, sizeof text) == XS_EPROTO);
}

int main(void)
{
    test_auth_valid();
    test_auth_hostile();
    test_written_elements();
    test_features();
    test_outcome();
    return check_report("test_sasl");
}
