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

#include "common/buf.h"
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
	enum layout_form form;   /* PEM, or pgJDBC's .pk8 / .p12 (layout_file_def.form) */
};

int layout_expand(struct managed_file **out, size_t *n, const struct host_role *role, struct err *e);
void layout_free(struct managed_file *files, size_t n);

/* The reload command of a role: its own, else its layout's default; NULL when none. */
const char *role_reload(const struct host_role *role);

/*
 * ---- switch mode (a role whose `service` is set) ----
 *
 * The role's three files live in a directory under role->switch_dir that
 * is named by its content and never modified once it is in place; the
 * service file's section [service] names them (sslcert, sslkey,
 * sslrootcert, sslmode=verify-full).  Switching is one rename of the
 * service file, so a reader that reads the service file once per
 * connection (libpq) opens certificate and key of one generation.  Any
 * change of the three (a bundle change too) is a new directory; when the
 * leaf stays and the repository has no key of it (plan_key_on_host()),
 * apply copies the key the host holds, checked against the leaf.
 *
 * switch_parse() reads a service file as libpq does (sections `[name]`,
 * `key=value` lines, `#` comments): out->cert, key and root are copies
 * of the section's values (NULL when absent), by_rotor says the file
 * begins with SWITCH_MARKER.  switch_render() writes the file rotor
 * installs: the marker, every line of the old file (old may be NULL)
 * outside section [service] as it was (an adopted file keeps its other
 * services), then the section.  switch_dir_name() is the
 * directory for a leaf file and a bundle: "<16 hex of SHA-256 of the
 * leaf file>-<16 hex of SHA-256 of the bundle>".  Errors: ROTOR_ENOMEM.
 */
#define SWITCH_MARKER "# written by rotor (switch mode): rotor replaces this file by renaming; do not edit\n"
#define SWITCH_DIR_NAME_LEN 33
/* DIR/.NAME.rotor-new: a directory being written, before its rename to DIR/NAME. */
#define SWITCH_NEW_SUFFIX ".rotor-new"

struct switch_point {
	char *cert, *key, *root;
	int by_rotor;            /* the file begins with SWITCH_MARKER */
	int has_section;         /* [service] is in it */
};

int switch_parse(struct switch_point *out, const char *data, size_t len, const char *service, struct err *e);
void switch_point_release(struct switch_point *p);
int switch_render(struct buf *out, const char *old, size_t old_len, const char *service, const char *dir,
		  struct err *e);
/* The SHA-256 of data[0..len) as 64 lowercase hex digits (what a saved plan records of a file). */
int sha256_hex(char out[65], const char *data, size_t len, struct err *e);
int switch_dir_name(char out[SWITCH_DIR_NAME_LEN + 1], const char *leaf, size_t leaf_len, const char *bundle,
		    size_t bundle_len, struct err *e);
/* Is name (a directory entry under switch_dir) one that switch_dir_name() makes? */
int switch_dir_name_ok(const char *name);

#endif
