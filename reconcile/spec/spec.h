/*
 * spec.h -- the state repository's YAML files, validated and decoded.
 *
 * Input is bytes plus the path to report (the caller reads them from a
 * commit or the work tree; spec never touches git or the file system).
 * Every loader:
 *   - refuses input over SPEC_MAX_BYTES (1 MiB), nesting deeper than
 *     SPEC_MAX_DEPTH (64), aliases and anchors, tags, directives,
 *     duplicate keys, keys that are not strings, merge keys (<<), more
 *     than one document, unknown keys, wrong types, out-of-range values
 *     and malformed names, SANs, paths, durations (the parsing rules are
 *     in yamldoc.h, which holds the safe YAML loader);
 *   - reports EVERY problem it finds into a struct diags, each with the
 *     path, 1-based line and column, and a message that starts with the
 *     location inside the file ("ssh.port: 70000 is out of range (1 to
 *     65535)"); one file's problems are sorted by position, and at most
 *     100 are kept (then one "N more problems not shown", at line 0);
 *     then returns ROTOR_EINVALID (ROTOR_ETOOBIG for the size and nesting
 *     caps, ROTOR_ENOMEM when memory ran out) without filling *out.
 *   - on success returns 0 and *out is a newly allocated struct the
 *     caller frees with the matching *_free (which accepts NULL).
 *   - out may be NULL (only validate), and d may be NULL (only the code).
 * An empty file is an empty document: the required keys are missing.
 *
 * Scalars are typed as PyYAML's SafeLoader types them (YAML 1.1): plain
 * null/~/empty is null, plain true/false/yes/no/on/off (any of the three
 * casings) is a boolean, plain 42, 0600 (octal), 0x1F, 0b101, 1_000 and
 * 1:30 (base 60) are integers, 1.5 is a float, 2026-01-31 a date; quoted
 * and block scalars are always strings.  The files in schemas/ (one JSON
 * Schema per file kind) describe the same rules for a standard JSON
 * Schema validator; tests/schema/agree.py checks they agree on every
 * fixture.  The few rules only C checks (comparing two values, or how a
 * number was written) are named in each schema's description.
 */
#ifndef ROTOR_SPEC_H
#define ROTOR_SPEC_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/names.h"
#include "reconcile/services/layout.h"
#include "reconcile/services/probes.h"
#include "reconcile/spec/diag.h"

/* ---- rotor.yaml ---- */

struct rotor_config {
	int version;            /* must be 1 */
	char *key_file;         /* secrets.key_file, as written (may start with "~/") */
	char *key_id;           /* secrets.key_id: 16 hex digits, or NULL */
	char *git_remote;       /* default "origin" */
	char *git_main;         /* default "main" */
	char *ssh_user;         /* NULL: the local user name */
	int ssh_become_sudo;    /* ssh.become: sudo -> 1, none -> 0 */
	char *ssh_identity;     /* NULL: use ssh-agent */
	char *ssh_known_hosts;  /* default "~/.ssh/known_hosts" */
	int ssh_port;           /* default 22 */
	int ssh_connect_timeout_s; /* default 10 */
	int parallel;           /* 1..1024, default 32 */
};

int spec_load_config(struct rotor_config **out, const char *path,
		     const char *data, size_t len, struct diags *d);
void spec_config_free(struct rotor_config *c);

/* ---- envs/E/chain.yaml ---- */

enum spec_key_type {
	SPEC_KEY_EC_P256,
	SPEC_KEY_EC_P384,
	SPEC_KEY_RSA_2048,
	SPEC_KEY_RSA_3072,
	SPEC_KEY_RSA_4096,
	SPEC_KEY_ED25519
};

struct chain_server {
	char *name;         /* the map key: also the CN and the first DNS SAN */
	char **sans;        /* DNS names and IP addresses as written */
	size_t nsans;
	int eku_server;     /* extendedKeyUsage serverAuth (default 1) */
	int eku_client;     /* extendedKeyUsage clientAuth (default 0; for cockroach nodes) */
};

