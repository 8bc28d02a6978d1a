#!/bin/sh
# provider.sh -- a provider changes the CA of a managed database (the AWS RDS
# runbook).  host1 plays the provider: a real PostgreSQL whose certificate
# this test makes with the openssl command line from a CA rotor does not own
# ("Provider Root CA 2019"); rotor manages host2 (its own PostgreSQL server)
# and host3 (a libpq client whose bundle must verify both).  libpq clients
# reading host3's files churn throughout (tests/e2e/churn):
#
#   1. the provider's CA is committed under envs/poc/trust/ and listed in
#      hosts.yaml (external_cas, external_servers); the first apply puts it
#      in the clients' bundle;
#   2. the provider announces a new CA: committing it is a trust-only change
#      (plan: one bundle changes), apply adds it, newest first;
#   3. negative control: retiring the old CA before the provider switched is
#      refused, naming the provider's server (rotor probes it);
#   4. negative control: a bundle without the old CA, written by hand on the
#      client host, makes connections fail (the churn detects failures);
#      rotor apply writes the right bundle back;
#   5. the provider switches its server to a certificate of the new CA (only
#      now, after rotor applied the new bundles), and the old CA is retired.
#
# 0 failed connections in the churn of 1-2 and of 5.
#
# Uses 127.0.21.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
B=127.0.21
CHURN="$T/churn"
PCERTS="$FD/hosts/host1/srv/postgres/certs"
CL="$FD/hosts/host3/home/.postgresql"
TARGETS="$B.1:5432:$B.1 $B.2:5432:$B.2"
ok "churn builds" sh "$ROTOR_SRCDIR/tests/e2e/churn/build.sh" "$CHURN"
fleet_up 3 $B --postgres
for i in 1 2; do "$F" psql --dir "$FD" host$i -qc "CREATE ROLE app LOGIN" >/dev/null; done

# ---- the provider: its own CAs and server certificate, made here, not by rotor ----
P="$T/provider"
mkdir -p "$P" && cd "$P" || exit 1
x509_root rds2019 "/O=Provider/CN=Provider Root CA 2019"
sleep 1   # not a wait: the new CA's notBefore is one second later, so "newest first" has one answer
x509_root rds2024 "/O=Provider/CN=Provider Root CA 2024"
x509_sign old rds2019 server "/O=Provider/CN=orders.provider" "IP:$B.1"
x509_sign new rds2024 server "/O=Provider/CN=orders.provider" "IP:$B.1"
# RDS authenticates with passwords: no client certificate is asked for (trust stands in for the password).
"$F" psql --dir "$FD" host1 -qc "ALTER SYSTEM SET ssl_ca_file = ''" >/dev/null
"$F" exec --dir "$FD" host1 sh -c 'printf "local all all trust\nhostssl all all 127.0.0.0/8 trust\n" > /srv/postgres/data/pg_hba.conf'
provider_serves() { # old|new
	install -o postgres -g postgres -m 0644 "$P/$1.crt" "$PCERTS/server.crt"
	install -o postgres -g postgres -m 0600 "$P/$1.key" "$PCERTS/server.key"
	"$F" exec --dir "$FD" host1 runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /srv/postgres/data -s reload
}
presents() { # CN of the issuer
	echo | openssl s_client -starttls postgres -connect "$B.1:5432" 2>/dev/null | openssl x509 -noout -issuer | grep -q "CN = $1\$"
}
provider_serves old
ok "the provider presents a certificate of its 2019 CA" wait_for 30 presents "Provider Root CA 2019"

# ---- rotor's repository: host2 a server of ours, host3 a client of both ----
fleet_repo 5s
printf 'subject: {O: Example, OU: DBA}\nkey: {type: ec, curve: P-256}\nservers:\n  pg2: {sans: [%s.2]}\nclients: [app]\n' "$B" > envs/poc/chain.yaml
mkdir -p envs/poc/trust
cp "$P/rds2019.crt" envs/poc/trust/rds-2019.pem
hosts_yaml() { # the external_cas entries
	echo "hosts:"
	pg_server_yaml 2
	libpq_client_yaml 3
	echo "external_cas:"
	cat
	echo "external_servers:"
	echo "  - {name: orders-db, address: $B.1, port: 5432, probe: postgres}"
}
hosts_yaml > envs/poc/hosts.yaml <<YAML
  - {file: trust/rds-2019.pem, bundles: [client]}
