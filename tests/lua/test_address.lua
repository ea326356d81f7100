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

t.test("domains", function()
    t.eq(a.jid_domain("alice@XMPP.test/r"), "xmpp.test")
    t.eq(a.jid_domain("alice@xmpp.test./r"), "xmpp.test")
    t.eq(a.sip_domain("sip:bob@[::1]:5060"), "[::1]")
    t.eq(a.sip_domain("sip:bob@sip.test:5060;transport=udp"), "sip.test")
end)

t.finish()
