/* test_crl.c: CRLs built from a real store and signed with a software
 * key (crl_build_signer; crl_build adds only the HSM key, which the
 * integration tests cover). Every CRL is parsed back and checked as a
 * relying party would. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sqlite3.h>

#include "hsmca/crl.h"
#include "hsmca/store.h"
#include "hsmca/util.h"
#include "testutil.h"

#define T0	((time_t)1767225600)	/* 2026-01-01T00:00:00Z */
#define DAY	((time_t)86400)

struct fixture {
	char		*dir;
	char		 path[512];
	struct store	*st;
	EVP_PKEY	*key;
	X509		*ca;
	int64_t		 gen;
	struct crl_signer signer;
};

static int64_t
gen_add(struct store *st, X509 *x, const char *cn)
{
	struct store_generation g;
	struct hsmca_err e = { 0 };
	unsigned char *der = NULL;
	int len;

	memset(&g, 0, sizeof(g));
	g.kind = STORE_GEN_ISSUING;
	g.status = STORE_GEN_ACTIVE;
	g.subject = (char *)cn;
	g.not_before = T0;
	g.not_after = T0 + 730 * DAY;
	assert_int_equal(util_cert_sha1(x, g.sha1), 0);
	assert_int_equal(util_cert_sha256(x, g.sha256), 0);
	len = i2d_X509(x, &der);
	assert_true(len > 0);
	g.cert_der = der;
	g.cert_der_len = (size_t)len;
	g.created_at = T0;
	assert_int_equal(store_insert_generation(st, &g, &e), 0);
	OPENSSL_free(der);
	return g.id;
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct hsmca_err e = { 0 };

	assert_non_null(fx);
	fx->dir = tu_tmpdir();
	snprintf(fx->path, sizeof(fx->path), "%s/hsmca.db", fx->dir);
	assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	fx->key = tu_keygen("ec:P-256");
	fx->ca = tu_make_ca(fx->key, "CN=CRL Test CA,O=hsmca tests", T0,
	    T0 + 730 * DAY);
	fx->gen = gen_add(fx->st, fx->ca, "CN=CRL Test CA,O=hsmca tests");
	fx->signer.gen_id = fx->gen;
	fx->signer.cert = fx->ca;
	fx->signer.key = fx->key;
	fx->signer.md = EVP_sha256();
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	store_close(fx->st);
	X509_free(fx->ca);
	EVP_PKEY_free(fx->key);
	tu_rmtree(fx->dir);
	free(fx->dir);
	free(fx);
	return 0;
}

/* A valid certificate (fake DER: the CRL only reads serial and dates). */
static void
cert_add(struct store *st, int64_t gen, const char *serial, time_t not_after)
{
	struct store_cert c;
	struct hsmca_err e = { 0 };
	unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	int64_t id;

	assert_int_equal(store_reserve_serial(st, gen, 0, serial, "device",
	    "test", NULL, T0, &id, &e), 0);
	memset(&c, 0, sizeof(c));
	c.id = id;
	c.subject = (char *)"CN=dev";
	c.not_before = T0;
	c.not_after = not_after;
	c.der = der;
	c.der_len = sizeof(der);
	assert_int_equal(store_complete_cert(st, &c, &e), 0);
}

static void
revoke(struct store *st, int64_t gen, const char *serial, int reason,
    time_t when)
{
	struct hsmca_err e = { 0 };
	int already = -1;

	assert_int_equal(store_revoke_cert(st, gen, serial, reason, when,
	    &already, &e), 0);
	assert_int_equal(already, 0);
}

