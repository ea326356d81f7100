"""Gateway-level tests: the real xsgw binary between a fake XMPP server that
does STARTTLS and dialback for real and a fake SIP endpoint, on loopback in a
private network namespace. Each test prints PASS/FAIL; the last line is
"N passed, N failed"."""

import asyncio
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from gwlib import (NS_STANZAS, NS_STREAM_ERR, Gateway, Peer, SipEndpoint,  # noqa: E402
                   SipTlsEndpoint, StreamParser, XStream, dialback_key, free_port, header,
                   make_cert, message, policy, read_sip, run_tests, stream_message)

UNICODE_BODY = "héllo ☺ <b>&amp;</b> 'x' \"y\" ]]> \u00e9\u0301 𝄞"


class Env:
    """One gateway, one fake XMPP peer, one fake SIP endpoint."""

    def __init__(self, tmp, sip_code=200, hook="", peer_tls="required", extra_partners="",
                 sip_extra="", peer_offers_tls=True, xmpp_extra="", sip_listen_extra="",
                 next_hop_transport="udp"):
        self.tmp = tmp
        self.peer_offers_tls = peer_offers_tls
        self.gw_port, self.sip_port = free_port(), free_port()
        self.next_hop_port, self.peer_port = free_port(), free_port()
        self.sip_code, self.hook = sip_code, hook
        self.policy_args = dict(extra_partners=extra_partners, hook=hook, peer_tls=peer_tls,
                                sip_extra=sip_extra, xmpp_extra=xmpp_extra,
                                sip_listen_extra=sip_listen_extra,
                                next_hop_transport=next_hop_transport)
        self.gw = Gateway(tmp, self.policy_text())

    def policy_text(self, **over):
        args = dict(self.policy_args, **over)
        return policy(self.gw_port, self.sip_port, self.next_hop_port, self.peer_port, **args)

    async def __aenter__(self):
        self.sip = self.uac = self.stranger = self.peer = None
        try:
            self.gw.start()
            loop = asyncio.get_running_loop()
            self.sip = SipEndpoint(self.sip_code)
            await loop.create_datagram_endpoint(lambda: self.sip,
                                                local_addr=("127.0.0.1", self.next_hop_port))
            self.uac = SipEndpoint()
            await loop.create_datagram_endpoint(lambda: self.uac, local_addr=("127.0.0.1", 0))
            # A sender on another address of the namespace's loopback.
            self.stranger = SipEndpoint()
            await loop.create_datagram_endpoint(lambda: self.stranger,
                                                local_addr=("127.0.0.2", 0))
            self.peer = Peer(self.tmp, self.gw_port, tls=self.peer_offers_tls)
            await self.peer.start(self.peer_port)
        except BaseException:
            # __aexit__ does not run when __aenter__ fails: stop what did start, the
            # gateway above all, or it outlives the test inside the namespace.
            await self._stop()
            raise
        return self

    async def _stop(self):
        if self.peer is not None:
            await self.peer.stop()
        for ep in (self.sip, self.uac, self.stranger):
            if ep is not None and getattr(ep, "transport", None) is not None:
                ep.transport.close()
        return self.gw.stop()

    async def __aexit__(self, *exc):
        rc = await self._stop()
        if exc[0] is None and rc not in (0, None):
            raise AssertionError(f"xsgw exited with {rc} on SIGTERM")


async def get(q, timeout=10):
    return await asyncio.wait_for(q.get(), timeout)


