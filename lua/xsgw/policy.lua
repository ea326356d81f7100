-- The policy vocabulary (gateway{}, partner "x" {}, reject()), its
-- validation into one normalized configuration, and the routing decision the
-- core asks for every event. The C core reads the configuration this returns
-- and calls route(); it holds no policy of its own.
--
-- Errors in a policy are raised as "file:line: message" with the line of the
-- gateway{} or partner call, so an operator is pointed at the right place.

local address = require("xsgw.address")
local presence = require("xsgw.presence")
local operations = require("xsgw.operations")
local trust = require("xsgw.trust")

-- The library's own references, taken before any policy runs: nothing a
-- policy does later can change what route() calls. The mapping route()
-- uses is address.lua's, done in C (xsgw.addr.map, proxy/policy/addr_map.c,
-- held byte for byte to address.lua by tests/lua/test_addr_map.lua); a
-- policy's map_to_sip and map_to_xmpp hooks replace it.
local map = require("xsgw.addr").map
local jid_domain, sip_domain = map.jid_domain, map.sip_domain
local default_to_sip, default_to_xmpp = map.to_sip, map.to_xmpp
local setmetatable, getmetatable, rawget, type, error, tostring = setmetatable, getmetatable,
    rawget, type, error, tostring
local pairs, ipairs, next, select = pairs, ipairs, next, select
local format, concat, sort, utf8_len = string.format, table.concat, table.sort, utf8.len

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

local MAX_FIELD = 4096

-- One size for a message body, gateway.max_body, from which the XMPP stanza
-- and SIP message limits are derived: a stanza or SIP message must hold a
-- body of max_body plus what surrounds it (FRAME_MIN), and by default gets
-- FRAME_ROOM for that.
local MAX_BODY_DEFAULT, MAX_BODY_MIN, MAX_BODY_MAX = 256 * 1024, 1024, 1024 * 1024
local FRAME_MIN, FRAME_ROOM = 4096, 16384

-- A rejection is a table only reject() makes; on_message returns it. The
-- weak set recognizes them, so a policy cannot forge one or reach the
-- metatable.
local Rejection = { __metatable = false }
local rejections = setmetatable({}, { __mode = "k" })
-- What drop() returns: on_presence discards the update with it.
local DROP = setmetatable({}, { __metatable = false, __newindex = function()
    error("drop() is not a table to fill", 2)
end })

-- A read-only view of a library table for policies: reads go through,
-- assignments fail with the name of what was assigned, and the view hides
-- its metatable.
local function readonly(t, name)
    return setmetatable({}, {
        __index = t,
        __newindex = function(_, k)
            error(format("%s is read-only: cannot assign %s.%s", name, name, tostring(k)), 2)
        end,
        __pairs = function() return next, t, nil end,
        __len = function() return #t end,
        __metatable = false,
    })
end

local function fail(where, fmt, ...)
    error((where and (where .. ": ") or "") .. format(fmt, ...), 0)
end

