#!/usr/bin/env bash
# Story 4: policy reload on SIGHUP. Removing the xmpp.test partner refuses new traffic both
# ways and closes the s2s streams; restoring it lets traffic flow again; a policy with a
# syntax or semantic error is rejected with file and line and the old one keeps running.
# Also `xsgw --check` on good and bad files.
set -u
. "$(dirname "$0")/lib.sh"

it_setup reload reload.check_good reload.check_bad_syntax reload.check_bad_semantic \
    reload.baseline reload.partner_removed_xmpp reload.partner_removed_sip \
    reload.streams_closed reload.partner_restored reload.bad_syntax_kept \
    reload.bad_semantic_kept

hop=udp:127.0.0.4:5070
pol=$IT_TMP/policy.lua
it_policy "$IT_TMP/good.lua" policy.lua.in "$hop"
it_policy "$IT_TMP/nopartner.lua" policy.lua.in "$hop" "-- partner xmpp.test removed"
it_policy "$IT_TMP/bad-syntax.lua" policy-bad-syntax.lua.in "$hop"
it_policy "$IT_TMP/bad-semantic.lua" policy-bad-semantic.lua.in "$hop"

# it_check_policy NAME FILE WANT-RC WANT-REGEX: xsgw --check exit code and output.
it_check_policy() {
    local out rc
    if ! it_have_gateway; then
        it_fail "$1" "no gateway binary at $XSGW"
        return
    fi
    out=$("$XSGW" --check "$2" --lua-dir "$REPO/lua" 2>&1)
    rc=$?
    if [ "$rc" = "$3" ] && [[ "$out" =~ $4 ]]; then
        it_pass "$1"
    else
        it_fail "$1" \
            "xsgw --check $(basename "$2") exited $rc (want $3), said: $(echo "$out" | head -n 3)"
    fi
}
it_check_policy reload.check_good "$IT_TMP/good.lua" 0 '^OK:'
it_check_policy reload.check_bad_syntax "$IT_TMP/bad-syntax.lua" 1 'bad-syntax\.lua:7'
it_check_policy reload.check_bad_semantic "$IT_TMP/bad-semantic.lua" 1 'bad-semantic\.lua:8'

it_world "$hop"

# it_xmpp_to_sip TAG [LIMIT]: alice sends one message; prints what the UAS received and what
# alice got back, as "uas=<bodies> alice=<from type condition>". Stops as soon as either
# side has its answer, bounded by LIMIT seconds.
it_xmpp_to_sip() {
    local tag=$1 limit=${2:-10} i
    IT_UAS_HOLD=300 it_sipp_uas "uas-$tag" 127.0.0.4 5070 200 OK 1
    it_xmpp "alice-$tag" --to bob@sip.test --send 1 --body "reload $tag" --expect 1 \
        --timeout "$limit"
    for ((i = 0; i < limit * 10; i++)); do
        if ! it_running "uas-$tag" || ! it_running "alice-$tag"; then break; fi
        sleep 0.1
    done
    # An error for alice may trail the SIP side by a moment.
    it_wait_exit "alice-$tag" 1
    it_stop "alice-$tag"
    it_stop "uas-$tag"
    IT_RESULT="uas=$(it_sip_summary "uas-$tag" | cut -f5 | tr '\n' '|')"
    IT_RESULT+=" alice=$(it_xmpp_summary "alice-$tag" | cut -f1-3 | tr '\t\n' ' |')"
}

# it_sip_to_xmpp TAG: bob sends one MESSAGE; prints "codes=<finals> alice=<bodies>".
it_sip_to_xmpp() {
    local tag=$1 codes
    if ! it_alice_listen "alice-in-$tag" 1 30; then
        it_stop "alice-in-$tag"
        IT_RESULT="alice offline"
        return
    fi
    it_sipp_uac "uac-$tag" 127.0.0.3:5060 sip:bob@sip.test sip:alice@xmpp.test "reload $tag" \
        1 -p 5080
    codes=$(it_sip_final_codes "uac-$tag" | tr '\n' ' ')
    # When bob was refused, alice must get nothing: a delivery would follow the refusal
    # within the error grace (1 s), so look after twice that.
    if [ "$codes" = "200 " ]; then it_wait_exit "alice-in-$tag" 10; else sleep 2; fi
    it_stop "alice-in-$tag"
    IT_RESULT="codes=$codes alice=$(it_xmpp_summary "alice-in-$tag" | cut -f4 | tr '\n' '|')"
}

# it_flows TAG: a message crosses both ways; if not, returns 1 with the reason in IT_RESULT.
it_flows() {
    local x s
    it_xmpp_to_sip "$1-x" 20
    x=$IT_RESULT
    it_sip_to_xmpp "$1-s"
    s=$IT_RESULT
    IT_RESULT="xmpp->sip [$x]; sip->xmpp [$s]"
    [ "$x" = "uas=reload $1-x| alice=" ] && [ "$s" = "codes=200  alice=reload $1-s|" ]
}

cp "$IT_TMP/good.lua" "$pol"
if it_flows base; then it_pass reload.baseline; else it_fail reload.baseline "$IT_RESULT"; fi

