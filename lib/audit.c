/* audit.c: the hash chain over the store's audit table.
 *
 * hash = SHA-256(prev_hash || serialization), the first record chaining
 * from 32 zero bytes. The serialization is fixed and unambiguous: a
 * version tag, the id and time as 8-byte big-endian integers, then each
 * string as a 4-byte big-endian length and its bytes. The id is covered,
 * so renumbering breaks the chain as deleting or inserting does. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "hsmca/audit.h"
#include "hsmca/clock.h"

#define AUDIT_TAG	"hsmca-audit-1"

static const char *const action_names[AUDIT_ACTION_MAX] = {
	[AUDIT_ISSUE] = "issue",
	[AUDIT_REFUSE] = "refuse",
	[AUDIT_REVOKE] = "revoke",
	[AUDIT_UNHOLD] = "unhold",
	[AUDIT_DISALLOW_ADD] = "disallow-add",
	[AUDIT_DISALLOW_REMOVE] = "disallow-remove",
	[AUDIT_CA_INIT] = "ca-init",
	[AUDIT_CA_IMPORT] = "ca-import",
	[AUDIT_CA_IMPORT_CERT] = "ca-import-cert",
	[AUDIT_CA_ACTIVATE] = "ca-activate",
	[AUDIT_CA_ROTATE] = "ca-rotate",
	[AUDIT_CA_REVOKE] = "ca-revoke",
	[AUDIT_POP] = "pop",
	[AUDIT_CRL] = "crl",
};

static const char *const outcome_names[AUDIT_OUTCOME_MAX] = {
	[AUDIT_OK] = "ok",
	[AUDIT_UNCHANGED] = "unchanged",
	[AUDIT_REFUSED] = "refused",
	[AUDIT_FAILED] = "failed",
};

const char *
audit_action_name(enum audit_action a)
{
	if ((unsigned)a >= AUDIT_ACTION_MAX)
		return "unknown";
	return action_names[a];
}

int
audit_action_parse(const char *s, enum audit_action *out)
{
	if (s == NULL)
		return HSMCA_ERR_ARG;
	for (int i = 0; i < AUDIT_ACTION_MAX; i++)
		if (strcasecmp(s, action_names[i]) == 0) {
			*out = (enum audit_action)i;
			return 0;
		}
	return HSMCA_ERR_ARG;
}

const char *
audit_outcome_name(enum audit_outcome o)
{
	if ((unsigned)o >= AUDIT_OUTCOME_MAX)
		return "unknown";
	return outcome_names[o];
}

static int
hash_u64(EVP_MD_CTX *ctx, uint64_t v)
{
	unsigned char b[8];

	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)(v & 0xff);
	return EVP_DigestUpdate(ctx, b, sizeof(b));
}

static int
hash_str(EVP_MD_CTX *ctx, const char *s)
{
	unsigned char b[4];
	size_t n = s != NULL ? strlen(s) : 0;

	b[0] = (unsigned char)(n >> 24);
	b[1] = (unsigned char)(n >> 16);
	b[2] = (unsigned char)(n >> 8);
	b[3] = (unsigned char)n;
	return EVP_DigestUpdate(ctx, b, sizeof(b)) &&
	    (n == 0 || EVP_DigestUpdate(ctx, s, n));
}

int
audit_hash(const struct store_audit *r, unsigned char out[STORE_AUDIT_HASH_LEN])
{
	EVP_MD_CTX *ctx;
	unsigned int len = 0;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return HSMCA_ERR_ALLOC;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(ctx, r->prev_hash, STORE_AUDIT_HASH_LEN) &&
	    EVP_DigestUpdate(ctx, AUDIT_TAG, sizeof(AUDIT_TAG)) &&
	    hash_u64(ctx, (uint64_t)r->id) &&
	    hash_u64(ctx, (uint64_t)(int64_t)r->at) &&
	    hash_str(ctx, r->actor) && hash_str(ctx, r->action) &&
	    hash_str(ctx, r->object) && hash_str(ctx, r->outcome) &&
	    hash_str(ctx, r->detail) &&
	    EVP_DigestFinal_ex(ctx, out, &len) && len == STORE_AUDIT_HASH_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : HSMCA_ERR_INTERNAL;
}

/* A copy of s with control characters as '?', at most max bytes. */
static char *
one_line(const char *s, size_t max)
{
	size_t n;
	char *d;

	if (s == NULL)
		s = "";
	if ((n = strlen(s)) > max)
		n = max;
	if ((d = malloc(n + 1)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		d[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' :
		    s[i];
	d[n] = '\0';
	return d;
}

int
audit_append(struct store *st, const struct audit_event *ev,
    struct hsmca_err *e)
{
	struct store_audit r;
	char *actor = NULL, *object = NULL, *detail = NULL;
	int64_t last;
	int own = 0, ret = HSMCA_ERR_ALLOC;

	memset(&r, 0, sizeof(r));
	if ((unsigned)ev->action >= AUDIT_ACTION_MAX ||
	    (unsigned)ev->outcome >= AUDIT_OUTCOME_MAX)
		return err_set(e, HSMCA_ERR_ARG, "audit: unknown action or "
		    "outcome");
	if ((actor = one_line(ev->actor != NULL && *ev->actor != '\0' ?
	    ev->actor : "unknown", 256)) == NULL ||
	    (object = one_line(ev->object, 256)) == NULL ||
	    (detail = one_line(ev->detail, AUDIT_DETAIL_MAX)) == NULL) {
		err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	/* The last hash is read inside a write transaction: no other
	 * writer can append between the read and the insert. */
	if (!store_in_transaction(st)) {
		if ((ret = store_begin(st, e)) != 0)
			goto out;
		own = 1;
	}
	if ((ret = store_audit_last(st, &last, r.prev_hash, e)) != 0)
		goto out;
	r.id = last + 1;
	r.at = ev->at != 0 ? ev->at : clock_now();
	r.actor = actor;
	r.action = action_names[ev->action];
	r.object = object;
	r.outcome = outcome_names[ev->outcome];
	r.detail = detail;
	if ((ret = audit_hash(&r, r.hash)) != 0) {
		err_set(e, ret, "audit: cannot hash record %" PRId64, r.id);
		goto out;
	}
	if ((ret = store_audit_insert(st, &r, e)) != 0)
		goto out;
	if (own) {
		ret = store_commit(st, e);
		own = ret != 0;
	}
out:
	if (own)
		store_rollback(st);
	free(actor);
	free(object);
	free(detail);
	return ret;
}

struct verify_state {
	unsigned char	 prev[STORE_AUDIT_HASH_LEN];
	int64_t		 prev_id;
	int64_t		 bad;
	struct hsmca_err *e;
};

static int
verify_one(void *arg, const struct store_audit *r)
{
	struct verify_state *vs = arg;
	unsigned char h[STORE_AUDIT_HASH_LEN];

	if (r->malformed)
		goto bad_fmt;
	if (memcmp(r->prev_hash, vs->prev, sizeof(vs->prev)) != 0) {
		vs->bad = r->id;
		if (vs->prev_id == 0)
			return err_set(vs->e, HSMCA_ERR_VERIFY, "audit record %"
			    PRId64 " does not start the chain: records "
			    "before it were deleted or it was inserted",
			    r->id);
		return err_set(vs->e, HSMCA_ERR_VERIFY, "audit record %"
		    PRId64 " does not follow record %" PRId64 ": a record "
		    "between them was deleted, inserted or moved, or record "
		    "%" PRId64 " was altered", r->id, vs->prev_id, r->id);
	}
	if (audit_hash(r, h) != 0)
		return err_set(vs->e, HSMCA_ERR_INTERNAL, "audit: cannot "
		    "hash record %" PRId64, r->id);
	if (memcmp(h, r->hash, sizeof(h)) != 0) {
		vs->bad = r->id;
		return err_set(vs->e, HSMCA_ERR_VERIFY, "audit record %"
		    PRId64 " was altered: its hash does not match its "
		    "contents", r->id);
	}
	memcpy(vs->prev, r->hash, sizeof(vs->prev));
	vs->prev_id = r->id;
	return 0;
bad_fmt:
	vs->bad = r->id;
	return err_set(vs->e, HSMCA_ERR_VERIFY, "audit record %" PRId64
	    " was altered: a hash is not 32 bytes", r->id);
}

int
audit_verify(struct store *st, size_t *count, int64_t *first_bad,
    struct hsmca_err *e)
{
	struct verify_state vs;
	size_t n = 0;
	int ret;

	memset(&vs, 0, sizeof(vs));
	vs.e = e;
	ret = store_audit_walk(st, NULL, verify_one, &vs, &n, e);
	if (count != NULL)
		*count = n;
	if (first_bad != NULL)
		*first_bad = vs.bad;
	return ret;
}
