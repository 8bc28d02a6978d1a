#!/bin/sh
# switch.sh -- switch mode for libpq clients (hosts.yaml `switch:`), on real
# PostgreSQL: two servers, host3 a client in switch mode, host4 a client in
# the plain libpq layout.
#
#  - host side refusals: a ~/.pg_service.conf rotor did not write is refused
#    (one line, nothing written anywhere) until `adopt: true`, which keeps
#    its other services;
#  - observe reads the files through the service file;
#  - the race, deterministic: a reader that reads the switch point (the
#    service file), waits until the switch has happened, then opens the
#    files it was pointed at always gets a matching certificate and key;
#    the same reader on the plain layout (open the certificate, wait until
#    the key has changed, open the key) gets the mismatch: the negative
#    control, so the test can fail;
#  - real libpq: psql with service=app connects from host3 through a whole
#    rotation (trust, servers, clients, stable) with zero failures;
#  - directories: current + previous during a rotation, one when stable.
#
# Uses 127.0.19.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
B=127.0.19
C=$(mktemp -d /tmp/rotor-switch.XXXXXX)
chmod 1777 "$C"
trap 'touch "$C/stop"; sleep 1; fleet_down; rm -rf "$T" "$C"' EXIT
trap 'exit 1' INT TERM HUP PIPE
fleet_up 4 $B --postgres
for i in 1 2; do "$F" psql --dir "$FD" host$i -qc "CREATE ROLE app LOGIN" >/dev/null; done
H3="$FD/hosts/host3/home"
SF="$H3/.pg_service.conf"

fleet_repo 5s
{
	printf 'subject: {O: Example, OU: DBA}\nkey: {type: ec, curve: P-256}\nservers:\n'
	for i in 1 2; do printf '  pg%d: {sans: [%s.%d]}\n' "$i" "$B" "$i"; done
	printf 'clients: [app]\n'
} > envs/poc/chain.yaml
hosts_yaml() { # adopt: true|false
	echo "hosts:"
	for i in 1 2; do pg_server_yaml $i; done
	printf '  host3:\n    address: %s.3\n    roles:\n      - {role: client, layout: libpq, user: rotorfleet, home: /home/rotorfleet, identity: app,\n         switch: {service: app, adopt: %s}}\n' "$B" "$1"
	libpq_client_yaml 4
}
hosts_yaml false > envs/poc/hosts.yaml
ok "validate" "$ROTOR" validate --worktree
git add -A && git commit -qm "rotor: poc"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001

# ---- a service file rotor did not write: refused, nothing written ----
printf '# my services\n[reports]\nhost=reports.example.net\ndbname=reports\n' > "$SF"
chown rotorfleet: "$SF"
cp "$SF" "$T/sf.orig"
"$ROTOR" apply --env poc --yes --replace-unknown > "$T/refused.txt" 2>&1
ok "a foreign service file: apply fails" [ $? -ne 0 ]
ok "... with one line naming the file and how to adopt it" grep -q "service file /home/rotorfleet/.pg_service.conf exists and was not written by rotor; refusing to replace it (set switch: {adopt: true} to let rotor take it over)" "$T/refused.txt"
ok "... the service file is untouched" cmp -s "$SF" "$T/sf.orig"
ok "... and nothing was written on any host" sh -c '! [ -e "$1/hosts/host3/home/.postgresql" ] && ! [ -e "$1/hosts/host4/home/.postgresql/postgresql.crt" ] && ! grep -q "rotor" "$1/hosts/host1/srv/postgres/certs/server.crt"' _ "$FD"

# ---- adopted on purpose ----
hosts_yaml true > envs/poc/hosts.yaml
git commit -qam "rotor: poc adopts host3's service file"
ok "first apply with adopt: true" "$ROTOR" apply --env poc --yes --replace-unknown
ok "the service file is rotor's now, and keeps the other service" sh -c 'head -n 1 "$1" | grep -q "^# written by rotor" && grep -q "^\[reports\]$" "$1" && grep -q "^host=reports.example.net$" "$1" && grep -q "^\[app\]$" "$1" && grep -q "^sslmode=verify-full$" "$1"' _ "$SF"
ok "one certificate directory, named by content; the key 0600" sh -c 'set -- "$1"/.postgresql/rotor/*; [ $# -eq 1 ] && basename "$1" | grep -Eq "^[0-9a-f]{16}-[0-9a-f]{16}$" && [ "$(stat -c %a "$1/postgresql.key")" = 600 ]' _ "$H3"
"$ROTOR" observe --env poc --json > "$T/obs1.json"
ok "observe reads host3's files through the service file" json_check "$T/obs1.json" observe '
[f["path"].startswith("/home/rotorfleet/.postgresql/rotor/") and f["present"] for h in d["hosts"] if h["name"] == "host3" for f in h["files"]] == [True] * 3 and all(h["fits"] == ["stable"] for h in d["hosts"])'
ok "plan is in sync" "$ROTOR" plan --env poc --detailed-exitcode
# psql, the way an application connects: PGSERVICE names the service.
as3() { "$F" exec --dir "$FD" host3 runuser -u rotorfleet -- env HOME=/home/rotorfleet "$@"; }
ok "psql with PGSERVICE=app connects from host3 (verify-full, client certificate)" \
	as3 env PGSERVICE=app psql "host=$B.1 port=5432 user=app dbname=postgres" -Atqc "select 1"
