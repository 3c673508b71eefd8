#!/bin/sh
# CA rotation in generations, walked through two years with the
# injectable clock (HSMCA_NOW): `hsmca ca tick` and hsmcad's timer create
# the next generation renew-before (90d) ahead of the active one's
# expiry, activate it activation-delay (45d) later and retire the old
# one, which stays in cacerts and keeps its CRL until it expires. At each
# step: the generations' statuses, exactly which certificates cacerts
# returns, who issues, and hsmcad's expiry warnings. Then ca rotate,
# activate (and its proof-of-possession warning), revoke, cert list
# --issuer --status valid; and rotation with an outside root.
#
# The clock is anchored so that the new generation activates at the real
# time: certificates enrolled then verify with certtool, which has no
# option to verify at another time.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v jq >/dev/null 2>&1 || skip_all "jq not installed"

DAY=86400
REAL=$(date +%s)
T0=$((REAL - 685 * DAY))

# at EPOCH: every hsmca and hsmcad started from here on lives at EPOCH.
at() {
	HSMCA_NOW=$1
	export HSMCA_NOW
}

# gen_field ID COLUMN: a column of a generation as stored.
gen_field() {
	sqlite3 "$CADIR/hsmca.db" "SELECT $2 FROM ca_generation WHERE id = $1"
}

# status ID: the status `ca list --json` shows (expired from the clock).
status() {
	hsmca --json ca list | jq -r ".[] | select(.id == $1) | .status"
}

# wait_log PATTERN: poll hsmcad's log until a line matches (10 s).
wait_log() {
	i=0
	while ! grep -Eq -- "$1" "$CADIR/hsmcad.log"; do
		i=$((i + 1))
		[ $i -lt 200 ] || return 1
		sleep 0.05
	done
}

# cacerts_are PEM...: GET cacerts holds exactly these certificates.
cacerts_are() {
	curl -sf -o "$WORK/last.out" --cacert "$CADIR/root.pem" "$URL/cacerts" || return 1
	p7_certs >"$WORK/cacerts.pem" || return 1
	awk '/^-----BEGIN / { n++ } { print > "'"$WORK"'/cacert." n ".pem" }' "$WORK/cacerts.pem"
	for f in "$WORK"/cacert.*.pem; do
		openssl x509 -in "$f" -noout -fingerprint -sha256
	done | sort >"$WORK/got.fp"
	rm -f "$WORK"/cacert.*.pem
	for f in "$@"; do
		openssl x509 -in "$f" -noout -fingerprint -sha256
	done | sort >"$WORK/want.fp"
	cmp -s "$WORK/got.fp" "$WORK/want.fp"
}

# enroll NAME: simpleenroll CN=NAME with its factory certificate; the
# certificate in $WORK/NAME.pem.
enroll() {
	csr_b64 "$1" ec:P-256 "/CN=$1"
	est_post simpleenroll "$WORK/$1.b64" --cert "$WORK/$1.boot.pem" --key "$WORK/$1.boot.key"
	[ "$STATUS" = 200 ] || return 1
	p7_certs >"$WORK/$1.pem"
}

# issued_by CERT GEN-PEM: GEN's key signed CERT (the generations share a
# subject: only the key tells them apart).
issued_by() {
	openssl verify -attime "$HSMCA_NOW" -partial_chain -CAfile "$2" "$1" >/dev/null 2>&1
}

# verifies CERT GEN-PEM: openssl verify at HSMCA_NOW and certtool (real
# time) both accept the chain CERT, GEN, root.
verifies() {
	openssl verify -attime "$HSMCA_NOW" -CAfile "$CADIR/root.pem" -untrusted "$2" "$1" \
		>/dev/null 2>&1 || return 1
	cat "$1" "$2" "$CADIR/root.pem" >"$WORK/chain.tmp"
	certtool --verify-chain --infile "$WORK/chain.tmp" 2>&1 | grep -q "Chain verification output: Verified"
}

