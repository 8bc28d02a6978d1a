/*
 * savedplan.c -- write, read and check a saved plan (savedplan.h).
 */
#define _DEFAULT_SOURCE
#include "reconcile/engine/savedplan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reconcile/engine/report.h"

#define FORMAT_NAME "rotor-saved-plan"
#define MAX_ITEMS 1000000

/* ---- writing ---- */

static json_t *host_doc(const struct env_run *r, size_t h)
{
	const struct obs_host *oh = &r->hosts[h];
	json_t *files = json_array(), *served = json_array();
	size_t f;

	for (f = 0; files && f < oh->nfiles; f++) {
		const struct obs_file *of = &oh->files[f];

		if (json_array_append_new(files, json_pack("{s:o, s:b, s:o}", "path", json_text(of->path), "present",
							  of->present, "sha256",
							  of->sha256[0] ? json_string(of->sha256) : json_null())) < 0) {
			json_decref(files);
			files = NULL;
		}
	}
	for (f = 0; served && f < r->nserved; f++) {
		if (r->served[f].host != h)
			continue;
		if (json_array_append_new(served, json_pack("{s:i, s:o}", "port", r->served[f].port, "leaf",
							   r->served[f].presents[0] ? json_text(r->served[f].presents)
										    : json_null())) < 0) {
			json_decref(served);
			served = NULL;
		}
	}
	if (!files || !served) {
		json_decref(files);
		json_decref(served);
		return NULL;
	}
	return json_pack("{s:o, s:o, s:b, s:o, s:o}", "name", json_text(oh->name), "address", json_text(oh->address),
			 "reachable", oh->reachable, "files", files, "served", served);
}

int savedplan_json(struct buf *out, const struct env_run *r, int replace_unknown)
{
	json_t *hosts = json_array(), *doc;
	size_t h;

	for (h = 0; hosts && h < r->nhosts; h++)
		if (json_array_append_new(hosts, host_doc(r, h)) < 0) {
			json_decref(hosts);
			hosts = NULL;
		}
	if (!hosts)
		return ROTOR_ENOMEM;
	doc = json_pack("{s:s, s:i, s:o, s:o, s:o, s:b, s:b, s:o, s:o}", "format", FORMAT_NAME, "version",
			SAVEDPLAN_VERSION, "env", json_text(r->st.env), "commit", json_text(r->src.commit), "desired_from",
			desired_from_json(&r->desired), "replace_unknown", replace_unknown, "probed", r->probed, "hosts",
			hosts, "steps", plan_steps_json(r));
	return json_emit(out, doc);
}

int savedplan_write(const char *path, const struct buf *doc, struct err *e)
{
	char tmp[4200];
	size_t off = 0;
	ssize_t n;
	int fd, saved;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp))
		return err_set(e, ROTOR_EINVALID, "%s: path too long", path);
	if ((fd = mkstemp(tmp)) < 0)
		return err_set(e, ROTOR_ERROR, "%s: cannot create a temporary file next to it: %s", path, strerror(errno));
	while (off < doc->len) {
		n = write(fd, doc->ptr + off, doc->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		off += (size_t)n;
	}
	if (fchmod(fd, 0600) != 0 || fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	return 0;
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return err_set(e, ROTOR_ERROR, "%s: cannot write it: %s", path, strerror(saved ? saved : EIO));
}

/* ---- reading ---- */

void savedplan_release(struct saved_plan *sp)
{
	size_t h, f;

	for (h = 0; h < sp->nhosts; h++) {
		for (f = 0; f < sp->hosts[h].nfiles; f++)
			free(sp->hosts[h].files[f].path);
		free(sp->hosts[h].files);
		free(sp->hosts[h].served);
		free(sp->hosts[h].name);
		free(sp->hosts[h].address);
	}
	free(sp->hosts);
	json_decref(sp->steps);
	memset(sp, 0, sizeof(*sp));
}

/* Is s exactly n lowercase hex digits? */
static int hex_lower(const char *s, size_t n)
{
	return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

/* A SHA-256 fingerprint as manifests write it: 32 uppercase hex pairs joined by colons. */
static int fingerprint_ok(const char *s)
{
	size_t i;

	if (strlen(s) != 95)
		return 0;
	for (i = 0; i < 95; i++)
		if (i % 3 == 2 ? s[i] != ':' : !strchr("0123456789ABCDEF", s[i]) || !s[i])
			return 0;
	return 1;
}

/* A string member of o (required), at most max bytes, no NUL; *out borrowed from o. */
static int get_text(const char **out, json_t *o, const char *key, size_t max, const char *where, struct err *e)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v))
		return err_set(e, ROTOR_EINVALID, "%s\"%s\" is missing or not a string", where, key);
	if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
		return err_set(e, ROTOR_EINVALID, "%s\"%s\" is too long or holds a NUL", where, key);
	*out = json_string_value(v);
	return 0;
}

