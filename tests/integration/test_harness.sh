#!/usr/bin/env bash
# The harness itself (lib.sh): a suite fails when a gateway it started exits
# non-zero on SIGTERM, does not stop, or leaves a sanitizer report in its
# log, and not when a test killed it with kill -9 or expected it not to
# start. A stand-in gateway plays each case, so this runs in seconds. Also:
# the end-to-end suite counts "could not run" as a failure unless
# PUSHGW_E2E=0.
source tests/integration/lib.sh

# A fake pushgw: announces itself like the real one, then on SIGTERM does
# what its "config" file says.
cat >"$WORK/fake-pushgw" <<'FAKE'
#!/usr/bin/env bash
mode=$(cat "$2")
[ "$mode" = nostart ] && { echo "pushgw: $2: listen: cannot listen" >&2; exit 1; }
echo '{"level":"info","msg":"pushgw listening","addr":"127.0.0.1:1"}' >&2
on_term() {
	case $mode in
	clean) exit 0 ;;
	fails) exit 1 ;;
	leaks) echo "==42==ERROR: LeakSanitizer: detected memory leaks" >&2; exit 23 ;;
	ubsan) echo "gateway/x.c:1:2: runtime error: signed integer overflow" >&2; exit 0 ;;
	asan_kill) echo "==42==ERROR: AddressSanitizer: heap-use-after-free" >&2 ;;
	hangs) ;;
	esac
}
trap on_term TERM
while :; do sleep 0.05; done
FAKE
chmod +x "$WORK/fake-pushgw"

# suite_with SCRIPT: runs a tiny suite using lib.sh with the fake gateway;
# sets SUITE_RC and SUITE_OUT.
suite_with() {
	printf 'source tests/integration/lib.sh\n%s\nsummary\n' "$1" >"$WORK/suite.sh"
	SUITE_OUT=$(PUSHGW="$WORK/fake-pushgw" GW_STOP_WAIT_S=3 FAKE_DIR="$WORK" bash "$WORK/suite.sh" 2>&1)
	SUITE_RC=$?
}

mode() { echo "$2" >"$WORK/mode-$1"; }

t_clean_exit_passes() {
	begin "a gateway that exits 0 on SIGTERM, stopped or left running, passes"
	mode a clean; mode b clean
	suite_with 'start_gw A "$FAKE_DIR/mode-a"; stop_gw A; start_gw B "$FAKE_DIR/mode-b"'
	expect_eq "suite exit ($SUITE_OUT)" "$SUITE_RC" 0
}

t_non_zero_exit_fails() {
	begin "a gateway left running that exits 1 on SIGTERM fails the suite"
	mode c fails
	suite_with 'start_gw C "$FAKE_DIR/mode-c"'
	expect_eq "suite exit" "$SUITE_RC" 1
	check "says which gateway and what status ($SUITE_OUT)" grep -q 'gateway C (pid [0-9]*) exited 1 on SIGTERM' <<<"$SUITE_OUT"
}

t_sanitizer_reports_fail() {
	begin "a LeakSanitizer or UBSan report in the log fails the suite, even with exit 0"
	mode d leaks; mode e ubsan
	suite_with 'start_gw D "$FAKE_DIR/mode-d"; stop_gw D'
	expect_eq "leak: suite exit" "$SUITE_RC" 1
	check "leak report shown ($SUITE_OUT)" grep -q 'ERROR: LeakSanitizer' <<<"$SUITE_OUT"
	suite_with 'start_gw E "$FAKE_DIR/mode-e"'
	expect_eq "UBSan with exit 0: suite exit" "$SUITE_RC" 1
	check "runtime error shown ($SUITE_OUT)" grep -q 'runtime error:' <<<"$SUITE_OUT"
}

t_restart_keeps_the_first_log() {
	begin "a restart under the same name still checks the first instance's log"
	mode f asan_kill; mode g clean
	suite_with 'start_gw F "$FAKE_DIR/mode-f"; kill -TERM $GW_PID_F; sleep 0.3; kill9_gw F; start_gw F "$FAKE_DIR/mode-g"'
	expect_eq "suite exit" "$SUITE_RC" 1
	check "the report of the first instance is found ($SUITE_OUT)" grep -q 'AddressSanitizer: heap-use-after-free' <<<"$SUITE_OUT"
}

t_kill_9_and_expected_start_failure_pass() {
	begin "kill -9 on purpose and a start that was meant to fail are not failures"
	mode h hangs; mode i nostart
	suite_with 'start_gw H "$FAKE_DIR/mode-h"; kill9_gw H; GW_EXPECT_START_FAILURE=1 start_gw I "$FAKE_DIR/mode-i" 2>/dev/null && bad "I started"'
	expect_eq "suite exit ($SUITE_OUT)" "$SUITE_RC" 0
	suite_with 'start_gw I "$FAKE_DIR/mode-i" 2>/dev/null'
	expect_eq "an unexpected start failure fails" "$SUITE_RC" 1
}

t_hang_on_sigterm_fails() {
	begin "a gateway that does not stop on SIGTERM fails the suite after a bounded wait"
	mode j hangs
	suite_with 'start_gw J "$FAKE_DIR/mode-j"'
	expect_eq "suite exit" "$SUITE_RC" 1
	check "says it did not exit ($SUITE_OUT)" grep -q 'gateway J (pid [0-9]*) did not exit within 3 s of SIGTERM' <<<"$SUITE_OUT"
}

t_e2e_skip_is_a_failure_unless_opted_out() {
	begin "e2e: a suite that cannot run fails; PUSHGW_E2E=0 skips it on purpose"
	local out rc
	out=$(PUSHGW_E2E=1 bash -c 'source tests/e2e/lib.sh; e2e_skip "Kamailio missing"; echo after' 2>&1); rc=$?
	expect_eq "could not run: exit 1" "$rc" 1
	check "counted as one failure ($out)" grep -qx 'e2e: 0 passed, 1 failed' <<<"$out"
	check "says why and how to opt out" grep -q 'NOT RUN.*Kamailio missing' <<<"$out"
	check "names PUSHGW_E2E=0" grep -q 'PUSHGW_E2E=0' <<<"$out"
	out=$(PUSHGW_E2E=0 bash -c 'source tests/e2e/lib.sh; e2e_skip "Kamailio missing"' 2>&1); rc=$?
	expect_eq "opted out: exit 0" "$rc" 0
	check "says it was skipped on request ($out)" grep -q 'skipped (PUSHGW_E2E=0)' <<<"$out"
	out=$(PUSHGW_E2E=0 BUILD=/nonexistent bash tests/e2e/run.sh 2>&1); rc=$?
	expect_eq "run.sh with PUSHGW_E2E=0 exits 0 before needing anything ($out)" "$rc" 0
	check "and prints an empty tally" grep -qx 'e2e: 0 passed, 0 failed' <<<"$out"
}

t_clean_exit_passes
t_non_zero_exit_fails
t_sanitizer_reports_fail
t_restart_keeps_the_first_log
t_kill_9_and_expected_start_failure_pass
t_hang_on_sigterm_fails
t_e2e_skip_is_a_failure_unless_opted_out
summary
