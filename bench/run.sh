#!/usr/bin/env bash
# make bench: pushgw side by side with its two ceilings and a Node.js peer on
# this machine (load generators, sink and gateway share the cores), plus
# resources, the registry at scale and, with BENCH_PROFILE=1, a perf profile
# of the saturation case. Prints a table and writes bench/results.json.
# Not part of `make test`; bounded to a few minutes (the first run also fills
# the registry file under bench/.cache/, reused afterwards).
#
# Knobs (environment): BENCH_SECONDS (per measured run, default 6),
# BENCH_REGISTRY_DEVICES (default 1000000; 0 skips), BENCH_REGISTRY_API=0 (skip
# the SQLite-vs-PostgreSQL registry through the API), BENCH_PEER=0 (skip the
# Node peer), BENCH_PROFILE=1 (perf profile into bench/.cache/profile.txt),
# BENCH_OUT (results file, default bench/results.json), BENCH_KEEP=1 (keep the
# work directory with every raw output), BENCH_SIP=0 (skip the SIP section,
# bench/sip.sh, which has knobs of its own).
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CACHE=bench/.cache
OUT=${BENCH_OUT:-bench/results.json}
SECS=${BENCH_SECONDS:-6}
REG_N=${BENCH_REGISTRY_DEVICES:-1000000}
PEER=${BENCH_PEER:-1}
PROFILE=${BENCH_PROFILE:-0}
SIP=${BENCH_SIP:-1}
REG_API=${BENCH_REGISTRY_API:-1}
WAKE_EXTS=1000        # extensions (2 devices each) for wakes by extension
REGISTRY_URL=         # set: pushgw's registry is this PostgreSQL database
CONNS=32              # wrk -t2 -c32, as in the issue
KEY="bench-key-$(printf '%016x' 48879)"
TEAM=TEAM123456
KID=KEY1234567
BUNDLE=com.example.phone
PEER_PKG="@parse/node-apn"
PEER_VER=8.1.0
CC=${CC:-cc}
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -O2 -g -Iinclude"
PKGS=$(sed -n 's/^PKGS *:= *//p' Makefile) # the libraries the gateway objects need
TICK=$(getconf CLK_TCK)
T_START=$(date +%s)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pushgw-bench.XXXXXX")
R=$WORK/results # one small JSON file per figure
mkdir -p "$R" "$CACHE"
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: work files kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

say() { printf '[bench %3ds] %s\n' $(($(date +%s) - T_START)) "$*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

# The tools, from Debian: installed here when missing (as root), like make deps.
missing=()
for tp in wrk:wrk h2load:nghttp2-client nghttpd:nghttp2-server jq:jq curl:curl; do
	command -v "${tp%%:*}" >/dev/null || missing+=("${tp#*:}")
done
if [ "$PEER" = 1 ]; then
	command -v node >/dev/null || missing+=(nodejs)
	command -v npm >/dev/null || missing+=(npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing: ${missing[*]} (apt-get install ${missing[*]})"
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
		{ apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; } ||
		die "cannot install ${missing[*]}"
fi
# Anything else running skews every figure: say so in the results.
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$LOAD_BEFORE" 'BEGIN { exit !(l > 1.0) }' &&
	say "warning: load average $LOAD_BEFORE before the run; other processes will share the cores"
[ -x "$BUILD/pushgw" ] && [ -x "$BUILD/pushsim" ] || die "build first: make all"

# ---- processes ----

# A free loopback port below the ephemeral range, so no client socket takes it.
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		[ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] && { echo "$p"; return; }
	done
	die "no free port"
}

wait_http() { # wait_http URL: until it answers at all
	for _ in $(seq 1 200); do
		curl -s -o /dev/null "$1" && return 0
		sleep 0.05
	done
	return 1
}

stop() { # stop PID: TERM, wait, and forget it
	local pid=$1 p keep=()
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Per-thread CPU ticks of the given processes: "pid/tid comm ticks" lines.
thread_ticks() {
	local p t
	for p in "$@"; do
		for t in /proc/"$p"/task/*; do
			echo "$p/${t##*/} $(tr ' ' _ <"$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
		done
	done 2>/dev/null
}

# Highest RSS of PID while the sampler runs; stop it with kill.
rss_sampler() {
	local pid=$1 out=$2 max=0 r
	while kill -0 "$pid" 2>/dev/null; do
		r=$(rss_kb "$pid")
		[ "${r:-0}" -gt "$max" ] && max=$r && echo "$max" >"$out"
		sleep 0.1
	done
}

# ---- build the bench tools (into the work dir: nothing is left behind) ----

say "building the load client, the inbound ceiling server and the registry bench"
cp "$BUILD/pushgw" "$BUILD/pushsim" "$WORK/" # immune to rebuilds during the run
PUSHGW=$WORK/pushgw
PUSHSIM=$WORK/pushsim
$CC $CFLAGS bench/loadgen.c -o "$WORK/loadgen"
# shellcheck disable=SC2046
$CC $CFLAGS $(pkg-config --cflags $PKGS) bench/ceiling.c -o "$WORK/ceiling" $(pkg-config --libs libmicrohttpd) -lpthread
if [ "$REG_N" -gt 0 ]; then
	LIB_OBJ=() # as the Makefile links unit tests: every gateway object but main's
	for src in gateway/*.c; do
		o=${src##*/}
		[ "$o" = main.c ] || [ ! -f "$BUILD/obj/${o%.c}.o" ] || LIB_OBJ+=("$BUILD/obj/${o%.c}.o")
	done
	# shellcheck disable=SC2046
	$CC $CFLAGS $(pkg-config --cflags $PKGS) bench/registry_bench.c "${LIB_OBJ[@]}" \
		-o "$WORK/registry_bench" $(pkg-config --libs $PKGS) -lpthread -lm
fi

# ---- material: keys, tokens, bodies ----

CERTS=$CACHE/certs
bash tests/sim/gen-certs.sh "$CERTS" >/dev/null
CERTS=$(cd "$CERTS" && pwd)
tok() { printf '%064x' $((0xb0000 + $1)); }
wake_body() { # wake_body N: a wake for N distinct devices
	local toks=() i
	for ((i = 0; i < $1; i++)); do toks+=("$(tok "$i")"); done
	jq -cn '{
	  devices: [$ARGS.positional[] | {provider: "apns", token: ., app: "phone"}],
	  call: {id: "a84b4c76e66710@pbx", from: "+15551234567", from_name: "Alice", to: "1001"}
	}' --args "${toks[@]}"
}
wake_body 1 >"$WORK/wake1.json"
wake_body 10 >"$WORK/wake10.json"
mkdir -p "$WORK/www/3/device"
jq -r '.devices[].token' "$WORK/wake10.json" | while read -r t; do : >"$WORK/www/3/device/$t"; done

