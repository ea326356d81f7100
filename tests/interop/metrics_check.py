#!/usr/bin/env python3
"""Scrapes a gateway's /metrics, parses it with the Prometheus client
library's own parser, and compares samples with what the test counted.

Usage: metrics_check.py URL NAME{label="v",...}=VALUE ... [--total NAME=VALUE]
A NAME{...}=VALUE names one sample; --total NAME=VALUE sums every sample of
NAME (so that nothing was counted that the test did not send). Prints "ok"
or every mismatch, one per line; exit 0 only when all match."""
import re
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def parse_want(spec):
    m = re.fullmatch(r'([a-z_]+)(?:\{(.*)\})?=(\d+(?:\.\d+)?)', spec)
    if not m:
        raise SystemExit(f"bad expectation {spec!r}")
    labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
    return m.group(1), labels, float(m.group(3))


def main(argv):
    url, wants, totals = argv[1], [], []
    args = iter(argv[2:])
    for a in args:
        if a == "--total":
            name, _, value = next(args).partition("=")
            totals.append((name, float(value)))
        else:
            wants.append(parse_want(a))
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
    bad = []
    for name, labels, value in wants:
        got = sum(s.value for s in samples if s.name == name and s.labels == labels)
        if got != value:
            bad.append(f"{name}{labels}: got {got:g}, want {value:g}")
    for name, value in totals:
        got = sum(s.value for s in samples if s.name == name)
        if got != value:
            seen = [(s.labels, s.value) for s in samples if s.name == name]
            bad.append(f"sum of {name}: got {got:g}, want {value:g} ({seen})")
    print("\n".join(bad) if bad else "ok")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
