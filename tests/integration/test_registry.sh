#!/usr/bin/env bash
# End-to-end registry: devices registered over the API (APNs and FCM, every
# form) survive restarts and kill -9, a wake by extension reaches each once,
# dead tokens are pruned, and bad requests change nothing. Real pushgw, real
# simulator (APNs, FCM and Google OAuth), real curl.
source tests/integration/lib.sh

# App "phone" has FCM too, through the simulator's OAuth and send endpoints.
# Its APNs production host is simulator A, its sandbox host simulator B.
PROJECT=pushgw-test
make_certs
start_sim A --sa-pub "pushgw-test@$PROJECT.iam.gserviceaccount.com=$WORK/certs/sa_pub.pem" \
	--fcm-project "$PROJECT"
start_sim B
bash tests/sim/make-sa.sh "$WORK/certs" "https://127.0.0.1:$SIM_PORT_A/token" "$PROJECT" >/dev/null
write_config "$WORK/reg.json" A ".apps.phone.fcm = {service_account_file: \"$WORK/certs/service-account.json\", url: \"https://127.0.0.1:$SIM_PORT_A\"}
	| .apps.phone.apns.sandbox_url = \"https://127.0.0.1:$SIM_PORT_B\""
start_gw R "$WORK/reg.json" || exit 1

PN="TEAM123456.com.example.phone"
put_dev() { # put_dev EXT DEVICE_ID BODY [KEY]
	api R PUT "/v1/extensions/$1/devices/$2" "$3" "${4-$KEY_REG}"
}
list_dev() { api R GET "/v1/extensions/$1/devices" "" "${2-$KEY_REG}"; }
get_dev() { api R GET "/v1/extensions/$1/devices/$2" "" "${3-$KEY_REG}"; }
n_devices() { list_dev "$1"; jqb '.devices | length'; }

t_crud_round_trips_for_each_form() {
	begin "PUT/GET/DELETE round trips for every device form; 201 then 200; 204; 404"
	local a b c
	a=$(tok 700); b=$(tok 701); c=$(tok 702)
	put_dev 1001 iphone-a "{\"provider\":\"apns\",\"token\":\"$a\",\"app\":\"phone\"}"
	expect_eq "explicit APNs: created" "$STATUS" 201
	expect_eq "answer names the device" "$(jqb .device_id)" iphone-a
	expect_eq "answer shows a redacted target" "$(jqb .target)" "apns:0000…02bc"
	put_dev 1001 iphone-a "{\"provider\":\"apns\",\"token\":\"$a\",\"app\":\"phone\",\"environment\":\"sandbox\"}"
	expect_eq "same id again: replaced" "$STATUS" 200
	expect_eq "replacement kept the new environment" "$(jqb .environment)" sandbox
	put_dev 1001 "urn%3Auuid%3A0f3c9a1e-0000-4000-8000-000000000001" \
		"{\"contact\":\"\\\"Bob\\\" <sip:1001@203.0.113.5:5060;transport=tls;pn-provider=apns.dev;pn-param=$PN.remote%26voip;pn-prid=$b:voip%26$c:remote>\"}"
	expect_eq "Linphone-style contact: created" "$STATUS" 201
	expect_eq "URL-decoded device id" "$(jqb .device_id)" "urn:uuid:0f3c9a1e-0000-4000-8000-000000000001"
	expect_eq "contact gave a VoIP token" "$(jqb .voip)" true
	expect_eq "contact gave a remote token" "$(jqb .remote)" true
	expect_eq "apns.dev is sandbox" "$(jqb .environment)" sandbox
	put_dev 1001 ipad "{\"pn-provider\":\"apns\",\"pn-param\":\"$PN.voip\",\"pn-prid\":\"$(tok 703)\"}"
	expect_eq "pn-* fields: created" "$STATUS" 201
	list_dev 1001
	expect_eq "GET lists three devices" "$(jqb '.devices | length')" 3
	expect_eq "oldest first" "$(jqb '.devices[0].device_id')" iphone-a
	check "GET shows no full token" bash -c "! grep -qE '$a|$b|$c' <<<'$BODY'"
	local entry; entry=$(jqb -c '.devices[1]')
	get_dev 1001 "urn%3Auuid%3A0f3c9a1e-0000-4000-8000-000000000001"
	expect_eq "GET one device: 200" "$STATUS" 200
	expect_eq "GET one device: the same document as its list entry" "$(jqb -c .)" "$entry"
	check "GET one device shows no full token" bash -c "! grep -qE '$b|$c' <<<'$BODY'"
	get_dev 1001 no-such-device
	expect_eq "GET an unknown device: 404" "$STATUS" 404
	expect_eq "GET an unknown device: code" "$(jqb .error.code)" not_found
	get_dev 1001 iphone-a "$KEY_OTHER"
	expect_eq "GET another app's device: 404, as the list hides it" "$STATUS" 404
	expect_eq "HEAD one device" "$(curl -sS --head -o /dev/null -w '%{http_code}' \
		-H "Authorization: Bearer $KEY_REG" "http://127.0.0.1:$GW_PORT_R/v1/extensions/1001/devices/ipad")" 200
	api R DELETE /v1/extensions/1001/devices/ipad "" "$KEY_REG"
	expect_eq "DELETE device" "$STATUS" 204
	api R DELETE /v1/extensions/1001/devices/ipad "" "$KEY_REG"
	expect_eq "DELETE it again" "$STATUS" 404
	expect_eq "404 code" "$(jqb .error.code)" not_found
	expect_eq "two left" "$(n_devices 1001)" 2
	api R DELETE /v1/extensions/1001 "" "$KEY_REG"
	expect_eq "DELETE extension" "$STATUS" 204
	expect_eq "none left" "$(n_devices 1001)" 0
	api R DELETE /v1/extensions/1001 "" "$KEY_REG"
	expect_eq "DELETE empty extension" "$STATUS" 404
}

