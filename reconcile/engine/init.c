/*
 * init.c -- scaffold rotor.yaml and one env, create the key file (see
 * init.h).
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reconcile/engine/init.h"

#include "common/names.h"
#include "reconcile/pki/pki.h"
#include "reconcile/spec/spec.h"

static const char config_tmpl[] =
	"# rotor.yaml: settings shared by every environment in this repository.\n"
	"# Schema: schemas/rotor.json in the rotor source tree.\n"
	"version: 1\n"
	"\n"
	"# The secret that encrypts private keys at rest (PKCS#8, AES-256). It lives\n"
	"# OUTSIDE the repository: back it up like any other credential. key_id lets\n"
	"# rotor notice a wrong key before it uses it. $ROTOR_KEY_FILE overrides the path.\n"
	"secrets:\n"
	"  key_file: \"%s\"\n"
	"  key_id: \"%s\"\n"
	"\n"
	"# The shared remote and the branch that holds the desired state. plan, drift\n"
	"# and apply fetch main from the remote and read it there (--no-fetch: as last\n"
	"# fetched; the local main when this repository has no such remote; --ref REV:\n"
	"# that commit). rotate start/next --push push their branch to it. An SSH\n"
	"# remote's host key must be in ssh.known_hosts below; rotor logs in with\n"
	"# $ROTOR_GIT_SSH_KEY, else ssh.identity, else ssh-agent. An https:// remote\n"
	"# takes the token in $ROTOR_GIT_TOKEN.\n"
	"git:\n"
	"  remote: origin\n"
	"  main: \"%s\"\n"
	"\n"
	"# How rotor reaches hosts. Host keys are always checked against known_hosts;\n"
	"# without identity, rotor asks ssh-agent. become: sudo runs the privileged steps\n"
	"# (rename into place, chown, reload) through sudo -n.\n"
	"ssh:\n"
	"  user: deploy\n"
	"  become: sudo\n"
	"  known_hosts: \"~/.ssh/known_hosts\"\n"
	"  connect_timeout: 10s\n"
	"\n"
	"# How many hosts rotor talks to at once.\n"
	"parallel: 32\n";

static const char chain_tmpl[] =
	"# envs/%s/chain.yaml: what the %s chain must look like. rotor generates it\n"
	"# with `rotor rotate start --env %s`. Schema: schemas/chain.json.\n"
	"subject:\n"
	"  C: NL\n"
	"  O: Example\n"
	"  OU: DBA\n"
	"\n"
	"# ec (curve P-256 or P-384), rsa (bits 2048, 3072 or 4096) or ed25519.\n"
	"key:\n"
	"  type: ec\n"
	"  curve: P-256\n"
	"\n"
	"# Durations in days (d), weeks (w) or years of 365 days (y). A leaf never\n"
	"# outlives its CA.\n"
	"validity:\n"
	"  root: 10y\n"
	"  intermediate: 5y\n"
	"  leaf: 397d\n"
	"  crl: 180d          # how long the CRLs rotor signs stay valid (rotor client)\n"
	"renew_before: 30d\n"
	"\n"
	"# One server certificate per entry: the name is the CN and the first DNS SAN.\n"
	"servers:\n"
	"  pg1:\n"
	"    sans: [pg1.example.net]\n"
	"\n"
	"# One client certificate per database user (the CN); rotor client add and\n"
	"# rotor client remove edit this list.\n"
	"clients:\n"
	"  - postgres\n";

static const char hosts_tmpl[] =
	"# envs/%s/hosts.yaml: where the %s certificates live and how services reload.\n"
	"# Schema: schemas/hosts.json. For example:\n"
	"#\n"
	"# hosts:\n"
	"#   pg1:\n"
	"#     address: 10.0.0.11\n"
	"#     roles:\n"
	"#       - role: server\n"
	"#         layout: postgres\n"
	"#         dir: /etc/postgresql/certs\n"
	"#         owner: postgres\n"
	"#         identity: pg1\n"
	"#         reload: systemctl reload postgresql\n"
	"#         probe: {type: postgres, port: 5432}   # or probe: none (then nothing\n"
	"#                                               # checks the server after a reload)\n"
	"#       - role: client\n"
	"#         layout: libpq\n"
	"#         user: postgres\n"
	"#         home: /var/lib/postgresql\n"
	"#         identity: postgres\n"
	"#\n"
	"# Layouts: postgres, postgres-crl (postgres and root.crl for ssl_crl_file:\n"
	"# removed clients refused), libpq, pgjdbc (postgresql.pk8 as PKCS#8 DER for\n"
	"# Java), pgjdbc-p12 (postgresql.p12: key and chain in one PKCS#12 file, empty\n"
	"# password, switched by one rename), cockroach; or an explicit files: list.\n"
	"# Every server role needs a probe or probe: none. Two hosts may share an\n"
	"# address only with different ssh ports (port:) written on both; a server\n"
	"# identity belongs to one host, a client identity may be used by many.\n"
	"#\n"
	"# CAs rotor does not own (a managed database's provider: AWS RDS, Azure):\n"
	"# each one PEM file committed under envs/%s/trust/, put in the client roles'\n"
	"# bundles (bundles: [client]) after the env's own CAs, newest first, until\n"
	"# its entry says retired: true. The provider's servers our clients reach are\n"
	"# probed with the clients' bundle: plan and apply refuse a retirement while\n"
	"# one still presents a chain only the retired CA verifies; drift reports one\n"
	"# whose chain the bundle does not verify or whose certificate expires within\n"
	"# renew_before, and an external CA that expires within it. For example:\n"
	"#\n"
	"# external_cas:\n"
	"#   - {file: trust/provider-ca.pem, bundles: [client]}\n"
	"# external_servers:\n"
	"#   - {name: orders-db, address: orders.example.net, port: 5432, probe: postgres}\n"
	"#\n"
	"hosts: {}\n";

struct created {
	char path[PATH_MAX];
	int is_dir;
};

struct init_run {
	struct created made[16];
	size_t nmade;
};

static void undo(struct init_run *run)
{
	while (run->nmade > 0) {
		struct created *c = &run->made[--run->nmade];

		if (c->is_dir)
			rmdir(c->path);
		else
			unlink(c->path);
	}
}

static int note(struct init_run *run, const char *path, int is_dir)
{
	if (run->nmade >= sizeof(run->made) / sizeof(run->made[0]))
		return -1;
	snprintf(run->made[run->nmade].path, sizeof(run->made[0].path), "%s", path);
	run->made[run->nmade++].is_dir = is_dir;
	return 0;
}

static int make_dir(struct init_run *run, const char *path, struct err *e)
{
	if (mkdir(path, 0755) == 0)
		return note(run, path, 1) < 0 ? err_set(e, ROTOR_ERROR, "too many files") : 0;
	if (errno == EEXIST)
		return 0;
	return err_set(e, ROTOR_ERROR, "cannot create directory %s: %s", path, strerror(errno));
}

static int write_new(struct init_run *run, const char *path, const char *data, struct err *e)
{
	size_t len = strlen(data), off = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		if (errno == EEXIST)
			return err_set(e, ROTOR_EEXISTS, "%s exists; refusing to overwrite it", path);
		return err_set(e, ROTOR_ERROR, "cannot create %s: %s", path, strerror(errno));
	}
	note(run, path, 0);
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return err_set(e, ROTOR_ERROR, "cannot write %s: %s", path, strerror(errno));
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0)
		return err_set(e, ROTOR_ERROR, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* The key file path to record in rotor.yaml: "~/..." under $HOME. */
