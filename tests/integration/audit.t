#!/bin/sh
# hsmca audit: ca init, issue, revoke and disallow append records to the
# hash chain with their actors, in order; audit verify passes, and fails
# naming the record once one is edited with sqlite3.
. "$top_srcdir/tests/integration/lib.sh"

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
db "DROP TRIGGER audit_no_update; UPDATE audit SET detail = 'nothing' WHERE id = 4"
expect_fail "audit verify fails naming the edited record" 1 "broken at record 4: audit record 4 was altered" \
	hsmca audit verify
run hsmca --json audit verify
check "--json: intact false, first_bad 4" \
	sh -c "test $RC -eq 1 && grep -q '\"intact\": false' '$WORK/last.out' && grep -q '\"first_bad\": 4' '$WORK/last.out'"

done_testing
