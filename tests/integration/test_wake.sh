#!/usr/bin/env bash
# End-to-end: the real pushgw binary, real HTTP/2 over TLS to the local APNs
# simulator, real curl requests in. Run from the repository root.
source tests/integration/lib.sh

start_sim A
write_config "$WORK/gw.json" A
start_gw G "$WORK/gw.json" || exit 1

t_wake_reaches_apns_with_exact_headers_and_payload() {
	begin "a wake reaches APNs with a valid JWT, the SPEC headers and payload"
	sim_ctl A POST /reset >/dev/null
	local t; t=$(tok 100)
	local before; before=$(date +%s)
	api G POST /v1/wake "$(wake_body "$t" "a84b4c76e66710@pbx" '.ttl = 45')"
	expect_eq "status" "$STATUS" 200
	expect_eq "result status" "$(jqb '.results[0].status')" sent
	expect_eq "provider" "$(jqb '.results[0].provider')" apns
	expect_eq "app" "$(jqb '.results[0].app')" phone
	expect_eq "redacted target" "$(jqb '.results[0].target')" "apns:0000…0064"
	check "no full token in the response" bash -c "! grep -q $t <<<'$BODY'"
	check "wake id looks like w_<ULID>" grep -Eq '^w_[0-9A-HJKMNP-TV-Z]{26}$' <<<"$(jqb .id)"
	local req; req=$(sim_ctl A GET /requests | jq -c '.[0]')
	expect_eq "push id is the apns-id APNs answered" "$(jqb '.results[0].push_id')" "$(jq -r .apns_id <<<"$req")"
	expect_eq "simulator answered 200 (JWT verified)" "$(jq -r .status <<<"$req")" 200
	expect_eq ":path" "$(jq -r .path <<<"$req")" "/3/device/$t"
	expect_eq "apns-push-type" "$(jq -r '.headers["apns-push-type"]' <<<"$req")" voip
	expect_eq "apns-topic" "$(jq -r '.headers["apns-topic"]' <<<"$req")" com.example.phone.voip
	expect_eq "apns-priority" "$(jq -r '.headers["apns-priority"]' <<<"$req")" 10
	local exp; exp=$(jq -r '.headers["apns-expiration"]' <<<"$req")
	check "apns-expiration is now+ttl ($exp vs $before)" test "$exp" -ge $((before + 45)) -a "$exp" -le $(($(date +%s) + 45))
	check "apns-id is a UUID" grep -Eq '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' <<<"$(jq -r '.headers["apns-id"]' <<<"$req")"
	local jwt; jwt=$(jq -r '.headers.authorization' <<<"$req" | sed 's/^bearer //')
	local hdr; hdr=$(cut -d. -f1 <<<"$jwt" | tr '_-' '/+' | base64 -d 2>/dev/null; true)
	expect_eq "JWT alg" "$(jq -r .alg <<<"$hdr" 2>/dev/null)" ES256
	expect_eq "JWT kid" "$(jq -r .kid <<<"$hdr" 2>/dev/null)" KEY1234567
	local body; body=$(jq -r .body <<<"$req")
	expect_eq "payload aps" "$(jq -c .aps <<<"$body")" "{}"
	expect_eq "payload type" "$(jq -r .type <<<"$body")" call
	expect_eq "payload call_id" "$(jq -r .call_id <<<"$body")" "a84b4c76e66710@pbx"
	expect_eq "payload from" "$(jq -r .from <<<"$body")" "+15551234567"
	expect_eq "payload from_name" "$(jq -r .from_name <<<"$body")" Alice
	expect_eq "payload to" "$(jq -r .to <<<"$body")" 1001
	expect_eq "payload video" "$(jq -r .video <<<"$body")" false
	expect_eq "payload wake_id" "$(jq -r .wake_id <<<"$body")" "$(jqb .id)"
	expect_eq "payload data" "$(jq -c .data <<<"$body")" '{"room":"blue"}'
	check "payload sent_at is a recent integer" test "$(jq -r .sent_at <<<"$body")" -ge "$before"
}

t_ttl_zero_is_now_or_never() {
	begin "ttl 0 goes to APNs as apns-expiration 0 (deliver now or never), not a time already past"
	sim_ctl A POST /reset >/dev/null
	local t; t=$(tok 110)
	api G POST /v1/wake "$(wake_body "$t" ttl0@pbx '.ttl = 0')"
	expect_eq "sent" "$(jqb '.results[0].status')" sent
	expect_eq "apns-expiration" "$(sim_ctl A GET /requests | jq -r '.[0].headers["apns-expiration"]')" 0
}

t_concurrent_wakes_share_prewarmed_connections() {
	begin "50 concurrent wakes share the pre-warmed connections and one JWT"
	api G POST /v1/wake "$(wake_body "$(tok 200)")" # the first push lifts APNs' 1-stream start
	sim_ctl A POST /reset >/dev/null
	local i
	for i in $(seq 1 50); do
		curl -sS -o "$WORK/c$i.json" -H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' \
			--data-binary "$(wake_body "$(tok $((1000 + i)))" "call-$i")" "http://127.0.0.1:$GW_PORT_G/v1/wake" &
	done
	wait_jobs
	local sent; sent=$(cat "$WORK"/c*.json | jq -r '.results[0].status' | grep -c '^sent$')
	expect_eq "all 50 sent" "$sent" 50
	local stats; stats=$(sim_ctl A GET /stats)
	expect_eq "new TLS handshakes during the burst" "$(jq .handshakes <<<"$stats")" 0
	expect_eq "distinct JWTs during the burst" "$(jq .distinct_jwts <<<"$stats")" 1
	expect_eq "requests received" "$(jq .requests <<<"$stats")" 50
	rm -f "$WORK"/c*.json
}

