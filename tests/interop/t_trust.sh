#!/usr/bin/env bash
# Issue 8 with real peers and certificates from a test CA (tests/tls/make_test_pki.sh):
# Prosody with s2s_secure_auth = true (no dialback without a valid certificate) and the
# gateway authenticate each other with SASL EXTERNAL both ways; a Prosody presenting a
# certificate for another name is refused by the gateway with both names in the log;
# Kamailio's tls module as the SIP edge requiring and verifying client certificates: the
# gateway reaches it over mutual TLS, Kamailio reaches the gateway the same way, an edge
# presenting the certificate of its internal name is refused, and so is the edge's client
# certificate when the gateway trusts the wrong CA.
set -u
. "$(dirname "$0")/lib.sh"

it_setup trust trust.xmpp_to_sip_sasl_external trust.sip_to_xmpp_sasl_external \
    trust.prosody_wrong_name_refused trust.kamailio_mutual_tls trust.kamailio_to_gateway_tls \
    trust.kamailio_internal_name_refused trust.gateway_wrong_ca trust.ejabberd_sasl_external \
    trust.validate_pass trust.validate_wrong_name trust.validate_sip_internal_name
. "$(dirname "$0")/ejabberd.sh"
trap ej_exit EXIT

PKI=$IT_TMP/pki

# trust_validate NAME ARGS...: `xsgw validate ARGS` against the running policy (the gateway
# runs, so its listener is taken), output in NAME.out; returns its exit status.
trust_validate() {
    local name=$1
    shift
    nsx timeout 60 "$XSGW" validate --policy "$IT_TMP/policy.lua" --lua-dir "$REPO/lua" "$@" \
        >"$IT_TMP/$name.out" 2>"$IT_TMP/$name.err"
}
trust_runs=0
tab=$'\t'
"$REPO/tests/tls/make_test_pki.sh" "$PKI" sip.test xmpp.test ejab.test >/dev/null 2>&1 ||
    it_fail_rest "tests/tls/make_test_pki.sh failed (openssl)"
it_have_gateway || it_fail_rest "no gateway binary at $XSGW (build it or set XSGW)"
# Direct TLS (XEP-0368) both ways: Prosody and the gateway publish _xmpps-server records.
ej_dns_start --srv-host=_xmpps-server._tcp.xmpp.test,xmpp.test,5270,0,5 \
    --srv-host=_xmpps-server._tcp.sip.test,gw.sip.test,5270,0,5 ||
    it_fail_rest "dnsmasq did not answer on 127.0.0.53"

# trust_prosody CERT: (re)start Prosody for xmpp.test presenting CERT from the test PKI.
trust_prosody() {
    it_stop prosody
    local d=$IT_TMP/prosody
    mkdir -p "$d/data" "$d/certs"
    cp "$PKI/$1.pem" "$d/certs/xmpp.test.crt"
    cp "$PKI/${1%-chain}.key" "$d/certs/xmpp.test.key"
    sed -e "s|@DIR@|$d|g" -e "s|@PKI@|$PKI|g" -e "s|@CERT@|$1|g" -e "s|@KEY@|${1%-chain}|g" \
        "$IT_DIR/conf/prosody-trust.cfg.lua.in" >"$d/prosody.cfg.lua"
    nsx prosodyctl --config "$d/prosody.cfg.lua" register alice xmpp.test "$IT_PASSWORD" \
        >>"$IT_TMP/prosodyctl.log" 2>&1 || return 1
    ln -sf "$d/prosody.log" "$IT_TMP/prosody.log"
    it_start prosody prosody --config "$d/prosody.cfg.lua" -F
    it_wait_tcp 127.0.0.2 5222 15 && it_wait_tcp 127.0.0.2 5269 5
}

