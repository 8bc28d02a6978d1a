/*
 * spec_edit.c -- one client added to or removed from chain.yaml's
 * `clients:` list, in place: comments, order and the rest of the text
 * stay as written (see spec.h: spec_chain_edit_clients).
 */
#include "reconcile/spec/spec_int.h"

#include <stdlib.h>
#include <string.h>

/* Byte offset of 1-based (line, column) in data, or (size_t)-1. */
static size_t offset_of(const char *data, size_t len, int line, int column)
{
	size_t i = 0;
	int l = 1;

	while (l < line) {
		const char *nl = memchr(data + i, '\n', len - i);

		if (!nl)
			return (size_t)-1;
		i = (size_t)(nl - data) + 1;
		l++;
	}
	if (column < 1 || i + (size_t)(column - 1) > len)
		return (size_t)-1;
	return i + (size_t)(column - 1);
}

static size_t line_start(const char *data, size_t off)
{
	while (off > 0 && data[off - 1] != '\n')
		off--;
	return off;
}

static size_t line_end(const char *data, size_t len, size_t off)
{
	const char *nl = memchr(data + off, '\n', len - off);

	return nl ? (size_t)(nl - data) + 1 : len;
}

/* The end of a flow item's text at off: a quoted scalar's closing quote, or up to ',', ']' or a space. */
static size_t item_end(const char *data, size_t len, size_t off)
{
	char q = data[off];
	size_t i = off + 1;

	if (q == '"' || q == '\'') {
		while (i < len && data[i] != q)
			i += data[i] == '\\' && q == '"' ? 2 : 1;
		return i < len ? i + 1 : len;
	}
	i = off;
	while (i < len && data[i] != ',' && data[i] != ']' && data[i] != ' ' && data[i] != '\n')
		i++;
	return i;
}

static int splice(struct buf *out, const char *data, size_t len, size_t from, size_t to, const char *ins)
{
	if (buf_put(out, data, from) < 0 || buf_puts(out, ins) < 0 || buf_put(out, data + to, len - to) < 0)
		return ROTOR_ENOMEM;
	return 0;
}

static int edit(struct buf *out, const char *data, size_t len, const struct ynode *key, const char *add,
		const char *remove)
{
	const struct ynode *seq = key ? key->value : NULL, *it, *last = NULL, *hit = NULL;
	struct buf ins = BUF_INIT;
	size_t at, s, e2;
	int rc = ROTOR_EINVALID, flow;

	if (!seq) {
		if (!add)
			return ROTOR_EINVALID;
		if (buf_put(out, data, len) < 0 || (len && data[len - 1] != '\n' && buf_puts(out, "\n") < 0) ||
		    buf_printf(out, "clients:\n  - %s\n", add) < 0)
			return ROTOR_ENOMEM;
		return 0;
	}
	if (seq->kind != YNODE_SEQ || (at = offset_of(data, len, seq->line, seq->column)) == (size_t)-1 || at >= len)
		return ROTOR_EINVALID;
	flow = data[at] == '[';
	for (it = seq->first; it; it = it->next) {
		if (it->kind != YNODE_SCALAR)
			return ROTOR_EINVALID;
		last = it;
		if (remove && it->len == strlen(remove) && memcmp(it->text, remove, it->len) == 0)
			hit = it;
	}
	if (add && flow) {
		/* Before the closing bracket of [a, b]. */
		e2 = last ? item_end(data, len, offset_of(data, len, last->line, last->column)) : at + 1;
		while (e2 < len && data[e2] != ']')
			e2++;
		if (e2 >= len)
			return ROTOR_EINVALID;
		if (buf_printf(&ins, "%s%s", last ? ", " : "", add) < 0)
			return ROTOR_ENOMEM;
		rc = splice(out, data, len, e2, e2, buf_cstr(&ins));
	} else if (add) {
		/* A line after the last item, with the same "  - " in front. */
		s = line_start(data, offset_of(data, len, last->line, last->column));
		at = offset_of(data, len, last->line, last->column);
		if (at - s > 64 || strspn(data + s, " -") < at - s)
			return ROTOR_EINVALID;
		e2 = line_end(data, len, at);
		if (buf_printf(&ins, "%s%.*s%s\n", e2 == len && (len == 0 || data[len - 1] != '\n') ? "\n" : "",
			       (int)(at - s), data + s, add) < 0)
			return ROTOR_ENOMEM;
		rc = splice(out, data, len, e2, e2, buf_cstr(&ins));
	} else if (hit && flow) {
		s = offset_of(data, len, hit->line, hit->column);
		e2 = item_end(data, len, s);
		while (e2 < len && data[e2] == ' ')
			e2++;
		if (e2 < len && data[e2] == ',') {
			e2++;
			while (e2 < len && data[e2] == ' ')
				e2++;
		} else {
			while (s > at + 1 && (data[s - 1] == ' ' || data[s - 1] == ','))
				s--;
		}
		rc = splice(out, data, len, s, e2, "");
	} else if (hit) {
		/* The item's whole line; the last item leaves `clients: []`. */
		size_t kend;

		at = offset_of(data, len, hit->line, hit->column);
		s = line_start(data, at);
		if (strspn(data + s, " -") < at - s)
			return ROTOR_EINVALID;
		e2 = line_end(data, len, at);
		if (seq->count > 1)
			return splice(out, data, len, s, e2, "");
		kend = offset_of(data, len, key->line, key->column);
		if (kend == (size_t)-1 || kend + key->len + 1 > s || data[kend + key->len] != ':')
			return ROTOR_EINVALID;
		kend += key->len + 1;
		if (buf_put(out, data, kend) < 0 || buf_puts(out, " []") < 0 ||
		    buf_put(out, data + kend, s - kend) < 0 || buf_put(out, data + e2, len - e2) < 0)
			return ROTOR_ENOMEM;
		rc = 0;
	}
	buf_release(&ins);
	return rc;
}

