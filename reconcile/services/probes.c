/* probes.c -- the probe table (see probes.h). */
#include "reconcile/services/probes.h"

#include <string.h>

const struct probe_def probe_table[] = {
	/* PostgreSQL: SSLRequest, TLS, then a StartupMessage with the client certificate. */
	{ "postgres", probe_postgres, 1 },
	/* Any TLS service, TLS from the first byte. */
	{ "tls", probe_tls, 0 },
	/* An HTTPS service: TLS, then GET / and its status line (nginx: 400 when it refuses the client). */
	{ "https", probe_https, 1 },
};

const size_t probe_count = sizeof(probe_table) / sizeof(probe_table[0]);

const struct probe_def *probe_find(const char *name)
{
	size_t i;

	for (i = 0; name && i < probe_count; i++)
		if (strcmp(probe_table[i].name, name) == 0)
			return &probe_table[i];
	return NULL;
}
