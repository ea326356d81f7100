"""A harness for driving a real xsgw process from Python, on loopback inside
a private network namespace (see run_in_netns.sh): a fake XMPP server
("peer.test") that does STARTTLS and Server Dialback in both roles for real,
and a fake SIP endpoint that answers MESSAGEs. Standard library only."""

import asyncio
import hashlib
import hmac
import os
import re
import resource
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
import xml.parsers.expat
from xml.sax.saxutils import escape, quoteattr

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_DB = "jabber:server:dialback"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_STREAM_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
NS_SM = "urn:xmpp:sm:3"

TIMEOUT = 10.0
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def dialback_key(secret, receiving, originating, stream_id):
    """XEP-0185: HMAC-SHA256 keyed with the hex SHA-256 of the secret."""
    k = hashlib.sha256(secret.encode()).hexdigest().encode()
    msg = f"{receiving} {originating} {stream_id}".encode()
    return hmac.new(k, msg, hashlib.sha256).hexdigest()


class El:
    """A parsed element: name, ns, attrs, children, text."""

    def __init__(self, ns, name, attrs):
        self.ns, self.name, self.attrs = ns, name, attrs
        self.children, self.text = [], ""

    def child(self, name, ns=None):
        for c in self.children:
            if c.name == name and (ns is None or c.ns == ns):
                return c
        return None

    def __repr__(self):
        return f"<{self.name} {self.attrs} text={self.text!r} children={[c.name for c in self.children]}>"


class StreamParser:
    """Incremental XMPP stream parser: header, then top-level elements."""

    def __init__(self):
        self.p = xml.parsers.expat.ParserCreate(namespace_separator="\x01")
        self.p.StartElementHandler = self._start
        self.p.EndElementHandler = self._end
        self.p.CharacterDataHandler = self._text
        self.depth, self.stack = 0, []
        self.header, self.closed, self.items = None, False, []

    @staticmethod
    def _split(n):
        if "\x01" in n:
            ns, local = n.split("\x01", 1)
            return ns, local
        return "", n

    def _start(self, name, attrs):
        ns, local = self._split(name)
        a = {}
        for k, v in attrs.items():
            kns, kl = self._split(k)
            a["xml:lang" if kns == "http://www.w3.org/XML/1998/namespace" else kl] = v
        el = El(ns, local, a)
        self.depth += 1
        if self.depth == 1:
            self.header = el
            self.items.append(("header", el))
            return
        if self.stack:
            self.stack[-1].children.append(el)
        self.stack.append(el)

    def _end(self, name):
        self.depth -= 1
        if self.depth == 0:
            self.closed = True
            self.items.append(("close", None))
            return
        el = self.stack.pop()
        if not self.stack:
            self.items.append(("el", el))

    def _text(self, data):
        if self.stack:
            self.stack[-1].text += data

    def feed(self, data):
        self.p.Parse(data, False)
        out, self.items = self.items, []
        return out


def header(frm, to, sid=None):
    s = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
         "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'")
    if frm:
        s += f" from='{frm}'"
    if to:
        s += f" to='{to}'"
    if sid:
        s += f" id='{sid}'"
    return s + " version='1.0'>"


class XStream:
    """One TCP connection speaking an XMPP stream, with STARTTLS."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.parser = StreamParser()
        self.pending = []
        self.raw = bytearray()  # everything received, for checks on the exact wire form

    @classmethod
    async def connect(cls, port, host="127.0.0.1"):
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
        return cls(r, w)

    def send(self, data):
        self.w.write(data.encode() if isinstance(data, str) else data)

    async def next(self, timeout=TIMEOUT):
        """Next ("header"|"el"|"close"|"eof", El|None)."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no XMPP data in time")
            data = await asyncio.wait_for(self.r.read(65536), left)
            if not data:
                return ("eof", None)
            if len(self.raw) < 1 << 20:
                self.raw += data
            self.pending.extend(self.parser.feed(data))
        return self.pending.pop(0)

    async def expect_el(self, name, timeout=TIMEOUT):
        kind, el = await self.next(timeout)
        while kind == "el" and el.name != name and name != "*":
            kind, el = await self.next(timeout)
        if kind != "el":
            raise AssertionError(f"expected <{name}>, got {kind}")
        return el

    async def close(self):
        try:
            self.w.close()
            await asyncio.wait_for(self.w.wait_closed(), 2)
        except Exception:
            pass


