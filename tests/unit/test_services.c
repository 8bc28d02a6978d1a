/*
 * test_services.c -- reconcile/services: the layout and probe tables
 * are what schemas/hosts.json and schemas/observe.json say, entry for
 * entry, and every entry is usable (hosts.yaml with it validates, its
 * files expand).  Adding a layout or a probe without its schema fails
 * here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "reconcile/engine/files.h"
#include "reconcile/services/layout.h"
#include "reconcile/services/probes.h"
#include "reconcile/spec/spec.h"
#include "reconcile/tls/probe_int.h"

#ifndef ROTOR_SRCDIR
#define ROTOR_SRCDIR "."
#endif

static json_t *load_schema(const char *name)
{
	char path[4096];
	json_error_t err;
	json_t *j;

	snprintf(path, sizeof(path), "%s/schemas/%s", ROTOR_SRCDIR, name);
	j = json_load_file(path, 0, &err);
	if (!j)
		fail_msg("%s:%d: %s", path, err.line, err.text);
	return j;
}

/* The "enum" array at a JSON pointer-like path of object keys. */
static json_t *enum_at(json_t *root, const char *const *keys)
{
	json_t *j = root;

	for (; *keys; keys++) {
		j = json_object_get(j, *keys);
		if (!j)
			fail_msg("no key \"%s\" on the way to the enum", *keys);
	}
	j = json_object_get(j, "enum");
	assert_non_null(j);
	assert_true(json_is_array(j));
	return j;
}

/* Every name in the enum is one of names[], and every names[] is in the enum. */
static void same_names(json_t *en, const char *const *names, size_t n, const char *what)
{
	size_t i, k;

	if (json_array_size(en) != n)
		fail_msg("%s: the schema names %zu, the table %zu", what, json_array_size(en), n);
	for (i = 0; i < n; i++) {
		for (k = 0; k < json_array_size(en); k++)
			if (json_is_string(json_array_get(en, k)) &&
			    strcmp(json_string_value(json_array_get(en, k)), names[i]) == 0)
				break;
		if (k == json_array_size(en))
			fail_msg("%s: the table has \"%s\", the schema does not", what, names[i]);
	}
}

static void test_layout_names_match_schema(void **state)
{
	static const char *const path[] = { "definitions", "role", "properties", "layout", NULL };
	const char *names[16];
	size_t i, n = 0;
	json_t *s = load_schema("hosts.json");

	(void)state;
	for (i = 0; i < layout_count; i++)
		if (layout_table[i].by_name)
			names[n++] = layout_table[i].name;
	same_names(enum_at(s, path), names, n, "hosts.json layout");
	json_decref(s);
}

static void test_probe_names_match_schema(void **state)
{
	static const char *const path[] = { "definitions", "role", "properties", "probe", "properties", "type", NULL };
	const char *names[16];
	size_t i;
	json_t *s = load_schema("hosts.json");

	(void)state;
	for (i = 0; i < probe_count; i++)
		names[i] = probe_table[i].name;
	same_names(enum_at(s, path), names, probe_count, "hosts.json probe.type");
	json_decref(s);
}

static void test_content_names_match_schemas(void **state)
{
	static const char *const hosts_path[] = { "definitions", "role", "properties", "files", "items", "properties",
						  "content", NULL };
	static const char *const obs_path[] = { "definitions", "file", "properties", "content", NULL };
	const char *names[SPEC_NCONTENT];
	json_t *h = load_schema("hosts.json"), *o = load_schema("observe.json");
	size_t i;

	(void)state;
	for (i = 0; i < SPEC_NCONTENT; i++)
		names[i] = layout_content_name((enum spec_content)i);
	same_names(enum_at(h, hosts_path), names, SPEC_NCONTENT, "hosts.json files[].content");
	same_names(enum_at(o, obs_path), names, SPEC_NCONTENT, "observe.json content");
	assert_string_equal(layout_content_name((enum spec_content)SPEC_NCONTENT), "?");
	json_decref(h);
	json_decref(o);
}

/*
 * The schema's per-layout rules (allOf: if layout = NAME then required
 * [...]) require what the table requires, for every layout.
 */
