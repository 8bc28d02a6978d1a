/* key.c -- private keys from and to PEM (see key.h). */
#include "reconcile/tls/key.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/err.h>
#include <openssl/pem.h>

struct pass_ctx {
	const char *pass;
	int asked;
};

static int pass_cb(char *buf, int size, int rwflag, void *u)
{
	struct pass_ctx *p = u;
	size_t n;

	(void)rwflag;
	p->asked = 1;
	if (!p->pass || size <= 0)
		return -1;
	n = strlen(p->pass);
	if (n > (size_t)size)
		return -1;
	memcpy(buf, p->pass, n);
	return (int)n;
}

/*
 * Unencrypted PKCS#8 DER, the whole of der[0..len), with a decoder kept
 * per thread; NULL if it does not decode (the caller then takes the
 * general path, which has the last word).  OpenSSL 3.0 builds its chain
 * of decoders anew for every key it reads, several times the cost of
 * the decoding itself: observe reads a key on every host.
 */
struct p8_decoder {
	EVP_PKEY *key;          /* where the decoder puts what it decoded */
	OSSL_DECODER_CTX *dc;
};

static pthread_key_t p8_slot;
static pthread_once_t p8_once = PTHREAD_ONCE_INIT;
static int p8_ready;

static void p8_free(void *p)
{
	struct p8_decoder *d = p;

	OSSL_DECODER_CTX_free(d->dc);
	EVP_PKEY_free(d->key);
	free(d);
}

static void p8_init(void)
{
	p8_ready = pthread_key_create(&p8_slot, p8_free) == 0;
}

static EVP_PKEY *p8_decode(const unsigned char *der, size_t len)
{
	struct p8_decoder *d;
	const unsigned char *p = der;
	size_t left = len;
	EVP_PKEY *k;

	if (pthread_once(&p8_once, p8_init) != 0 || !p8_ready)
		return NULL;
	if (!(d = pthread_getspecific(p8_slot))) {
		if (!(d = calloc(1, sizeof(*d))))
			return NULL;
		d->dc = OSSL_DECODER_CTX_new_for_pkey(&d->key, "DER", "PrivateKeyInfo", NULL, EVP_PKEY_KEYPAIR,
						      NULL, NULL);
		if (!d->dc || pthread_setspecific(p8_slot, d) != 0) {
			p8_free(d);
			return NULL;
		}
	}
	EVP_PKEY_free(d->key);
	d->key = NULL;
	if (!OSSL_DECODER_from_data(d->dc, &p, &left) || left != 0) {
		EVP_PKEY_free(d->key);
		d->key = NULL;
		return NULL;
	}
	k = d->key;
	d->key = NULL;
	return k;
}

/*
 * The PEM label of the first block ("ENCRYPTED PRIVATE KEY", "EC PRIVATE
 * KEY", ...), into label; an unencrypted PKCS#8 block ("PRIVATE KEY") is
 * also decoded into *key when it can be.
 */
static int pem_label(char *label, size_t len, const char *pem, size_t n, EVP_PKEY **key)
{
	BIO *b = BIO_new_mem_buf(pem, (int)n);
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long derlen = 0;
	int ok;

	if (!b)
		return ROTOR_ENOMEM;
	ok = PEM_read_bio(b, &name, &header, &der, &derlen);
	if (ok) {
		snprintf(label, len, "%s", name);
		if (strcmp(name, PEM_STRING_PKCS8INF) == 0 && derlen > 0 && (!header || !*header))
			*key = p8_decode(der, (size_t)derlen);
	}
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_clear_free(der, derlen > 0 ? (size_t)derlen : 0);
	BIO_free(b);
	return ok ? 0 : ROTOR_EINVALID;
}

/* Unencrypted PKCS#8 DER (pgJDBC's .pk8), the whole of der[0..len); NULL if not. */
static EVP_PKEY *der_pkcs8(const char *der, size_t len)
{
	const unsigned char *p = (const unsigned char *)der;
	PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
	EVP_PKEY *k = NULL;

	if (p8 && p == (const unsigned char *)der + len && !(k = p8_decode((const unsigned char *)der, len)))
		k = EVP_PKCS82PKEY(p8);
	PKCS8_PRIV_KEY_INFO_free(p8);   /* cleanses the key bytes */
	return k;
}

