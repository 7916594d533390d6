#!/usr/bin/env bash
# The SIP section of make bench (docs/sip-edge.md): pushgw's SIP edge in
# front of Kamailio (bench/sip/kamailio.cfg: a plain registrar without
# authentication), the APNs simulator behind it. Runs alone too:
#   bench/sip.sh            (after make all; merges "sip" into bench/results.json)
# Three parts, a few minutes in all:
#   1. pushgw's own share of a call: over BENCH_SIP_CALLS calls, one at a
#      time, INVITE in at pushgw -> push request out to the simulator, and the
#      PBX's 2xx to the woken phone's REGISTER in -> INVITE out to the phone,
#      from a loopback capture (tcpdump: kernel timestamps of the packets).
#   2. BENCH_SIP_BINDINGS bindings (half UDP, asleep; half TCP with their
#      connection open) and BENCH_SIP_HELD held INVITEs: pushgw's RSS and its
#      threads before and after.
#   3. REGISTER throughput, UDP, SIPp offered BENCH_SIP_RATE/s: SIPp ->
#      Kamailio directly and SIPp -> pushgw -> the same Kamailio, alternating,
#      3 rounds, medians.
# Knobs: BENCH_SIP_CALLS (300), BENCH_SIP_BINDINGS (10000), BENCH_SIP_HELD
# (1000), BENCH_SIP_RATE (10000), BENCH_SIP_SECONDS (3, per throughput run),
# BENCH_SIP_LOG (pushgw's log level, info), BENCH_SIP_OUT (write the "sip"
# object there instead of merging it into BENCH_OUT), BENCH_KEEP=1.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CACHE=bench/.cache
OUT=${BENCH_OUT:-bench/results.json}
CALLS=${BENCH_SIP_CALLS:-300}
BINDINGS=${BENCH_SIP_BINDINGS:-10000}
HELD=${BENCH_SIP_HELD:-1000}
RATE=${BENCH_SIP_RATE:-10000}
SECS=${BENCH_SIP_SECONDS:-3}
LOG_LEVEL=${BENCH_SIP_LOG:-info}
PARTS=${BENCH_SIP_PARTS:-calls scale relay} # a subset for development; results need all three
ROUNDS=3
TEAM=TEAM123456
KID=KEY1234567
BUNDLE=com.example.phone
T_START=$(date +%s)

say() { printf '[bench sip %3ds] %s\n' $(($(date +%s) - T_START)) "$*" >&2; }
die() { echo "bench sip: $*" >&2; exit 1; }

