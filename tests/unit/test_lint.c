/* test_lint.c: a valid leaf passes both lints; each single defect is
 * caught with a message that names the check. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "hsmca/lint.h"
#include "hsmca/profile.h"
#include "hsmca/serial.h"
#include "hsmca/sigcheck.h"
#include "testutil.h"

#define DAY	(24 * 60 * 60)

struct fx {
	EVP_PKEY	*cakey, *otherkey, *leafkey, *rsakey;
	X509		*ca, *otherca;
	time_t		 now;
	struct profile	 device, edge;
};

static char device_name[] = "device";
static char edge_name[] = "edge-ca";

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->now = time(NULL);
	f->cakey = tu_keygen("ec:P-256");
	f->otherkey = tu_keygen("ec:P-256");
	f->leafkey = tu_keygen("ec:P-256");
	f->rsakey = tu_keygen("rsa:2048");
	f->ca = tu_make_ca(f->cakey, "CN=Test CA,O=Acme", f->now - DAY,
	    f->now + 365 * DAY);
	/* Same name, another key: an impostor issuer. */
	f->otherca = tu_make_ca(f->otherkey, "CN=Test CA,O=Acme",
	    f->now - DAY, f->now + 365 * DAY);

	f->device.name = device_name;
	f->device.validity = 30 * DAY;
	f->device.key_usage = PROFILE_KU_DIGITAL_SIGNATURE;
	f->device.ext_key_usage = PROFILE_EKU_CLIENT_AUTH;
	f->device.is_ca = 0;
	f->device.pathlen = -1;

	f->edge.name = edge_name;
	f->edge.validity = 90 * DAY;
	f->edge.key_usage = PROFILE_KU_KEY_CERT_SIGN | PROFILE_KU_CRL_SIGN;
	f->edge.ext_key_usage = 0;
	f->edge.is_ca = 1;
	f->edge.pathlen = 0;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	EVP_PKEY_free(f->cakey);
	EVP_PKEY_free(f->otherkey);
	EVP_PKEY_free(f->leafkey);
	EVP_PKEY_free(f->rsakey);
	X509_free(f->ca);
	X509_free(f->otherca);
	free(f);
	return 0;
}

/* Replace every extension nid of x with value (NULL: just remove it).
 * Key identifiers are computed against issuer. */
static void
set_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int idx;

	while ((idx = X509_get_ext_by_NID(x, nid, -1)) >= 0)
		X509_EXTENSION_free(X509_delete_ext(x, idx));
	if (value == NULL)
		return;
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

static void
set_validity(X509 *x, time_t nb, time_t na)
{
	assert_non_null(X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb));
	assert_non_null(X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &na));
}

/* A to-be-signed leaf as the issuance code builds it under "device". */
static X509 *
leaf_build(struct fx *f, EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	ASN1_INTEGER *serial;
	char hex[SERIAL_HEX_MAX];
	struct hsmca_err e;

	assert_non_null(x);
	assert_non_null(n);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(serial_generate(&serial, hex, &e), 0);
	assert_int_equal(X509_set_serialNumber(x, serial), 1);
	ASN1_INTEGER_free(serial);
	assert_int_equal(X509_set_issuer_name(x,
	    X509_get_subject_name(f->ca)), 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)"dev1", -1, -1, 0), 1);
	assert_int_equal(X509_set_subject_name(x, n), 1);
	X509_NAME_free(n);
	set_validity(x, f->now - 60, f->now + 30 * DAY);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	set_ext(x, f->ca, NID_basic_constraints, "critical,CA:FALSE");
	set_ext(x, f->ca, NID_key_usage, "critical,digitalSignature");
	set_ext(x, f->ca, NID_ext_key_usage, "clientAuth");
	set_ext(x, f->ca, NID_subject_key_identifier, "hash");
	set_ext(x, f->ca, NID_authority_key_identifier, "keyid:always");
	set_ext(x, f->ca, NID_subject_alt_name, "DNS:dev1.example");
	return x;
}

