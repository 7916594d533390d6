#!/usr/bin/env bash
# The command line (SPEC §1): --check, hash-key, --version/--help, exit codes,
# and one-line start-up errors naming the file and the field.
source tests/integration/lib.sh

start_sim A
write_config "$WORK/good.json" A

t_check_accepts_a_good_config() {
	begin "--check accepts a good config"
	local out; out=$($PUSHGW -c "$WORK/good.json" --check 2>&1); local rc=$?
	expect_eq "exit status" "$rc" 0
	check "says ok" grep -q ok <<<"$out"
}

t_check_names_every_problem() {
	begin "--check names the file and field of each problem, exit 1"
	jq '.upstream.connections = 0 | .apps.phone.apns.team_id = "short" | .limits.max_devices_per_wake = "many"' \
		"$WORK/good.json" >"$WORK/bad.json"
	local out; out=$($PUSHGW -c "$WORK/bad.json" --check 2>&1); local rc=$?
	expect_eq "exit status" "$rc" 1
	check "names upstream.connections" grep -q "bad.json: upstream.connections" <<<"$out"
	check "names apps.phone.apns.team_id" grep -q "bad.json: apps.phone.apns.team_id" <<<"$out"
	check "names limits.max_devices_per_wake" grep -q "bad.json: limits.max_devices_per_wake" <<<"$out"
}

t_world_readable_key_is_refused() {
	begin "a world-readable APNs key is refused"
	cp "$WORK/certs/AuthKey_KEY1234567.p8" "$WORK/open.p8"; chmod 644 "$WORK/open.p8"
	jq --arg k "$WORK/open.p8" '.apps.phone.apns.key_file = $k' "$WORK/good.json" >"$WORK/open.json"
	local out; out=$($PUSHGW -c "$WORK/open.json" 2>&1); local rc=$?
	expect_eq "start-up exit status" "$rc" 1
	expect_eq "one line on stderr" "$(wc -l <<<"$out")" 1
	check "names the field ($out)" grep -q "open.json: apps.phone.apns.key_file" <<<"$out"
}

t_open_private_keys_fail_check() {
	begin "--check refuses private keys open to group or others: tls.key_file, cert_key_file, key_file"
	cp "$WORK/certs/server.key" "$WORK/tls-ok.key"; chmod 600 "$WORK/tls-ok.key"
	jq --arg c "$WORK/certs/server.pem" --arg k "$WORK/tls-ok.key" '.tls = {cert_file: $c, key_file: $k}' \
		"$WORK/good.json" >"$WORK/tls-ok.json"
	local out; out=$($PUSHGW -c "$WORK/tls-ok.json" --check 2>&1)
	expect_eq "a TLS key with mode 600 passes ($out)" "$?" 0
	cp "$WORK/certs/server.key" "$WORK/tls-group.key"; chmod 640 "$WORK/tls-group.key"
	jq --arg k "$WORK/tls-group.key" '.tls.key_file = $k' "$WORK/tls-ok.json" >"$WORK/tls-group.json"
	out=$($PUSHGW -c "$WORK/tls-group.json" --check 2>&1)
	expect_eq "group-readable tls.key_file: exit 1" "$?" 1
	check "names the file, the field, the mode and the chmod ($out)" grep -qF \
		"tls-group.json: tls.key_file: $WORK/tls-group.key is readable by its group (mode 0640): run chmod 600 $WORK/tls-group.key" <<<"$out"
	out=$(timeout 30 $PUSHGW -c "$WORK/tls-group.json" 2>&1)
	expect_eq "and the gateway does not start with it" "$?" 1
	cp "$WORK/certs/server.key" "$WORK/apns-cert.key"; chmod 604 "$WORK/apns-cert.key"
	jq --arg c "$WORK/certs/server.pem" --arg k "$WORK/apns-cert.key" \
		'.apps.phone.apns |= (del(.team_id, .key_id, .key_file) | .cert_file = $c | .cert_key_file = $k)' \
		"$WORK/good.json" >"$WORK/apns-cert.json"
	out=$($PUSHGW -c "$WORK/apns-cert.json" --check 2>&1)
	expect_eq "world-readable cert_key_file: exit 1" "$?" 1
	check "names apps.phone.apns.cert_key_file ($out)" grep -qF \
		"apps.phone.apns.cert_key_file: $WORK/apns-cert.key is readable by other users (mode 0604)" <<<"$out"
	chmod 600 "$WORK/apns-cert.key"
	out=$($PUSHGW -c "$WORK/apns-cert.json" --check 2>&1)
	expect_eq "after the chmod it passes ($out)" "$?" 0
	cp "$WORK/certs/AuthKey_KEY1234567.p8" "$WORK/groupw.p8"; chmod 620 "$WORK/groupw.p8"
	jq --arg k "$WORK/groupw.p8" '.apps.phone.apns.key_file = $k' "$WORK/good.json" >"$WORK/groupw.json"
	out=$($PUSHGW -c "$WORK/groupw.json" --check 2>&1)
	expect_eq "group-writable key_file: exit 1" "$?" 1
	check "says group-writable ($out)" grep -qF "apps.phone.apns.key_file: $WORK/groupw.p8 is writable by its group (mode 0620)" <<<"$out"
}

