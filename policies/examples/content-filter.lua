-- A content filter: refuse messages with a forbidden phrase, tag messages
-- that arrive from XMPP, and keep one partner at arm's length.
gateway {
  domains = { "sip.test" },
  xmpp = { listen = "127.0.0.1:5269" },
  sip = { listen = { "udp:127.0.0.1:5060" }, next_hop = "udp:127.0.0.1:5070" },
}

partner "xmpp.test" { tls = "required", dialback = true }
partner "partner.example" { tls = "required", dialback = true }

local blocked = { "forbidden word", "wire transfer" }

function on_message(m)
  local body = m.body:lower()
  for _, phrase in ipairs(blocked) do
    if body:find(phrase, 1, true) then
      return reject("policy-violation", "this gateway does not carry that")
    end
  end
  if m.origin == "xmpp" and m.from:find("@partner%.example$") then
    m.subject = "[external] " .. (m.subject or "")
  end
  return m
end
