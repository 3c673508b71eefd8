/* store.h: the durable record of CA generations and issued certificates
 * (SQLite, WAL, synchronous=FULL). Nothing is reported done before it has
 * committed here. */
#ifndef HSMCA_STORE_H
#define HSMCA_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "hsmca/err.h"
#include "hsmca/serial.h"
#include "hsmca/util.h"

#define STORE_SCHEMA_VERSION 10

struct store;

enum store_gen_kind {
	STORE_GEN_ROOT,		/* a root whose key is in the token */
	STORE_GEN_ISSUING,	/* a generation of the issuing CA */
	STORE_GEN_KIND_MAX
};

enum store_gen_status {
	STORE_GEN_PENDING,	/* key made, CSR out, certificate not imported */
	STORE_GEN_ACTIVE,
	STORE_GEN_INACTIVE,
	STORE_GEN_REVOKED,
	STORE_GEN_EXPIRED,
	STORE_GEN_STATUS_MAX
};

enum store_cert_status {
	STORE_CERT_RESERVED,	/* serial reserved, signature not yet recorded */
	STORE_CERT_VALID,
	STORE_CERT_REVOKED,
	STORE_CERT_FAILED,	/* reserved serial whose issuance failed: never reused */
	STORE_CERT_STATUS_MAX
};

struct store_generation {
	int64_t			 id;
	enum store_gen_kind	 kind;
	int64_t			 parent_id;	/* 0: none (self-signed or external) */
	enum store_gen_status	 status;
	char			*subject;
	char			*issuer;	/* NULL while pending */
	char			 serial[SERIAL_HEX_MAX];
	time_t			 not_before, not_after;
	char			 sha1[UTIL_SHA1_HEX];
	char			 sha256[UTIL_SHA256_HEX];
	char			*key_uri;	/* PKCS#11 URI of the private key */
	char			*key_type;	/* keytype_name() */
	unsigned char		*cert_der;	/* NULL while pending */
	size_t			 cert_der_len;
	char			*chain_pem;	/* certificates above it, if external */
	unsigned char		*csr_der;	/* for an external root to sign */
	size_t			 csr_der_len;
	time_t			 created_at;
	time_t			 activate_at;	/* 0: not scheduled */
	time_t			 revoked_at;
	char			*revoke_reason;
};

struct store_cert {
	int64_t			 id;
	int64_t			 issuer_id;
	char			 serial[SERIAL_HEX_MAX];
	enum store_cert_status	 status;
	char			*subject;
	char			*sans;		/* "DNS:a,URI:b" */
	time_t			 not_before, not_after;
	char			 sha256[UTIL_SHA256_HEX];
	char			*profile;
	char			*requester;
	char			 csr_sha256[UTIL_SHA256_HEX];
	unsigned char		*der;
	size_t			 der_len;
	time_t			 created_at;
	time_t			 revoked_at;
	int			 revoke_reason;	/* CRLReason, -1 if none */
	int64_t			 batch_id;	/* 0: not a batch's */
};

struct store_cert_filter {
	int64_t		issuer_id;	/* 0: any */
	int		status;		/* enum store_cert_status, -1: any */
	int		expired;	/* 1: not_after < now, 0: not yet, -1: either */
	time_t		now;
	const char	*profile;	/* NULL: any */
	int		limit;		/* 0: no limit */
};

const char	*store_gen_kind_name(enum store_gen_kind k);
const char	*store_gen_status_name(enum store_gen_status s);
int		 store_gen_status_parse(const char *s, enum store_gen_status *out);
const char	*store_cert_status_name(enum store_cert_status s);
int		 store_cert_status_parse(const char *s, enum store_cert_status *out);

/* Open (creating if needed) and migrate to STORE_SCHEMA_VERSION. A store
 * written by a newer version is refused. */
int	store_open(const char *path, struct store **out, struct hsmca_err *e);
/* The same file, read-only and not migrated (refused unless it is at
 * STORE_SCHEMA_VERSION): every write through it fails. */
int	store_open_readonly(const char *path, struct store **out,
	    struct hsmca_err *e);
