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

struct verify_trust {
	X509_STORE *store;
};

void verify_trust_free(struct verify_trust *t)
{
	if (!t)
		return;
	X509_STORE_free(t->store);
	OPENSSL_free(t);
}

int verify_trust_new(struct verify_trust **out, const char *pem, size_t len, struct err *e)
{
	STACK_OF(X509) *trust = NULL;
	struct verify_trust *t;
	int rc, i;

	*out = NULL;
	if ((rc = verify_read_bundle(&trust, pem, len, "trust bundle", e)) < 0)
		return rc;
	if (!(t = OPENSSL_zalloc(sizeof(*t))) || !(t->store = X509_STORE_new())) {
		OPENSSL_free(t);
		sk_X509_pop_free(trust, X509_free);
		return err_nomem(e);
	}
	for (i = 0; i < sk_X509_num(trust); i++)
		if (!X509_STORE_add_cert(t->store, sk_X509_value(trust, i))) {
			/* A certificate listed twice is not an error for a TLS peer either. */
			ERR_clear_error();
		}
	sk_X509_pop_free(trust, X509_free);   /* the store keeps its own references */
	*out = t;
	return 0;
}

/* Verify the first certificate of leafs (the rest: what the peer sends with it) against t; frees leafs. */
static int verify_leafs(int *ok, char *reason, size_t reason_len, const struct verify_req *r,
			const struct verify_trust *t, STACK_OF(X509) *leafs, struct err *e)
{
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *vp;
	X509 *leaf;
	int rc, v;

	if (sk_X509_num(leafs) < 1) {
		rc = err_set(e, ROTOR_EINVALID, "no certificate to verify");
		goto out;
	}
	leaf = sk_X509_shift(leafs);
	if (!(ctx = X509_STORE_CTX_new()) || !X509_STORE_CTX_init(ctx, t->store, leaf, leafs)) {
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
	sk_X509_pop_free(leafs, X509_free);
	return rc;
}

/* No verdict yet, and r's leaf and what it sends with it parsed. */
static int start(int *ok, char *reason, size_t reason_len, const struct verify_req *r, STACK_OF(X509) **leafs,
		 struct err *e)
{
	*ok = 0;
	if (reason_len)
		reason[0] = '\0';
	return verify_read_bundle(leafs, r->leaf_pem, r->leaf_len, "certificate", e);
}

int verify_chain(int *ok, char *reason, size_t reason_len, const struct verify_req *r, struct err *e)
{
	struct verify_trust *t = NULL;
	STACK_OF(X509) *leafs = NULL;
	int rc;

	/* The leaf first: when both are bad, the leaf is the error to name. */
	if ((rc = start(ok, reason, reason_len, r, &leafs, e)) < 0)
		return rc;
	if ((rc = verify_trust_new(&t, r->trust_pem, r->trust_len, e)) < 0) {
		sk_X509_pop_free(leafs, X509_free);
		return rc;
	}
	rc = verify_leafs(ok, reason, reason_len, r, t, leafs, e);
	verify_trust_free(t);
	return rc;
}

int verify_chain_with(int *ok, char *reason, size_t reason_len, const struct verify_req *r,
		      const struct verify_trust *t, struct err *e)
{
	STACK_OF(X509) *leafs = NULL;
	int rc;

	if ((rc = start(ok, reason, reason_len, r, &leafs, e)) < 0)
		return rc;
	return verify_leafs(ok, reason, reason_len, r, t, leafs, e);
}
