/* ocsp.c: pre-signed OCSP responses and the table they are served from.
 *
 *   store record -> CertID + SingleResponse -> HSM signs -> DER ->
 *   re-parse and verify with the signer's certificate -> cache
 *   request -> CertID -> (generation, serial) -> cached DER
 *
 * The HSM signs only when a response is made or refreshed; answering a
 * request is a hash lookup under a read lock and a copy. */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "hsmca/issue.h"
#include "hsmca/lint.h"
#include "hsmca/ocsp.h"
#include "hsmca/profile.h"
#include "hsmca/util.h"

#define OCSP_SERIAL_MAX_OCTETS	((SERIAL_HEX_MAX - 1) / 2)	/* 20 */
#define OCSP_CN_MAX		64	/* ub-common-name */

/* The CertID hashes answered, in the order of the slots of an entry. */
enum ocsp_id_hash {
	OCSP_ID_SHA1,
	OCSP_ID_SHA256,
	OCSP_ID_HASH_MAX
};

static const EVP_MD *
id_hash_md(int slot)
{
	return slot == OCSP_ID_SHA1 ? EVP_sha1() : EVP_sha256();
}

static int
id_hash_nid(int slot)
{
	return slot == OCSP_ID_SHA1 ? NID_sha1 : NID_sha256;
}

/* The slot of a digest NID, -1 if it is not one answered. */
static int
id_hash_slot(int nid)
{
	if (nid == NID_sha1)
		return OCSP_ID_SHA1;
	if (nid == NID_sha256)
		return OCSP_ID_SHA256;
	return -1;
}

/* ---- the delegated responder certificate ---- */

/* The issuer's subject with " OCSP Responder" after its (last) CN, cut
 * at a character boundary to fit ub-common-name. */
static int
responder_subject(X509 *issuer, const char *subject, X509_NAME **out,
    struct hsmca_err *e)
{
	static const char suffix[] = " OCSP Responder";
	X509_NAME *n = NULL;
	X509_NAME_ENTRY *ne;
	unsigned char *cn = NULL;
	char buf[OCSP_CN_MAX * 4 + 1];
	int idx, last = -1, cnlen, ret = HSMCA_ERR_INTERNAL;

	*out = NULL;
	if (subject != NULL)
		return util_parse_name(subject, out, e);
	if ((n = X509_NAME_dup(X509_get_subject_name(issuer))) == NULL) {
		ret = err_set_ssl(e, HSMCA_ERR_ALLOC, "responder subject");
		goto out;
	}
	for (idx = -1; (idx = X509_NAME_get_index_by_NID(n, NID_commonName,
	    idx)) >= 0; )
		last = idx;
	if (last < 0) {
		if (!X509_NAME_add_entry_by_NID(n, NID_commonName,
		    MBSTRING_UTF8, (const unsigned char *)"OCSP Responder", -1,
		    -1, 0)) {
			err_set_ssl(e, ret, "responder subject");
			goto out;
		}
	} else {
		cnlen = ASN1_STRING_to_UTF8(&cn, X509_NAME_ENTRY_get_data(
		    X509_NAME_get_entry(n, last)));
		if (cnlen < 0) {
			err_set_ssl(e, ret, "the issuer's CN is not a string");
			goto out;
		}
		/* Characters, not bytes, count against the bound: cut the
		 * bytes only where a character starts, at the latest when
		 * the characters fit. */
		{
			int chars = 0, cut = 0, room = OCSP_CN_MAX -
			    (int)(sizeof(suffix) - 1);

			for (int i = 0; i < cnlen; i++) {
				if ((cn[i] & 0xc0) == 0x80)
					continue;
				if (chars == room)
					break;
				chars++;
				cut = i + 1;
				while (cut < cnlen && (cn[cut] & 0xc0) == 0x80)
					cut++;
			}
			snprintf(buf, sizeof(buf), "%.*s%s", cut,
			    (const char *)cn, suffix);
		}
		ne = X509_NAME_delete_entry(n, last);
		X509_NAME_ENTRY_free(ne);
		if (!X509_NAME_add_entry_by_NID(n, NID_commonName,
		    MBSTRING_UTF8, (const unsigned char *)buf, -1, last, 0)) {
			err_set_ssl(e, ret, "responder subject");
			goto out;
		}
	}
	*out = n;
	n = NULL;
	ret = 0;
out:
	OPENSSL_free(cn);
	X509_NAME_free(n);
	return ret;
}

void
ocsp_responder_profile(struct profile *prof)
{
	memset(prof, 0, sizeof(*prof));
	prof->name = (char *)OCSP_RESPONDER_PROFILE;
	prof->key_usage = PROFILE_KU_DIGITAL_SIGNATURE;
	prof->ext_key_usage = PROFILE_EKU_OCSP_SIGNING;
	prof->is_ca = 0;
	prof->pathlen = -1;
}

int
ocsp_responder_tbs(X509 *issuer, EVP_PKEY *responder_pub,
    const char *subject, time_t now, int64_t validity, X509 **out,
    struct hsmca_err *e)
{
	X509 *x = NULL;
	X509_NAME *name = NULL;
	ASN1_NULL *nocheck = NULL;
	X509V3_CTX ctx;
	time_t nb, na, inb, ina;
	int ret = HSMCA_ERR_INTERNAL;

