#!/bin/sh
# handoff.sh -- `rotor handoff` with real clients from Debian's packages on
# a fleet PostgreSQL server: psql (libpq) with the PEM files and the
# encrypted PEM key, pgJDBC (libpostgresql-jdbc-java) with the .pk8 and
# with the .p12, both with sslmode=verify-full, and keytool listing every
# CA of the Java trust store; before a rotation, at its trust step (the
# new bundle with the certificate in service), at servers (the next
# hand-off: the new certificate), and after it.  Then bad input: one
# line each, nothing written.
#
# Uses 127.0.16.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
for c in psql java keytool; do
	command -v $c >/dev/null || { echo "1..0 # SKIP $c is not installed (make deps)"; exit 0; }
done
JAR=/usr/share/java/postgresql.jar
[ -f $JAR ] || { echo "1..0 # SKIP $JAR is missing (make deps: libpostgresql-jdbc-java)"; exit 0; }
B=127.0.16
fleet_up 1 $B --postgres
"$F" psql --dir "$FD" host1 -qc "CREATE ROLE app LOGIN" >/dev/null

# The Java client: compiled when a JDK is there, else Java 11+'s single-file launch.
J="$T/java"
mkdir -p "$J"
if command -v javac >/dev/null; then
	javac -d "$J" "$ROTOR_SRCDIR/tests/e2e/handoff/JdbcCheck.java" || echo "# javac failed"
	jdbc() { java -cp "$J:$JAR" JdbcCheck "$1"; }
else
	jdbc() { java -cp "$JAR" "$ROTOR_SRCDIR/tests/e2e/handoff/JdbcCheck.java" "$1"; }
fi

fleet_repo 5s
pg_chain_yaml > envs/poc/chain.yaml
{
	echo "hosts:"
	pg_server_yaml 1
	echo "external:"
	echo "  - {name: reports, trusts: server, trusts_target: false}"
} > envs/poc/hosts.yaml
git add -A && git commit -qm "rotor: poc"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001
ok "first apply: generation 1 on the server" "$ROTOR" apply --env poc --yes --replace-unknown

PASS=handoff-pass-4711
O="$T/out"
mkdir -p "$O"
(umask 077 && echo "$PASS" > "$T/pass")

psql_pem() { # dir -- libpq with the PEM files, the key decrypted with sslpassword
	psql "host=$B.1 port=5432 user=app dbname=postgres sslmode=verify-full sslcert=$1/postgresql.crt sslkey=$1/postgresql.key sslpassword=$PASS sslrootcert=$1/root.crt connect_timeout=5" -Atc "select current_user" | grep -qx app
}
jdbc_pk8() { # dir
	jdbc "jdbc:postgresql://$B.1:5432/postgres?user=app&sslmode=verify-full&sslcert=$1/postgresql.crt&sslkey=$1/postgresql.pk8&sslpassword=$PASS&sslrootcert=$1/root.crt&connectTimeout=5" > "$T/jdbc.txt" 2>&1; grep -qx "connected as app" "$T/jdbc.txt" || { cat "$T/jdbc.txt"; return 1; }
}
jdbc_p12() { # dir
	jdbc "jdbc:postgresql://$B.1:5432/postgres?user=app&sslmode=verify-full&sslkey=$1/postgresql.p12&sslpassword=$PASS&sslrootcert=$1/root.crt&connectTimeout=5" > "$T/jdbc.txt" 2>&1; grep -qx "connected as app" "$T/jdbc.txt" || { cat "$T/jdbc.txt"; return 1; }
}
keytool_cas() { # dir count -- the trust store lists exactly count trusted certificates, every one of root.crt
	keytool -list -keystore "$1/truststore.p12" -storetype PKCS12 -storepass "$PASS" > "$T/keytool.txt" 2>&1 || return 1
	[ "$(grep -c trustedCertEntry "$T/keytool.txt")" -eq "$2" ] || { cat "$T/keytool.txt"; return 1; }
	_fps=$(awk '/BEGIN CERT/{f=1;c=""} f{c=c $0 "\n"} /END CERT/{f=0; print c | "openssl x509 -noout -fingerprint -sha256"; close("openssl x509 -noout -fingerprint -sha256")}' "$1/root.crt" | sed 's/.*=//')
	[ "$(echo "$_fps" | wc -l)" -eq "$2" ] || return 1
	for _fp in $_fps; do grep -q "$_fp" "$T/keytool.txt" || { echo "missing $_fp"; return 1; }; done
}
files_are() { # dir files... -- exactly these files (and README.txt, SHA256SUMS), checksums right, modes right
	_d=$1; shift
	[ "$(ls "$_d" | sort | tr '\n' ' ')" = "$(printf '%s\n' "$@" README.txt SHA256SUMS | sort | tr '\n' ' ')" ] || { ls "$_d"; return 1; }
	(cd "$_d" && sha256sum -c --quiet SHA256SUMS) || return 1
	[ "$(stat -c %a "$_d")" = 700 ] || return 1
	for _k in postgresql.key postgresql.pk8 postgresql.p12; do
		[ ! -e "$_d/$_k" ] || [ "$(stat -c %a "$_d/$_k")" = 600 ] || { echo "$_k mode"; return 1; }
	done
}
leaf_gen() { # dir gen -- the client certificate's issuer is the client CA of generation gen
	openssl x509 -in "$1/postgresql.crt" -noout -issuer | grep -q "client CA g$2\$"
}
ALL="postgresql.crt postgresql.key postgresql.pk8 postgresql.p12 root.crt truststore.p12"

