/*
 * fuzz_remote.c -- the parsing of remote command output
 * (reconcile/remote/exec.c): the `sudo -n stat -c '%s %f %u %g %Y'`
 * line (ssh_parse_stat), the sudo read's stat line, file and stat line
 * again (ssh_parse_sudo_read), the stray-file listing (ssh_parse_strays, of
 * reconcile/remote/files.c) and the shaping of a command's stderr into
 * a message (ssh_tail_of).
 *
 * Input: the first byte picks the size of the message buffer (1 to 256),
 * the rest is the command's output.
 *
 * Checks: the numbers of a stat line that parses, printed back in
 * stat's own form, parse again; every stray a listing names is a
 * backup or a temporary file next to one of the paths it was given;
 * the stderr tail fits its buffer, holds no newline and is never empty.
 */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "common/buf.h"
#include "reconcile/remote/ssh_int.h"

void fuzz_remote(const uint8_t *data, size_t size)
{
	struct buf b = BUF_INIT;
	unsigned long long sz;
	unsigned int mode;
	unsigned long uid, gid;
	long long mtime;
	char tmp[256], back[128];
	const char *t;
	size_t cap;

	if (size < 1)
		return;
	cap = 1 + (size_t)data[0];
	if (buf_put(&b, data + 1, size - 1) < 0) {
		buf_release(&b);
		return;
	}
	if (ssh_parse_stat(buf_cstr(&b), &sz, &mode, &uid, &gid, &mtime) == 0) {
		snprintf(back, sizeof(back), "%llu %x %lu %lu %lld\n", sz, mode, uid, gid, mtime);
		/* Same numbers: any written form of them parses to these values. */
		FUZZ_CHECK(ssh_parse_stat(back, &sz, &mode, &uid, &gid, &mtime) == 0);
	}
	{
		static const char *const paths[] = { "/d/a.crt", "/e/f/b.key", "/c" };
		char **v = NULL;
		size_t n = 0, i;

		if (ssh_parse_strays(buf_cstr(&b), paths, 3, &v, &n) == 0) {
			for (i = 0; i < n; i++)
				FUZZ_CHECK(v[i] && (strstr(v[i], ".rotor-tmp-") || strstr(v[i], SSH_BACKUP_SUFFIX)) &&
					   (!strncmp(v[i], "/d/", 3) || !strncmp(v[i], "/e/f/", 5) || !strncmp(v[i], "/c.", 3) ||
					    !strncmp(v[i], "/.c.", 4)));
			ssh_strays_free(v, n);
		} else {
			FUZZ_CHECK(v == NULL && n == 0);
		}
	}
	{
		struct ssh_sudo_read r;
		int k = ssh_parse_sudo_read(buf_cstr(&b), b.len, &r);

		FUZZ_CHECK(k >= -1 && k <= 2);
		if (k == 2)   /* the bytes kept lie inside the output, and the line is there twice */
			FUZZ_CHECK(r.off > 0 && r.len == r.size && r.off + r.len + r.off == b.len &&
				   memcmp(b.ptr, b.ptr + r.off + r.len, r.off) == 0);
		if (k == 1)
			FUZZ_CHECK(b.ptr[b.len - 1] == '\n' && memchr(b.ptr, '\n', b.len) == b.ptr + b.len - 1);
	}
	t = ssh_tail_of(&b, tmp, cap);
	FUZZ_CHECK(t && t[0] && strlen(t) < (t == tmp ? cap : sizeof(tmp)));
	FUZZ_CHECK(strchr(t, '\n') == NULL);
	buf_release(&b);
}

FUZZ_MAIN(fuzz_remote)
