#!/bin/sh
# soak.sh [--quick] -- connections through whole rotations, as a benchmark:
# SOAK_SERVERS PostgreSQL servers (default 10), four client hosts, two in
# switch mode (hosts.yaml `switch:`, connecting with service=app) and two
# in the plain libpq layout (~/.postgresql), each running SOAK_SOURCES
# (default 3) churn processes, one libpq connection source each, a new
# sslmode=verify-full connection after the other with no pause
# (tests/e2e/churn/churn.c, -i 0), round robin over every server.
#
#   1. The rotation: one full rotation (trust, servers, clients, stable),
#      with connections between two applies as between two merges: after
#      step k of the first 3 the soak goes on until the churn has counted
#      k/3 of SOAK_CONNS (default 10,000; churn -p), and it stops when the
#      last step is applied.  Its own churn run, so its count is the
#      rotation's alone.  Prints the rotation's wall time.
#   2. Then a second rotation and a rollback (a third rotation up to
#      clients, its clients and servers phase commits reverted with git
#      revert, each revert applied), SOAK_HOLD seconds (default 25) of
#      connections after each apply, in a second churn run.
#
# It prints, for the rotation and in all, both layouts side by side:
#
#   soak: the rotation: generation 2 on 10 PostgreSQL servers, W s (applies A s), N connections from P client processes, F failed
#   soak: switch mode: N connections, 0 failed
#   soak: plain layout: N connections, M failed (K "key values mismatch")
#
# and fails when switch mode had a failed connection, or (without --quick)
# when the rotation counted fewer than SOAK_CONNS.  --quick: 3 servers,
# one rotation and the rollback, 2 sources per host, no pauses.
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
SERVERS=${SOAK_SERVERS:-10}
CONNS=${SOAK_CONNS:-10000}
[ "$quick" -eq 0 ] || { SOURCES=${SOAK_SOURCES:-2}; HOLD=${SOAK_HOLD:-0}; SERVERS=${SOAK_SERVERS:-3}; CONNS=${SOAK_CONNS:-0}; }
case $SOURCES in [1-9]) ;; *) die "SOAK_SOURCES must be 1 to 9" ;; esac
case $HOLD in [0-9] | [0-9][0-9] | [0-9][0-9][0-9]) ;; *) die "SOAK_HOLD must be 0 to 999 seconds" ;; esac
case $SERVERS in [1-9] | [1-9][0-9]) ;; *) die "SOAK_SERVERS must be 1 to 99" ;; esac
case $CONNS in [0-9] | [0-9]*[0-9]) ;; *) die "SOAK_CONNS must be a number" ;; esac
B=127.0.32
PG_RELOAD="sudo -n -u postgres /usr/lib/postgresql/15/bin/pg_ctl -D /srv/postgres/data -s reload"
SV=$(seq 1 "$SERVERS")
C1=$((SERVERS + 1)) C2=$((SERVERS + 2)) C3=$((SERVERS + 3)) C4=$((SERVERS + 4))

bench_sandbox soak
# Counters where the client hosts' login user can reach them.
CH=$(mktemp -d /tmp/rotor-soak.XXXXXX)
chmod 0777 "$CH"
trap 'touch "$CH/stop1" "$CH/stop2"; sleep 1; rm -rf "$CH"; _bench_cleanup' EXIT
"$F" up "$C4" --postgres --dir "$FD" --base "$B" >"$W/up.log" 2>&1 || { cat "$W/up.log" >&2; die "fleet up"; }
sh "$top/tests/e2e/churn/build.sh" "$CH/churn" || die "building churn"
for i in $SV; do "$F" psql --dir "$FD" host$i -qc "CREATE ROLE app LOGIN" >/dev/null || die "create role"; done