# ---- before a rotation ----
ok "handoff before a rotation (passphrase from a file)" "$ROTOR" handoff --env poc --client app --out "$O/g1" --passphrase-file "$T/pass"
cp "$T/.out" "$T/h.txt"
ok "... says generation 1, no rotation under way" grep -q "generation 1, no rotation under way" "$T/h.txt"
ok "... names the desired commit it read (the local main: no remote)" grep -q "^desired: the local main at $(git rev-parse --short=12 main) (no remote" "$T/h.txt"
ok "... no passphrase in the output or README" sh -c '! grep -rq "$1" "$2/g1/README.txt" "$3"' _ "$PASS" "$O" "$T/h.txt"
ok "... the files, SHA256SUMS verifies, dir 0700, keys 0600" files_are "$O/g1" $ALL
ok "... README names the server address and the settings" sh -c 'grep -q "host1  $2.1 port 5432" "$1" && grep -q "sslmode=verify-full" "$1" && grep -q "jdbc:postgresql://$2.1:5432/" "$1"' _ "$O/g1/README.txt" "$B"
ok "before: psql (libpq) verify-full with the PEM files and the encrypted key" psql_pem "$O/g1"
ok "before: pgJDBC verify-full with the .pk8" jdbc_pk8 "$O/g1"
ok "before: pgJDBC verify-full with the .p12" jdbc_p12 "$O/g1"
ok "before: keytool lists both CAs of the trust store" keytool_cas "$O/g1" 2
ok "plain key only with --plain-key" sh -c 'ROTOR_HANDOFF_PASSPHRASE="$3" "$1" handoff --env poc --client app --out "$2/plain" --plain-key >/dev/null &&
	openssl pkey -in "$2/plain/postgresql.plain.key" -noout && [ "$(stat -c %a "$2/plain/postgresql.plain.key")" = 600 ] &&
	[ ! -e "$2/g1/postgresql.plain.key" ]' _ "$ROTOR" "$O" "$PASS"
rm -rf "$O/plain"

