#!/usr/bin/env bash
# Real end-to-end test: Kamailio running deploy/pbx/kamailio/kamailio.cfg as
# shipped, SIPp phones and callers, the real pushgw binary and the APNs/FCM
# simulator, all on 127.0.0.1 ports chosen at run time. A phone registers
# with RFC 8599 push parameters and goes away; a caller INVITEs its
# extension; Kamailio asks pushgw to wake it; when the push reaches the
# simulator the phone comes back (re-REGISTER) and answers; the caller gets
# 200 OK. Also: cancels, a phone that never comes back, two phones, and
# the real linphonec (tests/sip/linphone.sh) killed and woken the same way.
# Prints each test, the INVITE-to-180/200 times and "N passed, M failed".
# When Kamailio or SIPp cannot be installed it does not run and counts as
# one failure, unless PUSHGW_E2E=0 asked to skip it.
#   tests/e2e/run.sh              (BUILD=build-asan for the sanitizer build)
#   PUSHGW_E2E=0 tests/e2e/run.sh (skip on purpose: 0 passed, 0 failed)
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/e2e/lib.sh

e2e_opted_out
e2e_ensure_tools
for t in curl jq ss openssl; do
	command -v "$t" >/dev/null || e2e_abort "missing $t"
done
source tests/integration/lib.sh
source tests/sip/linphone.sh
trap 'linphone_kill_all; cleanup' EXIT
if [ ! -x "$PUSHGW" ] || [ ! -x "$PUSHSIM" ]; then
	e2e_abort "build $PUSHGW and $PUSHSIM first (make all)"
fi
e2e_start_stack

TIMINGS=()

# record_timing LABEL CALLER PHONE TOKEN: the caller's INVITE->180 and
# INVITE->200, and where the time went: INVITE to push at the simulator
# (Kamailio, pushgw, HTTP/2), push to re-REGISTER (the emulated phone:
# polling the simulator and starting SIPp twice; not the system under
# test), re-REGISTER to 180 at the caller (Kamailio resuming the call).
record_timing() {
	local inv ring ans push reg
	inv=$(log_time "$2" invite); ring=$(log_time "$2" ringing); ans=$(log_time "$2" answered)
	push=$(pushes_for "$4" call | jq -r '.[0].ts_ms // empty')
	reg=$(msg_time "$3-reg" REGISTER)
	if [ -z "$inv" ] || [ -z "$ring" ] || [ -z "$ans" ] || [ -z "$push" ] || [ -z "$reg" ]; then
		bad "$1: missing INVITE/180/200/push/REGISTER times"
		return
	fi
	TIMINGS+=("$1 phone: INVITE->180 $((ring - inv)) ms, INVITE->200 $((ans - inv)) ms (answers 100 ms after ringing)"
		"  $1: INVITE->push at simulator $((push - inv)) ms, push->re-REGISTER $((reg - push)) ms (emulated phone), re-REGISTER->180 $((ring - reg)) ms")
	check "$1: INVITE->200 under 3 s ($((ans - inv)) ms)" test $((ans - inv)) -lt 3000
}

# woken_phone_answers LABEL EXT TOKEN PN INSTANCE: the whole wake flow for
# one phone; leaves the call's Call-ID in CALL_ID.
woken_phone_answers() {
	local label="$1" ext="$2" t="$3" pn="$4" inst="$5"
	sim_ctl A POST /reset >/dev/null
	# The app registered from this socket, then went to sleep.
	local old; old=$(free_port udp)
	start_listener "$label-asleep" "$old" "$SCEN/asleep.xml"
	check "phone registers with push parameters" register "$label-first" "$ext" "$pn" "$inst" "$old"
	start_phone "$label-phone" "$t" "$ext" "$pn" "$inst" "$SCEN/answer.xml"
	CALL_ID="e2e-$label-$RANDOM@caller"
	sipp_run "$label-caller" -sf "$SCEN/call.xml" -s "$ext" -cid_str "$CALL_ID"
	local crc=$?
	[ "$crc" = 0 ] || stop_phone "$label-phone"
	wait_phone "$label-phone"
	stop_listener "$label-asleep"
	one_push_to "$t" call
	expect_eq "the push service accepted the push (reason: $(jq -r '.reason // ""' <<<"$PUSH"))" \
		"$(jq -r .status <<<"$PUSH")" 200
	expect_eq "caller got 200 OK and completed the call (sipp exit)" "$crc" 0
	expect_eq "woken phone rang, answered and got the BYE (sipp exit)" "$PHONE_RC" 0
	expect_eq "no INVITE to the binding from before the push" "$(requests_to "$label-asleep" INVITE)" 0
	check "the phone was called on its registered push Contact" \
		grep -qF ";$pn" "$WORK/$label-phone.log"
	expect_eq "push call_id is the SIP Call-ID" "$(jq -r .call_id <<<"$PUSH_DATA")" "$CALL_ID"
	check "push names the caller" jq -e 'any(.[]; . == "+15551234567")' <<<"$PUSH_DATA"
	expect_eq "push from_name is the display name" "$(jq -r .from_name <<<"$PUSH_DATA")" Alice
	expect_eq "push to is the extension" "$(jq -r .to <<<"$PUSH_DATA")" "$ext"
}

