#!/bin/sh
# admin.t: hsmcad's admin API (JSON over mutual TLS) and the hsmca CLI
# against it: the same commands give the same output as on the
# appliance; roles are enforced; unknown, untrusted, role-less, revoked
# and disallowed operators are refused with 401/403 and a reason; a path
# on the appliance is never opened for a remote caller; every call is in
# the audit log; GET /metrics speaks the Prometheus text format. A client
# that is no operator is refused before its request's body is read.
. "$top_srcdir/tests/integration/lib.sh"

command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v sqlite3 >/dev/null 2>&1 || skip_all "sqlite3 not installed"

est_setup adm
hsmca ca download 2 --chain >"$CADIR/issuing-chain.pem" || bail "ca download"

# The operators' CA and its operators; a stranger's CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$CADIR/opca.key" -subj "/CN=Operators CA" -days 100 \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	-out "$CADIR/opca.pem" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$CADIR/evilca.key" -subj "/CN=Operators CA" -days 100 \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	-out "$CADIR/evilca.pem" 2>/dev/null
for who in alice factory-1 audrey mallory; do
	bootstrap_cert "$who" "$CADIR/opca"
done
bootstrap_cert eve "$CADIR/evilca"
# An operator whose certificate hsmca itself issued (so it can be revoked).
make_csr ops-bob ec:P-256 /CN=ops-bob 2>/dev/null
hsmca issue --csr "$WORK/ops-bob.csr" --profile device --chain >"$WORK/ops-bob.pem" ||
	bail "issue ops-bob"
BOB_SERIAL=$(openssl x509 -in "$WORK/ops-bob.pem" -noout -serial | sed 's/serial=//')

cat "$CADIR/opca.pem" "$CADIR/issuing-chain.pem" >"$CADIR/operators.pem"
cat >>"$CONF" <<EOC

[admin]
listen = 127.0.0.1:0
client-ca = $CADIR/operators.pem
admins = CN=alice
operators = CN=factory-1, CN=ops-bob
auditors = CN=audrey
EOC

hsmcad_start
[ -n "$ADMIN_PORT" ] || bail "no admin listener in the log"
SERVER="https://localhost:$ADMIN_PORT"

# as WHO CMD...: hsmca through the admin API with WHO's certificate.
as() {
	who=$1; shift
	case $who in
	ops-bob) c="$WORK/ops-bob.pem"; k="$WORK/ops-bob.key" ;;
	*) c="$WORK/$who.boot.pem"; k="$WORK/$who.boot.key" ;;
	esac
	"$HSMCA" --server "$SERVER" --cert "$c" --key "$k" --cacert "$CADIR/root.pem" "$@"
}

# api WHO BODY: POST /api/v1/run with curl; body in last.out, status in STATUS.
api() {
	who=$1; shift
	set -- --cert "$WORK/$who.boot.pem" --key "$WORK/$who.boot.key" \
		-H 'Content-Type: application/json' --data-binary "$1"
	STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" \
		"$@" "$SERVER/api/v1/run")
}

# ---- the same commands, the same output ----
hsmca ca list >"$WORK/local.txt"
expect_ok "an auditor lists the CA generations remotely" as audrey ca list
check "... exactly as the appliance prints them" cmp -s "$WORK/local.txt" "$WORK/last.out"
hsmca --json cert list >"$WORK/local.json"
expect_ok "cert list --json remotely" as audrey --json cert list
check "... byte for byte the local JSON" cmp -s "$WORK/local.json" "$WORK/last.out"
hsmca ca show 2 >"$WORK/local.txt"
run as audrey ca show 2
check "ca show 2 remotely equals ca show 2 locally" cmp -s "$WORK/local.txt" "$WORK/last.out"

# ---- files travel with the request ----
make_csr dev-9 ec:P-256 /CN=dev-9 2>/dev/null
expect_ok "an operator issues from a CSR file it sends" \
	as factory-1 issue --csr "$WORK/dev-9.csr" --profile device --out "$WORK/dev-9.pem"
check "... the certificate is written here, at the path given" test -s "$WORK/dev-9.pem"
check "... and the message names that path" grep -q "to $WORK/dev-9.pem" "$WORK/last.out"
run openssl verify -CAfile "$CADIR/root.pem" -untrusted "$CADIR/issuing-chain.pem" "$WORK/dev-9.pem"
check "... openssl verifies it" grep -q ': OK' "$WORK/last.out"
cat "$WORK/dev-9.pem" "$CADIR/issuing-chain.pem" >"$WORK/dev-9-chain.pem"
run certtool --verify-chain --infile "$WORK/dev-9-chain.pem"
check "... certtool verifies the chain" grep -q 'Chain verification output: Verified' "$WORK/last.out"
DEV9=$(openssl x509 -in "$WORK/dev-9.pem" -noout -serial | sed 's/serial=//')
check "... and it is recorded with the operator as requester" \
	sh -c "sqlite3 '$CADIR/hsmca.db' \"SELECT requester FROM cert WHERE serial = lower('$DEV9')\" | grep -q 'admin:CN=factory-1'"

