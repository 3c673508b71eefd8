/* crl.c: the CRL of one CA generation.
 *
 *   revoked entries (one index scan, in serial order) -> TBSCertList ->
 *   CRL number (committed) -> HSM signs -> DER -> re-parse and verify
 *   with the CA's public key -> release
 *
 * Entries come out of the store already in ascending serial order, so
 * they are appended as they come: no sort, whatever their number. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "hsmca/crl.h"

static const char *const reason_names[CRL_REASONS] = {
	[CRL_REASON_UNSPECIFIED] = "unspecified",
	[CRL_REASON_KEY_COMPROMISE] = "keyCompromise",
	[CRL_REASON_CA_COMPROMISE] = "cACompromise",
	[CRL_REASON_AFFILIATION_CHANGED] = "affiliationChanged",
	[CRL_REASON_SUPERSEDED] = "superseded",
	[CRL_REASON_CESSATION_OF_OPERATION] = "cessationOfOperation",
	[CRL_REASON_CERTIFICATE_HOLD] = "certificateHold",
	[CRL_REASON_REMOVE_FROM_CRL] = "removeFromCRL",
	[CRL_REASON_PRIVILEGE_WITHDRAWN] = "privilegeWithdrawn",
	[CRL_REASON_AA_COMPROMISE] = "aACompromise",
};

const char *
crl_reason_name(int reason)
{
	if (reason < 0 || reason >= CRL_REASONS ||
	    reason_names[reason] == NULL)
		return "unknown";
	return reason_names[reason];
}

int
crl_reason_parse(const char *name, int *reason, struct hsmca_err *e)
{
	if (name != NULL)
		for (int i = 0; i < CRL_REASONS; i++) {
			if (reason_names[i] == NULL ||
			    strcasecmp(name, reason_names[i]) != 0)
				continue;
			if (i == CRL_REASON_REMOVE_FROM_CRL)
				return err_set(e, HSMCA_ERR_ARG,
				    "removeFromCRL only appears in delta "
				    "CRLs; lift a certificateHold with "
				    "`hsmca revoke --unhold SERIAL`");
			*reason = i;
			return 0;
		}
	return err_set(e, HSMCA_ERR_ARG, "unknown revocation reason '%s' "
	    "(unspecified, keyCompromise, cACompromise, affiliationChanged, "
	    "superseded, cessationOfOperation, certificateHold, "
	    "privilegeWithdrawn, aACompromise)", name == NULL ? "" : name);
}

/* Appends the store's entries to a CRL. Scratch objects are reused from
 * one entry to the next: each entry copies what it needs. */
struct crl_builder {
	X509_CRL		*crl;
	ASN1_INTEGER		*serial;
	ASN1_TIME		*time;
	time_t			 time_of;	/* what time holds; -1: none */
	ASN1_ENUMERATED		*reason[CRL_REASONS];	/* NULL: none */
	struct hsmca_err	*e;
};

