#!/bin/sh
# clients.sh -- `rotor client add / remove / crl` and the pgjdbc layouts on a
# fleet with real clients: a PostgreSQL server with layout postgres-crl
# (ssl_crl_file = root.crl), a libpq client host, a pgjdbc client host
# (Debian's pgJDBC on its default-jre, reading the unencrypted
# postgresql.pk8 rotor wrote) and a pgjdbc-p12 client host (pgJDBC reading
# key and chain from the one postgresql.p12, empty sslpassword).  A client added is issued, merged and
# applied, and connects; a client removed is refused by the server with a
# revoked-certificate error while the others keep connecting, and stays
# refused through a whole rotation; drift reports a CRL near its
# nextUpdate (chain.yaml validity.crl); a JVM opening pgJDBC connections in
# a loop on the pgjdbc host's files sees at most the one documented window
# through the rotation, and one on the pgjdbc-p12 host's file sees no failure
# at all (tests/e2e/clients/JdbcChurn.java).  Then bad input: one line each,
# no branch created.
#
# Uses 127.0.18.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
for c in psql java; do
	command -v $c >/dev/null || { echo "1..0 # SKIP $c is not installed (make deps)"; exit 0; }
done
JAR=/usr/share/java/postgresql.jar
[ -f $JAR ] || { echo "1..0 # SKIP $JAR is missing (make deps: libpostgresql-jdbc-java)"; exit 0; }
B=127.0.18
fleet_up 4 $B --postgres
for u in app japp other newapp; do "$F" psql --dir "$FD" host1 -qc "CREATE ROLE $u LOGIN" >/dev/null; done

J="$T/java"
mkdir -p "$J"
if command -v javac >/dev/null; then
	javac -d "$J" "$ROTOR_SRCDIR/tests/e2e/handoff/JdbcCheck.java" "$ROTOR_SRCDIR/tests/e2e/clients/JdbcChurn.java" || echo "# javac failed"
	jdbc() { java -cp "$J:$JAR" JdbcCheck "$1"; }
	jdbc_churn() { java -cp "$J:$JAR" JdbcChurn "$@"; }
else
	jdbc() { java -cp "$JAR" "$ROTOR_SRCDIR/tests/e2e/handoff/JdbcCheck.java" "$1"; }
	jdbc_churn() { java -cp "$JAR" "$ROTOR_SRCDIR/tests/e2e/clients/JdbcChurn.java" "$@"; }
fi
CHURN_PID=
CHURN12_PID=
trap '[ -z "$CHURN_PID" ] || kill "$CHURN_PID" 2>/dev/null; [ -z "$CHURN12_PID" ] || kill "$CHURN12_PID" 2>/dev/null; fleet_down; rm -rf "$T"' EXIT

fleet_repo 5s
{
	printf 'subject: {O: Example, OU: DBA}\nkey: {type: ec, curve: P-256}\nservers:\n  pg1: {sans: [%s.1]}\n' "$B"
	printf 'clients:\n  - app\n  - japp   # the Java application\n  - other\n'
} > envs/poc/chain.yaml
{
	echo "hosts:"
	pg_server_yaml 1 | sed 's/layout: postgres$/layout: postgres-crl/'
	libpq_client_yaml 2
	printf '  host3:\n    address: %s.3\n    roles:\n      - {role: client, layout: pgjdbc, user: rotorfleet, home: /home/rotorfleet, identity: japp}\n' "$B"
	printf '  host4:\n    address: %s.4\n    roles:\n      - {role: client, layout: pgjdbc-p12, user: rotorfleet, home: /home/rotorfleet, identity: japp}\n' "$B"
} > envs/poc/hosts.yaml
git add -A && git commit -qm "rotor: poc"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001
ok "generation 1 carries its CRLs (root and client CA)" sh -c 'git ls-tree -r --name-only HEAD | grep -c "generations/0001/crl/.*\.crl$" | grep -qx 2'
ok "first apply: files, CRL and the pgjdbc key on the fleet" "$ROTOR" apply --env poc --yes --replace-unknown
"$F" psql --dir "$FD" host1 -qc "ALTER SYSTEM SET ssl_crl_file = '/srv/postgres/certs/root.crl'" >/dev/null
"$F" exec --dir "$FD" host1 runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /srv/postgres/data -s reload
ok "PostgreSQL reads root.crl (ssl_crl_file)" wait_for 10 sh -c '"$1" psql --dir "$2" host1 -Atc "show ssl_crl_file" | grep -qx /srv/postgres/certs/root.crl' _ "$F" "$FD"

