/* csr.c: PKCS#10 requests: parse, check the self-signature, apply the key
 * policy. Everything that is not plainly a well-formed request is refused. */
#include "config.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hsmca/csr.h"
#include "hsmca/util.h"

#define CSR_RSA_MIN_BITS	2048
#define CSR_RSA_MAX_BITS	8192
#define CSR_RSA_MIN_EXP		65537
#define CSR_RSA_MAX_EXP_BITS	256	/* exponent < 2^256 */
#define CSR_ACCEPTED \
	"accepted keys are RSA 2048 to 8192 bits and EC on P-256, P-384, P-521"

/* An EST body may wrap lines and carry some whitespace; beyond that ratio
 * it is not a request. */
#define CSR_BASE64_MAX	(CSR_MAX_SIZE * 2)

static int
csr_check_rsa(const EVP_PKEY *pk, struct hsmca_err *e)
{
	BIGNUM *exp = NULL, *min = NULL;
	char *dec = NULL;
	int bits, ret = HSMCA_ERR_KEY_POLICY;

	bits = EVP_PKEY_get_bits(pk);
	if (bits < CSR_RSA_MIN_BITS || bits > CSR_RSA_MAX_BITS) {
		err_set(e, ret, "RSA-%d key refused: %s", bits, CSR_ACCEPTED);
		goto out;
	}
	if (!EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &exp)) {
		err_set_ssl(e, ret, "RSA key refused: its public exponent "
		    "cannot be read");
		goto out;
	}
	if ((min = BN_new()) == NULL || !BN_set_word(min, CSR_RSA_MIN_EXP)) {
		ret = err_set_ssl(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	if (!BN_is_odd(exp) || BN_cmp(exp, min) < 0 ||
	    BN_num_bits(exp) > CSR_RSA_MAX_EXP_BITS) {
		if (BN_num_bits(exp) <= 64)
			dec = BN_bn2dec(exp);
		err_set(e, ret, "RSA key refused: public exponent %s; the "
		    "exponent must be odd, at least %d and below 2^%d",
		    dec != NULL ? dec : "of more than 64 bits",
		    CSR_RSA_MIN_EXP, CSR_RSA_MAX_EXP_BITS);
		goto out;
	}
	ret = 0;
out:
	OPENSSL_free(dec);
	BN_free(exp);
	BN_free(min);
	return ret;
}

static int
csr_check_ec(const EVP_PKEY *pk, struct hsmca_err *e)
{
	char group[80] = "", encoding[32] = "";
	int is_explicit = 0, decoded = 0, nid;

	/* A key decoded from explicit curve parameters is refused even when
	 * the parameters happen to describe an accepted curve: a verifier
	 * that trusts them can be fed a curve of the attacker's choice. */
	if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_EC_ENCODING,
	    encoding, sizeof(encoding), NULL) &&
	    strcmp(encoding, OSSL_PKEY_EC_ENCODING_EXPLICIT) == 0)
		is_explicit = 1;
	if (EVP_PKEY_get_int_param(pk,
	    OSSL_PKEY_PARAM_EC_DECODED_FROM_EXPLICIT_PARAMS, &decoded) &&
	    decoded != 0)
		is_explicit = 1;
	ERR_clear_error();
	if (is_explicit)
		return err_set(e, HSMCA_ERR_KEY_POLICY, "EC key refused: it "
		    "carries explicit curve parameters; use a named curve "
		    "(P-256, P-384 or P-521)");
	if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, sizeof(group), NULL)) {
		ERR_clear_error();
		return err_set(e, HSMCA_ERR_KEY_POLICY, "EC key refused: it "
		    "names no curve; accepted curves are P-256, P-384, P-521");
	}
	if ((nid = OBJ_sn2nid(group)) == NID_undef)
		nid = EC_curve_nist2nid(group);
	switch (nid) {
	case NID_X9_62_prime256v1:
	case NID_secp384r1:
	case NID_secp521r1:
		return 0;
	default:
		return err_set(e, HSMCA_ERR_KEY_POLICY, "EC key on curve %s "
		    "refused: accepted curves are P-256, P-384, P-521", group);
	}
}

