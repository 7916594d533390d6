#!/usr/bin/env bash
# Ring repetition for alert-only iPhones: the call alert repeats every
# ring_repeat_s with the call id as collapse id until a cancel (which sends
# one final alert with the same collapse id) or the ttl; only devices whose
# first alert was accepted ring, a dead or refused device stops; /metrics
# stays valid while calls ring; a thousand ringing calls leave nothing behind.
source tests/integration/lib.sh

start_sim A
write_config "$WORK/ring.json" A '.apps.phone.ring_repeat_s = 1 | .limits.wakes_per_second_per_key = 0'
start_gw R "$WORK/ring.json" || exit 1

alert_wake() { # alert_wake REMOTE_TOKEN CALL_ID TTL
	jq -cn --arg t "$1" --arg c "$2" --argjson ttl "$3" \
		'{devices: [{provider: "apns", remote_token: $t, app: "phone"}], call: {id: $c, from: "+1555", from_name: "Alice"}, ttl: $ttl}'
}
multi_wake() { # multi_wake CALL_ID TTL REMOTE_TOKEN...: one call to several alert-only devices
	local c="$1" ttl="$2"; shift 2
	printf '%s\n' "$@" | jq -cRn --arg c "$c" --argjson ttl "$ttl" \
		'{devices: [inputs | {provider: "apns", remote_token: ., app: "phone"}], call: {id: $c, from: "+1555", from_name: "Alice"}, ttl: $ttl}'
}
requests_for() { sim_ctl A GET /requests | jq -c --arg t "$1" '[.[] | select(.token == $t)]'; }
nreq() { requests_for "$1" | jq length; }
# at_least N TOKEN…: every TOKEN reached the simulator at least N times.
at_least() { local n="$1" t; shift; for t in "$@"; do [ "$(nreq "$t")" -ge "$n" ] || return 1; done; }
alerts_for() { sim_ctl A GET /requests | jq -c --arg t "$1" '[.[] | select(.token == $t and .outcome == "answered")]'; }
ringing() { curl -s "http://127.0.0.1:$GW_PORT_R/metrics" | sed -n 's/^pushgw_ringing \([0-9]*\).*/\1/p'; }
ringing_is() { [ "$(ringing)" = "$1" ]; }
# the cancel's final alert to TOKEN (a repeat in flight may arrive after it)
final_alert() { requests_for "$1" | jq -c '[.[] | select((.body | fromjson | .type) == "cancel")] | .[-1]'; }
# wait_until SECONDS CMD…: poll CMD every 0.1 s until it succeeds (bounded).
wait_until() {
	local limit=$(($1 * 10)) i; shift
	for ((i = 0; i < limit; i++)); do "$@" && return 0; sleep 0.1; done
	return 1
}
promtool_ok() { # promtool_ok WHAT: /metrics passes promtool check metrics, output clean
	local out rc
	curl -s "http://127.0.0.1:$GW_PORT_R/metrics" >"$WORK/ring-metrics.txt"
	out=$(promtool check metrics <"$WORK/ring-metrics.txt" 2>&1); rc=$?
	check "$1: promtool check metrics: ${out:-clean}" test "$rc" = 0 -a -z "$out"
}

t_metrics_before_any_call() {
	begin "pushgw_ringing and pushgw_ring_repeats_total are described and at 0 from start-up"
	local m; m=$(curl -s "http://127.0.0.1:$GW_PORT_R/metrics")
	check "HELP pushgw_ringing" grep -q '^# HELP pushgw_ringing .' <<<"$m"
	check "TYPE pushgw_ringing gauge" grep -qx '# TYPE pushgw_ringing gauge' <<<"$m"
	check "HELP pushgw_ring_repeats_total" grep -q '^# HELP pushgw_ring_repeats_total .' <<<"$m"
	check "TYPE pushgw_ring_repeats_total counter" grep -qx '# TYPE pushgw_ring_repeats_total counter' <<<"$m"
	expect_eq "pushgw_ringing published at 0" "$(ringing)" 0
	check "pushgw_ring_repeats_total published at 0" grep -qx 'pushgw_ring_repeats_total 0' <<<"$m"
	promtool_ok "fresh gateway"
}

