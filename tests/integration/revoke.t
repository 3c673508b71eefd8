#!/bin/sh
# hsmca revoke, crl and disallow: revocations with every form and reason,
# CRLs signed in the token and checked by openssl and certtool.
. "$top_srcdir/tests/integration/lib.sh"

new_ca rv
hsmca ca init >/dev/null || { echo "Bail out! ca init failed"; exit 1; }
hsmca ca download 1 >"$WORK/root.pem"
hsmca ca download 2 >"$WORK/ica.pem"
cat "$WORK/ica.pem" "$WORK/root.pem" >"$WORK/cas.pem"

# serial_of NAME: the canonical serial of $WORK/NAME.pem
serial_of() {
	openssl x509 -in "$WORK/$1.pem" -noout -serial | sed 's/serial=//' |
		tr A-F a-f | sed 's/^\(00\)*//'
}
db() {
	sqlite3 "$CADIR/hsmca.db" "$1"
}

for n in 1 2 3 4 5 6 7 8; do
	make_csr "d$n" ec:P-256 "/CN=d$n" 2>/dev/null
	hsmca issue --csr "$WORK/d$n.csr" --profile device --out "$WORK/d$n.pem" >/dev/null ||
		{ echo "Bail out! issue d$n failed"; exit 1; }
	eval "s$n=\$(serial_of d$n)"
done

# ---- one certificate ----
expect_ok "revoke SERIAL --reason keyCompromise" hsmca revoke "$s1" --reason keyCompromise
check "it says what it revoked, with the reason" \
	grep -q "^revoked certificate $s1 of CA generation 2: keyCompromise" "$WORK/last.out"
check "the store has it revoked with CRLReason 1" \
	test "$(db "SELECT status || ' ' || revoke_reason FROM cert WHERE serial = '$s1'")" = "revoked 1"
t1=$(db "SELECT revoked_at FROM cert WHERE serial = '$s1'")
run hsmca cert show "$s1"
check "cert show: status, reason and time of the revocation" \
	sh -c "grep -q '^Status: *revoked' '$WORK/last.out' && grep -q '^Reason: *keyCompromise' '$WORK/last.out' &&
	       grep -q '^Revoked: *20[0-9-]*T[0-9:]*Z' '$WORK/last.out'"
run hsmca cert list --status revoked
check "cert list --status revoked: the certificate, its reason and time" \
	sh -c "grep -q 'REASON' '$WORK/last.out' && grep '$s1' '$WORK/last.out' | grep -q 'keyCompromise'"

# Idempotent: again, with another reason, a second later.
run env HSMCA_NOW=$(( $(date +%s) + 5 )) "$HSMCA" -c "$CONF" revoke "$s1" --reason superseded
check "revoking it again succeeds and says it was already revoked" \
	sh -c "test $RC -eq 0 && grep -q 'already revoked' '$WORK/last.out'"
check "... and changes neither its time nor its reason" \
	test "$(db "SELECT revoked_at || ' ' || revoke_reason FROM cert WHERE serial = '$s1'")" = "$t1 1"
run hsmca --json revoke --issuer 2 "$(echo "$s1" | tr a-f A-F)" --reason keyCompromise
check "--json, --issuer and an upper-case serial: already_revoked is true" \
	sh -c "test $RC -eq 0 && grep -q '\"already_revoked\": true' '$WORK/last.out' &&
	       grep -q '\"revocation_reason\": \"keyCompromise\"' '$WORK/last.out'"

# Refusals.
expect_fail "an unknown serial exits 3" 3 "no certificate with serial 0bad" \
	hsmca revoke 0bad --reason keyCompromise
expect_fail "another issuer's serial is not found, naming the issuer" 3 \
	"not issued by CA generation 1 \(generation 2 issued it\)" \
	hsmca revoke "$s2" --issuer 1 --reason keyCompromise
expect_fail "removeFromCRL is refused, pointing at --unhold" 2 "--unhold" \
	hsmca revoke "$s2" --reason removeFromCRL
expect_fail "an unknown reason is refused, listing the names" 2 "unknown revocation reason 'stolen'.*keyCompromise" \
	hsmca revoke "$s2" --reason stolen
expect_fail "a serial that is not hex is a usage error" 2 "not a serial" \
	hsmca revoke xyz --reason keyCompromise
expect_fail "--all needs --issuer and an explicit reason" 2 "--issuer GEN and an explicit --reason" \
	hsmca revoke --all --issuer 2
check "nothing else was revoked" test "$(db "SELECT count(*) FROM cert WHERE status = 'revoked'")" -eq 1