write_config() { # write_config FILE SINK_URL LOG_LEVEL PORT
	local hash
	hash=$($PUSHGW hash-key "$KEY")
	jq -n --arg certs "$CERTS" --arg url "$2" --arg lvl "$3" --arg listen "127.0.0.1:$4" \
		--arg hash "$hash" --arg db "$WORK/gw-$4.db" --arg pg "$REGISTRY_URL" \
		--arg team $TEAM --arg kid $KID --arg b $BUNDLE '{
	  listen: $listen,
	  api_keys: [{name: "bench", key: $hash, scopes: ["wake", "register"]}],
	  apps: {phone: {apns: {team_id: $team, key_id: $kid, key_file: ($certs + "/AuthKey_" + $kid + ".p8"),
	                        bundle_id: $b, environment: "production", url: $url}}},
	  upstream: {ca_file: ($certs + "/ca.pem"), connections: 2},
	  registry: (if $pg != "" then {url: $pg} else {path: $db} end),
	  limits: {wakes_per_second_per_key: 0},
	  log: {level: $lvl}
	}' >"$1"
}

# start_gw SINK_URL LOG_LEVEL: sets GW_PID, GW_PORT, GW_LOG
start_gw() {
	GW_PORT=$(free_port)
	GW_LOG=$WORK/gw-$GW_PORT.log
	write_config "$WORK/gw-$GW_PORT.json" "$1" "$2" "$GW_PORT"
	# as on a stock Debian host: the system store by its hashed directory
	# (an SSL_CERT_FILE in this environment would make pushgw parse the
	# whole bundle at start-up, as OpenSSL's defaults do)
	env -u SSL_CERT_FILE $PUSHGW -c "$WORK/gw-$GW_PORT.json" 2>"$GW_LOG" &
	GW_PID=$!
	PIDS+=("$GW_PID")
	wait_http "http://127.0.0.1:$GW_PORT/healthz" || { cat "$GW_LOG" >&2; die "pushgw did not start"; }
}

wake_once() { # wake_once PORT BODY_FILE: prints the answer
	curl -sS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
		--data-binary @"$2" "http://127.0.0.1:$1/v1/wake"
}

# start_sim: the APNs simulator; sets SIM_PID, SIM_PORT, SIM_CTL
start_sim() {
	$PUSHSIM --listen 127.0.0.1:0 --control 127.0.0.1:0 --cert "$CERTS/server.pem" \
		--key "$CERTS/server.key" --team-id $TEAM --key-id $KID \
		--apns-key-pub "$CERTS/apns_pub.pem" --bundle-id $BUNDLE >"$WORK/sim.out" 2>"$WORK/sim.err" &
	SIM_PID=$!
	PIDS+=("$SIM_PID")
	for _ in $(seq 1 100); do grep -q control "$WORK/sim.out" 2>/dev/null && break; sleep 0.05; done
	SIM_PORT=$(jq .listen "$WORK/sim.out")
	SIM_CTL=$(jq .control "$WORK/sim.out")
}
sim_ctl() { curl -sS -X "$1" "http://127.0.0.1:$SIM_CTL$2"; }

# The HTTP/2 sink for throughput and latency: nghttpd answers each POST with
# an empty 200, as APNs does, at less CPU per request than the simulator.
start_sink() {
	SINK_PORT=$(free_port)
	nghttpd -a 127.0.0.1 -n 1 -d "$WORK/www" "$SINK_PORT" "$CERTS/server.key" "$CERTS/server.pem" \
		>/dev/null 2>"$WORK/nghttpd.err" &
	SINK_PID=$!
	PIDS+=("$SINK_PID")
	for _ in $(seq 1 100); do [ -n "$(ss -Htln "sport = :$SINK_PORT")" ] && return; sleep 0.05; done
	die "nghttpd did not start"
}

# ---- load ----

# run_wrk NAME URL BODY [SECONDS]: saturation; writes $R/NAME.json
run_wrk() {
	WAKE_BODY=$3 WAKE_KEY=$KEY wrk -t2 -c$CONNS -d"${4:-$SECS}"s -s bench/wake.lua "$2" >"$WORK/$1.wrk" 2>&1 ||
		die "wrk $1 failed: $(cat "$WORK/$1.wrk")"
	sed -n 's/^WRKJSON //p' "$WORK/$1.wrk" >"$R/$1.json"
	[ -s "$R/$1.json" ] || die "wrk $1: no result"
}

# run_open NAME URL BODY RATE: open-loop constant rate; writes $R/NAME.json
run_open() {
	"$WORK/loadgen" -u "$2" -b "$3" -H "Authorization: Bearer $KEY" -r "$4" -d "$SECS" -w 1 -c 64 \
		>"$R/$1.json" 2>"$WORK/$1.err" || die "loadgen $1 failed: $(cat "$WORK/$1.err")"
}

# measure_cpu NAME PIDS... -- COMMAND...: runs COMMAND and records each
# process's and thread's CPU share while it ran, in $R/NAME.cpu.json
measure_cpu() {
	local name=$1 pids=() t0 t1
	shift
	while [ "$1" != "--" ]; do pids+=("$1"); shift; done
	shift
	thread_ticks "${pids[@]}" >"$WORK/$name.t0"
	t0=$(date +%s%N)
	"$@"
	t1=$(date +%s%N)
	thread_ticks "${pids[@]}" >"$WORK/$name.t1"
	LC_ALL=C join <(LC_ALL=C sort "$WORK/$name.t0") <(LC_ALL=C sort "$WORK/$name.t1") |
		awk -v secs="$(((t1 - t0) / 1000000))" -v tick="$TICK" '
		{ split($1, id, "/"); d = ($5 - $3) / tick * 100000 / secs
		  thr[$1] = d; comm[$1] = $2; proc[id[1]] += d }
		END { printf "{\"threads\":["; sep = ""
		      for (k in thr) if (thr[k] >= 1) { printf "%s{\"id\":\"%s\",\"comm\":\"%s\",\"cpu_pct\":%.0f}", sep, k, comm[k], thr[k]; sep = "," }
		      printf "],\"processes\":{"; sep = ""
		      for (p in proc) { printf "%s\"%s\":%.0f", sep, p, proc[p]; sep = "," }
		      printf "}}\n" }' >"$R/$name.cpu.json"
}

# wrk's own CPU share: its process only exists during the run.
wrk_cpu_during() { # wrk_cpu_during NAME: background; samples wrk once it runs
	local pid t0 t1
	for _ in $(seq 1 50); do pid=$(pgrep -n -x wrk || true); [ -n "$pid" ] && break; sleep 0.05; done
	[ -n "$pid" ] || return 0
	sleep 1
	t0=$(cpu_ticks "$pid")
	sleep $((SECS - 2))
	t1=$(cpu_ticks "$pid")
	echo "{\"cpu_pct\":$(((t1 - t0) * 100 / TICK / (SECS - 2)))}" >"$R/$1.wrkcpu.json"
}

