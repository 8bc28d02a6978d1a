/*
 * test_observe.c -- reconcile/observe and reconcile/layout: live file
 * contents classified against two real generations made by pki, and the
 * rotation steps each combination of files is consistent with.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "reconcile/engine/files.h"
#include "reconcile/engine/observe.h"
#include "reconcile/pki/pki.h"
#include "reconcile/tls/key.h"
#include "reconcile/tls/verify.h"
#include "reconcile/engine/plan.h"
#include "reconcile/remote/ssh_int.h"
#include "tests/unit/chainspec.h"

struct fix {
	struct pki_generation *g[2];
	struct pki_file *files[2];
	size_t nfiles[2];
	struct manifest *m[2];
	struct known_set known;
	time_t now;
};

static struct fix F;

static int setup(void **state)
{
	static char *sans1[] = { "pg1.example.net" }, *sans2[] = { "pg2.example.net" };
	static char *clients[] = { "app" };
	struct chain_server servers[2];
	struct chain_spec spec;
	struct err e = ERR_INIT;
	int i;

	(void)state;
	chainspec_server(&servers[0], "pg1", sans1, 1, 0);
	chainspec_server(&servers[1], "pg2", sans2, 1, 0);
	chainspec_init(&spec, "Example", servers, 2, clients, 1);
	F.now = time(NULL);
	for (i = 0; i < 2; i++) {
		if (pki_generate(&F.g[i], "poc", i + 1, &spec, 1, F.now, &e) < 0 ||
		    pki_export(&F.files[i], &F.nfiles[i], &F.m[i], F.g[i], "poc", "secret", F.now, &e) < 0 ||
		    known_add_manifest(&F.known, F.m[i], &e) < 0) {
			fprintf(stderr, "setup: %s\n", e.msg);
			return -1;
		}
	}
	return 0;
}

static int teardown(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 2; i++) {
		pki_generation_free(F.g[i]);
		pki_files_free(F.files[i], F.nfiles[i]);
		spec_manifest_free(F.m[i]);
	}
	known_release(&F.known);
	return 0;
}

/* The exported PEM text of generation gen's file at path. */
static const struct buf *pem(int gen, const char *path)
{
	size_t i;

	for (i = 0; i < F.nfiles[gen - 1]; i++)
		if (strcmp(F.files[gen - 1][i].path, path) == 0)
			return &F.files[gen - 1][i].data;
	fail_msg("no file %s in generation %d", path, gen);
	return NULL;
}

/* Unencrypted PKCS#8 PEM of a generation's key (what a host holds). */
static void plain_key(struct buf *out, int gen, const char *name)
{
	const struct pki_generation *g = F.g[gen - 1];
	BUF_MEM *m;
	BIO *b = BIO_new(BIO_s_mem());
	size_t i;

	assert_non_null(b);
	for (i = 0; i < g->ncerts; i++)
		if (strcmp(g->certs[i].name, name) == 0)
			break;
	assert_true(i < g->ncerts);
	assert_int_equal(PEM_write_bio_PrivateKey(b, g->certs[i].pkey, NULL, NULL, 0, NULL, NULL), 1);
	BIO_get_mem_ptr(b, &m);
	assert_int_equal(buf_put(out, m->data, m->length), 0);
	BIO_free(b);
}

static void file_init(struct obs_file *f, enum spec_content c, enum layout_side side, const char *text)
{
	struct err e = ERR_INIT;

	memset(f, 0, sizeof(*f));
	f->present = 1;
	f->content = c;
	f->side = side;
	f->mode = -1;
	if (text)
		assert_int_equal(observe_parse_certs(f, text, strlen(text), &F.known, F.now, &e), 0);
}

/* A postgres server host: server.crt (leaf+chain), server.key, root.crt (bundle). */
struct host3 {
	struct obs_file f[3];
};

static void server_host(struct host3 *h, int leaf_gen, const char *leaf, int b1, int b2)
{
	struct buf crt = BUF_INIT, bundle = BUF_INIT, key = BUF_INIT, path = BUF_INIT;

	buf_printf(&path, "servers/%s.crt", leaf);
	buf_puts(&crt, buf_cstr(pem(leaf_gen, buf_cstr(&path))));
	buf_puts(&crt, buf_cstr(pem(leaf_gen, "ca/server-ca.crt")));
	if (b2) {
		buf_puts(&bundle, buf_cstr(pem(b2, "ca/root.crt")));
		buf_puts(&bundle, buf_cstr(pem(b2, "ca/client-ca.crt")));
	}
	buf_puts(&bundle, buf_cstr(pem(b1, "ca/root.crt")));
	buf_puts(&bundle, buf_cstr(pem(b1, "ca/client-ca.crt")));
	file_init(&h->f[0], SPEC_CONTENT_LEAF_CHAIN, LAYOUT_SIDE_SERVER, buf_cstr(&crt));
	file_init(&h->f[1], SPEC_CONTENT_KEY, LAYOUT_SIDE_SERVER, NULL);
	plain_key(&key, leaf_gen, "pg1");
	h->f[1].key = observe_key_match(key.ptr, key.len, crt.ptr, crt.len);
	file_init(&h->f[2], SPEC_CONTENT_TRUST, LAYOUT_SIDE_CLIENT, buf_cstr(&bundle));
	buf_release(&crt);
	buf_release(&bundle);
	buf_wipe(&key);
	buf_release(&path);
}

static void host_release(struct host3 *h)
{
	int i;

	for (i = 0; i < 3; i++)
		obs_file_release(&h->f[i]);
}

#define BIT(s) (1u << (s))

static void test_classify_known_and_roles(void **state)
{
	struct host3 h;

	(void)state;
	server_host(&h, 1, "pg1", 1, 0);
	assert_null(h.f[0].problem);
	assert_int_equal(h.f[0].ncerts, 2);
	assert_int_equal(h.f[0].certs[0].generation, 1);
	assert_int_equal(h.f[0].certs[0].role, CERT_ROLE_SERVER);
	assert_string_equal(h.f[0].certs[0].name, "pg1");
	assert_int_equal(h.f[0].certs[1].role, CERT_ROLE_SERVER_CA);
	assert_true(h.f[0].certs[0].days_left >= 396 && h.f[0].certs[0].days_left <= 397);
	assert_int_equal(h.f[1].key, OBS_KEY_MATCH);
	assert_int_equal(h.f[2].ncerts, 2);
	assert_int_equal(h.f[2].certs[0].role, CERT_ROLE_ROOT);
	host_release(&h);
}

/* The CA cache gives what a parse gives, for CAs and leaves, on every pass; it keeps CAs only. */
/*
 * Every certificate of a chain the manifests know is described from them
 * (not parsed) exactly as parsing describes it; one of generation 2 in a
 * set that knows only generation 1 is parsed and unknown.
 */
