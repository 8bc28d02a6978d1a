/*
 * phase.h -- the steps of a rotation and what each one deploys.
 *
 * A rotation from generation A to B is a line of five steps; moving one
 * step forward or back is always safe (DESIGN.md §3):
 *
 *   step            bundles   server leaves   client leaves
 *   stable(A)       A         A               A
 *   trust           B+A       A               A
 *   servers         B+A       B               A
 *   clients         B+A       B               B
 *   stable(B)       B         B               B
 *
 * Bundles list the newest generation first.  Pure; no errors.
 */
#ifndef ROTOR_PHASE_H
#define ROTOR_PHASE_H

#include "reconcile/spec/spec.h"

enum phase_step {
	STEP_STABLE_A,
	STEP_TRUST,
	STEP_SERVERS,
	STEP_CLIENTS,
	STEP_STABLE_B,
	NSTEPS
};

/* "stable", "trust", "servers", "clients", "stable(target)". */
const char *phase_step_name(enum phase_step s);

/* The step rotation.yaml's phase names (stable is stable(A)). */
enum phase_step phase_step_of(enum spec_phase p);

struct step_gens {
	int bundle[2];          /* generations in trust bundles, newest first; 0 = unused slot */
	int server_leaf;
	int client_leaf;
};

/* What step s of the rotation a -> b deploys. */
struct step_gens phase_step_gens(enum phase_step s, int a, int b);

/*
 * One phase back, as `rotor rollback` commits it: the revert of the last
 * phase change of rotation.yaml.
 *
 *   clients(A->B)   -> servers(A->B)
 *   servers(A->B)   -> trust(A->B)
 *   trust(A->B)     -> stable(A): the target is removed, generation A is
 *                      in service again (B stays committed, unused; rotor
 *                      rotate abandon also takes it out of the tree)
 *   stable(B)       -> clients(prev->B), prev the generation the rotation
 *                      to B started from (from history); prev 0: B was
 *                      never rotated to (a first chain, an import)
 *
 * Returns 0 with *to filled, or -1 when there is nothing to roll back
 * (stable with prev 0, or no generation at all).
 */
int phase_back(struct rotation_spec *to, const struct rotation_spec *from, int prev);

#endif
