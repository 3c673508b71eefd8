/* test_store.c: the SQLite certificate store, on real files. */
#include "config.h"

#include <pthread.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "hsmca/store.h"
#include "hsmca/util.h"
#include "testutil.h"

#define T0	((time_t)1767225600)	/* 2026-01-01T00:00:00Z */
#define DAY	((time_t)86400)

struct fixture {
	char		*dir;
	char		 path[512];
	struct store	*st;
};

/* The connection store_open makes, caught as SQLite opens it: pragmas
 * such as synchronous are per connection, so only it can answer. */
static sqlite3 *last_db;

static int
capture_db(sqlite3 *db, const char **errmsg,
    const struct sqlite3_api_routines *api)
{
	last_db = db;
	return SQLITE_OK;
}

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

/* Run a one-value query on a connection of our own. */
static char *
sql_text(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	char *v = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL)
		v = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static char *
pragma_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	char *v = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	v = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return v;
}

/* A generation with a real self-signed certificate behind it. */
static void
gen_make(struct store_generation *g, enum store_gen_kind kind,
    enum store_gen_status status, const char *cn)
{
	char subject[128];
	EVP_PKEY *k = tu_keygen("ec:P-256");
	X509 *x;
	unsigned char *der = NULL;
	int len;

	snprintf(subject, sizeof(subject), "CN=%s", cn);
	x = tu_make_ca(k, subject, T0, T0 + 730 * DAY);
	memset(g, 0, sizeof(*g));
	g->kind = kind;
	g->status = status;
	g->subject = util_name_string(X509_get_subject_name(x));
	g->issuer = util_name_string(X509_get_issuer_name(x));
	strcpy(g->serial, "01");
	g->not_before = T0;
	g->not_after = T0 + 730 * DAY;
	assert_int_equal(util_cert_sha1(x, g->sha1), 0);
	assert_int_equal(util_cert_sha256(x, g->sha256), 0);
	g->key_uri = strdup("pkcs11:token=hsmca;object=ca");
	g->key_type = strdup("ec:P-256");
	len = i2d_X509(x, &der);
	assert_true(len > 0);
	g->cert_der = malloc((size_t)len);
	memcpy(g->cert_der, der, (size_t)len);
	g->cert_der_len = (size_t)len;
	g->created_at = T0 - DAY;
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* A pending generation: a key and a CSR, nothing else yet. */
static void
gen_make_pending(struct store_generation *g, const char *cn)
{
	memset(g, 0, sizeof(*g));
	g->kind = STORE_GEN_ISSUING;
	g->status = STORE_GEN_PENDING;
	g->subject = strdup(cn);
	g->key_uri = strdup("pkcs11:token=hsmca;object=pending");
	g->key_type = strdup("ec:P-384");
	g->csr_der = malloc(3);
	memcpy(g->csr_der, "\x30\x01\x00", 3);
	g->csr_der_len = 3;
	g->created_at = T0;
}

static int64_t
gen_add(struct store *st, enum store_gen_kind kind,
    enum store_gen_status status, const char *cn)
{
	struct store_generation g;
	struct hsmca_err e = { 0 };
	int64_t id;

	gen_make(&g, kind, status, cn);
	assert_int_equal(store_insert_generation(st, &g, &e), 0);
	id = g.id;
	store_generation_free_fields(&g);
	return id;
}

/* Reserve and complete one certificate. */
static int64_t
cert_add(struct store *st, int64_t issuer, const char *serial,
    const char *profile, time_t not_after)
{
	struct store_cert c;
	struct hsmca_err e = { 0 };
	unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	int64_t id;

	assert_int_equal(store_reserve_serial(st, issuer, 0, serial, profile,
	    "operator", NULL, T0, &id, &e), 0);
	memset(&c, 0, sizeof(c));
	c.id = id;
	c.subject = (char *)"CN=dev";
	c.not_before = not_after - 30 * DAY;
	c.not_after = not_after;
	c.der = der;
	c.der_len = sizeof(der);
	assert_int_equal(store_complete_cert(st, &c, &e), 0);
	return id;
}

static void
test_open_reopen_keeps_data(void **state)
{
	struct fixture *fx = *state;
	struct store_generation g;
	struct store_cert c;
	struct hsmca_err e = { 0 };
	struct stat sb;
	int64_t gid, n;

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen1");
	cert_add(fx->st, gid, "0a1b", "device", T0 + 90 * DAY);
	store_close(fx->st);
	fx->st = NULL;

	assert_int_equal(stat(fx->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	assert_int_equal(store_get_generation(fx->st, gid, &g, &e), 0);
	assert_string_equal(g.subject, "CN=gen1");
	assert_int_equal(store_get_cert(fx->st, gid, "0a1b", &c, &e), 0);
	assert_int_equal(c.status, STORE_CERT_VALID);
	assert_string_equal(c.profile, "device");
	assert_int_equal(store_count_certs(fx->st, NULL, &n, &e), 0);
	assert_int_equal(n, 1);
	store_generation_free_fields(&g);
	store_cert_free_fields(&c);
}

static void
test_schema_version(void **state)
{
	struct fixture *fx = *state;
	char *v;

	assert_int_equal(store_schema_version(fx->st), STORE_SCHEMA_VERSION);
	v = sql_text(fx->path, "PRAGMA user_version");
	assert_non_null(v);
	assert_int_equal(atoi(v), STORE_SCHEMA_VERSION);
	free(v);
	v = sql_text(fx->path, "SELECT group_concat(name, ',') FROM "
	    "(SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
	    "ORDER BY name)");
	assert_non_null(v);
	assert_string_equal(v, "audit,audit_checkpoint,"
	    "audit_checkpoint_no_delete,audit_checkpoint_no_update,"
	    "audit_no_delete,audit_no_update,batch,"
	    "ca_generation,cert,cert_batch_reserved,cert_change,"
	    "cert_change_status,cert_csr_sha256,cert_issuer_status,"
	    "cert_not_after,cert_reserved,"
	    "cert_revocation_version,cert_revoked,crl_state,disallow,"
	    "generation_revocation_version,ocsp_key_intent,ocsp_responder,"
	    "revocation_version");
	free(v);
}

static void
test_newer_schema_refused(void **state)
{
	struct fixture *fx = *state;
	struct store *st = NULL;
	struct hsmca_err e = { 0 };
	sqlite3 *db = NULL;

	store_close(fx->st);
	fx->st = NULL;
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(store_open(fx->path, &st, &e), HSMCA_ERR_STORE);
	assert_null(st);
	assert_int_equal(e.code, HSMCA_ERR_STORE);
	assert_non_null(strstr(e.msg, fx->path));
	assert_non_null(strstr(e.msg, "99"));
	assert_non_null(strstr(e.msg, "newer"));
}

static void
test_open_errors(void **state)
{
	struct fixture *fx = *state;
	struct store *st = NULL;
	struct hsmca_err e = { 0 };
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/missing/hsmca.db", fx->dir);
	assert_int_equal(store_open(path, &st, &e), HSMCA_ERR_IO);
	assert_null(st);
	assert_non_null(strstr(e.msg, "store: cannot open"));
	assert_non_null(strstr(e.msg, path));

	snprintf(path, sizeof(path), "%s/garbage.db", fx->dir);
	assert_non_null(f = fopen(path, "w"));
	for (int i = 0; i < 256; i++)
		fputs("this is not an SQLite database file", f);
	fclose(f);
	err_clear(&e);
	assert_int_equal(store_open(path, &st, &e), HSMCA_ERR_STORE);
	assert_null(st);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "not a database"));
	assert_null(strstr(e.msg, "PRAGMA"));

	assert_int_equal(store_open(NULL, &st, &e), HSMCA_ERR_ARG);
}

static void
test_memory_store(void **state)
{
	struct store *st = NULL;
	struct store_generation got;
	struct hsmca_err e = { 0 };
	int64_t gid;

	assert_int_equal(store_open(":memory:", &st, &e), 0);
	assert_int_equal(store_schema_version(st), STORE_SCHEMA_VERSION);
	gid = gen_add(st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "mem");
	assert_int_equal(store_active_generation(st, &got, &e), 0);
	assert_int_equal(got.id, gid);
	store_generation_free_fields(&got);
	store_close(st);
}

static void
test_pragmas(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	char *v;

	store_close(fx->st);
	fx->st = NULL;
	last_db = NULL;
	assert_int_equal(sqlite3_auto_extension((void (*)(void))capture_db),
	    SQLITE_OK);
	assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	sqlite3_reset_auto_extension();
	assert_non_null(last_db);

	v = pragma_text(last_db, "PRAGMA journal_mode");
	assert_string_equal(v, "wal");
	free(v);
	v = pragma_text(last_db, "PRAGMA synchronous");
	assert_string_equal(v, "2");	/* FULL */
	free(v);
	v = pragma_text(last_db, "PRAGMA foreign_keys");
	assert_string_equal(v, "1");
	free(v);
	/* WAL is a property of the file: a second connection sees it too. */
	v = sql_text(fx->path, "PRAGMA journal_mode");
	assert_string_equal(v, "wal");
	free(v);
}

static void
test_generation_roundtrip(void **state)
{
	struct fixture *fx = *state;
	struct store_generation g, p, got;
	struct hsmca_err e = { 0 };

	gen_make(&g, STORE_GEN_ROOT, STORE_GEN_ACTIVE, "root");
	g.chain_pem = strdup("-----BEGIN CERTIFICATE-----\n...\n");
	g.activate_at = T0 + 45 * DAY;
	assert_int_equal(store_insert_generation(fx->st, &g, &e), 0);
	assert_true(g.id > 0);

	assert_int_equal(store_get_generation(fx->st, g.id, &got, &e), 0);
	assert_int_equal(got.id, g.id);
	assert_int_equal(got.kind, STORE_GEN_ROOT);
	assert_int_equal(got.status, STORE_GEN_ACTIVE);
	assert_int_equal(got.parent_id, 0);
	assert_string_equal(got.subject, g.subject);
	assert_string_equal(got.issuer, g.issuer);
	assert_string_equal(got.serial, "01");
	assert_int_equal(got.not_before, T0);
	assert_int_equal(got.not_after, T0 + 730 * DAY);
	assert_string_equal(got.sha1, g.sha1);
	assert_string_equal(got.sha256, g.sha256);
	assert_string_equal(got.key_uri, g.key_uri);
	assert_string_equal(got.key_type, "ec:P-256");
	assert_int_equal(got.cert_der_len, g.cert_der_len);
	assert_memory_equal(got.cert_der, g.cert_der, g.cert_der_len);
	assert_string_equal(got.chain_pem, g.chain_pem);
	assert_null(got.csr_der);
	assert_int_equal(got.created_at, T0 - DAY);
	assert_int_equal(got.activate_at, T0 + 45 * DAY);
	assert_int_equal(got.revoked_at, 0);
	assert_null(got.revoke_reason);
	store_generation_free_fields(&got);

	/* A pending child: no certificate, issuer or thumbprints yet. */
	gen_make_pending(&p, "CN=issuing 2");
	p.parent_id = g.id;
	assert_int_equal(store_insert_generation(fx->st, &p, &e), 0);
	assert_int_equal(store_get_generation(fx->st, p.id, &got, &e), 0);
	assert_int_equal(got.status, STORE_GEN_PENDING);
	assert_int_equal(got.parent_id, g.id);
	assert_null(got.issuer);
	assert_null(got.cert_der);
	assert_string_equal(got.sha1, "");
	assert_string_equal(got.serial, "");
	assert_int_equal(got.csr_der_len, 3);
	assert_memory_equal(got.csr_der, "\x30\x01\x00", 3);
	store_generation_free_fields(&got);

	/* A second pending generation: absent thumbprints do not collide. */
	store_generation_free_fields(&p);
	gen_make_pending(&p, "CN=issuing 3");
	assert_int_equal(store_insert_generation(fx->st, &p, &e), 0);

	/* The same certificate twice is refused. */
	g.id = 0;
	assert_int_equal(store_insert_generation(fx->st, &g, &e),
	    HSMCA_ERR_EXISTS);
	/* A parent that does not exist is refused. */
	store_generation_free_fields(&p);
	gen_make_pending(&p, "CN=orphan");
	p.parent_id = 999;
	assert_int_equal(store_insert_generation(fx->st, &p, &e),
	    HSMCA_ERR_NOT_FOUND);
	assert_int_equal(store_get_generation(fx->st, 999, &got, &e),
	    HSMCA_ERR_NOT_FOUND);

	store_generation_free_fields(&p);
	store_generation_free_fields(&g);
}

static void
test_generation_update(void **state)
{
	struct fixture *fx = *state;
	struct store_generation p, signed_gen, got;
	struct hsmca_err e = { 0 };

	gen_make_pending(&p, "CN=gen,O=Acme");
	assert_int_equal(store_insert_generation(fx->st, &p, &e), 0);

	/* The certificate comes back: import it and activate. */
	gen_make(&signed_gen, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	signed_gen.id = p.id;
	signed_gen.activate_at = T0 + DAY;
	signed_gen.key_uri[0] = 'X';	/* immutable: must not change */
	assert_int_equal(store_update_generation(fx->st, &signed_gen, &e), 0);
	assert_int_equal(store_get_generation(fx->st, p.id, &got, &e), 0);
	assert_int_equal(got.status, STORE_GEN_ACTIVE);
	assert_string_equal(got.issuer, signed_gen.issuer);
	assert_string_equal(got.sha256, signed_gen.sha256);
	assert_int_equal(got.cert_der_len, signed_gen.cert_der_len);
	assert_int_equal(got.activate_at, T0 + DAY);
	assert_string_equal(got.key_uri, p.key_uri);
	assert_int_equal(got.csr_der_len, 3);
	store_generation_free_fields(&got);

	/* Then revoke it. */
	signed_gen.status = STORE_GEN_REVOKED;
	signed_gen.revoked_at = T0 + 10 * DAY;
	signed_gen.revoke_reason = strdup("keyCompromise");
	assert_int_equal(store_update_generation(fx->st, &signed_gen, &e), 0);
	assert_int_equal(store_get_generation(fx->st, p.id, &got, &e), 0);
	assert_int_equal(got.status, STORE_GEN_REVOKED);
	assert_int_equal(got.revoked_at, T0 + 10 * DAY);
	assert_string_equal(got.revoke_reason, "keyCompromise");
	store_generation_free_fields(&got);

	signed_gen.id = 4242;
	assert_int_equal(store_update_generation(fx->st, &signed_gen, &e),
	    HSMCA_ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "4242"));

	store_generation_free_fields(&signed_gen);
	store_generation_free_fields(&p);
}

/* "ab12..." as "AB:12:...". */
static void
colonize_upper(const char *hex, char *out)
{
	size_t n = 0;

	for (size_t i = 0; hex[i] != '\0'; i++) {
		if (i > 0 && i % 2 == 0)
			out[n++] = ':';
		out[n++] = (char)(hex[i] >= 'a' ? hex[i] - 'a' + 'A' : hex[i]);
	}
	out[n] = '\0';
}

static void
test_find_generation(void **state)
{
	struct fixture *fx = *state;
	struct store_generation g1, g2, got;
	struct hsmca_err e = { 0 };
	char ref[128];

	gen_make(&g1, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "one");
	gen_make(&g2, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "two");
	assert_int_equal(store_insert_generation(fx->st, &g1, &e), 0);
	assert_int_equal(store_insert_generation(fx->st, &g2, &e), 0);

	snprintf(ref, sizeof(ref), "%" PRId64, g2.id);
	assert_int_equal(store_find_generation(fx->st, ref, &got, &e), 0);
	assert_int_equal(got.id, g2.id);
	store_generation_free_fields(&got);

	assert_int_equal(store_find_generation(fx->st, g1.sha1, &got, &e), 0);
	assert_int_equal(got.id, g1.id);
	store_generation_free_fields(&got);

	colonize_upper(g1.sha1, ref);
	assert_non_null(strchr(ref, ':'));
	assert_int_equal(store_find_generation(fx->st, ref, &got, &e), 0);
	assert_int_equal(got.id, g1.id);
	store_generation_free_fields(&got);

	assert_int_equal(store_find_generation(fx->st, g2.sha256, &got, &e), 0);
	assert_int_equal(got.id, g2.id);
	store_generation_free_fields(&got);

	colonize_upper(g2.sha256, ref);
	assert_int_equal(store_find_generation(fx->st, ref, &got, &e), 0);
	assert_int_equal(got.id, g2.id);
	assert_string_equal(got.subject, "CN=two");
	store_generation_free_fields(&got);

	/* Well-formed but unknown. */
	assert_int_equal(store_find_generation(fx->st,
	    "0000000000000000000000000000000000000000", &got, &e),
	    HSMCA_ERR_NOT_FOUND);
	assert_int_equal(store_find_generation(fx->st, "77", &got, &e),
	    HSMCA_ERR_NOT_FOUND);
	/* Not an id nor a thumbprint. */
	assert_int_equal(store_find_generation(fx->st, "abc", &got, &e),
	    HSMCA_ERR_ARG);
	assert_int_equal(store_find_generation(fx->st, "0", &got, &e),
	    HSMCA_ERR_ARG);
	assert_int_equal(store_find_generation(fx->st, "1x", &got, &e),
	    HSMCA_ERR_ARG);
	assert_int_equal(store_find_generation(fx->st, "", &got, &e),
	    HSMCA_ERR_ARG);
	/* 41 hex digits is not a SHA-1. */
	assert_int_equal(store_find_generation(fx->st,
	    "0000000000000000000000000000000000000000a", &got, &e),
	    HSMCA_ERR_ARG);

	store_generation_free_fields(&g1);
	store_generation_free_fields(&g2);
}

static void
test_list_generations(void **state)
{
	struct fixture *fx = *state;
	struct store_generation *v = NULL;
	struct hsmca_err e = { 0 };
	int64_t ids[3];
	size_t n = 99;

	assert_int_equal(store_list_generations(fx->st, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	assert_null(v);

	ids[0] = gen_add(fx->st, STORE_GEN_ROOT, STORE_GEN_ACTIVE, "root");
	ids[1] = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "g1");
	ids[2] = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "g2");
	assert_int_equal(store_list_generations(fx->st, &v, &n, &e), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i].id, ids[i]);
	assert_int_equal(v[0].kind, STORE_GEN_ROOT);
	assert_string_equal(v[1].subject, "CN=g1");
	assert_int_equal(v[2].status, STORE_GEN_ACTIVE);
	store_generations_free(v, n);
}

