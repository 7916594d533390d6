#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz/fuzz.mk, clang) and run each for a
# bounded time, starting from its seed corpus in tests/fuzz/corpus/<target>/.
#   tests/fuzz/run.sh [--smoke] [--seconds N] [TARGET…]
# Default: FUZZ_SECONDS (60) per target; --smoke: FUZZ_SMOKE_SECONDS (6).
# New inputs go to build-fuzz/corpus/<target>/, crashes to
# build-fuzz/artifacts/ (add a fixed crash's input to the seed corpus).
# Prints one line per target (cov, exec/s) and "N passed, M failed" last.
set -uo pipefail
cd "$(dirname "$0")/../.."

all_targets=()
for f in tests/fuzz/fuzz_*.c; do all_targets+=("$(basename "$f" .c)"); done
seconds=${FUZZ_SECONDS:-60}
targets=()
while [ $# -gt 0 ]; do
	case "$1" in
	--smoke) seconds=${FUZZ_SMOKE_SECONDS:-6} ;;
	--seconds) seconds=${2:?--seconds needs a number}; shift ;;
	-h|--help) sed -n '2,8p' "$0"; exit 0 ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) targets+=("$1") ;;
	esac
	shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
out=build-fuzz
# absolute paths: fuzz_config runs from its own temporary folder
root=$(pwd)

if ! command -v "${FUZZ_CC:-clang}" >/dev/null; then
	echo "fuzz: ${FUZZ_CC:-clang} not found (apt-get install clang libclang-rt-14-dev)"
	echo "0 passed, ${#targets[@]} failed"
	exit 1
fi
echo "== fuzz: building ${#targets[@]} target(s) into $out/"
if ! make -s -j"$(nproc 2>/dev/null || echo 2)" -f tests/fuzz/fuzz.mk BUILD_FUZZ="$out" \
	"${targets[@]/#/$out/}"; then
	echo "fuzz: build failed"
	echo "0 passed, ${#targets[@]} failed"
	exit 1
fi

# The harness's own settings, not whatever the caller's shell exported.
export ASAN_OPTIONS=detect_leaks=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# stat NAME LOG: a number from libFuzzer's -print_final_stats block.
stat() { sed -nE "s/^stat::$1: *([0-9]+).*/\1/p" "$2" | tail -n1; }

passed=0 failed=0
mkdir -p "$out/artifacts" "$out/logs"
for t in "${targets[@]}"; do
	work="$root/$out/corpus/$t" seeds="$root/tests/fuzz/corpus/$t" log="$out/logs/$t.log"
	mkdir -p "$work"
	dict=(); [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="$root/tests/fuzz/$t.dict")
	dirs=("$work"); [ -d "$seeds" ] && dirs+=("$seeds")
	"$out/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
		-print_final_stats=1 -artifact_prefix="$root/$out/artifacts/$t-" "${dict[@]}" \
		"${dirs[@]}" >"$log" 2>&1
	rc=$?
	cov=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n1 | sed -nE 's/.*(cov: [0-9]+ ft: [0-9]+).*/\1/p')
	runs=$(stat number_of_executed_units "$log") eps=$(stat average_exec_per_sec "$log")
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		printf 'PASS %-20s %s  runs: %s  exec/s: %s\n' "$t" "${cov:-cov: ?}" "${runs:-?}" "${eps:-?}"
	else
		failed=$((failed + 1))
		printf 'FAIL %-20s exit %s, log %s\n' "$t" "$rc" "$log"
		grep -E 'ERROR: |invariant failed|runtime error|Test unit written' "$log" | head -n5 | sed 's/^/     /'
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
