#!/usr/bin/python3
"""Reads sipp -message_file traces and prints one JSON line per SIP message.

sipp logs every message it sends or receives, retransmissions included, as
    ----------------------------------------------- <date> <time>
    UDP message received [N] bytes :
    <blank line>
    <N bytes of SIP message>
The byte count lets us cut bodies exactly, whatever they contain. --unique keeps the first
copy of each request (Call-ID + CSeq) and of each response (Call-ID + CSeq + status), which
is what "delivered" means for a receiver that sees retransmissions.
"""
import argparse
import json
import re
import sys

HEAD = re.compile(
    rb"^-{47} [^\n]*\n"
    rb"(UDP|TCP|TLS|SCTP) message (received|sent) [\[(](\d+)[\])? ]*bytes ?\)?:?\n\n",
    re.M)
MAX_FILE = 256 * 1024 * 1024


def parse_message(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, _, body = raw.partition(b"\n\n")
    lines = head.decode("utf-8", "replace").replace("\r", "").split("\n")
    start = lines[0].strip()
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers.setdefault(name.strip().lower(), value.strip())
    msg = {"start": start, "headers": headers}
    if start.startswith("SIP/2.0 "):
        parts = start.split(" ", 2)
        msg["status"] = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    else:
        msg["method"] = start.split(" ", 1)[0]
        msg["uri"] = start.split(" ")[1] if " " in start else ""
    clen = headers.get("content-length", headers.get("l", "0")).strip()
    n = int(clen) if clen.isdigit() else len(body)
    msg["body"] = body[:n].decode("utf-8", "replace")
    return msg


def read_trace(path):
    with open(path, "rb") as f:
        data = f.read(MAX_FILE)
    out = []
    for m in HEAD.finditer(data):
        n = int(m.group(3))
        raw = data[m.end():m.end() + n]
        msg = parse_message(raw)
        msg["transport"] = m.group(1).decode()
        msg["dir"] = "recv" if m.group(2) == b"received" else "sent"
        out.append(msg)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--dir", choices=["recv", "sent"], help="only received or sent messages")
    ap.add_argument("--requests", action="store_true", help="only requests")
    ap.add_argument("--responses", action="store_true", help="only responses")
    ap.add_argument("--unique", action="store_true", help="drop retransmitted copies")
    args = ap.parse_args()
    seen = set()
    for path in args.files:
        try:
            msgs = read_trace(path)
        except OSError as e:
            print(f"sip_trace: {path}: {e}", file=sys.stderr)
            return 2
        for msg in msgs:
            if args.dir and msg["dir"] != args.dir:
                continue
            is_resp = "status" in msg
            if (args.requests and is_resp) or (args.responses and not is_resp):
                continue
            if args.unique:
                h = msg["headers"]
                key = (msg["dir"], h.get("call-id", h.get("i")), h.get("cseq"), msg.get("status"))
                if key in seen:
                    continue
                seen.add(key)
            print(json.dumps(msg, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
