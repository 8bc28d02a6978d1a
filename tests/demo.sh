#!/bin/sh
# demo.sh -- `make demo`: the whole story on a local fleet.
#
# Three PostgreSQL servers and two client hosts (real sshd hosts on
# 127.0.1.1-5, each in its own mount namespace; tests/fleet/).  rotor
# creates a state repository, generates the first chain, deploys it, then
# rotates to generation 2 phase by phase -- each phase a reviewed commit,
# each step planned, applied and verified -- while both client hosts open a
# new verify-full mTLS connection to every server in a loop.  The client
# hosts are in switch mode (README, "Client certificates that switch as
# one"): each connection reads the service app, so it never pairs one
# generation's certificate with the other's key.  At the end: connections
# made and failed.  Needs root (the fleet binds port 22).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
ROTOR="$top/build/rotor"
F="$top/tests/fleet/fleet"
B=127.0.1
D=$(mktemp -d /tmp/rotor-demo.XXXXXX)
FD="$D/fleet"
C="$D/churn"
export HOME="$D/home"          # the secret key goes to $HOME/.config/rotor/keys
mkdir -p "$HOME" "$C"
chmod 755 "$D"
chmod 1777 "$C"
git config --global user.name "rotor demo"
git config --global user.email "demo@rotor.invalid"
git config --global init.defaultBranch main
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
cleanup() { touch "$C/stop"; sleep 1; "$F" down --dir "$FD" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: the test fleet needs root (it binds 127.0.1.x:22 and uses mount namespaces)" >&2
	exit 1
fi
say "a fleet: 3 PostgreSQL servers (host1-3) and 2 client hosts (host4-5) on $B.1-5"
"$F" up 5 --postgres --dir "$FD" --base $B
for i in 1 2 3; do "$F" psql --dir "$FD" host$i -qc "CREATE ROLE app LOGIN"; done
sh "$top/tests/e2e/churn/build.sh" "$C/churn-bin"

say "a new state repository in $D/repo"
mkdir "$D/repo" && cd "$D/repo" && git init -q .
run "$ROTOR" init --env poc
sed -i -e "s|^  user: deploy|  user: rotorfleet\n  identity: \"$FD/id_ed25519\"|" \
       -e "s|^  known_hosts: .*|  known_hosts: \"$FD/known_hosts\"|" rotor.yaml
PG_RELOAD="sudo -n -u postgres /usr/lib/postgresql/15/bin/pg_ctl -D /srv/postgres/data -s reload"
cat > envs/poc/chain.yaml <<YAML
subject: {C: NL, O: Example, OU: DBA}
key: {type: ec, curve: P-256}
validity: {root: 10y, intermediate: 5y, leaf: 397d}
renew_before: 30d
servers:
  pg1: {sans: [pg1.example.net, $B.1]}
  pg2: {sans: [pg2.example.net, $B.2]}
  pg3: {sans: [pg3.example.net, $B.3]}
clients: [app]
YAML
{
	echo "hosts:"
	for i in 1 2 3; do
		cat <<YAML
  host$i:
    address: $B.$i
    roles:
      - {role: server, layout: postgres, dir: /srv/postgres/certs, owner: postgres, group: postgres,
         identity: pg$i, reload: "$PG_RELOAD", probe: {type: postgres, port: 5432}}
YAML
	done
	for i in 4 5; do
		printf '  host%d:\n    address: %s.%d\n    roles:\n      - {role: client, layout: libpq, user: rotorfleet, home: /home/rotorfleet, identity: app,\n         switch: {service: app}}\n' $i $B $i
	done
} > envs/poc/hosts.yaml
run "$ROTOR" validate --worktree
git add -A && git commit -qm "rotor: poc"

say "the first chain, committed on a branch, reviewed and merged"
run "$ROTOR" rotate start --env poc
run git merge -q --ff-only rotor/rotate/poc/gen-0001
say "deploy it (the fleet's PostgreSQL starts with throwaway certificates: --replace-unknown)"
run "$ROTOR" apply --env poc --yes --replace-unknown

say "from now on both client hosts connect to every server, all the time (service=app: switch mode)"
for h in host4 host5; do
	"$F" exec --dir "$FD" $h runuser -u rotorfleet -- env PGSERVICEFILE=/home/rotorfleet/.pg_service.conf \
		"$C/churn-bin" -f "$C/stop" -i 20 -s app -U app $B.1:5432:$B.1 $B.2:5432:$B.2 $B.3:5432:$B.3 > "$C/$h.out" 2>&1 &
done
sleep 2   # not a wait: churn runs for a while before the rotation

say "rotate to generation 2: trust both"
run "$ROTOR" rotate start --env poc
run git merge -q --ff-only rotor/rotate/poc/gen-0002
run "$ROTOR" plan --env poc
run "$ROTOR" apply --env poc --yes
for phase in servers clients stable; do
	say "next phase: $phase"
	run "$ROTOR" rotate next --env poc
	run git merge -q --ff-only "rotor/rotate/poc/gen-0002-$phase"
	run "$ROTOR" plan --env poc
	run "$ROTOR" apply --env poc --yes
done
sleep 2   # not a wait: churn runs for a while after it
touch "$C/stop"
wait 2>/dev/null || true

say "where things are"
run "$ROTOR" chain show --env poc
run "$ROTOR" drift --env poc || true
run git log --oneline --graph --all -n 14
printf '$ git log --format="%%h %%s" rotor/status/poc\n'
git log --format="%h %s" rotor/status/poc

say "connections during the rotation"
made=0 failed=0
for h in host4 host5; do
	line=$(grep '^churn: ' "$C/$h.out" | tail -n 1)
	echo "$h: $line"
	n=$(echo "$line" | sed -n 's/^churn: \([0-9]*\) connections, \([0-9]*\) failed$/\1/p')
	f=$(echo "$line" | sed -n 's/^churn: \([0-9]*\) connections, \([0-9]*\) failed$/\2/p')
	made=$((made + ${n:-0})); failed=$((failed + ${f:-0}))
done
printf '\n\033[1m%d connections made, %d failed\033[0m\n' "$made" "$failed"
echo "(the repository stays in $D/repo; rm -rf $D to remove it)"
[ "$failed" -eq 0 ]
