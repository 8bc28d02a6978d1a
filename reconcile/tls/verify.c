/* verify.c -- chain verification as a TLS peer does it (see verify.h). */
#include "reconcile/tls/verify.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

int verify_read_bundle(STACK_OF(X509) **out, const char *pem, size_t len, const char *what, struct err *e)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = NULL;
	X509 *x;
	unsigned long last;
	int rc = 0;

	*out = NULL;
	if (!sk) {
		rc = err_nomem(e);
		goto out;
	}
	if (len > INT_MAX) {
		rc = err_set(e, ROTOR_EINVALID, "%s: too large", what);
		goto out;
	}
	if (!(b = BIO_new_mem_buf(pem ? pem : "", (int)len))) {
		rc = err_nomem(e);
		goto out;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			rc = err_nomem(e);
			goto out;
		}
	}
	last = ERR_peek_last_error();
	if (last && !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE))
		rc = err_set(e, ROTOR_EINVALID, "%s: a certificate does not parse", what);
out:
	ERR_clear_error();
	BIO_free(b);
	if (rc < 0) {
		sk_X509_pop_free(sk, X509_free);
		return rc;
	}
	*out = sk;
	return 0;
}

int verify_chain(int *ok, char *reason, size_t reason_len, const struct verify_req *r, struct err *e)
{
	STACK_OF(X509) *leafs = NULL, *trust = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *vp;
	X509 *leaf;
	int rc, i, v;

	*ok = 0;
	if (reason_len)
		reason[0] = '\0';
	if ((rc = verify_read_bundle(&leafs, r->leaf_pem, r->leaf_len, "certificate", e)) < 0 ||
	    (rc = verify_read_bundle(&trust, r->trust_pem, r->trust_len, "trust bundle", e)) < 0)
		goto out;
	if (sk_X509_num(leafs) < 1) {
		rc = err_set(e, ROTOR_EINVALID, "no certificate to verify");
		goto out;
	}
	leaf = sk_X509_shift(leafs);
	if (!(store = X509_STORE_new()) || !(ctx = X509_STORE_CTX_new())) {
		X509_free(leaf);
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < sk_X509_num(trust); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(trust, i))) {
			/* A certificate listed twice is not an error for a TLS peer either. */
			ERR_clear_error();
		}
	if (!X509_STORE_CTX_init(ctx, store, leaf, leafs)) {
		X509_free(leaf);
		rc = err_nomem(e);
		goto out;
	}
	X509_STORE_CTX_set_purpose(ctx, r->purpose == VERIFY_SERVER ? X509_PURPOSE_SSL_SERVER : X509_PURPOSE_SSL_CLIENT);
	vp = X509_STORE_CTX_get0_param(ctx);
	if (r->at)
		X509_VERIFY_PARAM_set_time(vp, r->at);
	if (r->host && r->purpose == VERIFY_SERVER) {
		/* An address is matched against IP SANs, anything else against DNS SANs. */
		if (!X509_VERIFY_PARAM_set1_ip_asc(vp, r->host)) {
			ERR_clear_error();
			X509_VERIFY_PARAM_set1_host(vp, r->host, 0);
		}
	}
	v = X509_verify_cert(ctx);
	if (v == 1) {
		*ok = 1;
	} else if (reason_len) {
		int err = X509_STORE_CTX_get_error(ctx);

		snprintf(reason, reason_len, "%s (at depth %d)", X509_verify_cert_error_string(err),
			 X509_STORE_CTX_get_error_depth(ctx));
	}
	X509_free(leaf);
	rc = 0;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(leafs, X509_free);
	sk_X509_pop_free(trust, X509_free);
	return rc;
}
