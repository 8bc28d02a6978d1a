/*
 * pki.c -- generate one generation of a chain: root, server CA, client CA
 * and the leaves (see pki.h).
 *
 * Speed: a generation may hold thousands of leaves, so everything that is
 * the same for every leaf is built once: the subject prefix, the encoded
 * basicConstraints / keyUsage / extendedKeyUsage extensions, each issuer's
 * authorityKeyIdentifier, the fetched digests.  Extensions are built as
 * ASN.1 structures, never parsed from X509V3 config strings.  A leaf then
 * costs its key generation, a serial, a SAN list (servers), its SKI and
 * one signature.  Leaves are spread over worker threads, each with its
 * own key generation context; results land in fixed slots, so the order
 * never depends on the thread count.
 */
#include "reconcile/pki/pki.h"
#include "reconcile/pki/pki_int.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define PKI_MAX_DAYS 36525      /* 100 years */
#define PKI_BACKDATE 300        /* notBefore = now - 300 s */
#define PKI_SERIAL_BYTES 20     /* 159 bits: top bit clear, next bit set */

/* What signs: a CA certificate and key, plus data prepared for its children. */
struct issuer {
	X509 *cert;                 /* borrowed from the generation */
	EVP_PKEY *key;              /* borrowed from the generation */
	const X509_NAME *name;      /* its subject, the children's issuer */
	time_t not_after;
	X509_EXTENSION *aki;        /* owned: AKI keyid for certificates it signs */
};

struct gen {
	const struct chain_spec *spec;
	struct pki_generation *g;
	const char *keyalg;         /* "EC", "RSA", "ED25519" */
	const char *curve;          /* EC group name or NULL */
	size_t rsa_bits;            /* 0 unless RSA */
	int rsa;
	EVP_MD *md;                 /* signature digest, NULL for Ed25519 */
	EVP_MD *sha1;               /* SKI: RFC 5280 method 1 */
	X509_NAME *base;            /* C, ST, L, O, OU */
	time_t not_before;
	time_t root_na, ica_na, leaf_na; /* unclamped notAfter per level */
	X509_EXTENSION *bc_ca, *bc_ica, *bc_leaf;
	X509_EXTENSION *ku_ca, *ku_leaf;
	X509_EXTENSION *eku_server, *eku_client, *eku_both;
	struct issuer root, server_ca, client_ca;
};

/* ---- small builders ---- */

static int key_params(struct gen *c, enum spec_key_type t, struct err *e)
{
	const char *md = "SHA256";

	c->curve = NULL;
	c->rsa_bits = 0;
	c->rsa = 0;
	switch (t) {
	case SPEC_KEY_EC_P256:
		c->keyalg = "EC";
		c->curve = "P-256";
		break;
	case SPEC_KEY_EC_P384:
		c->keyalg = "EC";
		c->curve = "P-384";
		md = "SHA384";
		break;
	case SPEC_KEY_RSA_2048:
	case SPEC_KEY_RSA_3072:
	case SPEC_KEY_RSA_4096:
		c->keyalg = "RSA";
		c->rsa = 1;
		c->rsa_bits = t == SPEC_KEY_RSA_2048 ? 2048 : t == SPEC_KEY_RSA_3072 ? 3072 : 4096;
		break;
	case SPEC_KEY_ED25519:
		c->keyalg = "ED25519";
		md = NULL;
		break;
	default:
		return err_set(e, ROTOR_EINVALID, "unknown key type %d", (int)t);
	}
	if (md && !(c->md = EVP_MD_fetch(NULL, md, NULL)))
		return pki_ossl_err(e, ROTOR_ERROR, "cannot fetch digest %s", md);
	if (!(c->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL)))
		return pki_ossl_err(e, ROTOR_ERROR, "cannot fetch digest SHA1");
	return 0;
}

static int keygen_ctx_new(EVP_PKEY_CTX **out, const struct gen *c, struct err *e)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, c->keyalg, NULL);

	if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0)
		goto fail;
	if (c->curve && EVP_PKEY_CTX_set_group_name(ctx, c->curve) <= 0)
		goto fail;
	if (c->rsa && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)c->rsa_bits) <= 0)
		goto fail;
	*out = ctx;
	return 0;
