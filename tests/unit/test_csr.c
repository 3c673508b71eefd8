/* test_csr.c: PKCS#10 parsing, signature check and key policy. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509v3.h>

#include "hsmca/csr.h"
#include "testutil.h"

enum test_key {
	K_P256, K_P384, K_P521, K_RSA2048, K_RSA3072,
	K_RSA1024, K_RSA_E3, K_SECP256K1, K_ED25519,
	K_MAX
};

static EVP_PKEY *keys[K_MAX];

static int
setup(void **state)
{
	(void)state;
	keys[K_P256] = tu_keygen("ec:P-256");
	keys[K_P384] = tu_keygen("ec:P-384");
	keys[K_P521] = tu_keygen("ec:P-521");
	keys[K_RSA2048] = tu_keygen("rsa:2048");
	keys[K_RSA3072] = tu_keygen("rsa:3072");
	keys[K_RSA1024] = tu_keygen("rsa:1024");
	keys[K_RSA_E3] = tu_rsa_keygen_exp(2048, 3);
	keys[K_SECP256K1] = tu_keygen("ec:secp256k1");
	keys[K_ED25519] = tu_keygen("ed25519");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	for (int i = 0; i < K_MAX; i++)
		EVP_PKEY_free(keys[i]);
	return 0;
}

/* A request's DER, for key k. */
static unsigned char *
req_der(EVP_PKEY *k, const char *san, int ask_ca, size_t *len)
{
	X509_REQ *r = tu_make_req(k, "CN=dev1,O=Acme", san, ask_ca);
	unsigned char *der = tu_req_der(r, len);

	X509_REQ_free(r);
	return der;
}

/* Parse buf and expect code; the message must mention want. */
static void
expect_refusal(const void *buf, size_t len, int code, const char *want)
{
	struct csr *c = (struct csr *)0x1;
	struct hsmca_err e;
	int rc;

	err_clear(&e);
	rc = csr_parse(buf, len, &c, &e);
	if (rc != code)
		fail_msg("expected %d, got %d (%s)", code, rc, e.msg);
	assert_null(c);
	assert_int_equal(e.code, code);
	if (strstr(e.msg, want) == NULL)
		fail_msg("message \"%s\" does not mention \"%s\"", e.msg, want);
}

static void
test_parse_der_and_pem(void **state)
{
	X509_REQ *r = tu_make_req(keys[K_P256], "CN=dev1", NULL, 0);
	struct csr *c = NULL;
	struct hsmca_err e;
	unsigned char *der;
	char *pem, *padded;
	size_t len, plen;

	(void)state;
	der = tu_req_der(r, &len);
	assert_int_equal(csr_parse(der, len, &c, &e), 0);
	assert_non_null(c->req);
	assert_non_null(c->pubkey);
	assert_int_equal(EVP_PKEY_get_base_id(c->pubkey), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_eq(c->pubkey, keys[K_P256]), 1);
	csr_free(c);
	c = NULL;

	pem = tu_req_pem(r, &plen);
	assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE REQUEST-----"));
	assert_int_equal(csr_parse(pem, plen, &c, &e), 0);
	assert_int_equal(EVP_PKEY_eq(c->pubkey, keys[K_P256]), 1);
	csr_free(c);
	c = NULL;

	/* Whitespace around the block is fine. */
	padded = malloc(plen + 8);
	assert_non_null(padded);
	snprintf(padded, plen + 8, "\r\n  %s\n\n", pem);
	assert_int_equal(csr_parse(padded, strlen(padded), &c, &e), 0);
	csr_free(c);

	free(padded);
	free(pem);
	free(der);
	X509_REQ_free(r);
}

