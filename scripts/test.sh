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
stage() { # stage NAME CMD…: run, show its output, count its summary line
	local name="$1"; shift
	echo "== $name"
	local out; out=$(mktemp)
	"$@" 2>&1 | tee "$out"
	local rc=${PIPESTATUS[0]}
	tally "$out"
	if [ "$rc" -ne 0 ] && ! grep -qE '[1-9][0-9]* failed' "$out"; then
		total_f=$((total_f + 1)); echo "$name: exited $rc"
	fi
	rm -f "$out"
}
integration() { # integration BUILD_DIR: every tests/integration suite, then their total
	local rc=0 t out p=0 f=0 line lp lf
	for t in tests/integration/test_*.sh; do
		out=$(BUILD="$1" bash "$t" 2>&1) || rc=1
		echo "$out" | grep -E '^(FAIL|pushgw .* did not start)' | head -20
		line=$(grep -E '[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n1)
		echo "  ${line:-$t: no summary}"
		[ -n "$line" ] || f=$((f + 1))
		lp=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line"); lf=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
		p=$((p + ${lp:-0})); f=$((f + ${lf:-0}))
	done
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
stage "unit (ASan+UBSan)" scripts/run-unit.sh build-asan/tests/test_*
stage "integration (ASan+UBSan)" integration build-asan
valgrind_wake() {
	WRAP="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite" \
		BUILD=build bash tests/integration/test_wake.sh
}
stage "integration under valgrind (memcheck; exit 0 required)" valgrind_wake
stage "fuzz smoke (libFuzzer, 10 s a target)" tests/fuzz/run.sh --smoke
echo
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
