#!/usr/bin/env bash
# Shared helpers for the integration tests: start the APNs simulator and the
# real pushgw binary on free loopback ports, drive the API with curl, and
# record named checks. Each test file sources this and calls its t_* tests.
# Every gateway started here is remembered: summary() stops the ones still
# running and fails the suite when one did not exit 0 on SIGTERM or its log
# holds a sanitizer report (ASan/UBSan/LSan print theirs at exit, so a leak
# is only ever seen there).
set -u

BUILD=${BUILD:-build}
PUSHGW=${PUSHGW:-$BUILD/pushgw}
PUSHSIM=${PUSHSIM:-$BUILD/pushsim}
WRAP=${WRAP:-}             # e.g. "valgrind --error-exitcode=99 …"
PASSED=0
FAILED=0
CURRENT=""
PIDS=()
GW_STARTED=()          # every gateway pid, in start order
declare -A GW_NAME_OF=() GW_LOG_OF=() GW_EXPECT_OF=() # by pid; EXPECT: killed | start_failure
GW_STOP_WAIT_S=${GW_STOP_WAIT_S:-90} # SIGTERM to exit, generous: sanitizers and valgrind are slow

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pushgw-it.XXXXXX")
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

# The tokens the tests use: 64 hex characters, distinct per purpose.
tok() { printf '%064x' "$1"; }

KEY_WAKE="wake-key-$(tok 1 | cut -c1-16)"
KEY_REG="reg-key-$(tok 2 | cut -c1-16)"
KEY_OTHER="other-key-$(tok 3 | cut -c1-16)"
KEY_WAKEONLY="wakeonly-key-$(tok 4 | cut -c1-16)"

begin() { CURRENT="$1"; }
ok() {
	PASSED=$((PASSED + 1))
}
bad() {
	FAILED=$((FAILED + 1))
	echo "FAIL [$CURRENT] $*" >&2
}
# check "what" <test args…>: passes when the test command succeeds.
check() {
	local what="$1"; shift
	if "$@"; then ok; else bad "$what"; fi
}
# expect_eq "what" actual expected
expect_eq() {
	if [ "$2" = "$3" ]; then ok; else bad "$1: got '$2', expected '$3'"; fi
}
summary() {
	gw_verify_all
	echo "$(basename "$0" .sh): $PASSED passed, $FAILED failed"
	[ "$FAILED" = 0 ]
}

# make_certs: CA, server/untrusted certs and the APNs key into $WORK/certs.
make_certs() {
	[ -f "$WORK/certs/ca.pem" ] || bash tests/sim/gen-certs.sh "$WORK/certs" >/dev/null
}

# start_sim NAME [pushsim args…]: sets SIM_PORT_<NAME>, SIM_CTL_<NAME>.
start_sim() {
	local name="$1"; shift
	local out="$WORK/sim-$name.out"
	make_certs
	$PUSHSIM --listen 127.0.0.1:0 --control 127.0.0.1:0 \
		--cert "$WORK/certs/server.pem" --key "$WORK/certs/server.key" \
		--team-id TEAM123456 --key-id KEY1234567 --apns-key-pub "$WORK/certs/apns_pub.pem" \
		--bundle-id com.example.phone "$@" >"$out" 2>"$WORK/sim-$name.err" &
	PIDS+=($!)
	local i
	for i in $(seq 1 100); do
		if grep -q '"control"' "$out" 2>/dev/null; then break; fi
		sleep 0.05
	done
	local line; line=$(head -n1 "$out")
	printf -v "SIM_PORT_$name" '%s' "$(echo "$line" | jq -r .listen)"
	printf -v "SIM_CTL_$name" '%s' "$(echo "$line" | jq -r .control)"
}

sim_ctl() { # sim_ctl NAME METHOD PATH [BODY]
	local ctl="SIM_CTL_$1"
	if [ -n "${4:-}" ]; then
		curl -sS -X "$2" -H 'Content-Type: application/json' --data-binary "$4" "http://127.0.0.1:${!ctl}$3"
	else
		curl -sS -X "$2" "http://127.0.0.1:${!ctl}$3"
	fi
}

