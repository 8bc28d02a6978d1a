#!/bin/sh
# cli.sh -- rotor init / validate / rotate start / chain show end to end,
# on real git repositories, checked with the git and openssl command lines.
. "$(dirname "$0")/lib.sh"

R="$T/repo"
KEY="$HOME/.config/rotor/keys/repo.key"
mkdir -p "$R"
cd "$R" || exit 1
git init -q .

# ---- the command line itself ----
ok "--help lists the commands" sh -c '"$ROTOR" --help | grep -q "rotate "'
ok "--version" sh -c '"$ROTOR" --version | grep -q "^rotor "'
ok "help init explains init" sh -c '"$ROTOR" help init | grep -q "usage: rotor init"'
expect_out "unknown command is one rotor: line" '^rotor: unknown command "frobnicate"' "$ROTOR" frobnicate
fails "unknown command exits non-zero" "$ROTOR" frobnicate
expect_out "unknown option named" '^rotor: unknown option "--bogus"' "$ROTOR" validate --bogus
expect_out "observe -j 0 names -j" '^rotor: -j must be a number from 1 to 1024, not "0"$' "$ROTOR" observe --env poc -j 0
expect_out "observe --parallel 0 names --parallel" '^rotor: --parallel must be a number from 1 to 1024, not "0"$' "$ROTOR" observe --env poc --parallel 0
expect_out "apply -j 0 names -j" '^rotor: -j must be a number from 1 to 1024, not "0"$' "$ROTOR" apply --env poc -j 0
expect_out "apply --parallel=0 names --parallel" '^rotor: --parallel must be a number from 1 to 1024, not "0"$' "$ROTOR" apply --env poc --parallel=0
expect_out "apply -j and --parallel together refused" '^rotor: give -j or --parallel, not both$' "$ROTOR" apply --env poc -j 2 --parallel 3
expect_out "outside a repository" '^rotor: .*not a git repository' "$ROTOR" --repo "$T" init
expect_out "unborn HEAD: validate says so" 'no commits yet' "$ROTOR" validate