H2="$FD/hosts/host2/home/.postgresql"
H3="$FD/hosts/host3/home/.postgresql"
H4="$FD/hosts/host4/home/.postgresql"
P12_URL="jdbc:postgresql://$B.1:5432/postgres?user=japp&sslmode=verify-full&sslkey=$H4/postgresql.p12&sslpassword=&sslrootcert=$H4/root.crt&connectTimeout=5"
libpq() { # user dir [key] -- verify-full as user with the files in dir
	psql "host=$B.1 port=5432 user=$1 dbname=postgres sslmode=verify-full sslcert=$2/postgresql.crt sslkey=${3:-$2/postgresql.key} sslrootcert=$2/root.crt connect_timeout=5" -Atc "select current_user" > "$T/psql.txt" 2>&1
	grep -qx "$1" "$T/psql.txt" || { cat "$T/psql.txt"; return 1; }
}
java_pk8() { # -- the pgjdbc host's files as pgJDBC reads them: the .pk8 with no sslpassword
	jdbc "jdbc:postgresql://$B.1:5432/postgres?user=japp&sslmode=verify-full&sslcert=$H3/postgresql.crt&sslkey=$H3/postgresql.pk8&sslrootcert=$H3/root.crt&connectTimeout=5" > "$T/jdbc.txt" 2>&1
	grep -qx "connected as japp" "$T/jdbc.txt" || { cat "$T/jdbc.txt"; return 1; }
}
java_p12() { # -- the pgjdbc-p12 host's file as pgJDBC reads it: key and chain from the .p12, empty sslpassword
	jdbc "$P12_URL" > "$T/jdbc.txt" 2>&1
	grep -qx "connected as japp" "$T/jdbc.txt" || { cat "$T/jdbc.txt"; return 1; }
}
revoked() { # user dir key -- the server refuses the certificate as revoked
	! libpq "$1" "$2" "$3" && grep -qi "certificate revoked" "$T/psql.txt"
}
merge() { git merge -q --ff-only "$1"; }

ok "pgjdbc layout: postgresql.pk8 is unencrypted PKCS#8 DER, mode 0600" sh -c 'openssl pkey -inform DER -in "$1/postgresql.pk8" -noout && [ "$(stat -c %a "$1/postgresql.pk8")" = 600 ] && ! grep -q BEGIN "$1/postgresql.pk8"' _ "$H3"
expect_out "observe: the DER key matches its certificate" 'postgresql.pk8 +key +0600 [0-9:]+ +key matches' "$ROTOR" observe --env poc
ok "pgjdbc-p12 layout: postgresql.p12 opens with the empty password: japp's key and chain, mode 0600, nothing else" sh -c \
	'openssl pkcs12 -in "$1/postgresql.p12" -passin pass: -nodes -out "$2/p12.pem" && [ "$(stat -c %a "$1/postgresql.p12")" = 600 ] &&
	 [ "$(grep -c "BEGIN CERTIFICATE" "$2/p12.pem")" = 2 ] && grep -q "BEGIN PRIVATE KEY" "$2/p12.pem" &&
	 openssl x509 -in "$2/p12.pem" -noout -subject | grep -q "CN *= *japp" &&
	 [ "$(openssl x509 -in "$2/p12.pem" -noout -pubkey)" = "$(openssl pkey -in "$2/p12.pem" -pubout)" ] &&
	 [ "$(ls "$1")" = "$(printf "postgresql.p12\nroot.crt")" ]; rc=$?; rm -f "$2/p12.pem"; exit $rc' _ "$H4" "$T"
