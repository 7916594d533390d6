#!/usr/bin/env bash
# The SIP edge (docs/sip-edge.md) in front of an unchanged PBX: Kamailio as
# a plain registrar+proxy with digest authentication
# (tests/sip/kamailio-registrar.cfg), pushgw between it and the phones,
# the APNs simulator. Phones are tests/sip/phone.py (they register from the
# socket they are then called on); callers are SIPp against Kamailio.
#   BUILD=build bash tests/integration/test_sip.sh
#   SIP_TESTS="t_sleeping_tcp t_foreground" …   runs only those
# Kamailio and SIPp are installed as tests/e2e does (PUSHGW_E2E=0 skips).
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/e2e/lib.sh
e2e_opted_out
e2e_ensure_tools
source tests/integration/lib.sh
# Under LeakSanitizer, stacks are unwound in full for this suite only, so
# that tests/lsan.supp can name sofia-sip's known TLS leak by the sofia
# function that allocates it (the fast unwinder stops inside OpenSSL).
[ -n "${ASAN_OPTIONS:-}" ] && export ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0"
source tests/sip/linphone.sh
trap 'linphone_kill_all; cleanup' EXIT
for t in curl jq ss python3; do
	command -v "$t" >/dev/null || { echo "test_sip: missing $t"; echo "test_sip: 0 passed, 1 failed"; exit 1; }
done

SIPDIR=tests/sip
PHONE=$SIPDIR/phone.py
# A held INVITE's wait for the woken phone: a real linphonec, started cold
# beside two other suites under ASan on 2 cores, registers 1.5-2.9 s after
# its push (0.3-0.6 s when the machine is idle).
RING_TIMEOUT_S=5
CALLER_NUMBER="+15551234567"
TIMINGS=()

# ---- the stack ----

# start_registrar: Kamailio on a free UDP port (a second port if another
# process took the first meanwhile); up to 5 s to bind.
start_registrar() {
	local attempt i
	mkdir -p "$WORK/kam"
	for attempt in 1 2; do
		KAM_PORT=$(free_port udp)
		kamailio -f tests/sip/kamailio-registrar.cfg -DD -E -m 64 -M 8 -Y "$WORK/kam" \
			-P "$WORK/kam/kamailio.pid" -A "SIP_LISTEN=udp:127.0.0.1:$KAM_PORT" \
			>"$WORK/kamailio.log" 2>&1 &
		KAM_PID=$!
		PIDS+=("$KAM_PID")
		for i in $(seq 1 50); do
			kill -0 "$KAM_PID" 2>/dev/null || break
			if [ -n "$(ss -Hlnu "sport = :$KAM_PORT" 2>/dev/null)" ]; then
				sleep 0.2
				kill -0 "$KAM_PID" 2>/dev/null && return 0
			fi
			sleep 0.1
		done
		kill "$KAM_PID" 2>/dev/null
		wait "$KAM_PID" 2>/dev/null
	done
	echo "test_sip: Kamailio did not start:" >&2
	tail -n 30 "$WORK/kamailio.log" >&2
	return 1
}

# Fixed SIP ports: the PBX keeps the Contacts pushgw registered across a
# restart of pushgw.
SIP_UDP=$(free_port udp)
SIP_TCP=$(free_port tcp)
SIP_TLS=$(free_port tcp)

write_sip_config() {
	write_config "$WORK/gw.json" A
	jq --arg kam "$KAM_PORT" --arg u "$SIP_UDP" --arg t "$SIP_TCP" --arg s "$SIP_TLS" \
		--arg certs "$WORK/certs" --argjson rt "$RING_TIMEOUT_S" \
		'.sip = {listen: ["udp:127.0.0.1:" + $u, "tcp:127.0.0.1:" + $t, "tls:127.0.0.1:" + $s],
		         tls: {cert_file: ($certs + "/server.pem"), key_file: ($certs + "/server.key")},
		         public_host: "127.0.0.1",
		         backend: ("sip:127.0.0.1:" + $kam + ";transport=udp"), app: "phone",
		         backend_sources: ["127.0.0.2/32"],
		         ring_timeout_s: $rt}' "$WORK/gw.json" >"$WORK/gw.json.new" &&
		mv "$WORK/gw.json.new" "$WORK/gw.json"
}

# start_sip_gw: pushgw G; waits for its "sip listening" line.
start_sip_gw() {
	start_gw G "$WORK/gw.json" || return 1
	local i line=""
	for i in $(seq 1 100); do
		line=$(grep -m1 '"sip listening"' "$WORK/gw-G.log" 2>/dev/null) && break
		sleep 0.05
	done
	[ -n "$line" ] || { echo "pushgw did not log sip listening" >&2; cat "$WORK/gw-G.log" >&2; return 1; }
	SIP_LINE=$line
}

start_sim A
[ -n "${SIM_CTL_A:-}" ] || { echo "test_sip: the simulator did not start"; echo "test_sip: 0 passed, 1 failed"; exit 1; }
start_registrar || { echo "test_sip: 0 passed, 1 failed"; exit 1; }
write_sip_config
start_sip_gw || { echo "test_sip: pushgw with a sip section did not start"; echo "test_sip: 0 passed, 1 failed"; exit 1; }

# ---- helpers ----

