/* observe.c -- classify live file contents (see observe.h). */
#include "reconcile/engine/observe.h"
#include "reconcile/tls/key.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/timefmt.h"
#include "reconcile/pki/pki.h"
#include "reconcile/remote/ssh.h"

struct known_cert *known_push(struct known_set *k)
{
	if (k->n == k->cap) {
		size_t ncap = k->cap ? k->cap * 2 : 32;
		struct known_cert *nv = realloc(k->v, ncap * sizeof(*nv));

		if (!nv)
			return NULL;
		k->v = nv;
		k->cap = ncap;
	}
	return memset(&k->v[k->n++], 0, sizeof(*k->v));
}

int known_add_manifest(struct known_set *k, const struct manifest *m, struct err *e)
{
	size_t i;

	for (i = 0; i < m->ncerts; i++) {
		struct known_cert *c;

		if (!m->certs[i].fingerprint)
			continue;
		if (!(c = known_push(k)))
			return err_nomem(e);
		snprintf(c->fingerprint, sizeof(c->fingerprint), "%s", m->certs[i].fingerprint);
		snprintf(c->name, sizeof(c->name), "%s", m->certs[i].name ? m->certs[i].name : "");
		c->generation = m->generation;
		c->role = m->certs[i].role;
		if (m->certs[i].subject && m->certs[i].issuer && m->certs[i].not_after &&
		    (!(c->subject = strdup(m->certs[i].subject)) || !(c->issuer = strdup(m->certs[i].issuer)) ||
		     !(c->not_after = strdup(m->certs[i].not_after))))
			return err_nomem(e);
	}
	return 0;
}

static const struct known_set *sort_set;   /* qsort has no context argument: set under sort_mu */
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static int cmp_known(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(sort_set->v[x].fingerprint, sort_set->v[y].fingerprint);

	return c ? c : x < y ? -1 : x > y;
}

int known_index(struct known_set *k, struct err *e)
{
	size_t *ix = k->n ? malloc(k->n * sizeof(*ix)) : NULL, i;

	if (k->n && !ix)
		return err_nomem(e);
	for (i = 0; i < k->n; i++)
		ix[i] = i;
	pthread_mutex_lock(&sort_mu);
	sort_set = k;
	if (k->n > 1)
		qsort(ix, k->n, sizeof(*ix), cmp_known);
	sort_set = NULL;
	pthread_mutex_unlock(&sort_mu);
	free(k->index);
	k->index = ix;
	k->nindex = k->n;
	return 0;
}