static void
test_active_generation(void **state)
{
	struct fixture *fx = *state;
	struct store_generation got;
	struct hsmca_err e = { 0 };
	int64_t id;

	assert_int_equal(store_active_generation(fx->st, &got, &e),
	    HSMCA_ERR_CA_STATE);
	assert_string_equal(e.msg,
	    "no active CA generation (`hsmca ca init` for a new CA; "
	    "`hsmca ca rotate`, then `hsmca ca activate` for one whose "
	    "generations expired)");

	/* An active root and an inactive issuing generation do not issue. */
	gen_add(fx->st, STORE_GEN_ROOT, STORE_GEN_ACTIVE, "root");
	gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "old");
	assert_int_equal(store_active_generation(fx->st, &got, &e),
	    HSMCA_ERR_CA_STATE);

	id = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "current");
	assert_int_equal(store_active_generation(fx->st, &got, &e), 0);
	assert_int_equal(got.id, id);
	assert_string_equal(got.subject, "CN=current");
	store_generation_free_fields(&got);

	/* Two active issuing generations is a broken CA, not a choice. */
	gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "second");
	err_clear(&e);
	assert_int_equal(store_active_generation(fx->st, &got, &e),
	    HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "several"));
	assert_null(got.subject);
}

static void
test_reserve_complete_get(void **state)
{
	struct fixture *fx = *state;
	struct store_cert c, got;
	struct hsmca_err e = { 0 };
	unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x2a };
	const char *csr =
	    "1111111111111111111111111111111111111111111111111111111111111111";
	int64_t gid, cid = 0;

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	assert_int_equal(store_reserve_serial(fx->st, gid, 0, "7f01", "device",
	    "CN=bootstrap", csr, T0, &cid, &e), 0);
	assert_true(cid > 0);

	assert_int_equal(store_get_cert(fx->st, gid, "7f01", &got, &e), 0);
	assert_int_equal(got.id, cid);
	assert_int_equal(got.status, STORE_CERT_RESERVED);
	assert_int_equal(got.issuer_id, gid);
	assert_string_equal(got.profile, "device");
	assert_string_equal(got.requester, "CN=bootstrap");
	assert_string_equal(got.csr_sha256, csr);
	assert_int_equal(got.created_at, T0);
	assert_null(got.der);
	assert_int_equal(got.revoke_reason, -1);
	store_cert_free_fields(&got);

	memset(&c, 0, sizeof(c));
	c.id = cid;
	c.issuer_id = gid;
	strcpy(c.serial, "7f01");
	c.subject = (char *)"CN=dev1,O=Acme";
	c.sans = (char *)"DNS:dev1.example,URI:urn:dev:1";
	c.not_before = T0;
	c.not_after = T0 + 365 * DAY;
	strcpy(c.sha256,
	    "2222222222222222222222222222222222222222222222222222222222222222");
	c.der = der;
	c.der_len = sizeof(der);
	c.revoke_reason = -1;
	assert_int_equal(store_complete_cert(fx->st, &c, &e), 0);

	/* By issuer and serial, and by serial alone. */
	assert_int_equal(store_get_cert(fx->st, 0, "7f01", &got, &e), 0);
	assert_int_equal(got.id, cid);
	assert_int_equal(got.status, STORE_CERT_VALID);
	assert_string_equal(got.serial, "7f01");
	assert_string_equal(got.subject, "CN=dev1,O=Acme");
	assert_string_equal(got.sans, "DNS:dev1.example,URI:urn:dev:1");
	assert_int_equal(got.not_before, T0);
	assert_int_equal(got.not_after, T0 + 365 * DAY);
	assert_string_equal(got.sha256, c.sha256);
	/* Kept from the reservation when completion leaves them out. */
	assert_string_equal(got.profile, "device");
	assert_string_equal(got.requester, "CN=bootstrap");
	assert_string_equal(got.csr_sha256, csr);
	assert_int_equal(got.created_at, T0);
	assert_int_equal(got.der_len, sizeof(der));
	assert_memory_equal(got.der, der, sizeof(der));
	assert_int_equal(got.revoked_at, 0);
	assert_int_equal(got.revoke_reason, -1);
	store_cert_free_fields(&got);

	assert_int_equal(store_get_cert(fx->st, gid, "7f02", &got, &e),
	    HSMCA_ERR_NOT_FOUND);
	assert_int_equal(store_get_cert(fx->st, gid + 1, "7f01", &got, &e),
	    HSMCA_ERR_NOT_FOUND);
}

static void
test_duplicate_serial(void **state)
{
	struct fixture *fx = *state;
	struct store_cert got;
	struct hsmca_err e = { 0 };
	int64_t g1, g2, id1, id2;

	g1 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "g1");
	g2 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "g2");
	assert_int_equal(store_reserve_serial(fx->st, g1, 0, "0102", NULL, NULL,
	    NULL, T0, &id1, &e), 0);
	assert_int_equal(store_reserve_serial(fx->st, g1, 0, "0102", NULL, NULL,
	    NULL, T0, &id2, &e), HSMCA_ERR_EXISTS);
	assert_non_null(strstr(e.msg, "0102"));
	assert_null(strstr(e.msg, "INSERT"));
	/* The same number from another issuer is another certificate. */
	assert_int_equal(store_reserve_serial(fx->st, g2, 0, "0102", NULL, NULL,
	    NULL, T0, &id2, &e), 0);
	assert_true(id2 != id1);

	err_clear(&e);
	assert_int_equal(store_get_cert(fx->st, 0, "0102", &got, &e),
	    HSMCA_ERR_EXISTS);
	assert_non_null(strstr(e.msg, "ambiguous"));
	assert_null(got.subject);
	assert_int_equal(store_get_cert(fx->st, g2, "0102", &got, &e), 0);
	assert_int_equal(got.id, id2);
	store_cert_free_fields(&got);

	/* No such issuer; not a canonical serial. */
	assert_int_equal(store_reserve_serial(fx->st, 999, 0, "0103", NULL, NULL,
	    NULL, T0, &id2, &e), HSMCA_ERR_NOT_FOUND);
	assert_int_equal(store_reserve_serial(fx->st, g1, 0, "0A1B", NULL, NULL,
	    NULL, T0, &id2, &e), HSMCA_ERR_ARG);
	assert_int_equal(store_reserve_serial(fx->st, g1, 0, "abc", NULL, NULL,
	    NULL, T0, &id2, &e), HSMCA_ERR_ARG);
	assert_int_equal(store_reserve_serial(fx->st, g1, 0, "", NULL, NULL,
	    NULL, T0, &id2, &e), HSMCA_ERR_ARG);
}

