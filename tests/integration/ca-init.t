#!/bin/sh
# ca init on a fresh SoftHSM2 token: keys generated inside, sensitive and
# never extractable; generations listed, shown, found by thumbprint and
# downloaded; a second init refused; a wrong PIN refused without echo.
. "$top_srcdir/tests/integration/lib.sh"

new_ca ci
expect_ok "ca init creates a root and an issuing generation in the token" hsmca ca init
grep -q "generation 2 created and active" "$WORK/last.out" && ok "init reports generation 2 active" || not_ok "init output"

run hsmca ca list
check "ca list shows the root and the issuing generation as active" \
	test "$(grep -Ec '^(1 +root|2 +issuing) +active ' "$WORK/last.out")" -eq 2

# The keys, as the token itself reports them (PIN on argv: a throwaway
# test token only).
run pkcs11-tool --module "$SOFTHSM_MODULE" --token-label ci --login \
	--pin "$(cat "$CADIR/user.pin")" --list-objects --type privkey
nkeys=$(grep -c '^Private Key Object' "$WORK/last.out")
check "the token holds exactly two private keys" test "$nkeys" -eq 2
nsafe=$(grep -c 'Access: *sensitive, always sensitive, never extractable, local' "$WORK/last.out")
check "both are sensitive, always sensitive, never extractable, generated locally" test "$nsafe" -eq 2
check "neither can unwrap or decrypt" sh -c "! grep -Eq 'Usage:.*(decrypt|unwrap)' '$WORK/last.out'"
expect_fail "a second ca init is refused" 1 "already initialized" hsmca ca init

run hsmca ca show 2
check "ca show prints subject, issuer, serial, algorithm, thumbprints, status" \
	sh -c "grep -q '^Subject: *CN=hsmca Test Device CA ci,O=hsmca tests' '$WORK/last.out' &&
	       grep -q '^Issuer: *CN=hsmca Test Root CA ci' '$WORK/last.out' &&
	       grep -q '^Serial: *[0-9a-f]\{32\}' '$WORK/last.out' &&
	       grep -q '^Signature algorithm: *ecdsa-with-SHA384' '$WORK/last.out' &&
	       grep -q '^SHA-1 thumbprint: *[0-9a-f]\{40\}$' '$WORK/last.out' &&
	       grep -q '^SHA-256 thumbprint: *[0-9a-f]\{64\}$' '$WORK/last.out' &&
	       grep -q '^Status: *active' '$WORK/last.out'"
sha1=$(sed -n 's/^SHA-1 thumbprint: *//p' "$WORK/last.out")
sha256=$(sed -n 's/^SHA-256 thumbprint: *//p' "$WORK/last.out")

hsmca ca download 2 >"$WORK/ica.pem"
hsmca ca download 1 >"$WORK/root.pem"
check "the SHA-1 thumbprint is the certificate's" \
	test "$(openssl x509 -in "$WORK/ica.pem" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g' | tr A-F a-f)" = "$sha1"
colon=$(echo "$sha256" | tr a-f A-F | sed 's/../&:/g; s/:$//')
run hsmca ca show "$colon"
check "ca show finds a generation by SHA-256 thumbprint with colons, upper case" \
	grep -q '^Generation: *2$' "$WORK/last.out"
run hsmca ca show "$sha1"
check "ca show finds a generation by SHA-1 thumbprint" grep -q '^Generation: *2$' "$WORK/last.out"
expect_fail "ca show of an unknown generation exits 3" 3 "." hsmca ca show 99

expect_ok "the issuing CA verifies against the root (openssl)" \
	openssl verify -CAfile "$WORK/root.pem" "$WORK/ica.pem"
cat "$WORK/ica.pem" "$WORK/root.pem" >"$WORK/chain.pem"
expect_ok "the issuing CA verifies against the root (certtool)" \
	certtool --verify-chain --infile "$WORK/chain.pem"
check "issuing CA: tbs and outer signature algorithms identical" sigalgs_match "$WORK/ica.pem"
check "root: tbs and outer signature algorithms identical" sigalgs_match "$WORK/root.pem"
run openssl x509 -in "$WORK/ica.pem" -noout -ext basicConstraints,keyUsage
check "issuing CA is CA:TRUE, pathlen 1, keyCertSign and cRLSign" \
	sh -c "grep -q 'CA:TRUE, pathlen:1' '$WORK/last.out' && grep -q 'Certificate Sign, CRL Sign' '$WORK/last.out'"
check "the issuing CA does not outlive the root" test \
	"$(date -d "$(openssl x509 -in "$WORK/ica.pem" -noout -enddate | sed 's/.*=//')" +%s)" -le \
	"$(date -d "$(openssl x509 -in "$WORK/root.pem" -noout -enddate | sed 's/.*=//')" +%s)"

