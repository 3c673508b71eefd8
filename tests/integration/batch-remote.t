#!/bin/sh
# hsmca batch sign --server: a factory station signs a batch through
# hsmcad's admin API over mutual TLS. The results are those of local
# mode: the same refusals with the same reasons, certificates that
# verify, and a re-run, remote or local, returns the certificates already
# issued and issues nothing new; a run killed with SIGKILL finishes on
# the next. Only an operator may sign.
. "$top_srcdir/tests/integration/lib.sh"

command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v sqlite3 >/dev/null 2>&1 || skip_all "sqlite3 not installed"

est_setup brm
hsmca ca download 2 >"$WORK/ica.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$CADIR/opca.key" -subj "/CN=Operators CA" -days 100 \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	-out "$CADIR/opca.pem" 2>/dev/null
bootstrap_cert line-1 "$CADIR/opca"
bootstrap_cert audrey "$CADIR/opca"
cat >>"$CONF" <<EOC

[admin]
listen = 127.0.0.1:0
client-ca = $CADIR/opca.pem
operators = CN=line-1
auditors = CN=audrey
EOC
hsmcad_start
[ -n "$ADMIN_PORT" ] || bail "no admin listener"
cat >"$WORK/station.conf" <<EOC
[remote]
server = https://localhost:$ADMIN_PORT
cert = $WORK/line-1.boot.pem
key = $WORK/line-1.boot.key
ca = $CADIR/root.pem
EOC

# field FILE DEVICE COLUMN: a column of a results.csv (2 serial,
# 3 sha256, 4 status, 5 reason).
field() {
	awk -F, -v d="$2" -v c="$3" '$1 == d { print $c }' "$1"
}

IN=$WORK/in
mkdir -p "$IN"
i=1
while [ $i -le 24 ]; do
	make_csr "dev-$i" ec:P-256 "/CN=dev-$i" 2>/dev/null
	cp "$WORK/dev-$i.csr" "$IN/dev-$i.csr"
	i=$((i + 1))
done
echo "not a CSR" >"$IN/garbage.csr"
make_csr weak rsa:1024 "/CN=weak" 2>/dev/null
cp "$WORK/weak.csr" "$IN/weak.csr"
make_csr banned ec:P-256 "/CN=banned" 2>/dev/null
cp "$WORK/banned.csr" "$IN/banned.csr"
hsmca disallow add banned >/dev/null || bail "disallow"

# ---- roles ----
ROWS0=$(count_rows)
expect_fail "an auditor may not sign a batch (exit 6)" 6 "needs the operator role" \
	"$HSMCA" --server "https://localhost:$ADMIN_PORT" --cert "$WORK/audrey.boot.pem" \
	--key "$WORK/audrey.boot.key" --cacert "$CADIR/root.pem" \
	batch sign --in "$IN" --out "$WORK/denied" --profile device
check "... and nothing was issued" test "$(count_rows)" -eq "$ROWS0"

# ---- the first run, remote ----
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$IN" --out "$WORK/r1" --profile device --jobs 4
check "remote run: some refused, exit 7" test "$RC" -eq 7
check "... 27 CSRs, 24 signed, 3 refused" \
	grep -q "27 CSRs, 24 signed (24 new, 0 already issued), 3 refused, 0 failed" "$WORK/last.out"
check "... a bad CSR refused with its reason" \
	sh -c "[ '$(field "$WORK/r1/results.csv" garbage 4)' = refused ] && grep -q '^hsmca: garbage: refused: .*PKCS#10' '$WORK/last.err'"