/* A device certificate's serial is reserved only under an issuing
 * generation that is active or was just retired, read in the
 * reservation's own transaction. */
static void
test_reserve_device(void **state)
{
	struct fixture *fx = *state;
	struct store_generation g;
	struct hsmca_err e = { 0 };
	int64_t active, retired, pending, root, id = 0;
	char *n;

	root = gen_add(fx->st, STORE_GEN_ROOT, STORE_GEN_ACTIVE, "root");
	active = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "act");
	retired = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE,
	    "old");
	pending = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_PENDING, "pen");
	assert_int_equal(store_reserve_serial(fx->st, active, 1, "0a01",
	    "device", NULL, NULL, T0, &id, &e), 0);
	assert_true(id > 0);
	/* Retired since a signer or a batch opened it: it still issues
	 * until they load the new one. */
	assert_int_equal(store_reserve_serial(fx->st, retired, 1, "0a02",
	    "device", NULL, NULL, T0, &id, &e), 0);
	/* A pending generation may reserve for itself (a proof of
	 * possession), not for a device; nor may a root. */
	assert_int_equal(store_reserve_serial(fx->st, pending, 0, "0a03",
	    "pop", NULL, NULL, T0, &id, &e), 0);
	id = 0;
	assert_int_equal(store_reserve_serial(fx->st, pending, 1, "0a04",
	    "device", NULL, NULL, T0, &id, &e), HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "is pending"));
	assert_non_null(strstr(e.msg, "0a04"));
	assert_int_equal(id, 0);
	err_clear(&e);
	assert_int_equal(store_reserve_serial(fx->st, root, 1, "0a05",
	    "device", NULL, NULL, T0, &id, &e), HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "a root"));

	/* Revoked a moment ago, after the signer opened it. */
	memset(&g, 0, sizeof(g));
	assert_int_equal(store_get_generation(fx->st, active, &g, &e), 0);
	g.status = STORE_GEN_REVOKED;
	assert_int_equal(store_update_generation(fx->st, &g, &e), 0);
	store_generation_free_fields(&g);
	err_clear(&e);
	assert_int_equal(store_reserve_serial(fx->st, active, 1, "0a06",
	    "device", NULL, NULL, T0, &id, &e), HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "is revoked"));
	n = sql_text(fx->path, "SELECT count(*) FROM cert WHERE serial IN "
	    "('0a04', '0a05', '0a06')");
	assert_string_equal(n, "0");
	free(n);
	/* No such generation at all. */
	assert_int_equal(store_reserve_serial(fx->st, 999, 1, "0a07",
	    "device", NULL, NULL, T0, &id, &e), HSMCA_ERR_NOT_FOUND);
}

/* A batch's reservation: refused while its CSR has a certificate or
 * another batch reservation pending, in its own transaction; the
 * reservations left behind marked failed by the sweep. */
static void
test_reserve_batch(void **state)
{
	struct fixture *fx = *state;
	struct store_cert c, *v = NULL;
	struct hsmca_err e = { 0 };
	unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	const char *a = "aa00000000000000000000000000000000000000000000000000"
	    "000000000000", *b = "bb000000000000000000000000000000000000000000"
	    "00000000000000000000";
	int64_t gid, id = 0, other = 0, n;
	size_t nv;

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	/* Another run's reservation pending: refused, nothing written. */
	assert_int_equal(store_reserve_batch_serial(fx->st, gid, 1, "b1",
	    "device", "cli:root batch:1", a, T0, &id, &e), 0);
	assert_int_equal(store_reserve_batch_serial(fx->st, gid, 2, "b2",
	    "device", "admin:CN=x batch:2", a, T0, &other, &e),
	    HSMCA_ERR_BUSY);
	assert_non_null(strstr(e.msg, a));
	assert_int_equal(other, 0);
	/* Not for a reservation that is not a batch's (EST), nor for
	 * another CSR. */
	assert_int_equal(store_reserve_serial(fx->st, gid, 1, "e1", "device",
	    "est:CN=dev", a, T0, &other, &e), 0);
	assert_int_equal(store_reserve_batch_serial(fx->st, gid, 2, "b3",
	    "device", "admin:CN=x batch:2", b, T0, &other, &e), 0);
	/* Recorded: still refused. */
	memset(&c, 0, sizeof(c));
	c.id = id;
	c.subject = (char *)"CN=dev";
	c.not_after = T0 + DAY;
	c.der = der;
	c.der_len = sizeof(der);
	assert_int_equal(store_complete_cert(fx->st, &c, &e), 0);
	assert_int_equal(store_reserve_batch_serial(fx->st, gid, 3, "b4",
	    "device", "cli:root batch:3", a, T0, &other, &e),
	    HSMCA_ERR_BUSY);
	assert_int_equal(store_certs_by_csr(fx->st, a, &v, &nv, &e), 0);
	assert_int_equal(nv, 2);
	assert_int_equal(v[0].batch_id, 1);
	assert_int_equal(v[1].batch_id, 0);
	store_certs_free(v, nv);
	/* The sweep: only the batch reservations pending (b3), not EST's. */
	assert_int_equal(store_batch_fail_reserved(fx->st, &n, &e), 0);
	assert_int_equal(n, 1);
	v = NULL;
	assert_int_equal(store_certs_by_csr(fx->st, b, &v, &nv, &e), 0);
	assert_int_equal(nv, 1);
	assert_int_equal(v[0].status, STORE_CERT_FAILED);
	store_certs_free(v, nv);
	/* b can be reserved again, under a new serial. */
	assert_int_equal(store_reserve_batch_serial(fx->st, gid, 4, "b5",
	    "device", "cli:root batch:4", b, T0, &other, &e), 0);
	/* The generation is said first when it cannot issue. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_reserve_batch_serial(fx->st, 999, 4, "b6",
	    "device", "cli:root batch:4", b, T0, &other, &e),
	    HSMCA_ERR_NOT_FOUND);
	assert_int_equal(store_reserve_batch_serial(fx->st, gid, 0, "b7",
	    "device", "cli:root", b, T0, &other, &e), HSMCA_ERR_ARG);
}

static void
test_complete_refused(void **state)
{
	struct fixture *fx = *state;
	struct store_cert c, got;
	struct hsmca_err e = { 0 };
	unsigned char der[] = { 0x30, 0x00 };
	int64_t gid, done, failed, reserved;

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	done = cert_add(fx->st, gid, "01", "device", T0 + DAY);
	assert_int_equal(store_reserve_serial(fx->st, gid, 0, "02", NULL, NULL,
	    NULL, T0, &failed, &e), 0);
	assert_int_equal(store_fail_cert(fx->st, failed, &e), 0);
	assert_int_equal(store_reserve_serial(fx->st, gid, 0, "03", NULL, NULL,
	    NULL, T0, &reserved, &e), 0);

	memset(&c, 0, sizeof(c));
	c.der = der;
	c.der_len = sizeof(der);
	c.not_after = T0 + 2 * DAY;

	c.id = done;
	assert_int_equal(store_complete_cert(fx->st, &c, &e),
	    HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "valid"));
	c.id = failed;
	assert_int_equal(store_complete_cert(fx->st, &c, &e),
	    HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "failed"));
	c.id = 999;
	assert_int_equal(store_complete_cert(fx->st, &c, &e),
	    HSMCA_ERR_NOT_FOUND);

	/* The reserved row, but under another serial or issuer. */
	c.id = reserved;
	strcpy(c.serial, "04");
	assert_int_equal(store_complete_cert(fx->st, &c, &e), HSMCA_ERR_ARG);
	c.serial[0] = '\0';
	c.issuer_id = gid + 1;
	assert_int_equal(store_complete_cert(fx->st, &c, &e), HSMCA_ERR_ARG);
	/* Without its DER. */
	c.issuer_id = gid;
	c.der = NULL;
	assert_int_equal(store_complete_cert(fx->st, &c, &e), HSMCA_ERR_ARG);

	/* None of that touched the rows. */
	assert_int_equal(store_get_cert(fx->st, gid, "01", &got, &e), 0);
	assert_int_equal(got.status, STORE_CERT_VALID);
	assert_int_equal(got.not_after, T0 + DAY);
	store_cert_free_fields(&got);
	assert_int_equal(store_get_cert(fx->st, gid, "03", &got, &e), 0);
	assert_int_equal(got.status, STORE_CERT_RESERVED);
	store_cert_free_fields(&got);
}

static void
test_fail_cert(void **state)
{
	struct fixture *fx = *state;
	struct store_cert got;
	struct hsmca_err e = { 0 };
	int64_t gid, id, valid;

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	assert_int_equal(store_reserve_serial(fx->st, gid, 0, "0abc", "device",
	    NULL, NULL, T0, &id, &e), 0);
	assert_int_equal(store_fail_cert(fx->st, id, &e), 0);
	assert_int_equal(store_get_cert(fx->st, gid, "0abc", &got, &e), 0);
	assert_int_equal(got.status, STORE_CERT_FAILED);
	assert_null(got.der);
	store_cert_free_fields(&got);
	/* Marking it again is harmless; the serial is never reused. */
	assert_int_equal(store_fail_cert(fx->st, id, &e), 0);
	assert_int_equal(store_reserve_serial(fx->st, gid, 0, "0abc", NULL, NULL,
	    NULL, T0, &id, &e), HSMCA_ERR_EXISTS);

	/* A released certificate cannot be failed. */
	valid = cert_add(fx->st, gid, "0abd", "device", T0 + DAY);
	assert_int_equal(store_fail_cert(fx->st, valid, &e),
	    HSMCA_ERR_CA_STATE);
	assert_int_equal(store_get_cert(fx->st, gid, "0abd", &got, &e), 0);
	assert_int_equal(got.status, STORE_CERT_VALID);
	store_cert_free_fields(&got);
	assert_int_equal(store_fail_cert(fx->st, 999, &e), HSMCA_ERR_NOT_FOUND);
}

/* The status of serial under issuer, as stored. */
static enum store_cert_status
cert_status(struct store *st, int64_t issuer, const char *serial)
{
	struct store_cert got;
	struct hsmca_err e = { 0 };
	enum store_cert_status status;

	assert_int_equal(store_get_cert(st, issuer, serial, &got, &e), 0);
	status = got.status;
	store_cert_free_fields(&got);
	return status;
}

/* Reservations made before a time are marked failed, oldest first and
 * at most as many as asked; anything younger, completed or failed
 * already is left alone, and a swept serial is never used again. */