fail:
	EVP_PKEY_CTX_free(ctx);
	return pki_ossl_err(e, ROTOR_ERROR, "cannot set up %s key generation", c->keyalg);
}

static int keygen(EVP_PKEY **out, EVP_PKEY_CTX *ctx, struct err *e)
{
	*out = NULL;
	if (EVP_PKEY_generate(ctx, out) <= 0) {
		EVP_PKEY_free(*out);
		*out = NULL;
		return pki_ossl_err(e, ROTOR_ERROR, "key generation failed");
	}
	return 0;
}

/* Encode a finished extension value once; X509_add_ext() copies it. */
static X509_EXTENSION *ext_bc(int ca, long pathlen)
{
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	X509_EXTENSION *x = NULL;

	if (!bc)
		return NULL;
	bc->ca = ca ? 0xFF : 0;
	if (pathlen >= 0) {
		bc->pathlen = ASN1_INTEGER_new();
		if (!bc->pathlen || !ASN1_INTEGER_set(bc->pathlen, pathlen))
			goto out;
	}
	x = X509V3_EXT_i2d(NID_basic_constraints, 1, bc);
out:
	BASIC_CONSTRAINTS_free(bc);
	return x;
}

/* keyUsage bits as in RFC 5280 4.2.1.3. */
#define BIT_DIGITAL_SIGNATURE 0
#define BIT_KEY_ENCIPHERMENT 2
#define BIT_KEY_CERT_SIGN 5
#define BIT_CRL_SIGN 6

static X509_EXTENSION *ext_ku(const int *bits, size_t n)
{
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	X509_EXTENSION *x = NULL;
	size_t i;

	if (!ku)
		return NULL;
	for (i = 0; i < n; i++)
		if (!ASN1_BIT_STRING_set_bit(ku, bits[i], 1))
			goto out;
	x = X509V3_EXT_i2d(NID_key_usage, 1, ku);
out:
	ASN1_BIT_STRING_free(ku);
	return x;
}

static X509_EXTENSION *ext_eku(int server, int client)
{
	EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
	X509_EXTENSION *x = NULL;

	if (!eku)
		return NULL;
	/* OBJ_nid2obj() returns static objects: free the stack only. */
	if (server && !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)))
		goto out;
	if (client && !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth)))
		goto out;
	x = X509V3_EXT_i2d(NID_ext_key_usage, 0, eku);
out:
	sk_ASN1_OBJECT_free(eku);
	return x;
}

static X509_EXTENSION *ext_aki(const ASN1_OCTET_STRING *ski)
{
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	X509_EXTENSION *x = NULL;

	if (!akid)
		return NULL;
	akid->keyid = ASN1_OCTET_STRING_dup(ski);
	if (akid->keyid)
		x = X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid);
	AUTHORITY_KEYID_free(akid);
	return x;
}

