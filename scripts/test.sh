#!/usr/bin/env bash
# `make test`: build, unit tests, integration tests against the local
# simulator, then the same under ASan+UBSan. Prints "N passed, M failed" last.
set -u
cd "$(dirname "$0")/.."
total_p=0; total_f=0
tally() { # tally OUTPUT_FILE
	local line p f
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n1)
	p=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line"); f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
	[ -n "$line" ] || f=1
	total_p=$((total_p + ${p:-0})); total_f=$((total_f + ${f:-0}))
}
T0=$(date +%s)
stage() { # stage NAME CMD…: run, show its output, count its summary line
	local name="$1"; shift
	echo "== $name   (at $(($(date +%s) - T0)) s)"
	local out; out=$(mktemp)
	"$@" 2>&1 | tee "$out"
	local rc=${PIPESTATUS[0]}
	tally "$out"
	if [ "$rc" -ne 0 ] && ! grep -qE '[1-9][0-9]* failed' "$out"; then
		total_f=$((total_f + 1)); echo "$name: exited $rc"
	fi
	rm -f "$out"
}
# The slowest suites first, so the short ones fill in beside them.
SLOW_SUITES="test_ring test_replicas test_callback test_fcm test_wake test_limits"
integration() { # integration BUILD_DIR: every tests/integration suite, then their total
	local rc=0 t name out p=0 f=0 line lp lf dir suites=()
	# Suites use their own ports, folders and servers, and mostly wait on
	# timers: INTEGRATION_JOBS (default 3) of them run at once.
	dir=$(mktemp -d)
	for name in $SLOW_SUITES; do [ -f "tests/integration/$name.sh" ] && suites+=("$name"); done
	for t in tests/integration/test_*.sh; do
		name=$(basename "$t" .sh)
		[[ " $SLOW_SUITES " == *" $name "* ]] || suites+=("$name")
	done
	printf '%s\n' "${suites[@]}" | xargs -P "${INTEGRATION_JOBS:-3}" -I{} \
		bash -c 'BUILD="$1" bash "tests/integration/$2.sh" >"$3/$2.out" 2>&1; echo $? >"$3/$2.rc"' \
		_ "$1" {} "$dir"
	for t in tests/integration/test_*.sh; do
		name=$(basename "$t" .sh)
		out=$(cat "$dir/$name.out" 2>/dev/null)
		[ "$(cat "$dir/$name.rc" 2>/dev/null)" = 0 ] || rc=1
		echo "$out" | grep -E '^(FAIL|pushgw .* did not start)' | head -20
		line=$(grep -E '[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n1)
		echo "  ${line:-$t: no summary}"
		[ -n "$line" ] || f=$((f + 1))
		# ended early, or failed without naming a check: show how
		if [ -z "$line" ] || { [ "$(cat "$dir/$name.rc" 2>/dev/null)" != 0 ] &&
			! grep -q '^FAIL' <<<"$out"; }; then
			tail -n 20 <<<"$out" | sed 's/^/    | /'
		fi
		lp=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line"); lf=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
		p=$((p + ${lp:-0})); f=$((f + ${lf:-0}))
	done
	rm -rf "$dir"
	echo "integration: $p passed, $f failed"
	return $rc
}
jobs=$(nproc 2>/dev/null || echo 2)
echo "== build"
make -s -j"$jobs" all unit-bins >/dev/null || { echo "build: 0 passed, 1 failed"; exit 1; }
stage unit scripts/run-unit.sh build/tests/test_*
stage "simulator self-test" env PUSHSIM=build/pushsim bash tests/sim/selftest.sh
stage integration integration build
stage "end to end: Kamailio + SIPp phones" env BUILD=build bash tests/e2e/run.sh
stage "container build steps on a clean copy" scripts/container-build-check.sh
echo "== build (ASan+UBSan)"
make -s -j"$jobs" asan >/dev/null || { echo "asan build: 0 passed, 1 failed"; exit 1; }
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# one known leak of a library, not of pushgw: see the file
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
stage "unit (ASan+UBSan)" scripts/run-unit.sh build-asan/tests/test_*
stage "integration (ASan+UBSan)" integration build-asan
valgrind_wake() {
	WRAP="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite" \
		BUILD=build bash tests/integration/test_wake.sh
}
stage "integration under valgrind (memcheck; exit 0 required)" valgrind_wake
stage "fuzz smoke (libFuzzer, 6 s a target)" tests/fuzz/run.sh --smoke
echo
echo "(make test took $(($(date +%s) - T0)) s)"
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
