/*
 * pki.h -- certificate chains with OpenSSL 3: generate, export, inspect.
 *
 * Ownership: pki_generate() returns a struct pki_generation the caller
 * frees with pki_generation_free(), which also wipes private keys.
 * Exported files (struct pki_file) own their bytes; pki_files_free()
 * wipes and frees them.  Strings in a struct manifest filled here are
 * owned by the manifest (spec_manifest_free()).
 *
 * Errors: every function returns 0 or a negative ROTOR_* code with the
 * OpenSSL error queue translated into e->msg (the queue is cleared).
 * Private keys and the passphrase never appear in any message.
 *
 * Threads: pki_generate() makes the three CA keys, then the leaves (key
 * generation and signing) on `threads` worker threads (0 = number of
 * online CPUs); pki_export() encrypts keys on as many.  Results land in
 * fixed slots, so nothing depends on the thread count but the speed.
 * OpenSSL 3.0 is safe for this: shared objects are only read.
 */
#ifndef ROTOR_PKI_H
#define ROTOR_PKI_H

#include <stddef.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "reconcile/spec/spec.h"

struct pki_cert {
	char *name;              /* see struct manifest_cert.name */
	enum cert_role role;
	void *x509;              /* X509 *; for generated EC and Ed25519 leaves
				    X509_get0_pubkey() is NULL (the public key is
				    not decoded back: on OpenSSL 3.0 that costs more
				    than the leaf): use pkey, or re-read the PEM */
	void *pkey;              /* EVP_PKEY *, NULL for imported certificates */
};

/*
 * certs[0] root, certs[1] server-ca, certs[2] client-ca, then one per
 * chain_spec server (in order), then one per client (in order).
 */
struct pki_generation {
	int number;
	struct pki_cert *certs;
	size_t ncerts;
	int threads;             /* worker threads pki_generate() used; pki_export()
				    encrypts keys on as many (0 = online CPUs) */
};

/*
 * Generate generation `number` for env from spec.  CA common names are
 * "<env> root g<N>", "<env> server CA g<N>", "<env> client CA g<N>";
 * server leaves have CN = server name (also the first DNS SAN), client
 * leaves CN = user.  notBefore = now - 300 s; no certificate outlives its
 * issuer (leaf notAfter is clamped to its CA's).
 */
int pki_generate(struct pki_generation **out, const char *env, int number,
		 const struct chain_spec *spec, int threads, time_t now,
		 struct err *e);
void pki_generation_free(struct pki_generation *g);

/*
 * One more client leaf (CN = name, chain_spec's subject, key type and
 * leaf validity, clamped to the CA's notAfter) signed by an existing
 * client CA (ca_x509: X509 *, ca_pkey: EVP_PKEY *, borrowed): a
 * generation `number` holding that leaf only, as certs[0], for
 * pki_export().  ROTOR_ESTATE when the CA has expired.
 */
int pki_issue_client(struct pki_generation **out, int number, const struct chain_spec *spec, const char *name,
		     const void *ca_x509, const void *ca_pkey, time_t now, struct err *e);

/*
 * Certificate revocation lists (rotor client remove).  Each generation
 * keeps crl/root.crl (signed by its root: revokes nothing; PostgreSQL
 * checks every certificate of a client's chain, the client CA included)
 * and crl/client-ca.crl (signed by its client CA: the serials of the
 * removed clients).  pki_crl_sign() makes a v2 CRL signed by ca (X509 *,
 * EVP_PKEY *, borrowed): lastUpdate now - 300 s, nextUpdate now + days,
 * CRL number and authority key identifier, the revoked entries of prev
 * (a PEM CRL of the same issuer, or NULL) and then serials (lowercase
 * hex, revoked at now) that prev does not hold.  The PEM is appended to
 * out.  pki_crl_read() parses one PEM CRL back.
 */
