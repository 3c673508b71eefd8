/* lint.c: checks on a certificate before the HSM signs it, and on the
 * signed DER before anyone sees it. Every failure names its check. */
#include "config.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hsmca/csr.h"
#include "hsmca/lint.h"
#include "hsmca/sigcheck.h"
#include "hsmca/util.h"

#define LINT_SERIAL_MAX_OCTETS	20	/* RFC 5280 §4.1.2.2 */
#define LINT_UTCTIME_END_YEAR	2050	/* RFC 5280 §4.1.2.5 */

struct lint_bit {
	unsigned int	 bit;
	const char	*name;
	int		 nid;		/* extendedKeyUsage OID, else 0 */
};

static const struct lint_bit lint_ku_bits[] = {
	{ PROFILE_KU_DIGITAL_SIGNATURE, "digitalSignature", 0 },
	{ PROFILE_KU_NON_REPUDIATION, "nonRepudiation", 0 },
	{ PROFILE_KU_KEY_ENCIPHERMENT, "keyEncipherment", 0 },
	{ PROFILE_KU_DATA_ENCIPHERMENT, "dataEncipherment", 0 },
	{ PROFILE_KU_KEY_AGREEMENT, "keyAgreement", 0 },
	{ PROFILE_KU_KEY_CERT_SIGN, "keyCertSign", 0 },
	{ PROFILE_KU_CRL_SIGN, "cRLSign", 0 },
	{ KU_ENCIPHER_ONLY, "encipherOnly", 0 },
	{ KU_DECIPHER_ONLY, "decipherOnly", 0 },
	{ 0, NULL, 0 }
};

static const struct lint_bit lint_eku_bits[] = {
	{ PROFILE_EKU_SERVER_AUTH, "serverAuth", NID_server_auth },
	{ PROFILE_EKU_CLIENT_AUTH, "clientAuth", NID_client_auth },
	{ PROFILE_EKU_EMAIL_PROTECTION, "emailProtection", NID_email_protect },
	{ PROFILE_EKU_CODE_SIGNING, "codeSigning", NID_code_sign },
	{ PROFILE_EKU_OCSP_SIGNING, "OCSPSigning", NID_OCSP_sign },
	{ PROFILE_EKU_TIME_STAMPING, "timeStamping", NID_time_stamp },
	{ 0, NULL, 0 }
};

static int lint_fail(struct hsmca_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* HSMCA_ERR_LINT, with "lint: " ahead of the failed check's words. */
static int
lint_fail(struct hsmca_err *e, const char *fmt, ...)
{
	char msg[HSMCA_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return err_set(e, HSMCA_ERR_LINT, "lint: %s", msg);
}

static const char *
lint_time(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm) ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "(unreadable)");
	return buf;
}

static const char *
lint_objname(const ASN1_OBJECT *o, char *buf, size_t len)
{
	int nid = OBJ_obj2nid(o);

	if (nid != NID_undef)
		snprintf(buf, len, "%s", OBJ_nid2sn(nid));
	else if (OBJ_obj2txt(buf, (int)len, o, 1) <= 0)
		snprintf(buf, len, "(unreadable OID)");
	return buf;
}

/* Names of the bits set in mask, comma-separated; "none" for 0. */
static const char *
lint_bits(unsigned int mask, const struct lint_bit *tab, char *buf,
    size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (; tab->name != NULL; tab++) {
		if ((mask & tab->bit) == 0)
			continue;
		mask &= ~tab->bit;
		n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s",
		    n > 0 ? "," : "", tab->name);
	}
	if (mask != 0)
		n += (size_t)snprintf(buf + n, n < len ? len - n : 0,
		    "%s0x%x", n > 0 ? "," : "", mask);
	if (n == 0)
		snprintf(buf, len, "none");
	return buf;
}

/* Hex of a key identifier, shortened if it is unusually long. */
static const char *
lint_keyid(const ASN1_OCTET_STRING *id, char *buf, size_t len)
{
	size_t n = (size_t)ASN1_STRING_length(id);

	if (n > (len - 1) / 2)
		n = (len - 1) / 2;
	util_hex(ASN1_STRING_get0_data(id), n, buf);
	return buf;
}

