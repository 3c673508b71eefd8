#!/bin/sh
# ca pop: a proof-of-possession (verification) certificate checked as
# Azure IoT Hub / DPS and AWS IoT check it: it chains to the generation it
# names, its subject is exactly CN=<code>, it is short-lived and inside
# the CA's validity. Bad codes and generations that may not sign are
# refused before anything is recorded.
. "$top_srcdir/tests/integration/lib.sh"
command -v jq >/dev/null 2>&1 || skip_all "jq not installed (scripts/install-deps.sh)"
command -v sqlite3 >/dev/null 2>&1 || skip_all "sqlite3 not installed (scripts/install-deps.sh)"

# notAfter/notBefore of a PEM certificate as epoch seconds.
cert_time() {
	date -d "$(openssl x509 -in "$1" -noout "-$2" | sed 's/.*=//')" +%s
}

new_ca pop
hsmca ca init >/dev/null || bail "ca init failed"
hsmca ca download 1 >"$WORK/root.pem"
hsmca ca download 2 >"$WORK/gen2.pem"
code=$(openssl rand -hex 16)
before=$(date +%s)

expect_ok "ca pop 2 --code <32 hex> issues a verification certificate" \
	hsmca ca pop 2 --code "$code" --out "$WORK/pop.pem"
check "it reports the serial and both thumbprints" \
	sh -c "grep -q '^serial: *[0-9a-f]\{32\}' '$WORK/last.out' &&
	       grep -q '^SHA-1: *[0-9a-f]\{40\}$' '$WORK/last.out' &&
	       grep -q '^SHA-256: *[0-9a-f]\{64\}$' '$WORK/last.out'"
check "the printed SHA-1 thumbprint is the certificate's" test \
	"$(openssl x509 -in "$WORK/pop.pem" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g' | tr A-F a-f)" = \
	"$(sed -n 's/^SHA-1: *//p' "$WORK/last.out")"
expect_ok "it verifies against the root through generation 2 (openssl)" \
	openssl verify -CAfile "$WORK/root.pem" -untrusted "$WORK/gen2.pem" "$WORK/pop.pem"
cat "$WORK/pop.pem" "$WORK/gen2.pem" "$WORK/root.pem" >"$WORK/chain.pem"
expect_ok "it verifies against the root through generation 2 (certtool)" \
	certtool --verify-chain --infile "$WORK/chain.pem"
check "its subject is exactly CN=<code>" test \
	"$(openssl x509 -in "$WORK/pop.pem" -noout -subject -nameopt RFC2253)" = "subject=CN=$code"
check "its issuer is generation 2's subject" test \
	"$(openssl x509 -in "$WORK/pop.pem" -noout -issuer -nameopt RFC2253 | sed 's/^issuer=//')" = \
	"$(openssl x509 -in "$WORK/gen2.pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')"
aki=$(openssl x509 -in "$WORK/pop.pem" -noout -ext authorityKeyIdentifier | sed -n '2p' | sed 's/^ *//; s/^keyid://')
ski=$(openssl x509 -in "$WORK/gen2.pem" -noout -ext subjectKeyIdentifier | sed -n '2p' | sed 's/^ *//')
check "its authorityKeyIdentifier is generation 2's subjectKeyIdentifier" \
	sh -c "[ -n '$ski' ] && [ '$aki' = '$ski' ]"
run openssl x509 -in "$WORK/pop.pem" -noout -text
check "CA:FALSE, digitalSignature only, no SAN, no extendedKeyUsage" \
	sh -c "grep -q 'CA:FALSE' '$WORK/last.out' &&
	       grep -A1 'X509v3 Key Usage: critical' '$WORK/last.out' | grep -q '^ *Digital Signature$' &&
	       ! grep -q 'Subject Alternative Name' '$WORK/last.out' &&
	       ! grep -q 'Extended Key Usage' '$WORK/last.out' &&
	       grep -q 'NIST CURVE: P-256' '$WORK/last.out'"
check "pop: tbs and outer signature algorithms identical" sigalgs_match "$WORK/pop.pem"
nb=$(cert_time "$WORK/pop.pem" startdate)
na=$(cert_time "$WORK/pop.pem" enddate)
check "it is valid for at most 2 days from now" \
	test "$na" -le $(( $(date +%s) + 2 * 86400 + 60 )) -a "$na" -ge $(( before + 2 * 86400 - 60 ))
check "its validity lies inside generation 2's" \
	test "$nb" -ge "$(cert_time "$WORK/gen2.pem" startdate)" -a "$na" -le "$(cert_time "$WORK/gen2.pem" enddate)"

