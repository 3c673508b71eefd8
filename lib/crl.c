/* crl.c: the CRL of one CA generation.
 *
 *   revoked entries (one index scan, in serial order) -> DER of the
 *   revokedCertificates, written as they come -> TBSCertList -> CRL
 *   number (committed) -> HSM signs the TBS once -> verify the
 *   signature with the CA's public key -> release
 *
 * Entries come out of the store already in ascending serial order, so
 * they are appended as they come: no sort and no object per entry,
 * whatever their number. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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

/* ---- DER, written directly ----
 *
 * A CRL is mostly its revokedCertificates: at 1,000,000 entries,
 * building an X509_REVOKED per entry and letting i2d_X509_CRL encode
 * them cost more than everything else together. The entries are
 * written here as DER while the store's index is scanned; OpenSSL
 * encodes the few fields around them (algorithm, issuer, times,
 * extensions) and signs the finished TBSCertList once. */

/* A DER buffer that grows. */
struct der_buf {
	unsigned char	*p;
	size_t		 len, cap;
};

static int
der_reserve(struct der_buf *b, size_t n)
{
	unsigned char *np;
	size_t cap;

	if (n <= b->cap - b->len)
		return 0;
	cap = b->cap == 0 ? 4096 : b->cap;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2)
			return -1;
		cap *= 2;
	}
	if ((np = OPENSSL_realloc(b->p, cap)) == NULL)
		return -1;
	b->p = np;
	b->cap = cap;
	return 0;
}

static int
der_append(struct der_buf *b, const void *data, size_t n)
{
	if (der_reserve(b, n) != 0)
		return -1;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

/* Bytes of an identifier and length octets for content of len bytes. */
static size_t
der_header_size(size_t len)
{
	size_t n = 2;

	if (len >= 0x80)
		for (; len > 0; len >>= 8)
			n++;
	return n;
}

/* Write a header at p; returns the bytes written. */
static size_t
der_header(unsigned char *p, unsigned char tag, size_t len)
{
	size_t n = der_header_size(len), i;

	p[0] = tag;
	if (n == 2) {
		p[1] = (unsigned char)len;
		return 2;
	}
	p[1] = (unsigned char)(0x80 | (n - 2));
	for (i = n - 1; i >= 2; i--) {
		p[i] = (unsigned char)(len & 0xff);
		len >>= 8;
	}
	return n;
}

/* Append the DER of an OpenSSL object (i2d_TYPE fn); ok = 0 on failure. */
#define DER_APPEND_I2D(b, fn, obj, ok) do {				\
	unsigned char *t_ = NULL;					\
	int n_ = fn((obj), &t_);					\
									\
	if (n_ <= 0 || der_append((b), t_, (size_t)n_) != 0)		\
		(ok) = 0;						\
	OPENSSL_free(t_);						\
} while (0)

/* Two decimal digits of v (0..99) at p. */
static unsigned char *
put2(unsigned char *p, int v)
{
	*p++ = (unsigned char)('0' + v / 10);
	*p++ = (unsigned char)('0' + v % 10);
	return p;
}

/* RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after (and
 * before 1950), as ASN1_TIME_set chooses. out: 17 bytes; 0 for a year
 * that neither can hold. */
static size_t
der_time(time_t t, unsigned char *out)
{
	struct tm tm;
	unsigned char *p = out + 2;
	int year;

	if (gmtime_r(&t, &tm) == NULL)
		return 0;
	year = tm.tm_year + 1900;
	if (year < 0 || year > 9999)
		return 0;
	if (year >= 1950 && year < 2050) {
		out[0] = V_ASN1_UTCTIME;
		out[1] = 13;
	} else {
		out[0] = V_ASN1_GENERALIZEDTIME;
		out[1] = 15;
		p = put2(p, year / 100);
	}
	p = put2(p, year % 100);
	p = put2(p, tm.tm_mon + 1);
	p = put2(p, tm.tm_mday);
	p = put2(p, tm.tm_hour);
	p = put2(p, tm.tm_min);
	p = put2(p, tm.tm_sec);
	*p++ = 'Z';
	return (size_t)(p - out);
}

