/*
 * handoff.c -- `rotor handoff`: one client's files for a team whose hosts
 * rotor does not reach (see handoff.h).
 */
#define _GNU_SOURCE
#include "reconcile/engine/handoff.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "reconcile/engine/plan.h"
#include "reconcile/engine/state.h"
#include "reconcile/pki/pki.h"

#define PASS_MIN 8
#define PASS_MAX 1024

enum phase_step handoff_pick_step(const struct rotation_spec *r, enum handoff_choice c)
{
	enum phase_step now = phase_step_of(r->phase);

	if (!r->target)
		return STEP_STABLE_A;
	if (c == HANDOFF_TARGET)
		return STEP_STABLE_B;
	if (c == HANDOFF_NEXT && (now == STEP_SERVERS || now == STEP_CLIENTS))
		return STEP_CLIENTS;
	return now;
}

int handoff_choice_parse(const char *s)
{
	if (!s || strcmp(s, "next") == 0)
		return HANDOFF_NEXT;
	if (strcmp(s, "current") == 0)
		return HANDOFF_CURRENT;
	if (strcmp(s, "target") == 0)
		return HANDOFF_TARGET;
	return -1;
}

int handoff_read_passphrase(struct buf *out, const char *path, struct err *e)
{
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(e, ROTOR_EINVALID, "%s: cannot open the passphrase file: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, ROTOR_EINVALID, "%s: the passphrase file is not a regular file", path);
	}
	close(fd);
	if (st.st_mode & 077)
		return err_set(e, ROTOR_ESECRET, "%s: the passphrase file is accessible by group or others "
			       "(mode %04o); refusing to use it: run chmod 600 on it", path, (unsigned)(st.st_mode & 07777));
	rc = buf_read_file(out, path, PASS_MAX + 2, e);
	if (rc == ROTOR_ETOOBIG)
		return err_set(e, ROTOR_EINVALID, "%s: the passphrase is longer than %d bytes", path, PASS_MAX);
	if (rc < 0)
		return err_prefix(e, "%s", path);
	if (out->len && out->ptr[out->len - 1] == '\n')
		buf_truncate(out, out->len - 1);
	if (out->len && out->ptr[out->len - 1] == '\r')
		buf_truncate(out, out->len - 1);
	return 0;
}

static int passphrase_ok(const char *p, struct err *e)
{
	size_t n = strlen(p), i;

	if (n < PASS_MIN || n > PASS_MAX)
		return err_set(e, ROTOR_EINVALID, "the hand-off passphrase must be %d to %d bytes long (it has %zu)",
			       PASS_MIN, PASS_MAX, n);
	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return err_set(e, ROTOR_EINVALID, "the hand-off passphrase holds a control character");
	return 0;
}

/* ---- who NAME is ---- */

struct who {
	int leaf;                       /* a client of chain.yaml */
	const struct external_peer *x;  /* an external peer */
};

static int has_client(const struct chain_spec *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nclients; i++)
		if (strcmp(c->clients[i], name) == 0)
			return 1;
	return 0;
}

static int find_client(struct who *w, const struct state *st, const char *name, struct err *e)
{
	struct buf names = BUF_INIT;
	size_t i;
	int rc;

	memset(w, 0, sizeof(*w));
	w->leaf = has_client(st->chain, name);
	for (i = 0; i < st->hosts->nexternal; i++)
		if (strcmp(st->hosts->external[i].name, name) == 0)
			w->x = &st->hosts->external[i];
	if (w->leaf || w->x)
		return 0;
	for (i = 0; i < st->chain->nclients; i++)
		buf_printf(&names, "%s%s", i ? ", " : "", st->chain->clients[i]);
	for (i = 0; i < st->hosts->nexternal; i++)
		if (!has_client(st->chain, st->hosts->external[i].name))
			buf_printf(&names, "%s%s (external)", names.len ? ", " : "", st->hosts->external[i].name);
	rc = names.err ? err_nomem(e)
		       : err_set(e, ROTOR_ENOTFOUND, "no client \"%s\" in envs/%s (chain.yaml clients and "
				 "hosts.yaml external peers: %s)", name, st->env, names.len ? buf_cstr(&names) : "none");
	buf_release(&names);
	return rc;
}

/* ---- the files ---- */

struct out_file {
	const char *name;
	struct buf data;
	int mode;
};

struct pack {
	struct out_file f[HANDOFF_MAX_FILES];
	size_t n;
};