def make_cert(tmp, name):
    cert, key = os.path.join(tmp, f"{name}.crt"), os.path.join(tmp, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}", "-keyout",
                    key, "-out", cert, "-days", "2"], check=True, capture_output=True)
    return cert, key


class Peer:
    """A fake XMPP server for `domain`: accepts the gateway's outbound
    streams and verifies its dialback keys by asking the gateway back
    (db:verify), and opens its own streams to the gateway."""

    def __init__(self, tmp, gw_port, domain="peer.test", secret="peer-secret", tls=True):
        self.domain, self.secret, self.gw_port, self.use_tls = domain, secret, gw_port, tls
        cert, key = make_cert(tmp, domain)
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(cert, key)
        self.client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client_ctx.check_hostname = False
        self.client_ctx.verify_mode = ssl.CERT_NONE
        self.received = asyncio.Queue()   # stanzas the gateway sent us
        self.unknown_users = set()        # messages to these JIDs bounce with an error
        self.bounce_error = f"<service-unavailable xmlns='{NS_STANZAS}'/>"  # ... this one
        self.bounce_stream = None
        self.bounce_lock = asyncio.Lock()
        self.tasks = []
        self.verified = []                # (gateway key, result) pairs we checked
        self.verify_requests = 0          # db:verify the gateway asked us
        self.verify_delay = 0             # seconds before answering one (a WAN round trip)
        self.server = None
        self.port = None
        self.inbound = []
        # A peer that stops reading: after `stall_after` stanzas on a stream
        # of the gateway's it reads nothing more, sets `stalled`, and once
        # `cut` is set resets the connection (RST, nothing read is kept).
        self.stall_after = None
        self.stalled = asyncio.Event()
        self.cut = asyncio.Event()
        self.stanzas_in = 0
        # Ends the gateway's stream with </stream:stream> right after this
        # many stanzas on it ("close"), or closes TCP without a word ("eof").
        self.end_after = None
        self.end_how = "close"
        # XEP-0198 on the gateway's streams: sm_offer puts <sm/> in our
        # features; sm_mode answers <enable/> ("ack": <enabled/>, then <a/>
        # for each <r/>; "fail": <failed/>; "ignore": nothing; "kill": a
        # stream error, as a server without XEP-0198 may). sm_ack_delay
        # holds each <a/> (None: never answers <r/>); sm_h rewrites the h we
        # send (hostile peers). sm_seen lists the SM elements the gateway sent.
        self.sm_offer = False
        self.sm_mode = "ignore"
        self.sm_ack_delay = 0
        self.sm_h = None
        self.sm_seen = []

    async def start(self, port):
        self.port = port
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", port)

    async def stop(self):
        if self.server:
            self.server.close()
        for t in self.tasks:
            t.cancel()
        for s in self.inbound:
            await s.close()

    async def _accept(self, r, w):
        s = XStream(r, w)
        self.inbound.append(s)
        try:
            await self._serve(s)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, AssertionError,
                ssl.SSLError, xml.parsers.expat.ExpatError):
            pass

    async def _serve(self, s):
        tls_done = False
        while True:
            kind, h = await s.next(60)
            if kind != "header":
                return
            sid = uuid.uuid4().hex
            s.send(header(self.domain, h.attrs.get("from"), sid))
            if self.use_tls and not tls_done:
                s.send(f"<stream:features><starttls xmlns='{NS_TLS}'><required/></starttls>"
                       "</stream:features>")
                await s.expect_el("starttls")
                s.send(f"<proceed xmlns='{NS_TLS}'/>")
                await s.w.drain()
                await s.w.start_tls(self.server_ctx)
                s.parser = StreamParser()
                tls_done = True
                continue
            sm = f"<sm xmlns='{NS_SM}'><optional/></sm>" if self.sm_offer else ""
            s.send("<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                   f"{sm}</stream:features>")
            break
        sm_on, handled = False, 0
        while True:
            kind, el = await s.next(120)
            if kind != "el":
                return
            if el.name in ("message", "presence", "iq") and el.ns != NS_SM:
                handled += 1
            if el.ns == NS_SM:
                self.sm_seen.append(el.name)
                if el.name == "enable" and self.sm_mode == "ack":
                    sm_on = True
                    s.send(f"<enabled xmlns='{NS_SM}'/>")
                elif el.name == "enable" and self.sm_mode == "kill":
                    # A server without XEP-0198 (Prosody without mod_smacks).
                    s.send(f"<stream:error><unsupported-stanza-type xmlns='{NS_STREAM_ERR}'/>"
                           "</stream:error></stream:stream>")
                    await s.w.drain()
                    s.w.transport.abort()
                    return
                elif el.name == "enable" and self.sm_mode == "fail":
                    s.send(f"<failed xmlns='{NS_SM}'><feature-not-implemented "
                           f"xmlns='{NS_STANZAS}'/></failed>")
                elif el.name == "r" and sm_on and self.sm_ack_delay is not None:
                    h = self.sm_h(handled) if self.sm_h else handled
                    self.tasks.append(asyncio.ensure_future(self._ack(s, h)))
            elif el.ns == NS_DB and el.name == "result":
                ok = await self.verify_with_gateway(el.attrs["from"], sid, el.text)
                self.verified.append((el.text, ok))
                s.send(f"<db:result from='{self.domain}' to='{el.attrs['from']}' "
                       f"type='{'valid' if ok else 'invalid'}'/>")
            elif el.ns == NS_DB and el.name == "verify":
                self.verify_requests += 1
                if self.verify_delay:
                    self.tasks.append(asyncio.ensure_future(self.answer_verify(s, el)))
                else:
                    await self.answer_verify(s, el)
            elif el.name == "message" and el.attrs.get("to") in self.unknown_users:
                # Its own task: authenticating the bounce stream needs this
                # loop to answer the gateway's db:verify meanwhile.
                self.tasks.append(asyncio.ensure_future(self.bounce(el)))
            else:
                await self.received.put(el)
                self.stanzas_in += 1
                if self.stall_after is not None and self.stanzas_in >= self.stall_after:
                    await self._stall_and_cut(s)
                    return
                if self.end_after is not None and self.stanzas_in >= self.end_after:
                    if self.end_how == "close":
                        s.send("</stream:stream>")
                        await s.w.drain()
                        await s.next(5)             # the gateway's </stream:stream>
                    # A bare TCP close under TLS: no close_notify, just FIN.
                    s.w.transport.abort()
                    return

    async def _ack(self, s, h):
        await asyncio.sleep(self.sm_ack_delay)
        s.send(f"<a xmlns='{NS_SM}' h='{h}'/>")

    async def _stall_and_cut(self, s):
        s.w.transport.pause_reading()
        self.stalled.set()
        await self.cut.wait()
        sock = s.w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.w.transport.abort()

    async def answer_verify(self, s, el):
        await asyncio.sleep(self.verify_delay)
        want = dialback_key(self.secret, el.attrs["from"], self.domain, el.attrs["id"])
        ok = hmac.compare_digest(want, el.text)
        s.send(f"<db:verify from='{self.domain}' to='{el.attrs['from']}' "
               f"id='{el.attrs['id']}' type='{'valid' if ok else 'invalid'}'/>")

    async def bounce(self, el):
        """What a real server does for a user it does not have: an error
        stanza back to the sender, on our own stream to the gateway."""
        async with self.bounce_lock:
            if self.bounce_stream is None:
                self.bounce_stream = await self.authenticated_stream()
        self.bounce_stream.send(
            f"<message type='error' from={quoteattr(el.attrs['to'])} to={quoteattr(el.attrs['from'])}"
            f" id={quoteattr(el.attrs.get('id', ''))}><error type='cancel'>"
            f"{self.bounce_error}</error></message>")

    async def verify_with_gateway(self, gw_domain, sid, key):
        """XEP-0220 §2.3 as the receiving server: ask the gateway (the
        authoritative server for gw_domain) whether it issued `key`."""
        s = await self.open_stream(gw_domain, tls=self.use_tls)
        s.send(f"<db:verify from='{self.domain}' to='{gw_domain}' id='{sid}'>{key}</db:verify>")
        el = await s.expect_el("verify")
        await s.close()
        return el.attrs.get("type") == "valid"

    async def open_stream(self, to, tls=True, frm=None):
        """Connects to the gateway, negotiates STARTTLS if asked; returns the
        stream after the (post-TLS) features, with .sid set."""
        s = await XStream.connect(self.gw_port)
        s.send(header(frm or self.domain, to))
        kind, h = await s.next()
        if kind != "header":
            raise AssertionError(f"gateway answered {kind}")
        s.sid = h.attrs.get("id")
        feats = await s.expect_el("features")
        if tls:
            if feats.child("starttls", NS_TLS) is None:
                raise AssertionError("gateway offers no STARTTLS")
            s.send(f"<starttls xmlns='{NS_TLS}'/>")
            await s.expect_el("proceed")
            await s.w.drain()
            await s.w.start_tls(self.client_ctx, server_hostname=to)
            s.parser = StreamParser()
            s.send(header(frm or self.domain, to))
            kind, h = await s.next()
            s.sid = h.attrs.get("id")
            feats = await s.expect_el("features")
        s.features = feats
        return s

    async def authenticated_stream(self, to="sip.test", tls=True, key=None):
        """A stream on which the gateway accepted our domain via dialback."""
        s = await self.open_stream(to, tls=tls)
        k = key or dialback_key(self.secret, to, self.domain, s.sid)
        s.send(f"<db:result from='{self.domain}' to='{to}'>{k}</db:result>")
        el = await s.expect_el("result", timeout=20)
        s.db_result = el
        return s


def message(frm, to, body, mid="m1", extra=""):
    return (f"<message from={quoteattr(frm)} to={quoteattr(to)} type='chat' id={quoteattr(mid)}>"
            f"<body>{escape(body)}</body>{extra}</message>")


class SipEndpoint(asyncio.DatagramProtocol):
    """A UDP SIP endpoint: the gateway's next hop (answers MESSAGEs with
    `code`) and a sender of MESSAGEs to the gateway."""

    def __init__(self, code=200):
        self.code = code
        self.extra = ""  # header lines added to our responses ("Contact: <...>\r\n")
        self.requests = asyncio.Queue()
        self.responses = asyncio.Queue()
        self.transport = None
        # While `hold` is set, final responses are kept (one per Call-ID, so
        # retransmissions do not multiply them) until release().
        self.hold = False
        self.held = {}

    def release(self):
        self.hold = False
        for resp, addr in self.held.values():
            self.transport.sendto(resp, addr)
        self.held = {}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        text = data.decode("utf-8", "replace")
        if text.startswith("SIP/2.0"):
            self.responses.put_nowait(parse_sip(data))
            return
        req = parse_sip(data)
        self.requests.put_nowait(req)
        if req["method"] in ("MESSAGE", "OPTIONS"):
            code = self.code
            reason = {200: "OK", 301: "Moved Permanently", 404: "Not Found",
                      407: "Proxy Authentication Required", 480: "Temporarily Unavailable",
                      403: "Forbidden", 503: "Service Unavailable", 603: "Decline"}.get(code, "Whatever")
            hdrs = req["headers"]
            to = hdrs["to"][0]
            if ";tag=" not in to:
                to += ";tag=uas1"
            resp = (f"SIP/2.0 {code} {reason}\r\n"
                    + "".join(f"Via: {v}\r\n" for v in hdrs["via"])
                    + f"From: {hdrs['from'][0]}\r\nTo: {to}\r\nCall-ID: {hdrs['call-id'][0]}\r\n"
                    f"CSeq: {hdrs['cseq'][0]}\r\n{self.extra}Content-Length: 0\r\n\r\n")
            if self.hold:
                self.held[hdrs["call-id"][0]] = (resp.encode(), addr)
                return
            self.transport.sendto(resp.encode(), addr)

    def send_message(self, gw_port, frm, to, body, call_id=None, branch=None, cseq=1,
                     content_type="text/plain;charset=UTF-8", extra="", to_header=None):
        call_id = call_id or uuid.uuid4().hex
        branch = branch or "z9hG4bK" + uuid.uuid4().hex
        port = self.transport.get_extra_info("sockname")[1]
        b = body if isinstance(body, bytes) else body.encode()
        req = (f"MESSAGE {to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <{frm}>;tag={uuid.uuid4().hex[:8]}\r\n"
               f"To: <{to_header or to}>\r\n"
               f"Call-ID: {call_id}\r\nCSeq: {cseq} MESSAGE\r\nContent-Type: {content_type}\r\n"
               f"{extra}Content-Length: {len(b)}\r\n\r\n").encode() + b
        self.transport.sendto(req, ("127.0.0.1", gw_port))
        return req


async def read_sip(reader):
    """One Content-Length framed SIP message from a stream, parsed."""
    head = await reader.readuntil(b"\r\n\r\n")
    m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)\s*$", head)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    return parse_sip(head + body)


