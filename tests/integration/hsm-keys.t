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

# uri_id URI: the id of a key URI, as pkcs11-tool takes it (hex).
uri_id() {
	printf '%s' "$1" | sed 's/.*;id=\([^;]*\);.*/\1/' | tr -d '%' | tr A-F a-f
}
# p11 ARGS...: pkcs11-tool on $TOKEN, logged in.
p11() {
	run pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN" \
		--login --pin "$(cat "$CADIR/user.pin")" "$@"
}

# ---- two key pairs under one CKA_ID, each with its own label ----
# The root's key pair takes the issuing key's CKA_ID, and generation 1's
# URI the new id: each URI still names its own key by label, and the
# key used must be the one named (what it signs verifies with its own
# certificate). hsmca's commands load one key each. hsmcad's signer
# loads several into one process, and libp11 0.4.12 gives a private key
# the public key of the first public object with its CKA_ID: the key
# loaded second gets the first one's public half, and is refused.
TOKEN=sameid
new_ca "$TOKEN" ec-p256 ec-p256
hsmca ca init >/dev/null || bail "ca init failed"
ca_uri=$(hsmca ca show 2 | sed -n 's/^Key: *//p')
root_uri=$(hsmca ca show 1 | sed -n 's/^Key: *//p')
[ -n "$ca_uri" ] && [ -n "$root_uri" ] || bail "ca show names no key"
hsmca ca download 2 >"$WORK/sameid-ica.pem"
hsmca ca download 1 >"$WORK/sameid-root.pem"
for t in privkey pubkey; do
	p11 --type "$t" --id "$(uri_id "$root_uri")" --set-id "$(uri_id "$ca_uri")"
	[ "$RC" -eq 0 ] || bail "pkcs11-tool could not set the root's $t id"
done
ca_idf=$(printf '%s' "$ca_uri" | sed 's/.*;id=\([^;]*\);.*/\1/')
root_uri=$(printf '%s' "$root_uri" | sed "s/;id=[^;]*;/;id=$ca_idf;/")
sqlite3 "$CADIR/hsmca.db" "UPDATE ca_generation SET key_uri = '$root_uri'
	WHERE id = 1" || bail "cannot point generation 1 at the new id"
check "two private and two public keys share the id" \
	test "$(objects privkey | grep -c "ID: *$(uri_id "$ca_uri")\$")" -eq 2 -a \
	"$(objects pubkey | grep -c "ID: *$(uri_id "$ca_uri")\$")" -eq 2
make_csr sameid ec:P-256 /CN=dev-sameid 2>/dev/null
expect_ok "issue signs with the issuing generation's key" \
	hsmca issue --csr "$WORK/sameid.csr" --profile device --out "$WORK/sameid.pem"
expect_ok "the certificate verifies with the issuing generation's certificate" \
	openssl verify -CAfile "$WORK/sameid-root.pem" \
	-untrusted "$WORK/sameid-ica.pem" "$WORK/sameid.pem"
expect_ok "crl --ca 1 signs with the root's key" \
	hsmca crl --ca 1 --out "$WORK/sameid-root.crl"
run openssl crl -in "$WORK/sameid-root.crl" -CAfile "$WORK/sameid-root.pem" -noout
check "the root's CRL verifies with the root's certificate" \
	grep -q 'verify OK' "$WORK/last.err"
for order in "$root_uri $ca_uri" "$ca_uri $root_uri"; do
	# shellcheck disable=SC2086 # two URIs, without blanks
	set -- $order
	first=$(printf '%s' "$1" | sed 's/.*;object=\([^;]*\);.*/\1/')
	second=$(printf '%s' "$2" | sed 's/.*;object=\([^;]*\);.*/\1/')
	run "$top_builddir/tests/integration/hsm_load" "$CONF" "$1" "$2"
	check "one process: $first loads and signs for its own public key" \
		test "$(sed -n 1p "$WORK/last.out")" = "ok $1"
	check "then $second is refused: libp11 paired it with $first's public key" \
		sh -c 'sed -n 2p "$1" | grep -Eq "^refused -22 libp11 pairs key $2 in token .sameid. with another public key than its own: another key shares its CKA_ID"' \
		- "$WORK/last.out" "$second"
