"""The admin listener of a running gateway (issue 9): /metrics scraped and
parsed with the Prometheus client library's own parser, its counters
compared with what the test sent; /status.json and /status (rendered by
headless Chromium, screenshot kept) showing the partner's streams;
/healthz and /readyz; hostile HTTP that leaves the gateway serving.
Run inside run_in_netns.sh."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwlib import Gateway, free_port, message, policy, run_tests  # noqa: E402
from test_gateway import Env, expect_nothing, get  # noqa: E402

ARTIFACTS = os.environ.get("XS_ARTIFACTS", os.getcwd())


class AdminEnv(Env):
    def __init__(self, tmp, **kw):
        super().__init__(tmp, **kw)
        self.admin_port = free_port()
        self.policy_args["admin_port"] = self.admin_port
        self.gw.write_policy(self.policy_text())

    def http(self, path, method="GET", timeout=10):
        """(status, headers, body text) of one request to the admin listener."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    async def ahttp(self, path, **kw):
        return await asyncio.to_thread(self.http, path, **kw)

    async def metrics(self):
        status, headers, body = await self.ahttp("/metrics")
        assert status == 200, (status, body)
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
        samples = {}
        for fam in text_string_to_metric_families(body):
            for s in fam.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples


def sample(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def msgs(samples, partner, direction, outcome, condition="none"):
    return sample(samples, "xsgw_messages_total", partner=partner, direction=direction,
                  outcome=outcome, condition=condition)


async def test_metrics_count_what_was_sent(tmp):
    async with AdminEnv(tmp) as e:
        s = await e.peer.authenticated_stream()
        # XMPP -> SIP: 4 delivered, then 2 the SIP side refuses with 404.
        for i in range(4):
            s.send(message("alice@peer.test/phone", "bob@sip.test", f"x{i}", mid=f"x{i}"))
            await get(e.sip.requests)
        e.sip.code = 404
        for i in range(2):
            s.send(message("alice@peer.test/phone", "nobody@sip.test", "?", mid=f"n{i}"))
            await get(e.sip.requests)
            err = await get(e.peer.received, 20)
            assert err.attrs.get("type") == "error", err
        e.sip.code = 200
        # SIP -> XMPP: 3 delivered, 2 to a domain that is no partner (refused).
        for i in range(3):
            e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", f"s{i}")
            await get(e.peer.received, 20)
            resp = await get(e.uac.responses, 20)
            assert resp["code"] == 200, resp
        for i in range(2):
            e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:eve@stranger.test", "no")
            resp = await get(e.uac.responses, 20)
            assert resp["code"] >= 400, resp
        # Outcomes of XMPP -> SIP messages without an error come after the
        # error grace; wait until every one is counted.
        deadline = time.monotonic() + 10
        while True:
            m = await e.metrics()
            if msgs(m, "peer.test", "xmpp_to_sip", "delivered") >= 4 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert msgs(m, "peer.test", "xmpp_to_sip", "delivered") == 4, m
        assert msgs(m, "peer.test", "xmpp_to_sip", "bounced", "item-not-found") == 2, \
            {k: v for k, v in m.items() if k[0] == "xsgw_messages_total"}
        assert msgs(m, "peer.test", "sip_to_xmpp", "delivered") == 3, m
        refused = sum(v for (n, l), v in m.items() if n == "xsgw_messages_total"
                      and dict(l).get("direction") == "sip_to_xmpp"
                      and dict(l).get("outcome") == "refused")
        assert refused == 2, {k: v for k, v in m.items() if k[0] == "xsgw_messages_total"}
        # Nothing counted that was not sent, and no label names a user.
        total = sum(v for (n, _), v in m.items() if n == "xsgw_messages_total")
        assert total == 11, total
        for (n, labels), _ in m.items():
            for _, v in labels:
                assert "@" not in v and "stranger" not in v, (n, labels)
        # Latency: every delivered or bounced XMPP -> SIP message observed once.
        assert sample(m, "xsgw_outcome_seconds_count", direction="xmpp_to_sip") == 6, m
        # The streams with the partner, by direction, established, over TLS, by dialback.
        est = {dict(l)["direction"]: v for (n, l), v in m.items() if n == "xsgw_streams"
               and dict(l).get("partner") == "peer.test" and dict(l).get("state") == "established"}
        assert est.get("in", 0) >= 1 and est.get("out", 0) >= 1, est
        for (n, l), v in m.items():
            if n == "xsgw_streams" and v and dict(l).get("state") == "established":
                assert dict(l)["auth"] == "dialback" and dict(l)["tls"].startswith("TLSv1"), l
        assert sample(m, "xsgw_policy_generation") == 1, m
        await s.close()


async def test_status_shows_partner_streams(tmp):
    async with AdminEnv(tmp) as e:
        s = await e.peer.authenticated_stream()
        s.send(message("alice@peer.test/phone", "bob@sip.test", "hi", mid="st1"))
        await get(e.sip.requests)
        e.uac.send_message(e.sip_port, "sip:bob@sip.test", "sip:alice@peer.test", "back")
        await get(e.peer.received, 20)
        # /readyz waits for the next hop's answer; the status page then has it.
        assert (await e.ahttp("/readyz"))[0] == 200
        status, headers, body = await e.ahttp("/status.json")
        assert status == 200 and headers["Content-Type"] == "application/json", (status, headers)
        import json
        doc = json.loads(body)
        assert doc["policy"]["path"] == e.gw.policy, doc["policy"]
        assert len(doc["policy"]["sha256"]) == 64 and doc["policy"]["generation"] == 1, doc
        partners = {p["domain"]: p for p in doc["partners"]}
        assert set(partners) == {"peer.test"}, partners
        dirs = sorted(st["direction"] for st in partners["peer.test"]["streams"])
        assert dirs == ["in", "out"], partners
        for st in partners["peer.test"]["streams"]:
            assert st["state"] == "established" and st["auth"] == "dialback", st
            assert st["tls"].startswith("TLSv1") and st["peer"].startswith("127.0.0.1:"), st
            assert st["remote"] == "peer.test" and st["local"] == "sip.test", st
        assert doc["sip"]["next_hop"] == f"udp:127.0.0.1:{e.next_hop_port}", doc["sip"]
        assert doc["sip"]["state"] == "reachable", doc["sip"]

        # A reload that fails shows on the page and in the metrics.
        # Its error text quotes the file, markup and quotes included: the
        # page and the JSON carry it escaped.
        hostile = "<script>alert('x')</script>&\"<b>"
        e.gw.write_policy('gateway { x = 1 "' + hostile.replace('"', '\\"') + '" }')
        out = e.gw.reload()
        assert "result=rejected" in out, out
        doc = json.loads((await e.ahttp("/status.json"))[2])
        assert doc["policy"]["last_reload"]["result"] == "rejected", doc["policy"]
        assert hostile in doc["policy"]["last_reload"]["error"], doc["policy"]
        assert doc["policy"]["reloads_failed"] == 1 and doc["policy"]["generation"] == 1, doc
        m = await e.metrics()
        assert sample(m, "xsgw_policy_reloads_total", result="rejected") == 1, m

        # The HTML page in a real browser, without JavaScript.
        status, headers, html = await e.ahttp("/status")
        assert status == 200 and headers["Content-Type"].startswith("text/html"), headers
        assert "<script" not in html.lower() and "<b>" not in html, html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;" in html, html
        chromium = shutil.which("chromium")
        if not chromium:
            if os.environ.get("XS_IT_REQUIRE") == "1":
                raise AssertionError("chromium is not installed (scripts/deps.sh test)")
            print("SKIP chromium: not installed")
            return
        shot = os.path.join(ARTIFACTS, "admin-status.png")
        url = f"http://127.0.0.1:{e.admin_port}/status"
        base = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-dev-shm-usage", f"--user-data-dir={tmp}/chromium",
                "--disable-javascript"]
        dom = await run_bounded(base + ["--dump-dom", url], 60)
        assert 'data-domain="peer.test"' in dom, dom[-2000:]
        rows = dom.count('class="stream" data-remote="peer.test"')
        assert rows == 2, dom[-3000:]
        assert "reload error" in dom and "rejected" in dom, dom[-3000:]
        assert "<script" not in dom.lower() and "&lt;script&gt;" in dom, dom[-3000:]
        await run_bounded(base + ["--window-size=420,1200", f"--screenshot={shot}", url], 60)
        assert os.path.getsize(shot) > 1000, shot
        print(f"status page screenshot (narrow screen): {shot}")
        await s.close()