static X509 *
leaf(struct fx *f)
{
	return leaf_build(f, f->leafkey);
}

/* Sign and re-parse, as the signer does before the post-sign lint. */
static X509 *
sign_reparse(X509 *x, EVP_PKEY *key, const EVP_MD *md)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	X509 *y;
	int len;

	assert_true(X509_sign(x, key, md) > 0);
	len = i2d_X509(x, &der);
	assert_true(len > 0);
	p = der;
	y = d2i_X509(NULL, &p, len);
	assert_non_null(y);
	OPENSSL_free(der);
	return y;
}

static void
expect_code(int rc, const struct hsmca_err *e, int code, const char *want)
{
	if (rc != code)
		fail_msg("expected %d, got %d (%s)", code, rc, e->msg);
	assert_int_equal(e->code, code);
	if (strstr(e->msg, want) == NULL)
		fail_msg("message \"%s\" does not mention \"%s\"", e->msg, want);
}

/* Pre-sign lint of x under p must fail with LINT naming want. */
static void
expect_presign(X509 *x, X509 *issuer, const struct profile *p,
    const char *want)
{
	struct hsmca_err e;

	err_clear(&e);
	expect_code(lint_presign(x, issuer, p, &e), &e, HSMCA_ERR_LINT, want);
	assert_non_null(strstr(e.msg, "lint: "));
}

static void
expect_presign_ok(X509 *x, X509 *issuer, const struct profile *p)
{
	struct hsmca_err e;

	err_clear(&e);
	if (lint_presign(x, issuer, p, &e) != 0)
		fail_msg("presign refused: %s", e.msg);
}

static void
test_valid_leaf(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f), *signed_x;
	struct hsmca_err e;

	expect_presign_ok(x, f->ca, &f->device);
	signed_x = sign_reparse(x, f->cakey, EVP_sha256());
	err_clear(&e);
	if (lint_postsign(signed_x, f->ca, &e) != 0)
		fail_msg("postsign refused: %s", e.msg);
	/* The signed certificate still passes the pre-sign checks. */
	expect_presign_ok(signed_x, f->ca, &f->device);
	X509_free(signed_x);
	X509_free(x);
}

static void
test_ca_alone(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);

	/* A self-signed root without authorityKeyIdentifier passes. */
	expect_presign_ok(f->ca, f->ca, NULL);
	/* A leaf checked as a CA does not. */
	expect_presign(x, f->ca, NULL, "basicConstraints");
	/* Nor a CA without keyCertSign. */
	set_ext(x, f->ca, NID_basic_constraints, "critical,CA:TRUE");
	expect_presign(x, f->ca, NULL, "keyCertSign");
	X509_free(x);
}

static void
test_sub_ca_profile(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);

	set_ext(x, f->ca, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
	set_ext(x, f->ca, NID_key_usage, "critical,keyCertSign,cRLSign");
	set_ext(x, f->ca, NID_ext_key_usage, NULL);
	expect_presign_ok(x, f->ca, &f->edge);

	set_ext(x, f->ca, NID_basic_constraints, "critical,CA:TRUE,pathlen:1");
	expect_presign(x, f->ca, &f->edge, "pathLenConstraint");
	set_ext(x, f->ca, NID_basic_constraints, "CA:TRUE,pathlen:0");
	expect_presign(x, f->ca, &f->edge, "basicConstraints must be critical");
	set_ext(x, f->ca, NID_basic_constraints, "critical,CA:FALSE");
	expect_presign(x, f->ca, &f->edge, "basicConstraints");
	X509_free(x);
}

static void
test_validity_beyond_issuer(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);

	set_validity(x, f->now - 60, f->now + 366 * DAY);
	expect_presign(x, f->ca, &f->device, "is after the issuer's notAfter");
	set_validity(x, f->now - 2 * DAY, f->now + DAY);
	expect_presign(x, f->ca, &f->device,
	    "is before the issuer's notBefore");
	set_validity(x, f->now + DAY, f->now);
	expect_presign(x, f->ca, &f->device, "is not before notAfter");
	set_validity(x, f->now, f->now);
	expect_presign(x, f->ca, &f->device, "is not before notAfter");
	X509_free(x);
}