static void test_layout_required_keys_match_schema(void **state)
{
	static const struct {
		unsigned bit;
		const char *key;
	} keys[] = { { LAYOUT_KEY_DIR, "dir" }, { LAYOUT_KEY_HOME, "home" }, { LAYOUT_KEY_IDENTITY, "identity" } };
	json_t *s = load_schema("hosts.json"), *all, *rule;
	size_t i, r, k, seen = 0;

	(void)state;
	all = json_object_get(json_object_get(json_object_get(s, "definitions"), "role"), "allOf");
	assert_true(json_is_array(all));
	for (i = 0; i < layout_count; i++) {
		const struct layout_def *l = &layout_table[i];
		json_t *req = NULL;

		if (!l->by_name)
			continue;
		json_array_foreach(all, r, rule) {
			json_t *c = json_object_get(json_object_get(json_object_get(json_object_get(rule, "if"), "properties"),
								    "layout"), "const");

			if (c && json_is_string(c) && strcmp(json_string_value(c), l->name) == 0)
				req = json_object_get(json_object_get(rule, "then"), "required");
		}
		if (!req)
			fail_msg("hosts.json has no rule for layout %s", l->name);
		seen++;
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			int in_schema = 0;
			size_t q;

			for (q = 0; q < json_array_size(req); q++)
				in_schema |= strcmp(json_string_value(json_array_get(req, q)), keys[k].key) == 0;
			if (in_schema != !!(l->required & keys[k].bit))
				fail_msg("layout %s: the table %s \"%s\", the schema %s", l->name,
					 l->required & keys[k].bit ? "requires" : "does not require", keys[k].key,
					 in_schema ? "does" : "does not");
		}
	}
	assert_true(seen >= 3);
	json_decref(s);
}

/* Every layout entry validates in a hosts.yaml, for every role it is for, and expands to its files. */
static void test_every_layout_validates_and_expands(void **state)
{
	size_t i, k, f;
	int side;

	(void)state;
	for (i = 0; i < layout_count; i++) {
		const struct layout_def *l = &layout_table[i];

		if (!l->by_name)
			continue;
		for (side = LAYOUT_SIDE_SERVER; side <= LAYOUT_SIDE_CLIENT; side++) {
			struct hosts_spec *h = NULL;
			struct diags d = { NULL, 0, 0 };
			struct managed_file *m = NULL;
			struct err e = ERR_INIT;
			char yaml[1024], name[256];
			size_t n = 0;
			int server = side == LAYOUT_SIDE_SERVER, by_user = layout_needs_user(l, (enum layout_side)side);
			int p12 = 0;

			if (!(l->sides & (1u << side)))
				continue;
			snprintf(yaml, sizeof(yaml), "hosts:\n  h1:\n    address: 127.0.0.1\n    roles:\n"
				 "      - {role: %s, layout: %s, %s%s%s identity: x1}\n",
				 server ? "server" : "client", l->name,
				 l->base == LAYOUT_BASE_DIR ? "dir: /srv/certs," : "home: /home/u, user: u,",
				 by_user ? " user: x1," : "", server ? " probe: none," : "");
			if (spec_load_hosts(&h, "hosts.yaml", yaml, strlen(yaml), &d) != 0) {
				struct buf b = BUF_INIT;

				diags_format(&d, &b);
				fail_msg("layout %s does not validate:\n%s%s", l->name, yaml, buf_cstr(&b));
			}
			assert_ptr_equal(h->hosts[0].roles[0].layout, l);
			assert_int_equal(layout_expand(&m, &n, &h->hosts[0].roles[0], &e), 0);
			for (k = 0, f = 0; f < l->nfiles; f++) {
				if (!layout_file_for(&l->files[f], (enum layout_side)side))
					continue;
				assert_true(k < n);
				assert_int_equal(layout_file_name(name, sizeof(name), &l->files[f], "x1"), 0);
				assert_non_null(strstr(m[k].path, name));
				assert_null(strchr(m[k].path, '{'));
				assert_int_equal(m[k].content, l->files[f].content);
				assert_int_equal(m[k].mode, l->files[f].mode);
				assert_int_equal(m[k].form, l->files[f].form);
				/* A PKCS#12 file holds a key: a leaf+chain file, 0600. */
				if (m[k].form == LAYOUT_FORM_P12)
					assert_true(m[k].content == SPEC_CONTENT_LEAF_CHAIN && m[k].mode == 0600);
				p12 |= m[k].form == LAYOUT_FORM_P12;
				assert_true(m[k].path[0] == '/');
				k++;
			}
			assert_int_equal(n, k);
			/* A leaf, its key and a bundle; the key and leaf in one file for a PKCS#12 form. */
			assert_true(n >= (p12 ? 2u : 3u));
			layout_free(m, n);
			spec_hosts_free(h);
			diags_release(&d);
		}
	}
}

