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

/*
 * Does the unencrypted private key in key[0..len) belong to the certificate
 * cert_der[0..der_len)?  1 yes, 0 no, -1 not decided here: the caller then
 * decodes both with OpenSSL (key_decode(), d2i_X509), which has the last
 * word.  Decided here: a PKCS#8 "PRIVATE KEY" (PEM without headers, or the
 * whole of key as DER) of an EC named curve or Ed25519 whose algorithm is
 * byte for byte the certificate's.  The public key is computed from the
 * private one (d*G; Ed25519's derivation) and compared with the
 * certificate's, so a key file whose stored public key was altered does
 * not match.  Everything else (RSA, a traditional "EC PRIVATE KEY", a
 * compressed point, bytes that do not parse) is -1.
 *
 * Why: OpenSSL 3.0 builds a chain of decoders for every key and every
 * certificate's public key it reads; observe matches a key on every host.
 * This walks the DER with ASN1_get_object() and costs a scalar
 * multiplication.  The key's bytes are wiped before returning.
 */
int key_match_cert_der(const char *key, size_t len, const unsigned char *cert_der, size_t der_len);

/* Append k to out as an unencrypted PKCS#8 PEM ("PRIVATE KEY"). */
int key_encode(struct buf *out, EVP_PKEY *k, struct err *e);
/* The same, or (der) as unencrypted PKCS#8 DER, what pgJDBC reads without sslpassword. */
int key_encode_as(struct buf *out, EVP_PKEY *k, int der, struct err *e);

#endif
