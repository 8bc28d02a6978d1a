/*
 * key.h -- private keys: the one place rotor turns PEM bytes into a key
 * and a key back into PEM.
 *
 * Keys at rest in the repository are PKCS#8 ENCRYPTED PRIVATE KEY;
 * keys on hosts are unencrypted PEM (PKCS#8 or traditional), because
 * PostgreSQL and libpq read them without a passphrase.  Every reader of
 * a key (the secret check, apply's decryption, the probe's client key,
 * observe's key/certificate match) goes through key_decode(), so the
 * rules and the wiping are the same everywhere.
 *
 * Secrets: the PEM bytes are read in place (never copied); a passphrase
 * is copied only into OpenSSL's callback buffer, which OpenSSL cleanses;
 * key_encode() writes through OpenSSL secure memory, and its output must
 * be released with buf_wipe().  No message ever holds key bytes or the
 * passphrase.
 *
 * Errors: ROTOR_EINVALID for bytes that are not a PEM private key (or
 * not of the kind flags ask for), ROTOR_ESECRET for an encrypted key
 * without a passphrase or with a wrong one, ROTOR_ENOMEM.  The OpenSSL
 * error queue is cleared.
 */
#ifndef ROTOR_KEY_H
#define ROTOR_KEY_H

#include <stddef.h>

#include <openssl/evp.h>

#include "common/buf.h"
#include "common/err.h"

#define KEY_ENCRYPTED 1u   /* only an ENCRYPTED PRIVATE KEY (keys at rest) */
#define KEY_PLAIN 2u       /* only an unencrypted key (keys on hosts) */

/*
 * Decode the first private key in pem[0..len) into *out (EVP_PKEY_free()).
 * Without KEY_ENCRYPTED, bytes that are not PEM may also be one whole
 * unencrypted PKCS#8 DER key (pgJDBC's .pk8, the pgjdbc layout).
 */
int key_decode(EVP_PKEY **out, const char *pem, size_t len, const char *passphrase, unsigned flags,
	       struct err *e);

/* Append k to out as an unencrypted PKCS#8 PEM ("PRIVATE KEY"). */
int key_encode(struct buf *out, EVP_PKEY *k, struct err *e);
/* The same, or (der) as unencrypted PKCS#8 DER, what pgJDBC reads without sslpassword. */
int key_encode_as(struct buf *out, EVP_PKEY *k, int der, struct err *e);

#endif
