#!/usr/bin/env bash
# The peers on their own, without the gateway: proves the harness (namespace, DNS, Prosody,
# slixmpp, sipp, Kamailio) works, so a failure in the other groups points at the gateway.
set -u
. "$(dirname "$0")/lib.sh"

it_setup env env.dns env.prosody_local env.prosody_s2s_reaches_gateway env.sipp \
    env.kamailio_register_route env.kamailio_to_gateway env.kamailio_tls_client_cert \
    env.kamailio_tls_no_client_cert env.kamailio_tls_other_ca env.prosody_secure_direct_tls \
    env.prosody_secure_no_client_cert

# env.dns: A and SRV records, a TTL, NXDOMAIN for a name with no records.
it_dns_start
ok=1
why=
a=$(it_dns_query gw.sip.test A)
srv=$(it_dns_query _xmpp-server._tcp.sip.test SRV)
nx=$(it_dns_query nowhere.test A)
echo "$a" | grep -q '^A 127.0.0.3 ttl=60$' || { ok=0; why="gw.sip.test A: $a"; }
echo "$srv" | grep -q '^SRV 0 5 5269 gw.sip.test' || { ok=0; why="$why SRV: $srv"; }
echo "$nx" | grep -q '^rcode=3$' || { ok=0; why="$why nowhere.test: $nx"; }
if [ $ok = 1 ]; then it_pass env.dns; else it_fail env.dns "$why"; fi

# env.prosody_local: alice -> carol on the same Prosody, exact body.
body="héllo ☺ <b>&amp;</b> 'x' \"y\""
if ! it_prosody_start; then
    it_fail env.prosody_local "Prosody did not start (see prosody.log, prosodyctl.log)"