struct pki_crl_info {
	char *issuer;            /* RFC 2253 */
	time_t last_update, next_update;
	long number;             /* the CRL number, -1 when absent */
	char **serials;          /* lowercase hex, as the manifest writes them */
	size_t nserials;
};
int pki_crl_sign(struct buf *out, const void *ca_x509, const void *ca_pkey, const char *prev_pem, size_t prev_len,
		 const char *const *serials, size_t nserials, time_t now, int days, struct err *e);
int pki_crl_read(struct pki_crl_info *out, const char *pem, size_t len, struct err *e);
void pki_crl_info_release(struct pki_crl_info *c);

/*
 * Decode a CA of a committed generation: its certificate (PEM) and its
 * key (ENCRYPTED PRIVATE KEY PEM, decrypted with passphrase) into
 * *x509 (X509 *) and *pkey (EVP_PKEY *), which the caller frees with
 * pki_ca_release().  ROTOR_ESECRET for a wrong passphrase, ROTOR_EINVALID
 * for a key that does not belong to the certificate.
 */
int pki_ca_load(void **x509, void **pkey, const char *cert_pem, size_t cert_len, const char *key_pem,
		size_t key_len, const char *passphrase, struct err *e);
void pki_ca_release(void *x509, void *pkey);

/* One file of a generation directory, path relative to that directory. */
struct pki_file {
	char *path;       /* "ca/root.crt", "ca/root.key", "servers/pg1.crt", "clients/app.key", "manifest.yaml" */
	struct buf data;
	int secret;       /* 1 for encrypted keys (still wiped on free) */
};

/*
 * Export g: a PEM certificate per cert, a PKCS#8 ENCRYPTED PRIVATE KEY
 * (AES-256-CBC, PBKDF2) per key encrypted with passphrase, and
 * manifest.yaml.  files are in a stable order.  The manifest is also
 * returned in *manifest_out when that is not NULL.
 */
int pki_export(struct pki_file **files, size_t *nfiles, struct manifest **manifest_out,
	       const struct pki_generation *g, const char *env,
	       const char *passphrase, time_t now, struct err *e);
void pki_files_free(struct pki_file *files, size_t n);

/*
 * Fill one manifest_cert (all fields but name, role, cert, key) from the
 * first certificate of a PEM text.  ski and aki are NULL when the
 * certificate lacks the extension.  Used by `chain show` and by import.
 * ROTOR_EINVALID for anything that is not a certificate OpenSSL accepts.
 */
int pki_cert_describe(struct manifest_cert *out, const char *pem, size_t len, struct err *e);

/*
 * The same, and the parsed certificate itself in *keep (OpenSSL's X509,
 * NULL on failure; the caller frees it with pki_x509_free()), so that a
 * caller who needs its public key too parses it once.
 */
struct x509_st;
int pki_cert_describe_keep(struct manifest_cert *out, const char *pem, size_t len, struct x509_st **keep,
			   struct err *e);
void pki_x509_free(struct x509_st *x);

/*
 * The first certificate block of a PEM text as DER, into der (replacing
 * what it held), and its SHA-256 fingerprint as manifests write it
 * ("AB:CD:...") into fingerprint, without parsing the certificate: what a
 * lookup among known certificates needs.  0, ROTOR_EINVALID (no
 * CERTIFICATE block), ROTOR_ENOMEM.
 */
int pki_cert_der(struct buf *der, char fingerprint[96], const char *pem, size_t len);

/*
 * The secret key file: 64 lowercase hex digits (256 random bits) and a
 * newline, mode 0600, the passphrase that `openssl pkey -passin file:F`
 * reads.  pki_secret_create() refuses an existing file (ROTOR_EEXISTS)
 * and creates missing parent directories with mode 0700.
 * pki_secret_load() refuses a missing file, a file readable by group or
 * others, or not in the format above (ROTOR_ESECRET, naming the path,
 * never the contents); the final newline may be absent.  On success
 * *secret holds the 64 hex digits without the newline (the passphrase)
 * and must be released with buf_wipe().  pki_secret_id() gives the 16 hex digit
 * key id recorded in rotor.yaml: SHA-256("rotor key id\n" || secret),
 * first 8 bytes, so a wrong secret is caught before it is used.
 */
