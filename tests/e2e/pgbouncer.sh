#!/bin/sh
# pgbouncer.sh -- a full rotation through pgbouncer (Debian's package) under
# connection churn, zero failed connections, client certificates on both
# hops:
#   host3 (application, layout libpq in switch mode, user app) --verify-full, cert-->
#   host2 (pgbouncer: one hosts.yaml role, `role: pgbouncer`:
#          client_tls_* its server half, auth_type = cert;
#          server_tls_* its client half, server_tls_sslmode = verify-full) --cert-->
#   host1 (PostgreSQL 15, hostssl ... cert clientcert=verify-full).
# pgbouncer runs as the login user and reloads on SIGHUP (the role's
# reload); server_lifetime and server_idle_timeout of 1 s make it open new
# connections to PostgreSQL all the time, so the second hop's handshakes
# happen throughout the rotation too.  rotor's postgres probe checks
# pgbouncer after each reload (it answers the StartupMessage only once it
# has a server connection: both hops).
#
# Negative controls: pgbouncer refuses an application without a client
# certificate; at phase servers an application that kept only the old
# root.crt cannot verify pgbouncer; PostgreSQL's view of pgbouncer's
# certificate changes generation at phase clients (pg_stat_ssl).
#
# Uses 127.0.24.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
B=127.0.24
C=$(mktemp -d /tmp/rotor-pgb.XXXXXX)
chmod 1777 "$C"
# On a failure, pgbouncer's and PostgreSQL's logs, the churn's failures and
# the times of the steps go to /tmp/pgbouncer-fail-<date>/ (their tails printed).
keep_logs() {
	K=/tmp/pgbouncer-fail-$(date +%Y%m%dT%H%M%S)
	mkdir -p "$K" || return 0
	cp "$FD/hosts/host2/srv/pgbouncer/pgbouncer.log" "$FD/hosts/host1/srv/postgres/log/postgres.log" \
		"$C/fail" "$C/steps" "$K/" 2>/dev/null
	echo "# logs kept in $K"
	for f in "$K"/*; do echo "# ---- $f"; tail -n 40 "$f" | sed 's/^/# /'; done
}
trap 'rc=$?; touch "$C/stop"; sleep 1; { [ "$rc" -eq 0 ] && [ "$_failed" -eq 0 ] && [ -z "${PGB_KEEP_LOGS:-}" ]; } || keep_logs; fleet_down; rm -rf "$T" "$C"' EXIT
trap 'exit 1' INT TERM HUP PIPE
[ -x /usr/sbin/pgbouncer ] || { echo "1..0 # SKIP pgbouncer is not installed (make deps installs it)"; exit 0; }
fleet_up 3 $B --postgres
"$F" psql --dir "$FD" host1 -qc "CREATE ROLE app LOGIN; CREATE ROLE pgbouncer LOGIN" >/dev/null
# Every connection and its end in PostgreSQL's log (kept on a failure).
"$F" psql --dir "$FD" host1 -q -c "ALTER SYSTEM SET log_connections = on" -c "ALTER SYSTEM SET log_disconnections = on" -c "SELECT pg_reload_conf()" >/dev/null

# ---- pgbouncer on host2, as the login user ----
s="$FD/hosts/host2/srv/pgbouncer"
mkdir -p "$s/tls"
cat > "$s/pgbouncer.ini" <<INI
[databases]
appdb = host=$B.1 port=5432 dbname=postgres user=pgbouncer
postgres = host=$B.1 port=5432 dbname=postgres user=pgbouncer

[pgbouncer]
listen_addr = $B.2
listen_port = 6432
unix_socket_dir = /srv/pgbouncer
pidfile = /srv/pgbouncer/pgbouncer.pid
logfile = /srv/pgbouncer/pgbouncer.log
auth_type = cert
auth_file = /srv/pgbouncer/userlist.txt
pool_mode = session
server_lifetime = 1
server_idle_timeout = 1
; Every reload (SIGHUP or RELOAD) with server_tls_* set closes the server
; connections still logging in ("closing because: connect string changed")
; and counts that as a failed login: the pool then waits server_login_retry
; (15 s by default) before it connects again, and refuses new clients that
; find no server connection meanwhile.  An operator shortens that wait.
server_login_retry = 1
client_tls_sslmode = verify-full
client_tls_cert_file = /srv/pgbouncer/tls/client_tls.crt
client_tls_key_file = /srv/pgbouncer/tls/client_tls.key
client_tls_ca_file = /srv/pgbouncer/tls/client_tls_ca.crt
server_tls_sslmode = verify-full
server_tls_cert_file = /srv/pgbouncer/tls/server_tls.crt
server_tls_key_file = /srv/pgbouncer/tls/server_tls.key
server_tls_ca_file = /srv/pgbouncer/tls/server_tls_ca.crt
INI
printf '"app" ""\n"pgbouncer" ""\n' > "$s/userlist.txt"
# The role's reload: SIGHUP to the running pgbouncer; start it the first time.
cat > "$s/reload.sh" <<'SH'
if [ -s /srv/pgbouncer/pgbouncer.pid ] && kill -0 "$(cat /srv/pgbouncer/pgbouncer.pid)" 2>/dev/null; then
	exec kill -HUP "$(cat /srv/pgbouncer/pgbouncer.pid)"
fi
exec /usr/sbin/pgbouncer -q -d /srv/pgbouncer/pgbouncer.ini
SH
chown -R rotorfleet: "$s"

fleet_repo 5s
cat > envs/poc/chain.yaml <<YAML
subject: {O: Example, OU: DBA}
key: {type: ec, curve: P-256}
servers:
  pg1: {sans: [$B.1]}
  pgb1: {sans: [$B.2]}
clients: [app, pgbouncer]
YAML
{
	echo "hosts:"
	pg_server_yaml 1
	cat <<YAML
  host2:
    address: $B.2
    roles:
      - role: pgbouncer
        dir: /srv/pgbouncer/tls
        reload: sh /srv/pgbouncer/reload.sh
        server: {identity: pgb1, probe: {type: postgres, port: 6432}}
        client: {identity: pgbouncer}
YAML
	# The application in switch mode: certificate and key switch as one (plain renames have a narrow window).
	printf '  host3:\n    address: %s.3\n    roles:\n      - {role: client, layout: libpq, user: rotorfleet, home: /home/rotorfleet, identity: app,\n         switch: {service: app}}\n' "$B"
} > envs/poc/hosts.yaml
ok "validate" "$ROTOR" validate --worktree
git add -A && git commit -qm "rotor: poc, PostgreSQL behind pgbouncer"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001
ok "first deployment (replacing the fleet's bootstrap certificates; the reload starts pgbouncer; the probe goes through both hops)" "$ROTOR" apply --env poc --yes --replace-unknown

P="$FD/hosts/host2/srv/pgbouncer/tls"
ok "pgbouncer's six files; keys 0600" sh -c 'cd "$1" && for f in client_tls.crt client_tls_ca.crt server_tls.crt server_tls_ca.crt; do [ -f $f ] || exit 1; done; [ "$(stat -c %a client_tls.key server_tls.key)" = "600
600" ]' _ "$P"
ok "client_tls.crt is pgb1's server leaf, server_tls.crt the client leaf pgbouncer" sh -c 'openssl x509 -in "$1/client_tls.crt" -noout -subject | grep -q "CN *= *pgb1" && openssl x509 -in "$1/server_tls.crt" -noout -subject | grep -q "CN *= *pgbouncer"' _ "$P"
ok "observe: host2 has a server and a client role" sh -c '"$1" observe --env poc --json > "$2/obs.json"' _ "$ROTOR" "$T"
ok "... six files, in sync" json_check "$T/obs.json" observe '[len(h["files"]) for h in d["hosts"] if h["name"] == "host2"] == [6]'

# The application's connection: its service file gives sslmode=verify-full, sslcert, sslkey, sslrootcert.
# Each connection makes two TLS handshakes (pgbouncer opens a new server connection: server_lifetime
# 1 s). With pgbouncer's default server_login_retry of 15 s a connection arriving as pgbouncer
# reloaded waited 15 s and expired (pgbouncer's log: "S-...: closing because: connect string
# changed (age=0s)" at the SIGHUP, the next "new connection to server" 15 s later); see
# server_login_retry in pgbouncer.ini above. The check below counts such a timeout as a failure.
APPCONN="service=app host=$B.2 port=6432 user=app dbname=appdb connect_timeout=15"
as3() { "$F" exec --dir "$FD" host3 runuser -u rotorfleet -- env HOME=/home/rotorfleet "$@"; }
ok "psql from host3 through pgbouncer reaches PostgreSQL as pgbouncer's user" \
	as3 sh -c "psql \"$APPCONN\" -Atqc 'select current_user' | grep -qx pgbouncer"
fails "without a client certificate pgbouncer refuses the application (auth_type = cert)" \
	as3 psql "$APPCONN sslcert=/nonexistent sslkey=/nonexistent" -Atqc "select 1"
root1=$(sed -n 's|^sslrootcert=/home/rotorfleet/||p' "$FD/hosts/host3/home/.pg_service.conf")
cp "$FD/hosts/host3/home/$root1" "$C/root-g1.crt" && chmod 644 "$C/root-g1.crt"

# ---- churn: psql from host3 through pgbouncer ----
"$F" exec --dir "$FD" host3 runuser -u rotorfleet -- env HOME=/home/rotorfleet sh -c '
	c=$1 conn=$2
	while [ ! -f "$c/stop" ]; do
		if psql "$conn" -Atqc "select 1" >/dev/null 2>"$c/last"; then
			echo . >> "$c/ok"
		else
			{ date +%T.%N; cat "$c/last"; } >> "$c/fail"
		fi
	done' _ "$C" "$APPCONN" &
CHURN=$!
connected() { [ -s "$C/ok" ]; }
wait_for 30 connected
pg_sees() { # generation: pgbouncer's connections to PostgreSQL present that generation's client leaf
	"$F" psql --dir "$FD" host1 -Atc "select issuer_dn from pg_stat_ssl s join pg_stat_activity a using (pid) where a.usename = 'pgbouncer' and s.ssl" | grep -q "client CA g$1"
}
ok "PostgreSQL sees pgbouncer's generation 1 client certificate" wait_for 30 pg_sees 1

# ---- the rotation ----
merge() { git merge -q --ff-only "$1"; }
step() { echo "$(date +%T.%N) $*" >> "$C/steps"; }
ok "rotate start: generation 2" "$ROTOR" rotate start --env poc
merge rotor/rotate/poc/gen-0002
ok "plan at trust changes both of pgbouncer's bundles" sh -c '"$1" plan --env poc > "$2/plan-trust.txt" 2>&1; grep -q "client_tls_ca.crt" "$2/plan-trust.txt" && grep -q "server_tls_ca.crt" "$2/plan-trust.txt"' _ "$ROTOR" "$T"
step "apply trust"
PL="$FD/hosts/host2/srv/pgbouncer/pgbouncer.log"
hups0=$(grep -c "got SIGHUP" "$PL")
ok "apply trust" "$ROTOR" apply --env poc --yes
step "applied trust"
ok "both halves changed at trust, and pgbouncer got one reload (each reload drops server logins in progress)" \
	[ "$(($(grep -c "got SIGHUP" "$PL") - hups0))" -eq 1 ]
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0002-servers
step "apply servers"
ok "apply servers (PostgreSQL's and pgbouncer's server leaves)" "$ROTOR" apply --env poc --yes
step "applied servers"
fails "an application with only the old root.crt cannot verify pgbouncer at phase servers" \
	as3 psql "$APPCONN sslrootcert=$C/root-g1.crt" -Atqc "select 1"
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0002-clients
step "apply clients"
ok "apply clients (the application's and pgbouncer's client leaves)" "$ROTOR" apply --env poc --yes
step "applied clients"
ok "PostgreSQL sees pgbouncer's generation 2 client certificate" wait_for 30 pg_sees 2
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0002-stable
step "apply stable"
ok "apply stable" "$ROTOR" apply --env poc --yes
step "applied stable"
ok "in sync at generation 2" "$ROTOR" plan --env poc --detailed-exitcode
ok "pgbouncer presents generation 2 to applications" sh -c 'openssl x509 -in "$1/client_tls.crt" -noout -issuer | grep -q "server CA g2" && ! grep -q . "$1/client_tls_ca.crt.rotor-bak" 2>/dev/null' _ "$P"

touch "$C/stop"
stopped() { ! kill -0 "$CHURN" 2>/dev/null; }
wait_for 60 stopped
n_ok=$(cat "$C/ok" 2>/dev/null | wc -l)
n_fail=$(grep -c '^[0-9]' "$C/fail" 2>/dev/null)
echo "# psql from host3 through pgbouncer to PostgreSQL through the rotation: $n_ok connections, ${n_fail:-0} failed"
ok "the churn made connections through the rotation ($n_ok)" [ "$n_ok" -gt 20 ]
ok "ZERO failed connections" sh -c '[ "${1:-0}" -eq 0 ] || { head -20 "$2"; exit 1; }' _ "$n_fail" "$C/fail"

done_testing
