-- RFC 7247 address mapping, both ways, with the escaping rules.
local t = require("testlib")
local a = require("xsgw.address")

t.test("plain JID to SIP; the resource travels as the GRUU", function()
    t.eq(a.to_sip("alice@xmpp.test/phone"), "sip:alice@xmpp.test;gr=phone")
    t.eq(a.to_sip("alice@XMPP.Test"), "sip:alice@xmpp.test")
    t.eq(a.to_sip("xmpp.test"), "sip:xmpp.test")
end)

-- RFC 7572 §4 note 1 / §5 note 1 and RFC 7247 §6.4 step 8, §6.5 step 8, with
-- the RFCs' own examples.
t.test("GRUU <-> resource (RFC 7572, RFC 7247 examples)", function()
    t.eq(a.to_xmpp("sip:foo@sip.example;gr=bar"), "foo@sip.example/bar")
    t.eq(a.to_sip("baz@xmpp.example/qux"), "sip:baz@xmpp.example;gr=qux")
    t.eq(a.to_sip(a.to_xmpp("sip:foo@sip.example;gr=bar")), "sip:foo@sip.example;gr=bar")
    t.eq(a.to_xmpp(a.to_sip("baz@xmpp.example/qux")), "baz@xmpp.example/qux")
    -- gr among other parameters, in any case, percent-encoded
    t.eq(a.to_xmpp("sip:foo@sip.example;transport=tcp;GR=a%20b%3Bc"), "foo@sip.example/a b;c")
    t.eq(a.to_xmpp("sip:foo@sip.example;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"),
        "foo@sip.example/urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    -- a gr without a value (temporary GRUU flag) names no resource
    t.eq(a.to_xmpp("sip:foo@sip.example;gr"), "foo@sip.example")
    -- a resource may hold what a URI parameter may not
    t.eq(a.to_sip("a@x.test/my phone;1@home"), "sip:a@x.test;gr=my%20phone%3B1%40home")
    t.eq(a.to_xmpp("sip:a@x.test;gr=my%20phone%3B1%40home"), "a@x.test/my phone;1@home")
    t.eq(a.to_sip("a@x.test/t\195\169l"), "sip:a@x.test;gr=t%C3%A9l")
    -- a gr that cannot be a resource is refused, not dropped
    local r, err = a.to_xmpp("sip:a@x.test;gr=%00x")
    t.eq(r, nil)
    t.eq(err, "jid-malformed")
    t.eq(a.to_xmpp("sip:a@x.test;gr=" .. string.rep("r", 1024)), nil)
end)

t.test("SIP to JID drops parameters, headers and passwords", function()
    t.eq(a.to_xmpp("sip:bob@SIP.test;transport=tcp"), "bob@sip.test")
    t.eq(a.to_xmpp("sip:bob@sip.test?subject=x"), "bob@sip.test")
    t.eq(a.to_xmpp("sip:bob:secret@sip.test:5060"), "bob@sip.test")
    t.eq(a.to_xmpp("sips:bob@sip.test"), "bob@sip.test")
    t.eq(a.to_xmpp("im:bob@sip.test"), "bob@sip.test")
end)

t.test("characters SIP does not allow are percent-encoded", function()
    t.eq(a.to_sip("héllo@x.test"), "sip:h%C3%A9llo@x.test")
    t.eq(a.to_sip("a#b@x.test"), "sip:a%23b@x.test")
    -- unreserved and user-unreserved characters stay as they are
    t.eq(a.to_sip("a.b-c_d!e~f*g(h)i=k+l$m,n;o?p@x.test"), "sip:a.b-c_d!e~f*g(h)i=k+l$m,n;o?p@x.test")
    -- '&' may not stand in a localpart, so it arrives escaped
    t.eq(a.to_sip("a\\26b@x.test"), "sip:a&b@x.test")
end)

t.test("XEP-0106 escapes map to the characters they stand for", function()
    t.eq(a.to_sip("john\\20doe\\40corp@x.test"), "sip:john%20doe%40corp@x.test")
    t.eq(a.to_xmpp("sip:john%20doe%40corp@x.test"), "john\\20doe\\40corp@x.test")
    t.eq(a.to_xmpp("sip:d'artagnan@x.test"), "d\\27artagnan@x.test")
    t.eq(a.to_sip(a.to_xmpp("sip:d'artagnan@x.test")), "sip:d'artagnan@x.test")
end)

t.test("round trips", function()
    for _, uri in ipairs({ "sip:bob@sip.test", "sip:john%20doe%40corp@x.test",
        "sip:h%C3%A9llo@x.test", "sip:a/b%3Ac@x.test", "sip:a%5C40b@x.test" }) do
        t.eq(a.to_sip(a.to_xmpp(uri)), uri, uri)
    end
    for _, jid in ipairs({ "alice@xmpp.test", "h\195\169llo@x.test", "a\\40b@x.test" }) do
        t.eq(a.to_xmpp(a.to_sip(jid)), jid, jid)
    end
end)

t.test("what cannot be mapped is jid-malformed", function()
    for _, bad in ipairs({ "", "@x.test", "a@", "a@x.test/", "a b@x.test", "a\"b@x.test",
        "a@x test", string.rep("a", 1024) .. "@x.test", "a\0b@x.test", "\255@x.test" }) do
        local r, err = a.to_sip(bad)
        t.eq(r, nil, bad)
        t.eq(err, "jid-malformed", bad)
    end
    for _, bad in ipairs({ "tel:+123", "bob@sip.test", "sip:", "sip:bob@", "sip:%zz@x.test",
        "sip:%00@x.test", "sip:%FF@x.test", "http://x.test", 42 }) do
        local r, err = a.to_xmpp(bad)
        t.eq(r, nil, tostring(bad))
        t.eq(err, "jid-malformed", tostring(bad))
    end
end)

-- The rows of the RFC mapping review (rfc-mapping-2026-11.md §3), each with
-- the answer RFC 7247 §6 and XEP-0106 give.
t.test("RFC 7247 §6.4 step 2: split at the first '@', then cut parameters", function()
    t.eq(a.to_xmpp("sip:a;b@x.test"), "a;b@x.test")
    t.eq(a.to_xmpp("sip:o?x@x.test"), "o?x@x.test")
    t.eq(a.to_xmpp("sip:a;b@x.test;transport=udp?subject=x"), "a;b@x.test")
    local jid = "a.b-c_d!e~f*g(h)i=k+l$m,n;o?p@x.test"
    t.eq(a.to_xmpp(a.to_sip(jid)), jid)
    -- after the first '@' comes the host, and "b@c.test" is none
    local r, err = a.to_xmpp("sip:a@b@c.test")
    t.eq(r, nil)
    t.eq(err, "jid-malformed")
    t.eq(a.sip_domain("sip:a;b@x.test"), "x.test")
end)

t.test("RFC 7247 §6.4 step 3: a decoded '%' is a legal JID character", function()
    t.eq(a.to_xmpp("sip:100%25@x.test"), "100%@x.test")
    t.eq(a.to_sip("100%@x.test"), "sip:100%25@x.test")
    t.eq(a.to_xmpp(a.to_sip("100%@x.test")), "100%@x.test")
    t.eq(a.to_xmpp("sip:%2541@x.test"), "%41@x.test") -- decoded once, not twice
end)

t.test("XEP-0106: \\20 may not start or end an escaped localpart", function()
    for _, uri in ipairs({ "sip:%20bob@x.test", "sip:bob%20@x.test", "sip:%20@x.test" }) do
        local r, err = a.to_xmpp(uri)
        t.eq(r, nil, uri)
        t.eq(err, "jid-malformed", uri)
    end
    t.eq(a.to_xmpp("sip:bo%20b@x.test"), "bo\\20b@x.test")
    for _, jid in ipairs({ "\\20bob@x.test", "bob\\20@x.test" }) do
        local r, err = a.to_sip(jid)
        t.eq(r, nil, jid)
        t.eq(err, "jid-malformed", jid)
    end
end)

t.test("XEP-0106: case is significant, \\2F is no escape", function()
    t.eq(a.to_sip("a\\2fb@x.test"), "sip:a/b@x.test")
    t.eq(a.to_sip("a\\2Fb@x.test"), "sip:a%5C2Fb@x.test")
    t.eq(a.to_xmpp("sip:a%5C2Fb@x.test"), "a\\2Fb@x.test")
    t.eq(a.to_xmpp("sip:a%5C2fb@x.test"), "a\\5c2fb@x.test")
end)

t.test("RFC 7247 §6.4 / §6.5 examples", function()
    t.eq(a.to_xmpp("sip:f%C3%BC@sip.example"), "f\195\188@sip.example")
    t.eq(a.to_xmpp("sip:o'malley@sip.example"), "o\\27malley@sip.example")
    t.eq(a.to_sip("m\\26m@xmpp.example"), "sip:m&m@xmpp.example")
    t.eq(a.to_sip("tsch\195\188ss@xmpp.example"), "sip:tsch%C3%BCss@xmpp.example")
    t.eq(a.to_sip("a#b[c]^d`e{f|g}h@x.test"), "sip:a%23b%5Bc%5D%5Ed%60e%7Bf%7Cg%7Dh@x.test")
end)

t.test("one validator: the C rules decide", function()
    local v = require("xsgw.addr")
    t.eq(v.valid_jid("a@b.test/r"), true)
    t.eq(v.valid_jid("a b@b.test"), false)
    t.eq(v.valid_jid("a@b.test\0x"), false)
    t.eq(v.valid_domain("b.test"), true)
    t.eq(v.valid_domain("[::1]"), true)
    t.eq(v.valid_domain("b..test"), false)
    t.eq(v.valid_domain("b test"), false)
    t.eq(v.valid_domain(string.rep("a", 254)), false)
    t.eq(v.valid_localpart("a:b"), false)
    t.eq(v.valid_resource("r\1"), false)
    t.eq(v.valid_jid(42), false)
end)

t.test("domains", function()
    t.eq(a.jid_domain("alice@XMPP.test/r"), "xmpp.test")
    t.eq(a.jid_domain("alice@xmpp.test./r"), "xmpp.test")
    t.eq(a.sip_domain("sip:bob@[::1]:5060"), "[::1]")
    t.eq(a.sip_domain("sip:bob@sip.test:5060;transport=udp"), "sip.test")
end)

t.finish()