# daemon_stop: stop hsmcad; its log holds no sanitizer report (ASan
# builds: a leak shows at exit).
daemon_stop() {
	hsmcad_stop
	check "hsmcad exits without a sanitizer report" \
		sh -c "! grep -q 'Sanitizer' '$CADIR/hsmcad.log'"
}

# factory_cert CN: a factory certificate valid for years around now
# (certtool templates take dates; openssl x509 -req cannot backdate).
factory_cert() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/$1.boot.key" 2>/dev/null
	cat >"$WORK/$1.tmpl" <<EOT
cn = "$1"
tls_www_client
signing_key
activation_date = "$(date -u -d @$((REAL - 800 * DAY)) '+%Y-%m-%d %H:%M:%S')"
expiration_date = "$(date -u -d @$((REAL + 800 * DAY)) '+%Y-%m-%d %H:%M:%S')"
EOT
	certtool --generate-certificate --load-privkey "$WORK/$1.boot.key" \
		--load-ca-certificate "$CADIR/factory.pem" --load-ca-privkey "$CADIR/factory.key" \
		--template "$WORK/$1.tmpl" --outfile "$WORK/$1.boot.pem" >/dev/null 2>&1
}

# ---- a CA whose root is in the token, initialized 685 days ago ----

at "$T0"
est_setup rot
sed -i 's/^listen = 127.0.0.1:0$/&\nhttp-listen = 127.0.0.1:0/' "$CONF"
# The factory CA, valid from long ago.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CADIR/factory.key" 2>/dev/null
cat >"$WORK/factory.tmpl" <<EOT
cn = "Factory CA rot"
ca
cert_signing_key
activation_date = "$(date -u -d @$((REAL - 900 * DAY)) '+%Y-%m-%d %H:%M:%S')"
expiration_date = "$(date -u -d @$((REAL + 900 * DAY)) '+%Y-%m-%d %H:%M:%S')"
EOT
certtool --generate-self-signed --load-privkey "$CADIR/factory.key" --template "$WORK/factory.tmpl" \
	--outfile "$CADIR/factory.pem" >/dev/null 2>&1 || bail "cannot make the factory CA"
for d in dev-a dev-b dev-c dev-d dev-e; do
	factory_cert "$d" || bail "cannot make a factory certificate for $d"
done

hsmca ca download 2 >"$WORK/gen2.pem"
GEN2_END=$(gen_field 2 not_after)
check "generation 2 lives 730 days from the initialization" test "$GEN2_END" -eq $((T0 + 730 * DAY))
C=$((GEN2_END - 90 * DAY))	# renew-before: the next generation's creation

expect_ok "ca tick at the initialization" hsmca ca tick
check "it has nothing to do" grep -qx "nothing to do" "$WORK/last.out"
at $((T0 + 300 * DAY))
expect_ok "ca tick 300 days in" hsmca ca tick
check "still nothing to do" grep -qx "nothing to do" "$WORK/last.out"
at $((C - 1))
expect_ok "ca tick one second before expiry - 90d" hsmca ca tick
check "creates nothing yet" test "$(sqlite3 "$CADIR/hsmca.db" 'SELECT count(*) FROM ca_generation')" -eq 2

# A certificate issued under generation 2, for the revocation list later.
make_csr cli-a ec:P-256 /CN=cli-a 2>/dev/null
hsmca issue --csr "$WORK/cli-a.csr" --profile device --out "$WORK/cli-a.pem" >/dev/null

at "$C"
expect_ok "ca tick at expiry - 90d" hsmca ca tick
check "it creates generation 3, signed by the root, inactive until +45d" \
	grep -q "CA generation 3 created (signed by the root), inactive until" "$WORK/last.out"
check "generation 3 is inactive" test "$(status 3)" = inactive
check "generation 2 is still active" test "$(status 2)" = active
check "generation 3 activates exactly 45 days after its creation" \
	test "$(gen_field 3 activate_at)" -eq $((C + 45 * DAY))