# ================= 1. upstream ceiling =================

start_sim
start_sink
say "1/8 upstream ceiling: h2load straight at the sink with the request pushgw sends"
# Capture the exact request pushgw sends, from the simulator's record.
start_gw "https://127.0.0.1:$SIM_PORT" warn
wake_once "$GW_PORT" "$WORK/wake1.json" >"$WORK/resp1.json"
jq -e '.results[0].status == "sent"' "$WORK/resp1.json" >/dev/null || die "a wake through pushgw failed: $(cat "$WORK/resp1.json")"
sim_ctl GET /requests | jq -c '.[-1]' >"$WORK/apns_request.json"
stop "$GW_PID"
jq -r '.body' "$WORK/apns_request.json" >"$WORK/apns_body.json"
H2_ARGS=()
while IFS= read -r h; do H2_ARGS+=(-H "$h"); done < <(jq -r '.headers | to_entries[]
	| select(.key | startswith(":") | not) | "\(.key): \(.value)"' "$WORK/apns_request.json")
TOKEN_PATH=$(jq -r .path "$WORK/apns_request.json")
h2load -t1 -c2 -m100 -D "$SECS" --warm-up-time=1 -d "$WORK/apns_body.json" "${H2_ARGS[@]}" \
	"https://127.0.0.1:$SINK_PORT$TOKEN_PATH" >"$WORK/h2load.out" 2>&1 || die "h2load failed: $(tail -3 "$WORK/h2load.out")"
awk '/^finished in/ { gsub(/,/, ""); rps = $4 }
     /^requests:/ { total = $2; ok = $8; failed = $10 }
     /^status codes:/ { s2 = $3 }
     END { printf "{\"rps\":%.1f,\"requests\":%d,\"succeeded\":%d,\"failed\":%d,\"status_2xx\":%d}\n", rps, total, ok, failed, s2 }' \
	"$WORK/h2load.out" >"$R/upstream_ceiling.json"
H2_HEADERS=$(printf '%s\n' "${H2_ARGS[@]}" | grep -vx -- -H | sed 's/^authorization: bearer .*/authorization: bearer <ES256 JWT>/' | jq -R . | jq -cs .)

# ================= 2. inbound ceiling =================

say "2/8 inbound ceiling: wrk at a do-nothing libmicrohttpd server with pushgw's daemon flags"
CEIL_PORT=$(free_port)
"$WORK/ceiling" -r "$WORK/resp1.json" -p "$CEIL_PORT" >"$WORK/ceiling.out" 2>&1 &
CEIL_PID=$!
PIDS+=("$CEIL_PID")
wait_http "http://127.0.0.1:$CEIL_PORT/" || die "ceiling server did not start"
run_wrk ceiling_warmup "http://127.0.0.1:$CEIL_PORT/v1/wake" "$WORK/wake1.json" 2
wrk_cpu_during inbound_ceiling &
WCPU=$!
measure_cpu inbound_ceiling "$CEIL_PID" -- run_wrk inbound_ceiling "http://127.0.0.1:$CEIL_PORT/v1/wake" "$WORK/wake1.json"
wait "$WCPU" || true
# The same open-loop client at 5,000/s: the latency floor of a loopback
# HTTP/1.1 round trip through libmicrohttpd on this machine right now.
run_open ceiling_open1_5000 "http://127.0.0.1:$CEIL_PORT/v1/wake" "$WORK/wake1.json" 5000
stop "$CEIL_PID"

# ================= 3. pushgw =================

say "3/8 pushgw: saturation and open-loop latency, forwarding to the same sink"
start_gw "https://127.0.0.1:$SINK_PORT" warn
GW=http://127.0.0.1:$GW_PORT/v1/wake
wake_once "$GW_PORT" "$WORK/wake1.json" >/dev/null
sleep 1
echo "{\"rss_kb\":$(rss_kb "$GW_PID"),\"anon_kb\":$(awk '/^RssAnon/ {print $2}' "/proc/$GW_PID/status")}" >"$R/rss_idle.json"
run_wrk gw_warmup "$GW" "$WORK/wake1.json" 2
rss_sampler "$GW_PID" "$WORK/rss_sat" &
SAMPLER=$!
wrk_cpu_during gw_sat1 &
WCPU=$!
T0=$(cpu_ticks "$GW_PID")
measure_cpu gw_sat1 "$GW_PID" "$SINK_PID" -- run_wrk gw_sat1 "$GW" "$WORK/wake1.json"
T1=$(cpu_ticks "$GW_PID")
wait "$WCPU" || true
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
jq -n --argjson rss "$(cat "$WORK/rss_sat" 2>/dev/null || echo 0)" --argjson ticks $((T1 - T0)) \
	--argjson tick "$TICK" --slurpfile w "$R/gw_sat1.json" \
	'{rss_kb: $rss, cpu_ms_per_1000_wakes: (($ticks / $tick * 1000) / $w[0].requests * 1000)}' >"$R/gw_resources_sat.json"
run_wrk gw_sat10 "$GW" "$WORK/wake10.json"
for rate in 1000 5000; do
	run_open "gw_open1_$rate" "$GW" "$WORK/wake1.json" "$rate"
	run_open "gw_open10_$rate" "$GW" "$WORK/wake10.json" "$rate"
done
stop "$GW_PID"

# Same load with the default log level: one JSON line per wake, and the lines
# that count TLS handshakes and JWT signatures after warm-up.
say "3/8 pushgw with per-wake info logging (default config): handshakes and JWT signatures"
start_gw "https://127.0.0.1:$SINK_PORT" info
GW=http://127.0.0.1:$GW_PORT/v1/wake
run_wrk gw_info_warmup "$GW" "$WORK/wake1.json" 2
hs0=$(grep -c '"upstream connected"' "$GW_LOG" || true)
jwt0=$(grep -c '"apns provider token signed"' "$GW_LOG" || true)
run_wrk gw_sat1_info "$GW" "$WORK/wake1.json"
hs1=$(grep -c '"upstream connected"' "$GW_LOG" || true)
jwt1=$(grep -c '"apns provider token signed"' "$GW_LOG" || true)
echo "{\"at_start\":{\"tls_handshakes\":$hs0,\"jwt_signatures\":$jwt0},\"during_run\":{\"tls_handshakes\":$((hs1 - hs0)),\"jwt_signatures\":$((jwt1 - jwt0))}}" >"$R/gw_handshakes.json"
stop "$GW_PID"

# ================= 4. peer =================

PEER_OK=0
if [ "$PEER" = 1 ] && command -v node >/dev/null && command -v npm >/dev/null; then
	say "4/8 peer: Node.js gateway on $PEER_PKG@$PEER_VER, same load, same sink"
	mkdir -p "$CACHE/peer"
	cp bench/peer/package.json "$CACHE/peer/package.json"
	if [ "$(jq -r .version "$CACHE/peer/node_modules/$PEER_PKG/package.json" 2>/dev/null)" != "$PEER_VER" ]; then
		(cd "$CACHE/peer" && npm install --no-audit --no-fund --omit=dev --loglevel=error >/dev/null 2>&1) ||
			say "npm install failed: peer skipped"
	fi
	if [ "$(jq -r .version "$CACHE/peer/node_modules/$PEER_PKG/package.json" 2>/dev/null)" = "$PEER_VER" ]; then
		PEER_PORT=$(free_port)
		NODE_PATH=$PWD/$CACHE/peer/node_modules NODE_EXTRA_CA_CERTS=$CERTS/ca.pem \
			PEER_LISTEN=127.0.0.1:$PEER_PORT PEER_KEY=$KEY APNS_URL=https://127.0.0.1:$SINK_PORT \
			APNS_KEY_FILE=$CERTS/AuthKey_$KID.p8 APNS_KEY_ID=$KID APNS_TEAM_ID=$TEAM APNS_TOPIC=$BUNDLE \
			node bench/peer/gateway.js >"$WORK/peer.out" 2>"$WORK/peer.err" &
		PEER_PID=$!
		PIDS+=("$PEER_PID")
		for _ in $(seq 1 100); do grep -q listen "$WORK/peer.out" 2>/dev/null && break; sleep 0.05; done
		PG=http://127.0.0.1:$PEER_PORT/v1/wake
		if wake_once "$PEER_PORT" "$WORK/wake1.json" | jq -e '.results[0].status == "sent"' >/dev/null; then
			PEER_OK=1
			run_wrk peer_warmup "$PG" "$WORK/wake1.json" 2
			wrk_cpu_during peer_sat1 &
			WCPU=$!
			measure_cpu peer_sat1 "$PEER_PID" "$SINK_PID" -- run_wrk peer_sat1 "$PG" "$WORK/wake1.json"
			wait "$WCPU" || true
			run_wrk peer_sat10 "$PG" "$WORK/wake10.json"
			for rate in 1000 5000; do run_open "peer_open1_$rate" "$PG" "$WORK/wake1.json" "$rate"; done
		else
			say "the peer does not deliver: $(cat "$WORK/peer.err" | tail -3)"
			stop "$PEER_PID"
		fi
	fi
else
	say "4/8 peer skipped (BENCH_PEER=0 or node/npm missing)"
fi

# Side by side: pushgw, the do-nothing server and the peer all up, each
# saturated in turn, three rounds. The ratios come from the medians, so
# one run that the machine's other work slowed cannot make them.
say "4/8 side by side: pushgw, the inbound ceiling server and the peer saturated in turn, 3 rounds"
start_gw "https://127.0.0.1:$SINK_PORT" warn
"$WORK/ceiling" -r "$WORK/resp1.json" -p "$CEIL_PORT" >"$WORK/ceiling2.out" 2>&1 &
CEIL_PID=$!
PIDS+=("$CEIL_PID")
wait_http "http://127.0.0.1:$CEIL_PORT/" || die "ceiling server did not start"
sides=("pushgw http://127.0.0.1:$GW_PORT/v1/wake" "ceiling http://127.0.0.1:$CEIL_PORT/v1/wake")
[ "$PEER_OK" = 1 ] && sides+=("peer $PG")
for side in "${sides[@]}"; do run_wrk "round0_${side%% *}" "${side#* }" "$WORK/wake1.json" 2; done
for round in 1 2 3; do
	for side in "${sides[@]}"; do run_wrk "round${round}_${side%% *}" "${side#* }" "$WORK/wake1.json"; done
	# 10-device wakes: the two gateways (the ceiling server does no fan-out)
	for side in "${sides[@]}"; do
		[ "${side%% *}" = ceiling ] || run_wrk "round${round}_${side%% *}10" "${side#* }" "$WORK/wake10.json"
	done
done
for side in pushgw ceiling peer pushgw10 peer10; do
	cat "$R"/round[123]_"$side".json 2>/dev/null | jq -s --arg s "$side" '{($s): [.[].rps]}'
done | jq -s 'add' >"$R/rounds.json"
stop "$GW_PID"
stop "$CEIL_PID"
[ "$PEER_OK" = 1 ] && stop "$PEER_PID"
stop "$SINK_PID"

# ================= 5. resources: wakes in flight =================

say "5/8 resources: 10,000 pushes in flight against a sink that answers after 2 s"
# 5,000 streams per connection: pushgw's two pre-warmed connections carry all
# 10,000 at once, so every one is in flight upstream, none queued.
sim_ctl POST '/settings?max_streams=5000' >/dev/null
start_gw "https://127.0.0.1:$SIM_PORT" warn
wake_once "$GW_PORT" "$WORK/wake1.json" >/dev/null
sim_ctl POST '/delay?ms=2000' >/dev/null
sim_ctl POST /reset >/dev/null
hold() { # hold NAME CONNECTIONS BODY
	local sampler
	echo 0 >"$WORK/rss_$1"
	rss_sampler "$GW_PID" "$WORK/rss_$1" &
	sampler=$!
	# 200 connections per source address: under pushgw's per-address limit
	"$WORK/loadgen" -u "http://127.0.0.1:$GW_PORT/v1/wake" -b "$3" -H "Authorization: Bearer $KEY" \
		-i "$2" -a 200 >"$R/$1.json" 2>"$WORK/$1.err" || die "loadgen $1: $(cat "$WORK/$1.err")"
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	sim_ctl GET /stats >"$WORK/$1.stats"
	jq --argjson rss "$(cat "$WORK/rss_$1")" --slurpfile st "$WORK/$1.stats" \
		'. + {peak_rss_kb: $rss, sink_max_streams_in_flight: $st[0].max_streams_in_flight,
		      sink_tls_handshakes: $st[0].handshakes, sink_distinct_jwts: $st[0].distinct_jwts}' \
		"$R/$1.json" >"$R/$1.tmp" && mv "$R/$1.tmp" "$R/$1.json"
}
hold inflight_10x1000 1000 "$WORK/wake10.json"
sim_ctl POST /reset >/dev/null
hold inflight_1x4000 4000 "$WORK/wake1.json"
stop "$GW_PID"
stop "$SIM_PID"

