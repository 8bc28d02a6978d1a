#!/bin/sh
# observe.sh -- `rotor observe` on a real fleet of 10 sshd hosts, one per
# case: the right files, a stale bundle, a key that does not match, a
# missing file, an unknown certificate, sshd down, a changed host key, a
# file over the cap, a file that is not PEM.  Asserted on --json.
#
# Uses 127.0.9.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
N=10
fleet_up $N 127.0.9

fleet_repo 3s
KEY="$HOME/.config/rotor/keys/repo.key"
{
	printf 'subject: {O: Example}\nkey: {type: ec, curve: P-256}\nservers:\n'
	i=1; while [ $i -le $N ]; do printf '  host%d: {sans: [127.0.9.%d]}\n' $i $i; i=$((i + 1)); done
	printf 'clients: [app]\n'
} > envs/poc/chain.yaml
{
	printf 'hosts:\n'
	i=1; while [ $i -le $N ]; do
		printf '  host%d:\n    address: 127.0.9.%d\n    roles:\n' $i $i
		printf '      - {role: server, layout: postgres, dir: /srv/certs, identity: host%d, probe: none}\n' $i
		i=$((i + 1))
	done
} > envs/poc/hosts.yaml
ok "validate the fleet env" "$ROTOR" validate --worktree
git add -A && git commit -qm init
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0002
ok "env is in phase trust (1 -> 2)" grep -q '^phase: trust' envs/poc/rotation.yaml

g() { git show "HEAD:envs/poc/generations/000$1/$2"; }
place() { # host gen leaf-name bundle-gens...
	h=$1 gen=$2 leaf=$3; shift 3
	d="$FD/hosts/$h/srv/certs"
	mkdir -p "$d"
	{ g "$gen" "servers/$leaf.crt"; g "$gen" ca/server-ca.crt; } > "$d/server.crt"
	g "$gen" "servers/$leaf.key" | openssl pkey -passin "file:$KEY" > "$d/server.key"
	chmod 0600 "$d/server.key"
	: > "$d/root.crt"
	for b in "$@"; do { g "$b" ca/root.crt; g "$b" ca/client-ca.crt; } >> "$d/root.crt"; done
}
place host1 1 host1 2 1         # trust: bundle 2+1, leaf 1 (right)
place host2 1 host2 1           # stale bundle: generation 1 only
place host3 1 host3 2 1
g 1 servers/host4.key | openssl pkey -passin "file:$KEY" > "$FD/hosts/host3/srv/certs/server.key"
place host4 1 host4 2 1
rm "$FD/hosts/host4/srv/certs/root.crt"          # missing file
place host5 1 host5 2 1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/u.key" \
	-subj "/CN=someone else's root" -days 30 -out "$T/unknown.crt" 2>/dev/null
cat "$T/unknown.crt" >> "$FD/hosts/host5/srv/certs/root.crt"
place host6 1 host6 2 1
"$F" stop-sshd --dir "$FD" host6 >/dev/null
place host7 1 host7 2 1
"$F" rekey --dir "$FD" host7 >/dev/null
place host8 1 host8 2 1
head -c 300000 /dev/zero | tr '\0' 'A' > "$FD/hosts/host8/srv/certs/root.crt"
place host9 1 host9 2 1
echo "hello, not a certificate" > "$FD/hosts/host9/srv/certs/root.crt"
place host10 2 host10 2 1       # servers step: leaf 2

"$ROTOR" observe --env poc --json > "$T/obs.json" 2> "$T/obs.err"
rc=$?
ok "exit 1: two hosts could not be observed" [ $rc -eq 1 ]
ok "stderr names both unreachable hosts" sh -c 'grep -q "host6" "$1" && grep -q "host7" "$1"' _ "$T/obs.err"
ok "json validates against schemas/observe.json" /usr/bin/python3 -c '
import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))' "$T/obs.json" "$ROTOR_SRCDIR/schemas/observe.json"

