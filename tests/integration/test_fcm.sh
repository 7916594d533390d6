#!/usr/bin/env bash
# Android: FCM HTTP v1 with service-account OAuth over the same HTTP/2 pool,
# FCM's error classes, mixed APNs+FCM fan-out, cancel, and the RFC 8599 forms
# Android softphones register. Real pushgw, real simulator, real curl.
source tests/integration/lib.sh

PROJECT=pushgw-test
EMAIL="pushgw-test@$PROJECT.iam.gserviceaccount.com"
make_certs
start_sim A --sa-pub "$EMAIL=$WORK/certs/sa_pub.pem" --fcm-project "$PROJECT"
bash tests/sim/make-sa.sh "$WORK/certs" "https://127.0.0.1:$SIM_PORT_A/token" "$PROJECT" >/dev/null
FCM_FILTER=".apps.phone.fcm = {service_account_file: \"$WORK/certs/service-account.json\", url: \"https://127.0.0.1:$SIM_PORT_A\", sender_id: \"123456789012\"}"
sim_ctl A POST /reset >/dev/null
write_config "$WORK/fcm.json" A "$FCM_FILTER"
start_gw F "$WORK/fcm.json" || exit 1

FTOK="dGVzdDp0b2tlbg:APA91bH-fcm_token_$(tok 1 | cut -c1-20)"
fcm_body() { # fcm_body TOKEN [CALL_ID] [filter]
	jq -cn --arg t "$1" --arg c "${2:-f-1}" '{devices: [{provider: "fcm", token: $t, app: "phone"}],
	  call: {id: $c, from: "+15551234567", from_name: "Alice", to: "1001", data: {room: "blue"}}} | '"${3:-.}"
}
fcm_reqs() { sim_ctl A GET /requests | jq -c --arg t "$1" '[.[] | select(.kind == "fcm" and .token == $t)]'; }

t_wake_reaches_fcm_with_the_spec_message() {
	begin "an FCM wake carries the SPEC message with string-only data, OAuth bearer, HIGH priority"
	api F POST /v1/wake "$(fcm_body "$FTOK" f-1 '.ttl = 45')"
	expect_eq "status" "$(jqb '.results[0].status')" sent
	expect_eq "provider" "$(jqb '.results[0].provider')" fcm
	check "message id as push_id" grep -q . <<<"$(jqb '.results[0].push_id')"
	local r; r=$(fcm_reqs "$FTOK" | jq -c '.[-1]')
	expect_eq ":path" "$(jq -r .path <<<"$r")" "/v1/projects/$PROJECT/messages:send"
	check "bearer token from the token endpoint" grep -q '^Bearer ya29' <<<"$(jq -r .headers.authorization <<<"$r")"
	local m; m=$(jq -r .body <<<"$r" | jq -c .message)
	expect_eq "token kept whole, ':' included" "$(jq -r .token <<<"$m")" "$FTOK"
	expect_eq "android.priority" "$(jq -r .android.priority <<<"$m")" HIGH
	expect_eq "android.ttl" "$(jq -r .android.ttl <<<"$m")" 45s
	expect_eq "data.type" "$(jq -r .data.type <<<"$m")" call
	expect_eq "data.call_id" "$(jq -r .data.call_id <<<"$m")" f-1
	expect_eq "data.caller" "$(jq -r .data.caller <<<"$m")" "+15551234567"
	expect_eq "data.video is a string" "$(jq -r .data.video <<<"$m")" false
	expect_eq "data.wake_id" "$(jq -r .data.wake_id <<<"$m")" "$(jqb .id)"
	expect_eq "every data value is a string" "$(jq '[.data[] | type] | unique' -c <<<"$m")" '["string"]'
	expect_eq "no reserved key 'from'" "$(jq '.data | has("from")' <<<"$m")" false
}

