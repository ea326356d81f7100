-- Address mapping between XMPP JIDs and SIP URIs (RFC 7247 §4 and §5).
--
-- XMPP -> SIP: "local@domain/resource" becomes "sip:local@domain". The
-- resource has no place in an address-of-record and is dropped (RFC 7247
-- §4.1: the gateway maps the bare JID). A localpart that carries XEP-0106
-- escapes ("\40" for "@" ...) is unescaped first, and every byte the SIP
-- "user" production (RFC 3261 §25.1) does not allow is percent-encoded.
--
-- SIP -> XMPP: "sip:user@host;params?headers" becomes "user@host". The user
-- part is percent-decoded; a character that RFC 7622 forbids in a localpart
-- (" & ' / : < > @ and space) is then written with its XEP-0106 escape, so
-- the mapping is reversible and never produces an invalid JID.
--
-- Failures return nil and a condition name ("jid-malformed").

local M = {}

local MAX_PART = 1023

-- RFC 3261 user = 1*( unreserved / escaped / user-unreserved )
local function sip_user_char(c)
    return c:match("^[%w%-_%.!~%*'%(%)&=%+%$,;%?/]$") ~= nil
end

-- XEP-0106 §3.1: the characters a localpart cannot hold, and their escapes.
local jid_escapes = {
    [" "] = "\\20", ['"'] = "\\22", ["&"] = "\\26", ["'"] = "\\27", ["/"] = "\\2f",
    [":"] = "\\3a", ["<"] = "\\3c", [">"] = "\\3e", ["@"] = "\\40",
}
local jid_unescapes = {}
for c, e in pairs(jid_escapes) do jid_unescapes[e:sub(2)] = c end
jid_unescapes["5c"] = "\\"

local function valid_utf8(s)
    return utf8.len(s) ~= nil
end

local function lower_domain(d)
    d = d:lower()
    if d:sub(-1) == "." then d = d:sub(1, -2) end
    return d
end

local function valid_domain(d)
    if d == "" or #d > 253 then return false end
    if d:find("[%c%s@/\\%%<>\"'&:%[%]]") and not d:match("^%[[%x:%.]+%]$") then return false end
    return valid_utf8(d)
end

local function percent_decode(s)
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- RFC 7622 §3.4: a resourcepart is 1..1023 bytes of UTF-8; controls are
-- refused here as everywhere else in an address.
local function valid_resource(r)
    return r ~= "" and #r <= MAX_PART and valid_utf8(r) and not r:find("%c")
end

-- Splits a JID into localpart (or nil), domain, resource (or nil).
function M.split_jid(jid)
    if type(jid) ~= "string" or jid == "" or #jid > 3071 or not valid_utf8(jid) then
        return nil
    end
    local bare, resource = jid:match("^([^/]*)/(.*)$")
    if not bare then bare = jid end
    if resource == "" then return nil end
    local localpart, domain = bare:match("^(.*)@(.*)$")
    if not localpart then domain = bare end
    if localpart == "" or (localpart and #localpart > MAX_PART) then return nil end
    if localpart and localpart:find("[%c\"&'/:<>@%s]") then return nil end
    domain = lower_domain(domain)
    if not valid_domain(domain) then return nil end
    return localpart, domain, resource
end

-- The domain of a JID, lower-cased, or nil.
function M.jid_domain(jid)
    local _, domain = M.split_jid(jid)
    return domain
end

-- Splits a SIP URI into user (decoded, or nil), host, and the decoded value
-- of a "gr" parameter (or nil).
function M.split_sip(uri)
    if type(uri) ~= "string" or #uri > 4096 or not valid_utf8(uri) then return nil end
    local scheme, rest = uri:match("^(%a[%w+%-.]*):(.*)$")
    if not scheme then return nil end
    scheme = scheme:lower()
    if scheme ~= "sip" and scheme ~= "sips" and scheme ~= "im" and scheme ~= "pres" then
        return nil
    end
    rest = rest:gsub("^//", "")
    local params = rest:match("^[^;?]*(;[^?]*)") or ""
    rest = rest:match("^([^;?]*)")
    local user, hostport = rest:match("^(.*)@(.*)$")
    if not user then hostport = rest end
    if user then
        user = user:match("^([^:]*)") -- a password never belongs in a JID
        if user == "" then return nil end
        local bad = false
        user = user:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
        if user:find("%%") or not valid_utf8(user) or user:find("%c") then bad = true end
        if bad or #user > MAX_PART then return nil end
    end
    local host = hostport:match("^(%[.-%])") or hostport:match("^([^:]*)")
    host = lower_domain(host or "")
    if not valid_domain(host) then return nil end
    local gr
    for name, value in params:gmatch(";([^;=]*)=?([^;]*)") do
        if name:lower() == "gr" and value ~= "" then gr = value end
    end
    if gr then
        gr = percent_decode(gr)
        if not valid_resource(gr) then return nil end
    end
    return user, host, gr
end

-- The host of a SIP URI, lower-cased, or nil.
function M.sip_domain(uri)
    local _, host = M.split_sip(uri)
    return host
end

function M.escape_localpart(user)
    return (user:gsub("\\(%x%x)", function(h)
        -- A backslash that already reads as an escape must be escaped itself
        -- (XEP-0106 §4.2), or the reverse mapping would change it.
        if jid_unescapes[h:lower()] then return "\\5c" .. h end
    end):gsub('[ "&\'/:<>@]', jid_escapes))
end

function M.unescape_localpart(localpart)
    return (localpart:gsub("\\(%x%x)", function(h) return jid_unescapes[h:lower()] end))
end

local function percent_encode(user)
    return (user:gsub(".", function(c)
        if sip_user_char(c) then return c end
        return string.format("%%%02X", c:byte())
    end))
end

-- RFC 3261 pvalue = 1*paramchar (param-unreserved / unreserved / escaped).
local function param_encode(v)
    return (v:gsub("[^%w%[%]/:&%+%$%-_%.!~%*'%(%)]", function(c)
        return string.format("%%%02X", c:byte())
    end))
end

-- JID -> "sip:user@domain", with the resource as the GRUU ";gr=" (RFC 7247
-- §6.5 step 8; RFC 7572 §4 note 1 makes it a MUST for the sender), or nil,
-- "jid-malformed".
function M.to_sip(jid)
    local localpart, domain, resource = M.split_jid(jid)
    if not domain then return nil, "jid-malformed" end
    local uri = "sip:" .. domain
    if localpart then
        uri = "sip:" .. percent_encode(M.unescape_localpart(localpart)) .. "@" .. domain
    end
    if resource then uri = uri .. ";gr=" .. param_encode(resource) end
    return uri
end

-- SIP URI -> "local@domain", or "local@domain/gr" when the URI names a GRUU
-- (RFC 7247 §6.4 step 8, RFC 7572 §5 note 1), or nil, "jid-malformed".
function M.to_xmpp(uri)
    local user, host, gr = M.split_sip(uri)
    if not host then return nil, "jid-malformed" end
    local jid = host
    if user then
        local localpart = M.escape_localpart(user)
        if #localpart > MAX_PART then return nil, "jid-malformed" end
        jid = localpart .. "@" .. host
    end
    if gr then jid = jid .. "/" .. gr end
    return jid
end

return M
