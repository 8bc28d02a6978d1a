/*
 * churn.c -- continuous connection churn against PostgreSQL servers, for
 * the zero-downtime tests: every attempt is a NEW libpq connection with
 * sslmode=verify-full and a client certificate, then SELECT 1.
 *
 * Usage:
 *   churn [-d SECONDS] [-f STOPFILE] [-i MS] [-p FILE] [-U USER] [-D DB] [-T SECONDS]
 *         (-c CERTDIR | -s SERVICE)... TARGET...
 *
 *   TARGET       ADDRESS:PORT:NAME -- connect to ADDRESS (libpq hostaddr) port
 *                PORT; NAME (libpq host) is what verify-full checks against the
 *                server certificate's SAN: a DNS name or an IP address.
 *                IPv6: [ADDRESS]:PORT:NAME.
 *   -c CERTDIR   one connection source: a directory in libpq's layout,
 *                CERTDIR/postgresql.crt (leaf + chain), postgresql.key (mode
 *                0600, or 0640 owned by root), root.crt (sslrootcert).  libpq
 *                re-reads the three files on EVERY attempt, like a real client
 *                that reconnects, so files replaced during a run take effect
 *                at the next attempt.  Each source runs in its own thread and
 *                goes round robin over all targets (sources start on
 *                different targets).
 *   -s SERVICE   one connection source that names a libpq connection service
 *                (`service=SERVICE`; the file is PGSERVICEFILE, else
 *                ~/.pg_service.conf): sslmode, sslcert, sslkey and sslrootcert
 *                come from its section, read by libpq once per attempt (rotor's
 *                switch mode).  Needs -U.  -c and -s may be mixed.
 *   -d SECONDS   stop after this long (decimals allowed)
 *   -f STOPFILE  stop as soon as this file exists (checked before each attempt)
 *                Without -d and -f: run until SIGINT or SIGTERM.
 *   -i MS        pause between two attempts of one source (default 5)
 *   -U USER      database user (default: the CN of CERTDIR/postgresql.crt, read
 *                once at start: with `cert` authentication they must be equal)
 *   -D DB        database (default postgres)
 *   -T SECONDS   libpq connect_timeout (default 5; libpq's minimum is 2)
 *   -p FILE      progress: about twice a second, FILE is replaced (a rename)
 *                by one line "N M\n", connections so far and failed so far
 *
 * Output (stdout): one line per failed attempt, as it happens,
 *   2026-01-02T03:04:05.678Z FAIL 127.0.12.1:5432 (pg1) from CERTDIR: <libpq error on one line>
 * then one summary line per target and, last, exactly
 *   churn: N connections, M failed
 * Exit status 0 whenever the churn ran, even with failures (the caller
 * asserts on the numbers); 2 for bad usage; 1 when it could not start.
 *
 * Build: sh tests/e2e/churn/build.sh [OUTPUT]   (default build/e2e/churn)
 */
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define MAX_TARGETS 256
#define MAX_SOURCES 64

struct target {
	char addr[64];
	char port[8];
	char name[256];
	long ok, failed;
};

struct churn;

struct source {
	struct churn *c;
	char dir[1024];
	char cert[1100], key[1100], root[1100];
	char service[128];          /* -s: the service name; empty for -c */
	char user[256];
	int first;                  /* index of the first target it uses */
	pthread_t th;
};

struct churn {
	struct target targets[MAX_TARGETS];
	int ntargets;
	struct source sources[MAX_SOURCES];
	int nsources;
	double duration;            /* seconds; 0 = none */
	const char *stopfile;
	long interval_ms;
	const char *user;
	const char *db;
	const char *connect_timeout;
	const char *progress;       /* -p FILE, or NULL */
	double progress_at;         /* monotonic seconds of the last progress write */
	double t_end;               /* monotonic seconds; 0 = none */
	pthread_mutex_t mu;         /* counters, latency, output */
	long total, failed;
	double lat_sum, lat_max;
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !g_stop)
		;
}

