/*
 * spec_manifest.c -- envs/<env>/generations/NNNN/manifest.yaml: what a
 * generation holds, written by rotor and read back (schemas/manifest.json).
 *
 *   version: 1
 *   env: "poc"                      an environment name
 *   generation: 1                   1..9999
 *   imported: false                 true: certificates taken from hosts, no keys
 *   created: "2026-11-23T11:45:00Z" RFC 3339, UTC, seconds
 *   certs:                          at least one
 *     - name, role (root | server-ca | client-ca | server | client),
 *       cert ("ca/root.crt", "servers/pg1.crt", "clients/app.crt"),
 *       key (the same with .key; required unless imported, absent when imported),
 *       subject, issuer (RFC 2253), fingerprint (SHA-256, AA:BB:...),
 *       serial (lowercase hex, an even number of digits, "-" if negative),
 *       ski, aki (optional, AA:BB:...), not_before, not_after (as created)
 *
 * The emitter writes every string double-quoted and escaped, in a fixed
 * key order, and loads its own output back before handing it out, so it
 * never writes a manifest the loader would refuse.  Checked only in C:
 * each cert path appears once.
 */
#include "reconcile/spec/spec_int.h"
#include "common/utf8.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_names[] = { "root", "server-ca", "client-ca", "server", "client" };

enum {
	C_NAME,
	C_ROLE,
	C_CERT,
	C_KEY,
	C_SUBJECT,
	C_ISSUER,
	C_FINGERPRINT,
	C_SERIAL,
	C_SKI,
	C_AKI,
	C_NOT_BEFORE,
	C_NOT_AFTER,
	C_NKEYS
};

static const struct vkey cert_keys[C_NKEYS] = {
	{ "name", 1 },	      { "role", 1 },   { "cert", 1 }, { "key", 0 }, { "subject", 1 },	 { "issuer", 1 },
	{ "fingerprint", 1 }, { "serial", 1 }, { "ski", 0 },  { "aki", 0 }, { "not_before", 1 }, { "not_after", 1 },
};

static void manifest_free_any(void *p)
{
	spec_manifest_free(p);
}

static int two_digits(const char *s, int lo, int hi)
{
	int v;

	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return 0;
	v = (s[0] - '0') * 10 + (s[1] - '0');
	return v >= lo && v <= hi;
}

