#!/usr/bin/python3
"""Turns the JSON lines of sip_ua.py or presence_client.py (stdin) into one tab-separated
line per event of one kind, the exact form the presence scenarios compare:

  notify        from  state[;reason=R]  basic  notes  activities
                notes are "[lang]text" joined by " | " ("-" when none, lang "-" when
                absent; a note repeated with the same language, as in the tuple and
                the person element, is listed once), activities space-separated ("-" when none); basic "-" when the
                NOTIFY has no PIDF body; "pidf-error" when the body did not parse
  response      method  uri  status
  request       method  from  body
  dialog        uri  state
  refresh       uri  expires
  presence      bare-from  type  show  status   (available/unavailable/probe/error; error:
                the condition instead of show; "-" for what is absent; the priority is
                not compared: RFC 8048 leaves it to the gateway)
  subscription  bare-from  type                           (subscribe, subscribed,
                                                           unsubscribe, unsubscribed)
  roster        jid  subscription  ask
  error         why                                   (sip_ua.py's refusals, e.g. a NOTIFY
                                                       CSeq that went backwards)
"""
import json
import sys

SUB_TYPES = ("subscribe", "subscribed", "unsubscribe", "unsubscribed")


def d(v):
    return "-" if v is None or v == "" else str(v)


def bare(jid):
    return (jid or "").split("/")[0]


def line(kind, e):
    ev = e.get("ev")
    if kind == "notify" and ev == "notify":
        state = d(e["state"]) + (";reason=" + e["reason"] if e.get("reason") else "")
        if e.get("pidf_error"):
            return "\t".join([e["from"], state, "pidf-error", "-", "-"])
        # The same note in the tuple and in the RPID person (both are allowed) is one note.
        notes = []
        for lang, text in e["notes"]:
            if f"[{d(lang)}]{text}" not in notes:
                notes.append(f"[{d(lang)}]{text}")
        notes = " | ".join(notes) or "-"
        return "\t".join([e["from"], state, d(e["basic"]), notes,
                          " ".join(e["activities"]) or "-"])
    if kind == "response" and ev == "response":
        return "\t".join([e["method"], e["uri"], str(e["status"])])
    if kind == "request" and ev == "request":
        return "\t".join([e["method"], e["from"], e["body"]])
    if kind == "dialog" and ev == "dialog":
        return "\t".join([e["uri"], e["state"]])
    if kind == "refresh" and ev == "refresh":
        return "\t".join([e["uri"], str(e["expires"])])
    if ev == "presence":
        if kind == "presence" and e["type"] not in SUB_TYPES:
            third = e["error"] if e["type"] == "error" else e["show"]
            return "\t".join([bare(e["from"]), e["type"], d(third), d(e["status"])])
        if kind == "subscription" and e["type"] in SUB_TYPES:
            return "\t".join([bare(e["from"]), e["type"]])
    if kind == "error" and ev == "error":
        return e["why"]
    if kind == "roster" and ev == "roster":
        return "\t".join([e["jid"], d(e["subscription"]), d(e["ask"])])
    return None


def main():
    kind = sys.argv[1]
    for raw in sys.stdin:
        try:
            e = json.loads(raw)
        except ValueError:
            continue
        out = line(kind, e)
        if out is not None:
            print(out)


if __name__ == "__main__":
    main()
