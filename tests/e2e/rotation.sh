#!/bin/sh
# rotation.sh -- the whole story on real PostgreSQL: three servers and two
# client hosts; the first chain deployed; then a full rotation to
# generation 2 (trust, servers, clients, stable) while both client hosts
# open new verify-full mTLS connections to every server in a loop (host5
# in switch mode, host4 in the plain libpq layout).  Zero failed
# connections is asserted; the plain layout's failures inside its
# documented certificate/key window are counted apart.  Then the proof that the test can fail:
# new server certificates installed by hand without the trust step make
# connections fail at once.
#
# Uses 127.0.14.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
B=127.0.14
pg_churn_fleet switch
ok "validate" "$ROTOR" validate --worktree
git add -A && git commit -qm "rotor: poc"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001

# ---- plan exit codes before anything is deployed ----
"$ROTOR" plan --env poc --detailed-exitcode --replace-unknown > "$T/plan0.txt" 2>&1
ok "plan with nothing deployed: exit 2 (changes pending)" [ $? -eq 2 ]
ok "plan creates the 15 files" grep -q "Plan: 1 step with changes, 15 file changes on 5 hosts" "$T/plan0.txt"
ok "no secret in the plan" sh -c '! grep -q "PRIVATE KEY" "$1"' _ "$T/plan0.txt"

ok "without --replace-unknown the bootstrap certificates stop the plan" sh -c '! "$1" plan --env poc > "$2" 2>&1' _ "$ROTOR" "$T/plan-unknown.txt"
ok "... and the refusal names --replace-unknown" grep -q "host1 fits no step of generation 1: drift (see rotor observe); it holds only certificates of no generation: --replace-unknown replaces them" "$T/plan-unknown.txt"
# Before the first apply the client hosts hold none of their files: they fit any step.
"$ROTOR" observe --env poc --json > "$T/obs0.json" 2>/dev/null
ok "observe --json before the first apply: valid, the client hosts hold none and fit stable" /usr/bin/python3 -c '
import json, sys, jsonschema
d = json.load(open(sys.argv[1]))
jsonschema.validate(d, json.load(open(sys.argv[2])))
h = {x["name"]: x for x in d["hosts"]}
for n in ("host4", "host5"):
    assert h[n]["holds_none"] is True and h[n]["fits"] == ["stable"], h[n]
    assert not any(f["present"] for f in h[n]["files"]), h[n]
for n in ("host1", "host2", "host3"):
    assert h[n]["holds_none"] is False and h[n]["fits"] == [], h[n]
' "$T/obs0.json" "$ROTOR_SRCDIR/schemas/observe.json"
"$ROTOR" observe --env poc -j 2 > "$T/obs0.txt" 2>/dev/null
ok "observe's table says a host that holds nothing fits any step" grep -q "^host4 ($B.4)  live state fits: any step (holds none of its files)$" "$T/obs0.txt"
ok "... and a host with unknown certificates fits none" grep -q "^host1 ($B.1)  live state fits: none$" "$T/obs0.txt"
ok "first apply: generation 1 everywhere (replacing the bootstrap certificates)" "$ROTOR" apply --env poc --yes --replace-unknown
ok "plan is in sync: exit 0" "$ROTOR" plan --env poc --detailed-exitcode
ok "server key on host1 is 0600 postgres" sh -c '[ "$(stat -c "%a %U" "$1/hosts/host1/srv/postgres/certs/server.key")" = "600 postgres" ]' _ "$FD"
ok "status branch records the apply" sh -c 'git log --format=%s rotor/status/poc | grep -q "rotor: apply poc"'
ok "lock released" sh -c '! git rev-parse -q --verify refs/rotor/lock/poc'

# ---- connection churn from both client hosts, all the time from here ----
churn host4
churn host5 switch
wait_for 30 churn_connected host4 host5
ok "churn connects from both client hosts" sh -c '[ -s "$1/host4.ok" ] && [ -s "$1/host5.ok" ] && [ ! -e "$1/host4.fail" ] && [ ! -e "$1/host5.fail" ]' _ "$C"

