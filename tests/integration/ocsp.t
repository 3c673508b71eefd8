#!/bin/sh
# The OCSP responder in hsmcad, with `openssl ocsp` as the client: good,
# revoked (reason and time) and unknown, for two generations; malformed
# requests; POST and GET. First with delegated responder certificates
# (the default, [ca] ocsp-signer = responder): one per generation, its
# key generated in the token, included in every response and checked as
# a relying party would; then hsmcad restarted with ocsp-signer = ca and
# ocsp-validity = 8h. Then the responder certificate is renewed when
# its end is near (HSMCA_NOW), and last, its key is destroyed when its
# generation has ended.
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
check "the response verifies against the chain" grep -q "Response verify OK" "$WORK/good.ocsp"
# The delegated responder: a certificate in the response, issued by
# generation 2, for OCSP signing only, with ocsp-nocheck.
sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' "$WORK/good.ocsp" >"$WORK/responder.pem"
check "the response carries a responder certificate" test -s "$WORK/responder.pem"
openssl x509 -in "$WORK/responder.pem" -noout -text >"$WORK/responder.txt" 2>&1
check "issued by generation 2" sh -c "openssl x509 -in '$WORK/responder.pem' -noout -issuer | grep -q 'hsmca Test Device CA ocsp'"
check "for OCSP signing" grep -q "OCSP Signing" "$WORK/responder.txt"
check "with id-pkix-ocsp-nocheck" grep -q "OCSP No Check" "$WORK/responder.txt"
check "key usage digitalSignature only, critical" sh -c "grep -A1 'Key Usage: critical' '$WORK/responder.txt' | grep -qx ' *Digital Signature'"
nb=$(date -d "$(openssl x509 -in "$WORK/responder.pem" -noout -startdate | sed 's/notBefore=//')" +%s)
na=$(date -d "$(openssl x509 -in "$WORK/responder.pem" -noout -enddate | sed 's/notAfter=//')" +%s)
check "valid 30 days" test $((na - nb)) -eq $((30 * 86400))
check "openssl verify: the responder chains to the root (purpose ocsphelper)" \
	openssl verify -purpose ocsphelper -CAfile "$CADIR/root.pem" -untrusted "$WORK/gen2.pem" "$WORK/responder.pem"
cat "$WORK/responder.pem" "$WORK/gen2.pem" >"$WORK/responder-chain.pem"
check "certtool verifies the responder chain to the root" sh -c "certtool --verify --load-ca-certificate '$CADIR/root.pem' --infile '$WORK/responder-chain.pem' </dev/null 2>&1 | grep -q 'Chain verification output: Verified'"
check "the responder key is in the token, recorded with its certificate" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM ocsp_responder WHERE issuer_id = 2 AND key_uri LIKE '%object=ocsp-gen2%'")" = 1
check "and the certificate issued like any other (profile ocsp-responder)" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert WHERE issuer_id = 2 AND profile = 'ocsp-responder' AND status = 'valid'")" = 1
check "the responder key is a private, sensitive token object" \
	sh -c "pkcs11-tool --module '$SOFTHSM_MODULE' --token-label ocsp --login --pin 'user-pin-ocsp' --list-objects --type privkey 2>/dev/null | grep -q 'label: *ocsp-gen2'"
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
check "generation 3 has a responder of its own" \
	sh -c "sed -n '/BEGIN CERT/,/END CERT/p' '$WORK/gen3.ocsp' | openssl x509 -noout -issuer | grep -q 'Uploaded Intermediate'"
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
STATUS=$(curl -s -D "$WORK/get.hdr" -o "$WORK/get.der" -w '%{http_code}' "$OCSP_URL/$enc")
check "GET /ocsp/<base64> is answered 200 ($STATUS)" test "$STATUS" = 200
openssl ocsp -respin "$WORK/get.der" -issuer "$WORK/gen2.pem" -cert "$WORK/dev2.pem" \
	-CAfile "$WORK/chain.pem" -resp_text >"$WORK/get.txt" 2>&1
