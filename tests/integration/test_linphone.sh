#!/usr/bin/env bash
# Stock Linphone-based apps: their Contact dialect registers, the Flexisip
# payload shape reaches APNs, per-device strings apply to that device only,
# and a remote&voip device rings on its VoIP token and is cancelled on its
# remote token.
source tests/integration/lib.sh

start_sim A
write_config "$WORK/lin.json" A '.apps.phone.payload = "linphone" | .apps.phone.strings = {sound: "ring.caf"}'
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

t_remote_and_voip_device_rings_voip_cancels_remote
t_contact_strings_change_only_that_device
stop_gw L
summary