t_repeats_until_cancel() {
	begin "alerts repeat about every second with one collapse id; a cancel stops them with one final alert"
	local t; t=$(tok 1700)
	api R POST /v1/wake "$(alert_wake "$t" ring-1@pbx 30)"
	expect_eq "first alert sent" "$(jqb '.results[0].status')" sent
	expect_eq "as an alert" "$(jqb '.results[0].push_type')" alert
	sleep 3.3
	local before; before=$(alerts_for "$t")
	local n; n=$(jq length <<<"$before")
	check "3 to 5 call alerts after 3.3 s ($n)" test "$n" -ge 3 -a "$n" -le 5
	expect_eq "all carry the call id as apns-collapse-id" "$(jq -r '[.[].headers["apns-collapse-id"]] | unique | join(",")' <<<"$before")" ring-1@pbx
	expect_eq "all are alert pushes to the bundle topic" "$(jq -r '[.[].headers["apns-topic"]] | unique | join(",")' <<<"$before")" com.example.phone
	expect_eq "pushgw_ringing counts it" "$(ringing)" 1
	promtool_ok "while a call rings"
	# counted again just before the cancel: the checks above take a while
	# on a loaded machine, and the call kept ringing meanwhile
	n=$(alerts_for "$t" | jq length)
	api R POST /v1/cancel "$(jq -c '.reason = "caller_cancelled"' <<<"$(alert_wake "$t" ring-1@pbx 30)")"
	expect_eq "cancel sent" "$(jqb '.results[0].status')" sent
	sleep 2.2
	local after; after=$(alerts_for "$t")
	# one repeat may have been on its way as the cancel came in; none after
	check "after the cancel: the final alert and at most one repeat that was on its way ($(jq length <<<"$after") after $n)" \
		test "$(jq length <<<"$after")" -ge $((n + 1)) -a "$(jq length <<<"$after")" -le $((n + 2))
	expect_eq "the final alert says missed" "$(jq -r '.[-1].body | fromjson | .aps.alert["loc-key"]' <<<"$after")" IC_MISSED
	expect_eq "the final alert replaces the ringing banner (collapse id = call id)" \
		"$(jq -r '.[-1].headers["apns-collapse-id"]' <<<"$after")" ring-1@pbx
	expect_eq "nothing rings" "$(ringing)" 0
}

