"""Reload from a watched file (issue 9, story 4): a ConfigMap-style symlink
swap, an editor's rename-write, a broken file, a certificate rotation, and
the debounce; all while messages flow both ways, with every message sent
accounted for (delivered, or answered with an error)."""

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import atexit

sys.path.insert(0, os.path.dirname(__file__))
from gwlib import (REPO, Gateway, Peer, SipEndpoint, XStream, free_port, header,  # noqa: E402
                   policy, run_tests)
from loadlib import Load  # noqa: E402

PKI = None


def pki():
    global PKI
    if PKI is None:
        PKI = tempfile.mkdtemp(prefix="xs-watch-pki-")
        atexit.register(shutil.rmtree, PKI, True)
        subprocess.run([os.path.join(REPO, "tests", "tls", "make_test_pki.sh"), PKI, "sip.test"],
                       check=True, capture_output=True)
    return PKI


def hook(tag, refuse):
    """A policy generation that tags every body with [tag] and refuses
    bodies that contain `refuse`."""
    return f"""
function on_message(m)
  if m.body:find("{refuse}", 1, true) then
    return reject("policy-violation", "refused by {tag}")
  end
  m.body = m.body .. " [{tag}]"
  return m
end"""


class Env:
    def __init__(self, tmp, tls_files=None):
        self.tmp = tmp
        self.gw_port, self.sip_port = free_port(), free_port()
        self.next_hop_port, self.peer_port = free_port(), free_port()
        self.tls_files = tls_files
        self.peer_opts = {}  # Peer attributes set before any stream exists
        self.gw = Gateway(tmp, self.text("v1", "alpha"))

    def text(self, tag, refuse):
        t = policy(self.gw_port, self.sip_port, self.next_hop_port, self.peer_port,
                   hook=hook(tag, refuse))
        if self.tls_files:
            cert, key = self.tls_files
            t = t.replace('domains = { "sip.test" },',
                          f'domains = {{ "sip.test" }}, tls = {{ cert = "{cert}", key = "{key}" }},')
        return t

    async def __aenter__(self):
        self.sip = self.uac = self.peer = None
        self.gw.start()
        loop = asyncio.get_running_loop()
        self.sip = SipEndpoint()
        await loop.create_datagram_endpoint(lambda: self.sip,
                                            local_addr=("127.0.0.1", self.next_hop_port))
        self.uac = SipEndpoint()
        await loop.create_datagram_endpoint(lambda: self.uac, local_addr=("127.0.0.1", 0))
        self.peer = Peer(self.tmp, self.gw_port)
        for k, v in self.peer_opts.items():
            setattr(self.peer, k, v)
        await self.peer.start(self.peer_port)
        self.s = await self.peer.authenticated_stream()
        self.load = Load(self, self.s)
        self.load.start_collecting()
        return self

    async def __aexit__(self, *exc):
        if getattr(self, "load", None):
            await self.load.close()
        if self.peer is not None:
            await self.peer.stop()
        for ep in (self.sip, self.uac):
            if ep is not None and ep.transport is not None:
                ep.transport.close()
        rc = self.gw.stop()
        if exc[0] is None and rc not in (0, None):
            raise AssertionError(f"xsgw exited with {rc} on SIGTERM")

    def reloads(self, start=0):
        return self.gw.count_log(r"ev=policy\.reload .*result=(ok|rejected)", start)

    def mark(self):
        return len(self.gw.log_text())

    async def wait_reload(self, result, mark, timeout=10):
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.gw.wait_log(rf"ev=policy\.reload .*result={result}", timeout, mark))

    async def probe(self, key, body):
        """One message XMPP -> SIP: its outcome."""
        self.load.send_xmpp(key, body)
        return await self.load.outcome_of(key)


async def rules_swap(e, write):
    """Common to (a) and (b): under load, v1 refuses "alpha"; `write` puts
    v2 (refusing "beta") in place; after the watched reload "alpha" passes,
    "beta" is refused, and every message has its outcome."""
    k, d = await e.probe("pa-1", "pa-1 alpha")
    assert k == "error" and d == "policy-violation", (k, d)
    e.load.go(rate=20, seconds=20)
    await asyncio.sleep(1.0)
    mark = e.mark()
    write(e.text("v2", "beta"))
    await e.wait_reload("ok", mark)
    log = e.gw.log_text()[mark:]
    assert "ev=policy.watch changed=" in log and "result=reloaded" in log, log
    await asyncio.sleep(1.0)
    e.load.stop()
    k, d = await e.probe("pb-1", "pb-1 beta")
    assert k == "error" and d == "policy-violation", (k, d)
    k, d = await e.probe("pa-2", "pa-2 alpha")
    assert k == "delivered" and d == "pa-2 alpha [v2]", (k, d)
    counts = await e.load.settle()
    assert counts["delivered"] == len(e.load.sent) - 2, (counts, len(e.load.sent))
    # Messages before the reload carry [v1], after it [v2]; none is lost.
    tags = {b.rsplit(" ", 1)[-1] for b in list(e.load.at_sip.values()) + list(e.load.at_peer.values())}
    assert tags == {"[v1]", "[v2]"}, tags
    assert e.reloads(mark) == 1, e.gw.log_text()[mark:]
    return counts


