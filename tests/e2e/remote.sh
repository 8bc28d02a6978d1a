#!/bin/sh
# remote.sh -- the shared git remote, over SSH to a real sshd: a bare
# repository on fleet host1 (git-upload-pack / git-receive-pack run by the
# login user), with a pre-receive hook that protects main the way a
# protected branch does and prints a merge-request line on every push it
# takes; clones with their own HOME on this machine.  Shows: plan fetches
# git.main and names the remote commit (text and --json); --no-fetch says
# so and works offline; rotate start --push prints what the server says; a
# push the hook refuses shows the hook's words and exits 1; an unreachable
# remote, a key the server does not accept and a changed host key on the
# git server are one clear line each and leave the clone as it was.
# Fleet range 127.0.41.x.
. "$(dirname "$0")/lib.sh"
need_root
# libgit2 1.5.1 leaks inside its SSH transport (see the file).
export LSAN_OPTIONS="suppressions=$ROTOR_SRCDIR/tests/e2e/remote.lsan.supp:print_suppressions=0"
B=127.0.41
fleet_up 1 $B
fleet_repo 5s

# ---- the state repository (seed), pushed to a bare repository on host1 ----
cat > envs/poc/chain.yaml <<'YAML'
subject: {O: Example, OU: DBA}
key: {type: ec, curve: P-256}
servers:
  pg1: {sans: [pg1.example.net]}
clients: [app]
YAML
{ echo "hosts:"; libpq_client_yaml 1; } > envs/poc/hosts.yaml
git add -A && git commit -qm "rotor: init" || exit 1
# Generation 1, merged: plan has a chain to plan with.
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001 || exit 1
SEED=$R
KEY=$HOME/.config/rotor/keys/repo.key
git_remote
ok "the fleet's login user runs git-upload-pack on host1" \
	"$F" ssh --dir "$FD" host1 git-upload-pack --help

# Clone A, with its own HOME; the secret key of the seed.
HA="$T/home-a"
mkdir -p "$HA/.ssh"
# libgit2 1.5.1 also reads ~/.ssh/known_hosts (its own check, which rotor's
# callback overrides): this one lists nothing; rotor checks the git
# server's key against ssh.known_hosts of rotor.yaml only.
: > "$HA/.ssh/known_hosts"
A="$T/a"
git clone -q "$BARE" "$A" && git -C "$A" remote set-url origin "$URL"
export ROTOR_KEY_FILE="$KEY"
ra() { (cd "$A" && HOME="$HA" "$ROTOR" "$@"); }
snap() { git -C "$A" for-each-ref --format='%(refname) %(objectname)'; git -C "$A" status --porcelain; git -C "$A" rev-parse HEAD; }

# ---- plan fetches git.main and names the commit ----
M1=$(git -C "$BARE" rev-parse main)
(cd "$SEED" && git commit -q --allow-empty -m "a later commit on main" && git_remote_admin_push main) || exit 1
M2=$(git -C "$BARE" rev-parse main)
short2=$(echo "$M2" | cut -c1-12)
ra plan --env poc >"$T/plan.txt" 2>&1
ok "plan fetches origin/main over SSH and names the commit" \
	grep -q "^desired: origin/main at $short2 (fetched from $URL)\$" "$T/plan.txt"
ok "the fetch updated refs/remotes/origin/main" sh -c '[ "$(git -C "$1" rev-parse refs/remotes/origin/main)" = "$2" ]' _ "$A" "$M2"
ok "the clone's own main is not moved" sh -c '[ "$(git -C "$1" rev-parse main)" = "$2" ]' _ "$A" "$M1"
ok "plan reads the remote's main, not HEAD" grep -q "^env poc at $short2: desired generation 1, stable" "$T/plan.txt"
ra plan --env poc --json >"$T/plan.json" 2>"$T/plan.err"
ok "plan --json: commit and desired_from name the fetched main" json_check "$T/plan.json" plan \
	"d['commit'] == '$M2' and d['desired_from'] == {'ref': 'refs/remotes/origin/main', 'how': 'fetched'}"
