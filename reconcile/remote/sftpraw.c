/*
 * sftpraw.c -- SFTP requests rotor writes itself, on libssh2's own SFTP
 * channel (libssh2_sftp_get_channel), for what libssh2 1.10 cannot do:
 * OpenSSH's extensions (hardlink@openssh.com, posix-rename@openssh.com)
 * and many requests in flight at once.  libssh2 sends one request and
 * waits for its answer; a host's files read that way cost a round trip
 * for each lstat, open, fstat, read and close.  Here every request of a
 * round is written at once, and the answers read back in order: reading
 * all of a host's files takes three rounds.
 *
 * Safe because it only runs while libssh2 waits for nothing on the
 * channel: every libssh2 SFTP call has returned, and the server answers
 * in order, so the channel holds no packet of libssh2's (an answer with
 * an id not ours is one libssh2 gave up on: skipped).  A transport
 * failure half way leaves the channel's state unknown: the connection
 * is marked broken.  Request ids are ours (0x7274xxxx), far from
 * libssh2's counter.
 *
 * Protocol: draft-ietf-secsh-filexfer-02 (SFTP version 3, what OpenSSH
 * speaks), and OpenSSH's PROTOCOL file for the extensions.
 */
#include "reconcile/remote/ssh_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/be32.h"

#define FXP_OPEN 3
#define FXP_CLOSE 4
#define FXP_READ 5
#define FXP_WRITE 6
#define FXP_LSTAT 7
#define FXP_FSTAT 8
#define FXP_FSETSTAT 10
#define FXP_REMOVE 13
#define FXP_OPENDIR 11
#define FXP_READDIR 12
#define FXP_STATUS 101
#define FXP_HANDLE 102
#define FXP_DATA 103
#define FXP_NAME 104
#define FXP_ATTRS 105
#define FXP_EXTENDED 200

#define FXF_READ 0x1
#define FXF_WRITE 0x2
#define FXF_CREAT 0x8
#define FXF_EXCL 0x20

#define ATTR_SIZE 0x1
#define ATTR_UIDGID 0x2
#define ATTR_PERMISSIONS 0x4
#define ATTR_ACMODTIME 0x8
#define ATTR_EXTENDED 0x80000000u

#define S_TYPE 0170000
#define S_REG 0100000

#define ANSWER_MAX (256u << 10)   /* an answer longer than this is not one we asked for */
#define PREFETCH_READ_MAX 65536u  /* one READ per file; a longer file is read the usual way */
#define PREFETCH_MAX_FILES 256
#define WRITE_NEW_MAX 65536u       /* one WRITE request; a longer file is written the usual way */
#define PREFETCH_READDIRS 2       /* READDIR requests per directory; a longer listing is read the usual way */

/* One request and its answer. */
struct raw {
	unsigned char type;   /* the request's */
	struct buf req;       /* what follows the request's id */
	unsigned char atype;  /* the answer's; 0 when none arrived */
	struct buf ans;       /* what follows the answer's id */
};

static void put_u32(struct buf *b, uint32_t v)
{
	unsigned char p[4];

	be32_put(p, v);
	buf_put(b, p, 4);
}

static void put_bytes(struct buf *b, const void *s, size_t n)
{
	put_u32(b, (uint32_t)n);
	buf_put(b, s, n);
}

static void put_string(struct buf *b, const char *s)
{
	put_bytes(b, s, strlen(s));
}

/* Exactly n bytes of the channel into p (NULL: read and drop them). */
static int chan_read(struct ssh_conn *c, LIBSSH2_CHANNEL *ch, unsigned char *p, size_t n, struct err *e)
{
	unsigned char sink[1024];

	while (n > 0) {
		size_t want = p ? n : n < sizeof(sink) ? n : sizeof(sink);
		ssize_t got = libssh2_channel_read(ch, (char *)(p ? p : sink), want);

		if (got == LIBSSH2_ERROR_EAGAIN) {
			if (ssh_wait_io(c, "reading an SFTP answer", e))
				return e ? e->code : ROTOR_ERROR;
			continue;
		}
		if (got < 0)
			return ssh_lib_fail(c, e, (int)got, "reading an SFTP answer");
		if (got == 0)
			return ssh_break(c, e, ROTOR_ERROR, "%s: the SFTP channel closed", c->name);
		n -= (size_t)got;
		if (p)
			p += got;
	}
	return 0;
}