async def test_configmap_symlink_swap(tmp):
    """(a) The mounted directory of a ConfigMap: policy.lua -> ..data/policy.lua,
    ..data -> ..2026_a; the update writes ..2026_b and renames a new ..data
    symlink over the old one, then removes ..2026_a."""
    cm = os.path.join(tmp, "cm")
    os.makedirs(os.path.join(cm, "..2026_a"))
    e = Env(tmp)
    with open(os.path.join(cm, "..2026_a", "policy.lua"), "w") as f:
        f.write(e.text("v1", "alpha"))
    os.symlink("..2026_a", os.path.join(cm, "..data"))
    os.symlink("..data/policy.lua", os.path.join(cm, "policy.lua"))
    e.gw.policy = os.path.join(cm, "policy.lua")

    def swap(text):
        os.makedirs(os.path.join(cm, "..2026_b"))
        with open(os.path.join(cm, "..2026_b", "policy.lua"), "w") as f:
            f.write(text)
        os.symlink("..2026_b", os.path.join(cm, "..data_tmp"))
        os.rename(os.path.join(cm, "..data_tmp"), os.path.join(cm, "..data"))
        shutil.rmtree(os.path.join(cm, "..2026_a"))

    async with e:
        counts = await rules_swap(e, swap)
        print(f"configmap swap under load: {counts}", flush=True)


async def test_editor_rename_write(tmp):
    """(b) An editor writes a temporary file and renames it over the policy."""
    e = Env(tmp)

    def rename_write(text):
        t = os.path.join(tmp, ".policy.lua.swp")
        with open(t, "w") as f:
            f.write(text)
        os.rename(t, e.gw.policy)

    async with e:
        counts = await rules_swap(e, rename_write)
        print(f"rename-write under load: {counts}", flush=True)


async def test_broken_file_keeps_policy(tmp):
    """(c) A broken policy is rejected; the running one keeps routing, the
    failure is in the log; the next (good) change is taken."""
    e = Env(tmp)
    async with e:
        e.load.go(rate=20, seconds=20)
        await asyncio.sleep(0.5)
        mark = e.mark()
        with open(e.gw.policy, "w") as f:
            f.write(e.text("v2", "beta") + "\ngateway { this is not lua\n")
        await e.wait_reload("rejected", mark)
        log = e.gw.log_text()[mark:]
        assert "kept=previous" in log and "result=rejected" in log, log
        assert "ev=policy.watch" in log and "result=rejected" in log, log
        k, d = await e.probe("pa-1", "pa-1 alpha")
        assert k == "error" and d == "policy-violation", (k, d)  # still v1
        k, d = await e.probe("pb-1", "pb-1 beta")
        assert k == "delivered" and d == "pb-1 beta [v1]", (k, d)
        mark2 = e.mark()
        with open(e.gw.policy, "w") as f:
            f.write(e.text("v2", "beta"))
        await e.wait_reload("ok", mark2)
        await asyncio.sleep(0.5)
        e.load.stop()
        k, d = await e.probe("pa-2", "pa-2 alpha")
        assert k == "delivered" and d == "pa-2 alpha [v2]", (k, d)
        counts = await e.load.settle()
        assert counts["delivered"] == len(e.load.sent) - 1, (counts, len(e.load.sent))
        assert e.reloads(mark) == 2, e.gw.log_text()[mark:]
        print(f"broken file under load: {counts}", flush=True)


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


async def presented_cert(e):
    s = await e.peer.open_stream("sip.test")
    der = s.w.get_extra_info("ssl_object").getpeercert(binary_form=True)
    await s.close()
    return der


