/*
 * files.h -- which files a host role manages, from its layout's table
 * entry (services/layout.h) or its explicit `files:` list.
 *
 * layout_expand() turns one role into the flat list of managed files,
 * each with what it must contain, its mode and owner, so observe, plan
 * and apply work on files and never on layout names.
 *
 * Ownership: the caller owns the array and frees it with layout_free();
 * strings in it are copies.  Errors: ROTOR_EINVALID for a role that
 * validation should have refused (named in the message), ROTOR_ENOMEM.
 */
#ifndef ROTOR_FILES_H
#define ROTOR_FILES_H

#include <stddef.h>

#include "common/err.h"
#include "reconcile/services/layout.h"
#include "reconcile/spec/spec.h"

struct managed_file {
	char *path;              /* absolute path on the host */
	enum spec_content content;
	enum layout_side side;   /* leaf/key: the role's side; trust, crl: the PEER side whose CAs it holds */
	char *identity;          /* leaf name for leaf, leaf+chain and key files; NULL for trust */
	char *owner, *group;     /* NULL: leave as is */
	int mode;                /* octal permission bits */
	int der;                 /* key: unencrypted PKCS#8 DER instead of PEM (layout_file_def.der) */
};

int layout_expand(struct managed_file **out, size_t *n, const struct host_role *role, struct err *e);
void layout_free(struct managed_file *files, size_t n);

/* The reload command of a role: its own, else its layout's default; NULL when none. */
const char *role_reload(const struct host_role *role);

#endif
