/* keytype.h: the key pair types hsmca generates in a token. */
#ifndef HSMCA_KEYTYPE_H
#define HSMCA_KEYTYPE_H

#include <openssl/evp.h>

enum key_type {
	KEY_EC_P256,
	KEY_EC_P384,
	KEY_RSA_2048,
	KEY_RSA_3072,
	KEY_TYPE_MAX
};

/* "ec-p256", "ec-p384", "rsa-2048", "rsa-3072" */
const char	*keytype_name(enum key_type t);
/* Returns 0 and sets *t, or -1 for an unknown name. */
int		 keytype_parse(const char *name, enum key_type *t);
/* A key pair of this type made in host memory (a device's own key, or
 * the throwaway key of a serverkeygen request); NULL if it failed. */
EVP_PKEY	*keytype_generate_soft(enum key_type t);
/* The digest a CA key of this type signs with: SHA-384 for P-384,
 * SHA-256 otherwise. For a key already loaded, keytype_digest_for(). */
const EVP_MD	*keytype_digest(enum key_type t);
const EVP_MD	*keytype_digest_for(const EVP_PKEY *pk);

#endif
