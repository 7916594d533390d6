#!/usr/bin/env bash
# Observability end to end: /metrics passes `promtool check metrics`, has the
# families SPEC §3 lists with values that follow real traffic, and neither
# metrics nor logs (at debug level) carry a token, key, secret or extension.
source tests/integration/lib.sh

command -v promtool >/dev/null || { echo "test_metrics: needs promtool (Debian package prometheus; scripts/deps.sh)" >&2; exit 1; }
PY=""
for p in python3 /usr/bin/python3; do
	if "$p" -c 'import json' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "test_metrics: needs python3" >&2; exit 1; }

# Distinctive values that must never show in /metrics or the log.
EXT="ext4242x"
DEV_IDS=(urn:uuid:metrics-dev-a metrics-dev-b metrics-dev-c)
SECRET_KEY_TRY="not-a-key-6f1d0c2e9ab34f57"

start_sim A
write_config "$WORK/gw.json" A '.log.level = "debug"'
start_gw G "$WORK/gw.json" || exit 1

# scrape NAME: /metrics into $WORK/metrics.txt and, parsed, $WORK/metrics.json
# ([{name, labels, value}] plus {types, helps}); sets SCRAPE_STATUS/CTYPE.
scrape() {
	local port="GW_PORT_$1"
	SCRAPE_STATUS=$(curl -sS -o "$WORK/metrics.txt" -D "$WORK/metrics.hdr" -w '%{http_code}' \
		"http://127.0.0.1:${!port}/metrics")
	SCRAPE_CTYPE=$(grep -i '^content-type:' "$WORK/metrics.hdr" | tr -d '\r' | cut -d' ' -f2-)
	"$PY" - "$WORK/metrics.txt" >"$WORK/metrics.json" <<'PYEOF'
import json, re, sys
samples, types, helps = [], {}, {}
line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ", 3)
        types[name] = kind
    elif line.startswith("# HELP "):
        parts = line.split(" ", 3)
        helps[parts[2]] = parts[3] if len(parts) > 3 else ""
    elif line and not line.startswith("#"):
        m = line_re.match(line)
        if not m:
            print(json.dumps({"error": line}))
            sys.exit(1)
        labels = dict(label_re.findall(m.group(2) or ""))
        samples.append({"name": m.group(1), "labels": labels, "value": float(m.group(3))})
print(json.dumps({"samples": samples, "types": types, "helps": helps}))
PYEOF
}

# msum NAME [JQ_LABEL_FILTER]: the sum of the samples of NAME whose labels match.
msum() {
	jq -r --arg n "$1" "[.samples[] | select(.name == \$n) | select(.labels | ${2:-true}) | .value] | add // 0" \
		"$WORK/metrics.json"
}
# mcount NAME: how many series NAME has.
mcount() { jq -r --arg n "$1" '[.samples[] | select(.name == $n)] | length' "$WORK/metrics.json"; }
# labelset NAME: the sorted label names NAME's series carry (le aside).
labelset() {
	jq -r --arg n "$1" '[.samples[] | select(.name == $n) | .labels | keys[] | select(. != "le")] | unique | join(",")' \
		"$WORK/metrics.json"
}
num_eq() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 == b + 0) }'; }
num_ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

# Counts of what the tests caused, from the answers themselves.
N_WAKE_200=0; N_CANCEL_200=0; N_PUT_201=0
declare -A RESULTS=()
tally_results() { # after a 200 wake/cancel: count its per-device statuses
	local s
	for s in $(jqb '.results[].status'); do RESULTS[$s]=$((${RESULTS[$s]:-0} + 1)); done
}
ALL_TOKENS=()

t_promtool_accepts_a_fresh_gateway() {
	begin "promtool accepts /metrics before any traffic"
	scrape G
	expect_eq "status" "$SCRAPE_STATUS" 200
	local out; out=$(promtool check metrics <"$WORK/metrics.txt" 2>&1); local rc=$?
	check "promtool check metrics: ${out:-clean}" test "$rc" = 0 -a -z "$out"
}

