#!/usr/bin/python3
"""What happened to each message of a load run across a gateway instance's stop, for
t_instances.sh. Prints one JSON object. KILL_AT is the epoch time (seconds, fractions) the
instance was signalled; sipp's trace timestamps are local wall-clock time on the same host.

  instances_check.py sip TRACE PREFIX XMPP_OUT KILL_AT
      TRACE: a sipp UAC's trace, bodies "PREFIX <call number>", all sent to one instance;
      XMPP_OUT: the xmpp_client.py that received them. Per MESSAGE (Call-ID): its first
      final response (or none) and how many times the XMPP user got its body.
      {"sent", "sent_before_kill", "codes", "ok_delivered", "ok_lost", "error_delivered",
       "error_not_delivered", "unanswered_before_kill", "unanswered_before_kill_delivered",
       "unanswered_after_kill", "unanswered_after_kill_delivered", "duplicates",
       "retransmissions"}
      ok_lost (a 200 without delivery) and duplicates are never acceptable;
      unanswered_before_kill is what a sender accepted by the stopped instance was never told.

  instances_check.py xmpp XMPP_OUT UAS_TRACE PREFIX COUNT KILL_AT
      XMPP_OUT: the sending xmpp_client.py (--id-prefix PREFIX, --body "PREFIX {n}"), which
      also printed the errors it got back (their ids name the message); UAS_TRACE: the sipp
      UAS both instances deliver to. Per message n in 1..COUNT: delivered (the UAS got its
      body in some transaction), errored (the sender got an error with its id), both, neither.
      The instances send SIP from unbound sockets, so a MESSAGE names the instance that sent it
      only by its Via sent-by: via_survivor counts MESSAGEs after KILL_AT from a sent-by not
      seen before it (the instance the peer reconnected to); reconnect_s is the time from
      KILL_AT to the first of them, gap_s the longest pause between two deliveries.
      {"sent", "delivered", "errored", "both", "neither", "neither_first", "duplicates",
       "conditions", "reconnect_s", "gap_s", "via_survivor"}
"""
import datetime
import json
import re
import sys

HEAD = re.compile(
    rb"^-{47} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)[^\n]*\n"
    rb"(UDP|TCP|TLS|SCTP) message (received|sent) [\[(](\d+)[\])? ]*bytes ?\)?:?\n\n",
    re.M)
MAX_FILE = 256 * 1024 * 1024


def header(raw, names):
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in names:
            return value.strip().decode("utf-8", "replace")
    return None


def body_of(raw):
    parts = raw.split(b"\r\n\r\n", 1)
    return parts[1].decode("utf-8", "replace").strip() if len(parts) == 2 else ""


def trace(path):
    """(epoch seconds, direction, raw message) for every logged message, in order."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE)
    for m in HEAD.finditer(data):
        when = datetime.datetime.strptime(m.group(1).decode(), "%Y-%m-%d %H:%M:%S.%f")
        yield when.timestamp(), m.group(3), data[m.end():m.end() + int(m.group(4))]


def number(body, prefix):
    m = re.fullmatch(re.escape(prefix) + r" (\d+)", body or "")
    return int(m.group(1)) if m else None


def xmpp_lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def sip(trace_path, prefix, xmpp_out, kill_at):
    first, final, body_n = {}, {}, {}
    retrans = 0
    for when, direction, raw in trace(trace_path):
        cid = header(raw, (b"call-id", b"i"))
        if direction == b"sent" and raw.startswith(b"MESSAGE "):
            if cid in first:
                retrans += 1
            else:
                first[cid] = when
                body_n[cid] = number(body_of(raw), prefix)
        elif direction == b"received" and raw.startswith(b"SIP/2.0 "):
            status = int(raw.split(b" ", 2)[1])
            if status >= 200 and cid not in final:
                final[cid] = status
    got = {}
    for m in xmpp_lines(xmpp_out):
        if m.get("ev") == "message" and m.get("type") != "error":
            n = number(m.get("body"), prefix)
            if n is not None:
                got[n] = got.get(n, 0) + 1
    r = {k: 0 for k in ("ok_delivered", "ok_lost", "error_delivered", "error_not_delivered",
                        "unanswered_before_kill", "unanswered_before_kill_delivered",
                        "unanswered_after_kill", "unanswered_after_kill_delivered")}
    codes = {}
    for cid, t in first.items():
        delivered = got.get(body_n[cid], 0) > 0
        code = final.get(cid)
        if code is not None:
            codes[str(code)] = codes.get(str(code), 0) + 1
        if code == 200:
            r["ok_delivered" if delivered else "ok_lost"] += 1
        elif code is not None:
            r["error_delivered" if delivered else "error_not_delivered"] += 1
        else:
            k = "unanswered_before_kill" if t < kill_at else "unanswered_after_kill"
            r[k] += 1
            if delivered:
                r[k + "_delivered"] += 1
    r.update(sent=len(first), sent_before_kill=sum(1 for t in first.values() if t < kill_at),
             codes=codes, duplicates=sum(c - 1 for c in got.values() if c > 1),
             retransmissions=retrans)
    return r


def xmpp(xmpp_out, uas_trace, prefix, count, kill_at):
    errored, conditions = set(), {}
    for m in xmpp_lines(xmpp_out):
        if m.get("ev") == "message" and m.get("type") == "error":
            n = number((m.get("id") or "").replace(prefix, prefix + " ", 1), prefix)
            if n is not None:
                errored.add(n)
                c = m.get("error") or "-"
                conditions[c] = conditions.get(c, 0) + 1
    seen_txn, got, times = set(), {}, []
    reconnect = None
    survivor = 0
    before = set()
    for when, direction, raw in trace(uas_trace):
        if direction != b"received" or not raw.startswith(b"MESSAGE "):
            continue
        txn = (header(raw, (b"call-id", b"i")), header(raw, (b"cseq",)))
        if txn in seen_txn:
            continue
        seen_txn.add(txn)
        n = number(body_of(raw), prefix)
        if n is None:
            continue
        got[n] = got.get(n, 0) + 1
        times.append(when)
        via = (header(raw, (b"via", b"v")) or "").split(";")[0]
        if when < kill_at:
            before.add(via)
        elif via not in before:
            survivor += 1
            if reconnect is None:
                reconnect = when - kill_at
    sent = set(range(1, count + 1))
    delivered = {n for n in got if n in sent}
    neither = sorted(sent - delivered - errored)
    gap = max((b - a for a, b in zip(times, times[1:])), default=None)
    return {"sent": count, "delivered": len(delivered), "errored": len(errored & sent),
            "both": len(delivered & errored), "neither": len(neither),
            "neither_first": neither[:10],
            "duplicates": sum(c - 1 for c in got.values() if c > 1),
            "conditions": conditions,
            "reconnect_s": None if reconnect is None else round(reconnect, 3),
            "gap_s": None if gap is None else round(gap, 3), "via_survivor": survivor}


def main(argv):
    if len(argv) == 6 and argv[1] == "sip":
        print(json.dumps(sip(argv[2], argv[3], argv[4], float(argv[5])), sort_keys=True))
    elif len(argv) == 7 and argv[1] == "xmpp":
        print(json.dumps(xmpp(argv[2], argv[3], argv[4], int(argv[5]), float(argv[6])),
                         sort_keys=True))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