t_token_moves_with_its_device() {
	begin "the same token under a new device id or extension moves there"
	local t; t=$(tok 710)
	put_dev 2001 old "{\"provider\":\"apns\",\"token\":\"$t\",\"app\":\"phone\"}"
	put_dev 2001 new "{\"provider\":\"apns\",\"token\":\"$t\",\"app\":\"phone\"}"
	expect_eq "new device id: created" "$STATUS" 201
	list_dev 2001
	expect_eq "only the new id holds it" "$(jqb '[.devices[].device_id] | join(",")')" new
	put_dev 2002 phone "{\"provider\":\"apns\",\"token\":\"$t\",\"app\":\"phone\"}"
	expect_eq "old extension lost it" "$(n_devices 2001)" 0
	expect_eq "new extension has it" "$(n_devices 2002)" 1
}

t_wake_by_extension_reaches_each_device_once() {
	begin "a wake by extension reaches every device of it once"
	local a b; a=$(tok 720); b=$(tok 721)
	put_dev 3001 a "{\"provider\":\"apns\",\"token\":\"$a\",\"app\":\"phone\"}"
	put_dev 3001 b "{\"contact\":\"<sip:3001@198.51.100.7;pn-provider=apns;pn-param=$PN.voip;pn-prid=$b>\"}"
	sim_ctl A POST /reset >/dev/null
	api R POST /v1/wake "{\"extension\":\"3001\",\"devices\":[{\"provider\":\"apns\",\"token\":\"$a\",\"app\":\"phone\"}],\"call\":{\"id\":\"ext-call\"}}"
	expect_eq "HTTP status" "$STATUS" 200
	expect_eq "results: the explicit device, then the extension's two" "$(jqb '.results | length')" 3
	expect_eq "all sent" "$(jqb '[.results[].status] | unique | join(",")')" sent
	local reqs; reqs=$(sim_ctl A GET /requests)
	expect_eq "APNs requests (the duplicate is pushed once)" "$(jq length <<<"$reqs")" 2
	expect_eq "both tokens reached" "$(jq -r '[.[].token] | sort | join(",")' <<<"$reqs")" "$a,$b"
	api R POST /v1/wake '{"extension":"no-such-ext","call":{"id":"x"}}'
	expect_eq "unknown extension: 404" "$STATUS" 404
	expect_eq "code" "$(jqb .error.code)" no_devices
}