/*
 * A private copy of the fields the extension checks read. OpenSSL decodes
 * a certificate's extensions once, on first use, and keeps the answer: an
 * X509 asked about its key usage before a later X509_add_ext() answers
 * from the stale cache. A certificate not yet signed cannot be copied
 * through DER either (its AlgorithmIdentifier is still empty), so the
 * cache is filled on a copy built here, from the extensions as they are.
 */
static X509 *
lint_snapshot(const X509 *cert)
{
	X509 *x;
	int i, n;

	if ((x = X509_new()) == NULL)
		return NULL;
	if (!X509_set_version(x, X509_get_version(cert)) ||
	    !X509_set_subject_name(x, X509_get_subject_name(cert)) ||
	    !X509_set_issuer_name(x, X509_get_issuer_name(cert)) ||
	    util_copy_spki(X509_get_X509_PUBKEY(x),
	    X509_get_X509_PUBKEY(cert)) != 0)
		goto fail;
	n = X509_get_ext_count(cert);
	for (i = 0; i < n; i++)
		if (!X509_add_ext(x, X509_get_ext(cert, i), -1))
			goto fail;
	/* The first call fails on any certificate it cannot hash, which an
	 * unsigned one never can be; from then on it says only whether the
	 * extensions decoded. */
	(void)X509_check_purpose(x, -1, 0);
	ERR_clear_error();
	return x;
fail:
	X509_free(x);
	return NULL;
}

static int
lint_version_serial(const X509 *cert, struct hsmca_err *e)
{
	const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);
	BIGNUM *bn = NULL;
	int octets, ret = HSMCA_ERR_LINT;

	if (X509_get_version(cert) != X509_VERSION_3) {
		lint_fail(e, "version is v%ld; certificates must be v3",
		    X509_get_version(cert) + 1);
		goto out;
	}
	if (ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER) {
		lint_fail(e, "serial number is negative; RFC 5280 requires a "
		    "positive serial");
		goto out;
	}
	if ((bn = ASN1_INTEGER_to_BN(serial, NULL)) == NULL) {
		lint_fail(e, "serial number is unreadable");
		goto out;
	}
	if (BN_is_zero(bn)) {
		lint_fail(e, "serial number is zero; RFC 5280 requires a "
		    "positive serial");
		goto out;
	}
	/* DER octets: the magnitude plus a 00 when its top bit is set. */
	octets = BN_num_bits(bn) / 8 + 1;
	if (octets > LINT_SERIAL_MAX_OCTETS) {
		lint_fail(e, "serial number is %d octets; RFC 5280 allows at "
		    "most %d", octets, LINT_SERIAL_MAX_OCTETS);
		goto out;
	}
	ret = 0;
out:
	BN_free(bn);
	return ret;
}

static int
lint_names(const X509 *cert, const X509 *issuer, struct hsmca_err *e)
{
	GENERAL_NAMES *san = NULL;
	char *have = NULL, *want = NULL;
	int idx, crit = -1, ret = HSMCA_ERR_LINT;

	if (X509_NAME_cmp(X509_get_issuer_name(cert),
	    X509_get_subject_name(issuer)) != 0) {
		have = util_name_string(X509_get_issuer_name(cert));
		want = util_name_string(X509_get_subject_name(issuer));
		lint_fail(e, "issuer name \"%s\" is not the issuer's subject "
		    "\"%s\"", have != NULL ? have : "?",
		    want != NULL ? want : "?");
		goto out;
	}
	idx = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
	if (idx >= 0) {
		san = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
		if (san == NULL || sk_GENERAL_NAME_num(san) == 0) {
			lint_fail(e, "subjectAltName is empty or unreadable");
			goto out;
		}
	}
	if (X509_NAME_entry_count(X509_get_subject_name(cert)) == 0) {
		if (idx < 0) {
			lint_fail(e, "subject is empty and there is no "
			    "subjectAltName: the certificate names no one");
			goto out;
		}
		if (!crit) {
			lint_fail(e, "subject is empty, so subjectAltName "
			    "must be critical (RFC 5280 §4.2.1.6)");
			goto out;
		}
	}
	ret = 0;
out:
	GENERAL_NAMES_free(san);
	free(have);
	free(want);
	return ret;
}