int spec_chain_edit_clients(struct buf *out, const char *path, const char *data, size_t len, const char *add,
			    const char *remove, struct err *e)
{
	struct ysink s;
	struct ydoc *doc = NULL;
	const struct ynode *root, *key = NULL;
	struct chain_spec *before = NULL, *after = NULL;
	size_t i, j;
	int rc;

	if ((add == NULL) == (remove == NULL))
		return err_set(e, ROTOR_EINVALID, "spec_chain_edit_clients: one of add and remove");
	if (spec_load_chain(&before, path, data, len, NULL) < 0)
		return err_set(e, ROTOR_EINVALID, "%s does not load", path);
	ysink_init(&s, NULL, path);
	rc = ydoc_parse(&doc, data, len, &s);
	if (rc == 0 && (root = ydoc_root(doc)) != NULL && root->kind == YNODE_MAP)
		for (key = root->first; key; key = key->next)
			if (key->kind == YNODE_SCALAR && key->len == 7 && memcmp(key->text, "clients", 7) == 0)
				break;
	if (rc == ROTOR_ENOMEM || (rc == 0 && (rc = edit(out, data, len, key, add, remove)) == ROTOR_ENOMEM)) {
		rc = err_nomem(e);
		goto out;
	}
	/* The result must load, with exactly the one change. */
	if (rc == 0 && spec_load_chain(&after, path, out->ptr ? out->ptr : "", out->len, NULL) == 0 &&
	    after->nclients == before->nclients + (add ? 1 : 0) - (remove ? 1 : 0)) {
		for (i = j = 0; i < before->nclients; i++) {
			if (remove && strcmp(before->clients[i], remove) == 0)
				continue;
			if (strcmp(before->clients[i], after->clients[j++]) != 0)
				break;
		}
		if (i == before->nclients && (!add || strcmp(after->clients[j], add) == 0))
			goto out;
	}
	rc = err_set(e, ROTOR_EINVALID, "%s: cannot %s client %s in its clients: list as written; edit it by hand",
		     path, add ? "add" : "remove", add ? add : remove);
out:
	if (rc < 0)
		buf_release(out);
	ydoc_free(doc);
	spec_chain_free(before);
	spec_chain_free(after);
	return rc;
}
