#!/usr/bin/env bash
# Issue 9 story 6: two gateway instances serve sip.test behind one SRV record and share one
# dialback secret (xmpp.dialback_secret). Instance A listens on 127.0.0.3 (gwa.sip.test, SRV
# priority 0: what peers connect to), B on 127.0.0.9 (gwb.sip.test, priority 10: the
# fallback). Both route SIP to the same next hop (sipp UAS on 127.0.0.4:5070) and each has
# its own state directory and admin listener.
#   instances.dialback_prosody   B opens a stream to Prosody (a MESSAGE sent to B); Prosody
#                                verifies B's key by connecting to sip.test, which the SRV
#                                record sends to A; A verifies a key B issued (XEP-0185 keys
#                                from the shared secret) and the message is delivered. A
#                                logs the valid verify, B logs none.
#   instances.dialback_ejabberd  the same with ejabberd (ejab.test) as the peer.
#   instances.kill_term          load both ways (alice -> bob@sip.test through whichever
#                                instance Prosody's SRV lookup picks, A; bob -> carol through
#                                A and through B), then SIGTERM to the instance holding
#                                Prosody's stream (A): a rolling update. Every message A
#                                accepted is delivered or answered with an error (exact
#                                counts), A closes Prosody's stream as the drain begins
#                                (ev=s2s.in.drain), A exits, Prosody reconnects to B and
#                                traffic goes on.
#   instances.kill_kill          A started again; the same load, then SIGKILL to the instance
#                                holding Prosody's stream (now B): nothing is answered for
#                                what it held. Asserted: no 200 without delivery, no duplicate,
#                                traffic continues through the other instance; what was lost
#                                is measured and logged, not asserted.
# XS_IT_INST_RATE (messages a second per stream, 50) and XS_IT_INST_SECONDS (20) size the
# load; the kill comes at 40 % of it. The SIP next hop answers after XS_IT_INST_UAS_DELAY ms
# (400), so the killed instance has messages in flight toward SIP.
#   instances.presence_takeover  both instances restarted with presence on, the subscription
#                                store in Redis (presence.store = "redis://127.0.0.1:6390",
#                                gateway.instance "a" / "b"; redis-server started here) and
#                                Kamailio as sip.test's presence server: alice (Prosody) adds
#                                carol@sip.test through A; A is killed (SIGKILL); carol
#                                PUBLISHes while A is dead, B adopts A's subscriptions when
#                                A's heartbeat runs out, refreshes the SUBSCRIBE dialog with its
#                                own Contact, and alice gets carol's state, then a later change.
set -u
. "$(dirname "$0")/lib.sh"

it_setup instances instances.dialback_prosody instances.dialback_ejabberd \
    instances.kill_term instances.kill_kill instances.presence_takeover

. "$(dirname "$0")/ejabberd.sh"
. "$(dirname "$0")/presence.sh"
tab=$'\t'
SECRET="instances-shared-secret-$$"
declare -A GW_ADDR=([a]=127.0.0.3 [b]=127.0.0.9)
RATE=${XS_IT_INST_RATE:-50}
SECS=${XS_IT_INST_SECONDS:-20}
N=$((RATE * SECS))
UAS_DELAY=${XS_IT_INST_UAS_DELAY:-400}

# inst_exit: the gateways' logs are xsgw-a*.err and xsgw-b*.err, which lib.sh's tail does not
# know; show them on failure, then ejabberd's hint and the common cleanup.
inst_exit() {
    local rc=$? f
    if [ "$IT_FAILED" = 1 ]; then
        for f in "$IT_TMP"/xsgw-*.err; do
            [ -s "$f" ] || continue
            echo "---- tail of $f"
            tail -n "${IT_TAIL:-30}" "$f"
        done
    fi
    (exit "$rc")
    ej_exit
}
trap inst_exit EXIT