/* One validity bound: readable, and in the encoding RFC 5280 asks for. */
static int
lint_time_encoding(const char *what, const ASN1_TIME *t, struct hsmca_err *e)
{
	struct tm tm;
	char buf[32];
	int year;

	if (!ASN1_TIME_check(t) || !ASN1_TIME_to_tm(t, &tm))
		return lint_fail(e, "%s is not a valid time", what);
	year = tm.tm_year + 1900;
	if (year < LINT_UTCTIME_END_YEAR &&
	    ASN1_STRING_type(t) != V_ASN1_UTCTIME)
		return lint_fail(e, "%s %s is GeneralizedTime; RFC 5280 wants "
		    "UTCTime before %d", what, lint_time(t, buf, sizeof(buf)),
		    LINT_UTCTIME_END_YEAR);
	return 0;
}

static int
lint_validity(const X509 *cert, const X509 *issuer, struct hsmca_err *e)
{
	const ASN1_TIME *nb = X509_get0_notBefore(cert);
	const ASN1_TIME *na = X509_get0_notAfter(cert);
	const ASN1_TIME *inb = X509_get0_notBefore(issuer);
	const ASN1_TIME *ina = X509_get0_notAfter(issuer);
	char b1[32], b2[32];
	int ret;

	if ((ret = lint_time_encoding("notBefore", nb, e)) != 0 ||
	    (ret = lint_time_encoding("notAfter", na, e)) != 0)
		return ret;
	if (ASN1_TIME_compare(nb, na) != -1)
		return lint_fail(e, "notBefore %s is not before notAfter %s",
		    lint_time(nb, b1, sizeof(b1)), lint_time(na, b2, sizeof(b2)));
	if (ASN1_TIME_compare(nb, inb) < 0)
		return lint_fail(e, "notBefore %s is before the issuer's "
		    "notBefore %s", lint_time(nb, b1, sizeof(b1)),
		    lint_time(inb, b2, sizeof(b2)));
	if (ASN1_TIME_compare(na, ina) > 0 || ASN1_TIME_compare(na, ina) == -2)
		return lint_fail(e, "notAfter %s is after the issuer's "
		    "notAfter %s", lint_time(na, b1, sizeof(b1)),
		    lint_time(ina, b2, sizeof(b2)));
	return 0;
}

static int
lint_duplicates(const STACK_OF(X509_EXTENSION) *exts, struct hsmca_err *e)
{
	const ASN1_OBJECT *a, *b;
	char name[80];
	int i, j, n = X509v3_get_ext_count(exts);

	for (i = 0; i < n; i++) {
		a = X509_EXTENSION_get_object(X509v3_get_ext(exts, i));
		for (j = i + 1; j < n; j++) {
			b = X509_EXTENSION_get_object(X509v3_get_ext(exts, j));
			if (OBJ_cmp(a, b) == 0)
				return lint_fail(e, "duplicate extension %s",
				    lint_objname(a, name, sizeof(name)));
		}
	}
	return 0;
}

/* SKI present; AKI keyIdentifier equal to the issuer's SKI (a self-signed
 * certificate may leave AKI out, RFC 5280 §4.2.1.1). */