ok "plan --json keeps stdout JSON; the desired line is on stderr" grep -q "^desired: origin/main at $short2" "$T/plan.err"

# --no-fetch: main moves on the server, the clone does not look.
(cd "$SEED" && git commit -q --allow-empty -m "yet another" && git_remote_admin_push main) || exit 1
M3=$(git -C "$BARE" rev-parse main)
expect_out "plan --no-fetch says it did not fetch, and what it used" \
	"^not fetched: using refs/remotes/origin/main at $short2\$" ra plan --env poc --no-fetch
ra plan --env poc --no-fetch --json >"$T/nf.json" 2>/dev/null
ok "plan --no-fetch --json: the last fetched commit, how not-fetched" json_check "$T/nf.json" plan \
	"d['commit'] == '$M2' and d['desired_from']['how'] == 'not-fetched'"
ok "drift fetches the same commit" sh -c 'cd "$1" && HOME="$2" "$ROTOR" drift --env poc >"$3" 2>&1; grep -q "^desired: origin/main at $4" "$3"' \
	_ "$A" "$HA" "$T/drift.out" "$(echo "$M3" | cut -c1-12)"
M3s=$(echo "$M3" | cut -c1-12)
ra apply --env poc --yes --no-fetch --json >"$T/apply.json" 2>"$T/apply.err"
ok "apply --no-fetch says so first" sh -c 'head -n 1 "$1" | grep -q "^not fetched: using refs/remotes/origin/main at $2\$"' _ "$T/apply.err" "$M3s"
ok "apply --json: the commit plan read, desired_from not-fetched" json_check "$T/apply.json" apply \
	"d['desired'] == '$M3' and d['desired_from'] == {'ref': 'refs/remotes/origin/main', 'how': 'not-fetched'}"
git -C "$A" show rotor/status/poc:applied.json >"$T/applied.json"
ok "the status commit's applied.json records where the commit came from" json_check "$T/applied.json" applied \
	"d['desired'] == '$M3' and d['desired_from']['how'] == 'not-fetched'"
expect_out "--ref overrides, not fetched" "^desired: main at $(git -C "$A" rev-parse main | cut -c1-12) \\(--ref; not fetched\\)" \
	ra plan --env poc --ref main

# No remote in the git repository: the local main, said so.
C="$T/c"
git clone -q "$BARE" "$C" && git -C "$C" remote remove origin
expect_out "without a remote: the local main, said so" \
	"^desired: the local main at $(git -C "$C" rev-parse main | cut -c1-12) \\(no remote \"origin\" in the git repository\\)" \
	sh -c 'cd "$1" && HOME="$2" "$ROTOR" plan --env poc' _ "$C" "$HA"

# ---- rotate start --push: the branch goes up, the server's words come back ----
git -C "$A" merge -q --ff-only origin/main
ra rotate start --env poc --push >"$T/push.out" 2>&1
rc=$?
ok "rotate start --push exits 0" sh -c '[ "$1" -eq 0 ] || { cat "$2"; exit 1; }' _ "$rc" "$T/push.out"
ok "it prints the server's merge-request lines" \
	grep -q "^remote:   https://gitlab.example.net/dba/state/-/merge_requests/new?source_branch=rotor/rotate/poc/gen-0002$" "$T/push.out"
ok "and says it pushed" grep -q "^pushed rotor/rotate/poc/gen-0002 to origin" "$T/push.out"
ok "the server has the branch at the local commit" sh -c \
	'[ "$(git -C "$1" rev-parse refs/heads/rotor/rotate/poc/gen-0002)" = "$(git -C "$2" rev-parse rotor/rotate/poc/gen-0002)" ]' _ "$BARE" "$A"
ok "without --push: the hint" sh -c \
	'cd "$1" && HOME="$2" "$ROTOR" rotate start --env poc >"$3" 2>&1; grep -q "^next: push it (git push origin rotor/rotate/poc/gen-0002, or --push next time)" "$3"' \
	_ "$C" "$HA" "$T/hint.out"

