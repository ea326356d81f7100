#!/usr/bin/env bash
# Builds xsgw the way a packager or the Docker image does (Release, no tests,
# warnings as errors here because CI controls the compiler), installs it with
# `cmake --install` into a private prefix, and checks that the installed xsgw
# finds its Lua library and default policy there without any flag.
# Usage: check_install.sh BUILD-DIR. Ends with "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$top/build-release}
prefix=$dir/prefix
passed=0 failed=0 skipped=0
ok() { echo "PASS $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

rm -rf "$prefix"
if ! cmake -S "$top" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DXS_BUILD_TESTS=OFF -DXS_WERROR=ON \
    -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null ||
    ! cmake --build "$dir" -j"$(nproc)" --target xsgw ||
    ! cmake --install "$dir" >/dev/null; then
    bad install.release_build "the Release build or its install failed"
    echo "$passed passed, $failed failed, $skipped skipped"
    exit 1
fi
ok install.release_build

bin=$prefix/bin/xsgw
lua=$prefix/share/xsgw/lua
pol=$prefix/etc/xsgw/policies/default.lua
# Run from / so that nothing relative to the source tree can be found by accident.
help=$(cd / && "$bin" --help 2>&1)
if [[ "$help" == *"(default $pol)"* ]] && [[ "$help" == *"(default $lua)"* ]] &&
    [ -f "$pol" ] && [ -f "$lua/xsgw/policy.lua" ]; then
    ok install.default_paths
else
    bad install.default_paths "--help names other defaults, or they were not installed: $help"
fi

out=$(cd / && "$bin" --check "$pol" 2>&1)
if [ $? = 0 ]; then
    ok install.check_without_flags
else
    bad install.check_without_flags "xsgw --check $pol (no --lua-dir) said: $out"
fi

# The default policy listens on 127.0.0.1:5269 and :5060, so the gateway runs in a
# private network namespace where nothing else holds them.
inner='ip link set lo up && cd / && exec timeout -s TERM 5 "$0" --log-level info'
if [ "$(id -u)" = 0 ]; then
    run=(unshare --net -- bash -c "$inner" "$bin")
elif unshare --net --map-root-user -- true 2>/dev/null; then
    run=(unshare --net --map-root-user -- bash -c "$inner" "$bin")
else
    run=()
fi
if [ ${#run[@]} = 0 ]; then
    echo "SKIP install.start_without_flags: no network namespace available"
    skipped=$((skipped + 1))
else
    out=$("${run[@]}" 2>&1)
    if grep -q "ev=gateway.ready policy=$pol " <<<"$out"; then
        ok install.start_without_flags
    else
        bad install.start_without_flags "xsgw without flags did not get ready: $(tail -n 3 <<<"$out")"
    fi
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed = 0 ]
