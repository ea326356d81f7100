-- The trust vocabulary (lua/xsgw/trust.lua) in plain Lua: every partner
-- default by type, every --check error with its exact message, the extra
-- domains, gateway.tls, xmpp.listen_tls, sip.tls and sip.keepalive.
local t = require("testlib")

local load_policy = t.load_policy

-- A gateway{} on line 1 (all its errors are "test.lua:1: ..."), with
-- o.gateway, o.xmpp and o.sip added to its tables, then the partner
-- "xmpp.test" on line 6; what the test adds starts on line 7.
local function gw(o)
    o = o or {}
    return table.concat({
        "gateway { " .. (o.gateway or "") .. "",
        '  domains = { "sip.test", "voice.test" },',
        '  xmpp = { listen = "127.0.0.1:5269" ' .. (o.xmpp or "") .. " },",
        "  sip = { listen = { " .. (o.listen or '"udp:127.0.0.1:5060"') .. " }, next_hop = "
            .. (o.next_hop or '"udp:127.0.0.1:5070"') .. " " .. (o.sip or "") .. " },",
        "}",
        'partner "xmpp.test" { tls = "required", dialback = true }',
    }, "\n") .. "\n"
end

local CA = { gateway = 'tls = { ca = "/etc/ssl/certs" },' }

local function expect_error(src, want)
    local cfg, err = load_policy(src)
    if cfg then error("policy loaded but should not have: " .. src, 2) end
    if tostring(err) ~= want then
        error(string.format("error\n  %q\nwant\n  %q", tostring(err), want), 2)
    end
end

local function partner_of(src, domain)
    local cfg, err = load_policy(src)
    if not cfg then error(err, 2) end
    for _, p in ipairs(cfg.partners) do
        if p.domain == domain then return p, cfg end
    end
    error("no partner " .. domain, 2)
end

