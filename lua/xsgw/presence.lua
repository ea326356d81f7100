-- Presence across the bridge (RFC 8048): the default mapping between the
-- XMPP vocabulary (presence type, <show>, <status>, <priority>) and the SIP
-- one (PIDF <basic> and <note>, RPID activities of RFC 4480, Microsoft
-- availability numbers) as plain tables, the functions that apply them, the
-- checks of a presence or subscription event, and the policy vocabulary for
-- both: gateway.presence and presence_map { ... }.
--
-- A policy replaces any entry with presence_map { table = { key = value } },
-- merged over the defaults below (false removes an entry), and reaches the
-- functions as xsgw.presence.to_xmpp(p) and xsgw.presence.to_sip(p).

local type, pairs, ipairs, tostring, error, next = type, pairs, ipairs, tostring, error, next
local format, concat, sort, utf8_len = string.format, table.concat, table.sort, utf8.len
local mtype = math.type

local M = {}

local SHOWS = { away = true, chat = true, dnd = true, xa = true }
local PRESENCE_TYPES = { available = true, unavailable = true, probe = true }
local SUBSCRIPTION_TYPES = { subscribe = true, subscribed = true, unsubscribe = true,
    unsubscribed = true }
M.SHOWS, M.PRESENCE_TYPES, M.SUBSCRIPTION_TYPES = SHOWS, PRESENCE_TYPES, SUBSCRIPTION_TYPES

-- The defaults. RFC 8048 §6 maps only the least common denominator: an
-- XMPP presence without type (available) is <basic>open</basic>,
-- "unavailable" is closed, and <status> is <note> with its xml:lang; it
-- leaves <show> and rich presence (RFC 4480) to other documents. The tables
-- for those below are this gateway's choices, each with its reason.
M.DEFAULTS = {
    basic_to_type = { open = "available", closed = "unavailable" },
    type_to_basic = { available = "open", unavailable = "closed" },

    -- XMPP <show> (RFC 6121 §4.7.2.1) -> one RPID activity. "chat" (eager
    -- to talk) has no activity: <basic>open</basic> alone says it. "dnd"
    -- is RFC 4480's "busy" (no further details), the activity SIP clients
    -- show as do-not-disturb. RFC 4480 has no "extended away"; "xa" is
    -- "away" too, since any more specific activity (vacation, ...) would
    -- assert something the XMPP user did not say.
    show_to_activity = { away = "away", chat = false, dnd = "busy", xa = "away" },

    -- Every RFC 4480 §3.2 activity -> <show>; false: says nothing about
    -- availability (the presence stays plain available). The first mapped
    -- activity of a document wins. Activities during which the person is
    -- there but must not be interrupted are dnd; short absences are away;
    -- absences of days are xa.
    activity_to_show = {
        away = "away",
        appointment = "away", -- a calendar entry of unknown kind: not at the desk
        breakfast = "away", dinner = "away", lunch = "away", meal = "away",
        ["in-transit"] = "away", travel = "away",
        playing = "away", shopping = "away", spectator = "away", tv = "away",
        worship = "away",
        busy = "dnd", meeting = "dnd", ["on-the-phone"] = "dnd", performance = "dnd",
        presentation = "dnd",
        steering = "dnd", -- driving: reachable, not to be distracted
        holiday = "xa", vacation = "xa", sleeping = "xa", ["permanent-absence"] = "xa",
        working = false, ["looking-for-work"] = false, unknown = false,
    },

    -- Microsoft availability numbers (OCS/Lync/Skype for Business presence
    -- documents), off unless a policy sets ms_availability = true. When on,
    -- a number in a mapped range decides over <basic> and the activities.
    -- Ranges as Lync publishes them: each state's number (3500, 6500, ...)
    -- sits inside its range, the "idle" ranges follow their state.
    -- Be-right-back is a short absence (XMPP away, "temporarily away");
    -- Lync's Away is the longer one, set after the idle timeout (xa, "away
    -- for an extended period", RFC 6121 §4.7.2.1).
    ms_availability = false,
    ms_ranges = {
        { 3000, 4499, "available" },    -- online
        { 4500, 5999, "away" },         -- online, idle
        { 6000, 7499, "dnd" },          -- busy
        { 7500, 8999, "dnd" },          -- busy, idle
        { 9000, 11999, "dnd" },         -- do not disturb
        { 12000, 14999, "away" },       -- be right back
        { 15000, 17999, "xa" },         -- away (and off work)
        { 18000, 99999, "unavailable" }, -- offline
    },
    -- XMPP -> Microsoft number, when ms_availability is on. dnd becomes
    -- Busy, not Do Not Disturb: Lync's DND also silences the IM toasts of
    -- everyone outside the user's workgroup, more than an XMPP user's dnd
    -- asks for.
    show_to_ms = { available = 3500, chat = 3500, away = 12500, xa = 15500, dnd = 6500,
        unavailable = 18500 },

    -- The <priority> of presence that comes from SIP (RFC 6121 §4.7.2.3):
    -- PIDF has none for the presentity, and 0 neither raises nor lowers it
    -- against the XMPP user's own resources.
    priority = 0,
}