static struct out_file *pack_add(struct pack *p, const char *name, int mode)
{
	struct out_file *f = &p->f[p->n++];

	f->name = name;
	f->mode = mode;
	return f;
}

static void pack_wipe(struct pack *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		buf_wipe(&p->f[i].data);
	p->n = 0;
}

/* Write every file into a new temporary directory beside out, then rename it to out. */
static int write_dir(struct pack *p, const char *parent, const char *base, const char *out, struct err *e)
{
	char tmp[PATH_MAX];
	size_t i, done = 0;
	int dfd = -1, fd, rc = 0, made = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.rotor-tmp-XXXXXX", parent, base) >= sizeof(tmp))
		return err_set(e, ROTOR_EINVALID, "%s: path too long", out);
	if (!mkdtemp(tmp))
		return err_set(e, ROTOR_ERROR, "cannot create a directory in %s: %s", parent, strerror(errno));
	made = 1;
	if (chmod(tmp, 0700) != 0 || (dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = err_set(e, ROTOR_ERROR, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	for (i = 0; i < p->n; i++) {
		const struct out_file *f = &p->f[i];

		fd = openat(dfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = err_set(e, ROTOR_ERROR, "cannot create %s: %s", f->name, strerror(errno));
			goto out;
		}
		done = i + 1;
		if (fchmod(fd, (mode_t)f->mode) != 0 || pki_write_all(fd, f->data.ptr ? f->data.ptr : "", f->data.len) != 0 ||
		    fsync(fd) != 0) {
			rc = err_set(e, ROTOR_ERROR, "cannot write %s: %s", f->name, strerror(errno));
			close(fd);
			goto out;
		}
		if (close(fd) != 0) {
			rc = err_set(e, ROTOR_ERROR, "cannot write %s: %s", f->name, strerror(errno));
			goto out;
		}
	}
	if (fsync(dfd) != 0) {
		rc = err_set(e, ROTOR_ERROR, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	/* RENAME_NOREPLACE: an empty directory made meanwhile is not replaced either. */
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_NOREPLACE) != 0) {
		rc = errno == EEXIST ? err_set(e, ROTOR_EEXISTS, "%s exists; refusing to overwrite it (choose a new --out)", out)
				     : err_set(e, ROTOR_ERROR, "cannot rename %s to %s: %s", tmp, out, strerror(errno));
		goto out;
	}
	made = 0;
	if ((fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
out:
	if (made) {
		for (i = 0; i < done && dfd >= 0; i++)
			(void)unlinkat(dfd, p->f[i].name, 0);
		(void)rmdir(tmp);
	}
	if (dfd >= 0)
		close(dfd);
	return rc;
}

/* ---- README.txt ---- */

/* One line per certificate of a PEM text: common name, SHA-256 fingerprint, expiry. */
static void describe_pem(struct buf *r, const char *pem, const char *indent)
{
	const char *s = pem;
	struct manifest_cert mc;
	struct err e = ERR_INIT;

	while ((s = strstr(s, "-----BEGIN CERTIFICATE-----")) != NULL) {
		memset(&mc, 0, sizeof(mc));
		if (pki_cert_describe(&mc, s, strlen(s), &e) == 0)
			buf_printf(r, "%s%s\n%s  SHA-256 %s\n%s  expires %s\n", indent, mc.subject, indent,
				   mc.fingerprint, indent, mc.not_after);
		spec_manifest_cert_release(&mc);
		s++;
	}
}

static const char *step_advice(enum phase_step s, int bundle_only)
{
	switch (s) {
	case STEP_STABLE_A:
		return "No rotation is under way: these are the files in service now.\n"
		       "Install them; they stay valid until the next rotation, which starts\n"
		       "with a new trust bundle (you will get a new hand-off then).\n";
	case STEP_TRUST:
		return bundle_only
			? "Phase trust: replace your trust bundle (root.crt, truststore.p12) with\n"
			  "these now.  They trust the generation in service and the new one.\n"
			  "Before the next phase (servers): the DBA waits for your confirmation\n"
			  "(hosts.yaml trusts_target: true), then the servers switch to the new\n"
			  "generation's certificates, which only this bundle verifies.\n"
			  "After it: nothing to change until the rotation ends.\n"
			: "Phase trust: replace your trust bundle (root.crt, truststore.p12) with\n"
			  "these now; keep using your client certificate and key (the generation\n"
			  "in service, included again here unchanged).\n"
			  "Before the next phase (servers): this bundle must be installed, because\n"
			  "the servers then present the new generation's certificates.\n"
			  "After it: nothing to change until phase clients (a new hand-off).\n";
	case STEP_SERVERS:
		return "Phase servers: the servers present the new generation; this bundle\n"
		       "trusts both generations.  Your client certificate is still the one in\n"
		       "service.  Before the next phase (clients): nothing is required; the\n"
		       "next hand-off (rotor handoff without --step) brings the new client\n"
		       "certificate, which the servers already accept.\n";
	case STEP_CLIENTS:
		return "Clients: install this client certificate and key (the new generation)\n"
		       "and this trust bundle (both generations) now.  The servers accept the\n"
		       "old and the new client certificate from phase servers on.\n"
		       "Before the next phase (stable, the end of the rotation): these files\n"
		       "must be installed, because the servers then stop accepting the old\n"
		       "client certificate.\n"
		       "After it: a last hand-off replaces the bundle with the new generation only.\n";
	default:
		return "The end of the rotation: the new generation only.  Install these files\n"
		       "once the servers present the new generation (phase servers or later):\n"
		       "before that, this trust bundle cannot verify them.  The client\n"
		       "certificate and key are accepted from phase servers on.\n";
	}
}

struct server_addr {
	const char *host, *address;
	int port;
};

static int readme(struct buf *r, const struct state *st, const struct handoff_result *res, const char *name,
		  const char *dir, const struct pack *p, const char *leaf_pem, const char *bundle_pem)
{
	size_t i, j, nservers = 0;
	const char *first_addr = NULL;
	int first_port = 5432;

	buf_printf(r, "rotor hand-off for client %s, env %s\n", name, st->env);
	buf_printf(r, "commit %s, ", res->commit);
	if (res->b)
		buf_printf(r, "rotation %d -> %d, step %s\n", res->a, res->b, phase_step_name(res->step));
	else
		buf_printf(r, "generation %d, no rotation under way\n", res->a);
	buf_printf(r, "\n== What to do\n\n%s", step_advice(res->step, res->bundle_only));
	buf_printf(r, "\n== Files (check them with: sha256sum -c SHA256SUMS)\n\n");
	for (i = 0; i < p->n; i++) {
		const char *what = "";

		if (strcmp(p->f[i].name, "README.txt") == 0)
			continue;
		if (strcmp(p->f[i].name, "postgresql.crt") == 0)
			what = "client certificate and its CA (PEM; libpq sslcert, pgJDBC sslcert)";
		else if (strcmp(p->f[i].name, "postgresql.key") == 0)
			what = "private key, PKCS#8 encrypted with the hand-off passphrase (PEM; libpq sslkey + sslpassword)";
		else if (strcmp(p->f[i].name, "postgresql.pk8") == 0)
			what = "the same key as PKCS#8 DER, encrypted (pgJDBC sslkey + sslpassword)";
		else if (strcmp(p->f[i].name, "postgresql.p12") == 0)
			what = "PKCS#12: key, certificate and CA under alias \"user\" (pgJDBC sslkey + sslpassword)";
		else if (strcmp(p->f[i].name, "postgresql.plain.key") == 0)
			what = "private key WITHOUT encryption (--plain-key): protect it (mode 0600)";
		else if (strcmp(p->f[i].name, "root.crt") == 0)
			what = "trust bundle (PEM; libpq and pgJDBC sslrootcert)";
		else if (strcmp(p->f[i].name, "truststore.p12") == 0)
			what = "the same bundle as a Java PKCS#12 trust store (javax.net.ssl.trustStore; "
			       "keytool -list -keystore truststore.p12)";
		buf_printf(r, "  %-22s %s\n", p->f[i].name, what);
	}
	buf_printf(r, "  %-22s this file\n", "README.txt");
	buf_printf(r, "\nThe passphrase of the key files and the PKCS#12 files is the hand-off\n"
		      "passphrase, which you receive separately; it is not in any file here.\n");
	if (leaf_pem) {
		buf_printf(r, "\n== Client certificate (generation %d)\n\n", res->generation);
		describe_pem(r, leaf_pem, "  ");
	}
	buf_printf(r, "\n== Trust bundle (root.crt)\n\n");
	describe_pem(r, bundle_pem, "  ");

	buf_printf(r, "\n== Servers (hosts.yaml)\n\n");
	for (i = 0; i < st->hosts->nhosts; i++) {
		const struct host_spec *h = &st->hosts->hosts[i];

		for (j = 0; j < h->nroles; j++) {
			const struct host_role *ro = &h->roles[j];
			int port = ro->probe_port > 0 ? ro->probe_port : 5432;

			if (ro->role != SPEC_ROLE_SERVER)
				continue;
			buf_printf(r, "  %s  %s port %d (server %s)\n", h->name, h->address, port,
				   ro->identity ? ro->identity : h->name);
			if (!first_addr) {
				first_addr = h->address;
				first_port = port;
			}
			nservers++;
		}
	}
	if (!nservers)
		buf_printf(r, "  (none in hosts.yaml)\n");
	if (res->bundle_only) {
		buf_printf(r, "\n== Settings\n\n"
			      "libpq: sslmode=verify-full sslrootcert=%s/root.crt\n"
			      "Java:  -Djavax.net.ssl.trustStore=%s/truststore.p12 -Djavax.net.ssl.trustStoreType=PKCS12\n"
			      "       -Djavax.net.ssl.trustStorePassword=<hand-off passphrase>\n", dir, dir);
		return r->err ? ROTOR_ENOMEM : 0;
	}
	buf_printf(r, "\n== libpq (psql, and every libpq-based driver)\n\n"
		      "  sslmode=verify-full\n  sslcert=%s/postgresql.crt\n  sslkey=%s/postgresql.key\n"
		      "  sslpassword=<hand-off passphrase>   (or decrypt the key once:\n"
		      "      openssl pkey -in postgresql.key -out KEY  and chmod 600 KEY)\n"
		      "  sslrootcert=%s/root.crt\n\n"
		      "  psql \"host=%s port=%d dbname=DBNAME user=%s sslmode=verify-full sslcert=%s/postgresql.crt "
		      "sslkey=%s/postgresql.key sslrootcert=%s/root.crt\"\n"
		      "  (psql asks for the passphrase; a program passes it as sslpassword)\n",
		   dir, dir, dir, first_addr ? first_addr : "HOST", first_port, name, dir, dir, dir);
	buf_printf(r, "\n== JDBC (pgJDBC 42.x)\n\n"
		      "  jdbc:postgresql://%s:%d/DBNAME?user=%s&sslmode=verify-full&sslcert=%s/postgresql.crt"
		      "&sslkey=%s/postgresql.pk8&sslpassword=PASSPHRASE&sslrootcert=%s/root.crt\n\n"
		      "  or with the PKCS#12 file (sslcert is then not used):\n"
		      "  jdbc:postgresql://%s:%d/DBNAME?user=%s&sslmode=verify-full&sslkey=%s/postgresql.p12"
		      "&sslpassword=PASSPHRASE&sslrootcert=%s/root.crt\n\n"
		      "  PASSPHRASE is the hand-off passphrase (URL-encode it); DBNAME your database.\n"
		      "  If you move the files, change the paths.\n",
		   first_addr ? first_addr : "HOST", first_port, name, dir, dir, dir,
		   first_addr ? first_addr : "HOST", first_port, name, dir, dir);
	return r->err ? ROTOR_ENOMEM : 0;
}

/* ---- the whole hand-off ---- */

/* Split out into its own path and base name; realpath of the parent. */
static int split_out(char *parent, char *base, char *full, const char *out, struct err *e)
{
	char tmp[PATH_MAX], rp[PATH_MAX];
	char *slash;
	size_t n = strlen(out);
	struct stat st;

	if (n == 0 || n >= sizeof(tmp))
		return err_set(e, ROTOR_EINVALID, "--out needs a directory path");
	memcpy(tmp, out, n + 1);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = '\0';
	if (lstat(tmp, &st) == 0)
		return err_set(e, ROTOR_EEXISTS, "%s exists; refusing to overwrite it (choose a new --out)", out);
	if (errno != ENOENT)
		return err_set(e, ROTOR_ERROR, "%s: %s", out, strerror(errno));
	slash = strrchr(tmp, '/');
	if (slash) {
		*slash = '\0';
		if (strlen(slash + 1) > NAME_MAX)
			return err_set(e, ROTOR_EINVALID, "%s: name too long", out);
		memcpy(base, slash + 1, strlen(slash + 1) + 1);
		if (!realpath(slash == tmp ? "/" : tmp, rp))
			return err_set(e, ROTOR_EINVALID, "%s: the parent directory %s: %s", out,
				       slash == tmp ? "/" : tmp, strerror(errno));
	} else {
		if (n > NAME_MAX)
			return err_set(e, ROTOR_EINVALID, "%s: name too long", out);
		memcpy(base, tmp, n + 1);
		if (!realpath(".", rp))
			return err_set(e, ROTOR_ERROR, "the current directory: %s", strerror(errno));
	}
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return err_set(e, ROTOR_EINVALID, "--out %s: name a new directory", out);
	snprintf(parent, PATH_MAX, "%s", rp);
	if ((size_t)snprintf(full, PATH_MAX, "%s%s%s", rp, strcmp(rp, "/") == 0 ? "" : "/", base) >= PATH_MAX)
		return err_set(e, ROTOR_EINVALID, "%s: path too long", out);
	return 0;
}

static int obs_bytes(struct buf *out, const struct material_set *ms, enum spec_content c, enum layout_side side,
		     const char *identity, const struct handoff_result *res, const char *secret, struct err *e)
{
	struct obs_file f;

	memset(&f, 0, sizeof(f));
	f.content = c;
	f.side = side;
	return plan_file_bytes(out, ms, &f, identity, res->step, res->a, res->b ? res->b : res->a, secret, e);
}

int handoff_write(struct handoff_result *res, struct gitrepo *repo, const struct handoff_opts *o,
		  struct diags *d, struct err *e)
{
	struct state_src src;
	struct state st;
	struct material_set ms;
	struct who who;
	struct pack p;
	struct pki_handoff_key keys;
	struct buf secret = BUF_INIT, leaf = BUF_INIT, bundle = BUF_INIT, key = BUF_INIT;
	struct buf sums = BUF_INIT;
	struct out_file *f;
	char parent[PATH_MAX], base[NAME_MAX + 1], full[PATH_MAX], key_path[4096];
	enum layout_side peer = LAYOUT_SIDE_SERVER;
	size_t i;
	int rc, have_secret = 0;

	memset(res, 0, sizeof(*res));
	memset(&st, 0, sizeof(st));
	memset(&ms, 0, sizeof(ms));
	memset(&p, 0, sizeof(p));
	memset(&keys, 0, sizeof(keys));
	if (!o->client || !spec_valid_leaf_name(o->client))
		return err_set(e, ROTOR_EINVALID, "\"%s\" cannot be a client: a client name is a certificate common "
			       "name and a database user (1 to 63 of A-Z a-z 0-9 _ . -, not starting with . or -)",
			       o->client ? o->client : "");
	if (!o->passphrase)
		return err_set(e, ROTOR_EINVALID, "no hand-off passphrase: give --passphrase-file PATH or set "
			       "ROTOR_HANDOFF_PASSPHRASE (never on the command line)");
	if ((rc = passphrase_ok(o->passphrase, e)) < 0)
		return rc;
	if (!o->out_dir)
		return err_set(e, ROTOR_EINVALID, "handoff needs --out DIR (a directory that does not exist yet)");
	if ((rc = split_out(parent, base, full, o->out_dir, e)) < 0)
		return rc;

	if ((rc = state_src_open(&src, repo, o->ref, 0, e)) < 0 || (rc = state_load(&st, &src, o->env, d, e)) < 0)
		goto out;
	memcpy(res->commit, src.commit_id, sizeof(res->commit));
	if (st.rotation->generation == 0) {
		rc = err_set(e, ROTOR_ESTATE, "envs/%s has no chain yet (run rotor rotate start --env %s)", o->env, o->env);
		goto out;
	}
	if ((rc = find_client(&who, &st, o->client, e)) < 0)
		goto out;
	res->external = who.x != NULL;
	if (who.x && !who.leaf && who.x->trusts_client && !who.x->trusts_server)
		peer = LAYOUT_SIDE_CLIENT;   /* a server of ours' clients: it trusts our client CAs */
	res->step = handoff_pick_step(st.rotation, o->choice);
	res->a = st.rotation->generation;
	res->b = st.rotation->target;
	res->bundle_only = !who.leaf || (who.x && res->step == STEP_TRUST);

	/* The secret decrypts the key; the passphrase must differ from it. */
	if ((rc = state_key_path(key_path, sizeof(key_path), st.config, e)) == 0 &&
	    (rc = pki_secret_load(&secret, key_path, e)) == 0 &&
	    (rc = state_check_secret(&st, &src, buf_cstr(&secret), key_path, e)) == 0)
		have_secret = 1;
	if (rc < 0 && !res->bundle_only)
		goto out;
	err_clear(e);
	if (have_secret && strlen(o->passphrase) == secret.len &&
	    CRYPTO_memcmp(o->passphrase, secret.ptr, secret.len) == 0) {
		rc = err_set(e, ROTOR_ESECRET, "the hand-off passphrase is the repository's secret key; choose another "
			     "(the team must never hold the secret that decrypts every key)");
		goto out;
	}
	if ((rc = state_material(&ms, &src, &st, !res->bundle_only, NULL, e)) < 0)
		goto out;

	if ((rc = obs_bytes(&bundle, &ms, SPEC_CONTENT_TRUST, peer, NULL, res, NULL, e)) < 0)
		goto out;
	if (!res->bundle_only) {
		struct step_gens g = phase_step_gens(res->step, res->a, res->b ? res->b : res->a);
		struct manifest_cert mc;

		res->generation = g.client_leaf;
		if ((rc = obs_bytes(&leaf, &ms, SPEC_CONTENT_LEAF_CHAIN, LAYOUT_SIDE_CLIENT, o->client, res, NULL, e)) < 0 ||
		    (rc = obs_bytes(&key, &ms, SPEC_CONTENT_KEY, LAYOUT_SIDE_CLIENT, o->client, res, buf_cstr(&secret), e)) < 0 ||
		    (rc = pki_handoff_key(&keys, key.ptr, key.len, leaf.ptr, leaf.len, o->passphrase, o->plain_key, e)) < 0)
			goto out;
		memset(&mc, 0, sizeof(mc));
		if ((rc = pki_cert_describe(&mc, leaf.ptr, leaf.len, e)) < 0)
			goto out;
		snprintf(res->leaf_fingerprint, sizeof(res->leaf_fingerprint), "%s", mc.fingerprint);
		snprintf(res->leaf_not_after, sizeof(res->leaf_not_after), "%s", mc.not_after);
		spec_manifest_cert_release(&mc);
		f = pack_add(&p, "postgresql.crt", 0644);
		if (buf_put(&f->data, leaf.ptr, leaf.len) < 0)
			goto nomem;
		f = pack_add(&p, "postgresql.key", 0600);
		f->data = keys.pem;
		f = pack_add(&p, "postgresql.pk8", 0600);
		f->data = keys.der;
		f = pack_add(&p, "postgresql.p12", 0600);
		f->data = keys.p12;
		if (o->plain_key) {
			f = pack_add(&p, "postgresql.plain.key", 0600);
			f->data = keys.plain;
		} else {
			buf_wipe(&keys.plain);
		}
		memset(&keys, 0, sizeof(keys));   /* the pack owns them now */
	}
	f = pack_add(&p, "root.crt", 0644);
	if (buf_put(&f->data, bundle.ptr, bundle.len) < 0)
		goto nomem;
	f = pack_add(&p, "truststore.p12", 0644);
	if ((rc = pki_trust_store(&f->data, bundle.ptr, bundle.len, o->passphrase, e)) < 0)
		goto out;
	f = pack_add(&p, "README.txt", 0644);
	if ((rc = readme(&f->data, &st, res, o->client, full, &p, res->bundle_only ? NULL : leaf.ptr,
			 buf_cstr(&bundle))) < 0)
		goto nomem;
	for (i = 0; i < p.n; i++) {
		struct handoff_file *hf = &res->files[res->nfiles++];

		snprintf(hf->name, sizeof(hf->name), "%s", p.f[i].name);
		hf->mode = p.f[i].mode;
		if (pki_sha256_hex(hf->sha256, p.f[i].data.ptr ? p.f[i].data.ptr : "", p.f[i].data.len) < 0) {
			rc = err_set(e, ROTOR_ERROR, "cannot compute SHA-256");
			goto out;
		}
		if (buf_printf(&sums, "%s  %s\n", hf->sha256, hf->name) < 0)
			goto nomem;
	}
	f = pack_add(&p, "SHA256SUMS", 0644);
	f->data = sums;
	memset(&sums, 0, sizeof(sums));
	rc = write_dir(&p, parent, base, full, e);
	goto out;
nomem:
	rc = err_nomem(e);
out:
	pack_wipe(&p);
	pki_handoff_key_wipe(&keys);
	buf_wipe(&secret);
	buf_wipe(&key);
	buf_release(&leaf);
	buf_release(&bundle);
	buf_release(&sums);
	material_release(&ms);
	state_release(&st);
	return rc;
}