def sip_response_to(req, code, reason):
    """A final response to the parsed request `req` (bytes)."""
    hdrs = req["headers"]
    to = hdrs["to"][0]
    if ";tag=" not in to:
        to += ";tag=uas1"
    return (f"SIP/2.0 {code} {reason}\r\n"
            + "".join(f"Via: {v}\r\n" for v in hdrs["via"])
            + f"From: {hdrs['from'][0]}\r\nTo: {to}\r\nCall-ID: {hdrs['call-id'][0]}\r\n"
            f"CSeq: {hdrs['cseq'][0]}\r\nContent-Length: 0\r\n\r\n").encode()


def stream_message(writer, via, frm, to, body, call_id=None):
    """Writes a MESSAGE on a TCP or TLS connection (`via`: "TCP" or "TLS")."""
    b = body if isinstance(body, bytes) else body.encode()
    port = writer.get_extra_info("sockname")[1]
    req = (f"MESSAGE {to} SIP/2.0\r\n"
           f"Via: SIP/2.0/{via} 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
           f"Max-Forwards: 70\r\nFrom: <{frm}>;tag={uuid.uuid4().hex[:8]}\r\n"
           f"To: <{to}>\r\nCall-ID: {call_id or uuid.uuid4().hex}\r\n"
           f"CSeq: 1 MESSAGE\r\nContent-Type: text/plain;charset=UTF-8\r\n"
           f"Content-Length: {len(b)}\r\n\r\n").encode() + b
    writer.write(req)
    return req