# inst_dns_start: sip.test's s2s SRV record has both instances, A preferred.
inst_dns_start() {
    it_start dnsmasq /usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts \
        --log-queries --log-facility=- --listen-address=127.0.0.53 --port=53 \
        --pid-file="$IT_TMP/dnsmasq.pid" --user=root --group=root \
        --local=/test/ --local-ttl=60 \
        --host-record=xmpp.test,127.0.0.2 \
        --host-record=gwa.sip.test,"${GW_ADDR[a]}" \
        --host-record=gwb.sip.test,"${GW_ADDR[b]}" \
        --host-record=sip.test,127.0.0.4 \
        --host-record=$EJ_DOMAIN,$EJ_ADDR \
        --srv-host=_xmpp-server._tcp.sip.test,gwa.sip.test,5269,0,5 \
        --srv-host=_xmpp-server._tcp.sip.test,gwb.sip.test,5269,10,5 \
        --srv-host=_xmpp-server._tcp.xmpp.test,xmpp.test,5269,0,5 \
        --srv-host=_xmpp-server._tcp.$EJ_DOMAIN,$EJ_DOMAIN,5269,0,5
    it_wait_dns gwb.sip.test "${GW_ADDR[b]}" 5 &&
        [ "$(it_dns_query _xmpp-server._tcp.sip.test SRV | grep -c '^SRV ')" = 2 ]
}

# inst_policy ID: instance ID's policy, everything but the addresses shared.
inst_policy() {
    local addr=${GW_ADDR[$1]}
    cat >"$IT_TMP/policy-$1.lua" <<EOF
gateway {
  domains = { "sip.test" },
  admin = { listen = "$addr:9269" },
  xmpp = { listen = "$addr:5269", dialback_secret = "$SECRET" },
  sip  = { listen = { "udp:$addr:5060", "tcp:$addr:5060" }, next_hop = "udp:127.0.0.4:5070",
           trusted = { "127.0.0.0/8" } },
}
partner "xmpp.test" { tls = "required", dialback = true }
partner "$EJ_DOMAIN" { tls = "required", dialback = true }
EOF
}

# inst_start ID LOG: start instance ID (a or b) logging to LOG.err; waits for ready.
inst_start() {
    it_start "$2" "$XSGW" --policy "$IT_TMP/policy-$1.lua" --lua-dir "$REPO/lua" \
        --state-dir "$IT_TMP/state-$1" --log-level debug
    if [ "$2" != "xsgw-$1" ]; then
        IT_PID[xsgw-$1]=${IT_PID[$2]}
        unset "IT_PID[$2]"
    fi
    GW_LOG[$1]=$IT_TMP/$2.err
    it_wait_grep "${GW_LOG[$1]}" 'ev=gateway\.ready' 15
}
declare -A GW_LOG=()

it_have_gateway || it_fail_rest "no gateway binary at $XSGW (build it or set XSGW)"
inst_dns_start || it_fail_rest "dnsmasq did not answer with two SRV targets for sip.test"
it_prosody_start || it_fail_rest "Prosody did not start (prosody.log, prosodyctl.log)"
inst_policy a
inst_policy b
inst_start a xsgw-a || it_fail_rest "instance A did not log ev=gateway.ready within 15 s"
inst_start b xsgw-b || it_fail_rest "instance B did not log ev=gateway.ready within 15 s"

# inst_verify_lines ID REMOTE: instance ID's valid/invalid db:verify answers for REMOTE.
inst_verify_lines() {
    grep -E "ev=s2s\.in\.verify .*remote=${2//./\\.} local=sip\.test" "${GW_LOG[$1]}" 2>/dev/null
}