t_drive_traffic() {
	begin "traffic for the counters: registrations, wakes, cancels, errors"
	local i t
	for i in 0 1 2; do
		t=$(tok $((8000 + i))); ALL_TOKENS+=("$t")
		api G PUT "/v1/extensions/$EXT/devices/$(jq -rn --arg d "${DEV_IDS[$i]}" '$d | @uri')" \
			"$(jq -cn --arg t "$t" '{contact: ("<sip:u@192.0.2.1;pn-provider=apns;pn-param=TEAM123456.com.example.phone.voip;pn-prid=" + $t + ">")}')"
		expect_eq "register device $i" "$STATUS" 201
		[ "$STATUS" = 201 ] && N_PUT_201=$((N_PUT_201 + 1))
	done
	api G POST /v1/wake "$(jq -cn --arg e "$EXT" '{extension: $e, call: {id: "m-1@pbx", from: "+15551234567"}}')"
	expect_eq "wake the extension" "$STATUS" 200
	[ "$STATUS" = 200 ] && { N_WAKE_200=$((N_WAKE_200 + 1)); tally_results; }
	local dead cfg; dead=$(tok 8100); cfg=$(tok 8101); ALL_TOKENS+=("$dead" "$cfg")
	sim_ctl A POST /script "{\"$dead\": [{\"status\": 400, \"reason\": \"BadDeviceToken\"}],
		\"$cfg\": [{\"status\": 400, \"reason\": \"BadTopic\"}]}" >/dev/null
	api G POST /v1/wake "$(jq -cn --arg d "$dead" --arg c "$cfg" '{
	  devices: [{provider: "apns", token: $d, app: "phone", environment: "production"},
	            {provider: "apns", token: $c, app: "phone", environment: "production"}],
	  call: {id: "m-2@pbx"}}')"
	expect_eq "wake with a dead and a misconfigured token" "$STATUS" 200
	[ "$STATUS" = 200 ] && { N_WAKE_200=$((N_WAKE_200 + 1)); tally_results; }
	api G POST /v1/cancel "$(jq -cn --arg e "$EXT" '{extension: $e, call: {id: "m-1@pbx"}, reason: "answered_elsewhere"}')"
	expect_eq "cancel" "$STATUS" 200
	[ "$STATUS" = 200 ] && { N_CANCEL_200=$((N_CANCEL_200 + 1)); tally_results; }
	api G POST /v1/wake "$(wake_body "$(tok 8102)")" "$SECRET_KEY_TRY"
	expect_eq "unknown key" "$STATUS" 401
	api G GET "/v1/$EXT/nothing"
	expect_eq "unknown route" "$STATUS" 404
	api G DELETE "/v1/extensions/$EXT/devices/${DEV_IDS[2]}"
	expect_eq "remove one device" "$STATUS" 204
}

t_promtool_accepts_metrics_after_traffic() {
	begin "promtool accepts /metrics after traffic; served as Prometheus text"
	# the registry size is counted by a watch thread about once a second,
	# not per scrape: wait for it to catch up with the traffic
	local i
	for i in $(seq 1 50); do
		scrape G
		[ "$(msum pushgw_registry_devices)" = 2 ] && break
		sleep 0.1
	done
	expect_eq "status" "$SCRAPE_STATUS" 200
	check "content type is text/plain; version=0.0.4 ($SCRAPE_CTYPE)" grep -q '^text/plain; version=0.0.4' <<<"$SCRAPE_CTYPE"
	local out; out=$(promtool check metrics <"$WORK/metrics.txt" 2>&1); local rc=$?
	check "promtool check metrics: ${out:-clean}" test "$rc" = 0 -a -z "$out"
	check "every line parsed" jq -e '.samples | length > 0' "$WORK/metrics.json" >/dev/null
}

# family NAME TYPE LABELS: NAME is described with TYPE and HELP, and its
# series carry at least LABELS (comma-separated, may be empty).
family() {
	expect_eq "$1: TYPE" "$(jq -r --arg n "$1" '.types[$n] // "missing"' "$WORK/metrics.json")" "$2"
	check "$1: HELP text" jq -e --arg n "$1" '(.helps[$n] // "") | length > 0' "$WORK/metrics.json" >/dev/null
	local sample="$1"; [ "$2" = histogram ] && sample="${1}_count"
	check "$1: has series" test "$(mcount "$sample")" -gt 0
	local want have l; have=",$(labelset "$sample"),"
	IFS=, read -ra want <<<"$3"
	for l in "${want[@]}"; do
		check "$1: label $l (has: ${have//,/ })" grep -q ",$l," <<<"$have"
	done
}

t_spec_families_exist() {
	begin "the families SPEC §3 lists, with their types and labels"
	family pushgw_http_requests_total counter route,status
	family pushgw_wakes_total counter kind
	family pushgw_pushes_total counter provider,app,status
	family pushgw_upstream_latency_seconds histogram provider,app
	family pushgw_upstream_connections gauge provider
	family pushgw_upstream_streams_active gauge provider
	family pushgw_token_refreshes_total counter provider
	family pushgw_registry_devices gauge ""
	family pushgw_build_info gauge version
	family pushgw_callbacks_pending gauge ""
	expect_eq "no callbacks pending without async wakes" "$(msum pushgw_callbacks_pending)" 0
	expect_eq "pushgw_build_info is 1" "$(msum pushgw_build_info)" 1
}

