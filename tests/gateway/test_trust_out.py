"""Outbound trust (issue 8): the gateway opens its stream to a fake
peer.test server that presents a certificate from the test PKI
(tests/tls/make_test_pki.sh) and offers, or not, STARTTLS and SASL
EXTERNAL. Each outbound row of the negotiation matrix is walked with a SIP
MESSAGE toward alice@peer.test: the method used (SASL EXTERNAL or
dialback), the certificate verdict logged, and, where the rules refuse the
peer, the stream error it gets, the reason in the log and the SIP error the
sender gets (nothing delivered).

Run inside a private network namespace (run_in_netns.sh), like
test_gateway.py; a test's name as argument runs only it."""

import asyncio
import base64
import os
import ssl
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from gwlib import (NS_TLS, Gateway, Peer, SipEndpoint, StreamParser,  # noqa: E402
                   free_port, header, run_tests)

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_DB = "jabber:server:dialback"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PKI = None


def pki():
    global PKI
    if PKI is None:
        PKI = tempfile.mkdtemp(prefix="xs-trust-out-pki-")
        subprocess.run([os.path.join(REPO, "tests", "tls", "make_test_pki.sh"), PKI, "sip.test",
                        "peer.test"], check=True, capture_output=True)
    return PKI


class TrustPeer(Peer):
    """peer.test presenting `cert`; `starttls` "required", "optional" or
    None (not offered); `sasl` None (EXTERNAL not offered), "success" or
    "failure" (answered to the gateway's <auth>). Records what happened."""

    def __init__(self, tmp, gw_port, cert, starttls="required", sasl=None):
        super().__init__(tmp, gw_port)
        p = pki()
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(f"{p}/{cert}.pem", f"{p}/{cert}.key")
        self.server_ctx.verify_mode = ssl.CERT_OPTIONAL
        self.server_ctx.load_verify_locations(f"{p}/ca.pem")
        self.starttls, self.sasl = starttls, sasl
        # Our dialback verification streams to the gateway use TLS when we do.
        self.use_tls = starttls is not None
        self.auths = []            # the gateway's <auth> initial responses, decoded
        self.tls_used = False
        self.gateway_cert = None   # the certificate the gateway presented (decoded)
        self.stream_errors = []    # conditions and texts of the gateway's stream errors
        self.db_results = 0
        self.listen_after_tls = False

    async def _serve(self, s):
        tls_done = sasl_done = False
        while True:
            kind, h = await s.next(30)
            if kind != "header":
                return
            if tls_done and self.listen_after_tls:
                # Read before writing: a gateway that refuses our certificate
                # says so and closes at once, and our own bytes would meet a
                # reset that discards its stream error unread.
                kind, el = await s.next(10)
                if kind == "el":
                    await self._element(s, el, None)
                return
            sid = uuid.uuid4().hex
            s.send(header(self.domain, h.attrs.get("from"), sid))
            feats = "<dialback xmlns='urn:xmpp:features:dialback'/>"
            if sasl_done:
                s.send("<stream:features/>")
                break
            if self.starttls and not tls_done:
                req = "<required/>" if self.starttls == "required" else ""
                s.send(f"<stream:features><starttls xmlns='{NS_TLS}'>{req}</starttls>{feats}"
                       "</stream:features>")
            elif tls_done and self.sasl:
                s.send(f"<stream:features><mechanisms xmlns='{NS_SASL}'><mechanism>EXTERNAL"
                       f"</mechanism></mechanisms>{feats}</stream:features>")
            else:
                s.send(f"<stream:features>{feats}</stream:features>")
            kind, el = await s.next(30)
            if kind != "el":
                return
            if el.name == "starttls":
                s.send(f"<proceed xmlns='{NS_TLS}'/>")
                await s.w.drain()
                await s.w.start_tls(self.server_ctx)
                self.tls_used = True
                self.gateway_cert = s.w.get_extra_info("peercert")
                s.parser = StreamParser()
                tls_done = True
                continue
            if el.name == "auth" and el.ns == NS_SASL:
                self.auths.append(base64.b64decode(el.text or "").decode())
                if self.sasl == "success":
                    s.send(f"<success xmlns='{NS_SASL}'/>")
                    s.parser = StreamParser()
                    sasl_done = True
                    continue
                s.send(f"<failure xmlns='{NS_SASL}'><not-authorized/>"
                       "<text>we do not trust your CA</text></failure>")
                break
            await self._element(s, el, sid)
            break
        while True:
            kind, el = await s.next(60)
            if kind != "el":
                return
            await self._element(s, el, sid)

    async def _element(self, s, el, sid):
        if el.ns == NS_DB and el.name == "result":
            self.db_results += 1
            ok = await self.verify_with_gateway(el.attrs["from"], sid, el.text)
            s.send(f"<db:result from='{self.domain}' to='{el.attrs['from']}' "
                   f"type='{'valid' if ok else 'invalid'}'/>")
        elif el.name == "error" and el.ns == "http://etherx.jabber.org/streams":
            conds = [c.name for c in el.children if c.name != "text"]
            text = [c.text for c in el.children if c.name == "text"]
            self.stream_errors.append((conds[0] if conds else None, text[0] if text else None))
        elif el.name in ("message", "presence"):
            await self.received.put(el)