	*out = NULL;
	if (issuer == NULL || responder_pub == NULL)
		return err_set(e, HSMCA_ERR_ARG, "OCSP responder certificate "
		    "without an issuer or a responder key");
	if (validity == 0)
		validity = OCSP_RESPONDER_VALIDITY_DEFAULT;
	if (validity < 0 || validity > OCSP_RESPONDER_VALIDITY_MAX)
		return err_set(e, HSMCA_ERR_ARG, "an OCSP responder "
		    "certificate is valid at most %lld days: it carries "
		    "ocsp-nocheck and cannot be revoked",
		    (long long)(OCSP_RESPONDER_VALIDITY_MAX / 86400));
	inb = issue_asn1_time(X509_get0_notBefore(issuer));
	ina = issue_asn1_time(X509_get0_notAfter(issuer));
	nb = now > inb ? now : inb;
	na = now + (time_t)validity < ina ? now + (time_t)validity : ina;
	if (inb == -1 || ina == -1 || na <= nb)
		return err_set(e, HSMCA_ERR_CA_STATE, "the issuer is not valid "
		    "at this time: no OCSP responder certificate under it");

	if ((ret = responder_subject(issuer, subject, &name, e)) != 0)
		goto out;
	ret = HSMCA_ERR_INTERNAL;
	if ((x = X509_new()) == NULL ||
	    !X509_set_version(x, X509_VERSION_3) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(issuer)) ||
	    !X509_set_subject_name(x, name) ||
	    ASN1_TIME_set(X509_getm_notBefore(x), nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL ||
	    !X509_set_pubkey(x, responder_pub)) {
		err_set_ssl(e, ret, "cannot build the OCSP responder "
		    "certificate");
		goto out;
	}
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	if ((ret = issue_add_ext(x, &ctx, NID_basic_constraints,
	    "critical,CA:FALSE", e)) != 0 ||
	    (ret = issue_add_ext(x, &ctx, NID_key_usage,
	    "critical,digitalSignature", e)) != 0 ||
	    (ret = issue_add_ext(x, &ctx, NID_ext_key_usage, "OCSPSigning",
	    e)) != 0)
		goto out;
	/* RFC 6960 §4.2.2.2.1: relying parties need not check this
	 * certificate's own revocation. */
	if ((nocheck = ASN1_NULL_new()) == NULL ||
	    X509_add1_ext_i2d(x, NID_id_pkix_OCSP_noCheck, nocheck, 0,
	    0) != 1) {
		ret = err_set_ssl(e, HSMCA_ERR_INTERNAL,
		    "id-pkix-ocsp-nocheck");
		goto out;
	}
	if ((ret = issue_add_identifiers(x, issuer, NULL, NULL, e)) != 0)
		goto out;
	*out = x;
	x = NULL;
	ret = 0;
out:
	X509_free(x);
	X509_NAME_free(name);
	ASN1_NULL_free(nocheck);
	return ret;
}

int
ocsp_responder_cert_make(struct hsm *h, X509 *issuer, EVP_PKEY *issuer_key,
    const EVP_MD *md, EVP_PKEY *responder_pub, const char *subject,
    time_t now, int64_t validity, X509 **out, struct hsmca_err *e)
{
	struct profile prof;
	X509 *x = NULL;
	ASN1_INTEGER *serial = NULL;
	char hex[SERIAL_HEX_MAX];
	int ret;

	*out = NULL;
	if (issuer_key == NULL)
		return err_set(e, HSMCA_ERR_ARG, "OCSP responder certificate "
		    "without the issuer's key");
	if ((ret = ocsp_responder_tbs(issuer, responder_pub, subject, now,
	    validity, &x, e)) != 0 ||
	    (ret = serial_generate(&serial, hex, e)) != 0)
		goto out;
	if (!X509_set_serialNumber(x, serial)) {
		ret = err_set_ssl(e, HSMCA_ERR_INTERNAL, "serial");
		goto out;
	}
	/* The checks every issued certificate passes, against what a
	 * responder certificate must say. */
	ocsp_responder_profile(&prof);
	if ((ret = lint_presign(x, issuer, &prof, e)) != 0)
		goto out;
	ret = issue_sign(h, x, issuer_key, md, issuer, out, e);
out:
	X509_free(x);
	ASN1_INTEGER_free(serial);
	return ret;
}

/* ---- responses ---- */

int
ocsp_error(int status, unsigned char **der, size_t *len, struct hsmca_err *e)
{
	OCSP_RESPONSE *r = NULL;
	unsigned char *out = NULL;
	int n;

	*der = NULL;
	*len = 0;
	switch (status) {
	case OCSP_RESPONSE_STATUS_MALFORMEDREQUEST:
	case OCSP_RESPONSE_STATUS_INTERNALERROR:
	case OCSP_RESPONSE_STATUS_TRYLATER:
	case OCSP_RESPONSE_STATUS_SIGREQUIRED:
	case OCSP_RESPONSE_STATUS_UNAUTHORIZED:
		break;
	default:
		return err_set(e, HSMCA_ERR_ARG, "%d is not an OCSP error "
		    "status", status);
	}
	if ((r = OCSP_response_create(status, NULL)) == NULL ||
	    (n = i2d_OCSP_RESPONSE(r, &out)) <= 0) {
		OCSP_RESPONSE_free(r);
		return err_set_ssl(e, HSMCA_ERR_ALLOC, "OCSP error response");
	}
	OCSP_RESPONSE_free(r);
	*der = out;
	*len = (size_t)n;
	return 0;
}

/* The signer is fit to sign at now; *until: the notAfter of the
 * certificate that verifies its responses, past which no nextUpdate may
 * go. */
