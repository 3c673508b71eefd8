/* store.c: CA generations and issued certificates in SQLite.
 *
 * One handle, one connection, one thread. Every statement is prepared the
 * first time it is needed and reused for the life of the handle; the
 * certificate filters get one cached statement per shape of filter, so each
 * shape keeps an index-friendly query plan. Messages name what failed and
 * SQLite's generic reason (sqlite3_errstr), never SQL text. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sqlite3.h>

#include "hsmca/clock.h"
#include "hsmca/store.h"

#define STORE_BUSY_TIMEOUT_MS	5000

/* Migration i takes user_version i to i + 1; all run in one transaction. */
static const char *const store_migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE ca_generation ("
	" id INTEGER PRIMARY KEY,"
	" kind TEXT NOT NULL CHECK (kind IN ('root', 'issuing')),"
	" parent_id INTEGER REFERENCES ca_generation(id),"
	" status TEXT NOT NULL CHECK (status IN"
	"  ('pending', 'active', 'inactive', 'revoked', 'expired')),"
	" subject TEXT NOT NULL,"
	" issuer TEXT,"
	" serial TEXT,"
	" not_before INTEGER,"
	" not_after INTEGER,"
	" sha1 TEXT UNIQUE,"
	" sha256 TEXT UNIQUE,"
	" key_uri TEXT,"
	" key_type TEXT,"
	" cert_der BLOB,"
	" chain_pem TEXT,"
	" csr_der BLOB,"
	" created_at INTEGER NOT NULL,"
	" activate_at INTEGER,"
	" revoked_at INTEGER,"
	" revoke_reason TEXT"
	");"
	/* UNIQUE (serial, issuer_id) rather than (issuer_id, serial): the same
	 * constraint, and its index also serves lookups by serial alone. */
	"CREATE TABLE cert ("
	" id INTEGER PRIMARY KEY,"
	" issuer_id INTEGER NOT NULL REFERENCES ca_generation(id),"
	" serial TEXT NOT NULL,"
	" status TEXT NOT NULL CHECK (status IN"
	"  ('reserved', 'valid', 'revoked', 'failed')),"
	" subject TEXT,"
	" sans TEXT,"
	" not_before INTEGER,"
	" not_after INTEGER,"
	" sha256 TEXT,"
	" profile TEXT,"
	" requester TEXT,"
	" csr_sha256 TEXT,"
	" der BLOB,"
	" created_at INTEGER NOT NULL,"
	" revoked_at INTEGER,"
	" revoke_reason INTEGER,"
	" UNIQUE (serial, issuer_id),"
	" CHECK (status IN ('reserved', 'failed') OR der IS NOT NULL)"
	");"
	"CREATE INDEX cert_issuer_status ON cert(issuer_id, status);"
	"CREATE INDEX cert_csr_sha256 ON cert(csr_sha256);"
	"CREATE INDEX cert_not_after ON cert(not_after);",
	/* 1 -> 2: revocation. cert_revoked holds only revoked rows, in the
	 * numeric order of their serials (canonical hex: shorter is smaller,
	 * then lexical), with every column a CRL needs: building a CRL is one
	 * covering index scan with no sort, and revoking a certificate adds
	 * one entry to it. Issuance never touches it. */
	"CREATE INDEX cert_revoked ON cert(issuer_id, status, length(serial),"
	" serial, not_after, revoked_at, revoke_reason)"
	" WHERE status = 'revoked';"
	"CREATE TABLE crl_state ("
	" issuer_id INTEGER PRIMARY KEY REFERENCES ca_generation(id),"
	" number INTEGER NOT NULL CHECK (number > 0),"
	" this_update INTEGER NOT NULL"
	");"
	"CREATE TABLE disallow ("
	" identity TEXT PRIMARY KEY,"
	" kind TEXT NOT NULL CHECK (kind IN ('cn', 'fingerprint')),"
	" added_at INTEGER NOT NULL,"
	" note TEXT"
	");",
	/* 2 -> 3: the audit log. lib/audit.c chains the rows (each hash
	 * covers the previous one) and checks the chain; the triggers only
	 * stop accidental edits, the chain is what detects deliberate ones. */
	"CREATE TABLE audit ("
	" id INTEGER PRIMARY KEY,"
	" at INTEGER NOT NULL,"
	" actor TEXT NOT NULL,"
	" action TEXT NOT NULL,"
	" object TEXT NOT NULL,"
	" outcome TEXT NOT NULL,"
	" detail TEXT NOT NULL,"
	" prev_hash BLOB NOT NULL,"
	" hash BLOB NOT NULL"
	");"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	" BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	" BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
	/* 3 -> 4: factory batches (hsmca batch sign). A batch is named by
	 * the SHA-256 of its input; its certificates are found through their
	 * CSR fingerprints (cert_csr_sha256), so a re-run finds what an
	 * earlier, possibly killed, run issued. */
	"CREATE TABLE batch ("
	" id INTEGER PRIMARY KEY,"
	" sha256 TEXT NOT NULL UNIQUE,"
	" profile TEXT NOT NULL,"
	" requester TEXT NOT NULL,"
	" items INTEGER NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" runs INTEGER NOT NULL DEFAULT 1,"
	" finished_at INTEGER,"
	" signed INTEGER,"
	" refused INTEGER"
	");",
	/* 4 -> 5: signed checkpoints of the audit chain: the head's id and
	 * hash, signed by a CA generation's key in the token (lib/audit.c
	 * defines the bytes signed). Append-only like the log itself. */
	"CREATE TABLE audit_checkpoint ("
	" id INTEGER PRIMARY KEY,"
	" at INTEGER NOT NULL,"
	" record_id INTEGER NOT NULL,"
	" record_hash BLOB NOT NULL,"
	" gen_id INTEGER NOT NULL REFERENCES ca_generation(id),"
	" sig_alg TEXT NOT NULL,"
	" signature BLOB NOT NULL"
	");"
	"CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE"
	" ON audit_checkpoint BEGIN SELECT RAISE(ABORT,"
	" 'audit checkpoints are append-only'); END;"
	"CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE"
	" ON audit_checkpoint BEGIN SELECT RAISE(ABORT,"
	" 'audit checkpoints are append-only'); END;",
	/* 5 -> 6: OCSP. ocsp_responder: the delegated responder
	 * certificates of each generation (recorded in cert too, like every
	 * certificate issued) and their key in the token. cert_change: a row
	 * per change of a certificate's status or revocation, written by the
	 * trigger whoever the writer is, so hsmcad re-signs what changed
	 * without rescanning a million certificates; it deletes what it has
	 * read. */
	"CREATE TABLE ocsp_responder ("
	" id INTEGER PRIMARY KEY,"
	" issuer_id INTEGER NOT NULL REFERENCES ca_generation(id),"
	" serial TEXT NOT NULL,"
	" key_uri TEXT NOT NULL,"
	" cert_der BLOB NOT NULL,"
	" not_after INTEGER NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" UNIQUE (issuer_id, serial)"
	");"
	/* AUTOINCREMENT: an id is never reused once its row is deleted,
	 * or a reader's cursor would skip the changes that reuse it. */
	"CREATE TABLE cert_change ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" cert_id INTEGER NOT NULL"
	");"
	"CREATE TRIGGER cert_change_status"
	" AFTER UPDATE OF status, revoked_at, revoke_reason ON cert"
	" WHEN old.status IS NOT new.status"
	"  OR old.revoked_at IS NOT new.revoked_at"
	"  OR old.revoke_reason IS NOT new.revoke_reason"
	" BEGIN INSERT INTO cert_change (cert_id) VALUES (new.id); END;",
	/* 6 -> 7: what a generation's CRL lists changes when one of its
	 * certificates is revoked, put on hold, released or gets another
	 * revocation time or reason, and, for a root, when a generation it
	 * certified is revoked. revocation_version counts those changes per
	 * issuer (whoever the writer is), so hsmcad rebuilds a CRL exactly
	 * when its content changed: a count of revoked certificates missed a
	 * hold lifted together with another revocation, and a reason
	 * changed. */
	"CREATE TABLE revocation_version ("
	" issuer_id INTEGER PRIMARY KEY REFERENCES ca_generation(id),"
	" version INTEGER NOT NULL"
	");"
	"CREATE TRIGGER cert_revocation_version"
	" AFTER UPDATE OF status, revoked_at, revoke_reason ON cert"
	" WHEN (old.status = 'revoked' OR new.status = 'revoked')"
	"  AND (old.status IS NOT new.status"
	"  OR old.revoked_at IS NOT new.revoked_at"
	"  OR old.revoke_reason IS NOT new.revoke_reason)"
	" BEGIN INSERT INTO revocation_version (issuer_id, version)"
	"  VALUES (new.issuer_id, 1) ON CONFLICT (issuer_id)"
	"  DO UPDATE SET version = version + 1; END;"
	"CREATE TRIGGER generation_revocation_version"
	" AFTER UPDATE OF status, revoked_at, revoke_reason ON ca_generation"
	" WHEN new.parent_id IS NOT NULL"
	"  AND (old.status = 'revoked' OR new.status = 'revoked')"
	"  AND (old.status IS NOT new.status"
	"  OR old.revoked_at IS NOT new.revoked_at"
	"  OR old.revoke_reason IS NOT new.revoke_reason)"
	" BEGIN INSERT INTO revocation_version (issuer_id, version)"
	"  VALUES (new.parent_id, 1) ON CONFLICT (issuer_id)"
	"  DO UPDATE SET version = version + 1; END;",
	/* 7 -> 8: a batch's certificates are marked as such. batch_id is
	 * the batch whose run reserved the row (NULL: not a batch's),
	 * back-filled from the " batch:N" its requester ends with. A batch
	 * reservation is refused, in its own transaction, while its CSR has
	 * a certificate or another batch reservation pending: one
	 * certificate per CSR, however many runs sign it at once.
	 * cert_batch_reserved holds only the batch reservations pending,
	 * for the sweep of those a run that died left behind. */
	"ALTER TABLE cert ADD COLUMN batch_id INTEGER;"
	"UPDATE cert SET batch_id = CAST(substr(requester,"
	" length(rtrim(requester, '0123456789')) + 1) AS INTEGER)"
	" WHERE rtrim(requester, '0123456789') GLOB '* batch:'"
	" AND length(rtrim(requester, '0123456789')) < length(requester);"
	"CREATE INDEX cert_batch_reserved ON cert(id)"
	" WHERE status = 'reserved' AND batch_id IS NOT NULL;",
	/* 8 -> 9: the reservations pending, by age, for the sweep of those
	 * an issuance that died or was given up left behind
	 * (store_fail_reserved_before). Only rows still reserved are in
	 * it: a handful, whatever the size of the store. */
	"CREATE INDEX cert_reserved ON cert(created_at)"
	" WHERE status = 'reserved';",
	/* 9 -> 10: an OCSP responder key hsmcad is about to generate,
	 * committed before C_GenerateKeyPair and deleted in the
	 * transaction that records the key's responder: a row left means
	 * hsmcad stopped in between, and the key, if it was made, is found
	 * by its URI at the next start (adopted or destroyed). */
	"CREATE TABLE ocsp_key_intent ("
	" id INTEGER PRIMARY KEY,"
	" issuer_id INTEGER NOT NULL REFERENCES ca_generation(id),"
	" key_uri TEXT NOT NULL UNIQUE,"
	" created_at INTEGER NOT NULL"
	");",
};
_Static_assert(sizeof(store_migrations) / sizeof(store_migrations[0]) ==
    STORE_SCHEMA_VERSION, "one migration per schema version");

/* Columns in table order; the bind parameter of column c is ?(c + 1). */
enum gen_col {
	GC_ID, GC_KIND, GC_PARENT_ID, GC_STATUS, GC_SUBJECT, GC_ISSUER,
	GC_SERIAL, GC_NOT_BEFORE, GC_NOT_AFTER, GC_SHA1, GC_SHA256,
	GC_KEY_URI, GC_KEY_TYPE, GC_CERT_DER, GC_CHAIN_PEM, GC_CSR_DER,
	GC_CREATED_AT, GC_ACTIVATE_AT, GC_REVOKED_AT, GC_REVOKE_REASON,
	GC_MAX
};
#define GEN_COLUMNS \
	"id, kind, parent_id, status, subject, issuer, serial, not_before," \
	" not_after, sha1, sha256, key_uri, key_type, cert_der, chain_pem," \
	" csr_der, created_at, activate_at, revoked_at, revoke_reason"

enum cert_col {
	CC_ID, CC_ISSUER_ID, CC_SERIAL, CC_STATUS, CC_SUBJECT, CC_SANS,
	CC_NOT_BEFORE, CC_NOT_AFTER, CC_SHA256, CC_PROFILE, CC_REQUESTER,
	CC_CSR_SHA256, CC_DER, CC_CREATED_AT, CC_REVOKED_AT, CC_REVOKE_REASON,
	CC_BATCH_ID,
	CC_MAX
};
#define CERT_COLUMNS \
	"id, issuer_id, serial, status, subject, sans, not_before, not_after," \
	" sha256, profile, requester, csr_sha256, der, created_at," \
	" revoked_at, revoke_reason, batch_id"

#define AUDIT_COLUMNS \
	"id, at, actor, action, object, outcome, detail, prev_hash, hash"
#define CKPT_COLUMNS \
	"id, at, record_id, record_hash, gen_id, sig_alg, signature"

enum store_stmt {
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_USER_VERSION,
	STMT_INTEGRITY,
	STMT_GEN_INSERT,
	STMT_GEN_UPDATE,
	STMT_GEN_BY_ID,
	STMT_GEN_BY_SHA1,
	STMT_GEN_BY_SHA256,
	STMT_GEN_ACTIVE,
	STMT_GEN_LIST,
	STMT_CERT_RESERVE,
	STMT_CERT_RESERVE_DEVICE,
	STMT_CERT_RESERVE_BATCH,
	STMT_CERT_FAIL_BATCH_RESERVED,
	STMT_CERT_FAIL_RESERVED_BEFORE,
	STMT_CERT_COMPLETE,
	STMT_CERT_FAIL,
	STMT_CERT_STATE,
	STMT_CERT_BY_ISSUER_SERIAL,
	STMT_CERT_BY_SERIAL,
	STMT_CERT_LOOKUP,
	STMT_CERT_BY_CSR,
	STMT_CERT_REVOKE,
	STMT_CERT_UNHOLD,
	STMT_CERT_REVOKE_ISSUER,
	STMT_CERT_COUNT_KEPT,
	STMT_REVOKED_LIST,
	STMT_CRL_NEXT,
	STMT_CRL_STATE,
	STMT_OCSP_RESPONDER_ADD,
	STMT_OCSP_RESPONDER_LATEST,
	STMT_OCSP_RESPONDER_KEYS_ENDED,
	STMT_OCSP_INTENT_ADD,
	STMT_OCSP_INTENT_LIST,
	STMT_OCSP_INTENT_CLOSE,
	STMT_KEY_URI_NAMED,
	STMT_OCSP_WALK,
	STMT_OCSP_CHANGES,
	STMT_OCSP_CHANGES_FORGET,
	STMT_OCSP_CHANGES_LAST,
	STMT_REVOCATION_VERSION,
	STMT_DISALLOW_ADD,
	STMT_DISALLOW_REMOVE,
	STMT_DISALLOW_LIST,
	STMT_DISALLOW_GET,
	STMT_AUDIT_LAST,
	STMT_AUDIT_INSERT,
	STMT_AUDIT_ALL,
	STMT_AUDIT_FILTER,
	STMT_AUDIT_AFTER,
	STMT_CKPT_LAST,
	STMT_CKPT_INSERT,
	STMT_CKPT_SINCE,
	STMT_MAX
};