# ---- the rotation ----
ok "rotate start: generation 2, phase trust" "$ROTOR" rotate start --env poc
git merge -q --ff-only rotor/rotate/poc/gen-0002
# SSH sessions each host accepted so far (sshd logs every one at LogLevel VERBOSE).
sessions() {
	for i in 1 2 3 4 5; do printf 'host%s=%s ' "$i" "$(grep -c 'Accepted publickey' "$FD/hosts/host$i/sshd.log")"; done
}
# The differences between two sessions lines: "host1=1 host2=1 ..." when each host took one more.
sessions_since() { # before after
	/usr/bin/python3 -c '
import sys
a = dict(x.split("=") for x in sys.argv[1].split())
b = dict(x.split("=") for x in sys.argv[2].split())
print(" ".join("%s=%d" % (k, int(b[k]) - int(a[k])) for k in sorted(a)))' "$1" "$2"
}
s0=$(sessions)
ok "apply the trust step" sh -c '"$1" apply --env poc --yes --json > "$2"' _ "$ROTOR" "$T/apply-trust.json"
s1=$(sessions)
ok "... over one SSH session per host (observe, writes, reload, observe again)" \
	[ "$(sessions_since "$s0" "$s1")" = "host1=1 host2=1 host3=1 host4=1 host5=1" ]
echo "# sessions during the trust step: $(sessions_since "$s0" "$s1")"
"$ROTOR" apply --env poc --yes --json > "$T/apply-nochange.json" 2>/dev/null
s2=$(sessions)
ok "an apply with nothing to do: in sync" json_check "$T/apply-nochange.json" apply 'd["outcome"].startswith("in sync at trust")'
ok "... over one SSH session per host" [ "$(sessions_since "$s1" "$s2")" = "host1=1 host2=1 host3=1 host4=1 host5=1" ]
ok "during the rotation the backups stay (a rollback may need them)" sh -c '[ -e "$1/hosts/host1/srv/postgres/certs/root.crt.rotor-bak" ] && [ -e "$1/hosts/host4/home/.postgresql/root.crt.rotor-bak" ]' _ "$FD"
ok "... apply --json says so: none removed, kept" json_check "$T/apply-trust.json" apply \
	'd["backups"] == {"removed": 0, "hosts": 0, "failed_hosts": 0, "kept": True}'
"$ROTOR" observe --env poc --json > "$T/obs-trust.json"
ok "every host fits trust" /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if all("trust" in h["fits"] for h in d["hosts"]) else 1)' "$T/obs-trust.json"
# The desired state several steps ahead: apply walks servers, clients, stable(2).
sed -i -e 's/^generation: 1$/generation: 2/' -e '/^target:/d' -e 's/^phase: trust$/phase: stable/' envs/poc/rotation.yaml
git commit -qam "rotor: poc to generation 2"
"$ROTOR" plan --env poc > "$T/plan-rest.txt" 2>&1
"$ROTOR" plan --env poc --json > "$T/plan-rest.json" 2>/dev/null
"$ROTOR" drift --env poc --json > "$T/drift.json" 2>/dev/null
ok "plan --json and drift --json validate against schemas/plan.json" /usr/bin/python3 -c '
import json, sys, jsonschema
schema = json.load(open(sys.argv[3]))
p = json.load(open(sys.argv[1])); jsonschema.validate(p, schema)
d = json.load(open(sys.argv[2])); jsonschema.validate(d, schema)
assert [s["to"] for s in p["steps"]] == ["servers", "clients", "stable(target)"], p["steps"]
assert p["live"] == "trust" and not p["refused"] and p["changes"] > 0
assert p["notes"] == [], p["notes"]
assert "unknown_certificates" in d and d["unknown_certificates"] == 0
assert all("PRIVATE" not in c["to"] for s in p["steps"] for c in s["changes"])
' "$T/plan-rest.json" "$T/drift.json" "$ROTOR_SRCDIR/schemas/plan.json"
ok "plan walks servers, clients, stable(target)" sh -c 'grep -q "step 1: trust -> servers" "$1" && grep -q "step 2: servers -> clients" "$1" && grep -q "step 3: clients -> stable(target)" "$1"' _ "$T/plan-rest.txt"
nbak=$(find "$FD"/hosts/host[1-5] -name "*.rotor-bak" | wc -l)
# Confirmed on stdin: while apply waits for the answer it holds one session per host, idle; host1's
# sshd drops rotor's (the processes of that connection end, as on ClientAliveInterval or a restart).
mkfifo "$T/answer"
s3=$(sessions)
"$ROTOR" apply --env poc --json < "$T/answer" > "$T/apply-rest.json" 2> "$T/apply-rest.txt" &
AP=$!
exec 7> "$T/answer"
wait_for 120 grep -q "Only 'yes' is accepted" "$T/apply-rest.txt"
drop_sessions host1
trap '' PIPE    # apply may have ended already: then wait says how
echo yes >&7
exec 7>&-
trap - PIPE
wait $AP
ok "apply the rest of the rotation (confirmed on stdin)" [ $? -eq 0 ]
s4=$(sessions)
echo "# sessions during the rest of the rotation: $(sessions_since "$s3" "$s4")"
ok "... one session per host for three steps; host1, whose kept session its sshd dropped, connected once more" \
	[ "$(sessions_since "$s3" "$s4")" = "host1=2 host2=1 host3=1 host4=1 host5=1" ]
