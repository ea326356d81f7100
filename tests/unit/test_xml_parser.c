/* The XMPP stream parser: the same stream split every way gives the same
 * result; every limit holds at exactly its value; hostile input fails with
 * the right stream error and without eating memory. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "core/err.h"
#include "xmpp/xml.h"

#include "alloc_testutil.h"

#if XS_TEST_OWN_MALLOC
/* Starts measuring: the peak from now on, over what is held now. */
static size_t peak_start(void)
{
    bytes_peak = bytes_live;
    return bytes_live;
}
#define PEAK_SINCE(base) (bytes_peak - (base))
#endif

struct rec {
    struct xs_xml_parser *p;
    struct xs_buf log; /* what the callbacks saw, serialized */
    int opens, stanzas, closes;
    int stop_after; /* stanzas after which the callback stops the parser; 0 never */
    const struct xs_xml_limits *then; /* set by the first stanza's callback, if not NULL */
};

static void on_open(void *ud, const struct xs_xml_el *h)
{
    struct rec *r = ud;
    r->opens++;
    xs_buf_append_str(&r->log, "[open]");
    xs_xml_serialize(h, "", &r->log);
}

static void on_stanza(void *ud, struct xs_xml_el *st)
{
    struct rec *r = ud;
    r->stanzas++;
    xs_buf_append_str(&r->log, "[stanza]");
    xs_xml_serialize(st, "jabber:server", &r->log);
    xs_xml_el_free(st);
    if (r->stop_after && r->stanzas == r->stop_after)
        xs_xml_parser_stop(r->p);
    if (r->then && r->stanzas == 1)
        xs_xml_parser_set_limits(r->p, r->then);
}

static void on_close(void *ud)
{
    struct rec *r = ud;
    r->closes++;
    xs_buf_append_str(&r->log, "[close]");
}

static const struct xs_xml_cbs cbs = {on_open, on_stanza, on_close};
static const struct xs_xml_limits big = {
    .max_stanza_bytes = 65536, .max_depth = 16, .max_attrs = 16};

static void rec_init(struct rec *r, const struct xs_xml_limits *lim)
{
    memset(r, 0, sizeof *r);
    xs_buf_init(&r->log, 1 << 20);
    r->p = xs_xml_parser_new(lim, &cbs, r);
}

static void rec_free(struct rec *r)
{
    xs_xml_parser_free(r->p);
    xs_buf_free(&r->log);
}

#define HDR                                                                                        \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "           \
    "from='a.test' to='b.test' id='s1' version='1.0' xml:lang='en'>"

static const char stream[] =
    HDR "\n<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
        "</starttls><dialback xmlns='urn:xmpp:features:dialback'/></stream:features> \n\t "
        "<db:result from='a.test' to='b.test'>k3y</db:result>\r\n"
        "<message from='alice@a.test/x' to='bob@b.test' id='m1' type='chat' xml:lang='en'>"
        "<body>Tom &amp; Jerry &#x263A; &lt;b&gt; \xE2\x98\xBA<![CDATA[<raw>]]></body>"
        "<thread>t1</thread><x xmlns='urn:ex' xmlns:p='urn:p'><y a='1' b='&apos;&quot;' "
        "p:q='v'>deep<z/>tail</y></x></message>  \t \n</stream:stream>";

/* Feeds `n` bytes of s in pieces of at most `chunk`; returns the first error. */
static int feed_chunks(struct rec *r, const char *s, size_t n, size_t chunk)
{
    for (size_t off = 0; off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        int rc = xs_xml_parser_feed(r->p, s + off, k);
        if (rc)
            return rc;
    }
    return 0;
}

static void test_splits(void)
{
    size_t n = strlen(stream);
    struct rec whole;
    rec_init(&whole, &big);
    CHECK(xs_xml_parser_feed(whole.p, stream, n) == 0);
    CHECK(whole.opens == 1 && whole.stanzas == 3 && whole.closes == 1);
    CHECK(xs_xml_parser_condition(whole.p) == NULL);
    const char *log = whole.log.data;
    CHECK(strstr(log, "[open]<stream xmlns='http://etherx.jabber.org/streams' from='a.test' "
                      "to='b.test' id='s1' version='1.0' xml:lang='en'/>") != NULL);
    CHECK(strstr(log, "[stanza]<features xmlns='http://etherx.jabber.org/streams'><starttls "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><dialback "
                      "xmlns='urn:xmpp:features:dialback'/></features>") != NULL);
    CHECK(strstr(log, "[stanza]<result xmlns='jabber:server:dialback' from='a.test' "
                      "to='b.test'>k3y</result>") != NULL);
    CHECK(strstr(log, "<body>Tom &amp; Jerry \xE2\x98\xBA &lt;b&gt; \xE2\x98\xBA&lt;raw&gt;"
                      "</body><thread>t1</thread><x xmlns='urn:ex'><y a='1' "
                      "b='&apos;&quot;' xmlns:ns2='urn:p' ns2:q='v'>deep<z/>tail</y></x>") != NULL);
    CHECK(strstr(log, "[close]") != NULL);

    int split_ok = 1;
    for (size_t cut = 0; cut <= n; cut++) {
        struct rec r;
        rec_init(&r, &big);
        int rc = xs_xml_parser_feed(r.p, stream, cut);
        if (!rc && cut < n)
            rc = xs_xml_parser_feed(r.p, stream + cut, n - cut);
        if (rc || strcmp(r.log.data, whole.log.data)) {
            fprintf(stderr, "split at %zu differs: rc=%d %s\n", cut, rc, r.log.data);
            split_ok = 0;
        }
        rec_free(&r);
    }
    CHECK(split_ok);

    struct rec bytes;
    rec_init(&bytes, &big);
    CHECK(feed_chunks(&bytes, stream, n, 1) == 0);
    CHECK_STR(bytes.log.data, whole.log.data);
    rec_free(&bytes);

    /* Feeding after the stream closed is a state error, not a parse error. */
    CHECK(xs_xml_parser_feed(whole.p, " ", 1) == XS_ESTATE);
    rec_free(&whole);
}