const struct known_cert *known_find(const struct known_set *k, const char *fp)
{
	size_t lo = 0, hi = k->nindex, i;

	if (!fp)
		return NULL;
	/* The first of the equal ones: the lowest position, as the scan below finds. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(k->v[k->index[mid]].fingerprint, fp) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < k->nindex && strcmp(k->v[k->index[lo]].fingerprint, fp) == 0)
		return &k->v[k->index[lo]];
	for (i = k->nindex; i < k->n; i++)
		if (strcmp(k->v[i].fingerprint, fp) == 0)
			return &k->v[i];
	return NULL;
}

void known_release(struct known_set *k)
{
	size_t i;

	for (i = 0; i < k->n; i++) {
		free(k->v[i].subject);
		free(k->v[i].issuer);
		free(k->v[i].not_after);
	}
	free(k->v);
	free(k->index);
	k->v = NULL;
	k->index = NULL;
	k->n = k->cap = k->nindex = 0;
}

static void obs_cert_release(struct obs_cert *c)
{
	free(c->fingerprint);
	free(c->subject);
	free(c->issuer);
	free(c->not_after);
	free(c->name);
	free(c->pem);
}

void obs_file_release(struct obs_file *f)
{
	size_t i;

	free(f->path);
	free(f->problem);
	for (i = 0; i < f->ncerts; i++)
		obs_cert_release(&f->certs[i]);
	free(f->certs);
	memset(f, 0, sizeof(*f));
}

static int set_problem(struct obs_file *f, const char *msg, struct err *e)
{
	if (f->problem)
		return 0;
	f->problem = xstrdup(msg, e);
	return f->problem ? 0 : ROTOR_ENOMEM;
}

static const char *find(const char *hay, size_t len, const char *needle)
{
	size_t nl = strlen(needle), i;

	for (i = 0; len >= nl && i <= len - nl; i++)
		if (memcmp(hay + i, needle, nl) == 0)
			return hay + i;
	return NULL;
}

static long long days_left(const char *rfc3339, time_t now)
{
	long long t = rfc3339_parse(rfc3339);

	return t < 0 ? 0 : days_until(t, now);
}

static char *dup_or_null(const char *s, int *bad)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*bad = 1;
	return d;
}

/*
 * mc's four strings from the manifest that knows the certificate in pem
 * (its SHA-256): 1; not known, or known without a description: 0; out of
 * memory: ROTOR_ENOMEM.  Parsing a certificate costs OpenSSL 3.0 a chain
 * of decoders for its public key; hashing its DER costs a microsecond.
 */
static int known_describe(const struct known_set *k, const char *pem, size_t len, struct manifest_cert *mc)
{
	struct buf der = BUF_INIT;
	char fp[96];
	const struct known_cert *kc;
	int rc, bad = 0;

	rc = pki_cert_der(&der, fp, pem, len);
	buf_release(&der);
	if (rc == ROTOR_ENOMEM)
		return rc;
	if (rc < 0 || !(kc = known_find(k, fp)) || !kc->subject || !kc->issuer || !kc->not_after)
		return 0;
	mc->fingerprint = dup_or_null(fp, &bad);
	mc->subject = dup_or_null(kc->subject, &bad);
	mc->issuer = dup_or_null(kc->issuer, &bad);
	mc->not_after = dup_or_null(kc->not_after, &bad);
	if (bad) {
		spec_manifest_cert_release(mc);
		return ROTOR_ENOMEM;
	}
	return 1;
}

int observe_parse_certs(struct obs_file *f, const char *data, size_t len,
			const struct known_set *k, time_t now, struct err *e)
{
	return observe_parse_certs_first(f, data, len, k, now, NULL, e);
}

int observe_parse_certs_first(struct obs_file *f, const char *data, size_t len, const struct known_set *k,
			      time_t now, struct x509_st **first, struct err *e)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char end[] = "-----END CERTIFICATE-----";
	const char *p = data, *stop = data + len, *b, *q;
	size_t cap = 0;
	int rc;

	if (find(data, len, "PRIVATE KEY-----") && f->content != SPEC_CONTENT_KEY)
		if ((rc = set_problem(f, "holds a private key where certificates belong", e)) < 0)
			return rc;
	while (p < stop && (b = find(p, (size_t)(stop - p), begin)) != NULL) {
		struct manifest_cert mc;
		struct obs_cert *c;
		const struct known_cert *kc;
		struct err pe = ERR_INIT;
		int hit;

		q = find(b, (size_t)(stop - b), end);
		if (!q)
			return set_problem(f, "a certificate block has no END line", e);
		q += sizeof(end) - 1;
		memset(&mc, 0, sizeof(mc));
		hit = k ? known_describe(k, b, (size_t)(q - b), &mc) : 0;
		if (hit < 0)
			return err_nomem(e);
		/* The first block's certificate, for the caller (the key match): parsed once. */
		if (!hit && pki_cert_describe_keep(&mc, b, (size_t)(q - b), first && p == data ? first : NULL, &pe) < 0) {
			if (pe.code == ROTOR_ENOMEM)
				return err_nomem(e);
			if ((rc = set_problem(f, "holds a certificate block that does not parse", e)) < 0)
				return rc;
			p = q;
			continue;
		}
		if (f->ncerts == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			struct obs_cert *nv = realloc(f->certs, ncap * sizeof(*nv));

			if (!nv) {
				rc = err_nomem(e);
				goto fail_mc;
			}
			f->certs = nv;
			cap = ncap;
		}
		c = &f->certs[f->ncerts];
		memset(c, 0, sizeof(*c));
		c->fingerprint = mc.fingerprint;
		c->subject = mc.subject;
		c->issuer = mc.issuer;
		c->not_after = mc.not_after;
		mc.fingerprint = mc.subject = mc.issuer = mc.not_after = NULL;
		c->days_left = days_left(c->not_after, now);
		if (!(c->pem = malloc((size_t)(q - b) + 2))) {
			f->ncerts++;   /* obs_file_release() frees what moved into c */
			spec_manifest_cert_release(&mc);
			return err_nomem(e);
		}
		memcpy(c->pem, b, (size_t)(q - b));
		memcpy(c->pem + (q - b), "\n", 2);
		kc = known_find(k, c->fingerprint);
		if (kc) {
			c->generation = kc->generation;
			c->role = kc->role;
			if (!(c->name = xstrdup(kc->name, e))) {
				obs_cert_release(c);
				rc = ROTOR_ENOMEM;
				goto fail_mc;
			}
		}
		f->ncerts++;
		spec_manifest_cert_release(&mc);
		p = q;
		continue;
fail_mc:
		spec_manifest_cert_release(&mc);
		return rc;
	}
	if (f->ncerts == 0 && f->content != SPEC_CONTENT_KEY)
		return set_problem(f, "holds no PEM certificate", e);
	return 0;
}