check "... a weak key refused with its reason" grep -q "^hsmca: weak: refused: .*1024" "$WORK/last.err"
check "... a disallowed device refused by the appliance" grep -q "^hsmca: banned: refused: .*disallow" "$WORK/last.err"
check "... 24 new certificates in the appliance's store" test $(( $(count_rows) - ROWS0 )) -eq 24
run openssl verify -CAfile "$CADIR/root.pem" -untrusted "$WORK/ica.pem" "$WORK/r1/dev-7.crt"
check "... dev-7.crt verifies with openssl" grep -q ': OK' "$WORK/last.out"
cat "$WORK/r1/dev-7.chain.pem" "$CADIR/root.pem" >"$WORK/v.chain"
run certtool --verify-chain --infile "$WORK/v.chain"
check "... dev-7.chain.pem with certtool" grep -q 'Chain verification output: Verified' "$WORK/last.out"
S7=$(field "$WORK/r1/results.csv" dev-7 2)
check "... recorded with the station's operator as requester" \
	sh -c "sqlite3 '$CADIR/hsmca.db' \"SELECT requester FROM cert WHERE serial = '$S7'\" | grep -q '^admin:CN=line-1 .* batch:[0-9]'"
check "... and the CSR's fingerprint" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT csr_sha256 FROM cert WHERE serial = '$S7'")" = \
	"$(openssl req -in "$WORK/dev-7.csr" -outform DER | sha256sum | cut -d' ' -f1)"

# ---- a re-run, remote, then local: nothing new, the same certificates ----
ROWS1=$(count_rows)
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$IN" --out "$WORK/r2" --profile device
check "remote re-run: 24 already issued, nothing new" \
	grep -q "27 CSRs, 24 signed (0 new, 24 already issued), 3 refused" "$WORK/last.out"
check "... no row added" test "$(count_rows)" -eq "$ROWS1"
run hsmca batch sign --in "$IN" --out "$WORK/l1" --profile device
check "local re-run of the remote batch: 24 already issued" \
	grep -q "27 CSRs, 24 signed (0 new, 24 already issued), 3 refused" "$WORK/last.out"
check "... no row added" test "$(count_rows)" -eq "$ROWS1"
cut -d, -f1-3,5 "$WORK/r1/results.csv" >"$WORK/r1.cut"
cut -d, -f1-3,5 "$WORK/l1/results.csv" >"$WORK/l1.cut"
check "remote and local: the same devices, serials, fingerprints and reasons" \
	cmp -s "$WORK/r1.cut" "$WORK/l1.cut"
check "... the same certificate files" cmp -s "$WORK/r1/dev-7.crt" "$WORK/l1/dev-7.crt"

# ---- --fail-fast: the appliance's refusal stops the batch first ----
mkdir -p "$WORK/ff"
for n in ff-1 ff-2 ff-3; do
	make_csr "$n" ec:P-256 "/CN=$n" 2>/dev/null
	cp "$WORK/$n.csr" "$WORK/ff/"
done
cp "$WORK/banned.csr" "$WORK/ff/"
ROWS3=$(count_rows)
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/ff" --out "$WORK/rff" --profile device --fail-fast
check "remote --fail-fast: a disallowed device stops it (exit 1)" \
	sh -c "[ '$RC' = 1 ] && grep -q '^hsmca: banned: refused: .*disallow' '$WORK/last.err'"
check "... nothing signed" test "$(count_rows)" -eq "$ROWS3"

# ---- --fail-fast: the appliance's check finds what signing would refuse ----
# dev-24's certificate is revoked: its CSR is refused when the appliance
# checks it, before aa-new, taken first, is signed.
expect_ok "revoke dev-24's certificate" hsmca revoke "$(field "$WORK/r1/results.csv" dev-24 2)"
mkdir -p "$WORK/ff2"
make_csr aa-new ec:P-256 "/CN=aa-new" 2>/dev/null
cp "$WORK/aa-new.csr" "$WORK/dev-24.csr" "$WORK/ff2/"
ROWS3=$(count_rows)
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/ff2" --out "$WORK/rff2" --profile device \
	--fail-fast --jobs 1
check "remote --fail-fast: a revoked certificate's CSR stops it (exit 1)" \
	sh -c "[ '$RC' = 1 ] && grep -q '^hsmca: dev-24: refused: .*revoked' '$WORK/last.err'"