t_counters_follow_traffic() {
	begin "counter values equal what the traffic caused"
	local s total=0
	for s in "${!RESULTS[@]}"; do
		expect_eq "pushes with status $s" "$(msum pushgw_pushes_total ".status == \"$s\"")" "${RESULTS[$s]}"
		total=$((total + RESULTS[$s]))
	done
	expect_eq "pushes in all" "$(msum pushgw_pushes_total)" "$total"
	expect_eq "invalid_token was among them" "${RESULTS[invalid_token]:-0}" 1
	# the cancel went to three VoIP-only iPhones: nothing sent, counted skipped
	expect_eq "skipped was among them" "${RESULTS[skipped]:-0}" 3
	expect_eq "skipped pushes carry reason voip_only" \
		"$(msum pushgw_pushes_total '.status == "skipped" and .reason == "voip_only" and .kind == "cancel"')" 3
	expect_eq "wakes" "$(msum pushgw_wakes_total '.kind == "wake"')" "$N_WAKE_200"
	expect_eq "cancels" "$(msum pushgw_wakes_total '.kind == "cancel"')" "$N_CANCEL_200"
	expect_eq "HTTP 200 on /v1/wake" \
		"$(msum pushgw_http_requests_total '.route == "/v1/wake" and .status == "200"')" "$N_WAKE_200"
	expect_eq "HTTP 401 on /v1/wake" "$(msum pushgw_http_requests_total '.route == "/v1/wake" and .status == "401"')" 1
	expect_eq "HTTP 201 on the device route" \
		"$(msum pushgw_http_requests_total '.route == "/v1/extensions/{ext}/devices/{device_id}" and .status == "201"')" "$N_PUT_201"
	expect_eq "HTTP 204 on the device route" \
		"$(msum pushgw_http_requests_total '.route == "/v1/extensions/{ext}/devices/{device_id}" and .status == "204"')" 1
	expect_eq "unknown routes are one series" "$(msum pushgw_http_requests_total '.route == "other" and .status == "404"')" 1
	expect_eq "upstream latency observations, one per push answered (skipped ones never went)" \
		"$(msum pushgw_upstream_latency_seconds_count)" "$((total - ${RESULTS[timeout]:-0} - ${RESULTS[skipped]:-0}))"
	check "APNs provider token refreshes counted" num_ge "$(msum pushgw_token_refreshes_total '.provider == "apns"')" 1
	expect_eq "registry size (3 registered, 1 removed)" "$(msum pushgw_registry_devices)" 2
}

t_histograms_are_well_formed() {
	begin "latency histograms: cumulative buckets from 1 ms to 10 s, +Inf equals count"
	local h
	for h in pushgw_upstream_latency_seconds pushgw_wake_duration_seconds; do
		check "$h: buckets cover ≤ 5 ms and ≥ 5 s" jq -e --arg n "${h}_bucket" '
		  [.samples[] | select(.name == $n) | .labels.le | select(. != "+Inf") | tonumber] as $b
		  | ($b | length) > 0 and ($b | min) <= 0.005 and ($b | max) >= 5' "$WORK/metrics.json" >/dev/null
		check "$h: cumulative and +Inf == _count per series" jq -e --arg n "$h" '
		  [.samples[] | select(.name == ($n + "_bucket"))] | group_by(.labels | del(.le) | tostring)
		  | all(. as $g | ($g | sort_by(.labels.le | if . == "+Inf" then 1e308 else tonumber end) | map(.value)) as $v
		        | ([range(1; $v | length)] | all($v[.] >= $v[. - 1])))' "$WORK/metrics.json" >/dev/null
		local inf cnt
		inf=$(jq -r --arg n "${h}_bucket" '[.samples[] | select(.name == $n and .labels.le == "+Inf") | .value] | add // 0' "$WORK/metrics.json")
		cnt=$(msum "${h}_count")
		expect_eq "$h: +Inf buckets sum to the counts" "$inf" "$cnt"
	done
}

