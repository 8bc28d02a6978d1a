#!/bin/sh
# apply.sh [--quick] -- `rotor plan` and `rotor apply` on a real fleet
# (tests/fleet), beside the observe floor measured in the same run.
#
# One fleet of APPLY_HOSTS hosts.  Two envs in one state repository:
#   bench  every host, a server role of layout postgres in /srv/certs
#   rot    the first APPLY_ROT_HOSTS hosts, the same in /srv/rot
# both deployed (generation 1) by `rotor apply --yes` before measuring.
#
#   plan          rotor plan --env bench --detailed-exitcode (in sync: exit 0)
#   apply (noop)  rotor apply --env bench --yes, already in sync: lock,
#                 observe, nothing to do, status commit
#   observe       rotor observe --env bench --json, for what plan adds to it
#   ssh floor     OpenSSH through xargs -P PARALLEL, one session per host,
#                 sha256sum of the three files (curve25519-sha256 kex, as
#                 libssh2; and OpenSSH's default kex)
#   rotation      on env rot: rotor rotate start (generation 2), merged; then
#                 each step applied and timed on its own: trust (bundles
#                 1+2), servers (leaf 2), clients, stable(2) (bundles 2)
#   write floor   OpenSSH, one session per host of env rot: write a file of
#                 root.crt's size to a temporary name, sync it, rename it
#
# Wall time: median of APPLY_RUNS runs for plan, apply (noop), observe and
# the floors; one run of each rotation step (a step happens once).  Peak RSS
# is GNU time's %M (largest of the runs), CPU its user + system.  Each apply
# is also split into phases from its line-buffered, timestamped output:
# lock + observe + plan, writes, re-observe (the gate), status commit.  Never asserts on timing; fails
# loudly when a rotor command fails.
#
# Knobs (environment): APPLY_HOSTS=100, APPLY_ROT_HOSTS=50, APPLY_RUNS=3,
# APPLY_PARALLEL=32, APPLY_DEFAULT_KEX_RUNS=1 (OpenSSH's default kex, for
# reference).  --quick: 10 and 5 hosts, 1 run.  Needs root (the
# fleet).  Uses 127.0.31.x.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/lib.sh"
N=${APPLY_HOSTS:-100}
NR=${APPLY_ROT_HOSTS:-50}
RUNS=${APPLY_RUNS:-3}
P=${APPLY_PARALLEL:-32}
DRUNS=${APPLY_DEFAULT_KEX_RUNS:-1}
BASE=127.0.31
if [ "${1:-}" = --quick ]; then
	N=10 NR=5 RUNS=1
fi
[ "$(id -u)" -eq 0 ] || die "needs root (the fleet binds port 22)"
[ "$N" -ge 1 ] && [ "$N" -le 254 ] || die "APPLY_HOSTS must be 1..254 (one /24)"
[ "$NR" -ge 1 ] && [ "$NR" -le "$N" ] || die "APPLY_ROT_HOSTS must be 1..APPLY_HOSTS"

[ -x /usr/bin/time ] || sh "$top/tests/deps.sh" time
# ---- sandbox: temporary HOME, the fleet, teardown on every exit ----
bench_sandbox apply
load_start=$(loadavg)
t0=$(now)
bench_fleet_up "$N" $BASE /srv/certs /srv/rot

# ---- the state repository ----
bench_repo "$P" bench rot
env_files() { # env hosts dir
	bench_chain_yaml "$2" $BASE >"envs/$1/chain.yaml"
	bench_hosts_yaml "$2" $BASE "$3" >"envs/$1/hosts.yaml"
}
env_files bench "$N" /srv/certs
env_files rot "$NR" /srv/rot
"$ROTOR" validate --worktree >"$W/validate.out" 2>&1 || { cat "$W/validate.out" >&2; die "rotor validate"; }
git add -A && git commit -qm "bench envs"
for e in bench rot; do
	"$ROTOR" rotate start --env $e >/dev/null || die "rotor rotate start --env $e"
	git merge -q --no-edit "rotor/rotate/$e/gen-0001" || die "merge generation 1 of $e"
done