check "... nothing signed" test "$(count_rows)" -eq "$ROWS3"

# ---- several CSRs in one sign request, good and bad mixed ----
command -v jq >/dev/null 2>&1 || bail "jq not installed"
# bapi STEP BODY: POST /api/v1/batch/STEP as line-1; body in last.out,
# status in STATUS.
bapi() {
	STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" \
		--cert "$WORK/line-1.boot.pem" --key "$WORK/line-1.boot.key" \
		-H 'Content-Type: application/json' --data-binary "$2" \
		"https://localhost:$ADMIN_PORT/api/v1/batch/$1")
}
b64() { openssl req -in "$1" -outform DER | base64 -w0; }
for n in m-1 m-2; do
	make_csr "$n" ec:P-256 "/CN=$n" 2>/dev/null
done
bapi begin '{"sha256": "'"$(printf multi | sha256sum | cut -d' ' -f1)"'", "profile": "device", "items": 6}'
BID=$(jq -r .batch "$WORK/last.out")
ROWS2=$(count_rows)
MULTI='{"batch": '"$BID"', "profile": "device", "csrs": [
 {"device": "m-1", "csr": "'"$(b64 "$WORK/m-1.csr")"'"},
 {"device": "garbage", "csr": "bm90IGEgQ1NS"},
 {"device": "weak", "csr": "'"$(b64 "$WORK/weak.csr")"'"},
 {"device": "m-2", "csr": "'"$(b64 "$WORK/m-2.csr")"'"},
 {"device": "banned", "csr": "'"$(b64 "$WORK/banned.csr")"'"},
 {"device": "m-1 again", "csr": "'"$(b64 "$WORK/m-1.csr")"'"}]}'
bapi sign "$MULTI"
check "one request, six CSRs: six results in order" \
	test "$STATUS $(jq -r '[.results[].status] | join(" ")' "$WORK/last.out")" = \
	"200 issued refused refused issued refused existing"
check "... the bad ones refused with their reasons" \
	sh -c "jq -r '.results[1,2,4].reason' '$WORK/last.out' | tr '\n' '|' | grep -q 'PKCS#10.*|.*1024.*|.*disallow'"
check "... the same CSR twice: one certificate" \
	test "$(jq -r '.results[0].serial' "$WORK/last.out")" = "$(jq -r '.results[5].serial' "$WORK/last.out")"
check "... two new rows in the store" test $(( $(count_rows) - ROWS2 )) -eq 2
jq -c '[.results[] | [.status, .serial]]' "$WORK/last.out" >"$WORK/multi1.json"
jq -r '.results[0].pem' "$WORK/last.out" >"$WORK/m-1.crt"
run openssl verify -CAfile "$CADIR/root.pem" -untrusted "$WORK/ica.pem" "$WORK/m-1.crt"
check "... m-1's certificate verifies with openssl" grep -q ': OK' "$WORK/last.out"
check "... and is the one recorded for its CSR" \
	test "$(openssl x509 -in "$WORK/m-1.crt" -outform DER | sha256sum | cut -d' ' -f1)" = \
	"$(sqlite3 "$CADIR/hsmca.db" "SELECT sha256 FROM cert WHERE csr_sha256 = '$(openssl req -in "$WORK/m-1.csr" -outform DER | sha256sum | cut -d' ' -f1)'")"
bapi sign "$MULTI"
check "the same request again: already issued, nothing new" \
	test "$STATUS $(jq -r '[.results[].status] | join(" ")' "$WORK/last.out")" = \
	"200 existing refused refused existing refused existing"
check "... the same serials" test "$(jq -c '[.results[] | .serial]' "$WORK/last.out")" = \
	"$(jq -c '[.[] | .[1]]' "$WORK/multi1.json")"