static const char *const store_sql[STMT_MAX] = {
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_USER_VERSION] = "PRAGMA user_version",
	[STMT_INTEGRITY] = "PRAGMA integrity_check",
	[STMT_GEN_INSERT] =
	    "INSERT INTO ca_generation (kind, parent_id, status, subject,"
	    " issuer, serial, not_before, not_after, sha1, sha256, key_uri,"
	    " key_type, cert_der, chain_pem, csr_der, created_at, activate_at,"
	    " revoked_at, revoke_reason) VALUES (?2, ?3, ?4, ?5, ?6, ?7, ?8,"
	    " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
	[STMT_GEN_UPDATE] =
	    "UPDATE ca_generation SET status = ?4, issuer = ?6, serial = ?7,"
	    " not_before = ?8, not_after = ?9, sha1 = ?10, sha256 = ?11,"
	    " cert_der = ?14, chain_pem = ?15, activate_at = ?18,"
	    " revoked_at = ?19, revoke_reason = ?20 WHERE id = ?1",
	[STMT_GEN_BY_ID] =
	    "SELECT " GEN_COLUMNS " FROM ca_generation WHERE id = ?1",
	[STMT_GEN_BY_SHA1] =
	    "SELECT " GEN_COLUMNS " FROM ca_generation WHERE sha1 = ?1",
	[STMT_GEN_BY_SHA256] =
	    "SELECT " GEN_COLUMNS " FROM ca_generation WHERE sha256 = ?1",
	[STMT_GEN_ACTIVE] =
	    "SELECT " GEN_COLUMNS " FROM ca_generation"
	    " WHERE kind = 'issuing' AND status = 'active' ORDER BY id LIMIT 2",
	[STMT_GEN_LIST] =
	    "SELECT " GEN_COLUMNS " FROM ca_generation ORDER BY id",
	[STMT_CERT_RESERVE] =
	    "INSERT INTO cert (issuer_id, serial, status, profile, requester,"
	    " csr_sha256, created_at) VALUES (?2, ?3, 'reserved', ?10, ?11,"
	    " ?12, ?14)",
	/* The same for a device certificate: only while the issuer is an
	 * issuing generation that is active, or was retired a moment ago
	 * (inactive: a signer or a batch that opened it before another was
	 * activated), never pending, revoked or expired. Read in the
	 * reservation's own transaction, so a generation revoked a moment
	 * before is never signed under again. */
	[STMT_CERT_RESERVE_DEVICE] =
	    "INSERT INTO cert (issuer_id, serial, status, profile, requester,"
	    " csr_sha256, created_at) SELECT ?2, ?3, 'reserved', ?10, ?11,"
	    " ?12, ?14 WHERE EXISTS (SELECT 1 FROM ca_generation WHERE"
	    " id = ?2 AND kind = 'issuing' AND status IN ('active',"
	    " 'inactive'))",
	/* The same for a batch's certificate (?17 its batch), unless the
	 * CSR already has a certificate, or a batch reservation pending:
	 * read in the reservation's own transaction, so two runs signing
	 * the same CSR at once never both reserve it. */
	[STMT_CERT_RESERVE_BATCH] =
	    "INSERT INTO cert (issuer_id, serial, status, profile, requester,"
	    " csr_sha256, created_at, batch_id) SELECT ?2, ?3, 'reserved', ?10,"
	    " ?11, ?12, ?14, ?17 WHERE EXISTS (SELECT 1 FROM ca_generation"
	    " WHERE id = ?2 AND kind = 'issuing' AND status IN ('active',"
	    " 'inactive')) AND NOT EXISTS (SELECT 1 FROM cert WHERE"
	    " csr_sha256 = ?12 AND (status IN ('valid', 'revoked') OR"
	    " (status = 'reserved' AND batch_id IS NOT NULL)))",
	/* Through cert_batch_reserved: only the rows pending. */
	[STMT_CERT_FAIL_BATCH_RESERVED] =
	    "UPDATE cert SET status = 'failed' WHERE status = 'reserved'"
	    " AND batch_id IS NOT NULL",
	/* Through cert_reserved: the oldest ?2 reservations made before
	 * ?1, as they are once failed. */
	[STMT_CERT_FAIL_RESERVED_BEFORE] =
	    "UPDATE cert SET status = 'failed' WHERE id IN (SELECT id"
	    " FROM cert INDEXED BY cert_reserved WHERE status = 'reserved'"
	    " AND created_at < ?1 ORDER BY created_at, id LIMIT ?2)"
	    " RETURNING " CERT_COLUMNS,
	/* Only a reserved row, and only the one the caller reserved. */
	[STMT_CERT_COMPLETE] =
	    "UPDATE cert SET status = 'valid', subject = ?5, sans = ?6,"
	    " not_before = ?7, not_after = ?8, sha256 = ?9,"
	    " profile = coalesce(?10, profile),"
	    " requester = coalesce(?11, requester),"
	    " csr_sha256 = coalesce(?12, csr_sha256), der = ?13,"
	    " created_at = coalesce(?14, created_at), revoked_at = NULL,"
	    " revoke_reason = NULL WHERE id = ?1 AND status = 'reserved'"
	    " AND (?2 IS NULL OR issuer_id = ?2)"
	    " AND (?3 IS NULL OR serial = ?3)",
	[STMT_CERT_FAIL] =
	    "UPDATE cert SET status = 'failed' WHERE id = ?1"
	    " AND status IN ('reserved', 'failed')",
	[STMT_CERT_STATE] =
	    "SELECT issuer_id, serial, status FROM cert WHERE id = ?1",
	[STMT_CERT_BY_ISSUER_SERIAL] =
	    "SELECT " CERT_COLUMNS " FROM cert"
	    " WHERE serial = ?2 AND issuer_id = ?1",
	[STMT_CERT_BY_SERIAL] =
	    "SELECT " CERT_COLUMNS " FROM cert WHERE serial = ?1"
	    " ORDER BY id LIMIT 2",
	[STMT_CERT_LOOKUP] =
	    "SELECT issuer_id, status, revoke_reason FROM cert"
	    " WHERE serial = ?1 ORDER BY id",
	[STMT_CERT_BY_CSR] =
	    "SELECT " CERT_COLUMNS " FROM cert WHERE csr_sha256 = ?1"
	    " ORDER BY id",
	/* Revocation: ?1 issuer, ?2 serial, ?3 time, ?4 reason. A held
	 * certificate (reason 6) is revoked for good by any other reason;
	 * anything else already revoked is left as it is. */
	[STMT_CERT_REVOKE] =
	    "UPDATE cert SET status = 'revoked', revoked_at = ?3,"
	    " revoke_reason = ?4 WHERE serial = ?2 AND issuer_id = ?1"
	    " AND (status = 'valid' OR (status = 'revoked'"
	    " AND revoke_reason = 6 AND ?4 != 6))",
	[STMT_CERT_UNHOLD] =
	    "UPDATE cert SET status = 'valid', revoked_at = NULL,"
	    " revoke_reason = NULL WHERE serial = ?2 AND issuer_id = ?1"
	    " AND status = 'revoked' AND revoke_reason = 6",
	[STMT_CERT_REVOKE_ISSUER] =
	    "UPDATE cert SET status = 'revoked', revoked_at = ?3,"
	    " revoke_reason = ?4 WHERE issuer_id = ?1"
	    " AND (status = 'valid' OR (status = 'revoked'"
	    " AND revoke_reason = 6 AND ?4 != 6))",
	/* The revoked rows STMT_CERT_REVOKE_ISSUER leaves alone. */
	[STMT_CERT_COUNT_KEPT] =
	    "SELECT count(*) FROM cert WHERE issuer_id = ?1"
	    " AND status = 'revoked'"
	    " AND NOT (coalesce(revoke_reason, 0) = 6 AND ?4 != 6)",
	/* Named index: the plan is part of the contract (no sort, no row
	 * lookups), not left to statistics. */
	[STMT_REVOKED_LIST] =
	    "SELECT serial, revoked_at, revoke_reason, not_after"
	    " FROM cert INDEXED BY cert_revoked"
	    " WHERE issuer_id = ?1 AND status = 'revoked' AND not_after >= ?2"
	    " ORDER BY length(serial), serial",
	[STMT_CRL_NEXT] =
	    "INSERT INTO crl_state (issuer_id, number, this_update)"
	    " VALUES (?1, 1, ?2) ON CONFLICT (issuer_id) DO UPDATE"
	    " SET number = number + 1, this_update = excluded.this_update"
	    " RETURNING number",
	[STMT_CRL_STATE] =
	    "SELECT number, this_update FROM crl_state WHERE issuer_id = ?1",
	[STMT_OCSP_RESPONDER_ADD] =
	    "INSERT INTO ocsp_responder (issuer_id, serial, key_uri, cert_der,"
	    " not_after, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[STMT_OCSP_RESPONDER_LATEST] =
	    "SELECT serial, key_uri, cert_der, not_after, created_at"
	    " FROM ocsp_responder WHERE issuer_id = ?1"
	    " ORDER BY not_after DESC, id DESC LIMIT 1",
	/* Only a key every one of whose certificates, and their
	 * generations, ended before ?2, and that no generation names. */
	[STMT_OCSP_RESPONDER_KEYS_ENDED] =
	    "SELECT DISTINCT r.key_uri FROM ocsp_responder r"
	    " WHERE r.issuer_id = ?1 AND NOT EXISTS (SELECT 1"
	    " FROM ocsp_responder o JOIN ca_generation g ON g.id = o.issuer_id"
	    " WHERE o.key_uri = r.key_uri AND (o.not_after >= ?2"
	    " OR g.not_after IS NULL OR g.not_after >= ?2))"
	    " AND r.key_uri NOT IN (SELECT key_uri FROM ca_generation"
	    " WHERE key_uri IS NOT NULL) ORDER BY r.key_uri",
	[STMT_OCSP_INTENT_ADD] =
	    "INSERT INTO ocsp_key_intent (issuer_id, key_uri, created_at)"
	    " VALUES (?1, ?2, ?3)",
	[STMT_OCSP_INTENT_LIST] =
	    "SELECT id, issuer_id, key_uri, created_at FROM ocsp_key_intent"
	    " ORDER BY id",
	[STMT_OCSP_INTENT_CLOSE] =
	    "DELETE FROM ocsp_key_intent WHERE key_uri = ?1",
	[STMT_KEY_URI_NAMED] =
	    "SELECT EXISTS (SELECT 1 FROM ocsp_responder WHERE key_uri = ?1)"
	    " OR EXISTS (SELECT 1 FROM ca_generation WHERE key_uri = ?1)",
	/* By primary key: a range of ids, whatever the store's size. */
	[STMT_OCSP_WALK] =
	    "SELECT id, issuer_id, serial, status, not_after, revoked_at,"
	    " revoke_reason FROM cert WHERE id > ?1 ORDER BY id LIMIT ?2",
	[STMT_OCSP_CHANGES] =
	    "SELECT ch.id, c.id, c.issuer_id, c.serial, c.status, c.not_after,"
	    " c.revoked_at, c.revoke_reason FROM cert_change ch"
	    " JOIN cert c ON c.id = ch.cert_id WHERE ch.id > ?1"
	    " ORDER BY ch.id LIMIT ?2",
	[STMT_OCSP_CHANGES_FORGET] =
	    "DELETE FROM cert_change WHERE id <= ?1",
	[STMT_OCSP_CHANGES_LAST] =
	    "SELECT coalesce((SELECT seq FROM sqlite_sequence"
	    " WHERE name = 'cert_change'), 0)",
	[STMT_REVOCATION_VERSION] =
	    "SELECT coalesce((SELECT version FROM revocation_version"
	    " WHERE issuer_id = ?1), 0)",
	[STMT_DISALLOW_ADD] =
	    "INSERT INTO disallow (identity, kind, added_at, note)"
	    " VALUES (?1, ?2, ?3, ?4)",
	[STMT_DISALLOW_REMOVE] =
	    "DELETE FROM disallow WHERE identity = ?1",
	[STMT_DISALLOW_LIST] =
	    "SELECT identity, kind, added_at, note FROM disallow"
	    " ORDER BY identity",
	[STMT_DISALLOW_GET] =
	    "SELECT kind, note FROM disallow WHERE identity = ?1",
	[STMT_AUDIT_LAST] =
	    "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
	[STMT_AUDIT_INSERT] =
	    "INSERT INTO audit (id, at, actor, action, object, outcome,"
	    " detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
	    " ?8, ?9)",
	[STMT_AUDIT_ALL] =
	    "SELECT " AUDIT_COLUMNS " FROM audit ORDER BY id",
	/* The last ?3 matching records (-1: all) after id ?4, oldest
	 * first. */
	[STMT_AUDIT_FILTER] =
	    "SELECT " AUDIT_COLUMNS " FROM (SELECT " AUDIT_COLUMNS
	    " FROM audit WHERE (?1 IS NULL OR at >= ?1)"
	    " AND (?2 IS NULL OR action = ?2) AND id > ?4"
	    " ORDER BY id DESC LIMIT ?3) ORDER BY id",
	/* Only an id bound: one range scan, nothing sorted. */
	[STMT_AUDIT_AFTER] =
	    "SELECT " AUDIT_COLUMNS " FROM audit WHERE id > ?1 ORDER BY id",
	[STMT_CKPT_LAST] =
	    "SELECT id, record_id FROM audit_checkpoint ORDER BY id DESC"
	    " LIMIT 1",
	[STMT_CKPT_INSERT] =
	    "INSERT INTO audit_checkpoint (id, at, record_id, record_hash,"
	    " gen_id, sig_alg, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	/* The last ?2 checkpoints made at or after ?1, oldest first. */
	[STMT_CKPT_SINCE] =
	    "SELECT * FROM (SELECT " CKPT_COLUMNS " FROM audit_checkpoint"
	    " WHERE at >= ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
};

/* Which parts of a struct store_cert_filter are in use. */
#define FILTER_ISSUER	0x01
#define FILTER_STATUS	0x02
#define FILTER_EXPIRED	0x04
#define FILTER_CURRENT	0x08
#define FILTER_PROFILE	0x10
#define FILTER_LIMIT	0x20
#define FILTER_SHAPES	0x40
enum filter_query { FILTER_LIST, FILTER_COUNT, FILTER_QUERY_MAX };

struct store {
	sqlite3		*db;
	char		*path;
	int		 in_tx;		/* inside store_begin */
	struct store_group *group;	/* certificate writes go through it */
	sqlite3_stmt	*stmt[STMT_MAX];
	sqlite3_stmt	*filter[FILTER_QUERY_MAX][FILTER_SHAPES];
};

static const char *const gen_kind_names[STORE_GEN_KIND_MAX] = {
	[STORE_GEN_ROOT] = "root",
	[STORE_GEN_ISSUING] = "issuing",
};
static const char *const gen_status_names[STORE_GEN_STATUS_MAX] = {
	[STORE_GEN_PENDING] = "pending",
	[STORE_GEN_ACTIVE] = "active",
	[STORE_GEN_INACTIVE] = "inactive",
	[STORE_GEN_REVOKED] = "revoked",
	[STORE_GEN_EXPIRED] = "expired",
};
static const char *const disallow_kind_names[STORE_DISALLOW_KIND_MAX] = {
	[STORE_DISALLOW_CN] = "cn",
	[STORE_DISALLOW_FINGERPRINT] = "fingerprint",
};
static const char *const cert_status_names[STORE_CERT_STATUS_MAX] = {
	[STORE_CERT_RESERVED] = "reserved",
	[STORE_CERT_VALID] = "valid",
	[STORE_CERT_REVOKED] = "revoked",
	[STORE_CERT_FAILED] = "failed",
};