R=$W/repo
mkdir -p "$R" && cd "$R" && git init -q . || die "repo"
"$ROTOR" init --env poc >/dev/null || die "rotor init"
sed -i -e "s|^  user: deploy|  user: rotorfleet\n  identity: \"$FD/id_ed25519\"|" \
       -e "s|^  known_hosts: .*|  known_hosts: \"$FD/known_hosts\"|" \
       -e "s|^  connect_timeout: .*|  connect_timeout: 10s|" rotor.yaml
{
	printf 'subject: {O: Example, OU: soak}\nkey: {type: ec, curve: P-256}\nservers:\n'
	for i in $SV; do printf '  pg%d: {sans: [%s.%d]}\n' "$i" "$B" "$i"; done
	printf 'clients: [app]\n'
} > envs/poc/chain.yaml
{
	echo "hosts:"
	for i in $SV; do
		printf '  host%d:\n    address: %s.%d\n    roles:\n' "$i" "$B" "$i"
		printf '      - {role: server, layout: postgres, dir: /srv/postgres/certs, owner: postgres, group: postgres,\n'
		printf '         identity: pg%d, reload: "%s", probe: {type: postgres, port: 5432}}\n' "$i" "$PG_RELOAD"
	done
	for i in $C1 $C2; do
		printf '  host%d:\n    address: %s.%d\n    roles:\n' "$i" "$B" "$i"
		printf '      - {role: client, layout: libpq, user: rotorfleet, home: /home/rotorfleet, identity: app, switch: {service: app}}\n'
	done
	for i in $C3 $C4; do
		printf '  host%d:\n    address: %s.%d\n    roles:\n' "$i" "$B" "$i"
		printf '      - {role: client, layout: libpq, user: rotorfleet, home: /home/rotorfleet, identity: app}\n'
	done
} > envs/poc/hosts.yaml
"$ROTOR" validate --worktree >/dev/null || die "validate"
git add -A && git commit -qm "rotor: poc" || die "commit"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001 || die "rotate start"
"$ROTOR" apply --env poc --yes --replace-unknown >"$W/apply0.log" 2>&1 || { cat "$W/apply0.log" >&2; die "first apply"; }

# ---- the sources: one churn process each, no pause between attempts ----
targets=$(for i in $SV; do printf '%s.%d:5432:%s.%d ' "$B" "$i" "$B" "$i"; done)
churn_start() { # run: SOURCES processes on each client host, outputs $W/churnRUN.HOST.S.out
	PIDS=
	for i in $C1 $C2 $C3 $C4; do
		s=1
		while [ "$s" -le "$SOURCES" ]; do
			if [ "$i" -le "$C2" ]; then src="-s app"; else src="-c /home/rotorfleet/.postgresql"; fi
			# shellcheck disable=SC2086
			"$F" exec --dir "$FD" host$i runuser -u rotorfleet -- env HOME=/home/rotorfleet \
				"$CH/churn" -i 0 -f "$CH/stop$1" -p "$CH/p$1.$i.$s" -U app $src $targets \
				>"$W/churn$1.$i.$s.out" 2>&1 &
			PIDS="$PIDS $!"
			s=$((s + 1))
		done
	done
}
churn_stop() { # run
	touch "$CH/stop$1"
	_n=0
	for p in $PIDS; do
		while kill -0 "$p" 2>/dev/null && [ "$_n" -lt 600 ]; do _n=$((_n + 1)); sleep 0.1; done
	done
}
so_far() { # run -> connections counted so far by its processes
	cat "$CH/p$1".* 2>/dev/null | awk '{ c += $1 } END { print c + 0 }'
}

apply() { # label
	_a=$(now)
	"$ROTOR" apply --env poc --yes >"$W/apply.log" 2>&1 || { cat "$W/apply.log" >&2; die "apply ($1)"; }
	_d=$(minus "$(now)" "$_a")
	applied=$(awk -v a="$applied" -v b="$_d" 'BEGIN { printf "%.3f", a + b }')
	say "  $1: $_d s ($(so_far "$run") connections so far)"
	applies=$((applies + 1))
}
hold() { # k: after step k of 3 of the rotation (run 1), until k/3 of CONNS; else HOLD seconds
	# not a wait for something: connections go on between two steps, as between merges
	if [ "$run" -eq 1 ]; then
		_want=$((CONNS * $1 / 3 + CONNS / 50)) _t=0
		while [ "$(so_far 1)" -lt "$_want" ]; do
			[ "$_t" -lt 36000 ] || die "the churn counted $(so_far 1) of $_want connections in an hour"
			sleep 0.1
			_t=$((_t + 1))
		done
	elif [ "$HOLD" -gt 0 ]; then
		sleep "$HOLD"
	fi
}
applies=0 applied=0
phase_next() { # generation phase
	"$ROTOR" rotate next --env poc >/dev/null || die "rotate next ($2)"
	git merge -q --ff-only "rotor/rotate/poc/gen-$(printf %04d "$1")-$2" || die "merge $2"
	eval "commit_$2=\$(git rev-parse HEAD)"
}
rotation_to() { # generation [last phase]
	"$ROTOR" rotate start --env poc >/dev/null || die "rotate start"
	git merge -q --ff-only "rotor/rotate/poc/gen-$(printf %04d "$1")" || die "merge start"
	apply "generation $1: trust"
	_k=1
	for ph in servers clients stable; do
		hold "$_k"
		phase_next "$1" "$ph"
		apply "generation $1: $ph"
		_k=$((_k + 1))
		[ "$ph" != "${2:-}" ] || { hold "$_k"; return 0; }
	done
	[ "$run" -eq 1 ] || hold "$_k"   # the rotation's count ends with its last step
}
count() { # run host... -> "connections failed processes"
	_r=$1; shift
	for _h; do cat "$W/churn$_r.$_h".*.out; done |
		sed -n 's/^churn: \([0-9]*\) connections, \([0-9]*\) failed$/\1 \2/p' |
		awk '{ c += $1; f += $2; n++ } END { printf "%d %d %d\n", c, f, n }'
}