check "... no row added" test "$(count_rows)" -eq $(( ROWS2 + 2 ))
bapi sign '{"batch": '"$BID"', "profile": "device", "csrs": [{"device": "x", "csr": "'"$(b64 "$WORK/m-2.csr")"'"}, 7]}'
check "a malformed entry refuses the whole request (400)" \
	sh -c "[ '$STATUS' = 400 ] && grep -q 'entry 1' '$WORK/last.out'"
bapi sign '{"batch": '"$BID"', "profile": "device", "csrs": ['"$(i=0; while [ $i -le 32 ]; do printf '{"csr": "AA=="},'; i=$((i + 1)); done)"'{"csr": "AA=="}]}'
check "more than 32 CSRs in one request: refused (400)" \
	sh -c "[ '$STATUS' = 400 ] && grep -q '1 to 32' '$WORK/last.out'"
check "... no row added" test "$(count_rows)" -eq $(( ROWS2 + 2 ))

# ---- a forged CSR: the station leaves the signature to the appliance ----
# (it parses each CSR itself, but checking the signature twice would
# cost the factory a core's worth of time on the line)
mkdir -p "$WORK/in4"
make_csr fg-1 ec:P-256 "/CN=fg-1" 2>/dev/null
cp "$WORK/fg-1.csr" "$WORK/in4/fg-1.csr"
make_csr fg-2 ec:P-256 "/CN=fg-2" 2>/dev/null
openssl req -in "$WORK/fg-2.csr" -outform DER -out "$WORK/fg-2.der"
len=$(stat -c %s "$WORK/fg-2.der")
old=$(od -An -tu1 -j $((len - 5)) -N1 "$WORK/fg-2.der" | tr -d ' ')
cp "$WORK/fg-2.der" "$WORK/in4/forged.der"
printf "\\$(printf %o $((old ^ 255)))" | dd of="$WORK/in4/forged.der" bs=1 seek=$((len - 5)) \
	conv=notrunc 2>/dev/null
check "the forged CSR does not verify (openssl req -verify)" \
	sh -c "openssl req -inform DER -in '$WORK/in4/forged.der' -noout -verify 2>&1 |
		grep -q 'verify failure'"
rows=$(count_rows)
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in4" --out "$WORK/r4" --profile device
check "remote: the forged CSR refused by the appliance, the other signed (exit 7)" \
	sh -c "[ '$RC' = 7 ] && grep -q '2 CSRs, 1 signed (1 new, 0 already issued), 1 refused' '$WORK/last.out'"
check "... with its reason" \
	sh -c "[ '$(field "$WORK/r4/results.csv" forged 4)' = refused ] &&
		grep -q '^hsmca: forged: refused: .*signature' '$WORK/last.err'"
check "... and only one certificate recorded" test "$(count_rows)" -eq $((rows + 1))
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in4" --out "$WORK/r5" --profile device --fail-fast
check "remote --fail-fast: the appliance checks first, so nothing is signed (exit 1)" \
	sh -c "[ '$RC' = 1 ] && grep -q 'forged: refused: .*signature' '$WORK/last.err' &&
		grep -q '2 CSRs, 0 signed' '$WORK/last.out'"
check "... nothing new recorded" test "$(count_rows)" -eq $((rows + 1))

# ---- killed with SIGKILL, then resumed ----
i=1
mkdir -p "$WORK/in2"
while [ $i -le 60 ]; do
	make_csr "k-$i" ec:P-256 "/CN=k-$i" 2>/dev/null
	cp "$WORK/k-$i.csr" "$WORK/in2/k-$i.csr"
	i=$((i + 1))
done
"$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in2" --out "$WORK/r3" \
	--profile device --jobs 2 >/dev/null 2>&1 &
pid=$!
n=0
until [ "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert WHERE subject LIKE 'CN=k-%'")" -ge 5 ] || [ $n -ge 200 ]; do
	sleep 0.05
	n=$((n + 1))
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in2" --out "$WORK/r3" --profile device --jobs 2
check "after kill -9 the same command finishes the batch" \
	sh -c "[ '$RC' = 0 ] && grep -q '60 CSRs, 60 signed' '$WORK/last.out'"
