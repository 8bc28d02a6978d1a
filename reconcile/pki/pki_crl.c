/*
 * pki_crl.c -- certificate revocation lists and the CAs that sign them
 * (see pki.h: pki_crl_sign, pki_crl_read, pki_ca_load).
 */
#include "reconcile/pki/pki.h"
#include "reconcile/pki/pki_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "reconcile/tls/key.h"

#define PKI_CRL_BACKDATE 300
#define PKI_CRL_MAX_DAYS 36525

/* The signature digest rotor uses with this key (as its certificates do). */
static const EVP_MD *crl_md(EVP_PKEY *k)
{
	if (EVP_PKEY_is_a(k, "ED25519"))
		return NULL;
	if (EVP_PKEY_is_a(k, "EC") && EVP_PKEY_get_bits(k) >= 384)
		return EVP_sha384();
	return EVP_sha256();
}

/*
 * Does key belong to ca?  Compared as encoded public keys: a CA rotor has
 * just made may not have its public key decoded (see struct pki_cert).
 */
static int key_matches(X509 *ca, EVP_PKEY *key)
{
	unsigned char *a = NULL, *b = NULL;
	int na = i2d_PUBKEY(key, &a), nb = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(ca), &b);
	int ok = na > 0 && na == nb && memcmp(a, b, (size_t)na) == 0;

	OPENSSL_free(a);
	OPENSSL_free(b);
	ERR_clear_error();
	return ok;
}

static X509_CRL *crl_parse(const char *pem, size_t len)
{
	BIO *b;
	X509_CRL *c;

	if (!pem || len == 0 || len > INT_MAX || !(b = BIO_new_mem_buf(pem, (int)len)))
		return NULL;
	c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
	BIO_free(b);
	return c;
}

static ASN1_INTEGER *serial_from_hex(const char *hex)
{
	BIGNUM *bn = NULL;
	ASN1_INTEGER *a = NULL;
	size_t n = hex ? strlen(hex) : 0;

	if (n == 0 || n > 64 || strspn(hex, "0123456789abcdef") != n)
		return NULL;
	if (BN_hex2bn(&bn, hex) == (int)n)
		a = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	return a;
}

int pki_crl_sign(struct buf *out, const void *ca_x509, const void *ca_pkey, const char *prev_pem, size_t prev_len,
		 const char *const *serials, size_t nserials, time_t now, int days, struct err *e)
{
	X509 *ca = (X509 *)ca_x509;
	EVP_PKEY *key = (EVP_PKEY *)ca_pkey;
	X509_CRL *crl = NULL, *prev = NULL;
	ASN1_TIME *lu = NULL, *nu = NULL, *at = NULL;
	ASN1_INTEGER *num = NULL, *sn = NULL;
	AUTHORITY_KEYID *akid = NULL;
	const ASN1_OCTET_STRING *ski;
	BIO *b = NULL;
	long prev_number = 0;
	size_t i;
	int rc = ROTOR_ERROR, crit = 0;

	if (!ca || !key || days < 1 || days > PKI_CRL_MAX_DAYS)
		return err_set(e, ROTOR_EINVALID, "pki_crl_sign: invalid arguments");
	if (!key_matches(ca, key))
		return err_set(e, ROTOR_EINVALID, "the CA key does not belong to its certificate");
	if (prev_pem) {
		ASN1_INTEGER *pn;

		if (!(prev = crl_parse(prev_pem, prev_len))) {
			ERR_clear_error();
			return err_set(e, ROTOR_EINVALID, "the previous CRL does not parse");
		}
		if (X509_NAME_cmp(X509_CRL_get_issuer(prev), X509_get_subject_name(ca)) != 0 ||
		    X509_CRL_verify(prev, key) != 1) {
			rc = err_set(e, ROTOR_EINVALID, "the previous CRL was not signed by this CA");
			goto out;
		}
		if ((pn = X509_CRL_get_ext_d2i(prev, NID_crl_number, &crit, NULL)) != NULL) {
			prev_number = ASN1_INTEGER_get(pn);
			ASN1_INTEGER_free(pn);
		}
		if (prev_number < 0 || prev_number >= LONG_MAX)
			prev_number = 0;
	}
	if (!(crl = X509_CRL_new()) || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) ||
	    !(lu = ASN1_TIME_set(NULL, now - PKI_CRL_BACKDATE)) || !(nu = ASN1_TIME_adj(NULL, now, days, 0)) ||
	    !(at = ASN1_TIME_set(NULL, now)) || !X509_CRL_set1_lastUpdate(crl, lu) ||
	    !X509_CRL_set1_nextUpdate(crl, nu))
		goto ossl;
	if (prev) {
		STACK_OF(X509_REVOKED) *rs = X509_CRL_get_REVOKED(prev);
		int k;

		for (k = 0; k < sk_X509_REVOKED_num(rs); k++) {
			X509_REVOKED *d = X509_REVOKED_dup(sk_X509_REVOKED_value(rs, k));

			if (!d || !X509_CRL_add0_revoked(crl, d)) {
				X509_REVOKED_free(d);
				goto ossl;
			}
		}
	}
	for (i = 0; i < nserials; i++) {
		X509_REVOKED *r, *had = NULL;

		if (!(sn = serial_from_hex(serials[i]))) {
			rc = err_set(e, ROTOR_EINVALID, "invalid serial number \"%.64s\"", serials[i] ? serials[i] : "");
			goto out;
		}
		/* Already revoked (by prev, or earlier in serials): listed once. */
		if (X509_CRL_get0_by_serial(crl, &had, sn) == 1) {
			ASN1_INTEGER_free(sn);
			sn = NULL;
			continue;
		}
		if (!(r = X509_REVOKED_new()))
			goto ossl;
		if (!X509_REVOKED_set_serialNumber(r, sn) || !X509_REVOKED_set_revocationDate(r, at) ||
		    !X509_CRL_add0_revoked(crl, r)) {
			X509_REVOKED_free(r);
			goto ossl;
		}
		ASN1_INTEGER_free(sn);
		sn = NULL;
	}
	if (!(num = ASN1_INTEGER_new()) || !ASN1_INTEGER_set(num, prev_number + 1) ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1)
		goto ossl;
	if ((ski = X509_get0_subject_key_id(ca)) != NULL) {
		if (!(akid = AUTHORITY_KEYID_new()) || !(akid->keyid = ASN1_OCTET_STRING_dup(ski)) ||
		    X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0, 0) != 1)
			goto ossl;
	}
	if (!X509_CRL_sort(crl) || X509_CRL_sign(crl, key, crl_md(key)) <= 0)
		goto ossl;
	if (!(b = BIO_new(BIO_s_mem())) || !PEM_write_bio_X509_CRL(b, crl))
		goto ossl;
	{
		BUF_MEM *m = NULL;

		if (BIO_get_mem_ptr(b, &m) <= 0 || !m || buf_put(out, m->data, m->length) < 0) {
			rc = err_nomem(e);
			goto out;
		}
	}
	rc = 0;
	goto out;
