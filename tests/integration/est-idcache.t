#!/bin/sh
# The front remembers verified client chains across connections (by the
# SHA-256 of the chain presented, per label and runtime). What it must
# never do: serve a certificate revoked since it was remembered, or trust
# a chain the configuration no longer trusts after a reload.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"

est_setup idcache
# Tickets are off by default; this test resumes TLS 1.3 sessions.
sed -i 's/^max-body = .*/&\nsession-tickets = true/' "$CONF"
hsmcad_start
ok "hsmcad starts and answers on port $PORT"
hsmca ca download 2 >"$WORK/ica.pem"

# Each curl below is a new connection and a full handshake.
BOOT="--cert $WORK/dev-1.boot.pem --key $WORK/dev-1.boot.key"
csr_b64 dev1 ec:P-256 "/CN=dev-1"
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/dev1.b64" $BOOT
check "a bootstrap enrollment answers 200 ($STATUS)" test "$STATUS" = 200
p7_certs >"$WORK/dev1.pem"
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/dev1.b64" $BOOT
check "the same bootstrap certificate on a new connection: 200 ($STATUS)" test "$STATUS" = 200

# A client that resumes its TLS session (one ticket per full handshake)
# keeps its identity: the session carries its certificate.
s_post() {
	{ printf 'POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' \
		"$(wc -c <"$WORK/${S_BODY:-dev1}.b64")"; cat "$WORK/${S_BODY:-dev1}.b64"; sleep 1; } |
		openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$CADIR/root.pem" -ign_eof "$@" >"$WORK/s.out" 2>&1
}
s_post -cert "$WORK/dev-1.boot.pem" -key "$WORK/dev-1.boot.key" -sess_out "$WORK/sess.pem"
check "a full handshake with openssl s_client enrolls: 200" \
	sh -c "grep -q '^New, TLSv1.3' '$WORK/s.out' && grep -q 'HTTP/1.1 200' '$WORK/s.out'"
check "a session ticket came with it" test -s "$WORK/sess.pem"
s_post -sess_in "$WORK/sess.pem"
check "the resumed session, no certificate sent, keeps the identity: 200" \
	sh -c "grep -q '^Reused, TLSv1.3' '$WORK/s.out' && grep -q 'HTTP/1.1 200' '$WORK/s.out'"

# What one client's resumed session proved says nothing of another's: a
# stranger (a self-signed certificate the handshake accepts, the label
# does not) resuming right after dev-1 resumed is still a stranger.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/mallory.key" \
	-subj "/CN=mallory" -days 10 -out "$WORK/mallory.pem" 2>/dev/null
csr_b64 mallory-req ec:P-256 "/CN=mallory"
S_BODY=mallory-req s_post -cert "$WORK/mallory.pem" -key "$WORK/mallory.key" -sess_out "$WORK/sessm.pem"
check "a self-signed client certificate: 403, not trusted" \
	sh -c "grep -q 'HTTP/1.1 403' '$WORK/s.out' && grep -q 'not trusted' '$WORK/s.out'"
s_post -sess_in "$WORK/sess.pem"
check "dev-1 resumes again: 200" \
	sh -c "grep -q '^Reused, TLSv1.3' '$WORK/s.out' && grep -q 'HTTP/1.1 200' '$WORK/s.out'"
rows=$(count_rows)
S_BODY=mallory-req s_post -sess_in "$WORK/sessm.pem"
check "the stranger resumes its own session: still 403, not trusted" \
	sh -c "grep -q '^Reused, TLSv1.3' '$WORK/s.out' && grep -q 'HTTP/1.1 403' '$WORK/s.out' &&
		grep -q 'not trusted' '$WORK/s.out'"
check "nothing was issued to it" test "$(count_rows)" -eq "$rows"

# A factory certificate under an intermediate (the label trusts only the
# factory's root): the client sends the intermediate in its full
# handshake, and the ticket carries it, since OpenSSL keeps only the
# client's own certificate in a session.
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n' >"$WORK/ca.ext"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/fint.key" \
	-subj "/CN=Factory Intermediate" -out "$WORK/fint.csr" 2>/dev/null
openssl x509 -req -in "$WORK/fint.csr" -CA "$CADIR/factory.pem" -CAkey "$CADIR/factory.key" \
	-CAcreateserial -days 30 -extfile "$WORK/ca.ext" -out "$WORK/fint.pem" 2>/dev/null
bootstrap_cert dev-1i "$WORK/fint"
csr_b64 dev1i ec:P-256 "/CN=dev-1i"
S_BODY=dev1i s_post -cert "$WORK/dev-1i.boot.pem" -key "$WORK/dev-1i.boot.key" \
	-cert_chain "$WORK/fint.pem" -sess_out "$WORK/sessi.pem"
check "a certificate under a factory intermediate, the chain sent: 200" \
	sh -c "grep -q '^New, TLSv1.3' '$WORK/s.out' && grep -q 'HTTP/1.1 200' '$WORK/s.out'"
