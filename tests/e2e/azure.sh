#!/bin/sh
# azure.sh -- the Azure runbook: clients trust a combined bundle of the old
# and the new root, and keep the old root until the provider says it is no
# longer used.  host1 plays the provider: a real PostgreSQL presenting a
# leaf and its intermediate, made here with the openssl command line under
# an old root ("Baltimore CyberTrust Root", here one that expires in 20
# days) and later under a new one ("DigiCert Global Root G2"); rotor owns
# neither.  host2 is a PostgreSQL server of rotor's own chain, host3 a libpq
# client.  Both roots are listed from the start (external_cas); the libpq
# churn on host3's files runs while the provider moves to the new root, and
# nothing fails.  Retiring the old root is refused while the provider still
# presents the old chain, and allowed once it does not; drift reports the
# old root expiring within renew_before until it is retired.
#
# Uses 127.0.22.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
B=127.0.22
CHURN="$T/churn"
PCERTS="$FD/hosts/host1/srv/postgres/certs"
CL="$FD/hosts/host3/home/.postgresql"
TARGETS="$B.1:5432:$B.1 $B.2:5432:$B.2"
ok "churn builds" sh "$ROTOR_SRCDIR/tests/e2e/churn/build.sh" "$CHURN"
fleet_up 3 $B --postgres
for i in 1 2; do "$F" psql --dir "$FD" host$i -qc "CREATE ROLE app LOGIN" >/dev/null; done

# ---- the provider's two roots, intermediates and leaves ----
P="$T/provider"
mkdir -p "$P" && cd "$P" || exit 1
_q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out baltimore.key
_q openssl req -x509 -new -key baltimore.key -subj "/O=Baltimore/CN=Baltimore CyberTrust Root" -days 20 \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out baltimore.crt
sleep 1   # not a wait: the new root's notBefore is one second later, so "newest first" has one answer
x509_root digicert "/O=DigiCert Inc/CN=DigiCert Global Root G2"
x509_sign ms01 baltimore ca "/O=Microsoft Corporation/CN=Microsoft RSA TLS CA 01"
x509_sign az03 digicert ca "/O=Microsoft Corporation/CN=Microsoft Azure RSA TLS Issuing CA 03"
x509_sign old ms01 server "/CN=flex.postgres.database.azure.com" "IP:$B.1"
x509_sign new az03 server "/CN=flex.postgres.database.azure.com" "IP:$B.1"
cat old.crt ms01.crt > old-chain.crt
cat new.crt az03.crt > new-chain.crt
"$F" psql --dir "$FD" host1 -qc "ALTER SYSTEM SET ssl_ca_file = ''" >/dev/null
"$F" exec --dir "$FD" host1 sh -c 'printf "local all all trust\nhostssl all all 127.0.0.0/8 trust\n" > /srv/postgres/data/pg_hba.conf'
provider_serves() { # old|new
	install -o postgres -g postgres -m 0644 "$P/$1-chain.crt" "$PCERTS/server.crt"
	install -o postgres -g postgres -m 0600 "$P/$1.key" "$PCERTS/server.key"
	"$F" exec --dir "$FD" host1 runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /srv/postgres/data -s reload
}
presents() { # CN of the leaf's issuer
	echo | openssl s_client -starttls postgres -connect "$B.1:5432" 2>/dev/null | openssl x509 -noout -issuer | grep -q "CN = $1\$"
}
provider_serves old
ok "the provider presents the chain under Baltimore" wait_for 30 presents "Microsoft RSA TLS CA 01"

# ---- rotor: both roots in the clients' bundle from the start ----
fleet_repo 5s
printf 'subject: {O: Example, OU: DBA}\nkey: {type: ec, curve: P-256}\nservers:\n  pg2: {sans: [%s.2]}\nclients: [app]\n' "$B" > envs/poc/chain.yaml
mkdir -p envs/poc/trust
cp "$P/baltimore.crt" envs/poc/trust/baltimore.pem
cp "$P/digicert.crt" envs/poc/trust/digicert-g2.pem
hosts_yaml() { # retired: for Baltimore
	echo "hosts:"
	pg_server_yaml 2
	libpq_client_yaml 3
	echo "external_cas:"
	echo "  - {file: trust/baltimore.pem, bundles: [client], retired: $1}"
	echo "  - {file: trust/digicert-g2.pem, bundles: [client]}"
	echo "external_servers:"
	echo "  - {name: azure-pg, address: $B.1, port: 5432, probe: postgres}"
}
hosts_yaml false > envs/poc/hosts.yaml
ok "validate" "$ROTOR" validate --worktree
git add -A && git commit -qm "rotor: poc, Azure's combined bundle"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001
ok "first apply" "$ROTOR" apply --env poc --yes --replace-unknown
ok "the combined bundle: our generation, then DigiCert G2 (newest), then Baltimore" sh -c '
	[ "$(grep -c BEGIN "$1/root.crt")" -eq 4 ] &&
	awk "/BEGIN/{c++} c==3" "$1/root.crt" | openssl x509 -noout -subject | grep -q "DigiCert Global Root G2" &&
	awk "/BEGIN/{c++} c==4" "$1/root.crt" | openssl x509 -noout -subject | grep -q "Baltimore CyberTrust Root"' _ "$CL"
