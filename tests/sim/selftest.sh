#!/usr/bin/env bash
# Self-test of pushsim, driven from outside with curl, nghttp and h2load the
# way the integration tests drive it: APNs checks and reasons, scripted
# answers, control port, GOAWAY/drop, stream limits, certificate auth.
# Usage: tests/sim/selftest.sh   (PUSHSIM=path/to/pushsim, PUSHSIM_WRAP="valgrind ...")
# Prints "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${PUSHSIM:-$root/build/pushsim}
wrap=${PUSHSIM_WRAP:-}
[ -x "$bin" ] || { echo "selftest: no simulator at $bin (run: make build/pushsim)" >&2; exit 1; }
tmp=$(mktemp -d)
certs=$tmp/certs
pass=0
fail=0
pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

check() { # NAME EXPECTED ACTUAL
	if [ "$2" == "$3" ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "FAIL $1: expected '$2', got '$3'" >&2
	fi
}

check_true() { # NAME COMMAND...
	local name=$1
	shift
	if "$@"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "FAIL $name" >&2
	fi
}

# Evaluates a Python expression over the JSON document on stdin, bound to d.
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# start_sim NAME ARGS...: starts pushsim, sets ${NAME}_port, ${NAME}_ctl, ${NAME}_pid.
start_sim() {
	local name=$1 out=$tmp/$1.out i
	shift
	$wrap "$bin" --cert "$certs/server.pem" --key "$certs/server.key" "$@" >"$out" 2>"$tmp/$name.err" &
	local pid=$!
	pids+=("$pid")
	for i in $(seq 1 200); do
		[ -s "$out" ] && break
		sleep 0.05
	done
	printf -v "${name}_port" %s "$(jget 'd["listen"]' <"$out")"
	printf -v "${name}_ctl" %s "$(jget 'd["control"]' <"$out")"
	printf -v "${name}_pid" %s "$pid"
}

ctl() { # METHOD PATH [BODY] against the main simulator
	if [ $# -ge 3 ]; then
		curl -sS -X "$1" --data-binary "$3" "http://127.0.0.1:$ctl_port$2"
	else
		curl -sS -X "$1" "http://127.0.0.1:$ctl_port$2"
	fi
}

# push PATH CURL-ARGS...: one request; sets code, reason, hdrs (file), elapsed.
push() {
	local path=$1
	shift
	code=$(curl -sS --http2 --cacert "$certs/ca.pem" -o "$tmp/body" -D "$tmp/hdrs" \
		-w '%{http_code} %{time_total}' "$@" "https://localhost:${port:-$main_port}$path" \
		2>"$tmp/curl.err") || code="curl-error-$? 0"
	elapsed=${code#* }
	code=${code%% *}
	reason=$(sed -n 's/.*"reason":"\([^"]*\)".*/\1/p' "$tmp/body" 2>/dev/null)
	hdrs=$tmp/hdrs
}

header() { grep -i "^$1:" "$hdrs" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

is_uuid() { [[ $1 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]]; }

TEAM=TEAM123456
KID=KEY1234567
BUNDLE=com.example.phone
TOK=4f7a0c1e2d3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f708192a3b4c5d6e7f

"$here/gen-certs.sh" "$certs" || { echo "gen-certs.sh failed" >&2; exit 1; }
jwt=$("$here/make-jwt.sh" "$certs/AuthKey_$KID.p8" $TEAM $KID)
AUTH=(-H "authorization: bearer $jwt")
VOIP=("${AUTH[@]}" -H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -H "apns-priority: 10")
BODY='{"aps":{},"type":"call","call_id":"c1"}'

start_sim main --listen 127.0.0.1:0 --control 127.0.0.1:0 --team-id $TEAM --key-id $KID \
	--apns-key-pub "$certs/apns_pub.pem" --bundle-id $BUNDLE --bundle-id com.example.other
check "ports line" 1 "$([ -n "$main_port" ] && [ "$main_port" -gt 0 ] && [ "$main_ctl" -gt 0 ] && echo 1)"
ctl_port=$main_ctl

echo "-- a valid VoIP push is accepted with an apns-id" >&2
push /3/device/$TOK "${VOIP[@]}" -H "apns-expiration: $(($(date +%s) + 30))" -d "$BODY"
check "valid push status" 200 "$code"
check_true "apns-id is a lower-case UUID" is_uuid "$(header apns-id)"
check_true "apns-unique-id is a UUID" is_uuid "$(header apns-unique-id)"
push /3/device/$TOK "${VOIP[@]}" -H "apns-id: 123E4567-E89B-12D3-A456-426614174000" -d "$BODY"
check "apns-id echoed" "123E4567-E89B-12D3-A456-426614174000" "$(header apns-id)"
push /3/device/$TOK "${AUTH[@]}" -H "apns-topic: $BUNDLE" -H "apns-push-type: alert" -d "$BODY"
check "alert push to the bundle topic" 200 "$code"

echo "-- each check answers Apple's status and reason" >&2
expect() { # NAME STATUS REASON PATH CURL-ARGS...
	local name=$1 st=$2 rs=$3 path=$4
	shift 4
	push "$path" "$@"
	check "$name status" "$st" "$code"
	check "$name reason" "$rs" "$reason"
	check_true "$name carries apns-id" is_uuid "$(header apns-id | tr A-F a-f)"
}
expect "GET" 405 MethodNotAllowed /3/device/$TOK "${VOIP[@]}"
expect "other path" 404 BadPath /3/devices/$TOK "${VOIP[@]}" -d "$BODY"
expect "non-hex token" 400 BadDeviceToken /3/device/xyz123 "${VOIP[@]}" -d "$BODY"
expect "empty token" 400 BadDeviceToken /3/device/ "${VOIP[@]}" -d "$BODY"
expect "no token" 403 MissingProviderToken /3/device/$TOK -H "apns-topic: $BUNDLE.voip" \
	-H "apns-push-type: voip" -d "$BODY"
expect "garbage token" 403 InvalidProviderToken /3/device/$TOK -H "authorization: bearer abc" \
	-H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$BODY"
bad=$("$here/make-jwt.sh" "$certs/other.p8" $TEAM $KID)
expect "wrong signing key" 403 InvalidProviderToken /3/device/$TOK -H "authorization: bearer $bad" \
	-H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$BODY"
bad=$("$here/make-jwt.sh" "$certs/AuthKey_$KID.p8" $TEAM OTHERKEY00)
expect "wrong kid" 403 InvalidProviderToken /3/device/$TOK -H "authorization: bearer $bad" \
	-H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$BODY"
bad=$("$here/make-jwt.sh" "$certs/AuthKey_$KID.p8" OTHERTEAM0 $KID)
expect "wrong team" 403 InvalidProviderToken /3/device/$TOK -H "authorization: bearer $bad" \
	-H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$BODY"
bad=$("$here/make-jwt.sh" "$certs/AuthKey_$KID.p8" $TEAM $KID "$(date +%s)" ES384)
expect "wrong alg" 403 InvalidProviderToken /3/device/$TOK -H "authorization: bearer $bad" \
	-H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$BODY"
bad=$("$here/make-jwt.sh" "$certs/AuthKey_$KID.p8" $TEAM $KID '"123"')
expect "string iat" 403 InvalidProviderToken /3/device/$TOK -H "authorization: bearer $bad" \
	-H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$BODY"
tampered="${jwt%.*}.$(printf 'A%.0s' $(seq 1 86))"
expect "tampered signature" 403 InvalidProviderToken /3/device/$TOK \
	-H "authorization: bearer $tampered" -H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$BODY"
old=$("$here/make-jwt.sh" "$certs/AuthKey_$KID.p8" $TEAM $KID $(($(date +%s) - 3700)))
expect "token older than an hour" 403 ExpiredProviderToken /3/device/$TOK \
	-H "authorization: bearer $old" -H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$BODY"
recent=$("$here/make-jwt.sh" "$certs/AuthKey_$KID.p8" $TEAM $KID $(($(date +%s) - 3000)))
push /3/device/$TOK -H "authorization: bearer $recent" -H "apns-topic: $BUNDLE.voip" \
	-H "apns-push-type: voip" -d "$BODY"
check "50-minute-old token still good" 200 "$code"
expect "unknown push type" 400 InvalidPushType /3/device/$TOK "${AUTH[@]}" \
	-H "apns-topic: $BUNDLE.voip" -H "apns-push-type: call" -d "$BODY"
expect "no push type" 400 InvalidPushType /3/device/$TOK "${AUTH[@]}" -H "apns-topic: $BUNDLE" -d "$BODY"
expect "no topic" 400 MissingTopic /3/device/$TOK "${AUTH[@]}" -H "apns-push-type: voip" -d "$BODY"
expect "voip to the bare bundle" 400 DeviceTokenNotForTopic /3/device/$TOK "${AUTH[@]}" \
	-H "apns-topic: $BUNDLE" -H "apns-push-type: voip" -d "$BODY"
expect "alert to the voip topic" 400 DeviceTokenNotForTopic /3/device/$TOK "${AUTH[@]}" \
	-H "apns-topic: $BUNDLE.voip" -H "apns-push-type: alert" -d "$BODY"
expect "unknown bundle" 400 TopicDisallowed /3/device/$TOK "${AUTH[@]}" \
	-H "apns-topic: com.evil.app.voip" -H "apns-push-type: voip" -d "$BODY"
push /3/device/$TOK "${AUTH[@]}" -H "apns-topic: com.example.other.voip" -H "apns-push-type: voip" -d "$BODY"
check "second --bundle-id accepted" 200 "$code"
expect "priority 7" 400 BadPriority /3/device/$TOK "${AUTH[@]}" -H "apns-topic: $BUNDLE.voip" \
	-H "apns-push-type: voip" -H "apns-priority: 7" -d "$BODY"
push /3/device/$TOK "${AUTH[@]}" -H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" \
	-H "apns-priority: 5" -d "$BODY"
check "priority 5 accepted" 200 "$code"
expect "expiration not a number" 400 BadExpirationDate /3/device/$TOK "${VOIP[@]}" \
	-H "apns-expiration: soon" -d "$BODY"
expect "apns-id not a UUID" 400 BadMessageId /3/device/$TOK "${VOIP[@]}" -H "apns-id: nope" -d "$BODY"
long=$(printf 'c%.0s' $(seq 1 65))
expect "collapse id of 65 bytes" 400 BadCollapseId /3/device/$TOK "${VOIP[@]}" \
	-H "apns-collapse-id: $long" -d "$BODY"
push /3/device/$TOK "${VOIP[@]}" -H "apns-collapse-id: ${long:1}" -d "$BODY"
check "collapse id of 64 bytes" 200 "$code"
expect "duplicate header" 400 DuplicateHeaders /3/device/$TOK "${VOIP[@]}" \
	-H "apns-topic: $BUNDLE.voip" -d "$BODY"
expect "empty body" 400 PayloadEmpty /3/device/$TOK "${VOIP[@]}" -X POST
body_of() { python3 -c 'import sys; n=int(sys.argv[1]); s="{\"aps\":{},\"p\":\"\"}"; print(s[:-2] + "x"*(n-len(s)) + "\"}", end="")' "$1"; }
body_of 5120 >"$tmp/b5120"
body_of 5121 >"$tmp/b5121"
body_of 4096 >"$tmp/b4096"
body_of 4097 >"$tmp/b4097"
push /3/device/$TOK "${VOIP[@]}" --data-binary @"$tmp/b5120"
check "voip payload of 5120 bytes" 200 "$code"
expect "voip payload of 5121 bytes" 413 PayloadTooLarge /3/device/$TOK "${VOIP[@]}" --data-binary @"$tmp/b5121"
push /3/device/$TOK "${AUTH[@]}" -H "apns-topic: $BUNDLE" -H "apns-push-type: alert" --data-binary @"$tmp/b4096"
check "alert payload of 4096 bytes" 200 "$code"
expect "alert payload of 4097 bytes" 413 PayloadTooLarge /3/device/$TOK "${AUTH[@]}" \
	-H "apns-topic: $BUNDLE" -H "apns-push-type: alert" --data-binary @"$tmp/b4097"

echo "-- the request log records what arrived and what was answered" >&2
ctl POST /reset >/dev/null
push /3/device/$TOK "${VOIP[@]}" -H "apns-id: 0a1b2c3d-0000-4000-8000-000000000001" -d "$BODY"
push /3/device/$TOK "${VOIP[@]}" -d 'not json'
check "non-JSON body still accepted" 200 "$code"
push /3/device/zz "${VOIP[@]}" -d "$BODY"
ctl GET /requests >"$tmp/req.json"
check "records" 3 "$(jget 'len(d)' <"$tmp/req.json")"
check "record seq order" True "$(jget 'd[0]["seq"] < d[1]["seq"] < d[2]["seq"]' <"$tmp/req.json")"
check "record method" POST "$(jget 'd[0]["method"]' <"$tmp/req.json")"
check "record path" "/3/device/$TOK" "$(jget 'd[0]["path"]' <"$tmp/req.json")"
check "record token" "$TOK" "$(jget 'd[0]["token"]' <"$tmp/req.json")"
check "record topic header" "$BUNDLE.voip" "$(jget 'd[0]["headers"]["apns-topic"]' <"$tmp/req.json")"
check "record authorization header" "bearer $jwt" "$(jget 'd[0]["headers"]["authorization"]' <"$tmp/req.json")"
check "record has no pseudo-headers" False "$(jget 'any(k.startswith(":") for k in d[0]["headers"])' <"$tmp/req.json")"
check "record body" "$BODY" "$(jget 'd[0]["body"]' <"$tmp/req.json")"
check "record json_ok" True "$(jget 'd[0]["json_ok"]' <"$tmp/req.json")"
check "record json_ok false for non-JSON" False "$(jget 'd[1]["json_ok"]' <"$tmp/req.json")"
check "record status" 200 "$(jget 'd[0]["status"]' <"$tmp/req.json")"
check "record apns_id" 0a1b2c3d-0000-4000-8000-000000000001 "$(jget 'd[0]["apns_id"]' <"$tmp/req.json")"
check "record outcome" answered "$(jget 'd[0]["outcome"]' <"$tmp/req.json")"
check "record error reason" "400 BadDeviceToken" "$(jget 'str(d[2]["status"]) + " " + d[2]["reason"]' <"$tmp/req.json")"
check "record conn and stream" True "$(jget 'd[0]["conn"] >= 1 and d[0]["stream"] == 1' <"$tmp/req.json")"
check "record timestamp" True "$(jget "abs(d[0]['ts_ms'] - $(date +%s%3N)) < 60000" <"$tmp/req.json")"

echo "-- /stats counts handshakes, requests, 200s and distinct JWTs" >&2
ctl GET /stats >"$tmp/stats.json"
check "stats requests" 3 "$(jget 'd["requests"]' <"$tmp/stats.json")"
check "stats answered_200" 2 "$(jget 'd["answered_200"]' <"$tmp/stats.json")"
check "stats handshakes" 3 "$(jget 'd["handshakes"]' <"$tmp/stats.json")"
check "stats connections_total" 3 "$(jget 'd["connections_total"]' <"$tmp/stats.json")"
check "stats connections_open" 0 "$(jget 'd["connections_open"]' <"$tmp/stats.json")"
check "stats distinct_jwts" 1 "$(jget 'd["distinct_jwts"]' <"$tmp/stats.json")"
check "stats max_streams_in_flight" 1 "$(jget 'd["max_streams_in_flight"]' <"$tmp/stats.json")"
push /3/device/$TOK -H "authorization: bearer $recent" -H "apns-topic: $BUNDLE.voip" \
	-H "apns-push-type: voip" -d "$BODY"
check "stats distinct_jwts counts a new token" 2 "$(ctl GET /stats | jget 'd["distinct_jwts"]')"

echo "-- scripted answers are consumed in order, the last repeats" >&2
S1=aaaa000000000000000000000000000000000000000000000000000000000001
ctl POST /script "{\"$S1\":[{\"status\":503,\"reason\":\"ServiceUnavailable\",\"retry_after\":\"1\"},{\"status\":410,\"reason\":\"Unregistered\",\"timestamp\":1700000000123},{\"status\":200}]}" >/dev/null
push /3/device/$S1 "${VOIP[@]}" -d "$BODY"
check "script step 1 status" 503 "$code"
check "script step 1 reason" ServiceUnavailable "$reason"
check "script step 1 retry-after" 1 "$(header retry-after)"
push /3/device/$S1 "${VOIP[@]}" -d "$BODY"
check "script step 2 (410 with timestamp)" '{"reason":"Unregistered","timestamp":1700000000123}' "$(cat "$tmp/body")"
push /3/device/$S1 "${VOIP[@]}" -d "$BODY"
check "script step 3" 200 "$code"
push /3/device/$S1 "${VOIP[@]}" -d "$BODY"
check "last step repeats" 200 "$code"
push /3/device/$TOK "${VOIP[@]}" -d "$BODY"
check "unscripted token unaffected" 200 "$code"
S2=aaaa000000000000000000000000000000000000000000000000000000000002
ctl POST /script "{\"$S2\":[{\"status\":410}]}" >/dev/null
push /3/device/$S2 "${VOIP[@]}" -d "$BODY"
check "410 default reason" Unregistered "$reason"
check "410 default timestamp is now" True "$(jget "abs(d['timestamp'] - $(date +%s%3N)) < 60000" <"$tmp/body")"
push /3/device/$S2 -H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$BODY"
check "checks run before the script" 403 "$code"
check "bad script rejected" 400 "$(curl -s -o /dev/null -w '%{http_code}' --data-binary "{\"$S2\":[{\"status\":\"x\"}]}" "http://127.0.0.1:$ctl_port/script")"
push /3/device/$S2 "${VOIP[@]}" -d "$BODY"
check "bad script changed nothing" 410 "$code"
ctl POST /script "{\"$S2\":[]}" >/dev/null
push /3/device/$S2 "${VOIP[@]}" -d "$BODY"
check "empty list removes a script" 200 "$code"

echo "-- delays use timers" >&2
S3=aaaa000000000000000000000000000000000000000000000000000000000003
ctl POST /script "{\"$S3\":[{\"status\":200,\"delay_ms\":400}]}" >/dev/null
push /3/device/$S3 "${VOIP[@]}" -d "$BODY"
check "delayed step answers 200" 200 "$code"
check_true "delayed step takes >= 400 ms" python3 -c "import sys; sys.exit(0 if $elapsed >= 0.4 else 1)"
ctl POST "/delay?ms=300" >/dev/null
push /3/device/$TOK "${VOIP[@]}" -d "$BODY"
check_true "POST /delay slows every answer" python3 -c "import sys; sys.exit(0 if $elapsed >= 0.3 else 1)"
ctl POST "/delay?ms=0" >/dev/null
push /3/device/$TOK "${VOIP[@]}" -d "$BODY"
check_true "POST /delay?ms=0 restores" python3 -c "import sys; sys.exit(0 if $elapsed < 0.3 else 1)"

echo "-- rst, drop and no_answer steps" >&2
ctl POST /reset >/dev/null
S4=aaaa000000000000000000000000000000000000000000000000000000000004
S5=aaaa000000000000000000000000000000000000000000000000000000000005
S6=aaaa000000000000000000000000000000000000000000000000000000000006
ctl POST /script "{\"$S4\":[{\"rst\":true}],\"$S5\":[{\"drop\":true}],\"$S6\":[{\"no_answer\":true}]}" >/dev/null
push /3/device/$S4 "${VOIP[@]}" -d "$BODY"
check_true "rst: no answer reaches the client" [ "${code:0:10}" = curl-error ]
check "rst: recorded as refused" refused "$(ctl GET /requests | jget 'd[0]["outcome"]')"
push /3/device/$S5 "${VOIP[@]}" -d "$BODY"
check_true "drop: client sees the connection go" [ "${code:0:10}" = curl-error ]
check "drop: recorded as dropped" dropped "$(ctl GET /requests | jget '[r for r in d if r["token"] == "'$S5'"][0]["outcome"]')"
curl -s --http2 --cacert "$certs/ca.pem" --max-time 2 "${VOIP[@]}" -d "$BODY" \
	"https://localhost:$main_port/3/device/$S6" >/dev/null 2>&1 &
sleep 0.7
check "no_answer: pending while open" "pending 0" "$(ctl GET /requests | jget '" ".join(str(r[k]) for r in d if r["token"] == "'$S6'" for k in ("outcome", "status"))')"
check "no_answer: stream stays open" 1 "$(ctl GET /stats | jget 'd["connections_open"]')"
wait $!

echo "-- a goaway step closes the connection after answering" >&2
ctl POST /reset >/dev/null
S7=aaaa000000000000000000000000000000000000000000000000000000000007
ctl POST /script "{\"$S7\":[{\"status\":200,\"goaway\":true}]}" >/dev/null
out=$(curl -s --http2 --cacert "$certs/ca.pem" "${VOIP[@]}" -d "$BODY" -w '%{http_code}\n' -o /dev/null \
	"https://localhost:$main_port/3/device/$S7" "https://localhost:$main_port/3/device/$TOK" | tr '\n' ' ')
check "goaway step: both requests answered" "200 200 " "$out"
ctl GET /stats >"$tmp/stats.json"
check "goaway step: goaways_sent" 1 "$(jget 'd["goaways_sent"]' <"$tmp/stats.json")"
check "goaway step: client reconnected" 2 "$(jget 'd["connections_total"]' <"$tmp/stats.json")"

echo "-- POST /goaway refuses streams above the last answered one" >&2
ctl POST /reset >/dev/null
A=bbbb00000000000000000000000000000000000000000000000000000000000a
B=bbbb00000000000000000000000000000000000000000000000000000000000b
C=bbbb00000000000000000000000000000000000000000000000000000000000c
ctl POST /script "{\"$C\":[{\"status\":200,\"delay_ms\":1500}],\"$B\":[{\"status\":200,\"delay_ms\":1500}]}" >/dev/null
curl -s --http2 --cacert "$certs/ca.pem" -Z "${VOIP[@]}" -d "$BODY" -w '%{http_code}\n' -o /dev/null \
	"https://localhost:$main_port/3/device/$C" "https://localhost:$main_port/3/device/$A" \
	"https://localhost:$main_port/3/device/$B" >"$tmp/parallel.out" 2>/dev/null &
cpid=$!
for i in $(seq 1 50); do
	[ "$(ctl GET /requests | jget 'sum(1 for r in d if r["outcome"] == "answered")')" = 1 ] &&
		[ "$(ctl GET /requests | jget 'len(d)')" = 3 ] && break
	sleep 0.05
done
check "goaway: one connection" 1 "$(ctl GET /stats | jget 'd["connections_total"]')"
check "goaway: one connection goes away" '{"connections":1}' "$(ctl POST /goaway)"
wait $cpid
check "goaway: every request answered in the end" "200 200 200" "$(sort "$tmp/parallel.out" | tr '\n' ' ' | sed 's/ $//')"
ctl GET /requests >"$tmp/req.json"
check "goaway: the answered stream stays answered" "answered" "$(jget '[r["outcome"] for r in d if r["token"] == "'$A'"][0]' <"$tmp/req.json")"
check "goaway: a stream below last-stream-id is still answered" "answered 200" "$(jget '" ".join(str(r[k]) for r in d if r["token"] == "'$C'" for k in ("outcome","status"))' <"$tmp/req.json")"
check "goaway: the stream above is refused, then re-sent once" "refused answered" "$(jget '" ".join(r["outcome"] for r in d if r["token"] == "'$B'")' <"$tmp/req.json")"
check "goaway: the re-send went to a new connection" True "$(jget 'len(set(r["conn"] for r in d if r["token"] == "'$B'")) == 2' <"$tmp/req.json")"
check "goaway: goaways_sent" 1 "$(ctl GET /stats | jget 'd["goaways_sent"]')"
check "goaway: old connection closed" 0 "$(ctl GET /stats | jget 'd["connections_open"]')"

echo "-- POST /drop closes every connection without a word" >&2
ctl POST /reset >/dev/null
ctl POST /script "{\"$B\":[{\"status\":200,\"delay_ms\":3000}]}" >/dev/null
curl -s --http2 --cacert "$certs/ca.pem" "${VOIP[@]}" -d "$BODY" "https://localhost:$main_port/3/device/$B" \
	>/dev/null 2>&1 &
cpid=$!
for i in $(seq 1 50); do
	[ "$(ctl GET /stats | jget 'd["requests"]')" = 1 ] && break
	sleep 0.05
done
check "drop: one connection dropped" '{"connections":1}' "$(ctl POST /drop)"
wait $cpid
check_true "drop: the client saw an error" [ $? -ne 0 ]
ctl GET /requests >"$tmp/req.json"
check "drop: the first request is recorded as dropped" dropped "$(jget 'd[0]["outcome"]' <"$tmp/req.json")"
check "drop: no connection left" 0 "$(ctl GET /stats | jget 'd["connections_open"]')"
check "drop: no GOAWAY was sent" 0 "$(ctl GET /stats | jget 'd["goaways_sent"]')"

echo "-- stream limits: SETTINGS_MAX_CONCURRENT_STREAMS is honoured and changeable" >&2
ctl POST /reset >/dev/null
# MAX_CONCURRENT_STREAMS values the server sent, in order, from nghttp -v output.
recv_max_streams() {
	awk '/ (recv|send) [A-Z_]+ frame/ { r = ($2 == "recv" && $3 == "SETTINGS") || ($3 == "recv" && $4 == "SETTINGS") }
	     r && /SETTINGS_MAX_CONCURRENT_STREAMS/ { sub(/.*:/, ""); sub(/\]/, ""); printf "%s ", $0 }' "$1"
}
h2() { # PORT N M: h2load run, prints "succeeded failed"
	h2load -n "$2" -c 1 -m "$3" -d "$tmp/body.json" -H "authorization: bearer $jwt" \
		-H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" \
		"https://127.0.0.1:$1/3/device/$TOK" 2>&1 |
		sed -n 's/^requests: .* \([0-9]*\) succeeded, \([0-9]*\) failed.*/\1 \2/p'
}
printf %s "$BODY" >"$tmp/body.json"
if command -v h2load >/dev/null && command -v nghttp >/dev/null; then
	check "h2load 500 requests, 20 streams" "500 0" "$(h2 "$main_port" 500 20)"
	check "max_streams_in_flight under -m 20" True "$(ctl GET /stats | jget '1 < d["max_streams_in_flight"] <= 20')"
	ctl POST "/settings?max_streams=3" >/dev/null
	ctl POST /reset >/dev/null
	check "h2load within max_streams=3" "300 0" "$(h2 "$main_port" 300 3)"
	# A client may open streams before our SETTINGS arrive: the excess is refused, never served.
	h2 "$main_port" 300 20 >/dev/null
	check "max_streams_in_flight <= 3 when a client asks for 20" True "$(ctl GET /stats | jget '1 <= d["max_streams_in_flight"] <= 3')"
	nghttp -nv "${AUTH[@]}" -H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$tmp/body.json" \
		"https://127.0.0.1:$main_port/3/device/$TOK" >"$tmp/nghttp.out" 2>&1
	check "new connections advertise the new limit" "3 " "$(recv_max_streams "$tmp/nghttp.out")"

	start_sim init --listen 127.0.0.1:0 --control 127.0.0.1:0 --team-id $TEAM --key-id $KID \
		--apns-key-pub "$certs/apns_pub.pem" --bundle-id $BUNDLE --initial-streams 1 --max-streams 50
	nghttp -nv "${AUTH[@]}" -H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$tmp/body.json" \
		"https://127.0.0.1:$init_port/3/device/$TOK" >"$tmp/nghttp.out" 2>&1
	check "--initial-streams: 1 first, then --max-streams after a 200" "1 50 " "$(recv_max_streams "$tmp/nghttp.out")"
	nghttp -nv -H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$tmp/body.json" \
		"https://127.0.0.1:$init_port/3/device/$TOK" >"$tmp/nghttp.out" 2>&1
	check "--initial-streams: a rejected push keeps 1" "1 " "$(recv_max_streams "$tmp/nghttp.out")"
	h2 "$init_port" 200 10 >/dev/null
	check "--initial-streams: the connection widens after a 200" True \
		"$(curl -s "http://127.0.0.1:$init_ctl/stats" | jget '1 < d["max_streams_in_flight"] <= 10')"
	kill -TERM "$init_pid"
	wait "$init_pid"
	check "SIGTERM exits 0" 0 "$?"
else
	echo "SKIP stream-limit checks: h2load/nghttp (nghttp2-client) not installed" >&2
fi

echo "-- certificate auth, untrusted certificate, ALPN" >&2
start_sim cert --listen 127.0.0.1:0 --control 127.0.0.1:0 --client-ca "$certs/ca.pem" --bundle-id $BUNDLE
port=$cert_port push /3/device/$TOK --cert "$certs/client.pem" --key "$certs/client.key" \
	-H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$BODY"
check "client certificate: accepted without a JWT" 200 "$code"
port=$cert_port push /3/device/$TOK -H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$BODY"
check_true "no client certificate: handshake fails" [ "${code:0:10}" = curl-error ]
port=$cert_port push /3/device/$TOK --cert "$certs/untrusted.pem" --key "$certs/untrusted.key" \
	-H "apns-topic: $BUNDLE.voip" -H "apns-push-type: voip" -d "$BODY"
check_true "client certificate from another CA: refused" [ "${code:0:10}" = curl-error ]
check "cert sim: one handshake completed" 1 "$(curl -s "http://127.0.0.1:$cert_ctl/stats" | jget 'd["handshakes"]')"
curl -s -X POST "http://127.0.0.1:$cert_ctl/shutdown" >/dev/null
wait "$cert_pid"
check "POST /shutdown exits 0" 0 "$?"

start_sim untrusted --listen 127.0.0.1:0 --control 127.0.0.1:0 --cert "$certs/untrusted.pem" \
	--key "$certs/untrusted.key"
port=$untrusted_port push /3/device/$TOK "${VOIP[@]}" -d "$BODY"
check "untrusted.pem is not trusted by ca.pem" curl-error-60 "$code"
curl -s -X POST "http://127.0.0.1:$untrusted_ctl/shutdown" >/dev/null
wait "$untrusted_pid"
push /3/device/$TOK "${VOIP[@]}" -d "$BODY" --http1.1
check_true "HTTP/1.1-only client: refused in ALPN" [ "${code:0:10}" = curl-error ]

echo "-- command-line errors" >&2
"$bin" --listen 127.0.0.1:0 >/dev/null 2>"$tmp/err"
check "missing options exit 1" 1 "$?"
check "one line on stderr" 1 "$(wc -l <"$tmp/err")"
"$bin" --listen nope --control 127.0.0.1:0 --cert "$certs/server.pem" --key "$certs/server.key" >/dev/null 2>"$tmp/err"
check "bad address exits 1" 1 "$?"
"$bin" --listen 127.0.0.1:0 --control 127.0.0.1:0 --cert "$certs/server.pem" --key "$certs/server.key" \
	--team-id $TEAM --key-id $KID --apns-key-pub "$certs/server.key" >/dev/null 2>"$tmp/err"
check "bad public key exits 1" 1 "$?"

kill -TERM "$main_pid"
wait "$main_pid"
check "main simulator exits 0 on SIGTERM" 0 "$?"
# Sanitizer and valgrind reports land in the simulators' stderr files.
if grep -q "ERROR SUMMARY: [1-9]\|definitely lost: [1-9]\|ERROR: [A-Za-z]*Sanitizer\|runtime error" "$tmp"/*.err; then
	fail=$((fail + 1))
	echo "FAIL memory checker reported problems:" >&2
	grep -h "ERROR SUMMARY\|definitely lost\|Sanitizer\|runtime error" "$tmp"/*.err >&2
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
