#!/usr/bin/env python3
"""xsprbench: presence load through the real gateway (issue 7, RFC 8048).

The tool plays the XMPP server peer.test (the fake peer of the gateway
tests: its own s2s streams, dialback both ways) and the SIP side (the next
hop as presence server, and a watcher's UA). N XMPP users subscribe to N SIP
users and N SIP users subscribe to N XMPP users, paced; then every watched
user changes state once per T seconds, spread by the clock; then all change
at once (the storm). It reports subscriptions held, memory per
subscription, NOTIFYs and presence stanzas per second, delivery latency,
loss, the gateway's CPU, and how the gateway spreads its refreshes.

Directions: x2s is a state the SIP presence server NOTIFYs (note text
"s<i>-<k>") arriving at the XMPP watcher as <status>; s2x is a presence the
XMPP user sends (status "x<i>-<k>") arriving at the SIP watcher in a NOTIFY.
The gateway as notifier may coalesce s2x states: only the latest state per
subscription must arrive, an earlier one that never came is "superseded",
not lost. Every x2s state must arrive.

The tool is Python on the same two cores as the gateway: its own cost sets
the rates it can offer; it prints its own CPU next to the gateway's.

usage: run_in_netns.sh python3 xsprbench.py --xsgw PATH [-n N] [--period T] ...
Exit 0: nothing lost; 1: something lost or a set-up incomplete; 2: usage.
"""
import argparse
import asyncio
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))
from gwlib import Gateway, Peer, free_port, parse_sip, policy  # noqa: E402

PIDF = ("<?xml version='1.0' encoding='UTF-8'?>"
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' "
        "xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' entity='{entity}'>"
        "<tuple id='t1'><status><basic>open</basic></status></tuple>"
        "<dm:person id='p1'><dm:note xml:lang='en'>{note}</dm:note></dm:person></presence>")
STATE_RE = re.compile(r"\b([sx])(\d+)-(\d+)\b")
# A socket buffer big enough for a storm of 10,000 datagrams the tool reads
# a little late; the kernel caps it at net.core.rmem_max.
SOCK_BUF = 32 << 20


def now():
    return time.monotonic()


def proc_kb(pid, field="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return -1


def proc_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])


