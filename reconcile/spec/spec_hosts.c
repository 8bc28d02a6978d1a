/*
 * spec_hosts.c -- envs/<env>/hosts.yaml: where certificates live and how
 * services reload (schemas/hosts.json).
 *
 *   hosts:
 *     <name>:                      a leaf-style name
 *       address: IPv4 | IPv6 | DNS name            (required)
 *       port: 1..65535             ssh port, default rotor.yaml's ssh.port
 *       user: login user           default rotor.yaml's ssh.user
 *       roles:                     (required, at least one)
 *         - role: server | client  (required)
 *           layout: postgres | libpq | cockroach   } exactly one of
 *           files: [{path, content, owner, group, mode}]   } the two
 *           dir, home: absolute paths; owner, group, user: user names
 *           identity: the leaf in chain.yaml (clients: required;
 *                     servers: default the host's name)
 *           reload: shell command
 *           probe: {type: postgres | tls, port} | none   (servers: required)
 *   external: [{name, trusts: server | client, trusts_target: bool}]
 *
 * Which keys a role takes depends on its layout:
 *   postgres   role server; dir required; not home, user
 *   cockroach  dir required; not home, user
 *   libpq      role client; home and identity required; not dir, owner, probe
 *   files:     not dir, home, user
 * and a client role takes no probe; a server role needs one, or
 * `probe: none` to say that nothing checks it after a reload.
 *
 * Checks only C makes (JSON Schema cannot compare items): file modes
 * written in octal, a path written once per host, external names unique,
 * addresses and server identities unique across hosts (spec.h).
 */
#include "reconcile/spec/spec_int.h"

#include "common/hex.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	R_ROLE,
	R_LAYOUT,
	R_FILES,
	R_DIR,
	R_HOME,
	R_USER,
	R_OWNER,
	R_GROUP,
	R_IDENTITY,
	R_RELOAD,
	R_PROBE,
	R_NKEYS
};

static const struct vkey role_keys[R_NKEYS] = {
	{ "role", 1 },	{ "layout", 0 }, { "files", 0 },    { "dir", 0 },    { "home", 0 },  { "user", 0 },
	{ "owner", 0 }, { "group", 0 },	 { "identity", 0 }, { "reload", 0 }, { "probe", 0 },
};

/* The layout table's key bits (layout.h) as bits of role_keys[]. */
static unsigned key_bits(unsigned layout_keys)
{
	static const struct {
		unsigned layout_key;
		int rkey;
	} map[] = { { LAYOUT_KEY_DIR, R_DIR },		 { LAYOUT_KEY_HOME, R_HOME },
		    { LAYOUT_KEY_USER, R_USER },	 { LAYOUT_KEY_OWNER, R_OWNER },
		    { LAYOUT_KEY_IDENTITY, R_IDENTITY }, { LAYOUT_KEY_PROBE, R_PROBE } };
	unsigned out = 0;
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (layout_keys & map[i].layout_key)
			out |= 1u << map[i].rkey;
	return out;
}

/* Names of the layouts `layout:` may name, in table order; returns how many. */
static size_t layout_names(const char **out, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < layout_count && n < max; i++)
		if (layout_table[i].by_name)
			out[n++] = layout_table[i].name;
	return n;
}

static void hosts_free_any(void *p)
{
	spec_hosts_free(p);
}

static int get_abs_path(struct vctx *v, const struct ynode *n, const char *where, char **dst)
{
	const char *s, *why;
	char q[96];
	int rc = vstr(v, n, where, 1, 4096, &s);

	if (rc <= 0)
		return rc;
	if ((why = chk_abs_path(s, n->len))) {
		yquote(q, sizeof(q), s, n->len, 64);
		vreport(v, n, where, "%s %s", q, why);
		return -1;
	}
	vdup(v, dst, s);
	return 1;
}

static int get_user(struct vctx *v, const struct ynode *n, const char *where, char **dst)
{
	const char *s;
	char q[96];
	int rc = vstr(v, n, where, 1, 64, &s);

	if (rc <= 0)
		return rc;
	if (!chk_posix_name(s, n->len)) {
		yquote(q, sizeof(q), s, n->len, 40);
		vreport(v, n, where, "%s is not a valid user or group name (" POSIX_NAME_RULE ")", q);
		return -1;
	}
	vdup(v, dst, s);
	return 1;
}

