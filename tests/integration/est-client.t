#!/bin/sh
# hsmca est: the device side of EST against the real hsmcad: cacerts,
# enroll (generated key or given CSR), reenroll, serverkeygen, and renew
# (not due, renewed, a fault after issuance, a crash between the renames);
# refusals with the server's reason; TLS verification, size and time
# limits against openssl s_server.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v jq >/dev/null 2>&1 || skip_all "jq not installed"

est_setup estc
hsmcad_start
ok "hsmcad answers on port $PORT"
SRV="https://localhost:$PORT"
TA="$CADIR/root.pem"
EST="--server $SRV --cacert $TA"
BOOT="--cert $WORK/dev-1.boot.pem --key $WORK/dev-1.boot.key"

pubkey_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
pubkey_of_key() { openssl pkey -in "$1" -pubout 2>/dev/null; }
pair_matches() { [ -n "$(pubkey_of_key "$2")" ] && [ "$(pubkey_of_cert "$1")" = "$(pubkey_of_key "$2")" ]; }
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/serial=//' | tr A-F a-f; }
names_of() { openssl x509 -in "$1" -noout -subject -ext subjectAltName 2>/dev/null; }
mode_of() { stat -c %a "$1"; }
not() { ! "$@"; }
# fingerprints FILE: the SHA-256 fingerprints of every certificate in FILE, sorted
fingerprints() {
	awk -v d="$WORK/fp" '/BEGIN CERT/ { n++ } n { print > (d "." n) }' "$1"
	for f in "$WORK"/fp.*; do openssl x509 -in "$f" -noout -fingerprint -sha256; done | sort
	rm -f "$WORK"/fp.*
}
verifies() {
	openssl verify -CAfile "$TA" -untrusted "$WORK/ica.pem" "$1" >/dev/null 2>&1 || return 1
	cat "$1" "$WORK/ica.pem" "$TA" >"$WORK/chain.tmp"
	certtool --verify-chain --infile "$WORK/chain.tmp" 2>&1 | grep -q "Chain verification output: Verified"
}
# nth_der FILE N: the DER of the Nth certificate in a PEM file.
nth_der() {
	awk -v n="$2" '/^-----BEGIN CERTIFICATE/ { i++ } i == n' "$1" | openssl x509 -outform DER
}
der_of() { openssl x509 -in "$1" -outform DER; }
hsmca ca download 2 >"$WORK/ica.pem"

# ---- cacerts ----
# shellcheck disable=SC2086
expect_ok "est cacerts" hsmca est cacerts $EST --out "$WORK/cacerts.pem"
check "cacerts holds 2 certificates" test "$(grep -c 'BEGIN CERTIFICATE' "$WORK/cacerts.pem")" -eq 2
cat "$WORK/ica.pem" "$TA" >"$WORK/downloaded.pem"
check "they are those of hsmca ca download 2 and 1" \
	test "$(fingerprints "$WORK/cacerts.pem")" = "$(fingerprints "$WORK/downloaded.pem")"
# shellcheck disable=SC2086
run hsmca est cacerts $EST
check "cacerts without --out writes PEM to standard output" cmp -s "$WORK/last.out" "$WORK/cacerts.pem"
# A device has no operator config: est commands never read one.
# shellcheck disable=SC2086
run env HSMCA_CONFIG=/nonexistent/hsmca.conf "$HSMCA" est cacerts $EST
check "est works on a device without any hsmca config" cmp -s "$WORK/last.out" "$WORK/cacerts.pem"
expect_ok "cacerts with an IP address checks it against the certificate's IP SAN" \
	hsmca est cacerts --server "https://127.0.0.1:$PORT" --cacert "$TA" --out "$WORK/cacerts-ip.pem"
expect_ok "cacerts accepts a trailing slash and the label" \
	hsmca est cacerts --server "$SRV/" --cacert "$TA" --label edge --out "$WORK/cacerts-edge.pem"

# ---- enroll ----
# shellcheck disable=SC2086
expect_ok "enroll with the bootstrap certificate and a generated key" \
	hsmca est enroll $EST $BOOT --subject CN=dev-1 --san URI:urn:dev:1 \
	--new-key "$WORK/d1.key" --out "$WORK/d1.pem"
check "it prints the serial" grep -q "^Serial: *$(serial_of "$WORK/d1.pem")" "$WORK/last.out"
check "the new key is mode 600" test "$(mode_of "$WORK/d1.key")" = 600
check "the new key is an EC P-256 key" sh -c "openssl pkey -in '$WORK/d1.key' -noout -text | grep -q 'NIST CURVE: P-256'"
check "the certificate is for the new key" pair_matches "$WORK/d1.pem" "$WORK/d1.key"
check "it names CN=dev-1 and URI:urn:dev:1" \
	sh -c "openssl x509 -in '$WORK/d1.pem' -noout -subject -ext subjectAltName | tr -d '\n' | grep -q 'CN = dev-1.*URI:urn:dev:1'"
check "it verifies with openssl verify and certtool --verify-chain" verifies "$WORK/d1.pem"

