"""Stop without losing anything (issue 9, story 5): SIGTERM under two-way
load, and a drain that runs into drain.deadline because the peer never
acknowledges. Every message sent before the signal is counted: delivered,
or answered with an error."""

import asyncio
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from gwlib import run_tests  # noqa: E402
from test_reload_watch import Env  # noqa: E402


def with_deadline(e, seconds):
    e.gw.write_policy(e.text("v1", "never-refused").replace(
        'domains = { "sip.test" },', f'domains = {{ "sip.test" }}, drain = {{ deadline = {seconds} }},'))


async def wait_exit(proc, timeout):
    return await asyncio.get_running_loop().run_in_executor(None, lambda: proc.wait(timeout))


def drain_line(e):
    m = re.search(r"ev=gateway\.drain result=(\w+) delivered=(\d+) bounced=(\d+) answered=(\d+)"
                  r".* seconds=([\d.]+)", e.gw.log_text())
    assert m, e.gw.log_text()[-3000:]
    return m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), float(m.group(5))


async def test_drain_under_load(tmp):
    """SIGTERM while 40 messages a second flow both ways, with the SIP next
    hop holding its answers at that moment so the drain has work in
    flight: messages that arrive during the drain are answered at once
    (service-unavailable; SIP 503 with Retry-After), what was in flight
    finishes, the peer's stream to the gateway ends with </stream:stream> (at
    once: test_drain_handover.py), the gateway's own with system-shutdown, the
    process exits 0
    before the deadline, and every message is delivered or answered."""
    e = Env(tmp)
    with_deadline(e, 10)
    async with e:
        e.load.go(rate=40, seconds=20)
        await asyncio.sleep(2.0)
        e.sip.hold = True
        e.load.send_xmpp("pheld-1")
        for _ in range(100):
            if "pheld-1" in e.load.at_sip:
                break
            await asyncio.sleep(0.05)
        t0 = time.monotonic()
        e.gw.proc.send_signal(signal.SIGTERM)
        e.load.stop()
        sent = len(e.load.sent)
        await asyncio.sleep(0.2)
        e.load.send_xmpp("plate-1")
        e.load.send_sip("plate-2")
        assert await e.load.outcome_of("plate-1", 5) == ("error", "service-unavailable")
        assert await e.load.outcome_of("plate-2", 5) == ("sip", 503)
        assert "retry-after" in e.load.responses["plate-2"]["headers"], e.load.responses["plate-2"]
        assert e.gw.proc.poll() is None
        e.sip.release()
        kind, _ = await e.s.next(15)
        while kind == "el":
            kind, _ = await e.s.next(15)
        assert kind == "close", kind
        rc = await wait_exit(e.gw.proc, 15)
        took = time.monotonic() - t0
        assert rc == 0, rc
        assert took < 10, took
        counts = await e.load.settle(timeout=10)
        assert len(e.load.sent) == sent + 2
        assert counts == {"delivered": sent, "error": 2}, (counts, sent)
        result, delivered, bounced, answered, seconds = drain_line(e)
        assert result == "done" and bounced == 0 and answered == 2, e.gw.log_text()[-3000:]
        assert delivered >= 1, delivered  # pheld-1 at least finished during the drain
        assert "subscriptions=kept" in e.gw.log_text()
        # The gateway's own stream to the peer ended the same way.
        assert e.load.stream_errors == [["system-shutdown"]], e.load.stream_errors
        print(f"drain under load: sent={sent}+2 late {counts} gateway: delivered={delivered} "
              f"bounced={bounced} answered={answered} drain={seconds:.3f}s exit={took:.3f}s",
              flush=True)


async def held_messages_answered(tmp, deadline, second_signal_after=None, result="deadline"):
    """A peer that never acknowledges (stream management on, no <a/>) and a
    SIP next hop that holds its answers: every held message is answered
    with an error, on both sides, when the drain ends (at `deadline`, or at
    a second SIGTERM). Returns the seconds from the first signal to exit."""
    e = Env(tmp)
    with_deadline(e, deadline)
    e.peer_opts = dict(sm_offer=True, sm_mode="ack", sm_ack_delay=None)
    async with e:
        e.sip.hold = True
        for i in range(10):
            e.load.send_sip(f"ls-{i}")
        for i in range(3):
            e.load.send_xmpp(f"lx-{i}")
        for _ in range(200):
            if len(e.load.at_peer) == 10 and len(e.load.at_sip) == 3:
                break
            await asyncio.sleep(0.05)
        assert len(e.load.at_peer) == 10 and len(e.load.at_sip) == 3, (e.load.at_peer, e.load.at_sip)
        await asyncio.sleep(0.5)
        assert all(k == "delivered" and key.startswith("lx") for key, (k, _) in
                   e.load.outcome.items()), e.load.outcome  # all held
        t0 = time.monotonic()
        e.gw.proc.send_signal(signal.SIGTERM)
        if second_signal_after is not None:
            await asyncio.sleep(second_signal_after)
            e.gw.proc.send_signal(signal.SIGTERM)
        rc = await wait_exit(e.gw.proc, deadline + 10)
        took = time.monotonic() - t0
        assert rc == 0, rc
        counts = await e.load.settle(timeout=5)
        assert counts == {"delivered": 0, "error": 13}, (counts, e.load.outcome)
        for i in range(10):
            kind, code = e.load.outcome[f"ls-{i}"]
            assert kind == "sip" and code == 503, (i, kind, code)
            assert "retry-after" in e.load.responses[f"ls-{i}"]["headers"]
        for i in range(3):
            assert e.load.outcome[f"lx-{i}"] == ("error", "service-unavailable"), e.load.outcome
        got, delivered, bounced, answered, seconds = drain_line(e)
        assert got == result and bounced == 13, (got, bounced)
        assert e.load.stream_errors == [["system-shutdown"]], e.load.stream_errors
        return took


async def test_drain_deadline_unacknowledging_peer(tmp):
    """drain.deadline = 2: the process exits within 3 s of SIGTERM."""
    took = await held_messages_answered(tmp, 2)
    assert 2.0 <= took < 3.0, took
    print(f"drain at deadline 2 s: exit after {took:.3f}s", flush=True)


async def test_second_sigterm_ends_drain(tmp):
    """A second SIGTERM during a long drain (deadline 30 s) ends it at once,
    with the same answers as the deadline would give."""
    took = await held_messages_answered(tmp, 30, second_signal_after=0.5, result="cut")
    assert 0.5 <= took < 1.5, took
    print(f"second SIGTERM: exit after {took:.3f}s", flush=True)


TESTS = [test_drain_under_load, test_drain_deadline_unacknowledging_peer,
         test_second_sigterm_ends_drain]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "xs-drain-", sys.argv))
