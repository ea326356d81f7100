#!/usr/bin/python3
"""One command to a running baresip through its ctrl_tcp module (JSON in netstrings) and its
answer on stdout. `baresip_ctl.py ADDR:PORT contacts` prints one line per contact,
"URI<TAB>Status" (Online, Busy, Away, Offline, Unknown: baresip's reading of the PIDF it was
NOTIFYed), with the terminal colours removed; any other command prints baresip's text.
Exit status 1 when baresip does not answer within 5 s or says the command failed.
"""
import json
import re
import socket
import sys

MAX_ANSWER = 1 << 20


def ask(addr, command, params=""):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        msg = json.dumps({"command": command, "params": params, "token": "xs"}).encode()
        s.sendall(b"%d:%s," % (len(msg), msg))
        buf = b""
        while len(buf) < MAX_ANSWER:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            head, sep, rest = buf.partition(b":")
            if sep and head.isdigit() and len(rest) >= int(head) + 1:
                answer = json.loads(rest[:int(head)])
                if answer.get("response"):
                    return answer
                buf = rest[int(head) + 1:]
    raise TimeoutError("no answer from baresip")


def main():
    addr, command = sys.argv[1], sys.argv[2]
    try:
        answer = ask(addr, command, " ".join(sys.argv[3:]))
    except (OSError, ValueError, TimeoutError) as e:
        print(f"baresip_ctl: {e}", file=sys.stderr)
        return 1
    text = re.sub(r"\x1b\[[0-9;]*m", "", answer.get("data", ""))
    if command == "contacts":
        for line in text.splitlines():
            m = re.match(r"^>?\s*(\w+)\s+.*<(sip:[^>]+)>", line)
            if m:
                print(f"{m.group(2)}\t{m.group(1)}")
    else:
        sys.stdout.write(text)
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