static void display_path(char *out, size_t len, const char *abs)
{
	const char *home = getenv("HOME");
	size_t hl = home ? strlen(home) : 0;

	if (hl > 1 && strncmp(abs, home, hl) == 0 && abs[hl] == '/')
		snprintf(out, len, "~%s", abs + hl);
	else
		snprintf(out, len, "%s", abs);
}

/* Refuse a key path inside the work tree (it would end up in git). */
static int key_outside_repo(const char *key_abs, const char *workdir, struct err *e)
{
	char real_wd[PATH_MAX], parent[PATH_MAX], real_parent[PATH_MAX];
	char *slash;
	size_t wl;

	if (!realpath(workdir, real_wd))
		return err_set(e, ROTOR_ERROR, "cannot resolve %s: %s", workdir, strerror(errno));
	snprintf(parent, sizeof(parent), "%s", key_abs);
	/* Walk up to the first directory that exists, then resolve it. */
	for (;;) {
		slash = strrchr(parent, '/');
		if (!slash)
			return 0;
		if (slash == parent) {
			parent[1] = '\0';
		} else {
			*slash = '\0';
		}
		if (realpath(parent, real_parent))
			break;
		if (strcmp(parent, "/") == 0)
			return 0;
	}
	wl = strlen(real_wd);
	if (strncmp(real_parent, real_wd, wl) == 0 && (real_parent[wl] == '/' || real_parent[wl] == '\0'))
		return err_set(e, ROTOR_EINVALID,
			       "key file %s is inside the repository %s; keep it outside (use --key-file)",
			       key_abs, real_wd);
	return 0;
}

static int default_key_path(char *out, size_t len, const char *workdir, struct err *e)
{
	const char *home = getenv("HOME");
	char wd[PATH_MAX], *base;
	size_t wl;

	if (!home || !*home)
		return err_set(e, ROTOR_ESECRET, "$HOME is not set; pass --key-file PATH");
	snprintf(wd, sizeof(wd), "%s", workdir);
	wl = strlen(wd);
	while (wl > 1 && wd[wl - 1] == '/')
		wd[--wl] = '\0';
	base = strrchr(wd, '/');
	base = base ? base + 1 : wd;
	if ((size_t)snprintf(out, len, "%s/.config/rotor/keys/%s.key", home, *base ? base : "rotor") >= len)
		return err_set(e, ROTOR_ESECRET, "key file path too long");
	return 0;
}