# ---- tests ----------------------------------------------------------------

t_apns_phone_woken_and_answers() {
	begin "APNs phone: the INVITE wakes it through Kamailio and pushgw; it re-registers and answers"
	local t; t=$(tok 7001)
	woken_phone_answers apns 1001 "$t" "$(apns_pn "$t")" 6c0e7f1a-0000-4000-8000-00000000a001
	expect_eq "push from is the caller" "$(jq -r .from <<<"$PUSH_DATA")" "+15551234567"
	expect_eq "apns-push-type" "$(jq -r '.headers["apns-push-type"]' <<<"$PUSH")" voip
	expect_eq "apns-topic" "$(jq -r '.headers["apns-topic"]' <<<"$PUSH")" com.example.phone.voip
	sleep 0.1 # cancels are sent every 20 ms
	expect_eq "no cancel push to the phone that answered" "$(pushes_for "$t" cancel | jq length)" 0
	record_timing APNs apns-caller apns-phone "$t"
}

t_fcm_phone_woken_and_answers() {
	begin "FCM phone: the INVITE wakes it through Kamailio and pushgw; it re-registers and answers"
	# Real FCM tokens carry a ':'; RFC 8599 lets it stand in a URI parameter.
	local t="eT7x_e2eToken0001:APA91bE2eTestTokenForThePushGatewayEndToEndRun-0123456789"
	woken_phone_answers fcm 1010 "$t" "$(fcm_pn "$t")" 6c0e7f1a-0000-4000-8000-00000000f001
	expect_eq "FCM project in the path" "$(jq -r .path <<<"$PUSH")" "/v1/projects/$FCM_PROJECT/messages:send"
	expect_eq "high priority" "$(jq -r '.body | fromjson | .message.android.priority' <<<"$PUSH")" HIGH
	sleep 0.1
	expect_eq "no cancel push to the phone that answered" "$(pushes_for "$t" cancel | jq length)" 0
	record_timing FCM fcm-caller fcm-phone "$t"
}

# cancel_logged CALL_ID: the gateway's log line of the cancel for CALL_ID
# (waits up to 3 s for it).
cancel_logged() {
	local _ line
	for _ in $(seq 1 30); do
		line=$(jq -c --arg c "$1" 'select(.msg == "cancel" and .call_id == $c)' "$WORK/gw-G.log" 2>/dev/null | tail -n1)
		[ -n "$line" ] && { printf '%s\n' "$line"; return 0; }
		sleep 0.1
	done
	return 1
}

t_caller_cancels_while_woken_phone_rings() {
	begin "cancel while ringing: the woken phone gets the CANCEL, and an alert cancel push (caller_cancelled) on its remote token"
	local t r; t=$(tok 7002); r=$(tok 7012)
	local inst=6c0e7f1a-0000-4000-8000-00000000a002
	sim_ctl A POST /reset >/dev/null
	check "phone registers with push parameters (VoIP and remote tokens)" register ring-first 1002 "$(apns_pn_both "$t" "$r")" "$inst" "$(free_port udp)"
	start_phone ring-phone "$t" 1002 "$(apns_pn_both "$t" "$r")" "$inst" "$SCEN/ring_cancelled.xml"
	local cid="e2e-cancel-$RANDOM@caller"
	sipp_run ring-caller -sf "$SCEN/cancel.xml" -s 1002 -cid_str "$cid"
	local crc=$?
	[ "$crc" = 0 ] || stop_phone ring-phone
	wait_phone ring-phone
	expect_eq "caller heard ringing, cancelled, got 200 and 487 (sipp exit)" "$crc" 0
	expect_eq "phone rang and got the CANCEL (sipp exit)" "$PHONE_RC" 0
	one_push_to "$t" call
	expect_eq "the call push is a VoIP push" "$(jq -r '.headers["apns-push-type"]' <<<"$PUSH")" voip
	check "a cancel push reached APNs" wait_push "$r" cancel
	one_push_to "$r" cancel
	expect_eq "cancel push call_id" "$(jq -r .call_id <<<"$PUSH_DATA")" "$cid"
	expect_eq "cancel push reason" "$(jq -r .reason <<<"$PUSH_DATA")" caller_cancelled
	expect_eq "the cancel is an alert push to the remote token" \
		"$(jq -r '.headers["apns-push-type"]' <<<"$PUSH")" alert
	expect_eq "no cancel as a VoIP push" "$(pushes_for "$t" cancel | jq length)" 0
}

