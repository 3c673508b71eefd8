/* issue.h: the flow of one certificate (DESIGN.md): profile, TBS, lint,
 * serial reserved in the store, HSM signature, verify-after-sign, durable
 * record, release. */
#ifndef HSMCA_ISSUE_H
#define HSMCA_ISSUE_H

#include <stdint.h>
#include <time.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hsmca/config.h"
#include "hsmca/csr.h"
#include "hsmca/err.h"
#include "hsmca/hsm.h"
#include "hsmca/profile.h"
#include "hsmca/serial.h"
#include "hsmca/store.h"
#include "hsmca/util.h"

struct sigcheck;

/* One CA generation ready to sign. */
struct issuer {
	int64_t		 gen_id;
	X509		*cert;
	STACK_OF(X509)	*chain;		/* certificates above cert, may be empty */
	struct hsm_key	*key;
	const EVP_MD	*md;
	char		*crl_url;	/* with %g expanded; NULL: none */
	char		*ocsp_url;
	struct sigcheck	*check;		/* NULL until issuer_precompute */
};

struct issue_request {
	const struct csr	*csr;
	const struct profile	*profile;
	const char		*requester;	/* who asked: "cli:root", "est:CN=..." */
	time_t			 now;
	/* 0, or the batch it is for: its serial is then reserved only
	 * while the CSR has no certificate nor another batch reservation
	 * (store_reserve_batch_serial), HSMCA_ERR_BUSY otherwise. */
	int64_t			 batch_id;
};

struct issue_result {
	/* The released certificate (caller frees). Its subject key is
	 * the CSR's bytes, not decoded: X509_get0_pubkey() gives NULL. */
	X509	*cert;
	char	 serial[SERIAL_HEX_MAX];
	char	 sha256[UTIL_SHA256_HEX];
	int64_t	 cert_id;	/* row in the store */
};

/* Load a generation's certificate, chain and key. */
int	issuer_open(struct hsm *h, struct store *st,
	    const struct store_generation *g, const struct config_ca *ca,
	    struct issuer **out, struct hsmca_err *e);
void	issuer_free(struct issuer *iss);
/* Make iss verify its signatures faster (sigcheck.h), for callers that
 * issue many certificates with it (hsmcad, batch signing): tens of
 * milliseconds, once. Without it, or when the key does not allow it,
 * each verify-after-sign takes OpenSSL's generic path. */
void	issuer_precompute(struct issuer *iss);

/* Issue one certificate. Nothing is released unless the signature
 * verified and the record committed; a reserved serial whose issuance
 * failed is marked failed and never reused. iss must not have been
 * revoked (or have expired) since it was opened: HSMCA_ERR_CA_STATE,
 * nothing recorded, when its serial is reserved (store_reserve_serial,
 * device). */
int	issue_certificate(struct hsm *h, struct store *st, struct issuer *iss,
	    const struct issue_request *req, struct issue_result *out,
	    struct hsmca_err *e);
void	issue_result_free(struct issue_result *r);

/* Issue n certificates as issue_certificate would each, in fewer
 * commits: every serial reserved in one transaction on st before the
 * HSM signs, every record and its audit entry committed in one after.
 * rets[i], errs[i] and outs[i] are each one's result. Returns 0, or a
 * negative code when the reservations could not be committed (then
 * every rets[i] says so and nothing was signed). st's writes must not
 * be in a transaction of the caller's. iss as for issue_certificate. */
int	issue_certificates(struct hsm *h, struct store *st,
	    struct issuer *iss, const struct issue_request *reqs, size_t n,
	    struct issue_result *outs, int *rets, struct hsmca_err *errs);

/* Reservations left behind: mark failed every serial reserved before
 * now - age (age > 0) and never recorded, an issuance that died between
 * reserving it and recording its certificate, each with an audit record
 * by actor in the same transaction, ISSUE_SWEEP_CHUNK rows a
 * transaction. each (if not NULL) sees every row once its transaction
 * has committed. *n: how many were marked failed, also when an error
 * stops it (those committed before). st's writes must not be in a
 * transaction of the caller's. hsmcad's signer and `hsmca cert sweep`
 * both sweep with it. */
int	issue_sweep_reserved(struct store *st, time_t now, int64_t age,
	    const char *actor,
	    void (*each)(const struct store_cert *c, void *arg), void *arg,
	    size_t *n, struct hsmca_err *e);

/* What would refuse req's certificate before anything is recorded
 * (building it from the profile, the pre-sign lint), checked without
 * reserving a serial or signing: for a batch that must refuse before
 * it signs anything (--fail-fast). */
int	issue_check(struct issuer *iss, const struct issue_request *req,
	    struct hsmca_err *e);

/* The steps every certificate goes through once its TBS is built (issuer,
 * subject, key, validity and extensions set): a fresh serial, pre-sign
 * lint against profile, the serial reserved durably, the HSM signature,
 * verify-after-sign, the record and its audit entry committed together,
 * release. csr_sha256 may be NULL (a certificate with no CSR). For the
 * certificates a generation needs whatever its status (proofs of
 * possession, OCSP responders): the caller decides. */
int	issue_finish(struct hsm *h, struct store *st, struct issuer *iss,
	    X509 *tbs, const struct profile *profile, const char *requester,
	    const char *csr_sha256, time_t now, struct issue_result *out,
	    struct hsmca_err *e);

/* What a caller writes in the transaction that records its certificate
 * (rec, as recorded: serial, DER, notAfter), after the audit entry: if
 * it fails, nothing of the certificate is recorded and its serial ends
 * failed, as for any record that did not commit. */
typedef int	issue_then_fn(struct store *w, const struct store_cert *rec,
	    void *arg, struct hsmca_err *e);

/* issue_finish, with then(w, rec, arg, e) in the record's transaction:
 * for a row that must never exist without its certificate, nor the
 * certificate without it (hsmcad's OCSP responders). */
int	issue_finish_with(struct hsm *h, struct store *st, struct issuer *iss,
	    X509 *tbs, const struct profile *profile, const char *requester,
	    const char *csr_sha256, time_t now, issue_then_fn *then, void *arg,
	    struct issue_result *out, struct hsmca_err *e);

/* Sign a fully built certificate with signkey (in the token; h may be
 * NULL for a software key, in tests), then
 * re-parse the DER and run the post-sign lint against issuer (NULL: the
 * certificate is self-signed). *out is tbs, signed (a new reference),
 * which encodes to exactly the DER that was checked. */
int	issue_sign(struct hsm *h, X509 *tbs, EVP_PKEY *signkey,
	    const EVP_MD *md, const X509 *issuer, X509 **out,
	    struct hsmca_err *e);

/* Add subjectKeyIdentifier and authorityKeyIdentifier (from issuer; NULL
 * for self-signed), and the CRL distribution point and OCSP URL when
 * given. */
int	issue_add_identifiers(X509 *cert, const X509 *issuer,
	    const char *crl_url, const char *ocsp_url, struct hsmca_err *e);

/* Add one extension written in OpenSSL's config syntax ("critical,
 * CA:FALSE") with ctx's issuer and subject. */
int	issue_add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value,
	    struct hsmca_err *e);

/* ASN1_TIME to time_t; -1 on error. */
time_t	issue_asn1_time(const ASN1_TIME *t);
/* The SAN of cert as "DNS:a,URI:b" (malloc'd, "" if none). */
char	*issue_san_string(const X509 *cert);

#endif