void	store_close(struct store *st);
int	store_schema_version(struct store *st);

/* Explicit transactions, for callers grouping several writes (nesting is
 * refused). Single calls below are each atomic on their own. */
int	store_begin(struct store *st, struct hsmca_err *e);
int	store_commit(struct store *st, struct hsmca_err *e);
void	store_rollback(struct store *st);

/* Generations. insert sets g->id. */
int	store_insert_generation(struct store *st, struct store_generation *g,
	    struct hsmca_err *e);
/* Replace every mutable field of the row g->id (status, cert, issuer,
 * serial, validity, thumbprints, chain, activate_at, revocation). */
int	store_update_generation(struct store *st,
	    const struct store_generation *g, struct hsmca_err *e);
int	store_get_generation(struct store *st, int64_t id,
	    struct store_generation *out, struct hsmca_err *e);
/* By id ("3"), SHA-1 or SHA-256 thumbprint (hex, colons and case
 * ignored). HSMCA_ERR_NOT_FOUND if nothing matches. */
int	store_find_generation(struct store *st, const char *ref,
	    struct store_generation *out, struct hsmca_err *e);
/* The one active issuing generation; HSMCA_ERR_CA_STATE if none. */
int	store_active_generation(struct store *st,
	    struct store_generation *out, struct hsmca_err *e);
/* All generations ordered by id; free with store_generations_free. */
int	store_list_generations(struct store *st, struct store_generation **out,
	    size_t *n, struct hsmca_err *e);
void	store_generation_free_fields(struct store_generation *g);
void	store_generations_free(struct store_generation *v, size_t n);

/* Certificates. Issuance is two steps: reserve the serial (the intent,
 * committed), then complete it with the signed DER (committed) or mark
 * it failed. A serial is unique per issuer: reserving one twice returns
 * HSMCA_ERR_EXISTS. For a device certificate (device), the issuer must
 * be an issuing generation that is active or inactive (retired since the
 * caller opened it) when the reservation commits, never pending, revoked
 * or expired: HSMCA_ERR_CA_STATE otherwise, nothing written. Proofs of
 * possession and OCSP responder certificates reserve under any. */
int	store_reserve_serial(struct store *st, int64_t issuer_id,
	    int device, const char *serial, const char *profile,
	    const char *requester, const char *csr_sha256, time_t now,
	    int64_t *cert_id, struct hsmca_err *e);
/* The same for a device certificate of batch batch_id (> 0), also
 * refused, HSMCA_ERR_BUSY and nothing written, while csr_sha256 has a
 * certificate (valid or revoked) or another batch reservation pending:
 * read in the reservation's own transaction, so a CSR gets one batch
 * certificate whoever else signs it at the same moment. */
int	store_reserve_batch_serial(struct store *st, int64_t issuer_id,
	    int64_t batch_id, const char *serial, const char *profile,
	    const char *requester, const char *csr_sha256, time_t now,
	    int64_t *cert_id, struct hsmca_err *e);
/* c->id names the reserved row; fills status VALID and every field. */
int	store_complete_cert(struct store *st, const struct store_cert *c,
	    struct hsmca_err *e);
int	store_fail_cert(struct store *st, int64_t cert_id,
	    struct hsmca_err *e);
/* issuer_id 0: any issuer (HSMCA_ERR_EXISTS, "ambiguous", if the serial
 * is known under several). */
int	store_get_cert(struct store *st, int64_t issuer_id, const char *serial,
	    struct store_cert *out, struct hsmca_err *e);
int	store_list_certs(struct store *st, const struct store_cert_filter *f,
	    struct store_cert **out, size_t *n, struct hsmca_err *e);
int	store_count_certs(struct store *st, const struct store_cert_filter *f,
	    int64_t *count, struct hsmca_err *e);
void	store_cert_free_fields(struct store_cert *c);
void	store_certs_free(struct store_cert *v, size_t n);