int init_scaffold(struct init_result *res, struct gitrepo *repo, const struct init_opts *o, struct err *e)
{
	struct init_run run = { .nmade = 0 };
	struct gitrepo_head head;
	struct rotation_spec rot = { 0, 0, SPEC_PHASE_STABLE };
	struct buf text = BUF_INIT, secret = BUF_INIT;
	char p_config[PATH_MAX + 32], p_envs[PATH_MAX + 32], p_env[PATH_MAX + 64], p_file[PATH_MAX + 128];
	char key_disp[PATH_MAX];
	char *key_abs = res->key_path;
	const char *workdir, *env = o->env;
	const char *key_env = getenv("ROTOR_KEY_FILE");
	int have_config, rc;

	memset(res, 0, sizeof(*res));
	if (!env_name_valid(env))
		return err_set(e, ROTOR_EINVALID, "invalid environment name \"%.64s\" (lowercase letters, digits, "
			       "'-' and '_', at most 32, starting with a letter or digit)", env);
	workdir = gitrepo_workdir(repo);
	if (strlen(workdir) > PATH_MAX - 128)
		return err_set(e, ROTOR_ERROR, "repository path too long: %.100s...", workdir);
	snprintf(p_config, sizeof(p_config), "%srotor.yaml", workdir);
	snprintf(p_envs, sizeof(p_envs), "%senvs", workdir);
	snprintf(p_env, sizeof(p_env), "%senvs/%s", workdir, env);

	have_config = exists(p_config);
	if (exists(p_env))
		return err_set(e, ROTOR_EEXISTS, "envs/%s exists; refusing to overwrite it", env);

	if (!have_config) {
		if (o->key_file && o->key_file[0] != '/')
			return err_set(e, ROTOR_EINVALID, "--key-file must be an absolute path");
		if (o->key_file)
			snprintf(key_abs, sizeof(res->key_path), "%s", o->key_file);
		else if (key_env && *key_env)
			snprintf(key_abs, sizeof(res->key_path), "%s", key_env);
		else if ((rc = default_key_path(key_abs, sizeof(res->key_path), workdir, e)) < 0)
			return rc;
		if (key_abs[0] != '/')
			return err_set(e, ROTOR_EINVALID, "key file path %s must be absolute", key_abs);
		if (exists(key_abs))
			return err_set(e, ROTOR_EEXISTS, "key file %s exists; refusing to overwrite it "
				       "(pass --key-file to choose another path)", key_abs);
		if ((rc = key_outside_repo(key_abs, workdir, e)) < 0)
			return rc;
	} else if (o->key_file) {
		return err_set(e, ROTOR_EINVALID, "rotor.yaml exists; its secrets.key_file is used (drop --key-file)");
	}

	if ((rc = gitrepo_head(&head, repo, e)) < 0)
		return rc;

	if (!have_config) {
		if ((rc = pki_secret_create(key_abs, e)) < 0)
			return rc;
		if (pki_secret_load(&secret, key_abs, e) < 0)
			goto fail_key;
		pki_secret_id(res->key_id, buf_cstr(&secret));
		buf_wipe(&secret);
		display_path(key_disp, sizeof(key_disp), key_abs);
		if (buf_printf(&text, config_tmpl, key_disp, res->key_id,
			       head.branch[0] && !head.detached ? head.branch : "main") < 0) {
			err_nomem(e);
			goto fail_key;
		}
		if (write_new(&run, p_config, buf_cstr(&text), e) < 0)
			goto fail_key;
	}
	if (make_dir(&run, p_envs, e) < 0 || make_dir(&run, p_env, e) < 0)
		goto fail;

	buf_release(&text);
	snprintf(p_file, sizeof(p_file), "%s/chain.yaml", p_env);
	if (buf_printf(&text, chain_tmpl, env, env, env) < 0 || write_new(&run, p_file, buf_cstr(&text), e) < 0)
		goto fail;
	buf_release(&text);
	snprintf(p_file, sizeof(p_file), "%s/hosts.yaml", p_env);
	if (buf_printf(&text, hosts_tmpl, env, env, env) < 0 || write_new(&run, p_file, buf_cstr(&text), e) < 0)
		goto fail;
	buf_release(&text);
	snprintf(p_file, sizeof(p_file), "%s/rotation.yaml", p_env);
	if (spec_rotation_emit(&rot, &text) < 0 || write_new(&run, p_file, buf_cstr(&text), e) < 0)
		goto fail;
	buf_release(&text);
	res->created_config = !have_config;
	if (have_config)
		res->key_path[0] = '\0';
	return 0;

fail:
	if (!e->msg[0])
		err_nomem(e);
	undo(&run);
fail_key:
	if (!have_config)
		unlink(key_abs);
	buf_wipe(&secret);
	buf_release(&text);
	rc = e->code ? e->code : ROTOR_ERROR;
	memset(res, 0, sizeof(*res));
	return rc;
}
