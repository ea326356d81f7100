#!/usr/bin/python3
"""A bounded slixmpp client for the interop tests.

Logs in as --jid on Prosody's c2s port (self-signed certificate accepted), optionally sends
--send N chat messages to --to, and prints every message or message error it receives as one
JSON line until --expect stanzas have arrived or --timeout seconds have passed.

Lines printed (stdout, flushed at once, so a test can wait on them):
  {"ev": "online", "jid"}                         after login (the bound full JID), presence sent
  {"ev": "sent", "count": N}                      after the N messages left the client
  {"ev": "message", "from", "type", "body", "error", "error_type", "text"}
  {"ev": "done", "received": K, "reason": "count" | "timeout"}
  {"ev": "failed", "why": "..."}                  login or connection failure
Exit status: 0 when --expect stanzas arrived (or none were expected), 1 otherwise.
"""
import argparse
import asyncio
import json
import logging
import ssl
import sys
import time

import slixmpp


STANZAS_NS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"


def condition_of(err):
    """The defined condition element's name, read from the XML: slixmpp's own list of
    conditions lacks some of RFC 6120's (policy-violation) and reports those as empty."""
    for child in err.xml:
        tag = child.tag
        if tag.startswith(STANZAS_NS) and tag != STANZAS_NS + "text":
            return tag[len(STANZAS_NS):]
    return None


def emit(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


class Client(slixmpp.ClientXMPP):
    def __init__(self, args, finished):
        super().__init__(args.jid, args.password)
        self.args = args
        self.finished = finished
        self.received = 0
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("message_error", self.on_error)
        self.add_event_handler("failed_auth", lambda _: self.fail("authentication failed"))
        self.add_event_handler("connection_failed", lambda e: self.fail(f"connection: {e}"))

    def fail(self, why):
        emit({"ev": "failed", "why": why})
        if not self.finished.done():
            self.finished.set_result("failed")

    def check_done(self):
        if self.args.expect and self.received >= self.args.expect and not self.finished.done():
            self.finished.set_result("count")

    async def on_start(self, _event):
        self.send_presence()
        emit({"ev": "online", "jid": str(self.boundjid)})
        if self.args.send:
            for n in range(1, self.args.send + 1):
                body = self.args.body.replace("{n}", str(n))
                self.send_message(mto=self.args.to, mbody=body, mtype="chat")
                if self.args.pace:
                    await asyncio.sleep(self.args.pace)
            emit({"ev": "sent", "count": self.args.send})
        if not self.args.expect and not self.finished.done():
            # Give the send queue time to drain before the caller disconnects.
            await asyncio.sleep(self.args.linger)
            self.finished.set_result("count")

    def on_message(self, msg):
        if msg["type"] == "error":
            return
        self.received += 1
        emit({"ev": "message", "from": str(msg["from"]), "type": msg["type"],
              "body": msg["body"], "error": None, "error_type": None, "text": None})
        self.check_done()

    def on_error(self, msg):
        self.received += 1
        err = msg["error"]
        emit({"ev": "message", "from": str(msg["from"]), "type": "error", "body": msg["body"],
              "error": condition_of(err), "error_type": err["type"], "text": err["text"]})
        self.check_done()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jid", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--server", default="127.0.0.2")
    ap.add_argument("--port", type=int, default=5222)
    ap.add_argument("--to", help="recipient JID for --send")
    ap.add_argument("--send", type=int, default=0, help="messages to send (bounded)")
    ap.add_argument("--body", default="hello {n}", help="body; {n} is the 1-based index")
    ap.add_argument("--pace", type=float, default=0.0, help="seconds between sent messages")
    ap.add_argument("--expect", type=int, default=0, help="stanzas to receive before exiting")
    ap.add_argument("--timeout", type=float, default=20.0, help="overall limit in seconds")
    ap.add_argument("--linger", type=float, default=1.0, help="wait after sending, no --expect")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args()
    if args.send and not args.to:
        ap.error("--send needs --to")
    if not 0 <= args.send <= 100000 or not 0 <= args.expect <= 100000:
        ap.error("--send and --expect are limited to 100000")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR,
                        stream=sys.stderr)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    finished = loop.create_future()
    client = Client(args, finished)
    client.connect(address=(args.server, args.port))
    started = time.monotonic()
    try:
        reason = loop.run_until_complete(asyncio.wait_for(finished, args.timeout))
    except asyncio.TimeoutError:
        reason = "timeout"
    emit({"ev": "done", "received": client.received, "reason": reason,
          "seconds": round(time.monotonic() - started, 3)})
    try:
        loop.run_until_complete(asyncio.wait_for(client.disconnect(wait=2.0), 5))
    except (asyncio.TimeoutError, Exception):
        pass
    return 0 if reason == "count" else 1


if __name__ == "__main__":
    sys.exit(main())
