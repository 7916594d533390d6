#!/usr/bin/env bash
# Self-test of pushsim, driven from outside with curl, nghttp and h2load the
# way the integration tests drive it: APNs checks and reasons, scripted
# answers, control port, GOAWAY/drop, stream limits, certificate auth, and
# Google's OAuth token endpoint and FCM HTTP v1 with assertions made by the
# openssl CLI.
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
ctl POST /script "{\"$C\":[{\"status\":200,\"delay_ms\":2500}],\"$B\":[{\"status\":200,\"delay_ms\":2500}]}" >/dev/null
curl -s --http2 --cacert "$certs/ca.pem" -Z "${VOIP[@]}" -d "$BODY" -w '%{http_code}\n' -o /dev/null \
	"https://localhost:$main_port/3/device/$C" "https://localhost:$main_port/3/device/$A" \
	"https://localhost:$main_port/3/device/$B" >"$tmp/parallel.out" 2>/dev/null &
cpid=$!
for i in $(seq 1 50); do
	[ "$(ctl GET /requests | jget 'len(d) == 3 and sum(1 for r in d if r["outcome"] == "answered") == 1')" = True ] && break
	sleep 0.02
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

echo "-- Google: OAuth token endpoint" >&2
PROJECT=demo-project
EMAIL=pushgw-test@$PROJECT.iam.gserviceaccount.com
EMAIL2=second@$PROJECT.iam.gserviceaccount.com
GRANT="grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
FCM_SCOPE=https://www.googleapis.com/auth/firebase.messaging
# A second account known through its JSON file, whose key pushsim derives.
mkdir -p "$tmp/sa2"
cp "$certs/sa_other.pem" "$tmp/sa2/sa_key.pem"
"$here/make-sa.sh" "$tmp/sa2" https://127.0.0.1:1/token $PROJECT "$EMAIL2" ||
	{ echo "make-sa.sh failed" >&2; exit 1; }
check "make-sa.sh: owner-only file" 600 "$(stat -c %a "$tmp/sa2/service-account.json")"
check "make-sa.sh: Google's fields" "service_account $PROJECT $EMAIL2 https://127.0.0.1:1/token 40" \
	"$(jget '" ".join([d["type"], d["project_id"], d["client_email"], d["token_uri"], str(len(d["private_key_id"]))])' <"$tmp/sa2/service-account.json")"
check "make-sa.sh: private_key is the PEM key" True \
	"$(jget 'd["private_key"] == open("'"$tmp/sa2/sa_key.pem"'").read()' <"$tmp/sa2/service-account.json")"
check "gen-certs.sh: sa_key.pem is PKCS#8 and private" "-----BEGIN PRIVATE KEY----- 600" \
	"$(head -1 "$certs/sa_key.pem") $(stat -c %a "$certs/sa_key.pem")"

start_sim g --listen 127.0.0.1:0 --control 127.0.0.1:0 --sa-pub "$EMAIL=$certs/sa_pub.pem" \
	--service-account "$tmp/sa2/service-account.json" --fcm-project $PROJECT --fcm-project other-project
