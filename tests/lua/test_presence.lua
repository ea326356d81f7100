-- Presence in the policy, in plain Lua: every row of lua/xsgw/presence.lua's
-- tables both ways, the Microsoft availability table, presence_map
-- overrides and their errors, and the routing of presence and subscription
-- events through on_presence and on_subscribe.
local t = require("testlib")
local presence = require("xsgw.presence")

local function load_policy(src, name)
    return t.load_policy(src, name or "pres.lua")
end

local BASE = [[
gateway {
  domains = { "sip.test" },
  xmpp = { listen = "127.0.0.1:5269" },
  sip = { listen = { "udp:127.0.0.1:5060" }, next_hop = "udp:127.0.0.1:5070" },
}
partner "xmpp.test" { }
]]

local function expect_error(src, pattern)
    local cfg, err = load_policy(src)
    if cfg then error("policy loaded but should not have: " .. src, 2) end
    if not tostring(err):find(pattern, 1, true) then
        error(string.format("error %q does not contain %q", tostring(err), pattern), 2)
    end
end

-- Stands for "absent" in the expectations below.
local NIL = {}

-- Field-by-field equality of the fields that matter, absence included.
local function same(got, want, what)
    for k, v in pairs(want) do
        if v == NIL then v = nil end
        t.eq(got[k], v, (what or "") .. "." .. k)
    end
end

local function xmpp_presence(fields)
    local p = { kind = "presence", origin = "xmpp", from = "alice@xmpp.test/phone",
        to = "bob@sip.test", secure = true, auth = "dialback" }
    for k, v in pairs(fields or {}) do p[k] = v end
    return p
end

local function sip_presence(fields)
    local p = { kind = "presence", origin = "sip", from = "sip:bob@sip.test",
        to = "sip:alice@xmpp.test", priority = 0, secure = false }
    for k, v in pairs(fields or {}) do p[k] = v end
    return p
end

local function sub(origin, typ)
    if origin == "xmpp" then
        return { kind = "subscription", origin = "xmpp", from = "alice@xmpp.test/phone",
            to = "bob@sip.test", type = typ, secure = true }
    end
    return { kind = "subscription", origin = "sip", from = "sip:bob@sip.test;gr=desk",
        to = "sip:alice@xmpp.test", type = typ, secure = false }
end

-- The default tables, every row -------------------------------------------

local m = presence.default

t.test("XMPP -> SIP: type and show, every row", function()
    local rows = {
        { nil, nil, "open", NIL },
        { "available", nil, "open", NIL },
        { "available", "away", "open", "away" },
        { "available", "chat", "open", NIL },
        { "available", "dnd", "open", "busy" },
        { "available", "xa", "open", "away" },
        { "unavailable", nil, "closed", NIL },
        { "unavailable", "dnd", "closed", NIL }, -- show means nothing when offline
    }
    for i, r in ipairs(rows) do
        local p = m.to_sip({ type = r[1], show = r[2], status = "s" .. i })
        same(p, { basic = r[3], activities = r[4], note = "s" .. i, availability = NIL },
            "row " .. i)
    end
    local p = m.to_sip({ type = "probe" })
    same(p, { basic = NIL, activities = NIL, type = "probe" }, "probe")
end)

t.test("SIP -> XMPP: basic, note and every RFC 4480 activity", function()
    same(m.to_xmpp({ basic = "open" }), { type = "available", show = NIL, status = NIL,
        priority = 0 }, "open")
    same(m.to_xmpp({ basic = "closed", note = "gone", activities = "busy" }),
        { type = "unavailable", show = NIL, status = "gone" }, "closed")
    same(m.to_xmpp({}), { type = "unavailable", show = NIL }, "empty document")
    same(m.to_xmpp({ note = "here" }), { type = "available", status = "here" }, "note only")
    same(m.to_xmpp({ type = "probe" }), { type = "probe", show = NIL, priority = NIL }, "probe")
    local want = {
        away = "away", appointment = "away", breakfast = "away", dinner = "away",
        lunch = "away", meal = "away", ["in-transit"] = "away", travel = "away",
        playing = "away", shopping = "away", spectator = "away", tv = "away", worship = "away",
        busy = "dnd", meeting = "dnd", ["on-the-phone"] = "dnd", performance = "dnd",
        presentation = "dnd", steering = "dnd",
        holiday = "xa", vacation = "xa", sleeping = "xa", ["permanent-absence"] = "xa",
        working = NIL, ["looking-for-work"] = NIL, unknown = NIL, ["x-vendor-thing"] = NIL,
    }
    local n = 0
    for activity, show in pairs(want) do
        same(m.to_xmpp({ basic = "open", activities = activity }),
            { type = "available", show = show }, activity)
        n = n + 1
    end
    -- Every activity the table knows is in the list above.
    for activity in pairs(presence.DEFAULTS.activity_to_show) do
        if want[activity] == nil then error("activity " .. activity .. " is not tested") end
    end
    t.eq(n, 27, "activities tested")
end)