# it_streams_closed FROM-LINE: the gateway's log from line FROM-LINE on shows that the
# reload closed its outbound and its inbound stream with xmpp.test (the ones the baseline
# opened) for the reason partner-removed: for each direction a refused line and the same
# stream's transition to closed. Waits up to 5 s; prints what is missing.
it_streams_closed() {
    local from=$1 dir id i missing
    for ((i = 0; i < 50; i++)); do
        missing=
        for dir in out in; do
            id=$(tail -n +"$from" "$IT_TMP/xsgw.err" |
                sed -nE "s/.*ev=s2s\.$dir\.refused stream=($dir[0-9]+) remote=xmpp\.test reason=partner-removed.*/\1/p" |
                head -n 1)
            if [ -z "$id" ]; then
                missing+=" no s2s.$dir.refused reason=partner-removed for xmpp.test;"
            elif ! tail -n +"$from" "$IT_TMP/xsgw.err" |
                grep -qE "ev=s2s\.$dir\.state stream=$id .* to=closed "; then
                missing+=" $id refused but not closed;"
            fi
        done
        [ -z "$missing" ] && return 0
        sleep 0.1
    done
    echo "$missing"
    return 1
}

# Partner removed: SIGHUP must be accepted, the open streams closed at once (checked before
# any new traffic, so a stream that new traffic opens and closes cannot pass for them), and
# both directions refused.
mark=$(($(wc -l <"$IT_TMP/xsgw.err") + 1))
cp "$IT_TMP/nopartner.lua" "$pol"
line=$(it_gateway_reload)
if [[ "$line" != *result=ok* ]]; then
    it_fail reload.streams_closed "reload without the partner: [${line:-no ev=policy.reload}]"
    it_fail reload.partner_removed_xmpp "reload without the partner: [${line:-no ev=policy.reload}]"
    it_fail reload.partner_removed_sip "reload without the partner was not accepted"
else
    if why=$(it_streams_closed "$mark"); then
        it_pass reload.streams_closed
    else
        it_fail reload.streams_closed "after the reload:$why"
    fi
    # Prosody opens a new stream to sip.test and the gateway refuses it (a stream error,
    # policy-violation, before dialback: there is no stream to carry a stanza error on).
    # Prosody 0.12 then bounces alice's queued message itself, from bob@sip.test, with
    # remote-server-timeout ("failed outgoing connection"); the gateway's log line proves
    # that the refusal, not a silent gateway, caused the bounce.
    mark=$(($(wc -l <"$IT_TMP/xsgw.err") + 1))
    it_xmpp_to_sip removed 15
    x=$IT_RESULT
    want="uas= alice=bob@sip.test error remote-server-timeout|"
    if [ "$x" = "$want" ] && tail -n +"$mark" "$IT_TMP/xsgw.err" |
        grep -qE 'ev=s2s\.in\.refused .*remote=xmpp\.test reason=not-a-partner'; then
        it_pass reload.partner_removed_xmpp
    else
        it_fail reload.partner_removed_xmpp \
            "want [$want] and the gateway refusing xmpp.test's stream: [$x]"
    fi
    mark=$(($(wc -l <"$IT_TMP/xsgw.err") + 1))
    it_sip_to_xmpp removed
    s=$IT_RESULT
    if [ "$s" = "codes=403  alice=" ] && tail -n +"$mark" "$IT_TMP/xsgw.err" |
        grep -qE 'ev=router\.refused .*to=sip:alice@xmpp\.test cond=forbidden'; then
        it_pass reload.partner_removed_sip
    else
        it_fail reload.partner_removed_sip \
            "want 403 (forbidden) for bob by the allow-list and nothing for alice: [$s]"
    fi
fi

# Partner restored: traffic flows again.
cp "$IT_TMP/good.lua" "$pol"
line=$(it_gateway_reload)
if [[ "$line" != *result=ok* ]]; then
    it_fail reload.partner_restored "reload with the partner back: [${line:-no ev=policy.reload}]"
elif it_flows restored; then
    it_pass reload.partner_restored
else
    it_fail reload.partner_restored "$IT_RESULT"
fi

# it_bad_reload NAME FILE LINE: the reload is rejected naming policy.lua:LINE, the gateway
# keeps running the previous policy and a message still crosses.
it_bad_reload() {
    local name=$1 line
    cp "$2" "$pol"
    line=$(it_gateway_reload)
    cp "$IT_TMP/good.lua" "$pol"
    if [[ "$line" != *result=rejected* ]] || [[ "$line" != *policy.lua:$3* ]]; then
        it_fail "$name" \
            "want result=rejected naming policy.lua:$3, got [${line:-no ev=policy.reload}]"
    elif ! it_running xsgw; then
        it_fail "$name" "the gateway exited after the rejected reload"
    elif it_flows "${name#reload.}"; then
        it_pass "$name"
    else
        it_fail "$name" "the previous policy does not carry traffic: $IT_RESULT"
    fi
}
it_bad_reload reload.bad_syntax_kept "$IT_TMP/bad-syntax.lua" 7
it_bad_reload reload.bad_semantic_kept "$IT_TMP/bad-semantic.lua" 8
