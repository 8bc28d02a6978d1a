/*
 * gitrepo.c -- the state repository through libgit2 (see gitrepo.h).
 *
 * Everything here reads objects and refs, or writes new objects and a
 * new ref.  Nothing writes the work tree, .git/index or HEAD: commits are
 * built from in-memory blobs with git_tree_create_updated() against the
 * base commit's tree, and the branch is created create-only afterwards.
 * A commit of many files (a chain of 1,000 client leaves writes 2,000)
 * is written as one pack with its index rather than as loose objects.
 *
 * Every libgit2 failure is translated into e->msg together with what we
 * were doing (which path, which ref, which commit) by git_fail().
 */
#include "gitops/gitrepo.h"
#include "common/utf8.h"
#include "gitops/gitrepo_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <git2.h>
#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>

#define REFS_HEADS "refs/heads/"
#define PATH_MAX_LEN 4096     /* a repository-relative path */
#define NAME_MAX_LEN 255      /* one path component */
#define BRANCH_MAX_LEN 240    /* fits gitrepo_head.branch with room */
#define REV_MAX_LEN 1024

struct gitrepo {
	git_repository *repo;
};

/* ---- errors ---------------------------------------------------------- */

static int map_git_code(int gcode)
{
	const git_error *ge = git_error_last();

	if (ge && ge->klass == GIT_ERROR_NOMEMORY)
		return ROTOR_ENOMEM;
	switch (gcode) {
	case GIT_ENOTFOUND:
	case GIT_EUNBORNBRANCH:
		return ROTOR_ENOTFOUND;
	case GIT_EEXISTS:
		return ROTOR_EEXISTS;
	case GIT_EINVALIDSPEC:
	case GIT_EAMBIGUOUS:
		return ROTOR_EINVALID;
	case GIT_EBAREREPO:
	case GIT_EOWNER:
	case GIT_ELOCKED:
		return ROTOR_ESTATE;
	default:
		return ROTOR_ERROR;
	}
}

/*
 * Fill e with "<context>: <libgit2 message>".  code 0 means: derive the
 * rotor code from the libgit2 code.  Returns the rotor code.
 */
static int git_fail(struct err *e, int gcode, int code, const char *fmt, ...) ROTOR_PRINTF(4, 5);
static int git_fail(struct err *e, int gcode, int code, const char *fmt, ...)
{
	const git_error *ge = git_error_last();
	char ctx[320];
	va_list ap;

	if (code == 0)
		code = map_git_code(gcode);
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	if (ge && ge->message && ge->message[0])
		err_set(e, code, "%s: %s", ctx, ge->message);
	else
		err_set(e, code, "%s (libgit2 error %d)", ctx, gcode);
	git_error_clear();
	return code;
}

/*
 * Copy s into out for an error message, cut to fit len; anything
 * outside printable ASCII shown as '?', so a hostile name cannot put
 * terminal escapes into the message.
 */