t.test("activities at the limits pass", function()
    local _, route = assert(load_policy(BASE))
    local eight = "a b c d e f g " .. string.rep("z", 32)
    local r = assert(route(sip_presence({ basic = "open", activities = eight })))
    same(r, { activities = eight, type = "available", show = NIL })
    r = assert(route(sip_presence({ basic = "open", activities = "_x.y-1  busy" })))
    same(r, { show = "dnd" }, "two spaces between names")
end)

t.test("arriving activities a document cannot carry are left out, not refused", function()
    local _, route = assert(load_policy(BASE))
    local cases = {
        { "a:b busy", "busy", "dnd" },
        { "", NIL, NIL },
        { "a b c d e f g h i", "a b c d e f g h", NIL },
        { string.rep("a", 33) .. " vacation", "vacation", "xa" },
        { "note away", "away", "away" },
        { "caf\195\169 meeting", "meeting", "dnd" },
        { "away\tbusy", NIL, NIL },
    }
    for i, c in ipairs(cases) do
        local r = assert(route(sip_presence({ basic = "open", activities = c[1] })))
        same(r, { activities = c[2], show = c[3], type = "available" }, "case " .. i)
    end
end)

t.test("the first mapped activity wins", function()
    same(m.to_xmpp({ basic = "open", activities = "working meeting vacation" }),
        { show = "dnd" })
    same(m.to_xmpp({ basic = "open", activities = "unknown x-y" }), { show = NIL })
    same(m.to_xmpp({ basic = "open", activities = "vacation busy" }), { show = "xa" })
end)

t.test("the Microsoft numbers are ignored unless enabled", function()
    same(m.to_xmpp({ basic = "open", availability = 6500 }), { type = "available", show = NIL })
    same(m.to_sip({ type = "available", show = "dnd" }), { availability = NIL })
end)

-- presence_map overrides and the Microsoft table --------------------------

t.test("presence_map replaces entries and enables the Microsoft table", function()
    local cfg, route = assert(load_policy(BASE .. [[
presence_map {
  activity_to_show = { meeting = "xa", working = "chat", ["x-lync-inacall"] = "dnd" },
  show_to_activity = { chat = "working", xa = "vacation" },
  ms_availability = true,
  priority = 5,
}
]]))
    assert(cfg)
    local r = assert(route(sip_presence({ basic = "open", activities = "meeting" })))
    same(r, { type = "available", show = "xa", priority = 5 })
    r = assert(route(sip_presence({ basic = "open", activities = "x-lync-inacall" })))
    same(r, { show = "dnd" })
    r = assert(route(sip_presence({ basic = "open", activities = "busy" })))
    same(r, { show = "dnd" }, "untouched entries stay")
    r = assert(route(xmpp_presence({ type = "available", show = "chat" })))
    same(r, { basic = "open", activities = "working", availability = 3500 })
    r = assert(route(xmpp_presence({ type = "available", show = "xa" })))
    same(r, { activities = "vacation", availability = 15500 })
end)