t_caller_cancels_held_call() {
	begin "cancel while held, VoIP-only phone: caller gets 487; no cancel push (VoIP pushes only start calls), pushgw says skipped"
	local t; t=$(tok 7003)
	sim_ctl A POST /reset >/dev/null
	check "phone registers with push parameters" register held-first 1003 "$(apns_pn "$t")" \
		6c0e7f1a-0000-4000-8000-00000000a003 "$(free_port udp)"
	local cid="e2e-held-$RANDOM@caller"
	sipp_run held-caller -sf "$SCEN/cancel_held.xml" -s 1003 -cid_str "$cid"
	expect_eq "caller got 100, cancelled, got 487 and 200 (sipp exit)" "$?" 0
	one_push_to "$t" call
	local line; line=$(cancel_logged "$cid")
	expect_eq "pushgw got the cancel and skipped the VoIP-only phone" \
		"$(jq -r '[.devices[] | .status + "/" + .reason] | join(",")' <<<"$line")" skipped/voip_only
	expect_eq "no cancel push reached APNs" "$(pushes_for "$t" cancel | jq length)" 0
}

t_unanswered_push_ends_in_480() {
	begin "a phone that never comes back: 480 after PUSH_HOLD_S, and its ringing is cancelled"
	local t r; t=$(tok 7004); r=$(tok 7014)
	sim_ctl A POST /reset >/dev/null
	check "phone registers with push parameters (VoIP and remote tokens)" register gone-first 1004 "$(apns_pn_both "$t" "$r")" \
		6c0e7f1a-0000-4000-8000-00000000a004 "$(free_port udp)"
	sipp_run gone-caller -sf "$SCEN/unanswered.xml" -s 1004 -cid_str "e2e-gone-$RANDOM@caller"
	expect_eq "caller got 480 Temporarily Unavailable (sipp exit)" "$?" 0
	local inv fail held
	inv=$(log_time gone-caller invite); fail=$(log_time gone-caller failed)
	held=$((${fail:-0} - ${inv:-0}))
	check "the call was held PUSH_HOLD_S=$HOLD_S s ($held ms)" \
		test "$held" -ge $((HOLD_S * 1000 - 200)) -a "$held" -le $((HOLD_S * 1000 + 2000))
	one_push_to "$t" call
	check "a cancel push reached APNs" wait_push "$r" cancel
	one_push_to "$r" cancel
	expect_eq "cancel push reason" "$(jq -r .reason <<<"$PUSH_DATA")" caller_cancelled
}

t_second_phone_told_answered_elsewhere() {
	begin "two phones on one extension: one answers, the other gets a cancel push (answered_elsewhere)"
	local ta tb rb; ta=$(tok 7005); tb=$(tok 7006); rb=$(tok 7016)
	local ia=6c0e7f1a-0000-4000-8000-00000000a005 ib=6c0e7f1a-0000-4000-8000-00000000a006
	sim_ctl A POST /reset >/dev/null
	check "phone A registers" register two-a-first 1005 "$(apns_pn "$ta")" "$ia" "$(free_port udp)"
	check "phone B registers (VoIP and remote tokens)" register two-b-first 1005 "$(apns_pn_both "$tb" "$rb")" "$ib" "$(free_port udp)"
	start_phone two-a "$ta" 1005 "$(apns_pn "$ta")" "$ia" "$SCEN/answer.xml"
	local cid="e2e-two-$RANDOM@caller"
	sipp_run two-caller -sf "$SCEN/call.xml" -s 1005 -cid_str "$cid"
	local crc=$?
	[ "$crc" = 0 ] || stop_phone two-a
	expect_eq "caller got 200 OK from phone A (sipp exit)" "$crc" 0
	wait_phone two-a
	expect_eq "phone A answered (sipp exit)" "$PHONE_RC" 0
	one_push_to "$ta" call
	one_push_to "$tb" call
	check "a cancel push reached phone B" wait_push "$rb" cancel
	one_push_to "$rb" cancel
	expect_eq "cancel push reason" "$(jq -r .reason <<<"$PUSH_DATA")" answered_elsewhere
	expect_eq "cancel push call_id" "$(jq -r .call_id <<<"$PUSH_DATA")" "$cid"
	expect_eq "no cancel push to phone A, which answered" "$(pushes_for "$ta" cancel | jq length)" 0
}

