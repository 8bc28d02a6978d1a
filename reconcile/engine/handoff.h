/*
 * handoff.h -- `rotor handoff`: the files an application team needs for
 * one client identity on hosts rotor does not reach (DESIGN.md §5a): the
 * certificate and chain, the key (encrypted PKCS#8 PEM and DER, PKCS#12),
 * the trust bundle of one rotation step (PEM and a Java trust store), a
 * README.txt and SHA256SUMS, written into a new directory.
 *
 * Which step (enum handoff_choice):
 *   HANDOFF_NEXT (default): what the client moves to next.  Stable (no
 *     target): stable.  Phase trust: trust (the new bundle; the leaf is
 *     still the one in service).  Phase servers or clients: clients (the
 *     target's leaf, and the bundle of both: from phase servers on the
 *     servers accept either leaf).
 *   HANDOFF_CURRENT: the step rotation.yaml names.
 *   HANDOFF_TARGET: stable(target), the end of the rotation in progress
 *     (the same as current when none is).
 *
 * Who: NAME is a client of chain.yaml (its leaf and key), or an external
 * peer of hosts.yaml (the bundle of the side it trusts).  An external peer
 * gets the bundle only at the trust step, and at every step when it has
 * no leaf of ours.
 *
 * Secrets: the passphrase is borrowed and never stored or printed; it
 * must not be the repository's secret.  Keys are decrypted in memory and
 * wiped.  The output directory must not exist: everything is written to
 * a temporary directory beside it (mode 0700, keys 0600, the rest 0644,
 * each fsynced) that is renamed into place at the end, so a failure
 * leaves nothing behind.
 *
 * Errors: ROTOR_EINVALID (bad client name or passphrase; env problems in
 * d), ROTOR_ENOTFOUND (no such client), ROTOR_EEXISTS (the directory
 * exists), ROTOR_ESECRET (secret key file; a passphrase equal to it),
 * ROTOR_ESTATE (no chain yet), ROTOR_ENOMEM, ROTOR_ERROR (I/O).  Nothing
 * here prints.
 */
#ifndef ROTOR_HANDOFF_H
#define ROTOR_HANDOFF_H

#include <stddef.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "gitops/gitrepo.h"
#include "reconcile/engine/phase.h"
#include "reconcile/spec/diag.h"
#include "reconcile/spec/spec.h"

enum handoff_choice { HANDOFF_NEXT, HANDOFF_CURRENT, HANDOFF_TARGET };

struct handoff_opts {
	const char *env;
	const char *client;
	const char *out_dir;
	const char *ref;            /* NULL: HEAD */
	enum handoff_choice choice;
	const char *passphrase;     /* borrowed; the caller wipes it */
	int plain_key;              /* also write the key unencrypted (--plain-key) */
	time_t now;
};

#define HANDOFF_MAX_FILES 10

struct handoff_file {
	char name[32];
	char sha256[65];
	int mode;
};

struct handoff_result {
	char commit[41];
	enum phase_step step;
	int a, b;                   /* the rotation the step belongs to (b 0 when stable) */
	int generation;             /* the leaf's generation (0 when bundle only) */
	int bundle_only;
	int external;               /* NAME is an external peer */
	char leaf_fingerprint[100]; /* "" when bundle only */
	char leaf_not_after[32];
	struct handoff_file files[HANDOFF_MAX_FILES];
	size_t nfiles;
};

/* The step a choice means for rotation r (see above). */
enum phase_step handoff_pick_step(const struct rotation_spec *r, enum handoff_choice c);

/* Parse "next", "current" or "target"; -1 for anything else. */
int handoff_choice_parse(const char *s);

/*
 * The passphrase from a file (mode 0600 or stricter; one final newline
 * is dropped) into out, or ROTOR_EINVALID / ROTOR_ESECRET naming the
 * file, never its contents.  out must be released with buf_wipe().
 */
int handoff_read_passphrase(struct buf *out, const char *path, struct err *e);

int handoff_write(struct handoff_result *res, struct gitrepo *repo, const struct handoff_opts *o,
		  struct diags *d, struct err *e);

#endif
