/*
 * main.c -- rotor's entry point and its one dispatch table.
 *
 * Global options (--repo DIR, --env NAME) may stand before or after the
 * subcommand; they are taken out of argv here, and the rest goes to the
 * subcommand.  Library initialisation happens once, before any thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "common/fdlimit.h"
#include "reconcile/remote/ssh.h"

#ifndef ROTOR_VERSION
#define ROTOR_VERSION "unknown"
#endif

static int cmd_help(struct ctx *ctx, int argc, char **argv);

const struct cmd rotor_commands[] = {
	{ "init", cmd_init, "create rotor.yaml, an env and the secret key file",
	  "usage: rotor init [--env NAME] [--key-file PATH]\n"
	  "\n"
	  "Scaffold rotor.yaml (when missing) and envs/NAME/{chain,hosts,rotation}.yaml\n"
	  "in the work tree of the repository, with comments, and create the secret key\n"
	  "file that encrypts private keys at rest: 256 random bits, mode 0600, outside\n"
	  "the repository (default ~/.config/rotor/keys/<repo>.key; $ROTOR_KEY_FILE or\n"
	  "--key-file choose another path).  Nothing that exists is overwritten: an\n"
	  "existing env or key file is an error.  NAME defaults to \"poc\".\n"
	  "Review and commit the files; rotor reads committed state only.\n" },
	{ "validate", cmd_validate, "check the state files against the schemas",
	  "usage: rotor validate [--env NAME] [--ref REV | --worktree] [--json]\n"
	  "\n"
	  "Load rotor.yaml and the env's files (every env when --env is absent) at REV\n"
	  "(default HEAD) or from the work tree, check every generation's certificates\n"
	  "and keys against its manifest.yaml (a file missing, a certificate that is not\n"
	  "the one the manifest names), and report every problem as\n"
	  "path:line:column: message (path: message for a whole file).  --json prints\n"
	  "one object instead (the envs found valid and every problem with path, line,\n"
	  "column and message), described by schemas/validate.json.  Exit 0 when valid,\n"
	  "1 otherwise.\n" },
	{ "rotate", cmd_rotate, "start a rotation (next chain), move it one phase, or abandon it, on a branch",
	  "usage: rotor rotate start --env NAME [--threads N] [--push]\n"
	  "\n"
	  "Generate the next generation of the env's chain from chain.yaml at HEAD and\n"
	  "commit it, with rotation.yaml updated (target: N, phase: trust; or\n"
	  "generation: 1, phase: stable for the first chain), as ONE commit on a new\n"
	  "branch rotor/rotate/NAME/gen-NNNN.  The work tree, the index and the current\n"
	  "branch are not touched.  Refused when a rotation is in progress, when the\n"
	  "branch exists unmerged, when validation fails, when HEAD is detached or\n"
	  "unborn, when the env's files have uncommitted changes, or when the secret\n"
	  "key is wrong.\n"
	  "\n"
	  "usage: rotor rotate next --env NAME [--push]\n"
	  "\n"
	  "Move rotation.yaml one step (trust -> servers -> clients -> stable at the\n"
	  "target) in one commit on a new branch rotor/rotate/NAME/gen-NNNN-PHASE.\n"
	  "\n"
	  "--push pushes the new branch to git.remote of rotor.yaml (the remote must\n"
	  "not have it yet) and prints every line the server sends back as\n"
	  "\"remote: ...\" (a hook's words, GitLab's merge-request link).  A push the\n"
	  "server refuses prints its reason and exits 1; the commit stays on the\n"
	  "local branch.  SSH remotes: the key in $ROTOR_GIT_SSH_KEY, else\n"
	  "ssh.identity, else ssh-agent; the server's host key must be in\n"
	  "ssh.known_hosts.  HTTPS remotes: the token in $ROTOR_GIT_TOKEN.  Without\n"
	  "--push rotor prints the git push command to run.\n"
	  "\n"
	  "usage: rotor rotate abandon --env NAME [--push]\n"
	  "\n"
	  "Give up the rotation in progress: one commit on a new branch\n"
	  "rotor/rotate/NAME/gen-NNNN-abandon sets rotation.yaml back to the previous\n"
	  "generation, phase stable, and removes the target generation's directory;\n"
	  "that material is kept on the branch rotor/rolled-back/NAME/gen-NNNN (at\n"
	  "HEAD), and its number is never used again.  Once merged, rotor apply walks\n"
	  "the hosts back step by step (rotor still recognises the abandoned\n"
	  "generation's certificates from history; no key of it is needed).\n"
	  "\n"
	  "Every branch above is created from HEAD; when a branch of that name exists\n"
	  "and is already merged into HEAD (an earlier attempt, perhaps reverted since),\n"
	  "the commit goes to NAME-2 (NAME-3...) and rotor says so; one that exists\n"
	  "unmerged waits for review and is an error.  New generation numbers skip every\n"
	  "number the env's history ever held.  abandon --push pushes the branch that\n"
	  "keeps the material too, when it made that branch.\n" },
	{ "rollback", cmd_rollback, "move a rotation one phase back, on a branch",
	  "usage: rotor rollback --env NAME [--push]\n"
	  "\n"
	  "Commit rotation.yaml one phase back, the revert of the last phase change, on\n"
	  "a new branch rotor/rollback/NAME/gen-NNNN-PHASE (NNNN the rotation's target,\n"
	  "PHASE the one reached): clients -> servers -> trust -> stable at the previous\n"
	  "generation (the target removed; its material stays committed, unused: rotor\n"
	  "rotate abandon takes it out), and a finished rotation, stable at generation B,\n"
	  "back to clients of the rotation to B (found in history).  Once merged, rotor\n"
	  "apply walks the hosts back step by step, gated as always.  Refused when\n"
	  "there is nothing to roll back, when the generation to go back to is no\n"
	  "longer in the tree, and as rotor rotate next is (HEAD detached, uncommitted\n"
	  "changes, an unmerged branch of that name).  --push as for rotor rotate next.\n" },
	{ "chain", cmd_chain, "show the generations of an env's chain",
	  "usage: rotor chain show --env NAME [--ref REV] [--json]\n"
	  "\n"
	  "List every generation committed at REV (default HEAD): each certificate's\n"
	  "role, name, SHA-256 fingerprint, expiry and days left, and which generation\n"
	  "is in service or being rolled in.  Certificates are read and parsed from\n"
	  "the PEM files and checked against manifest.yaml.  --json prints one object\n"
	  "described by schemas/chain-show.json.\n" },
	{ "observe", cmd_observe, "read what every host really has, over SSH",
	  "usage: rotor observe --env NAME [--ref REV] [--json] [-j N | --parallel N]\n"
	  "\n"
	  "For every host in hosts.yaml at REV (default HEAD), open one SSH session (the\n"
	  "host key must be in known_hosts: rotor never trusts on first use) and read\n"
	  "every managed file of its roles over SFTP (sudo -n cat when ssh.become is\n"
	  "sudo and the login user may not read it; a symbolic link is never followed:\n"
	  "it is named as one).  For each file: present or missing,\n"
	  "mode and owner, every certificate with the generation it belongs to (matched\n"
	  "by SHA-256 fingerprint) or UNKNOWN with subject, issuer and fingerprint,\n"
	  "whether a key matches its certificate (a PKCS#12 file of layout pgjdbc-p12:\n"
	  "the certificates inside, and whether its key is theirs), and days to expiry;\n"
	  "for a CRL file the CRLs and their earliest nextUpdate; for each host,\n"
	  "the rotation steps its live state fits (any step when it holds none of its\n"
	  "files), and what earlier writes left next to its files: backups\n"
	  "(FILE.rotor-bak) and stray temporary files (.FILE.rotor-tmp-*), found with\n"
	  "one command per host.  Files over 256 KiB are not read.\n"
	  "N hosts at once (default: parallel in rotor.yaml).  --json prints one object\n"
	  "described by schemas/observe.json.  Exit 0 when every host was observed,\n"
	  "1 when one could not be reached (the others are still reported).\n" },
	{ "import", cmd_import, "adopt a fleet's existing certificates as generation 1",
	  "usage: rotor import --env NAME\n"
	  "\n"
	  "Observe every host of the env (see rotor help observe) and adopt the\n"
	  "certificates it already has, made by hand or by another tool: one root, a\n"
	  "server CA and a client CA under it, and the leaf of every role, each verified\n"
	  "with OpenSSL for its purpose.  They are committed as generation 1 with\n"
	  "imported: true (certificates only: keys stay on the hosts, and rotor never\n"
	  "rewrites imported keys) and rotation.yaml generation 1, phase stable, as one\n"
	  "commit on a new branch rotor/import/NAME.  The env must have no generations\n"
	  "yet.  An unreachable host, a missing file, a key that does not match, two\n"
	  "roots, a leaf that does not verify: every problem is listed and nothing is\n"
	  "written.\n" },
	{ "plan", cmd_plan, "show the steps from the live state to the desired one",
	  "usage: rotor plan --env NAME [--ref REV | --no-fetch] [--json] [--detailed-exitcode]\n"
	  "                  [--no-path] [--replace-unknown] [--no-probe] [--out FILE]\n"
	  "\n"
	  "Observe every host (see rotor help observe) and compare with the desired phase\n"
	  "in rotation.yaml at the desired commit (below).  Prints the path of adjacent steps\n"
	  "(stable -> trust -> servers -> clients -> stable(target), or back) that\n"
	  "reaches it; for each step, per host and file, + create or ~ change (from what\n"
	  "to what, by generation and role; secrets never appear), the reload and probe\n"
	  "that follow, the gate (every host fits the step before), external peers not\n"
	  "yet ready, and the pair check: every client/server pair must verify each\n"
	  "other with OpenSSL during the step.  --no-path plans one jump instead (and is\n"
	  "refused when it would break a pair).  Hosts that hold none of their files\n"
	  "yet fit any step; with --replace-unknown so do hosts whose files hold only\n"
	  "certificates of no generation (their clients will break: prefer rotor\n"
	  "import to adopt a chain that is in use).  A note names every host whose\n"
	  "server role says probe: none (nothing verifies it after a reload).  Every\n"
	  "server role with a probe is asked what it presents: one that presents\n"
	  "another leaf than its files hold (an apply stopped before its reload) is a\n"
	  "~ reload in the plan; --no-probe skips that.  A step that changes the\n"
	  "clients' bundles also probes every external server of hosts.yaml with the\n"
	  "bundle of both states of the step: one that does not verify (retiring an\n"
	  "external CA it still chains to), or does not answer while the step retires\n"
	  "an external CA, is a broken pair naming it; not answering otherwise is a\n"
	  "note (--no-probe: not checked, a note says so).  --json: schemas/plan.json.\n"
	  "The desired commit: REV when --ref is given; else git.main of rotor.yaml\n"
	  "fetched from git.remote (refs/remotes/REMOTE/MAIN); with --no-fetch that\n"
	  "ref as last fetched, offline; when the git repository has no such remote,\n"
	  "the local git.main.  The first line names it (on stderr with --json,\n"
	  "where desired_from says the same).\n"
	  "--out FILE saves the plan for rotor apply FILE (schemas/saved-plan.json,\n"
	  "mode 0600, written to a temporary file and renamed): the desired commit, the\n"
	  "SHA-256 of every managed file as observed (or that it is absent), the leaf\n"
	  "every probed server presents, and the steps; no secret.  Nothing is saved\n"
	  "when there is no plan (live state unknown, or refused); not with --no-path.\n"
	  "Exit 0 (with --detailed-exitcode: 0 in sync, 2 changes pending), 1 on error,\n"
	  "unreachable hosts, or an unsafe desired state.\n" },
	{ "drift", cmd_drift, "the check for cron: drift, unknown and expiring certificates",
	  "usage: rotor drift --env NAME [--ref REV | --no-fetch] [--json] [--no-probe]\n"
	  "\n"
	  "Plan (see rotor help plan; the same desired commit) plus: unknown certificates\n"
	  "on hosts, keys that do not match their certificates, certificates expiring\n"
	  "within renew_before (and the external CAs of hosts.yaml that are not retired,\n"
	  "once each),\n"
	  "CRL files (layout postgres-crl) whose nextUpdate is within renew_before\n"
	  "(rotor client crl signs them again),\n"
	  "services that present another certificate than their files hold, and stray\n"
	  "files: temporary files left next to managed files, and backups\n"
	  "(FILE.rotor-bak) while rotation.yaml names no target (during a rotation they\n"
	  "are kept for a rollback), and the external servers of hosts.yaml (unless\n"
	  "--no-probe), probed with the clients' bundle of the current step: one that\n"
	  "does not answer, presents a chain that bundle does not verify, or presents a\n"
	  "certificate expiring within renew_before.\n"
	  "Exit 0 when all is in order, 2 when anything needs attention (listed), 1 on\n"
	  "error.\n" },
	{ "apply", cmd_apply, "walk the plan on the hosts, step by step, verified",
	  "usage: rotor apply --env NAME [--ref REV | --no-fetch] [--yes] [-j N | --parallel N]\n"
	  "                   [--canary N] [--force-unlock] [--replace-unknown] [--json]\n"
	  "       rotor apply FILE [--ref REV | --no-fetch] [-j N | --parallel N] [--canary N]\n"
	  "                   [--force-unlock] [--json]\n"
	  "\n"
	  "With FILE, a plan saved by rotor plan --out: apply exactly that plan, without\n"
	  "asking (it was reviewed), in its env.  The desired commit read now (as below)\n"
	  "must be the one it records, and every host must still hold the files (by\n"
	  "SHA-256) and its servers present the leaves the plan saw, with the same\n"
	  "steps; else \"Saved plan is stale\", naming the commit or the host and file\n"
	  "(or port), exit 1, nothing applied or recorded: plan again.\n"
	  "\n"
	  "Lock the env (refs/rotor/lock/NAME: on git.remote when the git repository\n"
	  "has it, else in the local repository), plan from the desired commit as plan\n"
	  "finds it (see rotor help plan: git.main fetched from git.remote, --no-fetch,\n"
	  "or --ref REV; never the work tree; the first line names it) and, after you type\n"
	  "yes (or with --yes), apply the steps one at a time.  Per host: each file is\n"
	  "written to a temporary name in its directory, fsynced, given its mode and\n"
	  "owner, the previous file kept as FILE.rotor-bak, renamed into place; then\n"
	  "the role's reload runs, then the probe (a server must present the expected\n"
	  "leaf and accept the expected client leaf; none with probe: none).  A failed\n"
	  "write, reload or probe restores that host's backups and reloads again; the\n"
	  "step stops there and the run ends (hosts already done are safe by the\n"
	  "invariant).  Before each next step every host is observed again: that is the\n"
	  "gate.  A run that applied steps and ends with every host at a stable step,\n"
	  "rotation.yaml naming no target, removes every FILE.rotor-bak on every host\n"
	  "(no retired key stays behind; a run that finds the env in sync removes those\n"
	  "observe sees); during a rotation they stay for a rollback.  A host where that\n"
	  "fails is a warning, not a failure.  --canary N does N hosts of each step one\n"
	  "by one first.  The lock names who holds it, where (user@host), the pid, since\n"
	  "when and until when; a run elsewhere is refused naming the holder.  A remote\n"
	  "lock is refreshed before each next step (until: 30 minutes later); when it\n"
	  "was deleted or taken over meanwhile the run says so and runs no further step.\n"
	  "A lock left by a dead rotor on this machine, or a remote lock past its until,\n"
	  "is taken over; --force-unlock removes any other (see also rotor unlock).\n"
	  "Each run ends with a commit on rotor/status/NAME: observed.json and\n"
	  "applied.json (a run you decline at the question records nothing); with a\n"
	  "remote it is appended to the remote's rotor/status/NAME (on a concurrent\n"
	  "append, fetched again and committed on top).  N hosts\n"
	  "at once (default: parallel in rotor.yaml).  --json prints the result on\n"
	  "stdout at the end: applied.json's members and status_commit\n"
	  "(schemas/apply.json); the plan, the question and the progress lines go to\n"
	  "stderr then.\n"
	  "Exit 0 when every host reached the desired state (or was in sync), 1 otherwise.\n" },
	{ "log", cmd_log, "who applied what, when and why",
	  "usage: rotor log --env NAME [-n N] [--no-fetch] [--json]\n"
	  "\n"
	  "The last N (default 20) applies recorded on rotor/status/NAME, newest first:\n"
	  "commit, time, who, the outcome and the desired commit; and who holds the\n"
	  "lock, if anyone does now.  With git.remote in the git repository both are\n"
	  "the remote's, fetched first (the local branch follows it); --no-fetch reads\n"
	  "the history as last fetched, offline (the lock is then not shown).  The\n"
	  "first line (stderr) says which was read.  --json prints one object\n"
	  "described by schemas/log.json.\n" },
	{ "unlock", cmd_unlock, "remove a stale apply lock and say whose it was",
	  "usage: rotor unlock --env NAME\n"
	  "\n"
	  "Remove the lock of env NAME (refs/rotor/lock/NAME on git.remote when the\n"
	  "git repository has it, else the local one), left by a run that died, and\n"
	  "print whose it was.  The removal is compare-and-swap against the lock read:\n"
	  "a lock taken again meanwhile stays.  Exit 0 also when the env is not locked.\n" },
	{ "handoff", cmd_handoff, "write one client's certificates, keys and bundle for its team",
	  "usage: rotor handoff --env NAME --client NAME --out DIR [--step next|current|target]\n"
	  "                     [--ref REV | --no-fetch] [--passphrase-file PATH] [--plain-key]\n"
	  "                     [--json]\n"
	  "\n"
	  "For a team whose hosts rotor does not reach: write into DIR (which must not\n"
	  "exist; created 0700) what client NAME needs at one rotation step, from the\n"
	  "desired commit plan and apply read (see rotor help plan: --ref REV, else\n"
	  "git.main fetched from git.remote; --no-fetch as last fetched):\n"
	  "  postgresql.crt   the client certificate and its CA (PEM)\n"
	  "  postgresql.key   its key, PKCS#8 encrypted with the passphrase (PEM)\n"
	  "  postgresql.pk8   the same key as encrypted PKCS#8 DER (pgJDBC)\n"
	  "  postgresql.p12   PKCS#12: key, certificate and CA, alias \"user\"\n"
	  "  root.crt         the step's trust bundle (PEM)\n"
	  "  truststore.p12   the same bundle as a Java PKCS#12 trust store\n"
	  "  README.txt       fingerprints, expiry, what to do before and after the\n"
	  "                   next phase, libpq settings and JDBC URLs, the servers\n"
	  "  SHA256SUMS       sha256sum -c over the other files\n"
	  "Encryption: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC); key files 0600.\n"
	  "The passphrase (8 to 1024 bytes) comes from --passphrase-file (mode 0600,\n"
	  "one final newline dropped), else from $ROTOR_HANDOFF_PASSPHRASE, never the\n"
	  "command line; it must not be the repository's secret key.  --plain-key also\n"
	  "writes postgresql.plain.key, the key unencrypted.\n"
	  "\n"
	  "The step: current is the one rotation.yaml names; target is the end of the\n"
	  "rotation in progress, stable(target); next (the default) is what the client\n"
	  "moves to next: stable when no rotation is under way, trust in phase trust\n"
	  "(the new bundle, the certificate in service), clients in phase servers and\n"
	  "clients (the target's certificate, accepted by the servers from phase\n"
	  "servers on, and the bundle of both generations).\n"
	  "\n"
	  "NAME is a client of chain.yaml or an external peer of hosts.yaml; an\n"
	  "external peer gets the bundle only at the trust step (and always when it\n"
	  "is not also a client in chain.yaml).  Files are written to a temporary\n"
	  "directory next to DIR and renamed into place: a failure leaves nothing.\n"
	  "--json prints what was written (names, modes, SHA-256, the step and the\n"
	  "certificate; no secret) as one object described by schemas/handoff.json,\n"
	  "the desired-commit line going to stderr.\n" },
	{ "client", cmd_client, "add or remove one client identity, or sign the CRLs again, on a branch",
	  "usage: rotor client add --env NAME CLIENT [--json]\n"
	  "       rotor client remove --env NAME CLIENT [--json]\n"
	  "       rotor client crl --env NAME [--json]\n"
	  "\n"
	  "Each makes ONE commit on a new branch for review, from HEAD; the work tree,\n"
	  "the index and the current branch are not touched, and no generation is made.\n"
	  "\n"
	  "add: issue a client certificate (CN = CLIENT, the PostgreSQL user) from the\n"
	  "client CA of the generation in service, and of the target generation when a\n"
	  "rotation is under way; its key is encrypted with the repository secret;\n"
	  "chain.yaml's clients list names it.  Branch rotor/client/NAME/add-CLIENT.\n"
	  "Then give a host role `identity: CLIENT` in hosts.yaml and apply.\n"
	  "\n"
	  "remove: revoke CLIENT: its serial goes on crl/client-ca.crl of each of those\n"
	  "generations (signed by that generation's client CA; crl/root.crl is signed\n"
	  "again too), its certificates and keys are deleted, chain.yaml forgets it.\n"
	  "Branch rotor/client/NAME/remove-CLIENT.  Refused while a host role of\n"
	  "hosts.yaml still uses CLIENT as its identity.  Servers with a CRL file\n"
	  "(layout postgres-crl, PostgreSQL ssl_crl_file) refuse it once applied.\n"
	  "\n"
	  "crl: sign every CRL of those generations again, same revocations, valid for\n"
	  "chain.yaml's validity.crl (default 180d); rotor drift reports CRLs that\n"
	  "expire within renew_before.  Branch rotor/client/NAME/crl-UNIXTIME.\n"
	  "\n"
	  "CLIENT: letters, digits, '_', '.' and '-', at most 63, not starting with '.'\n"
	  "or '-'.  Refused: an unknown client (remove), one already there (add), an\n"
	  "imported generation (its CA keys are not in the repository), uncommitted\n"
	  "changes, an existing branch, a wrong secret key.\n"
	  "\n"
	  "--json prints the commit made (generations changed, serials revoked, CRL\n"
	  "validity, branch) as one object described by schemas/client.json.\n" },
	{ "help", cmd_help, "show help for a command", "usage: rotor help [COMMAND]\n" },
	{ NULL, NULL, NULL, NULL }
};

const struct cmd *cmd_find(const char *name)
{
	const struct cmd *c;

	for (c = rotor_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static void usage(FILE *f)
{
	const struct cmd *c;

	fprintf(f, "usage: rotor [--repo DIR] [--env NAME] COMMAND [ARGS]\n\n"
		   "rotor rotates mTLS certificate chains across hosts, with the desired\n"
		   "state in git.\n\ncommands:\n");
	for (c = rotor_commands; c->name; c++)
		fprintf(f, "  %-10s %s\n", c->name, c->summary);
	fprintf(f, "\nglobal options:\n"
		   "  --repo DIR   the state repository (default: the one containing the cwd)\n"
		   "  --env NAME   the environment\n"
		   "  --help       this text; `rotor help COMMAND` for one command\n"
		   "  --version    print the version\n"
		   "\nErrors are one line on stderr, prefixed \"rotor:\", with exit status 1.\n");
}

static int cmd_help(struct ctx *ctx, int argc, char **argv)
{
	const struct cmd *c;

	(void)ctx;
	if (argc < 2) {
		usage(stdout);
		return 0;
	}
	c = cmd_find(argv[1]);
	if (!c)
		return cmd_failf("unknown command \"%s\" (see rotor --help)", argv[1]);
	fputs(c->usage, stdout);
	return 0;
}

int cmd_fail(const struct err *e)
{
	fprintf(stderr, "rotor: %s\n", e->msg[0] ? e->msg : "unknown error");
	return 1;
}

int cmd_failf(const char *fmt, ...)
{
	va_list ap;

	fputs("rotor: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* Take a global option (--name VALUE or --name=VALUE) out of argv at i. */