make_csr d2 ec:P-384 /CN=dev-1 2>/dev/null
# shellcheck disable=SC2086
expect_ok "enroll with a given CSR (--json)" \
	"$HSMCA" -c "$CONF" --json est enroll $EST $BOOT --csr "$WORK/d2.csr" --out "$WORK/d2.pem"
check "the certificate is for the CSR's key" pair_matches "$WORK/d2.pem" "$WORK/d2.key"
check "--json prints serial, not_after and file" \
	test "$(jq -r '[.serial, (.not_after | test("^[0-9-]+T[0-9:]+Z$")), .file] | join(" ")' "$WORK/last.out")" = \
	"$(serial_of "$WORK/d2.pem") true $WORK/d2.pem"
check "it verifies" verifies "$WORK/d2.pem"

# ---- reenroll ----
# shellcheck disable=SC2086
expect_ok "reenroll with the issued certificate" \
	hsmca est reenroll $EST --cert "$WORK/d1.pem" --key "$WORK/d1.key" \
	--out "$WORK/d1r.pem" --new-key "$WORK/d1r.key"
check "the subject and SAN are kept" test "$(names_of "$WORK/d1r.pem")" = "$(names_of "$WORK/d1.pem")"
check "the key changed" test "$(pubkey_of_cert "$WORK/d1r.pem")" != "$(pubkey_of_cert "$WORK/d1.pem")"
check "the new key is mode 600" test "$(mode_of "$WORK/d1r.key")" = 600
check "the reenrolled pair matches" pair_matches "$WORK/d1r.pem" "$WORK/d1r.key"
check "the serial changed" test "$(serial_of "$WORK/d1r.pem")" != "$(serial_of "$WORK/d1.pem")"
check "it verifies" verifies "$WORK/d1r.pem"
# shellcheck disable=SC2086
expect_ok "reenroll keeps a P-384 key a P-384 key" \
	hsmca est reenroll $EST --cert "$WORK/d2.pem" --key "$WORK/d2.key" \
	--out "$WORK/d2r.pem" --new-key "$WORK/d2r.key"
check "the new key is P-384" sh -c "openssl pkey -in '$WORK/d2r.key' -noout -text | grep -q 'NIST CURVE: P-384'"

# Outputs are checked before the server is asked: never the current pair,
# and where they can be written.
cp "$WORK/d1r.pem" "$WORK/cur.pem"
(umask 077; cp "$WORK/d1r.key" "$WORK/cur.key")
rows=$(count_rows)
# shellcheck disable=SC2086
expect_fail "reenroll --new-key naming the current --key is refused" 2 \
	"--new-key $WORK/./cur.key is the current --key" \
	hsmca est reenroll $EST --cert "$WORK/cur.pem" --key "$WORK/cur.key" \
	--new-key "$WORK/./cur.key" --out "$WORK/nodir/cur.pem"
check "the key is unchanged and still the certificate's" \
	sh -c "cmp -s '$WORK/cur.key' '$WORK/d1r.key' && test '$(pubkey_of_cert "$WORK/cur.pem")' = \"\$(openssl pkey -in '$WORK/cur.key' -pubout)\""
# shellcheck disable=SC2086
expect_fail "reenroll --out naming the current --cert is refused" 2 "--out $WORK/cur.pem is the current --cert" \
	hsmca est reenroll $EST --cert "$WORK/cur.pem" --key "$WORK/cur.key" \
	--new-key "$WORK/new.key" --out "$WORK/cur.pem"
# shellcheck disable=SC2086
expect_fail "reenroll --out in a directory that does not exist is refused" 1 \
	"cannot write $WORK/nodir/new.pem: $WORK/nodir: No such file or directory" \
	hsmca est reenroll $EST --cert "$WORK/cur.pem" --key "$WORK/cur.key" \
	--new-key "$WORK/new.key" --out "$WORK/nodir/new.pem"
check "no new key was written" test ! -e "$WORK/new.key"
cp "$WORK/dev-1.boot.pem" "$WORK/bootcopy.pem"
cp "$WORK/dev-1.boot.key" "$WORK/bootcopy.key"
expect_fail "serverkeygen --key-out naming the current --key is refused" 2 \
	"--key-out $WORK/bootcopy.key is the current --key" \
	hsmca est serverkeygen $EST --label edge --cert "$WORK/bootcopy.pem" --key "$WORK/bootcopy.key" \
	--subject "CN=gw-x" --out "$WORK/gwx.pem" --key-out "$WORK/bootcopy.key"
check "that key is unchanged" cmp -s "$WORK/bootcopy.key" "$WORK/dev-1.boot.key"
# shellcheck disable=SC2086
expect_fail "enroll --new-key and --out naming the same file is refused" 2 "--new-key and --out name the same file" \
	hsmca est enroll $EST $BOOT --subject CN=dev-1 --new-key "$WORK/same.pem" --out "$WORK/same.pem"
check "the server was asked nothing: no certificate issued" test "$(count_rows)" -eq "$rows"