async def run_bounded(argv, seconds):
    """Runs argv, killing it by PID if it outlives `seconds`; its stdout."""
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE,
                                                stderr=subprocess.DEVNULL,
                                                start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds)
    except asyncio.TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise AssertionError(f"{argv[0]} did not finish in {seconds} s")
    return out.decode(errors="replace")


async def test_health_and_readiness(tmp):
    async with AdminEnv(tmp) as e:
        assert (await e.ahttp("/healthz"))[:1] == (200,)
        assert (await e.ahttp("/healthz"))[2] == "ok\n"
        # The next hop answers OPTIONS: ready.
        status, _, body = await e.ahttp("/readyz")
        assert (status, body) == (200, "ready\n"), (status, body)
        opts = [r for r in drain(e.sip.requests) if r["method"] == "OPTIONS"]
        assert len(opts) == 1, opts
        # A fresh answer is reused: no second OPTIONS within the window.
        assert (await e.ahttp("/readyz"))[0] == 200
        assert not [r for r in drain(e.sip.requests) if r["method"] == "OPTIONS"]
        # The next hop goes away: not ready once the answer is stale.
        e.sip.transport.close()
        await asyncio.sleep(5.2)
        status, _, body = await e.ahttp("/readyz")
        assert status == 503 and body.startswith("not ready: the SIP next hop"), (status, body)
        # Unknown paths and methods.
        assert (await e.ahttp("/nope"))[0] == 404
        assert (await e.ahttp("/status", method="POST"))[0] == 405
        assert (await e.ahttp("/metrics", method="HEAD"))[0] == 200