async def expect_nothing(q, seconds):
    try:
        item = await asyncio.wait_for(q.get(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected {item}")


# --- XMPP -> SIP -----------------------------------------------------------

async def test_xmpp_to_sip_message(tmp):
    async with Env(tmp) as e:
        s = await e.peer.authenticated_stream()
        assert s.db_result.attrs.get("type") == "valid", s.db_result
        s.send(message("alice@peer.test/phone", "bob@sip.test", UNICODE_BODY,
                       extra="<subject>Hi</subject><thread>t-42</thread>"))
        req = await get(e.sip.requests)
        h = req["headers"]
        assert req["method"] == "MESSAGE", req
        assert req["uri"] == "sip:bob@sip.test", req["uri"]
        # RFC 7572 §4 note 1: the sender's resource travels as the GRUU.
        assert "<sip:alice@peer.test;gr=phone>" in h["from"][0], h["from"]
        assert "<sip:bob@sip.test>" in h["to"][0], h["to"]
        assert h["content-type"][0].lower().replace(" ", "") == "text/plain;charset=utf-8", h
        assert req["body"].decode() == UNICODE_BODY, req["body"]
        assert h.get("subject") == ["Hi"], h.get("subject")
        await expect_nothing(e.peer.received, 0.5)
        await s.close()


async def test_xmpp_to_sip_error_bounces(tmp):
    # RFC 7247 §7.2; 503 is the SIP server's own trouble (note 9), and 301
    # carries the new address from Contact into <gone/> (note 1).
    for code, cond, addr in ((404, "item-not-found", None),
                             (480, "recipient-unavailable", None),
                             (403, "forbidden", None), (503, "internal-server-error", None),
                             (407, "registration-required", None),
                             (603, "recipient-unavailable", None),
                             (301, "gone", "sip:bob@moved.test")):
        async with Env(tmp, sip_code=code) as e:
            if addr:
                e.sip.extra = f"Contact: <{addr}>\r\n"
            s = await e.peer.authenticated_stream()
            s.send(message("alice@peer.test/phone", "bob@sip.test", "hi", mid=f"e{code}"))
            await get(e.sip.requests)
            # The error comes back over the gateway's own outbound stream,
            # which needs dialback in the other direction.
            err = await get(e.peer.received, 20)
            assert err.name == "message" and err.attrs.get("type") == "error", err
            assert err.attrs.get("id") == f"e{code}", err
            assert err.attrs.get("to") == "alice@peer.test/phone", err
            assert err.attrs.get("from") == "bob@sip.test", err
            e_el = err.child("error")
            assert e_el is not None and e_el.child(cond, NS_STANZAS) is not None, \
                f"{code}: {[c.name for c in e_el.children]}"
            assert (e_el.child(cond, NS_STANZAS).text or None) == addr, e_el.child(cond, NS_STANZAS)
            await s.close()


async def test_bounce_that_cannot_be_sent_is_logged(tmp):
    """An error bounced to an XMPP sender has nobody to answer if it cannot
    go out; it is logged, not dropped in silence (E2). The peer stops
    listening and ends the gateway's stream, then sends a message SIP
    refuses: the bounce needs a new outbound stream, which cannot connect."""
    async with Env(tmp, sip_code=404) as e:
        s = await e.peer.authenticated_stream()
        e.peer.server.close()
        for st in e.peer.inbound:
            await st.close()
        e.gw.wait_log(r"ev=s2s\.out\.state stream=out\d+ .*to=closed")
        s.send(message("alice@peer.test/phone", "bob@sip.test", "hi", mid="lost-bounce"))
        await get(e.sip.requests)
        e.gw.wait_log(r"ev=s2s\.out\.dropped .*id=lost-bounce cond=remote-server-not-found", timeout=15)


async def test_xmpp_to_sip_large_message_not_over_udp(tmp):
    """RFC 3428 §8: a MESSAGE over 1300 bytes MUST NOT go over UDP; RFC 7572
    §6 answers it with policy-violation. The next hop here is UDP."""
    async with Env(tmp) as e:
        s = await e.peer.authenticated_stream()
        s.send(message("alice@peer.test/phone", "bob@sip.test", "x" * 1400, mid="big"))
        err = await get(e.peer.received, 20)
        assert err.attrs.get("type") == "error" and err.attrs.get("id") == "big", err
        e_el = err.child("error")
        assert e_el.child("policy-violation", NS_STANZAS) is not None, e_el
        assert "1300 bytes" in e_el.child("text", NS_STANZAS).text, e_el.child("text", NS_STANZAS)
        await expect_nothing(e.sip.requests, 0.5)
        # A small one still goes.
        s.send(message("alice@peer.test/phone", "bob@sip.test", "x" * 100, mid="small"))
        req = await get(e.sip.requests)
        assert req["body"] == b"x" * 100
        await s.close()


async def test_dialback_elements_carry_the_db_prefix(tmp):
    """ejabberd matches dialback elements by their literal name (db:result,
    db:verify) and ignores <result xmlns='jabber:server:dialback'/>, so the
    gateway writes them the way XEP-0220 shows them, in both roles."""
    async with Env(tmp) as e:
        s = await e.peer.authenticated_stream()        # gateway answers our db:result
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "x")
        await get(e.peer.received, 20)                  # gateway sent db:result, answered db:verify
        answers = bytes(s.raw)
        sent = b"".join(bytes(i.raw) for i in e.peer.inbound)
        assert b"<db:result" in answers and b"type='valid'" in answers, answers[-300:]
        assert b"<db:result" in sent and b"<db:verify" in sent, sent[-600:]
        for raw in (answers, sent):
            assert b"<result" not in raw and b"<verify" not in raw, raw[-600:]


async def test_stanza_before_dialback_is_refused(tmp):
    async with Env(tmp) as e:
        s = await e.peer.open_stream("sip.test")
        s.send(message("alice@peer.test", "bob@sip.test", "sneaky"))
        el = await s.expect_el("error")
        assert el.child("not-authorized", NS_STREAM_ERR) is not None, el
        await expect_nothing(e.sip.requests, 0.5)


async def test_forged_dialback_key_is_invalid(tmp):
    async with Env(tmp) as e:
        s = await e.peer.authenticated_stream(key="00" * 32)
        assert s.db_result.attrs.get("type") == "invalid", s.db_result
        s.send(message("alice@peer.test", "bob@sip.test", "forged"))
        el = await s.expect_el("error")
        assert el.child("not-authorized", NS_STREAM_ERR) is not None, el
        await expect_nothing(e.sip.requests, 0.5)


async def test_tls_required_before_dialback(tmp):
    async with Env(tmp) as e:
        s = await e.peer.open_stream("sip.test", tls=False)
        assert s.features.child("starttls") is not None
        assert s.features.child("starttls").child("required") is not None
        # Dialback is not offered in the clear, and trying it anyway ends
        # the stream with the reason (trust rules: tls required).
        assert s.features.child("dialback") is None, s.features
        k = dialback_key(e.peer.secret, "sip.test", "peer.test", s.sid)
        s.send(f"<db:result from='peer.test' to='sip.test'>{k}</db:result>")
        el = await s.expect_el("error")
        assert el.child("policy-violation", NS_STREAM_ERR) is not None, el
        assert el.child("text", NS_STREAM_ERR).text == "TLS is required for peer.test", el
        await expect_nothing(e.sip.requests, 0.3)


async def test_non_partner_refused(tmp):
    async with Env(tmp) as e:
        s = await XStream.connect(e.gw_port)
        s.send(header("stranger.test", "sip.test"))
        kind, _ = await s.next()
        assert kind == "header"
        el = await s.expect_el("error")
        assert el.child("policy-violation", NS_STREAM_ERR) is not None, el
        e.gw.wait_log("ev=s2s.in.refused")


async def test_unknown_host(tmp):
    async with Env(tmp) as e:
        s = await XStream.connect(e.gw_port)
        s.send(header("peer.test", "elsewhere.test"))
        await s.next()
        el = await s.expect_el("error")
        assert el.child("host-unknown", NS_STREAM_ERR) is not None, el


async def test_hostile_xml(tmp):
    cases = {
        # A DOCTYPE inside the root element is a syntax error before it is a
        # restricted construct; one before the stream header is tested below.
        "not-well-formed  ": "<!DOCTYPE lol [<!ENTITY a 'aaaa'>]><x>&a;</x>",
        "restricted-xml": "<message><body>&undefined;</body></message>",
        "restricted-xml ": "<!-- comment -->",
        "restricted-xml  ": "<?pi data?>",
        "not-well-formed": "<message><body>unclosed</message>",
        "not-well-formed ": "<message>\xff\xfe</message>",
    }
    async with Env(tmp) as e:
        for cond, junk in cases.items():
            s = await e.peer.open_stream("sip.test", tls=False)
            s.send(junk.encode("latin-1") if "\xff" in junk else junk)
            el = await s.expect_el("error")
            names = [c.name for c in el.children]
            assert cond.strip() in names, f"{junk!r}: {names}"
            await s.close()
        # Billion laughs before the stream header: refused at the DOCTYPE,
        # after a stream header of ours (RFC 6120 §4.9.1.1).
        s = await XStream.connect(e.gw_port)
        s.send("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
               "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
               + header("peer.test", "sip.test"))
        kind, _ = await s.next()
        assert kind == "header", kind
        el = await s.expect_el("error")
        assert el.child("restricted-xml", NS_STREAM_ERR) is not None, el
        await s.close()
        # An oversized stanza: the gateway's default max_stanza is 256 KiB.
        # Before authentication the limit is 8 KiB, so the gateway closes
        # with most of this unread, and the kernel may turn that close into
        # a reset that overtakes the stream error; the log says why.
        s = await e.peer.open_stream("sip.test", tls=False)
        s.send("<message><body>" + "x" * (300 * 1024))
        try:
            el = await s.expect_el("error")
            assert el.child("policy-violation", NS_STREAM_ERR) is not None, el
        except ConnectionResetError:
            pass
        e.gw.wait_log(r"ev=s2s\.in\.error .*cond=policy-violation text=\"stanza exceeds 8192 bytes")
        # Nothing else was lost: a good stream still works.
        s = await e.peer.authenticated_stream()
        s.send(message("alice@peer.test", "bob@sip.test", "still here"))
        req = await get(e.sip.requests)
        assert req["body"] == b"still here"


async def stream_ends(s, timeout):
    """Reads until the gateway ends the stream: a stream error, its closing
    tag, EOF or a reset. Returns what ended it; AssertionError if it stays open."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the gateway kept the stream open")
        try:
            kind, el = await s.next(left)
        except (TimeoutError, asyncio.TimeoutError):
            continue
        except (ConnectionError, OSError):
            return "reset"
        if kind in ("eof", "close") or (kind == "el" and el.name == "error"):
            return kind if kind != "el" else "stream-error"


async def test_unanswerable_verify_closes_stream(tmp):
    """A db:verify whose answer cannot be written (the echoed id would pass
    the 4 KiB reply bound) ends the stream instead of leaving the peer
    waiting for an answer that never comes. (Since the inbound side refuses
    ids over 64 bytes, that refusal ends it first; either way it ends.)"""
    async with Env(tmp) as e:
        s = await e.peer.open_stream("sip.test", tls=False)
        s.send(f"<db:verify from='peer.test' to='sip.test' id=\"{chr(39) * 700}\">k</db:verify>")
        print("  ended by", await stream_ends(s, 5))


async def test_peer_that_does_not_read_is_closed(tmp):
    """Audit L6: a peer sends db:verify requests and never reads the
    answers. Once the output bound is reached the gateway closes the stream
    instead of holding megabytes for it. Before authentication 64 requests
    end the stream (test_db_verify_limits), so this peer authenticates
    first (plaintext, tls = "optional") and floods after."""
    async with Env(tmp, peer_tls="optional") as e:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", e.gw_port))
        r, w = await asyncio.open_connection(sock=sock)
        s = XStream(r, w)
        s.send(header("peer.test", "sip.test"))
        kind, h = await s.next()
        assert kind == "header", kind
        await s.expect_el("features")
        k = dialback_key(e.peer.secret, "sip.test", "peer.test", h.attrs["id"])
        s.send(f"<db:result from='peer.test' to='sip.test'>{k}</db:result>")
        el = await s.expect_el("result", timeout=20)
        assert el.attrs.get("type") == "valid", el
        w.transport.pause_reading()
        req = f"<db:verify from='peer.test' to='sip.test' id=\"{chr(39) * 60}\">k</db:verify>"
        try:
            for _ in range(100):  # replies pass the output bound (core/limits.h)
                s.send(req * 500)
                await w.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed by the gateway while we were still sending: what we want
        e.gw.wait_log(r"ev=s2s\.in\.write .*reason=ELIMIT", timeout=20)
        w.transport.resume_reading()
        print("  ended by", await stream_ends(s, 10))


async def test_whitespace_keepalive(tmp):
    async with Env(tmp) as e:
        s = await e.peer.authenticated_stream()
        for _ in range(5):
            s.send(" ")
        s.send(message("alice@peer.test", "bob@sip.test", "after keepalives"))
        req = await get(e.sip.requests)
        assert req["body"] == b"after keepalives"


async def test_message_without_body_dropped_quietly(tmp):
    async with Env(tmp) as e:
        s = await e.peer.authenticated_stream()
        s.send("<message from='alice@peer.test' to='bob@sip.test' type='chat'>"
               "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        s.send(message("alice@peer.test", "bob@sip.test", "real"))
        req = await get(e.sip.requests)
        assert req["body"] == b"real"
        e.gw.wait_log(r"ev=s2s\.in\.ignored stream=in\d+ stanza=message reason=no-body")


async def test_event_carries_stream_facts(tmp):
    """The event built from an inbound stanza says whether its stream was
    encrypted and how the peer authenticated: the policy sees m.secure and
    m.auth."""
    hook = """
function on_message(m)
  if m.origin == "xmpp" then
    m.body = m.body .. " [" .. (m.secure and "secure" or "plain") .. " " .. tostring(m.auth) .. "]"
  end
  return m
end"""
    async with Env(tmp, peer_tls="optional", hook=hook) as e:
        for tls, facts in ((True, "secure dialback"), (False, "plain dialback")):
            s = await e.peer.authenticated_stream(tls=tls)
            s.send(message("alice@peer.test", "bob@sip.test", "hi"))
            req = await get(e.sip.requests)
            assert req["body"] == f"hi [{facts}]".encode(), req["body"]
            await s.close()


async def test_presence_refused_is_answered_as_rfc6121_says(tmp):
    """Presence becomes events for the router; when it refuses them, a
    subscription request is answered with unsubscribed (RFC 6121 3.1.3),
    bare JID to bare JID, a probe with a presence error (addresses swapped),
    and broadcast presence only logged. With presence.enabled = false the
    router refuses all three."""
    e = Env(tmp)
    e.gw.write_policy(e.policy_text().replace('domains = { "sip.test" },',
                                              'domains = { "sip.test" }, '
                                              'presence = { enabled = false },', 1))
    async with e:
        s = await e.peer.authenticated_stream()
        s.send("<presence from='alice@peer.test/phone' to='bob@sip.test'/>")
        s.send("<presence from='alice@peer.test' to='bob@sip.test' type='probe' id='p0'/>")
        s.send("<presence from='alice@peer.test/phone' to='bob@sip.test/x' type='subscribe' id='s1'/>")
        st = await get(e.peer.received, 20)
        assert st.name == "presence", st
        assert st.attrs.get("type") == "error" and st.attrs.get("id") == "p0", st.attrs
        assert st.attrs["from"] == "bob@sip.test" and st.attrs["to"] == "alice@peer.test", st.attrs
        st = await get(e.peer.received, 20)
        assert st.name == "presence", st
        assert st.attrs == {"from": "bob@sip.test", "to": "alice@peer.test",
                            "type": "unsubscribed", "id": "s1"}, st.attrs
        await expect_nothing(e.peer.received, 0.5)
        await expect_nothing(e.sip.requests, 0.1)
        e.gw.wait_log(r"ev=s2s\.in\.presence .*type=available result=refused")
        e.gw.wait_log(r"ev=s2s\.in\.presence .*type=subscribe result=unsubscribed")


async def test_error_stanza_values_are_quoted_in_the_log(tmp):
    """Audit L4: an error stanza's id with spaces cannot add fields of its
    own to the log line."""
    async with Env(tmp) as e:
        s = await e.peer.authenticated_stream()
        s.send("<message type='error' from='alice@peer.test' to='bob@sip.test' "
               "id='x cond=forged result=reported-to-sender'><error type='cancel'>"
               f"<item-not-found xmlns='{NS_STANZAS}'/></error></message>")
        e.gw.wait_log(r'ev=xmpp\.error\.in stream=in\d+ from=alice@peer\.test to=bob@sip\.test '
                      r'id="x cond=forged result=reported-to-sender" cond=item-not-found '
                      r'result=too-late-recorded')


async def test_iq_gets_service_unavailable(tmp):
    async with Env(tmp) as e:
        s = await e.peer.authenticated_stream()
        s.send("<iq from='alice@peer.test/x' to='bob@sip.test' type='get' id='q1'>"
               "<query xmlns='jabber:iq:version'/></iq>")
        err = await get(e.peer.received, 20)
        assert err.name == "iq" and err.attrs.get("type") == "error", err
        assert err.child("error").child("service-unavailable") is not None


# --- hostile inbound streams --------------------------------------------------

async def open_idle(port, sources, per_source, send_header=True):
    """Opens per_source connections from each source address (loopback
    aliases); every other one sends a stream header and then nothing."""
    conns = []
    for src in sources:
        for j in range(per_source):
            r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
            if send_header and j % 2:
                w.write(header("peer.test", "sip.test").encode())
            conns.append((src, r, w))
    return conns


async def still_open(conns):
    """Which connections the gateway has not closed (no EOF within 0.3 s)."""
    async def alive(r):
        try:
            while await asyncio.wait_for(r.read(65536), 0.3):
                pass
            return False
        except asyncio.TimeoutError:
            return True
        except ConnectionError:
            return False
    flags = await asyncio.gather(*(alive(r) for _, r, _ in conns))
    return [c for c, ok in zip(conns, flags) if ok]


async def test_idle_inbound_flood_leaves_federation_working(tmp):
    """Audit H3: 1,200 idle connections to 5269 (40 sources x 30) once made
    every outbound stream fail and kept partners out. Now unauthenticated
    streams are capped per source (8) and in total (256 here; the policy's
    xmpp.max_streams), the oldest are evicted, and outbound streams have
    their own budget."""
    async with Env(tmp, xmpp_extra="max_streams = { unauthenticated = 256 },") as e:
        sources = [f"127.0.0.{i}" for i in range(2, 42)]
        conns = await open_idle(e.gw_port, sources, 30)
        e.gw.wait_count("reason=accepted|reason=too-many-streams", 1200, timeout=30)
        # SIP -> XMPP: a new outbound stream, and peer.test dialing back in.
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "through")
        st = await get(e.peer.received, 20)
        assert st.child("body").text == "through", st
        resp = await get(e.uac.responses, 20)
        assert resp["code"] == 200, resp["first"]
        # XMPP -> SIP: the real partner connects in and authenticates.
        s = await e.peer.authenticated_stream()
        assert s.db_result.attrs.get("type") == "valid", s.db_result
        s.send(message("alice@peer.test", "bob@sip.test", "in too"))
        req = await get(e.sip.requests)
        assert req["body"] == b"in too", req["body"]
        held = await still_open(conns)
        per = {}
        for src, _, _ in held:
            per[src] = per.get(src, 0) + 1
        evicted = e.gw.count_log(r"ev=s2s\.in\.evicted")
        print(f"  flood: 1200 opened, {len(held)} held open, {evicted} evicted, "
              f"max {max(per.values(), default=0)} per source")
        assert len(held) <= 256, len(held)
        assert max(per.values(), default=0) <= 8, per
        assert e.gw.count_log("reason=too-many-streams") == 0
        for _, _, w in conns:
            w.close()


async def test_per_source_cap_counts_an_ipv6_64_as_one_source(tmp):
    """IPv6 sources are counted per /64 (what one host usually holds): nine
    idle streams from nine addresses of one /64 evict the first; one from
    the next /64 evicts nothing. IPv4-mapped peers count per address."""
    addrs = [f"fd00::{i}" for i in range(1, 10)] + ["fd00:0:0:1::1"]
    for a in addrs:
        r = subprocess.run(["ip", "-6", "addr", "add", f"{a}/64", "dev", "lo", "nodad"],
                           capture_output=True)
        assert r.returncode == 0 or b"File exists" in r.stderr, r.stderr
    e = Env(tmp)
    e.gw.write_policy(e.policy_text().replace('listen = "127.0.0.1:', 'listen = "[::]:', 1))
    async with e:
        conns = []
        for a in addrs:
            r, w = await asyncio.open_connection("::1", e.gw_port, local_addr=(a, 0))
            w.write(header("peer.test", "sip.test").encode())
            conns.append((a, r, w))
        e.gw.wait_count("reason=accepted", len(addrs))
        held = await still_open(conns)
        assert [a for a, _, _ in held] == addrs[1:], [a for a, _, _ in held]
        assert e.gw.count_log(r"ev=s2s\.in\.evicted .*reason=per-source-cap") == 1
        # Over IPv4 (mapped on this dual-stack listener) the partner still works.
        s = await e.peer.authenticated_stream()
        assert s.db_result.attrs.get("type") == "valid", s.db_result
        for _, _, w in conns:
            w.close()


async def test_flood_spares_a_stream_in_dialback(tmp):
    """When the unauthenticated streams are at their cap, a stream whose
    dialback is being verified is evicted after the idle ones: a partner
    whose server takes 3 s to answer db:verify still gets in while 320 new
    idle connections arrive from 40 sources (256 unauthenticated at most)."""
    async with Env(tmp, xmpp_extra="max_streams = { unauthenticated = 256 },") as e:
        sources = [f"127.0.0.{i}" for i in range(2, 42)]
        first = await open_idle(e.gw_port, sources, 8)
        e.gw.wait_count("reason=accepted", 320, timeout=30)
        e.peer.verify_delay = 3.0
        s = await e.peer.open_stream("sip.test")
        k = dialback_key(e.peer.secret, "sip.test", "peer.test", s.sid)
        s.send(f"<db:result from='peer.test' to='sip.test'>{k}</db:result>")
        deadline = time.monotonic() + 10
        while not e.peer.verified and time.monotonic() < deadline:  # our key, checked
            await asyncio.sleep(0.05)
        assert e.peer.verified, "the partner never checked the gateway's key"
        second = await open_idle(e.gw_port, sources, 8)
        e.gw.wait_count("reason=accepted", 640 + 2, timeout=30)
        el = await s.expect_el("result", timeout=20)
        assert el.attrs.get("type") == "valid", el
        s.send(message("alice@peer.test", "bob@sip.test", "made it"))
        req = await get(e.sip.requests)
        assert req["body"] == b"made it"
        for _, _, w in first + second:
            w.close()


async def test_unauthenticated_deadlines(tmp):
    """Audit H3: 10 s for the header (was 30), 30 s from it to authenticate
    (was 60), measured on two idle streams side by side."""
    async def timed_out(s):
        kind, el = await s.next(timeout=40)
        if kind == "header":  # ours, sent before the error to a silent peer
            kind, el = await s.next(timeout=40)
        assert kind == "el" and el.name == "error", (kind, el)
        assert el.child("connection-timeout", NS_STREAM_ERR) is not None, el
        return time.monotonic()

    async with Env(tmp) as e:
        start = time.monotonic()
        silent = await XStream.connect(e.gw_port)
        opened = await e.peer.open_stream("sip.test", tls=False)
        t_silent, t_opened = await asyncio.gather(timed_out(silent), timed_out(opened))
        assert 9 <= t_silent - start <= 12, t_silent - start
        assert 29 <= t_opened - start <= 32, t_opened - start


async def test_preauth_stanza_limit(tmp):
    """Before any pair is authenticated a stanza may span 8 KiB: a 20 KB one
    ends the stream with policy-violation (not not-authorized, which is what
    a stanza that was parsed whole gets). After dialback the policy's
    max_stanza (256 KiB) applies."""
    big = "<x xmlns='urn:example:pad'>" + "p" * 20000 + "</x>"
    async with Env(tmp) as e:
        s = await e.peer.open_stream("sip.test")
        s.send(message("alice@peer.test", "bob@sip.test", "early", extra=big))
        try:  # closed with input unread: a reset may overtake the stream error
            el = await s.expect_el("error")
            assert el.child("policy-violation", NS_STREAM_ERR) is not None, el
        except ConnectionResetError:
            pass
        e.gw.wait_log(r"ev=s2s\.in\.error .*cond=policy-violation text=\"stanza exceeds 8192 bytes")
        s = await e.peer.authenticated_stream()
        assert s.db_result.attrs.get("type") == "valid", s.db_result
        s.send(message("alice@peer.test", "bob@sip.test", "big but fine", extra=big))
        req = await get(e.sip.requests)
        assert req["body"] == b"big but fine", req["body"]
        await expect_nothing(e.sip.requests, 0.3)


async def test_dialback_flood_does_not_starve_the_partner(tmp):
    """Audit M3: 1,000 db:result for peer.test on one stream, while the
    partner takes 200 ms to answer each db:verify, once filled the 64
    verification slots and the real partner's dialback failed. Now one
    verification per pair is in flight, repeats are ignored, and the stream
    is closed after 32 attempts."""
    async with Env(tmp) as e:
        e.peer.verify_delay = 0.2
        flood = await e.peer.open_stream("sip.test")
        flood.send("".join(f"<db:result from='peer.test' to='sip.test'>{i:064x}</db:result>"
                           for i in range(1000)))
        s = await e.peer.authenticated_stream()
        assert s.db_result.attrs.get("type") == "valid", s.db_result
        # Closed with unread input, the kernel may turn the close into a reset
        # that overtakes the stream error; the log says why either way.
        try:
            el = await flood.expect_el("error")
            assert el.child("policy-violation", NS_STREAM_ERR) is not None, el
        except ConnectionResetError:
            pass
        e.gw.wait_log("cond=policy-violation text=\"too many dialback attempts on one stream\"")
        s.send(message("alice@peer.test", "bob@sip.test", "authenticated"))
        req = await get(e.sip.requests)
        assert req["body"] == b"authenticated"
        print(f"  db:verify the partner was asked: {e.peer.verify_requests}")
        assert e.peer.verify_requests == 2, e.peer.verify_requests


async def test_dialback_share_per_source(tmp):
    """One source address has at most 2 verifications of one pair pending,
    over all its streams: the outbound stream's 64 places for peer.test
    cannot be taken by a few hosts. A third stream from the same host is
    refused at once; the partner, from another address, still gets in."""
    async with Env(tmp, peer_tls="optional") as e:
        e.peer.verify_delay = 2.0
        streams = []
        for _ in range(3):
            r, w = await asyncio.open_connection("127.0.0.1", e.gw_port, local_addr=("127.0.0.5", 0))
            s = XStream(r, w)
            s.send(header(None, "sip.test"))
            assert (await s.next())[0] == "header"
            await s.expect_el("features")
            s.send(f"<db:result from='peer.test' to='sip.test'>{'ab' * 32}</db:result>")
            streams.append(s)
        el = await streams[2].expect_el("result")
        assert el.attrs.get("type") == "error", el
        assert el.child("error").child("resource-constraint") is not None, el
        e.gw.wait_log("result=refused reason=too-many-from-source")
        assert e.gw.count_log("remote=peer.test local=sip.test result=verifying") == 2
        s = await e.peer.authenticated_stream(tls=False)
        assert s.db_result.attrs.get("type") == "valid", s.db_result
        for st in streams[:2]:
            el = await st.expect_el("result", timeout=20)
            assert el.attrs.get("type") == "invalid", el


async def test_dialback_in_flight_cap(tmp):
    """At most 4 pairs are being verified on one stream: the fifth db:result
    is answered with resource-constraint at once. The partners' servers
    accept TCP and say nothing, so the verifications stay pending."""
    silent_port = free_port()
    names = ["a.test", "b.test", "c.test", "d.test", "e.test"]
    extra = "\n".join(f'partner "{n}" {{ tls = "optional", dialback = true, '
                      f'route = "127.0.0.1:{silent_port}" }}' for n in names)
    held = []

    async def silent(r, w):
        held.append(w)

    server = await asyncio.start_server(silent, "127.0.0.1", silent_port)
    try:
        async with Env(tmp, extra_partners=extra) as e:
            s = await XStream.connect(e.gw_port)
            s.send(header(None, "sip.test"))
            assert (await s.next())[0] == "header"
            await s.expect_el("features")
            for n in names:
                s.send(f"<db:result from='{n}' to='sip.test'>{'ab' * 32}</db:result>")
            el = await s.expect_el("result")
            assert el.attrs.get("from") == "sip.test" and el.attrs.get("to") == "e.test", el
            assert el.attrs.get("type") == "error", el
            assert el.child("error").child("resource-constraint") is not None, el
            e.gw.wait_log("remote=e.test local=sip.test result=refused reason=too-many-in-flight")
            assert e.gw.count_log("result=verifying") == 4
    finally:
        server.close()
        for w in held:
            w.close()


async def bare_stream(port, to="sip.test"):
    """A plaintext stream with no `from`, past the gateway's features."""
    s = await XStream.connect(port)
    s.send(header(None, to))
    assert (await s.next())[0] == "header"
    await s.expect_el("features")
    return s


async def test_ip_literal_dialback_refused(tmp):
    """Audit M4: with partner "*", db:result from an IP literal made the
    gateway connect to that address. Every form is refused, and no stream
    is opened."""
    extra = 'partner "*" { tls = "optional", dialback = true }'
    hits = []

    async def trap(r, w):
        hits.append(w.get_extra_info("sockname"))
        w.close()

    server = await asyncio.start_server(trap, "127.0.0.9", 5269)
    try:
        async with Env(tmp, extra_partners=extra) as e:
            s = await bare_stream(e.gw_port)
            literals = ["127.0.0.9", "[::1]", "127.9", "2130706441", "0x7f000009",
                        "10.0.0.1."]
            for d in literals:
                s.send(f"<db:result from='{d}' to='sip.test'>{'ab' * 32}</db:result>")
                el = await s.expect_el("result")
                assert el.attrs.get("to") == d.rstrip("."), el
                assert el.attrs.get("type") == "error", el
                assert el.child("error").child("policy-violation") is not None, el
            # An IPv6 address without brackets is no domainpart at all (the one
            # validator, core/addr.h): the stream ends.
            s.send(f"<db:result from='::1' to='sip.test'>{'ab' * 32}</db:result>")
            print("  unbracketed IPv6 ended the stream by", await stream_ends(s, 10))
            await asyncio.sleep(0.3)
            assert hits == [], hits
            assert e.gw.count_log("ev=s2s.out.state") == 0
            assert e.gw.count_log("an IP address is not a domain we verify") == len(literals)
    finally:
        server.close()


async def test_db_verify_limits(tmp):
    """Audit L6: ids up to 64 bytes are answered, longer ones end the
    stream; an unauthenticated stream gets 64 answers, then policy-violation."""
    async with Env(tmp) as e:
        s = await bare_stream(e.gw_port)
        id64 = "i" * 64
        for n in range(64):
            s.send(f"<db:verify from='peer.test' to='sip.test' id='{id64}'>{'00' * 32}</db:verify>")
            el = await s.expect_el("verify")
            assert el.attrs.get("id") == id64 and el.attrs.get("type") == "invalid", (n, el)
        s.send(f"<db:verify from='peer.test' to='sip.test' id='{id64}'>{'00' * 32}</db:verify>")
        kind, el = await s.next()
        assert kind == "el" and el.name == "error", (kind, el)
        assert el.child("policy-violation", NS_STREAM_ERR) is not None, el
        s = await bare_stream(e.gw_port)
        s.send(f"<db:verify from='peer.test' to='sip.test' id='{'j' * 65}'>{'00' * 32}</db:verify>")
        kind, el = await s.next()
        assert kind == "el" and el.name == "error", (kind, el)
        assert el.child("policy-violation", NS_STREAM_ERR) is not None, el


async def test_starttls_discards_dialback_state(tmp):
    """Audit I1 (RFC 6120 §5.4.3.3): a pair authenticated over plaintext
    (tls = "optional") and the header's from do not survive STARTTLS."""
    async with Env(tmp, peer_tls="optional") as e:
        s = await e.peer.authenticated_stream(tls=False)
        assert s.db_result.attrs.get("type") == "valid", s.db_result
        s.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await s.expect_el("proceed")
        await s.w.drain()
        await s.w.start_tls(e.peer.client_ctx, server_hostname="sip.test")
        s.parser = StreamParser()
        s.send(header(None, "sip.test"))
        assert (await s.next())[0] == "header"
        await s.expect_el("features")
        s.send(message("alice@peer.test", "bob@sip.test", "pre-TLS pair"))
        el = await s.expect_el("error")
        assert el.child("not-authorized", NS_STREAM_ERR) is not None, el
        await expect_nothing(e.sip.requests, 0.5)
        # The header after TLS had no from; the one before it is forgotten.
        e.gw.wait_log(r'remote=- local=sip\.test from=wait-header to=open tls=TLS\S+ reason="header"')


async def test_verification_from_before_tls_does_not_count_after(tmp):
    """A valid key sent before STARTTLS whose answer arrives after it must
    not validate the same pair claimed afterwards with a bad key."""
    async with Env(tmp, peer_tls="optional") as e:
        e.peer.verify_delay = 1.0
        s = await e.peer.open_stream("sip.test", tls=False)
        k = dialback_key(e.peer.secret, "sip.test", "peer.test", s.sid)
        s.send(f"<db:result from='peer.test' to='sip.test'>{k}</db:result>")
        e.gw.wait_log("remote=peer.test local=sip.test result=verifying")
        s.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await s.expect_el("proceed")
        await s.w.drain()
        await s.w.start_tls(e.peer.client_ctx, server_hostname="sip.test")
        s.parser = StreamParser()
        s.send(header("peer.test", "sip.test"))
        assert (await s.next())[0] == "header"
        await s.expect_el("features")
        s.send(f"<db:result from='peer.test' to='sip.test'>{'00' * 32}</db:result>")
        el = await s.expect_el("result", timeout=20)
        assert el.attrs.get("type") == "invalid", el
        assert e.peer.verify_requests == 2, e.peer.verify_requests
        s.send(message("alice@peer.test", "bob@sip.test", "riding the old answer"))
        el = await s.expect_el("error")
        assert el.child("not-authorized", NS_STREAM_ERR) is not None, el
        await expect_nothing(e.sip.requests, 0.5)


async def test_descriptor_limit_sizes_the_budgets(tmp):
    """With RLIMIT_NOFILE 600 (hard) the policy's budgets (10,000 each way)
    shrink to fit, and the log says so and what to raise."""
    e = Env(tmp)
    e.gw.nofile = 600
    async with e:
        e.gw.wait_log(r"ev=xmpp\.budget result=shrunk nofile=600 want=20384 in_max=150 "
                      r"out_max=150 unauth_max=37 unauth_per_source=8 per_domain=32 "
                      r"reason=\"RLIMIT_NOFILE is below xmpp.max_streams")
        sources = [f"127.0.0.{i}" for i in range(2, 10)]
        conns = await open_idle(e.gw_port, sources, 8)
        e.gw.wait_count("reason=accepted", 64)
        held = await still_open(conns)
        assert len(held) == 37, len(held)
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "small")
        st = await get(e.peer.received, 20)
        assert st.child("body").text == "small", st
        for _, _, w in conns:
            w.close()


