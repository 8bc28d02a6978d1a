/* files.c -- a role's layout expanded into managed files (see files.h). */
#include "reconcile/engine/files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "reconcile/pki/pki.h"

static int add(struct managed_file *v, size_t *n, const char *dir, const char *name,
	       enum spec_content content, enum layout_side side, const struct host_role *r,
	       const char *owner, const char *group, int mode, struct err *e)
{
	struct managed_file *f = &v[*n];
	struct buf p = BUF_INIT;
	size_t dl = strlen(dir);

	if (buf_printf(&p, "%.*s/%s", (int)(dl > 1 && dir[dl - 1] == '/' ? dl - 1 : dl), dir, name) < 0)
		return err_nomem(e);
	memset(f, 0, sizeof(*f));
	f->path = buf_detach(&p);
	f->content = content;
	f->side = side;
	f->mode = mode;
	(*n)++;
	if ((content != SPEC_CONTENT_TRUST && content != SPEC_CONTENT_CRL && r->identity && !(f->identity = xstrdup(r->identity, e))) ||
	    (owner && !(f->owner = xstrdup(owner, e))) || (group && !(f->group = xstrdup(group, e))))
		return err_nomem(e);
	return 0;
}

/* An explicit file set: each file names its own path. */
static int expand_files(struct managed_file *v, size_t *cnt, const struct host_role *r, enum layout_side me,
			enum layout_side peer, struct err *e)
{
	struct buf dir = BUF_INIT;
	size_t i;
	int rc = 0;

	for (i = 0; i < r->nfiles && rc == 0; i++) {
		const struct host_file *hf = &r->files[i];
		const char *slash = strrchr(hf->path, '/');
		int mode = hf->mode >= 0 ? hf->mode : hf->content == SPEC_CONTENT_KEY ? 0600 : 0644;

		buf_release(&dir);
		if (!slash || buf_put(&dir, hf->path, (size_t)(slash - hf->path)) < 0) {
			rc = slash ? err_nomem(e) : err_set(e, ROTOR_EINVALID, "file path \"%s\" is not absolute", hf->path);
			break;
		}
		rc = add(v, cnt, dir.len ? dir.ptr : "/", slash + 1, hf->content,
			 hf->content == SPEC_CONTENT_TRUST || hf->content == SPEC_CONTENT_CRL ? peer : me, r,
			 hf->owner ? hf->owner : r->owner, hf->group ? hf->group : r->group, mode, e);
	}
	buf_release(&dir);
	return rc;
}

int layout_expand(struct managed_file **out, size_t *n, const struct host_role *r, struct err *e)
{
	const struct layout_def *l = r->layout;
	enum layout_side me = r->role == SPEC_ROLE_SERVER ? LAYOUT_SIDE_SERVER : LAYOUT_SIDE_CLIENT;
	enum layout_side peer = me == LAYOUT_SIDE_SERVER ? LAYOUT_SIDE_CLIENT : LAYOUT_SIDE_SERVER;
	struct managed_file *v;
	struct buf dir = BUF_INIT;
	const char *base = NULL, *owner;
	size_t cnt = 0, i;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!l)
		return err_set(e, ROTOR_EINVALID, "a role without a layout or files");
	v = calloc((l->base == LAYOUT_BASE_NONE ? r->nfiles : l->nfiles) + 1, sizeof(*v));
	if (!v)
		return err_nomem(e);
	if (l->base == LAYOUT_BASE_NONE) {
		rc = expand_files(v, &cnt, r, me, peer, e);
	} else {
		base = l->base == LAYOUT_BASE_DIR ? r->dir : r->home;
		if (r->service && r->switch_dir) {
			/* Switch mode: nominal paths; observe puts what the service file names in their place. */
			if (buf_puts(&dir, r->switch_dir) < 0)
				rc = err_nomem(e);
		} else if (!base)
			rc = err_set(e, ROTOR_EINVALID, "layout %s needs %s", l->name,
				     l->base == LAYOUT_BASE_DIR ? "dir" : "home");
		else if (buf_printf(&dir, "%s%s%s", base, l->subdir && base[strlen(base) - 1] != '/' ? "/" : "",
				    l->subdir ? l->subdir : "") < 0)
			rc = err_nomem(e);
		owner = r->owner ? r->owner : l->owner_is_user ? r->user : NULL;
		for (i = 0; i < l->nfiles && rc == 0; i++) {
			char name[256];

			if (!layout_file_for(&l->files[i], me))
				continue;
			if (layout_file_name(name, sizeof(name), &l->files[i], r->user) < 0) {
				rc = err_set(e, ROTOR_EINVALID, "layout %s needs user", l->name);
				break;
			}
			rc = add(v, &cnt, dir.ptr, name, l->files[i].content,
				 l->files[i].content == SPEC_CONTENT_TRUST || l->files[i].content == SPEC_CONTENT_CRL ? peer : me,
				 r, owner, r->group, l->files[i].mode, e);
			if (rc == 0)
				v[cnt - 1].form = l->files[i].form;
		}
	}
	buf_release(&dir);
	if (rc) {
		layout_free(v, cnt);
		return rc;
	}
	*out = v;
	*n = cnt;
	return 0;
}

