-- wrk script for the benchmark: POSTs the same wake (the JSON file named by
-- WAKE_BODY) over keep-alive connections with the bench API key (WAKE_KEY)
-- and prints one machine-readable line. wrk counts answers >= 400 in
-- errors.status, so a failing server cannot pass for a fast one; no Lua runs
-- per response, which keeps the client's own cost low.
local body_file = assert(os.getenv("WAKE_BODY"), "WAKE_BODY: path of the wake JSON")
local f = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("WAKE_KEY")
if key then
	wrk.headers["Authorization"] = "Bearer " .. key
end

-- the report line, from the file beside this one
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrkjson.lua")
