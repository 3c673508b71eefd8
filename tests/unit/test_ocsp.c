/* test_ocsp.c: OCSP responses signed with software keys (the HSM only
 * adds the session bound, which the integration tests cover), parsed
 * back and verified as a relying party would, and answered from the
 * cache for two CA generations: one with a delegated responder, one
 * whose CA key signs itself. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "hsmca/issue.h"
#include "hsmca/ocsp.h"
#include "hsmca/store.h"
#include "hsmca/util.h"
#include "testutil.h"

#define DAY	((time_t)86400)
#define HOUR	((time_t)3600)

struct fixture {
	char			*dir;
	char			 path[512];
	struct store		*st;
	time_t			 now;	/* the real clock: clients check it */
	EVP_PKEY		*key_a, *key_b, *key_r;
	X509			*ca_a, *ca_b, *resp_a;
	int64_t			 gen_a, gen_b;
	struct ocsp_signer	 sign_a;	/* delegated responder */
	struct ocsp_signer	 sign_b;	/* the CA key itself */
	struct ocsp_cache	*cache;
};

static int64_t
gen_add(struct fixture *fx, X509 *x, const char *cn)
{
	struct store_generation g;
	struct hsmca_err e = { 0 };
	unsigned char *der = NULL;
	int len;

	memset(&g, 0, sizeof(g));
	g.kind = STORE_GEN_ISSUING;
	g.status = STORE_GEN_ACTIVE;
	g.subject = (char *)cn;
	g.not_before = fx->now - 30 * DAY;
	g.not_after = fx->now + 730 * DAY;
	assert_int_equal(util_cert_sha1(x, g.sha1), 0);
	assert_int_equal(util_cert_sha256(x, g.sha256), 0);
	len = i2d_X509(x, &der);
	assert_true(len > 0);
	g.cert_der = der;
	g.cert_der_len = (size_t)len;
	g.created_at = fx->now;
	assert_int_equal(store_insert_generation(fx->st, &g, &e), 0);
	OPENSSL_free(der);
	return g.id;
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct hsmca_err e = { 0 };

	assert_non_null(fx);
	fx->now = time(NULL);
	fx->dir = tu_tmpdir();
	snprintf(fx->path, sizeof(fx->path), "%s/hsmca.db", fx->dir);
	assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	fx->key_a = tu_keygen("ec:P-256");
	fx->key_b = tu_keygen("ec:P-256");
	fx->key_r = tu_keygen("ec:P-256");
	fx->ca_a = tu_make_ca(fx->key_a, "CN=OCSP Test CA A,O=hsmca tests",
	    fx->now - 30 * DAY, fx->now + 730 * DAY);
	fx->ca_b = tu_make_ca(fx->key_b, "CN=OCSP Test CA B,O=hsmca tests",
	    fx->now - 30 * DAY, fx->now + 730 * DAY);
	fx->gen_a = gen_add(fx, fx->ca_a, "CN=OCSP Test CA A,O=hsmca tests");
	fx->gen_b = gen_add(fx, fx->ca_b, "CN=OCSP Test CA B,O=hsmca tests");
	if (ocsp_responder_cert_make(NULL, fx->ca_a, fx->key_a, EVP_sha256(),
	    fx->key_r, NULL, fx->now - HOUR, 0, &fx->resp_a, &e) != 0)
		fail_msg("ocsp_responder_cert_make: %s", e.msg);
	fx->sign_a.issuer = fx->ca_a;
	fx->sign_a.responder_cert = fx->resp_a;
	fx->sign_a.key = fx->key_r;
	fx->sign_a.md = EVP_sha256();
	fx->sign_b.issuer = fx->ca_b;
	fx->sign_b.key = fx->key_b;
	fx->sign_b.md = EVP_sha256();
	assert_int_equal(ocsp_cache_new(&fx->cache, &e), 0);
	assert_int_equal(ocsp_cache_add_issuer(fx->cache, fx->gen_a, fx->ca_a,
	    &e), 0);
	assert_int_equal(ocsp_cache_add_issuer(fx->cache, fx->gen_b, fx->ca_b,
	    &e), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	ocsp_cache_free(fx->cache);
	store_close(fx->st);
	X509_free(fx->ca_a);
	X509_free(fx->ca_b);
	X509_free(fx->resp_a);
	EVP_PKEY_free(fx->key_a);
	EVP_PKEY_free(fx->key_b);
	EVP_PKEY_free(fx->key_r);
	tu_rmtree(fx->dir);
	free(fx->dir);
	free(fx);
	return 0;
}

/* A real leaf certificate of ca, serial hex, recorded as issued. */
static X509 *
leaf_add(struct fixture *fx, int64_t gen, X509 *ca, EVP_PKEY *cakey,
    const char *serial)
{
	struct store_cert c;
	struct hsmca_err e = { 0 };
	X509 *x = X509_new();
	EVP_PKEY *k = tu_keygen("ec:P-256");
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai;
	X509_NAME *n = X509_NAME_new();
	unsigned char *der = NULL;
	int64_t id;
	int len;

	assert_non_null(x);
	assert_true(BN_hex2bn(&bn, serial) > 0);
	ai = BN_to_ASN1_INTEGER(bn, NULL);
	assert_non_null(ai);
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"dev", -1, -1, 0));
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(X509_set_serialNumber(x, ai));
	assert_true(X509_set_subject_name(x, n));
	assert_true(X509_set_issuer_name(x, X509_get_subject_name(ca)));
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), fx->now - DAY));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x),
	    fx->now + 90 * DAY));
	assert_true(X509_set_pubkey(x, k));
	assert_true(X509_sign(x, cakey, EVP_sha256()) > 0);
	len = i2d_X509(x, &der);
	assert_true(len > 0);

	assert_int_equal(store_reserve_serial(fx->st, gen, 0, serial, "device",
	    "test", NULL, fx->now, &id, &e), 0);
	memset(&c, 0, sizeof(c));
	c.id = id;
	c.subject = (char *)"CN=dev";
	c.not_before = fx->now - DAY;
	c.not_after = fx->now + 90 * DAY;
	c.der = der;
	c.der_len = (size_t)len;
	if (store_complete_cert(fx->st, &c, &e) != 0)
		fail_msg("store_complete_cert: %s", e.msg);
	OPENSSL_free(der);
	X509_NAME_free(n);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	EVP_PKEY_free(k);
	return x;
}

static void
cert_revoke(struct fixture *fx, int64_t gen, const char *serial, int reason,
    time_t when)
{
	struct hsmca_err e = { 0 };
	int already = -1;

	assert_int_equal(store_revoke_cert(fx->st, gen, serial, reason, when,
	    &already, &e), 0);
}

/* Presign from the store record of serial. */
static unsigned char *
presign(struct fixture *fx, const struct ocsp_signer *s, int64_t gen,
    const char *serial, const EVP_MD *id_md, time_t now, size_t *len)
{
	struct store_cert c;
	struct hsmca_err e = { 0 };
	unsigned char *der = NULL;

	memset(&c, 0, sizeof(c));
	assert_int_equal(store_get_cert(fx->st, gen, serial, &c, &e), 0);
	if (ocsp_presign(s, &c, id_md, now, 0, &der, len, &e) != 0)
		fail_msg("ocsp_presign: %s", e.msg);
	store_cert_free_fields(&c);
	return der;
}

