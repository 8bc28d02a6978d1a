#!/bin/sh
# observe.sh [--quick] -- `rotor observe` against its floor and against
# Ansible (DESIGN.md section 8), on a real fleet (tests/fleet), side by side
# in one run.
#
# One fleet of the largest size is brought up; each size N uses its first N
# hosts (the other sshd processes sit idle).  Every host has a server role of
# layout postgres in /srv/certs: server.crt, server.key, root.crt of a rotor
# generation, deployed by `rotor apply --yes`.  For each N:
#
#   rotor      rotor observe --env bench --json (parallel: 32 in rotor.yaml),
#              checked: every host reachable, fits stable, key matches
#   ssh        OpenSSH, one session per host through xargs -P 32 (BatchMode,
#              the fleet key and known_hosts): sha256sum of the three files,
#              checked against the files on disk; once with OpenSSH's
#              default key exchange (sntrup761x25519-sha512) and once with
#              -o KexAlgorithms=curve25519-sha256, the one libssh2 1.10 uses
#              (the "floor" in the ratios)
#   ansible    ansible-playbook: slurp the three files, sha256 of each on the
#              controller (hash filter), forks 32, pipelining, gathering off,
#              ansible_python_interpreter=/usr/bin/python3; checked likewise
#
#   libssh2    for reference: reconcile/remote/ alone (a small driver built
#              here: connect, host key, auth, three SFTP reads, sha256), P
#              threads -- the transport under rotor, without git, parsing,
#              classification
#
# Wall time is the median of OBSERVE_RUNS runs (rotor, ssh, libssh2), of
# OBSERVE_ANSIBLE_RUNS runs for Ansible below OBSERVE_ANSIBLE_BIG hosts and
# OBSERVE_ANSIBLE_BIG_RUNS from there (it is slow: about a minute per 50
# hosts here); runs of the tools are interleaved so that load changes hit
# them all.
# Peak RSS of rotor is GNU time's %M (largest of the runs); RSS per host is
# given two ways: peak / N, and the slope between the smallest and the
# largest N (the cost of one more host).  Never asserts on timing; fails
# loudly when a rotor command (or a floor or Ansible run) fails.
#
# Knobs (environment): OBSERVE_SIZES="10 50 100", OBSERVE_RUNS=3,
# OBSERVE_ANSIBLE_RUNS=3, OBSERVE_ANSIBLE_BIG=50, OBSERVE_ANSIBLE_BIG_RUNS=1,
# OBSERVE_DEFAULT_KEX_RUNS=1 (ssh with OpenSSH's default kex: slow, for
# reference only), OBSERVE_PARALLEL=32.
# --quick: sizes 5 10, 1 run each.  Needs root (the fleet).  Uses 127.0.30.x.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/lib.sh"
SIZES=${OBSERVE_SIZES:-"10 50 100"}
RUNS=${OBSERVE_RUNS:-3}
ARUNS=${OBSERVE_ANSIBLE_RUNS:-3}
ABIG=${OBSERVE_ANSIBLE_BIG:-50}
ABIGRUNS=${OBSERVE_ANSIBLE_BIG_RUNS:-1}
DRUNS=${OBSERVE_DEFAULT_KEX_RUNS:-1}
P=${OBSERVE_PARALLEL:-32}
BASE=127.0.30
if [ "${1:-}" = --quick ]; then
	SIZES="5 10" RUNS=1 ARUNS=1 DRUNS=1
fi
[ "$(id -u)" -eq 0 ] || die "needs root (the fleet binds port 22)"

MAXN=0
for n in $SIZES; do if [ "$n" -gt "$MAXN" ]; then MAXN=$n; fi; done
[ "$MAXN" -ge 1 ] && [ "$MAXN" -le 254 ] || die "sizes must be 1..254 (one /24)"

# ---- tools ----
missing=""
[ -x /usr/bin/time ] || missing="$missing time"
command -v ansible-playbook >/dev/null 2>&1 || missing="$missing ansible-core"
[ -z "$missing" ] || sh "$top/tests/deps.sh" $missing
# ---- sandbox: temporary HOME, the fleet, teardown on every exit ----
bench_sandbox observe
load_start=$(loadavg)
t0=$(now)
bench_fleet_up "$MAXN" $BASE /srv/certs