static int take_global(int *argc, char **argv, int i, const char *name, const char **value)
{
	size_t n = strlen(name);
	int used;

	if (strncmp(argv[i], name, n) != 0)
		return 0;
	if (argv[i][n] == '=') {
		*value = argv[i] + n + 1;
		used = 1;
	} else if (argv[i][n] == '\0') {
		if (i + 1 >= *argc)
			return -1;
		*value = argv[i + 1];
		used = 2;
	} else {
		return 0;
	}
	memmove(&argv[i], &argv[i + used], (size_t)(*argc - i - used + 1) * sizeof(*argv));
	*argc -= used;
	return 1;
}

int main(int argc, char **argv)
{
	struct ctx ctx = { NULL, NULL, NULL };
	struct err e = ERR_INIT;
	const struct cmd *c;
	int i, r, rc;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0;) {
		r = take_global(&argc, argv, i, "--repo", &ctx.repo_dir);
		if (r == 0)
			r = take_global(&argc, argv, i, "--env", &ctx.env);
		if (r < 0)
			return cmd_failf("option %s needs a value", argv[i]);
		if (r == 0)
			i++;
	}
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("rotor %s\n", ROTOR_VERSION);
		return 0;
	}
	c = cmd_find(argv[1]);
	if (!c)
		return cmd_failf("unknown command \"%s\" (see rotor --help)", argv[1]);
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(c->usage, stdout);
			return 0;
		}
	}
	/* A socket per host when apply keeps its sessions: the soft limit on open files goes up to the hard one. */
	(void)fd_limit_raise();
	/* Libraries are initialised once, before any thread starts. */
	if (gitrepo_global_init(&e) < 0)
		return cmd_fail(&e);
	if (ssh_global_init(&e) < 0) {
		gitrepo_global_shutdown();
		return cmd_fail(&e);
	}
	rc = c->run(&ctx, argc - 1, argv + 1);
	gitrepo_free(ctx.repo);
	ssh_global_shutdown();
	gitrepo_global_shutdown();
	return rc;
}
