#!/bin/sh
# soak.sh [--quick] -- the connection soak of issue 13, as a benchmark: three
# PostgreSQL servers, two client hosts in switch mode (hosts.yaml `switch:`,
# connecting with service=app) and two in the plain libpq layout
# (~/.postgresql), each client host running SOAK_SOURCES (default 3) libpq
# connection sources with no pause between attempts (tests/e2e/churn/churn.c,
# -i 0), all through two full rotations and a rollback (the clients and
# servers phase commits of a third rotation reverted with git revert, each
# revert applied), with SOAK_HOLD seconds (default 25; --quick: 0) of
# connections after each apply, as between two merges.  It prints both
# counts side by side:
#
#   soak: switch mode: N connections, 0 failed
#   soak: plain layout: N connections, M failed (K "key values mismatch")
#
# and fails when switch mode had a failed connection, or (without --quick)
# when fewer than 10,000 connections were made in all.  --quick: one
# rotation and the rollback, 2 sources per host.
#
# Needs root (the fleet).  Uses 127.0.32.x (tests/fleet/README.md).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/bench/lib.sh"
if [ "$(id -u)" -ne 0 ]; then
	say "soak.sh: skipped: the fleet needs root"
	exit 0
fi
quick=0
[ "${1:-}" = --quick ] && quick=1
SOURCES=${SOAK_SOURCES:-3}
HOLD=${SOAK_HOLD:-25}
[ "$quick" -eq 0 ] || { SOURCES=${SOAK_SOURCES:-2}; HOLD=${SOAK_HOLD:-0}; }
case $SOURCES in [1-9] | 1[0-9]) ;; *) die "SOAK_SOURCES must be 1 to 19" ;; esac
case $HOLD in [0-9] | [0-9][0-9] | [0-9][0-9][0-9]) ;; *) die "SOAK_HOLD must be 0 to 999 seconds" ;; esac
B=127.0.32
PG_RELOAD="sudo -n -u postgres /usr/lib/postgresql/15/bin/pg_ctl -D /srv/postgres/data -s reload"

bench_sandbox soak
# Counters where the client hosts' login user can reach them.
CH=$(mktemp -d /tmp/rotor-soak.XXXXXX)
chmod 0755 "$CH"
trap 'touch "$CH/stop"; sleep 1; rm -rf "$CH"; _bench_cleanup' EXIT
"$F" up 7 --postgres --dir "$FD" --base "$B" >"$W/up.log" 2>&1 || { cat "$W/up.log" >&2; die "fleet up"; }
sh "$top/tests/e2e/churn/build.sh" "$CH/churn" || die "building churn"
for i in 1 2 3; do "$F" psql --dir "$FD" host$i -qc "CREATE ROLE app LOGIN" >/dev/null || die "create role"; done

R=$W/repo
mkdir -p "$R" && cd "$R" && git init -q . || die "repo"
"$ROTOR" init --env poc >/dev/null || die "rotor init"
sed -i -e "s|^  user: deploy|  user: rotorfleet\n  identity: \"$FD/id_ed25519\"|" \
       -e "s|^  known_hosts: .*|  known_hosts: \"$FD/known_hosts\"|" \
       -e "s|^  connect_timeout: .*|  connect_timeout: 10s|" rotor.yaml
{
	printf 'subject: {O: Example, OU: soak}\nkey: {type: ec, curve: P-256}\nservers:\n'
	for i in 1 2 3; do printf '  pg%d: {sans: [%s.%d]}\n' "$i" "$B" "$i"; done
	printf 'clients: [app]\n'
} > envs/poc/chain.yaml
{
	echo "hosts:"
	for i in 1 2 3; do
		printf '  host%d:\n    address: %s.%d\n    roles:\n' "$i" "$B" "$i"
		printf '      - {role: server, layout: postgres, dir: /srv/postgres/certs, owner: postgres, group: postgres,\n'
		printf '         identity: pg%d, reload: "%s", probe: {type: postgres, port: 5432}}\n' "$i" "$PG_RELOAD"
	done
	for i in 4 5; do
		printf '  host%d:\n    address: %s.%d\n    roles:\n' "$i" "$B" "$i"
		printf '      - {role: client, layout: libpq, user: rotorfleet, home: /home/rotorfleet, identity: app, switch: {service: app}}\n'
	done
	for i in 6 7; do
		printf '  host%d:\n    address: %s.%d\n    roles:\n' "$i" "$B" "$i"
		printf '      - {role: client, layout: libpq, user: rotorfleet, home: /home/rotorfleet, identity: app}\n'
	done
} > envs/poc/hosts.yaml
"$ROTOR" validate --worktree >/dev/null || die "validate"
git add -A && git commit -qm "rotor: poc" || die "commit"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001 || die "rotate start"
"$ROTOR" apply --env poc --yes --replace-unknown >"$W/apply0.log" 2>&1 || { cat "$W/apply0.log" >&2; die "first apply"; }