t.test("the Microsoft table, every range and every show", function()
    local _, route = assert(load_policy(BASE .. "presence_map { ms_availability = true }\n"))
    local rows = {
        { 3000, "available", NIL }, { 3500, "available", NIL }, { 4499, "available", NIL },
        { 4500, "available", "away" }, { 5999, "available", "away" },
        { 6000, "available", "dnd" }, { 6500, "available", "dnd" },
        { 7500, "available", "dnd" }, { 8999, "available", "dnd" },
        { 9000, "available", "dnd" }, { 9500, "available", "dnd" },
        { 12000, "available", "away" }, { 12500, "available", "away" },
        { 15000, "available", "xa" }, { 15500, "available", "xa" }, { 17999, "available", "xa" },
        { 18000, "unavailable", NIL }, { 18500, "unavailable", NIL },
    }
    for _, r in ipairs(rows) do
        -- The number decides over <basic> and the activities.
        local out = assert(route(sip_presence({ basic = "closed", activities = "vacation",
            availability = r[1] })))
        same(out, { type = r[2], show = r[3] }, tostring(r[1]))
    end
    -- Below the first range: no number, the document decides.
    same(assert(route(sip_presence({ basic = "open", activities = "meeting",
        availability = 100 }))), { type = "available", show = "dnd" }, "100")
    local back = { { "available", nil, 3500 }, { "available", "chat", 3500 },
        { "available", "away", 12500 }, { "available", "xa", 15500 },
        { "available", "dnd", 6500 }, { "unavailable", nil, 18500 },
        { "unavailable", "away", 18500 } }
    for _, b in ipairs(back) do
        local out = assert(route(xmpp_presence({ type = b[1], show = b[2] })))
        same(out, { availability = b[3] }, b[1] .. "/" .. tostring(b[2]))
    end
end)

t.test("presence_map ms_ranges replaces the ranges", function()
    local _, route = assert(load_policy(BASE .. [[
presence_map { ms_availability = true, ms_ranges = { { 1, 100, "chat" }, { 200, 300, "unavailable" } } }
]]))
    same(assert(route(sip_presence({ basic = "closed", availability = 50 }))),
        { type = "available", show = "chat" })
    same(assert(route(sip_presence({ basic = "open", availability = 250 }))),
        { type = "unavailable" })
    same(assert(route(sip_presence({ basic = "open", availability = 3500 }))),
        { type = "available", show = NIL }, "outside every range")
end)

t.test("presence_map errors name the line", function()
    expect_error(BASE .. "presence_map { activity_to_shw = {} }\n",
        "pres.lua:7: unknown key 'activity_to_shw' in presence_map (known: activity_to_show,"
        .. " basic_to_type, ms_availability, ms_ranges, priority, show_to_activity, show_to_ms,"
        .. " type_to_basic)")
    expect_error(BASE .. "presence_map { activity_to_show = { meeting = 'busy' } }\n",
        "pres.lua:7: presence_map.activity_to_show.meeting must be away, chat, dnd, xa or false,"
        .. " not busy")
    expect_error(BASE .. "presence_map { activity_to_show = { ['a b'] = 'dnd' } }\n",
        "pres.lua:7: presence_map.activity_to_show: 'a b' is not an activity name")
    expect_error(BASE .. "presence_map { show_to_activity = { online = 'away' } }\n",
        "presence_map.show_to_activity: 'online' is not one of away, chat, dnd, xa")
    expect_error(BASE .. "presence_map { show_to_activity = { dnd = 'busy:x' } }\n",
        "presence_map.show_to_activity.dnd must be activity names separated by spaces (ASCII"
        .. " NCNames, at most 8), or false")
    expect_error(BASE .. "presence_map { activity_to_show = { note = 'dnd' } }\n",
        "presence_map.activity_to_show: 'note' is not an activity name")
    expect_error(BASE .. "presence_map { basic_to_type = { open = 'online' } }\n",
        'presence_map.basic_to_type.open must be "available" or "unavailable", not online')
    expect_error(BASE .. "presence_map { type_to_basic = { probe = 'open' } }\n",
        "presence_map.type_to_basic: 'probe' is not one of available, unavailable")
    expect_error(BASE .. "presence_map { ms_availability = 'yes' }\n",
        "presence_map.ms_availability must be true or false, not yes")
    expect_error(BASE .. "presence_map { show_to_ms = { dnd = 100000 } }\n",
        "presence_map.show_to_ms.dnd must be a whole number from 1 to 99999, or false")
    expect_error(BASE .. "presence_map { ms_ranges = { { 10, 5, 'dnd' } } }\n",
        "pres.lua:7: presence_map.ms_ranges[1] must be { low, high, state }")
    expect_error(BASE .. "presence_map { ms_ranges = { { 1, 10, 'busy' } } }\n",
        "presence_map.ms_ranges[1] must be { low, high, state }")
    expect_error(BASE .. "presence_map { ms_ranges = { { 1, 10, 'dnd' }, { 10, 20, 'xa' } } }\n",
        "pres.lua:7: presence_map.ms_ranges[2] (10-20) overlaps ms_ranges[1] (1-10)")
    expect_error(BASE .. "presence_map { ms_ranges = {} }\n",
        "presence_map.ms_ranges must be a list of { low, high, state }")
    expect_error(BASE .. "presence_map { priority = 128 }\n",
        "presence_map.priority must be a whole number from -128 to 127")
    expect_error(BASE .. "presence_map { }\npresence_map { }\n",
        "pres.lua:8: presence_map given twice (first at pres.lua:7)")
    expect_error(BASE .. "presence_map(1)\n", "pres.lua:7: presence_map{...} must be a table")
    expect_error(BASE .. "presence_map({}, {})\n", "pres.lua:7: presence_map takes one table")
end)