static const char *shown(char *out, size_t len, const char *s)
{
	size_t i = 0;

	if (!s)
		s = "(null)";
	for (; *s && i + 4 < len; s++)
		out[i++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	if (*s && i + 4 <= len) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* ---- validation ------------------------------------------------------ */

enum { PATH_FILE = 0, PATH_DIR = 1 };

/*
 * A repository-relative path: '/'-separated, not absolute, no empty,
 * "." or ".." components, no ".git" component, no control characters or
 * backslashes, valid UTF-8.  With PATH_DIR the empty string (the root)
 * and one trailing '/' are allowed.
 */
static int check_path(const char *path, int mode, struct err *e)
{
	char show[160];
	const char *why = NULL, *comp;
	size_t len, clen, n = 1, i;

	if (!path)
		return err_set(e, ROTOR_EINVALID, "invalid repository path: none given");
	len = strlen(path);
	if (len == 0) {
		if (mode == PATH_DIR)
			return 0;
		return err_set(e, ROTOR_EINVALID, "invalid repository path: empty");
	}
	if (len > PATH_MAX_LEN)
		return err_set(e, ROTOR_EINVALID, "invalid repository path \"%s\": longer than %d bytes",
			       shown(show, sizeof(show), path), PATH_MAX_LEN);
	if (path[0] == '/')
		return err_set(e, ROTOR_EINVALID, "invalid repository path \"%s\": absolute",
			       shown(show, sizeof(show), path));
	if (mode == PATH_DIR && path[len - 1] == '/')
		len--;

	for (i = 0; i < len && !why; i += n) {
		unsigned char c = (unsigned char)path[i];

		if (c < 0x20 || c == 0x7f)
			why = "contains a control character";
		else if (c == '\\')
			why = "contains a backslash";
		else if ((n = utf8_seq_len((const unsigned char *)path + i)) == 0)
			why = "not valid UTF-8";
	}
	comp = path;
	while (!why) {
		const char *slash = memchr(comp, '/', len - (size_t)(comp - path));

		clen = slash ? (size_t)(slash - comp) : len - (size_t)(comp - path);
		if (clen == 0)
			why = "empty component";
		else if (clen == 1 && comp[0] == '.')
			why = "\".\" component";
		else if (clen == 2 && comp[0] == '.' && comp[1] == '.')
			why = "\"..\" component";
		else if (clen == 4 && comp[0] == '.' && strncasecmp(comp + 1, "git", 3) == 0)
			why = "\".git\" component";
		else if (clen > NAME_MAX_LEN)
			why = "component longer than 255 bytes";
		if (!slash)
			break;
		comp = slash + 1;
	}
	if (why)
		return err_set(e, ROTOR_EINVALID, "invalid repository path \"%s\": %s",
			       shown(show, sizeof(show), path), why);
	return 0;
}

int gitrepo_path_valid(const char *path, struct err *e)
{
	return check_path(path, PATH_FILE, e);
}

int gitrepo_dir_valid(const char *dir, struct err *e)
{
	return check_path(dir, PATH_DIR, e);
}

/* Build "refs/heads/<branch>" into out after checking the name. */
static int branch_refname(char *out, size_t len, const char *branch, struct err *e)
{
	char show[160];
	int valid = 0, rc;
	size_t i, blen;

	if (!branch || !branch[0])
		return err_set(e, ROTOR_EINVALID, "invalid branch name: empty");
	blen = strlen(branch);
	for (i = 0; i < blen; i++)
		if ((unsigned char)branch[i] < 0x20 || branch[i] == 0x7f)
			break;
	if (i < blen || blen > BRANCH_MAX_LEN || branch[0] == '-' || strcmp(branch, "HEAD") == 0 ||
	    strcmp(branch, "@") == 0 ||
	    strncmp(branch, "refs/", 5) == 0)
		goto invalid;
	if ((size_t)snprintf(out, len, REFS_HEADS "%s", branch) >= len)
		goto invalid;
	rc = git_reference_name_is_valid(&valid, out);
	if (rc < 0)
		return git_fail(e, rc, 0, "cannot check branch name \"%s\"", shown(show, sizeof(show), branch));
	if (valid)
		return 0;
invalid:
	out[0] = '\0';
	return err_set(e, ROTOR_EINVALID, "invalid branch name \"%s\"", shown(show, sizeof(show), branch));
}

int gitrepo_branch_valid(const char *branch, struct err *e)
{
	char ref[sizeof(REFS_HEADS) + BRANCH_MAX_LEN + 1];

	return branch_refname(ref, sizeof(ref), branch, e);
}

/* A commit id as the contract passes it: exactly 40 hex digits. */
static int parse_id(git_oid *oid, const char *hex, struct err *e)
{
	char show[160];
	size_t i;

	for (i = 0; hex && i < 40; i++) {
		char c = hex[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			break;
	}
	if (!hex || i != 40 || hex[40] != '\0' || git_oid_fromstrn(oid, hex, 40) < 0) {
		git_error_clear();
		return err_set(e, ROTOR_EINVALID, "not a commit id (40 hex digits): \"%s\"",
			       shown(show, sizeof(show), hex));
	}
	return 0;
}

static int lookup_commit(git_commit **out, struct gitrepo *r, const char *hex, struct err *e)
{
	git_oid oid;
	int rc;

	*out = NULL;
	if ((rc = parse_id(&oid, hex, e)) < 0)
		return rc;
	rc = git_commit_lookup(out, r->repo, &oid);
	if (rc == GIT_ENOTFOUND)
		return git_fail(e, rc, ROTOR_ENOTFOUND, "commit %s not found", hex);
	if (rc < 0)
		return git_fail(e, rc, 0, "cannot read commit %s", hex);
	return 0;
}

/* ---- setup ----------------------------------------------------------- */

int gitrepo_global_init(struct err *e)
{
	int rc = git_libgit2_init();

	if (rc < 0)
		return git_fail(e, rc, ROTOR_ERROR, "cannot initialise libgit2");
	/*
	 * libgit2 keeps no tree over 4 KiB in its object cache: a generation's
	 * servers/ directory at 1,000 hosts is a 100 KiB tree, inflated and
	 * parsed again for every file read under it (12% of a no-change apply's
	 * CPU at 1,000 hosts).  Trees up to 16 MiB are kept; the cache's total
	 * stays libgit2's (256 MiB).
	 */
	rc = git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, (int)GIT_OBJECT_TREE, (size_t)16 << 20);
	if (rc < 0)
		return git_fail(e, rc, ROTOR_ERROR, "cannot set libgit2's tree cache limit");
	return 0;
}

void gitrepo_global_shutdown(void)
{
	git_libgit2_shutdown();
}

int gitrepo_open(struct gitrepo **out, const char *path, int search, struct err *e)
{
	git_repository *repo = NULL;
	struct gitrepo *r = NULL;
	struct stat st;
	char show[320];
	unsigned flags = search ? 0 : GIT_REPOSITORY_OPEN_NO_SEARCH;
	int rc;

	*out = NULL;
	if (!path || !path[0])
		return err_set(e, ROTOR_EINVALID, "no repository path given");
	shown(show, sizeof(show), path);
	if (stat(path, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return err_set(e, ROTOR_ENOTFOUND, "not a git repository: %s (no such directory)", show);
		return err_set(e, ROTOR_ERROR, "cannot open repository %s: %s", show, strerror(errno));
	}
	rc = git_repository_open_ext(&repo, path, flags, NULL);
	if (rc == GIT_ENOTFOUND) {
		git_error_clear();
		return err_set(e, ROTOR_ENOTFOUND, "not a git repository: %s", show);
	}
	if (rc == GIT_EOWNER)
		return git_fail(e, rc, ROTOR_ESTATE, "refusing repository %s owned by another user "
				"(see git config safe.directory)", show);
	if (rc < 0)
		return git_fail(e, rc, 0, "cannot open repository %s", show);
	if (git_repository_is_bare(repo) || !git_repository_workdir(repo)) {
		rc = err_set(e, ROTOR_ESTATE, "%s is a bare repository; rotor needs a repository "
			     "with a work tree (clone it first)", show);
		goto out;
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		rc = err_nomem(e);
		goto out;
	}
	r->repo = repo;
	repo = NULL;
	*out = r;
	rc = 0;
out:
	git_repository_free(repo);
	return rc;
}

void gitrepo_free(struct gitrepo *r)
{
	if (!r)
		return;
	git_repository_free(r->repo);
	free(r);
}

const char *gitrepo_workdir(const struct gitrepo *r)
{
	const char *w = git_repository_workdir(r->repo);

	return w ? w : "";
}

/* ---- reading --------------------------------------------------------- */

/* Does rev start from HEAD ("HEAD", "HEAD~1", "@", "@^")? */
static int rev_is_head(const char *rev)
{
	if (strncmp(rev, "HEAD", 4) == 0)
		return rev[4] == '\0' || strchr("~^@:", rev[4]) != NULL;
	return rev[0] == '@' && (rev[1] == '\0' || strchr("~^", rev[1]) != NULL);
}

int gitrepo_resolve(struct gitrepo *r, const char *rev, char out[41], struct err *e)
{
	git_object *obj = NULL, *peeled = NULL;
	char show[160];
	size_t i;
	int rc;

	out[0] = '\0';
	if (!rev || !rev[0])
		return err_set(e, ROTOR_EINVALID, "empty revision");
	for (i = 0; rev[i]; i++)
		if ((unsigned char)rev[i] < 0x20 || rev[i] == 0x7f || i >= REV_MAX_LEN)
			return err_set(e, ROTOR_EINVALID, "invalid revision \"%s\"",
				       shown(show, sizeof(show), rev));
	shown(show, sizeof(show), rev);
	rc = git_revparse_single(&obj, r->repo, rev);
	if (rc == GIT_ENOTFOUND || rc == GIT_EUNBORNBRANCH) {
		if (rev_is_head(rev) && git_repository_head_unborn(r->repo) == 1) {
			git_error_clear();
			rc = err_set(e, ROTOR_ENOTFOUND, "cannot resolve %s: the repository has no commits yet",
				     show);
			goto out;
		}
		rc = git_fail(e, rc, ROTOR_ENOTFOUND, "revision %s not found", show);
		goto out;
	}
	if (rc < 0) {
		rc = git_fail(e, rc, 0, "cannot resolve revision %s", show);
		goto out;
	}
	rc = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
	if (rc < 0) {
		rc = git_fail(e, rc, ROTOR_EINVALID, "revision %s does not name a commit", show);
		goto out;
	}
	git_oid_tostr(out, 41, git_object_id(peeled));
	rc = 0;
out:
	git_object_free(peeled);
	git_object_free(obj);
	return rc;
}

/* Why an entry that should be a regular file is not one; NULL if it is. */
static const char *not_a_file(const git_tree_entry *ent)
{
	switch (git_tree_entry_filemode(ent)) {
	case GIT_FILEMODE_BLOB:
	case GIT_FILEMODE_BLOB_EXECUTABLE:
		return NULL;
	case GIT_FILEMODE_TREE:
		return "is a directory, not a file";
	case GIT_FILEMODE_COMMIT:
		return "is a submodule, not a file";
	case GIT_FILEMODE_LINK:
		return "is a symbolic link, not a file";
	default:
		return "is not a regular file";
	}
}

/*
 * The entry at path in commit's tree.  ENOTFOUND when it does not exist
 * (also when a leading component is a file).
 */
static int entry_at(git_tree_entry **out, git_tree *tree, const char *commit, const char *path,
		    struct err *e)
{
	int rc = git_tree_entry_bypath(out, tree, path);

	if (rc == GIT_ENOTFOUND) {
		git_error_clear();
		return err_set(e, ROTOR_ENOTFOUND, "%s: not found at commit %.12s", path, commit);
	}
	if (rc < 0)
		return git_fail(e, rc, 0, "%s: cannot read at commit %.12s", path, commit);
	return 0;
}

int gitrepo_read(struct buf *out, struct gitrepo *r, const char *commit,
		 const char *path, size_t max, struct err *e)
{
	git_commit *c = NULL;
	git_tree *tree = NULL;
	git_tree_entry *ent = NULL;
	git_odb *odb = NULL;
	git_blob *blob = NULL;
	git_object_t type;
	git_object_size_t size;
	const char *why;
	size_t hsize;
	int rc;

	if ((rc = check_path(path, PATH_FILE, e)) < 0)
		return rc;
	if (max == 0)
		max = BUF_DEFAULT_MAX;
	if ((rc = lookup_commit(&c, r, commit, e)) < 0)
		goto out;
	if ((rc = git_commit_tree(&tree, c)) < 0) {
		rc = git_fail(e, rc, 0, "cannot read the tree of commit %.12s", commit);
		goto out;
	}
	if ((rc = entry_at(&ent, tree, commit, path, e)) < 0)
		goto out;
	if ((why = not_a_file(ent)) != NULL) {
		rc = err_set(e, ROTOR_EINVALID, "%s %s at commit %.12s", path, why, commit);
		goto out;
	}

	/* Check the size from the object header before inflating it. */
	if ((rc = git_repository_odb(&odb, r->repo)) < 0) {
		rc = git_fail(e, rc, 0, "cannot open the object database");
		goto out;
	}
	rc = git_odb_read_header(&hsize, &type, odb, git_tree_entry_id(ent));
	if (rc < 0) {
		/* Some backends cannot read headers; the blob check below still holds. */
		git_error_clear();
	} else if (hsize > max) {
		rc = err_set(e, ROTOR_ETOOBIG, "%s at commit %.12s is %zu bytes, over the limit of %zu",
			     path, commit, hsize, max);
		goto out;
	}

	if ((rc = git_blob_lookup(&blob, r->repo, git_tree_entry_id(ent))) < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "%s: cannot read blob at commit %.12s", path, commit);
		goto out;
	}
	size = git_blob_rawsize(blob);
	if (size > (git_object_size_t)max) {
		rc = err_set(e, ROTOR_ETOOBIG, "%s at commit %.12s is %llu bytes, over the limit of %zu",
			     path, commit, (unsigned long long)size, max);
		goto out;
	}
	/* rawcontent is not NUL-terminated; buf_put copies len bytes and terminates. */
	rc = buf_put(out, git_blob_rawcontent(blob), (size_t)size);
	if (rc == ROTOR_ETOOBIG)
		rc = err_set(e, rc, "%s at commit %.12s (%zu bytes) does not fit in the buffer",
			     path, commit, (size_t)size);
	else if (rc < 0)
		rc = err_nomem(e);
out:
	git_blob_free(blob);
	git_odb_free(odb);
	git_tree_entry_free(ent);
	git_tree_free(tree);
	git_commit_free(c);
	return rc;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int gitrepo_list(char ***names, size_t *n, struct gitrepo *r, const char *commit,
		 const char *dir, struct err *e)
{
	git_commit *c = NULL;
	git_tree *root = NULL, *sub = NULL;
	git_tree_entry *ent = NULL;
	const git_tree *t;
	char *d = NULL, **v = NULL;
	size_t cnt = 0, i, len;
	int rc;

	*names = NULL;
	if (n)
		*n = 0;
	if ((rc = check_path(dir ? dir : "", PATH_DIR, e)) < 0)
		return rc;
	if ((rc = lookup_commit(&c, r, commit, e)) < 0)
		goto out;
	if ((rc = git_commit_tree(&root, c)) < 0) {
		rc = git_fail(e, rc, 0, "cannot read the tree of commit %.12s", commit);
		goto out;
	}
	t = root;
	len = dir ? strlen(dir) : 0;
	if (len > 0) {
		if (!(d = strdup(dir))) {
			rc = err_nomem(e);
			goto out;
		}
		if (d[len - 1] == '/')
			d[len - 1] = '\0';
		if ((rc = entry_at(&ent, root, commit, d, e)) < 0)
			goto out;
		if (git_tree_entry_type(ent) != GIT_OBJECT_TREE) {
			rc = err_set(e, ROTOR_EINVALID, "%s is not a directory at commit %.12s", d, commit);
			goto out;
		}
		if ((rc = git_tree_lookup(&sub, r->repo, git_tree_entry_id(ent))) < 0) {
			rc = git_fail(e, rc, ROTOR_ERROR, "%s: cannot read directory at commit %.12s",
				      d, commit);
			goto out;
		}
		t = sub;
	}
	cnt = git_tree_entrycount(t);
	if (!(v = calloc(cnt + 1, sizeof(*v)))) {
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < cnt; i++) {
		if (!(v[i] = strdup(git_tree_entry_name(git_tree_entry_byindex(t, i))))) {
			rc = err_nomem(e);
			goto out;
		}
	}
	/* git orders a directory as if its name ended in '/'; we promise bytes. */
	qsort(v, cnt, sizeof(*v), cmp_name);
	*names = v;
	v = NULL;
	if (n)
		*n = cnt;
	rc = 0;
out:
	gitrepo_names_free(v);
	free(d);
	git_tree_free(sub);
	git_tree_entry_free(ent);
	git_tree_free(root);
	git_commit_free(c);
	return rc;
}

void gitrepo_names_free(char **names)
{
	size_t i;

	if (!names)
		return;
	for (i = 0; names[i]; i++)
		free(names[i]);
	free(names);
}

/* ---- HEAD, status, branches ------------------------------------------ */

int gitrepo_head(struct gitrepo_head *out, struct gitrepo *r, struct err *e)
{
	git_reference *head = NULL, *resolved = NULL;
	git_object *obj = NULL;
	const char *target;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = git_reference_lookup(&head, r->repo, "HEAD")) < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot read HEAD");
		goto out;
	}
	if (git_reference_type(head) == GIT_REFERENCE_SYMBOLIC) {
		target = git_reference_symbolic_target(head);
		if (strncmp(target, REFS_HEADS, strlen(REFS_HEADS)) == 0)
			target += strlen(REFS_HEADS);
		if (strlen(target) >= sizeof(out->branch)) {
			rc = err_set(e, ROTOR_ERROR, "HEAD names a branch longer than %zu bytes",
				     sizeof(out->branch) - 1);
			goto out;
		}
		memcpy(out->branch, target, strlen(target) + 1);
	} else {
		out->detached = 1;
	}
	rc = git_reference_resolve(&resolved, head);
	if (rc == GIT_ENOTFOUND && !out->detached) {
		git_error_clear();
		out->unborn = 1;
		rc = 0;
		goto out;
	}
	if (rc < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot resolve HEAD");
		goto out;
	}
	if ((rc = git_reference_peel(&obj, resolved, GIT_OBJECT_COMMIT)) < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "HEAD does not point at a commit");
		goto out;
	}
	git_oid_tostr(out->commit, sizeof(out->commit), git_object_id(obj));
	rc = 0;
out:
	git_object_free(obj);
	git_reference_free(resolved);
	git_reference_free(head);
	return rc;
}