expect_out "observe: the p12's leaf and chain, its key matching" 'postgresql.p12 +leaf\+chain +0600 [0-9:]+ +g1 client japp .*; PKCS#12, key matches' "$ROTOR" observe --env poc
ok "observe --json: form p12, key matches, g1 client japp (schemas/observe.json)" sh -c '"$1" observe --env poc --json > "$2/o.json"' _ "$ROTOR" "$T"
ok "... read back" json_check "$T/o.json" observe '[f for h in d["hosts"] for f in h["files"] if f["path"].endswith("/postgresql.p12")][0]["form"] == "p12" and [f for h in d["hosts"] for f in h["files"] if f["path"].endswith("/postgresql.p12")][0]["key"] == "matches" and [f for h in d["hosts"] for f in h["files"] if f["path"].endswith("/postgresql.p12")][0]["certificates"][0]["name"] == "japp"'
ok "... the CRL file: count 2 and its nextUpdate; null elsewhere" json_check "$T/o.json" observe '[f["crls"] for h in d["hosts"] for f in h["files"] if f["content"] == "crl"][0]["count"] == 2 and __import__("re").fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", [f["crls"] for h in d["hosts"] for f in h["files"] if f["content"] == "crl"][0]["next_update"]) is not None and all(f["crls"] is None for h in d["hosts"] for f in h["files"] if f["content"] != "crl")'
ok "... the CRL's next_update is what openssl reads in it" sh -c 'n=$(openssl crl -in "$1/hosts/host1/srv/postgres/certs/root.crl" -noout -nextupdate | sed "s/nextUpdate=//"); want=$(date -u -d "$n" +%Y-%m-%dT%H:%M:%SZ); /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); f=[f for h in d[\"hosts\"] for f in h[\"files\"] if f[\"content\"]==\"crl\"][0]; sys.exit(f[\"crls\"][\"next_update\"] != sys.argv[2])" "$2/o.json" "$want"' _ "$FD" "$T"
ok "plan: nothing to do (the p12 converges)" sh -c '"$1" plan --env poc --json > "$2/p.json"' _ "$ROTOR" "$T"
ok "... no change (schemas/plan.json)" json_check "$T/p.json" plan 'd["changes"] == 0 and not d["problems"]'
ok "libpq client app connects (verify-full)" libpq app "$H2"
ok "pgJDBC reads the pgjdbc host's .pk8 without sslpassword (verify-full)" java_pk8
ok "pgJDBC reads the pgjdbc-p12 host's .p12 with an empty sslpassword (verify-full)" java_p12

# ---- client add ----
ok "client add newapp --json" sh -c '"$1" client add --env poc newapp --json > "$2/add.json"' _ "$ROTOR" "$T"
ok "... read back (schemas/client.json): generation 1, its branch and commit" json_check "$T/add.json" client \
	'd["action"] == "add" and d["name"] == "newapp" and [g["generation"] for g in d["generations"]] == [1] and d["generations"][0]["revoked_serial"] is None and d["crl_days"] is None and d["branch"] == "rotor/client/poc/add-newapp" and d["commit"] == __import__("subprocess").run(["git", "rev-parse", d["branch"]], capture_output=True, text=True).stdout.strip()'
ok "... one commit on rotor/client/poc/add-newapp, HEAD untouched" sh -c '[ "$(git rev-list --count main..rotor/client/poc/add-newapp)" = 1 ] && [ -z "$(git status --porcelain)" ] && ! grep -q newapp envs/poc/chain.yaml'
merge rotor/client/poc/add-newapp
ok "... chain.yaml names it, its comment kept; the manifest lists it; the key is encrypted" sh -c 'grep -q "^  - newapp$" envs/poc/chain.yaml && grep -q "# the Java application" envs/poc/chain.yaml && grep -q "name: \"newapp\"" envs/poc/generations/0001/manifest.yaml && grep -q "ENCRYPTED PRIVATE KEY" envs/poc/generations/0001/clients/newapp.key'
ok "validate after the merge" "$ROTOR" validate --env poc
sed -i 's/identity: app}/identity: newapp}/' envs/poc/hosts.yaml
git commit -qam "rotor: host2 runs newapp"
ok "apply: host2 gets newapp's certificate" "$ROTOR" apply --env poc --yes
ok "the new client newapp connects (verify-full)" libpq newapp "$H2"

