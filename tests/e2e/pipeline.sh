#!/bin/sh
# pipeline.sh -- the team recipe of contrib/gitlab-ci.yml, command by
# command, in the pipeline's order, against the test remote (a bare
# repository on fleet host1 over SSH whose hook protects main: lib.sh
# git_remote) and a fleet of three PostgreSQL servers and two libpq client
# hosts.  Each round: a merge request's branch is pushed (rotate start/next
# --push), its pipeline runs `rotor plan --ref SHA --detailed-exitcode --out
# rotor.plan` (the artifact), the request is merged (fast-forward, on the
# server), and main's pipeline runs `rotor apply rotor.plan`.  Shows: the
# saved plan is valid under schemas/saved-plan.json, mode 0600, holds no
# secret; apply of it fetches main, applies exactly it and needs no answer;
# it is refused, with nothing applied or recorded, after a host's file was
# changed by hand (naming host and file; once the bytes are back it
# applies) and after main moved (naming both commits); a malformed plan
# file and a plan of another env are one clear line.
# Fleet range 127.0.43.x.
. "$(dirname "$0")/lib.sh"
need_root
# libgit2 1.5.1 leaks inside its SSH transport (see the file).
export LSAN_OPTIONS="suppressions=$ROTOR_SRCDIR/tests/e2e/remote.lsan.supp:print_suppressions=0"
B=127.0.43
pg_churn_fleet
git add -A && git commit -qm "rotor: poc" || exit 1
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001 || exit 1
git_remote
export ROTOR_KEY_FILE="$HOME/.config/rotor/keys/repo.key"