static void stamp(char *out, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char s[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s.%03dZ", s, (int)(ts.tv_nsec / 1000000) % 1000);
}

/* libpq messages span lines: squeeze every run of whitespace into one space. */
static void one_line(char *out, size_t len, const char *msg)
{
	size_t o = 0;
	int space = 0;

	for (; msg && *msg && o + 1 < len; msg++) {
		unsigned char ch = (unsigned char)*msg;

		if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
			space = o > 0;
			continue;
		}
		if (space && o + 2 < len)
			out[o++] = ' ';
		space = 0;
		out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	out[o] = '\0';
}

static int should_stop(const struct churn *c)
{
	struct stat st;

	if (g_stop)
		return 1;
	if (c->t_end > 0 && mono() >= c->t_end)
		return 1;
	if (c->stopfile && stat(c->stopfile, &st) == 0)
		return 1;
	return 0;
}

/* One attempt: 0 ok, -1 failed with the reason in why. */
static int attempt(const struct churn *c, const struct source *s, const struct target *t,
		   char *why, size_t wlen)
{
	const char *keys[] = { "host", "hostaddr", "port", "dbname", "user", "sslmode", "sslcert",
			       "sslkey", "sslrootcert", "connect_timeout", "gssencmode",
			       "application_name", NULL };
	const char *vals[] = { t->name, t->addr, t->port, c->db, s->user, "verify-full", s->cert,
			       s->key, s->root, c->connect_timeout, "disable", "rotor-churn", NULL };
	const char *skeys[] = { "host", "hostaddr", "port", "dbname", "user", "service", "connect_timeout",
				"gssencmode", "application_name", NULL };
	const char *svals[] = { t->name, t->addr, t->port, c->db, s->user, s->service, c->connect_timeout,
				"disable", "rotor-churn", NULL };
	PGconn *conn = s->service[0] ? PQconnectdbParams(skeys, svals, 0) : PQconnectdbParams(keys, vals, 0);
	PGresult *r;
	int rc = -1;

	if (!conn) {
		snprintf(why, wlen, "out of memory");
		return -1;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		one_line(why, wlen, PQerrorMessage(conn));
		PQfinish(conn);
		return -1;
	}
	r = PQexec(conn, "SELECT 1");
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	    strcmp(PQgetvalue(r, 0, 0), "1") == 0)
		rc = 0;
	else
		one_line(why, wlen, r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
	if (rc < 0 && !why[0])
		snprintf(why, wlen, "SELECT 1 did not return 1");
	PQclear(r);
	PQfinish(conn);
	return rc;
}

/* -p: the counts so far, replacing the file as one (under c->mu). */
static void write_progress(struct churn *c, double now)
{
	char tmp[1100];
	FILE *f;

	c->progress_at = now;
	snprintf(tmp, sizeof(tmp), "%s.tmp", c->progress);
	if (!(f = fopen(tmp, "w")))
		return;
	fprintf(f, "%ld %ld\n", c->total, c->failed);
	if (fclose(f) == 0)
		rename(tmp, c->progress);
}

static void *source_main(void *arg)
{
	struct source *s = arg;
	struct churn *c = s->c;
	char why[1024], ts[64];
	struct target *t;
	double t0, dt;
	int i = s->first, rc;

	while (!should_stop(c)) {
		t = &c->targets[i];
		i = (i + 1) % c->ntargets;
		why[0] = '\0';
		t0 = mono();
		rc = attempt(c, s, t, why, sizeof(why));
		dt = mono() - t0;
		pthread_mutex_lock(&c->mu);
		c->total++;
		c->lat_sum += dt;
		if (dt > c->lat_max)
			c->lat_max = dt;
		if (rc == 0) {
			t->ok++;
		} else {
			t->failed++;
			c->failed++;
			stamp(ts, sizeof(ts));
			printf("%s FAIL %s:%s (%s) from %s: %s\n", ts, t->addr, t->port, t->name, s->dir, why);
			fflush(stdout);
		}
		if (c->progress && t0 + dt - c->progress_at >= 0.5)
			write_progress(c, t0 + dt);
		pthread_mutex_unlock(&c->mu);
		if (c->interval_ms > 0)
			sleep_ms(c->interval_ms);
	}
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: churn [-d SECONDS] [-f STOPFILE] [-i MS] [-p FILE] [-U USER] [-D DB] [-T SECONDS]\n"
			"             (-c CERTDIR | -s SERVICE)... ADDRESS:PORT:NAME...\n");
	exit(2);
}

/* ADDRESS:PORT:NAME, or [ADDRESS]:PORT:NAME for IPv6. */
static int parse_target(struct target *t, const char *arg)
{
	const char *p = arg, *a_end, *colon;
	size_t n;
	char *end;
	long port;

	memset(t, 0, sizeof(*t));
	if (*p == '[') {
		a_end = strchr(p, ']');
		if (!a_end || a_end[1] != ':')
			return -1;
		p++;
		colon = a_end + 1;
	} else {
		colon = strchr(p, ':');
		if (!colon)
			return -1;
		a_end = colon;
	}
	n = (size_t)(a_end - p);
	if (n == 0 || n >= sizeof(t->addr))
		return -1;
	memcpy(t->addr, p, n);
	port = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end != ':' || port < 1 || port > 65535)
		return -1;
	snprintf(t->port, sizeof(t->port), "%ld", port);
	if (!end[1] || strlen(end + 1) >= sizeof(t->name))
		return -1;
	snprintf(t->name, sizeof(t->name), "%s", end + 1);
	return 0;
}

/* The CN of the client certificate: with cert authentication, the user. */
static int cert_cn(char *out, size_t len, const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;
	X509_NAME *n;
	int i, ok = -1;

	if (!f)
		return -1;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		return -1;
	n = X509_get_subject_name(x);
	i = X509_NAME_get_text_by_NID(n, NID_commonName, out, (int)len);
	if (i > 0 && (size_t)i < len && strlen(out) == (size_t)i)
		ok = 0;
	X509_free(x);
	return ok;
}