check "with the revoked status, verified" sh -c "grep -q 'dev2.pem: revoked' '$WORK/get.txt' && grep -q 'Response verify OK' '$WORK/get.txt'"
# RFC 5019 6.2: what an HTTP cache needs, taken from the response itself.
hdr() { sed -n "s/^$1: *//Ip" "$WORK/get.hdr" | tr -d '\r'; }
nu=$(sed -n 's/^ *Next Update: //p' "$WORK/get.txt" | head -1)
tu=$(sed -n 's/^ *This Update: //p' "$WORK/get.txt" | head -1)
check "Expires is the response's nextUpdate" test "$(date -d "$(hdr Expires)" +%s)" -eq "$(date -d "$nu" +%s)"
check "Last-Modified is its thisUpdate" test "$(date -d "$(hdr Last-Modified)" +%s)" -eq "$(date -d "$tu" +%s)"
check "ETag is the SHA-1 of the response" \
	test "$(hdr ETag)" = "\"$(openssl dgst -sha1 -r "$WORK/get.der" | cut -d' ' -f1)\""
cc=$(hdr Cache-Control)
age=$(echo "$cc" | sed -n 's/.*max-age=\([0-9]*\).*/\1/p')
half=$(( ($(date -d "$nu" +%s) - $(date -d "$tu" +%s)) / 2 ))
check "Cache-Control: public, no-transform, must-revalidate, max-age up to the refresh ($cc)" \
	sh -c "echo '$cc' | grep -q 'public, no-transform, must-revalidate' &&
		[ -n '$age' ] && [ '$age' -gt 0 ] && [ '$age' -le $half ]"
STATUS=$(curl -s -o "$WORK/getbad.der" -w '%{http_code}' "$OCSP_URL/not-base64!")
openssl ocsp -respin "$WORK/getbad.der" -resp_text -noverify >"$WORK/getbad.txt" 2>&1
check "a GET of garbage is malformedRequest" grep -qi "malformedrequest" "$WORK/getbad.txt"

# A HEAD wherever a GET is answered (it was 405): the GET's status and
# headers, its length, and no body: the GET that follows on the same
# connection gets its own answer whole.
STATUS=$(curl -s -I -o "$WORK/head.hdr" -w '%{http_code}' "$OCSP_URL/$enc" \
	--next -s -o "$WORK/get2.der" -w ' %{http_code} %{num_connects}' "$OCSP_URL/$enc")
hhdr() { sed -n "s/^$1: *//Ip" "$WORK/head.hdr" | tr -d '\r'; }
check "HEAD /ocsp/<base64>: 200, then the GET on the same connection ($STATUS)" \
	test "$STATUS" = "200 200 0"
check "... application/ocsp-response, with the length a GET gets ($(wc -c <"$WORK/get.der") bytes)" \
	test "$(hhdr Content-Type) $(hhdr Content-Length)" = "application/ocsp-response $(wc -c <"$WORK/get.der")"
check "... and the GET's caching headers" \
	test "$(hhdr ETag) $(hhdr Last-Modified) $(hhdr Expires) $(hhdr Cache-Control | sed 's/max-age=[0-9]*//')" = \
	"$(hdr ETag) $(hdr Last-Modified) $(hdr Expires) $(hdr Cache-Control | sed 's/max-age=[0-9]*//')"
check "... and no body: the next GET got the response whole" cmp -s "$WORK/get2.der" "$WORK/get.der"
STATUS=$(curl -s -I -o "$WORK/head.hdr" -w '%{http_code}' "$OCSP_URL/not-base64!")
check "HEAD of garbage: 200 too, malformedRequest's length ($STATUS $(hhdr Content-Length))" \
	test "$STATUS $(hhdr Content-Length)" = "200 $(wc -c <"$WORK/getbad.der")"