int observe_parse_crls(struct obs_file *f, const char *data, size_t len, struct err *e)
{
	static const char begin[] = "-----BEGIN X509 CRL-----";
	static const char end[] = "-----END X509 CRL-----";
	const char *p = data, *stop = data + len, *b, *q;

	f->ncrls = 0;
	f->crl_next_update = 0;
	if (pki_sha256_hex(f->sha256, data, len) < 0)
		return err_nomem(e);
	while (p < stop && (b = find(p, (size_t)(stop - p), begin)) != NULL) {
		struct pki_crl_info ci;
		struct err ce = ERR_INIT;

		if (!(q = find(b, (size_t)(stop - b), end)))
			return set_problem(f, "a CRL block without its END line", e);
		q += sizeof(end) - 1;
		if (pki_crl_read(&ci, b, (size_t)(q - b), &ce) < 0)
			return ce.code == ROTOR_ENOMEM ? err_nomem(e) : set_problem(f, "a CRL that does not parse", e);
		if (!ci.next_update) {
			pki_crl_info_release(&ci);
			return set_problem(f, "a CRL without nextUpdate", e);
		}
		if (f->ncrls == 0 || ci.next_update < f->crl_next_update)
			f->crl_next_update = ci.next_update;
		f->ncrls++;
		pki_crl_info_release(&ci);
		p = q;
	}
	if (f->ncrls == 0)
		return set_problem(f, "holds no CRL", e);
	return 0;
}

int observe_key_form(struct obs_file *f, const char *data, size_t len)
{
	int pem = find(data, len, "-----BEGIN ") != NULL;

	if (f->form == LAYOUT_FORM_PK8 && pem)
		return set_problem(f, "a PEM key where the layout needs PKCS#8 DER", NULL) < 0 ? ROTOR_ENOMEM : 0;
	if (f->form != LAYOUT_FORM_PK8 && len && (unsigned char)data[0] == 0x30 && !pem)
		return set_problem(f, "a DER key where the layout needs PEM", NULL) < 0 ? ROTOR_ENOMEM : 0;
	return 0;
}

int observe_p12(struct obs_file *f, struct buf *certs_pem, const char *data, size_t len, struct err *e)
{
	struct buf key = BUF_INIT;
	struct err pe = ERR_INIT;
	int rc;

	if (pki_p12_read(certs_pem, &key, data, len, LAYOUT_P12_PASSWORD, &pe) < 0) {
		buf_wipe(&key);
		buf_wipe(certs_pem);
		if (pe.code == ROTOR_ENOMEM)
			return err_nomem(e);
		return set_problem(f, pe.code == ROTOR_EINVALID ? pe.msg : "an unreadable PKCS#12 file", e);
	}
	f->key = observe_key_match(key.ptr, key.len, certs_pem->ptr, certs_pem->len);
	buf_wipe(&key);
	rc = f->key == OBS_KEY_MATCH ? 0 : set_problem(f, "a PKCS#12 file whose key does not belong to its certificate", e);
	return rc;
}

/* The key against leaf, decoded with OpenSSL. */
static enum obs_key key_match_decoded(const char *key_pem, size_t key_len, X509 *leaf)
{
	EVP_PKEY *key = NULL;
	enum obs_key r = OBS_KEY_INVALID;
	struct err e = ERR_INIT;

	if (key_decode(&key, key_pem, key_len, NULL, KEY_PLAIN, &e) < 0)
		goto out;
	if (!leaf) {
		r = OBS_KEY_NO_LEAF;
		goto out;
	}
	r = EVP_PKEY_eq(X509_get0_pubkey(leaf), key) == 1 ? OBS_KEY_MATCH : OBS_KEY_MISMATCH;
out:
	EVP_PKEY_free(key);
	ERR_clear_error();
	return r;
}

enum obs_key observe_key_match_leaf(const char *key_pem, size_t key_len, const char *cert_pem, size_t cert_len,
				    struct x509_st *leaf)
{
	struct buf der = BUF_INIT;
	char fp[96];
	BIO *cb = NULL;
	X509 *x = NULL;
	enum obs_key r;
	int m = -1;

	if (key_len > INT_MAX || cert_len > INT_MAX)
		return OBS_KEY_INVALID;
	if (cert_pem && pki_cert_der(&der, fp, cert_pem, cert_len) == 0)
		m = key_match_cert_der(key_pem, key_len, (const unsigned char *)der.ptr, der.len);
	buf_release(&der);
	if (m >= 0)
		return m ? OBS_KEY_MATCH : OBS_KEY_MISMATCH;
	if (!leaf && cert_pem && (cb = BIO_new_mem_buf(cert_pem, (int)cert_len)) != NULL)
		leaf = x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
	r = key_match_decoded(key_pem, key_len, leaf);
	X509_free(x);
	BIO_free(cb);
	ERR_clear_error();
	return r;
}

enum obs_key observe_key_match(const char *key_pem, size_t key_len,
			       const char *cert_pem, size_t cert_len)
{
	return observe_key_match_leaf(key_pem, key_len, cert_pem, cert_len, NULL);
}

