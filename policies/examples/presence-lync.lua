-- Presence with an OCS/Lync/Skype for Business-style presence server on the
-- SIP side: its documents carry Microsoft availability numbers (3500 online,
-- 6500 busy, 9500 do not disturb, 12500 be right back, 15500 away, 18500
-- offline) that say more than <basic> open/closed, and activity names of
-- its own. The numbers decide (ranges in lua/xsgw/presence.lua), and
-- presence from XMPP carries them too, so Lync clients show the right
-- colour. Adjust the activity names to what your server sends.
gateway {
  domains = { "sip.test" },
  xmpp = { listen = "127.0.0.1:5269" },
  sip = { listen = { "tcp:127.0.0.1:5060" }, next_hop = "tcp:127.0.0.1:5070",
          contact = "127.0.0.1:5060" },
  presence = { expires = 3600, max_per_user = 500 },
}

partner "xmpp.test" { tls = "required", dialback = true }

presence_map {
  ms_availability = true,
  activity_to_show = {
    ["in-a-meeting"] = "dnd",
    ["in-a-conference"] = "dnd",
    ["urgent-interruptions-only"] = "dnd",
    ["off-work"] = "xa",
  },
  -- A Lync user who is away for long shows as xa, a short absence as away
  -- (the defaults); XMPP "chat" shows as plain online.
}

-- Colleagues on the SIP side already see each other through the presence
-- server; a subscription from one of them to a partner's XMPP user is
-- approved for the watcher at once, and the XMPP user's own answer still
-- decides what they see. XMPP users' requests go to the SIP user as usual.
function on_subscribe(s)
  if s.origin == "sip" then return "approve" end
  return "allow"
end

-- Lync's out-of-office note goes with "offline"; it does not leave the
-- company.
function on_presence(p)
  if p.origin == "sip" and p.type == "unavailable" then p.status = nil end
  return p
end
