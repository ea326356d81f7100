#!/usr/bin/python3
"""A small scripted SIP presence user agent (UDP) for the interop tests.

It REGISTERs, PUBLISHes PIDF documents with RPID activities and notes (RFC 3863, 4480,
3903), SUBSCRIBEs to presence (RFC 3856, 6665) through a proxy, answers every NOTIFY with
200 and logs it, refreshes its subscriptions before they expire and ends them (Expires: 0).

Commands come from --do (in order, once the socket is bound) and from the lines appended to
--cmd FILE (polled, so a test can script the UA while it runs: `echo "publish open" >>FILE`).
Arguments are shell-quoted words; key=value options:
  register [expires=N]
  publish BASIC [note=TEXT] [lang=TAG] [person_note=TEXT] [activities=a,b] [expires=N]
                                  BASIC is open or closed; a later publish modifies the same
                                  publication (SIP-If-Match with the last SIP-ETag)
  unpublish                       PUBLISH Expires: 0 for the publication
  subscribe URI [expires=N] [refresh=auto|off]
                                  refresh=auto (default) re-SUBSCRIBEs at half the granted time
  refresh URI                     an in-dialog SUBSCRIBE now, with the last expires
  unsubscribe URI                 in-dialog SUBSCRIBE Expires: 0
  fetch URI                       SUBSCRIBE Expires: 0 outside any dialog (RFC 6665 4.4.3)
  message URI TEXT                a MESSAGE (text/plain)
  sleep SECONDS
  quit

Lines printed on stdout, one JSON object each, all with "t" (epoch seconds) and "ev":
  ready      {"contact"}
  response   {"method", "status", "reason", "uri", "expires", "etag", "min_expires"}
             the final response to one of our requests (408 when none came); for an
             in-dialog SUBSCRIBE "uri" is the URI subscribed to, not the remote target
  notify     {"from", "to", "call_id", "cseq", "state", "reason", "expires", "event",
              "content_type", "basic", "notes": [[lang, text]...], "activities": [...], "entity", "body",
              "pidf_error"}  basic/notes/activities are read from the PIDF body, if any
  request    {"method", "from", "to", "body"} any other request (answered 200, or 405)
  dialog     {"uri", "state"} a subscription dialog ended: "terminated" (by NOTIFY), "expired"
  refresh    {"uri", "expires"} an automatic refresh was sent
  error      {"why"}      e.g. a NOTIFY refused with 500 because its CSeq was not above the
                          dialog's last one (RFC 3261 12.2.2)
  done       {"reason"}
Exit status 0 unless the socket could not be bound. Everything is bounded: --timeout (total
run time), 8 s per transaction (UDP retransmissions at 0.5 s doubling), 64 KiB datagrams,
200 dialogs.
"""
import argparse
import json
import os
import select
import shlex
import socket
import sys
import time
import uuid
import xml.etree.ElementTree as ET

PIDF = "urn:ietf:params:xml:ns:pidf"
DM = "urn:ietf:params:xml:ns:pidf:data-model"
RPID = "urn:ietf:params:xml:ns:pidf:rpid"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
MAX_DIALOGS = 200
TXN_SECONDS = 8.0


