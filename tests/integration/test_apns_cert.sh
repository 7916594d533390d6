#!/usr/bin/env bash
# Certificate-based APNs auth (apps.<name>.apns.cert_file + cert_key_file):
# the TLS client certificate is the credential, no provider JWT is sent; a
# certificate the server does not trust gets no push through. Real pushgw,
# the simulator with --client-ca, real curl.
source tests/integration/lib.sh

make_certs
start_sim C --client-ca "$WORK/certs/ca.pem"
# a client certificate from a CA the simulator does not know
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-keyout "$WORK/certs/stranger.key" -out "$WORK/certs/stranger.pem" -subj "/CN=stranger" \
	-addext "extendedKeyUsage=clientAuth" >/dev/null 2>&1
chmod 600 "$WORK/certs/stranger.key"

cert_app() { # cert_app CERT KEY: jq filter giving app "phone" certificate auth
	echo ".apps.phone.apns = {cert_file: \"$1\", cert_key_file: \"$2\", bundle_id: \"com.example.phone\",
	  environment: \"production\", url: \"https://127.0.0.1:$SIM_PORT_C\"} | del(.apps.other) | del(.api_keys[2])"
}

t_certificate_auth_wakes_without_a_jwt() {
	begin "an app with certificate auth: the push goes out on the client certificate, no JWT"
	write_config "$WORK/cert.json" C "$(cert_app "$WORK/certs/client.pem" "$WORK/certs/client.key")"
	start_gw K "$WORK/cert.json" || { bad "start"; return; }
	sim_ctl C POST /reset >/dev/null
	local t; t=$(tok 800)
	api K POST /v1/wake "$(wake_body "$t" cert-1@pbx)"
	expect_eq "HTTP status" "$STATUS" 200
	expect_eq "sent" "$(jqb '.results[0].status')" sent
	local req; req=$(sim_ctl C GET /requests | jq -c '.[0]')
	expect_eq "APNs accepted it" "$(jq -r .status <<<"$req")" 200
	expect_eq "to the VoIP token" "$(jq -r .path <<<"$req")" "/3/device/$t"
	expect_eq "no authorization header" "$(jq -r '.headers | has("authorization")' <<<"$req")" false
	expect_eq "apns-topic" "$(jq -r '.headers["apns-topic"]' <<<"$req")" com.example.phone.voip
	expect_eq "no JWT seen at all" "$(sim_ctl C GET /stats | jq .distinct_jwts)" 0
	check "the wake is logged as sent" grep -q '"call_id":"cert-1@pbx"' "$WORK/gw-K.log"
	stop_gw K
	expect_eq "exit status" "$GW_EXIT" 0
}

t_untrusted_client_certificate_is_refused() {
	begin "a client certificate APNs does not trust: failed/auth_error, nothing delivered"
	write_config "$WORK/stranger.json" C "$(cert_app "$WORK/certs/stranger.pem" "$WORK/certs/stranger.key")"
	start_gw X "$WORK/stranger.json" || { bad "start"; return; }
	sim_ctl C POST /reset >/dev/null
	api X POST /v1/wake "$(wake_body "$(tok 801)" cert-2@pbx '.timeout_ms = 4000')"
	expect_eq "HTTP status" "$STATUS" 200
	expect_eq "status" "$(jqb '.results[0].status')" failed
	expect_eq "reason" "$(jqb '.results[0].reason')" auth_error
	check "answered at once, not at the timeout ($(jqb '.results[0].latency_ms') ms)" \
		test "$(jqb '.results[0].latency_ms | floor')" -lt 3000
	expect_eq "no request reached APNs" "$(sim_ctl C GET /stats | jq .requests)" 0
	check "the refusal is logged" grep -q 'client certificate' "$WORK/gw-X.log"
	stop_gw X
}

t_certificate_auth_wakes_without_a_jwt
t_untrusted_client_certificate_is_refused
summary