/* Parses HDR + body; returns feed's result and leaves the record open. */
static int run(struct rec *r, const struct xs_xml_limits *lim, const char *body, size_t chunk)
{
    rec_init(r, lim);
    struct xs_buf s;
    xs_buf_init(&s, 64 << 20);
    xs_buf_append_str(&s, HDR);
    xs_buf_append_str(&s, body);
    int rc = feed_chunks(r, s.data, s.len, chunk ? chunk : s.len);
    xs_buf_free(&s);
    return rc;
}

static void expect_fail(const char *name, const struct xs_xml_limits *lim, const char *body,
                        int err, const char *cond)
{
    size_t chunks[] = {0, 1, 7};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        struct rec r;
        int rc = run(&r, lim, body, chunks[i]);
        const char *got = xs_xml_parser_condition(r.p);
        if (rc != err || !got || strcmp(got, cond)) {
            fprintf(stderr, "%s (chunk %zu): rc=%d cond=%s detail=%s\n", name, chunks[i], rc,
                    got ? got : "(null)", xs_xml_parser_detail(r.p));
            CHECK(!"expected failure");
        }
        CHECK(*xs_xml_parser_detail(r.p) != '\0');
        /* Once failed, always failed; nothing more reaches the callbacks. */
        int before = r.stanzas;
        CHECK(xs_xml_parser_feed(r.p, "<a/>", 4) == err);
        CHECK(r.stanzas == before);
        rec_free(&r);
    }
}

static void expect_ok(const char *name, const struct xs_xml_limits *lim, const char *body,
                      int stanzas)
{
    size_t chunks[] = {0, 1, 7};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        struct rec r;
        int rc = run(&r, lim, body, chunks[i]);
        if (rc || r.stanzas != stanzas) {
            fprintf(stderr, "%s (chunk %zu): rc=%d stanzas=%d cond=%s detail=%s\n", name, chunks[i],
                    rc, r.stanzas, xs_xml_parser_condition(r.p) ?: "-", xs_xml_parser_detail(r.p));
            CHECK(!"expected success");
        }
        rec_free(&r);
    }
}

/* "<m>" + filler + "</m>": a stanza of exactly `len` bytes. */
static char *stanza_of(size_t len)
{
    char *s = malloc(len + 1);
    memcpy(s, "<m>", 3);
    memset(s + 3, 'a', len - 7);
    memcpy(s + len - 4, "</m>", 4);
    s[len] = '\0';
    return s;
}