YAML
ok "validate" "$ROTOR" validate --worktree
git add -A && git commit -qm "rotor: poc, the provider's CA"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001
ok "first apply" "$ROTOR" apply --env poc --yes --replace-unknown
ok "the client's bundle: generation 1's root and server CA, then the provider's CA" sh -c '
	[ "$(grep -c BEGIN "$1/root.crt")" -eq 3 ] && tail -n +1 "$1/root.crt" | awk "/BEGIN/{n++} n==3" | openssl x509 -noout -subject | grep -q "Provider Root CA 2019"' _ "$CL"
ok "the server's bundle does not hold it (bundles: [client])" sh -c '! grep -q "$(sed -n 2p "$2")" "$1"' _ "$FD/hosts/host2/srv/postgres/certs/root.crt" "$P/rds2019.crt"
expect_out "observe names it as an external CA, not unknown" 'root\.crt +.*external trust/rds-2019\.pem' "$ROTOR" observe --env poc
"$ROTOR" observe --env poc --json > "$T/obs1.json" 2>/dev/null
ok "observe --json: the provider's CA is role external, generation null, named by its file" json_check "$T/obs1.json" observe \
	'[(c["generation"], c["role"], c["name"]) for h in d["hosts"] for f in h["files"] for c in f["certificates"] if "Provider" in c["subject"]] == [(None, "external", "trust/rds-2019.pem")] and all("stable" in h["fits"] for h in d["hosts"])'
ok "in sync, drift clean" "$ROTOR" drift --env poc

# ---- drift probes the provider's server while no bundle changes ----
# A chain of a CA nobody committed, then a leaf of the 2019 CA expiring within renew_before (30 days).
(cd "$P" && x509_root stray "/O=Elsewhere/CN=Uncommitted CA" && x509_sign rogue stray server "/O=Provider/CN=orders.provider" "IP:$B.1" &&
	DAYS=10 x509_sign short rds2019 server "/O=Provider/CN=orders.provider" "IP:$B.1")
presents_leaf() { # old|rogue|short
	[ "$(echo | openssl s_client -starttls postgres -connect "$B.1:5432" 2>/dev/null | openssl x509 -noout -fingerprint -sha256)" = \
	  "$(openssl x509 -in "$P/$1.crt" -noout -fingerprint -sha256)" ]
}
provider_serves rogue
ok "the provider presents a chain of a CA not committed" wait_for 30 presents_leaf rogue
"$ROTOR" drift --env poc > "$T/drift-rogue.txt" 2>&1
ok "drift exits 2: the provider's chain does not verify with the clients' bundle" sh -c '[ "$1" -eq 2 ] &&
	grep -q "^external server orders-db ($2.1:5432) presents leaf .* that the clients. bundle does not verify: " "$3" || { cat "$3"; exit 1; }' _ "$?" "$B" "$T/drift-rogue.txt"
"$ROTOR" drift --env poc --json > "$T/drift-rogue.json" 2>/dev/null
ok "drift --json counts it under external_servers, no change pending" json_check "$T/drift-rogue.json" plan 'd["external_servers"] == 1 and d["expiring"] == 0 and d["changes"] == 0'
provider_serves short
ok "the provider presents a leaf that expires in 10 days" wait_for 30 presents_leaf short
"$ROTOR" drift --env poc > "$T/drift-short.txt" 2>&1
ok "drift exits 2: the provider's certificate expires within renew_before" sh -c '[ "$1" -eq 2 ] &&
	grep -Eq "^expiring external server orders-db \($2.1:5432\): a certificate it presents expires in (9|10) days \(renew_before 30\)" "$3" || { cat "$3"; exit 1; }' _ "$?" "$B" "$T/drift-short.txt"
provider_serves old
ok "the provider presents its 2019 leaf again" wait_for 30 presents_leaf old
ok "drift clean again" "$ROTOR" drift --env poc

# ---- churn: the libpq layout rotor writes on host3, to the provider and to pg2 ----
counts() { sed -n 's/^churn: \([0-9]*\) connections, \([0-9]*\) failed$/\1 \2/p' "$1" | tail -n 1; }
churn_start() { # output
	rm -f "$T/stop"
	"$CHURN" -f "$T/stop" -i 10 -c "$CL" -c "$CL" $TARGETS >"$1" 2>&1 &
	CHURN_PID=$!
}
churn_stop() {
	touch "$T/stop"
	wait "$CHURN_PID"
}
churn_start "$T/churn1.out"

