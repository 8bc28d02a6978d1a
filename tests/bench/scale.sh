#!/bin/sh
# scale.sh [--quick] -- rotor at 10, 100, 500 and 1,000 hosts, side by side
# with its OpenSSH floor, on a real fleet (tests/fleet), in one run.
#
# One fleet of the largest size; one env per size N (envs sN, files in
# /srv/sN on hosts 1..N, a postgres-layout server role, no reload, no probe,
# 3 files a host).  For each N, in increasing order:
#
#   deploy     rotor apply --yes: generation 1 on N empty hosts (first deployment)
#   observe    rotor observe --json, checked: N hosts reachable, fit stable
#   plan       rotor plan (in sync)
#   no-change  rotor apply --yes (in sync: nothing to do)
#   floor      OpenSSH, one session per host through xargs -P $P
#              (curve25519-sha256, the kex of libssh2): sha256sum of the 3 files
#   libssh2    the library alone, the way its documentation shows
#              (tests/bench/libssh2_floor.c, $P threads): the 3 files read
#              over SFTP (sftp), and with one `cat` over an exec channel
#              (exec), each with its wall and CPU time; and the handshake
#              alone (TCP, key exchange, host key check; no authentication,
#              nothing read): what every host costs before any work
#   step       rotor rotate start, then rotor apply --yes: the trust step
#              (every host's bundle rewritten)
#
# Every rotor command is timed by GNU time: wall, CPU (user + system) and
# peak RSS.  Memory per host is the slope of peak RSS between the smallest
# and the largest N (the cost of one more host), per command.  The table
# also gives controller CPU per host.  One run per size (a 1,000-host step
# takes about a minute); never asserts on timing, fails loudly when a command
# fails or its output is wrong.  Ansible, slower by an order of magnitude,
# stays in observe.sh at 50 and 100 hosts.
#
# Knobs (environment): BENCH_HOSTS="10 100 500 1000" (any sizes, at most
# 1,016: four /24s), BENCH_PARALLEL=32, BENCH_PERF=FILE (record `perf
# record -g` of the observe at the largest size into FILE, when perf is
# installed).  --quick: BENCH_HOSTS="5 10".  Needs root (the fleet).  Uses
# 127.0.50.x to 127.0.53.x.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/lib.sh"
SIZES=${BENCH_HOSTS:-"10 100 500 1000"}
P=${BENCH_PARALLEL:-32}
BASE=127.0.50
if [ "${1:-}" = --quick ]; then
	SIZES="5 10"
fi
[ "$(id -u)" -eq 0 ] || die "needs root (the fleet binds port 22)"
MAXN=0 MINN=
for n in $SIZES; do
	case $n in '' | *[!0-9]*) die "BENCH_HOSTS: not a number: $n" ;; esac
	[ "$n" -ge 1 ] && [ "$n" -le 1016 ] || die "BENCH_HOSTS: sizes must be 1..1016"
	if [ "$n" -gt "$MAXN" ]; then MAXN=$n; fi
	if [ -z "$MINN" ] || [ "$n" -lt "$MINN" ]; then MINN=$n; fi
done
SIZES=$(printf '%s\n' $SIZES | sort -n | uniq | tr '\n' ' ')
[ -x /usr/bin/time ] || sh "$top/tests/deps.sh" time

bench_sandbox scale
cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -o "$W/libssh2_floor" "$top/tests/bench/libssh2_floor.c" \
	$(pkg-config --cflags --libs libssh2) -lpthread || die "cannot build tests/bench/libssh2_floor.c"
load_start=$(loadavg)
t0=$(now)
dirs=""
for n in $SIZES; do dirs="$dirs /srv/s$n"; done
# shellcheck disable=SC2086
bench_fleet_up "$MAXN" $BASE $dirs
bench_repo "$P" $(for n in $SIZES; do printf 's%s ' "$n"; done)
for n in $SIZES; do
	{
		printf 'subject: {O: Example, OU: bench}\nkey: {type: ec, curve: P-256}\nservers:\n'
		head -n "$n" "$FD/hosts.txt" | while read -r h a; do printf '  %s: {sans: [%s]}\n' "$h" "$a"; done
		printf 'clients: [app]\n'
	} >"envs/s$n/chain.yaml"
	{
		printf 'hosts:\n'
		head -n "$n" "$FD/hosts.txt" | while read -r h a; do
			printf '  %s:\n    address: %s\n    roles:\n' "$h" "$a"
			printf '      - {role: server, layout: postgres, dir: /srv/s%s, identity: %s, probe: none}\n' "$n" "$h"
		done
	} >"envs/s$n/hosts.yaml"