static OCSP_BASICRESP *
parse(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
	OCSP_BASICRESP *bs;

	assert_non_null(r);
	assert_ptr_equal(p, der + len);
	assert_int_equal(OCSP_response_status(r),
	    OCSP_RESPONSE_STATUS_SUCCESSFUL);
	bs = OCSP_response_get1_basic(r);
	assert_non_null(bs);
	OCSP_RESPONSE_free(r);
	return bs;
}

/* OCSP_basic_verify against ca as the one trust anchor. */
static void
verify(OCSP_BASICRESP *bs, X509 *ca)
{
	X509_STORE *xs = X509_STORE_new();
	STACK_OF(X509) *certs = sk_X509_new_null();

	assert_non_null(xs);
	assert_true(X509_STORE_add_cert(xs, ca));
	/* A response the CA signs itself carries no certificate: the
	 * client names the issuer, as `openssl ocsp -issuer` does. */
	assert_true(sk_X509_push(certs, ca));
	assert_int_equal(OCSP_basic_verify(bs, certs, xs, 0), 1);
	sk_X509_free(certs);
	X509_STORE_free(xs);
}

static time_t
asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
	return timegm(&tm);
}

static OCSP_CERTID *
certid(const EVP_MD *md, X509 *ca, const char *serial)
{
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai;
	OCSP_CERTID *id;

	assert_true(BN_hex2bn(&bn, serial) > 0);
	ai = BN_to_ASN1_INTEGER(bn, NULL);
	id = OCSP_cert_id_new(md, X509_get_subject_name(ca),
	    X509_get0_pubkey_bitstr(ca), ai);
	assert_non_null(id);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return id;
}

/* Status of serial in bs; reason, revocation time, thisUpdate and
 * nextUpdate through the pointers. */
static int
status_of(OCSP_BASICRESP *bs, const EVP_MD *md, X509 *ca, const char *serial,
    int *reason, time_t *rev, time_t *tu, time_t *nu)
{
	OCSP_CERTID *id = certid(md, ca, serial);
	ASN1_GENERALIZEDTIME *r = NULL, *t = NULL, *n = NULL;
	int status = -1;

	*reason = -2;
	assert_int_equal(OCSP_resp_find_status(bs, id, &status, reason, &r,
	    &t, &n), 1);
	*rev = r != NULL ? asn1_time(r) : 0;
	*tu = asn1_time(t);
	*nu = asn1_time(n);
	OCSP_CERTID_free(id);
	return status;
}

/* A DER request for one or two CertIDs, with a nonce as `openssl ocsp`
 * adds by default. */
static unsigned char *
request(OCSP_CERTID *id, OCSP_CERTID *id2, size_t *len)
{
	OCSP_REQUEST *req = OCSP_REQUEST_new();
	unsigned char *der = NULL;
	int n;

	assert_non_null(req);
	assert_non_null(OCSP_request_add0_id(req, id));
	if (id2 != NULL)
		assert_non_null(OCSP_request_add0_id(req, id2));
	assert_int_equal(OCSP_request_add1_nonce(req, NULL, -1), 1);
	n = i2d_OCSP_REQUEST(req, &der);
	assert_true(n > 0);
	OCSP_REQUEST_free(req);
	*len = (size_t)n;
	return der;
}

/* Answer a request for serial; *found as ocsp_answer says. */
static unsigned char *
ask(struct fixture *fx, const EVP_MD *md, X509 *ca, const char *serial,
    time_t now, int *found, struct ocsp_query *q, size_t *len)
{
	struct hsmca_err e = { 0 };
	unsigned char *req, *der = NULL;
	size_t reqlen;

	req = request(certid(md, ca, serial), NULL, &reqlen);
	assert_int_equal(ocsp_answer(fx->cache, req, reqlen, now, &der, len,
	    found, q, &e), 0);
	OPENSSL_free(req);
	return der;
}

static int
response_status(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
	int s;

	assert_non_null(r);
	s = OCSP_response_status(r);
	assert_null(OCSP_response_get1_basic(r));
	OCSP_RESPONSE_free(r);
	return s;
}

static void
test_responder_cert(void **state)
{
	struct fixture *fx = *state;
	X509 *x = fx->resp_a;
	X509 *short_ca, *clamped = NULL;
	EVP_PKEY *k;
	struct hsmca_err e = { 0 };
	BASIC_CONSTRAINTS *bc;
	int crit = -1, idx;
	char *subj;

	assert_int_equal(X509_check_issued(fx->ca_a, x), X509_V_OK);
	assert_int_equal(X509_verify(x, fx->key_a), 1);
	assert_true(X509_get_extension_flags(x) & EXFLAG_XKUSAGE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_OCSP_SIGN);
	idx = X509_get_ext_by_NID(x, NID_id_pkix_OCSP_noCheck, -1);
	assert_true(idx >= 0);
	assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(x, idx)), 0);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	idx = X509_get_ext_by_NID(x, NID_key_usage, -1);
	assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(x, idx)), 1);
	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(bc->ca, 0);
	assert_int_equal(crit, 1);
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal(X509_check_ca(x), 0);
	assert_non_null(X509_get0_subject_key_id(x));
	assert_non_null(X509_get0_authority_key_id(x));
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), fx->key_r), 1);
	subj = util_name_string(X509_get_subject_name(x));
	assert_non_null(strstr(subj, "CN=OCSP Test CA A OCSP Responder"));
	assert_non_null(strstr(subj, "O=hsmca tests"));
	free(subj);
	assert_int_equal(asn1_time(X509_get0_notAfter(x)),
	    fx->now - HOUR + 30 * DAY);

	/* Validity inside the issuer's: clamped to its notAfter. */
	k = tu_keygen("ec:P-256");
	short_ca = tu_make_ca(k, "CN=Short CA", fx->now - DAY,
	    fx->now + 10 * DAY);
	assert_int_equal(ocsp_responder_cert_make(NULL, short_ca, k,
	    EVP_sha256(), fx->key_r, "CN=Short Responder", fx->now, 0,
	    &clamped, &e), 0);
	assert_int_equal(asn1_time(X509_get0_notAfter(clamped)),
	    fx->now + 10 * DAY);
	subj = util_name_string(X509_get_subject_name(clamped));
	assert_string_equal(subj, "CN=Short Responder");
	free(subj);
	X509_free(clamped);
	/* An expired issuer has no room for one. */
	assert_int_equal(ocsp_responder_cert_make(NULL, short_ca, k,
	    EVP_sha256(), fx->key_r, NULL, fx->now + 11 * DAY, 0, &clamped,
	    &e), HSMCA_ERR_CA_STATE);
	assert_null(clamped);
	/* A long CN is cut to leave room for the suffix (ub-common-name). */
	{
		X509 *long_ca = tu_make_ca(k, "CN=0123456789012345678901234567"
		    "890123456789012345678901234567", fx->now - DAY,
		    fx->now + 10 * DAY);
		X509_NAME_ENTRY *ne;
		const ASN1_STRING *cn;

		assert_int_equal(ocsp_responder_cert_make(NULL, long_ca, k,
		    EVP_sha256(), fx->key_r, NULL, fx->now, 0, &clamped, &e),
		    0);
		ne = X509_NAME_get_entry(X509_get_subject_name(clamped), 0);
		cn = X509_NAME_ENTRY_get_data(ne);
		assert_int_equal(ASN1_STRING_length(cn), 64);
		assert_memory_equal(ASN1_STRING_get0_data(cn),
		    "0123456789012345678901234567890123456789012345678 OCSP "
		    "Responder", 64);
		X509_free(clamped);
		clamped = NULL;
		X509_free(long_ca);
	}
	/* Nor a year and a day. */
	assert_int_equal(ocsp_responder_cert_make(NULL, fx->ca_a, fx->key_a,
	    EVP_sha256(), fx->key_r, NULL, fx->now, 366 * DAY, &clamped, &e),
	    HSMCA_ERR_ARG);
	X509_free(short_ca);
	EVP_PKEY_free(k);
}