static void
test_issuer_name_mismatch(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);
	X509_NAME *n = X509_NAME_new();

	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)"Other CA", -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, n), 1);
	expect_presign(x, f->ca, &f->device, "issuer name");
	X509_NAME_free(n);
	X509_free(x);
}

static void
test_missing_ski(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);

	set_ext(x, f->ca, NID_subject_key_identifier, NULL);
	expect_presign(x, f->ca, &f->device, "subjectKeyIdentifier missing");
	X509_free(x);
}

static void
test_aki_mismatch(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);

	/* keyIdentifier of another CA key under the same name. */
	set_ext(x, f->otherca, NID_authority_key_identifier, "keyid:always");
	expect_presign(x, f->ca, &f->device, "authorityKeyIdentifier");
	expect_presign(x, f->ca, &f->device, "is not the issuer's");
	/* Absent altogether. */
	set_ext(x, f->ca, NID_authority_key_identifier, NULL);
	expect_presign(x, f->ca, &f->device, "authorityKeyIdentifier");
	X509_free(x);
}

static void
test_ca_under_leaf_profile(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);

	/* keyUsage lacks keyCertSign, so X509_check_ca() alone would not
	 * call this a CA: the lint must read basicConstraints itself. */
	set_ext(x, f->ca, NID_basic_constraints, "critical,CA:TRUE");
	expect_presign(x, f->ca, &f->device, "basicConstraints says CA:TRUE");
	set_ext(x, f->ca, NID_basic_constraints, "CA:FALSE,pathlen:0");
	expect_presign(x, f->ca, &f->device, "pathLenConstraint");
	X509_free(x);
}

static void
test_key_usage_differs(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);

	set_ext(x, f->ca, NID_key_usage,
	    "critical,digitalSignature,keyEncipherment");
	expect_presign(x, f->ca, &f->device, "keyUsage is "
	    "digitalSignature,keyEncipherment, profile device says "
	    "digitalSignature");
	set_ext(x, f->ca, NID_key_usage, "digitalSignature");
	expect_presign(x, f->ca, &f->device, "keyUsage must be critical");
	set_ext(x, f->ca, NID_key_usage, NULL);
	expect_presign(x, f->ca, &f->device, "keyUsage missing");
	X509_free(x);
}

static void
test_eku_differs(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);

	set_ext(x, f->ca, NID_ext_key_usage, "serverAuth");
	expect_presign(x, f->ca, &f->device, "extendedKeyUsage");
	set_ext(x, f->ca, NID_ext_key_usage, "clientAuth,serverAuth");
	expect_presign(x, f->ca, &f->device, "extendedKeyUsage");
	/* An OID OpenSSL does not summarize is still seen. */
	set_ext(x, f->ca, NID_ext_key_usage, "clientAuth,1.3.6.1.4.1.99999.1");
	expect_presign(x, f->ca, &f->device,
	    "extendedKeyUsage carries 1.3.6.1.4.1.99999.1");
	set_ext(x, f->ca, NID_ext_key_usage, NULL);
	expect_presign(x, f->ca, &f->device, "extendedKeyUsage missing");
	X509_free(x);
}

static void
set_serial_bytes(X509 *x, const unsigned char *b, int len)
{
	BIGNUM *bn = BN_bin2bn(b, len, NULL);
	ASN1_INTEGER *ai;

	assert_non_null(bn);
	ai = BN_to_ASN1_INTEGER(bn, NULL);
	assert_non_null(ai);
	assert_int_equal(X509_set_serialNumber(x, ai), 1);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
}

