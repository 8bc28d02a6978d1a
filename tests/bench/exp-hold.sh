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
	"$ROTOR" rotate start --env $e >/dev/null || die "rotate start"
	git merge -q --ff-only "rotor/rotate/$e/gen-0001"
	"$ROTOR" apply --env $e --yes >/dev/null 2>&1 || die deploy
done
echo "$PWD" > /tmp/exp-repo; echo "$HOME" > /tmp/exp-home; echo "$ROTOR" > /tmp/exp-rotor
while [ -e /tmp/exp-hold ]; do sleep 1; done