# write_config FILE SIM_NAME [extra jq filter]: a config pointing apps "phone"
# and "other" at the simulator, with keys: wake+register (KEY_WAKE), register
# only (KEY_REG), wake+register limited to app "other" (KEY_OTHER), wake only
# (KEY_WAKEONLY). The registry file is named after the config file; with
# PUSHGW_TEST_REGISTRY_URL set, the registry is that PostgreSQL database.
write_config() {
	local file="$1" sim="SIM_PORT_$2" filter="${3:-.}"
	local hw hr ho hx
	hw=$($PUSHGW hash-key "$KEY_WAKE"); hr=$($PUSHGW hash-key "$KEY_REG"); ho=$($PUSHGW hash-key "$KEY_OTHER")
	hx=$($PUSHGW hash-key "$KEY_WAKEONLY")
	jq -n --arg port "${!sim}" --arg certs "$WORK/certs" --arg hw "$hw" --arg hr "$hr" --arg ho "$ho" \
		--arg hx "$hx" --arg db "$WORK/pushgw-$(basename "$file" .json).db" \
		--arg pg "${PUSHGW_TEST_REGISTRY_URL:-}" '{
	  listen: "127.0.0.1:0",
	  api_keys: [
	    {name: "pbx", key: $hw, scopes: ["wake", "register"], callback_secret: "cb-secret-for-tests"},
	    {name: "registrar", key: $hr, scopes: ["register"]},
	    {name: "other-tenant", key: $ho, scopes: ["wake", "register"], apps: ["other"]},
	    {name: "wake-only", key: $hx, scopes: ["wake"]}
	  ],
	  apps: {
	    phone: {apns: {team_id: "TEAM123456", key_id: "KEY1234567",
	                   key_file: ($certs + "/AuthKey_KEY1234567.p8"),
	                   bundle_id: "com.example.phone", environment: "production",
	                   url: ("https://127.0.0.1:" + $port)}},
	    other: {apns: {team_id: "TEAM123456", key_id: "KEY1234567",
	                   key_file: ($certs + "/AuthKey_KEY1234567.p8"),
	                   bundle_id: "com.example.other", url: ("https://127.0.0.1:" + $port)}}
	  },
	  upstream: {ca_file: ($certs + "/ca.pem"), connections: 2, request_timeout_ms: 3000},
	  registry: (if $pg != "" then {url: $pg} else {path: $db} end),
	  log: {level: "info"}
	} | '"$filter" >"$file"
}

# gw_track NAME PID LOG: remember a gateway a test started by hand, so
# summary() checks its exit status and log like those of start_gw.
gw_track() {
	GW_STARTED+=("$2")
	GW_NAME_OF[$2]=$1
	GW_LOG_OF[$2]=$3
	printf -v "GW_PID_$1" '%s' "$2"
}

# start_gw NAME CONFIG: starts pushgw, sets GW_PORT_<NAME> and GW_PID_<NAME>.
# A test that wants it not to start says so first with GW_EXPECT_START_FAILURE=1.
start_gw() {
	local name="$1" cfg="$2" log="$WORK/gw-$1.log"
	local old="GW_PID_$name"
	# a restart under the same name keeps the previous instance's log
	if [ -n "${!old:-}" ] && [ -f "$log" ]; then
		mv "$log" "$log.${!old}"
		GW_LOG_OF[${!old}]="$log.${!old}"
	fi
	$WRAP $PUSHGW -c "$cfg" 2>"$log" &
	local pid=$!
	PIDS+=($pid)
	gw_track "$name" "$pid" "$log"
	[ "${GW_EXPECT_START_FAILURE:-0}" = 1 ] && GW_EXPECT_OF[$pid]=start_failure
	local i port=""
	for i in $(seq 1 200); do
		port=$(grep -m1 '"pushgw listening"' "$log" 2>/dev/null | jq -r .addr | sed 's/.*://')
		[ -n "$port" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	printf -v "GW_PORT_$name" '%s' "$port"
	[ -n "$port" ] || { echo "pushgw $name did not start:" >&2; cat "$log" >&2; return 1; }
}

# api NAME METHOD PATH [BODY] [KEY]: sets STATUS and BODY (and HEADERS).
api() {
	local port="GW_PORT_$1" method="$2" path="$3" body="${4:-}" key="${5-$KEY_WAKE}"
	local args=(-sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -X "$method")
	[ -n "$key" ] && args+=(-H "Authorization: Bearer $key")
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	STATUS=$(curl "${args[@]}" "http://127.0.0.1:${!port}$path")
	BODY=$(cat "$WORK/body")
	HEADERS=$(cat "$WORK/headers")
}

# wake_body TOKEN [CALL_ID] [extra jq filter]
wake_body() {
	jq -cn --arg t "$1" --arg c "${2:-call-1@pbx}" '{
	  devices: [{provider: "apns", token: $t, app: "phone"}],
	  call: {id: $c, from: "+15551234567", from_name: "Alice", to: "1001", data: {room: "blue"}}
	} | '"${3:-.}"
}

jqb() { echo "$BODY" | jq -r "$@"; }

