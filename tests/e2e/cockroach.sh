#!/bin/sh
# cockroach.sh -- a full rotation of the CockroachDB layout under connection
# churn, zero failed connections.
#
# CockroachDB is not packaged for Debian, so the service here is NOT
# CockroachDB: it is nginx (Debian's nginx-light), configured as a real
# mTLS server that reads exactly CockroachDB's certs-dir files and reloads
# on SIGHUP as a cockroach node does:
#   ssl_certificate node.crt, ssl_certificate_key node.key,
#   ssl_client_certificate ca.crt, ssl_verify_client on.
# host1 and host2 are the "nodes" (layout cockroach, role server: node.crt,
# node.key, ca.crt; each node leaf carries serverAuth and clientAuth);
# host3 is a client (layout cockroach, role client, user root:
# client.root.crt, client.root.key, ca.crt), where curl presents
# client.root.* against ca.crt in a loop, a new process and connection each
# time, as `cockroach sql --certs-dir` reads its files at start.
#
# Checked besides the churn: file names and modes (keys 0600, the service
# user's only), ca.crt newest CA first during the rotation, the node leaf's
# extended key usages, rotor's https probe after every reload, and the
# negative controls: nginx refuses a client without a certificate (HTTP
# 400, so the churn's check can fail), a client that kept only the old
# ca.crt cannot verify a node at phase servers, and validate refuses a node
# leaf without clientAuth.
#
# Uses 127.0.23.x (tests/fleet/README.md lists which test uses which range).
. "$(dirname "$0")/lib.sh"
need_root
B=127.0.23
PORT=26257
C=$(mktemp -d /tmp/rotor-crdb.XXXXXX)
chmod 1777 "$C"
trap 'touch "$C/stop"; sleep 1; fleet_down; rm -rf "$T" "$C"' EXIT
trap 'exit 1' INT TERM HUP PIPE
command -v nginx >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
command -v nginx >/dev/null 2>&1 || { echo "1..0 # SKIP nginx is not installed (make deps installs nginx-light)"; exit 0; }
fleet_up 3 $B

# ---- the "nodes": nginx as the login user, reading the certs dir ----
for i in 1 2; do
	s="$FD/hosts/host$i/srv"
	mkdir -p "$s/cockroach/certs" "$s/nginx/tmp"
	cat > "$s/nginx/nginx.conf" <<CONF
daemon on;
pid /srv/nginx/nginx.pid;
error_log /srv/nginx/error.log;
worker_processes 1;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path /srv/nginx/tmp/body;
	proxy_temp_path /srv/nginx/tmp/proxy;
	fastcgi_temp_path /srv/nginx/tmp/fastcgi;
	uwsgi_temp_path /srv/nginx/tmp/uwsgi;
	scgi_temp_path /srv/nginx/tmp/scgi;
	server {
		listen $B.$i:$PORT ssl;
		ssl_certificate /srv/cockroach/certs/node.crt;
		ssl_certificate_key /srv/cockroach/certs/node.key;
		ssl_client_certificate /srv/cockroach/certs/ca.crt;
		ssl_verify_client on;
		ssl_verify_depth 3;
		location / { return 200 "node$i accepts \$ssl_client_s_dn\n"; }
	}
}
CONF
	# The role's reload: SIGHUP to the running server, as for cockroach; start it the first time.
	cat > "$s/nginx/reload.sh" <<'SH'
if [ -s /srv/nginx/nginx.pid ] && kill -0 "$(cat /srv/nginx/nginx.pid)" 2>/dev/null; then
	exec kill -HUP "$(cat /srv/nginx/nginx.pid)"
fi
exec nginx -e /srv/nginx/error.log -p /srv/nginx -c /srv/nginx/nginx.conf
SH
	chown -R rotorfleet: "$s/cockroach" "$s/nginx"
done

fleet_repo 5s
cat > envs/poc/chain.yaml <<YAML
subject: {O: Example, OU: CRDB}
key: {type: ec, curve: P-256}
servers:
  node1: {sans: [$B.1], eku: [serverAuth, clientAuth]}
  node2: {sans: [$B.2], eku: [serverAuth, clientAuth]}
