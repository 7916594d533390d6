#!/usr/bin/env bash
# Run unit-test binaries; each prints "<suite>: N passed, M failed".
# Prints the totals as the last line and exits non-zero on any failure.
set -u
passed=0; failed=0
for t in "$@"; do
	out=$(${WRAP:-} "$t" 2>&1); rc=$?
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n1)
	if [ $rc -ne 0 ] || [ -z "$line" ]; then echo "$out" | tail -n 30; fi
	p=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line"); f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
	passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
	if [ $rc -ne 0 ] && [ "${f:-0}" = 0 ]; then failed=$((failed + 1)); echo "$t exited $rc" >&2; fi
	echo "  $(basename "$t"): ${line:-no summary}"
done
echo "unit: $passed passed, $failed failed"
[ $failed -eq 0 ]