/*
 * Send the n requests at once, then read their n answers.  0 when every
 * answer arrived (each v[i].atype and v[i].ans set); otherwise the code,
 * c broken.
 */
static int raw_batch(struct ssh_conn *c, struct raw *v, size_t n, struct err *e)
{
	LIBSSH2_CHANNEL *ch;
	struct buf out = BUF_INIT;
	uint32_t first;
	size_t i, off = 0, done = 0, skipped = 0;
	int rc;

	if ((rc = ssh_usable(c, e)) != 0 || (rc = ssh_sftp_ready(c, e)) != 0)
		return rc;
	if (n == 0)
		return 0;
	if (!(ch = libssh2_sftp_get_channel(c->sftp)))
		return ssh_break(c, e, ROTOR_ERROR, "%s: no SFTP channel", c->name);
	first = 0x72740000u + c->ext_id;
	c->ext_id = (c->ext_id + (uint32_t)n) & 0xffffu;
	for (i = 0; i < n; i++) {
		v[i].atype = 0;
		if (v[i].req.err) {
			out.err = v[i].req.err;
			break;
		}
		put_u32(&out, (uint32_t)(v[i].req.len + 5));
		buf_put(&out, &v[i].type, 1);
		put_u32(&out, first + (uint32_t)i);
		buf_put(&out, v[i].req.ptr, v[i].req.len);
	}
	if (out.err) {
		rc = ssh_buf_fail(c, e, out.err, "building SFTP requests");
		goto out;
	}
	while (off < out.len) {
		ssize_t w = libssh2_channel_write(ch, out.ptr + off, out.len - off);

		if (w == LIBSSH2_ERROR_EAGAIN) {
			if (ssh_wait_io(c, "sending SFTP requests", e)) {
				rc = e ? e->code : ROTOR_ERROR;
				goto out;
			}
			continue;
		}
		if (w < 0) {
			rc = ssh_lib_fail(c, e, (int)w, "sending SFTP requests");
			if (!c->broken)   /* half a request may have gone out */
				rc = ssh_break(c, e, rc, "%s: sending SFTP requests failed", c->name);
			goto out;
		}
		off += (size_t)w;
	}
	while (done < n) {
		unsigned char head[9];
		uint32_t len, id;

		if ((rc = chan_read(c, ch, head, sizeof(head), e)) != 0)
			goto out;
		len = be32_get(head);
		id = be32_get(head + 5);
		if (len < 5 || len > ANSWER_MAX) {
			rc = ssh_break(c, e, ROTOR_ERROR, "%s: an SFTP answer of %lu bytes", c->name, (unsigned long)len);
			goto out;
		}
		if (id != first + (uint32_t)done) {
			if (++skipped > 64) {
				rc = ssh_break(c, e, ROTOR_ERROR, "%s: no answer to the SFTP requests", c->name);
				goto out;
			}
			if ((rc = chan_read(c, ch, NULL, len - 5, e)) != 0)
				goto out;
			continue;
		}
		buf_truncate(&v[done].ans, 0);
		if ((rc = buf_grow(&v[done].ans, len - 5)) != 0) {
			rc = ssh_break(c, e, rc, "%s: out of memory for an SFTP answer", c->name);
			goto out;
		}
		if ((rc = chan_read(c, ch, (unsigned char *)v[done].ans.ptr, len - 5, e)) != 0)
			goto out;
		v[done].ans.len = len - 5;
		v[done].atype = head[4];
		done++;
	}
	rc = 0;
out:
	buf_release(&out);
	return rc;
}

static void raw_release(struct raw *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		buf_wipe(&v[i].req);
		buf_wipe(&v[i].ans);
	}
	free(v);
}

/* A STATUS answer's code; (unsigned long)-1 for anything else. */
static unsigned long status_of(const struct raw *r)
{
	if (r->atype != FXP_STATUS || r->ans.len < 4)
		return (unsigned long)-1;
	return be32_get((const unsigned char *)r->ans.ptr);
}