check "its key was generated in the token (a new key, not generation 2's)" \
	sh -c "test \"\$(sqlite3 '$CADIR/hsmca.db' 'SELECT count(DISTINCT key_uri) FROM ca_generation')\" -eq 3"
hsmca ca download 3 >"$WORK/gen3.pem"
expect_ok "generation 3 verifies against the root (openssl)" \
	openssl verify -attime "$C" -CAfile "$CADIR/root.pem" "$WORK/gen3.pem"
run openssl x509 -in "$WORK/gen3.pem" -noout -ext crlDistributionPoints
check "generation 3 names the root's CRL (crl-url, generation 1), as generation 2 does" \
	sh -c "grep -qx ' *URI:http://127.0.0.1:8080/crl/1.crl' '$WORK/last.out' &&
	       openssl x509 -in '$WORK/gen2.pem' -noout -ext crlDistributionPoints |
	       grep -qx ' *URI:http://127.0.0.1:8080/crl/1.crl'"
check "generation 3 lives 730 days" test "$(gen_field 3 not_after)" -eq $((C + 730 * DAY))
hsmca audit list >"$WORK/audit.txt"
check "the creation is in the audit log" grep -q 'ca-rotate.*gen:3' "$WORK/audit.txt"
expect_ok "a second tick at the same time" hsmca ca tick
check "creates no second generation" test "$(sqlite3 "$CADIR/hsmca.db" 'SELECT count(*) FROM ca_generation')" -eq 3
expect_fail "ca rotate refuses while generation 3 waits" 1 "generation 3 already waits to take over" \
	hsmca ca rotate

# ---- hsmcad, 9 days after the creation: generation 2 still issues ----

at $((C + 9 * DAY))
# hsmcad's TLS certificate, valid at the real time (curl checks it).
hsmca issue --csr "$CADIR/server.csr" --profile server --chain >"$CADIR/server-chain.pem"
hsmcad_start
check "cacerts: the root, generation 2 and the new generation 3" \
	cacerts_are "$CADIR/root.pem" "$WORK/gen2.pem" "$WORK/gen3.pem"
if enroll dev-a; then ok "dev-a enrolls"; else not_ok "dev-a enrolls (HTTP $STATUS)"; fi
check "dev-a is issued by generation 2" issued_by "$WORK/dev-a.pem" "$WORK/gen2.pem"
check "dev-a verifies (openssl verify, certtool)" verifies "$WORK/dev-a.pem" "$WORK/gen2.pem"
check "no expiry warning 81 days ahead" sh -c "! grep -q 'expires in' '$CADIR/hsmcad.log'"
daemon_stop

at $((C + 45 * DAY - 1))
expect_ok "ca tick one second before the activation" hsmca ca tick
check "activates nothing yet" test "$(status 3)" = inactive

# ---- hsmcad at the activation (the real time): its timer activates ----

at $((C + 45 * DAY))
hsmcad_start
check "hsmcad's rotation step activates generation 3" \
	wait_log "CA rotation: CA generation 3 activated \(no proof of possession"
check "and retires generation 2" wait_log "CA rotation: CA generation 2 retired \(inactive\)"
check "cacerts is rebuilt with generation 3 active" \
	wait_log "CA generations changed: cacerts rebuilt with 3 certificates, active generation 3"
check "cacerts still carries the retired generation 2" \
	cacerts_are "$CADIR/root.pem" "$WORK/gen2.pem" "$WORK/gen3.pem"