ok "... and with PGSERVICEFILE naming the file" \
	as3 env PGSERVICEFILE=/home/rotorfleet/.pg_service.conf psql "service=app host=$B.2 user=app dbname=postgres" -Atqc "select 1"

# ---- psql with service=app from host3 all through the rotation ----
"$F" exec --dir "$FD" host3 runuser -u rotorfleet -- env HOME=/home/rotorfleet sh -c '
	c=$1 base=$2
	while [ ! -f "$c/stop" ]; do
		for s in 1 2; do
			if psql "service=app host=$base.$s port=5432 user=app dbname=postgres connect_timeout=5" -Atqc "select 1" >/dev/null 2>"$c/h3.last"; then
				echo . >> "$c/h3.ok"
			else
				{ date +%T.%N; cat "$c/h3.last"; } >> "$c/h3.fail"
			fi
		done
	done' _ "$C" "$B" &
CHURN=$!
connected() { [ -s "$C/h3.ok" ]; }
wait_for 30 connected

merge() { git merge -q --ff-only "$1"; }
ok "rotate start: generation 2" "$ROTOR" rotate start --env poc
merge rotor/rotate/poc/gen-0002
ok "apply trust" "$ROTOR" apply --env poc --yes
ok "trust: two directories on host3 (the bundle changed): current and previous" sh -c 'set -- "$1"/.postgresql/rotor/*; [ $# -eq 2 ]' _ "$H3"
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0002-servers
ok "apply servers" "$ROTOR" apply --env poc --yes
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0002-clients

# ---- the readers, across the switch of the clients step ----
# Each reader opens the certificate, waits until the switch has happened
# AND the apply of the step has ended (the go file), then opens the key:
# the widest possible gap between libpq's two opens.
# Switch mode (host3): the paths come from one read of the service file.
"$F" exec --dir "$FD" host3 runuser -u rotorfleet -- sh -c '
	sf=/home/rotorfleet/.pg_service.conf o=$1/switch
	field() { awk -v k="$1=" "/^\\[/ { on = (\$0 == \"[app]\") } on && index(\$0, k) == 1 { print substr(\$0, length(k) + 1) }" "$2"; }
	cp "$sf" "$o.before"
	cert=$(field sslcert "$o.before") key=$(field sslkey "$o.before")
	cat "$cert" > "$o.crt"
	touch "$o.ready"; n=0
	while cmp -s "$sf" "$o.before" || [ ! -e "$1/go" ]; do
		n=$((n + 1)); [ "$n" -lt 6000 ] || { echo "no switch" > "$o.result"; exit 0; }
		sleep 0.05
	done
	cat "$key" > "$o.key" || { echo "key unreadable" > "$o.result"; exit 0; }
	a=$(openssl x509 -in "$o.crt" -noout -pubkey) b=$(openssl pkey -in "$o.key" -pubout)
	[ "$a" = "$b" ] && echo match > "$o.result" || echo mismatch > "$o.result"' _ "$C" &
# Plain layout (host4): the same reader on ~/.postgresql.
"$F" exec --dir "$FD" host4 runuser -u rotorfleet -- sh -c '
	d=/home/rotorfleet/.postgresql o=$1/plain
	cat "$d/postgresql.crt" > "$o.crt"; cp "$d/postgresql.key" "$o.key0"
	touch "$o.ready"; n=0
	while cmp -s "$d/postgresql.key" "$o.key0" || [ ! -e "$1/go" ]; do
		n=$((n + 1)); [ "$n" -lt 6000 ] || { echo "no switch" > "$o.result"; exit 0; }
		sleep 0.05
	done
	cat "$d/postgresql.key" > "$o.key"
	a=$(openssl x509 -in "$o.crt" -noout -pubkey) b=$(openssl pkey -in "$o.key" -pubout)
	[ "$a" = "$b" ] && echo match > "$o.result" || echo mismatch > "$o.result"' _ "$C" &