static int
lint_keyids(const X509 *cert, const EVP_PKEY *key, X509 *x,
    const X509 *issuer, struct hsmca_err *e)
{
	const ASN1_OCTET_STRING *ski, *aki;
	ASN1_OCTET_STRING *iski = NULL;
	uint32_t flags = X509_get_extension_flags(x);
	char h1[65], h2[65];
	int self_signed, ret = HSMCA_ERR_LINT;

	if ((ski = X509_get0_subject_key_id(x)) == NULL ||
	    ASN1_STRING_length(ski) == 0) {
		lint_fail(e, "subjectKeyIdentifier missing");
		goto out;
	}
	if (flags & EXFLAG_SKID_CRITICAL) {
		lint_fail(e, "subjectKeyIdentifier must not be critical");
		goto out;
	}
	if (flags & EXFLAG_AKID_CRITICAL) {
		lint_fail(e, "authorityKeyIdentifier must not be critical");
		goto out;
	}
	self_signed = X509_NAME_cmp(X509_get_subject_name(cert),
	    X509_get_subject_name(issuer)) == 0 &&
	    EVP_PKEY_eq(key, X509_get0_pubkey(issuer)) == 1;
	ERR_clear_error();
	if ((aki = X509_get0_authority_key_id(x)) == NULL) {
		if (!self_signed) {
			lint_fail(e, "authorityKeyIdentifier keyIdentifier "
			    "missing; it must name the issuer's key");
			goto out;
		}
		ret = 0;
		goto out;
	}
	iski = X509_get_ext_d2i(issuer, NID_subject_key_identifier, NULL, NULL);
	if (iski == NULL) {
		lint_fail(e, "the issuer has no subjectKeyIdentifier to match "
		    "authorityKeyIdentifier %s against",
		    lint_keyid(aki, h1, sizeof(h1)));
		goto out;
	}
	if (ASN1_OCTET_STRING_cmp(aki, iski) != 0) {
		lint_fail(e, "authorityKeyIdentifier %s is not the issuer's "
		    "subjectKeyIdentifier %s", lint_keyid(aki, h1, sizeof(h1)),
		    lint_keyid(iski, h2, sizeof(h2)));
		goto out;
	}
	ret = 0;
out:
	ASN1_OCTET_STRING_free(iski);
	return ret;
}

static int
lint_basic_constraints(X509 *x, const struct profile *p, struct hsmca_err *e)
{
	uint32_t flags = X509_get_extension_flags(x);
	long pathlen = X509_get_pathlen(x);
	char have[24], want[24];

	if (p != NULL && !p->is_ca) {
		if (flags & EXFLAG_CA)
			return lint_fail(e, "basicConstraints says CA:TRUE but "
			    "profile %s issues end-entity certificates",
			    p->name);
		if (pathlen != -1)
			return lint_fail(e, "basicConstraints carries a "
			    "pathLenConstraint in an end-entity certificate");
		return 0;
	}
	if ((flags & EXFLAG_BCONS) == 0 || (flags & EXFLAG_CA) == 0) {
		if (p == NULL)
			return lint_fail(e, "basicConstraints must say CA:TRUE "
			    "in a CA certificate");
		return lint_fail(e, "basicConstraints must say CA:TRUE under "
		    "profile %s", p->name);
	}
	if ((flags & EXFLAG_BCONS_CRITICAL) == 0)
		return lint_fail(e, "basicConstraints must be critical in a CA "
		    "certificate");
	if (p != NULL && pathlen != p->pathlen) {
		if (pathlen < 0)
			snprintf(have, sizeof(have), "absent");
		else
			snprintf(have, sizeof(have), "%ld", pathlen);
		if (p->pathlen < 0)
			snprintf(want, sizeof(want), "none");
		else
			snprintf(want, sizeof(want), "%d", p->pathlen);
		return lint_fail(e, "basicConstraints pathLenConstraint is "
		    "%s, profile %s says %s", have, p->name, want);
	}
	return 0;
}

static int
lint_key_usage(const X509 *cert, X509 *x, const struct profile *p,
    struct hsmca_err *e)
{
	char have[160], want[160];
	int idx = X509_get_ext_by_NID(cert, NID_key_usage, -1);
	uint32_t ku = X509_get_key_usage(x);

	if (p != NULL && p->key_usage == 0) {
		if (idx >= 0)
			return lint_fail(e, "keyUsage %s present but profile %s "
			    "has none", lint_bits(ku, lint_ku_bits, have,
			    sizeof(have)), p->name);
		return 0;
	}
	if (idx < 0 && p == NULL)
		return lint_fail(e, "keyUsage missing; a CA certificate needs "
		    "keyCertSign");
	if (idx < 0)
		return lint_fail(e, "keyUsage missing; profile %s says %s",
		    p->name, lint_bits(p->key_usage, lint_ku_bits, want,
		    sizeof(want)));
	if (!X509_EXTENSION_get_critical(X509_get_ext(cert, idx)))
		return lint_fail(e, "keyUsage must be critical");
	if (p == NULL && (ku & PROFILE_KU_KEY_CERT_SIGN) == 0)
		return lint_fail(e, "keyUsage %s lacks keyCertSign, which a CA "
		    "certificate needs", lint_bits(ku, lint_ku_bits, have,
		    sizeof(have)));
	if (p != NULL && ku != p->key_usage)
		return lint_fail(e, "keyUsage is %s, profile %s says %s",
		    lint_bits(ku, lint_ku_bits, have, sizeof(have)), p->name,
		    lint_bits(p->key_usage, lint_ku_bits, want, sizeof(want)));
	return 0;
}

