# shellcheck shell=sh
# lib.sh -- sourced by tests/e2e/*.sh: TAP output and a throwaway sandbox.
#
#   . "$(dirname "$0")/lib.sh"
#   ok "name" test -f file         # runs the command; "ok N - name" or "not ok N - name"
#   expect_out "name" 'regex' cmd  # command output (stdout+stderr) must match the ERE
#   ok "name" json_check FILE SCHEMA 'EXPR'  # FILE is one JSON document valid under
#                                  # schemas/SCHEMA.json, and the Python EXPR over d holds
#   done_testing
#   wait_for 30 cmd...             # poll cmd every 0.2 s until it succeeds; at the deadline a
#                                  # "# wait_for: ..." line, the command's last output, status 1
#
# $ROTOR is the binary under test (tests/run.sh exports the sanitizer
# build); $T is a fresh temporary directory removed at exit, with HOME
# pointing inside it so no test reads or writes the real home.
#
# Suites on the test fleet (tests/fleet/fleet, as $F, in $FD):
#   need_root                    # "1..0 # SKIP" and exit unless root
#   fleet_up N BASE [option...]  # N hosts on BASE.1-N; down again at exit
#   fleet_repo TIMEOUT           # cd to a new state repository $R, env poc, reaching the fleet
#   pg_chain_yaml                # chain.yaml: servers pg1-3 with SANs $B.1-3, client app
#   pg_server_yaml I [RELOAD [PORT]]  # hosts.yaml entry: host I ($B.I) a PostgreSQL server pgI
#   libpq_client_yaml I          # hosts.yaml entry: host I ($B.I) the libpq client app
#   x509_root NAME SUBJECT       # openssl command line: NAME.key, NAME.crt, a self-signed root
#   x509_sign NAME ISSUER SECTION SUBJECT [SAN]  # NAME.key, NAME.crt signed by ISSUER (valid $DAYS, default 365 days)
#   pg_churn_fleet               # 5 hosts on $B: PostgreSQL servers 1-3 (role app), libpq clients
#                                # 4-5; repo $R with chain.yaml and hosts.yaml written, not committed;
#                                # $C the churn directory (removed at exit with the fleet)
#   churn HOST                   # from HOST, verify-full connections to servers 1-3 in a loop until
#                                # $C/stop: one line per success in $C/HOST.ok, time + error in $C/HOST.fail
#   churn_connected HOST...      # each has made a connection
#   churn_stopped                # every churn loop has ended
#   git_remote                   # $BARE on host1 (in $SRVHOME) as $URL over SSH, holding main of
#                                # the current repository, its hook protecting main
#   git_remote_merge COMMIT      # a fast-forward merge on the server: main := COMMIT
# A suite with more to clean up at exit sets its own EXIT trap and calls
# fleet_down in it.
set -u
: "${ROTOR:=$(cd "$(dirname "$0")/../.." && pwd)/build/rotor}"
: "${ROTOR_SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
T=$(mktemp -d "${TMPDIR:-/tmp}/rotor-e2e.XXXXXX")
export HOME="$T/home"
mkdir -p "$HOME"
export GIT_CONFIG_NOSYSTEM=1
git config --global user.name "rotor test"
git config --global user.email "test@rotor.invalid"
git config --global init.defaultBranch main
unset ROTOR_KEY_FILE
_n=0 _failed=0
F="$ROTOR_SRCDIR/tests/fleet/fleet"
FD="$T/fleet"
PG_RELOAD="sudo -n -u postgres /usr/lib/postgresql/15/bin/pg_ctl -D /srv/postgres/data -s reload"
_fleet=0
trap 'fleet_down; rm -rf "$T"' EXIT

ok() { # name cmd...
	_name=$1; shift
	_n=$((_n + 1))
	if "$@" >"$T/.out" 2>&1; then
		echo "ok $_n - $_name"
	else
		echo "not ok $_n - $_name"
		_show "$T/.out"
		_failed=$((_failed + 1))
	fi
}