int ssh_sftp_ext_batch(struct ssh_conn *c, struct ssh_sftp_ext *ops, size_t n, struct err *e)
{
	struct raw *v = calloc(n ? n : 1, sizeof(*v));
	size_t i;
	int rc;

	if (!v)
		return err_nomem(e);
	for (i = 0; i < n; i++) {
		v[i].type = FXP_EXTENDED;
		put_string(&v[i].req, ops[i].op);
		put_string(&v[i].req, ops[i].a);
		put_string(&v[i].req, ops[i].b);
	}
	rc = raw_batch(c, v, n, e);
	for (i = 0; i < n; i++)
		ops[i].status = rc == 0 ? status_of(&v[i]) : (unsigned long)-1;
	raw_release(v, n);
	return rc;
}

/* ---- prefetch ---------------------------------------------------------------- */

int ssh_wire_string(const unsigned char **p, const unsigned char *end, const unsigned char **s, uint32_t *len)
{
	if (end - *p < 4)
		return -1;
	*len = be32_get(*p);
	*p += 4;
	if ((size_t)(end - *p) < *len)
		return -1;
	*s = *p;
	*p += *len;
	return 0;
}

/*
 * The ATTRS at *p (moved past them) into st and *type (the file type
 * bits, 0 when not given), and *flags; -1 when they run past end.
 */
static int walk_attrs(const unsigned char **pp, const unsigned char *end, struct ssh_stat *st, unsigned *type,
		      uint32_t *flags)
{
	const unsigned char *p = *pp, *s;
	uint32_t cnt, len, k;

	memset(st, 0, sizeof(*st));
	*type = 0;
	if (end - p < 4)
		return -1;
	*flags = be32_get(p);
	p += 4;
	if (*flags & ATTR_SIZE) {
		if (end - p < 8)
			return -1;
		st->size = (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
		p += 8;
	}
	if (*flags & ATTR_UIDGID) {
		if (end - p < 8)
			return -1;
		st->uid = be32_get(p);
		st->gid = be32_get(p + 4);
		p += 8;
	}
	if (*flags & ATTR_PERMISSIONS) {
		if (end - p < 4)
			return -1;
		st->mode = be32_get(p) & 07777;
		*type = be32_get(p) & S_TYPE;
		p += 4;
	}
	if (*flags & ATTR_ACMODTIME) {
		if (end - p < 8)
			return -1;
		st->mtime = (int64_t)be32_get(p + 4);
		p += 8;
	}
	if (*flags & ATTR_EXTENDED) {
		if (end - p < 4)
			return -1;
		cnt = be32_get(p);
		p += 4;
		for (k = 0; k < cnt; k++)
			if (ssh_wire_string(&p, end, &s, &len) || ssh_wire_string(&p, end, &s, &len))
				return -1;
	}
	*pp = p;
	return 0;
}

int ssh_sftp_parse_attrs(const unsigned char *p, size_t n, struct ssh_stat *st, unsigned *type)
{
	uint32_t flags = 0;

	if (walk_attrs(&p, p + n, st, type, &flags) != 0)
		return -1;
	return (flags & ATTR_PERMISSIONS) && (flags & ATTR_SIZE) ? 0 : -1;
}

static void cached_release(struct ssh_cached *f)
{
	free(f->path);
	buf_wipe(&f->data);
	memset(f, 0, sizeof(*f));
}

static void names_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void ssh_cached_dir_release(struct ssh_cached_dir *d)
{
	free(d->dir);
	names_free(d->names, d->nnames);
	memset(d, 0, sizeof(*d));
}

void ssh_prefetch_drop(struct ssh_conn *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->ncache; i++)
		cached_release(&c->cache[i]);
	free(c->cache);
	c->cache = NULL;
	c->ncache = 0;
	for (i = 0; i < c->ndirs; i++)
		ssh_cached_dir_release(&c->dirs[i]);
	free(c->dirs);
	c->dirs = NULL;
	c->ndirs = 0;
}