# ---- the state repository: one env, hosts.yaml cut to N hosts at tag nN ----
bench_repo "$P" bench
bench_chain_yaml "$MAXN" $BASE >envs/bench/chain.yaml
hosts_yaml() { bench_hosts_yaml "$1" $BASE /srv/certs; }
hosts_yaml "$MAXN" >envs/bench/hosts.yaml
"$ROTOR" validate --worktree >"$W/validate.out" 2>&1 || { cat "$W/validate.out" >&2; die "rotor validate"; }
git add -A && git commit -qm "bench env"
"$ROTOR" rotate start --env bench >/dev/null || die "rotor rotate start"
git merge -q --ff-only rotor/rotate/bench/gen-0001
"$ROTOR" apply --env bench --yes >"$W/deploy.out" 2>&1 || { tail -n 20 "$W/deploy.out" >&2; die "rotor apply (deploying generation 1)"; }
git tag "n$MAXN"
for n in $SIZES; do
	[ "$n" -eq "$MAXN" ] && continue
	hosts_yaml "$n" >envs/bench/hosts.yaml
	git commit -qam "bench: $n hosts" && git tag "n$n"
done
t_setup=$(minus "$(now)" "$t0")
say "setup (fleet up, generation 1, deployed by rotor apply): ${t_setup} s"

# Expected sha256 of each host's three files, read straight from disk.
i=1
while [ $i -le "$MAXN" ]; do
	for f in $files; do
		[ -s "$FD/hosts/host$i$f" ] || die "host$i: $f was not deployed"
		printf 'host%d %s %s\n' $i "$(sha256sum <"$FD/hosts/host$i$f" | cut -d' ' -f1)" "$f"
	done
	i=$((i + 1))
done >"$W/expected"
# check_hashes N FILE: every host's three hashes appear in FILE.
check_hashes() {
	/usr/bin/python3 - "$1" "$W/expected" "$2" <<'EOF'
import re, sys
n = int(sys.argv[1])
seen = set(re.findall(r"[0-9a-f]{64}", open(sys.argv[3]).read()))
want = [l.split() for l in open(sys.argv[2])]
miss = [w for w in want if int(w[0][4:]) <= n and w[1] not in seen]
if miss:
    print("missing:", *[" ".join(m) for m in miss[:5]], sep="\n  ", file=sys.stderr)
    sys.exit(1)
EOF
}

# ---- the three contenders ----
run_rotor() { # N -> "seconds rss_kib cpu_seconds"
	a=$(now)
	/usr/bin/time -f '%M %U %S' -o "$W/rss" "$ROTOR" observe --env bench --ref "n$1" --json >"$W/obs.json" 2>"$W/obs.err" ||
		{ cat "$W/obs.err" >&2; die "rotor observe ($1 hosts) exited $?"; }
	b=$(now)
	/usr/bin/python3 - "$1" "$W/obs.json" <<'EOF' || die "rotor observe ($1 hosts): unexpected output (kept in $W/obs.json)"
import json, sys
d = json.load(open(sys.argv[2]))
h = d["hosts"]
assert len(h) == int(sys.argv[1]), "host count"
for x in h:
    assert x["reachable"], x["name"] + " unreachable"
    assert "stable" in x["fits"], x["name"] + " does not fit stable"
    assert len(x["files"]) == 3 and all(f["present"] for f in x["files"]), x["name"] + " files"
    assert any(f.get("key") == "matches" for f in x["files"]), x["name"] + " key"
EOF
	printf '%s %s\n' "$(minus "$b" "$a")" "$(tail -n 1 "$W/rss" | awk '{ printf "%s %.2f", $1, $2 + $3 }')"
}
floor_ok() { # N OUT
	check_hashes "$1" "$2" || die "ssh floor ($1 hosts): wrong or missing hashes"
}
mkdir -p "$W/ansible"
cat >"$W/ansible/observe.yml" <<'EOF'
- hosts: all
  gather_facts: false
  tasks:
    - name: read the certificate files
      ansible.builtin.slurp:
        src: "/srv/certs/{{ item }}"
      loop: [server.crt, server.key, root.crt]
      register: certs
      no_log: true
    - name: sha256 of each
      ansible.builtin.debug:
        msg: "{{ certs.results | map(attribute='content') | map('b64decode') | map('hash', 'sha256') | list }}"