struct chain_spec {
	/* subject: every field optional except O; NULL when absent */
	char *subj_c, *subj_st, *subj_l, *subj_o, *subj_ou;
	enum spec_key_type key;
	int root_days;          /* validity.root, default 3650 */
	int intermediate_days;  /* validity.intermediate, default 1825 */
	int leaf_days;          /* validity.leaf, default 397 */
	int renew_before_days;  /* default 30 */
	int crl_days;           /* validity.crl: a CRL's nextUpdate after it is signed, default 180 */
	struct chain_server *servers;
	size_t nservers;
	char **clients;         /* database user names, the client leaves' CN */
	size_t nclients;
};

int spec_load_chain(struct chain_spec **out, const char *path,
		    const char *data, size_t len, struct diags *d);
void spec_chain_free(struct chain_spec *c);

/*
 * chain.yaml's text (path for messages) with client `add` appended to
 * its clients: list, or client `remove` taken out of it (exactly one of
 * the two), everything else as written; the last client removed leaves
 * `clients: []`.  The result is loaded again and must differ by that
 * client only; a list written in a way this cannot edit is
 * ROTOR_EINVALID ("edit it by hand").  out is empty after a failure.
 */
int spec_chain_edit_clients(struct buf *out, const char *path, const char *data, size_t len, const char *add,
			    const char *remove, struct err *e);

/* ---- envs/E/hosts.yaml ---- */

enum spec_role { SPEC_ROLE_SERVER, SPEC_ROLE_CLIENT };

struct host_file {
	char *path;            /* absolute, normalised, no "..", no control chars */
	enum spec_content content;
	char *owner, *group;   /* NULL: leave as is */
	int mode;              /* -1: default (0600 for keys, 0644 otherwise) */
};

struct host_role {
	enum spec_role role;
	const struct layout_def *layout; /* the layout table's entry ("files" for an explicit set) */
	char *dir;             /* server layouts: directory of the files */
	char *owner, *group;
	char *user, *home;     /* client layouts */
	char *identity;        /* the leaf this role uses: server name (default: the
	                        * host's name) or client user (required) */
	char *reload;          /* shell command, or NULL */
	const struct probe_def *probe; /* the probe table's entry, or NULL (clients; `probe: none`) */
	int probe_port;        /* 0 when no probe */
	int probe_none;        /* a server role that says `probe: none`: nothing checks its
	                        * service after a reload (every server role has a probe or this) */
	struct host_file *files; /* explicit files (layout "files") */
	size_t nfiles;
	/*
	 * Switch mode (`switch:`; layouts with a switch_subdir only): NULL
	 * service when off.  Paths are complete (defaults filled from home and
	 * the layout) and inside home.
	 */
	char *service;         /* the libpq service name, section [service] */
	char *service_file;    /* the connection service file rotor renames */
	char *switch_dir;      /* the base directory of the per-generation directories */
	int adopt;             /* 1: replace a service file rotor did not write */
};

struct host_spec {
	char *name;
	char *address;         /* IP address or DNS name */
	int port;              /* 0: rotor.yaml's ssh.port */
	char *user;            /* NULL: rotor.yaml's ssh.user */
	struct host_role *roles;
	size_t nroles;
};

struct external_peer {
	char *name;
	int trusts_server;     /* trusts: server (it is a client of our servers) */
	int trusts_client;     /* trusts: client (it is a server our clients use) */
	int trusts_target;     /* a human confirmed its bundle holds the target generation */
};

/*
 * A CA certificate the env does not own (`external_cas:`): a provider's
 * root (AWS RDS, Azure), committed as envs/<env>/<file>, added to the
 * trust bundles it names at every step.  The file's contents are checked
 * by the engine (engine/trust.c), which reports at line and column.
 */
#define SPEC_MAX_EXTERNAL_CAS 16
struct external_ca {
	char *file;            /* relative to envs/<env>/: trust/NAME.pem or trust/NAME.crt */
	unsigned sides;        /* the bundles that hold it, by the side they verify:
	                        * `client` (client roles' bundles) is 1u << LAYOUT_SIDE_SERVER,
	                        * `server` (server roles' bundles) is 1u << LAYOUT_SIDE_CLIENT */
	int retired;           /* listed, but in no bundle */
	int line, column;      /* of `file:`, for messages about the file's contents */
};