# phone NAME TRANSPORT EXT PN INSTANCE MODE [extra phone.py args]: in the
# foreground; NAME.out holds its events, PHONE_RC its status.
phone() {
	local name="$1" transport="$2" ext="$3" pn="$4" inst="$5" mode="$6"; shift 6
	local port=$SIP_UDP
	[ "$transport" = tcp ] && port=$SIP_TCP
	[ "$transport" = tls ] && port=$SIP_TLS
	python3 "$PHONE" --transport "$transport" --port "$port" --user "$ext" --pn "$pn" \
		--instance "$inst" --mode "$mode" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
	PHONE_RC=$?
}

# phone_bg NAME …: the same in the background; wait_bg NAME gives PHONE_RC.
phone_bg() {
	phone "$@" &
	printf -v "BG_${1//-/_}" '%s' "$!"
}
wait_bg() {
	local p="BG_${1//-/_}"
	wait "${!p}"
	PHONE_RC=$?
}

# phone_event NAME EVENT: the event's JSON, or nothing.
phone_event() { grep -m1 "\"event\": \"$2\"" "$WORK/$1.out" 2>/dev/null; }

# caller NAME EXT SCENARIO: a SIPp caller against Kamailio, in the
# background (tests/e2e's scenarios); wait_caller NAME gives CALLER_RC.
caller() {
	sipp_run "$1" -sf "$3" -s "$2" &
	printf -v "CALLER_${1//-/_}" '%s' "$!"
}
wait_caller() {
	local p="CALLER_${1//-/_}"
	wait "${!p}"
	CALLER_RC=$?
}

# The Call-ID SIPp's caller NAME used.
caller_call_id() { awk '/^Call-ID:/ { print $2; exit }' "$WORK/$1.msg" | tr -d '\r'; }

uuid() { printf '00000000-0000-4000-8000-%012d' "$1"; }

# binding_of AOR_USER: the binding id pushgw logged for the extension's last registration.
binding_of() {
	grep '"sip registered"' "$WORK/gw-G.log" | jq -r --arg u "$1" 'select(.aor | startswith("sip:" + $u + "@")) | .binding' | tail -n1
}

