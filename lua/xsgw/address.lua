-- Address mapping between XMPP JIDs and SIP URIs (RFC 7247 §6, with RFC 7622
-- and XEP-0106). Whether a domain, localpart, resource or JID is valid is
-- decided by the gateway's one address validator (core/addr.c), which the C
-- core registers as "xsgw.addr"; the same rules hold on both sides.
--
-- XMPP -> SIP (§6.5): "local@domain/resource" becomes
-- "sip:local@domain;gr=resource". The resource travels as the GRUU (§6.5
-- step 8; RFC 7572 §4 note 1 requires it for the sender). A localpart that
-- carries XEP-0106 escapes ("\40" for "@" ...) is unescaped first, and every
-- byte the SIP "user" production (RFC 3261 §25.1) does not allow is
-- percent-encoded.
--
-- SIP -> XMPP (§6.4): "sip:user@host;params?headers" becomes "user@host",
-- or "user@host/gr" when the URI carries a "gr" parameter (§6.4 step 8; RFC
-- 7572 §5 note 1). The URI is split at its first '@' (step 2) before
-- parameters are cut, since the user part may hold ';' and '?'. The user
-- part is percent-decoded; a character that RFC 7622 forbids in a localpart
-- (" & ' / : < > @ and space) is then written with its XEP-0106 escape, so
-- the mapping is reversible and never produces an invalid JID. A user part
-- that starts or ends with a space is refused: XEP-0106 forbids "\20" there.
--
-- Failures return nil and a condition name ("jid-malformed").

local addr = require("xsgw.addr")

local M = {}

local MAX_PART = 1023

-- RFC 3261 user = 1*( unreserved / escaped / user-unreserved )
local function sip_user_char(c)
    return c:match("^[%w%-_%.!~%*'%(%)&=%+%$,;%?/]$") ~= nil
end

-- XEP-0106 §3.1: the characters a localpart cannot hold, and their escapes.
-- The hex digits are lower case, and "CASE IS SIGNIFICANT": "\2F" is no
-- escape.
local jid_escapes = {
    [" "] = "\\20", ['"'] = "\\22", ["&"] = "\\26", ["'"] = "\\27", ["/"] = "\\2f",
    [":"] = "\\3a", ["<"] = "\\3c", [">"] = "\\3e", ["@"] = "\\40",
}
local jid_unescapes = {}
for c, e in pairs(jid_escapes) do jid_unescapes[e:sub(2)] = c end
jid_unescapes["5c"] = "\\"

local function lower_domain(d)
    d = d:lower()
    if d:sub(-1) == "." then d = d:sub(1, -2) end
    return d
end

local function percent_decode(s)
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- A '%' that does not start "%hh" cannot be decoded.
local function bad_percent(s)
    return s:gsub("%%%x%x", ""):find("%%") ~= nil
end

-- Splits a JID into localpart (or nil), domain, resource (or nil).
function M.split_jid(jid)
    if not addr.valid_jid(jid) then return nil end
    local bare, resource = jid:match("^([^/]*)/(.*)$")
    if not bare then bare = jid end
    local localpart, domain = bare:match("^([^@]*)@(.*)$")
    if not localpart then domain = bare end
    return localpart, lower_domain(domain), resource
end

-- The domain of a JID, lower-cased, or nil.
function M.jid_domain(jid)
    local _, domain = M.split_jid(jid)
    return domain
end

-- Splits a SIP URI into user (decoded, or nil), host, and the decoded value
-- of a "gr" parameter (or nil).
function M.split_sip(uri)
    if type(uri) ~= "string" or #uri > 4096 or utf8.len(uri) == nil then return nil end
    local scheme, rest = uri:match("^(%a[%w+%-.]*):(.*)$")
    if not scheme then return nil end
    scheme = scheme:lower()
    if scheme ~= "sip" and scheme ~= "sips" and scheme ~= "im" and scheme ~= "pres" then
        return nil
    end
    rest = rest:gsub("^//", "")
    -- §6.4 step 2: split at the first '@'; the user part may hold ';' and '?'.
    local user, after = rest:match("^([^@]*)@(.*)$")
    if not user then after = rest end
    local hostport, params = after:match("^([^;?]*)(.*)$")
    if user then
        user = user:match("^([^:]*)") -- a password never belongs in a JID
        if user == "" or bad_percent(user) then return nil end
        user = percent_decode(user)
        if #user > MAX_PART or utf8.len(user) == nil or user:find("%c") then return nil end
    end
    local host = hostport:match("^(%[.-%])") or hostport:match("^([^:]*)")
    host = lower_domain(host or "")
    if not addr.valid_domain(host) then return nil end
    local gr
    params = params:match("^([^?]*)")
    for name, value in params:gmatch(";([^;=]*)=?([^;]*)") do
        if name:lower() == "gr" and value ~= "" then gr = value end
    end
    if gr then
        if bad_percent(gr) then return nil end
        gr = percent_decode(gr)
        if not addr.valid_resource(gr) then return nil end
    end
    return user, host, gr
end

-- The host of a SIP URI, lower-cased, or nil.
function M.sip_domain(uri)
    local _, host = M.split_sip(uri)
    return host
end

-- A decoded SIP user part as a localpart, or nil when XEP-0106 cannot
-- express it (a leading or trailing space would become "\20" there).
function M.escape_localpart(user)
    if user:find("^ ") or user:find(" $") then return nil end
    return (user:gsub("\\(%x%x)", function(h)
        -- A backslash that already reads as an escape must be escaped itself
        -- (XEP-0106 §4.2), or the reverse mapping would change it.
        if jid_unescapes[h] then return "\\5c" .. h end
    end):gsub('[ "&\'/:<>@]', jid_escapes))
end

-- A localpart with its XEP-0106 escapes undone, or nil when it starts or
-- ends with "\20", which is no valid escaped localpart.
function M.unescape_localpart(localpart)
    if localpart:find("^\\20") or localpart:find("\\20$") then return nil end
    return (localpart:gsub("\\(%x%x)", function(h) return jid_unescapes[h] end))
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
        local user = M.unescape_localpart(localpart)
        if not user then return nil, "jid-malformed" end
        uri = "sip:" .. percent_encode(user) .. "@" .. domain
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
        if not localpart or not addr.valid_localpart(localpart) then
            return nil, "jid-malformed"
        end
        jid = localpart .. "@" .. host
    end
    if gr then jid = jid .. "/" .. gr end
    if not addr.valid_jid(jid) then return nil, "jid-malformed" end
    return jid
end

return M
