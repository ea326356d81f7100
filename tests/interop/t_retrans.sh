#!/usr/bin/env bash
# Story 5: a retransmitted SIP MESSAGE (same Via branch, Call-ID and CSeq, byte for byte,
# over UDP) reaches alice exactly once, and every copy gets the same final response.
set -u
. "$(dirname "$0")/lib.sh"

it_setup retrans retrans.after_final retrans.immediate

it_world udp:127.0.0.4:5070
tab=$'\t'

# it_retrans NAME MODE: send two copies in MODE, check alice got one and the finals agree.
it_retrans() {
    local name=$1 mode=$2 got finals
    if ! it_alice_listen "alice-$mode" 2 6; then
        it_fail "$name" "alice could not log in"
        return
    fi
    nsx "$PY" "$IT_DIR/sip_raw.py" --mode "$mode" --copies 2 --wait 10 \
        --bind "127.0.0.5:$3" --body "once only $mode" >"$IT_TMP/raw-$mode.out" 2>&1
    # alice waits for a second copy until her timeout: only one may arrive.
    it_wait_exit "alice-$mode" 20
    got=$(it_xmpp_summary "alice-$mode")
    finals=$(grep '"done"' "$IT_TMP/raw-$mode.out" | "$PY" -c '
import json, sys
print(" ".join(str(c) for c in json.loads(sys.stdin.read())["finals"]))')
    local want_finals='^200 200$'
    # Copies that arrive before the final response are absorbed by the server transaction
    # (RFC 3261 17.2.2), so in immediate mode one final response or two equal ones are right.
    [ "$mode" = immediate ] && want_finals='^200( 200)?$'
    if [ "$got" = "bob@sip.test${tab}normal${tab}-${tab}once only $mode" ] &&
        [[ "$finals" =~ $want_finals ]]; then
        it_pass "$name"
    else
        it_fail "$name" "alice got [$(echo "$got" | tr '\n' '|')], final responses [$finals]"
    fi
}

it_retrans retrans.after_final after-final 5082
it_retrans retrans.immediate immediate 5083