# --- SIP -> XMPP -----------------------------------------------------------

async def test_sip_to_xmpp_message(tmp):
    async with Env(tmp) as e:
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", UNICODE_BODY)
        st = await get(e.peer.received, 20)
        assert st.name == "message", st
        assert st.attrs.get("from") == "bob@sip.test", st.attrs
        assert st.attrs.get("to") == "alice@peer.test", st.attrs
        # RFC 7572 §5: no type or "normal", never "chat".
        assert st.attrs.get("type") in (None, "normal"), st.attrs
        assert st.child("body").text == UNICODE_BODY, st.child("body").text
        resp = await get(e.uac.responses, 20)
        assert resp["code"] == 200, resp["first"]
        # A sender's GRUU becomes the JID's resource (RFC 7572 §5 note 1).
        e.uac.send_message(e.sip_port, "sip:bob@sip.test;gr=desk%201", "sip:alice@peer.test", "g")
        st = await get(e.peer.received, 20)
        assert st.attrs.get("from") == "bob@sip.test/desk 1", st.attrs
        assert (await get(e.uac.responses, 20))["code"] == 200
        # The peer checked the gateway's key by asking the gateway back.
        assert e.peer.verified and all(ok for _, ok in e.peer.verified), e.peer.verified


async def test_sip_over_tls_both_ways(tmp):
    # A tls: listener and a tls: next hop on 127.0.0.1, which is therefore
    # trusted by default. The gateway starts with its self-signed certificate;
    # a reload that names one applies to the connections made after it.
    tls_port = free_port()
    async with Env(tmp, sip_listen_extra=f', "tls:127.0.0.1:{tls_port}"',
                   next_hop_transport="tls") as e:
        edge = SipTlsEndpoint(tmp)
        await edge.listen(e.next_hop_port)
        try:
            r, w = await edge.connect(tls_port)
            edge.message(w, "sip:bob@sip.test", "sip:alice@peer.test", UNICODE_BODY,
                         call_id="tls-in-1")
            st = await get(e.peer.received, 20)
            assert st.name == "message", st
            assert st.attrs.get("from") == "bob@sip.test", st.attrs
            assert st.attrs.get("to") == "alice@peer.test", st.attrs
            assert st.child("body").text == UNICODE_BODY, st.child("body").text
            resp = await asyncio.wait_for(read_sip(r), 20)
            assert resp["first"] == "SIP/2.0 200 OK", resp["first"]
            assert resp["headers"]["call-id"] == ["tls-in-1"], resp["headers"]
            assert re.search(r"ev=sip\.conn .*state=tls dir=in", e.gw.log_text())
            # Encryption is not authentication: a TLS sender from an address
            # that is not the next hop's is refused like one over UDP or TCP.
            r3, w3 = await edge.connect(tls_port, src="127.0.0.2")
            edge.message(w3, "sip:bob@sip.test", "sip:alice@peer.test", "stranger",
                         call_id="tls-stranger")
            resp = await asyncio.wait_for(read_sip(r3), 20)
            assert resp["first"] == "SIP/2.0 403 Forbidden", resp["first"]
            await expect_nothing(e.peer.received, 1)
            w3.close()

            s = await e.peer.authenticated_stream()
            s.send(message("alice@peer.test/phone", "bob@sip.test", "over tls", mid="t1"))
            req = await get(edge.requests, 20)
            assert req["first"] == "MESSAGE sip:bob@sip.test SIP/2.0", req["first"]
            assert req["body"] == b"over tls", req["body"]
            assert req["headers"]["via"][0].startswith("SIP/2.0/TLS "), req["headers"]["via"]
            # Nothing went the old ways: no UDP request, no second delivery.
            await expect_nothing(e.sip.requests, 0.5)
            await expect_nothing(edge.requests, 0.5)
            await expect_nothing(e.peer.received, 0.1)

            first_der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
            cert, key = make_cert(tmp, "sip.test")
            e.gw.write_policy(e.policy_text(
                xmpp_extra=f'tls = {{ cert = "{cert}", key = "{key}" }},'))
            out = e.gw.reload()
            assert "result=ok" in out, out
            with open(cert) as f:
                new_der = ssl.PEM_cert_to_DER_cert(f.read())
            assert first_der != new_der
            r2, w2 = await edge.connect(tls_port)
            assert w2.get_extra_info("ssl_object").getpeercert(binary_form=True) == new_der
            edge.message(w2, "sip:bob@sip.test", "sip:alice@peer.test", "after reload",
                         call_id="tls-in-2")
            st = await get(e.peer.received, 20)
            assert st.child("body").text == "after reload", st.child("body").text
            resp = await asyncio.wait_for(read_sip(r2), 20)
            assert resp["first"] == "SIP/2.0 200 OK", resp["first"]
            w.close()
            w2.close()
            await s.close()
        finally:
            await edge.close()


async def test_sip_to_xmpp_in_order_while_stream_sets_up(tmp):
    async with Env(tmp) as e:
        n = 50
        for i in range(n):
            e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", f"m{i}")
        got = []
        for _ in range(n):
            got.append((await get(e.peer.received, 20)).child("body").text)
        assert got == [f"m{i}" for i in range(n)], got
        codes = [(await get(e.uac.responses, 20))["code"] for _ in range(n)]
        assert codes == [200] * n, codes


async def test_sip_to_xmpp_error_becomes_final_response(tmp):
    async with Env(tmp) as e:
        e.peer.unknown_users.add("nobody@peer.test")
        start = time.monotonic()
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:nobody@peer.test", "anyone?")
        resp = await get(e.uac.responses, 20)
        # The peer's per-user <service-unavailable/> is no 503 (RFC 7247
        # §7.1 note 5): a SIP proxy would back off from the whole gateway.
        assert resp["code"] == 403, resp["first"]
        assert "retry-after" not in resp["headers"], resp["headers"]
        # The error came back well inside the grace: the answer did not wait it out.
        assert time.monotonic() - start < 5
        # The log line follows the response on the wire; wait for it.
        e.gw.wait_log("result=reported-to-sender")
        # A deliverable message still gets its 200 once the grace has passed.
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "hello")
        await get(e.peer.received, 20)
        resp = await get(e.uac.responses, 20)
        assert resp["code"] == 200, resp["first"]


async def sip_burst(e, bodies):
    """Sends one MESSAGE per body; returns {call_id: body}."""
    calls = {}
    for body in bodies:
        cid = uuid.uuid4().hex
        calls[cid] = body
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", body,
                           call_id=cid)
        if len(calls) % 20 == 0:
            await asyncio.sleep(0.02)  # paced, so no datagram is lost on the way in
    return calls


