/*
 * pki_handoff.c -- one client's key in the forms application teams use
 * (encrypted PKCS#8 PEM and DER, PKCS#12 with its chain), and a PKCS#12
 * trust store that Java reads (see pki.h).
 *
 * Containers are encrypted with PBES2: PBKDF2-HMAC-SHA256 and
 * AES-256-CBC, which OpenSSL 3 and Java 17 both read; PKCS#12 files carry
 * an HMAC-SHA256 integrity MAC under the same passphrase.  The one
 * exception is the .pk8 (below), for pgJDBC.
 *
 * Java's PKCS12 key store lists a certificate bag as a trusted
 * certificate only when the bag carries Oracle's trusted-key-usage
 * attribute (OID 2.16.840.1.113894.746875.1.1) naming the usages it is
 * trusted for; `openssl pkcs12 -export -jdktrust` writes it from OpenSSL
 * 3.2 on.  On 3.0 the attribute is added here by its numeric OID, with
 * the value anyExtendedKeyUsage (2.5.29.37.0), as keytool writes it.
 */
#include "reconcile/pki/pki.h"
#include "reconcile/pki/pki_int.h"
#include "reconcile/tls/key.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#define JDK_TRUST_OID "2.16.840.1.113894.746875.1.1"
#define ANY_EKU_OID "2.5.29.37.0"
#define P12_ITER 2048

static int mem_to_buf(struct buf *dst, BIO *b, struct err *e)
{
	BUF_MEM *m = NULL;

	if (BIO_get_mem_ptr(b, &m) <= 0 || !m)
		return pki_ossl_err(e, ROTOR_ERROR, "cannot read a memory BIO");
	if (buf_put(dst, m->data, m->length) < 0)
		return err_nomem(e);
	return 0;
}

static int pass_ok(const char *pass, struct err *e)
{
	size_t n = pass ? strlen(pass) : 0;

	if (n == 0 || n > 1024)
		return err_set(e, ROTOR_EINVALID, "the hand-off passphrase is empty or longer than 1024 bytes");
	return 0;
}

/* Every certificate of a PEM text, in order; at least one. */
static int read_certs(STACK_OF(X509) **out, const char *pem, size_t len, const char *what, struct err *e)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = NULL;
	X509 *x;

	*out = NULL;
	if (!sk || len > INT_MAX || !(b = BIO_new_mem_buf(pem, (int)len))) {
		sk_X509_free(sk);
		return pki_ossl_err(e, ROTOR_ENOMEM, "%s: cannot read", what);
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			sk_X509_pop_free(sk, X509_free);
			BIO_free(b);
			return pki_ossl_err(e, ROTOR_ENOMEM, "%s: cannot read", what);
		}
	}
	BIO_free(b);
	ERR_clear_error();   /* the end of the text is a "no start line" error */
	if (sk_X509_num(sk) == 0) {
		sk_X509_free(sk);
		return err_set(e, ROTOR_EINVALID, "%s: no PEM certificate", what);
	}
	*out = sk;
	return 0;
}

void pki_handoff_key_wipe(struct pki_handoff_key *k)
{
	if (!k)
		return;
	buf_wipe(&k->pem);
	buf_wipe(&k->der);
	buf_wipe(&k->p12);
	buf_wipe(&k->plain);
}

/*
 * The key (unencrypted PEM or PKCS#8 DER) and the certificates of
 * chain_pem, the first of which (*leaf, taken off *chain) it must belong
 * to.  On failure nothing is left to free.
 */
static int key_and_chain(EVP_PKEY **k, X509 **leaf, STACK_OF(X509) **chain, const char *key, size_t key_len,
			 const char *chain_pem, size_t chain_len, struct err *e)
{
	int rc;

	*k = NULL;
	*leaf = NULL;
	*chain = NULL;
	if ((rc = key_decode(k, key, key_len, NULL, KEY_PLAIN, e)) < 0 ||
	    (rc = read_certs(chain, chain_pem, chain_len, "the client certificate", e)) < 0)
		goto fail;
	*leaf = sk_X509_shift(*chain);
	if (X509_check_private_key(*leaf, *k) != 1) {
		rc = pki_ossl_err(e, ROTOR_EINVALID, "the private key does not belong to the client certificate");
		goto fail;
	}
	return 0;
fail:
	X509_free(*leaf);
	EVP_PKEY_free(*k);
	sk_X509_pop_free(*chain, X509_free);
	*k = NULL;
	*leaf = NULL;
	*chain = NULL;
	return rc;
}