done
"$ROTOR" validate --worktree >"$W/validate.out" 2>&1 || { cat "$W/validate.out" >&2; die "rotor validate"; }
git add -A && git commit -qm "bench envs"
t_setup=$(minus "$(now)" "$t0")
say "setup (fleet of $MAXN up, envs): $t_setup s"

# timed NAME CMD... -> "wall rss_kib cpu_s"; the output in $W/NAME.out
timed() {
	_name=$1; shift
	_a=$(now)
	/usr/bin/time -f '%M %U %S' -o "$W/$_name.time" "$@" >"$W/$_name.out" 2>"$W/$_name.err" ||
		{ tail -n 20 "$W/$_name.err" "$W/$_name.out" >&2; die "$_name: $* exited non-zero"; }
	_b=$(now)
	printf '%s %s\n' "$(minus "$_b" "$_a")" "$(tail -n 1 "$W/$_name.time" | awk '{ printf "%s %.2f", $1, $2 + $3 }')"
}
f() { echo "$2" | cut -d' ' -f"$1"; }
floor_ok() { # N OUT
	[ "$(grep -Ec "^[0-9a-f]{64}  /srv/s$1/" "$2")" -eq $(($1 * 3)) ] || die "ssh floor ($1 hosts): $(grep -c " /srv/s$1/" "$2") hashes, expected $(($1 * 3))"
}
# rows: size what wall rss cpu
: >"$W/rows"
row() { echo "$1 $2 $3" >>"$W/rows"; say "  $1 hosts, $2: $(f 1 "$3") s wall, $(f 3 "$3") s CPU, peak RSS $(f 2 "$3") KiB"; }

for n in $SIZES; do
	e=s$n
	say "== $n hosts [load $(loadavg)]"
	"$ROTOR" rotate start --env $e >/dev/null || die "rotor rotate start --env $e (generation 1)"
	git merge -q --ff-only "rotor/rotate/$e/gen-0001"
	x=$(timed "deploy$n" "$ROTOR" apply --env $e --yes) || exit 1
	row "$n" deploy "$x"
	x=$(timed "observe$n" "$ROTOR" observe --env $e --json) || exit 1
	/usr/bin/python3 - "$n" "$W/observe$n.out" <<'EOF' || die "rotor observe ($n hosts): unexpected output (kept in $W/observe$n.out)"
import json, sys
h = json.load(open(sys.argv[2]))["hosts"]
assert len(h) == int(sys.argv[1]), "host count"
for x in h:
    assert x["reachable"], x["name"] + " unreachable"
    assert "stable" in x["fits"], x["name"] + " does not fit stable"
    assert any(f.get("key") == "matches" for f in x["files"]), x["name"] + " key"
