/*
 * client.h -- adding and removing one client identity without a new
 * generation (rotor client add / remove / crl), each as ONE commit on a
 * new branch from HEAD for review, leaving the work tree, the index and
 * HEAD alone (as rotate.h).
 *
 * client_add() issues a client leaf (CN = the name) under the client CA
 * of the generation in service, and of the target generation when a
 * rotation is under way; commits clients/NAME.crt, clients/NAME.key
 * (encrypted with the repository secret), each manifest.yaml and
 * chain.yaml with the name appended to clients: on
 * rotor/client/<env>/add-NAME.
 *
 * client_remove() retires a client: its serial in each of those
 * generations goes on that generation's crl/client-ca.crl (signed by its
 * client CA, the earlier revocations kept), crl/root.crl is signed again
 * (PostgreSQL checks a CRL for every CA of a chain), its certificate and
 * key files and manifest entries are deleted, and chain.yaml loses the
 * name; on rotor/client/<env>/remove-NAME.  Refused: a name that is not
 * a client of chain.yaml, and a client a host role of hosts.yaml still
 * uses as its identity (change hosts.yaml and apply first).
 *
 * client_crl() signs every CRL of those generations again (nextUpdate
 * now + chain.yaml's validity.crl), keeping their revocations; on
 * rotor/client/<env>/crl-<unix time>.
 *
 * client_gen_crls() appends crl/root.crl and crl/client-ca.crl (empty)
 * for a generation just generated (rotate start), when it has CA keys.
 *
 * Ownership: struct client_result owns remote (client_result_release(),
 * also after a failure).  Secrets: the repository secret decrypts the CA
 * keys in memory only, and is wiped.
 *
 * Errors: an invalid name: ROTOR_EINVALID; the env does not load at
 * HEAD: ROTOR_EINVALID with the problems in d (HEAD detached,
 * uncommitted changes: ROTOR_ESTATE); an unknown client (remove):
 * ROTOR_ENOTFOUND; a client already there (add): ROTOR_EEXISTS; still
 * deployed, no generation yet, an imported generation (no CA key), the
 * branch exists: ROTOR_ESTATE; a wrong secret: ROTOR_ESECRET.  Every
 * refusal happens before anything is written; nothing here prints.
 */
#ifndef ROTOR_CLIENT_H
#define ROTOR_CLIENT_H

#include <stddef.h>
#include <time.h>

#include "common/err.h"
#include "gitops/gitrepo.h"
#include "reconcile/pki/pki.h"
#include "reconcile/spec/spec.h"

struct client_opts {
	const char *env;
	const char *name;           /* the client (NULL for client_crl) */
};

struct client_result {
	int gens[2];                /* the generations changed, in service first */
	size_t ngens;
	char serials[2][48];        /* remove: the serial revoked in each ("" when it had none) */
	int crl_days;               /* chain.yaml's validity.crl */
	char *remote;               /* rotor.yaml's git.remote, or NULL */
	char branch[160];
	char commit[41];
	char head_branch[256];
};

int client_add(struct client_result *res, struct gitrepo *repo, const struct client_opts *o, struct diags *d,
	       struct err *e);
int client_remove(struct client_result *res, struct gitrepo *repo, const struct client_opts *o, struct diags *d,
		  struct err *e);
int client_crl(struct client_result *res, struct gitrepo *repo, const struct client_opts *o, struct diags *d,
	       struct err *e);
void client_result_release(struct client_result *res);

int client_gen_crls(struct pki_file **files, size_t *nfiles, const struct pki_generation *g, int crl_days,
		    time_t now, struct err *e);

/* A client name is a certificate CN and a PostgreSQL user: the leaf-name rule. */
int client_name_ok(const char *name);

#endif
