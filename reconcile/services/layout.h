/*
 * layout.h -- which files a host role manages.
 *
 * A role in hosts.yaml names a layout (a preset for a well-known file
 * set) or lists its files.  layout_expand() turns one role into the flat
 * list of managed files, each with what it must contain, so observe and
 * plan work on files and never on layout names.
 *
 *   postgres (server): DIR/server.crt  leaf+chain (leaf, server CA)
 *                      DIR/server.key  key, 0600
 *                      DIR/root.crt    trust (roots + client CAs: ssl_ca_file)
 *   libpq (client):    HOME/.postgresql/postgresql.crt  leaf+chain (leaf, client CA)
 *                      HOME/.postgresql/postgresql.key  key, 0600
 *                      HOME/.postgresql/root.crt        trust (roots + server CAs)
 *   cockroach (node):  DIR/ca.crt  trust (roots, newest first)
 *                      DIR/node.crt, DIR/node.key   leaf+chain / key of the node
 *
 * Ownership: the caller owns the array and frees it with layout_free();
 * strings in it are copies.  Errors: ROTOR_EINVALID for a role that the
 * schema should have refused (named in the message), ROTOR_ENOMEM.
 */
#ifndef ROTOR_LAYOUT_H
#define ROTOR_LAYOUT_H

#include <stddef.h>

#include "common/err.h"
#include "reconcile/spec/spec.h"

/* Which side's certificates a trust bundle holds, or whose leaf a file carries. */
enum layout_side { LAYOUT_SIDE_SERVER, LAYOUT_SIDE_CLIENT };

struct managed_file {
	char *path;              /* absolute path on the host */
	enum spec_content content;
	enum layout_side side;   /* leaf/key: the role's side; trust: the PEER side whose CAs it holds */
	char *identity;          /* leaf name for leaf, leaf+chain and key files; NULL for trust */
	char *owner, *group;     /* NULL: leave as is */
	int mode;                /* octal permission bits */
};

int layout_expand(struct managed_file **out, size_t *n, const struct host_role *role, struct err *e);
void layout_free(struct managed_file *files, size_t n);

/* "leaf", "leaf+chain", "key", "trust": as hosts.yaml and the JSON outputs name them. */
const char *layout_content_name(enum spec_content c);

#endif
