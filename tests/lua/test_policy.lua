-- The policy vocabulary, its validation and the routing decision, run in
-- plain Lua the way the gateway runs them.
local t = require("testlib")

local load_policy = t.load_policy

local BASE = [[
gateway {
  domains = { "sip.test" },
  xmpp = { listen = "127.0.0.1:5269" },
  sip = { listen = { "udp:127.0.0.1:5060" }, next_hop = "udp:127.0.0.1:5070" },
}
partner "xmpp.test" { tls = "required", dialback = true }
]]

local function expect_error(src, pattern)
    local cfg, err = load_policy(src)
    if cfg then error("policy loaded but should not have: " .. src, 2) end
    if not tostring(err):find(pattern) then
        error(string.format("error %q does not match %q", tostring(err), pattern), 2)
    end
end

t.test("the base policy loads with defaults", function()
    local cfg = assert(load_policy(BASE))
    t.eq(cfg.domains[1], "sip.test")
    t.eq(cfg.xmpp_listen_port, 5269)
    t.eq(cfg.xmpp_idle_timeout, 600)
    t.eq(cfg.max_body, 262144)
    t.eq(cfg.xmpp_max_stanza, 262144 + 16384)
    t.eq(cfg.sip_max_message, 262144 + 16384)
    t.eq(cfg.sip_listen[1].transport, "udp")
    t.eq(cfg.sip_next_hop.port, 5070)
    t.eq(cfg.partners[1].domain, "xmpp.test")
    t.eq(cfg.partners[1].dialback, true)
    t.eq(cfg.log_bodies, false)
    t.eq(cfg.xmpp_error_grace, 0.25)
    t.eq(cfg.xmpp_stream_management, "always")
    t.eq(cfg.xmpp_streams_in, 10000)
    t.eq(cfg.xmpp_streams_out, 10000)
    t.eq(cfg.xmpp_streams_unauth, 1000)
    t.eq(cfg.xmpp_streams_unauth_per_source, 8)
    t.eq(cfg.xmpp_streams_per_domain, 32)
    t.eq(cfg.presence_enabled, true)
    t.eq(cfg.presence_store, nil)
    t.eq(cfg.presence_expires, 3600)
    t.eq(cfg.presence_min_expires, 60)
    t.eq(cfg.presence_max_expires, 86400)
    t.eq(cfg.presence_max_per_user, 1000)
    t.eq(cfg.presence_max_per_domain, 20000)
    t.eq(cfg.presence_max_total, 100000)
    t.eq(cfg.sip_contact, nil)
end)

t.test("gateway.presence and sip.contact: values from the policy, checked", function()
    local function with(presence, contact)
        local src = BASE:gsub("domains = ", "presence = " .. presence .. ",\n  domains = ")
        if contact then
            src = src:gsub('next_hop = "udp:127.0.0.1:5070"',
                'next_hop = "udp:127.0.0.1:5070", contact = ' .. contact)
        end
        return src
    end
    local cfg = assert(load_policy(with("{ enabled = false, store = 'subs.db', min_expires = 1,"
        .. " expires = 2, max_expires = 3, max_per_user = 1, max_per_domain = 1, max_total = 1 }",
        '"[::1]:5062"')))
    t.eq(cfg.presence_enabled, false)
    t.eq(cfg.presence_store, "subs.db")
    t.eq(cfg.presence_expires, 2)
    t.eq(cfg.presence_min_expires, 1)
    t.eq(cfg.presence_max_expires, 3)
    t.eq(cfg.presence_max_per_user + cfg.presence_max_per_domain + cfg.presence_max_total, 3)
    t.eq(cfg.sip_contact, "[::1]:5062")
    -- A share larger than a default whole is refused, not the whole raised.
    expect_error(with("{ max_per_user = 20001 }"),
        "test.lua:1: presence.max_per_user %(20001%) is larger than presence.max_per_domain %(20000%)")
    expect_error(with("{ expires = 10, min_expires = 11 }"),
        "presence.expires %(10%) is smaller than presence.min_expires %(11%)")
    expect_error(with("{ store = '' }"), "presence.store must be a file path of 1 to 4096 bytes")
    expect_error(with("{}", '"nohost"'), "sip.contact 'nohost' is not host:port")
end)

