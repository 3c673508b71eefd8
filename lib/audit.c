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

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "hsmca/audit.h"
#include "hsmca/clock.h"
#include "hsmca/hsm.h"
#include "hsmca/issue.h"
#include "hsmca/util.h"

#define AUDIT_TAG	"hsmca-audit-1"
#define CKPT_TAG	"hsmca-audit-checkpoint-1"
/* The bytes a checkpoint signature covers (see audit.h). */
#define CKPT_MSG_MAX	(sizeof(CKPT_TAG) + 3 * 8 + STORE_AUDIT_HASH_LEN + \
			    8 + 4 + AUDIT_SIG_ALG_MAX)

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
	[AUDIT_ADMIN_CALL] = "admin-call",
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

static void
put_u64(unsigned char b[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)(v & 0xff);
}

static int
hash_u64(EVP_MD_CTX *ctx, uint64_t v)
{
	unsigned char b[8];

	put_u64(b, v);
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


/* ---- verification ---- */

/* A checkpoint as read, and what verification found of it. */
struct ckpt {
	struct audit_checkpoint	 cp;
	unsigned char		*sig;
	size_t			 sig_len;
	int			 malformed;	/* its hash is not 32 bytes */
	int			 sig_bad;	/* enum ckpt_sig */
	int			 hash_bad;	/* its record's hash differs */
	int			 missing;	/* its record is not in the log */
	int64_t			 truncated;	/* the log ends at this id */
};

enum ckpt_sig {
	CKPT_SIG_OK,
	CKPT_SIG_BAD,		/* does not verify */
	CKPT_SIG_NO_GEN,	/* its generation is not in the store */
	CKPT_SIG_NO_CERT,	/* its generation has no certificate */
	CKPT_SIG_ALG,		/* unknown algorithm, or not the key's */
	CKPT_SIG_NOT_TOKEN,	/* its generation's key is not in the token */
};

struct ckpt_list {
	struct ckpt	*v;
	size_t		 n, cap;
};

/* The public keys of the generations that signed, looked up once. */
struct gen_key {
	int64_t		 gen_id;
	EVP_PKEY	*pub;		/* NULL: see why */
	int		 why;		/* enum ckpt_sig */
};

struct gen_keys {
	struct gen_key	*v;
	size_t		 n;
	/* The token: a generation's key counts only if the token holds it,
	 * since whoever can write the store can write a generation row and
	 * a certificate of their own. NULL: the store's certificates. */
	struct hsm	*h;
};

struct chain_state {
	unsigned char	 prev[STORE_AUDIT_HASH_LEN];
	int64_t		 prev_id;
	int64_t		 bad;
	struct hsmca_err *e;
	struct ckpt	**cps;		/* by record id, matched in the walk */
	size_t		 ncps, next;
	int64_t		 from_ckpt;	/* the walk starts at this checkpoint */
};

static int
chain_one(void *arg, const struct store_audit *r)
{
	struct chain_state *cs = arg;
	unsigned char h[STORE_AUDIT_HASH_LEN];
	struct ckpt *c;

	if (r->malformed) {
		cs->bad = r->id;
		return err_set(cs->e, HSMCA_ERR_VERIFY, "audit record %" PRId64
		    " was altered: a hash is not 32 bytes", r->id);
	}
	if (memcmp(r->prev_hash, cs->prev, sizeof(cs->prev)) != 0) {
		cs->bad = r->id;
		if (cs->prev_id == 0)
			return err_set(cs->e, HSMCA_ERR_VERIFY, "audit record %"
			    PRId64 " does not start the chain: records "
			    "before it were deleted or it was inserted",
			    r->id);
		if (cs->from_ckpt != 0)
			return err_set(cs->e, HSMCA_ERR_VERIFY, "audit record %"
			    PRId64 " does not follow record %" PRId64 " as "
			    "checkpoint %" PRId64 " signed it: the log up to "
			    "record %" PRId64 " was rewritten, or a record "
			    "after it was deleted or altered", r->id,
			    cs->prev_id, cs->from_ckpt, cs->prev_id);
		return err_set(cs->e, HSMCA_ERR_VERIFY, "audit record %"
		    PRId64 " does not follow record %" PRId64 ": a record "
		    "between them was deleted, inserted or moved, or record "
		    "%" PRId64 " was altered", r->id, cs->prev_id, r->id);
	}
	if (audit_hash(r, h) != 0)
		return err_set(cs->e, HSMCA_ERR_INTERNAL, "audit: cannot "
		    "hash record %" PRId64, r->id);
	if (memcmp(h, r->hash, sizeof(h)) != 0) {
		cs->bad = r->id;
		return err_set(cs->e, HSMCA_ERR_VERIFY, "audit record %"
		    PRId64 " was altered: its hash does not match its "
		    "contents", r->id);
	}
	memcpy(cs->prev, r->hash, sizeof(cs->prev));
	cs->prev_id = r->id;
	cs->from_ckpt = 0;
	/* The checkpoints naming this record, or one the walk passed. */
	for (; cs->next < cs->ncps; cs->next++) {
		c = cs->cps[cs->next];
		if (c->cp.record_id > r->id)
			break;
		if (c->cp.record_id < r->id)
			c->missing = 1;
		else if (!c->malformed && memcmp(c->cp.record_hash, r->hash,
		    sizeof(r->hash)) != 0)
			c->hash_bad = 1;
	}
	return 0;
}

static int
ckpt_copy(void *arg, const struct store_checkpoint *row)
{
	struct ckpt_list *l = arg;
	struct ckpt *c;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;

		if ((c = reallocarray(l->v, cap, sizeof(*c))) == NULL)
			return HSMCA_ERR_ALLOC;
		l->v = c;
		l->cap = cap;
	}
	c = &l->v[l->n];
	memset(c, 0, sizeof(*c));
	c->cp.id = row->id;
	c->cp.at = row->at;
	c->cp.record_id = row->record_id;
	memcpy(c->cp.record_hash, row->record_hash, STORE_AUDIT_HASH_LEN);
	c->cp.gen_id = row->gen_id;
	/* A longer name than any algorithm's is cut, and then fails. */
	snprintf(c->cp.sig_alg, sizeof(c->cp.sig_alg), "%s", row->sig_alg);
	c->malformed = row->malformed;
	if (row->sig_len > 0) {
		if ((c->sig = malloc(row->sig_len)) == NULL)
			return HSMCA_ERR_ALLOC;
		memcpy(c->sig, row->sig, row->sig_len);
		c->sig_len = row->sig_len;
	}
	l->n++;
	return 0;
}