ready() { [ -e "$C/switch.ready" ] && [ -e "$C/plain.ready" ]; }
ok "both readers opened their certificate" wait_for 30 ready
ok "apply clients" "$ROTOR" apply --env poc --yes
touch "$C/go"
done_reading() { [ -s "$C/switch.result" ] && [ -s "$C/plain.result" ]; }
ok "both readers saw the switch and opened their key" wait_for 60 done_reading
ok "switch mode: the reader opened a matching certificate and key ($(cat "$C/switch.result" 2>/dev/null))" grep -qx match "$C/switch.result"
ok "... of the generation it was pointed at before the switch" sh -c 'openssl x509 -in "$1" -noout -issuer | grep -q "client CA g1"' _ "$C/switch.crt"
ok "plain layout, the negative control: the same reader gets a mismatch ($(cat "$C/plain.result" 2>/dev/null))" grep -qx mismatch "$C/plain.result"
ok "clients: host3 keeps the current and the previous directory" sh -c 'set -- "$1"/.postgresql/rotor/*; [ $# -eq 2 ]' _ "$H3"
ok "... and the service file's backup (a restore needs it)" test -e "$SF.rotor-bak"

"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0002-stable
# What an apply that failed mid-write leaves: a hidden directory nothing names.
LEFT="$H3/.postgresql/rotor/.0123456789abcdef-0123456789abcdef.rotor-new"
mkdir -p "$LEFT" && echo half > "$LEFT/postgresql.crt" && chown -R rotorfleet "$LEFT"
ok "apply stable" "$ROTOR" apply --env poc --yes
ok "... removes the directory a failed try left half-written" test ! -e "$LEFT"
ok "stable: one directory left on host3, no backup of the service file" sh -c 'set -- "$1"/.postgresql/rotor/*; [ $# -eq 1 ] && ! [ -e "$2.rotor-bak" ]' _ "$H3" "$SF"
ok "stable: the directory left is the one the service file names" sh -c 'h=$1 d=$(sed -n "s|^sslcert=/home/rotorfleet/\(.*\)/postgresql.crt$|\1|p" "$2"); [ -n "$d" ] && set -- "$h"/.postgresql/rotor/* && [ "$1" = "$h/$d" ]' _ "$H3" "$SF"
ok "in sync at generation 2" "$ROTOR" plan --env poc --detailed-exitcode
touch "$C/stop"
stopped() { ! kill -0 "$CHURN" 2>/dev/null; }
wait_for 30 stopped
n_ok=$(cat "$C/h3.ok" 2>/dev/null | wc -l)
n_fail=$(grep -c '^[0-9]' "$C/h3.fail" 2>/dev/null)
echo "# psql service=app on host3 through the rotation: $n_ok connections, ${n_fail:-0} failed"
ok "psql service=app made connections through the rotation ($n_ok)" [ "$n_ok" -gt 20 ]
ok "ZERO failed connections in switch mode" sh -c '[ "${1:-0}" -eq 0 ] || { head -20 "$2"; exit 1; }' _ "$n_fail" "$C/h3.fail"

# ---- a service file changed by hand after rotor wrote it: observe follows it ----
cp "$SF" "$T/sf.rotor"
sed -i 's|^sslkey=.*|sslkey=/home/rotorfleet/elsewhere.key|' "$SF"
"$ROTOR" observe --env poc --json > "$T/obs-hand.json"
ok "observe reads what the service file names (a key that is not there)" json_check "$T/obs-hand.json" observe '
[f for h in d["hosts"] if h["name"] == "host3" for f in h["files"] if f["content"] == "key"][0] == dict(path="/home/rotorfleet/elsewhere.key", present=False, **{k: v for k, v in [f for h in d["hosts"] if h["name"] == "host3" for f in h["files"] if f["content"] == "key"][0].items() if k not in ("path", "present")})'
ok "... and plan sees host3 off the line" sh -c '"$1" plan --env poc > "$2" 2>&1; [ $? -eq 1 ] && grep -q "host3 fits no step" "$2"' _ "$ROTOR" "$T/plan-hand.txt"
cp "$T/sf.rotor" "$SF"
ok "the file put back: in sync again" "$ROTOR" plan --env poc --detailed-exitcode

done_testing
