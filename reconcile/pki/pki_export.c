/*
 * pki_export.c -- a generation as files (PEM certificates, encrypted
 * PKCS#8 keys, manifest.yaml), and certificate descriptions for the
 * manifest (see pki.h).
 *
 * Keys are encrypted as PKCS#8 (PBES2: PBKDF2-HMAC-SHA256 with a random
 * 16-byte salt, AES-256-CBC) under the repository secret, with
 * PKI_KEY_PBKDF2_ITER iterations: see there why one.  Certificates are
 * exported on the generation's worker threads, each into its own fixed
 * slot.
 */
#include "reconcile/pki/pki.h"
#include "reconcile/pki/pki_int.h"
#include "common/hex.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/buffer.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/*
 * PBKDF2 iterations per encrypted key: one.  Iterations stretch a guessable
 * passphrase; the repository secret is 256 random bits (pki_secret_create(),
 * used as its 64 hex digits), so a search costs 2^256 HMACs whatever the
 * count, and OpenSSL's default 2,048 only multiplied the cost of every key
 * by about five (README, Benchmarks).  The random salt still gives every
 * key its own AES key.  `openssl pkey -passin file:KEYFILE` reads the
 * count from the file like any other.  OpenSSL's FIPS provider refuses
 * fewer than 1,000 iterations; rotor uses the default provider.
 */
#define PKI_KEY_PBKDF2_ITER 1
#define PKI_KEY_SALT_LEN 16

/*
 * An EC P-256 key's PrivateKeyInfo (RFC 5208) built from its two numbers:
 * the bytes OpenSSL's encoder writes (an RFC 5915 ECPrivateKey with the
 * curve only in the algorithm and the public key included; a unit test
 * compares them).  EVP_PKEY2PKCS8 looks its encoder up among the
 * providers for every key, most of the cost of an encrypted key at one
 * PBKDF2 iteration.  NULL for any other key, or on a failure: the caller
 * then asks EVP_PKEY2PKCS8.
 */
static PKCS8_PRIV_KEY_INFO *p256_pkcs8(const EVP_PKEY *k)
{
	static const unsigned char head[] = {
		0x30, 0x81, 0x87, 0x02, 0x01, 0x00,                       /* PrivateKeyInfo, v1 */
		0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,  /* id-ecPublicKey */
		0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,  /* prime256v1 */
		0x04, 0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20,     /* ECPrivateKey, d */
	};
	static const unsigned char mid[] = { 0xa1, 0x44, 0x03, 0x42, 0x00 };  /* [1] public key */
	unsigned char der[sizeof(head) + 32 + sizeof(mid) + 65];
	unsigned char *pub = der + sizeof(head) + 32 + sizeof(mid);
	const unsigned char *p = der;
	PKCS8_PRIV_KEY_INFO *inf = NULL;
	BIGNUM *d = NULL;
	char curve[32];
	size_t publen = 0;

	if (!EVP_PKEY_is_a(k, "EC") ||
	    !EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve), NULL) ||
	    strcmp(curve, "prime256v1") != 0) {
		ERR_clear_error();
		return NULL;
	}
	memcpy(der, head, sizeof(head));
	memcpy(der + sizeof(head) + 32, mid, sizeof(mid));
	if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &d) &&
	    BN_bn2binpad(d, der + sizeof(head), 32) == 32 &&
	    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, 65, &publen) &&
	    publen == 65 && pub[0] == 0x04)
		inf = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)sizeof(der));
	BN_clear_free(d);
	OPENSSL_cleanse(der, sizeof(der));
	if (!inf)
		ERR_clear_error();
	return inf;
}

/* k as an encrypted PKCS#8 PEM into b; 0 on an OpenSSL failure. */
static int write_encrypted_key(BIO *b, EVP_PKEY *k, const char *pass, int passlen)
{
	PKCS8_PRIV_KEY_INFO *inf = p256_pkcs8(k);
	X509_ALGOR *alg = NULL;
	X509_SIG *p8 = NULL;
	int ok;

	if (!inf)
		inf = EVP_PKEY2PKCS8(k);
	if (inf)
		alg = PKCS5_pbe2_set_iv(EVP_aes_256_cbc(), PKI_KEY_PBKDF2_ITER, NULL, PKI_KEY_SALT_LEN, NULL,
					NID_hmacWithSHA256);
	if (alg && !(p8 = PKCS8_set0_pbe(pass, passlen, inf, alg)))
		X509_ALGOR_free(alg);   /* PKCS8_set0_pbe takes alg only when it succeeds */
	ok = p8 && PEM_write_bio_PKCS8(b, p8);
	X509_SIG_free(p8);
	PKCS8_PRIV_KEY_INFO_free(inf);   /* cleanses the key bytes */
	return ok;
}

