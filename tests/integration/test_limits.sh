#!/usr/bin/env bash
# Inbound protection: per-key rate limits with Retry-After, and slow clients
# that neither stop others being served nor hold their connections past the
# request-time bound.
source tests/integration/lib.sh

start_sim A
write_config "$WORK/lim.json" A '.limits.wakes_per_second_per_key = 5'
start_gw L "$WORK/lim.json" || exit 1

t_rate_limit_per_key() {
	begin "a burst above the per-key limit gets 429 + Retry-After; another key is unaffected"
	local i codes="" cfg="$WORK/burst.curl"
	# 20 wakes at once: a burst no slow machine can spread out past the
	# bucket's refill (5 a second)
	: >"$cfg"
	for i in $(seq 1 20); do
		[ "$i" = 1 ] || echo next >>"$cfg"
		printf 'url = "http://127.0.0.1:%s/v1/wake"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "%s"\ndump-header = "%s"\noutput = "%s"\nwrite-out = "%%{http_code}\\n"\n' \
			"$GW_PORT_L" "$KEY_WAKE" "$(wake_body "$(tok $((900 + i)))" "rl-$i" | sed 's/"/\\"/g')" \
			"$WORK/burst-h-$i" "$WORK/burst-b-$i" >>"$cfg"
	done
	codes=$(curl -s --parallel --parallel-max 20 --config "$cfg" | tr '\n' ' ')
	for i in $(seq 1 20); do
		if grep -q '^HTTP/1.1 429' "$WORK/burst-h-$i" 2>/dev/null; then
			LAST429_HEADERS=$(cat "$WORK/burst-h-$i"); LAST429_BODY=$(cat "$WORK/burst-b-$i")
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

metric() { curl -s "http://127.0.0.1:$GW_PORT_L/metrics" | awk -v n="$1" '$1 == n {print $2}'; }

t_slow_clients_are_cut_off_while_others_are_served() {
	begin "200 clients dribbling a wake body a byte a second: others' wakes get 200 sent; the dribblers are closed at the bound"
	local out="$WORK/slow.jsonl" n=200 i
	# 400-byte bodies at a byte a second would hold each connection ~7 minutes
	python3 tests/integration/slow_clients.py "$GW_PORT_L" "$KEY_WAKE" "$n" 400 60 >"$out" 2>"$WORK/slow.err" &
	local slow=$!
	for i in $(seq 1 400); do grep -q '"connected"' "$out" 2>/dev/null && break; sleep 0.05; done
	expect_eq "all $n slow connections accepted (under the per-IP limit)" "$(jq -r 'select(.connected) | .connected' "$out")" "$n"
	local codes="" statuses=""
	for i in $(seq 1 8); do
		sleep 0.25 # under this suite's 5 wakes a second per key
		curl -sS -m 5 -o "$WORK/w$i.json" -w '%{http_code} ' -H "Authorization: Bearer $KEY_WAKE" \
			-H 'Content-Type: application/json' --data-binary "$(wake_body "$(tok $((960 + i)))" "slow-$i")" \
			"http://127.0.0.1:$GW_PORT_L/v1/wake" >>"$WORK/codes" 2>&1
		statuses="$statuses$(jq -r '.results[0].status' "$WORK/w$i.json" 2>/dev/null) "
	done
	codes=$(cat "$WORK/codes")
	local closed_meanwhile; closed_meanwhile=$(grep -c '"gone":' "$out")
	expect_eq "wakes meanwhile: HTTP status (each within curl's 5 s)" "$codes" "200 200 200 200 200 200 200 200 "
	expect_eq "wakes meanwhile: pushes sent" "$statuses" "sent sent sent sent sent sent sent sent "
	expect_eq "the dribblers were all still connected while those were served" "$closed_meanwhile" 0
	wait "$slow"
	local sum; sum=$(tail -n1 "$out")
	expect_eq "the gateway closed every dribbling connection ($sum)" "$(jq -r '"\(.closed)/\(.still_open)"' <<<"$sum")" "$n/0"
	check "none got an answer to its half-sent request" test "$(jq -r 'select(.gone != null) | .answer' "$out" | grep -c .)" = 0
	local first last
	first=$(jq -s '[.[] | select(.gone != null) | .after_s] | min' "$out")
	last=$(jq -s '[.[] | select(.gone != null) | .after_s] | max' "$out")
	check "not before the 10 s bound (first at $first s)" jq -ne "$first >= 9" >/dev/null
	check "long before the body could be complete (last at $last s)" jq -ne "$last < 60" >/dev/null
	expect_eq "counted on /metrics" "$(metric pushgw_http_slow_connections_closed_total)" "$n"
	check "said once in the log, with a count" grep -q '"msg":"closed connections whose request was not in on time"' "$WORK/gw-L.log"
	api L POST /v1/wake "$(wake_body "$(tok 970)" slow-after)"
	expect_eq "and it serves wakes afterwards" "$STATUS,$(jqb '.results[0].status')" 200,sent
}

# early_answer PORT AUTH_HEADER: send a wake's headers announcing a 60 KB
# body and only 10 bytes of it; print the status the gateway answers within
# 3 s without the rest (0: none).
early_answer() {
	python3 - "$1" "$2" <<'PYEOF'
import socket, sys
port, auth = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
head = "POST /v1/wake HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n"
if auth:
    head += "Authorization: " + auth + "\r\n"
s.sendall((head + "\r\n").encode() + b'{"call":{"')
s.settimeout(3)
try:
    data = s.recv(4096)
except OSError:
    data = b""
print(int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.") else 0)
PYEOF
}

t_no_body_is_read_without_a_key() {
	begin "a request without a valid key is refused before its body is read (no buffering for strangers)"
	expect_eq "no key: 401 before the body" "$(early_answer "$GW_PORT_L" "")" 401
	expect_eq "unknown key: 401 before the body" "$(early_answer "$GW_PORT_L" "Bearer not-a-key")" 401
	expect_eq "a key without the wake scope: 403 before the body" \
		"$(early_answer "$GW_PORT_L" "Bearer $KEY_REG")" 403
	expect_eq "a valid key: the gateway waits for the body" \
		"$(early_answer "$GW_PORT_L" "Bearer $KEY_WAKE")" 0
}

t_header_size_is_bounded() {
	begin "request headers up to ~4 KB are served; larger ones get 431 and the gateway stays up"
	local pad code
	pad=$(head -c 3000 /dev/zero | tr '\0' a)
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Pad: $pad" "http://127.0.0.1:$GW_PORT_L/healthz")
	expect_eq "3 KB of headers" "$code" 200
	pad=$(head -c 12000 /dev/zero | tr '\0' a)
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Pad: $pad" "http://127.0.0.1:$GW_PORT_L/healthz")
	expect_eq "12 KB of headers" "$code" 431
	check "still serving" gw_alive L
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GW_PORT_L/healthz")
	expect_eq "next request" "$code" 200
}

t_rate_limit_per_key
t_no_body_is_read_without_a_key
t_header_size_is_bounded
t_slow_clients_are_cut_off_while_others_are_served
stop_gw L
summary
