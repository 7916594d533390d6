-- wrk script for wakes by extension: each request wakes one of
-- WAKE_EXTENSIONS extensions ("w0" … ), whose devices the bench registered
-- beforehand, with the bench API key (WAKE_KEY).
local key = os.getenv("WAKE_KEY")
local exts = tonumber(os.getenv("WAKE_EXTENSIONS") or "1000")
local counter = 0

function init(args)
	counter = math.random(0, exts - 1)
end

function request()
	counter = counter + 1
	local body = string.format('{"extension":"w%d","call":{"id":"bench-%d@pbx","from":"+15551234567"}}',
		counter % exts, counter)
	return wrk.format("POST", "/v1/wake",
		{["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}, body)
end

-- the report line, from the file beside this one
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrkjson.lua")
