/* audit.h: the tamper-evident audit log. Every issuance, revocation,
 * proof of possession, CA change and refused request is one record; each
 * record carries the hash of the one before it, so an edited, deleted,
 * reordered or inserted record breaks the chain that audit_verify walks.
 * Checkpoints sign the chain's head with a CA generation's key in the
 * token: records cut from the end, or a chain rewritten from an edited
 * record on, no longer match the newest checkpoint that covered them. */
#ifndef HSMCA_AUDIT_H
#define HSMCA_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "hsmca/err.h"
#include "hsmca/store.h"

struct hsm;
struct issuer;

enum audit_action {
	AUDIT_ISSUE,
	AUDIT_REFUSE,
	AUDIT_REVOKE,
	AUDIT_UNHOLD,
	AUDIT_DISALLOW_ADD,
	AUDIT_DISALLOW_REMOVE,
	AUDIT_CA_INIT,
	AUDIT_CA_IMPORT,
	AUDIT_CA_IMPORT_CERT,
	AUDIT_CA_ACTIVATE,
	AUDIT_CA_ROTATE,
	AUDIT_CA_REVOKE,
	AUDIT_POP,
	AUDIT_CRL,
	AUDIT_ADMIN_CALL,	/* a call to hsmcad's admin API */
	AUDIT_ACTION_MAX
};

enum audit_outcome {
	AUDIT_OK,
	AUDIT_UNCHANGED,	/* allowed, but nothing needed doing */
	AUDIT_REFUSED,
	AUDIT_FAILED,
	AUDIT_OUTCOME_MAX
};

struct audit_event {
	time_t			 at;		/* 0: clock_now() */
	const char		*actor;		/* "cli:root", "est:bootstrap:CN=..." */
	enum audit_action	 action;
	const char		*object;	/* serial, generation, identity */
	enum audit_outcome	 outcome;
	const char		*detail;	/* one line, never a secret */
};

/* Longest detail kept; longer ones are cut. */
#define AUDIT_DETAIL_MAX	1024

const char	*audit_action_name(enum audit_action a);
int		 audit_action_parse(const char *s, enum audit_action *out);
const char	*audit_outcome_name(enum audit_outcome o);

/* Append ev to the chain: in the caller's transaction if one is open
 * (so the record commits or rolls back with the change it describes),
 * else in one of its own. Either way the transaction is BEGIN IMMEDIATE,
 * so appends from concurrent processes each chain from the last one.
 * Control characters in the strings are stored as '?'. */
int	audit_append(struct store *st, const struct audit_event *ev,
	    struct hsmca_err *e);

/* What audit_verify found. */
struct audit_verify_result {
	size_t	 records;
	int64_t	 head;			/* the last record's id; 0: none */
	size_t	 checkpoints;
	int64_t	 signed_through;	/* record the newest checkpoint names */
	time_t	 signed_at;		/* when that checkpoint was made */
	int64_t	 bad_record;		/* first record the chain breaks at */
	char	 record_msg[HSMCA_ERRMSG_MAX];
	int64_t	 bad_checkpoint;	/* first checkpoint that fails */
	int64_t	 bad_checkpoint_record;	/* ... and the record it names */
	char	 checkpoint_msg[HSMCA_ERRMSG_MAX];
};

/* Recompute the whole chain and check every checkpoint: numbered from 1
 * without gaps, signed by its generation's key (the certificate's public
 * key, which with h must be that of the key the token holds at the
 * generation's key URI: a generation row and certificate written into
 * the store by someone else sign nothing), and naming a record that
 * exists with the hash it signed. 0 if
 * all of it holds; otherwise HSMCA_ERR_VERIFY with the first failure of
 * the chain and of the checkpoints in res (a bad_* id 0 where that part
 * holds) and in e (the chain's first). Records appended after the newest
 * checkpoint are covered by the chain alone: cutting them off is not
 * detectable. */
int	audit_verify(struct store *st, struct hsm *h,
	    struct audit_verify_result *res, struct hsmca_err *e);

/* ---- signed checkpoints ---- */

/* The longest signature algorithm name kept ("ecdsa-with-SHA384"). */
#define AUDIT_SIG_ALG_MAX	64

/* Who signs a checkpoint: a CA generation's key and certificate. */
struct audit_signer {
	struct hsm	*h;		/* the token; NULL: a software key */
	int64_t		 gen_id;
	EVP_PKEY	*key;
	const EVP_MD	*md;
	X509		*cert;		/* verify-after-sign uses its key */
};

/* The signer of an open generation (issuer_open, ca_open_active). */
void	audit_signer_issuer(struct audit_signer *as, struct hsm *h,
	    const struct issuer *iss);

/* A checkpoint as made. */
struct audit_checkpoint {
	int64_t		 id;		/* 0: none was made */
	time_t		 at;
	int64_t		 record_id;
	unsigned char	 record_hash[STORE_AUDIT_HASH_LEN];
	int64_t		 gen_id;
	char		 sig_alg[AUDIT_SIG_ALG_MAX];
};

/* Sign the chain's head at time now, and record it as the next
 * checkpoint. The records since the previous checkpoint are checked
 * first (they must chain from the hash it signed): a broken or cut log
 * is refused with HSMCA_ERR_VERIFY, never signed. Unless force, nothing is
 * made (out->id 0) when the head is the record the previous checkpoint
 * names. Refused on an empty log. The bytes signed (with as->md, so
 * `openssl dgst -verify` checks them):
 *   "hsmca-audit-checkpoint-1" NUL, then as 8-byte big-endian integers
 *   the checkpoint id, its time, the record id; the record's 32-byte
 *   hash; the generation id (8 bytes); the signature algorithm's name as
 *   a 4-byte big-endian length and its bytes. */
int	audit_checkpoint(struct store *st, const struct audit_signer *as,
	    time_t now, int force, struct audit_checkpoint *out,
	    struct hsmca_err *e);

/* The record's hash: SHA-256(prev_hash || canonical serialization). */
int	audit_hash(const struct store_audit *r,
	    unsigned char out[STORE_AUDIT_HASH_LEN]);

#endif