local function check_keys(where, what, t, allowed)
    for k in pairs(t) do
        if not allowed[k] then
            local names = {}
            for a in pairs(allowed) do names[#names + 1] = a end
            sort(names)
            fail(where, "unknown key '%s' in %s (known: %s)", tostring(k), what,
                concat(names, ", "))
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

-- "host:port", "[v6]:port" -> host, port (numbers 1..65535); nil when it is not
-- that. default_port, when given, stands in for a missing ":port".
local function split_hostport(s, default_port)
    local host, port = s:match("^%[([%x:%.]+)%]:(%d+)$")
    if not host then host, port = s:match("^([^:%[%]]+):(%d+)$") end
    if not host and default_port then
        host = s:match("^%[([%x:%.]+)%]$") or s:match("^([^:%[%]]+)$")
        port = default_port
    end
    port = tonumber(port)
    if not host or host == "" or not port or port < 1 or port > 65535 then return nil end
    return host, port
end

local function parse_hostport(where, what, s)
    want(where, what, s, "string")
    local host, port = split_hostport(s)
    if not host then
        fail(where, "%s '%s' is not host:port with a port from 1 to 65535", what, s)
    end
    return host, port
end

-- "udp:host:port", "tcp:host:port", "tls:host:port"; tls alone may leave
-- the port out, for 5061 (RFC 3261 §19.1.2 gives each a default, but only the
-- TLS one differs from what an operator would guess).
local function parse_sip_endpoint(where, what, s)
    want(where, what, s, "string")
    local transport, rest = s:match("^(%a+):(.+)$")
    if not transport or (transport ~= "udp" and transport ~= "tcp" and transport ~= "tls") then
        fail(where, "%s '%s' must start with udp:, tcp: or tls:", what, s)
    end
    local host, port = split_hostport(rest, transport == "tls" and 5061 or nil)
    if not host then
        fail(where, "%s '%s' is not %s:host:port with a port from 1 to 65535%s", what, s,
            transport, transport == "tls" and " (or tls:host for 5061)" or "")
    end
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
-- The library uses the others itself and hands them on through the
-- vocabulary: defined_at(f) ("file:line" where a function was defined),
-- log(level, where, text), now(), clock(), status_to_cond(code).
-- partner(domain) is the core's partner matcher, the one stream admission
-- uses, so routing and streams cannot disagree on who is a partner.
local NATIVE = { "trim", "lower", "upper", "starts_with", "ends_with", "contains", "partner" }

-- A fresh declaration collector and the environment a policy chunk runs in.
-- `callsite()` returns "file:line" of the policy line that called into the
-- vocabulary (the core provides it; plain Lua tests pass one built on debug).
-- `native` holds the core's primitives (NATIVE).
function M.new_env(callsite, native)
    local decl = { partners = {}, partner_order = {}, native = native }
    local env = {}

    function env.gateway(t, ...)
        local where = callsite()
        if select("#", ...) > 0 then
            fail(where, "gateway{} takes one table: write gateway { ... }")
        end
        if decl.gateway then
            fail(where, "gateway{} given twice (first at %s)", decl.gateway_where)
        end
        want(where, "gateway{...}", t, "table")
        decl.gateway, decl.gateway_where = t, where
    end

    function env.partner(domain, ...)
        local where = callsite()
        want(where, "partner name", domain, "string")
        if select("#", ...) > 0 then
            fail(where, "partner(%q, ...) takes the name alone, the options come after it:"
                .. " write partner %q { ... }", domain, domain)
        end
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
        return function(opts, ...)
            want(where, "partner '" .. domain .. "' options", opts, "table")
            if select("#", ...) > 0 then
                fail(where, "partner %q takes one table of options: write partner %q { ... }",
                    domain, domain)
            end
            entry.opts = opts
        end
    end

    -- reject(condition, text) with an RFC 6120 condition, or with a SIP
    -- status (300-699), which becomes the condition RFC 7247 maps it to.
    function env.reject(condition, text)
        if type(condition) == "number" then
            local code = math.tointeger(condition)
            local c = code and code >= 300 and code <= 699 and native.status_to_cond(code)
            if not c then
                error("reject(): " .. condition .. " is not a SIP failure status (300 to 699)", 2)
            end
            condition = c
        elseif type(condition) ~= "string" or not CONDITIONS[condition] then
            error("reject(): '" .. tostring(condition) .. "' is not an RFC 6120 stanza error"
                .. " condition or a SIP status", 2)
        end
        if text ~= nil and type(text) ~= "string" then
            error("reject(): text must be a string", 2)
        end
        local r = setmetatable({ condition = condition, text = text }, Rejection)
        rejections[r] = true
        return r
    end

    -- drop(): what on_presence returns to discard a presence update.
    function env.drop() return DROP end

    -- presence_map { ... }: entries replacing those of lua/xsgw/presence.lua
    -- (validated by finish(), where the errors name this line).
    function env.presence_map(t, ...)
        local where = callsite()
        if select("#", ...) > 0 then
            fail(where, "presence_map takes one table: write presence_map { ... }")
        end
        if decl.presence_map_where then
            fail(where, "presence_map given twice (first at %s)", decl.presence_map_where)
        end
        want(where, "presence_map{...}", t, "table")
        decl.presence_map, decl.presence_map_where = t, where
    end

    -- The mapping functions with this policy's tables (once finish() has
    -- merged them; the defaults while the policy file itself runs).
    local xsgw = { address = readonly(address, "xsgw.address"), presence = readonly({
        to_xmpp = function(p) return (decl.mapper or presence.default).to_xmpp(p) end,
        to_sip = function(p) return (decl.mapper or presence.default).to_sip(p) end,
    }, "xsgw.presence") }
    for _, name in ipairs(NATIVE) do
        xsgw[name] = native[name]
    end
    env.xsgw = readonly(xsgw, "xsgw")

    local LEVELS = { debug = true, info = true, warn = true, error = true }
    local MAX_LOG = 1000
    -- log(level, ...): the arguments, as tostring() writes them and separated
    -- by spaces, in the gateway's log with the policy's file:line.
    function env.log(level, ...)
        if not LEVELS[level] then
            error("log(): level must be \"debug\", \"info\", \"warn\" or \"error\", not "
                .. tostring(level), 2)
        end
        local parts = { ... }
        for i = 1, select("#", ...) do parts[i] = tostring(parts[i]) end
        local text = concat(parts, " ")
        if #text > MAX_LOG then text = text:sub(1, MAX_LOG) .. "..." end
        native.log(level, callsite(), text)
    end
    env.now, env.clock = native.now, native.clock
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
    env.string, env.table = readonly(string, "string"), readonly(table, "table")
    env.math, env.utf8 = readonly(math, "math"), readonly(utf8, "utf8")
    env._VERSION = _VERSION
    return env, decl
