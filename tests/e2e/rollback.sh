#!/bin/sh
# rollback.sh -- every way a person rolls a rotation back, on real
# PostgreSQL under connection churn (three servers, two client hosts):
#   1. rotor rollback, twice, from the servers step: servers -> trust ->
#      stable(1), each a commit merged with git, each walked back by apply;
#   2. rotor rotate abandon from the clients step: generation 3 leaves the
#      tree, is kept on rotor/rolled-back/poc/gen-0003, and apply walks the
#      hosts back three steps although no key of generation 3 is in the tree
#      any more (the servers are probed with a generation 1 client then);
#   3. a plain `git revert` of the rotate start commit after the trust step
#      was applied: rotor still recognises generation 4 from history, no
#      host "fits no step", apply walks it back;
#   then going forward again: rotate start makes generation 5 (not 4), a
#   reverted `rotate next` leaves a spent branch that the next `rotate
#   next` passes over, and the rotation completes to stable(5);
#   4. a git revert of every commit of generation 5 after it finished:
#      apply walks back from stable(5) although its keys left the tree (a
#      switch-mode client carries over the key it holds).
# Zero failed connections is asserted over the whole run: host5 connects
# in switch mode, host4 in the plain libpq layout, whose failures inside
# its documented certificate/key window are counted apart.
#
# Uses 127.0.17.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
B=127.0.17
pg_churn_fleet switch
git add -A && git commit -qm "rotor: poc"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001
ok "first apply: generation 1 everywhere" "$ROTOR" apply --env poc --yes --replace-unknown

# ---- connection churn from both client hosts, all the time from here ----
churn host4
churn host5 switch
wait_for 30 churn_connected host4 host5
ok "churn connects from both client hosts" churn_connected host4 host5

# What the hosts hold, by generation: fits STEP for every host (observe --json).
all_fit() { # step
	"$ROTOR" observe --env poc --json > "$T/obs.json" 2>/dev/null
	/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
bad = [h["name"] + ":" + ",".join(h["fits"]) for h in d["hosts"] if sys.argv[2] not in h["fits"]]
print(bad)
sys.exit(1 if bad else 0)' "$T/obs.json" "$1"
}
# Every bundle holds exactly generation G's root and CA (two certificates, CA names "gG").
bundles_only() { # g
	# host5 (switch mode): the bundle its service file names.
	_b5=$(sed -n 's|^sslrootcert=/home/rotorfleet/|home/|p' "$FD/hosts/host5/home/.pg_service.conf")
	for _f in "$FD"/hosts/host[1-3]/srv/postgres/certs/root.crt "$FD"/hosts/host4/home/.postgresql/root.crt "$FD/hosts/host5/$_b5"; do
		[ "$(grep -c BEGIN "$_f")" -eq 2 ] || { echo "$_f: $(grep -c BEGIN "$_f") certificates"; return 1; }
		openssl crl2pkcs7 -nocrl -certfile "$_f" | openssl pkcs7 -print_certs -noout | grep -q "g$1\$" ||
			{ echo "$_f holds no generation $1"; return 1; }
	done
}
server_gen() { # i g -- server i presents a leaf of generation g
	echo | openssl s_client -starttls postgres -connect "$B.$1:5432" 2>/dev/null | openssl x509 -noout -issuer | grep -q "server CA g$2\$"
}
merge() { git merge -q --ff-only "$1"; }

# ==== 1. rotor rollback, twice, from the servers step ====
"$ROTOR" rotate start --env poc >/dev/null && merge rotor/rotate/poc/gen-0002
ok "1: apply trust (generation 2)" "$ROTOR" apply --env poc --yes
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0002-servers
ok "1: apply servers" "$ROTOR" apply --env poc --yes
ok "1: servers present generation 2" server_gen 1 2
expect_out "1: rollback commits servers -> trust on its own branch" \
	'^committed [0-9a-f]{12} on branch rotor/rollback/poc/gen-0002-trust: phase servers -> trust$' "$ROTOR" rollback --env poc
cp "$T/.out" "$T/rollback1.txt"
ok "1: ... and says what rotation.yaml now holds" grep -q '^rotation.yaml: generation 1, target 2, phase trust$' "$T/rollback1.txt"
ok "1: main is untouched until merged" grep -q '^phase: servers$' envs/poc/rotation.yaml
merge rotor/rollback/poc/gen-0002-trust
"$ROTOR" plan --env poc > "$T/plan-back1.txt" 2>&1
ok "1: plan walks servers -> trust" grep -q '^step 1: servers -> trust$' "$T/plan-back1.txt"
ok "1: apply walks back to trust" "$ROTOR" apply --env poc --yes
ok "1: servers present generation 1 again" server_gen 1 1
ok "1: every host fits trust" all_fit trust
expect_out "1: the second rollback: trust -> stable, the target removed" \
	'^committed [0-9a-f]{12} on branch rotor/rollback/poc/gen-0002-stable: phase trust -> stable$' "$ROTOR" rollback --env poc