static int
name_parse(const char *const *names, int n, const char *s, int *out)
{
	if (s == NULL)
		return HSMCA_ERR_ARG;
	for (int i = 0; i < n; i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return HSMCA_ERR_ARG;
}

const char *
store_gen_kind_name(enum store_gen_kind k)
{
	if ((unsigned)k >= STORE_GEN_KIND_MAX)
		return "unknown";
	return gen_kind_names[k];
}

const char *
store_gen_status_name(enum store_gen_status s)
{
	if ((unsigned)s >= STORE_GEN_STATUS_MAX)
		return "unknown";
	return gen_status_names[s];
}

int
store_gen_status_parse(const char *s, enum store_gen_status *out)
{
	int v, ret;

	if ((ret = name_parse(gen_status_names, STORE_GEN_STATUS_MAX, s,
	    &v)) == 0)
		*out = (enum store_gen_status)v;
	return ret;
}

const char *
store_cert_status_name(enum store_cert_status s)
{
	if ((unsigned)s >= STORE_CERT_STATUS_MAX)
		return "unknown";
	return cert_status_names[s];
}

int
store_cert_status_parse(const char *s, enum store_cert_status *out)
{
	int v, ret;

	if ((ret = name_parse(cert_status_names, STORE_CERT_STATUS_MAX, s,
	    &v)) == 0)
		*out = (enum store_cert_status)v;
	return ret;
}

/* ---- errors ---- */

/* Map an SQLite result to a code and fill "store: <what>: <reason>". */
static int __attribute__((format(printf, 3, 0)))
store_vsqlerr(struct hsmca_err *e, int rc, const char *fmt, va_list ap)
{
	char what[HSMCA_ERRMSG_MAX];
	int code;

	vsnprintf(what, sizeof(what), fmt, ap);
	switch (rc) {
	case SQLITE_NOMEM:
		code = HSMCA_ERR_ALLOC;
		break;
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		code = HSMCA_ERR_EXISTS;
		break;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		code = HSMCA_ERR_NOT_FOUND;
		break;
	case SQLITE_CONSTRAINT_CHECK:
	case SQLITE_CONSTRAINT_NOTNULL:
		code = HSMCA_ERR_ARG;
		break;
	default:
		code = HSMCA_ERR_STORE;
		break;
	}
	/* errstr, not errmsg: the generic reason never quotes SQL. */
	return err_set(e, code, "store: %s: %s", what, sqlite3_errstr(rc));
}

static int __attribute__((format(printf, 3, 4)))
store_sqlerr(struct hsmca_err *e, int rc, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = store_vsqlerr(e, rc, fmt, ap);
	va_end(ap);
	return ret;
}

/* ---- statements ---- */

static sqlite3_stmt *
stmt_prepare(struct store *st, const char *sql, struct hsmca_err *e)
{
	sqlite3_stmt *s = NULL;
	int rc;

	rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    &s, NULL);
	if (rc != SQLITE_OK) {
		store_sqlerr(e, rc, "cannot prepare a query on %s",
		    st->path);
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

static sqlite3_stmt *
stmt_get(struct store *st, enum store_stmt which, struct hsmca_err *e)
{
	if (st->stmt[which] == NULL)
		st->stmt[which] = stmt_prepare(st, store_sql[which], e);
	return st->stmt[which];
}

/* Ready a statement for its next use (and end any read it holds open). */
static void
stmt_release(sqlite3_stmt *s)
{
	if (s == NULL)
		return;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Step s unless binding it failed: rc is the result of the binding. */
static int
stmt_step(sqlite3_stmt *s, int rc)
{
	return rc == SQLITE_OK ? sqlite3_step(s) : rc;
}

/* Run a bound statement that returns no row, and release it: SQLITE_DONE
 * or the error, *changes (if not NULL) the rows it changed. */
static int
stmt_run(struct store *st, sqlite3_stmt *s, int rc, int *changes)
{
	rc = stmt_step(s, rc);
	if (changes != NULL)
		*changes = rc == SQLITE_DONE ? sqlite3_changes(st->db) : 0;
	stmt_release(s);
	return rc;
}

/* Run a bound query of one row, read its first column into *v (left alone
 * without a row), and release it: SQLITE_ROW or what stepping returned. */
static int
stmt_int64(sqlite3_stmt *s, int rc, int64_t *v)
{
	if ((rc = stmt_step(s, rc)) == SQLITE_ROW)
		*v = sqlite3_column_int64(s, 0);
	stmt_release(s);
	return rc;
}

/* Step a bound statement to its end, handing each row to row(); rc is the
 * result of binding it. 0, row()'s error, or the SQLite error explained by
 * fmt. Releases s. */
static int __attribute__((format(printf, 7, 0)))
stmt_veach(struct store *st, sqlite3_stmt *s, int rc,
    int (*row)(struct store *, sqlite3_stmt *, void *, struct hsmca_err *),
    void *arg, struct hsmca_err *e, const char *fmt, va_list ap)
{
	int ret;

	while ((rc = stmt_step(s, rc)) == SQLITE_ROW) {
		if ((ret = row(st, s, arg, e)) != 0)
			goto out;
		rc = SQLITE_OK;
	}
	ret = rc == SQLITE_DONE ? 0 : store_vsqlerr(e, rc, fmt, ap);
out:
	stmt_release(s);
	return ret;
}

static int __attribute__((format(printf, 7, 8)))
stmt_each(struct store *st, sqlite3_stmt *s, int rc,
    int (*row)(struct store *, sqlite3_stmt *, void *, struct hsmca_err *),
    void *arg, struct hsmca_err *e, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = stmt_veach(st, s, rc, row, arg, e, fmt, ap);
	va_end(ap);
	return ret;
}

/* A walk handing rows to a caller's function: the function, its argument,
 * the rows handed so far; for certificate states also the column each
 * state starts at and where the id to start after next time goes. */
struct walk {
	union {
		int	(*revoked)(void *, const struct store_revoked *);
		int	(*audit)(void *, const struct store_audit *);
		int	(*checkpoint)(void *,
			    const struct store_checkpoint *);
		int	(*cert_state)(void *,
			    const struct store_cert_state *);
	}		 fn;
	void		*arg;
	size_t		 n;
	int		 first;
	int64_t		*last;
};

/* How stmt_collect reads rows of one type: from_row fills one element (and
 * frees what it took if it fails), free_all frees an array of them. */
struct row_type {
	size_t	  size;
	int	(*from_row)(struct store *, sqlite3_stmt *, void *,
		    struct hsmca_err *);
	void	(*free_all)(void *, size_t);
};

/* An array being filled by stmt_collect. */
struct row_array {
	const struct row_type	*type;
	char			*v;
	size_t			 len, cap, first;
};

static int
row_array_add(struct store *st, sqlite3_stmt *s, void *arg,
    struct hsmca_err *e)
{
	struct row_array *a = arg;
	void *nv;
	size_t cap;
	int ret;

	if (a->len == a->cap) {
		cap = a->cap == 0 ? a->first : a->cap * 2;
		if ((nv = reallocarray(a->v, cap, a->type->size)) == NULL)
			return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		a->v = nv;
		a->cap = cap;
	}
	if ((ret = a->type->from_row(st, s, a->v + a->len * a->type->size,
	    e)) != 0)
		return ret;
	a->len++;
	return 0;
}

/* Every row of a bound statement as an array in *out and *n, set only on
 * success; first is the array's first size, rc the result of binding s.
 * Releases s. */
static int __attribute__((format(printf, 9, 10)))
stmt_collect(struct store *st, sqlite3_stmt *s, int rc,
    const struct row_type *type, size_t first, void **out, size_t *n,
    struct hsmca_err *e, const char *fmt, ...)
{
	struct row_array a = { type, NULL, 0, 0, first };

	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = stmt_veach(st, s, rc, row_array_add, &a, e, fmt, ap);
	va_end(ap);
	if (ret != 0) {
		type->free_all(a.v, a.len);
		return ret;
	}
	*out = a.v;
	*n = a.len;
	return 0;
}

/* Bind helpers: each does nothing once *rc holds an error. Empty strings,
 * zero times and ids, and missing blobs are stored as NULL. */
static void
bind_text(sqlite3_stmt *s, int col, const char *v, int *rc)
{
	if (*rc != SQLITE_OK)
		return;
	if (v == NULL || *v == '\0')
		*rc = sqlite3_bind_null(s, col + 1);
	else
		*rc = sqlite3_bind_text(s, col + 1, v, -1, SQLITE_STATIC);
}

static void
bind_int(sqlite3_stmt *s, int col, int64_t v, int *rc)
{
	if (*rc != SQLITE_OK)
		return;
	*rc = sqlite3_bind_int64(s, col + 1, (sqlite3_int64)v);
}

static void
bind_opt_int(sqlite3_stmt *s, int col, int64_t v, int *rc)
{
	if (*rc != SQLITE_OK)
		return;
	if (v == 0)
		*rc = sqlite3_bind_null(s, col + 1);
	else
		*rc = sqlite3_bind_int64(s, col + 1, (sqlite3_int64)v);
}

static void
bind_blob(sqlite3_stmt *s, int col, const unsigned char *v, size_t len,
    int *rc)
{
	if (*rc != SQLITE_OK)
		return;
	if (v == NULL || len == 0)
		*rc = sqlite3_bind_null(s, col + 1);
	else
		*rc = sqlite3_bind_blob64(s, col + 1, v, (sqlite3_uint64)len,
		    SQLITE_STATIC);
}

/* Column readers: 0, or -1 if out of memory or the value does not fit. */
static int
col_strdup(sqlite3_stmt *s, int col, char **out)
{
	const unsigned char *v = sqlite3_column_text(s, col);

	*out = NULL;
	if (v == NULL)
		return sqlite3_column_type(s, col) == SQLITE_NULL ? 0 : -1;
	return (*out = strdup((const char *)v)) == NULL ? -1 : 0;
}

static int
col_copy(sqlite3_stmt *s, int col, char *buf, size_t len)
{
	const unsigned char *v = sqlite3_column_text(s, col);
	size_t n = (size_t)sqlite3_column_bytes(s, col);

	buf[0] = '\0';
	if (v == NULL)
		return 0;
	if (n >= len)
		return -1;
	memcpy(buf, v, n + 1);
	return 0;
}

static int
col_blob(sqlite3_stmt *s, int col, unsigned char **out, size_t *len)
{
	const void *v = sqlite3_column_blob(s, col);
	size_t n = (size_t)sqlite3_column_bytes(s, col);

	*out = NULL;
	*len = 0;
	if (v == NULL || n == 0)
		return 0;
	if ((*out = malloc(n)) == NULL)
		return -1;
	memcpy(*out, v, n);
	*len = n;
	return 0;
}

/* ---- validation of what callers pass in ---- */

/* A thumbprint as stored: lowercase hex of exactly hexlen digits, colons
 * dropped. 0, or -1 if it is not one. */
static int
thumbprint_normalize(const char *in, size_t hexlen, char *out, size_t outlen)
{
	size_t n = 0;

	if (outlen <= hexlen)
		return -1;
	for (; *in != '\0'; in++) {
		if (*in == ':')
			continue;
		if (!isxdigit((unsigned char)*in) || n == hexlen)
			return -1;
		out[n++] = (char)tolower((unsigned char)*in);
	}
	out[n] = '\0';
	return n == hexlen ? 0 : -1;
}

/* Serials are stored in the canonical form of serial_to_hex(). */
static int
serial_is_canonical(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= SERIAL_HEX_MAX || n % 2 != 0)
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

/* ---- open, migrate, close ---- */

static int	store_open_mode(const char *, int, struct store **,
		    struct hsmca_err *);

/* The file's schema version, refused if this build cannot read it. */
static int
schema_version(struct store *st, int *version, struct hsmca_err *e)
{
	sqlite3_stmt *s = NULL;
	int ret = HSMCA_ERR_STORE;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s,
	    NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
		store_sqlerr(e, sqlite3_extended_errcode(st->db),
		    "cannot read %s", st->path);
		goto out;
	}
	*version = sqlite3_column_int(s, 0);
	if (*version > STORE_SCHEMA_VERSION) {
		err_set(e, HSMCA_ERR_STORE, "store: %s has schema version %d, "
		    "newer than this hsmca knows (%d); use a newer hsmca",
		    st->path, *version, STORE_SCHEMA_VERSION);
		goto out;
	}
	if (*version < 0) {
		err_set(e, HSMCA_ERR_STORE, "store: %s has unknown schema "
		    "version %d", st->path, *version);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(s);
	return ret;
}

/* Bring the schema to STORE_SCHEMA_VERSION in one transaction. */
static int
store_migrate(struct store *st, struct hsmca_err *e)
{
	char sql[64];
	int version, rc, ret, began = 0;

	if ((ret = schema_version(st, &version, e)) != 0 ||
	    version == STORE_SCHEMA_VERSION)
		goto out;
	ret = HSMCA_ERR_STORE;
	if ((rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL)) != SQLITE_OK) {
		store_sqlerr(e, rc, "cannot upgrade %s", st->path);
		goto out;
	}
	began = 1;
	/* Another process may have upgraded it while we waited. */
	if ((ret = schema_version(st, &version, e)) != 0)
		goto out;
	ret = HSMCA_ERR_STORE;
	for (int v = version; v < STORE_SCHEMA_VERSION; v++) {
		if ((rc = sqlite3_exec(st->db, store_migrations[v], NULL, NULL,
		    NULL)) != SQLITE_OK) {
			store_sqlerr(e, rc, "cannot upgrade %s to schema "
			    "version %d", st->path, v + 1);
			goto out;
		}
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    STORE_SCHEMA_VERSION);
	if ((rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL)) !=
	    SQLITE_OK) {
		store_sqlerr(e, rc, "cannot upgrade %s", st->path);
		goto out;
	}
	began = 0;
	ret = 0;
out:
	if (began)
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

/* SQLite's default busy handler sleeps 1, 2, 5, 10 ms and more between
 * tries: with several writers in one process (the signer's workers) they
 * spend most of their time asleep while the lock is long free. Retry
 * every 50 us instead, within the same overall budget. */
#define STORE_BUSY_POLL_US 50

static int
store_busy(void *arg, int count)
{
	if ((long)count * STORE_BUSY_POLL_US >= STORE_BUSY_TIMEOUT_MS * 1000L)
		return 0;
	usleep(STORE_BUSY_POLL_US);
	return 1;
}

static int
store_configure(struct store *st, int memory, struct hsmca_err *e)
{
	sqlite3_stmt *s = NULL;
	const char *mode;
	int rc, ret = HSMCA_ERR_STORE;

	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_handler(st->db, store_busy, NULL);
	/* Refuse SQL that could corrupt the file (writable_schema ...). */
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);

	/* The first read of the file: "file is not a database" shows here. */
	if ((rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1,
	    &s, NULL)) != SQLITE_OK || (rc = sqlite3_step(s)) != SQLITE_ROW) {
		store_sqlerr(e, sqlite3_extended_errcode(st->db),
		    "cannot open %s", st->path);
		goto out;
	}
	mode = (const char *)sqlite3_column_text(s, 0);
	if (mode == NULL || strcasecmp(mode, memory ? "memory" : "wal") != 0) {
		err_set(e, HSMCA_ERR_STORE, "store: %s: cannot use a "
		    "write-ahead log (journal mode %s)", st->path,
		    mode == NULL ? "unknown" : mode);
		goto out;
	}
	/* Statement journals (group commit's savepoints) in memory: as
	 * files in /var/tmp, each transaction created and deleted some. */
	if ((rc = sqlite3_exec(st->db, "PRAGMA synchronous = FULL;"
	    " PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;", NULL,
	    NULL, NULL)) != SQLITE_OK) {
		store_sqlerr(e, rc, "cannot configure %s", st->path);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(s);
	return ret;
}

int
store_open(const char *path, struct store **out, struct hsmca_err *e)
{
	return store_open_mode(path, 0, out, e);
}

/* hsmcad's front: it reads what the signer writes, and can write
 * nothing (the connection is read-only, whatever the file's mode). */
int
store_open_readonly(const char *path, struct store **out,
    struct hsmca_err *e)
{
	return store_open_mode(path, 1, out, e);
}

static int
store_open_mode(const char *path, int readonly, struct store **out,
    struct hsmca_err *e)
{
	struct store *st = NULL;
	int fd = -1, rc, memory, version, ret = HSMCA_ERR_STORE;

	if (path == NULL || *path == '\0' || out == NULL)
		return err_set(e, HSMCA_ERR_ARG, "store: no database path");
	*out = NULL;
	memory = strcmp(path, ":memory:") == 0;
	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->path = strdup(path)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	/* Create a new file ourselves so it is 0600; SQLite gives the -wal
	 * and -shm files the same mode. Never open and close an existing
	 * one: closing any descriptor of a file drops every POSIX lock this
	 * process holds on it, including those of its other SQLite
	 * connections, and another process would then take the WAL away. */
	if (!memory && !readonly) {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd == -1 && errno != EEXIST) {
			ret = err_set(e, HSMCA_ERR_IO, "store: cannot open "
			    "%s: %s", path, strerror(errno));
			goto out;
		}
		if (fd != -1)
			close(fd);
	}
	rc = sqlite3_open_v2(path, &st->db, (readonly ? SQLITE_OPEN_READONLY :
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX,
	    NULL);
	if (rc != SQLITE_OK) {
		if (st->db == NULL)
			ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		else
			err_set(e, HSMCA_ERR_STORE, "store: cannot open %s: %s",
			    path, sqlite3_errmsg(st->db));
		goto out;
	}
	if ((ret = store_configure(st, memory, e)) != 0)
		goto out;
	if (!readonly)
		ret = store_migrate(st, e);
	else if ((ret = schema_version(st, &version, e)) == 0 &&
	    version != STORE_SCHEMA_VERSION)
		ret = err_set(e, HSMCA_ERR_STORE, "store: %s has schema version "
		    "%d, not yet %d (open it read-write once to migrate)",
		    path, version, STORE_SCHEMA_VERSION);
	if (ret != 0)
		goto out;
	*out = st;
	st = NULL;
	ret = 0;
out:
	store_close(st);
	return ret;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < STMT_MAX; i++)
		sqlite3_finalize(st->stmt[i]);
	for (int q = 0; q < FILTER_QUERY_MAX; q++)
		for (int i = 0; i < FILTER_SHAPES; i++)
			sqlite3_finalize(st->filter[q][i]);
	/* An open transaction is rolled back by the close. */
	sqlite3_close(st->db);
	free(st->path);
	free(st);
}

int
store_schema_version(struct store *st)
{
	sqlite3_stmt *s;
	int ret = -1;

	if (st == NULL || (s = stmt_get(st, STMT_USER_VERSION, NULL)) == NULL)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		ret = sqlite3_column_int(s, 0);
	stmt_release(s);
	return ret;
}

/* ---- transactions ---- */

int
store_begin(struct store *st, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc, ret = HSMCA_ERR_STORE;

	if (st->in_tx)
		return err_set(e, HSMCA_ERR_ARG,
		    "store: a transaction is already open");
	if ((s = stmt_get(st, STMT_BEGIN, e)) == NULL)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		ret = store_sqlerr(e, rc, "cannot begin a transaction "
		    "on %s", st->path);
		goto out;
	}
	st->in_tx = 1;
	ret = 0;
out:
	stmt_release(s);
	return ret;
}

int
store_commit(struct store *st, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc, ret = HSMCA_ERR_STORE;

	if (!st->in_tx)
		return err_set(e, HSMCA_ERR_ARG, "store: no transaction open");
	if ((s = stmt_get(st, STMT_COMMIT, e)) == NULL)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		ret = store_sqlerr(e, rc, "cannot commit to %s", st->path);
		goto out;
	}
	ret = 0;
out:
	stmt_release(s);
	/* A failed COMMIT may leave the transaction open for a rollback. */
	st->in_tx = !sqlite3_get_autocommit(st->db);
	return ret;
}

void
store_rollback(struct store *st)
{
	sqlite3_stmt *s;

	if (st == NULL || !st->in_tx)
		return;
	if (!sqlite3_get_autocommit(st->db) &&
	    (s = stmt_get(st, STMT_ROLLBACK, NULL)) != NULL) {
		(void)sqlite3_step(s);
		stmt_release(s);
	}
	st->in_tx = !sqlite3_get_autocommit(st->db);
}