static int
hex_nibble(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The INTEGER content of a serial in canonical hex (its magnitude,
 * big-endian, no leading zero octet): a 0x00 in front when the top bit
 * is set, so it stays positive. -1 if it is not canonical hex. */
static int
serial_content(const char *hex, unsigned char *out, size_t max, size_t *n)
{
	size_t len = strlen(hex), o = 0;
	int hi, lo;

	if (len == 0 || len % 2 != 0 || len / 2 + 1 > max)
		return -1;
	hi = hex_nibble((unsigned char)hex[0]);
	if (hi >= 8)
		out[o++] = 0;
	for (size_t i = 0; i < len; i += 2) {
		hi = hex_nibble((unsigned char)hex[i]);
		lo = hex_nibble((unsigned char)hex[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[o++] = (unsigned char)(hi << 4 | lo);
	}
	*n = o;
	return 0;
}

/* The revokedCertificates being written. */
struct crl_builder {
	struct der_buf		 entries;
	time_t			 time_of;	/* what time holds; -1: none */
	unsigned char		 time[17];
	size_t			 time_len;
	struct hsmca_err	*e;
};

/* crlEntryExtensions with one reasonCode (2.5.29.21), not critical:
 * SEQUENCE { SEQUENCE { OID, OCTET STRING { ENUMERATED } } }. */
static const unsigned char reason_ext[] = {
	0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15,
	0x04, 0x03, 0x0a, 0x01
};

/* RFC 5280 §5.3.1: unspecified is expressed by leaving the reasonCode
 * out; 7 is unused and removeFromCRL belongs to delta CRLs. */
static int
reason_listed(int reason)
{
	return reason > 0 && reason < CRL_REASONS &&
	    reason_names[reason] != NULL &&
	    reason != CRL_REASON_REMOVE_FROM_CRL;
}

static int
crl_add_entry(void *arg, const struct store_revoked *r)
{
	struct crl_builder *b = arg;
	unsigned char serial[SERIAL_HEX_MAX / 2 + 1], *p;
	size_t n, content;
	int reason;

	if (serial_content(r->serial, serial, sizeof(serial), &n) != 0)
		return err_set(b->e, HSMCA_ERR_STORE, "store: revoked serial "
		    "\"%s\" is malformed", r->serial);
	if (r->revoked_at != b->time_of) {
		if ((b->time_len = der_time(r->revoked_at, b->time)) == 0)
			return err_set(b->e, HSMCA_ERR_STORE, "store: serial "
			    "%s has a revocation time out of range",
			    r->serial);
		b->time_of = r->revoked_at;
	}
	reason = reason_listed(r->reason) ? r->reason : 0;
	/* At most 2 + 21 + 17 + 14 bytes: a short-form length. */
	content = 2 + n + b->time_len + (reason != 0 ? sizeof(reason_ext) + 1 :
	    0);
	if (der_reserve(&b->entries, 2 + content) != 0)
		return err_set(b->e, HSMCA_ERR_ALLOC, "out of memory for the "
		    "CRL's entries");
	p = b->entries.p + b->entries.len;
	*p++ = V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED;
	*p++ = (unsigned char)content;
	*p++ = V_ASN1_INTEGER;
	*p++ = (unsigned char)n;
	memcpy(p, serial, n);
	p += n;
	memcpy(p, b->time, b->time_len);
	p += b->time_len;
	if (reason != 0) {
		memcpy(p, reason_ext, sizeof(reason_ext));
		p += sizeof(reason_ext);
		*p++ = (unsigned char)reason;
	}
	b->entries.len = (size_t)(p - b->entries.p);
	return 0;
}

/* authorityKeyIdentifier: the CA's subjectKeyIdentifier, or its issuer
 * and serial when it has none. */
static int
add_aki(STACK_OF(X509_EXTENSION) **exts, X509 *ca, struct hsmca_err *e)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);
	AUTHORITY_KEYID *akid = NULL;
	X509_EXTENSION *ext = NULL;
	X509V3_CTX ctx;
	int ok = 0;

	if (ski != NULL) {
		if ((akid = AUTHORITY_KEYID_new()) != NULL &&
		    (akid->keyid = ASN1_OCTET_STRING_dup(ski)) != NULL)
			ok = X509V3_add1_i2d(exts,
			    NID_authority_key_identifier, akid, 0,
			    X509V3_ADD_APPEND) == 1;
		AUTHORITY_KEYID_free(akid);
	} else {
		X509V3_set_ctx(&ctx, ca, NULL, NULL, NULL, 0);
		if ((ext = X509V3_EXT_conf_nid(NULL, &ctx,
		    NID_authority_key_identifier, "issuer:always")) != NULL)
			ok = X509v3_add_ext(exts, ext, -1) != NULL;
		X509_EXTENSION_free(ext);
	}
	if (!ok)
		return err_set_ssl(e, HSMCA_ERR_INTERNAL,
		    "authorityKeyIdentifier");
	return 0;
}

/* The AlgorithmIdentifier X509_CRL_sign would write for key and md:
 * parameters NULL for RSA (PKCS#1 v1.5), absent for ECDSA. */
static int
sig_algor(EVP_PKEY *pub, const EVP_MD *md, X509_ALGOR **out,
    struct hsmca_err *e)
{
	X509_ALGOR *a;
	int signid, base = EVP_PKEY_get_base_id(pub);

	*out = NULL;
	if (!OBJ_find_sigid_by_algs(&signid, md != NULL ?
	    EVP_MD_get_type(md) : NID_undef, base))
		return err_set(e, HSMCA_ERR_CA_STATE, "no signature algorithm "
		    "for this CA key and digest");
	if ((a = X509_ALGOR_new()) == NULL ||
	    !X509_ALGOR_set0(a, OBJ_nid2obj(signid), base == EVP_PKEY_RSA ?
	    V_ASN1_NULL : V_ASN1_UNDEF, NULL)) {
		X509_ALGOR_free(a);
		return err_set_ssl(e, HSMCA_ERR_ALLOC, "signature algorithm");
	}
	*out = a;
	return 0;
}

/* Verify-after-sign on the bytes about to be released: the signature
 * over the TBSCertList exactly as it is encoded, with the CA
 * certificate's public key. Decoding a million entries back to check
 * them would cost more than building them; the signature covers every
 * byte as it is released, and the unit tests parse what is built. */
static int
crl_verify_der(const unsigned char *tbs, size_t tbs_len,
    const unsigned char *sig, size_t sig_len, X509 *ca, const EVP_MD *md,
    int64_t gen_id, struct hsmca_err *e)
{
	EVP_MD_CTX *mctx = NULL;
	int ret = HSMCA_ERR_VERIFY;

	ERR_clear_error();
	if ((mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(mctx, NULL, md, NULL,
	    X509_get0_pubkey(ca)) != 1 ||
	    EVP_DigestVerify(mctx, sig, sig_len, tbs, tbs_len) != 1) {
		err_set_ssl(e, ret, "the signed CRL of CA generation %lld does "
		    "not verify with its certificate", (long long)gen_id);
		goto out;
	}
	ret = 0;
out:
	EVP_MD_CTX_free(mctx);
	return ret;
}

/* Sign tbs with the key in the token: *sig (OPENSSL_free). */
static int
crl_sign(struct hsm *h, const struct crl_signer *s, const unsigned char *tbs,
    size_t tbs_len, unsigned char **sig, size_t *sig_len,
    struct hsmca_err *e)
{
	EVP_MD_CTX *mctx = NULL;
	int size, ok = 0;

	*sig = NULL;
	*sig_len = 0;
	if ((size = EVP_PKEY_get_size(s->key)) <= 0 ||
	    (*sig = OPENSSL_malloc((size_t)size)) == NULL ||
	    (mctx = EVP_MD_CTX_new()) == NULL) {
		EVP_MD_CTX_free(mctx);
		OPENSSL_free(*sig);
		*sig = NULL;
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	}
	*sig_len = (size_t)size;
	ERR_clear_error();
	if (h != NULL)
		hsm_sign_enter(h);
	ok = EVP_DigestSignInit(mctx, NULL, s->md, NULL, s->key) == 1 &&
	    EVP_DigestSign(mctx, *sig, sig_len, tbs, tbs_len) == 1;
	if (h != NULL)
		hsm_sign_leave(h);
	EVP_MD_CTX_free(mctx);
	if (!ok) {
		OPENSSL_free(*sig);
		*sig = NULL;
		return err_set_ssl(e, HSMCA_ERR_HSM, "the HSM did not sign the "
		    "CRL of CA generation %lld", (long long)s->gen_id);
	}
	return 0;
}

/* The revoked generations gen_id certified (`hsmca ca revoke`), while
 * their certificate is valid: on a root's CRL, a relying party that
 * checks the whole chain refuses what a revoked generation issued. */
static int
crl_add_generations(struct store *st, int64_t gen_id, time_t now,
    struct crl_builder *b, size_t *entries, struct hsmca_err *e)
{
	struct store_generation *v = NULL;
	struct store_revoked r;
	size_t n = 0;
	int ret;

	if ((ret = store_list_generations(st, &v, &n, e)) != 0)
		return ret;
	for (size_t i = 0; i < n && ret == 0; i++) {
		if (v[i].parent_id != gen_id || v[i].status !=
		    STORE_GEN_REVOKED || v[i].cert_der == NULL ||
		    v[i].not_after < now)
			continue;
		r.serial = v[i].serial;
		r.revoked_at = v[i].revoked_at;
		r.not_after = v[i].not_after;
		if (crl_reason_parse(v[i].revoke_reason, &r.reason, NULL) != 0)
			r.reason = CRL_REASON_UNSPECIFIED;
		if ((ret = crl_add_entry(b, &r)) == 0)
			(*entries)++;
	}
	store_generations_free(v, n);
	return ret;
}

int
crl_build_signer(struct hsm *h, struct store *st, const struct crl_signer *s,
    time_t now, int64_t next_update_secs, unsigned char **der, size_t *len,
    struct crl_info *info, struct hsmca_err *e)
{
	/* version v2: INTEGER 1 */
	static const unsigned char version[] = { 0x02, 0x01, 0x01 };
	struct crl_builder b;
	struct der_buf head, tail, alg;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_ALGOR *algor = NULL;
	ASN1_TIME *tm = NULL;
	ASN1_INTEGER *num = NULL;
	unsigned char *out = NULL, *p, *tbs, *sig = NULL;
	size_t entries = 0, revoked_len, tbs_len, sig_len = 0, total, ext_len;
	int64_t number = 0;
	uint32_t ku;
	int ok, ret = HSMCA_ERR_INTERNAL;

	*der = NULL;
	*len = 0;
	memset(&b, 0, sizeof(b));
	memset(&head, 0, sizeof(head));
	memset(&tail, 0, sizeof(tail));
	memset(&alg, 0, sizeof(alg));
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

	/* version, signature, issuer, thisUpdate, nextUpdate */
	if ((ret = sig_algor(X509_get0_pubkey(s->cert), s->md, &algor,
	    e)) != 0)
		goto out;
	ret = HSMCA_ERR_INTERNAL;
	ok = 1;
	DER_APPEND_I2D(&alg, i2d_X509_ALGOR, algor, ok);
	if (ok && der_append(&head, version, sizeof(version)) != 0)
		ok = 0;
	if (ok && der_append(&head, alg.p, alg.len) != 0)
		ok = 0;
	DER_APPEND_I2D(&head, i2d_X509_NAME, X509_get_subject_name(s->cert),
	    ok);
	if ((tm = ASN1_TIME_set(NULL, now)) == NULL)
		ok = 0;
	else
		DER_APPEND_I2D(&head, i2d_ASN1_TIME, tm, ok);
	if (tm == NULL || ASN1_TIME_set(tm, now + (time_t)next_update_secs) ==
	    NULL)
		ok = 0;
	else
		DER_APPEND_I2D(&head, i2d_ASN1_TIME, tm, ok);
	if (!ok) {
		err_set_ssl(e, ret, "cannot build the CRL");
		goto out;
	}

	b.e = e;
	b.time_of = -1;
	if ((ret = store_list_revoked(st, s->gen_id, now, crl_add_entry, &b,
	    &entries, e)) != 0 ||
	    (ret = crl_add_generations(st, s->gen_id, now, &b, &entries,
	    e)) != 0)
		goto out;

	/* The number is taken, and committed, only once the CRL is built:
	 * it is never issued twice, and rarely skipped. */
	if ((ret = store_next_crl_number(st, s->gen_id, now, &number, e)) != 0)
		goto out;
	ret = HSMCA_ERR_INTERNAL;
	if ((num = ASN1_INTEGER_new()) == NULL ||
	    !ASN1_INTEGER_set_int64(num, number) ||
	    X509V3_add1_i2d(&exts, NID_crl_number, num, 0,
	    X509V3_ADD_APPEND) != 1) {
		err_set_ssl(e, ret, "cRLNumber");
		goto out;
	}
	if ((ret = add_aki(&exts, s->cert, e)) != 0)
		goto out;
	/* crlExtensions [0] EXPLICIT Extensions */
	ret = HSMCA_ERR_INTERNAL;
	if ((ext_len = (size_t)i2d_X509_EXTENSIONS(exts, NULL)) == 0 ||
	    der_reserve(&tail, der_header_size(ext_len)) != 0) {
		err_set_ssl(e, ret, "CRL extensions");
		goto out;
	}
	tail.len = der_header(tail.p, 0xa0, ext_len);
	DER_APPEND_I2D(&tail, i2d_X509_EXTENSIONS, exts, ok);
	if (!ok) {
		err_set_ssl(e, ret, "CRL extensions");
		goto out;
	}

	/* The TBSCertList, in place in the buffer that is released:
	 * SEQUENCE { head, revokedCertificates (absent when empty, RFC
	 * 5280 §5.1.2.6), crlExtensions }. */
	revoked_len = b.entries.len == 0 ? 0 :
	    der_header_size(b.entries.len) + b.entries.len;
	tbs_len = head.len + revoked_len + tail.len;
	sig_len = (size_t)EVP_PKEY_get_size(s->key);
	/* the outer SEQUENCE and the signature's BIT STRING at their
	 * largest: the exact sizes are known once it is signed */
	total = 6 + der_header_size(tbs_len) + tbs_len + alg.len + 6 +
	    sig_len + 1;
	if ((out = OPENSSL_malloc(total)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	tbs = out + 6;
	p = tbs + der_header(tbs, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED,
	    tbs_len);
	memcpy(p, head.p, head.len);
	p += head.len;
	if (b.entries.len > 0) {
		p += der_header(p, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED,
		    b.entries.len);
		memcpy(p, b.entries.p, b.entries.len);
		p += b.entries.len;
	}
	OPENSSL_free(b.entries.p);	/* peak memory: one copy, not two */
	memset(&b.entries, 0, sizeof(b.entries));
	memcpy(p, tail.p, tail.len);
	p += tail.len;
	tbs_len = (size_t)(p - tbs);

	if ((ret = crl_sign(h, s, tbs, tbs_len, &sig, &sig_len, e)) != 0)
		goto out;
	if ((ret = crl_verify_der(tbs, tbs_len, sig, sig_len, s->cert, s->md,
	    s->gen_id, e)) != 0)
		goto out;

	/* CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm,
	 * signatureValue BIT STRING (no unused bits) } */
	memcpy(p, alg.p, alg.len);
	p += alg.len;
	p += der_header(p, V_ASN1_BIT_STRING, sig_len + 1);
	*p++ = 0;
	memcpy(p, sig, sig_len);
	p += sig_len;
	total = (size_t)(p - tbs);
	/* the outer header goes right before the TBS */
	{
		size_t hl = der_header_size(total);
		unsigned char *start = tbs - hl;

		der_header(start, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, total);
		if (start != out)
			memmove(out, start, hl + total);
		total += hl;
	}
	if (info != NULL) {
		info->number = number;
		info->this_update = now;
		info->next_update = now + (time_t)next_update_secs;
		info->entries = entries;
	}
	*der = out;
	*len = total;
	out = NULL;
	ret = 0;
out:
	OPENSSL_free(b.entries.p);
	OPENSSL_free(head.p);
	OPENSSL_free(tail.p);
	OPENSSL_free(alg.p);
	OPENSSL_free(sig);
	X509_ALGOR_free(algor);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
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