t_dead_tokens_are_pruned() {
	begin "Unregistered removes the device; the next wake does not push to it"
	local dead live; dead=$(tok 730); live=$(tok 731)
	put_dev 4001 dead "{\"provider\":\"apns\",\"token\":\"$dead\",\"app\":\"phone\"}"
	put_dev 4001 live "{\"provider\":\"apns\",\"token\":\"$live\",\"app\":\"phone\"}"
	sim_ctl A POST /script "{\"$dead\":[{\"status\":410,\"reason\":\"Unregistered\",\"timestamp\":$(( $(date +%s) * 1000 + 60000 ))}]}" >/dev/null
	api R POST /v1/wake '{"extension":"4001","call":{"id":"p1"}}'
	expect_eq "dead device: invalid_token" "$(jqb '.results[] | select(.target == "apns:0000…02da") | .status')" invalid_token
	expect_eq "dead device: removed" "$(jqb '.results[] | select(.target == "apns:0000…02da") | .removed')" true
	expect_eq "dead device: the whole device went" "$(jqb '.results[] | select(.target == "apns:0000…02da") | .pruned')" device
	list_dev 4001
	expect_eq "GET no longer lists it" "$(jqb '[.devices[].device_id] | join(",")')" live
	sim_ctl A POST /reset >/dev/null
	api R POST /v1/wake '{"extension":"4001","call":{"id":"p2"}}'
	expect_eq "next wake: one device" "$(jqb '.results | length')" 1
	expect_eq "nothing pushed to the dead token" "$(sim_ctl A GET /requests | jq --arg t "$dead" '[.[] | select(.token == $t)] | length')" 0
	check "the removal is counted in metrics" grep -q '^pushgw_registry_pruned_total{provider="apns",pruned="device"} 1' <<<"$(curl -s "http://127.0.0.1:$GW_PORT_R/metrics")"
	check "the removal is logged with a redacted token" grep -q '"registry: removed a dead token".*"token":"0000…02da"' "$WORK/gw-R.log"
	expect_eq "logged once" "$(grep -c '"token":"0000…02da"' "$WORK/gw-R.log")" 1
}

t_dead_alert_token_is_dropped_and_reported() {
	begin "a dead alert token of a VoIP device: only it goes, the result says so, it is counted"
	local v r; v=$(tok 735); r=$(tok 736)
	put_dev 4201 both "{\"provider\":\"apns\",\"token\":\"$v\",\"remote_token\":\"$r\",\"app\":\"phone\"}"
	sim_ctl A POST /reset >/dev/null
	sim_ctl A POST /script "{\"$r\":[{\"status\":410,\"reason\":\"Unregistered\",\"timestamp\":$(( $(date +%s) * 1000 + 60000 ))}]}" >/dev/null
	# a cancel goes to the alert token when the device has one
	api R POST /v1/cancel '{"extension":"4201","call":{"id":"dead-alert"},"reason":"answered_elsewhere"}'
	expect_eq "cancel: 200" "$STATUS" 200
	expect_eq "it went as an alert push" "$(jqb '.results[0].push_type')" alert
	expect_eq "status" "$(jqb '.results[0].status')" invalid_token
	expect_eq "removed: the dead token is no longer registered" "$(jqb '.results[0].removed')" true
	expect_eq "pruned: only the alert token" "$(jqb '.results[0].pruned')" remote_token
	get_dev 4201 both
	expect_eq "the device is still registered" "$STATUS" 200
	expect_eq "with its VoIP token" "$(jqb .voip)" true
	expect_eq "without the dead alert token" "$(jqb .remote)" false
	check "counted in metrics" grep -q '^pushgw_registry_pruned_total{provider="apns",pruned="remote_token"} 1' <<<"$(curl -s "http://127.0.0.1:$GW_PORT_R/metrics")"
	expect_eq "logged once, redacted" "$(grep -c '"registry: removed a dead token".*"token":"0000…02e0".*"pruned":"remote_token"' "$WORK/gw-R.log")" 1
	sim_ctl A POST /reset >/dev/null
	api R POST /v1/wake '{"extension":"4201","call":{"id":"after-dead-alert"}}'
	expect_eq "the next wake still rings it (VoIP)" "$(jqb '[.results[0].status, .results[0].push_type] | join(",")')" sent,voip
	expect_eq "nothing pushed to the dead alert token" "$(sim_ctl A GET /requests | jq --arg t "$r" '[.[] | select(.token == $t)] | length')" 0
}

