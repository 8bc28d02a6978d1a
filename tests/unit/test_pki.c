/*
 * test_pki.c -- reconcile/pki: chains for every key type checked with the
 * real `openssl` command line and the OpenSSL API, the secret key file,
 * encrypted keys, and bad input.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "reconcile/pki/pki.h"
#include "tests/unit/chainspec.h"

/* ---- helpers ---- */

/* snprintf into an array, failing the test on truncation. */
#define XSNPRINTF(a, ...) assert_true(snprintf((a), sizeof(a), __VA_ARGS__) < (int)sizeof(a))

static int sh(const char *fmt, ...) ROTOR_PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Standard output of a shell command, trailing newlines removed. */
static char *sh_out(const char *fmt, ...) ROTOR_PRINTF(1, 2);
static char *sh_out(const char *fmt, ...)
{
	char cmd[4096], tmp[4096];
	struct buf b = BUF_INIT;
	va_list ap;
	size_t n;
	FILE *p;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((n = fread(tmp, 1, sizeof(tmp), p)) > 0)
		assert_int_equal(buf_put(&b, tmp, n), 0);
	assert_int_equal(pclose(p), 0);
	while (b.len && b.ptr[b.len - 1] == '\n')
		buf_truncate(&b, b.len - 1);
	return buf_detach(&b);
}

static void make_tmpdir(char *dir, size_t n)
{
	snprintf(dir, n, "/tmp/rotor-test-pki-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void rm_tree(const char *dir)
{
	assert_int_equal(sh("rm -rf '%s'", dir), 0);
}

static void write_file(const char *path, const void *data, size_t len, int mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void write_files(const char *dir, const struct pki_file *f, size_t n)
{
	char path[PATH_MAX];
	size_t i;

	XSNPRINTF(path, "%s/ca", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	XSNPRINTF(path, "%s/servers", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	XSNPRINTF(path, "%s/clients", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	for (i = 0; i < n; i++) {
		XSNPRINTF(path, "%s/%s", dir, f[i].path);
		write_file(path, f[i].data.ptr, f[i].data.len, f[i].secret ? 0600 : 0644);
	}
}

static X509 *load_cert(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	X509 *x;
	FILE *f;

	XSNPRINTF(path, "%s/%s", dir, rel);
	f = fopen(path, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static int ext_critical(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	assert_true(i >= 0);
	return X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

/* ---- a chain for one key type ---- */

static char s_c[] = "NL", s_st[] = "Noord-Holland", s_l[] = "Amsterdam", s_o[] = "Example", s_ou[] = "DBA";
static char n_pg1[] = "pg1", n_node2[] = "node2";
static char san_pg1_dns[] = "pg1.example.net", san_v4[] = "10.0.0.11", san_v6[] = "2001:db8::11";
static char san_node2_dns[] = "node2.example.net";
static char c_postgres[] = "postgres", c_app[] = "app_rw";

struct small_spec {
	struct chain_spec spec;
	struct chain_server servers[2];
	char *pg1_sans[3];
	char *node2_sans[2];
	char *clients[2];
};

static void spec_init(struct small_spec *s, enum spec_key_type t, int small)
{
	memset(s, 0, sizeof(*s));
	s->pg1_sans[0] = san_pg1_dns;
	s->pg1_sans[1] = san_v4;
	s->pg1_sans[2] = san_v6;
	s->node2_sans[0] = san_node2_dns;
	s->node2_sans[1] = n_node2;       /* the name again: not repeated */
	chainspec_server(&s->servers[0], n_pg1, s->pg1_sans, 3, 0);
	chainspec_server(&s->servers[1], n_node2, s->node2_sans, 2, 1);
	s->clients[0] = c_postgres;
	s->clients[1] = c_app;
	chainspec_init(&s->spec, s_o, s->servers, small ? 1 : 2, s->clients, small ? 1 : 2);
	s->spec.subj_c = s_c;
	s->spec.subj_st = s_st;
	s->spec.subj_l = s_l;
	s->spec.subj_ou = s_ou;
	s->spec.key = t;
	s->spec.intermediate_days = 30;
	s->spec.leaf_days = 400;          /* longer than the intermediates: clamped */
}

static const char *dir_of(enum cert_role r)
{
	return r == CERT_ROLE_SERVER ? "servers" : r == CERT_ROLE_CLIENT ? "clients" : "ca";
}

static void check_times(X509 *x, time_t nb, time_t na)
{
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notBefore(x), nb), 0);
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), na), 0);
}

/* The certificate's subjectPublicKeyInfo is exactly the key's. */
static void check_spki(X509 *x, EVP_PKEY *k)
{
	unsigned char *a = NULL, *b = NULL;
	int na, nb;

	na = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &a);
	nb = i2d_PUBKEY(k, &b);
	assert_true(na > 0);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, (size_t)na);
	OPENSSL_free(a);
	OPENSSL_free(b);
}

static void check_serial(X509 *x)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);

	assert_non_null(bn);
	assert_false(BN_is_negative(bn));
	assert_false(BN_is_zero(bn));
	assert_true(BN_num_bits(bn) >= 128);
	assert_int_equal(BN_num_bits(bn), 159);
	BN_free(bn);
}

/* SKI, then AKI with only a keyid equal to the issuer's SKI. */
static void check_keyids(X509 *x, X509 *issuer)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
	const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
	int iski = X509_get_ext_by_NID(x, NID_subject_key_identifier, -1);
	int iaki = X509_get_ext_by_NID(x, NID_authority_key_identifier, -1);

	assert_non_null(ski);
	assert_non_null(aki);
	assert_int_equal(ASN1_STRING_length(ski), 20);
	assert_true(iski >= 0 && iaki > iski);
	assert_int_equal(ext_critical(x, NID_subject_key_identifier), 0);
	assert_int_equal(ext_critical(x, NID_authority_key_identifier), 0);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(issuer)), 0);
	assert_null(X509_get0_authority_issuer(x));
	assert_null(X509_get0_authority_serial(x));
}