"$ROTOR" drift --env poc > "$T/drift1.txt" 2>&1
ok "drift exits 2: Baltimore expires within renew_before" sh -c '[ "$1" -eq 2 ] &&
	grep -Eq "^expiring external CA trust/baltimore.pem: CN=Baltimore CyberTrust Root,O=Baltimore in (19|20) days \(renew_before 30\)" "$2" || { cat "$2"; exit 1; }' _ "$?" "$T/drift1.txt"
ok "... once, not once per host holding it" sh -c '[ "$(grep -c "^expiring" "$1")" -eq 1 ]' _ "$T/drift1.txt"
"$ROTOR" drift --env poc --json > "$T/drift1.json" 2>/dev/null
ok "drift --json counts it as expiring" json_check "$T/drift1.json" plan 'd["expiring"] == 1 and d["unknown_certificates"] == 0'

# ---- the provider moves to the new root while the churn runs ----
counts() { sed -n 's/^churn: \([0-9]*\) connections, \([0-9]*\) failed$/\1 \2/p' "$1" | tail -n 1; }
rm -f "$T/stop"
"$CHURN" -f "$T/stop" -i 10 -c "$CL" -c "$CL" $TARGETS > "$T/churn.out" 2>&1 &
CHURN_PID=$!

hosts_yaml true > envs/poc/hosts.yaml
git commit -qam "poc: retire Baltimore (too early)"
"$ROTOR" plan --env poc > "$T/plan-early.txt" 2>&1
ok "retiring Baltimore while the provider presents its chain: refused, naming the server" sh -c '
	grep -q "x clients at stable cannot verify external server azure-pg ($2.1:5432)" "$1" && grep -q "^Refused" "$1"' _ "$T/plan-early.txt" "$B"
fails "apply refuses it" "$ROTOR" apply --env poc --yes
ok "... and the combined bundle stays" sh -c '[ "$(grep -c BEGIN "$1/root.crt")" -eq 4 ]' _ "$CL"
git reset -q --hard HEAD~1

provider_serves new
ok "the provider presents the chain under DigiCert G2" wait_for 30 presents "Microsoft Azure RSA TLS Issuing CA 03"
hosts_yaml true > envs/poc/hosts.yaml
git commit -qam "poc: retire Baltimore (the provider no longer uses it)"
expect_out "now the retirement is planned" "pairs: every client/server pair verifies during the step" "$ROTOR" plan --env poc
ok "apply retires Baltimore" "$ROTOR" apply --env poc --yes
ok "the bundle: our generation and DigiCert G2" sh -c '[ "$(grep -c BEGIN "$1/root.crt")" -eq 3 ] &&
	! grep -q "$(sed -n 2p "$2")" "$1/root.crt"' _ "$CL" "$P/baltimore.crt"
ok "drift is clean: a retired CA is not reported" "$ROTOR" drift --env poc
touch "$T/stop"
wait "$CHURN_PID"
set -- $(counts "$T/churn.out")
echo "# churn while the provider moved to the new root: ${1:-?} connections, ${2:-?} failed"
ok "churn made connections to both servers" sh -c '[ "${1:-0}" -ge 20 ] && grep -q "target $2.1:5432 ($2.1): [1-9][0-9]* ok, 0 failed" "$3"' _ "${1:-0}" "$B" "$T/churn.out"
ok "ZERO failed connections while the provider moved to the new root" sh -c '[ "$1" -eq 0 ] || { head -n 5 "$2"; exit 1; }' _ "${2:-1}" "$T/churn.out"

# ---- proof that the combined bundle mattered: without DigiCert G2 the new chain fails ----
awk '/BEGIN/{c++} c!=3' "$CL/root.crt" > "$T/root.forced"
install -o rotorfleet -m 0644 "$T/root.forced" "$CL/root.crt"
"$CHURN" -d 2 -i 10 -c "$CL" $TARGETS > "$T/churn-forced.out" 2>&1
set -- $(counts "$T/churn-forced.out")
echo "# without the new root: ${1:-?} connections, ${2:-?} failed"
ok "a bundle without the new root makes connections to the provider fail" sh -c '[ "$1" -gt 0 ] && grep -q "FAIL $2.1:5432 .*certificate verify failed" "$3"' _ "${2:-0}" "$B" "$T/churn-forced.out"
ok "apply writes the bundle back" "$ROTOR" apply --env poc --yes
ok "in sync" "$ROTOR" plan --env poc --detailed-exitcode
done_testing
