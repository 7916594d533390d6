#!/usr/bin/env bash
# Stock Linphone-based apps: their Contact dialect registers, the Flexisip
# payload shape reaches APNs and FCM exactly as the golden files say (calls
# and cancels, VoIP, alert and FCM), per-device strings apply to that device
# only, and a remote&voip device rings on its VoIP token and is cancelled on
# its remote token. The app opts in to VoIP cancels (voip_cancel), so the
# VoIP cancel's shape is checked too; FCM's sip-from is the display name,
# else the URI, and a cancel that shows nothing goes at normal priority.
source tests/integration/lib.sh

PROJECT=pushgw-test
EMAIL="pushgw-test@$PROJECT.iam.gserviceaccount.com"
make_certs
start_sim A --sa-pub "$EMAIL=$WORK/certs/sa_pub.pem" --fcm-project "$PROJECT"
bash tests/sim/make-sa.sh "$WORK/certs" "https://127.0.0.1:$SIM_PORT_A/token" "$PROJECT" >/dev/null
write_config "$WORK/lin.json" A '.apps.phone.payload = "linphone" | .apps.phone.strings = {sound: "ring.caf"} | .apps.phone.voip_cancel = true
	| .apps.phone.fcm = {service_account_file: "'"$WORK/certs/service-account.json"'", url: "https://127.0.0.1:'"$SIM_PORT_A"'"}'
start_gw L "$WORK/lin.json" || exit 1
PN="TEAM123456.com.example.phone"

reg() { api L PUT "/v1/extensions/$1/devices/$2" "{\"contact\":\"$3\"}" "$KEY_REG"; }
body_for() { sim_ctl A GET /requests | jq -c --arg t "$1" '[.[] | select(.token == $t)][-1].body | fromjson'; }
hdr_for() { sim_ctl A GET /requests | jq -r --arg t "$1" --arg h "$2" '[.[] | select(.token == $t)][-1].headers[$h]'; }

t_remote_and_voip_device_rings_voip_cancels_remote() {
	begin "a Linphone remote&voip contact rings on VoIP and is cancelled on the remote token"
	local v r; v=$(tok 1600); r=$(tok 1601)
	reg 6001 iphone "<sip:6001@192.0.2.10:5061;transport=tls;pn-provider=apns.dev;pn-param=$PN.remote%26voip;pn-prid=$r:remote%26$v:voip;pn-timeout=0;pn-silent=1>"
	expect_eq "registered" "$STATUS" 201
	sim_ctl A POST /reset >/dev/null
	api L POST /v1/wake '{"extension":"6001","call":{"id":"lin-1@pbx","from":"sip:alice@pbx","from_name":"Alice","data":{"k":"v"}}}'
	expect_eq "wake sent" "$(jqb '.results[0].status')" sent
	expect_eq "as a VoIP push" "$(jqb '.results[0].push_type')" voip
	local b; b=$(body_for "$v")
	expect_eq "VoIP topic" "$(hdr_for "$v" apns-topic)" com.example.phone.voip
	expect_eq "aps.loc-key" "$(jq -r '.aps["loc-key"]' <<<"$b")" IC_MSG
	expect_eq "aps.loc-args" "$(jq -c '.aps["loc-args"]' <<<"$b")" '["Alice"]'
	expect_eq "aps.call-id" "$(jq -r '.aps["call-id"]' <<<"$b")" lin-1@pbx
	expect_eq "aps.uuid is the wake id" "$(jq -r '.aps.uuid' <<<"$b")" "$(jqb .id)"
	check "aps.send-time is 'YYYY-MM-DD HH:MM:SS'" grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$' <<<"$(jq -r '.aps["send-time"]' <<<"$b")"
	expect_eq "from-uri" "$(jq -r '.["from-uri"]' <<<"$b")" sip:alice@pbx
	expect_eq "display-name" "$(jq -r '.["display-name"]' <<<"$b")" Alice
	expect_eq "pn_ttl is a number" "$(jq -r '.pn_ttl | type' <<<"$b")" number
	expect_eq "customPayload" "$(jq -c .customPayload <<<"$b")" '{"k":"v"}'
	expect_eq "nothing went to the remote token" "$(sim_ctl A GET /requests | jq --arg t "$r" '[.[] | select(.token == $t)] | length')" 0
	api L POST /v1/cancel '{"extension":"6001","call":{"id":"lin-1@pbx","from":"sip:alice@pbx","from_name":"Alice"},"reason":"caller_cancelled"}'
	expect_eq "cancel sent" "$(jqb '.results[0].status')" sent
	expect_eq "as an alert push" "$(jqb '.results[0].push_type')" alert
	b=$(body_for "$r")
	expect_eq "to the remote token, alert push type" "$(hdr_for "$r" apns-push-type)" alert
	expect_eq "topic is the bundle id" "$(hdr_for "$r" apns-topic)" com.example.phone
	expect_eq "priority 10" "$(hdr_for "$r" apns-priority)" 10
	expect_eq "shown as a missed call" "$(jq -r '.aps.alert["loc-key"]' <<<"$b")" IC_MISSED
	expect_eq "marked as a cancel" "$(jq -r '[.type, .reason] | join(",")' <<<"$b")" cancel,caller_cancelled
}

