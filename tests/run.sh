#!/bin/sh
# run.sh [unit|lint|e2e|schema] -- run the test suites and print "N passed, N failed".
#
# Every suite speaks TAP ("ok ..." / "not ok ..."): cmocka through
# CMOCKA_MESSAGE_OUTPUT=TAP, shell and Python tests through their own
# helpers.  A suite that exits non-zero without a "not ok" line (a crash,
# a sanitizer report) counts as one failure.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
only=${1:-all}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pass=0 fail=0

run_suite() { # name command...
	name=$1; shift
	log="$out/$(echo "$name" | tr '/ ' '__').log"
	printf '== %s\n' "$name"
	"$@" >"$log" 2>&1
	rc=$?
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc" >>"$log"
	fi
	grep -E '^(not ok|ok) ' "$log" | sed 's/^/   /'
	if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then
		echo "   --- output of $name ---"
		grep -v -E '^(ok) ' "$log" | tail -n 60 | sed 's/^/   | /'
	fi
	pass=$((pass + p)); fail=$((fail + f))
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export CMOCKA_MESSAGE_OUTPUT=TAP
export ROTOR="$top/build/asan/rotor"
export ROTOR_SRCDIR="$top"

if [ "$only" = all ] || [ "$only" = unit ]; then
	for t in build/asan/tests/test_*; do
		[ -x "$t" ] || continue
		run_suite "unit/$(basename "$t")" "$t"
	done
fi
if [ "$only" = all ] || [ "$only" = lint ]; then
	for t in tests/lint/*.py; do
		[ -f "$t" ] || continue
		run_suite "lint/$(basename "$t")" /usr/bin/python3 "$t" --self-test
	done
fi
if [ "$only" = all ] || [ "$only" = schema ]; then
	for t in tests/schema/*.py; do
		[ -f "$t" ] || continue
		run_suite "schema/$(basename "$t")" /usr/bin/python3 "$t"
	done
fi
if [ "$only" = all ] || [ "$only" = e2e ]; then
	for t in tests/e2e/*.sh; do
		[ -f "$t" ] || continue
		[ "$(basename "$t")" = lib.sh ] && continue   # the helpers the suites source
		run_suite "e2e/$(basename "$t")" sh "$t"
	done
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