[ -x "$BUILD/pushgw" ] && [ -x "$BUILD/pushsim" ] || die "build first: make all"
missing=()
for tp in kamailio:kamailio sipp:sip-tester tcpdump:tcpdump jq:jq curl:curl python3:python3; do
	command -v "${tp%%:*}" >/dev/null || missing+=("${tp#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing: ${missing[*]} (apt-get install ${missing[*]})"
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
		{ apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; } ||
		die "cannot install ${missing[*]}"
fi
# 5,000 open connections, on both ends
[ "$(ulimit -n)" -ge $((BINDINGS + 1024)) ] || ulimit -n $((BINDINGS + 1024)) 2>/dev/null ||
	die "ulimit -n $(ulimit -n) is below $((BINDINGS + 1024))"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pushgw-bench-sip.XXXXXX")
R=$WORK/results
mkdir -p "$R" "$CACHE"
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench sip: work files kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
cp "$BUILD/pushgw" "$BUILD/pushsim" "$WORK/"
PUSHGW=$WORK/pushgw
PUSHSIM=$WORK/pushsim
LOAD="python3 bench/sip/load.py"

# ---- processes ----

free_port() { # free_port udp|tcp
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		[ -z "$(ss -Hln"${1:0:1}" "sport = :$p" 2>/dev/null)" ] && { echo "$p"; return; }
	done
	die "no free port"
}
stop() { # stop PID: TERM, wait, forget
	local pid=$1 p keep=()
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
threads() { ls "/proc/$1/task" | wc -l; }

CERTS=$CACHE/certs
bash tests/sim/gen-certs.sh "$CERTS" >/dev/null
CERTS=$(cd "$CERTS" && pwd)

start_sim() {
	$PUSHSIM --listen 127.0.0.1:0 --control 127.0.0.1:0 --cert "$CERTS/server.pem" \
		--key "$CERTS/server.key" --team-id $TEAM --key-id $KID \
		--apns-key-pub "$CERTS/apns_pub.pem" --bundle-id $BUNDLE >"$WORK/sim.out" 2>"$WORK/sim.err" &
	SIM_PID=$!
	PIDS+=("$SIM_PID")
	for _ in $(seq 1 100); do grep -q control "$WORK/sim.out" 2>/dev/null && break; sleep 0.05; done
	SIM_PORT=$(jq .listen "$WORK/sim.out")
	SIM_CTL=$(jq .control "$WORK/sim.out")
	[ -n "$SIM_PORT" ] || die "the simulator did not start: $(cat "$WORK/sim.err")"
}

start_kamailio() {
	KAM_PORT=$(free_port udp)
	mkdir -p "$WORK/kam"
	kamailio -f bench/sip/kamailio.cfg -DD -E -m 256 -M 16 -Y "$WORK/kam" -P "$WORK/kam/kamailio.pid" \
		-A "SIP_LISTEN=udp:127.0.0.1:$KAM_PORT" >"$WORK/kamailio.log" 2>&1 &
	KAM_PID=$!
	PIDS+=("$KAM_PID")
	for _ in $(seq 1 50); do
		[ -n "$(ss -Hlnu "sport = :$KAM_PORT")" ] && sleep 0.2 && kill -0 "$KAM_PID" 2>/dev/null && return
		sleep 0.1
	done
	tail -n 20 "$WORK/kamailio.log" >&2
	die "Kamailio did not start"
}

# start_gw NAME: pushgw with a SIP edge in front of Kamailio, pushing to the
# simulator, its own registry file; sets GW_PID GW_PORT SIP_UDP SIP_TCP GW_LOG
start_gw() {
	local name=$1 line
	GW_PORT=$(free_port tcp)
	SIP_UDP=$(free_port udp)
	SIP_TCP=$(free_port tcp)
	GW_LOG=$WORK/gw-$name.log
	jq -n --arg certs "$CERTS" --arg sim "$SIM_PORT" --arg lvl "$LOG_LEVEL" --arg api "$GW_PORT" \
		--arg db "$WORK/gw-$name.db" --arg kam "$KAM_PORT" --arg u "$SIP_UDP" --arg t "$SIP_TCP" \
		--arg team $TEAM --arg kid $KID --arg b $BUNDLE '{
	  listen: ("127.0.0.1:" + $api),
	  api_keys: [],
	  apps: {phone: {apns: {team_id: $team, key_id: $kid, key_file: ($certs + "/AuthKey_" + $kid + ".p8"),
	                        bundle_id: $b, environment: "production", url: ("https://127.0.0.1:" + $sim)}}},
	  upstream: {ca_file: ($certs + "/ca.pem"), connections: 2},
	  registry: {path: $db},
	  log: {level: $lvl},
	  sip: {listen: ["udp:127.0.0.1:" + $u, "tcp:127.0.0.1:" + $t], public_host: "127.0.0.1",
	        backend: ("sip:127.0.0.1:" + $kam + ";transport=udp"), app: "phone", ring_timeout_s: 120}
	}' >"$WORK/gw-$name.json"
	env -u SSL_CERT_FILE $PUSHGW -c "$WORK/gw-$name.json" 2>"$GW_LOG" &
	GW_PID=$!
	PIDS+=("$GW_PID")
	for _ in $(seq 1 100); do
		line=$(grep -m1 '"sip listening"' "$GW_LOG" 2>/dev/null) && break
		kill -0 "$GW_PID" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "${line:-}" ] || { cat "$GW_LOG" >&2; die "pushgw ($name) did not start its SIP edge"; }
}
metric() { curl -s "http://127.0.0.1:$GW_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

start_sim
start_kamailio

part() { [[ " $PARTS " == *" $1 "* ]]; }

# ================= 1. pushgw's share of a call =================
if part calls; then

say "1/3 $CALLS calls, one at a time: INVITE in -> push out, REGISTER 2xx in -> INVITE out (loopback capture)"
start_gw calls
tcpdump -i lo -s 0 -B 16384 -U -w "$WORK/calls.pcap" \
	"udp port $KAM_PORT or tcp port $SIP_TCP or tcp port $SIM_PORT" 2>"$WORK/tcpdump.err" &
TCPDUMP_PID=$!
PIDS+=("$TCPDUMP_PID")
for _ in $(seq 1 50); do grep -q listening "$WORK/tcpdump.err" 2>/dev/null && break; sleep 0.1; done
$LOAD calls --tcp-port "$SIP_TCP" --pbx-port "$KAM_PORT" -n "$CALLS" --out "$WORK/calls.jsonl" \
	>"$R/calls_run.json" 2>"$WORK/calls.err" || say "some calls failed: $(cat "$R/calls_run.json" "$WORK/calls.err" | tail -3)"
sleep 0.5
kill -INT "$TCPDUMP_PID" 2>/dev/null || true
wait "$TCPDUMP_PID" 2>/dev/null || true
PIDS=("${PIDS[@]/$TCPDUMP_PID}")
grep -q ' 0 packets dropped by kernel' "$WORK/tcpdump.err" || say "tcpdump: $(grep dropped "$WORK/tcpdump.err" | tr '\n' ' ')"
$LOAD analyze --pcap "$WORK/calls.pcap" --calls "$WORK/calls.jsonl" --pbx-port "$KAM_PORT" \
	--sip-udp "$SIP_UDP" --sip-tcp "$SIP_TCP" --sim-port "$SIM_PORT" --per-call "$WORK/per_call.json" \
	>"$R/calls.json" || die "analyze failed"
jq -s '.[0] + {run: .[1], pushes_at_simulator: .[2]}' "$R/calls.json" "$R/calls_run.json" \
	<(curl -s "http://127.0.0.1:$SIM_CTL/stats" | jq '.requests // null') >"$R/calls.tmp" && mv "$R/calls.tmp" "$R/calls.json"
stop "$GW_PID"
fi

# ================= 2. bindings and held INVITEs =================
if part scale; then

say "2/3 $BINDINGS bindings (half TCP, open), then $HELD held INVITEs: RSS and threads"
start_gw scale
sleep 1
RSS0=$(rss_kb "$GW_PID"); THR0=$(threads "$GW_PID")
$LOAD scale --udp-port "$SIP_UDP" --tcp-port "$SIP_TCP" --pbx-port "$KAM_PORT" \
	--udp $((BINDINGS / 2)) --tcp $((BINDINGS - BINDINGS / 2)) --invites "$HELD" \
	--stop-file "$WORK/scale.stop" >"$WORK/scale.out" 2>"$WORK/scale.err" &
SCALE_PID=$!
PIDS+=("$SCALE_PID")
for _ in $(seq 1 1200); do grep -q '"registered"' "$WORK/scale.out" 2>/dev/null && break; kill -0 "$SCALE_PID" 2>/dev/null || break; sleep 0.1; done
grep -q '"registered"' "$WORK/scale.out" || die "registering the bindings failed: $(cat "$WORK/scale.err")"
sleep 0.5
BOUND=$(metric pushgw_sip_bindings)
RSS1=$(rss_kb "$GW_PID"); THR1=$(threads "$GW_PID")
for _ in $(seq 1 300); do grep -q '"invites_sent"' "$WORK/scale.out" && break; sleep 0.1; done
HELD_NOW=0
for _ in $(seq 1 100); do
	HELD_NOW=$(metric pushgw_sip_held_invites)
	[ "${HELD_NOW%.*}" -ge "$HELD" ] && break
	sleep 0.1
done
sleep 1
HELD_NOW=$(metric pushgw_sip_held_invites)
RSS2=$(rss_kb "$GW_PID"); THR2=$(threads "$GW_PID"); HWM=$(hwm_kb "$GW_PID")
TCP_OPEN=$(ss -Htn state established "sport = :$SIP_TCP" | wc -l)
THREAD_NAMES=$(for t in /proc/"$GW_PID"/task/*; do cat "$t/comm"; done | sort | uniq -c | awk '{printf "%s%s x%d", (NR > 1 ? ", " : ""), $2, $1}')
touch "$WORK/scale.stop"
wait "$SCALE_PID" 2>/dev/null || true
PIDS=("${PIDS[@]/$SCALE_PID}")
jq -n --slurpfile reg <(grep '"registered"' "$WORK/scale.out") \
	--slurpfile inv <(grep '"invites_sent"' "$WORK/scale.out" || echo null) \
	--argjson rss0 "$RSS0" --argjson rss1 "$RSS1" --argjson rss2 "$RSS2" --argjson hwm "$HWM" \
	--argjson t0 "$THR0" --argjson t1 "$THR1" --argjson t2 "$THR2" --argjson bound "${BOUND%.*}" \
	--argjson held "${HELD_NOW%.*}" --argjson tcp "$TCP_OPEN" --arg names "$THREAD_NAMES" '{
	  bindings_registered: $reg[0].ok, registrations_failed: $reg[0].failed,
	  registration_seconds: $reg[0].seconds, registrations_per_s: $reg[0].per_s,
	  bindings_gauge: $bound, tcp_flows_open: $tcp, held_invites_gauge: $held,
	  invites: $inv[0],
	  rss_kb: {start: $rss0, bindings: $rss1, bindings_and_held: $rss2, peak: $hwm},
	  threads: {start: $t0, bindings: $t1, bindings_and_held: $t2, names: $names}}' >"$R/scale.json"
stop "$GW_PID"
fi

# ================= 3. REGISTER throughput =================
if part relay; then

say "3/3 REGISTER throughput, UDP, SIPp offered $RATE/s for $SECS s: Kamailio directly and through pushgw, $ROUNDS rounds"
start_gw relay
USERS=$((RATE))
[ "$USERS" -le 15000 ] || USERS=15000
for side in direct relay; do
	{
		echo SEQUENTIAL
		for ((i = 0; i < USERS; i++)); do
			printf '%s%05d;%064x;00000000-0000-4000-b000-%012d\n' "${side:0:1}" "$i" $((0xe0000 + i)) "$i"
		done
	} >"$WORK/users-$side.csv"
done
# run_sipp NAME PORT SIDE SECONDS: one open-loop run; $R/NAME.json. The rate
# is the successful REGISTERs over the span from the first one sent to the
# last answer (SIPp's per-call response-time trace, ms since its start).
run_sipp() {
	local name=$1 port=$2 side=$3 secs=$4
	mkdir -p "$WORK/$name"
	(cd "$WORK/$name" && sipp "127.0.0.1:$port" -sf "$OLDPWD/bench/sip/register.xml" \
		-inf "$WORK/users-$side.csv" -i 127.0.0.1 -p "$(free_port udp)" -r "$RATE" -m $((RATE * secs)) \
		-l 2000 -nostdin -timeout $((secs + 30))s -max_retrans 3 -trace_rtt -rtt_freq 1 \
		-trace_stat -stf stat.csv >sipp.out 2>&1) || true
	awk -F';' -v offered="$RATE" '
	FNR == 1 { next }
	FILENAME ~ /rtt/ { n++; s = $1 - $2; if (first == "" || s < first) first = s; if ($1 > last) last = $1; next }
	{ final = $0 }
	END { split(final, f, ";"); failed = f[18] + 0
	      span = (last - first) / 1000
	      printf "{\"offered_per_s\":%d,\"successful\":%d,\"failed\":%d,\"span_s\":%.3f,\"per_s\":%.0f}\n",
	             offered, n, failed, span, (span > 0 ? n / span : 0) }' "$WORK/$name"/*_rtt.csv "$WORK/$name/stat.csv" >"$R/$name.json"
}
run_sipp warm_direct "$KAM_PORT" direct 1
run_sipp warm_relay "$SIP_UDP" relay 1
for round in $(seq 1 $ROUNDS); do
	run_sipp "round${round}_direct" "$KAM_PORT" direct "$SECS"
	if [ "$round" = 1 ] && [ "${BENCH_SIP_PERF:-0}" = 1 ]; then
		# BENCH_SIP_PERF=1: a perf profile of pushgw relaying, into $CACHE/sip-profile.txt
		perf record -F 999 -g -p "$GW_PID" -o "$WORK/perf.data" -- sleep "$SECS" >/dev/null 2>&1 &
		PERF_PID=$!
	fi
	run_sipp "round${round}_relay" "$SIP_UDP" relay "$SECS"
	if [ -n "${PERF_PID:-}" ]; then
		wait "$PERF_PID" || true
		PERF_PID=
		perf report -i "$WORK/perf.data" --no-children --sort comm,dso,symbol --stdio 2>/dev/null |
			grep -E '^ +[0-9]' | head -60 >"$CACHE/sip-profile.txt" || true
	fi
done
for side in direct relay; do
	cat "$R"/round[0-9]*_"$side".json | jq -s --arg s "$side" '{($s): .}'
done | jq -s 'add' >"$R/throughput.json"
RELAY_THREADS=$(threads "$GW_PID")
stop "$GW_PID"
fi
[ "$PARTS" = "calls scale relay" ] || { for f in "$R"/*.json; do echo "== $f"; cat "$f"; done; exit 0; }
stop "$KAM_PID"
stop "$SIM_PID"

# ================= results =================

jq -n --slurpfile calls "$R/calls.json" --slurpfile scale "$R/scale.json" --slurpfile tp "$R/throughput.json" \
	--arg load_before "$LOAD_BEFORE" --arg load_after "$(cut -d' ' -f1-3 /proc/loadavg)" \
	--arg kam "$(kamailio -v 2>/dev/null | head -1 | awk '{print $3}')" \
	--arg sipp "$(sipp -v 2>&1 | grep -o 'v[0-9][^ ]*' | head -1)" --arg lvl "$LOG_LEVEL" \
	--argjson rate "$RATE" --argjson secs "$SECS" --argjson relay_threads "$RELAY_THREADS" \
	--argjson elapsed $(($(date +%s) - T_START)) '
	def median: sort | .[(length / 2 | floor)];
	def ms: if . == null then null else (. / 10 | round / 100) end;
	($tp[0].direct | map(.per_s) | median) as $d | ($tp[0].relay | map(.per_s) | median) as $r |
	{
	  setup: {pbx: "Kamailio \($kam), bench/sip/kamailio.cfg: registrar + proxy, no authentication, 2 children",
	          sipp: $sipp, pushgw_log_level: $lvl, simulator: "pushsim (APNs)",
	          load_average_before: $load_before, load_average_after: $load_after, elapsed_s: $elapsed},
	  call_path: ($calls[0] + {note: "loopback capture (tcpdump), one call at a time; the phone re-registers over TCP 20 ms after the INVITE, answers 486",
	                           target_p99_ms: 1,
	                           invite_to_push_ms: ($calls[0].invite_in_to_push_out | {p50: (.p50_us | ms), p99: (.p99_us | ms), max: (.max_us | ms)}),
	                           register_2xx_to_invite_ms: ($calls[0].register_2xx_in_to_invite_out | {p50: (.p50_us | ms), p99: (.p99_us | ms), max: (.max_us | ms)}),
	                           of_which_durable_store_ms: ($calls[0].of_which_store_then_2xx_out | {p50: (.p50_us | ms), p99: (.p99_us | ms), max: (.max_us | ms)}),
	                           of_which_after_the_2xx_ms: ($calls[0].of_which_2xx_out_to_invite_out | {p50: (.p50_us | ms), p99: (.p99_us | ms), max: (.max_us | ms)})}),
	  scale: ($scale[0] + {target_rss_mb: 128}),
	  register_throughput: {
	    transport: "udp", offered_per_s: $rate, seconds_per_run: $secs,
	    rounds: $tp[0],
	    direct_per_s_median: $d, through_pushgw_per_s_median: $r,
	    ratio: (if $d > 0 then ($r / $d * 100 | round / 100) else null end),
	    target_ratio: 0.5, pushgw_threads: $relay_threads}
	}' >"$R/sip.json"

if [ -n "${BENCH_SIP_OUT:-}" ]; then
	cp "$R/sip.json" "$BENCH_SIP_OUT"
elif [ -s "$OUT" ]; then
	jq --slurpfile sip "$R/sip.json" '.sip = $sip[0]' "$OUT" >"$R/merged.json" && cp "$R/merged.json" "$OUT"
else
	jq '{sip: .}' "$R/sip.json" >"$OUT"
fi

jq -r '
def n: if . == null then "-" else (round | tostring | if length > 3 then .[:-3] + "," + .[-3:] else . end) end;
def f(d): if . == null then "-" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
def met(c): if c then "met" else "NOT met" end;
. as $s |
[
 "| SIP figure | Value | Target |",
 "|---|---:|---|",
 "| INVITE in -> push out, p50 / p99 / max (\(.call_path.measured) calls) | \(.call_path.invite_to_push_ms.p50 | f(2)) / \(.call_path.invite_to_push_ms.p99 | f(2)) / \(.call_path.invite_to_push_ms.max | f(2)) ms | p99 < 1 ms: \(met(.call_path.invite_to_push_ms.p99 < 1)) |",
 "| woken REGISTER 2xx in -> INVITE out, p50 / p99 / max | \(.call_path.register_2xx_to_invite_ms.p50 | f(2)) / \(.call_path.register_2xx_to_invite_ms.p99 | f(2)) / \(.call_path.register_2xx_to_invite_ms.max | f(2)) ms | p99 < 1 ms: \(met(.call_path.register_2xx_to_invite_ms.p99 < 1)) |",
 "| of which: binding stored (fsync) until the 2xx goes to the phone; that 2xx -> INVITE out | \(.call_path.of_which_durable_store_ms.p50 | f(2)) / \(.call_path.of_which_durable_store_ms.p99 | f(2)) / \(.call_path.of_which_durable_store_ms.max | f(2)) ms; \(.call_path.of_which_after_the_2xx_ms.p50 | f(2)) / \(.call_path.of_which_after_the_2xx_ms.p99 | f(2)) / \(.call_path.of_which_after_the_2xx_ms.max | f(2)) ms | |",
 "| \(.scale.bindings_registered | n) bindings (\(.scale.tcp_flows_open | n) TCP flows open), \(.scale.held_invites_gauge | n) held INVITEs: RSS | \(.scale.rss_kb.bindings_and_held / 1024 | f(1)) MB (start \(.scale.rss_kb.start / 1024 | f(1)), bindings \(.scale.rss_kb.bindings / 1024 | f(1)), peak \(.scale.rss_kb.peak / 1024 | f(1))) | < 128 MB: \(met(.scale.rss_kb.peak < 131072)) |",
 "| threads: start / bindings / + held INVITEs | \(.scale.threads.start) / \(.scale.threads.bindings) / \(.scale.threads.bindings_and_held) | none per binding or call: \(met(.scale.threads.bindings_and_held == .scale.threads.start)) |",
 "| REGISTERs/s, offered \(.register_throughput.offered_per_s | n)/s: Kamailio directly (rounds) | \(.register_throughput.direct_per_s_median | n) (\(.register_throughput.rounds.direct | map(.per_s | n) | join(" / "))) | |",
 "| REGISTERs/s through pushgw (rounds) | \(.register_throughput.through_pushgw_per_s_median | n) (\(.register_throughput.rounds.relay | map(.per_s | n) | join(" / "))) | |",
 "| through pushgw / directly (medians) | \(.register_throughput.ratio) | >= 0.5: \(met(.register_throughput.ratio >= 0.5)) |",
 "",
 "Load average \(.setup.load_average_before) before, \(.setup.load_average_after) after; \(.setup.elapsed_s) s"
] | .[]' "$R/sip.json"
say "wrote the sip results"