# ---- 1. the rotation, its own churn run ----
say "soak: $((4 * SOURCES)) churn processes on 4 client hosts, $SERVERS servers, load $(loadavg)"
run=1
churn_start 1
t0=$(now)
rotation_to 2
t1=$(now)
rot_wall=$(minus "$t1" "$t0") rot_applied=$applied rot_applies=$applies
churn_stop 1
set -- $(count 1 $C1 $C2); r_sw_c=$1 r_sw_f=$2 r_sw_n=$3
set -- $(count 1 $C3 $C4); r_pl_c=$1 r_pl_f=$2 r_pl_n=$3

# ---- 2. a second rotation (not with --quick) and a rollback ----
run=2 applied=0
churn_start 2
t2=$(now)
if [ "$quick" -eq 0 ]; then
	rotation_to 3
	last=4
else
	last=3
fi
# The rollback: a rotation up to clients, then its clients and servers phase commits reverted.
rotation_to "$last" clients
git revert --no-edit "$commit_clients" >/dev/null || die "revert clients"
apply "rollback: clients -> servers"
hold 0
git revert --no-edit "$commit_servers" >/dev/null || die "revert servers"
apply "rollback: servers -> trust"
churn_stop 2
t3=$(now)
"$ROTOR" plan --env poc --detailed-exitcode >/dev/null 2>&1 || die "not in sync after the rollback"

set -- $(count 2 $C1 $C2); sw_c=$((r_sw_c + $1)) sw_f=$((r_sw_f + $2)) sw_n=$((r_sw_n + $3))
set -- $(count 2 $C3 $C4); pl_c=$((r_pl_c + $1)) pl_f=$((r_pl_f + $2)) pl_n=$((r_pl_n + $3))
mism=$(cat "$W"/churn[12].$C3.*.out "$W"/churn[12].$C4.*.out | grep -c "key values mismatch")
echo "soak: $(date -u +%Y-%m-%d), $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1), load $(loadavg)"
echo "soak: the rotation: generation 2 on $SERVERS PostgreSQL servers, $rot_wall s (applies $rot_applied s, $rot_applies applies), $((r_sw_c + r_pl_c)) connections from $((4 * SOURCES)) client processes, $((r_sw_f + r_pl_f)) failed (switch mode $r_sw_c/$r_sw_f, plain layout $r_pl_c/$r_pl_f)"
echo "soak: in all: $(minus "$t3" "$t0") s, $applies applies ($([ "$quick" -eq 0 ] && echo "two rotations and a rollback" || echo "one rotation and a rollback")), $HOLD s between the applies after the rotation"
echo "soak: switch mode: $sw_c connections, $sw_f failed"
echo "soak: plain layout: $pl_c connections, $pl_f failed ($mism \"key values mismatch\")"
grep -h "FAIL" "$W"/churn[12].$C1.*.out "$W"/churn[12].$C2.*.out | head -n 5 >&2
grep -h "FAIL" "$W"/churn[12].$C3.*.out "$W"/churn[12].$C4.*.out | head -n 5 >&2
[ "$sw_n" -eq $((4 * SOURCES)) ] && [ "$pl_n" -eq $((4 * SOURCES)) ] || die "a churn run ended without its summary"
[ "$sw_f" -eq 0 ] || die "switch mode: $sw_f failed connections"
[ $((r_sw_c + r_pl_c)) -ge "$CONNS" ] || die "the rotation counted only $((r_sw_c + r_pl_c)) connections (want $CONNS)"