done

# ---- a stray private key under the issuing key's CKA_ID ----
# A second private key with the issuing key's id and its own label, and
# no public key: the generation's key is still the one libp11 signs
# with, and a URI naming the stray key is refused (its public half
# cannot be told from the other key's).
TOKEN=stray
new_ca "$TOKEN"
hsmca ca init >/dev/null || bail "ca init failed"
ca_uri=$(hsmca ca show 2 | sed -n 's/^Key: *//p')
hsmca ca download 2 >"$WORK/stray-ica.pem"
hsmca ca download 1 >"$WORK/stray-root.pem"
p11 --keypairgen --key-type EC:prime256v1 --id "$(uri_id "$ca_uri")" --label stray
[ "$RC" -eq 0 ] || bail "pkcs11-tool could not add the stray key"
p11 --delete-object --type pubkey --label stray
[ "$RC" -eq 0 ] || bail "pkcs11-tool could not delete the stray public key"
check "the token holds the stray private key, and one public key with the id" \
	sh -c 'printf "%s\n" "$1" | grep -q "label: *stray\$" &&
	       test "$(printf "%s\n" "$2" | grep -c "ID: *$3\$")" -eq 1' \
	- "$(objects privkey)" "$(objects pubkey)" "$(uri_id "$ca_uri")"
for i in 1 2 3; do
	make_csr "stray$i" ec:P-256 "/CN=dev-stray-$i" 2>/dev/null
	expect_ok "issue $i signs with the generation's key" \
		hsmca issue --csr "$WORK/stray$i.csr" --profile device --out "$WORK/stray$i.pem"
	expect_ok "certificate $i verifies with the generation's certificate" \
		openssl verify -CAfile "$WORK/stray-root.pem" \
		-untrusted "$WORK/stray-ica.pem" "$WORK/stray$i.pem"
done
stray_uri=$(printf '%s' "$ca_uri" | sed 's/;object=[^;]*;/;object=stray;/')
sqlite3 "$CADIR/hsmca.db" "UPDATE ca_generation SET key_uri = '$stray_uri'
	WHERE id = 2" || bail "cannot point generation 2 at the stray key"
expect_fail "a URI naming the stray key is refused (exit 4): its public half is not known" 4 \
	"key URI pkcs11:token=stray;id=[^ ]*;object=stray;type=private: no public key in token 'stray' has the private key's CKA_ID and label, and other private keys share its CKA_ID" \
	hsmca issue --csr "$WORK/stray1.csr" --profile device --out "$WORK/stray-again.pem"
check "no certificate was written" test ! -e "$WORK/stray-again.pem"

# ---- a PKCS#11 return value hsmca has no name for ----
# The shim answers the key lookup with a vendor-defined code: the
# message gives its value (it used to say CKR_?); a known one its name.
TOKEN=rv
new_ca "$TOKEN"
hsmca ca init >/dev/null || bail "ca init failed"
fault_cli
make_csr rv1 ec:P-256 /CN=dev-rv 2>/dev/null
fault "fault=rv rv=0x80000123 on=find"
expect_fail "an unknown code is named by its value (exit 4)" 4 \
	"C_FindObjects: CKR_0x80000123\$" \
	"$HSMCA" -c "$CADIR/shim.conf" issue --csr "$WORK/rv1.csr" --profile device --out "$WORK/rv1.pem"
check "the shim returned it" grep -q 'inject C_FindObjectsInit rv 0x80000123' "$FLOG"
check "no certificate was written" test ! -e "$WORK/rv1.pem"
fault "fault=rv rv=0x6 on=find"
expect_fail "a known code is named by its name (exit 4)" 4 \
	"C_FindObjects: CKR_FUNCTION_FAILED\$" \
	"$HSMCA" -c "$CADIR/shim.conf" issue --csr "$WORK/rv1.csr" --profile device --out "$WORK/rv1.pem"
fault "fault=none"
expect_ok "and with the shim quiet, issue works" \
	"$HSMCA" -c "$CADIR/shim.conf" issue --csr "$WORK/rv1.csr" --profile device --out "$WORK/rv1.pem"

done_testing