static void
test_parse_new_header(void **state)
{
	X509_REQ *r = tu_make_req(keys[K_P384], "CN=dev1", NULL, 0);
	struct csr *c = NULL;
	struct hsmca_err e;
	char *pem, *body, *end, *newpem;
	size_t plen, nlen;

	(void)state;
	pem = tu_req_pem(r, &plen);
	body = strchr(pem, '\n') + 1;
	end = strstr(body, "-----END");
	assert_non_null(end);
	*end = '\0';
	nlen = plen + 64;
	newpem = malloc(nlen);
	assert_non_null(newpem);
	snprintf(newpem, nlen, "-----BEGIN NEW CERTIFICATE REQUEST-----\n%s"
	    "-----END NEW CERTIFICATE REQUEST-----\n", body);
	assert_int_equal(csr_parse(newpem, strlen(newpem), &c, &e), 0);
	assert_int_equal(EVP_PKEY_eq(c->pubkey, keys[K_P384]), 1);
	csr_free(c);

	/* Another PEM type is not a request. */
	snprintf(newpem, nlen, "-----BEGIN CERTIFICATE-----\n%s"
	    "-----END CERTIFICATE-----\n", body);
	expect_refusal(newpem, strlen(newpem), HSMCA_ERR_CSR_PARSE,
	    "not a PKCS#10 request");

	/* Nor is a request followed by something else. */
	snprintf(newpem, nlen, "-----BEGIN CERTIFICATE REQUEST-----\n%s"
	    "-----END CERTIFICATE REQUEST-----\nextra\n", body);
	expect_refusal(newpem, strlen(newpem), HSMCA_ERR_CSR_PARSE,
	    "after the PEM block");

	free(newpem);
	free(pem);
	X509_REQ_free(r);
}

static void
test_parse_base64(void **state)
{
	static const char *const bad[] = {
		"MIIB!!!!", "abc", "ab=c", "====", "", " \r\n\t",
		"AAAA", /* valid base64, not a request */
	};
	unsigned char md[32];
	struct csr *c = NULL;
	struct hsmca_err e;
	unsigned char *der;
	char *b64, *wrapped;
	size_t len, blen, i, n = 0;

	(void)state;
	der = req_der(keys[K_P256], NULL, 0, &len);
	blen = 4 * ((len + 2) / 3);
	b64 = malloc(blen + 1);
	assert_non_null(b64);
	assert_int_equal(EVP_EncodeBlock((unsigned char *)b64, der, (int)len),
	    (int)blen);

	/* Unwrapped. */
	assert_int_equal(csr_parse_base64(b64, blen, &c, &e), 0);
	assert_int_equal(EVP_PKEY_eq(c->pubkey, keys[K_P256]), 1);
	csr_free(c);
	c = NULL;

	/* Wrapped at 64 columns with CRLF, as EST clients send it. */
	wrapped = malloc(blen + 3 * (blen / 64 + 2));
	assert_non_null(wrapped);
	for (i = 0; i < blen; i++) {
		if (i > 0 && i % 64 == 0) {
			wrapped[n++] = '\r';
			wrapped[n++] = '\n';
		}
		wrapped[n++] = b64[i];
	}
	wrapped[n++] = '\n';
	assert_int_equal(csr_parse_base64(wrapped, n, &c, &e), 0);
	assert_int_equal(EVP_Digest(der, len, md, NULL, EVP_sha256(), NULL), 1);
	assert_memory_equal(c->fingerprint, md, sizeof(md));
	csr_free(c);
	c = NULL;

	/* A stray character inside. */
	wrapped[10] = '*';
	assert_int_equal(csr_parse_base64(wrapped, n, &c, &e),
	    HSMCA_ERR_CSR_PARSE);
	assert_null(c);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (csr_parse_base64(bad[i], strlen(bad[i]), &c, &e) !=
		    HSMCA_ERR_CSR_PARSE)
			fail_msg("base64 \"%s\" accepted", bad[i]);
		assert_null(c);
		assert_non_null(strstr(e.msg, "not a PKCS#10 request"));
	}
	free(wrapped);
	free(b64);
	free(der);
}

static void
test_bad_signature(void **state)
{
	const ASN1_BIT_STRING *sig;
	const X509_ALGOR *alg;
	int which[] = { K_P256, K_RSA2048 };

	(void)state;
	for (size_t i = 0; i < sizeof(which) / sizeof(which[0]); i++) {
		X509_REQ *r = tu_make_req(keys[which[i]], "CN=dev1", NULL, 0);
		unsigned char *der;
		size_t len, siglen;

		/* The signature BIT STRING is the request's last element.
		 * Its last byte is signature value (for ECDSA, the low byte
		 * of s): flipping a bit there leaves a well-formed
		 * signature that does not verify. */
		X509_REQ_get0_signature(r, &sig, &alg);
		siglen = (size_t)ASN1_STRING_length(sig);
		der = tu_req_der(r, &len);
		assert_true(siglen < len);
		der[len - 1] ^= 0x01;
		expect_refusal(der, len, HSMCA_ERR_CSR_SIGNATURE,
		    "does not hold the key");
		/* A station's parse leaves the signature to the appliance,
		 * and says it did: verified is 0, and checked requests are
		 * marked verified. */
		{
			struct csr *c = NULL;
			struct hsmca_err e;

			err_clear(&e);
			assert_int_equal(csr_parse_unverified(der, len, &c,
			    &e), 0);
			assert_int_equal(c->verified, 0);
			csr_free(c);
			der[len - 1] ^= 0x01;
			assert_int_equal(csr_parse(der, len, &c, &e), 0);
			assert_int_equal(c->verified, 1);
			csr_free(c);
			der[len - 1] ^= 0x01;
			/* Everything else is still checked. */
			assert_int_not_equal(csr_parse_unverified(der,
			    len - 1, &c, &e), 0);
			assert_null(c);
		}
		der[len - 1] ^= 0x01;
		/* The first byte of the signature value: for ECDSA a
		 * malformed Ecdsa-Sig-Value, for RSA a wrong value. */
		der[len - siglen] ^= 0xff;
		expect_refusal(der, len, HSMCA_ERR_CSR_SIGNATURE,
		    "CSR signature does not verify");
		free(der);
		X509_REQ_free(r);
	}
}

