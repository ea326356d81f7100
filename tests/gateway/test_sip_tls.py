"""SIP over verified mutual TLS (issue 8): a Python SIP edge (ssl module,
certificates from tests/tls/make_test_pki.sh) is the gateway's tls: next hop
and connects in to its tls: listener. With gateway.tls.ca the gateway checks
the edge's certificate against sip.tls.name (outbound) and sip.tls.peers
(inbound); a refusal is one ev=sip.tls line naming both names and the reason,
the XMPP sender gets remote-server-not-found, and nothing the refused edge
sends is handled. CRLF keepalives (sip.keepalive) ping an idle connection and
close one that never answers.

Run inside a private network namespace (run_in_netns.sh), like
test_gateway.py; a test's name as argument runs only it."""

import asyncio
import os
import re
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from gwlib import (NS_STANZAS, Gateway, Peer, free_port, message, read_sip,  # noqa: E402
                   run_tests, sip_response_to, stream_message)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PKI = None


def pki():
    """One test PKI for every test of the run (the script is idempotent)."""
    global PKI
    if PKI is None:
        PKI = tempfile.mkdtemp(prefix="xs-sip-tls-pki-")
        subprocess.run([os.path.join(REPO, "tests", "tls", "make_test_pki.sh"), PKI, "sip.test",
                        "edge.test"], check=True, capture_output=True)
    return PKI


async def get(q, timeout=10):
    return await asyncio.wait_for(q.get(), timeout)