ok "... and no host failed" sh -c '! grep -q FAILED "$1"' _ "$T/apply-rest.txt"
ok "stable again: apply says it removed the backups" grep -Eq '^removed [1-9][0-9]* backups on 5 hosts$' "$T/apply-rest.txt"
ok "... apply --json counts them: every backup the hosts held (trust's, and those of the steps after it), 5 hosts, none kept" \
	json_check "$T/apply-rest.json" apply \
	'd["backups"]["removed"] >= '"$nbak"' > 0 and d["backups"]["hosts"] == 5 and d["backups"]["failed_hosts"] == 0 and not d["backups"]["kept"] and "every host at stable" in d["outcome"]'
ok "... applied.json of the status commit holds the same counts" sh -c 'git show rotor/status/poc:applied.json > "$1.applied" && /usr/bin/python3 -c "
import json, sys
a = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
sys.exit(0 if a[\"backups\"] == r[\"backups\"] else 1)" "$1.applied" "$1"' _ "$T/apply-rest.json"
ok "stable again: no *.rotor-bak left on any host" sh -c '! find "$1"/hosts/host[1-5] -name "*.rotor-bak" | grep .' _ "$FD"
sleep 2   # not a wait: churn goes on for a while after the rotation
touch "$C/stop"
wait_for 30 churn_stopped
ok "in sync at generation 2" "$ROTOR" plan --env poc --detailed-exitcode
n_ok=$(cat "$C"/host*.ok 2>/dev/null | wc -l)
n_fail=$(cat "$C"/host*.fail 2>/dev/null | grep -c '^[0-9]')
n_win=$(cat "$C"/host4.window 2>/dev/null | grep -c '^[0-9]')
echo "# churn during the rotation: $n_ok connections ($(wc -l < "$C/host5.ok") in switch mode), $n_fail failed; $n_win in the plain layout's certificate/key window"
ok "churn made connections during the rotation, in both layouts" [ "$n_ok" -gt 30 -a -s "$C/host4.ok" -a -s "$C/host5.ok" ]
ok "ZERO failed connections during the whole rotation (the plain layout's certificate/key window aside)" sh -c '[ "$1" -eq 0 ] || { cat "$2"/host*.fail | head -20; exit 1; }' _ "$n_fail" "$C"
# One switch of host4's leaf, three servers: a pair that never matched would
# fail every connection after the clients step, not one or two.
ok "... and at most 3 in that window" sh -c '[ "$1" -le 3 ] || { cat "$2"/host4.window | head -20; exit 1; }' _ "$n_win" "$C"
ok "the status commit holds applied.json and observed.json, valid against their schemas" /usr/bin/python3 -c '
import json, subprocess, sys, jsonschema
show = lambda f: subprocess.run(["git", "show", "rotor/status/poc:" + f], check=True, capture_output=True, text=True).stdout
applied, observed = json.loads(show("applied.json")), json.loads(show("observed.json"))
jsonschema.validate(applied, json.load(open(sys.argv[1] + "/schemas/applied.json")))
jsonschema.validate(observed, json.load(open(sys.argv[1] + "/schemas/observe.json")))
assert [(s["from"], s["to"]) for s in applied["steps"]] == [("trust", "servers"), ("servers", "clients"), ("clients", "stable(target)")], applied["steps"]
assert all(h["done"] and not h["failed"] for s in applied["steps"] for h in s["hosts"]), applied
assert "every host at stable" in applied["outcome"], applied["outcome"]
assert all(h["reachable"] for h in observed["hosts"])
' "$ROTOR_SRCDIR"
ok "rotor log shows each apply, newest first" sh -c '"$1" log --env poc -n 2 > "$2" && head -n 2 "$2" | grep -q "every host at stable" && grep -c "^[0-9a-f]\{12\}  " "$2" | grep -q "^2$"' _ "$ROTOR" "$T/log.txt"
ok "servers present generation 2" sh -c 'echo | openssl s_client -starttls postgres -connect "$1.2:5432" 2>/dev/null | openssl x509 -noout -issuer | grep -q "server CA g2"' _ "$B"
ok "bundles hold generation 2 only" sh -c '[ "$(grep -c BEGIN "$1/hosts/host4/home/.postgresql/root.crt")" -eq 2 ]' _ "$FD"

# ---- a temporary file left by hand: observe names it, drift exits 2 ----
ok "stable and clean: drift exits 0" "$ROTOR" drift --env poc
install -o postgres -g postgres -m 0600 /dev/null "$FD/hosts/host1/srv/postgres/certs/.server.key.rotor-tmp-0badc0ffee"
expect_out "observe names the stray temporary file" '^  /srv/postgres/certs/\.server\.key\.rotor-tmp-0badc0ffee +STRAY temporary file$' "$ROTOR" observe --env poc
"$ROTOR" observe --env poc --json > "$T/obs-stray.json"
ok "observe --json lists it under the host's strays, and nothing else anywhere" json_check "$T/obs-stray.json" observe '[h["strays"] for h in d["hosts"]] == [["/srv/postgres/certs/.server.key.rotor-tmp-0badc0ffee"], [], [], [], []]'
"$ROTOR" drift --env poc > "$T/drift-stray.txt" 2>&1
ok "drift exits 2 and names it" sh -c '[ "$1" -eq 2 ] && grep -q "^stray file on host1: /srv/postgres/certs/.server.key.rotor-tmp-0badc0ffee$" "$2"' _ "$?" "$T/drift-stray.txt"
"$ROTOR" drift --env poc --json > "$T/drift-stray.json" 2>/dev/null
ok "drift --json counts it" json_check "$T/drift-stray.json" plan 'd["stray_files"] == 1'
rm -f "$FD/hosts/host1/srv/postgres/certs/.server.key.rotor-tmp-0badc0ffee"

# ---- proof that the test can fail: skip the trust step by hand ----
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0003
rm -f "$C/stop" "$C"/host*.ok "$C"/host*.fail
CHURN_PIDS=
churn host4
wait_for 30 churn_connected host4
# Generation 3's server certificate and key on pg1, without any bundle knowing generation 3.
g() { git show "HEAD:envs/poc/generations/0003/$1"; }
{ g servers/pg1.crt; g ca/server-ca.crt; } > "$T/pg1.crt"
g servers/pg1.key | openssl pkey -passin "file:$HOME/.config/rotor/keys/repo.key" > "$T/pg1.key"
install -o postgres -g postgres -m 0644 "$T/pg1.crt" "$FD/hosts/host1/srv/postgres/certs/server.crt"
install -o postgres -g postgres -m 0600 "$T/pg1.key" "$FD/hosts/host1/srv/postgres/certs/server.key"
"$F" exec --dir "$FD" host1 runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /srv/postgres/data -s reload
failed_once() { grep -q '^[0-9]' "$C/host4.fail" 2>/dev/null; }
wait_for 30 failed_once
touch "$C/stop"
wait_for 30 churn_stopped
n_fail=$(cat "$C"/host*.fail 2>/dev/null | grep -c '^[0-9]')
echo "# with the trust step skipped: $n_fail failed connections"
ok "skipping the trust step makes connections fail" [ "$n_fail" -gt 0 ]
ok "they fail on certificate verification" grep -q "certificate verify failed" "$C/host4.fail"
"$ROTOR" plan --env poc > "$T/plan-drift.txt" 2>&1
ok "plan sees host1 off the line" grep -q "host1 fits no step" "$T/plan-drift.txt"

done_testing