t.test("xmpp.max_streams: limits from the policy, checked", function()
    local function with(v)
        return (BASE:gsub('listen = "127.0.0.1:5269"', 'listen = "127.0.0.1:5269", max_streams = ' .. v))
    end
    local cfg = assert(load_policy(with("{ inbound = 50000, outbound = 2, unauthenticated = 3, " ..
        "unauthenticated_per_source = 3, per_domain = 1 }")))
    t.eq(cfg.xmpp_streams_in, 50000)
    t.eq(cfg.xmpp_streams_out, 2)
    t.eq(cfg.xmpp_streams_unauth, 3)
    t.eq(cfg.xmpp_streams_unauth_per_source, 3)
    t.eq(cfg.xmpp_streams_per_domain, 1)
    -- Defaults larger than an explicit total follow it down.
    cfg = assert(load_policy(with("{ inbound = 5 }")))
    t.eq(cfg.xmpp_streams_unauth, 5)
    t.eq(cfg.xmpp_streams_unauth_per_source, 5)
    t.eq(cfg.xmpp_streams_per_domain, 5)
    cfg = assert(load_policy(with("{ inbound = 1000000 }")))
    t.eq(cfg.xmpp_streams_in, 1000000)
    expect_error(with("{ inbound = 1000001 }"),
        "^test.lua:1: xmpp.max_streams.inbound must be a whole number from 1 to 1000000$")
    expect_error(with("{ outbound = 0 }"),
        "^test.lua:1: xmpp.max_streams.outbound must be a whole number from 1 to 1000000$")
    expect_error(with("{ per_domain = 2.5 }"),
        "^test.lua:1: xmpp.max_streams.per_domain must be a whole number from 1 to 1000000$")
    expect_error(with("{ unauthenticated = '10' }"),
        "^test.lua:1: xmpp.max_streams.unauthenticated must be a whole number")
    expect_error(with("{ inbound = 10, unauthenticated = 11 }"),
        "^test.lua:1: xmpp.max_streams.unauthenticated %(11%) is larger than xmpp.max_streams.inbound %(10%)$")
    expect_error(with("{ unauthenticated = 4, unauthenticated_per_source = 5 }"),
        "^test.lua:1: xmpp.max_streams.unauthenticated_per_source %(5%) is larger than " ..
        "xmpp.max_streams.unauthenticated %(4%)$")
    expect_error(with("{ inbound = 10, per_domain = 11 }"),
        "^test.lua:1: xmpp.max_streams.per_domain %(11%) is larger than xmpp.max_streams.inbound %(10%)$")
    expect_error(with("{ total = 10 }"), "^test.lua:1: unknown key 'total' in xmpp.max_streams")
    expect_error(with("10000"), "^test.lua:1: xmpp.max_streams must be a table, not number$")
end)

t.test("IPv6 listeners", function()
    local cfg = assert(load_policy(BASE:gsub('"127.0.0.1:5269"', '"[::]:5269"')))
    t.eq(cfg.xmpp_listen_host, "::")
end)