t_ringing_desk_phone_and_woken_mobile() {
	begin "desk phone rings at once; the woken mobile joins the ringing call (tsilo) and answers"
	local t; t=$(tok 7007)
	local inst=6c0e7f1a-0000-4000-8000-00000000a007 desk old
	sim_ctl A POST /reset >/dev/null
	desk=$(free_port udp)
	start_listener desk "$desk" "$SCEN/ring_cancelled.xml"
	check "desk phone registers (no push)" register desk-reg 1007 "transport=udp" \
		6c0e7f1a-0000-4000-8000-00000000d007 "$desk"
	old=$(free_port udp)
	start_listener mixed-asleep "$old" "$SCEN/asleep.xml"
	# Its Contact user is not the extension, as with many softphones.
	check "mobile registers with push parameters" register mixed-first 1007 "$(apns_pn "$t")" "$inst" "$old" m7007
	PHONE_CONTACT_USER=m7007 start_phone mixed-phone "$t" 1007 "$(apns_pn "$t")" "$inst" "$SCEN/answer.xml"
	sipp_run mixed-caller -sf "$SCEN/call.xml" -s 1007 -cid_str "e2e-mixed-$RANDOM@caller"
	local crc=$?
	[ "$crc" = 0 ] || stop_phone mixed-phone
	wait_phone mixed-phone
	stop_listener mixed-asleep
	stop_listener desk
	expect_eq "caller got 200 OK and completed the call (sipp exit)" "$crc" 0
	expect_eq "woken mobile answered (sipp exit)" "$PHONE_RC" 0
	expect_eq "desk phone rang, then got the CANCEL (sipp exit)" "$LISTENER_RC" 0
	expect_eq "INVITEs to the desk phone" "$(requests_to desk INVITE)" 1
	expect_eq "no INVITE to the mobile's binding from before the push" "$(requests_to mixed-asleep INVITE)" 0
	one_push_to "$t" call
	sleep 0.1
	expect_eq "no cancel push to the mobile that answered" "$(pushes_for "$t" cancel | jq length)" 0
}

