/* osslcost.c: what the OpenSSL calls on hsmca's issuance path cost on
 * this machine, per call: key and certificate decoding and encoding
 * against an ECDSA P-256 signature and verification. Explains where
 * hsmcad's CPU per certificate goes (docs/benchmarks.md). */
#include <stdio.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "hsmca/sigcheck.h"

#define N 5000

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int
main(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *der = NULL, *cder = NULL, sig[128];
	X509 *c = X509_new();
	int n, cn;
	size_t sl;
	double t;

	if (k == NULL || md == NULL || c == NULL)
		return 1;
	n = i2d_PUBKEY(k, &der);
	t = now();
	for (int i = 0; i < N; i++) {
		const unsigned char *p = der;

		EVP_PKEY_free(d2i_PUBKEY(NULL, &p, n));
	}
	printf("d2i_PUBKEY       %6.1f us\n", (now() - t) / N * 1e6);
	/* What lib/csr.c does instead: the point into a copy of the curve's
	 * parameters, no decoder. */
	unsigned char *pt = NULL;
	size_t ptlen = EVP_PKEY_get1_encoded_public_key(k, &pt);
	t = now();
	for (int i = 0; i < N; i++) {
		EVP_PKEY *x = EVP_PKEY_new();

		if (x == NULL || !EVP_PKEY_copy_parameters(x, k) ||
		    !EVP_PKEY_set1_encoded_public_key(x, pt, ptlen))
			return 1;
		EVP_PKEY_free(x);
	}
	printf("EC point -> key  %6.1f us\n", (now() - t) / N * 1e6);
	OPENSSL_free(pt);
	t = now();
	for (int i = 0; i < N; i++)
		X509_set_pubkey(c, k);
	printf("X509_set_pubkey  %6.1f us\n", (now() - t) / N * 1e6);
	X509_set_version(c, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 1);
	X509_gmtime_adj(X509_getm_notBefore(c), 0);
	X509_gmtime_adj(X509_getm_notAfter(c), 100);
	X509_sign(c, k, EVP_sha256());
	cn = i2d_X509(c, &cder);
	t = now();
	for (int i = 0; i < N; i++) {
		const unsigned char *p = cder;

		X509_free(d2i_X509(NULL, &p, cn));
	}
	printf("d2i_X509         %6.1f us\n", (now() - t) / N * 1e6);
	t = now();
	for (int i = 0; i < N; i++)
		X509_verify(c, k);
	printf("X509_verify      %6.1f us\n", (now() - t) / N * 1e6);
	/* The same signature checked as verify-after-sign checks it
	 * (lib/sigcheck.c): the key's multiples precomputed once. */
	{
		const unsigned char *sp;
		unsigned char *tbs = NULL;
		const ASN1_BIT_STRING *cs;
		struct sigcheck *sc;
		int tn;

		t = now();
		sc = sigcheck_new(k, EVP_sha256());
		printf("sigcheck_new     %6.1f ms (once per CA key)\n",
		    (now() - t) * 1e3);
		X509_get0_signature(&cs, NULL, c);
		sp = cs->data;
		tn = i2d_re_X509_tbs(c, &tbs);
		if (sc == NULL || tn <= 0 || sigcheck_verify(sc, tbs,
		    (size_t)tn, sp, (size_t)cs->length) != 1)
			return 1;
		t = now();
		for (int i = 0; i < N; i++)
			sigcheck_verify(sc, tbs, (size_t)tn, sp,
			    (size_t)cs->length);
		printf("sigcheck_verify  %6.1f us\n", (now() - t) / N * 1e6);
		sigcheck_free(sc);
		OPENSSL_free(tbs);
	}
	t = now();
	for (int i = 0; i < N; i++) {
		sl = sizeof(sig);
		EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k);
		EVP_DigestSign(md, sig, &sl, cder, (size_t)cn);
	}
	printf("ECDSA P-256 sign %6.1f us\n", (now() - t) / N * 1e6);
	OPENSSL_free(der);
	OPENSSL_free(cder);
	X509_free(c);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(k);
	return 0;
}