t_one_token_serves_many_wakes() {
	begin "one OAuth token serves 100 wakes"
	local before; before=$(sim_ctl A GET /stats | jq .oauth_issued)
	local cfg="$WORK/f100.txt" i
	: >"$cfg"
	for i in $(seq 1 100); do
		[ "$i" = 1 ] || echo next >>"$cfg"
		printf 'url = "http://127.0.0.1:%s/v1/wake"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
			"$GW_PORT_F" "$KEY_WAKE" "$(fcm_body "$FTOK-$i" "many-$i" | sed 's/"/\\"/g')" >>"$cfg"
	done
	local codes; codes=$(curl -sS --no-progress-meter --parallel --parallel-max 20 --config "$cfg")
	expect_eq "100 answered" "$(grep -c '^200$' <<<"$codes")" 100
	expect_eq "100 FCM requests sent" "$(sim_ctl A GET /requests | jq '[.[] | select(.kind == "fcm" and (.token | startswith("'"$FTOK"'-")) and .status == 200)] | length')" 100
	expect_eq "no new token fetched" "$(sim_ctl A GET /stats | jq .oauth_issued)" "$before"
}

# one_fcm TOKEN_SUFFIX STEPS STATUS REASON [ATTEMPTS]
one_fcm() {
	local t="$FTOK-e$1"
	sim_ctl A POST /script "{\"$t\": $2}" >/dev/null
	api F POST /v1/wake "$(fcm_body "$t" "e$1")"
	expect_eq "$4: status" "$(jqb '.results[0].status')" "$3"
	expect_eq "$4: reason" "$(jqb '.results[0].reason')" "$4"
	[ -z "${5:-}" ] || expect_eq "$4: attempts" "$(jqb '.results[0].attempts')" "$5"
	return 0
}

t_fcm_errors_map_to_statuses() {
	begin "each FCM error class maps to the right status"
	one_fcm 1 '[{"status":404,"fcm":"UNREGISTERED"}]' invalid_token UNREGISTERED
	# the token was made for another project: our service account is wrong, not the token
	one_fcm 2 '[{"status":403,"fcm":"SENDER_ID_MISMATCH"}]' failed SENDER_ID_MISMATCH 1
	check "SENDER_ID_MISMATCH: the hint names the service account and project ($(jqb '.results[0].hint'))" \
		grep -q "service_account_file.*project $PROJECT" <<<"$(jqb '.results[0].hint')"
	one_fcm 3 '[{"status":400,"fcm":"INVALID_ARGUMENT"}]' invalid_token INVALID_ARGUMENT
	one_fcm 4 '[{"status":400,"fcm":"INVALID_ARGUMENT","bad_request":"message.android.ttl"}]' failed config_error 1
	one_fcm 5 '[{"status":401,"fcm":"THIRD_PARTY_AUTH_ERROR"}]' failed auth_error 1
	one_fcm 6 '[{"status":503,"fcm":"UNAVAILABLE"},{"status":200}]' sent null 2
	one_fcm 7 '[{"status":500,"fcm":"INTERNAL"},{"status":500,"fcm":"INTERNAL"},{"status":200}]' sent null 3
	local t="$FTOK-q"
	sim_ctl A POST /script "{\"$t\": [{\"status\":429,\"fcm\":\"QUOTA_EXCEEDED\",\"retry_after\":\"1\"},{\"status\":200}]}" >/dev/null
	local start; start=$(date +%s%N)
	api F POST /v1/wake "$(fcm_body "$t" q)"
	local took=$((($(date +%s%N) - start) / 1000000))
	expect_eq "QUOTA_EXCEEDED then 200: sent" "$(jqb '.results[0].status')" sent
	check "retried after Retry-After: 1 (took ${took} ms)" test "$took" -ge 1000
	# a quota answer pauses the whole project for its Retry-After (see
	# test_upstream_limits): each case below waits for the pause to end
	t="$FTOK-q2"
	sim_ctl A POST /script "{\"$t\": [{\"status\":429,\"fcm\":\"QUOTA_EXCEEDED\",\"retry_after\":\"2\"}]}" >/dev/null
	api F POST /v1/wake "$(fcm_body "$t" q2 '.timeout_ms = 1000')"
	expect_eq "Retry-After beyond the deadline: not retried" "$(jqb '.results[0].attempts')" 1
	expect_eq "reason" "$(jqb '.results[0].reason')" QUOTA_EXCEEDED
	sleep 2.1
	# Retry-After as an HTTP date (RFC 9110): 3 s ahead is a wait of 2 to 3 s
	t="$FTOK-qd"
	local when; when=$(LC_ALL=C date -u -d '+3 seconds' '+%a, %d %b %Y %H:%M:%S GMT')
	sim_ctl A POST /script "{\"$t\": [{\"status\":429,\"fcm\":\"QUOTA_EXCEEDED\",\"retry_after\":\"$when\"},{\"status\":200}]}" >/dev/null
	start=$(date +%s%N)
	api F POST /v1/wake "$(fcm_body "$t" qd '.timeout_ms = 8000')"
	took=$((($(date +%s%N) - start) / 1000000))
	expect_eq "Retry-After as a date: sent at the second try" "$(jqb '.results[0].status'),$(jqb '.results[0].attempts')" sent,2
	check "waited until that date (took ${took} ms)" test "$took" -ge 1000
	t="$FTOK-qd2"
	when=$(LC_ALL=C date -u -d '+3 seconds' '+%a, %d %b %Y %H:%M:%S GMT')
	sim_ctl A POST /script "{\"$t\": [{\"status\":429,\"fcm\":\"QUOTA_EXCEEDED\",\"retry_after\":\"$when\"}]}" >/dev/null
	api F POST /v1/wake "$(fcm_body "$t" qd2 '.timeout_ms = 1000')"
	expect_eq "Retry-After date beyond the deadline: not retried" "$(jqb '.results[0].attempts')" 1
	sleep 3.1
	# a 503 that says when to come back is retried then, not sooner
	t="$FTOK-u"
	sim_ctl A POST /script "{\"$t\": [{\"status\":503,\"fcm\":\"UNAVAILABLE\",\"retry_after\":\"1\"},{\"status\":200}]}" >/dev/null
	start=$(date +%s%N)
	api F POST /v1/wake "$(fcm_body "$t" u)"
	took=$((($(date +%s%N) - start) / 1000000))
	expect_eq "UNAVAILABLE with Retry-After: 1, then 200: sent at the second try" "$(jqb '.results[0].status'),$(jqb '.results[0].attempts')" sent,2
	check "waited the Retry-After (took ${took} ms)" test "$took" -ge 1000
}

