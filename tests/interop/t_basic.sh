#!/usr/bin/env bash
# Stories 1 and 2: a chat from alice@xmpp.test (Prosody) to bob@sip.test (sipp UAS at the
# gateway's next hop), and MESSAGEs from bob (sipp UAC, UDP and TCP) to alice.
set -u
. "$(dirname "$0")/lib.sh"

it_setup basic basic.xmpp_to_sip basic.xmpp_to_sip_order basic.sip_to_xmpp_udp \
    basic.sip_to_xmpp_tcp basic.sip_to_xmpp_order

it_world udp:127.0.0.4:5070
body="héllo ☺ <b>&amp;</b> 'x' \"y\" ]]> &lt; </stream:stream>"
tab=$'\t'

# basic.xmpp_to_sip: RFC 7572 mapping of headers (alice's resource as the From's gr), exact
# UTF-8 body with XML specials. The
# first message also makes Prosody find the gateway (SRV), STARTTLS and dialback.
it_sipp_uas uas1 127.0.0.4 5070 200 OK 1
it_xmpp alice1 --to bob@sip.test --send 1 --body "$body" --expect 0 --linger 1 --timeout 20
it_wait_exit uas1 25
it_stop alice1
got=$(it_sip_summary uas1)
want="sip:bob@sip.test${tab}$(it_xmpp_sip_from alice1)${tab}sip:bob@sip.test"
want+="${tab}text/plain;charset=utf-8${tab}$body"
if [ "$got" = "$want" ]; then
    it_pass basic.xmpp_to_sip
else
    it_fail basic.xmpp_to_sip "the SIP UAS got [${got:-nothing}], wanted [$want]"
fi

# basic.xmpp_to_sip_order: five messages back to back arrive once each, in order.
it_sipp_uas uas2 127.0.0.4 5070 200 OK 5
it_xmpp alice2 --to bob@sip.test --send 5 --body "order {n}" --linger 1 --timeout 20
it_wait_exit uas2 20
it_stop alice2
got=$(it_sip_summary uas2 | cut -f5 | tr '\n' ',')
if [ "$got" = "order 1,order 2,order 3,order 4,order 5," ]; then
    it_pass basic.xmpp_to_sip_order
else
    it_fail basic.xmpp_to_sip_order "the SIP UAS got bodies [$got]"
fi

# basic.sip_to_xmpp_udp / _tcp: bob's MESSAGE reaches alice from bob@sip.test, of type normal
# (RFC 7572 section 5).
for tp in udp tcp; do
    name=basic.sip_to_xmpp_$tp
    it_alice_listen alice-$tp 1 25 || { it_fail "$name" "alice could not log in"; continue; }
    args=()
    [ $tp = tcp ] && args=(-t t1)
    it_sipp_uac uac-$tp 127.0.0.3:5060 sip:bob@sip.test sip:alice@xmpp.test "$body $tp" 1 \
        -p 5080 "${args[@]}"
    rc=$?
    it_wait_exit alice-$tp 20
    got=$(it_xmpp_summary alice-$tp)
    codes=$(it_sip_final_codes uac-$tp | tr '\n' ' ')
    if [ "$got" = "bob@sip.test${tab}normal${tab}-${tab}$body $tp" ] && [ "$codes" = "200 " ] &&
        [ "$rc" = 0 ]; then
        it_pass "$name"
    else
        it_fail "$name" "alice got [${got:-nothing}], bob got final codes [$codes], sipp $rc"
    fi
done

# basic.sip_to_xmpp_order: ten MESSAGEs sent back to back arrive once each, in order.
if it_alice_listen alice3 10 25; then
    it_sipp_uac uac3 127.0.0.3:5060 sip:bob@sip.test sip:alice@xmpp.test "seq" 10 -p 5080 \
        -r 1000 -rp 1000
    rc=$?
    it_wait_exit alice3 20
    got=$(it_xmpp_summary alice3 | cut -f4 | tr '\n' ',')
    want=$(for n in $(seq 1 10); do printf 'seq %d,' "$n"; done)
    codes=$(it_sip_final_codes uac3 | sort | uniq -c | tr -s ' ' | tr '\n' ',')
    # Every MESSAGE gets exactly one final response, and it is 200.
    if [ "$got" = "$want" ] && [ "$codes" = " 10 200," ] && [ "$rc" = 0 ]; then
        it_pass basic.sip_to_xmpp_order
    else
        it_fail basic.sip_to_xmpp_order \
            "alice got [$got], bob got codes [$codes] (want 10 x 200), sipp exited $rc"
    fi
else
    it_fail basic.sip_to_xmpp_order "alice could not log in"
fi