check "... no CSR has two certificates" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM (SELECT csr_sha256 FROM cert WHERE status = 'valid' AND csr_sha256 IS NOT NULL GROUP BY csr_sha256 HAVING count(*) > 1)")" -eq 0
check "... every output certificate is in the store" \
	sh -c "for f in '$WORK'/r3/*.crt; do s=\$(openssl x509 -in \"\$f\" -noout -serial | sed 's/serial=//' | tr A-F a-f | sed 's/^00//'); [ \"\$(sqlite3 '$CADIR/hsmca.db' \"SELECT status FROM cert WHERE serial = '\$s'\")\" = valid ] || exit 1; done"
check "... and the store is sound" test "$(sqlite3 "$CADIR/hsmca.db" 'PRAGMA integrity_check')" = ok

# twice: CSRs with more than one certificate that is not failed.
twice() {
	sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM (SELECT csr_sha256 FROM cert WHERE
		status IN ('valid', 'revoked') AND csr_sha256 IS NOT NULL GROUP BY csr_sha256 HAVING count(*) > 1)"
}

# ---- a local run holds the batch lock: hsmcad signs nothing meanwhile ----
# (flock(1) holds STORE-batch.lock as hsmca batch sign on the appliance
# does for its whole run.)
LOCK=$CADIR/hsmca.db-batch.lock
mkdir -p "$WORK/in-lk"
make_csr lk-1 ec:P-256 "/CN=lk-1" 2>/dev/null
cp "$WORK/lk-1.csr" "$WORK/in-lk/"
rows=$(count_rows)
run flock -n "$LOCK" "$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in-lk" --out "$WORK/r-lk" \
	--profile device
check "a station while a local run holds the batch lock: failed, not signed (exit 1)" \
	sh -c "[ '$RC' = 1 ] && [ '$(field "$WORK/r-lk/results.csv" lk-1 4)' = failed ] &&
		grep -q 'lk-1: failed: .*(503): a batch is signing on the appliance itself' '$WORK/last.err'"
check "... nothing recorded" test "$(count_rows)" -eq "$rows"
run flock -n "$LOCK" curl -s -D "$WORK/hdr" -o "$WORK/lk.json" --cacert "$CADIR/root.pem" \
	--cert "$WORK/line-1.boot.pem" --key "$WORK/line-1.boot.key" -H 'Content-Type: application/json' \
	--data-binary '{"batch": 1, "profile": "device", "csr": "'"$(b64 "$WORK/lk-1.csr")"'"}' \
	"https://localhost:$ADMIN_PORT/api/v1/batch/sign"
check "... the admin API answers 503 with Retry-After" \
	sh -c "grep -q '^HTTP/1.1 503' '$WORK/hdr' && grep -qi '^Retry-After: [0-9]' '$WORK/hdr'"
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in-lk" --out "$WORK/r-lk" --profile device
check "... once it is released, the same run signs it" sh -c "[ '$RC' = 0 ] && [ '$(count_rows)' -eq $((rows + 1)) ]"

# ---- a reservation a dead run left behind is swept, then signed ----
make_csr st-1 ec:P-256 "/CN=st-1" 2>/dev/null
mkdir -p "$WORK/in-st" && cp "$WORK/st-1.csr" "$WORK/in-st/"
FP=$(openssl req -in "$WORK/st-1.csr" -outform DER | sha256sum | cut -d' ' -f1)
check "a batch reservation of st-1's CSR left behind by a run that died" \
	sqlite3 "$CADIR/hsmca.db" "INSERT INTO cert (issuer_id, serial, status, profile, requester,
	csr_sha256, created_at, batch_id) SELECT id, '5eed01', 'reserved', 'device', 'cli:root batch:99',
	'$FP', 0, 99 FROM ca_generation WHERE kind = 'issuing' AND status = 'active'"
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in-st" --out "$WORK/r-st" --profile device
check "a CSR whose batch reservation a dead run left behind is signed (exit 0)" \
	sh -c "[ '$RC' = 0 ] && [ '$(field "$WORK/r-st/results.csv" st-1 4)' = issued ]"
