/* test_audit.c: the hash-chained audit log, on real files: a chain
 * verifies; an edited, deleted, swapped or inserted record is found at
 * its id; concurrent appenders keep one chain; an issuance's record
 * commits or rolls back with the certificate. Signed checkpoints (with a
 * software key: unit tests never need the HSM) catch records cut from
 * the end and a chain rewritten from an edit on, and a checkpoint that was
 * altered, forged or deleted. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include <openssl/x509.h>

#include "hsmca/audit.h"
#include "hsmca/store.h"
#include "hsmca/util.h"
#include "testutil.h"

#define T0	((time_t)1767225600)	/* 2026-01-01T00:00:00Z */

struct fixture {
	char		*dir;
	char		 path[512];
	struct store	*st;
	struct audit_signer as;		/* after with_signer() */
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct hsmca_err e = { 0 };

	assert_non_null(fx);
	fx->dir = tu_tmpdir();
	snprintf(fx->path, sizeof(fx->path), "%s/hsmca.db", fx->dir);
	assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	store_close(fx->st);
	EVP_PKEY_free(fx->as.key);
	X509_free(fx->as.cert);
	tu_rmtree(fx->dir);
	free(fx->dir);
	free(fx);
	return 0;
}

static void
append(struct store *st, const char *actor, int i)
{
	struct audit_event ev;
	struct hsmca_err e = { 0 };
	char object[32], detail[64];

	snprintf(object, sizeof(object), "serial:%04x", i);
	snprintf(detail, sizeof(detail), "record %d", i);
	memset(&ev, 0, sizeof(ev));
	ev.at = T0 + i;
	ev.actor = actor;
	ev.action = i % 2 ? AUDIT_REVOKE : AUDIT_ISSUE;
	ev.object = object;
	ev.outcome = AUDIT_OK;
	ev.detail = detail;
	assert_int_equal(audit_append(st, &ev, &e), 0);
}

static void
append_n(struct fixture *fx, int n)
{
	for (int i = 1; i <= n; i++)
		append(fx->st, "cli:test", i);
}

/* Tamper as an attacker with write access to the file would: with
 * SQLite directly, the append-only triggers dropped first. */