EOF
run_ansible() { # N -> seconds
	n=$1
	{
		echo "[fleet]"
		head -n "$n" "$FD/hosts.txt" | awk '{ print $1 " ansible_host=" $2 }'
		echo "[fleet:vars]"
		echo "ansible_user=rotorfleet"
		echo "ansible_ssh_private_key_file=$KEY"
		echo "ansible_python_interpreter=/usr/bin/python3"
	} >"$W/ansible/inventory"
	rm -rf "$W/ansible/cp" && mkdir -p "$W/ansible/cp"   # no ControlPersist master survives into the next run
	cat >"$W/ansible/ansible.cfg" <<EOF
[defaults]
inventory = $W/ansible/inventory
forks = $P
gathering = explicit
host_key_checking = True
interpreter_python = /usr/bin/python3
local_tmp = $W/ansible/tmp
retry_files_enabled = False
nocows = 1
[ssh_connection]
pipelining = True
control_path_dir = $W/ansible/cp
ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$KH -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes
EOF
	a=$(now)
	ANSIBLE_CONFIG=$W/ansible/ansible.cfg ansible-playbook "$W/ansible/observe.yml" >"$W/ansible.out" 2>&1 ||
		{ tail -n 20 "$W/ansible.out" >&2; die "ansible-playbook ($n hosts)"; }
	b=$(now)
	grep -q "ok=2 .*unreachable=0 .*failed=0" "$W/ansible.out" || die "ansible-playbook ($n hosts): not ok everywhere"
	check_hashes "$n" "$W/ansible.out" || die "ansible-playbook ($n hosts): wrong or missing hashes"
	# Close the ControlPersist masters now, so they cost nothing during the next runs.
	for s in "$W"/ansible/cp/*; do [ -S "$s" ] && { ssh -o ControlPath="$s" -O exit x >/dev/null 2>&1 || :; }; done
	minus "$b" "$a"
}

# The bare transport under rotor, for reference: tests/bench/sshread.c,
# reconcile/remote/ alone (connect, host key check, auth, three SFTP reads,
# sha256 there), one host per thread on a pool of P threads.  Optional:
# "n/a" when it does not build.
BARE=""
if cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -I"$top" -o "$W/bare" "$top/tests/bench/sshread.c" \
	"$top"/reconcile/remote/*.c "$top"/common/*.c \
	$(pkg-config --cflags --libs libssh2 libcrypto) -lpthread >"$W/bare.log" 2>&1; then
	BARE=$W/bare
else
	say "observe.sh: note: the bare libssh2 driver does not build (reconcile/remote/ssh.h changed?); column n/a"
	head -n 5 "$W/bare.log" >&2
fi
run_bare() { # N -> seconds
	a=$(now)
	head -n "$1" "$FD/hosts.txt" | "$BARE" "$KEY" "$KH" "$1" "$P" >"$W/bare.out" 2>"$W/bare.err" ||
		{ head -n 5 "$W/bare.err" >&2; die "bare libssh2 driver ($1 hosts)"; }
	b=$(now)
	check_hashes "$1" "$W/bare.out" || die "bare libssh2 driver ($1 hosts): wrong or missing hashes"
	minus "$b" "$a"
}

# ---- measure ----
say "measuring: sizes $SIZES; $RUNS runs of rotor and ssh, Ansible up to $ARUNS; parallel $P; load average $load_start"
: >"$W/results"
for n in $SIZES; do
	rt="" rss="" cpu="" sd="" sc="" at="" bt=""
	r=1
	while [ $r -le "$RUNS" ]; do
		x=$(run_rotor "$n")
		set -- $x
		rt="$rt $1" rss="$rss $2" cpu="$cpu $3"
		d=-
		if [ $r -le "$DRUNS" ]; then d=$(ssh_floor "$n"); sd="$sd $d"; fi
		c=$(ssh_floor "$n" -o KexAlgorithms=curve25519-sha256)
		sc="$sc $c"
		b=n/a
		if [ -n "$BARE" ]; then b=$(run_bare "$n"); bt="$bt $b"; fi
		say "  $n hosts, run $r: rotor $1 s (peak RSS $2 KiB, CPU $3 s)  ssh curve25519 $c s  ssh default kex $d s  libssh2 $b s  [load $(loadavg)]"
		r=$((r + 1))
	done
	na=$ARUNS
	[ "$n" -ge "$ABIG" ] && [ "$na" -gt "$ABIGRUNS" ] && na=$ABIGRUNS
	r=1
	while [ $r -le "$na" ]; do
		at="$at $(run_ansible "$n")"
		say "  $n hosts, ansible run $r: $(echo $at | awk '{print $NF}') s  [load $(loadavg)]"
		r=$((r + 1))
	done
	# shellcheck disable=SC2086
	bm=n/a
	[ -n "$bt" ] && bm=$(median $bt)
	printf '%s %s %s %s %s %s %s %s %s %s\n' "$n" "$(median $rt)" "$(median $sd)" "$(median $sc)" "$(median $at)" \
		"$(maxof $rss)" "$RUNS" "$na" "$bm" "$(median $cpu)" >>"$W/results"
done
load_end=$(loadavg)

# ---- report ----
first=$(head -n 1 "$W/results") last=$(tail -n 1 "$W/results")
slope=$(awk -v a="$first" -v b="$last" 'BEGIN { split(a, x, " "); split(b, y, " ");
	if (y[1] == x[1]) print "n/a"; else printf "%.1f", (y[6] - x[6]) / (y[1] - x[1]) }')
echo
echo "## rotor observe vs floor vs Ansible ($(date -u +%Y-%m-%dT%H:%MZ), $(getconf _NPROCESSORS_ONLN) cores, load average $load_start at start, $load_end at end)"
echo
echo "Each host: 3 files (server.crt, server.key, root.crt) of a rotor generation. Parallelism $P everywhere."
echo "Wall time: median of $RUNS runs for rotor, ssh (curve25519) and libssh2, of $DRUNS for ssh with the default kex; Ansible: the runs given. floor = ssh with curve25519-sha256 (the kex libssh2 uses). rotor CPU: user + system, median."
echo
echo "| hosts | rotor observe (s) | rotor CPU (s) | ssh floor, curve25519 (s) | ssh, default kex (s) | ansible-playbook (s) [runs] | bare libssh2 (s) | rotor / floor | rotor / ssh default | rotor / libssh2 | ansible / rotor | rotor peak RSS (MiB) | RSS / host (KiB) |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
while read -r n rt sd sc at rss runs na bm cpu; do
	if [ "$bm" = n/a ]; then bmr=n/a; else bmr=$(div "$rt" "$bm"); bm=$(printf '%.2f' "$bm"); fi
	printf '| %d | %.2f | %.2f | %.2f | %.2f | %.2f [%d] | %s | %.2f | %.2f | %s | %.1f | %.1f | %.0f |\n' "$n" "$rt" "$cpu" "$sc" "$sd" "$at" "$na" "$bm" \
		"$(div "$rt" "$sc")" "$(div "$rt" "$sd")" "$bmr" "$(div "$at" "$rt")" "$(div "$rss" 1024)" "$(div "$rss" "$n")"
done <"$W/results"
echo
echo "bare libssh2: reconcile/remote/ alone (connect, host key, auth, 3 SFTP reads, sha256), $P threads: the transport cost under rotor."
echo
echo "RSS per host above is peak / hosts (includes the fixed cost of the process); the marginal cost of one more host (slope of peak RSS between $(echo "$first" | cut -d' ' -f1) and $(echo "$last" | cut -d' ' -f1) hosts): $slope KiB."
echo "Setup (fleet of $MAXN up, generation 1 made and deployed with rotor apply): $t_setup s. rotor: $("$ROTOR" --version 2>/dev/null | head -n 1); $(ssh -V 2>&1); ansible-core $(ansible-playbook --version 2>/dev/null | head -n 1 | sed 's/.*core //; s/]//')."
