/* Element trees and their serialization: building, attributes, namespace
 * elision, escaping, round trips, and the output bound. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/err.h"
#include "xmpp/xml.h"
#include "xml_testutil.h"

static char *ser(const struct xs_xml_el *el, const char *parent_ns)
{
    static char out[4096];
    struct xs_buf b;
    xs_buf_init(&b, sizeof out - 1);
    int rc = xs_xml_serialize(el, parent_ns, &b);
    snprintf(out, sizeof out, "%s", rc ? "(error)" : b.data);
    xs_buf_free(&b);
    return out;
}

static void test_build(void)
{
    struct xs_xml_el *m = xs_xml_el_new("jabber:server", "message");
    CHECK(m && !strcmp(m->ns, "jabber:server") && !strcmp(m->name, "message"));
    CHECK(xs_xml_el_set_attr(m, "to", "b@x") == 0);
    CHECK(xs_xml_el_set_attr(m, "from", "a@y") == 0);
    CHECK(xs_xml_el_set_attr(m, "to", "c@x") == 0); /* replaces, keeps its place */
    CHECK(m->n_attrs == 2);
    CHECK_STR(xs_xml_el_attr(m, "to"), "c@x");
    CHECK(xs_xml_el_attr(m, "id") == NULL);
    CHECK(xs_xml_el_set_attr(m, "id", "1") == 0);
    CHECK(xs_xml_el_set_attr(m, "from", NULL) == 0);
    CHECK(xs_xml_el_set_attr(m, "nothing", NULL) == 0);
    CHECK(m->n_attrs == 2 && xs_xml_el_attr(m, "from") == NULL);
    CHECK(xs_xml_el_set_attr(m, "xml:lang", "en") == 0);

    struct xs_xml_el *body = xs_xml_el_add_child(m, "jabber:server", "body");
    CHECK(body != NULL);
    CHECK(xs_xml_el_add_text(body, "hel", 3) == 0);
    CHECK(xs_xml_el_add_text(body, "lo there", 2) == 0);
    struct xs_xml_el *x = xs_xml_el_add_child(m, "urn:x", "body");
    CHECK(xs_xml_el_add_child(x, "urn:x", "inner") != NULL);
    CHECK(xs_xml_el_add_child(x, NULL, "bare") != NULL);

    CHECK(xs_xml_el_child(m, "jabber:server", "body") == body);
    CHECK(xs_xml_el_child(m, NULL, "body") == body);
    CHECK(xs_xml_el_child(m, "urn:x", "body") == x);
    CHECK(xs_xml_el_child(m, "urn:y", "body") == NULL);
    char *t = xs_xml_el_text(body);
    CHECK_STR(t, "hello");
    free(t);
    t = xs_xml_el_text(x);
    CHECK_STR(t, "");
    free(t);

    CHECK_STR(ser(m, "jabber:server"), "<message to='c@x' id='1' xml:lang='en'><body>hello</body>"
                                       "<body xmlns='urn:x'><inner/><bare xmlns=''/></body>"
                                       "</message>");
    CHECK_STR(ser(m, NULL), "<message xmlns='jabber:server' to='c@x' id='1' xml:lang='en'>"
                            "<body>hello</body><body xmlns='urn:x'><inner/><bare xmlns=''/></body>"
                            "</message>");

    struct xs_xml_el *d = xs_xml_el_dup(m);
    CHECK(d != NULL && d != m);
    char expect[4096];
    snprintf(expect, sizeof expect, "%s", ser(m, ""));
    CHECK_STR(ser(d, ""), expect);
    xs_xml_el_free(d);
    xs_xml_el_free(m);
    xs_xml_el_free(NULL);
}

