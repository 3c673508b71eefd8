#!/bin/sh
# Bad requests get a clear one-line reason and leave nothing in the store:
# no certificate, no reserved serial.
. "$top_srcdir/tests/integration/lib.sh"

new_ca rf
hsmca ca init >/dev/null || { echo "Bail out! ca init failed"; exit 1; }
make_csr good ec:P-256 "/CN=good-device" 2>/dev/null

# refused DESC STATUS PATTERN ARGS...: refused with that exit status and
# reason, and the store has exactly as many rows as before.
refused() {
	desc=$1; status=$2; pattern=$3; shift 3
	before=$(count_rows)
	expect_fail "$desc" "$status" "$pattern" hsmca "$@"
	lines=$(wc -l <"$WORK/last.err")
	check "$desc: one line of reason" test "$lines" -eq 1
	check "$desc: nothing recorded" test "$(count_rows)" -eq "$before"
}

# A CSR whose signature does not verify: flip a byte of the signature.
openssl req -in "$WORK/good.csr" -outform DER -out "$WORK/good.der"
len=$(stat -c %s "$WORK/good.der")
cp "$WORK/good.der" "$WORK/badsig.der"
# Flip every bit of one signature byte: writing a constant would leave
# the file unchanged whenever the byte already held it.
old=$(od -An -tu1 -j $((len - 5)) -N1 "$WORK/good.der" | tr -d ' ')
printf "\\$(printf %o $((old ^ 255)))" | dd of="$WORK/badsig.der" bs=1 seek=$((len - 5)) conv=notrunc 2>/dev/null
cmp -s "$WORK/good.der" "$WORK/badsig.der" && echo "Bail out! corruption did not change the file"
refused "a CSR with a bad signature is refused" 1 "CSR signature" \
	issue --csr "$WORK/badsig.der" --profile device

make_csr rsa1024 rsa:1024 "/CN=weak" 2>/dev/null
refused "an RSA-1024 CSR is refused" 1 "1024" issue --csr "$WORK/rsa1024.csr" --profile device

make_csr k1 ec:secp256k1 "/CN=k1" 2>/dev/null
refused "a CSR on a non-NIST curve (secp256k1) is refused" 1 "secp256k1|curve" \
	issue --csr "$WORK/k1.csr" --profile device

openssl genpkey -algorithm ED25519 -out "$WORK/ed.key" 2>/dev/null
openssl req -new -key "$WORK/ed.key" -subj "/CN=ed" -out "$WORK/ed.csr" 2>/dev/null
refused "an Ed25519 CSR is refused" 1 "ED25519|Ed25519|key" issue --csr "$WORK/ed.csr" --profile device

make_csr ca ec:P-256 "/CN=wants-ca" "basicConstraints=critical,CA:TRUE" 2>/dev/null
refused "a device CSR asking for CA:TRUE is refused" 1 "CA:TRUE" \
	issue --csr "$WORK/ca.csr" --profile device
openssl req -new -key "$WORK/ca.key" -subj "/CN=hub" -addext "subjectAltName=DNS:hub.example" \
	-addext "basicConstraints=critical,CA:TRUE" -out "$WORK/casan.csr"
refused "a server CSR asking for CA:TRUE is refused" 1 "CA:TRUE" \
	issue --csr "$WORK/casan.csr" --profile server

make_csr ku ec:P-256 "/CN=wants-ku" "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
before=$(count_rows)
expect_ok "a CSR asking for keyCertSign is issued with the profile's key usage" \
	hsmca issue --csr "$WORK/ku.csr" --profile device --out "$WORK/ku.pem"
run openssl x509 -in "$WORK/ku.pem" -noout -ext keyUsage
check "requested keyCertSign was not granted" sh -c "! grep -q 'Certificate Sign' '$WORK/last.out'"

head -c 300 /dev/urandom >"$WORK/garbage.bin"
refused "garbage bytes are refused" 1 "PKCS#10|CSR|request" issue --csr "$WORK/garbage.bin" --profile device
: >"$WORK/empty.csr"
refused "an empty file is refused" 1 "." issue --csr "$WORK/empty.csr" --profile device
head -c 200 "$WORK/good.der" >"$WORK/trunc.der"
refused "a truncated DER CSR is refused" 1 "PKCS#10|CSR|request" issue --csr "$WORK/trunc.der" --profile device
sed 's/CERTIFICATE REQUEST/CERTIFICATE/' "$WORK/good.csr" >"$WORK/wrongpem.csr"
refused "a PEM certificate instead of a CSR is refused" 1 "PKCS#10|CSR|request" \
	issue --csr "$WORK/wrongpem.csr" --profile device

make_csr ip ec:P-256 "/CN=dev-ip" "subjectAltName=IP:192.0.2.7" 2>/dev/null
refused "a SAN type the device profile does not allow is refused" 1 "IP" \
	issue --csr "$WORK/ip.csr" --profile device
make_csr c ec:P-256 "/CN=dev-c/C=FR" 2>/dev/null
refused "a subject attribute the profile does not allow is refused" 1 "C" \
	issue --csr "$WORK/c.csr" --profile device
make_csr nocn ec:P-256 "/O=Acme" 2>/dev/null
refused "a device CSR without CN is refused" 1 "CN" issue --csr "$WORK/nocn.csr" --profile device
refused "a server CSR without SAN is refused" 1 "SAN|subjectAltName" \
	issue --csr "$WORK/good.csr" --profile server

refused "an unknown profile exits 3" 3 "unknown profile 'nope'" \
	issue --csr "$WORK/good.csr" --profile nope
refused "a missing CSR file is refused" 1 "no-such.csr" \
	issue --csr "$WORK/no-such.csr" --profile device

# Nothing above reached the store; the good request still works after.
expect_ok "a good CSR is issued after all the refusals" \
	hsmca issue --csr "$WORK/good.csr" --profile device --out "$WORK/good.pem"
check "exactly the two good certificates are recorded, nothing reserved or failed" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT group_concat(status) FROM cert")" = "valid,valid"

# A store that is not a database is refused with a clear message.
sed "s|^path = .*|path = $WORK/garbage.bin|" "$CONF" >"$CADIR/badstore.conf"
expect_fail "a corrupt store is refused with exit 5" 5 "garbage.bin" \
	"$HSMCA" -c "$CADIR/badstore.conf" cert list

done_testing