static void
test_serial(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);
	unsigned char b[21];

	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 0), 1);
	expect_presign(x, f->ca, &f->device, "serial number is zero");
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), -42), 1);
	expect_presign(x, f->ca, &f->device, "serial number is negative");

	/* 21 octets of magnitude. */
	memset(b, 0x11, sizeof(b));
	set_serial_bytes(x, b, 21);
	expect_presign(x, f->ca, &f->device, "serial number is 21 octets");
	/* 20 octets of magnitude with the top bit set: 21 in DER. */
	memset(b, 0xff, sizeof(b));
	set_serial_bytes(x, b, 20);
	expect_presign(x, f->ca, &f->device, "serial number is 21 octets");
	/* 20 octets in DER: the most RFC 5280 allows. */
	b[0] = 0x7f;
	set_serial_bytes(x, b, 20);
	expect_presign_ok(x, f->ca, &f->device);
	X509_free(x);
}

static void
test_duplicate_extension(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);
	X509_EXTENSION *ext;

	ext = X509_get_ext(x, X509_get_ext_by_NID(x, NID_ext_key_usage, -1));
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	expect_presign(x, f->ca, &f->device,
	    "duplicate extension extendedKeyUsage");
	X509_free(x);
}

static void
test_version(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);

	assert_int_equal(X509_set_version(x, X509_VERSION_1), 1);
	expect_presign(x, f->ca, &f->device, "version");
	X509_free(x);
}

static void
test_subject_or_san(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);
	X509_NAME *empty = X509_NAME_new();

	assert_int_equal(X509_set_subject_name(x, empty), 1);
	expect_presign(x, f->ca, &f->device, "subjectAltName must be critical");
	set_ext(x, f->ca, NID_subject_alt_name, "critical,DNS:dev1.example");
	expect_presign_ok(x, f->ca, &f->device);
	set_ext(x, f->ca, NID_subject_alt_name, NULL);
	expect_presign(x, f->ca, &f->device, "subject is empty");
	X509_NAME_free(empty);
	X509_free(x);
}

static void
test_weak_subject_key(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *weak = tu_keygen("rsa:1024");
	X509 *x = leaf_build(f, weak);

	expect_presign(x, f->ca, &f->device, "subject public key: RSA-1024");
	X509_free(x);
	EVP_PKEY_free(weak);
}

/* OpenSSL answers key-usage questions from a cache filled on first use;
 * the lint must see the extensions as they are now. */
static void
test_stale_cache(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f);

	(void)X509_check_purpose(x, -1, 0);
	assert_int_equal(X509_get_key_usage(x), PROFILE_KU_DIGITAL_SIGNATURE);
	ERR_clear_error();
	set_ext(x, f->ca, NID_key_usage, "critical,digitalSignature,keyCertSign");
	expect_presign(x, f->ca, &f->device, "keyUsage is");
	X509_free(x);
}

/* The DER of x with the outer signatureAlgorithm's OID (nid_from)
 * replaced by nid_to; tbsCertificate.signature is left alone. */
static X509 *
swap_outer_alg(X509 *x, int nid_from, int nid_to)
{
	unsigned char *der = NULL, *from = NULL, *to = NULL, *hit = NULL;
	const unsigned char *p;
	int len, flen, tlen, found = 0;
	X509 *y;

	len = i2d_X509(x, &der);
	assert_true(len > 0);
	flen = i2d_ASN1_OBJECT(OBJ_nid2obj(nid_from), &from);
	tlen = i2d_ASN1_OBJECT(OBJ_nid2obj(nid_to), &to);
	assert_int_equal(flen, tlen);
	for (int i = 0; i + flen <= len; i++) {
		if (memcmp(der + i, from, (size_t)flen) == 0) {
			found++;
			hit = der + i;
		}
	}
	/* Once in tbsCertificate, once outside it. */
	assert_int_equal(found, 2);
	memcpy(hit, to, (size_t)tlen);
	p = der;
	y = d2i_X509(NULL, &p, len);
	assert_non_null(y);
	OPENSSL_free(der);
	OPENSSL_free(from);
	OPENSSL_free(to);
	return y;
}