class SipTlsEndpoint:
    """A SIP endpoint over TLS with its own certificate: a listener the
    gateway's tls: next hop connects to (every request is queued in
    `requests` and answered 200), and a client for the gateway's tls:
    listeners. The gateway's certificate is not verified, as the gateway
    does not verify ours."""

    def __init__(self, tmp, name="edge.sip.test"):
        cert, key = make_cert(tmp, name)
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(cert, key)
        self.client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client_ctx.check_hostname = False
        self.client_ctx.verify_mode = ssl.CERT_NONE
        self.requests = asyncio.Queue()
        self.server = None
        self.writers = []

    async def listen(self, port):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port,
                                                 ssl=self.server_ctx)

    async def _serve(self, reader, writer):
        self.writers.append(writer)
        try:
            while True:
                req = await read_sip(reader)
                self.requests.put_nowait(req)
                if "method" in req:
                    writer.write(sip_response_to(req, 200, "OK"))
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass

    async def connect(self, port, src="127.0.0.1"):
        """A TLS connection from `src` to a gateway listener: (reader, writer)."""
        return await asyncio.open_connection("127.0.0.1", port, ssl=self.client_ctx,
                                             server_hostname="sip.test", local_addr=(src, 0))

    @staticmethod
    def message(writer, frm, to, body, call_id=None):
        return stream_message(writer, "TLS", frm, to, body, call_id)

    async def close(self):
        for w in self.writers:
            w.close()
        if self.server:
            self.server.close()
            await self.server.wait_closed()


