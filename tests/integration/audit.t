#!/bin/sh
# hsmca audit: ca init, issue, revoke and disallow append records to the
# hash chain with their actors, in order; audit checkpoint signs the head
# with the active generation's key in the token (openssl checks the
# signature on its own); audit verify passes, and names what failed once
# an attacker (triggers dropped, sqlite3 on the file) edits, deletes,
# reorders or cuts records, or alters or deletes a checkpoint. hsmcad
# signs checkpoints by itself every audit-checkpoint-interval.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v xxd >/dev/null 2>&1 || skip_all "xxd not installed"

new_ca au
hsmca ca init >/dev/null || { echo "Bail out! ca init failed"; exit 1; }
me="cli:$(id -un)"
db() {
	sqlite3 "$CADIR/hsmca.db" "$1"
}

make_csr d1 ec:P-256 /CN=d1 2>/dev/null
hsmca issue --csr "$WORK/d1.csr" --profile device --out "$WORK/d1.pem" >/dev/null ||
	{ echo "Bail out! issue failed"; exit 1; }
s1=$(openssl x509 -in "$WORK/d1.pem" -noout -serial | sed 's/serial=//' |
	tr A-F a-f | sed 's/^\(00\)*//')
expect_ok "revoke" hsmca revoke "$s1" --reason keyCompromise
expect_ok "revoke again (nothing changes)" hsmca revoke "$s1" --reason keyCompromise
expect_ok "disallow add" hsmca disallow add --note "lost in transit" d9
expect_ok "disallow remove" hsmca disallow remove d9
expect_fail "a refused revocation" 3 "no certificate" hsmca revoke 0bad

check "one record per change, in order" \
	test "$(db "SELECT group_concat(action || ' ' || object || ' ' || outcome, '|') FROM (SELECT * FROM audit ORDER BY id)")" = \
	"ca-init gen:1 ok|ca-init gen:2 ok|issue serial:$s1 ok|revoke serial:$s1 ok|revoke serial:$s1 unchanged|disallow-add cn:d9 ok|disallow-remove cn:d9 ok"
check "every record names the operator" \
	test "$(db "SELECT count(*) FROM audit WHERE actor = '$me'")" -eq 7
check "the issuance names its profile and subject" \
	test "$(db "SELECT count(*) FROM audit WHERE action = 'issue' AND detail LIKE '%profile device, subject CN=d1%'")" -eq 1

run hsmca audit list
check "audit list: a table with every record" \
	sh -c "grep -q '^ID *TIME *ACTOR *ACTION' '$WORK/last.out' && test \$(grep -c '$me' '$WORK/last.out') -eq 7"
run hsmca --json audit list --action revoke --limit 1
check "audit list --json --action revoke --limit 1: the last revocation" \
	sh -c "test \$(grep -c '\"action\": \"revoke\"' '$WORK/last.out') -eq 1 &&
	       grep -q '\"outcome\": \"unchanged\"' '$WORK/last.out'"
expect_fail "audit list --action nonsense is a usage error" 2 "not an audit action" \
	hsmca audit list --action nonsense

expect_ok "audit verify passes" hsmca audit verify
check "... and counts the records" grep -q "^audit log intact: 7 records" "$WORK/last.out"

hsmca crl --out "$WORK/ca.crl" >/dev/null
check "a CRL is recorded" \
	test "$(db "SELECT action || ' ' || object FROM audit ORDER BY id DESC LIMIT 1")" = "crl gen:2"

run db "UPDATE audit SET detail = 'x' WHERE id = 4"
check "the log refuses an UPDATE through SQL" test "$RC" -ne 0

# ---- signed checkpoints ----

run hsmca audit verify
check "audit verify without a checkpoint says cut records would go unnoticed" \
	grep -q "^audit log intact: 8 records, no signed checkpoint" "$WORK/last.out"
