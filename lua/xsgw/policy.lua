-- The policy vocabulary (gateway{}, partner "x" {}, reject()), its
-- validation into one normalized configuration, and the routing decision the
-- core asks for every event. The C core reads the configuration this returns
-- and calls route(); it holds no policy of its own.
--
-- Errors in a policy are raised as "file:line: message" with the line of the
-- gateway{} or partner call, so an operator is pointed at the right place.

local address = require("xsgw.address")

local M = {}

local CONDITIONS = {}
for c in ([[bad-request conflict feature-not-implemented forbidden gone internal-server-error
    item-not-found jid-malformed not-acceptable not-allowed not-authorized policy-violation
    recipient-unavailable redirect registration-required remote-server-not-found
    remote-server-timeout resource-constraint service-unavailable subscription-required
    undefined-condition unexpected-request]]):gmatch("%S+") do
    CONDITIONS[c] = true
end
M.CONDITIONS = CONDITIONS

local MAX_BODY = 256 * 1024
local MAX_FIELD = 4096

-- A rejection is a table only reject() makes; on_message returns it.
local Rejection = {}
Rejection.__index = Rejection

local function fail(where, fmt, ...)
    error((where and (where .. ": ") or "") .. string.format(fmt, ...), 0)
end

local function check_keys(where, what, t, allowed)
    for k in pairs(t) do
        if not allowed[k] then
            local names = {}
            for a in pairs(allowed) do names[#names + 1] = a end
            table.sort(names)
            fail(where, "unknown key '%s' in %s (known: %s)", tostring(k), what,
                table.concat(names, ", "))
        end
    end
end

local function want(where, what, v, ty, optional)
    if v == nil and optional then return end
    if type(v) ~= ty then
        fail(where, "%s must be a %s, not %s", what, ty, type(v) == "nil" and "missing" or type(v))
    end
end

local function valid_dns_name(d)
    if type(d) ~= "string" or #d == 0 or #d > 253 then return false end
    for label in (d .. "."):gmatch("([^.]*)%.") do
        if #label > 63 or not (label:match("^%w$") or label:match("^%w[%w%-]*%w$")) then
            return false
        end
    end
    return d:lower() == d
end

-- "host:port", "[v6]:port" -> host, port (numbers 1..65535)
local function parse_hostport(where, what, s)
    want(where, what, s, "string")
    local host, port = s:match("^%[([%x:%.]+)%]:(%d+)$")
    if not host then host, port = s:match("^([^:%[%]]+):(%d+)$") end
    port = tonumber(port)
    if not host or host == "" or not port or port < 1 or port > 65535 then
        fail(where, "%s '%s' is not host:port with a port from 1 to 65535", what, s)
    end
    return host, port
end

local function parse_sip_endpoint(where, what, s)
    want(where, what, s, "string")
    local transport, rest = s:match("^(%a+):(.+)$")
    if not transport or (transport ~= "udp" and transport ~= "tcp") then
        fail(where, "%s '%s' must start with udp: or tcp:", what, s)
    end
    local host, port = parse_hostport(where, what, rest)
    return { transport = transport, host = host, port = port }
end

local function valid_ipv4(s)
    local parts = { s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$") }
    if #parts ~= 4 then return false end
    for _, p in ipairs(parts) do
        if #p > 3 or tonumber(p) > 255 or (#p > 1 and p:sub(1, 1) == "0") then return false end
    end
    return true
end

-- Counts the groups of one side of "::" (or of a whole address); nil when
-- one is not 1 to 4 hex digits.
local function ipv6_groups(s)
    if s == "" then return 0 end
    local n = 0
    for g in (s .. ":"):gmatch("([^:]*):") do
        if not g:match("^%x%x?%x?%x?$") then return nil end
        n = n + 1
    end
    return n
end

local function valid_ipv6(s)
    if #s > 45 or s:find("[^%x:%.]") or s:find(":::") then return false end
    -- A trailing dotted quad stands for the last two groups.
    local head, quad = s:match("^(.*:)([%d%.]+)$")
    if quad and quad:find("%.") then
        if not valid_ipv4(quad) then return false end
        s = head .. "0:0"
    elseif s:find("%.") then
        return false
    end
    local left, right = s:match("^(.-)::(.*)$")
    if left then
        if right:find("::") then return false end
        local a, b = ipv6_groups(left), ipv6_groups(right)
        return a ~= nil and b ~= nil and a + b <= 7
    end
    return ipv6_groups(s) == 8
end

-- "10.0.0.5", "10.0.0.0/24", "::1", "fd00::/8" -> the entry, lower-cased.
local function parse_trusted(where, what, s)
    want(where, what, s, "string")
    local addr, bits = s:match("^([^/]+)/(%d+)$")
    if not addr then addr = s end
    local max = valid_ipv4(addr) and 32 or valid_ipv6(addr:lower()) and 128
    if not max then
        fail(where, "%s '%s' is not an IPv4 or IPv6 address or network (ADDRESS or ADDRESS/PREFIX)",
            what, s)
    end
    if bits and (tonumber(bits) > max or (#bits > 1 and bits:sub(1, 1) == "0")) then
        fail(where, "%s '%s' has a prefix length past /%d", what, s, max)
    end
    return s:lower()
end

local function positive(where, what, v, default, max)
    if v == nil then return default end
    if type(v) ~= "number" or v <= 0 or v ~= v or (max and v > max) then
        fail(where, "%s must be a positive number%s", what, max and (" up to " .. max) or "")
    end
    return v
end

-- The primitives the C core provides (proxy/policy/helpers.c and policy.c);
-- plain Lua tests pass stand-ins.
local NATIVE = { "trim", "lower", "upper", "starts_with", "ends_with", "contains" }

-- A fresh declaration collector and the environment a policy chunk runs in.
-- `callsite()` returns "file:line" of the policy line that called into the
-- vocabulary (the core provides it; plain Lua tests pass one built on debug).
-- `native` holds the core's primitives (NATIVE).
function M.new_env(callsite, native)
    local decl = { partners = {}, partner_order = {}, native = native }
    local env = {}

    function env.gateway(t)
        local where = callsite()
        if decl.gateway then
            fail(where, "gateway{} given twice (first at %s)", decl.gateway_where)
        end
        want(where, "gateway{...}", t, "table")
        decl.gateway, decl.gateway_where = t, where
    end

    function env.partner(domain)
        local where = callsite()
        want(where, "partner name", domain, "string")
        domain = domain:lower()
        if domain ~= "*" and not valid_dns_name(domain) then
            fail(where, "partner '%s' is not a valid domain name", domain)
        end
        if decl.partners[domain] then
            fail(where, "partner '%s' is declared twice (first at %s)", domain,
                decl.partners[domain].where)
        end
        local entry = { where = where, opts = {} }
        decl.partners[domain] = entry
        decl.partner_order[#decl.partner_order + 1] = domain
        return function(opts)
            want(where, "partner '" .. domain .. "' options", opts, "table")
            entry.opts = opts
        end
    end

    function env.reject(condition, text)
        if type(condition) ~= "string" or not CONDITIONS[condition] then
            error("reject(): '" .. tostring(condition) .. "' is not an RFC 6120 stanza error condition", 2)
        end
        if text ~= nil and type(text) ~= "string" then
            error("reject(): text must be a string", 2)
        end
        return setmetatable({ condition = condition, text = text }, Rejection)
    end

    env.xsgw = { address = address }
    for _, name in ipairs(NATIVE) do
        env.xsgw[name] = native[name]
    end
    for _, name in ipairs({ "assert", "error", "ipairs", "next", "pairs", "pcall", "select",
        "tonumber", "tostring", "type", "xpcall", "rawequal", "rawget", "rawlen", "rawset",
        "getmetatable" }) do
        env[name] = _G[name]
    end
    -- Finalizers would run at any allocation and in lua_close at reload,
    -- outside the call whose budget they belong to: a policy gets none.
    function env.setmetatable(t, mt)
        if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
            error("setmetatable(): finalizers (__gc) are not allowed in a policy", 2)
        end
        return setmetatable(t, mt)
    end
    env.string, env.table, env.math, env.utf8 = string, table, math, utf8
    env._VERSION = _VERSION
    return env, decl
end

local function normalize_gateway(decl)
    local g, where = decl.gateway, decl.gateway_where
    if not g then fail(nil, "the policy declares no gateway{}") end
    check_keys(where, "gateway{}", g, { domains = true, xmpp = true, sip = true, log = true })
    local cfg = {}

    want(where, "gateway.domains", g.domains, "table")
    cfg.domains = {}
    local seen = {}
    for i, d in ipairs(g.domains) do
        if type(d) ~= "string" or not valid_dns_name(d:lower()) then
            fail(where, "gateway.domains[%d] '%s' is not a valid domain name", i, tostring(d))
        end
        d = d:lower()
        if seen[d] then fail(where, "gateway.domains lists '%s' twice", d) end
        seen[d] = true
        cfg.domains[#cfg.domains + 1] = d
    end
    if #cfg.domains == 0 then fail(where, "gateway.domains must name at least one domain") end

    local x = g.xmpp
    want(where, "gateway.xmpp", x, "table")
    check_keys(where, "gateway.xmpp", x, { listen = true, tls = true, dialback_secret = true,
        connect_timeout = true, idle_timeout = true, max_stanza = true, queue_max = true,
        error_grace = true })
    cfg.xmpp_listen_host, cfg.xmpp_listen_port = parse_hostport(where, "xmpp.listen", x.listen)
    if x.tls ~= nil then
        want(where, "xmpp.tls", x.tls, "table")
        check_keys(where, "xmpp.tls", x.tls, { cert = true, key = true })
        want(where, "xmpp.tls.cert", x.tls.cert, "string")
        want(where, "xmpp.tls.key", x.tls.key, "string")
        cfg.tls_cert, cfg.tls_key = x.tls.cert, x.tls.key
    end
    want(where, "xmpp.dialback_secret", x.dialback_secret, "string", true)
    if x.dialback_secret and #x.dialback_secret < 8 then
        fail(where, "xmpp.dialback_secret is too short (8 characters at least)")
    end
    cfg.dialback_secret = x.dialback_secret
    cfg.xmpp_connect_timeout = positive(where, "xmpp.connect_timeout", x.connect_timeout, 30, 3600)
    cfg.xmpp_idle_timeout = positive(where, "xmpp.idle_timeout", x.idle_timeout, 600, 86400 * 7)
    cfg.xmpp_max_stanza = math.floor(positive(where, "xmpp.max_stanza", x.max_stanza, 262144,
        16 * 1024 * 1024))
    cfg.xmpp_queue_max = math.floor(positive(where, "xmpp.queue_max", x.queue_max, 1000, 1000000))
    if x.error_grace ~= nil and (type(x.error_grace) ~= "number" or x.error_grace < 0 or
        x.error_grace > 30) then
        fail(where, "xmpp.error_grace must be a number of seconds from 0 to 30")
    end
    cfg.xmpp_error_grace = x.error_grace or 1

    local s = g.sip
    want(where, "gateway.sip", s, "table")
    check_keys(where, "gateway.sip", s, { listen = true, next_hop = true, max_message = true,
        trusted = true })
    local listen = s.listen
    if type(listen) == "string" then listen = { listen } end
    want(where, "sip.listen", listen, "table")
    cfg.sip_listen = {}
    for i, l in ipairs(listen) do
        cfg.sip_listen[i] = parse_sip_endpoint(where, "sip.listen[" .. i .. "]", l)
    end
    if #cfg.sip_listen == 0 then fail(where, "sip.listen must name at least one listener") end
    if s.next_hop ~= nil then
        cfg.sip_next_hop = parse_sip_endpoint(where, "sip.next_hop", s.next_hop)
    end
    cfg.sip_max_message = math.floor(positive(where, "sip.max_message", s.max_message, 65536,
        4 * 1024 * 1024))
    -- The SIP peers requests are accepted from. Without the key, the C side
    -- trusts the next hop's resolved addresses.
    if s.trusted ~= nil then
        local trusted = s.trusted
        if type(trusted) == "string" then trusted = { trusted } end
        want(where, "sip.trusted", trusted, "table")
        cfg.sip_trusted = {}
        for k in pairs(trusted) do
            if math.type(k) ~= "integer" or k < 1 or k > #trusted then
                fail(where, "sip.trusted must be a list of addresses and networks")
            end
        end
        for i, t in ipairs(trusted) do
            cfg.sip_trusted[i] = parse_trusted(where, "sip.trusted[" .. i .. "]", t)
        end
        if #cfg.sip_trusted > 1024 then fail(where, "sip.trusted lists more than 1024 entries") end
    end

    if g.log ~= nil then
        want(where, "gateway.log", g.log, "table")
        check_keys(where, "gateway.log", g.log, { bodies = true })
        want(where, "log.bodies", g.log.bodies, "boolean", true)
    end
    cfg.log_bodies = g.log ~= nil and g.log.bodies == true
    return cfg
end

local function normalize_partners(decl, cfg)
    cfg.partners = {}
    for _, domain in ipairs(decl.partner_order) do
        local e = decl.partners[domain]
        local o, where = e.opts, e.where
        check_keys(where, "partner '" .. domain .. "'", o,
            { tls = true, dialback = true, route = true })
        local tls = o.tls == nil and "required" or o.tls
        if tls ~= "required" and tls ~= "optional" then
            fail(where, "partner '%s': tls must be \"required\" or \"optional\", not %s", domain,
                type(tls) == "string" and ('"' .. tls .. '"') or tostring(tls))
        end
        want(where, "partner '" .. domain .. "' dialback", o.dialback, "boolean", true)
        local p = { domain = domain, tls = tls, dialback = o.dialback ~= false }
        if o.route ~= nil then
            if domain == "*" then fail(where, "partner '*' cannot have a static route") end
            p.route_host, p.route_port = parse_hostport(where, "partner '" .. domain .. "' route",
                o.route)
        end
        for _, d in ipairs(cfg.domains) do
            if d == domain then
                fail(where, "partner '%s' is one of this gateway's own domains", domain)
            end
        end
        cfg.partners[#cfg.partners + 1] = p
    end
end

local HOOKS = { on_message = true, map_to_sip = true, map_to_xmpp = true }

-- Validates what a policy chunk declared. Returns the configuration table
-- and a route function bound to it.
function M.finish(env, decl)
    local cfg = normalize_gateway(decl)
    normalize_partners(decl, cfg)
    for name in pairs(HOOKS) do
        local h = rawget(env, name)
        if h ~= nil and type(h) ~= "function" then
            fail(nil, "%s must be a function, not %s", name, type(h))
        end
    end
    local local_domains = {}
    for _, d in ipairs(cfg.domains) do local_domains[d] = true end
    local partners = {}
    for _, p in ipairs(cfg.partners) do partners[p.domain] = p end

    local to_sip = rawget(env, "map_to_sip") or address.to_sip
    local to_xmpp = rawget(env, "map_to_xmpp") or address.to_xmpp
    local on_message = rawget(env, "on_message")

    local function partner(domain)
        return partners[domain] or partners["*"]
    end

    local function checked_string(ev, k, max)
        local v = ev[k]
        if v == nil then return true end
        return type(v) == "string" and #v <= max and utf8.len(v) ~= nil
    end

    -- Decides for one event; returns the (possibly rewritten) event, or
    -- nil, condition, text.
    local function route(ev)
        local from, to
        if ev.origin == "xmpp" then
            local fd, td = address.jid_domain(ev.from), address.jid_domain(ev.to)
            if not fd or not td then return nil, "jid-malformed", "address is not a valid JID" end
            if not local_domains[td] then
                return nil, "item-not-found", "this gateway does not serve " .. td
            end
            if not partner(fd) then
                return nil, "forbidden", fd .. " is not a federated partner"
            end
            local err
            from, err = to_sip(ev.from)
            if not from then return nil, err or "jid-malformed", "sender cannot be mapped to SIP" end
            to, err = to_sip(ev.to)
            if not to then return nil, err or "jid-malformed", "recipient cannot be mapped to SIP" end
        elseif ev.origin == "sip" then
            local fd, td = address.sip_domain(ev.from), address.sip_domain(ev.to)
            if not fd or not td then return nil, "jid-malformed", "address is not a usable SIP URI" end
            if not local_domains[fd] then
                return nil, "forbidden", "sender is not in a domain this gateway serves"
            end
            if local_domains[td] then
                return nil, "item-not-found", td .. " is served on the SIP side, not through XMPP"
            end
            if not partner(td) then
                return nil, "forbidden", td .. " is not a federated partner"
            end
            local err
            from, err = to_xmpp(ev.from)
            if not from then return nil, err or "jid-malformed", "sender cannot be mapped to XMPP" end
            to, err = to_xmpp(ev.to)
            if not to then return nil, err or "jid-malformed", "recipient cannot be mapped to XMPP" end
        else
            return nil, "bad-request", "unknown origin"
        end
        ev.from, ev.to = from, to
        if on_message then
            local r = on_message(ev)
            if getmetatable(r) == Rejection then return nil, r.condition, r.text end
            if r ~= nil then
                if type(r) ~= "table" then
                    error("on_message must return the message, nil or reject(...), not " .. type(r))
                end
                ev = r
            end
        end
        if type(ev.body) ~= "string" then error("on_message left the message without a body") end
        for _, k in ipairs({ "from", "to", "id", "thread", "subject", "lang", "type" }) do
            if not checked_string(ev, k, MAX_FIELD) then
                error("on_message set " .. k .. " to something that is not a short UTF-8 string")
            end
        end
        if not checked_string(ev, "body", MAX_BODY) then
            error("on_message set body to something that is not UTF-8 text of at most 256 KiB")
        end
        return ev
    end

    return cfg, route
end

return M