static void
test_fail_reserved_before(void **state)
{
	struct fixture *fx = *state;
	struct store_cert c, *v = NULL;
	struct hsmca_err e = { 0 };
	unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	const char *csr = "cc00000000000000000000000000000000000000000000000000"
	    "000000000000";
	int64_t gid, old, id;
	size_t n = 0;

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	assert_int_equal(store_reserve_serial(fx->st, gid, 1, "a1", "device",
	    "est:bootstrap:CN=dev-1", NULL, T0 - 3 * DAY, &old, &e), 0);
	assert_int_equal(store_reserve_batch_serial(fx->st, gid, 7, "a2",
	    "device", "cli:root batch:7", csr, T0 - 2 * DAY, &id, &e), 0);
	/* Exactly at the limit: not before it. */
	assert_int_equal(store_reserve_serial(fx->st, gid, 0, "a3", "pop",
	    "cli:root", NULL, T0 - DAY, &id, &e), 0);
	assert_int_equal(store_reserve_serial(fx->st, gid, 1, "a4", "device",
	    "cli:root", NULL, T0, &id, &e), 0);
	/* Old, but recorded, or failed already. */
	assert_int_equal(store_reserve_serial(fx->st, gid, 1, "a5", "device",
	    "cli:root", NULL, T0 - 9 * DAY, &id, &e), 0);
	memset(&c, 0, sizeof(c));
	c.id = id;
	c.subject = (char *)"CN=dev";
	c.not_after = T0 + DAY;
	c.der = der;
	c.der_len = sizeof(der);
	assert_int_equal(store_complete_cert(fx->st, &c, &e), 0);
	assert_int_equal(store_reserve_serial(fx->st, gid, 1, "a6", "device",
	    "cli:root", NULL, T0 - 9 * DAY, &id, &e), 0);
	assert_int_equal(store_fail_cert(fx->st, id, &e), 0);

	assert_int_equal(store_fail_reserved_before(fx->st, T0 - DAY, 1, &v,
	    &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].id, old);
	assert_string_equal(v[0].serial, "a1");
	assert_int_equal(v[0].issuer_id, gid);
	assert_int_equal(v[0].status, STORE_CERT_FAILED);
	assert_string_equal(v[0].profile, "device");
	assert_string_equal(v[0].requester, "est:bootstrap:CN=dev-1");
	assert_int_equal(v[0].created_at, T0 - 3 * DAY);
	store_certs_free(v, n);
	v = NULL;
	assert_int_equal(store_fail_reserved_before(fx->st, T0 - DAY, 10, &v,
	    &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].serial, "a2");
	assert_int_equal(v[0].batch_id, 7);
	store_certs_free(v, n);
	v = NULL;
	assert_int_equal(store_fail_reserved_before(fx->st, T0 - DAY, 10, &v,
	    &n, &e), 0);
	assert_int_equal(n, 0);
	assert_null(v);

	assert_int_equal(cert_status(fx->st, gid, "a1"), STORE_CERT_FAILED);
	assert_int_equal(cert_status(fx->st, gid, "a2"), STORE_CERT_FAILED);
	assert_int_equal(cert_status(fx->st, gid, "a3"), STORE_CERT_RESERVED);
	assert_int_equal(cert_status(fx->st, gid, "a4"), STORE_CERT_RESERVED);
	assert_int_equal(cert_status(fx->st, gid, "a5"), STORE_CERT_VALID);
	assert_int_equal(cert_status(fx->st, gid, "a6"), STORE_CERT_FAILED);

	/* The process that reserved a1 comes back from the token: its
	 * certificate is not recorded, so never released. */
	c.id = old;
	assert_int_equal(store_complete_cert(fx->st, &c, &e),
	    HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "failed"));
	/* The serial is burnt; the batch's CSR may be signed again. */
	assert_int_equal(store_reserve_serial(fx->st, gid, 1, "a1", "device",
	    NULL, NULL, T0, &id, &e), HSMCA_ERR_EXISTS);
	assert_int_equal(store_reserve_batch_serial(fx->st, gid, 8, "a7",
	    "device", "cli:root batch:8", csr, T0, &id, &e), 0);

	/* A later limit takes the younger ones too. */
	assert_int_equal(store_fail_reserved_before(fx->st, T0 + 1, 10, &v,
	    &n, &e), 0);
	assert_int_equal(n, 3);
	store_certs_free(v, n);
	assert_int_equal(store_fail_reserved_before(fx->st, T0, 0, &v, &n,
	    &e), HSMCA_ERR_ARG);
}

/* List with f and check the ids (in order) and the count agree. */
static void
check_filter(struct store *st, const struct store_cert_filter *f,
    const int64_t *want, size_t nwant)
{
	struct store_cert *v = NULL;
	struct hsmca_err e = { 0 };
	size_t n = 0;
	int64_t count = -1;

	assert_int_equal(store_list_certs(st, f, &v, &n, &e), 0);
	assert_int_equal(n, nwant);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i].id, want[i]);
	store_certs_free(v, n);
	assert_int_equal(store_count_certs(st, f, &count, &e), 0);
	if (f == NULL || f->limit == 0)
		assert_int_equal(count, (int64_t)nwant);
	else
		assert_true(count >= (int64_t)nwant);
}

static void
test_list_filters(void **state)
{
	struct fixture *fx = *state;
	struct store_cert_filter f;
	struct hsmca_err e = { 0 };
	struct store_cert *v = NULL;
	size_t n;
	int64_t g1, g2, g3, a, b, c, d, r, edge, count;

	g1 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "g1");
	g2 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "g2");
	/* a and d have expired at T0. */
	a = cert_add(fx->st, g1, "0a", "device", T0 - DAY);
	b = cert_add(fx->st, g1, "0b", "server", T0 + DAY);
	c = cert_add(fx->st, g2, "0c", "device", T0 + 2 * DAY);
	d = cert_add(fx->st, g2, "0d", "device", T0 - 2 * DAY);
	assert_int_equal(store_reserve_serial(fx->st, g2, 0, "0e", "device",
	    NULL, NULL, T0, &r, &e), 0);

	check_filter(fx->st, NULL, (int64_t[]){ a, b, c, d, r }, 5);

	memset(&f, 0, sizeof(f));
	f.status = -1;
	f.expired = -1;
	f.now = T0;
	check_filter(fx->st, &f, (int64_t[]){ a, b, c, d, r }, 5);

	f.issuer_id = g1;
	check_filter(fx->st, &f, (int64_t[]){ a, b }, 2);
	f.issuer_id = g2;
	check_filter(fx->st, &f, (int64_t[]){ c, d, r }, 3);

	f.issuer_id = 0;
	f.status = STORE_CERT_RESERVED;
	check_filter(fx->st, &f, (int64_t[]){ r }, 1);
	f.status = STORE_CERT_VALID;
	check_filter(fx->st, &f, (int64_t[]){ a, b, c, d }, 4);
	f.status = STORE_CERT_REVOKED;
	check_filter(fx->st, &f, NULL, 0);

	f.status = -1;
	f.expired = 1;
	check_filter(fx->st, &f, (int64_t[]){ a, d }, 2);
	f.expired = 0;
	check_filter(fx->st, &f, (int64_t[]){ b, c }, 2);
	/* Time is the caller's: a year on, everything issued has expired. */
	f.expired = 1;
	f.now = T0 + 365 * DAY;
	check_filter(fx->st, &f, (int64_t[]){ a, b, c, d }, 4);
	f.now = T0;

	f.expired = -1;
	f.profile = "device";
	check_filter(fx->st, &f, (int64_t[]){ a, c, d, r }, 4);
	f.profile = "server";
	check_filter(fx->st, &f, (int64_t[]){ b }, 1);
	f.profile = "nonesuch";
	check_filter(fx->st, &f, NULL, 0);

	/* Everything at once: g2's valid, unexpired device certificates. */
	f.issuer_id = g2;
	f.status = STORE_CERT_VALID;
	f.expired = 0;
	f.profile = "device";
	check_filter(fx->st, &f, (int64_t[]){ c }, 1);

	/* limit keeps the first rows by id; count ignores it. */
	memset(&f, 0, sizeof(f));
	f.status = -1;
	f.expired = -1;
	f.limit = 2;
	check_filter(fx->st, &f, (int64_t[]){ a, b }, 2);
	assert_int_equal(store_count_certs(fx->st, &f, &count, &e), 0);
	assert_int_equal(count, 5);
	f.profile = "device";
	check_filter(fx->st, &f, (int64_t[]){ a, c }, 2);

	/* Expiry is strict: not_after == now has not expired yet. */
	g3 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "g3");
	edge = cert_add(fx->st, g3, "0f", "device", T0);
	memset(&f, 0, sizeof(f));
	f.issuer_id = g3;
	f.status = -1;
	f.now = T0;
	f.expired = 1;
	check_filter(fx->st, &f, NULL, 0);
	f.expired = 0;
	check_filter(fx->st, &f, (int64_t[]){ edge }, 1);

	/* A filter that makes no sense is refused. */
	f.status = STORE_CERT_STATUS_MAX;
	assert_int_equal(store_list_certs(fx->st, &f, &v, &n, &e),
	    HSMCA_ERR_ARG);
	assert_null(v);
	f.status = -1;
	f.expired = 2;
	assert_int_equal(store_count_certs(fx->st, &f, &count, &e),
	    HSMCA_ERR_ARG);
}

static void
test_transactions(void **state)
{
	struct fixture *fx = *state;
	struct store *other = NULL;
	struct store_cert got;
	struct hsmca_err e = { 0 };
	int64_t gid, id, count;
	char serial[8];

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");

	assert_int_equal(store_begin(fx->st, &e), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(serial, sizeof(serial), "%02x", 0x10 + i);
		assert_int_equal(store_reserve_serial(fx->st, gid, 0, serial,
		    NULL, NULL, NULL, T0, &id, &e), 0);
	}
	assert_int_equal(store_fail_cert(fx->st, id, &e), 0);
	assert_int_equal(store_count_certs(fx->st, NULL, &count, &e), 0);
	assert_int_equal(count, 3);
	/* Nesting is refused and leaves the open transaction alone. */
	assert_int_equal(store_begin(fx->st, &e), HSMCA_ERR_ARG);
	store_rollback(fx->st);
	assert_int_equal(store_count_certs(fx->st, NULL, &count, &e), 0);
	assert_int_equal(count, 0);

	/* Nothing to commit or roll back outside a transaction. */
	assert_int_equal(store_commit(fx->st, &e), HSMCA_ERR_ARG);
	store_rollback(fx->st);

	/* A committed group is visible to another handle on the file. */
	assert_int_equal(store_begin(fx->st, &e), 0);
	assert_int_equal(store_reserve_serial(fx->st, gid, 0, "20", NULL, NULL,
	    NULL, T0, &id, &e), 0);
	assert_int_equal(store_reserve_serial(fx->st, gid, 0, "21", NULL, NULL,
	    NULL, T0, &id, &e), 0);
	assert_int_equal(store_commit(fx->st, &e), 0);

	assert_int_equal(store_open(fx->path, &other, &e), 0);
	assert_int_equal(store_count_certs(other, NULL, &count, &e), 0);
	assert_int_equal(count, 2);
	assert_int_equal(store_get_cert(other, gid, "21", &got, &e), 0);
	assert_int_equal(got.id, id);
	store_cert_free_fields(&got);
	/* And single calls on one handle commit on their own. */
	cert_add(other, gid, "22", "device", T0 + DAY);
	assert_int_equal(store_get_cert(fx->st, gid, "22", &got, &e), 0);
	assert_int_equal(got.status, STORE_CERT_VALID);
	store_cert_free_fields(&got);
	store_close(other);

	/* A failed write inside a transaction leaves it usable. */
	assert_int_equal(store_begin(fx->st, &e), 0);
	assert_int_equal(store_reserve_serial(fx->st, gid, 0, "20", NULL, NULL,
	    NULL, T0, &id, &e), HSMCA_ERR_EXISTS);
	assert_int_equal(store_reserve_serial(fx->st, gid, 0, "23", NULL, NULL,
	    NULL, T0, &id, &e), 0);
	assert_int_equal(store_commit(fx->st, &e), 0);
	assert_int_equal(store_count_certs(fx->st, NULL, &count, &e), 0);
	assert_int_equal(count, 4);
}

static void
test_statements_reused(void **state)
{
	struct fixture *fx = *state;
	struct store_cert_filter f = { 0, -1, -1, T0, "device", 0 };
	struct store_cert c;
	struct hsmca_err e = { 0 };
	int64_t gid, id, count;
	char serial[16];
	int before = 0, after = 0;

	store_close(fx->st);
	fx->st = NULL;
	last_db = NULL;
	assert_int_equal(sqlite3_auto_extension((void (*)(void))capture_db),
	    SQLITE_OK);
	assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	sqlite3_reset_auto_extension();
	assert_non_null(last_db);

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	for (int i = 0; i < 200; i++) {
		snprintf(serial, sizeof(serial), "%04x", 0x100 + i);
		cert_add(fx->st, gid, serial, "device", T0 + DAY);
		assert_int_equal(store_get_cert(fx->st, gid, serial, &c, &e),
		    0);
		store_cert_free_fields(&c);
		assert_int_equal(store_count_certs(fx->st, &f, &count, &e), 0);
		assert_int_equal(count, i + 1);
		if (i == 0)
			for (sqlite3_stmt *s = sqlite3_next_stmt(last_db, NULL);
			    s != NULL; s = sqlite3_next_stmt(last_db, s))
				before++;
	}
	for (sqlite3_stmt *s = sqlite3_next_stmt(last_db, NULL); s != NULL;
	    s = sqlite3_next_stmt(last_db, s)) {
		after++;
		/* Every statement was reset: none holds a read open. */
		assert_false(sqlite3_stmt_busy(s));
	}
	assert_true(before > 0);
	assert_int_equal(after, before);
	(void)id;
}


