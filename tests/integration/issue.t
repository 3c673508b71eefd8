#!/bin/sh
# hsmca issue: certificates for every profile and key type, checked by two
# independent verifiers (openssl verify, GnuTLS certtool) and recorded.
. "$top_srcdir/tests/integration/lib.sh"

new_ca is
hsmca ca init >/dev/null || { echo "Bail out! ca init failed"; exit 1; }
hsmca ca download 1 >"$WORK/root.pem"
hsmca ca download 2 >"$WORK/ica.pem"

# verify_both NAME: NAME.pem verifies with openssl and certtool.
verify_both() {
	openssl verify -CAfile "$WORK/root.pem" -untrusted "$WORK/ica.pem" \
		"$WORK/$1.pem" >/dev/null 2>&1 || return 1
	cat "$WORK/$1.pem" "$WORK/ica.pem" "$WORK/root.pem" >"$WORK/$1.chain"
	certtool --verify-chain --infile "$WORK/$1.chain" >"$WORK/$1.certtool" 2>&1 &&
		grep -q "Chain verification output: Verified" "$WORK/$1.certtool"
}

for spec in ec:P-256 ec:P-384 ec:P-521 rsa:2048 rsa:3072; do
	n=dev-$(echo "$spec" | tr ':' '-')
	make_csr "$n" "$spec" "/CN=$n" "subjectAltName=URI:urn:example:$n" 2>/dev/null
	expect_ok "issue device certificate for a $spec key" \
		hsmca issue --csr "$WORK/$n.csr" --profile device --out "$WORK/$n.pem"
	check "$spec: verifies with openssl verify and certtool --verify-chain" verify_both "$n"
	check "$spec: tbs and outer signature algorithms identical" sigalgs_match "$WORK/$n.pem"
done

n=dev-ec-P-256
run openssl x509 -in "$WORK/$n.pem" -noout -text
check "device: CA:FALSE, digitalSignature, clientAuth only" \
	sh -c "grep -q 'CA:FALSE' '$WORK/last.out' && grep -q 'Digital Signature' '$WORK/last.out' &&
	       grep -q 'TLS Web Client Authentication' '$WORK/last.out' &&
	       ! grep -q 'TLS Web Server Authentication' '$WORK/last.out'"
check "device: SAN copied from the CSR" grep -q 'URI:urn:example:dev-ec-P-256' "$WORK/last.out"
check "device: CRL distribution point and OCSP URL of generation 2" \
	sh -c "grep -q 'URI:http://127.0.0.1:8080/crl/2.crl' '$WORK/last.out' && grep -q 'OCSP - URI:http://127.0.0.1:8080/ocsp' '$WORK/last.out'"
check "device: signed with ecdsa-with-SHA256 by the P-256 CA" \
	grep -q 'Signature Algorithm: ecdsa-with-SHA256' "$WORK/last.out"
ski=$(openssl x509 -in "$WORK/ica.pem" -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' ')
aki=$(openssl x509 -in "$WORK/$n.pem" -noout -ext authorityKeyIdentifier | tail -1 | tr -d ' ' | sed 's/^keyid://')
check "device: AKI equals the issuing CA's SKI" test -n "$ski" -a "$ski" = "$aki"
serial=$(openssl x509 -in "$WORK/$n.pem" -noout -serial | sed 's/serial=//' | tr A-F a-f | sed 's/^00//')
check "serial is 128 bits" test "${#serial}" -eq 32
days=$(( ($(date -d "$(openssl x509 -in "$WORK/$n.pem" -noout -enddate | sed 's/.*=//')" +%s) - $(date +%s)) / 86400 ))
check "device: validity is the profile's 365 days" test "$days" -ge 364 -a "$days" -le 365

# server profile: an edge hub's TLS server certificate.
make_csr hub ec:P-256 "/CN=edgehub.example" "subjectAltName=DNS:edgehub.example,IP:10.1.2.3" 2>/dev/null
expect_ok "issue a server certificate" hsmca issue --csr "$WORK/hub.csr" --profile server --out "$WORK/hub.pem"
check "server: verifies with openssl and certtool" verify_both hub
run openssl x509 -in "$WORK/hub.pem" -noout -text
check "server: serverAuth, DNS and IP names" \
	sh -c "grep -q 'TLS Web Server Authentication' '$WORK/last.out' && grep -q 'DNS:edgehub.example' '$WORK/last.out' && grep -q 'IP Address:10.1.2.3' '$WORK/last.out'"
expect_ok "server: openssl verify -purpose sslserver accepts it" \
	openssl verify -purpose sslserver -CAfile "$WORK/root.pem" -untrusted "$WORK/ica.pem" "$WORK/hub.pem"
expect_fail "device certificate is not accepted as a TLS server" 2 "unsupported certificate purpose|error" \
	openssl verify -purpose sslserver -CAfile "$WORK/root.pem" -untrusted "$WORK/ica.pem" "$WORK/dev-ec-P-256.pem"