# ---- client remove ----
ok "handoff for other --json (its team keeps its files)" sh -c 'ROTOR_HANDOFF_PASSPHRASE=other-pass-4711 "$1" handoff --env poc --client other --out "$2/other" --plain-key --json > "$2/h.json"' _ "$ROTOR" "$T"
ok "... read back (schemas/handoff.json): other's g1 leaf, every file with its mode and sha256 as on disk" json_check "$T/h.json" handoff \
	'd["client"] == "other" and d["step"] == "stable" and d["choice"] == "next" and d["target"] is None and d["leaf"]["generation"] == 1 and not d["bundle_only"] and {"postgresql.crt", "postgresql.p12", "postgresql.pk8", "root.crt", "truststore.p12"} <= {f["name"] for f in d["files"]} and all(__import__("hashlib").sha256(open(d["out"] + "/" + f["name"], "rb").read()).hexdigest() == f["sha256"] and "%04o" % (__import__("os").stat(d["out"] + "/" + f["name"]).st_mode & 0o7777) == f["mode"] for f in d["files"])'
ok "other connects before its removal" libpq other "$T/other" "$T/other/postgresql.plain.key"
ok "client remove other" "$ROTOR" client remove --env poc other
cp "$T/.out" "$T/rm.txt"
ok "... names the serial it revoked" grep -Eq "generation 1: revoked serial [0-9a-f]+ on crl/client-ca.crl" "$T/rm.txt"
merge rotor/client/poc/remove-other
ok "... the CRL lists other's serial; its certificate and key are gone" sh -c 's=$(openssl x509 -in "$1/postgresql.crt" -noout -serial | sed "s/.*=//"); openssl crl -in envs/poc/generations/0001/crl/client-ca.crl -noout -text | grep -qi "Serial Number: $s" && [ ! -e envs/poc/generations/0001/clients/other.crt ] && [ ! -e envs/poc/generations/0001/clients/other.key ] && ! grep -q other envs/poc/chain.yaml' _ "$T/other"
expect_out "plan: the CRL file is a ~ change on the server" '~ .*/srv/postgres/certs/root.crl' "$ROTOR" plan --env poc
ok "apply the CRL" "$ROTOR" apply --env poc --yes
ok "the removed client is refused: certificate revoked" revoked other "$T/other" "$T/other/postgresql.plain.key"
ok "... while newapp keeps connecting" libpq newapp "$H2"
ok "... and japp over pgJDBC" java_pk8
ok "drift: nothing to report, no CRL expiring" sh -c '"$1" drift --env poc --json > "$2/d.json"; [ $? -eq 0 ]' _ "$ROTOR" "$T"
ok "... crls_expiring 0 (schemas/plan.json)" json_check "$T/d.json" plan 'd["crls_expiring"] == 0'

# ---- drift watches nextUpdate: a CRL valid for 7 days is within renew_before (30d) ----
sed -i 's/^key: /validity: {crl: 7d}\nkey: /' envs/poc/chain.yaml
git commit -qam "rotor: short CRLs"
ok "client crl --json signs every CRL again (7 days)" sh -c '"$1" client crl --env poc --json > "$2/crl.json"' _ "$ROTOR" "$T"
ok "... read back (schemas/client.json): crl, no name, 7 days" json_check "$T/crl.json" client \
	'd["action"] == "crl" and d["name"] is None and d["crl_days"] == 7 and [g["generation"] for g in d["generations"]] == [1] and d["branch"].startswith("rotor/client/poc/crl-")'