/* Group commit. Threads that each hold their own store handle attach it
 * to one shared group; their certificate writes (reserve, complete,
 * fail) then go through the group's connection, and the writes of every
 * thread waiting at the same moment share one transaction and one fsync.
 * Each call still returns only once its own write has committed, with
 * its own result: a failing write is rolled back alone (a savepoint),
 * never taking the others with it. */
struct store_group;

int	store_group_open(const char *path, struct store_group **out,
	    struct hsmca_err *e);
void	store_group_close(struct store_group *g);
/* Route st's certificate writes through g (NULL: back to its own). */
void	store_set_group(struct store *st, struct store_group *g);
/* fn(w, arg, e) in one transaction: several writes that commit together
 * or not at all. With a group, w is the group's connection and fn runs in
 * a savepoint of the group's next commit, with the other threads' writes
 * (a failing fn is rolled back alone); otherwise w is st, in st's
 * transaction or one of its own. */
int	store_write_with(struct store *st,
	    int (*fn)(struct store *w, void *arg, struct hsmca_err *e),
	    void *arg, struct hsmca_err *e);
/* Transactions committed and writes carried, for tests and metrics. */
void	store_group_stats(struct store_group *g, uint64_t *commits,
	    uint64_t *writes);

/* ---- revocation ----
 *
 * reason is an RFC 5280 CRLReason: 0-6 or 9-10 (7 is unused and
 * removeFromCRL, 8, belongs to delta CRLs). Each revocation is one
 * indexed UPDATE: its cost does not grow with the number revoked. */
#define STORE_REASON_UNSPECIFIED	0
#define STORE_REASON_HOLD		6	/* certificateHold: can be lifted */
#define STORE_REASON_MAX		10

/* Revoke a valid certificate (issuer_id 0: whichever generation issued
 * serial, HSMCA_ERR_EXISTS if several did). Revoking a revoked one
 * changes nothing and sets *already (its time and reason stay), except
 * that a certificate on hold is revoked for good by any other reason.
 * HSMCA_ERR_NOT_FOUND if issuer_id never issued serial (the message
 * names the generation that did, if one did); HSMCA_ERR_CA_STATE if the
 * serial was only reserved. */
int	store_revoke_cert(struct store *st, int64_t issuer_id,
	    const char *serial, int reason, time_t when, int *already,
	    struct hsmca_err *e);
/* Lift a certificateHold: revoked with reason 6 -> valid.
 * HSMCA_ERR_CA_STATE if it is not on hold. */
int	store_unhold_cert(struct store *st, int64_t issuer_id,
	    const char *serial, struct hsmca_err *e);
/* Revoke every serial of a list in one transaction: all or nothing (an
 * unknown serial refuses the whole list, naming it). */
int	store_revoke_serials(struct store *st, int64_t issuer_id,
	    const char *const *serials, size_t n, int reason, time_t when,
	    size_t *revoked, size_t *already, struct hsmca_err *e);
/* Revoke every valid (or held) certificate of a generation, in one
 * transaction. */
int	store_revoke_issuer(struct store *st, int64_t issuer_id, int reason,
	    time_t when, size_t *revoked, size_t *already,
	    struct hsmca_err *e);

/* One entry of a CRL. serial points into the store's row: valid only
 * during the callback. */
struct store_revoked {
	const char	*serial;	/* canonical hex */
	time_t		 revoked_at;
	int		 reason;	/* CRLReason */
	time_t		 not_after;
};
/* Call fn for each revoked certificate of a generation whose notAfter
 * has not passed at now, in ascending numeric order of serial (one
 * covering index scan, no sort). A non-zero return from fn stops the
 * walk and is returned. *count (may be NULL): entries visited. */
int	store_list_revoked(struct store *st, int64_t issuer_id, time_t now,
	    int (*fn)(void *arg, const struct store_revoked *r), void *arg,
	    size_t *count, struct hsmca_err *e);

/* The next CRL number of a generation (1, 2, ...): strictly increasing,
 * committed before it is returned, so a number is never issued twice
 * even if the signature that follows fails. */
int	store_next_crl_number(struct store *st, int64_t issuer_id,
	    time_t this_update, int64_t *number, struct hsmca_err *e);
