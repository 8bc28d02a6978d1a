/*
 * report.h -- results as JSON documents: what `observe --json`, `plan
 * --json`, `drift --json` and `chain show --json` print and what apply commits on
 * rotor/status/<env> (observed.json).  The shapes are schemas/observe.json,
 * schemas/plan.json and schemas/chain-show.json; tests parse every
 * document back.  Built with jansson (common/json.h).
 *
 * Each function appends one document, ending in a newline, to out and
 * returns 0, or ROTOR_ENOMEM / ROTOR_ETOOBIG with out left holding a
 * partial document the caller must not use.
 */
#ifndef ROTOR_REPORT_H
#define ROTOR_REPORT_H

#include <stddef.h>

#include "common/buf.h"
#include "reconcile/engine/chain.h"
#include "reconcile/engine/run.h"

/* The observed hosts of env st at commit. */
int observe_json(struct buf *out, const struct obs_host *h, size_t n, const struct state *st, const char *commit);

/* The plan of r; with dc (drift) also the drift counts. */
int plan_json(struct buf *out, const struct env_run *r, const struct drift_counts *dc);

/* Every generation of v, as schemas/chain-show.json describes (`chain show --json`). */
int chain_json(struct buf *out, const struct chain_view *v);

#endif