t.test("SIP endpoints over TLS: tls:host:port, 5061 when the port is left out", function()
    local cfg = assert(load_policy((BASE:gsub('{ "udp:127.0.0.1:5060" }',
        '{ "udp:127.0.0.1:5060", "tls:127.0.0.1:5071", "tls:[::1]" }')
        :gsub('next_hop = "udp:127.0.0.1:5070"', 'next_hop = "tls:edge.sip.test"'))))
    t.eq(cfg.sip_listen[2].transport, "tls")
    t.eq(cfg.sip_listen[2].host, "127.0.0.1")
    t.eq(cfg.sip_listen[2].port, 5071)
    t.eq(cfg.sip_listen[3].host, "::1")
    t.eq(cfg.sip_listen[3].port, 5061)
    t.eq(cfg.sip_next_hop.transport, "tls")
    t.eq(cfg.sip_next_hop.host, "edge.sip.test")
    t.eq(cfg.sip_next_hop.port, 5061)
    -- Only tls: has a default port; the others still need one.
    expect_error(BASE:gsub('"udp:127.0.0.1:5060"', '"udp:127.0.0.1"'),
        "^test.lua:1: sip.listen%[1%] 'udp:127.0.0.1' is not udp:host:port with a port from 1 to 65535$")
    expect_error(BASE:gsub('"udp:127.0.0.1:5060"', '"tls:127.0.0.1:0"'),
        "^test.lua:1: sip.listen%[1%] 'tls:127.0.0.1:0' is not tls:host:port with a port from 1 to 65535 %(or tls:host for 5061%)$")
    expect_error(BASE:gsub('"udp:127.0.0.1:5070"', '"tls:"'),
        "^test.lua:1: sip.next_hop 'tls:' must start with udp:, tcp: or tls:")
    expect_error(BASE:gsub('"udp:127.0.0.1:5070"', '"tls:edge.sip.test:"'),
        "^test.lua:1: sip.next_hop 'tls:edge.sip.test:' is not tls:host:port")
    expect_error(BASE:gsub('"udp:127.0.0.1:5070"', '"sips:edge.sip.test"'),
        "^test.lua:1: sip.next_hop 'sips:edge.sip.test' must start with udp:, tcp: or tls:")
end)

t.test("SIP transaction bounds and UDP buffers: defaults, values at the bounds, one over", function()
    local cfg = assert(load_policy(BASE))
    t.eq(cfg.sip_max_transactions, 65536)
    t.eq(cfg.sip_max_stored_bytes, 512 * 1024 * 1024)
    t.eq(cfg.sip_udp_recv_buffer, 4 * 1024 * 1024)
    t.eq(cfg.sip_udp_send_buffer, 4 * 1024 * 1024)
    local function with(k, v)
        return (BASE:gsub('next_hop = "udp:127.0.0.1:5070"',
            'next_hop = "udp:127.0.0.1:5070", ' .. k .. ' = ' .. v))
    end
    t.eq(assert(load_policy(with("max_transactions", "4"))).sip_max_transactions, 4)
    t.eq(assert(load_policy(with("max_transactions", "10000000"))).sip_max_transactions, 10000000)
    t.eq(assert(load_policy(with("max_stored_bytes", "4096"))).sip_max_stored_bytes, 4096)
    t.eq(assert(load_policy(with("udp_recv_buffer", "0"))).sip_udp_recv_buffer, 0)
    t.eq(assert(load_policy(with("udp_send_buffer", "1073741824"))).sip_udp_send_buffer,
        1073741824)
    expect_error(with("max_transactions", "3"),
        "^test.lua:1: sip.max_transactions must be a whole number from 4 to 10000000$")
    expect_error(with("max_transactions", "10000001"), "sip.max_transactions must be")
    expect_error(with("max_transactions", "100.5"), "sip.max_transactions must be")
    expect_error(with("max_transactions", '"100"'), "sip.max_transactions must be")
    expect_error(with("max_stored_bytes", "4095"),
        "^test.lua:1: sip.max_stored_bytes must be a whole number from 4096 to 68719476736$")
    expect_error(with("udp_recv_buffer", "-1"), "sip.udp_recv_buffer must be")
    expect_error(with("udp_send_buffer", "1073741825"), "sip.udp_send_buffer must be")
end)