t_linphone_woken_and_answers() {
	begin "linphonec (UDP, remote&voip tokens): killed, the INVITE wakes it through Kamailio and pushgw; it re-registers and auto-answers"
	local name=linphone-e2e ext=1008 voip remote pn inst=6c0e7f1a-0000-4000-8000-00000000a008
	local cid="e2e-linphone-$RANDOM@caller" crc caller_pid t0 t_reg t_rereg push_ms inv ring ans contact
	voip=$(tok 7008); remote=$(tok 7018)
	pn="pn-provider=apns;pn-param=${APNS_PN_PARAM%.voip}.remote&voip;pn-prid=$remote:remote&$voip:voip"
	linphone_present || return
	sim_ctl A POST /reset >/dev/null
	linphone_setup "$name" "$ext" "<sip:127.0.0.1:$KAM_PORT;transport=udp>" "$pn" "$inst" udp
	linphone_start "$name"
	if ! linphone_wait "$name" "$LP_REGISTERED" 1 10; then
		bad "linphonec did not register at Kamailio within 10 s"
		linphone_kill_all
		linphone_show "$name"
		return
	fi
	ok
	t0="LP_START_${name//-/_}"; t0=${!t0}
	t_reg=$(linphone_log_ms "$name" "$LP_REGISTERED")
	contact=$(linphone_contact "$name")
	check "its REGISTER's Contact carries the pn-* parameters ($contact)" grep -qF ";$pn" <<<"$contact"
	linphone_kill "$name"
	sipp_run "$name-caller" -sf "$SCEN/call.xml" -s "$ext" -cid_str "$cid" &
	caller_pid=$!
	if wait_push "$voip" call; then
		linphone_start "$name"
	else
		bad "no call push reached the simulator"
	fi
	wait "$caller_pid"
	crc=$?
	linphone_wait "$name" "$LP_CALL_END" 1 3
	linphone_kill_all
	expect_eq "caller got 200 OK and completed the call (sipp exit)" "$crc" 0
	expect_eq "the woken linphonec registered again" "$(linphone_count "$name" "$LP_REGISTERED")" 1
	expect_eq "with the same Contact" "$(linphone_contact "$name" 2)" "$contact"
	expect_eq "it got the INVITE once" "$(linphone_count "$name" "$LP_CALL_IN")" 1
	check "it answered" test "$(linphone_count "$name" "$LP_CALL_UP")" -ge 1
	check "the caller's BYE ended the call" test "$(linphone_count "$name" "$LP_CALL_END")" -ge 1
	one_push_to "$voip" call
	expect_eq "the push service accepted the push" "$(jq -r .status <<<"$PUSH")" 200
	expect_eq "apns-push-type" "$(jq -r '.headers["apns-push-type"]' <<<"$PUSH")" voip
	expect_eq "push call_id is the SIP Call-ID" "$(jq -r .call_id <<<"$PUSH_DATA")" "$cid"
	expect_eq "push from is the caller" "$(jq -r .from <<<"$PUSH_DATA")" "+15551234567"
	expect_eq "push from_name is the display name" "$(jq -r .from_name <<<"$PUSH_DATA")" Alice
	expect_eq "push to is the extension" "$(jq -r .to <<<"$PUSH_DATA")" "$ext"
	expect_eq "no call push to its remote token" "$(pushes_for "$remote" call | jq length)" 0
	sleep 0.1 # cancels are sent every 20 ms
	expect_eq "no cancel push to the phone that answered" \
		"$(($(pushes_for "$voip" cancel | jq length) + $(pushes_for "$remote" cancel | jq length)))" 0
	push_ms=$(pushes_for "$voip" call | jq -r '.[0].ts_ms // empty')
	t_rereg=$(linphone_log_ms "$name" "$LP_REGISTERED" 2)
	inv=$(log_time "$name-caller" invite); ring=$(log_time "$name-caller" ringing); ans=$(log_time "$name-caller" answered)
	if [ -n "$t_reg" ] && [ -n "$push_ms" ] && [ -n "$t_rereg" ] && [ -n "$inv" ] && [ -n "$ans" ]; then
		TIMINGS+=("linphonec: registered $((t_reg - t0)) ms after start; INVITE->push at simulator $((push_ms - inv)) ms, push->re-REGISTER 200 at linphonec $((t_rereg - push_ms)) ms (starting linphonec), INVITE->180 $((${ring:-$ans} - inv)) ms, INVITE->200 $((ans - inv)) ms")
		check "linphonec: INVITE->200 under $HOLD_S s ($((ans - inv)) ms)" test $((ans - inv)) -lt $((HOLD_S * 1000))
	fi
	[ "$FAILED" = 0 ] || linphone_show "$name"
}

# run_test NAME: runs t_NAME; prints its outcome, its duration and, when it
# failed, the tail of the logs of that test's SIP parties and of Kamailio.
run_test() {
	local start f=$FAILED
	start=$(now_ms)
	"t_$1"
	local verdict=ok
	if [ "$FAILED" != "$f" ]; then
		verdict=FAILED
		# shellcheck disable=SC2046,SC2012 # the harness's file names have no spaces
		show_failure_logs kamailio.log $(cd "$WORK" && ls -t -- *.err *.out 2>/dev/null | head -n 4)
	fi
	printf 'e2e: %-42s %s (%d ms)\n' "$1" "$verdict" $(($(now_ms) - start))
}

run_test apns_phone_woken_and_answers
if [ "$HAVE_FCM" = 1 ]; then
	run_test fcm_phone_woken_and_answers
else
	begin "FCM phone woken"
	bad "fcm_phone_woken_and_answers not run: this pushsim has no FCM endpoint"
fi
run_test caller_cancels_while_woken_phone_rings
run_test caller_cancels_held_call
run_test unanswered_push_ends_in_480
run_test second_phone_told_answered_elsewhere
run_test ringing_desk_phone_and_woken_mobile
run_test linphone_woken_and_answers

for line in "${TIMINGS[@]}"; do echo "e2e timing: $line"; done
gw_verify_all
echo "e2e: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
