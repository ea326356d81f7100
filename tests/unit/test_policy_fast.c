/* What the core decides without Lua (policy/route_fast.c) against what
 * lua/xsgw/policy.lua's route() decides: the same answer, the same text and
 * the same rewritten event for every message of a corpus; and the
 * per-generation answers (domain index, route()'s federated cache) follow a
 * reload at once. The mapping itself is held to address.lua in
 * tests/lua/test_addr_map.lua. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/log.h"
#include "policy/policy.h"
#include "policy_testutil.h"

/* A message: origin, from, to, body, then any other field by name. */
#define MSG(o, f, t, b, ...)                                                                       \
    {                                                                                              \
        .origin = (o), .from = (f), .to = (t), .body = (b), __VA_ARGS__                            \
    }

/* The same policy three ways: without hooks (decided in C where it
 * accepts), with hooks that map through address.lua itself (route() and
 * the Lua mapping), and with an on_message that changes nothing (route()
 * with the C mapping). */
static const char lua_mapping[] = "function map_to_sip(j) return xsgw.address.to_sip(j) end\n"
                                  "function map_to_xmpp(u) return xsgw.address.to_xmpp(u) end\n";
static const char identity_hook[] = "function on_message(m) return m end\n";
/* A hook that refuses, keeps, redirects out of bounds, oversizes a field or
 * edits, by the body. */
static const char editing_hook[] =
    "function on_message(m)\n"
    "  if m.body == 'no' then return reject('not-allowed', 'said no') end\n"
    "  if m.body == 'nil' then return nil end\n"
    "  if m.body == 'away' then m.to = 'x@elsewhere.test'; return m end\n"
    "  if m.body == 'big' then m.id = string.rep('i', 5000); return m end\n"
    "  m.subject = (m.subject or '') .. '!'\n"
    "  return m\n"
    "end\n";

struct msg {
    enum xs_side_id origin;
    const char *from, *to, *body;
    const char *id, *thread, *subject, *lang, *type;
};

static char *long_string(size_t n, char c)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

struct outcome {
    enum xs_cond cond;
    char *text;
    struct xs_event *ev;
};