static void test_escape(void)
{
    struct xs_xml_el *e = xs_xml_el_new("", "e");
    xs_xml_el_set_attr(e, "a", "<&>\"' \t\n\r");
    const char text[] = "<&>\"' \t\n\r \xE2\x98\xBA \xF0\x9F\x98\x80";
    xs_xml_el_add_text(e, text, sizeof text - 1);
    CHECK_STR(ser(e, ""), "<e a='&lt;&amp;&gt;&quot;&apos; &#x9;&#xA;&#xD;'>&lt;&amp;&gt;&quot;"
                          "&apos; \t\n&#xD; \xE2\x98\xBA \xF0\x9F\x98\x80</e>");
    xs_xml_el_free(e);

    /* What XML cannot carry comes out as U+FFFD, one per bad byte. */
    struct xs_buf b;
    xs_buf_init(&b, 256);
    static const char bad[] = "a\x01"
                              "b\xC3\x28"
                              "c\xC0\xAF"
                              "d\xED\xA0\x80"
                              "e\xEF\xBF\xBE"
                              "f\xE2\x98";
    CHECK(xs_xml_escape(&b, bad, sizeof bad - 1) == 0);
    CHECK_STR(b.data, "a\xEF\xBF\xBD"
                      "b\xEF\xBF\xBD("
                      "c\xEF\xBF\xBD\xEF\xBF\xBD"
                      "d\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                      "e\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                      "f\xEF\xBF\xBD\xEF\xBF\xBD");
    xs_buf_reset(&b);
    CHECK(xs_xml_escape(&b, "x\0y", 3) == 0);
    CHECK_STR(b.data, "x\xEF\xBF\xBDy");
    xs_buf_free(&b);
}

static void test_round_trip(void)
{
    static const char *const docs[] = {
        "<message from='a@b' to='c@d' xml:lang='fr'><body>caf\xC3\xA9 &amp; &lt;tag&gt; "
        "&apos;q&quot;\n line</body><x xmlns='urn:x' xmlns:p='urn:p' p:k='v'><y/><p:z>t</p:z></x>"
        "</message>",
        "<iq type='get' id='1'><query xmlns='urn:q'><item a='&#9;&#10;&#13;x'/></query></iq>",
        "<a>text<b/>more<c>in</c>end\r\nline</a>",
        "<d:e xmlns:d='urn:d'><f xmlns=''/></d:e>",
        /* Found by the fuzzer: a '}' in a URI, and an element in the xml namespace. */
        "<a xmlns:p='u}r}n' p:k='v'><xml:y><z/></xml:y></a>",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        struct xs_xml_el *a = parse_one(docs[i]);
        CHECK(a != NULL);
        if (!a)
            continue;
        char first[4096];
        snprintf(first, sizeof first, "%s", ser(a, "jabber:server"));
        struct xs_xml_el *b = parse_one(first);
        CHECK(b != NULL);
        if (b)
            CHECK_STR(ser(b, "jabber:server"), first);
        xs_xml_el_free(a);
        xs_xml_el_free(b);
    }
    struct xs_xml_el *a = parse_one(docs[1]);
    CHECK_STR(
        ser(a, "jabber:server"),
        "<iq type='get' id='1'><query xmlns='urn:q'><item a='&#x9;&#xA;&#xD;x'/></query></iq>");
    CHECK_STR(
        xs_xml_el_attr(xs_xml_el_child(xs_xml_el_child(a, "urn:q", "query"), NULL, "item"), "a"),
        "\t\n\rx");
    xs_xml_el_free(a);
    a = parse_one(docs[4]);
    CHECK_STR(ser(a, "jabber:server"), "<a xmlns:ns0='u}r}n' ns0:k='v'><xml:y><z/></xml:y></a>");
    xs_xml_el_free(a);
}

static void test_limit(void)
{
    struct xs_xml_el *e = xs_xml_el_new("jabber:server", "message");
    xs_xml_el_set_attr(e, "to", "a&b");
    xs_xml_el_add_text(xs_xml_el_add_child(e, "jabber:server", "body"), "hello", 5);
    static const char full[] = "<message to='a&amp;b'><body>hello</body></message>";
    size_t n = sizeof full - 1;
    for (size_t max = 0; max <= n; max++) {
        struct xs_buf b;
        xs_buf_init(&b, max);
        int rc = xs_xml_serialize(e, "jabber:server", &b);
        if (max < n)
            CHECK(rc == XS_ELIMIT);
        else
            CHECK(rc == 0 && !strcmp(b.data, full));
        xs_buf_free(&b);
    }
    xs_xml_el_free(e);
}

int main(void)
{
    test_build();
    test_escape();
    test_round_trip();
    test_limit();
    return check_report("test_xml_tree");
}