/* Group commit: threads with their own handles share commits. */
#define GC_THREADS	8
#define GC_PER_THREAD	150

struct gc_arg {
	const char		*path;
	struct store_group	*g;
	int64_t			 issuer;
	int			 idx;
	int			 failures;
	int			 dup_refused;
};

static void *
gc_worker(void *p)
{
	struct gc_arg *a = p;
	struct store *st = NULL;
	struct hsmca_err e = { 0 };
	unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	char serial[SERIAL_HEX_MAX];
	int64_t id;

	if (store_open(a->path, &st, &e) != 0) {
		a->failures++;
		return NULL;
	}
	store_set_group(st, a->g);
	for (int i = 0; i < GC_PER_THREAD; i++) {
		struct store_cert c;

		snprintf(serial, sizeof(serial), "%02x%06x", a->idx + 1, i + 1);
		if (store_reserve_serial(st, a->issuer, 0, serial, "device", "t",
		    NULL, T0, &id, &e) != 0) {
			a->failures++;
			continue;
		}
		memset(&c, 0, sizeof(c));
		c.id = id;
		c.subject = (char *)"CN=dev";
		c.not_before = T0;
		c.not_after = T0 + DAY;
		c.der = der;
		c.der_len = sizeof(der);
		if (store_complete_cert(st, &c, &e) != 0)
			a->failures++;
		/* A write that fails inside a batch fails alone. */
		if (i % 50 == 0 && store_reserve_serial(st, a->issuer, 0, serial,
		    "device", "t", NULL, T0, &id, &e) == HSMCA_ERR_EXISTS)
			a->dup_refused++;
	}
	store_close(st);
	return NULL;
}

static void
test_group_commit(void **state)
{
	struct fixture *fx = *state;
	struct store_group *g = NULL;
	struct hsmca_err e = { 0 };
	struct gc_arg args[GC_THREADS];
	pthread_t th[GC_THREADS];
	struct store_cert_filter f;
	uint64_t commits = 0, writes = 0;
	int64_t issuer, n = 0;
	char *check;

	issuer = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gc");
	assert_int_equal(store_group_open(fx->path, &g, &e), 0);
	for (int i = 0; i < GC_THREADS; i++) {
		args[i] = (struct gc_arg){ fx->path, g, issuer, i, 0, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, gc_worker,
		    &args[i]), 0);
	}
	for (int i = 0; i < GC_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].failures, 0);
		assert_int_equal(args[i].dup_refused, GC_PER_THREAD / 50);
	}
	store_group_stats(g, &commits, &writes);
	store_group_close(g);
	/* 2 writes per certificate plus the refused duplicates. */
	assert_int_equal(writes, GC_THREADS * (2 * GC_PER_THREAD +
	    GC_PER_THREAD / 50));
	/* Commits were shared: fewer transactions than writes. */
	assert_true(commits < writes);
	/* Every certificate is there and valid, seen by another handle. */
	memset(&f, 0, sizeof(f));
	f.status = STORE_CERT_VALID;
	f.expired = -1;
	f.issuer_id = issuer;
	assert_int_equal(store_count_certs(fx->st, &f, &n, &e), 0);
	assert_int_equal(n, GC_THREADS * GC_PER_THREAD);
	check = sql_text(fx->path, "SELECT count(*) FROM cert WHERE status != 'valid'");
	assert_string_equal(check, "0");
	free(check);
}


/* Another connection holds the write lock for a while: a write waits for
 * it (the busy handler) instead of failing. */
struct lock_holder {
	const char	*path;
	int		 locked;
};

static void *
hold_lock(void *p)
{
	struct lock_holder *h = p;
	sqlite3 *db = NULL;

	if (sqlite3_open(h->path, &db) == SQLITE_OK &&
	    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
		__atomic_store_n(&h->locked, 1, __ATOMIC_SEQ_CST);
		usleep(200 * 1000);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	} else
		__atomic_store_n(&h->locked, -1, __ATOMIC_SEQ_CST);
	sqlite3_close(db);
	return NULL;
}

static void
test_busy_waits(void **state)
{
	struct fixture *fx = *state;
	struct lock_holder h = { fx->path, 0 };
	struct hsmca_err e = { 0 };
	pthread_t th;
	int64_t issuer, id;

	issuer = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "busy");
	assert_int_equal(pthread_create(&th, NULL, hold_lock, &h), 0);
	while (__atomic_load_n(&h.locked, __ATOMIC_SEQ_CST) == 0)
		usleep(1000);
	assert_int_equal(h.locked, 1);
	assert_int_equal(store_reserve_serial(fx->st, issuer, 0, "0badc0de",
	    "device", "t", NULL, T0, &id, &e), 0);
	pthread_join(th, NULL);
}

static void
test_integrity_check(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	int64_t gid;

	assert_int_equal(store_integrity_check(fx->st, &e), 0);
	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	cert_add(fx->st, gid, "01", "device", T0 + DAY);
	assert_int_equal(store_integrity_check(fx->st, &e), 0);
}

/* ---- revocation ---- */

/* The state of one certificate, for short assertions. */
static void
cert_expect(struct store *st, int64_t gen, const char *serial,
    enum store_cert_status status, int reason, time_t revoked_at)
{
	struct store_cert c;
	struct hsmca_err e = { 0 };

	assert_int_equal(store_get_cert(st, gen, serial, &c, &e), 0);
	assert_int_equal(c.status, status);
	assert_int_equal(c.revoke_reason, reason);
	assert_int_equal(c.revoked_at, revoked_at);
	store_cert_free_fields(&c);
}

/* The revocation version of an issuer moves with every change of what
 * its CRL lists, and with nothing else. */
static void
test_revocation_version(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct store_generation g;
	int64_t root, g1, v, last;

	root = gen_add(fx->st, STORE_GEN_ROOT, STORE_GEN_ACTIVE, "root");
	gen_make(&g, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "g1");
	g.parent_id = root;
	assert_int_equal(store_insert_generation(fx->st, &g, &e), 0);
	g1 = g.id;
	store_generation_free_fields(&g);
	assert_int_equal(store_revocation_version(fx->st, g1, &v, &e), 0);
	assert_int_equal(v, 0);

	/* Issuance: no change. */
	cert_add(fx->st, g1, "0a01", "device", T0 + 365 * DAY);
	cert_add(fx->st, g1, "0a02", "device", T0 + 365 * DAY);
	assert_int_equal(store_revocation_version(fx->st, g1, &v, &e), 0);
	assert_int_equal(v, 0);

	/* Revoked, held, held for good, released: each one change. */
	assert_int_equal(store_revoke_cert(fx->st, g1, "0a01", 6, T0, NULL,
	    &e), 0);
	assert_int_equal(store_revocation_version(fx->st, g1, &last, &e), 0);
	assert_true(last > 0);
	assert_int_equal(store_revoke_cert(fx->st, g1, "0a01", 1, T0 + DAY,
	    NULL, &e), 0);
	assert_int_equal(store_revocation_version(fx->st, g1, &v, &e), 0);
	assert_true(v > last);
	last = v;
	/* Revoking it again changes nothing. */
	assert_int_equal(store_revoke_cert(fx->st, g1, "0a01", 1, T0 + DAY,
	    NULL, &e), 0);
	assert_int_equal(store_revocation_version(fx->st, g1, &v, &e), 0);
	assert_int_equal(v, last);
	assert_int_equal(store_revoke_cert(fx->st, g1, "0a02", 6, T0, NULL,
	    &e), 0);
	assert_int_equal(store_unhold_cert(fx->st, g1, "0a02", &e), 0);
	assert_int_equal(store_revocation_version(fx->st, g1, &v, &e), 0);
	assert_true(v >= last + 2);
	/* The root's did not move... */
	assert_int_equal(store_revocation_version(fx->st, root, &v, &e), 0);
	assert_int_equal(v, 0);

	/* ...until a generation it certified is revoked. */
	assert_int_equal(store_get_generation(fx->st, g1, &g, &e), 0);
	g.status = STORE_GEN_REVOKED;
	g.revoked_at = T0 + DAY;
	assert_int_equal(store_update_generation(fx->st, &g, &e), 0);
	store_generation_free_fields(&g);
	assert_int_equal(store_revocation_version(fx->st, root, &v, &e), 0);
	assert_int_equal(v, 1);
}

static void
test_revoke_cert(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	int64_t g1, g2;
	int already = -1;

	g1 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "g1");
	g2 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "g2");
	cert_add(fx->st, g1, "0a01", "device", T0 + 365 * DAY);
	cert_add(fx->st, g1, "0a02", "device", T0 + 365 * DAY);
	cert_add(fx->st, g2, "0b01", "device", T0 + 365 * DAY);

	/* valid -> revoked, with reason and time. */
	assert_int_equal(store_revoke_cert(fx->st, g1, "0a01", 1, T0 + DAY,
	    &already, &e), 0);
	assert_int_equal(already, 0);
	cert_expect(fx->st, g1, "0a01", STORE_CERT_REVOKED, 1, T0 + DAY);

	/* Again, even with another reason: nothing changes. */
	assert_int_equal(store_revoke_cert(fx->st, g1, "0a01", 4, T0 + 2 * DAY,
	    &already, &e), 0);
	assert_int_equal(already, 1);
	cert_expect(fx->st, g1, "0a01", STORE_CERT_REVOKED, 1, T0 + DAY);
	assert_int_equal(store_revoke_cert(fx->st, g1, "0a01", 1, T0 + 2 * DAY,
	    NULL, &e), 0);

	/* Without the issuer: the one generation that issued it. */
	assert_int_equal(store_revoke_cert(fx->st, 0, "0a02", 0, T0 + DAY,
	    &already, &e), 0);
	assert_int_equal(already, 0);
	cert_expect(fx->st, g1, "0a02", STORE_CERT_REVOKED, 0, T0 + DAY);
	cert_expect(fx->st, g2, "0b01", STORE_CERT_VALID, -1, 0);

	/* Unknown serial. */
	err_clear(&e);
	assert_int_equal(store_revoke_cert(fx->st, g1, "0c01", 1, T0, &already,
	    &e), HSMCA_ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "0c01"));
	assert_int_equal(store_revoke_cert(fx->st, 0, "0c01", 1, T0, &already,
	    &e), HSMCA_ERR_NOT_FOUND);
	assert_int_equal(store_revoke_cert(fx->st, 999, "0a01", 1, T0,
	    &already, &e), HSMCA_ERR_NOT_FOUND);
	/* Another issuer's serial: NOT_FOUND, naming the one that issued it. */
	err_clear(&e);
	assert_int_equal(store_revoke_cert(fx->st, g1, "0b01", 1, T0, &already,
	    &e), HSMCA_ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "not issued by CA generation 1"));
	assert_non_null(strstr(e.msg, "generation 2 issued it"));
	cert_expect(fx->st, g2, "0b01", STORE_CERT_VALID, -1, 0);

	/* Ambiguous without the issuer. */
	cert_add(fx->st, g2, "0a02", "device", T0 + 365 * DAY);
	err_clear(&e);
	assert_int_equal(store_revoke_cert(fx->st, 0, "0a02", 1, T0, &already,
	    &e), HSMCA_ERR_EXISTS);
	assert_non_null(strstr(e.msg, "ambiguous"));
	cert_expect(fx->st, g2, "0a02", STORE_CERT_VALID, -1, 0);

	/* A reserved serial was never issued. */
	assert_int_equal(store_reserve_serial(fx->st, g1, 0, "0d01", NULL, NULL,
	    NULL, T0, NULL, &e), 0);
	err_clear(&e);
	assert_int_equal(store_revoke_cert(fx->st, g1, "0d01", 1, T0, &already,
	    &e), HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "never issued"));

	/* Arguments. */
	assert_int_equal(store_revoke_cert(fx->st, g2, "0b01", 7, T0, &already,
	    &e), HSMCA_ERR_ARG);
	assert_int_equal(store_revoke_cert(fx->st, g2, "0b01", 8, T0, &already,
	    &e), HSMCA_ERR_ARG);
	assert_int_equal(store_revoke_cert(fx->st, g2, "0b01", 11, T0,
	    &already, &e), HSMCA_ERR_ARG);
	assert_int_equal(store_revoke_cert(fx->st, g2, "0b01", -1, T0,
	    &already, &e), HSMCA_ERR_ARG);
	assert_int_equal(store_revoke_cert(fx->st, g2, "0b01", 1, 0, &already,
	    &e), HSMCA_ERR_ARG);
	assert_int_equal(store_revoke_cert(fx->st, g2, "0B01", 1, T0,
	    &already, &e), HSMCA_ERR_ARG);
	assert_int_equal(store_revoke_cert(fx->st, g2, NULL, 1, T0, &already,
	    &e), HSMCA_ERR_ARG);
	cert_expect(fx->st, g2, "0b01", STORE_CERT_VALID, -1, 0);
	/* Every reason a certificate can be revoked with. */
	for (int r = 0; r <= STORE_REASON_MAX; r++) {
		char serial[8];

		if (r == 7 || r == 8)
			continue;
		snprintf(serial, sizeof(serial), "0e%02x", r);
		cert_add(fx->st, g2, serial, "device", T0 + 365 * DAY);
		assert_int_equal(store_revoke_cert(fx->st, g2, serial, r, T0,
		    &already, &e), 0);
		cert_expect(fx->st, g2, serial, STORE_CERT_REVOKED, r, T0);
	}
}

