#!/usr/bin/python3
"""Counts what a load run delivered, from sipp -message_file traces, for t_load.sh. Prints
one JSON object.

  load_check.py uas TRACE PREFIX COUNT
      TRACE is a sipp UAS's trace; the sender numbered its bodies "PREFIX <n> <send time>"
      (xmpp_client.py --body "PREFIX {n} {t}"), n from 1 to COUNT. A transaction is a
      MESSAGE's (Call-ID, CSeq, top Via branch); further copies of it are the sender's
      retransmissions. A duplicate is a body that arrived in two different transactions.
      Latency: the first copy's arrival (sipp's timestamp) minus the send time in the body.
      {"transactions", "retransmissions", "unique", "duplicates", "missing", "foreign",
       "seconds", "rate", "p50_ms", "p99_ms", "max_ms"}

  load_check.py uac TRACE PREFIX XMPP_OUT
      TRACE is a sipp UAC's trace (bodies "PREFIX <call number>"), XMPP_OUT the output of the
      xmpp_client.py that received them. Every MESSAGE must have been delivered once with a
      200, or refused with 503 and a Retry-After and not delivered at all.
      {"sent", "retransmissions", "codes", "retry_after", "delivered", "duplicates",
       "refused_but_delivered", "ok_not_delivered", "unanswered", "lost", "p50_ms", "p99_ms"}
      lost = sent - delivered - refused (503): what no one was told about.
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


def messages(path):
    """(when, direction, head lines, body) for every message of a sipp trace; `when` is
    seconds since the epoch (sipp writes local time)."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE)
    for m in HEAD.finditer(data):
        when = datetime.datetime.strptime(m.group(1).decode(), "%Y-%m-%d %H:%M:%S.%f")
        raw = data[m.end():m.end() + int(m.group(4))]
        head, sep, body = raw.partition(b"\r\n\r\n")
        if not sep:
            head, _, body = raw.partition(b"\n\n")
        lines = head.decode("utf-8", "replace").replace("\r", "").split("\n")
        yield when.timestamp(), m.group(3).decode(), lines, body.decode("utf-8", "replace")


def header(lines, *names):
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() in names:
            return value.strip()
    return None


def branch(lines):
    via = header(lines, "via", "v") or ""
    m = re.search(r";\s*branch=([^;,\s]+)", via)
    return m.group(1) if m else None


def percentiles(values):
    values = sorted(values)
    out = {}
    for name, p in (("p50_ms", 50), ("p99_ms", 99)):
        if values:
            i = min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))
            out[name] = round(values[i] * 1000.0, 1)
        else:
            out[name] = None
    out["max_ms"] = round(values[-1] * 1000.0, 1) if values else None
    return out


def check_uas(path, prefix, count):
    txns = {}        # transaction key -> body number
    first_seen = {}  # body number -> transactions it came in
    retrans = foreign = 0
    latencies, arrivals = [], []
    for when, direction, lines, body in messages(path):
        if direction != "received" or not lines[0].startswith("MESSAGE "):
            continue
        key = (header(lines, "call-id", "i"), header(lines, "cseq"), branch(lines))
        if key in txns:
            retrans += 1
            continue
        parts = body.split(" ")
        if len(parts) != 3 or parts[0] != prefix or not parts[1].isdigit():
            foreign += 1
            txns[key] = None
            continue
        n = int(parts[1])
        txns[key] = n
        first_seen[n] = first_seen.get(n, 0) + 1
        if first_seen[n] == 1:
            arrivals.append(when)
            try:
                latencies.append(when - float(parts[2]))
            except ValueError:
                foreign += 1
    unique = sum(1 for n in first_seen if 1 <= n <= count)
    span = max(arrivals) - min(arrivals) if len(arrivals) > 1 else 0.0
    out = {"transactions": len(txns), "retransmissions": retrans, "unique": unique,
           "duplicates": sum(c - 1 for c in first_seen.values()),
           "missing": count - unique, "foreign": foreign,
           "seconds": round(span, 2), "rate": round(unique / span, 1) if span else None}
    out.update(percentiles(latencies))
    return out


def check_uac(path, prefix, xmpp_out):
    sent = {}     # Call-ID -> body
    sent_at = {}  # Call-ID -> first send time
    final = {}    # Call-ID -> (status, Retry-After, time)
    retrans = 0
    for when, direction, lines, body in messages(path):
        call_id = header(lines, "call-id", "i")
        if direction == "sent" and lines[0].startswith("MESSAGE "):
            if call_id in sent:
                retrans += 1
            else:
                sent[call_id] = body
                sent_at[call_id] = when
        elif direction == "received" and lines[0].startswith("SIP/2.0 "):
            status = int(lines[0].split(" ", 2)[1])
            if status >= 200 and call_id not in final:
                final[call_id] = (status, header(lines, "retry-after"), when)
    delivered = {}
    with open(xmpp_out, encoding="utf-8") as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("ev") == "message" and ev.get("type") != "error":
                b = ev.get("body") or ""
                if b.startswith(prefix + " "):
                    delivered[b] = delivered.get(b, 0) + 1
    codes, retry_after = {}, {}
    refused_but_delivered = ok_not_delivered = unanswered = refused = 0
    for call_id, body in sent.items():
        if call_id not in final:
            unanswered += 1
            continue
        status, ra, _ = final[call_id]
        codes[str(status)] = codes.get(str(status), 0) + 1
        if status == 503:
            refused += 1
            retry_after[ra or "none"] = retry_after.get(ra or "none", 0) + 1
            if body in delivered:
                refused_but_delivered += 1
        elif status == 200 and body not in delivered:
            ok_not_delivered += 1
    bodies = set(sent.values())
    got = sum(1 for b in delivered if b in bodies)
    out = {"sent": len(sent), "retransmissions": retrans, "codes": dict(sorted(codes.items())),
           "retry_after": retry_after, "delivered": got,
           "duplicates": sum(c - 1 for c in delivered.values()),
           "refused_but_delivered": refused_but_delivered, "ok_not_delivered": ok_not_delivered,
           "unanswered": unanswered, "lost": len(sent) - got - refused}
    lat = [final[c][2] - sent_at[c] for c in final if c in sent_at]
    out.update(percentiles(lat))
    return out


def main(argv):
    if len(argv) == 5 and argv[1] == "uas":
        print(json.dumps(check_uas(argv[2], argv[3], int(argv[4]))))
    elif len(argv) == 5 and argv[1] == "uac":
        print(json.dumps(check_uac(argv[2], argv[3], argv[4])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
