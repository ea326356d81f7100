-- Open federation: any XMPP domain may chat with sip.example.com, as long as
-- its server negotiates TLS and passes dialback.
gateway {
  domains = { "sip.example.com" },
  xmpp = {
    listen = "[::]:5269",
    tls = { cert = "/etc/xsgw/cert.pem", key = "/etc/xsgw/key.pem" },
    dialback_secret = "replace with a long random string shared by all instances",
  },
  sip = {
    listen = { "udp:0.0.0.0:5060", "tcp:0.0.0.0:5060" },
    next_hop = "tcp:edge.sip.example.com:5060",
  },
}

partner "*" { tls = "required", dialback = true }