int ssh_cached_dir_take(struct ssh_conn *c, const char *dir, char ***names, size_t *nnames)
{
	size_t i;

	for (i = 0; i < c->ndirs; i++) {
		struct ssh_cached_dir *d = &c->dirs[i];

		if (!d->dir || !d->complete || strcmp(d->dir, dir) != 0)
			continue;
		*names = d->names;
		*nnames = d->nnames;
		free(d->dir);
		memset(d, 0, sizeof(*d));   /* once */
		return 0;
	}
	return 1;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int ssh_sftp_parse_names(struct ssh_cached_dir *d, const unsigned char *p, size_t n)
{
	const unsigned char *end = p + n, *s, *l;
	uint32_t cnt, k, sl, ll, flags;
	struct ssh_stat st;
	unsigned type;

	if (n < 4)
		return -1;
	cnt = be32_get(p);
	p += 4;
	for (k = 0; k < cnt; k++) {
		char **nv;

		if (ssh_wire_string(&p, end, &s, &sl) != 0 || ssh_wire_string(&p, end, &l, &ll) != 0 || memchr(s, '\0', sl))
			return -1;
		if (walk_attrs(&p, end, &st, &type, &flags) != 0)   /* walked over: only the name is kept */
			return -1;
		if (!(nv = realloc(d->names, (d->nnames + 2) * sizeof(*nv))))
			return ROTOR_ENOMEM;
		d->names = nv;
		if (!(nv[d->nnames] = strndup((const char *)s, sl)))
			return ROTOR_ENOMEM;
		nv[++d->nnames] = NULL;
	}
	return 0;
}

/* The directory of path (absolute) as a new string, or NULL. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

int ssh_cached_take(struct ssh_conn *c, const char *path, struct buf *out, struct ssh_stat *st_out, struct err *e)
{
	size_t i;
	int rc;

	for (i = 0; i < c->ncache; i++) {
		struct ssh_cached *f = &c->cache[i];

		if (!f->path || strcmp(f->path, path) != 0)
			continue;
		if (f->missing) {
			rc = err_set(e, ROTOR_ENOTFOUND, "%s: cannot open %s: no such file", c->name, path);
		} else if ((rc = buf_put(out, f->data.ptr, f->data.len)) != 0) {
			rc = err_set(e, rc, "%s: %s does not fit in the buffer", c->name, path);
		} else if (st_out) {
			*st_out = f->st;
		}
		cached_release(f);   /* once: a later read goes to the host */
		return rc;
	}
	return 1;
}

/* What a prefetch found at path, kept for ssh_read_file(). */
static int keep(struct ssh_conn *c, const char *path, int missing, const struct ssh_stat *st, const void *data,
		size_t len)
{
	struct ssh_cached *f = &c->cache[c->ncache];

	memset(f, 0, sizeof(*f));
	if (!(f->path = strdup(path)) || buf_put(&f->data, data ? data : "", len) != 0) {
		cached_release(f);
		return ROTOR_ENOMEM;
	}
	f->missing = missing;
	if (st)
		f->st = *st;
	c->ncache++;
	return 0;
}