/* Is path at or below prefix ("a/b" matches "a/b" and "a/b/c"; "a/" matches "a/c")? */
static int under_prefix(const char *path, const char *prefix)
{
	size_t plen = strlen(prefix);

	if (plen == 0)
		return 1;
	if (strncmp(path, prefix, plen) != 0)
		return 0;
	return prefix[plen - 1] == '/' || path[plen] == '\0' || path[plen] == '/';
}

static int matches_any(const char *path, const char *const *prefixes, size_t nprefixes)
{
	size_t i;

	if (nprefixes == 0)
		return 1;
	for (i = 0; i < nprefixes; i++)
		if (under_prefix(path, prefixes[i]))
			return 1;
	return 0;
}

int gitrepo_dirty(int *dirty, char *first_path, size_t first_path_len,
		  struct gitrepo *r, const char *const *prefixes, size_t nprefixes,
		  struct err *e)
{
	const unsigned changed =
		GIT_STATUS_INDEX_NEW | GIT_STATUS_INDEX_MODIFIED | GIT_STATUS_INDEX_DELETED |
		GIT_STATUS_INDEX_RENAMED | GIT_STATUS_INDEX_TYPECHANGE |
		GIT_STATUS_WT_MODIFIED | GIT_STATUS_WT_DELETED | GIT_STATUS_WT_TYPECHANGE |
		GIT_STATUS_WT_RENAMED | GIT_STATUS_CONFLICTED;
	git_status_options opts;
	git_status_list *list = NULL;
	size_t i, cnt;
	int rc;