# inst_cross_dialback SCENARIO USER CLIENT-FN REMOTE: bob's MESSAGE sent to B reaches USER.
# The peer verifies every dialback key of a stream from sip.test by connecting to sip.test,
# i.e. to A: A answers as many valid db:verify as there are outbound streams of A and B that
# dialback authenticated (B's among them), B answers none, so B's key was verified by A.
inst_cross_dialback() {
    local scenario=$1 user=$2 fn=$3 remote=$4 got codes va vb auth_a auth_b re
    re=${remote//./\\.}
    "$fn" "rx-$remote" --expect 1 --timeout 30
    if ! it_xmpp_online "rx-$remote" 25; then
        it_fail "$scenario" "$user could not log in: $(tail -n 2 "$IT_TMP/rx-$remote.out")"
        return
    fi
    it_sipp_uac "uac-$remote" "${GW_ADDR[b]}:5060" sip:bob@sip.test "sip:$user" \
        "via b to $remote" 1 -p 5080
    it_wait_exit "rx-$remote" 30
    got=$(it_xmpp_summary "rx-$remote")
    codes=$(it_sip_final_codes "uac-$remote" | tr '\n' ' ')
    va=$(inst_verify_lines a "$remote" | sed 's/.*result=//' | sort | uniq -c | tr -s ' ' | tr '\n' ',')
    vb=$(inst_verify_lines b "$remote" | sed 's/.*result=//' | sort | uniq -c | tr -s ' ' | tr '\n' ',')
    auth_a=$(grep -cE "ev=s2s\.out\.auth .*remote=$re method=dialback result=ok" "${GW_LOG[a]}")
    auth_b=$(grep -cE "ev=s2s\.out\.auth .*remote=$re method=dialback result=ok" "${GW_LOG[b]}")
    it_log "$scenario: $user got [$got], bob [$codes], verify answers on A [$va], on B [$vb], dialback-authenticated streams A $auth_a B $auth_b"
    if [ "$got" = "bob@sip.test${tab}normal${tab}-${tab}via b to $remote" ] &&
        [ "$codes" = "200 " ] && [ "$va" = " $((auth_a + auth_b)) valid," ] && [ -z "$vb" ] &&
        [ "$auth_b" = 1 ]; then
        it_pass "$scenario"
    else
        it_fail "$scenario" "$user got [${got:-nothing}], bob got [$codes] (want 200), A answered verify [${va:-none}] (want $((auth_a + auth_b)) valid), B [${vb:-none}] (want none), B's dialback-authenticated streams $auth_b (want 1)"
    fi
}

alice_rx() { it_start "$1" "$PY" "$IT_DIR/xmpp_client.py" --jid alice@xmpp.test \
    --password "$IT_PASSWORD" "${@:2}"; }
inst_cross_dialback instances.dialback_prosody alice@xmpp.test alice_rx xmpp.test

if ej_installed; then
    if ej_start; then
        inst_cross_dialback instances.dialback_ejabberd "$EJ_USER@$EJ_DOMAIN" ej_xmpp "$EJ_DOMAIN"
    else
        it_fail instances.dialback_ejabberd "ejabberd did not start (ejabberd.log, ejabberdctl.log)"
    fi
    it_stop ejabberd
else
    it_skip instances.dialback_ejabberd "ejabberd is not installed (deps.sh)"
fi

# inst_holder: which instance (a or b) holds Prosody's outbound stream to sip.test (the only
# connections to the instances' port 5269 once ejabberd is gone; Prosody connects from
# 127.0.0.1, not from its listening address).
inst_holder() {
    local id
    for id in a b; do
        if [ -n "$(nsx ss -Htn state established dst "${GW_ADDR[$id]}:5269" \
            2>/dev/null)" ]; then
            echo "$id"
            return
        fi
    done
}

# inst_kill_run SCENARIO TAG SIGNAL: the load run with a kill of the instance holding
# Prosody's stream at 40 % of it. Sets KILLED and SURVIVOR; the figures go to the log.
inst_kill_run() {
    local scenario=$1 tag=$2 sig=$3 id t_kill victim survivor pid i
    # Warm up: Prosody's stream to sip.test (SRV: A) and each instance's stream to Prosody.
    # The next hop answers after UAS_DELAY ms (below T1), so that the killed instance holds
    # about RATE * UAS_DELAY / 1000 of alice's messages when the signal comes.
    sed -e "s/@DELAY@/$UAS_DELAY/" "$IT_DIR/sipp/uas-slow.xml" >"$IT_TMP/uas-$tag.xml"
    it_start "uas-$tag" sipp -sf "$IT_TMP/uas-$tag.xml" -i 127.0.0.4 -p 5070 -m $((N + 10)) \
        -timeout 120s -nostdin -trace_msg -message_file "$IT_TMP/uas-$tag.msg" \
        -max_recv_loops 10000
    it_wait_listen 127.0.0.4 5070 10 || { it_fail "$scenario" "the UAS did not start"; return 1; }
    it_xmpp "warm-$tag" --to bob@sip.test --send 1 --body "warm $tag" --linger 2 --timeout 15
    it_wait_exit "warm-$tag" 20
    for id in a b; do
        it_sipp_uac "warm-$tag-$id" "${GW_ADDR[$id]}:5060" sip:bob@sip.test \
            sip:carol@xmpp.test "warm" 1 -p 5082
    done
    victim=$(inst_holder)
    if [ -z "$victim" ]; then
        it_fail "$scenario" "Prosody holds no stream to either instance after the warm-up"
        return 1
    fi
    survivor=a
    [ "$victim" = a ] && survivor=b
    KILLED=$victim SURVIVOR=$survivor
    it_log "$scenario: Prosody's stream is on $victim; $sig goes to it, $survivor survives"
    # carol receives bob's MESSAGEs from both instances; alice sends to bob.
    it_start "carol-$tag" "$PY" "$IT_DIR/xmpp_client.py" --jid carol@xmpp.test \
        --password "$IT_PASSWORD" --expect $((2 * N)) --timeout $((SECS + 20))
    it_xmpp_online "carol-$tag" 20 || { it_fail "$scenario" "carol could not log in"; return 1; }
    it_xmpp "alice-$tag" --to bob@sip.test --send "$N" --rate "$RATE" --body "x {n}" \
        --id-prefix x --expect "$N" --timeout $((SECS + 15))
    it_xmpp_online "alice-$tag" 20 || { it_fail "$scenario" "alice could not log in"; return 1; }
    for id in a b; do
        sed -e "s/@WAIT@/8000/" -e "s/@SEQ@/ [call_number]/" "$IT_DIR/sipp/uac.xml" \
            >"$IT_TMP/uac-$tag-$id.xml"
        it_start "uac-$tag-$id" timeout $((SECS + 40)) sipp -sf "$IT_TMP/uac-$tag-$id.xml" \
            "${GW_ADDR[$id]}:5060" -i 127.0.0.5 -p "$([ $id = a ] && echo 5083 || echo 5084)" \
            -key from sip:bob@sip.test -key to sip:carol@xmpp.test -key body "k$id" \
            -m "$N" -r "$RATE" -rp 1000 -l 2000 -timeout $((SECS + 30))s -nostdin \
            -trace_msg -message_file "$IT_TMP/uac-$tag-$id.msg"
    done
    sleep "$(awk -v s="$SECS" 'BEGIN { printf "%.1f", s * 0.4 }')"
    pid=${IT_PID[xsgw-$victim]}
    t_kill=$(date +%s.%N)
    kill "-$sig" "$pid"
    # SIGTERM: the instance drains and exits on its own (within its drain deadline); SIGKILL
    # at once. Bounded either way.
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    it_stop "xsgw-$victim"
    T_EXIT=$(awk -v a="$(date +%s.%N)" -v b="$t_kill" 'BEGIN { printf "%.2f", a - b }')
    T_KILL=$t_kill
    echo "$t_kill" >"$IT_TMP/kill-$tag.at"
    for id in a b; do it_wait_exit "uac-$tag-$id" $((SECS + 45)); done
    it_wait_exit "alice-$tag" $((SECS + 45))
    it_wait_exit "carol-$tag" 10
    it_stop "uas-$tag"
    it_log "$scenario: $victim gone $T_EXIT s after the $sig"
    return 0
}

# inst_figures TAG: the counts, one JSON object per direction and instance, into the log and
# into XF (xmpp->sip), SF_a / SF_b (sip->xmpp per instance).
inst_figures() {
    local tag=$1 id
    XF=$("$PY" "$IT_DIR/instances_check.py" xmpp "$IT_TMP/alice-$tag.out" "$IT_TMP/uas-$tag.msg" \
        x "$N" "$T_KILL")
    it_log "$tag xmpp->sip: $XF"
    for id in a b; do
        declare -g "SF_$id=$("$PY" "$IT_DIR/instances_check.py" sip "$IT_TMP/uac-$tag-$id.msg" \
            "k$id" "$IT_TMP/carol-$tag.out" "$T_KILL")"
        it_log "$tag sip->xmpp via $id: $(eval echo "\$SF_$id")"
    done
}

# jget JSON KEY: one value of a JSON object.
jget() { "$PY" -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1]).get(sys.argv[2])))' "$1" "$2"; }

