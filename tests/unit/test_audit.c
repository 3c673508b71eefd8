/* test_audit.c: the hash-chained audit log, on real files: a chain
 * verifies; an edited, deleted, swapped or inserted record is found at
 * its id; concurrent appenders keep one chain; an issuance's record
 * commits or rolls back with the certificate. */
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

#include "hsmca/audit.h"
#include "hsmca/store.h"
#include "testutil.h"

#define T0	((time_t)1767225600)	/* 2026-01-01T00:00:00Z */

struct fixture {
	char		*dir;
	char		 path[512];
	struct store	*st;
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
	if (sqlite3_exec(db, "DROP TRIGGER audit_no_update;"
	    " DROP TRIGGER audit_no_delete;", NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s", msg);
	sqlite3_close(db);
	{
		struct hsmca_err e = { 0 };

		assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	}
}

static void
expect_bad(struct fixture *fx, int64_t id)
{
	struct hsmca_err e = { 0 };
	int64_t bad = -1;
	size_t n = 0;
	char want[32];

	assert_int_equal(audit_verify(fx->st, &n, &bad, &e), HSMCA_ERR_VERIFY);
	assert_int_equal(bad, id);
	snprintf(want, sizeof(want), "audit record %lld ", (long long)id);
	assert_non_null(strstr(e.msg, want));
}

static void
test_chain_verifies(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	size_t n = 0;
	int64_t bad = -1;

	assert_int_equal(audit_verify(fx->st, &n, &bad, &e), 0);
	assert_int_equal(n, 0);
	append_n(fx, 100);
	assert_int_equal(audit_verify(fx->st, &n, &bad, &e), 0);
	assert_int_equal(n, 100);
	assert_int_equal(bad, 0);
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
	size_t n = 0;
	int64_t bad = -1;

	append_n(fx, 2);
	assert_int_equal(store_begin(fx->st, &e), 0);
	append(fx->st, "cli:test", 3);
	store_rollback(fx->st);
	append(fx->st, "cli:test", 4);
	assert_int_equal(audit_verify(fx->st, &n, &bad, &e), 0);
	assert_int_equal(n, 3);
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
	assert_int_equal(audit_verify(fx->st, NULL, NULL, &e), 0);
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

/* ---- concurrent appenders, each with its own handle ---- */

#define THREADS		4
#define PER_THREAD	50

struct worker {
	const char	*path;
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
	for (int i = 0; i < PER_THREAD && w->ret == 0; i++)
		w->ret = audit_append(st, &ev, &e);
	store_close(st);
	return NULL;
}

static void
test_concurrent(void **state)
{
	struct fixture *fx = *state;
	struct worker w[THREADS];
	pthread_t t[THREADS];
	struct hsmca_err e = { 0 };
	size_t n = 0;
	int64_t bad = -1;

	for (int i = 0; i < THREADS; i++) {
		w[i].path = fx->path;
		w[i].n = i;
		w[i].ret = -1;
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]),
		    0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].ret, 0);
	}
	assert_int_equal(audit_verify(fx->st, &n, &bad, &e), 0);
	assert_int_equal(n, THREADS * PER_THREAD);
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

	assert_int_equal(store_reserve_serial(st, gid, serial, "device",
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
	size_t n = 0;
	int64_t bad = -1;

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

	assert_int_equal(audit_verify(fx->st, &n, &bad, &e), 0);
	assert_int_equal(n, 2);
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
		cmocka_unit_test_setup_teardown(test_concurrent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_issue_with_record, setup,
		    teardown),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
