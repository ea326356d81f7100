"""Presence through the real gateway (RFC 8048): a fake XMPP server on one
side, fake SIP endpoints (the next hop, acting as presence server and as
the watcher's proxy) on the other, in a private network namespace. Each
test prints PASS/FAIL; the last line is "N passed, N failed"."""

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from gwlib import free_port, run_tests  # noqa: E402
from test_gateway import Env, expect_nothing, get  # noqa: E402

PRESENCE = ('presence = { expires = 60, min_expires = 2, max_expires = 120, '
            'max_per_user = 3 },')


class PresenceEnv(Env):
    def __init__(self, tmp, presence=PRESENCE, **kw):
        self.presence = presence
        super().__init__(tmp, **kw)

    def policy_text(self, **over):
        text = super().policy_text(**over)
        return text.replace('domains = { "sip.test" },', 'domains = { "sip.test" }, '
                            + self.presence, 1)


def pidf(entity, basic, note=None, activity=None, lang="en"):
    person = ""
    if note or activity:
        acts = f"<rpid:activities><rpid:{activity}/></rpid:activities>" if activity else ""
        n = f"<dm:note xml:lang='{lang}'>{note}</dm:note>" if note else ""
        person = f"<dm:person id='p1'>{acts}{n}</dm:person>"
    return ("<?xml version='1.0' encoding='UTF-8'?>"
            "<presence xmlns='urn:ietf:params:xml:ns:pidf' "
            "xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' "
            "xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' "
            f"entity='{entity}'><tuple id='t1'><status><basic>{basic}</basic></status></tuple>"
            f"{person}</presence>").encode()


def tag_of(value):
    m = re.search(r";tag=([^;>\s]+)", value)
    return m.group(1) if m else None


def uri_of(value):
    m = re.search(r"<([^>]+)>", value)
    return m.group(1) if m else value.split(";")[0]


def answer(ep, req, code, reason, extra="", to_tag="uas1"):
    """A final response from endpoint ep to the parsed request req."""
    h = req["headers"]
    to = h["to"][0]
    if ";tag=" not in to:
        to += f";tag={to_tag}"
    resp = (f"SIP/2.0 {code} {reason}\r\n" + "".join(f"Via: {v}\r\n" for v in h["via"])
            + f"From: {h['from'][0]}\r\nTo: {to}\r\nCall-ID: {h['call-id'][0]}\r\n"
            f"CSeq: {h['cseq'][0]}\r\n{extra}Content-Length: 0\r\n\r\n")
    ep.transport.sendto(resp.encode(), ep.last_addr[h["call-id"][0]])


def watch_addr(ep):
    ep.last_addr = {}
    orig = ep.datagram_received

    def received(data, addr):
        text = data.decode("utf-8", "replace")
        if not text.startswith("SIP/2.0"):
            m = re.search(r"(?im)^(?:call-id|i)\s*:\s*(\S+)", text)
            if m:
                ep.last_addr[m.group(1)] = addr
        orig(data, addr)
    ep.datagram_received = received


def send_request(ep, gw_port, method, ruri, frm, to, call_id, cseq, extra="", body=b"",
                 ctype=None):
    port = ep.transport.get_extra_info("sockname")[1]
    head = (f"{method} {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: {frm}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\nContact: <sip:ua@127.0.0.1:{port}>\r\n{extra}")
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    data = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    ep.transport.sendto(data, ("127.0.0.1", gw_port))