static void
test_malformed(void **state)
{
	static const char garbage[] = "this is not a certificate request";
	static const char pem_junk[] =
	    "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
	    "-----END CERTIFICATE REQUEST-----\n";
	unsigned char *der, *big;
	size_t len;

	(void)state;
	expect_refusal(garbage, sizeof(garbage) - 1, HSMCA_ERR_CSR_PARSE,
	    "not a PKCS#10 request");
	expect_refusal("", 0, HSMCA_ERR_CSR_PARSE, "empty");
	expect_refusal(NULL, 0, HSMCA_ERR_CSR_PARSE, "empty");
	expect_refusal(pem_junk, strlen(pem_junk), HSMCA_ERR_CSR_PARSE,
	    "not a PKCS#10 request");

	der = req_der(keys[K_P256], NULL, 0, &len);
	/* Truncated. */
	expect_refusal(der, len - 10, HSMCA_ERR_CSR_PARSE,
	    "not a PKCS#10 request");
	expect_refusal(der, 1, HSMCA_ERR_CSR_PARSE, "not a PKCS#10 request");

	/* Trailing data after a valid request. */
	big = malloc(CSR_MAX_SIZE + 1);
	assert_non_null(big);
	memcpy(big, der, len);
	memset(big + len, 0, CSR_MAX_SIZE + 1 - len);
	expect_refusal(big, len + 1, HSMCA_ERR_CSR_PARSE, "trailing");
	expect_refusal(big, len + 100, HSMCA_ERR_CSR_PARSE, "trailing");

	/* Oversized: refused on size before anything is parsed. */
	expect_refusal(big, CSR_MAX_SIZE + 1, HSMCA_ERR_CSR_PARSE,
	    "more than");
	free(big);
	free(der);
}

static void
test_key_policy_refused(void **state)
{
	/* What was found, and what would be accepted. */
	static const struct {
		int key;
		const char *found, *accepted;
	} cases[] = {
		{ K_RSA1024, "RSA-1024", "2048 to 8192 bits" },
		{ K_RSA_E3, "exponent 3", "at least 65537" },
		{ K_SECP256K1, "secp256k1", "P-256, P-384, P-521" },
		{ K_ED25519, "ED25519", "EC on P-256" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char *der;
		size_t len;

		der = req_der(keys[cases[i].key], NULL, 0, &len);
		expect_refusal(der, len, HSMCA_ERR_KEY_POLICY, cases[i].found);
		expect_refusal(der, len, HSMCA_ERR_KEY_POLICY,
		    cases[i].accepted);
		free(der);
	}
}

static void
test_key_policy_accepted(void **state)
{
	int ok[] = { K_P256, K_P384, K_P521, K_RSA2048, K_RSA3072 };
	struct hsmca_err e;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct csr *c = NULL;
		unsigned char *der;
		size_t len;

		der = req_der(keys[ok[i]], NULL, 0, &len);
		err_clear(&e);
		if (csr_parse(der, len, &c, &e) != 0)
			fail_msg("key %zu refused: %s", i, e.msg);
		assert_int_equal(csr_check_key(c->pubkey, &e), 0);
		csr_free(c);
		free(der);
	}
}

/* A public RSA key with a random modulus of bits and exponent e (hex):
 * enough for the policy, which never uses the key. */
static EVP_PKEY *
rsa_pub(int bits, const char *ehex)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	OSSL_PARAM *params;
	BIGNUM *n = BN_new(), *e = NULL;
	EVP_PKEY *pk = NULL;

	assert_non_null(bld);
	assert_non_null(ctx);
	assert_non_null(n);
	assert_int_equal(BN_rand(n, bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD),
	    1);
	assert_true(BN_hex2bn(&e, ehex) > 0);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n),
	    1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e),
	    1);
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_non_null(params);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY,
	    params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	return pk;
}