printf '# serials to revoke\n%s\n' "$DEV9" >"$WORK/serials.txt"
expect_ok "revoke --serials FILE sends the file" \
	as factory-1 revoke --serials "$WORK/serials.txt" --reason keyCompromise
check "... and revokes what it lists" grep -q 'revoked 1 certificate' "$WORK/last.out"
check "... in the store" sh -c "[ \"\$(sqlite3 '$CADIR/hsmca.db' \"SELECT status FROM cert WHERE serial = lower('$DEV9')\")\" = revoked ]"

rm -f /tmp/hsmca-admin-never.$$
api factory-1 "{\"argv\": [\"crl\", \"--ca\", \"2\", \"--out\", \"/tmp/hsmca-admin-never.$$\"]}"
check "a path on the appliance: the command refuses it" \
	sh -c "[ '$STATUS' = 200 ] && grep -q 'a path on the appliance is not accepted' '$WORK/last.out' && grep -q '\"exit\": *2' '$WORK/last.out'"
check "... and nothing is written there" test ! -e /tmp/hsmca-admin-never.$$
api factory-1 '{"argv": ["issue", "--csr", "/etc/passwd", "--profile", "device"]}'
check "an input path on the appliance is never read" \
	sh -c "grep -q 'a path on the appliance is not accepted' '$WORK/last.out' && ! grep -q root: '$WORK/last.out'"

# ---- a proof of possession, as a cloud service checks it ----
CODE=3F8A0C1D2E4B5A69788796A5B4C3D2E1
expect_ok "an operator makes a proof of possession remotely (DER)" \
	as factory-1 ca pop 2 --code "$CODE" --der --out "$WORK/pop.cer"
check "... the .cer is written here" test -s "$WORK/pop.cer"
check "... its subject CN is the verification code" \
	sh -c "openssl x509 -inform DER -in '$WORK/pop.cer' -noout -subject | grep -q 'CN *= *$CODE'"
openssl x509 -inform DER -in "$WORK/pop.cer" -out "$WORK/pop.pem"
run openssl verify -CAfile "$CADIR/root.pem" -untrusted "$CADIR/issuing-chain.pem" "$WORK/pop.pem"
check "... and it chains to generation 2" grep -q ': OK' "$WORK/last.out"
check "... audit-logged with the operator and the code" \
	sh -c "'$HSMCA' -c '$CONF' --json audit list --action pop | grep -A4 'admin:CN=factory-1' | grep -q '$CODE'"
expect_fail "a bad code is refused before anything is signed" 1 "code" \
	as factory-1 ca pop 2 --code 'bad code!'

# ---- roles ----
expect_fail "an auditor cannot issue" 6 "needs the operator role" \
	as audrey issue --csr "$WORK/dev-9.csr" --profile device
expect_fail "an auditor cannot disallow" 6 "needs the operator role" \
	as audrey disallow add some-device
expect_fail "a command that runs only on the appliance is refused by the CLI" 2 \
	"runs only on the appliance" as alice token init --so-pin-source env:X
api alice '{"argv": ["token", "init"]}'
check "... and by the server (403)" sh -c "[ '$STATUS' = 403 ] && grep -q 'runs only on the appliance' '$WORK/last.out'"
api alice '{"argv": ["ca", "init"]}'
check "ca init is not remote either (403)" sh -c "[ '$STATUS' = 403 ]"

# ---- identities ----
STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" \
	-H 'Content-Type: application/json' --data-binary '{"argv":["ca","list"]}' "$SERVER/api/v1/run")
check "no client certificate: 401" sh -c "[ '$STATUS' = 401 ] && grep -q 'needs a client certificate' '$WORK/last.out'"
expect_fail "a certificate from another CA (same name): refused" 6 \
	"not from the operators' CA" as eve ca list
expect_fail "a trusted certificate without a role: refused" 6 \
	"no role for CN=mallory" as mallory ca list
