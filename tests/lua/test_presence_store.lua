-- presence.store as a shared Redis store and gateway.instance (issue 9):
-- the URLs accepted, exactly what they become, and every refusal with its
-- reason; a file path keeps working as before.
local t = require("testlib")

local function gw(extra)
    return [[
gateway {
  domains = { "sip.test" },
  xmpp = { listen = "127.0.0.1:5269" },
  sip = { listen = { "udp:127.0.0.1:5060" }, next_hop = "udp:127.0.0.1:5070" },
]] .. (extra or "") .. [[
}
]]
end

local function store(url)
    return gw(("presence = { store = %q },\n"):format(url))
end

t.test("Redis URLs accepted as given", function()
    for _, url in ipairs({
        "redis://127.0.0.1:6379",
        "redis://redis:6379/0",
        "redis://redis.svc.cluster.local:6380/15",
        "redis://[::1]:6379/2?prefix=gw-a.test_1",
        "redis://10.0.0.5:1?prefix=x",
    }) do
        local cfg = assert(t.load_policy(store(url)))
        t.eq(cfg.presence_store, url, url)
    end
end)

t.test("a file path is still a file path", function()
    t.eq(assert(t.load_policy(store("/var/lib/xsgw/presence.db"))).presence_store,
        "/var/lib/xsgw/presence.db")
    t.eq(assert(t.load_policy(store("redis.db"))).presence_store, "redis.db")
end)

t.test("Redis URLs refused with the reason", function()
    local cases = {
        { "redis://", "the host must be a name or address" },
        { "redis://:6379", "the host must be a name or address" },
        { "redis://user:pw@host:6379", "no user or password" },
        { "redis://pw@host:6379", "no user or password" },
        { "redis://host", "the port is missing" },
        { "redis://host:", "the port is missing" },
        { "redis://host:0", "the port must be a number from 1 to 65535" },
        { "redis://host:65536", "the port must be a number from 1 to 65535" },
        { "redis://host:06379", "the port must be a number" },
        { "redis://host:6379/16", "the database must be a number from 0 to 15" },
        { "redis://host:6379/01", "the database must be a number" },
        { "redis://host:6379/", "the database must be a number" },
        { "redis://host:6379/a", "the database must be a number" },
        { "redis://host:6379?db=1", "the only option is prefix=name" },
        { "redis://host:6379?prefix=", "the only option is prefix=name" },
        { "redis://host:6379?prefix=a b", "the only option is prefix=name" },
        { "redis://host:6379?prefix=a:b", "the only option is prefix=name" },
        { "redis://host:6379?prefix=" .. ("p"):rep(65), "the only option is prefix=name" },
        { "redis://host:6379?prefix=a&x=1", "the only option is prefix=name" },
        { "redis://host:6379#frag", "unexpected text after the address" },
        { "redis://host:6379/1/2", "unexpected text after the address" },
        { "redis://[zz]:6379", "a bracketed host must be an IPv6 address" },
        { "redis://" .. ("h"):rep(254) .. ":6379", "the host must be a name or address" },
        { "rediss://host:6379", "the only store URL is redis://" },
        { "unix:///run/redis.sock", "the only store URL is redis://" },
    }
    for _, c in ipairs(cases) do
        t.load_error(store(c[1]), "presence.store.*" .. c[2]:gsub("%p", "%%%0"))
    end
end)

t.test("gateway.instance: default none (the host name), a name, refusals", function()
    t.eq(assert(t.load_policy(gw())).instance, nil)
    t.eq(assert(t.load_policy(gw('instance = "xsgw-7d9f-abc.1_x",\n'))).instance,
        "xsgw-7d9f-abc.1_x")
    t.eq(assert(t.load_policy(gw(('instance = "%s",\n'):format(("a"):rep(128))))).instance,
        ("a"):rep(128))
    local why = "gateway.instance must be 1 to 128 of the characters"
    t.load_error(gw('instance = "",\n'), why)
    t.load_error(gw(('instance = "%s",\n'):format(("a"):rep(129))), why)
    t.load_error(gw('instance = "a b",\n'), why)
    t.load_error(gw('instance = "a:b",\n'), why)
    t.load_error(gw('instance = 7,\n'), why)
end)

t.finish()