static void test_known_like_parsed(void **state)
{
	struct known_set none = KNOWN_SET_INIT, only1 = KNOWN_SET_INIT;
	struct buf text = BUF_INIT;
	struct err e = ERR_INIT;
	struct obs_file plain, known, part;
	size_t i;

	(void)state;
	assert_int_equal(known_add_manifest(&only1, F.m[0], &e), 0);
	assert_int_equal(known_index(&only1, &e), 0);
	buf_puts(&text, buf_cstr(pem(1, "servers/pg1.crt")));
	buf_puts(&text, buf_cstr(pem(1, "ca/server-ca.crt")));
	buf_puts(&text, buf_cstr(pem(2, "ca/root.crt")));
	buf_puts(&text, buf_cstr(pem(1, "ca/root.crt")));
	file_init(&known, SPEC_CONTENT_LEAF_CHAIN, LAYOUT_SIDE_SERVER, buf_cstr(&text));
	file_init(&plain, SPEC_CONTENT_LEAF_CHAIN, LAYOUT_SIDE_SERVER, NULL);
	file_init(&part, SPEC_CONTENT_LEAF_CHAIN, LAYOUT_SIDE_SERVER, NULL);
	assert_int_equal(observe_parse_certs(&plain, text.ptr, text.len, &none, F.now, &e), 0);
	assert_int_equal(observe_parse_certs(&part, text.ptr, text.len, &only1, F.now, &e), 0);
	assert_null(known.problem);
	assert_int_equal(known.ncerts, 4);
	assert_int_equal(plain.ncerts, 4);
	assert_int_equal(part.ncerts, 4);
	for (i = 0; i < 4; i++) {
		assert_string_equal(known.certs[i].fingerprint, plain.certs[i].fingerprint);
		assert_string_equal(known.certs[i].subject, plain.certs[i].subject);
		assert_string_equal(known.certs[i].issuer, plain.certs[i].issuer);
		assert_string_equal(known.certs[i].not_after, plain.certs[i].not_after);
		assert_string_equal(known.certs[i].pem, plain.certs[i].pem);
		assert_int_equal(known.certs[i].days_left, plain.certs[i].days_left);
		assert_int_equal(plain.certs[i].generation, 0);
		assert_string_equal(part.certs[i].subject, plain.certs[i].subject);
		assert_int_equal(part.certs[i].generation, i == 2 ? 0 : 1);
	}
	assert_int_equal(known.certs[2].generation, 2);
	obs_file_release(&plain);
	obs_file_release(&known);
	obs_file_release(&part);
	known_release(&only1);
	buf_release(&text);
}

static void test_phase_masks_server(void **state)
{
	struct host3 h;

	(void)state;
	server_host(&h, 1, "pg1", 1, 0);
	assert_int_equal(observe_phase_mask(h.f, 3, 1, 0), BIT(STEP_STABLE_A));
	assert_int_equal(observe_phase_mask(h.f, 3, 1, 2), BIT(STEP_STABLE_A));
	host_release(&h);

	server_host(&h, 1, "pg1", 1, 2);   /* bundle 1+2, leaf 1: trust */
	assert_int_equal(observe_phase_mask(h.f, 3, 1, 2), BIT(STEP_TRUST));
	assert_int_equal(observe_phase_mask(h.f, 3, 1, 0), 0);
	host_release(&h);

	server_host(&h, 2, "pg1", 1, 2);   /* bundle 1+2, leaf 2: servers or clients */
	assert_int_equal(observe_phase_mask(h.f, 3, 1, 2), BIT(STEP_SERVERS) | BIT(STEP_CLIENTS));
	host_release(&h);

	server_host(&h, 2, "pg1", 2, 0);   /* bundle 2 only, leaf 2: the end */
	assert_int_equal(observe_phase_mask(h.f, 3, 1, 2), BIT(STEP_STABLE_B));
	host_release(&h);
}

static void test_phase_masks_client(void **state)
{
	struct obs_file f[2];
	struct buf crt = BUF_INIT, bundle = BUF_INIT;

	(void)state;
	buf_puts(&crt, buf_cstr(pem(1, "clients/app.crt")));
	buf_puts(&crt, buf_cstr(pem(1, "ca/client-ca.crt")));
	buf_puts(&bundle, buf_cstr(pem(2, "ca/root.crt")));
	buf_puts(&bundle, buf_cstr(pem(2, "ca/server-ca.crt")));
	buf_puts(&bundle, buf_cstr(pem(1, "ca/root.crt")));
	buf_puts(&bundle, buf_cstr(pem(1, "ca/server-ca.crt")));
	file_init(&f[0], SPEC_CONTENT_LEAF_CHAIN, LAYOUT_SIDE_CLIENT, buf_cstr(&crt));
	file_init(&f[1], SPEC_CONTENT_TRUST, LAYOUT_SIDE_SERVER, buf_cstr(&bundle));
	assert_int_equal(observe_phase_mask(f, 2, 1, 2), BIT(STEP_TRUST) | BIT(STEP_SERVERS));
	obs_file_release(&f[0]);
	obs_file_release(&f[1]);
	buf_release(&crt);
	buf_release(&bundle);
}

static void test_wrong_side_ca_in_bundle(void **state)
{
	struct obs_file f;
	struct buf bundle = BUF_INIT;

	(void)state;
	/* A server's bundle must hold client CAs: a server CA there is wrong. */
	buf_puts(&bundle, buf_cstr(pem(1, "ca/root.crt")));
	buf_puts(&bundle, buf_cstr(pem(1, "ca/server-ca.crt")));
	file_init(&f, SPEC_CONTENT_TRUST, LAYOUT_SIDE_CLIENT, buf_cstr(&bundle));
	assert_null(f.problem);
	assert_int_equal(observe_phase_mask(&f, 1, 1, 0), 0);
	obs_file_release(&f);
	buf_release(&bundle);
}

static void test_key_mismatch(void **state)
{
	struct buf key = BUF_INIT;
	const struct buf *crt = pem(1, "servers/pg1.crt");

	(void)state;
	plain_key(&key, 1, "pg2");
	assert_int_equal(observe_key_match(key.ptr, key.len, crt->ptr, crt->len), OBS_KEY_MISMATCH);
	buf_wipe(&key);
	plain_key(&key, 2, "pg1");
	assert_int_equal(observe_key_match(key.ptr, key.len, crt->ptr, crt->len), OBS_KEY_MISMATCH);
	buf_wipe(&key);
	plain_key(&key, 1, "pg1");
	assert_int_equal(observe_key_match(key.ptr, key.len, crt->ptr, crt->len), OBS_KEY_MATCH);
	assert_int_equal(observe_key_match(key.ptr, key.len, NULL, 0), OBS_KEY_NO_LEAF);
	buf_wipe(&key);
}