static void
test_presign_good(void **state)
{
	struct fixture *fx = *state;
	X509 *leaf = leaf_add(fx, fx->gen_a, fx->ca_a, fx->key_a, "0a01");
	OCSP_BASICRESP *bs;
	const ASN1_OCTET_STRING *keyid = NULL;
	const X509_NAME *name = NULL;
	unsigned char *der, kh[SHA_DIGEST_LENGTH];
	unsigned int khlen = 0;
	size_t len;
	time_t rev, tu, nu;
	int reason;

	der = presign(fx, &fx->sign_a, fx->gen_a, "0a01", NULL, fx->now, &len);
	bs = parse(der, len);
	verify(bs, fx->ca_a);
	assert_int_equal(status_of(bs, EVP_sha1(), fx->ca_a, "0a01", &reason,
	    &rev, &tu, &nu), V_OCSP_CERTSTATUS_GOOD);
	assert_int_equal(tu, fx->now);
	assert_int_equal(nu, fx->now + OCSP_VALIDITY_DEFAULT);
	/* Asked with SHA-256 it is not found: the CertID is SHA-1. */
	{
		OCSP_CERTID *id = certid(EVP_sha256(), fx->ca_a, "0a01");
		int st;

		assert_int_equal(OCSP_resp_find_status(bs, id, &st, NULL, NULL,
		    NULL, NULL), 0);
		OCSP_CERTID_free(id);
	}
	/* responderID byKey, the responder's; its certificate included. */
	assert_int_equal(OCSP_resp_get0_id(bs, &keyid, &name), 1);
	assert_null(name);
	assert_non_null(keyid);
	assert_true(X509_pubkey_digest(fx->resp_a, EVP_sha1(), kh, &khlen));
	assert_int_equal(ASN1_STRING_length(keyid), (int)khlen);
	assert_memory_equal(ASN1_STRING_get0_data(keyid), kh, khlen);
	assert_int_equal(sk_X509_num(OCSP_resp_get0_certs(bs)), 1);
	assert_int_equal(X509_cmp(sk_X509_value(OCSP_resp_get0_certs(bs), 0),
	    fx->resp_a), 0);
	/* Same as OCSP_cert_to_id from the certificate itself. */
	{
		OCSP_CERTID *id = OCSP_cert_to_id(NULL, leaf, fx->ca_a);
		int st = -1;

		assert_int_equal(OCSP_resp_find_status(bs, id, &st, NULL, NULL,
		    NULL, NULL), 1);
		assert_int_equal(st, V_OCSP_CERTSTATUS_GOOD);
		OCSP_CERTID_free(id);
	}
	OCSP_BASICRESP_free(bs);
	OPENSSL_free(der);
	X509_free(leaf);
}