merge rotor/rollback/poc/gen-0002-stable
ok "1: rotation.yaml: generation 1, stable, no target" sh -c '! grep -q "^target:" envs/poc/rotation.yaml && grep -q "^generation: 1$" envs/poc/rotation.yaml && grep -q "^phase: stable$" envs/poc/rotation.yaml'
ok "1: apply walks back to stable(1)" "$ROTOR" apply --env poc --yes
ok "1: every bundle holds generation 1 only" bundles_only 1
ok "1: in sync" "$ROTOR" plan --env poc --detailed-exitcode
expect_out "1: a third rollback goes to nothing: refused" 'nothing to roll back' "$ROTOR" rollback --env poc

# ==== 2. rotor rotate abandon from the clients step ====
expect_out "2: rotate start makes generation 3" 'on branch rotor/rotate/poc/gen-0003 ' "$ROTOR" rotate start --env poc
merge rotor/rotate/poc/gen-0003
ok "2: apply trust (generation 3)" "$ROTOR" apply --env poc --yes
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0003-servers
ok "2: apply servers" "$ROTOR" apply --env poc --yes
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0003-clients
ok "2: apply clients" "$ROTOR" apply --env poc --yes
ok "2: servers present generation 3" server_gen 2 3
start3=$(git rev-parse HEAD)
"$ROTOR" rotate abandon --env poc > "$T/abandon.txt" 2>&1
ok "2: abandon commits on rotor/rotate/poc/gen-0003-abandon" grep -Eq '^committed [0-9a-f]{12} on branch rotor/rotate/poc/gen-0003-abandon: rotation to generation 3 abandoned \(phase clients\), [0-9]+ files of generation 0003 removed$' "$T/abandon.txt"
ok "2: ... and keeps generation 3 on rotor/rolled-back/poc/gen-0003 at the last commit that has it" sh -c '
	grep -q "^generation 3 is kept on branch rotor/rolled-back/poc/gen-0003 (at $(echo "$1" | cut -c1-12))$" "$2" &&
	[ "$(git rev-parse rotor/rolled-back/poc/gen-0003)" = "$1" ] &&
	git cat-file -e rotor/rolled-back/poc/gen-0003:envs/poc/generations/0003/manifest.yaml' _ "$start3" "$T/abandon.txt"
merge rotor/rotate/poc/gen-0003-abandon
ok "2: main no longer holds generation 3" sh -c '[ ! -e envs/poc/generations/0003 ] && grep -q "^generation: 1$" envs/poc/rotation.yaml && ! grep -q "^target:" envs/poc/rotation.yaml'
"$ROTOR" observe --env poc > "$T/obs-abandon.txt" 2>&1
ok "2: observe still recognises generation 3 (from history)" sh -c '! grep -q UNKNOWN "$1" && grep -q "g3" "$1"' _ "$T/obs-abandon.txt"
"$ROTOR" plan --env poc > "$T/plan-abandon.txt" 2>&1
# On the line 3 -> 1 the hosts are at its trust step: new client leaves go first, then the servers, then the bundles.
ok "2: plan walks back step by step, no host off the line" sh -c '! grep -q "fits no step" "$1" && grep -q "^step 1: trust -> servers$" "$1" && grep -q "^step 2: servers -> clients$" "$1" && grep -q "^step 3: clients -> stable(target)$" "$1"' _ "$T/plan-abandon.txt"
ok "2: apply walks back to stable(1)" "$ROTOR" apply --env poc --yes
ok "2: every bundle holds generation 1 only" bundles_only 1
ok "2: servers present generation 1" server_gen 2 1
ok "2: no *.rotor-bak left (stable, no target)" sh -c '! find "$1"/hosts/host[1-5] -name "*.rotor-bak" | grep .' _ "$FD"
ok "2: in sync" "$ROTOR" plan --env poc --detailed-exitcode

# ==== 3. git revert of the rotate start commit, after the trust step ====
expect_out "3: rotate start skips the abandoned number: generation 4" 'on branch rotor/rotate/poc/gen-0004 ' "$ROTOR" rotate start --env poc
merge rotor/rotate/poc/gen-0004
ok "3: apply trust (generation 4)" "$ROTOR" apply --env poc --yes
ok "3: git revert of the start commit" git revert --no-edit HEAD
ok "3: generation 4 has left the tree" sh -c '[ ! -e envs/poc/generations/0004 ] && ! grep -q "^target:" envs/poc/rotation.yaml'
"$ROTOR" plan --env poc > "$T/plan-revert.txt" 2>&1
ok "3: plan: no host fits no step; one step back to generation 1's bundles" sh -c '! grep -q "fits no step" "$1" && grep -q "^step 1: clients -> stable(target)$" "$1" && grep -q "g1 root + g1 client-ca$" "$1"' _ "$T/plan-revert.txt"
ok "3: plan notes where generation 4 is known from" grep -q '^  note: generation 4 is no longer in the tree (reverted or abandoned; its certificates are known from history): the hosts walk back from it$' "$T/plan-revert.txt"
ok "3: apply walks back" "$ROTOR" apply --env poc --yes
ok "3: every bundle holds generation 1 only" bundles_only 1
ok "3: in sync" "$ROTOR" plan --env poc --detailed-exitcode

