#!/usr/bin/env bash
# The whole test suite: unit and Lua tests (ctest) in a normal build and
# again under ASan/UBSan, the Release build installed and started without
# flags, a short run of every libFuzzer target, and the interop tests against
# real Prosody, Kamailio, sipp and slixmpp in network namespaces (these need
# root; without it they are counted as skipped), the gateway-centred groups
# again against the ASan/UBSan build. Then line coverage per file, as
# information.
# Installs what is missing first (as root; otherwise it needs the build
# dependencies and counts what the missing test packages would run as skipped).
# Ends with one line that adds up every test of every stage:
# "tests: N passed, N failed, N skipped". The interop harness's self-checks
# are totalled apart, on the line "harness: N passed, N failed, N skipped".
#
# Under CI (CI=true) or as root every test must run: a skipped test fails the
# suite, so a green run cannot hide a layer that did not run. XS_IT_REQUIRE=0
# or 1 overrides that choice.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
fuzz_seconds=${XS_FUZZ_SECONDS:-20}
tests_passed=0 tests_failed=0 tests_skipped=0
harness_passed=0 harness_failed=0 harness_skipped=0
require=${XS_IT_REQUIRE:-}
if [ -z "$require" ]; then
    require=0
    case ${CI:-} in "" | 0 | false | no) ;; *) require=1 ;; esac
    [ "$(id -u)" = 0 ] && require=1