def emit(ev, **kw):
    kw = {"t": round(time.time(), 3), "ev": ev, **kw}
    sys.stdout.write(json.dumps(kw, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def xml_text(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def pidf_document(entity, basic, note=None, lang=None, person_note=None, activities=()):
    """A PIDF document with one tuple and, when there are activities or a person note, an
    RPID person element."""
    lang_attr = f' xml:lang="{xml_text(lang)}"' if lang else ""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<presence xmlns="{PIDF}" xmlns:dm="{DM}" xmlns:rpid="{RPID}" '
        f'entity="{xml_text(entity)}">\n',
        f'  <tuple id="t{uuid.uuid4().hex[:8]}">\n',
        f"    <status><basic>{basic}</basic></status>\n",
    ]
    if note is not None:
        parts.append(f"    <note{lang_attr}>{xml_text(note)}</note>\n")
    parts.append("  </tuple>\n")
    if activities or person_note is not None:
        parts.append(f'  <dm:person id="p{uuid.uuid4().hex[:8]}">\n')
        if activities:
            acts = "".join(f"<rpid:{a}/>" for a in activities)
            parts.append(f"    <rpid:activities>{acts}</rpid:activities>\n")
        if person_note is not None:
            parts.append(f"    <dm:note{lang_attr}>{xml_text(person_note)}</dm:note>\n")
        parts.append("  </dm:person>\n")
    parts.append("</presence>\n")
    return "".join(parts)


def read_pidf(body):
    """basic (first tuple's), notes (tuple and person notes, in document order, with their
    xml:lang), RPID activities and the entity, or an error string."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        return {"pidf_error": str(e)}
    if root.tag != "{%s}presence" % PIDF:
        return {"pidf_error": "root element is " + root.tag}
    out = {"entity": root.get("entity"), "basic": None, "notes": [], "activities": []}
    for el in root.iter():
        name = el.tag.split("}")[-1]
        if name == "basic" and out["basic"] is None:
            out["basic"] = (el.text or "").strip()
        elif name == "note":
            out["notes"].append([el.get(XML_LANG), el.text or ""])
        elif el.tag == "{%s}activities" % RPID:
            for act in el:
                out["activities"].append(act.tag.split("}")[-1])
    return out


class Message:
    def __init__(self, data):
        text = data.decode("utf-8", "replace")
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.first = lines[0]
        parts = self.first.split(" ", 2)
        self.is_response = parts[0] == "SIP/2.0"
        if self.is_response:
            self.status = int(parts[1])
            self.reason = parts[2] if len(parts) > 2 else ""
        else:
            self.method, self.uri = parts[0], parts[1]
        self.headers = []  # (lower-case long name, value), in order, unfolded
        compact = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
                   "l": "content-length", "c": "content-type", "o": "event",
                   "e": "content-encoding", "k": "supported"}
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                n, v = self.headers[-1]
                self.headers[-1] = (n, v + " " + line.strip())
                continue
            name, _, value = line.partition(":")
            name = name.strip().lower()
            self.headers.append((compact.get(name, name), value.strip()))
        self.body = body

    def get(self, name, default=None):
        for n, v in self.headers:
            if n == name:
                return v
        return default

    def all(self, name):
        out = []
        for n, v in self.headers:
            if n == name:
                out.extend(split_commas(v))
        return out


def split_commas(value):
    out, cur, depth, quoted = [], "", 0, False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def uri_of(value):
    if "<" in value:
        return value[value.index("<") + 1:value.index(">")]
    return value.split(";")[0].strip()


def param(value, name):
    if "<" in value and ">" in value:
        value = value[value.index(">") + 1:]
    for p in value.split(";")[1:]:
        k, _, v = p.strip().partition("=")
        if k.lower() == name:
            return v
    return None


def hostport(uri):
    """(host, port) to send to for a sip: URI (no DNS: the tests use addresses)."""
    rest = uri.split(":", 1)[1]
    rest = rest.split(";")[0].split("?")[0]
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    host, _, port = rest.partition(":")
    return host, int(port or 5060)


class Dialog:
    def __init__(self, target, call_id, local_tag):
        self.target = target          # the URI we subscribed to (To)
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = None
        self.remote_target = None
        self.route_set = []
        self.cseq = 1
        self.expires = 0
        self.refresh_at = None
        self.auto = True
        self.ended = False
        self.remote_cseq = None   # the last CSeq of a NOTIFY accepted in this dialog


class UA:
    def __init__(self, args):
        self.args = args
        self.host, port = args.bind.split(":")
        self.port = int(port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, self.port))
        self.proxy = args.proxy.split(":")
        self.proxy = (self.proxy[0], int(self.proxy[1]))
        self.aor = f"sip:{args.user}@{args.domain}"
        self.contact = f"sip:{args.user}@{self.host}:{self.port}"
        self.pending = {}        # branch -> transaction
        # (call-id, cseq, top Via branch) -> response bytes: only a retransmission (the same
        # branch) is answered from here, so a new request reusing a CSeq is judged afresh.
        self.answered = {}
        self.dialogs = {}        # call-id -> Dialog
        self.etag = None
        self.pub_expires = 3600
        self.cseq_out = 1
        self.reg_call_id = uuid.uuid4().hex
        self.pub_call_id = uuid.uuid4().hex
        self.queue = []          # commands waiting, each a list of words
        self.sleep_until = 0.0
        self.quit = False

    # ---- sending -----------------------------------------------------------------------

    def send_request(self, method, uri, headers, body="", dest=None, on_final=None, label=None):
        branch = "z9hG4bK" + uuid.uuid4().hex
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport",
                 "Max-Forwards: 70"]
        lines += headers
        lines.append(f"User-Agent: xsgw-interop-ua")
        raw = body.encode("utf-8")
        lines.append(f"Content-Length: {len(raw)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + raw
        dest = dest or self.proxy
        now = time.monotonic()
        self.pending[branch] = {"data": data, "dest": dest, "method": method, "uri": label or uri,
                                "next": now + 0.5, "interval": 0.5,
                                "deadline": now + TXN_SECONDS, "on_final": on_final}
        self.sock.sendto(data, dest)

    def respond(self, req, addr, status, reason, extra=()):
        lines = [f"SIP/2.0 {status} {reason}"]
        to = req.get("to", "")
        if status >= 200 and "tag=" not in to:
            to += ";tag=" + uuid.uuid4().hex[:10]
        for name in ("via",):
            for v in req.all(name):
                lines.append(f"Via: {v}")
        lines += [f"From: {req.get('from', '')}", f"To: {to}",
                  f"Call-ID: {req.get('call-id', '')}", f"CSeq: {req.get('cseq', '')}"]
        lines += list(extra)
        lines.append("Content-Length: 0")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        self.answered[self.request_key(req)] = data
        if len(self.answered) > 2000:
            self.answered.pop(next(iter(self.answered)))
        self.sock.sendto(data, self.reply_address(req, addr))

    def reply_address(self, req, addr):
        """RFC 3261 18.2.2 with RFC 3581: the top Via's received/rport, else its sent-by."""
        via = req.all("via")[0] if req.all("via") else ""
        sent_by = via.split()[1].split(";")[0] if len(via.split()) > 1 else ""
        host, _, port = sent_by.partition(":")
        rport = param(";" + via.split(";", 1)[1] if ";" in via else "", "rport")
        received = param(";" + via.split(";", 1)[1] if ";" in via else "", "received")
        if rport:
            return (received or addr[0], int(rport))
        return (received or host or addr[0], int(port or 5060))

    # ---- commands ----------------------------------------------------------------------

    def opts(self, words):
        kv, pos = {}, []
        for w in words:
            if "=" in w and not w.startswith("sip:"):
                k, _, v = w.partition("=")
                kv[k] = v
            else:
                pos.append(w)
        return pos, kv

    def run_command(self, words):
        cmd, rest = words[0], words[1:]
        pos, kv = self.opts(rest)
        if cmd == "register":
            exp = int(kv.get("expires", 3600))
            self.cseq_out += 1
            self.send_request("REGISTER", f"sip:{self.args.domain}", [
                f"From: <{self.aor}>;tag={uuid.uuid4().hex[:10]}", f"To: <{self.aor}>",
                f"Call-ID: {self.reg_call_id}", f"CSeq: {self.cseq_out} REGISTER",
                f"Contact: <{self.contact}>", f"Expires: {exp}"])
        elif cmd == "publish":
            basic = pos[0] if pos else "open"
            acts = [a for a in kv.get("activities", "").split(",") if a]
            body = pidf_document(self.aor, basic, kv.get("note"), kv.get("lang"),
                                 kv.get("person_note"), acts)
            self.pub_expires = int(kv.get("expires", self.pub_expires))
            self.publish(body, self.pub_expires)
        elif cmd == "unpublish":
            self.publish("", 0)
        elif cmd == "subscribe":
            self.subscribe(pos[0], int(kv.get("expires", 600)), kv.get("refresh", "auto"))
        elif cmd in ("refresh", "unsubscribe"):
            d = self.dialog_for(pos[0])
            if d is None:
                emit("error", why=f"{cmd}: no dialog for {pos[0]}")
            else:
                self.in_dialog_subscribe(d, d.expires if cmd == "refresh" else 0)
        elif cmd == "fetch":
            self.subscribe(pos[0], 0, "off")
        elif cmd == "message":
            self.cseq_out += 1
            self.send_request("MESSAGE", pos[0], [
                f"From: <{self.aor}>;tag={uuid.uuid4().hex[:10]}", f"To: <{pos[0]}>",
                f"Call-ID: {uuid.uuid4().hex}", f"CSeq: {self.cseq_out} MESSAGE",
                "Content-Type: text/plain;charset=UTF-8"], pos[1] if len(pos) > 1 else "")
        elif cmd == "sleep":
            self.sleep_until = time.monotonic() + float(pos[0])
        elif cmd == "quit":
            self.quit = True
        else:
            emit("error", why=f"unknown command {cmd}")

    def publish(self, body, expires):
        self.cseq_out += 1
        headers = [f"From: <{self.aor}>;tag={uuid.uuid4().hex[:10]}", f"To: <{self.aor}>",
                   f"Call-ID: {self.pub_call_id}", f"CSeq: {self.cseq_out} PUBLISH",
                   "Event: presence", f"Expires: {expires}"]
        if self.etag:
            headers.append(f"SIP-If-Match: {self.etag}")
        if body:
            headers.append("Content-Type: application/pidf+xml")

        def done(resp):
            if resp is not None and 200 <= resp.status < 300:
                self.etag = resp.get("sip-etag", self.etag) if expires else None
            elif resp is not None and resp.status == 412:
                self.etag = None
        self.send_request("PUBLISH", self.aor, headers, body, on_final=done)

    def dialog_for(self, uri):
        for d in self.dialogs.values():
            if d.target == uri and not d.ended:
                return d
        return None

    def subscribe(self, uri, expires, refresh):
        if len(self.dialogs) >= MAX_DIALOGS:
            emit("error", why="too many dialogs")
            return
        d = Dialog(uri, uuid.uuid4().hex + "@" + self.host, uuid.uuid4().hex[:10])
        d.auto = refresh == "auto"
        d.expires = expires
        self.dialogs[d.call_id] = d
        headers = [f"From: <{self.aor}>;tag={d.local_tag}", f"To: <{uri}>",
                   f"Call-ID: {d.call_id}", f"CSeq: {d.cseq} SUBSCRIBE",
                   f"Contact: <{self.contact}>", "Event: presence",
                   "Accept: application/pidf+xml", f"Expires: {expires}"]
        self.send_request("SUBSCRIBE", uri, headers,
                          on_final=lambda resp: self.subscribed(d, resp))

    def in_dialog_subscribe(self, d, expires):
        d.cseq += 1
        d.expires = expires if expires else d.expires
        if expires == 0:
            d.auto = False
            d.refresh_at = None
        to = f"<{d.target}>" + (f";tag={d.remote_tag}" if d.remote_tag else "")
        headers = [f"From: <{self.aor}>;tag={d.local_tag}", f"To: {to}",
                   f"Call-ID: {d.call_id}", f"CSeq: {d.cseq} SUBSCRIBE",
                   f"Contact: <{self.contact}>", "Event: presence",
                   "Accept: application/pidf+xml", f"Expires: {expires}"]
        headers += [f"Route: {r}" for r in d.route_set]
        uri = d.remote_target or d.target
        dest = hostport(uri_of(d.route_set[0])) if d.route_set else hostport(uri)
        self.send_request("SUBSCRIBE", uri, headers, dest=dest, label=d.target,
                          on_final=lambda resp: self.subscribed(d, resp, expires == 0))

    def subscribed(self, d, resp, ending=False):
        if resp is None or resp.status >= 300:
            if resp is not None and resp.status == 481:
                d.ended = True
            if d.remote_tag is None:
                d.ended = True
            elif d.auto and not d.ended and not ending:
                # A refresh that failed for a while (the notifier restarting) is tried again
                # soon; the subscription is still valid until its expiry (RFC 6665 4.1.2.2).
                d.refresh_at = time.monotonic() + 2.0
            return
        tag = param(resp.get("to", ""), "tag")
        if d.remote_tag is None:
            d.remote_tag = tag
            d.route_set = list(reversed(resp.all("record-route")))
            if resp.get("contact"):
                d.remote_target = uri_of(resp.get("contact"))
        granted = resp.get("expires")
        if granted is not None and granted.strip().isdigit():
            d.expires = int(granted) if not ending else 0
        if d.auto and d.expires > 0:
            d.refresh_at = time.monotonic() + max(1.0, d.expires / 2.0)

    # ---- receiving ---------------------------------------------------------------------

    def on_datagram(self, data, addr):
        try:
            msg = Message(data)
        except (ValueError, IndexError):
            emit("error", why="unparsable datagram from %s:%d" % addr)
            return
        if msg.is_response:
            self.on_response(msg)
        else:
            self.on_request(msg, addr)

    def on_response(self, resp):
        via = resp.all("via")
        branch = param(";" + via[0].split(";", 1)[1], "branch") if via and ";" in via[0] else None
        txn = self.pending.get(branch)
        if txn is None:
            return
        if resp.status < 200:
            txn["next"] = txn["deadline"]  # provisional: stop retransmitting, wait
            txn["deadline"] = time.monotonic() + 32
            return
        del self.pending[branch]
        emit("response", method=txn["method"], status=resp.status, reason=resp.reason,
             uri=txn["uri"], expires=resp.get("expires"), etag=resp.get("sip-etag"),
             min_expires=resp.get("min-expires"))
        if txn["on_final"]:
            txn["on_final"](resp)

    @staticmethod
    def request_key(req):
        via = req.all("via")
        branch = param(";" + via[0].split(";", 1)[1], "branch") if via and ";" in via[0] else None
        return (req.get("call-id"), req.get("cseq"), branch)

    def on_request(self, req, addr):
        key = self.request_key(req)
        if key in self.answered:
            self.sock.sendto(self.answered[key], self.reply_address(req, addr))
            return
        if req.method == "NOTIFY":
            self.on_notify(req, addr)
        elif req.method == "ACK":
            return
        elif req.method in ("MESSAGE", "OPTIONS"):
            emit("request", method=req.method, **{"from": uri_of(req.get("from", "")),
                 "to": uri_of(req.get("to", "")), "body": req.body})
            self.respond(req, addr, 200, "OK")
        else:
            emit("request", method=req.method, **{"from": uri_of(req.get("from", "")),
                 "to": uri_of(req.get("to", "")), "body": req.body})
            self.respond(req, addr, 405, "Method Not Allowed",
                         ["Allow: NOTIFY, MESSAGE, OPTIONS"])

    def on_notify(self, req, addr):
        d = self.dialogs.get(req.get("call-id"))
        state_hdr = req.get("subscription-state", "")
        state = state_hdr.split(";")[0].strip().lower()
        info = {"from": uri_of(req.get("from", "")), "to": uri_of(req.get("to", "")),
                "call_id": req.get("call-id"), "cseq": req.get("cseq"), "state": state,
                "reason": param(";" + state_hdr.split(";", 1)[1], "reason")
                if ";" in state_hdr else None,
                "expires": param(";" + state_hdr.split(";", 1)[1], "expires")
                if ";" in state_hdr else None,
                "event": req.get("event"), "content_type": req.get("content-type"),
                "basic": None, "notes": [], "activities": [], "entity": None,
                "body": req.body, "pidf_error": None}
        if req.body.strip():
            info.update(read_pidf(req.body.encode("utf-8")))
        emit("notify", **info)
        if d is None or d.local_tag != param(req.get("to", ""), "tag"):
            self.respond(req, addr, 481, "Subscription Does Not Exist")
            return
        # RFC 3261 12.2.2: a request whose CSeq is not above the last one in the dialog is
        # out of order (or a notifier that reuses CSeqs, e.g. after a restart) and is refused.
        cseq = (req.get("cseq") or "0").split()[0]
        cseq = int(cseq) if cseq.isdigit() else 0
        if d.remote_cseq is not None and cseq <= d.remote_cseq:
            emit("error", why=f"NOTIFY CSeq {cseq} not above {d.remote_cseq} in the dialog "
                              f"with {d.target}")
            self.respond(req, addr, 500, "Bad CSeq")
            return
        d.remote_cseq = cseq
        self.respond(req, addr, 200, "OK")
        if d.remote_tag is None:
            d.remote_tag = param(req.get("from", ""), "tag")
            d.route_set = req.all("record-route")
        if req.get("contact"):
            d.remote_target = uri_of(req.get("contact"))
        if state == "terminated":
            d.ended = True
            d.refresh_at = None
            emit("dialog", uri=d.target, state="terminated")

    # ---- the loop ----------------------------------------------------------------------

    def timers(self):
        now = time.monotonic()
        for branch, txn in list(self.pending.items()):
            if now >= txn["deadline"]:
                del self.pending[branch]
                emit("response", method=txn["method"], status=408, reason="no response",
                     uri=txn["uri"], expires=None, etag=None, min_expires=None)
                if txn["on_final"]:
                    txn["on_final"](None)
            elif now >= txn["next"]:
                self.sock.sendto(txn["data"], txn["dest"])
                txn["interval"] = min(txn["interval"] * 2, 4.0)
                txn["next"] = now + txn["interval"]
        for d in self.dialogs.values():
            if d.refresh_at is not None and now >= d.refresh_at and not d.ended:
                d.refresh_at = None
                emit("refresh", uri=d.target, expires=d.expires)
                self.in_dialog_subscribe(d, d.expires)

    def read_commands(self, state):
        path = self.args.cmd
        if not path or not os.path.exists(path):
            return
        with open(path, "rb") as f:
            f.seek(state["offset"])
            chunk = f.read(65536)
        state["buf"] += chunk
        state["offset"] += len(chunk)
        while b"\n" in state["buf"]:
            line, state["buf"] = state["buf"].split(b"\n", 1)
            words = shlex.split(line.decode("utf-8"))
            if words:
                self.queue.append(words)

    def run(self):
        emit("ready", contact=self.contact)
        self.queue = [shlex.split(c) for c in self.args.do]
        state = {"offset": 0, "buf": b""}
        end = time.monotonic() + self.args.timeout
        reason = "timeout"
        while time.monotonic() < end:
            self.read_commands(state)
            while self.queue and time.monotonic() >= self.sleep_until and not self.quit:
                self.run_command(self.queue.pop(0))
            if self.quit and not self.pending:
                reason = "quit"
                break
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if ready:
                data, addr = self.sock.recvfrom(65535)
                self.on_datagram(data, addr)
            self.timers()
        emit("done", reason=reason)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--user", required=True)
    ap.add_argument("--domain", default="sip.test")
    ap.add_argument("--bind", required=True, help="ADDR:PORT of the UA")
    ap.add_argument("--proxy", default="127.0.0.4:5060", help="outbound proxy ADDR:PORT")
    ap.add_argument("--do", action="append", default=[], help="a command, run at start")
    ap.add_argument("--cmd", help="file whose appended lines are commands")
    ap.add_argument("--timeout", type=float, default=60.0, help="total run time, seconds")
    args = ap.parse_args()
    if not 0 < args.timeout <= 3600:
        ap.error("--timeout must be in (0, 3600]")
    try:
        ua = UA(args)
    except OSError as e:
        emit("error", why=f"bind {args.bind}: {e}")
        return 2
    ua.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
