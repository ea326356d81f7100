-- The operations part of gateway{} (lua/xsgw/operations.lua): admin
-- listener, log format, reload watching and the drain deadline, with their
-- defaults and every refusal.
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

t.test("defaults: admin on loopback, text logs, watched reload, 25 s drain", function()
    local cfg = assert(t.load_policy(gw()))
    t.eq(cfg.admin_listen_host, "127.0.0.1")
    t.eq(cfg.admin_listen_port, 9269)
    t.eq(cfg.log_json, false)
    t.eq(cfg.log_bodies, false)
    t.eq(cfg.reload_watch, true)
    t.eq(cfg.reload_debounce, 0.5)
    t.eq(cfg.drain_deadline, 25)
end)

t.test("every key set", function()
    local cfg = assert(t.load_policy(gw([[
  admin = { listen = "[::1]:9100" },
  log = { format = "json", bodies = true },
  reload = { watch = false, debounce = 2 },
  drain = { deadline = 0 },
]])))
    t.eq(cfg.admin_listen_host, "::1")
    t.eq(cfg.admin_listen_port, 9100)
    t.eq(cfg.log_json, true)
    t.eq(cfg.log_bodies, true)
    t.eq(cfg.reload_watch, false)
    t.eq(cfg.reload_debounce, 2)
    t.eq(cfg.drain_deadline, 0)
end)

t.test("admin = false turns the listener off", function()
    local cfg = assert(t.load_policy(gw("admin = false,\n")))
    t.eq(cfg.admin_listen_host, nil)
    t.eq(cfg.admin_listen_port, 0)
end)

t.test("refusals name the key", function()
    t.load_error(gw('admin = { listen = "9269" },\n'), "admin.listen '9269' is not host:port")
    t.load_error(gw('admin = { listen = "127.0.0.1:0" },\n'), "admin.listen")
    t.load_error(gw('admin = { port = 1 },\n'), "gateway.admin")
    t.load_error(gw('admin = true,\n'), "gateway.admin")
    t.load_error(gw('log = { format = "xml" },\n'), 'log.format must be "text" or "json"')
    t.load_error(gw('log = { level = "debug" },\n'), "gateway.log")
    t.load_error(gw('reload = { watch = "yes" },\n'), "reload.watch")
    t.load_error(gw('reload = { debounce = 0 },\n'), "reload.debounce must be a number of seconds")
    t.load_error(gw('reload = { debounce = 0/0 },\n'), "reload.debounce")
    t.load_error(gw('reload = { every = 1 },\n'), "gateway.reload")
    t.load_error(gw('drain = { deadline = -1 },\n'), "drain.deadline must be a number of seconds")
    t.load_error(gw('drain = { deadline = 3601 },\n'), "drain.deadline")
    t.load_error(gw('drain = 5,\n'), "gateway.drain")
end)

t.finish()