static int
lint_ext_key_usage(const X509 *cert, X509 *x, const struct profile *p,
    struct hsmca_err *e)
{
	EXTENDED_KEY_USAGE *eku = NULL;
	const struct lint_bit *b;
	char have[160], want[160], name[80];
	uint32_t flags = X509_get_extension_flags(x), xku;
	int i, nid, ret = HSMCA_ERR_LINT;

	if (p == NULL)
		return 0;	/* a CA certificate may carry any or none */
	if ((flags & EXFLAG_XKUSAGE) == 0) {
		if (p->ext_key_usage != 0) {
			lint_fail(e, "extendedKeyUsage missing; profile %s "
			    "says %s", p->name, lint_bits(p->ext_key_usage,
			    lint_eku_bits, want, sizeof(want)));
			goto out;
		}
		ret = 0;
		goto out;
	}
	/* OpenSSL's summary skips purposes it does not know: look at every
	 * OID, so none the profile did not grant slips through. */
	eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
	for (i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
		nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i));
		for (b = lint_eku_bits; b->name != NULL; b++)
			if (b->nid == nid && (p->ext_key_usage & b->bit))
				break;
		if (b->name == NULL) {
			lint_fail(e, "extendedKeyUsage carries %s, which "
			    "profile %s does not grant",
			    lint_objname(sk_ASN1_OBJECT_value(eku, i), name,
			    sizeof(name)), p->name);
			goto out;
		}
	}
	xku = X509_get_extended_key_usage(x);
	if (p->ext_key_usage == 0 || xku != p->ext_key_usage) {
		lint_fail(e, "extendedKeyUsage is %s, profile %s says %s",
		    lint_bits(xku, lint_eku_bits, have, sizeof(have)), p->name,
		    lint_bits(p->ext_key_usage, lint_eku_bits, want,
		    sizeof(want)));
		goto out;
	}
	ret = 0;
out:
	EXTENDED_KEY_USAGE_free(eku);
	return ret;
}

/* key is of the algorithm, and for EC of the curve, that cert's
 * SubjectPublicKeyInfo names. */
static int
lint_spki_names(const X509 *cert, const EVP_PKEY *key, struct hsmca_err *e)
{
	const ASN1_OBJECT *alg;
	const void *pval;
	X509_ALGOR *a;
	char group[80];
	int ptype, nid;

	if (!X509_PUBKEY_get0_param(NULL, NULL, NULL, &a,
	    X509_get_X509_PUBKEY(cert)))
		return lint_fail(e, "subject public key is unreadable");
	X509_ALGOR_get0(&alg, &ptype, &pval, a);
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_utf8_string_param(key,
		    OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL))
			break;	/* the key policy says why */
		if ((nid = OBJ_sn2nid(group)) == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (OBJ_obj2nid(alg) != NID_X9_62_id_ecPublicKey ||
		    ptype != V_ASN1_OBJECT || OBJ_obj2nid(pval) != nid)
			return lint_fail(e, "subject public key info does not "
			    "name the EC curve %s of the key it carries",
			    group);
		break;
	case EVP_PKEY_RSA:
		if (OBJ_obj2nid(alg) != NID_rsaEncryption)
			return lint_fail(e, "subject public key info does not "
			    "name the RSA key it carries");
		break;
	default:
		break;	/* refused by the key policy */
	}
	ERR_clear_error();
	return 0;
}

int
lint_presign(const X509 *cert, const X509 *issuer, const struct profile *p,
    struct hsmca_err *e)
{
	return lint_presign_key(cert, NULL, issuer, p, e);
}