/* Expand every role of host 0 of yaml into one list of paths ("path mode content side identity"). */
static void expand_all(struct buf *out, const char *yaml)
{
	struct hosts_spec *h = NULL;
	struct diags d = { NULL, 0, 0 };
	size_t r, k;

	if (spec_load_hosts(&h, "hosts.yaml", yaml, strlen(yaml), &d) != 0) {
		struct buf b = BUF_INIT;

		diags_format(&d, &b);
		fail_msg("does not validate:\n%s%s", yaml, buf_cstr(&b));
	}
	for (r = 0; r < h->hosts[0].nroles; r++) {
		struct managed_file *m = NULL;
		struct err e = ERR_INIT;
		size_t n = 0;

		assert_int_equal(layout_expand(&m, &n, &h->hosts[0].roles[r], &e), 0);
		for (k = 0; k < n; k++)
			buf_printf(out, "%s %04o %s %s %s %s\n", m[k].path, (unsigned)m[k].mode, layout_content_name(m[k].content),
				   m[k].side == LAYOUT_SIDE_SERVER ? "server" : "client", m[k].identity ? m[k].identity : "-",
				   h->hosts[0].roles[r].reload ? h->hosts[0].roles[r].reload : "-");
		layout_free(m, n);
	}
	spec_hosts_free(h);
	diags_release(&d);
}

/*
 * CockroachDB's certs dir (cockroach cert create-node / create-client): a
 * node holds node.crt, node.key and ca.crt; a client holds
 * client.<user>.crt and .key and ca.crt; keys 0600.  A trust file's side
 * is the peer's: a node's ca.crt holds the client CAs, a client's the
 * server CAs.
 */
static void test_cockroach_files(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	expand_all(&b, "hosts:\n  c1:\n    address: 127.0.0.1\n    roles:\n"
		       "      - {role: server, layout: cockroach, dir: /certs, owner: crdb, identity: n1, probe: none,"
		       " reload: pkill -HUP -x cockroach}\n"
		       "      - {role: client, layout: cockroach, dir: /home/app/.cockroach-certs, user: maxroach}\n");
	assert_string_equal(buf_cstr(&b),
			    "/certs/node.crt 0644 leaf+chain server n1 pkill -HUP -x cockroach\n"
			    "/certs/node.key 0600 key server n1 pkill -HUP -x cockroach\n"
			    "/certs/ca.crt 0644 trust client - pkill -HUP -x cockroach\n"
			    "/home/app/.cockroach-certs/client.maxroach.crt 0644 leaf+chain client maxroach -\n"
			    "/home/app/.cockroach-certs/client.maxroach.key 0600 key client maxroach -\n"
			    "/home/app/.cockroach-certs/ca.crt 0644 trust server - -\n");
	buf_release(&b);
}

/*
 * pgbouncer: one hosts.yaml role, two roles inside: the server half
 * (client_tls_*: what applications verify, its bundle holds the client
 * CAs) and the client half (server_tls_*: what PostgreSQL verifies, its
 * bundle holds the server CAs); both reload.
 */