int key_decode(EVP_PKEY **out, const char *pem, size_t len, const char *passphrase, unsigned flags,
	       struct err *e)
{
	struct pass_ctx pc = { passphrase, 0 };
	char label[64] = "";
	EVP_PKEY *fast = NULL;
	BIO *b;
	int rc, encrypted;

	*out = NULL;
	if (!pem || len == 0)
		return err_set(e, ROTOR_EINVALID, "no key");
	if (len > INT_MAX)
		return err_set(e, ROTOR_EINVALID, "the key is too large");
	rc = pem_label(label, sizeof(label), pem, len, &fast);
	ERR_clear_error();
	if (rc == ROTOR_ENOMEM)
		return err_nomem(e);
	if (fast && !(flags & KEY_ENCRYPTED)) {
		*out = fast;
		return 0;
	}
	EVP_PKEY_free(fast);
	if (rc < 0 && !(flags & KEY_ENCRYPTED) && (unsigned char)pem[0] == 0x30) {
		*out = der_pkcs8(pem, len);
		ERR_clear_error();
		if (*out)
			return 0;
		return err_set(e, ROTOR_EINVALID, "neither a PEM private key nor unencrypted PKCS#8 DER");
	}
	if (rc < 0 || !strstr(label, "PRIVATE KEY"))
		return err_set(e, ROTOR_EINVALID, "not a PEM private key");
	encrypted = strcmp(label, PEM_STRING_PKCS8) == 0;
	if ((flags & KEY_ENCRYPTED) && !encrypted)
		return err_set(e, ROTOR_EINVALID, "not an ENCRYPTED PRIVATE KEY (found \"%s\")", label);
	if ((flags & KEY_PLAIN) && encrypted)
		return err_set(e, ROTOR_EINVALID, "an encrypted key where an unencrypted one belongs");
	if (!(b = BIO_new_mem_buf(pem, (int)len)))
		return err_nomem(e);
	*out = PEM_read_bio_PrivateKey(b, NULL, pass_cb, &pc);
	BIO_free(b);
	ERR_clear_error();
	if (*out)
		return 0;
	if (pc.asked && !passphrase)
		return err_set(e, ROTOR_ESECRET, "the key is encrypted and no passphrase was given");
	if (pc.asked)
		return err_set(e, ROTOR_ESECRET, "the key does not decrypt with the passphrase");
	return err_set(e, ROTOR_EINVALID, "not a PEM private key");
}

int key_encode(struct buf *out, EVP_PKEY *k, struct err *e)
{
	return key_encode_as(out, k, 0, e);
}

int key_encode_as(struct buf *out, EVP_PKEY *k, int der, struct err *e)
{
	BIO *mem = BIO_new(BIO_s_secmem());
	BUF_MEM *m = NULL;
	int rc = 0;

	if (!mem || !(der ? i2d_PKCS8PrivateKey_bio(mem, k, NULL, NULL, 0, NULL, NULL)
			  : PEM_write_bio_PKCS8PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL)) ||
	    BIO_get_mem_ptr(mem, &m) <= 0 || buf_put(out, m->data, m->length) < 0)
		rc = err_nomem(e);
	BIO_free(mem);      /* secure memory: cleansed on free */
	ERR_clear_error();
	return rc;
}

/* ---- key_match_cert_der() ---- */

/* One DER element: the whole of it [start, end), its contents [body, end). */
struct tlv {
	const unsigned char *start, *body, *end;
	int tag, cls, cons;
};

/* The element at *p, which must end by end; *p moves past it.  0, or -1 for anything that is not DER. */
static int tlv_next(const unsigned char **p, const unsigned char *end, struct tlv *t)
{
	const unsigned char *q = *p;
	long len;
	int r;

	if (*p >= end)
		return -1;
	r = ASN1_get_object(&q, &len, &t->tag, &t->cls, (long)(end - *p));
	if ((r & 0x80) || (r & 0x01) || len < 0 || len > end - q)   /* error; indefinite length is not DER */
		return -1;
	t->start = *p;
	t->body = q;
	t->end = q + len;
	t->cons = (r & V_ASN1_CONSTRUCTED) != 0;
	*p = t->end;
	return 0;
}

