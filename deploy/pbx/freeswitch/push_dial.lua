-- FreeSWITCH 1.10: ring a user whose RFC 8599 mobile app may be asleep,
-- waking it through pushgw. NOT TESTED HERE (FreeSWITCH is not packaged in
-- Debian 12): written against the FreeSWITCH 1.10 documentation of the Lua
-- API, sofia_contact and the sofia::register event; pushgw is called with
-- the curl tool. See README.md.
--
-- Dialplan: <action application="lua" data="push_dial.lua $1 ${domain_name}"/>
--   1. registrations of the user whose Contact has pn-provider (or pn-type)
--      are woken with POST /v1/wake; if there are others, they ring at once;
--   2. otherwise the call waits (PUSH_HOLD_S at most) for a woken app to
--      register again (sofia::register) and rings that new Contact;
--   3. POST /v1/cancel: caller_cancelled if the caller hangs up first or
--      nobody answers, answered_elsewhere to the others when one answers.
-- Settings: environment PUSHGW_URL, PUSHGW_KEY (scope "wake"), PUSH_HOLD_S.

local ext, domain = argv[1], argv[2]
local profile = "internal"
local url = os.getenv("PUSHGW_URL") or "http://127.0.0.1:8080"
local key = os.getenv("PUSHGW_KEY") or ""
local hold_s = tonumber(os.getenv("PUSH_HOLD_S") or "30")
local api = freeswitch.API()

local function is_push(uri)
	return uri:find(";pn%-provider=") ~= nil or uri:find(";pn%-type=") ~= nil
end

local function json_str(s)
	s = tostring(s or "")
	s = s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end)
	return '"' .. s .. '"'
end

-- POST to pushgw with the curl tool, its options on stdin (the key stays
-- out of the process list); returns the answer's body.
local function pushgw(path, body)
	local out = os.tmpname()
	local p = io.popen("curl -sS --max-time 3 --config - -o '" .. out .. "'", "w")
	local function q(v) return '"' .. v:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"' end
	p:write("url = ", q(url .. path), "\n")
	p:write("header = ", q("Content-Type: application/json"), "\n")
	p:write("header = ", q("Authorization: Bearer " .. key), "\n")
	p:write("data-binary = ", q(body), "\n")
	p:close()
	local f = io.open(out)
	local answer = f and f:read("*a") or ""
	if f then f:close() end
	os.remove(out)
	return answer
end

local function devices_json(uris)
	local parts = {}
	for _, u in ipairs(uris) do parts[#parts + 1] = "{" .. json_str("contact") .. ":" .. json_str(u) .. "}" end
	return "[" .. table.concat(parts, ",") .. "]"
end

local function pn_prid(uri) return uri:match(";pn%-prid=([^;>]*)") end

local function cancel(uris, reason, keep_uri)
	local keep = keep_uri and pn_prid(keep_uri)
	local left = {}
	for _, u in ipairs(uris) do
		if not keep or pn_prid(u) ~= keep then left[#left + 1] = u end
	end
	if #left == 0 then return end
	pushgw("/v1/cancel", '{"devices":' .. devices_json(left) .. ',"call":{"id":' ..
		json_str(session:getVariable("sip_call_id")) .. '},"reason":' .. json_str(reason) .. "}")
end

-- The user's registrations: "sofia/internal/sip:…" dial strings.
local push, direct = {}, {}
local contacts = api:execute("sofia_contact", string.format("%s/%s@%s", profile, ext, domain)) or ""
for dial in contacts:gmatch("[^,]+") do
	local uri = dial:match("^sofia/[^/]+/(.*)$")
	if uri and is_push(uri) then push[#push + 1] = uri
	elseif uri then direct[#direct + 1] = dial end
end

if #push == 0 then
	if #direct == 0 then session:hangup("USER_NOT_REGISTERED") return end
	session:execute("bridge", table.concat(direct, ","))
	return
end

-- Subscribe before the wake, so that no re-registration is missed.
local reg = freeswitch.EventConsumer("CUSTOM", "sofia::register")
local body = '{"devices":' .. devices_json(push) .. ',"call":{"id":' ..
	json_str(session:getVariable("sip_call_id")) .. ',"from":' ..
	json_str(session:getVariable("caller_id_number")) .. ',"from_name":' ..
	json_str(session:getVariable("caller_id_name")) .. ',"to":' .. json_str(ext) ..
	'},"ttl":' .. hold_s .. ',"timeout_ms":2000}'
local result = pushgw("/v1/wake", body) or ""
local sent = result:find('"status":"sent"') ~= nil

if #direct > 0 then
	-- A running bridge cannot take the woken app: the others ring now.
	session:execute("bridge", table.concat(direct, ","))
	local answered = session:getVariable("originate_disposition") == "SUCCESS"
	cancel(push, answered and "answered_elsewhere" or "caller_cancelled")
	return
end
if not sent then
	session:hangup("TEMPORARY_FAILURE")
	return
end

-- Wait for a woken app to register again; ring its new Contact.
local fresh
local deadline = os.time() + hold_s
while session:ready() and os.time() < deadline and not fresh do
	local ev = reg:pop(1, 200)
	if ev and ev:getHeader("from-user") == ext then
		local c = (ev:getHeader("contact") or ""):match("<([^>]+)>") or ev:getHeader("contact")
		if c and is_push(c) then fresh = c end
	end
end
if not fresh then
	cancel(push, "caller_cancelled")
	if session:ready() then session:hangup("NO_USER_RESPONSE") end
	return
end
session:execute("bridge", "sofia/" .. profile .. "/" .. fresh)
local answered = session:getVariable("originate_disposition") == "SUCCESS"
if answered then
	cancel(push, "answered_elsewhere", fresh)
else
	cancel(push, "caller_cancelled")
end
