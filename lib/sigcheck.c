/* sigcheck.c: checking many ECDSA signatures of one public key
 * (sigcheck.h). */
#include "config.h"

/* EC_GROUP_precompute_mult() and EC_GROUP_have_precompute_mult() are
 * deprecated in OpenSSL 3.0 with no replacement: the provider API has no
 * way to keep a public key's multiples. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>

#include "hsmca/sigcheck.h"

struct sigcheck {
	EVP_PKEY	*key;
	EVP_MD		*md;
	/* The key's curve, and the same curve with the key Q as its
	 * generator: both with their generator's multiples precomputed,
	 * so u1*G and u2*Q are each a fixed-base multiplication. */
	EC_GROUP	*curve;
	EC_GROUP	*keycurve;
	int		 order_bits;
};

/* Precompute group's generator multiples unless it has them (OpenSSL
 * carries P-256's in a built-in table). */
static int
sigcheck_precompute(EC_GROUP *group, BN_CTX *ctx)
{
	return EC_GROUP_have_precompute_mult(group) ||
	    EC_GROUP_precompute_mult(group, ctx);
}

struct sigcheck *
sigcheck_new(EVP_PKEY *key, const EVP_MD *md)
{
	struct sigcheck *sc = NULL;
	unsigned char pub[1 + 2 * 66];
	char name[64];
	size_t len;
	EC_POINT *q = NULL;
	BN_CTX *ctx = NULL;
	int nid, ok = 0;

	if (key == NULL || md == NULL ||
	    EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
	    name, sizeof(name), NULL) ||
	    !EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY,
	    pub, sizeof(pub), &len))
		return NULL;
	if ((nid = OBJ_sn2nid(name)) == NID_undef &&
	    (nid = EC_curve_nist2nid(name)) == NID_undef)
		return NULL;
	if ((sc = calloc(1, sizeof(*sc))) == NULL ||
	    (ctx = BN_CTX_new()) == NULL ||
	    (sc->md = EVP_MD_fetch(NULL, EVP_MD_get0_name(md), NULL)) == NULL ||
	    (sc->curve = EC_GROUP_new_by_curve_name(nid)) == NULL ||
	    (sc->keycurve = EC_GROUP_new_by_curve_name(nid)) == NULL ||
	    EC_GROUP_get_field_type(sc->curve) != NID_X9_62_prime_field ||
	    (q = EC_POINT_new(sc->keycurve)) == NULL ||
	    !EC_POINT_oct2point(sc->keycurve, q, pub, len, ctx) ||
	    EC_POINT_is_at_infinity(sc->keycurve, q) ||
	    !EC_GROUP_set_generator(sc->keycurve, q,
	    EC_GROUP_get0_order(sc->curve), EC_GROUP_get0_cofactor(sc->curve)) ||
	    !sigcheck_precompute(sc->curve, ctx) ||
	    !sigcheck_precompute(sc->keycurve, ctx) ||
	    !EVP_PKEY_up_ref(key))
		goto out;
	sc->key = key;
	sc->order_bits = EC_GROUP_order_bits(sc->curve);
	ok = 1;
out:
	EC_POINT_free(q);
	BN_CTX_free(ctx);
	if (!ok) {
		sigcheck_free(sc);
		sc = NULL;
	}
	return sc;
}

void
sigcheck_free(struct sigcheck *sc)
{
	if (sc == NULL)
		return;
	EVP_PKEY_free(sc->key);
	EVP_MD_free(sc->md);
	EC_GROUP_free(sc->curve);
	EC_GROUP_free(sc->keycurve);
	free(sc);
}

const EVP_PKEY *
sigcheck_key(const struct sigcheck *sc)
{
	return sc->key;
}

int
sigcheck_md_type(const struct sigcheck *sc)
{
	return EVP_MD_get_type(sc->md);
}

/* r or s of a signature: 0 < v < n. */
static int
sigcheck_in_range(const BIGNUM *v, const BIGNUM *n)
{
	return !BN_is_zero(v) && !BN_is_negative(v) && BN_ucmp(v, n) < 0;
}

int
sigcheck_verify(const struct sigcheck *sc, const unsigned char *msg,
    size_t len, const unsigned char *sig, size_t siglen)
{
	const unsigned char *p = sig;
	const BIGNUM *n, *r, *s;
	unsigned char dgst[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned int dlen;
	ECDSA_SIG *es = NULL;
	EC_POINT *a = NULL, *b = NULL;
	BN_CTX *ctx = NULL;
	BIGNUM *m, *w, *u1, *u2, *x;
	int derlen, ret = -1;

	/* Strict DER, as OpenSSL's verify wants it: the signature must
	 * encode back to exactly its bytes. */
	if (siglen > 256 ||
	    (es = d2i_ECDSA_SIG(NULL, &p, (long)siglen)) == NULL ||
	    p != sig + siglen ||
	    (derlen = i2d_ECDSA_SIG(es, &der)) != (int)siglen ||
	    memcmp(der, sig, siglen) != 0) {
		ret = 0;
		goto out;
	}
	n = EC_GROUP_get0_order(sc->curve);
	ECDSA_SIG_get0(es, &r, &s);
	if (!sigcheck_in_range(r, n) || !sigcheck_in_range(s, n)) {
		ret = 0;
		goto out;
	}
	if (!EVP_Digest(msg, len, dgst, &dlen, sc->md, NULL) ||
	    (ctx = BN_CTX_new()) == NULL)
		goto out;
	BN_CTX_start(ctx);
	m = BN_CTX_get(ctx);
	w = BN_CTX_get(ctx);
	u1 = BN_CTX_get(ctx);
	u2 = BN_CTX_get(ctx);
	if ((x = BN_CTX_get(ctx)) == NULL)
		goto out;
	/* The digest's leftmost bits, as many as the order has. */
	if ((int)dlen * 8 > sc->order_bits)
		dlen = (unsigned int)(sc->order_bits + 7) / 8;
	if (BN_bin2bn(dgst, (int)dlen, m) == NULL ||
	    ((int)dlen * 8 > sc->order_bits &&
	    !BN_rshift(m, m, 8 - (sc->order_bits & 7))))
		goto out;
	/* w = 1/s, u1 = m*w, u2 = r*w (mod n); R = u1*G + u2*Q. */
	if (BN_mod_inverse(w, s, n, ctx) == NULL ||
	    !BN_mod_mul(u1, m, w, n, ctx) || !BN_mod_mul(u2, r, w, n, ctx) ||
	    (a = EC_POINT_new(sc->curve)) == NULL ||
	    (b = EC_POINT_new(sc->keycurve)) == NULL ||
	    !EC_POINT_mul(sc->curve, a, u1, NULL, NULL, ctx) ||
	    !EC_POINT_mul(sc->keycurve, b, u2, NULL, NULL, ctx) ||
	    !EC_POINT_add(sc->curve, a, a, b, ctx))
		goto out;
	/* Valid when R is a point and its x mod n is r. */
	if (EC_POINT_is_at_infinity(sc->curve, a)) {
		ret = 0;
		goto out;
	}
	if (!EC_POINT_get_affine_coordinates(sc->curve, a, x, NULL, ctx) ||
	    !BN_nnmod(x, x, n, ctx))
		goto out;
	ret = BN_cmp(x, r) == 0;
out:
	if (ctx != NULL)
		BN_CTX_end(ctx);
	BN_CTX_free(ctx);
	EC_POINT_free(a);
	EC_POINT_free(b);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	return ret;
}
