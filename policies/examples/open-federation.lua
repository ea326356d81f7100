-- Open federation: any XMPP domain may chat with sip.example.com, as long as
-- its server negotiates TLS and passes dialback. (policies/examples/trust.lua
-- asks for certificates that validate instead.)
gateway {
  domains = { "sip.example.com" },
  tls = { cert = "/etc/xsgw/cert.pem", key = "/etc/xsgw/key.pem" },
  xmpp = {
    listen = "[::]:5269",
    dialback_secret = "replace with a long random string shared by all instances",
  },
  sip = {
    -- SIP stays on the internal network: only the edge proxy may send
    -- requests (sip.trusted), and the listeners are not on the Internet.
    -- tls: encrypts with the certificate above; without gateway.tls.ca the
    -- edge's own certificate is not verified (sip.tls.verify = "none"), so
    -- sip.trusted is what admits a sender.
    listen = { "udp:10.0.0.2:5060", "tcp:10.0.0.2:5060", "tls:10.0.0.2:5061" },
    next_hop = "tls:edge.sip.example.com",   -- port 5061
    trusted = { "10.0.0.0/24" },
  },
}

partner "*" { type = "unverified", tls = "required", dialback = true }
