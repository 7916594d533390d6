#!/usr/bin/env bash
# Harness for the end-to-end test (sourced by tests/e2e/run.sh): installs
# Kamailio and SIPp when missing, starts the APNs/FCM simulator, pushgw and
# Kamailio on free loopback ports, and emulates phones and callers with
# SIPp. Builds on tests/integration/lib.sh (work dir, cleanup, simulator,
# gateway config, named checks).
# shellcheck disable=SC2034 # HAVE_FCM, PUSH_DATA, PHONE_RC… are read by run.sh

E2E=tests/e2e
SCEN=$E2E/scenarios
KAMAILIO_CFG=deploy/pbx/kamailio/kamailio.cfg
KAM_MODULES=(tm tmx sl rr pv maxfwd textops siputils xlog usrloc registrar tsilo htable
	mqueue rtimer http_client jansson)
KAM_PACKAGES=(kamailio kamailio-utils-modules kamailio-extra-modules sip-tester)
HOLD_S=4 # PUSH_HOLD_S given to Kamailio: how long a call waits for a phone
FCM_PROJECT=demo-project
APNS_PN_PARAM="TEAM123456.com.example.phone.voip"

# e2e_skip REASON…: the suite cannot run here. That is a failure (a green
# `make test` must mean the call flow was exercised) unless the user opted
# out with PUSHGW_E2E=0.
e2e_skip() {
	if [ "${PUSHGW_E2E:-1}" = 0 ]; then
		echo "e2e: skipped (PUSHGW_E2E=0): $*"
		echo "e2e: 0 passed, 0 failed"
		exit 0
	fi
	echo "e2e: NOT RUN, counted as a failure: $*" >&2
	echo "e2e: set PUSHGW_E2E=0 to skip the end-to-end test on purpose" >&2
	echo "e2e: 0 passed, 1 failed"
	exit 1
}

# PUSHGW_E2E=0: skip at once, without installing anything.
e2e_opted_out() {
	[ "${PUSHGW_E2E:-1}" = 0 ] && e2e_skip "the end-to-end test was turned off"
	return 0
}

e2e_abort() {
	echo "e2e: $*" >&2
	echo "e2e: 0 passed, 1 failed"
	exit 1
}