git merge -q --ff-only "$(git branch --list 'rotor/client/poc/crl-*' --format '%(refname:short)' | tail -1)"
ok "apply the short CRLs" "$ROTOR" apply --env poc --yes
ok "other is still refused after the CRLs are signed again" revoked other "$T/other" "$T/other/postgresql.plain.key"
expect_out "drift: the CRL near its nextUpdate is a finding" '^CRL expiring on host1 in /srv/postgres/certs/root.crl' "$ROTOR" drift --env poc
ok "... exit 2" sh -c '"$1" drift --env poc >/dev/null; [ $? -eq 2 ]' _ "$ROTOR"
"$ROTOR" drift --env poc --json > "$T/d.json"
ok "... crls_expiring 1 in --json" json_check "$T/d.json" plan 'd["crls_expiring"] == 1'
sed -i '/^validity: {crl: 7d}$/d' envs/poc/chain.yaml
git commit -qam "rotor: CRLs for 180 days"
sleep 1   # the next crl branch is named by the second
"$ROTOR" client crl --env poc >/dev/null && git merge -q --ff-only "$(git branch --list 'rotor/client/poc/crl-*' --format '%(refname:short)' | tail -1)"
ok "apply the 180-day CRLs" "$ROTOR" apply --env poc --yes
ok "drift is quiet again" "$ROTOR" drift --env poc

# ---- a rotation after the removal, under churn from one JVM on the pgjdbc host's files ----
STOP="$T/churn.stop"
jdbc_churn "jdbc:postgresql://$B.1:5432/postgres?user=japp&sslmode=verify-full&sslcert=$H3/postgresql.crt&sslkey=$H3/postgresql.pk8&sslrootcert=$H3/root.crt&connectTimeout=5" "$STOP" > "$T/churn.txt" 2>&1 &
CHURN_PID=$!
STOP12="$T/churn12.stop"
jdbc_churn "$P12_URL" "$STOP12" > "$T/churn12.txt" 2>&1 &
CHURN12_PID=$!
ok "rotate start: generation 2 with its own CRLs" "$ROTOR" rotate start --env poc
merge rotor/rotate/poc/gen-0002
ok "apply the trust step" "$ROTOR" apply --env poc --yes
ok "trust: root.crl holds the CRLs of both generations" sh -c '[ "$(grep -c "BEGIN X509 CRL" "$1/hosts/host1/srv/postgres/certs/root.crl")" = 4 ]' _ "$FD"
ok "trust: other refused" revoked other "$T/other" "$T/other/postgresql.plain.key"
ok "trust: newapp connects" libpq newapp "$H2"
ok "trust: japp over pgJDBC connects" java_pk8
for phase in servers clients stable; do
	"$ROTOR" rotate next --env poc >/dev/null
	merge "$(git branch --list "rotor/rotate/poc/gen-0002-$phase" --format '%(refname:short)')"
	ok "apply phase $phase" "$ROTOR" apply --env poc --yes
	ok "$phase: other refused" sh -c '! psql "host=$1.1 port=5432 user=other dbname=postgres sslmode=verify-full sslcert=$2/postgresql.crt sslkey=$2/postgresql.plain.key sslrootcert=$2/root.crt connect_timeout=5" -Atc "select 1" >/dev/null 2>&1' _ "$B" "$T/other"
	ok "$phase: newapp connects" libpq newapp "$H2"
	ok "$phase: japp over pgJDBC connects" java_pk8
	ok "$phase: japp over pgJDBC with the .p12 connects" java_p12
done
touch "$STOP" "$STOP12"
wait "$CHURN_PID"
CHURN_PID=
wait "$CHURN12_PID"
CHURN12_PID=
echo "# pgJDBC churn (.pk8 + .crt): $(head -n 1 "$T/churn.txt")"
echo "# pgJDBC churn (.p12): $(head -n 1 "$T/churn12.txt")"
# pgJDBC opens sslcert and sslkey separately for every connection, as libpq does, and the pgjdbc
# layout has no switch mode yet (README, the readers table): a connection that opens the
# certificate before the client-leaf renames and the key after them fails. This rotation
# switches the client leaf once, so at most one such failure; more means something else broke.
ok "pgJDBC churn through the whole rotation: connections made, at most the one documented window" sh -c \
	'grep -Eq "^[1-9][0-9]* connections made, [01] failed$" "$1" || { cat "$1"; false; }' _ "$T/churn.txt"
