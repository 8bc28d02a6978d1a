#!/bin/sh
# observe_floor.sh [HOSTS] [THREADS] [ROUNDS] -- the floor under `rotor observe`:
# open an SSH session to every host of a real fleet and read three small
# certificate files from each, in parallel, two ways:
#
#   libssh2  reconcile/remote/ (connect, verify host key, auth, 3 SFTP reads),
#            one thread per host on a pool of THREADS threads
#   openssh  ssh host cat f1 f2 f3, through xargs -P THREADS
#
# Prints the wall time of each round and the best.  Needs root (the fleet).
# Uses 127.0.20.x.  Defaults: 50 hosts, 32 threads, 3 rounds.
set -eu
N=${1:-50}
P=${2:-32}
ROUNDS=${3:-3}
top=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "observe_floor: needs root (the fleet binds port 22)" >&2; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/rotor-bench-floor.XXXXXX")
F="$top/tests/fleet/fleet"
cleanup() { "$F" down --dir "$W/fleet" >/dev/null 2>&1 || :; rm -rf "$W"; }
trap cleanup EXIT INT TERM

# The libssh2 driver: a few lines around the module under test.
cat >"$W/floor.c" <<'EOF'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "reconcile/remote/ssh.h"

static char addrs[4096][32];
static int nhosts, next, failed;
static const char *dir;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *files[] = { "/srv/certs/server.crt", "/srv/certs/server.key", "/srv/certs/root.crt" };

static void *worker(void *arg)
{
	char key[600], kh[600];
	(void)arg;
	snprintf(key, sizeof(key), "%s/id_ed25519", dir);
	snprintf(kh, sizeof(kh), "%s/known_hosts", dir);
	for (;;) {
		struct ssh_opts o;
		struct ssh_conn *c = NULL;
		struct err e = ERR_INIT;
		int i, h;

		pthread_mutex_lock(&mu);
		h = next < nhosts ? next++ : -1;
		pthread_mutex_unlock(&mu);
		if (h < 0)
			return NULL;
		memset(&o, 0, sizeof(o));
		o.address = addrs[h];
		o.user = "rotorfleet";
		o.identity = key;
		o.known_hosts = kh;
		o.connect_timeout_ms = 10000;
		o.deadline_ms = 60000;
		if (ssh_connect(&c, &o, &e) == 0) {
			for (i = 0; i < 3; i++) {
				struct buf b = BUF_INIT;

				if (ssh_read_file(&b, c, files[i], 1 << 20, NULL, &e) != 0 || b.len == 0)
					break;
				buf_release(&b);
			}
			if (i < 3)
				c = (ssh_disconnect(c), NULL);
		}
		if (!c) {
			pthread_mutex_lock(&mu);
			failed++;
			fprintf(stderr, "%s\n", e.msg);
			pthread_mutex_unlock(&mu);
		}
		ssh_disconnect(c);
	}
}

int main(int argc, char **argv)
{
	pthread_t t[256];
	struct timespec a, b;
	struct err e = ERR_INIT;
	char name[64], line[256];
	int i, threads = atoi(argv[2]);
	FILE *f;

	if (argc != 3 || threads < 1 || threads > 256)
		return 2;
	dir = argv[1];
	snprintf(line, sizeof(line), "%s/hosts.txt", dir);
	f = fopen(line, "r");
	if (!f)
		return 2;
	while (nhosts < 4096 && fscanf(f, "%63s %31s", name, addrs[nhosts]) == 2)
		nhosts++;
	fclose(f);
	if (ssh_global_init(&e))
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ssh_global_shutdown();
	printf("%.2f %d\n", (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, failed);
	return failed != 0;
}
EOF
cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -I"$top" -o "$W/floor" "$W/floor.c" \
	"$top"/reconcile/remote/*.c "$top"/common/*.c \
	$(pkg-config --cflags --libs libssh2) -lpthread

"$F" up "$N" --dir "$W/fleet" --base 127.0.20 >"$W/up.log" 2>&1 || { cat "$W/up.log" >&2; exit 1; }
echo "fleet: $(tail -n 1 "$W/up.log")"

# Three PEM files of realistic size per host, written straight into each host's /srv.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=floor" \
	-keyout "$W/server.key" -out "$W/server.crt" >/dev/null 2>&1
cat "$W/server.crt" "$W/server.crt" >"$W/root.crt"
for h in "$W"/fleet/hosts/host*; do
	mkdir -p "$h/srv/certs"
	cp "$W/server.crt" "$W/server.key" "$W/root.crt" "$h/srv/certs/"
	chmod 0644 "$h/srv/certs/"*
done

now() { date +%s.%N; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a - b }'; }
openssh() { # extra ssh options...
	t0=$(now)
	cut -d' ' -f1 "$W/fleet/hosts.txt" | xargs -P "$P" -I{} \
		ssh -F "$W/fleet/ssh_config" "$@" {} cat /srv/certs/server.crt /srv/certs/server.key /srv/certs/root.crt \
		>"$W/ssh.out" 2>"$W/ssh.err" || { echo "openssh failed: $(head -n 3 "$W/ssh.err")" >&2; exit 1; }
	[ "$(wc -c <"$W/ssh.out")" -eq $((N * $(cat "$W/server.crt" "$W/server.key" "$W/root.crt" | wc -c))) ] ||
		{ echo "openssh: short output" >&2; exit 1; }
	minus "$(now)" "$t0"
}
best() { printf '%s\n' "$@" | sort -g | head -n 1; }

# libssh2 1.10 negotiates curve25519-sha256; OpenSSH 9.2 defaults to the
# costlier sntrup761x25519, so OpenSSH runs both ways.
lib= def= c25=
i=1
while [ "$i" -le "$ROUNDS" ]; do
	r=$("$W/floor" "$W/fleet" "$P") || { echo "libssh2 round $i failed: $r" >&2; exit 1; }
	t_lib=${r% *}
	t_def=$(openssh)
	t_c25=$(openssh -o KexAlgorithms=curve25519-sha256)
	printf 'round %d: libssh2 %.2f s   openssh %.2f s   openssh curve25519 %.2f s\n' "$i" "$t_lib" "$t_def" "$t_c25"
	lib="$lib $t_lib" def="$def $t_def" c25="$c25 $t_c25"
	i=$((i + 1))
done
# shellcheck disable=SC2086
printf 'observe floor, %d hosts x 3 files, %d parallel, best of %d: libssh2 (reconcile/remote/) %.2f s; ssh via xargs -P %d %.2f s (curve25519 kex: %.2f s)\n' \
	"$N" "$P" "$ROUNDS" "$(best $lib)" "$P" "$(best $def)" "$(best $c25)"
