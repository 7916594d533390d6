#!/usr/bin/env bash
# A real SIP client for the tests: Debian's linphonec (linphone-cli,
# liblinphone 5.1, the SDK inside most Linphone-family apps), headless.
# Sourced by tests/integration/test_sip.sh and tests/e2e/run.sh, after
# tests/integration/lib.sh (WORK, free_port, now_ms).
#
# What it needs to run without a desktop, found by trying:
#   - its own HOME with $HOME/.local/share/linphone (without that folder the
#     core stalls at its database and never registers, silently);
#   - stdin kept open (a FIFO opened read-write): at EOF linphonec exits;
#   - network state monitoring left on (auto_net_state_mon=0 makes the
#     network never count as reachable: nothing registers);
#   - -a: auto-answer; with no sound card it answers all the same.
# SIGKILL is the app put to sleep: no un-REGISTER, the TCP connection drops.
#
#   linphone_setup NAME EXT PROXY_URI PN UUID TRANSPORT
#   linphone_start NAME        (again after linphone_kill: the woken app)
#   linphone_kill NAME         SIGKILL; linphone_kill_all at the end of a test
#   linphone_wait NAME STATE N [S]  until its last log shows STATE N times
# LINPHONEC=… runs another binary.

# shellcheck disable=SC2034 # the LP_* patterns are read by the test files
LINPHONEC=${LINPHONEC:-linphonec}
LP_RUNNING=() # "NAME:PID" of the instances still running

# linphone_present: linphonec is there, else a failure (not a skip: the
# test packages, scripts/deps.sh, include linphone-cli).
# Runs it once (-v) so that its 180 libraries are in the page cache: a cold
# start takes 0.7 s before its first log line, a warm one 0.1 s.
linphone_present() {
	if ! command -v "$LINPHONEC" >/dev/null; then
		bad "$LINPHONEC not found (apt-get install linphone-cli; scripts/deps.sh installs it)"
		return 1
	fi
	timeout 20 "$LINPHONEC" -v >/dev/null 2>&1
	return 0
}

# linphone_setup NAME EXT PROXY_URI PN UUID TRANSPORT: a HOME and an rc for
# phone NAME: identity sip:EXT@127.0.0.1 (the PBX's domain; password
# "secret"), every REGISTER and request sent to PROXY_URI (pushgw's SIP
# listener, or the PBX), PN (the RFC 8599 pn-* parameters) in its Contact,
# +sip.instance UUID kept across restarts, listening on TRANSPORT (udp|tcp)
# at a port chosen now; RTP on free ports, no video.
linphone_setup() {
	local name="$1" ext="$2" proxy="$3" pn="$4" uuid="$5" transport="$6"
	local home="$WORK/$name.home" udp=0 tcp=0
	mkdir -p "$home/.local/share/linphone"
	if [ "$transport" = tcp ]; then tcp=$(free_port tcp); else udp=$(free_port udp); fi
	cat >"$home/linphonerc" <<EOF
[sip]
sip_port=$udp
sip_tcp_port=$tcp
sip_tls_port=0
default_proxy=0
ipv6_enabled=0

[proxy_0]
reg_proxy=$proxy
reg_identity=sip:$ext@127.0.0.1
reg_expires=3600
reg_sendregister=1
publish=0
contact_uri_parameters=$pn

[auth_info_0]
username=$ext
passwd=secret
realm=127.0.0.1
domain=127.0.0.1

[misc]
uuid=$uuid

[rtp]
audio_rtp_port=$(free_port udp)
video_rtp_port=$(free_port udp)
text_rtp_port=$(free_port udp)

[video]
capture=0
display=0
EOF
	[ -e "$home/stdin" ] || mkfifo -m 600 "$home/stdin"
}

# linphone_start NAME: linphonec -a in the background on NAME's rc, its
# stdin the FIFO (held open read-write by itself), a full log per run in
# NAME.home/linphone-<run>.log (linphonec truncates its -l file), its
# stdout in NAME.home/out; LP_RUN_<NAME> = the run (1, 2…),
# LP_START_<NAME> = its start time (ms).
linphone_start() {
	local name="$1" home="$WORK/$1.home" v="LP_RUN_${1//-/_}"
	printf -v "$v" '%s' $((${!v:-0} + 1))
	printf -v "LP_START_${name//-/_}" '%s' "$(now_ms)"
	HOME="$home" "$LINPHONEC" -a -c "$home/linphonerc" -d 6 -l "$home/linphone-${!v}.log" \
		<>"$home/stdin" >>"$home/out" 2>&1 &
	printf -v "LP_PID_${name//-/_}" '%s' "$!"
	LP_RUNNING+=("$name:$!")
}