# trust_gateway NEXT-HOP CA: (re)start the gateway with certificate sip.test, trusting CA.
trust_gateway() {
    it_stop xsgw
    sed -e "s|@PKI@|$PKI|g" -e "s|@CERT@|sip.test|g" -e "s|@CA@|$2|g" \
        -e "s|@NEXT_HOP@|$1|g" "$IT_DIR/conf/policy-trust.lua.in" >"$IT_TMP/policy.lua"
    # Each run's log is kept apart (xsgw.err.N) so the checks read only this one's.
    [ -s "$IT_TMP/xsgw.err" ] && mv "$IT_TMP/xsgw.err" "$IT_TMP/xsgw.err.$((++trust_runs))"
    it_gateway_start "$IT_TMP/policy.lua"
}

# trust_kamailio CERT: (re)start Kamailio as the TLS edge presenting CERT.
trust_kamailio() {
    it_stop kamailio
    local d=$IT_TMP/kamailio
    mkdir -p "$d"
    sed -e "s|@PKI@|$PKI|g" -e "s|@CERT@|$1|g" "$IT_DIR/conf/kamailio-tls.conf.in" >"$d/tls.cfg"
    sed -e "s|@DIR@|$d|g" "$IT_DIR/conf/kamailio-tls.cfg.in" >"$d/kamailio.cfg"
    [ -s "$IT_TMP/kamailio.err" ] && mv "$IT_TMP/kamailio.err" "$IT_TMP/kamailio.err.$((++trust_runs))"
    it_start kamailio kamailio -f "$d/kamailio.cfg" -DD -E -m 256 -M 16 \
        -P "$IT_TMP/kamailio.pid" -Y "$IT_TMP"
    it_wait_tcp 127.0.0.4 5061 10
}

trust_prosody xmpp.test-chain || it_fail_rest "Prosody did not start (prosody.log)"
trust_gateway udp:127.0.0.4:5070 ca || it_fail_rest "the gateway did not start"

# trust.xmpp_to_sip_sasl_external: Prosody reaches the gateway over Direct TLS (its
# _xmpps-server record), authenticates with its certificate (SASL EXTERNAL) and alice's chat
# reaches the SIP UAS.
it_sipp_uas uas1 127.0.0.4 5070 200 OK 1
it_xmpp alice1 --to bob@sip.test --send 1 --body "certified hello" --expect 0 --linger 1 \
    --timeout 25
it_wait_exit uas1 30
it_stop alice1
got=$(it_sip_summary uas1 | cut -f5)
if [ "$got" = "certified hello" ] &&
    grep -q 'ev=s2s\.in\.state .*reason=accepted listener=direct-tls' "$IT_TMP/xsgw.err" &&
    grep -q 'ev=s2s\.in\.auth .*remote=xmpp\.test .*method=sasl-external result=ok' \
        "$IT_TMP/xsgw.err"; then
    it_pass trust.xmpp_to_sip_sasl_external
else
    it_fail trust.xmpp_to_sip_sasl_external "the UAS got [${got:-nothing}]; gateway auth lines:" \
        "$(grep 'ev=s2s\.in\.auth' "$IT_TMP/xsgw.err" | head -3)"
fi

# trust.sip_to_xmpp_sasl_external: the gateway's own stream to Prosody, over Direct TLS
# (xmpps first, XEP-0368): Prosody's certificate verified for xmpp.test, SASL EXTERNAL with
# ours, bob's MESSAGE delivered.
if it_alice_listen alice2 1 25; then
    it_sipp_uac uac2 127.0.0.3:5060 sip:bob@sip.test sip:alice@xmpp.test "certified reply" 1 \
        -p 5080
    it_wait_exit alice2 20
    got=$(it_xmpp_summary alice2)
    codes=$(it_sip_final_codes uac2 | tr '\n' ' ')
    if [ "$got" = "bob@sip.test${tab}normal${tab}-${tab}certified reply" ] &&
        [ "$codes" = "200 " ] &&
        grep -q 'ev=s2s\.out\.state .*remote=xmpp\.test peer=127\.0\.0\.2:5270 .*reason="connected (direct tls)"' \
            "$IT_TMP/xsgw.err" &&
        grep -q 'ev=s2s\.out\.tls .*remote=xmpp\.test .*cert="xmpp.test" verdict=ok' \
            "$IT_TMP/xsgw.err" &&
        grep -q 'ev=s2s\.out\.auth .*remote=xmpp\.test method=sasl-external result=ok' \
            "$IT_TMP/xsgw.err"; then
        it_pass trust.sip_to_xmpp_sasl_external
    else
        it_fail trust.sip_to_xmpp_sasl_external "alice got [${got:-nothing}], codes [$codes];" \
            "$(grep 'ev=s2s\.out\.\(auth\|tls\|failed\)' "$IT_TMP/xsgw.err" | head -3)"
    fi
