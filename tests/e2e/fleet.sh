#!/bin/sh
# fleet.sh -- the test fleet itself (tests/fleet/fleet): per-host namespaces
# seen through the OpenSSH client, PostgreSQL with TLS and certificate
# reload, host key and reachability switches, and a clean shutdown.
#
# Uses 127.0.8.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
D=$FD
B=127.0.8

# OpenSSH client with the fleet's key and known_hosts only, never trusting a new key.
xssh() { # ADDR CMD...
	f_a=$1; shift
	ssh -F /dev/null -i "$D/id_ed25519" -o IdentitiesOnly=yes -o IdentityAgent=none \
		-o UserKnownHostsFile="$D/known_hosts" -o GlobalKnownHostsFile=/dev/null \
		-o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5 \
		-o LogLevel=ERROR rotorfleet@"$f_a" "$@"
}

# Output of a command must equal a string exactly.
same() { # want cmd...
	f_want=$1; shift
	f_got=$("$@" 2>&1)
	[ "$f_got" = "$f_want" ] && return 0
	echo "want: $f_want"
	echo "got:  $f_got"
	return 1
}

running() { # PID -- alive and not a zombie
	[ -r "/proc/$1/stat" ] || return 1
	f_st=$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)
	[ "$f_st" != Z ]
}

# Processes that belong to the fleet in $D: every sshd and holder names $D
# in its title; postgres does not, so its pids are recorded before down.
leftovers() {
	for f_p in $(ps -eo pid= -o args= | grep -F "$D/" | grep -v -e grep -e ' ps ' | awk '{print $1}') $PG_PIDS; do
		running "$f_p" && echo "$f_p $(tr '\0' ' ' <"/proc/$f_p/cmdline" 2>/dev/null)"
	done
	return 0
}
no_leftovers() {
	f_n=0
	while [ -n "$(leftovers)" ] && [ "$f_n" -lt 50 ]; do sleep 0.1; f_n=$((f_n + 1)); done
	f_l=$(leftovers)
	[ -z "$f_l" ] && return 0
	echo "left behind: $f_l"
	return 1
}

listening() { # ADDR PORT -- something accepts TCP connections there
	/usr/bin/python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)' "$1" "$2" 2>/dev/null
}

ok "up 3 hosts with postgres" "$F" up 3 --postgres --dir "$D" --base $B
ok "status: every sshd and postgres up" "$F" status --dir "$D"
ok "known_hosts has one plain entry per address" sh -c "
	test \$(wc -l <'$D/known_hosts') -eq 3 &&
	grep -q '^$B.1 ssh-ed25519 ' '$D/known_hosts' && grep -q '^$B.3 ssh-ed25519 ' '$D/known_hosts'"
ok "hosts.txt names every host" same "host1 $B.1
host2 $B.2
host3 $B.3" cat "$D/hosts.txt"

for i in 1 2 3; do
	"$F" exec --dir "$D" host$i sh -c "echo host$i >/srv/marker"
done
ok "host1 sees its own /srv over ssh" same host1 xssh $B.1 cat /srv/marker
ok "host2 sees its own /srv over ssh" same host2 xssh $B.2 cat /srv/marker
ok "host3 sees its own /srv over ssh" same host3 xssh $B.3 cat /srv/marker
ok "the machine's own /srv is untouched" sh -c '! grep -q host /srv/marker 2>/dev/null'
ok "fleet exec runs as root inside the host" same "0 host2" "$F" exec --dir "$D" host2 sh -c 'echo $(id -u) $(cat /srv/marker)'
xssh $B.1 'mkdir -p ~/.postgresql && echo mine >~/.postgresql/root.crt'
ok "home of host1 holds its file" same mine xssh $B.1 cat .postgresql/root.crt
ok "home of host2 does not" same absent xssh $B.2 'test -e .postgresql/root.crt && echo present || echo absent'
ok "login user, /bin/sh, no PAM session noise" same "rotorfleet /bin/sh" xssh $B.2 'echo $(id -un) $(getent passwd rotorfleet | cut -d: -f7)'
ok "sudo -n works for the allowed commands" same "root only" xssh $B.1 \
	'sudo -n sh -c : 2>/dev/null && echo "sudo allows a shell"; sudo -n cat /etc/shadow >/dev/null && echo "root only"'
fails "sudo -n refuses anything else" xssh $B.1 'sudo -n id'
fails "an empty known_hosts is refused (StrictHostKeyChecking=yes)" sh -c "
	: >'$T/empty_kh'
	ssh -F /dev/null -i '$D/id_ed25519' -o IdentitiesOnly=yes -o UserKnownHostsFile='$T/empty_kh' \
		-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes \
		rotorfleet@$B.1 true"

# PostgreSQL
expect_out "postgres answers TLS on host1's address" 'subject=.*rotor fleet bootstrap' \
	sh -c "openssl s_client -starttls postgres -connect $B.1:5432 </dev/null"
ok "postgres on host3 listens on host3's address only" same "$B.3" \
	"$F" psql --dir "$D" host3 -Atc 'show listen_addresses'