t_ttl_zero_is_now_or_never() {
	begin "ttl 0 goes to FCM as android.ttl \"0s\""
	api F POST /v1/wake "$(fcm_body "$FTOK-t0" t0 '.ttl = 0')"
	expect_eq "sent" "$(jqb '.results[0].status')" sent
	expect_eq "android.ttl" "$(fcm_reqs "$FTOK-t0" | jq -r '.[-1].body' | jq -r .message.android.ttl)" 0s
}

t_revoked_token_is_refreshed_once() {
	begin "a 401 from FCM refreshes the OAuth token once and retries"
	local before; before=$(sim_ctl A GET /stats | jq .oauth_issued)
	sim_ctl A POST '/oauth?revoke=1' >/dev/null
	api F POST /v1/wake "$(fcm_body "$FTOK-r" r)"
	expect_eq "sent after the refresh" "$(jqb '.results[0].status')" sent
	expect_eq "two attempts" "$(jqb '.results[0].attempts')" 2
	expect_eq "one new token" "$(sim_ctl A GET /stats | jq .oauth_issued)" $((before + 1))
}

t_mixed_wake_fans_out_once_per_device() {
	begin "2 APNs + 2 FCM + a duplicate: 4 upstream requests, 5 results in order"
	sim_ctl A POST /reset >/dev/null
	local a1 a2; a1=$(tok 1800); a2=$(tok 1801)
	api F POST /v1/wake "$(jq -cn --arg a1 "$a1" --arg a2 "$a2" --arg f1 "$FTOK-m1" --arg f2 "$FTOK-m2" '{devices: [
	  {provider: "apns", token: $a1, app: "phone"}, {provider: "fcm", token: $f1, app: "phone"},
	  {provider: "apns", token: $a2, app: "phone"}, {provider: "fcm", token: $f2, app: "phone"},
	  {provider: "fcm", token: $f1, app: "phone"}], call: {id: "mixed"}}')"
	expect_eq "5 results" "$(jqb '.results | length')" 5
	expect_eq "in request order" "$(jqb '[.results[].provider] | join(",")')" apns,fcm,apns,fcm,fcm
	expect_eq "all sent" "$(jqb '[.results[].status] | unique | join(",")')" sent
	expect_eq "the duplicate shares its twin's push" "$(jqb '.results[4].push_id == .results[1].push_id')" true
	expect_eq "exactly 4 upstream requests" "$(sim_ctl A GET /requests | jq '[.[] | select(.kind != "oauth")] | length')" 4
}

