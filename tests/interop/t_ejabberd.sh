#!/usr/bin/env bash
# ejabberd (Debian 12's 23.01) instead of Prosody as the gateway's XMPP partner: ejab.test on
# 127.0.0.7 (c2s 5222, s2s 5269, STARTTLS + dialback, self-signed certificate), user
# ella@ejab.test. A chat from ella reaches bob@sip.test (sipp UAS), and bob's MESSAGE (sipp
# UAC) reaches ella. 127.0.0.7 rather than 127.0.0.5: lib.sh's SIP UAC (bob) sends from .5.
#
# How the node runs (foreground, no epmd, ejabberdctl's work done by hand) is in ejabberd.sh.
# The last scenario stops the node by PID and checks that nothing Erlang is left in the
# namespace. XS_IT_EJABBERD_LOGLEVEL (default debug) sets ejabberd's loglevel.
#
# ejabberd.sustained_sip_to_xmpp_udp (issue 6 story 2, the peer without Stream Management):
# sipp sends XS_IT_SUS_RATE MESSAGEs a second (200) for XS_IT_SUS_SECONDS (60) over UDP to
# ella; ejabberd offers no XEP-0198 on s2s and ignores the <enable/> the gateway sends after
# dialback (xmpp.stream_management = "always", the default), so the gateway answers each
# MESSAGE after the error grace (0.25 s), before T1: every message arrives once, every MESSAGE
# gets 200, sipp retransmits none; the latency p50/p99 is logged.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sustained.sh"

it_setup ejabberd ejabberd.xmpp_to_sip ejabberd.sip_to_xmpp ejabberd.sustained_sip_to_xmpp_udp \
    ejabberd.prosody_control ejabberd.clean_stop

. "$(dirname "$0")/ejabberd.sh"
tab=$'\t'
body="héllo from ejabberd ☺ <b>&amp;</b> 'x' \"y\" ]]> &lt; </stream:stream>"
trap ej_exit EXIT

# ej_hint: what ejabberd's log says about the gateway's dialback elements, for FAIL lines.
# ejabberd's codec (xmpp, XEP-0220) knows dialback only as the prefixed names <db:result> and
# <db:verify>; <result xmlns='jabber:server:dialback'/> (the same element to a namespace-aware
# parser such as Prosody's) is an unknown tag to it and is dropped without an answer.
ej_hint() {
    local n
    n=$(grep -oE "<(result|verify) xmlns='jabber:server:dialback'" "$EJ_DIR/ejabberd.log" \
        2>/dev/null | wc -l)
    [ "${n:-0}" -gt 0 ] || return 0
    printf '; ejabberd got %s unprefixed dialback element(s) <result|verify ' "$n"
    printf "xmlns='jabber:server:dialback'> from the gateway and answered none (it only "
    printf 'decodes <db:result>/<db:verify>)'
}

it_have_gateway || it_fail_rest "no gateway binary at $XSGW (build it or set XSGW)"
if ! ej_installed; then
    for s in "${IT_SCENARIOS[@]}"; do it_skip "$s" "ejabberd is not installed (deps.sh)"; done
    exit 0
fi
ej_dns_start || it_fail_rest "dnsmasq did not answer for $EJ_DOMAIN on 127.0.0.53"
ej_start || it_fail_rest "ejabberd did not start or register failed (ejabberd.log, ejabberdctl.log)"
if ej_ns_erlang | grep -qw epmd; then
    it_log "an epmd runs in the namespace: $(ej_ns_erlang | tr '\n' ' ')"
fi
it_policy "$IT_TMP/policy.lua" policy.lua.in udp:127.0.0.4:5070 \
    "partner \"$EJ_DOMAIN\" { tls = \"required\", dialback = true }"
it_gateway_start "$IT_TMP/policy.lua" ||
    it_fail_rest "the gateway did not log ev=gateway.ready within 15 s"

# ejabberd.xmpp_to_sip: ella's chat to bob@sip.test; ejabberd finds the gateway by SRV, does
# STARTTLS and dialback; the UAS gets the exact body, From sip:ella@ejab.test;gr=<resource>.
it_sipp_uas uas1 127.0.0.4 5070 200 OK 1
ej_xmpp ella-tx --to bob@sip.test --send 1 --body "$body" --expect 0 --linger 1 --timeout 30
it_wait_exit uas1 35
it_stop ella-tx
got=$(it_sip_summary uas1)
want="sip:bob@sip.test${tab}$(it_xmpp_sip_from ella-tx)${tab}sip:bob@sip.test"
want+="${tab}text/plain;charset=utf-8${tab}$body"
if [ "$got" = "$want" ]; then
    it_pass ejabberd.xmpp_to_sip
else
    it_fail ejabberd.xmpp_to_sip "the SIP UAS got [${got:-nothing}], wanted [$want]$(ej_hint)"