# ---- serverkeygen ----
# shellcheck disable=SC2086
expect_ok "serverkeygen on label edge" \
	hsmca est serverkeygen $EST --label edge $BOOT --subject "CN=gateway-9 device CA" \
	--out "$WORK/gw.pem" --key-out "$WORK/gw.key"
check "the key from the server is the certificate's key" pair_matches "$WORK/gw.pem" "$WORK/gw.key"
check "the key is mode 600" test "$(mode_of "$WORK/gw.key")" = 600
check "the certificate names the subject" \
	sh -c "openssl x509 -in '$WORK/gw.pem' -noout -subject | grep -q 'CN = gateway-9 device CA'"
check "it verifies" verifies "$WORK/gw.pem"
# shellcheck disable=SC2086
expect_ok "serverkeygen --chain" \
	hsmca est serverkeygen $EST --label edge $BOOT --subject "CN=gateway-10 device CA" \
	--out "$WORK/gwc.pem" --key-out "$WORK/gwc.key" --chain
check "--chain: the certificate, then the CA that issued it, not the root" \
	sh -c "test \$(grep -c '^-----BEGIN CERTIFICATE' '$WORK/gwc.pem') -eq 2 &&
		test '$(nth_der "$WORK/gwc.pem" 2 | sha256sum)' = '$(der_of "$WORK/ica.pem" | sha256sum)'"
check "--chain: the file alone, with the root, verifies" \
	openssl verify -CAfile "$TA" -untrusted "$WORK/gwc.pem" "$WORK/gwc.pem"
check "--chain: the key is the certificate's" pair_matches "$WORK/gwc.pem" "$WORK/gwc.key"
# --key-type: the request's key says what kind the server makes.
# shellcheck disable=SC2086
expect_ok "serverkeygen --key-type ec-p384" \
	hsmca est serverkeygen $EST --label edge $BOOT --subject "CN=gateway-11 device CA" \
	--key-type ec-p384 --out "$WORK/gw384.pem" --key-out "$WORK/gw384.key"
check "the server made a P-384 key" \
	sh -c "openssl pkey -in '$WORK/gw384.key' -noout -text | grep -q 'NIST CURVE: P-384'"
check "... the pair matches" pair_matches "$WORK/gw384.pem" "$WORK/gw384.key"
check "... the certificate verifies" verifies "$WORK/gw384.pem"
# shellcheck disable=SC2086
expect_ok "serverkeygen --key-type rsa-2048" \
	hsmca est serverkeygen $EST --label edge $BOOT --subject "CN=gateway-12 device CA" \
	--key-type rsa-2048 --out "$WORK/gwrsa.pem" --key-out "$WORK/gwrsa.key"
check "the server made an RSA-2048 key, the certificate's" \
	sh -c "openssl pkey -in '$WORK/gwrsa.key' -noout -text | grep -q 'Private-Key: (2048 bit' &&
		test \"\$(openssl pkey -in '$WORK/gwrsa.key' -pubout)\" = \"\$(openssl x509 -in '$WORK/gwrsa.pem' -noout -pubkey)\""
rows=$(count_rows)
# shellcheck disable=SC2086
expect_fail "an unknown --key-type is refused before the server is asked" 1 \
	"--key-type ed25519: not ec-p256, ec-p384, rsa-2048 or rsa-3072" \
	hsmca est serverkeygen $EST --label edge $BOOT --subject "CN=gateway-13 device CA" \
	--key-type ed25519 --out "$WORK/gw13.pem" --key-out "$WORK/gw13.key"
check "... nothing issued, nothing written" \
	sh -c "test $(count_rows) -eq $rows && test ! -e '$WORK/gw13.key' && test ! -e '$WORK/gw13.pem'"
# shellcheck disable=SC2086
expect_ok "enroll --subject --key-type ec-p384" hsmca est enroll $EST $BOOT --subject CN=dev-1 \
	--key-type ec-p384 --new-key "$WORK/e384.key" --out "$WORK/e384.pem"
check "the device made a P-384 key, and the certificate is for it" \
	sh -c "openssl pkey -in '$WORK/e384.key' -noout -text | grep -q 'NIST CURVE: P-384'"
check "... the pair matches" pair_matches "$WORK/e384.pem" "$WORK/e384.key"
# shellcheck disable=SC2086
expect_fail "--key-type with --csr is refused (the request has its key)" 2 \
	"est enroll takes either --csr, or --subject" \
	hsmca est enroll $EST $BOOT --csr "$WORK/dev-1.boot.csr" --key-type ec-p384 --out "$WORK/x.pem"
# shellcheck disable=SC2086
expect_ok "enroll --chain" hsmca est enroll $EST $BOOT --subject CN=dev-1 \
	--new-key "$WORK/ec.key" --out "$WORK/ec.pem" --chain
check "enroll --chain: the certificate and its CA" \
	sh -c "test \$(grep -c '^-----BEGIN CERTIFICATE' '$WORK/ec.pem') -eq 2 &&
		openssl verify -CAfile '$TA' -untrusted '$WORK/ec.pem' '$WORK/ec.pem' >/dev/null"
# shellcheck disable=SC2086
expect_fail "cacerts has no --chain" 2 "usage" hsmca est cacerts $EST --chain

