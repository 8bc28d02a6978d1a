/*
 * pkibench.c -- drive reconcile/pki for tests/bench/chain.sh: generate a
 * chain with N client leaves, export it (encrypted PKCS#8 keys and
 * manifest.yaml) and write the files, the way `rotor rotate start` does
 * minus git.  Prints the phases' wall times on stderr.
 *
 *   pkibench KEYTYPE NCLIENTS THREADS SECRETFILE OUTDIR
 *   pkibench --pkcs8-probe KEYTYPE COUNT    (cost of one encrypted key)
 *   pkibench --floor COUNT    (the floor: COUNT EC P-256 keys generated and
 *                              COUNT leaves signed by one CA key, one thread,
 *                              OpenSSL alone; nothing encoded or written)
 *
 * KEYTYPE: ec-p256 ec-p384 rsa-2048 rsa-3072 rsa-4096 ed25519
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "reconcile/pki/pki.h"
#include "tests/unit/chainspec.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int key_type(const char *s, enum spec_key_type *t)
{
	static const struct { const char *name; enum spec_key_type t; } map[] = {
		{ "ec-p256", SPEC_KEY_EC_P256 }, { "ec-p384", SPEC_KEY_EC_P384 },
		{ "rsa-2048", SPEC_KEY_RSA_2048 }, { "rsa-3072", SPEC_KEY_RSA_3072 },
		{ "rsa-4096", SPEC_KEY_RSA_4096 }, { "ed25519", SPEC_KEY_ED25519 },
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(s, map[i].name) == 0) {
			*t = map[i].t;
			return 0;
		}
	fprintf(stderr, "pkibench: unknown key type %s\n", s);
	return -1;
}

static int write_out(const char *dir, const struct pki_file *f, size_t n)
{
	char path[4096];
	size_t i;
	int fd;

	for (i = 0; i < n; i++) {
		const char *slash;
		ssize_t w;

		if (snprintf(path, sizeof(path), "%s/%s", dir, f[i].path) >= (int)sizeof(path))
			return -1;
		slash = strrchr(path, '/');
		if (slash && slash > path) {
			char d[4096];

			memcpy(d, path, (size_t)(slash - path));
			d[slash - path] = '\0';
			if (mkdir(d, 0700) != 0 && errno != EEXIST)
				return -1;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, f[i].secret ? 0600 : 0644);
		if (fd < 0)
			return -1;
		w = write(fd, f[i].data.ptr, f[i].data.len);
		if (close(fd) != 0 || w != (ssize_t)f[i].data.len)
			return -1;
	}
	return 0;
}

/* Per-key cost of the encrypted PKCS#8 PEM at a few PBKDF2 iteration counts. */
static int pkcs8_probe(const char *type, int count)
{
	static const int iters[] = { 2048, 1000, 1 };
	const char *pass = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	EVP_PKEY *k = NULL;
	size_t j;
	int i;

	if (strcmp(type, "ec-p256") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else if (strcmp(type, "rsa-3072") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	if (!k)
		return 1;
	{
		double t0 = now_s();

		for (i = 0; i < count; i++) {
			BIO *b = BIO_new(BIO_s_mem());

			if (!b || !PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_256_cbc(), pass,
								 (int)strlen(pass), NULL, NULL))
				return 1;
			BIO_free(b);
		}
		printf("PEM_write_bio_PKCS8PrivateKey (OpenSSL default, PBKDF2 2048): %.3f ms/key\n",
		       (now_s() - t0) * 1e3 / count);
	}
	for (j = 0; j < sizeof(iters) / sizeof(iters[0]); j++) {
		double t0 = now_s();

		for (i = 0; i < count; i++) {
			PKCS8_PRIV_KEY_INFO *inf = EVP_PKEY2PKCS8(k);
			X509_ALGOR *alg = PKCS5_pbe2_set_iv(EVP_aes_256_cbc(), iters[j], NULL, 0, NULL,
							    NID_hmacWithSHA256);
			X509_SIG *p8 = NULL;
			BIO *b = BIO_new(BIO_s_mem());

			if (inf && alg)
				p8 = PKCS8_set0_pbe(pass, (int)strlen(pass), inf, alg);
			if (!p8 || !b || !PEM_write_bio_PKCS8(b, p8))
				return 1;
			X509_SIG_free(p8);
			PKCS8_PRIV_KEY_INFO_free(inf);
			BIO_free(b);
		}
		printf("PKCS8_set0_pbe, PBKDF2 %4d iterations: %.3f ms/key\n", iters[j],
		       (now_s() - t0) * 1e3 / count);
	}
	EVP_PKEY_free(k);
	return 0;
}

/*
 * The floor of chain generation: what no tool can skip (a key and a
 * signature per leaf), on one thread.  Prints the CPU time it took.
 */
static int floor_run(int count)
{
	EVP_PKEY *ca = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509_NAME *issuer = X509_NAME_new();
	struct timespec c0, c1;
	double t0 = now_s();
	int i, rc = 1;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	if (!ca || !issuer || !X509_NAME_add_entry_by_txt(issuer, "CN", MBSTRING_ASC, (const unsigned char *)"floor CA", -1, -1, 0))
		goto out;
	for (i = 0; i < count; i++) {
		EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		X509 *x = X509_new();
		char cn[32];
		int ok;

		snprintf(cn, sizeof(cn), "user%04d", i);
		ok = k && x && X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), i + 1) &&
		     X509_set_issuer_name(x, issuer) &&
		     X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) &&
		     X509_gmtime_adj(X509_getm_notBefore(x), 0) && X509_gmtime_adj(X509_getm_notAfter(x), 397L * 86400) &&
		     X509_set_pubkey(x, k) && X509_sign(x, ca, EVP_sha256()) > 0;
		X509_free(x);
		EVP_PKEY_free(k);
		if (!ok)
			goto out;
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	printf("floor: %d EC P-256 keys generated and leaves signed on 1 thread: %.3f s wall, %.3f s CPU\n", count,
	       now_s() - t0, (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9);
	rc = 0;
out:
	X509_NAME_free(issuer);
	EVP_PKEY_free(ca);
	return rc;
}