wait_jobs() { local j; for j in $(jobs -p); do case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j";; esac; done; }

# one_error TOKEN_N SCRIPT_STEPS EXPECTED_STATUS EXPECTED_REASON [ATTEMPTS]
one_error() {
	local t; t=$(tok "$1")
	sim_ctl A POST /script "{\"$t\": $2}" >/dev/null
	api G POST /v1/wake "$(wake_body "$t")"
	expect_eq "$4: HTTP status" "$STATUS" 200
	expect_eq "$4: status" "$(jqb '.results[0].status')" "$3"
	expect_eq "$4: reason" "$(jqb '.results[0].reason')" "$4"
	[ -n "${5:-}" ] && expect_eq "$4: attempts" "$(jqb '.results[0].attempts')" "$5"
	return 0
}

t_apns_errors_map_to_statuses() {
	begin "each APNs error class maps to the right status"
	one_error 301 '[{"status":400,"reason":"BadDeviceToken"}]' invalid_token BadDeviceToken
	one_error 302 '[{"status":410,"reason":"Unregistered","timestamp":1700000000000}]' invalid_token Unregistered
	one_error 303 '[{"status":400,"reason":"DeviceTokenNotForTopic"}]' invalid_token DeviceTokenNotForTopic
	expect_eq "DeviceTokenNotForTopic: a topic mismatch removes nothing" "$(jqb '.results[0].removed')" false
	check "DeviceTokenNotForTopic: with a hint" grep -q "bundle id" <<<"$(jqb '.results[0].hint')"
	one_error 304 '[{"status":403,"reason":"InvalidProviderToken"}]' failed auth_error 1
	expect_eq "auth_error detail" "$(jqb '.results[0].detail')" InvalidProviderToken
	one_error 305 '[{"status":400,"reason":"TopicDisallowed"}]' failed config_error 1
	one_error 306 '[{"status":413,"reason":"PayloadTooLarge"}]' failed config_error 1
	one_error 307 '[{"status":429,"reason":"TooManyRequests"}]' failed TooManyRequests 2
	one_error 308 '[{"status":500,"reason":"InternalServerError"}]' failed InternalServerError
	check "500 is retried more than once" test "$(jqb '.results[0].attempts')" -gt 1
	local t; t=$(tok 309)
	sim_ctl A POST /script "{\"$t\": [{\"status\":503,\"reason\":\"ServiceUnavailable\"},{\"status\":200}]}" >/dev/null
	api G POST /v1/wake "$(wake_body "$t")"
	expect_eq "503 then 200: sent" "$(jqb '.results[0].status')" sent
	expect_eq "503 then 200: two attempts" "$(jqb '.results[0].attempts')" 2
	local ids; ids=$(sim_ctl A GET /requests | jq -r --arg t "$t" '[.[] | select(.token == $t) | .headers["apns-id"]] | unique | length')
	expect_eq "the retry reuses the apns-id" "$ids" 1
	t=$(tok 310)
	sim_ctl A POST /script "{\"$t\": [{\"status\":429,\"reason\":\"TooManyRequests\"},{\"status\":200}]}" >/dev/null
	local start; start=$(date +%s%N)
	api G POST /v1/wake "$(wake_body "$t")"
	local took=$((($(date +%s%N) - start) / 1000000))
	expect_eq "429 then 200: sent" "$(jqb '.results[0].status')" sent
	check "429 retry waited at least 1 s (took ${took} ms)" test "$took" -ge 1000
}

t_one_push_per_token_across_explicit_and_registered() {
	begin "a device named explicitly and registered with a remote token too is pushed once"
	local v r; v=$(tok 330); r=$(tok 331)
	api G PUT /v1/extensions/dup-1/devices/iphone "$(jq -cn --arg v "$v" --arg r "$r" \
		'{provider: "apns", token: $v, remote_token: $r, app: "phone"}')" "$KEY_REG"
	expect_eq "registered" "$STATUS" 201
	sim_ctl A POST /reset >/dev/null
	api G POST /v1/wake "$(jq -cn --arg v "$v" '{extension: "dup-1",
	  devices: [{provider: "apns", token: $v, app: "phone"}], call: {id: "dup-1@pbx"}}')"
	expect_eq "HTTP status" "$STATUS" 200
	expect_eq "one result per requested target" "$(jqb '.results | length')" 2
	expect_eq "both sent" "$(jqb '[.results[].status] | join(",")')" sent,sent
	expect_eq "both as VoIP pushes" "$(jqb '[.results[].push_type] | join(",")')" voip,voip
	expect_eq "one push serves both" "$(jqb '.results[0].push_id == .results[1].push_id')" true
	local reqs; reqs=$(sim_ctl A GET /requests)
	expect_eq "exactly one request reached APNs" "$(jq length <<<"$reqs")" 1
	expect_eq "it went to the VoIP token" "$(jq -r '.[0].token' <<<"$reqs")" "$v"
	# a cancel ends the call on the remote token: an explicit remote-only
	# device and the registered one are the same alert push
	sim_ctl A POST /reset >/dev/null
	api G POST /v1/cancel "$(jq -cn --arg r "$r" '{extension: "dup-1",
	  devices: [{provider: "apns", remote_token: $r, app: "phone"}], call: {id: "dup-1@pbx"},
	  reason: "answered_elsewhere"}')"
	expect_eq "cancel: one result per requested target" "$(jqb '[.results[] | .status + "/" + .push_type] | join(",")')" sent/alert,sent/alert
	reqs=$(sim_ctl A GET /requests)
	expect_eq "cancel: exactly one request reached APNs" "$(jq length <<<"$reqs")" 1
	expect_eq "cancel: to the remote token" "$(jq -r '.[0].token' <<<"$reqs")" "$r"
	api G DELETE /v1/extensions/dup-1 "" "$KEY_REG"
}