# gw_alive NAME: the process is still running.
gw_alive() { local pid="GW_PID_$1"; kill -0 "${!pid}" 2>/dev/null; }

# gw_running PID: PID is a background job of this shell still running (a
# pid that exited may since belong to another process: never signal it).
gw_running() { jobs -pr | grep -qx "$1"; }

# gw_term_wait PID: SIGTERM (unless it already exited) and wait at most
# GW_STOP_WAIT_S; sets GW_EXIT (124 and a SIGKILL when it did not stop).
gw_term_wait() {
	local i
	if ! gw_running "$1"; then
		wait "$1" 2>/dev/null; GW_EXIT=$? # its saved status
		return
	fi
	kill -TERM "$1" 2>/dev/null
	for i in $(seq 1 $((GW_STOP_WAIT_S * 10))); do
		gw_running "$1" || break
		sleep 0.1
	done
	if gw_running "$1"; then
		kill -9 "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		GW_EXIT=124
		return
	fi
	wait "$1"; GW_EXIT=$?
}

stop_gw() { # stop_gw NAME: SIGTERM and wait; sets GW_EXIT
	local pid="GW_PID_$1"
	gw_term_wait "${!pid}"
}

# kill9_gw NAME: a crash on purpose; summary() does not hold its exit
# status against it.
kill9_gw() {
	local pid="GW_PID_$1"
	GW_EXPECT_OF[${!pid}]=killed
	gw_running "${!pid}" && kill -9 "${!pid}" 2>/dev/null
	wait "${!pid}" 2>/dev/null
}

# pg_start: a throw-away PostgreSQL server for this suite
# (scripts/pg-test-cluster.sh); sets PGDIR and PGURL; resumed if frozen,
# stopped and removed at exit. Fails the suite when it cannot start.
pg_start() {
	# Not under $WORK: as root the server runs as "postgres", which cannot
	# enter a private mktemp folder.
	PGDIR=$(mktemp -d "${TMPDIR:-/tmp}/pushgw-pg.XXXXXX")
	chmod 755 "$PGDIR"
	trap 'kill -CONT $(pg_pids) 2>/dev/null; scripts/pg-test-cluster.sh destroy "$PGDIR/pg" >/dev/null 2>&1; rm -rf "$PGDIR"; cleanup' EXIT
	if ! PGURL=$(scripts/pg-test-cluster.sh start "$PGDIR/pg"); then
		bad "scripts/pg-test-cluster.sh could not start a PostgreSQL server"
		summary
		exit 1
	fi
}
# The server's processes: the postmaster and its children (by process id),
# for SIGSTOP/SIGCONT (a database that hangs).
pg_pids() {
	local pm
	pm=$(head -n1 "$PGDIR/pg/data/postmaster.pid" 2>/dev/null) || return 0
	[ -n "$pm" ] && echo "$pm" $(pgrep -P "$pm")
}

# The lines a sanitizer report starts with, in a gateway log.
SANITIZER_REPORT='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer'

# gw_verify_all: stop the gateways still running, then one failure per
# gateway that exited non-zero (unless killed on purpose or expected not to
# start) or whose log holds a sanitizer report.
gw_verify_all() {
	local pid name log rc expect saved=$CURRENT
	CURRENT="every gateway exits 0 on SIGTERM with no sanitizer report"
	for pid in "${GW_STARTED[@]}"; do
		name=${GW_NAME_OF[$pid]}; log=${GW_LOG_OF[$pid]}; expect=${GW_EXPECT_OF[$pid]:-}
		gw_term_wait "$pid"; rc=$GW_EXIT
		if grep -Eq "$SANITIZER_REPORT" "$log" 2>/dev/null; then
			bad "gateway $name (pid $pid): sanitizer report in $(basename "$log"):"
			grep -E -A14 "$SANITIZER_REPORT" "$log" | head -n 40 | sed 's/^/    /' >&2
		elif [ "$rc" = 124 ]; then
			bad "gateway $name (pid $pid) did not exit within ${GW_STOP_WAIT_S} s of SIGTERM"
		elif [ "$rc" = 127 ]; then
			bad "gateway $name (pid $pid): exit status lost (wait it with stop_gw or gw_term_wait)"
		elif [ "$rc" != 0 ] && [ -z "$expect" ]; then
			bad "gateway $name (pid $pid) exited $rc on SIGTERM; log tail:"
			tail -n 8 "$log" 2>/dev/null | sed 's/^/    /' >&2
		elif [ "$expect" = start_failure ] && [ "$rc" = 0 ]; then
			bad "gateway $name (pid $pid) was expected not to start but ran and exited 0"
		fi
	done
	GW_STARTED=()
	CURRENT=$saved
}
