#!/bin/sh
# Keys in the token that are not what a command expects. A key the token
# will not destroy when `ca init` undoes a failed initialization (the
# token is SoftHSM2 behind tests/pkcs11-fault, which refuses
# C_DestroyObject): the failure says which key stays, and it does stay.
# A key URI that matches two keys, and a private key without its public
# key: neither is refused as a key not found.
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

# ---- ca init fails after its keys were generated ----
TOKEN=undo
new_ca "$TOKEN"
fault_cli
hsmca ca list >/dev/null || bail "the store was not created"
# The store refuses the generations: the keys are made, the
# certificates signed, then the transaction fails.
sqlite3 "$CADIR/hsmca.db" "CREATE TRIGGER no_gen BEFORE INSERT ON ca_generation
	BEGIN SELECT RAISE(ABORT, 'no generation today'); END;" ||
	bail "cannot add the trigger"

fault "fault=refuse on=destroy"
run "$HSMCA" -c "$CADIR/shim.conf" ca init
check "ca init fails when its generations cannot be recorded" \
	sh -c "[ $RC -ne 0 ] && grep -q 'cannot record CA generation' '$WORK/last.err'"
check "the shim refused C_DestroyObject" grep -q 'inject C_DestroyObject refuse' "$FLOG"
check "the failure says the token kept the new key, which one, and the PKCS#11 code" \
	grep -Eq "undo failed, the token kept key pkcs11:token=$TOKEN;id=[%0-9A-F]+;object=hsmca-ca-[0-9TZ]+-[0-9a-f]+;type=private: C_DestroyObject: CKR_ACTION_PROHIBITED" \
	"$WORK/last.err"
check "and the root's key, which it kept too" \
	grep -Eq "undo failed, the token kept key pkcs11:token=$TOKEN;id=[%0-9A-F]+;object=hsmca-root-[0-9TZ]+-[0-9a-f]+;type=private: C_DestroyObject: CKR_ACTION_PROHIBITED" \
	"$WORK/last.err"
check "and both keys (root and issuing) are indeed still in the token" test "$(privkeys)" -eq 2
check "each with its public key, so the pair can still be found" test "$(pubkeys)" -eq 2
kept=$(grep -o "kept key pkcs11:token=$TOKEN;[^ ]*;type=private" \
	"$WORK/last.err" | head -1 | sed 's/.*;object=\([^;]*\);.*/\1/')
check "the key the message names is one the token holds" \
	sh -c '[ -n "$1" ] && printf "%s\n" "$2" | grep -q "label: *$1\$"' - "$kept" "$(objects privkey)"
# The same failure with a token that destroys: the new keys go, and
# nothing says otherwise.
fault "fault=none"
run "$HSMCA" -c "$CADIR/shim.conf" ca init
check "ca init fails again" \
	sh -c "[ $RC -ne 0 ] && grep -q 'cannot record CA generation' '$WORK/last.err'"
check "this time it does not report a key left behind" \
	sh -c "! grep -q 'undo failed' '$WORK/last.err'"
check "and the keys it generated left the token (the two kept before remain)" \
	test "$(privkeys)" -eq 2 -a "$(pubkeys)" -eq 2

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
