#!/usr/bin/env bash
# The whole test suite: unit and Lua tests (ctest) in a normal build and
# again under ASan/UBSan, a short run of every libFuzzer target, and the
# interop tests against real Prosody, Kamailio, sipp and slixmpp in network
# namespaces (these need root; without it they are counted as skipped).
# Installs what is missing first. Ends with "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
fuzz_seconds=${XS_FUZZ_SECONDS:-20}
passed=0 failed=0 skipped=0
failures=()

stage() {  # stage NAME COMMAND...: runs one stage, counts it
    local name=$1; shift
    echo "=== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

"$top/scripts/deps.sh" test || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }

build_and_ctest() {  # build_and_ctest DIR CMAKE-ARGS...
    local dir=$1; shift
    cmake -S "$top" -B "$dir" "$@" >/dev/null &&
        cmake --build "$dir" -j"$(nproc)" &&
        (cd "$dir" && ctest --output-on-failure -j"$(nproc)" --timeout 300)
}

stage "unit+lua tests" build_and_ctest "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
stage "unit+lua tests under ASan/UBSan" \
    env ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    bash -c "$(declare -f build_and_ctest); top='$top'; build_and_ctest '$top/build-asan' -DCMAKE_BUILD_TYPE=Debug -DXS_SANITIZE=ON"

fuzz_all() {
    cmake -S "$top" -B "$top/build-fuzz" -DCMAKE_C_COMPILER=clang -DXS_FUZZ=ON \
        -DCMAKE_BUILD_TYPE=Debug >/dev/null &&
        cmake --build "$top/build-fuzz" -j"$(nproc)" || return 1
    local ok=0 f
    for f in "$top"/build-fuzz/tests/fuzz_*; do
        [ -x "$f" ] || continue
        echo "--- $(basename "$f") for ${fuzz_seconds}s"
        mkdir -p "$top/build-fuzz/corpus/$(basename "$f")"
        "$f" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -print_final_stats=0 \
            "$top/build-fuzz/corpus/$(basename "$f")" 2>&1 | tail -n 3 || ok=1
    done
    return $ok
}
stage "fuzz targets (${fuzz_seconds}s each)" fuzz_all

interop() {
    XSGW="$top/build/xsgw" "$top/tests/interop/run.sh"
    local rc=$?
    [ $rc -eq 0 ]
}
if [ -x "$top/tests/interop/run.sh" ]; then
    stage "interop tests" interop
else
    echo "=== interop tests: tests/interop/run.sh missing"
    failed=$((failed + 1)); failures+=("interop tests")
fi

echo
[ ${#failures[@]} -gt 0 ] && echo "failed stages: ${failures[*]}"
echo "stages: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