t_android_cancel() {
	begin "cancel on Android: a data message with type=cancel; answered elsewhere shows nothing, so normal priority"
	api F POST /v1/cancel "$(fcm_body "$FTOK-c" f-c '.reason = "answered_elsewhere"')"
	expect_eq "sent" "$(jqb '.results[0].status')" sent
	local m; m=$(fcm_reqs "$FTOK-c" | jq -r '.[-1].body' | jq -c .message)
	expect_eq "type" "$(jq -r .data.type <<<"$m")" cancel
	expect_eq "reason" "$(jq -r .data.reason <<<"$m")" answered_elsewhere
	expect_eq "call_id" "$(jq -r .data.call_id <<<"$m")" f-c
	expect_eq "priority" "$(jq -r .android.priority <<<"$m")" NORMAL
	expect_eq "accepted by FCM" "$(fcm_reqs "$FTOK-c" | jq -r '.[-1].status')" 200
	expect_eq "android.ttl (default ttl)" "$(jq -r .android.ttl <<<"$m")" 30s
	expect_eq "a data message: no notification block" "$(jq '[has("notification"), (.android | has("notification"))] | any' <<<"$m")" false
	expect_eq "to the device's token" "$(jq -r .token <<<"$m")" "$FTOK-c"
	expect_eq "caller" "$(jq -r .data.caller <<<"$m")" "+15551234567"
	expect_eq "every data value is a string" "$(jq -c '[.data[] | type] | unique' <<<"$m")" '["string"]'
}

t_android_cancel_priority_follows_the_reason() {
	begin "FCM cancel priority: caller_cancelled (a missed call is shown) HIGH, declined NORMAL"
	api F POST /v1/cancel "$(fcm_body "$FTOK-cc" f-cc '.reason = "caller_cancelled"')"
	expect_eq "caller_cancelled: sent" "$(jqb '.results[0].status')" sent
	expect_eq "caller_cancelled: priority at the simulator" \
		"$(fcm_reqs "$FTOK-cc" | jq -r '.[-1].body | fromjson | .message.android.priority')" HIGH
	api F POST /v1/cancel "$(fcm_body "$FTOK-cd" f-cd '.reason = "declined"')"
	expect_eq "declined: sent" "$(jqb '.results[0].status')" sent
	expect_eq "declined: priority at the simulator" \
		"$(fcm_reqs "$FTOK-cd" | jq -r '.[-1].body | fromjson | .message.android.priority')" NORMAL
	api F POST /v1/cancel "$(fcm_body "$FTOK-cx" f-cx)"
	expect_eq "no reason (caller_cancelled): priority at the simulator" \
		"$(fcm_reqs "$FTOK-cx" | jq -r '.[-1].body | fromjson | .message.android.priority')" HIGH
}

# fcm_pad TOKEN CALL_ID N: a wake whose call.data is one key "pad" of N bytes.
fcm_pad() { fcm_body "$1" "$2" ".call.data = {pad: \"$(head -c "$3" /dev/zero | tr '\0' x)\"}"; }