# ================= 6. registry at scale =================

if [ "$REG_N" -gt 0 ]; then
	say "6/8 registry: $REG_N devices (filled once into $CACHE, reused)"
	"$WORK/registry_bench" -n "$REG_N" -f "$CACHE/registry-$REG_N.db" >"$WORK/registry.out" 2>&1 ||
		die "registry_bench failed: $(tail -3 "$WORK/registry.out")"
	awk -v n="$REG_N" '
	function num(s) { gsub(/[^0-9.]/, "", s); return s + 0 }
	/^list extension.s devices, 1 thread/ { l1r = num($6); l1p50 = num($11); l1p99 = num($14) }
	/^list extension.s devices, 4 threads/ { l4r = num($6); l4p50 = num($11); l4p99 = num($14) }
	/^put, new device, 1 thread/ { p1 = num($9); p1p99 = num($17) }
	/^put, new device, N threads/ { pn = num($6); pnp99 = num($14) }
	/^fill:.*skipped/ { cached = 1 }
	/^file:/ { bpd = $(NF - 3) }
	END { printf "{\"devices\":%d,\"fill_cached\":%s,\"lookup_1thread_per_s\":%d,\"lookup_p50_us\":%d,\"lookup_p99_us\":%d,\"lookup_4threads_per_s\":%d,\"lookup_4threads_p99_us\":%d,\"register_1thread_per_s\":%d,\"register_1thread_p99_us\":%d,\"register_8threads_per_s\":%d,\"register_8threads_p99_us\":%d,\"bytes_per_device\":%d}\n",
	      n, cached ? "true" : "false", l1r, l1p50, l1p99, l4r, l4p99, p1, p1p99, pn, pnp99, bpd }' \
		"$WORK/registry.out" >"$R/registry.json"
