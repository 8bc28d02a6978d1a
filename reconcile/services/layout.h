/*
 * layout.h -- the layouts: one table entry per file set a host role can
 * manage (an extension point; DESIGN.md §5a).
 *
 * A role in hosts.yaml names a layout (`layout: postgres`) or lists its
 * files (`files:`, the entry "files").  An entry says everything rotor
 * needs to know about a layout: which roles may use it, which hosts.yaml
 * keys it needs and refuses, where its files live and what each holds
 * (with mode and owner), how its trust bundle is ordered, the reload a
 * role gets when hosts.yaml names none.  Validation
 * (spec_hosts.c), expansion into files (engine/files.c) and apply read
 * this table and nothing else; a unit test checks that
 * schemas/hosts.json names the same layouts.  Adding a layout is one
 * entry plus its tests.
 *
 * Pure data; no errors.
 */
#ifndef ROTOR_LAYOUT_H
#define ROTOR_LAYOUT_H

#include <stddef.h>

/* What a managed file holds (hosts.yaml `content:`). */
enum spec_content { SPEC_CONTENT_LEAF, SPEC_CONTENT_LEAF_CHAIN, SPEC_CONTENT_KEY, SPEC_CONTENT_TRUST, SPEC_CONTENT_CRL };
#define SPEC_NCONTENT 5

/*
 * "leaf", "leaf+chain", "key", "trust", "crl": as hosts.yaml and the JSON
 * outputs name them.  A crl file (servers) holds, for every generation of
 * the step's trust bundle, the CRL of its root and of its client CA
 * (PostgreSQL's ssl_crl_file checks a CRL for every CA of a chain).
 */
const char *layout_content_name(enum spec_content c);

/* Which side's certificates a trust bundle holds, or whose leaf a file carries. */
enum layout_side { LAYOUT_SIDE_SERVER, LAYOUT_SIDE_CLIENT };

/* hosts.yaml role keys a layout needs or refuses (bits). */
enum layout_key {
	LAYOUT_KEY_DIR = 1u << 0,
	LAYOUT_KEY_HOME = 1u << 1,
	LAYOUT_KEY_USER = 1u << 2,
	LAYOUT_KEY_OWNER = 1u << 3,
	LAYOUT_KEY_IDENTITY = 1u << 4,
	LAYOUT_KEY_PROBE = 1u << 5
};

/* Where a layout's files live. */
enum layout_base {
	LAYOUT_BASE_NONE,      /* explicit files: each has its own absolute path */
	LAYOUT_BASE_DIR,       /* the role's dir: */
	LAYOUT_BASE_HOME       /* the role's home:, then subdir */
};

/* The order of the certificates in a trust bundle. */
enum layout_bundle {
	LAYOUT_BUNDLE_NEWEST_FIRST   /* the newest generation's root (and peer CA) first */
};

/* The form a file is written in. */
enum layout_form {
	LAYOUT_FORM_PEM = 0,   /* PEM (certificates, CRLs, keys as PKCS#8) */
	LAYOUT_FORM_PK8,       /* a key as unencrypted PKCS#8 DER (pgJDBC's .pk8) */
	/*
	 * A leaf+chain file written as PKCS#12 with the role's key in it
	 * (pgJDBC's .p12: key and chain in one file, one rename switches
	 * them together).  Its password is empty (LAYOUT_P12_PASSWORD): like
	 * the PEM and DER keys beside it, the file is protected by its mode
	 * and owner, not by a password every reader would have to be told.
	 */
	LAYOUT_FORM_P12
};
#define LAYOUT_P12_PASSWORD ""

struct layout_file_def {
	const char *name;            /* file name under the base directory; "{user}" in it
					stands for the role's user: (layout_file_name) */
	enum spec_content content;
	int mode;                    /* permission bits */
	unsigned sides;              /* roles that hold this file (1u << LAYOUT_SIDE_*); 0: every role */
	enum layout_form form;       /* LAYOUT_FORM_PEM (0) but for pgJDBC's .pk8 and .p12 */
};

#define LAYOUT_MAX_FILES 6

struct layout_def {
	const char *name;            /* as hosts.yaml writes it; "files" for an explicit file set */
	int by_name;                 /* 1: chosen by `layout: NAME`; 0: by `files:` */
	unsigned sides;              /* roles that may use it: 1u << LAYOUT_SIDE_SERVER | ... */
	unsigned required, refused;  /* LAYOUT_KEY_* bits */
	enum layout_base base;
	const char *subdir;          /* under the base directory, or NULL */
	int owner_is_user;           /* files belong to user: when owner: is absent */
	enum layout_bundle bundle;
	const char *default_reload;  /* run when the role names no reload; NULL: none */
	/*
	 * Switch mode (`switch:` in hosts.yaml), for readers that open the
	 * certificate and the key separately on every connection: each
	 * generation's files go to a new directory under switch_subdir (of
	 * the base) that is never modified, and one rename of the service
	 * file (switch_file, under the base) points the reader at it.  NULL:
	 * the layout has no switch mode (its readers load at a reload).
	 */
	const char *switch_subdir, *switch_file;
	struct layout_file_def files[LAYOUT_MAX_FILES];
	size_t nfiles;
	/*
	 * A half of a role that is a server and a client at once (pgbouncer):
	 * by_name is 0, half_of names the hosts.yaml `role:` that makes one
	 * server role with the SERVER half and one client role with the
	 * CLIENT half (spec_hosts.c).  NULL for every other entry.
	 */
	const char *half_of;
	/* 1: a server role's leaf is also used as a client (CockroachDB nodes dial each
	   other): chain.yaml must give it eku [serverAuth, clientAuth] (engine/state.c). */
	int server_is_client;
};

extern const struct layout_def layout_table[];
extern const size_t layout_count;

/* The entry chosen by `layout: name` (by_name entries only), or NULL. */
const struct layout_def *layout_find(const char *name);
/* The entry for an explicit `files:` list. */
const struct layout_def *layout_files(void);
/* The half of role kind `half_of` (e.g. "pgbouncer") for side, or NULL. */
const struct layout_def *layout_half(const char *half_of, enum layout_side side);

/* Does file f belong to a role of side s? */
int layout_file_for(const struct layout_file_def *f, enum layout_side s);
/* Does some file of l for side s name "{user}" (then the role needs user:)? */
int layout_needs_user(const struct layout_def *l, enum layout_side s);
/*
 * f's name with "{user}" replaced by user into out (cap bytes): 0, or -1
 * when it does not fit or user is NULL where the name needs it.
 */
int layout_file_name(char *out, size_t cap, const struct layout_file_def *f, const char *user);

#endif