static int file_fits(const struct obs_file *f, enum phase_step s, int a, int b)
{
	struct step_gens sg = phase_step_gens(s, a, b);
	int want, i, seen[2] = { 0, 0 };
	size_t j;
	enum cert_role peer_ca;

	if (!f->present || f->problem)
		return 0;
	if (f->content == SPEC_CONTENT_KEY)
		return f->key == OBS_KEY_MATCH;
	if (f->content == SPEC_CONTENT_CRL)
		return 1;   /* revocations do not break a pair: a CRL fits every step */
	for (j = 0; j < f->ncerts; j++)
		if (f->certs[j].generation == 0)
			return 0;
	if (f->content == SPEC_CONTENT_LEAF || f->content == SPEC_CONTENT_LEAF_CHAIN) {
		want = f->side == LAYOUT_SIDE_SERVER ? sg.server_leaf : sg.client_leaf;
		return f->ncerts > 0 && f->certs[0].generation == want &&
		       f->certs[0].role == (f->side == LAYOUT_SIDE_SERVER ? CERT_ROLE_SERVER : CERT_ROLE_CLIENT);
	}
	/* trust: roots and the peer side's CA of exactly the step's generations */
	peer_ca = f->side == LAYOUT_SIDE_SERVER ? CERT_ROLE_SERVER_CA : CERT_ROLE_CLIENT_CA;
	for (j = 0; j < f->ncerts; j++) {
		const struct obs_cert *c = &f->certs[j];

		if (c->generation == OBS_GEN_EXTERNAL)
			continue;   /* the same at every step: added and retired by hosts.yaml */
		if (c->role != CERT_ROLE_ROOT && c->role != peer_ca)
			return 0;
		for (i = 0; i < 2; i++)
			if (sg.bundle[i] && c->generation == sg.bundle[i])
				break;
		if (i == 2)
			return 0;
		if (c->role == CERT_ROLE_ROOT)
			seen[i] = 1;
	}
	for (i = 0; i < 2; i++)
		if (sg.bundle[i] && !seen[i])
			return 0;
	return 1;
}

unsigned observe_phase_mask(const struct obs_file *files, size_t n, int a, int b)
{
	unsigned mask = 0;
	size_t i;
	int s;

	for (s = 0; s < NSTEPS; s++) {
		int fits = 1;

		if (s != STEP_STABLE_A && b <= 0)
			break;
		for (i = 0; i < n && fits; i++)
			fits = file_fits(&files[i], (enum phase_step)s, a, b);
		if (fits)
			mask |= 1u << s;
	}
	return mask;
}

const struct obs_file *obs_role_leaf(const struct obs_host *h, const struct obs_role *r)
{
	const struct obs_file *leaf = NULL;
	size_t f;

	for (f = r->first; f < r->first + r->nfiles; f++)
		if (h->files[f].content == SPEC_CONTENT_LEAF || h->files[f].content == SPEC_CONTENT_LEAF_CHAIN)
			leaf = &h->files[f];
	return leaf;
}

int obs_host_empty(const struct obs_host *h, int replace_unknown)
{
	size_t i, k;

	for (i = 0; i < h->nfiles; i++) {
		if (!h->files[i].present)
			continue;
		if (!replace_unknown)
			return 0;
		/* Under replace_unknown only certificates of our generations count. */
		for (k = 0; k < h->files[i].ncerts; k++)
			if (h->files[i].certs[k].generation)
				return 0;
	}
	return 1;
}

const char *obs_key_name(enum obs_key k)
{
	switch (k) {
	case OBS_KEY_MATCH: return "matches";
	case OBS_KEY_MISMATCH: return "mismatch";
	case OBS_KEY_INVALID: return "invalid";
	case OBS_KEY_NO_LEAF: return "no-leaf";
	case OBS_KEY_NA: break;
	}
	return NULL;
}

/* "trust" or "servers|clients" or "none"; into a fixed buffer. */
const char *obs_fits_names(char *out, size_t len, unsigned mask, int target)
{
	size_t used = 0;
	int s;

	out[0] = '\0';
	for (s = 0; s < NSTEPS; s++) {
		const char *name = phase_step_name((enum phase_step)s);

		if (!(mask & (1u << s)))
			continue;
		if (s == STEP_STABLE_A && target)
			name = "stable(generation)";
		used += (size_t)snprintf(out + used, used < len ? len - used : 0, "%s%s", used ? "|" : "", name);
	}
	if (!out[0])
		snprintf(out, len, "none");
	return out;
}

int obs_stray_is_backup(const char *path)
{
	size_t len = strlen(path), sl = strlen(SSH_BACKUP_SUFFIX);

	return len > sl && !strcmp(path + len - sl, SSH_BACKUP_SUFFIX);
}
