#!/bin/sh
# run.sh [unit|lint|e2e|schema] -- run the test suites; the last line is
#                                   "N passed, N failed, N skipped".
# run.sh tally LOG STATUS        -- how one suite's output and exit status count:
#                                   "PASSED FAILED SKIPPED[ why the suite failed]"
#
# Every suite speaks TAP: cmocka through CMOCKA_MESSAGE_OUTPUT=TAP, shell
# and Python tests through their own helpers.  tally counts
#   ok N - name                           passed
#   not ok N - name                       failed
#   ok N # SKIP ... / not ok N # SKIP ... skipped (cmocka 1.1 prints a skipped
#                                         case as "not ok N # SKIP name")
#   1..0 # SKIP reason                    the whole suite skipped (an e2e suite
#                                         without root): one skip
# and one failure more for a suite that exits non-zero without a "not ok"
# (a crash, a sanitizer report), prints no result and no skip plan, or
# whose plans ("1..N", one per cmocka group) do not add up to the results
# it printed (it stopped half-way).  The exit status is non-zero only when
# something failed.
set -u

tally() { # log status
	awk -v rc="$2" '
	function result() { return $1 == "ok" || ($1 == "not" && $2 == "ok") }
	/^(ok|not ok)/ && result() {
		n++
		if (tolower($0) ~ /#[ \t]*skip/) s++
		else if ($1 == "ok") p++
		else f++
		next
	}
	/^1\.\.[0-9]+/ {
		match($0, /^1\.\.[0-9]+/)
		k = substr($0, 4, RLENGTH - 3) + 0
		plans++; planned += k
		if (k == 0 && tolower($0) ~ /^1\.\.0[ \t]*#[ \t]*skip/) { s++; skipplan++ }
	}
	END {
		why = ""
		if (rc != 0 && f == 0) why = "exited with status " rc
		else if (rc == 0 && n == 0 && !skipplan) why = "printed no test result"
		else if (rc == 0 && plans == 0) why = "printed no plan (1..N)"
		else if (rc == 0 && planned != n) why = "planned " planned " tests, printed " n " results"
		if (why != "") f++
		printf "%d %d %d%s\n", p, f, s, why == "" ? "" : " " why
	}' "$1"
}

if [ "${1:-}" = tally ]; then
	[ $# -eq 3 ] || { echo "usage: run.sh tally LOG STATUS" >&2; exit 2; }
	tally "$2" "$3"
	exit
fi

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
only=${1:-all}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pass=0 fail=0 skip=0

run_suite() { # name command...
	name=$1; shift
	log="$out/$(echo "$name" | tr '/ ' '__').log"
	printf '== %s\n' "$name"
	"$@" >"$log" 2>&1
	rc=$?
	read -r p f s why <<EOF
$(tally "$log" "$rc")
EOF
	[ -z "$why" ] || echo "not ok - $name $why" >>"$log"
	grep -E '^(not ok|ok)([[:blank:]]|$)|^1\.\.0[[:blank:]]*#' "$log" | sed 's/^/   /'
	if [ -n "$why" ] || [ "$f" -ne 0 ]; then
		echo "   --- output of $name ---"
		grep -v -E '^ok([[:blank:]]|$)' "$log" | tail -n 60 | sed 's/^/   | /'
	fi
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
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
	for t in tests/lint/*.sh; do
		[ -f "$t" ] || continue
		run_suite "lint/$(basename "$t")" sh "$t"
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
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