clients: [root]
YAML
cat > envs/poc/hosts.yaml <<YAML
hosts:
  host1:
    address: $B.1
    roles:
      - {role: server, layout: cockroach, dir: /srv/cockroach/certs, identity: node1,
         reload: "PATH=\$PATH:/usr/sbin sh /srv/nginx/reload.sh", probe: {type: https, port: $PORT}}
  host2:
    address: $B.2
    roles:
      - {role: server, layout: cockroach, dir: /srv/cockroach/certs, identity: node2,
         reload: "PATH=\$PATH:/usr/sbin sh /srv/nginx/reload.sh", probe: {type: https, port: $PORT}}
  host3:
    address: $B.3
    roles:
      - {role: client, layout: cockroach, dir: /home/rotorfleet/.cockroach-certs, user: root}
YAML
ok "validate" "$ROTOR" validate --worktree

# A node leaf without clientAuth is refused: a node is a client of the other nodes.
sed -i "s/node2: {sans: \[$B.2\], eku: \[serverAuth, clientAuth\]}/node2: {sans: [$B.2]}/" envs/poc/chain.yaml
expect_out "validate refuses a node leaf without clientAuth" \
	'hosts.yaml: host host2: layout cockroach uses server node2 as a server and as a client of the other nodes: give it eku: \[serverAuth, clientAuth\] in chain.yaml' \
	"$ROTOR" validate --worktree
git checkout -q -- envs/poc/chain.yaml 2>/dev/null || sed -i "s/node2: {sans: \[$B.2\]}/node2: {sans: [$B.2], eku: [serverAuth, clientAuth]}/" envs/poc/chain.yaml
ok "validate again" "$ROTOR" validate --worktree
git add -A && git commit -qm "rotor: poc, cockroach layout"
"$ROTOR" rotate start --env poc >/dev/null && git merge -q --ff-only rotor/rotate/poc/gen-0001
ok "first deployment (the reload starts nginx; the https probe checks each node)" "$ROTOR" apply --env poc --yes

N1="$FD/hosts/host1/srv/cockroach/certs"
H3="$FD/hosts/host3/home/.cockroach-certs"
ok "a node holds node.crt, node.key and ca.crt; the key 0600" sh -c '[ -f "$1/node.crt" ] && [ -f "$1/ca.crt" ] && [ "$(stat -c %a "$1/node.key")" = 600 ] && [ "$(ls "$1" | grep -cv rotor-bak)" = 3 ]' _ "$N1"
ok "the client holds client.root.crt, client.root.key and ca.crt; the key 0600, the login user's" sh -c '[ -f "$1/client.root.crt" ] && [ -f "$1/ca.crt" ] && [ "$(stat -c %a:%U "$1/client.root.key")" = 600:rotorfleet ]' _ "$H3"
ok "the node leaf carries TLS Web Server and Client Authentication" sh -c 'openssl x509 -in "$1/node.crt" -noout -ext extendedKeyUsage | grep -q "TLS Web Server Authentication, TLS Web Client Authentication"' _ "$N1"
ok "client.root.crt's CN is the SQL user" sh -c 'openssl x509 -in "$1/client.root.crt" -noout -subject | grep -q "CN *= *root"' _ "$H3"

# ---- churn: curl from host3, a new process and connection each time ----
as3() { "$F" exec --dir "$FD" host3 runuser -u rotorfleet -- "$@"; }
CURL_OPTS="-sS --fail --max-time 10 --cacert ca.crt --cert client.root.crt --key client.root.key"
ok "curl from host3 presenting client.root.crt is accepted by node1" \
	as3 sh -c "cd /home/rotorfleet/.cockroach-certs && curl $CURL_OPTS https://$B.1:$PORT/ | grep -q 'node1 accepts CN=root'"
# Negative control: the same request without the client certificate is refused (400), so the churn's check can fail.
expect_out "without a client certificate nginx refuses (HTTP 400)" 'error: 400|returned error: 400' \
	as3 sh -c "cd /home/rotorfleet/.cockroach-certs && curl -sS --fail --max-time 10 --cacert ca.crt https://$B.1:$PORT/"
cp "$H3/ca.crt" "$C/ca-g1.crt" && chmod 644 "$C/ca-g1.crt"

"$F" exec --dir "$FD" host3 runuser -u rotorfleet -- sh -c '
	c=$1 base=$2 port=$3
	cd /home/rotorfleet/.cockroach-certs || exit 1
	while [ ! -f "$c/stop" ]; do
		for s in 1 2; do
			if curl -sS --fail --max-time 10 --cacert ca.crt --cert client.root.crt --key client.root.key \
				"https://$base.$s:$port/" >/dev/null 2>"$c/last"; then
				echo . >> "$c/ok"
			elif grep -q "unable to set private key file: .client.root.key." "$c/last"; then
				{ date +%T.%N; cat "$c/last"; } >> "$c/window"
			else
				{ date +%T.%N; cat "$c/last"; } >> "$c/fail"
			fi
		done
	done' _ "$C" "$B" "$PORT" &