# check EXPR: a Python expression over h (hosts by name) and f(host, file name).
check() { # name expr
	ok "$1" /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
h = {x["name"]: x for x in d["hosts"]}
def f(host, name):
    return next(x for x in h[host]["files"] if x["path"].endswith("/" + name))
def gens(host, name):
    return [(c["generation"], c["role"]) for c in f(host, name)["certificates"]]
ok = eval(sys.argv[2])
if not ok:
    print(json.dumps(h.get(sys.argv[3], d), indent=1)[:3000])
sys.exit(0 if ok else 1)' "$T/obs.json" "$2" "${3:-host1}"
}
check "host1: right files fit trust" 'h["host1"]["fits"] == ["trust"]' host1
check "host1: leaf is generation 1 server host1" 'gens("host1","server.crt") == [(1,"server"),(1,"server-ca")] and f("host1","server.crt")["certificates"][0]["name"] == "host1"' host1
check "host1: bundle holds generation 2 and 1" 'gens("host1","root.crt") == [(2,"root"),(2,"client-ca"),(1,"root"),(1,"client-ca")]' host1
check "host1: key matches, mode 0600 owner root" 'f("host1","server.key")["key"] == "matches" and f("host1","server.key")["mode"] == "0600" and f("host1","server.key")["uid"] == 0' host1
check "host1: days to expiry" '396 <= f("host1","server.crt")["certificates"][0]["days_left"] <= 397' host1
check "host2: stale bundle fits only stable(generation 1)" 'h["host2"]["fits"] == ["stable"] and gens("host2","root.crt") == [(1,"root"),(1,"client-ca")]' host2
check "host3: key does not match" 'f("host3","server.key")["key"] == "mismatch" and h["host3"]["fits"] == []' host3
check "host4: missing root.crt" 'f("host4","root.crt")["present"] is False and h["host4"]["fits"] == []' host4
check "host5: unknown certificate described" '[c for c in f("host5","root.crt")["certificates"] if c["generation"] is None][0]["subject"] == "CN=someone else'"'"'s root" and h["host5"]["fits"] == []' host5
check "host6: sshd down is unreachable" 'not h["host6"]["reachable"] and "127.0.9.6" in h["host6"]["error"]' host6
check "host7: changed host key refused" 'not h["host7"]["reachable"] and "does NOT match known_hosts" in h["host7"]["error"]' host7
check "host8: file over the cap not read" 'f("host8","root.crt")["present"] and "cap" in f("host8","root.crt")["problem"] and f("host8","root.crt")["certificates"] == []' host8
check "host9: not PEM" 'f("host9","root.crt")["problem"] == "holds no PEM certificate"' host9
check "host10: leaf 2 fits servers and clients" 'h["host10"]["fits"] == ["servers","clients"]' host10
check "host keys reported for reachable hosts" 'all(x["host_key"].startswith("SHA256:") for x in d["hosts"] if x["reachable"])'
check "no key material in the output" 'all("PRIVATE" not in json.dumps(x) for x in d["hosts"])'
ok "the table names the problems" sh -c '"$1" observe --env poc > "$2" 2>/dev/null; grep -q "host3 (127.0.9.3)  live state fits: none" "$2" && grep -q "key mismatch" "$2" && grep -q "MISSING" "$2" && grep -q "UNREACHABLE" "$2" && grep -q "unknown: subject CN=someone else" "$2"' _ "$ROTOR" "$T/table.txt"
ok "observing wrote nothing on the hosts" sh -c '[ -z "$(find "$1"/hosts/host*/srv -newer "$2" -type f)" ]' _ "$FD" "$T/obs.json"
# No PostgreSQL on these hosts: every server says probe: none, and plan says what that leaves unproved.
"$ROTOR" plan --env poc > "$T/plan.txt" 2>&1
ok "plan notes each server with probe: none, once per host" sh -c '[ "$(grep -c "^  note: host[0-9]*: server not verified after a reload (probe: none)$" "$1")" -eq 10 ] && grep -q "^  note: host10: server not verified" "$1"' _ "$T/plan.txt"

# Progress: on stderr when it is a terminal (onpty.py), one line redrawn and erased at the end;
# the failure count in red unless NO_COLOR is set; nothing on a pipe or with --json.
TTY="/usr/bin/python3 $ROTOR_SRCDIR/tests/e2e/onpty.py"
env -u NO_COLOR TERM=xterm $TTY "$T/tty.err" "$ROTOR" observe --env poc > /dev/null
ok "a terminal shows the progress: done of total, failures, elapsed" grep -Eaq "$(printf '\r')"'.*observing: 10/10 hosts, .*2 failed.*, [0-9]+\.[0-9] s' "$T/tty.err"
ok "the progress line is erased at the end" sh -c 'grep -aq "$(printf "10/10 hosts.*\r\033\[K")" "$1"' _ "$T/tty.err"
ok "failures are red on a terminal" grep -aq "$(printf '\033\[31m2 failed')" "$T/tty.err"
NO_COLOR=1 $TTY "$T/tty-nc.err" "$ROTOR" observe --env poc > /dev/null
ok "NO_COLOR: progress without colour" sh -c 'grep -aq "observing: 10/10 hosts, 2 failed" "$1" && ! grep -aq "$(printf "\033\[3")" "$1"' _ "$T/tty-nc.err"
"$ROTOR" observe --env poc > /dev/null 2> "$T/pipe.err"
ok "stderr on a pipe: no progress" sh -c '! grep -aq "observing:" "$1" && ! grep -aq "$(printf "\r")" "$1"' _ "$T/pipe.err"
$TTY "$T/tty-json.err" "$ROTOR" observe --env poc --json > /dev/null
ok "--json on a terminal: no progress" sh -c '! grep -aq "observing:" "$1" && grep -aq "host6" "$1"' _ "$T/tty-json.err"
$TTY "$T/tty-plan.err" "$ROTOR" plan --env poc > /dev/null
ok "plan shows the progress too" grep -aq "observing: 10/10 hosts, .*2 failed" "$T/tty-plan.err"

done_testing