EOF
	row "$n" observe "$x"
	if [ "$n" -eq "$MAXN" ] && [ -n "${BENCH_PERF:-}" ] && command -v perf >/dev/null 2>&1; then
		perf record -q -g -o "$BENCH_PERF" "$ROTOR" observe --env $e --json >/dev/null 2>&1 ||
			say "perf record failed; no profile"
	fi
	x=$(timed "plan$n" "$ROTOR" plan --env $e --detailed-exitcode) || exit 1
	row "$n" plan "$x"
	x=$(timed "noop$n" "$ROTOR" apply --env $e --yes) || exit 1
	grep -q "^In sync: every host holds the desired" "$W/noop$n.out" ||
		{ tail -n 20 "$W/noop$n.out" >&2; die "apply ($n hosts, in sync) did something"; }
	row "$n" noop "$x"
	files="/srv/$e/server.crt /srv/$e/server.key /srv/$e/root.crt"
	fs=$(ssh_floor "$n" -o KexAlgorithms=curve25519-sha256) || exit 1
	echo "$n floor $fs 0 0" >>"$W/rows"
	say "  $n hosts, ssh floor: $fs s"
	for m in sftp exec handshake; do
		# shellcheck disable=SC2086
		"$W/libssh2_floor" $m "$KEY" "$KH" rotorfleet "$n" "$P" $files <"$FD/hosts.txt" >"$W/lib.out" 2>"$W/lib.err" ||
			{ tail -n 5 "$W/lib.err" >&2; die "libssh2 floor ($m, $n hosts)"; }
		[ "$(awk -v m=$m '$2 > 0 || (m == "handshake" && $2 == 0)' "$W/lib.out" | wc -l)" -eq "$n" ] ||
			die "libssh2 floor ($m, $n hosts): hosts not read"
		x=$(sed -n 's/^libssh2_floor: \([0-9.]*\) s wall, \([0-9.]*\) s CPU$/\1 0 \2/p' "$W/lib.err")
		[ -n "$x" ] || die "libssh2 floor ($m, $n hosts): no timing line"
		row "$n" "libssh2-$m" "$x"
	done
	"$ROTOR" rotate start --env $e >/dev/null || die "rotor rotate start --env $e"
	git merge -q --ff-only "rotor/rotate/$e/gen-0002"
	x=$(timed "step$n" "$ROTOR" apply --env $e --yes) || exit 1
	grep -q "applying step stable -> trust" "$W/step$n.out" ||
		{ tail -n 20 "$W/step$n.out" >&2; die "apply ($n hosts) did not apply the trust step"; }
	row "$n" step "$x"
done
load_end=$(loadavg)

# ---- report ----
echo
echo "## rotor at scale ($(date -u +%Y-%m-%dT%H:%MZ), $(getconf _NPROCESSORS_ONLN) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $load_start at start, $load_end at end)"
echo
echo "Each host: a server role, 3 files, no reload, no probe. Parallelism $P. One run per size."
echo "floor = OpenSSH, one session per host via xargs -P $P, sha256sum of the 3 files, curve25519-sha256."
echo "step = the trust step of a rotation (every bundle rewritten). CPU = user + system of rotor; per host = CPU / hosts."
echo "libssh2 sftp / exec = libssh2 alone (tests/bench/libssh2_floor.c), the 3 files over SFTP / one cat on an exec channel: CPU per host."
echo "libssh2 handshake = the same without authentication and files: TCP, key exchange, host key check, close: CPU per host."
echo
echo "| hosts | observe | CPU/host | libssh2 sftp | libssh2 exec | libssh2 handshake | floor | observe / floor | plan | no-change apply | no-change / observe | first deployment | trust step | step / observe | peak RSS observe | peak RSS step |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for n in $SIZES; do
	awk -v n="$n" '$1 == n { w[$2] = $3; r[$2] = $4; c[$2] = $5 }
		END { printf "| %d | %.2f s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f s | %.2f | %.2f s | %.2f s | %.2f | %.2f s | %.2f s | %.2f | %.1f MiB | %.1f MiB |\n",
			n, w["observe"], 1000 * c["observe"] / n, 1000 * c["libssh2-sftp"] / n, 1000 * c["libssh2-exec"] / n,
			1000 * c["libssh2-handshake"] / n,
			w["floor"], w["observe"] / w["floor"], w["plan"],
			w["noop"], w["noop"] / w["observe"], w["deploy"], w["step"], w["step"] / w["observe"],
			r["observe"] / 1024, r["step"] / 1024 }' "$W/rows"
done
if [ "$MINN" -ne "$MAXN" ]; then
	echo
	printf 'Memory per additional host (slope of peak RSS from %d to %d hosts):' "$MINN" "$MAXN"
	for w in observe plan deploy step; do
		awk -v a="$MINN" -v b="$MAXN" -v w="$w" '$2 == w && $1 == a { ra = $4 } $2 == w && $1 == b { rb = $4 }
			END { printf " %s %.1f KiB;", w, (rb - ra) / (b - a) }' "$W/rows"
	done
	echo
fi
echo
echo "rotor: $("$ROTOR" --version 2>/dev/null | head -n 1); $(ssh -V 2>&1). Setup: $t_setup s."