else
	say "6/8 registry skipped (BENCH_REGISTRY_DEVICES=0)"
fi

# ================= 7. registry backends through the API =================

if [ "$REG_API" = 1 ]; then
	say "7/8 registry through the API: SQLite file vs PostgreSQL, registrations and wakes by extension"
	PGDIR=$(mktemp -d "${TMPDIR:-/tmp}/pushgw-bench-pg.XXXXXX")
	chmod 755 "$PGDIR"
	if PGURL=$(scripts/pg-test-cluster.sh start "$PGDIR/pg" 2>"$WORK/pg.err"); then
		start_sink
		# the wake-by-extension tokens: 2 per extension, each a file the sink answers
		for ((i = 0; i < WAKE_EXTS * 2; i++)); do : >"$WORK/www/3/device/$(tok $((1000 + i)))"; done
		for backend in sqlite postgresql; do
			if [ $backend = sqlite ]; then REGISTRY_URL=; else REGISTRY_URL=$PGURL; fi
			start_gw "https://127.0.0.1:$SINK_PORT" warn
			GWB=http://127.0.0.1:$GW_PORT
			# wrk -c16: the registry queue's threads, plus some waiting
			REG_EXTENSIONS=50000 WAKE_KEY=$KEY wrk -t2 -c16 -d"$SECS"s -s bench/register.lua "$GWB" \
				>"$WORK/reg_$backend.wrk" 2>&1 || die "wrk register ($backend) failed"
			sed -n 's/^WRKJSON //p' "$WORK/reg_$backend.wrk" >"$R/reg_put_$backend.json"
			for ((i = 0; i < WAKE_EXTS * 2; i++)); do
				printf 'url = "%s/v1/extensions/w%d/devices/d%d"\nrequest = "PUT"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "{\\"provider\\":\\"apns\\",\\"token\\":\\"%s\\",\\"app\\":\\"phone\\"}"\noutput = "/dev/null"\n' \
					"$GWB" $((i / 2)) "$i" "$KEY" "$(tok $((1000 + i)))"
				[ $i = $((WAKE_EXTS * 2 - 1)) ] || echo next
			done >"$WORK/wake_ext_devices.curl"
			curl -sS --parallel --parallel-max 8 --config "$WORK/wake_ext_devices.curl" || die "registering wake devices failed"
			WAKE_EXTENSIONS=$WAKE_EXTS WAKE_KEY=$KEY wrk -t2 -c$CONNS -d"$SECS"s -s bench/wake_ext.lua "$GWB/v1/wake" \
				>"$WORK/wake_ext_$backend.wrk" 2>&1 || die "wrk wake by extension ($backend) failed"
			sed -n 's/^WRKJSON //p' "$WORK/wake_ext_$backend.wrk" >"$R/wake_ext_$backend.json"
			if [ $backend = postgresql ]; then
				# the pool's sessions after every call above (100,000+ of them)
				PGSESS=$(psql "$PGURL" -Atc "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pushgw'" 2>/dev/null || echo -1)
				echo "{\"pushgw_sessions_after\":$PGSESS,\"pool_size\":4}" >"$R/pg_sessions.json"
			fi
			stop "$GW_PID"
		done
		stop "$SINK_PID"
	else
		say "PostgreSQL did not start: $(tail -2 "$WORK/pg.err")"
	fi
	scripts/pg-test-cluster.sh destroy "$PGDIR/pg" >/dev/null 2>&1 || true
	rm -rf "$PGDIR"
else
	say "7/8 registry through the API skipped (BENCH_REGISTRY_API=0)"
fi

# ================= 8. profile (optional) =================

if [ "$PROFILE" = 1 ] && command -v perf >/dev/null; then
	say "8/8 profile: perf on pushgw during saturation -> $CACHE/profile.txt"
	start_sink
	start_gw "https://127.0.0.1:$SINK_PORT" warn
	run_wrk prof_warmup "http://127.0.0.1:$GW_PORT/v1/wake" "$WORK/wake1.json" 2
	(WAKE_BODY=$WORK/wake1.json WAKE_KEY=$KEY wrk -t2 -c$CONNS -d"$((SECS + 2))"s -s bench/wake.lua \
		"http://127.0.0.1:$GW_PORT/v1/wake" >/dev/null 2>&1 &)
	sleep 1
	perf record -F 999 -g -p "$GW_PID" -o "$WORK/perf.data" -- sleep "$SECS" >/dev/null 2>&1 || true
	sleep 2
	{
		echo "# perf, pushgw saturated by wrk -t2 -c$CONNS (1-device wakes); self time by thread and symbol"
		perf report -i "$WORK/perf.data" --no-children --sort comm,dso,symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -60
	} >"$CACHE/profile.txt"
	stop "$GW_PID"
	stop "$SINK_PID"
else
	say "8/8 profile skipped (BENCH_PROFILE=1 runs perf)"
fi

# ================= 9. the SIP edge =================

if [ "$SIP" = 1 ]; then
	say "9/9 the SIP edge: bench/sip.sh"
	BENCH_SIP_OUT=$R/sip.json BUILD=$BUILD bench/sip.sh >&2 || say "the SIP section failed"
else
	say "9/9 the SIP edge skipped (BENCH_SIP=0)"
fi

# ================= results =================

CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
jq -n \
	--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--arg cpu "$CPU_MODEL" --argjson cores "$(nproc)" --arg kernel "$(uname -r)" \
	--argjson mem_mb "$(awk '/^MemTotal/ {print int($2 / 1024)}' /proc/meminfo)" \
	--arg wrk "$(wrk -v 2>&1 | head -1 | awk '{print $2}')" \
	--arg h2load "$(h2load --version 2>&1 | head -1)" \
	--arg node "$(node --version 2>/dev/null || echo none)" \
	--arg mhd "$(pkg-config --modversion libmicrohttpd)" --arg nghttp2 "$(pkg-config --modversion libnghttp2)" \
	--argjson secs "$SECS" --argjson conns "$CONNS" --argjson h2headers "$H2_HEADERS" \
	--arg peer_pkg "$PEER_PKG@$PEER_VER" --argjson peer_ok "$PEER_OK" \
	--argjson elapsed $(($(date +%s) - T_START)) --argjson load_before "$LOAD_BEFORE" \
	--argjson load_after "$(cut -d' ' -f1 /proc/loadavg)" \
	--slurpfile up "$R/upstream_ceiling.json" \
	--slurpfile inb "$R/inbound_ceiling.json" --slurpfile inbcpu "$R/inbound_ceiling.cpu.json" \
	--slurpfile inb5k "$R/ceiling_open1_5000.json" \
	--slurpfile s1 "$R/gw_sat1.json" --slurpfile s1cpu "$R/gw_sat1.cpu.json" \
	--slurpfile s10 "$R/gw_sat10.json" --slurpfile sinfo "$R/gw_sat1_info.json" \
	--slurpfile o1k "$R/gw_open1_1000.json" --slurpfile o5k "$R/gw_open1_5000.json" \
	--slurpfile o10_1k "$R/gw_open10_1000.json" --slurpfile o10_5k "$R/gw_open10_5000.json" \
	--slurpfile idle "$R/rss_idle.json" --slurpfile sat "$R/gw_resources_sat.json" \
	--slurpfile hs "$R/gw_handshakes.json" \
	--slurpfile h10 "$R/inflight_10x1000.json" --slurpfile h4k "$R/inflight_1x4000.json" \
	--slurpfile wrkcpu <(cat "$R"/gw_sat1.wrkcpu.json 2>/dev/null || echo null) \
	--slurpfile inbwrkcpu <(cat "$R"/inbound_ceiling.wrkcpu.json 2>/dev/null || echo null) \
	--slurpfile p1 <(cat "$R"/peer_sat1.json 2>/dev/null || echo null) \
	--slurpfile p1cpu <(cat "$R"/peer_sat1.cpu.json 2>/dev/null || echo null) \
	--slurpfile p10 <(cat "$R"/peer_sat10.json 2>/dev/null || echo null) \
	--slurpfile rounds <(cat "$R"/rounds.json 2>/dev/null || echo null) \
	--slurpfile po1k <(cat "$R"/peer_open1_1000.json 2>/dev/null || echo null) \
	--slurpfile po5k <(cat "$R"/peer_open1_5000.json 2>/dev/null || echo null) \
	--slurpfile reg <(cat "$R"/registry.json 2>/dev/null || echo null) \
	--slurpfile rps <(cat "$R"/reg_put_sqlite.json 2>/dev/null || echo null) \
	--slurpfile rpp <(cat "$R"/reg_put_postgresql.json 2>/dev/null || echo null) \
	--slurpfile wes <(cat "$R"/wake_ext_sqlite.json 2>/dev/null || echo null) \
	--slurpfile wep <(cat "$R"/wake_ext_postgresql.json 2>/dev/null || echo null) \
	--slurpfile pgs <(cat "$R"/pg_sessions.json 2>/dev/null || echo null) \
	--slurpfile sip <(cat "$R"/sip.json 2>/dev/null || echo null) \
	--argjson gwpid "${GW_PID:-0}" '
	def lat: {p50_ms, p99_ms, p999_ms, max_ms, offered_per_s: .rate, achieved_per_s: .achieved_rps,
	          requests, ok, errors, unanswered, pushes_sent};
	def sat: {wakes_per_s: .rps, p50_ms, p99_ms, p999_ms, requests, http_errors, socket_errors};
	($up[0].rps) as $upc | ($inb[0].rps) as $inc |
	([$upc, $inc] | min) as $lower |
	def median: sort | .[(length / 2 | floor)];
	($rounds[0].pushgw | median) as $gwmed | ($rounds[0].ceiling | median) as $ceilmed |
	([$upc, $ceilmed] | min) as $lower_side_by_side |
	{
	  machine: {date: $date, cpu: $cpu, cores: $cores, memory_mb: $mem_mb, kernel: $kernel,
	            note: "load generator, sink and gateway share these cores",
	            load_average_before: $load_before, load_average_after: $load_after},
	  tools: {wrk: $wrk, h2load: $h2load, node: $node, libmicrohttpd: $mhd, nghttp2: $nghttp2,
	          sink: "nghttpd -n 1 (empty 200 per POST, like APNs); pushsim for the in-flight test",
	          measured_seconds: $secs, wrk: "wrk -t2 -c\($conns), keep-alive",
	          open_loop: "bench/loadgen: constant rate, 64 keep-alive connections, latency from the scheduled send time"},
	  upstream_ceiling: {requests_per_s: $upc, client: "h2load -t1 -c2 -m100 (pushgw: 2 connections, up to 100 streams each)",
	                     request_headers: $h2headers, failed: $up[0].failed},
	  inbound_ceiling: (($inb[0] | sat) + {cpu: $inbcpu[0], wrk_cpu_pct: $inbwrkcpu[0].cpu_pct,
	                    open_loop_5000: ($inb5k[0] | lat)}),
	  lower_ceiling_per_s: $lower,
	  pushgw: {
	    saturation_1_device: (($s1[0] | sat) + {cpu: $s1cpu[0], wrk_cpu_pct: $wrkcpu[0].cpu_pct}),
	    saturation_10_devices: (($s10[0] | sat) + {pushes_per_s: ($s10[0].rps * 10)}),
	    saturation_1_device_info_log: ($sinfo[0] | sat),
	    fraction_of_lower_ceiling: (($gwmed / $lower_side_by_side * 1000 | round) / 1000),
	    side_by_side_rounds_wakes_per_s: $rounds[0],
	    fraction_of_lower_ceiling_single_runs: (($s1[0].rps / $lower * 1000 | round) / 1000),
	    added_p99_ms_at_5000: ((($o5k[0].p99_ms - $inb5k[0].p99_ms) * 1000 | round) / 1000),
	    open_loop_1_device: {"1000": ($o1k[0] | lat), "5000": ($o5k[0] | lat)},
	    open_loop_10_devices: {"1000": ($o10_1k[0] | lat), "5000": ($o10_5k[0] | lat)}
	  },
	  peer: (if $peer_ok == 1 then {
	    gateway: "bench/peer/gateway.js on \($peer_pkg), one Node.js process, 2 HTTP/2 sessions",
	    saturation_1_device: (($p1[0] | sat) + {cpu: $p1cpu[0]}),
	    saturation_10_devices: ($p10[0] | sat),
	    open_loop_1_device: {"1000": ($po1k[0] | lat), "5000": ($po5k[0] | lat)}
	  } else null end),
	  ratios: (if $peer_ok == 1 then {
	    throughput_pushgw_over_peer: ($gwmed / ($rounds[0].peer | median) * 100 | round / 100),
	    throughput_10_devices_pushgw_over_peer: (($rounds[0].pushgw10 | median) / ($rounds[0].peer10 | median) * 100 | round / 100),
	    p99_pushgw_over_peer_at_1000: (($o1k[0].p99_ms / $po1k[0].p99_ms * 100 | round) / 100),
	    p99_pushgw_over_peer_at_5000: (($o5k[0].p99_ms / $po5k[0].p99_ms * 100 | round) / 100)
	  } else null end),
	  resources: {
	    rss_idle_kb: $idle[0].rss_kb,
	    rss_idle_anonymous_kb: $idle[0].anon_kb,
	    rss_saturation_kb: $sat[0].rss_kb,
	    cpu_ms_per_1000_wakes: (($sat[0].cpu_ms_per_1000_wakes * 10 | round) / 10),
	    in_flight_10000_pushes: ($h10[0] | {wakes: .requests, devices_per_wake: 10, peak_rss_kb, sink_max_streams_in_flight,
	                              sink_tls_handshakes, sink_distinct_jwts, ok, errors, pushes_sent, p50_ms, max_ms}),
	    in_flight_4000_wakes: ($h4k[0] | {wakes: .requests, devices_per_wake: 1, peak_rss_kb, sink_max_streams_in_flight,
	                           sink_tls_handshakes, sink_distinct_jwts, ok, errors, pushes_sent, p50_ms, max_ms}),
	    tls_handshakes_and_jwt_signatures: $hs[0]
	  },
	  registry: $reg[0],
	  registry_api: (if $rpp[0] and $rps[0] then {
	    note: "through pushgw over HTTP: PUT of new devices (wrk -c16), wakes by extension of 2 devices (wrk -c\($conns)), same sink",
	    sqlite: {register: ($rps[0] | sat), wake_by_extension: ($wes[0] | sat)},
	    postgresql: {register: ($rpp[0] | sat), wake_by_extension: ($wep[0] | sat)},
	    postgresql_over_sqlite: {
	      register_throughput: (($rpp[0].rps / $rps[0].rps * 100 | round) / 100),
	      wake_by_extension_throughput: (($wep[0].rps / $wes[0].rps * 100 | round) / 100)},
	    postgresql_operations: ($rpp[0].requests + $wep[0].requests),
	    postgresql_sessions_after: $pgs[0].pushgw_sessions_after,
	    postgresql_pool_size: $pgs[0].pool_size
	  } else null end),
	  sip: $sip[0],
	  elapsed_s: $elapsed
	}' >"$OUT"

