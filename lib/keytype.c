/* keytype.c: names and digests of the key types hsmca generates. */
#include "config.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "hsmca/keytype.h"

static const char *const keytype_names[KEY_TYPE_MAX] = {
	[KEY_EC_P256] = "ec-p256",
	[KEY_EC_P384] = "ec-p384",
	[KEY_RSA_2048] = "rsa-2048",
	[KEY_RSA_3072] = "rsa-3072",
};

const char *
keytype_name(enum key_type t)
{
	if ((int)t < 0 || t >= KEY_TYPE_MAX)
		return "unknown";
	return keytype_names[t];
}

int
keytype_parse(const char *name, enum key_type *t)
{
	for (int i = 0; i < KEY_TYPE_MAX; i++) {
		if (strcmp(name, keytype_names[i]) == 0) {
			*t = (enum key_type)i;
			return 0;
		}
	}
	return -1;
}

EVP_PKEY *
keytype_generate_soft(enum key_type t)
{
	switch (t) {
	case KEY_EC_P256:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	case KEY_EC_P384:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	case KEY_RSA_2048:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	case KEY_RSA_3072:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	default:
		return NULL;
	}
}

const EVP_MD *
keytype_digest(enum key_type t)
{
	return t == KEY_EC_P384 ? EVP_sha384() : EVP_sha256();
}

const EVP_MD *
keytype_digest_for(const EVP_PKEY *pk)
{
	int bits = EVP_PKEY_get_bits(pk);

	/* SHA-384 goes with P-384 and larger curves; SHA-256 otherwise. */
	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC && bits >= 384)
		return EVP_sha384();
	return EVP_sha256();
}
