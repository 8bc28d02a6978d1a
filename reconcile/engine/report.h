/*
 * report.h -- results as JSON documents: what `observe --json`, `plan
 * --json` and `drift --json` print and what apply commits on
 * rotor/status/<env> (observed.json).  The shapes are schemas/observe.json
 * and schemas/plan.json; tests parse every document back.
 *
 * Each function appends one document, ending in a newline, to out and
 * returns 0, or ROTOR_ENOMEM / ROTOR_ETOOBIG with out left holding a
 * partial document the caller must not use.
 */
#ifndef ROTOR_REPORT_H
#define ROTOR_REPORT_H

#include <stddef.h>

#include "common/buf.h"
#include "reconcile/engine/run.h"

/* The observed hosts of env st at commit. */
int observe_json(struct buf *out, const struct obs_host *h, size_t n, const struct state *st, const char *commit);

/* The plan of r; with dc (drift) also the drift counts. */
int plan_json(struct buf *out, const struct env_run *r, const struct drift_counts *dc);

#endif