# ================= table =================

jq -r '
def groups: if length > 3 then (.[:-3] | groups) + "," + .[-3:] else . end;
def n: if . == null then "-" else (round | tostring | groups) end;
def f(d): if . == null then "-" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
[
 "| Case | wakes/s | p50 ms | p99 ms | p99.9 ms |",
 "|---|---:|---:|---:|---:|",
 "| Upstream ceiling: h2load -> nghttpd (req/s) | \(.upstream_ceiling.requests_per_s | n) | | | |",
 "| Inbound ceiling: wrk -> libmicrohttpd, same flags | \(.inbound_ceiling.wakes_per_s | n) | \(.inbound_ceiling.p50_ms | f(2)) | \(.inbound_ceiling.p99_ms | f(2)) | \(.inbound_ceiling.p999_ms | f(2)) |",
 "| Inbound ceiling, open loop 5000/s | \(.inbound_ceiling.open_loop_5000.achieved_per_s | n) | \(.inbound_ceiling.open_loop_5000.p50_ms | f(2)) | \(.inbound_ceiling.open_loop_5000.p99_ms | f(2)) | \(.inbound_ceiling.open_loop_5000.p999_ms | f(2)) |",
 "| **pushgw**, 1 device, saturation | **\(.pushgw.saturation_1_device.wakes_per_s | n)** | \(.pushgw.saturation_1_device.p50_ms | f(2)) | \(.pushgw.saturation_1_device.p99_ms | f(2)) | \(.pushgw.saturation_1_device.p999_ms | f(2)) |",
 "| pushgw, 10 devices, saturation (\(.pushgw.saturation_10_devices.pushes_per_s | n) pushes/s) | \(.pushgw.saturation_10_devices.wakes_per_s | n) | \(.pushgw.saturation_10_devices.p50_ms | f(2)) | \(.pushgw.saturation_10_devices.p99_ms | f(2)) | \(.pushgw.saturation_10_devices.p999_ms | f(2)) |",
 "| pushgw, 1 device, saturation, info log per wake | \(.pushgw.saturation_1_device_info_log.wakes_per_s | n) | \(.pushgw.saturation_1_device_info_log.p50_ms | f(2)) | \(.pushgw.saturation_1_device_info_log.p99_ms | f(2)) | \(.pushgw.saturation_1_device_info_log.p999_ms | f(2)) |",
 (.pushgw.open_loop_1_device | to_entries[] | "| pushgw, 1 device, open loop \(.key)/s | \(.value.achieved_per_s | n) | \(.value.p50_ms | f(2)) | \(.value.p99_ms | f(2)) | \(.value.p999_ms | f(2)) |"),
 (.pushgw.open_loop_10_devices | to_entries[] | "| pushgw, 10 devices, open loop \(.key)/s | \(.value.achieved_per_s | n) | \(.value.p50_ms | f(2)) | \(.value.p99_ms | f(2)) | \(.value.p999_ms | f(2)) |"),
 (if .peer then
   "| peer (Node.js, \(.peer.gateway | capture("on (?<p>[^,]+),").p)), 1 device, saturation | \(.peer.saturation_1_device.wakes_per_s | n) | \(.peer.saturation_1_device.p50_ms | f(2)) | \(.peer.saturation_1_device.p99_ms | f(2)) | \(.peer.saturation_1_device.p999_ms | f(2)) |",
   "| peer, 10 devices, saturation | \(.peer.saturation_10_devices.wakes_per_s | n) | \(.peer.saturation_10_devices.p50_ms | f(2)) | \(.peer.saturation_10_devices.p99_ms | f(2)) | \(.peer.saturation_10_devices.p999_ms | f(2)) |",
   (.peer.open_loop_1_device | to_entries[] | "| peer, 1 device, open loop \(.key)/s | \(.value.achieved_per_s | n) | \(.value.p50_ms | f(2)) | \(.value.p99_ms | f(2)) | \(.value.p999_ms | f(2)) |")
  else empty end),
 "",
 "| Figure | Value | Target |",
 "|---|---:|---|",
 "| Side by side, 3 rounds each (wakes/s): pushgw \(.pushgw.side_by_side_rounds_wakes_per_s.pushgw | map(n) | join(" / ")); ceiling server \(.pushgw.side_by_side_rounds_wakes_per_s.ceiling | map(n) | join(" / ")); peer \((.pushgw.side_by_side_rounds_wakes_per_s.peer // []) | map(n) | join(" / ")); 10-device wakes: pushgw \(.pushgw.side_by_side_rounds_wakes_per_s.pushgw10 | map(n) | join(" / ")), peer \((.pushgw.side_by_side_rounds_wakes_per_s.peer10 // []) | map(n) | join(" / ")) | | |",
 "| pushgw / lower ceiling (medians of the rounds; single runs above: \(.pushgw.fraction_of_lower_ceiling_single_runs)) | \(.pushgw.fraction_of_lower_ceiling) | >= 0.5 |",
 (if .ratios then
   "| pushgw / peer, throughput, 1 device; 10 devices (medians of the rounds) | \(.ratios.throughput_pushgw_over_peer); \(.ratios.throughput_10_devices_pushgw_over_peer) | >= 4 |",
   "| pushgw / peer, p99 at 1,000/s; 5,000/s | \(.ratios.p99_pushgw_over_peer_at_1000); \(.ratios.p99_pushgw_over_peer_at_5000) | < 1 |"
  else empty end),
 "| pushgw p99 added at 5,000 wakes/s (pushgw p99 \(.pushgw.open_loop_1_device["5000"].p99_ms | f(2)) - do-nothing server p99 \(.inbound_ceiling.open_loop_5000.p99_ms | f(2))) | \(.pushgw.added_p99_ms_at_5000 | f(2)) ms | < 1 ms |",
 "| RSS idle (of which shared-library pages) | \(.resources.rss_idle_kb / 1024 | f(1)) MB (\((.resources.rss_idle_kb - .resources.rss_idle_anonymous_kb) / 1024 | f(1)) MB) | < 15 MB |",
 "| RSS at saturation | \(.resources.rss_saturation_kb / 1024 | f(1)) MB | |",
 "| RSS, 10,000 pushes in flight (1,000 x 10-device wakes) | \(.resources.in_flight_10000_pushes.peak_rss_kb / 1024 | f(1)) MB | < 64 MB |",
 "| RSS, 4,000 single-device wakes in flight | \(.resources.in_flight_4000_wakes.peak_rss_kb / 1024 | f(1)) MB | |",
 "| CPU per 1,000 wakes (saturation) | \(.resources.cpu_ms_per_1000_wakes) ms | |",
 "| TLS handshakes / JWT signatures during a saturated run | \(.resources.tls_handshakes_and_jwt_signatures.during_run.tls_handshakes) / \(.resources.tls_handshakes_and_jwt_signatures.during_run.jwt_signatures) | ~0 |",
 (if .registry then
   "| Registry, \(.registry.devices | n) devices: lookup by extension p50 / p99 | \(.registry.lookup_p50_us) / \(.registry.lookup_p99_us) us (\(.registry.lookup_1thread_per_s | n)/s, 1 thread) | |",
   "| Registry: registrations/s, 1 thread (1 commit each) / 8 threads | \(.registry.register_1thread_per_s | n) / \(.registry.register_8threads_per_s | n) | |"
  else empty end),
 (if .registry_api then
   "| Through the API, SQLite: registrations/s (p99) / wakes by extension/s (p99) | \(.registry_api.sqlite.register.wakes_per_s | n) (\(.registry_api.sqlite.register.p99_ms | f(2)) ms) / \(.registry_api.sqlite.wake_by_extension.wakes_per_s | n) (\(.registry_api.sqlite.wake_by_extension.p99_ms | f(2)) ms) | |",
   "| Through the API, PostgreSQL: registrations/s (p99) / wakes by extension/s (p99) | \(.registry_api.postgresql.register.wakes_per_s | n) (\(.registry_api.postgresql.register.p99_ms | f(2)) ms) / \(.registry_api.postgresql.wake_by_extension.wakes_per_s | n) (\(.registry_api.postgresql.wake_by_extension.p99_ms | f(2)) ms) | |",
   "| PostgreSQL / SQLite throughput: registrations; wakes by extension | \(.registry_api.postgresql_over_sqlite.register_throughput); \(.registry_api.postgresql_over_sqlite.wake_by_extension_throughput) | >= 0.5 |",
   "| PostgreSQL sessions held after \(.registry_api.postgresql_operations | n) API calls (pool of \(.registry_api.postgresql_pool_size)) | \(.registry_api.postgresql_sessions_after) | <= pool |"
  else empty end),
 (if .sip then
   "| SIP: INVITE in -> push out, p50 / p99 / max | \(.sip.call_path.invite_to_push_ms.p50) / \(.sip.call_path.invite_to_push_ms.p99) / \(.sip.call_path.invite_to_push_ms.max) ms | p99 < 1 ms |",
   "| SIP: woken REGISTER 2xx in -> INVITE out, p50 / p99 / max | \(.sip.call_path.register_2xx_to_invite_ms.p50) / \(.sip.call_path.register_2xx_to_invite_ms.p99) / \(.sip.call_path.register_2xx_to_invite_ms.max) ms | p99 < 1 ms |",
   "| SIP: \(.sip.scale.bindings_registered | n) bindings + \(.sip.scale.held_invites_gauge | n) held INVITEs: peak RSS; threads start / after | \(.sip.scale.rss_kb.peak / 1024 | f(1)) MB; \(.sip.scale.threads.start) / \(.sip.scale.threads.bindings_and_held) | < 128 MB; no thread per binding |",
   "| SIP: REGISTERs/s, Kamailio directly / through pushgw (medians of 3) | \(.sip.register_throughput.direct_per_s_median | n) / \(.sip.register_throughput.through_pushgw_per_s_median | n) (\(.sip.register_throughput.ratio)) | >= 0.5 |"
  else empty end),
 "",
 "CPU while pushgw was saturated (% of one core): " + ([.pushgw.saturation_1_device.cpu.threads[] | "\(.comm) \(.cpu_pct)"] | join(", ")) + ", wrk \(.pushgw.saturation_1_device.wrk_cpu_pct // "-")",
 "Machine: \(.machine.cpu), \(.machine.cores) cores, \(.machine.memory_mb) MB, Linux \(.machine.kernel); load average \(.machine.load_average_before) before, \(.machine.load_average_after) after; \(.elapsed_s) s"
] | .[]' "$OUT"
say "wrote $OUT"