CHURN=$!
connected() { [ -s "$C/ok" ]; }
wait_for 30 connected

# ---- the rotation ----
merge() { git merge -q --ff-only "$1"; }
ok "rotate start: generation 2" "$ROTOR" rotate start --env poc
merge rotor/rotate/poc/gen-0002
ok "apply trust" "$ROTOR" apply --env poc --yes
ok "trust: ca.crt holds the new CA first, the old after it (node)" sh -c 'openssl crl2pkcs7 -nocrl -certfile "$1/ca.crt" | openssl pkcs7 -print_certs -noout | grep "^subject" > "$2/order1"; head -n 1 "$2/order1" | grep -q "g2" && tail -n 1 "$2/order1" | grep -q "g1" && [ "$(wc -l < "$2/order1")" = 4 ]' _ "$N1" "$C"
ok "... and on the client" sh -c 'openssl crl2pkcs7 -nocrl -certfile "$1/ca.crt" | openssl pkcs7 -print_certs -noout | grep "^subject" > "$2/order3"; head -n 1 "$2/order3" | grep -q "root g2" && grep -q "server CA g1" "$2/order3"' _ "$H3" "$C"
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0002-servers
ok "apply servers (the nodes' new leaves, SIGHUP, https probe)" "$ROTOR" apply --env poc --yes
ok "node1 presents generation 2" sh -c 'echo | openssl s_client -connect "$1:$2" -cert "$3/client.root.crt" -key "$3/client.root.key" 2>/dev/null | openssl x509 -noout -issuer | grep -q "server CA g2"' _ "$B.1" "$PORT" "$H3"
# Negative control: a client that never got the trust step's ca.crt cannot verify the node now.
fails "a client with only the old ca.crt cannot verify node1 at phase servers" \
	as3 sh -c "cd /home/rotorfleet/.cockroach-certs && curl $CURL_OPTS --cacert $C/ca-g1.crt https://$B.1:$PORT/"
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0002-clients
ok "apply clients (client.root.* of generation 2)" "$ROTOR" apply --env poc --yes
"$ROTOR" rotate next --env poc >/dev/null && merge rotor/rotate/poc/gen-0002-stable
ok "apply stable" "$ROTOR" apply --env poc --yes
ok "stable: ca.crt holds generation 2 only" sh -c 'openssl crl2pkcs7 -nocrl -certfile "$1/ca.crt" | openssl pkcs7 -print_certs -noout | grep "^subject" > "$2/order4"; ! grep -q "g1" "$2/order4" && [ "$(wc -l < "$2/order4")" = 2 ]' _ "$N1" "$C"
ok "in sync at generation 2" "$ROTOR" plan --env poc --detailed-exitcode
ok "curl from host3 with generation 2's client.root.crt is accepted" \
	as3 sh -c "cd /home/rotorfleet/.cockroach-certs && openssl x509 -in client.root.crt -noout -issuer | grep -q 'client CA g2' && curl $CURL_OPTS https://$B.2:$PORT/ | grep -q 'node2 accepts CN=root'"

touch "$C/stop"
stopped() { ! kill -0 "$CHURN" 2>/dev/null; }
wait_for 60 stopped
n_ok=$(cat "$C/ok" 2>/dev/null | wc -l)
n_fail=$(grep -c '^[0-9]' "$C/fail" 2>/dev/null)
n_win=$(grep -c '^[0-9]' "$C/window" 2>/dev/null)
echo "# curl from host3 to the two nginx \"nodes\" through the rotation: $n_ok connections, ${n_fail:-0} failed; ${n_win:-0} in the certificate/key window"
ok "the churn made connections through the rotation ($n_ok)" [ "$n_ok" -gt 20 ]
ok "ZERO failed connections (the plain files' certificate/key window aside)" sh -c '[ "${1:-0}" -eq 0 ] || { head -20 "$2"; exit 1; }' _ "$n_fail" "$C/fail"
# curl opens client.root.crt, then client.root.key: one that straddles their
# renames at the clients step pairs one generation's certificate with the
# other's key (README, CockroachDB).  A key that never matched would fail
# every connection after the step, not one or two.
ok "... and at most 2 in that window (one leaf switch, two nodes)" sh -c '[ "${1:-0}" -le 2 ] || { head -20 "$2"; exit 1; }' _ "$n_win" "$C/window"

done_testing