class Env:
    def __init__(self, tmp, rules, cert="peer.test", starttls="required", sasl=None):
        self.tmp, self.rules = tmp, rules
        self.gw_port, self.sip_port = free_port(), free_port()
        self.next_hop_port, self.peer_port = free_port(), free_port()
        self.cert, self.starttls, self.sasl = cert, starttls, sasl
        p = pki()
        self.gw = Gateway(tmp, f"""
gateway {{
  domains = {{ "sip.test" }},
  tls = {{ cert = "{p}/sip.test.pem", key = "{p}/sip.test.key", ca = "{p}/ca.pem" }},
  xmpp = {{ listen = "127.0.0.1:{self.gw_port}", connect_timeout = 5,
           dialback_secret = "gw-secret", error_grace = 0.2 }},
  sip  = {{ listen = {{ "udp:127.0.0.1:{self.sip_port}" }},
           next_hop = "udp:127.0.0.1:{self.next_hop_port}" }},
}}
partner "peer.test" {{ {rules}, route = "127.0.0.1:{self.peer_port}" }}
""")

    async def __aenter__(self):
        self.sip = self.peer = None
        try:
            self.gw.start()
            loop = asyncio.get_running_loop()
            self.sip = SipEndpoint()
            await loop.create_datagram_endpoint(lambda: self.sip,
                                                local_addr=("127.0.0.1", self.next_hop_port))
            self.peer = TrustPeer(self.tmp, self.gw_port, self.cert, self.starttls, self.sasl)
            await self.peer.start(self.peer_port)
        except BaseException:
            await self._stop()
            raise
        return self

    async def _stop(self):
        if self.peer is not None:
            await self.peer.stop()
        if self.sip is not None and self.sip.transport is not None:
            self.sip.transport.close()
        return self.gw.stop()

    async def __aexit__(self, *exc):
        await self._stop()

    async def send(self, body):
        """A MESSAGE from bob@sip.test to alice@peer.test; its final status."""
        self.sip.send_message(self.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", body)
        resp = await asyncio.wait_for(self.sip.responses.get(), 15)
        return resp["code"]


async def delivered(e, body):
    el = await asyncio.wait_for(e.peer.received.get(), 10)
    b = [c for c in el.children if c.name == "body"]
    assert b and b[0].text == body, el


async def nothing_delivered(e):
    assert e.peer.received.empty(), "a stanza reached the peer"


async def test_sasl_external_with_a_valid_certificate(tmp):
    async with Env(tmp, 'type = "verified"', sasl="success") as e:
        assert await e.send("over EXTERNAL") == 200
        await delivered(e, "over EXTERNAL")
        assert e.peer.auths == ["sip.test"], e.peer.auths
        assert e.peer.db_results == 0, "dialback was used after SASL EXTERNAL"
        # The gateway presented its own certificate, for sip.test.
        assert ("DNS", "sip.test") in e.peer.gateway_cert["subjectAltName"], e.peer.gateway_cert
        e.gw.wait_log("ev=s2s.out.tls .*remote=peer.test .*cert=\"peer.test\" verdict=ok")
        e.gw.wait_log("ev=s2s.out.auth .*method=sasl-external result=ok")


async def test_sasl_refused_falls_back_to_dialback(tmp):
    async with Env(tmp, 'type = "verified"', sasl="failure") as e:
        assert await e.send("after a refusal") == 200
        await delivered(e, "after a refusal")
        assert e.peer.auths == ["sip.test"]
        assert e.peer.db_results == 1
        e.gw.wait_log('ev=s2s.out.auth .*method=sasl-external result=refused reason="peer.test '
                      'refused our certificate \\(not-authorized: we do not trust your CA\\)"')


async def test_sasl_refused_and_dialback_off(tmp):
    async with Env(tmp, 'type = "verified", dialback = false', sasl="failure") as e:
        assert await e.send("nowhere") == 404
        await nothing_delivered(e)
        assert e.peer.db_results == 0
        e.gw.wait_log("ev=s2s.out.failed .*refused our certificate .*and dialback is off")


async def test_sasl_required_not_offered(tmp):
    async with Env(tmp, 'type = "verified", sasl = "required"', sasl=None) as e:
        assert await e.send("nowhere") == 404
        await nothing_delivered(e)
        assert e.peer.db_results == 0
        e.gw.wait_log("ev=s2s.out.failed .*peer.test does not offer SASL EXTERNAL, which this "
                      "partner requires")


async def refused_certificate(tmp, cert, reason):
    async with Env(tmp, 'type = "verified"', cert=cert, sasl="success") as e:
        e.peer.listen_after_tls = True
        assert await e.send("not to an impostor") == 404
        await nothing_delivered(e)
        assert e.peer.auths == [] and e.peer.db_results == 0
        e.gw.wait_log("ev=s2s.out.failed .*text=\"certificate of peer.test: " + reason)
        for _ in range(50):
            if e.peer.stream_errors:
                break
            await asyncio.sleep(0.1)
        assert e.peer.stream_errors and e.peer.stream_errors[0][0] == "policy-violation", \
            e.peer.stream_errors


async def test_verified_refuses_wrong_name(tmp):
    await refused_certificate(tmp, "peer.test-wrongname",
                              "presented wrong.peer.test; expected peer.test")


async def test_verified_refuses_internal_name(tmp):
    await refused_certificate(tmp, "int.peer.test", "presented int.peer.test; expected peer.test")


async def test_verified_refuses_expired(tmp):
    await refused_certificate(tmp, "peer.test-expired", "expired on 2021-01-01 00:00:00 UTC")


async def test_verified_refuses_other_ca(tmp):
    await refused_certificate(tmp, "peer.test-otherca", "issued by Other CA, not a trusted CA")


async def test_verified_refuses_self_signed(tmp):
    await refused_certificate(tmp, "peer.test-self", "self-signed, not issued by a trusted CA")


async def test_verified_refuses_no_san(tmp):
    await refused_certificate(tmp, "peer.test-nosan",
                              "presented no subjectAltName \\(CN=peer.test\\); expected peer.test")


async def test_spoofing_peer_with_a_valid_certificate_for_another_domain(tmp):
    # A certificate the CA issued, for sip.test: valid, but not peer.test's.
    await refused_certificate(tmp, "sip.test", "presented sip.test; expected peer.test")


async def test_unverified_partner_logs_and_uses_dialback(tmp):
    async with Env(tmp, 'type = "unverified"', cert="peer.test-wrongname") as e:
        assert await e.send("dialback is enough") == 200
        await delivered(e, "dialback is enough")
        assert e.peer.db_results == 1
        e.gw.wait_log('ev=s2s.out.tls .*cert="wrong.peer.test" verdict=failed reason="presented '
                      'wrong.peer.test; expected peer.test"')


async def test_verified_partner_without_tls_refused(tmp):
    # tls "optional" with verify "ca": a peer offering no TLS cannot show a certificate.
    async with Env(tmp, 'type = "unverified", tls = "optional", verify = "ca"',
                   starttls=None) as e:
        assert await e.send("in the clear") == 404
        await nothing_delivered(e)
        assert e.peer.db_results == 0
        e.gw.wait_log("ev=s2s.out.failed .*peer.test offers no TLS, so its certificate cannot "
                      "be verified")


async def test_tls_none_never_starts_tls(tmp):
    async with Env(tmp, 'type = "unverified", tls = "none"', starttls="optional") as e:
        e.peer.use_tls = False  # the gateway offers no STARTTLS to a tls "none" partner
        assert await e.send("plain by agreement") == 200
        await delivered(e, "plain by agreement")
        assert not e.peer.tls_used
        assert e.peer.db_results == 1


TESTS = [
    test_sasl_external_with_a_valid_certificate,
    test_sasl_refused_falls_back_to_dialback,
    test_sasl_refused_and_dialback_off,
    test_sasl_required_not_offered,
    test_verified_refuses_wrong_name,
    test_verified_refuses_internal_name,
    test_verified_refuses_expired,
    test_verified_refuses_other_ca,
    test_verified_refuses_self_signed,
    test_verified_refuses_no_san,
    test_spoofing_peer_with_a_valid_certificate_for_another_domain,
    test_unverified_partner_logs_and_uses_dialback,
    test_verified_partner_without_tls_refused,
    test_tls_none_never_starts_tls,
]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "xs-trust-out-", sys.argv))