t.test("sip.trusted takes addresses and networks, IPv4 and IPv6", function()
    local cfg = assert(load_policy(BASE))
    t.eq(cfg.sip_trusted, nil)
    local function with(list)
        return (BASE:gsub('next_hop = "udp:127.0.0.1:5070"',
            'next_hop = "udp:127.0.0.1:5070", trusted = ' .. list))
    end
    cfg = assert(load_policy(with('{ "10.0.0.5", "10.0.0.0/24", "::1", "FD00::/8", ' ..
        '"::ffff:192.0.2.1", "2001:db8::1:2:3:4:5", "0.0.0.0/0", "::/0", "1:2:3:4:5:6:7:8/128" }')))
    t.eq(#cfg.sip_trusted, 9)
    t.eq(cfg.sip_trusted[4], "fd00::/8")
    cfg = assert(load_policy(with('"192.0.2.7"')))
    t.eq(cfg.sip_trusted[1], "192.0.2.7")
    cfg = assert(load_policy(with("{}")))
    t.eq(#cfg.sip_trusted, 0)
    for _, bad in ipairs({ "10.0.0.256", "10.0.0", "010.0.0.1", "10.0.0.0/33", "::1/129",
        "10.0.0.0/", "10.0.0.0/08", "edge.sip.test", "1:2:3:4:5:6:7:8:9", "1::2::3",
        "12345::", ":::1", "[::1]", "::1.2.3", "1.2.3.4::", "" }) do
        expect_error(with('{ "127.0.0.1", "' .. bad .. '" }'), "^test.lua:1: sip.trusted%[2%] '" ..
            bad:gsub("%p", "%%%0") .. "'")
    end
    expect_error(with("{ 5 }"), "^test.lua:1: sip.trusted%[1%] must be a string")
    expect_error(with('{ x = "10.0.0.1" }'), "sip.trusted must be a list")
end)

t.test("errors name the file and the line of the declaration", function()
    expect_error(BASE .. 'partner "x.test" { tls = "sometimes" }\n', "^test.lua:7: partner 'x.test': tls must be")
    expect_error(BASE .. 'partner "xmpp.test" { }\n', "^test.lua:7: partner 'xmpp.test' is declared twice %(first at test.lua:6%)")
    expect_error(BASE:gsub("udp:127.0.0.1:5060", "udp:127.0.0.1:99999"), "^test.lua:%d: sip.listen%[1%]")
    expect_error(BASE:gsub("listen = \"127", "lisen = \"127"), "unknown key 'lisen' in gateway.xmpp")
    expect_error(BASE:gsub("domains = { \"sip.test\" }", "domains = { }"), "at least one domain")
    expect_error(BASE:gsub("\"sip.test\"", "\"not a domain\""), "not a valid domain name")
    expect_error(BASE .. "gateway { }\n", "gateway{} given twice")
    expect_error(BASE .. "on_message = 5\n", "on_message must be a function")
    expect_error(BASE .. 'partner "bad domain" { }\n', "^test.lua:7: partner 'bad domain' is not a valid domain")
    expect_error(BASE .. 'partner "sip.test" { }\n', "one of this gateway's own domains")
    expect_error(BASE .. 'partner "*" { route = "1.2.3.4:5269" }\n', "cannot have a static route")
    expect_error(BASE:gsub('listen = "127.0.0.1:5269"', 'listen = "127.0.0.1:5269", error_grace = -1'),
        "error_grace must be")
    expect_error(BASE:gsub('listen = "127.0.0.1:5269"', 'listen = "127.0.0.1:5269", stream_management = "yes"'),
        'stream_management must be "offered", "always" or "off"')
    expect_error("x = = 1", "^test.lua:1:")
    expect_error("partner 'a.test' { }", "declares no gateway")
end)

local function ev(origin, from, to, body)
    return { kind = "message", origin = origin, from = from, to = to, body = body or "hi",
        type = "chat" }
end

t.test("XMPP to SIP: mapped, checked against domains and partners", function()
    local _, route = assert(load_policy(BASE))
    local r = assert(route(ev("xmpp", "alice@xmpp.test/phone", "bob@sip.test")))
    t.eq(r.from, "sip:alice@xmpp.test;gr=phone") -- RFC 7572 §4 note 1
    t.eq(r.to, "sip:bob@sip.test")
    local _, cond = route(ev("xmpp", "alice@xmpp.test", "bob@elsewhere.test"))
    t.eq(cond, "item-not-found")
    _, cond = route(ev("xmpp", "eve@stranger.test", "bob@sip.test"))
    t.eq(cond, "forbidden")
    _, cond = route(ev("xmpp", "bad jid@xmpp.test", "bob@sip.test"))
    t.eq(cond, "jid-malformed")
end)

t.test("SIP to XMPP: sender must be ours, recipient a partner", function()
    local _, route = assert(load_policy(BASE))
    local r = assert(route(ev("sip", "sip:bob@sip.test", "sip:alice@xmpp.test")))
    t.eq(r.from, "bob@sip.test")
    t.eq(r.to, "alice@xmpp.test")
    local _, cond = route(ev("sip", "sip:mallory@evil.test", "sip:alice@xmpp.test"))
    t.eq(cond, "forbidden")
    _, cond = route(ev("sip", "sip:bob@sip.test", "sip:carol@stranger.test"))
    t.eq(cond, "forbidden")
    _, cond = route(ev("sip", "sip:bob@sip.test", "sip:carol@sip.test"))
    t.eq(cond, "item-not-found")
    _, cond = route(ev("sip", "sip:bob@sip.test", "tel:+123"))
    t.eq(cond, "jid-malformed")
end)

t.test("partner * federates with everyone", function()
    local _, route = assert(load_policy(BASE .. 'partner "*" { }\n'))
    assert(route(ev("sip", "sip:bob@sip.test", "sip:carol@anywhere.test")))
end)

t.test("on_message may rewrite or reject", function()
    local _, route = assert(load_policy(BASE .. [[
function on_message(m)
  if m.body:find("forbidden word", 1, true) then
    return reject("policy-violation", "not carried")
  end
  m.body = m.body:upper()
  return m
end
]]))
    local r = assert(route(ev("sip", "sip:bob@sip.test", "sip:alice@xmpp.test", "hello")))
    t.eq(r.body, "HELLO")
    local _, cond, text = route(ev("sip", "sip:bob@sip.test", "sip:alice@xmpp.test", "a forbidden word"))
    t.eq(cond, "policy-violation")
    t.eq(text, "not carried")
end)

t.test("a hook that misbehaves is an error, not a silent pass", function()
    local _, route = assert(load_policy(BASE .. "function on_message(m) return 42 end\n"))
    local ok = pcall(route, ev("sip", "sip:bob@sip.test", "sip:alice@xmpp.test"))
    t.eq(ok, false)
    _, route = assert(load_policy(BASE .. "function on_message(m) m.body = nil return m end\n"))
    ok = pcall(route, ev("sip", "sip:bob@sip.test", "sip:alice@xmpp.test"))
    t.eq(ok, false)
    _, route = assert(load_policy(BASE .. "function on_message(m) return reject('no-such-thing') end\n"))
    ok = pcall(route, ev("sip", "sip:bob@sip.test", "sip:alice@xmpp.test"))
    t.eq(ok, false)
end)

t.test("log(), reject() with a SIP status, and the arrival facts", function()
    local _, route = assert(load_policy(BASE .. [[
function on_message(m)
  log("warn", "from", m.from, "secure", m.secure)
  if not m.secure then return reject(403, "encrypted only") end
  if m.auth ~= "dialback" then return reject(486) end
  return m
end
]]))
    t.logged = {}
    local e = ev("xmpp", "alice@xmpp.test", "bob@sip.test")
    local _, cond, text = route(e)
    t.eq(cond, "forbidden")
    t.eq(text, "encrypted only")
    t.eq(t.logged[1], "warn test.lua:8 from sip:alice@xmpp.test secure nil")
    e = ev("xmpp", "alice@xmpp.test", "bob@sip.test")
    e.secure = true
    _, cond = route(e)
    t.eq(cond, "recipient-unavailable")
    e = ev("xmpp", "alice@xmpp.test", "bob@sip.test")
    e.secure, e.auth = true, "dialback"
    assert(route(e))
    expect_error(BASE .. "reject(200)\n", "200 is not a SIP failure status")
    expect_error(BASE .. "log('shout', 1)\n", "^test.lua:7: log%(%): level must be")
end)

t.test("the library is read-only to policies", function()
    expect_error(BASE .. "string.lower = nil\n", "^test.lua:7: string is read%-only: cannot assign string.lower")
    expect_error(BASE .. "xsgw.address.to_sip = nil\n", "xsgw.address is read%-only")
    expect_error(BASE .. "math.pi = 3\n", "math is read%-only")
    local cfg = assert(load_policy(BASE .. "local n = 0 for k in pairs(string) do n = n + 1 end\n"
        .. "assert(n > 10 and string.upper('a') == 'A' and #table == 0)\n"))
    assert(cfg)
end)

t.test("mistakes that used to be ignored are refused", function()
    expect_error(BASE .. "\nfunction on_mesage(m) return m end\n", "^test.lua:8: on_mesage is not a hook")
    expect_error(BASE .. 'partner("x.test", { tls = "optional" })\n', 'write partner "x.test" { ... }')
    expect_error(BASE .. 'partner "x.test" { dialback = false, sasl = "none" }\n',
        "leave nothing that could authenticate it")
    expect_error(BASE .. 'function on_message(m) return m end\nsetmetatable({}, { __gc = function() end })\n',
        "^test.lua:8: setmetatable%(%): finalizers")
    local _, route = assert(load_policy(BASE .. "function on_message(m) m.bdy = 1 return m end\n"))
    local ok, err = pcall(route, ev("sip", "sip:bob@sip.test", "sip:alice@xmpp.test"))
    t.eq(ok, false)
    assert(tostring(err):find("'bdy'"), err)
end)

t.test("max_body: derived limits, and the size check is not blamed on the hook", function()
    local cfg = assert(load_policy(BASE:gsub("domains = ", "max_body = 2048, domains = ")))
    t.eq(cfg.max_body, 2048)
    t.eq(cfg.xmpp_max_stanza, 2048 + 16384)
    expect_error(BASE:gsub('listen = "127.0.0.1:5269"', 'listen = "127.0.0.1:5269", max_stanza = 1000'),
        "xmpp.max_stanza = 1000 is smaller than gateway.max_body %(262144%) needs: at least 266240")
    local _, route = assert(load_policy(BASE:gsub("domains = ", "max_body = 2048, domains = ")))
    local _, cond, text = route(ev("sip", "sip:bob@sip.test", "sip:alice@xmpp.test", ("x"):rep(2049)))
    t.eq(cond, "policy-violation")
    t.eq(text, "message body exceeds 2048 bytes")
    assert(route(ev("sip", "sip:bob@sip.test", "sip:alice@xmpp.test", ("x"):rep(2048))))
end)

t.test("a policy can override the address mapping", function()
    local _, route = assert(load_policy(BASE .. [[
function map_to_xmpp(uri)
  local user, host = uri:match("^sip:([^@]+)@(.+)$")
  return user .. "+sip@" .. host
end
]]))
    local r = assert(route(ev("sip", "sip:bob@sip.test", "sip:alice@xmpp.test")))
    t.eq(r.from, "bob+sip@sip.test")
end)

t.test("the shipped policies load", function()
    for _, f in ipairs({ "policies/default.lua", "policies/examples/open-federation.lua",
        "policies/examples/content-filter.lua", "policies/examples/static-route.lua" }) do
        local src = assert(io.open(f)):read("a")
        local cfg, err = load_policy(src, f)
        assert(cfg, err)
    end
end)

t.test("content-filter example behaves as its comments say", function()
    local src = assert(io.open("policies/examples/content-filter.lua")):read("a")
    local _, route = assert(load_policy(src, "cf.lua"))
    local _, cond = route(ev("xmpp", "alice@xmpp.test", "bob@sip.test", "Wire Transfer now"))
    t.eq(cond, "policy-violation")
    local r = assert(route(ev("xmpp", "p@partner.example", "bob@sip.test", "hi")))
    t.eq(r.subject, "[external] ")
end)

t.finish()