# Any other method: 405, with what the path takes.
# refused_405 DESC ALLOW CURL-ARGS...: 405, that Allow, and a reason line.
refused_405() {
	desc=$1; allow=$2; shift 2
	STATUS=$(curl -s -D "$WORK/m.hdr" -o "$WORK/last.out" -w '%{http_code}' "$@")
	if [ "$STATUS" = 405 ] && [ "$(sed -n 's/^Allow: *//Ip' "$WORK/m.hdr" | tr -d '\r')" = "$allow" ] &&
	    [ "$(cat "$WORK/last.out")" = "POST /ocsp or GET (or HEAD) /ocsp/<base64 request>" ]; then
		ok "$desc: 405, Allow: $allow"
	else
		not_ok "$desc: got $STATUS, wanted 405 and Allow: $allow"
	fi
}
refused_405 "PUT /ocsp/<base64>" "GET, HEAD" -X PUT "$OCSP_URL/$enc"
refused_405 "DELETE /ocsp/<base64>" "GET, HEAD" -X DELETE "$OCSP_URL/$enc"
refused_405 "POST /ocsp/<base64>" "GET, HEAD" -H 'Content-Type: application/ocsp-request' \
	--data-binary "@$WORK/req.der" "$OCSP_URL/$enc"
refused_405 "PUT /ocsp with a request" "POST" -X PUT -H 'Content-Type: application/ocsp-request' \
	--data-binary "@$WORK/req.der" "$OCSP_URL"
refused_405 "GET /ocsp" "POST" "$OCSP_URL"
refused_405 "PUT /ocsp/" "GET, HEAD, POST" -X PUT "$OCSP_URL/"
STATUS=$(curl -s -I -o "$WORK/head.hdr" -w '%{http_code}' "$OCSP_URL")
check "HEAD /ocsp (where GET is not answered either): 405, Allow: POST ($STATUS)" \
	test "$STATUS $(hhdr Allow)" = "405 POST"

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

# ---- the same questions, the CA key signing ----
cp "$CONF" "$WORK/conf.orig"
sed -i 's|^\[ca\]|[ca]\nocsp-validity = 1h|' "$CONF"
expect_fail "ocsp-validity under 8h is refused" 1 "ocsp-validity" hsmca config check
cp "$WORK/conf.orig" "$CONF"
sed -i 's|^\[ca\]|[ca]\nocsp-signer = hsm|' "$CONF"
expect_fail "ocsp-signer other than responder or ca is refused" 1 "ocsp-signer must be responder" hsmca config check
cp "$WORK/conf.orig" "$CONF"
sed -i 's|^\[ca\]|[ca]\nocsp-signer = ca\nocsp-validity = 8h|' "$CONF"
hsmcad_start
OCSP_URL="http://127.0.0.1:$HTTP_PORT/ocsp"
i=0; until ask cgood -cert "$WORK/dev1.pem" && grep -q ": good" "$WORK/cgood.ocsp" || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
check "CA key: the first certificate is good, verified" \
	sh -c "grep -q 'dev1.pem: good' '$WORK/cgood.ocsp' && grep -q 'Response verify OK' '$WORK/cgood.ocsp'"
check "with no certificate in the response" sh -c "! grep -q 'BEGIN CERTIFICATE' '$WORK/cgood.ocsp'"
tu=$(date -d "$(sed -n 's/^ *This Update: //p' "$WORK/cgood.ocsp" | head -1)" +%s)
nu=$(date -d "$(sed -n 's/^ *Next Update: //p' "$WORK/cgood.ocsp" | head -1)" +%s)
check "valid 8 hours (ocsp-validity)" test $((nu - tu)) -eq 28800
ask crev -cert "$WORK/dev2.pem"
check "CA key: revoked, keyCompromise, verified" \
	sh -c "grep -q 'dev2.pem: revoked' '$WORK/crev.ocsp' && grep -q 'Reason: keyCompromise' '$WORK/crev.ocsp' && grep -q 'Response verify OK' '$WORK/crev.ocsp'"
ask cunknown -serial 0x0badc0de
check "CA key: unknown, verified" \
	sh -c "grep -q '0x0badc0de: unknown' '$WORK/cunknown.ocsp' && grep -q 'Response verify OK' '$WORK/cunknown.ocsp'"
