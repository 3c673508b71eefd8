/* test_sigcheck.c: the precomputed ECDSA check gives EVP_DigestVerify's
 * answer on good signatures, on every kind of bad one, on every curve
 * and digest hsmca signs with. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "hsmca/sigcheck.h"
#include "testutil.h"

/* OpenSSL's answer: 1 valid, 0 anything else. */
static int
evp_verify(EVP_PKEY *k, const EVP_MD *md, const unsigned char *msg,
    size_t len, const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok;

	assert_non_null(c);
	assert_int_equal(EVP_DigestVerifyInit(c, NULL, md, NULL, k), 1);
	ok = EVP_DigestVerify(c, sig, siglen, msg, len) == 1;
	EVP_MD_CTX_free(c);
	return ok;
}

static size_t
evp_sign(EVP_PKEY *k, const EVP_MD *md, const unsigned char *msg,
    size_t len, unsigned char *sig, size_t max)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t siglen = max;

	assert_non_null(c);
	assert_int_equal(EVP_DigestSignInit(c, NULL, md, NULL, k), 1);
	assert_int_equal(EVP_DigestSign(c, sig, &siglen, msg, len), 1);
	EVP_MD_CTX_free(c);
	return siglen;
}

/* sigcheck and OpenSSL agree on sig; returns the answer. */
static int
agree(const struct sigcheck *sc, EVP_PKEY *k, const EVP_MD *md,
    const unsigned char *msg, size_t len, const unsigned char *sig,
    size_t siglen)
{
	int want = evp_verify(k, md, msg, len, sig, siglen);
	int got = sigcheck_verify(sc, msg, len, sig, siglen);

	if (got != want)
		fail_msg("sigcheck says %d, OpenSSL %d (siglen %zu)", got, want,
		    siglen);
	return got;
}

/* sig with r and s replaced (NULL: kept), DER-encoded into out. */
static size_t
resign(const unsigned char *sig, size_t siglen, const BIGNUM *r,
    const BIGNUM *s, unsigned char *out)
{
	const unsigned char *p = sig;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
	const BIGNUM *r0, *s0;
	unsigned char *q = out;
	int len;

	assert_non_null(es);
	ECDSA_SIG_get0(es, &r0, &s0);
	assert_int_equal(ECDSA_SIG_set0(es, BN_dup(r != NULL ? r : r0),
	    BN_dup(s != NULL ? s : s0)), 1);
	len = i2d_ECDSA_SIG(es, &q);
	assert_true(len > 0);
	ECDSA_SIG_free(es);
	return (size_t)len;
}

/* Every kind of bad signature, and the one other good one, for one
 * signature of msg. */
static void
mutations(const struct sigcheck *sc, EVP_PKEY *k, const EVP_MD *md,
    const EC_GROUP *g, unsigned char *msg, size_t len,
    const unsigned char *sig, size_t siglen)
{
	const BIGNUM *n = EC_GROUP_get0_order(g), *r, *s;
	const unsigned char *p = sig;
	unsigned char bad[256];
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
	BIGNUM *v = BN_new(), *zero = BN_new();
	size_t blen;

	assert_non_null(es);
	assert_non_null(v);
	assert_non_null(zero);
	BN_zero(zero);
	ECDSA_SIG_get0(es, &r, &s);

	/* The message changed. */
	msg[len / 2] ^= 0x01;
	assert_int_equal(agree(sc, k, md, msg, len, sig, siglen), 0);
	msg[len / 2] ^= 0x01;
	/* r + 1, s + 1. */
	assert_int_equal(BN_add(v, r, BN_value_one()), 1);
	blen = resign(sig, siglen, v, NULL, bad);
	assert_int_equal(agree(sc, k, md, msg, len, bad, blen), 0);
	assert_int_equal(BN_add(v, s, BN_value_one()), 1);
	blen = resign(sig, siglen, NULL, v, bad);
	assert_int_equal(agree(sc, k, md, msg, len, bad, blen), 0);
	/* (r, n - s) is the other valid signature (ECDSA's malleability;
	 * OpenSSL accepts it, so does sigcheck). */
	assert_int_equal(BN_sub(v, n, s), 1);
	blen = resign(sig, siglen, NULL, v, bad);
	assert_int_equal(agree(sc, k, md, msg, len, bad, blen), 1);
	/* Out of range: 0, n, and r + n (the same point's x mod n). */
	blen = resign(sig, siglen, zero, NULL, bad);
	assert_int_equal(agree(sc, k, md, msg, len, bad, blen), 0);
	blen = resign(sig, siglen, NULL, zero, bad);
	assert_int_equal(agree(sc, k, md, msg, len, bad, blen), 0);
	blen = resign(sig, siglen, n, NULL, bad);
	assert_int_equal(agree(sc, k, md, msg, len, bad, blen), 0);
	blen = resign(sig, siglen, NULL, n, bad);
	assert_int_equal(agree(sc, k, md, msg, len, bad, blen), 0);
	assert_int_equal(BN_add(v, r, n), 1);
	blen = resign(sig, siglen, v, NULL, bad);
	assert_int_equal(agree(sc, k, md, msg, len, bad, blen), 0);
	/* r and s swapped. */
	blen = resign(sig, siglen, s, r, bad);
	assert_int_equal(agree(sc, k, md, msg, len, bad, blen), 0);
	/* Not strict DER: a byte after it; a long-form length; cut. */
	memcpy(bad, sig, siglen);
	bad[siglen] = 0;
	assert_int_equal(agree(sc, k, md, msg, len, bad, siglen + 1), 0);
	if (siglen < 128) {
		bad[0] = 0x30;
		bad[1] = 0x81;
		bad[2] = sig[1];
		memcpy(bad + 3, sig + 2, siglen - 2);
		assert_int_equal(agree(sc, k, md, msg, len, bad, siglen + 1),
		    0);
	}
	assert_int_equal(agree(sc, k, md, msg, len, sig, siglen - 1), 0);
	assert_int_equal(agree(sc, k, md, msg, len, sig, 0), 0);
	BN_free(v);
	BN_free(zero);
	ECDSA_SIG_free(es);
}