static int
signer_check(const struct ocsp_signer *s, time_t now, time_t *until,
    struct hsmca_err *e)
{
	time_t nb, na;

	if (s == NULL || s->issuer == NULL || s->key == NULL)
		return err_set(e, HSMCA_ERR_ARG, "OCSP response without a "
		    "signer");
	if (s->responder_cert == NULL) {
		if ((*until = issue_asn1_time(X509_get0_notAfter(
		    s->issuer))) == -1 || now >= *until)
			return err_set(e, HSMCA_ERR_CA_STATE, "the CA "
			    "generation has expired: it signs no OCSP "
			    "response");
		return 0;
	}
	if (X509_check_issued(s->issuer, s->responder_cert) != X509_V_OK)
		return err_set(e, HSMCA_ERR_CA_STATE, "the OCSP responder "
		    "certificate was not issued by this CA generation");
	if ((X509_get_extension_flags(s->responder_cert) & EXFLAG_XKUSAGE) ==
	    0 || (X509_get_extended_key_usage(s->responder_cert) &
	    XKU_OCSP_SIGN) == 0)
		return err_set(e, HSMCA_ERR_CA_STATE, "the OCSP responder "
		    "certificate lacks extendedKeyUsage OCSPSigning");
	nb = issue_asn1_time(X509_get0_notBefore(s->responder_cert));
	na = issue_asn1_time(X509_get0_notAfter(s->responder_cert));
	if (nb == -1 || na == -1 || now < nb || now >= na)
		return err_set(e, HSMCA_ERR_CA_STATE, "the OCSP responder "
		    "certificate is not valid now; make a new one");
	*until = na;
	return 0;
}

/* Verify-after-sign on the bytes about to be released: they parse back
 * to one successful response whose signature verifies with the signer's
 * certificate and which says what was asked. */
