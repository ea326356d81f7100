# shellcheck shell=bash
# Sustained SIP -> XMPP load for t_sustained.sh and t_ejabberd.sh (source after lib.sh).
# sipp (bob, 127.0.0.5) sends RATE MESSAGEs a second for SECONDS through the gateway to an
# XMPP user, over UDP (or TCP); the test then checks that every message arrived exactly
# once, that every MESSAGE got 200, and that sipp retransmitted none (Timer E fires only
# when no final response came within T1, 500 ms), and reports the final-response latency.

# sus_uac NAME TO RATE SECONDS TRANSPORT: runs the UAC in the foreground, bounded to
# SECONDS + 40 s; its trace is $IT_TMP/NAME.msg. Bodies are "sus <call number>".
sus_uac() {
    local name=$1 to=$2 rate=$3 secs=$4 transport=$5 count=$(($3 * $4)) t=u1
    [ "$transport" = tcp ] && t=t1
    sed -e "s/@WAIT@/8000/" -e "s/@SEQ@/ [call_number]/" "$IT_DIR/sipp/uac.xml" \
        >"$IT_TMP/$name.xml"
    nsx timeout $((secs + 40)) sipp -sf "$IT_TMP/$name.xml" 127.0.0.3:5060 -i 127.0.0.5 \
        -p 5080 -t "$t" -key from sip:bob@sip.test -key to "$to" -key body sus \
        -m "$count" -r "$rate" -rp 1000 -l 2000 -timeout $((secs + 30))s -nostdin \
        -buff_size 4194304 -trace_msg -message_file "$IT_TMP/$name.msg" \
        >"$IT_TMP/$name.out" 2>&1
}

# sus_verdict SCENARIO UAC LISTENER COUNT: PASS when the listener got "sus 1".."sus COUNT"
# once each, the UAC got COUNT final responses, all 200, and retransmitted nothing. Logs
# the figures either way (the latency line is what the issue asks to report).
sus_verdict() {
    local scenario=$1 uac=$2 rx=$3 count=$4 got stats
    got=$(it_xmpp_summary "$rx" | cut -f4 | sed -n 's/^sus \([0-9]*\)$/\1/p' |
        awk '{ if (seen[$1]++) dup++; else uniq++ } END { printf "unique=%d duplicates=%d", uniq, dup }')
    stats=$("$PY" "$IT_DIR/sip_latency.py" "$IT_TMP/$uac.msg")
    it_log "$scenario: xmpp user got $got of $count; sipp: $stats"
    local want_stats
    want_stats=$("$PY" -c '
import json, sys
s = json.loads(sys.argv[1]); n = int(sys.argv[2])
ok = s["sent"] == n and s["answered"] == n and s["codes"] == {"200": n} and s["retransmissions"] == 0
print("ok" if ok else "sent=%d answered=%d codes=%s retransmissions=%d" % (
    s["sent"], s["answered"], s["codes"], s["retransmissions"]))' "$stats" "$count")
    if [ "$got" = "unique=$count duplicates=0" ] && [ "$want_stats" = ok ]; then
        it_pass "$scenario"
    else
        it_fail "$scenario" "xmpp user got $got of $count; sipp $want_stats"
    fi
}