# ---- renew ----
DEV="$WORK/device"
mkdir -p "$DEV"
cp "$WORK/d1r.pem" "$DEV/cert.pem"
(umask 077; cp "$WORK/d1r.key" "$DEV/key.pem")
cp "$DEV/cert.pem" "$WORK/orig.pem"
cp "$DEV/key.pem" "$WORK/orig.key"
RENEW="$EST --cert $DEV/cert.pem --key $DEV/key.pem"
unchanged() {
	cmp -s "$DEV/cert.pem" "$WORK/orig.pem" && cmp -s "$DEV/key.pem" "$WORK/orig.key"
}
no_new() { [ ! -e "$DEV/cert.pem.new" ] && [ ! -e "$DEV/key.pem.new" ]; }
# shellcheck disable=SC2086
expect_ok "renew when not due exits 0" hsmca est renew $RENEW
check "it says not due, with the expiry and the renewal date" \
	grep -Eq '^not due: expires [0-9-]+T[0-9:]+Z \(renews from [0-9-]+T[0-9:]+Z\)$' "$WORK/last.out"
check "nothing changed (cmp)" unchanged
check "no .new or .old file" sh -c "! ls '$DEV' | grep -q -e '\.new' -e '\.old'"
# shellcheck disable=SC2086
run "$HSMCA" -c "$CONF" --json est renew $RENEW
check "--json: status not_due" test "$(jq -r .status "$WORK/last.out")" = not_due
# shellcheck disable=SC2086
expect_fail "a bad --threshold is a usage error" 2 "threshold" hsmca est renew $RENEW --threshold soon

FUTURE=$(date -u -d '+340 days' +%Y-%m-%dT%H:%M:%SZ)
rows=$(count_rows)
# shellcheck disable=SC2086
expect_fail "renew with HSMCA_EST_FAULT=after-issue fails" 1 "after-issue" \
	env HSMCA_NOW="$FUTURE" HSMCA_EST_FAULT=after-issue "$HSMCA" -c "$CONF" est renew $RENEW
check "the server did issue (a new row)" test "$(count_rows)" -eq $((rows + 1))
check "the old pair is byte for byte unchanged" unchanged
check "no .new file is left" no_new
check "no .old file was made" test ! -e "$DEV/cert.pem.old"
# shellcheck disable=SC2086
expect_ok "the old pair still works (reenroll with it)" \
	hsmca est reenroll $EST --cert "$DEV/cert.pem" --key "$DEV/key.pem" \
	--out "$WORK/probe.pem" --new-key "$WORK/probe.key"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TA" --cert "$DEV/cert.pem" \
	--key "$DEV/key.pem" "$URL/csrattrs")
check "and a GET with it answers 200" test "$STATUS" = 200

# shellcheck disable=SC2086
expect_ok "renew with HSMCA_NOW 340 days ahead renews" \
	env HSMCA_NOW="$FUTURE" "$HSMCA" -c "$CONF" est renew $RENEW
check "it says renewed, with the new serial" \
	grep -q "^renewed: serial $(serial_of "$DEV/cert.pem"), expires" "$WORK/last.out"
check "the serial changed" test "$(serial_of "$DEV/cert.pem")" != "$(serial_of "$WORK/orig.pem")"
check "the key changed" test "$(pubkey_of_key "$DEV/key.pem")" != "$(pubkey_of_key "$WORK/orig.key")"
check "the new pair matches" pair_matches "$DEV/cert.pem" "$DEV/key.pem"
check "the subject and SAN are kept" test "$(names_of "$DEV/cert.pem")" = "$(names_of "$WORK/orig.pem")"
check "the old pair is kept as .old" \
	sh -c "cmp -s '$DEV/cert.pem.old' '$WORK/orig.pem' && cmp -s '$DEV/key.pem.old' '$WORK/orig.key'"
check "the keys are mode 600" \
	test "$(mode_of "$DEV/key.pem")$(mode_of "$DEV/key.pem.old")" = 600600
check "no .new file is left" no_new
check "the new certificate verifies" verifies "$DEV/cert.pem"
# shellcheck disable=SC2086
expect_ok "the new pair works (reenroll with it)" \
	hsmca est reenroll $EST --cert "$DEV/cert.pem" --key "$DEV/key.pem" \
	--out "$WORK/probe2.pem" --new-key "$WORK/probe2.key"
# shellcheck disable=SC2086
expect_ok "right after, renew is not due again" hsmca est renew $RENEW
check "it says not due" grep -q "^not due" "$WORK/last.out"

prev=$(serial_of "$DEV/cert.pem")
# shellcheck disable=SC2086
expect_ok "renew --force --json" "$HSMCA" -c "$CONF" --json est renew $RENEW --force
check "--json: status renewed, serial, not_after, file, previous_serial" \
	test "$(jq -r '[.status, .serial, .file, .previous_serial, (.not_after != null)] | join(" ")' "$WORK/last.out")" = \
	"renewed $(serial_of "$DEV/cert.pem") $DEV/cert.pem $prev true"

