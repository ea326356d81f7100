-- The demo federation's policy (docker/compose.yaml mounts this directory
-- into both gateway instances): the gateway speaks for sip.test, listens on
-- every interface of the compose network, hands SIP to Kamailio and
-- federates with Prosody's xmpp.test. The addresses are the static ones
-- compose.yaml assigns. Edit it while the demo runs: both instances reload.
gateway {
  domains = { "sip.test" },
  -- The same dialback secret on both instances: Prosody may verify a key one
  -- instance issued by asking the other.
  xmpp = { listen = "0.0.0.0:5269", dialback_secret = "demo-secret-shared-by-both-instances" },
  -- Only Kamailio may send SIP requests to the gateway, and the container's
  -- own loopback, where the image's health check sends its OPTIONS from.
  sip  = { listen = { "udp:0.0.0.0:5060", "tcp:0.0.0.0:5060" }, next_hop = "udp:172.28.0.20:5060",
           trusted = { "172.28.0.20", "127.0.0.1" } },
  -- Metrics, status page and probes, published on the host's loopback only
  -- (compose.yaml's ports).
  admin = { listen = "0.0.0.0:9269" },
  -- Below compose.yaml's stop_grace_period (25 s).
  drain = { deadline = 20 },
  -- Both instances share the subscriptions; each owns those it set up (its
  -- container hostname names it), and the other adopts them when it stops.
  presence = { store = "redis://172.28.0.40:6379/0" },
}

-- Prosody offers STARTTLS with a self-signed certificate; dialback proves the domain.
partner "xmpp.test" { tls = "required", dialback = true, route = "172.28.0.30:5269" }
