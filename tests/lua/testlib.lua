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

function M.finish()
    print(string.format("%d passed, %d failed", M.passed, M.failed))
    os.exit(M.failed == 0 and 0 or 1)
end

return M
