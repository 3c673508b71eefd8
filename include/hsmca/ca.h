/* ca.h: CA generations. A CA is a sequence of generations (key in the
 * token + certificate); one is active and issues. */
#ifndef HSMCA_CA_H
#define HSMCA_CA_H

#include <stdint.h>
#include <time.h>

#include "hsmca/config.h"
#include "hsmca/err.h"
#include "hsmca/hsm.h"
#include "hsmca/issue.h"
#include "hsmca/store.h"

struct ca_ctx {
	const struct config	*cfg;
	struct store		*st;
	struct hsm		*hsm;
	const char		*actor;	/* who, for the audit log; NULL: "local" */
};

enum ca_init_mode {
	CA_INIT_ROOT_IN_HSM,	/* root key and issuing key in the same token */
	CA_INIT_SELF_SIGNED,	/* one self-signed issuing CA, for labs */
	CA_INIT_EXTERNAL,	/* issuing key in the token, CSR for an outside root */
	CA_INIT_MODE_MAX
};

struct ca_init_result {
	int64_t	 gen_id;	/* the issuing generation */
	int64_t	 root_id;	/* 0 unless CA_INIT_ROOT_IN_HSM */
	char	*csr_pem;	/* CA_INIT_EXTERNAL: the request to get signed */
};

/* Create the first issuing generation. Refused if one already exists. */
int	ca_init(struct ca_ctx *c, enum ca_init_mode mode, time_t now,
	    struct ca_init_result *out, struct hsmca_err *e);
void	ca_init_result_free(struct ca_init_result *r);

/* Import the certificate an outside root signed for a pending generation
 * (gen_id 0: the only pending one). pem holds the certificate, then its
 * chain up to a self-signed root; the chain must verify. The generation
 * becomes active if none is, inactive otherwise. */
int	ca_import_cert(struct ca_ctx *c, int64_t gen_id, const char *pem,
	    time_t now, int64_t *gen_out, struct hsmca_err *e);

/* Import an existing CA: its private key (PEM, possibly encrypted with a
 * passphrase from passphrase_source "file:"/"env:") goes into the token
 * as sensitive and non-extractable; cert_pem holds the certificate and
 * optionally its chain. */
int	ca_import(struct ca_ctx *c, const char *key_pem, size_t key_len,
	    const char *passphrase_source, const char *cert_pem, time_t now,
	    int64_t *gen_out, struct hsmca_err *e);

/* The active issuing generation, ready to sign. */
int	ca_open_active(struct ca_ctx *c, struct issuer **out,
	    struct hsmca_err *e);

/* PEM of a generation's certificate, followed by its chain when asked. */
int	ca_pem(struct ca_ctx *c, const struct store_generation *g,
	    int with_chain, char **pem, struct hsmca_err *e);

/* PEM of generation gen_id's certificate followed by its chain: what a
 * certificate that generation issued is handed out with. */
int	ca_issuer_pem(struct store *st, int64_t gen_id, char **pem,
	    struct hsmca_err *e);

/* The status a person should see: a stored active/inactive generation
 * past its notAfter shows as expired. */
enum store_gen_status ca_effective_status(const struct store_generation *g,
	    time_t now);
/* The index in v of the generation issuance is stuck on: when no issuing
 * generation is active at now, the newest that was active (still marked
 * so, or marked expired by a rotation step) and that none took over; n
 * if one is active, or none ever was. */
size_t	ca_stalled_generation(const struct store_generation *v, size_t n,
	    time_t now);

/* ---- rotation ----
 *
 * The active generation A issues. renew_before ahead of A's notAfter a
 * new generation N is created (key in the token; signed by the root in
 * the token, self-signed like A, or pending for an outside root). N is
 * inactive until activate_at (its creation plus activation_delay), then
 * becomes active and A is retired: inactive, still in cacerts and still
 * serving its CRL and OCSP until it expires. */

/* What a rotation step did, one line each, for the caller to print or
 * log. */
enum ca_event_kind {
	CA_EVENT_CREATED,	/* a new generation, inactive until activate_at */
	CA_EVENT_PENDING,	/* a new generation waiting for an outside root */
	CA_EVENT_ACTIVATED,
	CA_EVENT_RETIRED,	/* active -> inactive: verifies, issues no more */
	CA_EVENT_EXPIRED,
	CA_EVENT_KIND_MAX
};

#define CA_EVENTS_MAX	16
#define CA_EVENT_MSG	256

struct ca_event {
	enum ca_event_kind	 kind;
	int64_t			 gen_id;
	char			 msg[CA_EVENT_MSG];
};

struct ca_events {
	size_t			 n;
	struct ca_event		 ev[CA_EVENTS_MAX];
};

const char	*ca_event_kind_name(enum ca_event_kind k);

struct ca_rotate_result {
	int64_t			 gen_id;
	int64_t			 root_id;	/* the root that signed it; 0: none */
	enum store_gen_status	 status;	/* inactive, or pending */
	time_t			 activate_at;	/* 0 while pending */
	time_t			 not_after;	/* 0 while pending; never past
						   the root's */
	char			*csr_pem;	/* pending: for the outside root */
};

/* Create the next generation now, whatever the date: the successor of
 * the active generation (or of the newest one, if none is active).
 * HSMCA_ERR_EXISTS if a successor already waits. */
int	ca_rotate(struct ca_ctx *c, time_t now, struct ca_rotate_result *out,
	    struct hsmca_err *e);
void	ca_rotate_result_free(struct ca_rotate_result *r);

/* Make gen_id the active generation; the active one, if any, is retired
 * (*retired its id, else 0). *pop_seen: 1 if the audit log records a
 * proof of possession issued under gen_id. */
int	ca_activate(struct ca_ctx *c, int64_t gen_id, time_t now,
	    int *pop_seen, int64_t *retired, struct hsmca_err *e);

/* Revoke an issuing generation (reason: an RFC 5280 CRLReason): nothing
 * more is issued under it; its CRL and OCSP go on. *was_active: it was
 * the active generation, so nothing issues until another is activated. */
int	ca_revoke(struct ca_ctx *c, int64_t gen_id, int reason, time_t now,
	    int *was_active, struct hsmca_err *e);

/* One rotation step at now, what hsmcad runs on its timer and `hsmca ca
 * tick` from cron: activate the generation whose activate_at has come
 * (early if the active one has expired), retire the one it replaces,
 * mark expired generations, and create the next generation once the
 * active one is within renew_before of its notAfter. Safe to run from
 * several processes at once. ev: what changed (may be NULL). */
int	ca_rotation_tick(struct ca_ctx *c, time_t now, struct ca_events *ev,
	    struct hsmca_err *e);

#endif