static int get_leaf(struct vctx *v, const struct ynode *n, const char *where, const char *what, char **dst)
{
	const char *s;
	char q[96];
	int rc = vstr(v, n, where, 1, 63, &s);

	if (rc <= 0)
		return rc;
	if (!chk_leaf_name(s, n->len)) {
		yquote(q, sizeof(q), s, n->len, 40);
		vreport(v, n, where, "invalid %s %s (" LEAF_NAME_RULE ")", what, q);
		return -1;
	}
	vdup(v, dst, s);
	return 1;
}

/* A file mode: an integer 0..0777, written in octal (0600), as PyYAML reads it. */
static void get_mode(struct vctx *v, const struct ynode *n, const char *where, int *mode)
{
	int m;

	if (!n || n->bad)
		return;
	if (n->kind != YNODE_SCALAR || n->type != YS_INT) {
		vtype(v, n, where, "an octal file mode like 0600");
		return;
	}
	if (!n->int_fits || n->ival < 0 || n->ival > 0777) {
		vreport(v, n, where, "%.*s is out of range (0 to 0777; write modes in octal with a leading 0, like 0640)",
			(int)(n->len > 40 ? 40 : n->len), n->text);
		return;
	}
	m = n->ival;
	if (!n->octal && m != 0) {
		vreport(v, n, where, "%.*s is not written in octal; write modes with a leading 0, like 0%o",
			(int)(n->len > 40 ? 40 : n->len), n->text, (unsigned)m);
		return;
	}
	*mode = m;
}

static void get_file(struct vctx *v, const struct ynode *n, const char *where, struct host_file *f,
		     const struct ynode **path_node)
{
	static const struct vkey keys[] = { { "path", 1 }, { "content", 1 }, { "owner", 0 }, { "group", 0 },
					    { "mode", 0 } };
	static const char *const contents[] = { "leaf", "leaf+chain", "key", "trust", "crl" };
	const struct ynode *k[5];
	char w[WHERE_MAX];
	int c;

	f->mode = -1;
	if (vmap(v, n, where, keys, 5, k) < 0)
		return;
	where_key(w, where, "path");
	if (get_abs_path(v, k[0], w, &f->path) > 0)
		*path_node = k[0];
	where_key(w, where, "content");
	if (venum(v, k[1], w, contents, sizeof(contents) / sizeof(contents[0]), &c) > 0)
		f->content = (enum spec_content)c;
	where_key(w, where, "owner");
	get_user(v, k[2], w, &f->owner);
	where_key(w, where, "group");
	get_user(v, k[3], w, &f->group);
	where_key(w, where, "mode");
	get_mode(v, k[4], w, &f->mode);
}

/* probe: {type, port}, or the string none (nothing to check). */
static void get_probe(struct vctx *v, const struct ynode *n, const char *where, struct host_role *r)
{
	static const struct vkey keys[] = { { "type", 1 }, { "port", 1 } };
	const char *types[16];
	const struct ynode *k[2];
	char w[WHERE_MAX];
	size_t i;
	int t;

	if (n->bad)
		return;
	if (n->kind == YNODE_SCALAR && n->type == YS_STR && n->len == 4 && memcmp(n->text, "none", 4) == 0) {
		r->probe_none = 1;
		return;
	}
	if (n->kind != YNODE_MAP) {
		vtype(v, n, where, "a probe like {type: postgres, port: 5432}, or none");
		return;
	}
	if (vmap(v, n, where, keys, 2, k) < 0)
		return;
	for (i = 0; i < probe_count && i < sizeof(types) / sizeof(types[0]); i++)
		types[i] = probe_table[i].name;
	where_key(w, where, "type");
	if (venum(v, k[0], w, types, i, &t) > 0)
		r->probe = &probe_table[t];
	where_key(w, where, "port");
	vint(v, k[1], w, 1, 65535, &r->probe_port);
}