# timed NAME CMD... : run CMD under GNU time; "seconds rss_kib cpu_seconds"
# on stdout; CMD's output (line buffered) in $W/NAME.out, each line prefixed
# with the time it appeared, and the start and end times in $W/NAME.t; a
# failing CMD ends the benchmark.
timed() {
	name=$1; shift
	a=$(now)
	{ rc=0; /usr/bin/time -f '%M %U %S' -o "$W/$name.rss" stdbuf -oL -eL "$@" 2>&1 || rc=$?; echo $rc >"$W/$name.rc"; } |
		perl -MTime::HiRes=time -ne 'BEGIN { $| = 1 } printf "%.3f %s", time, $_' >"$W/$name.out"
	b=$(now)
	if [ "$(cat "$W/$name.rc")" != 0 ]; then
		tail -n 30 "$W/$name.out" >&2
		die "$name: $* exited $(cat "$W/$name.rc")"
	fi
	echo "$a $b" >"$W/$name.t"
	printf '%s %s\n' "$(minus "$b" "$a")" "$(tail -n 1 "$W/$name.rss" | awk '{ printf "%s %.2f", $1, $2 + $3 }')"
}
summary() { # NAME: rotor's summary lines of that run
	sed 's/^[0-9.]* //' "$W/$1.out" | grep -E '^(Plan:|In sync:|done:|Refused:)' | tr '\n' ' ' | cut -c1-160
}
# phases NAME: where the time of an apply went, from its timestamped output:
# lock + observe + plan (until the first step starts, or until the verdict
# when there is nothing to do), writes (a step's start to its last host
# line), re-observe (the gate for what follows: last host line to the next
# step or to "done:"), status commit and exit (after "done:").
phases() {
	read -r a b <"$W/$1.t"
	awk -v a="$a" -v b="$b" '
		function endstep(t) { if (lasthost) { w += lasthost - stepstart; reobs += t - lasthost } else reobs += t - stepstart }
		{ t = $1; line = $0; sub(/^[0-9.]+ /, "", line) }
		line ~ /^applying step / { if (!started) pre = t - a; else endstep(t)
			started = 1; stepstart = t; lasthost = 0; nsteps++; next }
		started && line ~ /^  [^ ]+ [^ ]+ [(][^)]*[)]: / { lasthost = t; next }
		line ~ /^(done:|In sync:)/ && !donet { donet = t; if (!started) pre = t - a; else endstep(t) }
		END {
			if (!donet) donet = b
			printf "lock+observe+plan %.2f s, writes %.2f s, re-observe %.2f s, status commit+exit %.2f s (%d step%s)",
				pre, w, reobs, b - donet, nsteps, nsteps == 1 ? "" : "s"
		}
	' "$W/$1.out"
}

# f K "a b c": field K of a timed result
f() { echo "$2" | cut -d' ' -f"$1"; }
# Every timed rotor run: one line "label hosts seconds rss cpu phases" in $W/rows.
: >"$W/rows"
record() { # label hosts name result
	printf '%s|%s|%s|%s|%s|%s\n' "$1" "$2" "$(f 1 "$4")" "$(f 2 "$4")" "$(f 3 "$4")" "$(case $3 in deploy*|noop*|step-*) phases "$3" ;; esac)" >>"$W/rows"
}
x=$(timed deploy "$ROTOR" apply --env bench --yes)
record "rotor apply --yes, first deployment (3 files a host)" "$N" deploy "$x"
say "first deployment (env bench, $N hosts x 3 files): $(f 1 "$x") s, $(f 2 "$x") KiB, CPU $(f 3 "$x") s; $(summary deploy)"
say "    $(phases deploy)"
x=$(timed deploy-rot "$ROTOR" apply --env rot --yes)
say "first deployment (env rot, $NR hosts x 3 files): $(f 1 "$x") s"
t_setup=$(minus "$(now)" "$t0")