local MAX_FIELD, MAX_TEXT, MS_MAX = 4096, 16384, 99999

local function copy(v)
    if type(v) ~= "table" then return v end
    local c = {}
    for k, x in pairs(v) do c[k] = copy(x) end
    return c
end

-- An RFC 4480 activity is an element name: an XML NCName. Names are kept
-- to what the PIDF writer (proxy/presence/pidf.h) puts in a document: ASCII
-- NCNames of at most ACTIVITY_NAME_MAX bytes, at most ACTIVITIES_MAX of
-- them, never "note" (RPID's <note> inside <activities> is no activity).
local ACTIVITY_NAME_MAX, ACTIVITIES_MAX = 32, 8

local function ncname(s)
    return #s <= ACTIVITY_NAME_MAX and s ~= "note" and s:match("^[%a_][%w%.%-_]*$") ~= nil
end

local function valid_activities(s)
    if type(s) ~= "string" or #s > MAX_FIELD then return false end
    local n = 0
    for tok in s:gmatch("[^ ]+") do
        if not ncname(tok) then return false end
        n = n + 1
    end
    return n > 0 and n <= ACTIVITIES_MAX
end
M.valid_activities = valid_activities

-- The names of an arriving activities list that a PIDF document can carry
-- (the parser keeps some the writer refuses: non-ASCII names), at most
-- ACTIVITIES_MAX of them; nil when none is left. One odd name from a
-- presence server must not cost the whole update.
local function usable_activities(s)
    if type(s) ~= "string" then return s end
    local keep = {}
    for tok in s:gmatch("[^ ]+") do
        if #keep < ACTIVITIES_MAX and ncname(tok) then keep[#keep + 1] = tok end
    end
    return keep[1] and concat(keep, " ") or nil
end
M.usable_activities = usable_activities

local function sorted_keys(t)
    local names = {}
    for k in pairs(t) do names[#names + 1] = tostring(k) end
    sort(names)
    return concat(names, ", ")
end

-- A mapper: the functions bound to one set of tables (the defaults merged
-- with a policy's presence_map).
local function mapper(tables)
    local m = { tables = tables }

    local function ms_state(n)
        if not tables.ms_availability or mtype(n) ~= "integer" or n <= 0 then return nil end
        for _, r in ipairs(tables.ms_ranges) do
            if n >= r[1] and n <= r[2] then return r[3] end
        end
        return nil
    end

    -- SIP vocabulary -> XMPP: fills p.type, p.show, p.status and p.priority
    -- from p.basic, p.note, p.activities and p.availability; returns p. A
    -- probe carries no state and is left alone. A document without <basic>
    -- is available when it says anything else (a note, an activity), and
    -- unavailable when it says nothing: an empty PIDF is no presence.
    function m.to_xmpp(p)
        if p.type == "probe" then return p end
        local typ = p.basic ~= nil and tables.basic_to_type[p.basic] or nil
        if typ == nil then
            typ = (p.activities ~= nil or p.note ~= nil) and "available" or "unavailable"
        end
        local show
        local ms = ms_state(p.availability)
        if ms == "available" or ms == "unavailable" then
            typ = ms
        elseif ms then
            typ, show = "available", ms
        end
        if typ == "available" and not ms and type(p.activities) == "string" then
            for a in p.activities:gmatch("%S+") do
                local s = tables.activity_to_show[a]
                if s then
                    show = s
                    break
                end
            end
        end
        p.type = typ
        p.show = typ == "available" and show or nil
        p.status = p.note
        p.priority = tables.priority
        return p
    end

    -- XMPP vocabulary -> SIP: fills p.basic, p.note, p.activities and
    -- p.availability from p.type, p.show and p.status; returns p.
    function m.to_sip(p)
        if p.type == "probe" then return p end
        local typ = p.type or "available"
        local show = typ == "available" and p.show or nil
        p.basic = tables.type_to_basic[typ] or nil
        p.note = p.status
        p.activities = show and tables.show_to_activity[show] or nil
        p.availability = nil
        if tables.ms_availability then
            local n = tables.show_to_ms[typ == "unavailable" and "unavailable" or show or "available"]
            p.availability = n or nil
        end
        return p
    end
    return m
end

M.default = mapper(copy(M.DEFAULTS))

-- presence_map { ... }: validates the overrides and returns the mapper of
-- the defaults merged with them. `fail(fmt, ...)` raises with the
-- declaration's file:line.
local MAP_KEYS = { basic_to_type = true, type_to_basic = true, show_to_activity = true,
    activity_to_show = true, ms_availability = true, ms_ranges = true, show_to_ms = true,
    priority = true }

local function show_or_false(v)
    return v == false or SHOWS[v] ~= nil
end

function M.new(overrides, fail)
    local tables = copy(M.DEFAULTS)
    if overrides == nil then return mapper(tables) end
    if type(overrides) ~= "table" then fail("presence_map takes a table: write presence_map { ... }") end
    for k in pairs(overrides) do
        if not MAP_KEYS[k] then
            fail("unknown key '%s' in presence_map (known: %s)", tostring(k), sorted_keys(MAP_KEYS))
        end
    end
    -- One entry table: the keys it may have (nil: any activity name), the
    -- check of a value, and what the error says a value must be.
    local function entries(name, keys, ok, what)
        local t = overrides[name]
        if t == nil then return end
        if type(t) ~= "table" then fail("presence_map.%s must be a table, not %s", name, type(t)) end
        for k, v in pairs(t) do
            if type(k) ~= "string" or (keys and not keys[k]) or (not keys and not ncname(k)) then
                fail("presence_map.%s: '%s' is not %s", name, tostring(k),
                    keys and ("one of " .. sorted_keys(keys)) or "an activity name")
            end
            if not ok(v) then
                fail("presence_map.%s.%s must be %s, not %s", name, k, what, tostring(v))
            end
            tables[name][k] = v
        end
    end
    entries("basic_to_type", { open = true, closed = true },
        function(v) return v == "available" or v == "unavailable" end,
        '"available" or "unavailable"')
    entries("type_to_basic", { available = true, unavailable = true },
        function(v) return v == "open" or v == "closed" end, '"open" or "closed"')
    entries("show_to_activity", SHOWS,
        function(v) return v == false or (type(v) == "string" and valid_activities(v)) end,
        "activity names separated by spaces (ASCII NCNames, at most " .. ACTIVITIES_MAX
            .. "), or false")
    entries("activity_to_show", nil, show_or_false, "away, chat, dnd, xa or false")
    entries("show_to_ms", { available = true, chat = true, away = true, xa = true, dnd = true,
        unavailable = true },
        function(v) return v == false or (mtype(v) == "integer" and v >= 1 and v <= MS_MAX) end,
        "a whole number from 1 to " .. MS_MAX .. ", or false")
    local ms = overrides.ms_availability
    if ms ~= nil and type(ms) ~= "boolean" then
        fail("presence_map.ms_availability must be true or false, not %s", tostring(ms))
    end
    if ms ~= nil then tables.ms_availability = ms end
    local ranges = overrides.ms_ranges
    if ranges ~= nil then
        if type(ranges) ~= "table" or #ranges == 0 or next(ranges, #ranges) ~= nil then
            fail("presence_map.ms_ranges must be a list of { low, high, state }")
        end
        for i, r in ipairs(ranges) do
            local ok = type(r) == "table" and #r == 3 and mtype(r[1]) == "integer"
                and mtype(r[2]) == "integer" and r[1] >= 1 and r[1] <= r[2] and r[2] <= MS_MAX
                and (SHOWS[r[3]] or r[3] == "available" or r[3] == "unavailable")
            if not ok then
                fail("presence_map.ms_ranges[%d] must be { low, high, state } with 1 <= low <= high"
                    .. " <= %d and state available, unavailable, away, chat, dnd or xa", i, MS_MAX)
            end
            for j = 1, i - 1 do
                local o = ranges[j]
                if r[1] <= o[2] and o[1] <= r[2] then
                    fail("presence_map.ms_ranges[%d] (%d-%d) overlaps ms_ranges[%d] (%d-%d)", i,
                        r[1], r[2], j, o[1], o[2])
                end
            end
        end
        tables.ms_ranges = copy(ranges)
    end
    local pr = overrides.priority
    if pr ~= nil then
        if mtype(pr) ~= "integer" or pr < -128 or pr > 127 then
            fail("presence_map.priority must be a whole number from -128 to 127")
        end
        tables.priority = pr
    end
    return mapper(tables)
end

-- The fields of each kind's event table; a hook may set no others.
M.FIELDS = {
    presence = { kind = true, origin = true, from = true, to = true, id = true, lang = true,
        type = true, show = true, status = true, priority = true, basic = true, note = true,
        activities = true, availability = true, secure = true, auth = true },
    subscription = { kind = true, origin = true, from = true, to = true, id = true,
        lang = true, type = true, status = true, secure = true, auth = true },
}

local function short(v, max)
    return v == nil or (type(v) == "string" and #v <= max and utf8_len(v) ~= nil)
end

-- Checks a presence or subscription event table; returns nil when it is
-- well formed, else a sentence naming the first bad field. `untyped` lets
-- a presence without type through (SIP's, before the mapping gives it one).
function M.check(p, kind, untyped)
    local fields = M.FIELDS[kind]
    for k in pairs(p) do
        if not fields[k] then
            return format("'%s' is not a field of a %s event (%s)", tostring(k), kind,
                sorted_keys(fields))
        end
    end
    if p.kind ~= kind then return "kind must stay \"" .. kind .. "\"" end
    for _, k in ipairs({ "from", "to", "id", "lang" }) do
        if not short(p[k], MAX_FIELD) then
            return k .. " is not a UTF-8 string of at most " .. MAX_FIELD .. " bytes"
        end
    end
    if not short(p.status, MAX_TEXT) then
        return "status is not a UTF-8 string of at most " .. MAX_TEXT .. " bytes"
    end
    if type(p.from) ~= "string" or type(p.to) ~= "string" then return "from and to are required" end
    if kind == "subscription" then
        if not SUBSCRIPTION_TYPES[p.type] then
            return "type " .. tostring(p.type) .. " is not subscribe, subscribed, unsubscribe or"
                .. " unsubscribed"
        end
        return nil
    end
    if not PRESENCE_TYPES[p.type] and not (untyped and p.type == nil) then
        return "type " .. tostring(p.type) .. " is not available, unavailable or probe"
    end
    if p.show ~= nil and not SHOWS[p.show] then
        return "show " .. tostring(p.show) .. " is not away, chat, dnd or xa"
    end
    if p.priority ~= nil and (mtype(p.priority) ~= "integer" or p.priority < -128
        or p.priority > 127) then
        return "priority " .. tostring(p.priority) .. " is not a whole number from -128 to 127"
    end
    if p.basic ~= nil and p.basic ~= "open" and p.basic ~= "closed" then
        return "basic " .. tostring(p.basic) .. " is not open or closed"
    end
    if not short(p.note, MAX_TEXT) then
        return "note is not a UTF-8 string of at most " .. MAX_TEXT .. " bytes"
    end
    if p.activities ~= nil and not valid_activities(p.activities) then
        return "activities is not a list of 1 to " .. ACTIVITIES_MAX .. " activity names (ASCII"
            .. " NCNames of at most " .. ACTIVITY_NAME_MAX .. " bytes, not \"note\") separated by"
            .. " spaces"
    end
    if p.availability ~= nil and (mtype(p.availability) ~= "integer" or p.availability < 0
        or p.availability > MS_MAX) then
        return "availability " .. tostring(p.availability) .. " is not a whole number from 0 to "
            .. MS_MAX
    end
    return nil
end

-- The routing of presence and subscriptions, for policy.lua's route():
-- the checks and mapping of addresses (o.map_addresses, as for messages;
-- bare for subscriptions), the state into the target side's vocabulary
-- (o.mapper), then on_presence or on_subscribe, then the checks of what
-- they left (M.check and o.recheck). o.rejection(r) gives the condition
-- and text of a reject(...) result; o.drop is what drop() returns;
-- o.federated_user(jid) tells whether a JID is a user of a federated
-- partner, whose requests are approved when no on_subscribe decides. The
-- route returns the event, with action ("forward", "approve", "pending")
-- on a subscription request, or nil, condition, text.
local SUB_ACTIONS = { allow = "forward", approve = "approve", pending = "pending" }

function M.router(o)
    local mapper, on_presence, on_subscribe = o.mapper, o.on_presence, o.on_subscribe
    local map_addresses, recheck, rejection, DROP = o.map_addresses, o.recheck, o.rejection, o.drop
    local federated_user = o.federated_user

    local function presence_hook(ev)
        local r = on_presence(ev)
        if r == DROP or r == false then
            return nil, "policy-violation", "dropped by on_presence"
        end
        local cond, text = rejection(r)
        if cond then return nil, cond, text end
        if r == nil or r == true then return ev end
        if type(r) ~= "table" then
            error("on_presence must return the presence, nil, false, drop() or reject(...), not "
                .. type(r))
        end
        return r
    end

    local function subscribe_hook(ev)
        local r = on_subscribe(ev)
        if r == nil or r == true then
            r = "allow"
        elseif r == false then
            r = "deny"
        end
        local cond, text = rejection(r)
        if cond then return nil, cond, text end
        if r == "deny" then return nil, "forbidden", "denied by on_subscribe" end
        local action = SUB_ACTIONS[r]
        if not action then
            error("on_subscribe must return \"allow\", \"approve\", \"pending\", \"deny\","
                .. " true, false, nil or reject(...), not " .. tostring(r))
        end
        return action
    end

    return function(ev, kind)
        if not o.enabled then
            return nil, "service-unavailable", "presence is not carried by this gateway"
        end
        local origin = ev.origin
        -- XMPP presence without a type is available (RFC 6121 §4.7.1); the
        -- SIP side's type comes from the mapping below.
        if kind == "presence" and ev.type == nil and origin == "xmpp" then ev.type = "available" end
        -- What arrives is checked first, so that only what a hook did is
        -- blamed on it below.
        if kind == "presence" then ev.activities = usable_activities(ev.activities) end
        local bad = M.check(ev, kind, origin == "sip")
        if bad then return nil, "bad-request", kind .. ": " .. bad end
        -- Asked while ev.from is still the watcher's JID. Only an XMPP
        -- watcher: a SIP one asks a partner's user, whose own server
        -- answers for them.
        local trusted = kind == "subscription" and ev.type == "subscribe" and origin == "xmpp"
            and not on_subscribe and federated_user(ev.from)
        local ok, cond, text = map_addresses(ev, kind == "subscription")
        if not ok then return nil, cond, text end
        local hook = "the presence mapping"
        local action
        if kind == "presence" then
            if origin == "xmpp" then mapper.to_sip(ev) else mapper.to_xmpp(ev) end
            if on_presence then
                hook = "on_presence"
                ev, cond, text = presence_hook(ev)
                if not ev then return nil, cond, text end
            end
        elseif ev.type == "subscribe" then
            action = trusted and "approve" or "forward"
            if on_subscribe then
                hook = "on_subscribe"
                action, cond, text = subscribe_hook(ev)
                if not action then return nil, cond, text end
            end
        end
        bad = M.check(ev, kind)
        if bad then error(hook .. " left the " .. kind .. " invalid: " .. bad) end
        recheck(ev, origin)
        ev.action = action
        return ev
    end
end

-- gateway.presence: subscriptions and their bounds (README, "presence").
-- Expiries in seconds: RFC 6665 leaves them to the notifier; an hour is
-- what common presence servers grant, a minute the shortest worth a
-- dialog's cost (tests go down to 1 s). The limits keep one large roster,
-- or one partner domain, from filling the gateway or flooding the SIP side.
-- `h` holds policy.lua's fail, want and check_keys.
local PRESENCE_COUNTS = { max_per_user = 1000, max_per_domain = 20000, max_total = 100000 }
local PRESENCE_COUNT_TOP = 100000000
local EXPIRES_TOP = 365 * 86400
local MAX_PATH = 4096

-- A shared store (several instances, one domain): "redis://host:port[/db]
-- [?prefix=name]", parsed as strictly as sub_store_redis.c does. Returns
-- nil when the URL is good, else why not.
local REDIS_GRAMMAR = "redis://host:port[/db][?prefix=name]"
function M.redis_url_error(url)
    local rest = url:sub(#"redis://" + 1)
    if rest:find("^[^/?]*@") then
        return ("%q: no user or password in the URL: %s"):format(url, REDIS_GRAMMAR)
    end
    local host, after
    if rest:sub(1, 1) == "[" then
        host, after = rest:match("^%[([%x:.]+)%](.*)$")
        if not host then return ("%q: a bracketed host must be an IPv6 address"):format(url) end
    else
        host, after = rest:match("^([%w.-]*)(.*)$")
        if host == "" or #host > 253 then
            return ("%q: the host must be a name or address (no user or password): %s")
                :format(url, REDIS_GRAMMAR)
        end
    end
    local port, tail = after:match("^:(%d+)(.*)$")
    if not port then return ("%q: the port is missing: %s"):format(url, REDIS_GRAMMAR) end
    if #port > 5 or port:find("^0") or tonumber(port) > 65535 then
        return ("%q: the port must be a number from 1 to 65535"):format(url)
    end
    if tail:sub(1, 1) == "/" then
        local db, t2 = tail:match("^/(%d+)(.*)$")
        if not db or #db > 2 or (#db > 1 and db:find("^0")) or tonumber(db) > 15 then
            return ("%q: the database must be a number from 0 to 15"):format(url)
        end
        tail = t2
    end
    if tail:sub(1, 1) == "?" then
        local prefix = tail:match("^%?prefix=([%w_.-]+)$")
        if not prefix or #prefix > 64 then
            return ("%q: the only option is prefix=name, 1 to 64 of [A-Za-z0-9_.-]"):format(url)
        end
        tail = ""
    end
    if tail ~= "" then
        return ("%q: unexpected text after the address: %s"):format(url, REDIS_GRAMMAR)
    end
    return nil
end

function M.config(where, p, cfg, h)
    local fail, want = h.fail, h.want
    p = p or {}
    want(where, "gateway.presence", p, "table")
    h.check_keys(where, "gateway.presence", p, { enabled = true, store = true, expires = true,
        min_expires = true, max_expires = true, max_per_user = true, max_per_domain = true,
        max_total = true })
    want(where, "presence.enabled", p.enabled, "boolean", true)
    cfg.presence_enabled = p.enabled ~= false
    if p.store ~= nil then
        want(where, "presence.store", p.store, "string")
        if p.store:find("^redis://") then
            local why = M.redis_url_error(p.store)
            if why then fail(where, "presence.store %s", why) end
        elseif p.store:find("^%a[%w+.-]*://") then
            fail(where, "presence.store: the only store URL is redis://host:port[/db][?prefix=name]"
                .. "; anything else is a file path")
        elseif p.store == "" or #p.store > MAX_PATH or p.store:find("%z") then
            fail(where, "presence.store must be a file path of 1 to %d bytes", MAX_PATH)
        end
        cfg.presence_store = p.store
    end
    local function whole(k, min, max)
        local v = p[k]
        if v ~= nil and (mtype(v) ~= "integer" or v < min or v > max) then
            fail(where, "presence.%s must be a whole number from %d to %d", k, min, max)
        end
        return v
    end
    -- A default never contradicts what the policy set: it gives way to the
    -- explicit values; explicit values that contradict each other are an error.
    local ex = whole("expires", 1, EXPIRES_TOP)
    local mn = whole("min_expires", 1, EXPIRES_TOP)
    local mx = whole("max_expires", 1, EXPIRES_TOP)
    mn = mn or math.min(60, ex or 60, mx or 60)
    mx = mx or math.max(86400, ex or 0, mn)
    if mn > mx then
        fail(where, "presence.min_expires (%d) is larger than presence.max_expires (%d)", mn, mx)
    end
    ex = ex or math.max(mn, math.min(3600, mx))
    if ex < mn then
        fail(where, "presence.expires (%d) is smaller than presence.min_expires (%d)", ex, mn)
    end
    if ex > mx then
        fail(where, "presence.expires (%d) is larger than presence.max_expires (%d)", ex, mx)
    end
    cfg.presence_expires, cfg.presence_min_expires, cfg.presence_max_expires = ex, mn, mx
    local v = {}
    for k, default in pairs(PRESENCE_COUNTS) do
        v[k] = whole(k, 1, PRESENCE_COUNT_TOP) or default
    end
    -- A share cannot be larger than what it is a share of (as for
    -- xmpp.max_streams): a default is brought down, an explicit value is a
    -- mistake.
    local function within(k, of)
        if v[k] <= v[of] then return end
        if p[k] ~= nil then
            fail(where, "presence.%s (%d) is larger than presence.%s (%d)", k, v[k], of, v[of])
        end
        v[k] = v[of]
    end
    within("max_per_domain", "max_total")
    within("max_per_user", "max_per_domain")
    cfg.presence_max_per_user = v.max_per_user
    cfg.presence_max_per_domain = v.max_per_domain
    cfg.presence_max_total = v.max_total
end

return M