static int name_ok(const char *s, size_t max)
{
	size_t n = 0;

	if (!s || !*s)
		return 0;
	for (; *s; s++, n++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return n <= max;
}

/* A leaf name becomes a file name: servers/<name>.crt. */
static int leaf_name_ok(const char *s)
{
	if (!name_ok(s, 63) || s[0] == '.' || s[0] == '-')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-'))
			return 0;
	return 1;
}

/* DNS names: letters, digits, '-', '_', '.', and a leading "*." wildcard. */
static int dns_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	if (n > 2 && s[0] == '*' && s[1] == '.')
		s += 2;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Refuse duplicate names: each becomes a file of the generation. */
static int check_unique(const char *const *names, size_t n, const char *what, struct err *e)
{
	const char **v;
	size_t i;
	int rc = 0;

	if (n < 2)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return err_nomem(e);
	memcpy(v, names, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_str);
	for (i = 1; i < n; i++)
		if (strcmp(v[i - 1], v[i]) == 0) {
			rc = err_set(e, ROTOR_EINVALID, "%s \"%s\" is listed twice", what, v[i]);
			break;
		}
	free(v);
	return rc;
}

static int check_spec(const char *env, int number, const struct chain_spec *s, struct err *e)
{
	const char **names;
	size_t i, j;
	int rc;

	if (!name_ok(env, 64))
		return err_set(e, ROTOR_EINVALID, "invalid env name");
	if (number < 1 || number > 9999)
		return err_set(e, ROTOR_EINVALID, "generation number %d out of range 1..9999", number);
	if (s->root_days < 1 || s->root_days > PKI_MAX_DAYS ||
	    s->intermediate_days < 1 || s->intermediate_days > PKI_MAX_DAYS ||
	    s->leaf_days < 1 || s->leaf_days > PKI_MAX_DAYS)
		return err_set(e, ROTOR_EINVALID, "validity out of range 1..%d days", PKI_MAX_DAYS);
	if (s->nservers > SIZE_MAX / 4 - s->nclients)
		return err_set(e, ROTOR_ETOOBIG, "too many leaves");
	for (i = 0; i < s->nservers; i++) {
		const struct chain_server *sv = &s->servers[i];

		if (!leaf_name_ok(sv->name))
			return err_set(e, ROTOR_EINVALID, "invalid server name \"%s\"",
				       sv->name && name_ok(sv->name, 256) ? sv->name : "?");
		if (!sv->eku_server && !sv->eku_client)
			return err_set(e, ROTOR_EINVALID, "server %s: no extended key usage", sv->name);
		for (j = 0; j < sv->nsans; j++)
			if (!sv->sans[j] || !name_ok(sv->sans[j], 253))
				return err_set(e, ROTOR_EINVALID, "server %s: invalid SAN", sv->name);
	}
	for (i = 0; i < s->nclients; i++)
		if (!leaf_name_ok(s->clients[i]))
			return err_set(e, ROTOR_EINVALID, "invalid client name \"%s\"",
				       s->clients[i] && name_ok(s->clients[i], 256) ? s->clients[i] : "?");
	names = malloc((s->nservers + 1) * sizeof(*names));
	if (!names)
		return err_nomem(e);
	for (i = 0; i < s->nservers; i++)
		names[i] = s->servers[i].name;
	rc = check_unique(names, s->nservers, "server", e);
	free(names);
	if (rc == 0)
		rc = check_unique((const char *const *)s->clients, s->nclients, "client", e);
	return rc;
}

static int add_name_entry(X509_NAME *n, int nid, const char *v, const char *what, struct err *e)
{
	if (!v)
		return 0;
	if (!X509_NAME_add_entry_by_NID(n, nid, MBSTRING_UTF8, (const unsigned char *)v, -1, -1, 0))
		return pki_ossl_err(e, ROTOR_EINVALID, "subject %s \"%s\"", what, v);
	return 0;
}

static int build_base(struct gen *c, struct err *e)
{
	const struct chain_spec *s = c->spec;

	int rc;

	if (!(c->base = X509_NAME_new()))
		return err_nomem(e);
	if ((rc = add_name_entry(c->base, NID_countryName, s->subj_c, "C", e)) < 0 ||
	    (rc = add_name_entry(c->base, NID_stateOrProvinceName, s->subj_st, "ST", e)) < 0 ||
	    (rc = add_name_entry(c->base, NID_localityName, s->subj_l, "L", e)) < 0 ||
	    (rc = add_name_entry(c->base, NID_organizationName, s->subj_o, "O", e)) < 0 ||
	    (rc = add_name_entry(c->base, NID_organizationalUnitName, s->subj_ou, "OU", e)) < 0)
		return rc;
	/* Encode now: worker threads copy this name concurrently. */
	if (i2d_X509_NAME(c->base, NULL) <= 0)
		return pki_ossl_err(e, ROTOR_ERROR, "cannot encode the subject");
	return 0;
}

static int build_exts(struct gen *c, struct err *e)
{
	static const int ca_bits[] = { BIT_KEY_CERT_SIGN, BIT_CRL_SIGN };
	static const int rsa_bits[] = { BIT_DIGITAL_SIGNATURE, BIT_KEY_ENCIPHERMENT };
	static const int sig_bits[] = { BIT_DIGITAL_SIGNATURE };

	c->bc_ca = ext_bc(1, -1);
	c->bc_ica = ext_bc(1, 0);
	c->bc_leaf = ext_bc(0, -1);
	c->ku_ca = ext_ku(ca_bits, 2);
	c->ku_leaf = c->rsa ? ext_ku(rsa_bits, 2) : ext_ku(sig_bits, 1);
	c->eku_server = ext_eku(1, 0);
	c->eku_client = ext_eku(0, 1);
	c->eku_both = ext_eku(1, 1);
	if (!c->bc_ca || !c->bc_ica || !c->bc_leaf || !c->ku_ca || !c->ku_leaf ||
	    !c->eku_server || !c->eku_client || !c->eku_both)
		return pki_ossl_err(e, ROTOR_ERROR, "cannot encode certificate extensions");
	return 0;
}

/* An IP address SAN: anything with a ':' or made only of digits and dots. */
static int looks_like_ip(const char *s)
{
	return strchr(s, ':') != NULL || strspn(s, "0123456789.") == strlen(s);
}

/* SAN: the server name as first dNSName, then each SAN typed by its form. */
static GENERAL_NAMES *build_sans(const struct chain_server *sv, struct err *e)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *dns = NULL;
	ASN1_OCTET_STRING *ip;
	size_t i;

	if (!gens)
		goto nomem;
	for (i = 0; i <= sv->nsans; i++) {
		const char *s = i == 0 ? sv->name : sv->sans[i - 1];

		if (i > 0 && strcmp(s, sv->name) == 0)
			continue;       /* already the first dNSName */
		if (!(gn = GENERAL_NAME_new()))
			goto nomem;
		if (i > 0 && looks_like_ip(s)) {
			/* IPv4 dotted quad or IPv6, 4 or 16 octets. */
			if (!(ip = a2i_IPADDRESS(s))) {
				pki_ossl_err(e, ROTOR_EINVALID, "server %s: SAN \"%s\" is not a valid IP address",
					     sv->name, s);
				goto fail;
			}
			GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
		} else {
			if (!dns_name_ok(s)) {
				err_set(e, ROTOR_EINVALID, "server %s: SAN \"%s\" is not a valid DNS name",
					sv->name, s);
				goto fail;
			}
			if (!(dns = ASN1_IA5STRING_new()) || !ASN1_STRING_set(dns, s, (int)strlen(s)))
				goto nomem;
			GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
			dns = NULL;
		}
		if (!sk_GENERAL_NAME_push(gens, gn))
			goto nomem;
		gn = NULL;
	}
	return gens;
nomem:
	err_nomem(e);
fail:
	ASN1_IA5STRING_free(dns);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return NULL;
}