static void test_limits(void)
{
    struct xs_xml_limits lim = {.max_stanza_bytes = 400, .max_depth = 3, .max_attrs = 5};
    char *at = stanza_of(400), *over = stanza_of(401);
    expect_ok("stanza at limit", &lim, at, 1);
    expect_fail("stanza one over", &lim, over, XS_ELIMIT, "policy-violation");
    free(at);
    free(over);

    /* The same with the bytes in an attribute, which expat buffers whole. */
    char attr_at[512], attr_over[512];
    snprintf(attr_at, sizeof attr_at, "<m a='%0*d'/>", 400 - 9, 0);
    snprintf(attr_over, sizeof attr_over, "<m a='%0*d'/>", 401 - 9, 0);
    CHECK(strlen(attr_at) == 400 && strlen(attr_over) == 401);
    expect_ok("attr stanza at limit", &lim, attr_at, 1);
    expect_fail("attr stanza one over", &lim, attr_over, XS_ELIMIT, "policy-violation");

    expect_ok("depth at limit", &lim, "<a><b><c/></b></a><a/>", 2);
    expect_fail("depth one over", &lim, "<a><b><c><d/></c></b></a>", XS_ELIMIT, "policy-violation");
    expect_ok("attrs at limit", &lim,
              "<a v='0' w='1' x='2' y='3' z='4'><b v='0' w='1' x='2' y='3' z='4'/></a>", 1);
    expect_fail("attrs one over", &lim, "<a u='9' v='0' w='1' x='2' y='3' z='4'/>", XS_ELIMIT,
                "policy-violation");
    expect_fail("child attrs one over", &lim, "<a><b u='9' v='0' w='1' x='2' y='3' z='4'/></a>",
                XS_ELIMIT, "policy-violation");

    /* Keepalives far beyond the stanza limit in total are fine. */
    char ws[2001];
    memset(ws, ' ', 2000);
    ws[2000] = '\0';
    expect_ok("keepalives", &lim, ws, 0);

    /* The stream header is bounded by bytes and by attributes. */
    struct xs_xml_limits hl = {.max_stanza_bytes = 300, .max_depth = 3, .max_attrs = 8};
    struct rec r;
    rec_init(&r, &hl);
    CHECK(xs_xml_parser_feed(r.p, HDR, strlen(HDR)) == 0 && r.opens == 1);
    rec_free(&r);
    hl.max_stanza_bytes = strlen(HDR) - 1;
    rec_init(&r, &hl);
    CHECK(xs_xml_parser_feed(r.p, HDR, strlen(HDR)) == XS_ELIMIT && r.opens == 0);
    CHECK_STR(xs_xml_parser_condition(r.p), "policy-violation");
    rec_free(&r);
    hl.max_stanza_bytes = 4096;
    hl.max_attrs = 4;
    rec_init(&r, &hl);
    CHECK(xs_xml_parser_feed(r.p, HDR, strlen(HDR)) == XS_ELIMIT && r.opens == 0);
    rec_free(&r);

    /* An endless header: fails once the bytes pass the bound, long before
     * the tag would end. */
    hl.max_attrs = 1000;
    rec_init(&r, &hl);
    static const char open[] = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'";
    int rc = xs_xml_parser_feed(r.p, open, strlen(open));
    size_t fed = strlen(open);
    char attr[32];
    for (int i = 0; rc == 0 && i < 100000; i++) {
        int k = snprintf(attr, sizeof attr, " a%d='x'", i);
        rc = xs_xml_parser_feed(r.p, attr, (size_t)k);
        fed += (size_t)k;
    }
    CHECK(rc == XS_ELIMIT && fed <= 4096 + 4096 + 16);
    rec_free(&r);
}

static void test_huge_stanza(void)
{
    struct xs_xml_limits lim = {.max_stanza_bytes = 100000, .max_depth = 16, .max_attrs = 16};
    const size_t chunk = 64 * 1024, total = 10 * 1024 * 1024;
    char *buf = malloc(chunk);
    memset(buf, 'a', chunk);
    for (int as_attr = 0; as_attr < 2; as_attr++) {
        struct rec r;
        rec_init(&r, &lim);
        int rc = xs_xml_parser_feed(r.p, HDR, strlen(HDR));
        const char *start = as_attr ? "<message to='" : "<message><body>";
        if (!rc)
            rc = xs_xml_parser_feed(r.p, start, strlen(start));
        size_t fed = 0;
        while (rc == 0 && fed < total) {
            rc = xs_xml_parser_feed(r.p, buf, chunk);
            fed += chunk;
        }
        CHECK(rc == XS_ELIMIT);
        CHECK_STR(xs_xml_parser_condition(r.p), "policy-violation");
        CHECK(fed < 2 * lim.max_stanza_bytes);
        rec_free(&r);
    }
    free(buf);
}