static void
test_post_sigalg_mismatch(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f), *s, *bad;
	struct hsmca_err e;

	s = sign_reparse(x, f->cakey, EVP_sha256());
	bad = swap_outer_alg(s, NID_ecdsa_with_SHA256, NID_ecdsa_with_SHA384);
	err_clear(&e);
	expect_code(lint_postsign(bad, f->ca, &e), &e, HSMCA_ERR_LINT,
	    "differs from the outer signatureAlgorithm");
	assert_non_null(strstr(e.msg, "ecdsa-with-SHA256"));
	assert_non_null(strstr(e.msg, "ecdsa-with-SHA384"));
	X509_free(bad);
	X509_free(s);
	X509_free(x);
}

static void
test_post_wrong_key(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f), *s;
	struct hsmca_err e;

	s = sign_reparse(x, f->otherkey, EVP_sha256());
	err_clear(&e);
	expect_code(lint_postsign(s, f->ca, &e), &e, HSMCA_ERR_VERIFY,
	    "does not verify with the issuer's public key");
	X509_free(s);
	X509_free(x);
}

static void
test_post_alg_vs_issuer_key(void **state)
{
	struct fx *f = *state;
	X509 *x = leaf(f), *s;
	struct hsmca_err e;

	/* Signed by an RSA key while the issuer's key is EC. */
	s = sign_reparse(x, f->rsakey, EVP_sha256());
	err_clear(&e);
	expect_code(lint_postsign(s, f->ca, &e), &e, HSMCA_ERR_LINT,
	    "does not match the issuer's EC key");
	X509_free(s);

	/* ECDSA with SHA-1 is refused even though it verifies. */
	s = sign_reparse(x, f->cakey, EVP_sha1());
	err_clear(&e);
	expect_code(lint_postsign(s, f->ca, &e), &e, HSMCA_ERR_LINT,
	    "SHA-256, SHA-384 or SHA-512 expected");
	X509_free(s);
	X509_free(x);
}

static void
test_post_rsa_issuer(void **state)
{
	struct fx *f = *state;
	X509 *ca, *x, *s, *y;
	EVP_MD_CTX *mctx;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	struct hsmca_err e;
	int len;

	ca = tu_make_ca(f->rsakey, "CN=RSA CA", f->now - DAY,
	    f->now + 365 * DAY);
	x = leaf(f);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(ca)), 1);
	set_ext(x, ca, NID_authority_key_identifier, "keyid:always");
	expect_presign_ok(x, ca, &f->device);
	s = sign_reparse(x, f->rsakey, EVP_sha256());
	err_clear(&e);
	if (lint_postsign(s, ca, &e) != 0)
		fail_msg("postsign refused: %s", e.msg);
	X509_free(s);

	/* RSA-PSS is not the PKCS#1 v1.5 the CA signs with. */
	mctx = EVP_MD_CTX_new();
	assert_non_null(mctx);
	assert_int_equal(EVP_DigestSignInit(mctx, &pctx, EVP_sha256(), NULL,
	    f->rsakey), 1);
	assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx,
	    RSA_PKCS1_PSS_PADDING) > 0);
	assert_true(X509_sign_ctx(x, mctx) > 0);
	len = i2d_X509(x, &der);
	assert_true(len > 0);
	p = der;
	y = d2i_X509(NULL, &p, len);
	assert_non_null(y);
	err_clear(&e);
	expect_code(lint_postsign(y, ca, &e), &e, HSMCA_ERR_LINT,
	    "RSA PKCS#1 v1.5");
	X509_free(y);
	OPENSSL_free(der);
	EVP_MD_CTX_free(mctx);
	X509_free(x);
	X509_free(ca);
}

