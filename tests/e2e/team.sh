#!/bin/sh
# team.sh -- one lock and one audit trail for a team, on the shared git
# remote: a bare repository on fleet host1 served by its sshd (as in
# remote.sh), two clones with their own HOMEs.  Shows: 20 rounds of both
# clones racing `apply --yes`, exactly one applying and the other refused
# naming the holder (a reference-transaction hook on the server holds the
# winner right after its lock lands, until the loser has answered: no
# sleep decides anything); the status history on the remote appended by
# both, linear, no entry lost; rotor unlock naming the holder; the lock
# ref deleted during an apply (a post-update hook deletes it as soon as
# it is taken): one line, no further step; rollback --push and rotate
# abandon --push print the server's lines and the branches land there.
# Fleet range 127.0.42.x.
. "$(dirname "$0")/lib.sh"
need_root
export LSAN_OPTIONS="suppressions=$ROTOR_SRCDIR/tests/e2e/remote.lsan.supp:print_suppressions=0"
B=127.0.42
fleet_up 1 $B
fleet_repo 5s

cat > envs/poc/chain.yaml <<'YAML'
subject: {O: Example, OU: DBA}
key: {type: ec, curve: P-256}
servers:
  pg1: {sans: [pg1.example.net]}
clients: [app]
YAML
{ echo "hosts:"; libpq_client_yaml 1; } > envs/poc/hosts.yaml
git add -A && git commit -qm "rotor: init" || exit 1
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001 || exit 1
KEY=$HOME/.config/rotor/keys/repo.key
SRVHOME="$FD/hosts/host1/home"
BARE="$SRVHOME/state.git"
URL="ssh://rotorfleet@$B.1/home/rotorfleet/state.git"
git init -q --bare "$BARE"
git config --global --add safe.directory "$BARE"
git push -q "$BARE" main || exit 1
cat > "$BARE/hooks/pre-receive" <<'HOOK'
#!/bin/sh
while read -r old new ref; do
	# sneak-status: another runner's status commit lands first (outside the push's quarantine).
	if [ "$ref" = refs/heads/rotor/status/poc ] && [ -e "$HOME/sneak-status" ] && rm -f "$HOME/sneak-status"; then
		outside="env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES"
		s=$(GIT_AUTHOR_NAME=other GIT_AUTHOR_EMAIL=other@ci GIT_COMMITTER_NAME=other GIT_COMMITTER_EMAIL=other@ci \
			$outside git commit-tree -p "$old" -m "sneaked: another runner's apply" "$old^{tree}") &&
			$outside git update-ref refs/heads/rotor/status/poc "$s" "$old" && echo "$s" > "$HOME/sneaked"
	fi
	case "$ref" in
	refs/heads/rotor/rotate/*|refs/heads/rotor/rollback/*|refs/heads/rotor/rolled-back/*)
		echo "To create a merge request for ${ref#refs/heads/}, visit:"
		echo "  https://gitlab.example.net/dba/state/-/merge_requests/new?source_branch=${ref#refs/heads/}" ;;
	esac
done
HOOK
# hold-lock: the winner's push waits, its lock on the server, until "go".
cat > "$BARE/hooks/reference-transaction" <<'HOOK'
#!/bin/sh
[ "$1" = committed ] && [ -e "$HOME/hold-lock" ] || exit 0
while read -r old new ref; do
	if [ "$ref" = refs/rotor/lock/poc ] && [ "$old" = 0000000000000000000000000000000000000000 ] &&
	   [ "$new" != 0000000000000000000000000000000000000000 ]; then
		echo "$new" > "$HOME/held"
		i=0
		while [ ! -e "$HOME/go" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
	fi
done
exit 0
HOOK
# drop-lock: a lock deleted by someone else as soon as it is taken.
cat > "$BARE/hooks/post-update" <<'HOOK'
#!/bin/sh
[ -e "$HOME/drop-lock" ] || exit 0
for ref in "$@"; do
	if [ "$ref" = refs/rotor/lock/poc ] && git rev-parse -q --verify refs/rotor/lock/poc >/dev/null; then
		git update-ref -d refs/rotor/lock/poc && rm -f "$HOME/drop-lock"
	fi
done
exit 0
HOOK
chmod 755 "$BARE/hooks/pre-receive" "$BARE/hooks/reference-transaction" "$BARE/hooks/post-update"
chown -R rotorfleet "$BARE"

export ROTOR_KEY_FILE="$KEY"
clone() { # dir home
	mkdir -p "$2/.ssh" && : > "$2/.ssh/known_hosts"
	git clone -q "$BARE" "$1" && git -C "$1" remote set-url origin "$URL"
}
A="$T/a"; HA="$T/home-a"; clone "$A" "$HA"
Bc="$T/b"; HB="$T/home-b"; clone "$Bc" "$HB"
ra() { (cd "$A" && HOME="$HA" "$ROTOR" "$@"); }
rb() { (cd "$Bc" && HOME="$HB" "$ROTOR" "$@"); }
srv() { git -C "$BARE" "$@"; }

ra apply --env poc --yes --replace-unknown >"$T/first.out" 2>&1
ok "first apply from clone A (generation 1)" sh -c 'grep -q "^recorded [0-9a-f]* on rotor/status/poc on origin" "$1" || { cat "$1"; exit 1; }' _ "$T/first.out"
ok "the status commit is on the server" srv rev-parse -q --verify refs/heads/rotor/status/poc
ok "the lock is released on the server" sh -c '! git -C "$1" rev-parse -q --verify refs/rotor/lock/poc' _ "$BARE"

# ---- 20 rounds: A and B race apply --yes (the env is in sync: no change, the lock still taken) ----
me="$(id -un)@$(hostname)"
touch "$SRVHOME/hold-lock"
bad=0; wins_a=0; wins_b=0
for round in $(seq 1 20); do
	rm -f "$SRVHOME/go" "$SRVHOME/held" "$T/rc-a" "$T/rc-b"
	(cd "$A" && HOME="$HA" "$ROTOR" apply --env poc --yes >"$T/r-a.out" 2>&1; echo $? >"$T/rc-a") & pa=$!
	(cd "$Bc" && HOME="$HB" "$ROTOR" apply --env poc --yes >"$T/r-b.out" 2>&1; echo $? >"$T/rc-b") & pb=$!
	# The loser answers while the winner is held with its lock on the server (bounded wait, not a timing).
	i=0; while [ ! -e "$T/rc-a" ] && [ ! -e "$T/rc-b" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
	first=$i
	if [ -e "$SRVHOME/held" ] && [ ! -e "$T/rc-a" ] && [ -e "$T/rc-b" ]; then
		win=a; lout="$T/r-b.out"; wout="$T/r-a.out"
	elif [ -e "$SRVHOME/held" ] && [ ! -e "$T/rc-b" ] && [ -e "$T/rc-a" ]; then
		win=b; lout="$T/r-a.out"; wout="$T/r-b.out"
	else
		win=none
	fi
	# The winner's pid, from the lock commit that landed.
	wpid=$(git -C "$BARE" show "$(cat "$SRVHOME/held" 2>/dev/null):lock.json" 2>/dev/null | sed -n 's/^ *"pid": \([0-9]*\),$/\1/p')
	touch "$SRVHOME/go"
	wait $pa; wait $pb; ra_rc=$(cat "$T/rc-a"); rb_rc=$(cat "$T/rc-b")
	if [ "$win" = none ]; then
		echo "# round $round: no runner was held with the lock (first rc $first)"; cat "$T/r-a.out" "$T/r-b.out"; bad=$((bad + 1)); continue
	fi
	[ $win = a ] && { wrc=$ra_rc; lrc=$rb_rc; wins_a=$((wins_a + 1)); } || { wrc=$rb_rc; lrc=$ra_rc; wins_b=$((wins_b + 1)); }
	if [ -z "$wpid" ] || [ $wrc -ne 0 ] || [ $lrc -ne 1 ] || ! grep -q "^recorded .* on rotor/status/poc on origin" "$wout" ||
	   ! grep -q "^rotor: env poc is locked on origin by $me (pid $wpid) since .*, until .*, running \`rotor apply --env poc\`" "$lout" ||
	   grep -q "^recorded" "$lout"; then
		echo "# round $round: winner $win rc $wrc, loser rc $lrc"; sed 's/^/#   /' "$wout" "$lout"; bad=$((bad + 1))
	fi
done
rm -f "$SRVHOME/hold-lock" "$SRVHOME/go"
echo "# wins: A $wins_a, B $wins_b"
ok "20 racing rounds: exactly one applies, the other is refused naming the holder and its pid" test "$bad" -eq 0
ok "no lock is left on the server" sh -c '! git -C "$1" rev-parse -q --verify refs/rotor/lock/poc' _ "$BARE"

# ---- the audit trail: both runners, linear, nothing lost ----
ra apply --env poc --yes >/dev/null 2>&1
rb apply --env poc --yes >/dev/null 2>&1
n_all=$(srv rev-list --count rotor/status/poc)
n_first=$(srv rev-list --first-parent --count rotor/status/poc)
ok "status history: 1 + 20 + 2 entries, none lost" test "$n_all" -eq 23
ok "status history is linear (first-parent == all)" test "$n_all" -eq "$n_first"
ok "no merge commit in it" test "$(srv rev-list --min-parents=2 --count rotor/status/poc)" -eq 0
rb log --env poc -n 100 >"$T/log.out" 2>"$T/log.err"
ok "rotor log fetches the remote's history and says so" grep -q "^history: rotor/status/poc fetched from origin ($URL)\$" "$T/log.err"
ok "rotor log lists all 23 applies" test "$(grep -c "^    rotor: apply poc: " "$T/log.out")" -eq 23
ok "B's local status branch follows the remote" test "$(git -C "$Bc" rev-parse rotor/status/poc)" = "$(srv rev-parse rotor/status/poc)"
ra log --env poc --no-fetch --json >"$T/log.json" 2>"$T/lognf.err"
ok "log --no-fetch says what it read" grep -q "^not fetched: rotor/status/poc as last fetched from origin" "$T/lognf.err"
ok "log --no-fetch --json: read not-fetched, the lock unknown" json_check "$T/log.json" log \
	"d['read'] == 'not-fetched' and d['lock'] is None and len(d['entries']) >= 1"

# ---- two appends race: the loser fetches again and commits on top ----
before=$(srv rev-list --count rotor/status/poc)
touch "$SRVHOME/sneak-status"
ra apply --env poc --yes >"$T/sneak.out" 2>&1
rc=$?
ok "an append that lost the race: apply still exits 0" sh -c '[ "$1" -eq 0 ] || { cat "$2"; exit 1; }' _ "$rc" "$T/sneak.out"
ok "the other runner's commit landed first (the hook ran)" test -s "$SRVHOME/sneaked"
ok "ours is re-committed on top of it: its parent is the other one" \
	test "$(srv rev-parse rotor/status/poc^)" = "$(cat "$SRVHOME/sneaked")"
ok "what apply says it recorded is the server's tip" \
	grep -q "^recorded $(srv rev-parse rotor/status/poc | cut -c1-12) on rotor/status/poc on origin" "$T/sneak.out"
ok "both appends are there, linear" sh -c '[ "$(git -C "$1" rev-list --count rotor/status/poc)" -eq $(($2 + 2)) ] &&
	[ "$(git -C "$1" rev-list --first-parent --count rotor/status/poc)" -eq $(($2 + 2)) ]' _ "$BARE" "$before"
ok "ours keeps its message" sh -c 'git -C "$1" log -1 --format=%s rotor/status/poc | grep -q "^rotor: apply poc: "' _ "$BARE"

# ---- rotor unlock: a stale lock on the server, whose it was ----
# A lock left by a run that died elsewhere: a lock commit pushed by hand.
ra apply --env poc --yes >/dev/null 2>&1
LC=$(cd "$A" && printf '{"holder": "bob@ci-runner-7", "pid": 999999, "time": "2026-11-23T12:00:00Z", "until": "2099-01-01T00:00:00Z", "command": "rotor apply --env poc", "desired": null, "env": "poc", "nonce": "00000000000000aa"}\n' |
	git hash-object -w --stdin)
LT=$(cd "$A" && printf '100644 blob %s\tlock.json\n' "$LC" | git mktree)
LK=$(cd "$A" && git commit-tree -m "rotor lock poc" "$LT")
(cd "$A" && GIT_SSH_COMMAND="ssh -F $FD/ssh_config -o UserKnownHostsFile=$FD/known_hosts -i $FD/id_ed25519" git push -q origin "$LK:refs/rotor/lock/poc") || exit 1
rb apply --env poc --yes >"$T/stale.out" 2>&1
rc=$?
ok "apply is refused by a lock held elsewhere: exit 1" test "$rc" -eq 1
ok "apply is refused by a lock held elsewhere, naming it" sh -c \
	'grep -q "^rotor: env poc is locked on origin by bob@ci-runner-7 (pid 999999) since 2026-11-23T12:00:00Z, until 2099-01-01T00:00:00Z" "$1"' _ "$T/stale.out"
rb log --env poc -n 1 >"$T/locked.out" 2>/dev/null
ok "rotor log shows the remote's lock" grep -q "^LOCKED by bob@ci-runner-7 (pid 999999)" "$T/locked.out"
expect_out "rotor unlock removes it and says whose it was" \
	"^removed the lock of env poc on origin: it was held by bob@ci-runner-7 \\(pid 999999\\) since 2026-11-23T12:00:00Z" rb unlock --env poc
ok "the lock ref is gone from the server" sh -c '! git -C "$1" rev-parse -q --verify refs/rotor/lock/poc' _ "$BARE"
expect_out "rotor unlock on an unlocked env says so" "^env poc is not locked on origin\$" rb unlock --env poc

# ---- --force-unlock and an expired lock ----
(cd "$A" && GIT_SSH_COMMAND="ssh -F $FD/ssh_config -o UserKnownHostsFile=$FD/known_hosts -i $FD/id_ed25519" git push -q origin "$LK:refs/rotor/lock/poc") || exit 1
rb apply --env poc --yes --force-unlock >"$T/force.out" 2>&1
ok "--force-unlock takes over a remote lock, naming it" grep -q "^rotor: removed the lock of bob@ci-runner-7 (pid 999999)" "$T/force.out"
LC2=$(cd "$A" && printf '{"holder": "carol@laptop", "pid": 4242, "time": "2020-01-01T00:00:00Z", "until": "2020-01-01T00:30:00Z", "command": "rotor apply --env poc", "desired": null, "env": "poc", "nonce": "00000000000000bb"}\n' |
	git hash-object -w --stdin)
LK2=$(cd "$A" && git commit-tree -m "rotor lock poc" "$(printf '100644 blob %s\tlock.json\n' "$LC2" | git mktree)")
(cd "$A" && GIT_SSH_COMMAND="ssh -F $FD/ssh_config -o UserKnownHostsFile=$FD/known_hosts -i $FD/id_ed25519" git push -q origin "$LK2:refs/rotor/lock/poc") || exit 1
rb apply --env poc --yes >"$T/expired.out" 2>&1
rc=$?
ok "a lock past its until is taken over: exit 0" test "$rc" -eq 0
ok "a lock past its until is taken over, naming it" sh -c \
	'grep -q "^rotor: removed the lock of carol@laptop (pid 4242) since 2020-01-01T00:00:00Z, until 2020-01-01T00:30:00Z" "$1"' _ "$T/expired.out"

# ---- the lock ref deleted during an apply: one line, no further step ----
# rotate start + merge (pushed by the test as an admin), then apply walks
# trust and clients (one client host: the servers step changes nothing),
# two steps; the server deletes the lock as soon as it lands.
git -C "$A" fetch -q "$BARE" main:refs/remotes/origin/main && git -C "$A" checkout -q -B main origin/main
ra rotate start --env poc >/dev/null || exit 1
git -C "$A" merge -q --ff-only rotor/rotate/poc/gen-0002
ra rotate next --env poc >/dev/null || exit 1
git -C "$A" merge -q --ff-only rotor/rotate/poc/gen-0002-servers
ra rotate next --env poc >/dev/null || exit 1
git -C "$A" merge -q --ff-only rotor/rotate/poc/gen-0002-clients
git -C "$A" push -q "$BARE" main || exit 1
chown -R rotorfleet "$BARE"     # the objects root pushed: the login user's receive-pack writes next to them
srv_steps_before=$(srv rev-list --count rotor/status/poc)
touch "$SRVHOME/drop-lock"
ra apply --env poc --yes >"$T/drop.out" 2>&1
rc=$?
ok "lock deleted during apply: exit 1" test "$rc" -eq 1
ok "lock deleted: one line saying so" sh -c \
	'[ "$(grep -c "was deleted by someone else during this run" "$1")" = 1 ] && grep -q "^rotor: the lock [0-9a-f]* of env poc on origin was deleted by someone else during this run$" "$1"' _ "$T/drop.out"
ok "lock deleted: the step that ran finished, no further step ran (the status commit says so)" \
	sh -c '[ "$(git -C "$1" log -1 --format=%s rotor/status/poc)" = "rotor: apply poc: stopped after 1 step: the lock was lost" ] ||
	{ git -C "$1" log -1 --format=%s rotor/status/poc; cat "$2"; exit 1; }' _ "$BARE" "$T/drop.out"
ok "lock deleted: the hosts are at the first step (trust)" sh -c 'cd "$1" && HOME="$2" "$ROTOR" plan --env poc >"$3" 2>&1; grep -q "^live: every host fits trust of generation 1 -> 2$" "$3" || { cat "$3"; exit 1; }' \
	_ "$A" "$HA" "$T/afterdrop.plan"
ok "lock deleted: the run is still recorded on the server" test "$(srv rev-list --count rotor/status/poc)" -eq $((srv_steps_before + 1))
ok "lock deleted: no lock left on the server" sh -c '! git -C "$1" rev-parse -q --verify refs/rotor/lock/poc' _ "$BARE"
ok "lock deleted: the next apply continues from where the hosts are" ra apply --env poc --yes

# ---- rollback --push, rotate abandon --push ----
ra rollback --env poc --push >"$T/rb.out" 2>&1
rc=$?
ok "rollback --push exits 0" sh -c '[ "$1" -eq 0 ] || { cat "$2"; exit 1; }' _ "$rc" "$T/rb.out"
rbranch=$(sed -n 's/^pushed \([^ ]*\) to origin.*/\1/p' "$T/rb.out" | head -n 1)
ok "rollback --push says what it pushed" test -n "$rbranch"
ok "rollback --push prints the server's lines" grep -q "^remote:   https://gitlab.example.net/dba/state/-/merge_requests/new?source_branch=$rbranch\$" "$T/rb.out"
ok "the rollback branch is on the server at the local commit" sh -c \
	'[ "$(git -C "$1" rev-parse "refs/heads/$3")" = "$(git -C "$2" rev-parse "$3")" ]' _ "$BARE" "$A" "$rbranch"
ra rotate abandon --env poc --push >"$T/ab.out" 2>&1
rc=$?
ok "rotate abandon --push exits 0" sh -c '[ "$1" -eq 0 ] || { cat "$2"; exit 1; }' _ "$rc" "$T/ab.out"
ok "abandon --push prints the server's lines" grep -q "^remote:   https://gitlab.example.net/dba/state/-/merge_requests/new?source_branch=rotor/" "$T/ab.out"
for br in $(sed -n 's/^pushed \([^ ]*\) to origin.*/\1/p' "$T/ab.out"); do
	ok "abandon --push: $br is on the server at the local commit" sh -c \
		'[ "$(git -C "$1" rev-parse "refs/heads/$3")" = "$(git -C "$2" rev-parse "$3")" ]' _ "$BARE" "$A" "$br"
done
ok "abandon --push pushed the kept generation's branch" grep -q "^pushed rotor/rolled-back/poc/gen-0002 to origin" "$T/ab.out"

done_testing
