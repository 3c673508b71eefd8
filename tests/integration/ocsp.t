#!/bin/sh
# The OCSP responder in hsmcad, with `openssl ocsp` as the client: good,
# revoked (reason and time) and unknown; malformed requests; POST and GET.
# Responses are signed by the CA key (delegated responder certificates
# come later). One CA generation only: a second one (hsmca ca import, as
# in ca-external.t) is not tested yet.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"

est_setup ocsp
sed -i "s|^\[daemon\]|[daemon]\nhttp-listen = 127.0.0.1:0|" "$CONF"
# A second generation: an operator's intermediate under an outside root,
# imported into the token (generation 3, inactive: nothing issues with it).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$WORK/xroot.key" -subj "/CN=Outside Root" -days 3650 \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out "$WORK/xroot.pem" 2>/dev/null
printf 'basicConstraints = critical,CA:TRUE,pathlen:0\nkeyUsage = critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n' >"$WORK/ca.ext"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/gen3.key" \
	-subj "/CN=Uploaded Intermediate" -out "$WORK/gen3.csr" 2>/dev/null
openssl x509 -req -in "$WORK/gen3.csr" -CA "$WORK/xroot.pem" -CAkey "$WORK/xroot.key" \
	-CAcreateserial -days 700 -extfile "$WORK/ca.ext" -out "$WORK/gen3.pem" 2>/dev/null
cat "$WORK/gen3.pem" "$WORK/xroot.pem" >"$WORK/chain3.pem"
expect_ok "a second generation imported" \
	hsmca ca import --key "$WORK/gen3.key" --cert "$WORK/chain3.pem"
hsmcad_start
check "hsmcad listens for plain HTTP (port $HTTP_PORT)" test -n "$HTTP_PORT"
OCSP_URL="http://127.0.0.1:$HTTP_PORT/ocsp"
hsmca ca download 2 >"$WORK/gen2.pem"
cat "$WORK/gen2.pem" "$CADIR/root.pem" >"$WORK/chain.pem"

# Two devices enroll over EST.
for n in 1 2; do
	csr_b64 "dev$n" ec:P-256 "/CN=dev-1"
	est_post simpleenroll "$WORK/dev$n.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
	check "device certificate $n enrolled ($STATUS)" test "$STATUS" = 200
	p7_certs >"$WORK/dev$n.pem"
done
serial2=$(openssl x509 -in "$WORK/dev2.pem" -noout -serial | sed 's/serial=//')
expect_ok "hsmca revoke the second (keyCompromise)" hsmca revoke "$serial2" --reason keyCompromise

# ask NAME ARGS...: openssl ocsp against hsmcad, output in $WORK/NAME.ocsp
ask() {
	name=$1; shift
	openssl ocsp -issuer "$WORK/gen2.pem" "$@" -url "$OCSP_URL" \
		-CAfile "$WORK/chain.pem" -resp_text >"$WORK/$name.ocsp" 2>&1
}
i=0; until ask good -cert "$WORK/dev1.pem" && grep -q ": good" "$WORK/good.ocsp" || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
check "the first certificate is good" grep -q "dev1.pem: good" "$WORK/good.ocsp"
check "the response verifies against the chain (CA key signs)" grep -q "Response verify OK" "$WORK/good.ocsp"
tu=$(date -d "$(sed -n 's/^ *This Update: //p' "$WORK/good.ocsp" | head -1)" +%s)
nu=$(date -d "$(sed -n 's/^ *Next Update: //p' "$WORK/good.ocsp" | head -1)" +%s)
check "its validity is one day" test $((nu - tu)) -eq 86400

i=0; until ask rev -cert "$WORK/dev2.pem" && grep -q ": revoked" "$WORK/rev.ocsp" || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
check "the revoked one is revoked (within seconds of hsmca revoke)" grep -q "dev2.pem: revoked" "$WORK/rev.ocsp"
check "with reason keyCompromise" grep -q "Reason: keyCompromise" "$WORK/rev.ocsp"
check "and a revocation time" grep -q "Revocation Time: " "$WORK/rev.ocsp"
check "which verifies" grep -q "Response verify OK" "$WORK/rev.ocsp"

ask unknown -serial 0x0123abcd
check "a serial never issued is unknown" grep -q "0x0123abcd: unknown" "$WORK/unknown.ocsp"
check "signed too" grep -q "Response verify OK" "$WORK/unknown.ocsp"
ask unknown2 -serial 0x0123abcd
check "asked again: unknown, from the cache" grep -q "0x0123abcd: unknown" "$WORK/unknown2.ocsp"

# The second generation answers for itself, signed with its own key.
openssl ocsp -issuer "$WORK/gen3.pem" -serial 0x0123abcd -url "$OCSP_URL" \
	-CAfile "$WORK/chain3.pem" -resp_text >"$WORK/gen3.ocsp" 2>&1
check "generation 3: a serial it never issued is unknown, verified" \
	sh -c "grep -q '0x0123abcd: unknown' '$WORK/gen3.ocsp' && grep -q 'Response verify OK' '$WORK/gen3.ocsp'"