static void test_hostile(void)
{
    const struct xs_xml_limits *l = &big;
    struct {
        const char *name, *doc;
        int err;
        const char *cond;
    } pre[] = {
        {"doctype",
         "<!DOCTYPE stream><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
         XS_EPROTO, "restricted-xml"},
        {"billion laughs",
         "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
         "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
         "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
         "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
         "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><a>&lol3;</a>",
         XS_EPROTO, "restricted-xml"},
        {"internal entity",
         "<!DOCTYPE s [<!ENTITY e 'x'>]><stream:stream "
         "xmlns:stream='http://etherx.jabber.org/streams'><a>&e;</a>",
         XS_EPROTO, "restricted-xml"},
        {"external entity",
         "<!DOCTYPE s [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><stream:stream "
         "xmlns:stream='http://etherx.jabber.org/streams'><a>&e;</a>",
         XS_EPROTO, "restricted-xml"},
        {"pi before stream",
         "<?foo bar?><stream:stream "
         "xmlns:stream='http://etherx.jabber.org/streams'>",
         XS_EPROTO, "restricted-xml"},
        {"comment before stream",
         "<!-- hi --><stream:stream "
         "xmlns:stream='http://etherx.jabber.org/streams'>",
         XS_EPROTO, "restricted-xml"},
        {"latin1",
         "<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream "
         "xmlns:stream='http://etherx.jabber.org/streams'>",
         XS_EPROTO, "unsupported-encoding"},
        {"wrong stream ns", "<stream:stream xmlns:stream='urn:wrong'>", XS_EPROTO,
         "invalid-namespace"},
        {"stream without ns", "<stream>", XS_EPROTO, "invalid-namespace"},
        {"wrong root", "<message xmlns='jabber:server'/>", XS_EPROTO, "bad-format"},
        {"text before stream", "hello<a/>", XS_EPROTO, "not-well-formed"},
    };
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++) {
        for (size_t chunk = 1; chunk <= 4096; chunk *= 4096) {
            struct rec r;
            rec_init(&r, l);
            int rc = feed_chunks(&r, pre[i].doc, strlen(pre[i].doc), chunk);
            const char *cond = xs_xml_parser_condition(r.p);
            if (rc != pre[i].err || !cond || strcmp(cond, pre[i].cond) || r.stanzas) {
                fprintf(stderr, "%s: rc=%d cond=%s detail=%s\n", pre[i].name, rc,
                        cond ? cond : "(null)", xs_xml_parser_detail(r.p));
                CHECK(!"hostile prolog accepted");
            }
            rec_free(&r);
        }
    }

    expect_fail("pi in stanza", l, "<a><?php x?></a>", XS_EPROTO, "restricted-xml");
    expect_fail("comment in stanza", l, "<a><!-- c --></a>", XS_EPROTO, "restricted-xml");
    expect_fail("comment between stanzas", l, "<a/><!-- c -->", XS_EPROTO, "restricted-xml");
    expect_fail("undefined entity", l, "<a>&nbsp;</a>", XS_EPROTO, "restricted-xml");
    expect_fail("xml decl mid-stream", l, "<?xml version='1.0'?>", XS_EPROTO, "not-well-formed");
    expect_fail("unclosed then close", l, "<message><body>hi</stream:stream>", XS_EPROTO,
                "not-well-formed");
    expect_fail("mismatched", l, "<a><b></a></b>", XS_EPROTO, "not-well-formed");
    expect_fail("bad utf8", l, "<a>\xC3\x28</a>", XS_EPROTO, "not-well-formed");
    expect_fail("overlong utf8", l, "<a>\xC0\xAF</a>", XS_EPROTO, "not-well-formed");
    expect_fail("surrogate utf8", l, "<a>\xED\xA0\x80</a>", XS_EPROTO, "not-well-formed");
    expect_fail("bad utf8 in attr", l, "<a x='\xFF'/>", XS_EPROTO, "not-well-formed");
    expect_fail("control char", l, "<a>\x01</a>", XS_EPROTO, "not-well-formed");
    expect_fail("text at depth 1", l, "<a/>junk<b/>", XS_EPROTO, "bad-format");
    expect_fail("unbound prefix", l, "<x:a/>", XS_EPROTO, "not-well-formed");
    expect_fail("duplicate attr", l, "<a x='1' x='2'/>", XS_EPROTO, "not-well-formed");
}

static void test_stop(void)
{
    struct rec r;
    rec_init(&r, &big);
    r.stop_after = 1;
    static const char s[] = HDR "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                                "<message><body>must not be read</body></message>garbage<<<";
    CHECK(xs_xml_parser_feed(r.p, s, strlen(s)) == 0);
    CHECK(r.stanzas == 1 && r.closes == 0);
    CHECK(strstr(r.log.data, "must not") == NULL);
    CHECK(xs_xml_parser_condition(r.p) == NULL);
    CHECK_STR(xs_xml_parser_detail(r.p), "");
    CHECK(xs_xml_parser_feed(r.p, "<a/>", 4) == XS_ESTATE);
    CHECK(r.stanzas == 1);
    rec_free(&r);

    /* Stopped between feeds: the next feed delivers nothing. */
    rec_init(&r, &big);
    CHECK(xs_xml_parser_feed(r.p, HDR, strlen(HDR)) == 0);
    xs_xml_parser_stop(r.p);
    CHECK(xs_xml_parser_feed(r.p, "<a/>", 4) == XS_ESTATE && r.stanzas == 0);
    rec_free(&r);
}

static void test_xml_decl(void)
{
    struct rec r;
    rec_init(&r, &big);
    static const char s[] = "\xEF\xBB\xBF<?xml version='1.0' encoding='utf-8'?>\n<stream:stream "
                            "xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"
                            "<a/></stream:stream>";
    CHECK(xs_xml_parser_feed(r.p, s, strlen(s)) == 0);
    CHECK(r.opens == 1 && r.stanzas == 1 && r.closes == 1);
    rec_free(&r);
}

static double cpu_seconds(void)
{
    return (double)clock() / CLOCKS_PER_SEC;
}

/* HDR + "<x xmlns='urn:aaa...'>" (a URI of uri_len bytes) + n x `child`, fed in one
 * piece per child as a peer writing them would; returns feed's result and
 * leaves the record open. *fed counts the bytes handed over. */
static int run_children(struct rec *r, const struct xs_xml_limits *lim, const char *decl,
                        size_t uri_len, const char *child, size_t n, size_t *fed)
{
    rec_init(r, lim);
    int rc = xs_xml_parser_feed(r->p, HDR, strlen(HDR));
    char *open = malloc(uri_len + 64);
    size_t k = (size_t)snprintf(open, 64, "<x %s='urn:", decl);
    memset(open + k, 'a', uri_len - 4);
    k += uri_len - 4;
    memcpy(open + k, "'>", 3);
    k += 2;
    if (!rc)
        rc = xs_xml_parser_feed(r->p, open, k);
    *fed = k;
    free(open);
    for (size_t i = 0; i < n && !rc; i++) {
        rc = xs_xml_parser_feed(r->p, child, strlen(child));
        *fed += strlen(child);
    }
    return rc;
}

