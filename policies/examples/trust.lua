-- Trust on both links: every partner is authenticated by a certificate
-- that validates for its domain, unless named otherwise; two SIP domains
-- with an identity each; the SIP edge reached over mutual TLS.
-- `xsgw validate DOMAIN` shows what a partner presents and offers before it
-- is added here.
gateway {
  domains = { "sip.example.com", "voice.example.com" },

  tls = {
    -- The default identity, and one more for the second domain (chosen by
    -- SNI, or by the local domain of an outbound stream).
    cert = "/etc/xsgw/sip.example.com.pem", key = "/etc/xsgw/sip.example.com.key",
    certs = {
      { cert = "/etc/xsgw/voice.example.com.pem", key = "/etc/xsgw/voice.example.com.key" },
    },
    -- What partners' and the SIP edge's certificates are verified against.
    ca = "/etc/ssl/certs/ca-certificates.crt",
  },

  xmpp = {
    listen = "[::]:5269",
    listen_tls = "[::]:5270", -- Direct TLS (XEP-0368): _xmpps-server._tcp SRV records
  },

  sip = {
    listen = { "tls:[::]:5061" },
    next_hop = "tls:edge.example.com",
    tls = {
      verify = "ca",                       -- the default here, since tls.ca is set
      name = "edge.example.com",           -- what the next hop must present
      peers = { "edge.example.com", "*.edge.example.com" }, -- who may connect to us
    },
    keepalive = 30, -- CRLF keepalives on idle TLS connections (RFC 5626)
  },
}

-- A large partner that authenticates with its certificate only (SASL
-- EXTERNAL; dialback defaults to off with sasl = "required"), with its
-- conference and pubsub services under the same rules.
partner "example.org" {
  type = "verified",
  sasl = "required",
  domains = { "conference.example.org", "pubsub.example.org" },
  max_connections = 8,
  keepalive = 60,
}

-- A partner whose server has no certificate from a public CA yet:
-- dialback is enough, over TLS.
partner "small.example.net" { type = "unverified", tls = "required", dialback = true }

-- Our own company's XMPP service: its users' presence subscriptions are
-- approved without asking.
partner "chat.example.com" { type = "federated" }

-- Everyone else: federation with any domain whose certificate validates.
partner "*" { type = "verified" }
