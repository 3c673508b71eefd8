/* csr.h: PKCS#10 requests, parsed, signature-checked and key-policed. */
#ifndef HSMCA_CSR_H
#define HSMCA_CSR_H

#include <stddef.h>
#include <openssl/asn1.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hsmca/err.h"

#define CSR_MAX_SIZE	(64 * 1024)	/* a larger request is refused */

struct csr {
	X509_REQ	*req;
	EVP_PKEY	*pubkey;	/* owned: the requester's public key */
	/* The key req's SubjectPublicKeyInfo decoded to (not owned). */
	EVP_PKEY	*spki_pubkey;
	unsigned char	 fingerprint[32];	/* SHA-256 of the DER request */
	char		 fingerprint_hex[65];
	int		 verified;	/* its self-signature was checked */
};

/* Parse a PEM ("-----BEGIN CERTIFICATE REQUEST-----", also the "NEW"
 * variant) or DER request, verify its self-signature and apply the key
 * policy. Errors: HSMCA_ERR_CSR_PARSE, HSMCA_ERR_CSR_SIGNATURE,
 * HSMCA_ERR_KEY_POLICY, each with a reason. */
int	csr_parse(const void *buf, size_t len, struct csr **out,
	    struct hsmca_err *e);
/* csr_parse without the self-signature check (verified stays 0), for a
 * factory station whose CSRs go on to an appliance that checks every
 * one when it signs: the station would only check each twice. Nothing
 * issues from such a request (issue_certificate refuses it). */
int	csr_parse_unverified(const void *buf, size_t len, struct csr **out,
	    struct hsmca_err *e);
/* Base64 body as EST sends it (RFC 7030 §4.2.1), whitespace allowed. */
int	csr_parse_base64(const void *buf, size_t len, struct csr **out,
	    struct hsmca_err *e);
void	csr_free(struct csr *c);

/* The key policy: RSA >= 2048 bits with an odd public exponent in
 * [65537, 2^256); EC only on P-256, P-384, P-521; nothing else. */
int	csr_check_key(const EVP_PKEY *pk, struct hsmca_err *e);

/* The request's SubjectPublicKeyInfo, still encoded, when c->pubkey is
 * the key it decoded to (NULL once a caller put another key there): a
 * certificate can carry these bytes without encoding the key again. */
const X509_PUBKEY *csr_get0_spki(const struct csr *c);

/* A SubjectPublicKeyInfo with its key left encoded, for parsers that
 * must not decode it: OpenSSL 3.0 decodes every key it meets inside a
 * request or certificate through its generic decoder, at the cost of
 * several signatures. */
struct csr_spki {
	X509_ALGOR	*algorithm;
	ASN1_BIT_STRING	*key;
};
DECLARE_ASN1_ITEM(csr_spki)

/* Does the request ask for basicConstraints cA=TRUE? 1 yes, 0 no. */
int	csr_requests_ca(const struct csr *c);

/* The requested subjectAltName (NULL if none); caller frees with
 * GENERAL_NAMES_free. */
GENERAL_NAMES *csr_get_san(const struct csr *c);

#endif
