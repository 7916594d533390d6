#!/usr/bin/env bash
# Async wakes: 202 at once, the result POSTed to callback_url signed with the
# key's callback_secret, retried until a 2xx, never after it.
source tests/integration/lib.sh

start_sim A
write_config "$WORK/cb.json" A
start_gw C "$WORK/cb.json" || exit 1

start_receiver() { # start_receiver NAME STATUSES: sets RCV_PORT, RCV_FILE
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

t_callback_is_signed_and_retried_until_2xx
t_callback_gives_up_at_ttl
t_bad_callback_urls_are_refused
stop_gw C
expect_eq "exit status after callbacks" "$GW_EXIT" 0
summary
