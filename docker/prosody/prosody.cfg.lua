-- Prosody for the xsgw demo: the XMPP domain xmpp.test, federating with the
-- SIP domain sip.test through the gateway.

admins = { }
pidfile = "/run/prosody/prosody.pid"
log = { info = "*console" }

modules_enabled = {
    "roster"; "saslauth"; "tls"; "dialback"; "disco"; "carbons"; "pep";
    "private"; "vcard_legacy"; "version"; "uptime"; "time"; "ping";
}

authentication = "internal_hashed"
-- Demo accounts use plain c2s inside the compose network.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true

-- The gateway offers STARTTLS with a self-signed certificate and proves its
-- domain with dialback: encryption yes, certificate trust no.
s2s_require_encryption = true
s2s_secure_auth = false

-- libunbound answers NXDOMAIN for *.test (RFC 6761) without asking; let it
-- ask Docker's resolver, where sip.test is an alias of the gateway.
unbound = { resolvconf = true; options = { ["local-zone"] = "test. transparent" } }

VirtualHost "xmpp.test"
    ssl = {
        key = "/etc/prosody/certs/xmpp.test.key";
        certificate = "/etc/prosody/certs/xmpp.test.crt";
    }