static void
test_hold_unhold(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	int64_t gid;
	int already = -1;

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	cert_add(fx->st, gid, "01", "device", T0 + 365 * DAY);
	cert_add(fx->st, gid, "02", "device", T0 + 365 * DAY);

	assert_int_equal(store_revoke_cert(fx->st, gid, "01",
	    STORE_REASON_HOLD, T0 + DAY, &already, &e), 0);
	cert_expect(fx->st, gid, "01", STORE_CERT_REVOKED, STORE_REASON_HOLD,
	    T0 + DAY);
	/* On hold twice: already. */
	assert_int_equal(store_revoke_cert(fx->st, gid, "01",
	    STORE_REASON_HOLD, T0 + 2 * DAY, &already, &e), 0);
	assert_int_equal(already, 1);
	cert_expect(fx->st, gid, "01", STORE_CERT_REVOKED, STORE_REASON_HOLD,
	    T0 + DAY);
	/* Lifted: valid again, no trace of the revocation. */
	assert_int_equal(store_unhold_cert(fx->st, gid, "01", &e), 0);
	cert_expect(fx->st, gid, "01", STORE_CERT_VALID, -1, 0);
	err_clear(&e);
	assert_int_equal(store_unhold_cert(fx->st, gid, "01", &e),
	    HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "not on hold"));

	/* A hold made permanent by another reason is no longer "already". */
	assert_int_equal(store_revoke_cert(fx->st, 0, "01", STORE_REASON_HOLD,
	    T0 + 3 * DAY, &already, &e), 0);
	assert_int_equal(store_revoke_cert(fx->st, gid, "01", 1, T0 + 4 * DAY,
	    &already, &e), 0);
	assert_int_equal(already, 0);
	cert_expect(fx->st, gid, "01", STORE_CERT_REVOKED, 1, T0 + 4 * DAY);
	err_clear(&e);
	assert_int_equal(store_unhold_cert(fx->st, 0, "01", &e),
	    HSMCA_ERR_CA_STATE);
	assert_non_null(strstr(e.msg, "for good"));
	cert_expect(fx->st, gid, "01", STORE_CERT_REVOKED, 1, T0 + 4 * DAY);

	/* Only from hold: a revoked one stays, unknown ones are not found. */
	assert_int_equal(store_revoke_cert(fx->st, gid, "02", 4, T0, &already,
	    &e), 0);
	assert_int_equal(store_unhold_cert(fx->st, gid, "02", &e),
	    HSMCA_ERR_CA_STATE);
	assert_int_equal(store_unhold_cert(fx->st, gid, "03", &e),
	    HSMCA_ERR_NOT_FOUND);
	assert_int_equal(store_unhold_cert(fx->st, gid + 1, "02", &e),
	    HSMCA_ERR_NOT_FOUND);
	assert_int_equal(store_unhold_cert(fx->st, gid, "x", &e),
	    HSMCA_ERR_ARG);
}

/* Count the commits of the store's own connection. */
static int
count_commit(void *arg)
{
	(*(int *)arg)++;
	return 0;
}

/* Reopen fx->st, catching its connection to count its commits. */
static void
reopen_counting(struct fixture *fx, int *commits)
{
	struct hsmca_err e = { 0 };

	store_close(fx->st);
	fx->st = NULL;
	last_db = NULL;
	assert_int_equal(sqlite3_auto_extension((void (*)(void))capture_db),
	    SQLITE_OK);
	assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	sqlite3_reset_auto_extension();
	assert_non_null(last_db);
	*commits = 0;
	sqlite3_commit_hook(last_db, count_commit, commits);
}

static void
test_revoke_serials(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	const char *list[] = { "01", "02", "03" };
	const char *bad[] = { "04", "05", "0999" };
	const char *malformed[] = { "04", "0X" };
	size_t revoked = 99, already = 99;
	int64_t gid, other;
	int commits;

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	other = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "other");
	for (int i = 1; i <= 5; i++) {
		char serial[4];

		snprintf(serial, sizeof(serial), "%02x", i);
		cert_add(fx->st, gid, serial, "device", T0 + 365 * DAY);
	}
	cert_add(fx->st, other, "0999", "device", T0 + 365 * DAY);
	assert_int_equal(store_revoke_cert(fx->st, gid, "02", 1, T0, NULL, &e),
	    0);

	reopen_counting(fx, &commits);
	assert_int_equal(store_revoke_serials(fx->st, gid, list, 3, 5,
	    T0 + DAY, &revoked, &already, &e), 0);
	assert_int_equal(revoked, 2);
	assert_int_equal(already, 1);
	assert_int_equal(commits, 1);		/* one transaction */
	cert_expect(fx->st, gid, "01", STORE_CERT_REVOKED, 5, T0 + DAY);
	cert_expect(fx->st, gid, "02", STORE_CERT_REVOKED, 1, T0);
	cert_expect(fx->st, gid, "03", STORE_CERT_REVOKED, 5, T0 + DAY);

	/* All or nothing: the last serial is another issuer's. */
	commits = 0;
	err_clear(&e);
	assert_int_equal(store_revoke_serials(fx->st, gid, bad, 3, 1, T0,
	    &revoked, &already, &e), HSMCA_ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "0999"));
	assert_int_equal(revoked, 0);
	assert_int_equal(commits, 0);
	cert_expect(fx->st, gid, "04", STORE_CERT_VALID, -1, 0);
	cert_expect(fx->st, gid, "05", STORE_CERT_VALID, -1, 0);
	/* A malformed serial is refused before anything is written. */
	err_clear(&e);
	assert_int_equal(store_revoke_serials(fx->st, gid, malformed, 2, 1, T0,
	    &revoked, &already, &e), HSMCA_ERR_ARG);
	assert_non_null(strstr(e.msg, "serial 2"));
	cert_expect(fx->st, gid, "04", STORE_CERT_VALID, -1, 0);
	assert_int_equal(store_revoke_serials(fx->st, gid, list, 3, 8, T0,
	    &revoked, &already, &e), HSMCA_ERR_ARG);

	/* Inside the caller's transaction, undone with it. */
	assert_int_equal(store_begin(fx->st, &e), 0);
	assert_int_equal(store_revoke_serials(fx->st, 0, bad, 2, 1, T0,
	    &revoked, &already, &e), 0);
	assert_int_equal(revoked, 2);
	store_rollback(fx->st);
	cert_expect(fx->st, gid, "04", STORE_CERT_VALID, -1, 0);
	/* Without an issuer, and an empty list. */
	assert_int_equal(store_revoke_serials(fx->st, 0, bad, 3, 1, T0,
	    &revoked, &already, &e), 0);
	assert_int_equal(revoked, 3);
	cert_expect(fx->st, other, "0999", STORE_CERT_REVOKED, 1, T0);
	assert_int_equal(store_revoke_serials(fx->st, gid, NULL, 0, 1, T0,
	    &revoked, &already, &e), 0);
	assert_int_equal(revoked, 0);
}

static void
test_revoke_issuer(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	size_t revoked = 99, already = 99;
	int64_t gid, other;
	int commits;

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	other = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "other");
	for (int i = 1; i <= 6; i++) {
		char serial[4];

		snprintf(serial, sizeof(serial), "%02x", i);
		cert_add(fx->st, gid, serial, "device", T0 + 365 * DAY);
		cert_add(fx->st, other, serial, "device", T0 + 365 * DAY);
	}
	assert_int_equal(store_reserve_serial(fx->st, gid, 0, "07", NULL, NULL,
	    NULL, T0, NULL, &e), 0);
	assert_int_equal(store_revoke_cert(fx->st, gid, "01", 1, T0, NULL, &e),
	    0);
	assert_int_equal(store_revoke_cert(fx->st, gid, "02",
	    STORE_REASON_HOLD, T0, NULL, &e), 0);

	reopen_counting(fx, &commits);
	assert_int_equal(store_revoke_issuer(fx->st, gid, 2, T0 + DAY,
	    &revoked, &already, &e), 0);
	assert_int_equal(commits, 1);
	assert_int_equal(revoked, 5);		/* 4 valid, 1 held */
	assert_int_equal(already, 1);
	cert_expect(fx->st, gid, "01", STORE_CERT_REVOKED, 1, T0);
	cert_expect(fx->st, gid, "02", STORE_CERT_REVOKED, 2, T0 + DAY);
	cert_expect(fx->st, gid, "06", STORE_CERT_REVOKED, 2, T0 + DAY);
	cert_expect(fx->st, other, "03", STORE_CERT_VALID, -1, 0);
	{
		struct store_cert c;

		assert_int_equal(store_get_cert(fx->st, gid, "07", &c, &e), 0);
		assert_int_equal(c.status, STORE_CERT_RESERVED);
		store_cert_free_fields(&c);
	}
	/* Again: nothing left to revoke. */
	assert_int_equal(store_revoke_issuer(fx->st, gid, 2, T0 + 2 * DAY,
	    &revoked, &already, &e), 0);
	assert_int_equal(revoked, 0);
	assert_int_equal(already, 6);
	/* A held certificate stays held when the bulk reason is a hold. */
	assert_int_equal(store_revoke_cert(fx->st, other, "01",
	    STORE_REASON_HOLD, T0, NULL, &e), 0);
	assert_int_equal(store_revoke_issuer(fx->st, other, STORE_REASON_HOLD,
	    T0 + DAY, &revoked, &already, &e), 0);
	assert_int_equal(revoked, 5);
	assert_int_equal(already, 1);
	cert_expect(fx->st, other, "01", STORE_CERT_REVOKED, STORE_REASON_HOLD,
	    T0);

	err_clear(&e);
	assert_int_equal(store_revoke_issuer(fx->st, 999, 2, T0, &revoked,
	    &already, &e), HSMCA_ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "999"));
	assert_int_equal(store_revoke_issuer(fx->st, gid, 8, T0, &revoked,
	    &already, &e), HSMCA_ERR_ARG);
}

struct walk {
	char	serials[16][SERIAL_HEX_MAX];
	int	reasons[16];
	time_t	times[16];
	size_t	n;
	size_t	stop_at;
};

static int
walk_fn(void *arg, const struct store_revoked *r)
{
	struct walk *w = arg;

	if (w->n == w->stop_at)
		return 42;
	assert_true(w->n < 16);
	snprintf(w->serials[w->n], SERIAL_HEX_MAX, "%s", r->serial);
	w->reasons[w->n] = r->reason;
	w->times[w->n] = r->revoked_at;
	w->n++;
	return 0;
}

/* EXPLAIN QUERY PLAN of sql on a connection of our own, rows joined. */
static char *
query_plan(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	char q[1024], buf[2048] = "";
	size_t n = 0;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW && n < sizeof(buf))
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s | ",
		    (const char *)sqlite3_column_text(s, 3));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return strdup(buf);
}