int
csr_check_key(const EVP_PKEY *pk, struct hsmca_err *e)
{
	const char *name;

	if (pk == NULL)
		return err_set(e, HSMCA_ERR_KEY_POLICY, "no public key; %s",
		    CSR_ACCEPTED);
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		return csr_check_rsa(pk, e);
	case EVP_PKEY_EC:
		return csr_check_ec(pk, e);
	default:
		if ((name = EVP_PKEY_get0_type_name(pk)) == NULL)
			name = "unknown";
		return err_set(e, HSMCA_ERR_KEY_POLICY, "%s key refused: %s",
		    name, CSR_ACCEPTED);
	}
}

/* Refuse two requested extensions with the same OID: which one a later
 * reader would pick is up to the reader. */
static int
csr_check_extensions(X509_REQ *req, struct hsmca_err *e)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	const ASN1_OBJECT *a, *b;
	char oid[80];
	int i, j, n, ret = HSMCA_ERR_CSR_PARSE;

	if (X509_REQ_get_attr_by_NID(req, NID_ext_req, -1) < 0 &&
	    X509_REQ_get_attr_by_NID(req, NID_ms_ext_req, -1) < 0)
		return 0;
	if ((exts = X509_REQ_get_extensions(req)) == NULL) {
		err_set_ssl(e, ret, "not a PKCS#10 request: the requested "
		    "extensions do not decode");
		goto out;
	}
	n = sk_X509_EXTENSION_num(exts);
	for (i = 0; i < n; i++) {
		a = X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, i));
		for (j = i + 1; j < n; j++) {
			b = X509_EXTENSION_get_object(
			    sk_X509_EXTENSION_value(exts, j));
			if (OBJ_cmp(a, b) != 0)
				continue;
			OBJ_obj2txt(oid, sizeof(oid), a, 0);
			err_set(e, ret, "request asks for extension %s twice",
			    oid);
			goto out;
		}
	}
	ret = 0;
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return ret;
}

ASN1_SEQUENCE(csr_spki) = {
	ASN1_SIMPLE(struct csr_spki, algorithm, X509_ALGOR),
	ASN1_SIMPLE(struct csr_spki, key, ASN1_BIT_STRING)
} ASN1_SEQUENCE_END_name(struct csr_spki, csr_spki)

/* PKCS#10 (RFC 2986) with the key left encoded: d2i_X509_REQ() would
 * decode it through OpenSSL 3.0's generic decoder, which costs more than
 * checking the request's signature. */
struct csr_info {
	ASN1_INTEGER		*version;
	X509_NAME		*subject;
	struct csr_spki		*spki;
	STACK_OF(X509_ATTRIBUTE) *attributes;
};

struct csr_raw {
	struct csr_info		*info;
	X509_ALGOR		*algorithm;
	ASN1_BIT_STRING		*signature;
};

ASN1_SEQUENCE(csr_info) = {
	ASN1_SIMPLE(struct csr_info, version, ASN1_INTEGER),
	ASN1_SIMPLE(struct csr_info, subject, X509_NAME),
	ASN1_SIMPLE(struct csr_info, spki, csr_spki),
	ASN1_IMP_SET_OF(struct csr_info, attributes, X509_ATTRIBUTE, 0)
} static_ASN1_SEQUENCE_END_name(struct csr_info, csr_info)

ASN1_SEQUENCE(csr_raw) = {
	ASN1_SIMPLE(struct csr_raw, info, csr_info),
	ASN1_SIMPLE(struct csr_raw, algorithm, X509_ALGOR),
	ASN1_SIMPLE(struct csr_raw, signature, ASN1_BIT_STRING)
} static_ASN1_SEQUENCE_END_name(struct csr_raw, csr_raw)

/* The accepted curves' domain parameters, built once for the process:
 * building a curve costs more than the rest of a key import. Only read
 * afterwards, from any thread. */