async def final_codes(e, calls, timeout=20):
    """{call_id: final status} for every call in `calls`, or an AssertionError."""
    codes = {}
    deadline = time.monotonic() + timeout
    while len(codes) < len(calls):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{len(calls) - len(codes)} of {len(calls)} MESSAGEs unanswered")
        r = await get(e.uac.responses, left)
        cid = r["headers"]["call-id"][0]
        if cid in calls and r["code"] >= 200:
            assert cid not in codes, f"two final responses for {cid}"
            codes[cid] = r["code"]
    return codes


def drain(q):
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


async def test_cut_link_mid_burst_no_false_200(tmp):
    """Nothing is called delivered that was not: the peer stops reading our
    stream, a burst goes out, and the connection is reset inside the error
    grace. Every 200 must match a stanza the peer read; every other MESSAGE
    gets a final error, none is left unanswered. (Loopback's socket buffers
    take the whole burst, so every stanza here reaches the kernel and is in
    its grace at the cut; test_link covers bytes the kernel never took.)"""
    n = 60
    # The 1 s grace this test is about (the default is shorter than the sleep below).
    async with Env(tmp, xmpp_extra="error_grace = 1,") as e:
        e.peer.stall_after = 3
        first = await sip_burst(e, [f"warm{i}" for i in range(3)])
        for _ in range(3):
            await get(e.peer.received, 20)
        assert set((await final_codes(e, first)).values()) == {200}
        await asyncio.wait_for(e.peer.stalled.wait(), 10)
        calls = await sip_burst(e, [f"burst{i} " + "x" * 700 for i in range(n)])
        await asyncio.sleep(0.4)   # written and confirmed by the kernel, inside the 1 s grace
        e.peer.cut.set()
        codes = await final_codes(e, calls)
        got = {el.child("body").text for el in drain(e.peer.received)}
        false_200 = [c for c, code in codes.items() if code == 200 and calls[c] not in got]
        print(f"  cut-link: sent={n} read-by-peer={len(got)} answered-200={sum(c == 200 for c in codes.values())}"
              f" 200-for-unread={len(false_200)} codes={sorted(set(codes.values()))}")
        assert not false_200, f"{len(false_200)} of {n} answered 200 but never read by the peer"
        assert set(codes.values()) <= {200, 408}, codes
        e.gw.wait_log("ev=s2s.out.unconfirmed")
        print("  " + re.search(r"ev=s2s\.out\.unconfirmed.*", e.gw.log_text()).group(0))
        # A new stream carries the next message.
        e.peer.stall_after = None
        again = await sip_burst(e, ["after the cut"])
        assert (await get(e.peer.received, 20)).child("body").text == "after the cut"
        assert list((await final_codes(e, again)).values()) == [200]


async def test_peer_ends_stream_during_grace(tmp):
    """The peer reads a stanza and ends the stream inside its error grace,
    with </stream:stream> or with a bare TCP close (no close_notify). The
    stanza was read, and the link ended in order, so the sender gets 200 (the
    rule in s2s.h); the gateway answers </stream:stream> with its own, and the
    next message opens a new stream."""
    for how in ("close", "eof"):
        async with Env(tmp) as e:
            e.peer.end_after, e.peer.end_how = 1, how
            calls = await sip_burst(e, [f"last words {how}"])
            assert (await get(e.peer.received, 20)).child("body").text == f"last words {how}"
            assert list((await final_codes(e, calls)).values()) == [200], how
            reason = "the remote server closed the stream" if how == "close" else "connection closed"
            e.gw.wait_log(f"ev=s2s.out.state stream=out1 .*to=closed.*reason=\"{reason}\"")
            e.peer.end_after = None
            again = await sip_burst(e, ["next"])
            assert (await get(e.peer.received, 20)).child("body").text == "next"
            assert list((await final_codes(e, again)).values()) == [200]
            e.gw.wait_log("ev=s2s.out.state stream=out3 ")


async def test_sip_to_xmpp_gone_becomes_301_with_contact(tmp):
    """RFC 7247 §7.1 note 3: a <gone/> naming a new address MUST become 301;
    the SIP sender gets that address as a SIP URI in Contact."""
    async with Env(tmp) as e:
        e.peer.unknown_users.add("romeo@peer.test")
        e.peer.bounce_error = (f"<gone xmlns='{NS_STANZAS}'>\n xmpp:romeo@afterlife.example.net\n"
                               f"</gone>")
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:romeo@peer.test", "hello?")
        resp = await get(e.uac.responses, 20)
        assert resp["code"] == 301, resp["first"]
        assert resp["headers"].get("contact") == ["<sip:romeo@afterlife.example.net>"], resp
        e.peer.bounce_error = f"<gone xmlns='{NS_STANZAS}'/>"
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:romeo@peer.test", "hello?")
        resp = await get(e.uac.responses, 20)
        assert resp["code"] == 410 and "contact" not in resp["headers"], resp
        await expect_nothing(e.peer.received, 0.5)


async def test_sip_retransmission_delivered_once(tmp):
    async with Env(tmp) as e:
        branch, call_id = "z9hG4bK" + uuid.uuid4().hex, uuid.uuid4().hex
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "once",
                           call_id=call_id, branch=branch)
        await get(e.peer.received, 20)
        r1 = await get(e.uac.responses)
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "once",
                           call_id=call_id, branch=branch)
        r2 = await get(e.uac.responses)
        assert r1["code"] == r2["code"] == 200, (r1["first"], r2["first"])
        await expect_nothing(e.peer.received, 1.0)


async def test_sip_to_unfederated_domain_refused(tmp):
    async with Env(tmp) as e:
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:carol@stranger.test", "x")
        resp = await get(e.uac.responses)
        assert 400 <= resp["code"] < 700, resp["first"]
        e.gw.wait_log("ev=router.refused")


async def test_sip_to_unreachable_partner_fails(tmp):
    dead = free_port()
    extra = f'partner "dead.test" {{ tls = "optional", dialback = true, route = "127.0.0.1:{dead}" }}'
    async with Env(tmp, extra_partners=extra) as e:
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:carol@dead.test", "x")
        resp = await get(e.uac.responses, 20)
        assert 400 <= resp["code"] < 700, resp["first"]


async def test_open_federation_refuses_ip_literals(tmp):
    """Audit M4: with partner "*", an IP-literal domain, from SIP or claimed
    in an inbound db:result, opens no connection to that address (a port
    scanner's oracle otherwise)."""
    extra = 'partner "*" { tls = "optional", dialback = true }'
    async with Env(tmp, extra_partners=extra) as e:
        hits = []

        async def internal(r, w):
            hits.append(w.get_extra_info("peername"))
            w.close()
        srv = await asyncio.start_server(internal, "127.0.0.9", 5269)
        try:
            calls = await sip_burst(e, ["to an address"])
            calls = {c: b for c, b in calls.items()}
            e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:carol@127.0.0.9", "scan",
                               call_id="lit")
            calls["lit"] = "scan"
            codes = await final_codes(e, calls)
            assert codes["lit"] == 404, codes
            e.gw.wait_log("ev=s2s.out.refused local=sip.test remote=127.0.0.9 reason=ip-literal")
            s = await e.peer.open_stream("sip.test", tls=False)
            s.send("<db:result from='127.0.0.9' to='sip.test'>abc</db:result>")
            el = await s.expect_el("result")
            assert el.attrs.get("type") == "error", el
            await asyncio.sleep(0.3)
            assert hits == [], hits
        finally:
            srv.close()


class BlackHole:
    """A TCP server that accepts and never says a word; keeps what it got."""

    def __init__(self):
        self.got = bytearray()
        self.writers = []

    async def start(self, port):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)

    async def _serve(self, r, w):
        self.writers.append(w)
        while True:
            data = await r.read(4096)
            if not data:
                return
            self.got += data

    def stop(self):
        self.server.close()
        for w in self.writers:
            w.close()


async def test_outbound_setup_deadline(tmp):
    """A peer that accepts the connection and never answers: the stream's
    set-up deadline (xmpp.connect_timeout, 5 s here) ends it with a
    connection-timeout stream error, and the queued messages get 408. With
    xmpp.queue_max = 3, the fourth and fifth are refused at once
    (resource-constraint, 500) instead of queueing."""
    hole_port = free_port()
    extra = f'partner "hole.test" {{ tls = "optional", dialback = true, route = "127.0.0.1:{hole_port}" }}'
    async with Env(tmp, extra_partners=extra, xmpp_extra="queue_max = 3,") as e:
        hole = BlackHole()
        await hole.start(hole_port)
        try:
            start = time.monotonic()
            calls = {}
            for i in range(5):
                e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:carol@hole.test", "x",
                                   call_id=f"hole{i}")
                calls[f"hole{i}"] = "x"
            early = await final_codes(e, {"hole3": "x", "hole4": "x"}, timeout=3)
            assert early == {"hole3": 500, "hole4": 500}, early
            assert time.monotonic() - start < 2
            codes = await final_codes(e, {c: "x" for c in ("hole0", "hole1", "hole2")}, timeout=15)
            took = time.monotonic() - start
            assert codes == {"hole0": 408, "hole1": 408, "hole2": 408}, codes
            assert 4.5 < took < 8, took
            await asyncio.sleep(0.2)
            assert b"<stream:stream" in hole.got, hole.got
            assert b"connection-timeout" in hole.got, hole.got
            e.gw.wait_log("ev=s2s.out.failed .*remote=hole.test cond=remote-server-timeout")
        finally:
            hole.stop()


async def test_no_error_grace_answers_at_kernel_confirmation(tmp):
    """xmpp.error_grace = 0: the 200 comes as soon as the kernel has the
    stanza's bytes, without waiting for an error that cannot be matched."""
    async with Env(tmp, xmpp_extra="error_grace = 0,") as e:
        warm = await sip_burst(e, ["warm"])
        await get(e.peer.received, 20)
        assert list((await final_codes(e, warm)).values()) == [200]
        start = time.monotonic()
        calls = await sip_burst(e, [f"quick {i}" for i in range(5)])
        assert set((await final_codes(e, calls, timeout=5)).values()) == {200}
        assert time.monotonic() - start < 0.8, time.monotonic() - start
        got = sorted(el.child("body").text for el in [await get(e.peer.received, 5) for _ in range(5)])
        assert got == [f"quick {i}" for i in range(5)], got


STREAM_ERR_NS = "urn:ietf:params:xml:ns:xmpp-streams"
TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"


async def scripted_peer_case(e, port, script):
    """Serves one gateway connection on `port` with `script(s, h)` (s an
    XStream, h the gateway's header); returns (bytes received, SIP code)."""
    done = asyncio.get_running_loop().create_future()
    got = {}

    async def serve(r, w):
        s = XStream(r, w)
        try:
            kind, h = await s.next()
            assert kind == "header", kind
            await script(s, h)
            await asyncio.sleep(0.2)
        except (ConnectionError, asyncio.TimeoutError, TimeoutError):
            pass
        finally:
            got["raw"] = bytes(s.raw)
            w.close()
            if not done.done():
                done.set_result(None)
    srv = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        cid = uuid.uuid4().hex
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:carol@odd.test", "to odd",
                           call_id=cid)
        code = (await final_codes(e, {cid: "to odd"}, timeout=10))[cid]
        await asyncio.wait_for(done, 10)
        return got["raw"], code
    finally:
        srv.close()
        await srv.wait_closed()


async def test_outbound_peer_failures(tmp):
    """What the gateway does when the server it connected to misbehaves at
    each step of the set-up; every case answers the SIP sender (404,
    remote-server-not-found) and logs why. Then a pre-1.0 peer (no version,
    no features) that accepts dialback at once gets the message."""
    port = free_port()
    extra = f'partner "odd.test" {{ tls = "optional", dialback = true, route = "127.0.0.1:{port}" }}'

    def hdr(version=True, sid="s1"):
        return header("odd.test", "sip.test", sid)[:-len(" version='1.0'>")] + \
            (" version='1.0'>" if version else ">")

    async def stream_error(s, h):
        s.send(hdr() + f"<stream:error><host-unknown xmlns='{STREAM_ERR_NS}'/></stream:error>")
        await s.next(3)

    async def tls_failure(s, h):
        s.send(hdr() + f"<stream:features><starttls xmlns='{TLS_NS}'/></stream:features>")
        await s.expect_el("starttls", 3)
        s.send(f"<failure xmlns='{TLS_NS}'/>")
        await s.next(3)

    async def no_id(s, h):
        s.send(hdr(sid=None))
        await s.expect_el("error", 3)

    async def garbage(s, h):
        s.send(hdr() + "<a><b></a>")
        await s.expect_el("error", 3)

    async def key_refused(s, h):
        s.send(hdr() + "<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
               "</stream:features>")
        await s.expect_el("result", 3)
        s.send("<db:result from='odd.test' to='sip.test' type='invalid'/>")
        await s.next(3)

    cases = [(stream_error, "stream error from the remote server: host-unknown", None),
             (tls_failure, "the remote server refused STARTTLS", b"<starttls"),
             (no_id, "peer sent no usable stream id", b"invalid-id"),
             (garbage, "cond=remote-server-not-found", b"not-well-formed"),
             (key_refused, "the remote server refused our dialback key", b"<db:result")]
    async with Env(tmp, extra_partners=extra) as e:
        for script, logged, wire in cases:
            raw, code = await scripted_peer_case(e, port, script)
            assert code == 404, (script.__name__, code)
            e.gw.wait_log(f"ev=s2s.out.failed .*remote=odd.test .*{re.escape(logged)}")
            if wire:
                assert wire in raw, (script.__name__, raw[-300:])

        async def pre_1_0(s, h):
            s.send(hdr(version=False))
            el = await s.expect_el("result", 3)
            assert el.text, el                              # our dialback key, at once
            s.send("<db:result from='odd.test' to='sip.test' type='valid'/>")
            msg = await s.expect_el("message", 3)
            assert msg.child("body").text == "to odd", msg
            got_pre.append(msg)
        got_pre = []
        raw, code = await scripted_peer_case(e, port, pre_1_0)
        assert code == 200 and len(got_pre) == 1, (code, got_pre, raw[-300:])


async def test_partner_that_does_not_resolve(tmp):
    """A partner without a route whose SRV lookup fails (the test's network
    namespace reaches no name server): the stream ends at once, logged with
    the resolver's result, and the sender gets 404."""
    extra = 'partner "nowhere.test" { tls = "optional", dialback = true }'
    async with Env(tmp, extra_partners=extra) as e:
        start = time.monotonic()
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:carol@nowhere.test", "x",
                           call_id="nowhere")
        codes = await final_codes(e, {"nowhere": "x"}, timeout=20)
        assert codes == {"nowhere": 404}, codes
        e.gw.wait_log("ev=s2s.out.dns .*remote=nowhere.test result=EDNS")
        e.gw.wait_log("ev=s2s.out.failed .*remote=nowhere.test .*could not be resolved")
        print(f"  resolver failure answered in {time.monotonic() - start:.2f} s")