t_fcm_data_over_the_limit_is_refused() {
	begin "FCM: 6 KB of call.data is refused with 400 naming call.data and Google's 4096 bytes; exactly 4096 data bytes are sent"
	sim_ctl A POST /reset >/dev/null
	api F POST /v1/wake "$(fcm_pad "$FTOK-big" big-1 6144)"
	expect_eq "HTTP status" "$STATUS" 400
	expect_eq "code" "$(jqb .error.code)" invalid_request
	check "names call.data and 4096: $(jqb .error.message)" grep -q 'call.data.*4096' <<<"$(jqb .error.message)"
	expect_eq "nothing reached FCM" "$(sim_ctl A GET /stats | jq .fcm_requests)" 0
	# FCM counts the data's keys and values: measure ours once, then fill to the limit
	api F POST /v1/wake "$(fcm_pad "$FTOK-big" big-1 100)"
	local bytes; bytes=$(fcm_reqs "$FTOK-big" | jq '.[-1].body | fromjson | .message.data | to_entries | map((.key | utf8bytelength) + (.value | utf8bytelength)) | add')
	local pad=$((100 + 4096 - bytes))
	api F POST /v1/wake "$(fcm_pad "$FTOK-big" big-2 "$pad")"
	expect_eq "4096 data bytes: sent" "$(jqb '.results[0].status')" sent
	local r; r=$(fcm_reqs "$FTOK-big" | jq -c '.[-1]')
	expect_eq "accepted by FCM" "$(jq -r .status <<<"$r")" 200
	check "the whole body is longer than 4096 bytes: not what FCM counts" test "$(jq '.body | utf8bytelength' <<<"$r")" -gt 4096
	api F POST /v1/wake "$(fcm_pad "$FTOK-big" big-3 $((pad + 1)))"
	expect_eq "4097 data bytes: 400" "$STATUS" 400
	check "names call.data: $(jqb .error.message)" grep -q 'call.data' <<<"$(jqb .error.message)"
	expect_eq "only the two that fit reached FCM" "$(fcm_reqs "$FTOK-big" | jq length)" 2
}

t_android_contacts_as_softphones_send_them() {
	begin "RFC 8599 and legacy Android forms: aliases, project id or sender id, ':' kept"
	local forms=(
	  "<sip:1@h;pn-provider=fcm;pn-param=$PROJECT;pn-prid=$FTOK-s1>"
	  "<sip:1@h;pn-provider=android;pn-param=$PROJECT;pn-prid=$FTOK-s2>"
	  "<sip:1@h;pn-provider=firebase;pn-param=123456789012;pn-prid=$FTOK-s3>"
	  "<sip:1@h;pn-provider=google;pn-param=$PROJECT;pn-prid=$FTOK-s4>"
	  "<sip:1@h;pn-type=firebase;app-id=123456789012;pn-tok=$FTOK-s5>"
	)
	local i=0 f
	for f in "${forms[@]}"; do
		i=$((i + 1))
		api F PUT "/v1/extensions/7001/devices/a$i" "$(jq -cn --arg c "$f" '{contact: $c}')" "$KEY_REG"
		expect_eq "form $i registered" "$STATUS" 201
		expect_eq "form $i is FCM" "$(jqb .provider)" fcm
	done
	sim_ctl A POST /reset >/dev/null
	api F POST /v1/wake '{"extension":"7001","call":{"id":"ext-fcm"}}'
	expect_eq "five devices woken" "$(jqb '[.results[] | select(.status == "sent")] | length')" 5
	expect_eq "tokens reached whole" "$(sim_ctl A GET /requests | jq -r '[.[] | select(.kind == "fcm") | .token] | sort | join(" ")')" \
		"$FTOK-s1 $FTOK-s2 $FTOK-s3 $FTOK-s4 $FTOK-s5"
	api F PUT /v1/extensions/7001/devices/bad "$(jq -cn '{contact: "<sip:1@h;pn-provider=fcm;pn-param=other-project;pn-prid=x:y>"}')" "$KEY_REG"
	check "an unknown project with one FCM app falls back to it (status $STATUS)" test "$STATUS" = 201
	api F PUT /v1/extensions/7001/devices/bad2 "$(jq -cn '{contact: "<sip:1@h;pn-provider=gcm;pn-param=p;pn-prid=x>"}')" "$KEY_REG"
	expect_eq "unknown provider" "$STATUS" 400
	check "names pn-provider" grep -q pn-provider <<<"$(jqb .error.message)"
}

