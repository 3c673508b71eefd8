/* fuzz_csr.c: PKCS#10 requests as hsmca takes them (lib/csr.c: PEM, DER
 * and EST's base64), then the policy an accepted request meets: every
 * built-in profile's checks, the certificate it would build, and the
 * pre-sign lint of that certificate.
 *
 * A mutated request rarely keeps a valid signature, so an input that
 * decodes as a request is also re-signed with the fixture's key and
 * run again: the subject, SAN and extension policy sees the mutations
 * that the signature check would otherwise stop.
 *
 * Invariants: a refusal has a one-line reason and no request; an
 * accepted request's fingerprint is the SHA-256 of its DER;
 * profile_check_csr and profile_apply agree; a certificate built from
 * an accepted request passes lint_presign. */
#include "config.h"

#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "hsmca/csr.h"
#include "hsmca/issue.h"
#include "hsmca/lint.h"
#include "hsmca/profile.h"

#include "fuzz.h"
#include "../unit/testutil.h"

static struct {
	EVP_PKEY	*ca_key;
	X509		*ca;
	EVP_PKEY	*req_key;	/* re-signs mutated requests */
	struct profile	 profiles[PROFILE_BUILTIN_COUNT];
	time_t		 now;
} fx;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fx.now = time(NULL);
	fx.ca_key = tu_keygen("ec:P-256");
	fx.req_key = tu_keygen("ec:P-256");
	fx.ca = tu_make_ca(fx.ca_key, "CN=Fuzz CA,O=hsmca", fx.now - 86400,
	    fx.now + 20 * 365 * 86400);
	for (int i = 0; i < PROFILE_BUILTIN_COUNT; i++)
		profile_builtin(i, &fx.profiles[i]);
	return 0;
}

/* What issue_certificate builds before issue_finish, then the lint. */
static void
policy(const struct csr *c)
{
	struct hsmca_err e, e2;
	GENERAL_NAMES *san;
	X509 *tbs;
	int chk, app;

	(void)csr_requests_ca(c);
	if ((san = csr_get_san(c)) != NULL)
		GENERAL_NAMES_free(san);
	for (int i = 0; i < PROFILE_BUILTIN_COUNT; i++) {
		const struct profile *p = &fx.profiles[i];

		err_clear(&e);
		err_clear(&e2);
		chk = profile_check_csr(p, c, &e);
		if (chk != 0)
			FUZZ_CHECK_REASON(e.msg);
		FUZZ_CHECK((tbs = X509_new()) != NULL);
		FUZZ_CHECK(X509_set_version(tbs, X509_VERSION_3));
		FUZZ_CHECK(ASN1_INTEGER_set(X509_get_serialNumber(tbs),
		    0x5eed));
		FUZZ_CHECK(X509_set_issuer_name(tbs,
		    X509_get_subject_name(fx.ca)));
		FUZZ_CHECK(X509_set_pubkey(tbs, c->pubkey));
		app = profile_apply(p, c, tbs, fx.ca, fx.now, &e2);
		/* "Same checks as profile_apply" (profile.h). */
		FUZZ_CHECK((chk == 0) == (app == 0));
		if (app == 0) {
			FUZZ_CHECK(issue_add_identifiers(tbs, fx.ca,
			    "http://ca.example/crl/1.crl",
			    "http://ca.example/ocsp", &e2) == 0);
			if (lint_presign(tbs, fx.ca, p, &e2) != 0) {
				fprintf(stderr, "profile %s: %s\n", p->name,
				    e2.msg);
				FUZZ_CHECK(!"lint refuses what the profile built");
			}
		} else
			FUZZ_CHECK_REASON(e2.msg);
		X509_free(tbs);
	}
	ERR_clear_error();
}

static void
parse_one(int (*parse)(const void *, size_t, struct csr **,
    struct hsmca_err *), const uint8_t *data, size_t len)
{
	struct hsmca_err e;
	struct csr *c = NULL;
	unsigned char *der = NULL, md[32];
	int n, ret;

	err_clear(&e);
	ret = parse(data, len, &c, &e);
	if (ret != 0) {
		FUZZ_CHECK(ret < 0 && c == NULL);
		FUZZ_CHECK_REASON(e.msg);
		ERR_clear_error();
		return;
	}
	FUZZ_CHECK(c != NULL && c->req != NULL && c->pubkey != NULL);
	FUZZ_CHECK((n = i2d_X509_REQ(c->req, &der)) > 0);
	FUZZ_CHECK(EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL));
	FUZZ_CHECK(memcmp(md, c->fingerprint, sizeof(md)) == 0);
	OPENSSL_free(der);
	policy(c);
	csr_free(c);
}

/* The request's body re-signed by fx.req_key (its key replaced). */
static void
resign(const uint8_t *data, size_t len)
{
	const unsigned char *p = data;
	unsigned char *der = NULL;
	X509_REQ *req;
	int n;

	if ((req = d2i_X509_REQ(NULL, &p, (long)len)) == NULL) {
		ERR_clear_error();
		return;
	}
	if (X509_REQ_set_pubkey(req, fx.req_key) &&
	    X509_REQ_sign(req, fx.req_key, EVP_sha256()) > 0 &&
	    (n = i2d_X509_REQ(req, &der)) > 0)
		parse_one(csr_parse, der, (size_t)n);
	OPENSSL_free(der);
	X509_REQ_free(req);
	ERR_clear_error();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	parse_one(csr_parse, data, len);
	parse_one(csr_parse_base64, data, len);
	resign(data, len);
	return 0;
}
