/*
 * spec_chain.c -- envs/<env>/chain.yaml: what the chain must look like
 * (schemas/chain.json).
 *
 *   subject:      {C, ST, L, O, OU}        O required; C two capital letters
 *   key:          {type: ec, curve: P-256|P-384} | {type: rsa, bits: 2048|3072|4096}
 *                 | {type: ed25519}
 *   validity:     {root, intermediate, leaf, crl}  durations Nd / Nw / Ny, at most 100 years
 *   renew_before: duration
 *   servers:      name -> {sans: [DNS name | IPv4 | IPv6], eku: [serverAuth, clientAuth]}
 *   clients:      [user name, ...]
 *
 * At least one leaf (a server or a client) must be named.  Checks only
 * C makes (JSON Schema cannot compare values): leaf <= intermediate <=
 * root validity, and renew_before shorter than the leaf validity.
 */
#include "reconcile/spec/spec_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void chain_free_any(void *p)
{
	spec_chain_free(p);
}

/* One subject attribute: 1..64 characters, no control characters. */
static void get_subject(struct vctx *v, const struct ynode *n, const char *key, char **dst)
{
	char where[WHERE_MAX], q[96];
	const char *s;

	where_key(where, "subject", key);
	if (vstr(v, n, where, 1, 64, &s) <= 0)
		return;
	if (strcmp(key, "C") == 0 && (n->len != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z')) {
		yquote(q, sizeof(q), s, n->len, 40);
		vreport(v, n, where, "%s is not a two-letter country code in capitals (like NL)", q);
		return;
	}
	vdup(v, dst, s);
}

/* A validity duration: 0 when absent, days when valid, -1 when invalid. */
static int get_days(struct vctx *v, const struct ynode *n, const char *where, int *days)
{
	const char *why;
	char q[96];

	if (!n)
		return 0;
	if (n->bad)
		return -1;
	if (n->kind != YNODE_SCALAR || n->type != YS_STR) {
		vtype(v, n, where, "a duration like 397d, 52w or 10y");
		return -1;
	}
	if (parse_days(n->text, n->len, days, &why) < 0) {
		yquote(q, sizeof(q), n->text, n->len, 40);
		if (strcmp(why, "range") == 0)
			vreport(v, n, where, "%s is longer than 100 years (%d days)", q, SPEC_MAX_DAYS);
		else if (strcmp(why, "zero") == 0)
			vreport(v, n, where, "%s: a duration must be at least one day", q);
		else if (strcmp(why, "leading zero") == 0)
			vreport(v, n, where, "%s: write the number without a leading zero", q);
		else
			vreport(v, n, where,
				"invalid duration %s (expected a number and a unit: d for days, w for weeks, "
				"y for years of 365 days; like 397d)",
				q);
		return -1;
	}
	return 1;
}

/* key.bits: one of 2048, 3072, 4096. */
static int get_bits(struct vctx *v, const struct ynode *n, int *bits)
{
	int b, rc = vint(v, n, "key.bits", INT_MIN, INT_MAX, &b);

	if (rc <= 0)
		return rc;
	if (b != 2048 && b != 3072 && b != 4096) {
		vreport(v, n, "key.bits", "invalid value %d (expected one of: 2048, 3072, 4096)", b);
		return -1;
	}
	*bits = b;
	return 1;
}

static void get_key(struct vctx *v, const struct ynode *n, struct chain_spec *c)
{
	static const struct vkey keys[] = { { "type", 1 }, { "curve", 0 }, { "bits", 0 } };
	static const char *const types[] = { "ec", "rsa", "ed25519" };
	static const char *const curves[] = { "P-256", "P-384" };
	const struct ynode *k[3];
	int type, curve = -1, bits = 0;

	if (vmap(v, n, "key", keys, 3, k) < 0)
		return;
	if (venum(v, k[0], "key.type", types, 3, &type) <= 0) {
		/* Still check what can be checked alone. */
		venum(v, k[1], "key.curve", curves, 2, &curve);
		get_bits(v, k[2], &bits);
		return;
	}
	if (k[1] && type != 0)
		vreport(v, k[1], "key.curve", "only valid with type ec");
	else if (venum(v, k[1], "key.curve", curves, 2, &curve) == 0 && type == 0)
		vreport(v, n, "key", "missing required key \"curve\" (type ec needs curve P-256 or P-384)");
	if (k[2] && type != 1)
		vreport(v, k[2], "key.bits", "only valid with type rsa");
	else if (get_bits(v, k[2], &bits) == 0 && type == 1)
		vreport(v, n, "key", "missing required key \"bits\" (type rsa needs bits 2048, 3072 or 4096)");
	switch (type) {
	case 0:
		c->key = curve == 1 ? SPEC_KEY_EC_P384 : SPEC_KEY_EC_P256;
		break;
	case 1:
		c->key = bits == 2048 ? SPEC_KEY_RSA_2048 : bits == 4096 ? SPEC_KEY_RSA_4096 : SPEC_KEY_RSA_3072;
		break;
	default:
		c->key = SPEC_KEY_ED25519;
		break;
	}
}

/* Checks one list item: 1 when valid, -1 when reported. */
typedef int (*item_check)(struct vctx *v, const struct ynode *it, const char *where);

static int check_san(struct vctx *v, const struct ynode *it, const char *where)
{
	char q[96], why[160];
	const char *s;

	if (vstr(v, it, where, 1, 253, &s) <= 0)
		return -1;
	if (chk_host(s, it->len, 1, why, sizeof(why))) {
		yquote(q, sizeof(q), s, it->len, 64);
		vreport(v, it, where, "invalid SAN %s: %s", q, why);
		return -1;
	}
	return 1;
}

static int check_client(struct vctx *v, const struct ynode *it, const char *where)
{
	char q[96];
	const char *s;

	if (vstr(v, it, where, 1, 63, &s) <= 0)
		return -1;
	if (!chk_leaf_name(s, it->len)) {
		yquote(q, sizeof(q), s, it->len, 64);
		vreport(v, it, where, "invalid client name %s (" LEAF_NAME_RULE ")", q);
		return -1;
	}
	return 1;
}

/*
 * A list of unique strings, each checked by check: the valid ones are
 * copied to *out (in order), repeats are reported at the later one.
 */
static void get_list(struct vctx *v, const struct ynode *list, const char *where, const char *what,
		     char ***out, size_t *nout, item_check check)
{
	const struct ynode **ok = NULL, *it;
	size_t *first = NULL, i, n = list->count;
	char wi[WHERE_MAX], q[96];

	if (!(ok = calloc(n, sizeof(*ok))) || !(first = calloc(n, sizeof(*first))) ||
	    !(*out = calloc(n, sizeof(**out)))) {
		v->nomem = 1;
		goto out;
	}
	for (it = list->first, i = 0; it; it = it->next, i++) {
		where_index(wi, where, i);
		if (check(v, it, wi) > 0)
			ok[i] = it;
	}
	if (find_repeats(v, ok, n, first) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (!ok[i])
			continue;
		if (first[i] != NO_REPEAT && ysink_full(&v->s)) {
			v->s.dropped++;
			continue;
		}
		if (first[i] != NO_REPEAT) {
			where_index(wi, where, i);
			yquote(q, sizeof(q), ok[i]->text, ok[i]->len, 64);
			vreport(v, ok[i], wi, "duplicate %s %s (also %s[%zu])", what, q, where, first[i]);
			continue;
		}
		vdup(v, &(*out)[*nout], ok[i]->text);
		if ((*out)[*nout])
			(*nout)++;
	}
out:
	free(ok);
	free(first);
}

static void get_server(struct vctx *v, const struct ynode *key, struct chain_server *sv)
{
	static const struct vkey keys[] = { { "sans", 0 }, { "eku", 0 } };
	static const char *const ekus[] = { "serverAuth", "clientAuth" };
	const struct ynode *k[2], *it;
	char where[WHERE_MAX], w2[WHERE_MAX], q[96];
	size_t i;
	int e, seen[2] = { 0, 0 };

	sv->eku_server = 1;
	where_ykey(where, "servers", key);
	if (!chk_leaf_name(key->text, key->len)) {
		yquote(q, sizeof(q), key->text, key->len, 40);
		vreport(v, key, "servers", "invalid server name %s (" LEAF_NAME_RULE ")", q);
	} else {
		vdup(v, &sv->name, key->text);
	}
	if (vmap(v, key->value, where, keys, 2, k) < 0)
		return;
	where_key(w2, where, "sans");
	if (vseq(v, k[0], w2) > 0 && k[0]->count > 0)
		get_list(v, k[0], w2, "SAN", &sv->sans, &sv->nsans, check_san);
	where_key(w2, where, "eku");
	if (vseq(v, k[1], w2) > 0) {
		if (k[1]->count == 0)
			vreport(v, k[1], w2, "must name serverAuth, clientAuth or both");
		sv->eku_server = 0;
		for (it = k[1]->first, i = 0; it; it = it->next, i++) {
			char wi[WHERE_MAX];

			where_index(wi, w2, i);
			if (venum(v, it, wi, ekus, 2, &e) <= 0)
				continue;
			if (seen[e]++)
				vreport(v, it, wi, "duplicate extended key usage %s", ekus[e]);
		}
		sv->eku_server = seen[0] > 0;
		sv->eku_client = seen[1] > 0;
	}
}

static void get_servers(struct vctx *v, const struct ynode *n, struct chain_spec *c)
{
	const struct ynode *key;

	if (!n)
		return;
	if (n->bad)
		return;
	if (n->kind != YNODE_MAP) {
		vtype(v, n, "servers", "a mapping of server names");
		return;
	}
	if (n->count == 0)
		return;
	c->servers = calloc(n->count, sizeof(*c->servers));
	if (!c->servers) {
		v->nomem = 1;
		return;
	}
	for (key = n->first; key; key = key->next) {
		if (key->bad)
			continue;
		get_server(v, key, &c->servers[c->nservers++]);
	}
}

static void get_clients(struct vctx *v, const struct ynode *n, struct chain_spec *c)
{
	if (vseq(v, n, "clients") > 0 && n->count > 0)
		get_list(v, n, "clients", "client", &c->clients, &c->nclients, check_client);
}

/* "397d" for messages: the text as written, or the default. */
static const char *days_text(const struct ynode *n, const char *dflt, char *buf, size_t cap)
{
	if (!n) {
		snprintf(buf, cap, "default %s", dflt);
		return buf;
	}
	snprintf(buf, cap, "%.*s", (int)(n->len > 16 ? 16 : n->len), n->text);
	return buf;
}

static void *chain_decode(struct vctx *v, const struct ynode *root)
{
	static const struct vkey top[] = { { "subject", 1 },	  { "key", 1 },	    { "validity", 0 },
					   { "renew_before", 0 }, { "servers", 0 }, { "clients", 0 } };
	static const struct vkey subj[] = { { "C", 0 }, { "ST", 0 }, { "L", 0 }, { "O", 1 }, { "OU", 0 } };
	static const struct vkey val[] = { { "root", 0 }, { "intermediate", 0 }, { "leaf", 0 }, { "crl", 0 } };
	const struct ynode *t[6], *s[5], *d[4] = { NULL, NULL, NULL, NULL };
	struct chain_spec *c = calloc(1, sizeof(*c));
	char a[32], b[32];
	int ok[3] = { 1, 1, 1 }, rb_ok;
	int leaves_ok = 1;

	if (!c) {
		v->nomem = 1;
		return NULL;
	}
	c->key = SPEC_KEY_EC_P256;
	c->root_days = 3650;
	c->intermediate_days = 1825;
	c->leaf_days = 397;
	c->renew_before_days = 30;
	c->crl_days = 180;
	if (vmap(v, root, "", top, 6, t) < 0)
		return c;
	if (t[0] && vmap(v, t[0], "subject", subj, 5, s) == 0) {
		get_subject(v, s[0], "C", &c->subj_c);
		get_subject(v, s[1], "ST", &c->subj_st);
		get_subject(v, s[2], "L", &c->subj_l);
		get_subject(v, s[3], "O", &c->subj_o);
		get_subject(v, s[4], "OU", &c->subj_ou);
	}
	if (t[1])
		get_key(v, t[1], c);
	if (t[2] && vmap(v, t[2], "validity", val, 4, d) == 0) {
		get_days(v, d[3], "validity.crl", &c->crl_days);
		ok[0] = get_days(v, d[0], "validity.root", &c->root_days) >= 0;
		ok[1] = get_days(v, d[1], "validity.intermediate", &c->intermediate_days) >= 0;
		ok[2] = get_days(v, d[2], "validity.leaf", &c->leaf_days) >= 0;
		if (ok[1] && ok[2] && c->leaf_days > c->intermediate_days)
			vreport(v, d[2] ? d[2] : t[2], d[2] ? "validity.leaf" : "validity",
				"%s must not be longer than the intermediate validity (%s)",
				days_text(d[2], "397d", a, sizeof(a)), days_text(d[1], "5y", b, sizeof(b)));
		if (ok[0] && ok[1] && c->intermediate_days > c->root_days)
			vreport(v, d[1] ? d[1] : t[2], d[1] ? "validity.intermediate" : "validity",
				"%s must not be longer than the root validity (%s)",
				days_text(d[1], "5y", a, sizeof(a)), days_text(d[0], "10y", b, sizeof(b)));
	} else if (t[2]) {
		ok[2] = 0;
	}
	rb_ok = get_days(v, t[3], "renew_before", &c->renew_before_days) >= 0;
	if (rb_ok && ok[2] && c->renew_before_days >= c->leaf_days)
		vreport(v, t[3] ? t[3] : d[2], t[3] ? "renew_before" : "validity.leaf",
			"%s must be shorter than the leaf validity (%s)",
			days_text(t[3], "30d", a, sizeof(a)), days_text(d[2], "397d", b, sizeof(b)));
	if (t[4] && (t[4]->bad || t[4]->kind != YNODE_MAP))
		leaves_ok = 0;
	if (t[5] && (t[5]->bad || t[5]->kind != YNODE_SEQ))
		leaves_ok = 0;
	get_servers(v, t[4], c);
	get_clients(v, t[5], c);
	if (leaves_ok && (!t[4] || t[4]->count == 0) && (!t[5] || t[5]->count == 0))
		vreport(v, root, "", "no leaves: name at least one server (servers:) or client (clients:)");
	return c;
}

int spec_load_chain(struct chain_spec **out, const char *path, const char *data, size_t len, struct diags *d)
{
	void *p = NULL;
	int rc = spec_load_any(&p, chain_decode, chain_free_any, path, data, len, d);

	if (out)
		*out = p;
	else
		chain_free_any(p);
	return rc;
}

void spec_chain_free(struct chain_spec *c)
{
	size_t i, j;

	if (!c)
		return;
	free(c->subj_c);
	free(c->subj_st);
	free(c->subj_l);
	free(c->subj_o);
	free(c->subj_ou);
	for (i = 0; i < c->nservers; i++) {
		free(c->servers[i].name);
		for (j = 0; j < c->servers[i].nsans; j++)
			free(c->servers[i].sans[j]);
		free(c->servers[i].sans);
	}
	free(c->servers);
	for (i = 0; i < c->nclients; i++)
		free(c->clients[i]);
	free(c->clients);
	free(c);
}
