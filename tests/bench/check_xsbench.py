#!/usr/bin/env python3
"""Runs xsbench briefly against the real gateway and checks its report.

usage: check_xsbench.py XSBENCH XSGW LUA_DIR [xsbench options...]

Checks, for every phase of the JSON report: offered = delivered + refused +
lost; nothing lost, duplicated or contradicted; the per-second rows add up
to the totals; open loop: everything planned (rate x duration) was offered,
one row per second of the offering at least, and the gateway's CPU and RSS
sampled; XEP-0198 enabled by the gateway when offered, never otherwise; and that the one-line summaries on stdout say the same as the
JSON. The exit status of xsbench must be 0 (every message delivered once).
"""
import json
import os
import re
import subprocess
import sys
import tempfile


def fail(msg):
    print("check_xsbench: FAIL: " + msg)
    sys.exit(1)


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    xsbench, xsgw, lua_dir, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    with tempfile.TemporaryDirectory(prefix="xsbench-check-") as tmp:
        out_json = os.path.join(tmp, "report.json")
        cmd = [xsbench, "--gateway", xsgw, "--lua-dir", lua_dir, "--json", out_json,
               "--gw-log", os.path.join(tmp, "gw.log")] + args
        print("check_xsbench: " + " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=180)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            with open(os.path.join(tmp, "gw.log")) as f:
                sys.stderr.write(f.read()[-4000:])
            fail(f"xsbench exited {proc.returncode}")
        with open(out_json) as f:
            report = json.load(f)

    if report["failed"] or report["verdict"] != 0:
        fail("the report says failed or a non-zero verdict")
    open_loop = report["mode"] == "open"
    summaries = {}
    for line in proc.stdout.splitlines():
        if line.startswith("xsbench-summary "):
            kv = dict(re.findall(r"(\w+)=(\S+)", line))
            summaries[kv["dir"]] = kv
    want_dirs = ["xmpp-sip", "sip-xmpp"]
    if "--direction" in args:
        want_dirs = [args[args.index("--direction") + 1]]
    got_dirs = [p["direction"] for p in report["phases"]]
    if got_dirs != want_dirs:
        fail(f"phases {got_dirs}, expected {want_dirs}")

    for p in report["phases"]:
        d = p["direction"]
        if p["offered"] != p["delivered"] + p["refused"] + p["lost"]:
            fail(f"{d}: offered {p['offered']} != delivered + refused + lost")
        for k in ("lost", "dups", "conflicts", "unexpected", "unsent", "refused", "unanswered"):
            if p[k] != 0:
                fail(f"{d}: {k} = {p[k]}")
        if p["offered"] != p["planned"]:
            fail(f"{d}: offered {p['offered']} of {p['planned']}")
        rows = p["per_second"]
        for k in ("offered", "delivered", "refused", "dups", "late"):
            total = sum(r[k] for r in rows)
            if total != p[k]:
                fail(f"{d}: the rows' {k} add up to {total}, the total is {p[k]}")
        lat = p["latency_ms"]
        if not 0 < lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"]:
            fail(f"{d}: latency percentiles out of order: {lat}")
        if d == "sip-xmpp" and p["answered"] != p["delivered"]:
            fail(f"{d}: {p['answered']} SIP final responses for {p['delivered']} delivered")
        if open_loop:
            planned = round(report["rate"] * report["duration"])
            if p["planned"] != planned:
                fail(f"{d}: planned {p['planned']}, rate x duration is {planned}")
            if len(rows) < int(report["duration"]):
                fail(f"{d}: {len(rows)} rows for {report['duration']} s")
            for i, r in enumerate(rows[:int(report["duration"])]):
                if r["offered"] == 0:
                    fail(f"{d}: nothing offered in second {i + 1}")
            if not any(r["gw_cpu"] is not None and r["gw_rss_kb"] for r in rows):
                fail(f"{d}: no row has the gateway's CPU and RSS")
        s = summaries.get(d)
        if not s:
            fail(f"{d}: no xsbench-summary line")
        for k in ("offered", "delivered", "refused", "lost", "dups", "late"):
            if int(s[k]) != p[k]:
                fail(f"{d}: summary {k}={s[k]}, JSON {p[k]}")
    # XEP-0198: the gateway enables it on its streams to a peer that offers
    # it (story 2 of issue 6), and never on one that refuses it.
    if "sip-xmpp" in got_dirs:
        if report["sm_offered"] and report["sm_streams"] < 1:
            fail("the bench offered XEP-0198 and the gateway did not enable it")
        if not report["sm_offered"] and report["sm_streams"] != 0:
            fail("XEP-0198 enabled on a stream that did not offer it")
    print("check_xsbench: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
