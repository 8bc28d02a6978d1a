/* layout.c -- the layout table (see layout.h). */
#include "reconcile/services/layout.h"

#include <stdio.h>
#include <string.h>

#define SIDE(s) (1u << LAYOUT_SIDE_##s)

const struct layout_def layout_table[] = {
	{
		/* PostgreSQL server: ssl_cert_file, ssl_key_file, ssl_ca_file. */
		.name = "postgres", .by_name = 1, .sides = SIDE(SERVER),
		.required = LAYOUT_KEY_DIR, .refused = LAYOUT_KEY_HOME | LAYOUT_KEY_USER,
		.base = LAYOUT_BASE_DIR, .bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		.files = { { "server.crt", SPEC_CONTENT_LEAF_CHAIN, 0644, 0, 0 },
			   { "server.key", SPEC_CONTENT_KEY, 0600, 0, 0 },
			   { "root.crt", SPEC_CONTENT_TRUST, 0644, 0, 0 } },
		.nfiles = 3,
	},
	{
		/*
		 * PostgreSQL server with revocation: postgres's files and root.crl
		 * for ssl_crl_file, so a client removed with `rotor client remove`
		 * is refused at once.
		 */
		.name = "postgres-crl", .by_name = 1, .sides = SIDE(SERVER),
		.required = LAYOUT_KEY_DIR, .refused = LAYOUT_KEY_HOME | LAYOUT_KEY_USER,
		.base = LAYOUT_BASE_DIR, .bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		.files = { { "server.crt", SPEC_CONTENT_LEAF_CHAIN, 0644, 0, 0 },
			   { "server.key", SPEC_CONTENT_KEY, 0600, 0, 0 },
			   { "root.crt", SPEC_CONTENT_TRUST, 0644, 0, 0 },
			   { "root.crl", SPEC_CONTENT_CRL, 0644, 0, 0 } },
		.nfiles = 4,
	},
	{
		/* libpq client: ~/.postgresql/postgresql.crt, postgresql.key, root.crt. */
		.name = "libpq", .by_name = 1, .sides = SIDE(CLIENT),
		.required = LAYOUT_KEY_HOME | LAYOUT_KEY_IDENTITY,
		.refused = LAYOUT_KEY_DIR | LAYOUT_KEY_OWNER | LAYOUT_KEY_PROBE,
		.base = LAYOUT_BASE_HOME, .subdir = ".postgresql", .owner_is_user = 1,
		.bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		/* libpq reads sslcert and sslkey per connection; its service file once per connection. */
		.switch_subdir = ".postgresql/rotor", .switch_file = ".pg_service.conf",
		.files = { { "postgresql.crt", SPEC_CONTENT_LEAF_CHAIN, 0644, 0, 0 },
			   { "postgresql.key", SPEC_CONTENT_KEY, 0600, 0, 0 },
			   { "root.crt", SPEC_CONTENT_TRUST, 0644, 0, 0 } },
		.nfiles = 3,
	},
	{
		/*
		 * pgJDBC client: pgJDBC's defaults, ~/.postgresql/postgresql.crt,
		 * postgresql.pk8 (it reads a key file only as PKCS#8 DER: an
		 * unencrypted one, mode 0600 as libpq's, needs no sslpassword),
		 * root.crt.
		 */
		.name = "pgjdbc", .by_name = 1, .sides = SIDE(CLIENT),
		.required = LAYOUT_KEY_HOME | LAYOUT_KEY_IDENTITY,
		.refused = LAYOUT_KEY_DIR | LAYOUT_KEY_OWNER | LAYOUT_KEY_PROBE,
		.base = LAYOUT_BASE_HOME, .subdir = ".postgresql", .owner_is_user = 1,
		.bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		.files = { { "postgresql.crt", SPEC_CONTENT_LEAF_CHAIN, 0644, 0, 0 },
			   { "postgresql.pk8", SPEC_CONTENT_KEY, 0600, 0, LAYOUT_FORM_PK8 },
			   { "root.crt", SPEC_CONTENT_TRUST, 0644, 0, 0 } },
		.nfiles = 3,
	},
	{
		/*
		 * pgJDBC client, key and chain in one file: ~/.postgresql/postgresql.p12
		 * (PKCS#12, alias "user", empty password, mode 0600), root.crt.  pgJDBC
		 * reads an sslkey ending in .p12 with its PKCS12KeyManager: key and
		 * certificate chain from that one file (sslcert is not read), opened
		 * once per connection, so the one rename that replaces it switches
		 * key and certificate together.  The URL needs sslpassword= (empty).
		 */
		.name = "pgjdbc-p12", .by_name = 1, .sides = SIDE(CLIENT),
		.required = LAYOUT_KEY_HOME | LAYOUT_KEY_IDENTITY,
		.refused = LAYOUT_KEY_DIR | LAYOUT_KEY_OWNER | LAYOUT_KEY_PROBE,
		.base = LAYOUT_BASE_HOME, .subdir = ".postgresql", .owner_is_user = 1,
		.bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		.files = { { "postgresql.p12", SPEC_CONTENT_LEAF_CHAIN, 0600, 0, LAYOUT_FORM_P12 },
			   { "root.crt", SPEC_CONTENT_TRUST, 0644, 0, 0 } },
		.nfiles = 2,
	},
	{
		/*
		 * CockroachDB --certs-dir (cockroach cert create-node / create-client):
		 * a node (server role) holds node.crt and node.key, used as server and
		 * as client of the other nodes (its leaf needs eku: [serverAuth,
		 * clientAuth] in chain.yaml); a client role holds client.<user>.crt and
		 * client.<user>.key of its SQL user (user: required, the leaf's CN);
		 * both hold ca.crt, newest CA first during a rotation.  Reload: SIGHUP.
		 */
		.name = "cockroach", .by_name = 1, .sides = SIDE(SERVER) | SIDE(CLIENT),
		.required = LAYOUT_KEY_DIR, .refused = LAYOUT_KEY_HOME,
		.base = LAYOUT_BASE_DIR, .bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		.files = { { "node.crt", SPEC_CONTENT_LEAF_CHAIN, 0644, SIDE(SERVER), 0 },
			   { "node.key", SPEC_CONTENT_KEY, 0600, SIDE(SERVER), 0 },
			   { "client.{user}.crt", SPEC_CONTENT_LEAF_CHAIN, 0644, SIDE(CLIENT), 0 },
			   { "client.{user}.key", SPEC_CONTENT_KEY, 0600, SIDE(CLIENT), 0 },
			   { "ca.crt", SPEC_CONTENT_TRUST, 0644, 0, 0 } },
		.nfiles = 5,
		.server_is_client = 1,
	},
	{
		/* An explicit file set: `files: [{path, content, owner, group, mode}]`. */
		.name = "files", .by_name = 0, .sides = SIDE(SERVER) | SIDE(CLIENT),
		.required = 0, .refused = LAYOUT_KEY_DIR | LAYOUT_KEY_HOME | LAYOUT_KEY_USER,
		.base = LAYOUT_BASE_NONE, .bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		.nfiles = 0,
	},
	{
		/* pgbouncer towards applications: client_tls_cert_file, client_tls_key_file,
		   client_tls_ca_file (auth_type = cert verifies applications against it). */
		.name = "pgbouncer", .by_name = 0, .half_of = "pgbouncer", .sides = SIDE(SERVER),
		.required = LAYOUT_KEY_DIR, .refused = LAYOUT_KEY_HOME | LAYOUT_KEY_USER,
		.base = LAYOUT_BASE_DIR, .bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		.files = { { "client_tls.crt", SPEC_CONTENT_LEAF_CHAIN, 0644, 0, 0 },
			   { "client_tls.key", SPEC_CONTENT_KEY, 0600, 0, 0 },
			   { "client_tls_ca.crt", SPEC_CONTENT_TRUST, 0644, 0, 0 } },
		.nfiles = 3,
	},
	{
		/* pgbouncer towards PostgreSQL: server_tls_cert_file, server_tls_key_file,
		   server_tls_ca_file (server_tls_sslmode = verify-full). */
		.name = "pgbouncer", .by_name = 0, .half_of = "pgbouncer", .sides = SIDE(CLIENT),
		.required = LAYOUT_KEY_DIR | LAYOUT_KEY_IDENTITY, .refused = LAYOUT_KEY_HOME | LAYOUT_KEY_USER,
		.base = LAYOUT_BASE_DIR, .bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		.files = { { "server_tls.crt", SPEC_CONTENT_LEAF_CHAIN, 0644, 0, 0 },
			   { "server_tls.key", SPEC_CONTENT_KEY, 0600, 0, 0 },
			   { "server_tls_ca.crt", SPEC_CONTENT_TRUST, 0644, 0, 0 } },
		.nfiles = 3,
	},
};