static int get_bool(int *out, json_t *o, const char *key, const char *where, struct err *e)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_boolean(v))
		return err_set(e, ROTOR_EINVALID, "%s\"%s\" is missing or not true/false", where, key);
	*out = json_is_true(v);
	return 0;
}

static int get_array(json_t **out, json_t *o, const char *key, const char *where, struct err *e)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_array(v))
		return err_set(e, ROTOR_EINVALID, "%s\"%s\" is missing or not an array", where, key);
	if (json_array_size(v) > MAX_ITEMS)
		return err_set(e, ROTOR_EINVALID, "%s\"%s\" has too many entries", where, key);
	*out = v;
	return 0;
}

/* Every member of o is one of the names in keys (NULL-terminated). */
static int only_keys(json_t *o, const char *const *keys, const char *where, struct err *e)
{
	const char *k;
	json_t *v;
	char shown[41];
	size_t i;

	json_object_foreach(o, k, v) {
		for (i = 0; keys[i] && strcmp(keys[i], k) != 0; i++)
			;
		if (keys[i])
			continue;
		/* The name as printable ASCII, cut short: it comes from the file. */
		for (i = 0; k[i] && i < sizeof(shown) - 1; i++)
			shown[i] = k[i] >= 0x20 && k[i] <= 0x7e ? k[i] : '?';
		shown[i] = '\0';
		return err_set(e, ROTOR_EINVALID, "%sunknown member \"%s\" (see schemas/saved-plan.json)", where, shown);
	}
	(void)v;
	return 0;
}

static char *dup_text(const char *s, struct err *e)
{
	char *d = strdup(s);

	if (!d)
		err_nomem(e);
	return d;
}

static int parse_file(struct saved_file *sf, json_t *o, const char *where, struct err *e)
{
	static const char *const keys[] = { "path", "present", "sha256", NULL };
	const char *path;
	json_t *h;
	int rc;

	if (!json_is_object(o))
		return err_set(e, ROTOR_EINVALID, "%sis not an object", where);
	if ((rc = only_keys(o, keys, where, e)) < 0 || (rc = get_text(&path, o, "path", 4096, where, e)) < 0 ||
	    (rc = get_bool(&sf->present, o, "present", where, e)) < 0)
		return rc;
	h = json_object_get(o, "sha256");
	if (json_is_string(h) && hex_lower(json_string_value(h), 64) && sf->present)
		memcpy(sf->sha256, json_string_value(h), 65);
	else if (!json_is_null(h))
		return err_set(e, ROTOR_EINVALID, "%s\"sha256\" is not null or 64 lowercase hex digits of a present file",
			       where);
	return (sf->path = dup_text(path, e)) ? 0 : ROTOR_ENOMEM;
}

static int parse_served(struct saved_served *ss, json_t *o, const char *where, struct err *e)
{
	static const char *const keys[] = { "port", "leaf", NULL };
	json_t *port, *leaf;
	int rc;

	if (!json_is_object(o))
		return err_set(e, ROTOR_EINVALID, "%sis not an object", where);
	if ((rc = only_keys(o, keys, where, e)) < 0)
		return rc;
	port = json_object_get(o, "port");
	if (!json_is_integer(port) || json_integer_value(port) < 1 || json_integer_value(port) > 65535)
		return err_set(e, ROTOR_EINVALID, "%s\"port\" is not a port number (1-65535)", where);
	ss->port = (int)json_integer_value(port);
	leaf = json_object_get(o, "leaf");
	if (json_is_string(leaf) && fingerprint_ok(json_string_value(leaf)))
		memcpy(ss->leaf, json_string_value(leaf), 96);
	else if (!json_is_null(leaf))
		return err_set(e, ROTOR_EINVALID, "%s\"leaf\" is not null or a SHA-256 fingerprint (AB:CD:...)", where);
	return 0;
}