end

-- What lua/xsgw/trust.lua checks with.
local TRUST_HELPERS = { fail = fail, want = want, check_keys = check_keys,
    valid_dns_name = valid_dns_name, parse_hostport = parse_hostport }

-- xmpp.max_streams: how many s2s streams the gateway holds. The defaults
-- are a large site's: ten thousand federated streams each way cost about
-- 100 MiB in plain text and 400 MiB with TLS (README, "Limits"); the side
-- shrinks them at start when RLIMIT_NOFILE cannot hold them, and says so.
local MAX_STREAMS = {
    inbound = 10000,                   -- inbound streams, whatever their state
    outbound = 10000,                  -- outbound streams
    unauthenticated = 1000,            -- inbound streams with no authenticated pair yet
    unauthenticated_per_source = 8,    -- of those, from one address (IPv6: one /64)
    per_domain = 32,                   -- inbound streams authenticated for one remote domain
}
local MAX_STREAMS_TOP = 1000000

local function max_streams(where, t, cfg)
    t = t or {}
    want(where, "xmpp.max_streams", t, "table")
    check_keys(where, "xmpp.max_streams", t, MAX_STREAMS)
    local v = {}
    for k, default in pairs(MAX_STREAMS) do
        local n = t[k]
        if n == nil then
            n = default
        elseif math.type(n) ~= "integer" or n < 1 or n > MAX_STREAMS_TOP then
            fail(where, "xmpp.max_streams.%s must be a whole number from 1 to %d", k,
                MAX_STREAMS_TOP)
        end
        v[k] = n
    end
    -- A share cannot be larger than what it is a share of; a default that
    -- would be is brought down to it, an explicit value is a mistake.
    local function within(k, of)
        if v[k] <= v[of] then return end
        if t[k] ~= nil then
            fail(where, "xmpp.max_streams.%s (%d) is larger than xmpp.max_streams.%s (%d)",
                k, v[k], of, v[of])
        end
        v[k] = v[of]
    end
    within("unauthenticated", "inbound")
    within("unauthenticated_per_source", "unauthenticated")
    within("per_domain", "inbound")
    cfg.xmpp_streams_in = v.inbound
    cfg.xmpp_streams_out = v.outbound
    cfg.xmpp_streams_unauth = v.unauthenticated
    cfg.xmpp_streams_unauth_per_source = v.unauthenticated_per_source
    cfg.xmpp_streams_per_domain = v.per_domain
end

