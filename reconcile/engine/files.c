/* files.c -- a role's layout expanded into managed files (see files.h). */
#include "reconcile/engine/files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

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
		if (!base)
			rc = err_set(e, ROTOR_EINVALID, "layout %s needs %s", l->name,
				     l->base == LAYOUT_BASE_DIR ? "dir" : "home");
		else if (buf_printf(&dir, "%s%s%s", base, l->subdir && base[strlen(base) - 1] != '/' ? "/" : "",
				    l->subdir ? l->subdir : "") < 0)
			rc = err_nomem(e);
		owner = r->owner ? r->owner : l->owner_is_user ? r->user : NULL;
		for (i = 0; i < l->nfiles && rc == 0; i++) {
			rc = add(v, &cnt, dir.ptr, l->files[i].name, l->files[i].content,
				 l->files[i].content == SPEC_CONTENT_TRUST || l->files[i].content == SPEC_CONTENT_CRL ? peer : me,
				 r, owner, r->group,
				 l->files[i].mode, e);
			if (rc == 0)
				v[cnt - 1].der = l->files[i].der;
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
