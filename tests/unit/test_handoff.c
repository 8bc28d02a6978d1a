/*
 * test_handoff.c -- the hand-off's key and trust-store export
 * (reconcile/pki/pki_handoff.c), each output parsed back with OpenSSL:
 * the PKCS#8 PEM and DER decrypt with the passphrase (and not without
 * it), the PKCS#12 holds the key, the leaf under alias "user" and the
 * CA, the trust store's bags carry Java's trusted-certificate attribute;
 * and the engine's pure parts (which step, the passphrase file).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "reconcile/engine/handoff.h"
#include "reconcile/pki/pki.h"
#include "reconcile/tls/key.h"
#include "tests/unit/chainspec.h"

#define PASS "correct horse battery"

struct fx {
	struct pki_generation *g;
	struct buf key, key2, chain, bundle;   /* client key (plain PKCS#8), another key, leaf+CA, root+server CA */
};

static void pem_of(struct buf *out, void *x509)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	assert_non_null(b);
	assert_int_equal(PEM_write_bio_X509(b, x509), 1);
	n = BIO_get_mem_data(b, &p);
	assert_int_equal(buf_put(out, p, (size_t)n), 0);
	BIO_free(b);
}

static int setup(void **state)
{
	static char *clients[] = { "app", "other" };
	static char *sans[] = { "127.0.0.1" };
	struct chain_server srv;
	struct chain_spec spec;
	struct err e = ERR_INIT;
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	chainspec_server(&srv, "pg1", sans, 1, 0);
	chainspec_init(&spec, "Example", &srv, 1, clients, 2);
	assert_int_equal(pki_generate(&f->g, "poc", 1, &spec, 1, time(NULL), &e), 0);
	/* certs: root, server-ca, client-ca, pg1, app, other */
	assert_int_equal(f->g->ncerts, 6);
	assert_int_equal(key_encode(&f->key, f->g->certs[4].pkey, &e), 0);
	assert_int_equal(key_encode(&f->key2, f->g->certs[5].pkey, &e), 0);
	pem_of(&f->chain, f->g->certs[4].x509);
	pem_of(&f->chain, f->g->certs[2].x509);
	pem_of(&f->bundle, f->g->certs[0].x509);
	pem_of(&f->bundle, f->g->certs[1].x509);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	buf_wipe(&f->key);
	buf_wipe(&f->key2);
	buf_release(&f->chain);
	buf_release(&f->bundle);
	pki_generation_free(f->g);
	free(f);
	return 0;
}

static int pbe_3des(const X509_SIG *sig)
{
	const X509_ALGOR *alg;
	const ASN1_OBJECT *obj;

	X509_SIG_get0(sig, &alg, NULL);
	X509_ALGOR_get0(&obj, NULL, NULL, alg);
	return OBJ_obj2nid(obj) == NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
}