# A failed command's output as comments: all of it up to 30 lines, else the first and last 15.
_show() { # file
	if [ "$(wc -l < "$1")" -le 30 ]; then
		sed 's/^/# /' "$1"
	else
		head -n 15 "$1" | sed 's/^/# /'
		echo "# [... $(($(wc -l < "$1") - 30)) lines ...]"
		tail -n 15 "$1" | sed 's/^/# /'
	fi
}

fails() { # name cmd...   (the command must exit non-zero)
	_name=$1; shift
	_n=$((_n + 1))
	if "$@" >"$T/.out" 2>&1; then
		echo "not ok $_n - $_name (command succeeded)"
		_failed=$((_failed + 1))
	else
		echo "ok $_n - $_name"
	fi
}

expect_out() { # name regex cmd...  (output must match regex; exit status ignored)
	_name=$1; _re=$2; shift 2
	_n=$((_n + 1))
	"$@" >"$T/.out" 2>&1
	if grep -E -q -- "$_re" "$T/.out"; then
		echo "ok $_n - $_name"
	else
		echo "not ok $_n - $_name: output does not match /$_re/"
		sed 's/^/# /' "$T/.out" | head -n 30
		_failed=$((_failed + 1))
	fi
}

# A condition, not a fixed time: run the command every 0.2 s until it
# succeeds or SECONDS have passed since the first try (then say which
# command never succeeded, with its last output, and return 1).  Its
# output goes to $T/.wait, so it may run inside ok.
# HOST's sshd drops every session it holds, its listener stays: the processes
# of each connection end (as on a restart that ends them, or ClientAliveInterval).
# A client holding a session open (apply keeps one per host) finds it dead.
drop_sessions() { # hostN
	_ds=$(cat "$FD/hosts/$1/sshd.pid") || return 1
	for _dp in $(pgrep -P "$_ds"); do
		kill $(pgrep -P "$_dp") "$_dp" 2>/dev/null
	done
	return 0
}

wait_for() { # seconds cmd...
	_wf_s=$1; shift
	_wf_end=$(($(date +%s%N) / 1000000 + _wf_s * 1000))
	until "$@" >"$T/.wait" 2>&1; do
		if [ $(($(date +%s%N) / 1000000)) -ge "$_wf_end" ]; then
			echo "# wait_for: still false after $_wf_s s: $*"
			tail -n 10 "$T/.wait" | sed 's/^/#   /'
			return 1
		fi
		sleep 0.2
	done
}

json_check() { # file schema expr
	/usr/bin/python3 -c '
import json, sys, jsonschema
d = json.loads(open(sys.argv[1]).read())
jsonschema.validate(d, json.load(open(sys.argv[2])))
ok = eval(sys.argv[3])
if not ok:
    print(json.dumps(d)[:3000])
sys.exit(0 if ok else 1)' "$1" "$ROTOR_SRCDIR/schemas/$2.json" "$3"
}

done_testing() {
	echo "1..$_n"
	[ "$_failed" -eq 0 ]
}

# ---- the test fleet ----

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "1..0 # SKIP the fleet needs root"
		exit 0
	fi
}

fleet_up() { # n base [fleet up option...]
	_fn=$1 _fb=$2; shift 2
	_fleet=1
	"$F" up "$_fn" "$@" --dir "$FD" --base "$_fb" >"$T/fleet-up.log" 2>&1 ||
		{ cat "$T/fleet-up.log"; echo "not ok $((_n + 1)) - fleet up"; exit 1; }
}

fleet_down() {
	[ "$_fleet" -eq 0 ] || "$F" down --dir "$FD" >/dev/null 2>&1
}

