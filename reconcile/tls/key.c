/* key.c -- private keys from and to PEM (see key.h). */
#include "reconcile/tls/key.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>

struct pass_ctx {
	const char *pass;
	int asked;
};

static int pass_cb(char *buf, int size, int rwflag, void *u)
{
	struct pass_ctx *p = u;
	size_t n;

	(void)rwflag;
	p->asked = 1;
	if (!p->pass || size <= 0)
		return -1;
	n = strlen(p->pass);
	if (n > (size_t)size)
		return -1;
	memcpy(buf, p->pass, n);
	return (int)n;
}

/*
 * Unencrypted PKCS#8 DER, the whole of der[0..len), with a decoder kept
 * per thread; NULL if it does not decode (the caller then takes the
 * general path, which has the last word).  OpenSSL 3.0 builds its chain
 * of decoders anew for every key it reads, several times the cost of
 * the decoding itself: observe reads a key on every host.
 */
struct p8_decoder {
	EVP_PKEY *key;          /* where the decoder puts what it decoded */
	OSSL_DECODER_CTX *dc;
};

static pthread_key_t p8_slot;
static pthread_once_t p8_once = PTHREAD_ONCE_INIT;
static int p8_ready;

static void p8_free(void *p)
{
	struct p8_decoder *d = p;

	OSSL_DECODER_CTX_free(d->dc);
	EVP_PKEY_free(d->key);
	free(d);
}

static void p8_init(void)
{
	p8_ready = pthread_key_create(&p8_slot, p8_free) == 0;
}

static EVP_PKEY *p8_decode(const unsigned char *der, size_t len)
{
	struct p8_decoder *d;
	const unsigned char *p = der;
	size_t left = len;
	EVP_PKEY *k;

	if (pthread_once(&p8_once, p8_init) != 0 || !p8_ready)
		return NULL;
	if (!(d = pthread_getspecific(p8_slot))) {
		if (!(d = calloc(1, sizeof(*d))))
			return NULL;
		d->dc = OSSL_DECODER_CTX_new_for_pkey(&d->key, "DER", "PrivateKeyInfo", NULL, EVP_PKEY_KEYPAIR,
						      NULL, NULL);
		if (!d->dc || pthread_setspecific(p8_slot, d) != 0) {
			p8_free(d);
			return NULL;
		}
	}
	EVP_PKEY_free(d->key);
	d->key = NULL;
	if (!OSSL_DECODER_from_data(d->dc, &p, &left) || left != 0) {
		EVP_PKEY_free(d->key);
		d->key = NULL;
		return NULL;
	}
	k = d->key;
	d->key = NULL;
	return k;
}

/*
 * The PEM label of the first block ("ENCRYPTED PRIVATE KEY", "EC PRIVATE
 * KEY", ...), into label; an unencrypted PKCS#8 block ("PRIVATE KEY") is
 * also decoded into *key when it can be.
 */
static int pem_label(char *label, size_t len, const char *pem, size_t n, EVP_PKEY **key)
{
	BIO *b = BIO_new_mem_buf(pem, (int)n);
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long derlen = 0;
	int ok;

	if (!b)
		return ROTOR_ENOMEM;
	ok = PEM_read_bio(b, &name, &header, &der, &derlen);
	if (ok) {
		snprintf(label, len, "%s", name);
		if (strcmp(name, PEM_STRING_PKCS8INF) == 0 && derlen > 0 && (!header || !*header))
			*key = p8_decode(der, (size_t)derlen);
	}
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_clear_free(der, derlen > 0 ? (size_t)derlen : 0);
	BIO_free(b);
	return ok ? 0 : ROTOR_EINVALID;
}

/* Unencrypted PKCS#8 DER (pgJDBC's .pk8), the whole of der[0..len); NULL if not. */
static EVP_PKEY *der_pkcs8(const char *der, size_t len)
{
	const unsigned char *p = (const unsigned char *)der;
	PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
	EVP_PKEY *k = NULL;

	if (p8 && p == (const unsigned char *)der + len && !(k = p8_decode((const unsigned char *)der, len)))
		k = EVP_PKCS82PKEY(p8);
	PKCS8_PRIV_KEY_INFO_free(p8);   /* cleanses the key bytes */
	return k;
}

int key_decode(EVP_PKEY **out, const char *pem, size_t len, const char *passphrase, unsigned flags,
	       struct err *e)
{
	struct pass_ctx pc = { passphrase, 0 };
	char label[64] = "";
	EVP_PKEY *fast = NULL;
	BIO *b;
	int rc, encrypted;

	*out = NULL;
	if (!pem || len == 0)
		return err_set(e, ROTOR_EINVALID, "no key");
	if (len > INT_MAX)
		return err_set(e, ROTOR_EINVALID, "the key is too large");
	rc = pem_label(label, sizeof(label), pem, len, &fast);
	ERR_clear_error();
	if (rc == ROTOR_ENOMEM)
		return err_nomem(e);
	if (fast && !(flags & KEY_ENCRYPTED)) {
		*out = fast;
		return 0;
	}
	EVP_PKEY_free(fast);
	if (rc < 0 && !(flags & KEY_ENCRYPTED) && (unsigned char)pem[0] == 0x30) {
		*out = der_pkcs8(pem, len);
		ERR_clear_error();
		if (*out)
			return 0;
		return err_set(e, ROTOR_EINVALID, "neither a PEM private key nor unencrypted PKCS#8 DER");
	}
	if (rc < 0 || !strstr(label, "PRIVATE KEY"))
		return err_set(e, ROTOR_EINVALID, "not a PEM private key");
	encrypted = strcmp(label, PEM_STRING_PKCS8) == 0;
	if ((flags & KEY_ENCRYPTED) && !encrypted)
		return err_set(e, ROTOR_EINVALID, "not an ENCRYPTED PRIVATE KEY (found \"%s\")", label);
	if ((flags & KEY_PLAIN) && encrypted)
		return err_set(e, ROTOR_EINVALID, "an encrypted key where an unencrypted one belongs");
	if (!(b = BIO_new_mem_buf(pem, (int)len)))
		return err_nomem(e);
	*out = PEM_read_bio_PrivateKey(b, NULL, pass_cb, &pc);
	BIO_free(b);
	ERR_clear_error();
	if (*out)
		return 0;
	if (pc.asked && !passphrase)
		return err_set(e, ROTOR_ESECRET, "the key is encrypted and no passphrase was given");
	if (pc.asked)
		return err_set(e, ROTOR_ESECRET, "the key does not decrypt with the passphrase");
	return err_set(e, ROTOR_EINVALID, "not a PEM private key");
}

int key_encode(struct buf *out, EVP_PKEY *k, struct err *e)
{
	return key_encode_as(out, k, 0, e);
}

int key_encode_as(struct buf *out, EVP_PKEY *k, int der, struct err *e)
{
	BIO *mem = BIO_new(BIO_s_secmem());
	BUF_MEM *m = NULL;
	int rc = 0;

	if (!mem || !(der ? i2d_PKCS8PrivateKey_bio(mem, k, NULL, NULL, 0, NULL, NULL)
			  : PEM_write_bio_PKCS8PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL)) ||
	    BIO_get_mem_ptr(mem, &m) <= 0 || buf_put(out, m->data, m->length) < 0)
		rc = err_nomem(e);
	BIO_free(mem);      /* secure memory: cleansed on free */
	ERR_clear_error();
	return rc;
}
