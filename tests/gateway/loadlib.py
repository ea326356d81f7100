"""Bounded two-way message load through a running gateway, with an exact
account of what became of every message: for the reload and drain tests.

XMPP -> SIP: a message sent on the peer's stream with id and body KEY is
"delivered" once the SIP next hop got a MESSAGE whose body starts with KEY,
"error" once an error stanza with id KEY came back. SIP -> XMPP: a MESSAGE
with Call-ID and body KEY is answered by a final response; a 2xx must match
a message the XMPP peer really received."""

import asyncio
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from gwlib import NS_STANZAS, NS_STREAM_ERR, NS_STREAMS, message  # noqa: E402

KEY = re.compile(r"\b(l[xs]\d*-\d+|p[a-z]+-\d+)\b")


class Load:
    def __init__(self, e, stream):
        self.e, self.s = e, stream
        self.sent = {}          # key -> "xmpp" | "sip" (the side it was sent from)
        self.outcome = {}       # key -> (kind, detail)
        self.at_peer = {}       # key -> body as the XMPP peer got it
        self.at_sip = {}        # key -> body as the SIP next hop got it
        self.stream_errors = []  # conditions of stream errors on the gateway's streams to the peer
        self.responses = {}     # key -> the SIP sender's final response
        self.n = 0
        self.tasks = []
        self.stopped = asyncio.Event()

    def start_collecting(self):
        self.tasks.append(asyncio.ensure_future(self._sip_requests()))
        self.tasks.append(asyncio.ensure_future(self._peer_stanzas()))
        self.tasks.append(asyncio.ensure_future(self._uac_responses()))

    async def _sip_requests(self):
        while True:
            req = await self.e.sip.requests.get()
            if req.get("method") != "MESSAGE":
                continue
            body = req["body"].decode("utf-8", "replace")
            m = KEY.match(body)
            if m and m.group(1) in self.sent:
                self.at_sip[m.group(1)] = body
                self.outcome.setdefault(m.group(1), ("delivered", body))

    async def _peer_stanzas(self):
        while True:
            el = await self.e.peer.received.get()
            if el.name == "error" and el.ns == NS_STREAMS:
                self.stream_errors.append([c.name for c in el.children if c.ns == NS_STREAM_ERR and c.name != "text"])
            if el.name != "message":
                continue
            if el.attrs.get("type") == "error":
                key = el.attrs.get("id", "")
                err = el.child("error")
                cond = "?"
                if err is not None:
                    for c in err.children:
                        if c.ns == NS_STANZAS and c.name != "text":
                            cond = c.name
                # An error after a MESSAGE reached the next hop still
                # counts: the next hop never answered it 2xx.
                self.outcome[key] = ("error", cond)
                continue
            b = el.child("body")
            m = KEY.match(b.text if b is not None else "")
            if m:
                self.at_peer[m.group(1)] = b.text

    async def _uac_responses(self):
        while True:
            resp = await self.e.uac.responses.get()
            if resp.get("code", 0) < 200:
                continue
            key = resp["headers"].get("call-id", [""])[0]
            if key in self.sent:
                self.outcome.setdefault(key, ("sip", resp["code"]))
                self.responses.setdefault(key, resp)

    def send_xmpp(self, key, body=None):
        self.sent[key] = "xmpp"
        self.s.send(message("alice@peer.test/phone", "bob@sip.test", body or key, mid=key))

    def send_sip(self, key, body=None):
        self.sent[key] = "sip"
        self.e.uac.send_message(self.e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test",
                                body or key, call_id=key)

    async def run(self, rate=20, seconds=60, prefix="l"):
        """Sends `rate` messages a second, alternating sides, until stop()
        or `seconds` (the bound) pass."""
        end = time.monotonic() + seconds
        while not self.stopped.is_set() and time.monotonic() < end:
            self.n += 1
            if self.n % 2:
                self.send_xmpp(f"{prefix}x-{self.n}")
            else:
                self.send_sip(f"{prefix}s-{self.n}")
            await asyncio.sleep(1.0 / rate)

    def go(self, **kw):
        self.tasks.append(asyncio.ensure_future(self.run(**kw)))

    def stop(self):
        self.stopped.set()

    async def outcome_of(self, key, timeout=20):
        deadline = time.monotonic() + timeout
        while key not in self.outcome:
            if time.monotonic() > deadline:
                raise AssertionError(f"no outcome for {key}")
            await asyncio.sleep(0.05)
        return self.outcome[key]

    async def settle(self, timeout=30):
        """Waits until every message sent has its outcome; returns the
        counts {"delivered": n, "error": n}. A 2xx to a SIP sender counts as
        delivered only when the XMPP peer really has that message."""
        deadline = time.monotonic() + timeout
        while set(self.sent) - set(self.outcome):
            if time.monotonic() > deadline:
                missing = sorted(set(self.sent) - set(self.outcome))
                raise AssertionError(f"{len(missing)} of {len(self.sent)} messages without "
                                     f"an outcome: {missing[:20]}")
            await asyncio.sleep(0.1)
        counts = {"delivered": 0, "error": 0}
        for key, (kind, detail) in self.outcome.items():
            if key not in self.sent:
                continue
            if kind == "sip" and 200 <= detail < 300:
                # The peer may still be reading it when the 200 comes.
                for _ in range(50):
                    if key in self.at_peer:
                        break
                    await asyncio.sleep(0.1)
                assert key in self.at_peer, f"{key}: 200 but the XMPP peer never got it"
                counts["delivered"] += 1
            elif kind == "delivered":
                counts["delivered"] += 1
            else:
                counts["error"] += 1
        return counts

    async def close(self):
        self.stop()
        for t in self.tasks:
            t.cancel()