def parse_sip(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    first = lines[0]
    msg = {"first": first, "body": body, "headers": {}}
    if first.startswith("SIP/2.0"):
        msg["code"] = int(first.split()[1])
    else:
        msg["method"], msg["uri"] = first.split()[0], first.split()[1]
    compact = {"f": "from", "t": "to", "v": "via", "i": "call-id", "c": "content-type",
               "l": "content-length", "s": "subject"}
    for line in lines[1:]:
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        k = k.strip().lower()
        k = compact.get(k, k)
        msg["headers"].setdefault(k, []).append(v.strip())
    return msg


_next_port = [20000]


def free_port(kind=socket.SOCK_STREAM):
    """A loopback port no earlier call returned and nothing holds now, for TCP and UDP.
    Binding port 0 and closing it could hand out the same number twice in one run, and
    an outbound connection's ephemeral port could take it before the listener binds.
    Ports come from below the ephemeral range (net.ipv4.ip_local_port_range starts at
    32768), each one once, so neither can happen inside the test's network namespace."""
    del kind  # every port is checked for both TCP and UDP
    while _next_port[0] < 32768:
        port = _next_port[0]
        _next_port[0] += 1
        try:
            for k in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, k) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port left below 32768")


class Gateway:
    """Runs build/xsgw with a policy written from `policy_text`."""

    def __init__(self, tmp, policy_text):
        self.tmp = tmp
        self.policy = os.path.join(tmp, "policy.lua")
        self.log = os.path.join(tmp, "xsgw.log")
        # The subscription store lives here: each gateway of a test has its
        # own, kept across its restarts.
        self.state = os.path.join(tmp, "state")
        self.write_policy(policy_text)
        self.proc = None
        self.nofile = None  # RLIMIT_NOFILE for the process, when a test sets one

    def write_policy(self, text):
        with open(self.policy, "w") as f:
            f.write(text)

    def start(self):
        binary = os.environ.get("XSGW", os.path.join(REPO, "build", "xsgw"))
        mark = len(self.log_text()) if os.path.exists(self.log) else 0
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([binary, "--policy", self.policy, "--lua-dir",
                                      os.path.join(REPO, "lua"), "--state-dir", self.state,
                                      "--log-level", "debug"],
                                     stderr=self.logf, stdout=self.logf,
                                     preexec_fn=self._limits if self.nofile else None)
        self.wait_log("ev=gateway.ready", start=mark)

    def _limits(self):
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def count_log(self, pattern, start=0):
        return len(re.findall(pattern, self.log_text()[start:]))

    def wait_count(self, pattern, n, timeout=TIMEOUT, start=0):
        """Waits until `pattern` has matched at least n log lines."""
        deadline = time.monotonic() + timeout
        while self.count_log(pattern, start) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.count_log(pattern, start)} of {n} log lines "
                                     f"matching {pattern!r}:\n{self.log_text()[-3000:]}")
            if self.proc.poll() is not None:
                raise AssertionError(f"xsgw exited with {self.proc.returncode}")
            time.sleep(0.05)

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=TIMEOUT, start=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()[start:]
            if re.search(pattern, text):
                return True
            if self.proc.poll() is not None:
                raise AssertionError(f"xsgw exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"no log line matching {pattern!r}:\n{self.log_text()[-3000:]}")

    def reload(self):
        mark = len(self.log_text())
        self.proc.send_signal(signal.SIGHUP)
        self.wait_log(r"ev=policy\.reload.*result=(ok|rejected)", start=mark)
        return self.log_text()[mark:]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()
        return self.proc.returncode if self.proc else None


def policy(gw_port, sip_port, next_hop_port, peer_port, extra_partners="", hook="",
           peer_tls="required", sip_extra="", xmpp_extra="", sip_listen_extra="",
           next_hop_transport="udp", admin_port=None):
    # Without sip_extra the gateway trusts SIP requests from the next hop's
    # address, 127.0.0.1, which is where every test sender lives. The admin
    # listener gets a port of its own, so that gateways of one test never
    # compete for the default.
    return f"""
gateway {{
  admin = {{ listen = "127.0.0.1:{admin_port or free_port()}" }},
  domains = {{ "sip.test" }},
  xmpp = {{ listen = "127.0.0.1:{gw_port}", connect_timeout = 5, dialback_secret = "gw-secret",
           {xmpp_extra} }},
  sip  = {{ listen = {{ "udp:127.0.0.1:{sip_port}", "tcp:127.0.0.1:{sip_port}" {sip_listen_extra} }},
           next_hop = "{next_hop_transport}:127.0.0.1:{next_hop_port}", {sip_extra} }},
}}
partner "peer.test" {{ tls = "{peer_tls}", dialback = true, route = "127.0.0.1:{peer_port}" }}
{extra_partners}
{hook}
"""


def run_tests(tests, prefix, argv):
    """Runs each test (a coroutine taking a temp dir) that argv names, or
    all; prints PASS/FAIL with the gateway's log tail on failure, then
    "N passed, N failed". Returns the exit status."""
    only = argv[1:]
    passed = failed = 0
    for t in tests:
        if only and t.__name__ not in only:
            continue
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            start = time.monotonic()
            try:
                asyncio.run(asyncio.wait_for(t(tmp), 90))
                passed += 1
                print(f"PASS {t.__name__} ({time.monotonic() - start:.1f}s)", flush=True)
            except BaseException:
                failed += 1
                print(f"FAIL {t.__name__}", flush=True)
                traceback.print_exc()
                log = os.path.join(tmp, "xsgw.log")
                if os.path.exists(log):
                    print("--- xsgw log tail:")
                    print(open(log, errors="replace").read()[-4000:])
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