t.test("xsgw.presence.to_xmpp and to_sip use the policy's tables", function()
    local _, route = assert(load_policy(BASE .. [[
presence_map { activity_to_show = { meeting = "xa" } }
function on_presence(p)
  if p.origin == "sip" then
    p.activities = "meeting"
    return xsgw.presence.to_xmpp(p)
  end
  p.show = "dnd"
  return xsgw.presence.to_sip(p)
end
]]))
    same(assert(route(sip_presence({ basic = "open", activities = "busy" }))), { show = "xa" })
    same(assert(route(xmpp_presence({ type = "available" }))),
        { show = "dnd", activities = "busy", basic = "open" })
end)

-- Routing -----------------------------------------------------------------

t.test("presence from XMPP: addresses and vocabulary mapped", function()
    local _, route = assert(load_policy(BASE))
    local r = assert(route(xmpp_presence({ type = "available", show = "dnd", status = "busy!",
        lang = "en", priority = 5, id = "p1" })))
    same(r, { from = "sip:alice@xmpp.test;gr=phone", to = "sip:bob@sip.test", basic = "open",
        note = "busy!", activities = "busy", lang = "en", id = "p1", show = "dnd",
        status = "busy!", priority = 5, type = "available", action = NIL })
    -- No type is available.
    r = assert(route(xmpp_presence({ status = "here" })))
    same(r, { type = "available", basic = "open", note = "here" })
    r = assert(route(xmpp_presence({ type = "probe" })))
    same(r, { type = "probe", basic = NIL, from = "sip:alice@xmpp.test;gr=phone" })
end)

t.test("presence from SIP: addresses and vocabulary mapped", function()
    local _, route = assert(load_policy(BASE))
    local r = assert(route(sip_presence({ basic = "open", note = "in a call",
        activities = "on-the-phone", lang = "de" })))
    same(r, { from = "bob@sip.test", to = "alice@xmpp.test", type = "available", show = "dnd",
        status = "in a call", priority = 0, lang = "de" })
    r = assert(route(sip_presence({ from = "sip:bob@sip.test;gr=desk", basic = "closed" })))
    same(r, { from = "bob@sip.test/desk", type = "unavailable", show = NIL })
end)

t.test("presence and subscriptions get the message's domain checks", function()
    local _, route = assert(load_policy(BASE))
    local cases = {
        { xmpp_presence({ from = "eve@stranger.test" }), "forbidden",
            "stranger.test is not a federated partner" },
        { xmpp_presence({ to = "bob@elsewhere.test" }), "item-not-found",
            "this gateway does not serve elsewhere.test" },
        { xmpp_presence({ from = "bad jid@xmpp.test" }), "jid-malformed" },
        { sip_presence({ from = "sip:mallory@evil.test" }), "forbidden",
            "sender is not in a domain this gateway serves" },
        { sip_presence({ to = "sip:carol@stranger.test" }), "forbidden",
            "stranger.test is not a federated partner" },
        { sip_presence({ to = "sip:carol@sip.test" }), "item-not-found" },
        { (function() local s = sub("xmpp", "subscribe") s.from = "eve@stranger.test" return s end)(),
            "forbidden" },
        { (function() local s = sub("sip", "subscribe") s.to = "sip:x@stranger.test" return s end)(),
            "forbidden" },
    }
    for i, c in ipairs(cases) do
        local r, cond, text = route(c[1])
        t.eq(r, nil, "case " .. i)
        t.eq(cond, c[2], "case " .. i .. " cond")
        if c[3] then t.eq(text, c[3], "case " .. i .. " text") end
    end
end)

