/* hsmcad.h: the daemon's shared state and the interfaces between its
 * parts: the front (event loop, TLS, HTTP, EST) and the signer (workers
 * that hold the CA keys' sessions and the store's write handle). */
#ifndef HSMCAD_H
#define HSMCAD_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "hsmca/config.h"
#include "hsmca/hsm.h"
#include "hsmca/issue.h"
#include "hsmca/ocsp.h"
#include "hsmca/store.h"

/* What is reloaded on SIGHUP, reference counted: a request keeps the
 * runtime it started with until it is answered. */
struct runtime {
	atomic_int		 refs;
	struct config		*cfg;
	X509_STORE		*ca_trust;	/* hsmca's own generations and roots */
	X509_STORE		**bootstrap;	/* per cfg->est[i]; NULL: none */
	STACK_OF(X509)		*cacerts;	/* every certificate a device may need */
	unsigned char		*cacerts_p7;	/* PKCS#7 certs-only, DER */
	size_t			 cacerts_p7_len;
};

/* Build a runtime from a parsed config (which it then owns, also on
 * failure) and the generations in the store. */
struct runtime	*runtime_build(struct config *cfg, struct store *st,
		    struct hsmca_err *e);
struct runtime	*runtime_ref(struct runtime *rt);
void		 runtime_unref(struct runtime *rt);

/* ---- the signer ---- */

enum signer_op {
	SIGNER_ENROLL,		/* first enrollment (bootstrap identity) */
	SIGNER_RENEW,		/* renewal: same subject and SAN as the current cert */
	SIGNER_SERVERKEYGEN,	/* enrollment with a key pair made here */
	SIGNER_CRL,		/* build and sign the CRL of generation gen_id */
	SIGNER_AUDIT,		/* append a refusal to the audit log */
	SIGNER_OCSP,		/* pre-sign OCSP responses missing, stale or due */
	SIGNER_OCSP_UNKNOWN,	/* sign the response to a cache miss */
	SIGNER_OP_MAX
};

/* A request as the signer sees it: facts, not objects. The signer
 * re-parses the CSR and re-applies every rule itself. */
struct signer_job {
	enum signer_op	 op;
	struct runtime	*rt;
	char		 profile[64];
	int64_t		 gen_id;		/* SIGNER_CRL, SIGNER_OCSP_UNKNOWN */
	int		 id_nid;		/* SIGNER_OCSP_UNKNOWN: CertID hash */
	char		 requester[512];	/* for the record and the log */
	unsigned char	*csr_der;
	size_t		 csr_len;
	/* authorization facts established by the front */
	char		 id_cn[256];		/* authenticating certificate's CN */
	int		 cn_match;		/* CSR CN must equal id_cn */
	unsigned char	*renew_subject;		/* DER subject the CSR must carry */
	size_t		 renew_subject_len;
	unsigned char	*renew_san;		/* DER SAN the CSR must carry (NULL: none) */
	size_t		 renew_san_len;
	/* the answer */
	int		 status;		/* HTTP status */
	char		 reason[HSMCA_ERRMSG_MAX];
	char		 serial[SERIAL_HEX_MAX];
	unsigned char	*p7_der;		/* PKCS#7 certs-only with the certificate,
						   the DER CRL for SIGNER_CRL, or the
						   OCSPResponse for SIGNER_OCSP_UNKNOWN */
	size_t		 p7_len;
	time_t		 this_update, next_update;	/* SIGNER_CRL */
	int64_t		 crl_number;		/* SIGNER_OCSP: responses signed */
	int		 more;			/* SIGNER_OCSP: batch full, go on */
	unsigned char	*key_der;		/* PKCS#8, serverkeygen only */
	size_t		 key_len;
	/* completion, called on the event loop */
	void		(*done)(struct signer_job *, void *);
	void		*arg;
	struct signer_job *next;
};

struct signer;

int	signer_start(struct event_base *base, struct hsm *h, const char *store_path,
	    int workers, struct signer **out, struct hsmca_err *e);
