#!/usr/bin/env python3
"""Renders a gateway's /status page in headless Chromium (no JavaScript)
and checks that a partner's section lists streams with it in the wanted
state; keeps a narrow-screen screenshot.

Usage: status_check.py URL PARTNER MIN_STREAMS SCREENSHOT
Prints "ok" or why not; exit 0 only for ok. Chromium is killed by its
process group if it outlives 60 s."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile


def run(argv):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise SystemExit("chromium did not finish within 60 s")
    return out.decode(errors="replace")


def main(url, partner, min_streams, shot):
    chromium = shutil.which("chromium")
    if not chromium:
        print("chromium is not installed")
        return 1
    with tempfile.TemporaryDirectory() as profile:
        base = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-dev-shm-usage", "--disable-javascript", f"--user-data-dir={profile}"]
        dom = run(base + ["--dump-dom", url])
        m = re.search(r'<section class="partner" data-domain="%s">(.*?)</section>'
                      % re.escape(partner), dom, re.S)
        if not m:
            print(f"no section for partner {partner} in the page")
            return 1
        rows = re.findall(r'<tr class="stream" data-remote="%s">(.*?)</tr>' % re.escape(partner),
                          m.group(1), re.S)
        established = [r for r in rows if 'data-label="state">established<' in r]
        if len(established) < int(min_streams):
            print(f"{len(established)} established streams with {partner} on the page, "
                  f"want {min_streams}: {rows}")
            return 1
        run(base + ["--window-size=420,1200", f"--screenshot={shot}", url])
        if not os.path.exists(shot) or os.path.getsize(shot) < 1000:
            print("no screenshot")
            return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