ossl:
	rc = pki_ossl_err(e, ROTOR_ERROR, "cannot build the CRL");
out:
	BIO_free(b);
	AUTHORITY_KEYID_free(akid);
	ASN1_INTEGER_free(num);
	ASN1_INTEGER_free(sn);
	ASN1_TIME_free(lu);
	ASN1_TIME_free(nu);
	ASN1_TIME_free(at);
	X509_CRL_free(crl);
	X509_CRL_free(prev);
	ERR_clear_error();
	return rc;
}

/* An ASN1_TIME as seconds since the epoch (0 when it cannot be read). */
static time_t asn1_time(const ASN1_TIME *t)
{
	ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
	int days = 0, secs = 0, ok = epoch && t && ASN1_TIME_diff(&days, &secs, epoch, t);

	ASN1_TIME_free(epoch);
	return ok ? (time_t)days * 86400 + secs : 0;
}

int pki_crl_read(struct pki_crl_info *out, const char *pem, size_t len, struct err *e)
{
	X509_CRL *c;
	STACK_OF(X509_REVOKED) *rs;
	ASN1_INTEGER *pn;
	int k, n, crit = 0, rc = 0;

	memset(out, 0, sizeof(*out));
	out->number = -1;
	if (!(c = crl_parse(pem, len))) {
		ERR_clear_error();
		return err_set(e, ROTOR_EINVALID, "not a PEM CRL");
	}
	out->last_update = asn1_time(X509_CRL_get0_lastUpdate(c));
	out->next_update = X509_CRL_get0_nextUpdate(c) ? asn1_time(X509_CRL_get0_nextUpdate(c)) : 0;
	if ((pn = X509_CRL_get_ext_d2i(c, NID_crl_number, &crit, NULL)) != NULL) {
		out->number = ASN1_INTEGER_get(pn);
		ASN1_INTEGER_free(pn);
	}
	rs = X509_CRL_get_REVOKED(c);
	n = sk_X509_REVOKED_num(rs);
	if (!(out->issuer = pki_name_rfc2253(X509_CRL_get_issuer(c), e))) {
		rc = e && e->code < 0 ? e->code : ROTOR_ENOMEM;
		goto out;
	}
	if (n > 0 && !(out->serials = calloc((size_t)n, sizeof(*out->serials)))) {
		rc = err_nomem(e);
		goto out;
	}
	for (k = 0; k < n; k++) {
		const ASN1_INTEGER *s = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rs, k));

		if (!(out->serials[out->nserials] = pki_serial_hex(s, e))) {
			rc = e && e->code < 0 ? e->code : ROTOR_ENOMEM;
			goto out;
		}
		out->nserials++;
	}
out:
	X509_CRL_free(c);
	ERR_clear_error();
	if (rc < 0)
		pki_crl_info_release(out);
	return rc;
}

void pki_crl_info_release(struct pki_crl_info *c)
{
	size_t i;

	for (i = 0; i < c->nserials; i++)
		free(c->serials[i]);
	free(c->serials);
	free(c->issuer);
	memset(c, 0, sizeof(*c));
}

int pki_ca_load(void **x509, void **pkey, const char *cert_pem, size_t cert_len, const char *key_pem,
		size_t key_len, const char *passphrase, struct err *e)
{
	BIO *b = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	int rc;

	*x509 = *pkey = NULL;
	if (!cert_pem || cert_len == 0 || cert_len > INT_MAX || !(b = BIO_new_mem_buf(cert_pem, (int)cert_len)) ||
	    !(x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		BIO_free(b);
		ERR_clear_error();
		return err_set(e, ROTOR_EINVALID, "the CA certificate does not parse");
	}
	BIO_free(b);
	if ((rc = key_decode(&k, key_pem, key_len, passphrase, KEY_ENCRYPTED, e)) < 0) {
		X509_free(x);
		return rc;
	}
	if (!key_matches(x, k)) {
		X509_free(x);
		EVP_PKEY_free(k);
		return err_set(e, ROTOR_EINVALID, "the CA key does not belong to its certificate");
	}
	*x509 = x;
	*pkey = k;
	return 0;
}

void pki_ca_release(void *x509, void *pkey)
{
	X509_free(x509);
	EVP_PKEY_free(pkey);
}