/* The same, and it must be a universal element with this tag (constructed for a SEQUENCE). */
static int tlv_want(const unsigned char **p, const unsigned char *end, int tag, struct tlv *t)
{
	if (tlv_next(p, end, t) < 0 || t->cls != V_ASN1_UNIVERSAL || t->tag != tag ||
	    t->cons != (tag == V_ASN1_SEQUENCE))
		return -1;
	return 0;
}

/* The certificate's SubjectPublicKeyInfo: its AlgorithmIdentifier and the key's bytes (the BIT STRING's). */
static int cert_spki(const unsigned char *der, size_t n, struct tlv *alg, const unsigned char **key, size_t *klen)
{
	const unsigned char *p = der, *end = der + n, *q;
	struct tlv cert, tbs, t, spki, bits;
	int i;

	if (tlv_want(&p, end, V_ASN1_SEQUENCE, &cert) < 0 || p != end)
		return -1;
	p = cert.body;
	if (tlv_want(&p, cert.end, V_ASN1_SEQUENCE, &tbs) < 0)
		return -1;
	q = tbs.body;
	if (tlv_next(&q, tbs.end, &t) < 0)
		return -1;
	if (t.cls == V_ASN1_CONTEXT_SPECIFIC && t.tag == 0) {   /* [0] version */
		if (tlv_want(&q, tbs.end, V_ASN1_INTEGER, &t) < 0)
			return -1;
	} else if (t.cls != V_ASN1_UNIVERSAL || t.tag != V_ASN1_INTEGER) {
		return -1;
	}
	/* signature, issuer, validity, subject */
	for (i = 0; i < 4; i++)
		if (tlv_want(&q, tbs.end, V_ASN1_SEQUENCE, &t) < 0)
			return -1;
	if (tlv_want(&q, tbs.end, V_ASN1_SEQUENCE, &spki) < 0)
		return -1;
	q = spki.body;
	if (tlv_want(&q, spki.end, V_ASN1_SEQUENCE, alg) < 0 || tlv_want(&q, spki.end, V_ASN1_BIT_STRING, &bits) < 0 ||
	    q != spki.end || bits.end - bits.body < 2 || bits.body[0] != 0)
		return -1;
	*key = bits.body + 1;
	*klen = (size_t)(bits.end - bits.body - 1);
	return 0;
}

static const unsigned char oid_ec[] = { 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
static const unsigned char oid_ed25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };

/* d*G on the named curve of alg's parameters, uncompressed, compared with pub: 1, 0 or -1. */
static int ec_match(const struct tlv *alg, const unsigned char *d, size_t dlen, const unsigned char *pub,
		    size_t publen)
{
	const unsigned char *p = alg->body + sizeof(oid_ec);
	ASN1_OBJECT *curve = d2i_ASN1_OBJECT(NULL, &p, (long)(alg->end - p));
	EC_GROUP *g = NULL;
	EC_POINT *pt = NULL;
	BN_CTX *ctx = NULL;
	BIGNUM *x = NULL;
	unsigned char out[133];   /* P-521's uncompressed point */
	size_t n;
	int r = -1, nid;

	if (!curve || p != alg->end || (nid = OBJ_obj2nid(curve)) == NID_undef)
		goto out;
	if (!(g = EC_GROUP_new_by_curve_name(nid)) || !(pt = EC_POINT_new(g)) || !(ctx = BN_CTX_secure_new()) ||
	    !(x = BN_secure_new()) || !BN_bin2bn(d, (int)dlen, x))
		goto out;
	/* A scalar outside [1, order) is no key: OpenSSL's decoding decides what to call it. */
	if (BN_is_zero(x) || BN_cmp(x, EC_GROUP_get0_order(g)) >= 0)
		goto out;
	if (!EC_POINT_mul(g, pt, x, NULL, NULL, ctx) ||
	    !(n = EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, out, sizeof(out), ctx)))
		goto out;
	if (publen == 0 || pub[0] != POINT_CONVERSION_UNCOMPRESSED)
		goto out;   /* a compressed point: left to OpenSSL */
	r = n == publen && memcmp(out, pub, n) == 0;
out:
	BN_clear_free(x);
	BN_CTX_free(ctx);
	EC_POINT_free(pt);
	EC_GROUP_free(g);
	ASN1_OBJECT_free(curve);
	return r;
}

