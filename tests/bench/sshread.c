/*
 * sshread.c KEY KNOWN_HOSTS N THREADS < hosts.txt -- the bare transport
 * under rotor observe, for the benchmarks (tests/bench/observe.sh and
 * observe_floor.sh): reconcile/remote/ alone (connect, host key check,
 * auth, three SFTP reads, sha256 here) for the first N hosts of the
 * fleet's hosts.txt, one host per thread on a pool of THREADS threads.
 * Prints "ADDRESS SHA256 FILE" per file; on stderr, the hosts that failed
 * and last "sshread: S s" (the time from the first connection to the
 * last thread's end).  Exit 0 when every host was read.
 */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "reconcile/remote/ssh.h"

static char addrs[1024][32];
static char out[1024][3][65];
static int nhosts, next, failed;
static const char *key, *kh;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *files[3] = { "/srv/certs/server.crt", "/srv/certs/server.key", "/srv/certs/root.crt" };

static void *worker(void *unused)
{
	(void)unused;
	for (;;) {
		struct ssh_opts o = { 0 };
		struct ssh_conn *c = NULL;
		struct err e = ERR_INIT;
		int h, i;

		pthread_mutex_lock(&mu);
		h = next < nhosts ? next++ : -1;
		pthread_mutex_unlock(&mu);
		if (h < 0)
			return NULL;
		o.address = addrs[h];
		o.user = "rotorfleet";
		o.identity = key;
		o.known_hosts = kh;
		o.connect_timeout_ms = 10000;
		o.deadline_ms = 60000;
		i = 0;
		if (ssh_connect(&c, &o, &e) == 0)
			for (; i < 3; i++) {
				struct buf b = BUF_INIT;
				unsigned char md[32];
				unsigned int mdlen = 0, k;

				if (ssh_read_file(&b, c, files[i], 1 << 20, NULL, &e) != 0 ||
				    !EVP_Digest(b.ptr, b.len, md, &mdlen, EVP_sha256(), NULL)) {
					buf_release(&b);
					break;
				}
				for (k = 0; k < 32; k++)
					sprintf(out[h][i] + 2 * k, "%02x", md[k]);
				buf_release(&b);
			}
		ssh_disconnect(c);
		if (i < 3) {
			pthread_mutex_lock(&mu);
			failed++;
			fprintf(stderr, "%s: %s\n", addrs[h], e.msg);
			pthread_mutex_unlock(&mu);
		}
	}
}

int main(int argc, char **argv)
{
	pthread_t t[256];
	struct timespec a, b;
	struct err e = ERR_INIT;
	int i, j, threads;

	if (argc != 5 || (threads = atoi(argv[4])) < 1 || threads > 256)
		return 2;
	key = argv[1];
	kh = argv[2];
	nhosts = atoi(argv[3]);
	if (nhosts < 1 || nhosts > 1024)
		return 2;
	for (i = 0; i < nhosts; i++)
		if (scanf("%*s %31s", addrs[i]) != 1)
			return 2;
	if (ssh_global_init(&e))
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ssh_global_shutdown();
	fprintf(stderr, "sshread: %.3f s\n", (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
	for (i = 0; i < nhosts; i++)
		for (j = 0; j < 3; j++)
			printf("%s %s %s\n", addrs[i], out[i][j], files[j]);
	return failed != 0;
}
