/* ocsp.h: OCSP (RFC 6960, RFC 5019 profile). A response per certificate
 * is signed ahead of time (in the HSM, by a delegated responder
 * certificate or by the CA key) and kept in memory; requests are then
 * answered from memory without touching the HSM. */
#ifndef HSMCA_OCSP_H
#define HSMCA_OCSP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "hsmca/err.h"
#include "hsmca/hsm.h"
#include "hsmca/profile.h"
#include "hsmca/serial.h"
#include "hsmca/store.h"

/* nextUpdate - thisUpdate of a pre-signed response (0: the default). */
#define OCSP_VALIDITY_MIN	((int64_t)8 * 3600)
#define OCSP_VALIDITY_DEFAULT	((int64_t)86400)
#define OCSP_VALIDITY_MAX	((int64_t)7 * 86400)

/* A delegated responder certificate carries id-pkix-ocsp-nocheck and so
 * cannot be revoked: keep it short-lived (0: the default). */
#define OCSP_RESPONDER_VALIDITY_DEFAULT	((int64_t)30 * 86400)
#define OCSP_RESPONDER_VALIDITY_MAX	((int64_t)365 * 86400)

/* What ocsp_answer accepts: one CertID per request (the common case; a
 * pre-signed response carries exactly one SingleResponse), and a request
 * of at most this many bytes. */
#define OCSP_REQUEST_IDS_MAX	1
#define OCSP_REQUEST_MAX_BYTES	4096

/* Who signs the responses of one CA generation. */
struct ocsp_signer {
	X509		*issuer;	/* the generation's certificate */
	X509		*responder_cert;	/* NULL: the CA key signs */
	EVP_PKEY	*key;	/* responder_cert's key, or the CA's */
	const EVP_MD	*md;	/* NULL for Ed25519 */
	struct hsm	*h;	/* NULL for a software key (tests) */
};

/* Renew a responder certificate when less than this is left of it: more
 * than the longest response it signs (OCSP_VALIDITY_MAX), so no response
 * outlives the certificate that signed it. */
#define OCSP_RESPONDER_RENEW_BEFORE	((int64_t)10 * 86400)

/* Signed unknown responses the cache keeps at most: a client may ask for
 * any number of random serials. Beyond it an unknown response is still
 * answered, but not kept. */
#define OCSP_UNKNOWN_MAX	10000

/* The TBS of a delegated responder certificate (everything below but the
 * serial), and the profile it is linted against: for issue_finish, which
 * gives it a serial, records it and its audit entry. */
int	ocsp_responder_tbs(X509 *issuer, EVP_PKEY *responder_pub,
	    const char *subject, time_t now, int64_t validity, X509 **out,
	    struct hsmca_err *e);
void	ocsp_responder_profile(struct profile *prof);

/* Build a delegated responder certificate for issuer's generation and
 * sign it with issuer_key (issue_sign: lint, verify-after-sign). The
 * certificate names responder_pub (generated in the token by the
 * caller), carries extendedKeyUsage OCSPSigning, id-pkix-ocsp-nocheck,
 * keyUsage digitalSignature (critical), basicConstraints CA:FALSE
 * (critical), SKI and AKI; validity [now, now + validity] clamped to the
 * issuer's. subject NULL: the issuer's subject with " OCSP Responder"
 * after its CN. The serial is fresh; recording the certificate in the
 * store is the caller's. h NULL: a software issuer key. */
int	ocsp_responder_cert_make(struct hsm *h, X509 *issuer,
	    EVP_PKEY *issuer_key, const EVP_MD *md, EVP_PKEY *responder_pub,
	    const char *subject, time_t now, int64_t validity, X509 **out,
	    struct hsmca_err *e);

/* A complete DER OCSPResponse (successful, BasicOCSPResponse) for the
 * certificate c issued by s->issuer: good, or revoked with its time and
 * reason (unspecified is left out) as the store records it; thisUpdate
 * now, nextUpdate now + validity (OCSP_VALIDITY_MIN..MAX, 0: default);
 * responderID by key hash; the responder certificate included when
 * delegated. The CertID hashes with id_md (NULL: SHA-1, what `openssl
 * ocsp` sends; EVP_sha256() for clients that ask with SHA-256). A
 * reserved or failed serial is refused (HSMCA_ERR_CA_STATE): it was
 * never issued, use ocsp_unknown. The signature is verified with the
 * signer's certificate before the DER is returned (*der: OPENSSL_free). */
int	ocsp_presign(const struct ocsp_signer *s, const struct store_cert *c,
	    const EVP_MD *id_md, time_t now, int64_t validity,
	    unsigned char **der, size_t *len, struct hsmca_err *e);
/* The same, status unknown, for a serial (canonical hex) that s->issuer
 * never issued. Signed: the caller decides when it is worth a
 * signature (a client can ask for any number of random serials). */
int	ocsp_unknown(const struct ocsp_signer *s, const char *serial,
	    const EVP_MD *id_md, time_t now, int64_t validity,
	    unsigned char **der, size_t *len, struct hsmca_err *e);