static time_t add_days(time_t now, int days)
{
	return now + (time_t)days * 86400;
}

static int set_time(ASN1_TIME *t, time_t when)
{
	return X509_time_adj_ex(t, 0, 0, &when) != NULL;
}

/*
 * subjectPublicKeyInfo.  X509_set_pubkey() on OpenSSL 3.0 runs the key
 * through an OSSL_ENCODER and then an OSSL_DECODER (d2i_X509_PUBKEY) only
 * to throw the decoded copy away: about 0.18 ms a certificate, three times
 * the EC key generation and signature together.  For EC and Ed25519 the
 * structure is simple, so build it from the key's encoded public key.
 */
static int set_spki(X509 *x, const struct gen *c, EVP_PKEY *k, int full)
{
	unsigned char pub[160], *penc = NULL;
	size_t len = 0;
	int curve = 0;

	if (full || c->rsa)
		return X509_set_pubkey(x, k) ? 0 : -1;
	if (c->curve) {
		curve = strcmp(c->curve, "P-256") == 0 ? NID_X9_62_prime256v1 : NID_secp384r1;
		if (!EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub), &len))
			return -1;
	} else if (!EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len)) {
		return -1;
	}
	if (len == 0 || len > sizeof(pub) || !(penc = OPENSSL_memdup(pub, len)))
		return -1;
	if (!X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x),
				    OBJ_nid2obj(curve ? NID_X9_62_id_ecPublicKey : NID_ED25519),
				    curve ? V_ASN1_OBJECT : V_ASN1_UNDEF,
				    curve ? OBJ_nid2obj(curve) : NULL, penc, (int)len)) {
		OPENSSL_free(penc);
		return -1;
	}
	return 0;
}