t_rejected_assertion_is_auth_error() {
	begin "a rejected OAuth assertion gives auth_error at once, not a hang or a crash"
	sim_ctl A POST '/oauth?fail=1000' >/dev/null
	start_gw G "$WORK/fcm.json" || { bad "start"; return; }
	api G POST /v1/wake "$(fcm_body "$FTOK-x" x '.timeout_ms = 4000')"
	expect_eq "HTTP 200" "$STATUS" 200
	expect_eq "failed" "$(jqb '.results[0].status')" failed
	expect_eq "auth_error" "$(jqb '.results[0].reason')" auth_error
	check "answered well before the timeout ($(jqb '.results[0].latency_ms') ms)" test "$(jqb '.results[0].latency_ms | floor')" -lt 3000
	check "the failure is logged" grep -q 'fcm access token fetch failed' "$WORK/gw-G.log"
	sim_ctl A POST '/oauth?fail=0' >/dev/null
	stop_gw G
	expect_eq "exit status" "$GW_EXIT" 0
}

oauth_answered() { sim_ctl A GET /requests | jq '[.[] | select(.kind == "oauth" and .outcome == "answered")] | length'; }

t_wake_waiting_for_a_slow_token_ends_at_its_deadline() {
	begin "a wake waiting for a slow OAuth token ends 'timeout' at timeout_ms; the token serves later wakes"
	local delay=4000
	sim_ctl A POST "/oauth?delay_ms=$delay" >/dev/null
	sim_ctl A POST /reset >/dev/null
	start_gw S "$WORK/fcm.json" || { bad "start"; sim_ctl A POST '/oauth?delay_ms=0' >/dev/null; return; }
	local start; start=$(date +%s%N)
	api S POST /v1/wake "$(fcm_body "$FTOK-slow" slow-1 '.timeout_ms = 800')"
	local took=$((($(date +%s%N) - start) / 1000000))
	expect_eq "HTTP 200" "$STATUS" 200
	expect_eq "timeout" "$(jqb '.results[0].status')" timeout
	expect_eq "answered before the token endpoint did" "$(oauth_answered)" 0
	check "answered well before the ${delay} ms token delay (took ${took} ms)" test "$took" -lt $((delay - 1000))
	expect_eq "nothing reached FCM without a token" "$(fcm_reqs "$FTOK-slow" | jq length)" 0
	local i
	for i in $(seq 1 150); do [ "$(oauth_answered)" -ge 1 ] && break; sleep 0.1; done
	expect_eq "the token endpoint answered once" "$(oauth_answered)" 1
	sim_ctl A POST '/oauth?delay_ms=0' >/dev/null
	for i in $(seq 1 50); do grep -q 'fcm access token fetched' "$WORK/gw-S.log" && break; sleep 0.1; done
	api S POST /v1/wake "$(fcm_body "$FTOK-slow" slow-2)"
	expect_eq "a later wake is sent at the first try" "$(jqb '.results[0].status'),$(jqb '.results[0].attempts // 1')" sent,1
	expect_eq "still the one token request" "$(sim_ctl A GET /stats | jq .oauth_requests)" 1
	stop_gw S
	expect_eq "exit status" "$GW_EXIT" 0
}