/* ---- formatting helpers ---- */

static char *hex_colon_dup(const unsigned char *p, size_t n, struct err *e)
{
	char *s = malloc(n ? n * 3 : 1);

	if (!s) {
		err_nomem(e);
		return NULL;
	}
	hex_colon(s, n ? n * 3 : 1, p, n);
	return s;
}

static char *rfc3339(const ASN1_TIME *t, struct err *e)
{
	struct tm tm;
	char s[80];

	if (!t || !ASN1_TIME_to_tm(t, &tm)) {
		pki_ossl_err(e, ROTOR_EINVALID, "invalid certificate time");
		return NULL;
	}
	snprintf(s, sizeof(s), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return xstrdup(s, e);
}

static char *rfc3339_now(time_t now, struct err *e)
{
	struct tm tm;
	char s[32];

	if (!gmtime_r(&now, &tm)) {
		err_set(e, ROTOR_EINVALID, "time out of range");
		return NULL;
	}
	if (strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		err_set(e, ROTOR_EINVALID, "time out of range");
		return NULL;
	}
	return xstrdup(s, e);
}

char *pki_name_rfc2253(const X509_NAME *n, struct err *e)
{
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *m = NULL;
	char *s = NULL;

	if (!b || X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) < 0 ||
	    BIO_get_mem_ptr(b, &m) <= 0 || !m) {
		pki_ossl_err(e, ROTOR_ERROR, "cannot print a certificate name");
		goto out;
	}
	s = malloc(m->length + 1);
	if (!s) {
		err_nomem(e);
		goto out;
	}
	memcpy(s, m->data, m->length);
	s[m->length] = '\0';
out:
	BIO_free(b);
	return s;
}

/* Lowercase hex of the serial's magnitude, two digits a byte, "-" if negative. */
char *pki_serial_hex(const ASN1_INTEGER *a, struct err *e)
{
	const unsigned char *p = ASN1_STRING_get0_data(a);
	int n = ASN1_STRING_length(a), neg = ASN1_STRING_type(a) == V_ASN1_NEG_INTEGER;
	char *s, *q;
	int i;

	if (n < 0 || (n > 0 && !p)) {
		err_set(e, ROTOR_EINVALID, "invalid serial number");
		return NULL;
	}
	if (n == 0)
		return xstrdup("00", e);
	s = malloc((size_t)n * 2 + 2);
	if (!s) {
		err_nomem(e);
		return NULL;
	}
	q = s;
	if (neg)
		*q++ = '-';
	for (i = 0; i < n; i++, q += 2)
		snprintf(q, 3, "%02x", p[i]);
	return s;
}

static void describe_release(struct manifest_cert *m)
{
	free(m->subject);
	free(m->issuer);
	free(m->fingerprint);
	free(m->serial);
	free(m->ski);
	free(m->aki);
	free(m->not_before);
	free(m->not_after);
	m->subject = m->issuer = m->fingerprint = m->serial = NULL;
	m->ski = m->aki = m->not_before = m->not_after = NULL;
}

static int describe_x509(struct manifest_cert *out, X509 *x, struct err *e)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const ASN1_OCTET_STRING *ski, *aki;
	int rc = ROTOR_ENOMEM;

	/* Fills the extension cache; fails on a certificate OpenSSL rejects. */
	if (X509_check_purpose(x, -1, 0) != 1 || (X509_get_extension_flags(x) & EXFLAG_INVALID))
		return pki_ossl_err(e, ROTOR_EINVALID, "invalid certificate extensions");
	ski = X509_get0_subject_key_id(x);
	aki = X509_get0_authority_key_id(x);
	if (!X509_digest(x, EVP_sha256(), md, &mdlen))
		return pki_ossl_err(e, ROTOR_ERROR, "cannot compute the certificate fingerprint");
	if (!(out->subject = pki_name_rfc2253(X509_get_subject_name(x), e)) ||
	    !(out->issuer = pki_name_rfc2253(X509_get_issuer_name(x), e)) ||
	    !(out->fingerprint = hex_colon_dup(md, mdlen, e)) ||
	    !(out->serial = pki_serial_hex(X509_get0_serialNumber(x), e)) ||
	    (ski && !(out->ski = hex_colon_dup(ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski), e))) ||
	    (aki && !(out->aki = hex_colon_dup(ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki), e))) ||
	    !(out->not_before = rfc3339(X509_get0_notBefore(x), e)) ||
	    !(out->not_after = rfc3339(X509_get0_notAfter(x), e))) {
		rc = e && e->code < 0 ? e->code : ROTOR_ENOMEM;
		describe_release(out);
		return rc;
	}
	return 0;
}