static void check_bc(X509 *x, int ca, long pathlen)
{
	BASIC_CONSTRAINTS *bc;
	int crit = -1;

	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	assert_int_equal(!!bc->ca, ca);
	if (pathlen < 0)
		assert_null(bc->pathlen);
	else {
		assert_non_null(bc->pathlen);
		assert_int_equal(ASN1_INTEGER_get(bc->pathlen), pathlen);
	}
	BASIC_CONSTRAINTS_free(bc);
}

static void check_key_type(X509 *x, enum spec_key_type t)
{
	EVP_PKEY *k = X509_get0_pubkey(x);
	int sig = X509_get_signature_nid(x);

	assert_non_null(k);
	switch (t) {
	case SPEC_KEY_EC_P256:
		assert_true(EVP_PKEY_is_a(k, "EC"));
		assert_int_equal(EVP_PKEY_get_bits(k), 256);
		assert_int_equal(sig, NID_ecdsa_with_SHA256);
		break;
	case SPEC_KEY_EC_P384:
		assert_true(EVP_PKEY_is_a(k, "EC"));
		assert_int_equal(EVP_PKEY_get_bits(k), 384);
		assert_int_equal(sig, NID_ecdsa_with_SHA384);
		break;
	case SPEC_KEY_RSA_2048:
	case SPEC_KEY_RSA_3072:
	case SPEC_KEY_RSA_4096:
		assert_true(EVP_PKEY_is_a(k, "RSA"));
		assert_int_equal(EVP_PKEY_get_bits(k),
				 t == SPEC_KEY_RSA_2048 ? 2048 : t == SPEC_KEY_RSA_3072 ? 3072 : 4096);
		assert_int_equal(sig, NID_sha256WithRSAEncryption);
		break;
	case SPEC_KEY_ED25519:
		assert_true(EVP_PKEY_is_a(k, "ED25519"));
		assert_int_equal(sig, NID_ED25519);
		break;
	}
}

static void check_sans_pg1(X509 *x)
{
	static const unsigned char v4[4] = { 10, 0, 0, 11 };
	static const unsigned char v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11 };
	GENERAL_NAMES *g;
	GENERAL_NAME *n;
	int crit = -1;

	g = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	assert_non_null(g);
	assert_int_equal(crit, 0);
	assert_int_equal(sk_GENERAL_NAME_num(g), 4);
	n = sk_GENERAL_NAME_value(g, 0);
	assert_int_equal(n->type, GEN_DNS);
	assert_string_equal((const char *)ASN1_STRING_get0_data(n->d.dNSName), "pg1");
	n = sk_GENERAL_NAME_value(g, 1);
	assert_int_equal(n->type, GEN_DNS);
	assert_string_equal((const char *)ASN1_STRING_get0_data(n->d.dNSName), "pg1.example.net");
	n = sk_GENERAL_NAME_value(g, 2);
	assert_int_equal(n->type, GEN_IPADD);
	assert_int_equal(ASN1_STRING_length(n->d.iPAddress), 4);
	assert_memory_equal(ASN1_STRING_get0_data(n->d.iPAddress), v4, 4);
	n = sk_GENERAL_NAME_value(g, 3);
	assert_int_equal(n->type, GEN_IPADD);
	assert_int_equal(ASN1_STRING_length(n->d.iPAddress), 16);
	assert_memory_equal(ASN1_STRING_get0_data(n->d.iPAddress), v6, 16);
	GENERAL_NAMES_free(g);
}

static void check_sans_node2(X509 *x)
{
	GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);

	assert_non_null(g);
	assert_int_equal(sk_GENERAL_NAME_num(g), 2);
	assert_int_equal(sk_GENERAL_NAME_value(g, 0)->type, GEN_DNS);
	assert_int_equal(sk_GENERAL_NAME_value(g, 1)->type, GEN_DNS);
	GENERAL_NAMES_free(g);
}

static char *subject_2253(X509 *x)
{
	struct manifest_cert mc;
	struct err e = ERR_INIT;
	unsigned char *der = NULL;
	char *s;
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	/* Round trip through pki_cert_describe with the PEM form. */
	assert_non_null(b);
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	n = (int)BIO_get_mem_data(b, (char **)&der);
	memset(&mc, 0, sizeof(mc));
	assert_int_equal(pki_cert_describe(&mc, (const char *)der, (size_t)n, &e), 0);
	BIO_free(b);
	s = mc.subject;
	mc.subject = NULL;
	spec_manifest_cert_release(&mc);
	return s;
}

/* `openssl verify` of leaf.crt in dir with the purpose, as a peer would: its exit status. */
static int openssl_verify(const char *dir, const char *ca, const char *purpose, const char *leaf)
{
	return sh("cd '%s' && openssl verify -CAfile ca/root.crt -untrusted ca/%s.crt -purpose %s %s.crt >/dev/null 2>&1",
		  dir, ca, purpose, leaf);
}