int
lint_presign_key(const X509 *cert, const EVP_PKEY *key, const X509 *issuer,
    const struct profile *p, struct hsmca_err *e)
{
	struct hsmca_err ke;
	const ASN1_BIT_STRING *iuid = NULL, *suid = NULL;
	X509 *x = NULL;
	int ret = HSMCA_ERR_LINT;

	if (cert == NULL || issuer == NULL) {
		ret = err_set(e, HSMCA_ERR_ARG, "lint: no certificate or "
		    "no issuer");
		goto out;
	}
	if ((ret = lint_version_serial(cert, e)) != 0 ||
	    (ret = lint_duplicates(X509_get0_extensions(cert), e)) != 0 ||
	    (ret = lint_names(cert, issuer, e)) != 0 ||
	    (ret = lint_validity(cert, issuer, e)) != 0)
		goto out;
	if (key == NULL)
		key = X509_get0_pubkey(cert);
	else if ((ret = lint_spki_names(cert, key, e)) != 0)
		goto out;
	ret = HSMCA_ERR_LINT;
	X509_get0_uids(cert, &iuid, &suid);
	if (iuid != NULL || suid != NULL) {
		lint_fail(e, "issuerUniqueID or subjectUniqueID present; RFC "
		    "5280 says a CA must not generate them");
		goto out;
	}
	if ((x = lint_snapshot(cert)) == NULL) {
		ret = err_set_ssl(e, HSMCA_ERR_ALLOC, "lint: cannot copy the "
		    "certificate");
		goto out;
	}
	if (X509_check_purpose(x, -1, 0) != 1) {
		lint_fail(e, "an extension does not decode or contradicts "
		    "another");
		goto out;
	}
	if ((ret = lint_keyids(cert, key, x, issuer, e)) != 0 ||
	    (ret = lint_basic_constraints(x, p, e)) != 0 ||
	    (ret = lint_key_usage(cert, x, p, e)) != 0 ||
	    (ret = lint_ext_key_usage(cert, x, p, e)) != 0)
		goto out;
	ret = HSMCA_ERR_LINT;
	/* What a verifier will conclude, from the same cache. */
	if ((p == NULL || p->is_ca) && X509_check_ca(x) != 1) {
		lint_fail(e, "basicConstraints and keyUsage do not make this "
		    "a CA certificate");
		goto out;
	}
	err_clear(&ke);
	if (csr_check_key(key, &ke) != 0) {
		ret = lint_fail(e, "subject public key: %s", ke.msg);
		goto out;
	}
	ret = 0;
out:
	X509_free(x);
	return ret;
}

/* The signature algorithm fits the issuer's key: ECDSA for EC, RSA
 * PKCS#1 v1.5 for RSA, with a SHA-2 digest and the parameters the RFCs
 * fix (absent for ECDSA, RFC 5758; NULL for RSA, RFC 4055). */
static int
lint_sigalg(const X509_ALGOR *alg, const X509 *issuer, struct hsmca_err *e)
{
	const ASN1_OBJECT *obj;
	EVP_PKEY *ipk = X509_get0_pubkey(issuer);
	char name[80];
	int ptype, md_nid, pk_nid;

	X509_ALGOR_get0(&obj, &ptype, NULL, alg);
	lint_objname(obj, name, sizeof(name));
	if (!OBJ_find_sigid_algs(OBJ_obj2nid(obj), &md_nid, &pk_nid))
		return lint_fail(e, "signature algorithm %s is unknown", name);
	if (ipk == NULL)
		return lint_fail(e, "the issuer's public key is unreadable");
	switch (EVP_PKEY_get_base_id(ipk)) {
	case EVP_PKEY_EC:
		if (pk_nid != NID_X9_62_id_ecPublicKey)
			return lint_fail(e, "signature algorithm %s does not "
			    "match the issuer's EC key (ECDSA expected)", name);
		if (ptype != V_ASN1_UNDEF)
			return lint_fail(e, "signature algorithm %s carries "
			    "parameters; ECDSA must have none (RFC 5758)", name);
		break;
	case EVP_PKEY_RSA:
		if (pk_nid != NID_rsaEncryption)
			return lint_fail(e, "signature algorithm %s does not "
			    "match the issuer's RSA key (RSA PKCS#1 v1.5 "
			    "expected)", name);
		if (ptype != V_ASN1_NULL)
			return lint_fail(e, "signature algorithm %s must have "
			    "NULL parameters (RFC 4055)", name);
		break;
	default:
		return lint_fail(e, "the issuer's %s key is not one hsmca "
		    "signs certificates with", EVP_PKEY_get0_type_name(ipk));
	}
	if (md_nid != NID_sha256 && md_nid != NID_sha384 &&
	    md_nid != NID_sha512)
		return lint_fail(e, "signature algorithm %s: SHA-256, SHA-384 "
		    "or SHA-512 expected", name);
	return 0;
}