/* Build, parse back, check what every CRL must carry. */
static X509_CRL *
build(struct fixture *fx, time_t now, int64_t next, struct crl_info *info)
{
	struct hsmca_err e = { 0 };
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	X509_CRL *crl;

	if (crl_build_signer(NULL, fx->st, &fx->signer, now, next, &der, &len,
	    info, &e) != 0)
		fail_msg("crl_build_signer: %s", e.msg);
	p = der;
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	assert_non_null(crl);
	assert_ptr_equal(p, der + len);
	/* The DER is written by hand: it must be exactly what OpenSSL
	 * writes for the CRL it parsed (re-encoded, not its cached copy). */
	{
		unsigned char *re = NULL;
		int relen;

		assert_true(i2d_re_X509_CRL_tbs(crl, NULL) > 0);
		relen = i2d_X509_CRL(crl, &re);
		assert_int_equal(relen, (int)len);
		assert_memory_equal(re, der, len);
		OPENSSL_free(re);
	}
	OPENSSL_free(der);
	assert_int_equal(X509_CRL_get_version(crl), 1);	/* v2 */
	assert_int_equal(X509_CRL_verify(crl, fx->key), 1);
	assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl),
	    X509_get_subject_name(fx->ca)), 0);
	return crl;
}

static int64_t
crl_number(X509_CRL *crl)
{
	ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	int64_t v = -1;

	assert_non_null(n);
	assert_int_equal(ASN1_INTEGER_get_int64(&v, n), 1);
	ASN1_INTEGER_free(n);
	return v;
}

static time_t
asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
	return timegm(&tm);
}

static int
entry_reason(const X509_REVOKED *r)
{
	ASN1_ENUMERATED *v;
	int crit = 0, reason;

	v = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, &crit, NULL);
	if (v == NULL)
		return -1;
	reason = (int)ASN1_ENUMERATED_get(v);
	ASN1_ENUMERATED_free(v);
	assert_int_equal(crit, 0);
	return reason;
}

static void
entry_serial(const X509_REVOKED *r, char hex[SERIAL_HEX_MAX])
{
	assert_int_equal(serial_to_hex(X509_REVOKED_get0_serialNumber(r), hex),
	    0);
}

static void
test_empty(void **state)
{
	struct fixture *fx = *state;
	struct crl_info info;
	X509_CRL *crl;
	AUTHORITY_KEYID *akid;
	const ASN1_OCTET_STRING *ski;
	int crit = -1;

	crl = build(fx, T0 + DAY, 0, &info);
	/* revokedCertificates is left out when empty (RFC 5280 §5.1.2.6). */
	assert_null(X509_CRL_get_REVOKED(crl));
	assert_int_equal(asn1_time(X509_CRL_get0_lastUpdate(crl)), T0 + DAY);
	assert_int_equal(asn1_time(X509_CRL_get0_nextUpdate(crl)),
	    T0 + DAY + 7 * DAY);
	assert_int_equal(crl_number(crl), 1);
	assert_int_equal(info.number, 1);
	assert_int_equal(info.entries, 0);
	assert_int_equal(info.this_update, T0 + DAY);
	assert_int_equal(info.next_update, T0 + 8 * DAY);
	/* AKI: the CA's SKI, not critical. */
	akid = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, &crit,
	    NULL);
	assert_non_null(akid);
	assert_int_equal(crit, 0);
	ski = X509_get0_subject_key_id(fx->ca);
	assert_non_null(ski);
	assert_non_null(akid->keyid);
	assert_int_equal(ASN1_OCTET_STRING_cmp(akid->keyid, ski), 0);
	AUTHORITY_KEYID_free(akid);
	/* Only the two extensions RFC 5280 asks for. */
	assert_int_equal(X509_CRL_get_ext_count(crl), 2);
	X509_CRL_free(crl);
}