# A crash between the two renames: KEY already new, CERT.new beside.
cp "$DEV/cert.pem" "$WORK/before-crash.pem"
# shellcheck disable=SC2086
expect_ok "a pair for the simulated crash" \
	hsmca est reenroll $EST --cert "$DEV/cert.pem" --key "$DEV/key.pem" \
	--out "$WORK/crash.pem" --new-key "$WORK/crash.key"
cp "$WORK/crash.key" "$DEV/key.pem"
cp "$WORK/crash.pem" "$DEV/cert.pem.new"
check "the simulated crash leaves KEY and CERT mismatched" not pair_matches "$DEV/cert.pem" "$DEV/key.pem"
# shellcheck disable=SC2086
expect_ok "the next renew completes the swap" hsmca est renew $RENEW
check "it says so" grep -q "completed an interrupted renewal" "$WORK/last.err"
check "then finds the pair not due" grep -q "^not due" "$WORK/last.out"
check "CERT is now the certificate from CERT.new" cmp -s "$DEV/cert.pem" "$WORK/crash.pem"
check "the pair matches again" pair_matches "$DEV/cert.pem" "$DEV/key.pem"
check "no .new file is left" no_new
# The same at boot, before the network: not due, the server is not asked.
cp "$DEV/cert.pem" "$DEV/cert.pem.new"
cp "$WORK/before-crash.pem" "$DEV/cert.pem"
check "a second simulated crash: mismatched again" not pair_matches "$DEV/cert.pem" "$DEV/key.pem"
expect_ok "renew with no server to reach completes the swap" \
	hsmca est renew --server https://localhost:1 --cacert "$TA" --cert "$DEV/cert.pem" --key "$DEV/key.pem"
check "then finds the pair not due" grep -q "^not due" "$WORK/last.out"
check "the pair matches again" pair_matches "$DEV/cert.pem" "$DEV/key.pem"

# A run that failed before the swap left stale .new files: removed,
# the pair untouched.
cp "$DEV/cert.pem" "$WORK/orig.pem"
cp "$DEV/key.pem" "$WORK/orig.key"
cp "$WORK/probe.pem" "$DEV/cert.pem.new"
cp "$WORK/probe.key" "$DEV/key.pem.new"
# shellcheck disable=SC2086
expect_ok "renew with stale .new files from a failed run" hsmca est renew $RENEW
check "they are removed" no_new
check "the pair is unchanged" unchanged

# A file that held the certificate alone holds the renewed one alone.
check "a file with the certificate alone stays so" \
	test "$(grep -c '^-----BEGIN CERTIFICATE' "$DEV/cert.pem")" -eq 1

# An edge CA (serverkeygen on label edge) renews into an edge CA: the
# new certificate may be CA:TRUE because the one renewed is.
mkdir -p "$WORK/edge"
cp "$WORK/gw.pem" "$WORK/edge/cert.pem"
(umask 077; cp "$WORK/gw.key" "$WORK/edge/key.pem")
# shellcheck disable=SC2086
expect_ok "renew --force an edge CA's pair" \
	hsmca est renew $EST --cert "$WORK/edge/cert.pem" --key "$WORK/edge/key.pem" --force
check "the new certificate is an edge CA for the same subject" \
	sh -c "test '$(names_of "$WORK/gw.pem")' = \"\$(openssl x509 -in '$WORK/edge/cert.pem' -noout -subject -ext subjectAltName 2>/dev/null)\" &&
		openssl x509 -in '$WORK/edge/cert.pem' -noout -ext basicConstraints | grep -q 'CA:TRUE' &&
		! cmp -s '$WORK/gw.pem' '$WORK/edge/cert.pem'"

# Renewal refused by the server: a bootstrap certificate cannot renew.
mkdir -p "$WORK/boot"
cp "$WORK/dev-1.boot.pem" "$WORK/boot/cert.pem"
cp "$WORK/dev-1.boot.key" "$WORK/boot/key.pem"
# shellcheck disable=SC2086
expect_fail "renew --force with a bootstrap certificate: the server's reason" 1 \
	"server refused \(403\): simplereenroll needs the certificate being renewed" \
	hsmca est renew $EST --cert "$WORK/boot/cert.pem" --key "$WORK/boot/key.pem" --force
check "the pair is unchanged and nothing is left beside it" \
	sh -c "cmp -s '$WORK/boot/cert.pem' '$WORK/dev-1.boot.pem' && cmp -s '$WORK/boot/key.pem' '$WORK/dev-1.boot.key' && test \$(ls '$WORK/boot' | wc -l) -eq 2"

# The renewed files keep the owner, group and mode of those they replace
# (the key never more than 0640); the copies kept as .old too.
OWN="$WORK/own"
mkdir -p "$OWN"
# shellcheck disable=SC2086
hsmca est reenroll $EST --cert "$DEV/cert.pem" --key "$DEV/key.pem" \
	--out "$OWN/cert.pem" --new-key "$OWN/key.pem" >/dev/null 2>&1
