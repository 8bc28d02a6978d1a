/*
 * libssh2_floor.c MODE KEY KNOWN_HOSTS USER N THREADS FILE... < hosts.txt
 *
 * The library floor under `rotor observe`, for tests/bench/scale.sh: libssh2
 * 1.10 alone, used the way its documentation shows, nothing of rotor.  For
 * each of the first N hosts of the fleet's hosts.txt ("NAME ADDRESS" lines),
 * one host per thread on a pool of THREADS threads: a TCP connection, the
 * handshake, the host key checked against its known_hosts line, public-key
 * authentication (libssh2_userauth_publickey_frommemory, the key file read
 * once), then the files, and the session closed:
 *
 *   exec   one exec channel running `cat FILE...` (the fewest round trips
 *          libssh2 allows: no SFTP start)
 *   sftp   libssh2_sftp_init, then open, read to the end and close each FILE
 *   handshake  no authentication and no files: the TCP connection, the
 *          handshake and the host key check, then the session closed (what
 *          every host costs before anything is read; BYTES is 0)
 *
 * Prints "ADDRESS BYTES" per host on stdout (the bytes read), the hosts that
 * failed on stderr, and last on stderr "libssh2_floor: W s wall, C s CPU"
 * (CPU: user + system of the whole process).  Exit 0 when every host was read.
 */
#include <arpa/inet.h>
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HOSTS 1024
#define MAX_FILES 8

static char addrs[MAX_HOSTS][32];
static long got[MAX_HOSTS];
static int nhosts, next, failed, use_sftp, handshake_only, nfiles;
static const char *user, *files[MAX_FILES];
static char *keydata, *khdata, cmd[1024];
static size_t keylen;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (p = calloc(1, (size_t)n + 1)) && fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	if (p && len)
		*len = strlen(p);
	fclose(f);
	return p;
}

/* The known_hosts line of address, as the fleet writes it ("ADDRESS TYPE BASE64"). */
static int known_ok(LIBSSH2_SESSION *s, const char *address)
{
	LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s);
	const char *key, *line = khdata;
	char one[4096];
	size_t alen = strlen(address), klen;
	int type, r = -1;

	if (!kh)
		return -1;
	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line) : strlen(line);

		if (n > alen && n < sizeof(one) && strncmp(line, address, alen) == 0 && line[alen] == ' ') {
			/* libssh2 reads the key up to a NUL, not up to n. */
			memcpy(one, line, n);
			one[n] = '\0';
			libssh2_knownhost_readline(kh, one, n, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
		}
		line = end ? end + 1 : NULL;
	}
	key = libssh2_session_hostkey(s, &klen, &type);
	if (key && type == LIBSSH2_HOSTKEY_TYPE_ED25519 &&   /* the fleet's host keys */
	    libssh2_knownhost_checkp(kh, address, -1, key, klen,
				     LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
				     LIBSSH2_KNOWNHOST_KEY_ED25519, NULL) == LIBSSH2_KNOWNHOST_CHECK_MATCH)
		r = 0;
	libssh2_knownhost_free(kh);
	return r;
}

static long read_exec(LIBSSH2_SESSION *s)
{
	LIBSSH2_CHANNEL *ch = libssh2_channel_open_session(s);
	char b[16384];
	long total = 0;
	ssize_t n;

	if (!ch)
		return -1;
	if (libssh2_channel_exec(ch, cmd) != 0)
		total = -1;
	while (total >= 0 && (n = libssh2_channel_read(ch, b, sizeof(b))) > 0)
		total += n;
	if (total >= 0 && (libssh2_channel_close(ch) != 0 || libssh2_channel_get_exit_status(ch) != 0))
		total = -1;
	libssh2_channel_free(ch);
	return total;
}

static long read_sftp(LIBSSH2_SESSION *s)
{
	LIBSSH2_SFTP *sftp = libssh2_sftp_init(s);
	char b[16384];
	long total = 0;
	ssize_t n;
	int i;

	if (!sftp)
		return -1;
	for (i = 0; i < nfiles && total >= 0; i++) {
		LIBSSH2_SFTP_HANDLE *h = libssh2_sftp_open(sftp, files[i], LIBSSH2_FXF_READ, 0);

		if (!h) {
			total = -1;
			break;
		}
		while ((n = libssh2_sftp_read(h, b, sizeof(b))) > 0)
			total += n;
		if (n < 0)
			total = -1;
		libssh2_sftp_close(h);
	}
	libssh2_sftp_shutdown(sftp);
	return total;
}

