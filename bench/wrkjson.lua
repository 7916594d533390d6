-- The one machine-readable line every bench wrk script prints (loaded with
-- dofile by bench/wake.lua, register.lua and wake_ext.lua). wrk counts
-- answers >= 400 in errors.status, so a failing server cannot pass for a
-- fast one.
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