# linphone_kill NAME: SIGKILL (no un-REGISTER) and reap it.
linphone_kill() {
	local p="LP_PID_${1//-/_}" i keep=()
	[ -n "${!p:-}" ] || return 0
	kill -9 "${!p}" 2>/dev/null
	wait "${!p}" 2>/dev/null
	for i in "${LP_RUNNING[@]}"; do [ "$i" = "$1:${!p}" ] || keep+=("$i"); done
	LP_RUNNING=("${keep[@]}")
	printf -v "$p" '%s' ""
}

# linphone_kill_all: every instance still running (end of a test, or exit).
linphone_kill_all() {
	local i
	for i in "${LP_RUNNING[@]}"; do linphone_kill "${i%%:*}"; done
	LP_RUNNING=()
}

# linphone_log NAME [RUN]: the log file of NAME's run RUN (default: the last).
linphone_log() {
	local v="LP_RUN_${1//-/_}"
	echo "$WORK/$1.home/linphone-${2:-${!v:-1}}.log"
}

# linphone_count NAME PATTERN [RUN]: lines of the run's log matching
# PATTERN (ERE).
linphone_count() {
	local n; n=$(grep -cE -- "$2" "$(linphone_log "$1" "${3:-}")" 2>/dev/null)
	echo "${n:-0}"
}

# The log lines of liblinphone's state changes.
LP_REGISTERED='to \[LinphoneRegistrationOk\]'
LP_CALL_IN='moving from state [A-Za-z]+ to LinphoneCallIncomingReceived'
LP_CALL_UP='moving from state [A-Za-z]+ to LinphoneCall(Connected|StreamsRunning)'
LP_CALL_END='moving from state [A-Za-z]+ to LinphoneCall(End|Released)'

# linphone_wait NAME PATTERN N [SECONDS]: until the last run's log has N
# lines matching PATTERN (default 5 s); 1 when it did not come, or when
# linphonec died.
linphone_wait() {
	local name="$1" pat="$2" n="$3" s="${4:-5}" p="LP_PID_${1//-/_}" i
	for i in $(seq 1 $((s * 50))); do
		[ "$(linphone_count "$name" "$pat")" -ge "$n" ] && return 0
		[ -n "${!p:-}" ] && ! kill -0 "${!p}" 2>/dev/null && return 1
		sleep 0.02
	done
	return 1
}

# linphone_log_ms NAME PATTERN [RUN]: the time (ms since the epoch) of the
# first line of the run's log matching PATTERN; its lines start with local
# "YYYY-MM-DD HH:MM:SS:mmm".
linphone_log_ms() {
	local line
	line=$(grep -m1 -E -- "$2" "$(linphone_log "$1" "${3:-}")" 2>/dev/null)
	[[ $line =~ ^([0-9-]+\ [0-9:]+):([0-9]{3}) ]] || return 0
	echo "$(date -d "${BASH_REMATCH[1]}" +%s)${BASH_REMATCH[2]}"
}

# linphone_contact NAME [RUN]: the Contact header of the run's first REGISTER.
linphone_contact() {
	awk '/^REGISTER sip:/ { r = 1 } r && /^Contact:/ { print; exit }' \
		"$(linphone_log "$1" "${2:-}")" 2>/dev/null | tr -d '\r'
}

# linphone_show NAME: its SIP messages' first lines and its state changes,
# the last 40, on stderr (a failing test's evidence).
linphone_show() {
	local f
	for f in "$WORK/$1.home"/linphone-*.log; do
		echo "--- $1.home/$(basename "$f") (SIP and states)" >&2
		grep -E '^(SIP/2.0 |[A-Z]+ sip:)|moving from state|error' "$f" |
			grep -vE 'alsa error|soundcard|mkv|bctbx_file_open' | tail -n 30 >&2
	done
}