t_contact_strings_change_only_that_device() {
	begin "pn-call-str/pn-call-snd change that device's alert, and only that device's"
	local a b; a=$(tok 1610); b=$(tok 1611)
	reg 6002 plain "<sip:6002@192.0.2.11;pn-provider=apns;pn-param=$PN.remote;pn-prid=$a>"
	reg 6002 custom "<sip:6002@192.0.2.12;pn-provider=apns;pn-param=$PN.remote;pn-prid=$b;pn-call-str=IC_SIP_CALL;pn-call-snd=bell.caf>"
	sim_ctl A POST /reset >/dev/null
	api L POST /v1/wake '{"extension":"6002","call":{"id":"lin-2@pbx","from":"sip:bob@pbx"}}'
	expect_eq "two alert pushes" "$(jqb '[.results[] | select(.push_type == "alert" and .status == "sent")] | length')" 2
	local pa pb; pa=$(body_for "$a"); pb=$(body_for "$b")
	expect_eq "plain device: app string" "$(jq -r '.aps.alert["loc-key"]' <<<"$pa")" IC_MSG
	expect_eq "plain device: app sound" "$(jq -r '.aps.sound' <<<"$pa")" ring.caf
	expect_eq "custom device: its string" "$(jq -r '.aps.alert["loc-key"]' <<<"$pb")" IC_SIP_CALL
	expect_eq "custom device: its sound" "$(jq -r '.aps.sound' <<<"$pb")" bell.caf
	expect_eq "alert payload has badge 1" "$(jq -r '.aps.badge' <<<"$pb")" 1
	expect_eq "alert payload has call-id at the top" "$(jq -r '.["call-id"]' <<<"$pb")" lin-2@pbx
}

reqs_for() { sim_ctl A GET /requests | jq -c --arg t "$1" '[.[] | select(.token == $t)]'; }

# golden_match WHAT GOLDEN RECORD UUID_PATH TIME_PATH WAKE_ID: the record's
# body equals tests/golden/GOLDEN.json once its volatile fields are checked
# (uuid = the wake id, send-time a current UTC "YYYY-MM-DD HH:MM:SS") and
# masked with the golden's values.
golden_match() {
	local what="$1" gold="tests/golden/$2.json" body up="$4" tp="$5" wid="$6" st
	body=$(jq -r .body <<<"$3")
	expect_eq "$what: uuid is the wake id" "$(jq -r "$up" <<<"$body")" "$wid"
	st=$(jq -r "$tp" <<<"$body")
	check "$what: send-time '$st' is now, UTC" bash -c '
		grep -Eq "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$" <<<"$1" || exit 1
		d=$(( $(date -u +%s) - $(date -u -d "$1" +%s) )); [ "${d#-}" -le 600 ]' _ "$st"
	local masked
	masked=$(jq -c --slurpfile g "$gold" "$up = (\$g[0] | $up) | $tp = (\$g[0] | $tp)" <<<"$body")
	if jq -e --slurpfile g "$gold" '. == $g[0]' <<<"$masked" >/dev/null; then
		ok
	else
		bad "$what: body differs from $gold:
$(diff <(jq -S . "$gold") <(jq -S . <<<"$masked"))"
	fi
}