/* Audit C2: memory follows input bytes, not element counts. Each case
 * would allocate hundreds of megabytes to gigabytes if the namespace were
 * copied into every element or elements were unbounded. */
static void test_memory_bounds(void)
{
    const struct xs_xml_limits lim = {.max_stanza_bytes = 262144, .max_depth = 32, .max_attrs = 32};
    struct {
        const char *name, *decl;
        size_t uri_len;
        const char *child;
        size_t n, max_elements;
        const char *detail;
    } cases[] = {
        /* The audit's triggers: L = 16 KiB with N = 4096, L = 64 KiB with 16 Ki. */
        {"audit 16K uri", "xmlns", 16384, "<b/>", 4096, 0, "namespace URI longer than 1024 bytes"},
        {"audit 64K uri", "xmlns", 65536, "<b/>", 16384, 0, "a tag or token exceeds 16384 bytes"},
        {"uri over cap", "xmlns", 1025, "<b/>", 16, 0, "namespace URI longer than 1024 bytes"},
        {"prefixed uri over cap", "xmlns:p", 1025, "<p:b/>", 16, 0,
         "namespace URI longer than 1024 bytes"},
        /* URIs the cap allows: the element count stops it, then the bytes. */
        {"elements", "xmlns", 1024, "<b/>", 16384, 0, "more than 4096 elements in one stanza"},
        {"tree bytes", "xmlns", 1024, "<b/>", 65536, 1 << 20,
         "stanza tree exceeds 1048576 bytes of memory"},
        {"prefixed attributes", "xmlns:p", 1024,
         "<b p:a='' p:b='' p:c='' p:d='' p:e='' p:f='' p:g='' p:h='' p:i='' p:j='' p:k='' "
         "p:l='' p:m='' p:n='' p:o='' p:p='' p:q='' p:r='' p:s='' p:t='' p:u='' p:v='' p:w=''/>",
         16384, 0, "stanza tree exceeds 1048576 bytes of memory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct xs_xml_limits l = lim;
        l.max_elements = cases[i].max_elements;
#if XS_TEST_OWN_MALLOC
        size_t base = peak_start();
#endif
        double t0 = cpu_seconds();
        struct rec r;
        size_t fed;
        int rc =
            run_children(&r, &l, cases[i].decl, cases[i].uri_len, cases[i].child, cases[i].n, &fed);
        double cpu = cpu_seconds() - t0;
        const char *cond = xs_xml_parser_condition(r.p);
        if (rc != XS_ELIMIT || !cond || strcmp(cond, "policy-violation") ||
            strcmp(xs_xml_parser_detail(r.p), cases[i].detail) || r.stanzas || cpu > 0.5) {
            fprintf(stderr, "%s: rc=%d cond=%s detail=%s cpu=%.3f\n", cases[i].name, rc,
                    cond ? cond : "-", xs_xml_parser_detail(r.p), cpu);
            CHECK(!"memory bound not enforced");
        }
#if XS_TEST_OWN_MALLOC
        /* The tree's cap, plus expat's buffers and the record's log. */
        size_t peak = PEAK_SINCE(base);
        if (peak > 4 * lim.max_stanza_bytes + 256 * 1024) {
            fprintf(stderr, "%s: %zu bytes peak for %zu bytes of input\n", cases[i].name, peak,
                    fed);
            CHECK(!"allocation not bounded");
        }
#endif
        rec_free(&r);
    }
#if XS_TEST_OWN_MALLOC
    /* The audit's exact trigger fails at its first tag, before the bytes it
     * sent would cost even a few times their size. */
    size_t base = peak_start();
    struct rec r;
    size_t fed;
    CHECK(run_children(&r, &lim, "xmlns", 65536, "<b/>", 16384, &fed) == XS_ELIMIT);
    CHECK(PEAK_SINCE(base) < 128 * 1024);
    rec_free(&r);
#endif

    /* The caps hold at exactly their values. */
    struct xs_xml_limits few = {
        .max_stanza_bytes = 65536, .max_depth = 8, .max_attrs = 8, .max_elements = 3};
    expect_ok("elements at limit", &few, "<a><b/><c/></a><a><b><c/></b></a>", 2);
    expect_fail("elements one over", &few, "<a><b/><c/><d/></a>", XS_ELIMIT, "policy-violation");
    char doc[4 * XS_XML_MAX_NAME];
    snprintf(doc, sizeof doc, "<a xmlns='%0*d'/>", XS_XML_MAX_NAME, 0);
    expect_ok("uri at limit", &big, doc, 1);
    snprintf(doc, sizeof doc, "<a xmlns='%0*d'/>", XS_XML_MAX_NAME + 1, 0);
    expect_fail("uri one over", &big, doc, XS_ELIMIT, "policy-violation");
    snprintf(doc, sizeof doc, "<a xmlns:p='urn:p' p:a%0*d='v'/>", XS_XML_MAX_NAME - 1, 0);
    expect_ok("attribute name at limit", &big, doc, 1);
    snprintf(doc, sizeof doc, "<a xmlns:p='urn:p' p:a%0*d='v'/>", XS_XML_MAX_NAME, 0);
    expect_fail("attribute name one over", &big, doc, XS_ELIMIT, "policy-violation");
    snprintf(doc, sizeof doc, "<a%0*d/>", XS_XML_MAX_NAME, 0);
    expect_fail("element name one over", &big, doc, XS_ELIMIT, "policy-violation");
}

/* Audit H2: a token trickled in tiny pieces must not cost quadratic CPU,
 * and whatever expat defers must not delay a stanza that is complete. */
static void test_trickle(void)
{
    const struct xs_xml_limits lim = {.max_stanza_bytes = 262144, .max_depth = 32, .max_attrs = 32};
    const size_t n = 250000;
    char *doc = malloc(n + 64);
    static const char *opens[] = {"<message a='", "<message><!--", "<message><![CDATA[",
                                  "<message><body>"};
    for (size_t i = 0; i < sizeof opens / sizeof opens[0]; i++) {
        size_t k = strlen(opens[i]);
        memcpy(doc, opens[i], k);
        memset(doc + k, 'x', n);
        k += n;
        int streams = i >= 2; /* character data and CDATA stream: no token grows */
        k += (size_t)snprintf(doc + k, 64, "%s",
                              streams ? (i == 2 ? "]]></message>" : "</body></message>") : "'/>");
        struct rec r;
        rec_init(&r, &lim);
        int rc = xs_xml_parser_feed(r.p, HDR, strlen(HDR));
        double t0 = cpu_seconds();
        size_t off = 0;
        for (; off < k && !rc; off += 16)
            rc = xs_xml_parser_feed(r.p, doc + off, k - off < 16 ? k - off : 16);
        double cpu = cpu_seconds() - t0;
        if (streams) {
            CHECK(rc == 0 && r.stanzas == 1);
        } else {
            CHECK(rc == XS_ELIMIT && r.stanzas == 0);
            CHECK_STR(xs_xml_parser_detail(r.p), "a tag or token exceeds 16384 bytes");
            CHECK(off <= strlen(opens[i]) + 16384 + 32);
        }
        if (cpu > 0.5) {
            fprintf(stderr, "trickle %s: %.3f s of CPU\n", opens[i], cpu);
            CHECK(!"trickled token costs quadratic CPU");
        }
        rec_free(&r);
    }
    free(doc);

    /* The last byte of a stanza in a segment of its own is delivered at
     * once. The second case is what expat >= 2.6 defers: the previous
     * attempt found the token "</messag" unfinished, so it waits for its
     * buffer to double before it looks again. */
    static const char *stanzas[] = {
        "<message to='a@b'><body>hi</body></message>",
        "<message><body>hi</body></messag",
        "<presence/>",
    };
    for (size_t i = 0; i < sizeof stanzas / sizeof stanzas[0]; i++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            struct rec r;
            rec_init(&r, &big);
            CHECK(xs_xml_parser_feed(r.p, HDR, strlen(HDR)) == 0);
            char st[128];
            size_t k = (size_t)snprintf(st, sizeof st, "%s", stanzas[i]);
            if (i == 1)
                k += (size_t)snprintf(st + k, sizeof st - k, "e>");
            int rc = 0;
            if (bytewise)
                rc = feed_chunks(&r, st, k - 1, 1);
            else if (i == 1)
                rc = xs_xml_parser_feed(r.p, st, k - 2) || xs_xml_parser_feed(r.p, st + k - 2, 1);
            else
                rc = xs_xml_parser_feed(r.p, st, k - 1);
            CHECK(rc == 0 && r.stanzas == 0);
            CHECK(xs_xml_parser_feed(r.p, st + k - 1, 1) == 0);
            if (r.stanzas != 1) {
                fprintf(stderr, "%s (bytewise %d): not delivered at its last byte\n", st, bytewise);
                CHECK(!"stanza held back");
            }
            rec_free(&r);
        }
    }
}

