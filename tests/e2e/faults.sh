#!/bin/sh
# faults.sh -- plan and apply when things go wrong, on real PostgreSQL.
#
# Three PostgreSQL server hosts (host1-3) and one client host (host4).
# Generation 1 is deployed, then a rotation to generation 2 is walked
# through faults: a host unreachable before the step and one that goes
# away after the plan, the lock held by another apply (and forged locks,
# --force-unlock), a reload that fails, a probe that fails, unsafe desired
# states (a jump forward, a revert that drops a root in use) refused with
# the pairs named, an apply killed with SIGKILL in the middle of a
# rollback and run again, and the exit codes of plan and drift (hand-made
# drift, certificates inside renew_before).  Each case checks what rotor
# says and what the hosts really hold: file bytes, what PostgreSQL
# presents (openssl s_client -starttls postgres), rotor observe --json.
#
# Uses 127.0.15.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
B=127.0.15
CHECK="$ROTOR_SRCDIR/tests/e2e/faults/observe_check.py"
BG=""
# FAULTS_KEEP=DIR keeps every command's output there (for debugging this test).
trap '[ -n "$BG" ] && kill -9 $BG 2>/dev/null; [ -n "${FAULTS_KEEP:-}" ] && mkdir -p "$FAULTS_KEEP" && cp "$T"/*.out "$FAULTS_KEEP"/ 2>/dev/null; fleet_down; rm -rf "$T"' EXIT
trap 'exit 1' INT TERM HUP PIPE
started=$(date +%s)

fleet_up 4 $B --postgres
for i in 1 2 3; do "$F" psql --dir "$FD" host$i -qc "CREATE ROLE app LOGIN" >/dev/null; done

# ---- helpers ----

# The managed files of host i, as the fleet machine sees them.
host_files() { # i
	if [ "$1" -le 3 ]; then
		d="$FD/hosts/host$1/srv/postgres/certs"
		echo "$d/server.crt $d/server.key $d/root.crt"
	else
		d="$FD/hosts/host$1/home/.postgresql"
		echo "$d/postgresql.crt $d/postgresql.key $d/root.crt"
	fi
}
sums() { # i... -> sha256 of every managed file of those hosts
	for i in "$@"; do
		# shellcheck disable=SC2046
		sha256sum $(host_files "$i")
	done
}
same_sums() { # name file-with-earlier-sums i...
	_f=$1; shift
	sums "$@" > "$T/.sums-now"
	cmp -s "$_f" "$T/.sums-now" || { diff "$_f" "$T/.sums-now"; return 1; }
}
# SHA-256 fingerprint of the certificate PostgreSQL on host i presents now.
pg_fp() { # i
	echo | timeout 10 openssl s_client -starttls postgres -connect "$B.$1:5432" 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}
