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
 *         - role: server | client | pgbouncer  (required)
 *           layout: postgres | libpq | cockroach   } exactly one of
 *           files: [{path, content, owner, group, mode}]   } the two
 *           dir, home: absolute paths; owner, group, user: user names
 *           identity: the leaf in chain.yaml (clients: required;
 *                     servers: default the host's name)
 *           reload: shell command
 *           probe: {type: postgres | tls | https, port} | none   (servers: required)
 *           switch: {service, file, dir, adopt}   (libpq only: switch mode)
 *           server: {identity, probe}, client: {identity}  (role pgbouncer only)
 *   external: [{name, trusts: server | client, trusts_target: bool}]
 *   external_cas: [{file: trust/NAME.pem, bundles: [client, server], retired: bool}]
 *   external_servers: [{name, address, port, probe: postgres | tls}]
 *
 * Which keys a role takes depends on its layout:
 *   postgres   role server; dir required; not home, user
 *   cockroach  dir required; not home; user required for a client (its
 *              files are client.<user>.*, identity defaults to user), refused
 *              for a server (node.*)
 *   pgbouncer  (role pgbouncer, no layout) dir, server: and client: required;
 *              not home, user, identity, probe (they go in the halves)
 *   libpq      role client; home and identity required; not dir, owner, probe
 *   files:     not dir, home, user
 * and a client role takes no probe; a server role needs one, or
 * `probe: none` to say that nothing checks it after a reload.
 *
 * Checks only C makes (JSON Schema cannot compare items): file modes
 * written in octal, a path written once per host (by one role, whether
 * layouts or files: name it), external names unique,
 * addresses and server identities unique across hosts (spec.h).
 */
#include "reconcile/spec/spec_int.h"

#include "common/buf.h"
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
	R_SWITCH,
	R_SERVER,
	R_CLIENT,
	R_NKEYS
};

#define ROLE_PGBOUNCER 2 /* `role: pgbouncer`: a server half and a client half (two host_role entries) */

static const struct vkey role_keys[R_NKEYS] = {
	{ "role", 1 },	{ "layout", 0 }, { "files", 0 },    { "dir", 0 },    { "home", 0 },  { "user", 0 },
	{ "owner", 0 }, { "group", 0 },	 { "identity", 0 }, { "reload", 0 }, { "probe", 0 },
	{ "switch", 0 },	{ "server", 0 }, { "client", 0 },
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

/* A libpq service name as rotor accepts it: 1 to 63 of [A-Za-z0-9_.-], starting with a letter or digit. */
int spec_service_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]))
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return 0;
	return 1;
}

/* A path strictly inside home (both absolute and clean). */
static int inside(const char *path, const char *home)
{
	size_t hl = strlen(home);

	while (hl > 1 && home[hl - 1] == '/')
		hl--;
	return strncmp(path, home, hl) == 0 && path[hl] == '/' && path[hl + 1] != '\0';
}

/* home/rel as a new string; NULL (v->nomem set) when out of memory. */
static char *under_home(struct vctx *v, const char *home, const char *rel)
{
	struct buf p = BUF_INIT;

	buf_printf(&p, "%s%s%s", home, home[strlen(home) - 1] == '/' ? "" : "/", rel);
	if (p.err) {
		v->nomem = 1;
		buf_release(&p);
		return NULL;
	}
	return buf_detach(&p);
}

/*
 * switch: {service, file, dir, adopt}: switch mode for a layout that has
 * one.  file and dir default to the layout's under home; both must be
 * inside home (the reader's service file and directories are its own).
 */