static int parse_host(struct saved_host *sh, json_t *o, const char *where, struct err *e)
{
	static const char *const keys[] = { "name", "address", "reachable", "files", "served", NULL };
	const char *name, *address;
	json_t *files, *served;
	char sub[160];
	size_t i;
	int rc;

	if (!json_is_object(o))
		return err_set(e, ROTOR_EINVALID, "%sis not an object", where);
	if ((rc = only_keys(o, keys, where, e)) < 0 || (rc = get_text(&name, o, "name", 255, where, e)) < 0 ||
	    (rc = get_text(&address, o, "address", 255, where, e)) < 0 ||
	    (rc = get_bool(&sh->reachable, o, "reachable", where, e)) < 0 ||
	    (rc = get_array(&files, o, "files", where, e)) < 0 || (rc = get_array(&served, o, "served", where, e)) < 0)
		return rc;
	if (!(sh->name = dup_text(name, e)) || !(sh->address = dup_text(address, e)))
		return ROTOR_ENOMEM;
	if ((json_array_size(files) && !(sh->files = calloc(json_array_size(files), sizeof(*sh->files)))) ||
	    (json_array_size(served) && !(sh->served = calloc(json_array_size(served), sizeof(*sh->served)))))
		return err_nomem(e);
	for (i = 0; i < json_array_size(files); i++) {
		snprintf(sub, sizeof(sub), "%sfiles[%zu]: ", where, i);
		rc = parse_file(&sh->files[i], json_array_get(files, i), sub, e);
		sh->nfiles += rc == 0;
		if (rc < 0)
			return rc;
	}
	for (i = 0; i < json_array_size(served); i++) {
		snprintf(sub, sizeof(sub), "%sserved[%zu]: ", where, i);
		if ((rc = parse_served(&sh->served[i], json_array_get(served, i), sub, e)) < 0)
			return rc;
		sh->nserved++;
	}
	return 0;
}

/* The steps as plan --json writes them: checked for shape, kept as they are. */
static int check_steps(json_t *steps, struct err *e)
{
	static const char *const names[] = { "stable", "trust", "servers", "clients", "stable(target)", NULL };
	const char *s;
	json_t *st, *changes, *c;
	char where[96];
	size_t i, j, k;
	int rc;

	json_array_foreach(steps, i, st) {
		snprintf(where, sizeof(where), "steps[%zu]: ", i);
		if (!json_is_object(st))
			return err_set(e, ROTOR_EINVALID, "%sis not an object", where);
		for (k = 0; k < 2; k++) {
			if ((rc = get_text(&s, st, k ? "to" : "from", 32, where, e)) < 0)
				return rc;
			for (j = 0; names[j] && strcmp(names[j], s) != 0; j++)
				;
			if (!names[j])
				return err_set(e, ROTOR_EINVALID, "%s\"%s\" is not a step", where, k ? "to" : "from");
		}
		if ((rc = get_array(&changes, st, "changes", where, e)) < 0)
			return rc;
		json_array_foreach(changes, j, c) {
			snprintf(where, sizeof(where), "steps[%zu].changes[%zu]: ", i, j);
			if (!json_is_object(c))
				return err_set(e, ROTOR_EINVALID, "%sis not an object", where);
			if ((rc = get_text(&s, c, "host", 255, where, e)) < 0 ||
			    (rc = get_text(&s, c, "path", 4096, where, e)) < 0 ||
			    (rc = get_text(&s, c, "action", 16, where, e)) < 0)
				return rc;
			if (strcmp(s, "create") != 0 && strcmp(s, "change") != 0)
				return err_set(e, ROTOR_EINVALID, "%s\"action\" is not create or change", where);
		}
	}
	return 0;
}