# The CI runner's clone, with its own HOME.
HA="$T/home-a"
mkdir -p "$HA/.ssh" && : > "$HA/.ssh/known_hosts"
A="$T/a"
git clone -q "$BARE" "$A" && git -C "$A" remote set-url origin "$URL"
ra() { (cd "$A" && HOME="$HA" "$ROTOR" "$@"); }
short() { echo "$1" | cut -c1-12; }
status_of() { git -C "$A" rev-parse -q --verify rotor/status/poc || echo none; }
sums() { sha256sum "$FD"/hosts/host[1-3]/srv/postgres/certs/* "$FD"/hosts/host[45]/home/.postgresql/*; }
CRT4="$FD/hosts/host4/home/.postgresql/root.crt"

# ---- round 1, on main: the first deployment (plan --out with --replace-unknown) ----
ra plan --env poc --replace-unknown --detailed-exitcode --out "$T/p1.plan" >"$T/p1.out" 2>&1
rc=$?
ok "plan --detailed-exitcode --out: exit 2, changes pending" sh -c '[ "$1" -eq 2 ] || { cat "$2"; exit 1; }' _ "$rc" "$T/p1.out"
ok "plan --out says where the plan went" grep -q "^Saved the plan to $T/p1.plan: \`rotor apply $T/p1.plan\` applies exactly this plan.$" "$T/p1.out"
ok "the saved plan: mode 0600, no temporary file left" sh -c \
	'[ "$(stat -c %a "$1")" = 600 ] && [ -z "$(ls "$2" | grep "p1.plan.tmp")" ]' _ "$T/p1.plan" "$T"
ok "the saved plan is valid JSON under schemas/saved-plan.json, with replace_unknown" json_check "$T/p1.plan" saved-plan \
	"d['env'] == 'poc' and d['replace_unknown'] and d['desired_from']['how'] == 'fetched' and len(d['hosts']) == 5 and len(d['steps']) == 1"
ok "the saved plan holds no secret" sh -c '! grep -q "PRIVATE KEY\|BEGIN" "$1"' _ "$T/p1.plan"
ra apply "$T/p1.plan" </dev/null >"$T/a1.out" 2>&1
rc=$?
ok "apply FILE: exit 0, without asking" sh -c '[ "$1" -eq 0 ] && ! grep -q "Apply these steps" "$2" || { cat "$2"; exit 1; }' _ "$rc" "$T/a1.out"
ok "apply FILE fetches main first and names it" sh -c 'head -n 1 "$1" | grep -q "^desired: origin/main at $2 (fetched from $3)$"' \
	_ "$T/a1.out" "$(short "$(git -C "$BARE" rev-parse main)")" "$URL"
ok "... and applied the plan's 15 files" grep -q "^done: 1 step, 15 file changes; every host at stable" "$T/a1.out"

# ---- round 2: a merge request (rotate start --push), its plan, merged, applied on main ----
ra rotate start --env poc --push >"$T/push2.out" 2>&1 || { cat "$T/push2.out"; exit 1; }
MR=$(git -C "$A" rev-parse rotor/rotate/poc/gen-0002)
ok "the merge request's branch is on the remote" sh -c '[ "$(git -C "$1" rev-parse rotor/rotate/poc/gen-0002)" = "$2" ]' _ "$BARE" "$MR"
ra plan --env poc --ref "$MR" --detailed-exitcode --out "$T/p2.plan" >"$T/p2.out" 2>&1
ok "MR pipeline: plan --ref SHA --detailed-exitcode --out: exit 2" test $? -eq 2
ok "the saved plan records the branch's commit, the SHA-256 of every file and every server's leaf" json_check "$T/p2.plan" saved-plan "(
d['commit'] == '$MR' and d['desired_from'] == {'ref': '$MR', 'how': 'ref'} and not d['replace_unknown'] and d['probed']
and all(f['present'] and len(f['sha256']) == 64 for h in d['hosts'] for f in h['files'])
and sorted((h['name'], [s['port'] for s in h['served']]) for h in d['hosts']) ==
    [('host1', [5432]), ('host2', [5432]), ('host3', [5432]), ('host4', []), ('host5', [])]
and all(s['leaf'] for h in d['hosts'] for s in h['served'])
and [(s['from'], s['to']) for s in d['steps']] == [('stable', 'trust')])"
ok "the recorded hash is the file's SHA-256" /usr/bin/python3 -c '
import hashlib, json, sys
d = json.load(open(sys.argv[1]))
f = [f for h in d["hosts"] if h["name"] == "host4" for f in h["files"] if f["path"].endswith("/root.crt")][0]
assert f["sha256"] == hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest(), f' "$T/p2.plan" "$CRT4"
git_remote_merge "$MR"
ra apply "$T/p2.plan" >"$T/a2.out" 2>&1
ok "main pipeline: apply of the saved plan: exit 0" sh -c '[ $1 -eq 0 ] || { cat "$2"; exit 1; }' _ $? "$T/a2.out"
ok "... at the merged commit, the trust step" sh -c 'grep -q "^desired: origin/main at $2 " "$1" && grep -q "^done: 1 step, 5 file changes; every host at trust" "$1"' \
	_ "$T/a2.out" "$(short "$MR")"
ok "in sync afterwards" ra plan --env poc --detailed-exitcode
git -C "$A" merge -q --ff-only "$MR"

# ---- round 3: the plan is refused after a host's file was changed by hand ----
ra rotate next --env poc --push >"$T/push3.out" 2>&1 || { cat "$T/push3.out"; exit 1; }
MR=$(git -C "$A" rev-parse rotor/rotate/poc/gen-0002-servers)
ra plan --env poc --ref "$MR" --detailed-exitcode --out "$T/p3.plan" >/dev/null 2>&1
ok "MR pipeline (servers): exit 2" test $? -eq 2
git_remote_merge "$MR"
cp -p "$CRT4" "$T/crt4.orig"
printf '# edited by hand\n' >> "$CRT4"
before=$(sums) status0=$(status_of)
ra apply "$T/p3.plan" >"$T/a3.out" 2>&1
ok "apply of the saved plan after a change by hand: exit 1" test $? -eq 1
ok "Saved plan is stale, naming the host and the file" grep -q \
	"^rotor: Saved plan is stale: host4 ($B.4): /home/rotorfleet/.postgresql/root.crt changed since the plan (sha256 [0-9a-f]\{12\} then, [0-9a-f]\{12\} now); nothing applied$" "$T/a3.out"
ok "nothing applied: every file on every host as before" test "$(sums)" = "$before"
ok "nothing recorded on rotor/status/poc, the lock released" sh -c \
	'[ "$1" = "$2" ] && ! git -C "$3" rev-parse -q --verify refs/rotor/lock/poc >/dev/null' _ "$(status_of)" "$status0" "$A"
cat "$T/crt4.orig" > "$CRT4"
ra apply "$T/p3.plan" >"$T/a3b.out" 2>&1
ok "the same bytes back: the saved plan applies" sh -c '[ $1 -eq 0 ] && grep -q "^done: 1 step, 6 file changes; every host at servers" "$2" || { cat "$2"; exit 1; }' \
	_ $? "$T/a3b.out"
git -C "$A" merge -q --ff-only "$MR"

# ---- round 4: the plan is refused after main moved ----
ra rotate next --env poc --push >"$T/push4.out" 2>&1 || { cat "$T/push4.out"; exit 1; }
MR=$(git -C "$A" rev-parse rotor/rotate/poc/gen-0002-clients)
ra plan --env poc --ref "$MR" --detailed-exitcode --out "$T/p4.plan" >/dev/null 2>&1
ok "MR pipeline (clients): exit 2" test $? -eq 2
git_remote_merge "$MR"
(cd "$A" && git checkout -q --detach "$MR" && git commit -q --allow-empty -m "another merge request, merged first" &&
	git_remote_admin_push HEAD:main && git checkout -q main) || exit 1
MOVED=$(git -C "$BARE" rev-parse main)
before=$(sums) status0=$(status_of)
ra apply "$T/p4.plan" >"$T/a4.out" 2>&1
ok "apply of the saved plan after main moved: exit 1" test $? -eq 1
ok "Saved plan is stale, naming both commits" grep -q \
	"^rotor: Saved plan is stale: it was made at $(short "$MR"), and the desired commit is now $(short "$MOVED") (refs/remotes/origin/main): plan again$" "$T/a4.out"
ok "nothing applied, nothing recorded" sh -c '[ "$1" = "$2" ] && [ "$3" = "$4" ]' _ "$(sums)" "$before" "$(status_of)" "$status0"
# What the pipeline does next: main's own plan, saved and applied.
ra plan --env poc --detailed-exitcode --out "$T/p5.plan" >/dev/null 2>&1
ok "plan again on main: exit 2" test $? -eq 2
ok "... its saved plan applies" sh -c 'cd "$1" && HOME="$2" "$3" apply "$4" >"$5" 2>&1 && grep -q "every host at clients" "$5"' \
	_ "$A" "$HA" "$ROTOR" "$T/p5.plan" "$T/a5.out"
ra plan --env poc --no-probe --out "$T/p6.plan" >/dev/null 2>&1
ok "a plan saved with --no-probe applies (nothing probed to compare): in sync" sh -c \
	'cd "$1" && HOME="$2" "$3" apply "$4" >"$5" 2>&1 && grep -q "^In sync: every host holds the desired clients.$" "$5"' _ "$A" "$HA" "$ROTOR" "$T/p6.plan" "$T/a6.out"

# ---- hostile plan files: one line, exit 1 ----
printf '{"format": "rotor-saved-plan", "version": 1, "env": "poc", "commit": 7}' > "$T/bad.plan"
expect_out "a malformed plan file: one line naming the file and what is wrong" \
	"^rotor: $T/bad.plan: \"commit\" is missing or not a string\$" ra apply "$T/bad.plan"
ok "... exit 1, one line" sh -c 'cd "$1" && HOME="$2" "$3" apply "$4" >"$5" 2>&1; [ $? -eq 1 ] && [ "$(wc -l <"$5")" = 1 ]' \
	_ "$A" "$HA" "$ROTOR" "$T/bad.plan" "$T/bad.out"
head -c 300 /dev/urandom > "$T/noise.plan"
expect_out "random bytes: not JSON" "^rotor: $T/noise.plan: not JSON \\(line [0-9]+: " ra apply "$T/noise.plan"
expect_out "a plan of another env" "^rotor: $T/p5.plan: the plan is for env poc, not prod\$" ra apply --env prod "$T/p5.plan"
expect_out "plan --out with --no-path is refused" "^rotor: --out saves a plan for apply" ra plan --env poc --no-path --out "$T/x.plan"

done_testing