# ---- the trust step: the new bundle, the certificate in service ----
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0002
ok "apply the trust step" "$ROTOR" apply --env poc --yes
ok "handoff at phase trust (default: next)" env ROTOR_HANDOFF_PASSPHRASE="$PASS" "$ROTOR" handoff --env poc --client app --out "$O/trust"
cp "$T/.out" "$T/h.txt"
ok "... step trust of rotation 1 -> 2" grep -q "step trust of rotation 1 -> 2 (--step next)" "$T/h.txt"
ok "... the certificate in service, the bundle of both" sh -c 'openssl x509 -in "$1/postgresql.crt" -noout -issuer | grep -q "client CA g1$" && [ "$(grep -c "BEGIN CERT" "$1/root.crt")" -eq 4 ]' _ "$O/trust"
ok "trust: psql with the PEM files" psql_pem "$O/trust"
ok "trust: pgJDBC with the .pk8" jdbc_pk8 "$O/trust"
ok "trust: pgJDBC with the .p12" jdbc_p12 "$O/trust"
ok "trust: keytool lists all four CAs" keytool_cas "$O/trust" 4
ok "an external peer at the trust step: the bundle only" sh -c 'ROTOR_HANDOFF_PASSPHRASE="$1" "$2" handoff --env poc --client reports --out "$3/reports" > "$4" && grep -q "trust bundle only" "$4"' _ "$PASS" "$ROTOR" "$O" "$T/reports.txt"
ok "... root.crt, truststore.p12, README.txt, SHA256SUMS" files_are "$O/reports" root.crt truststore.p12
ok "... its README gives the libpq and Java trust settings" sh -c 'grep -q "sslrootcert=$1/root.crt" "$1/README.txt" && grep -q "javax.net.ssl.trustStore=$1/truststore.p12" "$1/README.txt"' _ "$O/reports"

# The team installed the bundle: a reviewed commit records it (the gate of the servers step).
sed -i 's/trusts_target: false/trusts_target: true/' envs/poc/hosts.yaml
git commit -qam "rotor: reports trusts generation 2"

# ---- the servers step: what the client moves to next is the new certificate ----
sed -i 's/^phase: trust$/phase: servers/' envs/poc/rotation.yaml
git commit -qam "rotor: poc phase servers"
ok "apply the servers step" "$ROTOR" apply --env poc --yes
ok "handoff at phase servers (default: next = clients)" "$ROTOR" handoff --env poc --client app --out "$O/clients" --passphrase-file "$T/pass"
cp "$T/.out" "$T/h.txt"
ok "... step clients, the certificate of generation 2" sh -c 'grep -q "step clients of rotation 1 -> 2" "$1" && openssl x509 -in "$2/postgresql.crt" -noout -issuer | grep -q "client CA g2$"' _ "$T/h.txt" "$O/clients"
ok "servers: psql with the new certificate (the servers accept both)" psql_pem "$O/clients"
ok "servers: pgJDBC .pk8 with the new certificate" jdbc_pk8 "$O/clients"
ok "servers: the trust-step hand-off still connects" psql_pem "$O/trust"
ok "--step current at phase servers: the certificate in service" sh -c '"$1" handoff --env poc --client app --out "$2/cur" --passphrase-file "$3" --step current | grep -q "step servers of rotation 1 -> 2 (--step current)" && openssl x509 -in "$2/cur/postgresql.crt" -noout -issuer | grep -q "client CA g1$"' _ "$ROTOR" "$O" "$T/pass"
rm -rf "$O/cur"

# ---- the end of the rotation ----
sed -i -e 's/^generation: 1$/generation: 2/' -e '/^target:/d' -e 's/^phase: servers$/phase: stable/' envs/poc/rotation.yaml
git commit -qam "rotor: poc to generation 2"
ok "apply the rest of the rotation" "$ROTOR" apply --env poc --yes
ok "handoff after the rotation" "$ROTOR" handoff --env poc --client app --out "$O/g2" --passphrase-file "$T/pass"
cp "$T/.out" "$T/h.txt"
ok "... generation 2, bundle of generation 2 only" sh -c 'grep -q "generation 2, no rotation under way" "$1" && [ "$(grep -c "BEGIN CERT" "$2/root.crt")" -eq 2 ] && openssl x509 -in "$2/postgresql.crt" -noout -issuer | grep -q "client CA g2$"' _ "$T/h.txt" "$O/g2"
ok "after: psql with the PEM files" psql_pem "$O/g2"
ok "after: pgJDBC with the .pk8" jdbc_pk8 "$O/g2"
ok "after: pgJDBC with the .p12" jdbc_p12 "$O/g2"
ok "after: keytool lists both CAs" keytool_cas "$O/g2" 2
ok "after: the clients-step hand-off (generation 2 certificate) still connects" psql_pem "$O/clients"
fails "the test can fail: generation 1's hand-off no longer connects" psql_pem "$O/g1"

