# lib.sh -- sourced by tests/e2e/*.sh: TAP output and a throwaway sandbox.
#
#   . "$(dirname "$0")/lib.sh"
#   ok "name" test -f file         # runs the command; "ok N - name" or "not ok N - name"
#   expect_out "name" 'regex' cmd  # command output (stdout+stderr) must match the ERE
#   done_testing
#
# $ROTOR is the binary under test (tests/run.sh exports the sanitizer
# build); $T is a fresh temporary directory removed at exit, with HOME
# pointing inside it so no test reads or writes the real home.
set -u
: "${ROTOR:=$(cd "$(dirname "$0")/../.." && pwd)/build/rotor}"
: "${ROTOR_SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
T=$(mktemp -d "${TMPDIR:-/tmp}/rotor-e2e.XXXXXX")
export HOME="$T/home"
mkdir -p "$HOME"
export GIT_CONFIG_NOSYSTEM=1
git config --global user.name "rotor test"
git config --global user.email "test@rotor.invalid"
git config --global init.defaultBranch main
unset ROTOR_KEY_FILE
_n=0 _failed=0
trap 'rm -rf "$T"' EXIT

ok() { # name cmd...
	_name=$1; shift
	_n=$((_n + 1))
	if "$@" >"$T/.out" 2>&1; then
		echo "ok $_n - $_name"
	else
		echo "not ok $_n - $_name"
		sed 's/^/# /' "$T/.out" | head -n 30
		_failed=$((_failed + 1))
	fi
}

fails() { # name cmd...   (the command must exit non-zero)
	_name=$1; shift
	_n=$((_n + 1))
	if "$@" >"$T/.out" 2>&1; then
		echo "not ok $_n - $_name (command succeeded)"
		_failed=$((_failed + 1))
	else
		echo "ok $_n - $_name"
	fi
}

expect_out() { # name regex cmd...  (output must match regex; exit status ignored)
	_name=$1; _re=$2; shift 2
	_n=$((_n + 1))
	"$@" >"$T/.out" 2>&1
	if grep -E -q -- "$_re" "$T/.out"; then
		echo "ok $_n - $_name"
	else
		echo "not ok $_n - $_name: output does not match /$_re/"
		sed 's/^/# /' "$T/.out" | head -n 30
		_failed=$((_failed + 1))
	fi
}

done_testing() {
	echo "1..$_n"
	[ "$_failed" -eq 0 ]
}
