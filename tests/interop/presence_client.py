#!/usr/bin/python3
"""A scripted slixmpp client for the presence scenarios (RFC 6121 rosters and presence).

Logs in as --jid (c2s, self-signed certificate accepted), fetches its roster, sends its
initial presence (--show/--status/--priority, or none with --no-initial), then runs commands
from --do (in order) and from the lines appended to --cmd FILE (polled). Commands, as
shell-quoted words, key=value options:
  subscribe JID                   <presence type='subscribe'> (roster add, RFC 6121 3.1.1)
  unsubscribe JID                 <presence type='unsubscribe'>
  approve JID                     <presence type='subscribed'> (pre-approves when nothing
                                  is pending, RFC 6121 3.4)
  deny JID                        <presence type='unsubscribed'>
  remove JID                      roster remove (the server sends unsubscribe + unsubscribed)
  auto approve|deny|off           what to answer incoming subscribe requests with
  presence [show=S] [status=TEXT] [lang=TAG] [priority=N] [to=JID]
                                  available presence, broadcast (or directed with to=)
  unavailable [status=TEXT] [lang=TAG] [to=JID]
  probe JID                       <presence type='probe'> (servers may drop it from a client)
  roster                          fetch the roster again and print it
  sleep SECONDS
  quit                            unavailable presence, then disconnect

Lines printed (stdout, JSON, flushed), all with "t" (epoch seconds) and "ev":
  online       {"jid"}            after login, roster fetched and initial presence sent
  presence     {"from", "to", "type", "show", "status", "lang", "priority", "error"}
               every presence stanza received, subscription types included; type is
               "available" for presence without a type attribute
  roster       {"jid", "subscription", "ask", "name"}  every roster item after a roster
               fetch or push
  answered     {"jid", "type"}    what auto answered to a subscribe request
  failed       {"why"}
  done         {"reason"}
Bounded by --timeout (total seconds, default 60); exit status 0 unless login failed.
"""
import argparse
import asyncio
import json
import logging
import os
import shlex
import ssl
import sys
import time

import slixmpp