/* ---- generations ---- */

void
store_generation_free_fields(struct store_generation *g)
{
	if (g == NULL)
		return;
	free(g->subject);
	free(g->issuer);
	free(g->key_uri);
	free(g->key_type);
	free(g->cert_der);
	free(g->chain_pem);
	free(g->csr_der);
	free(g->revoke_reason);
	memset(g, 0, sizeof(*g));
}

/* store_generations_free, for stmt_collect. */
static void
gens_free(void *v, size_t n)
{
	store_generations_free(v, n);
}

void
store_generations_free(struct store_generation *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		store_generation_free_fields(&v[i]);
	free(v);
}

/* One row of a generation query into g (a struct store_generation). */
static int
gen_from_row(struct store *st, sqlite3_stmt *s, void *row,
    struct hsmca_err *e)
{
	struct store_generation *g = row;
	int kind, status, ret = HSMCA_ERR_STORE;

	memset(g, 0, sizeof(*g));
	g->id = sqlite3_column_int64(s, GC_ID);
	if (name_parse(gen_kind_names, STORE_GEN_KIND_MAX,
	    (const char *)sqlite3_column_text(s, GC_KIND), &kind) != 0 ||
	    name_parse(gen_status_names, STORE_GEN_STATUS_MAX,
	    (const char *)sqlite3_column_text(s, GC_STATUS), &status) != 0 ||
	    col_copy(s, GC_SERIAL, g->serial, sizeof(g->serial)) == -1 ||
	    col_copy(s, GC_SHA1, g->sha1, sizeof(g->sha1)) == -1 ||
	    col_copy(s, GC_SHA256, g->sha256, sizeof(g->sha256)) == -1) {
		err_set(e, HSMCA_ERR_STORE, "store: %s: CA generation %" PRId64
		    " is malformed", st->path, g->id);
		goto out;
	}
	g->kind = (enum store_gen_kind)kind;
	g->status = (enum store_gen_status)status;
	g->parent_id = sqlite3_column_int64(s, GC_PARENT_ID);
	g->not_before = (time_t)sqlite3_column_int64(s, GC_NOT_BEFORE);
	g->not_after = (time_t)sqlite3_column_int64(s, GC_NOT_AFTER);
	g->created_at = (time_t)sqlite3_column_int64(s, GC_CREATED_AT);
	g->activate_at = (time_t)sqlite3_column_int64(s, GC_ACTIVATE_AT);
	g->revoked_at = (time_t)sqlite3_column_int64(s, GC_REVOKED_AT);
	if (col_strdup(s, GC_SUBJECT, &g->subject) == -1 ||
	    col_strdup(s, GC_ISSUER, &g->issuer) == -1 ||
	    col_strdup(s, GC_KEY_URI, &g->key_uri) == -1 ||
	    col_strdup(s, GC_KEY_TYPE, &g->key_type) == -1 ||
	    col_blob(s, GC_CERT_DER, &g->cert_der, &g->cert_der_len) == -1 ||
	    col_strdup(s, GC_CHAIN_PEM, &g->chain_pem) == -1 ||
	    col_blob(s, GC_CSR_DER, &g->csr_der, &g->csr_der_len) == -1 ||
	    col_strdup(s, GC_REVOKE_REASON, &g->revoke_reason) == -1) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	ret = 0;
out:
	if (ret != 0)
		store_generation_free_fields(g);
	return ret;
}

/* Bind every column of g to its parameter, thumbprints normalized. */
static int
gen_bind(struct store *st, sqlite3_stmt *s, const struct store_generation *g,
    struct hsmca_err *e)
{
	char sha1[UTIL_SHA1_HEX], sha256[UTIL_SHA256_HEX];
	int rc = SQLITE_OK;

	if ((unsigned)g->kind >= STORE_GEN_KIND_MAX ||
	    (unsigned)g->status >= STORE_GEN_STATUS_MAX)
		return err_set(e, HSMCA_ERR_ARG, "store: CA generation with an "
		    "unknown kind or status");
	if (g->subject == NULL || *g->subject == '\0')
		return err_set(e, HSMCA_ERR_ARG, "store: CA generation without "
		    "a subject");
	sha1[0] = sha256[0] = '\0';
	if ((g->sha1[0] != '\0' && thumbprint_normalize(g->sha1,
	    UTIL_SHA1_HEX - 1, sha1, sizeof(sha1)) == -1) ||
	    (g->sha256[0] != '\0' && thumbprint_normalize(g->sha256,
	    UTIL_SHA256_HEX - 1, sha256, sizeof(sha256)) == -1))
		return err_set(e, HSMCA_ERR_ARG, "store: CA generation with a "
		    "malformed thumbprint");

	bind_int(s, GC_ID, g->id, &rc);
	bind_text(s, GC_KIND, gen_kind_names[g->kind], &rc);
	bind_opt_int(s, GC_PARENT_ID, g->parent_id, &rc);
	bind_text(s, GC_STATUS, gen_status_names[g->status], &rc);
	bind_text(s, GC_SUBJECT, g->subject, &rc);
	bind_text(s, GC_ISSUER, g->issuer, &rc);
	bind_text(s, GC_SERIAL, g->serial, &rc);
	bind_opt_int(s, GC_NOT_BEFORE, g->not_before, &rc);
	bind_opt_int(s, GC_NOT_AFTER, g->not_after, &rc);
	/* sha1/sha256 are bound with SQLITE_STATIC: bind copies instead. */
	if (rc == SQLITE_OK)
		rc = sha1[0] == '\0' ? sqlite3_bind_null(s, GC_SHA1 + 1) :
		    sqlite3_bind_text(s, GC_SHA1 + 1, sha1, -1,
		    SQLITE_TRANSIENT);
	if (rc == SQLITE_OK)
		rc = sha256[0] == '\0' ? sqlite3_bind_null(s, GC_SHA256 + 1) :
		    sqlite3_bind_text(s, GC_SHA256 + 1, sha256, -1,
		    SQLITE_TRANSIENT);
	bind_text(s, GC_KEY_URI, g->key_uri, &rc);
	bind_text(s, GC_KEY_TYPE, g->key_type, &rc);
	bind_blob(s, GC_CERT_DER, g->cert_der, g->cert_der_len, &rc);
	bind_text(s, GC_CHAIN_PEM, g->chain_pem, &rc);
	bind_blob(s, GC_CSR_DER, g->csr_der, g->csr_der_len, &rc);
	bind_int(s, GC_CREATED_AT, g->created_at, &rc);
	bind_opt_int(s, GC_ACTIVATE_AT, g->activate_at, &rc);
	bind_opt_int(s, GC_REVOKED_AT, g->revoked_at, &rc);
	bind_text(s, GC_REVOKE_REASON, g->revoke_reason, &rc);
	if (rc != SQLITE_OK)
		return store_sqlerr(e, rc, "cannot record CA generation");
	return 0;
}

/* Explain a failed write of a generation. */
static int
gen_write_err(struct store *st, const struct store_generation *g, int rc,
    const char *verb, struct hsmca_err *e)
{
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return err_set(e, HSMCA_ERR_EXISTS, "store: cannot %s CA "
		    "generation: its certificate is already recorded", verb);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return err_set(e, HSMCA_ERR_NOT_FOUND, "store: cannot %s CA "
		    "generation: no parent generation %" PRId64, verb,
		    g->parent_id);
	return store_sqlerr(e, rc, "cannot %s CA generation", verb);
}

int
store_insert_generation(struct store *st, struct store_generation *g,
    struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc, ret = HSMCA_ERR_STORE;

	if ((s = stmt_get(st, STMT_GEN_INSERT, e)) == NULL)
		goto out;
	if (g->created_at == 0)
		g->created_at = clock_now();
	if ((ret = gen_bind(st, s, g, e)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		ret = gen_write_err(st, g, rc, "record", e);
		goto out;
	}
	g->id = sqlite3_last_insert_rowid(st->db);
	ret = 0;
out:
	stmt_release(s);
	return ret;
}

int
store_update_generation(struct store *st, const struct store_generation *g,
    struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc, ret = HSMCA_ERR_STORE;

	if ((s = stmt_get(st, STMT_GEN_UPDATE, e)) == NULL)
		goto out;
	if ((ret = gen_bind(st, s, g, e)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		ret = gen_write_err(st, g, rc, "update", e);
		goto out;
	}
	if (sqlite3_changes(st->db) == 0) {
		ret = err_set(e, HSMCA_ERR_NOT_FOUND, "store: no CA generation "
		    "%" PRId64, g->id);
		goto out;
	}
	ret = 0;
out:
	stmt_release(s);
	return ret;
}

/* Run a bound generation query and read its one row. */
static int
gen_fetch_one(struct store *st, sqlite3_stmt *s, const char *ref,
    struct store_generation *out, struct hsmca_err *e)
{
	int rc;

	switch ((rc = sqlite3_step(s))) {
	case SQLITE_ROW:
		return gen_from_row(st, s, out, e);
	case SQLITE_DONE:
		return err_set(e, HSMCA_ERR_NOT_FOUND,
		    "store: no CA generation %s", ref);
	default:
		return store_sqlerr(e, rc, "cannot read CA generation %s",
		    ref);
	}
}

int
store_get_generation(struct store *st, int64_t id,
    struct store_generation *out, struct hsmca_err *e)
{
	char ref[32];
	sqlite3_stmt *s;
	int rc, ret = HSMCA_ERR_STORE;

	memset(out, 0, sizeof(*out));
	snprintf(ref, sizeof(ref), "%" PRId64, id);
	if ((s = stmt_get(st, STMT_GEN_BY_ID, e)) == NULL)
		goto out;
	if ((rc = sqlite3_bind_int64(s, 1, id)) != SQLITE_OK) {
		ret = store_sqlerr(e, rc, "cannot read CA generation %s",
		    ref);
		goto out;
	}
	ret = gen_fetch_one(st, s, ref, out, e);
out:
	stmt_release(s);
	return ret;
}

int
store_find_generation(struct store *st, const char *ref,
    struct store_generation *out, struct hsmca_err *e)
{
	char hex[UTIL_SHA256_HEX], *end;
	enum store_stmt which;
	sqlite3_stmt *s = NULL;
	long long id;
	int rc, ret = HSMCA_ERR_STORE;

	memset(out, 0, sizeof(*out));
	if (ref == NULL)
		return err_set(e, HSMCA_ERR_ARG,
		    "store: no CA generation named");
	/* Thumbprints by their length; anything else must be an id. */
	if (thumbprint_normalize(ref, UTIL_SHA1_HEX - 1, hex,
	    sizeof(hex)) == 0)
		which = STMT_GEN_BY_SHA1;
	else if (thumbprint_normalize(ref, UTIL_SHA256_HEX - 1, hex,
	    sizeof(hex)) == 0)
		which = STMT_GEN_BY_SHA256;
	else {
		errno = 0;
		id = strtoll(ref, &end, 10);
		if (*ref < '0' || *ref > '9' || *end != '\0' || errno != 0 ||
		    id <= 0)
			return err_set(e, HSMCA_ERR_ARG, "store: \"%s\" is "
			    "neither a CA generation id nor a SHA-1 or SHA-256 "
			    "thumbprint", ref);
		return store_get_generation(st, (int64_t)id, out, e);
	}
	if ((s = stmt_get(st, which, e)) == NULL)
		goto out;
	if ((rc = sqlite3_bind_text(s, 1, hex, -1, SQLITE_STATIC)) !=
	    SQLITE_OK) {
		ret = store_sqlerr(e, rc, "cannot read CA generation %s", ref);
		goto out;
	}
	ret = gen_fetch_one(st, s, ref, out, e);
out:
	stmt_release(s);
	return ret;
}

int
store_active_generation(struct store *st, struct store_generation *out,
    struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc, ret = HSMCA_ERR_STORE;

	memset(out, 0, sizeof(*out));
	if ((s = stmt_get(st, STMT_GEN_ACTIVE, e)) == NULL)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		ret = err_set(e, HSMCA_ERR_CA_STATE, "no active CA generation "
		    "(`hsmca ca init` for a new CA; `hsmca ca rotate`, then "
		    "`hsmca ca activate` for one whose generations expired)");
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ret = store_sqlerr(e, rc, "cannot read the active CA "
		    "generation");
		goto out;
	}
	if ((ret = gen_from_row(st, s, out, e)) != 0)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		if (rc == SQLITE_ROW)
			ret = err_set(e, HSMCA_ERR_CA_STATE, "several CA "
			    "generations are active (%" PRId64 " and %" PRId64
			    "); deactivate all but one", out->id,
			    (int64_t)sqlite3_column_int64(s, GC_ID));
		else
			ret = store_sqlerr(e, rc, "cannot read the active "
			    "CA generation");
		store_generation_free_fields(out);
		goto out;
	}
	ret = 0;
out:
	stmt_release(s);
	return ret;
}

static const struct row_type gen_rows = {
	sizeof(struct store_generation), gen_from_row, gens_free
};

int
store_list_generations(struct store *st, struct store_generation **out,
    size_t *n, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	void *v;
	int ret;

	*out = NULL;
	*n = 0;
	if ((s = stmt_get(st, STMT_GEN_LIST, e)) == NULL)
		return HSMCA_ERR_STORE;
	if ((ret = stmt_collect(st, s, SQLITE_OK, &gen_rows, 8, &v, n, e,
	    "cannot list CA generations")) == 0)
		*out = v;
	return ret;
}

/* ---- certificates ---- */

void
store_cert_free_fields(struct store_cert *c)
{
	if (c == NULL)
		return;
	free(c->subject);
	free(c->sans);
	free(c->profile);
	free(c->requester);
	free(c->der);
	memset(c, 0, sizeof(*c));
	c->revoke_reason = -1;
}

/* store_certs_free, for stmt_collect. */
static void
certs_free(void *v, size_t n)
{
	store_certs_free(v, n);
}

void
store_certs_free(struct store_cert *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		store_cert_free_fields(&v[i]);
	free(v);
}

/* One row of a certificate query into c (a struct store_cert). */
static int
cert_from_row(struct store *st, sqlite3_stmt *s, void *row,
    struct hsmca_err *e)
{
	struct store_cert *c = row;
	int status, ret = HSMCA_ERR_STORE;

	memset(c, 0, sizeof(*c));
	c->revoke_reason = -1;
	c->id = sqlite3_column_int64(s, CC_ID);
	if (name_parse(cert_status_names, STORE_CERT_STATUS_MAX,
	    (const char *)sqlite3_column_text(s, CC_STATUS), &status) != 0 ||
	    col_copy(s, CC_SERIAL, c->serial, sizeof(c->serial)) == -1 ||
	    col_copy(s, CC_SHA256, c->sha256, sizeof(c->sha256)) == -1 ||
	    col_copy(s, CC_CSR_SHA256, c->csr_sha256,
	    sizeof(c->csr_sha256)) == -1) {
		err_set(e, HSMCA_ERR_STORE, "store: %s: certificate %" PRId64
		    " is malformed", st->path, c->id);
		goto out;
	}
	c->status = (enum store_cert_status)status;
	c->issuer_id = sqlite3_column_int64(s, CC_ISSUER_ID);
	c->not_before = (time_t)sqlite3_column_int64(s, CC_NOT_BEFORE);
	c->not_after = (time_t)sqlite3_column_int64(s, CC_NOT_AFTER);
	c->created_at = (time_t)sqlite3_column_int64(s, CC_CREATED_AT);
	c->revoked_at = (time_t)sqlite3_column_int64(s, CC_REVOKED_AT);
	if (sqlite3_column_type(s, CC_REVOKE_REASON) != SQLITE_NULL)
		c->revoke_reason = sqlite3_column_int(s, CC_REVOKE_REASON);
	c->batch_id = sqlite3_column_int64(s, CC_BATCH_ID);
	if (col_strdup(s, CC_SUBJECT, &c->subject) == -1 ||
	    col_strdup(s, CC_SANS, &c->sans) == -1 ||
	    col_strdup(s, CC_PROFILE, &c->profile) == -1 ||
	    col_strdup(s, CC_REQUESTER, &c->requester) == -1 ||
	    col_blob(s, CC_DER, &c->der, &c->der_len) == -1) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	ret = 0;
out:
	if (ret != 0)
		store_cert_free_fields(c);
	return ret;
}

/* Group commit (see below): a write waiting for a shared commit. */
enum group_kind { GROUP_RESERVE, GROUP_COMPLETE, GROUP_FAIL, GROUP_CALL };

/* One write waiting for a commit; lives on its caller's stack. */
struct group_op {
	enum group_kind		 kind;
	int64_t			 issuer_id;
	int			 device;
	int64_t			 batch_id;
	const char		*serial, *profile, *requester, *csr_sha256;
	time_t			 now;
	int64_t			*cert_id;
	const struct store_cert	*cert;
	int			(*then)(struct store *, void *,
				    struct hsmca_err *);
	void			*then_arg;
	int			 done;
	int			 ret;
	struct hsmca_err	 err;
	struct group_op		*next;
};

