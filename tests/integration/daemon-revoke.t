#!/bin/sh
# Revocation as hsmcad lives it: CRLs signed in the token and served over
# plain HTTP, a `hsmca revoke` picked up by the running daemon, a revoked
# certificate refused for renewal, and the disallow list locking a device
# out whatever certificate it holds.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"

est_setup dr
sed -i "s|^\[daemon\]|[daemon]\nhttp-listen = 127.0.0.1:0\ncrl-delay = 1s|; s|^\[ca\]|[ca]\ncrl-next-update = 2d|" "$CONF"
hsmcad_start
check "hsmcad listens for plain HTTP too (port $HTTP_PORT)" test -n "$HTTP_PORT"
CRL_URL="http://127.0.0.1:$HTTP_PORT/crl/2.crl"
hsmca ca download 2 >"$WORK/ica.pem"
cat "$WORK/ica.pem" "$CADIR/root.pem" >"$WORK/chain.pem"

# fetch_crl: the served CRL into $WORK/crl.der / crl.pem; its number in CRLNUM
fetch_crl() {
	curl -sf -o "$WORK/crl.der" "$CRL_URL" &&
		openssl crl -inform DER -in "$WORK/crl.der" -out "$WORK/crl.pem" &&
		CRLNUM=$(openssl crl -in "$WORK/crl.pem" -noout -crlnumber | sed 's/crlNumber=//')
}
i=0; until fetch_crl || [ $i -ge 100 ]; do i=$((i + 1)); sleep 0.05; done
check "the CRL of generation 2 is served" test -s "$WORK/crl.der"
STATUS=$(curl -s -D "$WORK/hdr" -o /dev/null -w '%{http_code}' "$CRL_URL")
check "as application/pkix-crl" grep -qi "^Content-Type: application/pkix-crl" "$WORK/hdr"
expect_ok "it verifies with the issuing CA's key (openssl crl -verify)" \
	openssl crl -in "$WORK/crl.pem" -noout -verify -CAfile "$WORK/chain.pem"
first=$CRLNUM
tu=$(date -d "$(openssl crl -in "$WORK/crl.pem" -noout -lastupdate | sed 's/.*=//')" +%s)
nu=$(date -d "$(openssl crl -in "$WORK/crl.pem" -noout -nextupdate | sed 's/.*=//')" +%s)
check "its nextUpdate follows [ca] crl-next-update (2d)" test $((nu - tu)) -eq 172800
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/crl/99.crl")
check "an unknown generation is 404" test "$STATUS" = 404
STATUS=$(curl -s -I -o "$WORK/hdr" -w '%{http_code}' "$CRL_URL")
check "HEAD of the CRL: 200 and its length, headers only" \
	sh -c "[ '$STATUS' = 200 ] && grep -qi '^Content-Length: $(wc -c <"$WORK/crl.der")' '$WORK/hdr'"
raw_request "$HTTP_PORT" 'HEAD /crl/2.crl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'
check "... and not one byte of the CRL after the headers (evhttp sent it)" headers_only
STATUS=$(curl -s -D "$WORK/hdr" -o "$WORK/last.out" -w '%{http_code}' -X DELETE "$CRL_URL")
check "DELETE: 405 with Allow and a reason line" \
	sh -c "[ '$STATUS' = 405 ] && grep -qi '^Allow: GET, HEAD' '$WORK/hdr' && [ \"\$(cat '$WORK/last.out')\" = 'GET (or HEAD) only' ]"

# A device enrolls.
csr_b64 dev1 ec:P-256 "/CN=dev-1"
est_post simpleenroll "$WORK/dev1.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
p7_certs >"$WORK/dev1.pem"
serial=$(openssl x509 -in "$WORK/dev1.pem" -noout -serial | sed 's/serial=//' | tr A-F a-f | sed 's/^00//')
expect_ok "before revocation it passes a CRL check" \
	openssl verify -crl_check -CAfile "$CADIR/root.pem" -untrusted "$WORK/ica.pem" -CRLfile "$WORK/crl.pem" "$WORK/dev1.pem"