t_final_alert_reasons() {
	begin "the final alert says declined / answered elsewhere, with the call id as collapse id"
	local t reason want
	for reason in declined answered_elsewhere; do
		t=$(tok $((1740 + ${#reason})))
		api R POST /v1/wake "$(alert_wake "$t" "ring-$reason@pbx" 30)"
		expect_eq "$reason: call alert sent" "$(jqb '.results[0].status')" sent
		api R POST /v1/cancel "$(jq -c --arg r "$reason" '.reason = $r' <<<"$(alert_wake "$t" "ring-$reason@pbx" 30)")"
		expect_eq "$reason: cancel sent" "$(jqb '.results[0].status')" sent
		local fin; fin=$(final_alert "$t")
		want=IC_DECLINED_ELSEWHERE; [ "$reason" = declined ] || want=IC_ANSWERED_ELSEWHERE
		expect_eq "$reason: loc-key" "$(jq -r '.body | fromjson | .aps.alert["loc-key"]' <<<"$fin")" "$want"
		expect_eq "$reason: reason in the payload" "$(jq -r '.body | fromjson | .reason' <<<"$fin")" "$reason"
		expect_eq "$reason: collapse id" "$(jq -r '.headers["apns-collapse-id"]' <<<"$fin")" "ring-$reason@pbx"
		expect_eq "$reason: the call alert had the same collapse id" \
			"$(requests_for "$t" | jq -r '.[0].headers["apns-collapse-id"]')" "ring-$reason@pbx"
	done
	check "nothing rings" wait_until 20 ringing_is 0
}

t_results_end_repetition() {
	begin "only accepted devices ring; a repeat answered 410 or config_error ends that device's ringing; the others keep ringing"
	local dead live gone bad
	dead=$(tok 1710); live=$(tok 1711); gone=$(tok 1712); bad=$(tok 1713)
	sim_ctl A POST /script "{\"$dead\": [{\"status\": 410, \"reason\": \"Unregistered\"}],
		\"$gone\": [{}, {\"status\": 410, \"reason\": \"Unregistered\"}],
		\"$bad\": [{}, {\"status\": 400, \"reason\": \"BadTopic\"}]}" >/dev/null
	api R POST /v1/wake "$(multi_wake ring-3@pbx 30 "$dead" "$live" "$gone" "$bad")"
	expect_eq "statuses of the first alerts" "$(jqb '[.results[].status] | join(",")')" invalid_token,sent,sent,sent
	# order, not time: wait until the live device has rung 3 times and both
	# doomed repeats came back
	check "the live device rings 3 times" wait_until 20 at_least 3 "$live"
	check "the doomed repeats were sent" wait_until 20 at_least 2 "$gone" "$bad"
	expect_eq "the device answered 410 got its call alert and nothing more" "$(nreq "$dead")" 1
	expect_eq "the device whose repeat got 410 stopped there" "$(nreq "$gone")" 2
	expect_eq "its repeat was answered 410" "$(requests_for "$gone" | jq -r '.[-1].status')" 410
	expect_eq "the device whose repeat got config_error stopped there" "$(nreq "$bad")" 2
	check "pushgw_ringing counts the live device only" wait_until 20 ringing_is 1
	promtool_ok "while a call rings"
	local n; n=$(nreq "$live")
	check "the live device keeps ringing" wait_until 15 at_least $((n + 1)) "$live"
	expect_eq "still nothing more to the 410 device" "$(nreq "$dead")" 1
	expect_eq "still nothing more after the repeat's 410" "$(nreq "$gone")" 2
	expect_eq "still nothing more after the repeat's config_error" "$(nreq "$bad")" 2
	local log="$WORK/gw-R.log"
	expect_eq "the stop after a dead-token repeat is logged, token redacted" \
		"$(jq -r --arg t "${gone:0:4}…${gone: -4}" 'select(.msg == "ring repetition stopped" and .target == $t) | [.call_id, .status, .reason] | join(",")' "$log")" \
		ring-3@pbx,invalid_token,Unregistered
	expect_eq "the stop after a refused repeat is logged" \
		"$(jq -r --arg t "${bad:0:4}…${bad: -4}" 'select(.msg == "ring repetition stopped" and .target == $t) | [.status, .reason] | join(",")' "$log")" \
		failed,config_error
	check "no full token in the log" bash -c '! grep -qF -e "$1" -e "$2" "$3"' _ "$gone" "$bad" "$log"
	api R POST /v1/cancel "$(jq -c '.reason = "declined"' <<<"$(multi_wake ring-3@pbx 30 "$live")")"
	expect_eq "cancel sent" "$(jqb '.results[0].status')" sent
	local fin; fin=$(final_alert "$live")
	expect_eq "the final alert says declined elsewhere" "$(jq -r '.body | fromjson | .aps.alert["loc-key"]' <<<"$fin")" IC_DECLINED_ELSEWHERE
	expect_eq "the final alert is a cancel" "$(jq -r '.body | fromjson | .type' <<<"$fin")" cancel
	expect_eq "the final alert carries the call id as collapse id" "$(jq -r '.headers["apns-collapse-id"]' <<<"$fin")" ring-3@pbx
	check "nothing rings after the cancel" wait_until 20 ringing_is 0
	sim_ctl A POST /script "{\"$dead\": [], \"$gone\": [], \"$bad\": []}" >/dev/null
}

t_cancel_before_first_alert_answered() {
	begin "a cancel that overtakes the call's first alert leaves nothing ringing"
	local t; t=$(tok 1720)
	sim_ctl A POST /script "{\"$t\": [{\"delay_ms\": 1500}]}" >/dev/null
	curl -sS -o "$WORK/slow-wake.json" -H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' \
		--data-binary "$(alert_wake "$t" ring-4@pbx 30)" "http://127.0.0.1:$GW_PORT_R/v1/wake" &
	local bg=$!
	check "the call alert reached APNs" wait_until 20 at_least 1 "$t"
	api R POST /v1/cancel "$(jq -c '.reason = "answered_elsewhere"' <<<"$(alert_wake "$t" ring-4@pbx 30)")"
	expect_eq "cancel sent" "$(jqb '.results[0].status')" sent
	wait "$bg"
	expect_eq "the call alert was accepted" "$(jq -r '.results[0].status' "$WORK/slow-wake.json")" sent
	expect_eq "the final alert says answered elsewhere" \
		"$(final_alert "$t" | jq -r '.body | fromjson | .aps.alert["loc-key"]')" IC_ANSWERED_ELSEWHERE
	expect_eq "the final alert carries the call id as collapse id" \
		"$(final_alert "$t" | jq -r '.headers["apns-collapse-id"]')" ring-4@pbx
	expect_eq "nothing rings" "$(ringing)" 0
	sleep 2.5 # more than two repeat intervals
	expect_eq "no repeat after the cancel" "$(nreq "$t")" 2
	sim_ctl A POST /script "{\"$t\": []}" >/dev/null
}

t_long_call_id() {
	begin "a call id longer than APNs' 64-byte collapse id still rings and cancels"
	local t c; t=$(tok 1730); c="$(printf 'x%.0s' $(seq 1 100))@pbx.example"
	api R POST /v1/wake "$(alert_wake "$t" "$c" 30)"
	expect_eq "first alert sent" "$(jqb '.results[0].status')" sent
	check "it repeats" wait_until 20 at_least 2 "$t"
	api R POST /v1/cancel "$(alert_wake "$t" "$c" 30)"
	expect_eq "cancel sent" "$(jqb '.results[0].status')" sent
	local ids; ids=$(requests_for "$t" | jq -r '[.[].headers["apns-collapse-id"]] | unique | join(",")')
	check "one collapse id of at most 64 bytes for all of them ($ids)" test -n "$ids" -a "${#ids}" -le 64 -a "${ids#*,}" = "$ids"
	expect_eq "every one accepted" "$(requests_for "$t" | jq -r '[.[].status] | unique | join(",")')" 200
	check "nothing rings" wait_until 20 ringing_is 0
}

t_stops_at_ttl() {
	begin "without a cancel the repetition stops at ttl"
	local t; t=$(tok 1701)
	api R POST /v1/wake "$(alert_wake "$t" ring-2@pbx 3)"
	sleep 4.5
	local n; n=$(jq length <<<"$(alerts_for "$t")")
	check "at most ttl+1 alerts ($n)" test "$n" -ge 2 -a "$n" -le 4
	sleep 1.5
	expect_eq "and no more after" "$(jq length <<<"$(alerts_for "$t")")" "$n"
	expect_eq "nothing rings" "$(ringing)" 0
}

t_thousand_calls_leave_nothing_behind() {
	begin "1,000 ringing calls at once: all tracked, none left after the last cancel"
	local cfg="$WORK/ring-curl.txt" i body
	: >"$cfg"
	for i in $(seq 1 1000); do
		[ "$i" = 1 ] || echo next >>"$cfg"
		body=$(alert_wake "$(printf '%064x' $((50000 + i)))" "bulk-$i" 60 | sed 's/"/\\"/g')
		printf 'url = "http://127.0.0.1:%s/%s"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
			"$GW_PORT_R" "v1/wake" "$KEY_WAKE" "$body" >>"$cfg"
	done
	local codes; codes=$(curl -sS --no-progress-meter --parallel --parallel-max 32 --config "$cfg")
	expect_eq "1000 wakes answered 200" "$(grep -c '^200$' <<<"$codes")" 1000
	expect_eq "1000 devices ringing" "$(ringing)" 1000
	local rss limit=65536; rss=$(awk '/VmRSS/ {print $2}' "/proc/$GW_PID_R/status")
	case "$BUILD" in *asan*) limit=524288 ;; esac # sanitizer shadow memory
	check "memory bounded while they ring (RSS ${rss} kB < $((limit / 1024)) MB)" test "$rss" -lt "$limit"
	sed -i 's#/v1/wake#/v1/cancel#' "$cfg"
	codes=$(curl -sS --no-progress-meter --parallel --parallel-max 32 --config "$cfg")
	expect_eq "1000 cancels answered 200" "$(grep -c '^200$' <<<"$codes")" 1000
	sleep 1.5
	expect_eq "no timer left after the last cancel" "$(ringing)" 0
}

t_metrics_before_any_call
t_repeats_until_cancel
t_final_alert_reasons
t_results_end_repetition
t_cancel_before_first_alert_answered
t_long_call_id
t_stops_at_ttl
t_thousand_calls_leave_nothing_behind
stop_gw R
expect_eq "exit status" "$GW_EXIT" 0
summary
