/*
 * savedplan.h -- a plan saved by `rotor plan --out FILE` and applied by
 * `rotor apply FILE` (schemas/saved-plan.json).
 *
 * The file records the desired commit and where it was read, what every
 * host held when the plan was made (the SHA-256 of each managed file's
 * bytes, or that it was absent), what every probed server presented (the
 * leaf's SHA-256 fingerprint), and the steps.  It holds no secret: only
 * hashes and public fingerprints; it is still written with mode 0600,
 * through a temporary file renamed into place.
 *
 * Applying it is strict, as Terraform's saved plans: the desired commit
 * read now must be the recorded one, and every host must hold and
 * present exactly what the plan saw; anything else is "Saved plan is
 * stale", naming the commit or the host and file.
 *
 * Ownership: struct saved_plan owns everything in it
 * (savedplan_release()).  Errors: ROTOR_EINVALID for a malformed file
 * (one line, "FILE: what is wrong"; never a crash, whatever the bytes),
 * ROTOR_ESTATE for a stale plan, ROTOR_ERROR for I/O, ROTOR_ENOMEM.
 */
#ifndef ROTOR_SAVEDPLAN_H
#define ROTOR_SAVEDPLAN_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"
#include "reconcile/engine/origin.h"
#include "reconcile/engine/run.h"

#define SAVEDPLAN_VERSION 1
/* The largest saved plan read. */
#define SAVEDPLAN_MAX ((size_t)32 << 20)

struct saved_file {
	char *path;
	int present;
	char sha256[65];            /* "" when absent or not read */
};

struct saved_served {
	int port;
	char leaf[PROBE_FP_LEN];    /* "" when the service presented none */
};

struct saved_host {
	char *name, *address;
	int reachable;
	struct saved_file *files;
	size_t nfiles;
	struct saved_served *served;
	size_t nserved;
};

struct saved_plan {
	char env[64];
	char commit[41];
	char from_ref[1100];        /* desired_from.ref, "" when null */
	char from_how[16];
	int replace_unknown;        /* planned with --replace-unknown */
	int probed;                 /* the servers were probed (not --no-probe) */
	struct saved_host *hosts;
	size_t nhosts;
	json_t *steps;              /* as plan --json's "steps" */
};

/* The saved plan of r (planned with replace_unknown) as a JSON document. */
int savedplan_json(struct buf *out, const struct env_run *r, int replace_unknown);
/*
 * Write doc to path: a temporary file next to it (mode 0600, fsynced),
 * renamed over path.  ROTOR_ERROR naming path when that fails.
 */
int savedplan_write(const char *path, const struct buf *doc, struct err *e);
/* Parse a saved plan; what is wrong goes in e's message, without a file name. */
int savedplan_parse(struct saved_plan *sp, const char *text, size_t len, struct err *e);
/* Read and parse path; every message begins "PATH: ". */
int savedplan_read(struct saved_plan *sp, const char *path, struct err *e);
void savedplan_release(struct saved_plan *sp);

/* Is want (the desired commit read now) the one the plan was made at?  Else ROTOR_ESTATE. */
int savedplan_check_commit(const struct saved_plan *sp, const struct desired *want, struct err *e);
/*
 * Does r (observed and planned again, at the recorded commit) hold what
 * the plan saw, and give the same steps?  Else ROTOR_ESTATE naming the
 * first difference (host and file, host and port, or the steps).
 */
int savedplan_check_run(const struct saved_plan *sp, const struct env_run *r, struct err *e);

#endif