else
    it_fail trust.sip_to_xmpp_sasl_external "alice could not log in"
fi

# trust.validate_pass: xsgw validate xmpp.test against the working set-up: the SRV records
# of both kinds, Direct TLS, the certificate, SASL EXTERNAL, verdict PASS, exit 0.
trust_validate validate1 xmpp.test
rc=$?
if [ $rc = 0 ] && grep -q 'verdict: PASS' "$IT_TMP/validate1.out" &&
    grep -q '_xmpps-server._tcp.xmpp.test' "$IT_TMP/validate1.out" &&
    grep -qi 'sasl.external' "$IT_TMP/validate1.out"; then
    it_pass trust.validate_pass
else
    it_fail trust.validate_pass "exit $rc: $(tr '\n' '|' <"$IT_TMP/validate1.out" | head -c 1500)"
fi

# trust.prosody_wrong_name_refused: Prosody presents a certificate the CA issued for
# wrong.xmpp.test; the verified partner is refused before anything is sent, the log names
# both names, and bob gets 404.
trust_prosody xmpp.test-wrongname || it_fail_rest "Prosody did not restart"
trust_gateway udp:127.0.0.4:5070 ca || it_fail_rest "the gateway did not restart"
it_sipp_uac uac3 127.0.0.3:5060 sip:bob@sip.test sip:alice@xmpp.test "to an impostor" 1 -p 5080
codes=$(it_sip_final_codes uac3 | tr '\n' ' ')
if [ "$codes" = "404 " ] && grep -q 'ev=s2s\.out\.failed .*text="certificate of xmpp\.test: presented wrong\.xmpp\.test; expected xmpp\.test"' "$IT_TMP/xsgw.err"; then
    it_pass trust.prosody_wrong_name_refused
else
    it_fail trust.prosody_wrong_name_refused "bob got [$codes];" \
        "$(grep 'ev=s2s\.out\.\(tls\|failed\)' "$IT_TMP/xsgw.err" | head -3)"
fi

# trust.validate_wrong_name: the same mistake, diagnosed: FAIL, both names, a hint.
trust_validate validate2 --json xmpp.test
rc=$?
if [ $rc = 1 ] && "$PY" -c '
import json, sys
r = json.loads(open(sys.argv[1]).readline())
assert r["verdict"].startswith("FAIL"), r["verdict"]
text = json.dumps(r)
assert "presented wrong.xmpp.test; expected xmpp.test" in text, text
assert any(s.get("hint") for s in r["steps"] if not s["ok"]), r["steps"]
' "$IT_TMP/validate2.out" 2>"$IT_TMP/validate2.check"; then
    it_pass trust.validate_wrong_name
else
    it_fail trust.validate_wrong_name "exit $rc: $(head -c 1500 "$IT_TMP/validate2.out")" \
        "$(tail -2 "$IT_TMP/validate2.check")"
fi