static void
tamper(struct fixture *fx, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	store_close(fx->st);
	fx->st = NULL;
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	if (sqlite3_exec(db, "DROP TRIGGER IF EXISTS audit_no_update;"
	    " DROP TRIGGER IF EXISTS audit_no_delete;"
	    " DROP TRIGGER IF EXISTS audit_checkpoint_no_update;"
	    " DROP TRIGGER IF EXISTS audit_checkpoint_no_delete;", NULL, NULL,
	    &msg) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s", msg);
	sqlite3_close(db);
	{
		struct hsmca_err e = { 0 };

		assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	}
}

/* audit_verify: its return, and res. */
static int
verify(struct fixture *fx, struct audit_verify_result *res)
{
	struct hsmca_err e = { 0 };
	int ret;

	ret = audit_verify(fx->st, NULL, res, &e);
	if (ret == HSMCA_ERR_VERIFY)
		assert_string_equal(e.msg, res->bad_record != 0 ?
		    res->record_msg : res->checkpoint_msg);
	return ret;
}

static void
expect_bad(struct fixture *fx, int64_t id)
{
	struct audit_verify_result res;
	char want[32];

	assert_int_equal(verify(fx, &res), HSMCA_ERR_VERIFY);
	assert_int_equal(res.bad_record, id);
	snprintf(want, sizeof(want), "audit record %lld ", (long long)id);
	assert_non_null(strstr(res.record_msg, want));
}

static void
expect_intact(struct fixture *fx, size_t records)
{
	struct audit_verify_result res;

	assert_int_equal(verify(fx, &res), 0);
	assert_int_equal(res.records, records);
	assert_int_equal(res.bad_record, 0);
	assert_int_equal(res.bad_checkpoint, 0);
}

static void
test_chain_verifies(void **state)
{
	struct fixture *fx = *state;

	expect_intact(fx, 0);
	append_n(fx, 100);
	expect_intact(fx, 100);
}

static void
test_edit_detected(void **state)
{
	struct fixture *fx = *state;

	append_n(fx, 100);
	tamper(fx, "UPDATE audit SET detail = 'nothing happened' WHERE id = 20");
	expect_bad(fx, 20);
}

static void
test_edit_time_detected(void **state)
{
	struct fixture *fx = *state;

	append_n(fx, 100);
	tamper(fx, "UPDATE audit SET at = at + 1 WHERE id = 77");
	expect_bad(fx, 77);
}

static void
test_delete_detected(void **state)
{
	struct fixture *fx = *state;

	append_n(fx, 100);
	tamper(fx, "DELETE FROM audit WHERE id = 40");
	expect_bad(fx, 41);
}

static void
test_delete_first_detected(void **state)
{
	struct fixture *fx = *state;

	append_n(fx, 10);
	tamper(fx, "DELETE FROM audit WHERE id = 1");
	expect_bad(fx, 2);
}

static void
test_swap_detected(void **state)
{
	struct fixture *fx = *state;

	append_n(fx, 100);
	tamper(fx, "UPDATE audit SET id = -1 WHERE id = 30;"
	    " UPDATE audit SET id = 30 WHERE id = 31;"
	    " UPDATE audit SET id = 31 WHERE id = -1;");
	expect_bad(fx, 30);
}

/* A record inserted after 50 with a hash correctly chained from 50 (no
 * secret stops that): the record after it no longer follows. */
static void
test_insert_detected(void **state)
{
	struct fixture *fx = *state;
	struct store_audit r;
	struct hsmca_err e = { 0 };
	unsigned char prev[STORE_AUDIT_HASH_LEN];
	int64_t last;
	char sql[1024], hex_prev[65], hex_hash[65];

	append_n(fx, 50);
	assert_int_equal(store_audit_last(fx->st, &last, prev, &e), 0);
	assert_int_equal(last, 50);
	append_n(fx, 50);
	memset(&r, 0, sizeof(r));
	r.id = 51;
	r.at = T0 + 50;
	r.actor = "cli:mallory";
	r.action = "issue";
	r.object = "serial:dead";
	r.outcome = "ok";
	r.detail = "forged";
	memcpy(r.prev_hash, prev, sizeof(prev));
	assert_int_equal(audit_hash(&r, r.hash), 0);
	for (int i = 0; i < 32; i++) {
		snprintf(hex_prev + 2 * i, 3, "%02x", prev[i]);
		snprintf(hex_hash + 2 * i, 3, "%02x", r.hash[i]);
	}
	snprintf(sql, sizeof(sql),
	    "UPDATE audit SET id = id + 1000 WHERE id > 50;"
	    " UPDATE audit SET id = id - 999 WHERE id > 1000;"
	    " INSERT INTO audit VALUES (51, %lld, 'cli:mallory', 'issue',"
	    " 'serial:dead', 'ok', 'forged', x'%s', x'%s');",
	    (long long)r.at, hex_prev, hex_hash);
	tamper(fx, sql);
	expect_bad(fx, 52);
}

/* A naive insertion (hash not chained) is found at itself. */
static void
test_insert_naive_detected(void **state)
{
	struct fixture *fx = *state;

	append_n(fx, 10);
	tamper(fx, "UPDATE audit SET id = id + 1000 WHERE id > 5;"
	    " UPDATE audit SET id = id - 999 WHERE id > 1000;"
	    " INSERT INTO audit SELECT 6, at, actor, action, object, outcome,"
	    " 'forged', prev_hash, hash FROM audit WHERE id = 5;");
	expect_bad(fx, 6);
}

/* The triggers refuse edits made through SQL by mistake. */
static void
test_append_only(void **state)
{
	struct fixture *fx = *state;
	sqlite3 *db = NULL;

	append_n(fx, 3);
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET detail = 'x'",
	    NULL, NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL,
	    NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* An append inside the caller's transaction rolls back with it. */
static void
test_rollback(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };

	append_n(fx, 2);
	assert_int_equal(store_begin(fx->st, &e), 0);
	append(fx->st, "cli:test", 3);
	store_rollback(fx->st);
	append(fx->st, "cli:test", 4);
	expect_intact(fx, 3);
}

static int
line_fn(void *arg, const struct store_audit *r)
{
	(void)arg;
	assert_string_equal(r->actor, "est:CN=evil?forged line");
	assert_string_equal(r->detail, "a??b");
	return 0;
}

static void
test_control_chars(void **state)
{
	struct fixture *fx = *state;
	struct store_audit_filter f;
	struct audit_event ev;
	struct hsmca_err e = { 0 };

	memset(&ev, 0, sizeof(ev));
	ev.actor = "est:CN=evil\nforged line";
	ev.action = AUDIT_REFUSE;
	ev.object = "x";
	ev.outcome = AUDIT_REFUSED;
	ev.detail = "a\r\nb";
	assert_int_equal(audit_append(fx->st, &ev, &e), 0);
	memset(&f, 0, sizeof(f));
	f.action = "refuse";
	assert_int_equal(store_audit_walk(fx->st, &f, line_fn, NULL, NULL,
	    &e), 0);
	expect_intact(fx, 1);
}

struct walker {
	int64_t	ids[8];
	size_t	n;
};

static int
walk_fn(void *arg, const struct store_audit *r)
{
	struct walker *w = arg;

	if (w->n < 8)
		w->ids[w->n++] = r->id;
	return 0;
}

static void
test_filter(void **state)
{
	struct fixture *fx = *state;
	struct store_audit_filter f;
	struct hsmca_err e = { 0 };
	struct walker w;

	append_n(fx, 20);	/* odd ids revoke, even issue; at = T0 + id */
	memset(&f, 0, sizeof(f));
	memset(&w, 0, sizeof(w));
	f.action = "revoke";
	f.since = T0 + 10;
	f.limit = 3;
	assert_int_equal(store_audit_walk(fx->st, &f, walk_fn, &w, NULL, &e),
	    0);
	assert_int_equal(w.n, 3);
	assert_int_equal(w.ids[0], 15);
	assert_int_equal(w.ids[1], 17);
	assert_int_equal(w.ids[2], 19);
	memset(&f, 0, sizeof(f));
	memset(&w, 0, sizeof(w));
	f.since = T0 + 18;
	assert_int_equal(store_audit_walk(fx->st, &f, walk_fn, &w, NULL, &e),
	    0);
	assert_int_equal(w.n, 3);
	assert_int_equal(w.ids[0], 18);
}

/* ---- signed checkpoints ---- */

/* A CA generation in the store with a software key, as fx->as. */
static void
with_signer(struct fixture *fx)
{
	struct store_generation g;
	struct hsmca_err e = { 0 };
	unsigned char *der = NULL;
	int len;

	memset(&fx->as, 0, sizeof(fx->as));
	fx->as.key = tu_keygen("ec:P-256");
	fx->as.cert = tu_make_ca(fx->as.key, "CN=CA", T0, T0 + 86400 * 365);
	fx->as.md = EVP_sha256();
	assert_true((len = i2d_X509(fx->as.cert, &der)) > 0);
	memset(&g, 0, sizeof(g));
	g.kind = STORE_GEN_ISSUING;
	g.status = STORE_GEN_ACTIVE;
	g.subject = (char *)"CN=CA";
	g.created_at = T0;
	g.cert_der = der;
	g.cert_der_len = (size_t)len;
	assert_int_equal(store_insert_generation(fx->st, &g, &e), 0);
	fx->as.gen_id = g.id;
	OPENSSL_free(der);
}

/* A checkpoint made now: its id (0: none was needed). */
static int64_t
checkpoint(struct fixture *fx, int force)
{
	struct audit_checkpoint cp;
	struct hsmca_err e = { 0 };

	if (audit_checkpoint(fx->st, &fx->as, T0 + 1000, force, &cp, &e) != 0)
		fail_msg("audit_checkpoint: %s", e.msg);
	return cp.id;
}

static void
expect_checkpoint_refused(struct fixture *fx, const char *why)
{
	struct audit_checkpoint cp;
	struct hsmca_err e = { 0 };

	assert_int_equal(audit_checkpoint(fx->st, &fx->as, T0 + 1000, 1, &cp,
	    &e), HSMCA_ERR_VERIFY);
	assert_int_equal(cp.id, 0);
	if (strstr(e.msg, why) == NULL)
		fail_msg("'%s' does not say '%s'", e.msg, why);
}

static void
expect_bad_checkpoint(struct fixture *fx, int64_t id, int64_t record,
    const char *why)
{
	struct audit_verify_result res;

	assert_int_equal(verify(fx, &res), HSMCA_ERR_VERIFY);
	assert_int_equal(res.bad_record, 0);
	assert_int_equal(res.bad_checkpoint, id);
	assert_int_equal(res.bad_checkpoint_record, record);
	if (strstr(res.checkpoint_msg, why) == NULL)
		fail_msg("'%s' does not say '%s'", res.checkpoint_msg, why);
}

static void
test_checkpoint(void **state)
{
	struct fixture *fx = *state;
	struct audit_verify_result res;
	struct audit_checkpoint cp;
	struct hsmca_err e = { 0 };

	with_signer(fx);
	assert_int_equal(audit_checkpoint(fx->st, &fx->as, T0, 1, &cp, &e),
	    HSMCA_ERR_CA_STATE);	/* nothing to sign */
	append_n(fx, 10);
	assert_int_equal(audit_checkpoint(fx->st, &fx->as, T0 + 50, 0, &cp,
	    &e), 0);
	assert_int_equal(cp.id, 1);
	assert_int_equal(cp.record_id, 10);
	assert_int_equal(cp.at, T0 + 50);
	assert_string_equal(cp.sig_alg, "ecdsa-with-SHA256");
	assert_int_equal(checkpoint(fx, 0), 0);	/* the head did not move */
	assert_int_equal(checkpoint(fx, 1), 2);	/* forced: it is re-signed */
	append_n(fx, 5);
	assert_int_equal(checkpoint(fx, 0), 3);
	assert_int_equal(verify(fx, &res), 0);
	assert_int_equal(res.records, 15);
	assert_int_equal(res.checkpoints, 3);
	assert_int_equal(res.signed_through, 15);
	assert_int_equal(res.signed_at, T0 + 1000);
	assert_int_equal(res.head, 15);
}

/* Records cut from the end: caught up to the last checkpoint only. */
static void
test_checkpoint_truncation(void **state)
{
	struct fixture *fx = *state;

	with_signer(fx);
	append_n(fx, 10);
	assert_int_equal(checkpoint(fx, 0), 1);
	append_n(fx, 5);
	assert_int_equal(checkpoint(fx, 0), 2);
	append_n(fx, 3);
	tamper(fx, "DELETE FROM audit WHERE id > 12");
	expect_bad_checkpoint(fx, 2, 15, "the log ends at record 12");
	expect_checkpoint_refused(fx, "the log ends at record 12");
}

static void
test_truncation_after_last_checkpoint(void **state)
{
	struct fixture *fx = *state;
	struct audit_verify_result res;

	with_signer(fx);
	append_n(fx, 10);
	assert_int_equal(checkpoint(fx, 0), 1);
	append_n(fx, 5);
	tamper(fx, "DELETE FROM audit WHERE id > 10");
	/* Not detectable (audit.h says so): the chain up to the
	 * checkpoint holds and nothing signed names records 11-15. */
	assert_int_equal(verify(fx, &res), 0);
	assert_int_equal(res.signed_through, 10);
	assert_int_equal(res.head, 10);
}

/* An attacker who edits record 5 and re-hashes every record after it
 * keeps the chain whole; the checkpoint no longer matches. */
struct rec_copy {
	struct store_audit	 r[32];
	char			 detail[32][64];
	char			 actor[32][64], object[32][64];
	size_t			 n;
};

static int
copy_fn(void *arg, const struct store_audit *r)
{
	struct rec_copy *rc = arg;

	assert_true(rc->n < 32);
	rc->r[rc->n] = *r;
	snprintf(rc->detail[rc->n], 64, "%s", r->detail);
	snprintf(rc->actor[rc->n], 64, "%s", r->actor);
	snprintf(rc->object[rc->n], 64, "%s", r->object);
	rc->r[rc->n].detail = rc->detail[rc->n];
	rc->r[rc->n].actor = rc->actor[rc->n];
	rc->r[rc->n].object = rc->object[rc->n];
	rc->r[rc->n].action = rc->r[rc->n].id % 2 ? "revoke" : "issue";
	rc->r[rc->n].outcome = "ok";
	rc->n++;
	return 0;
}

static void
rewrite_from(struct fixture *fx, int64_t from)
{
	static struct rec_copy rc;
	struct hsmca_err e = { 0 };
	char sql[16384], hp[65], hh[65];
	size_t off = 0;

	memset(&rc, 0, sizeof(rc));
	assert_int_equal(store_audit_walk(fx->st, NULL, copy_fn, &rc, NULL,
	    &e), 0);
	for (size_t i = 0; i < rc.n; i++) {
		struct store_audit *r = &rc.r[i];

		if (r->id < from)
			continue;
		if (r->id == from)
			snprintf(rc.detail[i], 64, "nothing happened");
		else
			memcpy(r->prev_hash, rc.r[i - 1].hash,
			    sizeof(r->prev_hash));
		assert_int_equal(audit_hash(r, r->hash), 0);
		util_hex(r->prev_hash, 32, hp);
		util_hex(r->hash, 32, hh);
		off += (size_t)snprintf(sql + off, sizeof(sql) - off,
		    "UPDATE audit SET detail = '%s', prev_hash = x'%s',"
		    " hash = x'%s' WHERE id = %lld;", r->detail, hp, hh,
		    (long long)r->id);
		assert_true(off < sizeof(sql));
	}
	tamper(fx, sql);
}

/* Without a checkpoint, nothing can tell. */
static void
test_rewritten_chain_unsigned(void **state)
{
	struct fixture *fx = *state;

	append_n(fx, 20);
	rewrite_from(fx, 5);
	expect_intact(fx, 20);
}

static void
test_rewritten_chain(void **state)
{
	struct fixture *fx = *state;
	struct audit_verify_result res;

	with_signer(fx);
	append_n(fx, 20);
	assert_int_equal(checkpoint(fx, 0), 1);
	append_n(fx, 2);
	rewrite_from(fx, 5);
	assert_int_equal(verify(fx, &res), HSMCA_ERR_VERIFY);
	expect_bad_checkpoint(fx, 1, 20, "audit record 20 is not the one "
	    "checkpoint 1 signed: the log up to it was rewritten");
	expect_checkpoint_refused(fx, "record 21 does not follow record 20 as "
	    "checkpoint 1 signed it: the log up to record 20 was rewritten");
}

static void
test_checkpoint_altered(void **state)
{
	struct fixture *fx = *state;

	with_signer(fx);
	append_n(fx, 10);
	assert_int_equal(checkpoint(fx, 0), 1);
	append_n(fx, 10);
	assert_int_equal(checkpoint(fx, 0), 2);
	/* Its signature: the last byte of a DER ECDSA signature. */
	tamper(fx, "UPDATE audit_checkpoint SET signature ="
	    " substr(signature, 1, length(signature) - 1) ||"
	    " x'00' WHERE id = 1 AND substr(signature, -1) != x'00';"
	    " UPDATE audit_checkpoint SET signature ="
	    " substr(signature, 1, length(signature) - 1) ||"
	    " x'01' WHERE id = 1 AND substr(signature, -1) = x'00';");
	expect_bad_checkpoint(fx, 1, 10, "checkpoint 1 was altered: its "
	    "signature does not verify with CA generation 1's key");
}

static void
test_checkpoint_hash_altered(void **state)
{
	struct fixture *fx = *state;

	with_signer(fx);
	append_n(fx, 10);
	assert_int_equal(checkpoint(fx, 0), 1);
	tamper(fx, "UPDATE audit_checkpoint SET record_hash ="
	    " (SELECT hash FROM audit WHERE id = 9) WHERE id = 1");
	expect_bad_checkpoint(fx, 1, 10, "its hash is not the record's and "
	    "its signature does not verify");
	/* Moved to another record, with that record's hash. */
	tamper(fx, "UPDATE audit_checkpoint SET record_id = 9 WHERE id = 1");
	expect_bad_checkpoint(fx, 1, 9, "checkpoint 1 was altered: its "
	    "signature does not verify");
}

/* A forged checkpoint is never extended by a signed one. */
static void
test_checkpoint_forged(void **state)
{
	struct fixture *fx = *state;

	with_signer(fx);
	append_n(fx, 10);
	assert_int_equal(checkpoint(fx, 0), 1);
	append_n(fx, 2);
	tamper(fx, "INSERT INTO audit_checkpoint SELECT 2, at + 1, 12,"
	    " (SELECT hash FROM audit WHERE id = 12), gen_id, sig_alg,"
	    " signature FROM audit_checkpoint WHERE id = 1");
	expect_bad_checkpoint(fx, 2, 12, "checkpoint 2 was altered");
	expect_checkpoint_refused(fx, "the last one, 2, does not verify");
}

static void
test_checkpoint_deleted(void **state)
{
	struct fixture *fx = *state;

	with_signer(fx);
	for (int i = 1; i <= 3; i++) {
		append_n(fx, 5);
		assert_int_equal(checkpoint(fx, 0), i);
	}
	tamper(fx, "DELETE FROM audit_checkpoint WHERE id = 2");
	expect_bad_checkpoint(fx, 3, 15, "checkpoint 3 follows checkpoint 1");
	tamper(fx, "DELETE FROM audit_checkpoint WHERE id = 1");
	expect_bad_checkpoint(fx, 3, 15, "checkpoints before it were deleted");
}

/* The triggers refuse edits made through SQL by mistake. */
static void
test_checkpoint_append_only(void **state)
{
	struct fixture *fx = *state;
	sqlite3 *db = NULL;

	with_signer(fx);
	append_n(fx, 3);
	assert_int_equal(checkpoint(fx, 0), 1);
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "UPDATE audit_checkpoint SET"
	    " record_id = 2", NULL, NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit_checkpoint",
	    NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* ---- concurrent appenders, each with its own handle ---- */

#define THREADS		4
#define PER_THREAD	50

struct worker {
	const char	*path;
	const struct audit_signer *as;	/* checkpoints every 10 appends */
	int		 n;
	int		 ret;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	struct store *st = NULL;
	struct hsmca_err e = { 0 };
	struct audit_event ev;
	char actor[32];

	if ((w->ret = store_open(w->path, &st, &e)) != 0)
		return NULL;
	snprintf(actor, sizeof(actor), "thread:%d", w->n);
	memset(&ev, 0, sizeof(ev));
	ev.actor = actor;
	ev.action = AUDIT_ISSUE;
	ev.object = "serial:01";
	ev.outcome = AUDIT_OK;
	for (int i = 0; i < PER_THREAD && w->ret == 0; i++) {
		struct audit_checkpoint cp;

		w->ret = audit_append(st, &ev, &e);
		if (w->ret == 0 && i % 10 == 9)
			w->ret = audit_checkpoint(st, w->as, T0 + i, 0, &cp,
			    &e);
	}
	if (w->ret != 0)
		fprintf(stderr, "thread %d: %s\n", w->n, e.msg);
	store_close(st);
	return NULL;
}

static void
test_concurrent(void **state)
{
	struct fixture *fx = *state;
	struct worker w[THREADS];
	pthread_t t[THREADS];
	struct audit_verify_result res;

	with_signer(fx);
	for (int i = 0; i < THREADS; i++) {
		w[i].path = fx->path;
		w[i].as = &fx->as;
		w[i].n = i;
		w[i].ret = -1;
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]),
		    0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].ret, 0);
	}
	assert_int_equal(verify(fx, &res), 0);
	assert_int_equal(res.records, THREADS * PER_THREAD);
	assert_true(res.checkpoints >= 2);
}