/* An unsigned error response: OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
 * _INTERNALERROR, _TRYLATER, _SIGREQUIRED or _UNAUTHORIZED. */
int	ocsp_error(int status, unsigned char **der, size_t *len,
	    struct hsmca_err *e);

/* Pre-signed responses keyed by (generation, serial), one per CertID
 * hash (SHA-1, SHA-256). One writer and any number of readers at once
 * (a rwlock); lookups are O(1). */
/* The profile name a delegated responder's certificate is recorded with:
 * hsmca's own, never one a device holds. */
#define OCSP_RESPONDER_PROFILE	"ocsp-responder"

struct ocsp_cache;

int	ocsp_cache_new(struct ocsp_cache **out, struct hsmca_err *e);
void	ocsp_cache_free(struct ocsp_cache *c);
/* Answer for a generation: its name and key hashes (SHA-1, SHA-256) are
 * what requests are matched against. Adding it again changes nothing. */
int	ocsp_cache_add_issuer(struct ocsp_cache *c, int64_t gen_id,
	    X509 *issuer, struct hsmca_err *e);
/* Keep a copy of a response made by ocsp_presign or ocsp_unknown (its
 * issuer added first). It replaces the one of the same CertID hash;
 * when its status differs from the entry's (a revocation), the entry's
 * response for the other hash is dropped too, so no two statuses are
 * ever served for one certificate. */
int	ocsp_cache_put(struct ocsp_cache *c, const unsigned char *der,
	    size_t len, struct hsmca_err *e);
/* Entries (and responses) held; of them, unknown. */
size_t	ocsp_cache_count(struct ocsp_cache *c);
size_t	ocsp_cache_unknowns(struct ocsp_cache *c);
/* Drop the unknown entries whose every response has expired at now;
 * returns how many. */
size_t	ocsp_cache_expire_unknowns(struct ocsp_cache *c, time_t now);

/* Which responses of a certificate need signing (OCSP_NEED_*): the
 * SHA-1 one if it is missing, says another status, reason or revocation
 * time than given, or its nextUpdate is at or before before; the
 * SHA-256 one (made on demand) if it is held and due. The issuer must
 * have been added. */
#define OCSP_NEED_SHA1		0x01
#define OCSP_NEED_SHA256	0x02
int	ocsp_cache_needs(struct ocsp_cache *c, int64_t gen_id,
	    const char *serial, int status, int reason, time_t revoked_at,
	    time_t before);

/* A response to refresh: its nextUpdate is near. */
struct ocsp_due {
	int64_t		gen_id;
	char		serial[SERIAL_HEX_MAX];
	int		id_nid;		/* NID_sha1 or NID_sha256 */
	int		status;		/* V_OCSP_CERTSTATUS_* */
	time_t		next_update;
};
/* Up to max responses whose nextUpdate is at or before before, into a
 * malloc'd array (*out: free). One pass over the table. */
int	ocsp_cache_due(struct ocsp_cache *c, time_t before, size_t max,
	    struct ocsp_due **out, size_t *n, struct hsmca_err *e);

/* What a request asked for that the cache could not answer, or what
 * the answer it had needs for HTTP caching. */
#define OCSP_HTTP_DATE	32	/* "Thu, 01 Jan 1970 00:00:00 GMT" */
#define OCSP_ETAG	43	/* the quoted hex SHA-1 of a response */
struct ocsp_query {
	int64_t		gen_id;		/* 0: no generation of ours */
	char		serial[SERIAL_HEX_MAX];
	int		id_nid;		/* NID_sha1 or NID_sha256 */
	/* An answer's HTTP caching headers (RFC 5019 6.2), made when it
	 * was cached: its thisUpdate and nextUpdate as HTTP dates, and
	 * its ETag. */
	time_t		this_update, next_update;
	char		last_modified[OCSP_HTTP_DATE];
	char		expires[OCSP_HTTP_DATE];
	char		etag[OCSP_ETAG];
};

/* Answer a DER OCSPRequest from the cache alone (never the HSM):
 *  - *found 1, *der the pre-signed response for its CertID;
 *  - *found 0, *der an error response: malformedRequest (bytes that are
 *    not a request, more than OCSP_REQUEST_IDS_MAX CertIDs, a serial
 *    that cannot be one) or unauthorized (an issuer that is none of
 *    ours, or a CertID hash other than SHA-1 and SHA-256);
 *  - *found 0, *der NULL: the issuer is ours but the cache holds no
 *    response for the serial under that hash, or only one whose
 *    nextUpdate has passed at now; q says which, for the caller to look
 *    the serial up in the store and sign (ocsp_presign or ocsp_unknown).
 * *der: OPENSSL_free. Fails only when out of memory. */
int	ocsp_answer(struct ocsp_cache *c, const unsigned char *req,
	    size_t reqlen, time_t now, unsigned char **der, size_t *len,
	    int *found, struct ocsp_query *q, struct hsmca_err *e);

#endif