-- The fields that matter, absence included (false stands for nil).
local function rules(p, want, what)
    for k, v in pairs(want) do
        local got = p[k]
        if v == false and k ~= "dialback" then v = nil end
        if type(v) == "table" then
            t.eq(#got, #v, what .. "." .. k .. " length")
            for i = 1, #v do t.eq(got[i], v[i], what .. "." .. k .. "[" .. i .. "]") end
        else
            t.eq(got, v, what .. "." .. k)
        end
    end
end

-- Partners: defaults ---------------------------------------------------------

t.test("partner defaults by type", function()
    local src = gw(CA) .. table.concat({
        'partner "u.test" { }',
        'partner "v.test" { type = "verified" }',
        'partner "f.test" { type = "federated" }',
        'partner "*" { type = "verified" }',
    }, "\n")
    local all = { max_connections = false, idle_timeout = false, route_host = false,
        route_port = false, keepalive = 0, domains = {} }
    for domain, want in pairs({
        ["u.test"] = { type = "unverified", tls = "required", sasl = "optional", dialback = true,
            verify = "none" },
        ["v.test"] = { type = "verified", tls = "required", sasl = "optional", dialback = true,
            verify = "ca" },
        ["f.test"] = { type = "federated", tls = "required", sasl = "optional", dialback = true,
            verify = "ca" },
        ["*"] = { type = "verified", tls = "required", sasl = "optional", dialback = true,
            verify = "ca" },
    }) do
        rules(partner_of(src, domain), want, domain)
        rules(partner_of(src, domain), all, domain)
    end
end)

t.test("defaults that follow the other keys", function()
    local src = gw(CA) .. table.concat({
        'partner "none.test" { tls = "none" }',
        'partner "ext.test" { sasl = "required" }',
        'partner "opt.test" { tls = "optional" }',
        'partner "nodb.test" { dialback = false }',
        'partner "strict.test" { type = "verified", sasl = "required", dialback = false }',
        'partner "uca.test" { verify = "ca", tls = "optional" }',
        'partner "all.test" { type = "unverified", tls = "optional", sasl = "none",'
            .. ' dialback = true, verify = "none", domains = "one.all.test",'
            .. ' max_connections = 3, keepalive = 30.5, idle_timeout = 120, route = "[::1]:5270" }',
    }, "\n")
    -- tls "none": SASL EXTERNAL cannot run, so sasl defaults to "none".
    rules(partner_of(src, "none.test"), { tls = "none", sasl = "none", dialback = true,
        verify = "none" }, "none")
    -- sasl "required": dialback would never be used, so it defaults to off.
    rules(partner_of(src, "ext.test"), { tls = "required", sasl = "required", dialback = false,
        verify = "none" }, "ext")
    rules(partner_of(src, "opt.test"), { tls = "optional", sasl = "optional", dialback = true },
        "opt")
    -- dialback = false is fine while SASL EXTERNAL can authenticate.
    rules(partner_of(src, "nodb.test"), { sasl = "optional", dialback = false }, "nodb")
    rules(partner_of(src, "strict.test"), { type = "verified", sasl = "required",
        dialback = false, verify = "ca" }, "strict")
    rules(partner_of(src, "uca.test"), { type = "unverified", tls = "optional", verify = "ca" },
        "uca")
    rules(partner_of(src, "all.test"), { type = "unverified", tls = "optional", sasl = "none",
        dialback = true, verify = "none", domains = { "one.all.test" }, max_connections = 3,
        keepalive = 30.5, idle_timeout = 120, route_host = "::1", route_port = 5270 }, "all")
end)

t.test("a policy written before the trust keys means what it did", function()
    local p, cfg = partner_of(gw() .. 'partner "legacy.test" { tls = "optional" }\n', "xmpp.test")
    rules(p, { type = "unverified", tls = "required", sasl = "optional", dialback = true,
        verify = "none", domains = {} }, "xmpp.test")
    rules(cfg.partners[2], { domain = "legacy.test", tls = "optional", dialback = true }, "legacy")
    t.eq(cfg.tls_cert, nil)
    t.eq(cfg.tls_ca, nil)
    t.eq(cfg.sip_tls_verify, "none")
    t.eq(cfg.sip_keepalive, 0)
    t.eq(cfg.xmpp_listen_tls_host, nil)
end)

-- Partners: errors -------------------------------------------------------------

local function perr(line, want, with)
    expect_error(gw(with) .. line .. "\n", "test.lua:7: " .. want)
end

t.test("partner values outside the vocabulary", function()
    perr('partner "x.test" { type = "trusted" }',
        [[partner 'x.test': type must be "unverified", "verified" or "federated", not "trusted"]])
    perr('partner "x.test" { tls = "sometimes" }',
        [[partner 'x.test': tls must be "required", "optional" or "none", not "sometimes"]])
    perr('partner "x.test" { sasl = true }',
        [[partner 'x.test': sasl must be "required", "optional" or "none", not true]])
    perr('partner "x.test" { verify = "full" }',
        [[partner 'x.test': verify must be "ca" or "none", not "full"]])
    perr('partner "x.test" { dialback = "yes" }',
        "partner 'x.test' dialback must be a boolean, not string")
    perr('partner "x.test" { sassl = "none" }',
        "unknown key 'sassl' in partner 'x.test' (known: dialback, domains, idle_timeout,"
        .. " keepalive, max_connections, route, sasl, tls, type, verify)")
    perr('partner "*" { route = "1.2.3.4:5269" }', "partner '*' cannot have a static route")
    perr('partner "x.test" { route = "nohost" }',
        "partner 'x.test' route 'nohost' is not host:port with a port from 1 to 65535")
end)

t.test("what a verified or federated partner needs", function()
    perr('partner "x.test" { type = "verified", tls = "optional" }',
        [[partner 'x.test': type "verified" needs tls = "required" (its certificate is checked]]
        .. [[ on every stream); remove tls = "optional" or make it type = "unverified"]], CA)
    perr('partner "x.test" { type = "federated", tls = "none" }',
        [[partner 'x.test': type "federated" needs tls = "required" (its certificate is checked]]
        .. [[ on every stream); remove tls = "none" or make it type = "unverified"]], CA)
    perr('partner "x.test" { type = "federated", verify = "none" }',
        [[partner 'x.test': type "federated" needs verify = "ca" (a certificate that validates]]
        .. [[ for the domain); remove verify = "none" or make it type = "unverified"]], CA)
    perr('partner "x.test" { type = "verified" }',
        [[partner 'x.test': verify = "ca" (the default of type "verified") needs gateway.tls.ca,]]
        .. [[ the CA bundle its certificate is verified against; add gateway.tls = { ca =]]
        .. [[ FILE-or-DIR } or make it type = "unverified"]])
    perr('partner "x.test" { verify = "ca" }',
        [[partner 'x.test': verify = "ca" needs gateway.tls.ca, the CA bundle its certificate]]
        .. [[ is verified against; add gateway.tls = { ca = FILE-or-DIR } or make it]]
        .. [[ type = "unverified"]])
end)

t.test("combinations that cannot work", function()
    perr('partner "x.test" { tls = "none", sasl = "optional" }',
        [[partner 'x.test': sasl = "optional" with tls = "none": SASL EXTERNAL needs TLS; set]]
        .. [[ sasl = "none" or allow TLS]])
    perr('partner "x.test" { tls = "none", sasl = "required", dialback = false }',
        [[partner 'x.test': sasl = "required" with tls = "none": SASL EXTERNAL needs TLS; set]]
        .. [[ sasl = "none" or allow TLS]])
    perr('partner "x.test" { tls = "optional", sasl = "required" }',
        [[partner 'x.test': sasl = "required" needs tls = "required" (SASL EXTERNAL runs over]]
        .. [[ TLS only); set tls = "required" or sasl = "optional"]])
    perr('partner "x.test" { tls = "none", verify = "ca" }',
        [[partner 'x.test': verify = "ca" with tls = "none": a certificate is only seen over]]
        .. [[ TLS; set tls = "required" or verify = "none"]], CA)
    perr('partner "x.test" { dialback = false, sasl = "none" }',
        [[partner 'x.test': dialback = false and sasl = "none" leave nothing that could]]
        .. [[ authenticate it, so every stream with it would be refused; allow dialback or SASL]]
        .. [[ EXTERNAL]])
    perr('partner "x.test" { tls = "none", dialback = false }',
        [[partner 'x.test': dialback = false and sasl = "none" leave nothing that could]]
        .. [[ authenticate it, so every stream with it would be refused; allow dialback or SASL]]
        .. [[ EXTERNAL]])
    perr('partner "x.test" { sasl = "required", dialback = true }',
        [[partner 'x.test': dialback is never used when sasl = "required"; set dialback = false]])
end)

t.test("partner limits", function()
    for _, v in ipairs({ "0", "1.5", "2000000", '"4"' }) do
        perr('partner "x.test" { max_connections = ' .. v .. " }",
            "partner 'x.test': max_connections must be a whole number from 1 to 1000000")
    end
    for _, v in ipairs({ "-1", "3601", '"30"', "0/0" }) do
        perr('partner "x.test" { keepalive = ' .. v .. " }",
            "partner 'x.test': keepalive must be a number of seconds from 0 to 3600 (0: none)")
    end
    for _, v in ipairs({ "0", "-5", "604801", "true" }) do
        perr('partner "x.test" { idle_timeout = ' .. v .. " }",
            "partner 'x.test': idle_timeout must be a positive number of seconds up to 604800")
    end
    perr('partner "x.test" { keepalive = 120, idle_timeout = 120 }',
        "partner 'x.test': keepalive (120 s) must be shorter than the idle timeout (120 s, its"
        .. " idle_timeout), or the stream is closed before a keepalive is sent")
    perr('partner "x.test" { keepalive = 700 }',
        "partner 'x.test': keepalive (700 s) must be shorter than the idle timeout (600 s,"
        .. " xmpp.idle_timeout), or the stream is closed before a keepalive is sent")
    local p = partner_of(gw() .. 'partner "x.test" { keepalive = 0, idle_timeout = 10 }\n',
        "x.test")
    rules(p, { keepalive = 0, idle_timeout = 10 }, "keepalive off")
end)

-- Partners: extra domains -----------------------------------------------------

t.test("partner domains: lower-cased, and found by the matcher", function()
    local cfg, route = assert(load_policy(gw() .. table.concat({
        'partner "big.test" { domains = { "Conf.Big.test", "pubsub.big.test" } }',
        'partner "other.test" { domains = "MUC.other.test" }',
    }, "\n")))
    rules(cfg.partners[2], { domain = "big.test", domains = { "conf.big.test", "pubsub.big.test" } },
        "big")
    rules(cfg.partners[3], { domain = "other.test", domains = { "muc.other.test" } }, "other")
    -- A message from a room of the partner federates; one from a name
    -- below it does not.
    local ev = { kind = "message", origin = "xmpp", from = "room@conf.big.test/nick",
        to = "bob@sip.test", body = "hi", type = "groupchat" }
    local r = assert(route(ev))
    t.eq(r.from, "sip:room@conf.big.test;gr=nick")
    local _, cond, text = route({ kind = "message", origin = "xmpp", from = "x@a.conf.big.test",
        to = "bob@sip.test", body = "hi" })
    t.eq(cond, "forbidden")
    t.eq(text, "a.conf.big.test is not a federated partner")
    r = assert(route({ kind = "message", origin = "sip", from = "sip:bob@sip.test",
        to = "sip:room@muc.other.test", body = "hi" }))
    t.eq(r.to, "room@muc.other.test")
end)

t.test("partner domains: errors", function()
    perr('partner "x.test" { domains = { "bad domain" } }',
        [[partner 'x.test': domains[1] "bad domain" is not a valid domain name]])
    perr('partner "x.test" { domains = { "a.x.test", 7 } }',
        "partner 'x.test': domains[2] 7 is not a valid domain name")
    perr('partner "x.test" { domains = { "Voice.test" } }',
        "partner 'x.test': domains[1] 'voice.test' is one of this gateway's own domains")
    perr('partner "x.test" { domains = { "a.x.test", "A.x.test" } }',
        "partner 'x.test': domains[2] 'a.x.test' is listed twice")
    perr('partner "x.test" { domains = { "X.test" } }',
        "partner 'x.test': domains[1] 'x.test' is the partner's own name")
    perr('partner "x.test" { domains = { "xmpp.test" } }',
        "partner 'x.test': domains[1] 'xmpp.test' is partner 'xmpp.test' already (at test.lua:6)")
    -- A partner named later still counts: the names are all known first.
    expect_error(gw() .. 'partner "x.test" { domains = { "y.test" } }\npartner "y.test" { }\n',
        "test.lua:7: partner 'x.test': domains[1] 'y.test' is partner 'y.test' already"
        .. " (at test.lua:8)")
    expect_error(gw() .. 'partner "x.test" { domains = { "c.test" } }\n'
        .. 'partner "y.test" { domains = { "C.test" } }\n',
        "test.lua:8: partner 'y.test': domains[1] 'c.test' is partner 'x.test' already"
        .. " (at test.lua:7)")
    perr('partner "*" { domains = { "a.test" } }',
        "partner '*' cannot list domains: it applies to every domain not named already")
    perr('partner "x.test" { domains = { a = "b.test" } }',
        "partner 'x.test' domains must be a list { ... }, not a table with key a")
    perr('partner "x.test" { domains = 5 }', "partner 'x.test' domains must be a table, not number")
    perr('partner "x.test" { domains = { "ünï.test" } }',
        [[partner 'x.test': domains[1] "ünï.test" is not a valid domain name]])
end)

-- gateway.tls ------------------------------------------------------------------

local function gerr(o, want)
    expect_error(gw(o), "test.lua:1: " .. want)
end

t.test("gateway.tls: every key into the configuration", function()
    local cfg = assert(load_policy(gw({ gateway = [[tls = { cert = "a.pem", key = "a.key",
        certs = { { cert = "b.pem", key = "b.key" }, { key = "c.key", cert = "c.pem" } },
        ca = "/etc/ssl/certs", crl = "crl.pem" },]] })))
    t.eq(cfg.tls_cert, "a.pem")
    t.eq(cfg.tls_key, "a.key")
    t.eq(#cfg.tls_certs, 2)
    t.eq(cfg.tls_certs[1].cert, "b.pem")
    t.eq(cfg.tls_certs[1].key, "b.key")
    t.eq(cfg.tls_certs[2].cert, "c.pem")
    t.eq(cfg.tls_certs[2].key, "c.key")
    t.eq(cfg.tls_ca, "/etc/ssl/certs")
    t.eq(cfg.tls_crl, "crl.pem")
    -- Without cert, the first of certs is the default identity.
    cfg = assert(load_policy(gw({ gateway = [[tls = { certs = { { cert = "b.pem", key = "b.key" },
        { cert = "c.pem", key = "c.key" } } },]] })))
    t.eq(cfg.tls_cert, "b.pem")
    t.eq(cfg.tls_key, "b.key")
    t.eq(#cfg.tls_certs, 1)
    t.eq(cfg.tls_certs[1].cert, "c.pem")
    t.eq(cfg.tls_ca, nil)
    -- The older spelling.
    cfg = assert(load_policy(gw({ xmpp = [[, tls = { cert = "o.pem", key = "o.key" }]] })))
    t.eq(cfg.tls_cert, "o.pem")
    t.eq(cfg.tls_key, "o.key")
    t.eq(cfg.tls_certs, nil)
    -- CA alone: verification without an identity of our own (self-signed).
    cfg = assert(load_policy(gw({ gateway = [[tls = { ca = "ca.pem" },]] })))
    t.eq(cfg.tls_cert, nil)
    t.eq(cfg.tls_ca, "ca.pem")
end)

t.test("gateway.tls: errors", function()
    gerr({ gateway = [[tls = { ca = "ca.pem" },]], xmpp = [[, tls = { cert = "o", key = "k" }]] },
        "xmpp.tls and gateway.tls are both given: xmpp.tls is the older spelling of"
        .. " gateway.tls's cert and key; move them into gateway.tls")
    gerr({ gateway = [[tls = { cert = "a.pem" },]] },
        "gateway.tls.key is missing: a certificate and its key go together")
    gerr({ gateway = [[tls = { key = "a.key" },]] },
        "gateway.tls.cert is missing: a certificate and its key go together")
    gerr({ gateway = [[tls = { certs = {} },]] },
        "gateway.tls.certs is empty: list { cert = FILE, key = FILE } entries or leave it out")
    gerr({ gateway = [[tls = { certs = { { cert = "b.pem" } } },]] },
        "gateway.tls.certs[1].key must be a string, not missing")
    gerr({ gateway = [[tls = { certs = { { cert = "b.pem", key = "b.key", name = "x" } } },]] },
        "unknown key 'name' in gateway.tls.certs[1] (known: cert, key)")
    gerr({ gateway = [[tls = { certs = { cert = "b.pem", key = "b.key" } },]] },
        "gateway.tls.certs must be a list { ... }, not a table with key cert")
    gerr({ gateway = [[tls = { cert = "a.pem", key = "a.key",
        certs = { { cert = "a.pem", key = "b.key" } } },]] },
        "gateway.tls.certs[1].cert names a.pem, which gateway.tls.cert names already: each"
        .. " identity once")
    gerr({ gateway = [[tls = { cert = "", key = "a.key" },]] },
        "gateway.tls.cert must be a file path of 1 to 4096 bytes")
    gerr({ gateway = [[tls = { ca = 5 },]] }, "gateway.tls.ca must be a string, not number")
    gerr({ gateway = [[tls = { crl = "crl.pem" },]] },
        "gateway.tls.crl needs gateway.tls.ca: revocation is checked on chains built from that"
        .. " CA bundle")
    gerr({ gateway = [[tls = { ca = "ca.pem", verify = "ca" },]] },
        "unknown key 'verify' in gateway.tls (known: ca, cert, certs, crl, key)")
    gerr({ gateway = [[tls = "cert.pem",]] }, "gateway.tls must be a table, not string")
    gerr({ xmpp = [[, tls = { cert = "o" }]] }, "xmpp.tls.key must be a string, not missing")
end)

-- xmpp.listen_tls --------------------------------------------------------------

t.test("xmpp.listen_tls", function()
    local cfg = assert(load_policy(gw({ xmpp = [[, listen_tls = "127.0.0.1:5270"]] })))
    t.eq(cfg.xmpp_listen_tls_host, "127.0.0.1")
    t.eq(cfg.xmpp_listen_tls_port, 5270)
    cfg = assert(load_policy(gw({ xmpp = [[, listen_tls = "[::1]:5269"]] })))
    t.eq(cfg.xmpp_listen_tls_host, "::1")
    t.eq(cfg.xmpp_listen_tls_port, 5269)
    gerr({ xmpp = [[, listen_tls = "127.0.0.1:5269"]] }, "xmpp.listen_tls '127.0.0.1:5269'"
        .. " takes the port of xmpp.listen: Direct TLS needs a port of its own (5270 is usual)")
    gerr({ xmpp = [[, listen_tls = "0.0.0.0:5269"]] }, "xmpp.listen_tls '0.0.0.0:5269'"
        .. " takes the port of xmpp.listen: Direct TLS needs a port of its own (5270 is usual)")
    gerr({ xmpp = [[, listen_tls = "5270"]] },
        "xmpp.listen_tls '5270' is not host:port with a port from 1 to 65535")
end)

-- sip.tls and sip.keepalive ----------------------------------------------------

local TLS_SIP = { listen = '"tls:127.0.0.1:5061"', next_hop = '"tls:edge1.edge.test"' }
local function sip_with(o)
    local r = {}
    for k, v in pairs(TLS_SIP) do r[k] = v end
    for k, v in pairs(o) do r[k] = v end
    return r
end

t.test("sip.tls: defaults", function()
    -- No CA: nothing to verify against.
    local cfg = assert(load_policy(gw(TLS_SIP)))
    t.eq(cfg.sip_tls_verify, "none")
    t.eq(cfg.sip_tls_name, nil)
    t.eq(cfg.sip_tls_peers, nil)
    -- A CA: verification is on unless the policy says otherwise.
    cfg = assert(load_policy(gw(sip_with(CA))))
    t.eq(cfg.sip_tls_verify, "ca")
    cfg = assert(load_policy(gw(sip_with({ gateway = CA.gateway, sip = [[, tls = { verify = "none" }]] }))))
    t.eq(cfg.sip_tls_verify, "none")
    cfg = assert(load_policy(gw(sip_with({ gateway = CA.gateway,
        sip = [[, tls = { name = "Edge1.Edge.test", peers = { "edge1.edge.test", "*.Edge.test" } }]] }))))
    t.eq(cfg.sip_tls_verify, "ca")
    t.eq(cfg.sip_tls_name, "edge1.edge.test")
    t.eq(#cfg.sip_tls_peers, 2)
    t.eq(cfg.sip_tls_peers[1], "edge1.edge.test")
    t.eq(cfg.sip_tls_peers[2], "*.edge.test")
    -- A TLS listener alone is enough; peers may be one string.
    cfg = assert(load_policy(gw({ gateway = CA.gateway, listen = '"tls:127.0.0.1"',
        sip = [[, tls = { peers = "edge.test" }]] })))
    t.eq(cfg.sip_tls_peers[1], "edge.test")
    t.eq(cfg.sip_keepalive, 0)
end)

t.test("sip.tls: errors", function()
    gerr({ sip = [[, tls = { verify = "none" }]] }, "sip.tls applies to tls: transports; none is"
        .. " configured (sip.listen and sip.next_hop use udp: or tcp:)")
    gerr(sip_with({ sip = [[, tls = { verify = "ca" }]] }), 'sip.tls.verify = "ca" needs'
        .. " gateway.tls.ca: the CA bundle the SIP edge's certificate is verified against")
    gerr(sip_with({ sip = [[, tls = { verify = "yes" }]] }),
        'sip.tls.verify must be "ca" or "none", not "yes"')
    gerr(sip_with({ sip = [[, tls = { name = "edge.test" }]] }), 'sip.tls.name has no effect with'
        .. ' verify = "none" (no certificate is checked): set verify = "ca" with gateway.tls.ca,'
        .. " or remove it")
    gerr(sip_with({ gateway = CA.gateway, sip = [[, tls = { verify = "none", peers = { "e.test" } }]] }),
        'sip.tls.peers has no effect with verify = "none" (no certificate is checked): set'
        .. ' verify = "ca" with gateway.tls.ca, or remove it')
    gerr(sip_with({ gateway = CA.gateway, sip = [[, tls = { name = "*.edge.test" }]] }),
        'sip.tls.name "*.edge.test" is not a domain name')
    for _, bad in ipairs({ '"*.test"', '"a.*.test"', '"e dge.test"', "5", '"*"' }) do
        gerr(sip_with({ gateway = CA.gateway, sip = ", tls = { peers = { " .. bad .. " } }" }),
            "sip.tls.peers[1] " .. bad .. ' is not a domain name or "*.domain"')
    end
    gerr(sip_with({ gateway = CA.gateway, sip = [[, tls = { peers = {} }]] }),
        "sip.tls.peers must list 1 to 1024 names")
    gerr(sip_with({ sip = [[, tls = { ca = "x" }]] }),
        "unknown key 'ca' in sip.tls (known: name, peers, verify)")
end)

t.test("sip.keepalive", function()
    local cfg = assert(load_policy(gw({ listen = '"tcp:127.0.0.1:5060"', sip = ", keepalive = 30" })))
    t.eq(cfg.sip_keepalive, 30)
    cfg = assert(load_policy(gw({ sip = ", keepalive = 0" })))
    t.eq(cfg.sip_keepalive, 0)
    for _, v in ipairs({ "-1", "3601", '"30"', "0/0" }) do
        gerr(sip_with({ sip = ", keepalive = " .. v }),
            "sip.keepalive must be a number of seconds from 0 to 3600 (0: off)")
    end
    gerr({ sip = ", keepalive = 30" },
        "sip.keepalive applies to tcp: and tls: connections; none is configured")
end)

t.finish()