# A gateway's edge CA (CA:TRUE, pathlen 0, certified by this CA for the
# gateway's own devices) signs an "alice" of its own. client-ca holds this
# CA's chain, so the chain verifies; it is refused all the same.
csr_b64 gw ec:P-256 /CN=gateway-7
est_post edge/simpleenroll "$WORK/gw.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
[ "$STATUS" = 200 ] || bail "edge CA enrollment ($STATUS)"
p7_certs >"$WORK/gw.pem"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=alice \
	-keyout "$WORK/fake-alice.key" -out "$WORK/fake-alice.csr" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' >"$WORK/fake.ext"
openssl x509 -req -in "$WORK/fake-alice.csr" -CA "$WORK/gw.pem" -CAkey "$WORK/gw.key" \
	-CAcreateserial -days 5 -extfile "$WORK/fake.ext" -out "$WORK/fake-alice.pem" 2>/dev/null
cat "$WORK/gw.pem" >>"$WORK/fake-alice.pem"
openssl verify -CAfile "$CADIR/operators.pem" -untrusted "$WORK/gw.pem" "$WORK/fake-alice.pem" \
	>/dev/null 2>&1 || bail "the forged chain does not even verify"
gens=$(sqlite3 "$CADIR/hsmca.db" 'SELECT count(*) FROM ca_generation')
expect_fail "an 'alice' signed by a gateway's edge CA: refused (403)" 6 "edge CA" \
	"$HSMCA" --server "$SERVER" --cert "$WORK/fake-alice.pem" --key "$WORK/fake-alice.key" \
	--cacert "$CADIR/root.pem" ca rotate
check "... and nothing rotated" \
	test "$(sqlite3 "$CADIR/hsmca.db" 'SELECT count(*) FROM ca_generation')" -eq "$gens"
expect_ok "ops-bob (issued by hsmca) is an operator" as ops-bob cert list
hsmca revoke "$BOB_SERIAL" --reason keyCompromise >/dev/null || bail "revoke ops-bob"
expect_fail "... once revoked it cannot reach the admin API" 6 \
	"client certificate .* is revoked" as ops-bob cert list
expect_ok "an operator puts an auditor on the disallow list" as factory-1 disallow add audrey
expect_fail "... and the auditor is locked out" 6 "disallow" as audrey ca list
expect_ok "... until removed" as factory-1 disallow remove audrey
expect_ok "... then it is back" as audrey ca list

# ---- who is no operator is answered before the body is read ----
# The headers of a 40 MB body and its first bytes, then the client only
# listens (-ign_eof): the answer comes without the rest, which never does
# (a front that read the body first answered nothing, and dropped the
# connection at its deadline).
printf 'POST /api/v1/run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 40000000\r\n\r\n{"argv": ["ca", "list"], "files": {"@in:0": "AAAA' \
	>"$WORK/partial.req"
# partial [-cert C -key K]: that request; the answer in last.out.
partial() {
	openssl s_client -quiet -ign_eof -connect "127.0.0.1:$ADMIN_PORT" \
		-CAfile "$CADIR/root.pem" "$@" <"$WORK/partial.req" >"$WORK/last.out" 2>"$WORK/last.err"
}
partial
check "no client certificate, a 40 MB body announced and not sent: 401 all the same" \
	grep -q '^HTTP/1.1 401 ' "$WORK/last.out"
check "... with a challenge (WWW-Authenticate)" \
	grep -q '^WWW-Authenticate: ClientCertificate realm="hsmca admin API"' "$WORK/last.out"
check "... and the reason, one line of JSON" \
	grep -qx '{"error":"the admin API needs a client certificate"}' "$WORK/last.out"
partial -cert "$WORK/eve.boot.pem" -key "$WORK/eve.boot.key"
check "a certificate from another CA: 403 before the body" \
	sh -c "grep -q '^HTTP/1.1 403 ' '$WORK/last.out' && grep -q 'not from the operators' '$WORK/last.out'"
partial -cert "$WORK/mallory.boot.pem" -key "$WORK/mallory.boot.key"
check "a trusted certificate without a role: 403 before the body" \
	sh -c "grep -q '^HTTP/1.1 403 ' '$WORK/last.out' && grep -q 'no role for CN=mallory' '$WORK/last.out'"
check "... logged with the path" \
	grep -q 'admin admin:CN=mallory .* /api/v1/run: 403 .*(before the body)' "$CADIR/hsmcad.log"
printf 'HEAD /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n' >"$WORK/partial.req"
partial
check "HEAD without a certificate: 401, headers only" \
	sh -c "grep -q '^HTTP/1.1 401 ' '$WORK/last.out' && ! grep -q 'error' '$WORK/last.out'"

