/*
 * observe.h -- what is really deployed: the live contents of managed
 * files, classified against the generations in the repository.
 *
 * This part is pure: it gets file bytes (read over SSH by the caller)
 * and never does I/O.  Certificates are matched by SHA-256 fingerprint
 * against every generation's manifest (a struct known_set); anything
 * else is "unknown" and described by subject, issuer and fingerprint.
 *
 * Ownership: struct obs_file owns every string and array in it
 * (obs_file_release()); a known_set owns its entries (known_release()).
 * Private key bytes given to observe_key_match() are never copied and
 * never appear in a message.
 *
 * Errors: ROTOR_ENOMEM only; everything wrong with a file's contents is
 * a finding recorded in the struct (problem, key state), not an error.
 */
#ifndef ROTOR_OBSERVE_H
#define ROTOR_OBSERVE_H

#include <stddef.h>
#include <time.h>

#include "common/err.h"
#include "reconcile/engine/files.h"
#include "reconcile/engine/phase.h"
#include "reconcile/spec/spec.h"

/* The generation of an external CA's certificate (engine/trust.h): known, in no generation. */
#define OBS_GEN_EXTERNAL (-1)

struct known_cert {
	char fingerprint[96];
	int generation;
	enum cert_role role;
	char name[64];
	/*
	 * The manifest's description (known_add_manifest(); NULL otherwise):
	 * a block whose SHA-256 is this fingerprint is described from here,
	 * not parsed.  plan and apply refuse a manifest whose description
	 * differs from its certificate file (state_material()).
	 */
	char *subject, *issuer, *not_after;
};

struct known_set {
	struct known_cert *v;
	size_t n, cap;
	size_t *index;   /* known_index(): v[0..nindex) ordered by fingerprint, then position */
	size_t nindex;
};
#define KNOWN_SET_INIT { NULL, 0, 0, NULL, 0 }

/* A new zeroed entry at the end of k; NULL when memory ran out. */
struct known_cert *known_push(struct known_set *k);
int known_add_manifest(struct known_set *k, const struct manifest *m, struct err *e);
/*
 * The first entry (in the order they were pushed) with this fingerprint;
 * NULL when none.  A binary search over what known_index() ordered, then
 * a look at the entries pushed since: every host's every certificate is
 * looked up here, so a linear scan grew with fleet times generations.
 */
const struct known_cert *known_find(const struct known_set *k, const char *fingerprint);
/* Order the entries pushed so far for known_find(); 0 or ROTOR_ENOMEM (e set). */
int known_index(struct known_set *k, struct err *e);
void known_release(struct known_set *k);

struct obs_cert {
	char *fingerprint;    /* uppercase hex with colons */
	char *subject, *issuer;
	char *not_after;      /* RFC 3339 */
	long long days_left;  /* negative once expired */
	int generation;       /* 0: unknown certificate; OBS_GEN_EXTERNAL: an external CA */
	enum cert_role role;  /* meaningful when generation > 0 */
	char *name;           /* the manifest's name, when known */
	char *pem;            /* the certificate's PEM block as read, with a final newline */
};

enum obs_key {
	OBS_KEY_NA,         /* not a key file, or not looked at */
	OBS_KEY_MATCH,      /* the key belongs to the role's leaf certificate */
	OBS_KEY_MISMATCH,   /* a valid key, but not the leaf's */
	OBS_KEY_INVALID,    /* not a readable unencrypted private key */
	OBS_KEY_NO_LEAF     /* no leaf certificate to compare with */
};

struct obs_file {
	char *path;
	enum spec_content content;
	enum layout_side side;
	int present;
	char *problem;        /* why the contents could not be used; NULL when fine */
	unsigned long long size;
	char sha256[65];      /* SHA-256 of the bytes read, lowercase hex; "" when not read */
	int mode;             /* permission bits; -1 unknown */
	long uid, gid;        /* -1 unknown */
	struct obs_cert *certs;
	size_t ncerts;
	enum obs_key key;
	enum layout_form form; /* the form the layout writes the file in (managed_file.form) */
	int want_mode;        /* the mode the layout or hosts.yaml gives it (managed_file.mode); 0: the default */
	size_t ncrls;         /* crl: the CRLs it holds */
	time_t crl_next_update; /* crl: the earliest nextUpdate of them */
};