STANZAS_NS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def emit(ev, **kw):
    kw = {"t": round(time.time(), 3), "ev": ev, **kw}
    sys.stdout.write(json.dumps(kw, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def error_condition(stanza):
    for child in stanza.xml:
        if child.tag.endswith("}error"):
            for c in child:
                if c.tag.startswith(STANZAS_NS) and c.tag != STANZAS_NS + "text":
                    return c.tag[len(STANZAS_NS):]
            return "unknown"
    return None


def status_of(stanza):
    """The <status> text and its xml:lang, read from the XML (slixmpp merges languages); a
    status without its own xml:lang has the stanza's (RFC 6120 8.1.5)."""
    for child in stanza.xml:
        if child.tag == "{jabber:client}status":
            return child.text or "", child.get(XML_LANG, stanza.xml.get(XML_LANG))
    return None, None


class Client(slixmpp.ClientXMPP):
    def __init__(self, args, finished):
        super().__init__(args.jid, args.password)
        self.args = args
        self.finished = finished
        self.auto = args.auto
        self.queue = []
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        # Subscription requests are answered by this script, never by slixmpp on its own.
        self.roster.auto_authorize = None
        self.roster.auto_subscribe = False
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("presence", self.on_presence)
        self.add_event_handler("roster_update", self.on_roster)
        self.add_event_handler("failed_auth", lambda _: self.fail("authentication failed"))
        self.add_event_handler("connection_failed", lambda e: self.fail(f"connection: {e}"))

    def fail(self, why):
        emit("failed", why=why)
        if not self.finished.done():
            self.finished.set_result("failed")

    async def on_start(self, _event):
        try:
            await self.get_roster(timeout=10)
        except Exception as e:  # an unanswered roster get is a failed login for the tests
            self.fail(f"roster: {e}")
            return
        if not self.args.no_initial:
            self.send_status(self.args.show, self.args.status, None, self.args.priority, None)
        emit("online", jid=str(self.boundjid))
        asyncio.ensure_future(self.command_loop())

    def on_roster(self, iq):
        for jid, item in iq["roster"]["items"].items():
            emit("roster", jid=str(jid), subscription=item["subscription"],
                 ask=item["ask"] or None, name=item["name"] or None)

    def on_presence(self, pres):
        ptype = pres["type"]
        if ptype in ("away", "chat", "dnd", "xa", ""):
            ptype = "available"
        status, lang = status_of(pres)
        prio = pres.xml.find("{jabber:client}priority")
        emit("presence", **{"from": str(pres["from"]), "to": str(pres["to"]), "type": ptype,
                            "show": pres["show"] or None, "status": status, "lang": lang,
                            "priority": int(prio.text) if prio is not None and prio.text
                            else None, "error": error_condition(pres)
                            if ptype == "error" else None})
        if ptype == "subscribe" and self.auto in ("approve", "deny"):
            answer = "subscribed" if self.auto == "approve" else "unsubscribed"
            self.send_presence(pto=pres["from"].bare, ptype=answer)
            emit("answered", jid=pres["from"].bare, type=answer)

    def send_status(self, show, status, lang, priority, to, ptype=None):
        p = self.make_presence(pto=to, pshow=show or None, ppriority=priority, ptype=ptype)
        if status is not None:
            st = p.xml.makeelement("{jabber:client}status", {})
            st.text = status
            if lang:
                st.set(XML_LANG, lang)
            p.xml.append(st)
        p.send()

    async def command_loop(self):
        offset, buf = 0, b""
        self.queue = [shlex.split(c) for c in self.args.do]
        while not self.finished.done():
            path = self.args.cmd
            if path and os.path.exists(path):
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read(65536)
                offset += len(chunk)
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    words = shlex.split(line.decode("utf-8"))
                    if words:
                        self.queue.append(words)
            while self.queue and not self.finished.done():
                await self.run_command(self.queue.pop(0))
            await asyncio.sleep(0.05)

    async def run_command(self, words):
        cmd, rest = words[0], words[1:]
        kv, pos = {}, []
        for w in rest:
            if "=" in w:
                k, _, v = w.partition("=")
                kv[k] = v
            else:
                pos.append(w)
        if cmd in ("subscribe", "unsubscribe", "probe"):
            self.send_presence(pto=pos[0], ptype=cmd)
        elif cmd == "approve":
            self.send_presence(pto=pos[0], ptype="subscribed")
        elif cmd == "deny":
            self.send_presence(pto=pos[0], ptype="unsubscribed")
        elif cmd == "remove":
            try:
                await self.del_roster_item(pos[0], timeout=10)
            except Exception as e:
                emit("failed", why=f"roster remove {pos[0]}: {e}")
        elif cmd == "auto":
            self.auto = pos[0]
        elif cmd == "presence":
            self.send_status(kv.get("show"), kv.get("status"), kv.get("lang"),
                          int(kv["priority"]) if "priority" in kv else None, kv.get("to"))
        elif cmd == "unavailable":
            self.send_status(None, kv.get("status"), kv.get("lang"), None, kv.get("to"),
                             "unavailable")
        elif cmd == "roster":
            try:
                await self.get_roster(timeout=10)
            except Exception as e:
                emit("failed", why=f"roster: {e}")
        elif cmd == "sleep":
            await asyncio.sleep(float(pos[0]))
        elif cmd == "quit":
            if not self.finished.done():
                self.finished.set_result("quit")
        else:
            emit("failed", why=f"unknown command {cmd}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jid", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--server", default="127.0.0.2")
    ap.add_argument("--port", type=int, default=5222)
    ap.add_argument("--show", help="initial presence <show>")
    ap.add_argument("--status", help="initial presence <status>")
    ap.add_argument("--priority", type=int, help="initial presence <priority>")
    ap.add_argument("--no-initial", action="store_true", help="send no initial presence")
    ap.add_argument("--auto", choices=["approve", "deny", "off"], default="off",
                    help="answer to incoming subscription requests")
    ap.add_argument("--do", action="append", default=[], help="a command, run after login")
    ap.add_argument("--cmd", help="file whose appended lines are commands")
    ap.add_argument("--timeout", type=float, default=60.0, help="total run time, seconds")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args()
    if not 0 < args.timeout <= 3600:
        ap.error("--timeout must be in (0, 3600]")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR, stream=sys.stderr)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    finished = loop.create_future()
    client = Client(args, finished)
    client.connect(address=(args.server, args.port))
    try:
        reason = loop.run_until_complete(asyncio.wait_for(finished, args.timeout))
    except asyncio.TimeoutError:
        reason = "timeout"
    if reason != "failed":
        try:
            client.send_presence(ptype="unavailable")
        except Exception:
            pass
    emit("done", reason=reason)
    try:
        loop.run_until_complete(asyncio.wait_for(client.disconnect(wait=2.0), 5))
    except (asyncio.TimeoutError, Exception):
        pass
    return 1 if reason == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