static void test_key_forms(void **state)
{
	struct fx *f = *state;
	struct pki_handoff_key k;
	struct err e = ERR_INIT;
	EVP_PKEY *orig = NULL, *p = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *ca = NULL;
	PKCS12 *p12;
	X509_SIG *sig;
	BIO *b;
	const unsigned char *q;
	char *alias;
	int len;

	assert_int_equal(key_decode(&orig, f->key.ptr, f->key.len, NULL, KEY_PLAIN, &e), 0);
	assert_int_equal(pki_handoff_key(&k, f->key.ptr, f->key.len, f->chain.ptr, f->chain.len, PASS, 0, &e), 0);
	assert_int_equal(k.plain.len, 0);

	/* PEM: ENCRYPTED PRIVATE KEY that decrypts with the passphrase only. */
	assert_non_null(strstr(buf_cstr(&k.pem), "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
	assert_int_equal(key_decode(&p, k.pem.ptr, k.pem.len, PASS, KEY_ENCRYPTED, &e), 0);
	assert_int_equal(EVP_PKEY_eq(p, orig), 1);
	EVP_PKEY_free(p);
	p = NULL;
	assert_int_equal(key_decode(&p, k.pem.ptr, k.pem.len, "wrong passphrase", KEY_ENCRYPTED, &e), ROTOR_ESECRET);

	/* DER: an EncryptedPrivateKeyInfo (PKCS#12 PBE, 3DES) that decrypts with the passphrase. */
	q = (const unsigned char *)k.der.ptr;
	assert_non_null(sig = d2i_X509_SIG(NULL, &q, (long)k.der.len));
	assert_true(pbe_3des(sig));   /* what pgJDBC on Java 17 reads */
	X509_SIG_free(sig);
	assert_non_null(b = BIO_new_mem_buf(k.der.ptr, (int)k.der.len));
	assert_non_null(p = d2i_PKCS8PrivateKey_bio(b, NULL, NULL, (void *)PASS));
	assert_int_equal(EVP_PKEY_eq(p, orig), 1);
	EVP_PKEY_free(p);
	BIO_free(b);
	assert_non_null(b = BIO_new_mem_buf(k.der.ptr, (int)k.der.len));
	assert_null(d2i_PKCS8PrivateKey_bio(b, NULL, NULL, (void *)"wrong passphrase"));
	BIO_free(b);
	ERR_clear_error();

	/* PKCS#12: the MAC verifies, the key, the leaf (alias "user") and the CA. */
	assert_non_null(b = BIO_new_mem_buf(k.p12.ptr, (int)k.p12.len));
	assert_non_null(p12 = d2i_PKCS12_bio(b, NULL));
	BIO_free(b);
	assert_int_equal(PKCS12_verify_mac(p12, PASS, -1), 1);
	assert_int_equal(PKCS12_verify_mac(p12, "wrong passphrase", -1), 0);
	p = NULL;
	assert_int_equal(PKCS12_parse(p12, PASS, &p, &cert, &ca), 1);
	assert_int_equal(EVP_PKEY_eq(p, orig), 1);
	assert_int_equal(X509_cmp(cert, f->g->certs[4].x509), 0);
	assert_non_null(alias = (char *)X509_alias_get0(cert, &len));
	assert_int_equal(len, 4);
	assert_memory_equal(alias, "user", 4);
	assert_int_equal(sk_X509_num(ca), 1);
	assert_int_equal(X509_cmp(sk_X509_value(ca, 0), f->g->certs[2].x509), 0);
	EVP_PKEY_free(p);
	X509_free(cert);
	sk_X509_pop_free(ca, X509_free);
	PKCS12_free(p12);
	pki_handoff_key_wipe(&k);
	assert_null(k.pem.ptr);

	/* --plain-key: the key unencrypted, as well. */
	assert_int_equal(pki_handoff_key(&k, f->key.ptr, f->key.len, f->chain.ptr, f->chain.len, PASS, 1, &e), 0);
	assert_non_null(strstr(buf_cstr(&k.plain), "-----BEGIN PRIVATE KEY-----"));
	pki_handoff_key_wipe(&k);
	EVP_PKEY_free(orig);
	ERR_clear_error();
}

static void test_key_bad_input(void **state)
{
	struct fx *f = *state;
	struct pki_handoff_key k;
	struct err e = ERR_INIT;

	/* Another client's key does not belong to this leaf. */
	assert_int_equal(pki_handoff_key(&k, f->key2.ptr, f->key2.len, f->chain.ptr, f->chain.len, PASS, 0, &e),
			 ROTOR_EINVALID);
	assert_non_null(strstr(e.msg, "does not belong"));
	assert_null(k.pem.ptr);
	assert_int_equal(pki_handoff_key(&k, f->key.ptr, f->key.len, f->chain.ptr, f->chain.len, "", 0, &e),
			 ROTOR_EINVALID);
	assert_int_equal(pki_handoff_key(&k, f->key.ptr, f->key.len, "junk", 4, PASS, 0, &e), ROTOR_EINVALID);
	assert_int_equal(pki_handoff_key(&k, "junk", 4, f->chain.ptr, f->chain.len, PASS, 0, &e), ROTOR_EINVALID);
	/* An encrypted key is not what the hand-off gets. */
	assert_int_equal(pki_trust_store(&k.pem, "no certificate", 14, PASS, &e), ROTOR_EINVALID);
	buf_release(&k.pem);
}

static void test_trust_store(void **state)
{
	struct fx *f = *state;
	struct buf ts = BUF_INIT;
	struct err e = ERR_INIT;
	STACK_OF(PKCS7) *safes;
	STACK_OF(PKCS12_SAFEBAG) *bags;
	PKCS12 *p12;
	BIO *b;
	int i, j, nbags = 0;

	assert_int_equal(pki_trust_store(&ts, f->bundle.ptr, f->bundle.len, PASS, &e), 0);
	assert_non_null(b = BIO_new_mem_buf(ts.ptr, (int)ts.len));
	assert_non_null(p12 = d2i_PKCS12_bio(b, NULL));
	BIO_free(b);
	assert_int_equal(PKCS12_verify_mac(p12, PASS, -1), 1);
	assert_non_null(safes = PKCS12_unpack_authsafes(p12));
	for (i = 0; i < sk_PKCS7_num(safes); i++) {
		PKCS7 *p7 = sk_PKCS7_value(safes, i);

		/* Encrypted (PBES2, AES-256) with the passphrase. */
		assert_int_equal(OBJ_obj2nid(p7->type), NID_pkcs7_encrypted);
		assert_null(PKCS12_unpack_p7encdata(p7, "wrong passphrase", -1));
		assert_non_null(bags = PKCS12_unpack_p7encdata(p7, PASS, -1));
		for (j = 0; j < sk_PKCS12_SAFEBAG_num(bags); j++) {
			const PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(bags, j);
			const STACK_OF(X509_ATTRIBUTE) *attrs = PKCS12_SAFEBAG_get0_attrs(bag);
			X509 *x;
			char oid[64];
			int k, trusted = 0;

			assert_int_equal(PKCS12_SAFEBAG_get_nid(bag), NID_certBag);
			assert_non_null(x = PKCS12_SAFEBAG_get1_cert(bag));
			assert_int_equal(X509_cmp(x, f->g->certs[nbags].x509), 0);   /* root, then server CA */
			X509_free(x);
			for (k = 0; k < sk_X509_ATTRIBUTE_num(attrs); k++) {
				X509_ATTRIBUTE *a = sk_X509_ATTRIBUTE_value(attrs, k);
				ASN1_TYPE *v;

				OBJ_obj2txt(oid, sizeof(oid), X509_ATTRIBUTE_get0_object(a), 1);
				if (strcmp(oid, "2.16.840.1.113894.746875.1.1") != 0)
					continue;
				assert_int_equal(X509_ATTRIBUTE_count(a), 1);
				assert_non_null(v = X509_ATTRIBUTE_get0_type(a, 0));
				assert_int_equal(v->type, V_ASN1_OBJECT);
				assert_int_equal(OBJ_obj2nid(v->value.object), NID_anyExtendedKeyUsage);
				trusted++;
			}
			assert_int_equal(trusted, 1);
			{
				char *fn = PKCS12_get_friendlyname((PKCS12_SAFEBAG *)bag);

				assert_non_null(fn);
				assert_non_null(strstr(fn, nbags == 0 ? "root g1" : "server CA g1"));
				OPENSSL_free(fn);
			}
			nbags++;
		}
		sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	}
	assert_int_equal(nbags, 2);
	sk_PKCS7_pop_free(safes, PKCS7_free);
	PKCS12_free(p12);
	buf_release(&ts);
	ERR_clear_error();
}

static void test_sha256(void **state)
{
	char h[65];

	(void)state;
	assert_int_equal(pki_sha256_hex(h, "abc", 3), 0);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_pick_step(void **state)
{
	struct rotation_spec r = { 1, 0, SPEC_PHASE_STABLE };

	(void)state;
	assert_int_equal(handoff_pick_step(&r, HANDOFF_NEXT), STEP_STABLE_A);
	assert_int_equal(handoff_pick_step(&r, HANDOFF_CURRENT), STEP_STABLE_A);
	assert_int_equal(handoff_pick_step(&r, HANDOFF_TARGET), STEP_STABLE_A);
	r.target = 2;
	r.phase = SPEC_PHASE_TRUST;
	assert_int_equal(handoff_pick_step(&r, HANDOFF_NEXT), STEP_TRUST);
	assert_int_equal(handoff_pick_step(&r, HANDOFF_CURRENT), STEP_TRUST);
	assert_int_equal(handoff_pick_step(&r, HANDOFF_TARGET), STEP_STABLE_B);
	r.phase = SPEC_PHASE_SERVERS;
	assert_int_equal(handoff_pick_step(&r, HANDOFF_NEXT), STEP_CLIENTS);
	assert_int_equal(handoff_pick_step(&r, HANDOFF_CURRENT), STEP_SERVERS);
	r.phase = SPEC_PHASE_CLIENTS;
	assert_int_equal(handoff_pick_step(&r, HANDOFF_NEXT), STEP_CLIENTS);
	assert_int_equal(handoff_pick_step(&r, HANDOFF_CURRENT), STEP_CLIENTS);
	assert_int_equal(handoff_choice_parse(NULL), HANDOFF_NEXT);
	assert_int_equal(handoff_choice_parse("next"), HANDOFF_NEXT);
	assert_int_equal(handoff_choice_parse("current"), HANDOFF_CURRENT);
	assert_int_equal(handoff_choice_parse("target"), HANDOFF_TARGET);
	assert_int_equal(handoff_choice_parse("Target"), -1);
	assert_int_equal(handoff_choice_parse(""), -1);
}

static void test_passphrase_file(void **state)
{
	char dir[] = "/tmp/rotor-test-handoff-XXXXXX", path[64];
	struct buf p = BUF_INIT;
	struct err e = ERR_INIT;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pass", dir);
	assert_true((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
	assert_int_equal(write(fd, "secret phrase\r\n", 15), 15);
	close(fd);
	assert_int_equal(handoff_read_passphrase(&p, path, &e), 0);
	assert_string_equal(buf_cstr(&p), "secret phrase");
	buf_wipe(&p);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(handoff_read_passphrase(&p, path, &e), ROTOR_ESECRET);
	assert_null(strstr(e.msg, "secret phrase"));
	buf_wipe(&p);
	unlink(path);
	assert_int_equal(handoff_read_passphrase(&p, path, &e), ROTOR_EINVALID);
	buf_wipe(&p);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_key_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trust_store, setup, teardown),
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_pick_step),
		cmocka_unit_test(test_passphrase_file),
	};

	return cmocka_run_group_tests_name("handoff", tests, NULL, NULL);
}
