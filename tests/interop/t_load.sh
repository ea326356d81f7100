#!/usr/bin/env bash
# Issue 6 under load with real peers, XMPP -> SIP, and an overload run.
#
# load.{prosody,ejabberd}_to_sip_{udp,tcp}: a user of Prosody (alice@xmpp.test; Prosody 0.12
# with mod_smacks, which does not ask for XEP-0198 on its own dialback stream to the gateway)
# or of ejabberd (ella@ejab.test) sends XS_IT_LOAD_RATE chats a second (500) for
# XS_IT_LOAD_SECONDS (60), paced by the clock (xmpp_client.py --rate), through its server's
# s2s stream to the gateway, which sends them as MESSAGEs to a sipp UAS over UDP or TCP.
# PASS: the UAS got every body exactly once (a body in two transactions is a duplicate;
# copies of one transaction are retransmissions, of which there must be none in the ordinary
# case either), the sender got no error, the gateway logged no refusal or failure, and the
# client offered at least 80% of the rate. The log line gives
# the rate offered and received and the delivery latency p50/p99/max (send time in the body
# to the UAS's arrival time).
#
# load.backpressure_xmpp_to_sip: alice and ella together send XS_IT_BP_RATE chats a second each
# (300) for XS_IT_BP_SECONDS (15) through a gateway with sip.max_transactions = 100 to a UAS
# that answers each MESSAGE after 200 ms: about 100 / 0.2 = 500 a second at best, and the
# gateway stops reading its inbound streams at 75 in flight, so it cannot keep up with 600.
# PASS: it held its two inbound TLS streams (ev=s2s.in.hold) and the held/resumed lines
# alternate, from held to resumed (or released: a hold ends after 1 s at most); every chat
# reached the UAS once, or came back to its sender as resource-constraint type='wait' (delivered
# + refused = sent); no duplicate, no retransmission. The servers keep what the gateway does not
# read: the log line shows how late the last chats arrived.
#
# load.overload_sip_to_xmpp: sipp sends MESSAGEs to ella@ejab.test through a gateway whose
# policy allows XS_IT_OVL_MAX (50) transactions in flight. Toward ejabberd (no Stream
# Management) each one waits out the error grace (0.25 s), so the gateway carries at most
# 50 / 0.25 = 200 a second. Offered: XS_IT_OVL_RATE (400) a second for XS_IT_OVL_SECONDS
# (30), then 100 a second for 15 s. PASS: every MESSAGE was delivered once with 200, or
# refused with 503 and Retry-After: 5 and not delivered; delivered + refused = sent; the
# overload phase had refusals and the gateway's ev=sip.overload lines count exactly as many
# (refused_in, reason "too many pending transactions"); the recovery phase was delivered
# completely, all 200; sipp retransmitted nothing in either phase: refused or not, every
# MESSAGE had its final response within T1. (The gateway gives up waiting for ejabberd's
# answer to <enable/> 10 s after the warm-up, inside the overload phase; that transition
# must not delay anything either.)
#
# Bounded: about 7 minutes in all (run.sh gives this group 540 s).
set -u
. "$(dirname "$0")/lib.sh"

it_setup load load.prosody_to_sip_udp load.ejabberd_to_sip_udp load.prosody_to_sip_tcp \
    load.ejabberd_to_sip_tcp load.backpressure_xmpp_to_sip load.overload_sip_to_xmpp

. "$(dirname "$0")/ejabberd.sh"
trap ej_exit EXIT

