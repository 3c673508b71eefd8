#!/bin/sh
# Reservations left behind: an issuance reserves its serial before the
# token signs and records the certificate after; one killed in between
# leaves the row reserved. hsmcad's signer marks failed, at start (and
# hourly), every reservation more than a day old, with one log line, an
# audit record per serial and a metric; a younger one, and the one a live
# `hsmca issue` holds while the token is slow, are left alone, and that
# issue still gets its certificate. The token is SoftHSM2, behind
# tests/pkcs11-fault/pkcs11-fault.so for the CLI only.
. "$top_srcdir/tests/integration/lib.sh"

command -v curl >/dev/null 2>&1 || skip_all "curl not installed"

est_setup sweep
# An auditor, for /metrics.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$CADIR/opca.key" -subj "/CN=Operators CA" -days 100 \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	-out "$CADIR/opca.pem" 2>/dev/null
bootstrap_cert audrey "$CADIR/opca"
cat >>"$CONF" <<EOC

[admin]
listen = 127.0.0.1:0
client-ca = $CADIR/opca.pem
auditors = CN=audrey
EOC

# The CLI signs through the shim; hsmcad uses the token directly.
fault_cli

db() {
	sqlite3 "$CADIR/hsmca.db" "$1"
}
# newest: the serial of the last row reserved.
newest() {
	db "SELECT serial FROM cert ORDER BY id DESC LIMIT 1"
}

# Two issuances killed inside the token: the process dies between
# reserving the serial and recording the certificate.
fault "fault=hang on=sign"
killed_issue dead-1 1
killed_issue dead-2 2
OLD=$(db "SELECT serial FROM cert WHERE status = 'reserved' ORDER BY id LIMIT 1")
YOUNG=$(newest)
check "two serials are left reserved by the killed issues" \
	test "$(reserved_count)" = 2
# One is 25 hours old, the other 23.
db "UPDATE cert SET created_at = created_at - 25 * 3600 WHERE serial = '$OLD';
    UPDATE cert SET created_at = created_at - 23 * 3600 WHERE serial = '$YOUNG'"

# A live issue, inside a slow token while hsmcad starts and sweeps.
fault "fault=stall on=sign"
make_csr live ec:P-256 /CN=live-1 2>/dev/null
"$HSMCA" -c "$CADIR/shim.conf" issue --csr "$WORK/live.csr" --profile device \
	--out "$WORK/live.pem" >"$WORK/live.out" 2>"$WORK/live.err" &
LIVE_PID=$!
held 3 || bail "the live issue never reached the token"
LIVE=$(newest)

hsmcad_start
i=0
until grep -q "older than 24h marked failed" "$CADIR/hsmcad.log" || [ $i -ge 200 ]; do
	i=$((i + 1)); sleep 0.05
done
check "hsmcad logs its sweep at start, with the count" \
	grep -q "signer: 1 reservation older than 24h marked failed" "$CADIR/hsmcad.log"
check "the reservation 25 hours old is failed" test "$(cert_status "$OLD")" = failed
check "the one 23 hours old is left reserved" test "$(cert_status "$YOUNG")" = reserved
check "the live issue's reservation is left reserved" test "$(cert_status "$LIVE")" = reserved

run hsmca audit list --action issue
check "an audit record says which serial, who reserved it and why it failed" \
	grep -q "hsmcad .*serial:$OLD .*failed.*reserved under CA generation 2 .* by cli:.*, profile device, and never recorded: marked failed after 24h" \
	"$WORK/last.out"
expect_ok "the audit chain verifies" hsmca audit verify
run hsmca cert list --status failed
check "cert list --status failed shows it" grep -q "^$OLD " "$WORK/last.out"
expect_fail "a swept serial cannot be revoked: it was never issued" 1 "never issued \(it is failed\)" \
	hsmca revoke "$OLD"

STATUS=$(curl -s -o "$WORK/metrics.txt" -w '%{http_code}' --cacert "$CADIR/root.pem" \
	--cert "$WORK/audrey.boot.pem" --key "$WORK/audrey.boot.key" \
	"https://localhost:$ADMIN_PORT/metrics")
check "GET /metrics counts it (hsmca_reservations_swept_total 1)" \
	grep -q '^hsmca_reservations_swept_total 1$' "$WORK/metrics.txt"

# The token answers: the live issue records and releases its certificate.
fault "fault=none"
wait "$LIVE_PID"
RC=$?
check "the live issue succeeds after the sweep (exit $RC)" test "$RC" -eq 0
check "its certificate is recorded valid" test "$(cert_status "$LIVE")" = valid
hsmca ca download 2 >"$WORK/ica.pem"
expect_ok "and verifies" openssl verify -CAfile "$CADIR/root.pem" \
	-untrusted "$WORK/ica.pem" "$WORK/live.pem"
check "the young reservation is still reserved" test "$(cert_status "$YOUNG")" = reserved
check "the store is whole" test "$(db 'PRAGMA integrity_check')" = ok
done_testing