static void check_chain(enum spec_key_type t, int small)
{
	struct small_spec ss;
	struct pki_generation *g = NULL;
	struct pki_file *files = NULL;
	struct manifest *m = NULL;
	struct err e = ERR_INIT;
	struct buf secret = BUF_INIT;
	char dir[PATH_MAX], keyfile[PATH_MAX], gen[PATH_MAX], *s, *s2;
	const char *expect_paths[32];
	size_t nfiles = 0, nexp = 0, i;
	time_t now = time(NULL);
	X509 *x, *root, *sca, *cca;
	struct stat st;
	int rsa = t == SPEC_KEY_RSA_2048 || t == SPEC_KEY_RSA_3072 || t == SPEC_KEY_RSA_4096;
	int rc;

	spec_init(&ss, t, small);
	rc = pki_generate(&g, "poc", 2, &ss.spec, 2, now, &e);
	assert_string_equal(e.msg, "");
	assert_int_equal(rc, 0);
	assert_int_equal(g->number, 2);
	assert_int_equal(g->ncerts, 3 + ss.spec.nservers + ss.spec.nclients);
	assert_string_equal(g->certs[0].name, "root");
	assert_int_equal(g->certs[0].role, CERT_ROLE_ROOT);
	assert_string_equal(g->certs[1].name, "server-ca");
	assert_int_equal(g->certs[1].role, CERT_ROLE_SERVER_CA);
	assert_string_equal(g->certs[2].name, "client-ca");
	assert_int_equal(g->certs[2].role, CERT_ROLE_CLIENT_CA);
	assert_string_equal(g->certs[3].name, "pg1");
	assert_int_equal(g->certs[3].role, CERT_ROLE_SERVER);
	assert_string_equal(g->certs[g->ncerts - ss.spec.nclients].name, "postgres");
	assert_int_equal(g->certs[g->ncerts - 1].role, CERT_ROLE_CLIENT);
	for (i = 0; i < g->ncerts; i++) {
		EVP_PKEY *ik = g->certs[i < 3 ? 0 : g->certs[i].role == CERT_ROLE_SERVER ? 1 : 2].pkey;

		check_spki(g->certs[i].x509, g->certs[i].pkey);
		assert_int_equal(X509_verify(g->certs[i].x509, ik), 1);
	}

	/* The secret key file: parents 0700, the file 0600. */
	make_tmpdir(dir, sizeof(dir));
	XSNPRINTF(keyfile, "%s/keys/sub/k.key", dir);
	assert_int_equal(pki_secret_create(keyfile, &e), 0);
	assert_int_equal(stat(keyfile, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	XSNPRINTF(gen, "%s/keys/sub", dir);
	assert_int_equal(stat(gen, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(pki_secret_load(&secret, keyfile, &e), 0);
	assert_int_equal(secret.len, 64);

	rc = pki_export(&files, &nfiles, &m, g, "poc", buf_cstr(&secret), now, &e);
	assert_string_equal(e.msg, "");
	assert_int_equal(rc, 0);
	assert_non_null(m);

	/* Stable file order. */
	expect_paths[nexp++] = "ca/root.crt";
	expect_paths[nexp++] = "ca/root.key";
	expect_paths[nexp++] = "ca/server-ca.crt";
	expect_paths[nexp++] = "ca/server-ca.key";
	expect_paths[nexp++] = "ca/client-ca.crt";
	expect_paths[nexp++] = "ca/client-ca.key";
	expect_paths[nexp++] = "servers/pg1.crt";
	expect_paths[nexp++] = "servers/pg1.key";
	if (!small) {
		expect_paths[nexp++] = "servers/node2.crt";
		expect_paths[nexp++] = "servers/node2.key";
	}
	expect_paths[nexp++] = "clients/postgres.crt";
	expect_paths[nexp++] = "clients/postgres.key";
	if (!small) {
		expect_paths[nexp++] = "clients/app_rw.crt";
		expect_paths[nexp++] = "clients/app_rw.key";
	}
	expect_paths[nexp++] = "manifest.yaml";
	assert_int_equal(nfiles, nexp);
	for (i = 0; i < nfiles; i++) {
		int is_key = strstr(files[i].path, ".key") != NULL;

		assert_string_equal(files[i].path, expect_paths[i]);
		assert_int_equal(files[i].secret, is_key);
		if (is_key)
			assert_true(strncmp(files[i].data.ptr, "-----BEGIN ENCRYPTED PRIVATE KEY-----\n", 38) == 0);
		else if (strstr(files[i].path, ".crt"))
			assert_true(strncmp(files[i].data.ptr, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
		assert_null(memmem(files[i].data.ptr, files[i].data.len, secret.ptr, secret.len));
	}
	XSNPRINTF(gen, "%s/gen", dir);
	assert_int_equal(mkdir(gen, 0700), 0);
	write_files(gen, files, nfiles);

	/* openssl verify with the purposes, as a peer would. */
	assert_int_equal(openssl_verify(gen, "server-ca", "sslserver", "servers/pg1"), 0);
	assert_int_equal(openssl_verify(gen, "server-ca", "sslclient", "servers/pg1"), 2);
	assert_int_equal(openssl_verify(gen, "client-ca", "sslclient", "clients/postgres"), 0);
	assert_int_equal(openssl_verify(gen, "client-ca", "sslserver", "clients/postgres"), 2);
	/* A client leaf does not chain to the server CA, nor a server leaf to the client CA. */
	assert_int_equal(openssl_verify(gen, "server-ca", "sslclient", "clients/postgres"), 2);
	if (!small) {
		assert_int_equal(openssl_verify(gen, "server-ca", "sslserver", "servers/node2"), 0);
		assert_int_equal(openssl_verify(gen, "server-ca", "sslclient", "servers/node2"), 0);
		assert_int_equal(openssl_verify(gen, "client-ca", "sslclient", "clients/app_rw"), 0);
	}

	/* Every key decrypts with the secret file and matches its certificate. */
	for (i = 0; i < g->ncerts; i++) {
		s = sh_out("cd '%s' && openssl pkey -in %s/%s.key -passin 'file:%s' -pubout",
			   gen, dir_of(g->certs[i].role), g->certs[i].name, keyfile);
		s2 = sh_out("cd '%s' && openssl x509 -in %s/%s.crt -noout -pubkey",
			    gen, dir_of(g->certs[i].role), g->certs[i].name);
		assert_true(strncmp(s, "-----BEGIN PUBLIC KEY-----", 26) == 0);
		assert_string_equal(s, s2);
		free(s);
		free(s2);
		/* The private key matches its public half, and the decrypted PrivateKeyInfo
		   is byte for byte what OpenSSL's own encoder writes for that key. */
		s = sh_out("cd '%s' && k=%s/%s.key && openssl pkey -in $k -passin 'file:%s' -check -noout && "
			   "a=$(openssl pkcs8 -in $k -passin 'file:%s' -outform DER | od -An -tx1) && "
			   "b=$(openssl pkey -in $k -passin 'file:%s' -outform DER | od -An -tx1) && "
			   "test ${#a} -gt 100 && test \"$a\" = \"$b\" && echo same",
			   gen, dir_of(g->certs[i].role), g->certs[i].name, keyfile, keyfile, keyfile);
		if (!strstr(s, "Key is valid") || !strstr(s, "same"))
			fail_msg("%s: the key does not check or re-encodes differently: %s", g->certs[i].name, s);
		free(s);
	}
	/* The encryption is the one the README states: PBES2, PBKDF2-HMAC-SHA256, 1 iteration, a 16-byte salt, AES-256-CBC. */
	s = sh_out("cd '%s' && openssl asn1parse -in clients/postgres.key | "
		   "sed -n 's/.*\\(OBJECT\\|INTEGER\\|OCTET STRING\\) *:\\{0,1\\}//p' | tr -s ' \\n' ' '", gen);
	assert_non_null(strstr(s, "PBES2 PBKDF2 "));
	assert_non_null(strstr(s, " 01 hmacWithSHA256 aes-256-cbc "));
	free(s);
	s = sh_out("cd '%s' && openssl asn1parse -in clients/postgres.key | sed -n '/PBKDF2/{n;n;p;q}'", gen);
	assert_non_null(strstr(s, "prim: OCTET STRING"));
	assert_non_null(strstr(s, "l=  16"));
	free(s);
	/* ... and not with another passphrase. */
	assert_int_equal(sh("cd '%s' && echo wrong >wrong.pass && openssl pkey -in ca/root.key "
			    "-passin file:wrong.pass -noout >/dev/null 2>&1", dir), 1);

	/* Extensions, serials, validity, names, algorithms. */
	root = load_cert(gen, "ca/root.crt");
	sca = load_cert(gen, "ca/server-ca.crt");
	cca = load_cert(gen, "ca/client-ca.crt");
	for (i = 0; i < 3; i++) {
		x = i == 0 ? root : i == 1 ? sca : cca;
		check_bc(x, 1, i == 0 ? -1 : 0);
		assert_int_equal(ext_critical(x, NID_key_usage), 1);
		assert_int_equal(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
		assert_int_equal(X509_get_ext_by_NID(x, NID_ext_key_usage, -1), -1);
		assert_int_equal(X509_get_ext_by_NID(x, NID_subject_alt_name, -1), -1);
		check_keyids(x, i == 0 ? root : root);
		check_serial(x);
		check_key_type(x, t);
		assert_int_equal(X509_check_issued(root, x), X509_V_OK);
	}
	assert_int_equal(X509_get_version(root), X509_VERSION_3);
	check_times(root, now - 300, now + 3650L * 86400);
	check_times(sca, now - 300, now + 30L * 86400);
	check_times(cca, now - 300, now + 30L * 86400);
	s = subject_2253(root);
	assert_string_equal(s, "CN=poc root g2,OU=DBA,O=Example,L=Amsterdam,ST=Noord-Holland,C=NL");
	free(s);
	s = subject_2253(sca);
	assert_string_equal(s, "CN=poc server CA g2,OU=DBA,O=Example,L=Amsterdam,ST=Noord-Holland,C=NL");
	free(s);
	s = subject_2253(cca);
	assert_string_equal(s, "CN=poc client CA g2,OU=DBA,O=Example,L=Amsterdam,ST=Noord-Holland,C=NL");
	free(s);

	for (i = 3; i < g->ncerts; i++) {
		char rel[128];
		int server = g->certs[i].role == CERT_ROLE_SERVER;
		X509 *iss = server ? sca : cca;
		uint32_t ku = KU_DIGITAL_SIGNATURE | (rsa ? KU_KEY_ENCIPHERMENT : 0);
		char want[256];

		XSNPRINTF(rel, "%s/%s.crt", dir_of(g->certs[i].role), g->certs[i].name);
		x = load_cert(gen, rel);
		check_bc(x, 0, -1);
		assert_int_equal(ext_critical(x, NID_key_usage), 1);
		assert_int_equal(X509_get_key_usage(x), ku);
		assert_int_equal(ext_critical(x, NID_ext_key_usage), 0);
		if (!server)
			assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_CLIENT);
		else if (strcmp(g->certs[i].name, "node2") == 0)
			assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER | XKU_SSL_CLIENT);
		else
			assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
		if (!server)
			assert_int_equal(X509_get_ext_by_NID(x, NID_subject_alt_name, -1), -1);
		else if (strcmp(g->certs[i].name, "pg1") == 0)
			check_sans_pg1(x);
		else
			check_sans_node2(x);
		check_keyids(x, iss);
		check_serial(x);
		check_key_type(x, t);
		assert_int_equal(X509_check_issued(iss, x), X509_V_OK);
		/* leaf_days 400 > intermediate_days 30: clamped to the CA's notAfter. */
		check_times(x, now - 300, now + 30L * 86400);
		assert_true(ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(iss)) <= 0);
		s = subject_2253(x);
		XSNPRINTF(want, "CN=%s,OU=DBA,O=Example,L=Amsterdam,ST=Noord-Holland,C=NL",
			 g->certs[i].name);
		assert_string_equal(s, want);
		free(s);
		X509_free(x);
	}

	/* The manifest agrees with what openssl prints. */
	assert_int_equal(m->version, 1);
	assert_string_equal(m->env, "poc");
	assert_int_equal(m->generation, 2);
	assert_int_equal(m->imported, 0);
	assert_int_equal(m->ncerts, g->ncerts);
	for (i = 0; i < m->ncerts; i++) {
		const struct manifest_cert *mc = &m->certs[i];
		char want[256];

		assert_string_equal(mc->name, g->certs[i].name);
		assert_int_equal(mc->role, g->certs[i].role);
		XSNPRINTF(want, "%s/%s.crt", dir_of(mc->role), mc->name);
		assert_string_equal(mc->cert, want);
		XSNPRINTF(want, "%s/%s.key", dir_of(mc->role), mc->name);
		assert_string_equal(mc->key, want);
		s = sh_out("cd '%s' && openssl x509 -in %s -noout -fingerprint -sha256", gen, mc->cert);
		XSNPRINTF(want, "sha256 Fingerprint=%s", mc->fingerprint);
		assert_string_equal(s, want);
		free(s);
		s = sh_out("cd '%s' && openssl x509 -in %s -noout -serial | tr A-F a-f", gen, mc->cert);
		XSNPRINTF(want, "serial=%s", mc->serial);
		assert_string_equal(s, want);
		free(s);
		assert_int_equal(strlen(mc->ski), 59);
		assert_int_equal(strlen(mc->aki), 59);
		assert_string_equal(mc->not_before + 19, "Z");
		assert_int_equal(mc->not_before[10], 'T');
		assert_true(strstr(files[nfiles - 1].data.ptr, mc->fingerprint) != NULL);
	}
	/* manifest.yaml loads back into the same manifest. */
	{
		struct manifest *back = NULL;
		struct diags d = { NULL, 0, 0 };

		assert_int_equal(spec_load_manifest(&back, "manifest.yaml", files[nfiles - 1].data.ptr,
						    files[nfiles - 1].data.len, &d), 0);
		assert_int_equal(back->generation, 2);
		assert_string_equal(back->env, "poc");
		assert_string_equal(back->created, m->created);
		assert_int_equal(back->ncerts, m->ncerts);
		for (i = 0; i < m->ncerts; i++) {
			assert_string_equal(back->certs[i].name, m->certs[i].name);
			assert_int_equal(back->certs[i].role, m->certs[i].role);
			assert_string_equal(back->certs[i].key, m->certs[i].key);
			assert_string_equal(back->certs[i].subject, m->certs[i].subject);
			assert_string_equal(back->certs[i].issuer, m->certs[i].issuer);
			assert_string_equal(back->certs[i].fingerprint, m->certs[i].fingerprint);
			assert_string_equal(back->certs[i].serial, m->certs[i].serial);
			assert_string_equal(back->certs[i].ski, m->certs[i].ski);
			assert_string_equal(back->certs[i].aki, m->certs[i].aki);
			assert_string_equal(back->certs[i].not_before, m->certs[i].not_before);
			assert_string_equal(back->certs[i].not_after, m->certs[i].not_after);
		}
		spec_manifest_free(back);
		diags_release(&d);
	}
	assert_string_equal(m->certs[0].ski, m->certs[0].aki);
	assert_string_equal(m->certs[1].aki, m->certs[0].ski);
	assert_string_equal(m->certs[3].aki, m->certs[1].ski);
	assert_string_equal(m->certs[g->ncerts - 1].aki, m->certs[2].ski);
	assert_string_equal(m->certs[0].subject, m->certs[0].issuer);
	assert_string_equal(m->certs[3].issuer, m->certs[1].subject);

	/* pki_key_check: the right secret opens every key, a wrong one none. */
	for (i = 0; i < nfiles; i++) {
		if (!files[i].secret)
			continue;
		assert_int_equal(pki_key_check(files[i].data.ptr, files[i].data.len, buf_cstr(&secret), &e), 0);
	}
	s = strdup(buf_cstr(&secret));
	assert_non_null(s);
	s[0] = s[0] == 'a' ? 'b' : 'a';
	err_clear(&e);
	assert_int_equal(pki_key_check(files[1].data.ptr, files[1].data.len, s, &e), ROTOR_ESECRET);
	assert_null(strstr(e.msg, s));
	assert_null(strstr(e.msg, buf_cstr(&secret)));
	free(s);

	X509_free(root);
	X509_free(sca);
	X509_free(cca);
	spec_manifest_free(m);
	pki_files_free(files, nfiles);
	pki_generation_free(g);
	buf_wipe(&secret);
	rm_tree(dir);
}

static void test_chain_ec_p256(void **state) { (void)state; check_chain(SPEC_KEY_EC_P256, 0); }
static void test_chain_ec_p384(void **state) { (void)state; check_chain(SPEC_KEY_EC_P384, 0); }
static void test_chain_rsa_2048(void **state) { (void)state; check_chain(SPEC_KEY_RSA_2048, 0); }
static void test_chain_rsa_3072(void **state) { (void)state; check_chain(SPEC_KEY_RSA_3072, 0); }
static void test_chain_rsa_4096(void **state) { (void)state; check_chain(SPEC_KEY_RSA_4096, 1); }
static void test_chain_ed25519(void **state) { (void)state; check_chain(SPEC_KEY_ED25519, 0); }

/* ---- the rest ---- */

/* Output order and names do not depend on the thread count. */
static void test_threads_order(void **state)
{
	enum { NCLIENTS = 40 };
	struct small_spec ss;
	struct pki_generation *g[3] = { NULL, NULL, NULL };
	static const int threads[3] = { 1, 4, 0 };
	char names[NCLIENTS][16], *clients[NCLIENTS];
	struct err e = ERR_INIT;
	time_t now = time(NULL);
	size_t i, k;

	(void)state;
	spec_init(&ss, SPEC_KEY_EC_P256, 0);
	for (i = 0; i < NCLIENTS; i++) {
		snprintf(names[i], sizeof(names[i]), "user%02zu", NCLIENTS - i);
		clients[i] = names[i];
	}
	ss.spec.clients = clients;
	ss.spec.nclients = NCLIENTS;
	for (k = 0; k < 3; k++) {
		assert_int_equal(pki_generate(&g[k], "poc", 1, &ss.spec, threads[k], now, &e), 0);
		assert_int_equal(g[k]->ncerts, 3 + 2 + NCLIENTS);
	}
	assert_int_equal(g[0]->threads, 1);
	assert_int_equal(g[1]->threads, 4);
	assert_true(g[2]->threads >= 1);
	for (i = 0; i < g[0]->ncerts; i++) {
		X509 *x0 = g[0]->certs[i].x509;
		const X509_NAME *iss = X509_get_issuer_name(x0);

		for (k = 1; k < 3; k++) {
			assert_string_equal(g[0]->certs[i].name, g[k]->certs[i].name);
			assert_int_equal(g[0]->certs[i].role, g[k]->certs[i].role);
			assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x0),
						       X509_get_subject_name(g[k]->certs[i].x509)), 0);
		}
		if (i >= 5) {
			assert_string_equal(g[0]->certs[i].name, names[i - 5]);
			assert_int_equal(X509_NAME_cmp(iss, X509_get_subject_name(g[0]->certs[2].x509)), 0);
			check_spki(x0, g[0]->certs[i].pkey);
			check_spki(g[1]->certs[i].x509, g[1]->certs[i].pkey);
			assert_int_equal(X509_verify(x0, g[0]->certs[2].pkey), 1);
		}
		/* Distinct serials. */
		for (k = 0; k < i; k++)
			assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(x0),
							      X509_get0_serialNumber(g[0]->certs[k].x509)), 0);
	}
	/* No passphrase, no export; nothing is handed out. */
	{
		struct pki_file *f = NULL;
		struct manifest *m = NULL;
		size_t nf = 7;

		assert_int_equal(pki_export(&f, &nf, &m, g[0], "poc", "", now, &e), ROTOR_ESECRET);
		assert_null(f);
		assert_null(m);
		assert_int_equal(nf, 0);
	}
	for (k = 0; k < 3; k++)
		pki_generation_free(g[k]);
}