/* How many times what the CRL of a generation lists has changed (0:
 * never): a certificate of it revoked, held, released or its revocation
 * time or reason changed, or, for a root, a generation it certified
 * revoked. A CRL built after reading version v lists at least every
 * change up to v. */
int	store_revocation_version(struct store *st, int64_t issuer_id,
	    int64_t *version, struct hsmca_err *e);
/* The last CRL number issued and its thisUpdate; 0 and 0 if none yet. */
int	store_crl_state(struct store *st, int64_t issuer_id, int64_t *number,
	    time_t *this_update, struct hsmca_err *e);

/* ---- the disallow list: device identities that may not enroll ---- */

enum store_disallow_kind {
	STORE_DISALLOW_CN,		/* a device's subject CN */
	STORE_DISALLOW_FINGERPRINT,	/* a certificate's SHA-256, 64 hex */
	STORE_DISALLOW_KIND_MAX
};

struct store_disallow {
	char				*identity;
	enum store_disallow_kind	 kind;
	time_t				 added_at;
	char				*note;
};

const char	*store_disallow_kind_name(enum store_disallow_kind k);
/* An identity as it is stored, and its kind: 64 hex digits (colons and
 * case ignored) are a fingerprint, written into buf in lowercase without
 * colons; anything else is a CN, returned as it is. */
int	store_disallow_normalize(const char *identity,
	    char buf[UTIL_SHA256_HEX], const char **out,
	    enum store_disallow_kind *kind, struct hsmca_err *e);
/* HSMCA_ERR_EXISTS if identity is already on the list. */
int	store_disallow_add(struct store *st, const char *identity,
	    const char *note, time_t now, struct hsmca_err *e);
/* HSMCA_ERR_NOT_FOUND if identity is not on the list. */
int	store_disallow_remove(struct store *st, const char *identity,
	    struct hsmca_err *e);
/* Ordered by identity; free with store_disallow_free. */
int	store_disallow_list(struct store *st, struct store_disallow **out,
	    size_t *n, struct hsmca_err *e);
void	store_disallow_free(struct store_disallow *v, size_t n);
/* 0 if identity may enroll, HSMCA_ERR_POLICY (naming it and the note)
 * if it is on the list, another code if the store cannot say. */
int	store_disallow_check(struct store *st, const char *identity,
	    struct hsmca_err *e);

/* 1 between store_begin and store_commit/store_rollback. */
int	store_in_transaction(struct store *st);

/* store_complete_cert, then then(w, arg, e) on the connection that
 * wrote, in the same transaction (the caller's, its own, or with group
 * commit the write's savepoint): if then fails, the certificate is not
 * completed either. lib/issue.c appends the audit record this way. */
int	store_complete_cert_with(struct store *st, const struct store_cert *c,
	    int (*then)(struct store *w, void *arg, struct hsmca_err *e),
	    void *arg, struct hsmca_err *e);

/* ---- the audit log: rows as stored; lib/audit.c chains and checks
 * them (see audit.h) ---- */

#define STORE_AUDIT_HASH_LEN	32

/* Strings point into the store's row: valid only during a callback. */
struct store_audit {
	int64_t		 id;
	time_t		 at;
	const char	*actor, *action, *object, *outcome, *detail;
	unsigned char	 prev_hash[STORE_AUDIT_HASH_LEN];
	unsigned char	 hash[STORE_AUDIT_HASH_LEN];
	int		 malformed;	/* a hash is not 32 bytes: both zero */
};

struct store_audit_filter {
	time_t		 since;		/* 0: from the start */
	const char	*action;	/* NULL: any */
	int		 limit;		/* the last N matching; 0: all */
	int64_t		 after;		/* only ids above it; 0: all */
};

/* The last record's id and hash; 0 and 32 zero bytes if there is none. */
int	store_audit_last(struct store *st, int64_t *id,
	    unsigned char hash[STORE_AUDIT_HASH_LEN], struct hsmca_err *e);
/* Insert r as it is, r->id included (HSMCA_ERR_EXISTS if taken). */
int	store_audit_insert(struct store *st, const struct store_audit *r,
	    struct hsmca_err *e);
