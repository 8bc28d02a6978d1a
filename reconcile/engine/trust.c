/* trust.c -- external CAs: read, checked, into bundles (see trust.h). */
#include "reconcile/engine/trust.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/buf.h"
#include "common/timefmt.h"
#include "reconcile/pki/pki.h"

#define TRUST_MAX_FILE ((size_t)64 << 10)

static size_t count_certs(const char *p, size_t n)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	size_t i, c = 0, bl = sizeof(begin) - 1;

	for (i = 0; n >= bl && i <= n - bl; i++)
		if (memcmp(p + i, begin, bl) == 0)
			c++;
	return c;
}

static int holds(const char *p, size_t n, const char *needle)
{
	size_t i, nl = strlen(needle);

	for (i = 0; n >= nl && i <= n - nl; i++)
		if (memcmp(p + i, needle, nl) == 0)
			return 1;
	return 0;
}

/*
 * Check one file's bytes; fill x on success.  Returns 0, ROTOR_EINVALID
 * with why set (the message after the file's name), or ROTOR_ENOMEM.
 */
static int check_one(struct ext_ca *x, const struct buf *b, time_t now, char *why, size_t wl, struct err *e)
{
	struct manifest_cert mc;
	struct err pe = ERR_INIT;
	BIO *bio = NULL;
	X509 *c = NULL;
	size_t n = count_certs(b->ptr ? b->ptr : "", b->len);
	int rc = ROTOR_EINVALID;

	if (holds(b->ptr ? b->ptr : "", b->len, "PRIVATE KEY-----")) {
		snprintf(why, wl, "holds a private key: only the CA certificate belongs in the repository");
		return rc;
	}
	if (n == 0) {
		snprintf(why, wl, "is not a CA certificate: it holds no PEM certificate");
		return rc;
	}
	if (n > 1) {
		snprintf(why, wl, "holds %zu certificates: list one CA certificate per file", n);
		return rc;
	}
	memset(&mc, 0, sizeof(mc));
	if (b->len > TRUST_MAX_FILE || !(bio = BIO_new_mem_buf(b->ptr, (int)b->len)) ||
	    !(c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) || pki_cert_describe(&mc, b->ptr, b->len, &pe) < 0) {
		if (pe.code == ROTOR_ENOMEM)
			rc = err_nomem(e);
		else
			snprintf(why, wl, "is not a CA certificate: its certificate does not parse");
		goto out;
	}
	if (X509_check_ca(c) == 0) {
		snprintf(why, wl, "is a leaf certificate (%s), not a CA: list the CA that issued it", mc.subject);
		goto out;
	}
	x->not_before_t = rfc3339_parse(mc.not_before);
	x->not_after_t = rfc3339_parse(mc.not_after);
	if (!x->retired && x->not_after_t >= 0 && x->not_after_t < (long long)now) {
		snprintf(why, wl, "has expired (%s, not after %s): retire it (retired: true) or commit the provider's current CA",
			 mc.subject, mc.not_after);
		goto out;
	}
	x->fingerprint = mc.fingerprint;
	x->subject = mc.subject;
	x->not_after = mc.not_after;
	mc.fingerprint = mc.subject = mc.not_after = NULL;
	rc = 0;
out:
	spec_manifest_cert_release(&mc);
	X509_free(c);
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

int trust_load(struct state *st, const struct state_src *src, time_t now, struct diags *d, struct err *e)
{
	const struct hosts_spec *h = st->hosts;
	struct buf b = BUF_INIT, path = BUF_INIT;
	char hosts_path[512], why[512];
	size_t i, j;
	int rc = 0;

	if (!h || h->nexternal_cas == 0)
		return 0;
	if (!(st->ext = calloc(h->nexternal_cas, sizeof(*st->ext))))
		return err_nomem(e);
	snprintf(hosts_path, sizeof(hosts_path), "envs/%s/hosts.yaml", st->env);
	for (i = 0; i < h->nexternal_cas && rc == 0; i++) {
		const struct external_ca *c = &h->external_cas[i];
		struct ext_ca *x = &st->ext[st->next];
		struct err re = ERR_INIT;

		if (!c->file)
			continue;
		memset(x, 0, sizeof(*x));
		x->index = i;
		x->sides = c->sides;
		x->retired = c->retired;
		buf_release(&b);
		buf_release(&path);
		if (buf_printf(&path, "envs/%s/%s", st->env, c->file) < 0) {
			rc = err_nomem(e);
			break;
		}
		rc = state_read(&b, src, buf_cstr(&path), TRUST_MAX_FILE, &re);
		if (rc == ROTOR_ENOTFOUND || rc == ROTOR_ETOOBIG || rc == ROTOR_EINVALID) {
			diags_add(d, hosts_path, c->line, c->column, "external_cas[%zu].file: %s %s", i, buf_cstr(&path),
				  rc == ROTOR_ENOTFOUND ? "does not exist (commit the CA certificate there)"
				  : rc == ROTOR_ETOOBIG ? "is larger than 64 KiB" : re.msg);
			rc = 0;
			continue;
		}
		if (rc < 0) {
			*e = re;
			break;
		}
		if ((rc = check_one(x, &b, now, why, sizeof(why), e)) == ROTOR_EINVALID) {
			diags_add(d, hosts_path, c->line, c->column, "external_cas[%zu].file: %s %s", i, buf_cstr(&path), why);
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		for (j = 0; j < st->next; j++)
			if (strcmp(st->ext[j].fingerprint, x->fingerprint) == 0)
				break;
		if (j < st->next) {
			diags_add(d, hosts_path, c->line, c->column,
				  "external_cas[%zu].file: %s is the same certificate as external_cas[%zu] (%s): list it once",
				  i, buf_cstr(&path), st->ext[j].index, st->ext[j].file);
			free(x->fingerprint);
			free(x->subject);
			free(x->not_after);
			memset(x, 0, sizeof(*x));
			continue;
		}
		if (b.len == 0 || b.ptr[b.len - 1] != '\n')
			buf_puts(&b, "\n");
		x->pem = buf_detach(&b);
		x->file = xstrdup(c->file, e);
		if (!x->pem || !x->file) {
			st->next++;
			rc = err_nomem(e);
			break;
		}
		st->next++;
	}
	buf_release(&b);
	buf_release(&path);
	return rc;
}

void trust_release(struct state *st)
{
	size_t i;

	for (i = 0; i < st->next; i++) {
		free(st->ext[i].file);
		free(st->ext[i].pem);
		free(st->ext[i].fingerprint);
		free(st->ext[i].subject);
		free(st->ext[i].not_after);
	}
	free(st->ext);
	st->ext = NULL;
	st->next = 0;
}

static int newest_first(const void *pa, const void *pb)
{
	const struct ext_ca *a = *(const struct ext_ca *const *)pa, *b = *(const struct ext_ca *const *)pb;

	if (a->not_before_t != b->not_before_t)
		return a->not_before_t > b->not_before_t ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

int trust_material(struct material_set *ms, const struct state *st, struct err *e)
{
	const struct ext_ca **order;
	size_t i, n = 0;

	if (st->next == 0)
		return 0;
	if (!(order = calloc(st->next, sizeof(*order))) || !(ms->ext = calloc(st->next, sizeof(*ms->ext)))) {
		free(order);
		return err_nomem(e);
	}
	for (i = 0; i < st->next; i++)
		if (!st->ext[i].retired && st->ext[i].sides)
			order[n++] = &st->ext[i];
	qsort(order, n, sizeof(*order), newest_first);
	for (i = 0; i < n; i++) {
		struct material_cert *m = &ms->ext[ms->next++];

		m->role = CERT_ROLE_ROOT;
		m->ext_sides = order[i]->sides;
		if (!(m->name = xstrdup(order[i]->file, e)) || !(m->pem = xstrdup(order[i]->pem, e)) ||
		    !(m->fingerprint = xstrdup(order[i]->fingerprint, e))) {
			free(order);
			return ROTOR_ENOMEM;
		}
	}
	free(order);
	return 0;
}

int trust_known(struct known_set *k, const struct state *st, struct err *e)
{
	size_t i;

	for (i = 0; i < st->next; i++) {
		struct known_cert *c;

		if (!(c = known_push(k)))
			return err_nomem(e);
		snprintf(c->fingerprint, sizeof(c->fingerprint), "%s", st->ext[i].fingerprint);
		snprintf(c->name, sizeof(c->name), "%s", st->ext[i].file);
		c->generation = OBS_GEN_EXTERNAL;
		c->role = CERT_ROLE_ROOT;
	}
	return 0;
}