/* Limits change from the next stanza on: small before authentication, the
 * full ones after, whether set between feeds, from the stanza callback or
 * while a stanza is half parsed. */
static void test_set_limits(void)
{
    const struct xs_xml_limits small = {.max_stanza_bytes = 512, .max_depth = 4, .max_attrs = 8};
    char *st = stanza_of(1000);
    struct rec r;

    rec_init(&r, &small);
    CHECK(xs_xml_parser_feed(r.p, HDR "<auth/>", strlen(HDR "<auth/>")) == 0);
    xs_xml_parser_set_limits(r.p, &big);
    CHECK(xs_xml_parser_feed(r.p, st, 1000) == 0 && r.stanzas == 2);
    rec_free(&r);

    /* From the callback, in the same feed as the stanza that follows. */
    struct xs_buf in;
    xs_buf_init(&in, 1 << 16);
    xs_buf_printf(&in, "%s<auth/>%s", HDR, st);
    rec_init(&r, &small);
    r.then = &big;
    CHECK(xs_xml_parser_feed(r.p, in.data, in.len) == 0 && r.stanzas == 2);
    rec_free(&r);
    /* And shrinking the same way refuses the next large stanza. */
    rec_init(&r, &big);
    r.then = &small;
    CHECK(xs_xml_parser_feed(r.p, in.data, in.len) == XS_ELIMIT && r.stanzas == 1);
    CHECK_STR(xs_xml_parser_condition(r.p), "policy-violation");
    rec_free(&r);

    /* Half a stanza in: it finishes under the limits it began with. */
    rec_init(&r, &big);
    CHECK(xs_xml_parser_feed(r.p, HDR, strlen(HDR)) == 0);
    CHECK(xs_xml_parser_feed(r.p, st, 600) == 0);
    xs_xml_parser_set_limits(r.p, &small);
    CHECK(xs_xml_parser_feed(r.p, st + 600, 400) == 0 && r.stanzas == 1);
    CHECK(xs_xml_parser_feed(r.p, st, 1000) == XS_ELIMIT && r.stanzas == 1);
    rec_free(&r);

    /* Before the header, the header is the next thing bounded. */
    struct xs_xml_limits tiny = {.max_stanza_bytes = 100, .max_depth = 4, .max_attrs = 16};
    rec_init(&r, &big);
    xs_xml_parser_set_limits(r.p, &tiny);
    CHECK(xs_xml_parser_feed(r.p, HDR, strlen(HDR)) == XS_ELIMIT && r.opens == 0);
    rec_free(&r);
    xs_buf_free(&in);
    free(st);
}