/* The signed certificate as lint_postsign_der reads it back: RFC 5280's
 * Certificate with the subject key left encoded (d2i_X509() would decode
 * it through OpenSSL 3.0's generic decoder, at a higher cost than the
 * verification). The TBSCertificate keeps the bytes it was parsed from,
 * so the signature is checked on exactly those. */
typedef struct lint_tbs {
	ASN1_ENCODING		 enc;
	ASN1_INTEGER		*version;
	ASN1_INTEGER		*serial;
	X509_ALGOR		*signature;
	X509_NAME		*issuer;
	X509_VAL		*validity;
	X509_NAME		*subject;
	struct csr_spki		*key;
	ASN1_BIT_STRING		*issuer_uid;
	ASN1_BIT_STRING		*subject_uid;
	STACK_OF(X509_EXTENSION) *extensions;
} LINT_TBS;

struct lint_cert {
	LINT_TBS		*tbs;
	X509_ALGOR		*algorithm;
	ASN1_BIT_STRING		*signature;
};

ASN1_SEQUENCE_enc(LINT_TBS, enc, 0) = {
	ASN1_EXP_OPT(LINT_TBS, version, ASN1_INTEGER, 0),
	ASN1_SIMPLE(LINT_TBS, serial, ASN1_INTEGER),
	ASN1_SIMPLE(LINT_TBS, signature, X509_ALGOR),
	ASN1_SIMPLE(LINT_TBS, issuer, X509_NAME),
	ASN1_SIMPLE(LINT_TBS, validity, X509_VAL),
	ASN1_SIMPLE(LINT_TBS, subject, X509_NAME),
	ASN1_SIMPLE(LINT_TBS, key, csr_spki),
	ASN1_IMP_OPT(LINT_TBS, issuer_uid, ASN1_BIT_STRING, 1),
	ASN1_IMP_OPT(LINT_TBS, subject_uid, ASN1_BIT_STRING, 2),
	ASN1_EXP_SEQUENCE_OF_OPT(LINT_TBS, extensions, X509_EXTENSION, 3)
} static_ASN1_SEQUENCE_END_ref(LINT_TBS, LINT_TBS)

ASN1_SEQUENCE(lint_cert) = {
	ASN1_SIMPLE(struct lint_cert, tbs, LINT_TBS),
	ASN1_SIMPLE(struct lint_cert, algorithm, X509_ALGOR),
	ASN1_SIMPLE(struct lint_cert, signature, ASN1_BIT_STRING)
} static_ASN1_SEQUENCE_END_name(struct lint_cert, lint_cert)

/* Every extension OpenSSL has a decoder for decodes. */
static int
lint_extensions_decode(const STACK_OF(X509_EXTENSION) *exts,
    struct hsmca_err *e)
{
	const X509V3_EXT_METHOD *m;
	X509_EXTENSION *ext;
	char name[80];
	void *val;
	int i;

	for (i = 0; i < X509v3_get_ext_count(exts); i++) {
		ext = X509v3_get_ext(exts, i);
		if ((m = X509V3_EXT_get(ext)) == NULL)
			continue;
		if ((val = X509V3_EXT_d2i(ext)) == NULL)
			return lint_fail(e, "extension %s of the signed "
			    "certificate does not decode", lint_objname(
			    X509_EXTENSION_get_object(ext), name,
			    sizeof(name)));
		if (m->it != NULL)
			ASN1_item_free(val, ASN1_ITEM_ptr(m->it));
		else
			m->ext_free(val);
	}
	return 0;
}

