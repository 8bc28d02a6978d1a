/*
 * probes.h -- the probes: one table entry per kind of live check a
 * server role can name in hosts.yaml (`probe: {type: NAME, port: N}`),
 * an extension point like the layouts (layout.h).  `probe: none` is not
 * an entry: it is how a server role says that nothing checks it.
 *
 * An entry names the check and the function that runs it (tls/probe.h),
 * and whether that check can also prove that the server accepts a
 * client certificate.  Validation (spec_hosts.c), apply's probe after a
 * reload and its stale-service check dispatch through this table only;
 * a unit test checks that schemas/hosts.json names the same types.
 *
 * Pure data; the functions' errors are tls/probe.h's.
 */
#ifndef ROTOR_PROBES_H
#define ROTOR_PROBES_H

#include <stddef.h>

#include "common/err.h"
#include "reconcile/tls/probe.h"

struct probe_def {
	const char *name;            /* as hosts.yaml writes it */
	int (*run)(struct probe_result *out, const struct probe_req *req, struct err *e);
	int checks_client;           /* 1: client_accepted is an answer (not always -1) */
};

extern const struct probe_def probe_table[];
extern const size_t probe_count;

/* The entry named name, or NULL. */
const struct probe_def *probe_find(const char *name);

#endif