static void
test_check_key_rsa_bounds(void **state)
{
	static const struct {
		int bits;
		const char *e;
		int ok;
	} cases[] = {
		{ 2048, "10001", 1 },
		{ 8192, "10001", 1 },
		{ 2047, "10001", 0 },
		{ 8200, "10001", 0 },
		{ 2048, "3", 0 },
		{ 2048, "10000", 0 },	/* 65536: below the minimum */
		{ 2048, "10002", 0 },	/* 65538: even */
		{ 2048, "10003", 1 },
		/* 2^255 + 1: odd and below 2^256 */
		{ 2048, "8000000000000000000000000000000000000000000000000000000000000001", 1 },
		/* 2^256 - 1 */
		{ 2048, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", 1 },
		/* 2^256 + 1 */
		{ 2048, "10000000000000000000000000000000000000000000000000000000000000001", 0 },
	};
	struct hsmca_err e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EVP_PKEY *pk = rsa_pub(cases[i].bits, cases[i].e);
		int rc;

		err_clear(&e);
		rc = csr_check_key(pk, &e);
		if (cases[i].ok && rc != 0)
			fail_msg("RSA-%d e=%s refused: %s", cases[i].bits,
			    cases[i].e, e.msg);
		if (!cases[i].ok && rc != HSMCA_ERR_KEY_POLICY)
			fail_msg("RSA-%d e=%s accepted", cases[i].bits,
			    cases[i].e);
		if (!cases[i].ok)
			assert_non_null(strstr(e.msg, "RSA"));
		EVP_PKEY_free(pk);
	}
	assert_int_equal(csr_check_key(NULL, &e), HSMCA_ERR_KEY_POLICY);
}

static void
test_explicit_curve_refused(void **state)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	char group[] = "P-256", encoding[] = "explicit";
	OSSL_PARAM params[3];
	EVP_PKEY *k = NULL;
	unsigned char *der;
	size_t len;

	(void)state;
	assert_non_null(ctx);
	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_EC_ENCODING, encoding, 0);
	params[2] = OSSL_PARAM_construct_end();
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_params(ctx, params), 1);
	assert_int_equal(EVP_PKEY_keygen(ctx, &k), 1);

	/* P-256 itself, but spelled out: refused all the same. */
	der = req_der(k, NULL, 0, &len);
	expect_refusal(der, len, HSMCA_ERR_KEY_POLICY, "explicit");
	free(der);
	EVP_PKEY_free(k);
	EVP_PKEY_CTX_free(ctx);
}

static void
test_fingerprint(void **state)
{
	unsigned char md[32];
	char hex[65];
	struct csr *c = NULL;
	struct hsmca_err e;
	unsigned char *der;
	char *pem;
	size_t len, plen;
	X509_REQ *r = tu_make_req(keys[K_RSA2048], "CN=dev1", NULL, 0);

	(void)state;
	der = tu_req_der(r, &len);
	assert_int_equal(EVP_Digest(der, len, md, NULL, EVP_sha256(), NULL), 1);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);

	assert_int_equal(csr_parse(der, len, &c, &e), 0);
	assert_memory_equal(c->fingerprint, md, sizeof(md));
	assert_string_equal(c->fingerprint_hex, hex);
	csr_free(c);
	c = NULL;

	/* The PEM form of the same request has the same fingerprint. */
	pem = tu_req_pem(r, &plen);
	assert_int_equal(csr_parse(pem, plen, &c, &e), 0);
	assert_string_equal(c->fingerprint_hex, hex);
	csr_free(c);

	free(pem);
	free(der);
	X509_REQ_free(r);
}

static void
test_requests_ca(void **state)
{
	struct csr *c = NULL;
	struct hsmca_err e;
	unsigned char *der;
	size_t len;

	(void)state;
	der = req_der(keys[K_P256], NULL, 1, &len);
	assert_int_equal(csr_parse(der, len, &c, &e), 0);
	assert_int_equal(csr_requests_ca(c), 1);
	csr_free(c);
	free(der);

	der = req_der(keys[K_P256], "DNS:a.example", 0, &len);
	assert_int_equal(csr_parse(der, len, &c, &e), 0);
	assert_int_equal(csr_requests_ca(c), 0);
	csr_free(c);
	free(der);

	der = req_der(keys[K_P256], NULL, 0, &len);
	assert_int_equal(csr_parse(der, len, &c, &e), 0);
	assert_int_equal(csr_requests_ca(c), 0);
	csr_free(c);
	free(der);
}

