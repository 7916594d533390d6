#!/usr/bin/env bash
# Inbound protection: per-key rate limits with Retry-After, and a slow client
# that cannot stop others being served.
source tests/integration/lib.sh

start_sim A
write_config "$WORK/lim.json" A '.limits.wakes_per_second_per_key = 5'
start_gw L "$WORK/lim.json" || exit 1

t_rate_limit_per_key() {
	begin "a burst above the per-key limit gets 429 + Retry-After; another key is unaffected"
	local i codes=""
	for i in $(seq 1 12); do
		api L POST /v1/wake "$(wake_body "$(tok $((900 + i)))" "rl-$i")"
		codes="$codes $STATUS"
		if [ "$STATUS" = 429 ]; then
			LAST429_HEADERS=$HEADERS; LAST429_BODY=$BODY
		fi
	done
	check "some wakes were accepted ($codes)" grep -q 200 <<<"$codes"
	check "the burst got 429s ($codes)" grep -q 429 <<<"$codes"
	check "429 carries Retry-After" grep -qi '^Retry-After: [1-9]' <<<"${LAST429_HEADERS:-}"
	expect_eq "429 code" "$(jq -r .error.code <<<"${LAST429_BODY:-{\}}")" rate_limited
	api L POST /v1/wake "$(jq -c '.devices[0].app = "other"' <<<"$(wake_body "$(tok 950)")")" "$KEY_OTHER"
	expect_eq "another key is unaffected" "$STATUS" 200
	sleep 1.2
	api L POST /v1/wake "$(wake_body "$(tok 951)")"
	expect_eq "the first key recovers after Retry-After" "$STATUS" 200
}

t_slow_client_does_not_block_others() {
	begin "a client sending one byte a second does not stop others being served"
	( exec 3<>/dev/tcp/127.0.0.1/"$GW_PORT_L"
	  printf 'POST /v1/wake HTTP/1.1\r\nHost: x\r\n' >&3
	  for _ in 1 2 3 4 5 6; do printf 'X' >&3; sleep 1; done ) &
	local slow=$!
	sleep 0.5
	local i ok=0
	for i in 1 2 3 4 5; do
		curl -s -m 2 -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$GW_PORT_L/healthz" | grep -q 200 && ok=$((ok + 1))
	done
	expect_eq "health checks answered (each within curl's 2 s bound) while the slow client dribbles" "$ok" 5
	kill "$slow" 2>/dev/null; wait "$slow" 2>/dev/null
	check "gateway still running" gw_alive L
}

t_rate_limit_per_key
t_slow_client_does_not_block_others
stop_gw L
summary