/* k as unencrypted PKCS#8, PEM or DER, decoded again by key_decode(); its rc. */
static int decode_again(EVP_PKEY **out, EVP_PKEY *k, int der, int cut)
{
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *m;
	struct buf t = BUF_INIT;
	struct err e = ERR_INIT;
	int rc;

	assert_non_null(b);
	assert_int_equal(der ? i2d_PKCS8PrivateKey_bio(b, k, NULL, NULL, 0, NULL, NULL)
			     : PEM_write_bio_PKCS8PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
	BIO_get_mem_ptr(b, &m);
	assert_int_equal(buf_put(&t, m->data, m->length), 0);
	BIO_free(b);
	if (cut && !der) {
		/* drop the last base64 line before END: the DER inside is cut short */
		char *end = strstr(t.ptr, "-----END"), *prev;

		assert_non_null(end);
		prev = end - 1;
		while (prev > t.ptr && prev[-1] != '\n')
			prev--;
		memmove(prev, end, t.len - (size_t)(end - t.ptr) + 1);
		t.len -= (size_t)(end - prev);
	} else if (cut) {
		t.len -= 3;
	}
	rc = key_decode(out, t.ptr, t.len, NULL, KEY_PLAIN, &e);
	buf_wipe(&t);
	return rc;
}

/*
 * Unencrypted PKCS#8 keys go through a decoder kept per thread: keys of
 * every type, one after the other on one thread, each decodes to itself
 * (never to the key before), and a key cut short is refused without
 * spoiling the next one.
 */
static void test_key_decoder_reuse(void **state)
{
	const char *types[] = { "ED25519", "EC", "RSA", "EC", "ED25519" };
	EVP_PKEY *k[5], *got, *prev = NULL;
	size_t i;
	int der;

	(void)state;
	for (i = 0; i < 5; i++) {
		k[i] = i == 1 || i == 3 ? EVP_PKEY_Q_keygen(NULL, NULL, types[i], "P-256")
		       : i == 2 ? EVP_PKEY_Q_keygen(NULL, NULL, types[i], (size_t)2048)
				: EVP_PKEY_Q_keygen(NULL, NULL, types[i]);
		assert_non_null(k[i]);
	}
	for (der = 0; der < 2; der++) {
		for (i = 0; i < 5; i++) {
			got = NULL;
			assert_int_equal(decode_again(&got, k[i], der, 0), 0);
			assert_int_equal(EVP_PKEY_eq(got, k[i]), 1);
			if (prev)
				assert_int_not_equal(EVP_PKEY_eq(got, prev), 1);
			prev = k[i];
			EVP_PKEY_free(got);
			got = NULL;
			assert_true(decode_again(&got, k[i], der, 1) < 0);
			assert_null(got);
		}
	}
	for (i = 0; i < 5; i++)
		EVP_PKEY_free(k[i]);
}

static void test_encrypted_key_is_invalid_without_prompt(void **state)
{
	const struct buf *k = pem(1, "servers/pg1.key");
	const struct buf *crt = pem(1, "servers/pg1.crt");

	(void)state;
	assert_non_null(strstr(k->ptr, "ENCRYPTED PRIVATE KEY"));
	assert_int_equal(observe_key_match(k->ptr, k->len, crt->ptr, crt->len), OBS_KEY_INVALID);
	assert_int_equal(observe_key_match("garbage", 7, crt->ptr, crt->len), OBS_KEY_INVALID);
}

static void test_unknown_and_bad_contents(void **state)
{
	struct obs_file f;
	struct known_set none = KNOWN_SET_INIT;
	struct err e = ERR_INIT;
	const char *root = buf_cstr(pem(1, "ca/root.crt"));
	struct buf both = BUF_INIT, key = BUF_INIT;

	(void)state;
	/* Unknown: described, generation 0, consistent with nothing. */
	memset(&f, 0, sizeof(f));
	f.present = 1;
	f.content = SPEC_CONTENT_TRUST;
	assert_int_equal(observe_parse_certs(&f, root, strlen(root), &none, F.now, &e), 0);
	assert_int_equal(f.ncerts, 1);
	assert_int_equal(f.certs[0].generation, 0);
	assert_non_null(strstr(f.certs[0].subject, "CN=poc root g1"));
	assert_int_equal(strlen(f.certs[0].fingerprint), 95);
	assert_int_equal(observe_phase_mask(&f, 1, 1, 0), 0);
	obs_file_release(&f);

	file_init(&f, SPEC_CONTENT_TRUST, LAYOUT_SIDE_CLIENT, "this is not PEM\n");
	assert_string_equal(f.problem, "holds no PEM certificate");
	assert_int_equal(observe_phase_mask(&f, 1, 1, 0), 0);
	obs_file_release(&f);

	file_init(&f, SPEC_CONTENT_TRUST, LAYOUT_SIDE_CLIENT,
		  "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
	assert_string_equal(f.problem, "holds a certificate block that does not parse");
	obs_file_release(&f);

	file_init(&f, SPEC_CONTENT_TRUST, LAYOUT_SIDE_CLIENT, "-----BEGIN CERTIFICATE-----\nAAAA\n");
	assert_string_equal(f.problem, "a certificate block has no END line");
	obs_file_release(&f);

	plain_key(&key, 1, "pg1");
	buf_puts(&both, root);
	buf_puts(&both, buf_cstr(&key));
	file_init(&f, SPEC_CONTENT_LEAF_CHAIN, LAYOUT_SIDE_SERVER, buf_cstr(&both));
	assert_string_equal(f.problem, "holds a private key where certificates belong");
	obs_file_release(&f);
	buf_wipe(&both);
	buf_wipe(&key);

	memset(&f, 0, sizeof(f));   /* missing file: fits nothing */
	f.content = SPEC_CONTENT_TRUST;
	assert_int_equal(observe_phase_mask(&f, 1, 1, 0), 0);
}

/* The files of a role's layout: three, or the test fails. */
static struct managed_file *expand3(const struct host_role *r)
{
	struct managed_file *m = NULL;
	struct err e = ERR_INIT;
	size_t n = 0;

	assert_int_equal(layout_expand(&m, &n, r, &e), 0);
	assert_int_equal(n, 3);
	return m;
}

static void test_layouts(void **state)
{
	struct host_role pg = { .role = SPEC_ROLE_SERVER, .dir = "/srv/postgres/certs/", .owner = "postgres",
				.identity = "pg1" };
	struct host_role r = { .role = SPEC_ROLE_CLIENT, .home = "/home/app", .user = "app", .identity = "app" };
	struct managed_file *m;
	struct err e = ERR_INIT;
	size_t n = 0;

	(void)state;
	pg.layout = layout_find("postgres");
	r.layout = layout_find("libpq");
	m = expand3(&pg);
	assert_string_equal(m[0].path, "/srv/postgres/certs/server.crt");
	assert_int_equal(m[0].content, SPEC_CONTENT_LEAF_CHAIN);
	assert_string_equal(m[0].identity, "pg1");
	assert_string_equal(m[1].path, "/srv/postgres/certs/server.key");
	assert_int_equal(m[1].mode, 0600);
	assert_string_equal(m[2].path, "/srv/postgres/certs/root.crt");
	assert_int_equal(m[2].side, LAYOUT_SIDE_CLIENT);
	assert_null(m[2].identity);
	assert_string_equal(m[2].owner, "postgres");
	layout_free(m, 3);

	m = expand3(&r);
	assert_string_equal(m[0].path, "/home/app/.postgresql/postgresql.crt");
	assert_string_equal(m[1].path, "/home/app/.postgresql/postgresql.key");
	assert_string_equal(m[2].path, "/home/app/.postgresql/root.crt");
	assert_int_equal(m[2].side, LAYOUT_SIDE_SERVER);
	assert_string_equal(m[1].owner, "app");
	layout_free(m, 3);

	/* A role that validation should have refused: no layout, or a layout without its directory. */
	r.layout = NULL;
	assert_int_equal(layout_expand(&m, &n, &r, &e), ROTOR_EINVALID);
	assert_null(m);
	r.layout = layout_find("postgres");
	r.role = SPEC_ROLE_SERVER;
	assert_int_equal(layout_expand(&m, &n, &r, &e), ROTOR_EINVALID);
	assert_string_equal(e.msg, "layout postgres needs dir");
	assert_null(m);
	assert_null(layout_find("nonsense"));
	assert_null(layout_find("files"));  /* an explicit set is chosen by files:, not by name */
}

/* Verify generation lg's leaf (with chain when chain is set) against a bundle of the listed files. */
static int verifies(int lg, const char *leaf, int chain, enum verify_purpose p, const char *host,
		    const char *bundle_spec)
{
	struct buf l = BUF_INIT, t = BUF_INIT;
	struct verify_req r;
	struct err e = ERR_INIT;
	char reason[256], item[64];
	const char *s = bundle_spec;
	int ok = -1;

	buf_puts(&l, buf_cstr(pem(lg, leaf)));
	if (chain)
		buf_puts(&l, buf_cstr(pem(lg, strncmp(leaf, "servers/", 8) == 0 ? "ca/server-ca.crt" : "ca/client-ca.crt")));
	/* bundle_spec: "1:ca/root.crt 2:ca/root.crt ..." */
	while (*s) {
		int g = *s - '0', n = 0;

		assert_int_equal(sscanf(s + 2, "%63s%n", item, &n), 1);
		buf_puts(&t, buf_cstr(pem(g, item)));
		s += 2 + n;
		while (*s == ' ')
			s++;
	}
	memset(&r, 0, sizeof(r));
	r.leaf_pem = l.ptr;
	r.leaf_len = l.len;
	r.trust_pem = t.ptr ? t.ptr : "";
	r.trust_len = t.len;
	r.purpose = p;
	r.host = host;
	assert_int_equal(verify_chain(&ok, reason, sizeof(reason), &r, &e), 0);
	{
		/* The bundle parsed once (what plan does for every host): the same verdict, every time. */
		struct verify_trust *vt = NULL;
		int again[2] = { -1, -1 };

		assert_int_equal(verify_trust_new(&vt, r.trust_pem, r.trust_len, &e), 0);
		assert_int_equal(verify_chain_with(&again[0], reason, sizeof(reason), &r, vt, &e), 0);
		assert_int_equal(verify_chain_with(&again[1], reason, sizeof(reason), &r, vt, &e), 0);
		assert_int_equal(again[0], ok);
		assert_int_equal(again[1], ok);
		verify_trust_free(vt);
	}
	buf_release(&l);
	buf_release(&t);
	return ok;
}

static void test_verify_like_a_tls_peer(void **state)
{
	(void)state;
	/* A client with generation 1's roots and server CA accepts pg1 of generation 1. */
	assert_int_equal(verifies(1, "servers/pg1.crt", 1, VERIFY_SERVER, "pg1.example.net", "1:ca/root.crt 1:ca/server-ca.crt"), 1);
	assert_int_equal(verifies(1, "servers/pg1.crt", 1, VERIFY_SERVER, "pg1", "1:ca/root.crt"), 1);
	/* verify-full: the name must be in the SAN. */
	assert_int_equal(verifies(1, "servers/pg1.crt", 1, VERIFY_SERVER, "pg2.example.net", "1:ca/root.crt"), 0);
	/* Another generation's root does not. Both roots do. */
	assert_int_equal(verifies(1, "servers/pg1.crt", 1, VERIFY_SERVER, NULL, "2:ca/root.crt 2:ca/server-ca.crt"), 0);
	assert_int_equal(verifies(2, "servers/pg1.crt", 1, VERIFY_SERVER, NULL, "2:ca/root.crt 1:ca/root.crt"), 1);
	/* Without the intermediate sent or trusted there is no chain. */
	assert_int_equal(verifies(1, "servers/pg1.crt", 0, VERIFY_SERVER, NULL, "1:ca/root.crt"), 0);
	assert_int_equal(verifies(1, "servers/pg1.crt", 0, VERIFY_SERVER, NULL, "1:ca/root.crt 1:ca/server-ca.crt"), 1);
	/* An intermediate alone is not a trust anchor (no partial chains). */
	assert_int_equal(verifies(1, "servers/pg1.crt", 1, VERIFY_SERVER, NULL, "1:ca/server-ca.crt"), 0);
	/* Purposes: a server leaf is no client certificate and the other way round. */
	assert_int_equal(verifies(1, "servers/pg1.crt", 1, VERIFY_CLIENT, NULL, "1:ca/root.crt"), 0);
	assert_int_equal(verifies(1, "clients/app.crt", 1, VERIFY_CLIENT, NULL, "1:ca/root.crt 1:ca/client-ca.crt"), 1);
	assert_int_equal(verifies(1, "clients/app.crt", 1, VERIFY_SERVER, NULL, "1:ca/root.crt"), 0);
	/* An empty bundle trusts nothing. */
	assert_int_equal(verifies(1, "clients/app.crt", 1, VERIFY_CLIENT, NULL, ""), 0);
}

/* Material for plan_file_bytes() from the two exported generations. */
static void material_of_fixture(struct material_set *ms)
{
	int g;
	size_t i;

	ms->n = 2;
	ms->v = calloc(2, sizeof(*ms->v));
	assert_non_null(ms->v);
	for (g = 0; g < 2; g++) {
		struct material *m = &ms->v[g];

		m->generation = g + 1;
		m->certs = calloc(F.m[g]->ncerts, sizeof(*m->certs));
		assert_non_null(m->certs);
		for (i = 0; i < F.m[g]->ncerts; i++) {
			const struct manifest_cert *mc = &F.m[g]->certs[i];
			struct material_cert *c = &m->certs[m->ncerts++];

			c->name = strdup(mc->name);
			c->role = mc->role;
			c->fingerprint = strdup(mc->fingerprint);
			c->pem = strdup(buf_cstr(pem(g + 1, mc->cert)));
			c->key_pem = mc->key ? strdup(buf_cstr(pem(g + 1, mc->key))) : NULL;
		}
	}
}

/* got must equal want; both are released. */
static void assert_same_release(struct buf *got, struct buf *want)
{
	assert_string_equal(buf_cstr(got), buf_cstr(want));
	buf_release(got);
	buf_release(want);
}

static void test_desired_bytes_are_deterministic(void **state)
{
	struct material_set ms = { NULL, 0, NULL, 0 };
	struct obs_file f;
	struct buf a = BUF_INIT, b = BUF_INIT, want = BUF_INIT, key = BUF_INIT;
	struct err e = ERR_INIT;

	(void)state;
	material_of_fixture(&ms);
	memset(&f, 0, sizeof(f));
	/* A server's trust bundle at the trust step: roots and client CAs, newest first. */
	f.content = SPEC_CONTENT_TRUST;
	f.side = LAYOUT_SIDE_CLIENT;
	assert_int_equal(plan_file_bytes(&a, &ms, &f, NULL, STEP_TRUST, 1, 2, NULL, &e), 0);
	assert_int_equal(plan_file_bytes(&b, &ms, &f, NULL, STEP_TRUST, 1, 2, NULL, &e), 0);
	buf_puts(&want, buf_cstr(pem(2, "ca/root.crt")));
	buf_puts(&want, buf_cstr(pem(2, "ca/client-ca.crt")));
	buf_puts(&want, buf_cstr(pem(1, "ca/root.crt")));
	buf_puts(&want, buf_cstr(pem(1, "ca/client-ca.crt")));
	assert_int_equal(a.len, want.len);
	assert_memory_equal(a.ptr, want.ptr, want.len);
	assert_memory_equal(a.ptr, b.ptr, a.len);
	buf_release(&a);
	buf_release(&want);
	/* At stable(target) only generation 2 remains. */
	assert_int_equal(plan_file_bytes(&a, &ms, &f, NULL, STEP_STABLE_B, 1, 2, NULL, &e), 0);
	buf_puts(&want, buf_cstr(pem(2, "ca/root.crt")));
	buf_puts(&want, buf_cstr(pem(2, "ca/client-ca.crt")));
	assert_same_release(&a, &want);
	/* The server leaf with its chain: generation 1 until the servers step. */
	f.content = SPEC_CONTENT_LEAF_CHAIN;
	f.side = LAYOUT_SIDE_SERVER;
	assert_int_equal(plan_file_bytes(&a, &ms, &f, "pg1", STEP_TRUST, 1, 2, NULL, &e), 0);
	buf_puts(&want, buf_cstr(pem(1, "servers/pg1.crt")));
	buf_puts(&want, buf_cstr(pem(1, "ca/server-ca.crt")));
	assert_same_release(&a, &want);
	/* The key: decrypted with the secret, matching generation 2's leaf at servers; wrong secret refused. */
	f.content = SPEC_CONTENT_KEY;
	assert_int_equal(plan_file_bytes(&key, &ms, &f, "pg1", STEP_SERVERS, 1, 2, "secret", &e), 0);
	assert_non_null(strstr(buf_cstr(&key), "-----BEGIN PRIVATE KEY-----"));
	assert_int_equal(observe_key_match(key.ptr, key.len, pem(2, "servers/pg1.crt")->ptr, pem(2, "servers/pg1.crt")->len),
			 OBS_KEY_MATCH);
	buf_wipe(&key);
	assert_int_equal(plan_file_bytes(&key, &ms, &f, "pg1", STEP_SERVERS, 1, 2, "wrong", &e), ROTOR_ESECRET);
	assert_null(strstr(e.msg, "wrong"));
	buf_wipe(&key);
	/* Material that is missing is named. */
	f.content = SPEC_CONTENT_LEAF;
	assert_int_equal(plan_file_bytes(&a, &ms, &f, "nobody", STEP_TRUST, 1, 2, NULL, &e), ROTOR_EINVALID);
	assert_non_null(strstr(e.msg, "nobody"));
	buf_release(&b);
	material_release(&ms);
}

/*
 * The pgjdbc layout's key: written as unencrypted PKCS#8 DER (what
 * pgJDBC reads without sslpassword), read back by the one key decoder,
 * matched to its leaf; a PEM key in a DER file and a DER key in a PEM
 * file are problems, so the plan rewrites them.
 */
static void test_der_key_for_pgjdbc(void **state)
{
	struct material_set ms = { NULL, 0, NULL, 0 };
	struct obs_file f;
	struct buf der = BUF_INIT, pemk = BUF_INIT;
	struct err e = ERR_INIT;
	const struct buf *crt = pem(2, "clients/app.crt");
	EVP_PKEY *k = NULL;
	const unsigned char *p;
	PKCS8_PRIV_KEY_INFO *p8;

	(void)state;
	material_of_fixture(&ms);
	memset(&f, 0, sizeof(f));
	f.content = SPEC_CONTENT_KEY;
	f.side = LAYOUT_SIDE_CLIENT;
	f.form = LAYOUT_FORM_PK8;
	assert_int_equal(plan_file_bytes(&der, &ms, &f, "app", STEP_CLIENTS, 1, 2, "secret", &e), 0);
	assert_null(memmem(der.ptr, der.len, "-----BEGIN", 10));
	/* OpenSSL reads the bytes as one whole unencrypted PKCS#8 structure. */
	p = (const unsigned char *)der.ptr;
	p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)der.len);
	assert_non_null(p8);
	assert_ptr_equal(p, (const unsigned char *)der.ptr + der.len);
	PKCS8_PRIV_KEY_INFO_free(p8);
	assert_int_equal(observe_key_match(der.ptr, der.len, crt->ptr, crt->len), OBS_KEY_MATCH);
	assert_int_equal(observe_key_match(der.ptr, der.len, pem(1, "clients/app.crt")->ptr, pem(1, "clients/app.crt")->len),
			 OBS_KEY_MISMATCH);
	assert_int_equal(key_decode(&k, der.ptr, der.len, NULL, KEY_PLAIN, &e), 0);
	EVP_PKEY_free(k);
	k = NULL;
	assert_int_equal(key_decode(&k, der.ptr, der.len, "secret", KEY_ENCRYPTED, &e), ROTOR_EINVALID);
	/* A truncated DER key is not a key. */
	assert_int_equal(key_decode(&k, der.ptr, der.len - 1, NULL, KEY_PLAIN, &e), ROTOR_EINVALID);
	assert_null(k);
	assert_int_equal(observe_key_form(&f, der.ptr, der.len), 0);
	assert_null(f.problem);
	/* The same key as PEM where DER belongs, and DER where PEM belongs. */
	f.form = LAYOUT_FORM_PEM;
	assert_int_equal(plan_file_bytes(&pemk, &ms, &f, "app", STEP_CLIENTS, 1, 2, "secret", &e), 0);
	f.form = LAYOUT_FORM_PK8;
	assert_int_equal(observe_key_form(&f, pemk.ptr, pemk.len), 0);
	assert_non_null(f.problem);
	assert_non_null(strstr(f.problem, "PEM key where the layout needs PKCS#8 DER"));
	free(f.problem);
	f.problem = NULL;
	f.form = LAYOUT_FORM_PEM;
	assert_int_equal(observe_key_form(&f, der.ptr, der.len), 0);
	assert_non_null(f.problem);
	assert_non_null(strstr(f.problem, "DER key where the layout needs PEM"));
	free(f.problem);
	buf_wipe(&der);
	buf_wipe(&pemk);
	material_release(&ms);
}