# A state repository in $R (the working directory from here on) with env
# poc, whose ssh settings reach the fleet: its user, key and known_hosts.
fleet_repo() { # connect-timeout
	R="$T/repo"
	mkdir -p "$R" && cd "$R" && git init -q .
	"$ROTOR" init --env poc >/dev/null
	sed -i -e "s|^  user: deploy|  user: rotorfleet\n  identity: \"$FD/id_ed25519\"|" \
	       -e "s|^  known_hosts: .*|  known_hosts: \"$FD/known_hosts\"|" \
	       -e "s|^  connect_timeout: .*|  connect_timeout: $1|" rotor.yaml
}

pg_chain_yaml() {
	printf 'subject: {O: Example, OU: DBA}\nkey: {type: ec, curve: P-256}\nservers:\n'
	for _i in 1 2 3; do printf '  pg%d: {sans: [%s.%d]}\n' "$_i" "$B" "$_i"; done
	printf 'clients: [app]\n'
}

pg_server_yaml() { # i [reload [probe port]]
	cat <<YAML
  host$1:
    address: $B.$1
    roles:
      - role: server
        layout: postgres
        dir: /srv/postgres/certs
        owner: postgres
        group: postgres
        identity: pg$1
        reload: "${2:-$PG_RELOAD}"
        probe: {type: postgres, port: ${3:-5432}}
YAML
}

libpq_client_yaml() { # i
	printf '  host%d:\n    address: %s.%d\n    roles:\n      - {role: client, layout: libpq, user: rotorfleet, home: /home/rotorfleet, identity: app}\n' "$1" "$B" "$1"
}
switch_client_yaml() { # i
	printf '  host%d:\n    address: %s.%d\n    roles:\n      - {role: client, layout: libpq, user: rotorfleet, home: /home/rotorfleet, identity: app,\n         switch: {service: app}}\n' "$1" "$B" "$1"
}

# ---- the shared git remote (remote.sh, pipeline.sh) ----

# A bare repository on fleet host1 ($BARE, in $SRVHOME = its
# /home/rotorfleet), reached as $URL over SSH, holding main of the current
# repository; its pre-receive hook protects main the way a protected branch
# does (ROTOR_HOOK_ADMIN=1 lets the test's own pushes over a local path
# through), refuses every push while $SRVHOME/deny-pushes exists, and
# prints a merge-request line for every branch it takes.
git_remote() {
	SRVHOME="$FD/hosts/host1/home"          # host1's /home/rotorfleet
	BARE="$SRVHOME/state.git"
	URL="ssh://rotorfleet@$B.1/home/rotorfleet/state.git"
	git init -q --bare "$BARE"
	git config --global --add safe.directory "$BARE"    # root's own git, on the login user's repository
	git push -q "$BARE" main || exit 1
	cat > "$BARE/hooks/pre-receive" <<'HOOK'
#!/bin/sh
# Like a protected main on GitLab: nobody pushes to main; merge requests do.
[ -n "${ROTOR_HOOK_ADMIN:-}" ] && exit 0     # the test's own setup, never over SSH
if [ -e "$HOME/deny-pushes" ]; then
	echo "GitLab: You are not allowed to push code to this project."
	exit 1
fi
while read -r old new ref; do
	if [ "$ref" = refs/heads/main ]; then
		echo "GitLab: You are not allowed to push code to protected branches on this project."
		exit 1
	fi
	echo "To create a merge request for ${ref#refs/heads/}, visit:"
	echo "  https://gitlab.example.net/dba/state/-/merge_requests/new?source_branch=${ref#refs/heads/}"
done
HOOK
	chmod 755 "$BARE/hooks/pre-receive"
	chown -R rotorfleet "$BARE"
}

# The test's own push of REF over the local path (past the hook, as an
# admin would), from the current directory; root wrote the new objects, so
# the login user gets them back for its next receive-pack.
git_remote_admin_push() { # ref
	ROTOR_HOOK_ADMIN=1 git push -q "$BARE" "$1" && chown -R rotorfleet "$BARE"
}

# Merge as GitLab's fast-forward merge does, on the server: main := COMMIT.
git_remote_merge() { # commit
	git -C "$BARE" update-ref refs/heads/main "$1" && chown -R rotorfleet "$BARE"
}