# Four clients without a certificate post 40 MiB each at once: the front's
# peak memory grows by less than one body (it grew by all four).
FRONT=$(child_named hsmcad-front)
head -c $((40 * 1024 * 1024)) /dev/zero >"$WORK/big.json"
hwm0=$(awk '/^VmHWM:/ { print $2 }' "/proc/$FRONT/status")
pids=
for i in 1 2 3 4; do
	curl -s -o /dev/null -w '%{http_code}\n' --cacert "$CADIR/root.pem" \
		-H 'Content-Type: application/json' --data-binary "@$WORK/big.json" \
		"$SERVER/api/v1/run" >"$WORK/big.$i" 2>&1 &
	pids="$pids $!"
done
# shellcheck disable=SC2086
wait $pids
hwm1=$(awk '/^VmHWM:/ { print $2 }' "/proc/$FRONT/status")
rm -f "$WORK/big.json"
check "four 40 MiB posts without a certificate: four 401s" \
	test "$(cat "$WORK"/big.[1-4] | grep -c '^401$')" -eq 4
check "... and the front's peak memory grew by less than one body ($(( (hwm1 - hwm0) / 1024 )) MiB)" \
	test $((hwm1 - hwm0)) -lt $((40 * 1024))

# ---- bad requests ----
api alice 'not json'
check "a body that is not JSON: 400" sh -c "[ '$STATUS' = 400 ] && grep -q 'not JSON' '$WORK/last.out'"
api alice '{"argv": "ca list"}'
check "argv not an array: 400" sh -c "[ '$STATUS' = 400 ]"
api alice '{"argv": ["ca", "list"], "extra": 1}'
check "an unknown member: 400" sh -c "[ '$STATUS' = 400 ] && grep -q 'unknown member' '$WORK/last.out'"
api alice '{"argv": ["nosuch"]}'
check "an unknown command: 400" sh -c "[ '$STATUS' = 400 ] && grep -q 'unknown command' '$WORK/last.out'"
STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" \
	--cert "$WORK/alice.boot.pem" --key "$WORK/alice.boot.key" "$SERVER/nope")
check "an unknown path: 404" sh -c "[ '$STATUS' = 404 ]"

# ---- a factory station's config: only [remote] ----
cat >"$WORK/station.conf" <<EOC
[remote]
server = $SERVER
cert = $WORK/factory-1.boot.pem
key = $WORK/factory-1.boot.key
ca = $CADIR/root.pem
EOC
expect_ok "a config with only [remote] runs commands remotely" \
	"$HSMCA" -c "$WORK/station.conf" ca list
check "... with the same output" sh -c "'$HSMCA' -c '$CONF' ca list | cmp -s - '$WORK/last.out'"
expect_fail "... and says so for a command that needs the appliance" 2 \
	"runs only on the appliance" "$HSMCA" -c "$WORK/station.conf" token init

# ---- the audit log has every call ----
hsmca --json audit list --limit 1000 >"$WORK/audit.json"
check "admin calls are audit-logged with the operator" \
	grep -q '"actor": "admin:CN=factory-1' "$WORK/audit.json"
check "... as admin-call records" grep -q '"action": "admin-call"' "$WORK/audit.json"
check "refused calls too" sh -c "grep -A6 'admin:CN=mallory' '$WORK/audit.json' | grep -q refuse"
expect_ok "the chain still verifies" hsmca audit verify
expect_ok "... and through the admin API, the checkpoints' keys from the appliance's token" \
	as audrey audit verify

# ---- metrics ----
bootstrap_cert dev-1
csr_b64 dev-1 ec:P-256 /CN=dev-1
est_post simpleenroll "$WORK/dev-1.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
[ "$STATUS" = 200 ] || bail "enroll dev-1 ($STATUS)"
printf 'garbage' >"$WORK/bad.b64"
est_post simpleenroll "$WORK/bad.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
STATUS=$(curl -s -o "$WORK/metrics.txt" -w '%{http_code}' --cacert "$CADIR/root.pem" \
	--cert "$WORK/audrey.boot.pem" --key "$WORK/audrey.boot.key" "$SERVER/metrics")
check "GET /metrics: 200" test "$STATUS" = 200
check "... issued by profile" grep -q '^hsmca_certificates_issued_total{profile="device"} 1$' "$WORK/metrics.txt"
check "... refused by profile and reason" \
	grep -q '^hsmca_certificates_refused_total{profile="device",reason="bad_request"} 1$' "$WORK/metrics.txt"
