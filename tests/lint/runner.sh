#!/bin/sh
# runner.sh -- tests/run.sh counts honestly.
#
# Canned TAP outputs through `run.sh tally` (passed, failed, skipped, and
# why a suite failed without saying so), then run.sh itself on a copy of
# the tree holding a few canned suites: its closing line and exit status.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/rotor-runner.XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0 failed=0

is() { # name got expected  (no "#" in a name: TAP would read "# SKIP" there as a directive)
	n=$((n + 1))
	if [ "$2" = "$3" ]; then
		echo "ok $n - $1"
	else
		echo "not ok $n - $1"
		echo "#   got:      $2"
		echo "#   expected: $3"
		failed=$((failed + 1))
	fi
}

tally() { # name status expected tap (printf %b escapes)
	printf '%b' "$4" >"$T/log"
	is "tally: $1" "$(sh "$top/tests/run.sh" tally "$T/log" "$2")" "$3"
}

tally "all pass" 0 "2 0 0" '1..2\nok 1 - a\nok 2 - b\n'
tally "a failure" 1 "1 1 0" '1..2\nok 1 - a\nnot ok 2 - b\n# t.c:8: error: Failure!\n'
tally "cmocka 1.1 skips (not ok N, SKIP directive) are skips" 0 "1 0 2" \
	'1..3\nok 1 - a\nnot ok 2 # SKIP b\nnot ok 3 # SKIP c\n# ok - test_x\n'
tally "ok N with a SKIP directive is a skip, any case" 0 "0 0 2" '1..2\nok 1 # SKIP a\nok 2 - b # skip no fleet\n'
tally "a skip plan (1..0, SKIP directive) is one skip" 0 "0 0 1" '1..0 # SKIP the fleet needs root\n'
tally "a crash without not ok is a failure" 1 "1 1 0 exited with status 1" \
	'1..3\nok 1 - a\n==12==ERROR: AddressSanitizer: heap-use-after-free\n'
tally "a crash after skips only is a failure" 134 "0 1 1 exited with status 134" '1..2\nnot ok 1 # SKIP a\n'
tally "a skip plan then a non-zero exit is a failure" 2 "0 1 1 exited with status 2" '1..0 # SKIP no root\n'
tally "a suite that prints nothing is a failure" 0 "0 1 0 printed no test result" ''
tally "a suite without a plan is a failure" 0 "1 1 0 printed no plan (1..N)" 'ok 1 - a\n'
tally "stopping half-way with status 0 is a failure" 0 "1 1 0 planned 3 tests, printed 1 results" '1..3\nok 1 - a\n'
tally "cmocka groups: one plan each, added up" 0 "2 0 1" '1..2\nok 1 - a\nok 2 - b\n1..1\nnot ok 1 # SKIP c\n'
tally "e2e style: the plan at the end" 1 "1 1 0" 'ok 1 - a\nnot ok 2 - b\n# detail\n1..2\n'
tally "comments and look-alikes are not results" 0 "1 0 0" \
	'# not ok - t\n   not ok 3\nokay\nnot okay\n# 1..0 # SKIP\n1..1\nok 1 - x\n'

# run.sh itself on canned suites: tests/lint/*.sh of a copy of the tree.
X="$T/tree"
mkdir -p "$X/tests/lint"
cp "$top/tests/run.sh" "$X/tests/run.sh"
suite() { # name tap [status]
	printf 'printf "%%b" %s\nexit %s\n' "'$2'" "${3:-0}" >"$X/tests/lint/$1.sh"
}
suite a-pass '1..2\nok 1 - a\nok 2 - b\n'
suite b-cmocka '1..3\nok 1 - a\nnot ok 2 # SKIP b\nnot ok 3 # SKIP c\n'
suite c-noroot '1..0 # SKIP the fleet needs root\n'
sh "$X/tests/run.sh" lint >"$T/run.out" 2>&1
rc=$?
is "run.sh: the closing line counts passes and skips" "$(tail -n 1 "$T/run.out")" "3 passed, 0 failed, 3 skipped"
is "run.sh: skips alone exit 0" "$rc" 0

suite d-fail '1..1\nnot ok 1 - d\n' 1
suite e-crash '1..2\nok 1 - e\n' 139
sh "$X/tests/run.sh" lint >"$T/run.out" 2>&1
rc=$?
is "run.sh: the closing line counts failures and a crash" "$(tail -n 1 "$T/run.out")" "4 passed, 2 failed, 3 skipped"
is "run.sh: a failure exits non-zero" "$rc" 1
is "run.sh: the crash is named" "$(grep -c '^   not ok - lint/e-crash.sh exited with status 139$' "$T/run.out")" 1

echo "1..$n"
[ "$failed" -eq 0 ]
