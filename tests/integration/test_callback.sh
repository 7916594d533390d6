#!/usr/bin/env bash
# Async wakes: 202 at once, the result POSTed to callback_url signed with the
# key's callback_secret, retried until a 2xx, never after it. SIGTERM waits
# (within shutdown_grace_s) for results still owed; each key has a bounded
# share of the callback queue.
source tests/integration/lib.sh

start_sim A
write_config "$WORK/cb.json" A
start_gw C "$WORK/cb.json" || exit 1

start_receiver() { # start_receiver NAME STATUS[@DELAY_S],…: sets RCV_PORT, RCV_FILE
	RCV_FILE="$WORK/rcv-$1.jsonl"; : >"$RCV_FILE"
	python3 tests/integration/callback_receiver.py "$RCV_FILE" "$2" >"$WORK/rcv-$1.out" &
	PIDS+=($!)
	local i; for i in $(seq 1 100); do grep -q port "$WORK/rcv-$1.out" 2>/dev/null && break; sleep 0.05; done
	RCV_PORT=$(jq -r .port "$WORK/rcv-$1.out")
}

wait_lines() { # wait_lines FILE N TIMEOUT_S
	local i; for i in $(seq 1 $(($3 * 20))); do [ "$(wc -l <"$1")" -ge "$2" ] && return 0; sleep 0.05; done; return 1
}

t_callback_is_signed_and_retried_until_2xx() {
	begin "a callback answered 500, 500, 200 is received three times and then stops"
	start_receiver r1 500,500,200
	api C POST /v1/wake "$(wake_body "$(tok 1200)" cb-1 ".callback_url = \"http://127.0.0.1:$RCV_PORT/push-status\"")"
	expect_eq "202 at once" "$STATUS" 202
	local id; id=$(jqb .id)
	check "the answer carries the wake id" grep -Eq '^w_' <<<"$id"
	wait_lines "$RCV_FILE" 3 15
	sleep 2 # would a fourth come?
	expect_eq "delivered three times" "$(wc -l <"$RCV_FILE")" 3
	local last; last=$(tail -n1 "$RCV_FILE")
	local body; body=$(jq -r .body <<<"$last")
	expect_eq "the body is the result document" "$(jq -r .id <<<"$body")" "$id"
	expect_eq "with the device status" "$(jq -r '.results[0].status' <<<"$body")" sent
	local want; want="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac cb-secret-for-tests -r | cut -d' ' -f1)"
	expect_eq "X-Pushgw-Signature verifies" "$(jq -r '.headers["x-pushgw-signature"]' <<<"$last")" "$want"
	expect_eq "to the path given" "$(jq -r .path <<<"$last")" /push-status
	expect_eq "JSON content type" "$(jq -r '.headers["content-type"]' <<<"$last")" application/json
}

t_callback_gives_up_at_ttl() {
	begin "a callback that never gets a 2xx stops when the wake's ttl runs out"
	start_receiver r2 503
	api C POST /v1/wake "$(wake_body "$(tok 1201)" cb-2 ".callback_url = \"http://127.0.0.1:$RCV_PORT/x\" | .ttl = 3 | .timeout_ms = 1000")"
	expect_eq "202" "$STATUS" 202
	sleep 5
	local n; n=$(wc -l <"$RCV_FILE")
	check "retried at least twice ($n)" test "$n" -ge 2
	sleep 2
	expect_eq "then nothing more" "$(wc -l <"$RCV_FILE")" "$n"
	check "the give-up is logged" grep -q 'callback given up' "$WORK/gw-C.log"
}

t_bad_callback_urls_are_refused() {
	begin "callback_url must be http(s) and the key must have a callback_secret"
	api C POST /v1/wake "$(wake_body "$(tok 1202)" cb-3 '.callback_url = "ftp://pbx.example/x"')"
	expect_eq "ftp:// refused" "$STATUS" 400
	check "message names callback_url" grep -q callback_url <<<"$(jqb .error.message)"
	api C POST /v1/wake "$(wake_body "$(tok 1202)" cb-3 '.callback_url = "http:///nohost"')"
	expect_eq "no host refused" "$STATUS" 400
	api C POST /v1/wake "$(wake_body "$(tok 1202)" cb-3 '.callback_url = "http://127.0.0.1:9/x"')" "$KEY_WAKEONLY"
	expect_eq "key without callback_secret refused" "$STATUS" 400
	check "message says why" grep -q callback_secret <<<"$(jqb .error.message)"
}