static const int csr_curve_nids[] = {
	NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1
};
#define CSR_CURVES	(sizeof(csr_curve_nids) / sizeof(csr_curve_nids[0]))
static EVP_PKEY *csr_curves[CSR_CURVES];
static pthread_once_t csr_curves_once = PTHREAD_ONCE_INIT;

static void
csr_curves_init(void)
{
	OSSL_PARAM params[2];
	EVP_PKEY_CTX *pctx;
	size_t i;

	for (i = 0; i < CSR_CURVES; i++) {
		params[0] = OSSL_PARAM_construct_utf8_string(
		    OSSL_PKEY_PARAM_GROUP_NAME,
		    (char *)(uintptr_t)OBJ_nid2sn(csr_curve_nids[i]), 0);
		params[1] = OSSL_PARAM_construct_end();
		if ((pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC",
		    NULL)) == NULL)
			continue;
		if (EVP_PKEY_fromdata_init(pctx) <= 0 ||
		    EVP_PKEY_fromdata(pctx, &csr_curves[i],
		    EVP_PKEY_KEY_PARAMETERS, params) <= 0)
			csr_curves[i] = NULL;
		EVP_PKEY_CTX_free(pctx);
	}
}

/* An EC public key on one of the accepted curves, straight from its
 * point through the key manager (what the generic decoder ends up doing,
 * without its search for a decoder). The point must lie on the curve. */
static EVP_PKEY *
csr_ec_key(int curve, const ASN1_BIT_STRING *point)
{
	EVP_PKEY *pk = NULL, *params = NULL;
	size_t i;

	(void)pthread_once(&csr_curves_once, csr_curves_init);
	for (i = 0; i < CSR_CURVES; i++)
		if (csr_curve_nids[i] == curve)
			params = csr_curves[i];
	if (params == NULL || (pk = EVP_PKEY_new()) == NULL)
		return NULL;
	if (!EVP_PKEY_copy_parameters(pk, params) ||
	    !EVP_PKEY_set1_encoded_public_key(pk,
	    ASN1_STRING_get0_data(point), (size_t)ASN1_STRING_length(point))) {
		EVP_PKEY_free(pk);
		return NULL;
	}
	return pk;
}

/*
 * The common request, an EC key on P-256, P-384 or P-521, parsed without
 * the generic key decoder: the fields are parsed with the key left
 * encoded, the X509_REQ is built from them, and it must encode back to
 * exactly the bytes received (so the request is DER, and what the
 * signature check and the profile see is what was sent). 0: c->req and
 * c->pubkey are set; -1: anything else, left to d2i_X509_REQ() and its
 * error messages.
 */