expect_ok "audit checkpoint" hsmca audit checkpoint
check "... signs record 8 with generation 2's key" \
	grep -Eq "^audit checkpoint 1 at .*: record 8 \([0-9a-f]{64}\), signed by CA generation 2 \(ecdsa-with-SHA256\)" "$WORK/last.out"
check "... and is not itself a record (the head it signed stays the head)" \
	test "$(db "SELECT max(id) FROM audit")" -eq 8
run db "DELETE FROM audit_checkpoint"
check "checkpoints refuse a DELETE through SQL" test "$RC" -ne 0
make_csr d2 ec:P-256 /CN=d2 2>/dev/null
make_csr d3 ec:P-256 /CN=d3 2>/dev/null
hsmca issue --csr "$WORK/d2.csr" --profile device --out "$WORK/d2.pem" >/dev/null
hsmca issue --csr "$WORK/d3.csr" --profile device --out "$WORK/d3.pem" >/dev/null
run hsmca --json audit checkpoint
check "audit checkpoint --json: checkpoint 2 of record 10" \
	test "$(jq -r '"\(.checkpoint) \(.record) \(.generation) \(.algorithm)"' "$WORK/last.out")" = "2 10 2 ecdsa-with-SHA256"
hsmca disallow add d8 >/dev/null	# record 11: after the last checkpoint

run hsmca audit list --checkpoints
check "audit list --checkpoints: a table of both" \
	sh -c "grep -q '^CHECKPOINT *TIME *RECORD *GENERATION *ALGORITHM' '$WORK/last.out' &&
	       test \$(grep -Ec '^[12] .* (8|10) +2 +ecdsa-with-SHA256 +[0-9a-f]{64}\$' '$WORK/last.out') -eq 2"
run hsmca --json audit list --checkpoints --limit 1
check "audit list --checkpoints --limit 1 --json: the last, with its signature" \
	test "$(jq -r '.[] | "\(.checkpoint) \(.record) \(.signature | length > 100)"' "$WORK/last.out")" = "2 10 true"

# The signature checked without hsmca: the bytes audit.h defines,
# rebuilt here, against the generation's certificate.
u64() { printf '%016x' "$1" | xxd -r -p; }
IFS='|' read -r c_id c_at c_rec c_hash c_gen c_alg c_sig <<EOF2
$(db "SELECT id, at, record_id, hex(record_hash), gen_id, sig_alg, hex(signature) FROM audit_checkpoint WHERE id = 2")
EOF2
{
	printf 'hsmca-audit-checkpoint-1\000'
	u64 "$c_id"; u64 "$c_at"; u64 "$c_rec"
	printf '%s' "$c_hash" | xxd -r -p
	u64 "$c_gen"
	printf '%08x' "${#c_alg}" | xxd -r -p
	printf '%s' "$c_alg"
} >"$WORK/ckpt.msg"
printf '%s' "$c_sig" | xxd -r -p >"$WORK/ckpt.sig"
hsmca ca download "$c_gen" | openssl x509 -pubkey -noout >"$WORK/gen.pub"
expect_ok "openssl verifies checkpoint 2 with generation 2's certificate" \
	openssl dgst -sha256 -verify "$WORK/gen.pub" -signature "$WORK/ckpt.sig" "$WORK/ckpt.msg"
check "... and it names record 10 with the hash the log holds" \
	test "$c_hash" = "$(db "SELECT hex(hash) FROM audit WHERE id = 10")"

expect_ok "audit verify passes" hsmca audit verify
check "... and counts the records and checkpoints, and the unsigned tail" \
	grep -Eq "^audit log intact: 11 records, 2 signed checkpoints; signed through record 10 at [0-9TZ:-]+, 1 record since" "$WORK/last.out"

# ---- an attacker with the file: each change on a fresh copy ----

db ".backup '$WORK/pristine.db'"
# attack SQL: the triggers dropped first, as anyone with write access can.
attack() {
	cp "$WORK/pristine.db" "$CADIR/hsmca.db"
	rm -f "$CADIR/hsmca.db-wal" "$CADIR/hsmca.db-shm"
	db "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;
	    DROP TRIGGER audit_checkpoint_no_update; DROP TRIGGER audit_checkpoint_no_delete;
	    $1"
}