# ---- hold and unhold ----
expect_ok "revoke --reason certificateHold" hsmca revoke "$s2" --reason certificateHold
run hsmca cert show "$s2"
check "the held certificate shows certificateHold" grep -q '^Reason: *certificateHold' "$WORK/last.out"
expect_ok "revoke --unhold lifts the hold" hsmca revoke --unhold "$s2"
check "it says the certificate is valid again" grep -q "valid again" "$WORK/last.out"
check "the store has it valid, with no revocation left" \
	test "$(db "SELECT status || ' ' || coalesce(revoke_reason, '-') || ' ' || coalesce(revoked_at, '-') FROM cert WHERE serial = '$s2'")" = "valid - -"
expect_fail "a certificate not on hold cannot be unheld" 1 "not on hold" \
	hsmca revoke --unhold "$s2"
expect_fail "a certificate revoked for good cannot be unheld" 1 "for good" \
	hsmca revoke --unhold "$s1"
expect_ok "hold it again" hsmca revoke "$s2" --reason certificateHold

# ---- a list of serials, in one transaction ----
cat >"$WORK/serials.txt" <<EOF
# devices returned by the field team
$s3

$(echo "$s4" | tr a-f A-F | sed 's/../&:/g; s/:$//')   # upper case, colons
$s1
EOF
expect_ok "revoke --serials FILE --reason cessationOfOperation" \
	hsmca revoke --serials "$WORK/serials.txt" --reason cessationOfOperation
check "it counts 2 revoked, 1 already revoked" \
	grep -q "revoked 2 certificates (cessationOfOperation); 1 already revoked; 3 listed" "$WORK/last.out"
check "both are revoked for cessationOfOperation (5)" \
	test "$(db "SELECT count(*) FROM cert WHERE revoke_reason = 5 AND serial IN ('$s3', '$s4')")" -eq 2
printf '%s\n0bad\n' "$s5" >"$WORK/bad.txt"
expect_fail "a list with an unknown serial revokes nothing and exits 3" 3 "0bad" \
	hsmca revoke --serials "$WORK/bad.txt" --reason keyCompromise
check "... the known serial of that list is still valid" \
	test "$(db "SELECT status FROM cert WHERE serial = '$s5'")" = valid
printf '%s\nnot-a-serial\n' "$s5" >"$WORK/bad2.txt"
expect_fail "a malformed line is named by its number" 2 "line 2" \
	hsmca revoke --serials "$WORK/bad2.txt"
run sh -c "printf '%s\n' '$s5' | '$HSMCA' -c '$CONF' --json revoke --serials - --reason affiliationChanged"
check "--serials - reads standard input; --json counts" \
	sh -c "test $RC -eq 0 && grep -q '\"revoked\": 1' '$WORK/last.out' && grep -q '\"already_revoked\": 0' '$WORK/last.out'"

# ---- the CRL ----
expect_ok "crl --ca 2 --out FILE" hsmca crl --ca 2 --out "$WORK/crl1.pem"
check "it reports the number and the count" grep -q "^CRL 1 of CA generation 2: 5 revoked" "$WORK/last.out"
expect_ok "openssl crl -verify: signed by the issuing CA" \
	openssl crl -in "$WORK/crl1.pem" -noout -verify -CAfile "$WORK/ica.pem"
check "... verify OK" grep -q "verify OK" "$WORK/last.err"
run openssl verify -crl_check -CRLfile "$WORK/crl1.pem" -CAfile "$WORK/root.pem" \
	-untrusted "$WORK/ica.pem" "$WORK/d1.pem"
check "openssl verify -crl_check: a revoked certificate is revoked" \
	sh -c "test $RC -ne 0 && grep -q 'certificate revoked' '$WORK/last.out' '$WORK/last.err'"
expect_ok "openssl verify -crl_check: a valid certificate is OK" \
	openssl verify -crl_check -CRLfile "$WORK/crl1.pem" -CAfile "$WORK/root.pem" \
	-untrusted "$WORK/ica.pem" "$WORK/d6.pem"
run openssl verify -crl_check -CRLfile "$WORK/crl1.pem" -CAfile "$WORK/root.pem" \
	-untrusted "$WORK/ica.pem" "$WORK/d2.pem"
check "openssl verify -crl_check: a held certificate is revoked" \
	sh -c "test $RC -ne 0 && grep -q 'certificate revoked' '$WORK/last.out' '$WORK/last.err'"
run certtool --verify --load-ca-certificate "$WORK/cas.pem" --load-crl "$WORK/crl1.pem" --infile "$WORK/d1.pem"
check "certtool --verify --load-crl: the revoked certificate is revoked" \
	grep -q "The certificate chain is revoked" "$WORK/last.out"
run certtool --verify --load-ca-certificate "$WORK/cas.pem" --load-crl "$WORK/crl1.pem" --infile "$WORK/d6.pem"
check "certtool --verify --load-crl: a valid certificate verifies" \
	sh -c "test $RC -eq 0 && grep -q 'Chain verification output: Verified' '$WORK/last.out'"