/* Everything that differs from certificate to certificate. */
struct cert_req {
	const char *cn;
	EVP_PKEY *key;              /* the subject's key */
	const struct issuer *iss;   /* NULL: self-signed with key */
	time_t not_after;
	X509_EXTENSION *bc, *ku, *eku;  /* eku may be NULL */
	const GENERAL_NAMES *sans;      /* may be NULL */
};

static int build_cert(X509 **out, const struct gen *c, const struct cert_req *r, struct err *e)
{
	unsigned char serial[PKI_SERIAL_BYTES], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	X509 *x = NULL;
	X509_NAME *subj = NULL;
	ASN1_OCTET_STRING *ski = NULL;
	X509_EXTENSION *self_aki = NULL;
	EVP_PKEY *signer = r->iss ? r->iss->key : r->key;
	int rc = ROTOR_ERROR;

	*out = NULL;
	if (!(x = X509_new()) || !X509_set_version(x, X509_VERSION_3))
		goto ossl;
	/* 159 random bits: positive, 20 bytes of DER, never zero. */
	if (RAND_bytes(serial, sizeof(serial)) <= 0)
		goto ossl;
	serial[0] = (unsigned char)((serial[0] & 0x3f) | 0x40);
	if (!ASN1_STRING_set(X509_get_serialNumber(x), serial, sizeof(serial)))
		goto ossl;
	if (!(subj = X509_NAME_dup(c->base)) ||
	    !X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_UTF8,
					(const unsigned char *)r->cn, -1, -1, 0)) {
		rc = pki_ossl_err(e, ROTOR_EINVALID, "common name \"%s\"", r->cn);
		goto out;
	}
	if (!X509_set_subject_name(x, subj) ||
	    !X509_set_issuer_name(x, r->iss ? r->iss->name : subj) ||
	    !set_time(X509_getm_notBefore(x), c->not_before) ||
	    !set_time(X509_getm_notAfter(x), r->not_after) ||
	    set_spki(x, c, r->key, r->iss == NULL) < 0)
		goto ossl;
	if (!X509_add_ext(x, r->bc, -1) || !X509_add_ext(x, r->ku, -1) ||
	    (r->eku && !X509_add_ext(x, r->eku, -1)))
		goto ossl;
	if (r->sans && X509_add1_ext_i2d(x, NID_subject_alt_name, (void *)r->sans, 0,
					  X509V3_ADD_DEFAULT) != 1)
		goto ossl;
	/* SKI: SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2 method 1). */
	if (!X509_pubkey_digest(x, c->sha1, md, &mdlen) ||
	    !(ski = ASN1_OCTET_STRING_new()) ||
	    !ASN1_OCTET_STRING_set(ski, md, (int)mdlen) ||
	    X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, X509V3_ADD_DEFAULT) != 1)
		goto ossl;
	if (r->iss) {
		if (!X509_add_ext(x, r->iss->aki, -1))
			goto ossl;
	} else {
		if (!(self_aki = ext_aki(ski)) || !X509_add_ext(x, self_aki, -1))
			goto ossl;
	}
	if (X509_sign(x, signer, c->md) <= 0)
		goto ossl;
	*out = x;
	x = NULL;
	rc = 0;
	goto out;
ossl:
	rc = pki_ossl_err(e, ROTOR_ERROR, "cannot build the certificate for \"%s\"", r->cn);
out:
	X509_EXTENSION_free(self_aki);
	ASN1_OCTET_STRING_free(ski);
	X509_NAME_free(subj);
	X509_free(x);
	return rc;
}