ok "ssl is on, with the /srv/postgres/certs files" same "on|/srv/postgres/certs/server.crt|/srv/postgres/certs/root.crt" \
	"$F" psql --dir "$D" host1 -Atc "select current_setting('ssl'), current_setting('ssl_cert_file'), current_setting('ssl_ca_file')"
expect_out "a TLS client without a certificate is refused (clientcert=verify-full)" \
	'certificate' psql "host=$B.1 port=5432 user=postgres dbname=postgres sslmode=require connect_timeout=5" -c 'select 1'

# Replace host2's server certificate the way rotor will: temporary file as the
# login user, chown and rename through sudo, reload through sudo.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=fleet reload check" -keyout "$T/new.key" -out "$T/new.crt" >/dev/null 2>&1
ok "the login user installs a new certificate and key" sh -c "
	xssh() { ssh -F /dev/null -i '$D/id_ed25519' -o IdentitiesOnly=yes -o UserKnownHostsFile='$D/known_hosts' \
		-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes rotorfleet@$B.2 \"\$@\"; }
	xssh 'umask 077; cat >/srv/postgres/certs/.new.crt' <'$T/new.crt' &&
	xssh 'umask 077; cat >/srv/postgres/certs/.new.key' <'$T/new.key' &&
	xssh 'cd /srv/postgres/certs && sudo -n chown postgres:postgres .new.crt .new.key &&
		sudo -n mv -f -- .new.crt server.crt && sudo -n mv -f -- .new.key server.key'"
ok "reload through sudo as the login user" xssh $B.2 "$PG_RELOAD"
presents() { # ADDR SUBJECT -- postgres there presents a certificate with that subject
	openssl s_client -starttls postgres -connect "$1:5432" </dev/null 2>/dev/null | grep -q "subject=.*$2"
}
wait_for 10 presents $B.2 'fleet reload check'   # the reload is a signal to postgres
expect_out "postgres on host2 now presents the new certificate" 'subject=.*fleet reload check' \
	sh -c "openssl s_client -starttls postgres -connect $B.2:5432 </dev/null"
expect_out "host1 still presents the old one" 'subject=.*rotor fleet bootstrap' \
	sh -c "openssl s_client -starttls postgres -connect $B.1:5432 </dev/null"

# Switches for failure tests
ok "stop-sshd host2" "$F" stop-sshd --dir "$D" host2
expect_out "host2 is unreachable" 'refused' xssh $B.2 true
ok "postgres on host2 keeps running without sshd" listening $B.2 5432
ok "start-sshd host2" "$F" start-sshd --dir "$D" host2
ok "host2 is back" same host2 xssh $B.2 cat /srv/marker
ok "rekey host3" "$F" rekey --dir "$D" host3
expect_out "host3's new key is refused by known_hosts" 'REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed' \
	xssh $B.3 true
fails "exec on an unknown host name fails" "$F" exec --dir "$D" host9 true

# Down: nothing left.
PG_PIDS=$(for i in 1 2 3; do head -n 1 "$D/hosts/host$i/pgdata-upper/postmaster.pid" 2>/dev/null; done | tr "\n" " ")
SSHD_PIDS=$(cat "$D"/hosts/host*/sshd.pid 2>/dev/null | tr "\n" " ")
ok "recorded the postgres and sshd pids" test -n "$PG_PIDS" -a -n "$SSHD_PIDS"
xssh $B.1 'sleep 300' >/dev/null 2>&1 &
wait_for 10 pgrep -u rotorfleet -f 'sleep 300'   # a live session for down to end
ok "down" "$F" down --dir "$D"
ok "no process of the fleet is left (sshd, sessions, postgres, namespaces)" no_leftovers
ok "no sshd pid from before is alive" sh -c "for p in $SSHD_PIDS; do test -r /proc/\$p/stat && ! grep -q ') Z ' /proc/\$p/stat && exit 1; done; exit 0"
fails "nothing listens on host1:22 any more" listening $B.1 22
fails "nothing listens on host2:5432 any more" listening $B.2 5432
ok "down kept the logs" test -s "$D/hosts/host1/sshd.log"
wait

# A crash (processes killed, state left behind), then up again in the same DIR.
ok "up 2 again" "$F" up 2 --dir "$D" --base $B
"$F" exec --dir "$D" host1 sh -c 'echo stale >/srv/stale'
OLD_SSHD=$(cat "$D/hosts/host2/sshd.pid")
kill -9 "$(cat "$D/hosts/host1/holder.pid")" "$(cat "$D/hosts/host1/sshd.pid")"
ok "up 2 after a crash cleans the stale state" "$F" up 2 --dir "$D" --base $B
ok "the old sshd of host2 is gone" sh -c "! { test -r /proc/$OLD_SSHD/stat && ! grep -q ') Z ' /proc/$OLD_SSHD/stat && grep -qF '$D' /proc/$OLD_SSHD/cmdline; }"
ok "nothing of the old /srv survived" same absent xssh $B.1 'test -e /srv/stale && echo present || echo absent'
ok "a second up on a non-fleet directory is refused" sh -c "mkdir -p '$T/notfleet' && echo x >'$T/notfleet/x' && ! '$F' up 1 --dir '$T/notfleet' --base $B 2>/dev/null"
PG_PIDS=
ok "down again" "$F" down --dir "$D"
ok "nothing left" no_leftovers

done_testing