check "... the reservation left behind marked failed, its serial never used" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT status FROM cert WHERE serial = '5eed01'")" = failed

# ---- two stations sign the same CSRs at once: one certificate each ----
sh "$top_srcdir/bench/make-csrs.sh" 60 "$WORK/in-two" >/dev/null || bail "make-csrs failed"
"$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in-two" --out "$WORK/s1" --profile device \
	--jobs 2 >"$WORK/s1.out" 2>"$WORK/s1.err" &
p1=$!
"$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in-two" --out "$WORK/s2" --profile device \
	--jobs 2 >"$WORK/s2.out" 2>"$WORK/s2.err" &
p2=$!
wait $p1; rc1=$?
wait $p2; rc2=$?
check "two stations at once: no CSR has two certificates" test "$(twice)" -eq 0
check "... every CSR has its certificate" \
	test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert WHERE status = 'valid' AND subject LIKE 'CN=bench-device-%'")" -eq 60
check "... each station signed or failed a device, refused none (exit $rc1 and $rc2)" \
	sh -c "[ $rc1 -le 1 ] && [ $rc2 -le 1 ] && ! grep -q ': refused: ' '$WORK/s1.err' '$WORK/s2.err'"
check "... a device failed says another batch is signing its CSR" \
	sh -c "! grep ': failed: ' '$WORK/s1.err' '$WORK/s2.err' | grep -qv 'another batch is signing this CSR now; run the batch again'"
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in-two" --out "$WORK/s1" --profile device
check "... run again, the first station has every certificate, none new" \
	sh -c "[ '$RC' = 0 ] && grep -q '60 CSRs, 60 signed (0 new, 60 already issued)' '$WORK/last.out'"
check "... the same ones the second station got" \
	sh -c "for f in '$WORK'/s2/*.crt; do cmp -s \"\$f\" '$WORK/s1/'\$(basename \"\$f\") || exit 1; done"

# ---- a station and a local run on the appliance at once ----
sh "$top_srcdir/bench/make-csrs.sh" 60 "$WORK/in-both" >/dev/null || bail "make-csrs failed"
"$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in-both" --out "$WORK/b-remote" --profile device \
	--jobs 2 >"$WORK/br.out" 2>"$WORK/br.err" &
p1=$!
hsmca batch sign --in "$WORK/in-both" --out "$WORK/b-local" --profile device --jobs 2 \
	>"$WORK/bl.out" 2>"$WORK/bl.err"
rc2=$?
wait $p1; rc1=$?
check "a station and a local run at once: no CSR has two certificates" test "$(twice)" -eq 0
check "... neither refused anything (exit $rc1 and $rc2)" \
	sh -c "[ $rc1 -le 1 ] && [ $rc2 -le 1 ] && ! grep -q ': refused: ' '$WORK/br.err' '$WORK/bl.err'"
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in-both" --out "$WORK/b-remote" --profile device
check "... run again, the station has every certificate" \
	sh -c "[ '$RC' = 0 ] && grep -q '60 CSRs, 60 signed' '$WORK/last.out'"
check "... one each" test "$(twice)" -eq 0
# ---- after a CA rotation: each certificate with its own generation's chain ----
# A batch begun under generation 2 ...
make_csr rot-mid ec:P-256 "/CN=rot-mid" 2>/dev/null
make_csr rot-mid2 ec:P-256 "/CN=rot-mid2" 2>/dev/null
bapi begin '{"sha256": "'"$(printf rotation | sha256sum | cut -d' ' -f1)"'", "profile": "device", "items": 2}'
check "begin names the generation whose chain it gives" \
	test "$STATUS $(jq -r .generation "$WORK/last.out")" = "200 2"
