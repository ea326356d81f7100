"""Several instances behind one SRV record (issue 9, story 6): a draining
instance hands its peers over at once. On SIGTERM the peer's stream to the
gateway ends with </stream:stream> right away, not when the drain ends, so
the peer's next stanzas take a new stream, which the closed listener sends
to another instance, instead of being refused for the whole drain. What the
peer wrote before it saw the close is still read and answered (RFC 6120
4.4); the peer's own close ends the connection; the drain goes on."""

import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from gwlib import run_tests  # noqa: E402
from test_drain import wait_exit, with_deadline  # noqa: E402
from test_reload_watch import Env  # noqa: E402


async def stream_end(s, timeout):
    """How stream s ends: "close" (</stream:stream>), "eof" or "error"; elements
    other than a stream error before it are skipped."""
    while True:
        kind, el = await s.next(timeout)
        if kind == "el" and el.name == "error":
            return "error"
        if kind in ("close", "eof"):
            return kind


async def test_drain_hands_peers_over(tmp):
    e = Env(tmp)
    with_deadline(e, 10)
    async with e:
        # The gateway's own stream to the peer, for the answers.
        e.load.send_sip("pwarm-1")
        assert await e.load.outcome_of("pwarm-1", 10) == ("sip", 200)
        # Work in flight, so the drain lasts.
        e.sip.hold = True
        e.load.send_xmpp("phold-1")
        for _ in range(100):
            if "phold-1" in e.load.at_sip:
                break
            await asyncio.sleep(0.05)
        assert "phold-1" in e.load.at_sip
        t0 = time.monotonic()
        e.gw.proc.send_signal(signal.SIGTERM)
        end = await stream_end(e.s, 3)
        took = time.monotonic() - t0
        assert end == "close" and took < 1.0, (end, took, e.gw.log_text()[-2000:])
        assert e.gw.proc.poll() is None
        # A stanza that crossed the close is answered (over the gateway's own
        # stream), a dialback request is not (nothing may follow the closing
        # tag), then the peer closes and the connection ends.
        e.s.send("<db:result from='peer.test' to='sip.test'>0123456789abcdef</db:result>")
        e.load.send_xmpp("pcrossed-1")
        e.s.send("</stream:stream>")
        assert await e.load.outcome_of("pcrossed-1", 5) == ("error", "service-unavailable")
        kind, el = await e.s.next(3)
        assert kind == "eof", (kind, el and el.name)
        log = e.gw.log_text()
        assert "ev=s2s.in.drain " in log and 'reason="peer closed the stream"' in log, log[-2000:]
        assert e.gw.proc.poll() is None  # phold-1 still holds the drain
        e.sip.release()
        rc = await wait_exit(e.gw.proc, 15)
        assert rc == 0, rc
        assert e.load.outcome["phold-1"][0] == "delivered", e.load.outcome
        print(f"drain hand-over: the peer's stream closed {took:.3f}s after SIGTERM", flush=True)


TESTS = [test_drain_hands_peers_over]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "xs-handover-", sys.argv))