	*dirty = 0;
	if (first_path && first_path_len)
		first_path[0] = '\0';
	if (nprefixes && !prefixes)
		return err_set(e, ROTOR_EINVALID, "no prefixes given");
	for (i = 0; i < nprefixes; i++)
		if ((rc = check_path(prefixes[i], PATH_DIR, e)) < 0)
			return rc;

	if ((rc = git_status_options_init(&opts, GIT_STATUS_OPTIONS_VERSION)) < 0)
		return git_fail(e, rc, ROTOR_ERROR, "cannot set up a status query");
	opts.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
	/*
	 * Tracked files only (no untracked, no ignored), literal paths, and
	 * never GIT_STATUS_OPT_UPDATE_INDEX: .git/index stays as it is.
	 */
	opts.flags = GIT_STATUS_OPT_DISABLE_PATHSPEC_MATCH | GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
	/* libgit2 does not modify the pathspec strings; the cast drops const only. */
	opts.pathspec.strings = (char **)prefixes;
	opts.pathspec.count = nprefixes;

	if ((rc = git_status_list_new(&list, r->repo, &opts)) < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot read the status of the work tree");
		goto out;
	}
	cnt = git_status_list_entrycount(list);
	for (i = 0; i < cnt; i++) {
		const git_status_entry *s = git_status_byindex(list, i);
		const git_diff_delta *d;
		const char *p;

		if (!s || !(s->status & changed))
			continue;
		d = s->head_to_index ? s->head_to_index : s->index_to_workdir;
		p = d ? (d->new_file.path ? d->new_file.path : d->old_file.path) : NULL;
		/* Our own literal prefix check: pathspec semantics are not ours to rely on. */
		if (!p || !matches_any(p, prefixes, nprefixes))
			continue;
		*dirty = 1;
		if (first_path && first_path_len)
			snprintf(first_path, first_path_len, "%s", p);
		break;
	}
	rc = 0;
out:
	git_status_list_free(list);
	return rc;
}