static int
response_verify(const unsigned char *der, long len, X509 *signer,
    const OCSP_CERTID *cid, int status, struct hsmca_err *e)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *r = NULL;
	OCSP_BASICRESP *bs = NULL;
	OCSP_SINGLERESP *single;
	STACK_OF(X509) *signers = NULL;
	X509_STORE *xs = NULL;
	int reason, ret = HSMCA_ERR_VERIFY;

	ERR_clear_error();
	if ((r = d2i_OCSP_RESPONSE(NULL, &p, len)) == NULL || p != der + len ||
	    OCSP_response_status(r) != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
	    (bs = OCSP_response_get1_basic(r)) == NULL ||
	    OCSP_resp_count(bs) != 1) {
		err_set_ssl(e, ret, "the signed OCSP response does not parse "
		    "back");
		goto out;
	}
	/* The signature alone, with signer's key: NOINTERN so that no
	 * certificate the response carries stands in for it, NOVERIFY
	 * because the chain is the relying party's business. */
	if ((signers = sk_X509_new_null()) == NULL ||
	    !sk_X509_push(signers, signer) ||
	    (xs = X509_STORE_new()) == NULL) {
		ret = err_set_ssl(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	if (OCSP_basic_verify(bs, signers, xs, OCSP_NOINTERN |
	    OCSP_NOVERIFY) != 1) {
		err_set_ssl(e, ret, "verify-after-sign: the OCSP response does "
		    "not verify with the signer's certificate; check that the "
		    "HSM key matches it");
		goto out;
	}
	single = OCSP_resp_get0(bs, 0);
	if (OCSP_id_cmp(cid, OCSP_SINGLERESP_get0_id(single)) != 0 ||
	    OCSP_single_get0_status(single, &reason, NULL, NULL, NULL) !=
	    status) {
		err_set(e, ret, "the signed OCSP response says something else "
		    "than was asked");
		goto out;
	}
	ret = 0;
out:
	sk_X509_free(signers);
	X509_STORE_free(xs);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(r);
	return ret;
}

static int
sign_status(const struct ocsp_signer *s, const char *serial, int status,
    int reason, time_t revoked_at, const EVP_MD *id_md, time_t now,
    int64_t validity, unsigned char **der, size_t *len, struct hsmca_err *e)
{
	char canon[SERIAL_HEX_MAX];
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	ASN1_TIME *thisupd = NULL, *nextupd = NULL, *revtime = NULL;
	time_t until = 0;
	OCSP_CERTID *cid = NULL;
	OCSP_BASICRESP *bs = NULL;
	OCSP_RESPONSE *r = NULL;
	X509 *signer;
	unsigned char *out = NULL;
	unsigned long flags;
	int n, ok, ret;

	*der = NULL;
	*len = 0;
	if (validity == 0)
		validity = OCSP_VALIDITY_DEFAULT;
	if (validity < OCSP_VALIDITY_MIN || validity > OCSP_VALIDITY_MAX)
		return err_set(e, HSMCA_ERR_ARG, "an OCSP response's "
		    "nextUpdate must be 8 hours to 7 days after its "
		    "thisUpdate, not %lld seconds", (long long)validity);
	if ((ret = signer_check(s, now, &until, e)) != 0)
		return ret;
	/* Near the end of the signer's certificate (a generation's last
	 * days: its responder certificate ends with it), the response
	 * ends with it too. */
	if (now + (time_t)validity > until)
		validity = until - now;
	if (id_md == NULL)
		id_md = EVP_sha1();
	if (id_hash_slot(EVP_MD_get_type(id_md)) < 0)
		return err_set(e, HSMCA_ERR_ARG, "OCSP CertIDs are hashed with "
		    "SHA-1 or SHA-256, not %s", EVP_MD_get0_name(id_md));
	if (serial == NULL || serial_normalize(serial, canon) != 0)
		return err_set(e, HSMCA_ERR_ARG, "\"%s\" is not a serial",
		    serial == NULL ? "" : serial);
	signer = s->responder_cert != NULL ? s->responder_cert : s->issuer;

	ret = HSMCA_ERR_INTERNAL;
	if (!BN_hex2bn(&bn, canon) ||
	    (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    (cid = OCSP_cert_id_new(id_md, X509_get_subject_name(s->issuer),
	    X509_get0_pubkey_bitstr(s->issuer), ai)) == NULL ||
	    (thisupd = ASN1_TIME_set(NULL, now)) == NULL ||
	    (nextupd = ASN1_TIME_set(NULL, now + (time_t)validity)) == NULL ||
	    (status == V_OCSP_CERTSTATUS_REVOKED &&
	    (revtime = ASN1_TIME_set(NULL, revoked_at)) == NULL) ||
	    (bs = OCSP_BASICRESP_new()) == NULL) {
		err_set_ssl(e, ret, "cannot build the OCSP response");
		goto out;
	}
	/* Unspecified is expressed by leaving the reason out, as in CRLs. */
	if (status != V_OCSP_CERTSTATUS_REVOKED || reason <= 0 ||
	    reason > STORE_REASON_MAX)
		reason = OCSP_REVOKED_STATUS_NOSTATUS;
	if (OCSP_basic_add1_status(bs, cid, status, reason, revtime, thisupd,
	    nextupd) == NULL) {
		err_set_ssl(e, ret, "cannot build the OCSP response");
		goto out;
	}
	/* responderID byKey; the CA's own certificate is left out, the
	 * client has it already. */
	flags = OCSP_RESPID_KEY;
	if (s->responder_cert == NULL)
		flags |= OCSP_NOCERTS;
	ERR_clear_error();
	if (s->h != NULL)
		hsm_sign_enter(s->h);
	ok = OCSP_basic_sign(bs, signer, s->key, s->md, NULL, flags);
	if (s->h != NULL)
		hsm_sign_leave(s->h);
	if (ok <= 0) {
		ret = err_set_ssl(e, HSMCA_ERR_HSM, "the HSM did not sign the "
		    "OCSP response for serial %s", canon);
		goto out;
	}
	if ((r = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL,
	    bs)) == NULL || (n = i2d_OCSP_RESPONSE(r, &out)) <= 0) {
		ret = err_set_ssl(e, HSMCA_ERR_INTERNAL, "cannot encode the "
		    "OCSP response");
		goto out;
	}
	if ((ret = response_verify(out, n, signer, cid, status, e)) != 0)
		goto out;
	*der = out;
	*len = (size_t)n;
	out = NULL;
	ret = 0;
out:
	BN_free(bn);
	ASN1_INTEGER_free(ai);
	ASN1_TIME_free(thisupd);
	ASN1_TIME_free(nextupd);
	ASN1_TIME_free(revtime);
	OCSP_CERTID_free(cid);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(r);
	OPENSSL_free(out);
	return ret;
}

int
ocsp_presign(const struct ocsp_signer *s, const struct store_cert *c,
    const EVP_MD *id_md, time_t now, int64_t validity, unsigned char **der,
    size_t *len, struct hsmca_err *e)
{
	*der = NULL;
	*len = 0;
	switch (c->status) {
	case STORE_CERT_VALID:
		return sign_status(s, c->serial, V_OCSP_CERTSTATUS_GOOD, -1, 0,
		    id_md, now, validity, der, len, e);
	case STORE_CERT_REVOKED:
		return sign_status(s, c->serial, V_OCSP_CERTSTATUS_REVOKED,
		    c->revoke_reason, c->revoked_at, id_md, now, validity,
		    der, len, e);
	default:
		return err_set(e, HSMCA_ERR_CA_STATE, "serial %s is %s, not "
		    "issued: its status is unknown", c->serial,
		    store_cert_status_name(c->status));
	}
}

int
ocsp_unknown(const struct ocsp_signer *s, const char *serial,
    const EVP_MD *id_md, time_t now, int64_t validity, unsigned char **der,
    size_t *len, struct hsmca_err *e)
{
	return sign_status(s, serial, V_OCSP_CERTSTATUS_UNKNOWN, -1, 0, id_md,
	    now, validity, der, len, e);
}

/* ---- the cache ---- */

struct ocsp_issuer {
	int64_t		gen_id;
	unsigned char	name_hash[OCSP_ID_HASH_MAX][EVP_MAX_MD_SIZE];
	unsigned char	key_hash[OCSP_ID_HASH_MAX][EVP_MAX_MD_SIZE];
	unsigned int	hash_len[OCSP_ID_HASH_MAX];
};

struct ocsp_slot {
	unsigned char	*der;		/* NULL: none */
	size_t		 len;
	time_t		 this_update;
	time_t		 next_update;
	char		 last_modified[OCSP_HTTP_DATE];
	char		 expires[OCSP_HTTP_DATE];
	char		 etag[OCSP_ETAG];
};

/* An HTTP date (RFC 9110 5.6.7). */
static void
http_date(time_t t, char out[OCSP_HTTP_DATE])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, OCSP_HTTP_DATE,
	    "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
		snprintf(out, OCSP_HTTP_DATE, "Thu, 01 Jan 1970 00:00:00 GMT");
}

