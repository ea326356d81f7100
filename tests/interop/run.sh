#!/usr/bin/env bash
# Runs the interop scenario groups (t_*.sh) and totals their verdicts.
#   run.sh                      every group
#   run.sh basic reload         the named groups (t_basic.sh, t_reload.sh)
#   run.sh basic.xmpp_to_sip    one scenario: its group runs, only that verdict counts
# Environment: XSGW (gateway binary, default build/xsgw), XS_IT_KEEP=1 keeps temp files,
# XS_IT_GROUP_TIMEOUT (seconds per group: 300, the load group 540, presence and instances 420; it overrides
# them all),
# XS_IT_REQUIRE (see below).
# Scenarios that check only the harness and the peers, not the gateway (harness_checks below),
# are totalled on their own line "harness: N passed, N failed, N skipped". The last line
# counts the gateway scenarios: "N passed, N failed, N skipped". Exits 1 if anything failed.
#
# Where the interop layer can and must run (CI=true, or root), a skipped scenario is a
# failure: a green run must mean the scenarios ran. XS_IT_REQUIRE=1 or 0 overrides.
set -u
dir=$(cd "$(dirname "$0")" && pwd)
all=(env basic errors retrans reload burst kamailio ejabberd sustained sustained_tcp load presence trust instances)
# Groups that need more than 300 s: load runs six minutes of sustained traffic; presence waits
# out subscription expiries and starts ejabberd and Kamailio besides Prosody.
declare -A group_timeout=([load]=540 [presence]=420 [instances]=420)
harness_checks=" env.* ejabberd.prosody_control ejabberd.clean_stop presence.harness_kamailio "

is_harness_check() {
    local h
    for h in $harness_checks; do
        # shellcheck disable=SC2053 # the entries are glob patterns
        [[ $1 == $h ]] && return 0
    done
    return 1
}

require=${XS_IT_REQUIRE:-}
if [ -z "$require" ]; then
    require=0
    case ${CI:-} in "" | 0 | false | no) ;; *) require=1 ;; esac
    [ "$(id -u)" = 0 ] && require=1
fi

declare -A only=() filtered=()
groups=()
for arg in "$@"; do
    arg=${arg#t_}
    arg=${arg%.sh}
    group=${arg%%.*}
    if [ ! -f "$dir/t_$group.sh" ]; then
        echo "run.sh: no scenario group '$group' (groups: ${all[*]})" >&2
        exit 2
    fi
    if [ "$arg" != "$group" ]; then
        only[$arg]=1
        filtered[$group]=1
    fi
    [[ " ${groups[*]} " == *" $group "* ]] || groups+=("$group")
done
[ ${#groups[@]} -gt 0 ] || groups=("${all[@]}")

passed=0 failed=0 skipped=0 h_passed=0 h_failed=0 h_skipped=0
out=$(mktemp /tmp/xsgw-it-run.XXXXXX)
trap 'rm -f "$out"' EXIT
for group in "${groups[@]}"; do
    echo "== $group"
    timeout --signal=TERM --kill-after=20 "${XS_IT_GROUP_TIMEOUT:-${group_timeout[$group]:-300}}" \
        bash "$dir/t_$group.sh" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    counted=0
    while read -r verdict name why; do
        name=${name%:}
        if [ -n "${filtered[$group]:-}" ] && [ -z "${only[$name]:-}" ] &&
            [[ $name != *.sanitizer ]]; then continue; fi
        counted=1
        if [ "$verdict" = SKIP ] && [ "$require" = 1 ]; then
            echo "FAIL $name: skipped ($why), but the interop tests must run here (CI or root)"
            verdict=FAIL
        fi
        if is_harness_check "$name"; then
            case $verdict in
                PASS) h_passed=$((h_passed + 1)) ;;
                FAIL) h_failed=$((h_failed + 1)) ;;
                SKIP) h_skipped=$((h_skipped + 1)) ;;
            esac
            continue
        fi
        case $verdict in
            PASS) passed=$((passed + 1)) ;;
            FAIL) failed=$((failed + 1)) ;;
            SKIP) skipped=$((skipped + 1)) ;;
        esac
    done < <(grep -E '^(PASS|FAIL|SKIP) ' "$out")
    if [ "$rc" != 0 ] && ! grep -q '^FAIL ' "$out"; then
        echo "FAIL $group: the group exited with status $rc without a verdict"
        failed=$((failed + 1))
    elif [ $counted = 0 ] && [ -n "${filtered[$group]:-}" ]; then
        echo "FAIL $group: none of the named scenarios was reported"
        failed=$((failed + 1))
    fi
done
echo "harness: $h_passed passed, $h_failed failed, $h_skipped skipped"
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed = 0 ] && [ $h_failed = 0 ]