attack "UPDATE audit SET detail = 'nothing' WHERE id = 4"
expect_fail "an edited record: named" 1 "broken at record 4: audit record 4 was altered" \
	hsmca audit verify
run hsmca --json audit verify
check "--json: intact false, first_bad 4" \
	sh -c "test $RC -eq 1 && jq -e '.intact == false and .first_bad == 4 and .bad_checkpoint == null' '$WORK/last.out' >/dev/null"
# Records before the last checkpoint are not re-read for a new one; the
# new one cannot hide the edit (the stored hashes are what it extends).
expect_ok "a new checkpoint after the edit" hsmca audit checkpoint
expect_fail "... still leaves the edited record named" 1 "broken at record 4: audit record 4 was altered" \
	hsmca audit verify
attack "UPDATE audit SET detail = 'nothing' WHERE id = 11"
expect_fail "an edited record after the last checkpoint: never signed" 1 \
	"no checkpoint signed: audit record 11 was altered" hsmca audit checkpoint

attack "DELETE FROM audit WHERE id = 6"
expect_fail "a record deleted in the middle: named" 1 "broken at record 7: audit record 7 does not follow record 5" \
	hsmca audit verify

attack "UPDATE audit SET id = -1 WHERE id = 5; UPDATE audit SET id = 5 WHERE id = 6; UPDATE audit SET id = 6 WHERE id = -1"
expect_fail "reordered records: named" 1 "broken at record 5: audit record 5 does not follow record 4" \
	hsmca audit verify

attack "DELETE FROM audit WHERE id > 9"
expect_fail "records cut back behind the last checkpoint: named" 1 \
	"audit checkpoint 2 \(record 10\) does not hold: audit checkpoint 2 names record 10, but the log ends at record 9" \
	hsmca audit verify
check "... while the chain itself holds (no broken record reported)" \
	sh -c "! grep -q 'broken at record' '$WORK/last.err'"
expect_fail "... and no checkpoint is signed over the cut log" 1 "the log ends at record 9" \
	hsmca audit checkpoint
check "... nothing written: still 2 checkpoints" test "$(db "SELECT count(*) FROM audit_checkpoint")" -eq 2

attack "DELETE FROM audit WHERE id = 11"
expect_ok "the record after the last checkpoint cut off: NOT detectable (documented)" \
	hsmca audit verify
check "... verify says the log is signed through record 10, nothing since" \
	grep -q "signed through record 10 at .*, 0 records since" "$WORK/last.out"

attack "UPDATE audit_checkpoint SET signature = randomblob(length(signature)) WHERE id = 1"
expect_fail "a checkpoint whose signature does not match: named" 1 \
	"audit checkpoint 1 \(record 8\) does not hold: audit checkpoint 1 was altered: its signature does not verify with CA generation 2's key" \
	hsmca audit verify
run hsmca --json audit verify
check "--json: bad_checkpoint 1, bad_checkpoint_record 8, the chain intact" \
	sh -c "test $RC -eq 1 && jq -e '.bad_checkpoint == 1 and .bad_checkpoint_record == 8 and .first_bad == null' '$WORK/last.out' >/dev/null"

attack "UPDATE audit_checkpoint SET record_hash = (SELECT hash FROM audit WHERE id = 7) WHERE id = 1"
expect_fail "a checkpoint whose hash does not match its record: named" 1 \
	"audit checkpoint 1 \(record 8\) does not hold: audit checkpoint 1 does not match record 8: its hash is not the record's" \
	hsmca audit verify

attack "UPDATE audit_checkpoint SET record_id = 9, record_hash = (SELECT hash FROM audit WHERE id = 9) WHERE id = 1"
expect_fail "a checkpoint moved to another record: named" 1 \
	"audit checkpoint 1 \(record 9\) does not hold: audit checkpoint 1 was altered" \
	hsmca audit verify