# log_line GW MSG WAKE_ID: the line number of MSG for that wake in GW's log.
log_line() { grep -n "\"msg\":\"$2\"" "$WORK/gw-$1.log" | grep -F "\"wake_id\":\"$3\"" | head -n1 | cut -d: -f1; }
stopped_line() { grep -n '"msg":"stopped"' "$WORK/gw-$1.log" | head -n1 | cut -d: -f1; }

# sigterm_during NAME: SIGTERM the gateway NAME, wait for it (bounded), and
# set GW_EXIT and STOP_S (seconds from SIGTERM to exit).
sigterm_during() {
	local pid="GW_PID_$1" t0; t0=$(date +%s%N)
	gw_term_wait "${!pid}"
	STOP_S=$((($(date +%s%N) - t0) / 1000000000))
}

t_sigterm_waits_for_a_slow_receiver() {
	begin "SIGTERM while a slow receiver holds the POST: the result is delivered, then exit 0 within grace"
	write_config "$WORK/slow.json" A '.shutdown_grace_s = 15'
	start_gw S "$WORK/slow.json" || { bad "start"; return; }
	start_receiver slow 200@3
	api S POST /v1/wake "$(wake_body "$(tok 1210)" cb-slow ".callback_url = \"http://127.0.0.1:$RCV_PORT/r\"")"
	expect_eq "202" "$STATUS" 202
	local id; id=$(jqb .id)
	check "the receiver got the POST (it answers in 3 s)" wait_lines "$RCV_FILE" 1 20
	sigterm_during S
	expect_eq "exit status" "$GW_EXIT" 0
	check "within shutdown_grace_s ($STOP_S s of 15)" test "$STOP_S" -le 15
	local delivered stopped; delivered=$(log_line S "callback delivered" "$id"); stopped=$(stopped_line S)
	check "the 200 was received: 'callback delivered' logged for $id" test -n "$delivered"
	check "before the gateway stopped (lines $delivered < $stopped)" test "${delivered:-99999}" -lt "${stopped:-0}"
	check "nothing abandoned" bash -c "! grep -q 'callbacks abandoned' '$WORK/gw-S.log'"
}

t_sigterm_waits_for_wakes_and_retries() {
	begin "SIGTERM with an async wake still upstream and a callback in backoff: both results arrive"
	write_config "$WORK/retry.json" A '.shutdown_grace_s = 15'
	start_gw T "$WORK/retry.json" || { bad "start"; return; }
	# both receivers take a second to say 200
	start_receiver upstream 200@1
	start_receiver retry 500,200@1
	local rcv_retry=$RCV_FILE port_retry=$RCV_PORT
	api T POST /v1/wake "$(wake_body "$(tok 1211)" cb-retry ".callback_url = \"http://127.0.0.1:$port_retry/r\"")"
	local id_retry; id_retry=$(jqb .id)
	check "first attempt answered 500" wait_lines "$rcv_retry" 1 20
	# SIGTERM comes while that one waits out its backoff and the next wake
	# is still waiting for APNs
	RCV_FILE="$WORK/rcv-upstream.jsonl"; RCV_PORT=$(jq -r .port "$WORK/rcv-upstream.out")
	sim_ctl A POST '/delay?ms=1500' >/dev/null
	api T POST /v1/wake "$(wake_body "$(tok 1212)" cb-upstream ".callback_url = \"http://127.0.0.1:$RCV_PORT/r\"")"
	expect_eq "202" "$STATUS" 202
	local id_up; id_up=$(jqb .id)
	sigterm_during T
	sim_ctl A POST '/delay?ms=0' >/dev/null
	expect_eq "exit status" "$GW_EXIT" 0
	expect_eq "the retried callback came twice" "$(wc -l <"$rcv_retry")" 2
	expect_eq "the late wake's result reached its receiver" "$(jq -r .body "$RCV_FILE" | jq -r .id)" "$id_up"
	expect_eq "with the device sent" "$(jq -r .body "$RCV_FILE" | jq -r '.results[0].status')" sent
	check "both delivered before the stop" test -n "$(log_line T "callback delivered" "$id_retry")" -a \
		-n "$(log_line T "callback delivered" "$id_up")"
}

