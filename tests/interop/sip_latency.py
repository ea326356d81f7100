#!/usr/bin/python3
"""Reads a sipp UAC's -message_file trace and prints one JSON object: how many MESSAGEs it
sent (first copies), how many it retransmitted (further copies of a request it had already
sent: Timer E firing, because no final response came within T1), the final responses by
status, and the final-response latency (first send of the request to the first final
response) as p50/p99/max in milliseconds.

sipp heads each logged message with
    ----------------------------------------------- YYYY-MM-DD HH:MM:SS.micros
    UDP message sent|received [N] bytes :
so the byte count cuts every message exactly and the timestamp dates it.
"""
import datetime
import json
import re
import sys

HEAD = re.compile(
    rb"^-{47} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)[^\n]*\n"
    rb"(UDP|TCP|TLS|SCTP) message (received|sent) [\[(](\d+)[\])? ]*bytes ?\)?:?\n\n",
    re.M)
MAX_FILE = 512 * 1024 * 1024


def header(raw, names):
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in names:
            return value.strip().decode("utf-8", "replace")
    return None


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, int(round(p / 100.0 * (len(sorted_values) - 1))))
    return sorted_values[i]


def main(path):
    with open(path, "rb") as f:
        data = f.read(MAX_FILE)
    first_sent, final_at, codes = {}, {}, {}
    sent = retrans = 0
    for m in HEAD.finditer(data):
        when = datetime.datetime.strptime(m.group(1).decode(), "%Y-%m-%d %H:%M:%S.%f")
        raw = data[m.end():m.end() + int(m.group(4))]
        call_id = header(raw, (b"call-id", b"i"))
        if m.group(3) == b"sent" and raw.startswith(b"MESSAGE "):
            if call_id in first_sent:
                retrans += 1
            else:
                sent += 1
                first_sent[call_id] = when
        elif m.group(3) == b"received" and raw.startswith(b"SIP/2.0 "):
            status = int(raw.split(b" ", 2)[1])
            if status >= 200 and call_id not in final_at:
                final_at[call_id] = when
                codes[status] = codes.get(status, 0) + 1
    lat = sorted((final_at[c] - first_sent[c]).total_seconds() * 1000.0
                 for c in final_at if c in first_sent)
    out = {"sent": sent, "retransmissions": retrans, "answered": len(final_at),
           "codes": {str(k): v for k, v in sorted(codes.items())},
           "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
           "max_ms": lat[-1] if lat else None,
           "over_t1": sum(1 for v in lat if v >= 500.0)}
    for k in ("p50_ms", "p99_ms", "max_ms"):
        if out[k] is not None:
            out[k] = round(out[k], 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