static int
csr_parse_ec(const unsigned char *der, long len, struct csr *c)
{
	const unsigned char *p = der;
	const ASN1_OBJECT *obj;
	const ASN1_BIT_STRING *point;
	const void *pval;
	struct csr_raw *raw = NULL;
	struct csr_info *info;
	X509_REQ *req = NULL;
	EVP_PKEY *pk = NULL;
	unsigned char *re = NULL, *bits = NULL;
	int i, n, ptype, curve, ret = -1;

	ERR_set_mark();
	raw = (struct csr_raw *)ASN1_item_d2i(NULL, &p, len,
	    ASN1_ITEM_rptr(csr_raw));
	if (raw == NULL || p != der + len)
		goto out;
	info = raw->info;
	X509_ALGOR_get0(&obj, &ptype, &pval, info->spki->algorithm);
	if (OBJ_obj2nid(obj) != NID_X9_62_id_ecPublicKey ||
	    ptype != V_ASN1_OBJECT)
		goto out;
	curve = OBJ_obj2nid(pval);
	if (curve != NID_X9_62_prime256v1 && curve != NID_secp384r1 &&
	    curve != NID_secp521r1)
		goto out;
	point = info->spki->key;
	if ((n = ASN1_STRING_length(point)) <= 0 ||
	    (bits = OPENSSL_memdup(ASN1_STRING_get0_data(point),
	    (size_t)n)) == NULL)
		goto out;
	if ((req = X509_REQ_new()) == NULL ||
	    !X509_REQ_set_version(req, ASN1_INTEGER_get(info->version)) ||
	    !X509_REQ_set_subject_name(req, info->subject))
		goto out;
	/* set0 takes bits; the OIDs are OpenSSL's static ones. */
	if (!X509_PUBKEY_set0_param(X509_REQ_get_X509_PUBKEY(req),
	    OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
	    OBJ_nid2obj(curve), bits, n))
		goto out;
	bits = NULL;
	for (i = 0; i < sk_X509_ATTRIBUTE_num(info->attributes); i++)
		if (!X509_REQ_add1_attr(req,
		    sk_X509_ATTRIBUTE_value(info->attributes, i)))
			goto out;
	if (!X509_REQ_set1_signature_algo(req, raw->algorithm))
		goto out;
	X509_REQ_set0_signature(req, raw->signature);
	raw->signature = NULL;
	if ((n = i2d_X509_REQ(req, &re)) != len ||
	    memcmp(re, der, (size_t)n) != 0)
		goto out;
	if ((pk = csr_ec_key(curve, point)) == NULL)
		goto out;
	c->req = req;
	c->pubkey = pk;
	req = NULL;
	ret = 0;
out:
	/* A refusal is for the generic parser to explain. */
	ERR_pop_to_mark();
	OPENSSL_free(re);
	OPENSSL_free(bits);
	X509_REQ_free(req);
	ASN1_item_free((ASN1_VALUE *)raw, ASN1_ITEM_rptr(csr_raw));
	return ret;
}

/* Parse exactly len bytes of DER, check everything, and fill *out. */
static int
csr_parse_der(const unsigned char *der, long len, int verify,
    struct csr **out, struct hsmca_err *e)
{
	const unsigned char *p = der;
	unsigned char *re = NULL;
	struct csr *c = NULL;
	int n, ok, ret = HSMCA_ERR_CSR_PARSE;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	if (csr_parse_ec(der, len, c) == 0)
		;
	else if ((c->req = d2i_X509_REQ(NULL, &p, len)) == NULL) {
		err_set_ssl(e, ret, "not a PKCS#10 request (expected DER "
		    "or PEM)");
		goto out;
	} else if (p != der + len) {
		err_set(e, ret, "not a PKCS#10 request: %ld bytes of trailing "
		    "data after the request", (long)(der + len - p));
		goto out;
	} else {
		/* The fingerprint names the request; BER that re-encodes to
		 * other bytes would give one request two names. */
		if ((n = i2d_X509_REQ(c->req, &re)) <= 0) {
			err_set_ssl(e, ret, "not a PKCS#10 request: cannot "
			    "re-encode");
			goto out;
		}
		if (n != len || memcmp(re, der, (size_t)n) != 0) {
			err_set(e, ret, "not a PKCS#10 request: not DER "
			    "encoded");
			goto out;
		}
	}
	if (X509_REQ_get_version(c->req) != X509_REQ_VERSION_1) {
		err_set(e, ret, "not a PKCS#10 request: version %ld, "
		    "expected 0", X509_REQ_get_version(c->req));
		goto out;
	}
	if ((ret = csr_check_extensions(c->req, e)) != 0)
		goto out;
	if (c->pubkey == NULL &&
	    (c->pubkey = X509_REQ_get_pubkey(c->req)) == NULL) {
		ret = err_set_ssl(e, HSMCA_ERR_KEY_POLICY, "the request's "
		    "public key is of an unknown type or malformed; %s",
		    CSR_ACCEPTED);
		goto out;
	}
	/* 0: a well-formed signature that does not match; -1: a malformed
	 * one or an unsupported algorithm. Either way, no proof. */
	if (verify && (ok = X509_REQ_verify(c->req, c->pubkey)) != 1) {
		if (ok < 0)
			ret = err_set_ssl(e, HSMCA_ERR_CSR_SIGNATURE, "CSR "
			    "signature does not verify: malformed, or an "
			    "algorithm hsmca does not support");
		else
			ret = err_set(e, HSMCA_ERR_CSR_SIGNATURE, "CSR "
			    "signature does not verify: the requester does "
			    "not hold the key");
		ERR_clear_error();
		goto out;
	}
	if ((ret = csr_check_key(c->pubkey, e)) != 0)
		goto out;
	if (!EVP_Digest(der, (size_t)len, c->fingerprint, NULL, EVP_sha256(),
	    NULL)) {
		ret = err_set_ssl(e, HSMCA_ERR_INTERNAL, "SHA-256 failed");
		goto out;
	}
	util_hex(c->fingerprint, sizeof(c->fingerprint), c->fingerprint_hex);
	c->spki_pubkey = c->pubkey;
	c->verified = verify;
	*out = c;
	c = NULL;
	ret = 0;
out:
	OPENSSL_free(re);
	csr_free(c);
	return ret;
}

