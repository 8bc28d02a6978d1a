/*
 * names.h -- the name rules shared by the git side and the YAML side.
 *
 * An environment name is a path component of envs/<env>/, a part of git
 * ref names (rotor/status/<env>, refs/rotor/lock/<env>) and of branch
 * names, so both gitops/ and reconcile/ check it; the rule lives here once.
 */
#ifndef ROTOR_NAMES_H
#define ROTOR_NAMES_H

/* 1 when s matches ^[a-z0-9][a-z0-9_-]{0,31}$, else 0 (NULL included). */
int env_name_valid(const char *s);

#endif