/* What an HTTP cache needs of a response, made once when it is cached
 * rather than on every answer. */
static void
slot_http(struct ocsp_slot *sl)
{
	unsigned char md[SHA_DIGEST_LENGTH];
	char hex[2 * SHA_DIGEST_LENGTH + 1];

	http_date(sl->this_update, sl->last_modified);
	http_date(sl->next_update, sl->expires);
	SHA1(sl->der, sl->len, md);
	util_hex(md, sizeof(md), hex);
	snprintf(sl->etag, sizeof(sl->etag), "\"%s\"", hex);
}

struct ocsp_entry {
	struct ocsp_entry	*next;
	uint64_t		 hash;
	size_t			 issuer;	/* index into issuers */
	int			 status;	/* V_OCSP_CERTSTATUS_* */
	int			 reason;	/* revoked: OCSP_REVOKED_STATUS_* */
	time_t			 revoked_at;
	time_t			 this_update;	/* the latest put */
	size_t			 serial_len;
	unsigned char		 serial[OCSP_SERIAL_MAX_OCTETS];
	struct ocsp_slot	 slot[OCSP_ID_HASH_MAX];
};

struct ocsp_cache {
	pthread_rwlock_t	 lock;
	struct ocsp_entry	**buckets;
	size_t			 nbuckets;	/* a power of two */
	size_t			 count;
	size_t			 unknowns;	/* entries of status unknown */
	struct ocsp_issuer	*issuers;
	size_t			 nissuers;
};

/* What a CertID names, as a key of the table. */
struct ocsp_key {
	size_t		issuer;
	int		slot;
	size_t		serial_len;
	unsigned char	serial[OCSP_SERIAL_MAX_OCTETS];
	uint64_t	hash;
};

#define OCSP_BUCKETS_MIN	1024

int
ocsp_cache_new(struct ocsp_cache **out, struct hsmca_err *e)
{
	struct ocsp_cache *c;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->buckets = calloc(OCSP_BUCKETS_MIN,
	    sizeof(*c->buckets))) == NULL) {
		free(c);
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	}
	c->nbuckets = OCSP_BUCKETS_MIN;
	if (pthread_rwlock_init(&c->lock, NULL) != 0) {
		free(c->buckets);
		free(c);
		return err_set(e, HSMCA_ERR_INTERNAL, "pthread_rwlock_init");
	}
	*out = c;
	return 0;
}

static void
entry_free(struct ocsp_entry *en)
{
	for (int i = 0; i < OCSP_ID_HASH_MAX; i++)
		OPENSSL_free(en->slot[i].der);
	free(en);
}

void
ocsp_cache_free(struct ocsp_cache *c)
{
	struct ocsp_entry *en, *next;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nbuckets; i++)
		for (en = c->buckets[i]; en != NULL; en = next) {
			next = en->next;
			entry_free(en);
		}
	free(c->buckets);
	free(c->issuers);
	pthread_rwlock_destroy(&c->lock);
	free(c);
}

int
ocsp_cache_add_issuer(struct ocsp_cache *c, int64_t gen_id, X509 *issuer,
    struct hsmca_err *e)
{
	struct ocsp_issuer is, *v;
	const ASN1_BIT_STRING *key;
	int ret = 0;