owner_mode() { stat -c '%u:%g %a' "$@" | tr '\n' ' '; }
if [ "$(id -u)" = 0 ]; then
	chown 65534:65534 "$OWN/cert.pem" "$OWN/key.pem"
	chmod 0640 "$OWN/key.pem"; chmod 0644 "$OWN/cert.pem"
	# shellcheck disable=SC2086
	expect_ok "renew a pair owned by another user (key 0640)" \
		hsmca est renew $EST --cert "$OWN/cert.pem" --key "$OWN/key.pem" --force
	check "key and cert keep owner, group and mode; so do the .old copies" \
		test "$(owner_mode "$OWN/key.pem" "$OWN/cert.pem" "$OWN/key.pem.old" "$OWN/cert.pem.old")" = \
		"65534:65534 640 65534:65534 644 65534:65534 640 65534:65534 644 "
	chmod 0644 "$OWN/key.pem"
	# shellcheck disable=SC2086
	expect_ok "renew a pair whose key is world-readable" \
		hsmca est renew $EST --cert "$OWN/cert.pem" --key "$OWN/key.pem" --force
	check "the new key is 0640, not world-readable" \
		test "$(owner_mode "$OWN/key.pem" "$OWN/key.pem.old")" = "65534:65534 640 65534:65534 640 "
else
	ok "# SKIP not root: renew keeps another owner"
	ok "# SKIP not root: renew keeps another owner"
	ok "# SKIP not root: a world-readable key"
	ok "# SKIP not root: a world-readable key"
fi

# --cert and --key as symbolic links: the files they point to are
# renewed in their own directory; the links stay links.
SYM="$WORK/sym"
mkdir -p "$SYM/etc" "$SYM/data"
# shellcheck disable=SC2086
hsmca est reenroll $EST --cert "$DEV/cert.pem" --key "$DEV/key.pem" \
	--out "$SYM/data/cert.pem" --new-key "$SYM/data/key.pem" >/dev/null 2>&1
ln -s ../data/cert.pem "$SYM/etc/cert.pem"
ln -s ../data/key.pem "$SYM/etc/key.pem"
cp "$SYM/data/cert.pem" "$WORK/sym-orig.pem"
# shellcheck disable=SC2086
expect_ok "renew through symbolic links" \
	hsmca est renew $EST --cert "$SYM/etc/cert.pem" --key "$SYM/etc/key.pem" --force
check "the links are still links" test -L "$SYM/etc/cert.pem" -a -L "$SYM/etc/key.pem"
check "the files they point to hold the new pair" \
	sh -c "test '$(serial_of "$WORK/sym-orig.pem")' != \"\$(openssl x509 -in '$SYM/data/cert.pem' -noout -serial | sed 's/serial=//' | tr A-F a-f)\""
check "the pair matches through the links" pair_matches "$SYM/etc/cert.pem" "$SYM/etc/key.pem"
check "the .old copies are beside the files, nothing beside the links" \
	sh -c "cmp -s '$SYM/data/cert.pem.old' '$WORK/sym-orig.pem' && test -e '$SYM/data/key.pem.old' &&
		test \$(ls '$SYM/etc' | wc -l) -eq 2"

# The server refuses the current pair (revoked): renew does not go back
# to the previous pair by itself, says whether the server still takes
# it, and leaves it in place as .old.
REV="$WORK/rev"
mkdir -p "$REV"
# shellcheck disable=SC2086
hsmca est reenroll $EST --cert "$DEV/cert.pem" --key "$DEV/key.pem" \
	--out "$REV/cert.pem" --new-key "$REV/key.pem" >/dev/null 2>&1
# shellcheck disable=SC2086
expect_ok "renew a pair, keeping the previous one as .old" \
	hsmca est renew $EST --cert "$REV/cert.pem" --key "$REV/key.pem" --force
cp "$REV/cert.pem.old" "$WORK/rev-old.pem"
cp "$REV/key.pem.old" "$WORK/rev-old.key"
expect_ok "revoke the current certificate" \
	hsmca revoke "$(serial_of "$REV/cert.pem" | sed 's/^00//')" --reason superseded
# shellcheck disable=SC2086
expect_fail "renew with a revoked certificate: the server's reason" 1 \
	"server refused \(403\): client certificate [0-9a-f]* is revoked" \
	hsmca est renew $EST --cert "$REV/cert.pem" --key "$REV/key.pem" --force
check "it says the previous pair still works and how to go back to it" \
	grep -q "the server still accepts the previous pair, kept as $REV/cert.pem.old and $REV/key.pem.old: to go back to it, move them over $REV/cert.pem and $REV/key.pem, then renew" "$WORK/last.err"
check "the previous pair is still there, unchanged" \
	sh -c "cmp -s '$REV/cert.pem.old' '$WORK/rev-old.pem' && cmp -s '$REV/key.pem.old' '$WORK/rev-old.key'"
mv "$REV/cert.pem.old" "$REV/cert.pem"
mv "$REV/key.pem.old" "$REV/key.pem"
# shellcheck disable=SC2086
expect_ok "after going back to it, renew works again" \
	hsmca est renew $EST --cert "$REV/cert.pem" --key "$REV/key.pem" --force