if enroll dev-b; then ok "dev-b enrolls after the activation"; else not_ok "dev-b enrolls (HTTP $STATUS)"; fi
check "dev-b is issued by generation 3" issued_by "$WORK/dev-b.pem" "$WORK/gen3.pem"
check "dev-b verifies (openssl verify, certtool)" verifies "$WORK/dev-b.pem" "$WORK/gen3.pem"
check "generation 2 is inactive, 3 active" test "$(status 2) $(status 3)" = "inactive active"
hsmca audit list | grep 'ca-activate' >"$WORK/audit.txt"
check "the activation is in the audit log, by hsmcad" grep -q 'hsmcad.*gen:3' "$WORK/audit.txt"
# The retired generation keeps its CRL and its OCSP answers.
i=0
until curl -sf -o "$WORK/gen2.crl" "http://127.0.0.1:$HTTP_PORT/crl/2.crl" &&
	curl -sf -o "$WORK/gen3.crl" "http://127.0.0.1:$HTTP_PORT/crl/3.crl"; do
	i=$((i + 1)); [ $i -lt 100 ] || break; sleep 0.1
done
expect_ok "the retired generation 2 still serves its CRL, signed by its key" \
	openssl crl -inform DER -in "$WORK/gen2.crl" -CAfile "$WORK/gen2.pem" -noout
expect_ok "generation 3 serves its CRL" \
	openssl crl -inform DER -in "$WORK/gen3.crl" -CAfile "$WORK/gen3.pem" -noout
i=0
while :; do
	run openssl ocsp -issuer "$WORK/gen2.pem" -cert "$WORK/dev-a.pem" \
		-url "http://127.0.0.1:$HTTP_PORT/ocsp" -VAfile "$WORK/gen2.pem" -validity_period 600
	grep -q "dev-a.pem: good" "$WORK/last.out" && break
	i=$((i + 1)); [ $i -lt 100 ] || break; sleep 0.1
done
check "OCSP still answers for dev-a under generation 2: good" grep -q "dev-a.pem: good" "$WORK/last.out"
daemon_stop

# ---- 25 days before generation 2 expires: hsmcad warns ----

at $((GEN2_END - 25 * DAY))
hsmcad_start
check "hsmcad warns that generation 2 expires in 25 days" \
	wait_log "warning: CA issuing generation 2 \(.*Device CA rot.*\) expires in 25 days"
check "it warns about nothing else" test "$(grep -c 'warning: CA' "$CADIR/hsmcad.log")" -eq 1
check "cacerts: unchanged" cacerts_are "$CADIR/root.pem" "$WORK/gen2.pem" "$WORK/gen3.pem"
daemon_stop

# ---- the day after generation 2 expired ----

at $((GEN2_END + DAY))
hsmcad_start
check "hsmcad logs an error: generation 2 expired" \
	wait_log "error: CA issuing generation 2 \(.*\) expired at "
check "its rotation step marks generation 2 expired" \
	wait_log "CA rotation: CA issuing generation 2 expired at"
check "cacerts: the root and generation 3 only" cacerts_are "$CADIR/root.pem" "$WORK/gen3.pem"
if enroll dev-c; then ok "dev-c enrolls"; else not_ok "dev-c enrolls (HTTP $STATUS)"; fi
check "dev-c is issued by generation 3" issued_by "$WORK/dev-c.pem" "$WORK/gen3.pem"
daemon_stop
check "generation 2 is stored as expired" test "$(gen_field 2 status)" = expired
run hsmca ca list
check "ca list: root active, 2 expired, 3 active" \
	sh -c "grep -Eq '^1 +root +active ' '$WORK/last.out' && grep -Eq '^2 +issuing +expired ' '$WORK/last.out' &&
	       grep -Eq '^3 +issuing +active ' '$WORK/last.out'"

# ---- by hand: rotate, activate, revoke ----

at $((GEN2_END + 2 * DAY))
make_csr cli-b ec:P-256 /CN=cli-b 2>/dev/null
hsmca issue --csr "$WORK/cli-b.csr" --profile device --out "$WORK/cli-b.pem" >/dev/null
expect_ok "ca rotate" hsmca ca rotate
check "it creates generation 4, inactive for 45 days" \
	sh -c "grep -q 'CA generation 4 created (signed by the root in the token), inactive' '$WORK/last.out' &&
	       test \"\$(sqlite3 '$CADIR/hsmca.db' 'SELECT activate_at FROM ca_generation WHERE id = 4')\" -eq $((GEN2_END + 47 * DAY))"
