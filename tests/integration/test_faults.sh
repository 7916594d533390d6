#!/usr/bin/env bash
# Upstream faults: a stalled APNs (process frozen: TCP open, nothing answered)
# and an APNs restarted mid-load. Every wake ends with a final status within
# its deadline, no token is pushed twice by the new server, and later wakes
# succeed without a gateway restart.
source tests/integration/lib.sh

start_sim A
write_config "$WORK/faults.json" A '.limits.wakes_per_second_per_key = 0'
start_gw F "$WORK/faults.json" || exit 1
SIM_PID=${PIDS[0]}

t_stalled_upstream_times_out_then_recovers() {
	begin "a stalled APNs: wakes end 'timeout' at their deadline; after it wakes up, wakes succeed"
	api F POST /v1/wake "$(wake_body "$(tok 1900)")"
	expect_eq "before: sent" "$(jqb '.results[0].status')" sent
	kill -STOP "$SIM_PID"
	local start; start=$(date +%s%N)
	api F POST /v1/wake "$(wake_body "$(tok 1901)" stall '.timeout_ms = 800')"
	local took=$((($(date +%s%N) - start) / 1000000))
	kill -CONT "$SIM_PID"
	expect_eq "during the stall: timeout" "$(jqb '.results[0].status')" timeout
	check "answered at its deadline, not later (${took} ms for 800)" test "$took" -lt 3000
	api F POST /v1/wake "$(wake_body "$(tok 1902)")"
	expect_eq "after: sent" "$(jqb '.results[0].status')" sent
}

t_restart_mid_load_leaves_no_wake_without_status() {
	begin "APNs restarted mid-load: every wake final, no token pushed twice by the new server"
	local port=$SIM_PORT_A ctl=$SIM_CTL_A i
	sim_ctl A POST '/delay?ms=800' >/dev/null
	for i in $(seq 1 30); do
		curl -sS -o "$WORK/r$i.json" -H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' \
			--data-binary "$(wake_body "$(tok $((3000 + i)))" "r-$i" '.timeout_ms = 8000')" "http://127.0.0.1:$GW_PORT_F/v1/wake" &
	done
	local n=0
	for _ in $(seq 1 200); do
		n=$(sim_ctl A GET /requests | jq '[.[] | select(.outcome == "pending")] | length')
		[ "$n" -ge 20 ] && break; sleep 0.03
	done
	kill -9 "$SIM_PID"; wait "$SIM_PID" 2>/dev/null
	$PUSHSIM --listen "127.0.0.1:$port" --control "127.0.0.1:$ctl" \
		--cert "$WORK/certs/server.pem" --key "$WORK/certs/server.key" \
		--team-id TEAM123456 --key-id KEY1234567 --apns-key-pub "$WORK/certs/apns_pub.pem" \
		--bundle-id com.example.phone >"$WORK/sim-A2.out" 2>"$WORK/sim-A2.err" &
	SIM_PID=$!; PIDS+=($SIM_PID)
	wait_jobs
	local final; final=$(cat "$WORK"/r*.json | jq -r '.results[0].status' | grep -cE '^(sent|failed|timeout|invalid_token)$')
	expect_eq "all 30 wakes have a final status" "$final" 30
	check "most were sent after the restart ($(cat "$WORK"/r*.json | jq -r '.results[0].status' | sort | uniq -c | tr '\n' ' '))" \
		test "$(cat "$WORK"/r*.json | jq -r '.results[0].status' | grep -c '^sent$')" -ge 20
	expect_eq "the new server got each token at most once" \
		"$(sim_ctl A GET /requests | jq '[.[] | select(.outcome == "answered") | .token] | group_by(.) | map(length) | max // 1')" 1
	api F POST /v1/wake "$(wake_body "$(tok 3100)")"
	expect_eq "later wakes succeed" "$(jqb '.results[0].status')" sent
	check "gateway still running" gw_alive F
}

wait_jobs() { local j; for j in $(jobs -p); do case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j";; esac; done; }

t_stalled_upstream_times_out_then_recovers
t_restart_mid_load_leaves_no_wake_without_status
stop_gw F
expect_eq "exit status" "$GW_EXIT" 0
summary
