-- A small test runner for plain lua5.4: test(name, fn) records, finish()
-- prints one line per failure and "N passed, N failed", and exits nonzero on
-- failure.
local M = { passed = 0, failed = 0, logged = {} }

function M.test(name, fn)
    local ok, err = pcall(fn)
    if ok then
        M.passed = M.passed + 1
    else
        M.failed = M.failed + 1
        print("FAIL " .. name .. ": " .. tostring(err))
    end
end

function M.eq(got, want, what)
    if got ~= want then
        error(string.format("%s: got %s, want %s", what or "value", tostring(got), tostring(want)), 2)
    end
end

-- Stand-ins for the primitives the C core gives the library (policy.new_env's
-- `native`), so the library runs in the stock interpreter. The real ones are
-- tested from C (tests/unit/test_policy.c).
M.native = {
    trim = function(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end,
    lower = string.lower,
    upper = string.upper,
    starts_with = function(s, p) return s:sub(1, #p) == p end,
    ends_with = function(s, p) return #p == 0 or s:sub(-#p) == p end,
    contains = function(s, p) return s:find(p, 1, true) ~= nil end,
    log = function(level, where, text)
        M.logged[#M.logged + 1] = level .. " " .. where .. " " .. text
    end,
    now = os.time,
    clock = os.clock,
    status_to_cond = function(code)
        local map = { [403] = "forbidden", [404] = "item-not-found", [486] = "recipient-unavailable" }
        return map[code] or (code >= 400 and "bad-request") or nil
    end,
    defined_at = function(f)
        local info = debug.getinfo(f, "S")
        return info.short_src .. ":" .. info.linedefined
    end,
}

-- Loads policy source the way the core does (policy.new_env, the chunk,
-- policy.finish); returns cfg, route or nil, err. The partner matcher stands
-- in for xs_policy_partner: by name or extra domain, then "*". Also returns
-- the environment the policy ran in.
function M.load_policy(src, name)
    local policy = require("xsgw.policy")
    name = name or "test.lua"
    local callsite = function()
        for level = 2, 50 do
            local info = debug.getinfo(level, "Sl")
            if not info then break end
            if info.source == "@" .. name then return name .. ":" .. info.currentline end
        end
        return name
    end
    local cfg_seen
    local native = setmetatable({
        partner = function(domain)
            if not cfg_seen then error("xsgw.partner() can only be called from a hook") end
            local wild
            domain = domain:lower()
            for _, p in ipairs(cfg_seen.partners) do
                if p.domain == domain then return p end
                for _, d in ipairs(p.domains) do
                    if d == domain then return p end
                end
                if p.domain == "*" then wild = p end
            end
            return wild
        end,
    }, { __index = M.native })
    local env, decl = policy.new_env(callsite, native)
    local chunk, err = load(src, "@" .. name, "t", env)
    if not chunk then return nil, err end
    local ok, e = pcall(chunk)
    if not ok then return nil, e end
    local ok2, cfg, route = pcall(policy.finish, env, decl)
    if not ok2 then return nil, cfg end
    cfg_seen = cfg
    return cfg, route, env
end

-- Asserts that src is refused with an error matching pattern.
function M.load_error(src, pattern)
    local cfg, err = M.load_policy(src)
    if cfg then error("policy loaded but should not have: " .. src, 2) end
    if not tostring(err):find(pattern) then
        error(string.format("error %q does not match %q", tostring(err), pattern), 2)
    end
end

function M.finish()
    print(string.format("%d passed, %d failed", M.passed, M.failed))
    os.exit(M.failed == 0 and 0 or 1)
end

return M