/* After a CA certificate is signed: what its children need. */
static int issuer_init(struct issuer *is, struct pki_cert *pc, time_t not_after, struct err *e)
{
	const ASN1_OCTET_STRING *ski;

	is->cert = pc->x509;
	is->key = pc->pkey;
	is->not_after = not_after;
	is->name = X509_get_subject_name(is->cert);
	ski = X509_get0_subject_key_id(is->cert);
	if (!ski || !(is->aki = ext_aki(ski)))
		return pki_ossl_err(e, ROTOR_ERROR, "cannot prepare the authority key identifier");
	/* Encode now: worker threads copy this name concurrently. */
	if (i2d_X509_NAME(is->name, NULL) <= 0)
		return pki_ossl_err(e, ROTOR_ERROR, "cannot encode the issuer name");
	return 0;
}

/* ---- jobs run by the worker pool ---- */

static void job_fini(void *ctx, void *slot)
{
	(void)ctx;
	EVP_PKEY_CTX_free(slot);
}

static int job_keygen(struct gen *c, void **slot, EVP_PKEY **out, struct err *e)
{
	EVP_PKEY_CTX *kctx;

	int rc;

	if (!*slot) {
		if ((rc = keygen_ctx_new(&kctx, c, e)) < 0)
			return rc;
		*slot = kctx;
	}
	return keygen(out, *slot, e);
}

static int job_ca_key(void *ctx, void **slot, size_t i, struct err *e)
{
	struct gen *c = ctx;
	EVP_PKEY *k = NULL;
	int rc = job_keygen(c, slot, &k, e);

	if (rc == 0)
		c->g->certs[i].pkey = k;
	return rc;
}

static int job_leaf(void *ctx, void **slot, size_t i, struct err *e)
{
	struct gen *c = ctx;
	const struct chain_spec *s = c->spec;
	struct pki_cert *pc = &c->g->certs[3 + i];
	struct cert_req r;
	GENERAL_NAMES *sans = NULL;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int rc;

	memset(&r, 0, sizeof(r));
	rc = job_keygen(c, slot, &k, e);
	if (rc < 0)
		return rc;
	r.key = k;
	r.bc = c->bc_leaf;
	r.ku = c->ku_leaf;
	r.cn = pc->name;
	if (i < s->nservers) {
		const struct chain_server *sv = &s->servers[i];

		if (!(sans = build_sans(sv, e))) {
			rc = e && e->code < 0 ? e->code : ROTOR_EINVALID;
			goto out;
		}
		r.iss = &c->server_ca;
		r.sans = sans;
		r.eku = sv->eku_server && sv->eku_client ? c->eku_both :
			sv->eku_client ? c->eku_client : c->eku_server;
	} else {
		r.iss = &c->client_ca;
		r.eku = c->eku_client;
	}
	r.not_after = c->leaf_na < r.iss->not_after ? c->leaf_na : r.iss->not_after;
	rc = build_cert(&x, c, &r, e);
	if (rc == 0) {
		pc->x509 = x;
		pc->pkey = k;
		k = NULL;
	}
out:
	GENERAL_NAMES_free(sans);
	EVP_PKEY_free(k);
	return rc;
}

/* ---- the generation ---- */

static int build_cas(struct gen *c, const char *env, int number, int threads, struct err *e)
{
	struct pki_generation *g = c->g;
	char cn[3][128];
	struct cert_req r;
	X509 *x = NULL;
	int rc;

	snprintf(cn[0], sizeof(cn[0]), "%s root g%d", env, number);
	snprintf(cn[1], sizeof(cn[1]), "%s server CA g%d", env, number);
	snprintf(cn[2], sizeof(cn[2]), "%s client CA g%d", env, number);
	/* The three CA keys in parallel: they are the slow ones for RSA. */
	rc = pki_parallel(3, threads, job_ca_key, job_fini, c, e);
	if (rc < 0)
		return rc;

	memset(&r, 0, sizeof(r));
	r.cn = cn[0];
	r.key = g->certs[0].pkey;
	r.not_after = c->root_na;
	r.bc = c->bc_ca;
	r.ku = c->ku_ca;
	if ((rc = build_cert(&x, c, &r, e)) < 0)
		return rc;
	g->certs[0].x509 = x;
	if ((rc = issuer_init(&c->root, &g->certs[0], r.not_after, e)) < 0)
		return rc;

	r.iss = &c->root;
	r.bc = c->bc_ica;
	r.not_after = c->ica_na < c->root.not_after ? c->ica_na : c->root.not_after;
	r.cn = cn[1];
	r.key = g->certs[1].pkey;
	if ((rc = build_cert(&x, c, &r, e)) < 0)
		return rc;
	g->certs[1].x509 = x;
	if ((rc = issuer_init(&c->server_ca, &g->certs[1], r.not_after, e)) < 0)
		return rc;

	r.cn = cn[2];
	r.key = g->certs[2].pkey;
	if ((rc = build_cert(&x, c, &r, e)) < 0)
		return rc;
	g->certs[2].x509 = x;
	return issuer_init(&c->client_ca, &g->certs[2], r.not_after, e);
}