attack "DELETE FROM audit_checkpoint WHERE id = 1"
expect_fail "a deleted checkpoint: named" 1 \
	"audit checkpoint 2 \(record 10\) does not hold: audit checkpoint 2 is the first: checkpoints before it were deleted" \
	hsmca audit verify

cp "$WORK/pristine.db" "$CADIR/hsmca.db"
rm -f "$CADIR/hsmca.db-wal" "$CADIR/hsmca.db-shm"
expect_ok "the untouched copy still verifies" hsmca audit verify

# ---- hsmcad signs checkpoints by itself ----

est_setup ad
sed -i "s|^pidfile = .*|&\naudit-checkpoint-interval = 1s|" "$CONF"
expect_ok "hsmcad -t accepts audit-checkpoint-interval" "$top_builddir/daemon/hsmcad" -t -c "$CONF"
run hsmca config check
check "config check prints it" grep -q "^audit-checkpoint-interval = 1s" "$WORK/last.out"
hsmcad_start

# wait_checkpoint: until the last checkpoint names the last record.
wait_checkpoint() {
	i=0
	until [ "$(db "SELECT max(id) FROM audit")" = "$(db "SELECT record_id FROM audit_checkpoint ORDER BY id DESC LIMIT 1")" ]; do
		i=$((i + 1))
		[ $i -lt 300 ] || return 1
		sleep 0.1
	done
}
check "at start, hsmcad signs what was recorded while it was down" wait_checkpoint
check "... and logs it" \
	grep -Eq "audit checkpoint 1: record 3, hash [0-9a-f]{64}, signed by CA generation 2 \(ecdsa-with-SHA256\)" "$CADIR/hsmcad.log"
csr_b64 dev1 ec:P-256 "/CN=dev-1"
est_post simpleenroll "$WORK/dev1.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
check "an enrollment through hsmcad" test "$STATUS" = 200
check "a later checkpoint signs its record" wait_checkpoint
check "... the issuance, record 4" \
	test "$(db "SELECT action || ' ' || id FROM audit WHERE id = (SELECT record_id FROM audit_checkpoint ORDER BY id DESC LIMIT 1)")" = "issue 4"
check "no checkpoint while the head does not move: one per head" \
	test "$(db "SELECT count(*) FROM audit_checkpoint")" -eq "$(db "SELECT count(DISTINCT record_id) FROM audit_checkpoint")"
expect_ok "audit verify passes with hsmcad's checkpoints" hsmca audit verify
hsmcad_stop

# With a week between checkpoints: one at start for what was recorded
# while hsmcad was down, and one as it stops.
sed -i "s|^audit-checkpoint-interval = .*|audit-checkpoint-interval = 7d|" "$CONF"
hsmca disallow add d9 >/dev/null	# record 5, hsmcad down
hsmcad_start
check "restarted, hsmcad signs the record made while it was down" wait_checkpoint
check "... record 5" grep -q "audit checkpoint [0-9]*: record 5," "$CADIR/hsmcad.log"
hsmca disallow add d10 >/dev/null	# record 6
hsmcad_stop
check "stopping, hsmcad signs the last record" \
	test "$(db "SELECT record_id FROM audit_checkpoint ORDER BY id DESC LIMIT 1")" = 6
check "... after SIGTERM" \
	sh -c "sed -n '/SIGTERM/,\$p' '$CADIR/hsmcad.log' | grep -q 'audit checkpoint [0-9]*: record 6,'"
expect_ok "... and audit verify passes" hsmca audit verify

# Whoever can write the store re-signs every checkpoint with a key of
# their own, under a generation row and certificate of their own: the
# certificates in the store vouch for it, the token does not.
if command -v python3 >/dev/null 2>&1; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$WORK/forger.key" -subj "/CN=hsmca Test Device CA old" -days 30 \
		-outform DER -out "$WORK/forger.der" 2>/dev/null
	python3 - "$CADIR/hsmca.db" "$WORK/forger.key" "$WORK/forger.der" <<'EOF_PY' || bail "forging failed"