static void
test_entries(void **state)
{
	struct fixture *fx = *state;
	struct crl_info info;
	struct hsmca_err e = { 0 };
	X509_CRL *crl;
	X509_REVOKED *r;
	STACK_OF(X509_REVOKED) *revs;
	ASN1_INTEGER *ai;
	int64_t other;
	EVP_PKEY *k2 = tu_keygen("ec:P-256");
	X509 *ca2 = tu_make_ca(k2, "CN=Other CA", T0, T0 + 730 * DAY);
	char hex[SERIAL_HEX_MAX];
	time_t now = T0 + 10 * DAY;

	/* Serials of several lengths: numeric order is not text order. */
	cert_add(fx->st, fx->gen, "ff", T0 + 365 * DAY);
	cert_add(fx->st, fx->gen, "0100", T0 + 365 * DAY);
	cert_add(fx->st, fx->gen, "7f", T0 + 365 * DAY);
	cert_add(fx->st, fx->gen, "0a1b2c", T0 + 365 * DAY);
	cert_add(fx->st, fx->gen, "01", T0 + 365 * DAY);	/* stays valid */
	cert_add(fx->st, fx->gen, "02", T0 + 5 * DAY);		/* expired */
	revoke(fx->st, fx->gen, "ff", CRL_REASON_UNSPECIFIED, T0 + DAY);
	revoke(fx->st, fx->gen, "0100", CRL_REASON_KEY_COMPROMISE, T0 + 2 * DAY);
	revoke(fx->st, fx->gen, "7f", CRL_REASON_CERTIFICATE_HOLD, T0 + 3 * DAY);
	revoke(fx->st, fx->gen, "0a1b2c", CRL_REASON_SUPERSEDED, T0 + 4 * DAY);
	revoke(fx->st, fx->gen, "02", CRL_REASON_KEY_COMPROMISE, T0 + 4 * DAY);
	/* Another generation's revocation is not on this CRL. */
	other = gen_add(fx->st, ca2, "CN=Other CA");
	cert_add(fx->st, other, "03", T0 + 365 * DAY);
	revoke(fx->st, other, "03", CRL_REASON_KEY_COMPROMISE, T0 + DAY);

	crl = build(fx, now, 0, &info);
	revs = X509_CRL_get_REVOKED(crl);
	assert_int_equal(sk_X509_REVOKED_num(revs), 4);
	assert_int_equal(info.entries, 4);
	/* In ascending order, as encoded. */
	entry_serial(sk_X509_REVOKED_value(revs, 0), hex);
	assert_string_equal(hex, "7f");
	entry_serial(sk_X509_REVOKED_value(revs, 1), hex);
	assert_string_equal(hex, "ff");
	entry_serial(sk_X509_REVOKED_value(revs, 2), hex);
	assert_string_equal(hex, "0100");
	entry_serial(sk_X509_REVOKED_value(revs, 3), hex);
	assert_string_equal(hex, "0a1b2c");
	/* Dates and reasons; unspecified has no reasonCode. */
	r = sk_X509_REVOKED_value(revs, 0);
	assert_int_equal(asn1_time(X509_REVOKED_get0_revocationDate(r)),
	    T0 + 3 * DAY);
	assert_int_equal(entry_reason(r), CRL_REASON_CERTIFICATE_HOLD);
	r = sk_X509_REVOKED_value(revs, 1);
	assert_int_equal(entry_reason(r), -1);
	assert_int_equal(X509_REVOKED_get_ext_count(r), 0);
	assert_int_equal(asn1_time(X509_REVOKED_get0_revocationDate(r)),
	    T0 + DAY);
	r = sk_X509_REVOKED_value(revs, 2);
	assert_int_equal(entry_reason(r), CRL_REASON_KEY_COMPROMISE);
	r = sk_X509_REVOKED_value(revs, 3);
	assert_int_equal(entry_reason(r), CRL_REASON_SUPERSEDED);
	/* OpenSSL's own lookup finds a revoked serial, not a valid one. */
	ai = ASN1_INTEGER_new();
	ASN1_INTEGER_set(ai, 0x0100);
	assert_int_equal(X509_CRL_get0_by_serial(crl, &r, ai), 1);
	ASN1_INTEGER_set(ai, 0x01);
	assert_int_equal(X509_CRL_get0_by_serial(crl, &r, ai), 0);
	ASN1_INTEGER_free(ai);
	X509_CRL_free(crl);

	/* Lifting the hold takes it off the next CRL. */
	assert_int_equal(store_unhold_cert(fx->st, fx->gen, "7f", &e), 0);
	crl = build(fx, now, 0, &info);
	assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 3);
	assert_int_equal(crl_number(crl), 2);
	X509_CRL_free(crl);
	X509_free(ca2);
	EVP_PKEY_free(k2);
}