static int parse_doc(struct saved_plan *sp, json_t *doc, struct err *e)
{
	static const char *const keys[] = { "format", "version", "env", "commit", "desired_from", "replace_unknown",
					    "probed", "hosts", "steps", NULL };
	const char *s;
	json_t *v, *hosts;
	char where[64];
	size_t i;
	int rc;

	if (!json_is_object(doc))
		return err_set(e, ROTOR_EINVALID, "not a saved plan (not a JSON object)");
	if ((rc = get_text(&s, doc, "format", 64, "", e)) < 0 || strcmp(s, FORMAT_NAME) != 0)
		return err_set(e, ROTOR_EINVALID, "not a saved plan (\"format\" is not \"%s\")", FORMAT_NAME);
	v = json_object_get(doc, "version");
	if (!json_is_integer(v) || json_integer_value(v) != SAVEDPLAN_VERSION)
		return err_set(e, ROTOR_EINVALID, "saved plan version is not %d (made by another rotor?)", SAVEDPLAN_VERSION);
	if ((rc = only_keys(doc, keys, "", e)) < 0 || (rc = get_text(&s, doc, "env", sizeof(sp->env) - 1, "", e)) < 0)
		return rc;
	memcpy(sp->env, s, strlen(s) + 1);
	if ((rc = get_text(&s, doc, "commit", 40, "", e)) < 0)
		return rc;
	if (!hex_lower(s, 40))
		return err_set(e, ROTOR_EINVALID, "\"commit\" is not 40 lowercase hex digits");
	memcpy(sp->commit, s, 41);
	v = json_object_get(doc, "desired_from");
	if (json_is_object(v)) {
		static const char *const fkeys[] = { "ref", "how", NULL };

		if ((rc = only_keys(v, fkeys, "desired_from: ", e)) < 0 ||
		    (rc = get_text(&s, v, "ref", sizeof(sp->from_ref) - 1, "desired_from: ", e)) < 0)
			return rc;
		memcpy(sp->from_ref, s, strlen(s) + 1);
		if ((rc = get_text(&s, v, "how", sizeof(sp->from_how) - 1, "desired_from: ", e)) < 0)
			return rc;
		if (strcmp(s, "fetched") && strcmp(s, "not-fetched") && strcmp(s, "local") && strcmp(s, "ref"))
			return err_set(e, ROTOR_EINVALID, "desired_from: \"how\" is not fetched, not-fetched, local or ref");
		memcpy(sp->from_how, s, strlen(s) + 1);
	} else if (!json_is_null(v)) {
		return err_set(e, ROTOR_EINVALID, "\"desired_from\" is missing or not an object or null");
	}
	if ((rc = get_bool(&sp->replace_unknown, doc, "replace_unknown", "", e)) < 0 ||
	    (rc = get_bool(&sp->probed, doc, "probed", "", e)) < 0 || (rc = get_array(&hosts, doc, "hosts", "", e)) < 0 ||
	    (rc = get_array(&v, doc, "steps", "", e)) < 0 || (rc = check_steps(v, e)) < 0)
		return rc;
	sp->steps = json_incref(v);
	if (json_array_size(hosts) && !(sp->hosts = calloc(json_array_size(hosts), sizeof(*sp->hosts))))
		return err_nomem(e);
	for (i = 0; i < json_array_size(hosts); i++) {
		snprintf(where, sizeof(where), "hosts[%zu]: ", i);
		rc = parse_host(&sp->hosts[i], json_array_get(hosts, i), where, e);
		sp->nhosts++;   /* released in full, also half-parsed */
		if (rc < 0)
			return rc;
	}
	return 0;
}

int savedplan_parse(struct saved_plan *sp, const char *text, size_t len, struct err *e)
{
	json_error_t je;
	json_t *doc;
	size_t i;
	int rc;

	memset(sp, 0, sizeof(*sp));
	if (len > SAVEDPLAN_MAX)
		return err_set(e, ROTOR_EINVALID, "larger than %zu bytes", SAVEDPLAN_MAX);
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc) {
		/* jansson quotes the input near the error: show only printable ASCII of it. */
		for (i = 0; je.text[i]; i++)
			if ((unsigned char)je.text[i] < 0x20 || (unsigned char)je.text[i] > 0x7e)
				je.text[i] = '?';
		return err_set(e, ROTOR_EINVALID, "not JSON (line %d: %s)", je.line, je.text);
	}
	rc = parse_doc(sp, doc, e);
	json_decref(doc);
	if (rc < 0)
		savedplan_release(sp);
	return rc;
}

int savedplan_read(struct saved_plan *sp, const char *path, struct err *e)
{
	struct buf b = BUF_INIT;
	int rc;

	memset(sp, 0, sizeof(*sp));
	b.max = SAVEDPLAN_MAX + 1;
	if ((rc = buf_read_file(&b, path, SAVEDPLAN_MAX, e)) == 0 &&
	    (rc = savedplan_parse(sp, b.ptr ? b.ptr : "", b.len, e)) < 0) {
		char msg[sizeof(e->msg)];

		snprintf(msg, sizeof(msg), "%s", e->msg);
		rc = err_set(e, rc, "%s: %s", path, msg);
	}
	buf_release(&b);
	return rc;
}

/* ---- checking ---- */

int savedplan_check_commit(const struct saved_plan *sp, const struct desired *want, struct err *e)
{
	if (strcmp(sp->commit, want->commit) == 0)
		return 0;
	return err_set(e, ROTOR_ESTATE,
		       "Saved plan is stale: it was made at %.12s, and the desired commit is now %.12s (%s): plan again",
		       sp->commit, want->commit, want->ref);
}

