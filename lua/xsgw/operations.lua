-- The operations part of gateway{}: what an operator runs the gateway with
-- rather than what it routes. The admin listener (metrics, status, health),
-- the log format, how a reload is triggered and how a stop drains.
-- policy.lua calls M.config with its checking helpers.
local M = {}

M.ADMIN_LISTEN_DEFAULT = "127.0.0.1:9269"

-- h: fail, want, check_keys, parse_hostport (policy.lua's).
function M.config(where, g, cfg, h)
    local fail, want = h.fail, h.want

    -- admin = { listen = "host:port" }, or admin = false for none. On by
    -- default on loopback: scraping it is how an operator sees the gateway,
    -- and loopback keeps it off the network until they choose otherwise.
    local a = g.admin
    if a == false then
        cfg.admin_listen_host, cfg.admin_listen_port = nil, 0
    else
        a = a or {}
        want(where, "gateway.admin", a, "table")
        h.check_keys(where, "gateway.admin", a, { listen = true })
        cfg.admin_listen_host, cfg.admin_listen_port =
            h.parse_hostport(where, "admin.listen", a.listen or M.ADMIN_LISTEN_DEFAULT)
    end

    local log = g.log
    if log ~= nil then
        want(where, "gateway.log", log, "table")
        h.check_keys(where, "gateway.log", log, { bodies = true, format = true })
        want(where, "log.bodies", log.bodies, "boolean", true)
        if log.format ~= nil and log.format ~= "text" and log.format ~= "json" then
            fail(where, 'log.format must be "text" or "json"')
        end
    end
    cfg.log_bodies = log ~= nil and log.bodies == true
    cfg.log_json = log ~= nil and log.format == "json"

    -- reload = { watch = true, debounce = 0.5 }: the policy file and the
    -- files it names are watched, and changes that arrive together (an
    -- editor's rename, a ConfigMap's symlink swap, a certificate and its
    -- key) become one reload after `debounce` seconds of quiet.
    local r = g.reload or {}
    want(where, "gateway.reload", r, "table")
    h.check_keys(where, "gateway.reload", r, { watch = true, debounce = true })
    want(where, "reload.watch", r.watch, "boolean", true)
    cfg.reload_watch = r.watch ~= false
    if r.debounce ~= nil and (type(r.debounce) ~= "number" or r.debounce ~= r.debounce
        or r.debounce < 0.05 or r.debounce > 60) then
        fail(where, "reload.debounce must be a number of seconds from 0.05 to 60")
    end
    cfg.reload_debounce = r.debounce or 0.5

    -- drain = { deadline = 25 }: on SIGTERM, how long the gateway may take
    -- to deliver or answer what it holds before it exits. Below the 30 s an
    -- orchestrator waits by default before it kills.
    local d = g.drain or {}
    want(where, "gateway.drain", d, "table")
    h.check_keys(where, "gateway.drain", d, { deadline = true })
    if d.deadline ~= nil and (type(d.deadline) ~= "number" or d.deadline ~= d.deadline
        or d.deadline < 0 or d.deadline > 3600) then
        fail(where, "drain.deadline must be a number of seconds from 0 to 3600")
    end
    cfg.drain_deadline = d.deadline or 25

    -- instance = "name": this gateway among several sharing one presence
    -- store (presence.store = "redis://..."): its subscriptions are kept
    -- under this name, and another instance adopts them when its heartbeat
    -- stops. Unset: the host name (in Kubernetes, the pod's name).
    if g.instance ~= nil then
        if type(g.instance) ~= "string" or #g.instance < 1 or #g.instance > 128
            or g.instance:find("[^%w_.-]") then
            fail(where, "gateway.instance must be 1 to 128 of the characters A-Z a-z 0-9 _ . -")
        end
        cfg.instance = g.instance
    end
end

return M
