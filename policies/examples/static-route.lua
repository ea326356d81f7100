-- A legacy partner without DNS records and without TLS, reached through a
-- static route, next to a normal partner found through SRV.
gateway {
  domains = { "sip.test", "voice.sip.test" },
  xmpp = { listen = "0.0.0.0:5269", idle_timeout = 300 },
  sip = { listen = { "tcp:0.0.0.0:5060" }, next_hop = "tcp:127.0.0.1:5070" },
}

partner "xmpp.test" { tls = "required", dialback = true }
partner "legacy.test" { tls = "optional", dialback = true, route = "127.0.0.5:5269" }