async def test_sigterm_answers_queued_stanzas(tmp):
    """SIGTERM with outbound streams open: messages queued on a stream still
    setting up are answered 503 with Retry-After (the gateway's own
    shutdown, not a remote user's service-unavailable) before the gateway
    exits; nothing is left in
    flight (the router's count is 0) and the exit status is 0."""
    hole_port = free_port()
    extra = f'partner "hole.test" {{ tls = "optional", dialback = true, route = "127.0.0.1:{hole_port}" }}'
    e = Env(tmp, extra_partners=extra)
    # The drain waits for what is in flight until drain.deadline: the
    # stream to hole.test never sets up, so the deadline (1 s, before the
    # 5 s set-up timeout) is what ends the wait for the queued messages.
    e.gw.write_policy(e.policy_text().replace('domains = { "sip.test" },',
                                              'domains = { "sip.test" }, drain = { deadline = 1 },', 1))
    async with e:
        hole = BlackHole()
        await hole.start(hole_port)
        try:
            warm = await sip_burst(e, ["delivered before"])
            await get(e.peer.received, 20)
            assert list((await final_codes(e, warm)).values()) == [200]
            calls = {}
            for i in range(5):
                cid = f"q{i}"
                e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:carol@hole.test",
                                   f"queued {i}", call_id=cid)
                calls[cid] = f"queued {i}"
            e.gw.wait_log("ev=s2s.out.state .*remote=hole.test .*to=wait-header")
            # And three the peer has read, still inside their error grace:
            # flushed before the orderly shutdown, so they count as delivered.
            graced = await sip_burst(e, [f"in grace {i}" for i in range(3)])
            for _ in range(3):
                await get(e.peer.received, 5)
            e.gw.proc.send_signal(signal.SIGTERM)
            # Both at once: the graced ones are answered during the drain,
            # before the deadline answers the queued ones.
            codes = await final_codes(e, {**calls, **graced}, timeout=10)
            assert {codes[c] for c in calls} == {503}, codes
            assert {codes[c] for c in graced} == {200}, codes
            e.gw.proc.wait(5)
            assert e.gw.proc.returncode == 0, e.gw.proc.returncode
            log = e.gw.log_text()
            assert "routes_in_flight=0" in log, log[-2000:]
            assert "system-shutdown" in hole.got.decode(errors="replace"), hole.got
        finally:
            hole.stop()


async def test_sip_bad_content_type(tmp):
    async with Env(tmp) as e:
        for ct in ("application/json", "text/plain;charset=koi8-r"):
            e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "{}",
                               content_type=ct)
            resp = await get(e.uac.responses)
            assert resp["code"] == 415, resp["first"]
            assert resp["headers"].get("accept") == ["text/plain, text/html"], resp["headers"]
        await expect_nothing(e.peer.received, 0.5)


async def test_sip_content_converted(tmp):
    """RFC 7572 §7: text/plain in other charsets is converted to UTF-8,
    text/html is carried as its text; §5: an im: To with a sip: Request-URI
    is delivered to the Request-URI's user."""
    async with Env(tmp) as e:
        cases = (("text/plain;charset=iso-8859-1", "caf\u00e9".encode("latin-1"), "caf\u00e9", None),
                 ("text/plain;charset=windows-1252", b"\x93q\x94 \x80", "\u201cq\u201d \u20ac", None),
                 ("text/plain;charset=utf-16", "h\u00e9 \U0001d11e".encode("utf-16"),
                  "h\u00e9 \U0001d11e", None),
                 ("text/html", b"<p>Hi &amp; <b>bye</b></p>", "Hi & bye", None),
                 ("text/plain", b"to im", "to im", "im:alice@peer.test"))
        for ct, raw, text, to_header in cases:
            e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", raw,
                               content_type=ct, to_header=to_header)
            st = await get(e.peer.received, 20)
            assert st.attrs.get("to") == "alice@peer.test", st.attrs
            assert st.child("body").text == text, (ct, st.child("body").text)
            resp = await get(e.uac.responses, 20)
            assert resp["code"] == 200, (ct, resp["first"])


async def test_sip_from_untrusted_source_refused(tmp):
    # No sip.trusted: the next hop's address (127.0.0.1) is trusted, 127.0.0.2 is not.
    async with Env(tmp) as e:
        e.stranger.send_message(e.sip_port, "sip:ceo@sip.test", "sip:alice@peer.test",
                                "Please wire 50k today")
        resp = await get(e.stranger.responses)
        assert resp["first"] == "SIP/2.0 403 Forbidden", resp["first"]
        assert "warning" not in resp["headers"] and "allow" not in resp["headers"], resp
        e.gw.wait_log(r"ev=sip\.refused transport=udp peer=127\.0\.0\.2:\d+ status=403")
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "from the edge")
        st = await get(e.peer.received, 20)
        assert st.child("body").text == "from the edge", st
        assert (await get(e.uac.responses, 20))["code"] == 200
        await expect_nothing(e.peer.received, 1.0)


async def test_sip_trusted_list_replaces_next_hop(tmp):
    async with Env(tmp, sip_extra='trusted = { "127.0.0.2/32", "::1" }') as e:
        e.uac.send_message(e.sip_port, "sip:ceo@sip.test", "sip:alice@peer.test", "forged")
        resp = await get(e.uac.responses)
        assert resp["first"] == "SIP/2.0 403 Forbidden", resp["first"]
        e.stranger.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "trusted")
        st = await get(e.peer.received, 20)
        assert st.child("body").text == "trusted", st
        assert (await get(e.stranger.responses, 20))["code"] == 200
        await expect_nothing(e.peer.received, 1.0)


async def test_sip_trusted_list_follows_reload(tmp):
    async with Env(tmp) as e:
        e.gw.write_policy(e.policy_text(sip_extra='trusted = "127.0.0.2"'))
        out = e.gw.reload()
        assert "result=ok" in out and "ev=sip.trusted entries=1 source=sip.trusted" in out, out
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "no longer")
        assert (await get(e.uac.responses))["first"] == "SIP/2.0 403 Forbidden"
        e.stranger.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "now")
        st = await get(e.peer.received, 20)
        assert st.child("body").text == "now", st
        assert (await get(e.stranger.responses, 20))["code"] == 200
        await expect_nothing(e.peer.received, 1.0)


# --- policy ------------------------------------------------------------------

async def test_policy_hook_rejects_both_ways(tmp):
    hook = """
function on_message(m)
  if m.body:find("forbidden word", 1, true) then
    return reject("policy-violation", "this gateway does not carry that")
  end
  m.body = m.body:gsub("colour", "color")
  return m
end"""
    async with Env(tmp, hook=hook) as e:
        s = await e.peer.authenticated_stream()
        s.send(message("alice@peer.test", "bob@sip.test", "a forbidden word", mid="pv"))
        err = await get(e.peer.received, 20)
        assert err.attrs.get("type") == "error" and err.attrs.get("id") == "pv", err
        assert err.child("error").child("policy-violation") is not None
        s.send(message("alice@peer.test", "bob@sip.test", "colour"))
        req = await get(e.sip.requests)
        assert req["body"] == b"color", req["body"]
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "forbidden word")
        resp = await get(e.uac.responses)
        assert 400 <= resp["code"] < 500, resp["first"]


async def test_body_over_max_body_refused_before_the_policy(tmp):
    # The default gateway.max_body is 256 KiB; the stanza limit derived from
    # it leaves room for the stanza around a body one byte too long. The hook
    # would pass anything: the refusal comes from the router, not from it.
    hook = "function on_message(m) return m end"
    async with Env(tmp, hook=hook) as e:
        s = await e.peer.authenticated_stream()
        s.send(message("alice@peer.test", "bob@sip.test", "x" * (256 * 1024 + 1), mid="big"))
        err = await get(e.peer.received, 20)
        assert err.attrs.get("type") == "error" and err.attrs.get("id") == "big", err
        assert err.child("error").child("policy-violation") is not None, err.child("error")
        assert err.child("error").child("text").text == "message body exceeds 262144 bytes", err
        await expect_nothing(e.sip.requests, 1)
        s.send(message("alice@peer.test", "bob@sip.test", "small"))
        req = await get(e.sip.requests)
        assert req["body"] == b"small", req["body"]


async def test_sip_body_over_max_body_gets_413(tmp):
    # gateway.max_body (default 256 KiB) is a size: a SIP MESSAGE with a
    # longer body gets 413 at ingress, not the router's policy-violation (403).
    # The hook would pass anything and logs each call, so a call would show.
    hook = 'function on_message(m) log("info", "hook-saw", #m.body) return m end'
    async with Env(tmp, hook=hook) as e:
        r, w = await asyncio.open_connection("127.0.0.1", e.sip_port)
        stream_message(w, "TCP", "sip:bob@sip.test", "sip:alice@peer.test",
                       "x" * (256 * 1024 + 1), call_id="big-1")
        resp = await asyncio.wait_for(read_sip(r), 20)
        assert resp["first"] == "SIP/2.0 413 Request Entity Too Large", resp["first"]
        assert resp["headers"]["call-id"] == ["big-1"], resp["headers"]
        assert resp["headers"]["warning"] == [
            '399 sip.test "message body exceeds gateway.max_body"'], resp["headers"]
        await expect_nothing(e.peer.received, 1.5)
        assert "hook-saw" not in e.gw.log_text()
        # The connection goes on, and a body of exactly max_body is carried.
        stream_message(w, "TCP", "sip:bob@sip.test", "sip:alice@peer.test",
                       "y" * (256 * 1024), call_id="max-1")
        st = await get(e.peer.received, 20)
        assert st.child("body").text == "y" * (256 * 1024), len(st.child("body").text)
        resp = await asyncio.wait_for(read_sip(r), 20)
        assert resp["first"] == "SIP/2.0 200 OK", resp["first"]
        assert resp["headers"]["call-id"] == ["max-1"], resp["headers"]
        w.close()


async def test_rewritten_addresses_checked_again(tmp):
    """Audit L5: a hook that rewrites `to` to a non-partner or `from` to a
    domain we do not serve fails the call (a policy bug, 500, logged with its
    file:line); no stream is opened for it and nothing reaches the peer. The C
    side checks again before a stream is opened (xs_xmpp_send), which the Lua
    check makes unreachable from here."""
    hook = """
function on_message(m)
  if m.body == "to stranger" then m.to = "carol@stranger.test" end
  if m.body == "as peer" then m.from = "mallory@peer.test" end
  return m
end"""
    async with Env(tmp, hook=hook) as e:
        for body in ("to stranger", "as peer"):
            calls = await sip_burst(e, [body])
            assert list((await final_codes(e, calls)).values()) == [500], body
        e.gw.wait_log(r"ev=policy\.error .*hooks made the recipient carol@stranger\.test")
        e.gw.wait_log(r"ev=policy\.error .*hooks made the sender mallory@peer\.test")
        await expect_nothing(e.peer.received, 0.5)
        assert not e.peer.inbound, "a stream was opened for a refused message"
        log = e.gw.log_text()
        assert "ev=s2s.out.state" not in log, log[-2000:]


async def test_late_bounce_to_removed_partner_opens_no_stream(tmp):
    """Audit L1/L5 in C: a message from peer.test is on its way to SIP when
    a reload removes the partner; SIP then refuses it. The bounce may not
    open a new stream to the removed partner (it did, with no partner entry,
    so neither TLS nor dialback rules applied): xs_xmpp_send refuses it and
    logs the drop."""
    async with Env(tmp, sip_code=404) as e:
        s = await e.peer.authenticated_stream()
        e.sip.hold = True
        s.send(message("alice@peer.test/phone", "bob@sip.test", "late", mid="late-1"))
        await get(e.sip.requests)
        e.gw.write_policy(e.policy_text().replace('partner "peer.test"', '-- partner "peer.test"'))
        assert "result=ok" in e.gw.reload()
        streams_before = len(e.peer.inbound)
        e.sip.release()
        e.gw.wait_log("ev=xmpp.send.refused local=sip.test remote=peer.test reason=not-a-partner")
        e.gw.wait_log("ev=xmpp.send.dropped .*id=late-1 cond=forbidden")
        await asyncio.sleep(0.3)
        assert len(e.peer.inbound) == streams_before, "a stream was opened to a removed partner"
        assert "remote=peer.test from=- to=resolving" not in e.gw.log_text().split("policy.reload")[-1]


async def test_reload_removes_partner(tmp):
    async with Env(tmp) as e:
        s = await e.peer.authenticated_stream()
        s.send(message("alice@peer.test", "bob@sip.test", "before"))
        await get(e.sip.requests)
        e.gw.write_policy(e.policy_text().replace('partner "peer.test"', '-- partner "peer.test"'))
        out = e.gw.reload()
        assert "result=ok" in out, out
        el = await s.expect_el("error")
        assert el.child("policy-violation", NS_STREAM_ERR) is not None, el
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "after")
        resp = await get(e.uac.responses)
        assert 400 <= resp["code"] < 700, resp["first"]
        s2 = await XStream.connect(e.gw_port)
        s2.send(header("peer.test", "sip.test"))
        await s2.next()
        el = await s2.expect_el("error")
        assert el.child("policy-violation", NS_STREAM_ERR) is not None, el
        # Restored: traffic flows again.
        e.gw.write_policy(e.policy_text())
        assert "result=ok" in e.gw.reload()
        s3 = await e.peer.authenticated_stream()
        s3.send(message("alice@peer.test", "bob@sip.test", "again"))
        req = await get(e.sip.requests)
        assert req["body"] == b"again"


async def test_reload_changed_route_restarts_stream(tmp):
    """O5/L1: a reload that moves a partner's route restarts the outbound
    stream; the next message goes to the new address, and the old stream is
    ended with </stream:stream>."""
    async with Env(tmp) as e:
        calls = await sip_burst(e, ["before"])
        assert (await get(e.peer.received, 20)).child("body").text == "before"
        assert list((await final_codes(e, calls)).values()) == [200]
        old = [st for st in e.peer.inbound]
        moved = Peer(tmp, e.gw_port)
        new_port = free_port()
        await moved.start(new_port)
        try:
            e.gw.write_policy(e.policy_text().replace(f"127.0.0.1:{e.peer_port}",
                                                      f"127.0.0.1:{new_port}"))
            assert "result=ok" in e.gw.reload()
            e.gw.wait_log("ev=s2s.out.restart .*reason=route-changed")
            calls = await sip_burst(e, ["after"])
            assert (await get(moved.received, 20)).child("body").text == "after"
            assert list((await final_codes(e, calls)).values()) == [200]
            await expect_nothing(e.peer.received, 0.3)
            # The old stream was ended in order.
            assert any(b"</stream:stream>" in bytes(st.raw) for st in old), \
                [bytes(st.raw)[-200:] for st in old]
        finally:
            await moved.stop()


async def test_reload_tls_required_restarts_plaintext_stream(tmp):
    """O5/L1: a partner that authenticated our plaintext stream while TLS was
    optional is reloaded to tls = "required": the plaintext stream ends, and
    a message after the reload is not carried in the clear."""
    async with Env(tmp, peer_tls="optional", peer_offers_tls=False) as e:
        calls = await sip_burst(e, ["in the clear, allowed"])
        assert (await get(e.peer.received, 20)).child("body").text == "in the clear, allowed"
        assert list((await final_codes(e, calls)).values()) == [200]
        e.gw.write_policy(e.policy_text(peer_tls="required"))
        assert "result=ok" in e.gw.reload()
        e.gw.wait_log("ev=s2s.out.restart .*reason=tls-changed")
        calls = await sip_burst(e, ["in the clear, refused"])
        code = list((await final_codes(e, calls)).values())[0]
        assert code == 404, code
        e.gw.wait_log("peer does not offer TLS, which this partner requires")
        await asyncio.sleep(0.3)
        got = drain(e.peer.received)
        assert [el.name for el in got] == ["error"], got   # our policy-violation, no message
        assert got[0].child("policy-violation") is not None, got