/* Queue a job; its done callback runs later on the event loop. */
void	signer_submit(struct signer *s, struct signer_job *job);
/* Record a refused request in the audit log, off the event loop. At most
 * SIGNER_AUDIT_BACKLOG wait at once; beyond that they are counted, and
 * the count is recorded with the next one that fits. */
#define SIGNER_AUDIT_BACKLOG	1024
void	signer_audit_refusal(struct signer *s, const char *actor,
	    const char *object, const char *detail);
/* Jobs queued or running. */
int	signer_pending(struct signer *s);
/* (Re)load the active CA generation every worker signs with; on failure
 * jobs are answered 503 with the reason until the next load. */
int	signer_set_issuer(struct signer *s, const struct config *cfg,
	    struct hsmca_err *e);
void	signer_stop(struct signer *s);
/* The OCSP cache workers fill (after issuance, SIGNER_OCSP*); set once,
 * before the loop runs. */
void	signer_set_ocsp(struct signer *s, struct ocsp_cache *c);
void	signer_job_free(struct signer_job *job);

/* ---- the front ---- */

/* The CRL of one generation, as served, and what it was built from. */
struct crl_cache {
	int64_t		 gen_id;
	unsigned char	*der;
	size_t		 len;
	time_t		 this_update, next_update;
	int64_t		 number;
	int64_t		 revoked_seen;	/* revoked count it reflects */
	int64_t		 revoked_want;	/* revoked count when the build began */
	int		 building;
};

struct hsmcad {
	const char		*config_path;
	struct runtime		*rt;
	struct event_base	*base;
	struct evhttp		*https;
	struct evhttp		*http;
	SSL_CTX			*ssl;
	struct store		*st;		/* read-only lookups on the loop */
	struct hsm		*hsm;
	struct signer		*signer;
	int			 nconn;		/* open TLS connections */
	int			 inflight;	/* requests not yet answered */
	int			 draining;
	struct event		*drain_ev;	/* SIGTERM: waits for in-flight work */
	struct crl_cache	*crls;
	size_t			 ncrls;
	struct event		*crl_ev;	/* rebuilds CRLs that need it */
	struct ocsp_cache	*ocsp;		/* pre-signed OCSP responses */
	struct event		*ocsp_ev;	/* pre-signs what needs it */
	int			 ocsp_busy;	/* a SIGNER_OCSP job is out */
	int			 ocsp_more;	/* it stopped at its batch size */
	time_t			 ocsp_swept;
	int64_t			 ocsp_valid_seen, ocsp_revoked_seen;
	double			 ocsp_tokens;	/* signatures for misses */
	struct timespec		 ocsp_refill;
};

/* TLS: the server context (TLS 1.2 and 1.3 only, mutual TLS). */
SSL_CTX	*tls_server_ctx(struct hsmcad *d, struct hsmca_err *e);
struct bufferevent *tls_bevcb(struct event_base *base, void *arg);

/* CRLs: built on the signer, served over plain HTTP at /crl/GEN.crl. */
int	crl_serve_start(struct hsmcad *d, struct hsmca_err *e);
void	crl_serve_stop(struct hsmcad *d);
void	crl_handle(struct evhttp_request *req, void *arg);

/* OCSP: pre-signed on the signer, answered from memory over plain HTTP
 * at /ocsp (POST) and /ocsp/<base64> (GET). */
int	ocsp_serve_start(struct hsmcad *d, struct hsmca_err *e);
void	ocsp_serve_stop(struct hsmcad *d);
void	ocsp_handle(struct evhttp_request *req, void *arg);
/* On a signer worker: a SIGNER_OCSP or SIGNER_OCSP_UNKNOWN job, and the
 * response of a certificate just issued by iss. */
void	ocsp_job_run(struct hsm *h, struct store *st, struct ocsp_cache *c,
	    struct signer_job *job);
void	ocsp_issued(struct hsm *h, struct issuer *iss, struct ocsp_cache *c,
	    const char *serial);

/* EST endpoints. */
void	est_handle(struct evhttp_request *req, void *arg);

/* PKCS#7 certs-only, DER. */
int	est_certs_only(STACK_OF(X509) *certs, unsigned char **der, size_t *len);

#endif
