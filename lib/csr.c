/* csr.c: PKCS#10 requests: parse, check the self-signature, apply the key
 * policy. Everything that is not plainly a well-formed request is refused. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

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

/* Parse exactly len bytes of DER, check everything, and fill *out. */
static int
csr_parse_der(const unsigned char *der, long len, struct csr **out,
    struct hsmca_err *e)
{
	const unsigned char *p = der;
	unsigned char *re = NULL;
	struct csr *c = NULL;
	int n, ok, ret = HSMCA_ERR_CSR_PARSE;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	if ((c->req = d2i_X509_REQ(NULL, &p, len)) == NULL) {
		err_set_ssl(e, ret, "not a PKCS#10 request (expected DER "
		    "or PEM)");
		goto out;
	}
	if (p != der + len) {
		err_set(e, ret, "not a PKCS#10 request: %ld bytes of trailing "
		    "data after the request", (long)(der + len - p));
		goto out;
	}
	/* The fingerprint names the request; BER that re-encodes to other
	 * bytes would give one request two names. */
	if ((n = i2d_X509_REQ(c->req, &re)) <= 0) {
		err_set_ssl(e, ret, "not a PKCS#10 request: cannot re-encode");
		goto out;
	}
	if (n != len || memcmp(re, der, (size_t)n) != 0) {
		err_set(e, ret, "not a PKCS#10 request: not DER encoded");
		goto out;
	}
	if (X509_REQ_get_version(c->req) != X509_REQ_VERSION_1) {
		err_set(e, ret, "not a PKCS#10 request: version %ld, "
		    "expected 0", X509_REQ_get_version(c->req));
		goto out;
	}
	if ((ret = csr_check_extensions(c->req, e)) != 0)
		goto out;
	if ((c->pubkey = X509_REQ_get_pubkey(c->req)) == NULL) {
		ret = err_set_ssl(e, HSMCA_ERR_KEY_POLICY, "the request's "
		    "public key is of an unknown type or malformed; %s",
		    CSR_ACCEPTED);
		goto out;
	}
	/* 0: a well-formed signature that does not match; -1: a malformed
	 * one or an unsupported algorithm. Either way, no proof. */
	if ((ok = X509_REQ_verify(c->req, c->pubkey)) != 1) {
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
csr_parse_pem(const void *buf, size_t len, struct csr **out,
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
	ret = csr_parse_der(data, dlen, out, e);
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	return ret;
}

int
csr_parse(const void *buf, size_t len, struct csr **out, struct hsmca_err *e)
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
		return csr_parse_pem(p + i, len - i, out, e);
	return csr_parse_der(buf, (long)len, out, e);
}

/* RFC 7030 §4.2.1: the body is base64 of the DER request. Line breaks
 * and whitespace are dropped; any other character outside the base64
 * alphabet, or padding anywhere but at the end, is refused. */
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
		if (isspace(in[i]))
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
	ret = csr_parse_der(der, dlen, out, e);
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
