-- wrk script for the registry part of the benchmark: every request PUTs a
-- new device (its own device id and token) under one of REG_EXTENSIONS
-- extensions, with the bench API key (WAKE_KEY). Threads draw from
-- disjoint number ranges, so no two requests register the same token.
local key = os.getenv("WAKE_KEY")
local exts = tonumber(os.getenv("REG_EXTENSIONS") or "50000")
local threads = 0
local counter = 0

function setup(thread)
	threads = threads + 1
	thread:set("base", threads * 100000000 + math.random(0, 1000000) * 10)
end

function init(args)
	counter = base
end

function request()
	counter = counter + 1
	local body = string.format('{"provider":"apns","token":"%064x","app":"phone"}', counter)
	return wrk.format("PUT", string.format("/v1/extensions/r%d/devices/d%d", counter % exts, counter),
		{["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}, body)
end

-- the report line, from the file beside this one
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrkjson.lua")
