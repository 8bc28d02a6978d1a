#!/bin/sh
# churn.sh -- the connection-churn tool (tests/e2e/churn/churn.c) against a
# real two-host PostgreSQL fleet: with the right certificates no attempt
# fails; with an unrelated CA in the client's root.crt every attempt fails
# and is counted; a root.crt replaced DURING a run takes effect at the next
# attempt (libpq re-reads the files each time); a stop file ends a run.
#
# Uses 127.0.12.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
CHURN="$T/churn"

ok "churn builds" sh "$ROTOR_SRCDIR/tests/e2e/churn/build.sh" "$CHURN"
fleet_up 2 127.0.12 --postgres
eval "$("$F" env --dir "$FD")"

# ---- a chain made with the openssl command line ----
C="$T/pki"
mkdir -p "$C"
cd "$C" || exit 1
x509_root root "/O=Churn/CN=churn root"
x509_sign sca root ca "/O=Churn/CN=churn server CA"
x509_sign cca root ca "/O=Churn/CN=churn client CA"
x509_sign pg1 sca server "/O=Churn/CN=pg1" "DNS:pg1,IP:127.0.12.1"
x509_sign pg2 sca server "/O=Churn/CN=pg2" "DNS:pg2,IP:127.0.12.2"
x509_sign app cca client "/O=Churn/CN=app"
x509_root other "/O=Churn/CN=unrelated root"
ok "the chain verifies with openssl" openssl verify -CAfile root.crt -untrusted sca.crt -purpose sslserver pg2.crt

# ---- server files (postgres layout), reload, role ----
for i in 1 2; do
	d="$FD/hosts/host$i/srv/postgres/certs"
	cat "$C/pg$i.crt" "$C/sca.crt" > "$d/server.crt"
	cat "$C/root.crt" "$C/cca.crt" > "$d/root.crt"
	cp "$C/pg$i.key" "$d/server.key"
	chown postgres:postgres "$d/server.crt" "$d/root.crt" "$d/server.key"
	chmod 0600 "$d/server.key"
	chmod 0644 "$d/server.crt" "$d/root.crt"
	ok "host$i: reload with the documented command" "$F" ssh --dir "$FD" "host$i" "$FLEET_PG_RELOAD"
	"$F" psql --dir "$FD" "host$i" -c 'CREATE ROLE app LOGIN' >/dev/null
done

# ---- the client (libpq layout) ----
CL="$T/client"
mkdir -p "$CL"
cat "$C/app.crt" "$C/cca.crt" > "$CL/postgresql.crt"
cp "$C/app.key" "$CL/postgresql.key"
chmod 0600 "$CL/postgresql.key"
cat "$C/root.crt" "$C/sca.crt" > "$CL/root.crt"
cp "$CL/root.crt" "$T/root.good"
cat "$C/other.crt" > "$T/root.bad"

# The reload is a signal: wait until both servers present the new leaves.
ready() {
	for i in 1 2; do
		psql -X -q -At "host=127.0.12.$i port=5432 dbname=postgres user=app sslmode=verify-full \
			sslcert=$CL/postgresql.crt sslkey=$CL/postgresql.key sslrootcert=$CL/root.crt" \
			-c 'select 1' >/dev/null 2>&1 || return 1
	done
}
n=0
until ready; do
	n=$((n + 1))
	[ "$n" -lt 100 ] || break
	sleep 0.1
done
ok "both servers serve the new chain" ready

TARGETS="127.0.12.1:5432:pg1 127.0.12.2:5432:127.0.12.2"
# churn.out: the run's output; counts from its last line.
counts() { sed -n 's/^churn: \([0-9]*\) connections, \([0-9]*\) failed$/\1 \2/p' "$T/churn.out" | tail -n 1; }

# ---- right certificates: no failure over 3 s ----
"$CHURN" -d 3 -c "$CL" $TARGETS >"$T/churn.out" 2>&1
set -- $(counts)
ok "correct certificates: the summary line is there" test -n "${1:-}"
ok "correct certificates: connections made (${1:-?})" test "${1:-0}" -ge 1
ok "correct certificates: 0 failed (${2:-?})" test "${2:-1}" -eq 0
ok "both targets were used" sh -c 'grep -q "target 127.0.12.1:5432 (pg1): [1-9][0-9]* ok, 0 failed" "$1" &&
	grep -q "target 127.0.12.2:5432 (127.0.12.2): [1-9][0-9]* ok, 0 failed" "$1"' _ "$T/churn.out"

# ---- an unrelated CA as the client's root.crt: every attempt fails, each reported ----
cp "$T/root.bad" "$CL/root.crt"
"$CHURN" -d 1 -c "$CL" $TARGETS >"$T/churn.out" 2>&1
set -- $(counts)
ok "unrelated CA: attempts made (${1:-?})" test "${1:-0}" -ge 1
ok "unrelated CA: every attempt failed (${2:-?} of ${1:-?})" test "${2:--1}" -eq "${1:-0}"
head -n 1 "$T/churn.out" | sed 's/^/# e.g. /'
tail -n 4 "$T/churn.out" | sed 's/^/# /'
ok "unrelated CA: one line per failure, with time and reason" sh -c '
	[ "$(grep -c "^20[0-9-]*T[0-9:.]*Z FAIL 127\.0\.12\.[12]:5432 .*certificate verify failed" "$1")" -eq "$2" ]' _ "$T/churn.out" "${2:-x}"

# ---- files replaced during a run: the next attempt reads them ----
cp "$T/root.good" "$CL/root.crt"
"$CHURN" -d 3 -c "$CL" $TARGETS >"$T/churn.out" 2>&1 &
pid=$!
sleep 1.5   # not a wait: half of the 3 s run on the good root.crt, so some attempts succeed
cp "$T/root.bad" "$CL/root.crt.tmp" && mv -f "$CL/root.crt.tmp" "$CL/root.crt"
wait "$pid"
set -- $(counts)
ok "root.crt swapped mid-run: some failed (${2:-?} of ${1:-?}), not all" \
	sh -c '[ "$1" -gt 0 ] && [ "$1" -lt "$2" ]' _ "${2:-0}" "${1:-0}"

# ---- a stop file ends a run without -d; two sources ----
cp "$T/root.good" "$CL/root.crt"
rm -f "$T/stop"
"$CHURN" -f "$T/stop" -i 20 -c "$CL" -c "$CL/" $TARGETS >"$T/churn.out" 2>&1 &
pid=$!
sleep 1   # not a wait: the run connects for a while before the stop file appears
touch "$T/stop"
n=0
while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 100 ]; do n=$((n + 1)); sleep 0.1; done
ok "the stop file ended the run" sh -c '! kill -0 "$1" 2>/dev/null' _ "$pid"
wait "$pid"
set -- $(counts)
ok "stop file, two sources: connections (${1:-?}), 0 failed (${2:-?})" sh -c '[ "$1" -ge 4 ] && [ "$2" -eq 0 ]' _ "${1:-0}" "${2:-1}"

expect_out "bad target is a usage error" 'bad target' "$CHURN" -d 1 -c "$CL" 127.0.12.1
done_testing
