#!/usr/bin/python3
"""Sends one SIP MESSAGE several times over UDP, byte for byte the same (same Via branch,
Call-ID, CSeq), the way a UAC retransmits, and prints every response as a JSON line:
  {"copy": K, "status": CODE, "reason": "...", "branch": "...", "call_id": "..."}
and finally {"done": true, "finals": [codes...]}.

--mode after-final sends copy K+1 only after a final response to copy K arrived (or
--wait passed): that is a retransmission whose response was lost, which a server
transaction in the Completed state answers with the same final response again.
--mode immediate sends all copies at once, before any response, and listens for --wait.
Everything is bounded: --copies <= 10, each wait <= --wait seconds.
"""
import argparse
import json
import socket
import sys
import time
import uuid


def build(args, branch, call_id):
    body = args.body.encode("utf-8")
    host, port = args.bind.split(":")
    head = (
        f"MESSAGE {args.to} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch={branch}\r\n"
        f"From: <{args.sender}>;tag={uuid.uuid4().hex[:10]}\r\n"
        f"To: <{args.to}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 7 MESSAGE\r\n"
        f"Max-Forwards: 70\r\n"
        f"Content-Type: text/plain;charset=UTF-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("utf-8") + body


def parse_response(data):
    text = data.decode("utf-8", "replace")
    first, _, rest = text.partition("\r\n")
    parts = first.split(" ", 2)
    if len(parts) < 2 or parts[0] != "SIP/2.0" or not parts[1].isdigit():
        return None
    hdr = {}
    for line in rest.split("\r\n"):
        if not line:
            break
        name, _, value = line.partition(":")
        hdr.setdefault(name.strip().lower(), value.strip())
    via = hdr.get("via", hdr.get("v", ""))
    branch = via.split("branch=")[1].split(";")[0] if "branch=" in via else ""
    return {"status": int(parts[1]), "reason": parts[2] if len(parts) > 2 else "",
            "branch": branch, "call_id": hdr.get("call-id", hdr.get("i", ""))}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="127.0.0.3:5060")
    ap.add_argument("--bind", default="127.0.0.5:5082")
    ap.add_argument("--from", dest="sender", default="sip:bob@sip.test")
    ap.add_argument("--to", default="sip:alice@xmpp.test")
    ap.add_argument("--body", default="retransmitted")
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--mode", choices=["after-final", "immediate"], default="after-final")
    ap.add_argument("--wait", type=float, default=15.0)
    args = ap.parse_args()
    if not 1 <= args.copies <= 10:
        ap.error("--copies must be 1..10")
    host, port = args.target.split(":")
    bhost, bport = args.bind.split(":")
    branch = "z9hG4bK" + uuid.uuid4().hex
    call_id = uuid.uuid4().hex + "@" + bhost
    packet = build(args, branch, call_id)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bhost, int(bport)))
    finals = []

    def collect(copy, until_final):
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data, _ = sock.recvfrom(65535)
            except socket.timeout:
                return
            resp = parse_response(data)
            if resp is None:
                continue
            resp["copy"] = copy
            print(json.dumps(resp), flush=True)
            if resp["status"] >= 200:
                finals.append(resp["status"])
                if until_final:
                    return

    if args.mode == "after-final":
        for copy in range(1, args.copies + 1):
            sock.sendto(packet, (host, int(port)))
            collect(copy, True)
    else:
        for _ in range(args.copies):
            sock.sendto(packet, (host, int(port)))
        collect(0, False)
    print(json.dumps({"done": True, "finals": finals}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