async def test_reload_to_tls_required_closes_plaintext_stream(tmp):
    """Audit L1: peer.test authenticated over plaintext while tls was
    "optional"; after a reload to "required" the stream is closed with
    policy-violation and nothing sent on it is delivered."""
    async with Env(tmp, peer_tls="optional") as e:
        s = await e.peer.authenticated_stream(tls=False)
        assert s.db_result.attrs.get("type") == "valid", s.db_result
        s.send(message("alice@peer.test", "bob@sip.test", "plaintext, allowed"))
        req = await get(e.sip.requests)
        assert req["body"] == b"plaintext, allowed"
        e.gw.write_policy(e.policy_text(peer_tls="required"))
        assert "result=ok" in e.gw.reload()
        el = await s.expect_el("error")
        assert el.child("policy-violation", NS_STREAM_ERR) is not None, el
        e.gw.wait_log(r'ev=s2s\.in\.refused .*remote=peer\.test local=sip\.test reason=reload '
                      r'detail="TLS is required for peer\.test" method=dialback')
        try:
            s.send(message("alice@peer.test", "bob@sip.test", "plaintext, after"))
            await s.w.drain()
        except ConnectionError:
            pass
        await expect_nothing(e.sip.requests, 0.5)
        # Over TLS the partner is welcome under the new rules.
        s2 = await e.peer.authenticated_stream()
        assert s2.db_result.attrs.get("type") == "valid", s2.db_result
        s2.send(message("alice@peer.test", "bob@sip.test", "over TLS"))
        req = await get(e.sip.requests)
        assert req["body"] == b"over TLS"


async def test_bad_policy_reload_keeps_running(tmp):
    async with Env(tmp) as e:
        good = e.policy_text()
        e.gw.write_policy(good + "\nthis is not lua\n")
        out = e.gw.reload()
        assert "result=rejected" in out and "policy.lua:" in out, out
        e.gw.write_policy(good + '\npartner "x.test" { tls = "sometimes" }\n')
        out = e.gw.reload()
        assert "result=rejected" in out and "policy.lua:" in out, out
        s = await e.peer.authenticated_stream()
        s.send(message("alice@peer.test", "bob@sip.test", "still routed"))
        req = await get(e.sip.requests)
        assert req["body"] == b"still routed"



# --- XEP-0198 Stream Management on s2s, and the error grace without it -----
# (helper "sm", issue 6 story 2)

NS_SM = "urn:xmpp:sm:3"


async def sm_send(e, body, to="sip:alice@peer.test"):
    cid = uuid.uuid4().hex
    e.uac.send_message(e.sip_port, "sip:bob@sip.test", to, body, call_id=cid)
    return cid


async def test_sm_200_only_after_ack(tmp):
    """A peer that offers XEP-0198: the gateway enables it after dialback,
    asks for acks with batched <r/>, and answers 200 only once the peer
    acknowledged the stanza: here the <a/> is held 1 s, far past the grace."""
    async with Env(tmp) as e:
        e.peer.sm_offer, e.peer.sm_mode, e.peer.sm_ack_delay = True, "ack", 1.0
        cid = await sm_send(e, "first")
        await get(e.peer.received, 20)
        got_at = time.monotonic()
        code = (await final_codes(e, {cid: "first"}, timeout=10))[cid]
        waited = time.monotonic() - got_at
        assert code == 200, code
        assert 0.9 < waited < 1.5, waited
        e.gw.wait_log(r"ev=s2s\.out\.sm .*remote=peer\.test result=requested offered=1")
        e.gw.wait_log(r"ev=s2s\.out\.sm .*remote=peer\.test result=enabled")
        assert e.peer.sm_seen[0] == "enable", e.peer.sm_seen
        # At speed: 50 messages, every one answered 200 well before T1, with
        # fewer requests than stanzas.
        e.peer.sm_ack_delay = 0
        before = e.peer.sm_seen.count("r")
        start = time.monotonic()
        calls = await sip_burst(e, [f"quick {i}" for i in range(50)])
        codes = await final_codes(e, calls, timeout=10)
        assert set(codes.values()) == {200}, codes
        assert time.monotonic() - start < 0.5 + 0.05 * 3, time.monotonic() - start
        got = [(await get(e.peer.received, 5)).child("body").text for _ in range(50)]
        assert got == [f"quick {i}" for i in range(50)], got
        requests = e.peer.sm_seen.count("r") - before
        assert 1 <= requests < 50, requests
        await expect_nothing(e.peer.received, 0.3)


async def test_sm_error_after_ack_becomes_status(tmp):
    """The peer bounces a message to a user it does not have and answers the
    <r/>: the error travels on its own stream and may come a moment after
    the <a/>; it still becomes the SIP status, not a 200."""
    async with Env(tmp) as e:
        e.peer.sm_offer, e.peer.sm_mode = True, "ack"
        e.peer.unknown_users.add("ghost@peer.test")
        e.peer.bounce_error = f"<item-not-found xmlns='{NS_STANZAS}'/>"
        warm = await sm_send(e, "warm")
        await get(e.peer.received, 20)
        assert (await final_codes(e, {warm: "warm"}))[warm] == 200
        e.peer.bounce_stream = await e.peer.authenticated_stream()
        cid = await sm_send(e, "boo", to="sip:ghost@peer.test")
        assert (await final_codes(e, {cid: "boo"}, timeout=10))[cid] == 604  # RFC 7247 item-not-found
        e.gw.wait_log("result=reported-to-sender")
        assert "r" in e.peer.sm_seen, e.peer.sm_seen


async def test_sm_stream_dies_before_ack_fails_the_unacked(tmp):
    """With stream management on, stanzas the peer never acknowledged fail
    (408) when the stream dies, even though the kernel took their bytes;
    the next message goes on a new stream and is acknowledged."""
    async with Env(tmp) as e:
        e.peer.sm_offer, e.peer.sm_mode, e.peer.sm_ack_delay = True, "ack", None
        e.peer.end_after, e.peer.end_how = 2, "eof"
        calls = {await sm_send(e, "lost 1"): "lost 1"}
        await get(e.peer.received, 20)
        calls[await sm_send(e, "lost 2")] = "lost 2"
        codes = await final_codes(e, calls, timeout=10)
        assert set(codes.values()) == {408}, codes
        e.gw.wait_log(r"ev=s2s\.out\.unconfirmed .*unacked=[12] ")
        e.peer.sm_ack_delay, e.peer.end_after = 0, None
        again = await sm_send(e, "again")
        assert (await final_codes(e, {again: "again"}, timeout=15))[again] == 200
        bodies = [el.child("body").text for el in drain(e.peer.received)]
        assert bodies == ["lost 2", "again"], bodies


async def test_sm_peer_without_it_uses_the_grace(tmp):
    """A peer that offers no stream management and ignores the <enable/>
    the default "always" sends (ejabberd on s2s) is answered after the
    default grace, before T1 (0.5 s): a UDP sender does not retransmit.
    With "offered" it gets no <enable/> at all; a peer that refuses
    <enable/> falls back to the same grace."""
    async with Env(tmp) as e:
        warm = await sm_send(e, "warm")
        await get(e.peer.received, 20)
        assert (await final_codes(e, {warm: "warm"}))[warm] == 200
        for i in range(3):
            cid = await sm_send(e, f"plain {i}")
            start = time.monotonic()
            await get(e.peer.received, 5)
            assert (await final_codes(e, {cid: "x"}, timeout=5))[cid] == 200
            took = time.monotonic() - start
            assert 0.2 < took < 0.45, took
        assert e.peer.sm_seen == ["enable"], e.peer.sm_seen
    async with Env(tmp, xmpp_extra='stream_management = "offered",') as e:
        cid = await sm_send(e, "offered")
        await get(e.peer.received, 20)
        assert (await final_codes(e, {cid: "x"}, timeout=5))[cid] == 200
        assert e.peer.sm_seen == [], e.peer.sm_seen
    async with Env(tmp) as e:
        e.peer.sm_offer, e.peer.sm_mode = True, "fail"
        warm = await sm_send(e, "warm")
        await get(e.peer.received, 20)
        assert (await final_codes(e, {warm: "warm"}))[warm] == 200
        e.gw.wait_log(r"ev=s2s\.out\.sm .*result=off reason=\"the remote server refused")
        cid = await sm_send(e, "after failed")
        await get(e.peer.received, 5)
        assert (await final_codes(e, {cid: "x"}, timeout=5))[cid] == 200
        assert e.peer.sm_seen == ["enable"], e.peer.sm_seen


async def test_sm_hostile_ack_too_high(tmp):
    """An <a/> acknowledging more than was sent ends the stream with
    undefined-condition and <handled-count-too-high/> (XEP-0198), and the
    stanza it claimed gets 408, not 200."""
    async with Env(tmp) as e:
        e.peer.sm_offer, e.peer.sm_mode = True, "ack"
        e.peer.sm_h = lambda h: h + 5
        cid = await sm_send(e, "hi")
        await get(e.peer.received, 20)
        assert (await final_codes(e, {cid: "hi"}, timeout=10))[cid] == 408
        e.gw.wait_log(r"ev=s2s\.out\.sm .*result=bad-ack h=6 acked=0 sent=1")
        want = b"<handled-count-too-high xmlns='urn:xmpp:sm:3' h='6' send-count='1'/>"
        for _ in range(50):  # the peer's reader takes the stream error a moment later
            raw = b"".join(bytes(s.raw) for s in e.peer.inbound)
            if want in raw:
                break
            await asyncio.sleep(0.05)
        assert want in raw and b"<undefined-condition" in raw, raw[-600:]


async def test_sm_inbound(tmp):
    """As the receiving server: <sm/> in the features, <enable/> refused
    before dialback and when repeated, <r/> answered with the count of
    stanzas handled, a flood of <r/> answered by a few <a/>, and a peer that
    keeps asking what was refused is cut off."""
    async with Env(tmp) as e:
        s = await e.peer.open_stream("sip.test")
        assert s.features.child("sm", NS_SM) is not None, s.features
        s.send(f"<enable xmlns='{NS_SM}'/>")
        f = await s.expect_el("failed")
        assert f.ns == NS_SM and f.child("unexpected-request", NS_STANZAS) is not None, f
        k = dialback_key(e.peer.secret, "sip.test", e.peer.domain, s.sid)
        s.send(f"<db:result from='{e.peer.domain}' to='sip.test'>{k}</db:result>")
        assert (await s.expect_el("result", 20)).attrs.get("type") == "valid"
        s.send(f"<enable xmlns='{NS_SM}'/>")
        el = await s.expect_el("*")
        assert el.ns == NS_SM and el.name == "enabled", el
        for i in range(3):
            s.send(message("alice@peer.test", "bob@sip.test", f"in {i}", mid=f"i{i}"))
        s.send(f"<r xmlns='{NS_SM}'/>")
        a = await s.expect_el("a")
        assert a.ns == NS_SM and a.attrs.get("h") == "3", a
        for i in range(3):
            assert (await get(e.sip.requests))["body"] == f"in {i}".encode()
        mark = len(s.raw)
        s.send(f"<r xmlns='{NS_SM}'/>" * 20000)
        await s.w.drain()
        answers = []
        while True:
            try:
                kind, el = await s.next(1.0)
            except TimeoutError:
                break
            assert kind == "el" and el.name == "a", (kind, el)
            answers.append(el.attrs.get("h"))
        assert answers and set(answers) == {"3"}, answers[:5]
        assert len(answers) < 200, len(answers)
        assert len(s.raw) - mark < 200 * 40, len(s.raw) - mark
        # The refusal before dialback counts too: four in all are answered.
        for _ in range(3):
            s.send(f"<enable xmlns='{NS_SM}'/>")
            f = await s.expect_el("failed")
            assert f.child("unexpected-request", NS_STANZAS) is not None, f
        s.send(f"<enable xmlns='{NS_SM}'/>")
        err = await s.expect_el("error")
        assert err.child("policy-violation", NS_STREAM_ERR) is not None, err
        assert (await s.next())[0] in ("close", "eof")


async def test_sm_always_asks_a_peer_that_did_not_offer(tmp):
    """xmpp.stream_management = "always": a peer that offers no <sm/> (as
    Prosody on a dialback stream) still gets <enable/> after dialback, and
    when it accepts, the 200 waits for its <a/>. One that ignores <enable/>
    costs nothing: its stanzas are answered after the grace, as without."""
    async with Env(tmp, xmpp_extra='stream_management = "always",') as e:
        e.peer.sm_mode, e.peer.sm_ack_delay = "ack", 0.8
        cid = await sm_send(e, "asked")
        await get(e.peer.received, 20)
        got_at = time.monotonic()
        assert (await final_codes(e, {cid: "asked"}, timeout=10))[cid] == 200
        assert 0.7 < time.monotonic() - got_at < 1.3, time.monotonic() - got_at
        e.gw.wait_log(r"ev=s2s\.out\.sm .*result=requested offered=0")
        e.gw.wait_log(r"ev=s2s\.out\.sm .*result=enabled")
    async with Env(tmp, xmpp_extra='stream_management = "always",') as e:
        warm = await sm_send(e, "warm")
        await get(e.peer.received, 20)
        assert (await final_codes(e, {warm: "warm"}))[warm] == 200
        cid = await sm_send(e, "ignored")
        start = time.monotonic()
        await get(e.peer.received, 5)
        assert (await final_codes(e, {cid: "x"}, timeout=5))[cid] == 200
        assert 0.2 < time.monotonic() - start < 0.45, time.monotonic() - start
        assert e.peer.sm_seen == ["enable"], e.peer.sm_seen


async def test_sm_always_remembers_a_peer_that_ends_the_stream(tmp):
    """A server without XEP-0198 may end the stream on an <enable/> it did
    not offer (Prosody without mod_smacks: unsupported-stanza-type). What
    was sent after it fails (408), the domain is remembered, and the next
    stream asks no more: its message gets 200 after the grace."""
    async with Env(tmp) as e:
        e.peer.sm_mode = "kill"
        cid = await sm_send(e, "lost")
        assert (await final_codes(e, {cid: "x"}, timeout=10))[cid] == 408
        e.gw.wait_log(r"ev=s2s\.out\.sm .*remote=peer\.test result=refused reason=E[A-Z]+ ")
        cid = await sm_send(e, "kept")
        assert (await get(e.peer.received, 20)).child("body").text == "kept"
        assert (await final_codes(e, {cid: "x"}, timeout=10))[cid] == 200
        e.gw.wait_log(r"ev=s2s\.out\.sm .*remote=peer\.test result=skipped reason=refused-before")
        assert e.peer.sm_seen == ["enable"], e.peer.sm_seen
        await expect_nothing(e.peer.received, 0.3)


