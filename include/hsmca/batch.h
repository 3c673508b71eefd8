/* batch.h: factory batch signing. A batch is a list of device CSRs (a
 * folder, or a CSV / JSON Lines manifest); every CSR is checked first,
 * then the good ones are signed in parallel and each device gets its
 * certificate and chain in the output folder, with a results manifest
 * written atomically at the end.
 *
 * Signing one CSR goes through a struct batch_signer: local mode signs
 * with the HSM through lib/issue.c; a remote mode (the admin API) plugs
 * in the same way. Both return the certificate already issued for a CSR
 * instead of a second one, so a re-run, or a run after kill -9, finishes
 * the batch without issuing anything twice; and the store reserves a
 * batch's serial only while its CSR has no certificate nor another
 * batch reservation pending, so runs at once (two stations, a station
 * and a local run) never issue two either. */
#ifndef HSMCA_BATCH_H
#define HSMCA_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "hsmca/config.h"
#include "hsmca/csr.h"
#include "hsmca/err.h"
#include "hsmca/hsm.h"
#include "hsmca/issue.h"
#include "hsmca/serial.h"
#include "hsmca/util.h"

#define BATCH_DEVICE_MAX	128	/* longest device id */
#define BATCH_CHUNK_MAX		32	/* CSRs signed at once, per request */

enum batch_status {
	BATCH_PENDING,		/* not signed yet */
	BATCH_ISSUED,		/* signed in this run */
	BATCH_EXISTING,		/* issued before: the recorded one is returned */
	BATCH_REFUSED,		/* the CSR or the request is refused: reason */
	BATCH_FAILED,		/* could not be signed now (HSM, store, the
				   appliance's answer lost): reason */
	BATCH_STATUS_MAX
};

/* One device of the batch. */
struct batch_item {
	char			*device;	/* device id: names its output files */
	char			*path;		/* the CSR file */
	const struct profile	*profile;
	struct csr		*csr;		/* set once read and checked */
	unsigned char		 file_sha256[32];	/* of the file as read */
	enum batch_status	 status;
	char			*reason;	/* refused or failed: why */
	char			 serial[SERIAL_HEX_MAX];
	char			 sha256[UTIL_SHA256_HEX];	/* of the certificate */
	char			*cert_pem;	/* the certificate */
	char			*chain_pem;	/* above it, if not the batch's */
};

/* What a signer hands back for one CSR. */
struct batch_cert {
	enum batch_status	 status;	/* ISSUED or EXISTING */
	char			 serial[SERIAL_HEX_MAX];
	char			 sha256[UTIL_SHA256_HEX];
	char			*pem;		/* malloc'd */
	/* malloc'd: the certificates above pem when they are not the
	 * batch's chain (a certificate already issued by an earlier CA
	 * generation); NULL: the batch's. */
	char			*chain;
};

void	batch_cert_free_fields(struct batch_cert *c);

/* How one CSR gets signed. begin runs once before any worker and sets
 * *chain_pem (malloc'd: the certificates above the device's, PEM) and
 * *batch_id; each worker thread opens its own context; check refuses a
 * request before anything is signed (NULL: nothing to check), with
 * fail_fast also for what signing would find (the certificate already
 * issued for the CSR, the pre-sign lint: batch_check_sign); sign
 * returns the new certificate or the one already issued for this CSR,
 * or a negative code with a reason in e; end records the outcome
 * (outcome is AUDIT_OK, AUDIT_REFUSED or AUDIT_FAILED). */
struct batch_signer {
	const char	*name;		/* "local", "remote" */
	int	(*begin)(void *ctx, const char *batch_sha256, const char *profile,
		    size_t items, int64_t *batch_id, char **chain_pem,
		    struct hsmca_err *e);
	int	(*worker_open)(void *ctx, void **worker, struct hsmca_err *e);
	int	(*check)(void *worker, const struct batch_item *it,
		    int fail_fast, struct hsmca_err *e);
	int	(*sign)(void *worker, const struct batch_item *it,
		    struct batch_cert *out, struct hsmca_err *e);
	/* Optional: sign n CSRs at once, each as sign would (local mode
	 * reserves their serials in one commit and records them in one);
	 * rets[i], out[i] and errs[i] are each one's result. */
	void	(*sign_chunk)(void *worker, struct batch_item *const *items,
		    size_t n, struct batch_cert *out, int *rets,
		    struct hsmca_err *errs);
	/* sign and sign_chunk check each CSR again as check does (remote
	 * mode: the appliance does): unless fail-fast, check is not called
	 * first, a refusal comes back from signing instead. */
	int		 sign_checks;
	/* A refusal, for the audit log (NULL: not recorded). */
	void	(*refused)(void *worker, const struct batch_item *it);
	void	(*worker_close)(void *worker);
	int	(*end)(void *ctx, int outcome, const char *summary,
		    size_t signed_, size_t refused, struct hsmca_err *e);
};

/* Counts, for progress and the summary. */
struct batch_stats {
	size_t	items;
	size_t	checked;	/* read and checked */
	size_t	issued;
	size_t	existing;
	size_t	refused;
	size_t	failed;
	double	elapsed;	/* seconds since batch_run started */
	double	sign_elapsed;	/* seconds since signing started (0: not yet) */
};

struct batch_opts {
	const char		*in;		/* folder or manifest */
	const char		*out;		/* output folder (created) */
	const struct profile	*profile;	/* default profile */
	const struct config	*cfg;		/* for per-device profiles */
	int			 jobs;		/* worker threads, >= 1 */
	int			 fail_fast;	/* a refused CSR stops the batch */
	/* Progress from the calling thread, every tick_ms while it runs;
	 * an item refused or failed, from a worker (serialized). Either
	 * may be NULL. */
	int			 tick_ms;
	void			(*progress)(void *arg,
				    const struct batch_stats *s);
	void			(*item_done)(void *arg,
				    const struct batch_item *it);
	void			*arg;
};