int gitrepo_branch_exists(int *exists, struct gitrepo *r, const char *branch, struct err *e)
{
	char ref[sizeof(REFS_HEADS) + BRANCH_MAX_LEN + 1];
	git_reference *refp = NULL;
	int rc;

	*exists = 0;
	if ((rc = branch_refname(ref, sizeof(ref), branch, e)) < 0)
		return rc;
	rc = git_reference_lookup(&refp, r->repo, ref);
	if (rc == GIT_ENOTFOUND) {
		git_error_clear();
		return 0;
	}
	if (rc < 0)
		return git_fail(e, rc, ROTOR_ERROR, "cannot look up branch %s", branch);
	*exists = 1;
	git_reference_free(refp);
	return 0;
}

/* ---- commits --------------------------------------------------------- */

/*
 * Byte order with '/' lowest (paths hold no control characters), so a
 * path is followed at once by the paths below it: "a", "a/b", "a-c".
 */
static int cmp_path_slash_first(const void *a, const void *b)
{
	const unsigned char *x = *(const unsigned char *const *)a;
	const unsigned char *y = *(const unsigned char *const *)b;
	unsigned cx, cy;

	while (*x && *x == *y) {
		x++;
		y++;
	}
	cx = *x == '/' ? 1u : *x;
	cy = *y == '/' ? 1u : *y;
	return (cx > cy) - (cx < cy);
}

/*
 * The files of one commit must be distinct and none may lie below
 * another ("a" and "a/b" cannot both be files).  Sorted, both show in
 * neighbours, so thousands of files cost a sort, not every pair.
 */
static int check_files(const struct gitrepo_file *files, size_t nfiles, struct err *e)
{
	const char **sorted;
	size_t i;
	int rc = 0;

	if (nfiles && !files)
		return err_set(e, ROTOR_EINVALID, "no files given");
	for (i = 0; i < nfiles; i++)
		if ((rc = check_path(files[i].path, PATH_FILE, e)) < 0)
			return rc;
	if (nfiles < 2)
		return 0;
	if (!(sorted = malloc(nfiles * sizeof(*sorted))))
		return err_nomem(e);
	for (i = 0; i < nfiles; i++)
		sorted[i] = files[i].path;
	qsort(sorted, nfiles, sizeof(*sorted), cmp_path_slash_first);
	for (i = 1; i < nfiles && rc == 0; i++) {
		const char *a = sorted[i - 1], *b = sorted[i];

		if (strcmp(a, b) == 0)
			rc = err_set(e, ROTOR_EINVALID, "%s: given twice in one commit", a);
		else if (under_prefix(b, a))
			rc = err_set(e, ROTOR_EINVALID, "%s and %s: one is inside the other", a, b);
	}
	free(sorted);
	return rc;
}

/*
 * Check one file against the base tree: every leading directory that
 * exists must be a directory; an upsert must not replace a directory or
 * a submodule; a delete must name an existing file.
 */
static int check_against_base(git_tree *base, const char *commit, const struct gitrepo_file *f,
			      struct err *e)
{
	git_tree_entry *ent = NULL;
	char *p = NULL, *slash;
	const char *why;
	int rc = 0;