t_waiters_in_backoff_start_no_fetch() {
	begin "while the token fetch backs off after a failure, wakes do not each start a fetch"
	sim_ctl A POST /reset >/dev/null
	sim_ctl A POST '/oauth?fail=1000' >/dev/null
	start_gw B "$WORK/fcm.json" || { bad "start"; sim_ctl A POST '/oauth?fail=0' >/dev/null; return; }
	local i
	for i in $(seq 1 100); do [ "$(oauth_answered)" -ge 1 ] && break; sleep 0.05; done
	local before; before=$(sim_ctl A GET /stats | jq .oauth_requests)
	for i in $(seq 1 8); do
		api B POST /v1/wake "$(fcm_body "$FTOK-b$i" "b-$i" '.timeout_ms = 800')"
		expect_eq "wake $i: auth_error" "$(jqb '.results[0].status'),$(jqb '.results[0].reason')" failed,auth_error
	done
	local after; after=$(sim_ctl A GET /stats | jq .oauth_requests)
	# only the scheduled retries (1 s, then 2 s later …) may have gone out
	check "token requests during 8 wakes: $((after - before)), not one per wake" test $((after - before)) -le 3
	check "the reason names the token endpoint's answer" grep -q 'invalid_grant' <<<"$(jqb '.results[0].detail')"
	sim_ctl A POST '/oauth?fail=0' >/dev/null
	stop_gw B
}

t_short_lived_token_is_refreshed_ahead() {
	begin "a short-lived OAuth token is refreshed before it expires"
	sim_ctl A POST '/oauth?ttl=3' >/dev/null
	start_gw H "$WORK/fcm.json" || { bad "start"; return; }
	sleep 0.5
	local first; first=$(sim_ctl A GET /stats | jq .oauth_issued)
	sleep 3.5
	check "fetched again ahead of expiry ($(sim_ctl A GET /stats | jq .oauth_issued) > $first)" \
		test "$(sim_ctl A GET /stats | jq .oauth_issued)" -gt "$first"
	api H POST /v1/wake "$(fcm_body "$FTOK-h" h)"
	expect_eq "a wake after the first token expired: sent at the first try" "$(jqb '.results[0].status'),$(jqb '.results[0].attempts // 1')" sent,1
	sim_ctl A POST '/oauth?ttl=3600' >/dev/null
	stop_gw H
}

t_bad_service_accounts_fail_check() {
	begin "--check names what is wrong with a service-account file"
	jq 'del(.client_email)' "$WORK/certs/service-account.json" >"$WORK/sa-noemail.json"; chmod 600 "$WORK/sa-noemail.json"
	jq '.private_key = "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"' "$WORK/certs/service-account.json" >"$WORK/sa-badkey.json"; chmod 600 "$WORK/sa-badkey.json"
	cp "$WORK/certs/service-account.json" "$WORK/sa-open.json"; chmod 644 "$WORK/sa-open.json"
	local f out
	for f in noemail badkey open; do
		jq --arg s "$WORK/sa-$f.json" '.apps.phone.fcm.service_account_file = $s' "$WORK/fcm.json" >"$WORK/fcm-$f.json"
		out=$($PUSHGW -c "$WORK/fcm-$f.json" --check 2>&1); expect_eq "$f: exit 1" "$?" 1
		check "$f: names the field ($out)" grep -q 'apps.phone.fcm.service_account_file' <<<"$out"
	done
	check "missing field named" grep -q client_email <<<"$($PUSHGW -c "$WORK/fcm-noemail.json" --check 2>&1)"
	check "bad key named" grep -qi private_key <<<"$($PUSHGW -c "$WORK/fcm-badkey.json" --check 2>&1)"
	check "world-readable named" grep -qi 'readable' <<<"$($PUSHGW -c "$WORK/fcm-open.json" --check 2>&1)"
}

t_wake_reaches_fcm_with_the_spec_message
t_one_token_serves_many_wakes
t_fcm_errors_map_to_statuses
t_ttl_zero_is_now_or_never
t_revoked_token_is_refreshed_once
t_mixed_wake_fans_out_once_per_device
t_android_cancel
t_android_cancel_priority_follows_the_reason
t_fcm_data_over_the_limit_is_refused
t_android_contacts_as_softphones_send_them
t_rejected_assertion_is_auth_error
t_wake_waiting_for_a_slow_token_ends_at_its_deadline
t_waiters_in_backoff_start_no_fetch
t_short_lived_token_is_refreshed_ahead
t_bad_service_accounts_fail_check
stop_gw F
summary