static struct outcome decide(struct xs_policy *p, const struct msg *m)
{
    struct xs_event *ev = xs_event_new(XS_EVENT_MESSAGE, m->origin);
    xs_event_set(&ev->from, m->from);
    xs_event_set(&ev->to, m->to);
    xs_event_set(&ev->body, m->body);
    xs_event_set(&ev->id, m->id);
    xs_event_set(&ev->thread, m->thread);
    xs_event_set(&ev->subject, m->subject);
    xs_event_set(&ev->lang, m->lang);
    xs_event_set(&ev->type, m->type);
    struct outcome o = {0};
    o.cond = xs_policy_route(p, ev, &o.text);
    o.ev = ev;
    return o;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static int same_outcome(const struct outcome *a, const struct outcome *b)
{
    const struct xs_event *x = a->ev, *y = b->ev;
    return a->cond == b->cond && same_str(a->text, b->text) && same_str(x->from, y->from) &&
           same_str(x->to, y->to) && same_str(x->body, y->body) && same_str(x->id, y->id) &&
           same_str(x->thread, y->thread) && same_str(x->subject, y->subject) &&
           same_str(x->lang, y->lang) && same_str(x->type, y->type);
}

static void outcome_free(struct outcome *o)
{
    free(o->text);
    xs_event_free(o->ev);
}

static int compare(struct xs_policy *fast, struct xs_policy *lua, const struct msg *m)
{
    struct outcome a = decide(fast, m), b = decide(lua, m);
    if (!same_outcome(&a, &b)) {
        fprintf(stderr,
                "differ on %s -> %s: C cond %d text %s from %s to %s; Lua cond %d text %s "
                "from %s to %s\n",
                m->from ? m->from : "(nil)", m->to ? m->to : "(nil)", a.cond, a.text ? a.text : "-",
                a.ev->from ? a.ev->from : "-", a.ev->to ? a.ev->to : "-", b.cond,
                b.text ? b.text : "-", b.ev->from ? b.ev->from : "-", b.ev->to ? b.ev->to : "-");
        CHECK(!"the C decision is route()'s");
    }
    int ok = a.cond == XS_COND_NONE;
    outcome_free(&a);
    outcome_free(&b);
    return ok;
}

static void test_same_decisions(const char *extra, const char *name)
{
    char err[512];
    char src_lua[2048], src_hook[2048], src_edit[2048], src_edit_lua[2048];
    snprintf(src_lua, sizeof src_lua, "%s%s", extra, lua_mapping);
    snprintf(src_hook, sizeof src_hook, "%s%s", extra, identity_hook);
    snprintf(src_edit, sizeof src_edit, "%s%s", extra, editing_hook);
    snprintf(src_edit_lua, sizeof src_edit_lua, "%s%s%s", extra, editing_hook, lua_mapping);
    struct xs_policy *fast = load(extra, err, sizeof err);
    struct xs_policy *lua = NULL, *hook = NULL, *edit = NULL, *edit_lua = NULL;
    xs_policy_load(write_policy("lua.lua", src_lua), lua_dir, &lua, err, sizeof err);
    xs_policy_load(write_policy("hook.lua", src_hook), lua_dir, &hook, err, sizeof err);
    xs_policy_load(write_policy("edit.lua", src_edit), lua_dir, &edit, err, sizeof err);
    xs_policy_load(write_policy("edit_lua.lua", src_edit_lua), lua_dir, &edit_lua, err, sizeof err);
    if (!fast || !lua || !hook || !edit || !edit_lua) {
        fprintf(stderr, "%s: %s\n", name, err);
        CHECK(!"load");
        return;
    }
    char *big_id = long_string(4097, 'i'), *max_id = long_string(4096, 'i');
    char *big_body = long_string(256 * 1024 + 1, 'b');
    char *long_local = long_string(1023, 'u');
    char long_jid[1100], long_uri[1100], wide_jid[3100];
    snprintf(long_jid, sizeof long_jid, "%s@xmpp.test", long_local);
    snprintf(long_uri, sizeof long_uri, "sip:%s@sip.test", long_local);
    /* 1022 bytes of "é" in the localpart and as many in the resource
     * become over 6,000 bytes of SIP URI, past the 4096 a field may hold. */
    char wide[1100];
    size_t o = 0;
    for (int i = 0; i < 511; i++)
        o += (size_t)snprintf(wide + o, sizeof wide - o, "\xc3\xa9");
    snprintf(wide_jid, sizeof wide_jid, "%s@xmpp.test/%s", wide, wide);
    const struct msg corpus[] = {
        MSG(XS_SIDE_XMPP, "alice@xmpp.test/phone", "bob@sip.test", "hi", .type = "chat"),
        MSG(XS_SIDE_XMPP, "alice@XMPP.test", "Bob@SIP.Test.", "hi", .id = "x1", .lang = "en"),
        MSG(XS_SIDE_XMPP, "john\\20doe\\40corp@xmpp.test/my phone;1@home", "a\\2fb@sip.test", "é"),
        MSG(XS_SIDE_XMPP, "a\\2Fb@xmpp.test", "m\\26m@sip.test/r", "x", .thread = "t",
            .subject = "s"),
        MSG(XS_SIDE_XMPP, "\\20bob@xmpp.test", "bob@sip.test", "x"),
        MSG(XS_SIDE_XMPP, "bob@xmpp.test", "bob\\20@sip.test", "x"),
        MSG(XS_SIDE_XMPP, "h\xc3\xa9llo@legacy.test", "bob@sip.test", "x"),
        MSG(XS_SIDE_XMPP, "eve@stranger.test", "bob@sip.test", "x"),
        MSG(XS_SIDE_XMPP, "alice@xmpp.test", "bob@elsewhere.test", "x"),
        MSG(XS_SIDE_XMPP, "mallory@sip.test", "bob@sip.test", "x"),
        MSG(XS_SIDE_XMPP, "alice@xmpp.test", "alice@xmpp.test", "x"),
        MSG(XS_SIDE_XMPP, "a b@xmpp.test", "bob@sip.test", "x"),
        MSG(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test", NULL),
        MSG(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test", "\xff"),
        MSG(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test", big_body),
        MSG(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test", "x", .id = big_id),
        MSG(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test", "x", .id = max_id),
        MSG(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test", "x", .subject = "\xc0\x80"),
        MSG(XS_SIDE_XMPP, long_jid, "bob@sip.test", "x"),
        MSG(XS_SIDE_XMPP, wide_jid, "bob@sip.test", "x"),
        MSG(XS_SIDE_XMPP, "alice@[::1]", "bob@sip.test", "x"),
        MSG(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test", "no"),
        MSG(XS_SIDE_XMPP, "alice@xmpp.test/r", "bob@sip.test", "nil", .subject = "s"),
        MSG(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test", "away"),
        MSG(XS_SIDE_XMPP, "alice@xmpp.test", "bob@sip.test", "big"),
        MSG(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "no"),
        MSG(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test;gr=r", "nil"),
        MSG(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "away"),
        MSG(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "big"),
        MSG(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "x"),
        MSG(XS_SIDE_SIP, "sips:Bob@SIP.test:5061;transport=tls", "sip:alice@xmpp.test;gr=phone",
            "x"),
        MSG(XS_SIDE_SIP, "sip:john%20doe%40corp@sip.test", "sip:d'artagnan@xmpp.test", "x"),
        MSG(XS_SIDE_SIP, "sip:a%5C2fb@sip.test", "sip:a;b@legacy.test?subject=x", "x"),
        MSG(XS_SIDE_SIP, "sip:%20bob@sip.test", "sip:alice@xmpp.test", "x"),
        MSG(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test;gr=%00", "x"),
        MSG(XS_SIDE_SIP, "sip:bob@sip.test", "sip:c@stranger.test", "x"),
        MSG(XS_SIDE_SIP, "sip:bob@other.test", "sip:alice@xmpp.test", "x"),
        MSG(XS_SIDE_SIP, "sip:bob@sip.test", "sip:carol@sip.test", "x"),
        MSG(XS_SIDE_SIP, "tel:+1234", "sip:alice@xmpp.test", "x"),
        MSG(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "x", .lang = big_id),
        MSG(XS_SIDE_SIP, "sip:bob@sip.test", "sip:alice@xmpp.test", "\xed\xa0\x80"),
        MSG(XS_SIDE_SIP, long_uri, "sip:alice@xmpp.test", "x"),
    };
    int accepted = 0, edited = 0;
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        accepted += compare(fast, lua, &corpus[i]);
        compare(fast, hook, &corpus[i]);
        /* With an on_message: the mapping done before it in C (edit)
         * against route() mapping in Lua (edit_lua). */
        edited += compare(edit, edit_lua, &corpus[i]);
    }
    /* Both kinds of answer are in the corpus, the accepted ones each way. */
    CHECK(accepted >= 8 && accepted < (int)(sizeof corpus / sizeof corpus[0]));
    CHECK(edited >= 8 && edited < accepted);
    free(big_id);
    free(max_id);
    free(big_body);
    free(long_local);
    xs_policy_free(fast);
    xs_policy_free(lua);
    xs_policy_free(hook);
    xs_policy_free(edit);
    xs_policy_free(edit_lua);
}

/* A reload that changes a decision changes it for the very next message,
 * with and without hooks: the domain index and route()'s federated cache
 * belong to the generation. */
static void test_reload(void)
{
    static const char *const hooks[] = {"", identity_hook};
    for (size_t h = 0; h < 2; h++) {
        char err[512], src[1024];
        struct xs_policy *p = load(hooks[h], err, sizeof err);
        CHECK(p != NULL);
        if (!p)
            return;
        struct outcome a =
            decide(p, &(struct msg)MSG(XS_SIDE_XMPP, "a@xmpp.test", "b@sip.test", "x"));
        CHECK(a.cond == XS_COND_NONE);
        outcome_free(&a);
        a = decide(p, &(struct msg)MSG(XS_SIDE_SIP, "sip:b@sip.test", "sip:a@new.test", "x"));
        CHECK(a.cond == XS_COND_FORBIDDEN);
        outcome_free(&a);
        xs_policy_free(p);

        /* The next generation drops xmpp.test, adds new.test and serves
         * xmpp.test's old neighbour as its own domain. */
        snprintf(src, sizeof src,
                 "gateway {\n"
                 "  domains = { \"sip.test\", \"own.test\" },\n"
                 "  xmpp = { listen = \"127.0.0.1:5269\" },\n"
                 "  sip = { listen = { \"udp:127.0.0.1:5060\" } },\n"
                 "}\n"
                 "partner \"new.test\" { }\n%s",
                 hooks[h]);
        char path[300];
        snprintf(path, sizeof path, "%s/next.lua", dir);
        FILE *f = fopen(path, "w");
        fputs(src, f);
        fclose(f);
        p = NULL;
        CHECK(xs_policy_load(path, lua_dir, &p, err, sizeof err) == 0);
        if (!p)
            return;
        a = decide(p, &(struct msg)MSG(XS_SIDE_XMPP, "a@xmpp.test", "b@sip.test", "x"));
        CHECK(a.cond == XS_COND_FORBIDDEN);
        CHECK(a.text && strstr(a.text, "xmpp.test is not a federated partner"));
        outcome_free(&a);
        a = decide(p, &(struct msg)MSG(XS_SIDE_SIP, "sip:b@sip.test", "sip:a@new.test", "x"));
        CHECK(a.cond == XS_COND_NONE);
        CHECK_STR(a.ev->to, "a@new.test");
        outcome_free(&a);
        a = decide(p, &(struct msg)MSG(XS_SIDE_XMPP, "a@new.test", "b@OWN.test", "x"));
        CHECK(a.cond == XS_COND_NONE);
        CHECK_STR(a.ev->to, "sip:b@own.test");
        outcome_free(&a);
        CHECK(xs_policy_is_local_domain(p, "Own.Test"));
        CHECK(!xs_policy_is_local_domain(p, "xmpp.test"));
        CHECK(xs_policy_partner(p, "NEW.test") != NULL);
        CHECK(xs_policy_partner(p, "xmpp.test") == NULL);
        xs_policy_free(p);
    }
}

/* The index answers as the list did: exact name first (any case), then "*". */
static void test_index(void)
{
    char err[512];
    struct xs_policy *p = load("partner \"*\" { tls = \"optional\" }\n", err, sizeof err);
    CHECK(p != NULL);
    if (!p)
        return;
    const struct xs_partner *pt = xs_policy_partner(p, "XMPP.test");
    CHECK(pt && !strcmp(pt->domain, "xmpp.test"));
    pt = xs_policy_partner(p, "anywhere.test");
    CHECK(pt && !strcmp(pt->domain, "*"));
    CHECK(xs_policy_is_local_domain(p, "SIP.TEST"));
    CHECK(!xs_policy_is_local_domain(p, "sip.test."));
    CHECK(!xs_policy_is_local_domain(p, "sip.tes"));
    struct xs_event *ev;
    char *text = NULL;
    CHECK(route(p, XS_SIDE_XMPP, "a@Anywhere.test", "b@sip.test", "x", &ev, &text) == XS_COND_NONE);
    CHECK_STR(ev->from, "sip:a@anywhere.test");
    xs_event_free(ev);
    xs_policy_free(p);
    /* A hook that is not a function cannot pass for "no hook". */
    expect_load_error("map_to_sip = 42\n", "map_to_sip must be a function, not number");
}

int main(void)
{
    if (policy_tests_begin() != 0)
        return 1;
    test_same_decisions("", "partners by name");
    test_same_decisions("partner \"*\" { tls = \"optional\" }\n", "partner *");
    test_reload();
    test_index();
    return policy_tests_end("test_policy_fast");
}