# inst_common_checks: what holds for either signal. Prints the violations.
inst_common_checks() {
    local why="" id sf s=$SURVIVOR
    [ "$(jget "$XF" duplicates)" = 0 ] || why+=" xmpp->sip duplicates $(jget "$XF" duplicates);"
    [ "$(jget "$XF" via_survivor)" != 0 ] || why+=" nothing reached the UAS through $s after the kill;"
    for id in a b; do
        sf=$(eval echo "\$SF_$id")
        [ "$(jget "$sf" ok_lost)" = 0 ] || why+=" via $id: $(jget "$sf" ok_lost) x 200 without delivery;"
        [ "$(jget "$sf" duplicates)" = 0 ] || why+=" via $id: $(jget "$sf" duplicates) delivered twice;"
    done
    # The survivor answered every MESSAGE sent to it with 200 and delivered it.
    sf=$(eval echo "\$SF_$s")
    [ "$(jget "$sf" ok_delivered)" = "$N" ] ||
        why+=" via the survivor $s: $(jget "$sf" ok_delivered) of $N delivered with 200;"
    echo "$why"
}

if inst_kill_run instances.kill_term term TERM; then
    inst_figures term
    why=$(inst_common_checks)
    sf=$(eval echo "\$SF_$KILLED")
    # Rolling update: everything sent to the drained instance before the signal has its
    # answer; what it had taken from Prosody was delivered or bounced.
    [ "$(jget "$sf" unanswered_before_kill)" = 0 ] ||
        why+=" $(jget "$sf" unanswered_before_kill) MESSAGEs sent to $KILLED before the SIGTERM never answered;"
    [ "$(jget "$XF" neither)" = 0 ] ||
        why+=" $(jget "$XF" neither) of alice's messages neither delivered nor bounced (first $(jget "$XF" neither_first));"
    grep -q 'ev=gateway\.stopped' "${GW_LOG[$KILLED]}" || why+=" $KILLED did not log ev=gateway.stopped;"
    # The hand-over: Prosody's stream was closed at once, not held through the drain.
    grep -qE 'ev=s2s\.in\.drain .*remote=xmpp\.test result=closing' "${GW_LOG[$KILLED]}" ||
        why+=" $KILLED did not close Prosody's stream when the drain began (ev=s2s.in.drain);"
    if [ -z "$why" ]; then it_pass instances.kill_term; else it_fail instances.kill_term "$why"; fi
