#!/bin/sh
# Old gateway against new, with one xsbench binary, in the same run: each
# load is run on the old one and then at once on the new one, so both see the
# same machine. Prints the xsbench-summary lines; keeps every report (text and
# JSON) in OUT.
#
# usage: tests/bench/compare.sh XSBENCH OLD_XSGW OLD_LUA_DIR NEW_XSGW NEW_LUA_DIR OUT [quick]
#
# "quick" runs each load for 5 s instead of 40 (a check of the script, not a
# measurement). Exit status: 0 when every run ended as expected for a
# comparison (every message delivered once, or refused with an answer).
set -u
if [ $# -lt 6 ]; then
    sed -n '2,12p' "$0"
    exit 2
fi
X=$1 OLD_GW=$2 OLD_LUA=$3 NEW_GW=$4 NEW_LUA=$5 OUT=$6
D=40
[ "${7:-}" = quick ] && D=5
mkdir -p "$OUT" || exit 1
status=0

run() { # name, xsbench options...
    name=$1
    shift
    for g in old new; do
        if [ $g = old ]; then gw=$OLD_GW lua=$OLD_LUA; else gw=$NEW_GW lua=$NEW_LUA; fi
        "$X" --gateway "$gw" --lua-dir "$lua" "$@" --json "$OUT/$g-$name.json" \
            >"$OUT/$g-$name.txt" 2>&1
        rc=$?
        echo "$g $name exit=$rc: $*"
        grep '^xsbench-summary' "$OUT/$g-$name.txt"
        [ $rc = 0 ] || [ $rc = 3 ] || status=1
    done
}

run x2s-udp-4000 -r 4000 --duration $D --direction xmpp-sip --sip-udp
run x2s-udp-8000 -r 8000 --duration $D --direction xmpp-sip --sip-udp
run x2s-tcp-4000 -r 4000 --duration $D --direction xmpp-sip
run x2s-tcp-8000 -r 8000 --duration $D --direction xmpp-sip
# A SIP endpoint that answers after 5 s: the gateway holds 20,000 transactions.
run x2s-udp-4000-delay5000 -r 4000 --duration $D --direction xmpp-sip --sip-udp --sip-delay 5000
run s2x-udp-4000 -r 4000 --duration $D --direction sip-xmpp --sip-udp
run s2x-tcp-4000 -r 4000 --duration $D --direction sip-xmpp
# A peer without XEP-0198: the SIP final response waits out the error grace.
run s2x-udp-4000-no-sm -r 4000 --duration $D --direction sip-xmpp --sip-udp --no-sm
run x2s-tls-8000 -r 8000 --duration $D --direction xmpp-sip --tls
# Peak figures, closed loop.
run closed-x2s-tcp -n 200000 --window 100 --direction xmpp-sip
run closed-x2s-udp -n 200000 --window 100 --direction xmpp-sip --sip-udp
run closed-x2s-tls -n 200000 --window 100 --direction xmpp-sip --tls
# SIP->XMPP completes on the final response, which waits out the error grace
# when the peer has no XEP-0198 (the bench's has not): grace 0 on both sides
# measures the gateway's work, not its timer.
run closed-s2x-tcp -n 200000 --window 100 --direction sip-xmpp --error-grace 0
run closed-s2x-tls -n 200000 --window 100 --direction sip-xmpp --error-grace 0 --tls
exit $status
