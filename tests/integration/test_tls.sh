#!/usr/bin/env bash
# The API over TLS, and mTLS: a PBX without a client certificate from
# tls.client_ca_file cannot call /v1/; probes stay open.
source tests/integration/lib.sh

start_sim A
make_certs
write_config "$WORK/tls.json" A ".tls = {cert_file: \"$WORK/certs/server.pem\", key_file: \"$WORK/certs/server.key\", client_ca_file: \"$WORK/certs/ca.pem\"}"
start_gw T "$WORK/tls.json" || exit 1

https() { # https [curl args…] PATH: sets STATUS, BODY; curl's exit in CURL_RC
	local path="${*: -1}"
	set -- "${@:1:$(($# - 1))}"
	STATUS=$(curl -sS -o "$WORK/body" -w '%{http_code}' --cacert "$WORK/certs/ca.pem" "$@" \
		"https://127.0.0.1:$GW_PORT_T$path" 2>"$WORK/curl.err"); CURL_RC=$?
	BODY=$(cat "$WORK/body" 2>/dev/null)
}

t_mtls_requires_a_client_certificate() {
	begin "mTLS: no client certificate, no API; a valid one works"
	local body; body=$(wake_body "$(tok 1500)")
	https -H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' --data-binary "$body" /v1/wake
	check "without a client certificate the call fails (curl $CURL_RC, HTTP $STATUS)" test "$STATUS" = 000
	https --cert "$WORK/certs/untrusted.pem" --key "$WORK/certs/untrusted.key" \
		-H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' --data-binary "$body" /v1/wake
	check "a certificate from another CA fails too (HTTP $STATUS)" test "$STATUS" = 000
	https --cert "$WORK/certs/client.pem" --key "$WORK/certs/client.key" \
		-H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' --data-binary "$body" /v1/wake
	expect_eq "with the PBX's certificate" "$STATUS" 200
	expect_eq "the wake is sent" "$(jqb '.results[0].status')" sent
	https /healthz
	expect_eq "healthz needs no client certificate" "$STATUS" 200
	https /readyz
	expect_eq "readyz needs no client certificate" "$STATUS" 200
	STATUS=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GW_PORT_T/healthz")
	check "no cleartext on a TLS listener (HTTP $STATUS)" test "$STATUS" != 200
	check "gateway still running" gw_alive T
}

t_mtls_requires_a_client_certificate
stop_gw T
expect_eq "exit status" "$GW_EXIT" 0
summary
