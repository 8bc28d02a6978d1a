#!/bin/sh
# observe_floor.sh [HOSTS] [THREADS] [ROUNDS] -- the floor under `rotor observe`:
# open an SSH session to every host of a real fleet and read three small
# certificate files from each, in parallel, two ways:
#
#   libssh2  reconcile/remote/ (tests/bench/sshread.c: connect, verify host key,
#            auth, 3 SFTP reads, sha256 of each),
#            one thread per host on a pool of THREADS threads
#   openssh  ssh host cat f1 f2 f3, through xargs -P THREADS
#
# Prints the wall time of each round and the best.  Needs root (the fleet).
# Uses 127.0.20.x.  Defaults: 50 hosts, 32 threads, 3 rounds.
set -eu
N=${1:-50}
P=${2:-32}
ROUNDS=${3:-3}
top=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "observe_floor: needs root (the fleet binds port 22)" >&2; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/rotor-bench-floor.XXXXXX")
F="$top/tests/fleet/fleet"
cleanup() { "$F" down --dir "$W/fleet" >/dev/null 2>&1 || :; rm -rf "$W"; }
trap cleanup EXIT INT TERM

# The libssh2 driver: tests/bench/sshread.c, a few lines around the module under test.
cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -I"$top" -o "$W/floor" "$top/tests/bench/sshread.c" \
	"$top"/reconcile/remote/*.c "$top"/common/*.c \
	$(pkg-config --cflags --libs libssh2 libcrypto) -lpthread

"$F" up "$N" --dir "$W/fleet" --base 127.0.20 >"$W/up.log" 2>&1 || { cat "$W/up.log" >&2; exit 1; }
echo "fleet: $(tail -n 1 "$W/up.log")"

# Three PEM files of realistic size per host, written straight into each host's /srv.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=floor" \
	-keyout "$W/server.key" -out "$W/server.crt" >/dev/null 2>&1
cat "$W/server.crt" "$W/server.crt" >"$W/root.crt"
for h in "$W"/fleet/hosts/host*; do
	mkdir -p "$h/srv/certs"
	cp "$W/server.crt" "$W/server.key" "$W/root.crt" "$h/srv/certs/"
	chmod 0644 "$h/srv/certs/"*
done

now() { date +%s.%N; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a - b }'; }
openssh() { # extra ssh options...
	t0=$(now)
	cut -d' ' -f1 "$W/fleet/hosts.txt" | xargs -P "$P" -I{} \
		ssh -F "$W/fleet/ssh_config" "$@" {} cat /srv/certs/server.crt /srv/certs/server.key /srv/certs/root.crt \
		>"$W/ssh.out" 2>"$W/ssh.err" || { echo "openssh failed: $(head -n 3 "$W/ssh.err")" >&2; exit 1; }
	[ "$(wc -c <"$W/ssh.out")" -eq $((N * $(cat "$W/server.crt" "$W/server.key" "$W/root.crt" | wc -c))) ] ||
		{ echo "openssh: short output" >&2; exit 1; }
	minus "$(now)" "$t0"
}
best() { printf '%s\n' "$@" | sort -g | head -n 1; }

# libssh2 1.10 negotiates curve25519-sha256; OpenSSH 9.2 defaults to the
# costlier sntrup761x25519, so OpenSSH runs both ways.
lib= def= c25=
i=1
while [ "$i" -le "$ROUNDS" ]; do
	"$W/floor" "$W/fleet/id_ed25519" "$W/fleet/known_hosts" "$N" "$P" <"$W/fleet/hosts.txt" >"$W/lib.out" 2>"$W/lib.err" ||
		{ echo "libssh2 round $i failed: $(head -n 3 "$W/lib.err")" >&2; exit 1; }
	[ "$(grep -c ' [0-9a-f]\{64\} ' "$W/lib.out")" -eq $((3 * N)) ] || { echo "libssh2: short output" >&2; exit 1; }
	t_lib=$(sed -n 's/^sshread: \([0-9.]*\) s$/\1/p' "$W/lib.err")
	t_def=$(openssh)
	t_c25=$(openssh -o KexAlgorithms=curve25519-sha256)
	printf 'round %d: libssh2 %.2f s   openssh %.2f s   openssh curve25519 %.2f s\n' "$i" "$t_lib" "$t_def" "$t_c25"
	lib="$lib $t_lib" def="$def $t_def" c25="$c25 $t_c25"
	i=$((i + 1))
done
# shellcheck disable=SC2086
printf 'observe floor, %d hosts x 3 files, %d parallel, best of %d: libssh2 (reconcile/remote/) %.2f s; ssh via xargs -P %d %.2f s (curve25519 kex: %.2f s)\n' \
	"$N" "$P" "$ROUNDS" "$(best $lib)" "$P" "$(best $def)" "$(best $c25)"