static void
test_number_increases(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct crl_info info;
	X509_CRL *crl;
	int64_t number;
	time_t tu;

	assert_int_equal(store_crl_state(fx->st, fx->gen, &number, &tu, &e), 0);
	assert_int_equal(number, 0);
	for (int64_t i = 1; i <= 3; i++) {
		crl = build(fx, T0 + i * DAY, 0, &info);
		assert_int_equal(crl_number(crl), i);
		X509_CRL_free(crl);
		assert_int_equal(store_crl_state(fx->st, fx->gen, &number,
		    &tu, &e), 0);
		assert_int_equal(number, i);
		assert_int_equal(tu, T0 + i * DAY);
	}
	/* Durable: a new handle continues where the last one stopped. */
	store_close(fx->st);
	assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	crl = build(fx, T0 + 4 * DAY, 0, &info);
	assert_int_equal(crl_number(crl), 4);
	X509_CRL_free(crl);
}

static void
test_next_update_bounds(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct crl_info info;
	unsigned char *der = (unsigned char *)"x";
	size_t len = 1;
	int64_t number;
	time_t tu;
	X509_CRL *crl;

	crl = build(fx, T0, CRL_NEXT_UPDATE_MAX, &info);
	assert_int_equal(asn1_time(X509_CRL_get0_nextUpdate(crl)),
	    T0 + 10 * DAY);
	X509_CRL_free(crl);
	crl = build(fx, T0, 3600, &info);
	assert_int_equal(asn1_time(X509_CRL_get0_nextUpdate(crl)), T0 + 3600);
	X509_CRL_free(crl);

	assert_int_equal(crl_build_signer(NULL, fx->st, &fx->signer, T0,
	    CRL_NEXT_UPDATE_MAX + 1, &der, &len, &info, &e), HSMCA_ERR_ARG);
	assert_null(der);
	assert_int_equal(len, 0);
	assert_non_null(strstr(e.msg, "10 days"));
	assert_int_equal(crl_build_signer(NULL, fx->st, &fx->signer, T0, -1,
	    &der, &len, &info, &e), HSMCA_ERR_ARG);
	/* A refused CRL takes no number. */
	assert_int_equal(store_crl_state(fx->st, fx->gen, &number, &tu, &e), 0);
	assert_int_equal(number, 2);
}

static void
test_wrong_key_not_released(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct crl_signer s = fx->signer;
	unsigned char *der = NULL;
	size_t len = 0;
	EVP_PKEY *other = tu_keygen("ec:P-256");

	s.key = other;
	assert_int_equal(crl_build_signer(NULL, fx->st, &s, T0, 0, &der, &len,
	    NULL, &e), HSMCA_ERR_VERIFY);
	assert_null(der);
	assert_non_null(strstr(e.msg, "does not verify"));
	EVP_PKEY_free(other);
}

static void
test_no_crl_sign(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct crl_signer s = fx->signer;
	unsigned char *der = NULL;
	size_t len = 0;
	X509 *x = X509_dup(fx->ca);
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	int64_t number;
	time_t tu;

	X509_EXTENSION_free(X509_delete_ext(x,
	    X509_get_ext_by_NID(x, NID_key_usage, -1)));
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage,
	    "critical,keyCertSign");
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, fx->key, EVP_sha256()) > 0);
	s.cert = x;
	assert_int_equal(crl_build_signer(NULL, fx->st, &s, T0, 0, &der, &len,
	    NULL, &e), HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "cRLSign"));
	assert_int_equal(store_crl_state(fx->st, fx->gen, &number, &tu, &e), 0);
	assert_int_equal(number, 0);
	X509_free(x);
}

static int
cmp_serial(const void *a, const void *b)
{
	const char *x = a, *y = b;
	size_t lx = strlen(x), ly = strlen(y);

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return strcmp(x, y);
}

/* Many random serials: the CRL is in ascending order without a sort,
 * and OpenSSL finds each of them. */