fi

# ejabberd.sip_to_xmpp: bob's MESSAGE to sip:ella@ejab.test; the gateway opens its own s2s
# stream to ejab.test (STARTTLS, dialback verified by ejabberd over a second connection).
ej_xmpp ella-rx --expect 1 --timeout 30
if it_xmpp_online ella-rx 20; then
    it_sipp_uac uac1 127.0.0.3:5060 sip:bob@sip.test "sip:$EJ_USER@$EJ_DOMAIN" "$body back" 1 \
        -p 5080
    it_wait_exit ella-rx 30
    got=$(it_xmpp_summary ella-rx)
    codes=$(it_sip_final_codes uac1 | tr '\n' ' ')
    if [ "$got" = "bob@sip.test${tab}normal${tab}-${tab}$body back" ] && [ "$codes" = "200 " ]; then
        it_pass ejabberd.sip_to_xmpp
    else
        it_fail ejabberd.sip_to_xmpp \
            "ella got [${got:-nothing}], bob got final codes [$codes]$(ej_hint)"
    fi
else
    it_fail ejabberd.sip_to_xmpp "ella could not log in: $(tail -n 2 "$IT_TMP/ella-rx.out")"
fi

# ejabberd.sustained_sip_to_xmpp_udp: see the head of this file.
SUS_RATE=${XS_IT_SUS_RATE:-200}
SUS_SECS=${XS_IT_SUS_SECONDS:-60}
SUS_N=$((SUS_RATE * SUS_SECS))
ej_xmpp ella-sus --expect "$SUS_N" --timeout $((SUS_SECS + 50))
if it_xmpp_online ella-sus 20; then
    sus_uac sus "sip:$EJ_USER@$EJ_DOMAIN" "$SUS_RATE" "$SUS_SECS" udp
    it_wait_exit ella-sus 30
    sm=$(grep -cE 'ev=s2s\.out\.sm .*remote=ejab\.test result=(enabled|refused|bad-ack)' \
        "$IT_TMP/xsgw.err")
    if [ "${sm:-0}" -ne 0 ]; then
        it_fail ejabberd.sustained_sip_to_xmpp_udp "Stream Management with ejabberd did not stay unanswered: $(grep -E 'ev=s2s\.out\.sm' "$IT_TMP/xsgw.err" | tail -n 2)"
    else
        sus_verdict ejabberd.sustained_sip_to_xmpp_udp sus ella-sus "$SUS_N"
    fi
else
    it_fail ejabberd.sustained_sip_to_xmpp_udp "ella could not log in"
fi

# ejabberd.prosody_control: the same ejabberd federating with Prosody (STARTTLS, self-signed
# certificates, dialback both ways): alice@xmpp.test's chat reaches ella. It tells a problem of
# this ejabberd setup from a problem of the gateway.
if it_prosody_start; then
    ej_xmpp ella-ctl --expect 1 --timeout 30
    if it_xmpp_online ella-ctl 20; then
        it_xmpp alice-ctl --to "$EJ_USER@$EJ_DOMAIN" --send 1 --body "$body control" --linger 1 \
            --timeout 20
        it_wait_exit ella-ctl 30
        it_stop alice-ctl
        got=$(it_xmpp_summary ella-ctl)
        if [ "$got" = "alice@xmpp.test${tab}chat${tab}-${tab}$body control" ]; then
            it_pass ejabberd.prosody_control
        else
            it_fail ejabberd.prosody_control "ella got [${got:-nothing}] from alice@xmpp.test"
        fi
    else
        it_fail ejabberd.prosody_control "ella could not log in"
    fi
else
    it_fail ejabberd.prosody_control "Prosody did not start (prosody.log, prosodyctl.log)"
fi

# ejabberd.clean_stop: SIGTERM to the node's PID stops it within it_stop's 5 s, and nothing
# of Erlang (beam, erl_child_setup, memsup, epmd) is left alive in the namespace, nor any
# process anywhere whose command line names this group's ejabberd directory; no epmd ever
# ran. (erl_child_setup stays a zombie for about a second until PID 1 reaps it: zombies have
# left the namespace and have no command line, so they do not count.)
before=$(ej_ns_erlang | tr '\n' ' ')
it_stop ejabberd
for ((i = 0; i < 30; i++)); do
    left=$(ej_ns_erlang | tr '\n' ' ')
    left+=$(pgrep -f -- "$EJ_DIR" | sed 's/$/ (outside)/' | tr '\n' ' ')
    [ -z "$left" ] && break
    sleep 0.1
done
if [ -z "$left" ] && [[ "$before" != *epmd* ]] && [[ "$before" == *beam* ]]; then
    it_pass ejabberd.clean_stop
else
    it_fail ejabberd.clean_stop "before the stop [$before], left [${left:-nothing}]"
fi