RATE=${XS_IT_LOAD_RATE:-500}
SECS=${XS_IT_LOAD_SECONDS:-60}
N=$((RATE * SECS))
OVL_MAX=${XS_IT_OVL_MAX:-50}
OVL_RATE=${XS_IT_OVL_RATE:-400}
OVL_SECS=${XS_IT_OVL_SECONDS:-30}
REC_RATE=100
REC_SECS=15
BP_MAX=100
BP_DELAY=200
BP_RATE=${XS_IT_BP_RATE:-300}
BP_SECS=${XS_IT_BP_SECONDS:-15}
PARTNERS="partner \"xmpp.test\" { tls = \"required\", dialback = true } partner \"$EJ_DOMAIN\" { tls = \"required\", dialback = true }"
# ejabberd's debug log writes every element of every stream: at these rates it would cost
# more CPU than the gateway.
export XS_IT_EJABBERD_LOGLEVEL=${XS_IT_EJABBERD_LOGLEVEL:-info}

it_have_gateway || it_fail_rest "no gateway binary at $XSGW (build it or set XSGW)"
if ! ej_installed; then
    for s in "${IT_SCENARIOS[@]}"; do it_skip "$s" "ejabberd is not installed (deps.sh)"; done
    exit 0
fi

# The UAS takes bursts in a 4 MB receive buffer (as t_burst.sh); the kernel clamps it to
# net.core.rmem_max, host-wide: raise it for the group and put it back at the end.
rmem_want=4194304
rmem_have=$(cat /proc/sys/net/core/rmem_max)
if [ "$rmem_have" -lt "$rmem_want" ]; then
    if sysctl -qw net.core.rmem_max="$rmem_want"; then
        IT_ON_EXIT+=("sysctl -qw net.core.rmem_max=$rmem_have")
    else
        it_fail_rest "net.core.rmem_max is $rmem_have and cannot be raised to $rmem_want"
    fi
fi

ej_dns_start || it_fail_rest "dnsmasq did not answer for $EJ_DOMAIN on 127.0.0.53"
it_prosody_start || it_fail_rest "Prosody did not start (prosody.log, prosodyctl.log)"
ej_start || it_fail_rest "ejabberd did not start or register failed (ejabberd.log, ejabberdctl.log)"

# load_gateway NAME NEXT-HOP [SIP-SETTINGS]: (re)starts the gateway with both partners and
# NEXT-HOP, SIP-SETTINGS added to its sip table. The previous run's log is kept as
# xsgw-NAME.err of that run; the new one is xsgw.err.
GW_RUN=
load_gateway() {
    local name=$1 hop=$2 extra=${3:-}
    if [ -n "$GW_RUN" ]; then
        it_stop xsgw
        mv "$IT_TMP/xsgw.err" "$IT_TMP/xsgw-$GW_RUN.err"
    fi
    GW_RUN=$name
    it_policy "$IT_TMP/policy-$name.lua" policy.lua.in "$hop" "$PARTNERS"
    if [ -n "$extra" ]; then
        sed -i "s|trusted = { \"127.0.0.0/8\" } }|trusted = { \"127.0.0.0/8\" }, $extra }|" \
            "$IT_TMP/policy-$name.lua"
        grep -qF "$extra" "$IT_TMP/policy-$name.lua" || return 1
    fi
    it_gateway_start "$IT_TMP/policy-$name.lua"
}

# load_uas NAME TRANSPORT MAX-CALLS SECONDS [DELAY-MS]: sipp UAS on 127.0.0.4:5070 answering
# 200 to every MESSAGE (DELAY-MS after it came, sipp/uas-slow.xml), trace in NAME.msg; exits
# after MAX-CALLS or SECONDS.
load_uas() {
    local name=$1 t=u1 max=$3 secs=$4 delay=${5:-}
    [ "$2" = tcp ] && t=t1
    if [ -n "$delay" ]; then
        sed -e "s/@DELAY@/$delay/" "$IT_DIR/sipp/uas-slow.xml" >"$IT_TMP/$name.xml"
    else
        sed -e "s/@STATUS@/200/" -e "s/@REASON@/OK/" -e "s/@HOLD@/2000/" \
            "$IT_DIR/sipp/uas.xml" >"$IT_TMP/$name.xml"
    fi
    it_start "$name" sipp -sf "$IT_TMP/$name.xml" -i 127.0.0.4 -p 5070 -t "$t" -m "$max" \
        -timeout "${secs}s" -nostdin -trace_msg -message_file "$IT_TMP/$name.msg" \
        -max_recv_loops 10000 -buff_size 4194304 -l 10000
    it_wait_listen 127.0.0.4 5070 10
}