static void
test_presign_revoked(void **state)
{
	struct fixture *fx = *state;
	X509 *l1 = leaf_add(fx, fx->gen_a, fx->ca_a, fx->key_a, "0b01");
	X509 *l2 = leaf_add(fx, fx->gen_a, fx->ca_a, fx->key_a, "0b02");
	X509 *l3 = leaf_add(fx, fx->gen_b, fx->ca_b, fx->key_b, "0b03");
	OCSP_BASICRESP *bs;
	unsigned char *der;
	size_t len;
	time_t rev, tu, nu;
	int reason;

	cert_revoke(fx, fx->gen_a, "0b01", CRL_REASON_KEY_COMPROMISE,
	    fx->now - 2 * HOUR);
	cert_revoke(fx, fx->gen_a, "0b02", STORE_REASON_UNSPECIFIED,
	    fx->now - HOUR);
	cert_revoke(fx, fx->gen_b, "0b03", STORE_REASON_HOLD,
	    fx->now - 3 * HOUR);

	der = presign(fx, &fx->sign_a, fx->gen_a, "0b01", NULL, fx->now, &len);
	bs = parse(der, len);
	verify(bs, fx->ca_a);
	assert_int_equal(status_of(bs, EVP_sha1(), fx->ca_a, "0b01", &reason,
	    &rev, &tu, &nu), V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(reason, OCSP_REVOKED_STATUS_KEYCOMPROMISE);
	assert_int_equal(rev, fx->now - 2 * HOUR);
	OCSP_BASICRESP_free(bs);
	OPENSSL_free(der);

	/* unspecified is left out, as in CRLs. */
	der = presign(fx, &fx->sign_a, fx->gen_a, "0b02", NULL, fx->now, &len);
	bs = parse(der, len);
	assert_int_equal(status_of(bs, EVP_sha1(), fx->ca_a, "0b02", &reason,
	    &rev, &tu, &nu), V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(reason, OCSP_REVOKED_STATUS_NOSTATUS);
	assert_int_equal(rev, fx->now - HOUR);
	OCSP_BASICRESP_free(bs);
	OPENSSL_free(der);

	/* The other generation, its CA key signing: no certificate. */
	der = presign(fx, &fx->sign_b, fx->gen_b, "0b03", NULL, fx->now, &len);
	bs = parse(der, len);
	verify(bs, fx->ca_b);
	assert_true(sk_X509_num(OCSP_resp_get0_certs(bs)) <= 0);
	assert_int_equal(status_of(bs, EVP_sha1(), fx->ca_b, "0b03", &reason,
	    &rev, &tu, &nu), V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(reason, OCSP_REVOKED_STATUS_CERTIFICATEHOLD);
	assert_int_equal(rev, fx->now - 3 * HOUR);
	OCSP_BASICRESP_free(bs);
	OPENSSL_free(der);
	X509_free(l1);
	X509_free(l2);
	X509_free(l3);
}

static void
test_unknown_and_errors(void **state)
{
	struct fixture *fx = *state;
	struct store_cert c;
	struct hsmca_err e = { 0 };
	OCSP_BASICRESP *bs;
	unsigned char *der = NULL;
	size_t len = 0;
	time_t rev, tu, nu;
	int reason;
	int64_t id;

	assert_int_equal(ocsp_unknown(&fx->sign_a, "7777", NULL, fx->now, 0,
	    &der, &len, &e), 0);
	bs = parse(der, len);
	verify(bs, fx->ca_a);
	assert_int_equal(status_of(bs, EVP_sha1(), fx->ca_a, "7777", &reason,
	    &rev, &tu, &nu), V_OCSP_CERTSTATUS_UNKNOWN);
	OCSP_BASICRESP_free(bs);
	OPENSSL_free(der);

	/* A reserved serial was never issued: presign refuses it. */
	assert_int_equal(store_reserve_serial(fx->st, fx->gen_a, 0, "0c01",
	    "device", "test", NULL, fx->now, &id, &e), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_get_cert(fx->st, fx->gen_a, "0c01", &c, &e), 0);
	assert_int_equal(ocsp_presign(&fx->sign_a, &c, NULL, fx->now, 0, &der,
	    &len, &e), HSMCA_ERR_CA_STATE);
	assert_null(der);
	store_cert_free_fields(&c);
	assert_int_equal(ocsp_unknown(&fx->sign_a, "zz", NULL, fx->now, 0,
	    &der, &len, &e), HSMCA_ERR_ARG);
	assert_int_equal(ocsp_unknown(&fx->sign_a, "01", EVP_sha384(),
	    fx->now, 0, &der, &len, &e), HSMCA_ERR_ARG);

	/* Unsigned error responses. */
	assert_int_equal(ocsp_error(OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
	    &der, &len, &e), 0);
	assert_int_equal(response_status(der, len),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	OPENSSL_free(der);
	assert_int_equal(ocsp_error(OCSP_RESPONSE_STATUS_UNAUTHORIZED, &der,
	    &len, &e), 0);
	assert_int_equal(response_status(der, len),
	    OCSP_RESPONSE_STATUS_UNAUTHORIZED);
	OPENSSL_free(der);
	assert_int_equal(ocsp_error(OCSP_RESPONSE_STATUS_INTERNALERROR, &der,
	    &len, &e), 0);
	OPENSSL_free(der);
	assert_int_equal(ocsp_error(OCSP_RESPONSE_STATUS_SUCCESSFUL, &der,
	    &len, &e), HSMCA_ERR_ARG);
	assert_int_equal(ocsp_error(4, &der, &len, &e), HSMCA_ERR_ARG);
}

static void
test_validity_bounds(void **state)
{
	struct fixture *fx = *state;
	X509 *leaf = leaf_add(fx, fx->gen_b, fx->ca_b, fx->key_b, "0d01");
	struct hsmca_err e = { 0 };
	struct ocsp_signer s;
	X509 *short_resp = NULL;
	unsigned char *der = NULL;
	size_t len = 0;
	static const struct {
		int64_t	v;
		int	ret;
	} cases[] = {
		{ 8 * HOUR - 1, HSMCA_ERR_ARG },
		{ 8 * HOUR, 0 },
		{ 7 * DAY, 0 },
		{ 7 * DAY + 1, HSMCA_ERR_ARG },
		{ -1, HSMCA_ERR_ARG },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(ocsp_unknown(&fx->sign_b, "0d01", NULL,
		    fx->now, cases[i].v, &der, &len, &e), cases[i].ret);
		if (cases[i].ret == 0) {
			OCSP_BASICRESP *bs = parse(der, len);
			time_t rev, tu, nu;
			int reason;

			status_of(bs, EVP_sha1(), fx->ca_b, "0d01", &reason,
			    &rev, &tu, &nu);
			assert_int_equal(nu - tu, cases[i].v);
			OCSP_BASICRESP_free(bs);
			OPENSSL_free(der);
		} else {
			assert_null(der);
			assert_non_null(strstr(e.msg, "8 hours to 7 days"));
		}
	}

	/* A responder certificate that ends before nextUpdate (in a
	 * generation's last days, its responder certificate ends with it):
	 * the response ends with the certificate, it is not refused. */
	assert_int_equal(ocsp_responder_cert_make(NULL, fx->ca_a, fx->key_a,
	    EVP_sha256(), fx->key_r, NULL, fx->now, DAY, &short_resp, &e), 0);
	s = fx->sign_a;
	s.responder_cert = short_resp;
	assert_int_equal(ocsp_unknown(&s, "0d01", NULL, fx->now, 12 * HOUR,
	    &der, &len, &e), 0);
	OPENSSL_free(der);
	for (int late = 0; late < 2; late++) {
		time_t t = fx->now + (late ? DAY - 3 * HOUR : 0);
		OCSP_BASICRESP *bs;
		time_t rev, tu, nu;
		int reason;

		assert_int_equal(ocsp_unknown(&s, "0d01", NULL, t, 2 * DAY,
		    &der, &len, &e), 0);
		bs = parse(der, len);
		status_of(bs, EVP_sha1(), fx->ca_a, "0d01", &reason, &rev,
		    &tu, &nu);
		assert_int_equal(tu, t);
		assert_int_equal(nu, issue_asn1_time(X509_get0_notAfter(
		    short_resp)));
		OCSP_BASICRESP_free(bs);
		OPENSSL_free(der);
	}
	/* Once it has ended, nothing is signed with it. */
	err_clear(&e);
	assert_int_equal(ocsp_unknown(&s, "0d01", NULL, fx->now + DAY, 0,
	    &der, &len, &e), HSMCA_ERR_CA_STATE);
	assert_null(der);
	assert_non_null(strstr(e.msg, "not valid now"));
	/* Nor one from another CA, nor a key that does not match. */
	s.responder_cert = fx->resp_a;
	s.issuer = fx->ca_b;
	assert_int_equal(ocsp_unknown(&s, "0d01", NULL, fx->now, 0, &der,
	    &len, &e), HSMCA_ERR_CA_STATE);
	s = fx->sign_b;
	s.key = fx->key_a;
	assert_int_not_equal(ocsp_unknown(&s, "0d01", NULL, fx->now, 0, &der,
	    &len, &e), 0);
	assert_null(der);
	X509_free(short_resp);
	X509_free(leaf);
}

static void
put(struct fixture *fx, const unsigned char *der, size_t len)
{
	struct hsmca_err e = { 0 };

	if (ocsp_cache_put(fx->cache, der, len, &e) != 0)
		fail_msg("ocsp_cache_put: %s", e.msg);
}

static void
test_cache_answer(void **state)
{
	struct fixture *fx = *state;
	X509 *l1 = leaf_add(fx, fx->gen_a, fx->ca_a, fx->key_a, "0e01");
	X509 *l2 = leaf_add(fx, fx->gen_a, fx->ca_a, fx->key_a, "0e02");
	X509 *l3 = leaf_add(fx, fx->gen_b, fx->ca_b, fx->key_b, "0e03");
	EVP_PKEY *kc = tu_keygen("ec:P-256");
	X509 *ca_c = tu_make_ca(kc, "CN=Not Ours", fx->now - DAY,
	    fx->now + DAY);
	struct ocsp_query q;
	OCSP_BASICRESP *bs;
	unsigned char *der, *ans;
	size_t len, alen;
	time_t rev, tu, nu;
	int found, reason;

	cert_revoke(fx, fx->gen_a, "0e02", CRL_REASON_SUPERSEDED,
	    fx->now - HOUR);
	der = presign(fx, &fx->sign_a, fx->gen_a, "0e01", NULL, fx->now, &len);
	put(fx, der, len);
	/* The answer is the pre-signed response, byte for byte. */
	ans = ask(fx, EVP_sha1(), fx->ca_a, "0e01", fx->now, &found, &q,
	    &alen);
	assert_int_equal(found, 1);
	assert_int_equal(alen, len);
	assert_memory_equal(ans, der, len);
	OPENSSL_free(ans);
	OPENSSL_free(der);
	der = presign(fx, &fx->sign_a, fx->gen_a, "0e02", NULL, fx->now, &len);
	put(fx, der, len);
	OPENSSL_free(der);
	der = presign(fx, &fx->sign_b, fx->gen_b, "0e03", NULL, fx->now, &len);
	put(fx, der, len);
	OPENSSL_free(der);
	assert_int_equal(ocsp_cache_count(fx->cache), 3);

	ans = ask(fx, EVP_sha1(), fx->ca_a, "0e02", fx->now + HOUR, &found,
	    &q, &alen);
	assert_int_equal(found, 1);
	bs = parse(ans, alen);
	verify(bs, fx->ca_a);
	assert_int_equal(status_of(bs, EVP_sha1(), fx->ca_a, "0e02", &reason,
	    &rev, &tu, &nu), V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(reason, OCSP_REVOKED_STATUS_SUPERSEDED);
	OCSP_BASICRESP_free(bs);
	OPENSSL_free(ans);

	/* Two generations: each answers for its own serials only. */
	ans = ask(fx, EVP_sha1(), fx->ca_b, "0e03", fx->now, &found, &q,
	    &alen);
	assert_int_equal(found, 1);
	bs = parse(ans, alen);
	verify(bs, fx->ca_b);
	assert_int_equal(status_of(bs, EVP_sha1(), fx->ca_b, "0e03", &reason,
	    &rev, &tu, &nu), V_OCSP_CERTSTATUS_GOOD);
	OCSP_BASICRESP_free(bs);
	OPENSSL_free(ans);
	ans = ask(fx, EVP_sha1(), fx->ca_a, "0e03", fx->now, &found, &q,
	    &alen);
	assert_int_equal(found, 0);
	assert_null(ans);
	assert_int_equal(q.gen_id, fx->gen_a);
	assert_string_equal(q.serial, "0e03");
	assert_int_equal(q.id_nid, NID_sha1);

	/* Never issued: not found, the query says what to look up. */
	ans = ask(fx, EVP_sha1(), fx->ca_b, "00ffee", fx->now, &found, &q,
	    &alen);
	assert_int_equal(found, 0);
	assert_null(ans);
	assert_int_equal(q.gen_id, fx->gen_b);
	assert_string_equal(q.serial, "ffee");

	/* An issuer that is not ours: unauthorized (RFC 5019 §2.2.3). */
	ans = ask(fx, EVP_sha1(), ca_c, "0e01", fx->now, &found, &q, &alen);
	assert_int_equal(found, 0);
	assert_non_null(ans);
	assert_int_equal(response_status(ans, alen),
	    OCSP_RESPONSE_STATUS_UNAUTHORIZED);
	assert_int_equal(q.gen_id, 0);
	OPENSSL_free(ans);
	/* Nor a hash we do not answer. */
	ans = ask(fx, EVP_sha384(), fx->ca_a, "0e01", fx->now, &found, &q,
	    &alen);
	assert_int_equal(found, 0);
	assert_int_equal(response_status(ans, alen),
	    OCSP_RESPONSE_STATUS_UNAUTHORIZED);
	OPENSSL_free(ans);

	/* SHA-256 CertIDs: not cached until signed for, then answered. */
	ans = ask(fx, EVP_sha256(), fx->ca_a, "0e01", fx->now, &found, &q,
	    &alen);
	assert_int_equal(found, 0);
	assert_null(ans);
	assert_int_equal(q.gen_id, fx->gen_a);
	assert_int_equal(q.id_nid, NID_sha256);
	der = presign(fx, &fx->sign_a, fx->gen_a, "0e01", EVP_sha256(),
	    fx->now, &len);
	put(fx, der, len);
	OPENSSL_free(der);
	assert_int_equal(ocsp_cache_count(fx->cache), 3);
	ans = ask(fx, EVP_sha256(), fx->ca_a, "0e01", fx->now, &found, &q,
	    &alen);
	assert_int_equal(found, 1);
	bs = parse(ans, alen);
	assert_int_equal(status_of(bs, EVP_sha256(), fx->ca_a, "0e01",
	    &reason, &rev, &tu, &nu), V_OCSP_CERTSTATUS_GOOD);
	OCSP_BASICRESP_free(bs);
	OPENSSL_free(ans);

	/* A response of an issuer the cache does not hold is refused. */
	{
		struct ocsp_signer s = { ca_c, NULL, kc, EVP_sha256(), NULL };
		struct hsmca_err e = { 0 };

		assert_int_equal(ocsp_unknown(&s, "01", NULL, fx->now, 0, &der,
		    &len, &e), 0);
		assert_int_equal(ocsp_cache_put(fx->cache, der, len, &e),
		    HSMCA_ERR_ARG);
		OPENSSL_free(der);
		assert_int_equal(ocsp_cache_put(fx->cache,
		    (const unsigned char *)"\x30\x03\x0a\x01\x01", 5, &e),
		    HSMCA_ERR_ARG);
	}
	X509_free(ca_c);
	EVP_PKEY_free(kc);
	X509_free(l1);
	X509_free(l2);
	X509_free(l3);
}

static void
test_cache_replace(void **state)
{
	struct fixture *fx = *state;
	X509 *leaf = leaf_add(fx, fx->gen_a, fx->ca_a, fx->key_a, "0f01");
	struct hsmca_err e = { 0 };
	struct ocsp_query q;
	struct ocsp_due *due = NULL;
	OCSP_BASICRESP *bs;
	unsigned char *good1, *good256, *revd, *ans;
	size_t l1, l256, lr, alen, n = 0;
	time_t rev, tu, nu;
	int found, reason;

	good1 = presign(fx, &fx->sign_a, fx->gen_a, "0f01", NULL,
	    fx->now - HOUR, &l1);
	good256 = presign(fx, &fx->sign_a, fx->gen_a, "0f01", EVP_sha256(),
	    fx->now - HOUR, &l256);
	put(fx, good1, l1);
	put(fx, good256, l256);

	/* Revoked: the new response replaces the old at once, and the
	 * SHA-256 one, which still says good, is dropped. */
	cert_revoke(fx, fx->gen_a, "0f01", CRL_REASON_KEY_COMPROMISE, fx->now);
	revd = presign(fx, &fx->sign_a, fx->gen_a, "0f01", NULL, fx->now, &lr);
	put(fx, revd, lr);
	assert_int_equal(ocsp_cache_count(fx->cache), 1);
	ans = ask(fx, EVP_sha1(), fx->ca_a, "0f01", fx->now, &found, &q,
	    &alen);
	assert_int_equal(found, 1);
	bs = parse(ans, alen);
	assert_int_equal(status_of(bs, EVP_sha1(), fx->ca_a, "0f01", &reason,
	    &rev, &tu, &nu), V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(reason, OCSP_REVOKED_STATUS_KEYCOMPROMISE);
	assert_int_equal(rev, fx->now);
	OCSP_BASICRESP_free(bs);
	OPENSSL_free(ans);
	ans = ask(fx, EVP_sha256(), fx->ca_a, "0f01", fx->now, &found, &q,
	    &alen);
	assert_int_equal(found, 0);
	assert_null(ans);

	/* A good response signed before the revocation does not undo it. */
	assert_int_equal(ocsp_cache_put(fx->cache, good256, l256, &e),
	    HSMCA_ERR_EXISTS);
	assert_int_equal(ocsp_cache_put(fx->cache, good1, l1, &e),
	    HSMCA_ERR_EXISTS);

	/* Stale at nextUpdate: not served, the caller re-signs. */
	ans = ask(fx, EVP_sha1(), fx->ca_a, "0f01",
	    fx->now + OCSP_VALIDITY_DEFAULT, &found, &q, &alen);
	assert_int_equal(found, 0);
	assert_null(ans);
	assert_string_equal(q.serial, "0f01");

	/* Due for refresh once before reaches its nextUpdate. */
	assert_int_equal(ocsp_cache_due(fx->cache,
	    fx->now + OCSP_VALIDITY_DEFAULT - 2 * HOUR, 10, &due, &n, &e), 0);
	assert_int_equal(n, 0);
	free(due);
	assert_int_equal(ocsp_cache_due(fx->cache,
	    fx->now + OCSP_VALIDITY_DEFAULT - HOUR + 1, 10, &due, &n, &e), 0);
	assert_int_equal(n, 0);
	free(due);
	assert_int_equal(ocsp_cache_due(fx->cache,
	    fx->now + OCSP_VALIDITY_DEFAULT, 10, &due, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(due[0].gen_id, fx->gen_a);
	assert_string_equal(due[0].serial, "0f01");
	assert_int_equal(due[0].id_nid, NID_sha1);
	assert_int_equal(due[0].status, V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(due[0].next_update, fx->now + OCSP_VALIDITY_DEFAULT);
	free(due);

	OPENSSL_free(good1);
	OPENSSL_free(good256);
	OPENSSL_free(revd);
	X509_free(leaf);
}

static void
test_hold_lifted(void **state)
{
	struct fixture *fx = *state;
	X509 *leaf = leaf_add(fx, fx->gen_b, fx->ca_b, fx->key_b, "1001");
	struct hsmca_err e = { 0 };
	struct ocsp_query q;
	OCSP_BASICRESP *bs;
	unsigned char *der, *ans;
	size_t len, alen;
	time_t rev, tu, nu;
	int found, reason;

	cert_revoke(fx, fx->gen_b, "1001", STORE_REASON_HOLD, fx->now - HOUR);
	der = presign(fx, &fx->sign_b, fx->gen_b, "1001", NULL, fx->now - HOUR,
	    &len);
	put(fx, der, len);
	OPENSSL_free(der);
	assert_int_equal(store_unhold_cert(fx->st, fx->gen_b, "1001", &e), 0);
	der = presign(fx, &fx->sign_b, fx->gen_b, "1001", NULL, fx->now, &len);
	put(fx, der, len);
	OPENSSL_free(der);
	ans = ask(fx, EVP_sha1(), fx->ca_b, "1001", fx->now, &found, &q,
	    &alen);
	assert_int_equal(found, 1);
	bs = parse(ans, alen);
	assert_int_equal(status_of(bs, EVP_sha1(), fx->ca_b, "1001", &reason,
	    &rev, &tu, &nu), V_OCSP_CERTSTATUS_GOOD);
	OCSP_BASICRESP_free(bs);
	OPENSSL_free(ans);
	X509_free(leaf);
}

static void
test_malformed(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct ocsp_query q;
	unsigned char *req, *der = NULL, big[OCSP_REQUEST_MAX_BYTES + 1];
	unsigned char junk[] = { 0x30, 0x82, 0xff, 0xff, 0x01 };
	size_t reqlen, len = 0;
	int found = -1;

	/* Garbage, truncated, trailing bytes, empty, oversized. */
	struct {
		const unsigned char	*p;
		size_t			 len;
	} bad[6];

	req = request(certid(EVP_sha1(), fx->ca_a, "01"), NULL, &reqlen);
	memset(big, 0x30, sizeof(big));
	memcpy(big, req, reqlen);
	bad[0].p = junk;
	bad[0].len = sizeof(junk);
	bad[1].p = req;
	bad[1].len = reqlen - 1;
	bad[2].p = big;
	bad[2].len = reqlen + 1;
	bad[3].p = req;
	bad[3].len = 0;
	bad[4].p = big;
	bad[4].len = sizeof(big);
	bad[5].p = (const unsigned char *)"GET / HTTP/1.0";
	bad[5].len = 14;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ocsp_answer(fx->cache, bad[i].p, bad[i].len,
		    fx->now, &der, &len, &found, &q, &e), 0);
		assert_int_equal(found, 0);
		assert_non_null(der);
		assert_int_equal(response_status(der, len),
		    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
		OPENSSL_free(der);
	}
	OPENSSL_free(req);

	/* Two CertIDs in one request: refused, not half answered. */
	req = request(certid(EVP_sha1(), fx->ca_a, "01"),
	    certid(EVP_sha1(), fx->ca_a, "02"), &reqlen);
	assert_int_equal(ocsp_answer(fx->cache, req, reqlen, fx->now, &der,
	    &len, &found, &q, &e), 0);
	assert_int_equal(found, 0);
	assert_int_equal(response_status(der, len),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	OPENSSL_free(der);
	OPENSSL_free(req);

	/* A serial longer than 20 octets. */
	req = request(certid(EVP_sha1(), fx->ca_a,
	    "0102030405060708090a0b0c0d0e0f101112131415"), NULL, &reqlen);
	assert_int_equal(ocsp_answer(fx->cache, req, reqlen, fx->now, &der,
	    &len, &found, &q, &e), 0);
	assert_int_equal(response_status(der, len),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	OPENSSL_free(der);
	OPENSSL_free(req);
}

/* The request as `openssl ocsp -issuer ca.pem -cert leaf.pem -reqout`
 * writes it (OCSP_cert_to_id, SHA-1, a nonce), answered from the cache
 * and checked as that client checks the response. */
static void
test_client_round_trip(void **state)
{
	struct fixture *fx = *state;
	X509 *leaf = leaf_add(fx, fx->gen_a, fx->ca_a, fx->key_a, "1101");
	struct hsmca_err e = { 0 };
	struct ocsp_query q;
	OCSP_BASICRESP *bs;
	OCSP_CERTID *id;
	ASN1_GENERALIZEDTIME *t = NULL, *n = NULL;
	unsigned char *der, *req, *ans = NULL;
	size_t len, reqlen, alen = 0;
	int found, st = -1, reason;

	der = presign(fx, &fx->sign_a, fx->gen_a, "1101", NULL, fx->now, &len);
	put(fx, der, len);
	OPENSSL_free(der);

	id = OCSP_cert_to_id(NULL, leaf, fx->ca_a);
	assert_non_null(id);
	req = request(id, NULL, &reqlen);
	assert_int_equal(ocsp_answer(fx->cache, req, reqlen, fx->now, &ans,
	    &alen, &found, &q, &e), 0);
	assert_int_equal(found, 1);
	bs = parse(ans, alen);
	verify(bs, fx->ca_a);
	id = OCSP_cert_to_id(NULL, leaf, fx->ca_a);
	assert_int_equal(OCSP_resp_find_status(bs, id, &st, &reason, NULL, &t,
	    &n), 1);
	assert_int_equal(st, V_OCSP_CERTSTATUS_GOOD);
	assert_int_equal(OCSP_check_validity(t, n, 300, -1), 1);
	OCSP_CERTID_free(id);
	OCSP_BASICRESP_free(bs);

	/* And with the openssl binary, when there is one. */
	if (system("openssl version >/dev/null 2>&1") == 0) {
		char path[600], cmd[4096];
		FILE *f;
		int rc;

		snprintf(path, sizeof(path), "%s/ca.pem", fx->dir);
		assert_non_null(f = fopen(path, "w"));
		assert_true(PEM_write_X509(f, fx->ca_a));
		fclose(f);
		snprintf(path, sizeof(path), "%s/leaf.pem", fx->dir);
		assert_non_null(f = fopen(path, "w"));
		assert_true(PEM_write_X509(f, leaf));
		fclose(f);
		snprintf(cmd, sizeof(cmd), "cd '%s' && openssl ocsp "
		    "-issuer ca.pem -cert leaf.pem -no_nonce -reqout req.der "
		    ">/dev/null 2>&1", fx->dir);
		assert_int_equal(system(cmd), 0);
		snprintf(path, sizeof(path), "%s/req.der", fx->dir);
		{
			unsigned char *r2 = NULL;
			size_t r2len = 0;

			assert_int_equal(util_read_file(path, 65536, &r2,
			    &r2len, &e), 0);
			OPENSSL_free(ans);
			ans = NULL;
			assert_int_equal(ocsp_answer(fx->cache, r2, r2len,
			    fx->now, &ans, &alen, &found, &q, &e), 0);
			free(r2);
		}
		assert_int_equal(found, 1);
		snprintf(path, sizeof(path), "%s/resp.der", fx->dir);
		assert_non_null(f = fopen(path, "wb"));
		assert_int_equal(fwrite(ans, 1, alen, f), alen);
		fclose(f);
		snprintf(cmd, sizeof(cmd), "cd '%s' && openssl ocsp "
		    "-respin resp.der -issuer ca.pem -CAfile ca.pem "
		    "-cert leaf.pem -no_nonce >out.txt 2>&1 && "
		    "grep -q 'leaf.pem: good' out.txt && "
		    "grep -q 'Response verify OK' out.txt", fx->dir);
		rc = system(cmd);
		if (rc != 0) {
			snprintf(cmd, sizeof(cmd), "cat '%s/out.txt' >&2",
			    fx->dir);
			if (system(cmd) != 0)
				print_message("no output\n");
		}
		assert_int_equal(rc, 0);
	}
	OPENSSL_free(ans);
	OPENSSL_free(req);
	X509_free(leaf);
}

/* One writer replacing and adding (the table grows under the readers)
 * while readers answer: every answer is a whole response, good or
 * revoked. */
struct reader {
	struct fixture	*fx;
	unsigned char	*req;
	size_t		 reqlen;
	int		 bad;
};

static pthread_mutex_t	 stop_mtx = PTHREAD_MUTEX_INITIALIZER;
static int		 stop_flag;

static int
stopped(void)
{
	int v;

	pthread_mutex_lock(&stop_mtx);
	v = stop_flag;
	pthread_mutex_unlock(&stop_mtx);
	return v;
}

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	struct hsmca_err e = { 0 };
	struct ocsp_query q;
	unsigned char *der;
	size_t len;
	int found;

	while (!stopped()) {
		if (ocsp_answer(r->fx->cache, r->req, r->reqlen, r->fx->now,
		    &der, &len, &found, &q, &e) != 0 || found != 1) {
			r->bad++;
			continue;
		}
		{
			const unsigned char *p = der;
			OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p,
			    (long)len);

			if (resp == NULL || p != der + len)
				r->bad++;
			OCSP_RESPONSE_free(resp);
		}
		OPENSSL_free(der);
	}
	return NULL;
}

static void
test_concurrent(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct store_cert c;
	struct reader rd[4];
	pthread_t th[4];
	unsigned char *der, *req;
	size_t len, reqlen;
	char serial[SERIAL_HEX_MAX];

	memset(&c, 0, sizeof(c));
	snprintf(c.serial, sizeof(c.serial), "1201");
	c.status = STORE_CERT_VALID;
	c.revoke_reason = -1;
	assert_int_equal(ocsp_presign(&fx->sign_b, &c, NULL, fx->now - HOUR,
	    0, &der, &len, &e), 0);
	put(fx, der, len);
	OPENSSL_free(der);
	req = request(certid(EVP_sha1(), fx->ca_b, "1201"), NULL, &reqlen);
	stop_flag = 0;
	for (int i = 0; i < 4; i++) {
		rd[i].fx = fx;
		rd[i].req = req;
		rd[i].reqlen = reqlen;
		rd[i].bad = 0;
		assert_int_equal(pthread_create(&th[i], NULL, reader_main,
		    &rd[i]), 0);
	}
	for (int i = 0; i < 1100; i++) {
		if (i % 100 == 0) {
			/* Revoke and lift, each newer than the last. */
			c.status = (i / 100) % 2 ? STORE_CERT_VALID :
			    STORE_CERT_REVOKED;
			c.revoked_at = fx->now - DAY;
			c.revoke_reason = 1;
			assert_int_equal(ocsp_presign(&fx->sign_b, &c, NULL,
			    fx->now - HOUR + i, 0, &der, &len, &e), 0);
			put(fx, der, len);
			OPENSSL_free(der);
		}
		snprintf(serial, sizeof(serial), "13%04x", i);
		assert_int_equal(ocsp_unknown(&fx->sign_b, serial, NULL,
		    fx->now, 0, &der, &len, &e), 0);
		put(fx, der, len);
		OPENSSL_free(der);
	}
	pthread_mutex_lock(&stop_mtx);
	stop_flag = 1;
	pthread_mutex_unlock(&stop_mtx);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(rd[i].bad, 0);
	}
	assert_int_equal(ocsp_cache_count(fx->cache), 1101);
	OPENSSL_free(req);
}

/* What the pre-signing walk asks the cache: nothing for a response that
 * says what the store says and is not due; the SHA-1 one again when it
 * is due, or the status, reason or time differ; the SHA-256 one only
 * once a client asked for it. */
static void
test_cache_needs(void **state)
{
	struct fixture *fx = *state;
	X509 *l1 = leaf_add(fx, fx->gen_a, fx->ca_a, fx->key_a, "0c0c01");
	unsigned char *der;
	size_t len;
	time_t rev = fx->now - HOUR;

	assert_int_equal(ocsp_cache_needs(fx->cache, fx->gen_a, "0c0c01",
	    V_OCSP_CERTSTATUS_GOOD, -1, 0, fx->now), OCSP_NEED_SHA1);
	der = presign(fx, &fx->sign_a, fx->gen_a, "0c0c01", NULL, fx->now,
	    &len);
	put(fx, der, len);
	OPENSSL_free(der);
	assert_int_equal(ocsp_cache_needs(fx->cache, fx->gen_a, "0c0c01",
	    V_OCSP_CERTSTATUS_GOOD, -1, 0, fx->now), 0);
	/* due: nextUpdate (a day on) at or before the horizon */
	assert_int_equal(ocsp_cache_needs(fx->cache, fx->gen_a, "0c0c01",
	    V_OCSP_CERTSTATUS_GOOD, -1, 0, fx->now + DAY), OCSP_NEED_SHA1);
	assert_int_equal(ocsp_cache_needs(fx->cache, fx->gen_a, "0c0c01",
	    V_OCSP_CERTSTATUS_REVOKED, CRL_REASON_KEY_COMPROMISE, rev,
	    fx->now), OCSP_NEED_SHA1);
	/* another generation, an issuer never added, not a serial */
	assert_int_equal(ocsp_cache_needs(fx->cache, fx->gen_b, "0c0c01",
	    V_OCSP_CERTSTATUS_GOOD, -1, 0, fx->now), OCSP_NEED_SHA1);
	assert_int_equal(ocsp_cache_needs(fx->cache, 999, "0c0c01",
	    V_OCSP_CERTSTATUS_GOOD, -1, 0, fx->now), OCSP_NEED_SHA1);
	assert_int_equal(ocsp_cache_needs(fx->cache, fx->gen_a, "xyz",
	    V_OCSP_CERTSTATUS_GOOD, -1, 0, fx->now), 0);
	der = presign(fx, &fx->sign_a, fx->gen_a, "0c0c01", EVP_sha256(),
	    fx->now, &len);
	put(fx, der, len);
	OPENSSL_free(der);
	assert_int_equal(ocsp_cache_needs(fx->cache, fx->gen_a, "0c0c01",
	    V_OCSP_CERTSTATUS_GOOD, -1, 0, fx->now + DAY),
	    OCSP_NEED_SHA1 | OCSP_NEED_SHA256);

	/* Revoked with a reason and a time: the same ones match, a
	 * changed reason (a hold made permanent) does not. */
	cert_revoke(fx, fx->gen_a, "0c0c01", CRL_REASON_CERTIFICATE_HOLD, rev);
	der = presign(fx, &fx->sign_a, fx->gen_a, "0c0c01", NULL, fx->now,
	    &len);
	put(fx, der, len);
	OPENSSL_free(der);
	assert_int_equal(ocsp_cache_needs(fx->cache, fx->gen_a, "0c0c01",
	    V_OCSP_CERTSTATUS_REVOKED, CRL_REASON_CERTIFICATE_HOLD, rev,
	    fx->now), 0);
	assert_int_equal(ocsp_cache_needs(fx->cache, fx->gen_a, "0c0c01",
	    V_OCSP_CERTSTATUS_REVOKED, CRL_REASON_KEY_COMPROMISE, rev,
	    fx->now), OCSP_NEED_SHA1);
	assert_int_equal(ocsp_cache_needs(fx->cache, fx->gen_a, "0c0c01",
	    V_OCSP_CERTSTATUS_REVOKED, CRL_REASON_CERTIFICATE_HOLD, rev + 1,
	    fx->now), OCSP_NEED_SHA1);
	X509_free(l1);
}

/* Random serials cannot grow the cache without bound: past
 * OCSP_UNKNOWN_MAX unknown responses are answered but not kept, and
 * expired ones are dropped. Known certificates are kept regardless. */
static void
test_unknown_cap(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	X509 *l1;
	unsigned char *der;
	char serial[SERIAL_HEX_MAX];
	size_t len, before = ocsp_cache_count(fx->cache);

	for (int i = 0; i < OCSP_UNKNOWN_MAX + 20; i++) {
		snprintf(serial, sizeof(serial), "7e%06x", i);
		assert_int_equal(ocsp_unknown(&fx->sign_a, serial, NULL,
		    fx->now, 0, &der, &len, &e), 0);
		put(fx, der, len);
		OPENSSL_free(der);
	}
	assert_int_equal(ocsp_cache_unknowns(fx->cache), OCSP_UNKNOWN_MAX);
	assert_int_equal(ocsp_cache_count(fx->cache), before +
	    OCSP_UNKNOWN_MAX);
	l1 = leaf_add(fx, fx->gen_a, fx->ca_a, fx->key_a, "0c0c02");
	der = presign(fx, &fx->sign_a, fx->gen_a, "0c0c02", NULL, fx->now,
	    &len);
	put(fx, der, len);
	OPENSSL_free(der);
	assert_int_equal(ocsp_cache_count(fx->cache), before +
	    OCSP_UNKNOWN_MAX + 1);
	/* Not yet expired: nothing dropped; a day on, every unknown. */
	assert_int_equal(ocsp_cache_expire_unknowns(fx->cache, fx->now), 0);
	assert_int_equal(ocsp_cache_expire_unknowns(fx->cache,
	    fx->now + DAY), OCSP_UNKNOWN_MAX);
	assert_int_equal(ocsp_cache_unknowns(fx->cache), 0);
	assert_int_equal(ocsp_cache_count(fx->cache), before + 1);
	X509_free(l1);
}

/* What hsmcad's pre-signing reads from the store: the change log (the
 * trigger of schema 6 records issuance, revocation, hold and unhold),
 * the walk by id in bounded steps, and the responder records. */
struct seen {
	char	serial[8][SERIAL_HEX_MAX];
	int	status[8];
	size_t	n;
};

static int
seen_add(void *arg, const struct store_cert_state *c)
{
	struct seen *s = arg;

	if (s->n < 8) {
		memcpy(s->serial[s->n], c->serial, SERIAL_HEX_MAX);
		s->status[s->n] = (int)c->status;
	}
	s->n++;
	return 0;
}

static void
test_store_changes(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct store_ocsp_responder r, got;
	struct seen s;
	int64_t last = 0, last2, start;
	unsigned char der[] = { 0x30, 0x00 };
	size_t n;
	X509 *l1, *l2;

	assert_int_equal(store_ocsp_changes_last(fx->st, &start, &e), 0);
	l1 = leaf_add(fx, fx->gen_a, fx->ca_a, fx->key_a, "0d0d01");
	l2 = leaf_add(fx, fx->gen_b, fx->ca_b, fx->key_b, "0d0d02");
	cert_revoke(fx, fx->gen_a, "0d0d01", CRL_REASON_CERTIFICATE_HOLD,
	    fx->now);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_ocsp_changes(fx->st, start, 100, seen_add, &s,
	    &last, &n, &e), 0);
	/* issued, issued, held: in that order, with their status now */
	assert_int_equal(n, 3);
	assert_string_equal(s.serial[0], "0d0d01");
	assert_string_equal(s.serial[1], "0d0d02");
	assert_string_equal(s.serial[2], "0d0d01");
	assert_int_equal(s.status[2], STORE_CERT_REVOKED);
	assert_int_equal(s.status[1], STORE_CERT_VALID);
	/* bounded: one at a time, each call going on from the last */
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_ocsp_changes(fx->st, start, 1, seen_add, &s,
	    &last2, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_true(last2 > start && last2 < last);
	/* read: forgotten, and nothing new */
	assert_int_equal(store_ocsp_changes_forget(fx->st, last, &e), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_ocsp_changes(fx->st, 0, 100, seen_add, &s,
	    &last2, &n, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(last2, 0);
	assert_int_equal(store_unhold_cert(fx->st, fx->gen_a, "0d0d01", &e),
	    0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_ocsp_changes(fx->st, last, 100, seen_add, &s,
	    &last2, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(s.status[0], STORE_CERT_VALID);

	/* The walk: every certificate by id, max at a time. */
	memset(&s, 0, sizeof(s));
	last = 0;
	do {
		assert_int_equal(store_ocsp_walk(fx->st, last, 1, seen_add, &s,
		    &last, &n, &e), 0);
	} while (n == 1);
	assert_true(s.n >= 2);

	/* Responder records: the latest notAfter wins. */
	assert_int_equal(store_ocsp_responder_latest(fx->st, fx->gen_a, &got,
	    &e), HSMCA_ERR_NOT_FOUND);
	memset(&r, 0, sizeof(r));
	r.issuer_id = fx->gen_a;
	snprintf(r.serial, sizeof(r.serial), "0e0e01");
	r.key_uri = (char *)"pkcs11:token=t;object=ocsp-gen1";
	r.cert_der = der;
	r.cert_der_len = sizeof(der);
	r.not_after = fx->now + DAY;
	r.created_at = fx->now;
	assert_int_equal(store_ocsp_responder_add(fx->st, &r, &e), 0);
	snprintf(r.serial, sizeof(r.serial), "0e0e02");
	r.not_after = fx->now + 2 * DAY;
	assert_int_equal(store_ocsp_responder_add(fx->st, &r, &e), 0);
	assert_int_not_equal(store_ocsp_responder_add(fx->st, &r, &e), 0);
	assert_int_equal(store_ocsp_responder_latest(fx->st, fx->gen_a, &got,
	    &e), 0);
	assert_string_equal(got.serial, "0e0e02");
	assert_string_equal(got.key_uri, r.key_uri);
	assert_int_equal(got.cert_der_len, sizeof(der));
	assert_int_equal(got.not_after, fx->now + 2 * DAY);
	store_ocsp_responder_free_fields(&got);
	X509_free(l1);
	X509_free(l2);
}

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_responder_cert),
		T(test_presign_good),
		T(test_presign_revoked),
		T(test_unknown_and_errors),
		T(test_validity_bounds),
		T(test_cache_answer),
		T(test_cache_replace),
		T(test_hold_lifted),
		T(test_malformed),
		T(test_client_round_trip),
		T(test_concurrent),
		T(test_cache_needs),
		T(test_unknown_cap),
		T(test_store_changes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