def drain(q):
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items


def raw(port, data, read=True, timeout=5):
    """Sends bytes on a fresh connection; the whole answer until close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            try:
                chunk = c.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


async def test_hostile_http_leaves_it_serving(tmp):
    async with AdminEnv(tmp) as e:
        p = e.admin_port
        cases = [
            (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", b"HTTP/1.1 431 "),
            (b"GET /" + b"p" * 300 + b" HTTP/1.1\r\n\r\n", b"HTTP/1.1 414 "),
            (b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", b"HTTP/1.1 405 "),
            (b"GET /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", b"HTTP/1.1 413 "),
            (b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             b"HTTP/1.1 413 "),
            (b"\x00\x01\x02 garbage\r\n\r\n", b"HTTP/1.1 400 "),
            (b"GET /he\x00lthz HTTP/1.1\r\n\r\n", b"HTTP/1.1 400 "),
            (b"GET http://evil/healthz HTTP/1.1\r\n\r\n", b"HTTP/1.1 400 "),
            # Pipelined: one answer, then the connection closes.
            (b"GET /healthz HTTP/1.1\r\n\r\n" * 1000, b"HTTP/1.1 200 "),
        ]
        for data, want in cases:
            got = await asyncio.to_thread(raw, p, data)
            assert got.startswith(want), (data[:60], got[:200])
            assert got.count(b"HTTP/1.1 ") == 1, got[:500]
        # Truncated heads and silent connections: over the cap the newest
        # are closed at once; the gateway answers again once they are gone.
        socks = []
        for _ in range(40):
            c = socket.create_connection(("127.0.0.1", p))
            c.sendall(b"GET /heal")
            socks.append(c)
        await asyncio.sleep(0.5)
        closed = 0
        for c in socks:
            c.setblocking(False)
            try:
                closed += c.recv(1) == b""
            except (BlockingIOError, ConnectionResetError) as ex:
                closed += isinstance(ex, ConnectionResetError)
        assert closed == 8, closed
        for c in socks:
            c.close()
        await asyncio.sleep(0.3)
        assert (await e.ahttp("/healthz"))[0] == 200
        e.gw.wait_log(r"ev=admin\.refused")
        # Messages still flow.
        s = await e.peer.authenticated_stream()
        s.send(message("alice@peer.test/phone", "bob@sip.test", "still", mid="after"))
        req = await get(e.sip.requests)
        assert req["body"] == b"still", req
        await expect_nothing(e.peer.received, 0.3)
        await s.close()


async def test_readyz_draining(tmp):
    """Once SIGTERM starts a drain, /readyz answers 503 draining while the
    loop (and /healthz) still answers: here a message waits on a next hop
    that no longer answers, so the drain lasts."""
    async with AdminEnv(tmp) as e:
        assert (await e.ahttp("/readyz"))[0] == 200
        e.sip.transport.close()
        s = await e.peer.authenticated_stream()
        s.send(message("alice@peer.test/phone", "bob@sip.test", "held", mid="held"))
        e.gw.wait_log(r"ev=router\.in .*origin=xmpp")
        mark = len(e.gw.log_text())
        e.gw.proc.send_signal(signal.SIGTERM)
        e.gw.wait_log(r"ev=gateway\.drain result=started .*in_flight=1 ", start=mark)
        assert e.gw.count_log(r"ev=gateway\.drain result=done", start=mark) == 0
        status, _, body = await e.ahttp("/readyz")
        assert (status, body) == (503, "not ready: draining\n"), (status, body)
        assert (await e.ahttp("/healthz"))[:1] == (200,)
        doc = __import__("json").loads((await e.ahttp("/status.json"))[2])
        assert doc["policy"]["generation"] == 1, doc


async def test_admin_port_in_use_fails_the_start(tmp):
    """A bind that fails stops the start with a clear line and an exit
    status, not a crash, and nothing else is left serving."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        gw = Gateway(tmp, policy(free_port(), free_port(socket.SOCK_DGRAM),
                                 free_port(socket.SOCK_DGRAM), free_port(), admin_port=port))
        try:
            gw.start()
            raise AssertionError("the gateway started with its admin port in use")
        except AssertionError as ex:
            if "started with" in str(ex):
                raise
        rc = await asyncio.to_thread(gw.proc.wait, 10)
        assert rc > 0, rc  # an exit status; a signal would be negative
        log = gw.log_text()
        assert f"ev=admin.listen addr=127.0.0.1 port={port} result=failed" in log, log[-2000:]
        assert "ev=gateway.ready" not in log, log[-2000:]
    finally:
        busy.close()


TESTS = [test_metrics_count_what_was_sent, test_status_shows_partner_streams,
         test_health_and_readiness, test_hostile_http_leaves_it_serving,
         test_readyz_draining, test_admin_port_in_use_fails_the_start]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "xsgw-admin-", sys.argv))