struct batch {
	struct batch_item	*items;
	size_t			 nitems;
	char			 sha256[UTIL_SHA256_HEX];	/* of the input */
	int64_t			 id;		/* the signer's batch id */
	char			*chain_pem;
	struct batch_stats	 stats;
	int			 stopped;	/* fail-fast stopped it */
};

const char	*batch_status_name(enum batch_status s);
/* Is code a refusal of the request (the CSR, its names, its key, a
 * conflict with what is recorded) rather than a failure to serve it
 * (the token, the store, the appliance's answer lost: a failure, which
 * running the batch again retries)? */
int		 batch_is_refusal(int code);

/* Read the list of devices: a folder of CSRs (*.csr, *.pem, *.der,
 * *.req; the device id is the file name without its extension), or a
 * manifest: CSV lines "device,csr[,profile]" (RFC 4180 quotes; a first
 * line of exactly those column names is skipped) or JSON Lines
 * {"device": ..., "csr": ..., "profile": ...}, strings only, after an
 * optional UTF-8 byte order mark. Paths in a manifest are relative to
 * its folder. Duplicate device ids, unsafe ones, unknown profiles and
 * members are refused here, naming the line; so is an output folder
 * that is the input folder. */
int	batch_load(struct batch **out, const struct batch_opts *o,
	    struct hsmca_err *e);
void	batch_free(struct batch *b);

/* Check every CSR, then sign the good ones with signer over o->jobs
 * threads (a chunk at a time when the signer has sign_chunk and
 * o->fail_fast is off), the calling thread writing DEVICE.crt and
 * DEVICE.chain.pem into o->out in place as they come, then results.csv
 * (removed before the first file is written; written atomically after
 * every certificate file is on disk). Returns 0 when the batch ran to
 * its end, whatever the items' status (see b->stats); a negative code
 * if it could not (once begun, its end is recorded as failed). */
int	batch_run(struct batch *b, const struct batch_signer *signer,
	    void *ctx, const struct batch_opts *o, struct hsmca_err *e);

/* The store's batch lock (STORE-batch.lock), held by whoever signs a
 * batch's certificates: a local run for the whole run, hsmcad while it
 * serves a station's sign requests. With it held and nothing of one's
 * own in flight, a batch reservation pending was left behind by a run
 * that died (store_batch_fail_reserved). *fd: close() releases it.
 * HSMCA_ERR_BUSY if another holds it. */
int	batch_lock(const char *store_path, int *fd, struct hsmca_err *e);

/* Local mode: the CA's active generation, the HSM's session pool and the
 * store's group commit, under the batch lock (a reservation left behind
 * by a run that died is marked failed when it opens). One per
 * batch_run. */
struct batch_local;
int	batch_local_open(struct hsm *h, const char *store_path,
	    struct issuer *iss, const char *requester,
	    struct batch_local **out, struct hsmca_err *e);
void	batch_local_close(struct batch_local *l);
extern const struct batch_signer batch_local_signer;

/* The signing side's steps, shared by local mode and hsmcad's admin API
 * (remote mode): the batch's record and the chain devices get; the
 * disallow check; what signing would refuse a CSR for, without signing
 * (--fail-fast); one CSR of batch batch_id, returning the certificate
 * already issued for it (refused if it was revoked, expired, is another
 * profile's or its CA generation was revoked; failed, HSMCA_ERR_BUSY,
 * if another run is signing it at this moment; chain_gen: the CA
 * generation whose chain the caller hands out, 0 for iss's, and a
 * certificate of another comes with its own in out->chain); a refusal
 * and the outcome in the audit log. The caller holds the batch lock,
 * shared with no local run. */
int	batch_record_begin(struct store *st, struct issuer *iss,
	    const char *sha256, const char *profile, const char *actor,
	    size_t items, int64_t *batch_id, char **chain_pem,
	    struct hsmca_err *e);
int	batch_check_csr(struct store *st, const struct csr *csr,
	    struct hsmca_err *e);
/* iss NULL: the certificate already issued only, no lint. */
int	batch_check_sign(struct store *st, struct issuer *iss,
	    const struct csr *csr, const struct profile *profile,
	    struct hsmca_err *e);
int	batch_sign_csr(struct hsm *h, struct store *st, struct issuer *iss,
	    const char *requester, int64_t batch_id, int64_t chain_gen,
	    const struct csr *csr, const struct profile *profile,
	    struct batch_cert *out, struct hsmca_err *e);
/* n CSRs at once, each as batch_sign_csr would (existing ones
 * returned, the new ones issued together by issue_certificates: their
 * serials reserved in one commit, their records in one); a CSR given
 * twice gets one certificate. rets[i], out[i] and errs[i] are each
 * one's result; returns 0. */
int	batch_sign_csrs(struct hsm *h, struct store *st, struct issuer *iss,
	    const char *requester, int64_t batch_id, int64_t chain_gen,
	    const struct csr *const *csrs,
	    const struct profile *const *profiles, size_t n,
	    struct batch_cert *out, int *rets, struct hsmca_err *errs);
void	batch_record_refused(struct store *st, const char *requester,
	    int64_t batch_id, const char *device, const char *reason);
int	batch_record_end(struct store *st, int64_t batch_id,
	    const char *actor, int outcome, const char *summary,
	    size_t signed_, size_t refused, struct hsmca_err *e);

/* Remote mode (cli/batch-remote.c): the admin API of hsmcad at server,
 * one keep-alive mutual TLS connection per worker. */

#endif
