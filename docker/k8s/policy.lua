-- The policy the Kubernetes example mounts (kustomization.yaml makes the
-- ConfigMap xsgw-policy from this file). Every replica runs it; the ConfigMap
-- is mounted as a directory, so an update reaches the pods through the
-- kubelet's `..data` symlink swap and each gateway reloads it on its own
-- (reload.watch), without a restart and without dropping a conversation.
gateway {
  domains = { "sip.example.com" },
  xmpp = {
    listen = "0.0.0.0:5269",
    -- Every replica must derive the same dialback keys: a peer's
    -- verification may reach another replica than the one that asked.
    -- Change it. A policy that holds secrets can be mounted from a Secret
    -- instead of a ConfigMap: its updates arrive the same way.
    dialback_secret = "change-me-to-a-long-random-secret",
  },
  sip = {
    listen = { "udp:0.0.0.0:5060", "tcp:0.0.0.0:5060" },
    next_hop = "udp:kamailio.sip.svc.cluster.local:5060",
    trusted = { "10.0.0.0/8", "127.0.0.1" },
  },
  -- The probes and Prometheus reach the admin listener on the pod's address.
  admin = { listen = "0.0.0.0:9269" },
  log = { format = "json" },
  reload = { watch = true, debounce = 1 },
  -- Below terminationGracePeriodSeconds (30) in deployment.yaml.
  drain = { deadline = 25 },
  -- Shared by the replicas; each owns the subscriptions it set up (named
  -- by its pod name), and another adopts them when it goes away.
  presence = { store = "redis://xsgw-redis:6379/0" },
}

partner "*" { tls = "required", dialback = true }
