#!/usr/bin/env bash
# Lifecycle: SIGHUP reload (key rotation without reconnecting or re-signing;
# a broken config is refused and the old one keeps serving) and SIGTERM drain
# (in-flight wakes finish, new ones get 503, exit 0).
source tests/integration/lib.sh

start_sim A
write_config "$WORK/life.json" A
start_gw H "$WORK/life.json" || exit 1

wait_log() { # wait_log PATTERN: until the gateway log has it (5 s)
	local i; for i in $(seq 1 100); do grep -q "$1" "$WORK/gw-H.log" && return 0; sleep 0.05; done; return 1
}

t_reload_rotates_keys_without_reconnecting() {
	begin "SIGHUP rotates an API key; old key 401, new key works, no reconnect, same JWT"
	api H POST /v1/wake "$(wake_body "$(tok 1300)")"
	expect_eq "warm-up wake" "$(jqb '.results[0].status')" sent
	local jwt_before; jwt_before=$(sim_ctl A GET /requests | jq -r '.[-1].headers.authorization')
	sim_ctl A POST /reset >/dev/null
	local new_key="rotated-key-$(tok 77 | cut -c1-12)"
	jq --arg h "$($PUSHGW hash-key "$new_key")" '.api_keys[0].key = $h' "$WORK/life.json" >"$WORK/life.new"
	mv "$WORK/life.new" "$WORK/life.json"
	kill -HUP "$GW_PID_H"
	check "reload logged" wait_log '"config reloaded"'
	api H POST /v1/wake "$(wake_body "$(tok 1301)")"
	expect_eq "old key refused" "$STATUS" 401
	api H POST /v1/wake "$(wake_body "$(tok 1302)")" "$new_key"
	expect_eq "new key accepted" "$STATUS" 200
	expect_eq "and the push sent" "$(jqb '.results[0].status')" sent
	local stats; stats=$(sim_ctl A GET /stats)
	expect_eq "no new TLS handshake upstream" "$(jq .handshakes <<<"$stats")" 0
	expect_eq "the same provider token" "$(sim_ctl A GET /requests | jq -r '.[-1].headers.authorization')" "$jwt_before"
	KEY_WAKE=$new_key
}

t_broken_reload_keeps_the_old_config() {
	begin "a broken config on SIGHUP is refused with a log line; the old one keeps serving"
	cp "$WORK/life.json" "$WORK/life.good"
	jq '.upstream.connections = "many"' "$WORK/life.good" >"$WORK/life.json"
	kill -HUP "$GW_PID_H"
	check "refusal logged, naming the field" wait_log 'reload refused.*upstream.connections'
	api H POST /v1/wake "$(wake_body "$(tok 1303)")"
	expect_eq "still serving with the old config" "$(jqb '.results[0].status')" sent
	cp "$WORK/life.good" "$WORK/life.json"
}

t_sigterm_drains_in_flight_wakes() {
	begin "SIGTERM: in-flight wakes complete, new ones get 503, exit 0"
	sim_ctl A POST '/delay?ms=1200' >/dev/null
	local i
	for i in 1 2 3 4 5; do
		curl -sS -o "$WORK/d$i.json" -H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' \
			--data-binary "$(wake_body "$(tok $((1400 + i)))" "d-$i")" "http://127.0.0.1:$GW_PORT_H/v1/wake" &
	done
	local n=0
	for _ in $(seq 1 100); do
		n=$(sim_ctl A GET /requests | jq '[.[] | select(.outcome == "pending")] | length')
		[ "$n" -ge 5 ] && break; sleep 0.03
	done
	kill -TERM "$GW_PID_H"
	sleep 0.2
	api H POST /v1/wake "$(wake_body "$(tok 1410)")"
	expect_eq "a new wake during the drain" "$STATUS" 503
	expect_eq "code" "$(jqb .error.code)" shutting_down
	check "the answer closes the connection (the client reconnects elsewhere)" \
		grep -qi '^connection: close' <<<"$HEADERS"
	api H GET /readyz "" ""
	expect_eq "readyz during the drain" "$STATUS" 503
	wait_jobs
	local sent; sent=$(cat "$WORK"/d*.json | jq -r '.results[0].status' | grep -c '^sent$')
	expect_eq "all five in-flight wakes finished sent" "$sent" 5
	gw_term_wait "$GW_PID_H"; expect_eq "exit status" "$GW_EXIT" 0
	sim_ctl A POST '/delay?ms=0' >/dev/null
}

wait_jobs() { local j; for j in $(jobs -p); do case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j";; esac; done; }

t_second_gateway_on_the_same_port_is_refused() {
	begin "a second gateway on a port in use exits 1 instead of sharing it"
	write_config "$WORK/twin.json" A ".listen = \"127.0.0.1:$GW_PORT_H\""
	local rc=0
	timeout 10 $PUSHGW -c "$WORK/twin.json" 2>"$WORK/twin.err" || rc=$? # 124: it served
	expect_eq "exit status" "$rc" 1
	check "the reason names listen" grep -q "listen: cannot listen on 127.0.0.1:$GW_PORT_H" "$WORK/twin.err"
	api H POST /v1/wake "$(wake_body "$(tok 1310)")"
	expect_eq "the first one still serves" "$(jqb '.results[0].status')" sent
}

t_second_gateway_on_the_same_port_is_refused
t_reload_rotates_keys_without_reconnecting
t_broken_reload_keeps_the_old_config
t_sigterm_drains_in_flight_wakes
summary