# apns_headers WHAT RECORD PUSH_TYPE TOPIC COLLAPSE_ID ("" = none)
apns_headers() {
	expect_eq "$1: apns-push-type" "$(jq -r '.headers["apns-push-type"]' <<<"$2")" "$3"
	expect_eq "$1: apns-topic" "$(jq -r '.headers["apns-topic"]' <<<"$2")" "$4"
	expect_eq "$1: apns-priority" "$(jq -r '.headers["apns-priority"]' <<<"$2")" 10
	expect_eq "$1: apns-collapse-id" "$(jq -r '.headers["apns-collapse-id"] // ""' <<<"$2")" "$5"
	local exp; exp=$(jq -r '.headers["apns-expiration"]' <<<"$2")
	check "$1: apns-expiration is about now + ttl ($exp)" bash -c \
		'd=$(( $1 - $(date +%s) )); [ "$d" -gt 0 ] && [ "$d" -le 30 ]' _ "$exp"
}

t_every_kind_matches_its_golden_file() {
	begin "Linphone profile through the simulator: VoIP, alert and FCM, call and cancel, equal their golden files"
	local v r f="dGVzdDpmY20tdG9rZW4" devs call
	v=$(tok 1620); r=$(tok 1621)
	devs=$(jq -cn --arg v "$v" --arg r "$r" --arg f "$f" '[{provider: "apns", token: $v, app: "phone"},
		{provider: "apns", remote_token: $r, app: "phone"}, {provider: "fcm", token: $f, app: "phone"}]')
	call='{"id":"a84b4c76e66710@pbx","from":"+15551234567","from_name":"Alice","to":"1001","data":{"room":"blue"}}'
	sim_ctl A POST /reset >/dev/null
	api L POST /v1/wake "$(jq -cn --argjson d "$devs" --argjson c "$call" '{devices: $d, call: $c, ttl: 30}')"
	expect_eq "wake: all sent" "$(jqb '[.results[].status] | join(",")')" sent,sent,sent
	expect_eq "wake: push types" "$(jqb '[.results[] | .push_type // "-"] | join(",")')" voip,alert,-
	local wid; wid=$(jqb .id)
	api L POST /v1/cancel "$(jq -cn --argjson d "$devs" --argjson c "$call" '{devices: $d, call: $c, ttl: 30, reason: "caller_cancelled"}')"
	expect_eq "cancel: all sent" "$(jqb '[.results[].status] | join(",")')" sent,sent,sent
	expect_eq "cancel: push types" "$(jqb '[.results[] | .push_type // "-"] | join(",")')" voip,alert,-
	local cid; cid=$(jqb .id)
	local rv ra rf
	rv=$(reqs_for "$v"); ra=$(reqs_for "$r"); rf=$(reqs_for "$f")
	expect_eq "two pushes per device" "$(jq length <<<"$rv"),$(jq length <<<"$ra"),$(jq length <<<"$rf")" 2,2,2

	golden_match "APNs VoIP call" linphone_apns_voip_call "$(jq -c '.[0]' <<<"$rv")" .aps.uuid '.aps["send-time"]' "$wid"
	apns_headers "APNs VoIP call" "$(jq -c '.[0]' <<<"$rv")" voip com.example.phone.voip ""
	golden_match "APNs VoIP cancel" linphone_apns_voip_cancel "$(jq -c '.[1]' <<<"$rv")" .aps.uuid '.aps["send-time"]' "$cid"
	apns_headers "APNs VoIP cancel" "$(jq -c '.[1]' <<<"$rv")" voip com.example.phone.voip ""

	golden_match "APNs alert call" linphone_apns_alert_call "$(jq -c '.[0]' <<<"$ra")" .uuid '.["send-time"]' "$wid"
	apns_headers "APNs alert call" "$(jq -c '.[0]' <<<"$ra")" alert com.example.phone a84b4c76e66710@pbx
	golden_match "APNs alert cancel" linphone_apns_alert_cancel "$(jq -c '.[1]' <<<"$ra")" .uuid '.["send-time"]' "$cid"
	apns_headers "APNs alert cancel" "$(jq -c '.[1]' <<<"$ra")" alert com.example.phone a84b4c76e66710@pbx

	local dp='.message.android.data'
	golden_match "FCM call" linphone_fcm_call "$(jq -c '.[0]' <<<"$rf")" "$dp.uuid" "$dp[\"send-time\"]" "$wid"
	golden_match "FCM cancel" linphone_fcm_cancel "$(jq -c '.[1]' <<<"$rf")" "$dp.uuid" "$dp[\"send-time\"]" "$cid"
	local i rec
	for i in 0 1; do
		rec=$(jq -c ".[$i]" <<<"$rf")
		expect_eq "FCM push $i: kind" "$(jq -r .kind <<<"$rec")" fcm
		expect_eq "FCM push $i: path" "$(jq -r .path <<<"$rec")" "/v1/projects/$PROJECT/messages:send"
		check "FCM push $i: OAuth bearer" grep -q '^Bearer ya29' <<<"$(jq -r .headers.authorization <<<"$rec")"
		expect_eq "FCM push $i: accepted" "$(jq -r .status <<<"$rec")" 200
	done
}