kam_modules_dir() {
	local d
	for d in /usr/lib/x86_64-linux-gnu/kamailio/modules /usr/lib/*/kamailio/modules \
		/usr/lib/kamailio/modules /usr/local/lib64/kamailio/modules /usr/local/lib/kamailio/modules; do
		[ -f "$d/tm.so" ] && { echo "$d"; return 0; }
	done
	return 1
}

e2e_tools_present() {
	command -v kamailio >/dev/null && command -v sipp >/dev/null || return 1
	local dir m
	dir=$(kam_modules_dir) || return 1
	for m in "${KAM_MODULES[@]}"; do
		[ -f "$dir/$m.so" ] || return 1
	done
}

# Installs Kamailio and SIPp from Debian when missing (as root), else skips.
e2e_ensure_tools() {
	e2e_tools_present && return 0
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		e2e_skip "Kamailio/SIPp missing and not root with apt-get to install them" \
			"(apt-get install ${KAM_PACKAGES[*]})"
	fi
	echo "e2e: installing ${KAM_PACKAGES[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends "${KAM_PACKAGES[@]}" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 &&
		  apt-get install -y -qq --no-install-recommends "${KAM_PACKAGES[@]}" >/dev/null 2>&1; } ||
		e2e_skip "apt-get could not install ${KAM_PACKAGES[*]}"
	e2e_tools_present || e2e_skip "installed ${KAM_PACKAGES[*]}, but kamailio, sipp or a module is still missing"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# free_port udp|tcp: a loopback port nobody listens on right now, below the
# kernel's ephemeral range (32768 up), where the tests' own outgoing
# connections would otherwise take it before the server binds it.
free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		[ -z "$(ss -Hln"${1:0:1}" "sport = :$p" 2>/dev/null)" ] && { echo "$p"; return 0; }
	done
	return 1
}

# wait_bound udp|tcp PORT: until something listens there (2 s at most).
wait_bound() {
	local i
	for i in $(seq 1 200); do
		[ -n "$(ss -Hln"${1:0:1}" "sport = :$2" 2>/dev/null)" ] && return 0
		sleep 0.01
	done
	return 1
}

# ---- the stack ----------------------------------------------------------

sim_has_fcm() { "$PUSHSIM" --help 2>&1 | grep -q -- --fcm-project; }

# e2e_start_stack: simulator A (APNs, and FCM when it has it), pushgw G
# with app "phone" on both, Kamailio running the shipped recipe.
e2e_start_stack() {
	HAVE_FCM=0
	make_certs
	if sim_has_fcm; then
		HAVE_FCM=1
		# shellcheck disable=SC2086 # E2E_SIM_ARGS: extra pushsim options
		start_sim A --sa-pub "pushgw-e2e@$FCM_PROJECT.iam.gserviceaccount.com=$WORK/certs/sa_pub.pem" \
			--fcm-project "$FCM_PROJECT" ${E2E_SIM_ARGS:-}
		bash tests/sim/make-sa.sh "$WORK/certs" "https://127.0.0.1:$SIM_PORT_A/token" "$FCM_PROJECT" \
			"pushgw-e2e@$FCM_PROJECT.iam.gserviceaccount.com" || e2e_abort "make-sa.sh failed"
		write_config "$WORK/gw.json" A \
			'.apps.phone.fcm = {service_account_file: ($certs + "/service-account.json"), url: ("https://127.0.0.1:" + $port)}'
	else
		# shellcheck disable=SC2086
		start_sim A ${E2E_SIM_ARGS:-}
		write_config "$WORK/gw.json" A
	fi
	[ -n "${SIM_CTL_A:-}" ] || e2e_abort "the simulator did not start: $(cat "$WORK/sim-A.err")"
	start_gw G "$WORK/gw.json" || e2e_abort "pushgw did not start"
	start_kamailio || e2e_abort "Kamailio did not start"
}

# start_kamailio: the recipe as shipped, settings on the command line.
start_kamailio() {
	KAM_PORT=$(free_port udp)
	mkdir -p "$WORK/kam"
	# shellcheck disable=SC2086 # KAM_DEBUG is a list of flags, e.g. "-ddd"
	PUSHGW_KEY="$KEY_WAKE" kamailio -f "$KAMAILIO_CFG" -DD -E -m 64 -M 8 ${KAM_DEBUG:-} \
		-Y "$WORK/kam" -P "$WORK/kam/kamailio.pid" \
		-A "SIP_LISTEN=udp:127.0.0.1:$KAM_PORT" \
		-A "PUSHGW_URL=\"http://127.0.0.1:$GW_PORT_G\"" \
		-A "PUSH_HOLD_S=$HOLD_S" >"$WORK/kamailio.log" 2>&1 &
	KAM_PID=$!
	PIDS+=("$KAM_PID")
	wait_bound udp "$KAM_PORT" && sleep 0.2 && kill -0 "$KAM_PID" 2>/dev/null && return 0
	tail -n 30 "$WORK/kamailio.log" >&2
	return 1
}

# ---- SIPp ---------------------------------------------------------------

# sipp_common NAME: the options every SIPp run shares; traces in $WORK.
sipp_common() {
	echo -i 127.0.0.1 -bind_local -nostdin -m 1 -timeout 20s -timeout_error \
		-cp "$(free_port udp)" -mp "$(free_port udp)" \
		-trace_logs -log_file "$WORK/$1.log" -trace_err -error_file "$WORK/$1.err" \
		-trace_msg -message_file "$WORK/$1.msg"
}

# sipp_run NAME [sipp args…]: a SIPp client against Kamailio, in the
# foreground; returns SIPp's exit status (0: the scenario completed).
sipp_run() {
	local name="$1"; shift
	# shellcheck disable=SC2046 # sipp_common's words are separate options
	sipp 127.0.0.1:"$KAM_PORT" -p "$(free_port udp)" $(sipp_common "$name") "$@" >"$WORK/$name.out" 2>&1
}

# register NAME EXT PN INSTANCE CONTACT_PORT [CONTACT_USER]: one REGISTER
# with a Contact carrying PN (the pn-* URI parameters); 200 expected.
register() {
	sipp_run "$1" -sf "$SCEN/register.xml" -s "$2" -key pn "$3" -key instance "$4" \
		-key contact_port "$5" -key contact_user "${6:-$2}" -key expires 3600
}

# The RFC 8599 Contact parameters of an iOS VoIP app, of an iOS app with a
# VoIP and a remote (alert) token as Linphone registers them (VOIP REMOTE),
# and of an Android app.
apns_pn() { echo "pn-provider=apns;pn-param=$APNS_PN_PARAM;pn-prid=$1"; }
apns_pn_both() { echo "pn-provider=apns;pn-param=${APNS_PN_PARAM%.voip}.remote&voip;pn-prid=$2:remote&$1:voip"; }
fcm_pn() { echo "pn-provider=fcm;pn-param=$FCM_PROJECT;pn-prid=$1"; }

# ---- what reached the simulator ------------------------------------------

# pushes_for TOKEN TYPE [delivered]: the simulator's records of TYPE
# ("call", "cancel") pushes to TOKEN, APNs or FCM, or only those it
# accepted; each gets .data, the app's payload (APNs body, FCM
# message.data).
pushes_for() {
	sim_ctl A GET /requests | jq -c --arg t "$1" --arg type "$2" --arg only "${3:-}" '[.[]
		| select(.token == $t and (.kind == "apns" or .kind == "fcm"))
		| select($only != "delivered" or .status == 200)
		| .data = ((.body | fromjson? // {}) as $b | if .kind == "fcm" then ($b.message.data // {}) else $b end)
		| select(.data.type == $type)]'
}

# sim_seen: how many requests the simulator has taken (cheap to poll).
sim_seen() {
	local st a=0 f=0
	st=$(curl -s "http://127.0.0.1:$SIM_CTL_A/stats")
	[[ $st =~ \"requests\":([0-9]+) ]] && a=${BASH_REMATCH[1]}
	[[ $st =~ \"fcm_requests\":([0-9]+) ]] && f=${BASH_REMATCH[1]}
	echo $((a + f))
}

# one_push_to TOKEN TYPE: checks that exactly one such push arrived; sets
# PUSH (its record, with .data) and PUSH_DATA.
one_push_to() {
	local all; all=$(pushes_for "$1" "$2")
	expect_eq "exactly one $2 push to ${1:0:10}…" "$(jq length <<<"$all")" 1
	PUSH=$(jq -c '.[0] // {}' <<<"$all")
	PUSH_DATA=$(jq -c '.data // {}' <<<"$PUSH")
}

# wait_push TOKEN TYPE: until such a push reached the simulator (3 s).
wait_push() {
	local _
	for _ in $(seq 1 300); do
		[ "$(pushes_for "$1" "$2" | jq length)" -ge 1 ] && return 0
		sleep 0.01
	done
	return 1
}

# ---- phones ---------------------------------------------------------------

# phone_on_push NAME TOKEN EXT PN INSTANCE SCENARIO: the phone app, asleep
# until a call push for TOKEN is delivered (accepted by the simulator);
# then, as an app woken by a push does, it binds a new socket, registers
# from it (same instance, same push parameters) and runs SCENARIO there.
# Writes NAME.rc: SIPp's exit status; 90: no push within 10 s or stopped
# before one came (stop_phone). PHONE_CONTACT_USER: its Contact's user part
# (default: the extension).
phone_on_push() {
	local name="$1" token="$2" ext="$3" pn="$4" inst="$5" scen="$6"
	local deadline=$(($(now_ms) + 10000)) seen=-1 n
	while :; do
		n=$(sim_seen)
		if [ "$n" != "$seen" ]; then
			seen=$n
			[ "$(pushes_for "$token" call delivered | jq length)" -ge 1 ] && break
		fi
		if [ -e "$WORK/$name.stop" ] || [ "$(now_ms)" -ge "$deadline" ]; then
			echo 90 >"$WORK/$name.rc"
			return
		fi
		sleep 0.005
	done
	local port; port=$(free_port udp)
	# shellcheck disable=SC2046
	sipp -sf "$scen" -p "$port" $(sipp_common "$name") >"$WORK/$name.out" 2>&1 &
	local uas=$!
	echo "$uas" >"$WORK/$name.pid"
	wait_bound udp "$port"
	register "$name-reg" "$ext" "$pn" "$inst" "$port" "${PHONE_CONTACT_USER:-$ext}" ||
		echo "re-REGISTER failed" >>"$WORK/$name.err"
	wait "$uas"
	echo $? >"$WORK/$name.rc"
}

# stop_phone NAME: the call is over for the caller; a phone still waiting
# for its push gives up, and one still waiting for SIP is ended.
stop_phone() {
	touch "$WORK/$1.stop"
	[ -s "$WORK/$1.pid" ] && kill "$(cat "$WORK/$1.pid")" 2>/dev/null
	return 0
}

# start_phone NAME …: phone_on_push in the background.
start_phone() {
	phone_on_push "$@" &
	printf -v "PHONE_PID_${1//-/_}" '%s' "$!"
}

# wait_phone NAME: waits for it (not from a subshell); sets PHONE_RC.
wait_phone() {
	local p="PHONE_PID_${1//-/_}"
	wait "${!p}" 2>/dev/null
	PHONE_RC=$(cat "$WORK/$1.rc" 2>/dev/null || echo 91)
}

# start_listener NAME PORT SCENARIO: a SIPp server on PORT in the
# background, ended by stop_listener.
start_listener() {
	# shellcheck disable=SC2046
	sipp -sf "$3" -p "$2" $(sipp_common "$1") >"$WORK/$1.out" 2>&1 &
	echo "$!" >"$WORK/$1.pid"
	wait_bound udp "$2"
}

# stop_listener NAME: ends it unless it is done; LISTENER_RC = its status.
stop_listener() {
	local pid; pid=$(cat "$WORK/$1.pid")
	sleep 0.2
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	LISTENER_RC=$?
}

# requests_to NAME METHOD: how many METHOD requests reached SIPp run NAME.
requests_to() {
	local n; n=$(grep -c "^$2 " "$WORK/$1.msg" 2>/dev/null)
	echo "${n:-0}"
}

# ---- times --------------------------------------------------------------

# log_time NAME EVENT: ms time of a "t EVENT <s> <us>" line in NAME.log.
log_time() {
	awk -v e="$2" '$1 == "t" && $2 == e { printf "%.0f\n", $3 * 1000 + int($4 / 1000); exit }' \
		"$WORK/$1.log" 2>/dev/null
}

# msg_time NAME METHOD: ms time of the first METHOD request in SIPp's
# message trace NAME.msg (each message follows a "---- date time" line).
msg_time() {
	local stamp
	stamp=$(awk -v m="$2" '/^-----/ { d = $2 " " $3 } $1 == m { print d; exit }' "$WORK/$1.msg" 2>/dev/null)
	[ -n "$stamp" ] && date -d "$stamp" +%s%3N
}

show_failure_logs() {
	local f
	for f in "$@"; do
		[ -s "$WORK/$f" ] && { echo "--- $f" >&2; tail -n 25 "$WORK/$f" >&2; }
	done
}
