/* phase.c -- the steps of a rotation (see phase.h). */
#include "reconcile/engine/phase.h"

const char *phase_step_name(enum phase_step s)
{
	static const char *const names[] = { "stable", "trust", "servers", "clients", "stable(target)" };

	return s < NSTEPS ? names[s] : "?";
}

enum phase_step phase_step_of(enum spec_phase p)
{
	switch (p) {
	case SPEC_PHASE_TRUST: return STEP_TRUST;
	case SPEC_PHASE_SERVERS: return STEP_SERVERS;
	case SPEC_PHASE_CLIENTS: return STEP_CLIENTS;
	case SPEC_PHASE_STABLE: break;
	}
	return STEP_STABLE_A;
}

struct step_gens phase_step_gens(enum phase_step s, int a, int b)
{
	struct step_gens g = { { b, a }, a, a };

	switch (s) {
	case STEP_STABLE_A:
		g.bundle[0] = a;
		g.bundle[1] = 0;
		break;
	case STEP_TRUST:
		break;
	case STEP_SERVERS:
		g.server_leaf = b;
		break;
	case STEP_CLIENTS:
		g.server_leaf = g.client_leaf = b;
		break;
	default:
		g.bundle[0] = b;
		g.bundle[1] = 0;
		g.server_leaf = g.client_leaf = b;
		break;
	}
	return g;
}

int phase_back(struct rotation_spec *to, const struct rotation_spec *from, int prev)
{
	*to = *from;
	switch (from->phase) {
	case SPEC_PHASE_CLIENTS:
		to->phase = SPEC_PHASE_SERVERS;
		return from->target > 0 ? 0 : -1;
	case SPEC_PHASE_SERVERS:
		to->phase = SPEC_PHASE_TRUST;
		return from->target > 0 ? 0 : -1;
	case SPEC_PHASE_TRUST:
		to->phase = SPEC_PHASE_STABLE;
		to->target = 0;
		return from->target > 0 && from->generation > 0 ? 0 : -1;
	case SPEC_PHASE_STABLE:
		break;
	}
	if (from->generation <= 0 || prev <= 0 || prev == from->generation)
		return -1;
	to->phase = SPEC_PHASE_CLIENTS;
	to->target = from->generation;
	to->generation = prev;
	return 0;
}