static void expect_invalid(struct small_spec *ss, const char *what)
{
	struct pki_generation *g = NULL;
	struct err e = ERR_INIT;

	assert_int_equal(pki_generate(&g, "poc", 1, &ss->spec, 2, time(NULL), &e), ROTOR_EINVALID);
	assert_null(g);
	assert_non_null(strstr(e.msg, what));
}

static void test_invalid_spec(void **state)
{
	struct small_spec ss;
	char bad_ip[] = "10.0.0.999", bad_dns[] = "pg1 example", bad_name[] = "../x", bad_c[] = "NLD";
	char dup[] = "postgres";
	struct pki_generation *g = NULL;
	struct err e = ERR_INIT;

	(void)state;
	spec_init(&ss, SPEC_KEY_EC_P256, 0);
	ss.pg1_sans[1] = bad_ip;
	expect_invalid(&ss, "10.0.0.999");
	spec_init(&ss, SPEC_KEY_EC_P256, 0);
	ss.pg1_sans[0] = bad_dns;
	expect_invalid(&ss, "pg1 example");
	spec_init(&ss, SPEC_KEY_EC_P256, 0);
	ss.servers[1].name = bad_name;
	expect_invalid(&ss, "invalid server name");
	spec_init(&ss, SPEC_KEY_EC_P256, 0);
	ss.clients[1] = dup;
	expect_invalid(&ss, "listed twice");
	spec_init(&ss, SPEC_KEY_EC_P256, 0);
	ss.spec.subj_c = bad_c;
	expect_invalid(&ss, "subject C");
	spec_init(&ss, SPEC_KEY_EC_P256, 0);
	ss.spec.leaf_days = 0;
	expect_invalid(&ss, "validity");
	spec_init(&ss, SPEC_KEY_EC_P256, 0);
	assert_int_equal(pki_generate(&g, "", 1, &ss.spec, 1, time(NULL), &e), ROTOR_EINVALID);
	assert_int_equal(pki_generate(&g, "poc", 0, &ss.spec, 1, time(NULL), &e), ROTOR_EINVALID);
	assert_int_equal(pki_generate(&g, "poc", 1, &ss.spec, -1, time(NULL), &e), ROTOR_EINVALID);
	assert_null(g);
}

