#!/bin/sh
# faults2.sh -- faults in the state repository and on the hosts, each giving
# one clear line and leaving nothing half written, on real PostgreSQL.
#
# Three PostgreSQL server hosts (host1-3) and one client host (host4) hold
# generation 1; generation 2's trust step is pending.  Then:
#   c  a certificate in git that is not the one its manifest names
#   d  a generation directory missing a certificate, then a key
#   e  a wrong secret: another key file (key id mismatch), the right key id
#      for wrong bytes, a key file others may read
#   f  a managed path replaced by a symbolic link to a root-only file
#   a  host1's certificate directory full (a 64 KiB tmpfs in host1's mount
#      namespace) during the write
#   b  host2's sshd killed while its staged files wait to be put in place
#      (host2's sudo is a wrapper, in host2's namespace only, that stops at
#      the command renaming a temporary file: the test kills host2's sshd
#      processes then, no timing involved)
# Each case checks the one line rotor prints, the bytes of every managed
# file on every host (sha256sum inside each host's namespace), that no
# temporary file is left, that no lock is left, and what rotor/status says.
#
# Uses 127.0.25.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
B=127.0.25
BG=""
fx() { "$F" exec --dir "$FD" "$@"; }
cleanup() {
	[ -n "$BG" ] && kill -9 $BG 2>/dev/null
	if [ "$_fleet" -eq 1 ]; then
		fx host2 sh -c 'umount /usr/bin/sudo; umount /srv/.real-sudo' >/dev/null 2>&1
		fx host1 umount /srv/postgres/certs >/dev/null 2>&1
	fi
	fleet_down
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

fleet_up 4 $B --postgres
for i in 1 2 3; do "$F" psql --dir "$FD" host$i -qc "CREATE ROLE app LOGIN" >/dev/null; done

# ---- helpers ----
files_of() { # i
	if [ "$1" -le 3 ]; then
		echo /srv/postgres/certs/server.crt /srv/postgres/certs/server.key /srv/postgres/certs/root.crt
	else
		echo /home/rotorfleet/.postgresql/postgresql.crt /home/rotorfleet/.postgresql/postgresql.key /home/rotorfleet/.postgresql/root.crt
	fi
}
# sha256 of every managed file, read inside each host's namespace (host1's
# directory may be a tmpfs only that namespace sees).
sums() { # i...
	for i in "$@"; do
		# shellcheck disable=SC2046
		fx host$i sha256sum $(files_of "$i") | sed "s/^/host$i /"
	done
}
same_sums() { # file i...
	_f=$1; shift
	sums "$@" > "$T/.sums-now"
	cmp -s "$_f" "$T/.sums-now" || { diff "$_f" "$T/.sums-now"; return 1; }
}
no_temp_files() {
	for i in 1 2 3 4; do
		_left=$(fx host$i find /srv /home/rotorfleet -name '*.rotor-tmp-*' 2>/dev/null)
		[ -z "$_left" ] || { echo "host$i: left behind: $_left"; return 1; }
	done
}
no_lock() { ! git rev-parse -q --verify refs/rotor/lock/poc >/dev/null; }
status_is() { [ "$(git rev-parse -q --verify rotor/status/poc)" = "$1" ] || { echo "rotor/status/poc moved: $(git log -1 --format=%s rotor/status/poc)"; return 1; }; }
run() { # name cmd...
	_rn=$1; shift
	"$@" > "$T/$_rn.out" 2>&1
	echo $? > "$T/$_rn.rc"
}
rc_is() { [ "$(cat "$T/$1.rc")" = "$2" ] || { echo "exit $(cat "$T/$1.rc"), expected $2"; tail -n 25 "$T/$1.out"; return 1; }; }
out_has() { grep -E -q -- "$2" "$T/$1.out" || { echo "no /$2/ in:"; tail -n 40 "$T/$1.out"; return 1; }; }
out_lacks() { ! grep -E -q -- "$2" "$T/$1.out" || { grep -E -- "$2" "$T/$1.out"; return 1; }; }
# The run said exactly one "rotor: " line, and it matches.
one_line() { # name regex
	_c=$(grep -c '^rotor: ' "$T/$1.out")
	[ "$_c" = 1 ] || { echo "$_c lines start with 'rotor: ':"; cat "$T/$1.out"; return 1; }
	out_has "$1" "^rotor: $2"
}
# A refusal before anything happens: exit 1, one line, no host changed, no lock, no status commit, no temp file.
refused_cleanly() { # name regex
	rc_is "$1" 1 && one_line "$1" "$2" && same_sums "$T/sums-g1" 1 2 3 4 && no_lock && status_is "$status0" && no_temp_files
}
# The lines a run said about a failure, as comments in the log.
show() { # name
	grep -E '^(rotor: |  x host|envs/|removed )|symbolic link' "$T/$1.out" | sed "s|^|# $1: |"
}

write_hosts() {
	{
		echo "hosts:"
		for i in 1 2 3; do pg_server_yaml $i; done
		libpq_client_yaml 4
	} > envs/poc/hosts.yaml
}

# ---- the state repository: generation 1 deployed, generation 2's trust step pending ----
fleet_repo 5s
{
	pg_chain_yaml
	printf 'validity: {root: 10y, intermediate: 5y, leaf: 397d}\nrenew_before: 30d\n'
} > envs/poc/chain.yaml
write_hosts
git add -A && git commit -qm "rotor: poc"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001
ok "first apply: generation 1 everywhere" "$ROTOR" apply --env poc --yes --replace-unknown
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0002
ok "generation 2 committed: the trust step is pending" sh -c '"$1" plan --env poc --detailed-exitcode >/dev/null; [ $? = 2 ]' _ "$ROTOR"
sums 1 2 3 4 > "$T/sums-g1"
status0=$(git rev-parse rotor/status/poc)
good=$(git rev-parse HEAD)
G2=envs/poc/generations/0002

# ==== c: a certificate in git that is not the one its manifest names ====
echo "# c: generation 2's pg1.crt replaced by generation 1's, committed"
git show HEAD:envs/poc/generations/0001/servers/pg1.crt > $G2/servers/pg1.crt
git commit -qam "pg1.crt by hand"
CERT_RE="$G2/servers/pg1.crt: fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2} differs from its manifest's ([0-9A-F]{2}:){31}[0-9A-F]{2}$"
run c-validate "$ROTOR" validate
ok "c validate: exit 1, the file and both fingerprints on one line" sh -c '[ "$(cat "$1.rc")" = 1 ] && grep -E -q "^$2" "$1.out" && grep -q "^rotor: 1 problem found$" "$1.out"' _ "$T/c-validate" "$CERT_RE"
run c-plan "$ROTOR" plan --env poc
ok "c plan refuses, naming the file" refused_cleanly c-plan "$CERT_RE"
run c-apply "$ROTOR" apply --env poc --yes
ok "c apply refuses, naming the file; nothing written, no lock, no status commit" refused_cleanly c-apply "$CERT_RE"
git reset -q --hard "$good"

# ==== d: a generation directory missing a file ====
echo "# d: generation 2 without clients/app.crt, then without servers/pg2.key"
git rm -q $G2/clients/app.crt && git commit -qm "app.crt lost"
run d-validate "$ROTOR" validate
ok "d validate: exit 1 naming the missing path" sh -c '[ "$(cat "$1.rc")" = 1 ] && grep -q "^$2/clients/app.crt: missing: its generation'"'"'s manifest.yaml lists it$" "$1.out"' _ "$T/d-validate" "$G2"
run d-plan "$ROTOR" plan --env poc
ok "d plan refuses naming the missing path" refused_cleanly d-plan "$G2/clients/app.crt: not found at commit [0-9a-f]{12}$"
run d-apply "$ROTOR" apply --env poc --yes
ok "d apply refuses naming the missing path; nothing written" refused_cleanly d-apply "$G2/clients/app.crt: not found at commit [0-9a-f]{12}$"
git reset -q --hard "$good"
git rm -q $G2/servers/pg2.key && git commit -qm "pg2.key lost"
run d-validate-key "$ROTOR" validate
ok "d validate names a missing key" sh -c '[ "$(cat "$1.rc")" = 1 ] && grep -q "^$2/servers/pg2.key: missing: its generation'"'"'s manifest.yaml lists it$" "$1.out"' _ "$T/d-validate-key" "$G2"
run d-apply-key "$ROTOR" apply --env poc --yes
ok "d apply refuses naming the missing key before it locks; nothing written" refused_cleanly d-apply-key "$G2/servers/pg2.key: not found at commit [0-9a-f]{12}$"
git reset -q --hard "$good"

# ==== e: a wrong secret ====
echo "# e: the wrong secret key"
keyfile=$(sed -n 's/^  key_file: "\(.*\)"$/\1/p' rotor.yaml | sed "s|^~|$HOME|")
keyid=$(sed -n 's/^  key_id: "\(.*\)"$/\1/p' rotor.yaml)
ok "e the repository's key file and key id are where rotor.yaml says" sh -c '[ -f "$1" ] && [ -n "$2" ]' _ "$keyfile" "$keyid"
wrong="$T/wrong.key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$wrong" && echo >> "$wrong"
chmod 600 "$wrong"
wrongid=$(printf 'rotor key id\n%s' "$(cat "$wrong")" | sha256sum | cut -c1-16)
ok "e (the key id is SHA-256 of 'rotor key id' and the secret, as rotor.yaml's)" sh -c '[ "$(printf "rotor key id\n%s" "$(cat "$1")" | sha256sum | cut -c1-16)" = "$2" ]' _ "$keyfile" "$keyid"
run e-id env ROTOR_KEY_FILE="$wrong" "$ROTOR" apply --env poc --yes
ok "e another key file: refused naming the file and both key ids; nothing written" refused_cleanly e-id \
	"the secret key in $wrong \\(key id $wrongid\\) is not this repository's \\(rotor.yaml says key id $keyid\\); refusing to use it$"
sed -i "s/^  key_id: \"$keyid\"$/  key_id: \"$wrongid\"/" rotor.yaml
git commit -qam "key id of the wrong key"
run e-bytes env ROTOR_KEY_FILE="$wrong" "$ROTOR" apply --env poc --yes
ok "e the right key id for the wrong bytes: refused, the root key does not decrypt; nothing written" refused_cleanly e-bytes \
	"the secret key in $wrong does not decrypt $G2/ca/root.key; refusing to use it$"
git reset -q --hard "$good"
cp -p "$keyfile" "$T/readable.key" && chmod 644 "$T/readable.key"
run e-mode env ROTOR_KEY_FILE="$T/readable.key" "$ROTOR" apply --env poc --yes
ok "e a key file others may read: refused naming it; nothing written" refused_cleanly e-mode \
	"$T/readable.key: the secret key file is accessible by group or others \\(mode 0644\\); refusing to use it: run chmod 600 on it$"
ok "e ... and the refusal does not show the secret" out_lacks e-mode "$(cat "$keyfile")"

# ==== f: a managed path replaced by a symbolic link to a root-only file ====
echo "# f: host2's server.key a symbolic link to a root-only file"
fx host2 sh -c 'printf "root only: do not show\n" > /srv/rootfile && chmod 0600 /srv/rootfile &&
	mv /srv/postgres/certs/server.key /srv/server.key.saved && ln -s /srv/rootfile /srv/postgres/certs/server.key'
LINK_RE="host2 \\($B\\.2\\): /srv/postgres/certs/server.key is a symbolic link \\(to /srv/rootfile\\), not a file rotor manages"
"$ROTOR" observe --env poc --json > "$T/f-observe.json" 2> "$T/f-observe.err"
ok "f observe --json: the file's problem names the link and its target; no mode or owner of the target" json_check "$T/f-observe.json" observe \
	'[(f["problem"], f.get("mode"), f.get("uid")) for h in d["hosts"] if h["name"] == "host2" for f in h["files"] if f["path"].endswith("server.key")] == [("unreadable: host2 (127.0.25.2): /srv/postgres/certs/server.key is a symbolic link (to /srv/rootfile), not a file rotor manages", None, None)]'
run f-observe "$ROTOR" observe --env poc
ok "f observe names the link" out_has f-observe "$LINK_RE"
ok "f ... and never shows the root-only file" out_lacks f-observe "do not show"
run f-plan "$ROTOR" plan --env poc --detailed-exitcode
ok "f plan: exit 1, host2 fits no step, the link named" sh -c '[ "$(cat "$1.rc")" = 1 ] && grep -E -q "$2" "$1.out"' _ "$T/f-plan" "$LINK_RE"
sums 1 3 4 > "$T/sums-f"
run f-apply "$ROTOR" apply --env poc --yes
ok "f apply: exit 1, nothing applied, the link named" sh -c '[ "$(cat "$1.rc")" = 1 ] && grep -E -q "$2" "$1.out" && grep -q "^rotor: nothing applied: stopped: live state unknown$" "$1.out"' _ "$T/f-apply" "$LINK_RE"
ok "f ... the link is still the link, its target untouched, nothing written through it" sh -c '
	[ "$("$1" exec --dir "$2" host2 readlink /srv/postgres/certs/server.key)" = /srv/rootfile ] &&
	[ "$("$1" exec --dir "$2" host2 cat /srv/rootfile)" = "root only: do not show" ] &&
	[ "$("$1" exec --dir "$2" host2 stat -c "%a %U" /srv/rootfile)" = "600 root" ]' _ "$F" "$FD"
ok "f ... hosts 1, 3, 4 unchanged" same_sums "$T/sums-f" 1 3 4
ok "f ... no temporary file" no_temp_files
ok "f ... no lock" no_lock
ok "f ... the output never shows the root-only file" sh -c '! grep -h "do not show" "$@"' _ "$T"/f-*.out "$T/f-observe.json"
fx host2 sh -c 'rm /srv/postgres/certs/server.key && mv /srv/server.key.saved /srv/postgres/certs/server.key && rm /srv/rootfile'
ok "f with the file back: host2 fits stable again, plan pending (exit 2)" sh -c '"$1" plan --env poc --detailed-exitcode >/dev/null 2>&1; [ $? = 2 ]' _ "$ROTOR"
ok "f ... every file as before" same_sums "$T/sums-g1" 1 2 3 4

# ==== a + b: host1's disk full and host2's sshd killed during one apply ====
echo "# a: host1's certificate directory is a full 64 KiB tmpfs (in host1's namespace only)"
fx host1 sh -c 'set -e; d=/srv/postgres/certs; rm -rf /srv/.certs; mkdir /srv/.certs; cp -a $d/. /srv/.certs/
	mount -t tmpfs -o size=64k,mode=0750 fleet-full $d; chown rotorfleet:postgres $d; cp -a /srv/.certs/. $d/
	head -c 1048576 /dev/zero > $d/filler 2>/dev/null || :; test "$(df --output=avail -k $d | tail -n 1 | tr -d " ")" = 0'
ok "a host1's certificate directory is full, its files the same bytes" same_sums "$T/sums-g1" 1 2 3 4
echo "# b: host2's sudo stops at the command that renames a staged file"
cat > "$FD/hosts/host2/srv/.sudo-wrap" <<'WRAP'
#!/bin/sh
# faults2.sh: stop where rotor puts a staged file in place; everything else is sudo.
case "$*" in
*rotor-tmp-*) echo $$ > /home/rotorfleet/.staged; while :; do sleep 1; done ;;
esac
exec /srv/.real-sudo "$@"
WRAP
chmod 0755 "$FD/hosts/host2/srv/.sudo-wrap"
fx host2 sh -c 'touch /srv/.real-sudo && mount --bind /usr/bin/sudo /srv/.real-sudo && mount --bind /srv/.sudo-wrap /usr/bin/sudo'
ok "b host2's sudo still works through the wrapper" "$F" ssh --dir "$FD" host2 sudo -n test -d /srv/postgres/certs
"$ROTOR" apply --env poc --yes > "$T/ab.out" 2>&1 &
BG=$!
staged() { test -s "$FD/hosts/host2/home/.staged"; }
ok "b host2's turn reaches the rename of its staged file" wait_for 60 staged
# host2's sshd: the listener and the processes of rotor's session (the wrapper's sshd ancestors).
kill_sshd() {
	_p=$(cat "$FD/hosts/host2/home/.staged") _list=""
	while [ -n "$_p" ] && [ "$_p" -gt 1 ]; do
		_p=$(ps -o ppid= -p "$_p" | tr -d ' ')
		[ -n "$_p" ] && case $(ps -o comm= -p "$_p") in sshd*) _list="$_list $_p" ;; esac
	done
	"$F" stop-sshd --dir "$FD" host2 >/dev/null
	[ -n "$_list" ] && kill -9 $_list 2>/dev/null
	kill -9 "$(cat "$FD/hosts/host2/home/.staged")" 2>/dev/null
	[ -n "$_list" ]
}
ok "b host2's sshd killed (listener and session)" kill_sshd
wait $BG
echo $? > "$T/ab.rc"
BG=""
fx host2 sh -c 'umount /usr/bin/sudo && umount /srv/.real-sudo && rm -f /srv/.real-sudo /srv/.sudo-wrap /home/rotorfleet/.staged'
ok "a+b apply: exit 1" rc_is ab 1
ok "a host1: one line, the full disk and the file" out_has ab "^  x host1 \\($B\\.1\\): FAILED: writing /srv/postgres/certs/root.crt: host1 \\($B\\.1\\): cannot write /srv/postgres/certs/\\.root\\.crt\\.rotor-tmp-[0-9a-f]+: no space left on device \\(0 bytes free\\)$"
ok "b host2: one line, the broken connection, the temporary file it may have left" out_has ab "^  x host2 \\($B\\.2\\): FAILED: host2 \\($B\\.2\\): [^;]*; may have left /srv/postgres/certs/\\.root\\.crt\\.rotor-tmp-[0-9a-f]+ \\(the next apply removes it\\)$"
ok "b ... no claim about backups restored (nothing was put in place)" out_lacks ab "x host2 .*backups"
ok "a+b ... never 'connection unusable' as the cause" out_lacks ab "FAILED: .*connection unusable"
ok "a+b ... host3 and host4 got the trust step" sh -c 'grep -q "✓ host3 " "$1" && grep -q "✓ host4 " "$1"' _ "$T/ab.out"
ok "a+b ... the run ends naming the failed step" out_has ab "^rotor: step stable -> trust failed on 2 hosts; fix it and run apply again to continue$"
grep "^host[12] " "$T/sums-g1" > "$T/sums-g1-12"
ok "a+b ... host1's and host2's files are the old bytes" same_sums "$T/sums-g1-12" 1 2
ok "a host1: no temporary file in the full directory" sh -c '! "$1" exec --dir "$2" host1 find /srv/postgres/certs -name "*.rotor-tmp-*" | grep .' _ "$F" "$FD"
ok "a+b ... lock released" no_lock
ok "a+b ... rotor/status records the failure, no success" sh -c 'git log -1 --format=%s rotor/status/poc | grep -q "^rotor: apply poc: step stable -> trust failed on 2 hosts$"'
ok "a+b ... no rotor branch left but the rotations'" sh -c '! git for-each-ref --format="%(refname)" refs/heads/rotor refs/rotor | grep -v -E "^refs/heads/rotor/(rotate/poc/gen-000[12]|status/poc)$" | grep .'
"$F" start-sshd --dir "$FD" host2 >/dev/null
"$ROTOR" observe --env poc --json > "$T/ab-observe.json" 2>/dev/null
ok "b observe lists host2's temporary file as a stray" json_check "$T/ab-observe.json" observe \
	'[s for h in d["hosts"] if h["name"] == "host2" for s in h["strays"] if ".rotor-tmp-" in s] != []'
fx host1 rm /srv/postgres/certs/filler
run ab-rerun "$ROTOR" apply --env poc --yes --json
ok "a+b rerun with room on host1 and host2's sshd back: exit 0" rc_is ab-rerun 0
ok "b ... it removed host2's temporary file and says so" out_has ab-rerun "^removed 1 temporary file an earlier write left on host2$"
ok "a+b ... host1 and host2 written" sh -c 'grep -q "✓ host1 .*1 file written" "$1" && grep -q "✓ host2 .*1 file written" "$1"' _ "$T/ab-rerun.out"
ok "a+b ... no temporary file left anywhere" no_temp_files
ok "a+b ... lock released" no_lock
"$ROTOR" observe --env poc --json > "$T/ab-after.json" 2>/dev/null
ok "a+b ... every host fits trust, no stray temporary file" json_check "$T/ab-after.json" observe \
	'all("trust" in h["fits"] and not [s for s in h["strays"] if ".rotor-tmp-" in s] for h in d["hosts"])'

for _o in c-validate c-plan c-apply d-validate d-plan d-apply d-validate-key d-apply-key e-id e-bytes e-mode \
	f-observe f-plan f-apply ab ab-rerun; do
	show "$_o"
done
done_testing