floor_ok() { # N OUT
	[ "$(grep -c '^[0-9a-f]\{64\} ' "$2")" -eq $((3 * $1)) ] || die "ssh floor ($1 hosts): short output"
}
# One session per host: write a file of root.crt's size, sync it, rename it.
head -c "$(wc -c <"$FD/hosts/host1/srv/rot/root.crt")" /dev/urandom >"$W/payload"
run_write() { # N -> seconds
	a=$(now)
	head -n "$1" "$FD/hosts.txt" | cut -d' ' -f2 | xargs -P "$P" -I{} sh -c 'exec ssh -F /dev/null -o BatchMode=yes \
		-o IdentitiesOnly=yes -i "$1" -o UserKnownHostsFile="$2" -o GlobalKnownHostsFile=/dev/null \
		-o StrictHostKeyChecking=yes -o ControlMaster=no -o ConnectTimeout=10 -o KexAlgorithms=curve25519-sha256 \
		-l rotorfleet "$3" "umask 077 && cat >/home/rotorfleet/floor.tmp && sync /home/rotorfleet/floor.tmp && mv -f /home/rotorfleet/floor.tmp /home/rotorfleet/floor.crt" <"$4"' \
		_ "$KEY" "$KH" {} "$W/payload" 2>"$W/write.err" || { head -n 5 "$W/write.err" >&2; die "write floor ($1 hosts)"; }
	b=$(now)
	cmp -s "$W/payload" "$FD/hosts/host$1/home/floor.crt" || die "write floor: host$1 has not the file"
	minus "$b" "$a"
}

# ---- plan and no-change apply on N hosts, beside the floor ----
say "measuring: $N hosts, $RUNS runs; parallel $P; load average $load_start"
sc="" sd=""
r=1
while [ $r -le "$RUNS" ]; do
	x=$(timed "plan$r" "$ROTOR" plan --env bench --detailed-exitcode)
	y=$(timed "noop$r" "$ROTOR" apply --env bench --yes)
	z=$(timed "observe$r" "$ROTOR" observe --env bench --json)
	printf '%s %s\n' "$x" plan >>"$W/m.plan"
	printf '%s %s\n' "$y" "noop$r" >>"$W/m.noop"
	printf '%s %s\n' "$z" observe >>"$W/m.observe"
	c=$(ssh_floor "$N" -o KexAlgorithms=curve25519-sha256)
	sc="$sc $c"
	d=-
	if [ $r -le "$DRUNS" ]; then d=$(ssh_floor "$N"); sd="$sd $d"; fi
	say "  run $r: plan $(f 1 "$x") s (CPU $(f 3 "$x") s)  apply, no change $(f 1 "$y") s (CPU $(f 3 "$y") s)  observe $(f 1 "$z") s  ssh curve25519 $c s  ssh default kex $d s  [load $(loadavg)]"
	say "    apply, no change: $(phases "noop$r")"
	r=$((r + 1))
done
git rev-parse -q --verify refs/rotor/lock/bench >/dev/null && die "the apply lock of bench was not released"
# median_row FILE LABEL HOSTS: the run with the median wall time; peak RSS the largest.
median_row() {
	m=$(sort -g "$1" | awk '{ v[NR] = $0 } END { print v[int((NR + 1) / 2)] }')
	rss=$(cut -d' ' -f2 "$1" | sort -g | tail -n 1)
	name=$(echo "$m" | cut -d' ' -f4)
	printf '%s|%s|%s|%s|%s|%s\n' "$2" "$3" "$(f 1 "$m")" "$rss" "$(f 3 "$m")" "$(case $name in noop*) phases "$name" ;; esac)" >>"$W/rows"
}
median_row "$W/m.observe" "rotor observe --json" "$N"
median_row "$W/m.plan" "rotor plan (in sync)" "$N"
median_row "$W/m.noop" "rotor apply --yes (in sync, no change)" "$N"
plan_line=$(summary plan1)
noop_line=$(summary noop1)

