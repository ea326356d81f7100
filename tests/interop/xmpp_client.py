#!/usr/bin/python3
"""A bounded slixmpp client for the interop tests.

Logs in as --jid on Prosody's c2s port (self-signed certificate accepted), optionally sends
--send N chat messages to --to, and prints every message or message error it receives as one
JSON line until --expect stanzas have arrived or --timeout seconds have passed.

With --rate R the N messages are offered at R a second, paced by the clock (message k is due
k/R seconds after the first; whatever is due goes out at once, so a slow turn of the loop is
caught up, not lost), as a load generator does: --send 18000 --rate 300 is 60 s of load.
In --body, {n} is the message's 1-based index and {t} the wall-clock time it was handed to
the stream (seconds since the epoch, microseconds), for the receiver's latency.

Lines printed (stdout, flushed at once, so a test can wait on them):
  {"ev": "online", "jid"}                         after login (the bound full JID), presence sent
  {"ev": "sent", "count": N, "seconds", "rate", "max_lag_ms"}
                                                  after the N messages were handed to the stream:
                                                  how long that took, the rate reached, and how
                                                  far behind its schedule the pacing fell at most
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
            started = time.monotonic()
            lag = await (self.send_paced() if self.args.rate else self.send_all())
            took = time.monotonic() - started
            emit({"ev": "sent", "count": self.args.send, "seconds": round(took, 3),
                  "rate": round(self.args.send / took, 1) if took > 0 else None,
                  "max_lag_ms": round(lag * 1000.0, 1)})
        if not self.args.expect and not self.finished.done():
            # Give the send queue time to drain before the caller disconnects.
            await asyncio.sleep(self.args.linger)
            self.finished.set_result("count")

    def send_one(self, n):
        body = self.args.body.replace("{n}", str(n))
        if "{t}" in body:
            body = body.replace("{t}", "%.6f" % time.time())
        msg = self.make_message(mto=self.args.to, mbody=body, mtype="chat")
        if self.args.id_prefix:
            msg["id"] = "%s%d" % (self.args.id_prefix, n)
        msg.send()

    async def send_all(self):
        for n in range(1, self.args.send + 1):
            self.send_one(n)
            if self.args.pace:
                await asyncio.sleep(self.args.pace)
        return 0.0

    async def send_paced(self):
        """Message n is due (n - 1) / rate seconds after the start; each turn sends what is
        due, then sleeps until the next one is. Returns the largest lag behind schedule."""
        rate, total = self.args.rate, self.args.send
        start = time.monotonic()
        sent, lag = 0, 0.0
        while sent < total:
            now = time.monotonic()
            due = min(total, int((now - start) * rate) + 1)
            if due > sent:
                lag = max(lag, now - (start + sent / rate))
            while sent < due:
                sent += 1
                self.send_one(sent)
            if sent < total:
                await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
        return lag

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
              "error": condition_of(err), "error_type": err["type"], "text": err["text"],
              "id": msg["id"]})
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
    ap.add_argument("--body", default="hello {n}",
                    help="body; {n} is the 1-based index, {t} the send time (epoch seconds)")
    ap.add_argument("--id-prefix", help="sent message n gets the id PREFIX<n> (errors echo it)")
    ap.add_argument("--pace", type=float, default=0.0, help="seconds between sent messages")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="messages a second, paced by the clock (instead of --pace)")
    ap.add_argument("--expect", type=int, default=0, help="stanzas to receive before exiting")
    ap.add_argument("--timeout", type=float, default=20.0, help="overall limit in seconds")
    ap.add_argument("--linger", type=float, default=1.0, help="wait after sending, no --expect")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args()
    if args.send and not args.to:
        ap.error("--send needs --to")
    if not 0 <= args.send <= 100000 or not 0 <= args.expect <= 100000:
        ap.error("--send and --expect are limited to 100000")
    if not 0 <= args.rate <= 10000 or (args.rate and args.pace):
        ap.error("--rate is limited to 10000 a second and excludes --pace")
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