# ---- certificates made with the openssl command line (not by rotor) ----
# EC P-256 keys, unencrypted, in the working directory; the extensions of
# SECTION (ca, server, client) come from tests/openssl-ext.cnf.

_q() { "$@" >/dev/null 2>&1; }

x509_root() { # name subject
	_q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
	_q openssl req -x509 -new -key "$1.key" -subj "$2" -days 3650 \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.crt"
}

x509_sign() { # name issuer section subject [san]
	_q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
	_q openssl req -new -key "$1.key" -subj "$4" -out "$1.csr"
	SAN=${5:-DNS:unused} KU="" openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial \
		-days "${DAYS:-365}" -extfile "$ROTOR_SRCDIR/tests/openssl-ext.cnf" -extensions "$3" -out "$1.crt" >/dev/null 2>&1
}

# ---- PostgreSQL under connection churn (rotation.sh, rollback.sh) ----

# host4 holds the plain libpq layout; host5 too, or switch mode (service
# app) with "switch".
pg_churn_fleet() { # [switch]
	# Churn counters live where the client hosts' login user can write.
	C=$(mktemp -d /tmp/rotor-churn.XXXXXX)
	chmod 1777 "$C"
	trap 'touch "$C/stop"; sleep 1; fleet_down; rm -rf "$T" "$C"' EXIT
	trap 'exit 1' INT TERM HUP PIPE
	fleet_up 5 "$B" --postgres
	for _i in 1 2 3; do "$F" psql --dir "$FD" "host$_i" -qc "CREATE ROLE app LOGIN" >/dev/null; done
	fleet_repo 5s
	pg_chain_yaml > envs/poc/chain.yaml
	{
		echo "hosts:"
		for _i in 1 2 3; do pg_server_yaml "$_i"; done
		libpq_client_yaml 4
		if [ "${1:-}" = switch ]; then switch_client_yaml 5; else libpq_client_yaml 5; fi
	} > envs/poc/hosts.yaml
}

# New verify-full connections from HOST to the three servers in a loop,
# counted in $C/HOST.ok and $C/HOST.fail.  With "switch" they go through
# the service app (switch mode); without, they name the plain layout's
# files, where libpq's separate opens of the certificate and the key can
# straddle their renames (README, "Client certificates that switch as
# one"): those failures, and only those, go to $C/HOST.window instead.
CHURN_PIDS=
churn() { # host [switch]
	"$F" exec --dir "$FD" "$1" runuser -u rotorfleet -- env PGSERVICEFILE=/home/rotorfleet/.pg_service.conf sh -c '
		c=$1 me=$2 base=$3 mode=$4 d=/home/rotorfleet/.postgresql
		if [ "$mode" = switch ]; then
			files="service=app"
		else
			files="sslmode=verify-full sslcert=$d/postgresql.crt sslkey=$d/postgresql.key sslrootcert=$d/root.crt"
		fi
		while [ ! -f "$c/stop" ]; do
			for s in 1 2 3; do
				if psql "host=$base.$s port=5432 user=app dbname=postgres $files connect_timeout=5" -Atqc "select 1" >/dev/null 2>"$c/$me.last"; then
					echo . >> "$c/$me.ok"
				elif [ "$mode" != switch ] && grep -q "could not load private key file \"$d/postgresql.key\": key values mismatch" "$c/$me.last"; then
					{ date +%T.%N; cat "$c/$me.last"; } >> "$c/$me.window"
				else
					{ date +%T.%N; cat "$c/$me.last"; } >> "$c/$me.fail"
				fi
			done
		done' _ "$C" "$1" "$B" "${2:-}" &
	CHURN_PIDS="$CHURN_PIDS $!"
}

churn_connected() { # host...
	for _h; do [ -s "$C/$_h.ok" ] || return 1; done
}

# Each loop reads the stop file after its round of three connections.
churn_stopped() {
	for _p in $CHURN_PIDS; do ! kill -0 "$_p" 2>/dev/null || return 1; done
}