/* ---- issuance: the record commits with the certificate ---- */

static int
then_audit(struct store *w, void *arg, struct hsmca_err *e)
{
	struct audit_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.actor = "est:CN=dev";
	ev.action = AUDIT_ISSUE;
	ev.object = arg;
	ev.outcome = AUDIT_OK;
	return audit_append(w, &ev, e);
}

static int
then_fail(struct store *w, void *arg, struct hsmca_err *e)
{
	(void)w;
	(void)arg;
	return err_set(e, HSMCA_ERR_STORE, "audit: refused for the test");
}

static void
complete_one(struct store *st, int64_t gid, const char *serial,
    int (*then)(struct store *, void *, struct hsmca_err *), int want)
{
	unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	struct hsmca_err e = { 0 };
	struct store_cert c, got;
	int64_t id;

	assert_int_equal(store_reserve_serial(st, gid, 0, serial, "device",
	    "est:CN=dev", NULL, T0, &id, &e), 0);
	memset(&c, 0, sizeof(c));
	c.id = id;
	c.subject = (char *)"CN=dev";
	c.not_before = T0;
	c.not_after = T0 + 86400;
	c.der = der;
	c.der_len = sizeof(der);
	assert_int_equal(store_complete_cert_with(st, &c, then,
	    (void *)(uintptr_t)serial, &e), want);
	assert_int_equal(store_get_cert(st, gid, serial, &got, &e), 0);
	assert_int_equal(got.status, want == 0 ? STORE_CERT_VALID :
	    STORE_CERT_RESERVED);
	store_cert_free_fields(&got);
}