run hsmca --json cert list --profile pop
check "it is recorded: cert list shows it under profile pop, requester cli:<user>" \
	test "$(jq -r '.[0] | [.subject, .issuer, .status, .requester] | join(",")' "$WORK/last.out")" = \
	"CN=$code,2,valid,cli:$(id -un)"

# By thumbprint, DER, longer validity.
hsmca ca show 2 >"$WORK/show.out"
sha1=$(sed -n 's/^SHA-1 thumbprint: *//p' "$WORK/show.out")
sha256=$(sed -n 's/^SHA-256 thumbprint: *//p' "$WORK/show.out")
run hsmca ca pop "$sha1" --code "AbC-123" --der --out "$WORK/pop.cer"
check "ca pop by SHA-1 thumbprint, --der" test "$RC" -eq 0
expect_ok "the DER output parses" openssl x509 -inform DER -in "$WORK/pop.cer" -noout
check "the DER certificate's subject is CN=AbC-123" test \
	"$(openssl x509 -inform DER -in "$WORK/pop.cer" -noout -subject -nameopt RFC2253)" = "subject=CN=AbC-123"
aws=$(openssl rand -hex 32)
hsmca ca pop "$sha256" --code "$aws" --validity 7d >"$WORK/pop256.pem" 2>"$WORK/pop256.err"
check "ca pop by SHA-256 thumbprint, a 64-hex AWS code, PEM on stdout" \
	test "$(openssl x509 -in "$WORK/pop256.pem" -noout -subject -nameopt RFC2253)" = "subject=CN=$aws"
check "the summary goes to stderr when the certificate goes to stdout" \
	grep -q '^serial:' "$WORK/pop256.err"
check "--validity 7d gives 7 days" \
	test "$(cert_time "$WORK/pop256.pem" enddate)" -le $(( $(date +%s) + 7 * 86400 + 60 ))
expect_fail "--validity above 30 days is refused" 1 "at most 30 days" \
	hsmca ca pop 2 --code abc --validity 31d

# Refusals record nothing.
rows=$(count_rows)
expect_fail "an empty code is refused" 1 "code is empty" hsmca ca pop 2 --code ""
expect_fail "a 65-character code is refused" 1 "65 characters long; at most 64" \
	hsmca ca pop 2 --code "$(printf 'a%.0s' $(seq 65))"
expect_fail "a code with a space is refused" 1 "byte 0x20 at position 4" hsmca ca pop 2 --code "abc def"
expect_fail "a code with '/' is refused" 1 "'/' at position 2" hsmca ca pop 2 --code "a/b"
expect_fail "a code with a non-ASCII letter is refused" 1 "only letters, digits and '-'" \
	hsmca ca pop 2 --code "$(printf 'caf\303\251')"
expect_fail "without --code: usage" 2 "usage" hsmca ca pop 2
expect_fail "an unknown generation exits 3" 3 "." hsmca ca pop 99 --code abc
check "no refused request left a row in the store" test "$(count_rows)" -eq "$rows"

expect_fail "an expired generation is refused" 1 "generation 2 is expired" \
	env HSMCA_NOW=$(( $(date +%s) + 800 * 86400 )) "$HSMCA" -c "$CONF" ca pop 2 --code abc
# No `ca revoke` yet: mark the generation revoked in the store directly.
sqlite3 "$CADIR/hsmca.db" "UPDATE ca_generation SET status = 'revoked' WHERE id = 2"
expect_fail "a revoked generation is refused" 1 "generation 2 is revoked" \
	hsmca ca pop 2 --code abc
check "nor did the generation refusals" test "$(count_rows)" -eq "$rows"

# A pending generation: its key is in the token, its certificate is not.
# Every proof of possession is in the audit log, as such.
run hsmca --json audit list --action pop
npop=$(jq 'length' "$WORK/last.out" 2>/dev/null)
check "each issued proof of possession has a 'pop' audit record ($npop)" \
	test "${npop:-0}" -ge 1 -a "$(jq -r '.[0].actor' "$WORK/last.out")" != null
expect_ok "the audit chain verifies" hsmca audit verify

new_ca popx
hsmca ca init --external --csr-out "$WORK/ext.csr" >/dev/null || bail "ca init --external failed"
expect_fail "a pending generation is refused" 1 "generation 1 is pending" \
	hsmca ca pop 1 --code "$code"
check "and nothing is recorded" test "$(count_rows)" -eq 0

done_testing