static void
ckpt_list_free(struct ckpt_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].sig);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static void
gen_keys_free(struct gen_keys *gk)
{
	for (size_t i = 0; i < gk->n; i++)
		EVP_PKEY_free(gk->v[i].pub);
	free(gk->v);
	memset(gk, 0, sizeof(*gk));
}

/* The public key of generation id's certificate, or NULL and why not;
 * cp_id, the checkpoint it is for, is for the messages. A token that
 * cannot say whether it holds the key (a fault, or a URI that matches
 * several keys) is an error, not a verdict on the log. */
static int
gen_key(struct store *st, struct gen_keys *gk, int64_t id, int64_t cp_id,
    EVP_PKEY **pub, int *why, struct hsmca_err *e)
{
	struct store_generation g;
	struct gen_key *k;
	struct hsm_key *hk = NULL;
	struct hsmca_err he;
	const unsigned char *p;
	X509 *x = NULL;
	int ret;

	for (size_t i = 0; i < gk->n; i++)
		if (gk->v[i].gen_id == id) {
			*pub = gk->v[i].pub;
			*why = gk->v[i].why;
			return 0;
		}
	if ((k = reallocarray(gk->v, gk->n + 1, sizeof(*k))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	gk->v = k;
	k = &gk->v[gk->n];
	memset(k, 0, sizeof(*k));
	k->gen_id = id;
	memset(&g, 0, sizeof(g));
	if ((ret = store_get_generation(st, id, &g, e)) == HSMCA_ERR_NOT_FOUND)
		k->why = CKPT_SIG_NO_GEN;
	else if (ret != 0)
		goto out;
	else if (g.cert_der == NULL)
		k->why = CKPT_SIG_NO_CERT;
	else {
		p = g.cert_der;
		if ((x = d2i_X509(NULL, &p, (long)g.cert_der_len)) == NULL ||
		    (k->pub = X509_get_pubkey(x)) == NULL)
			k->why = CKPT_SIG_NO_CERT;
	}
	if (k->pub != NULL && gk->h != NULL) {
		err_clear(&he);
		ret = g.key_uri == NULL ? HSMCA_ERR_KEY_NOT_FOUND :
		    hsm_load_key(gk->h, g.key_uri, &hk, &he);
		if (ret != 0 && ret != HSMCA_ERR_KEY_NOT_FOUND) {
			err_set(e, ret, "cannot check audit checkpoint %" PRId64
			    ": the token cannot show CA generation %" PRId64
			    "'s key: %s", cp_id, id, he.msg);
			goto out;
		}
		if (ret != 0 ||
		    EVP_PKEY_eq(hsm_key_public(hk), k->pub) != 1) {
			EVP_PKEY_free(k->pub);
			k->pub = NULL;
			k->why = CKPT_SIG_NOT_TOKEN;
		}
	}
	gk->n++;
	*pub = k->pub;
	*why = k->why;
	ret = 0;
out:
	if (ret != 0)
		EVP_PKEY_free(k->pub);
	hsm_key_free(hk);
	X509_free(x);
	store_generation_free_fields(&g);
	ERR_clear_error();
	return ret;
}

static size_t
ckpt_message(const struct audit_checkpoint *cp,
    unsigned char m[CKPT_MSG_MAX])
{
	size_t n = 0, alen = strlen(cp->sig_alg);

	memcpy(m, CKPT_TAG, sizeof(CKPT_TAG));
	n += sizeof(CKPT_TAG);
	put_u64(m + n, (uint64_t)cp->id);
	n += 8;
	put_u64(m + n, (uint64_t)(int64_t)cp->at);
	n += 8;
	put_u64(m + n, (uint64_t)cp->record_id);
	n += 8;
	memcpy(m + n, cp->record_hash, STORE_AUDIT_HASH_LEN);
	n += STORE_AUDIT_HASH_LEN;
	put_u64(m + n, (uint64_t)cp->gen_id);
	n += 8;
	m[n++] = (unsigned char)(alen >> 24);
	m[n++] = (unsigned char)(alen >> 16);
	m[n++] = (unsigned char)(alen >> 8);
	m[n++] = (unsigned char)alen;
	memcpy(m + n, cp->sig_alg, alen);	/* alen < AUDIT_SIG_ALG_MAX */
	return n + alen;
}

/* The digest of a signature algorithm named as OpenSSL's long name
 * ("ecdsa-with-SHA256"), if it is one for pub's key type. */
static const EVP_MD *
sig_alg_md(const char *name, const EVP_PKEY *pub)
{
	int nid, md_nid, pk_nid;

	if ((nid = OBJ_ln2nid(name)) == NID_undef ||
	    !OBJ_find_sigid_algs(nid, &md_nid, &pk_nid) ||
	    pk_nid != EVP_PKEY_get_base_id(pub))
		return NULL;
	if (md_nid != NID_sha256 && md_nid != NID_sha384 &&
	    md_nid != NID_sha512)
		return NULL;
	return EVP_get_digestbynid(md_nid);
}

static int
sig_verify(EVP_PKEY *pub, const EVP_MD *md, const unsigned char *m,
    size_t mlen, const unsigned char *sig, size_t sig_len)
{
	EVP_MD_CTX *ctx;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return 0;
	ok = EVP_DigestVerifyInit(ctx, NULL, md, NULL, pub) == 1 &&
	    EVP_DigestVerify(ctx, sig, sig_len, m, mlen) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

/* Check c's signature with its generation's key: c->sig_bad. */
static int
ckpt_check_sig(struct store *st, struct gen_keys *gk, struct ckpt *c,
    struct hsmca_err *e)
{
	unsigned char m[CKPT_MSG_MAX];
	const EVP_MD *md;
	EVP_PKEY *pub = NULL;
	int why = 0, ret;

	if ((ret = gen_key(st, gk, c->cp.gen_id, c->cp.id, &pub, &why,
	    e)) != 0)
		return ret;
	if (pub == NULL)
		c->sig_bad = why;
	else if ((md = sig_alg_md(c->cp.sig_alg, pub)) == NULL)
		c->sig_bad = CKPT_SIG_ALG;
	else if (c->sig == NULL || !sig_verify(pub, md, m,
	    ckpt_message(&c->cp, m), c->sig, c->sig_len))
		c->sig_bad = CKPT_SIG_BAD;
	return 0;
}

static int
by_record(const void *a, const void *b)
{
	const struct ckpt *x = *(struct ckpt *const *)a;
	const struct ckpt *y = *(struct ckpt *const *)b;

	if (x->cp.record_id != y->cp.record_id)
		return x->cp.record_id < y->cp.record_id ? -1 : 1;
	return x->cp.id < y->cp.id ? -1 : x->cp.id > y->cp.id;
}

/* The first checkpoint that does not hold, in res; 0 if none. */
static void
ckpt_report(const struct ckpt_list *l, struct audit_verify_result *res)
{
	const struct ckpt *c = NULL;
	char *m = res->checkpoint_msg;
	size_t mlen = sizeof(res->checkpoint_msg);
	int64_t prev = 0;
	size_t i;

	for (i = 0; i < l->n; i++) {
		c = &l->v[i];
		if (c->cp.id != prev + 1 || c->malformed || c->sig_bad ||
		    c->hash_bad || c->missing || c->truncated)
			break;
		prev = c->cp.id;
	}
	if (i == l->n) {
		if (l->n > 0) {
			res->signed_through = l->v[l->n - 1].cp.record_id;
			res->signed_at = l->v[l->n - 1].cp.at;
		}
		return;
	}
	res->bad_checkpoint = c->cp.id;
	res->bad_checkpoint_record = c->cp.record_id;
	if (c->cp.id != prev + 1) {
		if (prev == 0)
			snprintf(m, mlen, "audit checkpoint %" PRId64 " is the "
			    "first: checkpoints before it were deleted",
			    c->cp.id);
		else
			snprintf(m, mlen, "audit checkpoint %" PRId64 " follows "
			    "checkpoint %" PRId64 ": the checkpoints between "
			    "them were deleted", c->cp.id, prev);
	} else if (c->malformed)
		snprintf(m, mlen, "audit checkpoint %" PRId64 " was altered: "
		    "its hash is not 32 bytes", c->cp.id);
	else if (c->sig_bad == CKPT_SIG_NO_GEN)
		snprintf(m, mlen, "audit checkpoint %" PRId64 " names CA "
		    "generation %" PRId64 ", which is not in the store",
		    c->cp.id, c->cp.gen_id);
	else if (c->sig_bad == CKPT_SIG_NO_CERT)
		snprintf(m, mlen, "audit checkpoint %" PRId64 " names CA "
		    "generation %" PRId64 ", which has no usable certificate",
		    c->cp.id, c->cp.gen_id);
	else if (c->sig_bad == CKPT_SIG_NOT_TOKEN)
		snprintf(m, mlen, "audit checkpoint %" PRId64 " names CA "
		    "generation %" PRId64 ", whose key is not in the token: "
		    "it is not this CA's signature", c->cp.id, c->cp.gen_id);
	else if (c->sig_bad == CKPT_SIG_ALG)
		snprintf(m, mlen, "audit checkpoint %" PRId64 " was altered: "
		    "'%s' is not a signature algorithm of CA generation %"
		    PRId64 "'s key", c->cp.id, c->cp.sig_alg, c->cp.gen_id);
	else if (c->sig_bad && c->hash_bad)
		snprintf(m, mlen, "audit checkpoint %" PRId64 " does not match "
		    "record %" PRId64 ": its hash is not the record's and its "
		    "signature does not verify with CA generation %" PRId64
		    "'s key", c->cp.id, c->cp.record_id, c->cp.gen_id);
	else if (c->sig_bad)
		snprintf(m, mlen, "audit checkpoint %" PRId64 " was altered: "
		    "its signature does not verify with CA generation %"
		    PRId64 "'s key", c->cp.id, c->cp.gen_id);
	else if (c->hash_bad)
		snprintf(m, mlen, "audit record %" PRId64 " is not the one "
		    "checkpoint %" PRId64 " signed: the log up to it was "
		    "rewritten", c->cp.record_id, c->cp.id);
	else if (c->missing)
		snprintf(m, mlen, "audit checkpoint %" PRId64 " names record %"
		    PRId64 ", which is not in the log: it was deleted",
		    c->cp.id, c->cp.record_id);
	else
		snprintf(m, mlen, "audit checkpoint %" PRId64 " names record %"
		    PRId64 ", but the log ends at record %" PRId64 ": the "
		    "records after it were deleted", c->cp.id,
		    c->cp.record_id, c->truncated);
}

int
audit_verify(struct store *st, struct hsm *h, struct audit_verify_result *res,
    struct hsmca_err *e)
{
	struct ckpt_list l;
	struct gen_keys gk;
	struct chain_state cs;
	struct hsmca_err ce;
	struct ckpt **byrec = NULL;
	int ret;

	memset(res, 0, sizeof(*res));
	memset(&l, 0, sizeof(l));
	memset(&gk, 0, sizeof(gk));
	gk.h = h;
	memset(&cs, 0, sizeof(cs));
	err_clear(&ce);
	/* Checkpoints first: every record one names was appended before
	 * it, so the one walk of the chain that follows meets them all. */
	if ((ret = store_checkpoint_walk(st, 0, 0, ckpt_copy, &l,
	    &res->checkpoints, e)) != 0) {
		if (ret == HSMCA_ERR_ALLOC)
			err_set(e, ret, "out of memory");
		goto out;
	}
	if (l.n > 0 && (byrec = calloc(l.n, sizeof(*byrec))) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		if ((ret = ckpt_check_sig(st, &gk, &l.v[i], e)) != 0)
			goto out;
		byrec[i] = &l.v[i];
	}
	if (l.n > 0)
		qsort(byrec, l.n, sizeof(*byrec), by_record);
	cs.e = &ce;
	cs.cps = byrec;
	cs.ncps = l.n;
	ret = store_audit_walk(st, NULL, chain_one, &cs, &res->records, &ce);
	if (ret != 0 && cs.bad == 0) {
		*e = ce;
		goto out;
	}
	if (cs.bad != 0) {
		res->bad_record = cs.bad;
		snprintf(res->record_msg, sizeof(res->record_msg), "%s",
		    ce.msg);
	} else {
		/* The whole chain was read: what is left names records
		 * past its end. */
		res->head = cs.prev_id;
		for (; cs.next < cs.ncps; cs.next++)
			cs.cps[cs.next]->truncated = cs.prev_id;
	}
	ckpt_report(&l, res);
	if (res->bad_record != 0)
		ret = err_set(e, HSMCA_ERR_VERIFY, "%s", res->record_msg);
	else if (res->bad_checkpoint != 0)
		ret = err_set(e, HSMCA_ERR_VERIFY, "%s", res->checkpoint_msg);
	else
		ret = 0;
out:
	free(byrec);
	gen_keys_free(&gk);
	ckpt_list_free(&l);
	return ret;
}

/* ---- making checkpoints ---- */

void
audit_signer_issuer(struct audit_signer *as, struct hsm *h,
    const struct issuer *iss)
{
	memset(as, 0, sizeof(*as));
	as->h = h;
	as->gen_id = iss->gen_id;
	as->key = hsm_key_private(iss->key);
	as->md = iss->md;
	as->cert = iss->cert;
}

/* The newest checkpoint, checked (its signature, and that it names a
 * record that exists), and the records after it: cs ends at the head it
 * read. A forged last checkpoint must not be extended by a real one. */
static int
ckpt_extend(struct store *st, struct gen_keys *gk, struct chain_state *cs,
    struct audit_checkpoint *last, struct hsmca_err *e)
{
	struct store_audit_filter f;
	struct ckpt_list l;
	struct hsmca_err ce;
	struct ckpt *c;
	int ret;

	memset(&l, 0, sizeof(l));
	memset(cs, 0, sizeof(*cs));
	memset(last, 0, sizeof(*last));
	err_clear(&ce);
	if ((ret = store_checkpoint_walk(st, 0, 1, ckpt_copy, &l, NULL,
	    e)) != 0) {
		if (ret == HSMCA_ERR_ALLOC)
			err_set(e, ret, "out of memory");
		goto out;
	}
	if (l.n == 1) {
		c = &l.v[0];
		if ((ret = ckpt_check_sig(st, gk, c, e)) != 0)
			goto out;
		if (c->malformed || c->sig_bad) {
			ret = err_set(e, HSMCA_ERR_VERIFY, "audit: no checkpoint "
			    "signed: the last one, %" PRId64 ", does not "
			    "verify; run `hsmca audit verify`", c->cp.id);
			goto out;
		}
		*last = c->cp;
		memcpy(cs->prev, c->cp.record_hash, sizeof(cs->prev));
		cs->prev_id = c->cp.record_id;
		cs->from_ckpt = c->cp.id;
	}
	cs->e = &ce;
	memset(&f, 0, sizeof(f));
	f.after = cs->prev_id;
	ret = store_audit_walk(st, &f, chain_one, cs, NULL, &ce);
	if (ret != 0) {
		if (cs->bad != 0)
			ret = err_set(e, HSMCA_ERR_VERIFY, "audit: no checkpoint "
			    "signed: %s", ce.msg);
		else
			*e = ce;
	}
out:
	ckpt_list_free(&l);
	return ret;
}

static int
ckpt_sign(const struct audit_signer *as, const unsigned char *m, size_t mlen,
    unsigned char **sig, size_t *sig_len, struct hsmca_err *e)
{
	EVP_MD_CTX *ctx = NULL;
	unsigned char *s = NULL;
	size_t len;
	int ok, size, ret = HSMCA_ERR_INTERNAL;

	*sig = NULL;
	*sig_len = 0;
	ERR_clear_error();
	if ((size = EVP_PKEY_get_size(as->key)) <= 0 ||
	    (s = malloc((size_t)size)) == NULL ||
	    (ctx = EVP_MD_CTX_new()) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	len = (size_t)size;
	if (as->h != NULL)
		hsm_sign_enter(as->h);
	ok = EVP_DigestSignInit(ctx, NULL, as->md, NULL, as->key) == 1 &&
	    EVP_DigestSign(ctx, s, &len, m, mlen) == 1;
	if (as->h != NULL)
		hsm_sign_leave(as->h);
	if (!ok) {
		ret = err_set_ssl(e, HSMCA_ERR_HSM, "the HSM did not sign the "
		    "audit checkpoint with CA generation %" PRId64 "'s key",
		    as->gen_id);
		goto out;
	}
	/* Verify-after-sign, with the certificate verify will use. */
	if (!sig_verify(X509_get0_pubkey(as->cert), as->md, m, mlen, s,
	    len)) {
		ret = err_set(e, HSMCA_ERR_VERIFY, "the audit checkpoint "
		    "signature of CA generation %" PRId64 " does not verify "
		    "with its certificate", as->gen_id);
		goto out;
	}
	*sig = s;
	*sig_len = len;
	s = NULL;
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(s);
	return ret;
}

int
audit_checkpoint(struct store *st, const struct audit_signer *as,
    time_t now, int force, struct audit_checkpoint *out,
    struct hsmca_err *e)
{
	struct store_checkpoint row;
	struct audit_checkpoint cp, last;
	struct chain_state cs;
	struct gen_keys gk;
	unsigned char m[CKPT_MSG_MAX], *sig = NULL;
	unsigned char head_hash[STORE_AUDIT_HASH_LEN];
	struct store_audit_filter f;
	struct hsmca_err ce;
	size_t sig_len = 0;
	int64_t head, nid;
	int sig_nid = NID_undef, own = 0, ret;

	memset(out, 0, sizeof(*out));
	memset(&cp, 0, sizeof(cp));
	memset(&gk, 0, sizeof(gk));
	gk.h = as->h;
	err_clear(&ce);
	if (as->key == NULL || as->cert == NULL || as->md == NULL ||
	    !OBJ_find_sigid_by_algs(&sig_nid, EVP_MD_get_type(as->md),
	    EVP_PKEY_get_base_id(X509_get0_pubkey(as->cert))))
		return err_set(e, HSMCA_ERR_ARG, "audit: CA generation %"
		    PRId64 " has no signature algorithm for checkpoints",
		    as->gen_id);
	snprintf(cp.sig_alg, sizeof(cp.sig_alg), "%s", OBJ_nid2ln(sig_nid));
	if (store_in_transaction(st))
		return err_set(e, HSMCA_ERR_ARG, "audit: a checkpoint is made "
		    "in a transaction of its own");
	/* The records since the last checkpoint are checked before the
	 * write lock is taken: appends go on meanwhile. */
	if ((ret = ckpt_extend(st, &gk, &cs, &last, e)) != 0)
		goto out;
	if ((ret = store_begin(st, e)) != 0)
		goto out;
	own = 1;
	/* Under the lock: the records appended since, and a checkpoint
	 * another process made meanwhile (then start over from it). */
	if ((ret = store_checkpoint_last(st, &nid, &head, e)) != 0)
		goto out;
	if (nid != last.id) {
		if ((ret = ckpt_extend(st, &gk, &cs, &last, e)) != 0)
			goto out;
	} else {
		memset(&f, 0, sizeof(f));
		f.after = cs.prev_id;
		cs.e = &ce;
		if ((ret = store_audit_walk(st, &f, chain_one, &cs, NULL,
		    &ce)) != 0) {
			if (cs.bad != 0)
				ret = err_set(e, HSMCA_ERR_VERIFY, "audit: no "
				    "checkpoint signed: %s", ce.msg);
			else
				*e = ce;
			goto out;
		}
	}
	if ((ret = store_audit_last(st, &head, head_hash, e)) != 0)
		goto out;
	if (head == 0) {
		ret = err_set(e, HSMCA_ERR_CA_STATE, "audit: the log is empty: "
		    "there is nothing to sign");
		goto out;
	}
	if (head < last.record_id) {
		ret = err_set(e, HSMCA_ERR_VERIFY, "audit: no checkpoint "
		    "signed: checkpoint %" PRId64 " names record %" PRId64
		    ", but the log ends at record %" PRId64 ": the records "
		    "after it were deleted", last.id, last.record_id, head);
		goto out;
	}
	if (head != cs.prev_id || memcmp(head_hash, cs.prev,
	    sizeof(head_hash)) != 0) {
		ret = err_set(e, HSMCA_ERR_VERIFY, "audit: no checkpoint "
		    "signed: record %" PRId64 " is not the one checkpoint %"
		    PRId64 " signed: the log up to it was rewritten",
		    last.record_id, last.id);
		goto out;
	}
	if (!force && last.id != 0 && last.record_id == head) {
		ret = 0;	/* nothing new: no checkpoint */
		goto out;
	}
	cp.id = last.id + 1;
	cp.at = now;
	cp.record_id = head;
	memcpy(cp.record_hash, head_hash, sizeof(cp.record_hash));
	cp.gen_id = as->gen_id;
	if ((ret = ckpt_sign(as, m, ckpt_message(&cp, m), &sig, &sig_len,
	    e)) != 0)
		goto out;
	memset(&row, 0, sizeof(row));
	row.id = cp.id;
	row.at = cp.at;
	row.record_id = cp.record_id;
	memcpy(row.record_hash, cp.record_hash, sizeof(row.record_hash));
	row.gen_id = cp.gen_id;
	row.sig_alg = cp.sig_alg;
	row.sig = sig;
	row.sig_len = sig_len;
	if ((ret = store_checkpoint_insert(st, &row, e)) != 0 ||
	    (ret = store_commit(st, e)) != 0)
		goto out;
	own = 0;
	*out = cp;
out:
	if (own)
		store_rollback(st);
	free(sig);
	gen_keys_free(&gk);
	return ret;
}
