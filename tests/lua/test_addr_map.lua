-- The C mapping (xsgw.addr.map, proxy/policy/addr_map.c) against the Lua one
-- it stands in for (lua/xsgw/address.lua): the same bytes out, or the same
-- failure, for every escaping rule of address.lua and for random input.
local t = require("testlib")
local a = require("xsgw.address")
local c = require("xsgw.addr").map

local FNS = { "to_sip", "to_xmpp", "jid_domain", "sip_domain" }

local function show(s)
    if type(s) ~= "string" then return tostring(s) end
    return (string.format("%q", s):gsub("\n", "n"))
end

local checked = 0
-- Both answers, first and second value, must be equal.
local function same(fn, input)
    local l1, l2 = a[fn](input)
    local c1, c2 = c[fn](input)
    checked = checked + 1
    if l1 ~= c1 or l2 ~= c2 then
        error(string.format("%s(%s): Lua gives %s, %s; C gives %s, %s", fn, show(input), show(l1),
            show(l2), show(c1), show(c2)), 2)
    end
    return l1
end

local function all(input)
    for _, fn in ipairs(FNS) do same(fn, input) end
end

-- Every rule of address.lua, each with the inputs on both sides of it.
local CORPUS = {
    -- plain, case of the domain, trailing dot, no localpart, resources
    "alice@xmpp.test", "alice@XMPP.Test", "alice@xmpp.test.", "xmpp.test", "xmpp.test/r",
    "alice@xmpp.test/phone", "alice@xmpp.test/my phone;1@home", "a@x.test/t\195\169l",
    "a@x.test/a/b", "a@x.test/[v]:&+$-_.!~*'()", "a@x.test/#%^`{|}\"<> ", "a@[::1]", "a@[::1]/r",
    "a@x.test..", ".", "a@.", "a@x.test/",
    -- XEP-0106: every escape, the backslash escape, case significance,
    -- escapes that stand for nothing, "\20" at the edges
    "john\\20doe\\40corp@x.test", "a\\22b@x.test", "a\\26b@x.test", "a\\27b@x.test",
    "a\\2fb@x.test", "a\\2Fb@x.test", "a\\3ab@x.test", "a\\3cb@x.test", "a\\3eb@x.test",
    "a\\40b@x.test", "a\\5cb@x.test", "a\\5c40b@x.test", "a\\5C40b@x.test", "a\\41b@x.test",
    "a\\zzb@x.test", "a\\4@x.test", "a\\@x.test", "\\20bob@x.test", "bob\\20@x.test",
    "b\\20b@x.test", "\\5c20@x.test", "a\\\\40@x.test", "\\2fx@x.test", "x\\2f@x.test",
    -- percent-encoding of what the SIP user production does not allow
    "h\195\169llo@x.test", "a#b@x.test", "a.b-c_d!e~f*g(h)i=k+l$m,n;o?p@x.test", "100%@x.test",
    "a#b[c]^d`e{f|g}h@x.test", "tsch\195\188ss@xmpp.example", "m\\26m@xmpp.example",
    -- what is no JID
    "", "@x.test", "a@", "a b@x.test", "a\"b@x.test", "a@x test", string.rep("a", 1024) .. "@x.test",
    string.rep("a", 1023) .. "@x.test", "a\0b@x.test", "\255@x.test", "a@x.test/\1",
    -- SIP URIs: schemes, "//", users with ';' '?' ':' (password), hosts,
    -- ports, parameters, gr in any case and position, headers
    "sip:bob@sip.test", "sip:bob@SIP.test;transport=tcp", "sip:bob@sip.test?subject=x",
    "sip:bob:secret@sip.test:5060", "sips:bob@sip.test", "im:bob@sip.test", "pres:bob@sip.test",
    "SIP:bob@sip.test", "Sips:bob@sip.test", "tel:+123", "http://x.test", "sip://bob@x.test",
    "sip:///bob@x.test", "s1p:bob@x.test", "1sip:bob@x.test", "sip+x:bob@x.test",
    "sip:a;b@x.test", "sip:o?x@x.test", "sip:a;b@x.test;transport=udp?subject=x", "sip:a@b@c.test",
    "sip:foo@sip.example;gr=bar", "sip:foo@sip.example;transport=tcp;GR=a%20b%3Bc",
    "sip:foo@sip.example;gr", "sip:foo@sip.example;gr=", "sip:foo@sip.example;gr=a;gr=b",
    "sip:foo@sip.example;gr=a;gr=", "sip:foo@sip.example;gr=a=b", "sip:foo@sip.example;=x;gr=y",
    "sip:foo@sip.example;grr=x", "sip:foo@sip.example;g=x", "sip:foo@sip.example?gr=x",
    "sip:foo@sip.example;x=1?gr=2;gr=3", "sip:foo@sip.example;;gr=z;",
    "sip:a@x.test;gr=%00x", "sip:a@x.test;gr=%zz", "sip:a@x.test;gr=" .. string.rep("r", 1024),
    "sip:a@x.test;gr=" .. string.rep("r", 1023), "sip:a@x.test;gr=my%20phone%3B1%40home",
    "sip:foo@sip.example;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    "sip:bob@[::1]:5060", "sip:bob@[::1", "sip:bob@[]", "sip:bob@[::1]x", "sip:bob@sip.test.",
    "sip:bob@sip.test..", "sip:bob@", "sip:", "sip:x.test", "sip:x.test;gr=r", "sip:@x.test",
    "sip::pw@x.test", "sip:bob@sip.test:5060;transport=udp", "sip:bob@x_y.test", "sip:bob@-.test",
    -- percent-decoding, bad percents, controls, UTF-8, XEP-0106 escaping back
    "sip:john%20doe%40corp@x.test", "sip:d'artagnan@x.test", "sip:100%25@x.test",
    "sip:%2541@x.test", "sip:%20bob@x.test", "sip:bob%20@x.test", "sip:%20@x.test",
    "sip:bo%20b@x.test", "sip:a%5C2Fb@x.test", "sip:a%5C2fb@x.test", "sip:a%5c40b@x.test",
    "sip:a\\40b@x.test", "sip:a\\2fb@x.test", "sip:a\\2Fb@x.test", "sip:a\\zz@x.test",
    "sip:a\\5c@x.test", "sip:a%5c@x.test", "sip:f%C3%BC@sip.example", "sip:f%c3%bc@sip.example",
    "sip:o'malley@sip.example", "sip:%zz@x.test", "sip:%00@x.test", "sip:%FF@x.test",
    "sip:%1f@x.test", "sip:%7f@x.test", "sip:%C2%80@x.test", "sip:a%@x.test", "sip:a%4@x.test",
    "sip:%%41@x.test", "sip:a&b\"c<d>e/f:g@x.test", "sip:a/b%3Ac@x.test", "sip:a%40b@x.test",
    "sip:" .. string.rep("u", 1023) .. "@x.test", "sip:" .. string.rep("u", 1024) .. "@x.test",
    "sip:" .. string.rep("%41", 1023) .. "@x.test", "sip:" .. string.rep("%2F", 400) .. "@x.test",
    "sip:" .. string.rep("u", 4092), "sip:" .. string.rep("u", 4093), "sip:\255@x.test",
    "sip:a@x.test?\0", "sip:a@x.test;p=\0", "sip:a\0@x.test", "sip:a@x\0.test", "sip:a@x.test\n",
    "sip:h%C3%A9llo@x.test", "sip:\195\169@x.test", "sip:a@\195\169.test",
    "sip:a@" .. string.rep("x", 254), "sip:a@" .. string.rep("\195\169", 300),
}

t.test("the corpus: every rule of address.lua, C and Lua alike", function()
    for _, s in ipairs(CORPUS) do all(s) end
    for _, v in ipairs({ 42, true, {} }) do
        for _, fn in ipairs(FNS) do
            local c1, c2 = c[fn](v)
            local l1, l2 = a[fn](v)
            t.eq(c1, l1, fn)
            t.eq(c2, l2, fn)
        end
    end
end)

t.test("the corpus maps as the RFC examples say, both ways", function()
    t.eq(same("to_sip", "john\\20doe\\40corp@x.test"), "sip:john%20doe%40corp@x.test")
    t.eq(same("to_xmpp", "sip:john%20doe%40corp@x.test"), "john\\20doe\\40corp@x.test")
    t.eq(same("to_sip", "a\\2Fb@x.test"), "sip:a%5C2Fb@x.test")
    t.eq(same("to_xmpp", "sip:a%5C2fb@x.test"), "a\\5c2fb@x.test")
    t.eq(same("to_sip", "a@x.test/my phone;1@home"), "sip:a@x.test;gr=my%20phone%3B1%40home")
    t.eq(same("to_xmpp", "sip:foo@sip.example;x=1;GR=a%20b"), "foo@sip.example/a b")
    t.eq(same("to_xmpp", "sip:a@x.test;gr=%00x"), nil)
end)

-- Random strings over an alphabet dense in what the rules look at, and
-- random mutations of the corpus; a fixed seed keeps a failure repeatable.
local ALPHABET = {
    "a", "B", "z", "0", "9", "f", "F", "2", "5", "c", "@", "/", ":", ";", "?", "=", "%", "\\",
    " ", "\"", "&", "'", "<", ">", ".", "[", "]", "-", "_", "+", "#", "~", "\0", "\1", "\127",
    "\195\169", "\195", "\169", "\255", "\240\159\152\128", "sip:", "gr=", "%20", "%5C", "\\20",
    "\\5c", "\\40", "x.test", "[::1]", "//",
}

local function random_string(max)
    local parts = {}
    for i = 1, math.random(0, max) do parts[i] = ALPHABET[math.random(#ALPHABET)] end
    return table.concat(parts)
end

t.test("random input: C and Lua alike", function()
    math.randomseed(7247)
    for _ = 1, 20000 do
        all(random_string(24))
        all("sip:" .. random_string(16))
        all(random_string(8) .. "@x.test" .. (math.random(2) == 1 and "" or "/" .. random_string(6)))
        all("sip:" .. random_string(10) .. "@x.test;gr=" .. random_string(8))
        local base = CORPUS[math.random(#CORPUS)]
        local at = math.random(0, #base)
        all(base:sub(1, at) .. ALPHABET[math.random(#ALPHABET)] .. base:sub(at + 1))
    end
    t.eq(checked > 400000, true, "checked")
end)

t.finish()