RBID=$(jq -r .batch "$WORK/last.out")
# ... rotated on the appliance by its admin; SIGHUP has hsmcad's signer
# load the generations again ...
rotate_to 3
hsmca ca download 3 | openssl x509 -outform DER >"$WORK/gen3.der"
# ... and signed under generation 3: the answer brings generation 3's chain.
bapi sign '{"batch": '"$RBID"', "profile": "device", "generation": 2, "csrs": [{"device": "rot-mid", "csr": "'"$(b64 "$WORK/rot-mid.csr")"'"}]}'
check "signed during the batch by generation 3: issued, with generation 3's chain" \
	sh -c "[ '$STATUS' = 200 ] && [ \"\$(jq -r '.results[0].status' '$WORK/last.out')\" = issued ] &&
		jq -r '.results[0].chain' '$WORK/last.out' | openssl x509 -outform DER | cmp -s - '$WORK/gen3.der'"
jq -r '.results[0].pem, .results[0].chain' "$WORK/last.out" >"$WORK/rot-mid.chain.pem"
check "... and that chain proves the certificate" openssl verify -CAfile "$CADIR/root.pem" \
	-untrusted "$WORK/rot-mid.chain.pem" "$WORK/rot-mid.chain.pem"
bapi sign '{"batch": '"$RBID"', "profile": "device", "generation": 3, "csr": "'"$(b64 "$WORK/rot-mid2.csr")"'"}'
check "a station that has generation 3's chain gets no chain" \
	test "$STATUS $(jq -r '.status, has("chain")' "$WORK/last.out" | tr '\n' ' ')" = "200 issued false "
bapi sign '{"batch": '"$RBID"', "profile": "device", "generation": "two", "csr": "'"$(b64 "$WORK/rot-mid2.csr")"'"}'
check "a generation that is not a number: 400" sh -c "[ '$STATUS' = 400 ] && grep -q generation '$WORK/last.out'"
bapi end '{"batch": '"$RBID"', "outcome": 0, "summary": "2 signed", "signed": 2, "refused": 0}'
check "... the batch ends" test "$STATUS" = 200
make_csr rot-new ec:P-256 "/CN=rot-new" 2>/dev/null
mkdir -p "$WORK/in-rot"
cp "$WORK/dev-1.csr" "$WORK/rot-new.csr" "$WORK/in-rot/"
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in-rot" --out "$WORK/r-rot" --profile device
check "after rotation: dev-1 already issued (generation 2), rot-new new (generation 3)" \
	sh -c "[ '$RC' = 0 ] && [ '$(field "$WORK/r-rot/results.csv" dev-1 4)' = existing ] &&
		[ '$(field "$WORK/r-rot/results.csv" rot-new 4)' = issued ]"
for d in dev-1 rot-new; do
	check "$d.chain.pem verifies its certificate (openssl)" openssl verify -CAfile "$CADIR/root.pem" \
		-untrusted "$WORK/r-rot/$d.chain.pem" "$WORK/r-rot/$d.crt"
done
check "the two chains differ" sh -c "! cmp -s '$WORK/r-rot/dev-1.chain.pem' '$WORK/r-rot/rot-new.chain.pem'"

# A station batch running while the CA rotates (3 to 4, once 20 are
# signed): those signed after it come from generation 4 and get its
# chain, because the station names generation 3 in each request.
mkdir -p "$WORK/in-mid"
i=1
while [ $i -le 300 ]; do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
		-subj "/CN=mid-$i" -out "$WORK/in-mid/mid-$i.csr" 2>/dev/null
	i=$((i + 1))
done
"$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in-mid" --out "$WORK/r-mid" \
	--profile device --jobs 1 >"$WORK/mid.out" 2>&1 &
