/*
 * init.h -- scaffold rotor.yaml and one env in a repository's work tree,
 * and create the secret key file outside the repository.
 *
 * The files are templates whose comments explain every setting (they
 * live in init.c as data).  Nothing that exists is overwritten: every
 * target is checked first, then created with O_EXCL; if anything fails
 * half-way, what this run created (files, directories, the key file) is
 * removed again.  Nothing is committed and nothing here prints.
 *
 * Ownership: everything in struct init_result is inline; the repository
 * is borrowed.  Secrets: the new key is read back only to compute its
 * key id, then wiped.
 *
 * Errors: an invalid env name, a relative --key-file, a key file inside
 * the work tree, --key-file with an existing rotor.yaml: ROTOR_EINVALID;
 * envs/<env> or the key file exists: ROTOR_EEXISTS; no $HOME for the
 * default key path: ROTOR_ESECRET; failures to create or write:
 * ROTOR_ERROR naming the path.  On any error the work tree is as before.
 */
#ifndef ROTOR_INIT_H
#define ROTOR_INIT_H

#include "common/err.h"
#include "gitops/gitrepo.h"

struct init_opts {
	const char *env;            /* the env to scaffold */
	/*
	 * Where to create the key file when rotor.yaml does not exist yet
	 * (absolute); NULL: $ROTOR_KEY_FILE, else
	 * ~/.config/rotor/keys/<work tree directory name>.key.
	 */
	const char *key_file;
};

struct init_result {
	int created_config;         /* rotor.yaml and the key file were created */
	char key_path[4096];        /* the key file created, when created_config */
	char key_id[17];            /* its key id, when created_config */
};

int init_scaffold(struct init_result *res, struct gitrepo *repo, const struct init_opts *o, struct err *e);

#endif