# ---- 2. the provider announces a new CA: a trust-only change ----
cp "$P/rds2024.crt" envs/poc/trust/rds-2024.pem
hosts_yaml > envs/poc/hosts.yaml <<YAML
  - {file: trust/rds-2019.pem, bundles: [client]}
  - {file: trust/rds-2024.pem, bundles: [client]}
YAML
git add -A && git commit -qm "poc: trust the provider's 2024 CA"
"$ROTOR" plan --env poc --detailed-exitcode > "$T/plan-add.txt" 2>&1
ok "plan: exit 2, changes pending" [ $? -eq 2 ]
ok "plan: only the client's bundle changes, the new CA first" sh -c '
	grep -q "Plan: 1 step with changes, 1 file change on 1 host" "$1" &&
	grep -Eq "~ /home/rotorfleet/.postgresql/root.crt +g1 root, g1 server-ca, external trust/rds-2019.pem  =>  g1 root \+ g1 server-ca, external trust/rds-2024.pem, external trust/rds-2019.pem$" "$1"' _ "$T/plan-add.txt"
ok "apply adds it" "$ROTOR" apply --env poc --yes
ok "the client's bundle holds both provider CAs" sh -c '[ "$(grep -c BEGIN "$1/root.crt")" -eq 4 ]' _ "$CL"

# ---- 3. negative control: retiring before the provider switched is refused ----
hosts_yaml > envs/poc/hosts.yaml <<YAML
  - {file: trust/rds-2019.pem, bundles: [client], retired: true}
  - {file: trust/rds-2024.pem, bundles: [client]}
YAML
git commit -qam "poc: retire the provider's 2019 CA (too early)"
"$ROTOR" plan --env poc > "$T/plan-early.txt" 2>&1
ok "plan refuses the retirement, naming the provider's server" sh -c '
	grep -q "x clients at stable cannot verify external server orders-db ($2.1:5432), which presents leaf" "$1" && grep -q "^Refused" "$1"' _ "$T/plan-early.txt" "$B"
fails "apply refuses it too" "$ROTOR" apply --env poc --yes
ok "... and writes nothing" sh -c '[ "$(grep -c BEGIN "$1/root.crt")" -eq 4 ]' _ "$CL"
git reset -q --hard HEAD~1
churn_stop
set -- $(counts "$T/churn1.out")
echo "# churn while the new CA was added: ${1:-?} connections, ${2:-?} failed"
ok "churn made connections to both servers" sh -c '[ "${1:-0}" -ge 20 ] && grep -q "target $2.1:5432 ($2.1): [1-9][0-9]* ok, 0 failed" "$3"' _ "${1:-0}" "$B" "$T/churn1.out"
ok "ZERO failed connections while the new CA was added" sh -c '[ "$1" -eq 0 ] || { head -n 5 "$2"; exit 1; }' _ "${2:-1}" "$T/churn1.out"

# ---- 4. negative control: a bundle without the old CA, by hand, while the provider still uses it ----
cp "$CL/root.crt" "$T/root.good"
awk '/BEGIN/{n++} n!=4' "$T/root.good" > "$T/root.forced"
ok "the forced bundle lacks only the 2019 CA" sh -c '[ "$(grep -c BEGIN "$1")" -eq 3 ] && ! grep -q "$(sed -n 2p "$2")" "$1"' _ "$T/root.forced" "$P/rds2019.crt"
install -o rotorfleet -m 0644 "$T/root.forced" "$CL/root.crt"
"$CHURN" -d 2 -i 10 -c "$CL" $TARGETS > "$T/churn-forced.out" 2>&1
set -- $(counts "$T/churn-forced.out")
echo "# with the old CA forced out of the bundle: ${1:-?} connections, ${2:-?} failed"
ok "forcing the bundle without the old CA makes connections fail" sh -c '[ "${1:-0}" -gt 0 ]' _ "${2:-0}"
ok "... to the provider, on certificate verification" grep -q "FAIL $B.1:5432 .*certificate verify failed" "$T/churn-forced.out"
ok "... and pg2 still answers" grep -q "target $B.2:5432 ($B.2): [1-9][0-9]* ok, 0 failed" "$T/churn-forced.out"
expect_out "plan sees the bundle that lacks it" 'root\.crt +g1 root, g1 server-ca, external trust/rds-2024\.pem  =>  ' "$ROTOR" plan --env poc
ok "apply writes the right bundle back" "$ROTOR" apply --env poc --yes
ok "... which is the bundle before" cmp "$T/root.good" "$CL/root.crt"