serial1=$(openssl x509 -in "$WORK/dev1.pem" -noout -serial | sed 's/serial=//')
openssl ocsp -issuer "$WORK/gen3.pem" -serial "0x$serial1" -url "$OCSP_URL" \
	-CAfile "$WORK/chain3.pem" -resp_text >"$WORK/gen3b.ocsp" 2>&1
check "generation 3: generation 2's good serial is unknown there" \
	grep -q "0x$serial1: unknown" "$WORK/gen3b.ocsp"

# Malformed: an OCSPResponse with status malformedRequest.
STATUS=$(curl -s -o "$WORK/bad.der" -w '%{http_code}' -D "$WORK/bad.hdr" \
	-H 'Content-Type: application/ocsp-request' --data-binary garbage "$OCSP_URL")
check "a malformed POST is answered 200 ($STATUS)" test "$STATUS" = 200
check "as application/ocsp-response" grep -qi "^Content-Type: application/ocsp-response" "$WORK/bad.hdr"
openssl ocsp -respin "$WORK/bad.der" -resp_text -noverify >"$WORK/bad.txt" 2>&1
check "with status malformedRequest" grep -qi "malformedrequest" "$WORK/bad.txt"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: text/plain' --data-binary garbage "$OCSP_URL")
check "a POST of another Content-Type is 415 ($STATUS)" test "$STATUS" = 415
head -c 5000 /dev/zero >"$WORK/big"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/ocsp-request' --data-binary "@$WORK/big" "$OCSP_URL")
check "a POST over 4 KiB is refused ($STATUS)" test "$STATUS" = 413

# GET (RFC 6960 Appendix A): base64 of the DER request, URL-encoded.
openssl ocsp -issuer "$WORK/gen2.pem" -cert "$WORK/dev2.pem" -reqout "$WORK/req.der" >/dev/null 2>&1
enc=$(base64 -w0 "$WORK/req.der" | sed 's|+|%2B|g; s|/|%2F|g; s|=|%3D|g')
STATUS=$(curl -s -o "$WORK/get.der" -w '%{http_code}' "$OCSP_URL/$enc")
check "GET /ocsp/<base64> is answered 200 ($STATUS)" test "$STATUS" = 200
openssl ocsp -respin "$WORK/get.der" -issuer "$WORK/gen2.pem" -cert "$WORK/dev2.pem" \
	-CAfile "$WORK/chain.pem" -resp_text >"$WORK/get.txt" 2>&1
check "with the revoked status, verified" sh -c "grep -q 'dev2.pem: revoked' '$WORK/get.txt' && grep -q 'Response verify OK' '$WORK/get.txt'"
STATUS=$(curl -s -o "$WORK/getbad.der" -w '%{http_code}' "$OCSP_URL/not-base64!")
openssl ocsp -respin "$WORK/getbad.der" -resp_text -noverify >"$WORK/getbad.txt" 2>&1
check "a GET of garbage is malformedRequest" grep -qi "malformedrequest" "$WORK/getbad.txt"

# A SHA-256 CertID is answered too (signed on demand, then cached).
ask sha256 -sha256 -cert "$WORK/dev1.pem"
check "a SHA-256 CertID: good" grep -q "dev1.pem: good" "$WORK/sha256.ocsp"

# Random serials cannot keep the HSM busy: beyond the rate, tryLater.
# 120 GETs at once (curl --parallel) against a bucket of 50 a second.
n=0; : >"$WORK/burst.cfg"
while [ $n -lt 120 ]; do
	openssl ocsp -issuer "$WORK/gen2.pem" -serial "0x7e57$n" -reqout "$WORK/r$n.der" >/dev/null 2>&1
	enc=$(base64 -w0 "$WORK/r$n.der" | sed 's|+|%2B|g; s|/|%2F|g; s|=|%3D|g')
	printf 'url = "%s/%s"\noutput = "%s/b%s.der"\n' "$OCSP_URL" "$enc" "$WORK" "$n" >>"$WORK/burst.cfg"
	n=$((n + 1))
done
curl -s -Z --parallel-max 120 -K "$WORK/burst.cfg" 2>/dev/null
n=0; : >"$WORK/burst.txt"
while [ $n -lt 120 ]; do
	openssl ocsp -respin "$WORK/b$n.der" -resp_text -noverify 2>/dev/null |
		grep -Ei "Response Status|Responder Error" >>"$WORK/burst.txt"
	n=$((n + 1))
done
check "120 unknown serials at once: all answered ($(wc -l <"$WORK/burst.txt"))" \
	test "$(wc -l <"$WORK/burst.txt")" -eq 120
check "some signed ($(grep -c successful "$WORK/burst.txt")), the rest tryLater ($(grep -ci trylater "$WORK/burst.txt"))" \
	sh -c "grep -q successful '$WORK/burst.txt' && grep -qi trylater '$WORK/burst.txt' && test \$(grep -c successful '$WORK/burst.txt') -le 60"

check "the log shows pre-signing at work" grep -q "responses pre-signed" "$CADIR/hsmcad.log"
check "hsmcad is still running" kill -0 "$HSMCAD_PID"
hsmcad_stop
done_testing