def udp_drops():
    """Datagrams the kernel dropped for a full receive buffer, in this
    network namespace (the gateway's and the tool's sockets alike)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(v, q):
    if not v:
        return 0.0
    return v[min(len(v) - 1, int(q * len(v)))]


class BenchGateway(Gateway):
    """The gateway of the tests at log level info: debug lines for every
    stanza would cost the gateway more than the presence it carries."""

    def start(self):
        binary = self.binary
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([binary, "--policy", self.policy, "--lua-dir",
                                      self.lua_dir, "--state-dir", self.state,
                                      "--log-level", "info"],
                                     stderr=self.logf, stdout=self.logf)
        self.wait_log("ev=gateway.ready", timeout=30)


class Dir:
    """States of one direction: send and arrival times per (user, k)."""

    def __init__(self, name, n):
        self.name = name
        self.sent = {}           # (i, k) -> send time
        self.arrived = {}        # (i, k) -> first arrival time
        self.last_sent = [-1] * n
        # A state seen again: a NOTIFY after a refresh repeats the current one.
        self.dups = 0
        self.stray = 0
        self.per_sec_out = {}    # second -> stanzas or NOTIFYs carrying a state
        self.lat = []

    def send(self, i, k, t):
        self.sent[(i, k)] = t
        self.last_sent[i] = k

    def arrive(self, i, k, t, t0):
        key = (i, k)
        if key not in self.sent:
            self.stray += 1
            return
        self.per_sec_out[int(t - t0)] = self.per_sec_out.get(int(t - t0), 0) + 1
        if key in self.arrived:
            self.dups += 1
            return
        self.arrived[key] = t
        self.lat.append(t - self.sent[key])

    def fates(self, since_k=0, coalescing=False):
        """(states, lost, superseded) for the states with k >= since_k."""
        latest_arrived = {}
        for (i, k) in self.arrived:
            latest_arrived[i] = max(latest_arrived.get(i, -1), k)
        states = lost = superseded = 0
        for (i, k) in self.sent:
            if k < since_k:
                continue
            states += 1
            if (i, k) in self.arrived:
                continue
            if coalescing and latest_arrived.get(i, -1) > k:
                superseded += 1
            else:
                lost += 1
        return states, lost, superseded

    def missing_latest(self):
        return sum(1 for i, k in enumerate(self.last_sent) if k >= 0 and (i, k) not in self.arrived)


class Bench:
    def __init__(self, o, env_tmp):
        self.o, self.tmp = o, env_tmp
        self.n = o.n
        self.gw_port, self.sip_port = free_port(), free_port()
        self.hop_port, self.peer_port = free_port(), free_port()
        self.x2s = Dir("x2s", o.n)   # SIP NOTIFY -> XMPP presence
        self.s2x = Dir("s2x", o.n)   # XMPP presence -> SIP NOTIFY
        # x2s: the gateway's SUBSCRIBE dialogs to our presence server, by user.
        self.x2s_dlg = [None] * o.n
        self.x2s_subscribed = 0      # <presence type='subscribed'/> the watcher got
        # s2x: our watchers' dialogs with the gateway.
        self.s2x_dlg = [None] * o.n
        self.s2x_accepted = 0        # 202 to our SUBSCRIBE
        self.s2x_asked = 0           # <presence type='subscribe'/> the XMPP side got
        self.refresh_secs = {}       # second since set-up start -> refresh SUBSCRIBEs
        self.refreshes = 0
        self.answers = {}            # non-2xx answers to what we sent, by code
        # Our NOTIFYs awaiting an answer, (call-id, cseq) -> [datagram, last
        # send, interval, first send]: resent over UDP as RFC 3261 timer E does.
        self.notify_out = {}
        self.notify_rtx = 0
        self.other = {}              # what else arrived, by kind
        self.t0 = now()
        self.tool_errors = 0

    # --- SIP: one socket as next hop (presence server, watcher proxy), one as the UA.
    def policy(self):
        o = self.o
        pres = (f"presence = {{ expires = {o.expires}, min_expires = {min(o.expires, 10)}, "
                f"max_expires = {max(o.expires, 120)}, max_per_user = 10, "
                f"max_per_domain = 20000, max_total = 100000 }},")
        text = policy(self.gw_port, self.sip_port, self.hop_port, self.peer_port)
        return text.replace('domains = { "sip.test" },',
                            'domains = { "sip.test" }, ' + pres, 1)

    def sip_answer(self, sock, req, addr, code, reason, extra="", to_tag=None):
        h = req["headers"]
        to = h["to"][0]
        if ";tag=" not in to and to_tag:
            to += f";tag={to_tag}"
        resp = (f"SIP/2.0 {code} {reason}\r\n" + "".join(f"Via: {v}\r\n" for v in h["via"])
                + f"From: {h['from'][0]}\r\nTo: {to}\r\nCall-ID: {h['call-id'][0]}\r\n"
                f"CSeq: {h['cseq'][0]}\r\n{extra}Content-Length: 0\r\n\r\n")
        sock.sendto(resp.encode(), addr)

    def sip_request(self, sock, method, ruri, frm, to, call_id, cseq, extra="", body=b""):
        port = sock.get_extra_info("sockname")[1]
        self.branch = getattr(self, "branch", 0) + 1
        head = (f"{method} {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKpr{self.branch};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: {frm}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
                f"CSeq: {cseq} {method}\r\nContact: <sip:ua@127.0.0.1:{port}>\r\n{extra}")
        if body:
            head += "Content-Type: application/pidf+xml\r\n"
        data = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        sock.sendto(data, ("127.0.0.1", self.sip_port))
        return data

    def on_hop(self, data, addr):
        m = parse_sip(data)
        if "code" in m:
            self.on_response(m)
            return
        h, t = m["headers"], now()
        meth = m["method"]
        if meth == "SUBSCRIBE":
            # A refresh goes to the Contact of our NOTIFYs: the To names the user.
            i = user_index(re.search(r"<([^>]+)>", h["to"][0]).group(1), "sp")
            if i is None:
                self.other["subscribe-unknown"] = self.other.get("subscribe-unknown", 0) + 1
                self.sip_answer(self.hop, m, addr, 404, "Not Found")
                return
            exp = h.get("expires", ["60"])[0]
            if ";tag=" in h["to"][0]:
                self.refreshes += 1
                sec = int(t - self.t0)
                self.refresh_secs[sec] = self.refresh_secs.get(sec, 0) + 1
                self.sip_answer(self.hop, m, addr, 200, "OK", f"Expires: {exp}\r\n")
                return
            self.sip_answer(self.hop, m, addr, 202, "Accepted",
                            f"Contact: <sip:sp{i}@127.0.0.1:{self.hop_port}>\r\n"
                            f"Expires: {self.o.expires}\r\n", f"p{i}")
            contact = re.search(r"<([^>]+)>", h["contact"][0]).group(1)
            self.x2s_dlg[i] = {"call_id": h["call-id"][0], "contact": contact, "cseq": 0,
                               "from": h["from"][0]}
            self.send_notify(i, 0)
        elif meth == "NOTIFY":
            self.sip_answer(self.hop, m, addr, 200, "OK")
            body = m["body"].decode("utf-8", "replace")
            for d, i, k in STATE_RE.findall(body):
                if d == "x":
                    self.s2x.arrive(int(i), int(k), t, self.t0)
        else:
            self.sip_answer(self.hop, m, addr, 200, "OK")

    def on_response(self, m):
        code = m["code"]
        method = m["headers"]["cseq"][0].split()[-1]
        if code >= 300:
            key = f"{method} {code}"
            self.answers[key] = self.answers.get(key, 0) + 1
        if method == "NOTIFY":
            self.notify_out.pop((m["headers"]["call-id"][0], m["headers"]["cseq"][0]), None)
        elif method == "SUBSCRIBE" and code < 300 and m["headers"]["cseq"][0].startswith("1 "):
            call_id = m["headers"]["call-id"][0]
            if call_id.startswith("prw"):
                i = int(call_id[3:].split("-")[0])
                if self.s2x_dlg[i] is None:
                    tag = re.search(r";tag=([^;>\s]+)", m["headers"]["to"][0]).group(1)
                    contact = re.search(r"<([^>]+)>", m["headers"]["contact"][0]).group(1)
                    self.s2x_dlg[i] = {"call_id": call_id, "tag": tag, "contact": contact,
                                       "cseq": 1, "t": now()}
                    self.s2x_accepted += 1

    def send_notify(self, i, k):
        d = self.x2s_dlg[i]
        if d is None:
            return
        d["cseq"] += 1
        body = PIDF.format(entity=f"sip:sp{i}@sip.test", note=f"s{i}-{k}").encode()
        self.x2s.send(i, k, now())
        data = self.sip_request(self.hop, "NOTIFY", d["contact"], f"<sip:sp{i}@sip.test>;tag=p{i}",
                                d["from"], d["call_id"], d["cseq"],
                                "Event: presence\r\nSubscription-State: "
                                f"active;expires={self.o.expires}\r\n", body)
        t = now()
        self.notify_out[(d["call_id"], f"{d['cseq']} NOTIFY")] = [data, t, 0.5, t]

    async def retransmit(self):
        """Timer E of RFC 3261: 0.5 s doubling to 4 s, for our NOTIFYs; the
        transaction ends unanswered after 32 s (timer F)."""
        while True:
            t = now()
            for key, r in list(self.notify_out.items()):
                if t - r[1] >= r[2] and t - r[3] < 32:
                    self.hop.sendto(r[0], ("127.0.0.1", self.sip_port))
                    self.notify_rtx += 1
                    r[1], r[2] = t, min(4.0, r[2] * 2)
            await asyncio.sleep(0.1)

    def send_subscribe(self, i, refresh=False):
        if refresh:
            d = self.s2x_dlg[i]
            d["cseq"] += 1
            d["t"] = now()
            self.sip_request(self.ua, "SUBSCRIBE", d["contact"], f"<sip:sw{i}@sip.test>;tag=w{i}",
                             f"<sip:xp{i}@peer.test>;tag={d['tag']}", d["call_id"], d["cseq"],
                             f"Event: presence\r\nExpires: {self.o.expires}\r\n")
            return
        self.sip_request(self.ua, "SUBSCRIBE", f"sip:xp{i}@peer.test",
                         f"<sip:sw{i}@sip.test>;tag=w{i}", f"<sip:xp{i}@peer.test>",
                         f"prw{i}-{os.getpid()}", 1,
                         f"Event: presence\r\nAccept: application/pidf+xml\r\n"
                         f"Expires: {self.o.expires}\r\n")

    # --- XMPP
    async def xmpp_reader(self):
        while True:
            el = await self.peer.received.get()
            t = now()
            if el.name != "presence":
                self.other[el.name] = self.other.get(el.name, 0) + 1
                continue
            typ = el.attrs.get("type")
            frm, to = el.attrs.get("from", ""), el.attrs.get("to", "")
            if typ == "subscribe":
                i = user_index(to, "xp")
                if i is not None:
                    self.s2x_asked += 1
                    self.s.send(f"<presence from='xp{i}@peer.test' to='{frm}' type='subscribed'/>")
                    self.send_presence(i, 0)
            elif typ == "subscribed":
                self.x2s_subscribed += 1
            elif typ is None:
                st = el.child("status")
                for d, i, k in STATE_RE.findall(st.text if st is not None and st.text else ""):
                    if d == "s":
                        self.x2s.arrive(int(i), int(k), t, self.t0)
            else:
                key = f"presence-{typ}"
                self.other[key] = self.other.get(key, 0) + 1

    def send_presence(self, i, k):
        self.s2x.send(i, k, now())
        self.s.send(f"<presence from='xp{i}@peer.test/r' to='sw{i}@sip.test'>"
                    f"<status>x{i}-{k}</status></presence>")

    # --- phases
    async def paced(self, count, rate, fn):
        """Calls fn(i) for i in range(count) at `rate` per second, by the clock."""
        t0 = now()
        i = 0
        while i < count:
            due = min(count, int((now() - t0) * rate) + 1)
            while i < due:
                fn(i)
                i += 1
            await self.s.w.drain()
            await asyncio.sleep(0.002)

    async def refresher(self):
        """Our SIP watchers refresh at 3/4 of the expiry, spread as they were made."""
        while True:
            t = now()
            for i, d in enumerate(self.s2x_dlg):
                if d is not None and t - d["t"] > 0.75 * self.o.expires:
                    self.send_subscribe(i, refresh=True)
            await asyncio.sleep(0.2)

    async def wait_until(self, cond, timeout):
        end = now() + timeout
        while not cond() and now() < end:
            await asyncio.sleep(0.05)
        return cond()

    def sample(self):
        return now(), proc_ticks(self.gw.proc.pid), self_cpu()

    def cpu_between(self, a, b):
        tck = os.sysconf("SC_CLK_TCK")
        span = b[0] - a[0]
        return 100.0 * (b[1] - a[1]) / tck / span, 100.0 * (b[2] - a[2]) / span

    async def run(self):
        o = self.o
        loop = asyncio.get_running_loop()
        self.gw = BenchGateway(self.tmp, self.policy())
        self.gw.binary, self.gw.lua_dir = o.xsgw, o.lua_dir
        bench = self

        class Sock(asyncio.DatagramProtocol):
            def __init__(self, fn):
                self.fn = fn

            def connection_made(self, tr):
                tr.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                                       SOCK_BUF)

            def datagram_received(self, data, addr):
                try:
                    self.fn(data, addr)
                except (KeyError, IndexError, AttributeError, ValueError):
                    bench.tool_errors += 1

        self.hop, _ = await loop.create_datagram_endpoint(
            lambda: Sock(self.on_hop), local_addr=("127.0.0.1", self.hop_port))
        self.ua, _ = await loop.create_datagram_endpoint(
            lambda: Sock(lambda d, a: self.on_response(parse_sip(d))),
            local_addr=("127.0.0.1", 0))
        self.peer = Peer(self.tmp, self.gw_port)
        await self.peer.start(self.peer_port)
        self.gw.start()
        try:
            return await self.phases()
        finally:
            await self.peer.stop()
            self.gw.stop()

    async def phases(self):
        o, n = self.o, self.n
        self.s = await self.peer.authenticated_stream()
        reader = asyncio.ensure_future(self.xmpp_reader())
        pid = self.gw.proc.pid
        await asyncio.sleep(1)
        rss0 = proc_kb(pid)
        drops0 = udp_drops()
        print(f"xsprbench: gateway pid {pid}, RSS before set-up {rss0} kB", flush=True)

        # Set-up: both directions interleaved, each at o.setup_rate per second.
        self.t0 = t_setup = now()

        def one(i):
            self.s.send(f"<presence from='xw{i}@peer.test' to='sp{i}@sip.test' type='subscribe'/>")
            self.send_subscribe(i)
        await self.paced(n, o.setup_rate, one)
        done = await self.wait_until(
            lambda: (self.x2s_subscribed >= n and self.s2x_accepted >= n
                     and self.x2s.missing_latest() == 0 and self.s2x.missing_latest() == 0),
            o.drain + n / 1000.0)
        t_set = now() - t_setup
        x2s_held = sum(1 for d in self.x2s_dlg if d is not None)
        print(f"set-up: {t_set:.2f} s; x2s held {x2s_held}/{n} (subscribed {self.x2s_subscribed}),"
              f" s2x held {self.s2x_accepted}/{n} (subscribe seen {self.s2x_asked});"
              f" first states missing x2s {self.x2s.missing_latest()}"
              f" s2x {self.s2x.missing_latest()}", flush=True)
        rss1 = proc_kb(pid)
        await asyncio.sleep(o.idle)
        rss2 = proc_kb(pid)
        per_sub = (rss2 - rss0) * 1024.0 / (2 * n)
        print(f"memory: RSS before {rss0} kB, after set-up {rss1} kB, idle {rss2} kB;"
              f" {per_sub:.0f} bytes per subscription ((idle - before) / 2N)", flush=True)

        refresher = asyncio.ensure_future(self.refresher())
        rtx = asyncio.ensure_future(self.retransmit())
        # Steady: user i changes at offset i*T/N within each period, both sides.
        x0, s0 = len(self.x2s.lat), len(self.s2x.lat)
        a = self.sample()
        t_st = now()
        # Whole periods, each user once per period: exactly N x periods states.
        periods = max(1, round(o.steady / o.period))
        steady = periods * o.period
        for k in range(1, periods + 1):
            base = t_st + (k - 1) * o.period
            j = 0
            while j < n:
                t = now()
                while j < n and base + j * o.period / n <= t:
                    self.send_notify(j, k)
                    self.send_presence(j, k)
                    j += 1
                await self.s.w.drain()
                await asyncio.sleep(0.001)
        await asyncio.sleep(max(0.0, t_st + periods * o.period - now()))
        steady_k = periods
        await asyncio.sleep(o.drain)
        b = self.sample()
        gw_cpu, own_cpu = self.cpu_between(a, b)
        xs, xl, _ = self.x2s.fates(1)
        ss, sl, ssup = self.s2x.fates(1, coalescing=True)
        lat_x = sorted(self.x2s.lat[x0:])
        lat_s = sorted(self.s2x.lat[s0:])
        t_lo, t_hi = int(t_st - self.t0), int(t_st - self.t0 + steady)
        rate_x = max_rate_s = 0
        for sec in range(t_lo, t_hi):
            rate_x = max(rate_x, self.x2s.per_sec_out.get(sec, 0))
            max_rate_s = max(max_rate_s, self.s2x.per_sec_out.get(sec, 0))
        # States of the steady phase delivered, per second of it; the busiest
        # second counts every stanza or NOTIFY that carried a state, repeats too.
        in_x, in_s = len(lat_x) / steady, len(lat_s) / steady
        print(f"steady: {steady:.0f} s, T={o.period} s, x2s states {xs} lost {xl};"
              f" s2x states {ss} lost {sl} superseded {ssup}", flush=True)
        print(f"steady: offered {xs / steady:.0f} NOTIFY/s and {ss / steady:.0f} presence/s;"
              f" gateway delivered {in_x:.0f} presence/s (max {rate_x} in a second) and"
              f" {in_s:.0f} NOTIFY/s (max {max_rate_s}); gateway CPU {gw_cpu:.1f}%, tool CPU"
              f" {own_cpu:.1f}% of a core", flush=True)
        for name, lat in (("x2s", lat_x), ("s2x", lat_s)):
            print(f"steady latency {name}: p50 {pct(lat, .5) * 1e3:.1f} ms p99 "
                  f"{pct(lat, .99) * 1e3:.1f} ms max {pct(lat, 1.0) * 1e3:.1f} ms", flush=True)
        rss3 = proc_kb(pid)

        # Storm: every watched user at once, both sides.
        ks = steady_k + 1
        a = self.sample()
        t_storm = now()
        for i in range(n):
            self.send_notify(i, ks)
            self.send_presence(i, ks)
            if i % 500 == 499:
                await self.s.w.drain()
        await self.s.w.drain()
        t_sent = now() - t_storm
        all_in = await self.wait_until(
            lambda: self.x2s.missing_latest() == 0 and self.s2x.missing_latest() == 0,
            o.drain + n / 500.0)
        t_all = now() - t_storm
        b = self.sample()
        storm_cpu, _ = self.cpu_between(a, b)
        sx = sum(1 for i in range(n) if (i, ks) in self.x2s.arrived)
        ss_ = sum(1 for i in range(n) if (i, ks) in self.s2x.arrived)
        print(f"storm: {2 * n} changes sent in {t_sent:.2f} s; "
              f"{'all' if all_in else 'NOT all'} latest states in after {t_all:.2f} s"
              f" (x2s {sx}/{n}, s2x {ss_}/{n}); gateway CPU {storm_cpu:.1f}%", flush=True)

        # Refreshes: wait until the gateway's first cycle has passed.
        need = self.t0 + t_set + o.expires + 2 - now()
        if need > 0 and o.wait_refresh:
            await asyncio.sleep(need)
        refresher.cancel()
        rtx.cancel()
        reader.cancel()
        hist = self.refresh_secs
        rmax = max(hist.values()) if hist else 0
        rsecs = sorted(hist)
        print(f"refreshes: {self.refreshes} SUBSCRIBE refreshes from the gateway in"
              f" {len(rsecs)} distinct seconds"
              f"{f' ({rsecs[0]}..{rsecs[-1]} s after set-up start)' if rsecs else ''};"
              f" max {rmax} in one second", flush=True)
        if o.histogram:
            print("refresh histogram: " + " ".join(f"{s}:{hist[s]}" for s in rsecs))
        lost_x = self.x2s.fates(0)[1]
        _, lost_s, sup_s = self.s2x.fates(0, coalescing=True)
        refused = sum(self.answers.values())
        unanswered = len(self.notify_out)
        if self.answers or self.other:
            print(f"answers: {self.answers}; other stanzas: {self.other};"
                  f" unanswered NOTIFYs {unanswered}", flush=True)
        gw_log = self.gw.log_text()
        warn = [line for line in gw_log.splitlines() if re.search(r"level=(error|warn)", line)]
        errors = len(warn)
        for line in warn[:5]:
            print(f"gateway: {line[:300]}", flush=True)
        ok = (x2s_held == n and self.s2x_accepted == n and lost_x == 0 and lost_s == 0
              and all_in and done)
        print(f"xsprbench-summary n={n} period={o.period} steady={steady:.0f}"
              f" states_x2s={xs} states_s2x={ss} setup_s={t_set:.2f} held_x2s={x2s_held} held_s2x={self.s2x_accepted}"
              f" rss0_kb={rss0} rss_setup_kb={rss1} rss_idle_kb={rss2} rss_steady_kb={rss3}"
              f" bytes_per_sub={per_sub:.0f}"
              f" steady_notify_in_s={in_s:.0f} steady_presence_in_s={in_x:.0f}"
              f" x2s_p50_ms={pct(lat_x, .5) * 1e3:.1f} x2s_p99_ms={pct(lat_x, .99) * 1e3:.1f}"
              f" s2x_p50_ms={pct(lat_s, .5) * 1e3:.1f} s2x_p99_ms={pct(lat_s, .99) * 1e3:.1f}"
              f" gw_cpu_steady={gw_cpu:.1f} storm_s={t_all:.2f} storm_complete={int(all_in)}"
              f" lost_x2s={lost_x} lost_s2x={lost_s} superseded_s2x={sup_s}"
              f" repeats_x2s={self.x2s.dups} repeats_s2x={self.s2x.dups}"
              f" stray={self.x2s.stray + self.s2x.stray} refused={refused}"
              f" unanswered_notify={unanswered} notify_rtx={self.notify_rtx}"
              f" udp_rcvbuf_drops={udp_drops() - drops0} refreshes={self.refreshes}"
              f" refresh_max_per_s={rmax} gw_warn_lines={errors}"
              f" tool_errors={self.tool_errors}",
              flush=True)
        return 0 if ok else 1


def user_index(uri, prefix):
    m = re.match(r"(?:sip:)?" + prefix + r"(\d+)@", uri)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--xsgw", required=True)
    ap.add_argument("--lua-dir", default=os.path.join(HERE, "..", "..", "lua"))
    ap.add_argument("-n", type=int, default=200, help="subscriptions each way")
    ap.add_argument("--setup-rate", type=float, default=1000.0,
                    help="subscriptions per second per direction in the set-up")
    ap.add_argument("--period", type=float, default=10.0, help="T: a change per user per T s")
    ap.add_argument("--steady", type=float, default=30.0, help="seconds of steady load")
    ap.add_argument("--expires", type=int, default=60)
    ap.add_argument("--idle", type=float, default=3.0, help="seconds idle before the RSS")
    ap.add_argument("--drain", type=float, default=5.0)
    ap.add_argument("--no-wait-refresh", dest="wait_refresh", action="store_false")
    ap.add_argument("--histogram", action="store_true")
    o = ap.parse_args()
    if not 1 <= o.n <= 20000 or o.period <= 0 or o.steady < o.period:
        print("xsprbench: need 1 <= n <= 20000, period > 0, steady >= period")
        return 2
    with tempfile.TemporaryDirectory(prefix="xsprbench-") as tmp:
        try:
            return asyncio.run(Bench(o, tmp).run())
        except AssertionError as e:
            print(f"xsprbench: FAIL: {str(e)[:3000]}")
            return 1


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