run openssl crl -in "$WORK/crl1.pem" -noout -text
cp "$WORK/last.out" "$WORK/crl1.txt"
check "CRL: version 2, ecdsa-with-SHA256, the issuing CA as issuer" \
	sh -c "grep -q 'Version 2' '$WORK/crl1.txt' && grep -q 'Signature Algorithm: ecdsa-with-SHA256' '$WORK/crl1.txt' &&
	       grep -q 'Issuer: CN = hsmca Test Device CA rv' '$WORK/crl1.txt'"
ski=$(openssl x509 -in "$WORK/ica.pem" -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' ')
check "CRL: authorityKeyIdentifier is the issuing CA's SKI" \
	sh -c "grep -A1 'Authority Key Identifier' '$WORK/crl1.txt' | tail -1 | tr -d ' ' | grep -q '^$ski\$'"
# entry SERIAL: the text of one entry of crl1.txt
entry() {
	S=$(echo "$1" | tr a-f A-F)
	awk -v s="$S" '/Serial Number:/ { on = ($3 == s) } on' "$WORK/crl1.txt"
}
entry "$s1" >"$WORK/e1"; entry "$s2" >"$WORK/e2"; entry "$s5" >"$WORK/e5"; entry "$s6" >"$WORK/e6"
check "entries carry their reasonCode (keyCompromise, Certificate Hold, Affiliation Changed)" \
	sh -c "grep -q 'Key Compromise' '$WORK/e1' && grep -q 'Certificate Hold' '$WORK/e2' && grep -q 'Affiliation Changed' '$WORK/e5'"
check "a valid certificate is not on the CRL" test ! -s "$WORK/e6"
last=$(openssl crl -in "$WORK/crl1.pem" -noout -lastupdate | sed 's/.*=//')
next=$(openssl crl -in "$WORK/crl1.pem" -noout -nextupdate | sed 's/.*=//')
check "nextUpdate is 7 days after thisUpdate by default" \
	test $(( $(date -d "$next" +%s) - $(date -d "$last" +%s) )) -eq $((7 * 86400))
run certtool --crl-info --infile "$WORK/crl1.pem"
check "certtool --crl-info reads it: CRL number 01, 5 revoked" \
	sh -c "grep -q 'CRL Number (not critical): 01' '$WORK/last.out' && grep -q 'Revoked certificates (5)' '$WORK/last.out'"

# An unspecified revocation has no reasonCode; the number increases.
expect_ok "revoke with no reason (unspecified)" hsmca revoke "$s6"
expect_ok "a second CRL, as DER" hsmca crl --ca 2 --der --out "$WORK/crl2.der"
run certtool --crl-info --inder --infile "$WORK/crl2.der"
check "certtool --crl-info: the second CRL has number 02 and 6 entries" \
	sh -c "grep -q 'CRL Number (not critical): 02' '$WORK/last.out' && grep -q 'Revoked certificates (6)' '$WORK/last.out'"
openssl crl -inform DER -in "$WORK/crl2.der" -noout -text >"$WORK/crl1.txt"
entry "$s6" >"$WORK/e6"
check "the unspecified entry has no reasonCode" \
	sh -c "test -s '$WORK/e6' && ! grep -q 'Reason' '$WORK/e6'"
run hsmca --json crl --next-update 10d
check "crl with the active generation, --next-update 10d, --json: number 3" \
	sh -c "test $RC -eq 0 && grep -q '\"number\": 3' '$WORK/last.out' && grep -q 'BEGIN X509 CRL' '$WORK/last.out'"
expect_fail "--next-update beyond 10 days is refused" 2 "at least every 10 days" \
	hsmca crl --ca 2 --next-update 11d --out "$WORK/never.pem"
check "... and writes nothing" test ! -e "$WORK/never.pem"
check "the store recorded CRL number 3 for generation 2" \
	test "$(db "SELECT number FROM crl_state WHERE issuer_id = 2")" -eq 3
# Entries stay until the certificate expires, then leave the CRL.
run env HSMCA_NOW=$(( $(date +%s) + 400 * 86400 )) "$HSMCA" -c "$CONF" crl --ca 2 --out "$WORK/late.pem"
check "after the certificates expired, the CRL has no entries left (number 4)" \
	sh -c "test $RC -eq 0 && grep -q '^CRL 4 of CA generation 2: 0 revoked' '$WORK/last.out'"

# ---- every certificate of a generation ----
expect_ok "revoke --issuer 2 --all --reason cACompromise" \
	hsmca revoke --issuer 2 --all --reason cACompromise
check "it counts the 2 left valid and the held one, 5 already revoked" \
	grep -q "revoked 3 certificates of CA generation 2 (cACompromise); 5 already revoked" "$WORK/last.out"