t_shutdown_replaces_only_the_answering_connection() {
	begin "APNs 'Shutdown' replaces the connection that said it; the other pooled one stays"
	local t i; t=$(tok 340)
	for i in $(seq 1 100); do [ "$(sim_ctl A GET /stats | jq .connections_open)" = 2 ] && break; sleep 0.05; done
	expect_eq "two pooled connections before" "$(sim_ctl A GET /stats | jq .connections_open)" 2
	sim_ctl A POST /reset >/dev/null
	sim_ctl A POST /script "{\"$t\": [{\"status\":503,\"reason\":\"Shutdown\"},{\"status\":200}]}" >/dev/null
	api G POST /v1/wake "$(wake_body "$t" shutdown-1)"
	expect_eq "sent after the retry" "$(jqb '.results[0].status'),$(jqb '.results[0].attempts')" sent,2
	for i in $(seq 1 100); do [ "$(sim_ctl A GET /stats | jq .handshakes)" -ge 1 ] && break; sleep 0.05; done
	sleep 0.5 # room for a wrong second replacement to show up
	local stats; stats=$(sim_ctl A GET /stats)
	expect_eq "exactly one new TLS handshake" "$(jq .handshakes <<<"$stats")" 1
	expect_eq "two pooled connections after" "$(jq .connections_open <<<"$stats")" 2
	local conns; conns=$(sim_ctl A GET /requests | jq -c '[.[] | .conn] | unique | length')
	expect_eq "the retry went on another connection than the Shutdown" "$conns" 2
}

# cancel_body REASON DEVICE_JSON: a cancel of call "cx-1@pbx" from Alice
cancel_body() {
	jq -cn --arg r "$1" --argjson d "$2" '{devices: [$d],
	  call: {id: "cx-1@pbx", from: "+15551234567", from_name: "Alice", to: "1001"}, reason: $r}'
}

t_cancel_to_an_iphone_with_a_remote_token() {
	begin "cancel, iPhone with a remote token: an alert push to the remote token, shown as a missed call"
	local v r; v=$(tok 350); r=$(tok 351)
	sim_ctl A POST /reset >/dev/null
	local before; before=$(date +%s)
	api G POST /v1/cancel "$(cancel_body caller_cancelled "$(jq -cn --arg v "$v" --arg r "$r" \
		'{provider: "apns", token: $v, remote_token: $r, app: "phone"}')" | jq -c '.ttl = 40')"
	expect_eq "HTTP status" "$STATUS" 200
	expect_eq "result" "$(jqb '.results[0] | .status + "/" + .push_type')" sent/alert
	local reqs; reqs=$(sim_ctl A GET /requests)
	expect_eq "one request" "$(jq length <<<"$reqs")" 1
	local req; req=$(jq -c '.[0]' <<<"$reqs")
	expect_eq "to the remote token" "$(jq -r .path <<<"$req")" "/3/device/$r"
	expect_eq "apns-push-type" "$(jq -r '.headers["apns-push-type"]' <<<"$req")" alert
	expect_eq "apns-topic is the bundle id" "$(jq -r '.headers["apns-topic"]' <<<"$req")" com.example.phone
	expect_eq "apns-priority" "$(jq -r '.headers["apns-priority"]' <<<"$req")" 10
	local exp; exp=$(jq -r '.headers["apns-expiration"]' <<<"$req")
	check "apns-expiration is now+ttl ($exp)" test "$exp" -ge $((before + 40)) -a "$exp" -le $(($(date +%s) + 40))
	expect_eq "accepted by APNs (JWT, topic)" "$(jq -r .status <<<"$req")" 200
	local body; body=$(jq -r .body <<<"$req")
	expect_eq "type" "$(jq -r .type <<<"$body")" cancel
	expect_eq "reason" "$(jq -r .reason <<<"$body")" caller_cancelled
	expect_eq "call_id" "$(jq -r .call_id <<<"$body")" cx-1@pbx
	expect_eq "wake_id" "$(jq -r .wake_id <<<"$body")" "$(jqb .id)"
	expect_eq "shown as a missed call" "$(jq -c .aps.alert <<<"$body")" '{"loc-key":"IC_MISSED","loc-args":["Alice"]}'
	expect_eq "silently" "$(jq -r '.aps | has("sound")' <<<"$body")" false
	sim_ctl A POST /reset >/dev/null
	api G POST /v1/cancel "$(cancel_body answered_elsewhere "$(jq -cn --arg v "$v" --arg r "$r" \
		'{provider: "apns", token: $v, remote_token: $r, app: "phone"}')")"
	body=$(sim_ctl A GET /requests | jq -r '.[0].body')
	expect_eq "answered elsewhere: not a missed call" "$(jq -r '.aps.alert["loc-key"]' <<<"$body")" IC_ANSWERED_ELSEWHERE
	expect_eq "answered elsewhere: reason" "$(jq -r .reason <<<"$body")" answered_elsewhere
}