async def test_certificate_rotation(tmp):
    """(d) gateway.tls cert and key replaced in place, one after the other:
    one reload, and the next TLS handshake presents the new certificate."""
    p = pki()
    cert, key = os.path.join(tmp, "gw.pem"), os.path.join(tmp, "gw.key")
    shutil.copy(os.path.join(p, "sip.test.pem"), cert)
    shutil.copy(os.path.join(p, "sip.test.key"), key)
    e = Env(tmp, tls_files=(cert, key))
    async with e:
        assert await presented_cert(e) == der_of(os.path.join(p, "sip.test.pem"))
        e.load.go(rate=20, seconds=20)
        await asyncio.sleep(0.5)
        mark = e.mark()
        # The way a renewal tool writes them: the certificate, then the key.
        shutil.copy(os.path.join(p, "sip.test-self.pem"), cert)
        await asyncio.sleep(0.1)
        shutil.copy(os.path.join(p, "sip.test-self.key"), key)
        await e.wait_reload("ok", mark)
        await asyncio.sleep(0.5)
        assert e.reloads(mark) == 1, e.gw.log_text()[mark:]
        assert await presented_cert(e) == der_of(os.path.join(p, "sip.test-self.pem"))
        e.load.stop()
        counts = await e.load.settle()
        assert counts["delivered"] == len(e.load.sent), (counts, len(e.load.sent))
        print(f"certificate rotation under load: {counts}", flush=True)


async def test_debounce_one_reload(tmp):
    """(e) Five writes within 100 ms: exactly one reload."""
    e = Env(tmp)
    async with e:
        mark = e.mark()
        for i in range(5):
            with open(e.gw.policy, "w") as f:
                f.write(e.text(f"w{i}", "alpha"))
            await asyncio.sleep(0.02)
        await e.wait_reload("ok", mark)
        await asyncio.sleep(1.5)
        assert e.reloads(mark) == 1, e.gw.log_text()[mark:]
        assert e.gw.count_log(r"ev=policy\.watch changed=.*result=reloading", mark) == 1
        k, d = await e.probe("pb-1", "pb-1 x")
        assert k == "delivered" and d == "pb-1 x [w4]", (k, d)
        # An event that changes nothing (touching another file in the
        # directory, rewriting nothing) reloads nothing.
        with open(os.path.join(tmp, "unrelated.txt"), "w") as f:
            f.write("x")
        await asyncio.sleep(1.0)
        assert e.reloads(mark) == 1


async def test_watch_off_and_sighup(tmp):
    """reload.watch = false: a change is not picked up by itself; SIGHUP
    still reloads."""
    e = Env(tmp)
    off = lambda t: t.replace('domains = { "sip.test" },',  # noqa: E731
                              'domains = { "sip.test" }, reload = { watch = false },')
    e.gw.write_policy(off(e.text("v1", "alpha")))
    async with e:
        assert "ev=policy.watch" not in e.gw.log_text()
        mark = e.mark()
        e.gw.write_policy(off(e.text("v2", "beta")))
        await asyncio.sleep(1.5)
        assert e.reloads(mark) == 0
        k, d = await e.probe("pa-1", "pa-1 alpha")
        assert k == "error", (k, d)
        assert "result=ok" in e.gw.reload()
        k, d = await e.probe("pa-2", "pa-2 alpha")
        assert k == "delivered" and d == "pa-2 alpha [v2]", (k, d)


async def test_json_log_follows_reload(tmp):
    """log.format = "json" taken from the policy on a watched reload: every
    line after it is one JSON object with the text line's fields (quoted
    values unescaped); back to "text" on the next reload."""
    e = Env(tmp)
    js = lambda t: t.replace('domains = { "sip.test" },',  # noqa: E731
                             'domains = { "sip.test" }, log = { format = "json" },')
    async with e:
        mark = e.mark()
        e.gw.write_policy(js(e.text("v2", "alpha")))
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: e.gw.wait_log(r'"ev":"policy\.reload"', 10, mark))
        k, d = await e.probe("pb-1", 'pb-1 say "hi" = \\ ok')
        assert k == "delivered", (k, d)
        k, d = await e.probe("pa-1", "pa-1 alpha")
        assert k == "error", (k, d)
        mark2 = e.mark()
        e.gw.write_policy(e.text("v3", "alpha"))
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: e.gw.wait_log(r"ev=policy\.reload .*result=ok", 10, mark2))
        text = e.gw.log_text()
        json_part = text[text.index('{"ts"', mark):mark2]
        lines = [json.loads(x) for x in json_part.splitlines() if x]
        assert all(set(("ts", "level", "ev")) <= set(o) for o in lines), lines[:3]
        reload = [o for o in lines if o["ev"] == "policy.reload"]
        assert reload and reload[0]["result"] == "ok" and reload[0]["generation"] == "2", reload
        refused = [o for o in lines if o["ev"] == "router.refused"]
        assert refused and refused[0]["cond"] == "policy-violation", refused
        assert refused[0]["text"] == "refused by v2", refused
        # Back to text after the next reload.
        after = text[mark2:].splitlines()
        assert any(x.startswith("ts=") and "ev=policy.reload" in x for x in after), after[:5]


TESTS = [test_configmap_symlink_swap, test_editor_rename_write, test_broken_file_keeps_policy,
         test_certificate_rotation, test_debounce_one_reload, test_watch_off_and_sighup,
         test_json_log_follows_reload]

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "xs-watch-", sys.argv))
