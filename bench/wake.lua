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

function done(summary, latency, requests)
	local e = summary.errors
	local secs = summary.duration / 1e6
	io.write(string.format(
		"WRKJSON {\"requests\":%d,\"duration_s\":%.3f,\"rps\":%.1f,\"http_errors\":%d," ..
		"\"socket_errors\":%d,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f}\n",
		summary.requests, secs, summary.requests / secs, e.status,
		e.connect + e.read + e.write + e.timeout,
		latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency:percentile(99.9) / 1e3))
end