struct store_group {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cond;
	struct store	*w;		/* the group's own writing connection */
	struct group_op	*queue, **tail;
	int		 leading;	/* a thread is committing a batch */
	uint64_t	 commits, writes;
};

static int group_run(struct store_group *, struct group_op *, struct hsmca_err *);

/* Why a device certificate's reservation inserted nothing: its
 * generation, or for a batch's (batch_id), a CSR already signed or
 * being signed. */
static int
reserve_refused_err(struct store *st, int64_t issuer_id, int64_t batch_id,
    const char *serial, const char *csr_sha256, struct hsmca_err *e)
{
	struct store_generation g;
	int ret;

	memset(&g, 0, sizeof(g));
	if ((ret = store_get_generation(st, issuer_id, &g, e)) != 0)
		goto out;
	if (batch_id != 0 && g.kind == STORE_GEN_ISSUING &&
	    (g.status == STORE_GEN_ACTIVE || g.status == STORE_GEN_INACTIVE))
		ret = err_set(e, HSMCA_ERR_BUSY, "store: CSR %s already has a "
		    "certificate, or one a batch is signing now: serial %s is "
		    "not reserved for it", csr_sha256 != NULL ? csr_sha256 :
		    "", serial);
	else
		ret = err_set(e, HSMCA_ERR_CA_STATE, "CA generation %" PRId64
		    " is %s%s: serial %s is not issued under it", issuer_id,
		    g.kind == STORE_GEN_ROOT ? "a root, " : "",
		    store_gen_status_name(g.status), serial);
out:
	store_generation_free_fields(&g);
	return ret;
}

/* store_reserve_serial, and for a batch's certificate (batch_id not 0)
 * store_reserve_batch_serial. */