/*
 * The pgjdbc-p12 layout's postgresql.p12: the leaf+chain file written as
 * PKCS#12 with the leaf's key (empty password), read back by observe as
 * the chain inside (g2 client app, g2 client CA) with its key matching;
 * a file cut short, a wrong password, a key that is not the leaf's are
 * problems, so the plan rewrites the file.
 */
static void test_p12_for_pgjdbc(void **state)
{
	struct material_set ms = { NULL, 0, NULL, 0 };
	struct obs_file f, g;
	struct buf p12 = BUF_INIT, certs = BUF_INIT, other = BUF_INIT, key = BUF_INIT;
	struct err e = ERR_INIT;

	(void)state;
	material_of_fixture(&ms);
	memset(&f, 0, sizeof(f));
	f.content = SPEC_CONTENT_LEAF_CHAIN;
	f.side = LAYOUT_SIDE_CLIENT;
	f.form = LAYOUT_FORM_P12;
	assert_int_equal(plan_file_bytes(&p12, &ms, &f, "app", STEP_CLIENTS, 1, 2, "secret", &e), 0);
	assert_null(memmem(p12.ptr, p12.len, "-----BEGIN", 10));
	/* A wrong secret: the key does not decrypt, nothing is written. */
	assert_int_equal(plan_file_bytes(&other, &ms, &f, "app", STEP_CLIENTS, 1, 2, "wrong", &e), ROTOR_ESECRET);

	memset(&g, 0, sizeof(g));
	g.content = SPEC_CONTENT_LEAF_CHAIN;
	g.side = LAYOUT_SIDE_CLIENT;
	g.form = LAYOUT_FORM_P12;
	assert_int_equal(observe_p12(&g, &certs, p12.ptr, p12.len, &e), 0);
	assert_null(g.problem);
	assert_int_equal(g.key, OBS_KEY_MATCH);
	assert_int_equal(observe_parse_certs(&g, certs.ptr, certs.len, &F.known, F.now, &e), 0);
	assert_null(g.problem);
	assert_int_equal(g.ncerts, 2);
	assert_int_equal(g.certs[0].generation, 2);
	assert_int_equal(g.certs[0].role, CERT_ROLE_CLIENT);
	assert_string_equal(g.certs[0].name, "app");
	assert_int_equal(g.certs[1].generation, 2);
	assert_int_equal(g.certs[1].role, CERT_ROLE_CLIENT_CA);
	obs_file_release(&g);
	buf_wipe(&certs);

	/* Cut short: not PKCS#12. */
	memset(&g, 0, sizeof(g));
	assert_int_equal(observe_p12(&g, &certs, p12.ptr, p12.len - 1, &e), 0);
	assert_non_null(g.problem);
	assert_int_equal(certs.len, 0);
	obs_file_release(&g);

	/* Another password: it does not open. */
	assert_int_equal(plan_file_bytes(&key, &ms, &(struct obs_file){ .content = SPEC_CONTENT_KEY,
		.side = LAYOUT_SIDE_CLIENT }, "app", STEP_CLIENTS, 1, 2, "secret", &e), 0);
	assert_int_equal(pki_key_p12(&other, key.ptr, key.len, pem(2, "clients/app.crt")->ptr,
				     pem(2, "clients/app.crt")->len, "not-empty", &e), 0);
	memset(&g, 0, sizeof(g));
	assert_int_equal(observe_p12(&g, &certs, other.ptr, other.len, &e), 0);
	assert_non_null(g.problem);
	assert_non_null(strstr(g.problem, "password"));
	obs_file_release(&g);
	buf_wipe(&other);

	/* The g2 key with generation 1's certificate: refused when written. */
	assert_int_equal(pki_key_p12(&other, key.ptr, key.len, pem(1, "clients/app.crt")->ptr,
				     pem(1, "clients/app.crt")->len, "", &e), ROTOR_EINVALID);
	assert_int_equal(other.len, 0);

	buf_wipe(&key);
	buf_wipe(&other);
	buf_wipe(&p12);
	material_release(&ms);
}