async def test_sm_unanswered_enable_keeps_the_grace(tmp):
    """A peer that never answers <enable/> (ejabberd): 10 s on, the gateway
    stops waiting for an answer; the stanzas then in their grace keep the
    deadline they had, so no answer comes later than the grace allows, before
    and after (a message every 50 ms for 12 s)."""
    async with Env(tmp) as e:
        warm = await sm_send(e, "warm")
        await get(e.peer.received, 20)
        assert (await final_codes(e, {warm: "warm"}))[warm] == 200
        sent_at, latency = {}, {}

        async def sender():
            for n in range(240):
                cid = await sm_send(e, f"steady {n}")
                sent_at[cid] = time.monotonic()
                await asyncio.sleep(0.05)
        task = asyncio.ensure_future(sender())
        end = time.monotonic() + 20
        while len(latency) < 240 and time.monotonic() < end:
            r = await get(e.uac.responses, 5)
            cid = r["headers"]["call-id"][0]
            if r["code"] >= 200 and cid in sent_at:
                assert r["code"] == 200, r["first"]
                latency[cid] = time.monotonic() - sent_at[cid]
        await task
        assert len(latency) == 240, len(latency)
        e.gw.wait_log(r"ev=s2s\.out\.sm .*result=off reason=\"no answer to enable\"")
        slowest = max(latency.values())
        assert slowest < 0.45, slowest
        assert e.peer.sm_seen == ["enable"], e.peer.sm_seen



async def test_grace_ends_on_time_not_at_the_next_sweep(tmp):
    """The final response comes when the grace ends, not at the next tick of
    the 100 ms sweep: with a 20 ms grace, the 200s come about 20 ms after
    the stanza left. On the sweep (the old way) about half of them waited
    past 85 ms; here at most two of twelve may, on a loaded machine."""
    async with Env(tmp, xmpp_extra='stream_management = "off", error_grace = 0.02,') as e:
        warm = await sm_send(e, "warm")
        await get(e.peer.received, 20)
        assert (await final_codes(e, {warm: "warm"}))[warm] == 200
        took = []
        for i in range(12):
            cid = await sm_send(e, f"quick {i}")
            start = time.monotonic()
            assert (await final_codes(e, {cid: "x"}, timeout=5))[cid] == 200
            took.append(time.monotonic() - start)
            await get(e.peer.received, 5)
        late = [t for t in took if t > 0.085]
        assert len(late) <= 2, took
        assert min(took) >= 0.02, took


async def test_sm_slow_acks_do_not_refuse_a_burst(tmp):
    """Stanzas written and waiting for the peer's acknowledgement are not
    held to the set-up queue's bound (xmpp.queue_max, here 20): a peer that
    takes a second to acknowledge a burst of 60 gets every one of them, and
    every sender its 200, with no congestion refusal."""
    async with Env(tmp, xmpp_extra="queue_max = 20,") as e:
        e.peer.sm_offer, e.peer.sm_mode = True, "ack"
        warm = await sm_send(e, "warm")
        await get(e.peer.received, 20)
        assert (await final_codes(e, {warm: "warm"}))[warm] == 200
        e.peer.sm_ack_delay = 1.0
        calls = await sip_burst(e, [f"b{i}" for i in range(60)])
        codes = await final_codes(e, calls, timeout=15)
        assert set(codes.values()) == {200}, sorted(codes.values())
        assert e.gw.count_log("ev=s2s.out.congested") == 0
        got = [(await get(e.peer.received, 5)).child("body").text for _ in range(60)]
        assert sorted(got) == sorted(f"b{i}" for i in range(60))

# --- stream limits and memory per idle stream (issue 6, story 4) -------------

async def read_refusal(r):
    """What a refused connection got before the gateway closed it."""
    data = b""
    while True:
        chunk = await asyncio.wait_for(r.read(65536), 5)
        if not chunk:
            return data.decode()
        data += chunk


async def test_max_streams_inbound_total(tmp):
    """xmpp.max_streams.inbound = 4: four connections are held; the fifth
    is told resource-constraint in a stream error and closed, with a log
    line; once one of the four goes, a new one is held again."""
    async with Env(tmp, xmpp_extra="max_streams = { inbound = 4 },") as e:
        e.gw.wait_log(r"ev=xmpp\.budget result=ok .* in_max=4 out_max=10000 unauth_max=4 "
                      r"unauth_per_source=4 per_domain=4")
        conns = []
        for i in range(4):
            r, w = await asyncio.open_connection("127.0.0.1", e.gw_port,
                                                 local_addr=(f"127.0.3.{i + 1}", 0))
            conns.append((i, r, w))
        e.gw.wait_count("reason=accepted", 4)
        r5, w5 = await asyncio.open_connection("127.0.0.1", e.gw_port,
                                               local_addr=("127.0.3.9", 0))
        got = await read_refusal(r5)
        p = StreamParser()
        items = p.feed(got.encode())
        assert [k for k, _ in items] == ["header", "el", "close"], got
        err = items[1][1]
        assert err.name == "error" and err.child("resource-constraint", NS_STREAM_ERR) is not None, got
        e.gw.wait_log(r"ev=xmpp\.listen result=refused reason=too-many-streams "
                      r"peer=127\.0\.3\.9 in_max=4")
        held = await still_open(conns)
        assert len(held) == 4, len(held)
        conns[0][2].close()
        await asyncio.sleep(0.2)  # the close happens in the event loop, which wait_log blocks
        e.gw.wait_log(r"stream=in1 .*from=wait-header to=closed .*reason=\"connection closed\"", timeout=5)
        r6, w6 = await asyncio.open_connection("127.0.0.1", e.gw_port,
                                               local_addr=("127.0.3.10", 0))
        e.gw.wait_count("reason=accepted", 5)
        assert await still_open([(6, r6, w6)]), "the stream after a close was not held"
        assert e.gw.count_log("reason=too-many-streams") == 1
        for _, _, w in conns[1:] + [(5, r5, w5), (6, r6, w6)]:
            w.close()


async def test_max_streams_unauthenticated(tmp):
    """unauthenticated = 3, unauthenticated_per_source = 2: two streams from
    one source are held, a third from it evicts the oldest of them; with
    three held in all, a newcomer from elsewhere evicts the oldest of all."""
    async with Env(tmp, xmpp_extra="max_streams = { unauthenticated = 3, "
                                   "unauthenticated_per_source = 2 },") as e:
        a = await open_idle(e.gw_port, ["127.0.4.1"], 2, send_header=False)
        e.gw.wait_count("reason=accepted", 2)
        assert len(await still_open(a)) == 2
        a += await open_idle(e.gw_port, ["127.0.4.1"], 1, send_header=False)
        e.gw.wait_count("reason=accepted", 3)
        e.gw.wait_log(r"ev=s2s\.in\.evicted stream=in1 .*reason=per-source-cap")
        assert [c for c in await still_open(a)] == a[1:]
        b = await open_idle(e.gw_port, ["127.0.4.2"], 1, send_header=False)
        e.gw.wait_count("reason=accepted", 4)
        assert e.gw.count_log(r"ev=s2s\.in\.evicted") == 1
        c = await open_idle(e.gw_port, ["127.0.4.3"], 1, send_header=False)
        e.gw.wait_count("reason=accepted", 5)
        e.gw.wait_log(r"ev=s2s\.in\.evicted stream=in2 .*reason=unauthenticated-cap")
        assert await still_open(a + b + c) == a[2:] + b + c
        for _, _, w in a + b + c:
            w.close()


async def test_max_streams_per_domain(tmp):
    """per_domain = 2: two streams authenticate peer.test; the third's
    db:result is answered with a resource-constraint error and a log line,
    and it carries nothing. The two still do."""
    async with Env(tmp, xmpp_extra="max_streams = { per_domain = 2 },") as e:
        s1 = await e.peer.authenticated_stream()
        s2 = await e.peer.authenticated_stream()
        assert s1.db_result.attrs.get("type") == "valid", s1.db_result
        assert s2.db_result.attrs.get("type") == "valid", s2.db_result
        s3 = await e.peer.authenticated_stream()
        assert s3.db_result.attrs.get("type") == "error", s3.db_result
        assert s3.db_result.child("error").child("resource-constraint") is not None, s3.db_result
        e.gw.wait_log(r"remote=peer\.test local=sip\.test result=refused reason=too-many-for-domain")
        assert e.peer.verify_requests == 2, e.peer.verify_requests
        s3.send(message("alice@peer.test", "bob@sip.test", "third"))
        el = await s3.expect_el("error")
        assert el.child("not-authorized", NS_STREAM_ERR) is not None, el
        s2.send(message("alice@peer.test", "bob@sip.test", "second"))
        req = await get(e.sip.requests)
        assert req["body"] == b"second", req["body"]
        await expect_nothing(e.sip.requests, 0.3)


async def test_max_streams_outbound(tmp):
    """outbound = 1: the stream to peer.test is the one; a message for
    another partner is refused at once (resource-constraint, SIP 500) with a
    log line, while peer.test is still served."""
    other_port = free_port()
    extra = f'partner "other.test" {{ tls = "optional", dialback = true, route = "127.0.0.1:{other_port}" }}'
    async with Env(tmp, extra_partners=extra, xmpp_extra="max_streams = { outbound = 1 },") as e:
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "one")
        st = await get(e.peer.received, 20)
        assert st.child("body").text == "one", st
        assert (await get(e.uac.responses, 20))["code"] == 200
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:carol@other.test", "two")
        resp = await get(e.uac.responses, 20)
        assert resp["code"] == 500, resp["first"]
        e.gw.wait_log(r"ev=xmpp\.send\.refused local=sip\.test remote=other\.test "
                      r"reason=too-many-streams out_max=1")
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "three")
        st = await get(e.peer.received, 20)
        assert st.child("body").text == "three", st


async def test_max_streams_check_refuses_bad_values(tmp):
    """xsgw --check names the bad xmpp.max_streams value and exits non-zero;
    a good one is listed."""
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    binary = os.environ.get("XSGW", os.path.join(repo, "build", "xsgw"))
    base = policy(5269, 5060, 5070, 5271)

    def check(extra):
        path = os.path.join(tmp, "check.lua")
        with open(path, "w") as f:
            f.write(base.replace("connect_timeout = 5,", "connect_timeout = 5, " + extra))
        return subprocess.run([binary, "--check", path, "--lua-dir", os.path.join(repo, "lua")],
                              capture_output=True, text=True)

    r = check("max_streams = { inbound = 20000, per_domain = 64 },")
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("xmpp streams: inbound 20000, outbound 10000, unauthenticated 1000 (8 per source), "
            "64 per domain") in r.stdout, r.stdout
    for extra, msg in [
            ("max_streams = { inbound = 0 },",
             "xmpp.max_streams.inbound must be a whole number from 1 to 1000000"),
            ("max_streams = { outbound = 1.5 },",
             "xmpp.max_streams.outbound must be a whole number from 1 to 1000000"),
            ("max_streams = { inbound = 10, unauthenticated = 20 },",
             "xmpp.max_streams.unauthenticated (20) is larger than xmpp.max_streams.inbound (10)"),
            ("max_streams = { per_source = 3 },", "unknown key 'per_source' in xmpp.max_streams")]:
        r = check(extra)
        out = r.stdout + r.stderr
        assert r.returncode != 0 and msg in out, (extra, r.returncode, out)


async def test_quiet_stream_carries_after_parser_release(tmp):
    """A stream quiet for 2 s gives its parser up; the next stanza, over TLS
    and in plain text, is read as if nothing happened, and so is one split
    across two writes, and the stream's header namespaces still hold."""
    async with Env(tmp, peer_tls="optional") as e:
        for tls in (True, False):
            s = await e.peer.authenticated_stream(tls=tls)
            assert s.db_result.attrs.get("type") == "valid", s.db_result
            serial = re.findall(r"stream=in(\d+) remote=peer\.test local=sip\.test result=valid",
                                e.gw.log_text())[-1]
            for n in range(2):
                await asyncio.sleep(2.6)
                e.gw.wait_count(rf"ev=s2s\.in\.quiet stream=in{serial} result=parser-released",
                                n + 1, timeout=3)
                text = f"after quiet {n} tls={tls}"
                st = message("alice@peer.test", "bob@sip.test", text, mid=f"q{n}")
                s.send(st[:20])
                await s.w.drain()
                await asyncio.sleep(0.1)
                s.send(st[20:])
                req = await get(e.sip.requests)
                assert req["body"] == text.encode(), req["body"]
            await expect_nothing(e.sip.requests, 0.3)
            await s.close()



async def test_quiet_outbound_stream_releases_its_parser(tmp):
    """The gateway's own stream to a peer gives its parser up too when
    quiet for 2 s; the peer's acknowledgement of the next message, and an
    error bounced for the one after, are read on the rebuilt parser."""
    async with Env(tmp) as e:
        e.peer.sm_offer, e.peer.sm_mode = True, "ack"
        e.peer.unknown_users.add("ghost@peer.test")
        e.peer.bounce_error = f"<item-not-found xmlns='{NS_STANZAS}'/>"
        warm = await sm_send(e, "warm")
        await get(e.peer.received, 20)
        assert (await final_codes(e, {warm: "warm"}))[warm] == 200
        for n in range(2):
            await asyncio.sleep(2.6)
            e.gw.wait_count(r"ev=s2s\.out\.quiet stream=out\d+ result=parser-released", n + 1,
                            timeout=3)
            cid = await sm_send(e, f"after quiet {n}")
            assert (await final_codes(e, {cid: "x"}, timeout=10))[cid] == 200
            assert (await get(e.peer.received, 5)).child("body").text == f"after quiet {n}"
        e.peer.bounce_stream = await e.peer.authenticated_stream()
        cid = await sm_send(e, "boo", to="sip:ghost@peer.test")
        assert (await final_codes(e, {cid: "boo"}, timeout=10))[cid] == 604


async def test_idle_stream_memory(tmp):
    """Issue 6 story 4: 2,000 idle authenticated inbound streams in plain
    text cost at most 16 KiB each, 1,000 after STARTTLS at most 48 KiB each
    (growth of the gateway's VmRSS over the streams, read once the streams
    have been quiet long enough for their parsers to be released). The
    10,000-stream figures: tests/gateway/idle_streams.py -n 10000.
    Against an ASan build the figures are printed but not held to the
    bounds: its allocator adds redzones and a quarantine to every block."""
    bounded = os.environ.get("XS_SANITIZED", "0") not in ("1", "ON", "TRUE")
    sys.path.insert(0, os.path.dirname(__file__))
    import idle_streams  # noqa: E402
    plain_dir, tls_dir = os.path.join(tmp, "plain"), os.path.join(tmp, "tls")
    os.mkdir(plain_dir)
    os.mkdir(tls_dir)
    before, after, per = await idle_streams.measure(plain_dir, 2000, False)
    print(f"  plain: 2000 streams, VmRSS {before} -> {after} KiB, {per} bytes per stream")
    assert per <= 16 * 1024 or not bounded, per
    before, after, per = await idle_streams.measure(tls_dir, 1000, True)
    print(f"  tls: 1000 streams, VmRSS {before} -> {after} KiB, {per} bytes per stream")
    assert per <= 48 * 1024 or not bounded, per