t_sigterm_gives_up_after_grace() {
	begin "a receiver that never says 2xx: SIGTERM gives up at shutdown_grace_s, logs how many, exits 0"
	write_config "$WORK/grace.json" A '.shutdown_grace_s = 2'
	start_gw U "$WORK/grace.json" || { bad "start"; return; }
	start_receiver dead 503
	api U POST /v1/wake "$(wake_body "$(tok 1213)" cb-dead ".callback_url = \"http://127.0.0.1:$RCV_PORT/r\" | .ttl = 300")"
	local id; id=$(jqb .id)
	check "first attempt made" wait_lines "$RCV_FILE" 1 20
	sigterm_during U
	expect_eq "exit status" "$GW_EXIT" 0
	check "stopped soon after the 2 s grace ($STOP_S s)" test "$STOP_S" -le 20
	check "logs the count abandoned" grep -q '"msg":"callbacks abandoned at shutdown".*"count":"1"' "$WORK/gw-U.log"
	check "and which wake" test -n "$(log_line U "callback dropped at shutdown" "$id")"
}

pending_metric() { curl -s "http://127.0.0.1:$(eval echo "\$GW_PORT_$1")/metrics" | awk '$1 == "pushgw_callbacks_pending" {print $2}'; }

t_callback_queue_is_bounded_per_key() {
	begin "a key's callbacks not yet delivered are capped: 503 callback_queue_full; other keys and sync wakes go on"
	write_config "$WORK/cap.json" A '.limits.max_pending_callbacks_per_key = 2
		| (.api_keys[] | select(.name == "other-tenant")).callback_secret = "other-secret"'
	start_gw Q "$WORK/cap.json" || { bad "start"; return; }
	start_receiver cap 503
	local url="http://127.0.0.1:$RCV_PORT/r" i codes=""
	for i in 1 2 3; do
		api Q POST /v1/wake "$(wake_body "$(tok $((1220 + i)))" "cap-$i" ".callback_url = \"$url\" | .ttl = 3")"
		codes="$codes$STATUS "
	done
	expect_eq "two accepted, the third refused" "$codes" "202 202 503 "
	expect_eq "its code" "$(jqb .error.code)" callback_queue_full
	check "the message names the limit ($(jqb .error.message))" grep -q 'limits.max_pending_callbacks_per_key' <<<"$(jqb .error.message)"
	api Q POST /v1/wake "$(wake_body "$(tok 1224)" cap-sync)"
	expect_eq "a wake without callback_url still goes out" "$STATUS,$(jqb '.results[0].status')" 200,sent
	api Q POST /v1/wake "$(jq -c '.devices[0].app = "other"' <<<"$(wake_body "$(tok 1225)" cap-other ".callback_url = \"$url\" | .ttl = 3")")" "$KEY_OTHER"
	expect_eq "another key is not held back" "$STATUS" 202
	expect_eq "the queue depth on /metrics" "$(pending_metric Q)" 3
	local m; m=$(curl -s "http://127.0.0.1:$GW_PORT_Q/metrics")
	check "described as a gauge" grep -qx '# TYPE pushgw_callbacks_pending gauge' <<<"$m"
	check "with HELP" grep -q '^# HELP pushgw_callbacks_pending .' <<<"$m"
	for i in $(seq 1 200); do [ "$(pending_metric Q)" = 0 ] && break; sleep 0.1; done
	expect_eq "the ttl runs out and the queue empties" "$(pending_metric Q)" 0
	api Q POST /v1/wake "$(wake_body "$(tok 1226)" cap-again ".callback_url = \"$url\" | .ttl = 1")"
	expect_eq "then the key is accepted again" "$STATUS" 202
	stop_gw Q
}

t_callback_is_signed_and_retried_until_2xx
t_callback_gives_up_at_ttl
t_bad_callback_urls_are_refused
stop_gw C
expect_eq "exit status after callbacks" "$GW_EXIT" 0
t_sigterm_waits_for_a_slow_receiver
t_sigterm_waits_for_wakes_and_retries
t_sigterm_gives_up_after_grace
t_callback_queue_is_bounded_per_key
summary
