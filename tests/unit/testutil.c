/* testutil.c: in-memory fixtures for unit tests. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "testutil.h"

static void
die(const char *what)
{
	fprintf(stderr, "testutil: %s failed\n", what);
	abort();
}

EVP_PKEY *
tu_keygen(const char *spec)
{
	EVP_PKEY *k = NULL;

	if (strncmp(spec, "ec:", 3) == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", spec + 3);
	else if (strncmp(spec, "rsa:", 4) == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)atoi(spec + 4));
	else if (strcmp(spec, "ed25519") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (k == NULL)
		die(spec);
	return k;
}

EVP_PKEY *
tu_rsa_keygen_exp(int bits, unsigned long exponent)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *k = NULL;
	BIGNUM *e = BN_new();

	if (ctx == NULL || e == NULL || !BN_set_word(e, exponent) ||
	    EVP_PKEY_keygen_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) <= 0 ||
	    EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e) <= 0 ||
	    EVP_PKEY_keygen(ctx, &k) <= 0)
		die("rsa keygen with exponent");
	BN_free(e);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

static X509_NAME *
parse_name(const char *subject)
{
	X509_NAME *n = X509_NAME_new();
	char *dup, *tok, *save = NULL;

	if (n == NULL)
		die("X509_NAME_new");
	if (subject == NULL)
		return n;
	dup = strdup(subject);
	for (tok = strtok_r(dup, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (eq == NULL)
			die("subject syntax");
		*eq = '\0';
		if (!X509_NAME_add_entry_by_txt(n, tok, MBSTRING_UTF8,
		    (unsigned char *)eq + 1, -1, -1, 0))
			die("X509_NAME_add_entry_by_txt");
	}
	free(dup);
	return n;
}

X509_REQ *
tu_make_req(EVP_PKEY *k, const char *subject, const char *san, int ask_ca)
{
	X509_REQ *r = X509_REQ_new();
	X509_NAME *n = parse_name(subject);
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	if (r == NULL || exts == NULL)
		die("X509_REQ_new");
	X509_REQ_set_version(r, 0);
	X509_REQ_set_subject_name(r, n);
	X509_REQ_set_pubkey(r, k);
	X509V3_set_ctx(&v3, NULL, NULL, r, NULL, 0);
	if (san != NULL) {
		if ((ext = X509V3_EXT_conf_nid(NULL, &v3,
		    NID_subject_alt_name, san)) == NULL)
			die("SAN extension");
		sk_X509_EXTENSION_push(exts, ext);
	}
	if (ask_ca) {
		if ((ext = X509V3_EXT_conf_nid(NULL, &v3,
		    NID_basic_constraints, "critical,CA:TRUE")) == NULL)
			die("basicConstraints extension");
		sk_X509_EXTENSION_push(exts, ext);
	}
	if (sk_X509_EXTENSION_num(exts) > 0 && !X509_REQ_add_extensions(r, exts))
		die("X509_REQ_add_extensions");
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	if (!X509_REQ_sign(r, k, EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519 ?
	    NULL : EVP_sha256()))
		die("X509_REQ_sign");
	X509_NAME_free(n);
	return r;
}

unsigned char *
tu_req_der(X509_REQ *r, size_t *len)
{
	unsigned char *der = NULL;
	int n = i2d_X509_REQ(r, &der);
	unsigned char *copy;

	if (n <= 0)
		die("i2d_X509_REQ");
	copy = malloc((size_t)n);
	memcpy(copy, der, (size_t)n);
	OPENSSL_free(der);
	*len = (size_t)n;
	return copy;
}

char *
tu_req_pem(X509_REQ *r, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *copy;
	long n;

	if (b == NULL || !PEM_write_bio_X509_REQ(b, r))
		die("PEM_write_bio_X509_REQ");
	n = BIO_get_mem_data(b, &data);
	copy = malloc((size_t)n + 1);
	memcpy(copy, data, (size_t)n);
	copy[n] = '\0';
	*len = (size_t)n;
	BIO_free(b);
	return copy;
}

X509 *
tu_make_ca(EVP_PKEY *k, const char *subject, time_t nb, time_t na)
{
	X509 *x = X509_new();
	X509_NAME *n = parse_name(subject);
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	static const struct { int nid; const char *val; } exts[] = {
		{ NID_basic_constraints, "critical,CA:TRUE" },
		{ NID_key_usage, "critical,keyCertSign,cRLSign" },
		{ NID_subject_key_identifier, "hash" },
	};

	if (x == NULL)
		die("X509_new");
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb);
	X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &na);
	X509_set_pubkey(x, k);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		if ((ext = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid,
		    exts[i].val)) == NULL || !X509_add_ext(x, ext, -1))
			die("CA extension");
		X509_EXTENSION_free(ext);
	}
	if (!X509_sign(x, k, EVP_sha256()))
		die("X509_sign");
	X509_NAME_free(n);
	return x;
}

char *
tu_tmpdir(void)
{
	char tmpl[] = "/tmp/hsmca-unit.XXXXXX";
	char *d = mkdtemp(tmpl);

	if (d == NULL)
		die("mkdtemp");
	return strdup(d);
}

void
tu_rmtree(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "testutil: could not remove %s\n", dir);
}