const size_t layout_count = sizeof(layout_table) / sizeof(layout_table[0]);

const struct layout_def *layout_find(const char *name)
{
	size_t i;

	for (i = 0; name && i < layout_count; i++)
		if (layout_table[i].by_name && strcmp(layout_table[i].name, name) == 0)
			return &layout_table[i];
	return NULL;
}

const struct layout_def *layout_files(void)
{
	size_t i;

	for (i = 0; i < layout_count; i++)
		if (!layout_table[i].by_name && !layout_table[i].half_of)
			return &layout_table[i];
	return NULL;
}

const struct layout_def *layout_half(const char *half_of, enum layout_side side)
{
	size_t i;

	for (i = 0; half_of && i < layout_count; i++)
		if (layout_table[i].half_of && strcmp(layout_table[i].half_of, half_of) == 0 &&
		    layout_table[i].sides == (1u << side))
			return &layout_table[i];
	return NULL;
}

int layout_file_for(const struct layout_file_def *f, enum layout_side s)
{
	return !f->sides || (f->sides & (1u << s));
}

int layout_needs_user(const struct layout_def *l, enum layout_side s)
{
	size_t i;

	for (i = 0; l && i < l->nfiles; i++)
		if (layout_file_for(&l->files[i], s) && strstr(l->files[i].name, "{user}"))
			return 1;
	return 0;
}

int layout_file_name(char *out, size_t cap, const struct layout_file_def *f, const char *user)
{
	const char *at = strstr(f->name, "{user}");
	int n;

	if (!at)
		n = snprintf(out, cap, "%s", f->name);
	else if (!user)
		return -1;
	else
		n = snprintf(out, cap, "%.*s%s%s", (int)(at - f->name), f->name, user, at + 6);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

const char *layout_content_name(enum spec_content c)
{
	static const char *const names[SPEC_NCONTENT] = { "leaf", "leaf+chain", "key", "trust", "crl" };

	return (unsigned)c < SPEC_NCONTENT ? names[c] : "?";
}
