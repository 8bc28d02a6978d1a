#!/bin/sh
# import.sh -- `rotor import` on a real fleet whose certificates were made
# with the openssl command line (not by rotor): three PostgreSQL-layout
# servers and one libpq client.  The import commits certificates only,
# then rotor sees every host in phase stable and can rotate from there.
# Refusals: a leaf from another CA, an unreachable host, an env that
# already has a generation.
#
# Uses 127.0.10.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
fleet_up 4 127.0.10

# ---- a chain made by hand with the openssl command line ----
C="$T/hand"
mkdir -p "$C"
cd "$C" || exit 1
mkchain() { # prefix
	x509_root "$1root" "/O=Hand/CN=$1hand root"
	x509_sign "$1sca" "$1root" ca "/O=Hand/CN=$1hand server CA"
	x509_sign "$1cca" "$1root" ca "/O=Hand/CN=$1hand client CA"
}
mkchain ""
for i in 1 2 3; do x509_sign "pg$i" sca server "/O=Hand/CN=pg$i" "DNS:pg$i,IP:127.0.10.$i"; done
x509_sign app cca client "/O=Hand/CN=app"
mkchain "other-"
x509_sign other-pg1 other-sca server "/O=Hand/CN=pg1" "DNS:pg1"
ok "the hand-made chain verifies with openssl" openssl verify -CAfile root.crt -untrusted sca.crt -purpose sslserver pg2.crt

install_server() { # host leaf-prefix
	d="$FD/hosts/$1/srv/certs"
	mkdir -p "$d"
	cat "$C/$2.crt" "$C/${2%pg*}sca.crt" > "$d/server.crt"
	cp "$C/$2.key" "$d/server.key"
	chmod 0600 "$d/server.key"
	cat "$C/root.crt" "$C/cca.crt" > "$d/root.crt"
}
for i in 1 2 3; do install_server "host$i" "pg$i"; done
d="$FD/hosts/host4/home/.postgresql"
mkdir -p "$d"
cat "$C/app.crt" "$C/cca.crt" > "$d/postgresql.crt"
cp "$C/app.key" "$d/postgresql.key"
chmod 0600 "$d/postgresql.key"
cat "$C/root.crt" "$C/sca.crt" > "$d/root.crt"

# ---- the state repository ----
fleet_repo 3s
cat > envs/poc/chain.yaml <<'YAML'
subject: {O: Hand}
key: {type: ec, curve: P-256}
servers:
  pg1: {sans: [127.0.10.1]}
  pg2: {sans: [127.0.10.2]}
  pg3: {sans: [127.0.10.3]}
clients: [app]
YAML
{
	echo "hosts:"
	for i in 1 2 3; do
		printf '  host%d:\n    address: 127.0.10.%d\n    roles:\n      - {role: server, layout: postgres, dir: /srv/certs, identity: pg%d, probe: none}\n' $i $i $i
	done
	printf '  host4:\n    address: 127.0.10.4\n    roles:\n      - {role: client, layout: libpq, user: rotorfleet, home: /home/rotorfleet, identity: app}\n'
} > envs/poc/hosts.yaml
git add -A && git commit -qm "rotor: poc"
head_before=$(git rev-parse HEAD)

# ---- refusals first: each leaves the repository as it was ----
cp "$FD/hosts/host2/srv/certs/server.crt" "$T/pg2.saved"
cat "$C/other-pg1.crt" "$C/other-sca.crt" > "$FD/hosts/host2/srv/certs/server.crt"
expect_out "a leaf from another CA is refused" 'host2: .*server.crt.*(CA that issued|does not verify|two CAs)' "$ROTOR" import --env poc
ok "no branch after a refusal" sh -c '! git rev-parse -q --verify refs/heads/rotor/import/poc'
cp "$T/pg2.saved" "$FD/hosts/host2/srv/certs/server.crt"
cp "$C/pg1.key" "$FD/hosts/host3/srv/certs/server.key"
expect_out "a key that does not match is refused" 'host3: /srv/certs/server.key does not hold the key' "$ROTOR" import --env poc
cp "$C/pg3.key" "$FD/hosts/host3/srv/certs/server.key"
"$F" stop-sshd --dir "$FD" host3 >/dev/null
expect_out "an unreachable host is refused" 'import: host3 \(127.0.10.3\).*' "$ROTOR" import --env poc
"$F" start-sshd --dir "$FD" host3 >/dev/null
ok "refusals moved nothing" sh -c '[ "$(git rev-parse HEAD)" = "$1" ] && [ -z "$(git status --porcelain)" ] && [ "$(git branch --list | wc -l)" -eq 1 ]' _ "$head_before"

# ---- the import ----
ok "import" "$ROTOR" import --env poc
B=rotor/import/poc
ok "one commit on a new branch, HEAD untouched" sh -c '[ "$(git rev-parse '$B'^)" = "$1" ] && [ "$(git rev-parse HEAD)" = "$1" ]' _ "$head_before"
ok "certificates only: no key file committed" sh -c '! git ls-tree -r --name-only '$B' | grep -q "\.key$"'
ok "manifest says imported" sh -c 'git show '$B':envs/poc/generations/0001/manifest.yaml | grep -q "^imported: true$"'
ok "rotation.yaml: generation 1, stable" sh -c 'git show '$B':envs/poc/rotation.yaml | grep -q "^generation: 1$" && git show '$B':envs/poc/rotation.yaml | grep -q "^phase: stable$"'
for f in ca/root.crt:root.crt ca/server-ca.crt:sca.crt ca/client-ca.crt:cca.crt servers/pg2.crt:pg2.crt clients/app.crt:app.crt; do
	ok "${f%%:*} is the hand-made ${f#*:}, byte for byte" sh -c '[ "$(git show '$B':envs/poc/generations/0001/$1)" = "$(cat "$2")" ]' _ "${f%%:*}" "$C/${f#*:}"
done
git merge -q --ff-only "$B"
ok "validate after the merge" "$ROTOR" validate --env poc
ok "chain show: generation 1 imported, in service" sh -c '"$1" chain show --env poc | grep -q "generation 0001  in-service  imported"' _ "$ROTOR"
"$ROTOR" observe --env poc --json > "$T/obs.json"
ok "observe: every host fits stable" /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
bad = [(h["name"], h["fits"]) for h in d["hosts"] if h["fits"] != ["stable"]]
print(bad); sys.exit(1 if bad else 0)' "$T/obs.json"
ok "rotate start from the imported generation" "$ROTOR" rotate start --env poc
ok "generation 2 is rotor's own, with keys" sh -c 'git show rotor/rotate/poc/gen-0002:envs/poc/generations/0002/servers/pg1.key | head -1 | grep -q "ENCRYPTED PRIVATE KEY"'
expect_out "a second import is refused" 'already has generation 1' "$ROTOR" import --env poc

done_testing