static void gen_release(struct gen *c)
{
	X509_EXTENSION_free(c->root.aki);
	X509_EXTENSION_free(c->server_ca.aki);
	X509_EXTENSION_free(c->client_ca.aki);
	X509_EXTENSION_free(c->bc_ca);
	X509_EXTENSION_free(c->bc_ica);
	X509_EXTENSION_free(c->bc_leaf);
	X509_EXTENSION_free(c->ku_ca);
	X509_EXTENSION_free(c->ku_leaf);
	X509_EXTENSION_free(c->eku_server);
	X509_EXTENSION_free(c->eku_client);
	X509_EXTENSION_free(c->eku_both);
	X509_NAME_free(c->base);
	EVP_MD_free(c->md);
	EVP_MD_free(c->sha1);
}

int pki_generate(struct pki_generation **out, const char *env, int number,
		 const struct chain_spec *spec, int threads, time_t now,
		 struct err *e)
{
	static const char *const ca_names[3] = { "root", "server-ca", "client-ca" };
	static const enum cert_role ca_roles[3] = {
		CERT_ROLE_ROOT, CERT_ROLE_SERVER_CA, CERT_ROLE_CLIENT_CA
	};
	struct pki_generation *g = NULL;
	struct gen c;
	size_t i, nleaves;
	int rc;

	*out = NULL;
	memset(&c, 0, sizeof(c));
	if (!env || !spec || threads < 0)
		return err_set(e, ROTOR_EINVALID, "pki_generate: invalid arguments");
	if ((rc = check_spec(env, number, spec, e)) < 0)
		return rc;
	nleaves = spec->nservers + spec->nclients;

	if (!(g = calloc(1, sizeof(*g))) || !(g->certs = calloc(3 + nleaves, sizeof(*g->certs)))) {
		rc = err_nomem(e);
		goto out;
	}
	g->number = number;
	g->ncerts = 3 + nleaves;
	g->threads = pki_thread_count(threads);
	for (i = 0; i < g->ncerts; i++) {
		const char *name = i < 3 ? ca_names[i] :
			i < 3 + spec->nservers ? spec->servers[i - 3].name :
			spec->clients[i - 3 - spec->nservers];

		g->certs[i].role = i < 3 ? ca_roles[i] :
			i < 3 + spec->nservers ? CERT_ROLE_SERVER : CERT_ROLE_CLIENT;
		if (!(g->certs[i].name = xstrdup(name, e))) {
			rc = ROTOR_ENOMEM;
			goto out;
		}
	}

	c.spec = spec;
	c.g = g;
	c.not_before = now - PKI_BACKDATE;
	c.root_na = add_days(now, spec->root_days);
	c.ica_na = add_days(now, spec->intermediate_days);
	c.leaf_na = add_days(now, spec->leaf_days);
	if ((rc = key_params(&c, spec->key, e)) < 0 ||
	    (rc = build_base(&c, e)) < 0 ||
	    (rc = build_exts(&c, e)) < 0 ||
	    (rc = build_cas(&c, env, number, g->threads, e)) < 0)
		goto out;
	rc = pki_parallel(nleaves, g->threads, job_leaf, job_fini, &c, e);
	if (rc < 0)
		goto out;
	*out = g;
	g = NULL;
out:
	gen_release(&c);
	pki_generation_free(g);
	ERR_clear_error();
	return rc;
}