# The .p12 holds key and chain in one file that one rename replaces, and pgJDBC opens it once
# per connection: no window. The server saw both client CAs, so the loop crossed the switch.
ok "pgJDBC churn on the .p12 through the whole rotation: zero failed, at least 20 made, across the switch" sh -c \
	'grep -Eq "^([2-9][0-9]|[1-9][0-9]{2,}) connections made, 0 failed$" "$1" && grep -q "^issuer: .*client CA g1" "$1" && grep -q "^issuer: .*client CA g2" "$1" || { cat "$1"; false; }' _ "$T/churn12.txt"
ok "after the rotation: japp's .p12 is generation 2's" sh -c 'openssl pkcs12 -in "$1/postgresql.p12" -passin pass: -nokeys | openssl x509 -noout -issuer | grep -q "client CA g2$"' _ "$H4"
ok "after the rotation: japp's .pk8 is generation 2's" sh -c 'openssl x509 -in "$1/postgresql.crt" -noout -issuer | grep -q "client CA g2$"' _ "$H3"
ok "after the rotation: root.crl holds generation 2's CRLs only" sh -c '[ "$(grep -c "BEGIN X509 CRL" "$1/hosts/host1/srv/postgres/certs/root.crl")" = 2 ]' _ "$FD"

# ---- bad input: one line each, exit 1, no branch ----
branches() { git branch --list 'rotor/client/*' | wc -l; }
nb=$(branches)
bad() { # regex cmd...
	_re=$1; shift
	"$@" > "$T/bad.txt" 2>&1
	_rc=$?
	[ $_rc -eq 1 ] && [ "$(wc -l < "$T/bad.txt")" -eq 1 ] && grep -Eq "^rotor: $_re" "$T/bad.txt" &&
		[ "$(branches)" = "$nb" ] || { cat "$T/bad.txt"; echo "rc=$_rc"; return 1; }
}
ok "bad: remove an unknown client" bad 'unknown client nobody: it is not in poc.s chain.yaml clients list' "$ROTOR" client remove --env poc nobody
ok "bad: remove a client a host still uses" bad 'client japp is still deployed: host host3 uses it' "$ROTOR" client remove --env poc japp
ok "bad: add a name that cannot be a CN or a user" bad 'invalid client name "app;drop"' "$ROTOR" client add --env poc 'app;drop'
ok "bad: a name starting with a dot" bad 'invalid client name ".app"' "$ROTOR" client add --env poc .app
ok "bad: add a client that exists" bad 'client newapp is already in poc.s chain.yaml' "$ROTOR" client add --env poc newapp
ok "bad: remove without a name" bad 'client remove needs the client.s name' "$ROTOR" client remove --env poc
ok "bad: an unknown subcommand" bad 'unknown client subcommand "rename"' "$ROTOR" client rename --env poc app
ok "bad: a removed client cannot be removed twice" bad 'unknown client other' "$ROTOR" client remove --env poc other

# ---- client remove --json: a client no host uses ----
"$ROTOR" client add --env poc spare >/dev/null && merge rotor/client/poc/add-spare
ok "client remove spare --json" sh -c '"$1" client remove --env poc spare --json > "$2/rm.json"' _ "$ROTOR" "$T"
ok "... read back (schemas/client.json): remove, spare's serial in the generation in service, on its branch" json_check "$T/rm.json" client \
	'd["action"] == "remove" and d["name"] == "spare" and len(d["generations"]) == 1 and len(d["generations"][0]["revoked_serial"] or "") > 0 and d["crl_days"] >= 1 and d["branch"] == "rotor/client/poc/remove-spare" and d["commit"] == __import__("subprocess").run(["git", "rev-parse", d["branch"]], capture_output=True, text=True).stdout.strip()'

done_testing