static void
curve_digest(const char *spec, int curve_nid, const EVP_MD *md, int rounds)
{
	EVP_PKEY *k = tu_keygen(spec), *other = tu_keygen(spec);
	EC_GROUP *g = EC_GROUP_new_by_curve_name(curve_nid);
	struct sigcheck *sc = sigcheck_new(k, md);
	unsigned char msg[600], sig[256];
	size_t len, siglen;
	int i;

	assert_non_null(g);
	if (sc == NULL)
		fail_msg("no sigcheck for %s", spec);
	assert_ptr_equal(sigcheck_key(sc), k);
	assert_int_equal(sigcheck_md_type(sc), EVP_MD_get_type(md));
	for (i = 0; i < rounds; i++) {
		len = 1 + (size_t)i * 7 % sizeof(msg);
		assert_int_equal(RAND_bytes(msg, (int)len), 1);
		siglen = evp_sign(k, md, msg, len, sig, sizeof(sig));
		assert_int_equal(agree(sc, k, md, msg, len, sig, siglen), 1);
		if (i % 8 == 0)
			mutations(sc, k, md, g, msg, len, sig, siglen);
		/* Another key's signature of the same message. */
		siglen = evp_sign(other, md, msg, len, sig, sizeof(sig));
		assert_int_equal(agree(sc, k, md, msg, len, sig, siglen), 0);
	}
	sigcheck_free(sc);
	EC_GROUP_free(g);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void
test_p256(void **state)
{
	(void)state;
	curve_digest("ec:P-256", NID_X9_62_prime256v1, EVP_sha256(), 200);
	/* A digest longer than the order: its leftmost 256 bits. */
	curve_digest("ec:P-256", NID_X9_62_prime256v1, EVP_sha384(), 50);
	curve_digest("ec:P-256", NID_X9_62_prime256v1, EVP_sha512(), 50);
}

static void
test_p384(void **state)
{
	(void)state;
	curve_digest("ec:P-384", NID_secp384r1, EVP_sha384(), 50);
	curve_digest("ec:P-384", NID_secp384r1, EVP_sha256(), 20);
}

static void
test_p521(void **state)
{
	(void)state;
	/* An order of 521 bits: a digest shorter than the order. */
	curve_digest("ec:P-521", NID_secp521r1, EVP_sha512(), 20);
}

static void
test_secp256k1(void **state)
{
	(void)state;
	curve_digest("ec:secp256k1", NID_secp256k1, EVP_sha256(), 20);
}

static void
test_not_ecdsa(void **state)
{
	EVP_PKEY *rsa = tu_keygen("rsa:2048"), *ed = tu_keygen("ed25519");

	(void)state;
	assert_null(sigcheck_new(rsa, EVP_sha256()));
	assert_null(sigcheck_new(ed, EVP_sha256()));
	assert_null(sigcheck_new(NULL, EVP_sha256()));
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
}

/* Threads share one sigcheck (the signer's workers do). */
struct worker {
	const struct sigcheck	*sc;
	EVP_PKEY		*k;
	int			 ok;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	unsigned char msg[64], sig[128];
	size_t siglen;
	int i;

	w->ok = 1;
	for (i = 0; i < 200; i++) {
		(void)RAND_bytes(msg, sizeof(msg));
		siglen = evp_sign(w->k, EVP_sha256(), msg, sizeof(msg), sig,
		    sizeof(sig));
		if (sigcheck_verify(w->sc, msg, sizeof(msg), sig, siglen) != 1)
			w->ok = 0;
		msg[0] ^= 1;
		if (sigcheck_verify(w->sc, msg, sizeof(msg), sig, siglen) != 0)
			w->ok = 0;
	}
	return NULL;
}

static void
test_threads(void **state)
{
	EVP_PKEY *k = tu_keygen("ec:P-256");
	struct sigcheck *sc = sigcheck_new(k, EVP_sha256());
	struct worker w[4];
	pthread_t t[4];
	int i;

	(void)state;
	assert_non_null(sc);
	for (i = 0; i < 4; i++) {
		w[i].sc = sc;
		w[i].k = k;
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]),
		    0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].ok, 1);
	}
	sigcheck_free(sc);
	EVP_PKEY_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_p256),
		cmocka_unit_test(test_p384),
		cmocka_unit_test(test_p521),
		cmocka_unit_test(test_secp256k1),
		cmocka_unit_test(test_not_ecdsa),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
