/*
 * plan.h -- from the desired phase in git and the observed live state:
 * the path of steps, what each step changes on which host and file, the
 * gates, and the safety invariant.
 *
 * Inputs are borrowed: the hosts spec, the observed hosts (observe.h),
 * and the material of every generation (certificate PEMs and, only for
 * apply, encrypted keys).  Nothing here does I/O; secrets are touched
 * only by plan_file_bytes() for key files and PKCS#12 files (which hold a key).
 * plan_key_on_host() names the one case where apply takes a key from the
 * host instead (switch mode, a leaf that stays, no key in the repository).
 *
 * The invariant (DESIGN.md §3): while a step moves hosts from state s to
 * state t, any client may be in s or t and any server in s or t; for
 * every such pair of a client (managed, or an external peer that trusts
 * our servers) and a server, the client's bundle must verify the
 * server's leaf chain (serverAuth, the server's address in its SAN) and
 * the server's bundle the client's leaf chain (clientAuth), with real
 * OpenSSL verification (verify.h).
 *
 * Ownership: plan_build() fills a struct plan the caller releases with
 * plan_release().  Errors: ROTOR_ENOMEM; ROTOR_EINVALID when material
 * the plan needs is missing from the repository (named in the message).
 * An unsafe or unreachable desired state is not an error: the plan says
 * so (refused, with reasons).
 */
#ifndef ROTOR_PLAN_H
#define ROTOR_PLAN_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "reconcile/engine/observe.h"
#include "reconcile/engine/phase.h"
#include "reconcile/spec/spec.h"

struct material_cert {
	char *name;
	enum cert_role role;
	char *pem;              /* the certificate, PEM, ending in a newline */
	char *fingerprint;
	char *key_pem;          /* encrypted PKCS#8 from the repository; NULL if imported or not loaded */
	unsigned ext_sides;     /* an external CA (engine/trust.h): the bundles that hold it; 0 for ours */
};

struct material {
	int generation;
	int imported;
	int past;               /* no longer in the tree, known from history: certificates only */
	struct material_cert *certs;
	size_t ncerts;
	char *crl_pem;          /* crl/root.crl then crl/client-ca.crl, or NULL when the generation has none */
};

struct material_set {
	struct material *v;
	size_t n;
	struct material_cert *ext; /* external CAs in bundles, newest first, after the generations' */
	size_t next;
};

const struct material_cert *material_find(const struct material_set *ms, int gen, enum cert_role role,
					  const char *name);
void material_release(struct material_set *ms);

enum plan_action { PLAN_KEEP, PLAN_CREATE, PLAN_CHANGE };

struct plan_change {
	size_t host;            /* index in the observed hosts */
	size_t file;            /* index in that host's files */
	enum plan_action action;
	char *from, *to;        /* what the file holds before and after, in words */
	int mode;               /* the mode to set */
};

struct plan_step {
	enum phase_step from, to;
	int a, b;               /* the rotation the steps belong to */
	struct plan_change *changes;
	size_t nchanges;
	char **broken;          /* pairs that would break during this step */
	size_t nbroken;
	char **gates;           /* gates that do not hold (external peers not ready) */
	size_t ngates;
};

struct plan {
	int a, b;               /* the rotation pair the live and desired states were placed on */
	int live_known;         /* every host reachable and on one rotation line */
	enum phase_step live;   /* the step every host fits (the lower one when partial) */
	int partial;            /* some hosts are already one step further */
	enum phase_step desired;
	struct plan_step *steps;
	size_t nsteps;
	char **problems;        /* why no plan: unreachable hosts, drift off the line, refusals */
	size_t nproblems;
	int refused;            /* the desired state is unsafe to reach (steps hold the broken pairs) */
	char **notes;           /* servers with probe: none; hosts treated as empty under replace_unknown */
	size_t nnotes;
	size_t nchanges;        /* all steps */
	size_t nhosts_changed;
};

struct plan_opts {
	const struct hosts_spec *hosts;
	const struct obs_host *observed;   /* one per host, same order */
	size_t nobserved;
	const struct known_set *known;
	const struct material_set *material;
	const struct rotation_spec *rotation;
	int no_path;            /* jump straight to the desired step (checked, usually refused) */
	int replace_unknown;    /* hosts holding no known certificate at all count as empty */
	time_t now;
};

int plan_build(struct plan *p, const struct plan_opts *o, struct err *e);

/*
 * The trust bundle that verifies side's certificates at step s of a -> b
 * (LAYOUT_SIDE_SERVER: what client roles hold), external CAs included.
 */
int plan_bundle_bytes(struct buf *out, const struct material_set *ms, enum layout_side side, enum phase_step s,
		      int a, int b, struct err *e);

/* Add a note to p, or a broken pair to step st (which refuses the plan).  ROTOR_ENOMEM only. */
int plan_add_note(struct plan *p, const char *fmt, ...) ROTOR_PRINTF(2, 3);
int plan_add_broken(struct plan *p, struct plan_step *st, const char *fmt, ...) ROTOR_PRINTF(3, 4);
void plan_release(struct plan *p);

/*
 * The exact bytes a managed file must hold at step s of rotation a -> b.
 * Key files need the passphrase (the encrypted key is decrypted into out,
 * which the caller must buf_wipe()); other files ignore it.
 */
int plan_file_bytes(struct buf *out, const struct material_set *ms, const struct obs_file *f,
		    const char *identity, enum phase_step s, int a, int b, const char *passphrase, struct err *e);

/*
 * 1 when the key file f must hold at step s is of a generation the
 * repository has no key for (known from history, or imported) and the
 * host's f already holds it: observe found it the key of leaf_file, which
 * is the step's leaf.  Switch mode then carries the host's key over into
 * its new directory (a bundle change while the leaf stays); else 0.
 */
int plan_key_on_host(const struct material_set *ms, const struct obs_file *f, const struct obs_file *leaf_file,
		     const char *identity, enum phase_step s, int a, int b);

#endif