int ssh_prefetch(struct ssh_conn *c, const char *const *paths, size_t n, size_t max, struct err *e)
{
	struct raw *v1 = NULL, *v2 = NULL, *v3 = NULL;
	size_t *at = NULL, *dat = NULL, i, k, j, nopen = 0, nh = 0, nd = 0, ndh = 0;
	struct ssh_stat st;
	unsigned type;
	int rc;

	ssh_prefetch_drop(c);
	if (n > PREFETCH_MAX_FILES)
		n = PREFETCH_MAX_FILES;
	if (n == 0 || c->no_sftp_ext)
		return 0;
	if ((rc = ssh_usable(c, e)) != 0 || (rc = ssh_sftp_ready(c, e)) != 0)
		return rc;
	for (i = 0; i < n; i++)
		if (ssh_check_path(c, paths[i], NULL) != 0)
			return 0;   /* the usual read says what is wrong with it */
	/* v1: n lstat, then an opendir per directory; v2: n open, then READDIRs and a close per directory. */
	v1 = calloc(2 * n, sizeof(*v1));
	v2 = calloc(n * (2 + PREFETCH_READDIRS), sizeof(*v2));
	v3 = calloc(3 * n, sizeof(*v3));
	at = calloc(n, sizeof(*at));
	dat = calloc(n, sizeof(*dat));
	c->cache = calloc(n, sizeof(*c->cache));
	c->dirs = calloc(n, sizeof(*c->dirs));
	if (!v1 || !v2 || !v3 || !at || !dat || !c->cache || !c->dirs)
		goto nomem;
	/* Round 1: lstat every path; open every directory (ssh_find_strays lists them).  Only a
	 * regular file within the caps is opened (never a link, a FIFO). */
	for (i = 0; i < n; i++) {
		char *d = dir_of(paths[i]);

		v1[i].type = FXP_LSTAT;
		put_string(&v1[i].req, paths[i]);
		if (!d)
			goto nomem;
		for (k = 0; k < nd && strcmp(c->dirs[k].dir, d) != 0; k++)
			;
		if (k < nd) {
			free(d);
			continue;
		}
		c->dirs[nd].dir = d;
		v1[n + nd].type = FXP_OPENDIR;
		put_string(&v1[n + nd].req, d);
		nd++;
	}
	c->ndirs = nd;
	if ((rc = raw_batch(c, v1, n + nd, e)) != 0)
		goto out;
	for (k = 0; k < nd; k++) {
		unsigned long fx = status_of(&v1[n + k]);

		/* No directory: nothing in it (as the usual listing says); refused: the usual listing decides. */
		if (fx == LIBSSH2_FX_NO_SUCH_FILE || fx == LIBSSH2_FX_NO_SUCH_PATH)
			c->dirs[k].complete = 1;
	}
	for (i = 0; i < n; i++) {
		if (status_of(&v1[i]) == LIBSSH2_FX_NO_SUCH_FILE) {
			if (keep(c, paths[i], 1, NULL, NULL, 0) != 0)
				goto nomem;
			continue;
		}
		if (v1[i].atype != FXP_ATTRS ||
		    ssh_sftp_parse_attrs((const unsigned char *)v1[i].ans.ptr, v1[i].ans.len, &st, &type) != 0 ||
		    type != S_REG || st.size > max || st.size >= PREFETCH_READ_MAX)
			continue;   /* a link, a directory, too big, refused: the usual read says so */
		at[nopen] = i;
		v2[nopen].type = FXP_OPEN;
		put_string(&v2[nopen].req, paths[i]);
		put_u32(&v2[nopen].req, FXF_READ);
		put_u32(&v2[nopen].req, 0);   /* no attributes */
		nopen++;
	}
	/* Round 2: open them; read every open directory (PREFETCH_READDIRS answers at most) and close it. */
	for (k = 0, j = nopen; k < nd; k++) {
		const unsigned char *p = (const unsigned char *)v1[n + k].ans.ptr, *h;
		uint32_t hl;
		size_t r;

		if (v1[n + k].atype != FXP_HANDLE || ssh_wire_string(&p, p + v1[n + k].ans.len, &h, &hl) != 0)
			continue;
		for (r = 0; r <= PREFETCH_READDIRS; r++) {
			v2[j + r].type = r < PREFETCH_READDIRS ? FXP_READDIR : FXP_CLOSE;
			put_bytes(&v2[j + r].req, h, hl);
		}
		dat[ndh++] = k;
		j += PREFETCH_READDIRS + 1;
	}
	if ((rc = raw_batch(c, v2, j, e)) != 0)
		goto out;
	for (k = 0; k < ndh; k++) {
		struct raw *r = v2 + nopen + k * (PREFETCH_READDIRS + 1);
		struct ssh_cached_dir *d = &c->dirs[dat[k]];
		size_t m;

		/* Complete when an answer said end of file, every one before it a list of names. */
		for (m = 0; m < PREFETCH_READDIRS; m++) {
			if (status_of(&r[m]) == LIBSSH2_FX_EOF) {
				d->complete = 1;
				break;
			}
			if (r[m].atype != FXP_NAME ||
			    (rc = ssh_sftp_parse_names(d, (const unsigned char *)r[m].ans.ptr, r[m].ans.len)) != 0)
				break;
		}
		if (rc == ROTOR_ENOMEM)
			goto nomem;
		rc = 0;
		if (d->complete && d->nnames)
			qsort(d->names, d->nnames, sizeof(*d->names), cmp_name);
	}
	/* Round 3: for each handle: fstat, one read, close. */
	for (k = 0; k < nopen; k++) {
		const unsigned char *p = (const unsigned char *)v2[k].ans.ptr, *h;
		uint32_t hl;
		struct raw *r = v3 + 3 * nh;

		if (v2[k].atype != FXP_HANDLE || ssh_wire_string(&p, p + v2[k].ans.len, &h, &hl) != 0)
			continue;   /* refused (permission: the usual read may go through sudo) */
		r[0].type = FXP_FSTAT;
		put_bytes(&r[0].req, h, hl);
		r[1].type = FXP_READ;
		put_bytes(&r[1].req, h, hl);
		put_u32(&r[1].req, 0);   /* offset, 64 bits */
		put_u32(&r[1].req, 0);
		put_u32(&r[1].req, PREFETCH_READ_MAX);
		r[2].type = FXP_CLOSE;
		put_bytes(&r[2].req, h, hl);
		at[nh++] = at[k];
	}
	if ((rc = raw_batch(c, v3, 3 * nh, e)) != 0)
		goto out;
	for (k = 0; k < nh; k++) {
		struct raw *r = v3 + 3 * k;
		const unsigned char *p = (const unsigned char *)r[1].ans.ptr, *d = NULL;
		uint32_t dl = 0;

		if (r[0].atype != FXP_ATTRS ||
		    ssh_sftp_parse_attrs((const unsigned char *)r[0].ans.ptr, r[0].ans.len, &st, &type) != 0 || type != S_REG)
			continue;
		if (r[1].atype == FXP_DATA) {
			if (ssh_wire_string(&p, p + r[1].ans.len, &d, &dl) != 0)
				continue;
		} else if (status_of(&r[1]) != LIBSSH2_FX_EOF) {
			continue;
		}
		/* All of it, as fstat saw it, within the cap; else the usual read. */
		if (dl != st.size || dl > max)
			continue;
		if (keep(c, paths[at[k]], 0, &st, d, dl) != 0)
			goto nomem;
	}
	rc = 0;
	goto out;
nomem:
	rc = err_nomem(e);
out:
	if (rc)
		ssh_prefetch_drop(c);
	if (v1)
		raw_release(v1, 2 * n);
	if (v2)
		raw_release(v2, n * (2 + PREFETCH_READDIRS));
	if (v3)
		raw_release(v3, 3 * n);
	free(at);
	free(dat);
	return rc;
}

