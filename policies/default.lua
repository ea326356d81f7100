-- The default policy of xsgw: a gateway for the SIP domain sip.test that
-- federates with the XMPP domain xmpp.test, on loopback ports. Copy it,
-- change the domains and addresses, and point xsgw --policy at your copy.
-- `xsgw --check FILE` validates a policy without starting anything;
-- SIGHUP makes a running gateway reload it.

gateway {
  -- The SIP domains this gateway speaks for. XMPP servers reach them through
  -- the SRV record _xmpp-server._tcp.<domain>, which must point here.
  domains = { "sip.test" },

  -- max_body = 262144,  bytes of the largest message body carried (1 KiB to
  --                     1 MiB); a larger one is refused with policy-violation
  --                     (SIP: the mapped error) before on_message sees it.
  --                     xmpp.max_stanza and sip.max_message follow it.

  -- tls = {                 the certificates the gateway presents (XMPP and
  --                           SIP alike) and the ones it trusts
  --   cert = "/etc/xsgw/cert.pem", key = "/etc/xsgw/key.pem",
  --                           the default identity: PEM, leaf first, then its
  --                           chain. Without any, a self-signed certificate for
  --                           the domains above is generated at start (Prosody
  --                           accepts it for dialback with its default
  --                           s2s_secure_auth = false; verified partners do not).
  --   certs = { { cert = "/etc/xsgw/voice.pem", key = "/etc/xsgw/voice.key" } },
  --                           more identities, each presented for the names in
  --                           its certificate (SNI, or a stream's local domain);
  --                           without cert, the first of these is the default
  --   ca = "/etc/ssl/certs",  CA bundle (PEM file or directory) the certificates
  --                           of partners and of the SIP edge are verified
  --                           against; needed by every verify = "ca"
  --   crl = "/etc/xsgw/crl.pem",  revocation lists (PEM), checked with ca
  -- },                       The files are read at start and at every reload;
  --                          --check does not open them.

  xmpp = {
    -- Server-to-server listener (RFC 6120). Use "0.0.0.0:5269" or "[::]:5269"
    -- to accept streams from the network.
    listen = "127.0.0.1:5269",
    -- listen_tls = "0.0.0.0:5270",
    --   Direct TLS listener (XEP-0368): TLS from the first byte, found by
    --   peers through _xmpps-server._tcp.<domain>. A port of its own.
    -- tls = { cert = ..., key = ... },
    --   The older spelling of gateway.tls's cert and key (still read; not
    --   together with gateway.tls).
    -- dialback_secret = "...",
    --   Secret the dialback keys are derived from (XEP-0185). Set the same
    --   value on every instance behind one SRV record; without it each start
    --   picks a random one.
    -- connect_timeout = 30,   seconds to set up an outbound stream
    -- idle_timeout = 600,     seconds before an idle stream is closed
    -- max_stanza = ...,       bytes of one stanza; larger ones end the stream
    --                         (default max_body + 16384, at least max_body + 4096)
    -- queue_max = 1000,       stanzas waiting per remote domain during set-up
    -- stream_management = "always",
    --                         XEP-0198 acknowledgements on outbound streams:
    --                         a SIP MESSAGE gets its 200 once the XMPP server
    --                         acknowledged the stanza. "always" asks every peer
    --                         after dialback (Prosody with mod_smacks accepts,
    --                         though it offers it only after SASL; ejabberd
    --                         ignores it; a peer that ends the stream on it is
    --                         not asked again for an hour); "offered" asks only
    --                         peers whose stream features offer it; "off" never.
    -- error_grace = 0.25,     seconds a SIP MESSAGE's final response waits,
    --                         after its stanza went out, for an error stanza
    --                         from the XMPP server (unknown user, ...), so that
    --                         the SIP sender gets that error instead of a 200,
    --                         where the peer does not acknowledge (no XEP-0198).
    --                         Below SIP's T1 (0.5 s), so a UDP sender does not
    --                         retransmit. 0 answers 200 once the stanza is written.
    -- max_streams = {          how many s2s streams the gateway holds:
    --   inbound = 10000,         inbound streams in all
    --   outbound = 10000,        outbound streams in all
    --   unauthenticated = 1000,  inbound streams before dialback (the oldest is
    --                            closed for a newcomer over the cap)
    --   unauthenticated_per_source = 8,  of those, from one address (IPv6: /64)
    --   per_domain = 32,         inbound streams authenticated for one domain
    -- },                       Each stream is a file descriptor: the gateway
    --                          raises its soft RLIMIT_NOFILE to the hard one and
    --                          shrinks these (and says so) when that is too low.
  },

  sip = {
    -- Where SIP requests arrive: "udp:HOST:PORT" or "tcp:HOST:PORT".
    listen = { "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060" },
    -- Where MESSAGEs for SIP users go: the SIP edge proxy (Kamailio, ...).
    next_hop = "udp:127.0.0.1:5070",
    -- The SIP peers whose requests are accepted (addresses or networks,
    -- IPv4 or IPv6); everyone else gets 403. Default: the next hop's
    -- addresses, looked up at start and at every reload.
    -- trusted = { "127.0.0.1", "10.0.0.0/24", "fd00::/8" },
    -- max_message = ...,      bytes of one SIP message
    --                         (default max_body + 16384, at least max_body + 4096)
    -- contact = "HOST:PORT",  the address the SIP edge sends NOTIFYs and other
    --                         in-dialog requests to (the Contact of the gateway's
    --                         SUBSCRIBEs and answers); set it when the listeners
    --                         bind a wildcard or sit behind NAT. Default: the
    --                         first listener of the transport in use.
    -- tls = {                 how tls: listeners and next hops are checked (only
    --                         with a tls: transport)
    --   verify = "ca",          "ca": the edge's certificate must validate against
    --                           gateway.tls.ca and name the edge; the gateway asks
    --                           for a client certificate on inbound TLS. Default
    --                           "ca" when gateway.tls.ca is given, else "none".
    --   name = "edge.sip.test", the identity the next hop must present
    --                           (default: the next hop's host)
    --   peers = { "edge1.sip.test", "*.edge.sip.test" },
    --                           identities accepted on inbound TLS ("*." covers
    --                           one label); default: name, or the next hop's host
    -- },
    -- keepalive = 0,          seconds between CRLF keepalives (RFC 5626) on idle
    --                         tcp: and tls: connections, 0 to 3600; 0: off
  },

  -- presence = {            presence and subscriptions (RFC 8048)
  --   enabled = true,         false: presence and subscription requests are
  --                           refused with service-unavailable
  --   store = "/var/lib/xsgw/presence.db",
  --                           the subscription store, kept across restarts
  --                           (default: in the gateway's state directory)
  --   expires = 3600,         seconds a subscription is asked for and granted
  --   min_expires = 60,       shorter SIP requests get 423 Interval Too Brief
  --                           (1 at least; tests use short expiries)
  --   max_expires = 86400,    longer requests are granted this much
  --   max_per_user = 1000,    subscriptions one watcher may hold
  --   max_per_domain = 20000, subscriptions of one federated XMPP domain
  --   max_total = 100000,     subscriptions in all
  -- },
  -- A default gives way to the values set (expires = 20 alone brings
  -- min_expires down to 20); values set that contradict each other are refused.

  -- log = {
  --   bodies = true,          message bodies in the logs (off: privacy by default)
  --   format = "json",        one JSON object per line, for log shippers
  -- },                        (default "text": ts=... level=... ev=... key=value)

  -- admin = { listen = "127.0.0.1:9269" },
  --                           the admin listener: /metrics (Prometheus),
  --                           /status and /status.json, /healthz, /readyz.
  --                           No authentication: keep it on loopback or a
  --                           private network. admin = false: none.
  -- reload = { watch = true, debounce = 0.5 },
  --                           reload when this file, or a certificate, key, CA
  --                           or CRL file it names, changes (editors' renames
  --                           and Kubernetes ConfigMap updates included), once
  --                           the changes have been quiet for `debounce`
  --                           seconds. SIGHUP reloads as well. A policy that
  --                           fails its checks is not loaded; the running one
  --                           stays.
  -- drain = { deadline = 25 },
  --                           on SIGTERM: stop taking new streams and requests,
  --                           deliver or answer what is held, and exit within
  --                           this many seconds (keep it below your
  --                           orchestrator's grace period).
}

-- The federated XMPP domains: nothing from or to any other domain crosses
-- the gateway. partner "*" { } sets the rules for every domain not named
-- (and federates with all of them). The keys, with their defaults:
--   type = "unverified"   "unverified": dialback is enough.
--                         "verified": a certificate that validates for the
--                           domain is required, whatever authenticates it
--                           (defaults to verify = "ca"; needs tls = "required"
--                           and gateway.tls.ca).
--                         "federated": verified, and its users are trusted:
--                           their presence subscriptions are approved without
--                           asking (unless on_subscribe decides).
--   tls = "required"      "optional", or "none": never STARTTLS nor Direct TLS
--                         with it. "required" refuses dialback in the clear.
--   sasl = "optional"     SASL EXTERNAL (the certificate authenticates the
--                         domain): "required" (only that; dialback then
--                         defaults to false) or "none" (the default when
--                         tls = "none").
--   dialback = true       Server Dialback (XEP-0220) allowed and used.
--   verify = "none"       "ca": its certificate must validate against
--                         gateway.tls.ca and name the domain ("ca" for the
--                         verified and federated types).
--   domains = { ... }     more domains it hosts ("conf.xmpp.test"), same rules.
--   max_connections = N   streams with it, in and out (default: no own cap).
--   keepalive = 0         seconds of silence before a whitespace keepalive.
--   idle_timeout = N      seconds (default xmpp.idle_timeout).
--   route = "HOST:PORT"   skips DNS for that domain.
-- --check refuses rules that cannot work together, and says which to change.
partner "xmpp.test" { type = "unverified", tls = "required", dialback = true }

-- on_message(m) sees every message after address mapping and may return it
-- (changed or not), or reject("condition", "text") to refuse it; the sender
-- then gets the matching error. Without the hook every message passes.
-- function on_message(m)
--   return m
-- end

-- Presence (RFC 8048) is mapped by the tables of lua/xsgw/presence.lua:
-- <basic> open/closed <-> available/unavailable, <note> <-> <status>, the
-- XMPP <show> values <-> RPID activities (RFC 4480), and optionally the
-- Microsoft availability numbers. presence_map replaces entries (false
-- removes one); --check validates them:
-- presence_map {
--   activity_to_show = { meeting = "xa" },   -- an RFC 4480 activity -> show
--   show_to_activity = { chat = "working" }, -- a show -> activity names
--   ms_availability = true,                  -- read and write the numbers
--   priority = 0,                            -- <priority> of SIP presence
-- }
--
-- on_presence(p) sees every presence update and probe after mapping, with
-- both vocabularies filled (p.show, p.status, p.priority for XMPP; p.basic,
-- p.note, p.activities, p.availability for SIP); return p (changed or not)
-- or nil to pass it, drop() or false to discard it quietly, reject(...) to
-- refuse it.
-- function on_presence(p)
--   return p
-- end
--
-- on_subscribe(s) decides each subscription request (s.type "subscribe"):
-- "allow" (the default: the presentity's answer decides), "approve" (tell
-- the watcher it is approved without waiting), "pending" (ask nobody yet),
-- "deny", or reject("condition", "text").
-- function on_subscribe(s)
--   return "allow"
-- end