static int ed25519_match(const unsigned char *priv, size_t plen, const unsigned char *pub, size_t publen)
{
	EVP_PKEY *k;
	unsigned char out[32];
	size_t n = sizeof(out);
	int r = -1;

	if (plen != 32 || publen != 32)
		return -1;
	if (!(k = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, priv, plen)))
		return -1;
	if (EVP_PKEY_get_raw_public_key(k, out, &n) == 1 && n == sizeof(out))
		r = memcmp(out, pub, n) == 0;
	EVP_PKEY_free(k);
	return r;
}

/* The PKCS#8 PrivateKeyInfo in der[0..n) against the certificate's public key. */
static int p8_match(const unsigned char *der, size_t n, const struct tlv *calg, const unsigned char *pub,
		    size_t publen)
{
	const unsigned char *p = der, *end = der + n, *q;
	struct tlv info, ver, alg, priv, inner, t;

	if (tlv_want(&p, end, V_ASN1_SEQUENCE, &info) < 0 || p != end)
		return -1;
	q = info.body;
	if (tlv_want(&q, info.end, V_ASN1_INTEGER, &ver) < 0 || ver.end - ver.body != 1 || ver.body[0] > 1 ||
	    tlv_want(&q, info.end, V_ASN1_SEQUENCE, &alg) < 0 || tlv_want(&q, info.end, V_ASN1_OCTET_STRING, &priv) < 0)
		return -1;
	/* The same algorithm and parameters as the certificate's, or OpenSSL decides. */
	if (alg.end - alg.start != calg->end - calg->start || memcmp(alg.start, calg->start, (size_t)(alg.end - alg.start)))
		return -1;
	if ((size_t)(alg.end - alg.body) > sizeof(oid_ec) && memcmp(alg.body, oid_ec, sizeof(oid_ec)) == 0) {
		/* ECPrivateKey: version 1, the scalar, then optional parameters and public key */
		p = priv.body;
		if (tlv_want(&p, priv.end, V_ASN1_SEQUENCE, &inner) < 0 || p != priv.end)
			return -1;
		q = inner.body;
		if (tlv_want(&q, inner.end, V_ASN1_INTEGER, &t) < 0 || t.end - t.body != 1 || t.body[0] != 1 ||
		    tlv_want(&q, inner.end, V_ASN1_OCTET_STRING, &t) < 0)
			return -1;
		return ec_match(&alg, t.body, (size_t)(t.end - t.body), pub, publen);
	}
	if ((size_t)(alg.end - alg.body) == sizeof(oid_ed25519) && memcmp(alg.body, oid_ed25519, sizeof(oid_ed25519)) == 0) {
		/* CurvePrivateKey: an OCTET STRING inside the OCTET STRING (RFC 8410) */
		p = priv.body;
		if (tlv_want(&p, priv.end, V_ASN1_OCTET_STRING, &inner) < 0 || p != priv.end)
			return -1;
		return ed25519_match(inner.body, (size_t)(inner.end - inner.body), pub, publen);
	}
	return -1;
}

int key_match_cert_der(const char *key, size_t len, const unsigned char *cert_der, size_t der_len)
{
	struct tlv calg;
	const unsigned char *pub;
	size_t publen;
	int r = -1;

	if (!key || !cert_der || len == 0 || len > INT_MAX || der_len > LONG_MAX ||
	    cert_spki(cert_der, der_len, &calg, &pub, &publen) < 0)
		goto out;
	if ((unsigned char)key[0] == 0x30) {
		r = p8_match((const unsigned char *)key, len, &calg, pub, publen);
	} else {
		BIO *b = BIO_new_mem_buf(key, (int)len);
		char *name = NULL, *header = NULL;
		unsigned char *der = NULL;
		long derlen = 0;

		if (b && PEM_read_bio(b, &name, &header, &der, &derlen) && strcmp(name, PEM_STRING_PKCS8INF) == 0 &&
		    (!header || !*header) && derlen > 0)
			r = p8_match(der, (size_t)derlen, &calg, pub, publen);
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_clear_free(der, derlen > 0 ? (size_t)derlen : 0);
		BIO_free(b);
	}
out:
	ERR_clear_error();
	return r;
}