/* PKCS#12: the key and the leaf under the alias "user" (what pgJDBC asks for), then the chain; appended to out. */
static int p12_write(struct buf *out, EVP_PKEY *k, X509 *leaf, STACK_OF(X509) *chain, const char *pass, struct err *e)
{
	PKCS12 *p12 = PKCS12_create(pass, "user", k, leaf, chain, NID_aes_256_cbc, NID_aes_256_cbc, P12_ITER, -1, 0);
	BIO *b = NULL;
	int rc = 0;

	if (!p12 || !PKCS12_set_mac(p12, pass, -1, NULL, 0, P12_ITER, EVP_sha256()) ||
	    !(b = BIO_new(BIO_s_mem())) || !i2d_PKCS12_bio(b, p12) || (rc = mem_to_buf(out, b, e)) < 0)
		rc = rc < 0 ? rc : pki_ossl_err(e, ROTOR_ERROR, "cannot write the PKCS#12 file");
	PKCS12_free(p12);
	BIO_free(b);            /* BUF_MEM_free cleanses the bytes */
	return rc;
}

int pki_handoff_key(struct pki_handoff_key *out, const char *key_pem, size_t key_len,
		    const char *chain_pem, size_t chain_len, const char *pass, int plain, struct err *e)
{
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *k = NULL;
	X509 *leaf = NULL;
	BIO *b = NULL;
	int rc;

	if (!out || !key_pem || !chain_pem)
		return err_set(e, ROTOR_EINVALID, "pki_handoff_key: invalid arguments");
	memset(out, 0, sizeof(*out));
	if ((rc = pass_ok(pass, e)) < 0)
		return rc;
	if ((rc = key_and_chain(&k, &leaf, &chain, key_pem, key_len, chain_pem, chain_len, e)) < 0)
		goto out;

	/*
	 * PKCS#8 EncryptedPrivateKeyInfo.  PEM: PBES2, PBKDF2-HMAC-SHA256,
	 * AES-256-CBC.  DER (.pk8): pgJDBC 42.5 decrypts with
	 * Cipher.getInstance(EncryptedPrivateKeyInfo.getAlgName()), which Java
	 * 17 names "PBES2" for PBES2 and has no cipher for; the PKCS#12 scheme
	 * pbeWithSHAAnd3-KeyTripleDES-CBC is the strongest it reads.
	 */
	if (!(b = BIO_new(BIO_s_mem())) ||
	    !PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_256_cbc(), pass, (int)strlen(pass), NULL, NULL) ||
	    (rc = mem_to_buf(&out->pem, b, e)) < 0 || BIO_reset(b) != 1 ||
	    !i2d_PKCS8PrivateKey_nid_bio(b, k, NID_pbe_WithSHA1And3_Key_TripleDES_CBC, pass, (int)strlen(pass),
					 NULL, NULL) ||
	    (rc = mem_to_buf(&out->der, b, e)) < 0) {
		rc = rc < 0 ? rc : pki_ossl_err(e, ROTOR_ERROR, "cannot encrypt the private key");
		goto out;
	}
	if ((rc = p12_write(&out->p12, k, leaf, chain, pass, e)) < 0)
		goto out;
	if (plain && (rc = key_encode(&out->plain, k, e)) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		pki_handoff_key_wipe(out);
	BIO_free(b);            /* BUF_MEM_free cleanses the bytes */
	EVP_PKEY_free(k);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	ERR_clear_error();
	return rc;
}

int pki_key_p12(struct buf *out, const char *key, size_t key_len, const char *chain_pem, size_t chain_len,
		const char *pass, struct err *e)
{
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *k = NULL;
	X509 *leaf = NULL;
	int rc;

	if (!out || !key || !chain_pem || !pass || strlen(pass) > 1024)
		return err_set(e, ROTOR_EINVALID, "pki_key_p12: invalid arguments");
	if ((rc = key_and_chain(&k, &leaf, &chain, key, key_len, chain_pem, chain_len, e)) == 0)
		rc = p12_write(out, k, leaf, chain, pass, e);
	EVP_PKEY_free(k);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	ERR_clear_error();
	return rc;
}

/* Append x to out as PEM. */
static int cert_pem(struct buf *out, X509 *x, BIO *b, struct err *e)
{
	if (BIO_reset(b) != 1 || !PEM_write_bio_X509(b, x))
		return pki_ossl_err(e, ROTOR_ERROR, "cannot write a certificate");
	return mem_to_buf(out, b, e);
}

int pki_p12_read(struct buf *certs_pem, struct buf *key_pem, const void *data, size_t len, const char *pass,
		 struct err *e)
{
	const unsigned char *p = data;
	STACK_OF(X509) *ca = NULL;
	EVP_PKEY *k = NULL;
	PKCS12 *p12 = NULL;
	X509 *leaf = NULL;
	BIO *b = NULL;
	int rc = 0, i;