openssl ocsp -issuer "$WORK/gen3.pem" -serial 0x0badc0de -url "$OCSP_URL" \
	-CAfile "$WORK/chain3.pem" -resp_text >"$WORK/cgen3.ocsp" 2>&1
check "CA key: generation 3 answers, signed by its own key" \
	sh -c "grep -q '0x0badc0de: unknown' '$WORK/cgen3.ocsp' && grep -q 'Response verify OK' '$WORK/cgen3.ocsp' && ! grep -q 'BEGIN CERT' '$WORK/cgen3.ocsp'"
check "no responder was made in this mode" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM ocsp_responder")" = 2
hsmcad_stop

# ---- renewal: 25 days later 5 of the 30 are left, under the 10 that
# trigger a new responder certificate for the same token key ----
cp "$WORK/conf.orig" "$CONF"
HSMCA_NOW=$(( $(date +%s) + 25 * 86400 )); export HSMCA_NOW
hsmcad_start
OCSP_URL="http://127.0.0.1:$HTTP_PORT/ocsp"
i=0; until [ "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM ocsp_responder WHERE issuer_id = 2")" = 2 ] || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
check "25 days on, generation 2's responder is renewed" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM ocsp_responder WHERE issuer_id = 2")" = 2
check "for the same key" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(DISTINCT key_uri) FROM ocsp_responder WHERE issuer_id = 2")" = 1
openssl ocsp -issuer "$WORK/gen2.pem" -cert "$WORK/dev1.pem" -url "$OCSP_URL" -noverify -resp_text >"$WORK/renewed.ocsp" 2>&1
sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' "$WORK/renewed.ocsp" >"$WORK/responder2.pem"
check "responses now carry the new certificate" \
	sh -c "test -s '$WORK/responder2.pem' && ! cmp -s '$WORK/responder.pem' '$WORK/responder2.pem'"
unset HSMCA_NOW
hsmcad_stop

# ---- the end of a generation: its responder key is destroyed once the
# generation and every response the key signed have ended (a week on,
# for the clock), never a CA key. Generation 3 is revoked first: a
# revoked generation ends too. 740 days on, generations 2 (730 days)
# and 3 (700) have ended; the root has not, and hsmcad makes generation
# 4 under it. ----
# privkeys: the private keys in the token, "ID LABEL" a line.
privkeys() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label ocsp --login \
		--pin user-pin-ocsp --list-objects --type privkey 2>/dev/null |
		awk '/label:/ { l = $2 } /ID:/ { print $2, l }' | sort
}
expect_ok "generation 3 revoked" hsmca ca revoke 3 --reason cessationOfOperation
privkeys >"$WORK/keys.before"
check "before: the responder keys of generations 2 and 3 are in the token" \
	sh -c "grep -q ' ocsp-gen2\$' '$WORK/keys.before' && grep -q ' ocsp-gen3\$' '$WORK/keys.before'"
HSMCA_NOW=$(( $(date +%s) + 740 * 86400 )); export HSMCA_NOW
expect_ok "generation 4 made" hsmca ca rotate
expect_ok "and activated" hsmca ca activate 4
# The record of the outcome of generation 3's destruction cannot be
# written (a trigger refuses it); the record of its intent can.
sqlite3 "$CADIR/hsmca.db" "CREATE TRIGGER no_gen3_outcome BEFORE INSERT ON audit
	WHEN NEW.object = 'gen:3' AND NEW.detail LIKE 'OCSP responder key % destroyed in the token%'
	BEGIN SELECT RAISE(ABORT, 'no outcome today'); END;" ||
	bail "cannot add the trigger"
hsmcad_start
i=0; until [ "$(grep -c 'OCSP: responder key .* destroyed' "$CADIR/hsmcad.log")" -ge 2 ] || [ $i -ge 400 ]; do i=$((i + 1)); sleep 0.05; done
check "hsmcad destroys the responder key of generation 2" \
	grep -q "OCSP: responder key pkcs11:.*of CA generation 2 destroyed: the generation ended" "$CADIR/hsmcad.log"
