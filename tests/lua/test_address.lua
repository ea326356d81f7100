-- RFC 7247 address mapping, both ways, with the escaping rules.
local t = require("testlib")
local a = require("xsgw.address")

t.test("plain JID to SIP drops the resource", function()
    t.eq(a.to_sip("alice@xmpp.test/phone"), "sip:alice@xmpp.test")
    t.eq(a.to_sip("alice@XMPP.Test"), "sip:alice@xmpp.test")
    t.eq(a.to_sip("xmpp.test"), "sip:xmpp.test")
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