# edge-ca: a gateway's device CA that signs its own leafs.
make_csr gw ec:P-256 "/CN=gateway-7 Device CA" 2>/dev/null
expect_ok "issue an edge-ca certificate" hsmca issue --csr "$WORK/gw.csr" --profile edge-ca --out "$WORK/gw.pem"
run openssl x509 -in "$WORK/gw.pem" -noout -ext basicConstraints,keyUsage
check "edge-ca: CA:TRUE, pathlen 0, keyCertSign" \
	sh -c "grep -q 'CA:TRUE, pathlen:0' '$WORK/last.out' && grep -q 'Certificate Sign' '$WORK/last.out'"
# The gateway signs a leaf with its own key, as IoT Edge does.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/leaf.key" \
	-subj "/CN=edge-module" -out "$WORK/leaf.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$WORK/leaf.ext"
openssl x509 -req -in "$WORK/leaf.csr" -CA "$WORK/gw.pem" -CAkey "$WORK/gw.key" -CAcreateserial \
	-days 30 -extfile "$WORK/leaf.ext" -out "$WORK/leaf.pem" 2>/dev/null
cat "$WORK/gw.pem" "$WORK/ica.pem" >"$WORK/gwchain.pem"
expect_ok "a leaf signed by the edge CA verifies through it (openssl)" \
	openssl verify -CAfile "$WORK/root.pem" -untrusted "$WORK/gwchain.pem" "$WORK/leaf.pem"
cat "$WORK/leaf.pem" "$WORK/gw.pem" "$WORK/ica.pem" "$WORK/root.pem" >"$WORK/leaf.chain"
run certtool --verify-chain --infile "$WORK/leaf.chain"
check "a leaf signed by the edge CA verifies through it (certtool)" grep -q "Chain verification output: Verified" "$WORK/last.out"

# --chain, JSON output, the record.
run hsmca issue --csr "$WORK/hub.csr" --profile server --chain
check "issue --chain prints the certificate, the issuing CA and the root" \
	test "$(grep -c 'BEGIN CERTIFICATE' "$WORK/last.out")" -eq 3
run hsmca --json issue --csr "$WORK/hub.csr" --profile server --out "$WORK/hub2.pem"
check "issue --json reports serial and fingerprint" \
	sh -c "grep -q '\"serial\": \"[0-9a-f]*\"' '$WORK/last.out' && grep -q '\"sha256\": \"[0-9a-f]\{64\}\"' '$WORK/last.out'"
fp=$(openssl x509 -in "$WORK/hub2.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)
check "the reported SHA-256 is the certificate's" grep -q "\"sha256\": \"$fp\"" "$WORK/last.out"

# 5 device, 3 server, 1 edge-ca.
check "the store holds every certificate issued, all valid" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert WHERE status = 'valid'")" -eq 9
run hsmca cert list --profile device
check "cert list --profile device lists the 5 device certificates" \
	test "$(grep -c ' device ' "$WORK/last.out")" -eq 5
run hsmca cert show "$serial"
check "cert show finds a certificate by serial" \
	sh -c "grep -q '^Subject: *CN=dev-ec-P-256' '$WORK/last.out' && grep -q '^Status: *valid' '$WORK/last.out' && grep -q '^Requester: *cli:' '$WORK/last.out'"
upper=$(echo "$serial" | tr a-f A-F | sed 's/../&:/g; s/:$//')
run hsmca --json cert show --pem "$upper"
check "cert show accepts a colon-separated upper-case serial, and --json" \
	grep -q "\"serial\": \"$serial\"" "$WORK/last.out"
hsmca cert show --pem "$serial" | sed -n '/^-----BEGIN /,/^-----END /p' >"$WORK/shown.pem"
check "cert show --pem gives back the issued certificate" cmp -s "$WORK/shown.pem" "$WORK/$n.pem"
store_der=$(sqlite3 "$CADIR/hsmca.db" "SELECT hex(der) FROM cert WHERE serial = '$serial'")
file_der=$(openssl x509 -in "$WORK/$n.pem" -outform DER | od -An -v -tx1 | tr -d ' \n' | tr a-f A-F)
check "the stored DER is byte for byte the released certificate" test "$store_der" = "$file_der"
check "the store passes PRAGMA integrity_check" \
	test "$(sqlite3 "$CADIR/hsmca.db" 'PRAGMA integrity_check')" = ok
check "the store is in WAL mode" test "$(sqlite3 "$CADIR/hsmca.db" 'PRAGMA journal_mode')" = wal

# A certificate never outlives its issuer: at 700 days into a 730-day CA,
# a 365-day device certificate is clamped to the CA's notAfter.
ca_end=$(date -d "$(openssl x509 -in "$WORK/ica.pem" -noout -enddate | sed 's/.*=//')" +%s)
HSMCA_NOW=$(( $(date +%s) + 700 * 86400 )) hsmca issue --csr "$WORK/dev-ec-P-256.csr" \
	--profile device --out "$WORK/late.pem" >/dev/null
late_end=$(date -d "$(openssl x509 -in "$WORK/late.pem" -noout -enddate | sed 's/.*=//')" +%s)
check "a late certificate ends with its issuer, not after" test "$late_end" -eq "$ca_end"

done_testing