# ---- init ----
ok "init creates the scaffold" "$ROTOR" init --env poc
ok "rotor.yaml exists" test -f rotor.yaml
ok "env files exist" test -f envs/poc/chain.yaml -a -f envs/poc/hosts.yaml -a -f envs/poc/rotation.yaml
ok "key file created" test -f "$KEY"
ok "key file mode 0600" sh -c '[ "$(stat -c %a "$1")" = 600 ]' _ "$KEY"
ok "key file holds 64 hex digits" sh -c 'grep -Eq "^[0-9a-f]{64}$" "$1" && [ "$(wc -c <"$1")" -eq 65 ]' _ "$KEY"
ok "rotor.yaml records the key path" grep -q 'key_file: "~/.config/rotor/keys/repo.key"' rotor.yaml
ok "scaffold validates in the work tree" "$ROTOR" validate --worktree
sum_before=$(cat rotor.yaml envs/poc/*.yaml "$KEY" | sha256sum)
expect_out "second init refuses" '^rotor: envs/poc exists' "$ROTOR" init --env poc
ok "second init changed nothing" sh -c '[ "$(cat rotor.yaml envs/poc/*.yaml "$1" | sha256sum)" = "$2" ]' _ "$KEY" "$sum_before"
ok "init --env test adds an env" "$ROTOR" init --env test
ok "rotor.yaml untouched by the second env" sh -c '[ "$(cat rotor.yaml envs/poc/*.yaml "$1" | sha256sum)" = "$2" ]' _ "$KEY" "$sum_before"
expect_out "bad env name refused" 'invalid environment name' "$ROTOR" init --env 'Bad/../x'
mkdir -p "$T/other" && (cd "$T/other" && git init -q .)
expect_out "key inside the repository refused" 'inside the repository' \
	"$ROTOR" --repo "$T/other" init --key-file "$T/other/secret.key"
ok "refused init left nothing behind" sh -c '[ -z "$(ls -A "$1" | grep -v "^.git$")" ]' _ "$T/other"
expect_out "existing key file refused" 'exists; refusing to overwrite' \
	"$ROTOR" --repo "$T/other" init --key-file "$KEY"
ok "refused init kept the key" sh -c '[ "$(cat rotor.yaml envs/poc/*.yaml "$1" | sha256sum)" = "$2" ]' _ "$KEY" "$sum_before"

# What init's hosts.yaml comments show, uncommented: the roles and the external CA and server validate.
cp envs/poc/hosts.yaml "$T/hosts.init"
{ sed -n '/^# hosts:$/,/^#$/p' "$T/hosts.init"; sed -n '/^# external_cas:$/,/^#$/p' "$T/hosts.init"; } |
	sed 's/^# \{0,1\}//' > envs/poc/hosts.yaml
ok "init's comments hold a hosts.yaml example with external_cas and external_servers" sh -c '
	grep -q "^hosts:" "$1" && grep -q "^external_cas:" "$1" && grep -q "^external_servers:" "$1"' _ envs/poc/hosts.yaml
mkdir -p envs/poc/trust
(cd envs/poc/trust && x509_root provider-ca "/O=Provider/CN=Provider Root CA" && rm provider-ca.key && mv provider-ca.crt provider-ca.pem)
ok "... which validates, the external CA file it names committed as a CA certificate" "$ROTOR" validate --worktree
rm -r envs/poc/trust && cp "$T/hosts.init" envs/poc/hosts.yaml

# A chain with two servers (one with IP SANs) and three clients.
cat > envs/poc/chain.yaml <<'YAML'
subject: {C: NL, O: Example, OU: DBA}
key: {type: ec, curve: P-256}
validity: {root: 10y, intermediate: 5y, leaf: 397d}
renew_before: 30d
servers:
  pg1: {sans: [pg1.example.net, 10.0.0.11]}
  pg2: {sans: [pg2.example.net, "::1"]}
clients: [postgres, app_rw, replicator]
YAML
git add -A && git commit -qm "rotor: init"
ok "validate at HEAD" "$ROTOR" validate
ok "validate --env poc" "$ROTOR" validate --env poc

# ---- rotate start: the first chain ----
head_before=$(git rev-parse HEAD)
idx_before=$(sha256sum .git/index)
ok "rotate start (first chain)" "$ROTOR" rotate start --env poc
B1=rotor/rotate/poc/gen-0001
ok "branch $B1 created" git rev-parse -q --verify "refs/heads/$B1"
ok "HEAD unchanged" sh -c '[ "$(git rev-parse HEAD)" = "$1" ]' _ "$head_before"
ok "still on main" sh -c '[ "$(git symbolic-ref --short HEAD)" = main ]'
ok "index unchanged" sh -c '[ "$(sha256sum .git/index)" = "$1" ]' _ "$idx_before"
ok "work tree clean" sh -c '[ -z "$(git status --porcelain)" ]'
ok "one commit on top of main" sh -c '[ "$(git rev-list --count main..'$B1')" = 1 ] && [ "$(git rev-parse '$B1'^)" = "$1" ]' _ "$head_before"
ok "rotation.yaml: generation 1, stable" sh -c 'git show '$B1':envs/poc/rotation.yaml | grep -q "^generation: 1$" && git show '$B1':envs/poc/rotation.yaml | grep -q "^phase: stable$" && ! git show '$B1':envs/poc/rotation.yaml | grep -q "^target:"'

G="$T/gen1"
mkdir -p "$G/ca" "$G/servers" "$G/clients" "$G/crl"
for f in $(git ls-tree -r --name-only "$B1" envs/poc/generations/0001); do
	git show "$B1:$f" > "$G/${f#envs/poc/generations/0001/}"
done
ok "manifest committed" test -s "$G/manifest.yaml"
ok "root CN carries the generation" sh -c 'openssl x509 -in "$1/ca/root.crt" -noout -subject | grep -q "CN *= *poc root g1"' _ "$G"
for s in pg1 pg2; do
	ok "openssl verify sslserver $s" openssl verify -CAfile "$G/ca/root.crt" -untrusted "$G/ca/server-ca.crt" -purpose sslserver "$G/servers/$s.crt"
	fails "server leaf $s is not a client cert" openssl verify -CAfile "$G/ca/root.crt" -untrusted "$G/ca/server-ca.crt" -purpose sslclient "$G/servers/$s.crt"
done
for c in postgres app_rw replicator; do
	ok "openssl verify sslclient $c" openssl verify -CAfile "$G/ca/root.crt" -untrusted "$G/ca/client-ca.crt" -purpose sslclient "$G/clients/$c.crt"
	ok "client CN is the user $c" sh -c 'openssl x509 -in "$1" -noout -subject | grep -q "CN *= *$2"' _ "$G/clients/$c.crt" "$c"
done
ok "pg1 SANs typed: DNS and IP" sh -c 'openssl x509 -in "$1" -noout -ext subjectAltName | grep -q "DNS:pg1, DNS:pg1.example.net, IP Address:10.0.0.11"' _ "$G/servers/pg1.crt"
ok "client leaf from the server CA is rejected" sh -c '! openssl verify -CAfile "$1/ca/root.crt" -untrusted "$1/ca/server-ca.crt" -purpose sslclient "$1/clients/postgres.crt"' _ "$G"
for k in ca/root.key ca/server-ca.key servers/pg1.key clients/app_rw.key; do
	ok "$k is an encrypted PKCS#8 key" sh -c 'head -n1 "$1" | grep -q "^-----BEGIN ENCRYPTED PRIVATE KEY-----$"' _ "$G/$k"
	ok "$k decrypts with the key file" sh -c 'openssl pkey -in "$1" -passin "file:$2" -noout' _ "$G/$k" "$KEY"
done
ok "server key matches its certificate" sh -c '[ "$(openssl pkey -in "$1/servers/pg1.key" -passin "file:$2" -pubout)" = "$(openssl x509 -in "$1/servers/pg1.crt" -noout -pubkey)" ]' _ "$G" "$KEY"
ok "manifest fingerprint equals openssl's" sh -c 'fp=$(openssl x509 -in "$1/servers/pg2.crt" -noout -fingerprint -sha256 | cut -d= -f2); grep -q "$fp" "$1/manifest.yaml"' _ "$G"
expect_out "second start before merging: branch exists" "branch $B1 exists" "$ROTOR" rotate start --env poc

# ---- merge, then the second generation ----
git merge -q --ff-only "$B1"
ok "chain show lists generation 1 in service" sh -c '"$ROTOR" chain show --env poc | grep -q "generation 0001  in-service"'
ok "chain show --json validates against its schema" sh -c '"$ROTOR" chain show --env poc --json > "$1/show.json" && /usr/bin/python3 -c "
import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))
d = json.load(open(sys.argv[1]))
assert d[\"rotation\"][\"generation\"] == 1 and len(d[\"generations\"][0][\"certificates\"]) == 8, d
assert all(c[\"matches_manifest\"] for c in d[\"generations\"][0][\"certificates\"])
" "$1/show.json" "$2/schemas/chain-show.json"' _ "$T" "$ROTOR_SRCDIR"
ok "rotate start (generation 2)" "$ROTOR" rotate start --env poc
B2=rotor/rotate/poc/gen-0002
ok "rotation.yaml: 1 -> 2, phase trust" sh -c 'r=$(git show '$B2':envs/poc/rotation.yaml); echo "$r" | grep -q "^generation: 1$" && echo "$r" | grep -q "^target: 2$" && echo "$r" | grep -q "^phase: trust$"'
ok "root g2 differs from root g1" sh -c '[ "$(git show '$B2':envs/poc/generations/0002/ca/root.crt)" != "$(git show '$B2':envs/poc/generations/0001/ca/root.crt)" ] && git show '$B2':envs/poc/generations/0002/ca/root.crt | openssl x509 -noout -subject | grep -q "poc root g2"'
ok "generation 1 untouched by generation 2" sh -c '[ -z "$(git diff main '$B2' -- envs/poc/generations/0001)" ]'
git merge -q --ff-only "$B2"
expect_out "rotation in progress refused" 'rotation of poc is in progress \(generation 1 to 2, phase trust\)' "$ROTOR" rotate start --env poc
ok "chain show marks the target" sh -c '"$ROTOR" chain show --env poc | grep -q "generation 0002  target"'

# ---- refusals change nothing ----
refs() { git for-each-ref | grep -v refs/heads/next | sha256sum; }
# From generation 1 in service, with the merged branches gone, a start would proceed.
git branch -q -D "$B1" "$B2"
git checkout -q -b next main~1
refs_before=$(refs)
echo "# local edit" >> envs/poc/chain.yaml
expect_out "dirty work tree refused, path named" '^rotor: envs/poc/chain.yaml has uncommitted changes' "$ROTOR" rotate start --env poc
git checkout -q -- envs/poc/chain.yaml
git checkout -q --detach
expect_out "detached HEAD refused" '^rotor: HEAD is detached' "$ROTOR" rotate start --env poc
git checkout -q next
mv "$KEY" "$KEY.saved"
expect_out "missing key file: one clear line" "^rotor: .*repo.key" "$ROTOR" rotate start --env poc
mv "$KEY.saved" "$KEY"
chmod 0644 "$KEY"
expect_out "key file readable by others refused" '^rotor: .*repo.key' "$ROTOR" rotate start --env poc
chmod 0600 "$KEY"
cp "$KEY" "$T/key.saved"
printf '%064d\n' 0 > "$KEY"
expect_out "wrong secret refused by key id" 'is not this repository' "$ROTOR" rotate start --env poc
sed -i '/key_id:/d' rotor.yaml
git commit -qam "no key id"
refs_before=$(refs)
expect_out "wrong secret refused: generation 1's root key does not decrypt" 'does not decrypt envs/poc/generations/0001/ca/root.key' "$ROTOR" rotate start --env poc
cp "$T/key.saved" "$KEY"
printf 'servers: {pg1: {sans: [not_a_host!]}}\nbogus: 1\n' >> envs/poc/chain.yaml
git commit -qam "break chain.yaml"
expect_out "invalid chain.yaml refused with file:line:column" '^envs/poc/chain.yaml:[0-9]+:[0-9]+: ' "$ROTOR" rotate start --env poc
ok "refusals created no branch and moved no ref" sh -c '[ "$(git for-each-ref | grep -v refs/heads/next | sha256sum)" = "$1" ]' _ "$refs_before"
ok "no generation 2 branch was made" sh -c '! git rev-parse -q --verify refs/heads/rotor/rotate/poc/gen-0002' 
expect_out "validate names every problem" 'envs/poc/chain.yaml:.*unknown key "bogus"' "$ROTOR" validate --env poc
expect_out "validate --ref main is clean" 'envs/poc: valid' "$ROTOR" validate --env poc --ref main

# ---- hosts.yaml: a probe or probe: none; one address, one server identity per host ----
cat > envs/test/hosts.yaml <<'YAML'
hosts:
  pg1:
    address: 10.0.0.11
    roles:
      - {role: server, layout: postgres, dir: /srv/pg/certs}
  pg2:
    address: 10.0.0.11
    roles:
      - {role: server, layout: postgres, dir: /srv/pg/certs, identity: pg1, probe: none}
YAML
expect_out "validate: a server role without a probe" \
	'^envs/test/hosts.yaml:5:9: hosts.pg1.roles\[0\]: missing required key "probe": a server role needs a probe .*, or "probe: none"' \
	"$ROTOR" validate --worktree --env test
expect_out "validate: a shared address names both hosts with file:line:column" \
	'^envs/test/hosts.yaml:7:14: hosts.pg2.address: address "10.0.0.11" is also host pg1.s \(envs/test/hosts.yaml:3:14\)' \
	"$ROTOR" validate --worktree --env test
expect_out "validate: one server identity on two hosts, both named" \
	'^envs/test/hosts.yaml:9:72: hosts.pg2.roles\[0\].identity: server identity "pg1" is also host pg1.s \(its name, by default; envs/test/hosts.yaml:5:9\)' \
	"$ROTOR" validate --worktree --env test
git checkout -q -- envs/test/hosts.yaml
# ---- --json of validate and log, parsed back against their schemas ----
# json_ok NAME SCHEMA EXPR CMD...: CMD's stdout is one document valid under schemas/SCHEMA.json and EXPR (over d) holds.
json_ok() {
	_jn=$1 _js=$2 _je=$3; shift 3
	"$@" > "$T/jsonout.json" 2>/dev/null
	ok "$_jn" json_check "$T/jsonout.json" "$_js" "$_je"
}
json_ok "validate --json: the problem with path, line, column" validate \
	'not d["valid"] and d["envs"] == [] and any(x["path"] == "envs/poc/chain.yaml" and x["line"] > 0 and x["column"] > 0 and "unknown key \"bogus\"" in x["message"] for x in d["diagnostics"]) and len(d["commit"]) == 40' \
	"$ROTOR" validate --env poc --json
fails "validate --json with problems: exit 1" "$ROTOR" validate --env poc --json
json_ok "validate --json --ref main: valid" validate \
	'd["valid"] and d["envs"] == ["poc"] and d["diagnostics"] == [] and d["commit"] == __import__("subprocess").check_output(["git", "rev-parse", "main"], text=True).strip()' \
	"$ROTOR" validate --env poc --ref main --json
ok "validate --json valid: exit 0" "$ROTOR" validate --env poc --ref main --json
json_ok "validate --json --worktree: commit null" validate 'd["commit"] is None and not d["valid"]' "$ROTOR" validate --worktree --json
ok "validate --json prints nothing but the document" sh -c '"$1" validate --env poc --json 2>/dev/null | wc -l | grep -qx 1' _ "$ROTOR"
json_ok "log --json before any apply: no lock, no entries" log 'd == {"env": "poc", "read": "local", "lock": None, "entries": []}' "$ROTOR" log --env poc --json

done_testing
