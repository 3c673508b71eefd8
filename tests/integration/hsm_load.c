/* hsm_load.c: load key URIs one after the other in one process, as
 * hsmcad's signer does with every generation's key, and sign with each.
 * For each URI, one line on stdout:
 *   ok URI            the key loaded, and a signature it made verifies
 *                     with the public key hsmca found for it
 *   bad URI           the key loaded but signs for another public key
 *   refused CODE MSG  hsm_load_key refused (CODE: the HSMCA_ERR_* value)
 * Run by hsm-keys.t. Exit status: 0 unless a key was bad. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "hsmca/config.h"
#include "hsmca/hsm.h"

/* 1 if k signs a random message that its public key verifies. */
static int
signs_for_its_public_key(struct hsm *h, struct hsm_key *k)
{
	unsigned char msg[64], sig[1024];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md;
	int ok;

	if ((md = EVP_MD_CTX_new()) == NULL || RAND_bytes(msg, sizeof(msg)) != 1)
		return 0;
	hsm_sign_enter(h);
	ok = EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    hsm_key_private(k)) == 1 &&
	    EVP_DigestSign(md, sig, &siglen, msg, sizeof(msg)) == 1;
	hsm_sign_leave(h);
	EVP_MD_CTX_reset(md);
	ok = ok && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    hsm_key_public(k)) == 1 &&
	    EVP_DigestVerify(md, sig, siglen, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

int
main(int argc, char *argv[])
{
	struct config *cfg = NULL;
	struct hsm *h = NULL;
	struct hsm_key *keys[16] = { NULL };
	struct hsmca_err e;
	int bad = 0, ret;

	if (argc < 3 || argc > 2 + 16) {
		fprintf(stderr, "usage: hsm_load CONFIG URI...\n");
		return 2;
	}
	if (config_load(argv[1], &cfg, &e) != 0 ||
	    hsm_open(&cfg->hsm, &h, &e) != 0) {
		fprintf(stderr, "hsm_load: %s\n", e.msg);
		return 2;
	}
	/* Every key stays loaded, as in the signer. */
	for (int i = 2; i < argc; i++) {
		err_clear(&e);
		if ((ret = hsm_load_key(h, argv[i], &keys[i - 2], &e)) != 0)
			printf("refused %d %s\n", ret, e.msg);
		else if (signs_for_its_public_key(h, keys[i - 2]))
			printf("ok %s\n", argv[i]);
		else {
			printf("bad %s\n", argv[i]);
			bad++;
		}
	}
	for (int i = 0; i < 16; i++)
		hsm_key_free(keys[i]);
	hsm_close(h);
	config_free(cfg);
	return bad ? 1 : 0;
}