static const struct saved_host *find_host(const struct saved_plan *sp, const char *name)
{
	size_t i;

	for (i = 0; i < sp->nhosts; i++)
		if (strcmp(sp->hosts[i].name, name) == 0)
			return &sp->hosts[i];
	return NULL;
}

static const char *held(const char *sha256, int present)
{
	return !present ? "absent" : sha256[0] ? sha256 : "unreadable";
}

static int check_host(const struct saved_host *sh, int probed, const struct env_run *r, size_t h, struct err *e)
{
	const struct obs_host *oh = &r->hosts[h];
	size_t f, k;

	if (sh->reachable != oh->reachable)
		return err_set(e, ROTOR_ESTATE, "Saved plan is stale: %s (%s) was %s when planned and is %s now", oh->name,
			       oh->address, sh->reachable ? "reachable" : "unreachable",
			       oh->reachable ? "reachable" : "unreachable");
	if (sh->nfiles != oh->nfiles)
		return err_set(e, ROTOR_ESTATE, "Saved plan is stale: %s (%s) has %zu managed files, the plan saw %zu",
			       oh->name, oh->address, oh->nfiles, sh->nfiles);
	for (f = 0; f < oh->nfiles; f++) {
		const struct obs_file *of = &oh->files[f];
		const struct saved_file *sf = &sh->files[f];

		if (strcmp(sf->path, of->path) != 0)
			return err_set(e, ROTOR_ESTATE, "Saved plan is stale: %s (%s) manages %s, the plan saw %s", oh->name,
				       oh->address, of->path, sf->path);
		if (sf->present != of->present || strcmp(sf->sha256, of->sha256) != 0)
			return err_set(e, ROTOR_ESTATE,
				       "Saved plan is stale: %s (%s): %s changed since the plan (sha256 %.12s then, %.12s now)",
				       oh->name, oh->address, of->path, held(sf->sha256, sf->present),
				       held(of->sha256, of->present));
	}
	if (!probed)
		return 0;       /* planned with --no-probe: nothing to compare */
	for (k = 0; k < r->nserved; k++) {
		const struct served_leaf *sl = &r->served[k];
		const char *then = NULL;

		if (sl->host != h)
			continue;
		for (f = 0; f < sh->nserved && !then; f++)
			if (sh->served[f].port == sl->port)
				then = sh->served[f].leaf;
		if (!then)
			return err_set(e, ROTOR_ESTATE, "Saved plan is stale: %s (%s): the plan did not probe port %d", oh->name,
				       oh->address, sl->port);
		if (strcmp(then, sl->presents) != 0)
			return err_set(e, ROTOR_ESTATE,
				       "Saved plan is stale: %s (%s): the service on port %d presents %.23s, the plan saw %.23s",
				       oh->name, oh->address, sl->port, sl->presents[0] ? sl->presents : "no leaf",
				       then[0] ? then : "no leaf");
	}
	return 0;
}

int savedplan_check_run(const struct saved_plan *sp, const struct env_run *r, struct err *e)
{
	json_t *steps;
	size_t h;
	int rc, same;

	if (strcmp(sp->commit, r->src.commit) != 0)
		return err_set(e, ROTOR_ESTATE, "Saved plan is stale: it was made at %.12s, not at %.12s", sp->commit,
			       r->src.commit);
	if (sp->nhosts != r->nhosts)
		return err_set(e, ROTOR_ESTATE, "Saved plan is stale: it saw %zu hosts, hosts.yaml has %zu", sp->nhosts,
			       r->nhosts);
	for (h = 0; h < r->nhosts; h++) {
		const struct saved_host *sh = find_host(sp, r->hosts[h].name);

		if (!sh)
			return err_set(e, ROTOR_ESTATE, "Saved plan is stale: host %s is not in it", r->hosts[h].name);
		if ((rc = check_host(sh, sp->probed && r->probed, r, h, e)) < 0)
			return rc;
	}
	if (sp->probed && !r->probed)
		return err_set(e, ROTOR_ESTATE, "Saved plan is stale: the services were not probed now");
	if (!(steps = plan_steps_json(r)))
		return err_nomem(e);
	same = json_equal(steps, sp->steps);
	json_decref(steps);
	if (!same)
		return err_set(e, ROTOR_ESTATE, "Saved plan is stale: the steps planned now differ from the saved ones");
	return 0;
}