# ---- one rotation on NR hosts, step by step ----
x=$(timed rotate "$ROTOR" rotate start --env rot)
record "rotor rotate start (generation 2: $NR server leaves)" "$NR" rotate "$x"
git merge -q --no-edit rotor/rotate/rot/gen-0002 || die "merge generation 2 of rot"
grep -q '^phase: trust' envs/rot/rotation.yaml || die "rot is not in phase trust after rotate start"
step() { # name
	x=$(timed "step-$1" "$ROTOR" apply --env rot --yes)
	record "rotation step $1 (apply --yes)" "$NR" "step-$1" "$x"
	say "  step $1 on $NR hosts: $(f 1 "$x") s (peak RSS $(f 2 "$x") KiB, CPU $(f 3 "$x") s); $(summary "step-$1")"
	say "    $(phases "step-$1")"
}
setphase() { # sed expression, message
	sed -i "$1" envs/rot/rotation.yaml
	git commit -qm "$2" -- envs/rot/rotation.yaml
}
step trust
setphase 's/^phase: trust$/phase: servers/' "rot: servers"
step servers
setphase 's/^phase: servers$/phase: clients/' "rot: clients"
step clients
setphase 's/^generation: 1$/generation: 2/; /^target:/d; s/^phase: clients$/phase: stable/' "rot: stable at generation 2"
step stable
"$ROTOR" plan --env rot --detailed-exitcode >"$W/rot-final.out" 2>&1 || { cat "$W/rot-final.out" >&2; die "rot not in sync at generation 2 after the rotation"; }
[ "$(grep -c BEGIN "$FD/hosts/host1/srv/rot/root.crt")" -eq 2 ] || die "host1's bundle does not hold generation 2 only"
wsc="" wt=""
r=1
while [ $r -le "$RUNS" ]; do
	c=$(ssh_floor "$NR" -o KexAlgorithms=curve25519-sha256)
	w=$(run_write "$NR")
	z=$(timed "observe-rot$r" "$ROTOR" observe --env rot --json)
	printf '%s %s\n' "$z" observe-rot >>"$W/m.observe-rot"
	wsc="$wsc $c" wt="$wt $w"
	say "  $NR hosts, run $r: ssh read floor $c s  ssh write floor $w s  rotor observe $(f 1 "$z") s  [load $(loadavg)]"
	r=$((r + 1))
done
median_row "$W/m.observe-rot" "rotor observe --json (env rot)" "$NR"
load_end=$(loadavg)

# ---- report ----
# shellcheck disable=SC2086
{
	F_SC=$(median $sc) F_SD=$(median $sd) F_W=$(median $wt) F_R=$(median $wsc)
}
echo
echo "## rotor plan / apply ($(date -u +%Y-%m-%dT%H:%MZ), $(getconf _NPROCESSORS_ONLN) cores, load average $load_start at start, $load_end at end)"
echo
echo "Each host: a server role, 3 files (server.crt, server.key, root.crt), no reload, no probe. Parallelism $P."
echo "observe, plan, apply (no change): median of $RUNS runs; first deployment, rotate start, rotation steps: 1 run each. CPU: user + system of rotor."
echo "read floor = OpenSSH, one session per host via xargs -P $P, sha256sum of the 3 files, curve25519-sha256 (the kex of libssh2), median of $RUNS in this run:"
echo "$N hosts $F_SC s (OpenSSH default kex: $F_SD s, $DRUNS run); $NR hosts $F_R s."
echo "write floor = OpenSSH, one session per host writing, syncing and renaming one file of root.crt's size: $NR hosts $F_W s (median of $RUNS)."
echo
echo "| what | hosts | wall (s) | per host (ms) | CPU (s) | peak RSS (MiB) | / read floor |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
order() { # observe, plan, no-change apply first; then the rest in run order
	grep -E '^rotor (observe --json\||plan|apply --yes \(in sync)' "$W/rows"
	grep -vE '^rotor (observe --json\||plan|apply --yes \(in sync)' "$W/rows"
}
order | while IFS='|' read -r label n t rss cpu ph; do
	fl=$F_SC
	if [ "$n" -ne "$N" ]; then fl=$F_R; fi
	ratio=$(div "$t" "$fl")
	case $label in *"rotate start"*) ratio=- ;; esac   # no SSH at all
	printf '| %s | %d | %.2f | %.1f | %.2f | %.1f | %s |\n' "$label" "$n" "$t" \
		"$(awk -v a="$t" -v n="$n" 'BEGIN { printf "%.1f", 1000 * a / n }')" "$cpu" "$(div "$rss" 1024)" "$ratio"
done
echo
echo "Where the time of each apply went (from rotor's line-buffered output; writes = first step start to its last host line):"
echo
order | while IFS='|' read -r label n t rss cpu ph; do
	if [ -n "$ph" ]; then echo "- $label, $n hosts: $ph"; fi
done
echo
echo "rotor's verdicts: plan: $plan_line | apply (no change): $noop_line"
for s in trust servers clients stable; do echo "step $s: $(summary "step-$s")"; done
echo "Setup (fleet of $N up, two envs, generation 1 made and deployed): $t_setup s. rotor: $("$ROTOR" --version 2>/dev/null | head -n 1); $(ssh -V 2>&1)."