# The SIP edge: Kamailio over mutual TLS, with Prosody back on its valid certificate.
trust_prosody xmpp.test-chain || it_fail_rest "Prosody did not restart"
trust_kamailio sip.test || it_fail_rest "Kamailio (tls module) did not listen on 5061"
trust_gateway tls:sip.test:5061 ca || it_fail_rest "the gateway did not restart"

# trust.kamailio_mutual_tls: the gateway connects to Kamailio over TLS, checks its
# certificate names sip.test, presents its own, which Kamailio requires and verifies.
it_xmpp alice4 --to bob@sip.test --send 1 --body "over mutual tls" --expect 0 --linger 2 \
    --timeout 25
it_wait_exit alice4 30
if it_wait_grep "$IT_TMP/kamailio.err" 'ev=kam\.message proto=tls .*verified=1 cn=sip\.test body=over mutual tls' 10 &&
    grep -q 'ev=sip\.tls dir=out .*result=ok expected=sip\.test cert="\?sip\.test"\?' \
        "$IT_TMP/xsgw.err"; then
    it_pass trust.kamailio_mutual_tls
else
    it_fail trust.kamailio_mutual_tls "Kamailio: $(grep 'ev=kam' "$IT_TMP/kamailio.err" | tail -2);" \
        "gateway: $(grep 'ev=sip\.tls' "$IT_TMP/xsgw.err" | head -2)"
fi

# trust.kamailio_to_gateway_tls: Kamailio relays bob's MESSAGE to the gateway over TLS with
# its client certificate, which the gateway checks against sip.tls.name.
if it_alice_listen alice5 1 25; then
    it_sipp_uac uac5 127.0.0.4:5060 sip:bob@sip.test sip:alice@xmpp.test "from the tls edge" 1 \
        -p 5081
    it_wait_exit alice5 20
    got=$(it_xmpp_summary alice5)
    codes=$(it_sip_final_codes uac5 | tr '\n' ' ')
    if [ "$got" = "bob@sip.test${tab}normal${tab}-${tab}from the tls edge" ] &&
        [ "$codes" = "200 " ] &&
        grep -q 'ev=sip\.tls dir=in .*result=ok .*cert="\?sip\.test"\?' "$IT_TMP/xsgw.err"; then
        it_pass trust.kamailio_to_gateway_tls
    else
        it_fail trust.kamailio_to_gateway_tls "alice got [${got:-nothing}], codes [$codes];" \
            "$(grep 'ev=sip\.tls' "$IT_TMP/xsgw.err" | tail -2)"
    fi
else
    it_fail trust.kamailio_to_gateway_tls "alice could not log in"
fi

# trust.kamailio_internal_name_refused: the edge presents the certificate of its internal
# name; the gateway refuses the connection, names both names, and alice gets an error.
trust_kamailio int.sip.test || it_fail_rest "Kamailio did not restart"
trust_gateway tls:sip.test:5061 ca || it_fail_rest "the gateway did not restart"
it_xmpp alice6 --to bob@sip.test --send 1 --body "not to the internal name" --expect 1 \
    --timeout 25
it_wait_exit alice6 30
got=$(it_xmpp_summary alice6 | cut -f3)
if [ -n "$got" ] && [ "$got" != "-" ] &&
    grep -q 'ev=sip\.tls dir=out .*result=refused expected=sip\.test cert="\?int\.sip\.test"\? reason="presented int\.sip\.test; expected sip\.test"' "$IT_TMP/xsgw.err" &&
    ! grep -q 'ev=kam\.message.*not to the internal name' "$IT_TMP/kamailio.err"; then
    it_pass trust.kamailio_internal_name_refused
else
    it_fail trust.kamailio_internal_name_refused "alice's error [${got:-none}];" \
        "$(grep 'ev=sip\.tls' "$IT_TMP/xsgw.err" | head -2)"
fi