t_cancel_to_an_iphone_with_only_a_voip_token_is_skipped() {
	begin "cancel, iPhone with only a VoIP token: no push by default (Apple allows VoIP pushes only for calls), result skipped/voip_only"
	local v r; v=$(tok 352); r=$(tok 353)
	sim_ctl A POST /reset >/dev/null
	api G POST /v1/cancel "$(cancel_body declined "$(jq -cn --arg v "$v" '{provider: "apns", token: $v, app: "phone"}')")"
	expect_eq "HTTP status: 200, not 404" "$STATUS" 200
	expect_eq "result" "$(jqb '.results[0] | [.status, .reason] | join("/")')" skipped/voip_only
	expect_eq "no push type: nothing was pushed" "$(jqb '.results[0] | has("push_type")')" false
	expect_eq "no push id, no attempts" "$(jqb '.results[0] | [has("push_id"), has("attempts")] | any')" false
	expect_eq "target, provider and app as for any result" "$(jqb '.results[0] | [.target, .provider, .app] | join(",")')" "apns:0000…0160,apns,phone"
	expect_eq "nothing reached the simulator" "$(sim_ctl A GET /stats | jq .requests)" 0
	local line; line=$(log_line_of "$(jqb .id)")
	expect_eq "the log line says skipped/voip_only" "$(jq -r '.devices[0] | [.status, .reason] | join("/")' <<<"$line")" skipped/voip_only
	check "pushgw_pushes_total counts it as skipped" grep -Eq \
		'^pushgw_pushes_total\{kind="cancel",provider="apns",app="phone",status="skipped",reason="voip_only"\} [1-9]' \
		<<<"$(curl -s "http://127.0.0.1:$GW_PORT_G/metrics")"

	begin "a cancel to a VoIP-only and a remote-token iPhone: the first is skipped, the second gets its alert"
	api G PUT /v1/extensions/skip-1/devices/voip-only "$(jq -cn --arg v "$v" '{provider: "apns", token: $v, app: "phone"}')" "$KEY_REG"
	expect_eq "registered" "$STATUS" 201
	sim_ctl A POST /reset >/dev/null
	api G POST /v1/cancel "$(jq -cn --arg r "$r" '{extension: "skip-1",
	  devices: [{provider: "apns", remote_token: $r, app: "phone"}], call: {id: "cx-2@pbx"}, reason: "caller_cancelled"}')"
	expect_eq "HTTP status" "$STATUS" 200
	expect_eq "results in request order" "$(jqb '[.results[] | .status + "/" + (.push_type // .reason)] | join(",")')" sent/alert,skipped/voip_only
	local reqs; reqs=$(sim_ctl A GET /requests)
	expect_eq "one request, to the remote token" "$(jq -r '[length, .[0].token] | join(",")' <<<"$reqs")" "1,$r"
	# only the extension's device: every push skipped, still 200 with results
	sim_ctl A POST /reset >/dev/null
	api G POST /v1/cancel '{"extension": "skip-1", "call": {"id": "cx-3@pbx"}}'
	expect_eq "all skipped: HTTP 200" "$STATUS" 200
	expect_eq "all skipped: the result" "$(jqb '[.results[] | .status + "/" + .reason] | join(",")')" skipped/voip_only
	expect_eq "all skipped: nothing sent" "$(sim_ctl A GET /stats | jq .requests)" 0
	api G GET /v1/extensions/skip-1/devices "" "$KEY_REG"
	expect_eq "a skipped device stays registered" "$(jqb '[.devices[].device_id] | join(",")')" voip-only
	api G DELETE /v1/extensions/skip-1 "" "$KEY_REG"
	# a wake still rings the VoIP token
	api G POST /v1/wake "$(wake_body "$v" cx-4@pbx)"
	expect_eq "a wake to the same device is a VoIP push" "$(jqb '.results[0] | .status + "/" + .push_type')" sent/voip
}