/*
 * Fill f->certs from the PEM certificates in data.  A file with no
 * certificate, an unparsable certificate block, or a private key in a
 * certificate file is recorded in f->problem.
 */
int observe_parse_certs(struct obs_file *f, const char *data, size_t len,
			const struct known_set *k, time_t now, struct err *e);

/*
 * A crl file: its SHA-256, how many PEM CRLs it holds and their earliest
 * nextUpdate; anything that is not one or more CRLs is recorded in
 * f->problem.  ROTOR_ENOMEM only.
 */
int observe_parse_crls(struct obs_file *f, const char *data, size_t len, struct err *e);

/*
 * A key file in the form its layout does not use (PEM where pgJDBC needs
 * DER, or DER where libpq and the servers read PEM) is recorded in
 * f->problem, so the plan rewrites it.  ROTOR_ENOMEM only.
 */
int observe_key_form(struct obs_file *f, const char *data, size_t len);

/*
 * The same, and *first (when not NULL) the parsed first certificate block
 * of data, when it was parsed here and not taken from the cache (else
 * NULL): for observe_key_match_leaf(), freed with pki_x509_free().  A
 * block whose fingerprint k knows with its description is not parsed.
 */
struct x509_st;
int observe_parse_certs_first(struct obs_file *f, const char *data, size_t len, const struct known_set *k,
			      time_t now, struct x509_st **first, struct err *e);

/*
 * A leaf+chain file in PKCS#12 form (LAYOUT_FORM_P12): its certificates,
 * as PEM, appended to certs_pem for observe_parse_certs(); f->key says
 * whether its key belongs to the first of them.  A file that does not
 * open with LAYOUT_P12_PASSWORD, holds no key and certificate, or whose
 * key is not the certificate's is recorded in f->problem (certs_pem left
 * empty for the first two).  ROTOR_ENOMEM only.
 */
int observe_p12(struct obs_file *f, struct buf *certs_pem, const char *data, size_t len, struct err *e);

/*
 * Does the unencrypted private key (PEM, or PKCS#8 DER) belong to the
 * first certificate of cert_pem?  EC and Ed25519 keys are compared
 * without OpenSSL's decoders (key_match_cert_der()); the rest are decoded.
 */
enum obs_key observe_key_match(const char *key_pem, size_t key_len,
			       const char *cert_pem, size_t cert_len);
/*
 * The same; leaf, when not NULL, is that certificate already parsed
 * (observe_parse_certs_first()), for a key that has to be decoded.
 */
enum obs_key observe_key_match_leaf(const char *key_pem, size_t key_len, const char *cert_pem, size_t cert_len,
				    struct x509_st *leaf);

void obs_file_release(struct obs_file *f);

/* "matches", "mismatch", "invalid", "no-leaf"; NULL for OBS_KEY_NA. */
const char *obs_key_name(enum obs_key k);
/*
 * The steps a phase mask names, "|"-separated ("servers|clients"), or
 * "none"; stable(A) is "stable(generation)" while a target is set.
 */
const char *obs_fits_names(char *out, size_t len, unsigned mask, int target);

/*
 * Which steps is this set of observed files consistent with?  A leaf
 * file must hold the step's leaf generation for its side first, a trust
 * bundle exactly the step's generations (their roots, and the peer
 * side's CA), and nothing unknown.  Missing files, problems and
 * unknown certificates make a file consistent with no step.
 */
unsigned observe_phase_mask(const struct obs_file *files, size_t n, int a, int b);

/* Is this stray (struct obs_host.strays) a backup, PATH.rotor-bak?  Else a temporary file. */
int obs_stray_is_backup(const char *path);

/* ---- observing hosts over SSH (observe_run.c) ---- */

/* The largest file observe reads; a larger one is a finding. */
#define OBSERVE_MAX_FILE ((size_t)256 << 10)