static long one_host(const char *address)
{
	struct sockaddr_in sa;
	LIBSSH2_SESSION *s = NULL;
	const char *step = "connect failed";
	long total = -1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(22);
	if (fd < 0 || inet_pton(AF_INET, address, &sa.sin_addr) != 1 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	if (!(s = libssh2_session_init()))
		goto out;
	libssh2_session_set_timeout(s, 60000);
	/* known_hosts lists the fleet's Ed25519 host keys; libssh2 would ask for ECDSA first. */
	libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, "ssh-ed25519");
	if (libssh2_session_handshake(s, fd) != 0)
		goto out;
	if (known_ok(s, address) != 0) {
		step = "host key not in known_hosts";
		goto out;
	}
	if (handshake_only) {
		total = 0;
		goto out;
	}
	if (libssh2_userauth_publickey_frommemory(s, user, strlen(user), NULL, 0, keydata, keylen, NULL) != 0)
		goto out;
	total = use_sftp ? read_sftp(s) : read_exec(s);
out:
	if (total < 0) {
		char *msg = NULL;

		if (s)
			libssh2_session_last_error(s, &msg, NULL, 0);
		pthread_mutex_lock(&mu);
		fprintf(stderr, "%s: %s\n", address, msg && *msg ? msg : step);
		pthread_mutex_unlock(&mu);
	}
	if (s) {
		libssh2_session_disconnect(s, "done");
		libssh2_session_free(s);
	}
	if (fd >= 0)
		close(fd);
	return total;
}

static void *worker(void *unused)
{
	(void)unused;
	for (;;) {
		int h;

		pthread_mutex_lock(&mu);
		h = next < nhosts ? next++ : -1;
		pthread_mutex_unlock(&mu);
		if (h < 0)
			return NULL;
		got[h] = one_host(addrs[h]);
		if (got[h] < 0) {
			pthread_mutex_lock(&mu);
			failed++;
			pthread_mutex_unlock(&mu);
		}
	}
}

int main(int argc, char **argv)
{
	pthread_t t[256];
	struct timespec a, b;
	struct rusage ru;
	size_t off;
	int i, threads;

	if (argc < 8 || argc - 7 > MAX_FILES || (strcmp(argv[1], "exec") && strcmp(argv[1], "sftp") && strcmp(argv[1], "handshake")) ||
	    (nhosts = atoi(argv[5])) < 1 || nhosts > MAX_HOSTS || (threads = atoi(argv[6])) < 1 || threads > 256) {
		fprintf(stderr, "usage: libssh2_floor exec|sftp|handshake KEY KNOWN_HOSTS USER N THREADS FILE... < hosts.txt\n");
		return 2;
	}
	use_sftp = strcmp(argv[1], "sftp") == 0;
	handshake_only = strcmp(argv[1], "handshake") == 0;
	user = argv[4];
	nfiles = argc - 7;
	off = (size_t)snprintf(cmd, sizeof(cmd), "cat");
	for (i = 0; i < nfiles; i++) {
		files[i] = argv[7 + i];
		off += (size_t)snprintf(cmd + off, off < sizeof(cmd) ? sizeof(cmd) - off : 0, " %s", files[i]);
	}
	if (off >= sizeof(cmd) || !(keydata = slurp(argv[2], &keylen)) || !(khdata = slurp(argv[3], NULL))) {
		fprintf(stderr, "libssh2_floor: cannot read the key or known_hosts, or the command is too long\n");
		return 2;
	}
	for (i = 0; i < nhosts; i++)
		if (scanf("%*s %31s", addrs[i]) != 1)
			return 2;
	if (libssh2_init(0) != 0)
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	libssh2_exit();
	getrusage(RUSAGE_SELF, &ru);
	for (i = 0; i < nhosts; i++)
		printf("%s %ld\n", addrs[i], got[i]);
	fprintf(stderr, "libssh2_floor: %.3f s wall, %.3f s CPU\n",
		(double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9,
		(double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	free(keydata);
	free(khdata);
	return failed != 0;
}
