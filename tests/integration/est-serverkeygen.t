#!/bin/sh
# serverkeygen (RFC 7030 4.4) with curl as the client: the key made is of
# the request's kind (its curve, or RSA of its modulus size), the
# certificate is for that key and verifies with openssl and certtool; a
# key hsmca will not make is refused with a one-line reason, recorded in
# the audit log and nowhere else.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v jq >/dev/null 2>&1 || skip_all "jq not installed"

est_setup skg
hsmcad_start
ok "hsmcad starts and answers on port $PORT"
hsmca ca download 2 >"$WORK/ica.pem"
EDGE="https://localhost:$PORT/.well-known/est/edge"
BOOT="--cert $WORK/dev-1.boot.pem --key $WORK/dev-1.boot.key"

# skg NAME: POST NAME.b64 to the edge label's serverkeygen; the status in
# STATUS, the answer in NAME.out (headers in $WORK/hdr), and for a 200
# the key in NAME.skg.key and the certificate in NAME.skg.pem.
skg() {
	# shellcheck disable=SC2086
	STATUS=$(curl -s -D "$WORK/hdr" -o "$WORK/$1.out" -w '%{http_code}' \
		--cacert "$CADIR/root.pem" $BOOT -H "Content-Type: application/pkcs10" \
		--data-binary "@$WORK/$1.b64" "$EDGE/serverkeygen")
	cp "$WORK/$1.out" "$WORK/last.out"
	[ "$STATUS" = 200 ] || return 0
	mime_part "$WORK/$1.out" 1 | base64 -d |
		openssl pkey -inform DER -out "$WORK/$1.skg.key" 2>/dev/null
	p7_certs "$WORK/$1.out" 2 >"$WORK/$1.skg.pem"
}

# issued_checks NAME DESC PATTERN: the key of NAME's answer is DESC (its
# openssl pkey -text matches PATTERN), its certificate is for it, and
# the certificate verifies with both verifiers.
issued_checks() {
	check "$2: serverkeygen answers 200" test "$STATUS" = 200
	run openssl pkey -in "$WORK/$1.skg.key" -noout -text
	check "$2: the key made is $2" grep -Eq "$3" "$WORK/last.out"
	check "$2: the certificate's public key is that key's" test -s "$WORK/$1.skg.pem" -a \
		"$(openssl x509 -in "$WORK/$1.skg.pem" -noout -pubkey 2>/dev/null)" = \
		"$(openssl pkey -in "$WORK/$1.skg.key" -pubout 2>/dev/null)"
	check "$2: and not the request's" test \
		"$(openssl x509 -in "$WORK/$1.skg.pem" -noout -pubkey 2>/dev/null)" != \
		"$(openssl pkey -in "$WORK/$1.key" -pubout)"
	expect_ok "$2: openssl verify accepts the certificate" openssl verify \
		-CAfile "$CADIR/root.pem" -untrusted "$WORK/ica.pem" "$WORK/$1.skg.pem"
	cat "$WORK/$1.skg.pem" "$WORK/ica.pem" >"$WORK/$1.chain"
	expect_ok "$2: certtool --verify accepts it" certtool --verify \
		--load-ca-certificate "$CADIR/root.pem" --infile "$WORK/$1.chain"
}

# The front keeps no copy of a key it sent: right after the answer, the
# key's base64 lines are nowhere in its writable memory (the copy
# libevent made and freed unwiped could be found there before).
# mem_has PID FILE: how many of FILE's 64-column lines are in PID's
# writable memory; "-" if that memory cannot be read.
mem_has() {
	python3 - "$1" "$2" <<'EOP'
import sys
pid, path = sys.argv[1], sys.argv[2]
lines = [l.strip().encode() for l in open(path) if len(l.strip()) == 64]
found = set()
try:
    maps = open("/proc/%s/maps" % pid).read().splitlines()
    mem = open("/proc/%s/mem" % pid, "rb", 0)
    mem.seek(0)
except OSError:
    print("-"); sys.exit(0)
# In pieces, each overlapping the last by a line, so that a sanitizer's
# reserved terabytes of shadow memory are never asked for at once; a
# piece the kernel will not give (never touched, or unmapped since) is
# skipped.
CHUNK = 1 << 24
readable = 0
for m in maps:
    f = m.split()
    if "w" not in f[1]:
        continue
    lo, hi = (int(x, 16) for x in f[0].split("-"))
    if hi - lo > 1 << 32:
        continue	# AddressSanitizer's shadow: no heap of ours
    at = lo
    while at < hi:
        n = min(CHUNK + 64, hi - at)
        try:
            mem.seek(at)
            data = mem.read(n)
        except OSError:
            data = b""
        if data:
            readable += 1
            found.update(l for l in lines if l in data)
        at += CHUNK
print(len(found) if readable else "-")
EOP
}
# front_forgot NAME: the check, for the key of NAME's answer.
front_forgot() {
	mime_part "$WORK/$1.out" 1 >"$WORK/$1.k64"
	n=$(mem_has "$(child_named hsmcad-front)" "$WORK/$1.k64")
	if [ "$n" = - ]; then
		ok "# SKIP the front's memory cannot be read here (no CAP_SYS_PTRACE?)"
	else
		check "$1: the front holds none of the key's $(grep -c '^.\{64\}$' "$WORK/$1.k64") base64 lines (found $n)" \
			test "$n" = 0
	fi
}