int pki_cert_describe(struct manifest_cert *out, const char *pem, size_t len, struct err *e)
{
	return pki_cert_describe_keep(out, pem, len, NULL, e);
}

void pki_x509_free(struct x509_st *x)
{
	X509_free(x);
}

int pki_cert_der(struct buf *der, char fingerprint[96], const char *pem, size_t len)
{
	BIO *b;
	char *name = NULL, *header = NULL;
	unsigned char *d = NULL, md[32];
	unsigned int mdlen = 0;
	long dlen = 0;
	int rc = ROTOR_EINVALID;

	fingerprint[0] = '\0';
	buf_truncate(der, 0);
	if (len > INT_MAX)
		return ROTOR_EINVALID;
	if (!(b = BIO_new_mem_buf(pem, (int)len)))
		return ROTOR_ENOMEM;
	if (PEM_read_bio(b, &name, &header, &d, &dlen) && strcmp(name, PEM_STRING_X509) == 0 && dlen > 0 &&
	    EVP_Digest(d, (size_t)dlen, md, &mdlen, EVP_sha256(), NULL) && mdlen == sizeof(md)) {
		hex_colon(fingerprint, 96, md, mdlen);
		rc = buf_put(der, d, (size_t)dlen) < 0 ? ROTOR_ENOMEM : 0;
	}
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(d);
	BIO_free(b);
	ERR_clear_error();
	return rc;
}

int pki_cert_describe_keep(struct manifest_cert *out, const char *pem, size_t len, struct x509_st **keep,
			   struct err *e)
{
	BIO *b = NULL;
	X509 *x = NULL;
	int rc;

	if (keep)
		*keep = NULL;