# ==== forward again ====
expect_out "again: rotate start makes generation 5 (4 stays in history)" 'on branch rotor/rotate/poc/gen-0005 ' "$ROTOR" rotate start --env poc
merge rotor/rotate/poc/gen-0005
ok "again: apply trust" "$ROTOR" apply --env poc --yes
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0005-servers
ok "again: apply servers" "$ROTOR" apply --env poc --yes
ok "again: git revert of the servers step" git revert --no-edit HEAD
ok "again: apply walks back to trust" "$ROTOR" apply --env poc --yes
ok "again: every host fits trust" all_fit trust
"$ROTOR" rotate next --env poc > "$T/next-again.txt" 2>&1
ok "again: rotate next passes over the spent branch and says so" sh -c '
	grep -q "^branch rotor/rotate/poc/gen-0005-servers is already merged (spent: an earlier attempt); committing on rotor/rotate/poc/gen-0005-servers-2 instead$" "$1" &&
	grep -Eq "^committed [0-9a-f]{12} on branch rotor/rotate/poc/gen-0005-servers-2: phase trust -> servers$" "$1"' _ "$T/next-again.txt"
merge rotor/rotate/poc/gen-0005-servers-2
ok "again: apply servers" "$ROTOR" apply --env poc --yes
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0005-clients
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0005-stable
ok "again: apply the rest of the rotation" "$ROTOR" apply --env poc --yes
ok "again: stable(5): every bundle holds generation 5 only" bundles_only 5
ok "again: servers present generation 5" server_gen 3 5
ok "again: in sync" "$ROTOR" plan --env poc --detailed-exitcode
ok "again: no *.rotor-bak left" sh -c '! find "$1"/hosts/host[1-5] -name "*.rotor-bak" | grep .' _ "$FD"

# ==== 4. after the rotation finished: git revert of all of generation 5 ====
# The first step back adds generation 1 to every bundle while the leaves
# are still generation 5's, whose keys have left the tree: host5's switch
# mode writes a new directory with its leaf, so it carries the key it holds.
start5=$(git log --format=%H -n 1 --grep='^rotor: start rotation of poc to generation 5$')
ok "4: git revert of every commit since generation 5's start" git revert --no-edit "$start5^..HEAD"
ok "4: generation 5 has left the tree" sh -c '[ ! -e envs/poc/generations/0005 ] && grep -q "^generation: 1$" envs/poc/rotation.yaml'
"$ROTOR" apply --env poc --yes > "$T/apply-revert5.txt" 2>&1
ok "4: apply walks all the way back to stable(1)" sh -c '[ "$1" -eq 0 ] || { cat "$2"; exit 1; }' _ $? "$T/apply-revert5.txt"
ok "4: every bundle holds generation 1 only" bundles_only 1
ok "4: servers present generation 1" server_gen 3 1
ok "4: in sync" "$ROTOR" plan --env poc --detailed-exitcode
ok "4: the switch host took the first step back (a new directory: generation 5's leaf with the key it held)" \
	sh -c 'sed -n "/^applying step stable -> trust/,/^applying step trust/p" "$1" | grep -q "^  ✓ host5 "' _ "$T/apply-revert5.txt"

touch "$C/stop"
wait_for 30 churn_stopped
n_ok=$(cat "$C"/host*.ok 2>/dev/null | wc -l)
n_fail=$(cat "$C"/host*.fail 2>/dev/null | grep -c '^[0-9]')
n_win=$(cat "$C"/host4.window 2>/dev/null | grep -c '^[0-9]')
echo "# churn during every rollback path: $n_ok connections ($(wc -l < "$C/host5.ok") in switch mode), $n_fail failed; $n_win in the plain layout's certificate/key window"
ok "churn made connections throughout, in both layouts" [ "$n_ok" -gt 30 -a -s "$C/host4.ok" -a -s "$C/host5.ok" ]
ok "ZERO failed connections over every rollback path (the plain layout's certificate/key window aside)" sh -c '[ "$1" -eq 0 ] || { cat "$2"/host*.fail | head -20; exit 1; }' _ "$n_fail" "$C"
# host4's leaf switches 4 times (generation 3 and back, 5 and back): a pair
# that never matched would fail every connection after a switch, not a few.
ok "... and at most 8 in that window" sh -c '[ "$1" -le 8 ] || { cat "$2"/host4.window | head -20; exit 1; }' _ "$n_win" "$C"

done_testing
