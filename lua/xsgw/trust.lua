-- The trust vocabulary (README, "Partners" and "TLS"): the certificates the
-- gateway presents and verifies against (gateway.tls), the Direct TLS
-- listener (xmpp.listen_tls), how TLS links with the SIP edge are checked
-- (sip.tls, sip.keepalive), and the partner rules: who may authenticate how
-- (type, tls, sasl, dialback, verify) and the streams' limits.
--
-- Every function takes `h`, policy.lua's helpers (fail, want, check_keys,
-- valid_dns_name, parse_hostport), so the errors read like the rest of the
-- vocabulary's: "file:line: what is wrong; what to change".

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local mtype = math.type

local M = {}

local MAX_PATH = 4096
-- Bounds on lists an operator writes; far past any real deployment, they
-- keep a generated policy from making the C copies unbounded.
local MAX_IDENTITIES, MAX_PEERS, MAX_PARTNER_DOMAINS = 256, 1024, 1024
local MAX_STREAMS_TOP = 1000000
local KEEPALIVE_MAX, IDLE_MAX = 3600, 86400 * 7

local function quoted(v)
    return type(v) == "string" and ('"' .. v .. '"') or tostring(v)
end

-- A file or directory path, as a string; whether it exists is the TLS
-- module's to check when it builds the context (at start and at reload),
-- so that --check can run where the files are not.
local function path(h, where, what, v)
    h.want(where, what, v, "string")
    if v == "" or #v > MAX_PATH or v:find("%z") then
        h.fail(where, "%s must be a file path of 1 to %d bytes", what, MAX_PATH)
    end
    return v
end

