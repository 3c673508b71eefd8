/* testutil.h: fixtures for the cmocka unit tests, built in memory with a
 * software key (unit tests never need the HSM). */
#ifndef HSMCA_TESTUTIL_H
#define HSMCA_TESTUTIL_H

#include <stddef.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* "ec:P-256", "ec:P-384", "ec:P-521", "ec:secp256k1", "rsa:2048",
 * "rsa:1024", "ed25519". Aborts on failure. */
EVP_PKEY	*tu_keygen(const char *spec);
/* RSA key with a chosen public exponent. */
EVP_PKEY	*tu_rsa_keygen_exp(int bits, unsigned long exponent);

/* A request signed by k. subject: "CN=dev1,O=Acme" (NULL: empty);
 * san: "DNS:a.example,URI:urn:x,IP:10.0.0.1,email:a@b" (NULL: none);
 * ask_ca: add basicConstraints CA:TRUE to the requested extensions. */
X509_REQ	*tu_make_req(EVP_PKEY *k, const char *subject, const char *san,
		    int ask_ca);
unsigned char	*tu_req_der(X509_REQ *r, size_t *len);	/* malloc'd */
char		*tu_req_pem(X509_REQ *r, size_t *len);	/* malloc'd, NUL-terminated */

/* A self-signed CA certificate (basicConstraints CA:TRUE, keyUsage
 * keyCertSign+cRLSign, SKI) valid [nb, na]. */
X509		*tu_make_ca(EVP_PKEY *k, const char *subject, time_t nb, time_t na);

/* A fresh temporary directory (removed by tu_rmtree). */
char		*tu_tmpdir(void);
void		 tu_rmtree(const char *dir);

#endif