void pki_generation_free(struct pki_generation *g)
{
	size_t i;

	if (!g)
		return;
	for (i = 0; g->certs && i < g->ncerts; i++) {
		X509_free(g->certs[i].x509);
		EVP_PKEY_free(g->certs[i].pkey);   /* wipes the key material */
		free(g->certs[i].name);
	}
	free(g->certs);
	free(g);
}

/* ---- one more client leaf under an existing client CA (rotor client add) ---- */

int pki_issue_client(struct pki_generation **out, int number, const struct chain_spec *spec, const char *name,
		     const void *ca_x509, const void *ca_pkey, time_t now, struct err *e)
{
	struct pki_generation *g = NULL;
	struct pki_cert ca;
	struct gen c;
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *kctx = NULL;
	X509 *x = NULL;
	struct cert_req r;
	int rc;

	*out = NULL;
	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	if (!spec || !ca_x509 || !ca_pkey || !name)
		return err_set(e, ROTOR_EINVALID, "pki_issue_client: invalid arguments");
	if (!leaf_name_ok(name))
		return err_set(e, ROTOR_EINVALID, "invalid client name");
	if (spec->leaf_days < 1 || spec->leaf_days > PKI_MAX_DAYS)
		return err_set(e, ROTOR_EINVALID, "validity out of range 1..%d days", PKI_MAX_DAYS);
	if (!(g = calloc(1, sizeof(*g))) || !(g->certs = calloc(1, sizeof(*g->certs))) ||
	    !(g->certs[0].name = xstrdup(name, e))) {
		rc = err_nomem(e);
		goto out;
	}
	g->number = number;
	g->ncerts = 1;
	g->threads = 1;
	g->certs[0].role = CERT_ROLE_CLIENT;
	c.spec = spec;
	c.g = g;
	c.not_before = now - PKI_BACKDATE;
	c.leaf_na = add_days(now, spec->leaf_days);
	memset(&ca, 0, sizeof(ca));
	ca.x509 = (void *)ca_x509;
	ca.pkey = (void *)ca_pkey;
	if ((rc = key_params(&c, spec->key, e)) < 0 || (rc = build_base(&c, e)) < 0 || (rc = build_exts(&c, e)) < 0 ||
	    (rc = issuer_init(&c.client_ca, &ca, 0, e)) < 0)
		goto out;
	{
		/* The CA's notAfter as a time: no certificate outlives its issuer. */
		ASN1_TIME *t0 = ASN1_TIME_set(NULL, now);
		int days = 0, secs = 0, ok = t0 && ASN1_TIME_diff(&days, &secs, t0, X509_get0_notAfter(ca_x509));

		ASN1_TIME_free(t0);
		if (!ok) {
			rc = pki_ossl_err(e, ROTOR_ERROR, "cannot read the client CA's notAfter");
			goto out;
		}
		c.client_ca.not_after = now + (time_t)days * 86400 + secs;
		if (c.client_ca.not_after <= now) {
			rc = err_set(e, ROTOR_ESTATE, "the client CA of generation %d has expired", number);
			goto out;
		}
	}
	if ((rc = keygen_ctx_new(&kctx, &c, e)) < 0 || (rc = keygen(&k, kctx, e)) < 0)
		goto out;
	r.key = k;
	r.bc = c.bc_leaf;
	r.ku = c.ku_leaf;
	r.cn = name;
	r.iss = &c.client_ca;
	r.eku = c.eku_client;
	r.not_after = c.leaf_na < c.client_ca.not_after ? c.leaf_na : c.client_ca.not_after;
	if ((rc = build_cert(&x, &c, &r, e)) < 0)
		goto out;
	g->certs[0].x509 = x;
	g->certs[0].pkey = k;
	k = NULL;
	*out = g;
	g = NULL;
out:
	EVP_PKEY_CTX_free(kctx);
	EVP_PKEY_free(k);
	gen_release(&c);
	pki_generation_free(g);
	ERR_clear_error();
	return rc;
}
