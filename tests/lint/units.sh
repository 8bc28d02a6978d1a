#!/bin/sh
# units.sh -- systemd-analyze verify on the unit files of contrib/systemd/
# (rotor-drift.service and .timer), in a scratch root that holds the
# system's own units and a rotor at /usr/local/bin/rotor, as an installed
# machine would; verify must exit 0 and print nothing (it only warns about
# a bad setting, with status 0).  Then the proof that this can fail: a
# bad setting and a missing binary are both reported.  Needs systemd-analyze
# (package systemd, in make deps).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/rotor-units.XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0 failed=0
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "1..0 # SKIP systemd-analyze is not installed (make deps installs systemd)"
	exit 0
fi

ok() { # name cmd...
	n=$((n + 1))
	_name=$1; shift
	if "$@" >"$T/out" 2>&1; then
		echo "ok $n - $_name"
	else
		echo "not ok $n - $_name"
		sed 's/^/#   /' "$T/out"
		failed=$((failed + 1))
	fi
}

# root DIR [rotor]: a scratch root with the system's units, ours, and (unless "none") a rotor binary.
root() {
	mkdir -p "$1/usr/lib/systemd" "$1/etc/systemd/system" "$1/usr/local/bin"
	cp -r /lib/systemd/system "$1/usr/lib/systemd/system"
	cp "$top"/contrib/systemd/rotor-drift.service "$top"/contrib/systemd/rotor-drift.timer "$1/etc/systemd/system/"
	[ "${2:-}" = none ] || { printf '#!/bin/sh\nexit 0\n' >"$1/usr/local/bin/rotor"; chmod 755 "$1/usr/local/bin/rotor"; }
}

# verify DIR: exit 0 and no output at all.
verify() {
	out=$(systemd-analyze verify --root="$1" rotor-drift.service rotor-drift.timer 2>&1) || { echo "$out"; return 1; }
	[ -z "$out" ] || { echo "$out"; return 1; }
}

root "$T/good"
ok "systemd-analyze verify: rotor-drift.service and .timer, no warning" verify "$T/good"
ok "the service runs /usr/local/bin/rotor drift as a dedicated user" sh -c '
	f=$1/contrib/systemd/rotor-drift.service
	grep -q "^ExecStart=/usr/local/bin/rotor --repo /var/lib/rotor/state drift --env \${ROTOR_ENV}$" "$f" &&
	grep -q "^User=rotor$" "$f" && grep -q "^ProtectSystem=strict$" "$f" && grep -q "^StateDirectory=rotor$" "$f" &&
	grep -q "^NoNewPrivileges=yes$" "$f"' _ "$top"
ok "the timer starts the service" grep -q "^OnCalendar=hourly$" "$top/contrib/systemd/rotor-drift.timer"

root "$T/bad"
sed -i 's/^ProtectSystem=strict/ProtectSystem=stricter/' "$T/bad/etc/systemd/system/rotor-drift.service"
not_verified() { ! verify "$1"; }
ok "a bad setting is caught" not_verified "$T/bad"
root "$T/nobin" none
ok "a missing /usr/local/bin/rotor is caught" not_verified "$T/nobin"
echo "1..$n"
[ "$failed" -eq 0 ]