pid=$!
n=0
until [ "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert WHERE subject LIKE 'CN=mid-%'")" -ge 20 ] ||
    [ $n -ge 500 ]; do
	sleep 0.02
	n=$((n + 1))
done
rotate_to 4
wait $pid
check "the batch across the rotation: all 300 signed" grep -q "300 CSRs, 300 signed" "$WORK/mid.out"
hsmca ca download 4 >"$WORK/gen4.pem"
bad=0; new=0
for f in "$WORK"/r-mid/*.crt; do
	openssl verify -CAfile "$CADIR/root.pem" -untrusted "${f%.crt}.chain.pem" "$f" >/dev/null 2>&1 ||
		bad=$((bad + 1))
	! openssl verify -partial_chain -CAfile "$WORK/gen4.pem" "$f" >/dev/null 2>&1 || new=$((new + 1))
done
check "every certificate's .chain.pem verifies it ($new of 300 from generation 4)" test "$bad" -eq 0
if [ "$new" -gt 0 ]; then
	ok "some were signed after the rotation ($new)"
else
	ok "# SKIP the batch ended before the rotation took effect"
fi

# ---- the appliance lost mid-batch: failed, not refused; run again ----
sh "$top_srcdir/bench/make-csrs.sh" 300 "$WORK/in-lost" >/dev/null || bail "make-csrs failed"
base=$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert WHERE subject LIKE 'CN=bench-device-%'")
"$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in-lost" --out "$WORK/r-lost" \
	--profile device --jobs 1 >"$WORK/lost.out" 2>"$WORK/lost.err" &
pid=$!
n=0
until [ "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM cert WHERE subject LIKE 'CN=bench-device-%'")" -ge $((base + 20)) ] ||
    [ $n -ge 500 ]; do
	sleep 0.02
	n=$((n + 1))
done
kill -9 "$HSMCAD_PID" $(pgrep -P "$HSMCAD_PID") 2>/dev/null
wait "$HSMCAD_PID" 2>/dev/null
HSMCAD_PID=
wait $pid
RC=$?
if [ "$RC" = 0 ]; then
	ok "# SKIP the batch ended before the appliance was killed"
else
	check "the appliance killed mid-batch: the station fails (exit 1), refuses nothing" \
		sh -c "[ '$RC' = 1 ] && ! grep -q ',refused,' '$WORK/r-lost/results.csv' &&
			grep -q ',failed,.*run the batch again' '$WORK/r-lost/results.csv'"
	check "... and records no refusal" \
		test "$(sqlite3 "$CADIR/hsmca.db" "SELECT count(*) FROM audit WHERE action = 'refuse' AND object LIKE 'batch:% device:bench-device-%'")" -eq 0
fi
hsmcad_start
sed -i "s|^server = .*|server = https://localhost:$ADMIN_PORT|" "$WORK/station.conf"
run "$HSMCA" -c "$WORK/station.conf" batch sign --in "$WORK/in-lost" --out "$WORK/r-lost" --profile device --jobs 2
check "... the appliance back, run again: every device signed (exit 0)" \
	sh -c "[ '$RC' = 0 ] && grep -q '300 CSRs, 300 signed' '$WORK/last.out'"
check "... what it had signed handed back, not signed again" \
	sh -c "[ '$(twice)' -eq 0 ] && grep -Eq '300 signed \([0-9]+ new, [1-9][0-9]* already issued\)' '$WORK/last.out'"
check "... every output certificate is in the store" \
	sh -c "for f in '$WORK'/r-lost/*.crt; do s=\$(openssl x509 -in \"\$f\" -noout -serial | sed 's/serial=//' | tr A-F a-f | sed 's/^00//'); [ \"\$(sqlite3 '$CADIR/hsmca.db' \"SELECT status FROM cert WHERE serial = '\$s'\")\" = valid ] || exit 1; done"

expect_ok "the audit log verifies" hsmca audit verify

done_testing