static int add_source(struct churn *c, const char *dir)
{
	struct source *s;
	size_t n = strlen(dir);

	if (c->nsources >= MAX_SOURCES || n == 0 || n >= sizeof(s->dir))
		return -1;
	while (n > 1 && dir[n - 1] == '/')
		n--;
	s = &c->sources[c->nsources++];
	s->c = c;
	snprintf(s->dir, sizeof(s->dir), "%.*s", (int)n, dir);
	snprintf(s->cert, sizeof(s->cert), "%.*s/postgresql.crt", (int)n, dir);
	snprintf(s->key, sizeof(s->key), "%.*s/postgresql.key", (int)n, dir);
	snprintf(s->root, sizeof(s->root), "%.*s/root.crt", (int)n, dir);
	return 0;
}

static int add_service(struct churn *c, const char *name)
{
	struct source *s;

	if (c->nsources >= MAX_SOURCES || !name[0] || strlen(name) >= sizeof(s->service))
		return -1;
	s = &c->sources[c->nsources++];
	s->c = c;
	snprintf(s->dir, sizeof(s->dir), "service=%s", name);
	snprintf(s->service, sizeof(s->service), "%s", name);
	return 0;
}

int main(int argc, char **argv)
{
	static struct churn C;
	struct sigaction sa;
	char *end;
	double lat_avg;
	int opt, i, started = 0;

	C.interval_ms = 5;
	C.db = "postgres";
	C.connect_timeout = "5";
	if (pthread_mutex_init(&C.mu, NULL) != 0)
		return 1;
	while ((opt = getopt(argc, argv, "d:f:i:p:U:D:T:c:s:h")) != -1) {
		switch (opt) {
		case 'd':
			C.duration = strtod(optarg, &end);
			if (*end || C.duration <= 0)
				usage();
			break;
		case 'f':
			C.stopfile = optarg;
			break;
		case 'i':
			C.interval_ms = strtol(optarg, &end, 10);
			if (*end || C.interval_ms < 0 || C.interval_ms > 600000)
				usage();
			break;
		case 'U':
			C.user = optarg;
			break;
		case 'D':
			C.db = optarg;
			break;
		case 'p':
			C.progress = optarg;
			break;
		case 'T':
			if (strtol(optarg, &end, 10) < 1 || *end)
				usage();
			C.connect_timeout = optarg;
			break;
		case 'c':
			if (add_source(&C, optarg) < 0) {
				fprintf(stderr, "churn: bad or too many -c %s\n", optarg);
				return 2;
			}
			break;
		case 's':
			if (add_service(&C, optarg) < 0) {
				fprintf(stderr, "churn: bad or too many -s %s\n", optarg);
				return 2;
			}
			break;
		default:
			usage();
		}
	}
	if (C.nsources == 0 || optind >= argc)
		usage();
	for (i = optind; i < argc; i++) {
		if (C.ntargets >= MAX_TARGETS || parse_target(&C.targets[C.ntargets], argv[i]) < 0) {
			fprintf(stderr, "churn: bad target '%s' (want ADDRESS:PORT:NAME)\n", argv[i]);
			return 2;
		}
		C.ntargets++;
	}
	for (i = 0; i < C.nsources; i++) {
		struct source *s = &C.sources[i];

		if (C.user) {
			snprintf(s->user, sizeof(s->user), "%s", C.user);
		} else if (s->service[0]) {
			fprintf(stderr, "churn: -s %s needs -U USER\n", s->service);
			return 2;
		} else if (cert_cn(s->user, sizeof(s->user), s->cert) < 0) {
			fprintf(stderr, "churn: cannot read the CN of %s; give -U USER\n", s->cert);
			return 1;
		}
		s->first = i % C.ntargets;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (C.duration > 0)
		C.t_end = mono() + C.duration;

	for (i = 0; i < C.nsources; i++) {
		if (pthread_create(&C.sources[i].th, NULL, source_main, &C.sources[i]) != 0) {
			fprintf(stderr, "churn: cannot start a thread\n");
			g_stop = 1;
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(C.sources[i].th, NULL);

	for (i = 0; i < C.ntargets; i++)
		printf("churn: target %s:%s (%s): %ld ok, %ld failed\n", C.targets[i].addr, C.targets[i].port,
		       C.targets[i].name, C.targets[i].ok, C.targets[i].failed);
	lat_avg = C.total ? C.lat_sum / (double)C.total : 0;
	printf("churn: attempt time avg %.1f ms, max %.1f ms\n", lat_avg * 1000, C.lat_max * 1000);
	if (C.progress)
		write_progress(&C, mono());
	printf("churn: %ld connections, %ld failed\n", C.total, C.failed);
	fflush(stdout);
	pthread_mutex_destroy(&C.mu);
	return started == C.nsources ? 0 : 1;
}