/* Call fn for each record in id order (f NULL: every record). A non-zero
 * return from fn stops the walk and is returned. */
int	store_audit_walk(struct store *st, const struct store_audit_filter *f,
	    int (*fn)(void *arg, const struct store_audit *r), void *arg,
	    size_t *count, struct hsmca_err *e);

/* ---- signed checkpoints of the audit chain: rows as stored;
 * lib/audit.c signs and checks them ---- */

/* sig_alg and sig point into the store's row: valid only during a
 * callback. */
struct store_checkpoint {
	int64_t			 id;
	time_t			 at;
	int64_t			 record_id;	/* the chain head it signs */
	unsigned char		 record_hash[STORE_AUDIT_HASH_LEN];
	int64_t			 gen_id;	/* whose key signed */
	const char		*sig_alg;	/* "ecdsa-with-SHA256" ... */
	const unsigned char	*sig;
	size_t			 sig_len;
	int			 malformed;	/* record_hash not 32 bytes */
};

/* The newest checkpoint's id and the record it names; 0 and 0 if none. */
int	store_checkpoint_last(struct store *st, int64_t *id,
	    int64_t *record_id, struct hsmca_err *e);
/* Insert cp as it is, cp->id included (HSMCA_ERR_EXISTS if taken). */
int	store_checkpoint_insert(struct store *st,
	    const struct store_checkpoint *cp, struct hsmca_err *e);
/* Call fn for the last limit (0: all) checkpoints made at or after since,
 * in id order; a non-zero return from fn stops the walk and is returned. */
int	store_checkpoint_walk(struct store *st, time_t since, int limit,
	    int (*fn)(void *arg, const struct store_checkpoint *cp), void *arg,
	    size_t *count, struct hsmca_err *e);

/* PRAGMA integrity_check: 0 if "ok". */
int	store_integrity_check(struct store *st, struct hsmca_err *e);

/* ---- factory batches (hsmca batch sign) ---- */

struct store_batch {
	int64_t	 id;
	char	 sha256[UTIL_SHA256_HEX];	/* of the batch's input */
	char	*profile;
	char	*requester;	/* who ran it first */
	int64_t	 items;
	time_t	 created_at;
	int64_t	 runs;		/* 1 on the first run, one more per re-run */
	time_t	 finished_at;	/* 0: no run has finished */
	int64_t	 signed_;	/* as of the last run that finished */
	int64_t	 refused;
};

/* Record the batch whose input hashes to sha256, or count one more run
 * of it if it is known (out->runs > 1 then, with its first fields). */
int	store_batch_begin(struct store *st, const char *sha256,
	    const char *profile, const char *requester, int64_t items,
	    time_t now, struct store_batch *out, struct hsmca_err *e);
int	store_batch_finish(struct store *st, int64_t id, time_t now,
	    int64_t signed_, int64_t refused, struct hsmca_err *e);
void	store_batch_free_fields(struct store_batch *b);
/* Mark failed every batch reservation still pending (a run killed
 * between reserving and recording): its serial is never used, and its
 * CSR may be signed again. Only for the holder of the batch lock
 * (lib/batch.c) with nothing of its own in flight. *n: how many. */
int	store_batch_fail_reserved(struct store *st, int64_t *n,
	    struct hsmca_err *e);
/* Mark failed the oldest max reservations made before `before` (their
 * created_at): issuances that died between reserving and recording.
 * *out (store_certs_free) holds those rows as they now are, *n how many
 * (max: there may be more). One statement; run it in store_write_with to
 * commit the audit records that name them with it. */
int	store_fail_reserved_before(struct store *st, time_t before,
	    size_t max, struct store_cert **out, size_t *n,
	    struct hsmca_err *e);
/* Every certificate row for a CSR fingerprint, whatever its status,
 * oldest first (an indexed lookup). */
int	store_certs_by_csr(struct store *st, const char *csr_sha256,
	    struct store_cert **out, size_t *n, struct hsmca_err *e);

/* ---- OCSP: delegated responder certificates, and what hsmcad's
 * responder reads to follow the certificates ---- */

