"""Gateway-level tests: the real xsgw binary between a fake XMPP server that
does STARTTLS and dialback for real and a fake SIP endpoint, on loopback in a
private network namespace. Each test prints PASS/FAIL; the last line is
"N passed, N failed"."""

import asyncio
import os
import sys
import tempfile
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from gwlib import (NS_STANZAS, NS_STREAM_ERR, Gateway, Peer, SipEndpoint, XStream,  # noqa: E402
                   dialback_key, free_port, header, message, policy)

UNICODE_BODY = "héllo ☺ <b>&amp;</b> 'x' \"y\" ]]> \u00e9\u0301 𝄞"


class Env:
    """One gateway, one fake XMPP peer, one fake SIP endpoint."""

    def __init__(self, tmp, sip_code=200, hook="", peer_tls="required", extra_partners=""):
        self.tmp = tmp
        self.gw_port, self.sip_port = free_port(), free_port()
        self.next_hop_port, self.peer_port = free_port(), free_port()
        self.sip_code, self.hook = sip_code, hook
        self.policy_args = dict(extra_partners=extra_partners, hook=hook, peer_tls=peer_tls)
        self.gw = Gateway(tmp, self.policy_text())

    def policy_text(self, **over):
        args = dict(self.policy_args, **over)
        return policy(self.gw_port, self.sip_port, self.next_hop_port, self.peer_port, **args)

    async def __aenter__(self):
        self.sip = self.uac = self.peer = None
        try:
            self.gw.start()
            loop = asyncio.get_running_loop()
            self.sip = SipEndpoint(self.sip_code)
            await loop.create_datagram_endpoint(lambda: self.sip,
                                                local_addr=("127.0.0.1", self.next_hop_port))
            self.uac = SipEndpoint()
            await loop.create_datagram_endpoint(lambda: self.uac, local_addr=("127.0.0.1", 0))
            self.peer = Peer(self.tmp, self.gw_port)
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
        for ep in (self.sip, self.uac):
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
        assert "<sip:alice@peer.test>" in h["from"][0], h["from"]
        assert "<sip:bob@sip.test>" in h["to"][0], h["to"]
        assert h["content-type"][0].lower().replace(" ", "") == "text/plain;charset=utf-8", h
        assert req["body"].decode() == UNICODE_BODY, req["body"]
        assert h.get("subject") == ["Hi"], h.get("subject")
        await expect_nothing(e.peer.received, 0.5)
        await s.close()


async def test_xmpp_to_sip_error_bounces(tmp):
    for code, cond in ((404, "item-not-found"), (480, "recipient-unavailable"),
                       (403, "forbidden"), (503, "service-unavailable")):
        async with Env(tmp, sip_code=code) as e:
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
        k = dialback_key(e.peer.secret, "sip.test", "peer.test", s.sid)
        s.send(f"<db:result from='peer.test' to='sip.test'>{k}</db:result>")
        el = await s.expect_el("result")
        assert el.attrs.get("type") == "error", el


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
        s = await e.peer.open_stream("sip.test", tls=False)
        s.send("<message><body>" + "x" * (300 * 1024))
        el = await s.expect_el("error")
        assert el.child("policy-violation", NS_STREAM_ERR) is not None, el
        # Nothing else was lost: a good stream still works.
        s = await e.peer.authenticated_stream()
        s.send(message("alice@peer.test", "bob@sip.test", "still here"))
        req = await get(e.sip.requests)
        assert req["body"] == b"still here"


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


async def test_iq_gets_service_unavailable(tmp):
    async with Env(tmp) as e:
        s = await e.peer.authenticated_stream()
        s.send("<iq from='alice@peer.test/x' to='bob@sip.test' type='get' id='q1'>"
               "<query xmlns='jabber:iq:version'/></iq>")
        err = await get(e.peer.received, 20)
        assert err.name == "iq" and err.attrs.get("type") == "error", err
        assert err.child("error").child("service-unavailable") is not None


# --- SIP -> XMPP -----------------------------------------------------------

async def test_sip_to_xmpp_message(tmp):
    async with Env(tmp) as e:
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", UNICODE_BODY)
        st = await get(e.peer.received, 20)
        assert st.name == "message", st
        assert st.attrs.get("from") == "bob@sip.test", st.attrs
        assert st.attrs.get("to") == "alice@peer.test", st.attrs
        assert st.attrs.get("type") == "chat", st.attrs
        assert st.child("body").text == UNICODE_BODY, st.child("body").text
        resp = await get(e.uac.responses, 20)
        assert resp["code"] == 200, resp["first"]
        # The peer checked the gateway's key by asking the gateway back.
        assert e.peer.verified and all(ok for _, ok in e.peer.verified), e.peer.verified


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
        assert resp["code"] == 503, resp["first"]
        # The error came back well inside the grace: the answer did not wait it out.
        assert time.monotonic() - start < 5
        # The log line follows the response on the wire; wait for it.
        e.gw.wait_log("result=reported-to-sender")
        # A deliverable message still gets its 200 once the grace has passed.
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "hello")
        await get(e.peer.received, 20)
        resp = await get(e.uac.responses, 20)
        assert resp["code"] == 200, resp["first"]


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


async def test_sip_bad_content_type(tmp):
    async with Env(tmp) as e:
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "<b>x</b>",
                           content_type="text/html")
        resp = await get(e.uac.responses)
        assert resp["code"] == 415, resp["first"]


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


TESTS = [v for k, v in sorted(globals().items()) if k.startswith("test_")]


def main():
    only = sys.argv[1:]
    passed = failed = 0
    for t in TESTS:
        if only and t.__name__ not in only:
            continue
        with tempfile.TemporaryDirectory(prefix="xsgw-gwtest-") as tmp:
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


if __name__ == "__main__":
    sys.exit(main())