import sqlite3, struct, subprocess, sys
db, key, der = sys.argv[1:4]
c = sqlite3.connect(db)
c.execute("DROP TRIGGER audit_checkpoint_no_update")
c.execute("INSERT INTO ca_generation (id, kind, status, subject, cert_der,"
          " created_at, sha1, sha256) VALUES (99, 'issuing', 'expired',"
          " 'CN=hsmca Test Device CA old', ?, 0, 'f1', 'f2')",
          (open(der, "rb").read(),))
alg = b"ecdsa-with-SHA256"
for cid, at, rid, h in c.execute("SELECT id, at, record_id, record_hash"
                                 " FROM audit_checkpoint").fetchall():
    msg = (b"hsmca-audit-checkpoint-1\0" + struct.pack(">QQQ", cid, at, rid) +
           h + struct.pack(">QI", 99, len(alg)) + alg)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                         input=msg, capture_output=True, check=True).stdout
    c.execute("UPDATE audit_checkpoint SET gen_id = 99, sig_alg = ?,"
              " signature = ? WHERE id = ?", (alg.decode(), sig, cid))
c.commit()
EOF_PY
	expect_ok "audit verify --store-only trusts the store's certificates: fooled" \
		hsmca audit verify --store-only
	expect_fail "audit verify takes the keys from the token: the forgery is refused" 1 \
		"generation 99, whose key is not in the token" hsmca audit verify
else
	ok "# SKIP python3 not installed: forged checkpoints"
	ok "# SKIP python3 not installed: forged checkpoints"
fi

# A checkpoint's key that the token cannot show: a token that fails
# while the key is looked up (the shim answers C_FindObjectsInit with
# CKR_DEVICE_ERROR), or a key URI that matches two keys. Neither is a
# verdict on the log: exit 4, the reason, and never "not in the token".
new_ca ak
hsmca ca init >/dev/null || bail "ca init failed"
expect_ok "audit checkpoint signs the head" hsmca audit checkpoint
expect_ok "audit verify passes" hsmca audit verify
fault_cli
fault "fault=device on=find"
expect_fail "a token fault while the checkpoint's key is looked up: exit 4, and why" 4 \
	"cannot check audit checkpoint 1: the token cannot show CA generation 2's key: C_FindObjects: CKR_DEVICE_ERROR" \
	"$HSMCA" -c "$CADIR/shim.conf" audit verify
check "the shim did fail the lookup" grep -q 'inject C_FindObjectsInit device' "$FLOG"
check "neither 'not in the token' nor a broken log" \
	sh -c "! grep -Eq 'not in the token|broken' '$WORK/last.err' '$WORK/last.out'"
fault "fault=none"
uri=$(hsmca ca show 2 | sed -n 's/^Key: *//p')
id=$(printf '%s' "$uri" | sed 's/.*;id=\([^;]*\);.*/\1/' | tr -d '%' | tr A-F a-f)
label=$(printf '%s' "$uri" | sed 's/.*;object=\([^;]*\);.*/\1/')
run pkcs11-tool --module "$SOFTHSM_MODULE" --token-label ak --login \
	--pin "$(cat "$CADIR/user.pin")" --keypairgen --key-type EC:prime256v1 \
	--id "$id" --label "$label"
[ "$RC" -eq 0 ] || bail "pkcs11-tool could not add the second key"
expect_fail "a checkpoint key URI that matches two keys: exit 4, and why" 4 \
	"cannot check audit checkpoint 1: the token cannot show CA generation 2's key: key URI pkcs11:token=ak;[^ ]* matches 2 private keys in token 'ak', not one" \
	hsmca audit verify
check "neither 'not in the token' nor a broken log" \
	sh -c "! grep -Eq 'not in the token|broken' '$WORK/last.err' '$WORK/last.out'"
expect_ok "audit verify --store-only still checks the log" hsmca audit verify --store-only

done_testing
