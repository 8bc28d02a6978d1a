#!/bin/sh
# demo.sh -- `make demo`: rotor on a throwaway state repository.
#
# Creates a repository and an env, generates the first chain and the next
# generation as reviewable commits on branches, and shows what was made,
# checked with the openssl command line.  Everything lives in a temporary
# directory (kept, and printed, so you can look around).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
ROTOR="$top/build/rotor"
D=$(mktemp -d /tmp/rotor-demo.XXXXXX)
export HOME="$D/home"          # the secret key goes to $HOME/.config/rotor/keys
mkdir -p "$HOME"
git config --global user.name "rotor demo"
git config --global user.email "demo@rotor.invalid"
git config --global init.defaultBranch main
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "a new state repository in $D/repo"
mkdir "$D/repo" && cd "$D/repo" && git init -q .
run "$ROTOR" init --env poc

say "describe the chain: 3 PostgreSQL servers, 3 database users"
cat > envs/poc/chain.yaml <<'YAML'
subject: {C: NL, O: Example, OU: DBA}
key: {type: ec, curve: P-256}
validity: {root: 10y, intermediate: 5y, leaf: 397d}
renew_before: 30d
servers:
  pg1: {sans: [pg1.example.net, 127.0.1.1]}
  pg2: {sans: [pg2.example.net, 127.0.1.2]}
  pg3: {sans: [pg3.example.net, 127.0.1.3]}
clients: [postgres, app_rw, replicator]
YAML
run "$ROTOR" validate --worktree
git add -A && git commit -qm "rotor: init poc"

say "the first chain, committed on a branch for review"
run "$ROTOR" rotate start --env poc
run git log --oneline --all --graph
run git status --short
echo "(work tree and main untouched)"
run git merge -q --ff-only rotor/rotate/poc/gen-0001

say "start a rotation: generation 2, phase trust"
run "$ROTOR" rotate start --env poc
run git show --stat --format='%s%n%n%b' rotor/rotate/poc/gen-0002
run git merge -q --ff-only rotor/rotate/poc/gen-0002
run "$ROTOR" chain show --env poc

say "checked with the openssl command line"
G="$D/check"
mkdir -p "$G"
git show HEAD:envs/poc/generations/0002/ca/root.crt > "$G/root.crt"
git show HEAD:envs/poc/generations/0002/ca/server-ca.crt > "$G/server-ca.crt"
git show HEAD:envs/poc/generations/0002/servers/pg1.crt > "$G/pg1.crt"
git show HEAD:envs/poc/generations/0002/servers/pg1.key > "$G/pg1.key"
run openssl verify -CAfile "$G/root.crt" -untrusted "$G/server-ca.crt" -purpose sslserver "$G/pg1.crt"
printf '$ head -1 pg1.key\n'; head -n 1 "$G/pg1.key"
run openssl pkey -in "$G/pg1.key" -passin "file:$HOME/.config/rotor/keys/repo.key" -noout
echo "pg1.key decrypts with the secret key file outside the repository"

say "done: the repository is $D/repo (rm -rf $D to remove it)"
