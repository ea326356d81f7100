#!/usr/bin/env bash
# Story 7: Kamailio as proxy and registrar for sip.test. bob's UA (sipp UAS on 127.0.0.6)
# REGISTERs at Kamailio; the gateway's next hop is Kamailio; alice's chat reaches the
# registered UA through it, and bob's MESSAGE to alice@xmpp.test goes UA -> Kamailio ->
# gateway (Kamailio sends every non-sip.test request to the gateway) -> alice.
set -u
. "$(dirname "$0")/lib.sh"

it_setup kamailio kamailio.register kamailio.xmpp_to_registered_ua kamailio.ua_to_xmpp

tab=$'\t'
body="via Kamailio: héllo ☺ <b>&amp;</b>"
it_world udp:127.0.0.4:5060
it_kamailio_start || it_fail_rest "Kamailio did not start (kamailio.err)"

if it_sipp_register bob sip:bob@127.0.0.6:5090; then
    it_pass kamailio.register
else
    it_fail kamailio.register \
        "REGISTER bob@sip.test at Kamailio failed: $(tail -n 3 "$IT_TMP/register-bob.out")"
fi

it_sipp_uas bobua 127.0.0.6 5090 200 OK 1
it_xmpp alice-tx --to bob@sip.test --send 1 --body "$body" --linger 1 --timeout 20
it_wait_exit bobua 25
it_stop alice-tx
got=$(it_sip_summary bobua)
want="sip:bob@127.0.0.6:5090${tab}$(it_xmpp_sip_from alice-tx)${tab}sip:bob@sip.test"
want+="${tab}text/plain;charset=utf-8${tab}$body"
if [ "$got" = "$want" ]; then
    it_pass kamailio.xmpp_to_registered_ua
else
    it_fail kamailio.xmpp_to_registered_ua "bob's UA got [${got:-nothing}], wanted [$want]"
fi

if it_alice_listen alice-rx 1 20; then
    it_sipp_uac uac 127.0.0.4:5060 sip:bob@sip.test sip:alice@xmpp.test "$body back" 1 -p 5080
    it_wait_exit alice-rx 20
    got=$(it_xmpp_summary alice-rx)
    codes=$(it_sip_final_codes uac | tr '\n' ' ')
    if [ "$got" = "bob@sip.test${tab}normal${tab}-${tab}$body back" ] && [ "$codes" = "200 " ] &&
        grep -q 'ev=kam.to_gateway method=MESSAGE ruri=sip:alice@xmpp.test' \
            "$IT_TMP/kamailio.err"; then
        it_pass kamailio.ua_to_xmpp
    else
        it_fail kamailio.ua_to_xmpp "alice got [${got:-nothing}], bob got codes [$codes]"
    fi
else
    it_fail kamailio.ua_to_xmpp "alice could not log in"
fi