t_voip_cancel_opt_in() {
	begin "voip_cancel: true on the app: a VoIP-only iPhone gets its cancel as a VoIP push with type=cancel"
	write_config "$WORK/gw-vc.json" A '.apps.phone.voip_cancel = true'
	start_gw V "$WORK/gw-vc.json" || { bad "start"; return; }
	local v; v=$(tok 354)
	sim_ctl A POST /reset >/dev/null
	api V POST /v1/cancel "$(cancel_body declined "$(jq -cn --arg v "$v" '{provider: "apns", token: $v, app: "phone"}')")"
	expect_eq "result" "$(jqb '.results[0] | .status + "/" + .push_type')" sent/voip
	local reqs; reqs=$(sim_ctl A GET /requests)
	expect_eq "one request" "$(jq length <<<"$reqs")" 1
	local req; req=$(jq -c '.[0]' <<<"$reqs")
	expect_eq "to the VoIP token" "$(jq -r .path <<<"$req")" "/3/device/$v"
	expect_eq "apns-push-type" "$(jq -r '.headers["apns-push-type"]' <<<"$req")" voip
	expect_eq "apns-topic" "$(jq -r '.headers["apns-topic"]' <<<"$req")" com.example.phone.voip
	expect_eq "apns-priority" "$(jq -r '.headers["apns-priority"]' <<<"$req")" 10
	expect_eq "accepted" "$(jq -r .status <<<"$req")" 200
	local body; body=$(jq -r .body <<<"$req")
	expect_eq "type" "$(jq -r .type <<<"$body")" cancel
	expect_eq "reason" "$(jq -r .reason <<<"$body")" declined
	expect_eq "call_id" "$(jq -r .call_id <<<"$body")" cx-1@pbx
	expect_eq "no alert in a VoIP push" "$(jq -c .aps <<<"$body")" '{}'
	stop_gw V
}

# pad_wake TOKEN CALL_ID N [filter]: a wake whose call.data is one key "pad" of N bytes.
pad_wake() {
	jq -cn --arg t "$1" --arg c "$2" --arg p "$(head -c "$3" /dev/zero | tr '\0' x)" '{
	  devices: [{provider: "apns", token: $t, app: "phone"}],
	  call: {id: $c, from: "+15551234567", from_name: "Alice", to: "1001", data: {pad: $p}}} | '"${4:-.}"
}

t_payload_over_the_limit_is_refused() {
	begin "6 KB of call.data: 400 naming call.data and Apple's limit, nothing sent, the registry unchanged"
	local v r; v=$(tok 370); r=$(tok 371)
	api G PUT /v1/extensions/big-1/devices/iphone "$(jq -cn --arg v "$v" '{provider: "apns", token: $v, app: "phone"}')" "$KEY_REG"
	expect_eq "registered" "$STATUS" 201
	api G GET /v1/extensions/big-1/devices "" "$KEY_REG"
	local before; before=$BODY
	sim_ctl A POST /reset >/dev/null
	api G POST /v1/wake "$(pad_wake "$v" big-1@pbx 6144 '.devices = [] | .extension = "big-1"')"
	expect_error "6 KB of call.data" 400 invalid_request call.data
	check "the message names the limit: $(jqb .error.message)" grep -q "5120" <<<"$(jqb .error.message)"
	expect_eq "nothing reached the simulator" "$(sim_ctl A GET /stats | jq .requests)" 0
	api G GET /v1/extensions/big-1/devices "" "$KEY_REG"
	expect_eq "registry unchanged" "$BODY" "$before"
	# a cancel's alert push: Apple's 4096
	api G POST /v1/cancel "$(pad_wake "$v" big-1@pbx 4500 '.devices[0] = {provider: "apns", remote_token: "'"$r"'", app: "phone"}')"
	expect_error "4.5 KB of call.data in an alert cancel" 400 invalid_request call.data
	check "the alert limit: $(jqb .error.message)" grep -q "4096" <<<"$(jqb .error.message)"
	# the async path refuses before its 202 too
	api G POST /v1/wake "$(pad_wake "$v" big-2@pbx 6144 '.callback_url = "http://127.0.0.1:9/cb"')"
	expect_error "async wake with 6 KB of call.data" 400 invalid_request call.data
	expect_eq "nothing reached the simulator" "$(sim_ctl A GET /stats | jq .requests)" 0
	api G DELETE /v1/extensions/big-1 "" "$KEY_REG"

	begin "a VoIP wake of exactly 5120 bytes is sent, one byte more is refused; an alert of exactly 4096 is sent"
	api G POST /v1/wake "$(pad_wake "$v" big-3@pbx 100)"
	local len; len=$(sim_ctl A GET /requests | jq '.[-1].body | utf8bytelength')
	local pad=$((100 + 5120 - len))
	sim_ctl A POST /reset >/dev/null
	api G POST /v1/wake "$(pad_wake "$v" big-3@pbx "$pad")"
	expect_eq "5120 bytes: sent" "$(jqb '.results[0].status')" sent
	expect_eq "5120 bytes reached the simulator, accepted" "$(sim_ctl A GET /requests | jq -c '[(.[-1].body | utf8bytelength), .[-1].status]')" "[5120,200]"
	api G POST /v1/wake "$(pad_wake "$v" big-3@pbx $((pad + 1)))"
	expect_error "5121 bytes" 400 invalid_request call.data
	local alert='.devices[0] = {provider: "apns", remote_token: "'"$r"'", app: "phone"}'
	api G POST /v1/wake "$(pad_wake "$v" big-4@pbx 100 "$alert")"
	len=$(sim_ctl A GET /requests | jq '.[-1].body | utf8bytelength')
	pad=$((100 + 4096 - len))
	api G POST /v1/wake "$(pad_wake "$v" big-4@pbx "$pad" "$alert")"
	expect_eq "alert of 4096 bytes: sent" "$(jqb '.results[0] | .status + "/" + .push_type')" sent/alert
	api G POST /v1/wake "$(pad_wake "$v" big-4@pbx $((pad + 1)) "$alert")"
	expect_error "alert of 4097 bytes" 400 invalid_request call.data
}