# ---- refusals ----
expect_fail "a --cacert that does not hold the server's root: TLS verify error" 1 \
	"TLS handshake with localhost:$PORT.*certificate verify failed" \
	hsmca est cacerts --server "$SRV" --cacert "$CADIR/factory.pem"
# shellcheck disable=SC2086
expect_fail "a CN the bootstrap certificate does not carry: 403 with the reason" 1 \
	"server refused \(403\): CSR CN 'dev-2' does not match the client certificate's CN 'dev-1'" \
	hsmca est enroll $EST $BOOT --subject CN=dev-2 --new-key "$WORK/d3.key" --out "$WORK/d3.pem"
check "a refused enrollment writes no key and no certificate" test ! -e "$WORK/d3.key" -a ! -e "$WORK/d3.pem"
# shellcheck disable=SC2086
expect_fail "an unknown label: 404 with the reason" 1 \
	"server refused \(404\): unknown EST label 'nolabel'" \
	hsmca est cacerts $EST --label nolabel
# shellcheck disable=SC2086
expect_fail "serverkeygen on a label without it: 403" 1 \
	"server refused \(403\): serverkeygen is not enabled" \
	hsmca est serverkeygen $EST $BOOT --subject CN=dev-1 --out "$WORK/x.pem" --key-out "$WORK/x.key"
# shellcheck disable=SC2086
expect_fail "enroll without a client certificate is a usage error" 2 "needs --cert" \
	hsmca est enroll $EST --subject CN=dev-1 --new-key "$WORK/x.key" --out "$WORK/x.pem"
expect_fail "--server without https:// is refused" 1 "https://HOST" \
	hsmca est cacerts --server "http://localhost:$PORT" --cacert "$TA"
# shellcheck disable=SC2086
expect_fail "a label that is not a path segment is refused" 1 "--label" \
	hsmca est cacerts $EST --label ../x
# shellcheck disable=SC2086
expect_fail "a key that is not the certificate's is refused" 1 "is not the key of" \
	hsmca est enroll $EST --cert "$WORK/dev-1.boot.pem" --key "$WORK/d1.key" --csr "$WORK/d2.csr" --out "$WORK/x.pem"

# ---- limits, against openssl s_server ----
# sserver DIR ARGS...: openssl s_server in DIR on a free port with the
# hsmcad certificate, for one connection; sets SS_PID and SS_PORT.
sserver() {
	dir=$1; shift
	rm -f "$WORK/ss.fifo" "$WORK/ss.log"; mkfifo "$WORK/ss.fifo"
	sleep 30 >"$WORK/ss.fifo" &
	SS_HOLD=$!
	(cd "$dir" && exec openssl s_server -accept 0 -cert "${SS_CERT:-$CADIR/server-chain.pem}" \
		-cert_chain "$WORK/ica.pem" -key "${SS_KEY:-$CADIR/server.key}" -naccept 1 "$@" <"$WORK/ss.fifo" >"$WORK/ss.log" 2>&1) &
	SS_PID=$!
	SS_PORT=
	i=0
	while [ -z "$SS_PORT" ] && [ $i -lt 100 ]; do
		SS_PORT=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$WORK/ss.log" 2>/dev/null)
		i=$((i + 1)); sleep 0.05
	done
}
sserver_stop() {
	kill "$SS_PID" "$SS_HOLD" 2>/dev/null
	wait "$SS_PID" "$SS_HOLD" 2>/dev/null
}
mkdir -p "$WORK/www/.well-known/est"
head -c 1100000 /dev/zero | tr '\0' 'A' >"$WORK/www/.well-known/est/cacerts"
sserver "$WORK/www" -WWW
expect_fail "a body over 1 MiB is refused" 1 "larger than 1048576 bytes" \
	hsmca est cacerts --server "https://localhost:$SS_PORT" --cacert "$TA"
sserver_stop

# Chunked and read-until-close bodies, from a small Python server.
if command -v python3 >/dev/null 2>&1; then
	curl -s --cacert "$TA" -o "$WORK/cacerts.b64" "$URL/cacerts"
	cat >"$WORK/httpd.py" <<'EOP'
import socket, ssl, sys
body = open(sys.argv[1], "rb").read()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(4)
print(ls.getsockname()[1], flush=True)
for _ in range(2):
    raw, _ = ls.accept()
    c = ctx.wrap_socket(raw, server_side=True)
    req = b""
    while b"\r\n\r\n" not in req:
        req += c.recv(4096)
    path = req.split(b" ")[1]
    ct = b"Content-Type: application/pkcs7-mime; smime-type=certs-only\r\n"
    if b"/chunked/" in path:
        out = b"HTTP/1.1 200 OK\r\n" + ct + b"Transfer-Encoding: chunked\r\n\r\n"
        for i in range(0, len(body), 100):
            part = body[i:i + 100]
            out += b"%x;ext=1\r\n" % len(part) + part + b"\r\n"
        out += b"0\r\nX-Trailer: 1\r\n\r\n"
        c.sendall(out)
    else:
        c.sendall(b"HTTP/1.0 200 OK\r\n" + ct + b"\r\n" + body)
    c.unwrap().close()