# Two signatures: dev-1, and the gateway's edge CA above.
check "... a signing latency histogram" grep -q '^hsmca_signing_seconds_count 2$' "$WORK/metrics.txt"
check "... its +Inf bucket equals the count" grep -q '^hsmca_signing_seconds_bucket{le="+Inf"} 2$' "$WORK/metrics.txt"
check "... every generation's status" \
	grep -q '^hsmca_ca_generation_status{generation="2",kind="issuing",status="active"} 1$' "$WORK/metrics.txt"
NA=$(openssl x509 -in "$CADIR/issuing-chain.pem" -noout -enddate | sed 's/notAfter=//')
WANT=$(( $(date -d "$NA" +%s) - $(date +%s) ))
GOT=$(sed -n 's/^hsmca_ca_generation_expiry_seconds{generation="2"} //p' "$WORK/metrics.txt")
check "... and seconds until it expires ($GOT, wanted ~$WANT)" \
	sh -c "[ -n '$GOT' ] && [ \$(( $GOT - $WANT )) -le 60 ] && [ \$(( $WANT - $GOT )) -le 60 ]"
check "... HSM sessions and errors" sh -c "grep -q '^hsmca_hsm_sessions_in_use 0$' '$WORK/metrics.txt' && grep -q '^hsmca_hsm_errors_total 0$' '$WORK/metrics.txt'"
check "... and every sample line is well-formed" \
	sh -c "! grep -v '^#' '$WORK/metrics.txt' | grep -Ev '^[a-z_]+(\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\})? -?[0-9][0-9.e+-]*$'"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" \
	--cert "$WORK/mallory.boot.pem" --key "$WORK/mallory.boot.key" "$SERVER/metrics")
check "metrics need a role too (403)" test "$STATUS" = 403
STATUS=$(curl -s -I -o "$WORK/hdr" -w '%{http_code}' --cacert "$CADIR/root.pem" \
	--cert "$WORK/audrey.boot.pem" --key "$WORK/audrey.boot.key" "$SERVER/metrics")
check "HEAD /metrics: 200, headers only" \
	sh -c "[ '$STATUS' = 200 ] && grep -qi '^Content-Type: text/plain; version=0.0.4' '$WORK/hdr'"
check "... with the Content-Length a GET gets" \
	sh -c "tr -d '\r' <'$WORK/hdr' | grep -Eqi '^Content-Length: [1-9][0-9]{2,}$'"
raw_request "$ADMIN_PORT" 'HEAD /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' \
	"$CADIR/root.pem" "$WORK/audrey.boot.pem" "$WORK/audrey.boot.key"
check "... and not one byte of body after the headers (a kept connection would read it)" \
	sh -c "grep -q '^HTTP/1.1 200 ' '$WORK/last.out' && grep -qi '^Content-Length: [1-9]' '$WORK/last.out'" &&
	headers_only
STATUS=$(curl -s -D "$WORK/hdr" -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" \
	--cert "$WORK/alice.boot.pem" --key "$WORK/alice.boot.key" -X PUT \
	-H 'Content-Type: application/json' --data-binary '{"argv": ["ca", "list"]}' "$SERVER/api/v1/run")
check "PUT /api/v1/run: 405 with Allow: POST and the reason" \
	sh -c "[ '$STATUS' = 405 ] && grep -qi '^Allow: POST' '$WORK/hdr' && grep -qx '{\"error\":\"use POST\"}' '$WORK/last.out'"

# ---- CA changes through the API take effect at once ----
expect_fail "an operator may not rotate the CA" 6 "needs the admin role" as factory-1 ca rotate
expect_ok "an admin rotates the CA remotely" as alice ca rotate
check "... a new generation 3, inactive" sh -c "'$HSMCA' -c '$CONF' --json ca show 3 | grep -q '\"status\": \"inactive\"'"
expect_ok "... and activates it" as alice ca activate 3
check "... which warns that no proof of possession was made" grep -q 'proof of possession' "$WORK/last.err"
hsmca ca download 3 >"$WORK/gen3.pem"
csr_b64 dev-1b ec:P-256 /CN=dev-1
est_post simpleenroll "$WORK/dev-1b.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
p7_certs >"$WORK/dev-1b.pem"
run openssl verify -partial_chain -CAfile "$WORK/gen3.pem" "$WORK/dev-1b.pem"
check "the next enrollment is issued by generation 3's key at once" grep -q ': OK' "$WORK/last.out"
hsmca ca download 2 >"$WORK/gen2.pem"
run openssl verify -partial_chain -CAfile "$WORK/gen2.pem" "$WORK/dev-1b.pem"
check "... not by generation 2's" sh -c "! grep -q ': OK' '$WORK/last.out'"

done_testing