	memset(&is, 0, sizeof(is));
	is.gen_id = gen_id;
	if (issuer == NULL ||
	    (key = X509_get0_pubkey_bitstr(issuer)) == NULL)
		return err_set(e, HSMCA_ERR_ARG, "no issuer certificate");
	for (int i = 0; i < OCSP_ID_HASH_MAX; i++) {
		unsigned int n1 = 0, n2 = 0;

		if (!X509_NAME_digest(X509_get_subject_name(issuer),
		    id_hash_md(i), is.name_hash[i], &n1) ||
		    !EVP_Digest(ASN1_STRING_get0_data(key),
		    (size_t)ASN1_STRING_length(key), is.key_hash[i], &n2,
		    id_hash_md(i), NULL) || n1 != n2)
			return err_set_ssl(e, HSMCA_ERR_INTERNAL, "issuer "
			    "hashes");
		is.hash_len[i] = n1;
	}
	pthread_rwlock_wrlock(&c->lock);
	for (size_t i = 0; i < c->nissuers; i++)
		if (c->issuers[i].gen_id == gen_id ||
		    memcmp(c->issuers[i].key_hash, is.key_hash,
		    sizeof(is.key_hash)) == 0) {
			if (c->issuers[i].gen_id != gen_id ||
			    memcmp(&c->issuers[i], &is, sizeof(is)) != 0)
				ret = err_set(e, HSMCA_ERR_EXISTS, "the OCSP "
				    "cache holds CA generation %lld with "
				    "another certificate or key",
				    (long long)c->issuers[i].gen_id);
			goto out;
		}
	if ((v = reallocarray(c->issuers, c->nissuers + 1,
	    sizeof(*v))) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	c->issuers = v;
	c->issuers[c->nissuers++] = is;
out:
	pthread_rwlock_unlock(&c->lock);
	return ret;
}

/* FNV-1a over the issuer and the serial. Serials are random and only
 * the CA inserts, so a client cannot lengthen a chain. */
static uint64_t
key_hash(size_t issuer, const unsigned char *serial, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < sizeof(issuer); i++) {
		h ^= (issuer >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	for (size_t i = 0; i < len; i++) {
		h ^= serial[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* The key of a CertID (under the lock). 0; OCSP_RESPONSE_STATUS_
 * MALFORMEDREQUEST for a serial that cannot be one; _UNAUTHORIZED for a
 * hash or an issuer that is not ours. */
static int
certid_key(const struct ocsp_cache *c, const OCSP_CERTID *cid,
    struct ocsp_key *k)
{
	ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
	ASN1_OBJECT *alg = NULL;
	ASN1_INTEGER *sn = NULL;
	const unsigned char *p;
	size_t i;
	int len;

	memset(k, 0, sizeof(*k));
	if (!OCSP_id_get0_info(&nh, &alg, &kh, &sn, (OCSP_CERTID *)cid) ||
	    sn == NULL || nh == NULL || kh == NULL)
		return OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
	if (ASN1_STRING_type(sn) != V_ASN1_INTEGER)
		return OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;	/* negative */
	p = ASN1_STRING_get0_data(sn);
	len = ASN1_STRING_length(sn);
	while (len > 0 && *p == 0) {
		p++;
		len--;
	}
	if (len > OCSP_SERIAL_MAX_OCTETS)
		return OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
	if ((k->slot = id_hash_slot(OBJ_obj2nid(alg))) < 0)
		return OCSP_RESPONSE_STATUS_UNAUTHORIZED;
	for (i = 0; i < c->nissuers; i++) {
		const struct ocsp_issuer *is = &c->issuers[i];
		unsigned int hl = is->hash_len[k->slot];

		if ((unsigned int)ASN1_STRING_length(nh) == hl &&
		    (unsigned int)ASN1_STRING_length(kh) == hl &&
		    memcmp(ASN1_STRING_get0_data(kh), is->key_hash[k->slot],
		    hl) == 0 &&
		    memcmp(ASN1_STRING_get0_data(nh), is->name_hash[k->slot],
		    hl) == 0)
			break;
	}
	if (i == c->nissuers)
		return OCSP_RESPONSE_STATUS_UNAUTHORIZED;
	k->issuer = i;
	k->serial_len = (size_t)len;
	memcpy(k->serial, p, (size_t)len);
	k->hash = key_hash(i, k->serial, k->serial_len);
	return 0;
}

static struct ocsp_entry *
cache_find(const struct ocsp_cache *c, const struct ocsp_key *k)
{
	struct ocsp_entry *en;

	for (en = c->buckets[k->hash & (c->nbuckets - 1)]; en != NULL;
	    en = en->next)
		if (en->hash == k->hash && en->issuer == k->issuer &&
		    en->serial_len == k->serial_len &&
		    memcmp(en->serial, k->serial, k->serial_len) == 0)
			return en;
	return NULL;
}

/* Double the buckets past a load of 1; failing to is not an error (the
 * chains grow instead). */
static void
cache_grow(struct ocsp_cache *c)
{
	struct ocsp_entry **nb, *en, *next;
	size_t n = c->nbuckets * 2;

	if (c->count < c->nbuckets || n > SIZE_MAX / sizeof(*nb) ||
	    (nb = calloc(n, sizeof(*nb))) == NULL)
		return;
	for (size_t i = 0; i < c->nbuckets; i++)
		for (en = c->buckets[i]; en != NULL; en = next) {
			next = en->next;
			en->next = nb[en->hash & (n - 1)];
			nb[en->hash & (n - 1)] = en;
		}
	free(c->buckets);
	c->buckets = nb;
	c->nbuckets = n;
}

int
ocsp_cache_put(struct ocsp_cache *c, const unsigned char *der, size_t len,
    struct hsmca_err *e)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *r = NULL;
	OCSP_BASICRESP *bs = NULL;
	OCSP_SINGLERESP *single;
	ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL, *revtime = NULL;
	struct ocsp_entry *en = NULL, *fresh = NULL;
	struct ocsp_key k;
	unsigned char *copy = NULL;
	time_t tu, nu, rt = 0;
	int status, reason, locked = 0, ret = HSMCA_ERR_ARG;

	if (der == NULL || len == 0 || len > LONG_MAX ||
	    (r = d2i_OCSP_RESPONSE(NULL, &p, (long)len)) == NULL ||
	    p != der + len ||
	    OCSP_response_status(r) != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
	    (bs = OCSP_response_get1_basic(r)) == NULL ||
	    OCSP_resp_count(bs) != 1) {
		err_set_ssl(e, ret, "not a pre-signed OCSP response (one "
		    "successful SingleResponse)");
		goto out;
	}
	single = OCSP_resp_get0(bs, 0);
	status = OCSP_single_get0_status(single, &reason, &revtime, &thisupd,
	    &nextupd);
	if (status < 0 || thisupd == NULL || nextupd == NULL ||
	    (tu = issue_asn1_time(thisupd)) == -1 ||
	    (nu = issue_asn1_time(nextupd)) == -1 ||
	    (revtime != NULL && (rt = issue_asn1_time(revtime)) == -1)) {
		err_set(e, ret, "a pre-signed OCSP response needs thisUpdate "
		    "and nextUpdate");
		goto out;
	}
	if ((copy = OPENSSL_malloc(len)) == NULL ||
	    (fresh = calloc(1, sizeof(*fresh))) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	memcpy(copy, der, len);

	pthread_rwlock_wrlock(&c->lock);
	locked = 1;
	if (certid_key(c, OCSP_SINGLERESP_get0_id(single), &k) != 0) {
		err_set(e, ret, "the OCSP response names an issuer the cache "
		    "does not hold, or a CertID it does not answer");
		goto out;
	}
	if (status != V_OCSP_CERTSTATUS_REVOKED)
		reason = -1;
	if ((en = cache_find(c, &k)) == NULL) {
		if (status == V_OCSP_CERTSTATUS_UNKNOWN &&
		    c->unknowns >= OCSP_UNKNOWN_MAX) {
			ret = 0;	/* answered, not kept */
			goto out;
		}
		en = fresh;
		fresh = NULL;
		en->hash = k.hash;
		en->issuer = k.issuer;
		en->serial_len = k.serial_len;
		memcpy(en->serial, k.serial, k.serial_len);
		en->status = status;
		en->reason = reason;
		en->revoked_at = rt;
		en->this_update = tu;
		en->next = c->buckets[k.hash & (c->nbuckets - 1)];
		c->buckets[k.hash & (c->nbuckets - 1)] = en;
		c->count++;
		if (status == V_OCSP_CERTSTATUS_UNKNOWN)
			c->unknowns++;
		cache_grow(c);
	} else if (status != en->status || reason != en->reason ||
	    rt != en->revoked_at) {
		/* A response signed before the status changed must not
		 * undo the change it did not see. */
		if (tu < en->this_update) {
			ret = err_set(e, HSMCA_ERR_EXISTS, "the OCSP cache "
			    "holds a newer response with another status");
			goto out;
		}
		for (int i = 0; i < OCSP_ID_HASH_MAX; i++) {
			OPENSSL_free(en->slot[i].der);
			memset(&en->slot[i], 0, sizeof(en->slot[i]));
		}
		if (en->status == V_OCSP_CERTSTATUS_UNKNOWN)
			c->unknowns--;
		if (status == V_OCSP_CERTSTATUS_UNKNOWN)
			c->unknowns++;
		en->status = status;
		en->reason = reason;
		en->revoked_at = rt;
	}
	if (tu > en->this_update)
		en->this_update = tu;
	OPENSSL_free(en->slot[k.slot].der);
	en->slot[k.slot].der = copy;
	en->slot[k.slot].len = len;
	en->slot[k.slot].this_update = tu;
	en->slot[k.slot].next_update = nu;
	slot_http(&en->slot[k.slot]);
	copy = NULL;
	ret = 0;
out:
	if (locked)
		pthread_rwlock_unlock(&c->lock);
	free(fresh);
	OPENSSL_free(copy);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(r);
	return ret;
}

size_t
ocsp_cache_count(struct ocsp_cache *c)
{
	size_t n;

	pthread_rwlock_rdlock(&c->lock);
	n = c->count;
	pthread_rwlock_unlock(&c->lock);
	return n;
}

size_t
ocsp_cache_unknowns(struct ocsp_cache *c)
{
	size_t n;

	pthread_rwlock_rdlock(&c->lock);
	n = c->unknowns;
	pthread_rwlock_unlock(&c->lock);
	return n;
}

size_t
ocsp_cache_expire_unknowns(struct ocsp_cache *c, time_t now)
{
	struct ocsp_entry **pp, *en;
	size_t dropped = 0;
	int live;

	pthread_rwlock_wrlock(&c->lock);
	for (size_t b = 0; b < c->nbuckets && c->unknowns > 0; b++)
		for (pp = &c->buckets[b]; (en = *pp) != NULL; ) {
			live = 0;
			for (int i = 0; i < OCSP_ID_HASH_MAX; i++)
				if (en->slot[i].der != NULL &&
				    en->slot[i].next_update > now)
					live = 1;
			if (en->status != V_OCSP_CERTSTATUS_UNKNOWN || live) {
				pp = &en->next;
				continue;
			}
			*pp = en->next;
			entry_free(en);
			c->count--;
			c->unknowns--;
			dropped++;
		}
	pthread_rwlock_unlock(&c->lock);
	return dropped;
}

/* The canonical hex of a serial into the bytes of a key; -1 if it is
 * not one. */
static int
serial_key(const char *hex, struct ocsp_key *k)
{
	size_t len = strlen(hex);
	int hi, lo;

	if (len == 0 || len % 2 != 0 || len / 2 > OCSP_SERIAL_MAX_OCTETS)
		return -1;
	k->serial_len = 0;
	for (size_t i = 0; i < len; i += 2) {
		hi = OPENSSL_hexchar2int((unsigned char)hex[i]);
		lo = OPENSSL_hexchar2int((unsigned char)hex[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		k->serial[k->serial_len++] = (unsigned char)(hi << 4 | lo);
	}
	/* "00" is serial 0: no octets, as certid_key makes it. */
	while (k->serial_len > 0 && k->serial[0] == 0) {
		memmove(k->serial, k->serial + 1, --k->serial_len);
	}
	return 0;
}

int
ocsp_cache_needs(struct ocsp_cache *c, int64_t gen_id, const char *serial,
    int status, int reason, time_t revoked_at, time_t before)
{
	const struct ocsp_entry *en;
	struct ocsp_key k;
	size_t i;
	int need = OCSP_NEED_SHA1;

	memset(&k, 0, sizeof(k));
	if (serial_key(serial, &k) != 0)
		return 0;
	if (status != V_OCSP_CERTSTATUS_REVOKED) {
		reason = -1;
		revoked_at = 0;
	} else if (reason <= 0)
		reason = OCSP_REVOKED_STATUS_NOSTATUS;	/* left out */
	pthread_rwlock_rdlock(&c->lock);
	for (i = 0; i < c->nissuers && c->issuers[i].gen_id != gen_id; i++)
		;
	if (i == c->nissuers)
		goto out;
	k.issuer = i;
	k.hash = key_hash(i, k.serial, k.serial_len);
	if ((en = cache_find(c, &k)) == NULL || en->status != status ||
	    en->reason != reason || en->revoked_at != revoked_at)
		goto out;
	need = 0;
	if (en->slot[OCSP_ID_SHA1].der == NULL ||
	    en->slot[OCSP_ID_SHA1].next_update <= before)
		need |= OCSP_NEED_SHA1;
	if (en->slot[OCSP_ID_SHA256].der != NULL &&
	    en->slot[OCSP_ID_SHA256].next_update <= before)
		need |= OCSP_NEED_SHA256;
out:
	pthread_rwlock_unlock(&c->lock);
	return need;
}

static void
serial_hex(const unsigned char *serial, size_t len, char hex[SERIAL_HEX_MAX])
{
	if (len == 0)
		memcpy(hex, "00", 3);
	else
		util_hex(serial, len, hex);
}

/* Append one response to a growing array. */
static int
due_push(struct ocsp_due **v, size_t *cap, size_t count,
    const struct ocsp_due *d)
{
	struct ocsp_due *nv;
	size_t ncap;

	if (count == *cap) {
		ncap = *cap == 0 ? 64 : *cap * 2;
		if ((nv = reallocarray(*v, ncap, sizeof(*nv))) == NULL)
			return -1;
		*v = nv;
		*cap = ncap;
	}
	(*v)[count] = *d;
	return 0;
}

int
ocsp_cache_due(struct ocsp_cache *c, time_t before, size_t max,
    struct ocsp_due **out, size_t *n, struct hsmca_err *e)
{
	struct ocsp_due *v = NULL, d;
	struct ocsp_entry *en;
	size_t cap = 0, count = 0;
	int ret = 0;

	*out = NULL;
	*n = 0;
	pthread_rwlock_rdlock(&c->lock);
	for (size_t b = 0; b < c->nbuckets && count < max; b++)
		for (en = c->buckets[b]; en != NULL && count < max;
		    en = en->next)
			for (int i = 0; i < OCSP_ID_HASH_MAX && count < max;
			    i++) {
				if (en->slot[i].der == NULL ||
				    en->slot[i].next_update > before)
					continue;
				d.gen_id = c->issuers[en->issuer].gen_id;
				serial_hex(en->serial, en->serial_len,
				    d.serial);
				d.id_nid = id_hash_nid(i);
				d.status = en->status;
				d.next_update = en->slot[i].next_update;
				if (due_push(&v, &cap, count, &d) != 0) {
					ret = err_set(e, HSMCA_ERR_ALLOC,
					    "out of memory");
					goto out;
				}
				count++;
			}
out:
	pthread_rwlock_unlock(&c->lock);
	if (ret != 0) {
		free(v);
		return ret;
	}
	*out = v;
	*n = count;
	return 0;
}

int
ocsp_answer(struct ocsp_cache *c, const unsigned char *req, size_t reqlen,
    time_t now, unsigned char **der, size_t *len, int *found,
    struct ocsp_query *q, struct hsmca_err *e)
{
	const unsigned char *p = req;
	OCSP_REQUEST *r = NULL;
	const struct ocsp_entry *en;
	const struct ocsp_slot *sl;
	struct ocsp_key k;
	int refuse = 0, ret = 0;

	*der = NULL;
	*len = 0;
	*found = 0;
	memset(q, 0, sizeof(*q));
	if (req == NULL || reqlen == 0 || reqlen > OCSP_REQUEST_MAX_BYTES ||
	    (r = d2i_OCSP_REQUEST(NULL, &p, (long)reqlen)) == NULL ||
	    p != req + reqlen ||
	    OCSP_request_onereq_count(r) < 1 ||
	    OCSP_request_onereq_count(r) > OCSP_REQUEST_IDS_MAX) {
		ERR_clear_error();
		refuse = OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
		goto out;
	}
	pthread_rwlock_rdlock(&c->lock);
	refuse = certid_key(c, OCSP_onereq_get0_id(
	    OCSP_request_onereq_get0(r, 0)), &k);
	if (refuse == 0) {
		q->gen_id = c->issuers[k.issuer].gen_id;
		q->id_nid = id_hash_nid(k.slot);
		serial_hex(k.serial, k.serial_len, q->serial);
		if ((en = cache_find(c, &k)) != NULL &&
		    (sl = &en->slot[k.slot])->der != NULL &&
		    now < sl->next_update) {
			if ((*der = OPENSSL_malloc(sl->len)) == NULL)
				ret = err_set(e, HSMCA_ERR_ALLOC,
				    "out of memory");
			else {
				memcpy(*der, sl->der, sl->len);
				*len = sl->len;
				*found = 1;
				q->this_update = sl->this_update;
				q->next_update = sl->next_update;
				memcpy(q->last_modified, sl->last_modified,
				    sizeof(q->last_modified));
				memcpy(q->expires, sl->expires,
				    sizeof(q->expires));
				memcpy(q->etag, sl->etag, sizeof(q->etag));
			}
		}
	}
	pthread_rwlock_unlock(&c->lock);
out:
	OCSP_REQUEST_free(r);
	if (refuse != 0) {
		memset(q, 0, sizeof(*q));
		ret = ocsp_error(refuse, der, len, e);
	}
	return ret;
}