/* How to reach hosts; paths already expanded, strings borrowed. */
struct observe_opts {
	const struct hosts_spec *hosts;
	const struct known_set *known;
	int generation, target;     /* from rotation.yaml: A and B (0 when stable) */
	const char *user;           /* default login user (a host's user: wins) */
	int port;                   /* default port (a host's port: wins); 0 = 22 */
	const char *identity;       /* private key file; NULL = ssh-agent */
	const char *known_hosts;
	int become;                 /* sudo -n for files the login user cannot read */
	int connect_timeout_ms;
	int deadline_ms;            /* per host, after connect */
	int parallel;               /* hosts at once */
	size_t max_file;            /* bytes; a larger file is a finding, not read */
	time_t now;
	/* Called (serialised) as each host finishes, with the unreachable ones so far; may be NULL. */
	void (*progress)(void *payload, size_t done, size_t failed, size_t total);
	void *payload;
	/*
	 * NULL: every observe opens a session per host and closes it.  Else
	 * one slot per host of hosts (observe_sessions_keep()): the sessions
	 * stay open between observe_fleet() and the writes of apply, which
	 * take them with observe_session() (see there); closed by
	 * observe_sessions_close().  Host i's slot is touched only by the
	 * one thread working on host i.
	 */
	struct ssh_conn **conns;
};

struct obs_role {
	enum spec_role role;
	char *identity;             /* the leaf this role should use */
	size_t first, nfiles;       /* its files in obs_host.files */
};

struct obs_host {
	char *name, *address;
	int reachable;
	char *error;                /* why the host could not be observed */
	char *refused;              /* why rotor must not write this host (a switch-mode service file
	                             * it did not write); NULL when nothing stops it */
	char *host_key;             /* SHA256:... of the verified host key */
	struct obs_role *roles;
	size_t nroles;
	struct obs_file *files;
	size_t nfiles;
	unsigned phase_mask;        /* observe_phase_mask over all its files */
	char **strays;              /* backups (*.rotor-bak) and temporary files (.*.rotor-tmp-*) left next */
	size_t nstrays;             /* to its managed files, full paths (ssh_find_strays()) */
	double seconds;             /* wall time spent on this host */
};

/*
 * Observe every host of o->hosts, at most o->parallel at once, one SSH
 * session each; with the files, the stray backups and temporary files
 * next to them (one more command per host; a host where that command
 * fails lists none).  *out has one entry per host, in hosts.yaml order; an
 * unreachable host is an entry with reachable 0 and error set.  Returns
 * an error only for failures that stop the whole run (memory).
 */
int observe_fleet(struct obs_host **out, size_t *n, const struct observe_opts *o, struct err *e);
void obs_hosts_free(struct obs_host *h, size_t n);

/*
 * Does h hold none of its files (a first deployment: it fits any step)?
 * With replace_unknown, a host holding only certificates of no
 * generation counts as empty too.  Meaningful for reachable hosts only.
 */
int obs_host_empty(const struct obs_host *h, int replace_unknown);

/* The file of role r (a role of h) that holds its leaf (the last one), or NULL. */
const struct obs_file *obs_role_leaf(const struct obs_host *h, const struct obs_role *r);

/* One SSH session to hs with o's settings (apply uses the same ones). */
struct ssh_conn;
int observe_connect(struct ssh_conn **c, const struct observe_opts *o, const struct host_spec *hs,
		    struct err *e);

/*
 * Sessions kept open per host (o->conns).  observe_session() takes host
 * i's kept session out of its slot (*reused = 1; its deadline restarts
 * at o->deadline_ms), or connects (*reused = 0).  observe_session_put()
 * hands it back: kept when o->conns is set and it is not broken, else
 * closed.  A kept session may have died while idle (the server dropped
 * it): a caller that finds it broken (ssh_broken()) after *reused = 1
 * may put it back, take a new one and do again what is safe to repeat.
 * Errors: as observe_connect().
 */
int observe_session(struct ssh_conn **c, int *reused, const struct observe_opts *o, size_t i, struct err *e);
void observe_session_put(const struct observe_opts *o, size_t i, struct ssh_conn *c);
/*
 * Start keeping sessions: o->conns gets one empty slot per host.  0, or
 * 1 when not (the soft limit on open files, RLIMIT_NOFILE, is too low for
 * a socket per host: then every step opens its own, as without it), or
 * ROTOR_ENOMEM.  *need and *limit (may be NULL) say the numbers.
 */
int observe_sessions_keep(struct observe_opts *o, unsigned long long *need, unsigned long long *limit,
			  struct err *e);
/* Close every kept session (in parallel, o->parallel at once) and free o->conns. */
void observe_sessions_close(struct observe_opts *o);

#endif