/* ---- a new file in two rounds ----------------------------------------------- */

/* e from a failed request's status fx: "NAME: WHAT PATH: TEXT" (ROTOR_ENOTFOUND for a missing file). */
static int fx_fail(struct ssh_conn *c, struct err *e, unsigned long fx, const char *what, const char *path)
{
	int code = fx == LIBSSH2_FX_NO_SUCH_FILE || fx == LIBSSH2_FX_NO_SUCH_PATH ? ROTOR_ENOTFOUND : ROTOR_ERROR;

	return err_set(e, code, "%s: %s %s: %s", c->name, what, path,
		       fx == (unsigned long)-1 ? "unexpected answer" : ssh_fx_text(fx));
}

int ssh_sftp_write_new(struct ssh_conn *c, const char *tmp, const void *data, size_t len, unsigned mode,
		       int *created, struct err *e)
{
	struct raw *v;
	const unsigned char *p, *h;
	uint32_t hl;
	unsigned long fx;
	size_t n = 0;
	int rc;

	*created = 0;
	if (c->no_sftp_ext || len > WRITE_NEW_MAX)
		return 1;
	if (!(v = calloc(5, sizeof(*v))))
		return err_nomem(e);
	/* Round 1: create it, mode 0600 until the bytes are in. */
	v[0].type = FXP_OPEN;
	put_string(&v[0].req, tmp);
	put_u32(&v[0].req, FXF_WRITE | FXF_CREAT | FXF_EXCL);
	put_u32(&v[0].req, ATTR_PERMISSIONS);
	put_u32(&v[0].req, 0600);
	if ((rc = raw_batch(c, v, 1, e)) != 0)
		goto out;
	p = (const unsigned char *)v[0].ans.ptr;
	if (v[0].atype != FXP_HANDLE || ssh_wire_string(&p, p + v[0].ans.len, &h, &hl) != 0) {
		rc = fx_fail(c, e, status_of(&v[0]), "cannot create temporary file", tmp);
		goto out;
	}
	*created = 1;
	/* Round 2: the bytes, fsync, the mode, close; all sent at once, carried out in order. */
	if (len) {
		v[1 + n].type = FXP_WRITE;
		put_bytes(&v[1 + n].req, h, hl);
		put_u32(&v[1 + n].req, 0);   /* offset, 64 bits */
		put_u32(&v[1 + n].req, 0);
		put_bytes(&v[1 + n].req, data, len);
		n++;
	}
	v[1 + n].type = FXP_EXTENDED;
	put_string(&v[1 + n].req, "fsync@openssh.com");
	put_bytes(&v[1 + n].req, h, hl);
	n++;
	v[1 + n].type = FXP_FSETSTAT;
	put_bytes(&v[1 + n].req, h, hl);
	put_u32(&v[1 + n].req, ATTR_PERMISSIONS);
	put_u32(&v[1 + n].req, mode & 07777);
	n++;
	v[1 + n].type = FXP_CLOSE;
	put_bytes(&v[1 + n].req, h, hl);
	n++;
	if ((rc = raw_batch(c, v + 1, n, e)) != 0)
		goto out;
	n = 1;
	if (len && (fx = status_of(&v[n++])) != LIBSSH2_FX_OK) {
		LIBSSH2_SFTP_STATVFS sv;
		struct err ignore = ERR_INIT;
		int r;

		/* OpenSSH answers a full disk with the generic failure: ask for the free space. */
		memset(&sv, 0, sizeof(sv));
		if (fx == LIBSSH2_FX_FAILURE) {
			NB_INT(c, &ignore, "asking for free space", r,
			       libssh2_sftp_statvfs(c->sftp, tmp, strlen(tmp), &sv));
			if (r == 0 && sv.f_frsize && sv.f_bavail < (len + sv.f_frsize - 1) / sv.f_frsize) {
				rc = err_set(e, ROTOR_ERROR, "%s: cannot write %s: no space left on device (%llu bytes free)",
					     c->name, tmp, (unsigned long long)(sv.f_bavail * sv.f_frsize));
				goto out;
			}
		}
		rc = fx_fail(c, e, fx, "cannot write", tmp);
		goto out;
	}
	fx = status_of(&v[n++]);
	if (fx != LIBSSH2_FX_OK && fx != LIBSSH2_FX_OP_UNSUPPORTED) {
		rc = fx_fail(c, e, fx, "cannot fsync", tmp);
		goto out;
	}
	if ((fx = status_of(&v[n++])) != LIBSSH2_FX_OK) {
		rc = fx_fail(c, e, fx, "cannot set the mode of", tmp);
		goto out;
	}
	if ((fx = status_of(&v[n++])) != LIBSSH2_FX_OK) {
		rc = fx_fail(c, e, fx, "cannot close", tmp);
		goto out;
	}
	rc = 0;
out:
	raw_release(v, 5);
	return rc;
}

/* ---- removing files ------------------------------------------------------------ */

int ssh_sftp_remove_batch(struct ssh_conn *c, const char *const *paths, size_t n, unsigned long *status,
			  struct err *e)
{
	struct raw *v;
	size_t i;
	int rc;

	if (c->no_sftp_ext)
		return 1;
	if (!(v = calloc(n ? n : 1, sizeof(*v))))
		return err_nomem(e);
	for (i = 0; i < n; i++) {
		v[i].type = FXP_REMOVE;
		put_string(&v[i].req, paths[i]);
	}
	rc = raw_batch(c, v, n, e);
	for (i = 0; i < n; i++)
		status[i] = rc == 0 ? status_of(&v[i]) : (unsigned long)-1;
	raw_release(v, n);
	return rc;
}
