/* test_profile.c: the built-in profiles applied to real requests, read
 * back with OpenSSL's own getters after signing and re-parsing the DER. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hsmca/csr.h"
#include "hsmca/profile.h"
#include "testutil.h"

#define DAY	86400
#define NOW	((time_t)1767225600)	/* 2026-01-01T00:00:00Z */

struct fixture {
	EVP_PKEY	*ca_key;
	EVP_PKEY	*dev_key;
	X509		*ca;		/* valid NOW - 30d .. NOW + 2y */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->ca_key = tu_keygen("ec:P-256");
	f->dev_key = tu_keygen("ec:P-256");
	f->ca = tu_make_ca(f->ca_key, "CN=Test Device CA,O=Test", NOW - 30 * DAY,
	    NOW + 730 * DAY);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	X509_free(f->ca);
	EVP_PKEY_free(f->ca_key);
	EVP_PKEY_free(f->dev_key);
	free(f);
	return 0;
}

static struct csr *
make_csr(EVP_PKEY *k, const char *subject, const char *san, int ask_ca)
{
	X509_REQ *r = tu_make_req(k, subject, san, ask_ca);
	struct hsmca_err e;
	struct csr *c = NULL;
	unsigned char *der;
	size_t len;

	der = tu_req_der(r, &len);
	if (csr_parse(der, len, &c, &e) != 0)
		fail_msg("csr_parse: %s", e.msg);
	free(der);
	X509_REQ_free(r);
	return c;
}

/* Apply, then finish the certificate as the issuing code would (serial,
 * issuer, key, signature) and return it re-parsed from DER. NULL and
 * *ret set on refusal. */
static X509 *
issue(const struct fixture *f, const struct profile *p, const X509 *ca,
    time_t now, const char *subject, const char *san, int ask_ca, int *ret,
    struct hsmca_err *e)
{
	struct csr *c = make_csr(f->dev_key, subject, san, ask_ca);
	X509 *x = X509_new(), *back;
	unsigned char *der = NULL;
	const unsigned char *pp;
	int n;

	assert_non_null(x);
	err_clear(e);
	*ret = profile_apply(p, c, x, ca, now, e);
	if (*ret != 0) {
		X509_free(x);
		csr_free(c);
		return NULL;
	}
	assert_int_equal(e->code, 0);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 42));
	assert_true(X509_set_issuer_name(x, X509_get_subject_name(ca)));
	assert_true(X509_set_pubkey(x, c->pubkey));
	assert_true(X509_sign(x, f->ca_key, EVP_sha256()) > 0);
	n = i2d_X509(x, &der);
	assert_true(n > 0);
	pp = der;
	back = d2i_X509(NULL, &pp, n);
	assert_non_null(back);
	OPENSSL_free(der);
	X509_free(x);
	csr_free(c);
	return back;
}

static time_t
asn1_epoch(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	assert_true(ASN1_TIME_to_tm(t, &tm));
	return timegm(&tm);
}

static int
ext_critical(const X509 *x, int nid)
{
	int loc = X509_get_ext_by_NID(x, nid, -1);

	assert_true(loc >= 0);
	return X509_EXTENSION_get_critical(X509_get_ext(x, loc));
}

/* basicConstraints as encoded: cA and pathLenConstraint (-1: absent). */
static void
assert_bc(X509 *x, int ca, long pathlen)
{
	BASIC_CONSTRAINTS *bc;
	int crit = -1;

	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	assert_int_equal(bc->ca != 0, ca);
	if (pathlen < 0)
		assert_null(bc->pathlen);
	else {
		assert_non_null(bc->pathlen);
		assert_int_equal(ASN1_INTEGER_get(bc->pathlen), pathlen);
	}
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal((X509_get_extension_flags(x) & EXFLAG_CA) != 0, ca);
}

/* The subject as "sn=value,..." in encoded order (not RFC 2253's
 * reversed order): the profile keeps the CSR's order. */