/* A server rotor does not manage whose chain our clients must verify (`external_servers:`). */
struct external_server {
	char *name;
	char *address;         /* IP address or DNS name, also the name checked in its SAN */
	int port;
	const struct probe_def *probe; /* the probe table's entry */
};

struct hosts_spec {
	struct host_spec *hosts;
	size_t nhosts;
	struct external_peer *external;
	size_t nexternal;
	struct external_ca *external_cas;
	size_t nexternal_cas;
	struct external_server *external_servers;
	size_t nexternal_servers;
};

/*
 * Besides the per-key rules: two hosts may share an address (DNS names
 * compared without case, IP addresses by value: 10.0.0.1 is
 * ::ffff:10.0.0.1) only when both write `port:` and the ports differ;
 * a server identity belongs to one host (several roles of that host may
 * use it); client identities may be shared.
 */
/* Is s (n bytes) a service name switch mode accepts: 1 to 63 of [A-Za-z0-9_.-], first a letter or digit? */
int spec_service_name_ok(const char *s, size_t n);

int spec_load_hosts(struct hosts_spec **out, const char *path,
		    const char *data, size_t len, struct diags *d);
void spec_hosts_free(struct hosts_spec *h);

/* ---- envs/E/rotation.yaml ---- */

enum spec_phase { SPEC_PHASE_STABLE, SPEC_PHASE_TRUST, SPEC_PHASE_SERVERS, SPEC_PHASE_CLIENTS };

struct rotation_spec {
	int generation;         /* generation in service; 0 = none yet */
	int target;             /* generation being rolled in; 0 = none (phase stable) */
	enum spec_phase phase;
};

int spec_load_rotation(struct rotation_spec **out, const char *path,
		       const char *data, size_t len, struct diags *d);
void spec_rotation_free(struct rotation_spec *r);
const char *spec_phase_name(enum spec_phase p);
/* Deterministic rotation.yaml text (with a comment header). */
int spec_rotation_emit(const struct rotation_spec *r, struct buf *out);

/* ---- envs/E/generations/NNNN/manifest.yaml ---- */

enum cert_role {
	CERT_ROLE_ROOT,
	CERT_ROLE_SERVER_CA,
	CERT_ROLE_CLIENT_CA,
	CERT_ROLE_SERVER,
	CERT_ROLE_CLIENT
};

struct manifest_cert {
	char *name;         /* "root", "server-ca", "client-ca", server name, client user */
	enum cert_role role;
	char *cert;         /* file name relative to the generation dir, e.g. "servers/pg1.crt" */
	char *key;          /* "servers/pg1.key", or NULL when imported */
	char *subject;      /* RFC 2253 one-line form */
	char *issuer;
	char *fingerprint;  /* SHA-256 of the DER, uppercase hex with colons (as openssl prints) */
	char *serial;       /* lowercase hex, no colons */
	char *ski;          /* uppercase hex with colons */
	char *aki;          /* uppercase hex with colons; NULL for a root without AKI */
	char *not_before;   /* RFC 3339 UTC, "2026-11-23T11:45:00Z" */
	char *not_after;
};

struct manifest {
	int version;        /* 1 */
	char *env;
	int generation;
	int imported;
	char *created;      /* RFC 3339 UTC */
	struct manifest_cert *certs;
	size_t ncerts;
};

int spec_load_manifest(struct manifest **out, const char *path,
		       const char *data, size_t len, struct diags *d);
void spec_manifest_free(struct manifest *m);
/* Free every string of one certificate entry and zero it (NULL is fine). */
void spec_manifest_cert_release(struct manifest_cert *c);
/* Deterministic manifest.yaml text; fails with ROTOR_EINVALID on a field
 * that could not round-trip (never emits unquoted user text). */
int spec_manifest_emit(const struct manifest *m, struct buf *out, struct err *e);
const char *spec_cert_role_name(enum cert_role r);

/* Name rules shared with the schemas. */
int spec_valid_leaf_name(const char *s);  /* ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$ */

#endif