static void
test_list_revoked(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct walk w;
	size_t count = 99;
	int64_t gid, other;
	char *plan;

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	other = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "other");
	cert_add(fx->st, gid, "0100", "device", T0 + 365 * DAY);
	cert_add(fx->st, gid, "ff", "device", T0 + 365 * DAY);
	cert_add(fx->st, gid, "7f", "device", T0 + 365 * DAY);
	cert_add(fx->st, gid, "0a0b0c", "device", T0 + 365 * DAY);
	cert_add(fx->st, gid, "01", "device", T0 + 365 * DAY);	/* valid */
	cert_add(fx->st, gid, "02", "device", T0 + 10 * DAY);	/* expires */
	cert_add(fx->st, other, "03", "device", T0 + 365 * DAY);
	assert_int_equal(store_revoke_cert(fx->st, gid, "0100", 1, T0 + 1, NULL,
	    &e), 0);
	assert_int_equal(store_revoke_cert(fx->st, gid, "ff", 0, T0 + 2, NULL,
	    &e), 0);
	assert_int_equal(store_revoke_cert(fx->st, gid, "7f", 6, T0 + 3, NULL,
	    &e), 0);
	assert_int_equal(store_revoke_cert(fx->st, gid, "0a0b0c", 4, T0 + 4,
	    NULL, &e), 0);
	assert_int_equal(store_revoke_cert(fx->st, gid, "02", 1, T0 + 5, NULL,
	    &e), 0);
	assert_int_equal(store_revoke_cert(fx->st, other, "03", 1, T0, NULL,
	    &e), 0);

	/* Before "02" expires: five, in numeric order of serial. */
	memset(&w, 0, sizeof(w));
	w.stop_at = 99;
	assert_int_equal(store_list_revoked(fx->st, gid, T0 + 10 * DAY,
	    walk_fn, &w, &count, &e), 0);
	assert_int_equal(count, 5);
	assert_int_equal(w.n, 5);
	assert_string_equal(w.serials[0], "02");
	assert_string_equal(w.serials[1], "7f");
	assert_string_equal(w.serials[2], "ff");
	assert_string_equal(w.serials[3], "0100");
	assert_string_equal(w.serials[4], "0a0b0c");
	assert_int_equal(w.reasons[1], 6);
	assert_int_equal(w.times[1], T0 + 3);
	assert_int_equal(w.reasons[2], 0);
	assert_int_equal(w.reasons[3], 1);
	/* After: kept until expiry, then gone. */
	memset(&w, 0, sizeof(w));
	w.stop_at = 99;
	assert_int_equal(store_list_revoked(fx->st, gid, T0 + 10 * DAY + 1,
	    walk_fn, &w, &count, &e), 0);
	assert_int_equal(count, 4);
	assert_string_equal(w.serials[0], "7f");
	/* The callback stops the walk. */
	memset(&w, 0, sizeof(w));
	w.stop_at = 2;
	assert_int_equal(store_list_revoked(fx->st, gid, T0, walk_fn, &w,
	    &count, &e), 42);
	assert_int_equal(w.n, 2);
	/* Nothing for a generation without revocations. */
	memset(&w, 0, sizeof(w));
	w.stop_at = 99;
	assert_int_equal(store_list_revoked(fx->st, 999, T0, walk_fn, &w,
	    &count, &e), 0);
	assert_int_equal(count, 0);

	/* The plans that keep revocation cheap at a million rows (the
	 * statements of lib/store.c): the CRL query is one covering index
	 * scan with no sort; revoking one is one lookup by (serial, issuer). */
	plan = query_plan(fx->path, "SELECT serial, revoked_at, revoke_reason,"
	    " not_after FROM cert INDEXED BY cert_revoked WHERE issuer_id = 1"
	    " AND status = 'revoked' AND not_after >= 0"
	    " ORDER BY length(serial), serial");
	assert_non_null(strstr(plan, "COVERING INDEX cert_revoked"));
	assert_null(strstr(plan, "TEMP B-TREE"));
	free(plan);
	plan = query_plan(fx->path, "UPDATE cert SET status = 'revoked',"
	    " revoked_at = ?3, revoke_reason = ?4 WHERE serial = ?2"
	    " AND issuer_id = ?1 AND (status = 'valid' OR (status = 'revoked'"
	    " AND revoke_reason = 6 AND ?4 != 6))");
	assert_non_null(strstr(plan, "(serial=? AND issuer_id=?)"));
	assert_null(strstr(plan, "SCAN"));
	free(plan);
}

static void
test_crl_number(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	int64_t g1, g2, n = -1;
	time_t tu = -1;

	g1 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "g1");
	g2 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "g2");
	assert_int_equal(store_crl_state(fx->st, g1, &n, &tu, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(tu, 0);
	for (int64_t i = 1; i <= 3; i++) {
		assert_int_equal(store_next_crl_number(fx->st, g1, T0 + i, &n,
		    &e), 0);
		assert_int_equal(n, i);
	}
	assert_int_equal(store_crl_state(fx->st, g1, &n, &tu, &e), 0);
	assert_int_equal(n, 3);
	assert_int_equal(tu, T0 + 3);
	/* Each generation counts on its own. */
	assert_int_equal(store_next_crl_number(fx->st, g2, T0, &n, &e), 0);
	assert_int_equal(n, 1);
	/* Durable across handles. */
	store_close(fx->st);
	assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	assert_int_equal(store_next_crl_number(fx->st, g1, T0 + 9, &n, &e), 0);
	assert_int_equal(n, 4);
	/* A rolled back number is taken again: the transaction decides. */
	assert_int_equal(store_begin(fx->st, &e), 0);
	assert_int_equal(store_next_crl_number(fx->st, g1, T0, &n, &e), 0);
	assert_int_equal(n, 5);
	store_rollback(fx->st);
	assert_int_equal(store_crl_state(fx->st, g1, &n, &tu, &e), 0);
	assert_int_equal(n, 4);

	err_clear(&e);
	assert_int_equal(store_next_crl_number(fx->st, 999, T0, &n, &e),
	    HSMCA_ERR_NOT_FOUND);
	assert_int_equal(n, 0);
	assert_non_null(strstr(e.msg, "999"));
}

static void
test_disallow(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct store_disallow *v = NULL;
	const char *fp =
	    "AB:CD:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:"
	    "EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD";
	const char *fp_norm =
	    "abcd00112233445566778899aabbccddeeff00112233445566778899aabbccdd";
	size_t n = 0;

	assert_int_equal(store_disallow_check(fx->st, "dev-1", &e), 0);
	assert_int_equal(store_disallow_add(fx->st, "dev-1", "stolen",
	    T0, &e), 0);
	assert_int_equal(store_disallow_add(fx->st, fp, NULL, T0 + 1, &e), 0);
	assert_int_equal(store_disallow_add(fx->st, "dev-0", "", T0 + 2, &e),
	    0);
	err_clear(&e);
	assert_int_equal(store_disallow_add(fx->st, "dev-1", NULL, T0, &e),
	    HSMCA_ERR_EXISTS);
	assert_non_null(strstr(e.msg, "already"));
	assert_int_equal(store_disallow_add(fx->st, fp_norm, NULL, T0, &e),
	    HSMCA_ERR_EXISTS);

	assert_int_equal(store_disallow_list(fx->st, &v, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].identity, fp_norm);
	assert_int_equal(v[0].kind, STORE_DISALLOW_FINGERPRINT);
	assert_null(v[0].note);
	assert_int_equal(v[0].added_at, T0 + 1);
	assert_string_equal(v[1].identity, "dev-0");
	assert_null(v[1].note);
	assert_string_equal(v[2].identity, "dev-1");
	assert_int_equal(v[2].kind, STORE_DISALLOW_CN);
	assert_string_equal(v[2].note, "stolen");
	store_disallow_free(v, n);

	/* Checks: a CN as it is, a fingerprint in any spelling. */
	err_clear(&e);
	assert_int_equal(store_disallow_check(fx->st, "dev-1", &e),
	    HSMCA_ERR_POLICY);
	assert_non_null(strstr(e.msg, "dev-1"));
	assert_non_null(strstr(e.msg, "stolen"));
	assert_int_equal(store_disallow_check(fx->st, "DEV-1", &e), 0);
	assert_int_equal(store_disallow_check(fx->st, fp_norm, &e),
	    HSMCA_ERR_POLICY);
	assert_int_equal(store_disallow_check(fx->st, fp, NULL),
	    HSMCA_ERR_POLICY);
	assert_int_equal(store_disallow_check(fx->st, "dev-2", &e), 0);

	assert_int_equal(store_disallow_remove(fx->st, fp, &e), 0);
	assert_int_equal(store_disallow_check(fx->st, fp_norm, &e), 0);
	err_clear(&e);
	assert_int_equal(store_disallow_remove(fx->st, fp, &e),
	    HSMCA_ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "not on the disallow list"));
	assert_int_equal(store_disallow_remove(fx->st, "dev-9", &e),
	    HSMCA_ERR_NOT_FOUND);

	assert_int_equal(store_disallow_add(fx->st, "", NULL, T0, &e),
	    HSMCA_ERR_ARG);
	assert_int_equal(store_disallow_add(fx->st, NULL, NULL, T0, &e),
	    HSMCA_ERR_ARG);
	assert_int_equal(store_disallow_add(fx->st, "a\nb", NULL, T0, &e),
	    HSMCA_ERR_ARG);
	assert_int_equal(store_disallow_check(fx->st, "", &e), HSMCA_ERR_ARG);
	assert_string_equal(store_disallow_kind_name(STORE_DISALLOW_CN), "cn");
	assert_string_equal(store_disallow_kind_name(
	    STORE_DISALLOW_FINGERPRINT), "fingerprint");
	assert_string_equal(store_disallow_kind_name(STORE_DISALLOW_KIND_MAX),
	    "unknown");
	store_disallow_free(NULL, 0);
}

/* A store as schema version 1 left it (migration 0 -> 1 only), with a
 * certificate an older hsmca revoked by hand: opening it upgrades it. */
static void
test_migrate_from_v1(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct walk w;
	sqlite3 *db = NULL;
	int64_t gid, n;
	size_t count;
	char *v;

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	cert_add(fx->st, gid, "01", "device", T0 + 365 * DAY);
	cert_add(fx->st, gid, "02", "device", T0 + 365 * DAY);
	store_close(fx->st);
	fx->st = NULL;
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP INDEX cert_revoked;"
	    " DROP TABLE crl_state; DROP TABLE disallow; DROP TABLE audit;"
	    " DROP TABLE audit_checkpoint; DROP TABLE batch;"
	    " DROP TABLE ocsp_responder; DROP TABLE cert_change;"
	    " DROP TRIGGER cert_change_status;"
	    " DROP TABLE revocation_version;"
	    " DROP TRIGGER cert_revocation_version;"
	    " DROP TRIGGER generation_revocation_version;"
	    " DROP INDEX cert_batch_reserved; DROP INDEX cert_reserved;"
	    " DROP TABLE ocsp_key_intent;"
	    " ALTER TABLE cert DROP COLUMN batch_id;"
	    " UPDATE cert SET status = 'revoked', revoked_at = 1767225601,"
	    " revoke_reason = 1 WHERE serial = '01';"
	    " UPDATE cert SET requester = 'cli:root batch:12' WHERE"
	    " serial = '02';"
	    " PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	v = sql_text(fx->path, "SELECT count(*) FROM sqlite_master WHERE name"
	    " IN ('cert_revoked', 'crl_state', 'disallow')");
	assert_string_equal(v, "0");
	free(v);

	assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	assert_int_equal(store_schema_version(fx->st), STORE_SCHEMA_VERSION);
	v = sql_text(fx->path, "SELECT count(*) FROM sqlite_master WHERE name"
	    " IN ('cert_revoked', 'crl_state', 'disallow')");
	assert_string_equal(v, "3");
	free(v);
	/* A batch's certificate is marked with its batch, from the
	 * requester it was recorded with. */
	v = sql_text(fx->path, "SELECT group_concat(serial || ':' ||"
	    " coalesce(batch_id, '-'), ',') FROM (SELECT serial, batch_id"
	    " FROM cert ORDER BY serial)");
	assert_string_equal(v, "01:-,02:12");
	free(v);
	/* The old revocation is in the new index; new ones work. */
	memset(&w, 0, sizeof(w));
	w.stop_at = 99;
	assert_int_equal(store_list_revoked(fx->st, gid, T0, walk_fn, &w,
	    &count, &e), 0);
	assert_int_equal(count, 1);
	assert_string_equal(w.serials[0], "01");
	assert_int_equal(store_revoke_cert(fx->st, gid, "02", 4, T0, NULL, &e),
	    0);
	assert_int_equal(store_next_crl_number(fx->st, gid, T0, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_disallow_add(fx->st, "dev", NULL, T0, &e), 0);
	assert_int_equal(store_integrity_check(fx->st, &e), 0);
}