async def next_request(ep, method, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        req = await get(ep.requests, max(0.1, deadline - time.monotonic()))
        if req["method"] == method:
            return req


async def next_presence(peer, timeout=10, skip_probes=True):
    deadline = time.monotonic() + timeout
    while True:
        el = await get(peer.received, max(0.1, deadline - time.monotonic()))
        if el.name != "presence":
            continue
        if skip_probes and el.attrs.get("type") == "probe":
            continue
        return el


def child_text(el, name):
    c = el.child(name)
    return c.text if c is not None else None


async def xmpp_watches_sip(e, s):
    """alice@peer.test subscribes to carol@sip.test; the fake presence
    server accepts (202) and sends NOTIFY active. Returns the dialog."""
    s.send("<presence from='alice@peer.test' to='carol@sip.test' type='subscribe' id='s1'/>")
    req = await next_request(e.sip, "SUBSCRIBE")
    h = req["headers"]
    assert req["uri"] == "sip:carol@sip.test", req
    assert h["event"] == ["presence"], h
    assert h["accept"] == ["application/pidf+xml"], h
    assert h["expires"] == ["60"], h
    assert uri_of(h["from"][0]) == "sip:alice@peer.test", h
    assert tag_of(h["to"][0]) is None, h
    gw_contact = uri_of(h["contact"][0])
    answer(e.sip, req, 202, "Accepted",
           f"Contact: <sip:carol@127.0.0.1:{e.next_hop_port}>\r\nExpires: 60\r\n", "pres1")
    d = {"call_id": h["call-id"][0], "ours": "pres1", "theirs": tag_of(h["from"][0]),
         "contact": gw_contact, "cseq": 1}
    await notify(e, d, "active;expires=60", pidf("sip:carol@sip.test", "open", "In a meeting",
                                                "meeting"))
    return d


async def notify(e, d, state, body=b"", expect=200):
    send_request(e.sip, e.sip_port, "NOTIFY", d["contact"],
                 f"<sip:carol@sip.test>;tag={d['ours']}", f"<sip:alice@peer.test>;tag={d['theirs']}",
                 d["call_id"], d["cseq"], f"Event: presence\r\nSubscription-State: {state}\r\n",
                 body, "application/pidf+xml" if body else None)
    d["cseq"] += 1
    resp = await get(e.sip.responses)
    assert resp["code"] == expect, (resp["first"], resp["headers"].get("warning"))
    return resp


async def test_presence_xmpp_user_watches_sip_user(tmp):
    async with PresenceEnv(tmp) as e:
        watch_addr(e.sip)
        s = await e.peer.authenticated_stream()
        d = await xmpp_watches_sip(e, s)
        sub = await next_presence(e.peer)
        assert sub.attrs.get("type") == "subscribed", sub
        assert sub.attrs["from"] == "carol@sip.test" and sub.attrs["to"] == "alice@peer.test", sub
        p = await next_presence(e.peer)
        assert p.attrs.get("type") is None, p
        assert p.attrs["from"].startswith("carol@sip.test"), p
        assert child_text(p, "status") == "In a meeting", p
        st = p.child("status")
        assert st.attrs.get("{http://www.w3.org/XML/1998/namespace}lang",
                            st.attrs.get("xml:lang")) == "en", st.attrs
        assert child_text(p, "show") in ("dnd", "away", "xa"), p
        # A change of state: closed becomes unavailable.
        await notify(e, d, "active;expires=60", pidf("sip:carol@sip.test", "closed"))
        p = await next_presence(e.peer)
        assert p.attrs.get("type") == "unavailable", p
        # The same document again carries nothing new.
        await notify(e, d, "active;expires=60", pidf("sip:carol@sip.test", "closed"))
        await expect_nothing(e.peer.received, 0.5)
        # Alice removes Carol: SUBSCRIBE with Expires: 0 in the dialog.
        s.send("<presence from='alice@peer.test' to='carol@sip.test' type='unsubscribe'/>")
        req = await next_request(e.sip, "SUBSCRIBE")
        h = req["headers"]
        assert h["expires"] == ["0"], h
        assert h["call-id"] == [d["call_id"]] and tag_of(h["to"][0]) == "pres1", h
        answer(e.sip, req, 200, "OK", "Expires: 0\r\n")
        e.gw.wait_log("event=unsubscribed")
        # The dialog is gone: a NOTIFY in it is refused.
        await notify(e, d, "active;expires=60", pidf("sip:carol@sip.test", "open"), expect=481)
        await s.close()


async def test_presence_refused_and_terminated_become_unsubscribed(tmp):
    async with PresenceEnv(tmp) as e:
        watch_addr(e.sip)
        s = await e.peer.authenticated_stream()
        s.send("<presence from='alice@peer.test' to='nobody@sip.test' type='subscribe'/>")
        req = await next_request(e.sip, "SUBSCRIBE")
        answer(e.sip, req, 404, "Not Found")
        p = await next_presence(e.peer)
        assert p.attrs.get("type") == "unsubscribed" and p.attrs["from"] == "nobody@sip.test", p
        # Accepted, then the presence server rejects it by NOTIFY.
        d = await xmpp_watches_sip(e, s)
        assert (await next_presence(e.peer)).attrs.get("type") == "subscribed"
        await next_presence(e.peer)
        await notify(e, d, "terminated;reason=rejected")
        p = await next_presence(e.peer)
        assert p.attrs.get("type") == "unsubscribed" and p.attrs["from"] == "carol@sip.test", p
        await s.close()


async def test_presence_min_expires_and_refresh(tmp):
    async with PresenceEnv(tmp) as e:
        watch_addr(e.sip)
        s = await e.peer.authenticated_stream()
        s.send("<presence from='alice@peer.test' to='carol@sip.test' type='subscribe'/>")
        req = await next_request(e.sip, "SUBSCRIBE")
        answer(e.sip, req, 423, "Interval Too Brief", "Min-Expires: 90\r\n")
        req = await next_request(e.sip, "SUBSCRIBE")
        assert req["headers"]["expires"] == ["90"], req["headers"]
        # Granted 3 s: the refresh comes in the same dialog before expiry.
        answer(e.sip, req, 200, "OK",
               f"Contact: <sip:carol@127.0.0.1:{e.next_hop_port}>\r\nExpires: 3\r\n", "pres2")
        t0 = time.monotonic()
        ref = await next_request(e.sip, "SUBSCRIBE", timeout=6)
        took = time.monotonic() - t0
        assert 1.5 < took < 3.0, took
        h = ref["headers"]
        assert h["call-id"] == req["headers"]["call-id"] and tag_of(h["to"][0]) == "pres2", h
        assert ref["uri"] == f"sip:carol@127.0.0.1:{e.next_hop_port}", ref["uri"]
        # The notifier forgot the dialog: a new one is made.
        answer(e.sip, ref, 481, "Call/Transaction Does Not Exist")
        again = await next_request(e.sip, "SUBSCRIBE")
        assert again["headers"]["call-id"] != h["call-id"] and tag_of(again["headers"]["to"][0]) is None
        await s.close()


async def test_presence_hostile_notify(tmp):
    async with PresenceEnv(tmp) as e:
        watch_addr(e.sip)
        s = await e.peer.authenticated_stream()
        d = await xmpp_watches_sip(e, s)
        await next_presence(e.peer)
        await next_presence(e.peer)
        # Not well-formed, a DTD, another content type, an old CSeq, no
        # Subscription-State, an unknown dialog: each refused, nothing sent.
        await notify(e, d, "active", b"<presence xmlns='urn:ietf:params:xml:ns:pidf'>", 400)
        await notify(e, d, "active", b"<!DOCTYPE x [<!ENTITY a 'b'>]><presence/>", 400)
        await notify(e, d, "active", b"<a>" * 200 + b"</a>" * 200, 400)
        d2 = dict(d, cseq=1)
        await notify(e, d2, "active", pidf("sip:carol@sip.test", "closed"), 500)
        bad = dict(d, call_id="nope")
        await notify(e, bad, "active", pidf("sip:carol@sip.test", "closed"), 481)
        await expect_nothing(e.peer.received, 0.5)
        # The subscription still works.
        await notify(e, d, "active;expires=60", pidf("sip:carol@sip.test", "closed"))
        assert (await next_presence(e.peer)).attrs.get("type") == "unavailable"
        await s.close()


async def sip_watches_xmpp(e, s, expires=60):
    """carol@sip.test SUBSCRIBEs to alice@peer.test through the gateway;
    returns the dialog as carol's UA sees it."""
    call_id = uuid.uuid4().hex
    send_request(e.uac, e.sip_port, "SUBSCRIBE", "sip:alice@peer.test",
                 "<sip:carol@sip.test>;tag=carol1", "<sip:alice@peer.test>", call_id, 1,
                 f"Event: presence\r\nAccept: application/pidf+xml\r\nExpires: {expires}\r\n")
    resp = await get(e.uac.responses)
    assert resp["code"] == 202, resp["first"]
    h = resp["headers"]
    assert h["expires"] == [str(expires)], h
    gw_tag = tag_of(h["to"][0])
    assert gw_tag, h
    contact = uri_of(h["contact"][0])
    first = await next_request(e.sip, "NOTIFY")
    fh = first["headers"]
    assert fh["subscription-state"][0].startswith("pending"), fh
    assert fh["call-id"] == [call_id] and tag_of(fh["from"][0]) == gw_tag, fh
    assert tag_of(fh["to"][0]) == "carol1", fh
    assert first["uri"].startswith("sip:ua@127.0.0.1:"), first["uri"]
    answer(e.sip, first, 200, "OK")
    return {"call_id": call_id, "gw_tag": gw_tag, "contact": contact, "cseq": 2}


async def test_presence_sip_user_watches_xmpp_user(tmp):
    async with PresenceEnv(tmp) as e:
        watch_addr(e.sip)
        d = await sip_watches_xmpp(e, None)
        req = await next_presence(e.peer)
        assert req.attrs.get("type") == "subscribe", req
        assert req.attrs["from"] == "carol@sip.test" and req.attrs["to"] == "alice@peer.test", req
        s = await e.peer.authenticated_stream()
        s.send("<presence from='alice@peer.test' to='carol@sip.test' type='subscribed'/>")
        s.send("<presence from='alice@peer.test/laptop' to='carol@sip.test'>"
               "<show>dnd</show><status xml:lang='en'>Writing a report</status>"
               "<priority>5</priority></presence>")
        n = await next_request(e.sip, "NOTIFY")
        nh = n["headers"]
        assert nh["subscription-state"][0].startswith("active;expires="), nh
        assert nh["content-type"] == ["application/pidf+xml"], nh
        body = n["body"].decode()
        assert "<basic>open</basic>" in body, body
        assert "Writing a report" in body, body
        assert "busy" in body, body
        answer(e.sip, n, 200, "OK")
        s.send("<presence from='alice@peer.test/laptop' to='carol@sip.test' type='unavailable'/>")
        n = await next_request(e.sip, "NOTIFY")
        assert "<basic>closed</basic>" in n["body"].decode(), n["body"]
        answer(e.sip, n, 200, "OK")
        # Presence to someone who did not subscribe goes nowhere.
        s.send("<presence from='alice@peer.test/laptop' to='dave@sip.test'/>")
        await expect_nothing(e.sip.requests, 0.5)
        # Carol ends it: 200, NOTIFY terminated, and alice's server hears
        # an unsubscribe.
        send_request(e.uac, e.sip_port, "SUBSCRIBE", d["contact"],
                     "<sip:carol@sip.test>;tag=carol1", f"<sip:alice@peer.test>;tag={d['gw_tag']}",
                     d["call_id"], 2, "Event: presence\r\nExpires: 0\r\n")
        resp = await get(e.uac.responses)
        assert resp["code"] == 200, resp["first"]
        n = await next_request(e.sip, "NOTIFY")
        assert n["headers"]["subscription-state"][0].startswith("terminated"), n["headers"]
        answer(e.sip, n, 200, "OK")
        p = await next_presence(e.peer)
        assert p.attrs.get("type") == "unsubscribe" and p.attrs["from"] == "carol@sip.test", p
        await s.close()


async def test_presence_sip_watcher_refused_and_bad_requests(tmp):
    async with PresenceEnv(tmp) as e:
        watch_addr(e.sip)
        await sip_watches_xmpp(e, None)
        await next_presence(e.peer)
        s = await e.peer.authenticated_stream()
        s.send("<presence from='alice@peer.test' to='carol@sip.test' type='unsubscribed'/>")
        n = await next_request(e.sip, "NOTIFY")
        assert n["headers"]["subscription-state"][0] == "terminated;reason=rejected", n["headers"]
        answer(e.sip, n, 200, "OK")
        # Too brief, unknown event package, a domain nobody federates.
        for extra, code in (("Event: presence\r\nExpires: 1\r\n", 423),
                            ("Event: dialog\r\nExpires: 60\r\n", 489)):
            send_request(e.uac, e.sip_port, "SUBSCRIBE", "sip:alice@peer.test",
                         f"<sip:carol@sip.test>;tag={uuid.uuid4().hex[:6]}",
                         "<sip:alice@peer.test>", uuid.uuid4().hex, 1, extra)
            resp = await get(e.uac.responses)
            assert resp["code"] == code, resp["first"]
        # A Call-ID longer than a dialog keeps is refused, not cut (a cut one
        # would put every NOTIFY in a dialog the watcher does not know).
        send_request(e.uac, e.sip_port, "SUBSCRIBE", "sip:alice@peer.test",
                     "<sip:carol@sip.test>;tag=long1", "<sip:alice@peer.test>", "c" * 300, 1,
                     "Event: presence\r\nExpires: 60\r\n")
        resp = await get(e.uac.responses)
        assert resp["code"] == 400, resp["first"]
        send_request(e.uac, e.sip_port, "SUBSCRIBE", "sip:eve@elsewhere.test",
                     "<sip:carol@sip.test>;tag=x1", "<sip:eve@elsewhere.test>", uuid.uuid4().hex,
                     1, "Event: presence\r\nExpires: 60\r\n")
        resp = await get(e.uac.responses)
        assert resp["code"] == 403, resp["first"]
        await expect_nothing(e.peer.received, 0.5)
        await s.close()


async def test_presence_limits_per_user(tmp):
    async with PresenceEnv(tmp) as e:
        watch_addr(e.sip)
        s = await e.peer.authenticated_stream()
        for i in range(4):
            s.send(f"<presence from='alice@peer.test' to='u{i}@sip.test' type='subscribe'/>")
        for i in range(3):
            req = await next_request(e.sip, "SUBSCRIBE")
            assert req["uri"] == f"sip:u{i}@sip.test", req["uri"]
            answer(e.sip, req, 202, "Accepted",
                   f"Contact: <sip:u{i}@127.0.0.1:{e.next_hop_port}>\r\nExpires: 60\r\n")
        p = await next_presence(e.peer)
        assert p.attrs.get("type") == "unsubscribed" and p.attrs["from"] == "u3@sip.test", p
        e.gw.wait_log("max_per_user")
        await expect_nothing(e.sip.requests, 0.5)
        await s.close()


async def test_presence_survives_a_restart(tmp):
    e = PresenceEnv(tmp)
    async with e:
        watch_addr(e.sip)
        s = await e.peer.authenticated_stream()
        d = await xmpp_watches_sip(e, s)
        await next_presence(e.peer)
        await next_presence(e.peer)
        sd = await sip_watches_xmpp(e, None)
        await next_presence(e.peer)
        s.send("<presence from='alice@peer.test' to='carol@sip.test' type='subscribed'/>")
        n = await next_request(e.sip, "NOTIFY")
        answer(e.sip, n, 200, "OK")
        await s.close()
        # Stop and start again: the store has both subscriptions.
        e.gw.stop()
        mark = len(e.gw.log_text())
        e.gw.start()
        e.gw.wait_log("xmpp_watches_sip=1 sip_watches_xmpp=1", start=mark)
        # The SIP subscription is refreshed in its dialog, with a CSeq past
        # every one used before.
        ref = await next_request(e.sip, "SUBSCRIBE", timeout=10)
        h = ref["headers"]
        assert h["call-id"] == [d["call_id"]] and tag_of(h["to"][0]) == "pres1", h
        assert int(h["cseq"][0].split()[0]) > 1, h
        answer(e.sip, ref, 200, "OK", "Expires: 60\r\n")
        # The XMPP user is probed for the state the SIP watcher is owed.
        probe = None
        deadline = time.monotonic() + 10
        while probe is None:
            el = await get(e.peer.received, max(0.1, deadline - time.monotonic()))
            if el.name == "presence" and el.attrs.get("type") == "probe":
                probe = el
        assert probe.attrs["from"] == "carol@sip.test" and probe.attrs["to"] == "alice@peer.test"
        # Presence keeps flowing both ways.
        await notify(e, d, "active;expires=60", pidf("sip:carol@sip.test", "open", "back"))
        p = await next_presence(e.peer)
        assert child_text(p, "status") == "back", p
        s = await e.peer.authenticated_stream()
        s.send("<presence from='alice@peer.test/x' to='carol@sip.test'><status>here</status>"
               "</presence>")
        n = await next_request(e.sip, "NOTIFY")
        assert n["headers"]["call-id"] == [sd["call_id"]], n["headers"]
        assert "here" in n["body"].decode(), n["body"]
        answer(e.sip, n, 200, "OK")
        await s.close()


async def test_presence_store_corrupt_is_refused(tmp):
    state = os.path.join(tmp, "state")
    os.makedirs(state, exist_ok=True)
    path = os.path.join(state, "presence.db")
    with open(path, "wb") as f:
        f.write(b"this is not a database" * 100)
    before = open(path, "rb").read()
    e = PresenceEnv(tmp)
    try:
        e.gw.start()
        raise AssertionError("the gateway started on a corrupt store")
    except (AssertionError, TimeoutError, Exception) as ex:
        if "started on a corrupt" in str(ex):
            raise
    rc = e.gw.proc.wait(10)
    assert rc != 0, rc
    log = e.gw.log_text()
    assert "presence.db" in log and "result=refused" in log, log[-2000:]
    assert open(path, "rb").read() == before


async def test_presence_forked_notify_and_reinvited_subscription(tmp):
    async with PresenceEnv(tmp) as e:
        watch_addr(e.sip)
        s = await e.peer.authenticated_stream()
        d = await xmpp_watches_sip(e, s)
        await next_presence(e.peer)
        await next_presence(e.peer)
        # A second notifier answering the forked SUBSCRIBE: refused, the
        # first dialog goes on.
        fork = dict(d, ours="fork2", cseq=1)
        await notify(e, fork, "active;expires=60", pidf("sip:carol@sip.test", "closed"), 481)
        await expect_nothing(e.peer.received, 0.3)
        # terminated;reason=deactivated invites a new subscription at once
        # (RFC 6665 4.1.3), in a new dialog, and the watcher is not told.
        await notify(e, d, "terminated;reason=deactivated")
        req = await next_request(e.sip, "SUBSCRIBE")
        h = req["headers"]
        assert h["call-id"] != [d["call_id"]] and tag_of(h["to"][0]) is None, h
        assert h["expires"] == ["60"], h
        await expect_nothing(e.peer.received, 0.3)
        await s.close()


async def test_presence_sip_watcher_expires(tmp):
    async with PresenceEnv(tmp) as e:
        watch_addr(e.sip)
        await sip_watches_xmpp(e, None, expires=2)
        await next_presence(e.peer)
        s = await e.peer.authenticated_stream()
        s.send("<presence from='alice@peer.test' to='carol@sip.test' type='subscribed'/>")
        n = await next_request(e.sip, "NOTIFY")
        assert n["headers"]["subscription-state"][0].startswith("active"), n["headers"]
        answer(e.sip, n, 200, "OK")
        # Carol does not refresh: at expiry, NOTIFY terminated;reason=timeout
        # and alice's server hears an unsubscribe.
        t0 = time.monotonic()
        n = await next_request(e.sip, "NOTIFY", timeout=5)
        assert n["headers"]["subscription-state"] == ["terminated;reason=timeout"], n["headers"]
        assert time.monotonic() - t0 < 3.5
        answer(e.sip, n, 200, "OK")
        p = await next_presence(e.peer)
        assert p.attrs.get("type") == "unsubscribe" and p.attrs["from"] == "carol@sip.test", p
        await s.close()


async def test_presence_probes(tmp):
    async with PresenceEnv(tmp) as e:
        watch_addr(e.sip)
        s = await e.peer.authenticated_stream()
        d = await xmpp_watches_sip(e, s)
        await next_presence(e.peer)
        await next_presence(e.peer)
        # A probe from the watcher is answered from the state held.
        s.send("<presence from='alice@peer.test' to='carol@sip.test' type='probe'/>")
        p = await next_presence(e.peer)
        assert p.attrs.get("type") is None and child_text(p, "status") == "In a meeting", p
        await expect_nothing(e.sip.requests, 0.3)
        # A probe from someone without a subscription: a one-time fetch,
        # which the presence server answers for that user.
        s.send("<presence from='bob@peer.test/x' to='carol@sip.test' type='probe'/>")
        req = await next_request(e.sip, "SUBSCRIBE")
        h = req["headers"]
        assert h["expires"] == ["0"] and uri_of(h["from"][0]) == "sip:bob@peer.test", h
        answer(e.sip, req, 200, "OK", f"Contact: <sip:carol@127.0.0.1:{e.next_hop_port}>\r\n"
               "Expires: 0\r\n", "f1")
        f = {"call_id": h["call-id"][0], "ours": "f1", "theirs": tag_of(h["from"][0]),
             "contact": uri_of(h["contact"][0]), "cseq": 1}
        send_request(e.sip, e.sip_port, "NOTIFY", f["contact"], "<sip:carol@sip.test>;tag=f1",
                     f"<sip:bob@peer.test>;tag={f['theirs']}", f["call_id"], 1,
                     "Event: presence\r\nSubscription-State: terminated;reason=timeout\r\n",
                     pidf("sip:carol@sip.test", "open", "for bob"), "application/pidf+xml")
        assert (await get(e.sip.responses))["code"] == 200
        p = await next_presence(e.peer)
        assert p.attrs["to"] == "bob@peer.test/x" and child_text(p, "status") == "for bob", p
        await s.close()


async def test_presence_policy_hooks_approve_pending_drop(tmp):
    hook = """
function on_subscribe(s)
  if s.from:match("^sip:vip") or s.from:match("^vip") then return "approve" end
  if s.from:match("^sip:held") or s.from:match("^held") then return "pending" end
  return "allow"
end
function on_presence(p)
  if p.status == "secret" or p.note == "secret" then return drop() end
  return p
end
"""
    async with PresenceEnv(tmp, hook=hook) as e:
        watch_addr(e.sip)
        s = await e.peer.authenticated_stream()
        # approve: the XMPP watcher hears subscribed at once, and the SIP
        # side is asked all the same.
        s.send("<presence from='vip@peer.test' to='carol@sip.test' type='subscribe'/>")
        p = await next_presence(e.peer)
        assert p.attrs.get("type") == "subscribed" and p.attrs["to"] == "vip@peer.test", p
        req = await next_request(e.sip, "SUBSCRIBE")
        assert uri_of(req["headers"]["from"][0]) == "sip:vip@peer.test"
        answer(e.sip, req, 202, "Accepted", f"Contact: <sip:c@127.0.0.1:{e.next_hop_port}>\r\n")
        # pending: nobody is asked, until a new policy generation decides.
        s.send("<presence from='held@peer.test' to='carol@sip.test' type='subscribe'/>")
        s.send("<presence from='held2@peer.test' to='carol@sip.test' type='subscribe'/>")
        e.gw.wait_log("ev=router.pending .*held=2")
        await expect_nothing(e.sip.requests, 0.5)
        e.gw.write_policy(e.policy_text(hook=hook.replace(
            'return "pending"', 'if s.from:match("held2") then return "deny" end return "allow"')))
        e.gw.reload()
        req = await next_request(e.sip, "SUBSCRIBE")
        assert uri_of(req["headers"]["from"][0]) == "sip:held@peer.test", req["headers"]
        answer(e.sip, req, 202, "Accepted", f"Contact: <sip:c@127.0.0.1:{e.next_hop_port}>\r\n")
        p = await next_presence(e.peer)
        assert p.attrs.get("type") == "unsubscribed" and p.attrs["to"] == "held2@peer.test", p
        await expect_nothing(e.sip.requests, 0.3)
        # A SIP watcher approved by the policy: NOTIFY active without
        # waiting for the XMPP user.
        send_request(e.uac, e.sip_port, "SUBSCRIBE", "sip:alice@peer.test",
                     "<sip:vip@sip.test>;tag=v1", "<sip:alice@peer.test>", "vip-sub", 1,
                     "Event: presence\r\nExpires: 60\r\n")
        assert (await get(e.uac.responses))["code"] == 202
        n = await next_request(e.sip, "NOTIFY")
        assert n["headers"]["subscription-state"][0].startswith("active;"), n["headers"]
        answer(e.sip, n, 200, "OK")
        # on_presence drops: the SIP watcher gets nothing of it.
        s.send("<presence from='alice@peer.test/x' to='vip@sip.test'><status>secret</status>"
               "</presence>")
        await expect_nothing(e.sip.requests, 0.5)
        s.send("<presence from='alice@peer.test/x' to='vip@sip.test'><status>open</status>"
               "</presence>")
        n = await next_request(e.sip, "NOTIFY")
        assert "open" in n["body"].decode() and "secret" not in n["body"].decode()
        answer(e.sip, n, 200, "OK")
        await s.close()


async def test_presence_crash_after_restore_keeps_cseq_growing(tmp):
    """A crash right after a restart, before the first batch was written,
    must not make the next start reuse the CSeqs the restore already used."""
    e = PresenceEnv(tmp)
    async with e:
        watch_addr(e.sip)
        s = await e.peer.authenticated_stream()
        d = await xmpp_watches_sip(e, s)
        await next_presence(e.peer)
        await next_presence(e.peer)
        await s.close()
        seen = []
        for how in ("stop", "kill", "kill"):
            if how == "stop":
                e.gw.stop()
            else:
                e.gw.proc.kill()
                e.gw.proc.wait(10)
            mark = len(e.gw.log_text())
            e.gw.start()
            e.gw.wait_log("ev=presence.restore ", start=mark)
            ref = await next_request(e.sip, "SUBSCRIBE", timeout=10)
            h = ref["headers"]
            assert h["call-id"] == [d["call_id"]], h
            seen.append(int(h["cseq"][0].split()[0]))
            answer(e.sip, ref, 200, "OK", "Expires: 60\r\n")
            if how == "stop":
                # The first batch after the clean restart is written ...
                await asyncio.sleep(1.5)
            # ... and the crashes come before the next one.
        assert seen[0] < seen[1] < seen[2], seen


async def test_presence_redis_restart_and_adoption(tmp):
    """presence.store = "redis://...": a restart under the same gateway.instance
    restores from Redis as from the embedded store; an instance under another
    name adopts the subscriptions of one that was killed once its heartbeat runs
    out, refreshes the SIP dialog and probes the XMPP user."""
    server = shutil.which("redis-server")
    if not server:
        print("SKIP: no redis-server (Debian package redis-server)")
        return
    port = free_port()
    redis = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--logfile", ""],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or redis.poll() is not None:
                    raise AssertionError("redis-server did not start")
                time.sleep(0.05)
        store = (f'presence = {{ store = "redis://127.0.0.1:{port}/3?prefix=t", expires = 60, '
                 'min_expires = 2, max_expires = 120, max_per_user = 3 },')
        e = PresenceEnv(tmp, presence=store + ' instance = "gw-one",')
        async with e:
            watch_addr(e.sip)
            s = await e.peer.authenticated_stream()
            d = await xmpp_watches_sip(e, s)
            await next_presence(e.peer)
            await next_presence(e.peer)
            sd = await sip_watches_xmpp(e, None)
            await next_presence(e.peer)
            s.send("<presence from='alice@peer.test' to='carol@sip.test' type='subscribed'/>")
            n = await next_request(e.sip, "NOTIFY")
            answer(e.sip, n, 200, "OK")
            await s.close()
            e.gw.wait_log(f"ev=presence.store url=redis://127.0.0.1:{port}/3\\?prefix=t "
                          "instance=gw-one result=open")
            # A clean restart under the same name restores from Redis.
            await asyncio.sleep(1.5)
            e.gw.stop()
            mark = len(e.gw.log_text())
            e.gw.start()
            e.gw.wait_log("xmpp_watches_sip=1 sip_watches_xmpp=1", start=mark)
            ref = await next_request(e.sip, "SUBSCRIBE", timeout=10)
            assert ref["headers"]["call-id"] == [d["call_id"]], ref["headers"]
            first_cseq = int(ref["headers"]["cseq"][0].split()[0])
            answer(e.sip, ref, 200, "OK", "Expires: 60\r\n")
            await asyncio.sleep(1.5)
            # Killed; another instance starts with nothing of its own and
            # adopts gw-one's subscriptions once its heartbeat runs out.
            e.gw.proc.kill()
            e.gw.proc.wait(10)
            e.presence = store + ' instance = "gw-two",'
            e.gw.write_policy(e.policy_text())
            mark = len(e.gw.log_text())
            e.gw.start()
            e.gw.wait_log("xmpp_watches_sip=0 sip_watches_xmpp=0", start=mark)
            e.gw.wait_log("ev=presence.adopt from=gw-one records=2 refused=0 instance=gw-two",
                          timeout=20, start=mark)
            ref = await next_request(e.sip, "SUBSCRIBE", timeout=10)
            h = ref["headers"]
            assert h["call-id"] == [d["call_id"]] and tag_of(h["to"][0]) == "pres1", h
            assert int(h["cseq"][0].split()[0]) > first_cseq, (h, first_cseq)
            answer(e.sip, ref, 200, "OK", "Expires: 60\r\n")
            probe = None
            deadline = time.monotonic() + 10
            while probe is None:
                el = await get(e.peer.received, max(0.1, deadline - time.monotonic()))
                if el.name == "presence" and el.attrs.get("type") == "probe":
                    probe = el
            assert probe.attrs["from"] == "carol@sip.test", probe
            # Presence keeps flowing both ways through the adopter.
            await notify(e, d, "active;expires=60", pidf("sip:carol@sip.test", "open", "adopted"))
            p = await next_presence(e.peer)
            assert child_text(p, "status") == "adopted", p
            s = await e.peer.authenticated_stream()
            s.send("<presence from='alice@peer.test/x' to='carol@sip.test'><status>there"
                   "</status></presence>")
            n = await next_request(e.sip, "NOTIFY")
            assert n["headers"]["call-id"] == [sd["call_id"]], n["headers"]
            assert "there" in n["body"].decode(), n["body"]
            answer(e.sip, n, 200, "OK")
            await s.close()
    finally:
        redis.kill()
        redis.wait(10)


TESTS = [v for k, v in sorted(globals().items()) if k.startswith("test_")]


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "xsgw-prtest-", sys.argv))
