"""Memory per idle inbound s2s stream: starts the real xsgw, opens N inbound
streams from the fake partner peer.test (each from its own loopback address,
so no per-source cap is involved), authenticates every one with dialback
(after STARTTLS with --tls), leaves them idle, and reads the gateway's VmRSS
before and after. Prints one line:

  idle-streams n=N tls=0|1 rss_before_kib=A rss_after_kib=B per_stream_bytes=C

Run it inside a private network namespace (it binds 127.x.y.z addresses):

  tests/gateway/run_in_netns.sh python3 tests/gateway/idle_streams.py -n 1000 [--tls]
      [--xsgw build-rel/xsgw] [--xmpp-extra 'max_streams = {...},']

--xmpp-extra replaces the max_streams the tool sets (room for n streams of
one domain); without max_streams in it the gateway's defaults apply.

The import for the gateway-level test (test_gateway.py) is measure()."""

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from gwlib import (NS_TLS, Gateway, Peer, StreamParser, XStream, dialback_key,  # noqa: E402
                   free_port, header, policy)

WARMUP = 16         # streams opened before the first reading (outbound stream, TLS context...)
CONCURRENCY = 48    # streams being set up at once: below the unauthenticated cap


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def source_addr(i):
    """A distinct loopback address per stream: 127.1.0.1, 127.1.0.2, ..."""
    i += 1
    return f"127.{1 + i // 62500}.{(i // 250) % 250}.{1 + i % 250}"


async def open_idle_stream(peer, gw_port, i, tls):
    """One inbound stream from peer.test, authenticated (type='valid')."""
    r, w = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", gw_port, local_addr=(source_addr(i), 0)), 30)
    s = XStream(r, w)
    s.send(header(peer.domain, "sip.test"))
    kind, h = await s.next(30)
    assert kind == "header", kind
    await s.expect_el("features", 30)
    if tls:
        s.send(f"<starttls xmlns='{NS_TLS}'/>")
        await s.expect_el("proceed", 30)
        await s.w.drain()
        await s.w.start_tls(peer.client_ctx, server_hostname="sip.test")
        s.parser = StreamParser()
        s.send(header(peer.domain, "sip.test"))
        kind, h = await s.next(30)
        assert kind == "header", kind
        await s.expect_el("features", 30)
    k = dialback_key(peer.secret, "sip.test", peer.domain, h.attrs.get("id"))
    s.send(f"<db:result from='{peer.domain}' to='sip.test'>{k}</db:result>")
    el = await s.expect_el("result", 60)
    assert el.attrs.get("type") == "valid", el
    return s


async def open_many(peer, gw_port, first, n, tls):
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(i):
        async with sem:
            return await open_idle_stream(peer, gw_port, i, tls)

    return await asyncio.gather(*(one(first + i) for i in range(n)))


TRIM_AFTER = 2.0   # XS_S2S_TRIM_AFTER: a quiet stream's parser is released after this


async def settle_rss(pid, seconds=1.5):
    """VmRSS once it stops moving (the last streams' set-up has finished and
    the quiet streams' parsers have been released)."""
    await asyncio.sleep(TRIM_AFTER + 0.5)
    last = vm_rss_kib(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        now = vm_rss_kib(pid)
        if now == last:
            break
        last = now
    return last


def heap_stats(pid):
    """With XS_HEAP_STATS=1 in the environment: glibc's malloc_stats() of the
    gateway, written to its log by gdb, to tell heap in use from RSS."""
    if os.environ.get("XS_HEAP_STATS") == "1":
        subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (void)malloc_stats()"],
                       capture_output=True)


async def measure(tmp, n, tls, xmpp_extra="", xsgw=None):
    """Returns (rss_before_kib, rss_after_kib, per_stream_bytes) for n idle
    streams over a gateway started in `tmp`."""
    if xsgw:
        os.environ["XSGW"] = xsgw
    gw_port, sip_port, hop_port, peer_port = free_port(), free_port(), free_port(), free_port()
    # Every stream comes from peer.test: its per-domain share is the total.
    # The gateway needs only the one outbound stream, and the descriptors
    # not given to outbound streams keep the inbound total from shrinking.
    total = n + WARMUP + 64
    limits = f"max_streams = {{ inbound = {total}, outbound = 16, per_domain = {total} }}, "
    gw = Gateway(tmp, policy(gw_port, sip_port, hop_port, peer_port,
                             peer_tls="required" if tls else "optional",
                             xmpp_extra="idle_timeout = 3600, " + (xmpp_extra or limits)))
    gw.start()
    peer = Peer(tmp, gw_port, tls=tls)
    streams = []
    try:
        await peer.start(peer_port)
        streams += await open_many(peer, gw_port, 0, WARMUP, tls)
        before = await settle_rss(gw.proc.pid)
        heap_stats(gw.proc.pid)
        streams += await open_many(peer, gw_port, WARMUP, n, tls)
        after = await settle_rss(gw.proc.pid)
        heap_stats(gw.proc.pid)
        alive = gw.proc.poll() is None
        assert alive, "xsgw died"
        return before, after, (after - before) * 1024 // n
    finally:
        for s in streams:
            s.w.transport.abort()
        await peer.stop()
        gw.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1000, help="idle streams to open (default 1000)")
    ap.add_argument("--tls", action="store_true", help="STARTTLS on every stream")
    ap.add_argument("--xsgw", help="the gateway binary (default build/xsgw)")
    ap.add_argument("--xmpp-extra", default="", help="added to the policy's gateway.xmpp table")
    a = ap.parse_args()
    want = a.n + WARMUP + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        # Only the soft limit: raising the hard one needs CAP_SYS_RESOURCE.
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want), hard))
    with tempfile.TemporaryDirectory(prefix="xsgw-idle-") as tmp:
        before, after, per = asyncio.run(measure(tmp, a.n, a.tls, a.xmpp_extra, a.xsgw))
    print(f"idle-streams n={a.n} tls={int(a.tls)} rss_before_kib={before} rss_after_kib={after} "
          f"per_stream_bytes={per}")


if __name__ == "__main__":
    main()