local function normalize_gateway(decl)
    local g, where = decl.gateway, decl.gateway_where
    if not g then fail(nil, "the policy declares no gateway{}") end
    check_keys(where, "gateway{}", g, { domains = true, xmpp = true, sip = true, log = true,
        max_body = true, presence = true, tls = true, admin = true, reload = true, drain = true,
        instance = true })
    local cfg = {}
    if g.max_body ~= nil and (type(g.max_body) ~= "number" or g.max_body ~= g.max_body
        or g.max_body < MAX_BODY_MIN or g.max_body > MAX_BODY_MAX) then
        fail(where, "gateway.max_body must be a number of bytes from %d to %d", MAX_BODY_MIN,
            MAX_BODY_MAX)
    end
    local max_body = math.floor(g.max_body or MAX_BODY_DEFAULT)
    cfg.max_body = max_body
    -- An explicit limit below what max_body needs would refuse, at the stream
    -- or transport, bodies the policy was told to accept.
    local function derived(what, v, max)
        if v ~= nil and type(v) == "number" and v < max_body + FRAME_MIN then
            fail(where, "%s = %d is smaller than gateway.max_body (%d) needs: at least %d",
                what, v, max_body, max_body + FRAME_MIN)
        end
        return math.floor(positive(where, what, v, max_body + FRAME_ROOM, max))
    end

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
        error_grace = true, stream_management = true, max_streams = true, listen_tls = true })
    cfg.xmpp_listen_host, cfg.xmpp_listen_port = parse_hostport(where, "xmpp.listen", x.listen)
    trust.listen_tls(TRUST_HELPERS, where, x.listen_tls, cfg)
    trust.gateway_tls(TRUST_HELPERS, where, g.tls, x.tls, cfg)
    want(where, "xmpp.dialback_secret", x.dialback_secret, "string", true)
    if x.dialback_secret and #x.dialback_secret < 8 then
        fail(where, "xmpp.dialback_secret is too short (8 characters at least)")
    end
    cfg.dialback_secret = x.dialback_secret
    cfg.xmpp_connect_timeout = positive(where, "xmpp.connect_timeout", x.connect_timeout, 30, 3600)
    cfg.xmpp_idle_timeout = positive(where, "xmpp.idle_timeout", x.idle_timeout, 600, 86400 * 7)
    cfg.xmpp_max_stanza = derived("xmpp.max_stanza", x.max_stanza, 16 * 1024 * 1024)
    cfg.xmpp_queue_max = math.floor(positive(where, "xmpp.queue_max", x.queue_max, 1000, 1000000))
    if x.error_grace ~= nil and (type(x.error_grace) ~= "number" or x.error_grace < 0 or
        x.error_grace > 30) then
        fail(where, "xmpp.error_grace must be a number of seconds from 0 to 30")
    end
    -- Below SIP's T1 (500 ms) with room for the 100 ms sweep that reports
    -- it, so a UDP sender gets its answer before its first retransmission.
    cfg.xmpp_error_grace = x.error_grace or 0.25
    local sm = x.stream_management
    if sm ~= nil and sm ~= "offered" and sm ~= "always" and sm ~= "off" then
        fail(where, 'xmpp.stream_management must be "offered", "always" or "off"')
    end
    cfg.xmpp_stream_management = sm or "always"
    max_streams(where, x.max_streams, cfg)

    local s = g.sip
    want(where, "gateway.sip", s, "table")
    check_keys(where, "gateway.sip", s, { listen = true, next_hop = true, max_message = true,
        trusted = true, max_transactions = true, max_stored_bytes = true, udp_recv_buffer = true,
        udp_send_buffer = true, contact = true, tls = true, keepalive = true })
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
    cfg.sip_max_message = derived("sip.max_message", s.max_message, 4 * 1024 * 1024)
    -- The SIP transaction layer's bounds, sized so that a sustained rate the
    -- gateway can carry never reaches them (README, "sip"): transactions in
    -- flight per role (server: waiting for XMPP; client: waiting for the
    -- next hop's answer), at 30,000 msg/s about 30,000 with a one-second
    -- error grace; the final responses kept for Timer J (32 s over UDP),
    -- about 435 bytes each with their record, so 30,000 msg/s x 32 s x
    -- 435 B = 418 MB, under the 512 MiB default; and the UDP sockets'
    -- kernel buffers, where bursts wait while the loop is busy.
    local function count(what, v, default, min, max)
        if v == nil then return default end
        if math.type(v) ~= "integer" or v < min or v > max then
            fail(where, "%s must be a whole number from %d to %d", what, min, max)
        end
        return v
    end
    cfg.sip_max_transactions = count("sip.max_transactions", s.max_transactions, 65536, 4,
        10000000)
    cfg.sip_max_stored_bytes = count("sip.max_stored_bytes", s.max_stored_bytes,
        512 * 1024 * 1024, 4096, 64 * 1024 * 1024 * 1024)
    cfg.sip_udp_recv_buffer = count("sip.udp_recv_buffer", s.udp_recv_buffer, 4 * 1024 * 1024,
        0, 1024 * 1024 * 1024)
    cfg.sip_udp_send_buffer = count("sip.udp_send_buffer", s.udp_send_buffer, 4 * 1024 * 1024,
        0, 1024 * 1024 * 1024)
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

    -- The address NOTIFYs and other in-dialog requests come back to; checked
    -- like any host:port and kept as written, for the Contact header.
    if s.contact ~= nil then
        parse_hostport(where, "sip.contact", s.contact)
        cfg.sip_contact = s.contact
    end
    trust.sip_tls(TRUST_HELPERS, where, s, cfg)
    presence.config(where, g.presence, cfg, { fail = fail, want = want, check_keys = check_keys })

    operations.config(where, g, cfg, TRUST_HELPERS)
    return cfg
end

local HOOKS = { on_message = true, map_to_sip = true, map_to_xmpp = true, on_presence = true,
    on_subscribe = true }

-- The fields of the message table on_message sees; it may set no others.
local EVENT_FIELDS = { kind = true, origin = true, from = true, to = true, id = true,
    thread = true, subject = true, lang = true, type = true, body = true, secure = true,
    auth = true }

-- The fields other than the body that must stay short UTF-8 strings.
local STRING_FIELDS = { "from", "to", "id", "thread", "subject", "lang", "type" }

local function sorted_keys(t)
    local names = {}
    for k in pairs(t) do names[#names + 1] = k end
    sort(names)
    return concat(names, ", ")
end

-- A global function named like a hook that is not one is almost always a
-- misspelled hook, which would otherwise be silently never called.
local function check_hook_names(env, defined_at)
    local bad = {}
    for name, v in pairs(env) do
        if type(name) == "string" and type(v) == "function" and not HOOKS[name]
            and (name:match("^on_") or name:match("^map_")) then
            bad[#bad + 1] = name
        end
    end
    if #bad == 0 then return end
    sort(bad)
    fail(defined_at(env[bad[1]]), "%s is not a hook this gateway calls (hooks: %s)", bad[1],
        sorted_keys(HOOKS))
end

-- The hooks in the order of the core's metrics (enum xs_metrics_hook).
local HOOK_INDEX = { on_message = 0, on_presence = 1, on_subscribe = 2, map_to_sip = 3,
    map_to_xmpp = 4 }

-- A hook the policy defines, as the library calls it: native.hook(i) tells
-- the core that hook i runs (it counts the call, and blames a failure that
-- ends the call on it) and native.hook(-1) that it returned. Without the
-- native (plain Lua tests) the hook is used as it is.
local function counted(native, name, h)
    local mark = native.hook
    if h == nil or mark == nil then return h end
    local i = HOOK_INDEX[name]
    local function leave(...)
        mark(-1)
        return ...
    end
    return function(...)
        mark(i)
        return leave(h(...))
    end
end

-- Validates what a policy chunk declared. Returns the configuration table,
-- a route function bound to it, and route_mapped (see after_mapping) or nil
-- when the policy maps addresses itself.
function M.finish(env, decl)
    local cfg = normalize_gateway(decl)
    trust.partners(TRUST_HELPERS, decl, cfg)
    for name in pairs(HOOKS) do
        local h = rawget(env, name)
        if h ~= nil and type(h) ~= "function" then
            fail(nil, "%s must be a function, not %s", name, type(h))
        end
    end
    check_hook_names(env, decl.native.defined_at)
    local local_domains = {}
    for _, d in ipairs(cfg.domains) do local_domains[d] = true end
    local partner = decl.native.partner

    local to_sip = counted(decl.native, "map_to_sip", rawget(env, "map_to_sip")) or default_to_sip
    local to_xmpp = counted(decl.native, "map_to_xmpp", rawget(env, "map_to_xmpp"))
        or default_to_xmpp
    local on_message = counted(decl.native, "on_message", rawget(env, "on_message"))
    local max_body = cfg.max_body
    -- Without hooks, route() below is a function of the configuration and
    -- the message alone, which the core may compute itself
    -- (proxy/policy/route_fast.c) and ask route() only what it cannot.
    cfg.default_route = not (on_message or rawget(env, "map_to_sip") or rawget(env, "map_to_xmpp"))

    -- The XMPP side of a message must be a partner, the SIP side one of ours;
    -- a partner "*" does not make our own domains partners. The answer for a
    -- domain depends on this generation's partner list alone, so it is kept
    -- for the generation (a reload builds a new state and starts empty),
    -- for at most FEDERATED_CACHE domains at a time.
    local FEDERATED_CACHE = 1024
    local fed_cache, fed_count = {}, 0
    local function federated(domain)
        if domain == nil or local_domains[domain] then return false end
        local f = fed_cache[domain]
        if f == nil then
            f = partner(domain) ~= nil
            if fed_count >= FEDERATED_CACHE then fed_cache, fed_count = {}, 0 end
            fed_cache[domain], fed_count = f, fed_count + 1
        end
        return f
    end

    -- After the hooks: whatever they rewrote, the message still goes from
    -- one of ours to a partner or the other way round (audit L5).
    local function recheck(ev, origin)
        local fd, td
        if origin == "sip" then
            fd, td = jid_domain(ev.from), jid_domain(ev.to)
            if not (fd and local_domains[fd]) then
                error("the hooks made the sender " .. tostring(ev.from)
                    .. ", which is not in a domain this gateway serves")
            end
            if not federated(td) then
                error("the hooks made the recipient " .. tostring(ev.to)
                    .. ", which is not in a federated partner domain")
            end
        else
            fd, td = sip_domain(ev.from), sip_domain(ev.to)
            if not (td and local_domains[td]) then
                error("the hooks made the recipient " .. tostring(ev.to)
                    .. ", which is not in a domain this gateway serves")
            end
            if not federated(fd) then
                error("the hooks made the sender " .. tostring(ev.from)
                    .. ", which is not in a federated partner domain")
            end
        end
    end

    local function checked_string(ev, k, max)
        local v = ev[k]
        if v == nil then return true end
        return type(v) == "string" and #v <= max and utf8_len(v) ~= nil
    end

    -- route() from the hooks on: on_message and every check after it. The
    -- core also calls it directly (as route_mapped) for a message whose
    -- addresses and body it has itself checked and mapped exactly as route()
    -- does (proxy/policy/route_fast.c), which it may only where the policy
    -- keeps the default mapping.
    local function after_mapping(ev, origin)
        if on_message then
            local r = on_message(ev)
            if rejections[r] then return nil, rawget(r, "condition"), rawget(r, "text") end
            if r ~= nil then
                if type(r) ~= "table" then
                    error("on_message must return the message, nil or reject(...), not " .. type(r))
                end
                ev = r
            end
        end
        for k in pairs(ev) do
            if not EVENT_FIELDS[k] then
                error(format("on_message set '%s' on the message, which is not one of its fields"
                    .. " (%s)", tostring(k), sorted_keys(EVENT_FIELDS)))
            end
        end
        if type(ev.body) ~= "string" then error("on_message left the message without a body") end
        for _, k in ipairs(STRING_FIELDS) do
            if not checked_string(ev, k, MAX_FIELD) then
                error("on_message set " .. k .. " to something that is not a short UTF-8 string")
            end
        end
        if not checked_string(ev, "body", max_body) then
            error(format("on_message set body to something that is not UTF-8 text of at most"
                .. " %d bytes (gateway.max_body)", max_body))
        end
        recheck(ev, origin)
        return ev
    end

    -- The domain checks and address mapping every kind gets: the sender a
    -- partner and the recipient ours, or the other way round. `bare` (for
    -- subscriptions, RFC 6121 §3) drops the resource of the XMPP side.
    -- Returns true with ev.from and ev.to mapped, or nil, condition, text.
    local function map_addresses(ev, bare)
        local from, to
        local origin = ev.origin
        if origin == "xmpp" then
            local fd, td = jid_domain(ev.from), jid_domain(ev.to)
            if not fd or not td then return nil, "jid-malformed", "address is not a valid JID" end
            if not local_domains[td] then
                return nil, "item-not-found", "this gateway does not serve " .. td
            end
            if not federated(fd) then
                return nil, "forbidden", fd .. " is not a federated partner"
            end
            if bare then ev.from, ev.to = ev.from:match("^[^/]*"), ev.to:match("^[^/]*") end
            local err
            from, err = to_sip(ev.from)
            if not from then return nil, err or "jid-malformed", "sender cannot be mapped to SIP" end
            to, err = to_sip(ev.to)
            if not to then return nil, err or "jid-malformed", "recipient cannot be mapped to SIP" end
        elseif origin == "sip" then
            local fd, td = sip_domain(ev.from), sip_domain(ev.to)
            if not fd or not td then return nil, "jid-malformed", "address is not a usable SIP URI" end
            if not local_domains[fd] then
                return nil, "forbidden", "sender is not in a domain this gateway serves"
            end
            if local_domains[td] then
                return nil, "item-not-found", td .. " is served on the SIP side, not through XMPP"
            end
            if not federated(td) then
                return nil, "forbidden", td .. " is not a federated partner"
            end
            local err
            from, err = to_xmpp(ev.from)
            if not from then return nil, err or "jid-malformed", "sender cannot be mapped to XMPP" end
            to, err = to_xmpp(ev.to)
            if not to then return nil, err or "jid-malformed", "recipient cannot be mapped to XMPP" end
            if bare then from, to = from:match("^[^/]*"), to:match("^[^/]*") end
        else
            return nil, "bad-request", "unknown origin"
        end
        ev.from, ev.to = from, to
        return true
    end

    -- The users of a federated partner are trusted (README, "Partners"):
    -- the default presence policy approves their subscription requests.
    local function federated_user(jid)
        local d = jid_domain(jid)
        if not d or local_domains[d] then return false end
        local p = partner(d)
        return p ~= nil and p.type == "federated"
    end

    local mapper = presence.new(decl.presence_map, function(fmt, ...)
        fail(decl.presence_map_where, fmt, ...)
    end)
    decl.mapper = mapper
    local route_presence = presence.router({
        enabled = cfg.presence_enabled, mapper = mapper,
        on_presence = counted(decl.native, "on_presence", rawget(env, "on_presence")),
        on_subscribe = counted(decl.native, "on_subscribe", rawget(env, "on_subscribe")),
        map_addresses = map_addresses, recheck = recheck, drop = DROP,
        federated_user = federated_user,
        rejection = function(r)
            if rejections[r] then return rawget(r, "condition"), rawget(r, "text") end
        end,
    })

    -- Decides for one event; returns the (possibly rewritten) event, or
    -- nil, condition, text.
    local function route(ev)
        local kind = ev.kind
        if kind == "presence" or kind == "subscription" then return route_presence(ev, kind) end
        if kind ~= nil and kind ~= "message" then
            return nil, "bad-request", "unknown kind of event " .. tostring(kind)
        end
        local ok, cond, text = map_addresses(ev, false)
        if not ok then return nil, cond, text end
        -- What arrives is checked here, so that only what on_message did is
        -- blamed on it below (the router refuses oversized bodies before this).
        if type(ev.body) ~= "string" or not utf8_len(ev.body) then
            return nil, "not-acceptable", "message body is not UTF-8 text"
        end
        if #ev.body > max_body then
            return nil, "policy-violation", format("message body exceeds %d bytes", max_body)
        end
        return after_mapping(ev, ev.origin)
    end

    local route_mapped
    if not (rawget(env, "map_to_sip") or rawget(env, "map_to_xmpp")) then
        route_mapped = function(ev) return after_mapping(ev, ev.origin) end
    end
    return cfg, route, route_mapped
end

return M