TOKEN_URI=https://127.0.0.1:$g_port/token
gctl() { # METHOD PATH [BODY] against the Google simulator
	if [ $# -ge 3 ]; then
		curl -sS -X "$1" --data-binary "$3" "http://127.0.0.1:$g_ctl$2"
	else
		curl -sS -X "$1" "http://127.0.0.1:$g_ctl$2"
	fi
}
assertion() { "$here/make-assertion.sh" "$@"; }
token_req() { # FORM-BODY [CURL-ARGS...]: POST to the token endpoint
	local form=$1
	shift
	port=$g_port push /token --data-binary "$form" "$@"
}
body() { jget "$1" <"$tmp/body"; }
oauth_expect() { # NAME STATUS ERROR FORM-BODY [CURL-ARGS...]
	local name=$1 st=$2 er=$3 form=$4
	shift 4
	token_req "$form" "$@"
	check "$name: status" "$st" "$code"
	check "$name: Google's error document" "['error', 'error_description'] $er" \
		"$(body 'str(sorted(d)) + " " + d["error"]')"
}

a=$(assertion "$certs/sa_key.pem" "$EMAIL" "$TOKEN_URI")
token_req "$GRANT&assertion=$a"
check "token: 200" 200 "$code"
check "token: Bearer, 3600 s" "Bearer 3600" "$(body 'd["token_type"] + " " + str(d["expires_in"])')"
check_true "token: ya29.sim- access token" [ "$(body 'd["access_token"].startswith("ya29.sim-") and len(d["access_token"]) > 20')" = True ]
check "token: JSON content type" "application/json; charset=utf-8" "$(header content-type)"
AT=$(body 'd["access_token"]')
token_req "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=${a//./%2E}"
check "token: raw grant_type, %-encoded assertion" 200 "$code"
check "token: a fresh token every time" True "$(body 'd["access_token"] != "'"$AT"'"')"
token_req "$GRANT&assertion=$(assertion "$tmp/sa2/sa_key.pem" "$EMAIL2" "$TOKEN_URI")"
check "token: --service-account key derived from its JSON" 200 "$code"
token_req "$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL" "https://localhost:$g_port/token")"
check "token: aud with localhost" 200 "$code"
token_req "$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL" "$TOKEN_URI" "" 3600 https://www.googleapis.com/auth/cloud-platform)"
check "token: cloud-platform scope" 200 "$code"
token_req "$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL" "$TOKEN_URI" $(($(date +%s) + 200)))"
check "token: iat 200 s ahead (clock skew)" 200 "$code"

oauth_expect "wrong key for the account" 400 invalid_grant \
	"$GRANT&assertion=$(assertion "$certs/sa_other.pem" "$EMAIL" "$TOKEN_URI")"
check "wrong key: Google's description" "Invalid JWT Signature." "$(body 'd["error_description"]')"
oauth_expect "wrong key for the JSON account" 400 invalid_grant \
	"$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL2" "$TOKEN_URI")"
oauth_expect "unknown account" 400 invalid_grant \
	"$GRANT&assertion=$(assertion "$certs/sa_key.pem" "nobody@x.iam.gserviceaccount.com" "$TOKEN_URI")"
check "unknown account: description" "Invalid grant: account not found" "$(body 'd["error_description"]')"
oauth_expect "aud of another path" 400 invalid_grant \
	"$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL" "https://127.0.0.1:$g_port/oauth2/v4/token")"
oauth_expect "aud over http" 400 invalid_grant \
	"$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL" "http://127.0.0.1:$g_port/token")"
oauth_expect "scope without FCM" 400 invalid_scope \
	"$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL" "$TOKEN_URI" "" 3600 https://www.googleapis.com/auth/userinfo.email)"
oauth_expect "iat 400 s old" 400 invalid_grant \
	"$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL" "$TOKEN_URI" $(($(date +%s) - 400)))"
oauth_expect "iat 400 s ahead" 400 invalid_grant \
	"$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL" "$TOKEN_URI" $(($(date +%s) + 400)))"
oauth_expect "lifetime 3601 s" 400 invalid_grant \
	"$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL" "$TOKEN_URI" "" 3601)"
oauth_expect "exp already past" 400 invalid_grant \
	"$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL" "$TOKEN_URI" $(($(date +%s) - 250)) 200)"
oauth_expect "alg RS384 in the header" 400 invalid_grant \
	"$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL" "$TOKEN_URI" "" 3600 $FCM_SCOPE RS384)"
oauth_expect "tampered signature" 400 invalid_grant "$GRANT&assertion=${a%.*}.$(printf 'A%.0s' $(seq 1 342))"
oauth_expect "not a JWT" 400 invalid_grant "$GRANT&assertion=abc.def"
oauth_expect "other grant type" 400 unsupported_grant_type "grant_type=client_credentials&assertion=$a"
oauth_expect "no assertion" 400 invalid_request "$GRANT"
oauth_expect "broken %-escape" 400 invalid_request "$GRANT&assertion=%G1$a"
oauth_expect "JSON body" 400 invalid_request "{\"assertion\":\"$a\"}" -H "content-type: application/json"
port=$g_port push /token
check "GET /token: 405" 405 "$code"