EOP
	python3 "$WORK/httpd.py" "$WORK/cacerts.b64" "$CADIR/server-chain.pem" "$CADIR/server.key" \
		>"$WORK/httpd.port" 2>"$WORK/httpd.err" &
	PY_PID=$!
	i=0; until [ -s "$WORK/httpd.port" ] || [ $i -ge 100 ]; do i=$((i + 1)); sleep 0.05; done
	PY_PORT=$(cat "$WORK/httpd.port")
	run hsmca est cacerts --server "https://localhost:$PY_PORT" --cacert "$TA" --label chunked
	check "a chunked reply is read (with extensions and trailers)" cmp -s "$WORK/last.out" "$WORK/cacerts.pem"
	run hsmca est cacerts --server "https://localhost:$PY_PORT" --cacert "$TA" --label close
	check "a reply without a length is read up to close_notify" cmp -s "$WORK/last.out" "$WORK/cacerts.pem"
	kill "$PY_PID" 2>/dev/null; wait "$PY_PID" 2>/dev/null
else
	ok "# SKIP python3 not installed: chunked reply"
	ok "# SKIP python3 not installed: reply without a length"
fi

# A certificate the trust anchors accept, for another name.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/other.key" \
	-subj /CN=other.example -addext subjectAltName=DNS:other.example -out "$WORK/other.csr" 2>/dev/null
openssl x509 -req -in "$WORK/other.csr" -CA "$CADIR/factory.pem" -CAkey "$CADIR/factory.key" \
	-CAcreateserial -days 30 -copy_extensions copy -out "$WORK/other.pem" 2>/dev/null
SS_CERT="$WORK/other.pem" SS_KEY="$WORK/other.key" sserver "$WORK"
expect_fail "a server certificate for another name: hostname mismatch" 1 \
	"certificate verify failed: hostname mismatch" \
	hsmca est cacerts --server "https://localhost:$SS_PORT" --cacert "$CADIR/factory.pem"
sserver_stop

sserver "$WORK"
start=$(date +%s)
expect_fail "a server that never answers times out" 1 "timed out" \
	hsmca est cacerts --server "https://localhost:$SS_PORT" --cacert "$TA"
took=$(( $(date +%s) - start ))
check "after about 10 seconds (${took}s)" test "$took" -ge 9 -a "$took" -le 14
sserver_stop

# ---- renew keeps a file that holds the chain a chain: the new one's ----
CH="$WORK/chaindev"
mkdir -p "$CH"
# shellcheck disable=SC2086
hsmca est reenroll $EST --cert "$DEV/cert.pem" --key "$DEV/key.pem" \
	--out "$WORK/ch.pem" --new-key "$WORK/ch.key" >/dev/null 2>&1
cat "$WORK/ch.pem" "$WORK/ica.pem" >"$CH/cert.pem"
(umask 077; cp "$WORK/ch.key" "$CH/key.pem")
cp "$CH/cert.pem" "$WORK/ch-orig.pem"
# shellcheck disable=SC2086
expect_ok "renew a pair whose file holds the certificate and its CA" \
	hsmca est renew $EST --cert "$CH/cert.pem" --key "$CH/key.pem" --force
check "the file holds two certificates: the new one and its CA (generation 2)" \
	sh -c "test \$(grep -c '^-----BEGIN CERTIFICATE' '$CH/cert.pem') -eq 2 &&
		test '$(serial_of "$CH/cert.pem")' != '$(serial_of "$WORK/ch-orig.pem")' &&
		test '$(nth_der "$CH/cert.pem" 2 | sha256sum)' = '$(der_of "$WORK/ica.pem" | sha256sum)'"
check "the file alone, with the root, verifies" \
	openssl verify -CAfile "$TA" -untrusted "$CH/cert.pem" "$CH/cert.pem"
check "the previous file is kept whole as .old" cmp -s "$CH/cert.pem.old" "$WORK/ch-orig.pem"
# The CA rotates (on the appliance, then SIGHUP): the next renewal's
# certificate comes from generation 3, and so does the chain in the file.
rotate_to 3
hsmca ca download 3 >"$WORK/gen3.pem"
# shellcheck disable=SC2086
expect_ok "renew after the rotation" \
	hsmca est renew $EST --cert "$CH/cert.pem" --key "$CH/key.pem" --force
check "the file holds the new certificate and generation 3, not 2" \
	sh -c "test \$(grep -c '^-----BEGIN CERTIFICATE' '$CH/cert.pem') -eq 2 &&
		test '$(nth_der "$CH/cert.pem" 2 | sha256sum)' = '$(der_of "$WORK/gen3.pem" | sha256sum)'"
check "and verifies alone, with the root" \
	openssl verify -CAfile "$TA" -untrusted "$CH/cert.pem" "$CH/cert.pem"
cat "$CH/cert.pem" "$TA" >"$WORK/chain3.tmp"
run certtool --verify-chain --infile "$WORK/chain3.tmp"
check "certtool verifies it too" grep -q "Chain verification output: Verified" "$WORK/last.out"

done_testing