/* YYYY-MM-DDTHH:MM:SSZ with each field in its range (seconds up to 60). */
static int is_rfc3339(const char *s, size_t n)
{
	size_t i;

	if (n != 20)
		return 0;
	for (i = 0; i < 4; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return s[4] == '-' && two_digits(s + 5, 1, 12) && s[7] == '-' && two_digits(s + 8, 1, 31) && s[10] == 'T' &&
	       two_digits(s + 11, 0, 23) && s[13] == ':' && two_digits(s + 14, 0, 59) && s[16] == ':' &&
	       two_digits(s + 17, 0, 60) && s[19] == 'Z';
}

/* AA:BB:...: count bytes (0: any number from 1 to max). */
static int is_hex_colon(const char *s, size_t n, size_t count, size_t max)
{
	size_t i, bytes;

	if (n < 2 || (n + 1) % 3 != 0)
		return 0;
	bytes = (n + 1) / 3;
	if ((count && bytes != count) || bytes > max)
		return 0;
	for (i = 0; i < n; i++)
		if (i % 3 == 2 ? s[i] != ':' : !chk_hex(s + i, 1, 1))
			return 0;
	return 1;
}

static int is_serial(const char *s, size_t n)
{
	if (n > 0 && s[0] == '-') {
		s++;
		n--;
	}
	return n >= 2 && n <= 128 && n % 2 == 0 && chk_hex(s, n, 0);
}

/* "ca/", "servers/" or "clients/", a leaf name, then ext. */
static int is_gen_path(const char *s, size_t n, const char *ext)
{
	static const char *const dirs[] = { "ca/", "servers/", "clients/" };
	size_t i, d, e = strlen(ext);

	for (i = 0; i < 3; i++) {
		d = strlen(dirs[i]);
		if (n > d + e && memcmp(s, dirs[i], d) == 0 && memcmp(s + n - e, ext, e) == 0)
			return chk_leaf_name(s + d, n - d - e);
	}
	return 0;
}

/* A string field with a format: copied to *dst when valid. */
static const struct ynode *get_fmt(struct vctx *v, const struct ynode *n, const char *where, size_t min,
				   size_t max, int ok(const char *, size_t), const char *rule, char **dst)
{
	const char *s;
	char q[96];

	if (vstr(v, n, where, min, max, &s) <= 0)
		return NULL;
	if (ok && !ok(s, n->len)) {
		yquote(q, sizeof(q), s, n->len, 48);
		vreport(v, n, where, "%s is not %s", q, rule);
		return NULL;
	}
	vdup(v, dst, s);
	return n;
}

static int ok_fingerprint(const char *s, size_t n)
{
	return is_hex_colon(s, n, 32, 32);
}

static int ok_keyid(const char *s, size_t n)
{
	return is_hex_colon(s, n, 0, 64);
}

static int ok_crt(const char *s, size_t n)
{
	return is_gen_path(s, n, ".crt");
}

static int ok_key(const char *s, size_t n)
{
	return is_gen_path(s, n, ".key");
}

static int ok_env(const char *s, size_t n)
{
	return strlen(s) == n && env_name_valid(s);
}

static int ok_leaf(const char *s, size_t n)
{
	return chk_leaf_name(s, n);
}

#define RFC3339_RULE "an RFC 3339 UTC time like \"2026-11-23T11:45:00Z\""

static const struct ynode *get_cert(struct vctx *v, const struct ynode *n, const char *where,
				    struct manifest_cert *c, int imported)
{
	const struct ynode *k[C_NKEYS], *cert = NULL;
	char w[WHERE_MAX];
	int role;

	if (vmap(v, n, where, cert_keys, C_NKEYS, k) < 0)
		return NULL;
	where_key(w, where, "name");
	get_fmt(v, k[C_NAME], w, 1, 256, ok_leaf, "a valid name (" LEAF_NAME_RULE ")", &c->name);
	where_key(w, where, "role");
	if (venum(v, k[C_ROLE], w, role_names, 5, &role) > 0)
		c->role = (enum cert_role)role;
	where_key(w, where, "cert");
	cert = get_fmt(v, k[C_CERT], w, 1, 256, ok_crt, "a certificate path like \"servers/pg1.crt\"", &c->cert);
	where_key(w, where, "key");
	if (imported == 1 && k[C_KEY])
		vreport(v, k[C_KEY], w, "not allowed in an imported generation (rotor holds no keys for it)");
	else if (imported == 0 && !k[C_KEY])
		vreport(v, n, where, "missing required key \"key\" (a generated certificate has its key)");
	else
		get_fmt(v, k[C_KEY], w, 1, 256, ok_key, "a key path like \"servers/pg1.key\"", &c->key);
	where_key(w, where, "subject");
	get_fmt(v, k[C_SUBJECT], w, 0, 4096, NULL, NULL, &c->subject);
	where_key(w, where, "issuer");
	get_fmt(v, k[C_ISSUER], w, 0, 4096, NULL, NULL, &c->issuer);
	where_key(w, where, "fingerprint");
	get_fmt(v, k[C_FINGERPRINT], w, 1, 256, ok_fingerprint,
		"a SHA-256 fingerprint (32 uppercase hex bytes joined by ':')", &c->fingerprint);
	where_key(w, where, "serial");
	get_fmt(v, k[C_SERIAL], w, 1, 256, is_serial, "a serial number in lowercase hex (two digits a byte)",
		&c->serial);
	where_key(w, where, "ski");
	get_fmt(v, k[C_SKI], w, 1, 256, ok_keyid, "a key identifier (uppercase hex bytes joined by ':')", &c->ski);
	where_key(w, where, "aki");
	get_fmt(v, k[C_AKI], w, 1, 256, ok_keyid, "a key identifier (uppercase hex bytes joined by ':')", &c->aki);
	where_key(w, where, "not_before");
	get_fmt(v, k[C_NOT_BEFORE], w, 1, 64, is_rfc3339, RFC3339_RULE, &c->not_before);
	where_key(w, where, "not_after");
	get_fmt(v, k[C_NOT_AFTER], w, 1, 64, is_rfc3339, RFC3339_RULE, &c->not_after);
	return cert;
}

static void *manifest_decode(struct vctx *v, const struct ynode *root)
{
	static const struct vkey top[] = { { "version", 1 }, { "env", 1 },     { "generation", 1 },
					   { "imported", 1 }, { "created", 1 }, { "certs", 1 } };
	const struct ynode *t[6], *it, **paths = NULL;
	struct manifest *m = calloc(1, sizeof(*m));
	size_t *first = NULL, i;
	char w[WHERE_MAX], q[96];
	int ver, imported = -1;

	if (!m) {
		v->nomem = 1;
		return NULL;
	}
	m->version = 1;
	if (vmap(v, root, "", top, 6, t) < 0)
		return m;
	if (vint(v, t[0], "version", INT_MIN, INT_MAX, &ver) > 0 && ver != 1)
		vreport(v, t[0], "version", "unsupported version %d (this rotor reads version 1)", ver);
	get_fmt(v, t[1], "env", 1, 64, ok_env, "a valid environment name", &m->env);
	vint(v, t[2], "generation", 1, 9999, &m->generation);
	if (vbool(v, t[3], "imported", &m->imported) > 0)
		imported = m->imported;
	get_fmt(v, t[4], "created", 1, 64, is_rfc3339, RFC3339_RULE, &m->created);
	if (vseq(v, t[5], "certs") <= 0)
		return m;
	if (t[5]->count == 0) {
		vreport(v, t[5], "certs", "must list at least one certificate");
		return m;
	}
	if (!(m->certs = calloc(t[5]->count, sizeof(*m->certs))) || !(paths = calloc(t[5]->count, sizeof(*paths))) ||
	    !(first = calloc(t[5]->count, sizeof(*first)))) {
		v->nomem = 1;
		goto out;
	}
	for (it = t[5]->first, i = 0; it; it = it->next, i++) {
		where_index(w, "certs", i);
		paths[i] = get_cert(v, it, w, &m->certs[m->ncerts++], imported);
	}
	if (find_repeats(v, paths, t[5]->count, first) < 0)
		goto out;
	for (i = 0; i < t[5]->count; i++) {
		if (first[i] == NO_REPEAT)
			continue;
		char wc[WHERE_MAX];

		where_index(wc, "certs", i);
		where_key(w, wc, "cert");
		yquote(q, sizeof(q), paths[i]->text, paths[i]->len, 64);
		vreport(v, paths[i], w, "duplicate certificate %s (also certs[%zu])", q, first[i]);
	}
out:
	free(paths);
	free(first);
	return m;
}

int spec_load_manifest(struct manifest **out, const char *path, const char *data, size_t len, struct diags *d)
{
	void *p = NULL;
	int rc = spec_load_any(&p, manifest_decode, manifest_free_any, path, data, len, d);

	if (out)
		*out = p;
	else
		manifest_free_any(p);
	return rc;
}

void spec_manifest_cert_release(struct manifest_cert *c)
{
	if (!c)
		return;
	free(c->name);
	free(c->cert);
	free(c->key);
	free(c->subject);
	free(c->issuer);
	free(c->fingerprint);
	free(c->serial);
	free(c->ski);
	free(c->aki);
	free(c->not_before);
	free(c->not_after);
	memset(c, 0, sizeof(*c));
}

void spec_manifest_free(struct manifest *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->ncerts; i++)
		spec_manifest_cert_release(&m->certs[i]);
	free(m->certs);
	free(m->env);
	free(m->created);
	free(m);
}