t_reregistered_device_survives_an_old_410() {
	begin "a 410 older than the registration does not remove the device"
	local t; t=$(tok 740)
	put_dev 4101 phone "{\"provider\":\"apns\",\"token\":\"$t\",\"app\":\"phone\"}"
	sim_ctl A POST /script "{\"$t\":[{\"status\":410,\"reason\":\"Unregistered\",\"timestamp\":1000}]}" >/dev/null
	api R POST /v1/wake '{"extension":"4101","call":{"id":"old410"}}'
	expect_eq "status" "$(jqb '.results[0].status')" invalid_token
	expect_eq "not removed" "$(jqb '.results[0].removed')" false
	expect_eq "still registered" "$(n_devices 4101)" 1
}

# FCM registration tokens: long, with ':' and '-' in them.
ftok() { printf 'dGVzdDpyZWdpc3RyeQ:APA91bH-registry_%s_%s' "$1" "$(tok "$1" | cut -c50-64)"; }
redacted() { printf '%s:%s…%s' "$1" "${2:0:4}" "${2: -4}"; }
fcm_reqs() { sim_ctl A GET /requests | jq -c --arg t "$1" '[.[] | select(.kind == "fcm" and .token == $t)]'; }

t_fcm_round_trips_for_each_form() {
	begin "FCM: explicit device, pn-provider=fcm fields, a contact with pn-provider=fcm: 201/200/GET/DELETE"
	local f1 f2 f3; f1=$(ftok 760); f2=$(ftok 761); f3=$(ftok 762)
	put_dev 6101 pixel "{\"provider\":\"fcm\",\"token\":\"$f1\",\"app\":\"phone\"}"
	expect_eq "explicit FCM: created" "$STATUS" 201
	expect_eq "provider" "$(jqb .provider)" fcm
	expect_eq "app" "$(jqb .app)" phone
	expect_eq "redacted target" "$(jqb .target)" "$(redacted fcm "$f1")"
	expect_eq "no APNs-only fields" "$(jqb '[has("voip"), has("remote"), has("environment")] | any')" false
	put_dev 6101 pixel "{\"provider\":\"fcm\",\"token\":\"$f1\",\"app\":\"phone\"}"
	expect_eq "same id again: replaced" "$STATUS" 200
	put_dev 6101 galaxy "{\"pn-provider\":\"fcm\",\"pn-param\":\"$PROJECT\",\"pn-prid\":\"$f2\"}"
	expect_eq "pn-provider=fcm fields: created" "$STATUS" 201
	expect_eq "pn-* fields: provider" "$(jqb .provider)" fcm
	expect_eq "pn-* fields: the project's app" "$(jqb .app)" phone
	put_dev 6101 "urn%3Auuid%3Aandroid-0003" \
		"{\"contact\":\"<sip:6101@198.51.100.9:5060;transport=tcp;pn-provider=fcm;pn-param=$PROJECT;pn-prid=$f3>\"}"
	expect_eq "contact with pn-provider=fcm and the project id: created" "$STATUS" 201
	expect_eq "contact: target" "$(jqb .target)" "$(redacted fcm "$f3")"
	list_dev 6101
	expect_eq "GET lists the three" "$(jqb '[.devices[] | .device_id + "=" + .provider] | join(",")')" \
		"pixel=fcm,galaxy=fcm,urn:uuid:android-0003=fcm"
	check "GET shows no full FCM token" bash -c "! grep -qF -e '$f1' -e '$f2' -e '$f3' <<<'$BODY'"
	get_dev 6101 galaxy
	expect_eq "GET one FCM device" "$(jqb '[.device_id, .provider, .target] | join(",")')" \
		"galaxy,fcm,$(redacted fcm "$f2")"
	sim_ctl A POST /reset >/dev/null
	api R POST /v1/wake '{"extension":"6101","call":{"id":"fcm-ext"}}'
	expect_eq "wake by extension: all sent" "$(jqb '[.results[] | .provider + "=" + .status] | join(",")')" \
		"fcm=sent,fcm=sent,fcm=sent"
	expect_eq "each token reached FCM once" \
		"$(for t in "$f1" "$f2" "$f3"; do fcm_reqs "$t" | jq length; done | tr '\n' ,)" "1,1,1,"
	api R DELETE /v1/extensions/6101/devices/galaxy "" "$KEY_REG"
	expect_eq "DELETE an FCM device" "$STATUS" 204
	api R DELETE /v1/extensions/6101/devices/galaxy "" "$KEY_REG"
	expect_eq "DELETE it again" "$STATUS" 404
	expect_eq "two left" "$(n_devices 6101)" 2
	api R DELETE /v1/extensions/6101 "" "$KEY_REG"
	expect_eq "DELETE the extension" "$STATUS" 204
	expect_eq "none left" "$(n_devices 6101)" 0
}