/* The output of ssh_find_strays()'s command, parsed strictly: stray paths, or nothing at all. */
static void test_parse_strays(void **state)
{
	const char *paths[] = { "/srv/pg/certs/server.key", "/home/app/.postgresql/root.crt" };
	static const char *const bad[] = {
		"0 b",                 /* no newline */
		"2 b\n",               /* index past the files */
		"01 b\n",              /* leading zero */
		"-1 b\n", "+1 b\n", " 1 b\n", "1  b\n",
		"1 x\n", "1 b \n", "1 t \n", "1 t ab/c\n", "1 t ab c\n", "1 t ?x\n",
		"99999999999999999999999 b\n",
		"0 b\n\n", "0 b\nrubbish",
	};
	char **v = NULL;
	size_t n = 99, i;

	(void)state;
	assert_int_equal(ssh_parse_strays("", paths, 2, &v, &n), 0);
	assert_null(v);
	assert_int_equal(n, 0);
	assert_int_equal(ssh_parse_strays("0 b\n1 t 0123abcdEF_-\n0 t ?\n", paths, 2, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "/srv/pg/certs/server.key.rotor-bak");
	assert_string_equal(v[1], "/home/app/.postgresql/.root.crt.rotor-tmp-0123abcdEF_-");
	assert_string_equal(v[2], "/srv/pg/certs/.server.key.rotor-tmp-?");
	assert_true(obs_stray_is_backup(v[0]));
	assert_false(obs_stray_is_backup(v[1]));
	assert_false(obs_stray_is_backup(".rotor-bak"));
	ssh_strays_free(v, n);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = (char **)1;
		n = 99;
		if (ssh_parse_strays(bad[i], paths, 2, &v, &n) != -1)
			fail_msg("accepted: \"%s\"", bad[i]);
		assert_null(v);
		assert_int_equal(n, 0);
	}
}