# ---- bad input: one line each, exit 1, nothing written ----
SECRET=$(cat "$HOME"/.config/rotor/keys/*.key)
mkdir "$O/exists"
before=$(ls -A "$O" | tr '\n' ' ')
bad() { # regex cmd... -- one line "rotor: ..." matching regex, exit 1, nothing new in $O
	_re=$1; shift
	"$@" > "$T/bad.txt" 2>&1
	_rc=$?
	[ $_rc -eq 1 ] && [ "$(wc -l < "$T/bad.txt")" -eq 1 ] && grep -Eq "^rotor: $_re" "$T/bad.txt" &&
		[ "$(ls -A "$O" | tr '\n' ' ')" = "$before" ] && [ -z "$(ls -A "$O/exists")" ] || { cat "$T/bad.txt"; return 1; }
}
ok "bad: an unknown client" bad 'no client "nobody" in envs/poc \(chain.yaml clients and hosts.yaml external peers: app, reports \(external\)\)$' \
	"$ROTOR" handoff --env poc --client nobody --out "$O/x" --passphrase-file "$T/pass"
ok "bad: no passphrase" bad 'no hand-off passphrase' "$ROTOR" handoff --env poc --client app --out "$O/x"
ok "bad: --ref with --no-fetch" bad 'give --ref or --no-fetch, not both' \
	"$ROTOR" handoff --env poc --client app --out "$O/x" --passphrase-file "$T/pass" --no-fetch --ref HEAD
ok "bad: the output directory exists" bad '.*/exists exists; refusing to overwrite it' \
	"$ROTOR" handoff --env poc --client app --out "$O/exists" --passphrase-file "$T/pass"
ok "bad: a name that cannot be a common name or a database user" bad '"app;drop" cannot be a client' \
	"$ROTOR" handoff --env poc --client 'app;drop' --out "$O/x" --passphrase-file "$T/pass"
ok "bad: a name starting with a dash" bad '"-app" cannot be a client' \
	"$ROTOR" handoff --env poc --client=-app --out "$O/x" --passphrase-file "$T/pass"
ok "bad: the passphrase is the repository's secret" bad "the hand-off passphrase is the repository's secret key" \
	env ROTOR_HANDOFF_PASSPHRASE="$SECRET" "$ROTOR" handoff --env poc --client app --out "$O/x"
(cp "$T/pass" "$T/pass644" && chmod 644 "$T/pass644")
ok "bad: a passphrase file readable by others" bad '.*: the passphrase file is accessible by group or others' \
	"$ROTOR" handoff --env poc --client app --out "$O/x" --passphrase-file "$T/pass644"
ok "bad: a short passphrase" bad 'the hand-off passphrase must be 8 to 1024 bytes' env ROTOR_HANDOFF_PASSPHRASE=short "$ROTOR" handoff --env poc --client app --out "$O/x"
ok "bad: an unknown --step" bad '--step must be next, current or target' \
	"$ROTOR" handoff --env poc --client app --out "$O/x" --passphrase-file "$T/pass" --step later
ok "bad: the passphrase on the command line is no option" bad 'unknown option "--passphrase"' \
	"$ROTOR" handoff --env poc --client app --out "$O/x" --passphrase "$PASS"
ok "no temporary directory left behind" sh -c '! ls -A "$1" | grep -q rotor-tmp' _ "$O"
done_testing
