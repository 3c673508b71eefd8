#!/bin/sh
# hsmcad over mutual TLS with curl as the EST client (RFC 7030): cacerts,
# csrattrs, enrollment with a factory certificate, renewal, serverkeygen,
# every refusal with its status and reason; TLS versions; reload; drain.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"

est_setup est
# A label without bootstrap-ca: only certificates hsmca issued enroll here.
cat >>"$CONF" <<EOC

[est plain]
profile = device
EOC
expect_ok "hsmcad -t accepts the configuration" "$top_builddir/daemon/hsmcad" -t -c "$CONF"
check "hsmcad -t says so" grep -q "configuration OK" "$WORK/last.out"
hsmcad_start
ok "hsmcad starts and answers on port $PORT"
check "the pidfile holds its pid" test "$(cat "$CADIR/hsmcad.pid")" = "$HSMCAD_PID"

# cacerts: no client certificate needed.
hsmca ca download 2 >"$WORK/ica.pem"
STATUS=$(curl -s -D "$WORK/hdr" -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/cacerts")
check "cacerts answers 200 without a client certificate" test "$STATUS" = 200
check "cacerts is application/pkcs7-mime certs-only, base64" \
	sh -c "grep -qi '^Content-Type: application/pkcs7-mime; smime-type=certs-only' '$WORK/hdr' && grep -qi '^Content-Transfer-Encoding: base64' '$WORK/hdr'"
p7_certs >"$WORK/cacerts.pem"
check "cacerts carries the issuing CA and the root" \
	sh -c "test \$(grep -c 'BEGIN CERTIFICATE' '$WORK/cacerts.pem') -eq 2 &&
	       grep -q \"\$(sed -n 2p '$WORK/ica.pem')\" '$WORK/cacerts.pem' &&
	       grep -q \"\$(sed -n 2p '$CADIR/root.pem')\" '$WORK/cacerts.pem'"

STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/csrattrs")
check "csrattrs answers 200" test "$STATUS" = 200
check "csrattrs is a DER SEQUENCE naming ecdsa-with-SHA256 and prime256v1" \
	sh -c "base64 -d '$WORK/last.out' | openssl asn1parse -inform DER | grep -q ecdsa-with-SHA256 &&
	       base64 -d '$WORK/last.out' | openssl asn1parse -inform DER | grep -q prime256v1"

# First enrollment with the factory certificate.
BOOT="--cert $WORK/dev-1.boot.pem --key $WORK/dev-1.boot.key"
csr_b64 dev1 ec:P-256 "/CN=dev-1" "subjectAltName=URI:urn:dev:1"
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/dev1.b64" $BOOT
check "simpleenroll with a bootstrap certificate answers 200" test "$STATUS" = 200
p7_certs >"$WORK/dev1.pem"
check "the answer holds the certificate for CN=dev-1" \
	sh -c "openssl x509 -in '$WORK/dev1.pem' -noout -subject | grep -q 'CN = dev-1'"
expect_ok "it verifies with openssl" openssl verify -CAfile "$CADIR/root.pem" -untrusted "$WORK/ica.pem" "$WORK/dev1.pem"
cat "$WORK/dev1.pem" "$WORK/ica.pem" "$CADIR/root.pem" >"$WORK/dev1.chain"
run certtool --verify-chain --infile "$WORK/dev1.chain"
check "it verifies with certtool" grep -q "Chain verification output: Verified" "$WORK/last.out"
check "its key is the one in the CSR" test \
	"$(openssl x509 -in "$WORK/dev1.pem" -noout -pubkey)" = "$(openssl pkey -in "$WORK/dev1.key" -pubout)"
req=$(sqlite3 "$CADIR/hsmca.db" "SELECT requester FROM cert WHERE subject = 'CN=dev-1'" 2>&1)
check "the store records it with the bootstrap identity as requester ($req)" \
	test "$req" = "est:bootstrap:CN=dev-1"
check "hsmcad logged the request with identity, path, status and serial" \
	grep -q "client=CN=dev-1 id=bootstrap POST /.well-known/est/simpleenroll 200 serial [0-9a-f]*" "$CADIR/hsmcad.log"

# Refusals: status, one line of reason, nothing recorded.
refused_est() {
	desc=$1; want=$2; pattern=$3
	if [ "$STATUS" = "$want" ] && grep -Eq -- "$pattern" "$WORK/last.out" &&
	    [ "$(wc -l <"$WORK/last.out")" -eq 1 ]; then
		ok "$desc: $want"
	else
		not_ok "$desc: got $STATUS, wanted $want and /$pattern/"
	fi
}
rows=$(count_rows)
csr_b64 dev2 ec:P-256 "/CN=dev-2"
est_post simpleenroll "$WORK/dev2.b64" -D "$WORK/hdr"
refused_est "no client certificate" 401 "client certificate is required"
check "... with a challenge that asks for a certificate, not a password" \
	grep -q '^WWW-Authenticate: ClientCertificate realm="hsmca EST"' "$WORK/hdr"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/rogue.key" \
	-subj "/CN=Rogue CA" -days 10 -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign -out "$WORK/rogue.pem" 2>/dev/null
bootstrap_cert dev-2 "$WORK/rogue"
est_post simpleenroll "$WORK/dev2.b64" --cert "$WORK/dev-2.boot.pem" --key "$WORK/dev-2.boot.key"
refused_est "a client certificate from an untrusted CA" 403 "not trusted"
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/dev2.b64" $BOOT
refused_est "CSR CN differs from the bootstrap certificate's CN" 403 "does not match the client certificate's CN 'dev-1'"
# CNs are compared decoded: a BMPString whose raw bytes spell the
# bootstrap certificate's CN ("dev-12") is another name.
bootstrap_cert dev-12
printf '[req]\ndistinguished_name = dn\nstring_mask = MASK:0x800\n[dn]\n' >"$WORK/bmp.cnf"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/bmp.key" \
	-utf8 -subj "/CN=摥瘭ㄲ" -config "$WORK/bmp.cnf" -outform DER -out "$WORK/bmp.der" 2>/dev/null
base64 "$WORK/bmp.der" >"$WORK/bmp.b64"
est_post simpleenroll "$WORK/bmp.b64" --cert "$WORK/dev-12.boot.pem" --key "$WORK/dev-12.boot.key"
refused_est "a BMPString CN whose bytes spell the bootstrap CN 'dev-12'" 403 "does not match the client certificate's CN 'dev-12'"
# A client's name reaches the log line, its control characters do not
# (an escape sequence would rewrite the operator's terminal).
esc_cn=$(printf 'dev-1\033[2K\010\013\177x')
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/esc.key" \
	-utf8 -subj "/CN=$esc_cn" -outform DER -out "$WORK/esc.der" 2>/dev/null
base64 "$WORK/esc.der" >"$WORK/esc.b64"
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/esc.b64" $BOOT
check "a CSR CN with control characters is refused (403)" test "$STATUS" = 403
check "the log shows it with '?' for each control character" \
	grep -q "CSR CN 'dev-1?\[2K???x'" "$CADIR/hsmcad.log"
check "and no control character reaches the log" \
	sh -c "! LC_ALL=C grep -q '[[:cntrl:]]' '$CADIR/hsmcad.log'"
openssl req -in "$WORK/dev1.csr" -outform DER >"$WORK/dev1.der"
printf 'not base64 at all!!' >"$WORK/junk.b64"
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/junk.b64" $BOOT
refused_est "a body that is not base64" 400 "base64"
head -c 200 /dev/urandom | base64 >"$WORK/garbage.b64"
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/garbage.b64" $BOOT
refused_est "base64 of garbage" 400 "PKCS#10"
csr_b64 weak rsa:1024 "/CN=dev-1"
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/weak.b64" $BOOT
refused_est "an RSA-1024 CSR" 400 "1024"
STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" $BOOT \
	-H "Content-Type: text/plain" --data-binary "@$WORK/dev1.b64" "$URL/simpleenroll")
refused_est "the wrong Content-Type" 415 "application/pkcs10"
# shellcheck disable=SC2086
STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" $BOOT \
	-H "Content-Type: application/pkcs10" --data-binary "@$WORK/dev1.b64" "https://localhost:$PORT/.well-known/est/nolabel/simpleenroll")
refused_est "an unknown label" 404 "unknown EST label 'nolabel'"
STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/fullcmc")
refused_est "an unknown operation" 404 "unknown EST operation"
STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/simpleenroll")
refused_est "GET simpleenroll" 405 "takes POST"
# A HEAD is a GET without the body (evhttp refused it, 501); any other
# method is a 405 with Allow and a reason (a PUT enrolled like a POST).
curl -s -o "$WORK/cacerts.b64" --cacert "$CADIR/root.pem" "$URL/cacerts"
STATUS=$(curl -s -I -o "$WORK/hdr" -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/cacerts")
check "HEAD cacerts: 200, headers only" \
	sh -c "[ '$STATUS' = 200 ] && grep -qi '^Content-Type: application/pkcs7-mime' '$WORK/hdr'"
check "... with the length a GET gets ($(wc -c <"$WORK/cacerts.b64") bytes)" \
	grep -qi "^Content-Length: $(wc -c <"$WORK/cacerts.b64")" "$WORK/hdr"
check "... and the log says HEAD" grep -q "HEAD /.well-known/est/cacerts 200" "$CADIR/hsmcad.log"
raw_request "$PORT" 'HEAD /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' \
	"$CADIR/root.pem"
check "... and not one byte of body after the headers (evhttp sent the body)" headers_only
STATUS=$(curl -s -I -o "$WORK/hdr" -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/simpleenroll")
check "HEAD simpleenroll: 405, Allow: POST" \
	sh -c "[ '$STATUS' = 405 ] && grep -qi '^Allow: POST' '$WORK/hdr'"
STATUS=$(curl -s -D "$WORK/hdr" -o "$WORK/last.out" -w '%{http_code}' -X OPTIONS \
	--cacert "$CADIR/root.pem" "$URL/cacerts")
refused_est "OPTIONS cacerts" 405 "cacerts takes GET \(or HEAD\)"
check "... with Allow: GET, HEAD" grep -qi '^Allow: GET, HEAD' "$WORK/hdr"
# shellcheck disable=SC2086
STATUS=$(curl -s -D "$WORK/hdr" -o "$WORK/last.out" -w '%{http_code}' -X PUT $BOOT \
	--cacert "$CADIR/root.pem" -H "Content-Type: application/pkcs10" \
	--data-binary "@$WORK/dev1.b64" "$URL/simpleenroll")
refused_est "PUT simpleenroll with a good CSR" 405 "simpleenroll takes POST"
check "... with Allow: POST" grep -qi '^Allow: POST' "$WORK/hdr"
check "... and nothing issued" test "$(count_rows)" -eq "$rows"
head -c 20000 /dev/zero | tr '\0' 'A' >"$WORK/big.b64"
# shellcheck disable=SC2086
STATUS=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" $BOOT \
	-H "Content-Type: application/pkcs10" --data-binary "@$WORK/big.b64" "$URL/simpleenroll")
check "a body over max-body is refused with 413" test "$STATUS" = 413
# shellcheck disable=SC2086
est_post serverkeygen "$WORK/dev1.b64" $BOOT
refused_est "serverkeygen on a label without it" 403 "serverkeygen is not enabled"
# shellcheck disable=SC2086
est_post simplereenroll "$WORK/dev1.b64" $BOOT
refused_est "simplereenroll with a bootstrap certificate" 403 "certificate being renewed"
check "no refused request left a row in the store" test "$(count_rows)" -eq "$rows"

# Renewal with the issued certificate: new key, same names.
ISSUED="--cert $WORK/dev1.pem --key $WORK/dev1.key"
csr_b64 dev1b ec:P-256 "/CN=dev-1" "subjectAltName=URI:urn:dev:1"
# shellcheck disable=SC2086
est_post simplereenroll "$WORK/dev1b.b64" $ISSUED
check "simplereenroll with the issued certificate and a new key: 200" test "$STATUS" = 200
p7_certs >"$WORK/dev1b.pem"
expect_ok "the renewed certificate verifies" openssl verify -CAfile "$CADIR/root.pem" -untrusted "$WORK/ica.pem" "$WORK/dev1b.pem"
check "it carries the new key" test \
	"$(openssl x509 -in "$WORK/dev1b.pem" -noout -pubkey)" = "$(openssl pkey -in "$WORK/dev1b.key" -pubout)"
n=$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert WHERE requester = 'est:issued:CN=dev-1'" 2>&1)
check "it is recorded as requested by the issued certificate ($n)" test "$n" = 1
rows=$(count_rows)
csr_b64 dev1c ec:P-256 "/CN=dev-1-renamed" "subjectAltName=URI:urn:dev:1"
# shellcheck disable=SC2086
est_post simplereenroll "$WORK/dev1c.b64" $ISSUED
refused_est "simplereenroll with a changed subject" 400 "keep the subject"
csr_b64 dev1d ec:P-256 "/CN=dev-1" "subjectAltName=URI:urn:dev:other"
# shellcheck disable=SC2086
est_post simplereenroll "$WORK/dev1d.b64" $ISSUED
refused_est "simplereenroll with a changed SAN" 400 "keep the subjectAltName"
check "the refused renewals left nothing in the store" test "$(count_rows)" -eq "$rows"
# Azure IoT Edge renews through simpleenroll with its current certificate.
csr_b64 dev1e ec:P-256 "/CN=dev-1" "subjectAltName=URI:urn:dev:1"
ISSUED_B="--cert $WORK/dev1b.pem --key $WORK/dev1b.key"
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/dev1e.b64" $ISSUED_B
check "simpleenroll with an issued certificate is a renewal: 200" test "$STATUS" = 200
# A revoked certificate cannot renew (marked in the store directly: the
# revoke command arrives with revocation).
serial_b=$(openssl x509 -in "$WORK/dev1b.pem" -noout -serial | sed 's/serial=//' | tr A-F a-f | sed 's/^00//')
run sqlite3 "$CADIR/hsmca.db" "UPDATE cert SET status = 'revoked', revoked_at = strftime('%s','now'), revoke_reason = 1 WHERE serial = '$serial_b'; SELECT changes();"
check "the certificate is marked revoked in the store" grep -qx 1 "$WORK/last.out"
# shellcheck disable=SC2086
est_post simplereenroll "$WORK/dev1e.b64" $ISSUED_B
refused_est "a revoked client certificate cannot renew" 403 "is revoked"

# whoami: who the client certificate makes the client, nothing issued
# (hsmca est renew asks it with a new pair before swapping it in).
whoami() {
	STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" "$@" "$URL/whoami")
}
rows=$(count_rows)
serial_a=$(openssl x509 -in "$WORK/dev1.pem" -noout -serial | sed 's/serial=//' | tr A-F a-f | sed 's/^00//')
# shellcheck disable=SC2086
whoami $ISSUED
check "whoami with a valid issued certificate: 200, 'issued' and its serial" \
	test "$STATUS $(cat "$WORK/last.out")" = "200 issued $serial_a"
# shellcheck disable=SC2086
whoami $BOOT
check "whoami with a bootstrap certificate: 200, 'bootstrap'" test "$STATUS $(cat "$WORK/last.out")" = "200 bootstrap"
# shellcheck disable=SC2086
whoami $ISSUED_B
refused_est "whoami with a revoked certificate" 403 "client certificate $serial_b is revoked"
whoami
refused_est "whoami without a client certificate" 401 "client certificate is required"
whoami --cert "$WORK/dev-2.boot.pem" --key "$WORK/dev-2.boot.key"
refused_est "whoami with a certificate from an untrusted CA" 403 "not trusted"
# shellcheck disable=SC2086
whoami $ISSUED -X POST -H "Content-Type: application/pkcs10" --data-binary "@$WORK/dev1e.b64"
refused_est "whoami takes GET" 405 "whoami takes GET"
check "whoami recorded nothing" test "$(count_rows)" -eq "$rows"

# At a label without bootstrap-ca, the front verified an issued
# certificate's chain, freed it twice and died.
PLAIN="https://localhost:$PORT/.well-known/est/plain"
# shellcheck disable=SC2086
STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" $ISSUED "$PLAIN/whoami")
check "whoami with an issued certificate at a label without bootstrap-ca: 200, 'issued' ($STATUS)" \
	test "$STATUS $(cat "$WORK/last.out")" = "200 issued $serial_a"
# A certificate that chains to this CA but that its store has no record
# of (a store restored from a backup older than the certificate): 403
# with the reason, at a label with bootstrap-ca and at one without.
make_csr gone ec:P-256 /CN=dev-gone 2>/dev/null
hsmca issue --csr "$WORK/gone.csr" --profile device --out "$WORK/gone.pem" >/dev/null
serial_g=$(openssl x509 -in "$WORK/gone.pem" -noout -serial | sed 's/serial=//' | tr A-F a-f | sed 's/^00//')
run sqlite3 "$CADIR/hsmca.db" "DELETE FROM cert WHERE serial = '$serial_g'; SELECT changes();"
check "its record is gone from the store" grep -qx 1 "$WORK/last.out"
GONE="--cert $WORK/gone.pem --key $WORK/gone.key"
not_recorded="client certificate 'CN=dev-gone' chains to this CA but is not one it recorded as issued"
# shellcheck disable=SC2086
whoami $GONE
check "whoami with a certificate this CA has no record of: 403 and why" \
	test "$STATUS $(cat "$WORK/last.out")" = "403 $not_recorded"
csr_b64 gone2 ec:P-256 /CN=dev-gone
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/gone2.b64" $GONE
check "simpleenroll with it: 403 and why" test "$STATUS $(cat "$WORK/last.out")" = "403 $not_recorded"
# shellcheck disable=SC2086
STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" $GONE "$PLAIN/whoami")
check "and at the label without bootstrap-ca ($STATUS)" test "$STATUS $(cat "$WORK/last.out")" = "403 $not_recorded"
# One of the CA's own certificates, the root, presented with its key in
# the token (curl through the libp11 engine): it chains to this CA (its
# chain is itself) and no record holds it. It was refused with the
# factory CA's verification error ("self-signed certificate"), and with
# an empty one at a label without bootstrap-ca.
engines=$(openssl version -e | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')
if [ -r "$engines/pkcs11.so" ]; then
	engine_conf
	root_key=$(sqlite3 "$CADIR/hsmca.db" "SELECT key_uri FROM ca_generation WHERE id = 1")
	root_subject=$(sqlite3 "$CADIR/hsmca.db" "SELECT subject FROM ca_generation WHERE id = 1")
	for at in "$URL" "$PLAIN"; do
		STATUS=$(OPENSSL_CONF="$CADIR/engine.cnf" curl -s -o "$WORK/last.out" -w '%{http_code}' \
			--cacert "$CADIR/root.pem" --engine pkcs11 --key-type ENG --key "$root_key" \
			--cert "$CADIR/root.pem" "$at/whoami")
		check "whoami with the root CA's own certificate at ${at##*/est}/: 403 and why ($STATUS)" \
			test "$STATUS $(cat "$WORK/last.out" 2>/dev/null)" = \
			"403 client certificate '$root_subject' chains to this CA but is not one it recorded as issued"
	done
else
	ok "# SKIP the libp11 engine is not installed: no client certificate with a key in the token"
	ok "# SKIP the libp11 engine is not installed: no client certificate with a key in the token"
fi
check "hsmcad is still serving" curl -sf --cacert "$CADIR/root.pem" -o /dev/null "$URL/cacerts"

# A store that cannot be read says nothing about a certificate: the
# device is told to come back (503, Retry-After), not that this CA does
# not know it (403). The certificate table is renamed away under the
# running daemon for one request (a read error, as a damaged or
# half-restored store gives), then back.
run sqlite3 "$CADIR/hsmca.db" "ALTER TABLE cert RENAME TO cert_away"
# shellcheck disable=SC2086
STATUS=$(curl -s -D "$WORK/locked.hdr" -o "$WORK/locked.out" -w '%{http_code}' --cacert "$CADIR/root.pem" $ISSUED "$URL/whoami")
run sqlite3 "$CADIR/hsmca.db" "ALTER TABLE cert_away RENAME TO cert"
check "whoami while the store cannot be read: 503, not 403 ($STATUS)" \
	test "$STATUS $(cat "$WORK/locked.out")" = "503 the CA's records cannot be read now; try again later"
check "with Retry-After" grep -qi '^Retry-After: [0-9]' "$WORK/locked.hdr"
check "the log says why" grep -q "the store could not be read to identify the client certificate" "$CADIR/hsmcad.log"
# shellcheck disable=SC2086
whoami $ISSUED
check "and once it can, the same certificate is known again" \
	test "$STATUS $(cat "$WORK/last.out")" = "200 issued $serial_a"

# The edge label: an edge gateway's CA, and server-side key generation.
EDGE="https://localhost:$PORT/.well-known/est/edge"
csr_b64 gw ec:P-256 "/CN=gateway-7 device CA"
# shellcheck disable=SC2086
STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" $BOOT \
	-H "Content-Type: application/pkcs10" --data-binary "@$WORK/gw.b64" "$EDGE/simpleenroll")
check "edge label: simpleenroll issues an edge CA (cn-match off): 200" test "$STATUS" = 200
p7_certs >"$WORK/gw.pem"
run openssl x509 -in "$WORK/gw.pem" -noout -ext basicConstraints
check "edge CA certificate is CA:TRUE, pathlen 0" grep -q "CA:TRUE, pathlen:0" "$WORK/last.out"
# A device certificate hsmca issued renews itself; it is no ticket to the
# edge label's CA profile (that label trusts only the factory CA).
# shellcheck disable=SC2086
STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" $ISSUED \
	-H "Content-Type: application/pkcs10" --data-binary "@$WORK/gw.b64" "$EDGE/simpleenroll")
refused_est "an issued device certificate asking for an edge CA" 403 "cannot enroll for profile edge-ca"
# shellcheck disable=SC2086
STATUS=$(curl -s -D "$WORK/hdr" -o "$WORK/skg.out" -w '%{http_code}' --cacert "$CADIR/root.pem" $BOOT \
	-H "Content-Type: application/pkcs10" --data-binary "@$WORK/gw.b64" "$EDGE/serverkeygen")
check "edge label: serverkeygen answers 200" test "$STATUS" = 200
check "serverkeygen answers multipart/mixed" grep -qi "^Content-Type: multipart/mixed; boundary=" "$WORK/hdr"
mime_part "$WORK/skg.out" 1 | base64 -d | openssl pkey -inform DER -out "$WORK/skg.key"
check "the first part is a PKCS#8 private key" grep -q "BEGIN PRIVATE KEY" "$WORK/skg.key"
p7_certs "$WORK/skg.out" 2 >"$WORK/skg.pem"
check "the second part is the certificate for that key" test -s "$WORK/skg.pem" -a \
	"$(openssl x509 -in "$WORK/skg.pem" -noout -pubkey 2>/dev/null)" = "$(openssl pkey -in "$WORK/skg.key" -pubout 2>/dev/null)"
check "the certificate is not for the CSR's key" test \
	"$(openssl x509 -in "$WORK/skg.pem" -noout -pubkey 2>/dev/null)" != "$(openssl pkey -in "$WORK/gw.key" -pubout)"
expect_ok "the serverkeygen certificate verifies" openssl verify -CAfile "$CADIR/root.pem" -untrusted "$WORK/ica.pem" "$WORK/skg.pem"

# The gateway holds a CA key: it must not be able to pass for the
# appliance. Its certificate excludes the names of hsmcad's own TLS
# certificate, so a server certificate it signs for them fails with
# every verifier that trusts hsmca's root.
run openssl x509 -in "$WORK/skg.pem" -noout -ext nameConstraints
check "the edge CA's nameConstraints are critical" grep -q "Name Constraints: critical" "$WORK/last.out"
check "they exclude the appliance's DNS name" grep -q "DNS:localhost" "$WORK/last.out"
check "and its address" grep -q "IP:127.0.0.1/255.255.255.255" "$WORK/last.out"
cat "$WORK/ica.pem" "$WORK/skg.pem" >"$WORK/skg-chain.pem"
forge_leaf() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$WORK/$1.key" -subj "/CN=$2" -addext "subjectAltName=$3" \
		-out "$WORK/$1.csr" 2>/dev/null
	openssl x509 -req -in "$WORK/$1.csr" -CA "$WORK/skg.pem" -CAkey "$WORK/skg.key" \
		-CAcreateserial -days 1 -copy_extensions copy -out "$WORK/$1.pem" 2>/dev/null
}
forge_leaf fake-dns localhost DNS:localhost
forge_leaf fake-ip 127.0.0.1 IP:127.0.0.1
forge_leaf hub edgehub.gateway-7.example DNS:edgehub.gateway-7.example
run openssl verify -CAfile "$CADIR/root.pem" -untrusted "$WORK/skg-chain.pem" "$WORK/fake-dns.pem"
check "openssl refuses the edge CA's certificate for the appliance's name" \
	grep -q "excluded subtree violation" "$WORK/last.err"
run openssl verify -CAfile "$CADIR/root.pem" -untrusted "$WORK/skg-chain.pem" "$WORK/fake-ip.pem"
check "and for its address" grep -q "excluded subtree violation" "$WORK/last.err"
cat "$WORK/fake-dns.pem" "$WORK/skg-chain.pem" >"$WORK/fake-dns-chain.pem"
run certtool --verify --load-ca-certificate "$CADIR/root.pem" --infile "$WORK/fake-dns-chain.pem"
check "certtool refuses it too, for its name constraints" \
	sh -c "test $RC -ne 0 && grep -qi 'constraint' '$WORK/last.out'"
expect_ok "the edge CA still signs for the gateway's own names" \
	openssl verify -CAfile "$CADIR/root.pem" -untrusted "$WORK/skg-chain.pem" "$WORK/hub.pem"
cat "$WORK/hub.pem" "$WORK/skg-chain.pem" >"$WORK/hub-chain.pem"
expect_ok "which certtool accepts" certtool --verify --load-ca-certificate "$CADIR/root.pem" \
	--infile "$WORK/hub-chain.pem"

# The gateway renews the edge CA it got from serverkeygen the same way,
# authenticated by it: same subject, a new key made here.
SKG="--cert $WORK/skg.pem --key $WORK/skg.key"
# shellcheck disable=SC2086
STATUS=$(curl -s -o "$WORK/skg2.out" -w '%{http_code}' --cacert "$CADIR/root.pem" $SKG \
	-H "Content-Type: application/pkcs10" --data-binary "@$WORK/gw.b64" "$EDGE/serverkeygen")
check "an issued edge CA renews through serverkeygen: 200" test "$STATUS" = 200
p7_certs "$WORK/skg2.out" 2 >"$WORK/skg2.pem"
check "the renewed edge CA keeps the subject" test -s "$WORK/skg2.pem" -a \
	"$(openssl x509 -in "$WORK/skg2.pem" -noout -subject 2>/dev/null)" = "$(openssl x509 -in "$WORK/skg.pem" -noout -subject)"
check "with a new key" test \
	"$(openssl x509 -in "$WORK/skg2.pem" -noout -pubkey 2>/dev/null)" != "$(openssl x509 -in "$WORK/skg.pem" -noout -pubkey)"
expect_ok "and verifies" openssl verify -CAfile "$CADIR/root.pem" -untrusted "$WORK/ica.pem" "$WORK/skg2.pem"
csr_b64 gw2 ec:P-256 "/CN=gateway-8 device CA"
# shellcheck disable=SC2086
STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" $SKG \
	-H "Content-Type: application/pkcs10" --data-binary "@$WORK/gw2.b64" "$EDGE/serverkeygen")
refused_est "a serverkeygen renewal for another subject" 400 "must keep the subject"

# TLS versions.
run sh -c "openssl s_client -connect 127.0.0.1:$PORT -tls1_1 </dev/null"
check "TLS 1.1 is refused" test "$RC" -ne 0
run sh -c "openssl s_client -connect 127.0.0.1:$PORT -tls1 </dev/null"
check "TLS 1.0 is refused" test "$RC" -ne 0
run sh -c "openssl s_client -connect 127.0.0.1:$PORT -tls1_2 -CAfile '$CADIR/root.pem' </dev/null"
check "TLS 1.2 is accepted" grep -q "Protocol *: TLSv1.2" "$WORK/last.out"
run sh -c "openssl s_client -connect 127.0.0.1:$PORT -tls1_3 -CAfile '$CADIR/root.pem' </dev/null"
check "TLS 1.3 is accepted" grep -q "TLSv1.3" "$WORK/last.out"

# A client that connects and says nothing is dropped by the timeout (5s):
# after the TLS handshake, and without even starting one. The client's
# stdin is a FIFO held open by a sleeping writer, so only the client's
# own lifetime is timed.
idle_secs() {
	rm -f "$WORK/fifo"; mkfifo "$WORK/fifo"
	sleep 14 >"$WORK/fifo" &
	holder=$!
	start=$(date +%s)
	timeout 13 "$@" <"$WORK/fifo" >/dev/null 2>&1
	echo $(( $(date +%s) - start ))
	kill "$holder" 2>/dev/null
}
took=$(idle_secs openssl s_client -quiet -connect 127.0.0.1:$PORT -CAfile "$CADIR/root.pem")
check "an idle TLS connection is closed by the server's timeout (after ${took}s)" \
	test "$took" -ge 4 -a "$took" -le 8
# A raw TCP client that never sends a ClientHello: the server must close
# its side (curl's telnet client does not notice, so ask the kernel).
rm -f "$WORK/fifo2"; mkfifo "$WORK/fifo2"
sleep 14 >"$WORK/fifo2" &
holder=$!
timeout 13 curl -s telnet://127.0.0.1:$PORT <"$WORK/fifo2" >/dev/null 2>&1 &
i=0; until [ "$(ss -Htn state established "( sport = :$PORT )" | wc -l)" -ge 1 ] || [ $i -ge 40 ]; do i=$((i + 1)); sleep 0.05; done
check "a raw TCP connection is open on the server" test "$(ss -Htn state established "( sport = :$PORT )" | wc -l)" -ge 1
i=0; while [ "$(ss -Htn state established "( sport = :$PORT )" | wc -l)" -ge 1 ] && [ $i -lt 160 ]; do i=$((i + 1)); sleep 0.05; done
check "the server closes a connection that never starts TLS (after ~$((i / 20))s)" \
	test "$(ss -Htn state established "( sport = :$PORT )" | wc -l)" -eq 0
kill "$holder" 2>/dev/null

# SIGHUP: a new label appears without a restart and without a new login.
cat >>"$CONF" <<EOC

[est extra]
profile = server
EOC
STATUS=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" "https://localhost:$PORT/.well-known/est/extra/cacerts")
check "before SIGHUP the new label is unknown" test "$STATUS" = 404
logins=$(grep -c "logged in to token" "$CADIR/hsmcad.log")
kill -HUP "$HSMCAD_PID"
i=0; until grep -q "reloaded:" "$CADIR/hsmcad.log" || [ $i -ge 100 ]; do i=$((i + 1)); sleep 0.05; done
STATUS=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" "https://localhost:$PORT/.well-known/est/extra/cacerts")
check "after SIGHUP it answers" test "$STATUS" = 200
check "the reload did not log in to the token again" test "$(grep -c "logged in to token" "$CADIR/hsmcad.log")" -eq "$logins"
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/dev1e.b64" $ISSUED
check "enrollment still works after the reload" test "$STATUS" = 200

# A change of the generations (a new one made beside the active one) has
# the daemon rebuild what it issues with from the running config, parsed
# again from the bytes it was read from: the CA profiles keep excluding
# the appliance's names (they were lost at such a rebuild before).
gens=$(grep -c "CA generations changed" "$CADIR/hsmcad.log")
expect_ok "a new generation is made while hsmcad runs" hsmca ca rotate
i=0
until [ "$(grep -c "CA generations changed" "$CADIR/hsmcad.log")" -gt "$gens" ] || [ $i -ge 200 ]; do
	i=$((i + 1)); sleep 0.05
done
check "hsmcad sees the generations change" \
	test "$(grep -c "CA generations changed" "$CADIR/hsmcad.log")" -gt "$gens"
# shellcheck disable=SC2086
STATUS=$(curl -s -o "$WORK/skg3.out" -w '%{http_code}' --cacert "$CADIR/root.pem" $BOOT \
	-H "Content-Type: application/pkcs10" --data-binary "@$WORK/gw.b64" "$EDGE/serverkeygen")
check "an edge CA is issued after the change: 200" test "$STATUS" = 200
p7_certs "$WORK/skg3.out" 2 >"$WORK/skg3.pem"
run openssl x509 -in "$WORK/skg3.pem" -noout -ext nameConstraints
check "it still excludes the appliance's name" \
	sh -c "grep -q 'Name Constraints: critical' '$WORK/last.out' && grep -q 'DNS:localhost' '$WORK/last.out'"

# Refused enrollments are in the audit log (recorded off the event loop,
# so poll), with who was refused and why; the chain still verifies.
i=0
until [ "$(hsmca --json audit list --action refuse | jq length)" -ge 10 ] || [ $i -ge 100 ]; do
	i=$((i + 1)); sleep 0.05
done
run hsmca --json audit list --action refuse
check "refused enrollments are audit records ($(jq length "$WORK/last.out"))" \
	test "$(jq length "$WORK/last.out")" -ge 10
check "one names the CN mismatch and the bootstrap identity" \
	test "$(jq '[.[] | select(.actor == "est:bootstrap:CN=dev-1" and (.detail | test("does not match")))] | length' "$WORK/last.out")" -ge 1
check "one names the missing client certificate" \
	test "$(jq '[.[] | select(.detail | test("401 a client certificate is required"))] | length' "$WORK/last.out")" -ge 1
expect_ok "the audit chain verifies" hsmca audit verify

# SIGTERM drains and exits cleanly.
kill -TERM "$HSMCAD_PID"
wait "$HSMCAD_PID"
rc=$?
HSMCAD_PID=
check "SIGTERM: hsmcad exits 0" test "$rc" -eq 0
check "SIGTERM: it logged the drain" grep -q "draining" "$CADIR/hsmcad.log"
check "SIGTERM: the pidfile is gone" test ! -e "$CADIR/hsmcad.pid"
check "the store is intact" test "$(sqlite3 "$CADIR/hsmca.db" 'PRAGMA integrity_check')" = ok

# -t refuses a key that does not match the certificate.
sed "s|^tls-key = .*|tls-key = $WORK/dev1.key|" "$CONF" >"$CADIR/badkey.conf"
run "$top_builddir/daemon/hsmcad" -t -c "$CADIR/badkey.conf"
check "hsmcad -t refuses a tls-key that does not match tls-cert" \
	sh -c "test $RC -ne 0 && grep -q 'does not match' '$WORK/last.err'"

done_testing