static void
test_get_san(void **state)
{
	const GENERAL_NAME *gn;
	GENERAL_NAMES *san;
	struct csr *c = NULL;
	struct hsmca_err e;
	unsigned char *der;
	size_t len;
	int type;
	const ASN1_STRING *s;

	(void)state;
	der = req_der(keys[K_P256], "DNS:a.example,IP:10.0.0.1,URI:urn:x", 0,
	    &len);
	assert_int_equal(csr_parse(der, len, &c, &e), 0);
	san = csr_get_san(c);
	assert_non_null(san);
	assert_int_equal(sk_GENERAL_NAME_num(san), 3);
	gn = sk_GENERAL_NAME_value(san, 0);
	s = GENERAL_NAME_get0_value(gn, &type);
	assert_int_equal(type, GEN_DNS);
	assert_int_equal(ASN1_STRING_length(s), 9);
	assert_memory_equal(ASN1_STRING_get0_data(s), "a.example", 9);
	GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(san, 1), &type);
	assert_int_equal(type, GEN_IPADD);
	GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(san, 2), &type);
	assert_int_equal(type, GEN_URI);
	GENERAL_NAMES_free(san);
	csr_free(c);
	free(der);

	der = req_der(keys[K_P256], NULL, 1, &len);
	assert_int_equal(csr_parse(der, len, &c, &e), 0);
	assert_null(csr_get_san(c));
	csr_free(c);
	free(der);
}

/* The EC requests parsed without the generic key decoder: the key is the
 * one in the request, an off-curve point is refused, BER is refused, and
 * the encoded SubjectPublicKeyInfo is offered only with its own key. */
static void
test_ec_spki(void **state)
{
	const X509_PUBKEY *spki;
	const unsigned char *pk;
	unsigned char *der, *point;
	struct csr *c = NULL, copy;
	struct hsmca_err e;
	size_t len;
	int pklen;

	(void)state;
	der = req_der(keys[K_P256], "DNS:a.example", 0, &len);
	err_clear(&e);
	assert_int_equal(csr_parse(der, len, &c, &e), 0);
	assert_int_equal(EVP_PKEY_eq(c->pubkey, keys[K_P256]), 1);
	assert_non_null(spki = csr_get0_spki(c));
	assert_true(X509_PUBKEY_get0_param(NULL, &pk, &pklen, NULL,
	    (X509_PUBKEY *)(uintptr_t)spki));
	copy = *c;
	copy.pubkey = keys[K_P384];
	assert_null(csr_get0_spki(&copy));
	/* The request re-encodes to the bytes it came from. */
	{
		unsigned char *re = NULL;
		int n = i2d_X509_REQ(c->req, &re);

		assert_int_equal(n, (int)len);
		assert_memory_equal(re, der, len);
		OPENSSL_free(re);
	}

	/* The last byte of the point changed: no longer on the curve. */
	point = memmem(der, len, pk, (size_t)pklen);
	assert_non_null(point);
	point[pklen - 1] ^= 0x01;
	csr_free(c);
	c = NULL;
	expect_refusal(der, len, HSMCA_ERR_KEY_POLICY, "malformed");
	point[pklen - 1] ^= 0x01;

	/* The outer SEQUENCE's length in a long form it does not need. */
	{
		unsigned char *ber = malloc(len + 1);

		assert_non_null(ber);
		/* Long form already (0x81 or 0x82): one more, zero, octet. */
		assert_true(der[1] == 0x81 || der[1] == 0x82);
		ber[0] = 0x30;
		ber[1] = der[1] + 1;
		ber[2] = 0x00;
		memcpy(ber + 3, der + 2, len - 2);
		expect_refusal(ber, len + 1, HSMCA_ERR_CSR_PARSE,
		    "not DER encoded");
		free(ber);
	}
	free(der);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_der_and_pem),
		cmocka_unit_test(test_parse_new_header),
		cmocka_unit_test(test_parse_base64),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_key_policy_refused),
		cmocka_unit_test(test_key_policy_accepted),
		cmocka_unit_test(test_check_key_rsa_bounds),
		cmocka_unit_test(test_explicit_curve_refused),
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_requests_ca),
		cmocka_unit_test(test_get_san),
		cmocka_unit_test(test_ec_spki),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