else
    it_xmpp carol --jid carol@xmpp.test --expect 1 --timeout 20
    if ! it_xmpp_online carol; then
        it_fail env.prosody_local "carol could not log in: $(tail -n 3 "$IT_TMP/carol.out")"
    else
        it_xmpp alice1 --to carol@xmpp.test --send 1 --body "$body" --timeout 20
        it_wait_exit carol 20
        got=$(it_xmpp_messages carol | "$PY" -c '
import json, sys
for l in sys.stdin:
    m = json.loads(l); print(m["from"].split("/")[0], m["type"], m["body"])')
        if [ "$got" = "alice@xmpp.test chat $body" ]; then
            it_pass env.prosody_local
        else
            it_fail env.prosody_local "carol got: ${got:-nothing}"
        fi
        it_stop alice1
    fi
fi

# env.prosody_s2s_reaches_gateway: a message to bob@sip.test makes Prosody look up
# _xmpp-server._tcp.sip.test through libunbound and dnsmasq and connect to 127.0.0.3:5269.
cat >"$IT_TMP/listener.py" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.3", 5269))
s.listen(4)
s.settimeout(20)
c, peer = s.accept()
c.settimeout(5)
data = b""
try:
    while len(data) < 4096 and b">" not in data[data.find(b"<stream:stream"):]:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
print("peer=%s:%d" % peer)
print(data.decode("utf-8", "replace"))
EOF
it_start listener "$PY" "$IT_TMP/listener.py"
it_wait_listen 127.0.0.3 5269 10
if it_running prosody; then
    it_xmpp alice2 --to bob@sip.test --send 1 --body "to the gateway" --timeout 10
    it_wait_exit listener 20
    if grep -q "<stream:stream" "$IT_TMP/listener.out" &&
        grep -q "to=['\"]sip.test['\"]" "$IT_TMP/listener.out"; then
        it_pass env.prosody_s2s_reaches_gateway
    else
        it_fail env.prosody_s2s_reaches_gateway \
            "nothing arrived at 127.0.0.3:5269: $(head -c 300 "$IT_TMP/listener.out")"
    fi
    it_stop alice2
else
    it_fail env.prosody_s2s_reaches_gateway "Prosody is not running"
fi

# env.sipp: sipp UAC -> sipp UAS, three numbered MESSAGEs with exact headers and bodies.
it_sipp_uas uas 127.0.0.4 5070 200 OK 3
it_sipp_uac uac 127.0.0.4:5070 sip:bob@sip.test sip:alice@xmpp.test "$body" 3 -r 50
it_wait_exit uas 10
got=$(it_sip_requests uas | "$PY" -c '
import json, sys
for l in sys.stdin:
    m = json.loads(l); h = m["headers"]
    print(m["uri"], h["from"].split(";")[0], h["content-type"], m["body"])')
want=$(for n in 1 2 3; do
    echo "sip:alice@xmpp.test <sip:bob@sip.test> text/plain;charset=UTF-8 $body $n"
done)
codes=$(it_sip_final_codes uac | tr '\n' ' ')
if [ "$got" = "$want" ] && [ "$codes" = "200 200 200 " ]; then
    it_pass env.sipp
else
    it_fail env.sipp "UAS got [$got], UAC codes [$codes]"
fi

# env.kamailio_register_route: bob's UA registers at Kamailio; a MESSAGE to bob@sip.test
# sent to Kamailio reaches it.
it_kamailio_start
it_sipp_register bob sip:bob@127.0.0.6:5090
reg=$?
it_sipp_uas bobua 127.0.0.6 5090 200 OK 1
it_sipp_uac uac2 127.0.0.4:5060 sip:alice@xmpp.test sip:bob@sip.test "via kamailio" 1
it_wait_exit bobua 10
got=$(it_sip_requests bobua | "$PY" -c '
import json, sys
for l in sys.stdin:
    m = json.loads(l); print(m["uri"], m["body"])')
codes=$(it_sip_final_codes uac2 | tr '\n' ' ')
if [ $reg = 0 ] && [ "$got" = "sip:bob@127.0.0.6:5090 via kamailio" ] && [ "$codes" = "200 " ]; then
    it_pass env.kamailio_register_route
else
    it_fail env.kamailio_register_route "register rc=$reg, UA got [$got], UAC codes [$codes]"
fi

# env.kamailio_to_gateway: a MESSAGE for a non-local domain is forwarded to 127.0.0.3:5060,
# where a sipp UAS stands in for the gateway.
it_sipp_uas fakegw 127.0.0.3 5060 200 OK 1
it_sipp_uac uac3 127.0.0.4:5060 sip:bob@sip.test sip:alice@xmpp.test "to xmpp" 1
it_wait_exit fakegw 10
got=$(it_sip_requests fakegw | "$PY" -c '
import json, sys
for l in sys.stdin:
    m = json.loads(l); print(m["uri"], m["body"])')
codes=$(it_sip_final_codes uac3 | tr '\n' ' ')
if [ "$got" = "sip:alice@xmpp.test to xmpp" ] && [ "$codes" = "200 " ]; then
    it_pass env.kamailio_to_gateway
else
    it_fail env.kamailio_to_gateway "stand-in gateway got [$got], UAC codes [$codes]"
fi

# env.kamailio_tls_*: Kamailio as the TLS edge of sip.test (conf/kamailio-tls-edge.cfg,
# tls:127.0.0.4:5061) requiring and verifying client certificates against the test CA
# (tests/tls/make_test_pki.sh), proven with openssl s_client: an OPTIONS with a certificate
# from the CA gets 200; without a client certificate, or with one from another CA, the
# handshake is refused and nothing is answered.
pki=$IT_TMP/pki
bash "$REPO/tests/tls/make_test_pki.sh" "$pki" sip.test xmpp.test secure.test >/dev/null ||
    it_fail_rest "make_test_pki.sh failed"

# Kamailio's tls.cfg: sip.test's certificate as server and client, peers verified against the
# test CA both ways.
cat >"$IT_TMP/kamailio-tls.cfg" <<TLS
[server:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
private_key = $pki/sip.test.key
certificate = $pki/sip.test-chain.pem
ca_list = $pki/ca.pem

[client:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
private_key = $pki/sip.test.key
certificate = $pki/sip.test-chain.pem
ca_list = $pki/ca.pem
TLS

mkdir -p "$IT_TMP/kamtls"
it_start kamailio_tls kamailio -f "$IT_DIR/conf/kamailio-tls-edge.cfg" \
    -A "TLSCFG=\"$IT_TMP/kamailio-tls.cfg\"" -DD -E -m 64 -M 16 -P "$IT_TMP/kamtls/kamailio.pid" -Y "$IT_TMP/kamtls"
it_wait_listen 127.0.0.4 5061 10 ||
    it_fail_rest "Kamailio's TLS edge did not start (kamailio_tls.err)"

# tls_options NAME [s_client options...]: one OPTIONS sip:sip.test over TLS to the edge;
# everything s_client printed goes to $IT_TMP/NAME.out.
tls_options() {
    local name=$1 req
    shift
    req=$'OPTIONS sip:sip.test SIP/2.0\r\n'
    req+=$'Via: SIP/2.0/TLS 127.0.0.5:5071;branch=z9hG4bK-'"$name"$'\r\n'
    req+=$'Max-Forwards: 70\r\nFrom: <sip:probe@xmpp.test>;tag=1\r\nTo: <sip:sip.test>\r\n'
    req+=$'Call-ID: '"$name"$'@127.0.0.5\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n'
    (printf '%s' "$req"; sleep 2) |
        nsx timeout 10 openssl s_client -connect 127.0.0.4:5061 -servername sip.test \
            -CAfile "$pki/ca.pem" -verify_return_error -verify_hostname sip.test -ign_eof \
            "$@" >"$IT_TMP/$name.out" 2>&1
}

tls_options client-cert -cert "$pki/xmpp.test-chain.pem" -key "$pki/xmpp.test.key"
# s_client prints the session ticket without a final newline: the status line may follow it.
status=$(grep -ao $'SIP/2.0 [0-9][0-9][0-9] [^\r]*' "$IT_TMP/client-cert.out" | head -n 1)
if [ "$status" = "SIP/2.0 200 TLS edge OK" ] &&
    grep -q 'ev=kam.tls method=OPTIONS ruri=sip:sip.test proto=tls peer_cn=xmpp.test peer_verified=1' \
        "$IT_TMP/kamailio_tls.err"; then
    it_pass env.kamailio_tls_client_cert
else
    it_fail env.kamailio_tls_client_cert \
        "OPTIONS with xmpp.test's certificate got [${status:-nothing}] (client-cert.out, kamailio_tls.err)"
fi

# Without a certificate, and with one the test CA did not sign: refused, nothing answered,
# nothing reached the routing script.
for case in no_client_cert other_ca; do
    if [ $case = no_client_cert ]; then
        tls_options no-cert
        out=$IT_TMP/no-cert.out
        want='alert certificate required'
    else
        tls_options other-ca -cert "$pki/xmpp.test-otherca.pem" -key "$pki/xmpp.test-otherca.key"
        out=$IT_TMP/other-ca.out
        want='alert unknown ca'
    fi
    n=$(grep -c 'ev=kam.tls' "$IT_TMP/kamailio_tls.err")
    if ! grep -aq 'SIP/2.0 [0-9]' "$out" && [ "$n" = 1 ] &&
        grep -aqE "$want" "$out"; then
        it_pass env.kamailio_tls_$case
    else
        it_fail env.kamailio_tls_$case \
            "answered or not refused: $(grep -ao -m1 -E 'SIP/2.0 [0-9]+|alert [a-z ]+' "$out"), wanted [$want] ($n requests routed)"
    fi
done

# env.prosody_secure_*: Prosody 0.12.3 for secure.test (conf/prosody-secure.cfg.lua.in:
# s2s_secure_auth = true, the test CA, s2s_direct_tls_ports = 5270). A server stream opened
# over Direct TLS (no STARTTLS) by a peer presenting xmpp.test's certificate from the CA is
# offered SASL EXTERNAL; without a client certificate the stream is refused at once
# (s2s_secure_auth: not-authorized, "could not be validated"), before any dialback.
sd=$IT_TMP/prosody-secure
mkdir -p "$sd/data" "$sd/certs"
cp "$pki/secure.test-chain.pem" "$sd/certs/secure.test.crt"
cp "$pki/secure.test.key" "$sd/certs/secure.test.key"
sed -e "s|@DIR@|$sd|g" -e "s|@PKI@|$pki|g" "$IT_DIR/conf/prosody-secure.cfg.lua.in" \
    >"$sd/prosody.cfg.lua"
it_start prosody_secure prosody --config "$sd/prosody.cfg.lua" -F
if ! it_wait_listen 127.0.0.8 5270 15; then
    it_fail env.prosody_secure_direct_tls "no Direct TLS listener on 127.0.0.8:5270 ($sd/prosody.log)"
    it_fail env.prosody_secure_no_client_cert "secure.test's Prosody did not start"
else
    # s2s_stream NAME [s_client options...]: open a jabber:server stream from xmpp.test to
    # secure.test over Direct TLS; what came back goes to $IT_TMP/NAME.out.
    s2s_stream() {
        local name=$1
        shift
        (printf "%s" "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
from='xmpp.test' to='secure.test' version='1.0'>"; sleep 2) |
            nsx timeout 10 openssl s_client -connect 127.0.0.8:5270 -servername secure.test \
                -CAfile "$pki/ca.pem" -verify_return_error -verify_hostname secure.test \
                -ign_eof -quiet "$@" >"$IT_TMP/$name.out" 2>&1
    }
    ext="<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism>"
    s2s_stream secure-cert -cert "$pki/xmpp.test-chain.pem" -key "$pki/xmpp.test.key"
    if grep -aq '<stream:features' "$IT_TMP/secure-cert.out" &&
        grep -aqF "$ext" "$IT_TMP/secure-cert.out"; then
        it_pass env.prosody_secure_direct_tls
    else
        it_fail env.prosody_secure_direct_tls \
            "no EXTERNAL offered over Direct TLS: $(head -c 400 "$IT_TMP/secure-cert.out")"
    fi
    s2s_stream secure-nocert
    if grep -aqF "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Your server&apos;s certificate could not be validated</text>" \
        "$IT_TMP/secure-nocert.out" && ! grep -aq 'stream:features' "$IT_TMP/secure-nocert.out"; then
        it_pass env.prosody_secure_no_client_cert
    else
        it_fail env.prosody_secure_no_client_cert \
            "not refused without a client certificate: $(head -c 400 "$IT_TMP/secure-nocert.out")"
    fi
fi