static void
test_issue_with_record(void **state)
{
	struct fixture *fx = *state;
	struct store_generation g;
	struct store_group *grp = NULL;
	struct hsmca_err e = { 0 };

	memset(&g, 0, sizeof(g));
	g.kind = STORE_GEN_ISSUING;
	g.status = STORE_GEN_ACTIVE;
	g.subject = (char *)"CN=CA";
	g.created_at = T0;
	assert_int_equal(store_insert_generation(fx->st, &g, &e), 0);

	/* Its own transaction, then through a group commit. */
	complete_one(fx->st, g.id, "01", then_audit, 0);
	complete_one(fx->st, g.id, "02", then_fail, HSMCA_ERR_STORE);
	assert_int_equal(store_group_open(fx->path, &grp, &e), 0);
	store_set_group(fx->st, grp);
	complete_one(fx->st, g.id, "03", then_audit, 0);
	complete_one(fx->st, g.id, "04", then_fail, HSMCA_ERR_STORE);
	store_set_group(fx->st, NULL);
	store_group_close(grp);

	expect_intact(fx, 2);
}

static void
test_names(void **state)
{
	enum audit_action a;

	(void)state;
	for (int i = 0; i < AUDIT_ACTION_MAX; i++) {
		assert_int_equal(audit_action_parse(audit_action_name(
		    (enum audit_action)i), &a), 0);
		assert_int_equal(a, i);
	}
	assert_string_equal(audit_action_name(AUDIT_DISALLOW_ADD),
	    "disallow-add");
	assert_int_equal(audit_action_parse("nonsense", &a), HSMCA_ERR_ARG);
	assert_string_equal(audit_outcome_name(AUDIT_OUTCOME_MAX), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chain_verifies, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_edit_detected, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_edit_time_detected, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_delete_detected, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_delete_first_detected,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap_detected, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_insert_detected, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_insert_naive_detected,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_only, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_chars, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_truncation,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_truncation_after_last_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewritten_chain_unsigned,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewritten_chain, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_altered, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_hash_altered,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_forged, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_deleted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_append_only,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_issue_with_record, setup,
		    teardown),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