expect_ok "ca activate 4 before its time" hsmca ca activate 4
check "warns that no proof of possession was issued for it" \
	grep -q "warning: no proof of possession was ever issued for CA generation 4" "$WORK/last.err"
check "says generation 3 is retired" grep -q "generation 3 is retired" "$WORK/last.out"
check "4 is active, 3 inactive" test "$(status 4) $(status 3)" = "active inactive"
expect_fail "activating it again is refused" 1 "already active" hsmca ca activate 4
expect_fail "activating an expired generation is refused" 1 "generation 2 is expired" hsmca ca activate 2
expect_fail "activating the root is refused" 1 "root" hsmca ca activate 1

expect_fail "ca revoke needs --reason" 2 "usage" hsmca ca revoke 3
expect_fail "an unknown reason is refused" 2 "reason" hsmca ca revoke 3 --reason bogus
before=$(sqlite3 "$CADIR/hsmca.db" 'SELECT count(*) FROM audit')
expect_ok "ca revoke 3 --reason keyCompromise" hsmca ca revoke 3 --reason keyCompromise
check "it counts the certificates to reissue" grep -q "3 certificates it issued are still valid" "$WORK/last.out"
check "generation 3 is revoked" test "$(status 3)" = revoked
hsmca audit list | grep 'ca-revoke' >"$WORK/audit.txt"
check "the revocation is in the audit log with its reason" grep -q 'gen:3.*reason keyCompromise' "$WORK/audit.txt"
check "one audit record" test "$(sqlite3 "$CADIR/hsmca.db" 'SELECT count(*) FROM audit')" -eq $((before + 1))
expect_fail "revoking it again is refused" 1 "already revoked" hsmca ca revoke 3 --reason keyCompromise
# The root's CRL lists the revoked generation: a relying party that checks
# the whole chain refuses what generation 3 issued.
gen3_serial=$(openssl x509 -in "$WORK/gen3.pem" -noout -serial | sed 's/serial=//')
expect_ok "crl --ca 1: the root's CRL" hsmca crl --ca 1 --out "$WORK/root.crl"
run openssl crl -in "$WORK/root.crl" -noout -text
check "it lists generation 3's certificate ($gen3_serial) with reason Key Compromise" \
	sh -c "grep -qi 'Serial Number: $gen3_serial' '$WORK/last.out' && grep -q 'Key Compromise' '$WORK/last.out'"
check "... and only it" test "$(grep -c 'Serial Number' "$WORK/last.out")" -eq 1
expect_ok "crl --ca 3: the revoked generation's own CRL" hsmca crl --ca 3 --out "$WORK/gen3.crl"
cat "$WORK/root.crl" "$WORK/gen3.crl" >"$WORK/crls.pem"
run openssl verify -attime "$HSMCA_NOW" -crl_check_all -CAfile "$CADIR/root.pem" \
	-untrusted "$WORK/gen3.pem" -CRLfile "$WORK/crls.pem" "$WORK/dev-b.pem"
check "openssl verify -crl_check_all refuses dev-b (issued by generation 3)" \
	grep -q "certificate revoked" "$WORK/last.err"
run certtool --crl-info --infile "$WORK/root.crl"
check "certtool reads the root's CRL: one revoked certificate" \
	grep -qi "Revoked certificates (1)" "$WORK/last.out"
run hsmca --json cert list --issuer 3 --status valid
check "cert list --issuer 3 --status valid: cli-b, dev-b and dev-c, nothing else" \
	test "$(jq -r '.[] | select(.profile != "ocsp-responder") | .subject' "$WORK/last.out" | sort | tr '\n' ' ')" = "CN=cli-b CN=dev-b CN=dev-c "