static void
test_many_in_order(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct crl_info info;
	enum { N = 3000 };
	char (*serials)[SERIAL_HEX_MAX] = calloc(N, SERIAL_HEX_MAX);
	unsigned char raw[16];
	STACK_OF(X509_REVOKED) *revs;
	X509_REVOKED *r;
	X509_CRL *crl;
	char hex[SERIAL_HEX_MAX];
	ASN1_INTEGER *ai;
	const char **list = calloc(N, sizeof(*list));
	size_t revoked, already;

	assert_non_null(serials);
	assert_int_equal(store_begin(fx->st, &e), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(RAND_bytes(raw, sizeof(raw)), 1);
		raw[0] &= 0x7f;
		/* Some short ones, some with a high top bit. */
		if (i % 7 == 0)
			util_hex(raw, 1 + (size_t)(i % 5), serials[i]);
		else
			util_hex(raw, sizeof(raw), serials[i]);
		if (serials[i][0] == '0' && serials[i][1] == '0')
			serials[i][1] = '1';
		if (store_reserve_serial(fx->st, fx->gen, 0, serials[i], NULL,
		    NULL, NULL, T0, NULL, &e) == HSMCA_ERR_EXISTS) {
			i--;
			continue;
		}
		list[i] = serials[i];
	}
	assert_int_equal(store_commit(fx->st, &e), 0);
	/* Complete them without the fsync of each. */
	{
		char sql[256];
		sqlite3 *db;

		assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
		snprintf(sql, sizeof(sql), "UPDATE cert SET status = 'valid',"
		    " der = x'3000', not_after = %lld", (long long)(T0 +
		    365 * DAY));
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL),
		    SQLITE_OK);
		sqlite3_close(db);
	}
	assert_int_equal(store_revoke_serials(fx->st, fx->gen, list, N,
	    CRL_REASON_KEY_COMPROMISE, T0 + DAY, &revoked, &already, &e), 0);
	assert_int_equal(revoked, N);
	assert_int_equal(already, 0);

	crl = build(fx, T0 + 2 * DAY, 0, &info);
	revs = X509_CRL_get_REVOKED(crl);
	assert_int_equal(sk_X509_REVOKED_num(revs), N);
	qsort(serials, N, SERIAL_HEX_MAX, cmp_serial);
	for (int i = 0; i < N; i++) {
		r = sk_X509_REVOKED_value(revs, i);
		entry_serial(r, hex);
		assert_string_equal(hex, serials[i]);
		if (i > 0)
			assert_true(ASN1_INTEGER_cmp(
			    X509_REVOKED_get0_serialNumber(
			    sk_X509_REVOKED_value(revs, i - 1)),
			    X509_REVOKED_get0_serialNumber(r)) < 0);
	}
	for (int i = 0; i < N; i += 97) {
		const X509_REVOKED *found;

		ai = ASN1_INTEGER_dup(X509_REVOKED_get0_serialNumber(
		    sk_X509_REVOKED_value(revs, i)));
		assert_non_null(ai);
		assert_int_equal(X509_CRL_get0_by_serial(crl,
		    (X509_REVOKED **)&found, ai), 1);
		ASN1_INTEGER_free(ai);
	}
	X509_CRL_free(crl);
	free(list);
	free(serials);
}

static void
test_reason_names(void **state)
{
	struct hsmca_err e = { 0 };
	int r = -1;

	(void)state;
	for (int i = 0; i < CRL_REASONS; i++) {
		if (i == 7 || i == CRL_REASON_REMOVE_FROM_CRL)
			continue;
		assert_int_equal(crl_reason_parse(crl_reason_name(i), &r, &e),
		    0);
		assert_int_equal(r, i);
	}
	assert_string_equal(crl_reason_name(CRL_REASON_KEY_COMPROMISE),
	    "keyCompromise");
	assert_string_equal(crl_reason_name(CRL_REASON_CA_COMPROMISE),
	    "cACompromise");
	assert_string_equal(crl_reason_name(7), "unknown");
	assert_string_equal(crl_reason_name(-1), "unknown");
	assert_string_equal(crl_reason_name(CRL_REASONS), "unknown");
	assert_int_equal(crl_reason_parse("KEYCOMPROMISE", &r, &e), 0);
	assert_int_equal(r, 1);
	assert_int_equal(crl_reason_parse("removeFromCRL", &r, &e),
	    HSMCA_ERR_ARG);
	assert_non_null(strstr(e.msg, "--unhold"));
	assert_int_equal(crl_reason_parse("stolen", &r, &e), HSMCA_ERR_ARG);
	assert_non_null(strstr(e.msg, "keyCompromise"));
	assert_int_equal(crl_reason_parse(NULL, &r, &e), HSMCA_ERR_ARG);
}