static int
reserve_cert(struct store *st, int64_t issuer_id, int device,
    int64_t batch_id, const char *serial, const char *profile,
    const char *requester, const char *csr_sha256, time_t now,
    int64_t *cert_id, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	enum store_stmt which;
	int rc = SQLITE_OK;

	if (st->group != NULL && !st->in_tx) {
		struct group_op op = { .kind = GROUP_RESERVE,
		    .issuer_id = issuer_id, .device = device,
		    .batch_id = batch_id, .serial = serial,
		    .profile = profile, .requester = requester,
		    .csr_sha256 = csr_sha256, .now = now, .cert_id = cert_id };

		return group_run(st->group, &op, e);
	}

	if (serial == NULL || !serial_is_canonical(serial))
		return err_set(e, HSMCA_ERR_ARG, "store: \"%s\" is not a "
		    "serial in canonical form", serial == NULL ? "" : serial);
	if (issuer_id <= 0)
		return err_set(e, HSMCA_ERR_ARG, "store: serial %s reserved "
		    "without an issuer", serial);
	if (batch_id != 0 && (batch_id < 0 || csr_sha256 == NULL))
		return err_set(e, HSMCA_ERR_ARG, "store: serial %s reserved "
		    "for a batch without its batch or CSR", serial);
	which = batch_id != 0 ? STMT_CERT_RESERVE_BATCH : device ?
	    STMT_CERT_RESERVE_DEVICE : STMT_CERT_RESERVE;
	if ((s = stmt_get(st, which, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_int(s, CC_ISSUER_ID, issuer_id, &rc);
	bind_text(s, CC_SERIAL, serial, &rc);
	bind_text(s, CC_PROFILE, profile, &rc);
	bind_text(s, CC_REQUESTER, requester, &rc);
	bind_text(s, CC_CSR_SHA256, csr_sha256, &rc);
	bind_int(s, CC_CREATED_AT, now, &rc);
	if (batch_id != 0)
		bind_int(s, CC_BATCH_ID, batch_id, &rc);
	switch (rc = stmt_run(st, s, rc, NULL)) {
	case SQLITE_DONE:
		break;
	case SQLITE_CONSTRAINT_UNIQUE:
		return err_set(e, HSMCA_ERR_EXISTS, "store: serial %s is "
		    "already used by CA generation %" PRId64, serial,
		    issuer_id);
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return err_set(e, HSMCA_ERR_NOT_FOUND, "store: cannot reserve "
		    "serial %s: no CA generation %" PRId64, serial, issuer_id);
	default:
		return store_sqlerr(e, rc, "cannot reserve serial %s", serial);
	}
	if (which != STMT_CERT_RESERVE && sqlite3_changes(st->db) == 0)
		return reserve_refused_err(st, issuer_id, batch_id, serial,
		    csr_sha256, e);
	if (cert_id != NULL)
		*cert_id = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int
store_reserve_serial(struct store *st, int64_t issuer_id, int device,
    const char *serial, const char *profile, const char *requester,
    const char *csr_sha256, time_t now, int64_t *cert_id,
    struct hsmca_err *e)
{
	return reserve_cert(st, issuer_id, device, 0, serial, profile,
	    requester, csr_sha256, now, cert_id, e);
}

int
store_reserve_batch_serial(struct store *st, int64_t issuer_id,
    int64_t batch_id, const char *serial, const char *profile,
    const char *requester, const char *csr_sha256, time_t now,
    int64_t *cert_id, struct hsmca_err *e)
{
	if (batch_id <= 0)
		return err_set(e, HSMCA_ERR_ARG, "store: serial %s reserved "
		    "for no batch", serial != NULL ? serial : "");
	return reserve_cert(st, issuer_id, 1, batch_id, serial, profile,
	    requester, csr_sha256, now, cert_id, e);
}

/* Say why an update of certificate id touched no row. */
static int
cert_state_err(struct store *st, int64_t id, const char *verb,
    struct hsmca_err *e)
{
	sqlite3_stmt *s;
	const char *status;
	int rc, ret = HSMCA_ERR_STORE;

	if ((s = stmt_get(st, STMT_CERT_STATE, e)) == NULL)
		goto out;
	if ((rc = stmt_step(s, sqlite3_bind_int64(s, 1, id))) == SQLITE_DONE) {
		ret = err_set(e, HSMCA_ERR_NOT_FOUND, "store: cannot %s "
		    "certificate %" PRId64 ": no such reservation", verb, id);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ret = store_sqlerr(e, rc, "cannot %s certificate %" PRId64,
		    verb, id);
		goto out;
	}
	status = (const char *)sqlite3_column_text(s, 2);
	if (status != NULL && strcmp(status, "reserved") == 0) {
		/* Reserved, so the caller's issuer or serial differed. */
		ret = err_set(e, HSMCA_ERR_ARG, "store: cannot %s certificate "
		    "%" PRId64 ": it was reserved as serial %s of CA "
		    "generation %" PRId64, verb, id,
		    (const char *)sqlite3_column_text(s, 1),
		    (int64_t)sqlite3_column_int64(s, 0));
		goto out;
	}
	ret = err_set(e, HSMCA_ERR_CA_STATE, "store: cannot %s certificate "
	    "%" PRId64 ": it is %s, not reserved", verb, id,
	    status == NULL ? "unknown" : status);
out:
	stmt_release(s);
	return ret;
}

int
store_complete_cert(struct store *st, const struct store_cert *c,
    struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc = SQLITE_OK, changes;

	if (st->group != NULL && !st->in_tx) {
		struct group_op op = { .kind = GROUP_COMPLETE, .cert = c };

		return group_run(st->group, &op, e);
	}

	if (c->der == NULL || c->der_len == 0)
		return err_set(e, HSMCA_ERR_ARG, "store: certificate %" PRId64
		    " completed without its DER", c->id);
	if ((s = stmt_get(st, STMT_CERT_COMPLETE, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_int(s, CC_ID, c->id, &rc);
	bind_opt_int(s, CC_ISSUER_ID, c->issuer_id, &rc);
	bind_text(s, CC_SERIAL, c->serial, &rc);
	bind_text(s, CC_SUBJECT, c->subject, &rc);
	bind_text(s, CC_SANS, c->sans, &rc);
	bind_opt_int(s, CC_NOT_BEFORE, c->not_before, &rc);
	bind_opt_int(s, CC_NOT_AFTER, c->not_after, &rc);
	bind_text(s, CC_SHA256, c->sha256, &rc);
	bind_text(s, CC_PROFILE, c->profile, &rc);
	bind_text(s, CC_REQUESTER, c->requester, &rc);
	bind_text(s, CC_CSR_SHA256, c->csr_sha256, &rc);
	bind_blob(s, CC_DER, c->der, c->der_len, &rc);
	bind_opt_int(s, CC_CREATED_AT, c->created_at, &rc);
	if ((rc = stmt_run(st, s, rc, &changes)) != SQLITE_DONE)
		return store_sqlerr(e, rc, "cannot record certificate %"
		    PRId64, c->id);
	if (changes == 0)
		return cert_state_err(st, c->id, "complete", e);
	return 0;
}

int
store_fail_cert(struct store *st, int64_t cert_id, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc = SQLITE_OK, changes;

	if (st->group != NULL && !st->in_tx) {
		struct group_op op = { .kind = GROUP_FAIL,
		    .cert_id = &cert_id };

		return group_run(st->group, &op, e);
	}

	if ((s = stmt_get(st, STMT_CERT_FAIL, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_int(s, 0, cert_id, &rc);
	if ((rc = stmt_run(st, s, rc, &changes)) != SQLITE_DONE)
		return store_sqlerr(e, rc, "cannot mark certificate %"
		    PRId64 " failed", cert_id);
	if (changes == 0)
		return cert_state_err(st, cert_id, "fail", e);
	return 0;
}

/* No certificate with serial (from issuer_id, unless it is 0). */
static int
cert_missing(const char *serial, int64_t issuer_id, struct hsmca_err *e)
{
	if (issuer_id != 0)
		return err_set(e, HSMCA_ERR_NOT_FOUND, "store: no certificate "
		    "with serial %s from CA generation %" PRId64, serial,
		    issuer_id);
	return err_set(e, HSMCA_ERR_NOT_FOUND, "store: no certificate with "
	    "serial %s", serial);
}

/* Serial looked up without an issuer, and generations a and b issued it. */
static int
cert_ambiguous(const char *serial, int64_t a, int64_t b, struct hsmca_err *e)
{
	return err_set(e, HSMCA_ERR_EXISTS, "store: serial %s is ambiguous: "
	    "CA generations %" PRId64 " and %" PRId64 " both issued it; name "
	    "the issuer", serial, a, b);
}

int
store_get_cert(struct store *st, int64_t issuer_id, const char *serial,
    struct store_cert *out, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc = SQLITE_OK, ret = HSMCA_ERR_STORE;

	memset(out, 0, sizeof(*out));
	out->revoke_reason = -1;
	if (serial == NULL || *serial == '\0')
		return err_set(e, HSMCA_ERR_ARG, "store: no serial given");
	if ((s = stmt_get(st, issuer_id != 0 ? STMT_CERT_BY_ISSUER_SERIAL :
	    STMT_CERT_BY_SERIAL, e)) == NULL)
		goto out;
	if (issuer_id != 0) {
		bind_int(s, 0, issuer_id, &rc);
		bind_text(s, 1, serial, &rc);
	} else
		bind_text(s, 0, serial, &rc);
	if ((rc = stmt_step(s, rc)) == SQLITE_DONE) {
		ret = cert_missing(serial, issuer_id, e);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ret = store_sqlerr(e, rc, "cannot read certificate %s",
		    serial);
		goto out;
	}
	if ((ret = cert_from_row(st, s, out, e)) != 0)
		goto out;
	if (issuer_id == 0 && (rc = sqlite3_step(s)) != SQLITE_DONE) {
		if (rc == SQLITE_ROW)
			ret = cert_ambiguous(serial, out->issuer_id,
			    (int64_t)sqlite3_column_int64(s, CC_ISSUER_ID), e);
		else
			ret = store_sqlerr(e, rc, "cannot read certificate "
			    "%s", serial);
		store_cert_free_fields(out);
		goto out;
	}
	ret = 0;
out:
	stmt_release(s);
	return ret;
}

/* The shape of a filter (FILTER_*), or -1 if it is malformed. */
static int
filter_shape(const struct store_cert_filter *f)
{
	int shape = 0;

	if (f == NULL)
		return 0;
	if (f->status < -1 || f->status >= STORE_CERT_STATUS_MAX ||
	    f->expired < -1 || f->expired > 1 || f->limit < 0)
		return -1;
	if (f->issuer_id != 0)
		shape |= FILTER_ISSUER;
	if (f->status != -1)
		shape |= FILTER_STATUS;
	if (f->expired == 1)
		shape |= FILTER_EXPIRED;
	else if (f->expired == 0)
		shape |= FILTER_CURRENT;
	if (f->profile != NULL)
		shape |= FILTER_PROFILE;
	if (f->limit > 0)
		shape |= FILTER_LIMIT;
	return shape;
}

/* Conditions of a filter shape. Parameters: ?1 issuer, ?2 status, ?3 now,
 * ?4 profile, ?5 limit. */
static const struct {
	int		 bit;
	const char	*cond;
} filter_conds[] = {
	{ FILTER_ISSUER, "issuer_id = ?1" },
	{ FILTER_STATUS, "status = ?2" },
	{ FILTER_EXPIRED, "not_after < ?3" },
	{ FILTER_CURRENT, "not_after >= ?3" },
	{ FILTER_PROFILE, "profile = ?4" },
};

/* The cached statement for this query and shape of f, bound to f. */
static int
filter_stmt(struct store *st, enum filter_query q,
    const struct store_cert_filter *f, sqlite3_stmt **out,
    struct hsmca_err *e)
{
	char sql[512];
	const char *sep = " WHERE ";
	sqlite3_stmt *s;
	size_t n;
	int shape, rc = SQLITE_OK;

	*out = NULL;
	if ((shape = filter_shape(f)) == -1)
		return err_set(e, HSMCA_ERR_ARG,
		    "store: malformed certificate filter");
	if (q == FILTER_COUNT)
		shape &= ~FILTER_LIMIT;
	if ((s = st->filter[q][shape]) == NULL) {
		n = (size_t)snprintf(sql, sizeof(sql), "%s FROM cert",
		    q == FILTER_COUNT ? "SELECT count(*)" :
		    "SELECT " CERT_COLUMNS);
		for (size_t i = 0; i < sizeof(filter_conds) /
		    sizeof(filter_conds[0]); i++) {
			if ((shape & filter_conds[i].bit) == 0)
				continue;
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%s",
			    sep, filter_conds[i].cond);
			sep = " AND ";
		}
		if (q == FILTER_LIST)
			snprintf(sql + n, sizeof(sql) - n, " ORDER BY id%s",
			    shape & FILTER_LIMIT ? " LIMIT ?5" : "");
		if ((s = stmt_prepare(st, sql, e)) == NULL)
			return HSMCA_ERR_STORE;
		st->filter[q][shape] = s;
	}
	if (shape & FILTER_ISSUER)
		bind_int(s, 0, f->issuer_id, &rc);
	if (shape & FILTER_STATUS)
		bind_text(s, 1, cert_status_names[f->status], &rc);
	if (shape & (FILTER_EXPIRED | FILTER_CURRENT))
		bind_int(s, 2, f->now != 0 ? f->now : clock_now(), &rc);
	if (shape & FILTER_PROFILE)
		bind_text(s, 3, f->profile, &rc);
	if (shape & FILTER_LIMIT)
		bind_int(s, 4, f->limit, &rc);
	if (rc != SQLITE_OK) {
		stmt_release(s);
		return store_sqlerr(e, rc, "cannot search certificates");
	}
	*out = s;
	return 0;
}

static const struct row_type cert_rows = {
	sizeof(struct store_cert), cert_from_row, certs_free
};

int
store_list_certs(struct store *st, const struct store_cert_filter *f,
    struct store_cert **out, size_t *n, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	void *v;
	int ret;

	*out = NULL;
	*n = 0;
	if ((ret = filter_stmt(st, FILTER_LIST, f, &s, e)) != 0)
		return ret;
	if ((ret = stmt_collect(st, s, SQLITE_OK, &cert_rows, 16, &v, n, e,
	    "cannot list certificates")) == 0)
		*out = v;
	return ret;
}

int
store_count_certs(struct store *st, const struct store_cert_filter *f,
    int64_t *count, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc, ret;

	*count = 0;
	if ((ret = filter_stmt(st, FILTER_COUNT, f, &s, e)) != 0)
		return ret;
	if ((rc = stmt_int64(s, SQLITE_OK, count)) != SQLITE_ROW)
		return store_sqlerr(e, rc, "cannot count certificates");
	return 0;
}

int
store_integrity_check(struct store *st, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	const char *res;
	int rc, ret = HSMCA_ERR_STORE;

	if ((s = stmt_get(st, STMT_INTEGRITY, e)) == NULL)
		goto out;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		ret = store_sqlerr(e, rc, "cannot check %s", st->path);
		goto out;
	}
	res = (const char *)sqlite3_column_text(s, 0);
	if (res == NULL || strcmp(res, "ok") != 0) {
		err_set(e, HSMCA_ERR_STORE, "store: %s is damaged: %s",
		    st->path, res == NULL ? "no result" : res);
		goto out;
	}
	ret = 0;
out:
	stmt_release(s);
	return ret;
}

/* ---- revocation ---- */

static int
reason_is_valid(int reason)
{
	/* 7 is unused; removeFromCRL (8) only means something in a delta
	 * CRL: a hold is lifted with store_unhold_cert. */
	return reason >= 0 && reason <= STORE_REASON_MAX && reason != 7 &&
	    reason != 8;
}

static int
revoke_check(const char *serial, int reason, time_t when,
    struct hsmca_err *e)
{
	if (serial != NULL && !serial_is_canonical(serial))
		return err_set(e, HSMCA_ERR_ARG, "store: \"%s\" is not a "
		    "serial in canonical form", serial);
	if (!reason_is_valid(reason))
		return err_set(e, HSMCA_ERR_ARG, "store: %d is not a CRLReason "
		    "a certificate can be revoked with", reason);
	if (when <= 0)
		return err_set(e, HSMCA_ERR_ARG, "store: no revocation time");
	return 0;
}

/* What the store knows of one serial. */
struct cert_state {
	int64_t	issuer_id;
	int	status;		/* enum store_cert_status */
	int	reason;		/* -1: none */
};

/* The row of serial issued by issuer_id (0: by whichever generation
 * did, HSMCA_ERR_EXISTS if several did). HSMCA_ERR_NOT_FOUND names the
 * generation that issued it when it was another. */
static int
cert_lookup(struct store *st, int64_t issuer_id, const char *serial,
    struct cert_state *out, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int64_t id, other = 0;
	int rc, status, found = 0, ret = HSMCA_ERR_STORE;

	memset(out, 0, sizeof(*out));
	if ((s = stmt_get(st, STMT_CERT_LOOKUP, e)) == NULL)
		goto out;
	if ((rc = sqlite3_bind_text(s, 1, serial, -1, SQLITE_STATIC)) !=
	    SQLITE_OK) {
		ret = store_sqlerr(e, rc, "cannot read certificate %s",
		    serial);
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		id = sqlite3_column_int64(s, 0);
		if (issuer_id != 0 && id != issuer_id) {
			if (other == 0)
				other = id;
			continue;
		}
		if (found) {
			ret = cert_ambiguous(serial, out->issuer_id, id, e);
			goto out;
		}
		if (name_parse(cert_status_names, STORE_CERT_STATUS_MAX,
		    (const char *)sqlite3_column_text(s, 1), &status) != 0) {
			ret = err_set(e, HSMCA_ERR_STORE, "store: %s: "
			    "certificate %s is malformed", st->path, serial);
			goto out;
		}
		out->issuer_id = id;
		out->status = status;
		out->reason = sqlite3_column_type(s, 2) == SQLITE_NULL ? -1 :
		    sqlite3_column_int(s, 2);
		found = 1;
	}
	if (rc != SQLITE_DONE) {
		ret = store_sqlerr(e, rc, "cannot read certificate %s", serial);
		goto out;
	}
	if (!found) {
		if (other != 0)
			ret = err_set(e, HSMCA_ERR_NOT_FOUND, "store: serial "
			    "%s was not issued by CA generation %" PRId64
			    " (generation %" PRId64 " issued it)", serial,
			    issuer_id, other);
		else
			ret = cert_missing(serial, issuer_id, e);
		goto out;
	}
	ret = 0;
out:
	stmt_release(s);
	return ret;
}

/* *issuer_id, or when it is 0 the one generation that issued serial. */
static int
cert_issuer(struct store *st, const char *serial, int64_t *issuer_id,
    struct hsmca_err *e)
{
	struct cert_state cs;
	int ret;

	if (*issuer_id != 0)
		return 0;
	if ((ret = cert_lookup(st, 0, serial, &cs, e)) != 0)
		return ret;
	*issuer_id = cs.issuer_id;
	return 0;
}

/* One revocation: one indexed UPDATE, and a look at the row only when
 * it changed nothing. */
static int
revoke_one(struct store *st, int64_t issuer_id, const char *serial,
    int reason, time_t when, int *already, struct hsmca_err *e)
{
	struct cert_state cs;
	sqlite3_stmt *s;
	int rc = SQLITE_OK, changes, ret;

	*already = 0;
	if ((ret = cert_issuer(st, serial, &issuer_id, e)) != 0)
		return ret;
	if ((s = stmt_get(st, STMT_CERT_REVOKE, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_int(s, 0, issuer_id, &rc);
	bind_text(s, 1, serial, &rc);
	bind_int(s, 2, when, &rc);
	bind_int(s, 3, reason, &rc);
	if ((rc = stmt_run(st, s, rc, &changes)) != SQLITE_DONE)
		return store_sqlerr(e, rc, "cannot revoke certificate %s",
		    serial);
	if (changes > 0)
		return 0;
	if ((ret = cert_lookup(st, issuer_id, serial, &cs, e)) != 0)
		return ret;
	switch (cs.status) {
	case STORE_CERT_REVOKED:
		*already = 1;
		return 0;
	case STORE_CERT_VALID:
		return err_set(e, HSMCA_ERR_STORE, "store: certificate %s "
		    "changed while it was being revoked; try again", serial);
	default:
		return err_set(e, HSMCA_ERR_CA_STATE, "store: certificate %s "
		    "of CA generation %" PRId64 " was never issued (it is %s)",
		    serial, issuer_id, cert_status_names[cs.status]);
	}
}

int
store_revoke_cert(struct store *st, int64_t issuer_id, const char *serial,
    int reason, time_t when, int *already, struct hsmca_err *e)
{
	int ignored, ret;

	if (already == NULL)
		already = &ignored;
	*already = 0;
	if (serial == NULL)
		return err_set(e, HSMCA_ERR_ARG, "store: no serial given");
	if ((ret = revoke_check(serial, reason, when, e)) != 0)
		return ret;
	return revoke_one(st, issuer_id, serial, reason, when, already, e);
}

int
store_unhold_cert(struct store *st, int64_t issuer_id, const char *serial,
    struct hsmca_err *e)
{
	struct cert_state cs;
	sqlite3_stmt *s;
	int rc = SQLITE_OK, changes, ret;

	if (serial == NULL || !serial_is_canonical(serial))
		return err_set(e, HSMCA_ERR_ARG, "store: \"%s\" is not a "
		    "serial in canonical form", serial == NULL ? "" : serial);
	if ((ret = cert_issuer(st, serial, &issuer_id, e)) != 0)
		return ret;
	if ((s = stmt_get(st, STMT_CERT_UNHOLD, e)) == NULL)

		return HSMCA_ERR_STORE;
	bind_int(s, 0, issuer_id, &rc);
	bind_text(s, 1, serial, &rc);
	if ((rc = stmt_run(st, s, rc, &changes)) != SQLITE_DONE)
		return store_sqlerr(e, rc, "cannot lift the hold on "
		    "certificate %s", serial);
	if (changes > 0)
		return 0;
	if ((ret = cert_lookup(st, issuer_id, serial, &cs, e)) != 0)
		return ret;
	if (cs.status == STORE_CERT_REVOKED)
		return err_set(e, HSMCA_ERR_CA_STATE, "store: certificate %s "
		    "is revoked for good (CRLReason %d), not on hold; it "
		    "cannot be reinstated", serial, cs.reason);
	return err_set(e, HSMCA_ERR_CA_STATE, "store: certificate %s is %s, "
	    "not on hold", serial, cert_status_names[cs.status]);
}

/* Bulk writes run in one transaction: their own, or the caller's. */
static int
bulk_begin(struct store *st, int *own, struct hsmca_err *e)
{
	int ret;

	*own = 0;
	if (st->in_tx)
		return 0;
	if ((ret = store_begin(st, e)) != 0)
		return ret;
	*own = 1;
	return 0;
}

static int
bulk_end(struct store *st, int own, int ret, struct hsmca_err *e)
{
	if (!own)
		return ret;
	if (ret == 0 && (ret = store_commit(st, e)) == 0)
		return 0;
	store_rollback(st);
	return ret;
}

int
store_revoke_serials(struct store *st, int64_t issuer_id,
    const char *const *serials, size_t n, int reason, time_t when,
    size_t *revoked, size_t *already, struct hsmca_err *e)
{
	size_t nrev = 0, nalr = 0;
	int own = 0, was, ret;

	if (revoked != NULL)
		*revoked = 0;
	if (already != NULL)
		*already = 0;
	if ((ret = revoke_check(NULL, reason, when, e)) != 0)
		return ret;
	/* Every serial well formed before anything is written. */
	for (size_t i = 0; i < n; i++)
		if (serials[i] == NULL || !serial_is_canonical(serials[i]))
			return err_set(e, HSMCA_ERR_ARG, "store: serial %zu of "
			    "the list, \"%s\", is not in canonical form", i + 1,
			    serials[i] == NULL ? "" : serials[i]);
	if ((ret = bulk_begin(st, &own, e)) != 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		if ((ret = revoke_one(st, issuer_id, serials[i], reason, when,
		    &was, e)) != 0)
			break;
		if (was)
			nalr++;
		else
			nrev++;
	}
	if ((ret = bulk_end(st, own, ret, e)) != 0)
		return ret;
	if (revoked != NULL)
		*revoked = nrev;
	if (already != NULL)
		*already = nalr;
	return 0;
}

int
store_revoke_issuer(struct store *st, int64_t issuer_id, int reason,
    time_t when, size_t *revoked, size_t *already, struct hsmca_err *e)
{
	struct store_generation g;
	sqlite3_stmt *s;
	int64_t kept = 0;
	int rc = SQLITE_OK, changes = 0, own = 0, ret;

	if (revoked != NULL)
		*revoked = 0;
	if (already != NULL)
		*already = 0;
	if ((ret = revoke_check(NULL, reason, when, e)) != 0)
		return ret;
	if ((ret = bulk_begin(st, &own, e)) != 0)
		return ret;
	if ((ret = store_get_generation(st, issuer_id, &g, e)) != 0)
		goto out;
	store_generation_free_fields(&g);
	ret = HSMCA_ERR_STORE;
	if ((s = stmt_get(st, STMT_CERT_COUNT_KEPT, e)) == NULL)
		goto out;
	bind_int(s, 0, issuer_id, &rc);
	bind_int(s, 3, reason, &rc);
	if ((rc = stmt_int64(s, rc, &kept)) != SQLITE_ROW) {
		ret = store_sqlerr(e, rc, "cannot count the revoked "
		    "certificates of CA generation %" PRId64, issuer_id);
		goto out;
	}
	if ((s = stmt_get(st, STMT_CERT_REVOKE_ISSUER, e)) == NULL)
		goto out;
	rc = SQLITE_OK;
	bind_int(s, 0, issuer_id, &rc);
	bind_int(s, 2, when, &rc);
	bind_int(s, 3, reason, &rc);
	if ((rc = stmt_run(st, s, rc, &changes)) != SQLITE_DONE) {
		ret = store_sqlerr(e, rc, "cannot revoke the certificates of "
		    "CA generation %" PRId64, issuer_id);
		goto out;
	}
	ret = 0;
out:
	if ((ret = bulk_end(st, own, ret, e)) != 0)
		return ret;
	if (revoked != NULL)
		*revoked = (size_t)changes;
	if (already != NULL)
		*already = (size_t)kept;
	return 0;
}

static int
revoked_row(struct store *st, sqlite3_stmt *s, void *arg,
    struct hsmca_err *e)
{
	struct walk *w = arg;
	struct store_revoked r;

	if ((r.serial = (const char *)sqlite3_column_text(s, 0)) == NULL)
		return err_set(e, HSMCA_ERR_STORE, "store: %s: a revoked "
		    "certificate without a serial", st->path);
	r.revoked_at = (time_t)sqlite3_column_int64(s, 1);
	r.reason = sqlite3_column_int(s, 2);
	r.not_after = (time_t)sqlite3_column_int64(s, 3);
	w->n++;
	return w->fn.revoked(w->arg, &r);
}

int
store_list_revoked(struct store *st, int64_t issuer_id, time_t now,
    int (*fn)(void *, const struct store_revoked *), void *arg,
    size_t *count, struct hsmca_err *e)
{
	struct walk w = { .fn.revoked = fn, .arg = arg };
	sqlite3_stmt *s;
	int rc = SQLITE_OK, ret = HSMCA_ERR_STORE;

	if ((s = stmt_get(st, STMT_REVOKED_LIST, e)) == NULL)
		goto out;
	bind_int(s, 0, issuer_id, &rc);
	bind_int(s, 1, now, &rc);
	if (rc != SQLITE_OK) {
		stmt_release(s);
		ret = store_sqlerr(e, rc, "cannot list revoked certificates");
		goto out;
	}
	ret = stmt_each(st, s, SQLITE_OK, revoked_row, &w, e, "cannot list "
	    "the revoked certificates of CA generation %" PRId64, issuer_id);
out:
	if (count != NULL)
		*count = w.n;
	return ret;
}

int
store_next_crl_number(struct store *st, int64_t issuer_id,
    time_t this_update, int64_t *number, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc = SQLITE_OK, ret = HSMCA_ERR_STORE;

	*number = 0;
	if ((s = stmt_get(st, STMT_CRL_NEXT, e)) == NULL)
		goto out;
	bind_int(s, 0, issuer_id, &rc);
	bind_int(s, 1, this_update, &rc);
	if ((rc = stmt_step(s, rc)) == SQLITE_ROW) {
		*number = sqlite3_column_int64(s, 0);
		rc = sqlite3_step(s);
	}
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
		ret = err_set(e, HSMCA_ERR_NOT_FOUND, "store: no CA generation "
		    "%" PRId64, issuer_id);
		goto out;
	}
	if (rc != SQLITE_DONE || *number <= 0) {
		*number = 0;
		ret = store_sqlerr(e, rc, "cannot take the next CRL number of "
		    "CA generation %" PRId64, issuer_id);
		goto out;
	}
	ret = 0;
out:
	stmt_release(s);
	return ret;
}

int
store_crl_state(struct store *st, int64_t issuer_id, int64_t *number,
    time_t *this_update, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc = SQLITE_OK, ret = HSMCA_ERR_STORE;

	*number = 0;
	*this_update = 0;
	if ((s = stmt_get(st, STMT_CRL_STATE, e)) == NULL)
		goto out;
	bind_int(s, 0, issuer_id, &rc);
	if ((rc = stmt_step(s, rc)) == SQLITE_ROW) {
		*number = sqlite3_column_int64(s, 0);
		*this_update = (time_t)sqlite3_column_int64(s, 1);
	} else if (rc != SQLITE_DONE) {
		ret = store_sqlerr(e, rc, "cannot read the CRL state of CA "
		    "generation %" PRId64, issuer_id);
		goto out;
	}
	ret = 0;
out:
	stmt_release(s);
	return ret;
}

/* ---- the disallow list ---- */

const char *
store_disallow_kind_name(enum store_disallow_kind k)
{
	if ((unsigned)k >= STORE_DISALLOW_KIND_MAX)
		return "unknown";
	return disallow_kind_names[k];
}

#define DISALLOW_IDENTITY_MAX	1024

int
store_disallow_normalize(const char *in, char buf[UTIL_SHA256_HEX],
    const char **out, enum store_disallow_kind *kind, struct hsmca_err *e)
{
	if (in == NULL || *in == '\0')
		return err_set(e, HSMCA_ERR_ARG, "store: no device identity "
		    "given");
	if (thumbprint_normalize(in, UTIL_SHA256_HEX - 1, buf,
	    UTIL_SHA256_HEX) == 0) {
		*out = buf;
		*kind = STORE_DISALLOW_FINGERPRINT;
		return 0;
	}
	if (strlen(in) > DISALLOW_IDENTITY_MAX)
		return err_set(e, HSMCA_ERR_ARG, "store: a device identity is "
		    "at most %d characters", DISALLOW_IDENTITY_MAX);
	for (const char *p = in; *p != '\0'; p++)
		if (iscntrl((unsigned char)*p))
			return err_set(e, HSMCA_ERR_ARG, "store: a device "
			    "identity has no control characters");
	*out = in;
	*kind = STORE_DISALLOW_CN;
	return 0;
}

int
store_disallow_add(struct store *st, const char *identity, const char *note,
    time_t now, struct hsmca_err *e)
{
	char buf[UTIL_SHA256_HEX];
	enum store_disallow_kind kind;
	const char *id;
	sqlite3_stmt *s;
	int rc = SQLITE_OK, ret;

	if ((ret = store_disallow_normalize(identity, buf, &id, &kind, e)) != 0)
		return ret;
	if ((s = stmt_get(st, STMT_DISALLOW_ADD, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_text(s, 0, id, &rc);
	bind_text(s, 1, disallow_kind_names[kind], &rc);
	bind_int(s, 2, now > 0 ? now : clock_now(), &rc);
	bind_text(s, 3, note, &rc);
	rc = stmt_run(st, s, rc, NULL);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
	    rc == SQLITE_CONSTRAINT_UNIQUE)
		return err_set(e, HSMCA_ERR_EXISTS, "store: %s is already on "
		    "the disallow list", id);
	if (rc != SQLITE_DONE)
		return store_sqlerr(e, rc, "cannot disallow %s", id);
	return 0;
}

int
store_disallow_remove(struct store *st, const char *identity,
    struct hsmca_err *e)
{
	char buf[UTIL_SHA256_HEX];
	enum store_disallow_kind kind;
	const char *id;
	sqlite3_stmt *s;
	int rc = SQLITE_OK, changes, ret;

	if ((ret = store_disallow_normalize(identity, buf, &id, &kind, e)) != 0)
		return ret;
	if ((s = stmt_get(st, STMT_DISALLOW_REMOVE, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_text(s, 0, id, &rc);
	if ((rc = stmt_run(st, s, rc, &changes)) != SQLITE_DONE)
		return store_sqlerr(e, rc, "cannot remove %s from the disallow "
		    "list", id);
	if (changes == 0)
		return err_set(e, HSMCA_ERR_NOT_FOUND, "store: %s is not on "
		    "the disallow list", id);
	return 0;
}

void
store_disallow_free(struct store_disallow *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].identity);
		free(v[i].note);
	}
	free(v);
}

/* store_disallow_free, for stmt_collect. */
static void
disallows_free(void *v, size_t n)
{
	store_disallow_free(v, n);
}

/* One row of STMT_DISALLOW_LIST into d (a struct store_disallow). */
static int
disallow_from_row(struct store *st, sqlite3_stmt *s, void *row,
    struct hsmca_err *e)
{
	struct store_disallow *d = row;
	int kind;

	memset(d, 0, sizeof(*d));
	if (name_parse(disallow_kind_names, STORE_DISALLOW_KIND_MAX,
	    (const char *)sqlite3_column_text(s, 1), &kind) != 0)
		return err_set(e, HSMCA_ERR_STORE, "store: %s: a malformed "
		    "disallow entry", st->path);
	d->kind = (enum store_disallow_kind)kind;
	d->added_at = (time_t)sqlite3_column_int64(s, 2);
	if (col_strdup(s, 0, &d->identity) == -1 ||
	    col_strdup(s, 3, &d->note) == -1) {
		free(d->identity);
		free(d->note);
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	}
	return 0;
}

static const struct row_type disallow_rows = {
	sizeof(struct store_disallow), disallow_from_row, disallows_free
};

int
store_disallow_list(struct store *st, struct store_disallow **out, size_t *n,
    struct hsmca_err *e)
{
	sqlite3_stmt *s;
	void *v;
	int ret;

	*out = NULL;
	*n = 0;
	if ((s = stmt_get(st, STMT_DISALLOW_LIST, e)) == NULL)
		return HSMCA_ERR_STORE;
	if ((ret = stmt_collect(st, s, SQLITE_OK, &disallow_rows, 16, &v, n, e,
	    "cannot list the disallow list")) == 0)
		*out = v;
	return ret;
}

int
store_disallow_check(struct store *st, const char *identity,
    struct hsmca_err *e)
{
	char buf[UTIL_SHA256_HEX];
	enum store_disallow_kind kind;
	const char *id, *note;
	sqlite3_stmt *s;
	int rc = SQLITE_OK, ret;

	if ((ret = store_disallow_normalize(identity, buf, &id, &kind, e)) != 0)
		return ret;
	if ((s = stmt_get(st, STMT_DISALLOW_GET, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_text(s, 0, id, &rc);
	if ((rc = stmt_step(s, rc)) == SQLITE_ROW) {
		note = (const char *)sqlite3_column_text(s, 1);
		ret = err_set(e, HSMCA_ERR_POLICY, "%s %s is disallowed%s%s%s",
		    kind == STORE_DISALLOW_CN ? "device" : "certificate", id,
		    note != NULL ? " (" : "", note != NULL ? note : "",
		    note != NULL ? ")" : "");
	} else if (rc == SQLITE_DONE)
		ret = 0;
	else
		ret = store_sqlerr(e, rc, "cannot check %s against the "
		    "disallow list", id);
	stmt_release(s);
	return ret;
}

/* ---- group commit ---- */

static int store_exec(struct store *st, const char *sql);

static int
group_apply(struct store *w, struct group_op *op)
{
	int ret;

	switch (op->kind) {
	case GROUP_RESERVE:
		return reserve_cert(w, op->issuer_id, op->device,
		    op->batch_id, op->serial, op->profile, op->requester,
		    op->csr_sha256, op->now, op->cert_id, &op->err);
	case GROUP_COMPLETE:
		ret = store_complete_cert(w, op->cert, &op->err);
		if (ret == 0 && op->then != NULL)
			ret = op->then(w, op->then_arg, &op->err);
		return ret;
	case GROUP_FAIL:
		return store_fail_cert(w, *op->cert_id, &op->err);
	case GROUP_CALL:
		return op->then(w, op->then_arg, &op->err);
	}
	return err_set(&op->err, HSMCA_ERR_INTERNAL, "store: bad group op");
}

/* Commit one batch: each write in a savepoint of its own, one COMMIT
 * (one fsync) for all of them. */
static void
group_commit_batch(struct store_group *g, struct group_op *batch)
{
	struct hsmca_err e;
	struct group_op *op;
	int ret;

	if ((ret = store_begin(g->w, &e)) != 0) {
		for (op = batch; op != NULL; op = op->next) {
			op->ret = ret;
			op->err = e;
		}
		return;
	}
	for (op = batch; op != NULL; op = op->next) {
		if (store_exec(g->w, "SAVEPOINT w") != 0) {
			op->ret = err_set(&op->err, HSMCA_ERR_STORE,
			    "store: savepoint: %s", sqlite3_errmsg(g->w->db));
			continue;
		}
		if ((op->ret = group_apply(g->w, op)) != 0)
			(void)store_exec(g->w, "ROLLBACK TO w");
		(void)store_exec(g->w, "RELEASE w");
	}
	if ((ret = store_commit(g->w, &e)) != 0) {
		store_rollback(g->w);
		for (op = batch; op != NULL; op = op->next)
			if (op->ret == 0) {
				op->ret = ret;
				op->err = e;
			}
	}
}

static int
group_run(struct store_group *g, struct group_op *op, struct hsmca_err *e)
{
	struct group_op *batch, *o;
	uint64_t n;

	pthread_mutex_lock(&g->mu);
	op->next = NULL;
	*g->tail = op;
	g->tail = &op->next;
	while (!op->done) {
		if (g->leading) {
			pthread_cond_wait(&g->cond, &g->mu);
			continue;
		}
		/* Lead: take everything queued so far, ours included. */
		g->leading = 1;
		batch = g->queue;
		g->queue = NULL;
		g->tail = &g->queue;
		pthread_mutex_unlock(&g->mu);

		group_commit_batch(g, batch);

		pthread_mutex_lock(&g->mu);
		for (n = 0, o = batch; o != NULL; o = o->next, n++)
			o->done = 1;
		g->commits++;
		g->writes += n;
		g->leading = 0;
		pthread_cond_broadcast(&g->cond);
	}
	pthread_mutex_unlock(&g->mu);
	if (op->ret != 0 && e != NULL)
		*e = op->err;
	return op->ret;
}

int
store_group_open(const char *path, struct store_group **out,
    struct hsmca_err *e)
{
	struct store_group *g;
	int ret;

	*out = NULL;
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	if ((ret = store_open(path, &g->w, e)) != 0) {
		free(g);
		return ret;
	}
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->tail = &g->queue;
	*out = g;
	return 0;
}

void
store_group_close(struct store_group *g)
{
	if (g == NULL)
		return;
	store_close(g->w);
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cond);
	free(g);
}

void
store_set_group(struct store *st, struct store_group *g)
{
	st->group = g;
}

void
store_group_stats(struct store_group *g, uint64_t *commits, uint64_t *writes)
{
	pthread_mutex_lock(&g->mu);
	*commits = g->commits;
	*writes = g->writes;
	pthread_mutex_unlock(&g->mu);
}

static int
store_exec(struct store *st, const char *sql)
{
	return sqlite3_exec(st->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int
store_in_transaction(struct store *st)
{
	return st != NULL && st->in_tx;
}

/* Complete c (GROUP_COMPLETE), then call then() if any: in one transaction,
 * the group's shared commit when st has a group and no transaction open. */
static int
write_with(struct store *st, enum group_kind kind, const struct store_cert *c,
    int (*then)(struct store *, void *, struct hsmca_err *), void *arg,
    struct hsmca_err *e)
{
	int own = 0, ret;

	if (st->group != NULL && !st->in_tx) {
		struct group_op op = { .kind = kind, .cert = c, .then = then,
		    .then_arg = arg };

		return group_run(st->group, &op, e);
	}
	if ((ret = bulk_begin(st, &own, e)) != 0)
		return ret;
	ret = kind == GROUP_COMPLETE ? store_complete_cert(st, c, e) : 0;

	if (ret == 0 && then != NULL)
		ret = then(st, arg, e);
	return bulk_end(st, own, ret, e);
}

int
store_complete_cert_with(struct store *st, const struct store_cert *c,
    int (*then)(struct store *, void *, struct hsmca_err *), void *arg,
    struct hsmca_err *e)
{
	return write_with(st, GROUP_COMPLETE, c, then, arg, e);
}

int
store_write_with(struct store *st,
    int (*fn)(struct store *, void *, struct hsmca_err *), void *arg,
    struct hsmca_err *e)
{
	return write_with(st, GROUP_CALL, NULL, fn, arg, e);
}


/* ---- the audit log ---- */

int
store_audit_last(struct store *st, int64_t *id,
    unsigned char hash[STORE_AUDIT_HASH_LEN], struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc, ret = HSMCA_ERR_STORE;

	*id = 0;
	memset(hash, 0, STORE_AUDIT_HASH_LEN);
	if ((s = stmt_get(st, STMT_AUDIT_LAST, e)) == NULL)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		ret = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ret = store_sqlerr(e, rc, "cannot read the audit log");
		goto out;
	}
	*id = sqlite3_column_int64(s, 0);
	if (sqlite3_column_bytes(s, 1) != STORE_AUDIT_HASH_LEN) {
		ret = err_set(e, HSMCA_ERR_STORE, "store: %s: audit record %"
		    PRId64 " is malformed; run `hsmca audit verify`", st->path,
		    *id);
		goto out;
	}
	memcpy(hash, sqlite3_column_blob(s, 1), STORE_AUDIT_HASH_LEN);
	ret = 0;
out:
	stmt_release(s);
	return ret;
}

int
store_audit_insert(struct store *st, const struct store_audit *r,
    struct hsmca_err *e)
{
	const char *text[] = { r->actor, r->action, r->object, r->outcome,
	    r->detail };
	sqlite3_stmt *s;
	int rc = SQLITE_OK;

	if ((s = stmt_get(st, STMT_AUDIT_INSERT, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_int(s, 0, r->id, &rc);
	bind_int(s, 1, r->at, &rc);
	/* Empty strings stay empty strings: they are hashed as such. */
	for (int i = 0; i < 5 && rc == SQLITE_OK; i++)
		rc = sqlite3_bind_text(s, i + 3, text[i] != NULL ? text[i] :
		    "", -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(s, 8, r->prev_hash,
		    STORE_AUDIT_HASH_LEN, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(s, 9, r->hash, STORE_AUDIT_HASH_LEN,
		    SQLITE_STATIC);
	if ((rc = stmt_run(st, s, rc, NULL)) != SQLITE_DONE)
		return store_sqlerr(e, rc, "cannot append audit record %"
		    PRId64, r->id);
	return 0;
}

static const char *
col_text0(sqlite3_stmt *s, int col)
{
	const unsigned char *v = sqlite3_column_text(s, col);

	return v != NULL ? (const char *)v : "";
}

static int
audit_row(struct store *st, sqlite3_stmt *s, void *arg,
    struct hsmca_err *e)
{
	struct walk *w = arg;
	struct store_audit r;

	memset(&r, 0, sizeof(r));
	r.id = sqlite3_column_int64(s, 0);
	r.at = (time_t)sqlite3_column_int64(s, 1);
	r.actor = col_text0(s, 2);
	r.action = col_text0(s, 3);
	r.object = col_text0(s, 4);
	r.outcome = col_text0(s, 5);
	r.detail = col_text0(s, 6);
	if (sqlite3_column_bytes(s, 7) == STORE_AUDIT_HASH_LEN &&
	    sqlite3_column_bytes(s, 8) == STORE_AUDIT_HASH_LEN) {
		memcpy(r.prev_hash, sqlite3_column_blob(s, 7),
		    STORE_AUDIT_HASH_LEN);
		memcpy(r.hash, sqlite3_column_blob(s, 8), STORE_AUDIT_HASH_LEN);
	} else
		r.malformed = 1;
	w->n++;
	return w->fn.audit(w->arg, &r);
}

int
store_audit_walk(struct store *st, const struct store_audit_filter *f,
    int (*fn)(void *arg, const struct store_audit *r), void *arg,
    size_t *count, struct hsmca_err *e)
{
	struct walk w = { .fn.audit = fn, .arg = arg };
	enum store_stmt which;
	sqlite3_stmt *s;
	int rc = SQLITE_OK, ret = HSMCA_ERR_STORE;

	if (count != NULL)
		*count = 0;
	if (f == NULL)
		which = STMT_AUDIT_ALL;
	else if (f->since == 0 && f->action == NULL && f->limit <= 0)
		which = STMT_AUDIT_AFTER;
	else
		which = STMT_AUDIT_FILTER;
	if ((s = stmt_get(st, which, e)) == NULL)
		goto out;
	if (which == STMT_AUDIT_AFTER)
		bind_int(s, 0, f->after, &rc);
	else if (which == STMT_AUDIT_FILTER) {
		bind_opt_int(s, 0, f->since, &rc);
		if (rc == SQLITE_OK)
			rc = f->action == NULL ? sqlite3_bind_null(s, 2) :
			    sqlite3_bind_text(s, 2, f->action, -1,
			    SQLITE_STATIC);
		bind_int(s, 2, f->limit > 0 ? f->limit : -1, &rc);
		bind_int(s, 3, f->after, &rc);
	}
	ret = stmt_each(st, s, rc, audit_row, &w, e,
	    "cannot read the audit log");
out:
	if (count != NULL)
		*count = w.n;
	return ret;
}

/* ---- signed audit checkpoints ---- */

int
store_checkpoint_last(struct store *st, int64_t *id, int64_t *record_id,
    struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc, ret = HSMCA_ERR_STORE;

	*id = 0;
	*record_id = 0;
	if ((s = stmt_get(st, STMT_CKPT_LAST, e)) == NULL)
		goto out;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		*record_id = sqlite3_column_int64(s, 1);
	} else if (rc != SQLITE_DONE) {
		ret = store_sqlerr(e, rc, "cannot read the audit checkpoints");
		goto out;
	}
	ret = 0;
out:
	stmt_release(s);
	return ret;
}

int
store_checkpoint_insert(struct store *st, const struct store_checkpoint *cp,
    struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc = SQLITE_OK;

	if ((s = stmt_get(st, STMT_CKPT_INSERT, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_int(s, 0, cp->id, &rc);
	bind_int(s, 1, cp->at, &rc);
	bind_int(s, 2, cp->record_id, &rc);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(s, 4, cp->record_hash,
		    STORE_AUDIT_HASH_LEN, SQLITE_STATIC);
	bind_int(s, 4, cp->gen_id, &rc);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 6, cp->sig_alg, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(s, 7, cp->sig, (int)cp->sig_len,
		    SQLITE_STATIC);
	if ((rc = stmt_run(st, s, rc, NULL)) != SQLITE_DONE)
		return store_sqlerr(e, rc, "cannot record audit checkpoint %"
		    PRId64, cp->id);
	return 0;
}

static int
checkpoint_row(struct store *st, sqlite3_stmt *s, void *arg,
    struct hsmca_err *e)
{
	struct walk *w = arg;
	struct store_checkpoint cp;

	memset(&cp, 0, sizeof(cp));
	cp.id = sqlite3_column_int64(s, 0);
	cp.at = (time_t)sqlite3_column_int64(s, 1);
	cp.record_id = sqlite3_column_int64(s, 2);
	if (sqlite3_column_bytes(s, 3) == STORE_AUDIT_HASH_LEN)
		memcpy(cp.record_hash, sqlite3_column_blob(s, 3),
		    STORE_AUDIT_HASH_LEN);
	else
		cp.malformed = 1;
	cp.gen_id = sqlite3_column_int64(s, 4);
	cp.sig_alg = col_text0(s, 5);
	cp.sig = sqlite3_column_blob(s, 6);
	cp.sig_len = (size_t)sqlite3_column_bytes(s, 6);
	w->n++;
	return w->fn.checkpoint(w->arg, &cp);
}

int
store_checkpoint_walk(struct store *st, time_t since, int limit,
    int (*fn)(void *arg, const struct store_checkpoint *cp), void *arg,
    size_t *count, struct hsmca_err *e)
{
	struct walk w = { .fn.checkpoint = fn, .arg = arg };
	sqlite3_stmt *s;
	int rc = SQLITE_OK, ret = HSMCA_ERR_STORE;

	if ((s = stmt_get(st, STMT_CKPT_SINCE, e)) == NULL)
		goto out;
	bind_int(s, 0, since, &rc);
	bind_int(s, 1, limit > 0 ? limit : -1, &rc);
	ret = stmt_each(st, s, rc, checkpoint_row, &w, e,
	    "cannot read the audit checkpoints");
out:
	if (count != NULL)
		*count = w.n;
	return ret;
}


/* ---- factory batches ---- */

void
store_batch_free_fields(struct store_batch *b)
{
	if (b == NULL)
		return;
	free(b->profile);
	free(b->requester);
	memset(b, 0, sizeof(*b));
}

int
store_batch_begin(struct store *st, const char *sha256, const char *profile,
    const char *requester, int64_t items, time_t now, struct store_batch *out,
    struct hsmca_err *e)
{
	/* One statement, so atomic on its own: a new batch, or one more run
	 * of a known one. */
	static const char sql[] =
	    "INSERT INTO batch (sha256, profile, requester, items, created_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (sha256) DO UPDATE"
	    " SET runs = runs + 1 RETURNING id, profile, requester, items,"
	    " created_at, runs, finished_at, signed, refused";
	char hex[UTIL_SHA256_HEX];
	sqlite3_stmt *s = NULL;
	int rc = SQLITE_OK, ret = HSMCA_ERR_STORE;

	memset(out, 0, sizeof(*out));
	if (sha256 == NULL || thumbprint_normalize(sha256,
	    UTIL_SHA256_HEX - 1, hex, sizeof(hex)) == -1 || profile == NULL ||
	    *profile == '\0' || requester == NULL || items < 0)
		return err_set(e, HSMCA_ERR_ARG, "store: malformed batch");
	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL)) != SQLITE_OK) {
		ret = store_sqlerr(e, rc, "cannot record the batch");
		goto out;
	}
	rc = sqlite3_bind_text(s, 1, hex, -1, SQLITE_STATIC);
	bind_text(s, 1, profile, &rc);
	bind_text(s, 2, requester, &rc);
	bind_int(s, 3, items, &rc);
	bind_int(s, 4, now, &rc);
	if ((rc = stmt_step(s, rc)) != SQLITE_ROW) {
		ret = store_sqlerr(e, rc, "cannot record the batch");
		goto out;
	}
	out->id = sqlite3_column_int64(s, 0);
	memcpy(out->sha256, hex, sizeof(out->sha256));
	out->items = sqlite3_column_int64(s, 3);
	out->created_at = (time_t)sqlite3_column_int64(s, 4);
	out->runs = sqlite3_column_int64(s, 5);
	out->finished_at = (time_t)sqlite3_column_int64(s, 6);
	out->signed_ = sqlite3_column_int64(s, 7);
	out->refused = sqlite3_column_int64(s, 8);
	if (col_strdup(s, 1, &out->profile) == -1 ||
	    col_strdup(s, 2, &out->requester) == -1) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	/* Step to the end so the statement (and its write) completes. */
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		ret = store_sqlerr(e, rc, "cannot record the batch");
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(s);
	if (ret != 0)
		store_batch_free_fields(out);
	return ret;
}

int
store_batch_finish(struct store *st, int64_t id, time_t now, int64_t signed_,
    int64_t refused, struct hsmca_err *e)
{
	static const char sql[] =
	    "UPDATE batch SET finished_at = ?2, signed = ?3, refused = ?4"
	    " WHERE id = ?1";
	sqlite3_stmt *s = NULL;
	int rc, changes = 0, ret = 0;

	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL)) == SQLITE_OK) {
		bind_int(s, 0, id, &rc);
		bind_int(s, 1, now, &rc);
		bind_int(s, 2, signed_, &rc);
		bind_int(s, 3, refused, &rc);
		rc = stmt_run(st, s, rc, &changes);
	}
	if (rc != SQLITE_DONE)
		ret = store_sqlerr(e, rc, "cannot record the end of batch %"
		    PRId64, id);
	else if (changes == 0)
		ret = err_set(e, HSMCA_ERR_NOT_FOUND, "store: no batch %"
		    PRId64, id);
	sqlite3_finalize(s);
	return ret;
}



int
store_batch_fail_reserved(struct store *st, int64_t *n, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc, changes = 0;

	*n = 0;
	if ((s = stmt_get(st, STMT_CERT_FAIL_BATCH_RESERVED, e)) == NULL)
		return HSMCA_ERR_STORE;
	if ((rc = stmt_run(st, s, SQLITE_OK, &changes)) != SQLITE_DONE)
		return store_sqlerr(e, rc, "cannot mark the batch reservations "
		    "left behind failed");
	*n = changes;
	return 0;
}

/* ---- reservations left behind ---- */

int
store_fail_reserved_before(struct store *st, time_t before, size_t max,
    struct store_cert **out, size_t *n, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	void *v;
	int rc = SQLITE_OK, ret;

	*out = NULL;
	*n = 0;
	if (max == 0 || max > INT_MAX)
		return err_set(e, HSMCA_ERR_ARG, "store: a sweep of %zu "
		    "reservations", max);
	if ((s = stmt_get(st, STMT_CERT_FAIL_RESERVED_BEFORE, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_int(s, 0, before, &rc);
	bind_int(s, 1, (int64_t)max, &rc);
	if ((ret = stmt_collect(st, s, rc, &cert_rows, max < 16 ? max : 16,
	    &v, n, e, "cannot mark the reservations left behind failed")) == 0)
		*out = v;
	return ret;
}

int
store_certs_by_csr(struct store *st, const char *csr_sha256,
    struct store_cert **out, size_t *n, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	void *v;
	int rc = SQLITE_OK, ret;

	*out = NULL;
	*n = 0;
	if ((s = stmt_get(st, STMT_CERT_BY_CSR, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_text(s, 0, csr_sha256, &rc);
	if ((ret = stmt_collect(st, s, rc, &cert_rows, 2, &v, n, e,
	    "cannot look up the certificates of CSR %s",
	    csr_sha256 != NULL ? csr_sha256 : "")) == 0)
		*out = v;
	return ret;
}

/* ---- OCSP: delegated responders, and what hsmcad's responder reads ---- */

int
store_ocsp_responder_add(struct store *st,
    const struct store_ocsp_responder *r, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc = SQLITE_OK, own, ret;

	if ((ret = bulk_begin(st, &own, e)) != 0)
		return ret;
	ret = HSMCA_ERR_STORE;
	if ((s = stmt_get(st, STMT_OCSP_RESPONDER_ADD, e)) == NULL)
		goto out;
	bind_int(s, 0, r->issuer_id, &rc);
	bind_text(s, 1, r->serial, &rc);
	bind_text(s, 2, r->key_uri, &rc);
	bind_blob(s, 3, r->cert_der, r->cert_der_len, &rc);
	bind_int(s, 4, r->not_after, &rc);
	bind_int(s, 5, r->created_at, &rc);
	if ((rc = stmt_run(st, s, rc, NULL)) != SQLITE_DONE) {
		ret = store_sqlerr(e, rc, "cannot record the OCSP responder "
		    "of CA generation %" PRId64, r->issuer_id);
		goto out;
	}
	/* The key is accounted for: its intent, if any, is complete. */
	ret = store_ocsp_key_intent_close(st, r->key_uri, e);
out:
	return bulk_end(st, own, ret, e);
}

int
store_ocsp_key_intent_add(struct store *st, int64_t issuer_id,
    const char *key_uri, time_t now, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc = SQLITE_OK;

	if ((s = stmt_get(st, STMT_OCSP_INTENT_ADD, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_int(s, 0, issuer_id, &rc);
	bind_text(s, 1, key_uri, &rc);
	bind_int(s, 2, now, &rc);
	if ((rc = stmt_run(st, s, rc, NULL)) != SQLITE_DONE)
		return store_sqlerr(e, rc, "cannot record the OCSP responder "
		    "key about to be made for CA generation %" PRId64,
		    issuer_id);
	return 0;
}

static int
intent_from_row(struct store *st, sqlite3_stmt *s, void *row,
    struct hsmca_err *e)
{
	struct store_ocsp_key_intent *r = row;

	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(s, 0);
	r->issuer_id = sqlite3_column_int64(s, 1);
	r->created_at = (time_t)sqlite3_column_int64(s, 3);
	if (col_strdup(s, 2, &r->key_uri) != 0 || r->key_uri == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	return 0;
}

static void
intents_free(void *v, size_t n)
{
	store_ocsp_key_intents_free(v, n);
}

static const struct row_type intent_rows = {
	sizeof(struct store_ocsp_key_intent), intent_from_row, intents_free
};

int
store_ocsp_key_intents(struct store *st, struct store_ocsp_key_intent **out,
    size_t *n, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	void *v;
	int ret;

	*out = NULL;
	*n = 0;
	if ((s = stmt_get(st, STMT_OCSP_INTENT_LIST, e)) == NULL)
		return HSMCA_ERR_STORE;
	if ((ret = stmt_collect(st, s, SQLITE_OK, &intent_rows, 2, &v, n, e,
	    "cannot read the OCSP responder keys being made")) == 0)
		*out = v;
	return ret;
}

void
store_ocsp_key_intents_free(struct store_ocsp_key_intent *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].key_uri);
	free(v);
}

int
store_ocsp_key_intent_close(struct store *st, const char *key_uri,
    struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc = SQLITE_OK;

	if ((s = stmt_get(st, STMT_OCSP_INTENT_CLOSE, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_text(s, 0, key_uri, &rc);
	if ((rc = stmt_run(st, s, rc, NULL)) != SQLITE_DONE)
		return store_sqlerr(e, rc, "cannot close the record of OCSP "
		    "responder key %s being made", key_uri);
	return 0;
}

int
store_key_uri_named(struct store *st, const char *key_uri, int *named,
    struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int64_t v = 1;
	int rc = SQLITE_OK;

	*named = 1;
	if ((s = stmt_get(st, STMT_KEY_URI_NAMED, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_text(s, 0, key_uri, &rc);
	if ((rc = stmt_int64(s, rc, &v)) != SQLITE_ROW)
		return store_sqlerr(e, rc, "cannot look up key %s", key_uri);
	*named = v != 0;
	return 0;
}

int
store_ocsp_responder_latest(struct store *st, int64_t issuer_id,
    struct store_ocsp_responder *out, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc = SQLITE_OK, ret = HSMCA_ERR_STORE;

	memset(out, 0, sizeof(*out));
	if ((s = stmt_get(st, STMT_OCSP_RESPONDER_LATEST, e)) == NULL)
		goto out;
	bind_int(s, 0, issuer_id, &rc);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		ret = err_set(e, HSMCA_ERR_NOT_FOUND, "CA generation %" PRId64
		    " has no OCSP responder yet", issuer_id);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ret = store_sqlerr(e, rc, "cannot read the OCSP responder of "
		    "CA generation %" PRId64, issuer_id);
		goto out;
	}
	out->issuer_id = issuer_id;
	col_copy(s, 0, out->serial, sizeof(out->serial));
	if (col_strdup(s, 1, &out->key_uri) != 0 ||
	    col_blob(s, 2, &out->cert_der, &out->cert_der_len) != 0) {
		store_ocsp_responder_free_fields(out);
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	out->not_after = (time_t)sqlite3_column_int64(s, 3);
	out->created_at = (time_t)sqlite3_column_int64(s, 4);
	ret = 0;
out:
	stmt_release(s);
	return ret;
}

static int
key_uri_from_row(struct store *st, sqlite3_stmt *s, void *row,
    struct hsmca_err *e)
{
	char **uri = row;

	if (col_strdup(s, 0, uri) != 0 || *uri == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	return 0;
}

static void
key_uris_free(void *v, size_t n)
{
	store_key_uris_free(v, n);
}

static const struct row_type key_uri_rows = {
	sizeof(char *), key_uri_from_row, key_uris_free
};

int
store_ocsp_responder_keys_ended(struct store *st, int64_t issuer_id,
    time_t before, char ***out, size_t *n, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	void *v;
	int rc = SQLITE_OK, ret;

	*out = NULL;
	*n = 0;
	if ((s = stmt_get(st, STMT_OCSP_RESPONDER_KEYS_ENDED, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_int(s, 0, issuer_id, &rc);
	bind_int(s, 1, before, &rc);
	if ((ret = stmt_collect(st, s, rc, &key_uri_rows, 1, &v, n, e,
	    "cannot read the OCSP responder keys of CA generation %" PRId64,
	    issuer_id)) == 0)
		*out = v;
	return ret;
}

void
store_key_uris_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
store_ocsp_responder_free_fields(struct store_ocsp_responder *r)
{
	free(r->key_uri);
	free(r->cert_der);
	r->key_uri = NULL;
	r->cert_der = NULL;
	r->cert_der_len = 0;
}

/* One row of STMT_OCSP_WALK or STMT_OCSP_CHANGES from column first. */
static int
cert_state_from_row(struct store *st, sqlite3_stmt *s, int first,
    struct store_cert_state *c, struct hsmca_err *e)
{
	const char *status = (const char *)sqlite3_column_text(s, first + 3);

	memset(c, 0, sizeof(*c));
	c->id = sqlite3_column_int64(s, first);
	c->issuer_id = sqlite3_column_int64(s, first + 1);
	col_copy(s, first + 2, c->serial, sizeof(c->serial));
	if (status == NULL ||
	    store_cert_status_parse(status, &c->status) != 0)
		return err_set(e, HSMCA_ERR_STORE, "store: %s: certificate %"
		    PRId64 " has an unknown status", st->path, c->id);
	c->not_after = (time_t)sqlite3_column_int64(s, first + 4);
	c->revoked_at = (time_t)sqlite3_column_int64(s, first + 5);
	c->revoke_reason = sqlite3_column_type(s, first + 6) == SQLITE_NULL ?
	    -1 : sqlite3_column_int(s, first + 6);
	return 0;
}

static int
ocsp_row(struct store *st, sqlite3_stmt *s, void *arg, struct hsmca_err *e)
{
	struct walk *w = arg;
	struct store_cert_state c;
	int ret;

	if ((ret = cert_state_from_row(st, s, w->first, &c, e)) != 0 ||
	    (ret = w->fn.cert_state(w->arg, &c)) != 0)
		return ret;
	*w->last = w->first > 0 ? sqlite3_column_int64(s, 0) : c.id;
	w->n++;
	return 0;
}

/* The rows of a cursor statement (after, max) as certificate states from
 * column first; *last: the id the next call starts after (the certificate's
 * id, or column 0 when the state starts after it). */
static int
ocsp_cursor(struct store *st, enum store_stmt id, int first, const char *what,
    int64_t after, size_t max,
    int (*fn)(void *, const struct store_cert_state *), void *arg,
    int64_t *last, size_t *count, struct hsmca_err *e)
{
	struct walk w = { .fn.cert_state = fn, .arg = arg,
	    .first = first, .last = last };
	sqlite3_stmt *s;
	int rc = SQLITE_OK, ret = HSMCA_ERR_STORE;

	*last = after;
	if ((s = stmt_get(st, id, e)) == NULL)
		goto out;
	bind_int(s, 0, after, &rc);
	bind_int(s, 1, max > INT64_MAX ? INT64_MAX : (int64_t)max, &rc);
	ret = stmt_each(st, s, rc, ocsp_row, &w, e, "cannot %s", what);
out:
	if (count != NULL)
		*count = w.n;
	return ret;
}


int
store_ocsp_walk(struct store *st, int64_t after, size_t max,
    int (*fn)(void *, const struct store_cert_state *), void *arg,
    int64_t *last, size_t *count, struct hsmca_err *e)
{
	return ocsp_cursor(st, STMT_OCSP_WALK, 0, "walk the certificates",
	    after, max, fn, arg, last, count, e);
}

int
store_ocsp_changes(struct store *st, int64_t after, size_t max,
    int (*fn)(void *, const struct store_cert_state *), void *arg,
    int64_t *last, size_t *count, struct hsmca_err *e)
{
	return ocsp_cursor(st, STMT_OCSP_CHANGES, 1,
	    "read the certificate changes", after, max, fn, arg, last, count,
	    e);
}

int
store_ocsp_changes_last(struct store *st, int64_t *last, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc;

	*last = 0;
	if ((s = stmt_get(st, STMT_OCSP_CHANGES_LAST, e)) == NULL)
		return HSMCA_ERR_STORE;
	if ((rc = stmt_int64(s, SQLITE_OK, last)) != SQLITE_ROW)
		return store_sqlerr(e, rc, "cannot read the certificate "
		    "changes");

	return 0;
}

int
store_revocation_version(struct store *st, int64_t issuer_id,
    int64_t *version, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc = SQLITE_OK;

	*version = 0;
	if ((s = stmt_get(st, STMT_REVOCATION_VERSION, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_int(s, 0, issuer_id, &rc);
	if ((rc = stmt_int64(s, rc, version)) != SQLITE_ROW)
		return store_sqlerr(e, rc, "cannot read the revocation "
		    "version of CA generation %" PRId64, issuer_id);
	return 0;
}

int
store_ocsp_changes_forget(struct store *st, int64_t upto, struct hsmca_err *e)
{
	sqlite3_stmt *s;
	int rc = SQLITE_OK;

	if ((s = stmt_get(st, STMT_OCSP_CHANGES_FORGET, e)) == NULL)
		return HSMCA_ERR_STORE;
	bind_int(s, 0, upto, &rc);
	if ((rc = stmt_run(st, s, rc, NULL)) != SQLITE_DONE)
		return store_sqlerr(e, rc, "cannot forget the certificate "
		    "changes read");
	return 0;
}