static void
assert_subject(const X509 *x, const char *want)
{
	const X509_NAME *n = X509_get_subject_name(x);
	char buf[512] = "";
	size_t off = 0;

	for (int i = 0; i < X509_NAME_entry_count(n); i++) {
		const X509_NAME_ENTRY *ne = X509_NAME_get_entry(n, i);
		const ASN1_STRING *v = X509_NAME_ENTRY_get_data(ne);

		off += (size_t)snprintf(buf + off, sizeof(buf) - off,
		    "%s%s=%.*s", i > 0 ? "," : "",
		    OBJ_nid2sn(OBJ_obj2nid(X509_NAME_ENTRY_get_object(ne))),
		    ASN1_STRING_length(v),
		    (const char *)ASN1_STRING_get0_data(v));
	}
	assert_string_equal(buf, want);
}

/* The SAN as "DNS:a,IP:1.2.3.4,URI:u", in certificate order. */
static void
assert_san(const X509 *x, const char *want)
{
	GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL,
	    NULL);
	char buf[512] = "";
	size_t off = 0;

	assert_non_null(g);
	for (int i = 0; i < sk_GENERAL_NAME_num(g); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(g, i);
		const ASN1_STRING *s = NULL;
		const char *label = "?";
		char ip[64] = "";

		switch (gn->type) {
		case GEN_DNS:
			label = "DNS";
			s = gn->d.dNSName;
			break;
		case GEN_URI:
			label = "URI";
			s = gn->d.uniformResourceIdentifier;
			break;
		case GEN_EMAIL:
			label = "email";
			s = gn->d.rfc822Name;
			break;
		case GEN_IPADD:
			label = "IP";
			s = NULL;
			assert_int_equal(ASN1_STRING_length(gn->d.iPAddress), 4);
			{
				const unsigned char *a =
				    ASN1_STRING_get0_data(gn->d.iPAddress);

				snprintf(ip, sizeof(ip), "%u.%u.%u.%u", a[0],
				    a[1], a[2], a[3]);
			}
			break;
		default:
			fail_msg("unexpected SAN type %d", gn->type);
		}
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s:%.*s",
		    i > 0 ? "," : "", label,
		    s != NULL ? ASN1_STRING_length(s) : (int)strlen(ip),
		    s != NULL ? (const char *)ASN1_STRING_get0_data(s) : ip);
	}
	GENERAL_NAMES_free(g);
	assert_string_equal(buf, want);
}

static void
builtin(int idx, struct profile *p, const char *want_name)
{
	profile_builtin(idx, p);
	assert_non_null(p->name);
	assert_string_equal(p->name, want_name);
}

static void
test_device(void **state)
{
	struct fixture *f = *state;
	struct hsmca_err e;
	struct profile p;
	X509 *x;
	int ret;

	builtin(0, &p, "device");
	x = issue(f, &p, f->ca, NOW, "CN=dev-0001,O=Acme,serialNumber=SN123",
	    "DNS:dev-0001.example.com,URI:urn:acme:dev:0001", 0, &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	assert_subject(x, "CN=dev-0001,O=Acme,serialNumber=SN123");
	assert_san(x, "DNS:dev-0001.example.com,URI:urn:acme:dev:0001");
	assert_false(ext_critical(x, NID_subject_alt_name));
	assert_int_equal(X509_get_key_usage(x),
	    KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT);
	assert_true(ext_critical(x, NID_key_usage));
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_CLIENT);
	assert_false(ext_critical(x, NID_ext_key_usage));
	assert_int_equal(X509_check_ca(x), 0);
	assert_bc(x, 0, -1);
	assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0), 1);
	assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 0);
	assert_int_equal(asn1_epoch(X509_get0_notBefore(x)), NOW - 300);
	assert_int_equal(asn1_epoch(X509_get0_notAfter(x)), NOW + 365 * DAY);
	/* No serial, issuer key identifiers or CRL DP: the issuer adds them. */
	assert_int_equal(X509_get_ext_by_NID(x, NID_authority_key_identifier,
	    -1), -1);
	assert_int_equal(X509_get_ext_by_NID(x, NID_crl_distribution_points,
	    -1), -1);
	assert_int_equal(X509_get_ext_count(x), 4);
	X509_free(x);

	/* A device without SAN is fine: require-san is off. */
	x = issue(f, &p, f->ca, NOW, "CN=dev-0002", NULL, 0, &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	assert_int_equal(X509_get_ext_by_NID(x, NID_subject_alt_name, -1), -1);
	assert_int_equal(X509_get_ext_count(x), 3);
	X509_free(x);
	profile_free_fields(&p);
}

