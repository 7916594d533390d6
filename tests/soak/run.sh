#!/usr/bin/env bash
# `make soak` (not in CI): steady wake load for SOAK_SECONDS (default 600)
# with an upstream fault every 30 s (GOAWAY, dropped connections, a stall,
# a restart, in turn). Proves: every wake ends with a final status, and RSS
# stays flat after warm-up. Prints RSS samples and a summary line.
set -u
cd "$(dirname "$0")/../.."
source tests/integration/lib.sh
SOAK_SECONDS=${SOAK_SECONDS:-600}
WORKERS=${SOAK_WORKERS:-8}

start_sim A
write_config "$WORK/soak.json" A '.limits.wakes_per_second_per_key = 0'
start_gw S "$WORK/soak.json" || exit 1
SIM_PID=${PIDS[0]}
end=$(( $(date +%s) + SOAK_SECONDS ))

worker() { # worker N: wakes in a loop; one status per line into its file
	local n=$1 i=0
	while [ "$(date +%s)" -lt "$end" ]; do
		i=$((i + 1))
		curl -s -m 15 -H "Authorization: Bearer $KEY_WAKE" -H 'Content-Type: application/json' \
			--data-binary "$(wake_body "$(printf '%032x%032x' "$n" "$i")" "soak-$n-$i" '.timeout_ms = 3000')" \
			"http://127.0.0.1:$GW_PORT_S/v1/wake" | jq -r '.results[0].status // "no_answer"' >>"$WORK/soak-$n.txt"
	done
}
workers=()
for w in $(seq 1 "$WORKERS"); do worker "$w" & workers+=($!); done

rss() { awk '/VmRSS/ {print $2}' "/proc/$GW_PID_S/status"; }
fault=0
samples=()
while [ "$(date +%s)" -lt "$end" ]; do
	sleep 10
	samples+=("$(rss)")
	echo "t=$(( SOAK_SECONDS - (end - $(date +%s)) ))s rss=${samples[-1]}kB wakes=$(cat "$WORK"/soak-*.txt 2>/dev/null | wc -l)"
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
wait "${workers[@]}" 2>/dev/null
total=$(cat "$WORK"/soak-*.txt | wc -l)
final=$(cat "$WORK"/soak-*.txt | grep -cE '^(sent|failed|timeout|invalid_token)$')
warm=${samples[2]:-${samples[0]}}
echo "soak: $total wakes, $final with a final status; RSS after warm-up ${warm} kB, at the end ${samples[-1]} kB"
check "every wake ended with a final status" test "$final" -eq "$total"
check "RSS flat after warm-up (within 8 MB)" test $(( ${samples[-1]} - warm )) -lt 8192
stop_gw S
summary