t_fcm_dead_token_is_pruned() {
	begin "FCM UNREGISTERED removes the device; the next wake does not push to it"
	local dead live; dead=$(ftok 770); live=$(ftok 771)
	put_dev 6201 dead "{\"provider\":\"fcm\",\"token\":\"$dead\",\"app\":\"phone\"}"
	put_dev 6201 live "{\"contact\":\"<sip:6201@198.51.100.9;pn-provider=fcm;pn-param=$PROJECT;pn-prid=$live>\"}"
	sim_ctl A POST /reset >/dev/null
	sim_ctl A POST /script "{\"$dead\":[{\"status\":404,\"fcm\":\"UNREGISTERED\"}]}" >/dev/null
	api R POST /v1/wake '{"extension":"6201","call":{"id":"fcm-p1"}}'
	local sel=".results[] | select(.target == \"$(redacted fcm "$dead")\")"
	expect_eq "dead device: invalid_token" "$(jqb "$sel | .status")" invalid_token
	expect_eq "dead device: FCM's reason" "$(jqb "$sel | .reason")" UNREGISTERED
	expect_eq "dead device: removed" "$(jqb "$sel | .removed")" true
	expect_eq "dead device: the whole device went" "$(jqb "$sel | .pruned")" device
	expect_eq "the live one: sent" "$(jqb ".results[] | select(.target == \"$(redacted fcm "$live")\") | .status")" sent
	list_dev 6201
	expect_eq "GET no longer lists it" "$(jqb '[.devices[].device_id] | join(",")')" live
	sim_ctl A POST /reset >/dev/null
	api R POST /v1/wake '{"extension":"6201","call":{"id":"fcm-p2"}}'
	expect_eq "next wake: one device, sent" "$(jqb '[.results[].status] | join(",")')" sent
	expect_eq "nothing pushed to the dead token" "$(fcm_reqs "$dead" | jq length)" 0
	expect_eq "the live one pushed" "$(fcm_reqs "$live" | jq length)" 1
	check "counted in metrics" grep -q '^pushgw_registry_pruned_total{provider="fcm",pruned="device"} 1' \
		<<<"$(curl -s "http://127.0.0.1:$GW_PORT_R/metrics")"
}

# still_registered EXT ID: GET finds the device.
still_registered() { get_dev "$1" "$2"; expect_eq "$3: still registered (GET)" "$STATUS" 200; }
mistakes() { curl -s "http://127.0.0.1:$GW_PORT_R/metrics" | grep "^pushgw_upstream_config_mistakes_total{provider=\"$1\",app=\"phone\",reason=\"$2\"}" | awk '{print $2}'; }