# Revoked by the operator's CLI while hsmcad runs.
expect_ok "hsmca revoke (keyCompromise)" hsmca revoke "$serial" --reason keyCompromise
i=0
while fetch_crl && [ "$CRLNUM" = "$first" ] && [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.05; done
check "hsmcad publishes a new CRL within seconds (number $first -> $CRLNUM)" \
	test "$CRLNUM" != "$first"
run openssl crl -in "$WORK/crl.pem" -noout -text
check "the new CRL lists the serial with reason Key Compromise" \
	sh -c "grep -qi 'Serial Number: $serial' '$WORK/last.out' && grep -q 'Key Compromise' '$WORK/last.out'"
run openssl verify -crl_check -CAfile "$CADIR/root.pem" -untrusted "$WORK/ica.pem" -CRLfile "$WORK/crl.pem" "$WORK/dev1.pem"
check "openssl verify -crl_check now says revoked" grep -q "certificate revoked" "$WORK/last.err"
csr_b64 dev1b ec:P-256 "/CN=dev-1"
est_post simplereenroll "$WORK/dev1b.b64" --cert "$WORK/dev1.pem" --key "$WORK/dev1.key"
check "the revoked certificate cannot renew: 403 ($STATUS)" \
	sh -c "test '$STATUS' = 403 && grep -q revoked '$WORK/last.out'"

# A burst of revocations becomes one or a few CRLs, not one per revocation.
before=$CRLNUM
for n in 1 2 3 4 5 6; do
	csr_b64 "b$n" ec:P-256 "/CN=dev-1"
	est_post simpleenroll "$WORK/b$n.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
	p7_certs >"$WORK/b$n.pem"
	openssl x509 -in "$WORK/b$n.pem" -noout -serial | sed 's/serial=//' >>"$WORK/burst.txt"
done
expect_ok "six revocations from a file" hsmca revoke --serials "$WORK/burst.txt" --reason superseded
i=0; while fetch_crl && [ "$(openssl crl -in "$WORK/crl.pem" -noout -text | grep -c 'Serial Number')" -lt 7 ] && [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.05; done
check "the CRL lists all seven" test "$(openssl crl -in "$WORK/crl.pem" -noout -text | grep -c 'Serial Number')" -eq 7
check "coalesced: at most 2 new CRL numbers for the burst ($before -> $CRLNUM)" \
	test $(( CRLNUM - before )) -le 2

# What the CRL lists can change while the number of revoked certificates
# stays the same; each change still makes a new CRL.
# new_crl: wait (10 s at most) for a CRL numbered above CRLNUM, its text in
# $WORK/crl.txt
new_crl() {
	prev=$CRLNUM; i=0
	while fetch_crl && [ "$CRLNUM" = "$prev" ] && [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.05; done
	openssl crl -in "$WORK/crl.pem" -noout -text >"$WORK/crl.txt"
	[ "$CRLNUM" != "$prev" ]
}
for n in h1 h2 h3; do
	csr_b64 "$n" ec:P-256 "/CN=dev-1"
	est_post simpleenroll "$WORK/$n.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
	p7_certs >"$WORK/$n.pem"
	eval "$n=\$(openssl x509 -in '$WORK/$n.pem' -noout -serial | sed 's/serial=//')"
done
expect_ok "h1 on hold" hsmca revoke "$h1" --reason certificateHold
check "a new CRL after h1's hold" new_crl
check "... h1 is on it, Certificate Hold" sh -c "grep -i -A4 'Serial Number: $h1\$' '$WORK/crl.txt' | grep -q 'Certificate Hold'"
expect_ok "h1 from hold to keyCompromise" hsmca revoke "$h1" --reason keyCompromise
check "a new CRL follows the change of reason (the count did not change)" new_crl
check "... h1 is on it, Key Compromise" sh -c "grep -i -A4 'Serial Number: $h1\$' '$WORK/crl.txt' | grep -q 'Key Compromise'"
expect_ok "h2 on hold" hsmca revoke "$h2" --reason certificateHold
new_crl
expect_ok "h2 released" hsmca revoke --unhold "$h2"
expect_ok "h3 revoked" hsmca revoke "$h3" --reason keyCompromise
check "a new CRL after a release and a revocation (the count did not change)" new_crl
check "... it lists h3" grep -qi "Serial Number: $h3\$" "$WORK/crl.txt"
check "... and no longer h2" sh -c "! grep -qi 'Serial Number: $h2\$' '$WORK/crl.txt'"
run openssl verify -crl_check -CAfile "$CADIR/root.pem" -untrusted "$WORK/ica.pem" -CRLfile "$WORK/crl.pem" "$WORK/h2.pem"
check "openssl verify -crl_check accepts the released h2" grep -q ": OK" "$WORK/last.out"

# The root's CRL is served too, and lists nothing while no generation is revoked.
curl -sf -o "$WORK/root.crl" "http://127.0.0.1:$HTTP_PORT/crl/1.crl"
run openssl crl -inform DER -in "$WORK/root.crl" -noout -text -verify -CAfile "$CADIR/root.pem"
check "the root's CRL (/crl/1.crl) is served and verifies with the root" grep -q "verify OK" "$WORK/last.err"
check "... with no revoked certificate" grep -q "No Revoked Certificates" "$WORK/last.out"

# The disallow list: a device locked out even with a valid factory certificate.
expect_ok "hsmca disallow add dev-1" hsmca disallow add dev-1
csr_b64 dev1c ec:P-256 "/CN=dev-1"
est_post simpleenroll "$WORK/dev1c.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
check "a disallowed device cannot enroll: 403 ($STATUS)" \
	sh -c "test '$STATUS' = 403 && grep -q 'dev-1' '$WORK/last.out'"
expect_ok "hsmca disallow remove dev-1" hsmca disallow remove dev-1
est_post simpleenroll "$WORK/dev1c.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
check "once removed, it enrolls again: 200" test "$STATUS" = 200
fp=$(openssl x509 -in "$WORK/dev-1.boot.pem" -noout -fingerprint -sha256 | sed 's/.*=//')
expect_ok "hsmca disallow add by the factory certificate's fingerprint" hsmca disallow add "$fp"
est_post simpleenroll "$WORK/dev1c.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
check "a disallowed factory certificate cannot enroll: 403 ($STATUS)" test "$STATUS" = 403

hsmcad_stop
done_testing
