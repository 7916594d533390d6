#!/usr/bin/env bash
# Upstream trust: the system store is read through its hashed directory
# (certificates load as chains need them) or, when the directory is not
# hashed or SSL_CERT_FILE names one, the bundle file; upstream.ca_file adds
# to it. A gateway whose store does not hold the simulator's CA sends
# nothing. Real pushgw against the simulator, no upstream.ca_file but where
# the test says so.
source tests/integration/lib.sh

start_sim A
make_certs
mkdir -p "$WORK/hashed" "$WORK/other" "$WORK/empty"
cp "$WORK/certs/ca.pem" "$WORK/hashed/test-ca.pem"
cp "$WORK/certs/untrusted.pem" "$WORK/other/someone-else.pem"
openssl rehash "$WORK/hashed" "$WORK/other"
write_config "$WORK/sys.json" A 'del(.upstream.ca_file)'

wake_with() { # wake_with NAME TOKEN_NUMBER ENV…: start a gateway under ENV, wake once, stop it
	local name=$1 n=$2; shift 2
	WRAP="env $*" start_gw "$name" "$WORK/sys.json" || { bad "$name did not start"; return; }
	api "$name" POST /v1/wake "$(wake_body "$(tok "$n")" "call-trust-$n")"
	stop_gw "$name"
}

t_hashed_directory() {
	begin "a hashed SSL_CERT_DIR holding the CA is trusted (no bundle file, no ca_file)"
	sim_ctl A POST /reset >/dev/null
	wake_with D 1500 SSL_CERT_DIR="$WORK/hashed" SSL_CERT_FILE="$WORK/empty/none.pem"
	expect_eq "sent" "$(jqb '.results[0].status')" sent
	expect_eq "reached the simulator" "$(sim_ctl A GET /requests | jq 'length')" 1
	expect_eq "stopped cleanly" "$GW_EXIT" 0
}

t_bundle_file() {
	begin "a directory that is not hashed falls back to the bundle file"
	wake_with F 1501 SSL_CERT_DIR="$WORK/empty" SSL_CERT_FILE="$WORK/certs/ca.pem"
	expect_eq "sent" "$(jqb '.results[0].status')" sent
}

t_untrusted_sends_nothing() {
	begin "a store without the CA: connect_error, nothing reaches the simulator"
	sim_ctl A POST /reset >/dev/null
	wake_with U 1502 SSL_CERT_DIR="$WORK/empty" SSL_CERT_FILE="$WORK/empty/none.pem"
	expect_eq "failed" "$(jqb '.results[0].status')" failed
	expect_eq "connect_error" "$(jqb '.results[0].reason')" connect_error
	expect_eq "nothing reached the simulator" "$(sim_ctl A GET /requests | jq 'length')" 0
}

t_ca_file_adds_to_the_system_store() {
	begin "upstream.ca_file adds to a hashed system directory"
	write_config "$WORK/sys.json" A
	wake_with C 1503 SSL_CERT_DIR="$WORK/other"
	expect_eq "sent with ca_file only" "$(jqb '.results[0].status')" sent
}

t_hashed_directory
t_bundle_file
t_untrusted_sends_nothing
t_ca_file_adds_to_the_system_store
summary