/* A store as schema version 8 left it, with a reservation an older
 * hsmcad never swept: opening it adds the index of the reservations,
 * and the sweep finds it. */
static void
test_migrate_from_v8(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct store_cert *v = NULL;
	sqlite3 *db = NULL;
	int64_t gid, id;
	size_t n = 0;
	char *s;

	gid = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen");
	cert_add(fx->st, gid, "01", "device", T0 + 365 * DAY);
	assert_int_equal(store_reserve_serial(fx->st, gid, 1, "02", "device",
	    "est:CN=dev", NULL, T0 - 5 * DAY, &id, &e), 0);
	store_close(fx->st);
	fx->st = NULL;
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP INDEX cert_reserved;"
	    " DROP TABLE ocsp_key_intent;"
	    " PRAGMA user_version = 8;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	assert_int_equal(store_schema_version(fx->st), STORE_SCHEMA_VERSION);
	s = sql_text(fx->path, "SELECT sql FROM sqlite_master WHERE name ="
	    " 'cert_reserved'");
	assert_non_null(s);
	assert_non_null(strstr(s, "WHERE status = 'reserved'"));
	free(s);
	assert_int_equal(store_fail_reserved_before(fx->st, T0 - DAY, 10, &v,
	    &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].id, id);
	store_certs_free(v, n);
	assert_int_equal(cert_status(fx->st, gid, "01"), STORE_CERT_VALID);
	assert_int_equal(store_integrity_check(fx->st, &e), 0);
}

static void
test_names(void **state)
{
	enum store_gen_status gs;
	enum store_cert_status cs;

	assert_string_equal(store_gen_kind_name(STORE_GEN_ROOT), "root");
	assert_string_equal(store_gen_kind_name(STORE_GEN_ISSUING), "issuing");
	for (int i = 0; i < STORE_GEN_STATUS_MAX; i++) {
		assert_int_equal(store_gen_status_parse(
		    store_gen_status_name((enum store_gen_status)i), &gs), 0);
		assert_int_equal(gs, i);
	}
	for (int i = 0; i < STORE_CERT_STATUS_MAX; i++) {
		assert_int_equal(store_cert_status_parse(
		    store_cert_status_name((enum store_cert_status)i), &cs), 0);
		assert_int_equal(cs, i);
	}
	assert_string_equal(store_gen_status_name(STORE_GEN_INACTIVE),
	    "inactive");
	assert_string_equal(store_cert_status_name(STORE_CERT_FAILED),
	    "failed");
	assert_int_equal(store_gen_status_parse("ACTIVE", &gs), 0);
	assert_int_equal(gs, STORE_GEN_ACTIVE);
	assert_true(store_gen_status_parse("retired", &gs) < 0);
	assert_true(store_cert_status_parse("", &cs) < 0);
	assert_true(store_cert_status_parse(NULL, &cs) < 0);
	assert_string_equal(store_cert_status_name(STORE_CERT_STATUS_MAX),
	    "unknown");
}

static void
test_free_zeroed(void **state)
{
	struct store_generation g;
	struct store_cert c;

	memset(&g, 0, sizeof(g));
	memset(&c, 0, sizeof(c));
	store_generation_free_fields(&g);
	store_generation_free_fields(&g);
	store_generation_free_fields(NULL);
	store_cert_free_fields(&c);
	store_cert_free_fields(NULL);
	store_generations_free(NULL, 0);
	store_certs_free(NULL, 0);
	store_close(NULL);
	store_rollback(NULL);
	assert_int_equal(store_schema_version(NULL), -1);
}

static void
responder_add(struct store *st, int64_t issuer, const char *serial,
    const char *uri, time_t not_after)
{
	struct store_ocsp_responder r;
	struct hsmca_err e = { 0 };
	unsigned char der[] = { 0x30, 0x00 };

	memset(&r, 0, sizeof(r));
	r.issuer_id = issuer;
	snprintf(r.serial, sizeof(r.serial), "%s", serial);
	r.key_uri = (char *)(uintptr_t)uri;
	r.cert_der = der;
	r.cert_der_len = sizeof(der);
	r.not_after = not_after;
	r.created_at = T0;
	assert_int_equal(store_ocsp_responder_add(st, &r, &e), 0);
}

/* The responder keys nothing needs: every certificate of the key, and
 * its generation, ended before the time asked; never a key that a
 * generation names, nor one another generation still uses. */
static void
test_ocsp_responder_keys_ended(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	const char *k1 = "pkcs11:token=hsmca;id=%01;object=ocsp-gen1";
	const char *k2 = "pkcs11:token=hsmca;id=%02;object=ocsp-gen2";
	time_t end = T0 + 730 * DAY;	/* gen_add's generations end then */
	int64_t g1, g2;
	char **v = NULL, *t, sql[160];
	size_t n = 9;

	g1 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "g1");
	g2 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "g2");
	assert_int_equal(store_ocsp_responder_keys_ended(fx->st, g1, end + 1,
	    &v, &n, &e), 0);
	assert_int_equal(n, 0);
	assert_null(v);

	responder_add(fx->st, g1, "01", k1, T0 + 30 * DAY);
	responder_add(fx->st, g1, "02", k1, end);	/* renewed: same key */
	responder_add(fx->st, g2, "03", k2, end - DAY);
	/* The generations' own key, by name. */
	responder_add(fx->st, g2, "04", "pkcs11:token=hsmca;object=ca",
	    end - DAY);

	/* Not before the last certificate of the key ended. */
	assert_int_equal(store_ocsp_responder_keys_ended(fx->st, g1, end,
	    &v, &n, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_ocsp_responder_keys_ended(fx->st, g1, end + 1,
	    &v, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0], k1);
	store_key_uris_free(v, n);
	/* The CA key is never listed. */
	assert_int_equal(store_ocsp_responder_keys_ended(fx->st, g2, end + 1,
	    &v, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0], k2);
	store_key_uris_free(v, n);

	/* Not while its generation has not ended, whatever its
	 * certificates. */
	snprintf(sql, sizeof(sql), "UPDATE ca_generation SET not_after = %lld"
	    " WHERE id = %lld", (long long)(end + 10 * DAY), (long long)g2);
	t = sql_text(fx->path, sql);
	free(t);
	assert_int_equal(store_ocsp_responder_keys_ended(fx->st, g2, end + 1,
	    &v, &n, &e), 0);
	assert_int_equal(n, 0);
	/* Nor while another generation's certificate for it has not. */
	responder_add(fx->st, g2, "05", k1, end + 5 * DAY);
	assert_int_equal(store_ocsp_responder_keys_ended(fx->st, g1, end + 1,
	    &v, &n, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_ocsp_responder_keys_ended(fx->st, g1,
	    end + 11 * DAY, &v, &n, &e), 0);
	assert_int_equal(n, 1);
	store_key_uris_free(v, n);
}

/* A store as schema version 9 left it, with a responder recorded:
 * opening it adds the table of the responder keys being made. An
 * intent is listed until the responder of its key is recorded, which
 * closes it in the same transaction, or it is closed by hand. */
static void
test_migrate_from_v9_key_intents(void **state)
{
	struct fixture *fx = *state;
	struct hsmca_err e = { 0 };
	struct store_ocsp_key_intent *v = NULL;
	sqlite3 *db = NULL;
	const char *k1 = "pkcs11:token=t;id=%01;object=ocsp-gen1;type=private";
	const char *k2 = "pkcs11:token=t;id=%02;object=ocsp-gen1;type=private";
	const char *k3 = "pkcs11:token=t;id=%03;object=ocsp-gen2;type=private";
	int64_t g1, g2;
	size_t n = 0;
	int named;
	char *s;

	g1 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_ACTIVE, "gen1");
	g2 = gen_add(fx->st, STORE_GEN_ISSUING, STORE_GEN_INACTIVE, "gen2");
	responder_add(fx->st, g1, "01", k1, T0 + 30 * DAY);
	store_close(fx->st);
	fx->st = NULL;
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE ocsp_key_intent;"
	    " PRAGMA user_version = 9;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(store_open(fx->path, &fx->st, &e), 0);
	assert_int_equal(store_schema_version(fx->st), STORE_SCHEMA_VERSION);
	s = sql_text(fx->path, "SELECT count(*) FROM ocsp_key_intent");
	assert_string_equal(s, "0");
	free(s);
	assert_int_equal(store_ocsp_key_intents(fx->st, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	store_ocsp_key_intents_free(v, n);

	/* Named: the recorded responder's key, not the others. */
	assert_int_equal(store_key_uri_named(fx->st, k1, &named, &e), 0);
	assert_int_equal(named, 1);
	assert_int_equal(store_key_uri_named(fx->st, k2, &named, &e), 0);
	assert_int_equal(named, 0);

	assert_int_equal(store_ocsp_key_intent_add(fx->st, g1, k2, T0, &e), 0);
	assert_int_equal(store_ocsp_key_intent_add(fx->st, g2, k3, T0 + 1,
	    &e), 0);
	/* One intent per key. */
	assert_int_equal(store_ocsp_key_intent_add(fx->st, g2, k3, T0 + 2,
	    &e), HSMCA_ERR_EXISTS);
	assert_int_equal(store_ocsp_key_intents(fx->st, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].issuer_id, g1);
	assert_string_equal(v[0].key_uri, k2);
	assert_int_equal(v[0].created_at, T0);
	assert_int_equal(v[1].issuer_id, g2);
	assert_string_equal(v[1].key_uri, k3);
	store_ocsp_key_intents_free(v, n);

	/* Recording k2's responder closes its intent. */
	responder_add(fx->st, g1, "02", k2, T0 + 60 * DAY);
	assert_int_equal(store_ocsp_key_intents(fx->st, &v, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].key_uri, k3);
	store_ocsp_key_intents_free(v, n);
	/* A responder the store refuses leaves the intent open. */
	assert_true(store_ocsp_responder_add(fx->st, &(struct
	    store_ocsp_responder){ .issuer_id = 999, .serial = "03",
	    .key_uri = (char *)(uintptr_t)k3, .cert_der = (unsigned char *)"0",
	    .cert_der_len = 1, .not_after = T0, .created_at = T0 }, &e) != 0);
	assert_int_equal(store_ocsp_key_intents(fx->st, &v, &n, &e), 0);
	assert_int_equal(n, 1);
	store_ocsp_key_intents_free(v, n);

	assert_int_equal(store_ocsp_key_intent_close(fx->st, k3, &e), 0);
	assert_int_equal(store_ocsp_key_intents(fx->st, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	store_ocsp_key_intents_free(v, n);
	assert_int_equal(store_integrity_check(fx->st, &e), 0);
}

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open_reopen_keeps_data),
		T(test_schema_version),
		T(test_newer_schema_refused),
		T(test_open_errors),
		cmocka_unit_test(test_memory_store),
		T(test_pragmas),
		T(test_generation_roundtrip),
		T(test_generation_update),
		T(test_find_generation),
		T(test_list_generations),
		T(test_active_generation),
		T(test_reserve_complete_get),
		T(test_duplicate_serial),
		T(test_reserve_device),
		T(test_reserve_batch),
		T(test_complete_refused),
		T(test_fail_cert),
		T(test_fail_reserved_before),
		T(test_list_filters),
		T(test_transactions),
		T(test_statements_reused),
		T(test_integrity_check),
		T(test_group_commit),
		T(test_busy_waits),
		T(test_revocation_version),
		T(test_revoke_cert),
		T(test_hold_unhold),
		T(test_revoke_serials),
		T(test_revoke_issuer),
		T(test_list_revoked),
		T(test_crl_number),
		T(test_disallow),
		T(test_ocsp_responder_keys_ended),
		T(test_migrate_from_v1),
		T(test_migrate_from_v8),
		T(test_migrate_from_v9_key_intents),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_free_zeroed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