metric() { curl -s "http://127.0.0.1:$GW_PORT_G/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# sleeping_phone_call NAME TRANSPORT EXT TOKEN PN: the phone registers and
# sleeps; a caller INVITEs its extension at Kamailio; the push must carry
# the caller and the Call-ID; the woken phone registers again on a new
# socket and answers; ACK and BYE pass.
sleeping_phone_call() {
	local name="$1" transport="$2" ext="$3" token="$4" pn="$5" inst
	inst=$(uuid "$ext")
	phone "$name-reg" "$transport" "$ext" "$pn" "$inst" register
	expect_eq "the phone registers through pushgw (exit)" "$PHONE_RC" 0
	check "the PBX's digest challenge reached the phone" test -n "$(phone_event "$name-reg" challenged)"
	check "the 2xx carries the phone's own Contact (pn-* included)" \
		bash -c "grep -q 'pn-prid=' <<<'$(phone_event "$name-reg" registered)'"
	caller "$name-caller" "$ext" "$E2E/scenarios/call.xml"
	if ! wait_push "$token" call; then
		bad "no call push reached the simulator"
		wait_caller "$name-caller"
		return
	fi
	phone "$name-woken" "$transport" "$ext" "$pn" "$inst" answer
	wait_caller "$name-caller"
	expect_eq "the woken phone answered, got ACK and BYE" "$PHONE_RC" 0
	expect_eq "the caller's call completed (200, ACK, BYE)" "$CALLER_RC" 0
	one_push_to "$token" call
	expect_eq "the push names the caller" "$(jq -r .from <<<"$PUSH_DATA")" "$CALLER_NUMBER"
	expect_eq "the push carries the display name" "$(jq -r .from_name <<<"$PUSH_DATA")" "Alice"
	expect_eq "the push carries the caller's Call-ID" "$(jq -r .call_id <<<"$PUSH_DATA")" \
		"$(caller_call_id "$name-caller")"
	check "the INVITE was Record-Routed through pushgw" \
		bash -c "grep -q '127.0.0.1' <<<'$(phone_event "$name-woken" invite | jq -c .record_route)'"
	record_timing "$name" "$token"
	show_on_failure "$name"
}

# record_timing NAME TOKEN: where a sleeping phone's call spent its time:
# the caller's INVITE to the push at the simulator (Kamailio + pushgw +
# HTTP/2), push to the woken phone's REGISTER answered (the emulated app,
# not the system under test), that 200 to the INVITE reaching the phone
# (pushgw releasing the held INVITE), and INVITE to 200 at the caller.
record_timing() {
	local inv push reg at_phone ans
	inv=$(log_time "$1-caller" invite)
	ans=$(log_time "$1-caller" answered)
	push=$(pushes_for "$2" call | jq -r '.[0].ts_ms // empty')
	reg=$(phone_event "$1-woken" registered | jq -r '.t * 1000 | floor')
	at_phone=$(phone_event "$1-woken" invite | jq -r '.t * 1000 | floor')
	[ -n "$inv" ] && [ -n "$push" ] && [ -n "$reg" ] && [ -n "$at_phone" ] && [ -n "$ans" ] || return 0
	TIMINGS+=("$1: INVITE→push $((push - inv)) ms, push→re-REGISTER answered $((reg - push)) ms (emulated app), REGISTER 200→INVITE at the phone $((at_phone - reg)) ms, INVITE→200 at the caller $((ans - inv)) ms")
}

show_on_failure() {
	[ "$FAILED" = 0 ] && return
	[ "${SHOWN:-}" = 1 ] && return
	SHOWN=1
	local f
	for f in "$WORK/$1"*.out "$WORK/$1"*.err "$WORK/gw-G.log" "$WORK/kamailio.log"; do
		[ -s "$f" ] && { echo "--- $(basename "$f")" >&2; tail -n 15 "$f" >&2; }
	done
	[ -d "$WORK/$1.home" ] && linphone_show "$1"
	return 0
}

# linphone_sleeping_call NAME TRANSPORT EXT VOIP_TOKEN PN: the real
# linphonec registers through pushgw (PN in its Contact, digest for
# Kamailio), is killed with SIGKILL (asleep: no un-REGISTER); a caller
# INVITEs its extension at Kamailio; once the push is at the simulator the
# same linphonec config starts again (the woken app), registers again
# through pushgw and auto-answers; the caller gets 200, ACK, BYE.
linphone_sleeping_call() {
	local name="$1" transport="$2" ext="$3" token="$4" pn="$5" port=$SIP_UDP
	local inst t0 t_reg push_ms t_rereg ans inv line contact
	[ "$transport" = tcp ] && port=$SIP_TCP
	inst=$(uuid "$ext")
	linphone_setup "$name" "$ext" "<sip:127.0.0.1:$port;transport=$transport>" "$pn" "$inst" "$transport"
	linphone_start "$name"
	if ! linphone_wait "$name" "$LP_REGISTERED" 1 10; then
		bad "linphonec did not register through pushgw within 10 s"
		linphone_kill_all
		show_on_failure "$name"
		return
	fi
	ok
	t0="LP_START_${name//-/_}"; t0=${!t0}
	t_reg=$(linphone_log_ms "$name" "$LP_REGISTERED" 1)
	check "the PBX's digest challenge reached linphonec (401)" test "$(linphone_count "$name" '^SIP/2.0 401')" -ge 1
	contact=$(linphone_contact "$name")
	check "its REGISTER's Contact carries the pn-* parameters ($contact)" grep -qF ";$pn" <<<"$contact"
	check "and its +sip.instance" grep -qF "+sip.instance=\"<urn:uuid:$inst>\"" <<<"$contact"
	line=$(grep '"sip registered"' "$WORK/gw-G.log" | grep "\"aor\":\"sip:$ext@" | tail -n1)
	expect_eq "pushgw resolved its push target" "$(jq -r .push <<<"$line")" yes
	expect_eq "over $transport" "$(jq -r .flow <<<"$line")" "$transport"

	linphone_kill "$name"
	caller "$name-caller" "$ext" "$E2E/scenarios/call.xml"
	if ! wait_push "$token" call; then
		bad "no call push reached the simulator"
		wait_caller "$name-caller"
		show_on_failure "$name"
		return
	fi
	linphone_start "$name"
	wait_caller "$name-caller"
	linphone_wait "$name" "$LP_CALL_END" 1 3
	linphone_kill_all
	expect_eq "the caller's call completed (200, ACK, BYE; sipp exit)" "$CALLER_RC" 0
	expect_eq "the woken linphonec registered again" "$(linphone_count "$name" "$LP_REGISTERED")" 1
	# Over TCP its Contact's port is the connection's, so it changes.
	expect_eq "with the same Contact (but its port)" "$(linphone_contact "$name" 2 | sed 's/:[0-9]*;/:PORT;/')" \
		"$(sed 's/:[0-9]*;/:PORT;/' <<<"$contact")"
	expect_eq "it got the INVITE once" "$(linphone_count "$name" "$LP_CALL_IN")" 1
	check "it answered" test "$(linphone_count "$name" "$LP_CALL_UP")" -ge 1
	check "the caller's BYE ended the call" test "$(linphone_count "$name" "$LP_CALL_END")" -ge 1
	one_push_to "$token" call
	expect_eq "the push is a VoIP push" "$(jq -r '.headers["apns-push-type"]' <<<"$PUSH")" voip
	expect_eq "the push names the caller" "$(jq -r .from <<<"$PUSH_DATA")" "$CALLER_NUMBER"
	expect_eq "the push carries the display name" "$(jq -r .from_name <<<"$PUSH_DATA")" "Alice"
	expect_eq "the push carries the caller's Call-ID" "$(jq -r .call_id <<<"$PUSH_DATA")" \
		"$(caller_call_id "$name-caller")"
	line=$(grep '"sip call"' "$WORK/gw-G.log" | jq -c --arg c "$(caller_call_id "$name-caller")" 'select(.call_id == $c)')
	expect_eq "the call's log line: answered" "$(jq -r .outcome <<<"$line")" answered
	expect_eq "the call's log line: pushed" "$(jq -r .pushed <<<"$line")" true
	expect_eq "the call's log line: woke" "$(jq -r .woke <<<"$line")" true
	check "the call's log line: woke after wake_ms ($(jq -r .wake_ms <<<"$line") ms) under ring_timeout_s" \
		jq -e --argjson max $((RING_TIMEOUT_S * 1000)) '.wake_ms >= 0 and .wake_ms < $max' <<<"$line"
	push_ms=$(pushes_for "$token" call | jq -r '.[0].ts_ms // empty')
	t_rereg=$(linphone_log_ms "$name" "$LP_REGISTERED" 2)
	inv=$(log_time "$name-caller" invite); ans=$(log_time "$name-caller" answered)
	[ -n "$t_reg" ] && [ -n "$push_ms" ] && [ -n "$t_rereg" ] && [ -n "$inv" ] && [ -n "$ans" ] &&
		TIMINGS+=("$name: registered $((t_reg - t0)) ms after start; push→re-REGISTER 200 at linphonec $((t_rereg - push_ms)) ms (starting linphonec), pushgw's wake_ms $(jq -r .wake_ms <<<"$line"); INVITE→200 at the caller $((ans - inv)) ms")
	show_on_failure "$name"
}

t_linphone_sleeping() {
	begin "linphonec over TCP, Linphone's pn-* dialect: killed, woken by push, registers again through pushgw and answers"
	local voip remote; voip=$(tok 120); remote=$(tok 1120)
	linphone_present || return
	linphone_sleeping_call linphone-tcp tcp 1020 "$voip" \
		"pn-provider=apns.dev;pn-param=TEAM123456.com.example.phone.voip&remote;pn-prid=$voip:voip&$remote:remote"
	expect_eq "no call push to its remote token" "$(pushes_for "$remote" call | jq length)" 0
}

# ---- tests ----

t_sleeping_tcp() {
	begin "a sleeping phone over TCP is woken by push, registers again and answers"
	sleeping_phone_call tcp tcp 1001 "$(tok 101)" "$(apns_pn "$(tok 101)")"
}

t_sleeping_udp() {
	begin "a sleeping phone over UDP is woken by push, registers again and answers"
	sleeping_phone_call udp udp 1002 "$(tok 102)" "$(apns_pn "$(tok 102)")"
}

t_sleeping_tls() {
	begin "a sleeping phone over TLS is woken by push, registers again and answers"
	sleeping_phone_call tls tls 1015 "$(tok 115)" "$(apns_pn "$(tok 115)")"
}

t_foreground() {
	begin "a phone whose flow is open gets the INVITE at once and answers without registering again"
	local ext=1003 token; token=$(tok 103)
	phone_bg fg tcp "$ext" "$(apns_pn "$token")" "$(uuid "$ext")" answer
	local i
	for i in $(seq 1 100); do phone_event fg registered >/dev/null && break; sleep 0.05; done
	caller fg-caller "$ext" "$E2E/scenarios/call.xml"
	wait_caller fg-caller
	wait_bg fg
	expect_eq "the caller's call completed" "$CALLER_RC" 0
	expect_eq "the phone answered on its first connection" "$PHONE_RC" 0
	expect_eq "it registered once" "$(grep -c '"event": "registered"' "$WORK/fg.out")" 1
	show_on_failure fg
}

t_caller_cancels() {
	begin "the caller hangs up first: 487 and a caller_cancelled cancel push"
	local ext=1004 voip remote
	voip=$(tok 104); remote=$(tok 1104)
	phone cancel-reg tcp "$ext" "$(apns_pn_both "$voip" "$remote")" "$(uuid "$ext")" register
	expect_eq "the phone registers" "$PHONE_RC" 0
	caller cancel-caller "$ext" "$SIPDIR/cancel_held.xml"
	wait_caller cancel-caller
	expect_eq "the caller got 487 for its cancelled INVITE" "$CALLER_RC" 0
	check "the wake push went out" wait_push "$voip" call
	check "a cancel push went out" wait_push "$remote" cancel
	expect_eq "the cancel says the caller cancelled" \
		"$(pushes_for "$remote" cancel | jq -r '.[0].data.reason')" caller_cancelled
	show_on_failure cancel
}

t_cancel_ringing() {
	begin "the caller hangs up while the phone rings: the CANCEL reaches the phone, 487 to the caller"
	local ext=1010 voip remote i
	voip=$(tok 110); remote=$(tok 1110)
	phone_bg ringing tcp "$ext" "$(apns_pn_both "$voip" "$remote")" "$(uuid "$ext")" ring
	for i in $(seq 1 100); do phone_event ringing registered >/dev/null && break; sleep 0.05; done
	caller ringing-caller "$ext" "$SIPDIR/cancel_ringing.xml"
	wait_caller ringing-caller
	wait_bg ringing
	expect_eq "the caller's CANCEL got 200 and its INVITE 487" "$CALLER_RC" 0
	expect_eq "the ringing phone got the CANCEL" "$PHONE_RC" 0
	check "a cancel push went out" wait_push "$remote" cancel
	show_on_failure ringing
}

t_malformed() {
	begin "malformed messages change nothing: garbage is dropped, a REGISTER without Contact gets 400"
	local before after reply
	before=$(metric pushgw_sip_bindings)
	printf 'this is not SIP\r\n\r\n' >/dev/udp/127.0.0.1/"$SIP_UDP"
	printf 'REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n\r\n' \
		>/dev/udp/127.0.0.1/"$SIP_UDP"
	reply=$(python3 - "$SIP_UDP" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
p = s.getsockname()[1]
s.sendto((f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bKmal1\r\n"
          f"From: <sip:1011@127.0.0.1>;tag=a\r\nTo: <sip:1011@127.0.0.1>\r\nCall-ID: mal1\r\n"
          f"CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n").encode(), ("127.0.0.1", int(sys.argv[1])))
s.settimeout(3)
print(s.recv(4096).decode().split("\r\n")[0])
PY
)
	check "a REGISTER without Contact is answered 400 ($reply)" grep -q "^SIP/2.0 400" <<<"$reply"
	after=$(metric pushgw_sip_bindings)
	expect_eq "no binding changed" "$after" "$before"
	check "pushgw is still alive" gw_alive G
}

t_phone_calls_out() {
	begin "a phone's own call goes through pushgw to the backend, and the dialog's ACK and BYE follow the Record-Routes"
	local i
	phone_bg callee udp 1012 "$(apns_pn "$(tok 112)")" "$(uuid 1012)" answer
	for i in $(seq 1 100); do phone_event callee registered >/dev/null && break; sleep 0.05; done
	phone out tcp 1013 "" "$(uuid 1013)" call --target 1012
	expect_eq "the caller phone's call was answered and its BYE got 200" "$PHONE_RC" 0
	wait_bg callee
	expect_eq "the called phone answered, got the ACK and the BYE" "$PHONE_RC" 0
	show_on_failure out
}

t_cancel_reason() {
	begin "a CANCEL with Reason: SIP;cause=200 ends the ringing as answered elsewhere"
	local ext=1014 voip remote
	voip=$(tok 114); remote=$(tok 1114)
	phone reason-reg tcp "$ext" "$(apns_pn_both "$voip" "$remote")" "$(uuid "$ext")" register
	caller reason-caller "$ext" "$SIPDIR/cancel_answered_elsewhere.xml"
	wait_caller reason-caller
	expect_eq "the caller got 487" "$CALLER_RC" 0
	check "a cancel push went out" wait_push "$remote" cancel
	expect_eq "its reason is answered_elsewhere" \
		"$(pushes_for "$remote" cancel | jq -r '.[0].data.reason')" answered_elsewhere
	show_on_failure reason
}

t_never_back() {
	begin "a phone that never comes back: 480 after ring_timeout_s and a missed-call push"
	local ext=1005 voip remote t0 t1
	voip=$(tok 105); remote=$(tok 1105)
	phone gone-reg udp "$ext" "$(apns_pn_both "$voip" "$remote")" "$(uuid "$ext")" register
	expect_eq "the phone registers" "$PHONE_RC" 0
	t0=$(now_ms)
	caller gone-caller "$ext" "$E2E/scenarios/unanswered.xml"
	wait_caller gone-caller
	t1=$(now_ms)
	expect_eq "the caller got 480" "$CALLER_RC" 0
	check "480 came after ring_timeout_s ($RING_TIMEOUT_S s), not before" \
		test "$((t1 - t0))" -ge $((RING_TIMEOUT_S * 1000 - 200))
	check "and not much later" test "$((t1 - t0))" -lt $((RING_TIMEOUT_S * 1000 + 3000))
	check "a missed-call push went out" wait_push "$remote" cancel
	expect_eq "the missed call is a caller_cancelled cancel" \
		"$(pushes_for "$remote" cancel | jq -r '.[0].data.reason')" caller_cancelled
	check "the call's log line says it was not woken" \
		bash -c "grep '\"sip call\"' '$WORK/gw-G.log' | grep -q '\"outcome\":\"not_woken\"'"
	TIMINGS+=("never back: INVITE→480 $((t1 - t0)) ms (ring_timeout_s $RING_TIMEOUT_S)")
	phone gone-late udp "$ext" "$(apns_pn_both "$voip" "$remote")" "$(uuid "$ext")" register
	check "the phone that registers after its missed call is counted woke_late" \
		test -n "$(metric 'pushgw_sip_invites_total{outcome="woke_late"}')"
	show_on_failure gone
}

t_restart() {
	begin "pushgw killed (-9) between registration and call: the binding survives and the call connects"
	local ext=1006 token; token=$(tok 106)
	phone crash-reg udp "$ext" "$(apns_pn "$token")" "$(uuid "$ext")" register
	expect_eq "the phone registers" "$PHONE_RC" 0
	kill9_gw G
	start_sip_gw || { bad "pushgw did not restart"; return; }
	check "the restarted edge loaded the binding" \
		bash -c "grep '\"sip bindings loaded\"' '$WORK/gw-G.log' | jq -e '(.count | tonumber) >= 1' >/dev/null"
	caller crash-caller "$ext" "$E2E/scenarios/call.xml"
	if ! wait_push "$token" call; then
		bad "no call push after the restart"
		wait_caller crash-caller
		show_on_failure crash
		return
	fi
	phone crash-woken udp "$ext" "$(apns_pn "$token")" "$(uuid "$ext")" answer
	wait_caller crash-caller
	expect_eq "the woken phone answered" "$PHONE_RC" 0
	expect_eq "the caller's call completed" "$CALLER_RC" 0
	show_on_failure crash
}

t_shutdown_held() {
	begin "SIGTERM while an INVITE is held: it is answered, and pushgw exits 0"
	local ext=1016 token; token=$(tok 116)
	phone held-reg udp "$ext" "$(apns_pn "$token")" "$(uuid "$ext")" register
	caller held-caller "$ext" "$SIPDIR/held_at_shutdown.xml"
	check "the INVITE is held (its wake push went out)" wait_push "$token" call
	stop_gw G
	expect_eq "pushgw exits 0" "$GW_EXIT" 0
	wait_caller held-caller
	expect_eq "the caller got an answer (503 from pushgw, 500 through Kamailio)" "$CALLER_RC" 0
}

t_refresh_and_remove() {
	begin "a refresh keeps the binding id; Expires: 0 removes it"
	local ext=1007 token id1 id2; token=$(tok 107)
	phone refresh-1 udp "$ext" "$(apns_pn "$token")" "$(uuid "$ext")" register
	id1=$(binding_of "$ext")
	phone refresh-2 tcp "$ext" "$(apns_pn "$token")" "$(uuid "$ext")" register
	id2=$(binding_of "$ext")
	check "a binding id was given" test -n "$id1"
	expect_eq "the refresh (same +sip.instance) kept the id" "$id2" "$id1"
	check "the refresh is logged as refreshed" \
		bash -c "grep '\"sip registered\"' '$WORK/gw-G.log' | grep '$id1' | grep -q refreshed"
	phone refresh-0 udp "$ext" "$(apns_pn "$token")" "$(uuid "$ext")" unregister
	expect_eq "Expires: 0 is answered 2xx" "$PHONE_RC" 0
	check "the binding is removed" \
		bash -c "grep '\"sip registration removed\"' '$WORK/gw-G.log' | grep -q '$id1'"
	caller refresh-caller "$ext" "$SIPDIR/unknown_user.xml"
	wait_caller refresh-caller
	expect_eq "the PBX no longer knows the phone (404)" "$CALLER_RC" 0
}

t_not_a_relay() {
	begin "an INVITE to a binding from outside the backend gets 403"
	local ext=1008 token id; token=$(tok 108)
	phone relay-reg udp "$ext" "$(apns_pn "$token")" "$(uuid "$ext")" register
	id=$(binding_of "$ext")
	# shellcheck disable=SC2046
	sipp 127.0.0.1:"$SIP_UDP" -p "$(free_port udp)" $(sipp_common relay-403) \
		-sf "$SIPDIR/invite_binding.xml" -s "$id" >"$WORK/relay-403.out" 2>&1
	expect_eq "403 Forbidden" "$?" 0
	expect_eq "no push for it" "$(pushes_for "$token" call | jq length)" 0
}

t_wake_by_extension() {
	begin "/v1/wake by extension finds a phone registered through the SIP edge"
	local ext=1011 token; token=$(tok 111)
	phone ext-reg udp "$ext" "$(apns_pn "$token")" "$(uuid "$ext")" register
	expect_eq "registered through pushgw" "$PHONE_RC" 0
	api G POST /v1/wake "{\"extension\":\"$ext\",\"call\":{\"id\":\"by-ext-1011\",\"from\":\"+15550001111\"}}"
	expect_eq "200" "$STATUS" 200
	expect_eq "one device: the SIP phone, sent" "$(jqb '[.results[] | .status] | join(",")')" sent
	expect_eq "the push reached its token" "$(pushes_for "$token" call | jq length)" 1
	api G GET "/v1/extensions/$ext/devices" "" "$KEY_REG"
	expect_eq "the registry lists it under the extension" "$(jqb '.devices | length')" 1
	check "as the binding's device id" test "$(jqb -r '.devices[0].device_id')" = "$(binding_of "$ext")"
}

t_keepalive() {
	begin "a double-CRLF keep-alive on a phone's TCP flow gets a CRLF back"
	phone ka tcp 1009 "" "$(uuid 1009)" keepalive
	expect_eq "pong" "$PHONE_RC" 0
	check "it registered without push (no pn-* parameters)" \
		bash -c "grep '\"sip registered\"' '$WORK/gw-G.log' | grep '1009@' | grep -q '\"push\":\"no\"'"
}

t_metrics() {
	begin "the SIP metrics count what happened"
	local m; m=$(curl -s "http://127.0.0.1:$GW_PORT_G/metrics")
	check "registrations counted" grep -q '^pushgw_sip_registrations_total{result="created"}' <<<"$m"
	check "answered calls counted" grep -q '^pushgw_sip_invites_total{outcome="answered"}' <<<"$m"
	check "wake-to-register observed" grep -q '^pushgw_wake_to_register_seconds_count{provider="apns"}' <<<"$m"
	check "bindings gauge" grep -q '^pushgw_sip_bindings ' <<<"$m"
	check "held invites back to 0" grep -q '^pushgw_sip_held_invites 0' <<<"$m"
}

# binding_count: the edge's bindings in the SQLite registry.
binding_count() {
	python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM sip_binding").fetchone()[0])' \
		"$WORK/pushgw-gw.db"
}

# wait_no_held: up to 8 s for the held INVITEs gauge to come back to 0.
wait_no_held() {
	local i
	for i in $(seq 1 80); do
		[ "$(metric pushgw_sip_held_invites)" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# udp_exchange PORT SRC_IP: send stdin as one datagram from SRC_IP, print
# the first line of every answer within 2 s.
udp_exchange() {
	local f="$WORK/udp-exchange.in"
	cat >"$f"
	python3 - "$1" "$2" "$f" <<'PY'
import socket, sys, time
data = open(sys.argv[3], "rb").read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[2], 0))
s.sendto(data.replace(b"@PORT@", str(s.getsockname()[1]).encode()), ("127.0.0.1", int(sys.argv[1])))
end = time.time() + 2
while time.time() < end:
    s.settimeout(max(0.01, end - time.time()))
    try:
        print(s.recv(70000).split(b"\r\n")[0].decode(errors="replace"))
    except socket.timeout:
        break
PY
}

t_mutated_burst() {
	begin "a burst of mutated SIP messages at every listener, from phones and from the backend, changes nothing"
	local ext=1020 id before after out t0 t1 leaked kam_before
	phone burst-reg tcp "$ext" "" "$(uuid "$ext")" register
	expect_eq "the burst's target phone registers" "$PHONE_RC" 0
	id=$(binding_of "$ext")
	before=$(binding_count)
	kam_before=$(wc -l <"$WORK/kamailio.log")
	t0=$(now_ms)
	out=$(timeout 60 python3 "$SIPDIR/burst.py" --udp "$SIP_UDP" --tcp "$SIP_TCP" --tls "$SIP_TLS" \
		--pbx "$KAM_PORT" --backend-ip 127.0.0.2 --ext "$ext" --binding "$id" \
		--count "${BURST_COUNT:-3000}" --seconds 25 --seed "${BURST_SEED:-$RANDOM}")
	t1=$(now_ms)
	echo "burst: $out ($((t1 - t0)) ms)"
	check "the burst ran (${BURST_COUNT:-3000} messages)" \
		test "$(jq -r .messages <<<"$out")" = "${BURST_COUNT:-3000}"
	check "the burst took under 30 s ($((t1 - t0)) ms)" test "$((t1 - t0))" -lt 30000
	check "pushgw is alive" gw_alive G
	check "pushgw still answers HTTP" curl -sf -o /dev/null "http://127.0.0.1:$GW_PORT_G/metrics"
	check "no sanitizer report" bash -c "! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' '$WORK/gw-G.log'"
	after=$(binding_count)
	expect_eq "nothing was stored (bindings in the registry)" "$after" "$before"
	leaked=$(tail -n +"$((kam_before + 1))" "$WORK/kamailio.log" | grep 'pbx-request' | grep -c 'be-burst')
	expect_eq "no request from the backend's side was relayed back to the PBX" "$leaked" 0
	check "the held INVITEs of the burst end (ring_timeout_s)" wait_no_held
	TIMINGS+=("mutated burst: $(jq -c '{messages, statuses}' <<<"$out") in $((t1 - t0)) ms")
	sleeping_phone_call burst-after udp 1021 "$(tok 121)" "$(apns_pn "$(tok 121)")"
}

t_bounds() {
	begin "the bounds on every message: too large, too many headers, a Via loop, Max-Forwards 0"
	local before reply big
	before=$(binding_count)
	reply=$(printf 'REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:@PORT@;branch=z9hG4bKhdr1\r\nFrom: <sip:1022@127.0.0.1>;tag=a\r\nTo: <sip:1022@127.0.0.1>\r\nCall-ID: hdr1\r\nCSeq: 1 REGISTER\r\nContact: <sip:1022@127.0.0.1:9>\r\n%sContent-Length: 0\r\n\r\n' \
		"$(for i in $(seq 1 300); do printf 'X-H%d: v\r\n' "$i"; done)" | udp_exchange "$SIP_UDP" 127.0.0.1)
	check "300 header fields: 400 Too Many Headers ($reply)" grep -q "^SIP/2.0 400 Too Many Headers" <<<"$reply"
	reply=$(printf 'OPTIONS sip:127.0.0.1 SIP/2.0\r\n%sVia: SIP/2.0/UDP 127.0.0.1:@PORT@;branch=z9hG4bKvia1\r\nFrom: <sip:1022@127.0.0.1>;tag=a\r\nTo: <sip:127.0.0.1>\r\nCall-ID: via1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n' \
		"$(for i in $(seq 1 40); do printf 'Via: SIP/2.0/UDP 127.0.0.1:%s;branch=z9hG4bKl%d\r\n' "$SIP_UDP" "$i"; done)" | udp_exchange "$SIP_UDP" 127.0.0.1)
	check "a Via loop (41 Vias) is not relayed, nor answered to the loop" bash -c "! grep -q '^SIP/2.0 [12]' <<<'$reply'"
	reply=$(printf 'OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:@PORT@;branch=z9hG4bKmf0\r\nMax-Forwards: 0\r\nFrom: <sip:1022@127.0.0.1>;tag=a\r\nTo: <sip:127.0.0.1>\r\nCall-ID: mf0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n' | udp_exchange "$SIP_UDP" 127.0.0.1)
	check "Max-Forwards: 0 gets 483 ($reply)" grep -q "^SIP/2.0 483" <<<"$reply"
	reply=$(python3 - "$SIP_TCP" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
p = s.getsockname()[1]
msg = (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:{p};branch=z9hG4bKbig1\r\n"
       f"From: <sip:1022@127.0.0.1>;tag=a\r\nTo: <sip:1022@127.0.0.1>\r\nCall-ID: big1\r\n"
       f"CSeq: 1 REGISTER\r\nContact: <sip:1022@127.0.0.1:{p};transport=tcp>\r\n"
       f"Subject: {'A' * 70000}\r\nContent-Length: 0\r\n\r\n").encode()
try:
    s.sendall(msg)
    got = s.recv(4096)
except OSError:
    got = b""
print(got.split(b"\r\n")[0].decode(errors="replace") or "closed")
PY
)
	check "a 70 KB message over TCP is refused (413) or its connection closed ($reply)" \
		grep -qE "^(SIP/2.0 413|closed)" <<<"$reply"
	expect_eq "none of them stored a binding" "$(binding_count)" "$before"
	check "pushgw is alive" gw_alive G
}

t_held_limit() {
	begin "the (N+1)th held INVITE gets 503 (N = 2000 held or ringing calls)"
	local ext=1023 id out
	phone held-limit-reg tcp "$ext" "" "$(uuid "$ext")" register
	expect_eq "the phone registers (no push, its flow closed: calls to it are held)" "$PHONE_RC" 0
	id=$(binding_of "$ext")
	check "no call is held before" wait_no_held
	out=$(python3 - "$SIP_UDP" "$id" 2001 <<'PY'
import socket, sys, time
port, binding, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
me = s.getsockname()[1]
first = {}
def drain(until):
    while True:
        s.settimeout(max(0.0, until - time.time()) or 0.001)
        try:
            d = s.recv(65535)
        except (socket.timeout, BlockingIOError):
            return
        lines = d.split(b"\r\n")
        cid = [l for l in lines if l.lower().startswith(b"call-id:")]
        if cid:
            first.setdefault(cid[0].split(b":", 1)[1].strip().decode(), lines[0].decode())
# in batches, reading the answers as they come: neither side's socket
# buffer may overflow (a lost datagram would be retransmitted, not lost)
for i in range(n):
    s.sendto((f"INVITE sip:{binding}@127.0.0.1:{port} SIP/2.0\r\n"
              f"Via: SIP/2.0/UDP 127.0.0.2:{me};branch=z9hG4bKheld{i}\r\nMax-Forwards: 70\r\n"
              f"From: <sip:caller@127.0.0.2>;tag=h{i}\r\nTo: <sip:1023@127.0.0.1>\r\n"
              f"Call-ID: held-{i}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode(),
             ("127.0.0.1", port))
    if i % 25 == 24:
        drain(time.time() + 0.005)
drain(time.time() + 1.0)
t503 = sorted(int(c.split("-")[1]) for c, l in first.items() if l.startswith("SIP/2.0 503"))
t100 = sum(1 for l in first.values() if l.startswith("SIP/2.0 100"))
print(f"{t100} {len(t503)} {t503[:3]}")
PY
)
	echo "held limit: $out"
	expect_eq "2000 INVITEs held (100 Trying)" "$(cut -d' ' -f1 <<<"$out")" 2000
	expect_eq "one 503" "$(cut -d' ' -f2 <<<"$out")" 1
	check "the held INVITEs end after ring_timeout_s" wait_no_held
	check "pushgw is alive" gw_alive G
}

# fill_bindings N|0: N made-up bindings of this edge in the registry (0:
# remove them again); pushgw loads them at its next start.
fill_bindings() {
	python3 - "$WORK/pushgw-gw.db" "$1" <<'PY'
import sqlite3, sys, time
db, n = sqlite3.connect(sys.argv[1], timeout=10), int(sys.argv[2])
if n == 0:
    db.execute("DELETE FROM sip_binding WHERE id LIKE 'pgw-fill%'")
else:
    exp = int(time.time() * 1000) + 3600 * 1000
    db.executemany("INSERT INTO sip_binding VALUES (?, '127.0.0.1', ?, ?, ?, NULL, NULL, ?, ?)",
                   ((f"pgw-fill{i:020d}", f"sip:{5000 + i % 4000}@127.0.0.1", str(5000 + i % 4000),
                     f"<sip:{5000 + i % 4000}@127.0.0.1:9>", exp, exp - 3600 * 1000) for i in range(n)))
db.commit()
PY
}

t_binding_limit() {
	begin "a REGISTER for a new binding beyond 20 000 bindings gets 503 before it reaches the PBX"
	local kam_before
	fill_bindings 20000 || { bad "the registry could not be filled"; return; }
	stop_gw G
	start_sip_gw || { bad "pushgw did not restart"; return; }
	check "the edge loaded 20 000 bindings" \
		bash -c "grep '\"sip bindings loaded\"' '$WORK/gw-G.log' | tail -n1 | jq -e '(.count | tonumber) == 20000' >/dev/null"
	kam_before=$(wc -l <"$WORK/kamailio.log")
	phone limit-reg udp 1024 "" "$(uuid 1024)" register
	expect_eq "the 20 001st binding's REGISTER is answered 503" \
		"$(grep -m1 register_failed "$WORK/limit-reg.out" | jq -r .status)" 503
	expect_eq "and did not reach the PBX" \
		"$(tail -n +"$((kam_before + 1))" "$WORK/kamailio.log" | grep pbx-request | grep -c 'REGISTER')" 0
	fill_bindings 0
	stop_gw G
	start_sip_gw || { bad "pushgw did not restart"; return; }
	phone limit-reg2 udp 1024 "" "$(uuid 1024)" register
	expect_eq "below the limit again, it registers" "$PHONE_RC" 0
}

ALL="t_sleeping_tcp t_sleeping_udp t_sleeping_tls t_linphone_sleeping t_foreground t_caller_cancels t_cancel_ringing t_cancel_reason t_phone_calls_out t_never_back t_malformed t_refresh_and_remove t_not_a_relay t_wake_by_extension t_keepalive t_bounds t_mutated_burst t_held_limit t_metrics t_binding_limit t_restart t_shutdown_held"
for t in ${SIP_TESTS:-$ALL}; do
	"$t"
done
for line in "${TIMINGS[@]}"; do echo "timing: $line"; done
summary