int main(int argc, char **argv)
{
	struct chain_spec spec;
	struct chain_server srv[2];
	enum spec_key_type kt;
	char *sans0[] = { "pg1.example.net", "10.0.0.11" }, *sans1[] = { "pg2.example.net" };
	char **clients = NULL, *names = NULL;
	struct pki_generation *g = NULL;
	struct pki_file *files = NULL;
	struct manifest *m = NULL;
	struct buf secret = BUF_INIT;
	struct err e = ERR_INIT;
	size_t nfiles = 0, i, n;
	double t0, t1, t2, t3;
	int threads, rc = 1;

	if (argc == 3 && strcmp(argv[1], "--floor") == 0)
		return floor_run(atoi(argv[2]));
	if (argc == 4 && strcmp(argv[1], "--pkcs8-probe") == 0)
		return pkcs8_probe(argv[2], atoi(argv[3]));
	if (argc != 6) {
		fprintf(stderr, "usage: pkibench KEYTYPE NCLIENTS THREADS SECRETFILE OUTDIR\n");
		return 2;
	}
	if (key_type(argv[1], &kt) < 0)
		return 2;
	n = (size_t)strtoul(argv[2], NULL, 10);
	if (n > 1000000)
		return 2;
	threads = atoi(argv[3]);
	clients = calloc(n + 1, sizeof(*clients));
	names = calloc(n + 1, 32);
	if (!clients || !names)
		goto out;
	for (i = 0; i < n; i++) {
		clients[i] = names + 32 * i;
		snprintf(clients[i], 32, "user%04u", (unsigned)i);
	}
	chainspec_server(&srv[0], "pg1", sans0, 2, 0);
	chainspec_server(&srv[1], "pg2", sans1, 1, 0);
	chainspec_init(&spec, "Example", srv, 2, clients, n);
	spec.subj_c = "NL";
	spec.subj_ou = "DBA";
	spec.key = kt;

	if (pki_secret_load(&secret, argv[4], &e) < 0)
		goto fail;
	t0 = now_s();
	if (pki_generate(&g, "bench", 1, &spec, threads, time(NULL), &e) < 0)
		goto fail;
	t1 = now_s();
	if (pki_export(&files, &nfiles, &m, g, "bench", buf_cstr(&secret), time(NULL), &e) < 0)
		goto fail;
	t2 = now_s();
	if (write_out(argv[5], files, nfiles) < 0) {
		fprintf(stderr, "pkibench: cannot write %s: %s\n", argv[5], strerror(errno));
		goto out;
	}
	t3 = now_s();
	fprintf(stderr, "pkibench: %zu certificates on %d threads: generate %.3f s, export %.3f s, write %.3f s\n",
		g->ncerts, g->threads, t1 - t0, t2 - t1, t3 - t2);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "pkibench: %s\n", e.msg);
out:
	buf_wipe(&secret);
	spec_manifest_free(m);
	pki_files_free(files, nfiles);
	pki_generation_free(g);
	free(clients);
	free(names);
	return rc;
}