/* A PEM request: one block, of either header, and only whitespace after. */
static int
csr_parse_pem(const void *buf, size_t len, int verify, struct csr **out,
    struct hsmca_err *e)
{
	BIO *bio = NULL;
	char *name = NULL, *header = NULL, rest[64];
	unsigned char *data = NULL;
	long dlen = 0;
	int n, ret = HSMCA_ERR_CSR_PARSE;

	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		ret = err_set_ssl(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	if (!PEM_read_bio(bio, &name, &header, &data, &dlen)) {
		err_set_ssl(e, ret, "not a PKCS#10 request: bad PEM");
		goto out;
	}
	if (strcmp(name, PEM_STRING_X509_REQ) != 0 &&
	    strcmp(name, PEM_STRING_X509_REQ_OLD) != 0) {
		err_set(e, ret, "not a PKCS#10 request: PEM block is \"%.40s\","
		    " expected \"%s\"", name, PEM_STRING_X509_REQ);
		goto out;
	}
	if (*header != '\0') {
		err_set(e, ret, "not a PKCS#10 request: PEM headers present");
		goto out;
	}
	while ((n = BIO_read(bio, rest, sizeof(rest))) > 0) {
		for (int i = 0; i < n; i++) {
			if (!isspace((unsigned char)rest[i])) {
				err_set(e, ret, "not a PKCS#10 request: data "
				    "after the PEM block");
				goto out;
			}
		}
	}
	ret = csr_parse_der(data, dlen, verify, out, e);
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	return ret;
}

static int
csr_parse_any(const void *buf, size_t len, int verify, struct csr **out,
    struct hsmca_err *e)
{
	const unsigned char *p = buf;
	size_t i;

	*out = NULL;
	if (buf == NULL || len == 0)
		return err_set(e, HSMCA_ERR_CSR_PARSE,
		    "not a PKCS#10 request: empty");
	if (len > CSR_MAX_SIZE)
		return err_set(e, HSMCA_ERR_CSR_PARSE, "not a PKCS#10 request:"
		    " %zu bytes, more than the %d allowed", len, CSR_MAX_SIZE);
	/* DER starts with a SEQUENCE tag; PEM with text. OpenSSL's PEM
	 * reader wants the BEGIN line at the start of a line. */
	for (i = 0; i < len && isspace(p[i]); i++)
		;
	if (len - i >= 11 && memcmp(p + i, "-----BEGIN ", 11) == 0)
		return csr_parse_pem(p + i, len - i, verify, out, e);
	return csr_parse_der(buf, (long)len, verify, out, e);
}

int
csr_parse(const void *buf, size_t len, struct csr **out, struct hsmca_err *e)
{
	return csr_parse_any(buf, len, 1, out, e);
}

int
csr_parse_unverified(const void *buf, size_t len, struct csr **out,
    struct hsmca_err *e)
{
	return csr_parse_any(buf, len, 0, out, e);
}

/* RFC 7030 §4.2.1: the body is base64 of the DER request. Line breaks
 * (CR, LF), spaces and tabs are dropped, as OpenSSL's decoder (hsmcad's)
 * drops them; any other character outside the base64 alphabet, or
 * padding anywhere but at the end, is refused. */
int
csr_parse_base64(const void *buf, size_t len, struct csr **out,
    struct hsmca_err *e)
{
	const unsigned char *in = buf;
	unsigned char *clean = NULL, *der = NULL;
	size_t i, n = 0, pad = 0;
	int dlen, ret = HSMCA_ERR_CSR_PARSE;