int pki_secret_create(const char *path, struct err *e);
int pki_secret_load(struct buf *secret, const char *path, struct err *e);
int pki_secret_id(char out[17], const char *secret);

/*
 * Check that an ENCRYPTED PRIVATE KEY PEM decrypts with passphrase
 * (ROTOR_ESECRET if not).  Anything else, an unencrypted key included, is
 * ROTOR_EINVALID: it proves nothing about the secret.
 */
int pki_key_check(const char *pem, size_t len, const char *passphrase, struct err *e);

/*
 * A hand-off for one client (rotor handoff): its key, unencrypted PKCS#8
 * PEM in key_pem (as decrypted from the repository), in the forms
 * application teams use, each encrypted with pass (PBES2: PBKDF2-HMAC-
 * SHA256, AES-256-CBC):
 *   pem    PKCS#8 ENCRYPTED PRIVATE KEY, PEM (libpq with sslpassword);
 *   der    PKCS#8 DER for pgJDBC's .pk8 with sslpassword, encrypted with
 *          pbeWithSHAAnd3-KeyTripleDES-CBC (2048 iterations) instead: pgJDBC
 *          42.5 on Java 17 cannot decrypt PBES2;
 *   p12    PKCS#12 with the key and the leaf under the alias "user" (what
 *          pgJDBC looks for) and the rest of chain_pem (the CAs), an
 *          HMAC-SHA256 MAC;
 *   plain  unencrypted PKCS#8 PEM, only when plain is set.
 * chain_pem starts with the leaf, which the key must belong to
 * (ROTOR_EINVALID otherwise).  Everything in *out is wiped by
 * pki_handoff_key_wipe() (also after a failure, which leaves it empty).
 * pass: 1 to 1024 bytes (ROTOR_EINVALID).
 */
struct pki_handoff_key {
	struct buf pem, der, p12, plain;
};
int pki_handoff_key(struct pki_handoff_key *out, const char *key_pem, size_t key_len,
		    const char *chain_pem, size_t chain_len, const char *pass, int plain, struct err *e);
void pki_handoff_key_wipe(struct pki_handoff_key *k);

/*
 * The PKCS#12 of pki_handoff_key's p12 (the key and the leaf under the
 * alias "user", then the CAs of chain_pem; AES-256-CBC, HMAC-SHA256 MAC),
 * appended to out, for the pgjdbc-p12 layout: key is the unencrypted key
 * (PEM or PKCS#8 DER) of the first certificate of chain_pem
 * (ROTOR_EINVALID otherwise); pass may be "" (at most 1024 bytes).  The
 * caller wipes out.
 */
int pki_key_p12(struct buf *out, const char *key, size_t key_len, const char *chain_pem, size_t chain_len,
		const char *pass, struct err *e);

/*
 * Read a PKCS#12 file back with pass: its certificates as PEM, the one
 * the key belongs to first, then the others in the file's order,
 * appended to certs_pem; the key as unencrypted PKCS#8 PEM appended to
 * key_pem (the caller wipes it).  Not PKCS#12, a wrong password, or no
 * key with its certificate: ROTOR_EINVALID.
 */
int pki_p12_read(struct buf *certs_pem, struct buf *key_pem, const void *data, size_t len, const char *pass,
		 struct err *e);

/*
 * A PKCS#12 trust store of every certificate of pem, appended to out:
 * one certificate bag each, named by its common name, carrying Java's
 * trusted-certificate attribute (OID 2.16.840.1.113894.746875.1.1, value
 * anyExtendedKeyUsage) so that keytool and Java's TrustManager list it;
 * encrypted and MACed with pass as above.
 */
int pki_trust_store(struct buf *out, const char *pem, size_t len, const char *pass, struct err *e);

/* Lowercase hex SHA-256 of p[0..n) (as sha256sum prints it). */
int pki_sha256_hex(char out[65], const void *p, size_t n);

/* Write all n bytes of p to fd, again after EINTR: 0, or -1 (errno from write(), when it failed). */
int pki_write_all(int fd, const char *p, size_t n);

#endif