/* Collects the file path nodes of one host, to find repeats. */
struct pathset {
	const struct ynode **v;
	size_t n, cap;
};

static void pathset_add(struct vctx *v, struct pathset *ps, const struct ynode *n)
{
	if (ps->n == ps->cap) {
		size_t ncap = ps->cap ? ps->cap * 2 : 16;
		const struct ynode **nv = realloc(ps->v, ncap * sizeof(*nv));

		if (!nv) {
			v->nomem = 1;
			return;
		}
		ps->v = nv;
		ps->cap = ncap;
	}
	ps->v[ps->n++] = n;
}

/*
 * What must be unique across hosts: one entry per host's address and one
 * per server role's identity, in file order.
 */
struct seen {
	char *key;              /* the normalised address, or the identity */
	char *where;            /* the location to report at ("hosts.pg2.address") */
	const struct ynode *at; /* the node to report at */
	const char *host;       /* the host's name (owned by the hosts spec) */
	size_t host_index, order;
	int port;               /* addresses: the ssh port written, 0 when none */
	int implied;            /* identities: the host's name, not written */
};

struct seenset {
	struct seen *v;
	size_t n, cap;
};

static void seen_add(struct vctx *v, struct seenset *ss, const char *key, const char *where,
		     const struct ynode *at, const char *host, size_t host_index, int port, int implied)
{
	struct seen *e;

	if (ss->n == ss->cap) {
		size_t ncap = ss->cap ? ss->cap * 2 : 16;
		struct seen *nv = realloc(ss->v, ncap * sizeof(*nv));

		if (!nv) {
			v->nomem = 1;
			return;
		}
		ss->v = nv;
		ss->cap = ncap;
	}
	e = &ss->v[ss->n];
	e->key = e->where = NULL;
	vdup(v, &e->key, key);
	vdup(v, &e->where, where);
	if (!e->key || !e->where) {
		free(e->key);
		free(e->where);
		return;
	}
	e->at = at;
	e->host = host;
	e->host_index = host_index;
	e->order = ss->n;
	e->port = port;
	e->implied = implied;
	ss->n++;
}

static void seen_release(struct seenset *ss)
{
	size_t i;

	for (i = 0; i < ss->n; i++) {
		free(ss->v[i].key);
		free(ss->v[i].where);
	}
	free(ss->v);
}

/* By key, then port, then file order. */
static int seen_cmp(const void *a, const void *b)
{
	const struct seen *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c)
		return c;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/*
 * The form two addresses of one machine share: IP addresses as their 16
 * bytes (an IPv4 address as IPv4-mapped IPv6), DNS names in lower case.
 * Different names of one machine cannot be told apart without resolving.
 */