t.test("arriving presence that is not well formed is a bad request", function()
    local _, route = assert(load_policy(BASE))
    local cases = {
        { xmpp_presence({ type = "subscribe" }), "presence: type subscribe is not available," },
        { xmpp_presence({ show = "busy" }), "presence: show busy is not away, chat, dnd or xa" },
        { xmpp_presence({ priority = 200 }), "priority 200 is not a whole number" },
        { xmpp_presence({ status = "\255" }), "status is not a UTF-8 string" },
        { sip_presence({ basic = "half" }), "basic half is not open or closed" },
        { sip_presence({ activities = 5 }), "activities is not a list of 1 to 8 activity"
            .. ' names (ASCII NCNames of at most 32 bytes, not "note") separated by spaces' },
        { sip_presence({ availability = -1 }), "availability -1 is not a whole number" },
        { sub("xmpp", "available"), "subscription: type available is not subscribe," },
        { sub("sip", nil), "subscription: type nil is not subscribe" },
    }
    for i, c in ipairs(cases) do
        local r, cond, text = route(c[1])
        t.eq(r, nil, "case " .. i)
        t.eq(cond, "bad-request", "case " .. i .. " cond")
        if not tostring(text):find(c[2], 1, true) then
            error(string.format("case %d: %q lacks %q", i, tostring(text), c[2]))
        end
    end
    -- An unknown kind is refused too.
    local _, cond = route({ kind = "gossip", origin = "xmpp", from = "a@xmpp.test",
        to = "b@sip.test" })
    t.eq(cond, "bad-request", "unknown kind")
end)

t.test("subscriptions use bare addresses both ways", function()
    local _, route = assert(load_policy(BASE))
    local r = assert(route(sub("xmpp", "subscribe")))
    same(r, { from = "sip:alice@xmpp.test", to = "sip:bob@sip.test", action = "forward",
        type = "subscribe" })
    r = assert(route(sub("sip", "subscribed")))
    same(r, { from = "bob@sip.test", to = "alice@xmpp.test", action = NIL })
    for _, typ in ipairs({ "unsubscribe", "unsubscribed" }) do
        r = assert(route(sub("xmpp", typ)))
        same(r, { type = typ, action = NIL })
    end
end)

t.test("presence disabled: refused with service-unavailable, messages still pass", function()
    local src = BASE:gsub("domains = ", "presence = { enabled = false },\n  domains = ")
    local cfg, route = assert(load_policy(src))
    t.eq(cfg.presence_enabled, false, "enabled")
    for _, ev in ipairs({ xmpp_presence(), sip_presence({ basic = "open" }),
        sub("xmpp", "subscribe"), sub("sip", "unsubscribe") }) do
        local r, cond, text = route(ev)
        t.eq(r, nil, "refused")
        t.eq(cond, "service-unavailable", "cond")
        t.eq(text, "presence is not carried by this gateway", "text")
    end
    assert(route({ kind = "message", origin = "xmpp", from = "a@xmpp.test", to = "b@sip.test",
        body = "hi" }))
end)

-- Hooks -------------------------------------------------------------------

