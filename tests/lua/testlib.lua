-- A small test runner for plain lua5.4: test(name, fn) records, finish()
-- prints one line per failure and "N passed, N failed", and exits nonzero on
-- failure.
local M = { passed = 0, failed = 0 }

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

function M.finish()
    print(string.format("%d passed, %d failed", M.passed, M.failed))
    os.exit(M.failed == 0 and 0 or 1)
end

return M