check "no valid certificate of generation 2 is left" \
	test "$(db "SELECT count(*) FROM cert WHERE issuer_id = 2 AND status = 'valid'")" -eq 0
check "the held certificate is now revoked for cACompromise" \
	test "$(db "SELECT revoke_reason FROM cert WHERE serial = '$s2'")" -eq 2
expect_ok "a CRL after --all" hsmca crl --ca 2 --out "$WORK/crl-all.pem"
run openssl verify -crl_check -CRLfile "$WORK/crl-all.pem" -CAfile "$WORK/root.pem" \
	-untrusted "$WORK/ica.pem" "$WORK/d8.pem"
check "every certificate of the generation is now revoked (d8)" \
	sh -c "test $RC -ne 0 && grep -q 'certificate revoked' '$WORK/last.out' '$WORK/last.err'"

# ---- the disallow list ----
fp=$(openssl x509 -in "$WORK/d7.pem" -noout -fingerprint -sha256 | sed 's/.*=//')
fp_norm=$(echo "$fp" | tr -d : | tr A-F a-f)
expect_ok "disallow add CN --note" hsmca disallow add dev-stolen-9 --note "reported stolen"
check "it says the device may no longer enroll" grep -q "device CN dev-stolen-9 may no longer enroll" "$WORK/last.out"
expect_ok "disallow add a SHA-256 fingerprint (colons, upper case)" hsmca disallow add "$fp"
check "the fingerprint is stored normalized" grep -q "certificate fingerprint $fp_norm" "$WORK/last.out"
run hsmca disallow add dev-stolen-9
check "adding it again succeeds and says nothing changed" \
	sh -c "test $RC -eq 0 && grep -q 'already disallowed' '$WORK/last.out'"
run hsmca disallow list
check "disallow list shows both, with kind and note" \
	sh -c "grep 'dev-stolen-9' '$WORK/last.out' | grep -q 'cn .*reported stolen' && grep '$fp_norm' '$WORK/last.out' | grep -q fingerprint"
run hsmca --json disallow list
check "disallow list --json" grep -q "\"identity\": \"$fp_norm\"" "$WORK/last.out"
expect_ok "disallow remove" hsmca disallow remove "$fp_norm"
expect_fail "removing it again exits 3" 3 "not on the disallow list" hsmca disallow remove "$fp"
run hsmca disallow list
check "only the CN is left" test "$(grep -c 'dev-stolen-9' "$WORK/last.out")" -eq 1 -a "$(wc -l <"$WORK/last.out")" -eq 2

check "the store passes PRAGMA integrity_check" test "$(db 'PRAGMA integrity_check')" = ok
want=$(sed -n 's/^#define STORE_SCHEMA_VERSION \([0-9]*\)$/\1/p' "$top_srcdir/include/hsmca/store.h")
check "the store is at the schema version of this build ($want)" test "$(db 'PRAGMA user_version')" -eq "$want"

# ---- RSA keys, and the root's CRL ----
new_ca rsa rsa-3072 rsa-2048
hsmca ca init >/dev/null || { echo "Bail out! ca init (RSA) failed"; exit 1; }
hsmca ca download 1 >"$WORK/rsa-root.pem"
hsmca ca download 2 >"$WORK/rsa-ica.pem"
hsmca issue --csr "$WORK/d1.csr" --profile device --out "$WORK/rsa-d1.pem" >/dev/null
expect_ok "RSA CA: revoke" hsmca revoke "$(serial_of rsa-d1)" --reason superseded
expect_ok "RSA CA: crl" hsmca crl --out "$WORK/rsa.crl"
run openssl crl -in "$WORK/rsa.crl" -noout -text -verify -CAfile "$WORK/rsa-ica.pem"
check "RSA CA: the CRL is signed sha256WithRSAEncryption and verifies" \
	sh -c "grep -q 'verify OK' '$WORK/last.err' && grep -q 'sha256WithRSAEncryption' '$WORK/last.out'"
run openssl verify -crl_check -CRLfile "$WORK/rsa.crl" -CAfile "$WORK/rsa-root.pem" \
	-untrusted "$WORK/rsa-ica.pem" "$WORK/rsa-d1.pem"
check "RSA CA: the revoked certificate is revoked" \
	sh -c "test $RC -ne 0 && grep -q 'certificate revoked' '$WORK/last.out' '$WORK/last.err'"
expect_ok "the root generation signs its own (empty) CRL in the token" \
	hsmca crl --ca 1 --out "$WORK/rsa-root.crl"
expect_ok "... which verifies with the root certificate" \
	openssl crl -in "$WORK/rsa-root.crl" -noout -verify -CAfile "$WORK/rsa-root.pem"

done_testing