static void get_switch(struct vctx *v, const struct ynode *n, const char *where, struct host_role *r)
{
	static const struct vkey keys[] = { { "service", 1 }, { "file", 0 }, { "dir", 0 }, { "adopt", 0 } };
	const struct ynode *k[4];
	char w[WHERE_MAX], q[96];
	const char *s;

	if (!n || n->bad)
		return;
	if (n->kind != YNODE_MAP) {
		vtype(v, n, where, "a mapping like {service: app}");
		return;
	}
	if (!r->layout || !r->layout->switch_subdir) {
		vreport(v, n, where, "not used with %s%s (no switch mode: see the README's table of readers)",
			r->layout && r->layout->by_name ? "layout " : "files", r->layout && r->layout->by_name ? r->layout->name : "");
		return;
	}
	if (vmap(v, n, where, keys, 4, k) < 0)
		return;
	where_key(w, where, "service");
	if (vstr(v, k[0], w, 1, 256, &s) > 0) {
		if (!spec_service_name_ok(s, k[0]->len)) {
			yquote(q, sizeof(q), s, k[0]->len, 64);
			vreport(v, k[0], w, "%s is not a libpq service name (1 to 63 of A-Z a-z 0-9 _ . -, "
					    "starting with a letter or digit)", q);
		} else {
			vdup(v, &r->service, s);
		}
	}
	where_key(w, where, "file");
	if (k[1] && get_abs_path(v, k[1], w, &r->service_file) > 0 && r->home && !inside(r->service_file, r->home))
		vreport(v, k[1], w, "%s is outside home %s: the service file must be the user's own", r->service_file,
			r->home);
	where_key(w, where, "dir");
	if (k[2] && get_abs_path(v, k[2], w, &r->switch_dir) > 0 && r->home && !inside(r->switch_dir, r->home))
		vreport(v, k[2], w, "%s is outside home %s: the certificate directories must be the user's own",
			r->switch_dir, r->home);
	where_key(w, where, "adopt");
	vbool(v, k[3], w, &r->adopt);
	if (r->home && !r->service_file)
		r->service_file = under_home(v, r->home, r->layout->switch_file);
	if (r->home && !r->switch_dir)
		r->switch_dir = under_home(v, r->home, r->layout->switch_subdir);
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

/* One file a role of the host writes: to find two roles writing one path. */
struct role_path {
	char *path;
	const struct ynode *at;    /* where to report (the role's dir or home, or the file's path) */
	size_t role;               /* index of the role in hosts.yaml */
	int explicit_file;         /* 1: from `files:` (repeats among those are reported by pathset);
	                              2: a switch-mode role's service file */
};

/* What the roles of one host share while they are read. */
struct host_ctx {
	const struct ynode *key;   /* the host's name as written */
	const char *name;          /* NULL when the name is invalid */
	size_t index;              /* in the hosts spec */
	struct pathset paths;      /* every file path of the host */
	struct seenset *ids;       /* server identities of every host */
	struct role_path *rp;      /* every file of every role of the host */
	size_t nrp, caprp;
};

static void role_path_add(struct vctx *v, struct host_ctx *hc, const char *path, const struct ynode *at, size_t role,
			  int explicit_file)
{
	struct role_path *e;

	if (hc->nrp == hc->caprp) {
		size_t ncap = hc->caprp ? hc->caprp * 2 : 16;
		struct role_path *nv = realloc(hc->rp, ncap * sizeof(*nv));

		if (!nv) {
			v->nomem = 1;
			return;
		}
		hc->rp = nv;
		hc->caprp = ncap;
	}
	e = &hc->rp[hc->nrp];
	e->path = NULL;
	vdup(v, &e->path, path);
	if (!e->path)
		return;
	e->at = at;
	e->role = role;
	e->explicit_file = explicit_file;
	hc->nrp++;
}

/* The files a layout role writes (dir + name), for the collision check. */
static void role_paths(struct vctx *v, struct host_ctx *hc, const struct host_role *r, const struct ynode *at,
		       size_t role)
{
	const struct layout_def *l = r->layout;
	enum layout_side me = r->role == SPEC_ROLE_SERVER ? LAYOUT_SIDE_SERVER : LAYOUT_SIDE_CLIENT;
	const char *base;
	char name[256];
	struct buf p = BUF_INIT;
	size_t i, bl;

	if (r->service && r->service_file)
		role_path_add(v, hc, r->service_file, at, role, 2);
	if (!l || l->base == LAYOUT_BASE_NONE || r->service) {
		for (i = 0; r->files && i < r->nfiles; i++)
			if (r->files[i].path)
				role_path_add(v, hc, r->files[i].path, at, role, 1);
		return;
	}
	if (!(base = l->base == LAYOUT_BASE_DIR ? r->dir : r->home))
		return;
	bl = strlen(base);
	while (bl > 1 && base[bl - 1] == '/')
		bl--;
	for (i = 0; i < l->nfiles; i++) {
		if (!layout_file_for(&l->files[i], me) || layout_file_name(name, sizeof(name), &l->files[i], r->user) < 0)
			continue;
		buf_release(&p);
		buf_printf(&p, "%.*s%s%s/%s", (int)bl, base, l->subdir ? "/" : "", l->subdir ? l->subdir : "", name);
		if (p.err)
			v->nomem = 1;
		else
			role_path_add(v, hc, buf_cstr(&p), at, role, 0);
	}
	buf_release(&p);
}

/* Two roles of one host that write one file would undo each other at every apply. */
static void check_role_paths(struct vctx *v, struct host_ctx *hc, const char *where)
{
	char q[96], at[WHERE_MAX + 40];
	size_t i, j;

	for (i = 0; i < hc->nrp; i++)
		for (j = 0; j < i; j++) {
			if (hc->rp[j].role == hc->rp[i].role || (hc->rp[i].explicit_file == 1 && hc->rp[j].explicit_file == 1) ||
			    strcmp(hc->rp[i].path, hc->rp[j].path) != 0)
				continue;
			yquote(q, sizeof(q), hc->rp[i].path, strlen(hc->rp[i].path), 64);
			place(at, sizeof(at), v, hc->rp[j].at);
			vreport(v, hc->rp[i].at, where,
				"roles[%zu] writes file %s, which roles[%zu] (%s) writes too: two roles may not write one "
				"file (%s)", hc->rp[i].role, q, hc->rp[j].role, at,
				hc->rp[i].explicit_file == 2 || hc->rp[j].explicit_file == 2 ?
				"a service file is renamed whole: give each switch-mode role its own switch.file" :
				"give each role its own dir");
			break;
		}
	for (i = 0; i < hc->nrp; i++)
		free(hc->rp[i].path);
	free(hc->rp);
}

/* role: pgbouncer: two host_role entries, srv (already counted) and the next one. */
static void get_pgbouncer(struct vctx *v, const struct ynode *n, const char *where, struct host_ctx *hc,
			  const struct ynode **k, struct host_spec *h, size_t at_role)
{
	static const struct vkey skeys[] = { { "identity", 0 }, { "probe", 1 } };
	static const struct vkey ckeys[] = { { "identity", 1 } };
	static const int refused[] = { R_LAYOUT, R_FILES, R_HOME, R_USER, R_IDENTITY, R_PROBE, R_SWITCH };
	struct host_role *srv = &h->roles[h->nroles - 1], *cli = &h->roles[h->nroles++];
	const struct ynode *sk[2], *ck[1];
	char w[WHERE_MAX], w2[WHERE_MAX];
	const char *s;
	size_t i;

	srv->role = SPEC_ROLE_SERVER;
	srv->layout = layout_half("pgbouncer", LAYOUT_SIDE_SERVER);
	cli->role = SPEC_ROLE_CLIENT;
	cli->layout = layout_half("pgbouncer", LAYOUT_SIDE_CLIENT);
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (k[refused[i]]) {
			where_key(w, where, role_keys[refused[i]].name);
			vreport(v, k[refused[i]], w, "not used with role pgbouncer (its files are fixed; identity and "
						     "probe go in its server: and client: halves)");
		}
	if (!k[R_DIR])
		vreport(v, n, where, "missing required key \"dir\" (the directory of pgbouncer's client_tls_* and "
				     "server_tls_* files)");
	if (!k[R_SERVER])
		vreport(v, n, where, "a pgbouncer role needs its server half: \"server: {identity: NAME, probe: {type: "
				     "postgres, port: 6432}}\" (the certificate applications verify)");
	if (!k[R_CLIENT])
		vreport(v, n, where, "a pgbouncer role needs its client half: \"client: {identity: USER}\" (the "
				     "certificate PostgreSQL verifies)");
	where_key(w, where, "dir");
	get_abs_path(v, k[R_DIR], w, &srv->dir);
	where_key(w, where, "owner");
	get_user(v, k[R_OWNER], w, &srv->owner);
	where_key(w, where, "group");
	get_user(v, k[R_GROUP], w, &srv->group);
	where_key(w, where, "reload");
	if (vstr(v, k[R_RELOAD], w, 1, 1024, &s) > 0)
		vdup(v, &srv->reload, s);
	/* Both halves reload: a step may change either alone. */
	if (srv->dir)
		vdup(v, &cli->dir, srv->dir);
	if (srv->owner)
		vdup(v, &cli->owner, srv->owner);
	if (srv->group)
		vdup(v, &cli->group, srv->group);
	if (srv->reload)
		vdup(v, &cli->reload, srv->reload);

	where_key(w, where, "server");
	if (k[R_SERVER] && vmap(v, k[R_SERVER], w, skeys, 2, sk) == 0) {
		where_key(w2, w, "identity");
		if (get_leaf(v, sk[0], w2, "identity", &srv->identity) == 0 && hc->name)
			vdup(v, &srv->identity, hc->name);
		if (srv->identity && hc->name)
			seen_add(v, hc->ids, srv->identity, sk[0] ? w2 : w, sk[0] ? sk[0] : k[R_SERVER], hc->name,
				 hc->index, 0, !sk[0]);
		if (sk[1]) {
			where_key(w2, w, "probe");
			get_probe(v, sk[1], w2, srv);
		}
	}
	where_key(w, where, "client");
	if (k[R_CLIENT] && vmap(v, k[R_CLIENT], w, ckeys, 1, ck) == 0) {
		where_key(w2, w, "identity");
		get_leaf(v, ck[0], w2, "identity", &cli->identity);
	}
	role_paths(v, hc, srv, k[R_DIR] ? k[R_DIR] : n, at_role);
	role_paths(v, hc, cli, k[R_DIR] ? k[R_DIR] : n, at_role);
}

static void get_role(struct vctx *v, const struct ynode *n, const char *where, struct host_ctx *hc,
		     struct host_spec *h, size_t at_role)
{
	static const char *const roles[] = { "server", "client", "pgbouncer" };
	struct host_role *r = &h->roles[h->nroles++];
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
	if (venum(v, k[R_ROLE], w, roles, 3, &role) > 0 && role == ROLE_PGBOUNCER) {
		get_pgbouncer(v, n, where, hc, k, h, at_role);
		return;
	}
	if (role >= 0)
		r->role = (enum spec_role)role;
	for (i = R_SERVER; i <= R_CLIENT; i++)
		if (k[i]) {
			where_key(w, where, role_keys[i].name);
			vreport(v, k[i], w, "not used with role %s (only role pgbouncer has server: and client: halves)",
				role < 0 ? "?" : roles[role]);
			k[i] = NULL;
		}
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
	/* A layout whose file names carry the user (cockroach's client.<user>.crt). */
	if (role >= 0 && (layout_needs_user(layout, LAYOUT_SIDE_SERVER) || layout_needs_user(layout, LAYOUT_SIDE_CLIENT))) {
		if (layout_needs_user(layout, (enum layout_side)role)) {
			required |= 1u << R_USER;
			required &= ~(1u << R_IDENTITY);   /* defaults to user */
		} else {
			refused |= 1u << R_USER;
		}
	}
	if (role == SPEC_ROLE_SERVER && !(refused & (1u << R_PROBE)))
		required |= 1u << R_PROBE;
	for (i = 0; i < R_NKEYS; i++) {
		if ((required & (1u << i)) && !k[i]) {
			if (i == R_IDENTITY && role == SPEC_ROLE_CLIENT)
				vreport(v, n, where, "missing required key \"identity\" (the client name in chain.yaml "
						     "that this role uses)");
			else if (i == R_USER && layout)
				vreport(v, n, where, "missing required key \"user\" (a %s %s holds the files of one user, "
						     "named after it: the SQL user, also its certificate's CN)", layout->name,
					role == SPEC_ROLE_SERVER ? "server" : "client");
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
			else if (i == R_USER && layout && role == SPEC_ROLE_SERVER)
				vreport(v, k[i], w, "not used with a %s server (it holds its own leaf, not a user's; "
						    "user: is for a %s client)", layout->name, layout->name);
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
	if (role >= 0 && r->user && layout_needs_user(layout, (enum layout_side)role)) {
		if (!r->identity)
			vdup(v, &r->identity, r->user);
		else if (strcmp(r->identity, r->user) != 0)
			vreport(v, k[R_IDENTITY], w, "identity %s is not user %s: %s takes the user from the client "
						     "certificate's CN, so the two must be one name", r->identity, r->user,
				layout->name);
	}
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
	where_key(w, where, "switch");
	get_switch(v, k[R_SWITCH], w, r);
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
	role_paths(v, hc, r, k[R_DIR] ? k[R_DIR] : k[R_HOME] ? k[R_HOME] : n, at_role);
}

static void get_host(struct vctx *v, const struct ynode *key, struct host_spec *h, size_t index,
		     struct seenset *addrs, struct seenset *ids)
{
	static const struct vkey keys[] = { { "address", 1 }, { "port", 0 }, { "user", 0 }, { "roles", 1 } };
	const struct ynode *k[4], *it;
	struct host_ctx hc = { key, NULL, index, { NULL, 0, 0 }, ids, NULL, 0, 0 };
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
	/* A pgbouncer role is two entries. */
	if (!(h->roles = calloc(k[3]->count * 2, sizeof(*h->roles)))) {
		v->nomem = 1;
		return;
	}
	for (it = k[3]->first, i = 0; it; it = it->next, i++) {
		where_index(wi, w, i);
		get_role(v, it, wi, &hc, h, i);
	}
	check_role_paths(v, &hc, w);
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

/* "trust/NAME.pem" or "trust/NAME.crt", NAME a leaf-style name. */
static int trust_file_ok(const char *s, size_t n)
{
	static const char pre[] = "trust/";
	size_t pl = sizeof(pre) - 1;

	if (n < pl + 5 || memcmp(s, pre, pl) != 0 || !chk_leaf_name(s + pl, n - pl))
		return 0;
	return strcmp(s + n - 4, ".pem") == 0 || strcmp(s + n - 4, ".crt") == 0;
}

/* Names (or files) repeated among nodes[0..n): "duplicate WHAT X (also LIST[i])". */
static void report_repeats(struct vctx *v, const struct ynode **nodes, size_t n, const char *list,
			   const char *key, const char *what)
{
	size_t *first = calloc(n ? n : 1, sizeof(*first)), i;
	char wi[WHERE_MAX], w[WHERE_MAX], q[96];

	if (!first) {
		v->nomem = 1;
		return;
	}
	if (find_repeats(v, nodes, n, first) == 0)
		for (i = 0; i < n; i++) {
			if (first[i] == NO_REPEAT)
				continue;
			where_index(wi, list, i);
			where_key(w, wi, key);
			yquote(q, sizeof(q), nodes[i]->text, nodes[i]->len, 64);
			vreport(v, nodes[i], w, "duplicate %s %s (also %s[%zu])", what, q, list, first[i]);
		}
	free(first);
}

static void get_external_cas(struct vctx *v, const struct ynode *n, struct hosts_spec *hs)
{
	static const struct vkey keys[] = { { "file", 1 }, { "bundles", 1 }, { "retired", 0 } };
	static const char *const sides[] = { "client", "server" };
	const struct ynode *k[3], *it, *b, **files = NULL;
	char wi[WHERE_MAX], w[WHERE_MAX], wb[WHERE_MAX], q[96];
	const char *s;
	size_t i, j;
	int t;

	if (vseq(v, n, "external_cas") <= 0 || n->count == 0)
		return;
	if (n->count > SPEC_MAX_EXTERNAL_CAS) {
		vreport(v, n, "external_cas", "%zu entries; at most %d", n->count, SPEC_MAX_EXTERNAL_CAS);
		return;
	}
	if (!(hs->external_cas = calloc(n->count, sizeof(*hs->external_cas))) ||
	    !(files = calloc(n->count, sizeof(*files)))) {
		v->nomem = 1;
		goto out;
	}
	for (it = n->first, i = 0; it; it = it->next, i++) {
		struct external_ca *c = &hs->external_cas[hs->nexternal_cas++];

		where_index(wi, "external_cas", i);
		if (vmap(v, it, wi, keys, 3, k) < 0)
			continue;
		where_key(w, wi, "file");
		if (vstr(v, k[0], w, 1, 80, &s) > 0) {
			if (!trust_file_ok(s, k[0]->len)) {
				yquote(q, sizeof(q), s, k[0]->len, 64);
				vreport(v, k[0], w, "invalid file %s (trust/NAME.pem or trust/NAME.crt, NAME: " LEAF_NAME_RULE ")",
					q);
			} else {
				vdup(v, &c->file, s);
				files[i] = k[0];
				c->line = k[0]->line;
				c->column = k[0]->column;
			}
		}
		where_key(w, wi, "bundles");
		if (vseq(v, k[1], w) > 0) {
			if (k[1]->count == 0)
				vreport(v, k[1], w, "empty list (name client, server or both)");
			for (b = k[1]->first, j = 0; b; b = b->next, j++) {
				where_index(wb, w, j);
				if (venum(v, b, wb, sides, 2, &t) <= 0)
					continue;
				if (c->sides & (1u << (t == 0 ? LAYOUT_SIDE_SERVER : LAYOUT_SIDE_CLIENT)))
					vreport(v, b, wb, "%s is listed twice", sides[t]);
				c->sides |= 1u << (t == 0 ? LAYOUT_SIDE_SERVER : LAYOUT_SIDE_CLIENT);
			}
		}
		where_key(w, wi, "retired");
		vbool(v, k[2], w, &c->retired);
	}
	report_repeats(v, files, n->count, "external_cas", "file", "file");
out:
	free(files);
}

static void get_external_servers(struct vctx *v, const struct ynode *n, struct hosts_spec *hs)
{
	static const struct vkey keys[] = { { "name", 1 }, { "address", 1 }, { "port", 1 }, { "probe", 1 } };
	const struct ynode *k[4], *it, **names = NULL;
	const char *types[16], *s;
	char wi[WHERE_MAX], w[WHERE_MAX], q[96], why[160];
	size_t i, nt;
	int t;

	if (vseq(v, n, "external_servers") <= 0 || n->count == 0)
		return;
	if (!(hs->external_servers = calloc(n->count, sizeof(*hs->external_servers))) ||
	    !(names = calloc(n->count, sizeof(*names)))) {
		v->nomem = 1;
		goto out;
	}
	for (nt = 0; nt < probe_count && nt < sizeof(types) / sizeof(types[0]); nt++)
		types[nt] = probe_table[nt].name;
	for (it = n->first, i = 0; it; it = it->next, i++) {
		struct external_server *x = &hs->external_servers[hs->nexternal_servers++];

		where_index(wi, "external_servers", i);
		if (vmap(v, it, wi, keys, 4, k) < 0)
			continue;
		where_key(w, wi, "name");
		if (get_leaf(v, k[0], w, "name", &x->name) > 0)
			names[i] = k[0];
		where_key(w, wi, "address");
		if (vstr(v, k[1], w, 1, 253, &s) > 0) {
			if (chk_host(s, k[1]->len, 0, why, sizeof(why))) {
				yquote(q, sizeof(q), s, k[1]->len, 64);
				vreport(v, k[1], w, "invalid address %s: %s", q, why);
			} else {
				vdup(v, &x->address, s);
			}
		}
		where_key(w, wi, "port");
		vint(v, k[2], w, 1, 65535, &x->port);
		where_key(w, wi, "probe");
		if (venum(v, k[3], w, types, nt, &t) > 0)
			x->probe = &probe_table[t];
	}
	report_repeats(v, names, n->count, "external_servers", "name", "external server");
out:
	free(names);
}

static void *hosts_decode(struct vctx *v, const struct ynode *root)
{
	static const struct vkey top[] = { { "hosts", 1 }, { "external", 0 }, { "external_cas", 0 },
					   { "external_servers", 0 } };
	const struct ynode *t[4], *key;
	struct hosts_spec *hs = calloc(1, sizeof(*hs));
	struct seenset addrs = { NULL, 0, 0 }, ids = { NULL, 0, 0 };

	if (!hs) {
		v->nomem = 1;
		return NULL;
	}
	if (vmap(v, root, "", top, 4, t) < 0)
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
	get_external_cas(v, t[2], hs);
	get_external_servers(v, t[3], hs);
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
	free(r->service);
	free(r->service_file);
	free(r->switch_dir);
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
	for (i = 0; i < h->nexternal_cas; i++)
		free(h->external_cas[i].file);
	free(h->external_cas);
	for (i = 0; i < h->nexternal_servers; i++) {
		free(h->external_servers[i].name);
		free(h->external_servers[i].address);
	}
	free(h->external_servers);
	free(h);
}