	*out = NULL;
	if (buf == NULL || len == 0) {
		err_set(e, ret, "not a PKCS#10 request: empty");
		goto out;
	}
	if (len > CSR_BASE64_MAX) {
		err_set(e, ret, "not a PKCS#10 request: %zu bytes of base64, "
		    "more than the %d allowed", len, CSR_BASE64_MAX);
		goto out;
	}
	if ((clean = malloc(len + 1)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	for (i = 0; i < len; i++) {
		/* Not isspace(): \v and \f are no base64 whitespace. */
		if (in[i] == ' ' || in[i] == '\t' || in[i] == '\r' ||
		    in[i] == '\n')
			continue;
		if (in[i] == '=') {
			pad++;
		} else if (pad > 0 || !(isalnum(in[i]) || in[i] == '+' ||
		    in[i] == '/')) {
			err_set(e, ret, "not a PKCS#10 request: invalid base64 "
			    "at byte %zu", i);
			goto out;
		}
		clean[n++] = in[i];
	}
	clean[n] = '\0';
	if (n == 0 || n % 4 != 0 || pad > 2) {
		err_set(e, ret, "not a PKCS#10 request: base64 of %zu "
		    "characters is truncated or badly padded", n);
		goto out;
	}
	if ((der = malloc(n / 4 * 3)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if ((dlen = EVP_DecodeBlock(der, clean, (int)n)) < 0 ||
	    (size_t)dlen < pad) {
		err_set(e, ret, "not a PKCS#10 request: invalid base64");
		goto out;
	}
	dlen -= (int)pad;
	if (dlen > CSR_MAX_SIZE) {
		err_set(e, ret, "not a PKCS#10 request: %d bytes, more than "
		    "the %d allowed", dlen, CSR_MAX_SIZE);
		goto out;
	}
	ret = csr_parse_der(der, dlen, 1, out, e);
out:
	free(clean);
	free(der);
	return ret;
}

void
csr_free(struct csr *c)
{
	if (c == NULL)
		return;
	X509_REQ_free(c->req);
	EVP_PKEY_free(c->pubkey);
	free(c);
}

const X509_PUBKEY *
csr_get0_spki(const struct csr *c)
{
	if (c == NULL || c->req == NULL || c->pubkey == NULL ||
	    c->pubkey != c->spki_pubkey)
		return NULL;
	return X509_REQ_get_X509_PUBKEY(c->req);
}

int
csr_requests_ca(const struct csr *c)
{
	STACK_OF(X509_EXTENSION) *exts;
	BASIC_CONSTRAINTS *bc;
	int crit = -1, ret = 0;

	if (c == NULL || c->req == NULL)
		return 0;
	if ((exts = X509_REQ_get_extensions(c->req)) == NULL)
		return 0;
	bc = X509V3_get_d2i(exts, NID_basic_constraints, &crit, NULL);
	if (bc != NULL && bc->ca)
		ret = 1;
	/* Present but undecodable, or twice: treat it as a request for CA
	 * so it is refused rather than waved through. */
	if (bc == NULL && crit != -1)
		ret = 1;
	BASIC_CONSTRAINTS_free(bc);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return ret;
}

GENERAL_NAMES *
csr_get_san(const struct csr *c)
{
	STACK_OF(X509_EXTENSION) *exts;
	GENERAL_NAMES *san;

	if (c == NULL || c->req == NULL)
		return NULL;
	if ((exts = X509_REQ_get_extensions(c->req)) == NULL)
		return NULL;
	san = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return san;
}
