/*
 * pki_secret.c -- the secret key file that encrypts private keys at rest,
 * and checks of encrypted keys against it (see pki.h).
 *
 * The secret never appears in a message: errors name the file and what
 * is wrong with it, never its contents.
 */
#define _DEFAULT_SOURCE
#include "reconcile/pki/pki.h"
#include "reconcile/pki/pki_int.h"
#include "reconcile/tls/key.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#define SECRET_BYTES 32
#define SECRET_HEX (SECRET_BYTES * 2)

static void hex_lower(char *out, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* mkdir -p of path's parent directories, each new one mode 0700. */
static int make_parents(const char *path, struct err *e)
{
	char *p = xstrdup(path, e), *s;
	int rc = 0;

	if (!p)
		return ROTOR_ENOMEM;
	for (s = p + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			rc = err_set(e, ROTOR_ERROR, "%s: cannot create directory: %s", p, strerror(errno));
			break;
		}
		*s = '/';
	}
	free(p);
	return rc;
}

int pki_write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int pki_secret_create(const char *path, struct err *e)
{
	unsigned char raw[SECRET_BYTES];
	char text[SECRET_HEX + 2];
	int fd = -1, rc;

	if (!path || !*path)
		return err_set(e, ROTOR_EINVALID, "no path for the secret key file");
	if ((rc = make_parents(path, e)) < 0)
		return rc;
	if (RAND_priv_bytes(raw, sizeof(raw)) <= 0)
		return pki_ossl_err(e, ROTOR_ERROR, "%s: no random bytes for the secret key", path);
	hex_lower(text, raw, sizeof(raw));
	secure_wipe(raw, sizeof(raw));
	text[SECRET_HEX] = '\n';
	text[SECRET_HEX + 1] = '\0';

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			rc = err_set(e, ROTOR_EEXISTS, "%s: the secret key file exists; refusing to overwrite it", path);
		else
			rc = err_set(e, ROTOR_ERROR, "%s: cannot create: %s", path, strerror(errno));
		goto out;
	}
	/* The umask may have taken bits away, never added any; be exact. */
	if (fchmod(fd, 0600) != 0 || pki_write_all(fd, text, SECRET_HEX + 1) != 0 || fsync(fd) != 0) {
		rc = err_set(e, ROTOR_ERROR, "%s: cannot write: %s", path, strerror(errno));
		close(fd);
		fd = -1;
		unlink(path);
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = err_set(e, ROTOR_ERROR, "%s: cannot write: %s", path, strerror(errno));
		unlink(path);
		goto out;
	}
	fd = -1;
	rc = 0;
out:
	secure_wipe(text, sizeof(text));
	return rc;
}

static int is_lower_hex(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

int pki_secret_load(struct buf *secret, const char *path, struct err *e)
{
	char text[SECRET_HEX + 4];
	struct stat st;
	size_t len = 0;
	ssize_t r;
	int fd, rc = 0;

	if (!secret || !path || !*path)
		return err_set(e, ROTOR_EINVALID, "no path for the secret key file");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return err_set(e, ROTOR_ESECRET,
				       "%s: the secret key file does not exist (rotor init creates one; "
				       "secrets.key_file in rotor.yaml or $ROTOR_KEY_FILE give its path)", path);
		return err_set(e, ROTOR_ESECRET, "%s: cannot open the secret key file: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) != 0) {
		rc = err_set(e, ROTOR_ESECRET, "%s: cannot stat the secret key file: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = err_set(e, ROTOR_ESECRET, "%s: the secret key file is not a regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		rc = err_set(e, ROTOR_ESECRET,
			     "%s: the secret key file is accessible by group or others (mode %04o); "
			     "refusing to use it: run chmod 600 on it", path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	/* Read one byte more than the longest valid file to catch longer ones. */
	while (len < sizeof(text)) {
		r = read(fd, text + len, sizeof(text) - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = err_set(e, ROTOR_ESECRET, "%s: cannot read the secret key file: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (!((len == SECRET_HEX || (len == SECRET_HEX + 1 && text[SECRET_HEX] == '\n')) &&
	      is_lower_hex(text, SECRET_HEX))) {
		rc = err_set(e, ROTOR_ESECRET,
			     "%s: not a rotor secret key file (expected %d lowercase hex digits and a newline)",
			     path, SECRET_HEX);
		goto out;
	}
	buf_wipe(secret);
	if (buf_put(secret, text, SECRET_HEX) < 0)
		rc = err_nomem(e);
out:
	secure_wipe(text, sizeof(text));
	close(fd);
	return rc;
}

int pki_secret_id(char out[17], const char *secret)
{
	static const char label[] = "rotor key id\n";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	int rc = ROTOR_ERROR;

	out[0] = '\0';
	if (!secret)
		return ROTOR_EINVALID;
	if (!(ctx = EVP_MD_CTX_new()) ||
	    !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, label, sizeof(label) - 1) ||
	    !EVP_DigestUpdate(ctx, secret, strlen(secret)) ||
	    !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen < 8)
		goto out;
	hex_lower(out, md, 8);
	rc = 0;
out:
	secure_wipe(md, sizeof(md));
	EVP_MD_CTX_free(ctx);   /* cleanses the digest state */
	ERR_clear_error();
	return rc;
}

int pki_key_check(const char *pem, size_t len, const char *passphrase, struct err *e)
{
	EVP_PKEY *k = NULL;
	int rc;

	if (!pem || !passphrase)
		return err_set(e, ROTOR_EINVALID, "pki_key_check: invalid arguments");
	rc = key_decode(&k, pem, len, passphrase, KEY_ENCRYPTED, e);
	EVP_PKEY_free(k);
	if (rc == ROTOR_ESECRET)
		return err_set(e, ROTOR_ESECRET, "the private key does not decrypt with this secret key");
	return rc;
}