/* A parser trimmed wherever trimming is allowed parses the stream exactly as
 * one never trimmed: fed in pieces of every size, trimmed after each. */
static void test_trim(void)
{
    size_t n = strlen(stream);
    struct rec whole;
    rec_init(&whole, &big);
    CHECK(xs_xml_parser_trim(whole.p) == 0); /* nothing read: no header to keep */
    CHECK(xs_xml_parser_feed(whole.p, stream, n) == 0);
    int same = 1, trims = 0;
    for (size_t chunk = 1; chunk <= 64; chunk++) {
        struct rec r;
        rec_init(&r, &big);
        int rc = 0;
        for (size_t off = 0; off < n && !rc; off += chunk) {
            size_t k = n - off < chunk ? n - off : chunk;
            rc = xs_xml_parser_feed(r.p, stream + off, k);
            trims += xs_xml_parser_trim(r.p);
        }
        if (rc || strcmp(r.log.data, whole.log.data)) {
            fprintf(stderr, "trimmed, chunk %zu: rc=%d %s\n", chunk, rc, r.log.data);
            same = 0;
        }
        rec_free(&r);
    }
    CHECK(same && trims > 64);
    rec_free(&whole);

    /* Not mid-stanza, not after the stream closed; the db: prefix of the
     * header is still bound after a trim. */
    struct rec r;
    rec_init(&r, &big);
    CHECK(xs_xml_parser_feed(r.p, HDR, strlen(HDR)) == 0);
    CHECK(xs_xml_parser_trim(r.p) == 1);
    CHECK(xs_xml_parser_trim(r.p) == 0);
    CHECK(xs_xml_parser_feed(r.p, "<db:result from='a.test'>k", 26) == 0);
    CHECK(xs_xml_parser_trim(r.p) == 0);
    CHECK(xs_xml_parser_feed(r.p, "</db:result>", 12) == 0);
    CHECK(r.stanzas == 1 && strstr(r.log.data, "<result xmlns='jabber:server:dialback' "
                                                "from='a.test'>k</result>") != NULL);
    CHECK(xs_xml_parser_feed(r.p, "</stream:stream>", 16) == 0 && r.closes == 1);
    CHECK(xs_xml_parser_trim(r.p) == 0);
    CHECK(r.opens == 1);
    rec_free(&r);

    /* Sizes still count from where each stanza starts: at the limit and one
     * over, each after a trim. */
    struct xs_xml_limits lim = {.max_stanza_bytes = 400, .max_depth = 3, .max_attrs = 5};
    char *at = stanza_of(400), *over = stanza_of(401);
    rec_init(&r, &lim);
    CHECK(xs_xml_parser_feed(r.p, HDR, strlen(HDR)) == 0);
    CHECK(xs_xml_parser_feed(r.p, " \n", 2) == 0 && xs_xml_parser_trim(r.p) == 1);
    CHECK(xs_xml_parser_feed(r.p, at, 400) == 0 && r.stanzas == 1);
    CHECK(xs_xml_parser_trim(r.p) == 1);
    CHECK(xs_xml_parser_feed(r.p, over, 401) == XS_ELIMIT);
    CHECK_STR(xs_xml_parser_condition(r.p), "policy-violation");
    CHECK(r.stanzas == 1);
    rec_free(&r);
    free(at);
    free(over);
}

