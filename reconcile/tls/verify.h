/*
 * verify.h -- does a peer accept a certificate?  Real OpenSSL chain
 * verification, the way PostgreSQL and libpq do it: every certificate in
 * the trust bundle is trusted (ssl_ca_file / sslrootcert), the chain
 * must end at a self-signed root in it (no partial chains), the leaf's
 * file may carry intermediates (sent in the handshake), the purpose is
 * checked (serverAuth / clientAuth), and for servers the name the
 * client connects to must be in the SAN (verify-full).
 *
 * Pure: no I/O.  Errors: ROTOR_ENOMEM, or ROTOR_EINVALID when the leaf
 * is not a PEM certificate.  A chain that does not verify is not an
 * error: *ok = 0 and reason holds OpenSSL's words.
 */
#ifndef ROTOR_VERIFY_H
#define ROTOR_VERIFY_H

#include <stddef.h>
#include <time.h>

#include "common/err.h"

enum verify_purpose { VERIFY_SERVER, VERIFY_CLIENT };

struct verify_req {
	const char *leaf_pem;      /* the leaf, then any intermediates it sends */
	size_t leaf_len;
	const char *trust_pem;     /* the peer's trust bundle */
	size_t trust_len;
	enum verify_purpose purpose;
	const char *host;          /* servers: DNS name or IP the client uses; NULL = not checked */
	time_t at;                 /* verification time; 0 = now */
};

int verify_chain(int *ok, char *reason, size_t reason_len, const struct verify_req *r, struct err *e);

/*
 * A trust bundle parsed once, for many verify_chain_with() calls: what
 * the plan does for every host against the same bundle.  verify_trust_new:
 * 0, ROTOR_ENOMEM, or ROTOR_EINVALID when a block does not parse (named
 * "trust bundle").  Read-only once built: several threads may use one.
 */
struct verify_trust;
int verify_trust_new(struct verify_trust **out, const char *pem, size_t len, struct err *e);
void verify_trust_free(struct verify_trust *t);
/* verify_chain() against t; r's trust_pem and trust_len are not read. */
int verify_chain_with(int *ok, char *reason, size_t reason_len, const struct verify_req *r,
		      const struct verify_trust *t, struct err *e);

/*
 * Every certificate of a PEM bundle, in order, into a new STACK_OF(X509)
 * (*out, freed with sk_X509_pop_free(.., X509_free)).  An empty bundle is
 * an empty stack; a block that does not parse is ROTOR_EINVALID, named by
 * what ("trust bundle").
 */
struct stack_st_X509;
int verify_read_bundle(struct stack_st_X509 **out, const char *pem, size_t len, const char *what,
		       struct err *e);

#endif