echo "-- Google: OAuth controls (fail, ttl, revoke) and counters" >&2
gctl POST /reset >/dev/null
check "POST /oauth?fail=2" 2 "$(gctl POST '/oauth?fail=2' | jget 'd["fail"]')"
a=$(assertion "$certs/sa_key.pem" "$EMAIL" "$TOKEN_URI")
oauth_expect "forced failure 1" 400 invalid_grant "$GRANT&assertion=$a"
oauth_expect "forced failure 2" 400 invalid_grant "$GRANT&assertion=$a"
token_req "$GRANT&assertion=$a"
check "after the forced failures: 200" 200 "$code"
gctl GET /stats >"$tmp/gstats.json"
check "stats oauth_requests" 3 "$(jget 'd["oauth_requests"]' <"$tmp/gstats.json")"
check "stats oauth_issued" 1 "$(jget 'd["oauth_issued"]' <"$tmp/gstats.json")"
gctl GET /requests >"$tmp/greq.json"
check "oauth record: kind, account, status, reason" "oauth $EMAIL 400 invalid_grant" \
	"$(jget '" ".join(str(d[0][k]) for k in ("kind", "token", "status", "reason"))' <"$tmp/greq.json")"
check "oauth record: id is the issued token" True \
	"$(jget 'd[2]["id"] == "'"$(body 'd["access_token"]')"'"' <"$tmp/greq.json")"
check "oauth record: form body kept" True "$(jget 'd[2]["body"].startswith("grant_type=")' <"$tmp/greq.json")"
check "POST /oauth?ttl=1" 1 "$(gctl POST '/oauth?ttl=1' | jget 'd["ttl"]')"
token_req "$GRANT&assertion=$a"
check "ttl=1: expires_in 1" 1 "$(body 'd["expires_in"]')"
SHORT=$(body 'd["access_token"]')
gctl POST '/oauth?ttl=3600' >/dev/null
check "bad control: no parameter" 400 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$g_ctl/oauth")"
check "bad control: ttl=0" 400 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$g_ctl/oauth?ttl=0")"
check "GET /oauth: state" "3600 0" "$(gctl GET /oauth | jget 'str(d["ttl"]) + " " + str(d["fail"])')"