t_gauges_follow_upstream_state() {
	begin "connection and stream gauges follow the upstream (sampled within ~1 s)"
	local i conns=x sim_open
	for i in $(seq 1 30); do
		scrape G
		sim_open=$(sim_ctl A GET /stats | jq .connections_open)
		conns=$(msum pushgw_upstream_connections)
		num_eq "$conns" "$sim_open" && [ "$sim_open" -gt 0 ] && break
		sleep 0.1
	done
	expect_eq "open connections equal the simulator's count ($sim_open)" "$conns" "$sim_open"
	expect_eq "no streams in flight when idle" "$(msum pushgw_upstream_streams_active)" 0
	sim_ctl A POST '/delay?ms=2000' >/dev/null
	for i in 1 2 3 4; do
		curl -sS -o /dev/null -H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' \
			--data-binary "$(wake_body "$(tok $((8200 + i)))" "slow-$i")" "http://127.0.0.1:$GW_PORT_G/v1/wake" &
	done
	sleep 1.4
	scrape G
	check "streams in flight counted while APNs is slow" num_ge "$(msum pushgw_upstream_streams_active)" 1
	check "wakes in flight counted" num_ge "$(msum pushgw_wakes_in_flight)" 1
	wait_bg
	sim_ctl A POST '/delay?ms=0' >/dev/null
}

wait_bg() { local j; for j in $(jobs -p); do case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j";; esac; done; }

t_metrics_carry_no_secrets() {
	begin "metric names and labels carry no token, key, extension or device id"
	scrape G
	local t
	for t in "${ALL_TOKENS[@]}"; do
		check "no token ${t:0:4}…${t: -4} in /metrics" bash -c '! grep -qiF -- "$1" "$2"' _ "$t" "$WORK/metrics.txt"
	done
	for t in "$KEY_WAKE" "$KEY_REG" "$SECRET_KEY_TRY" "$EXT" "${DEV_IDS[@]}" "m-1@pbx"; do
		check "no '$t' in /metrics" bash -c '! grep -qF -- "$1" "$2"' _ "$t" "$WORK/metrics.txt"
	done
	check "no long hex run (token-like) in a label value" bash -c '! grep -qE "=\"[^\"]*[0-9a-fA-F]{16}" "$1"' _ "$WORK/metrics.txt"
	local names; names=$(jq -r '[.samples[].labels | keys[]] | unique | join(" ")' "$WORK/metrics.json")
	check "no label named like an identifier ($names)" bash -c '! grep -qwE "token|extension|ext|device|device_id|key|call_id|wake_id|contact|target" <<<"$1"' _ "$names"
	check "no empty label values (drop the label instead)" bash -c '! grep -q "=\"\"" "$1"' _ "$WORK/metrics.txt"
}

t_logs_are_json_without_secrets() {
	begin "every log line (debug level) is a JSON object with ts, level, msg; no secret in it"
	local log="$WORK/gw-G.log"
	check "the log is not empty" test -s "$log"
	check "every line is a JSON object with ts, level, msg" \
		jq -e -s 'length > 0 and all(type == "object" and (.ts | type) == "string" and (.level | type) == "string" and (.msg | type) == "string")' "$log" >/dev/null
	local bad_lines; bad_lines=$(grep -c -v '^{.*}$' "$log")
	expect_eq "one object per line" "$bad_lines" 0
	check "ts is RFC 3339 UTC" jq -e -s 'all(.ts | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$"))' "$log" >/dev/null
	check "level is debug/info/warn/error" jq -e -s 'all(.level | IN("debug", "info", "warn", "error"))' "$log" >/dev/null
	local t
	for t in "${ALL_TOKENS[@]}"; do
		check "no full token ${t:0:4}…${t: -4} in the log" bash -c '! grep -qiF -- "$1" "$2"' _ "$t" "$log"
	done
	for t in "$KEY_WAKE" "$KEY_REG" "$KEY_OTHER" "$KEY_WAKEONLY" "$SECRET_KEY_TRY" cb-secret-for-tests; do
		check "no key or secret '${t:0:6}…' in the log" bash -c '! grep -qF -- "$1" "$2"' _ "$t" "$log"
	done
	local keyline; keyline=$(sed -n 2p "$WORK/certs/AuthKey_KEY1234567.p8")
	check "no private key material in the log" bash -c '! grep -qF -e "PRIVATE KEY" -e "$1" "$2"' _ "$keyline" "$log"
	check "the JWT is not logged" bash -c '! grep -qE "eyJ[A-Za-z0-9_-]{10,}\.eyJ" "$1"' _ "$log"
	check "tokens show redacted (first and last four)" grep -qF "${ALL_TOKENS[0]:0:4}…${ALL_TOKENS[0]: -4}" "$log"
}

t_promtool_accepts_a_fresh_gateway
t_drive_traffic
t_promtool_accepts_metrics_after_traffic
t_spec_families_exist
t_counters_follow_traffic
t_histograms_are_well_formed
t_gauges_follow_upstream_state
t_metrics_carry_no_secrets
t_logs_are_json_without_secrets
summary
