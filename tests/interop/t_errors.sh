#!/usr/bin/env bash
# Story 3: failures come back to the sender. SIP final responses from the UAS become XMPP
# error stanzas for alice (RFC 7247 section 7.2); bob's MESSAGEs that cannot be delivered get
# a 4xx/5xx final response, never 200.
set -u
. "$(dirname "$0")/lib.sh"

it_setup errors errors.sip_404 errors.sip_480 errors.sip_403 errors.sip_503 errors.sip_408 \
    errors.sip_no_answer errors.to_nowhere errors.to_unfederated errors.policy_reject_xmpp \
    errors.policy_reject_sip errors.prosody_down

it_world udp:127.0.0.4:5070
tab=$'\t'

# errors.sip_CODE: the UAS answers CODE; alice gets one error stanza with CONDITION.
it_sip_error() {
    local code=$1 reason=$2 cond=$3 name=errors.sip_$1 got
    it_sipp_uas "uas$code" 127.0.0.4 5070 "$code" "$reason" 1
    it_xmpp "alice$code" --to bob@sip.test --send 1 --body "answer me $code" --expect 1 \
        --timeout 20
    it_wait_exit "alice$code" 25
    it_stop "uas$code"
    got=$(it_xmpp_summary "alice$code" | cut -f1-3)
    if [ "$got" = "bob@sip.test${tab}error${tab}$cond" ]; then
        it_pass "$name"
    else
        it_fail "$name" "UAS answered $code; alice got [${got:-nothing}], wanted $cond"
    fi
}

it_sip_error 404 "Not Found" item-not-found
it_sip_error 480 "Temporarily Unavailable" recipient-unavailable
it_sip_error 403 Forbidden forbidden
it_sip_error 503 "Service Unavailable" internal-server-error
it_sip_error 408 "Request Timeout" remote-server-timeout

# errors.sip_no_answer: the UAS stays silent; the gateway's non-INVITE transaction times out
# (timer F, 32 s with the default T1) and alice gets remote-server-timeout.
it_start silent sipp -sf "$IT_DIR/sipp/uas-silent.xml" -i 127.0.0.4 -p 5070 -m 1 \
    -timeout 60s -nostdin
sleep 0.3
it_xmpp alice-silent --to bob@sip.test --send 1 --body "anyone there?" --expect 1 --timeout 45
it_wait_exit alice-silent 50
it_stop silent
got=$(it_xmpp_summary alice-silent | cut -f1-3)
if [ "$got" = "bob@sip.test${tab}error${tab}remote-server-timeout" ]; then
    it_pass errors.sip_no_answer
else
    it_fail errors.sip_no_answer "alice got [${got:-nothing}] within 45 s"
fi

# it_sip_refused NAME TO WHAT: bob's MESSAGE to TO gets a 4xx/5xx final response.
it_sip_refused() {
    local name=$1 to=$2 what=$3 codes
    IT_UAC_WAIT=${4:-10000} it_sipp_uac "uac-${name#errors.}" 127.0.0.3:5060 \
        sip:bob@sip.test "$to" "$what" 1 -p 5080
    codes=$(it_sip_final_codes "uac-${name#errors.}" | tr '\n' ' ')
    if [[ "$codes" =~ ^[456][0-9][0-9]\ $ ]]; then
        it_pass "$name"
    else
        it_fail "$name" "bob's MESSAGE to $to ($what) got final codes [${codes:-none}]"
    fi
}

it_sip_refused errors.to_nowhere sip:carol@nowhere.test "a domain without DNS records"
it_sip_refused errors.to_unfederated sip:dave@other.test "a domain that is no partner"

# errors.policy_reject_*: the policy's on_message rejects bodies with "forbidden word" (see
# conf/policy.lua.in): alice gets policy-violation, bob a 4xx-6xx, and nothing is delivered.
IT_UAS_HOLD=300 it_sipp_uas uas-policy 127.0.0.4 5070 200 OK 1
it_xmpp alice-policy --to bob@sip.test --send 1 --body "a forbidden word" --expect 1 --timeout 15
it_wait_exit alice-policy 20
got=$(it_xmpp_summary alice-policy | cut -f1-3)
it_stop uas-policy
delivered=$(it_sip_summary uas-policy)
if [ "$got" = "bob@sip.test${tab}error${tab}policy-violation" ] && [ -z "$delivered" ]; then
    it_pass errors.policy_reject_xmpp
else
    it_fail errors.policy_reject_xmpp "alice got [${got:-nothing}], the UAS got [$delivered]"
fi
it_sip_refused errors.policy_reject_sip sip:alice@xmpp.test "a forbidden word"

# errors.prosody_down: with Prosody stopped, a MESSAGE to alice is refused, not 200.
it_stop prosody
it_sip_refused errors.prosody_down sip:alice@xmpp.test "xmpp.test with Prosody down" 20000