t.test("on_presence rewrites, replaces, keeps, drops and rejects", function()
    local _, route = assert(load_policy(BASE .. [[
function on_presence(p)
  if p.status == "rewrite" then p.status = "rewritten" p.show = "xa" return p end
  if p.status == "replace" then
    return { kind = "presence", origin = p.origin, from = p.from, to = p.to,
             type = "unavailable", basic = "closed" }
  end
  if p.status == "keep" then return nil end
  if p.status == "drop" then return drop() end
  if p.status == "false" then return false end
  if p.status == "reject" then return reject("not-allowed", "no presence for you") end
  if p.note == "secret" then p.note = nil end
  return p
end
]]))
    local r = assert(route(xmpp_presence({ status = "rewrite" })))
    same(r, { status = "rewritten", show = "xa", note = "rewrite", basic = "open" },
        "the mapping ran before the hook")
    r = assert(route(xmpp_presence({ status = "replace" })))
    same(r, { type = "unavailable", basic = "closed", status = NIL, from = "sip:alice@xmpp.test;gr=phone" })
    r = assert(route(xmpp_presence({ status = "keep" })))
    same(r, { status = "keep", note = "keep" })
    for _, s in ipairs({ "drop", "false" }) do
        local x, cond, text = route(xmpp_presence({ status = s }))
        t.eq(x, nil, s)
        t.eq(cond, "policy-violation", s .. " cond")
        t.eq(text, "dropped by on_presence", s .. " text")
    end
    local x, cond, text = route(xmpp_presence({ status = "reject" }))
    t.eq(x, nil, "reject")
    t.eq(cond, "not-allowed", "reject cond")
    t.eq(text, "no presence for you", "reject text")
    r = assert(route(sip_presence({ basic = "open", note = "secret" })))
    same(r, { note = NIL, status = "secret" }, "the XMPP side reads status, set before the hook")
end)

t.test("on_presence errors name the hook", function()
    local function err_of(body, ev)
        local _, route = assert(load_policy(BASE .. "function on_presence(p)\n" .. body .. "\nend\n"))
        local ok, e = pcall(route, ev or xmpp_presence())
        if ok then error("no error for: " .. body, 2) end
        return tostring(e)
    end
    local function has(s, needle)
        if not s:find(needle, 1, true) then error(string.format("%q lacks %q", s, needle), 2) end
    end
    has(err_of("p.show = 'busy' return p"),
        "on_presence left the presence invalid: show busy is not away, chat, dnd or xa")
    has(err_of("p.type = 'subscribe' return p"), "on_presence left the presence invalid: type subscribe")
    has(err_of("p.priority = 1.5 return p"), "priority 1.5 is not a whole number from -128 to 127")
    has(err_of("p.priority = -129 return p"), "priority -129 is not")
    has(err_of("p.basic = 'on' return p"), "basic on is not open or closed")
    has(err_of("p.activities = 'x y:z' return p"), "activities is not a list of 1 to 8 activity names")
    has(err_of("p.availability = 100000 return p"), "availability 100000 is not a whole number")
    has(err_of("p.status = string.rep('x', 20000) return p"), "status is not a UTF-8 string")
    has(err_of("p.note = '\\255' return p"), "note is not a UTF-8 string")
    has(err_of("p.body = 'x' return p"), "'body' is not a field of a presence event")
    has(err_of("p.kind = 'message' return p"), "kind must stay \"presence\"")
    has(err_of("return 42"), "on_presence must return the presence, nil, false, drop() or reject(...), not number")
    has(err_of("p.to = 'sip:bob@elsewhere.test' return p"),
        "the hooks made the recipient sip:bob@elsewhere.test, which is not in a domain this gateway serves")
    has(err_of("error('boom')"), "boom")
end)

t.test("on_subscribe: allow, approve, pending, deny, reject", function()
    local _, route = assert(load_policy(BASE .. [[
function on_subscribe(s)
  local user = s.from:match("^sip:([^@]+)") or s.from:match("^([^@]+)")
  if user == "allow" then return "allow" end
  if user == "yes" then return true end
  if user == "nothing" then return nil end
  if user == "approve" then return "approve" end
  if user == "pending" then return "pending" end
  if user == "deny" then return "deny" end
  if user == "no" then return false end
  if user == "reject" then return reject("not-authorized", "ask the admin") end
  if user == "rejectnum" then return reject(404) end
  if user == "bad" then return "maybe" end
  if user == "worse" then s.type = "available" return "allow" end
  return "allow"
end
]]))
    local function run(user, origin)
        local s = sub(origin or "xmpp", "subscribe")
        if (origin or "xmpp") == "xmpp" then s.from = user .. "@xmpp.test" else s.from = "sip:" .. user .. "@sip.test" end
        return route(s)
    end
    for user, action in pairs({ allow = "forward", yes = "forward", nothing = "forward",
        approve = "approve", pending = "pending" }) do
        same(assert(run(user)), { action = action }, user)
        same(assert(run(user, "sip")), { action = action }, user .. " from sip")
    end
    for user, want in pairs({ deny = { "forbidden", "denied by on_subscribe" },
        no = { "forbidden", "denied by on_subscribe" },
        reject = { "not-authorized", "ask the admin" }, rejectnum = { "item-not-found" } }) do
        local r, cond, text = run(user)
        t.eq(r, nil, user)
        t.eq(cond, want[1], user .. " cond")
        t.eq(text, want[2], user .. " text")
    end
    local ok, e = pcall(run, "bad")
    t.eq(ok, false, "bad answer")
    assert(tostring(e):find('on_subscribe must return "allow", "approve", "pending", "deny",'
        .. ' true, false, nil or reject(...), not maybe', 1, true), e)
    ok, e = pcall(run, "worse")
    t.eq(ok, false, "hook changed the type")
    assert(tostring(e):find("on_subscribe left the subscription invalid: type available is not"
        .. " subscribe", 1, true), e)
end)