else
    [ -n "${IT_REPORTED[instances.kill_term]:-}" ] || it_fail instances.kill_term "the run did not start"
fi

# The instance the rolling update stopped comes back (same state directory) before the
# second run; Prosody's stream now is on the other one, which the SIGKILL hits.
inst_start "$KILLED" "xsgw-$KILLED-2" ||
    it_fail_rest "instance $KILLED did not come back (ev=gateway.ready within 15 s)"
if inst_kill_run instances.kill_kill kill KILL; then
    inst_figures kill
    why=$(inst_common_checks)
    if [ -z "$why" ]; then it_pass instances.kill_kill; else it_fail instances.kill_kill "$why"; fi
else
    [ -n "${IT_REPORTED[instances.kill_kill]:-}" ] || it_fail instances.kill_kill "the run did not start"
fi

# ---- presence continuing on the other instance, from Redis ------------------------------
# inst_presence_policy ID: instance ID's policy for the presence run.
inst_presence_policy() {
    local addr=${GW_ADDR[$1]}
    cat >"$IT_TMP/policy-$1.lua" <<POL
gateway {
  domains = { "sip.test" },
  instance = "$1",
  admin = { listen = "$addr:9269" },
  xmpp = { listen = "$addr:5269", dialback_secret = "$SECRET" },
  sip  = { listen = { "udp:$addr:5060", "tcp:$addr:5060" }, next_hop = "udp:127.0.0.4:5060",
           trusted = { "127.0.0.0/8" }, contact = "$addr:5060" },
  presence = { enabled = true, store = "redis://127.0.0.1:$REDIS_PORT", expires = 20,
               min_expires = 5, max_expires = 60 },
}
partner "xmpp.test" { tls = "required", dialback = true }
POL
}
REDIS_PORT=6390

