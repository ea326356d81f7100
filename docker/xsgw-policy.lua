-- The demo federation's policy (docker/compose.yaml mounts it into the xsgw
-- container): the gateway speaks for sip.test, listens on every interface of
-- the compose network, hands SIP to Kamailio and federates with Prosody's
-- xmpp.test. The addresses are the static ones compose.yaml assigns.
gateway {
  domains = { "sip.test" },
  xmpp = { listen = "0.0.0.0:5269" },
  -- Only Kamailio may send SIP requests to the gateway, and the container's
  -- own loopback, where the image's health check sends its OPTIONS from.
  sip  = { listen = { "udp:0.0.0.0:5060", "tcp:0.0.0.0:5060" }, next_hop = "udp:172.28.0.20:5060",
           trusted = { "172.28.0.20", "127.0.0.1" } },
}

-- Prosody offers STARTTLS with a self-signed certificate; dialback proves the domain.
partner "xmpp.test" { tls = "required", dialback = true, route = "172.28.0.30:5269" }