file_fp() { # pem file -> fingerprint of its first certificate
	openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2
}
srv_crt() { echo "$FD/hosts/host$1/srv/postgres/certs/server.crt"; }
# PostgreSQL on host i presents fingerprint fp (a reload is asynchronous: wait up to 10 s).
pg_presents() { # i fp
	_k=0
	while [ $_k -lt 40 ]; do
		[ "$(pg_fp "$1")" = "$2" ] && return 0
		sleep 0.25
		_k=$((_k + 1))
	done
	echo "host$1 presents $(pg_fp "$1"), expected $2"
	return 1
}
file_is() { # pem fp
	[ "$(file_fp "$1")" = "$2" ] || { echo "$1 holds $(file_fp "$1"), expected $2"; return 1; }
}
file_and_pg() { # i fp: host i's server.crt holds fp and postgres presents it
	file_is "$(srv_crt "$1")" "$2" && pg_presents "$1" "$2"
}
pg_matches() { # i fp [i fp]...
	while [ $# -ge 2 ]; do
		pg_presents "$1" "$2" || return 1
		shift 2
	done
}
pg_matches_files() { # i...: postgres on host i presents what its server.crt holds
	for i in "$@"; do
		pg_presents "$i" "$(file_fp "$(srv_crt "$i")")" || return 1
	done
}
# From host4 with the bundle of stable(1) (generation 1 only) and its own leaf:
# a verify-full connection to server host i succeeds.
next_bundle_connects() { # i...
	_nb="$FD/hosts/host4/home/g1-only.crt"
	{ git show HEAD:envs/poc/generations/0001/ca/root.crt; git show HEAD:envs/poc/generations/0001/ca/server-ca.crt; } > "$_nb"
	chown rotorfleet "$_nb"
	for i in "$@"; do
		"$F" exec --dir "$FD" host4 runuser -u rotorfleet -- psql "host=$B.$i port=5432 user=app dbname=postgres sslmode=verify-full sslcert=/home/rotorfleet/.postgresql/postgresql.crt sslkey=/home/rotorfleet/.postgresql/postgresql.key sslrootcert=/home/rotorfleet/g1-only.crt connect_timeout=5" -Atqc "select 1" >/dev/null 2>"$T/.psql.err" ||
			{ echo "host$i refuses a client with generation 1's bundle: $(grep -m1 . "$T/.psql.err")"; rm -f "$_nb"; return 1; }
	done
	rm -f "$_nb"
}
observe() { # out-file
	"$ROTOR" observe --env poc --json --parallel 2 > "$1" 2>"$1.err"
}
fits() { # step [host...]: every (named) host fits step, per rotor observe
	observe "$T/.obs.json"
	/usr/bin/python3 "$CHECK" "$T/.obs.json" fits "$@"
}
sound() { # every managed file on every host present, parsed, keys matching
	observe "$T/.obs.json"
	/usr/bin/python3 "$CHECK" "$T/.obs.json" sound
}
no_temp_files() {
	_left=$(find "$FD/hosts" -name '*.rotor-tmp-*' 2>/dev/null)
	[ -z "$_left" ] || { echo "left behind: $_left"; return 1; }
}
no_lock() { ! git rev-parse -q --verify refs/rotor/lock/poc >/dev/null; }
has_lock() { git rev-parse -q --verify refs/rotor/lock/poc >/dev/null; }
# run: name expected-exit cmd... ; output in $T/NAME.out
run() { # name cmd...
	_rn=$1; shift
	"$@" > "$T/$_rn.out" 2>&1
	echo $? > "$T/$_rn.rc"
}
rc_is() { [ "$(cat "$T/$1.rc")" = "$2" ] || { echo "exit $(cat "$T/$1.rc"), expected $2"; tail -n 25 "$T/$1.out"; return 1; }; }
out_has() { grep -E -q -- "$2" "$T/$1.out" || { echo "no /$2/ in:"; tail -n 40 "$T/$1.out"; return 1; }; }
out_lacks() { ! grep -E -q -- "$2" "$T/$1.out" || { grep -E -- "$2" "$T/$1.out"; return 1; }; }

# hosts.yaml with per-host overrides: RLi (reload of server host i), PPi (its probe port).
RL1='' RL2='' RL3='' PP1='' PP2='' PP3=''
write_hosts() {
	{
		echo "hosts:"
		for i in 1 2 3; do
			eval "rl=\${RL$i:-\$PG_RELOAD} pp=\${PP$i:-5432}"
			pg_server_yaml $i "$rl" "$pp"
		done
		libpq_client_yaml 4
	} > envs/poc/hosts.yaml
}
set_rotation() { # generation [target phase]
	{
		echo "generation: $1"
		[ -n "${2:-}" ] && echo "target: $2"
		echo "phase: ${3:-stable}"
	} > envs/poc/rotation.yaml
}
commit() { # message
	git add -A envs && git commit -qm "$1"
}
fp_of() { # generation path-in-generation
	git show "HEAD:envs/poc/generations/000$1/$2" | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2
}

# ---- the state repository, generation 1 deployed ----
fleet_repo 5s
{
	pg_chain_yaml
	printf 'validity: {root: 10y, intermediate: 5y, leaf: 397d}\nrenew_before: 30d\n'
} > envs/poc/chain.yaml
write_hosts
git add -A && git commit -qm "rotor: poc"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001
ok "first apply: generation 1 everywhere (replacing the bootstrap certificates)" "$ROTOR" apply --env poc --yes --replace-unknown
G1_PG2=$(fp_of 1 servers/pg2.crt)
ok "postgres on host2 presents generation 1" pg_presents 2 "$G1_PG2"

# ==== 7 (first part): exit codes in sync ====
echo "# case 7: plan and drift exit codes"
run plan-sync "$ROTOR" plan --env poc --detailed-exitcode
ok "7 plan --detailed-exitcode in sync: exit 0" rc_is plan-sync 0
ok "7 ... and says so" out_has plan-sync "In sync: every host holds the desired stable"
run drift-sync "$ROTOR" drift --env poc
ok "7 drift with nothing wrong: exit 0, 'no drift'" sh -c '[ "$(cat "$1.rc")" = 0 ] && grep -q "^no drift" "$1.out"' _ "$T/drift-sync"

"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0002
G2_PG1=$(fp_of 2 servers/pg1.crt) G2_PG2=$(fp_of 2 servers/pg2.crt) G2_PG3=$(fp_of 2 servers/pg3.crt)
G1_PG1=$(fp_of 1 servers/pg1.crt) G1_PG3=$(fp_of 1 servers/pg3.crt)
run plan-pending "$ROTOR" plan --env poc --detailed-exitcode
ok "7 plan --detailed-exitcode with the trust step pending: exit 2" rc_is plan-pending 2
ok "7 ... the step is stable -> trust on 4 hosts" sh -c 'grep -q "step 1: stable -> trust" "$1" && grep -q "Plan: 1 step with changes, 4 file changes on 4 hosts" "$1"' _ "$T/plan-pending.out"
run plan-pending0 "$ROTOR" plan --env poc
ok "7 plan without --detailed-exitcode with changes pending: exit 0" rc_is plan-pending0 0

# ==== a declined apply ====
echo "# a declined apply: nothing done, nothing recorded"
status_before=$(git rev-parse -q --verify rotor/status/poc)
sums 1 2 3 4 > "$T/sums-declined"
run declined sh -c 'echo no | "$1" apply --env poc --json > "$2"' _ "$ROTOR" "$T/declined.json"
ok "declined apply: exit 1" rc_is declined 1
ok "... says nothing was applied" out_has declined "rotor: not confirmed, nothing applied"
ok "... --json: the question and the plan went to stderr" out_has declined "Apply these steps\? Only 'yes' is accepted"
ok "... --json: stdout is the result alone: no step, no status commit" json_check "$T/declined.json" apply \
	'd["steps"] == [] and d["outcome"] == "not confirmed, nothing applied" and d["status_commit"] is None and len(d["desired"]) == 40'
ok "... records no status commit" sh -c '[ "$(git rev-parse -q --verify rotor/status/poc)" = "$1" ]' _ "$status_before"
ok "... says nothing about a status commit" out_lacks declined "recorded [0-9a-f]+ on rotor/status"
ok "... releases the lock" no_lock
ok "... writes nothing on the hosts" same_sums "$T/sums-declined" 1 2 3 4

# ==== 6a: a jump forward that breaks pairs ====
echo "# case 6a: stable(1) straight to stable(2) is refused"
set_rotation 2
commit "rotor: poc straight to generation 2"
run jump "$ROTOR" plan --env poc --no-path --detailed-exitcode
ok "6a plan --no-path stable(1) -> stable(2): exit 1" rc_is jump 1
ok "6a ... refused" out_has jump "Refused: reaching stable\(target\) this way would break the pairs above"
ok "6a ... names the client that servers cannot verify" out_has jump "servers at stable\(target\) cannot verify client app on host4 \($B\.4\) at stable"
ok "6a ... names every server that clients cannot verify" sh -c 'for i in 1 2 3; do grep -q "clients at stable cannot verify server pg$i on host$i ($2.$i) at stable(target)" "$1" || exit 1; done' _ "$T/jump.out" "$B"
ok "6a ... stderr says the desired state is unsafe" out_has jump "rotor: the desired state is unsafe to reach"
run walk "$ROTOR" plan --env poc
ok "6a without --no-path the same desired state is the safe walk of 4 steps" sh -c 'rc=$(cat "$1.rc"); [ "$rc" = 0 ] && grep -q "step 1: stable -> trust" "$1.out" && grep -q "step 2: trust -> servers" "$1.out" && grep -q "step 3: servers -> clients" "$1.out" && grep -q "step 4: clients -> stable(target)" "$1.out" && ! grep -q "would BREAK" "$1.out"' _ "$T/walk"
sums 1 2 3 4 > "$T/sums-g1"
git revert --no-edit HEAD >/dev/null
ok "6a nothing was written by plan" same_sums "$T/sums-g1" 1 2 3 4

# ==== 1a: a host unreachable before the step ====
echo "# case 1: a host unreachable"
"$F" stop-sshd --dir "$FD" host3 >/dev/null
run unreach "$ROTOR" apply --env poc --yes
ok "1 apply with host3 unreachable: exit 1" rc_is unreach 1
ok "1 ... names host3 as unreachable" out_has unreach "host3 is unreachable \(.*\): its state cannot be proved"
ok "1 ... says nothing was applied" out_has unreach "nothing applied: stopped: live state unknown"
ok "1 ... no host changed" same_sums "$T/sums-g1" 1 2 3 4
ok "1 ... lock released" no_lock
ok "1 ... the refusal is recorded on rotor/status/poc" sh -c 'git log -1 --format=%s rotor/status/poc | grep -q "stopped: live state unknown"'
"$F" start-sshd --dir "$FD" host3 >/dev/null

# ==== 4: two applies at once (and 1b: a host that goes away after the plan) ====
echo "# case 4: the lock"
mkfifo "$T/fifo"
"$ROTOR" apply --env poc < "$T/fifo" > "$T/first.out" 2>&1 &
BG=$!
exec 3>"$T/fifo"
k=0
while ! grep -q "Apply these steps?" "$T/first.out" && [ $k -lt 200 ]; do sleep 0.1; k=$((k + 1)); done
ok "4 first apply waits at the prompt holding the lock" sh -c 'grep -q "Apply these steps?" "$1" && git rev-parse -q --verify refs/rotor/lock/poc >/dev/null' _ "$T/first.out"
run second "$ROTOR" apply --env poc --yes
ok "4 second apply: exit 1" rc_is second 1
ok "4 ... names the lock holder (user@host, the first apply's pid, its command)" out_has second "env poc is locked by $(id -un)@$(hostname) \(pid $BG\) since [0-9T:-]+Z, running \`rotor apply --env poc\`; wait, or use --force-unlock"
ok "4 ... the second apply changed nothing" same_sums "$T/sums-g1" 1 2 3 4
run plan-locked "$ROTOR" plan --env poc --detailed-exitcode
ok "4 plan still works while apply holds the lock (exit 2: pending)" rc_is plan-locked 2
ok "4 the first apply still holds its lock" sh -c 'git show refs/rotor/lock/poc:lock.json | grep -q "\"pid\": $1,"' _ "$BG"
run log-locked sh -c '"$1" log --env poc --json > "$2"' _ "$ROTOR" "$T/log-locked.json"
ok "4 log --json names the lock holder and the history" json_check "$T/log-locked.json" log \
	'd["lock"]["parsed"] and d["lock"]["pid"] == '"$BG"' and d["lock"]["command"] == "rotor apply --env poc" and d["lock"]["id"] == __import__("subprocess").check_output(["git", "rev-parse", "refs/rotor/lock/poc"], text=True).strip() and d["entries"] and d["entries"][0]["commit"] == __import__("subprocess").check_output(["git", "rev-parse", "rotor/status/poc"], text=True).strip() and d["entries"][0]["subject"].startswith("rotor: apply poc: ")'

echo "# case 1b: host3 goes away after the plan, before its files are written"
# The session apply keeps from the plan ends too: the host is gone, not just its listener.
drop_sessions host3
"$F" stop-sshd --dir "$FD" host3 >/dev/null
echo yes >&3
exec 3>&-
wait $BG
echo $? > "$T/first.rc"
BG=""
ok "1b apply whose host3 went away: exit 1" rc_is first 1
ok "1b ... host3's line says it failed to connect" out_has first "x host3 \($B\.3\): FAILED: .*(connect|refused)"
ok "1b ... the other hosts got the trust step" sh -c 'for h in host1 host2 host4; do grep -q "✓ $h .*written" "$1" || exit 1; done' _ "$T/first.out"
ok "1b ... the run ends naming the failed step" out_has first "step stable -> trust failed on 1 host; fix it and run apply again"
ok "1b ... host3's files unchanged" sh -c 'grep host3 "$1" > "$1.3"; sha256sum $(echo "$2") | cmp -s - "$1.3"' _ "$T/sums-g1" "$(host_files 3)"
ok "1b ... lock released" no_lock
ok "1b ... no temporary files left on the hosts" no_temp_files
"$F" start-sshd --dir "$FD" host3 >/dev/null
ok "1b ... hosts 1, 2, 4 fit trust" fits trust host1 host2 host4
run rerun-trust sh -c '"$1" apply --env poc --yes --json > "$2"' _ "$ROTOR" "$T/rerun-trust.json"
ok "1 rerun with host3 back: exit 0" rc_is rerun-trust 0
ok "1 ... apply --json: the result on stdout, its status commit recorded" json_check "$T/rerun-trust.json" apply \
	'd["status_commit"] == __import__("subprocess").check_output(["git", "rev-parse", "rotor/status/poc"], text=True).strip() and [h["host"] for s in d["steps"] for h in s["hosts"]] == ["host3"] and d["steps"][0]["hosts"][0]["files_written"] == 1 and not d["steps"][0]["hosts"][0]["failed"] and d["outcome"].endswith("every host at trust")'
ok "1 ... the same steps and outcome as applied.json of the status commit" sh -c 'git show rotor/status/poc:applied.json > "$1.applied" && /usr/bin/python3 -c "
import json, sys
a = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
del r[\"status_commit\"]
sys.exit(0 if a == r else 1)" "$1.applied" "$1"' _ "$T/rerun-trust.json"
ok "1 ... only host3 is written" sh -c 'grep -q "✓ host3 .*: 1 file written, reloaded, probe passed" "$1" && ! grep -q "✓ host[124]" "$1"' _ "$T/rerun-trust.out"
ok "1 every host fits trust (rotor observe --json)" fits trust
ok "1 every managed file sound" sound

echo "# case 4: forged and foreign locks"
git update-ref refs/rotor/lock/poc HEAD
run forged "$ROTOR" apply --env poc --yes
ok "4 a lock ref made by hand: apply exits 1" rc_is forged 1
ok "4 ... and calls it an unreadable lock" out_has forged "env poc is locked by an unreadable lock \(commit [0-9a-f]{12}"
run log-forged sh -c '"$1" log --env poc --json > "$2"' _ "$ROTOR" "$T/log-forged.json"
ok "4 ... log --json: a lock that could not be read, with its problem" json_check "$T/log-forged.json" log \
	'd["lock"]["parsed"] is False and d["lock"]["problem"] and d["lock"]["holder"] is None'
ok "4 ... which stays" has_lock
blob=$(printf '{"holder": "alice@elsewhere", "pid": 999999, "time": "2026-01-01T00:00:00Z", "command": "rotor apply --env poc", "desired": null, "env": "poc", "nonce": "0123456789abcdef"}\n' | git hash-object -w --stdin)
tree=$(printf '100644 blob %s\tlock.json\n' "$blob" | git mktree)
git update-ref refs/rotor/lock/poc "$(git commit-tree -m "rotor lock" "$tree")"
run foreign "$ROTOR" apply --env poc --yes
ok "4 a dead pid of another machine's lock is not taken over: exit 1, holder named" sh -c '[ "$(cat "$1.rc")" = 1 ] && grep -q "env poc is locked by alice@elsewhere (pid 999999) since 2026-01-01T00:00:00Z" "$1.out"' _ "$T/foreign"
run force "$ROTOR" apply --env poc --yes --force-unlock
ok "4 --force-unlock removes it and says whose it was" sh -c '[ "$(cat "$1.rc")" = 0 ] && grep -q "rotor: removed the lock of alice@elsewhere (pid 999999)" "$1.out"' _ "$T/force"
ok "4 ... and the run releases its own lock" no_lock
git update-ref refs/rotor/lock/poc HEAD
run force2 "$ROTOR" apply --env poc --yes --force-unlock
ok "4 --force-unlock also removes a hand-made ref" sh -c '[ "$(cat "$1.rc")" = 0 ] && grep -q "rotor: removed the lock of an unreadable lock" "$1.out"' _ "$T/force2"
ok "4 ... lock released" no_lock

# ==== 2: a reload that fails ====
echo "# case 2: a reload that fails (it does reload, says two lines on stderr, then exits 3)"
set_rotation 1 2 servers
RL2="$PG_RELOAD; echo reload-line-one >&2; echo reload-line-two >&2; exit 3"
write_hosts
commit "rotor: poc servers; host2's reload fails"
sums 2 > "$T/sums-h2-trust"
run reload "$ROTOR" apply --env poc --yes
ok "2 apply with host2's reload failing: exit 1" rc_is reload 1
ok "2 ... names host2 and its reload, its stderr on the same line" out_has reload "x host2 \($B\.2\): FAILED: reload \`.*exit 3\` failed: reload-line-one reload-line-two; "
# The files are restored; the reload of the restored files is the same failing
# command: the line says exactly that, and nothing about a failed restore.
ok "2 ... says the backups were restored and the reload after the restore failed, on one line" out_has reload "x host2 .*; backups restored; the reload after the restore failed: reload \`.*\` failed: reload-line-one reload-line-two$"
ok "2 ... never claims the restore failed" out_lacks reload "RESTORING THE BACKUPS FAILED"
ok "2 ... no output line starts with the reload's second stderr line" out_lacks reload "^reload-line-two"
ok "2 ... host2's files are restored byte for byte" same_sums "$T/sums-h2-trust" 2
ok "2 ... postgres on host2 still presents the OLD certificate (generation 1)" pg_presents 2 "$G1_PG2"
ok "2 ... host1 done: its files and postgres are generation 2" file_and_pg 1 "$G2_PG1"
ok "2 ... host3 done: its files and postgres are generation 2" file_and_pg 3 "$G2_PG3"
ok "2 ... no temporary files left" no_temp_files
ok "2 ... lock released" no_lock
ok "2 ... the failure is recorded on rotor/status/poc" sh -c 'git log -1 --format=%s rotor/status/poc | grep -q "failed on 1 host"'
ok "2 ... every managed file sound" sound

# ==== 3: a probe that fails ====
echo "# case 3: a probe that fails (host2 probed on a port where nothing listens)"
RL2='' PP2=5439
write_hosts
commit "rotor: poc host2's probe port is wrong"
run probe "$ROTOR" apply --env poc --yes
ok "3 apply with host2's probe failing: exit 1" rc_is probe 1
ok "3 ... names host2 and the probe" out_has probe "x host2 \($B\.2\): FAILED: probe postgres $B\.2:5439"
ok "3 ... backups restored and reloaded" out_has probe "x host2 .*; backups restored and reloaded"
ok "3 ... only host2 was tried" out_lacks probe "(✓|x) host[134] "
ok "3 ... host2's files are restored byte for byte" same_sums "$T/sums-h2-trust" 2
ok "3 ... postgres on host2 presents the OLD certificate again (it had reloaded the new one)" pg_presents 2 "$G1_PG2"
ok "3 ... no temporary files left" no_temp_files
ok "3 ... lock released" no_lock
PP2=''
write_hosts
commit "rotor: poc host2's probe fixed"
run servers "$ROTOR" apply --env poc --yes --parallel 2
ok "2+3 rerun with the host fixed: exit 0, host2 written" sh -c '[ "$(cat "$1.rc")" = 0 ] && grep -q "✓ host2 .*2 files written, reloaded, probe passed" "$1.out"' _ "$T/servers"
ok "2+3 every host fits servers" fits servers
ok "2+3 postgres on host2 presents generation 2" pg_presents 2 "$G2_PG2"

# ==== 6b: a revert that drops a root still in use ====
set_rotation 1 2 clients
commit "rotor: poc clients"
ok "6b apply the clients step" "$ROTOR" apply --env poc --yes
ok "6b every host fits clients" fits clients
sums 1 2 3 4 > "$T/sums-clients"
echo "# case 6b: from clients back to stable(1): a revert that drops generation 2 while its leaves are in use"
set_rotation 1
commit "rotor: poc back to generation 1"
run revert-jump "$ROTOR" plan --env poc --no-path
ok "6b plan --no-path clients -> stable(1): exit 1" rc_is revert-jump 1
ok "6b ... refused" out_has revert-jump "Refused: reaching stable(\(target\))? this way would break the pairs above"
ok "6b ... names the client the servers cannot verify" out_has revert-jump "x servers at [a-z()]+ cannot verify client app on host4 \($B\.4\) at [a-z()]+: "
ok "6b ... names every server the clients cannot verify" sh -c 'for i in 1 2 3; do grep -E -q "x clients at [a-z()]+ cannot verify server pg$i on host$i \($2\.$i\) at [a-z()]+: " "$1" || exit 1; done' _ "$T/revert-jump.out" "$B"
ok "6b ... no file written" same_sums "$T/sums-clients" 1 2 3 4
run revert-walk "$ROTOR" plan --env poc --detailed-exitcode
ok "6b without --no-path: a safe walk, exit 2" rc_is revert-walk 2
# rotation.yaml cannot name stable(1) on the line 1 -> 2 (target is refused with
# phase stable), so rotor places the fleet on the line 2 -> 1, where the same
# files (leaves of generation 2, bundles of 1 and 2) are "trust", and walks it
# forward: servers back to 1 first, then clients, then the bundles drop 2.
# (Its first step also rewrites every bundle only to put generation 1 first.)
ok "6b ... places the fleet at trust of 2 -> 1 (same files as clients of 1 -> 2)" out_has revert-walk "live: every host fits trust of generation 2 -> 1"
ok "6b ... step lines trust -> servers -> clients -> stable(target)" sh -c 'grep "^step " "$1" > "$1.steps"; printf "step 1: trust -> servers\nstep 2: servers -> clients\nstep 3: clients -> stable(target)\n" | cmp -s - "$1.steps" || { cat "$1.steps"; exit 1; }' _ "$T/revert-walk.out"
ok "6b ... no pair breaks on the way" out_lacks revert-walk "would BREAK"
# The same revert on the line 1 -> 2, phase by phase: back to trust first.
set_rotation 1 2 trust
commit "rotor: poc back to trust"
run back-walk "$ROTOR" plan --env poc --detailed-exitcode
ok "6b desired trust of 1 -> 2: the backward path, exit 2" rc_is back-walk 2
ok "6b ... step lines clients -> servers -> trust" sh -c 'grep "^step " "$1" > "$1.steps"; printf "step 1: clients -> servers\nstep 2: servers -> trust\n" | cmp -s - "$1.steps" || { cat "$1.steps"; exit 1; }' _ "$T/back-walk.out"
ok "6b ... no pair breaks on the way" out_lacks back-walk "would BREAK"
# The check is OpenSSL verification, not a rule about steps: clients -> trust
# in one jump keeps both generations in every bundle, so every pair verifies.
run back-jump "$ROTOR" plan --env poc --no-path
ok "6b ... clients -> trust in one jump breaks no pair: accepted" sh -c '[ "$(cat "$1.rc")" = 0 ] && grep -q "^step 1: clients -> trust" "$1.out" && grep -q "pairs: every client/server pair verifies during the step" "$1.out"' _ "$T/back-jump"

# ==== 5: apply killed with SIGKILL mid-way, then run again ====
echo "# case 5: the rollback to trust killed after host1's files changed, before its reload"
# host1's reload takes 3 s and dies with its SSH session (the echo gets SIGPIPE
# once the session is gone): a rotor killed there has renamed host1's files and
# never reloaded it.
RL1="sleep 3; echo reloading; $PG_RELOAD"
write_hosts
commit "rotor: poc host1's reload is slow"
before=$(file_fp "$(srv_crt 1)")
"$ROTOR" apply --env poc --yes -j 1 > "$T/killed.out" 2>&1 &
BG=$!
k=0
while [ "$(file_fp "$(srv_crt 1)")" = "$before" ] && [ $k -lt 600 ]; do sleep 0.05; k=$((k + 1)); done
kill -9 $BG
wait $BG 2>/dev/null
echo $? > "$T/killed.rc"
dead=$BG BG=""
ok "5 apply killed after host1's server certificate changed" sh -c '[ "$(cat "$1")" = 137 ] && [ "$(openssl x509 -in "$2" -noout -fingerprint -sha256 | cut -d= -f2)" = "$3" ]' _ "$T/killed.rc" "$(srv_crt 1)" "$G1_PG1"
ok "5 ... it had done clients -> servers (host4) before" sh -c 'grep -q "✓ host4 .*2 files written" "$1"' _ "$T/killed.out"
ok "5 ... its lock is left behind" has_lock
ok "5 ... no file half written: every managed file parses and every key matches" sound
# Had host1's reload survived its session, it would have run once its shell
# ended (the [r] keeps this pattern from matching the command line of pgrep's caller).
reload_ended() { ! pgrep -f 'echo [r]eloading' >/dev/null; }
wait_for 30 reload_ended
# plan and drift probe the servers: host1's postgres still presents the old leaf.
run stale-plan "$ROTOR" plan --env poc --detailed-exitcode
ok "5 ... plan sees host1's service on the old certificate: a reload, exit 2" sh -c '[ "$(cat "$1.rc")" = 2 ] && grep -q "~ host1 (127.0.15.1): the service presents .*, its files hold .*: it needs a reload" "$1.out"' _ "$T/stale-plan"
"$ROTOR" drift --env poc --json > "$T/stale-drift.out" 2> "$T/stale-drift.err"; echo $? > "$T/stale-drift.rc"
ok "5 ... drift --json: exit 2, host1 in stale_services, valid against schemas/plan.json" /usr/bin/python3 -c '
import json, sys, jsonschema
if open(sys.argv[1] + ".rc").read().strip() != "2": sys.exit("exit status " + open(sys.argv[1] + ".rc").read())
d = json.load(open(sys.argv[1] + ".out"))
jsonschema.validate(d, json.load(open(sys.argv[2] + "/schemas/plan.json")))
assert d["probed"] and [x["host"] for x in d["stale_services"]] == ["host1"] and d["stale_services_count"] == 1, d["stale_services"]
assert d["stale_services"][0]["presents"] != d["stale_services"][0]["files_hold"]
' "$T/stale-drift" "$ROTOR_SRCDIR"
run stale-noprobe "$ROTOR" plan --env poc --no-probe
ok "5 ... plan --no-probe does not ask, and says so" sh -c '! grep -q "needs a reload" "$1.out" && grep -q "services not probed (--no-probe)" "$1.out"' _ "$T/stale-noprobe"
"$ROTOR" drift --env poc --no-probe --json > "$T/stale-drift-np.out" 2> /dev/null
ok "5 ... drift --no-probe --json: not probed, no stale service counted" json_check "$T/stale-drift-np.out" plan 'not d["probed"] and d["stale_services"] == [] and d["stale_services_count"] == 0'
run resumed "$ROTOR" apply --env poc --yes
ok "5 rerun: exit 0" rc_is resumed 0
ok "5 ... takes over the dead run's lock and says so" out_has resumed "rotor: removed the lock of $(id -un)@$(hostname) \(pid $dead\)"
ok "5 ... finds host1's service still on the old certificate and reloads it" out_has resumed "reloading host1 \(127\.0\.15\.1\): an earlier apply stopped before its reload"
ok "5 ... every host fits trust" fits trust
ok "5 ... every managed file sound" sound
ok "5 ... lock released" no_lock
ok "5 ... no temporary files left" no_temp_files
for i in 1 2 3; do
	eval "want=\$G1_PG$i"
	ok "5 ... server files of host$i hold generation 1" file_is "$(srv_crt $i)" "$want"
done
pg_matches_files 1 2 3 > "$T/pg-vs-files" 2>&1
p1=$?
next_bundle_connects 1 2 3 > "$T/next-bundle" 2>&1
p2=$?
ok "5 ... postgres on every host presents the certificate its files hold" sh -c 'cat "$1"; exit $2' _ "$T/pg-vs-files" $p1
ok "5 ... a client with the next step's bundle (generation 1 only) connects to every server, as the pair check assumes" sh -c 'cat "$1"; exit $2' _ "$T/next-bundle" $p2

RL1=''
write_hosts
set_rotation 1
commit "rotor: poc back to generation 1"
ok "5 finish the rollback: stable(1)" "$ROTOR" apply --env poc --yes
ok "5 ... every host fits stable" fits stable
ok "5 ... postgres presents generation 1 everywhere" pg_matches 1 "$G1_PG1" 2 "$G1_PG2" 3 "$G1_PG3"

# ==== 7 (second part): drift and expiry ====
echo "# case 7: drift and expiring certificates"
h3root="$FD/hosts/host3/srv/postgres/certs/root.crt"
cp -p "$h3root" "$T/root.crt.host3"
# A bundle that is wrong for every step: generation 2's root and client CA only.
{ git show HEAD:envs/poc/generations/0002/ca/root.crt; git show HEAD:envs/poc/generations/0002/ca/client-ca.crt; } > "$h3root"
run drift-bundle "$ROTOR" drift --env poc
ok "7 drift with host3's root.crt replaced by hand: exit 2" rc_is drift-bundle 2
ok "7 ... lists host3" out_has drift-bundle "host3 fits no step of generation 1: drift"
run plan-bundle "$ROTOR" plan --env poc --detailed-exitcode
ok "7 plan --detailed-exitcode with that drift: exit 1 (live state unknown)" rc_is plan-bundle 1
run apply-bundle "$ROTOR" apply --env poc --yes
ok "7 apply refuses to guess over that drift: exit 1, host3 named, nothing written" sh -c '[ "$(cat "$1.rc")" = 1 ] && grep -q "host3 fits no step" "$1.out" && grep -q "nothing applied" "$1.out"' _ "$T/apply-bundle"
cp -p "$T/root.crt.host3" "$h3root"
ok "7 drift after the bundle is put back: exit 0" "$ROTOR" drift --env poc
sed -i 's/^renew_before: 30d$/renew_before: 500d/' envs/poc/chain.yaml
commit "rotor: poc renew 500 days ahead"
run renew500 "$ROTOR" drift --env poc
# rotor refuses a renew_before longer than the leaf validity (every new leaf
# would be "expiring" from the day it is made): an error, not drift.
ok "7 renew_before 500d with 397-day leaves is refused: drift exits 1" rc_is renew500 1
ok "7 ... naming chain.yaml and renew_before" out_has renew500 "envs/poc/chain.yaml:[0-9]+:[0-9]+: renew_before: 500d must be shorter than the leaf validity \(397d\)"
# Longer leaves from the next generation on: the deployed 397-day leaves are now inside renew_before.
sed -i 's/leaf: 397d/leaf: 800d/' envs/poc/chain.yaml
commit "rotor: poc 800-day leaves from now on"
run expiring "$ROTOR" drift --env poc
ok "7 drift with deployed leaves inside renew_before (500d): exit 2" rc_is expiring 2
ok "7 ... lists the expiring leaf on every host" sh -c 'for h in host1 host2 host3 host4; do grep -E -q "^expiring on $h in .*CN=(pg[123]|app),.* in 39[67] days \(renew_before 500\)" "$1" || exit 1; done' _ "$T/expiring.out"
ok "7 ... and no CA (5 and 10 years left)" out_lacks expiring "^expiring on .*CN=poc"
ok "7 ... ends with the drift line" out_has expiring "^drift: see above \(exit 2\)"
ok "7 plan --detailed-exitcode is not about expiry: still 0" "$ROTOR" plan --env poc --detailed-exitcode

echo "# faults.sh ran in $(($(date +%s) - started)) s"
done_testing