t.test("federated partners: their users' subscriptions are approved by default", function()
    local TRUST = BASE:gsub('domains = ', 'tls = { ca = "/etc/ssl/certs" },\n  domains = ')
        .. 'partner "fed.test" { type = "federated", domains = { "conf.fed.test" } }\n'
        .. 'partner "ver.test" { type = "verified" }\n'
    local function from(route, jid, typ)
        local s = sub("xmpp", typ or "subscribe")
        s.from = jid
        return assert(route(s))
    end
    local _, route = assert(load_policy(TRUST))
    same(from(route, "carol@fed.test/laptop"), { action = "approve", from = "sip:carol@fed.test",
        to = "sip:bob@sip.test" }, "federated")
    same(from(route, "dave@Conf.Fed.test"), { action = "approve" }, "federated, extra domain")
    same(from(route, "alice@xmpp.test"), { action = "forward" }, "unverified")
    same(from(route, "vic@ver.test"), { action = "forward" }, "verified")
    for _, typ in ipairs({ "subscribed", "unsubscribe", "unsubscribed" }) do
        same(from(route, "carol@fed.test", typ), { action = NIL }, typ)
    end
    -- A SIP watcher's request goes to the partner's user, who answers it.
    local s = sub("sip", "subscribe")
    s.to = "sip:carol@fed.test"
    same(assert(route(s)), { action = "forward", to = "carol@fed.test" }, "SIP watcher")
    -- Not a partner at all: refused as before.
    local r, cond = route((function() local e = sub("xmpp", "subscribe")
        e.from = "eve@stranger.test" return e end)())
    t.eq(r, nil, "stranger")
    t.eq(cond, "forbidden", "stranger cond")

    -- partner "*" federated trusts everyone not named; named ones keep theirs.
    _, route = assert(load_policy(TRUST .. 'partner "*" { type = "federated" }\n'))
    same(from(route, "eve@anywhere.test"), { action = "approve" }, "federated *")
    same(from(route, "alice@xmpp.test"), { action = "forward" }, "named unverified")

    -- A policy with on_subscribe decides itself, and can ask the type.
    _, route = assert(load_policy(TRUST .. [[
function on_subscribe(s)
  local d = s.from:match("@([^;>]+)")
  if xsgw.partner(d).type == "federated" then return "pending" end
  return "allow"
end
]]))
    same(from(route, "carol@fed.test"), { action = "pending" }, "hook on federated")
    same(from(route, "alice@xmpp.test"), { action = "forward" }, "hook on unverified")
end)

t.test("on_subscribe runs for subscribe only; on_presence for presence only", function()
    local _, route = assert(load_policy(BASE .. [[
calls = 0
function on_subscribe(s) calls = calls + 1 return "deny" end
function on_presence(p) error("on_presence called for " .. p.kind) end
]]))
    for _, typ in ipairs({ "subscribed", "unsubscribe", "unsubscribed" }) do
        assert(route(sub("xmpp", typ)))
    end
    local _, cond = route(sub("xmpp", "subscribe"))
    t.eq(cond, "forbidden", "subscribe went through on_subscribe")
end)

t.test("a misspelled presence hook is caught", function()
    expect_error(BASE .. "function on_presense(p) return p end\n",
        "on_presense is not a hook this gateway calls (hooks: map_to_sip, map_to_xmpp,"
        .. " on_message, on_presence, on_subscribe)")
    expect_error(BASE .. "on_subscribe = 5\n", "on_subscribe must be a function, not number")
end)

t.finish()