static void
test_server(void **state)
{
	struct fixture *f = *state;
	struct hsmca_err e;
	struct profile p;
	X509 *x;
	int ret;

	builtin(1, &p, "server");
	x = issue(f, &p, f->ca, NOW, "CN=hub.local,O=Acme",
	    "DNS:hub.local,IP:10.0.0.1", 0, &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	assert_subject(x, "CN=hub.local,O=Acme");
	assert_san(x, "DNS:hub.local,IP:10.0.0.1");
	assert_int_equal(X509_get_key_usage(x),
	    KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
	assert_int_equal(X509_get_extended_key_usage(x),
	    XKU_SSL_SERVER | XKU_SSL_CLIENT);
	assert_int_equal(X509_check_ca(x), 0);
	assert_bc(x, 0, -1);
	assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
	assert_int_equal(X509_check_host(x, "hub.local", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(x, "10.0.0.1", 0), 1);
	X509_free(x);

	/* A server certificate is matched on its SAN: none, refused. */
	x = issue(f, &p, f->ca, NOW, "CN=hub.local", NULL, 0, &ret, &e);
	assert_null(x);
	assert_int_equal(ret, HSMCA_ERR_POLICY);
	assert_string_equal(e.msg,
	    "CSR has no subjectAltName; profile server requires one");

	/* Subject may be empty when the SAN names the host: then the SAN
	 * is critical (RFC 5280 4.2.1.6). */
	x = issue(f, &p, f->ca, NOW, NULL, "DNS:gw.example", 0, &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)), 0);
	assert_true(ext_critical(x, NID_subject_alt_name));
	X509_free(x);
	profile_free_fields(&p);
}

static void
test_edge_ca(void **state)
{
	struct fixture *f = *state;
	struct hsmca_err e;
	struct profile p;
	X509 *x;
	int ret;

	builtin(2, &p, "edge-ca");
	/* CA:TRUE asked for and granted: the profile decides. */
	x = issue(f, &p, f->ca, NOW, "CN=edge-7 Device CA,O=Acme", NULL, 1,
	    &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	assert_subject(x, "CN=edge-7 Device CA,O=Acme");
	assert_int_equal(X509_check_ca(x), 1);
	assert_int_equal(X509_get_pathlen(x), 0);
	assert_bc(x, 1, 0);
	assert_int_equal(X509_get_key_usage(x),
	    KU_KEY_CERT_SIGN | KU_CRL_SIGN | KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_ext_by_NID(x, NID_ext_key_usage, -1), -1);
	assert_int_equal(X509_get_ext_by_NID(x, NID_subject_alt_name, -1), -1);
	assert_int_equal(asn1_epoch(X509_get0_notAfter(x)), NOW + 90 * DAY);
	X509_free(x);

	/* Also a CA when the CSR did not ask. */
	x = issue(f, &p, f->ca, NOW, "CN=edge-8", NULL, 0, &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	assert_int_equal(X509_check_ca(x), 1);
	assert_bc(x, 1, 0);
	X509_free(x);

	/* No SAN types allowed. */
	x = issue(f, &p, f->ca, NOW, "CN=edge-9", "DNS:edge-9", 1, &ret, &e);
	assert_null(x);
	assert_int_equal(ret, HSMCA_ERR_POLICY);
	assert_string_equal(e.msg, "SAN type DNS not allowed by profile edge-ca");

	/* A CA profile without a path length constraint. */
	p.pathlen = -1;
	x = issue(f, &p, f->ca, NOW, "CN=edge-10", NULL, 1, &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	assert_int_equal(X509_check_ca(x), 1);
	assert_int_equal(X509_get_pathlen(x), -1);
	assert_bc(x, 1, -1);
	X509_free(x);
	profile_free_fields(&p);
}

/* The appliance's own names, kept out of everything below a CA profile's
 * certificates: DNS names and addresses (with an all-ones mask), other
 * name types skipped; a leaf profile carries no constraint. */
static void
test_excluded_names(void **state)
{
	struct fixture *f = *state;
	struct hsmca_err e;
	struct profile p, q, leaf;
	GENERAL_NAMES *own;
	NAME_CONSTRAINTS *nc;
	GENERAL_SUBTREE *t;
	const unsigned char *ip;
	static const unsigned char want_ip[8] = {
		10, 0, 0, 5, 0xff, 0xff, 0xff, 0xff
	};
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	X509 *x;
	int ret, crit;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, NULL, NULL, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name,
	    "DNS:ca.example.com,IP:10.0.0.5,URI:https://ca.example.com/");
	assert_non_null(ext);
	own = X509V3_EXT_d2i(ext);
	assert_non_null(own);
	X509_EXTENSION_free(ext);

	builtin(2, &p, "edge-ca");
	assert_int_equal(profile_exclude_names(&p, own, &e), 0);
	assert_int_equal(profile_copy(&q, &p), 0);
	assert_ptr_not_equal(q.excluded, p.excluded);
	profile_free_fields(&p);
	x = issue(f, &q, f->ca, NOW, "CN=edge-11", NULL, 1, &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	nc = X509_get_ext_d2i(x, NID_name_constraints, &crit, NULL);
	assert_non_null(nc);
	assert_int_equal(crit, 1);
	assert_null(nc->permittedSubtrees);
	assert_int_equal(sk_GENERAL_SUBTREE_num(nc->excludedSubtrees), 2);
	t = sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, 0);
	assert_int_equal(t->base->type, GEN_DNS);
	assert_string_equal((const char *)ASN1_STRING_get0_data(
	    t->base->d.dNSName), "ca.example.com");
	t = sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, 1);
	assert_int_equal(t->base->type, GEN_IPADD);
	assert_int_equal(ASN1_STRING_length(t->base->d.iPAddress), 8);
	ip = ASN1_STRING_get0_data(t->base->d.iPAddress);
	assert_memory_equal(ip, want_ip, sizeof(want_ip));
	NAME_CONSTRAINTS_free(nc);
	X509_free(x);

	/* Names that could not be read: no CA certificate without them. */
	snprintf(q.excluded_err, sizeof(q.excluded_err),
	    "tls-cert /x.pem holds no certificate");
	x = issue(f, &q, f->ca, NOW, "CN=edge-12", NULL, 1, &ret, &e);
	assert_null(x);
	assert_int_equal(ret, HSMCA_ERR_CONFIG);
	assert_non_null(strstr(e.msg, "/x.pem holds no certificate"));
	profile_free_fields(&q);

	builtin(0, &leaf, "device");
	assert_int_equal(profile_exclude_names(&leaf, own, &e), 0);
	x = issue(f, &leaf, f->ca, NOW, "CN=dev-11", NULL, 0, &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	assert_int_equal(X509_get_ext_by_NID(x, NID_name_constraints, -1),
	    -1);
	X509_free(x);
	profile_free_fields(&leaf);
	GENERAL_NAMES_free(own);
}

static void
test_ca_request_refused(void **state)
{
	struct fixture *f = *state;
	struct hsmca_err e;
	struct profile p;
	struct csr *c;
	X509 *x;
	int ret;

	builtin(0, &p, "device");
	x = issue(f, &p, f->ca, NOW, "CN=dev-1", NULL, 1, &ret, &e);
	assert_null(x);
	assert_int_equal(ret, HSMCA_ERR_POLICY);
	assert_string_equal(e.msg, "CSR asks for CA:TRUE; profile device "
	    "issues end-entity certificates only");

	/* profile_check_csr refuses the same without building anything. */
	c = make_csr(f->dev_key, "CN=dev-1", NULL, 1);
	assert_int_equal(profile_check_csr(&p, c, &e), HSMCA_ERR_POLICY);
	assert_non_null(strstr(e.msg, "CA:TRUE"));
	csr_free(c);
	c = make_csr(f->dev_key, "CN=dev-1", NULL, 0);
	assert_int_equal(profile_check_csr(&p, c, &e), 0);
	csr_free(c);
	profile_free_fields(&p);
}

static void
test_names_refused(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char	*subject, *san, *msg;
	} cases[] = {
		{ "CN=dev-1", "IP:192.0.2.1",
		    "SAN type IP not allowed by profile device" },
		{ "CN=dev-1", "DNS:ok.example,email:a@example.com",
		    "SAN type email not allowed by profile device" },
		{ "CN=dev-1,C=DE", NULL,
		    "subject attribute C not allowed by profile device" },
		{ "CN=dev-1,emailAddress=a@example.com", NULL,
		    "subject attribute emailAddress not allowed by profile "
		    "device" },
		{ "O=Acme", "DNS:dev-1.example",
		    "CSR subject has no CN; profile device requires one" },
		{ NULL, "URI:urn:dev:1",
		    "CSR subject has no CN; profile device requires one" },
		{ "CN=a,CN=b", NULL,
		    "CSR subject has 2 CN attributes; profile device allows "
		    "one" },
	};
	struct hsmca_err e;
	struct profile p;
	X509 *x;
	int ret;

	builtin(0, &p, "device");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		x = issue(f, &p, f->ca, NOW, cases[i].subject, cases[i].san, 0,
		    &ret, &e);
		if (x != NULL)
			fail_msg("case %zu accepted", i);
		assert_int_equal(ret, HSMCA_ERR_POLICY);
		assert_string_equal(e.msg, cases[i].msg);
	}

	/* Neither subject nor SAN: nothing to name. */
	p.require_cn = 0;
	x = issue(f, &p, f->ca, NOW, NULL, NULL, 0, &ret, &e);
	assert_null(x);
	assert_int_equal(ret, HSMCA_ERR_POLICY);
	assert_non_null(strstr(e.msg, "neither a subject nor a subjectAltName"));
	profile_free_fields(&p);
}

static void
test_validity(void **state)
{
	struct fixture *f = *state;
	struct hsmca_err e;
	struct profile p;
	X509 *ca, *x;
	int ret;

	builtin(0, &p, "device");

	/* The issuer expires in 30 days: the certificate with it. */
	ca = tu_make_ca(f->ca_key, "CN=Old CA", NOW - 700 * DAY, NOW + 30 * DAY);
	x = issue(f, &p, ca, NOW, "CN=dev-1", NULL, 0, &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	assert_int_equal(asn1_epoch(X509_get0_notAfter(x)), NOW + 30 * DAY);
	assert_int_equal(asn1_epoch(X509_get0_notBefore(x)), NOW - 300);
	X509_free(x);
	X509_free(ca);

	/* The issuer began a minute ago: no backdating before it. */
	ca = tu_make_ca(f->ca_key, "CN=New CA", NOW - 60, NOW + 700 * DAY);
	x = issue(f, &p, ca, NOW, "CN=dev-1", NULL, 0, &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	assert_int_equal(asn1_epoch(X509_get0_notBefore(x)), NOW - 60);
	assert_int_equal(asn1_epoch(X509_get0_notAfter(x)), NOW + 365 * DAY);
	X509_free(x);
	X509_free(ca);

	/* Not yet valid. */
	ca = tu_make_ca(f->ca_key, "CN=Future CA", NOW + DAY, NOW + 700 * DAY);
	x = issue(f, &p, ca, NOW, "CN=dev-1", NULL, 0, &ret, &e);
	assert_null(x);
	assert_int_equal(ret, HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "not valid before 2026-01-02T00:00:00Z"));
	X509_free(ca);

	/* Expired. */
	ca = tu_make_ca(f->ca_key, "CN=Expired CA", NOW - 700 * DAY, NOW - 1);
	x = issue(f, &p, ca, NOW, "CN=dev-1", NULL, 0, &ret, &e);
	assert_null(x);
	assert_int_equal(ret, HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "expired at 2025-12-31T23:59:59Z"));
	X509_free(ca);

	/* Dates past 2049 are written as GeneralizedTime and still clamp. */
	ca = tu_make_ca(f->ca_key, "CN=Long CA", NOW - DAY,
	    (time_t)2556144000);	/* 2051-01-01 */
	p.validity = 40LL * 365 * DAY;
	x = issue(f, &p, ca, NOW, "CN=dev-1", NULL, 0, &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	assert_int_equal(asn1_epoch(X509_get0_notAfter(x)), (time_t)2556144000);
	assert_int_equal(ASN1_STRING_type(X509_get0_notAfter(x)),
	    V_ASN1_GENERALIZEDTIME);
	X509_free(x);
	X509_free(ca);
	profile_free_fields(&p);
}

/* A custom profile as a config section would make it. */
static void
test_custom(void **state)
{
	struct fixture *f = *state;
	struct hsmca_err e;
	struct profile p, q;
	X509 *x;
	int ret;

	memset(&p, 0, sizeof(p));
	p.name = strdup("signer");
	assert_non_null(p.name);
	p.validity = DAY;
	p.backdate = 0;
	p.key_usage = PROFILE_KU_DIGITAL_SIGNATURE |
	    PROFILE_KU_NON_REPUDIATION;
	p.ext_key_usage = PROFILE_EKU_CODE_SIGNING | PROFILE_EKU_TIME_STAMPING |
	    PROFILE_EKU_EMAIL_PROTECTION | PROFILE_EKU_OCSP_SIGNING;
	p.pathlen = -1;
	p.subject_allowed = PROFILE_SUBJ_CN | PROFILE_SUBJ_C | PROFILE_SUBJ_ST |
	    PROFILE_SUBJ_L;
	p.san_allowed = PROFILE_SAN_EMAIL;
	assert_int_equal(profile_copy(&q, &p), 0);
	assert_string_equal(q.name, "signer");
	assert_ptr_not_equal(q.name, p.name);
	x = issue(f, &q, f->ca, NOW, "C=DE,ST=Bayern,L=Munich,CN=Signer",
	    "email:sign@example.com", 0, &ret, &e);
	if (x == NULL)
		fail_msg("refused: %s", e.msg);
	assert_subject(x, "C=DE,ST=Bayern,L=Munich,CN=Signer");
	assert_san(x, "email:sign@example.com");
	assert_int_equal(X509_get_key_usage(x),
	    KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_CODE_SIGN |
	    XKU_TIMESTAMP | XKU_SMIME | XKU_OCSP_SIGN);
	assert_int_equal(asn1_epoch(X509_get0_notBefore(x)), NOW);
	assert_int_equal(asn1_epoch(X509_get0_notAfter(x)), NOW + DAY);
	X509_free(x);
	profile_free_fields(&q);
	profile_free_fields(&p);
	assert_null(p.name);
}

static void
test_tables(void **state)
{
	static const struct {
		int (*parse)(const char *, unsigned int *);
		char *(*format)(unsigned int, char *, size_t);
		const char *all;
		unsigned int mask;
	} t[] = {
		{ profile_ku_parse, profile_ku_format,
		    "digitalSignature, nonRepudiation, keyEncipherment, "
		    "dataEncipherment, keyAgreement, keyCertSign, cRLSign",
		    0x00fe },
		{ profile_eku_parse, profile_eku_format,
		    "serverAuth, clientAuth, emailProtection, codeSigning, "
		    "OCSPSigning, timeStamping", 0x006f },
		{ profile_san_parse, profile_san_format,
		    "dns, ip, uri, email", 0x0f },
		{ profile_subj_parse, profile_subj_format,
		    "CN, O, OU, C, ST, L, serialNumber", 0x7f },
	};
	char buf[256], one[64], *dup, *tok, *save;
	unsigned int bit, mask;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_non_null(t[i].format(t[i].mask, buf, sizeof(buf)));
		assert_string_equal(buf, t[i].all);
		/* Each name parses to one bit that formats back to it. */
		mask = 0;
		dup = strdup(t[i].all);
		assert_non_null(dup);
		save = NULL;
		for (tok = strtok_r(dup, ", ", &save); tok != NULL;
		    tok = strtok_r(NULL, ", ", &save)) {
			assert_int_equal(t[i].parse(tok, &bit), 0);
			assert_int_equal(bit & (bit - 1), 0);
			assert_int_equal(mask & bit, 0);
			mask |= bit;
			assert_non_null(t[i].format(bit, one, sizeof(one)));
			assert_string_equal(one, tok);
		}
		free(dup);
		assert_int_equal(mask, t[i].mask);
		assert_non_null(t[i].format(0, buf, sizeof(buf)));
		assert_string_equal(buf, "");
		/* Too small a buffer: NULL, never a truncated list. */
		assert_null(t[i].format(t[i].mask, buf, 8));
		assert_string_equal(buf, "");
		assert_int_equal(t[i].parse("nosuch", &bit), -1);
		assert_int_equal(t[i].parse("", &bit), -1);
	}
	/* Case-sensitive, canonical names only. */
	assert_int_equal(profile_ku_parse("DigitalSignature", &bit), -1);
	assert_int_equal(profile_eku_parse("ocspSigning", &bit), -1);
	assert_int_equal(profile_san_parse("DNS", &bit), -1);
	assert_int_equal(profile_subj_parse("cn", &bit), -1);
	assert_int_equal(profile_ku_parse("keyCertSign", &bit), 0);
	assert_int_equal(bit, KU_KEY_CERT_SIGN);
	assert_int_equal(profile_eku_parse("timeStamping", &bit), 0);
	assert_int_equal(bit, XKU_TIMESTAMP);
	/* Order is the table's, not the mask's. */
	assert_non_null(profile_ku_format(PROFILE_KU_CRL_SIGN |
	    PROFILE_KU_DIGITAL_SIGNATURE, buf, sizeof(buf)));
	assert_string_equal(buf, "digitalSignature, cRLSign");
}

static void
test_builtins(void **state)
{
	static const char *const names[PROFILE_BUILTIN_COUNT] = {
		"device", "server", "edge-ca",
	};
	struct profile p;

	(void)state;
	for (int i = 0; i < PROFILE_BUILTIN_COUNT; i++) {
		builtin(i, &p, names[i]);
		assert_true(p.validity > 0);
		assert_int_equal(p.backdate, 300);
		assert_int_not_equal(p.key_usage, 0);
		/* Only CA profiles may sign certificates. */
		assert_int_equal(!!(p.key_usage & PROFILE_KU_KEY_CERT_SIGN),
		    p.is_ca);
		profile_free_fields(&p);
	}
	profile_builtin(PROFILE_BUILTIN_COUNT, &p);
	assert_null(p.name);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_device),
		cmocka_unit_test(test_server),
		cmocka_unit_test(test_edge_ca),
		cmocka_unit_test(test_ca_request_refused),
		cmocka_unit_test(test_names_refused),
		cmocka_unit_test(test_validity),
		cmocka_unit_test(test_excluded_names),
		cmocka_unit_test(test_custom),
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_builtins),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