/* What the hand-written DER must get right beyond the common case: an
 * RSA key (its AlgorithmIdentifier carries NULL parameters), every
 * reason, a revocation after 2049 (GeneralizedTime), serial 0 and
 * serials whose top bit is set. build() compares every byte with
 * OpenSSL's own encoding of what it parsed. */
static void
test_encoding_edges(void **state)
{
	struct fixture *fx = *state;
	struct crl_info info;
	struct crl_signer saved = fx->signer;
	EVP_PKEY *saved_key = fx->key;
	X509 *saved_ca = fx->ca;
	static const char *const serials[] = {
		"00", "80", "ff00", "7fffffffffffffffffffffffffffffffffffffff",
		"8000000000000000000000000000000000000001", "01", "02", "03",
		"04", "05", "06", "09", "0a"
	};
	static const int reasons[] = { 1, 2, 3, 4, 5, 6, 9, 10, 0, 1, 2, 3, 4 };
	const time_t late = (time_t)2556144000;	/* 2051-01-01 */
	EVP_PKEY *rsa = tu_keygen("rsa:2048");
	X509 *ca = tu_make_ca(rsa, "CN=RSA CRL CA", T0, late + 3650 * DAY);
	X509_CRL *crl;
	const X509_ALGOR *alg = NULL;
	const ASN1_OBJECT *obj;
	int ptype = -1, n = (int)(sizeof(serials) / sizeof(serials[0]));

	fx->signer.gen_id = gen_add(fx->st, ca, "CN=RSA CRL CA");
	fx->signer.cert = ca;
	fx->signer.key = rsa;
	fx->key = rsa;
	fx->ca = ca;
	for (int i = 0; i < n; i++) {
		cert_add(fx->st, fx->signer.gen_id, serials[i],
		    late + 3650 * DAY);
		revoke(fx->st, fx->signer.gen_id, serials[i], reasons[i],
		    i % 2 == 0 ? T0 + DAY : late + i);
	}
	crl = build(fx, late + DAY, 0, &info);
	assert_int_equal(info.entries, (size_t)n);
	assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), n);
	X509_CRL_get0_signature(crl, NULL, &alg);
	X509_ALGOR_get0(&obj, &ptype, NULL, alg);
	assert_int_equal(OBJ_obj2nid(obj), NID_sha256WithRSAEncryption);
	assert_int_equal(ptype, V_ASN1_NULL);
	for (int i = 0; i < n; i++) {
		X509_REVOKED *r = sk_X509_REVOKED_value(
		    X509_CRL_get_REVOKED(crl), i);
		const ASN1_TIME *t = X509_REVOKED_get0_revocationDate(r);

		assert_int_equal(ASN1_STRING_type(t), asn1_time(t) >= late ?
		    V_ASN1_GENERALIZEDTIME : V_ASN1_UTCTIME);
	}
	X509_CRL_free(crl);
	fx->signer = saved;
	fx->key = saved_key;
	fx->ca = saved_ca;
	X509_free(ca);
	EVP_PKEY_free(rsa);
}

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_empty),
		T(test_entries),
		T(test_number_increases),
		T(test_next_update_bounds),
		T(test_wrong_key_not_released),
		T(test_no_crl_sign),
		T(test_many_in_order),
		T(test_encoding_edges),
		cmocka_unit_test(test_reason_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