/* ---- emit ---- */

/*
 * A YAML double-quoted scalar.  Escapes what YAML would otherwise read
 * differently: '"', '\\', C0 and C1 controls, DEL, the Unicode line and
 * paragraph separators, BOM and non-characters.  Fails on invalid UTF-8.
 */
static int put_quoted(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n = strlen(s);
	int rc = buf_put(b, "\"", 1);

	while (rc == 0 && i < n) {
		unsigned long cp;
		size_t k;

		size_t j;

		if ((k = utf8_seq_len(p + i)) == 0)
			return ROTOR_EINVALID;
		cp = k == 1 ? p[i] : p[i] & (0x7F >> k);
		for (j = 1; j < k; j++)
			cp = (cp << 6) | (p[i + j] & 0x3F);
		if (cp == '"' || cp == '\\')
			rc = buf_printf(b, "\\%c", (char)cp);
		else if (cp < 0x20 || cp == 0x7F)
			rc = buf_printf(b, "\\x%02lX", cp);
		else if ((cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF ||
			 cp == 0xFFFE || cp == 0xFFFF)
			rc = buf_printf(b, "\\u%04lX", cp);
		else
			rc = buf_put(b, p + i, k);
		i += k;
	}
	if (rc == 0)
		rc = buf_put(b, "\"", 1);
	return rc;
}

static int put_field(struct buf *b, const char *indent, const char *key, const char *val)
{
	int rc = buf_printf(b, "%s%s: ", indent, key);

	if (rc == 0)
		rc = put_quoted(b, val);
	if (rc == 0)
		rc = buf_put(b, "\n", 1);
	return rc;
}

int spec_manifest_emit(const struct manifest *m, struct buf *out, struct err *e)
{
	struct buf t = BUF_INIT;
	struct diags d = { NULL, 0, 0 };
	size_t i;
	int rc;

	if (!m || !out)
		return err_set(e, ROTOR_EINVALID, "spec_manifest_emit: invalid arguments");
	if (!m->env || !m->created)
		return err_set(e, ROTOR_EINVALID, "%s is missing", !m->env ? "env" : "created");
	if ((unsigned)m->imported > 1)
		return err_set(e, ROTOR_EINVALID, "imported is not 0 or 1");
	for (i = 0; i < m->ncerts; i++) {
		const struct manifest_cert *c = &m->certs[i];
		const char *missing = !c->name ? "name" : !c->cert ? "cert" : !c->subject ? "subject" :
				      !c->issuer ? "issuer" : !c->fingerprint ? "fingerprint" :
				      !c->serial ? "serial" : !c->not_before ? "not_before" :
				      !c->not_after ? "not_after" : (unsigned)c->role > CERT_ROLE_CLIENT ? "role" : NULL;

		if (missing)
			return err_set(e, ROTOR_EINVALID, "certs[%zu].%s is missing or invalid", i, missing);
	}
	rc = buf_printf(&t,
			"# manifest.yaml: the certificates of generation %d, written by rotor when the\n"
			"# generation was made. Never edit it: rotor checks certificates against it.\n"
			"version: %d\n",
			m->generation, m->version);
	if (rc == 0)
		rc = put_field(&t, "", "env", m->env);
	if (rc == 0)
		rc = buf_printf(&t, "generation: %d\nimported: %s\n", m->generation, m->imported ? "true" : "false");
	if (rc == 0)
		rc = put_field(&t, "", "created", m->created);
	if (rc == 0)
		rc = buf_puts(&t, m->ncerts ? "certs:\n" : "certs: []\n");
	for (i = 0; rc == 0 && i < m->ncerts; i++) {
		const struct manifest_cert *c = &m->certs[i];

		rc = put_field(&t, "  - ", "name", c->name);
		if (rc == 0)
			rc = put_field(&t, "    ", "role", role_names[c->role]);
		if (rc == 0)
			rc = put_field(&t, "    ", "cert", c->cert);
		if (rc == 0 && c->key)
			rc = put_field(&t, "    ", "key", c->key);
		if (rc == 0)
			rc = put_field(&t, "    ", "subject", c->subject);
		if (rc == 0)
			rc = put_field(&t, "    ", "issuer", c->issuer);
		if (rc == 0)
			rc = put_field(&t, "    ", "fingerprint", c->fingerprint);
		if (rc == 0)
			rc = put_field(&t, "    ", "serial", c->serial);
		if (rc == 0 && c->ski)
			rc = put_field(&t, "    ", "ski", c->ski);
		if (rc == 0 && c->aki)
			rc = put_field(&t, "    ", "aki", c->aki);
		if (rc == 0)
			rc = put_field(&t, "    ", "not_before", c->not_before);
		if (rc == 0)
			rc = put_field(&t, "    ", "not_after", c->not_after);
	}
	if (rc == ROTOR_EINVALID) {
		rc = err_set(e, rc, "a string is not valid UTF-8");
		goto out;
	}
	if (rc < 0) {
		rc = rc == ROTOR_ENOMEM ? err_nomem(e) : err_set(e, rc, "manifest too large");
		goto out;
	}
	/* Never hand out what the loader would refuse. */
	rc = spec_load_manifest(NULL, "manifest.yaml", t.ptr, t.len, &d);
	if (rc == ROTOR_ENOMEM) {
		rc = err_nomem(e);
		goto out;
	}
	if (rc < 0) {
		rc = err_set(e, ROTOR_EINVALID, "%s", d.n ? d.v[0].msg : "does not load back");
		goto out;
	}
	if ((rc = buf_put(out, t.ptr, t.len)) < 0)
		rc = rc == ROTOR_ENOMEM ? err_nomem(e) : err_set(e, rc, "manifest too large");
out:
	buf_release(&t);
	diags_release(&d);
	return rc;
}