echo "-- Google: FCM HTTP v1 send" >&2
fcm() { # BODY [PROJECT] [CURL-ARGS...]: a send with the access token AT
	local b=$1 project=${2:-$PROJECT}
	shift
	[ $# -gt 0 ] && shift
	port=$g_port push "/v1/projects/$project/messages:send" -H "authorization: Bearer $AT" \
		-H "content-type: application/json" --data-binary "$b" "$@"
}
# "STATUS google-status [detail types] field", to compare error documents at a glance.
summary='str(d["error"]["code"]) + " " + d["error"]["status"] + " " + str([x["@type"].split(".")[-1] for x in d["error"].get("details", [])]) + " " + ",".join(v.get("field", "-") for x in d["error"].get("details", []) for v in x.get("fieldViolations", []))'
fcm_expect() { # NAME SUMMARY BODY [PROJECT] [CURL-ARGS...]
	local name=$1 want=$2
	shift 2
	fcm "$@"
	check "$name" "$want" "$(body "$summary")"
}
FTOK="dGVzdC1kZXZpY2U:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"
MSG="{\"message\":{\"token\":\"$FTOK\",\"android\":{\"priority\":\"HIGH\",\"ttl\":\"30s\"},\"data\":{\"type\":\"call\",\"call_id\":\"c1\"}}}"
fcm "$MSG"
check "send: 200" 200 "$code"
check_true "send: name projects/<p>/messages/0:<digits>%<hex>" \
	python3 -c 'import json,re,sys; sys.exit(0 if re.fullmatch(r"projects/demo-project/messages/0:\d{16}%[0-9a-f]{16}", json.load(open(sys.argv[1]))["name"]) else 1)' "$tmp/body"
fcm "$MSG" other-project
check "send: a second --fcm-project" 200 "$code"
fcm "{\"message\":{\"token\":\"$FTOK\",\"android\":{\"priority\":\"high\",\"ttl\":\"3.5s\"}}}"
check "send: priority high, ttl 3.5s, no data" 200 "$code"
fcm "{\"message\":{\"token\":\"$FTOK\",\"android\":{\"priority\":\"normal\",\"ttl\":\"0s\",\"data\":{\"k\":\"v\"}}},\"validate_only\":true}"
check "send: validate_only" "projects/$PROJECT/messages/fake_message_id" "$(body 'd["name"]')"

fcm_expect "data value not a string" "400 INVALID_ARGUMENT ['BadRequest'] message.data[1].value" \
	"{\"message\":{\"token\":\"$FTOK\",\"data\":{\"type\":\"call\",\"video\":false}}}"
check "data value not a string: message" "Invalid value at 'message.data[1].value' (TYPE_STRING), false" \
	"$(body 'd["error"]["message"]')"
fcm_expect "android.data value not a string" "400 INVALID_ARGUMENT ['BadRequest'] message.android.data[0].value" \
	"{\"message\":{\"token\":\"$FTOK\",\"android\":{\"data\":{\"n\":1}}}}"
fcm_expect "data not an object" "400 INVALID_ARGUMENT ['BadRequest'] message.data" \
	"{\"message\":{\"token\":\"$FTOK\",\"data\":[\"a\"]}}"
fcm_expect "reserved data key 'from'" "400 INVALID_ARGUMENT ['FcmError', 'BadRequest'] message.data" \
	"{\"message\":{\"token\":\"$FTOK\",\"data\":{\"from\":\"+1555\"}}}"
fcm_expect "reserved key 'google.x' in android.data" "400 INVALID_ARGUMENT ['FcmError', 'BadRequest'] message.android.data" \
	"{\"message\":{\"token\":\"$FTOK\",\"android\":{\"data\":{\"google.x\":\"1\"}}}}"
fcm_expect "priority URGENT" "400 INVALID_ARGUMENT ['BadRequest'] message.android.priority" \
	"{\"message\":{\"token\":\"$FTOK\",\"android\":{\"priority\":\"URGENT\"}}}"
fcm_expect "ttl without s" "400 INVALID_ARGUMENT ['BadRequest'] message.android.ttl" \
	"{\"message\":{\"token\":\"$FTOK\",\"android\":{\"ttl\":\"30\"}}}"
fcm_expect "negative ttl" "400 INVALID_ARGUMENT ['BadRequest'] message.android.ttl" \
	"{\"message\":{\"token\":\"$FTOK\",\"android\":{\"ttl\":\"-5s\"}}}"
fcm_expect "ttl as a number" "400 INVALID_ARGUMENT ['BadRequest'] message.android.ttl" \
	"{\"message\":{\"token\":\"$FTOK\",\"android\":{\"ttl\":30}}}"
fcm_expect "unknown message field" "400 INVALID_ARGUMENT ['BadRequest'] message" \
	"{\"message\":{\"token\":\"$FTOK\",\"priority\":\"high\"}}"
fcm_expect "unknown android field" "400 INVALID_ARGUMENT ['BadRequest'] message.android" \
	"{\"message\":{\"token\":\"$FTOK\",\"android\":{\"time_to_live\":\"3s\"}}}"
fcm_expect "no recipient" "400 INVALID_ARGUMENT ['FcmError', 'BadRequest'] message" \
	"{\"message\":{\"data\":{\"a\":\"b\"}}}"
check "no recipient: message" "Recipient of the message is not set." "$(body 'd["error"]["message"]')"
fcm_expect "token and topic" "400 INVALID_ARGUMENT ['BadRequest'] message" \
	"{\"message\":{\"token\":\"$FTOK\",\"topic\":\"news\"}}"
fcm_expect "malformed token" "400 INVALID_ARGUMENT ['FcmError'] " "{\"message\":{\"token\":\"bad token\"}}"
fcm_expect "not JSON" "400 INVALID_ARGUMENT ['BadRequest'] -" "{\"message\":"
big=$(printf 'x%.0s' $(seq 1 4100))
fcm_expect "data over 4096 bytes" "400 INVALID_ARGUMENT ['FcmError'] " \
	"{\"message\":{\"token\":\"$FTOK\",\"data\":{\"k\":\"$big\"}}}"
check "data over 4096 bytes: message" "Android message is too big" "$(body 'd["error"]["message"]')"

fcm_expect "unknown project" "403 PERMISSION_DENIED ['ErrorInfo'] " "$MSG" nope-project
port=$g_port push "/v1/projects/$PROJECT/messages:send" -H "content-type: application/json" --data-binary "$MSG"
check "no authorization: 401" "401 UNAUTHENTICATED [] " "$(body "$summary")"
check "no authorization: message" True "$(body 'd["error"]["message"].startswith("Request is missing required authentication credential.")')"
check "no authorization: www-authenticate" True "$(header www-authenticate | grep -q 'error="invalid_token"' && echo True)"
AT=ya29.sim-0000000000000000 fcm_expect "unknown access token" "401 UNAUTHENTICATED [] " "$MSG"
check "unknown access token: message" True "$(body 'd["error"]["message"].startswith("Request had invalid authentication credentials.")')"
sleep 1.1
AT=$SHORT fcm_expect "expired access token (ttl=1)" "401 UNAUTHENTICATED [] " "$MSG"
fcm "$MSG"
check "a token issued before ttl=1 still works" 200 "$code"
AT=nope fcm_expect "unknown project is checked after the token" "401 UNAUTHENTICATED [] " "$MSG" nope-project
port=$g_port push "/v1/projects/$PROJECT/messages" -H "authorization: Bearer $AT" --data-binary "$MSG"
check "other method path: 404 NOT_FOUND" "404 NOT_FOUND [] " "$(body "$summary")"
port=$g_port push "/v1/projects/$PROJECT/messages:send" -H "authorization: Bearer $AT"
check "GET messages:send: 404" 404 "$code"

echo "-- Google: scripted FCM answers, every error class" >&2
gctl POST /reset >/dev/null
S() { printf 'fcm-script-%s:APA91b' "$1"; }
gctl POST /script "{\"$(S 1)\":[{\"status\":404,\"fcm\":\"UNREGISTERED\"}],
	\"$(S 2)\":[{\"status\":400,\"fcm\":\"INVALID_ARGUMENT\"}],
	\"$(S 3)\":[{\"status\":400,\"fcm\":\"INVALID_ARGUMENT\",\"bad_request\":\"message.android.ttl\"}],
	\"$(S 4)\":[{\"status\":403,\"fcm\":\"SENDER_ID_MISMATCH\"}],
	\"$(S 5)\":[{\"status\":429,\"fcm\":\"QUOTA_EXCEEDED\",\"retry_after\":\"1\"},{\"status\":200}],
	\"$(S 6)\":[{\"status\":503,\"fcm\":\"UNAVAILABLE\"},{\"status\":500,\"fcm\":\"INTERNAL\"},{}],
	\"$(S 7)\":[{\"status\":401,\"fcm\":\"THIRD_PARTY_AUTH_ERROR\"}],
	\"$(S 8)\":[{\"fcm\":\"UNREGISTERED\"}],
	\"$(S 9)\":[{\"status\":200,\"delay_ms\":400}],
	\"$(S 10)\":[{\"rst\":true}],
	\"$(S 11)\":[{\"drop\":true}]}" >/dev/null
msg_for() { printf '{"message":{"token":"%s","android":{"priority":"HIGH","ttl":"30s"},"data":{"type":"call"}}}' "$1"; }
fcm "$(msg_for "$(S 1)")"
check "UNREGISTERED: exactly FCM's document" True "$(body 'd == {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND", "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}')"
fcm_expect "INVALID_ARGUMENT (token): FcmError only" "400 INVALID_ARGUMENT ['FcmError'] " "$(msg_for "$(S 2)")"
fcm_expect "INVALID_ARGUMENT (our message): BadRequest too" \
	"400 INVALID_ARGUMENT ['FcmError', 'BadRequest'] message.android.ttl" "$(msg_for "$(S 3)")"
fcm_expect "SENDER_ID_MISMATCH" "403 PERMISSION_DENIED ['FcmError'] " "$(msg_for "$(S 4)")"
check "SENDER_ID_MISMATCH: errorCode" SENDER_ID_MISMATCH "$(body 'd["error"]["details"][0]["errorCode"]')"
fcm_expect "QUOTA_EXCEEDED" "429 RESOURCE_EXHAUSTED ['FcmError'] " "$(msg_for "$(S 5)")"
check "QUOTA_EXCEEDED: Retry-After" 1 "$(header retry-after)"
check "QUOTA_EXCEEDED: errorCode" QUOTA_EXCEEDED "$(body 'd["error"]["details"][0]["errorCode"]')"
fcm "$(msg_for "$(S 5)")"
check "QUOTA_EXCEEDED then 200" 200 "$code"
fcm_expect "UNAVAILABLE" "503 UNAVAILABLE ['FcmError'] " "$(msg_for "$(S 6)")"
fcm_expect "INTERNAL" "500 INTERNAL ['FcmError'] " "$(msg_for "$(S 6)")"
fcm "$(msg_for "$(S 6)")"
check "an empty step answers 200, and repeats" "200 200" "$code $(fcm "$(msg_for "$(S 6)")"; echo "$code")"
fcm_expect "THIRD_PARTY_AUTH_ERROR" "401 UNAUTHENTICATED ['FcmError'] " "$(msg_for "$(S 7)")"
check "THIRD_PARTY_AUTH_ERROR: errorCode" THIRD_PARTY_AUTH_ERROR "$(body 'd["error"]["details"][0]["errorCode"]')"
fcm_expect "errorCode alone picks FCM's status" "404 NOT_FOUND ['FcmError'] " "$(msg_for "$(S 8)")"
AT=nope fcm_expect "checks run before the script" "401 UNAUTHENTICATED [] " "$(msg_for "$(S 8)")"
fcm "$(msg_for "$(S 9)")"
check "FCM delay step: 200" 200 "$code"
check_true "FCM delay step takes >= 400 ms" python3 -c "import sys; sys.exit(0 if $elapsed >= 0.4 else 1)"
fcm "$(msg_for "$(S 10)")"
check_true "FCM rst step: no answer" [ "${code:0:10}" = curl-error ]
fcm "$(msg_for "$(S 11)")"
check_true "FCM drop step: connection closed" [ "${code:0:10}" = curl-error ]
check "script with an unknown field rejected" 400 \
	"$(curl -s -o /dev/null -w '%{http_code}' --data-binary "{\"$(S 1)\":[{\"fcm_code\":\"X\"}]}" "http://127.0.0.1:$g_ctl/script")"

gctl GET /requests >"$tmp/greq.json"
check "fcm record: kind and token" "fcm $(S 1)" "$(jget 'd[0]["kind"] + " " + d[0]["token"]' <"$tmp/greq.json")"
check "fcm record: status and reason" "404 UNREGISTERED" "$(jget 'str(d[0]["status"]) + " " + d[0]["reason"]' <"$tmp/greq.json")"
check "fcm record: authorization header kept" "Bearer $AT" "$(jget 'd[0]["headers"]["authorization"]' <"$tmp/greq.json")"
check "fcm record: body kept, json_ok" "True True" "$(jget 'str(d[0]["body"] == """'"$(msg_for "$(S 1)")"'""") + " " + str(d[0]["json_ok"])' <"$tmp/greq.json")"
check "fcm record: id is the message name" True \
	"$(jget '[r for r in d if r["token"] == "'"$(S 5)"'"][1]["id"].startswith("projects/'$PROJECT'/messages/0:")' <"$tmp/greq.json")"
# curl re-sends a refused stream a few times; every copy is refused.
check "fcm record: rst is refused, drop is dropped" "{'refused'} {'dropped'}" \
	"$(jget 'str(set(r["outcome"] for r in d if r["token"] == "'"$(S 10)"'")) + " " + str(set(r["outcome"] for r in d if r["token"] == "'"$(S 11)"'"))' <"$tmp/greq.json")"
check "stats fcm_requests" "$(jget 'len(d)' <"$tmp/greq.json")" "$(gctl GET /stats | jget 'd["fcm_requests"]')"
check "apns records say kind apns" apns "$(ctl GET /requests | jget 'd[0]["kind"]')"

echo "-- Google: revoking every token" >&2
check "POST /oauth?revoke=1" 0 "$(gctl POST '/oauth?revoke=1' | jget 'd["tokens"]')"
fcm_expect "revoked token: 401" "401 UNAUTHENTICATED [] " "$MSG"
token_req "$GRANT&assertion=$(assertion "$certs/sa_key.pem" "$EMAIL" "$TOKEN_URI")"
AT=$(body 'd["access_token"]')
fcm "$MSG"
check "a new token after revoke works" 200 "$code"

echo "-- Google: custom token path, no accounts, reserved keys allowed" >&2
start_sim l --listen 127.0.0.1:0 --control 127.0.0.1:0 --oauth-path /o/oauth2/token --token-ttl 120 \
	--fcm-allow-reserved-keys
port=$l_port push /o/oauth2/token --data-binary \
	"$GRANT&assertion=$(assertion "$certs/sa_other.pem" anyone@example.com "https://127.0.0.1:$l_port/o/oauth2/token")"
check "--oauth-path: token issued without --sa-pub (signature unchecked)" "200 120" "$code $(body 'd["expires_in"]')"
AT=$(body 'd["access_token"]')
port=$l_port push /o/oauth2/token --data-binary \
	"$GRANT&assertion=$(assertion "$certs/sa_other.pem" anyone@example.com "https://127.0.0.1:$l_port/token")"
check "without accounts the claims are still checked" 400 "$code"
port=$l_port push /token --data-binary "$GRANT&assertion=$a"
check "the default path is not the token path then" 404 "$code"
port=$l_port push /v1/projects/any-project/messages:send -H "authorization: Bearer $AT" \
	--data-binary "{\"message\":{\"token\":\"$FTOK\",\"data\":{\"from\":\"x\"}}}"
check "--fcm-allow-reserved-keys, no --fcm-project: any project" 200 "$code"
curl -s -X POST "http://127.0.0.1:$l_ctl/shutdown" >/dev/null
wait "$l_pid"
check "lenient sim exits 0" 0 "$?"
curl -s -X POST "http://127.0.0.1:$g_ctl/shutdown" >/dev/null
wait "$g_pid"
check "Google sim exits 0" 0 "$?"

echo "-- command-line errors" >&2
"$bin" --listen 127.0.0.1:0 >/dev/null 2>"$tmp/err"
check "missing options exit 1" 1 "$?"
check "one line on stderr" 1 "$(wc -l <"$tmp/err")"
"$bin" --listen nope --control 127.0.0.1:0 --cert "$certs/server.pem" --key "$certs/server.key" >/dev/null 2>"$tmp/err"
check "bad address exits 1" 1 "$?"
"$bin" --listen 127.0.0.1:0 --control 127.0.0.1:0 --cert "$certs/server.pem" --key "$certs/server.key" \
	--team-id $TEAM --key-id $KID --apns-key-pub "$certs/server.key" >/dev/null 2>"$tmp/err"
check "bad public key exits 1" 1 "$?"
base=(--listen 127.0.0.1:0 --control 127.0.0.1:0 --cert "$certs/server.pem" --key "$certs/server.key")
"$bin" "${base[@]}" --sa-pub "$certs/apns_pub.pem" >/dev/null 2>"$tmp/err"
check "--sa-pub with an EC key exits 1" 1 "$?"
"$bin" "${base[@]}" --service-account "$certs/sa_key.pem" >/dev/null 2>"$tmp/err"
check "--service-account that is not JSON exits 1" 1 "$?"
"$bin" "${base[@]}" --token-ttl 0 >/dev/null 2>"$tmp/err"
check "--token-ttl 0 exits 1" 1 "$?"
"$bin" "${base[@]}" --oauth-path token >/dev/null 2>"$tmp/err"
check "--oauth-path without a slash exits 1" 1 "$?"

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