check "and of generation 3, revoked" \
	grep -q "OCSP: responder key pkcs11:.*of CA generation 3 destroyed" "$CADIR/hsmcad.log"
privkeys >"$WORK/keys.after"
check "they are gone from the token" \
	sh -c "! grep -q ' ocsp-gen[23]\$' '$WORK/keys.after'"
check "every other key is still there: the CA keys of generations 1, 2 and 3" \
	sh -c "grep -v ' ocsp-gen[23]\$' '$WORK/keys.before' | comm -23 - '$WORK/keys.after' | grep -c . | grep -qx 0"
check "and nothing else was destroyed (the keys before, less two)" \
	test "$(comm -23 "$WORK/keys.before" "$WORK/keys.after" | wc -l)" -eq 2
# recid GEN PATTERN: the id of hsmcad's record of generation GEN whose
# detail is LIKE PATTERN ('' if none).
recid() {
	sqlite3 "$CADIR/hsmca.db" "SELECT group_concat(id) FROM audit WHERE actor = 'hsmcad' AND object = 'gen:$1' AND detail LIKE '$2'"
}
begin2=$(recid 2 'OCSP responder key %: its destruction in the token begins: the generation ended at %')
done2=$(recid 2 'OCSP responder key % destroyed in the token: the generation ended at %')
begin3=$(recid 3 'OCSP responder key %: its destruction in the token begins%')
check "generation 2: its destruction recorded before it began ($begin2), then its outcome ($done2)" \
	sh -c '[ -n "$1" ] && [ -n "$2" ] && [ "$1" -lt "$2" ]' - "$begin2" "$done2"
check "generation 3: its destruction recorded before it began ($begin3)" test -n "$begin3"
check "... its outcome refused by the store, and hsmcad says so" \
	sh -c "[ -z '$(recid 3 '% destroyed in the token%')' ] &&
	       grep -q 'OCSP: the audit record of the destruction of responder key pkcs11:.* (CA generation 3) not written: ' '$CADIR/hsmcad.log'"
expect_ok "the audit chain verifies" hsmca audit verify
i=0; until [ "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM ocsp_responder WHERE issuer_id = 4")" -ge 1 ] || [ $i -ge 400 ]; do i=$((i + 1)); sleep 0.05; done
check "generation 4 has a responder of its own" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM ocsp_responder WHERE issuer_id = 4")" -ge 1
check "an ended generation, revoked or not, is not signed for: no warning of a missing responder" \
	sh -c "! grep -q 'OCSP: generation [23]:' '$CADIR/hsmcad.log'"
hsmcad_stop
N=$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM audit WHERE detail LIKE 'OCSP responder key % destroyed%'")
check "one record of a destruction done (generation 3's was refused)" test "$N" -eq 1
sqlite3 "$CADIR/hsmca.db" "DROP TRIGGER no_gen3_outcome" || bail "cannot drop the trigger"
hsmcad_start
i=0; until grep -q "OCSP: responder key .* of CA generation 3 is gone from the token" "$CADIR/hsmcad.log" || [ $i -ge 400 ]; do i=$((i + 1)); sleep 0.05; done
hsmcad_stop
check "restarted, hsmcad records the outcome of generation 3's destruction, naming its start" \
	test -n "$(recid 3 "OCSP responder key % destroyed in the token: found gone after its destruction began (audit record $begin3), whose outcome was not recorded")"
check "restarted: nothing more is destroyed, and each destruction has its outcome" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM audit WHERE detail LIKE 'OCSP responder key % destroyed%'")" -eq 2
hsmcad_start
i=0; until grep -q "OCSP: .* pre-signed" "$CADIR/hsmcad.log" || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
hsmcad_stop
check "restarted again: no outcome is recorded twice" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM audit WHERE detail LIKE 'OCSP responder key % destroyed%'")" -eq 2
expect_ok "the audit chain verifies" hsmca audit verify
check "and generation 4's keys are kept" \
	test "$(privkeys | grep -c ' ocsp-gen4$')" -eq 1
unset HSMCA_NOW
done_testing