void layout_free(struct managed_file *files, size_t n)
{
	size_t i;

	for (i = 0; files && i < n; i++) {
		free(files[i].path);
		free(files[i].identity);
		free(files[i].owner);
		free(files[i].group);
	}
	free(files);
}

const char *role_reload(const struct host_role *role)
{
	return role->reload ? role->reload : role->layout ? role->layout->default_reload : NULL;
}

/* ---- switch mode ---- */

static char *dup_n(const char *s, size_t n, struct err *e)
{
	char *p = malloc(n + 1);

	if (!p) {
		err_nomem(e);
		return NULL;
	}
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* Is the line [b, le) (trimmed) the header of section service? */
static int is_section(const char *b, const char *le, const char *service)
{
	size_t sl = strlen(service);

	return le > b && *b == '[' && le[-1] == ']' && (size_t)(le - b) == sl + 2 && memcmp(b + 1, service, sl) == 0;
}

int switch_parse(struct switch_point *out, const char *data, size_t len, const char *service, struct err *e)
{
	const char *p = data, *end = data + len;
	int in = 0;

	memset(out, 0, sizeof(*out));
	out->by_rotor = len >= strlen(SWITCH_MARKER) && memcmp(data, SWITCH_MARKER, strlen(SWITCH_MARKER)) == 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end, *b = p, *eq;
		char **slot = NULL;

		p = nl ? nl + 1 : end;
		while (b < le && (*b == ' ' || *b == '\t'))
			b++;
		while (le > b && (le[-1] == ' ' || le[-1] == '\t' || le[-1] == '\r'))
			le--;
		if (b == le || *b == '#')
			continue;
		if (*b == '[') {
			in = is_section(b, le, service);
			out->has_section |= in;
			continue;
		}
		if (!in || !(eq = memchr(b, '=', (size_t)(le - b))))
			continue;
		if ((size_t)(eq - b) == 7 && memcmp(b, "sslcert", 7) == 0)
			slot = &out->cert;
		else if ((size_t)(eq - b) == 6 && memcmp(b, "sslkey", 6) == 0)
			slot = &out->key;
		else if ((size_t)(eq - b) == 11 && memcmp(b, "sslrootcert", 11) == 0)
			slot = &out->root;
		if (slot) {
			free(*slot);
			if (!(*slot = dup_n(eq + 1, (size_t)(le - eq - 1), e))) {
				switch_point_release(out);
				return ROTOR_ENOMEM;
			}
		}
	}
	return 0;
}

void switch_point_release(struct switch_point *p)
{
	free(p->cert);
	free(p->key);
	free(p->root);
	memset(p, 0, sizeof(*p));
}

int switch_render(struct buf *out, const char *old, size_t old_len, const char *service, const char *dir,
		  struct err *e)
{
	const char *p = old, *end = old ? old + old_len : NULL;
	size_t ml = strlen(SWITCH_MARKER);
	int in = 0;

	buf_puts(out, SWITCH_MARKER);
	if (old && old_len >= ml && memcmp(old, SWITCH_MARKER, ml) == 0)
		p += ml;
	/* Every other section of an adopted file stays as it was. */
	while (p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end, *b = p;

		while (b < le && (*b == ' ' || *b == '\t'))
			b++;
		if (b < le && *b == '[') {
			const char *te = le;

			while (te > b && (te[-1] == ' ' || te[-1] == '\t' || te[-1] == '\r'))
				te--;
			in = is_section(b, te, service);
		}
		if (!in) {
			buf_put(out, p, (size_t)(le - p));
			buf_puts(out, "\n");
		}
		p = nl ? nl + 1 : end;
	}
	buf_printf(out, "[%s]\nsslcert=%s/postgresql.crt\nsslkey=%s/postgresql.key\nsslrootcert=%s/root.crt\n"
			"sslmode=verify-full\n", service, dir, dir, dir);
	return out->err ? err_nomem(e) : 0;
}

int sha256_hex(char out[65], const char *data, size_t len, struct err *e)
{
	if (pki_sha256_hex(out, data ? data : "", len) < 0)
		return err_set(e, ROTOR_ERROR, "SHA-256 failed");
	return 0;
}

/* The first 16 hex digits of the SHA-256 of data. */
static int sha16(char *out, const char *data, size_t len, struct err *e)
{
	char full[65];
	int rc;

	if ((rc = sha256_hex(full, data, len, e)) < 0)
		return rc;
	memcpy(out, full, 16);
	return 0;
}

int switch_dir_name(char out[SWITCH_DIR_NAME_LEN + 1], const char *leaf, size_t leaf_len, const char *bundle,
		    size_t bundle_len, struct err *e)
{
	int rc;

	if ((rc = sha16(out, leaf, leaf_len, e)) < 0 || (rc = sha16(out + 17, bundle, bundle_len, e)) < 0)
		return rc;
	out[16] = '-';
	out[SWITCH_DIR_NAME_LEN] = '\0';
	return 0;
}

int switch_dir_name_ok(const char *name)
{
	size_t i;

	for (i = 0; i < SWITCH_DIR_NAME_LEN; i++)
		if (i == 16 ? name[i] != '-' : !((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	return name[SWITCH_DIR_NAME_LEN] == '\0';
}
