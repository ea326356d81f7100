"""Inbound trust (issue 8): a peer server with a client certificate from the
test PKI (tests/tls/make_test_pki.sh) connects to the gateway, and each row
of the inbound negotiation matrix is walked: SASL EXTERNAL accepted or
refused with its condition, dialback allowed or refused per the partner's
rules with the exact stream error, tls "none", the Direct TLS listener, and
a reload that closes exactly the streams the stricter rules refuse.

Run inside a private network namespace (run_in_netns.sh), like
test_gateway.py; a test's name as argument runs only it."""

import asyncio
import atexit
import base64
import os
import shutil
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from gwlib import (NS_STREAM_ERR, NS_TLS, Gateway, Peer, SipEndpoint,  # noqa: E402
                   StreamParser, XStream, dialback_key, free_port, header, message, run_tests)

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PKI = None


def pki():
    """One test PKI for every test of the run (the script is idempotent)."""
    global PKI
    if PKI is None:
        PKI = tempfile.mkdtemp(prefix="xs-trust-in-pki-")
        atexit.register(shutil.rmtree, PKI, True)
        subprocess.run([os.path.join(REPO, "tests", "tls", "make_test_pki.sh"), PKI, "sip.test",
                        "peer.test"], check=True, capture_output=True)
    return PKI


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Env:
    """The gateway for sip.test with a CA bundle, partner peer.test under
    `rules`, a Direct TLS listener, a SIP next hop, and the fake peer.test
    server (gwlib.Peer) that answers the gateway's dialback verifications."""

    def __init__(self, tmp, rules='type = "unverified"', peer_offers_tls=True, hook=""):
        self.tmp, self.pki, self.hook = tmp, pki(), hook
        self.peer_offers_tls = peer_offers_tls
        self.gw_port, self.tls_port = free_port(), free_port()
        self.sip_port, self.next_hop_port, self.peer_port = free_port(), free_port(), free_port()
        self.gw = Gateway(tmp, self.policy_text(rules))

    def policy_text(self, rules):
        p = self.pki
        return f"""
gateway {{
  domains = {{ "sip.test" }},
  tls = {{ cert = "{p}/sip.test.pem", key = "{p}/sip.test.key", ca = "{p}/ca.pem" }},
  xmpp = {{ listen = "127.0.0.1:{self.gw_port}", listen_tls = "127.0.0.1:{self.tls_port}",
           connect_timeout = 5, dialback_secret = "gw-secret" }},
  sip  = {{ listen = {{ "udp:127.0.0.1:{self.sip_port}" }},
           next_hop = "udp:127.0.0.1:{self.next_hop_port}" }},
}}
partner "peer.test" {{ {rules}, route = "127.0.0.1:{self.peer_port}" }}
{self.hook}
"""

    async def __aenter__(self):
        self.sip = self.peer = None
        try:
            self.gw.start()
            loop = asyncio.get_running_loop()
            self.sip = SipEndpoint()
            await loop.create_datagram_endpoint(lambda: self.sip,
                                                local_addr=("127.0.0.1", self.next_hop_port))
            self.peer = Peer(self.tmp, self.gw_port, tls=self.peer_offers_tls)
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
        rc = await self._stop()
        if exc[0] is None and rc not in (0, None):
            raise AssertionError(f"xsgw exited with {rc} on SIGTERM")

    def client_ctx(self, cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cert:
            ctx.load_cert_chain(f"{self.pki}/{cert}.pem", f"{self.pki}/{cert}.key")
        return ctx

    async def open(self, cert="peer.test", frm="peer.test", tls=True):
        """A stream to sip.test: header, features (kept as .plain_features),
        STARTTLS with `cert` as our client certificate when `tls`, and the
        features after it (.features)."""
        s = await XStream.connect(self.gw_port)
        s.send(header(frm, "sip.test"))
        kind, h = await s.next()
        assert kind == "header", kind
        s.sid = h.attrs.get("id")
        s.features = s.plain_features = await s.expect_el("features")
        if tls:
            assert s.features.child("starttls", NS_TLS) is not None, s.features
            s.send(f"<starttls xmlns='{NS_TLS}'/>")
            await s.expect_el("proceed")
            await s.w.drain()
            await s.w.start_tls(self.client_ctx(cert), server_hostname="sip.test")
            await restart(s, frm)
        return s

    async def open_direct(self, cert="peer.test", frm="peer.test"):
        """A stream on the Direct TLS listener (XEP-0368)."""
        r, w = await asyncio.open_connection("127.0.0.1", self.tls_port,
                                             ssl=self.client_ctx(cert),
                                             server_hostname="sip.test")
        s = XStream(r, w)
        s.send(header(frm, "sip.test"))
        kind, h = await s.next()
        assert kind == "header", kind
        s.sid = h.attrs.get("id")
        s.features = await s.expect_el("features")
        return s

    def set_rules(self, rules):
        self.gw.write_policy(self.policy_text(rules))
        out = self.gw.reload()
        assert "result=ok" in out, out


async def restart(s, frm="peer.test"):
    """A new stream on the same connection (after TLS or SASL)."""
    s.parser = StreamParser()
    s.send(header(frm, "sip.test"))
    kind, h = await s.next()
    assert kind == "header", kind
    s.sid = h.attrs.get("id")
    s.features = await s.expect_el("features")


def offers_external(features):
    mechs = features.child("mechanisms", NS_SASL)
    return mechs is not None and any(m.text.strip() == "EXTERNAL" for m in mechs.children)


async def auth(s, initial="="):
    s.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{initial}</auth>")
    return await s.expect_el("*")


def failure_of(el):
    """(condition, text) of a SASL <failure/>."""
    assert el.name == "failure" and el.ns == NS_SASL, el
    conds = [c.name for c in el.children if c.name != "text"]
    text = el.child("text", NS_SASL)
    return conds[0] if conds else None, text.text if text is not None else None


def stream_error(el):
    assert el.name == "error" and el.ns == "http://etherx.jabber.org/streams", el
    conds = [c.name for c in el.children if c.name != "text"]
    text = el.child("text", NS_STREAM_ERR)
    return conds[0], text.text if text is not None else None


async def get(q, timeout=10):
    return await asyncio.wait_for(q.get(), timeout)


async def expect_nothing(q, seconds):
    try:
        item = await asyncio.wait_for(q.get(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected {item}")


async def expect_end(s):
    """The gateway closed the stream after its error: nothing else comes."""
    kind, el = await s.next()
    assert kind in ("close", "eof"), (kind, el)


async def dialback(e, s):
    k = dialback_key(e.peer.secret, "sip.test", "peer.test", s.sid)
    s.send(f"<db:result from='peer.test' to='sip.test'>{k}</db:result>")
    return await s.expect_el("*", timeout=20)


async def delivered(e, s, body):
    s.send(message("alice@peer.test", "bob@sip.test", body))
    req = await get(e.sip.requests)
    assert req["body"] == body.encode(), req


# --- SASL EXTERNAL ---------------------------------------------------------


async def test_external_accepted_and_stream_restarts(tmp):
    async with Env(tmp) as e:
        s = await e.open(tls=False)
        # Before TLS: STARTTLS (required: tls defaults to "required"), no SASL.
        assert s.features.child("starttls", NS_TLS).child("required") is not None, s.features
        assert not offers_external(s.features), s.features
        assert s.features.child("dialback") is None, s.features
        await s.close()
        s = await e.open()
        assert offers_external(s.features), s.features
        assert s.features.child("starttls", NS_TLS) is None, s.features
        assert s.features.child("dialback") is not None, s.features
        el = await auth(s)
        assert el.name == "success" and el.ns == NS_SASL, el
        await restart(s)
        # RFC 6120 §6.4.6: after SASL, neither STARTTLS nor SASL again.
        assert not offers_external(s.features), s.features
        assert s.features.child("starttls", NS_TLS) is None, s.features
        await delivered(e, s, "over SASL EXTERNAL")
        e.gw.wait_log(r'ev=s2s\.in\.auth .*remote=peer\.test local=sip\.test '
                      r'method=sasl-external result=ok cert="peer\.test"')
        assert e.peer.verify_requests == 0


async def test_external_authzid_rules(tmp):
    """The authzid may name the header's from (base64) or be "="; anything
    else gets the exact SASL condition, and the stream stays open for
    another try, up to four."""
    async with Env(tmp) as e:
        s = await e.open()
        cases = [
            (f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>AGEAYg==</auth>",
             ("invalid-mechanism", "only EXTERNAL is offered")),
            (f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>cGVlci50ZXN0=</auth>",
             ("incorrect-encoding", "initial response is not valid base64")),
            (f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{b64('other.test')}</auth>",
             ("invalid-authzid",
              "authorization identity other.test is not the stream's from peer.test")),
            (f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{b64('alice@peer.test')}</auth>",
             ("invalid-authzid", "the authorization identity is not a domain")),
        ]
        for xml, want in cases:
            s.send(xml)
            assert failure_of(await s.expect_el("*")) == want, xml
        # Four tries is all one stream gets.
        el = await auth(s, b64("peer.test"))
        assert stream_error(el) == ("policy-violation", "too many SASL attempts on one stream")
        await expect_end(s)
        s = await e.open()
        el = await auth(s, b64("peer.test"))
        assert el.name == "success", el
        await restart(s)
        await delivered(e, s, "named in the authzid")
        # A header without a from: "=" names nobody, the authzid does.
        s = await e.open(frm=None)
        assert offers_external(s.features), s.features
        assert failure_of(await auth(s)) == (
            "invalid-authzid", "no authorization identity, and the stream header has no from")
        assert (await auth(s, b64("peer.test"))).name == "success"
        await restart(s, None)
        await delivered(e, s, "header without from")


async def test_external_refused_for_bad_certificates(tmp):
    """unverified partner: a certificate that fails gets no EXTERNAL (or a
    not-authorized failure with the reason when the peer tries anyway),
    nothing it sends is delivered, and dialback still authenticates it."""
    async with Env(tmp) as e:
        for cert, offered, reason in [
                ("peer.test-wrongname", True, "presented wrong.peer.test; expected peer.test"),
                ("peer.test-nosan", True,
                 "presented no subjectAltName (CN=peer.test); expected peer.test"),
                ("peer.test-expired", False, "expired on 2021-01-01 00:00:00 UTC"),
                ("peer.test-future", False, "not valid before 2090-01-01 00:00:00 UTC"),
                ("peer.test-otherca", False, "issued by Other CA, not a trusted CA"),
                ("peer.test-self", False, "self-signed, not issued by a trusted CA")]:
            s = await e.open(cert=cert)
            assert offers_external(s.features) == offered, (cert, s.features)
            assert failure_of(await auth(s)) == ("not-authorized",
                                                 f"certificate for peer.test: {reason}"), cert
            s.send(message("alice@peer.test", "bob@sip.test", "not authenticated"))
            el = await s.expect_el("error")
            assert stream_error(el) == ("not-authorized",
                                        "stanza for a domain pair not authenticated"), el
            await expect_nothing(e.sip.requests, 0.2)
            s = await e.open(cert=cert)
            failure_of(await auth(s))
            el = await dialback(e, s)
            assert el.name == "result" and el.attrs.get("type") == "valid", (cert, el)
            await delivered(e, s, f"dialback with {cert}")
            e.gw.wait_log(r"ev=s2s\.in\.auth .*method=sasl-external result=refused "
                          r"cond=not-authorized")


async def test_policy_sees_how_the_peer_authenticated(tmp):
    hook = """
function on_message(m)
  m.body = m.body .. " [" .. (m.secure and "secure" or "plain") .. " " .. tostring(m.auth) .. "]"
  return m
end"""
    async with Env(tmp, hook=hook) as e:
        s = await e.open()
        assert (await auth(s)).name == "success"
        await restart(s)
        s.send(message("alice@peer.test", "bob@sip.test", "hi"))
        req = await get(e.sip.requests)
        assert req["body"] == b"hi [secure sasl-external]", req["body"]


async def test_sasl_none_not_offered(tmp):
    async with Env(tmp, 'type = "unverified", sasl = "none"') as e:
        s = await e.open()
        assert not offers_external(s.features), s.features
        cond, text = failure_of(await auth(s))
        assert (cond, text) == ("not-authorized", "SASL EXTERNAL is not allowed for peer.test")
        el = await dialback(e, s)
        assert el.attrs.get("type") == "valid", el


# --- dialback under the rules ----------------------------------------------


async def test_verified_partner_dialback_needs_its_certificate(tmp):
    async with Env(tmp, 'type = "verified"') as e:
        s = await e.open(cert="peer.test-wrongname")
        el = await dialback(e, s)
        assert stream_error(el) == ("not-authorized", "certificate for peer.test required: "
                                    "presented wrong.peer.test; expected peer.test"), el
        await expect_end(s)
        e.gw.wait_log(r'ev=s2s\.in\.auth .*method=dialback result=refused cond=not-authorized '
                      r'cert="wrong\.peer\.test"')
        # A good certificate: dialback is answered from it (XEP-0344), with
        # no verification round trip to peer.test.
        s = await e.open()
        el = await dialback(e, s)
        assert el.name == "result" and el.attrs.get("type") == "valid", el
        assert e.peer.verify_requests == 0
        e.gw.wait_log(r"ev=s2s\.in\.auth .*method=dialback-cert result=ok")
        await delivered(e, s, "verified by certificate")


async def test_sasl_required_refuses_dialback(tmp):
    async with Env(tmp, 'type = "verified", sasl = "required", dialback = false') as e:
        s = await e.open()
        assert offers_external(s.features), s.features
        assert s.features.child("dialback") is None, s.features
        el = await dialback(e, s)
        assert stream_error(el) == ("not-authorized",
                                    "peer.test must authenticate with SASL EXTERNAL"), el
        await expect_end(s)
        await expect_nothing(e.sip.requests, 0.2)
        s = await e.open()
        assert (await auth(s)).name == "success"
        await restart(s)
        await delivered(e, s, "SASL only")


async def test_dialback_off_and_no_valid_certificate(tmp):
    async with Env(tmp, 'type = "unverified", dialback = false') as e:
        s = await e.open(cert="peer.test-otherca")
        el = await dialback(e, s)
        assert stream_error(el) == ("not-authorized", "peer.test may not use dialback, and its "
                                    "certificate issued by Other CA, not a trusted CA"), el
        await expect_end(s)
        assert e.peer.verify_requests == 0


async def test_tls_required_refuses_plain_dialback(tmp):
    async with Env(tmp) as e:
        s = await e.open(tls=False)
        el = await dialback(e, s)
        assert stream_error(el) == ("policy-violation", "TLS is required for peer.test"), el
        await expect_end(s)
        assert e.peer.verify_requests == 0
        await expect_nothing(e.sip.requests, 0.2)


async def test_tls_none_partner(tmp):
    """tls = "none": no STARTTLS offered when the header names it; dialback
    in the clear is enough."""
    async with Env(tmp, 'type = "unverified", tls = "none", sasl = "none"',
                   peer_offers_tls=False) as e:
        s = await e.open(tls=False)
        assert s.features.child("starttls", NS_TLS) is None, s.features
        assert not offers_external(s.features), s.features
        assert s.features.child("dialback") is not None, s.features
        el = await dialback(e, s)
        assert el.attrs.get("type") == "valid", el
        await delivered(e, s, "in the clear, as agreed")
        # A header that names nobody still gets STARTTLS.
        s2 = await XStream.connect(e.gw_port)
        s2.send(header(None, "sip.test"))
        await s2.next()
        f = await s2.expect_el("features")
        assert f.child("starttls", NS_TLS) is not None, f


# --- Direct TLS listener ---------------------------------------------------


async def test_direct_tls_listener(tmp):
    async with Env(tmp) as e:
        e.gw.wait_log(r"ev=xmpp\.listen .*port=%d tls=direct result=listening" % e.tls_port)
        s = await e.open_direct()
        assert s.features.child("starttls", NS_TLS) is None, s.features
        assert offers_external(s.features), s.features
        assert (await auth(s)).name == "success"
        await restart(s)
        await delivered(e, s, "over Direct TLS")
        # Plain bytes on the Direct TLS port are not an XMPP stream.
        r, w = await asyncio.open_connection("127.0.0.1", e.tls_port)
        w.write(header("peer.test", "sip.test").encode())
        data = await asyncio.wait_for(r.read(4096), 10)
        assert b"<stream" not in data, data
        w.close()
        await expect_nothing(e.sip.requests, 0.2)


# --- per-partner limits ----------------------------------------------------


async def test_partner_max_connections(tmp):
    """max_connections = 2: a third stream with the partner is refused when
    it authenticates; the two it has keep working."""
    async with Env(tmp, 'type = "unverified", max_connections = 2') as e:
        streams = []
        for _ in range(2):
            s = await e.open()
            assert (await auth(s)).name == "success"
            await restart(s)
            streams.append(s)
        s = await e.open()
        el = await auth(s)
        assert stream_error(el) == ("policy-violation", "too many streams with peer.test"), el
        await expect_end(s)
        e.gw.wait_log(r"ev=s2s\.in\.refused .*remote=peer\.test reason=max-connections "
                      r"max_connections=2")
        for i, s in enumerate(streams):
            await delivered(e, s, f"stream {i} still carries")


async def test_partner_keepalive_and_idle_timeout(tmp):
    """keepalive = 1: a space on the quiet authenticated stream every
    second; idle_timeout = 3: closed after three seconds without a byte
    from the peer (our keepalives do not count)."""
    async with Env(tmp, 'type = "unverified", keepalive = 1, idle_timeout = 3') as e:
        s = await e.open()
        assert (await auth(s)).name == "success"
        await restart(s)
        start = asyncio.get_running_loop().time()
        got = b""
        while b"</stream:stream>" not in got:
            data = await asyncio.wait_for(s.r.read(4096), 10)
            if not data:
                break
            got += data
        took = asyncio.get_running_loop().time() - start
        assert got.count(b" ") >= 1 and got.strip(b" ") == b"</stream:stream>", got
        assert 2.5 <= took <= 5.5, took


# --- reload ----------------------------------------------------------------


async def test_reload_stricter_closes_exactly_the_streams_that_fail(tmp):
    async with Env(tmp) as e:
        by_sasl = await e.open()
        assert (await auth(by_sasl)).name == "success"
        await restart(by_sasl)
        by_dialback = await e.open(cert="peer.test-wrongname")
        el = await dialback(e, by_dialback)
        assert el.attrs.get("type") == "valid", el
        await delivered(e, by_sasl, "sasl before")
        await delivered(e, by_dialback, "dialback before")
        # verified: a certificate for peer.test is required. The dialback
        # stream's certificate names wrong.peer.test; the SASL one passes.
        e.set_rules('type = "verified"')
        assert stream_error(await by_dialback.expect_el("error")) == (
            "not-authorized",
            "certificate for peer.test required: presented wrong.peer.test; expected peer.test")
        e.gw.wait_log(r'ev=s2s\.in\.refused .*reason=reload detail="certificate for peer\.test '
                      r'required: presented wrong\.peer\.test; expected peer\.test" '
                      r'method=dialback')
        await delivered(e, by_sasl, "sasl after the first reload")
        # sasl = "none": the SASL stream no longer passes either.
        e.set_rules('type = "verified", sasl = "none"')
        assert stream_error(await by_sasl.expect_el("error")) == (
            "not-authorized", "SASL EXTERNAL is not allowed for peer.test")
        await expect_nothing(e.sip.requests, 0.3)


async def test_reload_removing_the_partner(tmp):
    async with Env(tmp, 'type = "unverified", tls = "optional"') as e:
        s = await e.open(tls=False)
        assert (await dialback(e, s)).attrs.get("type") == "valid"
        e.gw.write_policy(e.policy_text('type = "unverified", tls = "optional"')
                          .replace('partner "peer.test"', 'partner "someone-else.test"'))
        assert "result=ok" in e.gw.reload()
        assert stream_error(await s.expect_el("error")) == (
            "policy-violation", "peer.test is not federated with this gateway")


TESTS = [
    test_external_accepted_and_stream_restarts,
    test_external_authzid_rules,
    test_external_refused_for_bad_certificates,
    test_policy_sees_how_the_peer_authenticated,
    test_sasl_none_not_offered,
    test_verified_partner_dialback_needs_its_certificate,
    test_sasl_required_refuses_dialback,
    test_dialback_off_and_no_valid_certificate,
    test_tls_required_refuses_plain_dialback,
    test_tls_none_partner,
    test_direct_tls_listener,
    test_partner_max_connections,
    test_partner_keepalive_and_idle_timeout,
    test_reload_stricter_closes_exactly_the_streams_that_fail,
    test_reload_removing_the_partner,
]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "xs-trust-in-", sys.argv))