t_expired_provider_token_renews_once() {
	begin "ExpiredProviderToken on a young token: one new JWT and a retry, then no more signing"
	start_gw E "$WORK/gw.json" || { bad "start"; return; }
	sim_ctl A POST /reset >/dev/null
	local t1 t2 t3; t1=$(tok 360); t2=$(tok 361); t3=$(tok 362)
	sim_ctl A POST /script "{\"$t1\": [{\"status\":403,\"reason\":\"ExpiredProviderToken\"},{\"status\":200}],
	  \"$t2\": [{\"status\":403,\"reason\":\"ExpiredProviderToken\"}]}" >/dev/null
	api E POST /v1/wake "$(wake_body "$t1" exp-1)"
	expect_eq "sent with a renewed token" "$(jqb '.results[0].status'),$(jqb '.results[0].attempts')" sent,2
	expect_eq "the retry carried a new JWT" \
		"$(sim_ctl A GET /requests | jq --arg t "$t1" '[.[] | select(.token == $t) | .headers.authorization] | unique | length')" 2
	api E POST /v1/wake "$(wake_body "$t2" exp-2)"
	expect_eq "the renewed token called expired too: auth_error, no retry" \
		"$(jqb '.results[0].status'),$(jqb '.results[0].reason'),$(jqb '.results[0].attempts')" failed,auth_error,1
	api E POST /v1/wake "$(wake_body "$t3" exp-3)"
	expect_eq "other pushes go on" "$(jqb '.results[0].status')" sent
	expect_eq "two JWTs in all: no signing loop" "$(sim_ctl A GET /stats | jq .distinct_jwts)" 2
	check "the clock problem is logged" grep -q 'check the clock' "$WORK/gw-E.log"
	stop_gw E
}

t_timeout_when_apns_never_answers() {
	begin "a device APNs never answers ends 'timeout' at timeout_ms"
	local t; t=$(tok 320)
	sim_ctl A POST /script "{\"$t\": [{\"no_answer\":true}]}" >/dev/null
	api G POST /v1/wake "$(wake_body "$t" c '.timeout_ms = 700')"
	expect_eq "status" "$(jqb '.results[0].status')" timeout
}

t_untrusted_upstream_certificate() {
	begin "an untrusted upstream certificate gives connect_error and sends nothing"
	start_sim U --cert "$WORK/certs/untrusted.pem" --key "$WORK/certs/untrusted.key"
	write_config "$WORK/gw-u.json" U
	start_gw U "$WORK/gw-u.json" || { bad "gateway did not start"; return; }
	api U POST /v1/wake "$(wake_body "$(tok 400)")"
	expect_eq "HTTP status" "$STATUS" 200
	expect_eq "status" "$(jqb '.results[0].status')" failed
	expect_eq "reason" "$(jqb '.results[0].reason')" connect_error
	expect_eq "requests reaching the untrusted server" "$(sim_ctl U GET /stats | jq .requests)" 0
	stop_gw U
}

t_goaway_mid_load_loses_nothing() {
	begin "GOAWAY mid-load: every wake ends final, none lost or sent twice"
	sim_ctl A POST /reset >/dev/null
	sim_ctl A POST '/delay?ms=1000' >/dev/null
	local i
	for i in $(seq 1 40); do
		curl -sS -o "$WORK/g$i.json" -H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' \
			--data-binary "$(wake_body "$(tok $((2000 + i)))" "g-$i")" "http://127.0.0.1:$GW_PORT_G/v1/wake" &
	done
	# GOAWAY once most streams are open upstream (none answered yet: 1 s delay)
	local n=0
	for _ in $(seq 1 200); do
		n=$(sim_ctl A GET /requests | jq '[.[] | select(.outcome == "pending")] | length')
		[ "$n" -ge 30 ] && break
		sleep 0.03
	done
	sim_ctl A POST /goaway >/dev/null
	wait_jobs
	sim_ctl A POST '/delay?ms=0' >/dev/null
	local sent; sent=$(cat "$WORK"/g*.json | jq -r '.results[0].status' | grep -c '^sent$')
	expect_eq "all 40 sent" "$sent" 40
	local reqs; reqs=$(sim_ctl A GET /requests)
	expect_eq "tokens answered exactly once" \
		"$(jq '[.[] | select(.outcome == "answered")] | group_by(.token) | map(length) | unique' <<<"$reqs" | jq -c .)" "[1]"
	expect_eq "distinct tokens answered" "$(jq '[.[] | select(.outcome == "answered") | .token] | unique | length' <<<"$reqs")" 40
	check "GOAWAY really refused some streams" test "$(jq '[.[] | select(.outcome == "refused")] | length' <<<"$reqs")" -gt 0
	check "the simulator sent GOAWAY" test "$(sim_ctl A GET /stats | jq .goaways_sent)" -ge 1
	rm -f "$WORK"/g*.json
}

t_connection_drop_is_retried() {
	begin "a dropped connection is re-opened and the push retried"
	local t; t=$(tok 500)
	sim_ctl A POST /script "{\"$t\": [{\"drop\":true},{\"status\":200}]}" >/dev/null
	api G POST /v1/wake "$(wake_body "$t")"
	expect_eq "status" "$(jqb '.results[0].status')" sent
	expect_eq "attempts" "$(jqb '.results[0].attempts')" 2
}