	if (!out || !pem || len > INT_MAX)
		return err_set(e, ROTOR_EINVALID, "pki_cert_describe: invalid arguments");
	out->subject = out->issuer = out->fingerprint = out->serial = NULL;
	out->ski = out->aki = out->not_before = out->not_after = NULL;
	if (!(b = BIO_new_mem_buf(pem, (int)len))) {
		rc = pki_ossl_err(e, ROTOR_ENOMEM, "cannot read the certificate");
		goto out;
	}
	if (!(x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		rc = pki_ossl_err(e, ROTOR_EINVALID, "not a PEM certificate");
		goto out;
	}
	rc = describe_x509(out, x, e);
	if (rc == 0 && keep) {
		*keep = x;
		x = NULL;
	}
out:
	X509_free(x);
	BIO_free(b);
	ERR_clear_error();
	return rc;
}

/* ---- export ---- */

/* Copy a memory BIO's contents into dst, wiping nothing else behind. */
static int bio_to_buf(struct buf *dst, BIO *b, struct err *e)
{
	BUF_MEM *m = NULL;

	if (BIO_get_mem_ptr(b, &m) <= 0 || !m)
		return pki_ossl_err(e, ROTOR_ERROR, "cannot read a memory BIO");
	if (buf_put(dst, m->data, m->length) < 0)
		return err_nomem(e);
	return 0;
}

struct exp {
	const struct pki_generation *g;
	const char *pass;
	int passlen;
	struct pki_file *files;
	size_t *slot;                 /* per cert: index of its .crt in files */
	struct manifest *m;
};

static const char *cert_base(const struct pki_cert *c, char *tmp, size_t n)
{
	switch (c->role) {
	case CERT_ROLE_ROOT:
		return "ca/root";
	case CERT_ROLE_SERVER_CA:
		return "ca/server-ca";
	case CERT_ROLE_CLIENT_CA:
		return "ca/client-ca";
	case CERT_ROLE_SERVER:
		snprintf(tmp, n, "servers/%s", c->name);
		return tmp;
	case CERT_ROLE_CLIENT:
	default:
		snprintf(tmp, n, "clients/%s", c->name);
		return tmp;
	}
}

static char *path_of(const char *base, const char *ext, struct err *e)
{
	size_t a = strlen(base), b = strlen(ext);
	char *p = malloc(a + b + 1);

	if (!p) {
		err_nomem(e);
		return NULL;
	}
	memcpy(p, base, a);
	memcpy(p + a, ext, b + 1);
	return p;
}

static int job_export(void *ctx, void **slot, size_t i, struct err *e)
{
	struct exp *x = ctx;
	const struct pki_cert *c = &x->g->certs[i];
	struct pki_file *fc = &x->files[x->slot[i]];
	struct manifest_cert *mc = &x->m->certs[i];
	char tmp[128];
	const char *base = cert_base(c, tmp, sizeof(tmp));
	BIO *b = NULL;
	int rc;

	(void)slot;
	if (!c->x509 || !c->name)
		return err_set(e, ROTOR_EINVALID, "certificate %zu is missing", i);
	mc->role = c->role;
	if (!(mc->name = xstrdup(c->name, e)))
		return ROTOR_ENOMEM;
	if (!(fc->path = path_of(base, ".crt", e)) || !(mc->cert = xstrdup(fc->path, e)))
		return ROTOR_ENOMEM;
	if ((rc = describe_x509(mc, c->x509, e)) < 0)
		return err_prefix(e, "%s", mc->cert);

	if (!(b = BIO_new(BIO_s_mem())) || !PEM_write_bio_X509(b, c->x509)) {
		rc = pki_ossl_err(e, ROTOR_ERROR, "%s: cannot encode", fc->path);
		goto out;
	}
	if ((rc = bio_to_buf(&fc->data, b, e)) < 0)
		goto out;
	BIO_free(b);
	b = NULL;

	if (c->pkey) {
		struct pki_file *fk = fc + 1;

		if (!(fk->path = path_of(base, ".key", e)) || !(mc->key = xstrdup(fk->path, e))) {
			rc = ROTOR_ENOMEM;
			goto out;
		}
		fk->secret = 1;
		/* PKCS#8 EncryptedPrivateKeyInfo: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC. */
		if (!(b = BIO_new(BIO_s_mem())) ||
		    !write_encrypted_key(b, c->pkey, x->pass, x->passlen)) {
			rc = pki_ossl_err(e, ROTOR_ERROR, "%s: cannot encrypt the private key", fk->path);
			goto out;
		}
		if ((rc = bio_to_buf(&fk->data, b, e)) < 0)
			goto out;
	}
	rc = 0;
out:
	BIO_free(b);    /* BUF_MEM_free cleanses the bytes */
	return rc;
}

int pki_export(struct pki_file **files, size_t *nfiles, struct manifest **manifest_out,
	       const struct pki_generation *g, const char *env,
	       const char *passphrase, time_t now, struct err *e)
{
	struct exp x;
	struct manifest *m = NULL;
	struct pki_file *f = NULL;
	size_t *slot = NULL, i, n = 0;
	size_t passlen;
	int rc;

	if (files)
		*files = NULL;
	if (nfiles)
		*nfiles = 0;
	if (manifest_out)
		*manifest_out = NULL;
	if (!files || !nfiles || !g || !env || !passphrase)
		return err_set(e, ROTOR_EINVALID, "pki_export: invalid arguments");
	passlen = strlen(passphrase);
	if (passlen == 0 || passlen > 1024)
		return err_set(e, ROTOR_ESECRET, "the secret key is empty or too long");

	if (!(slot = calloc(g->ncerts + 1, sizeof(*slot)))) {
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < g->ncerts; i++) {
		slot[i] = n;
		n += g->certs[i].pkey ? 2 : 1;
	}
	if (!(f = calloc(n + 1, sizeof(*f))) || !(m = calloc(1, sizeof(*m))) ||
	    !(m->certs = calloc(g->ncerts ? g->ncerts : 1, sizeof(*m->certs)))) {
		rc = err_nomem(e);
		goto out;
	}
	m->ncerts = g->ncerts;
	m->version = 1;
	m->generation = g->number;
	m->imported = g->ncerts > 0 && !g->certs[0].pkey;
	if (!(m->env = xstrdup(env, e)) || !(m->created = rfc3339_now(now, e))) {
		rc = e && e->code < 0 ? e->code : ROTOR_ENOMEM;
		goto out;
	}

	memset(&x, 0, sizeof(x));
	x.g = g;
	x.pass = passphrase;
	x.passlen = (int)passlen;
	x.files = f;
	x.slot = slot;
	x.m = m;
	rc = pki_parallel(g->ncerts, g->threads, job_export, NULL, &x, e);
	if (rc < 0)
		goto out;

	if ((rc = spec_manifest_emit(m, &f[n].data, e)) < 0) {
		err_prefix(e, "manifest.yaml");
		goto out;
	}
	if (!(f[n].path = xstrdup("manifest.yaml", e))) {
		rc = ROTOR_ENOMEM;
		goto out;
	}
	*files = f;
	*nfiles = n + 1;
	f = NULL;
	if (manifest_out) {
		*manifest_out = m;
		m = NULL;
	}
	rc = 0;
out:
	pki_files_free(f, n + 1);
	spec_manifest_free(m);
	free(slot);
	ERR_clear_error();
	return rc;
}

void pki_files_free(struct pki_file *files, size_t n)
{
	size_t i;

	if (!files)
		return;
	for (i = 0; i < n; i++) {
		free(files[i].path);
		buf_wipe(&files[i].data);
	}
	free(files);
}