static void test_secret_file(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX], id[17], *want;
	struct buf s = BUF_INIT, raw = BUF_INIT;
	struct err e = ERR_INIT;
	struct stat st;
	size_t i;

	(void)state;
	make_tmpdir(dir, sizeof(dir));
	XSNPRINTF(path, "%s/a/b/c.key", dir);
	assert_int_equal(pki_secret_create(path, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(buf_read_file(&raw, path, 1024, &e), 0);
	assert_int_equal(raw.len, 65);
	assert_int_equal(raw.ptr[64], '\n');
	for (i = 0; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef", raw.ptr[i]));
	/* Never overwritten. */
	assert_int_equal(pki_secret_create(path, &e), ROTOR_EEXISTS);
	assert_non_null(strstr(e.msg, path));

	assert_int_equal(pki_secret_load(&s, path, &e), 0);
	assert_int_equal(s.len, 64);
	assert_memory_equal(s.ptr, raw.ptr, 64);

	/* The key id: SHA-256("rotor key id\n" || secret), first 8 bytes. */
	assert_int_equal(pki_secret_id(id, buf_cstr(&s)), 0);
	want = sh_out("printf 'rotor key id\\n%s' | openssl dgst -sha256 -r | cut -c1-16", buf_cstr(&s));
	assert_string_equal(id, want);
	free(want);
	buf_wipe(&s);

	/* Group or other bits: refused, naming the path, not showing the secret. */
	assert_int_equal(chmod(path, 0644), 0);
	err_clear(&e);
	assert_int_equal(pki_secret_load(&s, path, &e), ROTOR_ESECRET);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "0644"));
	assert_null(memmem(e.msg, strlen(e.msg), raw.ptr, 64));
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(pki_secret_load(&s, path, &e), ROTOR_ESECRET);
	assert_int_equal(s.len, 0);

	/* Bad formats. */
	{
		static const char *const bad[] = {
			"", "abc\n",
			"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\n",
			"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\n",
			"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0\n",
			"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n",
			" 123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
		};
		char p2[PATH_MAX + 16];

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			XSNPRINTF(p2, "%s/bad%zu.key", dir, i);
			write_file(p2, bad[i], strlen(bad[i]), 0600);
			err_clear(&e);
			assert_int_equal(pki_secret_load(&s, p2, &e), ROTOR_ESECRET);
			assert_non_null(strstr(e.msg, p2));
		}
		/* Without the final newline it is still accepted. */
		XSNPRINTF(p2, "%s/nonl.key", dir);
		write_file(p2, raw.ptr, 64, 0600);
		assert_int_equal(pki_secret_load(&s, p2, &e), 0);
		assert_int_equal(s.len, 64);
		buf_wipe(&s);
	}

	/* Missing file: a clear message. */
	XSNPRINTF(path, "%s/missing.key", dir);
	err_clear(&e);
	assert_int_equal(pki_secret_load(&s, path, &e), ROTOR_ESECRET);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "does not exist"));

	buf_wipe(&raw);
	rm_tree(dir);
}