async def expect_nothing(q, seconds):
    try:
        item = await asyncio.wait_for(q.get(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected {item}")


class Edge:
    """The SIP edge over TLS presenting PKI certificate `cert` (None: none,
    as a client). As a server it answers every request 200 and queues it in
    `requests`, with the raw bytes it read in `raw` (keepalives included);
    `answer_pings` False makes it a dead peer that reads and never
    answers."""

    def __init__(self, cert="edge.test"):
        p = pki()
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(f"{p}/{cert or 'edge.test'}.pem",
                                        f"{p}/{cert or 'edge.test'}.key")
        self.client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client_ctx.check_hostname = False
        self.client_ctx.verify_mode = ssl.CERT_NONE
        if cert:
            self.client_ctx.load_cert_chain(f"{p}/{cert}.pem", f"{p}/{cert}.key")
        self.requests = asyncio.Queue()
        self.raw = b""
        self.closed = asyncio.Event()
        self.answer_pings = True
        self.server = None
        self.writers = []

    async def listen(self, port):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port,
                                                 ssl=self.server_ctx)

    async def _serve(self, reader, writer):
        self.writers.append(writer)
        buf = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                self.raw += data
                buf += data
                while True:
                    stripped = buf.lstrip(b"\r\n")
                    if self.answer_pings and len(buf) - len(stripped) >= 4:
                        writer.write(b"\r\n")
                    buf = stripped
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    m = re.search(rb"(?im)^content-length\s*:\s*(\d+)", buf[:end])
                    total = end + 4 + (int(m.group(1)) if m else 0)
                    if len(buf) < total:
                        break
                    stream = asyncio.StreamReader()
                    stream.feed_data(buf[:total])
                    stream.feed_eof()
                    req = await read_sip(stream)
                    buf = buf[total:]
                    self.requests.put_nowait(req)
                    if "method" in req:
                        writer.write(sip_response_to(req, 200, "OK"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        self.closed.set()

    async def connect(self, port):
        return await asyncio.open_connection("127.0.0.1", port, ssl=self.client_ctx,
                                             server_hostname="sip.test")

    async def close(self):
        for w in self.writers:
            w.close()
        if self.server:
            self.server.close()
            await self.server.wait_closed()


class Env:
    """The gateway for sip.test (certificate and CA from the test PKI), its
    SIP next hop tls: on the edge, a tls: listener for the edge to connect
    in, and the fake XMPP server peer.test."""

    def __init__(self, tmp, sip_tls='name = "edge.test"', extra=""):
        self.tmp = tmp
        self.gw_port, self.sip_port, self.tls_port = free_port(), free_port(), free_port()
        self.hop_port, self.peer_port = free_port(), free_port()
        self.gw = Gateway(tmp, self.policy_text(sip_tls, extra))

    def policy_text(self, sip_tls, extra=""):
        p = pki()
        return f"""
gateway {{
  domains = {{ "sip.test" }},
  tls = {{ cert = "{p}/sip.test.pem", key = "{p}/sip.test.key", ca = "{p}/ca.pem" }},
  xmpp = {{ listen = "127.0.0.1:{self.gw_port}", connect_timeout = 5,
           dialback_secret = "gw-secret" }},
  sip  = {{ listen = {{ "udp:127.0.0.1:{self.sip_port}", "tls:127.0.0.1:{self.tls_port}" }},
           next_hop = "tls:127.0.0.1:{self.hop_port}", tls = {{ {sip_tls} }}, {extra} }},
}}
partner "peer.test" {{ tls = "required", dialback = true, route = "127.0.0.1:{self.peer_port}" }}
"""

    async def __aenter__(self):
        self.peer = None
        self.gw.start()
        self.peer = Peer(self.tmp, self.gw_port)
        await self.peer.start(self.peer_port)
        return self

    async def __aexit__(self, *exc):
        if self.peer:
            await self.peer.stop()
        rc = self.gw.stop()
        if exc[0] is None and rc not in (0, None):
            raise AssertionError(f"xsgw exited with {rc} on SIGTERM")


async def send_xmpp(e, mid):
    s = await e.peer.authenticated_stream()
    s.send(message("alice@peer.test/phone", "bob@sip.test", "over tls", mid=mid))
    return s


async def test_out_valid_certificate(tmp):
    """The edge presents edge.test, which sip.tls.name asks for: the MESSAGE
    goes out and the verdict is logged once, result=ok."""
    async with Env(tmp) as e:
        edge = Edge("edge.test")
        await edge.listen(e.hop_port)
        try:
            s = await send_xmpp(e, "ok1")
            req = await get(edge.requests, 20)
            assert req["first"] == "MESSAGE sip:bob@sip.test SIP/2.0", req["first"]
            assert req["body"] == b"over tls", req["body"]
            e.gw.wait_log(r"ev=sip\.tls dir=out peer=127\.0\.0\.1:\d+ id=\d+ result=ok "
                          r"expected=edge\.test cert=edge\.test reason=- tls=TLS")
            await expect_nothing(e.peer.received, 1)
            await s.close()
        finally:
            await edge.close()


async def refused_out(tmp, cert, reason_re):
    async with Env(tmp) as e:
        edge = Edge(cert)
        await edge.listen(e.hop_port)
        try:
            s = await send_xmpp(e, "bad1")
            err = await get(e.peer.received, 20)
            assert err.name == "message" and err.attrs.get("type") == "error", err
            assert err.attrs.get("id") == "bad1", err
            e_el = err.child("error")
            assert e_el is not None and \
                e_el.child("remote-server-not-found", NS_STANZAS) is not None, e_el.children
            log = e.gw.log_text()
            lines = re.findall(r".*ev=sip\.tls dir=out .*", log)
            assert len(lines) == 1, lines
            assert re.search(r"result=refused expected=edge\.test cert=\S+ reason=" + reason_re,
                             lines[0]), lines[0]
            await expect_nothing(edge.requests, 1)
            await s.close()
        finally:
            await edge.close()


async def test_out_wrong_name(tmp):
    """The edge presents int.edge.test where edge.test is expected: refused
    before any request, the log names both, the sender gets an error."""
    await refused_out(tmp, "int.edge.test",
                      r'"presented int\.edge\.test; expected edge\.test"')


async def test_out_expired(tmp):
    await refused_out(tmp, "edge.test-expired", r'"expired on 2021-[^"]+"')


async def test_out_other_ca(tmp):
    await refused_out(tmp, "edge.test-otherca", r'"issued by Other CA, not a trusted CA"')


async def inbound(tmp, cert, peers, want_ok):
    async with Env(tmp, sip_tls=f'peers = {{ {peers} }}') as e:
        edge = Edge(cert)
        try:
            r, w = await edge.connect(e.tls_port)
            stream_message(w, "TLS", "sip:bob@sip.test", "sip:alice@peer.test", "in tls",
                           call_id="tls-in")
            if want_ok:
                resp = await asyncio.wait_for(read_sip(r), 20)
                assert resp["first"] == "SIP/2.0 200 OK", resp["first"]
                st = await get(e.peer.received, 20)
                assert st.name == "message" and st.child("body").text == "in tls", st
                e.gw.wait_log(r"ev=sip\.tls dir=in .*result=ok")
            else:
                e.gw.wait_log(r"ev=sip\.tls dir=in .*result=refused")
                try:
                    data = await asyncio.wait_for(r.read(65536), 10)
                except (ConnectionError, ssl.SSLError):
                    data = b""
                assert data == b"", data
                await expect_nothing(e.peer.received, 1)
            w.close()
            return e.gw.log_text()
        finally:
            await edge.close()


async def test_in_valid_peer(tmp):
    await inbound(tmp, "edge.test", '"edge.test"', True)


async def test_in_wildcard_peer(tmp):
    await inbound(tmp, "int.edge.test", '"*.edge.test"', True)


async def test_in_no_client_certificate(tmp):
    log = await inbound(tmp, None, '"edge.test"', False)
    assert re.search(r'ev=sip\.tls dir=in .*result=refused expected=edge\.test cert=none '
                     r'reason="no certificate presented"', log), log


async def test_in_not_in_peers(tmp):
    log = await inbound(tmp, "int.edge.test", '"edge.test"', False)
    assert re.search(r'ev=sip\.tls dir=in .*result=refused expected=edge\.test '
                     r'cert=int\.edge\.test reason="presented int\.edge\.test; expected edge\.test"',
                     log), log


async def test_reload_rechecks_inbound(tmp):
    """Two edges connected in, edge.test and int.edge.test, both accepted
    by peers { "edge.test", "*.edge.test" }. A reload to peers { "edge.test" }
    closes exactly the int.edge.test connection, with a log line; the other
    keeps working."""
    async with Env(tmp, sip_tls='peers = { "edge.test", "*.edge.test" }') as e:
        good, other = Edge("edge.test"), Edge("int.edge.test")
        try:
            conns = []
            for i, edge in enumerate((good, other)):
                r, w = await edge.connect(e.tls_port)
                stream_message(w, "TLS", "sip:bob@sip.test", "sip:alice@peer.test", f"m{i}",
                               call_id=f"rl-{i}")
                resp = await asyncio.wait_for(read_sip(r), 20)
                assert resp["first"] == "SIP/2.0 200 OK", resp["first"]
                conns.append((r, w))
            for _ in range(2):
                await get(e.peer.received, 20)
            e.gw.write_policy(e.policy_text('peers = { "edge.test" }'))
            out = e.gw.reload()
            assert "result=ok" in out, out
            e.gw.wait_log(r'ev=sip\.reconfigure state=closed dir=in .*reason="certificate no '
                          r'longer accepted"')
            assert e.gw.count_log(r"ev=sip\.reconfigure state=closed") == 1
            assert re.search(r"ev=sip\.tls dir=in .*result=refused expected=edge\.test "
                             r"cert=int\.edge\.test", e.gw.log_text())
            try:
                data = await asyncio.wait_for(conns[1][0].read(65536), 10)
            except (ConnectionError, ssl.SSLError):
                data = b""
            assert data == b"", data
            r, w = conns[0]
            stream_message(w, "TLS", "sip:bob@sip.test", "sip:alice@peer.test", "after",
                           call_id="rl-after")
            resp = await asyncio.wait_for(read_sip(r), 20)
            assert resp["first"] == "SIP/2.0 200 OK", resp["first"]
            st = await get(e.peer.received, 20)
            assert st.child("body").text == "after", st
            for _, w in conns:
                w.close()
        finally:
            await good.close()
            await other.close()


async def test_keepalive_ping_pong_and_dead_peer(tmp):
    """sip.keepalive = 1: the idle connection to the edge gets CRLFCRLF and
    stays while the edge answers; once it stops answering, it is closed as
    dead within the 10 s pong deadline."""
    async with Env(tmp, extra="keepalive = 1") as e:
        edge = Edge("edge.test")
        await edge.listen(e.hop_port)
        try:
            s = await send_xmpp(e, "ka1")
            await get(edge.requests, 20)
            await asyncio.sleep(3.5)
            pings = edge.raw.split(b"over tls", 1)[1].count(b"\r\n\r\n")
            assert pings >= 2, edge.raw[-200:]
            assert e.gw.count_log(r"ev=sip\.keepalive") == 0
            edge.answer_pings = False
            await asyncio.wait_for(edge.closed.wait(), 15)
            e.gw.wait_log(r"ev=sip\.keepalive state=dead dir=out .*no pong within 10000 ms")
            await s.close()
        finally:
            await edge.close()


TESTS = [test_out_valid_certificate, test_out_wrong_name, test_out_expired, test_out_other_ca,
         test_in_valid_peer, test_in_wildcard_peer, test_in_no_client_certificate,
         test_in_not_in_peers, test_reload_rechecks_inbound,
         test_keepalive_ping_pong_and_dead_peer]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "xs-sip-tls-", sys.argv))