static int
hex_decode(const char *hex, unsigned char *out, size_t max, size_t *n)
{
	size_t len = strlen(hex);
	int hi, lo;

	if (len == 0 || len % 2 != 0 || len / 2 > max)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		hi = OPENSSL_hexchar2int((unsigned char)hex[2 * i]);
		lo = OPENSSL_hexchar2int((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	*n = len / 2;
	return 0;
}

static int
crl_add_entry(void *arg, const struct store_revoked *r)
{
	struct crl_builder *b = arg;
	unsigned char bytes[SERIAL_HEX_MAX / 2];
	X509_REVOKED *rev = NULL;
	size_t n;
	int ret = HSMCA_ERR_ALLOC;

	if (hex_decode(r->serial, bytes, sizeof(bytes), &n) != 0)
		return err_set(b->e, HSMCA_ERR_STORE, "store: revoked serial "
		    "\"%s\" is malformed", r->serial);
	if (!ASN1_STRING_set(b->serial, bytes, (int)n))
		goto out;
	if (r->revoked_at != b->time_of) {
		if (ASN1_TIME_set(b->time, r->revoked_at) == NULL)
			goto out;
		b->time_of = r->revoked_at;
	}
	if ((rev = X509_REVOKED_new()) == NULL ||
	    !X509_REVOKED_set_serialNumber(rev, b->serial) ||
	    !X509_REVOKED_set_revocationDate(rev, b->time))
		goto out;
	/* RFC 5280 §5.3.1: unspecified is expressed by leaving it out. */
	if (r->reason > 0 && r->reason < CRL_REASONS &&
	    b->reason[r->reason] != NULL &&
	    X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, b->reason[r->reason],
	    0, 0) != 1)
		goto out;
	if (!X509_CRL_add0_revoked(b->crl, rev))
		goto out;
	rev = NULL;
	ret = 0;
out:
	X509_REVOKED_free(rev);
	if (ret != 0)
		err_set_ssl(b->e, ret, "cannot add serial %s to the CRL",
		    r->serial);
	return ret;
}

/* One reasonCode value per reason, shared by every entry. */
static int
reason_values(struct crl_builder *b, struct hsmca_err *e)
{
	for (int i = 1; i < CRL_REASONS; i++) {
		if (reason_names[i] == NULL || i == CRL_REASON_REMOVE_FROM_CRL)
			continue;
		if ((b->reason[i] = ASN1_ENUMERATED_new()) == NULL ||
		    !ASN1_ENUMERATED_set(b->reason[i], i))
			return err_set_ssl(e, HSMCA_ERR_ALLOC, "reasonCode");
	}
	return 0;
}

/* authorityKeyIdentifier: the CA's subjectKeyIdentifier, or its issuer
 * and serial when it has none. */
static int
add_aki(X509_CRL *crl, X509 *ca, struct hsmca_err *e)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);
	AUTHORITY_KEYID *akid = NULL;
	X509_EXTENSION *ext = NULL;
	X509V3_CTX ctx;
	int ok = 0;

	if (ski != NULL) {
		if ((akid = AUTHORITY_KEYID_new()) != NULL &&
		    (akid->keyid = ASN1_OCTET_STRING_dup(ski)) != NULL)
			ok = X509_CRL_add1_ext_i2d(crl,
			    NID_authority_key_identifier, akid, 0, 0) == 1;
		AUTHORITY_KEYID_free(akid);
	} else {
		X509V3_set_ctx(&ctx, ca, NULL, NULL, crl, 0);
		if ((ext = X509V3_EXT_conf_nid(NULL, &ctx,
		    NID_authority_key_identifier, "issuer:always")) != NULL)
			ok = X509_CRL_add_ext(crl, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (!ok)
		return err_set_ssl(e, HSMCA_ERR_INTERNAL,
		    "authorityKeyIdentifier");
	return 0;
}

/* The DER header at *p (at most max bytes): its content length and the
 * length of header and content together. -1 unless it is a constructed
 * SEQUENCE that fits. */
static long
der_sequence(const unsigned char **p, long max, long *total)
{
	const unsigned char *start = *p;
	long len;
	int tag, xclass, ret;

	ret = ASN1_get_object(p, &len, &tag, &xclass, max);
	if ((ret & 0x80) != 0 || ret != V_ASN1_CONSTRUCTED ||
	    tag != V_ASN1_SEQUENCE || xclass != V_ASN1_UNIVERSAL)
		return -1;
	*total = (long)(*p - start) + len;
	return *total <= max ? len : -1;
}

/* Verify-after-sign on the bytes about to be released: the signature
 * over the TBSCertList exactly as it is encoded in der, with the CA
 * certificate's public key. X509_CRL_verify() would encode the million
 * entries of a large CRL once more, and d2i + verify decode them all
 * back (+25% and +40% of the whole build at 1,000,000 entries); the
 * signature covers every byte of them as they are released. */
static int
crl_verify_der(const unsigned char *der, long len, const X509_CRL *crl,
    X509 *ca, const EVP_MD *md, int64_t gen_id, struct hsmca_err *e)
{
	const ASN1_BIT_STRING *sig = NULL;
	const unsigned char *p = der, *tbs;
	EVP_MD_CTX *mctx = NULL;
	long total, tbs_total;
	int signid, ret = HSMCA_ERR_VERIFY;

	ERR_clear_error();
	/* CertificateList ::= SEQUENCE { tbsCertList SEQUENCE, ... } */
	tbs = NULL;
	if (der_sequence(&p, len, &total) >= 0 && total == len) {
		tbs = p;
		if (der_sequence(&p, len - (long)(p - der), &tbs_total) < 0)
			tbs = NULL;
	}
	if (tbs == NULL) {
		err_set(e, ret, "the signed CRL of CA generation %lld is not "
		    "a CertificateList", (long long)gen_id);
		goto out;
	}
	/* The algorithm it names is the one that is checked here. */
	if (!OBJ_find_sigid_by_algs(&signid, md != NULL ?
	    EVP_MD_get_type(md) : NID_undef,
	    EVP_PKEY_get_base_id(X509_get0_pubkey(ca))) ||
	    X509_CRL_get_signature_nid(crl) != signid) {
		err_set(e, ret, "the signed CRL of CA generation %lld names "
		    "another signature algorithm", (long long)gen_id);
		goto out;
	}
	X509_CRL_get0_signature(crl, &sig, NULL);
	if (sig == NULL || (mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(mctx, NULL, md, NULL,
	    X509_get0_pubkey(ca)) != 1 ||
	    EVP_DigestVerify(mctx, ASN1_STRING_get0_data(sig),
	    (size_t)ASN1_STRING_length(sig), tbs, (size_t)tbs_total) != 1) {
		err_set_ssl(e, ret, "the signed CRL of CA generation %lld does "
		    "not verify with its certificate", (long long)gen_id);
		goto out;
	}
	ret = 0;
out:
	EVP_MD_CTX_free(mctx);
	return ret;
}

int
crl_build_signer(struct hsm *h, struct store *st, const struct crl_signer *s,
    time_t now, int64_t next_update_secs, unsigned char **der, size_t *len,
    struct crl_info *info, struct hsmca_err *e)
{
	struct crl_builder b;
	ASN1_TIME *tm = NULL;
	ASN1_INTEGER *num = NULL;
	unsigned char *out = NULL;
	size_t entries = 0;
	int64_t number = 0;
	uint32_t ku;
	int n, ok, ret = HSMCA_ERR_INTERNAL;

	*der = NULL;
	*len = 0;
	memset(&b, 0, sizeof(b));
	if (next_update_secs == 0)
		next_update_secs = CRL_NEXT_UPDATE_DEFAULT;
	if (next_update_secs < 0 || next_update_secs > CRL_NEXT_UPDATE_MAX)
		return err_set(e, HSMCA_ERR_ARG, "a CRL's nextUpdate must be "
		    "at most %lld days after its thisUpdate",
		    (long long)(CRL_NEXT_UPDATE_MAX / 86400));
	if (s->cert == NULL || s->key == NULL)
		return err_set(e, HSMCA_ERR_ARG, "CRL without a signer");
	ku = X509_get_key_usage(s->cert);
	if (ku != UINT32_MAX && (ku & KU_CRL_SIGN) == 0)
		return err_set(e, HSMCA_ERR_CA_STATE, "CA generation %lld "
		    "cannot sign CRLs: its certificate's keyUsage lacks "
		    "cRLSign", (long long)s->gen_id);

	b.e = e;
	b.time_of = -1;
	if ((b.crl = X509_CRL_new()) == NULL ||
	    (b.serial = ASN1_INTEGER_new()) == NULL ||
	    (b.time = ASN1_TIME_new()) == NULL ||
	    (num = ASN1_INTEGER_new()) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	if ((ret = reason_values(&b, e)) != 0)
		goto out;
	ret = HSMCA_ERR_INTERNAL;
	if (!X509_CRL_set_version(b.crl, 1) ||	/* v2 */
	    !X509_CRL_set_issuer_name(b.crl, X509_get_subject_name(s->cert)) ||
	    (tm = ASN1_TIME_set(NULL, now)) == NULL ||
	    !X509_CRL_set1_lastUpdate(b.crl, tm) ||
	    ASN1_TIME_set(tm, now + (time_t)next_update_secs) == NULL ||
	    !X509_CRL_set1_nextUpdate(b.crl, tm)) {
		err_set_ssl(e, ret, "cannot build the CRL");
		goto out;
	}
	if ((ret = store_list_revoked(st, s->gen_id, now, crl_add_entry, &b,
	    &entries, e)) != 0)
		goto out;

	/* The number is taken, and committed, only once the CRL is built:
	 * it is never issued twice, and rarely skipped. */
	if ((ret = store_next_crl_number(st, s->gen_id, now, &number, e)) != 0)
		goto out;
	ret = HSMCA_ERR_INTERNAL;
	if (!ASN1_INTEGER_set_int64(num, number) ||
	    X509_CRL_add1_ext_i2d(b.crl, NID_crl_number, num, 0, 0) != 1) {
		err_set_ssl(e, ret, "cRLNumber");
		goto out;
	}
	if ((ret = add_aki(b.crl, s->cert, e)) != 0)
		goto out;

	ERR_clear_error();
	if (h != NULL)
		hsm_sign_enter(h);
	ok = X509_CRL_sign(b.crl, s->key, s->md);
	if (h != NULL)
		hsm_sign_leave(h);
	if (ok <= 0) {
		ret = err_set_ssl(e, HSMCA_ERR_HSM, "the HSM did not sign the "
		    "CRL of CA generation %lld", (long long)s->gen_id);
		goto out;
	}
	if ((n = i2d_X509_CRL(b.crl, &out)) <= 0) {
		ret = err_set_ssl(e, HSMCA_ERR_INTERNAL,
		    "cannot encode the CRL");
		goto out;
	}
	if ((ret = crl_verify_der(out, n, b.crl, s->cert, s->md, s->gen_id,
	    e)) != 0)
		goto out;
	if (info != NULL) {
		info->number = number;
		info->this_update = now;
		info->next_update = now + (time_t)next_update_secs;
		info->entries = entries;
	}
	*der = out;
	*len = (size_t)n;
	out = NULL;
	ret = 0;
out:
	for (int i = 0; i < CRL_REASONS; i++)
		ASN1_ENUMERATED_free(b.reason[i]);
	X509_CRL_free(b.crl);
	ASN1_INTEGER_free(b.serial);
	ASN1_TIME_free(b.time);
	ASN1_TIME_free(tm);
	ASN1_INTEGER_free(num);
	OPENSSL_free(out);
	return ret;
}

int
crl_build(struct hsm *h, struct store *st, const struct issuer *iss,
    time_t now, int64_t next_update_secs, unsigned char **der, size_t *len,
    struct crl_info *info, struct hsmca_err *e)
{
	struct crl_signer s;

	s.gen_id = iss->gen_id;
	s.cert = iss->cert;
	s.key = hsm_key_private(iss->key);
	s.md = iss->md;
	return crl_build_signer(h, st, &s, now, next_update_secs, der, len,
	    info, e);
}