static void test_pgbouncer_halves(void **state)
{
	const char *yaml = "hosts:\n  pgb1:\n    address: 127.0.0.1\n    roles:\n"
			   "      - role: pgbouncer\n        dir: /etc/pgbouncer/tls\n        owner: postgres\n"
			   "        reload: kill -HUP 1\n"
			   "        server: {probe: {type: postgres, port: 6432}}\n"
			   "        client: {identity: pgbouncer}\n";
	struct hosts_spec *h = NULL;
	struct diags d = { NULL, 0, 0 };
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(spec_load_hosts(&h, "hosts.yaml", yaml, strlen(yaml), &d), 0);
	assert_int_equal(h->hosts[0].nroles, 2);
	assert_int_equal(h->hosts[0].roles[0].role, SPEC_ROLE_SERVER);
	assert_ptr_equal(h->hosts[0].roles[0].layout, layout_half("pgbouncer", LAYOUT_SIDE_SERVER));
	assert_string_equal(h->hosts[0].roles[0].identity, "pgb1");
	assert_ptr_equal(h->hosts[0].roles[0].probe, probe_find("postgres"));
	assert_int_equal(h->hosts[0].roles[0].probe_port, 6432);
	assert_int_equal(h->hosts[0].roles[1].role, SPEC_ROLE_CLIENT);
	assert_ptr_equal(h->hosts[0].roles[1].layout, layout_half("pgbouncer", LAYOUT_SIDE_CLIENT));
	assert_null(h->hosts[0].roles[1].probe);
	assert_string_equal(h->hosts[0].roles[1].owner, "postgres");
	assert_ptr_not_equal(layout_files(), layout_half("pgbouncer", LAYOUT_SIDE_SERVER));
	assert_null(layout_find("pgbouncer"));   /* not a `layout:` name */
	spec_hosts_free(h);
	diags_release(&d);
	expand_all(&b, yaml);
	assert_string_equal(buf_cstr(&b),
			    "/etc/pgbouncer/tls/client_tls.crt 0644 leaf+chain server pgb1 kill -HUP 1\n"
			    "/etc/pgbouncer/tls/client_tls.key 0600 key server pgb1 kill -HUP 1\n"
			    "/etc/pgbouncer/tls/client_tls_ca.crt 0644 trust client - kill -HUP 1\n"
			    "/etc/pgbouncer/tls/server_tls.crt 0644 leaf+chain client pgbouncer kill -HUP 1\n"
			    "/etc/pgbouncer/tls/server_tls.key 0600 key client pgbouncer kill -HUP 1\n"
			    "/etc/pgbouncer/tls/server_tls_ca.crt 0644 trust server - kill -HUP 1\n");
	buf_release(&b);
}

