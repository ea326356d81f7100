#!/usr/bin/env bash
# Story 2 of issue 6 against Prosody with Stream Management: a sustained stream of SIP
# MESSAGEs (sipp over UDP, XS_IT_SUS_RATE a second for XS_IT_SUS_SECONDS, default 200 x 60)
# through the gateway to alice@xmpp.test, with the gateway's default policy. The gateway
# asks Prosody for XEP-0198 after dialback (xmpp.stream_management = "always", the default:
# Prosody's mod_smacks accepts <enable/> on an authenticated s2s stream but offers <sm/> only
# after SASL, never on a dialback stream), so each 200 means Prosody acknowledged the stanza.
#   sustained.prosody_sm_enabled   Prosody's log and the gateway's say SM is on, on the
#                                  gateway's stream
#   sustained.sip_to_xmpp_udp      every message delivered once, every MESSAGE 200, no
#                                  retransmission by sipp; latency p50/p99 in the log
#   sustained.metrics_$T           the gateway's /metrics (parsed by prometheus_client)
#                                  counts exactly the messages sent, all delivered to
#                                  the partner xmpp.test, each with an outcome latency
#   sustained.status_page_$T       /status rendered by headless Chromium lists the
#                                  gateway's established stream with Prosody under the
#                                  partner xmpp.test (screenshot kept in the build dir)
# Bounded: about 80 s in all. XS_IT_SUS_TRANSPORT=tcp runs the same over TCP (scenario
# sustained.sip_to_xmpp_tcp).
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sustained.sh"

SUS_T=${XS_IT_SUS_TRANSPORT:-udp}
it_setup sustained sustained.prosody_sm_enabled "sustained.sip_to_xmpp_$SUS_T" \
    "sustained.metrics_$SUS_T" "sustained.status_page_$SUS_T"

RATE=${XS_IT_SUS_RATE:-200}
SECS=${XS_IT_SUS_SECONDS:-60}
N=$((RATE * SECS))

it_have_gateway || it_fail_rest "no gateway binary at $XSGW (build it or set XSGW)"
it_dns_start || it_fail_rest "dnsmasq did not answer on 127.0.0.53"
it_prosody_start || it_fail_rest "Prosody did not start (prosody.log, prosodyctl.log)"
it_policy "$IT_TMP/policy.lua" policy.lua.in udp:127.0.0.4:5070
it_gateway_start "$IT_TMP/policy.lua" ||
    it_fail_rest "the gateway did not log ev=gateway.ready within 15 s"

it_alice_listen alice-rx "$((N + 1))" $((SECS + 60)) || it_fail_rest "alice could not log in"
# Warm up: the first MESSAGE sets up the gateway's stream (SRV, STARTTLS, dialback, SM).
it_sipp_uac warm 127.0.0.3:5060 sip:bob@sip.test sip:alice@xmpp.test warm 1 -p 5081
if it_wait_grep "$IT_TMP/xsgw.err" 'ev=s2s\.out\.sm .*remote=xmpp\.test result=requested offered=0' 10 &&
    it_wait_grep "$IT_TMP/xsgw.err" 'ev=s2s\.out\.sm .*remote=xmpp\.test result=enabled' 10 &&
    it_wait_grep "$IT_TMP/prosody.log" 'Enabling stream management' 5; then
    it_pass sustained.prosody_sm_enabled
else
    it_fail sustained.prosody_sm_enabled "no SM on the gateway's stream: $(grep -E 'ev=s2s\.out\.sm' "$IT_TMP/xsgw.err" | tail -n 2)"
fi

start=$(date +%s)
sus_uac sus sip:alice@xmpp.test "$RATE" "$SECS" "$SUS_T"
it_wait_exit alice-rx 30
it_log "sustained run took $(($(date +%s) - start)) s; gateway: $(grep -c 'ev=s2s\.out\.sm' "$IT_TMP/xsgw.err") sm lines, $(grep -c 'ev=s2s\.out\.unconfirmed' "$IT_TMP/xsgw.err") unconfirmed"
sus_verdict "sustained.sip_to_xmpp_$SUS_T" sus alice-rx "$N"
# What the operator's scrape says about the same run: N + 1 (the warm-up) delivered to the
# partner, nothing else counted, every outcome timed; SIP requests in as many.
mc=$(nsx "$PY" "$IT_DIR/metrics_check.py" http://127.0.0.1:9269/metrics \
    "xsgw_messages_total{partner=\"xmpp.test\",direction=\"sip_to_xmpp\",outcome=\"delivered\",condition=\"none\"}=$((N + 1))" \
    "xsgw_outcome_seconds_count{direction=\"sip_to_xmpp\"}=$((N + 1))" \
    "xsgw_sip_requests_total{method=\"MESSAGE\",direction=\"in\"}=$((N + 1))" \
    --total xsgw_messages_total=$((N + 1)) 2>&1)
if [ "$mc" = ok ]; then
    it_pass "sustained.metrics_$SUS_T"
else
    it_fail "sustained.metrics_$SUS_T" "$mc"
fi
shot="${XS_ARTIFACTS:-$REPO/build}/interop-status-$SUS_T.png"
sc=$(nsx "$PY" "$IT_DIR/status_check.py" http://127.0.0.1:9269/status xmpp.test 1 "$shot" 2>&1)
if [ "$sc" = ok ]; then
    it_log "status page screenshot: $shot"
    it_pass "sustained.status_page_$SUS_T"
else
    it_fail "sustained.status_page_$SUS_T" "$sc"
fi
