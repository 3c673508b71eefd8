/* pop.c: proof-of-possession (verification) certificates.
 *
 *   code checked -> generation checked -> throwaway key -> TBS ->
 *   pre-sign lint -> serial reserved -> HSM signs -> verify-after-sign ->
 *   record -> release
 *
 * The subject key is generated in software and freed at once: the
 * certificate only proves the CA key signed CN=code, nobody ever uses it. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "hsmca/lint.h"
#include "hsmca/pop.h"
#include "hsmca/serial.h"
#include "hsmca/util.h"

#define POP_BACKDATE		300	/* seconds of clock skew tolerated */

int
pop_check_code(const char *code, struct hsmca_err *e)
{
	size_t len, i;
	unsigned char ch;

	if (code == NULL || *code == '\0')
		return err_set(e, HSMCA_ERR_ARG, "the verification code is "
		    "empty");
	len = strlen(code);
	if (len > POP_CODE_MAX)
		return err_set(e, HSMCA_ERR_ARG, "the verification code is "
		    "%zu characters long; at most %d", len, POP_CODE_MAX);
	for (i = 0; i < len; i++) {
		ch = (unsigned char)code[i];
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-')
			continue;
		if (ch > 0x20 && ch < 0x7f)
			return err_set(e, HSMCA_ERR_ARG, "the verification "
			    "code has '%c' at position %zu; only letters, "
			    "digits and '-' are allowed", ch, i + 1);
		return err_set(e, HSMCA_ERR_ARG, "the verification code has "
		    "byte 0x%02x at position %zu; only letters, digits and "
		    "'-' are allowed", ch, i + 1);
	}
	return 0;
}

/* The generation may sign now: it has a certificate, is active or
 * inactive (registering an inactive one before it takes over is the
 * point), and the certificate is inside its validity. */
static int
pop_check_generation(const struct store_generation *g, time_t now,
    struct hsmca_err *e)
{
	enum store_gen_status s = ca_effective_status(g, now);

	if (s != STORE_GEN_ACTIVE && s != STORE_GEN_INACTIVE)
		return err_set(e, HSMCA_ERR_CA_STATE, "CA generation %lld is "
		    "%s: no proof of possession is issued under it%s",
		    (long long)g->id, store_gen_status_name(s),
		    s == STORE_GEN_PENDING ? " until its certificate is "
		    "imported (`hsmca ca import-cert`)" : "");
	if (now < g->not_before)
		return err_set(e, HSMCA_ERR_CA_STATE, "CA generation %lld is "
		    "not valid yet; check the clock", (long long)g->id);
	return 0;
}

/* The TBS for CN=code under iss, with a fresh software key. */
static int
pop_build(const struct issuer *iss, const struct pop_request *req,
    int64_t validity, X509 **out, struct hsmca_err *e)
{
	X509 *tbs = NULL;
	X509_NAME *name = NULL;
	EVP_PKEY *key = NULL;
	X509V3_CTX v3;
	time_t inb, ina, nb, na;
	int ret = HSMCA_ERR_INTERNAL;

	*out = NULL;
	inb = issue_asn1_time(X509_get0_notBefore(iss->cert));
	ina = issue_asn1_time(X509_get0_notAfter(iss->cert));
	if (inb == (time_t)-1 || ina == (time_t)-1 || req->now < inb ||
	    req->now >= ina)
		return err_set(e, HSMCA_ERR_CA_STATE, "CA generation %lld is "
		    "not valid now", (long long)iss->gen_id);
	/* Inside the issuer's validity, whatever was asked. */
	nb = req->now - POP_BACKDATE;
	if (nb < inb)
		nb = inb;
	na = validity >= (int64_t)(ina - req->now) ? ina :
	    req->now + (time_t)validity;

	if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL) {
		err_set_ssl(e, ret, "cannot generate the throwaway key");
		goto out;
	}
	if ((name = X509_NAME_new()) == NULL ||
	    !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
	    (const unsigned char *)req->code, -1, -1, 0) ||
	    (tbs = X509_new()) == NULL ||
	    !X509_set_version(tbs, X509_VERSION_3) ||
	    !X509_set_subject_name(tbs, name) ||
	    !X509_set_issuer_name(tbs, X509_get_subject_name(iss->cert)) ||
	    X509_time_adj_ex(X509_getm_notBefore(tbs), 0, 0, &nb) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(tbs), 0, 0, &na) == NULL ||
	    !X509_set_pubkey(tbs, key)) {
		err_set_ssl(e, ret, "cannot build the verification certificate");
		goto out;
	}
	X509V3_set_ctx(&v3, NULL, tbs, NULL, NULL, 0);
	if ((ret = issue_add_ext(tbs, &v3, NID_basic_constraints,
	    "critical,CA:FALSE", e)) != 0 ||
	    (ret = issue_add_ext(tbs, &v3, NID_key_usage,
	    "critical,digitalSignature", e)) != 0)
		goto out;
	/* No CRL or OCSP pointer: it lives two days and is only looked at
	 * once, by the service that asked for it. */
	if ((ret = issue_add_identifiers(tbs, iss->cert, NULL, NULL, e)) != 0)
		goto out;
	*out = tbs;
	tbs = NULL;
	ret = 0;
out:
	X509_NAME_free(name);
	EVP_PKEY_free(key);
	X509_free(tbs);
	return ret;
}

int
pop_issue(struct ca_ctx *c, const struct store_generation *g,
    const struct pop_request *req, struct issue_result *out,
    struct hsmca_err *e)
{
	/* What lint holds the certificate to: an end entity with
	 * digitalSignature only, no extendedKeyUsage. */
	struct profile prof = {
		.name = (char *)(uintptr_t)POP_PROFILE,
		.key_usage = PROFILE_KU_DIGITAL_SIGNATURE,
		.ext_key_usage = 0,
		.is_ca = 0,
		.pathlen = -1,
	};
	struct issuer *iss = NULL;
	X509 *tbs = NULL;
	int64_t validity = req->validity != 0 ? req->validity :
	    POP_VALIDITY_DEFAULT;
	int ret;

	memset(out, 0, sizeof(*out));
	if ((ret = pop_check_code(req->code, e)) != 0)
		return ret;
	if (validity <= 0 || validity > POP_VALIDITY_MAX)
		return err_set(e, HSMCA_ERR_ARG, "validity must be positive "
		    "and at most %d days", POP_VALIDITY_MAX / 86400);
	if ((ret = pop_check_generation(g, req->now, e)) != 0)
		return ret;
	if ((ret = issuer_open(c->hsm, c->st, g, &c->cfg->ca, &iss, e)) != 0)
		goto out;
	if ((ret = pop_build(iss, req, validity, &tbs, e)) != 0)
		goto out;

	ret = issue_finish(c->hsm, c->st, iss, tbs, &prof, req->requester,
	    NULL, req->now, out, e);
out:
	X509_free(tbs);
	issuer_free(iss);
	return ret;
}