-- A list written as a table with keys 1..n (a string alone is a list of
-- one when `one` is set); returns the list.
local function list(h, where, what, v, one)
    if one and type(v) == "string" then return { v } end
    h.want(where, what, v, "table")
    local bad
    for k in pairs(v) do
        if (mtype(k) ~= "integer" or k < 1 or k > #v)
            and (bad == nil or tostring(k) < tostring(bad)) then
            bad = k
        end
    end
    if bad ~= nil then
        h.fail(where, "%s must be a list { ... }, not a table with key %s", what, tostring(bad))
    end
    return v
end

-- gateway.tls = { cert, key, certs = { { cert, key }, ... }, ca, crl } and
-- its older spelling xmpp.tls = { cert, key }. The first identity (cert,
-- else certs[1]) is the default one, presented when no other names the
-- domain asked for; the others go to cfg.tls_certs.
function M.gateway_tls(h, where, t, old, cfg)
    if old ~= nil then
        h.want(where, "xmpp.tls", old, "table")
        h.check_keys(where, "xmpp.tls", old, { cert = true, key = true })
        if t ~= nil then
            h.fail(where, "xmpp.tls and gateway.tls are both given: xmpp.tls is the older"
                .. " spelling of gateway.tls's cert and key; move them into gateway.tls")
        end
        cfg.tls_cert = path(h, where, "xmpp.tls.cert", old.cert)
        cfg.tls_key = path(h, where, "xmpp.tls.key", old.key)
        return
    end
    if t == nil then return end
    h.want(where, "gateway.tls", t, "table")
    h.check_keys(where, "gateway.tls", t, { cert = true, key = true, certs = true, ca = true,
        crl = true })
    if (t.cert == nil) ~= (t.key == nil) then
        h.fail(where, "gateway.tls.%s is missing: a certificate and its key go together",
            t.cert == nil and "cert" or "key")
    end
    local ids = {}
    if t.cert ~= nil then
        ids[1] = { cert = path(h, where, "gateway.tls.cert", t.cert),
            key = path(h, where, "gateway.tls.key", t.key), what = "gateway.tls.cert" }
    end
    if t.certs ~= nil then
        local certs = list(h, where, "gateway.tls.certs", t.certs)
        if #certs == 0 then
            h.fail(where, "gateway.tls.certs is empty: list { cert = FILE, key = FILE } entries"
                .. " or leave it out")
        end
        if #certs > MAX_IDENTITIES then
            h.fail(where, "gateway.tls.certs lists more than %d identities", MAX_IDENTITIES)
        end
        for i, c in ipairs(certs) do
            local what = "gateway.tls.certs[" .. i .. "]"
            h.want(where, what, c, "table")
            h.check_keys(where, what, c, { cert = true, key = true })
            ids[#ids + 1] = { cert = path(h, where, what .. ".cert", c.cert),
                key = path(h, where, what .. ".key", c.key), what = what .. ".cert" }
        end
    end
    local seen = {}
    for _, id in ipairs(ids) do
        if seen[id.cert] then
            h.fail(where, "%s names %s, which %s names already: each identity once",
                id.what, id.cert, seen[id.cert])
        end
        seen[id.cert] = id.what
    end
    if ids[1] then cfg.tls_cert, cfg.tls_key = ids[1].cert, ids[1].key end
    cfg.tls_certs = {}
    for i = 2, #ids do cfg.tls_certs[i - 1] = { cert = ids[i].cert, key = ids[i].key } end
    if t.ca ~= nil then cfg.tls_ca = path(h, where, "gateway.tls.ca", t.ca) end
    if t.crl ~= nil then
        cfg.tls_crl = path(h, where, "gateway.tls.crl", t.crl)
        if not cfg.tls_ca then
            h.fail(where, "gateway.tls.crl needs gateway.tls.ca: revocation is checked on"
                .. " chains built from that CA bundle")
        end
    end
end

local WILDCARD_HOSTS = { ["0.0.0.0"] = true, ["::"] = true }

-- xmpp.listen_tls = "host:port": the Direct TLS listener (XEP-0368), on an
-- address of its own (a wildcard host covers every address of its port).
function M.listen_tls(h, where, v, cfg)
    if v == nil then return end
    local host, port = h.parse_hostport(where, "xmpp.listen_tls", v)
    local lh = cfg.xmpp_listen_host
    if port == cfg.xmpp_listen_port
        and (host == lh or WILDCARD_HOSTS[host] or WILDCARD_HOSTS[lh]) then
        h.fail(where, "xmpp.listen_tls '%s' takes the port of xmpp.listen: Direct TLS needs a"
            .. " port of its own (5270 is usual)", v)
    end
    cfg.xmpp_listen_tls_host, cfg.xmpp_listen_tls_port = host, port
end

-- A certificate identity a peer must present: a DNS name, or "*.name" for
-- any one label below it (RFC 9525 §6.3: the wildcard is the whole
-- left-most label).
local function identity(h, v, wildcard)
    if type(v) ~= "string" then return nil end
    v = v:lower()
    local rest = wildcard and v:match("^%*%.(.+)$")
    if rest then return rest:find("%.") and h.valid_dns_name(rest) and v or nil end
    return h.valid_dns_name(v) and v or nil
end

-- sip.tls = { verify, name, peers } and sip.keepalive, once sip.listen,
-- sip.next_hop and gateway.tls are in cfg.
function M.sip_tls(h, where, s, cfg)
    local uses_tls, uses_stream = false, false
    local endpoints = { cfg.sip_next_hop }
    for _, l in ipairs(cfg.sip_listen) do endpoints[#endpoints + 1] = l end
    for _, e in ipairs(endpoints) do
        uses_tls = uses_tls or e.transport == "tls"
        uses_stream = uses_stream or e.transport ~= "udp"
    end
    local t = s.tls
    if t ~= nil then
        h.want(where, "sip.tls", t, "table")
        h.check_keys(where, "sip.tls", t, { verify = true, name = true, peers = true })
        if not uses_tls then
            h.fail(where, "sip.tls applies to tls: transports; none is configured (sip.listen"
                .. " and sip.next_hop use udp: or tcp:)")
        end
    end
    t = t or {}
    local verify = t.verify
    if verify ~= nil and verify ~= "ca" and verify ~= "none" then
        h.fail(where, 'sip.tls.verify must be "ca" or "none", not %s', quoted(verify))
    end
    if verify == "ca" and not cfg.tls_ca then
        h.fail(where, 'sip.tls.verify = "ca" needs gateway.tls.ca: the CA bundle the SIP'
            .. " edge's certificate is verified against")
    end
    -- Verification is on whenever there is something to verify against,
    -- unless the policy turns it off.
    verify = verify or (cfg.tls_ca and "ca" or "none")
    cfg.sip_tls_verify = verify
    if verify == "none" and (t.name ~= nil or t.peers ~= nil) then
        h.fail(where, 'sip.tls.%s has no effect with verify = "none" (no certificate is'
            .. ' checked): set verify = "ca" with gateway.tls.ca, or remove it',
            t.name ~= nil and "name" or "peers")
    end
    if t.name ~= nil then
        cfg.sip_tls_name = identity(h, t.name, false)
        if not cfg.sip_tls_name then
            h.fail(where, "sip.tls.name %s is not a domain name", quoted(t.name))
        end
    end
    if t.peers ~= nil then
        local peers = list(h, where, "sip.tls.peers", t.peers, true)
        if #peers == 0 or #peers > MAX_PEERS then
            h.fail(where, "sip.tls.peers must list 1 to %d names", MAX_PEERS)
        end
        cfg.sip_tls_peers = {}
        for i, p in ipairs(peers) do
            local id = identity(h, p, true)
            if not id then
                h.fail(where, 'sip.tls.peers[%d] %s is not a domain name or "*.domain"', i,
                    quoted(p))
            end
            cfg.sip_tls_peers[i] = id
        end
    end

    local k = s.keepalive
    if k ~= nil then
        if type(k) ~= "number" or k ~= k or k < 0 or k > KEEPALIVE_MAX then
            h.fail(where, "sip.keepalive must be a number of seconds from 0 to %d (0: off)",
                KEEPALIVE_MAX)
        end
        if k > 0 and not uses_stream then
            h.fail(where, "sip.keepalive applies to tcp: and tls: connections; none is configured")
        end
    end
    cfg.sip_keepalive = k or 0
end

local PARTNER_KEYS = { type = true, tls = true, sasl = true, dialback = true, verify = true,
    domains = true, max_connections = true, keepalive = true, idle_timeout = true, route = true }

-- One of `allowed` (a list, in the order the error names them), or the
-- default when absent.
local function choice(h, where, domain, key, v, allowed, default)
    if v == nil then return default end
    for _, a in ipairs(allowed) do
        if v == a then return v end
    end
    local names = {}
    for i, a in ipairs(allowed) do names[i] = '"' .. a .. '"' end
    h.fail(where, "partner '%s': %s must be %s or %s, not %s", domain, key,
        table.concat(names, ", ", 1, #names - 1), names[#names], quoted(v))
end

-- The partner rules (README, "Partners"). Defaults by type: unverified:
-- tls "required", sasl "optional", dialback true, verify "none"; verified
-- and federated: verify "ca", the rest alike. Two defaults follow the
-- other keys, so that writing one key never needs a second one: sasl is
-- "none" when tls is "none" (SASL EXTERNAL runs over TLS only), and
-- dialback is false when sasl is "required" (it would never be used).
local function partner(h, where, domain, o, cfg)
    local name = "partner '" .. domain .. "'"
    h.check_keys(where, name, o, PARTNER_KEYS)
    local ty = choice(h, where, domain, "type", o.type, { "unverified", "verified", "federated" },
        "unverified")
    local strict = ty ~= "unverified"
    local tls = choice(h, where, domain, "tls", o.tls, { "required", "optional", "none" },
        "required")
    if strict and tls ~= "required" then
        h.fail(where, 'partner \'%s\': type "%s" needs tls = "required" (its certificate is'
            .. ' checked on every stream); remove tls = "%s" or make it type = "unverified"',
            domain, ty, tls)
    end
    local verify = choice(h, where, domain, "verify", o.verify, { "ca", "none" },
        strict and "ca" or "none")
    if strict and verify ~= "ca" then
        h.fail(where, 'partner \'%s\': type "%s" needs verify = "ca" (a certificate that'
            .. ' validates for the domain); remove verify = "none" or make it type = "unverified"',
            domain, ty)
    end
    local sasl = choice(h, where, domain, "sasl", o.sasl, { "required", "optional", "none" },
        tls == "none" and "none" or "optional")
    h.want(where, name .. " dialback", o.dialback, "boolean", true)
    local dialback = o.dialback
    if dialback == nil then dialback = sasl ~= "required" end

    if sasl ~= "none" and tls == "none" then
        h.fail(where, 'partner \'%s\': sasl = "%s" with tls = "none": SASL EXTERNAL needs TLS;'
            .. ' set sasl = "none" or allow TLS', domain, sasl)
    end
    if sasl == "required" and tls ~= "required" then
        h.fail(where, 'partner \'%s\': sasl = "required" needs tls = "required" (SASL EXTERNAL'
            .. ' runs over TLS only); set tls = "required" or sasl = "optional"', domain)
    end
    if verify == "ca" and tls == "none" then
        h.fail(where, 'partner \'%s\': verify = "ca" with tls = "none": a certificate is only'
            .. ' seen over TLS; set tls = "required" or verify = "none"', domain)
    end
    if not dialback and sasl == "none" then
        h.fail(where, 'partner \'%s\': dialback = false and sasl = "none" leave nothing that'
            .. ' could authenticate it, so every stream with it would be refused; allow'
            .. ' dialback or SASL EXTERNAL', domain)
    end
    if sasl == "required" and dialback then
        h.fail(where, 'partner \'%s\': dialback is never used when sasl = "required"; set'
            .. ' dialback = false', domain)
    end
    if verify == "ca" and not cfg.tls_ca then
        h.fail(where, 'partner \'%s\': verify = "ca"%s needs gateway.tls.ca, the CA bundle its'
            .. ' certificate is verified against; add gateway.tls = { ca = FILE-or-DIR } or'
            .. ' make it type = "unverified"', domain,
            o.verify == nil and (' (the default of type "' .. ty .. '")') or "")
    end

    local p = { domain = domain, type = ty, tls = tls, sasl = sasl, dialback = dialback,
        verify = verify, domains = {}, keepalive = 0 }
    local n = o.max_connections
    if n ~= nil then
        if mtype(n) ~= "integer" or n < 1 or n > MAX_STREAMS_TOP then
            h.fail(where, "partner '%s': max_connections must be a whole number from 1 to %d",
                domain, MAX_STREAMS_TOP)
        end
        p.max_connections = n
    end
    local k = o.keepalive
    if k ~= nil then
        if type(k) ~= "number" or k ~= k or k < 0 or k > KEEPALIVE_MAX then
            h.fail(where, "partner '%s': keepalive must be a number of seconds from 0 to %d"
                .. " (0: none)", domain, KEEPALIVE_MAX)
        end
        p.keepalive = k
    end
    local idle = o.idle_timeout
    if idle ~= nil then
        if type(idle) ~= "number" or idle ~= idle or idle <= 0 or idle > IDLE_MAX then
            h.fail(where, "partner '%s': idle_timeout must be a positive number of seconds up"
                .. " to %d", domain, IDLE_MAX)
        end
        p.idle_timeout = idle
    end
    -- A keepalive is sent after that much silence; a stream idle for
    -- idle_timeout is closed first when the keepalive is not shorter.
    local closes = idle or cfg.xmpp_idle_timeout
    if p.keepalive > 0 and p.keepalive >= closes then
        h.fail(where, "partner '%s': keepalive (%g s) must be shorter than the idle timeout"
            .. " (%g s, %s), or the stream is closed before a keepalive is sent", domain,
            p.keepalive, closes, idle and "its idle_timeout" or "xmpp.idle_timeout")
    end
    if o.route ~= nil then
        if domain == "*" then h.fail(where, "partner '*' cannot have a static route") end
        p.route_host, p.route_port = h.parse_hostport(where, name .. " route", o.route)
    end
    return p
end

-- partner.domains: more domains the partner hosts, each lower-case, valid,
-- none of ours and none another partner's (or its own name). `owner` maps
-- every domain declared so far to { name, where } of its partner.
local function partner_domains(h, where, domain, v, ours, owner, p)
    if v == nil then return end
    if domain == "*" then
        h.fail(where, "partner '*' cannot list domains: it applies to every domain not named"
            .. " already")
    end
    local ds = list(h, where, "partner '" .. domain .. "' domains", v, true)
    if #ds > MAX_PARTNER_DOMAINS then
        h.fail(where, "partner '%s': domains lists more than %d domains", domain,
            MAX_PARTNER_DOMAINS)
    end
    local mine = {}
    for i, d in ipairs(ds) do
        if type(d) ~= "string" or not h.valid_dns_name(d:lower()) then
            h.fail(where, "partner '%s': domains[%d] %s is not a valid domain name", domain, i,
                quoted(d))
        end
        d = d:lower()
        if ours[d] then
            h.fail(where, "partner '%s': domains[%d] '%s' is one of this gateway's own domains",
                domain, i, d)
        end
        if d == domain or mine[d] then
            h.fail(where, "partner '%s': domains[%d] '%s' is %s", domain, i, d,
                d == domain and "the partner's own name" or "listed twice")
        end
        local o = owner[d]
        if o then
            h.fail(where, "partner '%s': domains[%d] '%s' is partner '%s' already (at %s)",
                domain, i, d, o.name, o.where)
        end
        mine[d] = true
        owner[d] = { name = domain, where = where }
        p.domains[#p.domains + 1] = d
    end
end

-- The partners as policy.lua's decl collected them, into cfg.partners.
function M.partners(h, decl, cfg)
    local ours, owner = {}, {}
    for _, d in ipairs(cfg.domains) do ours[d] = true end
    for _, d in ipairs(decl.partner_order) do
        owner[d] = { name = d, where = decl.partners[d].where }
    end
    cfg.partners = {}
    for _, domain in ipairs(decl.partner_order) do
        local e = decl.partners[domain]
        local p = partner(h, e.where, domain, e.opts, cfg)
        if ours[domain] then
            h.fail(e.where, "partner '%s' is one of this gateway's own domains", domain)
        end
        partner_domains(h, e.where, domain, e.opts.domains, ours, owner, p)
        cfg.partners[#cfg.partners + 1] = p
    end
end

return M