check "... besides its OCSP responder's certificates" \
	test "$(jq -r '.[] | select(.profile == "ocsp-responder") | .subject' "$WORK/last.out" | grep -vc 'OCSP')" -eq 0
run hsmca --json cert list --issuer 2 --status valid
check "generation 2's certificates all expired with it" test "$(jq length "$WORK/last.out")" -eq 0
expect_fail "a proof of possession under the revoked generation is refused" 1 "revoked" \
	hsmca ca pop 3 --code abc-123
expect_fail "activating the revoked generation is refused" 1 "generation 3 is revoked" hsmca ca activate 3

# Proof of possession first: no warning.
expect_ok "ca rotate again" hsmca ca rotate
hsmca ca download 4 >"$WORK/gen4.pem"
hsmca ca download 5 >"$WORK/gen5.pem"
expect_ok "a proof of possession for generation 5" hsmca ca pop 5 --code verify-me --out "$WORK/pop5.pem"
expect_ok "ca activate 5" hsmca ca activate 5
check "no proof-of-possession warning now" sh -c "! grep -q 'proof of possession' '$WORK/last.err'"

# ---- hsmcad follows changes made with the CLI while it runs ----

hsmcad_start
check "cacerts: the root, 4 (retired) and 5; not the revoked 3" \
	cacerts_are "$CADIR/root.pem" "$WORK/gen4.pem" "$WORK/gen5.pem"
if enroll dev-d; then ok "dev-d enrolls"; else not_ok "dev-d enrolls (HTTP $STATUS)"; fi
check "dev-d is issued by generation 5" issued_by "$WORK/dev-d.pem" "$WORK/gen5.pem"
expect_ok "ca revoke 5 (the active one) while hsmcad runs" hsmca ca revoke 5 --reason cessationOfOperation
check "it says nothing issues until another is activated" grep -q "it was the active generation" "$WORK/last.out"
# At once, before hsmcad looks at the generations again (every 2 s): its
# signer still holds generation 5, and the store refuses the serial.
rows=$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert")
csr_b64 dev-e ec:P-256 /CN=dev-e
est_post simpleenroll "$WORK/dev-e.b64" --cert "$WORK/dev-e.boot.pem" --key "$WORK/dev-e.boot.key"
check "an enrollment right after the revocation: 503, not issued under generation 5" \
	sh -c "test '$STATUS' = 503 &&
		grep -qi 'generation 5 is revoked: serial\|no active CA generation' '$WORK/last.out'"
check "... and nothing recorded" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert")" -eq "$rows"
check "hsmcad notices and rebuilds cacerts" \
	wait_log "CA generations changed: cacerts rebuilt with 2 certificates, active generation 0"
check "cacerts: the root and 4" cacerts_are "$CADIR/root.pem" "$WORK/gen4.pem"
# The root still verifies generation 5 when a client sends it along.
cat "$WORK/dev-d.pem" "$WORK/gen5.pem" >"$WORK/dev-d.chain.pem"
csr_b64 dev-d2 ec:P-256 /CN=dev-d
est_post simplereenroll "$WORK/dev-d2.b64" --cert "$WORK/dev-d.chain.pem" --key "$WORK/dev-d.key"
check "dev-d (issued by the revoked generation 5) cannot renew, even sending 5 along: 403" \
	sh -c "test '$STATUS' = 403 && grep -q 'generation 5, which is revoked' '$WORK/last.out'"
csr_b64 dev-e ec:P-256 /CN=dev-e
est_post simpleenroll "$WORK/dev-e.b64" --cert "$WORK/dev-e.boot.pem" --key "$WORK/dev-e.boot.key"
check "enrollment is refused: 503, no active generation" \
	sh -c "test '$STATUS' = 503 && grep -qi 'no active CA generation' '$WORK/last.out'"
