#!/bin/sh
# Keys in the token that are not what a command expects: a key URI that
# matches two keys, a private key without its public key. Neither is
# refused as a key not found.
. "$top_srcdir/tests/integration/lib.sh"

# privkeys / pubkeys: how many such objects the token holds, as
# pkcs11-tool sees them (PIN on argv: a throwaway test token only).
objects() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN" --login \
		--pin "$(cat "$CADIR/user.pin")" --list-objects --type "$1" 2>/dev/null
}
privkeys() {
	objects privkey | grep -c '^Private Key Object'
}
pubkeys() {
	objects pubkey | grep -c '^Public Key Object'
}

# ---- a key URI that matches two keys ----
TOKEN=twice
new_ca "$TOKEN"
hsmca ca init >/dev/null || bail "ca init failed"
uri=$(hsmca ca show 2 | sed -n 's/^Key: *//p')
[ -n "$uri" ] || bail "ca show names no key"
make_csr dev1 ec:P-256 /CN=dev-1 2>/dev/null
expect_ok "issue with the generation's key" \
	hsmca issue --csr "$WORK/dev1.csr" --profile device --out "$WORK/dev1.pem"
# A second key pair with the same CKA_ID and CKA_LABEL: the generation's
# URI now names two keys.
id=$(printf '%s' "$uri" | sed 's/.*;id=\([^;]*\);.*/\1/' | tr -d '%' | tr A-F a-f)
label=$(printf '%s' "$uri" | sed 's/.*;object=\([^;]*\);.*/\1/')
run pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN" --login \
	--pin "$(cat "$CADIR/user.pin")" --keypairgen --key-type EC:prime256v1 \
	--id "$id" --label "$label"
[ "$RC" -eq 0 ] || bail "pkcs11-tool could not add the second key"
check "the token holds two private keys under the generation's id and label" \
	test "$(objects privkey | grep -c "label: *$label\$")" -eq 2
expect_fail "issue refuses: the key URI matches two private keys (exit 4), not a key not found" 4 \
	"key URI pkcs11:token=$TOKEN;id=[^ ]*;object=$label;type=private matches 2 private keys in token '$TOKEN', not one" \
	hsmca issue --csr "$WORK/dev1.csr" --profile device --out "$WORK/dev1-again.pem"
check "and says nothing of a missing key" sh -c "! grep -qi 'no private key\|not found' '$WORK/last.err'"
check "no certificate was written" test ! -e "$WORK/dev1-again.pem"

# ---- a private key without its public key ----
TOKEN=half
new_ca "$TOKEN"
hsmca ca init >/dev/null || bail "ca init failed"
uri=$(hsmca ca show 2 | sed -n 's/^Key: *//p')
id=$(printf '%s' "$uri" | sed 's/.*;id=\([^;]*\);.*/\1/' | tr -d '%' | tr A-F a-f)
run pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN" --login \
	--pin "$(cat "$CADIR/user.pin")" --delete-object --type pubkey --id "$id"
[ "$RC" -eq 0 ] || bail "pkcs11-tool could not delete the public key"
make_csr dev2 ec:P-256 /CN=dev-2 2>/dev/null
expect_fail "issue refuses: the private key is there without its public key (exit 4)" 4 \
	"key URI pkcs11:token=$TOKEN;[^ ]*: the private key is in token '$TOKEN' but no public key has its CKA_ID" \
	hsmca issue --csr "$WORK/dev2.csr" --profile device --out "$WORK/dev2.pem"
check "which is not reported as a key not found" sh -c "! grep -qi 'no private key\|not found' '$WORK/last.err'"

done_testing
