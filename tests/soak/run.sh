#!/usr/bin/env bash
# `make soak` (not in CI): steady wake load for SOAK_SECONDS (default 600)
# with an upstream fault every 30 s (GOAWAY, dropped connections, a stall,
# a restart, in turn), then SOAK_RESTARTS (default 6) rolling restarts of the
# gateway itself under the same load: SIGTERM, drain, exit, start again on
# the same port. Proves: every wake the gateway took ends with a final
# status (during a restart the others are refused: 503 shutting_down or no
# listener), every stop exits 0 (no abort), and RSS stays flat after
# warm-up. Prints RSS samples and a summary line.
set -u
cd "$(dirname "$0")/../.."
source tests/integration/lib.sh
SOAK_SECONDS=${SOAK_SECONDS:-600}
WORKERS=${SOAK_WORKERS:-8}
RESTARTS=${SOAK_RESTARTS:-6}
RESTART_EVERY_S=10

start_sim A
write_config "$WORK/soak.json" A '.limits.wakes_per_second_per_key = 0 | .shutdown_grace_s = 5'
start_gw S "$WORK/soak.json" || exit 1
# restarts come back on the same port, where the workers keep sending
jq ".listen = \"127.0.0.1:$GW_PORT_S\"" "$WORK/soak.json" >"$WORK/soak-fixed.json"
SIM_PID=${PIDS[0]}
faults_end=$(( $(date +%s) + SOAK_SECONDS ))
end=$(( faults_end + RESTARTS * RESTART_EVERY_S + 5 ))

# wake_once N I: one wake; prints its device's final status, or what
# happened instead: refused (no listener: mid-restart), shutting_down (503
# while draining), no_answer (taken, then no final status: a defect).
wake_once() {
	local out rc code
	out=$(curl -s -m 15 -w '\n%{http_code}' -H "Authorization: Bearer $KEY_WAKE" \
		-H 'Content-Type: application/json' \
		--data-binary "$(wake_body "$(printf '%032x%032x' "$1" "$2")" "soak-$1-$2" '.timeout_ms = 3000')" \
		"http://127.0.0.1:$GW_PORT_S/v1/wake")
	rc=$?
	code=${out##*$'\n'}
	if [ "$rc" = 7 ]; then echo refused; return; fi
	if [ "$code" = 503 ] && jq -e '.error.code == "shutting_down"' <<<"${out%$'\n'*}" >/dev/null 2>&1; then
		echo shutting_down; return
	fi
	jq -r '.results[0].status // "no_answer"' <<<"${out%$'\n'*}" 2>/dev/null || echo no_answer
}

worker() { # worker N: wakes in a loop; one outcome per line into its file
	local n=$1 i=0
	while [ "$(date +%s)" -lt "$end" ]; do
		i=$((i + 1))
		wake_once "$n" "$i" >>"$WORK/soak-$n.txt"
	done
}
workers=()
for w in $(seq 1 "$WORKERS"); do worker "$w" & workers+=($!); done

rss() { awk '/VmRSS/ {print $2}' "/proc/$GW_PID_S/status"; }
fault=0
samples=()
while [ "$(date +%s)" -lt "$faults_end" ]; do
	sleep 10
	samples+=("$(rss)")
	echo "t=$(( SOAK_SECONDS - (faults_end - $(date +%s)) ))s rss=${samples[-1]}kB wakes=$(cat "$WORK"/soak-*.txt 2>/dev/null | wc -l)"
	if [ $(( ${#samples[@]} % 3 )) -eq 0 ]; then
		case $((fault % 4)) in
		0) sim_ctl A POST /goaway >/dev/null; echo "fault: GOAWAY" ;;
		1) sim_ctl A POST /drop >/dev/null; echo "fault: connections dropped" ;;
		2) kill -STOP "$SIM_PID"; sleep 4; kill -CONT "$SIM_PID"; echo "fault: APNs stalled 4 s" ;;
		3) kill -9 "$SIM_PID"; wait "$SIM_PID" 2>/dev/null
		   $PUSHSIM --listen "127.0.0.1:$SIM_PORT_A" --control "127.0.0.1:$SIM_CTL_A" \
			--cert "$WORK/certs/server.pem" --key "$WORK/certs/server.key" \
			--team-id TEAM123456 --key-id KEY1234567 --apns-key-pub "$WORK/certs/apns_pub.pem" \
			--bundle-id com.example.phone --record 1000 >/dev/null 2>&1 &
		   SIM_PID=$!; PIDS+=($SIM_PID); echo "fault: APNs restarted" ;;
		esac
		fault=$((fault + 1))
	fi
done
last_rss=${samples[-1]}
warm=${samples[2]:-${samples[0]}}

# Rolling restarts under load: each stop must drain and exit 0 (an abort
# is exit 134), and the next instance takes the port back.
stops_ok=0
for r in $(seq 1 "$RESTARTS"); do
	sleep "$RESTART_EVERY_S"
	before=$(cat "$WORK"/soak-*.txt 2>/dev/null | wc -l)
	stop_gw S
	echo "restart $r: stopped with exit $GW_EXIT (wakes so far: $before)"
	[ "$GW_EXIT" = 0 ] && stops_ok=$((stops_ok + 1))
	start_gw S "$WORK/soak-fixed.json" || break
done
wait "${workers[@]}" 2>/dev/null
total=$(cat "$WORK"/soak-*.txt | wc -l)
final=$(cat "$WORK"/soak-*.txt | grep -cE '^(sent|failed|timeout|invalid_token)$')
refused=$(cat "$WORK"/soak-*.txt | grep -cE '^(refused|shutting_down)$')
echo "soak: $total wakes, $final with a final status, $refused refused during restarts; RSS after warm-up ${warm} kB, before the restarts ${last_rss} kB"
check "every wake the gateway took ended with a final status" test "$final" -eq "$((total - refused))"
check "RSS flat after warm-up (within 8 MB)" test $(( last_rss - warm )) -lt 8192
check "every restart under load stopped cleanly ($stops_ok of $RESTARTS exited 0)" test "$stops_ok" -eq "$RESTARTS"
stop_gw S
summary