/* A delegated OCSP responder certificate of a generation (also a row of
 * cert, issued like any other) and its key in the token. */
struct store_ocsp_responder {
	int64_t		 issuer_id;
	char		 serial[SERIAL_HEX_MAX];
	char		*key_uri;
	unsigned char	*cert_der;
	size_t		 cert_der_len;
	time_t		 not_after;
	time_t		 created_at;
};
/* Record a responder, and close the intent of its key (if any) in the
 * same transaction. */
int	store_ocsp_responder_add(struct store *st,
	    const struct store_ocsp_responder *r, struct hsmca_err *e);
/* The generation's responder with the latest notAfter;
 * HSMCA_ERR_NOT_FOUND if it has none. */
int	store_ocsp_responder_latest(struct store *st, int64_t issuer_id,
	    struct store_ocsp_responder *out, struct hsmca_err *e);
void	store_ocsp_responder_free_fields(struct store_ocsp_responder *r);
/* The responder keys of generation issuer_id that nothing needs from
 * before on: every certificate recorded for the key, and the
 * generation of each, ended before then, and no generation has it as
 * its own key (by URI). *out: n key URIs (store_key_uris_free). */
int	store_ocsp_responder_keys_ended(struct store *st, int64_t issuer_id,
	    time_t before, char ***out, size_t *n, struct hsmca_err *e);
void	store_key_uris_free(char **v, size_t n);
/* An OCSP responder key about to be generated: recorded and committed
 * before C_GenerateKeyPair, closed when its responder is recorded or
 * the key is found gone or destroyed. One still open after a restart is
 * a key hsmcad may have made and never recorded. */
struct store_ocsp_key_intent {
	int64_t		 id;
	int64_t		 issuer_id;
	char		*key_uri;
	time_t		 created_at;
};
int	store_ocsp_key_intent_add(struct store *st, int64_t issuer_id,
	    const char *key_uri, time_t now, struct hsmca_err *e);
/* Every open intent, oldest first. */
int	store_ocsp_key_intents(struct store *st,
	    struct store_ocsp_key_intent **out, size_t *n,
	    struct hsmca_err *e);
void	store_ocsp_key_intents_free(struct store_ocsp_key_intent *v,
	    size_t n);
int	store_ocsp_key_intent_close(struct store *st, const char *key_uri,
	    struct hsmca_err *e);
/* *named 1 if a generation or a recorded OCSP responder names key_uri
 * (by URI, as recorded). */
int	store_key_uri_named(struct store *st, const char *key_uri,
	    int *named, struct hsmca_err *e);

/* What an OCSP response says of a certificate. */
struct store_cert_state {
	int64_t			 id;
	int64_t			 issuer_id;
	char			 serial[SERIAL_HEX_MAX];
	enum store_cert_status	 status;
	time_t			 not_after;
	time_t			 revoked_at;
	int			 revoke_reason;	/* -1 if none */
};
/* Call fn for at most max certificates with id > after, in id order,
 * whatever their status (one range of the primary key: the cost does
 * not grow with the store). *last: the last id visited (after if none),
 * where the next call starts. */
int	store_ocsp_walk(struct store *st, int64_t after, size_t max,
	    int (*fn)(void *arg, const struct store_cert_state *c), void *arg,
	    int64_t *last, size_t *count, struct hsmca_err *e);
/* The same for the certificates whose status, revocation time or reason
 * changed (issued, revoked, held, lifted) after change number after, in
 * the order of the changes; *last: the last change number read. */
int	store_ocsp_changes(struct store *st, int64_t after, size_t max,
	    int (*fn)(void *arg, const struct store_cert_state *c), void *arg,
	    int64_t *last, size_t *count, struct hsmca_err *e);
/* The latest change number (0: none). */
int	store_ocsp_changes_last(struct store *st, int64_t *last,
	    struct hsmca_err *e);
/* Delete the changes up to upto, once read. */
int	store_ocsp_changes_forget(struct store *st, int64_t upto,
	    struct hsmca_err *e);

#endif