csr_b64 p384 ec:P-384 "/CN=gateway-384 device CA"
skg p384
front_forgot p384
issued_checks p384 "EC P-384" "(NIST CURVE: P-384|ASN1 OID: secp384r1)"

csr_b64 rsa2048 rsa:2048 "/CN=gateway-rsa device CA"
skg rsa2048
front_forgot rsa2048
issued_checks rsa2048 "RSA-2048" "Private-Key: \(2048 bit"
run openssl pkey -in "$WORK/rsa2048.skg.key" -noout -text
check "RSA-2048: its public exponent is 65537" grep -q "publicExponent: 65537" "$WORK/last.out"

csr_b64 p256 ec:P-256 "/CN=gateway-256 device CA"
skg p256
issued_checks p256 "EC P-256" "(NIST CURVE: P-256|ASN1 OID: prime256v1)"

csr_b64 p521 ec:P-521 "/CN=gateway-521 device CA"
skg p521
issued_checks p521 "EC P-521" "(NIST CURVE: P-521|ASN1 OID: secp521r1)"

# Refusals: the status, one line of reason, no certificate row, and the
# refusal in the audit log.
rows=$(count_rows)
csr_b64 rsa4104 rsa:4104 "/CN=gateway-big device CA"
skg rsa4104
refused() {
	if [ "$STATUS" = "$2" ] && grep -Eq -- "$3" "$WORK/last.out" &&
	    [ "$(wc -l <"$WORK/last.out")" -eq 1 ]; then
		ok "$1: $2"
	else
		not_ok "$1: got $STATUS, wanted $2 and /$3/"
	fi
}
refused "an RSA key larger than hsmca makes is refused" 400 \
	"^serverkeygen makes RSA keys of up to 4096 bits; the request's key has 4104$"
check "... and no certificate row is written" test "$(count_rows)" = "$rows"

rows=$(count_rows)
openssl genpkey -algorithm ED25519 -out "$WORK/ed.key" 2>/dev/null
openssl req -new -key "$WORK/ed.key" -subj "/CN=gateway-ed device CA" -outform DER |
	base64 >"$WORK/ed.b64"
skg ed
refused "an Ed25519 request, a key the policy does not allow" 400 "ED25519 key refused"
check "... and no certificate row is written" test "$(count_rows)" = "$rows"

rows=$(count_rows)
csr_b64 k1 ec:secp256k1 "/CN=gateway-k1 device CA"
skg k1
refused "a request on a curve the policy does not allow" 400 "curve secp256k1 refused"
check "... and no certificate row is written" test "$(count_rows)" = "$rows"

# Refusals are recorded off the event loop: poll.
i=0
until [ "$(hsmca --json audit list --action refuse | jq length)" -ge 3 ] || [ $i -ge 100 ]; do
	i=$((i + 1)); sleep 0.05
done
run hsmca --json audit list --action refuse
check "the audit log has the refusal of the RSA-4104 request, with its reason" \
	test "$(jq '[.[] | select(.object == "est:edge/serverkeygen" and (.detail | test("^400 serverkeygen makes RSA keys of up to 4096 bits")))] | length' "$WORK/last.out")" -eq 1
check "and the other two" \
	test "$(jq '[.[] | select(.object == "est:edge/serverkeygen" and (.detail | test("^400 .*(ED25519|secp256k1)")))] | length' "$WORK/last.out")" -eq 2
expect_ok "the audit chain verifies" hsmca audit verify

hsmcad_stop
done_testing