/* The https probe's verdict from a status line: nginx's 400 is a refusal, nothing of the line is shown. */
static void test_https_status_line(void **state)
{
	static const struct {
		const char *line;
		int ret, status, accepted;
	} cases[] = {
		{ "HTTP/1.1 200 OK\r", 1, 200, 1 },
		{ "HTTP/1.0 302 Found", 1, 302, 1 },
		{ "HTTP/1.1 404 Not Found\r", 1, 404, 1 },
		{ "HTTP/1.1 403\r", 1, 403, 1 },
		{ "HTTP/1.1 400 Bad Request\r", 0, 400, 0 },
		{ "HTTP/1.1 495 SSL Certificate Error", 0, 495, 0 },
		{ "HTTP/1.1 496 SSL Certificate Required", 0, 496, 0 },
		{ "HTTP/1.1 502 Bad Gateway\r", 0, 502, -1 },
		{ "HTTP/1.1 101 Switching", 0, 101, -1 },
		{ "HTTP/2 200 OK", 0, -1, -1 },
		{ "HTTP/1.1 20 OK", 0, -1, -1 },
		{ "HTTP/1.1 2000 OK", 0, -1, -1 },
		{ "SSH-2.0-OpenSSH_9.2p1 \x1b[31msecret", 0, -1, -1 },
		{ "", 0, -1, -1 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct probe_result out;

		memset(&out, 0, sizeof(out));
		out.http_status = out.client_accepted = -1;
		assert_int_equal(probe__http_status(&out, cases[i].line, strlen(cases[i].line)), cases[i].ret);
		assert_int_equal(out.http_status, cases[i].status);
		assert_int_equal(out.client_accepted, cases[i].accepted);
		assert_int_equal(out.error[0] == '\0', cases[i].ret == 1);
		assert_null(strstr(out.error, "OpenSSH"));
		assert_null(strstr(out.error, "Bad"));
	}
}

/* A layout used by a role it is not for is refused, naming the role it is for. */
static void test_layout_sides_are_enforced(void **state)
{
	const char *yaml = "hosts:\n  h1:\n    address: 127.0.0.1\n    roles:\n"
			   "      - {role: client, layout: postgres, dir: /srv, identity: app}\n";
	struct hosts_spec *h = NULL;
	struct diags d = { NULL, 0, 0 };

	(void)state;
	assert_int_equal(spec_load_hosts(&h, "hosts.yaml", yaml, strlen(yaml), &d), ROTOR_EINVALID);
	assert_null(h);
	assert_true(d.n >= 1);
	assert_non_null(strstr(d.v[0].msg, "layout postgres is for role server"));
	diags_release(&d);
}

/* Every probe entry resolves by name and runs through the table. */
static void test_probe_table_dispatch(void **state)
{
	size_t i;

	(void)state;
	assert_true(probe_count >= 2);
	for (i = 0; i < probe_count; i++) {
		struct probe_result pr;
		struct probe_req q;
		struct err e = ERR_INIT;

		assert_ptr_equal(probe_find(probe_table[i].name), &probe_table[i]);
		assert_non_null(probe_table[i].run);
		/* Port 0 is refused before anything is sent: the function behind the entry answers. */
		memset(&q, 0, sizeof(q));
		q.address = "127.0.0.1";
		q.port = 0;
		assert_int_equal(probe_table[i].run(&pr, &q, &e), ROTOR_EINVALID);
	}
	assert_null(probe_find("nonsense"));
	assert_null(probe_find(NULL));
	assert_true(probe_find("postgres")->checks_client);
	assert_false(probe_find("tls")->checks_client);
	assert_true(probe_find("https")->checks_client);
}

/* A layout has a switch mode exactly when the schema does not forbid `switch` for it. */
static void test_switch_modes_match_schema(void **state)
{
	json_t *s = load_schema("hosts.json");
	json_t *all = json_object_get(json_object_get(json_object_get(s, "definitions"), "role"), "allOf");
	size_t i, k;

	(void)state;
	assert_non_null(json_object_get(json_object_get(json_object_get(json_object_get(s, "definitions"), "role"),
							"properties"), "switch"));
	for (i = 0; i < layout_count; i++) {
		const struct layout_def *l = &layout_table[i];
		int forbidden = 0, found = 0;

		for (k = 0; k < json_array_size(all); k++) {
			json_t *c = json_array_get(all, k), *iff = json_object_get(c, "if");
			json_t *lay = json_object_get(json_object_get(json_object_get(iff, "properties"), "layout"), "const");
			json_t *req = json_object_get(iff, "required");
			int files = req && json_array_size(req) == 1 &&
				    strcmp(json_string_value(json_array_get(req, 0)), "files") == 0 && !lay;

			if ((l->by_name && lay && strcmp(json_string_value(lay), l->name) == 0) || (!l->by_name && files)) {
				json_t *sw = json_object_get(json_object_get(json_object_get(c, "then"), "properties"), "switch");

				found = 1;
				forbidden |= sw && json_is_false(sw);
			}
		}
		if (!found)
			fail_msg("hosts.json has no rule for layout %s", l->name);
		if (forbidden != !l->switch_subdir)
			fail_msg("layout %s: the table %s a switch mode, the schema %s `switch`", l->name,
				 l->switch_subdir ? "has" : "has no", forbidden ? "forbids" : "allows");
		assert_true(!l->switch_subdir == !l->switch_file);
	}
	json_decref(s);
}

static void test_switch_service_names(void **state)
{
	static const char *const good[] = { "app", "rotor-app.1", "A_b", "9x", "x" };
	static const char *const bad[] = { "", "app rw", "-app", ".app", "app]", "[app", "app\n", "ä", "a/b", "a=b" };
	char longest[65];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(spec_service_name_ok(good[i], strlen(good[i])));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (spec_service_name_ok(bad[i], strlen(bad[i])))
			fail_msg("\"%s\" accepted as a service name", bad[i]);
	memset(longest, 'a', sizeof(longest));
	assert_true(spec_service_name_ok(longest, 63));
	assert_false(spec_service_name_ok(longest, 64));
	/* An embedded NUL is not part of a name. */
	assert_false(spec_service_name_ok("ab\0c", 4));
}

/* The service file as libpq reads it; what rotor writes reads back; an adopted file keeps its other services. */
static void test_switch_service_file(void **state)
{
	static const char adopted[] = "# mine\n[other]\nhost=db1\nsslcert=/x/other.crt\n\n  [app]  \r\n"
				      "sslcert=/old/a.crt\nsslkey=/old/a.key\n# comment=1\nsslrootcert=/old/r.crt\n"
				      "[third]\ndbname=z";
	struct switch_point sp;
	struct buf out = BUF_INIT, again = BUF_INIT;
	struct err e = ERR_INIT;
	char name[SWITCH_DIR_NAME_LEN + 1], name2[SWITCH_DIR_NAME_LEN + 1];

	(void)state;
	assert_int_equal(switch_parse(&sp, adopted, strlen(adopted), "app", &e), 0);
	assert_false(sp.by_rotor);
	assert_true(sp.has_section);
	assert_string_equal(sp.cert, "/old/a.crt");
	assert_string_equal(sp.key, "/old/a.key");
	assert_string_equal(sp.root, "/old/r.crt");
	switch_point_release(&sp);
	/* Another service's entries are not ours. */
	assert_int_equal(switch_parse(&sp, adopted, strlen(adopted), "oth", &e), 0);
	assert_false(sp.has_section);
	assert_null(sp.cert);
	switch_point_release(&sp);

	assert_int_equal(switch_render(&out, adopted, strlen(adopted), "app", "/h/.postgresql/rotor/d1", &e), 0);
	assert_int_equal(switch_parse(&sp, out.ptr, out.len, "app", &e), 0);
	assert_true(sp.by_rotor);
	assert_string_equal(sp.cert, "/h/.postgresql/rotor/d1/postgresql.crt");
	assert_string_equal(sp.key, "/h/.postgresql/rotor/d1/postgresql.key");
	assert_string_equal(sp.root, "/h/.postgresql/rotor/d1/root.crt");
	switch_point_release(&sp);
	assert_non_null(strstr(buf_cstr(&out), "[other]\nhost=db1\nsslcert=/x/other.crt\n"));
	assert_non_null(strstr(buf_cstr(&out), "[third]\ndbname=z\n"));
	assert_null(strstr(buf_cstr(&out), "/old/"));
	assert_non_null(strstr(buf_cstr(&out), "sslmode=verify-full\n"));
	/* Rendering rotor's own file again changes only the section, and keeps one marker. */
	assert_int_equal(switch_render(&again, out.ptr, out.len, "app", "/h/.postgresql/rotor/d2", &e), 0);
	assert_ptr_equal(strstr(buf_cstr(&again), SWITCH_MARKER), buf_cstr(&again));
	assert_null(strstr(buf_cstr(&again) + 1, SWITCH_MARKER));
	assert_null(strstr(buf_cstr(&again), "/d1/"));
	assert_int_equal(switch_parse(&sp, again.ptr, again.len, "other", &e), 0);
	assert_string_equal(sp.cert, "/x/other.crt");
	switch_point_release(&sp);
	buf_release(&out);
	buf_release(&again);
	/* No file at all: only rotor's section. */
	assert_int_equal(switch_render(&out, NULL, 0, "app", "/d", &e), 0);
	assert_int_equal(switch_parse(&sp, out.ptr, out.len, "app", &e), 0);
	assert_true(sp.by_rotor && sp.has_section);
	switch_point_release(&sp);
	buf_release(&out);

	/* Directory names: by content, stable, and recognised. */
	assert_int_equal(switch_dir_name(name, "leaf", 4, "bundle", 6, &e), 0);
	assert_int_equal(switch_dir_name(name2, "leaf", 4, "bundle", 6, &e), 0);
	assert_string_equal(name, name2);
	assert_int_equal(strlen(name), SWITCH_DIR_NAME_LEN);
	assert_true(switch_dir_name_ok(name));
	assert_int_equal(switch_dir_name(name2, "leaf", 4, "bundle2", 7, &e), 0);
	assert_string_not_equal(name, name2);
	assert_memory_equal(name, name2, 16);
	assert_false(switch_dir_name_ok("0123456789abcdef0123456789abcdef0"));
	assert_false(switch_dir_name_ok("0123456789abcdef-0123456789abcdeF"));
	assert_false(switch_dir_name_ok(".0123456789abcdef-0123456789abcdef.rotor-new"));
	assert_false(switch_dir_name_ok("0123456789abcdef-0123456789abcde"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_names_match_schema),
		cmocka_unit_test(test_probe_names_match_schema),
		cmocka_unit_test(test_content_names_match_schemas),
		cmocka_unit_test(test_layout_required_keys_match_schema),
		cmocka_unit_test(test_every_layout_validates_and_expands),
		cmocka_unit_test(test_layout_sides_are_enforced),
		cmocka_unit_test(test_cockroach_files),
		cmocka_unit_test(test_pgbouncer_halves),
		cmocka_unit_test(test_https_status_line),
		cmocka_unit_test(test_probe_table_dispatch),
		cmocka_unit_test(test_switch_modes_match_schema),
		cmocka_unit_test(test_switch_service_names),
		cmocka_unit_test(test_switch_service_file),
	};

	return cmocka_run_group_tests_name("services", tests, NULL, NULL);
}