	if (!(p = strdup(f->path)))
		return err_nomem(e);
	for (slash = strchr(p, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		rc = git_tree_entry_bypath(&ent, base, p);
		if (rc == GIT_ENOTFOUND) {
			git_error_clear();
			rc = 0;
			*slash = '/';
			break;     /* the rest will be created */
		}
		if (rc < 0) {
			rc = git_fail(e, rc, 0, "%s: cannot read at commit %.12s", p, commit);
			goto out;
		}
		if (git_tree_entry_type(ent) != GIT_OBJECT_TREE) {
			rc = err_set(e, ROTOR_EINVALID, "cannot write %s: %s is not a directory at commit %.12s",
				     f->path, p, commit);
			goto out;
		}
		git_tree_entry_free(ent);
		ent = NULL;
		*slash = '/';
	}
	rc = git_tree_entry_bypath(&ent, base, f->path);
	if (rc == GIT_ENOTFOUND) {
		git_error_clear();
		rc = 0;
		if (!f->data)
			rc = err_set(e, ROTOR_ENOTFOUND, "cannot delete %s: not found at commit %.12s",
				     f->path, commit);
		goto out;
	}
	if (rc < 0) {
		rc = git_fail(e, rc, 0, "%s: cannot read at commit %.12s", f->path, commit);
		goto out;
	}
	why = not_a_file(ent);
	if (why && git_tree_entry_filemode(ent) != GIT_FILEMODE_LINK)
		rc = err_set(e, ROTOR_EINVALID, "cannot %s %s: it %s at commit %.12s",
			     f->data ? "write" : "delete", f->path, why, commit);
out:
	git_tree_entry_free(ent);
	free(p);
	return rc;
}

/* The configured identity, or "rotor <rotor@localhost>" when there is none. */
static int signature(git_signature **out, struct gitrepo *r, struct err *e)
{
	int rc = git_signature_default(out, r->repo);

	if (rc == GIT_ENOTFOUND) {
		git_error_clear();
		rc = git_signature_now(out, "rotor", "rotor@localhost");
	}
	if (rc < 0)
		return git_fail(e, rc, ROTOR_ERROR, "cannot build the commit signature "
				"(check user.name and user.email)");
	return 0;
}

/*
 * Can refname be created?  Not if it exists, if a ref is one of its
 * leading directories ("refs/heads/main" blocks "main/x"), or if refs
 * live below it ("rotor/rotate/a" blocks "rotor/rotate").  A ref name
 * holds no glob characters, so the glob below is literal.
 */
static int ref_available(struct gitrepo *r, const char *branch, const char *refname, struct err *e)
{
	char name[sizeof(REFS_HEADS) + BRANCH_MAX_LEN + 3], *slash;
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	const char *below = NULL;
	int rc;

	snprintf(name, sizeof(name), "%s", refname);
	for (slash = strchr(name + strlen(REFS_HEADS), '/');; slash = strchr(slash + 1, '/')) {
		if (slash)
			*slash = '\0';
		rc = git_reference_lookup(&ref, r->repo, name);
		git_reference_free(ref);
		ref = NULL;
		if (rc == 0) {
			if (!slash)
				return err_set(e, ROTOR_EEXISTS, "branch %s already exists", branch);
			return err_set(e, ROTOR_EEXISTS, "cannot create branch %s: branch %s exists",
				       branch, name + strlen(REFS_HEADS));
		}
		if (rc != GIT_ENOTFOUND && rc != GIT_EINVALIDSPEC)
			return git_fail(e, rc, 0, "cannot look up %s", name);
		git_error_clear();
		if (!slash)
			break;
		*slash = '/';
	}

	snprintf(name, sizeof(name), "%s/*", refname);
	if ((rc = git_reference_iterator_glob_new(&it, r->repo, name)) < 0)
		return git_fail(e, rc, 0, "cannot list the refs below %s", refname);
	rc = git_reference_next_name(&below, it);
	if (rc == 0)
		rc = err_set(e, ROTOR_EEXISTS, "cannot create branch %s: branch %s exists",
			     branch, below + strlen(REFS_HEADS));
	else if (rc == GIT_ITEROVER)
		rc = 0;
	else
		rc = git_fail(e, rc, 0, "cannot list the refs below %s", refname);
	git_reference_iterator_free(it);
	if (rc == 0)
		git_error_clear();
	return rc;
}

/* HEAD names refname symbolically (an unborn branch HEAD would adopt)? */
static int head_names(int *yes, struct gitrepo *r, const char *refname, struct err *e)
{
	git_reference *head = NULL;
	int rc;

	*yes = 0;
	if ((rc = git_reference_lookup(&head, r->repo, "HEAD")) < 0)
		return git_fail(e, rc, ROTOR_ERROR, "cannot read HEAD");
	if (git_reference_type(head) == GIT_REFERENCE_SYMBOLIC &&
	    strcmp(git_reference_symbolic_target(head), refname) == 0)
		*yes = 1;
	git_reference_free(head);
	return 0;
}

/*
 * A commit written into memory (libgit2's mempack backend, ahead of the
 * disk ones in a second handle on the repository), to go out as a pack.
 */
struct packing {
	git_odb_backend *mem;     /* the objects written, none already on disk */
	git_odb *odb;             /* the second handle's: mem, then the disk */
	git_packbuilder *pb;
};

/*
 * Write a blob into pk->mem unless the disk has it.  Not through
 * git_blob_create_from_buffer(): for every new object it would rescan
 * objects/pack/ (a miss refreshes the pack list), thousands of times.
 */
static int pack_blob(struct packing *pk, git_oid *id, const char *data, size_t len)
{
	int rc = git_odb_hash(id, data, len, GIT_OBJECT_BLOB);

	if (rc < 0 || git_odb_exists_ext(pk->odb, id, GIT_ODB_LOOKUP_NO_REFRESH))
		return rc;
	return pk->mem->write(pk->mem, id, data, len, GIT_OBJECT_BLOB);
}

/* Queue id for the pack when this commit wrote it (not already on disk). */
static int pack_one(struct packing *pk, const git_oid *id, const char *name)
{
	if (!pk->mem->exists(pk->mem, id))
		return 0;
	return git_packbuilder_insert(pk->pb, id, name);   /* ignores repeats */
}

/*
 * Queue the objects the commit wrote: the commit, the blobs, and the
 * trees along the paths of the files (only those can be new).  Not
 * git_mempack_dump(): it packs every object reachable from the commit,
 * the files of earlier generations included.
 */
static int pack_new_objects(struct packing *pk, const git_oid *commit, git_tree *tree,
			    const struct gitrepo_file *files, const git_tree_update *upd, size_t nfiles)
{
	git_tree_entry *ent = NULL;
	char dir[PATH_MAX_LEN + 1], last[PATH_MAX_LEN + 1] = "";
	char *slash;
	size_t i;
	int rc;

	if ((rc = pack_one(pk, commit, NULL)) < 0 || (rc = pack_one(pk, git_tree_id(tree), NULL)) < 0)
		return rc;
	for (i = 0; i < nfiles; i++) {
		if (files[i].data && (rc = pack_one(pk, &upd[i].id, files[i].path)) < 0)
			return rc;
		snprintf(dir, sizeof(dir), "%s", files[i].path);
		if (!(slash = strrchr(dir, '/')))
			continue;
		*slash = '\0';
		if (strcmp(dir, last) == 0)
			continue;           /* the same directory as the file before */
		memcpy(last, dir, (size_t)(slash - dir) + 1);
		for (slash = dir;; slash++) {
			slash = strchr(slash, '/');
			if (slash)
				*slash = '\0';
			rc = git_tree_entry_bypath(&ent, tree, dir);
			if (rc == GIT_ENOTFOUND) {  /* emptied by a delete and removed */
				git_error_clear();
				rc = 0;
				break;
			}
			if (rc < 0)
				return rc;
			if (git_tree_entry_type(ent) == GIT_OBJECT_TREE)
				rc = pack_one(pk, git_tree_entry_id(ent), NULL);
			git_tree_entry_free(ent);
			ent = NULL;
			if (rc < 0 || !slash)
				break;
			*slash = '/';
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * Write the blobs, trees and commit object of one commit into w (and
 * queue the new ones in pk when given); the
 * parent and base tree are looked up in w (libgit2 refuses a commit
 * whose tree or parent belongs to another repository object).
 */
static int write_commit(git_oid *out, git_repository *w, struct gitrepo *r, const git_oid *parent_id,
			const char *base, const struct gitrepo_file *files, size_t nfiles,
			const char *branch, const char *message, struct packing *pk, struct err *e)
{
	git_commit *parent = NULL;
	git_tree *base_tree = NULL, *new_tree = NULL;
	git_tree_update *upd = NULL;
	git_signature *sig = NULL;
	struct buf msg = BUF_INIT;
	git_oid tree_id;
	const git_commit *parents[1];
	size_t i;
	int rc;

	if ((rc = git_commit_lookup(&parent, w, parent_id)) < 0 ||
	    (rc = git_commit_tree(&base_tree, parent)) < 0) {
		rc = git_fail(e, rc, 0, "cannot read the tree of commit %.12s", base);
		goto out;
	}
	if (nfiles && !(upd = calloc(nfiles, sizeof(*upd)))) {
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < nfiles; i++) {
		upd[i].path = files[i].path;
		if (!files[i].data) {
			upd[i].action = GIT_TREE_UPDATE_REMOVE;
			continue;
		}
		upd[i].action = GIT_TREE_UPDATE_UPSERT;
		upd[i].filemode = GIT_FILEMODE_BLOB;
		if (pk)
			rc = pack_blob(pk, &upd[i].id, files[i].data, files[i].len);
		else
			rc = git_blob_create_from_buffer(&upd[i].id, w, files[i].data, files[i].len);
		if (rc < 0) {
			rc = git_fail(e, rc, ROTOR_ERROR, "%s: cannot write blob", files[i].path);
			goto out;
		}
	}
	if ((rc = git_tree_create_updated(&tree_id, w, base_tree, nfiles, upd)) < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot build the tree for branch %s", branch);
		goto out;
	}
	if ((rc = git_tree_lookup(&new_tree, w, &tree_id)) < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot read the new tree for branch %s", branch);
		goto out;
	}

	if ((rc = signature(&sig, r, e)) < 0)
		goto out;
	/* git stores messages with a final newline. */
	if (buf_puts(&msg, message) < 0 ||
	    (message[strlen(message) - 1] != '\n' && buf_puts(&msg, "\n") < 0)) {
		rc = err_set(e, ROTOR_ETOOBIG, "commit message too long");
		goto out;
	}
	parents[0] = parent;
	rc = git_commit_create(out, w, NULL, sig, sig, NULL, buf_cstr(&msg), new_tree, 1, parents);
	if (rc < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot create the commit for branch %s", branch);
		goto out;
	}
	if (pk && (rc = pack_new_objects(pk, out, new_tree, files, upd, nfiles)) < 0)
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot pack the objects for branch %s", branch);
out:
	buf_release(&msg);
	git_signature_free(sig);
	free(upd);
	git_tree_free(new_tree);
	git_tree_free(base_tree);
	git_commit_free(parent);
	return rc;
}

/* Write packs only for commits of this many blobs (git's transfer.unpackLimit). */
#define PACK_MIN_BLOBS 100

/*
 * write_commit() into one pack with its index (.pack + .idx under
 * objects/pack/) instead of a loose file per object: the objects are
 * written into memory (struct packing), packed, and the pack is indexed
 * into r's object database.  Nothing reaches the disk before the pack.
 */
static int write_commit_packed(git_oid *out, struct gitrepo *r, const git_oid *parent_id,
			       const char *base, const struct gitrepo_file *files, size_t nfiles,
			       const char *branch, const char *message, struct err *e)
{
	struct packing pk = { NULL, NULL, NULL };
	git_repository *w = NULL;
	git_odb *wodb = NULL, *odb = NULL;
	git_odb_writepack *wp = NULL;
	git_indexer_progress stats;
	git_buf pack = GIT_BUF_INIT;
	int rc;

	memset(&stats, 0, sizeof(stats));
	rc = git_repository_open_ext(&w, gitrepo_workdir(r), GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	if (rc < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot open the repository again to write a pack");
		goto out;
	}
	if ((rc = git_mempack_new(&pk.mem)) < 0 || (rc = git_repository_odb(&wodb, w)) < 0 ||
	    (rc = git_odb_add_backend(wodb, pk.mem, 999)) < 0) {
		if (pk.mem)
			pk.mem->free(pk.mem);
		pk.mem = NULL;
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot set up an in-memory object store");
		goto out;
	}
	/* From here on wodb owns pk.mem. */
	pk.odb = wodb;
	if ((rc = git_packbuilder_new(&pk.pb, w)) < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot start a pack for branch %s", branch);
		goto out;
	}
	if ((rc = write_commit(out, w, r, parent_id, base, files, nfiles, branch, message, &pk, e)) < 0)
		goto out;
	if ((rc = git_packbuilder_write_buf(&pack, pk.pb)) < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot pack the objects for branch %s", branch);
		goto out;
	}
	if ((rc = git_repository_odb(&odb, r->repo)) < 0 ||
	    (rc = git_odb_write_pack(&wp, odb, NULL, NULL)) < 0 ||
	    (rc = wp->append(wp, pack.ptr, pack.size, &stats)) < 0 ||
	    (rc = wp->commit(wp, &stats)) < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot write the pack for branch %s", branch);
		goto out;
	}
	rc = 0;
out:
	if (wp)
		wp->free(wp);
	git_buf_dispose(&pack);
	git_packbuilder_free(pk.pb);
	git_odb_free(odb);
	git_odb_free(wodb);
	git_repository_free(w);
	return rc;
}

int gitrepo_commit_branch(char out[41], struct gitrepo *r, const char *base,
			  const struct gitrepo_file *files, size_t nfiles,
			  const char *branch, const char *message, struct err *e)
{
	char ref[sizeof(REFS_HEADS) + BRANCH_MAX_LEN + 1], logmsg[128];
	git_commit *parent = NULL;
	git_tree *base_tree = NULL;
	git_reference *newref = NULL;
	git_oid commit_id;
	size_t i, nblobs = 0;
	int rc, is_head;

	out[0] = '\0';
	if ((rc = branch_refname(ref, sizeof(ref), branch, e)) < 0)
		return rc;
	if ((rc = check_files(files, nfiles, e)) < 0)
		return rc;
	if (!message || !message[strspn(message, " \t\r\n")])
		return err_set(e, ROTOR_EINVALID, "empty commit message");
	if ((rc = lookup_commit(&parent, r, base, e)) < 0)
		goto out;

	/* Fail early (before writing objects); the create below is the real check. */
	if ((rc = ref_available(r, branch, ref, e)) < 0)
		goto out;
	if ((rc = head_names(&is_head, r, ref, e)) < 0)
		goto out;
	if (is_head) {
		rc = err_set(e, ROTOR_ESTATE, "branch %s is HEAD's unborn branch; creating it would "
			     "move HEAD under the work tree", branch);
		goto out;
	}

	if ((rc = git_commit_tree(&base_tree, parent)) < 0) {
		rc = git_fail(e, rc, 0, "cannot read the tree of commit %.12s", base);
		goto out;
	}
	for (i = 0; i < nfiles; i++) {
		if ((rc = check_against_base(base_tree, base, &files[i], e)) < 0)
			goto out;
		nblobs += files[i].data != NULL;
	}

	if (nblobs >= PACK_MIN_BLOBS)
		rc = write_commit_packed(&commit_id, r, git_commit_id(parent), base, files, nfiles,
					 branch, message, e);
	else
		rc = write_commit(&commit_id, r->repo, r, git_commit_id(parent), base, files, nfiles,
				  branch, message, NULL, e);
	if (rc < 0)
		goto out;

	/*
	 * Create-only, and race-free: force 1 with a zero expected id means
	 * "must not exist", checked while libgit2 holds <ref>.lock.  (force 0
	 * checks before taking the lock, so two racers could both "win".)
	 */
	snprintf(logmsg, sizeof(logmsg), "branch: created by rotor from %.12s", base);
	{
		git_oid none;

		memset(&none, 0, sizeof(none));
		rc = git_reference_create_matching(&newref, r->repo, ref, &commit_id, 1, &none, logmsg);
	}
	if (rc == GIT_EEXISTS || rc == GIT_EMODIFIED || rc == GIT_ELOCKED || rc == GIT_EDIRECTORY) {
		rc = git_fail(e, rc, ROTOR_EEXISTS, "cannot create branch %s", branch);
		goto out;
	}
	if (rc < 0) {
		rc = git_fail(e, rc, ROTOR_ERROR, "cannot create branch %s", branch);
		goto out;
	}
	git_oid_tostr(out, 41, &commit_id);
	rc = 0;
out:
	git_reference_free(newref);
	git_tree_free(base_tree);
	git_commit_free(parent);
	return rc;
}

/* ---- for the other gitops files (gitrepo_int.h) ----------------------- */

git_repository *gitrepo__repo(struct gitrepo *r)
{
	return r->repo;
}

int gitrepo__fail(struct err *e, int gcode, int code, const char *fmt, ...)
{
	char ctx[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	return git_fail(e, gcode, code, "%s", ctx);
}

const char *gitrepo__shown(char *out, size_t len, const char *s)
{
	return shown(out, len, s);
}

int gitrepo__signature(git_signature **out, struct gitrepo *r, struct err *e)
{
	return signature(out, r, e);
}

int gitrepo__parse_id(git_oid *oid, const char *hex, struct err *e)
{
	return parse_id(oid, hex, e);
}

int gitrepo__branch_refname(char *out, size_t len, const char *branch, struct err *e)
{
	return branch_refname(out, len, branch, e);
}

int gitrepo__check_files(const struct gitrepo_file *files, size_t nfiles, struct err *e)
{
	return check_files(files, nfiles, e);
}

int gitrepo__head_names(int *yes, struct gitrepo *r, const char *refname, struct err *e)
{
	return head_names(yes, r, refname, e);
}