#if XS_TEST_OWN_MALLOC
static void drop_stanza(void *ud, struct xs_xml_el *st)
{
    (*(int *)ud)++;
    xs_xml_el_free(st);
}

/* After a large stanza the parser returns to about what it held before,
 * so an idle stream does not keep the peak of its largest stanza. */
static void test_shrink(void)
{
    static const struct xs_xml_cbs drop = {NULL, drop_stanza, NULL};
    const struct xs_xml_limits lim = {.max_stanza_bytes = 262144, .max_depth = 8, .max_attrs = 8};
    int got = 0;
    size_t before = bytes_live;
    struct xs_xml_parser *p = xs_xml_parser_new(&lim, &drop, &got);
    static const char small[] = "<message><body>hi</body></message>";
    CHECK(xs_xml_parser_feed(p, HDR, strlen(HDR)) == 0);
    CHECK(xs_xml_parser_feed(p, small, strlen(small)) == 0);
    size_t idle = bytes_live - before;
    char *big_st = malloc(250000);
    int n = snprintf(big_st, 64, "<message><body>");
    memset(big_st + n, 'x', 240000);
    n += 240000;
    n += snprintf(big_st + n, 250000 - (size_t)n, "</body><x a='%0*d'/></message>", 8000, 0);
    CHECK(xs_xml_parser_feed(p, big_st, (size_t)n) == 0);
    free(big_st);
    CHECK(xs_xml_parser_feed(p, small, strlen(small)) == 0 && got == 3);
    size_t after = bytes_live - before;
    if (after > idle + 32 * 1024) {
        fprintf(stderr, "parser holds %zu bytes after a large stanza, %zu before\n", after, idle);
        CHECK(!"peak kept");
    }
    xs_xml_parser_free(p);
}

/* A trimmed parser holds the header's bytes and little else; expat's
 * buffers and tables come back only with the next byte. */
static void test_trim_memory(void)
{
    static const struct xs_xml_cbs drop = {NULL, drop_stanza, NULL};
    int got = 0;
    size_t before = bytes_live;
    struct xs_xml_parser *p = xs_xml_parser_new(&big, &drop, &got);
    static const char small[] = "<message><body>hi</body></message>";
    CHECK(xs_xml_parser_feed(p, HDR, strlen(HDR)) == 0);
    CHECK(xs_xml_parser_feed(p, small, strlen(small)) == 0);
    size_t awake = bytes_live - before;
    CHECK(xs_xml_parser_trim(p) == 1);
    size_t idle = bytes_live - before;
    CHECK(xs_xml_parser_feed(p, small, strlen(small)) == 0 && got == 2);
    fprintf(stderr, "parser: %zu bytes awake, %zu trimmed\n", awake, idle);
    CHECK(idle < 1024 && awake > 4 * idle);
    xs_xml_parser_free(p);
}

/* Fails each allocation of a whole stream's parse in turn: every run ends in
 * success or XS_ENOMEM with resource-constraint, never a crash. */
static void oom_run(int trim)
{
    size_t n = strlen(stream);
    int saw_nomem = 0, bad = 0;
    for (long at = 1; at < 100000; at++) {
        alloc_count = 0;
        alloc_fail_at = at;
        long live = alloc_live;
        struct rec r;
        rec_init(&r, &big);
        if (r.p) {
            int rc = 0;
            for (size_t off = 0; off < n && !rc; off += 64) {
                rc = xs_xml_parser_feed(r.p, stream + off, n - off < 64 ? n - off : 64);
                if (trim)
                    xs_xml_parser_trim(r.p);
            }
            const char *cond = xs_xml_parser_condition(r.p);
            /* Some of expat's own failures surface as other errors (an
             * unbound prefix when a binding cannot be stored); any clean
             * failure that names a condition is acceptable. */
            if (rc == XS_ENOMEM)
                saw_nomem = 1;
            if (rc && (!cond || (rc == XS_ENOMEM && strcmp(cond, "resource-constraint")))) {
                fprintf(stderr, "allocation %ld failed: rc=%d cond=%s\n", at, rc,
                        cond ? cond : "-");
                bad = 1;
            }
            xs_xml_parser_free(r.p);
        }
        xs_buf_free(&r.log);
        if (alloc_live != live) {
            fprintf(stderr, "allocation %ld failed: %ld blocks leaked\n", at, alloc_live - live);
            bad = 1;
        }
        if (alloc_count < at)
            break; /* the whole run needed fewer allocations: all were tried */
    }
    alloc_fail_at = 0;
    CHECK(saw_nomem && !bad);
}

/* The same with the parser trimmed after every piece, so that rebuilding
 * it from the header fails at each of its allocations too. */
static void test_oom(void)
{
    oom_run(0);
    oom_run(1);
}
#endif

int main(void)
{
    test_splits();
    test_limits();
    test_huge_stanza();
    test_hostile();
    test_stop();
    test_xml_decl();
    test_memory_bounds();
    test_trickle();
    test_set_limits();
    test_trim();
#if XS_TEST_OWN_MALLOC
    test_shrink();
    test_trim_memory();
    test_oom();
#endif
    return check_report("test_xml_parser");
}