/* lint_postsign_der of x signed by key with md, checked with check. */
static int
post_der(X509 *x, EVP_PKEY *key, const EVP_MD *md, X509 *issuer,
    const struct sigcheck *check, int flip, struct hsmca_err *e)
{
	unsigned char *der = NULL;
	int len, ret;

	assert_true(X509_sign(x, key, md) > 0);
	len = i2d_X509(x, &der);
	assert_true(len > 0);
	/* flip: a bit of the signature's last byte (s). */
	if (flip)
		der[len - 1] ^= 0x10;
	err_clear(e);
	ret = lint_postsign_der(der, (size_t)len, issuer, check, e);
	OPENSSL_free(der);
	return ret;
}

/* With the issuer's precomputed check, verify-after-sign gives the
 * same answers; a check made for another key or digest is not used. */
static void
test_post_sigcheck(void **state)
{
	struct fx *f = *state;
	struct sigcheck *check, *other, *sha384;
	X509 *x = leaf(f);
	struct hsmca_err e;

	check = sigcheck_new(X509_get0_pubkey(f->ca), EVP_sha256());
	other = sigcheck_new(X509_get0_pubkey(f->otherca), EVP_sha256());
	sha384 = sigcheck_new(X509_get0_pubkey(f->ca), EVP_sha384());
	assert_non_null(check);
	assert_non_null(other);
	assert_non_null(sha384);
	if (post_der(x, f->cakey, EVP_sha256(), f->ca, check, 0, &e) != 0)
		fail_msg("postsign refused: %s", e.msg);
	expect_code(post_der(x, f->cakey, EVP_sha256(), f->ca, check, 1, &e),
	    &e, HSMCA_ERR_VERIFY, "does not verify with the issuer's public");
	expect_code(post_der(x, f->otherkey, EVP_sha256(), f->ca, check, 0,
	    &e), &e, HSMCA_ERR_VERIFY, "does not verify");
	/* Another key's check: OpenSSL's verify decides. */
	if (post_der(x, f->cakey, EVP_sha256(), f->ca, other, 0, &e) != 0)
		fail_msg("postsign refused: %s", e.msg);
	expect_code(post_der(x, f->otherkey, EVP_sha256(), f->ca, other, 0,
	    &e), &e, HSMCA_ERR_VERIFY, "does not verify");
	/* Signed with SHA-384, the SHA-256 check is not used, and the other
	 * way round. */
	if (post_der(x, f->cakey, EVP_sha384(), f->ca, check, 0, &e) != 0)
		fail_msg("postsign refused: %s", e.msg);
	if (post_der(x, f->cakey, EVP_sha384(), f->ca, sha384, 0, &e) != 0)
		fail_msg("postsign refused: %s", e.msg);
	expect_code(post_der(x, f->cakey, EVP_sha384(), f->ca, sha384, 1,
	    &e), &e, HSMCA_ERR_VERIFY, "does not verify");
	sigcheck_free(check);
	sigcheck_free(other);
	sigcheck_free(sha384);
	X509_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_leaf),
		cmocka_unit_test(test_ca_alone),
		cmocka_unit_test(test_sub_ca_profile),
		cmocka_unit_test(test_validity_beyond_issuer),
		cmocka_unit_test(test_issuer_name_mismatch),
		cmocka_unit_test(test_missing_ski),
		cmocka_unit_test(test_aki_mismatch),
		cmocka_unit_test(test_ca_under_leaf_profile),
		cmocka_unit_test(test_key_usage_differs),
		cmocka_unit_test(test_eku_differs),
		cmocka_unit_test(test_serial),
		cmocka_unit_test(test_duplicate_extension),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_subject_or_san),
		cmocka_unit_test(test_weak_subject_key),
		cmocka_unit_test(test_stale_cache),
		cmocka_unit_test(test_post_sigalg_mismatch),
		cmocka_unit_test(test_post_wrong_key),
		cmocka_unit_test(test_post_alg_vs_issuer_key),
		cmocka_unit_test(test_post_rsa_issuer),
		cmocka_unit_test(test_post_sigcheck),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
