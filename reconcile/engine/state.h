/*
 * state.h -- one env's desired state: rotor.yaml, envs/<env>/{chain,
 * hosts,rotation}.yaml and every generation, read from a commit or from
 * the work tree, validated file by file (spec) and then against each
 * other; the material (certificates, encrypted keys) the plan needs; the
 * secret key file; the SSH settings observe uses.
 *
 * Ownership: struct state owns everything in it (state_release());
 * struct state_src borrows the repository, which the caller keeps open.
 * Errors: problems with the files are diagnostics in the caller's struct
 * diags and the call returns ROTOR_EINVALID; failures to read (memory,
 * git) are other ROTOR_* codes with e set.  Nothing here prints.
 */
#ifndef ROTOR_STATE_H
#define ROTOR_STATE_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "gitops/gitrepo.h"
#include "reconcile/engine/observe.h"
#include "reconcile/engine/plan.h"
#include "reconcile/spec/spec.h"

struct state_src {
	struct gitrepo *repo;
	const char *commit;     /* commit id (points at commit_id), or NULL: read the work tree */
	char commit_id[41];
	char workdir[4096];     /* with trailing '/' */
};

/*
 * The source of state: the commit REV (default HEAD) of repo, or its
 * work tree when worktree is set.  ROTOR_ESTATE for a repository
 * without commits.
 */
int state_src_open(struct state_src *src, struct gitrepo *repo, const char *ref, int worktree, struct err *e);

/* Read a repository-relative file; ROTOR_ENOTFOUND when missing. */
int state_read(struct buf *out, const struct state_src *src, const char *path,
	       size_t max, struct err *e);
/* Names in a repository-relative directory, sorted; NULL-terminated. */
int state_list(char ***names, size_t *n, const struct state_src *src,
	       const char *dir, struct err *e);

struct gen_info {
	int number;
	struct manifest *manifest;  /* NULL when the manifest is missing/invalid */
	char commit[41];            /* past generations: the newest commit that holds it; "" otherwise */
};

struct ext_ca;  /* engine/trust.h */

struct state {
	char env[64];
	struct rotor_config *config;
	struct chain_spec *chain;
	struct hosts_spec *hosts;
	struct rotation_spec *rotation;
	struct gen_info *gens;      /* sorted by number */
	size_t ngens;
	struct gen_info *past;      /* generations committed earlier and no longer in the tree */
	size_t npast;               /* (state_load_past()), sorted by number */
	struct ext_ca *ext;         /* hosts.yaml's external CAs, read and checked (engine/trust.h) */
	size_t next;
};

/*
 * Load rotor.yaml and envs/<env>/{chain,hosts,rotation}.yaml and every
 * generation's manifest, validate them and check them against each
 * other.  Every problem goes to d; returns ROTOR_EINVALID when d holds
 * any, other codes (with e set) for failures to read.
 */
int state_load(struct state *st, const struct state_src *src, const char *env,
	       struct diags *d, struct err *e);
void state_release(struct state *st);

/*
 * The generations rotor committed for this env that the tree at src no
 * longer holds (a `git revert` of a rotate start, a rotate abandon):
 * every generation directory that envs/<env>/generations/ held in the
 * history of src's commit and that st->gens lacks, with its manifest
 * from the newest commit that holds it, into st->past.  They are only
 * recognised (observe, plan), never deployed: their keys are not read.
 * A past manifest that does not load or names another env or number is
 * skipped (nothing can be recognised by it).  Nothing for a work tree
 * source.  Errors: failures to read (git, memory).
 */
int state_load_past(struct state *st, const struct state_src *src, struct err *e);

/* Is generation number n in the tree (st->gens) or in its history (st->past)? */
int state_generation_used(const struct state *st, int n);

/*
 * For actions that commit on a new branch from HEAD: HEAD must be on a
 * branch (ROTOR_ESTATE naming `what` otherwise), rotor.yaml and
 * envs/<env>/ must have no uncommitted changes (ROTOR_ESTATE), and the
 * env must be valid at HEAD (ROTOR_EINVALID, problems in d, e says
 * which branch).  On failure st is released.
 */
int state_load_head(struct state *st, struct state_src *src, struct gitrepo_head *head,
		    struct gitrepo *repo, const char *env, const char *what, struct diags *d, struct err *e);

/*
 * Validate env, or every env under envs/ when env is NULL, at src: every
 * problem goes to d once (exact repeats are dropped: rotor.yaml is
 * checked once per env).  On success *envs holds the names of the envs
 * checked (NULL-terminated, gitrepo_names_free(); NULL when env was
 * given).  ROTOR_ENOTFOUND when there is no env at all; ROTOR_EINVALID
 * when d holds any problem; other codes for failures to read.
 */
int state_validate(char ***envs, size_t *nenvs, const struct state_src *src, const char *env,
		   struct diags *d, struct err *e);

/*
 * Is secret the repository's?  Its key id must equal rotor.yaml's and
 * the newest generated root key must decrypt with it (ROTOR_ESECRET).
 */
int state_check_secret(const struct state *st, const struct state_src *src, const char *secret,
		       const char *key_path, struct err *e);

/* Expand a leading "~/" with $HOME into out. */
int state_expand_path(char *out, size_t len, const char *p, struct err *e);

/* Resolve the secret key file path: $ROTOR_KEY_FILE, else the config's (with ~ expanded). */
int state_key_path(char *out, size_t outlen, const struct rotor_config *c, struct err *e);

/*
 * The certificates of every generation of st, read from src and checked
 * against their manifests (a file missing, or a certificate whose
 * fingerprint is not its manifest's, is ROTOR_EINVALID naming the file);
 * with_keys also reads the encrypted keys (apply, validate).  d NULL:
 * stop at the first problem; else every problem is a diagnostic on its
 * file and the result ROTOR_EINVALID after all were found.  Past
 * generations (st->past) follow, certificates only, read from their own
 * commits and marked past.  Released with material_release() (also after
 * a failure).
 */
int state_material(struct material_set *ms, const struct state_src *src, const struct state *st,
		   int with_keys, struct diags *d, struct err *e);

/* Paths observe_opts_from_state() expands; they must outlive the options. */
struct observe_paths {
	char identity[4096];
	char known_hosts[4096];
};
/* Observe options from rotor.yaml's ssh settings and parallel. */
int observe_opts_from_state(struct observe_opts *oo, const struct state *st, const struct known_set *known,
			    struct observe_paths *paths, struct err *e);

#endif