t_hash_key_version_help_and_usage() {
	begin "hash-key, --version, --help and bad command lines"
	expect_eq "hash-key" "$($PUSHGW hash-key test)" "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	check "--version" grep -q '^pushgw [0-9]' <<<"$($PUSHGW --version)"
	check "--help shows usage" grep -q 'hash-key' <<<"$($PUSHGW --help)"
	$PUSHGW --bogus >/dev/null 2>&1; expect_eq "unknown flag exits 2" "$?" 2
	$PUSHGW hash-key >/dev/null 2>&1; expect_eq "hash-key without KEY exits 2" "$?" 2
	$PUSHGW -c >/dev/null 2>&1; expect_eq "-c without FILE exits 2" "$?" 2
	$PUSHGW -c "$WORK/missing.json" >/dev/null 2>&1; expect_eq "missing config exits 1" "$?" 1
}

t_env_overrides_listen() {
	begin "PUSHGW_CONFIG, PUSHGW_LISTEN and PUSHGW_LOG_LEVEL override the file"
	jq '.listen = "127.0.0.1:1"' "$WORK/good.json" >"$WORK/env.json"
	PUSHGW_CONFIG="$WORK/env.json" PUSHGW_LISTEN="127.0.0.1:0" PUSHGW_LOG_LEVEL=warn $WRAP $PUSHGW 2>"$WORK/env.log" &
	local pid=$!; PIDS+=($pid); gw_track env "$pid" "$WORK/env.log"
	sleep 0.5
	check "log level warn hides the info start-up line" bash -c "! grep -q 'pushgw listening' '$WORK/env.log'"
	gw_term_wait $pid; expect_eq "exit status" "$GW_EXIT" 0
	PUSHGW_CONFIG="$WORK/env.json" PUSHGW_LISTEN="127.0.0.1:0" $WRAP $PUSHGW 2>"$WORK/env2.log" &
	pid=$!; PIDS+=($pid); gw_track env2 "$pid" "$WORK/env2.log"
	local i port=""
	for i in $(seq 1 100); do
		port=$(grep -m1 '"pushgw listening"' "$WORK/env2.log" 2>/dev/null | jq -r .addr | sed 's/.*://')
		[ -n "$port" ] && break; sleep 0.05
	done
	check "listening on an ephemeral port, not the file's ($port)" test -n "$port" -a "$port" != 1
	expect_eq "healthz there" "$(curl -s "http://127.0.0.1:$port/healthz")" ok
	gw_term_wait $pid; expect_eq "exit status" "$GW_EXIT" 0
}

t_check_accepts_a_good_config
t_check_names_every_problem
t_world_readable_key_is_refused
t_open_private_keys_fail_check
t_hash_key_version_help_and_usage
t_env_overrides_listen
summary
