/*
 * chainspec.h -- a chain spec filled in one place, for the unit tests and
 * the chain benchmark (tests/bench/chain/pkibench.c): no cmocka needed.
 * Every function is static inline.
 *
 *   chainspec_server(s, name, sans, nsans, eku_client)
 *       one server leaf: serverAuth, clientAuth too when eku_client
 *   chainspec_init(spec, o, servers, nservers, clients, nclients)
 *       subject O=o only, and rotor's defaults: EC P-256, root 3650 days,
 *       intermediates 1825, leaves 397, renewed 30 days before the end;
 *       a caller changes what its case needs afterwards
 */
#ifndef ROTOR_TEST_CHAINSPEC_H
#define ROTOR_TEST_CHAINSPEC_H

#include <string.h>

#include "reconcile/spec/spec.h"

static inline void chainspec_server(struct chain_server *s, char *name, char **sans, size_t nsans, int eku_client)
{
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->sans = sans;
	s->nsans = nsans;
	s->eku_server = 1;
	s->eku_client = eku_client;
}

static inline void chainspec_init(struct chain_spec *spec, char *o, struct chain_server *servers, size_t nservers,
				  char **clients, size_t nclients)
{
	memset(spec, 0, sizeof(*spec));
	spec->subj_o = o;
	spec->key = SPEC_KEY_EC_P256;
	spec->root_days = 3650;
	spec->intermediate_days = 1825;
	spec->leaf_days = 397;
	spec->renew_before_days = 30;
	spec->servers = servers;
	spec->nservers = nservers;
	spec->clients = clients;
	spec->nclients = nclients;
}

#endif