# inst_presence: sets WHY (empty when the scenario passed); logs the figures.
inst_presence() {
    local t_kill t_adopt t_seen m_kill i
    WHY=
    it_stop xsgw-a
    it_stop xsgw-b
    it_start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --daemonize no --dir "$IT_TMP"
    it_wait_tcp 127.0.0.1 "$REDIS_PORT" 10 || { WHY="redis-server did not start"; return; }
    pr_kamailio_start || { WHY="Kamailio (presence) did not start"; return; }
    inst_presence_policy a
    inst_presence_policy b
    inst_start a xsgw-a-p || { WHY="instance A did not start with the Redis store"; return; }
    inst_start b xsgw-b-p || { WHY="instance B did not start with the Redis store"; return; }
    pr_ua carol carol 127.0.0.6:5096 --do register --do "publish open 'note=at my desk'" ||
        { WHY="carol's UA did not start"; return; }
    pr_xmpp alice-p alice@xmpp.test --no-initial --do "presence 'status=alice here'" ||
        { WHY="alice could not log in"; return; }
    pr_wait carol response 2 10 || { WHY="carol did not register and publish"; return; }
    pr_do alice-p subscribe carol@sip.test
    if ! pr_wait_for alice-p presence "carol@sip.test${tab}available${tab}-${tab}at my desk" 20; then
        WHY="alice did not get carol's first state: $(pr_summary alice-p presence | tr '\n' '|')"
        return
    fi
    if ! grep -qE 'ev=presence\.sub .*carol@sip\.test' "${GW_LOG[a]}" ||
        grep -qE 'ev=presence\.sub .*carol@sip\.test' "${GW_LOG[b]}"; then
        WHY="the subscription to carol is not A's alone (A and B's presence.sub lines)"
        return
    fi
    # The SIP side writes its store once a second: a crash before that loses the new
    # subscription (the window is measured here, not tested). Wait until Redis holds it.
    for ((i = 0; i < 50; i++)); do
        [ "$(nsx redis-cli -p "$REDIS_PORT" SCARD xsgw:idx:a 2>/dev/null)" = 1 ] && break
        sleep 0.1
    done
    it_log "presence_takeover: A's record in Redis after $((i / 10)).$((i % 10)) s (SCARD xsgw:idx:a = $(nsx redis-cli -p "$REDIS_PORT" SCARD xsgw:idx:a 2>&1))"
    # A crashes; carol changes her state while nobody serves A's dialog.
    m_kill=$(pr_mark alice-p)
    t_kill=$(date +%s.%N)
    kill -KILL "${IT_PID[xsgw-a]}"
    it_stop xsgw-a
    pr_do carol publish open "note=while a is down" activities=away
    if ! it_wait_grep "${GW_LOG[b]}" 'ev=presence\.adopt from=a records=[1-9]' 30; then
        WHY="B did not adopt A's records within 30 s: $(grep -E 'ev=presence\.(adopt|store)' "${GW_LOG[b]}" | tail -n 2)"
        return
    fi
    t_adopt=$(date +%s.%N)
    if ! pr_wait_for alice-p presence "carol@sip.test${tab}available${tab}away${tab}while a is down" 45 "$m_kill"; then
        WHY="after the adoption alice did not get carol's state within 45 s: $(pr_summary alice-p presence "$m_kill" | tr '\n' '|'); B: $(grep -E 'ev=presence\.sub .*carol' "${GW_LOG[b]}" | tail -n 3 | cut -c1-200 | tr '\n' '|')"
        return
    fi
    t_seen=$(date +%s.%N)
    m_kill=$(pr_mark alice-p)
    pr_do carol publish closed "note=gone home"
    if ! pr_wait_for alice-p presence "carol@sip.test${tab}unavailable${tab}-${tab}gone home" 10 "$m_kill"; then
        WHY="carol's next change did not reach alice through B: $(pr_summary alice-p presence "$m_kill" | tr '\n' '|')"
        return
    fi
    it_log "presence_takeover: B adopted A's records $(awk -v a="$t_adopt" -v b="$t_kill" 'BEGIN { printf "%.1f", a - b }') s after the SIGKILL; alice had carol's state $(awk -v a="$t_seen" -v b="$t_kill" 'BEGIN { printf "%.1f", a - b }') s after it; $(grep -E 'ev=presence\.adopt' "${GW_LOG[b]}" | head -n 1 | cut -c1-200)"
}

if ! pr_have_presence_server; then
    it_skip instances.presence_takeover "Kamailio's presence modules or sqlite3 are missing (deps.sh)"
elif ! command -v redis-server >/dev/null; then
    it_skip instances.presence_takeover "redis-server is not installed (deps.sh)"
else
    inst_presence
    if [ -z "$WHY" ]; then it_pass instances.presence_takeover; else it_fail instances.presence_takeover "$WHY"; fi
fi
it_stop redis