# --- Sustained load and overload over SIP/UDP (issue 6, "txn") ---------------
#
# A stream far above what filled the old transaction table (3,300 msg/s over
# UDP, Timer K holding 16,384 entries for 5 s), long enough to pass Timer K
# and Timer J, delivers every message exactly once; past small limits set in
# the policy, every refusal is an exact, prompt answer and the gateway
# recovers by itself.

class QuietGateway(Gateway):
    """The gateway at --log-level info: a debug line per message would make
    the log, not the gateway, what a sustained test measures."""

    def start(self):
        binary = os.environ.get("XSGW", os.path.join(os.path.dirname(__file__), "..", "..",
                                                     "build", "xsgw"))
        mark = len(self.log_text()) if os.path.exists(self.log) else 0
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([binary, "--policy", self.policy, "--lua-dir",
                                      os.path.join(os.path.dirname(__file__), "..", "..", "lua"),
                                      "--state-dir", self.state, "--log-level", "info"],
                                     stderr=self.logf, stdout=self.logf)
        self.wait_log("ev=gateway.ready", start=mark)


class CountingUas(asyncio.DatagramProtocol):
    """A lean SIP next hop for sustained load: answers every MESSAGE 200 (or
    holds the answers while `hold`), and records deliveries by body and by
    branch. A retransmission (same branch) is absorbed as a UAS would; the
    same body under a second branch is a duplicate made by the gateway."""

    def __init__(self):
        self.branches = {}   # body -> set of branches
        self.requests = 0
        self.hold = False
        self.held = []
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    def datagram_received(self, data, addr):
        if data.startswith(b"SIP/2.0"):
            return
        self.requests += 1
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        keep = [ln for ln in lines[1:] if ln[:4].lower() in (b"via:", b"from", b"to: ", b"call",
                                                              b"cseq")]
        via = next(ln for ln in keep if ln[:4].lower() == b"via:")
        branch = re.search(rb"branch=([^;\s]+)", via).group(1)
        self.branches.setdefault(body, set()).add(branch)
        keep = [ln + b";tag=uas" if ln[:3].lower() == b"to:" and b";tag=" not in ln else ln
                for ln in keep]
        resp = b"SIP/2.0 200 OK\r\n" + b"\r\n".join(keep) + b"\r\nContent-Length: 0\r\n\r\n"
        if self.hold:
            self.held.append((resp, addr))
        else:
            self.transport.sendto(resp, addr)

    def release(self):
        self.hold = False
        for resp, addr in self.held:
            self.transport.sendto(resp, addr)
        self.held = []

    def delivered(self):
        return {b for b, br in self.branches.items() if br}

    def duplicates(self):
        return {b: len(br) for b, br in self.branches.items() if len(br) > 1}


class SipSender(asyncio.DatagramProtocol):
    """Sends MESSAGEs to the gateway without retransmitting, and records the
    final responses by Call-ID."""

    def __init__(self):
        self.finals = {}     # call-id -> list of (code, retry_after)
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    def send(self, gw_port, cid, body):
        port = self.transport.get_extra_info("sockname")[1]
        b = body.encode()
        req = (f"MESSAGE sip:alice@peer.test SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{cid};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:bob@sip.test>;tag=s{cid[:8]}\r\n"
               f"To: <sip:alice@peer.test>\r\nCall-ID: {cid}\r\nCSeq: 1 MESSAGE\r\n"
               f"Content-Type: text/plain\r\nContent-Length: {len(b)}\r\n\r\n").encode() + b
        self.transport.sendto(req, ("127.0.0.1", gw_port))

    def datagram_received(self, data, addr):
        m = re.match(rb"SIP/2.0 (\d+) ", data)
        code = int(m.group(1)) if m else 0
        if code < 200:
            return
        cid = re.search(rb"(?im)^call-id:\s*(\S+)", data).group(1).decode()
        ra = re.search(rb"(?im)^retry-after:\s*(\d+)", data)
        self.finals.setdefault(cid, []).append((code, int(ra.group(1)) if ra else None))


class PeerCounter:
    """Drains the fake XMPP peer's queue: message bodies delivered to it
    (counted) and error stanzas (kept)."""

    def __init__(self, peer):
        self.peer, self.bodies, self.errors = peer, {}, []
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        while True:
            el = await self.peer.received.get()
            if el.name == "message" and el.attrs.get("type") == "error":
                self.errors.append(el)
            elif el.name == "message" and el.child("body") is not None:
                b = el.child("body").text
                self.bodies[b] = self.bodies.get(b, 0) + 1

    def stop(self):
        self.task.cancel()


async def txn_env(tmp, sip_extra="", xmpp_extra=""):
    e = Env(tmp, peer_tls="optional", peer_offers_tls=False, sip_extra=sip_extra,
            xmpp_extra=xmpp_extra)
    e.gw = QuietGateway(tmp, e.policy_text())
    await e.__aenter__()
    loop = asyncio.get_running_loop()
    # The Env's own next hop is replaced by the counting one, on its port.
    e.sip.transport.close()
    await asyncio.sleep(0.05)
    e.uas = CountingUas()
    await loop.create_datagram_endpoint(lambda: e.uas, local_addr=("127.0.0.1", e.next_hop_port))
    e.sender = SipSender()
    await loop.create_datagram_endpoint(lambda: e.sender, local_addr=("127.0.0.1", 0))
    e.counter = PeerCounter(e.peer)
    return e


async def txn_env_close(e, exc=None):
    e.counter.stop()
    e.uas.transport.close()
    e.sender.transport.close()
    await e.__aexit__(exc, None, None)


def overload_counts(gw, key):
    return sum(int(n) for n in re.findall(r"ev=sip\.overload .*?\b" + key + r"=(\d+)",
                                          gw.log_text()))


async def test_txn_sustained_udp_every_message_once(tmp):
    """4,000 msg/s XMPP->SIP over UDP and 500 msg/s SIP->XMPP at the same
    time, for 42 s (past Timer K, 5 s, and Timer J, 32 s): every message is
    delivered exactly once, every SIP sender gets exactly one 200, nothing is
    refused, and no "too many pending transactions" appears in the log."""
    e = await txn_env(tmp)
    try:
        s = await e.peer.authenticated_stream(tls=False)
        assert s.db_result.attrs.get("type") == "valid", s.db_result
        rate_x, rate_s, seconds = 4000, 500, 42.0
        sent_x = sent_s = 0
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= seconds:
                break
            want = int(rate_x * elapsed)
            if want > sent_x:
                s.send("".join(message("alice@peer.test", "bob@sip.test", f"x{i}", mid=f"x{i}")
                               for i in range(sent_x, want)))
                sent_x = want
            want = int(rate_s * elapsed)
            for i in range(sent_s, want):
                e.sender.send(e.sip_port, f"c{i:08d}", f"s{i}")
            sent_s = max(sent_s, want)
            await s.w.drain()
            await asyncio.sleep(0.005)
        took = time.monotonic() - start
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (len(e.uas.delivered()) < sent_x or
                                                len(e.sender.finals) < sent_s):
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)
        dups = e.uas.duplicates()
        got_x = e.uas.delivered()
        print(f"  sustained: {sent_x} XMPP->SIP in {took:.1f} s ({sent_x / took:.0f}/s): "
              f"{len(got_x)} delivered, {len(dups)} duplicated, {e.uas.requests} requests seen; "
              f"{sent_s} SIP->XMPP: {len(e.counter.bodies)} delivered, "
              f"{sum(1 for v in e.sender.finals.values() if v[0][0] == 200)} answered 200")
        assert took >= 40
        assert not dups, list(dups.items())[:5]
        assert got_x == {f"x{i}".encode() for i in range(sent_x)}, sent_x - len(got_x)
        assert not e.counter.errors, e.counter.errors[:3]
        assert e.counter.bodies == {f"s{i}": 1 for i in range(sent_s)}, \
            sent_s - len(e.counter.bodies)
        assert all(v == [(200, None)] for v in e.sender.finals.values())
        assert len(e.sender.finals) == sent_s
        log = e.gw.log_text()
        assert "too many pending" not in log and "ev=sip.overload" not in log
        await s.close()
    finally:
        await txn_env_close(e)


async def test_txn_overload_xmpp_to_sip_refused_then_recovers(tmp):
    """sip.max_transactions = 40 and a next hop that holds its answers: 300
    messages in one burst. Backpressure holds the inbound stream at 30 in
    flight (for a second at most); what the gateway read past the limit is refused with
    resource-constraint type='wait' (one error per refused message, counted
    in the overload line), the rest is delivered once the next hop answers,
    and nothing is lost silently: delivered + refused = sent."""
    e = await txn_env(tmp, sip_extra="max_transactions = 40")
    try:
        s = await e.peer.authenticated_stream(tls=False)
        assert s.db_result.attrs.get("type") == "valid", s.db_result
        e.uas.hold = True
        s.send("".join(message("alice@peer.test", "bob@sip.test", f"o{i}", mid=f"o{i}")
                       for i in range(300)))
        await s.w.drain()
        e.gw.wait_log("ev=s2s.in.hold state=held")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(e.uas.delivered()) < 40:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        assert len(e.uas.delivered()) == 40, len(e.uas.delivered())
        # Recovery: the next hop answers, the stream is read again, and the
        # rest flows (each answer frees a slot; the UAS answers at once now).
        e.uas.release()
        # Held a second at most: by now the stream was released (see
        # test_txn_held_input_is_released_and_refused_promptly) or resumed.
        e.gw.wait_log(r"ev=s2s\.in\.hold state=(resumed|released)")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and \
                len(e.uas.delivered()) + len(e.counter.errors) < 300:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        got = e.uas.delivered()
        refused = {el.attrs.get("id") for el in e.counter.errors}
        print(f"  overload out: 300 sent, {len(got)} delivered, {len(refused)} refused, "
              f"overload lines {e.gw.count_log('ev=sip.overload')}")
        assert not e.uas.duplicates()
        assert len(e.counter.errors) == len(refused)
        assert {b.decode() for b in got} | {r for r in refused} == {f"o{i}" for i in range(300)}
        assert not ({b.decode() for b in got} & refused)
        for el in e.counter.errors:
            err = el.child("error")
            assert err is not None and err.attrs.get("type") == "wait", el
            assert err.child("resource-constraint", NS_STANZAS) is not None, el
        assert overload_counts(e.gw, "refused_out") == len(refused)
        if refused:
            e.gw.wait_log(r'ev=sip\.overload .*reason="too many pending transactions"')
        # After the load: a paced stream goes through whole.
        mark = len(e.gw.log_text())
        for i in range(50):
            s.send(message("alice@peer.test", "bob@sip.test", f"r{i}", mid=f"r{i}"))
            await asyncio.sleep(0.01)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                len([b for b in e.uas.delivered() if b.startswith(b"r")]) < 50:
            await asyncio.sleep(0.05)
        assert {b for b in e.uas.delivered() if b.startswith(b"r")} == \
            {f"r{i}".encode() for i in range(50)}
        assert "ev=sip.overload" not in e.gw.log_text()[mark:]
        await s.close()
    finally:
        await txn_env_close(e)


async def test_txn_held_input_is_released_and_refused_promptly(tmp):
    """A next hop that does not answer at all: backpressure holds the
    inbound stream for a second at most, then reads it again, and what the
    SIP side cannot take is refused at once (resource-constraint, type
    wait) instead of waiting in the sender's socket for as long as the next
    hop is stuck. Every message is delivered or refused within a few
    seconds, while the next hop still holds its 40."""
    e = await txn_env(tmp, sip_extra="max_transactions = 40")
    try:
        s = await e.peer.authenticated_stream(tls=False)
        assert s.db_result.attrs.get("type") == "valid", s.db_result
        e.uas.hold = True
        start = time.monotonic()
        for k in range(30):  # in pieces, so most of it waits in the socket once held
            s.send("".join(message("alice@peer.test", "bob@sip.test", f"h{i}", mid=f"h{i}")
                           for i in range(10 * k, 10 * k + 10)))
            await s.w.drain()
            await asyncio.sleep(0.02)
        e.gw.wait_log("ev=s2s.in.hold state=held")
        deadline = start + 6
        while time.monotonic() < deadline and \
                len(e.uas.delivered()) + len(e.counter.errors) < 300:
            await asyncio.sleep(0.05)
        took = time.monotonic() - start
        got = {b.decode() for b in e.uas.delivered()}
        refused = {el.attrs.get("id") for el in e.counter.errors}
        assert len(got) == 40 and len(refused) == 260, (len(got), len(refused), took)
        assert got | refused == {f"h{i}" for i in range(300)}
        for el in e.counter.errors:
            err = el.child("error")
            assert err is not None and err.attrs.get("type") == "wait", el
            assert err.child("resource-constraint", NS_STANZAS) is not None, el
        e.gw.wait_log(r"ev=s2s\.in\.hold state=released streams=1 reason=held-too-long")
        e.uas.release()
        await s.close()
    finally:
        await txn_env_close(e)


async def test_txn_overload_sip_to_xmpp_503_then_recovers(tmp):
    """sip.max_transactions = 8 and a one-second error grace: of 50 MESSAGEs
    at once, 8 are carried (200 after the grace) and 42 are answered 503
    with Retry-After at once, none delivered, counted in the overload line;
    after the load, every MESSAGE is carried again."""
    e = await txn_env(tmp, sip_extra="max_transactions = 8", xmpp_extra="error_grace = 1")
    try:
        # The gateway's outbound stream to the peer first, so the burst
        # does not wait on dialback.
        e.sender.send(e.sip_port, "warmup0000", "warm")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "warmup0000" not in e.sender.finals:
            await asyncio.sleep(0.05)
        assert e.sender.finals.get("warmup0000") == [(200, None)], e.sender.finals
        for i in range(50):
            e.sender.send(e.sip_port, f"b{i:08d}", f"b{i}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                sum(1 for k in e.sender.finals if k.startswith("b")) < 50:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        finals = {k: v for k, v in e.sender.finals.items() if k.startswith("b")}
        ok = {k for k, v in finals.items() if v == [(200, None)]}
        busy = {k for k, v in finals.items() if v == [(503, 5)]}
        print(f"  overload in: 50 sent, {len(ok)} answered 200, {len(busy)} answered 503")
        assert len(finals) == 50 and len(ok) == 8 and len(busy) == 42, finals
        delivered = {b for b in e.counter.bodies if b.startswith("b")}
        assert delivered == {f"b{int(k[1:])}" for k in ok}, delivered
        assert all(e.counter.bodies[b] == 1 for b in delivered)
        assert overload_counts(e.gw, "refused_in") == 42
        # After the load: paced MESSAGEs are all carried.
        for i in range(20):
            e.sender.send(e.sip_port, f"a{i:08d}", f"a{i}")
            await asyncio.sleep(0.2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                sum(1 for k in e.sender.finals if k.startswith("a")) < 20:
            await asyncio.sleep(0.05)
        after = {k: v for k, v in e.sender.finals.items() if k.startswith("a")}
        assert len(after) == 20 and all(v == [(200, None)] for v in after.values()), after
        assert {b for b in e.counter.bodies if b.startswith("a")} == {f"a{i}" for i in range(20)}
    finally:
        await txn_env_close(e)


TESTS = [v for k, v in sorted(globals().items()) if k.startswith("test_")]


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "xsgw-gwtest-", sys.argv))
