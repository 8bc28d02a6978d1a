/* layout.c -- the layout table (see layout.h). */
#include "reconcile/services/layout.h"

#include <string.h>

#define SIDE(s) (1u << LAYOUT_SIDE_##s)

const struct layout_def layout_table[] = {
	{
		/* PostgreSQL server: ssl_cert_file, ssl_key_file, ssl_ca_file. */
		.name = "postgres", .by_name = 1, .sides = SIDE(SERVER),
		.required = LAYOUT_KEY_DIR, .refused = LAYOUT_KEY_HOME | LAYOUT_KEY_USER,
		.base = LAYOUT_BASE_DIR, .bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		.files = { { "server.crt", SPEC_CONTENT_LEAF_CHAIN, 0644 },
			   { "server.key", SPEC_CONTENT_KEY, 0600 },
			   { "root.crt", SPEC_CONTENT_TRUST, 0644 } },
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
		.files = { { "server.crt", SPEC_CONTENT_LEAF_CHAIN, 0644, 0 },
			   { "server.key", SPEC_CONTENT_KEY, 0600, 0 },
			   { "root.crt", SPEC_CONTENT_TRUST, 0644, 0 },
			   { "root.crl", SPEC_CONTENT_CRL, 0644, 0 } },
		.nfiles = 4,
	},
	{
		/* libpq client: ~/.postgresql/postgresql.crt, postgresql.key, root.crt. */
		.name = "libpq", .by_name = 1, .sides = SIDE(CLIENT),
		.required = LAYOUT_KEY_HOME | LAYOUT_KEY_IDENTITY,
		.refused = LAYOUT_KEY_DIR | LAYOUT_KEY_OWNER | LAYOUT_KEY_PROBE,
		.base = LAYOUT_BASE_HOME, .subdir = ".postgresql", .owner_is_user = 1,
		.bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		.files = { { "postgresql.crt", SPEC_CONTENT_LEAF_CHAIN, 0644 },
			   { "postgresql.key", SPEC_CONTENT_KEY, 0600 },
			   { "root.crt", SPEC_CONTENT_TRUST, 0644 } },
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
		.files = { { "postgresql.crt", SPEC_CONTENT_LEAF_CHAIN, 0644, 0 },
			   { "postgresql.pk8", SPEC_CONTENT_KEY, 0600, 1 },
			   { "root.crt", SPEC_CONTENT_TRUST, 0644, 0 } },
		.nfiles = 3,
	},
	{
		/* CockroachDB node: certs dir with ca.crt, node.crt, node.key. */
		.name = "cockroach", .by_name = 1, .sides = SIDE(SERVER) | SIDE(CLIENT),
		.required = LAYOUT_KEY_DIR, .refused = LAYOUT_KEY_HOME | LAYOUT_KEY_USER,
		.base = LAYOUT_BASE_DIR, .bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		.files = { { "node.crt", SPEC_CONTENT_LEAF_CHAIN, 0644 },
			   { "node.key", SPEC_CONTENT_KEY, 0600 },
			   { "ca.crt", SPEC_CONTENT_TRUST, 0644 } },
		.nfiles = 3,
	},
	{
		/* An explicit file set: `files: [{path, content, owner, group, mode}]`. */
		.name = "files", .by_name = 0, .sides = SIDE(SERVER) | SIDE(CLIENT),
		.required = 0, .refused = LAYOUT_KEY_DIR | LAYOUT_KEY_HOME | LAYOUT_KEY_USER,
		.base = LAYOUT_BASE_NONE, .bundle = LAYOUT_BUNDLE_NEWEST_FIRST,
		.nfiles = 0,
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
		if (!layout_table[i].by_name)
			return &layout_table[i];
	return NULL;
}

const char *layout_content_name(enum spec_content c)
{
	static const char *const names[SPEC_NCONTENT] = { "leaf", "leaf+chain", "key", "trust", "crl" };

	return (unsigned)c < SPEC_NCONTENT ? names[c] : "?";
}