t_config_mistakes_never_remove_a_device() {
	begin "DeviceTokenNotForTopic, BadDeviceToken for a stated environment, SENDER_ID_MISMATCH: device kept, result says why"
	local topic env dev f; topic=$(tok 780); env=$(tok 781); dev=$(tok 782); f=$(ftok 783)
	put_dev 7001 topic "{\"provider\":\"apns\",\"token\":\"$topic\",\"app\":\"phone\"}"
	put_dev 7001 env "{\"provider\":\"apns\",\"token\":\"$env\",\"app\":\"phone\",\"environment\":\"production\"}"
	put_dev 7001 dev "{\"contact\":\"<sip:7001@203.0.113.5;pn-provider=apns.dev;pn-param=$PN.voip;pn-prid=$dev>\"}"
	put_dev 7001 pixel "{\"provider\":\"fcm\",\"token\":\"$f\",\"app\":\"phone\"}"
	sim_ctl A POST /reset >/dev/null; sim_ctl B POST /reset >/dev/null
	sim_ctl A POST /script "{\"$topic\":[{\"status\":400,\"reason\":\"DeviceTokenNotForTopic\"}],
		\"$env\":[{\"status\":400,\"reason\":\"BadDeviceToken\"}],
		\"$f\":[{\"status\":403,\"fcm\":\"SENDER_ID_MISMATCH\"}]}" >/dev/null
	sim_ctl B POST /script "{\"$dev\":[{\"status\":400,\"reason\":\"BadDeviceToken\"}]}" >/dev/null
	local m0; m0=$(mistakes apns BadDeviceToken)
	api R POST /v1/wake '{"extension":"7001","call":{"id":"mistakes"}}'
	expect_eq "HTTP 200" "$STATUS" 200
	local sel
	sel='.results[] | select(.target == "apns:0000…030c")'
	expect_eq "DeviceTokenNotForTopic: status, reason, removed" "$(jqb "$sel | [.status, .reason, .removed] | join(\",\")")" invalid_token,DeviceTokenNotForTopic,false
	check "DeviceTokenNotForTopic: the hint names the bundle id ($(jqb "$sel | .hint"))" grep -q "bundle id" <<<"$(jqb "$sel | .hint")"
	sel='.results[] | select(.target == "apns:0000…030d")'
	expect_eq "BadDeviceToken, environment stated: status, reason, removed" "$(jqb "$sel | [.status, .reason, .removed] | join(\",\")")" invalid_token,BadDeviceToken,false
	check "BadDeviceToken: the hint says other environment ($(jqb "$sel | .hint"))" grep -q "other APNs environment: check the device's environment" <<<"$(jqb "$sel | .hint")"
	sel='.results[] | select(.target == "apns:0000…030e")'
	expect_eq "BadDeviceToken from the sandbox (apns.dev): removed" "$(jqb "$sel | [.status, .removed] | join(\",\")")" invalid_token,false
	sel=".results[] | select(.target == \"$(redacted fcm "$f")\")"
	expect_eq "SENDER_ID_MISMATCH: failed, FCM's reason" "$(jqb "$sel | [.status, .reason] | join(\",\")")" failed,SENDER_ID_MISMATCH
	check "SENDER_ID_MISMATCH: the hint names the service account ($(jqb "$sel | .hint"))" grep -q "service_account_file" <<<"$(jqb "$sel | .hint")"
	expect_eq "a stated environment is not tried on the other host" \
		"$(sim_ctl B GET /requests | jq --arg t "$env" '[.[] | select(.token == $t)] | length'),$(sim_ctl A GET /requests | jq --arg t "$dev" '[.[] | select(.token == $t)] | length')" 0,0
	still_registered 7001 topic "DeviceTokenNotForTopic"
	still_registered 7001 env "BadDeviceToken (production stated)"
	still_registered 7001 dev "BadDeviceToken (apns.dev)"
	still_registered 7001 pixel "SENDER_ID_MISMATCH"
	expect_eq "all four still listed" "$(n_devices 7001)" 4
	expect_eq "counted: DeviceTokenNotForTopic" "$(mistakes apns DeviceTokenNotForTopic)" 1
	expect_eq "counted: BadDeviceToken" "$(mistakes apns BadDeviceToken)" $(( ${m0:-0} + 2 ))
	expect_eq "counted: SENDER_ID_MISMATCH" "$(mistakes fcm SENDER_ID_MISMATCH)" 1
	expect_eq "a warning per push" "$(grep -c '"level":"warn".*"msg":"upstream: the token was refused for a configuration reason; the device is kept"' "$WORK/gw-R.log")" 4
	check "warnings name tokens only redacted" grep -q '"token":"0000…030c"' "$WORK/gw-R.log"
	check "no full token in the log" bash -c "! grep -qF -e '$topic' -e '$env' -e '$dev' -e '$f' '$WORK/gw-R.log'"
	expect_eq "nothing pruned" "$(grep -c '"registry: removed a dead token".*"token":"0000…030[cde]"' "$WORK/gw-R.log")" 0
	# the next wake still reaches all four
	sim_ctl A POST /script "{\"$topic\":[],\"$env\":[],\"$f\":[]}" >/dev/null
	sim_ctl B POST /script "{\"$dev\":[]}" >/dev/null
	api R POST /v1/wake '{"extension":"7001","call":{"id":"mistakes-fixed"}}'
	expect_eq "once fixed, all four are sent" "$(jqb '[.results[].status] | join(",")')" sent,sent,sent,sent
	api R DELETE /v1/extensions/7001 "" "$KEY_REG"
}