fi
export XS_IT_REQUIRE=$require
failures=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Adds the counts a stage printed: ctest's "N tests failed out of M" and its
# skipped list, or the harnesses' own "N passed, N failed, N skipped" line.
count() {
    local line total nfail nskip p f s
    line=$(grep -E '^harness: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        read -r _ p _ f _ s _ <<<"$(tr -d ',' <<<"$line")"
        harness_passed=$((harness_passed + p))
        harness_failed=$((harness_failed + f))
        harness_skipped=$((harness_skipped + s))
    fi
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        nfail=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
        total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
        nskip=$(grep -cE '^\s+[0-9]+ - .*\(Skipped\)' "$log" || true)
        tests_failed=$((tests_failed + nfail))
        tests_skipped=$((tests_skipped + nskip))
        tests_passed=$((tests_passed + total - nfail - nskip))
        return
    fi
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        read -r p _ f _ s _ <<<"$(tr -d ',' <<<"$line")"
        tests_passed=$((tests_passed + p))
        tests_failed=$((tests_failed + f))
        tests_skipped=$((tests_skipped + ${s:-0}))
    fi
}

stage() {  # stage NAME COMMAND...: runs one stage, shows and counts its output
    local name=$1; shift
    echo "=== $name"
    "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    count
    if [ "$rc" -ne 0 ]; then
        failures+=("$name")
        grep -qE 'tests? failed out of|^[0-9]+ passed, [0-9]+ failed' "$log" ||
            tests_failed=$((tests_failed + 1))
    fi
}

"$top/scripts/deps.sh" test || { echo "tests: 0 passed, 1 failed, 0 skipped"; exit 1; }

build_and_ctest() {  # build_and_ctest DIR CMAKE-ARGS...
    local dir=$1; shift
    cmake -S "$top" -B "$dir" -DXS_WERROR=ON -DXS_DEV_PATHS=ON "$@" >/dev/null &&
        cmake --build "$dir" -j"$(nproc)" &&
        (cd "$dir" && ctest --output-on-failure -j"$(nproc)" --timeout 300)
}

stage "unit+lua tests" build_and_ctest "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The build users and the Docker image make (Release, tests off), installed and run from
# its prefix without flags.
stage "release build and install" "$top/scripts/check_install.sh" "$top/build-release"
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
stage "unit+lua tests under ASan/UBSan" build_and_ctest "$top/build-asan" \
    -DCMAKE_BUILD_TYPE=Debug -DXS_SANITIZE=ON

fuzz_all() {
    if ! command -v clang >/dev/null; then
        echo "SKIP fuzz targets: clang is not installed (scripts/deps.sh test)"
        echo "0 passed, 0 failed, 1 skipped"
        return 0
    fi
    cmake -S "$top" -B "$top/build-fuzz" -DCMAKE_C_COMPILER=clang -DXS_FUZZ=ON -DXS_WERROR=ON \
        -DXS_DEV_PATHS=ON \
        -DCMAKE_BUILD_TYPE=Debug >/dev/null &&
        cmake --build "$top/build-fuzz" -j"$(nproc)" || return 1
    local p=0 f=0 t
    for t in "$top"/build-fuzz/tests/fuzz_*; do
        [ -x "$t" ] || continue
        echo "--- $(basename "$t") for ${fuzz_seconds}s"
        mkdir -p "$top/build-fuzz/corpus/$(basename "$t")"
        # fuzz_<stem>_...: tests/fuzz/<stem>_seeds (read, never written) and
        # <stem>.dict start it off where they exist.
        local stem dict=() seeds=()
        stem=$(basename "$t")
        stem=${stem#fuzz_}
        stem=${stem%%_*}
        [ -f "$top/tests/fuzz/$stem.dict" ] && dict=(-dict="$top/tests/fuzz/$stem.dict")
        [ -d "$top/tests/fuzz/${stem}_seeds" ] && seeds=("$top/tests/fuzz/${stem}_seeds")
        # The first directory is the one libFuzzer writes to: the build's.
        if "$t" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 "${dict[@]}" \
            "$top/build-fuzz/corpus/$(basename "$t")" "${seeds[@]}" \
            >"$top/build-fuzz/$(basename "$t").log" 2>&1; then
            p=$((p + 1))
            grep -E '^(Done|#[0-9]+.*DONE)' "$top/build-fuzz/$(basename "$t").log" | tail -n 1
        else
            f=$((f + 1))
            tail -n 40 "$top/build-fuzz/$(basename "$t").log"
        fi
    done
    echo "$p passed, $f failed"
    [ "$f" -eq 0 ]
}
stage "fuzz targets (${fuzz_seconds}s each)" fuzz_all

stage "interop tests" env XSGW="$top/build/xsgw" "$top/tests/interop/run.sh"
# Real DNS, TLS with Prosody, bursts and reloads under the sanitizers too: the groups that
# exercise the gateway itself (env checks only the peers; retrans, kamailio and ejabberd
# add little gateway code and minutes). A sanitizer report fails the group
# ("<group>.sanitizer").
stage "interop tests under ASan/UBSan" env XSGW="$top/build-asan/xsgw" \
    "$top/tests/interop/run.sh" basic errors reload burst

# Line coverage per file of proxy/ after the unit, Lua and gateway tests (gcc --coverage,
# gcov), as information: it counts no test and fails nothing. xsgw links the same xscore
# objects, so the gateway test's processes add to the same counters.
coverage_report() {
    local dir=$top/build-cov
    cmake -S "$top" -B "$dir" -DXS_COVERAGE=ON -DXS_DEV_PATHS=ON -DCMAKE_BUILD_TYPE=Debug \
        >/dev/null &&
        cmake --build "$dir" -j"$(nproc)" >/dev/null || { echo "coverage build failed"; return; }
    find "$dir" -name '*.gcda' -delete
    (cd "$dir" && ctest -j"$(nproc)" --timeout 300 >"$dir/ctest.log" 2>&1) ||
        echo "(some tests failed in the coverage build; see $dir/ctest.log)"
    (cd "$dir" && find CMakeFiles/xscore.dir CMakeFiles/xsgw.dir -name '*.gcda' -print0 |
        xargs -0 gcov -n 2>/dev/null) | awk -v top="$top/" '
        /^File / { f = $2; gsub(/\047/, "", f); sub(top, "", f); next }
        /^Lines executed:/ && f ~ /^proxy\/.*\.c$/ && !(f in seen) {
            seen[f] = 1; pct = $2; sub(/^executed:/, "", pct); sub(/%$/, "", pct); n = $4
            printf "%-32s %6.1f%% of %5d lines\n", f, pct, n
            hit += pct * n / 100; all += n; f = "" }
        END { if (all) printf "%-32s %6.1f%% of %5d lines\n", "total", 100 * hit / all, all }' |
        sort
}
echo "=== line coverage of proxy/ (unit, Lua and gateway tests; information only)"
coverage_report

echo
if [ "$require" = 1 ] && [ $((tests_skipped + harness_skipped)) -gt 0 ]; then
    failures+=("skipped tests where every test must run (CI or root)")
fi
[ ${#failures[@]} -gt 0 ] && echo "failed stages: ${failures[*]}"
echo "harness: $harness_passed passed, $harness_failed failed, $harness_skipped skipped"
echo "tests: $tests_passed passed, $tests_failed failed, $tests_skipped skipped"
[ ${#failures[@]} -eq 0 ]
