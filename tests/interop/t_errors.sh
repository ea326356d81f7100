#!/usr/bin/env bash
# Story 3: failures come back to the sender. SIP final responses from the UAS become XMPP
# error stanzas for alice (RFC 7247 section 7.2); bob's MESSAGEs that cannot be delivered get
# the exact final response for the stage that refused them (proved by the gateway's log),
# never 200, and nothing reaches the far end.
set -u
. "$(dirname "$0")/lib.sh"

it_setup errors errors.sip_404 errors.sip_480 errors.sip_403 errors.sip_503 errors.sip_408 \
    errors.sip_no_answer errors.to_nowhere errors.to_unfederated errors.dns_nxdomain \
    errors.dns_timeout errors.dns_srv_nowhere errors.dns_srv_dot errors.policy_reject_xmpp \
    errors.policy_reject_sip errors.prosody_down

partners='partner "xmpp.test" { tls = "required", dialback = true }'
for d in nx.test timeout.test srvgone.test dot.test; do
    partners+=" partner \"$d\" { tls = \"required\", dialback = true }"
done
it_world udp:127.0.0.4:5070 "$partners"
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
it_wait_listen 127.0.0.4 5070 10
it_xmpp alice-silent --to bob@sip.test --send 1 --body "anyone there?" --expect 1 --timeout 45
it_wait_exit alice-silent 50
it_stop silent
got=$(it_xmpp_summary alice-silent | cut -f1-3)
if [ "$got" = "bob@sip.test${tab}error${tab}remote-server-timeout" ]; then
    it_pass errors.sip_no_answer
else
    it_fail errors.sip_no_answer "alice got [${got:-nothing}] within 45 s"
fi

# it_sip_refused NAME TO WHAT CODE PROOF [WAIT-MS]: bob's MESSAGE to TO gets exactly one final
# response, CODE, and the gateway logs a line matching PROOF (the stage that refused it)
# after the MESSAGE was sent. When IT_FAR_END names an online XMPP client, it must have
# received nothing; IT_NO_STREAM=DOMAIN asserts that no outbound stream to DOMAIN was opened.
it_sip_refused() {
    local name=$1 to=$2 what=$3 code=$4 proof=$5 uac="uac-${1#errors.}" codes rc mark
    local problems=() arrived
    mark=$(wc -l <"$IT_TMP/xsgw.err")
    IT_UAC_WAIT=${6:-10000} it_sipp_uac "$uac" 127.0.0.3:5060 sip:bob@sip.test "$to" "$what" 1 \
        -p 5080
    rc=$?
    codes=$(it_sip_final_codes "$uac" | tr '\n' ' ')
    [ "$codes" = "$code " ] || problems+=("final codes [${codes:-none}], want $code")
    [ "$rc" = 0 ] || problems+=("sipp exited $rc")
    tail -n +"$((mark + 1))" "$IT_TMP/xsgw.err" | grep -qE -- "$proof" ||
        problems+=("no gateway log line matching [$proof]")
    if [ -n "${IT_NO_STREAM:-}" ] && tail -n +"$((mark + 1))" "$IT_TMP/xsgw.err" |
        grep -qE "ev=s2s\.out\.state .*remote=${IT_NO_STREAM//./\\.} "; then
        problems+=("the gateway opened a stream to $IT_NO_STREAM")
    fi
    if [ -n "${IT_FAR_END:-}" ]; then
        # The refusal is synchronous, so a delivery would already be on its way; give it
        # the error grace and a margin to arrive before looking.
        sleep 2
        it_stop "$IT_FAR_END"
        arrived=$(it_xmpp_summary "$IT_FAR_END")
        [ -z "$arrived" ] || problems+=("alice received [$arrived]")
    fi
    if [ ${#problems[@]} = 0 ]; then
        it_pass "$name"
    else
        it_fail "$name" "bob's MESSAGE to $to ($what): $(IFS=';'; echo "${problems[*]}")"
    fi
}

# A domain that is no partner is refused by the allow-list (forbidden, 403: see
# proxy/sip/sip_errmap.c for why not note 2's 603) before any DNS lookup or stream:
# other.test has SRV records pointing at Prosody, so a broken allow-list would reach
# Prosody (host-unknown, i.e. 404) instead.
IT_NO_STREAM=nowhere.test it_sip_refused errors.to_nowhere sip:carol@nowhere.test \
    "a domain without DNS records that is no partner" 403 \
    'ev=router\.refused .*to=sip:carol@nowhere\.test cond=forbidden'
IT_NO_STREAM=other.test it_sip_refused errors.to_unfederated sip:dave@other.test \
    "a domain that is no partner" 403 \
    'ev=router\.refused .*to=sip:dave@other\.test cond=forbidden'

# Partners whose DNS is broken (see it_dns_start): the lookup really happens and fails.
# NXDOMAIN: no SRV, so the RFC 6120 3.2.2 fallback tries the domain itself, which has no
# address either.
it_sip_refused errors.dns_nxdomain sip:carol@nx.test "a partner with no DNS records" 404 \
    'ev=s2s\.out\.connect .*remote=nx\.test target=nx\.test:5269 result=ENOTFOUND'
# No answer from the DNS server: the resolver's deadline (2 s x 2) ends it, and a domain
# that cannot be resolved is 408, worth trying later (RFC 7247 section 7.1 note 4).
it_sip_refused errors.dns_timeout sip:carol@timeout.test "a partner whose DNS times out" 408 \
    'ev=s2s\.out\.dns .*remote=timeout\.test result=ETIMEOUT' 40000
# The SRV record names a host with no address.
it_sip_refused errors.dns_srv_nowhere sip:carol@srvgone.test "an SRV target without address" \
    404 'ev=s2s\.out\.connect .*remote=srvgone\.test target=gone\.srvgone\.test:5269 result=ENOTFOUND'
# The SRV target is ".": the service is decidedly not available, no connection is tried.
it_sip_refused errors.dns_srv_dot sip:carol@dot.test "an SRV target of ." 404 \
    'ev=s2s\.out\.dns .*remote=dot\.test result=ENOTFOUND'

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
if it_alice_listen alice-reject 1 15; then
    IT_FAR_END=alice-reject it_sip_refused errors.policy_reject_sip sip:alice@xmpp.test \
        "a forbidden word" 403 \
        'ev=router\.refused .*origin=sip .*to=sip:alice@xmpp\.test cond=policy-violation'
else
    it_fail errors.policy_reject_sip "alice could not log in"
fi

# errors.prosody_down: with Prosody stopped, a MESSAGE to alice is refused, not 200: the
# connection to xmpp.test's s2s port is refused (remote-server-not-found, 404).
it_stop prosody
it_sip_refused errors.prosody_down sip:alice@xmpp.test "xmpp.test with Prosody down" 404 \
    'ev=s2s\.out\.connect .*remote=xmpp\.test target=xmpp\.test:5269 result=EREFUSED' 20000