/* The sudo read's output: stat line, the file's bytes, the same stat line (reconcile/remote/exec.c). */
static void test_parse_sudo_read(void **state)
{
	static const char line[] = "2049:1234:1796089737.370378119 6 81a4 0 26 1796089737\n";
	static const char *const bad[] = {
		"", "\n", " 6 81a4 0 26 1\n", "ab:1 6 81a4 0 26 1\n", "1:2 6 81a4 0 26 1",
		"1:2\n", "1:2 6 81a4 0 26\n", "1:2 -6 81a4 0 26 1\n", "1:2 6 81a4 0 26 1 \n",
		"11111111111111111111111111111111111111111111111111111111111111111 6 81a4 0 26 1\n",
	};
	struct ssh_sudo_read r;
	char text[512];
	size_t n, i;

	(void)state;
	/* The whole: the file's six bytes (a NUL among them), then the same line. */
	n = (size_t)snprintf(text, sizeof(text), "%sab", line);
	memcpy(text + n, "\0d\ne\n", 6);
	n += 4;
	memcpy(text + n, line, sizeof(line) - 1);
	n += sizeof(line) - 1;
	assert_int_equal(ssh_parse_sudo_read(text, n, &r), 2);
	assert_int_equal(r.size, 6);
	assert_int_equal(r.rawmode, 0x81a4);
	assert_int_equal(r.uid, 0);
	assert_int_equal(r.gid, 26);
	assert_int_equal(r.mtime, 1796089737);
	assert_int_equal(r.off, sizeof(line) - 1);
	assert_int_equal(r.len, 6);
	assert_memory_equal(text + r.off, "ab\0d\ne", 6);
	/* Nothing after the second line, not one byte missing, the same line byte for byte. */
	text[n] = 'x';
	assert_int_equal(ssh_parse_sudo_read(text, n + 1, &r), 0);
	assert_int_equal(ssh_parse_sudo_read(text, n - 1, &r), 0);
	text[n - 5] ^= 1;   /* another mtime or ctime: it changed while it was read */
	assert_int_equal(ssh_parse_sudo_read(text, n, &r), 0);
	/* The line alone (a link: test ! -h stopped the command), with its fields. */
	assert_int_equal(ssh_parse_sudo_read("9:9:1.5 1 a1ff 0 0 -3\n", 22, &r), 1);
	assert_int_equal(r.rawmode, 0xa1ff);
	assert_int_equal(r.mtime, -3);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ssh_parse_sudo_read(bad[i], strlen(bad[i]), &r) != -1)
			fail_msg("accepted: \"%s\"", bad[i]);
}