expect_fail "hsmca issue is refused too" 1 "no active CA generation" \
	hsmca issue --csr "$WORK/cli-b.csr" --profile device
expect_ok "ca activate 4 again" hsmca ca activate 4
check "hsmcad picks it up" wait_log "active generation 4"
if enroll dev-e; then ok "dev-e enrolls under generation 4"; else not_ok "dev-e enrolls (HTTP $STATUS)"; fi
check "dev-e is issued by generation 4" issued_by "$WORK/dev-e.pem" "$WORK/gen4.pem"
daemon_stop

# ---- an outside root: the new generation waits for its certificate ----

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes \
	-keyout "$WORK/oroot.key" -subj "/CN=Outside Root/O=Elsewhere" -days 3650 \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out "$WORK/oroot.pem" 2>/dev/null
cat >"$WORK/ca.ext" <<'EOC'
basicConstraints = critical,CA:TRUE,pathlen:1
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOC
# openssl signs at the real time: import at the real time too.
new_ca ext
hsmca ca init --external --csr-out "$WORK/ext1.csr" >/dev/null
openssl x509 -req -in "$WORK/ext1.csr" -CA "$WORK/oroot.pem" -CAkey "$WORK/oroot.key" \
	-CAcreateserial -days 700 -extfile "$WORK/ca.ext" -out "$WORK/ext1.pem" 2>/dev/null
cat "$WORK/ext1.pem" "$WORK/oroot.pem" >"$WORK/ext1-chain.pem"
at $(($(date +%s) + 1))
hsmca ca import-cert --cert "$WORK/ext1-chain.pem" >/dev/null
E1_END=$(gen_field 1 not_after)
at $((E1_END - 90 * DAY))
expect_ok "ca tick at expiry - 90d under an outside root" hsmca ca tick
check "generation 2 is created pending, with what to do" \
	grep -q "CA generation 2 created, pending: get its CSR (.hsmca ca download --csr 2.) signed" "$WORK/last.out"
check "generation 2 is pending" test "$(status 2)" = pending
expect_ok "ca download --csr 2" hsmca ca download --csr 2 --out "$WORK/ext2.csr"
expect_ok "the CSR is signed by the new key in the token" openssl req -in "$WORK/ext2.csr" -noout -verify
expect_fail "ca rotate refuses while it waits" 1 "waits to take over, for its certificate" hsmca ca rotate
openssl x509 -req -in "$WORK/ext2.csr" -CA "$WORK/oroot.pem" -CAkey "$WORK/oroot.key" \
	-CAcreateserial -days 700 -extfile "$WORK/ca.ext" -out "$WORK/ext2.pem" 2>/dev/null
cat "$WORK/ext2.pem" "$WORK/oroot.pem" >"$WORK/ext2-chain.pem"
IMP=$((E1_END - 80 * DAY))
at "$IMP"
expect_ok "ca import-cert --gen 2 ten days later" hsmca ca import-cert --gen 2 --cert "$WORK/ext2-chain.pem"
check "generation 2 is inactive" test "$(status 2)" = inactive
check "it activates 45 days after the import" test "$(gen_field 2 activate_at)" -eq $((IMP + 45 * DAY))
at $((IMP + 45 * DAY))
expect_ok "ca tick 45 days after the import" hsmca ca tick
check "generation 2 activated, 1 retired" test "$(status 2) $(status 1)" = "active inactive"

# ---- a self-signed CA rotates to a new self-signed generation ----

new_ca self
hsmca ca init --self-signed >/dev/null
expect_ok "ca rotate of a self-signed CA" hsmca ca rotate
check "generation 2 is self-signed" grep -q "self-signed" "$WORK/last.out"
hsmca ca download 2 >"$WORK/self2.pem"
expect_ok "and verifies as its own root" \
	openssl verify -attime "$HSMCA_NOW" -CAfile "$WORK/self2.pem" "$WORK/self2.pem"

done_testing