# ---- the sources: no pause between attempts ----
targets="$B.1:5432:$B.1 $B.2:5432:$B.2 $B.3:5432:$B.3"
PIDS=
for i in 4 5 6 7; do
	set --
	s=0
	while [ "$s" -lt "$SOURCES" ]; do
		if [ "$i" -le 5 ]; then set -- "$@" -s app; else set -- "$@" -c /home/rotorfleet/.postgresql; fi
		s=$((s + 1))
	done
	# shellcheck disable=SC2086
	"$F" exec --dir "$FD" host$i runuser -u rotorfleet -- env HOME=/home/rotorfleet \
		"$CH/churn" -i 0 -f "$CH/stop" -U app "$@" $targets >"$W/churn$i.out" 2>&1 &
	PIDS="$PIDS $!"
done
t0=$(now)

apply() { # label
	_a=$(now)
	"$ROTOR" apply --env poc --yes >"$W/apply.log" 2>&1 || { cat "$W/apply.log" >&2; die "apply ($1)"; }
	say "  $1: $(minus "$(now)" "$_a") s"
	applies=$((applies + 1))
	[ "$HOLD" -eq 0 ] || sleep "$HOLD"   # not a wait: connections go on between two steps, as between merges
}
applies=0
phase_next() { # generation phase
	"$ROTOR" rotate next --env poc >/dev/null || die "rotate next ($2)"
	git merge -q --ff-only "rotor/rotate/poc/gen-$(printf %04d "$1")-$2" || die "merge $2"
	eval "commit_$2=\$(git rev-parse HEAD)"
}
rotation_to() { # generation [last phase]
	"$ROTOR" rotate start --env poc >/dev/null || die "rotate start"
	git merge -q --ff-only "rotor/rotate/poc/gen-$(printf %04d "$1")" || die "merge start"
	apply "generation $1: trust"
	for ph in servers clients stable; do
		phase_next "$1" "$ph"
		apply "generation $1: $ph"
		[ "$ph" != "${2:-}" ] || return 0
	done
}
say "soak: $((4 * SOURCES)) sources on 4 client hosts, load $(loadavg)"
if [ "$quick" -eq 0 ]; then
	rotation_to 2
	rotation_to 3
	last=4
else
	last=2
fi
# The rollback: a third rotation up to clients, then its clients and servers phase commits reverted.
rotation_to "$last" clients
git revert --no-edit "$commit_clients" >/dev/null || die "revert clients"
apply "rollback: clients -> servers"
git revert --no-edit "$commit_servers" >/dev/null || die "revert servers"
apply "rollback: servers -> trust"
touch "$CH/stop"
t1=$(now)
n=0
for p in $PIDS; do
	while kill -0 "$p" 2>/dev/null && [ "$n" -lt 600 ]; do n=$((n + 1)); sleep 0.1; done
done
"$ROTOR" plan --env poc --detailed-exitcode >/dev/null 2>&1 || die "not in sync after the rollback"

count() { # host... -> "connections failed"
	for _h; do sed -n 's/^churn: \([0-9]*\) connections, \([0-9]*\) failed$/\1 \2/p' "$W/churn$_h.out"; done |
		awk '{ c += $1; f += $2; n++ } END { printf "%d %d %d\n", c, f, n }'
}
set -- $(count 4 5)
sw_c=$1 sw_f=$2 sw_n=$3
set -- $(count 6 7)
pl_c=$1 pl_f=$2 pl_n=$3
mism=$(cat "$W/churn6.out" "$W/churn7.out" | grep -c "key values mismatch")
secs=$(minus "$t1" "$t0")
echo "soak: $(date -u +%Y-%m-%d), $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1), load $(loadavg)"
echo "soak: $((4 * SOURCES)) sources ($SOURCES per client host, no pause), $secs s, $applies applies ($([ "$quick" -eq 0 ] && echo "two rotations and a rollback" || echo "one rotation and a rollback")), $HOLD s between them"
echo "soak: switch mode: $sw_c connections, $sw_f failed"
echo "soak: plain layout: $pl_c connections, $pl_f failed ($mism \"key values mismatch\")"
grep -h "FAIL" "$W/churn4.out" "$W/churn5.out" | head -n 5 >&2
grep -h "FAIL" "$W/churn6.out" "$W/churn7.out" | head -n 5 >&2
[ "$sw_n" -eq 2 ] && [ "$pl_n" -eq 2 ] || die "a churn run ended without its summary"
[ "$sw_f" -eq 0 ] || die "switch mode: $sw_f failed connections"
[ "$quick" -eq 1 ] || [ $((sw_c + pl_c)) -ge 10000 ] || die "only $((sw_c + pl_c)) connections (want 10,000)"