/* known_find: the first entry pushed with the fingerprint, before known_index() and after, and in what was pushed since. */
/* A self-signed certificate for k, as DER and as PEM. */
static void self_signed(EVP_PKEY *k, struct buf *der, struct buf *pem_out)
{
	X509 *x = X509_new();
	unsigned char *d = NULL;
	int n;
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *m;

	assert_non_null(x);
	assert_non_null(b);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
						    (const unsigned char *)"match", -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
	assert_int_equal(X509_set_pubkey(x, k), 1);
	assert_true(X509_sign(x, k, EVP_PKEY_is_a(k, "ED25519") ? NULL : EVP_sha256()) > 0);
	assert_true((n = i2d_X509(x, &d)) > 0);
	buf_truncate(der, 0);
	assert_int_equal(buf_put(der, d, (size_t)n), 0);
	OPENSSL_free(d);
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	BIO_get_mem_ptr(b, &m);
	buf_truncate(pem_out, 0);
	assert_int_equal(buf_put(pem_out, m->data, m->length), 0);
	BIO_free(b);
	X509_free(x);
}

/* k as unencrypted PKCS#8, PEM or DER. */
static void p8_of(EVP_PKEY *k, int der, struct buf *out)
{
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *m;

	assert_non_null(b);
	assert_int_equal(der ? i2d_PKCS8PrivateKey_bio(b, k, NULL, NULL, 0, NULL, NULL)
			     : PEM_write_bio_PKCS8PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
	BIO_get_mem_ptr(b, &m);
	buf_truncate(out, 0);
	assert_int_equal(buf_put(out, m->data, m->length), 0);
	BIO_free(b);
}

/*
 * key_match_cert_der() decides EC (P-256, P-384) and Ed25519 keys without
 * OpenSSL's decoders, from the private key: a key file whose stored public
 * key was replaced by another certificate's does not match that
 * certificate (OpenSSL's comparison of the decoded keys says it does).
 * RSA, a scalar of zero and bytes that do not parse are left to OpenSSL,
 * and observe_key_match() agrees with it on every one.
 */
static void test_key_match_without_decoders(void **state)
{
	static const char *const types[] = { "P-256", "P-384", "ED25519", "RSA" };
	struct buf der = BUF_INIT, crt = BUF_INIT, der2 = BUF_INIT, crt2 = BUF_INIT, key = BUF_INIT, key2 = BUF_INIT;
	EVP_PKEY *k, *k2, *got = NULL;
	struct err e = ERR_INIT;
	size_t t;
	int asder;

	(void)state;
	for (t = 0; t < 4; t++) {
		int decided = t < 3;

		if (t < 2) {
			k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", types[t]);
			k2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", types[t]);
		} else if (t == 2) {
			k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
			k2 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		} else {
			k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
			k2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		}
		assert_non_null(k);
		assert_non_null(k2);
		self_signed(k, &der, &crt);
		self_signed(k2, &der2, &crt2);
		for (asder = 0; asder < 2; asder++) {
			p8_of(k, asder, &key);
			assert_int_equal(key_match_cert_der(key.ptr, key.len, (unsigned char *)der.ptr, der.len),
					 decided ? 1 : -1);
			assert_int_equal(key_match_cert_der(key.ptr, key.len, (unsigned char *)der2.ptr, der2.len),
					 decided ? 0 : -1);
			assert_int_equal(observe_key_match(key.ptr, key.len, crt.ptr, crt.len), OBS_KEY_MATCH);
			assert_int_equal(observe_key_match(key.ptr, key.len, crt2.ptr, crt2.len), OBS_KEY_MISMATCH);
			/* A certificate cut short or a key cut short: OpenSSL decides. */
			assert_int_equal(key_match_cert_der(key.ptr, key.len, (unsigned char *)der.ptr, der.len - 1), -1);
			assert_int_equal(key_match_cert_der(key.ptr, key.len - (asder ? 1 : 30), (unsigned char *)der.ptr, der.len),
					 -1);
			buf_wipe(&key);
		}
		if (t < 2) {
			/*
			 * k's scalar with k2's public key stored after it (the key's last
			 * bytes, uncompressed): k2's certificate does not match, k's does.
			 */
			unsigned char pub[97];
			size_t publen = 0;

			p8_of(k, 1, &key);
			assert_int_equal(EVP_PKEY_get_octet_string_param(k2, "encoded-pub-key", pub, sizeof(pub), &publen), 1);
			assert_true(publen == 65 || publen == 97);
			memcpy(key.ptr + key.len - publen, pub, publen);
			assert_int_equal(key_decode(&got, key.ptr, key.len, NULL, KEY_PLAIN, &e), 0);
			assert_int_equal(EVP_PKEY_eq(got, k2), 1);   /* what a comparison of decoded keys sees */
			EVP_PKEY_free(got);
			got = NULL;
			assert_int_equal(key_match_cert_der(key.ptr, key.len, (unsigned char *)der2.ptr, der2.len), 0);
			assert_int_equal(observe_key_match(key.ptr, key.len, crt2.ptr, crt2.len), OBS_KEY_MISMATCH);
			assert_int_equal(observe_key_match(key.ptr, key.len, crt.ptr, crt.len), OBS_KEY_MATCH);
			/* A scalar of zero: no key; left to OpenSSL, which refuses it. */
			{
				unsigned char *s = (unsigned char *)key.ptr;
				size_t i, dlen = t == 0 ? 32 : 48;

				/* ... 02 01 01 04 <dlen> <scalar> */
				for (i = 0; i + 5 + dlen <= key.len; i++)
					if (s[i] == 2 && s[i + 1] == 1 && s[i + 2] == 1 && s[i + 3] == 4 && s[i + 4] == dlen)
						break;
				assert_true(i + 5 + dlen <= key.len);
				memset(s + i + 5, 0, dlen);
				assert_int_equal(key_match_cert_der(key.ptr, key.len, (unsigned char *)der.ptr, der.len), -1);
				assert_int_not_equal(observe_key_match(key.ptr, key.len, crt.ptr, crt.len), OBS_KEY_MATCH);
			}
			buf_wipe(&key);
		}
		/* A key of another type than the certificate's: OpenSSL decides, a mismatch. */
		p8_of(k, 0, &key2);
		if (t > 0) {
			EVP_PKEY *o = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
			struct buf od = BUF_INIT, oc = BUF_INIT;

			self_signed(o, &od, &oc);
			assert_int_equal(key_match_cert_der(key2.ptr, key2.len, (unsigned char *)od.ptr, od.len), -1);
			assert_int_equal(observe_key_match(key2.ptr, key2.len, oc.ptr, oc.len), OBS_KEY_MISMATCH);
			buf_release(&od);
			buf_release(&oc);
			EVP_PKEY_free(o);
		}
		assert_int_equal(key_match_cert_der("garbage", 7, (unsigned char *)der.ptr, der.len), -1);
		assert_int_equal(key_match_cert_der(key2.ptr, key2.len, (const unsigned char *)"\x30\x00", 2), -1);
		buf_wipe(&key2);
		EVP_PKEY_free(k);
		EVP_PKEY_free(k2);
	}
	buf_release(&der);
	buf_release(&crt);
	buf_release(&der2);
	buf_release(&crt2);
}

/*
 * A certificate the manifests know is described from its manifest, not
 * parsed (the description says so when a manifest's differs); one they
 * do not know is parsed.
 */
static void test_known_described_from_manifest(void **state)
{
	struct known_set k = KNOWN_SET_INIT;
	struct obs_file f;
	struct manifest_cert mc;
	struct err e = ERR_INIT;
	const struct buf *crt = pem(1, "servers/pg1.crt");
	size_t i;

	(void)state;
	assert_int_equal(known_add_manifest(&k, F.m[0], &e), 0);
	assert_int_equal(known_index(&k, &e), 0);
	file_init(&f, SPEC_CONTENT_LEAF, LAYOUT_SIDE_SERVER, NULL);
	assert_int_equal(observe_parse_certs(&f, crt->ptr, crt->len, &k, F.now, &e), 0);
	assert_int_equal(f.ncerts, 1);
	memset(&mc, 0, sizeof(mc));
	assert_int_equal(pki_cert_describe(&mc, crt->ptr, crt->len, &e), 0);
	assert_string_equal(f.certs[0].fingerprint, mc.fingerprint);
	assert_string_equal(f.certs[0].subject, mc.subject);
	assert_string_equal(f.certs[0].issuer, mc.issuer);
	assert_string_equal(f.certs[0].not_after, mc.not_after);
	assert_int_equal(f.certs[0].generation, 1);
	obs_file_release(&f);
	/* The same fingerprint with another description: taken from the manifest. */
	for (i = 0; i < k.n; i++)
		if (strcmp(k.v[i].fingerprint, mc.fingerprint) == 0) {
			free(k.v[i].subject);
			k.v[i].subject = strdup("CN=from the manifest");
		}
	file_init(&f, SPEC_CONTENT_LEAF, LAYOUT_SIDE_SERVER, NULL);
	assert_int_equal(observe_parse_certs(&f, crt->ptr, crt->len, &k, F.now, &e), 0);
	assert_string_equal(f.certs[0].subject, "CN=from the manifest");
	obs_file_release(&f);
	/* Generation 2's certificate is not in k: parsed, unknown. */
	crt = pem(2, "servers/pg1.crt");
	file_init(&f, SPEC_CONTENT_LEAF, LAYOUT_SIDE_SERVER, NULL);
	assert_int_equal(observe_parse_certs(&f, crt->ptr, crt->len, &k, F.now, &e), 0);
	assert_int_equal(f.certs[0].generation, 0);
	assert_non_null(strstr(f.certs[0].subject, "pg1"));
	obs_file_release(&f);
	spec_manifest_cert_release(&mc);
	known_release(&k);
}

static void test_known_index(void **state)
{
	struct known_set k = KNOWN_SET_INIT;
	struct err e = ERR_INIT;
	const struct known_cert *c;
	char fp[96];
	int i;

	(void)state;
	for (i = 0; i < 300; i++) {
		struct known_cert *n = known_push(&k);

		assert_non_null(n);
		/* 150 distinct fingerprints, each twice: generation i / 150 tells the two apart. */
		snprintf(n->fingerprint, sizeof(n->fingerprint), "%02X:%02X", (i * 37) % 150, 0xAB);
		n->generation = i < 150 ? 1 : 2;
	}
	for (i = 0; i < 150; i++) {
		snprintf(fp, sizeof(fp), "%02X:%02X", i, 0xAB);
		assert_non_null(c = known_find(&k, fp));
		assert_int_equal(c->generation, 1);
	}
	assert_int_equal(known_index(&k, &e), 0);
	for (i = 0; i < 150; i++) {
		snprintf(fp, sizeof(fp), "%02X:%02X", i, 0xAB);
		assert_non_null(c = known_find(&k, fp));
		assert_int_equal(c->generation, 1);   /* the first pushed of the two */
		assert_string_equal(c->fingerprint, fp);
	}
	assert_null(known_find(&k, "FF:FF"));
	assert_null(known_find(&k, "00"));
	assert_null(known_find(&k, NULL));
	/* Pushed after the index: found by the scan of the tail; one already indexed still wins. */
	snprintf(known_push(&k)->fingerprint, sizeof(fp), "%s", "FF:FF");
	snprintf(known_push(&k)->fingerprint, sizeof(fp), "%s", "00:AB");
	assert_non_null(known_find(&k, "FF:FF"));
	assert_int_equal(known_find(&k, "00:AB")->generation, 1);
	known_release(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify_known_and_roles),
		cmocka_unit_test(test_known_like_parsed),
		cmocka_unit_test(test_known_index),
		cmocka_unit_test(test_key_match_without_decoders),
		cmocka_unit_test(test_known_described_from_manifest),
		cmocka_unit_test(test_phase_masks_server),
		cmocka_unit_test(test_phase_masks_client),
		cmocka_unit_test(test_wrong_side_ca_in_bundle),
		cmocka_unit_test(test_key_mismatch),
		cmocka_unit_test(test_key_decoder_reuse),
		cmocka_unit_test(test_encrypted_key_is_invalid_without_prompt),
		cmocka_unit_test(test_unknown_and_bad_contents),
		cmocka_unit_test(test_layouts),
		cmocka_unit_test(test_verify_like_a_tls_peer),
		cmocka_unit_test(test_desired_bytes_are_deterministic),
		cmocka_unit_test(test_parse_strays),
		cmocka_unit_test(test_parse_sudo_read),
		cmocka_unit_test(test_der_key_for_pgjdbc),
		cmocka_unit_test(test_p12_for_pgjdbc),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