#define ADDRESS_KEY_MAX 264
static void address_key(char out[ADDRESS_KEY_MAX], const char *s)
{
	unsigned char a[16] = { 0 };
	int ip = strchr(s, ':') ? inet_pton(AF_INET6, s, a) == 1 : inet_pton(AF_INET, s, a + 12) == 1;
	size_t i;

	if (ip) {
		if (!strchr(s, ':'))
			a[10] = a[11] = 0xff;
		memcpy(out, "ip ", 3);
		hex_colon(out + 3, ADDRESS_KEY_MAX - 3, a, sizeof(a));
		return;
	}
	snprintf(out, ADDRESS_KEY_MAX, "dns %s", s);
	for (i = 4; out[i]; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
}

/* "path:line:column" of a node, for a message that names a second place. */
static const char *place(char *buf, size_t cap, const struct vctx *v, const struct ynode *n)
{
	snprintf(buf, cap, "%s:%d:%d", v->s.path ? v->s.path : "hosts.yaml", n->line, n->column);
	return buf;
}

/*
 * Two hosts may share an address only when both write an ssh port and the
 * ports differ (an absent port is rotor.yaml's, which may be either).
 * Each later host is reported once, against the earliest it collides with.
 */
static void check_addresses(struct vctx *v, struct seenset *ss)
{
	struct seen *s = ss->v;
	size_t g, e, j, first, zero, head;
	char q[96], q0[96], at[WHERE_MAX + 40];

	if (ss->n < 2)
		return;
	qsort(s, ss->n, sizeof(*s), seen_cmp);
	for (g = 0; g < ss->n; g = e) {
		for (e = g + 1; e < ss->n && strcmp(s[e].key, s[g].key) == 0; e++)
			;
		first = g;
		for (j = g + 1; j < e; j++)
			if (s[j].order < s[first].order)
				first = j;
		zero = s[g].port == 0 ? g : NO_REPEAT;
		for (j = g, head = g; j < e; j++) {
			size_t other = NO_REPEAT;

			if (s[j].port != s[head].port)
				head = j;
			if (s[j].port == 0) {
				other = j != first ? first : NO_REPEAT;
			} else {
				if (zero != NO_REPEAT && s[zero].order < s[j].order)
					other = zero;
				if (s[head].order < s[j].order && (other == NO_REPEAT || s[head].order < s[other].order))
					other = head;
			}
			if (other == NO_REPEAT)
				continue;
			yquote(q, sizeof(q), s[j].at->text, s[j].at->len, 64);
			yquote(q0, sizeof(q0), s[other].at->text, s[other].at->len, 64);
			place(at, sizeof(at), v, s[other].at);
			if (s[j].port && s[j].port == s[other].port)
				vreport(v, s[j].at, s[j].where,
					"address %s with ssh port %d is also host %s's (%s%s%s): give each host its own "
					"address or ssh port", q, s[j].port, s[other].host, at,
					strcmp(q, q0) ? ", written " : "", strcmp(q, q0) ? q0 : "");
			else
				vreport(v, s[j].at, s[j].where,
					"address %s is also host %s's (%s%s%s): hosts may share an address only when "
					"each writes its own ssh \"port:\" and the ports differ", q, s[other].host, at,
					strcmp(q, q0) ? ", written " : "", strcmp(q, q0) ? q0 : "");
		}
	}
}

/*
 * A server certificate names one machine: its identity may be used by
 * several roles of one host, never by two hosts.  (Client identities are
 * database users; many hosts may share one.)
 */
static void check_server_identities(struct vctx *v, struct seenset *ss)
{
	struct seen *s = ss->v;
	size_t g, e, j;
	char q[96], at[WHERE_MAX + 40];

	if (ss->n < 2)
		return;
	qsort(s, ss->n, sizeof(*s), seen_cmp);
	for (g = 0; g < ss->n; g = e) {
		for (e = g + 1; e < ss->n && strcmp(s[e].key, s[g].key) == 0; e++)
			;
		for (j = g + 1; j < e; j++) {
			if (s[j].host_index == s[g].host_index)
				continue;
			yquote(q, sizeof(q), s[j].key, strlen(s[j].key), 64);
			place(at, sizeof(at), v, s[g].at);
			vreport(v, s[j].at, s[j].where,
				"server identity %s%s is also host %s's (%s%s): a server certificate belongs to one "
				"host; give each host its own server in chain.yaml (they may share a name in sans)", q,
				s[j].implied ? " (the host's name, by default)" : "", s[g].host,
				s[g].implied ? "its name, by default; " : "", at);
		}
	}
}

/* What the roles of one host share while they are read. */
struct host_ctx {
	const struct ynode *key;   /* the host's name as written */
	const char *name;          /* NULL when the name is invalid */
	size_t index;              /* in the hosts spec */
	struct pathset paths;      /* every file path of the host */
	struct seenset *ids;       /* server identities of every host */
};

static void get_role(struct vctx *v, const struct ynode *n, const char *where, struct host_ctx *hc,
		     struct host_role *r)
{
	static const char *const roles[] = { "server", "client" };
	const struct ynode *k[R_NKEYS], *it;
	const struct layout_def *layout = NULL;
	const char *names[16];
	char w[WHERE_MAX], wi[WHERE_MAX];
	int role = -1, lay, i;
	unsigned required = 0, refused = 0;
	size_t j;

	if (vmap(v, n, where, role_keys, R_NKEYS, k) < 0)
		return;
	where_key(w, where, "role");
	if (venum(v, k[R_ROLE], w, roles, 2, &role) > 0)
		r->role = (enum spec_role)role;
	where_key(w, where, "layout");
	if (k[R_LAYOUT] && k[R_FILES]) {
		vreport(v, n, where, "give either \"layout\" or \"files\", not both");
	} else if (!k[R_LAYOUT] && !k[R_FILES]) {
		vreport(v, n, where, "missing \"layout\" or \"files\" (which files this role manages)");
	} else if (k[R_FILES]) {
		layout = layout_files();
	} else if (venum(v, k[R_LAYOUT], w, names, layout_names(names, sizeof(names) / sizeof(names[0])), &lay) > 0) {
		layout = layout_find(names[lay]);
		if (role >= 0 && !(layout->sides & (1u << role)))
			vreport(v, k[R_LAYOUT], w, "layout %s is for role %s", layout->name,
				role == SPEC_ROLE_SERVER ? "client" : "server");
	}
	r->layout = layout;

	/* Keys by layout and role. */
	if (layout) {
		required = key_bits(layout->required);
		refused = key_bits(layout->refused);
	}
	if (role == SPEC_ROLE_CLIENT) {
		required |= 1u << R_IDENTITY;
		refused |= 1u << R_PROBE;
	}
	if (role == SPEC_ROLE_SERVER && !(refused & (1u << R_PROBE)))
		required |= 1u << R_PROBE;
	for (i = 0; i < R_NKEYS; i++) {
		if ((required & (1u << i)) && !k[i]) {
			if (i == R_IDENTITY && role == SPEC_ROLE_CLIENT)
				vreport(v, n, where, "missing required key \"identity\" (the client name in chain.yaml "
						     "that this role uses)");
			else if (i == R_PROBE)
				vreport(v, n, where, "missing required key \"probe\": a server role needs a probe "
						     "(probe: {type: postgres, port: 5432}), or \"probe: none\" to say "
						     "that nothing checks it after a reload");
			else
				vreport(v, n, where, "missing required key \"%s\" (layout %s needs it)",
					role_keys[i].name, layout ? layout->name : "none");
		}
		if ((refused & (1u << i)) && k[i]) {
			where_key(w, where, role_keys[i].name);
			if (i == R_PROBE && role == SPEC_ROLE_CLIENT)
				vreport(v, k[i], w, "not used with role client (probes check servers)");
			else if (layout && !layout->by_name)
				vreport(v, k[i], w, "not used with files (each file has its own path)");
			else
				vreport(v, k[i], w, "not used with layout %s", layout ? layout->name : "none");
			k[i] = NULL;
		}
	}

	where_key(w, where, "dir");
	get_abs_path(v, k[R_DIR], w, &r->dir);
	where_key(w, where, "home");
	get_abs_path(v, k[R_HOME], w, &r->home);
	where_key(w, where, "user");
	get_user(v, k[R_USER], w, &r->user);
	where_key(w, where, "owner");
	get_user(v, k[R_OWNER], w, &r->owner);
	where_key(w, where, "group");
	get_user(v, k[R_GROUP], w, &r->group);
	where_key(w, where, "identity");
	if (get_leaf(v, k[R_IDENTITY], w, "identity", &r->identity) == 0 && role == SPEC_ROLE_SERVER && hc->name)
		vdup(v, &r->identity, hc->name);
	if (role == SPEC_ROLE_SERVER && r->identity && hc->name)
		seen_add(v, hc->ids, r->identity, k[R_IDENTITY] ? w : where, k[R_IDENTITY] ? k[R_IDENTITY] : n,
			 hc->name, hc->index, 0, !k[R_IDENTITY]);
	where_key(w, where, "reload");
	{
		const char *s;

		if (vstr(v, k[R_RELOAD], w, 1, 1024, &s) > 0)
			vdup(v, &r->reload, s);
	}
	if (k[R_PROBE]) {
		where_key(w, where, "probe");
		get_probe(v, k[R_PROBE], w, r);
	}
	where_key(w, where, "files");
	if (vseq(v, k[R_FILES], w) > 0) {
		if (k[R_FILES]->count == 0) {
			vreport(v, k[R_FILES], w, "must list at least one file");
			return;
		}
		if (!(r->files = calloc(k[R_FILES]->count, sizeof(*r->files)))) {
			v->nomem = 1;
			return;
		}
		for (it = k[R_FILES]->first, j = 0; it; it = it->next, j++) {
			const struct ynode *pn = NULL;

			where_index(wi, w, j);
			get_file(v, it, wi, &r->files[r->nfiles++], &pn);
			if (pn)
				pathset_add(v, &hc->paths, pn);
		}
	}
}

static void get_host(struct vctx *v, const struct ynode *key, struct host_spec *h, size_t index,
		     struct seenset *addrs, struct seenset *ids)
{
	static const struct vkey keys[] = { { "address", 1 }, { "port", 0 }, { "user", 0 }, { "roles", 1 } };
	const struct ynode *k[4], *it;
	struct host_ctx hc = { key, NULL, index, { NULL, 0, 0 }, ids };
	struct pathset *ps = &hc.paths;
	size_t *first = NULL, i;
	char where[WHERE_MAX], w[WHERE_MAX], wi[WHERE_MAX], q[96], why[160], ak[ADDRESS_KEY_MAX];
	const char *s;

	where_ykey(where, "hosts", key);
	if (!chk_leaf_name(key->text, key->len)) {
		yquote(q, sizeof(q), key->text, key->len, 40);
		vreport(v, key, "hosts", "invalid host name %s (" LEAF_NAME_RULE ")", q);
	} else {
		vdup(v, &h->name, key->text);
		hc.name = h->name;
	}
	if (vmap(v, key->value, where, keys, 4, k) < 0)
		return;
	where_key(w, where, "address");
	if (vstr(v, k[0], w, 1, 253, &s) > 0) {
		if (chk_host(s, k[0]->len, 0, why, sizeof(why))) {
			yquote(q, sizeof(q), s, k[0]->len, 64);
			vreport(v, k[0], w, "invalid address %s: %s", q, why);
		} else {
			vdup(v, &h->address, s);
		}
	}
	where_key(w, where, "port");
	vint(v, k[1], w, 1, 65535, &h->port);
	if (h->address && hc.name) {
		address_key(ak, h->address);
		where_key(w, where, "address");
		seen_add(v, addrs, ak, w, k[0], hc.name, index, h->port, 0);
	}
	where_key(w, where, "user");
	get_user(v, k[2], w, &h->user);
	where_key(w, where, "roles");
	if (vseq(v, k[3], w) <= 0)
		return;
	if (k[3]->count == 0) {
		vreport(v, k[3], w, "must list at least one role");
		return;
	}
	if (!(h->roles = calloc(k[3]->count, sizeof(*h->roles)))) {
		v->nomem = 1;
		return;
	}
	for (it = k[3]->first, i = 0; it; it = it->next, i++) {
		where_index(wi, w, i);
		get_role(v, it, wi, &hc, &h->roles[h->nroles++]);
	}
	/* A path written by two roles (or twice by one) would flap. */
	if (ps->n > 1 && (first = malloc(ps->n * sizeof(*first))) &&
	    find_repeats(v, (const struct ynode *const *)ps->v, ps->n, first) == 0) {
		for (i = 0; i < ps->n; i++) {
			if (first[i] == NO_REPEAT)
				continue;
			yquote(q, sizeof(q), ps->v[i]->text, ps->v[i]->len, 64);
			vreport(v, ps->v[i], where, "file %s is listed twice (first at line %d)", q,
				ps->v[first[i]]->line);
		}
	} else if (ps->n > 1 && !first) {
		v->nomem = 1;
	}
	free(first);
	free(ps->v);
}

static void get_external(struct vctx *v, const struct ynode *n, struct hosts_spec *hs)
{
	static const struct vkey keys[] = { { "name", 1 }, { "trusts", 1 }, { "trusts_target", 0 } };
	static const char *const trusts[] = { "server", "client" };
	const struct ynode *k[3], *it, **names = NULL;
	size_t *first = NULL, i;
	char wi[WHERE_MAX], w[WHERE_MAX], q[96];
	int t;

	if (vseq(v, n, "external") <= 0 || n->count == 0)
		return;
	if (!(hs->external = calloc(n->count, sizeof(*hs->external))) ||
	    !(names = calloc(n->count, sizeof(*names))) || !(first = calloc(n->count, sizeof(*first)))) {
		v->nomem = 1;
		goto out;
	}
	for (it = n->first, i = 0; it; it = it->next, i++) {
		struct external_peer *p = &hs->external[hs->nexternal++];

		where_index(wi, "external", i);
		if (vmap(v, it, wi, keys, 3, k) < 0)
			continue;
		where_key(w, wi, "name");
		if (get_leaf(v, k[0], w, "name", &p->name) > 0)
			names[i] = k[0];
		where_key(w, wi, "trusts");
		if (venum(v, k[1], w, trusts, 2, &t) > 0) {
			p->trusts_server = t == 0;
			p->trusts_client = t == 1;
		}
		where_key(w, wi, "trusts_target");
		vbool(v, k[2], w, &p->trusts_target);
	}
	if (find_repeats(v, names, n->count, first) < 0)
		goto out;
	for (i = 0; i < n->count; i++) {
		if (first[i] == NO_REPEAT)
			continue;
		where_index(wi, "external", i);
		where_key(w, wi, "name");
		yquote(q, sizeof(q), names[i]->text, names[i]->len, 64);
		vreport(v, names[i], w, "duplicate external peer %s (also external[%zu])", q, first[i]);
	}
out:
	free(names);
	free(first);
}

static void *hosts_decode(struct vctx *v, const struct ynode *root)
{
	static const struct vkey top[] = { { "hosts", 1 }, { "external", 0 } };
	const struct ynode *t[2], *key;
	struct hosts_spec *hs = calloc(1, sizeof(*hs));
	struct seenset addrs = { NULL, 0, 0 }, ids = { NULL, 0, 0 };

	if (!hs) {
		v->nomem = 1;
		return NULL;
	}
	if (vmap(v, root, "", top, 2, t) < 0)
		return hs;
	if (t[0] && !t[0]->bad && t[0]->kind != YNODE_MAP) {
		vtype(v, t[0], "hosts", "a mapping of host names");
	} else if (t[0] && !t[0]->bad && t[0]->count > 0) {
		if (!(hs->hosts = calloc(t[0]->count, sizeof(*hs->hosts)))) {
			v->nomem = 1;
			return hs;
		}
		for (key = t[0]->first; key; key = key->next) {
			if (key->bad)
				continue;
			get_host(v, key, &hs->hosts[hs->nhosts], hs->nhosts, &addrs, &ids);
			hs->nhosts++;
		}
		check_addresses(v, &addrs);
		check_server_identities(v, &ids);
		seen_release(&addrs);
		seen_release(&ids);
	}
	get_external(v, t[1], hs);
	return hs;
}

int spec_load_hosts(struct hosts_spec **out, const char *path, const char *data, size_t len, struct diags *d)
{
	void *p = NULL;
	int rc = spec_load_any(&p, hosts_decode, hosts_free_any, path, data, len, d);

	if (out)
		*out = p;
	else
		hosts_free_any(p);
	return rc;
}

static void role_release(struct host_role *r)
{
	size_t i;

	free(r->dir);
	free(r->owner);
	free(r->group);
	free(r->user);
	free(r->home);
	free(r->identity);
	free(r->reload);
	for (i = 0; i < r->nfiles; i++) {
		free(r->files[i].path);
		free(r->files[i].owner);
		free(r->files[i].group);
	}
	free(r->files);
}

void spec_hosts_free(struct hosts_spec *h)
{
	size_t i, j;

	if (!h)
		return;
	for (i = 0; i < h->nhosts; i++) {
		free(h->hosts[i].name);
		free(h->hosts[i].address);
		free(h->hosts[i].user);
		for (j = 0; j < h->hosts[i].nroles; j++)
			role_release(&h->hosts[i].roles[j]);
		free(h->hosts[i].roles);
	}
	free(h->hosts);
	for (i = 0; i < h->nexternal; i++)
		free(h->external[i].name);
	free(h->external);
	free(h);
}