t_bad_device_token_needs_both_hosts() {
	begin "BadDeviceToken, no environment stated: the other host is tried; removed only when both refuse"
	local both other; both=$(tok 790); other=$(tok 791)
	put_dev 7101 both "{\"provider\":\"apns\",\"token\":\"$both\",\"app\":\"phone\"}"
	put_dev 7101 other "{\"provider\":\"apns\",\"token\":\"$other\",\"app\":\"phone\"}"
	sim_ctl A POST /reset >/dev/null; sim_ctl B POST /reset >/dev/null
	sim_ctl A POST /script "{\"$both\":[{\"status\":400,\"reason\":\"BadDeviceToken\"}],\"$other\":[{\"status\":400,\"reason\":\"BadDeviceToken\"}]}" >/dev/null
	sim_ctl B POST /script "{\"$both\":[{\"status\":400,\"reason\":\"BadDeviceToken\"}]}" >/dev/null
	api R POST /v1/wake '{"extension":"7101","call":{"id":"both-hosts"}}'
	local sel='.results[] | select(.target == "apns:0000…0316")'
	expect_eq "refused by both: invalid_token, removed" "$(jqb "$sel | [.status, .reason, .removed] | join(\",\")")" invalid_token,BadDeviceToken,true
	sel='.results[] | select(.target == "apns:0000…0317")'
	expect_eq "refused by production, accepted by the sandbox: sent" "$(jqb "$sel | .status")" sent
	expect_eq "each host saw each token once" \
		"$(for s in A B; do for t in "$both" "$other"; do sim_ctl $s GET /requests | jq --arg t "$t" '[.[] | select(.token == $t)] | length'; done; done | tr '\n' ,)" "1,1,1,1,"
	get_dev 7101 both
	expect_eq "refused by both: gone (GET)" "$STATUS" 404
	get_dev 7101 other
	expect_eq "the other: still registered" "$STATUS" 200
	expect_eq "the other: the host that worked is remembered" "$(jqb .environment)" sandbox
	sim_ctl A POST /reset >/dev/null; sim_ctl B POST /reset >/dev/null
	api R POST /v1/wake '{"extension":"7101","call":{"id":"both-hosts-2"}}'
	expect_eq "next wake: one device, sent" "$(jqb '[.results[].status] | join(",")')" sent
	expect_eq "straight to the sandbox" "$(sim_ctl A GET /requests | jq length),$(sim_ctl B GET /requests | jq length)" 0,1
	api R DELETE /v1/extensions/7101 "" "$KEY_REG"
}

