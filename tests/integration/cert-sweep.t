#!/bin/sh
# hsmca cert sweep: the reservations left behind on an install without
# hsmcad. An `hsmca issue` killed while the token signs leaves its serial
# reserved; the command marks failed every reservation older than
# --older-than (a day by default), with an audit record per serial in the
# same transaction, and leaves younger ones alone. An age under an hour is
# refused before anything is written. The token is SoftHSM2, behind
# tests/pkcs11-fault/pkcs11-fault.so for the issues that are killed.
. "$top_srcdir/tests/integration/lib.sh"

new_ca sweep
hsmca ca init >/dev/null || bail "ca init failed"

fault_cli

db() {
	sqlite3 "$CADIR/hsmca.db" "$1"
}
audits() {
	db "SELECT count(*) FROM audit"
}

# Three issuances killed inside the token, between reserving the serial
# and recording the certificate.
fault "fault=hang on=sign"
killed_issue dead-1 1
killed_issue dead-2 2
killed_issue dead-3 3
fault "fault=none"
OLD=$(db "SELECT serial FROM cert WHERE status = 'reserved' ORDER BY id LIMIT 1")
MID=$(db "SELECT serial FROM cert WHERE status = 'reserved' ORDER BY id LIMIT 1 OFFSET 1")
FRESH=$(db "SELECT serial FROM cert WHERE status = 'reserved' ORDER BY id LIMIT 1 OFFSET 2")
check "three serials are left reserved by the killed issues" \
	test "$(reserved_count)" = 3
# One 25 hours old, one 2 hours, one just made.
db "UPDATE cert SET created_at = created_at - 25 * 3600 WHERE serial = '$OLD';
    UPDATE cert SET created_at = created_at - 2 * 3600 WHERE serial = '$MID'"
# And a certificate issued a week ago, recorded: never touched.
make_csr done ec:P-256 /CN=done-1 2>/dev/null
hsmca issue --csr "$WORK/done.csr" --profile device --out "$WORK/done.pem" >/dev/null ||
	bail "issue failed"
DONE=$(db "SELECT serial FROM cert ORDER BY id DESC LIMIT 1")
db "UPDATE cert SET created_at = created_at - 7 * 86400 WHERE serial = '$DONE'"
N0=$(audits)

expect_fail "an age under an hour is refused, with why" 2 \
	"^hsmca: --older-than 30m: less than 1h would fail the reservations of issuances still signing$" \
	hsmca cert sweep --older-than 30m
check "the refusal is one line" test "$(wc -l <"$WORK/last.err")" -eq 1
expect_fail "a word that is not a duration is refused" 2 "'soon' is not a duration" \
	hsmca cert sweep --older-than soon
expect_fail "a stray argument is a usage error" 2 "usage: hsmca cert sweep" \
	hsmca cert sweep "$OLD"
check "the refusals wrote nothing: three reserved, no audit record" \
	test "$(reserved_count)" = 3 -a "$(audits)" = "$N0"

expect_ok "cert sweep (a day by default) exits 0" hsmca cert sweep
check "it says how many, and of what age" \
	grep -q "^1 reservation older than 1d marked failed: issuances that never completed" "$WORK/last.out"
check "it lists the serial swept" grep -q "^$OLD  *2  " "$WORK/last.out"
check "and no other" test "$(grep -c "^[0-9a-fA-F]\{8,\}" "$WORK/last.out")" -eq 1
check "the reservation 25 hours old is failed" test "$(cert_status "$OLD")" = failed
check "the one 2 hours old is left reserved" test "$(cert_status "$MID")" = reserved
check "the fresh one is left reserved" test "$(cert_status "$FRESH")" = reserved
check "the recorded certificate is still valid" test "$(cert_status "$DONE")" = valid
check "one audit record was appended" test "$(audits)" -eq $((N0 + 1))

run hsmca audit list --action issue
check "the audit record names the serial, who reserved it, the age, and the sweeper" \
	grep -q "cli:.*serial:$OLD .*failed.*reserved under CA generation 2 .* by cli:.*, profile device, and never recorded: marked failed after 24h, the serial is never used" \
	"$WORK/last.out"
expect_ok "the audit chain verifies" hsmca audit verify
expect_fail "a swept serial cannot be revoked: it was never issued" 1 "never issued \(it is failed\)" \
	hsmca revoke "$OLD"

expect_ok "a second sweep finds nothing, and exits 0" hsmca cert sweep
check "it says 0" grep -q "^0 reservations older than 1d marked failed$" "$WORK/last.out"
check "and appends no audit record" test "$(audits)" -eq $((N0 + 1))

expect_ok "--older-than 1h --quiet" hsmca cert sweep --older-than 1h --quiet
check "prints the count only" \
	test "$(cat "$WORK/last.out")" = "1 reservation older than 1h marked failed: issuances that never completed, their serials never used"
check "the one 2 hours old is failed now" test "$(cert_status "$MID")" = failed
check "the fresh one is still reserved" test "$(cert_status "$FRESH")" = reserved
run hsmca audit list --action issue
check "its record says 1h" \
	grep -q "serial:$MID .*failed.*marked failed after 1h," "$WORK/last.out"

# --json, for scripts: the rows as cert list has them. The fresh one,
# aged now by the clock every date is read from.
HSMCA_NOW=$(date -u -d '+3 hours' +%Y-%m-%dT%H:%M:%SZ)
expect_ok "--json with the clock 3 hours on" env HSMCA_NOW="$HSMCA_NOW" \
	"$HSMCA" -c "$CONF" --json cert sweep --older-than 2h
check "the JSON names the age, the count and the serial" python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
assert o["older_than"] == "2h" and o["marked_failed"] == 1, o
r = o["reservations"]
assert len(r) == 1 and r[0]["serial"] == sys.argv[2] and r[0]["status"] == "failed", r
assert r[0]["profile"] == "device" and r[0]["requester"].startswith("cli:"), r
' "$WORK/last.out" "$FRESH"
check "the fresh one is failed" test "$(cert_status "$FRESH")" = failed
check "no reservation is left" \
	test "$(reserved_count)" = 0
check "three audit records in all" test "$(audits)" -eq $((N0 + 3))
expect_ok "the audit chain still verifies" hsmca audit verify
check "the store is whole" test "$(db 'PRAGMA integrity_check')" = ok
done_testing