/* 1 when x's signature verifies with issuer's key: through check when
 * it is the checker of that key and digest, else OpenSSL's verify. */
static int
lint_verify(const struct lint_cert *x, const X509 *issuer,
    const struct sigcheck *check)
{
	const ASN1_OBJECT *obj;
	int md_nid, pk_nid, ok = -1;

	X509_ALGOR_get0(&obj, NULL, NULL, x->algorithm);
	if (check != NULL && sigcheck_key(check) == X509_get0_pubkey(issuer) &&
	    OBJ_find_sigid_algs(OBJ_obj2nid(obj), &md_nid, &pk_nid) &&
	    md_nid == sigcheck_md_type(check) &&
	    (x->signature->flags & 7) == 0 && x->tbs->enc.enc != NULL &&
	    !x->tbs->enc.modified && x->tbs->enc.len > 0)
		ok = sigcheck_verify(check, x->tbs->enc.enc,
		    (size_t)x->tbs->enc.len, x->signature->data,
		    (size_t)x->signature->length);
	if (ok == -1)
		ok = ASN1_item_verify(ASN1_ITEM_rptr(LINT_TBS), x->algorithm,
		    x->signature, x->tbs, X509_get0_pubkey(issuer)) == 1;
	return ok;
}

int
lint_postsign_der(const unsigned char *der, size_t len, const X509 *issuer,
    const struct sigcheck *check, struct hsmca_err *e)
{
	const unsigned char *p = der;
	const ASN1_OBJECT *o1, *o2;
	struct lint_cert *x = NULL;
	char n1[80], n2[80];
	int ret = HSMCA_ERR_LINT;

	if (der == NULL || len == 0 || len > LONG_MAX || issuer == NULL) {
		ret = err_set(e, HSMCA_ERR_ARG, "lint: no certificate or "
		    "no issuer");
		goto out;
	}
	/* Parsed as a verifier will, to the last byte. */
	x = (struct lint_cert *)ASN1_item_d2i(NULL, &p, (long)len,
	    ASN1_ITEM_rptr(lint_cert));
	if (x == NULL || p != der + len) {
		lint_fail(e, "the signed certificate does not parse back");
		goto out;
	}
	if (X509_ALGOR_cmp(x->tbs->signature, x->algorithm) != 0) {
		X509_ALGOR_get0(&o1, NULL, NULL, x->tbs->signature);
		X509_ALGOR_get0(&o2, NULL, NULL, x->algorithm);
		lint_fail(e, "tbsCertificate signature algorithm %s differs "
		    "from the outer signatureAlgorithm %s; verifiers refuse "
		    "such a certificate",
		    lint_objname(o1, n1, sizeof(n1)),
		    lint_objname(o2, n2, sizeof(n2)));
		goto out;
	}
	if ((ret = lint_sigalg(x->algorithm, issuer, e)) != 0 ||
	    (ret = lint_duplicates(x->tbs->extensions, e)) != 0 ||
	    (ret = lint_extensions_decode(x->tbs->extensions, e)) != 0)
		goto out;
	if (lint_verify(x, issuer, check) != 1) {
		ret = err_set(e, HSMCA_ERR_VERIFY, "verify-after-sign: the "
		    "signature does not verify with the issuer's public key; "
		    "check that the HSM key matches the CA certificate");
		ERR_clear_error();
		goto out;
	}
	ret = 0;
out:
	ASN1_item_free((ASN1_VALUE *)x, ASN1_ITEM_rptr(lint_cert));
	return ret;
}

int
lint_postsign(const X509 *cert, const X509 *issuer, struct hsmca_err *e)
{
	unsigned char *der = NULL;
	int len, ret;

	if (cert == NULL || issuer == NULL)
		return err_set(e, HSMCA_ERR_ARG, "lint: no certificate or "
		    "no issuer");
	if ((len = i2d_X509(cert, &der)) <= 0)
		return lint_fail(e, "the signed certificate does not encode");
	ret = lint_postsign_der(der, (size_t)len, issuer, NULL, e);
	OPENSSL_free(der);
	return ret;
}
