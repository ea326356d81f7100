#!/usr/bin/env python3
"""Runs xsprbench briefly against the real gateway and checks its summary.

usage: check_xsprbench.py XSGW LUA_DIR [xsprbench options...]

Run inside run_in_netns.sh. With -n N and --expires E shorter than the
run: every subscription held both ways, every state delivered (the latest
one per s2x subscription at least), the storm complete, nothing refused,
unanswered or not ours, and the gateway refreshed each of its N
subscriptions at least once. The exit status of xsprbench must be 0.
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(msg):
    print("check_xsprbench: FAIL: " + msg)
    sys.exit(1)


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    xsgw, lua_dir, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    cmd = [sys.executable, os.path.join(HERE, "xsprbench.py"), "--xsgw", xsgw,
           "--lua-dir", lua_dir] + args
    print("check_xsprbench: " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=240)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        fail(f"xsprbench exited {proc.returncode}")
    lines = [x for x in proc.stdout.splitlines() if x.startswith("xsprbench-summary ")]
    if len(lines) != 1:
        fail(f"{len(lines)} xsprbench-summary lines")
    s = dict(re.findall(r"(\w+)=(\S+)", lines[0]))
    n = int(s["n"])
    for k in ("held_x2s", "held_s2x"):
        if int(s[k]) != n:
            fail(f"{k}={s[k]}, expected {n}")
    periods = max(1, round(float(s["steady"]) / float(s["period"])))
    for k in ("states_x2s", "states_s2x"):
        if int(s[k]) != n * periods:
            fail(f"{k}={s[k]}, expected {n} x {periods} periods")
    for k in ("lost_x2s", "lost_s2x", "refused", "unanswered_notify", "stray", "tool_errors",
              "repeats_x2s"):
        if int(s[k]) != 0:
            fail(f"{k}={s[k]}")
    if s["storm_complete"] != "1":
        fail("the storm's latest states did not all arrive")
    if int(s["refreshes"]) < n:
        fail(f"{s['refreshes']} refreshes from the gateway for {n} subscriptions")
    for k in ("steady_notify_in_s", "steady_presence_in_s"):
        if int(s[k]) <= 0:
            fail(f"{k}={s[k]}: nothing carried in the steady phase")
    if not 0 < float(s["x2s_p50_ms"]) <= float(s["x2s_p99_ms"]):
        fail("x2s latency percentiles out of order")
    if not 0 < float(s["s2x_p50_ms"]) <= float(s["s2x_p99_ms"]):
        fail("s2x latency percentiles out of order")
    if int(s["rss_idle_kb"]) <= 0 or int(s["rss0_kb"]) <= 0:
        fail("the gateway's RSS was not sampled")
    print("check_xsprbench: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