	if (!certs_pem || !key_pem || !data || !pass || len > LONG_MAX)
		return err_set(e, ROTOR_EINVALID, "pki_p12_read: invalid arguments");
	if (!(p12 = d2i_PKCS12(NULL, &p, (long)len)) || p != (const unsigned char *)data + len) {
		rc = err_set(e, ROTOR_EINVALID, "not a PKCS#12 file");
		goto out;
	}
	if (!PKCS12_parse(p12, pass, &k, &leaf, &ca)) {
		rc = err_set(e, ROTOR_EINVALID, "a PKCS#12 file that does not open with its password");
		goto out;
	}
	if (!k || !leaf) {
		rc = err_set(e, ROTOR_EINVALID, "a PKCS#12 file without a key and its certificate");
		goto out;
	}
	if (!(b = BIO_new(BIO_s_mem()))) {
		rc = err_nomem(e);
		goto out;
	}
	if ((rc = cert_pem(certs_pem, leaf, b, e)) < 0)
		goto out;
	for (i = 0; i < sk_X509_num(ca); i++)
		if ((rc = cert_pem(certs_pem, sk_X509_value(ca, i), b, e)) < 0)
			goto out;
	rc = key_encode(key_pem, k, e);
out:
	BIO_free(b);
	PKCS12_free(p12);
	EVP_PKEY_free(k);
	X509_free(leaf);
	sk_X509_pop_free(ca, X509_free);
	ERR_clear_error();
	return rc;
}

/* The bag's friendly name (Java's alias): the certificate's common name, else "ca-N". */
static int friendly_name(PKCS12_SAFEBAG *bag, X509 *x, int i)
{
	char cn[128];
	int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, (int)sizeof(cn));

	if (n <= 0 || (size_t)n >= sizeof(cn))
		snprintf(cn, sizeof(cn), "ca-%d", i + 1);
	return PKCS12_add_friendlyname_asc(bag, cn, -1);
}

int pki_trust_store(struct buf *out, const char *pem, size_t len, const char *pass, struct err *e)
{
	STACK_OF(PKCS12_SAFEBAG) *bags = NULL;
	STACK_OF(PKCS7) *safes = NULL;
	STACK_OF(X509) *certs = NULL;
	ASN1_OBJECT *any_eku = NULL;
	PKCS12 *p12 = NULL;
	BIO *b = NULL;
	int rc, i;

	if (!out || !pem)
		return err_set(e, ROTOR_EINVALID, "pki_trust_store: invalid arguments");
	if ((rc = pass_ok(pass, e)) < 0 || (rc = read_certs(&certs, pem, len, "the trust bundle", e)) < 0)
		return rc;
	if (!(any_eku = OBJ_txt2obj(ANY_EKU_OID, 1))) {
		rc = pki_ossl_err(e, ROTOR_ENOMEM, "cannot make the trust store");
		goto out;
	}
	for (i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		PKCS12_SAFEBAG *bag = PKCS12_add_cert(&bags, x);

		/* len -1: the value is the ASN1_OBJECT itself (X509_ATTRIBUTE_set1_data). */
		if (!bag || !friendly_name(bag, x, i) ||
		    !PKCS12_add1_attr_by_txt(bag, JDK_TRUST_OID, V_ASN1_OBJECT, (const unsigned char *)any_eku, -1)) {
			rc = pki_ossl_err(e, ROTOR_ERROR, "cannot add certificate %d to the trust store", i + 1);
			goto out;
		}
	}
	if (!PKCS12_add_safe(&safes, bags, NID_aes_256_cbc, P12_ITER, pass) ||
	    !(p12 = PKCS12_add_safes(safes, 0)) ||
	    !PKCS12_set_mac(p12, pass, -1, NULL, 0, P12_ITER, EVP_sha256()) ||
	    !(b = BIO_new(BIO_s_mem())) || !i2d_PKCS12_bio(b, p12)) {
		rc = pki_ossl_err(e, ROTOR_ERROR, "cannot write the trust store");
		goto out;
	}
	rc = mem_to_buf(out, b, e);
out:
	BIO_free(b);
	PKCS12_free(p12);
	sk_PKCS7_pop_free(safes, PKCS7_free);
	sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	sk_X509_pop_free(certs, X509_free);
	ASN1_OBJECT_free(any_eku);
	ERR_clear_error();
	return rc;
}

int pki_sha256_hex(char out[65], const void *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int mdlen = 0;
	size_t i;

	out[0] = '\0';
	if (!EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != sizeof(md)) {
		ERR_clear_error();
		return ROTOR_ERROR;
	}
	for (i = 0; i < sizeof(md); i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[64] = '\0';
	return 0;
}