# trust.validate_sip_internal_name: xsgw validate --sip names the edge's mistake.
trust_validate validate3 --sip
rc=$?
if [ $rc = 1 ] && grep -q 'presented int.sip.test; expected sip.test' "$IT_TMP/validate3.out" &&
    grep -q 'verdict: FAIL' "$IT_TMP/validate3.out" && grep -qi 'hint' "$IT_TMP/validate3.out"; then
    it_pass trust.validate_sip_internal_name
else
    it_fail trust.validate_sip_internal_name "exit $rc: $(tr '\n' '|' <"$IT_TMP/validate3.out" | head -c 1500)"
fi

# trust.gateway_wrong_ca: the gateway trusts another CA; Kamailio's valid client certificate
# is refused as not issued by a trusted CA, and nothing it relays is handled.
trust_kamailio sip.test || it_fail_rest "Kamailio did not restart"
trust_gateway tls:sip.test:5061 other-ca || it_fail_rest "the gateway did not restart"
it_sipp_uac uac7 127.0.0.4:5060 sip:bob@sip.test sip:alice@xmpp.test "wrong ca" 1 -p 5082
codes=$(it_sip_final_codes uac7 | tr '\n' ' ')
if [ -n "$codes" ] && [ "$codes" != "200 " ] &&
    grep -q 'ev=sip\.tls dir=in .*result=refused .*cert="\?sip\.test"\? reason="issued by Test Root CA, not a trusted CA"' "$IT_TMP/xsgw.err" &&
    ! grep -q 'ev=sip\.in .*method=MESSAGE' "$IT_TMP/xsgw.err"; then
    it_pass trust.gateway_wrong_ca
else
    it_fail trust.gateway_wrong_ca "bob got [$codes];" \
        "$(grep 'ev=sip\.tls' "$IT_TMP/xsgw.err" | head -2)"
fi

# trust.ejabberd_sasl_external: ejabberd with a certificate from the test CA and that CA as
# its ca_file: SASL EXTERNAL both ways with the gateway (a verified partner), chats both
# ways. (ejabberd without certificates, on dialback, is the ejabberd group.)
trust_gateway udp:127.0.0.4:5070 ca || it_fail_rest "the gateway did not restart"
if ej_installed && EJ_CERT=$PKI/ejab.test-chain.pem EJ_KEY=$PKI/ejab.test.key EJ_CA=$PKI/ca.pem \
    ej_start; then
    it_sipp_uas uas8 127.0.0.4 5070 200 OK 1
    ej_xmpp ella8 --to bob@sip.test --send 1 --body "ejabberd certified" --expect 1 --timeout 30
    it_wait_exit uas8 35
    it_sipp_uac uac8 127.0.0.3:5060 sip:bob@sip.test sip:ella@ejab.test "back to ejabberd" 1 \
        -p 5083
    it_wait_exit ella8 25
    got_sip=$(it_sip_summary uas8 | cut -f5)
    got_xmpp=$(it_xmpp_summary ella8 | cut -f4)
    codes=$(it_sip_final_codes uac8 | tr '\n' ' ')
    if [ "$got_sip" = "ejabberd certified" ] && [ "$got_xmpp" = "back to ejabberd" ] &&
        [ "$codes" = "200 " ] &&
        grep -q 'ev=s2s\.in\.auth .*remote=ejab\.test .*method=sasl-external result=ok' \
            "$IT_TMP/xsgw.err" &&
        grep -q 'ev=s2s\.out\.auth .*remote=ejab\.test method=sasl-external result=ok' \
            "$IT_TMP/xsgw.err"; then
        it_pass trust.ejabberd_sasl_external
    else
        it_fail trust.ejabberd_sasl_external "UAS got [${got_sip:-nothing}], ella got" \
            "[${got_xmpp:-nothing}], bob got [$codes];" \
            "$(grep 'ev=s2s\.\(in\|out\)\.auth.*ejab' "$IT_TMP/xsgw.err" | head -2)"
    fi
else
    it_fail trust.ejabberd_sasl_external "ejabberd did not start (ejabberd.log)"
fi