static void test_key_check_input(void **state)
{
	static const char not_pem[] = "hello\n";
	struct err e = ERR_INIT;
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n;

	(void)state;
	assert_non_null(k);
	assert_non_null(b);
	/* An unencrypted key proves nothing about the secret. */
	assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(b, &p);
	assert_int_equal(pki_key_check(p, (size_t)n, "x", &e), ROTOR_EINVALID);
	assert_non_null(strstr(e.msg, "PRIVATE KEY"));
	assert_int_equal(pki_key_check(not_pem, sizeof(not_pem) - 1, "x", &e), ROTOR_EINVALID);
	BIO_free(b);
	EVP_PKEY_free(k);
}

/* A generated certificate encoded and decoded again (its public key decoded: see struct pki_cert). */
static X509 *reread(X509 *x)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int n = i2d_X509(x, &der);
	X509 *y;

	assert_true(n > 0);
	p = der;
	y = d2i_X509(NULL, &p, n);
	OPENSSL_free(der);
	assert_non_null(y);
	return y;
}

/* Verify leaf (X509 *) as PostgreSQL does with ssl_crl_file: root trusted, CRL_CHECK | CRL_CHECK_ALL. */
static int crl_verify(X509 *root_g, X509 *ica_g, X509 *leaf_g, const char *crls_pem, size_t len)
{
	X509 *root = reread(root_g), *ica = reread(ica_g), *leaf = reread(leaf_g);
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *chain = sk_X509_new_null();
	BIO *b = BIO_new_mem_buf(crls_pem, (int)len);
	X509_CRL *c;
	int rc;

	assert_non_null(st);
	assert_non_null(ctx);
	assert_int_equal(X509_STORE_add_cert(st, root), 1);
	while ((c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
		assert_int_equal(X509_STORE_add_crl(st, c), 1);
		X509_CRL_free(c);
	}
	ERR_clear_error();
	X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	sk_X509_push(chain, ica);
	assert_int_equal(X509_STORE_CTX_init(ctx, st, leaf, chain), 1);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	rc = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	sk_X509_free(chain);
	BIO_free(b);
	X509_free(root);
	X509_free(ica);
	X509_free(leaf);
	return rc;
}

/* CRLs signed by a generation's CAs, read back, and honoured by OpenSSL's verification. */
static void test_crl_sign_read_verify(void **state)
{
	static char *clients[] = { "app", "gone" };
	struct chain_spec spec;
	struct pki_generation *g = NULL, *one = NULL;
	struct pki_crl_info ci;
	struct buf root_crl = BUF_INIT, ca_crl = BUF_INIT, ca_crl2 = BUF_INIT, both = BUF_INIT, x = BUF_INIT;
	struct manifest_cert gone;
	struct err e = ERR_INIT;
	const char *serials[2];
	BIO *b;
	time_t now = time(NULL);

	(void)state;
	chainspec_init(&spec, "Example", NULL, 0, clients, 2);
	assert_int_equal(pki_generate(&g, "poc", 3, &spec, 1, now, &e), 0);
	/* Empty CRLs of the root and the client CA: the state rotate start commits. */
	assert_int_equal(pki_crl_sign(&root_crl, g->certs[0].x509, g->certs[0].pkey, NULL, 0, NULL, 0, now, 30, &e), 0);
	assert_int_equal(pki_crl_sign(&ca_crl, g->certs[2].x509, g->certs[2].pkey, NULL, 0, NULL, 0, now, 30, &e), 0);
	assert_int_equal(pki_crl_read(&ci, ca_crl.ptr, ca_crl.len, &e), 0);
	assert_non_null(strstr(ci.issuer, "CN=poc client CA g3"));
	assert_int_equal(ci.nserials, 0);
	assert_int_equal(ci.number, 1);
	assert_true(ci.next_update == now + 30 * 86400);
	assert_true(ci.last_update == now - 300);
	pki_crl_info_release(&ci);
	buf_put(&both, root_crl.ptr, root_crl.len);
	buf_put(&both, ca_crl.ptr, ca_crl.len);
	assert_int_equal(crl_verify(g->certs[0].x509, g->certs[2].x509, g->certs[4].x509, both.ptr, both.len), X509_V_OK);
	/* Without the root's CRL, CRL_CHECK_ALL cannot check the client CA: why root.crl exists. */
	assert_int_equal(crl_verify(g->certs[0].x509, g->certs[2].x509, g->certs[4].x509, ca_crl.ptr, ca_crl.len),
			 X509_V_ERR_UNABLE_TO_GET_CRL);

	/* Revoke "gone" (certs[4]), twice over: listed once; the CRL number goes up. */
	memset(&gone, 0, sizeof(gone));
	b = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_X509(b, g->certs[4].x509), 1);
	{
		BUF_MEM *m;

		BIO_get_mem_ptr(b, &m);
		assert_int_equal(pki_cert_describe(&gone, m->data, m->length, &e), 0);
	}
	BIO_free(b);
	assert_string_equal(gone.subject, "CN=gone,O=Example");
	serials[0] = gone.serial;
	serials[1] = gone.serial;
	assert_int_equal(pki_crl_sign(&ca_crl2, g->certs[2].x509, g->certs[2].pkey, ca_crl.ptr, ca_crl.len, serials, 2,
				      now + 60, 30, &e), 0);
	assert_int_equal(pki_crl_read(&ci, ca_crl2.ptr, ca_crl2.len, &e), 0);
	assert_int_equal(ci.nserials, 1);
	assert_string_equal(ci.serials[0], gone.serial);
	assert_int_equal(ci.number, 2);
	pki_crl_info_release(&ci);
	buf_release(&both);
	buf_put(&both, root_crl.ptr, root_crl.len);
	buf_put(&both, ca_crl2.ptr, ca_crl2.len);
	assert_int_equal(crl_verify(g->certs[0].x509, g->certs[2].x509, g->certs[4].x509, both.ptr, both.len),
			 X509_V_ERR_CERT_REVOKED);
	assert_int_equal(crl_verify(g->certs[0].x509, g->certs[2].x509, g->certs[3].x509, both.ptr, both.len), X509_V_OK);
	/* Signed again with no new serial: the revocation is kept. */
	assert_int_equal(pki_crl_sign(&x, g->certs[2].x509, g->certs[2].pkey, ca_crl2.ptr, ca_crl2.len, NULL, 0, now, 7, &e),
			 0);
	assert_int_equal(pki_crl_read(&ci, x.ptr, x.len, &e), 0);
	assert_int_equal(ci.nserials, 1);
	assert_int_equal(ci.number, 3);
	assert_true(ci.next_update == now + 7 * 86400);
	pki_crl_info_release(&ci);
	buf_release(&x);

	/* Refused: another CA's CRL as the previous one, a bad serial, bad days, not a CRL. */
	assert_int_equal(pki_crl_sign(&x, g->certs[2].x509, g->certs[2].pkey, root_crl.ptr, root_crl.len, NULL, 0, now, 30,
				      &e), ROTOR_EINVALID);
	serials[0] = "xyz";
	assert_int_equal(pki_crl_sign(&x, g->certs[2].x509, g->certs[2].pkey, NULL, 0, serials, 1, now, 30, &e),
			 ROTOR_EINVALID);
	assert_int_equal(pki_crl_sign(&x, g->certs[2].x509, g->certs[2].pkey, NULL, 0, NULL, 0, now, 0, &e), ROTOR_EINVALID);
	assert_int_equal(pki_crl_sign(&x, g->certs[2].x509, g->certs[0].pkey, NULL, 0, NULL, 0, now, 30, &e) < 0, 1);
	assert_int_equal(x.len, 0);
	assert_int_equal(pki_crl_read(&ci, "not a crl", 9, &e), ROTOR_EINVALID);
	assert_int_equal(pki_crl_read(&ci, ca_crl.ptr, ca_crl.len / 2, &e), ROTOR_EINVALID);

	/* One more client from the existing client CA: its chain verifies, CN and notAfter as asked. */
	assert_int_equal(pki_issue_client(&one, 3, &spec, "late", g->certs[2].x509, g->certs[2].pkey, now, &e), 0);
	assert_int_equal(one->ncerts, 1);
	assert_int_equal(one->certs[0].role, CERT_ROLE_CLIENT);
	assert_int_equal(crl_verify(g->certs[0].x509, g->certs[2].x509, one->certs[0].x509, both.ptr, both.len), X509_V_OK);
	pki_generation_free(one);
	assert_int_equal(pki_issue_client(&one, 3, &spec, "bad name", g->certs[2].x509, g->certs[2].pkey, now, &e),
			 ROTOR_EINVALID);
	assert_null(one);

	spec_manifest_cert_release(&gone);
	buf_release(&root_crl);
	buf_release(&ca_crl);
	buf_release(&ca_crl2);
	buf_release(&both);
	pki_generation_free(g);
}

static void test_describe_input(void **state)
{
	static const char garbage[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
	struct manifest_cert mc;
	struct err e = ERR_INIT;

	(void)state;
	memset(&mc, 0, sizeof(mc));
	assert_int_equal(pki_cert_describe(&mc, garbage, sizeof(garbage) - 1, &e), ROTOR_EINVALID);
	assert_null(mc.subject);
	assert_int_equal(pki_cert_describe(&mc, "", 0, &e), ROTOR_EINVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_ec_p256),
		cmocka_unit_test(test_chain_ec_p384),
		cmocka_unit_test(test_chain_rsa_2048),
		cmocka_unit_test(test_chain_rsa_3072),
		cmocka_unit_test(test_chain_rsa_4096),
		cmocka_unit_test(test_chain_ed25519),
		cmocka_unit_test(test_threads_order),
		cmocka_unit_test(test_invalid_spec),
		cmocka_unit_test(test_secret_file),
		cmocka_unit_test(test_key_check_input),
		cmocka_unit_test(test_describe_input),
		cmocka_unit_test(test_crl_sign_read_verify),
	};

	return cmocka_run_group_tests_name("pki", tests, NULL, NULL);
}