S_BODY=dev1i s_post -sess_in "$WORK/sessi.pem"
check "its resumed session, nothing sent, is still trusted: 200 (the ticket has the intermediate)" \
	sh -c "grep -q '^Reused, TLSv1.3' '$WORK/s.out' && grep -q 'HTTP/1.1 200' '$WORK/s.out'"

# An issued certificate renews twice (remembered after the first), then
# is revoked: the next connection is refused at once.
ISSUED="--cert $WORK/dev1.pem --key $WORK/dev1.key"
csr_b64 dev1r ec:P-256 "/CN=dev-1"
# shellcheck disable=SC2086
est_post simplereenroll "$WORK/dev1r.b64" $ISSUED
check "renewal with the issued certificate: 200 ($STATUS)" test "$STATUS" = 200
# shellcheck disable=SC2086
est_post simplereenroll "$WORK/dev1r.b64" $ISSUED
check "again on a new connection: 200 ($STATUS)" test "$STATUS" = 200
serial=$(openssl x509 -in "$WORK/dev1.pem" -noout -serial | sed 's/serial=//' | tr A-F a-f | sed 's/^00//')
expect_ok "hsmca revoke while hsmcad runs" hsmca revoke "$serial" --reason keyCompromise
rows=$(count_rows)
# shellcheck disable=SC2086
est_post simplereenroll "$WORK/dev1r.b64" $ISSUED
check "the revoked certificate on a new connection right after: 403 revoked ($STATUS)" \
	sh -c "test '$STATUS' = 403 && grep -q 'is revoked' '$WORK/last.out'"
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/dev1r.b64" $ISSUED
check "nor through simpleenroll: 403 ($STATUS)" test "$STATUS" = 403
check "nothing was recorded for the refusals" test "$(count_rows)" -eq "$rows"

# A reload that replaces the label's bootstrap-ca: the factory
# certificate remembered as trusted is refused on the next connection.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/other.key" \
	-subj "/CN=Other Factory CA" -days 10 -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign -out "$WORK/other.pem" 2>/dev/null
sed "0,\|^bootstrap-ca = $CADIR/factory.pem|s||bootstrap-ca = $WORK/other.pem|" "$CONF" >"$CONF.new" &&
	mv "$CONF.new" "$CONF"
check "the [est] label now trusts another factory CA" \
	test "$(grep -c "^bootstrap-ca = $WORK/other.pem" "$CONF")" -eq 1
reloads=$(grep -c "reloaded:" "$CADIR/hsmcad.log")
hsmcad_reload
check "hsmcad reloaded" test "$(grep -c "reloaded:" "$CADIR/hsmcad.log")" -gt "$reloads"
rows=$(count_rows)
# shellcheck disable=SC2086
est_post simpleenroll "$WORK/dev1.b64" $BOOT
check "the old factory's certificate after the reload: 403 not trusted ($STATUS)" \
	sh -c "test '$STATUS' = 403 && grep -q 'not trusted' '$WORK/last.out'"
check "nothing was recorded for it" test "$(count_rows)" -eq "$rows"
# The [est edge] label still trusts the old factory: per label, not global.
csr_b64 edge1 ec:P-256 "/CN=edge-1 device CA"
# shellcheck disable=SC2086
est_post edge/simpleenroll "$WORK/edge1.b64" $BOOT
check "the same certificate for the label that still trusts it: 200 ($STATUS)" test "$STATUS" = 200

# The default, session-tickets off: no ticket, no resumption, on TLS 1.3
# or TLS 1.2.
hsmcad_stop
sed -i -e '/^session-tickets = true$/d' \
	-e "s|^bootstrap-ca = $WORK/other.pem|bootstrap-ca = $CADIR/factory.pem|" "$CONF"
hsmcad_start
s_post -cert "$WORK/dev-1.boot.pem" -key "$WORK/dev-1.boot.key"
check "tickets off: a TLS 1.3 enrollment answers 200" \
	sh -c "grep -q '^New, TLSv1.3' '$WORK/s.out' && grep -q 'HTTP/1.1 200' '$WORK/s.out'"
check "... and no session ticket came with it" \
	sh -c "! grep -q 'Session Ticket' '$WORK/s.out'"
s_post -tls1_2 -cert "$WORK/dev-1.boot.pem" -key "$WORK/dev-1.boot.key" -sess_out "$WORK/sess12.pem"
check "a TLS 1.2 enrollment answers 200, with no ticket" \
	sh -c "grep -q '^New, TLSv1.2' '$WORK/s.out' && grep -q 'HTTP/1.1 200' '$WORK/s.out' &&
		! grep -q 'TLS session ticket:' '$WORK/s.out'"
check "... and nothing to resume (s_client keeps no session)" \
	test ! -s "$WORK/sess12.pem"

done_testing
