/* crl.h: certificate revocation lists, one per CA generation, signed in
 * the HSM with the generation's key (RFC 5280 §5: v2, CRL number,
 * authority key identifier, reasonCode per entry). */
#ifndef HSMCA_CRL_H
#define HSMCA_CRL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hsmca/err.h"
#include "hsmca/hsm.h"
#include "hsmca/issue.h"
#include "hsmca/store.h"

#define CRL_NEXT_UPDATE_DEFAULT	((int64_t)7 * 86400)
#define CRL_NEXT_UPDATE_MAX	((int64_t)10 * 86400)

/* RFC 5280 CRLReason codes are OpenSSL's CRL_REASON_* (x509v3.h);
 * CRL_REASONS bounds them. */
#define CRL_REASONS	(CRL_REASON_AA_COMPROMISE + 1)

/* "keyCompromise" ...; "unknown" for a code RFC 5280 does not name. */
const char	*crl_reason_name(int reason);
/* An RFC 5280 name, case ignored, into a code a certificate can be
 * revoked with; removeFromCRL and unknown names are refused with a
 * message that says what to use instead. */
int		 crl_reason_parse(const char *name, int *reason,
		    struct hsmca_err *e);

/* What a CRL that was built says. */
struct crl_info {
	int64_t	number;
	time_t	this_update;
	time_t	next_update;
	size_t	entries;
};

/* Who signs: a generation's certificate and private key. */
struct crl_signer {
	int64_t		 gen_id;
	X509		*cert;
	EVP_PKEY	*key;	/* in the token (or a software key in tests) */
	const EVP_MD	*md;	/* NULL for Ed25519 */
};

/* Build and sign the CRL of one generation: every revoked certificate
 * whose notAfter has not passed at now, thisUpdate now, nextUpdate
 * now + next_update_secs (0: CRL_NEXT_UPDATE_DEFAULT; more than
 * CRL_NEXT_UPDATE_MAX is refused), the next CRL number from the store.
 * The DER is verified with the CA's public key before it is returned
 * (*der: OPENSSL_free). info may be NULL. */
int	crl_build(struct hsm *h, struct store *st, const struct issuer *iss,
	    time_t now, int64_t next_update_secs, unsigned char **der,
	    size_t *len, struct crl_info *info, struct hsmca_err *e);
/* The same with the signer spelled out; h NULL signs without the HSM's
 * session limit (a software key). */
int	crl_build_signer(struct hsm *h, struct store *st,
	    const struct crl_signer *s, time_t now, int64_t next_update_secs,
	    unsigned char **der, size_t *len, struct crl_info *info,
	    struct hsmca_err *e);

#endif