# ---- 5. the provider switches only now; then the old CA is retired ----
churn_start "$T/churn2.out"
provider_serves new
ok "the provider presents a certificate of its 2024 CA" wait_for 30 presents "Provider Root CA 2024"
hosts_yaml > envs/poc/hosts.yaml <<YAML
  - {file: trust/rds-2019.pem, bundles: [client], retired: true}
  - {file: trust/rds-2024.pem, bundles: [client]}
YAML
git commit -qam "poc: retire the provider's 2019 CA"
"$ROTOR" plan --env poc > "$T/plan-retire.txt" 2>&1
ok "plan: the retirement changes the client's bundle, nothing breaks" sh -c '
	grep -Eq "root.crt +g1 root, g1 server-ca, external trust/rds-2024.pem, external trust/rds-2019.pem  =>  g1 root \+ g1 server-ca, external trust/rds-2024.pem$" "$1" &&
	grep -q "pairs: every client/server pair verifies during the step" "$1"' _ "$T/plan-retire.txt"
ok "apply retires it" "$ROTOR" apply --env poc --yes
ok "the client's bundle: generation 1 and the 2024 CA" sh -c '[ "$(grep -c BEGIN "$1/root.crt")" -eq 3 ] && ! grep -q "$(sed -n 2p "$2")" "$1/root.crt"' _ "$CL" "$P/rds2019.crt"
ok "in sync" "$ROTOR" plan --env poc --detailed-exitcode
# Removing the retired entry (and its file) is the last, reviewed commit.
hosts_yaml > envs/poc/hosts.yaml <<YAML
  - {file: trust/rds-2024.pem, bundles: [client]}
YAML
git rm -q envs/poc/trust/rds-2019.pem && git commit -qam "poc: forget the provider's 2019 CA"
ok "after the removal: still in sync" "$ROTOR" plan --env poc --detailed-exitcode
churn_stop
set -- $(counts "$T/churn2.out")
echo "# churn while the provider switched and the old CA was retired: ${1:-?} connections, ${2:-?} failed"
ok "churn made connections" [ "${1:-0}" -ge 20 ]
ok "ZERO failed connections while the provider switched and the old CA was retired" sh -c '[ "$1" -eq 0 ] || { head -n 5 "$2"; exit 1; }' _ "${2:-1}" "$T/churn2.out"

# ---- the provider's server does not answer: a retirement cannot be proved, an addition can go on ----
"$F" stop-postgres --dir "$FD" host1 >/dev/null 2>&1
hosts_yaml > envs/poc/hosts.yaml <<YAML
  - {file: trust/rds-2024.pem, bundles: [client], retired: true}
YAML
git commit -qam "poc: retire the 2024 CA while the provider is down"
"$ROTOR" plan --env poc > "$T/plan-down.txt" 2>&1
ok "retiring while the provider's server does not answer: refused, naming it" sh -c '
	grep -q "x external server orders-db ($2.1:5432) did not answer the probe (.*): its chain cannot be checked against the clients. bundle at stable, which retires an external CA" "$1" &&
	grep -q "^Refused" "$1" || { cat "$1"; exit 1; }' _ "$T/plan-down.txt" "$B"
git reset -q --hard HEAD~1
git show HEAD~1:envs/poc/trust/rds-2019.pem > envs/poc/trust/rds-2019.pem
hosts_yaml > envs/poc/hosts.yaml <<YAML
  - {file: trust/rds-2024.pem, bundles: [client]}
  - {file: trust/rds-2019.pem, bundles: [client]}
YAML
git add -A && git commit -qm "poc: trust the 2019 CA again while the provider is down"
"$ROTOR" plan --env poc > "$T/plan-down-add.txt" 2>&1
ok "adding a CA while it does not answer: planned, with a note" sh -c '
	grep -q "note: external server orders-db ($2.1:5432) did not answer the probe (.*): not checked (step stable -> stable retires no external CA)" "$1" &&
	! grep -q "^Refused" "$1" || { cat "$1"; exit 1; }' _ "$T/plan-down-add.txt" "$B"
done_testing