expect_error() { # expect_error WHAT STATUS CODE FIELD_SUBSTRING
	expect_eq "$1: HTTP status" "$STATUS" "$2"
	expect_eq "$1: code" "$(jqb '.error.code' 2>/dev/null)" "$3"
	[ -z "${4:-}" ] || check "$1: message names '$4' ($(jqb .error.message 2>/dev/null))" grep -qF -- "$4" <<<"$(jqb .error.message 2>/dev/null)"
}

t_bad_input_gets_clear_errors() {
	begin "bad input gets the right status, code and field; the process stays up"
	local t; t=$(tok 600)
	api G POST /v1/wake '{"devices": [,'
	expect_error "malformed JSON" 400 invalid_request body
	api G POST /v1/wake '[1,2]'
	expect_error "not an object" 400 invalid_request body
	api G POST /v1/wake "$(wake_body "$t" c '.ttl = "30"')"
	expect_error "ttl wrong type" 400 invalid_request ttl
	api G POST /v1/wake "$(wake_body "$t" c '.call.video = "yes"')"
	expect_error "video wrong type" 400 invalid_request call.video
	api G POST /v1/wake "$(wake_body "$t" c 'del(.call.id)')"
	expect_error "missing call.id" 400 invalid_request call.id
	api G POST /v1/wake "$(wake_body "$t" c 'del(.call)')"
	expect_error "missing call" 400 invalid_request call
	api G POST /v1/wake "$(wake_body "$t" c '.call.data = {"n": 1}')"
	expect_error "non-string call data" 400 invalid_request call.data.n
	api G POST /v1/wake "$(wake_body "$t" c '.devices[0].token = "xyz-not-hex"')"
	expect_error "non-hex token" 400 invalid_request "devices[0].token"
	api G POST /v1/wake "$(wake_body "$t" c '.devices[0].app = "nope"')"
	expect_error "unknown app" 400 invalid_request "devices[0].app"
	api G POST /v1/wake "$(wake_body "$t" c '.extention = "1001"')"
	expect_error "unknown field" 400 invalid_request extention
	api G POST /v1/wake "$(wake_body "$t" c '.devices = []')"
	expect_error "no devices" 404 no_devices
	api G POST /v1/wake "$(wake_body "$t" c '.devices = [range(101) | {provider: "apns", token: "'"$t"'"}]')"
	expect_error "too many devices" 400 invalid_request devices
	api G POST /v1/wake "$(head -c 70000 /dev/zero | tr '\0' ' ')"
	expect_error "oversized body" 413 body_too_large max_body_bytes
	api G POST /v1/wake "$(wake_body "$t")" ""
	expect_error "missing key" 401 unauthorized
	api G POST /v1/wake "$(wake_body "$t")" "not-a-key"
	expect_error "wrong key" 401 unauthorized
	api G POST /v1/wake "$(wake_body "$t")" "$KEY_REG"
	expect_error "key without wake scope" 403 forbidden wake
	api G POST /v1/wake "$(wake_body "$t")" "$KEY_OTHER"
	expect_error "key not allowed for the app" 403 forbidden app
	STATUS=$(curl -sS -o "$WORK/body" -w '%{http_code}' -H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: text/plain' \
		--data-binary "$(wake_body "$t")" "http://127.0.0.1:$GW_PORT_G/v1/wake"); BODY=$(cat "$WORK/body")
	expect_error "wrong content type" 415 unsupported_media_type
	api G GET /v1/wake
	expect_error "GET on /v1/wake" 405 method_not_allowed
	check "405 says Allow: POST" grep -qi '^Allow: POST' <<<"$HEADERS"
	api G GET /v1/nothing
	expect_error "unknown route" 404 not_found
	expect_eq "nothing reached APNs for bad requests" "$(sim_ctl A GET /requests | jq --arg t "$t" '[.[] | select(.token == $t)] | length')" 0
	check "gateway still running" gw_alive G
	api G GET /healthz "" ""
	expect_eq "healthz" "$STATUS" 200
	api G GET /readyz "" ""
	expect_eq "readyz" "$STATUS" 200
}

# log_line_of ID: the log line whose wake_id is ID (waits up to 10 s for it).
log_line_of() {
	local i line
	for i in $(seq 1 100); do
		line=$(grep -F "\"wake_id\":\"$1\"" "$WORK/gw-G.log")
		[ -n "$line" ] && { printf '%s\n' "$line"; return 0; }
		sleep 0.1
	done
	return 1
}

t_wake_log_line_describes_the_wake() {
	begin "a wake's log line is one JSON object: its id, call id and per-device status, redacted target, latency"
	local ok_t dead_t; ok_t=$(tok 130); dead_t=$(tok 131)
	sim_ctl A POST /script "{\"$dead_t\": [{\"status\": 410, \"reason\": \"Unregistered\"}]}" >/dev/null
	api G POST /v1/wake "$(jq -cn --arg a "$ok_t" --arg b "$dead_t" '{
	  devices: [{provider: "apns", token: $a, app: "phone"}, {provider: "apns", token: $b, app: "phone"}],
	  call: {id: "log-1@pbx", from: "+15551234567"}}')"
	expect_eq "status" "$STATUS" 200
	local id results line; id=$(jqb .id); results=$(jqb -c .results)
	line=$(log_line_of "$id")
	expect_eq "exactly one log line for the wake" "$(grep -c . <<<"$line")" 1
	check "the line is one JSON object" jq -e -n '[inputs] | length == 1 and (.[0] | type == "object")' <<<"$line" >/dev/null
	expect_eq "msg, level and kind" "$(jq -r '[.msg, .level, .kind] | join(",")' <<<"$line")" wake,info,wake
	check "ts is RFC 3339 UTC" grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' <<<"$(jq -r .ts <<<"$line")"
	expect_eq "wake_id is the response id" "$(jq -r .wake_id <<<"$line")" "$id"
	expect_eq "call_id" "$(jq -r .call_id <<<"$line")" log-1@pbx
	expect_eq "one entry per device" "$(jq '.devices | length' <<<"$line")" 2
	expect_eq "per-device status" "$(jq -r '[.devices[].status] | join(",")' <<<"$line")" sent,invalid_token
	expect_eq "the dead device's reason" "$(jq -r '.devices[1].reason' <<<"$line")" Unregistered
	expect_eq "redacted targets" "$(jq -r '[.devices[].target] | join(",")' <<<"$line")" "apns:0000…0082,apns:0000…0083"
	check "latency_ms is a number >= 0 for each" jq -e '.devices | all(.latency_ms | type == "number" and . >= 0)' <<<"$line" >/dev/null
	check "the devices are exactly the response's results" jq -e --argjson r "$results" '.devices == $r' <<<"$line" >/dev/null
	check "no full token anywhere in the log" bash -c '! grep -qiF -e "$1" -e "$2" "$3"' _ "$ok_t" "$dead_t" "$WORK/gw-G.log"

	api G POST /v1/cancel "$(jq -cn --arg a "$ok_t" '{devices: [{provider: "apns", token: $a, app: "phone"}], call: {id: "log-1@pbx"}, reason: "declined"}')"
	expect_eq "cancel status" "$STATUS" 200
	line=$(log_line_of "$(jqb .id)")
	expect_eq "a cancel logs msg and kind cancel (to a VoIP-only device: skipped)" \
		"$(jq -r '[.msg, .kind, .call_id, .devices[0].status, .devices[0].reason] | join(",")' <<<"$line")" \
		cancel,cancel,log-1@pbx,skipped,voip_only
	sim_ctl A POST /script "{\"$dead_t\": []}" >/dev/null
}