# ---- the hook refuses: its own words, exit 1 ----
# main itself: the protected-branch rule, through the same transport (git's client).
expect_out "the hook protects main (git push over SSH)" "GitLab: You are not allowed to push code to protected branches" \
	sh -c 'cd "$1" && git commit -q --allow-empty -m direct && GIT_SSH_COMMAND="ssh -F $2/ssh_config -o UserKnownHostsFile=$2/known_hosts -i $2/id_ed25519" git push origin main' _ "$A" "$FD"
git -C "$A" reset -q --hard origin/main
git -C "$A" checkout -q rotor/rotate/poc/gen-0002
touch "$SRVHOME/deny-pushes"
before=$(snap)
ra rotate next --env poc --push >"$T/deny.out" 2>&1
rc=$?
rm -f "$SRVHOME/deny-pushes"
ok "a push the hook refuses exits 1" test "$rc" -eq 1
ok "a refused push leaves the clone as it was, but for its new local branch" sh -c \
	'[ "$(printf "%s\n" "$1" | grep -v "rotor/rotate/poc/gen-0002-servers")" = "$(git -C "$2" for-each-ref --format="%(refname) %(objectname)" | grep -v "rotor/rotate/poc/gen-0002-servers"; git -C "$2" status --porcelain; git -C "$2" rev-parse HEAD)" ]' _ "$before" "$A"
ok "the hook's message is shown" grep -q "^remote: GitLab: You are not allowed to push code to this project.$" "$T/deny.out"
ok "one rotor: line names the ref and the refusal" sh -c \
	'[ "$(grep -c "^rotor: " "$1")" = 1 ] && grep -q "^rotor: push of rotor/rotate/poc/gen-0002-servers.* failed (the commit stays on the local branch): origin ($2) refused refs/heads/rotor/rotate/poc/gen-0002-servers.*: pre-receive hook declined" "$1"' _ "$T/deny.out" "$URL"

# ---- failures: one clear line each, the clone unchanged ----
before=$(snap)
git -C "$A" remote set-url origin "ssh://rotorfleet@$B.200/home/rotorfleet/state.git"
ra plan --env poc >"$T/unreach.out" 2>&1
rc=$?
git -C "$A" remote set-url origin "$URL"
ok "unreachable remote: exit 1" test "$rc" -eq 1
ok "unreachable remote: one line naming the remote" sh -c \
	'[ "$(wc -l <"$1")" = 1 ] && grep -q "^rotor: origin (ssh://rotorfleet@$2.200/home/rotorfleet/state.git): fetch failed: .*" "$1"' _ "$T/unreach.out" "$B"
ok "unreachable remote: the clone is unchanged" test "$(snap)" = "$before"

ssh-keygen -q -t ed25519 -N '' -f "$T/stranger" -C stranger
(cd "$A" && HOME="$HA" ROTOR_GIT_SSH_KEY="$T/stranger" timeout 60 "$ROTOR" plan --env poc) >"$T/cred.out" 2>&1
rc=$?
ok "a key the server does not accept: exit 1, not retried forever" test "$rc" -eq 1
ok "wrong key: one line naming the key and the user" sh -c \
	'[ "$(wc -l <"$1")" = 1 ] && grep -q "^rotor: origin ($2): the server did not accept the key $3 for user rotorfleet$" "$1"' _ "$T/cred.out" "$URL" "$T/stranger"
ok "wrong key: the clone is unchanged" test "$(snap)" = "$before"

"$F" rekey --dir "$FD" host1 >/dev/null 2>&1
ra plan --env poc >"$T/hostkey.out" 2>&1
rc=$?
ok "changed host key on the git server: exit 1" test "$rc" -eq 1
ok "changed host key: one line, possible man-in-the-middle" sh -c \
	'[ "$(wc -l <"$1")" = 1 ] && grep -q "^rotor: origin ($2): host key for git server of origin ($3.1) does NOT match known_hosts: possible man-in-the-middle; refusing" "$1"' \
	_ "$T/hostkey.out" "$URL" "$B"
ok "changed host key: nothing fetched, the clone is unchanged" test "$(snap)" = "$before"
expect_out "changed host key: --no-fetch still works offline" "^not fetched: using refs/remotes/origin/main at " ra plan --env poc --no-fetch

done_testing