t_bad_requests_store_nothing() {
	begin "bad ids, bodies, scopes and apps get the right error and store nothing"
	local t; t=$(tok 750)
	put_dev 5001 ok "{\"provider\":\"apns\",\"token\":\"$t\",\"app\":\"phone\"}"
	put_dev "$(printf 'x%.0s' $(seq 1 129))" d "{\"provider\":\"apns\",\"token\":\"$(tok 751)\",\"app\":\"phone\"}"
	expect_eq "extension too long" "$STATUS" 400
	put_dev "50%2F01" d "{\"provider\":\"apns\",\"token\":\"$(tok 751)\",\"app\":\"phone\"}"
	expect_eq "escaped slash in extension" "$STATUS" 400
	check "message names the path" grep -q path <<<"$(jqb .error.message)"
	put_dev 5001 "bad%20id" "{\"provider\":\"apns\",\"token\":\"$(tok 751)\",\"app\":\"phone\"}"
	expect_eq "space in device id" "$STATUS" 400
	put_dev 5001 "bad%zzid" "{\"provider\":\"apns\",\"token\":\"$(tok 751)\",\"app\":\"phone\"}"
	expect_eq "bad escape" "$STATUS" 400
	put_dev 5001 d '{"provider":"apns","token":'
	expect_eq "malformed JSON" "$STATUS" 400
	put_dev 5001 d '{"provider":"apns","token":"nothex","app":"phone"}'
	expect_eq "non-hex token" "$STATUS" 400
	check "message names token" grep -q token <<<"$(jqb .error.message)"
	put_dev 5001 d "{\"contact\":\"<sip:5001@h;pn-provider=apns;pn-param=$PN.voip%26remote;pn-prid=$(tok 752)>\"}"
	expect_eq "services and tokens that do not pair up" "$STATUS" 400
	check "message names pn-prid" grep -q pn-prid <<<"$(jqb .error.message)"
	put_dev 5001 d "{\"provider\":\"apns\",\"token\":\"$(tok 751)\",\"app\":\"phone\"}" "$KEY_WAKEONLY"
	expect_eq "key without register scope" "$STATUS" 403
	put_dev 5001 d "{\"provider\":\"apns\",\"token\":\"$(tok 751)\",\"app\":\"phone\"}" "$KEY_OTHER"
	expect_eq "another app's key" "$STATUS" 403
	put_dev 5001 ok "{\"provider\":\"apns\",\"token\":\"$(tok 753)\",\"app\":\"other\"}" "$KEY_OTHER"
	expect_eq "its own app's device over another app's device id" "$STATUS" 403
	expect_eq "code" "$(jqb .error.code)" forbidden
	check "message says whose device it is" grep -q "belongs to an app the key may not use" <<<"$(jqb .error.message)"
	list_dev 5001
	expect_eq "phone's device is still phone's, token unchanged" \
		"$(jqb '[.devices[] | .device_id + "=" + .app + "=" + .target] | join(",")')" "ok=phone=apns:0000…02ee"
	api R DELETE /v1/extensions/5001/devices/ok "" "$KEY_OTHER"
	expect_eq "another app's key cannot delete" "$STATUS" 403
	check "delete: message says whose device it is" grep -q "belongs to an app the key may not use" <<<"$(jqb .error.message)"
	api R DELETE /v1/extensions/5001 "" "$KEY_OTHER"
	expect_eq "another app's key: the extension has none of its devices" "$STATUS" 404
	put_dev 5001 other-1 "{\"provider\":\"apns\",\"token\":\"$(tok 754)\",\"app\":\"other\"}" "$KEY_OTHER"
	expect_eq "other's own device in the same extension" "$STATUS" 201
	api R DELETE /v1/extensions/5001 "" "$KEY_OTHER"
	expect_eq "other's key deletes the extension: its own devices only" "$STATUS" 204
	list_dev 5001 "$KEY_OTHER"
	expect_eq "another app's key sees none of phone's devices" "$(jqb '.devices | length')" 0
	put_dev 5001 d "{\"provider\":\"apns\",\"token\":\"$(tok 751)\",\"app\":\"phone\"}" ""
	expect_eq "no key" "$STATUS" 401
	api R POST /v1/extensions/5001/devices/d "{}" "$KEY_REG"
	expect_eq "POST on a device" "$STATUS" 405
	list_dev 5001
	expect_eq "still exactly the one good device" "$(jqb '[.devices[].device_id] | join(",")')" ok
}

t_registrations_survive_kill_9() {
	begin "1,000 acknowledged registrations survive kill -9"
	local cfg="$WORK/curl-reg.txt" i
	: >"$cfg"
	for i in $(seq 1 1000); do
		[ "$i" = 1 ] || echo next >>"$cfg"
		printf 'url = "http://127.0.0.1:%s/v1/extensions/k%d/devices/d%d"\nrequest = "PUT"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "{\\"provider\\":\\"apns\\",\\"token\\":\\"%064x\\",\\"app\\":\\"phone\\"}"\nwrite-out = "%%{http_code}\\n"\noutput = "/dev/null"\n' \
			"$GW_PORT_R" $((i % 10)) "$i" "$KEY_REG" $((100000 + i)) >>"$cfg"
	done
	local codes; codes=$(curl -sS --no-progress-meter --parallel --parallel-max 16 --config "$cfg")
	kill9_gw R
	expect_eq "1000 acknowledged with 201" "$(grep -c '^201$' <<<"$codes")" 1000
	start_gw R "$WORK/reg.json" || { bad "restart failed"; return; }
	local total=0 e
	for e in 0 1 2 3 4 5 6 7 8 9; do total=$((total + $(n_devices "k$e"))); done
	expect_eq "all 1000 found after restart" "$total" 1000
	expect_eq "earlier registrations too" "$(n_devices 4001)" 1
}

t_crud_round_trips_for_each_form
t_token_moves_with_its_device
t_wake_by_extension_reaches_each_device_once
t_dead_tokens_are_pruned
t_dead_alert_token_is_dropped_and_reported
t_fcm_round_trips_for_each_form
t_fcm_dead_token_is_pruned
t_reregistered_device_survives_an_old_410
t_config_mistakes_never_remove_a_device
t_bad_device_token_needs_both_hosts
t_bad_requests_store_nothing
t_registrations_survive_kill_9
stop_gw R
summary