t_startup_log_says_what_runs() {
	begin "the start-up log has the config summary and the upstream connection state"
	local log="$WORK/gw-G.log" start
	start=$(jq -c 'select(.msg == "pushgw listening")' "$log")
	expect_eq "one start-up line" "$(grep -c . <<<"$start")" 1
	expect_eq "listening address" "$(jq -r .addr <<<"$start")" "127.0.0.1:$GW_PORT_G"
	expect_eq "config file" "$(jq -r .config <<<"$start")" "$WORK/gw.json"
	expect_eq "apps and api keys counted" "$(jq -r '[.apps, .api_keys, .tls] | join(",")' <<<"$start")" 2,4,off
	check "version" grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+' <<<"$(jq -r .version <<<"$start")"
	local first; first=$(jq -c --arg o "127.0.0.1:$SIM_PORT_A" 'select(.msg == "upstream connected" and .origin == $o)' "$log" | head -n1)
	check "an upstream connection to the simulator is logged" test -n "$first"
	check "with its TLS version and stream limit" jq -e '(.tls | startswith("TLSv1.")) and (.max_streams | test("^[0-9]+$"))' <<<"$first" >/dev/null
	check "connected before the first wake was logged" jq -e -s \
		'(map(.msg) | index("upstream connected")) < (map(.msg) | index("wake"))' "$log" >/dev/null
}

t_logs_are_json_without_tokens() {
	begin "logs are JSON lines and never carry a full token or key"
	local log="$WORK/gw-G.log"
	check "every log line parses as JSON" jq -e . "$log" >/dev/null
	check "no full token in the log" bash -c "! grep -q '$(tok 100)' '$log'"
	check "no API key in the log" bash -c "! grep -qF '$KEY_WAKE' '$log'"
	check "the wake was logged with its call id" grep -q '"call_id":"a84b4c76e66710@pbx"' "$log"
}

t_sigterm_exits_zero() {
	begin "SIGTERM stops the gateway with exit 0"
	stop_gw G
	expect_eq "exit status" "$GW_EXIT" 0
}

t_wake_reaches_apns_with_exact_headers_and_payload
t_ttl_zero_is_now_or_never
t_concurrent_wakes_share_prewarmed_connections
t_apns_errors_map_to_statuses
t_one_push_per_token_across_explicit_and_registered
t_shutdown_replaces_only_the_answering_connection
t_cancel_to_an_iphone_with_a_remote_token
t_cancel_to_an_iphone_with_only_a_voip_token_is_skipped
t_voip_cancel_opt_in
t_payload_over_the_limit_is_refused
t_expired_provider_token_renews_once
t_timeout_when_apns_never_answers
t_untrusted_upstream_certificate
t_goaway_mid_load_loses_nothing
t_connection_drop_is_retried
t_bad_input_gets_clear_errors
t_wake_log_line_describes_the_wake
t_startup_log_says_what_runs
t_logs_are_json_without_tokens
t_sigterm_exits_zero
summary
