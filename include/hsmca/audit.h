/* audit.h: the tamper-evident audit log. Every issuance, revocation,
 * proof of possession, CA change and refused request is one record; each
 * record carries the hash of the one before it, so an edited, deleted,
 * reordered or inserted record breaks the chain that audit_verify walks. */
#ifndef HSMCA_AUDIT_H
#define HSMCA_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "hsmca/err.h"
#include "hsmca/store.h"

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

/* Recompute the whole chain. 0 if every link holds; otherwise
 * HSMCA_ERR_VERIFY, *first_bad the id of the first record that does not
 * follow from the one before it, and a message saying how. *count:
 * records read. */
int	audit_verify(struct store *st, size_t *count, int64_t *first_bad,
	    struct hsmca_err *e);

/* The record's hash: SHA-256(prev_hash || canonical serialization). */
int	audit_hash(const struct store_audit *r,
	    unsigned char out[STORE_AUDIT_HASH_LEN]);

#endif