run openssl x509 -in "$WORK/ica.pem" -noout -text
check "issuing CA: its CRL distribution point is the root's CRL (crl-url with generation 1), no OCSP URL" \
	sh -c "grep -A3 'X509v3 CRL Distribution Points' '$WORK/last.out' |
	       grep -qx ' *URI:http://127.0.0.1:8080/crl/1.crl' &&
	       ! grep -q 'Authority Information Access' '$WORK/last.out'"
run openssl x509 -in "$WORK/root.pem" -noout -text
check "the root names no CRL" sh -c "! grep -q 'CRL Distribution Points' '$WORK/last.out'"

run hsmca ca download --chain 2
check "ca download --chain gives the issuing CA then the root" \
	test "$(grep -c 'BEGIN CERTIFICATE' "$WORK/last.out")" -eq 2
hsmca ca download --der --out "$WORK/ica.cer" 2
expect_ok "ca download --der writes DER" openssl x509 -inform DER -in "$WORK/ica.cer" -noout

# A wrong PIN: refused with exit 4, and the PIN never appears.
echo "wrong-pin-7311" >"$CADIR/bad.pin"; chmod 600 "$CADIR/bad.pin"
sed "s|pin-source = .*|pin-source = file:$CADIR/bad.pin|" "$CONF" >"$CADIR/bad.conf"
expect_fail "a wrong PIN is refused with exit 4" 4 "login to token 'ci' refused" \
	"$HSMCA" -c "$CADIR/bad.conf" token check
check "the wrong PIN is not echoed" sh -c "! grep -q wrong-pin-7311 '$WORK/last.err' '$WORK/last.out'"
chmod 644 "$CADIR/bad.pin"
expect_fail "a PIN file readable by others is refused" 4 "open to others" \
	"$HSMCA" -c "$CADIR/bad.conf" token check
HSMCA_TEST_PIN=$(cat "$CADIR/user.pin") ; export HSMCA_TEST_PIN
sed "s|pin-source = .*|pin-source = env:HSMCA_TEST_PIN|" "$CONF" >"$CADIR/env.conf"
expect_ok "the PIN can come from the environment" "$HSMCA" -c "$CADIR/env.conf" token check

# A library that is no PKCS#11 module: refused with exit 4 and a reason
# (the failed load was unloaded all the same, and that crashed).
NOTP11=$(ldconfig -p 2>/dev/null | awk '/libz\.so\.1 / { print $NF; exit }')
if [ -n "$NOTP11" ]; then
	sed "s|^module = .*|module = $NOTP11|" "$CONF" >"$CADIR/notp11.conf"
	expect_fail "a library that is no PKCS#11 module is refused with exit 4" 4 \
		"cannot load PKCS#11 module" "$HSMCA" -c "$CADIR/notp11.conf" token check
else
	ok "# SKIP no libz.so.1 to stand in for a library that is no PKCS#11 module"
fi

# Other key types, self-signed.
new_ca rsa rsa-2048
expect_ok "ca init --self-signed with an RSA-2048 key" hsmca ca init --self-signed
hsmca ca download 1 >"$WORK/rsa.pem"
run openssl x509 -in "$WORK/rsa.pem" -noout -text
check "the RSA CA is self-signed with sha256WithRSAEncryption" \
	sh -c "grep -q 'Signature Algorithm: sha256WithRSAEncryption' '$WORK/last.out' && grep -q 'Public-Key: (2048 bit)' '$WORK/last.out'"
expect_ok "the self-signed RSA CA verifies (openssl)" openssl verify -CAfile "$WORK/rsa.pem" "$WORK/rsa.pem"
check "a self-signed lab CA names no CRL" sh -c "! grep -q 'CRL Distribution Points' '$WORK/last.out'"

new_ca p384 ec-p384 rsa-3072
expect_ok "ca init with an EC P-384 CA under an RSA-3072 root" hsmca ca init
hsmca ca download 2 >"$WORK/p384.pem"
hsmca ca download 1 >"$WORK/p384root.pem"
run openssl x509 -in "$WORK/p384.pem" -noout -text
check "the P-384 CA has a P-384 key, signed by the RSA root" \
	sh -c "grep -q 'NIST CURVE: P-384' '$WORK/last.out' && grep -q 'Signature Algorithm: sha256WithRSAEncryption' '$WORK/last.out'"
expect_ok "P-384 CA verifies against its RSA-3072 root" \
	openssl verify -CAfile "$WORK/p384root.pem" "$WORK/p384.pem"

done_testing