# load_client NAME WHO ARGS...: xmpp_client.py as alice (Prosody) or ella (ejabberd).
load_client() {
    local name=$1 who=$2
    shift 2
    if [ "$who" = prosody ]; then
        it_xmpp "$name" "$@"
    else
        ej_xmpp "$name" "$@"
    fi
}

# load_run PEER TRANSPORT: one load.PEER_to_sip_TRANSPORT scenario against the gateway that
# runs (its next hop speaks TRANSPORT).
load_run() {
    local peer=$1 tp=$2 scenario="load.${1}_to_sip_$2" sent stats errors gwlines verdict
    # Warm up: the first chat sets up the server's s2s stream to the gateway (SRV, STARTTLS,
    # dialback, Stream Management with Prosody); that is not what this measures.
    load_uas "warm-$peer-$tp" "$tp" 1 30 || { it_fail "$scenario" "the UAS did not start"; return; }
    load_client "warm-$peer-$tp-x" "$peer" --to bob@sip.test --send 1 --body "warm" --linger 1 \
        --timeout 25
    if ! it_wait_exit "warm-$peer-$tp" 30; then
        it_stop "warm-$peer-$tp-x"
        it_fail "$scenario" "the warm-up chat did not reach the UAS"
        return
    fi
    it_stop "warm-$peer-$tp-x"
    local before
    before=$(wc -l <"$IT_TMP/xsgw.err")
    load_uas "uas-$peer-$tp" "$tp" "$N" $((SECS + 60)) ||
        { it_fail "$scenario" "the UAS did not start"; return; }
    local start=$SECONDS
    load_client "tx-$peer-$tp" "$peer" --to bob@sip.test --send "$N" --rate "$RATE" \
        --body "load {n} {t}" --linger 5 --timeout $((SECS + 40))
    it_wait_exit "uas-$peer-$tp" $((SECS + 50))
    it_wait_exit "tx-$peer-$tp" 30
    sent=$(grep -m 1 '"ev": "sent"' "$IT_TMP/tx-$peer-$tp.out")
    errors=$(grep -c '"type": "error"' "$IT_TMP/tx-$peer-$tp.out")
    gwlines=$(tail -n +"$((before + 1))" "$IT_TMP/xsgw.err" |
        grep -cE 'ev=(sip\.overload|sip\.out\.failed|xmpp\.send\.refused|xmpp\.bounce|s2s\.in\.hold) ')
    stats=$("$PY" "$IT_DIR/load_check.py" uas "$IT_TMP/uas-$peer-$tp.msg" load "$N")
    it_log "$scenario: $((SECONDS - start)) s; sender ${sent:-no sent line}, $errors error(s); UAS $stats; gateway refusal/failure/hold lines: $gwlines"
    verdict=$("$PY" -c '
import json, sys
s = json.loads(sys.argv[1]); n, rate = int(sys.argv[2]), float(sys.argv[3])
try:
    c = json.loads(sys.argv[4])
except ValueError:
    c = {"count": 0, "rate": 0}
bad = []
if s["unique"] != n or s["missing"] or s["duplicates"] or s["foreign"]:
    bad.append("the UAS got %d of %d unique, %d duplicates, %d foreign" % (
        s["unique"], n, s["duplicates"], s["foreign"]))
if s["retransmissions"]:
    bad.append("%d retransmissions by the gateway" % s["retransmissions"])
if c["count"] != n:
    bad.append("the client sent %s of %d" % (c["count"], n))
elif (c["rate"] or 0) < 0.8 * rate:
    bad.append("the client offered %.0f/s of %.0f/s (machine too busy?)" % (c["rate"] or 0, rate))
print("; ".join(bad) or "ok")' "$stats" "$N" "$RATE" "${sent:-}")
    [ "$errors" = 0 ] || verdict="${verdict#ok}; the sender got $errors error stanza(s)"
    [ "$gwlines" = 0 ] || verdict="${verdict#ok}; the gateway logged $gwlines refusal/failure/hold line(s)"
    if [ "$verdict" = ok ]; then
        it_pass "$scenario"
    else
        it_fail "$scenario" "${verdict#; }"
    fi
}

load_gateway udp udp:127.0.0.4:5070 ||
    it_fail_rest "the gateway (next hop over UDP) did not log ev=gateway.ready within 15 s"
load_run prosody udp
load_run ejabberd udp
if load_gateway tcp tcp:127.0.0.4:5070; then
    load_run prosody tcp
    load_run ejabberd tcp
else
    it_fail load.prosody_to_sip_tcp "the gateway (next hop over TCP) did not start"
    it_fail load.ejabberd_to_sip_tcp "the gateway (next hop over TCP) did not start"
fi

# load.backpressure_xmpp_to_sip: see the head of this file.
# bp_run: runs it, leaves "ok" or what went wrong in bp_verdict.
bp_run() {
    local scenario=load.backpressure_xmpp_to_sip n=$((BP_RATE * BP_SECS)) peer start
    # Warm up both servers' streams to the gateway (one chat each).
    load_uas warm-bp udp 2 30 || { bp_verdict="the UAS did not start"; return; }
    for peer in prosody ejabberd; do
        load_client "warm-bp-$peer" "$peer" --to bob@sip.test --send 1 --body warm --linger 1 \
            --timeout 25
    done
    if ! it_wait_exit warm-bp 30; then
        bp_verdict="the warm-up chats did not reach the UAS"
        return
    fi
    it_stop warm-bp-prosody
    it_stop warm-bp-ejabberd
    load_uas uas-bp udp $((2 * n)) $((BP_SECS + 90)) "$BP_DELAY" ||
        { bp_verdict="the UAS did not start"; return; }
    start=$SECONDS
    for peer in prosody ejabberd; do
        load_client "tx-bp-$peer" "$peer" --to bob@sip.test --send "$n" --rate "$BP_RATE" \
            --body "bp-$peer {n} {t}" --linger 60 --timeout $((BP_SECS + 90))
    done
    # Done when every chat reached the UAS or came back refused (the UAS then has fewer
    # calls than it waits for), or BP_SECS + 80 s.
    local i got
    for ((i = 0; i < (BP_SECS + 80) * 2; i++)); do
        got=$(($(grep -c '^MESSAGE ' "$IT_TMP/uas-bp.msg" 2>/dev/null) +
            $(cat "$IT_TMP"/tx-bp-*.out | grep -c '"type": "error"')))
        [ "$got" -ge $((2 * n)) ] && break
        sleep 0.5
    done
    sleep 1
    it_stop uas-bp
    it_stop tx-bp-prosody
    it_stop tx-bp-ejabberd
    local a e holds
    a=$("$PY" "$IT_DIR/load_check.py" uas "$IT_TMP/uas-bp.msg" bp-prosody "$n")
    e=$("$PY" "$IT_DIR/load_check.py" uas "$IT_TMP/uas-bp.msg" bp-ejabberd "$n")
    holds=$(sed -n 's/.* ev=s2s\.in\.hold state=\([a-z]*\) .*/\1/p' "$IT_TMP/xsgw.err" |
        sed 's/^released$/resumed/' | tr '\n' ' ')
    it_log "$scenario: $((SECONDS - start)) s; alice: $a; ella: $e; senders: $(cat "$IT_TMP"/tx-bp-*.out | grep '"ev": "sent"' | tr '\n' ' ')"
    it_log "$scenario: $(echo "$holds" | wc -w) hold lines; overload lines: $(grep -cE 'ev=sip\.overload ' "$IT_TMP/xsgw.err")"
    bp_verdict=$("$PY" -c '
import json, sys
n, holds = int(sys.argv[3]), sys.argv[4].split()
bad = []
for who, path, s in (("alice", sys.argv[5], json.loads(sys.argv[1])),
                     ("ella", sys.argv[6], json.loads(sys.argv[2]))):
    errors = [json.loads(l) for l in open(path, encoding="utf-8") if "\"type\": \"error\"" in l]
    wrong = [x for x in errors if (x["error"], x["error_type"]) != ("resource-constraint", "wait")]
    if wrong:
        bad.append("%s got other errors: %s" % (who, wrong[:2]))
    if s["duplicates"] or s["retransmissions"] or s["unique"] + len(errors) != n:
        bad.append("%s: %d delivered + %d refused of %d, %d duplicates, %d retransmissions" % (
            who, s["unique"], len(errors), n, s["duplicates"], s["retransmissions"]))
if "held" not in holds:
    bad.append("the gateway never held its inbound streams (the UAS kept up?)")
if any(h == holds[i - 1] for i, h in enumerate(holds) if i) or holds[:1] != ["held"] or \
        holds[-1:] != ["resumed"]:
    i = next((i for i, h in enumerate(holds) if i and h == holds[i - 1]), 0)
    bad.append("the hold lines do not alternate held/resumed: ... %s ..." % " ".join(
        holds[max(0, i - 3):i + 3]))
print("; ".join(bad) or "ok")' "$a" "$e" "$n" "$holds" "$IT_TMP/tx-bp-prosody.out" \
        "$IT_TMP/tx-bp-ejabberd.out")
}

if load_gateway backpressure udp:127.0.0.4:5070 "max_transactions = $BP_MAX"; then
    bp_run
    if [ "$bp_verdict" = ok ]; then
        it_pass load.backpressure_xmpp_to_sip
    else
        it_fail load.backpressure_xmpp_to_sip "$bp_verdict"
    fi
else
    it_fail load.backpressure_xmpp_to_sip "the gateway with max_transactions = $BP_MAX did not start"
fi

# load.overload_sip_to_xmpp: see the head of this file.
# ovl_uac NAME RATE SECONDS: sipp UAC (bob, 127.0.0.5:5080) sending RATE MESSAGEs a second
# for SECONDS to ella, bodies "NAME <call number>", trace NAME.msg; bounded.
ovl_uac() {
    local name=$1 rate=$2 secs=$3
    sed -e "s/@WAIT@/8000/" -e "s/@SEQ@/ [call_number]/" "$IT_DIR/sipp/uac.xml" \
        >"$IT_TMP/$name.xml"
    nsx timeout $((secs + 40)) sipp -sf "$IT_TMP/$name.xml" 127.0.0.3:5060 -i 127.0.0.5 \
        -p 5080 -t u1 -key from sip:bob@sip.test -key to "sip:$EJ_USER@$EJ_DOMAIN" \
        -key body "$name" -m $((rate * secs)) -r "$rate" -rp 1000 -l 4000 \
        -timeout $((secs + 30))s -nostdin -buff_size 4194304 -trace_msg \
        -message_file "$IT_TMP/$name.msg" >"$IT_TMP/$name.out" 2>&1
}

ovl_verdict() {
    local ovl rec refused_log
    ovl=$("$PY" "$IT_DIR/load_check.py" uac "$IT_TMP/ovl.msg" ovl "$IT_TMP/ella-ovl.out")
    rec=$("$PY" "$IT_DIR/load_check.py" uac "$IT_TMP/rec.msg" rec "$IT_TMP/ella-ovl.out")
    refused_log=$(grep -E 'ev=sip\.overload ' "$IT_TMP/xsgw.err" |
        grep 'reason="too many pending transactions"' |
        sed -n 's/.* refused_in=\([0-9]*\) .*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
    it_log "load.overload_sip_to_xmpp: overload ${OVL_RATE}/s x ${OVL_SECS} s: $ovl"
    it_log "load.overload_sip_to_xmpp: recovery ${REC_RATE}/s x ${REC_SECS} s: $rec"
    it_log "load.overload_sip_to_xmpp: the gateway's ev=sip.overload lines count $refused_log refused: $(grep -m 1 -E 'ev=sip\.overload ' "$IT_TMP/xsgw.err")"
    "$PY" -c '
import json, sys
o, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
logged, n_ovl, n_rec = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
bad = []
for name, s, n in (("overload", o, n_ovl), ("recovery", r, n_rec)):
    if s["retransmissions"]:
        bad.append("%s: sipp retransmitted %d MESSAGEs (no final response within T1)"
                   % (name, s["retransmissions"]))
    other = {k: v for k, v in s["codes"].items() if k not in ("200", "503")}
    if s["sent"] != n or s["unanswered"] or other:
        bad.append("%s: sent %d of %d, %d unanswered, other codes %s" % (
            name, s["sent"], n, s["unanswered"], other))
    if s["lost"] or s["duplicates"] or s["refused_but_delivered"] or s["ok_not_delivered"]:
        bad.append("%s: lost %d, duplicates %d, refused but delivered %d, 200 not delivered %d"
                   % (name, s["lost"], s["duplicates"], s["refused_but_delivered"],
                      s["ok_not_delivered"]))
    if set(s["retry_after"]) - {"5"}:
        bad.append("%s: 503 without Retry-After: 5: %s" % (name, s["retry_after"]))
refused = o["codes"].get("503", 0) + r["codes"].get("503", 0)
if not o["codes"].get("503"):
    bad.append("the overload phase was not refused at all")
if r["codes"].get("200", 0) != n_rec:
    bad.append("the recovery phase got %d of %d 200s" % (r["codes"].get("200", 0), n_rec))
if logged != refused:
    bad.append("the gateway logged %d refusals, senders got %d 503s" % (logged, refused))
print("; ".join(bad) or "ok")' "$ovl" "$rec" "$refused_log" $((OVL_RATE * OVL_SECS)) \
        $((REC_RATE * REC_SECS))
}

if load_gateway overload udp:127.0.0.4:5070 "max_transactions = $OVL_MAX"; then
    total=$((OVL_RATE * OVL_SECS + REC_RATE * REC_SECS))
    # ella cannot know how many will be refused: she listens for all, and is stopped once
    # as many chats reached her as MESSAGEs got 200 (or 15 s after the last one).
    ej_xmpp ella-ovl --expect "$((total + 1))" --timeout $((OVL_SECS + REC_SECS + 90))
    if it_xmpp_online ella-ovl 20; then
        # Warm up the gateway's stream to ejabberd.
        ovl_uac warm 1 1
        ovl_uac ovl "$OVL_RATE" "$OVL_SECS"
        ovl_uac rec "$REC_RATE" "$REC_SECS"
        n_ok=$(for n in warm ovl rec; do
            "$PY" "$IT_DIR/load_check.py" uac "$IT_TMP/$n.msg" "$n" /dev/null
        done | "$PY" -c 'import json, sys
print(sum(json.loads(l)["codes"].get("200", 0) for l in sys.stdin))')
        it_wait_grep "$IT_TMP/ella-ovl.out" '"ev": "message"' 15 "$n_ok"
        it_stop ella-ovl
        v=$(ovl_verdict)
        if [ "$v" = ok ]; then
            it_pass load.overload_sip_to_xmpp
        else
            it_fail load.overload_sip_to_xmpp "$v"
        fi
    else
        it_fail load.overload_sip_to_xmpp "ella could not log in"
    fi
else
    it_fail load.overload_sip_to_xmpp "the gateway with max_transactions = $OVL_MAX did not start"
fi
