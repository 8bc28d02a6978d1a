/* layout.c -- role presets expanded into managed files (see layout.h). */
#include "reconcile/services/layout.h"

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
	if ((content != SPEC_CONTENT_TRUST && r->identity && !(f->identity = xstrdup(r->identity, e))) ||
	    (owner && !(f->owner = xstrdup(owner, e))) || (group && !(f->group = xstrdup(group, e)))) {
		(*n)++;
		return err_nomem(e);
	}
	(*n)++;
	return 0;
}

int layout_expand(struct managed_file **out, size_t *n, const struct host_role *r, struct err *e)
{
	struct managed_file *v;
	enum layout_side me = r->role == SPEC_ROLE_SERVER ? LAYOUT_SIDE_SERVER : LAYOUT_SIDE_CLIENT;
	enum layout_side peer = me == LAYOUT_SIDE_SERVER ? LAYOUT_SIDE_CLIENT : LAYOUT_SIDE_SERVER;
	struct buf dir = BUF_INIT;
	size_t cnt = 0, i;
	int rc = 0;

	*out = NULL;
	*n = 0;
	v = calloc(r->nfiles > 3 ? r->nfiles : 3, sizeof(*v));
	if (!v)
		return err_nomem(e);
	if (!r->layout) {
		for (i = 0; i < r->nfiles && rc == 0; i++) {
			const struct host_file *hf = &r->files[i];
			const char *slash = strrchr(hf->path, '/');
			int mode = hf->mode >= 0 ? hf->mode : hf->content == SPEC_CONTENT_KEY ? 0600 : 0644;

			buf_release(&dir);
			if (!slash || buf_put(&dir, hf->path, (size_t)(slash - hf->path)) < 0) {
				rc = slash ? err_nomem(e) : err_set(e, ROTOR_EINVALID, "file path \"%s\" is not absolute", hf->path);
				break;
			}
			rc = add(v, &cnt, dir.len ? dir.ptr : "/", slash + 1, hf->content,
				 hf->content == SPEC_CONTENT_TRUST ? peer : me, r,
				 hf->owner ? hf->owner : r->owner, hf->group ? hf->group : r->group, mode, e);
		}
	} else if (strcmp(r->layout, "postgres") == 0 || strcmp(r->layout, "cockroach") == 0) {
		int pg = r->layout[0] == 'p';

		if (!r->dir)
			rc = err_set(e, ROTOR_EINVALID, "layout %s needs dir", r->layout);
		if (!rc)
			rc = add(v, &cnt, r->dir, pg ? "server.crt" : "node.crt", SPEC_CONTENT_LEAF_CHAIN, me, r,
				 r->owner, r->group, 0644, e);
		if (!rc)
			rc = add(v, &cnt, r->dir, pg ? "server.key" : "node.key", SPEC_CONTENT_KEY, me, r,
				 r->owner, r->group, 0600, e);
		if (!rc)
			rc = add(v, &cnt, r->dir, pg ? "root.crt" : "ca.crt", SPEC_CONTENT_TRUST, peer, r,
				 r->owner, r->group, 0644, e);
	} else if (strcmp(r->layout, "libpq") == 0) {
		if (!r->home)
			rc = err_set(e, ROTOR_EINVALID, "layout libpq needs home");
		else if (buf_printf(&dir, "%s%s.postgresql", r->home,
				    r->home[strlen(r->home) - 1] == '/' ? "" : "/") < 0)
			rc = err_nomem(e);
		if (!rc)
			rc = add(v, &cnt, dir.ptr, "postgresql.crt", SPEC_CONTENT_LEAF_CHAIN, me, r,
				 r->owner ? r->owner : r->user, r->group, 0644, e);
		if (!rc)
			rc = add(v, &cnt, dir.ptr, "postgresql.key", SPEC_CONTENT_KEY, me, r,
				 r->owner ? r->owner : r->user, r->group, 0600, e);
		if (!rc)
			rc = add(v, &cnt, dir.ptr, "root.crt", SPEC_CONTENT_TRUST, peer, r,
				 r->owner ? r->owner : r->user, r->group, 0644, e);
	} else {
		rc = err_set(e, ROTOR_EINVALID, "unknown layout \"%s\"", r->layout);
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

const char *layout_content_name(enum spec_content c)
{
	switch (c) {
	case SPEC_CONTENT_LEAF: return "leaf";
	case SPEC_CONTENT_LEAF_CHAIN: return "leaf+chain";
	case SPEC_CONTENT_KEY: return "key";
	case SPEC_CONTENT_TRUST: return "trust";
	}
	return "?";
}