t_fcm_sip_from_and_cancel_priority() {
	begin "Linphone FCM: sip-from is the URI without a display name; an answered-elsewhere cancel is normal priority; both equal their golden files"
	local f="dGVzdDpmY20tdG9rZW4" dev call wid cid rf
	dev=$(jq -cn --arg f "$f" '[{provider: "fcm", token: $f, app: "phone"}]')
	call='{"id":"a84b4c76e66710@pbx","from":"+15551234567","to":"1001","data":{"room":"blue"}}'
	sim_ctl A POST /reset >/dev/null
	api L POST /v1/wake "$(jq -cn --argjson d "$dev" --argjson c "$call" '{devices: $d, call: $c, ttl: 30}')"
	expect_eq "wake without a display name: sent" "$(jqb '.results[0].status')" sent
	wid=$(jqb .id)
	call=$(jq -c '.from_name = "Alice"' <<<"$call")
	api L POST /v1/cancel "$(jq -cn --argjson d "$dev" --argjson c "$call" '{devices: $d, call: $c, ttl: 30, reason: "answered_elsewhere"}')"
	expect_eq "answered-elsewhere cancel: sent" "$(jqb '.results[0].status')" sent
	cid=$(jqb .id)
	rf=$(reqs_for "$f")
	local dp='.message.android.data'
	golden_match "FCM call, no display name" linphone_fcm_call_no_display_name "$(jq -c '.[0]' <<<"$rf")" "$dp.uuid" "$dp[\"send-time\"]" "$wid"
	expect_eq "sip-from is the URI" "$(jq -r '.[0].body | fromjson | .message.android.data["sip-from"]' <<<"$rf")" "+15551234567"
	golden_match "FCM answered-elsewhere cancel" linphone_fcm_cancel_answered_elsewhere "$(jq -c '.[1]' <<<"$rf")" "$dp.uuid" "$dp[\"send-time\"]" "$cid"
	expect_eq "sip-from is the display name" "$(jq -r '.[1].body | fromjson | .message.android.data["sip-from"]' <<<"$rf")" Alice
	expect_eq "priority the simulator received" "$(jq -r '.[1].body | fromjson | .message.android.priority' <<<"$rf")" normal
	expect_eq "both accepted" "$(jq -r '[.[].status] | join(",")' <<<"$rf")" 200,200
}

t_every_kind_matches_its_golden_file
t_fcm_sip_from_and_cancel_priority
t_remote_and_voip_device_rings_voip_cancels_remote
t_contact_strings_change_only_that_device
stop_gw L
summary
